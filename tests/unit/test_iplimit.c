/*
 * test_iplimit.c - the shared table of connections per client address
 * (iplimit.h): the limit, keys, several holders, forgetting a dead holder,
 * a model of random operations, processes racing, and a process killed
 * inside the lock at random moments.
 */
#include <arpa/inet.h>
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "iplimit.h"

static struct wse_iplimit_key v4(const char *text)
{
    struct wse_iplimit_key k;
    uint8_t a[4];

    ck_assert_int_eq(inet_pton(AF_INET, text, a), 1);
    wse_iplimit_key(&k, AF_INET, a);
    return k;
}

static struct wse_iplimit_key v6(const char *text)
{
    struct wse_iplimit_key k;
    uint8_t a[16];

    ck_assert_int_eq(inet_pton(AF_INET6, text, a), 1);
    wse_iplimit_key(&k, AF_INET6, a);
    return k;
}

static struct wse_iplimit_key numbered(unsigned i)
{
    struct wse_iplimit_key k;
    uint8_t a[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};

    wse_iplimit_key(&k, AF_INET, a);
    return k;
}

START_TEST(test_limit_counts_and_release_frees)
{
    struct wse_iplimit t;
    struct wse_iplimit_key a = v4("192.0.2.1"), b = v4("192.0.2.2");
    unsigned total;

    ck_assert_int_eq(wse_iplimit_create(&t, 0, 4), 0);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 3, &total), WSE_IPLIMIT_COUNTED);
        ck_assert_uint_eq(total, i);
    }
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 3, &total), WSE_IPLIMIT_REFUSED);
    ck_assert_uint_eq(total, 3);
    /* Another client is not affected. */
    ck_assert_int_eq(wse_iplimit_acquire(&t, &b, 0, 3, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), 3);
    wse_iplimit_release(&t, &a, 0);
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), 2);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 3, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 3, NULL), WSE_IPLIMIT_REFUSED);
    /* A lower limit (after a reload) refuses at once; a higher one admits. */
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 1, NULL), WSE_IPLIMIT_REFUSED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 4, NULL), WSE_IPLIMIT_COUNTED);
    for (unsigned i = 0; i < 4; i++)
        wse_iplimit_release(&t, &a, 0);
    wse_iplimit_release(&t, &b, 0);
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), 0);
    ck_assert_uint_eq(wse_iplimit_records(&t), 0);
    /* A release with nothing counted changes nothing. */
    wse_iplimit_release(&t, &a, 0);
    ck_assert_uint_eq(wse_iplimit_records(&t), 0);
    wse_iplimit_destroy(&t);
}
END_TEST

START_TEST(test_keys)
{
    struct wse_iplimit_key a = v4("192.0.2.1"), mapped = v6("::ffff:192.0.2.1");
    struct wse_iplimit_key b = v4("192.0.2.2");

    /* IPv4 reaching an IPv6 listener is the same client. */
    ck_assert_mem_eq(a.b, mapped.b, 16);
    ck_assert(memcmp(a.b, b.b, 16) != 0);
    /* IPv6: one /64 is one client; the next /64 is another. */
    struct wse_iplimit_key x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff:1:2:3");
    struct wse_iplimit_key z = v6("2001:db8:1:3::1");
    ck_assert_mem_eq(x.b, y.b, 16);
    ck_assert(memcmp(x.b, z.b, 16) != 0);
    /* A /64 never equals an IPv4 client. */
    struct wse_iplimit_key w = v6("::c000:201");
    ck_assert(memcmp(w.b, a.b, 16) != 0);
}
END_TEST

START_TEST(test_holders_sum_and_forget)
{
    struct wse_iplimit t;
    struct wse_iplimit_key a = v4("198.51.100.7"), b = v4("198.51.100.8");

    ck_assert_int_eq(wse_iplimit_create(&t, 0, 8), 0);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 1, 4, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 1, 4, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 5, 4, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 7, 4, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &b, 1, 4, NULL), WSE_IPLIMIT_COUNTED);
    /* Full for a, whichever holder asks. */
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 2, 4, NULL), WSE_IPLIMIT_REFUSED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 1, 4, NULL), WSE_IPLIMIT_REFUSED);
    /* Holder 1 dies: its three connections are no longer counted. */
    ck_assert_uint_eq(wse_iplimit_forget(&t, 1), 3);
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), 2);
    ck_assert_uint_eq(wse_iplimit_count(&t, &b), 0);
    ck_assert_uint_eq(wse_iplimit_records(&t), 2);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 2, 4, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 2, 4, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 2, 4, NULL), WSE_IPLIMIT_REFUSED);
    ck_assert_uint_eq(wse_iplimit_forget(&t, 1), 0);
    /* A holder out of range is never counted. */
    ck_assert_int_eq(wse_iplimit_acquire(&t, &b, 8, 4, NULL), WSE_IPLIMIT_UNTRACKED);
    wse_iplimit_destroy(&t);
}
END_TEST

START_TEST(test_bad_sizes)
{
    struct wse_iplimit t;

    ck_assert_int_eq(wse_iplimit_create(&t, 100, 4), -1);
    ck_assert_int_eq(wse_iplimit_create(&t, 4, 4), -1);
    ck_assert_int_eq(wse_iplimit_create(&t, 64, 0), -1);
    ck_assert_int_eq(wse_iplimit_create(&t, WSE_IPLIMIT_SLOTS * 2, 4), -1);
}
END_TEST

/*
 * Random operations on a small table (long runs, wrap-around, deletions
 * in the middle of runs) against a plain model: every client's count and
 * the number of records agree after every step, and a full table answers
 * UNTRACKED exactly when the model has no record left to give.
 */
#define M_SLOTS 64
#define M_KEYS 40
#define M_HOLDERS 4

START_TEST(test_model)
{
    static unsigned model[M_KEYS][M_HOLDERS];
    struct wse_iplimit t;
    unsigned max_records = M_SLOTS / 4 * 3, limit = 5;

    memset(model, 0, sizeof model);
    srand(12345);
    ck_assert_int_eq(wse_iplimit_create(&t, M_SLOTS, M_HOLDERS), 0);
    for (int step = 0; step < 200000; step++) {
        unsigned k = (unsigned)rand() % M_KEYS, h = (unsigned)rand() % M_HOLDERS;
        struct wse_iplimit_key key = numbered(k);
        unsigned total = 0, records = 0;
        for (unsigned hh = 0; hh < M_HOLDERS; hh++)
            total += model[k][hh];
        for (unsigned kk = 0; kk < M_KEYS; kk++)
            for (unsigned hh = 0; hh < M_HOLDERS; hh++)
                records += model[kk][hh] != 0;
        int op = rand() % 100;
        if (op < 55) {
            enum wse_iplimit_result r = wse_iplimit_acquire(&t, &key, h, limit, NULL);
            enum wse_iplimit_result want = total >= limit ? WSE_IPLIMIT_REFUSED
                : (!model[k][h] && records >= max_records) ? WSE_IPLIMIT_UNTRACKED
                : WSE_IPLIMIT_COUNTED;
            ck_assert_int_eq(r, want);
            if (r == WSE_IPLIMIT_COUNTED)
                model[k][h]++;
        } else if (op < 99) {
            if (model[k][h]) {
                wse_iplimit_release(&t, &key, h);
                model[k][h]--;
            }
        } else {
            unsigned long sum = 0;
            for (unsigned kk = 0; kk < M_KEYS; kk++) {
                sum += model[kk][h];
                model[kk][h] = 0;
            }
            ck_assert_uint_eq(wse_iplimit_forget(&t, h), sum);
        }
        if (step % 97 == 0 || op >= 99) {
            records = 0;
            for (unsigned kk = 0; kk < M_KEYS; kk++) {
                struct wse_iplimit_key kx = numbered(kk);
                unsigned want = 0;
                for (unsigned hh = 0; hh < M_HOLDERS; hh++) {
                    want += model[kk][hh];
                    records += model[kk][hh] != 0;
                }
                ck_assert_uint_eq(wse_iplimit_count(&t, &kx), want);
            }
            ck_assert_uint_eq(wse_iplimit_records(&t), records);
        }
    }
    wse_iplimit_destroy(&t);
}
END_TEST

/* Processes racing for one client never get more than the limit between them. */
START_TEST(test_processes_race)
{
    enum { PROCS = 6, TRIES = 400, LIMIT = 50 };
    struct wse_iplimit t;
    struct wse_iplimit_key a = v4("203.0.113.9");
    pid_t pids[PROCS];
    int fds[PROCS][2];

    ck_assert_int_eq(wse_iplimit_create(&t, 0, PROCS), 0);
    for (int p = 0; p < PROCS; p++) {
        ck_assert_int_eq(pipe(fds[p]), 0);
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0) {
            unsigned got = 0;
            for (int i = 0; i < TRIES; i++) {
                if (wse_iplimit_acquire(&t, &a, (unsigned)p, LIMIT, NULL) == WSE_IPLIMIT_COUNTED)
                    got++;
                if (i % 3 == 2 && got) {
                    wse_iplimit_release(&t, &a, (unsigned)p);
                    got--;
                }
            }
            _exit(write(fds[p][1], &got, sizeof got) == sizeof got ? 0 : 1);
        }
        close(fds[p][1]);
    }
    unsigned sum = 0;
    for (int p = 0; p < PROCS; p++) {
        unsigned got = 0;
        int status;
        ck_assert_int_eq(read(fds[p][0], &got, sizeof got), (ssize_t)sizeof got);
        close(fds[p][0]);
        ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        sum += got;
    }
    /* What the children hold is what the table counts, never over the limit. */
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), sum);
    ck_assert_uint_le(sum, LIMIT);
    for (int p = 0; p < PROCS; p++)
        wse_iplimit_forget(&t, (unsigned)p);
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), 0);
    wse_iplimit_destroy(&t);
}
END_TEST

/* A process that dies holding the lock does not stop the others. */
START_TEST(test_owner_died_in_lock)
{
    struct wse_iplimit t;
    struct wse_iplimit_key a = v4("192.0.2.50");
    int status;

    ck_assert_int_eq(wse_iplimit_create(&t, 0, 4), 0);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 10, NULL), WSE_IPLIMIT_COUNTED);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        wse_iplimit_acquire(&t, &a, 1, 10, NULL);
        _exit(wse_iplimit_test_hold_lock(&t) == 0 ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(wse_iplimit_count(&t, &a), 2);
    ck_assert_uint_eq(wse_iplimit_forget(&t, 1), 1);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 2, NULL), WSE_IPLIMIT_COUNTED);
    ck_assert_int_eq(wse_iplimit_acquire(&t, &a, 0, 2, NULL), WSE_IPLIMIT_REFUSED);
    wse_iplimit_destroy(&t);
}
END_TEST

/*
 * A process killed -9 at random moments, often inside the lock in the middle
 * of a change.  Each round sets up records that deletions must move: the
 * child's records (holder 1) are made first, so the parent's (holder 0)
 * sit behind them in their runs; the child then deletes and re-makes its
 * own, which moves the parent's back, until it is killed.  After each kill
 * and forgetting the child, the parent's counts are exactly what it holds.
 */
START_TEST(test_killed_at_random_moments)
{
    enum { KEYS = 300, ROUNDS = 300 };
    struct wse_iplimit t;
    static unsigned mine[KEYS];

    srand(777);
    ck_assert_int_eq(wse_iplimit_create(&t, 1024, 2), 0);
    for (int round = 0; round < ROUNDS; round++) {
        for (unsigned k = 0; k < KEYS; k++) {
            struct wse_iplimit_key key = numbered(k);
            ck_assert_int_eq(wse_iplimit_acquire(&t, &key, 1, 1000, NULL), WSE_IPLIMIT_COUNTED);
        }
        for (unsigned k = 0; k < KEYS; k++) {
            struct wse_iplimit_key key = numbered(k);
            for (; mine[k] < 1 + k % 3; mine[k]++)
                ck_assert_int_eq(wse_iplimit_acquire(&t, &key, 0, 1000, NULL),
                                 WSE_IPLIMIT_COUNTED);
        }
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (unsigned n = 0;; n++) {
                struct wse_iplimit_key key = numbered(n % KEYS);
                if (n / KEYS % 2 == 0)
                    wse_iplimit_release(&t, &key, 1);
                else
                    wse_iplimit_acquire(&t, &key, 1, 1000, NULL);
            }
        }
        struct timespec ts = {0, 100000 + (rand() % 1000) * 1000};
        nanosleep(&ts, NULL);   /* the moment of the kill is the point: random on purpose */
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        wse_iplimit_forget(&t, 1);
        for (unsigned k = 0; k < KEYS; k++) {
            struct wse_iplimit_key key = numbered(k);
            ck_assert_uint_eq(wse_iplimit_count(&t, &key), mine[k]);
        }
        ck_assert_uint_eq(wse_iplimit_records(&t), KEYS);
        /* Next round: the parent's records go, to be made behind the child's again. */
        for (unsigned k = 0; k < KEYS; k++) {
            struct wse_iplimit_key key = numbered(k);
            for (; mine[k]; mine[k]--)
                wse_iplimit_release(&t, &key, 0);
        }
    }
    wse_iplimit_destroy(&t);
}
END_TEST

static Suite *iplimit_suite(void)
{
    Suite *s = suite_create("iplimit");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_limit_counts_and_release_frees);
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_holders_sum_and_forget);
    tcase_add_test(tc, test_bad_sizes);
    tcase_add_test(tc, test_model);
    tcase_add_test(tc, test_processes_race);
    tcase_add_test(tc, test_owner_died_in_lock);
    tcase_add_test(tc, test_killed_at_random_moments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(iplimit_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
