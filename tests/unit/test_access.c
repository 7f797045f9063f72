/*
 * test_access.c - a connection's peer as the logs name it and its access
 * line (access.h): every field, the request's escaping, `-` for what is
 * missing, and truncation into a short buffer.
 */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>
#include <sys/socket.h>

#include "run_suite.h"
#include "access.h"

static struct wse_peer v4(const char *text, uint16_t port)
{
    struct wse_peer p = {.family = AF_INET, .port = htons(port)};
    ck_assert_int_eq(inet_pton(AF_INET, text, p.addr), 1);
    return p;
}

static struct wse_peer v6(const char *text, uint16_t port)
{
    struct wse_peer p = {.family = AF_INET6, .port = htons(port)};
    ck_assert_int_eq(inet_pton(AF_INET6, text, p.addr), 1);
    return p;
}

START_TEST(peers_format_as_address_and_port)
{
    char out[WSE_ADDR_MAX];
    struct wse_peer a = v4("192.0.2.7", 51000), b = v6("2001:db8::1", 443);

    ck_assert_str_eq(wse_peer_str(&a, out), "192.0.2.7:51000");
    ck_assert_str_eq(wse_peer_str(&b, out), "[2001:db8::1]:443");
}
END_TEST

START_TEST(a_session_line_has_every_field)
{
    char line[WSE_ACCESS_LINE_MAX];
    struct wse_peer p = v4("127.0.0.1", 40000);
    struct wse_access a = {
        .peer = &p, .method = "GET", .method_len = 3, .path = "/websocket", .path_len = 10,
        .status = 101, .ms = 12345, .msgs = 3, .bytes = 4096, .close_code = 1000,
        .by = WSE_BY_CLIENT,
    };
    size_t n = wse_access_format(line, sizeof line, &a);

    ck_assert_str_eq(line, "peer=127.0.0.1:40000 request=\"GET /websocket\" status=101 "
                           "time=12.345 msgs=3 bytes=4096 close=1000 by=client");
    ck_assert_uint_eq(n, strlen(line));
}
END_TEST

/* No request line, no status, no close code: each shows as `-`. */
START_TEST(missing_fields_are_dashes)
{
    char line[WSE_ACCESS_LINE_MAX];
    struct wse_peer p = v6("::1", 9);
    struct wse_access a = {.peer = &p, .ms = 7, .by = WSE_BY_TIMEOUT};

    wse_access_format(line, sizeof line, &a);
    ck_assert_str_eq(line, "peer=[::1]:9 request=- status=- time=0.007 msgs=0 bytes=0 "
                           "close=- by=timeout");
    /* A method without a path is no request line either. */
    a.method = "GET", a.method_len = 3, a.status = 400, a.by = WSE_BY_SERVER;
    wse_access_format(line, sizeof line, &a);
    ck_assert_str_eq(line, "peer=[::1]:9 request=- status=400 time=0.007 msgs=0 bytes=0 "
                           "close=- by=server");
}
END_TEST

/* The request is the peer's bytes: escaped, never raw quotes or controls. */
START_TEST(the_request_is_escaped)
{
    char line[WSE_ACCESS_LINE_MAX];
    struct wse_peer p = v4("10.0.0.1", 1);
    static const char path[] = "/a\"b\n c";
    struct wse_access a = {.peer = &p, .method = "PUT", .method_len = 3, .path = path,
                           .path_len = sizeof path - 1, .status = 404, .by = WSE_BY_SERVER};

    wse_access_format(line, sizeof line, &a);
    ck_assert_ptr_null(strchr(line, '\n'));
    ck_assert_ptr_nonnull(strstr(line, "request=\"PUT /a"));
    ck_assert_ptr_null(strstr(line, "a\"b"));
}
END_TEST

/* The longest fields fit the documented maximum, and the largest values. */
START_TEST(the_longest_line_fits_and_a_short_buffer_truncates)
{
    char line[WSE_ACCESS_LINE_MAX], small[32];
    char path[4096];
    struct wse_peer p = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

    memset(path, '\x01', sizeof path);     /* every byte escaped: the most text */
    struct wse_access a = {
        .peer = &p, .method = "OPTIONSXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", .method_len = 37,
        .path = path, .path_len = sizeof path, .status = 503, .ms = UINT32_MAX,
        .msgs = UINT32_MAX, .bytes = UINT64_MAX, .close_code = 65535, .by = 200,
    };
    size_t n = wse_access_format(line, sizeof line, &a);

    ck_assert_uint_lt(n, sizeof line - 1);
    ck_assert_ptr_nonnull(strstr(line, " close=65535 by=?"));
    ck_assert_ptr_nonnull(strstr(line, " bytes=18446744073709551615 "));
    n = wse_access_format(small, sizeof small, &a);
    ck_assert_uint_eq(n, sizeof small - 1);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(strncmp(small, line, n), 0);
}
END_TEST

START_TEST(the_clock_moves_forward)
{
    uint32_t a = wse_access_clock_ms(), b = wse_access_clock_ms();

    ck_assert_uint_lt((uint32_t)(b - a), 1000);
}
END_TEST

static Suite *access_suite(void)
{
    Suite *s = suite_create("access");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, peers_format_as_address_and_port);
    tcase_add_test(tc, a_session_line_has_every_field);
    tcase_add_test(tc, missing_fields_are_dashes);
    tcase_add_test(tc, the_request_is_escaped);
    tcase_add_test(tc, the_longest_line_fits_and_a_short_buffer_truncates);
    tcase_add_test(tc, the_clock_moves_forward);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(access_suite());
}
