/*
 * test_http.c - the incremental upgrade-request parser and the response
 * writer (http.h).
 *
 * Every request below, valid or not, goes through parse_both(): parsed whole
 * and fed one byte at a time (the buffer growing by one byte per call), the
 * two must agree on every result field, and every call before the verdict
 * must have said WSE_AGAIN.  The guard-page tests put each prefix right
 * before a PROT_NONE page so any read past len crashes the test.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "common.h"
#include "http.h"

#define S(lit) lit, sizeof(lit) - 1

static const struct wse_http_limits LIM = { 8192, 64 };

/* ---- helpers ---- */

static void assert_same_result(const struct wse_http_req *a, const struct wse_http_req *b)
{
    ck_assert_uint_eq(a->parsed, b->parsed);
    ck_assert_uint_eq(a->status, b->status);
    ck_assert_uint_eq(a->method, b->method);
    ck_assert_uint_eq(a->version_major, b->version_major);
    ck_assert_uint_eq(a->version_minor, b->version_minor);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert_uint_eq(a->nheaders, b->nheaders);
    const struct wse_span *sa[] = { &a->method_name, &a->path, &a->query, &a->host,
                                    &a->origin, &a->key, &a->protocol };
    const struct wse_span *sb[] = { &b->method_name, &b->path, &b->query, &b->host,
                                    &b->origin, &b->key, &b->protocol };
    for (size_t i = 0; i < countof(sa); i++) {
        ck_assert_uint_eq(sa[i]->off, sb[i]->off);
        ck_assert_uint_eq(sa[i]->len, sb[i]->len);
    }
    ck_assert_uint_eq(a->n_extensions, b->n_extensions);
    for (size_t i = 0; i < a->n_extensions; i++) {
        ck_assert_uint_eq(a->extensions[i].off, b->extensions[i].off);
        ck_assert_uint_eq(a->extensions[i].len, b->extensions[i].len);
    }
}

/* Feeds buf[0..n) one byte at a time; every call before the verdict must be AGAIN. */
static int parse_bytewise(const char *buf, size_t n, const struct wse_http_limits *lim,
                          struct wse_http_req *req)
{
    int rc = WSE_AGAIN;

    wse_http_init(req);
    ck_assert_int_eq(wse_http_parse(req, buf, 0, lim), WSE_AGAIN);
    for (size_t k = 1; k <= n && rc == WSE_AGAIN; k++) {
        rc = wse_http_parse(req, buf, k, lim);
        /* Everything so far consumed: the next call starts at the new byte. */
        if (rc == WSE_AGAIN)
            ck_assert_uint_eq(req->parsed, k);
    }
    return rc;
}

/* Parses whole and byte by byte, checks they agree; the whole result in *req. */
static int parse_both(const char *buf, size_t n, const struct wse_http_limits *lim,
                      struct wse_http_req *req)
{
    struct wse_http_req inc;

    wse_http_init(req);
    int rc = wse_http_parse(req, buf, n, lim);
    int rc_inc = parse_bytewise(buf, n, lim, &inc);
    ck_assert_int_eq(rc, rc_inc);
    assert_same_result(req, &inc);
    /* A finished parser keeps its verdict. */
    if (rc != WSE_AGAIN)
        ck_assert_int_eq(wse_http_parse(req, buf, n, lim), rc);
    return rc;
}

static void assert_span(const char *buf, struct wse_span s, const char *want)
{
    if (!want) {
        ck_assert_uint_eq(s.off, 0);
        ck_assert_uint_eq(s.len, 0);
        return;
    }
    ck_assert_uint_eq(s.len, strlen(want));
    ck_assert(memcmp(wse_span_ptr(buf, s), want, s.len) == 0);
}

/* ---- valid requests ---- */

struct valid_case {
    const char *name;
    const char *req;
    uint8_t method;
    uint8_t vmaj, vmin;
    uint16_t flags;
    uint16_t nheaders;
    const char *method_name, *path, *query, *origin, *key, *protocol, *extensions;
};

#define WS_FLAGS (WSE_HTTP_HOST | WSE_HTTP_UPGRADE_WS | WSE_HTTP_CONN_UPGRADE | \
                  WSE_HTTP_VERSION_SEEN | WSE_HTTP_VERSION_13)

static const struct valid_case valid[] = {
    { "chrome",
      "GET /chat?room=1&x=2 HTTP/1.1\r\n"
      "Host: example.com:8000\r\n"
      "Connection: Upgrade\r\n"
      "Pragma: no-cache\r\n"
      "Cache-Control: no-cache\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36\r\n"
      "Upgrade: websocket\r\n"
      "Origin: http://example.com\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Accept-Language: en-US,en;q=0.9\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1, WS_FLAGS, 12,
      "GET", "/chat", "room=1&x=2", "http://example.com", "dGhlIHNhbXBsZSBub25jZQ==", NULL,
      "permessage-deflate; client_max_window_bits" },
    { "firefox",
      "GET /websocket HTTP/1.1\r\n"
      "Host: localhost:8000\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
      "Accept: */*\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Origin: http://localhost:8000\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate\r\n"
      "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "Sec-Fetch-Dest: empty\r\n"
      "Pragma: no-cache\r\n"
      "Upgrade: websocket\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1, WS_FLAGS, 13,
      "GET", "/websocket", NULL, "http://localhost:8000", "x3JJHMbDL1EzLkh9GBhXDw==", NULL,
      "permessage-deflate" },
    { "python-websockets",
      "GET /websocket HTTP/1.1\r\n"
      "Host: localhost:8000\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "User-Agent: Python/3.11 websockets/10.4\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1, WS_FLAGS, 7,
      "GET", "/websocket", NULL, NULL, "x3JJHMbDL1EzLkh9GBhXDw==", NULL,
      "permessage-deflate; client_max_window_bits" },
    { "node-ws",
      "GET /websocket HTTP/1.1\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
      "Connection: Upgrade\r\n"
      "Upgrade: websocket\r\n"
      "Sec-WebSocket-Protocol: chat, superchat\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "Host: 127.0.0.1:8000\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1, WS_FLAGS, 7,
      "GET", "/websocket", NULL, NULL, "AQIDBAUGBwgJCgsMDQ4PEA==", "chat, superchat",
      "permessage-deflate; client_max_window_bits" },
    { "browser-page",
      "GET /index.html? HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_HOST | WSE_HTTP_ACCEPT_HTML, 2,
      "GET", "/index.html", "", NULL, NULL, NULL, NULL },
    { "minimal-http10",
      "GET / HTTP/1.0\r\n\r\n",
      WSE_HTTP_GET, 1, 0, 0, 0,
      "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "other-method",
      "M-SEARCH /a/b/c?x?y=1#frag HTTP/9.7\r\nHOST: h\r\n\r\n",
      WSE_HTTP_OTHER, 9, 7, WSE_HTTP_HOST, 1,
      "M-SEARCH", "/a/b/c", "x?y=1#frag", NULL, NULL, NULL, NULL },
    { "head",
      "HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
      WSE_HTTP_HEAD, 1, 1, WSE_HTTP_HOST, 1,
      "HEAD", "/healthz", NULL, NULL, NULL, NULL, NULL },
    { "lowercase-head-is-not-head",
      "head / HTTP/1.1\r\n\r\n",
      WSE_HTTP_OTHER, 1, 1, 0, 0,
      "head", "/", NULL, NULL, NULL, NULL, NULL },
    { "heads-is-not-head",
      "HEADS / HTTP/1.1\r\n\r\n",
      WSE_HTTP_OTHER, 1, 1, 0, 0,
      "HEADS", "/", NULL, NULL, NULL, NULL, NULL },
    { "lowercase-get-is-not-get",
      "get / HTTP/1.1\r\n\r\n",
      WSE_HTTP_OTHER, 1, 1, 0, 0,
      "get", "/", NULL, NULL, NULL, NULL, NULL },
    { "ows-and-case",
      "GET /x HTTP/1.1\r\n"
      "host:h\r\n"
      "UPGRADE:\t h2c , WebSocket \t\r\n"
      "connection: keep-alive\r\n"
      "CONNECTION:   close,,  UpGrAdE\r\n"
      "sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ==  \r\n"
      "sec-websocket-version:\t13\t\r\n"
      "origin: \t null \r\n"
      "sec-websocket-protocol:  chat, superchat \t\r\n"
      "Sec-WebSocket-Protocol: second\r\n"
      "X-Empty:\r\n"
      "X-Blank:   \t \r\n"
      "X-Obs-Text: caf\xc3\xa9 \x80\xff\r\n"
      "X!#$%&'*+-.^_`|~09azAZ: all tchars\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1, WS_FLAGS, 13,
      "GET", "/x", NULL, "null", "dGhlIHNhbXBsZSBub25jZQ==", "chat, superchat", NULL },
    { "not-quite-tokens",
      "GET / HTTP/1.1\r\n"
      "Host: a\r\n"
      "Host: b\r\n"
      "Upgrade: websocketx, web socket\r\n"
      "Connection: upgradex, keep-alive\r\n"
      "Sec-WebSocket-Key: first\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Version: 8\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Accept: application/json, TEXT/HTML;q=0.1\r\n"
      "\r\n",
      WSE_HTTP_GET, 1, 1,
      WSE_HTTP_HOST | WSE_HTTP_HOST_DUP | WSE_HTTP_KEY_DUP | WSE_HTTP_VERSION_SEEN |
          WSE_HTTP_ACCEPT_HTML,
      10, "GET", "/", NULL, NULL, "first", NULL, NULL },
    { "version-13-twice",
      "GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version:13\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_VERSION_SEEN | WSE_HTTP_VERSION_13, 2,
      "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "version-not-exactly-13",
      "GET / HTTP/1.1\r\nSec-WebSocket-Version: 13, 8\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_VERSION_SEEN, 1,
      "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "empty-key-is-seen",
      "GET / HTTP/1.1\r\nSec-WebSocket-Key:\r\nSec-WebSocket-Key: x\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_KEY_DUP, 2,
      "GET", "/", NULL, NULL, "", NULL, NULL },
    /* A body announced on the upgrade would be read as frames (smuggling). */
    { "content-length-0-is-no-body",
      "GET / HTTP/1.1\r\nContent-Length: 0 \r\n\r\n",
      WSE_HTTP_GET, 1, 1, 0, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "content-length-5",
      "GET / HTTP/1.1\r\ncontent-length: 5\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "content-length-00",
      "GET / HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "content-length-list",
      "GET / HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "content-length-0-then-7",
      "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 2, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "content-length-empty",
      "GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "transfer-encoding",
      "GET / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "transfer-encoding-empty",
      "GET / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
      WSE_HTTP_GET, 1, 1, WSE_HTTP_BODY, 1, "GET", "/", NULL, NULL, NULL, NULL, NULL },
    { "content-length-lookalike",
      "GET / HTTP/1.1\r\nContent-Lengths: 5\r\nX-Content-Length: 5\r\n\r\n",
      WSE_HTTP_GET, 1, 1, 0, 2, "GET", "/", NULL, NULL, NULL, NULL, NULL },
};

static void check_valid(const struct valid_case *c, const struct wse_http_req *req)
{
    const char *b = c->req;

    ck_assert_uint_eq(req->parsed, strlen(c->req));
    ck_assert_uint_eq(req->method, c->method);
    ck_assert_uint_eq(req->version_major, c->vmaj);
    ck_assert_uint_eq(req->version_minor, c->vmin);
    ck_assert_uint_eq(req->flags, c->flags);
    ck_assert_uint_eq(req->nheaders, c->nheaders);
    assert_span(b, req->method_name, c->method_name);
    assert_span(b, req->path, c->path);
    if (c->query)
        assert_span(b, req->query, c->query);
    else
        ck_assert_uint_eq(req->query.len, 0);
    assert_span(b, req->origin, c->origin);
    assert_span(b, req->key, c->key);
    assert_span(b, req->protocol, c->protocol);
    if (c->extensions) {
        ck_assert_uint_eq(req->n_extensions, 1);
        assert_span(b, req->extensions[0], c->extensions);
    } else {
        ck_assert_uint_eq(req->n_extensions, 0);
    }
}

START_TEST(test_valid)
{
    const struct valid_case *c = &valid[_i];
    struct wse_http_req req;

    ck_assert_msg(parse_both(c->req, strlen(c->req), &LIM, &req) == WSE_OK, "%s", c->name);
    check_valid(c, &req);
}
END_TEST

/* Bytes after the blank line already belong to the WebSocket stream. */
START_TEST(test_trailing_bytes_untouched)
{
    const struct valid_case *c = &valid[_i];
    size_t n = strlen(c->req);
    char buf[2048];
    static const char tail[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58 garbage\n\r";
    struct wse_http_req req;

    ck_assert_uint_lt(n + sizeof(tail), sizeof(buf));
    memcpy(buf, c->req, n);
    memcpy(buf + n, tail, sizeof(tail));
    for (size_t extra = 1; extra <= sizeof(tail); extra++) {
        ck_assert_int_eq(parse_both(buf, n + extra, &LIM, &req), WSE_OK);
        ck_assert_uint_eq(req.parsed, n);
    }
    check_valid(c, &req);
}
END_TEST

/* The Host value: trimmed, the first line's when repeated, absent as {0, 0}. */
START_TEST(test_host_span)
{
    static const struct { const char *req, *host; } cases[] = {
        { "GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n", "127.0.0.1:8000" },
        { "GET / HTTP/1.1\r\nhost:\t[::1]:80 \t\r\n\r\n", "[::1]:80" },
        { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "a" },
        { "GET / HTTP/1.1\r\nHost:\r\nHost: b\r\n\r\n", "" },
        { "GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", NULL },
    };
    struct wse_http_req req;

    for (size_t i = 0; i < countof(cases); i++) {
        const char *b = cases[i].req;
        ck_assert_int_eq(parse_both(b, strlen(b), &LIM, &req), WSE_OK);
        if (cases[i].host && !cases[i].host[0]) {
            ck_assert_uint_ne(req.host.off, 0);     /* present, if empty */
            ck_assert_uint_eq(req.host.len, 0);
        } else {
            assert_span(b, req.host, cases[i].host);
        }
    }
}
END_TEST

/* ---- syntax errors: all 400 ---- */

struct bad_case {
    const char *name;
    const char *req;
    size_t len;         /* literals may hold NUL bytes */
    uint16_t status;
};

#define BAD(name, lit, status) { name, lit, sizeof(lit) - 1, status }
static const struct bad_case bad[] = {
    BAD("empty method", " / HTTP/1.1\r\n\r\n", 400),
    BAD("leading CRLF", "\r\nGET / HTTP/1.1\r\n\r\n", 400),
    BAD("method non-tchar", "GE(T / HTTP/1.1\r\n\r\n", 400),
    BAD("method then tab", "GET\t/ HTTP/1.1\r\n\r\n", 400),
    BAD("two spaces", "GET  / HTTP/1.1\r\n\r\n", 400),
    BAD("absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", 400),
    BAD("asterisk-form", "OPTIONS * HTTP/1.1\r\n\r\n", 400),
    BAD("empty target", "GET  HTTP/1.1\r\n\r\n", 400),
    BAD("CTL in path", "GET /a\x01 HTTP/1.1\r\n\r\n", 400),
    BAD("NUL in path", "GET /a\0b HTTP/1.1\r\n\r\n", 400),
    BAD("DEL in query", "GET /a?\x7f HTTP/1.1\r\n\r\n", 400),
    BAD("obs-text in path", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400),
    BAD("tab in query", "GET /?a\tb HTTP/1.1\r\n\r\n", 400),
    BAD("no version", "GET /\r\n\r\n", 400),
    BAD("no version after space", "GET / \r\n\r\n", 400),
    BAD("lowercase http", "GET / http/1.1\r\n\r\n", 400),
    BAD("HTTPS", "GET / HTTPS/1.1\r\n\r\n", 400),
    BAD("two-digit major", "GET / HTTP/11.1\r\n\r\n", 400),
    BAD("two-digit minor", "GET / HTTP/1.11\r\n\r\n", 400),
    BAD("no minor", "GET / HTTP/1\r\n\r\n", 400),
    BAD("letter minor", "GET / HTTP/1.a\r\n\r\n", 400),
    BAD("space after version", "GET / HTTP/1.1 \r\n\r\n", 400),
    BAD("request line bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    BAD("request line CR without LF", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    BAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    BAD("empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400),
    BAD("no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400),
    BAD("name non-tchar", "GET / HTTP/1.1\r\nX@Y: a\r\n\r\n", 400),
    BAD("name obs-text", "GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n", 400),
    BAD("obs-fold SP", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400),
    BAD("obs-fold HTAB", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400),
    BAD("first header folded", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    BAD("CTL in value", "GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", 400),
    BAD("NUL in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 400),
    BAD("DEL in value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400),
    BAD("ESC in OWS", "GET / HTTP/1.1\r\nX: \x1b\r\n\r\n", 400),
    BAD("header bare LF", "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", 400),
    BAD("header CR without LF", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400),
    BAD("empty value bare LF", "GET / HTTP/1.1\r\nX:\n\r\n", 400),
    BAD("blank line bare LF", "GET / HTTP/1.1\r\nX: a\r\n\n", 400),
    BAD("blank line CR CR", "GET / HTTP/1.1\r\nX: a\r\n\r\r", 400),
    BAD("bare LF after request line", "GET / HTTP/1.1\r\n\n", 400),
};

/*
 * Every Sec-WebSocket-Extensions line is kept, in order, up to
 * WSE_HTTP_EXT_LINES; more are flagged, and other headers between them do
 * not disturb them (the offers of all lines form one list, RFC 7230 3.2.2).
 */
START_TEST(test_extensions_lines)
{
    static const char buf[] =
        "GET / HTTP/1.1\r\n"
        "Host: h\r\n"
        "Sec-WebSocket-Extensions: x-one\r\n"
        "X-Other: y\r\n"
        "sec-websocket-extensions:  permessage-deflate; client_max_window_bits  \r\n"
        "Sec-WebSocket-Extensions:\r\n"
        "Sec-WebSocket-Extensions: a, b\r\n"
        "Sec-WebSocket-Extensions: fifth\r\n"
        "\r\n";
    struct wse_http_req req;

    ck_assert_int_eq(parse_both(buf, sizeof buf - 1, &LIM, &req), WSE_OK);
    ck_assert_uint_eq(req.n_extensions, 4);
    assert_span(buf, req.extensions[0], "x-one");
    assert_span(buf, req.extensions[1], "permessage-deflate; client_max_window_bits");
    ck_assert_uint_eq(req.extensions[2].len, 0);
    ck_assert_uint_ne(req.extensions[2].off, 0);
    assert_span(buf, req.extensions[3], "a, b");
    ck_assert(req.flags & WSE_HTTP_EXT_MORE);

    static const char four[] =
        "GET / HTTP/1.1\r\nSec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions: b\r\n\r\n";
    ck_assert_int_eq(parse_both(four, sizeof four - 1, &LIM, &req), WSE_OK);
    ck_assert_uint_eq(req.n_extensions, 2);
    assert_span(four, req.extensions[1], "b");
    ck_assert(!(req.flags & WSE_HTTP_EXT_MORE));
}
END_TEST

START_TEST(test_bad)
{
    const struct bad_case *c = &bad[_i];
    size_t n = c->len;
    struct wse_http_req req;

    ck_assert_msg(parse_both(c->req, n, &LIM, &req) == WSE_FAIL, "%s", c->name);
    ck_assert_msg(req.status == c->status, "%s: status %u", c->name, req.status);
    ck_assert_uint_lt(req.parsed, n);   /* the offending byte */
}
END_TEST

/* ---- limits ---- */

START_TEST(test_limit_exact)
{
    const char *r = valid[_i].req;
    size_t n = strlen(r);
    struct wse_http_limits lim = { (uint16_t)n, 64 };
    struct wse_http_req req;

    ck_assert_int_eq(parse_both(r, n, &lim, &req), WSE_OK);
    ck_assert_uint_eq(req.parsed, n);
    /* With trailing bytes past the limit, too: they are not header bytes. */
    char buf[2048];
    memcpy(buf, r, n);
    memset(buf + n, 'x', 16);
    ck_assert_int_eq(parse_both(buf, n + 16, &lim, &req), WSE_OK);
    ck_assert_uint_eq(req.parsed, n);

    lim.max_header_bytes = (uint16_t)(n - 1);
    ck_assert_int_eq(parse_both(r, n, &lim, &req), WSE_FAIL);
    ck_assert_uint_eq(req.status, 431);
    ck_assert_uint_eq(req.parsed, n - 1);
}
END_TEST

START_TEST(test_limit_in_request_line)
{
    static const char r[] = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
    struct wse_http_limits lim = { 10, 64 };
    struct wse_http_req req;

    /* Exactly the limit so far: still a valid prefix. */
    ck_assert_int_eq(parse_both(r, 10, &lim, &req), WSE_AGAIN);
    /* One byte over: 431 at once, long before the line ends. */
    ck_assert_int_eq(parse_both(r, 11, &lim, &req), WSE_FAIL);
    ck_assert_uint_eq(req.status, 431);
    ck_assert_uint_eq(req.parsed, 10);
    ck_assert_int_eq(parse_both(r, sizeof(r) - 1, &lim, &req), WSE_FAIL);
    ck_assert_uint_eq(req.status, 431);
}
END_TEST

/* A syntax error within the limit is reported as such, not as 431. */
START_TEST(test_limit_syntax_first)
{
    static const char r[] = "GET /a\x01" "aaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
    struct wse_http_limits lim = { 10, 64 };
    struct wse_http_req req;

    ck_assert_int_eq(parse_both(r, sizeof(r) - 1, &lim, &req), WSE_FAIL);
    ck_assert_uint_eq(req.status, 400);
}
END_TEST

START_TEST(test_limit_zero)
{
    struct wse_http_limits lim = { 0, 0 };
    struct wse_http_req req;

    ck_assert_int_eq(parse_both(S("G"), &lim, &req), WSE_FAIL);
    ck_assert_uint_eq(req.status, 431);
    ck_assert_int_eq(parse_both("", 0, &lim, &req), WSE_AGAIN);
}
END_TEST

START_TEST(test_max_headers)
{
    static const char r[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    struct wse_http_limits lim = { 8192, 3 };
    struct wse_http_req req;

    ck_assert_int_eq(parse_both(S(r), &lim, &req), WSE_OK);
    ck_assert_uint_eq(req.nheaders, 3);
    lim.max_headers = 2;
    ck_assert_int_eq(parse_both(S(r), &lim, &req), WSE_FAIL);
    ck_assert_uint_eq(req.status, 431);
    /* Fails at the first byte of the third header line. */
    ck_assert_uint_eq(req.parsed, strstr(r, "C:") - r);
    lim.max_headers = 0;
    ck_assert_int_eq(parse_both(S("GET / HTTP/1.1\r\n\r\n"), &lim, &req), WSE_OK);
}
END_TEST

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Plain loops, no Check asserts inside: those cost a syscall each. */
static double time_bytewise(const char *buf, size_t n, const struct wse_http_limits *lim,
                            int *rc)
{
    struct wse_http_req req;
    double t0 = now();

    wse_http_init(&req);
    *rc = WSE_AGAIN;
    for (size_t k = 1; k <= n && *rc == WSE_AGAIN; k++)
        *rc = wse_http_parse(&req, buf, k, lim);
    return now() - t0;
}

static double time_whole(const char *buf, size_t n, const struct wse_http_limits *lim,
                         int reps)
{
    struct wse_http_req req;
    double t0 = now();

    for (int i = 0; i < reps; i++) {
        wse_http_init(&req);
        (void)wse_http_parse(&req, buf, n, lim);
    }
    return now() - t0;
}

/*
 * The largest block the limits allow (64 KiB - 1), fed one byte at a time,
 * against the cost of parsing it whole.  Linear resumption costs a few
 * whole parses (per-call overhead); rescanning from the line or buffer
 * start on each call costs about n/2 = 32000 of them.  The bound of 1000 is
 * a ratio, so it holds on slow machines and under sanitizers or valgrind.
 */
START_TEST(test_large_bytewise_is_linear)
{
    const size_t n = 65535;
    char *buf = malloc(n);
    struct wse_http_limits lim = { 65535, 1000 };
    struct wse_http_req req;
    size_t at = 0;

    ck_assert_ptr_nonnull(buf);
    at += (size_t)sprintf(buf, "GET /%0500d HTTP/1.1\r\n", 0);
    /* Header lines "X: vvv...\r\n" of up to 20000 bytes, none under 5. */
    size_t rest = n - at - 2;
    while (rest > 0) {
        size_t line = rest < 20000 ? rest : 20000;
        if (rest - line > 0 && rest - line < 5)
            line -= 5;
        memcpy(buf + at, "X: ", 3);
        memset(buf + at + 3, 'v', line - 5);
        memcpy(buf + at + line - 2, "\r\n", 2);
        at += line;
        rest -= line;
    }
    memcpy(buf + at, "\r\n", 2);
    at += 2;
    ck_assert_uint_eq(at, n);

    ck_assert_int_eq(parse_bytewise(buf, n, &lim, &req), WSE_OK);
    ck_assert_uint_eq(req.parsed, n);

    int rc;
    double bytewise = time_bytewise(buf, n, &lim, &rc);
    for (int i = 0; i < 2; i++) {   /* best of three: preemption only adds */
        double t = time_bytewise(buf, n, &lim, &rc);
        bytewise = t < bytewise ? t : bytewise;
    }
    ck_assert_int_eq(rc, WSE_OK);
    double whole = time_whole(buf, n, &lim, 1000);
    ck_assert_msg(bytewise < whole, "byte-at-a-time: %.6f s, 1000 whole parses: %.6f s",
                  bytewise, whole);
    free(buf);
}
END_TEST

/* ---- guard page: no byte at or past len is ever read ---- */

/* Every prefix, each parsed whole from a fresh struct, then all of it byte by byte. */
static void guard_check(const char *buf, size_t n, int final_rc)
{
    struct guard g = guard_map();
    struct wse_http_req req;

    for (size_t k = 0; k <= n; k++) {
        const char *at = guard_place(&g, buf, k);
        wse_http_init(&req);
        int rc = wse_http_parse(&req, at, k, &LIM);
        if (k < n && final_rc == WSE_OK)
            ck_assert_int_eq(rc, WSE_AGAIN);   /* every proper prefix is valid */
        if (k == n)
            ck_assert_int_eq(rc, final_rc);
    }
    const char *at = guard_place(&g, buf, n);
    ck_assert_int_eq(parse_bytewise(at, n, &LIM, &req), final_rc);
    guard_unmap(&g);
}

START_TEST(test_guard_valid)
{
    guard_check(valid[_i].req, strlen(valid[_i].req), WSE_OK);
}
END_TEST

START_TEST(test_guard_bad)
{
    const struct bad_case *c = &bad[_i];

    guard_check(c->req, c->len, WSE_FAIL);
}
END_TEST

/* ---- response writer ---- */

START_TEST(test_response_default_body)
{
    char out[512];
    static const char want[] =
        "HTTP/1.1 404 Not Found\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 10\r\n"
        "Connection: close\r\n"
        "\r\n"
        "Not Found\n";

    size_t n = wse_http_response(out, sizeof(out), 404, NULL, NULL, NULL, 0);
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(out, want, n) == 0);
}
END_TEST

START_TEST(test_response_full)
{
    char out[512];
    static const char body[] = "<h1>hi\0there</h1>";   /* binary-safe: has a NUL */
    static const char want[] =
        "HTTP/1.1 426 Upgrade Required\r\n"
        "Content-Type: text/html\r\n"
        "Content-Length: 17\r\n"
        "Connection: close\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "X-A: b\r\n"
        "\r\n"
        "<h1>hi\0there</h1>";

    size_t n = wse_http_response(out, sizeof(out), 426,
                                 "Sec-WebSocket-Version: 13\r\nX-A: b\r\n", "text/html",
                                 body, sizeof(body) - 1);
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(out, want, n) == 0);
}
END_TEST

START_TEST(test_response_empty_body)
{
    char out[256];
    static const char want[] =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n"
        "\r\n";

    size_t n = wse_http_response(out, sizeof(out), 200, NULL, NULL, "", 0);
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(out, want, n) == 0);
}
END_TEST

/* Every capacity below the exact size gives 0 and writes nothing past cap. */
START_TEST(test_response_cap_too_small)
{
    char out[512];
    size_t full = wse_http_response(out, sizeof(out), 431, "X: y\r\n", NULL, NULL, 0);

    ck_assert_uint_gt(full, 0);
    for (size_t cap = 0; cap < full; cap++) {
        memset(out, '#', sizeof(out));
        ck_assert_uint_eq(wse_http_response(out, cap, 431, "X: y\r\n", NULL, NULL, 0), 0);
        for (size_t i = cap; i < sizeof(out); i++)
            ck_assert_int_eq(out[i], '#');
    }
    ck_assert_uint_eq(wse_http_response(out, full, 431, "X: y\r\n", NULL, NULL, 0), full);
}
END_TEST

START_TEST(test_response_bad_status)
{
    char out[256];

    ck_assert_uint_eq(wse_http_response(out, sizeof(out), 99, NULL, NULL, NULL, 0), 0);
    ck_assert_uint_eq(wse_http_response(out, sizeof(out), 1000, NULL, NULL, NULL, 0), 0);
    ck_assert_uint_eq(wse_http_response(out, sizeof(out), -400, NULL, NULL, NULL, 0), 0);
}
END_TEST

START_TEST(test_reasons)
{
    static const struct { int status; const char *reason; } r[] = {
        { 101, "Switching Protocols" }, { 200, "OK" }, { 400, "Bad Request" },
        { 403, "Forbidden" }, { 404, "Not Found" }, { 405, "Method Not Allowed" },
        { 426, "Upgrade Required" }, { 431, "Request Header Fields Too Large" },
        { 500, "Internal Server Error" }, { 503, "Service Unavailable" },
    };

    for (size_t i = 0; i < countof(r); i++)
        ck_assert_str_eq(wse_http_reason(r[i].status), r[i].reason);
    ck_assert_ptr_nonnull(wse_http_reason(799));
}
END_TEST

/* A HEAD's answer is the GET's head: up to and including the blank line. */
START_TEST(test_head_len)
{
    char out[512];
    size_t n = wse_http_response(out, sizeof(out), 200, "X-A: b\r\n", NULL, "ok\n", 3);
    static const char head[] =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 3\r\n"
        "Connection: close\r\n"
        "X-A: b\r\n"
        "\r\n";

    ck_assert_uint_eq(wse_http_head_len(out, n), sizeof(head) - 1);
    ck_assert(memcmp(out, head, sizeof(head) - 1) == 0);
    /* A body holding CRLFCRLF does not move the cut. */
    n = wse_http_response(out, sizeof(out), 200, "X-A: b\r\n", NULL, "\r\n\r\n", 4);
    ck_assert_uint_eq(wse_http_head_len(out, n), sizeof(head) - 1);
    /* No blank line: all of it (never past len). */
    ck_assert_uint_eq(wse_http_head_len("HTTP/1.1 200 OK\r\n\r", 18), 18);
    ck_assert_uint_eq(wse_http_head_len("", 0), 0);
}
END_TEST

START_TEST(test_quote)
{
    char out[64];

    ck_assert_str_eq(wse_http_quote(out, sizeof out, S("https://a.example")),
                     "\"https://a.example\"");
    ck_assert_str_eq(wse_http_quote(out, sizeof out, "", 0), "\"\"");
    /* Quote, backslash, controls, DEL and obs-text are escaped; NUL too. */
    ck_assert_str_eq(wse_http_quote(out, sizeof out, S("a\"b\\c\td\r\n\x7f\x80\xff\0e")),
                     "\"a\\x22b\\x5cc\\x09d\\x0d\\x0a\\x7f\\x80\\xff\\x00e\"");
}
END_TEST

/* Too long: cut at a whole escape, marked, and never past cap. */
START_TEST(test_quote_cut)
{
    char value[300];
    char out[40];

    memset(value, 'a', sizeof value);
    for (size_t cap = 8; cap <= sizeof out; cap++) {
        memset(out, '#', sizeof out);
        wse_http_quote(out, cap, value, sizeof value);
        size_t n = strlen(out);
        ck_assert_uint_eq(n, cap - 1);          /* all of cap used, NUL last */
        ck_assert_str_eq(out + n - 4, "\"...");
        for (size_t i = cap; i < sizeof out; i++)
            ck_assert_int_eq(out[i], '#');
    }
    /* Exactly fitting: no mark ("aaaaa": 5 + 2 quotes + NUL = 8). */
    ck_assert_str_eq(wse_http_quote(out, 8, "aaaaa", 5), "\"aaaaa\"");
    ck_assert_str_eq(wse_http_quote(out, 8, "aaaaaa", 6), "\"aa\"...");
    /* An escape that does not fit whole is left out whole. */
    memset(value, 0x01, 10);
    wse_http_quote(out, 12, value, 10);
    ck_assert_str_eq(out, "\"\\x01\"...");
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, test_valid, 0, (int)countof(valid));
    tcase_add_loop_test(tc, test_trailing_bytes_untouched, 0, (int)countof(valid));
    tcase_add_loop_test(tc, test_bad, 0, (int)countof(bad));
    tcase_add_test(tc, test_host_span);
    tcase_add_test(tc, test_extensions_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_loop_test(tc, test_limit_exact, 0, (int)countof(valid));
    tcase_add_test(tc, test_limit_in_request_line);
    tcase_add_test(tc, test_limit_syntax_first);
    tcase_add_test(tc, test_limit_zero);
    tcase_add_test(tc, test_max_headers);
    tcase_add_test(tc, test_large_bytewise_is_linear);
    suite_add_tcase(s, tc);

    tc = tcase_create("guard");
    tcase_add_loop_test(tc, test_guard_valid, 0, (int)countof(valid));
    tcase_add_loop_test(tc, test_guard_bad, 0, (int)countof(bad));
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_test(tc, test_response_default_body);
    tcase_add_test(tc, test_response_full);
    tcase_add_test(tc, test_response_empty_body);
    tcase_add_test(tc, test_response_cap_too_small);
    tcase_add_test(tc, test_response_bad_status);
    tcase_add_test(tc, test_reasons);
    tcase_add_test(tc, test_head_len);
    tcase_add_test(tc, test_quote);
    tcase_add_test(tc, test_quote_cut);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
