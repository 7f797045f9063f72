/*
 * fuzz_pmdz.c - libFuzzer target for the permessage-deflate inflate path
 * (pmdz.h): compressed frames of any content, split anywhere.
 *
 * Input: byte 0 picks the window (8..15), takeover, the inflated size limit
 * and the output buffer size; byte 1 seeds the split; the rest is the
 * compressed payload, inflated as two messages in a row (so takeover state
 * carries from one to the next).
 * Oracles beyond the sanitizers:
 *   - differential: the payload whole with a large output buffer, and in
 *     pieces of pseudo-random sizes (each in an exact-size allocation) with
 *     a small one, give the same verdict, close code and bytes (but for
 *     zlib's leniency about windows below 15 bits, see below);
 *   - bounds: never more than the limit out, never a chunk over the buffer,
 *     a failure's code is 1007 or 1009;
 *   - round trip: what inflated is deflated by pmdz and inflated again to
 *     the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "frame.h"
#include "pmdz.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define OUT_MAX 65536

struct result {
    int rc[2];
    uint16_t code[2];
    size_t len[2];
    uint8_t out[2][OUT_MAX];
};

static struct result whole, split;
static uint8_t buf[32768];

static void run(struct wse_inflate *in, const uint8_t *p, size_t n, unsigned seed, size_t cap,
                uint64_t max, struct result *r)
{
    for (int m = 0; m < 2; m++) {
        size_t off = 0;
        int rc = WSE_AGAIN;
        r->len[m] = 0;
        do {
            size_t k = n - off;
            if (seed) {
                seed = seed * 1103515245u + 12345u;
                size_t want = (seed >> 16) % 17;
                k = want < k ? want : k;
            }
            uint8_t *piece = malloc(k ? k : 1);
            CHECK(piece);
            memcpy(piece, p + off, k);
            wse_inflate_input(in, piece, k, off == 0, off + k == n);
            size_t got;
            while ((rc = wse_inflate_next(in, buf, cap, &got)) == WSE_OK) {
                CHECK(got > 0 && got <= cap);
                CHECK(r->len[m] + got <= max);
                memcpy(r->out[m] + r->len[m], buf, got);
                r->len[m] += got;
            }
            free(piece);
            off += k;
        } while (rc == WSE_AGAIN && off < n);
        r->rc[m] = rc;
        r->code[m] = rc == WSE_FAIL ? in->code : 0;
        if (rc == WSE_FAIL)
            CHECK(in->code == WSE_CLOSE_BAD_DATA || in->code == WSE_CLOSE_TOO_BIG);
        if (rc == WSE_FAIL && in->takeover)
            return;     /* a takeover stream is not used after a failure */
    }
}

static void round_trip(const uint8_t *p, size_t n, unsigned bits)
{
    static uint8_t comp[2 * OUT_MAX + 1024], back[OUT_MAX], chunk[256];
    size_t dm = wse_deflate_mem(bits, 4), im = wse_inflate_mem(bits);
    uint8_t *mem = malloc(dm + im);
    struct wse_deflate d;
    struct wse_inflate in;
    size_t clen = 0, got, blen = 0;
    bool fin = false;
    int rc;

    CHECK(mem);
    CHECK(wse_deflate_init(&d, mem, dm, bits, 4, 6, false) == WSE_OK);
    wse_deflate_input(&d, p, n, true);
    while ((rc = wse_deflate_next(&d, chunk, sizeof chunk, &got, &fin)) == WSE_OK) {
        CHECK(clen + got <= sizeof comp);
        memcpy(comp + clen, chunk, got);
        clen += got;
        if (fin)
            break;
    }
    CHECK(fin);
    CHECK(wse_inflate_init(&in, mem + dm, im, bits, false, OUT_MAX) == WSE_OK);
    wse_inflate_input(&in, comp, clen, true, true);
    while ((rc = wse_inflate_next(&in, buf, sizeof buf, &got)) == WSE_OK) {
        memcpy(back + blen, buf, got);
        blen += got;
    }
    CHECK(rc == WSE_AGAIN && blen == n && memcmp(back, p, n) == 0);
    deflateEnd(&d.zs);
    inflateEnd(&in.zs);
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned bits = 8 + (data[0] & 7);
    bool takeover = data[0] & 8;
    uint64_t max = (data[0] & 16) ? 100 : OUT_MAX;
    size_t small = (data[0] & 32) ? WSE_PMDZ_OUT_MIN : 1000;
    unsigned seed = data[1] | 1u;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    size_t mem = wse_inflate_mem(bits);
    uint8_t *m1 = malloc(mem), *m2 = malloc(mem);
    struct wse_inflate a, b;

    CHECK(m1 && m2);
    CHECK(wse_inflate_init(&a, m1, mem, bits, takeover, max) == WSE_OK);
    CHECK(wse_inflate_init(&b, m2, mem, bits, takeover, max) == WSE_OK);
    /* With takeover the window's carry-over borrows 2^bits of output. */
    run(&a, p, n, 0, sizeof buf, max, &whole);
    run(&b, p, n, seed, takeover ? sizeof buf : small, max, &split);
    for (int m = 0; m < 2; m++) {
        /* zlib lets a distance past a small window through while its source
         * is still in the current call's output: with bits < 15 a message
         * over its window may pass in one chunking and fail (1007) in
         * another.  Never another code, never with the full window. */
        if (whole.rc[m] != split.rc[m] && bits < 15) {
            const struct result *f = whole.rc[m] == WSE_FAIL ? &whole : &split;
            CHECK(f->code[m] == WSE_CLOSE_BAD_DATA);
            break;
        }
        CHECK(whole.rc[m] == split.rc[m]);
        if (whole.rc[m] == WSE_FAIL && takeover)
            break;
        if (whole.rc[m] == WSE_AGAIN) {
            CHECK(whole.len[m] == split.len[m]);
            CHECK(memcmp(whole.out[m], split.out[m], whole.len[m]) == 0);
            if (m == 0 && whole.len[m])
                round_trip(whole.out[m], whole.len[m], bits);
        } else {
            /* (the same leniency may let one run reach the limit first) */
            CHECK(whole.code[m] == split.code[m] || bits < 15);
        }
    }
    inflateEnd(&a.zs);
    inflateEnd(&b.zs);
    free(m1);
    free(m2);
    return 0;
}
