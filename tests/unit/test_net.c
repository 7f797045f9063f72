/* test_net.c - the URLs and wildcard names of the start-up line. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "run_suite.h"
#include "net.h"

static struct wse_listen listen_on(int family, const char *host, uint16_t port)
{
    struct wse_listen l = {.family = family, .port = port};
    strcpy(l.host, host);
    return l;
}

START_TEST(urls_bracket_ipv6_only)
{
    char out[WSE_STR_MAX + WSE_ADDR_MAX + 8];
    struct wse_listen v4 = listen_on(AF_INET, "127.0.0.1", 8000);
    struct wse_listen v6 = listen_on(AF_INET6, "::1", 65535);

    wse_net_url(out, sizeof out, "ws", &v4, "/websocket");
    ck_assert_str_eq(out, "ws://127.0.0.1:8000/websocket");
    wse_net_url(out, sizeof out, "http", &v6, "/");
    ck_assert_str_eq(out, "http://[::1]:65535/");
    /* A short buffer gets a terminated prefix. */
    wse_net_url(out, 10, "ws", &v4, "/websocket");
    ck_assert_str_eq(out, "ws://127.");
}
END_TEST

START_TEST(wildcards_are_named)
{
    struct wse_listen any4 = listen_on(AF_INET, "0.0.0.0", 80);
    struct wse_listen any6 = listen_on(AF_INET6, "::", 80);
    struct wse_listen one = listen_on(AF_INET, "10.0.0.1", 80);
    struct wse_listen lo6 = listen_on(AF_INET6, "::1", 80);

    ck_assert_str_eq(wse_net_wildcard(&any4), "all IPv4 interfaces");
    ck_assert_str_eq(wse_net_wildcard(&any6), "all IPv6 interfaces");
    ck_assert_ptr_null(wse_net_wildcard(&one));
    ck_assert_ptr_null(wse_net_wildcard(&lo6));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("net");
    tcase_add_test(tc, urls_bracket_ipv6_only);
    tcase_add_test(tc, wildcards_are_named);
    suite_add_tcase(s, tc);
    return wse_run_suite(s);
}
