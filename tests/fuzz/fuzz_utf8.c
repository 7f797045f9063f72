/*
 * fuzz_utf8.c - differential libFuzzer target for the UTF-8 validator.
 *
 * The DFA is compared with a deliberately naive validator that decodes code
 * points and checks their ranges.  Both the verdict and the offset of the
 * first bad byte must agree, fed whole and fed in pieces; any disagreement
 * traps so that libFuzzer keeps the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "utf8.h"

enum { VALID, TRUNC, BAD, BROKEN };

struct verdict {
    int kind;
    size_t off;     /* meaningful for BAD only */
};

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/*
 * After reading some bytes of a sequence, the code point lies in
 * [lo, hi] (the unread 6-bit groups could be anything).  The prefix can
 * still become valid UTF-8 only if some value in that interval is at least
 * the smallest code point that needs this many bytes, at most U+10FFFF, and
 * not a surrogate.
 */
static int could_be_valid(uint32_t lo, uint32_t hi, uint32_t min_for_len)
{
    if (lo < min_for_len)
        lo = min_for_len;
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    if (lo > hi)
        return 0;
    if (lo >= 0xD800 && hi <= 0xDFFF)
        return 0;
    return 1;
}

static struct verdict reference(const uint8_t *p, size_t n)
{
    struct verdict v = { VALID, 0 };
    size_t i = 0;

    while (i < n) {
        uint8_t lead = p[i];
        size_t len;
        uint32_t cp, min_for_len;

        if (lead <= 0x7F) {
            i++;
            continue;
        }
        if (lead >= 0xC0 && lead <= 0xDF) {
            len = 2, cp = lead & 0x1F, min_for_len = 0x80;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            len = 3, cp = lead & 0x0F, min_for_len = 0x800;
        } else if (lead >= 0xF0 && lead <= 0xF7) {
            len = 4, cp = lead & 0x07, min_for_len = 0x10000;
        } else {
            v.kind = BAD, v.off = i;
            return v;
        }

        for (size_t got = 1;; got++) {
            unsigned unread_bits = (unsigned)(len - got) * 6;
            uint32_t lo = cp << unread_bits;
            uint32_t hi = lo | ((UINT32_C(1) << unread_bits) - 1);

            if (!could_be_valid(lo, hi, min_for_len)) {
                v.kind = BAD, v.off = i + got - 1;
                return v;
            }
            if (got == len)
                break;
            if (i + got == n) {
                v.kind = TRUNC;
                return v;
            }
            uint8_t c = p[i + got];
            if (c < 0x80 || c > 0xBF) {
                v.kind = BAD, v.off = i + got;
                return v;
            }
            cp = (cp << 6) | (uint32_t)(c & 0x3F);
        }
        i += len;
    }
    return v;
}

/*
 * Feed data in pieces of the given lengths (summing to n), each copied into
 * its own exact-size allocation so that ASan sees any read past a piece.
 */
static struct verdict run(const uint8_t *data, size_t n,
                          const size_t *lens, size_t nlens)
{
    struct verdict v = { VALID, 0 };
    struct wse_utf8 u;
    size_t start = 0;
    int failed = 0;

    wse_utf8_init(&u);
    for (size_t k = 0; k < nlens; k++) {
        size_t len = lens[k];
        uint8_t *piece = malloc(len ? len : 1);
        size_t bad = SIZE_MAX;
        int rc;

        CHECK(piece != NULL);
        memcpy(piece, data + start, len);
        rc = wse_utf8_feed(&u, piece, len, &bad);
        free(piece);

        if (failed) {
            CHECK(rc == WSE_FAIL && bad == 0);      /* failure sticks */
        } else if (rc == WSE_FAIL) {
            CHECK(bad < len);
            v.kind = BAD, v.off = start + bad;
            failed = 1;
        } else {
            CHECK(rc == WSE_OK && bad == SIZE_MAX);
        }
        start += len;
    }
    CHECK(start == n);
    if (failed) {
        CHECK(wse_utf8_end(&u) == WSE_FAIL);
        return v;
    }
    v.kind = wse_utf8_end(&u) == WSE_OK ? VALID : TRUNC;
    if (v.kind == VALID)
        CHECK(u.state == 0);
    return v;
}

static void expect(struct verdict got, struct verdict want)
{
    CHECK(got.kind == want.kind);
    if (want.kind == BAD)
        CHECK(got.off == want.off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct verdict want = reference(data, size);
    size_t lens[64];
    size_t nlens;

    /* Whole, straight from libFuzzer's exact-size buffer. */
    {
        struct wse_utf8 u;
        size_t bad = SIZE_MAX;
        int rc;

        wse_utf8_init(&u);
        rc = wse_utf8_feed(&u, data, size, &bad);
        if (want.kind == BAD)
            CHECK(rc == WSE_FAIL && bad == want.off);
        else
            CHECK(rc == WSE_OK && wse_utf8_end(&u) == (want.kind == VALID ? WSE_OK : WSE_FAIL));
        CHECK((wse_utf8_valid(data, size) == WSE_OK) == (want.kind == VALID));
    }
    if (size == 0)
        return 0;

    /*
     * Piece sizes come from the first byte so that libFuzzer can steer the
     * cuts: a pseudo-random walk of 0..16-byte pieces (empty ones included),
     * the rest in one last piece when the array runs out.
     */
    uint32_t x = data[0] * UINT32_C(2654435761) + 1;
    size_t left = size;

    nlens = 0;
    while (left > 0 && nlens < countof(lens) - 1) {
        size_t len;

        x = x * 1664525 + 1013904223;
        len = (x >> 24) % 17;
        if (len > left)
            len = left;
        lens[nlens++] = len;
        left -= len;
    }
    if (left > 0)
        lens[nlens++] = left;
    expect(run(data, size, lens, nlens), want);

    /* Two pieces, cut at a point scaled from the first byte. */
    lens[0] = size * data[0] / 255;
    lens[1] = size - lens[0];
    expect(run(data, size, lens, 2), want);

    /* One byte at a time, for inputs short enough to afford it. */
    if (size <= countof(lens)) {
        for (size_t k = 0; k < size; k++)
            lens[k] = 1;
        expect(run(data, size, lens, size), want);
    }
    return 0;
}
