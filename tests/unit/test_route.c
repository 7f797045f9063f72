/*
 * test_route.c - the HTTP phase's decision (route.h): which resource, which
 * method, the page or the upgrade, the handshake's refusals and the origin
 * policy; all from requests as wse_http_parse() leaves them.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "run_suite.h"
#include "common.h"
#include "http.h"
#include "route.h"

static const struct wse_http_limits LIM = {8192, 64};
static const char *const ORIGINS[] = {"https://app.example", "http://other.example:8080"};
static const struct wse_route_cfg OPEN = {.path = "/websocket"};
static const struct wse_route_cfg LISTED = {.path = "/websocket", .origins = ORIGINS,
                                             .norigins = 2};

#define UPGRADE_HEADERS                                                                  \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                                      \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

static char text[4096];
static struct wse_http_req req;

/* Parses "METHOD PATH" plus header lines as a whole request. */
static void parse(const char *method_path, const char *headers)
{
    int n = snprintf(text, sizeof text, "%s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n%s\r\n",
                     method_path, headers);
    ck_assert_int_lt(n, (int)sizeof text);
    wse_http_init(&req);
    ck_assert_int_eq(wse_http_parse(&req, text, (size_t)n, &LIM), WSE_OK);
}

static struct wse_route decide(const struct wse_route_cfg *cfg, bool draining,
                               const char *method_path, const char *headers)
{
    parse(method_path, headers);
    return wse_route(&req, text, cfg, draining);
}

static void is_answer(struct wse_route r, int status, bool head)
{
    ck_assert_int_eq(r.kind, WSE_ROUTE_ANSWER);
    ck_assert_int_eq(r.status, status);
    ck_assert_int_eq(r.head, head);
}

START_TEST(healthz_answers_and_says_draining)
{
    struct wse_route r = decide(&OPEN, false, "GET /healthz", "");
    is_answer(r, 200, false);
    ck_assert_str_eq(r.body, "ok\n");
    r = decide(&OPEN, true, "GET /healthz", "");
    is_answer(r, 503, false);
    ck_assert_str_eq(r.body, "draining\n");
    is_answer(decide(&OPEN, false, "HEAD /healthz", ""), 200, true);
    /* A health check with Upgrade is still a health check. */
    is_answer(decide(&OPEN, false, "GET /healthz", UPGRADE_HEADERS), 200, false);
}
END_TEST

START_TEST(unknown_path_and_method)
{
    is_answer(decide(&OPEN, false, "GET /nope", ""), 404, false);
    /* 404 and 405 come before HEAD is known to be allowed: a full answer. */
    is_answer(decide(&OPEN, false, "HEAD /nope", ""), 404, false);
    struct wse_route r = decide(&OPEN, false, "POST /", "");
    is_answer(r, 405, false);
    ck_assert_str_eq(r.headers, "Allow: GET, HEAD\r\n");
    is_answer(decide(&OPEN, false, "DELETE /websocket", UPGRADE_HEADERS), 405, false);
    /* The path is compared whole, without its query. */
    is_answer(decide(&OPEN, false, "GET /websocket2", UPGRADE_HEADERS), 404, false);
}
END_TEST

START_TEST(page_for_root_and_for_a_browser_at_the_endpoint)
{
    struct wse_route r = decide(&OPEN, false, "GET /", "");
    ck_assert_int_eq(r.kind, WSE_ROUTE_PAGE);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.head);
    r = decide(&OPEN, false, "HEAD /", "");
    ck_assert_int_eq(r.kind, WSE_ROUTE_PAGE);
    ck_assert(r.head);
    r = decide(&OPEN, false, "GET /websocket", "Accept: text/html,*/*\r\n");
    ck_assert_int_eq(r.kind, WSE_ROUTE_PAGE);
    /* A HEAD never upgrades: the page, as the same GET without Upgrade. */
    r = decide(&OPEN, false, "HEAD /", UPGRADE_HEADERS);
    ck_assert_int_eq(r.kind, WSE_ROUTE_PAGE);
    ck_assert(r.head);
}
END_TEST

START_TEST(endpoint_without_upgrade_is_426)
{
    struct wse_route r = decide(&OPEN, false, "GET /websocket", "");
    is_answer(r, 426, false);
    ck_assert_ptr_nonnull(strstr(r.headers, "Upgrade: websocket\r\n"));
    ck_assert_ptr_nonnull(strstr(r.headers, "Sec-WebSocket-Version: 13\r\n"));
    is_answer(decide(&OPEN, false, "HEAD /websocket", UPGRADE_HEADERS), 426, true);
}
END_TEST

START_TEST(upgrade_and_its_refusals)
{
    struct wse_route r = decide(&OPEN, false, "GET /websocket?x=1", UPGRADE_HEADERS);
    ck_assert_int_eq(r.kind, WSE_ROUTE_UPGRADE);
    ck_assert_int_eq(r.status, 101);
    /* A draining worker still upgrades what it accepted. */
    ck_assert_int_eq(decide(&OPEN, true, "GET /websocket", UPGRADE_HEADERS).kind,
                     WSE_ROUTE_UPGRADE);
    /* An upgrade of / when the endpoint is elsewhere. */
    is_answer(decide(&OPEN, false, "GET /", UPGRADE_HEADERS), 404, false);
    /* The endpoint may be / itself. */
    struct wse_route_cfg at_root = {.path = "/"};
    ck_assert_int_eq(decide(&at_root, false, "GET /", UPGRADE_HEADERS).kind, WSE_ROUTE_UPGRADE);
    /* A bad version: 426 with the version we speak. */
    r = decide(&OPEN, false, "GET /websocket",
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n");
    is_answer(r, 426, false);
    ck_assert_str_eq(r.headers, "Sec-WebSocket-Version: 13\r\n");
    /* No key: 400, no extra header. */
    r = decide(&OPEN, false, "GET /websocket",
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    is_answer(r, 400, false);
    ck_assert_ptr_null(r.headers);
    ck_assert(!r.origin_refused);
}
END_TEST

START_TEST(origin_policy)
{
    /* Without --allow-origin, any Origin or none. */
    ck_assert_int_eq(decide(&OPEN, false, "GET /websocket",
                            UPGRADE_HEADERS "Origin: https://evil.example\r\n").kind,
                     WSE_ROUTE_UPGRADE);
    /* Listed, compared without regard to ASCII case. */
    ck_assert_int_eq(decide(&LISTED, false, "GET /websocket",
                            UPGRADE_HEADERS "Origin: HTTPS://App.Example\r\n").kind,
                     WSE_ROUTE_UPGRADE);
    ck_assert_int_eq(decide(&LISTED, false, "GET /websocket",
                            UPGRADE_HEADERS "Origin: http://other.example:8080\r\n").kind,
                     WSE_ROUTE_UPGRADE);
    /* Not listed, a prefix of a listed one, or absent: 403, to be logged. */
    struct wse_route r = decide(&LISTED, false, "GET /websocket",
                                UPGRADE_HEADERS "Origin: https://evil.example\r\n");
    is_answer(r, 403, false);
    ck_assert(r.origin_refused);
    r = decide(&LISTED, false, "GET /websocket", UPGRADE_HEADERS "Origin: https://app.exampl\r\n");
    ck_assert(r.origin_refused);
    r = decide(&LISTED, false, "GET /websocket", UPGRADE_HEADERS);
    ck_assert(r.origin_refused);
    /* The server's own page (Origin names the Host, an address) connects back. */
    ck_assert_int_eq(decide(&LISTED, false, "GET /websocket",
                            UPGRADE_HEADERS "Origin: http://127.0.0.1:8000\r\n").kind,
                     WSE_ROUTE_UPGRADE);
    parse("GET /websocket", UPGRADE_HEADERS "Origin: http://127.0.0.1:8001\r\n");
    ck_assert(!wse_route_origin_allowed(&req, text, &LISTED));
    ck_assert(wse_route_origin_allowed(&req, text, &OPEN));
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("route");

    tcase_add_test(tc, healthz_answers_and_says_draining);
    tcase_add_test(tc, unknown_path_and_method);
    tcase_add_test(tc, page_for_root_and_for_a_browser_at_the_endpoint);
    tcase_add_test(tc, endpoint_without_upgrade_is_426);
    tcase_add_test(tc, upgrade_and_its_refusals);
    tcase_add_test(tc, origin_policy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(route_suite());
}
