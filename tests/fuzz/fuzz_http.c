/*
 * fuzz_http.c - libFuzzer target for the upgrade-request parser and the
 * handshake built on it.
 *
 * Oracles beyond the sanitizers:
 *   - differential: the input parsed whole and fed one byte at a time (the
 *     buffer growing by one byte per call) must give the same verdict,
 *     status, length and every span and flag; all calls before the verdict
 *     must say WSE_AGAIN and have consumed everything so far;
 *   - every span lies within the parsed header block;
 *   - the statuses are the documented ones only;
 *   - a request wse_handshake_check() accepts yields a 28-character accept
 *     and a 101 response;
 *   - the own-origin test and the log quoting of Origin and Host read only
 *     their spans (ASan) and the quoting stays within its buffer, printable.
 * Limits are small enough that 431 is reachable with libFuzzer's default
 * input sizes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "handshake.h"
#include "http.h"

static const struct wse_http_limits LIM = { 1024, 16 };

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static void same_span(struct wse_span a, struct wse_span b)
{
    CHECK(a.off == b.off && a.len == b.len);
}

static void same_result(const struct wse_http_req *a, const struct wse_http_req *b)
{
    CHECK(a->parsed == b->parsed);
    CHECK(a->status == b->status);
    CHECK(a->method == b->method);
    CHECK(a->version_major == b->version_major);
    CHECK(a->version_minor == b->version_minor);
    CHECK(a->flags == b->flags);
    CHECK(a->nheaders == b->nheaders);
    same_span(a->method_name, b->method_name);
    same_span(a->path, b->path);
    same_span(a->query, b->query);
    same_span(a->host, b->host);
    same_span(a->origin, b->origin);
    same_span(a->key, b->key);
    same_span(a->protocol, b->protocol);
    CHECK(a->n_extensions == b->n_extensions && a->n_extensions <= WSE_HTTP_EXT_LINES);
    for (size_t i = 0; i < a->n_extensions; i++)
        same_span(a->extensions[i], b->extensions[i]);
}

static void span_within(struct wse_span s, size_t parsed)
{
    CHECK((size_t)s.off + s.len <= parsed);
}

static void spans_within(const struct wse_http_req *r)
{
    span_within(r->method_name, r->parsed);
    span_within(r->path, r->parsed);
    span_within(r->query, r->parsed);
    span_within(r->host, r->parsed);
    span_within(r->origin, r->parsed);
    span_within(r->key, r->parsed);
    span_within(r->protocol, r->parsed);
    for (size_t i = 0; i < r->n_extensions; i++)
        span_within(r->extensions[i], r->parsed);
}

static int parse_bytewise(const char *buf, size_t size, struct wse_http_req *req)
{
    int rc;

    wse_http_init(req);
    rc = wse_http_parse(req, buf, 0, &LIM);
    CHECK(rc == WSE_AGAIN);
    for (size_t k = 1; k <= size && rc == WSE_AGAIN; k++) {
        rc = wse_http_parse(req, buf, k, &LIM);
        if (rc == WSE_AGAIN)
            CHECK(req->parsed == k);
    }
    return rc;
}

static void exercise_handshake(const struct wse_http_req *req, const char *buf)
{
    int st = wse_handshake_check(req, buf);
    char accept[WSE_ACCEPT_LEN + 1];
    char out[2048];

    CHECK(st == 0 || st == 400 || st == 405 || st == 426);
    if (st != 0)
        return;
    CHECK(req->key.len == 24);
    wse_handshake_accept(wse_span_ptr(buf, req->key), req->key.len, accept);
    CHECK(strlen(accept) == WSE_ACCEPT_LEN);
    /* Echoing the client's whole protocol list is not what a server does,
     * but it exercises the optional header with arbitrary valid bytes. */
    size_t n = wse_handshake_response(out, sizeof(out), wse_span_ptr(buf, req->key),
                                      req->key.len, wse_span_ptr(buf, req->protocol),
                                      req->protocol.len);
    CHECK(n > 0 && memcmp(out, "HTTP/1.1 101 ", 13) == 0);
}

/* What conn.c does with Origin and Host when --allow-origin refuses one. */
static void exercise_origin(const struct wse_http_req *req, const char *buf)
{
    char out[40];

    (void)wse_origin_is_own(wse_span_ptr(buf, req->origin), req->origin.len,
                            wse_span_ptr(buf, req->host), req->host.len);
    wse_http_quote(out, sizeof out, wse_span_ptr(buf, req->origin), req->origin.len);
    size_t n = strlen(out);
    CHECK(n < sizeof out && out[0] == '"');
    for (size_t i = 0; i < n; i++)
        CHECK(out[i] >= 0x20 && out[i] < 0x7F);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct wse_http_req whole, inc;

    wse_http_init(&whole);
    int rc = wse_http_parse(&whole, buf, size, &LIM);
    CHECK(rc == WSE_OK || rc == WSE_AGAIN || rc == WSE_FAIL);
    CHECK(parse_bytewise(buf, size, &inc) == rc);
    same_result(&whole, &inc);
    /* A verdict sticks. */
    CHECK(wse_http_parse(&whole, buf, size, &LIM) == rc);

    CHECK(whole.parsed <= size && whole.parsed <= LIM.max_header_bytes);
    if (rc == WSE_FAIL)
        CHECK(whole.status == 400 || whole.status == 431);
    if (rc != WSE_OK)
        return 0;
    CHECK(whole.parsed >= 4 && memcmp(buf + whole.parsed - 4, "\r\n\r\n", 4) == 0);
    spans_within(&whole);
    exercise_handshake(&whole, buf);
    exercise_origin(&whole, buf);
    return 0;
}
