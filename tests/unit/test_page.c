/* test_page.c - the browser page response. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "page.h"

static char out[8192];

START_TEST(complete_response)
{
    size_t n = wse_page_response(out, sizeof out, "/websocket");
    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    ck_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ck_assert_ptr_nonnull(strstr(out, "Content-Type: text/html; charset=utf-8\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "Connection: close\r\n"));
    const char *body = strstr(out, "\r\n\r\n") + 4;
    unsigned long clen = strtoul(strstr(out, "Content-Length: ") + 16, NULL, 10);
    ck_assert_uint_eq(clen, strlen(body));
    ck_assert_ptr_nonnull(strstr(body, "const path = \"/websocket\";"));
    ck_assert_ptr_nonnull(strstr(body, "new WebSocket(url)"));
    /* Self-contained: nothing is loaded from elsewhere. */
    ck_assert_ptr_null(strstr(body, "src="));
    ck_assert_ptr_null(strstr(body, "href="));
}
END_TEST

START_TEST(path_cannot_break_out)
{
    size_t n = wse_page_response(out, sizeof out, "/a\"b</script><x>'\\");
    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "const path = \"/a\\x22b\\x3c/script\\x3e\\x3cx\\x3e\\x27\\x5c\";"));
    ck_assert_ptr_null(strstr(out, "</script><x>"));
}
END_TEST

START_TEST(too_small_buffer)
{
    ck_assert_uint_eq(wse_page_response(out, 100, "/websocket"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("page");
    TCase *tc = tcase_create("page");
    tcase_add_test(tc, complete_response);
    tcase_add_test(tc, path_cannot_break_out);
    tcase_add_test(tc, too_small_buffer);
    suite_add_tcase(s, tc);
    return wse_run_suite(s);
}
