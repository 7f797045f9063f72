/*
 * test_connlimit.c - a worker's side of --max-connections-per-ip
 * (connlimit.h): admission counted in a real shared table, release, no
 * limit, the counters, and the refusal's bytes on a real socket (503, FIN,
 * what the client sent drained).
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run_suite.h"
#include "connlimit.h"
#include "log.h"

static struct wse_stats_slot slot;

/* A counter's value; STATS=0 builds count nothing, so check nothing there. */
#ifdef WSE_NO_STATS
#define ck_assert_counter(field, n) ((void)0)
#else
#define ck_assert_counter(field, n) ck_assert_uint_eq(slot.c[WSE_STAT_##field], (n))
#endif

static struct wse_peer v4(const char *text)
{
    struct wse_peer p = {.family = AF_INET, .port = htons(1234)};
    ck_assert_int_eq(inet_pton(AF_INET, text, p.addr), 1);
    return p;
}

static unsigned count_of(struct wse_iplimit *t, const struct wse_peer *p)
{
    struct wse_iplimit_key k;
    wse_iplimit_key(&k, p->family, p->addr);
    return wse_iplimit_count(t, &k);
}

START_TEST(admits_up_to_the_limit_then_refuses_and_release_frees)
{
    struct wse_iplimit t;
    struct wse_peer a = v4("192.0.2.1"), b = v4("192.0.2.2");

    memset(&slot, 0, sizeof slot);
    ck_assert_int_eq(wse_iplimit_create(&t, 0, 2), 0);
    struct wse_connlimit cl = {.table = &t, .holder = 1, .limit = 2, .st = &slot};
    ck_assert_int_eq(wse_connlimit_admit(&cl, &a), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_connlimit_admit(&cl, &a), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_connlimit_admit(&cl, &a), WSE_IPLIMIT_REFUSED);
    ck_assert_counter(refused_per_ip, 1);
    ck_assert_int_eq(wse_connlimit_admit(&cl, &b), WSE_IPLIMIT_COUNTED);
    ck_assert_uint_eq(count_of(&t, &a), 2);
    wse_connlimit_release(&cl, &a);
    ck_assert_uint_eq(count_of(&t, &a), 1);
    ck_assert_int_eq(wse_connlimit_admit(&cl, &a), WSE_IPLIMIT_COUNTED);
    wse_connlimit_release(&cl, &a);
    wse_connlimit_release(&cl, &a);
    wse_connlimit_release(&cl, &b);
    ck_assert_uint_eq(count_of(&t, &a), 0);
    ck_assert_uint_eq(count_of(&t, &b), 0);
    ck_assert_counter(refused_per_ip, 1);
    ck_assert_counter(per_ip_untracked, 0);
    wse_iplimit_destroy(&t);
}
END_TEST

/* No limit configured, or no table: everyone in, nothing counted. */
START_TEST(without_a_limit_nothing_is_counted)
{
    struct wse_iplimit t;
    struct wse_peer a = v4("192.0.2.1");

    memset(&slot, 0, sizeof slot);
    ck_assert_int_eq(wse_iplimit_create(&t, 0, 2), 0);
    struct wse_connlimit off = {.table = &t, .limit = 0, .st = &slot};
    struct wse_connlimit none = {.table = NULL, .limit = 1, .st = &slot};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wse_connlimit_admit(&off, &a), WSE_IPLIMIT_UNTRACKED);
        ck_assert_int_eq(wse_connlimit_admit(&none, &a), WSE_IPLIMIT_UNTRACKED);
    }
    ck_assert_uint_eq(count_of(&t, &a), 0);
    ck_assert_counter(per_ip_untracked, 0);
    wse_iplimit_destroy(&t);
}
END_TEST

/* The refusal as the client sees it: the whole 503 with its Retry-After,
 * then EOF; and what it had sent was read by the server's side (so the
 * close that follows is a FIN, not a reset). */
START_TEST(the_refusal_is_a_503_then_eof_with_the_input_drained)
{
    int sv[2];
    char got[512], scratch[4096];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    static const char sent[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(write(sv[1], sent, sizeof sent - 1), (ssize_t)sizeof sent - 1);

    wse_connlimit_refuse(&wse_transport_plain, sv[0], scratch, sizeof scratch);
    ck_assert_mem_eq(scratch, sent, sizeof sent - 1);
    /* Nothing left unread on the server's side. */
    ck_assert_int_eq(read(sv[0], got, sizeof got), -1);

    size_t n = 0;
    ssize_t r;
    while ((r = read(sv[1], got + n, sizeof got - 1 - n)) > 0)
        n += (size_t)r;
    ck_assert_int_eq(r, 0);     /* EOF: the FIN */
    got[n] = '\0';
    ck_assert_int_eq(strncmp(got, "HTTP/1.1 503 ", 13), 0);
    ck_assert_ptr_nonnull(strstr(got, "\r\nRetry-After: " WSE_CONNLIMIT_RETRY_AFTER "\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "\r\n\r\ntoo many connections from your address\n"));
    ck_assert_str_eq(strstr(got, "\r\n\r\n") + 4, "too many connections from your address\n");
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static Suite *connlimit_suite(void)
{
    Suite *s = suite_create("connlimit");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, admits_up_to_the_limit_then_refuses_and_release_frees);
    tcase_add_test(tc, without_a_limit_nothing_is_counted);
    tcase_add_test(tc, the_refusal_is_a_503_then_eof_with_the_input_drained);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    wse_log_max = WSE_LOG_ERROR;    /* the refusal's warning is not this test's output */
    return wse_run_suite(connlimit_suite());
}
