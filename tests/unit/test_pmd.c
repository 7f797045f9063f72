/*
 * test_pmd.c - permessage-deflate negotiation (pmd.h): the offer parser, the
 * server's choice and the response header.
 *
 * Every case goes through negotiate_all(): the lines fed whole, one byte per
 * call, and split at every single position must give the same verdict, the
 * same reason and the same agreement; the whole-line run is also checked
 * against the convenience wse_pmd_negotiate() over a parsed request.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "http.h"
#include "pmd.h"

#define MAXL 4

/* The server's defaults in these tests: full windows, takeover allowed. */
static const struct wse_pmd_cfg FULL = { 15, 15, true, true };
static const struct wse_pmd_cfg SMALL = { 10, 10, true, true };
static const struct wse_pmd_cfg NCT = { 15, 15, false, false };
static const struct wse_pmd_cfg EIGHT = { 8, 8, true, true };

enum split { WHOLE, BYTES, AT };

static bool run(const struct wse_pmd_cfg *cfg, const char *const *lines, size_t n,
                enum split how, size_t at, struct wse_pmd_agreed *a, enum wse_pmd_why *why)
{
    struct wse_pmd_parser p;

    wse_pmd_init(&p, cfg);
    for (size_t i = 0; i < n; i++) {
        const char *s = lines[i];
        size_t len = strlen(s);
        int rc = WSE_OK;
        if (how == WHOLE) {
            rc = wse_pmd_feed(&p, s, len);
        } else if (how == BYTES) {
            for (size_t k = 0; k < len && rc == WSE_OK; k++)
                rc = wse_pmd_feed(&p, s + k, 1);
        } else {
            size_t cut = at < len ? at : len;
            rc = wse_pmd_feed(&p, s, cut);
            if (rc == WSE_OK)
                rc = wse_pmd_feed(&p, s + cut, len - cut);
        }
        if (rc == WSE_OK)
            rc = wse_pmd_end_line(&p);
        if (rc != WSE_OK) {
            /* A failure sticks. */
            ck_assert_int_eq(wse_pmd_feed(&p, "x", 1), WSE_FAIL);
            ck_assert_int_eq(wse_pmd_end_line(&p), WSE_FAIL);
            break;
        }
    }
    memset(a, 0xAB, sizeof *a);
    bool ok = wse_pmd_result(&p, a);
    *why = (enum wse_pmd_why)p.why;
    return ok;
}

/* Builds a request with one header line per element of lines. */
static bool via_request(const struct wse_pmd_cfg *cfg, const char *const *lines, size_t n,
                        struct wse_pmd_agreed *a, enum wse_pmd_why *why)
{
    static const struct wse_http_limits lim = { 8192, 64 };
    char buf[4096];
    struct wse_http_req req;
    size_t len = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\n");

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "Sec-WebSocket-Extensions: %s\r\n",
                                lines[i]);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "\r\n");
    ck_assert_uint_lt(len, sizeof buf);
    wse_http_init(&req);
    if (wse_http_parse(&req, buf, len, &lim) != WSE_OK) {
        /* Control bytes: the request never gets this far (400); the
         * parser's own verdict must then be a syntax error as well. */
        *why = WSE_PMD_SYNTAX;
        return false;
    }
    ck_assert_uint_eq(req.n_extensions, n);
    *why = WSE_PMD_NO_OFFER;
    return wse_pmd_negotiate(cfg, buf, req.extensions, req.n_extensions, a, why);
}

static void same(bool ok1, const struct wse_pmd_agreed *a1, enum wse_pmd_why w1, bool ok2,
                 const struct wse_pmd_agreed *a2, enum wse_pmd_why w2)
{
    ck_assert_int_eq(ok1, ok2);
    if (ok1)
        ck_assert(memcmp(a1, a2, sizeof *a1) == 0);
    else
        ck_assert_int_eq(w1, w2);
}

/* The verdict, checked the same for whole, bytewise and every 2-way split. */
static bool negotiate_all(const struct wse_pmd_cfg *cfg, const char *const *lines, size_t n,
                          struct wse_pmd_agreed *a, enum wse_pmd_why *why)
{
    struct wse_pmd_agreed b;
    enum wse_pmd_why wb;
    bool ok = run(cfg, lines, n, WHOLE, 0, a, why);
    bool ok2 = run(cfg, lines, n, BYTES, 0, &b, &wb);

    same(ok, a, *why, ok2, &b, wb);
    for (size_t at = 0; at <= 80; at++) {
        ok2 = run(cfg, lines, n, AT, at, &b, &wb);
        same(ok, a, *why, ok2, &b, wb);
    }
    ok2 = via_request(cfg, lines, n, &b, &wb);
    same(ok, a, *why, ok2, &b, wb);
    return ok;
}

static const char *response(const struct wse_pmd_agreed *a)
{
    static char out[WSE_PMD_RESPONSE_MAX];
    size_t n = wse_pmd_response(out, sizeof out, a);

    ck_assert_uint_gt(n, 0);
    ck_assert_uint_lt(n, sizeof out);
    out[n] = 0;
    return out;
}

struct accept_case {
    const char *name;
    const struct wse_pmd_cfg *cfg;
    const char *lines[MAXL];
    const char *resp;           /* the parameters after "permessage-deflate" */
    uint8_t deflate_bits, inflate_bits;
};

static const struct accept_case accepts[] = {
    { "bare", &FULL, { "permessage-deflate" }, "", 15, 15 },
    /* What every browser sends: the client lets the server choose. */
    { "chrome", &FULL, { "permessage-deflate; client_max_window_bits" }, "", 15, 15 },
    { "chrome small", &SMALL, { "permessage-deflate; client_max_window_bits" },
      "; client_max_window_bits=10", 10, 10 },
    /* Without client_max_window_bits in the offer, never in the answer (7.1.2.2),
     * and the client may use the full window. */
    { "no client bits offered", &SMALL, { "permessage-deflate" }, "", 10, 15 },
    { "client bits value", &FULL, { "permessage-deflate; client_max_window_bits=11" },
      "; client_max_window_bits=11", 15, 11 },
    { "client bits value above ours", &SMALL, { "permessage-deflate; client_max_window_bits=12" },
      "; client_max_window_bits=10", 10, 10 },
    /* 8 asked of the client is fine; the server inflates with 9. */
    { "client bits 8", &FULL, { "permessage-deflate; client_max_window_bits=8" },
      "; client_max_window_bits=8", 15, 9 },
    { "configured 8", &EIGHT, { "permessage-deflate; client_max_window_bits" },
      "; client_max_window_bits=8", 9, 9 },
    /* The server's window: the offer bounds the answer. */
    { "server bits", &FULL, { "permessage-deflate; server_max_window_bits=10" },
      "; server_max_window_bits=10", 10, 15 },
    { "server bits above ours", &SMALL, { "permessage-deflate; server_max_window_bits=12" },
      "; server_max_window_bits=10", 10, 15 },
    /* A configured 8 deflates with 9, answered when the offer allows it. */
    { "server 8 configured", &EIGHT, { "permessage-deflate; server_max_window_bits=15" },
      "; server_max_window_bits=9", 9, 15 },
    { "server bits not offered", &SMALL, { "permessage-deflate" }, "", 10, 15 },
    { "server nct offered", &FULL, { "permessage-deflate; server_no_context_takeover" },
      "; server_no_context_takeover", 15, 15 },
    { "client nct offered", &FULL, { "permessage-deflate; client_no_context_takeover" },
      "; client_no_context_takeover", 15, 15 },
    /* The server may answer both even when not offered (7.1.1.1, 7.1.1.2). */
    { "nct configured", &NCT, { "permessage-deflate" },
      "; server_no_context_takeover; client_no_context_takeover", 15, 15 },
    { "all four", &SMALL,
      { "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits" },
      "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
      "client_max_window_bits=10", 9, 10 },
    /* Quoted values are unescaped, then must be a token. */
    { "quoted", &FULL, { "permessage-deflate; server_max_window_bits=\"12\"" },
      "; server_max_window_bits=12", 12, 15 },
    { "quoted pair", &FULL, { "permessage-deflate; client_max_window_bits=\"1\\3\"" },
      "; client_max_window_bits=13", 15, 13 },
    { "ows everywhere", &FULL,
      { " \t permessage-deflate \t; \tserver_max_window_bits \t= \t11 \t; client_max_window_bits" },
      "; server_max_window_bits=11", 11, 15 },
    { "empty elements", &FULL, { ", ,permessage-deflate,, ," }, "", 15, 15 },
    /* Other extensions are skipped, whatever their parameters. */
    { "after another", &FULL,
      { "x-webkit-deflate-frame; no_context_takeover; x=\"a b\\\"\", permessage-deflate" },
      "", 15, 15 },
    /* The first acceptable offer wins. */
    { "first wins", &FULL,
      { "permessage-deflate; server_max_window_bits=10, permessage-deflate; "
        "server_no_context_takeover" },
      "; server_max_window_bits=10", 10, 15 },
    /* Declined offers are passed over. */
    { "after unknown param", &FULL,
      { "permessage-deflate; foo, permessage-deflate; server_max_window_bits=9" },
      "; server_max_window_bits=9", 9, 15 },
    { "after server 8", &FULL,
      { "permessage-deflate; server_max_window_bits=8, permessage-deflate" }, "", 15, 15 },
    { "after repeated", &FULL,
      { "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; client_no_context_takeover" },
      "; client_no_context_takeover", 15, 15 },
    /* Several lines are one list; a line's end ends the offer. */
    { "second line", &FULL, { "x-foo; a=1", "permessage-deflate; server_no_context_takeover" },
      "; server_no_context_takeover", 15, 15 },
    { "line ends offer", &FULL,
      { "permessage-deflate; server_no_context_takeover", "client_no_context_takeover" },
      "; server_no_context_takeover", 15, 15 },
    { "empty line", &FULL, { "", "permessage-deflate" }, "", 15, 15 },
};

START_TEST(test_accept)
{
    const struct accept_case *c = &accepts[_i];
    size_t n = 0;
    struct wse_pmd_agreed a;
    enum wse_pmd_why why;
    char want[WSE_PMD_RESPONSE_MAX];

    while (n < MAXL && c->lines[n])
        n++;
    ck_assert_msg(negotiate_all(c->cfg, c->lines, n, &a, &why), "%s: declined (%s)", c->name,
                  wse_pmd_why_str(why));
    snprintf(want, sizeof want, "Sec-WebSocket-Extensions: permessage-deflate%s\r\n", c->resp);
    ck_assert_msg(strcmp(response(&a), want) == 0, "%s: %s", c->name, response(&a));
    ck_assert_uint_eq(a.deflate_bits, c->deflate_bits);
    ck_assert_uint_eq(a.inflate_bits, c->inflate_bits);
}
END_TEST

struct decline_case {
    const char *name;
    const char *lines[MAXL];
    enum wse_pmd_why why;
};

static const struct decline_case declines[] = {
    { "none", { "x-foo" }, WSE_PMD_NO_OFFER },
    { "no lines", { NULL }, WSE_PMD_NO_OFFER },
    { "empty", { "" }, WSE_PMD_NO_OFFER },
    { "prefix", { "permessage-deflat" }, WSE_PMD_NO_OFFER },
    { "longer", { "permessage-deflatex" }, WSE_PMD_NO_OFFER },
    { "case", { "Permessage-Deflate" }, WSE_PMD_NO_OFFER },
    { "unknown", { "permessage-deflate; foo" }, WSE_PMD_UNKNOWN_PARAM },
    { "unknown case", { "permessage-deflate; Server_No_Context_Takeover" },
      WSE_PMD_UNKNOWN_PARAM },
    { "unknown long", { "permessage-deflate; server_no_context_takeover_and_then_some" },
      WSE_PMD_UNKNOWN_PARAM },
    { "unknown prefix", { "permessage-deflate; server_no_context" }, WSE_PMD_UNKNOWN_PARAM },
    { "repeated", { "permessage-deflate; server_no_context_takeover; server_no_context_takeover" },
      WSE_PMD_REPEATED_PARAM },
    { "repeated bits", { "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10" },
      WSE_PMD_REPEATED_PARAM },
    { "repeated client bits", { "permessage-deflate; client_max_window_bits=10; client_max_window_bits" },
      WSE_PMD_REPEATED_PARAM },
    { "nct value", { "permessage-deflate; server_no_context_takeover=1" }, WSE_PMD_BAD_VALUE },
    { "nct empty quoted", { "permessage-deflate; client_no_context_takeover=\"\"" },
      WSE_PMD_BAD_VALUE },
    { "server bits missing", { "permessage-deflate; server_max_window_bits" }, WSE_PMD_BAD_VALUE },
    { "server bits 16", { "permessage-deflate; server_max_window_bits=16" }, WSE_PMD_BAD_VALUE },
    { "server bits 7", { "permessage-deflate; server_max_window_bits=7" }, WSE_PMD_BAD_VALUE },
    { "server bits 0", { "permessage-deflate; server_max_window_bits=0" }, WSE_PMD_BAD_VALUE },
    { "leading zero", { "permessage-deflate; server_max_window_bits=09" }, WSE_PMD_BAD_VALUE },
    { "leading zeros", { "permessage-deflate; server_max_window_bits=010" }, WSE_PMD_BAD_VALUE },
    { "long value", { "permessage-deflate; server_max_window_bits=1000000000000000015" },
      WSE_PMD_BAD_VALUE },
    { "not digits", { "permessage-deflate; server_max_window_bits=1a" }, WSE_PMD_BAD_VALUE },
    { "sign", { "permessage-deflate; server_max_window_bits=+9" }, WSE_PMD_BAD_VALUE },
    { "client bits 16", { "permessage-deflate; client_max_window_bits=16" }, WSE_PMD_BAD_VALUE },
    { "client bits empty quoted", { "permessage-deflate; client_max_window_bits=\"\"" },
      WSE_PMD_BAD_VALUE },
    { "quoted not token", { "permessage-deflate; client_max_window_bits=\"1 0\"" },
      WSE_PMD_BAD_VALUE },
    { "quoted trailing space", { "permessage-deflate; client_max_window_bits=\"10 \"" },
      WSE_PMD_BAD_VALUE },
    { "server bits 8", { "permessage-deflate; server_max_window_bits=8" }, WSE_PMD_SERVER_BITS_8 },
    /* The first offer declined gives the reason. */
    { "two declined", { "permessage-deflate; a", "permessage-deflate; server_max_window_bits=99" },
      WSE_PMD_UNKNOWN_PARAM },
    /* Syntax: every offer declined, even one before the error. */
    { "trailing semicolon", { "permessage-deflate;" }, WSE_PMD_SYNTAX },
    { "trailing equals", { "permessage-deflate; server_max_window_bits=" }, WSE_PMD_SYNTAX },
    { "open quote", { "permessage-deflate; server_max_window_bits=\"10" }, WSE_PMD_SYNTAX },
    { "open pair", { "permessage-deflate; server_max_window_bits=\"10\\" }, WSE_PMD_SYNTAX },
    { "two tokens", { "permessage-deflate; server_max_window_bits=1 0" }, WSE_PMD_SYNTAX },
    { "space in name", { "permessage deflate" }, WSE_PMD_SYNTAX },
    { "empty param", { "permessage-deflate;; server_no_context_takeover" }, WSE_PMD_SYNTAX },
    { "lone semicolon", { "; permessage-deflate" }, WSE_PMD_SYNTAX },
    { "lone equals", { "permessage-deflate; =9" }, WSE_PMD_SYNTAX },
    { "double equals", { "permessage-deflate; server_max_window_bits==9" }, WSE_PMD_SYNTAX },
    { "separator in token", { "permessage-deflate; server_max_window_bits=1/2" }, WSE_PMD_SYNTAX },
    { "after value", { "permessage-deflate; server_max_window_bits=\"9\"x" }, WSE_PMD_SYNTAX },
    { "control byte", { "permessage-deflate\x01" }, WSE_PMD_SYNTAX },
    { "control in quote", { "x; a=\"\x7f\"" }, WSE_PMD_SYNTAX },
    { "error after accepted", { "permessage-deflate, x;" }, WSE_PMD_SYNTAX },
    { "error on a later line", { "permessage-deflate", "@" }, WSE_PMD_SYNTAX },
};

START_TEST(test_decline)
{
    const struct decline_case *c = &declines[_i];
    size_t n = 0;
    struct wse_pmd_agreed a;
    enum wse_pmd_why why;

    while (n < MAXL && c->lines[n])
        n++;
    ck_assert_msg(!negotiate_all(&FULL, c->lines, n, &a, &why), "%s: accepted", c->name);
    ck_assert_msg(why == c->why, "%s: %s, not %s", c->name, wse_pmd_why_str(why),
                  wse_pmd_why_str(c->why));
}
END_TEST

/* A parameter's value may not continue over a line's end. */
START_TEST(test_value_not_across_lines)
{
    const char *lines[] = { "permessage-deflate; server_max_window_bits=", "10" };
    struct wse_pmd_agreed a;
    enum wse_pmd_why why;

    ck_assert(!negotiate_all(&FULL, lines, 2, &a, &why));
    ck_assert_int_eq(why, WSE_PMD_SYNTAX);
}
END_TEST

/* Every window the parser takes, 8..15, with and without quotes. */
START_TEST(test_every_window)
{
    for (unsigned bits = 8; bits <= 15; bits++) {
        char line[96];
        const char *lines[] = { line };
        struct wse_pmd_agreed a;
        enum wse_pmd_why why;

        snprintf(line, sizeof line, "permessage-deflate; client_max_window_bits=\"%u\"", bits);
        ck_assert(negotiate_all(&FULL, lines, 1, &a, &why));
        ck_assert_uint_eq(a.client_bits, bits == 15 ? 0 : bits);
        ck_assert_uint_eq(a.inflate_bits, bits < 9 ? 9 : bits);
        snprintf(line, sizeof line, "permessage-deflate; server_max_window_bits=%u", bits);
        bool ok = negotiate_all(&FULL, lines, 1, &a, &why);
        ck_assert_int_eq(ok, bits != 8);
        if (ok) {
            ck_assert_uint_eq(a.server_bits, bits);
            ck_assert_uint_eq(a.deflate_bits, bits);
        }
    }
}
END_TEST

START_TEST(test_response_cap)
{
    const struct wse_pmd_agreed a = { true, true, 9, 10, 9, 10 };
    static const char want[] =
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10\r\n";
    char out[WSE_PMD_RESPONSE_MAX];
    size_t n = sizeof want - 1;

    ck_assert_uint_le(n, WSE_PMD_RESPONSE_MAX);
    ck_assert_uint_eq(wse_pmd_response(out, n, &a), n);
    ck_assert(memcmp(out, want, n) == 0);
    ck_assert_uint_eq(wse_pmd_response(out, n - 1, &a), 0);
    ck_assert_uint_eq(wse_pmd_response(out, 0, &a), 0);
}
END_TEST

START_TEST(test_why_strings)
{
    for (int w = WSE_PMD_NO_OFFER; w <= WSE_PMD_SERVER_BITS_8; w++)
        ck_assert_str_ne(wse_pmd_why_str((enum wse_pmd_why)w), "?");
}
END_TEST

static Suite *pmd_suite(void)
{
    Suite *s = suite_create("pmd");
    TCase *tc = tcase_create("negotiation");

    tcase_add_loop_test(tc, test_accept, 0, (int)countof(accepts));
    tcase_add_loop_test(tc, test_decline, 0, (int)countof(declines));
    tcase_add_test(tc, test_value_not_across_lines);
    tcase_add_test(tc, test_every_window);
    tcase_add_test(tc, test_response_cap);
    tcase_add_test(tc, test_why_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pmd_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
