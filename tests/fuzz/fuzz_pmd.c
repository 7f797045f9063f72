/*
 * fuzz_pmd.c - libFuzzer target for the permessage-deflate offer parser and
 * the response writer (pmd.h).
 *
 * Input: the first byte picks the server's configuration (window bits and
 * takeover for each side), the rest is header lines separated by '\n'.
 * Oracles beyond the sanitizers:
 *   - differential: the lines fed whole, one byte per call (each byte in an
 *     exact-size allocation), and split at a position taken from the input
 *     give the same verdict, reason and agreement;
 *   - a failure sticks;
 *   - an accepted agreement keeps the RFC's bounds: windows 9..15 for the
 *     streams, answers 8..15 or absent, no answer above the configuration,
 *     client_max_window_bits only when the input could have offered it;
 *   - the response fits WSE_PMD_RESPONSE_MAX, and its value read back by the
 *     parser is accepted with the same agreement under a configuration that
 *     takes what it says.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "pmd.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define MAX_LINES 8

struct line {
    const char *p;
    size_t n;
};

static bool run(const struct wse_pmd_cfg *cfg, const struct line *l, size_t nl, int how,
                size_t cut, struct wse_pmd_agreed *a, uint8_t *why)
{
    struct wse_pmd_parser p;
    bool failed = false;

    wse_pmd_init(&p, cfg);
    for (size_t i = 0; i < nl && !failed; i++) {
        int rc = WSE_OK;
        if (how == 0) {
            rc = wse_pmd_feed(&p, l[i].p, l[i].n);
        } else if (how == 1) {
            for (size_t k = 0; k < l[i].n && rc == WSE_OK; k++) {
                char *b = malloc(1);
                CHECK(b);
                *b = l[i].p[k];
                rc = wse_pmd_feed(&p, b, 1);
                free(b);
            }
        } else {
            size_t c = cut < l[i].n ? cut : l[i].n;
            rc = wse_pmd_feed(&p, l[i].p, c);
            if (rc == WSE_OK)
                rc = wse_pmd_feed(&p, l[i].p + c, l[i].n - c);
        }
        if (rc == WSE_OK)
            rc = wse_pmd_end_line(&p);
        if (rc != WSE_OK) {
            CHECK(wse_pmd_feed(&p, "a", 1) == WSE_FAIL);
            CHECK(wse_pmd_end_line(&p) == WSE_FAIL);
            CHECK(p.why == WSE_PMD_SYNTAX);
            failed = true;
        }
    }
    memset(a, 0, sizeof *a);
    bool ok = wse_pmd_result(&p, a);
    CHECK(!(ok && failed));
    *why = p.why;
    return ok;
}

static void bounds(const struct wse_pmd_cfg *cfg, const struct wse_pmd_agreed *a,
                   bool client_bits_in_input)
{
    uint8_t own = cfg->server_bits < 9 ? 9 : cfg->server_bits;

    CHECK(a->deflate_bits >= 9 && a->deflate_bits <= 15 && a->deflate_bits <= own);
    CHECK(a->inflate_bits >= 9 && a->inflate_bits <= 15);
    CHECK(a->server_bits == 0 || a->server_bits == a->deflate_bits);
    CHECK(a->client_bits == 0 || (a->client_bits >= 8 && a->client_bits < 15));
    CHECK(a->client_bits == 0 || client_bits_in_input);
    CHECK(a->client_bits == 0 || a->inflate_bits == (a->client_bits < 9 ? 9 : a->client_bits));
    CHECK(a->client_bits == 0 || a->client_bits <= (cfg->client_bits < 8 ? 8 : cfg->client_bits));
    CHECK(a->server_nct || cfg->server_takeover);
    CHECK(a->client_nct || cfg->client_takeover);
}

/* The response's value, parsed back, says the same. */
static void read_back(const struct wse_pmd_agreed *a)
{
    char out[WSE_PMD_RESPONSE_MAX];
    size_t n = wse_pmd_response(out, sizeof out, a);
    static const char head[] = "Sec-WebSocket-Extensions: ";

    CHECK(n > sizeof head + 1 && memcmp(out, head, sizeof head - 1) == 0);
    CHECK(out[n - 2] == '\r' && out[n - 1] == '\n');
    CHECK(wse_pmd_response(out, n - 1, a) == 0);

    /* Under a configuration of exactly what was agreed, the answer read as
     * an offer is accepted as itself. */
    struct wse_pmd_cfg same = { a->deflate_bits, a->client_bits ? a->client_bits : 15,
                                !a->server_nct, !a->client_nct };
    struct wse_pmd_parser p;
    struct wse_pmd_agreed b;
    wse_pmd_init(&p, &same);
    CHECK(wse_pmd_feed(&p, out + sizeof head - 1, n - (sizeof head - 1) - 2) == WSE_OK);
    CHECK(wse_pmd_end_line(&p) == WSE_OK);
    CHECK(wse_pmd_result(&p, &b));
    CHECK(b.server_nct == a->server_nct && b.client_nct == a->client_nct);
    CHECK(b.server_bits == a->server_bits && b.client_bits == a->client_bits);
    CHECK(b.deflate_bits == a->deflate_bits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    size_t cut = data[1];
    struct wse_pmd_cfg cfg = { (uint8_t)(8 + (sel & 7)), (uint8_t)(8 + ((sel >> 3) & 7)),
                               (sel & 0x40) != 0, (sel & 0x80) != 0 };
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    struct line l[MAX_LINES];
    size_t nl = 0, start = 0;

    for (size_t i = 0; i <= len && nl < MAX_LINES; i++) {
        if (i == len || text[i] == '\n') {
            l[nl].p = text + start;
            l[nl].n = i - start;
            nl++;
            start = i + 1;
        }
    }
    bool client_bits_in_input = memmem(text, len, "client_max_window_bits", 22) != NULL;

    struct wse_pmd_agreed a, b;
    uint8_t wa, wb;
    bool ok = run(&cfg, l, nl, 0, 0, &a, &wa);
    for (int how = 1; how <= 2; how++) {
        bool ok2 = run(&cfg, l, nl, how, cut, &b, &wb);
        CHECK(ok == ok2);
        CHECK(ok ? memcmp(&a, &b, sizeof a) == 0 : wa == wb);
    }
    if (ok) {
        bounds(&cfg, &a, client_bits_in_input);
        read_back(&a);
    }
    return 0;
}
