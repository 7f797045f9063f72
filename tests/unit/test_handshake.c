/*
 * test_handshake.c - RFC 6455 opening handshake (handshake.h): the
 * Sec-WebSocket-Accept computation, the 101 response, and every verdict of
 * wse_handshake_check() with its exact status.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "handshake.h"
#include "http.h"

static const struct wse_http_limits LIM = { 8192, 64 };

/* ---- Sec-WebSocket-Accept ---- */

static const struct {
    const char *key, *accept;
} accept_vectors[] = {
    { "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },   /* RFC 6455 1.3 */
    { "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
    { "AQIDBAUGBwgJCgsMDQ4PEA==", "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=" },
    { "", "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=" },   /* not a valid key, still defined */
};

START_TEST(test_accept_vectors)
{
    char out[WSE_ACCEPT_LEN + 1];
    const char *key = accept_vectors[_i].key;

    memset(out, '#', sizeof(out));
    wse_handshake_accept(key, strlen(key), out);
    ck_assert_str_eq(out, accept_vectors[_i].accept);
}
END_TEST

/* Keys longer than any valid one still hash correctly (no length guard). */
START_TEST(test_accept_long_key)
{
    char key[100];
    char out[WSE_ACCEPT_LEN + 1];

    memset(key, 'a', sizeof(key));
    wse_handshake_accept(key, sizeof(key), out);
    ck_assert_str_eq(out, "+taVhj8zzaJPYE6HHo1ugamK/Ug=");
}
END_TEST

/* ---- 101 response ---- */

static const char SAMPLE_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

START_TEST(test_response_101)
{
    static const char want[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n";
    char out[256];

    size_t n = wse_handshake_response(out, sizeof(out), SAMPLE_KEY, 24, NULL, 0);
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(out, want, n) == 0);
    /* An empty protocol is no protocol. */
    n = wse_handshake_response(out, sizeof(out), SAMPLE_KEY, 24, "chat", 0);
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(out, want, n) == 0);
}
END_TEST

START_TEST(test_response_101_protocol)
{
    static const char want[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "\r\n";
    char out[256];

    /* protocol_len is honoured: "chatXYZ" contributes only "chat". */
    size_t n = wse_handshake_response(out, sizeof(out), SAMPLE_KEY, 24, "chatXYZ", 4);
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(out, want, n) == 0);
}
END_TEST

START_TEST(test_response_101_cap)
{
    char out[256];
    size_t full = wse_handshake_response(out, sizeof(out), SAMPLE_KEY, 24, "chat", 4);

    ck_assert_uint_gt(full, 0);
    for (size_t cap = 0; cap < full; cap++) {
        memset(out, '#', sizeof(out));
        ck_assert_uint_eq(wse_handshake_response(out, cap, SAMPLE_KEY, 24, "chat", 4), 0);
        for (size_t i = cap; i < sizeof(out); i++)
            ck_assert_int_eq(out[i], '#');
    }
    ck_assert_uint_eq(wse_handshake_response(out, full, SAMPLE_KEY, 24, "chat", 4), full);
}
END_TEST

START_TEST(test_response_101_injection)
{
    char out[256];

    ck_assert_uint_eq(wse_handshake_response(out, sizeof(out), SAMPLE_KEY, 24,
                                             "chat\r\nX: y", 11), 0);
    ck_assert_uint_eq(wse_handshake_response(out, sizeof(out), SAMPLE_KEY, 24, "a\nb", 3), 0);
}
END_TEST

/* ---- wse_handshake_check ---- */

/*
 * A request built from the RFC 6455 sample with one line replaced or
 * removed: each case names the header it changes (matched by prefix, up to
 * the colon) and its new line, "" to drop it, or NULL to change nothing.
 * Extra lines are appended before the blank line.
 */
struct check_case {
    const char *name;
    const char *request_line;   /* NULL: "GET /chat HTTP/1.1" */
    const char *replace;        /* header name to replace/drop, or NULL */
    const char *with;           /* its new line(s) without CRLF; "" drops it */
    const char *extra;          /* appended header lines, each with CRLF, or NULL */
    int status;
};

static const char *const base_headers[] = {
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Version: 13",
};

static const struct check_case checks[] = {
    { "rfc sample", NULL, NULL, NULL, NULL, 0 },
    { "non-GET", "POST /chat HTTP/1.1", NULL, NULL, NULL, 405 },
    { "lowercase get", "get /chat HTTP/1.1", NULL, NULL, NULL, 405 },
    /* 405 is decided first, before any other defect. */
    { "non-GET and HTTP/1.0", "PUT /chat HTTP/1.0", "Sec-WebSocket-Key", "", NULL, 405 },
    { "HTTP/1.0", "GET /chat HTTP/1.0", NULL, NULL, NULL, 400 },
    { "HTTP/0.9", "GET /chat HTTP/0.9", NULL, NULL, NULL, 400 },
    { "HTTP/2.0 is not below 1.1", "GET /chat HTTP/2.0", NULL, NULL, NULL, 0 },
    /* 400 comes before 426. */
    { "HTTP/1.0 and version 8", "GET /chat HTTP/1.0", "Sec-WebSocket-Version",
      "Sec-WebSocket-Version: 8", NULL, 400 },
    { "no Host", NULL, "Host", "", NULL, 400 },
    { "two Hosts", NULL, NULL, NULL, "Host: other.example.com\r\n", 400 },
    { "two identical Hosts", NULL, NULL, NULL, "host: server.example.com\r\n", 400 },
    { "no Upgrade", NULL, "Upgrade", "", NULL, 400 },
    { "Upgrade other", NULL, "Upgrade", "Upgrade: h2c", NULL, 400 },
    { "Upgrade websocketx", NULL, "Upgrade", "Upgrade: websocketx", NULL, 400 },
    { "Upgrade list", NULL, "Upgrade", "Upgrade: h2c, WebSocket", NULL, 0 },
    { "Upgrade two lines", NULL, "Upgrade", "Upgrade: h2c\r\nUpgrade: websocket", NULL, 0 },
    { "no Connection", NULL, "Connection", "", NULL, 400 },
    { "Connection keep-alive", NULL, "Connection", "Connection: keep-alive", NULL, 400 },
    { "Connection keep-alive, Upgrade", NULL, "Connection",
      "Connection: keep-alive, Upgrade", NULL, 0 },
    { "Connection upgradex", NULL, "Connection", "Connection: upgradex", NULL, 400 },
    { "Connection two lines", NULL, "Connection",
      "Connection: keep-alive\r\nconnection: UPGRADE", NULL, 0 },
    { "no key", NULL, "Sec-WebSocket-Key", "", NULL, 400 },
    { "empty key", NULL, "Sec-WebSocket-Key", "Sec-WebSocket-Key:", NULL, 400 },
    { "duplicate key", NULL, NULL, NULL,
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 400 },
    { "key of 15 bytes", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P", NULL, 400 },
    { "key of 17 bytes (24 chars)", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=", NULL, 400 },
    { "key of 18 bytes (24 chars, no padding)", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA", NULL, 400 },
    { "key of 23 chars", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=", NULL, 400 },
    { "key of 25 chars", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===", NULL, 400 },
    { "key with junk char", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==", NULL, 400 },
    { "key with inner space", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ=", NULL, 400 },
    { "key with obs-text", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ\xc3\xa9=", NULL, 400 },
    { "key url-safe alphabet", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: -_-_-_-_-_-_-_-_-_-__g==", NULL, 400 },
    { "key with + and /", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: +/+/+/+/+/+/+/+/+/+//g==", NULL, 0 },
    { "key non-canonical last char", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", NULL, 400 },
    { "key padding as data", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ=Q=", NULL, 400 },
    { "key surrounded by OWS", NULL, "Sec-WebSocket-Key",
      "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== \t", NULL, 0 },
    { "version 8", NULL, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8", NULL, 426 },
    { "version 13 then 8", NULL, NULL, NULL, "Sec-WebSocket-Version: 8\r\n", 426 },
    { "version 13 twice", NULL, NULL, NULL, "Sec-WebSocket-Version: 13\r\n", 0 },
    { "version list", NULL, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8", NULL,
      426 },
    { "version 013", NULL, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 013", NULL, 426 },
    { "no version", NULL, "Sec-WebSocket-Version", "", NULL, 426 },
    { "no Origin, no protocol", NULL, "Origin", "", NULL, 0 },
    { "Content-Length 0", NULL, NULL, NULL, "Content-Length: 0\r\n", 0 },
    { "Content-Length 5", NULL, NULL, NULL, "Content-Length: 5\r\n", 400 },
    { "Content-Length 0 then 5", NULL, NULL, NULL,
      "Content-Length: 0\r\nContent-Length: 5\r\n", 400 },
    { "Transfer-Encoding chunked", NULL, NULL, NULL, "Transfer-Encoding: chunked\r\n", 400 },
    { "Transfer-Encoding identity", NULL, NULL, NULL, "transfer-encoding: identity\r\n", 400 },
    /* 400 for the body comes before 426. */
    { "Transfer-Encoding and version 8", NULL, "Sec-WebSocket-Version",
      "Sec-WebSocket-Version: 8", "Transfer-Encoding: chunked\r\n", 400 },
};

/* Header line h is the one named name (its text up to ':')? */
static int names_header(const char *h, const char *name)
{
    size_t n = strlen(name);
    return strncmp(h, name, n) == 0 && h[n] == ':';
}

static size_t build_request(const struct check_case *c, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "%s\r\n",
                                 c->request_line ? c->request_line : "GET /chat HTTP/1.1");

    for (size_t i = 0; i < countof(base_headers); i++) {
        const char *line = base_headers[i];
        if (c->replace && names_header(line, c->replace))
            line = c->with;
        if (*line)
            at += (size_t)snprintf(buf + at, cap - at, "%s\r\n", line);
    }
    at += (size_t)snprintf(buf + at, cap - at, "%s\r\n", c->extra ? c->extra : "");
    ck_assert_uint_lt(at, cap);
    return at;
}

START_TEST(test_check)
{
    const struct check_case *c = &checks[_i];
    char buf[1024];
    size_t n = build_request(c, buf, sizeof(buf));
    struct wse_http_req req;

    wse_http_init(&req);
    ck_assert_msg(wse_http_parse(&req, buf, n, &LIM) == WSE_OK, "%s: parse", c->name);
    int st = wse_handshake_check(&req, buf);
    ck_assert_msg(st == c->status, "%s: got %d, want %d", c->name, st, c->status);
}
END_TEST

/* A passing request yields the sample's 101 from its own key span. */
START_TEST(test_check_then_respond)
{
    char buf[1024];
    size_t n = build_request(&checks[0], buf, sizeof(buf));
    struct wse_http_req req;
    char out[256];

    wse_http_init(&req);
    ck_assert_int_eq(wse_http_parse(&req, buf, n, &LIM), WSE_OK);
    ck_assert_int_eq(wse_handshake_check(&req, buf), 0);
    size_t len = wse_handshake_response(out, sizeof(out), wse_span_ptr(buf, req.key),
                                        req.key.len, NULL, 0);
    ck_assert_uint_gt(len, 0);
    ck_assert_ptr_nonnull(memmem(out, len, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                                 52));
}
END_TEST

/* ---- the server's own origin ---- */

static const struct {
    const char *origin, *host;
    bool own;
} own_cases[] = {
    /* The page's origin and the Host its WebSocket sends, as browsers make them. */
    { "http://127.0.0.1:8000", "127.0.0.1:8000", true },
    { "http://[::1]:8000", "[::1]:8000", true },
    { "http://[::ffff:127.0.0.1]:8000", "[::FFFF:127.0.0.1]:8000", true },
    { "http://localhost:8000", "localhost:8000", true },
    { "HTTP://LOCALHOST:8000", "localhost:8000", true },
    { "https://192.0.2.7", "192.0.2.7", true },
    /* Default ports: a missing one is the Origin scheme's. */
    { "http://192.0.2.7", "192.0.2.7:80", true },
    { "http://192.0.2.7:80", "192.0.2.7", true },
    { "https://192.0.2.7", "192.0.2.7:443", true },
    { "https://192.0.2.7:443", "192.0.2.7", true },
    { "https://192.0.2.7", "192.0.2.7:80", false },
    { "http://192.0.2.7", "192.0.2.7:443", false },
    { "http://192.0.2.7:8000", "192.0.2.7:8001", false },
    { "http://192.0.2.7:8000", "192.0.2.7", false },
    { "http://192.0.2.7:08000", "192.0.2.7:8000", true },
    /* Another host. */
    { "http://127.0.0.1:8000", "127.0.0.2:8000", false },
    { "http://[::1]:8000", "127.0.0.1:8000", false },
    { "http://localhost:8000", "127.0.0.1:8000", false },
    /* DNS names never count, equal or not: DNS rebinding makes them equal. */
    { "http://evil.example:8000", "evil.example:8000", false },
    { "https://echo.example.com", "echo.example.com", false },
    { "http://localhost.evil.example", "localhost.evil.example", false },
    { "http://localhost.:8000", "localhost.:8000", false },
    { "http://1.2.3.4.nip.io", "1.2.3.4.nip.io", false },
    { "http://1.2.3", "1.2.3", false },
    { "http://1.2.3.4.5", "1.2.3.4.5", false },
    { "http://1.2.3.256", "1.2.3.256", false },
    { "http://1.2.3.0004", "1.2.3.0004", false },
    { "http://[evil.example]", "[evil.example]", false },
    { "http://[]", "[]", false },
    /* Not an origin a browser sends for a page of ours. */
    { "null", "127.0.0.1:8000", false },
    { "", "127.0.0.1:8000", false },
    { "ws://127.0.0.1:8000", "127.0.0.1:8000", false },
    { "file://127.0.0.1", "127.0.0.1", false },
    { "chrome-extension://127.0.0.1", "127.0.0.1", false },
    { "http://127.0.0.1:8000/", "127.0.0.1:8000", false },
    { "http://127.0.0.1/", "127.0.0.1/", false },
    { "http://u@127.0.0.1", "u@127.0.0.1", false },
    { "http://", "", false },
    { "http://127.0.0.1:8000", "", false },
    /* Malformed ports and brackets. */
    { "http://127.0.0.1:", "127.0.0.1:", false },
    { "http://127.0.0.1:0", "127.0.0.1:0", false },
    { "http://127.0.0.1:65536", "127.0.0.1:65536", false },
    { "http://127.0.0.1:99999", "127.0.0.1:99999", false },
    { "http://127.0.0.1:123456", "127.0.0.1:123456", false },
    { "http://127.0.0.1:8x", "127.0.0.1:8x", false },
    { "http://127.0.0.1:-1", "127.0.0.1:-1", false },
    { "http://[::1]x", "[::1]x", false },
    { "http://[::1", "[::1", false },
    { "http://::1", "::1", false },
};

START_TEST(test_origin_is_own)
{
    const char *o = own_cases[_i].origin, *h = own_cases[_i].host;
    bool got = wse_origin_is_own(o, strlen(o), h, strlen(h));

    ck_assert_msg(got == own_cases[_i].own, "Origin %s, Host %s: got %d", o, h, got);
}
END_TEST

/* Spans of a larger buffer: nothing is read past the lengths given. */
START_TEST(test_origin_is_own_bounded)
{
    static const char buf[] = "http://127.0.0.1:80009127.0.0.1:80001";

    ck_assert(wse_origin_is_own(buf, 21, buf + 22, 14));
    ck_assert(!wse_origin_is_own(buf, 22, buf + 22, 14));
    ck_assert(!wse_origin_is_own(buf, 21, buf + 22, 15));
}
END_TEST

static Suite *handshake_suite(void)
{
    Suite *s = suite_create("handshake");
    TCase *tc = tcase_create("accept");

    tcase_add_loop_test(tc, test_accept_vectors, 0, (int)countof(accept_vectors));
    tcase_add_test(tc, test_accept_long_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_test(tc, test_response_101);
    tcase_add_test(tc, test_response_101_protocol);
    tcase_add_test(tc, test_response_101_cap);
    tcase_add_test(tc, test_response_101_injection);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_loop_test(tc, test_check, 0, (int)countof(checks));
    tcase_add_test(tc, test_check_then_respond);
    suite_add_tcase(s, tc);

    tc = tcase_create("origin");
    tcase_add_loop_test(tc, test_origin_is_own, 0, (int)countof(own_cases));
    tcase_add_test(tc, test_origin_is_own_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(handshake_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
