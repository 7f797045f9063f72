/*
 * test_utf8.c - unit tests for the streaming UTF-8 validator.
 *
 * Every verdict is checked three ways: against the expectation written in
 * the case table, against a slow reference validator (ref_check) that
 * decodes code points bit by bit and knows nothing of the DFA, and against
 * itself fed in pieces.  Inner loops count mismatches with plain ifs and
 * assert once: Check's ck_assert does IPC on every success, which would make
 * the exhaustive tests take minutes.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "utf8.h"

/* ---------------------------------------------------------------------- */
/* Verdicts                                                                */

enum kind {
    K_VALID,    /* complete, valid text */
    K_TRUNC,    /* every byte fine, but it stops inside a sequence */
    K_BAD,      /* invalid; off is the first byte that made it so */
    K_BROKEN,   /* the API contradicted itself (stickiness, offsets, rc) */
};

struct verdict {
    enum kind kind;
    size_t off;
};

static int same(struct verdict a, struct verdict b)
{
    return a.kind == b.kind && (a.kind != K_BAD || a.off == b.off);
}

static const char *kind_name(enum kind k)
{
    switch (k) {
    case K_VALID: return "valid";
    case K_TRUNC: return "truncated";
    case K_BAD: return "bad";
    default: return "BROKEN";
    }
}

static char msgbuf[1024];

/* Describe input and verdicts for an assertion message. */
static const char *describe(const uint8_t *p, size_t n, const char *how,
                            struct verdict got, struct verdict want)
{
    size_t o = 0;

    o += (size_t)snprintf(msgbuf + o, sizeof(msgbuf) - o, "%s: input[%zu] =", how, n);
    for (size_t i = 0; i < n && i < 48 && o < sizeof(msgbuf) - 8; i++)
        o += (size_t)snprintf(msgbuf + o, sizeof(msgbuf) - o, " %02X", p[i]);
    if (n > 48 && o < sizeof(msgbuf) - 8)
        o += (size_t)snprintf(msgbuf + o, sizeof(msgbuf) - o, " ...");
    snprintf(msgbuf + o, sizeof(msgbuf) - o, "; got %s@%zu, want %s@%zu",
             kind_name(got.kind), got.off, kind_name(want.kind), want.off);
    return msgbuf;
}

/* ---------------------------------------------------------------------- */
/* Reference validator                                                     */

/*
 * Could a code point in [lo, hi] encoded with the given minimum value still
 * come out valid?  This is the definition of "prefix of valid UTF-8" applied
 * literally, with no knowledge of which byte values that implies.
 */
static int ref_viable(uint32_t lo, uint32_t hi, uint32_t min)
{
    uint32_t a = lo > min ? lo : min;
    uint32_t b = hi < 0x10FFFF ? hi : 0x10FFFF;

    if (a > b)
        return 0;                   /* overlong or above U+10FFFF */
    if (a >= 0xD800 && b <= 0xDFFF)
        return 0;                   /* nothing but surrogates left */
    return 1;
}

static struct verdict ref_check(const uint8_t *p, size_t n)
{
    struct verdict v = { K_VALID, 0 };
    size_t i = 0;

    while (i < n) {
        uint8_t b = p[i];
        uint32_t cp, min;
        int len;

        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            v.kind = K_BAD, v.off = i;  /* continuation or F8..FF */
            return v;
        }
        for (int k = 0;; k++) {
            /* k+1 bytes read; the rest contribute 6 unknown bits each. */
            unsigned rem = (unsigned)(len - 1 - k) * 6;
            uint32_t lo = cp << rem, hi = lo | ((UINT32_C(1) << rem) - 1);

            if (!ref_viable(lo, hi, min)) {
                v.kind = K_BAD, v.off = i + (size_t)k;
                return v;
            }
            if (k == len - 1)
                break;
            if (i + (size_t)k + 1 >= n) {
                v.kind = K_TRUNC;
                return v;
            }
            uint8_t c = p[i + (size_t)k + 1];
            if ((c & 0xC0) != 0x80) {
                v.kind = K_BAD, v.off = i + (size_t)k + 1;
                return v;
            }
            cp = (cp << 6) | (c & 0x3F);
        }
        i += (size_t)len;
    }
    return v;
}

/* ---------------------------------------------------------------------- */
/* Driving the validator                                                   */

/*
 * Feed p[0..n) in pieces ending at cuts[] (ascending, may repeat: empty
 * pieces are legal), keep feeding after a failure to check it sticks, and
 * fold everything into one verdict with an absolute offset.
 */
static struct verdict run_cuts(const uint8_t *p, size_t n,
                               const size_t *cuts, size_t ncuts)
{
    struct verdict v = { K_VALID, 0 }, broken = { K_BROKEN, 0 };
    struct wse_utf8 u;
    size_t start = 0;
    int failed = 0;

    wse_utf8_init(&u);
    for (size_t c = 0; c <= ncuts; c++) {
        size_t stop = c < ncuts ? cuts[c] : n;
        size_t bad = SIZE_MAX;
        int rc = wse_utf8_feed(&u, p + start, stop - start, &bad);

        if (failed) {
            if (rc != WSE_FAIL || bad != 0)
                return broken;
        } else if (rc == WSE_FAIL) {
            if (bad >= stop - start)
                return broken;
            v.kind = K_BAD, v.off = start + bad;
            failed = 1;
        } else if (rc != WSE_OK || bad != SIZE_MAX) {
            return broken;      /* *bad is only written on failure */
        }
        start = stop;
    }
    if (failed)
        return wse_utf8_end(&u) == WSE_FAIL ? v : broken;
    if (wse_utf8_end(&u) == WSE_OK) {
        if (u.state != 0)
            return broken;      /* header: zero means between code points */
        v.kind = K_VALID;
    } else {
        v.kind = K_TRUNC;
    }
    return v;
}

static struct verdict run_whole(const uint8_t *p, size_t n)
{
    return run_cuts(p, n, NULL, 0);
}

static struct verdict run_bytewise(const uint8_t *p, size_t n)
{
    size_t cuts[256];

    ck_assert(n <= countof(cuts));
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    return run_cuts(p, n, cuts, n);
}

/*
 * Check one input every way we know: reference, whole, wse_utf8_valid,
 * one byte at a time, every split into two and (for short inputs) into
 * three.  Returns NULL or a description of the first disagreement.
 */
static const char *all_ways(const uint8_t *p, size_t n, struct verdict want)
{
    struct verdict got;

    got = ref_check(p, n);
    if (!same(got, want))
        return describe(p, n, "reference", got, want);
    got = run_whole(p, n);
    if (!same(got, want))
        return describe(p, n, "whole", got, want);
    if ((wse_utf8_valid(p, n) == WSE_OK) != (want.kind == K_VALID))
        return describe(p, n, "wse_utf8_valid", got, want);
    got = run_bytewise(p, n);
    if (!same(got, want))
        return describe(p, n, "bytewise", got, want);
    for (size_t c = 0; c <= n; c++) {
        got = run_cuts(p, n, &c, 1);
        if (!same(got, want))
            return describe(p, n, "two pieces", got, want);
    }
    if (n <= 40) {
        for (size_t c1 = 0; c1 <= n; c1++)
            for (size_t c2 = c1; c2 <= n; c2++) {
                size_t cuts[2] = { c1, c2 };

                got = run_cuts(p, n, cuts, 2);
                if (!same(got, want))
                    return describe(p, n, "three pieces", got, want);
            }
    }
    return NULL;
}

/*
 * Embed the input between ASCII runs so that it meets the word-at-a-time
 * path at every alignment, on both sides.
 */
static const char *embedded(const uint8_t *p, size_t n, struct verdict want)
{
    static const size_t sufs[] = { 0, 1, 9, 23 };
    uint8_t buf[512];

    for (size_t pre = 0; pre < 18; pre++)
        for (size_t s = 0; s < countof(sufs); s++) {
            size_t len = pre + n + sufs[s];
            struct verdict w = want, got;

            ck_assert(len <= sizeof(buf));
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)(' ' + i % 90);
            memcpy(buf + pre, p, n);
            if (w.kind == K_BAD)
                w.off += pre;
            else if (w.kind == K_TRUNC && sufs[s] > 0)
                w.kind = K_BAD, w.off = pre + n;   /* ASCII cannot continue it */
            got = run_whole(buf, len);
            if (!same(got, w))
                return describe(buf, len, "embedded", got, w);
            got = ref_check(buf, len);
            if (!same(got, w))
                return describe(buf, len, "embedded reference", got, w);
        }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Markus Kuhn's decoder stress test, plus the boundaries RFC 3629 draws   */

struct ucase {
    const char *name;
    const char *bytes;
    size_t len;
    enum kind kind;
    size_t off;
};

#define VALID(name, s)    { name, s, sizeof(s) - 1, K_VALID, 0 }
#define TRUNC(name, s)    { name, s, sizeof(s) - 1, K_TRUNC, 0 }
#define BAD(name, s, off) { name, s, sizeof(s) - 1, K_BAD, off }

static const struct ucase cases[] = {
    /* 1 - some correct UTF-8 text */
    VALID("1 kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"),
    VALID("empty", ""),
    VALID("mixed scripts",
          "Hello \xD0\xBC\xD0\xB8\xD1\x80, \xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xBF\xCF\x82, "
          "\xE4\xB8\x96\xE7\x95\x8C, \xD8\xB3\xD9\x84\xD8\xA7\xD9\x85."),
    VALID("emoji", "ok \xF0\x9F\x98\x80 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!"),

    /* 2.1 - first possible sequence of a certain length */
    VALID("2.1.1 U+0000", "\x00"),
    VALID("2.1.2 U+0080", "\xC2\x80"),
    VALID("2.1.3 U+0800", "\xE0\xA0\x80"),
    VALID("2.1.4 U+10000", "\xF0\x90\x80\x80"),
    BAD("2.1.5 U+200000 (5 bytes)", "\xF8\x88\x80\x80\x80", 0),
    BAD("2.1.6 U+4000000 (6 bytes)", "\xFC\x84\x80\x80\x80\x80", 0),

    /* 2.2 - last possible sequence of a certain length */
    VALID("2.2.1 U+007F", "\x7F"),
    VALID("2.2.2 U+07FF", "\xDF\xBF"),
    VALID("2.2.3 U+FFFF", "\xEF\xBF\xBF"),
    BAD("2.2.4 U+1FFFFF", "\xF7\xBF\xBF\xBF", 0),
    BAD("2.2.5 U+3FFFFFF", "\xFB\xBF\xBF\xBF\xBF", 0),
    BAD("2.2.6 U+7FFFFFFF", "\xFD\xBF\xBF\xBF\xBF\xBF", 0),

    /* 2.3 - other boundary conditions */
    VALID("2.3.1 U+D7FF", "\xED\x9F\xBF"),
    VALID("2.3.2 U+E000", "\xEE\x80\x80"),
    VALID("2.3.3 U+FFFD", "\xEF\xBF\xBD"),
    VALID("2.3.4 U+10FFFF", "\xF4\x8F\xBF\xBF"),
    BAD("2.3.5 U+110000", "\xF4\x90\x80\x80", 1),
    VALID("U+3FFFF", "\xF0\xBF\xBF\xBF"),
    VALID("U+40000", "\xF1\x80\x80\x80"),
    VALID("U+FFFFF", "\xF3\xBF\xBF\xBF"),
    VALID("U+100000", "\xF4\x80\x80\x80"),
    VALID("U+0FFF", "\xE0\xBF\xBF"),
    VALID("U+1000", "\xE1\x80\x80"),
    VALID("U+CFFF", "\xEC\xBF\xBF"),
    VALID("U+D000", "\xED\x80\x80"),
    VALID("U+FFFF/U+10000", "\xEF\xBF\xBF\xF0\x90\x80\x80"),
    BAD("U+13FFFF", "\xF4\xBF\xBF\xBF", 1),
    BAD("U+140000 (F5)", "\xF5\x80\x80\x80", 0),

    /* 3.1 - unexpected continuation bytes */
    BAD("3.1.1 first continuation byte", "\x80", 0),
    BAD("3.1.2 last continuation byte", "\xBF", 0),
    BAD("3.1.3 2 continuation bytes", "\x80\xBF", 0),
    BAD("3.1.4 3 continuation bytes", "\x80\xBF\x80", 0),
    BAD("3.1.5 4 continuation bytes", "\x80\xBF\x80\xBF", 0),
    BAD("3.1.6 5 continuation bytes", "\x80\xBF\x80\xBF\x80", 0),
    BAD("3.1.7 6 continuation bytes", "\x80\xBF\x80\xBF\x80\xBF", 0),
    BAD("3.1.8 7 continuation bytes", "\x80\xBF\x80\xBF\x80\xBF\x80", 0),
    BAD("3.1.9 all 64 continuation bytes",
        "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8A\x8B\x8C\x8D\x8E\x8F"
        "\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9A\x9B\x9C\x9D\x9E\x9F"
        "\xA0\xA1\xA2\xA3\xA4\xA5\xA6\xA7\xA8\xA9\xAA\xAB\xAC\xAD\xAE\xAF"
        "\xB0\xB1\xB2\xB3\xB4\xB5\xB6\xB7\xB8\xB9\xBA\xBB\xBC\xBD\xBE\xBF", 0),
    BAD("continuation after 1-byte", "a\x80", 1),
    BAD("continuation after 2-byte", "\xC2\x80\x80", 2),
    BAD("continuation after 3-byte", "\xE2\x82\xAC\xAC", 3),
    BAD("continuation after 4-byte", "\xF0\x9F\x98\x80\x80", 4),

    /* 3.2 - lonely start characters (each one is also run alone, below) */
    BAD("3.2.1 all 2-byte leads + space",
        "\xC0 \xC1 \xC2 \xC3 \xC4 \xC5 \xC6 \xC7 \xC8 \xC9 \xCA \xCB \xCC \xCD \xCE \xCF "
        "\xD0 \xD1 \xD2 \xD3 \xD4 \xD5 \xD6 \xD7 \xD8 \xD9 \xDA \xDB \xDC \xDD \xDE \xDF ", 0),
    BAD("3.2.1 C2..DF + space",
        "\xC2 \xC3 \xC4 \xC5 \xC6 \xC7 \xC8 \xC9 \xCA \xCB \xCC \xCD \xCE \xCF "
        "\xD0 \xD1 \xD2 \xD3 \xD4 \xD5 \xD6 \xD7 \xD8 \xD9 \xDA \xDB \xDC \xDD \xDE \xDF ", 1),
    BAD("3.2.2 all 3-byte leads + space",
        "\xE0 \xE1 \xE2 \xE3 \xE4 \xE5 \xE6 \xE7 \xE8 \xE9 \xEA \xEB \xEC \xED \xEE \xEF ", 1),
    BAD("3.2.3 all 4-byte leads + space", "\xF0 \xF1 \xF2 \xF3 \xF4 \xF5 \xF6 \xF7 ", 1),
    BAD("3.2.4 all 5-byte leads + space", "\xF8 \xF9 \xFA \xFB ", 0),
    BAD("3.2.5 all 6-byte leads + space", "\xFC \xFD ", 0),

    /* 3.3 - sequences with last continuation byte missing */
    BAD("3.3.1 2-byte U+0000", "\xC0", 0),
    BAD("3.3.2 3-byte U+0000", "\xE0\x80", 1),
    BAD("3.3.3 4-byte U+0000", "\xF0\x80\x80", 1),
    BAD("3.3.4 5-byte U+0000", "\xF8\x80\x80\x80", 0),
    BAD("3.3.5 6-byte U+0000", "\xFC\x80\x80\x80\x80", 0),
    TRUNC("3.3.6 2-byte U+07FF", "\xDF"),
    TRUNC("3.3.7 3-byte U+FFFF", "\xEF\xBF"),
    BAD("3.3.8 4-byte U+1FFFFF", "\xF7\xBF\xBF", 0),
    BAD("3.3.9 5-byte U+3FFFFFF", "\xFB\xBF\xBF\xBF", 0),
    BAD("3.3.10 6-byte U+7FFFFFFF", "\xFD\xBF\xBF\xBF\xBF", 0),
    TRUNC("C2", "\xC2"),
    TRUNC("E0", "\xE0"),
    TRUNC("E0 A0", "\xE0\xA0"),
    TRUNC("E1 80", "\xE1\x80"),
    TRUNC("ED", "\xED"),
    TRUNC("ED 9F", "\xED\x9F"),
    TRUNC("F0", "\xF0"),
    TRUNC("F0 90", "\xF0\x90"),
    TRUNC("F0 90 80", "\xF0\x90\x80"),
    TRUNC("F1 80 80", "\xF1\x80\x80"),
    TRUNC("F4", "\xF4"),
    TRUNC("F4 8F", "\xF4\x8F"),
    TRUNC("F4 8F BF", "\xF4\x8F\xBF"),
    TRUNC("text then F3 BF BF", "abc\xF3\xBF\xBF"),

    /* 3.4 - concatenation of incomplete sequences */
    BAD("3.4 concatenation of 3.3",
        "\xC0\xE0\x80\xF0\x80\x80\xF8\x80\x80\x80\xFC\x80\x80\x80\x80"
        "\xDF\xEF\xBF\xF7\xBF\xBF\xFB\xBF\xBF\xBF\xFD\xBF\xBF\xBF\xBF", 0),
    BAD("3.4 incomplete with legal leads", "\xDF\xEF\xBF\xF4\x8F\xBF", 1),
    BAD("3.4 3-byte cut by a new lead", "\xE2\x82\xE2\x82\xAC", 2),
    BAD("3.4 4-byte cut by a new lead", "\xF0\x9F\x98\xF0\x9F\x98\x80", 3),

    /* 3.5 - impossible bytes */
    BAD("3.5.1 fe", "\xFE", 0),
    BAD("3.5.2 ff", "\xFF", 0),
    BAD("3.5.3 fe fe ff ff", "\xFE\xFE\xFF\xFF", 0),

    /* 4.1 - overlong ASCII "/" */
    BAD("4.1.1 C0 AF", "\xC0\xAF", 0),
    BAD("4.1.2 E0 80 AF", "\xE0\x80\xAF", 1),
    BAD("4.1.3 F0 80 80 AF", "\xF0\x80\x80\xAF", 1),
    BAD("4.1.4 F8 80 80 80 AF", "\xF8\x80\x80\x80\xAF", 0),
    BAD("4.1.5 FC 80 80 80 80 AF", "\xFC\x80\x80\x80\x80\xAF", 0),

    /* 4.2 - maximum overlong sequences */
    BAD("4.2.1 U+007F as 2 bytes", "\xC1\xBF", 0),
    BAD("4.2.2 U+07FF as 3 bytes", "\xE0\x9F\xBF", 1),
    BAD("4.2.3 U+FFFF as 4 bytes", "\xF0\x8F\xBF\xBF", 1),
    BAD("4.2.4 U+1FFFFF as 5 bytes", "\xF8\x87\xBF\xBF\xBF", 0),
    BAD("4.2.5 U+3FFFFFF as 6 bytes", "\xFC\x83\xBF\xBF\xBF\xBF", 0),

    /* 4.3 - overlong NUL */
    BAD("4.3.1 C0 80", "\xC0\x80", 0),
    BAD("4.3.2 E0 80 80", "\xE0\x80\x80", 1),
    BAD("4.3.3 F0 80 80 80", "\xF0\x80\x80\x80", 1),
    BAD("4.3.4 F8 80 80 80 80", "\xF8\x80\x80\x80\x80", 0),
    BAD("4.3.5 FC 80 80 80 80 80", "\xFC\x80\x80\x80\x80\x80", 0),
    BAD("overlong after text", "abc\xE0\x9F\x80", 4),

    /* 5.1 - single UTF-16 surrogates */
    BAD("5.1.1 U+D800", "\xED\xA0\x80", 1),
    BAD("5.1.2 U+DB7F", "\xED\xAD\xBF", 1),
    BAD("5.1.3 U+DB80", "\xED\xAE\x80", 1),
    BAD("5.1.4 U+DBFF", "\xED\xAF\xBF", 1),
    BAD("5.1.5 U+DC00", "\xED\xB0\x80", 1),
    BAD("5.1.6 U+DF80", "\xED\xBE\x80", 1),
    BAD("5.1.7 U+DFFF", "\xED\xBF\xBF", 1),
    BAD("surrogate truncated", "\xED\xA0", 1),

    /* 5.2 - paired UTF-16 surrogates */
    BAD("5.2.1 U+D800 U+DC00", "\xED\xA0\x80\xED\xB0\x80", 1),
    BAD("5.2.2 U+D800 U+DFFF", "\xED\xA0\x80\xED\xBF\xBF", 1),
    BAD("5.2.3 U+DB7F U+DC00", "\xED\xAD\xBF\xED\xB0\x80", 1),
    BAD("5.2.4 U+DB7F U+DFFF", "\xED\xAD\xBF\xED\xBF\xBF", 1),
    BAD("5.2.5 U+DB80 U+DC00", "\xED\xAE\x80\xED\xB0\x80", 1),
    BAD("5.2.6 U+DB80 U+DFFF", "\xED\xAE\x80\xED\xBF\xBF", 1),
    BAD("5.2.7 U+DBFF U+DC00", "\xED\xAF\xBF\xED\xB0\x80", 1),
    BAD("5.2.8 U+DBFF U+DFFF", "\xED\xAF\xBF\xED\xBF\xBF", 1),

    /* 5.3 - noncharacters: valid UTF-8 (RFC 3629 only bans surrogates) */
    VALID("5.3.1 U+FFFE", "\xEF\xBF\xBE"),
    VALID("5.3.2 U+FFFF", "\xEF\xBF\xBF"),
    VALID("5.3.3 U+FDD0", "\xEF\xB7\x90"),
    VALID("5.3.3 U+FDEF", "\xEF\xB7\xAF"),
    VALID("5.3.4 U+1FFFE U+1FFFF", "\xF0\x9F\xBF\xBE\xF0\x9F\xBF\xBF"),
    VALID("5.3.4 U+10FFFE U+10FFFF", "\xF4\x8F\xBF\xBE\xF4\x8F\xBF\xBF"),

    /* The offsets the module's contract spells out. */
    BAD("C2 41", "\xC2" "A", 1),
    BAD("E0 80", "\xE0\x80", 1),
    BAD("F4 90", "\xF4\x90", 1),
    BAD("lone 80", "\x80", 0),
};

START_TEST(test_cases)
{
    const struct ucase *c = &cases[_i];
    const uint8_t *p = (const uint8_t *)c->bytes;
    struct verdict want = { c->kind, c->off };
    const char *err;

    err = all_ways(p, c->len, want);
    ck_assert_msg(err == NULL, "%s: %s", c->name, err);
    err = embedded(p, c->len, want);
    ck_assert_msg(err == NULL, "%s: %s", c->name, err);
}
END_TEST

/* 3.2: every byte that cannot be followed by a space, one at a time. */
START_TEST(test_lonely_start)
{
    uint8_t s[2] = { (uint8_t)(0xC0 + _i), ' ' };
    int never = s[0] <= 0xC1 || s[0] >= 0xF5;
    struct verdict want = { K_BAD, never ? 0 : 1 };
    const char *err = all_ways(s, 2, want);

    ck_assert_msg(err == NULL, "%s", err);
    want.kind = never ? K_BAD : K_TRUNC;
    err = all_ways(s, 1, want);
    ck_assert_msg(err == NULL, "%s", err);
}
END_TEST

/* 3.1.9: each continuation byte alone, after ASCII, after a full sequence. */
START_TEST(test_continuation_bytes)
{
    uint8_t c = (uint8_t)(0x80 + _i);
    uint8_t a[1] = { c }, b[3] = { 'x', 'y', c }, d[5] = { 0xE2, 0x82, 0xAC, c, 'z' };
    struct verdict w0 = { K_BAD, 0 }, w2 = { K_BAD, 2 }, w3 = { K_BAD, 3 };
    const char *err;

    err = all_ways(a, 1, w0);
    ck_assert_msg(err == NULL, "%s", err);
    err = all_ways(b, 3, w2);
    ck_assert_msg(err == NULL, "%s", err);
    err = all_ways(d, 5, w3);
    ck_assert_msg(err == NULL, "%s", err);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Exhaustive comparisons with the reference                               */

static size_t mismatches;
static uint8_t first_bad[256];
static size_t first_bad_len;
static struct verdict first_got, first_want;

static void compare(const uint8_t *p, size_t n, struct verdict got, struct verdict want)
{
    if (same(got, want))
        return;
    if (mismatches++ == 0) {
        first_bad_len = n < sizeof(first_bad) ? n : sizeof(first_bad);
        memcpy(first_bad, p, first_bad_len);
        first_got = got;
        first_want = want;
    }
}

/* Whole, and split before the last byte (the DFA's carried state). */
static void compare_ref(const uint8_t *p, size_t n)
{
    struct verdict want = ref_check(p, n);
    size_t cut = n ? n - 1 : 0;

    compare(p, n, run_whole(p, n), want);
    compare(p, n, run_cuts(p, n, &cut, 1), want);
}

static void assert_no_mismatch(const char *what)
{
    ck_assert_msg(mismatches == 0, "%s: %zu mismatches, first %s", what, mismatches,
                  describe(first_bad, first_bad_len, "", first_got, first_want));
}

START_TEST(test_exhaustive_1_2)
{
    uint8_t s[2];

    mismatches = 0;
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        compare_ref(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            compare_ref(s, 2);
        }
    }
    assert_no_mismatch("1- and 2-byte");
}
END_TEST

START_TEST(test_exhaustive_3)
{
    uint8_t s[3];

    mismatches = 0;
    for (unsigned a = 0xE0; a <= 0xEF; a++) {
        s[0] = (uint8_t)a;
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                compare_ref(s, 3);
            }
        }
    }
    assert_no_mismatch("3-byte E0..EF");
}
END_TEST

/*
 * Lead F0..F4, every second byte, and third/fourth bytes drawn from all
 * continuations plus one representative of every other byte class.
 */
START_TEST(test_exhaustive_4)
{
    static const uint8_t other[] = { 0x00, 0x41, 0x7F, 0xC0, 0xC2, 0xDF, 0xE0,
                                     0xED, 0xF0, 0xF4, 0xF5, 0xFF };
    uint8_t tail[64 + sizeof(other)];
    uint8_t s[4];

    for (size_t i = 0; i < 64; i++)
        tail[i] = (uint8_t)(0x80 + i);
    memcpy(tail + 64, other, sizeof(other));

    mismatches = 0;
    for (unsigned a = 0xF0; a <= 0xF4; a++) {
        s[0] = (uint8_t)a;
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            for (size_t c = 0; c < sizeof(tail); c++) {
                s[2] = tail[c];
                compare_ref(s, 3);
                for (size_t d = 0; d < sizeof(tail); d++) {
                    s[3] = tail[d];
                    compare(s, 4, run_whole(s, 4), ref_check(s, 4));
                }
            }
        }
    }
    /* Splits of the 4-byte forms, on a lighter grid. */
    for (unsigned a = 0xF0; a <= 0xF4; a++)
        for (unsigned b = 0x80; b <= 0xBF; b++)
            for (unsigned c = 0x7F; c <= 0xC0; c += 0x0F)
                for (unsigned d = 0x7F; d <= 0xC0; d += 0x0F) {
                    uint8_t q[4] = { (uint8_t)a, (uint8_t)b, (uint8_t)c, (uint8_t)d };
                    struct verdict want = ref_check(q, 4);

                    for (size_t cut = 0; cut <= 4; cut++)
                        compare(q, 4, run_cuts(q, 4, &cut, 1), want);
                    compare(q, 4, run_bytewise(q, 4), want);
                }
    assert_no_mismatch("4-byte F0..F4");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The ASCII word-at-a-time path                                           */

/*
 * For every alignment and length up to 64, plant each interesting byte (or
 * short sequence) at every position of an ASCII run, and compare with the
 * reference.  Lengths straddle the 8- and 16-byte strides and their tails.
 */
START_TEST(test_ascii_fast_path)
{
    static const struct {
        uint8_t b[4];
        size_t n;
    } plant[] = {
        { { 0x80 }, 1 }, { { 0xBF }, 1 }, { { 0xC0 }, 1 }, { { 0xC2 }, 1 },
        { { 0xE0 }, 1 }, { { 0xED }, 1 }, { { 0xF4 }, 1 }, { { 0xF5 }, 1 },
        { { 0xFF }, 1 }, { { 0xC3, 0xA9 }, 2 }, { { 0xE2, 0x82, 0xAC }, 3 },
        { { 0xF0, 0x9F, 0x98, 0x80 }, 4 }, { { 0xE0, 0x80 }, 2 },
    };
    uint8_t buf[8 + 64 + 8];

    mismatches = 0;
    for (size_t align = 0; align < 8; align++)
        for (size_t len = 0; len <= 64; len++)
            for (size_t k = 0; k < countof(plant); k++)
                for (size_t pos = 0; pos <= len; pos++) {
                    uint8_t *p = buf + align;
                    size_t n = len;

                    /* Include 0x00 and 0x7F: the mask must not see them. */
                    for (size_t i = 0; i < sizeof(buf); i++)
                        buf[i] = (uint8_t)(i % 3 == 0 ? 0x7F : i % 5 == 0 ? 0x00 : 'a' + i % 26);
                    if (pos < len) {
                        size_t m = plant[k].n;

                        if (pos + m > len)
                            m = len - pos;
                        memcpy(p + pos, plant[k].b, m);
                    } else if (k > 0) {
                        continue;   /* the pure-ASCII run, once */
                    }
                    struct verdict want = ref_check(p, n);

                    compare(p, n, run_whole(p, n), want);
                    if (align == 0) {
                        for (size_t cut = 0; cut <= n; cut += 3)
                            compare(p, n, run_cuts(p, n, &cut, 1), want);
                    }
                    /* The reference itself: a plant of one bad byte. */
                    if (pos < len && plant[k].n == 1 &&
                        (plant[k].b[0] < 0xC2 || plant[k].b[0] > 0xF4)) {
                        struct verdict exact = { K_BAD, pos };
                        compare(p, n, want, exact);
                    }
                }
    assert_no_mismatch("ASCII fast path");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Random differential test                                                */

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Encode cp in exactly len bytes, overlong or out of range if asked to. */
static size_t enc(uint32_t cp, size_t len, uint8_t *out)
{
    static const uint8_t lead[5] = { 0, 0x00, 0xC0, 0xE0, 0xF0 };

    for (size_t i = len - 1; i > 0; i--, cp >>= 6)
        out[i] = (uint8_t)(0x80 | (cp & 0x3F));
    out[0] = (uint8_t)(lead[len] | cp);
    return len;
}

static size_t enc_valid(uint32_t cp, uint8_t *out)
{
    return enc(cp, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4, out);
}

static uint32_t rnd_scalar(void)
{
    static const uint32_t edge[] = { 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000,
                                     0xFFFD, 0xFFFF, 0x10000, 0x10FFFF, 0xFEFF };
    uint32_t cp;

    switch (rnd() % 5) {
    case 0: return edge[rnd() % countof(edge)];
    case 1: return 0x80 + rnd() % 0x780;
    case 2: return 0x10000 + rnd() % 0x100000;
    default:
        do
            cp = 0x800 + rnd() % 0xF800;
        while (cp >= 0xD800 && cp <= 0xDFFF);
        return cp;
    }
}

static size_t gen(uint8_t *out, size_t cap)
{
    size_t n = 0, want = rnd() % cap;
    uint8_t t[8];

    while (n + 8 < want) {
        size_t m;
        unsigned r = rnd() % 64;

        if (r < 24) {           /* an ASCII run, long enough for the fast path */
            m = 1 + rnd() % 20;
            if (m > cap - n)
                m = cap - n;
            for (size_t i = 0; i < m; i++)
                out[n + i] = (uint8_t)(0x20 + rnd() % 95);
            n += m;
            continue;
        } else if (r < 58) {
            m = enc_valid(rnd_scalar(), t);
        } else if (r == 58) {
            t[0] = (uint8_t)rnd(), m = 1;
        } else if (r == 59) {
            t[0] = (uint8_t)(0x80 + rnd() % 64), m = 1;
        } else if (r == 60) {
            m = enc_valid(0x80 + rnd() % 0x10FF80, t);
            m = 1 + rnd() % m;          /* maybe truncated */
        } else if (r == 61) {
            m = enc(0xD800 + rnd() % 0x800, 3, t);
        } else if (r == 62) {
            uint32_t cp = rnd() % 0x10000;
            m = enc(cp, cp < 0x80 ? 2 + rnd() % 3 : cp < 0x800 ? 3 + rnd() % 2 : 4, t);
        } else {
            m = enc(0x110000 + rnd() % 0xF0000, 4, t);
        }
        memcpy(out + n, t, m);
        n += m;
    }
    if (rnd() % 8 == 0) {       /* end inside a sequence */
        size_t m = enc_valid(0x80 + rnd() % 0x10FF80, t);

        if (m > 1 && n + m <= cap) {
            memcpy(out + n, t, m);
            n += 1 + rnd() % (m - 1);
        }
    }
    return n;
}

START_TEST(test_random)
{
    uint8_t buf[256];

    rng = UINT64_C(0x9E3779B97F4A7C15);
    mismatches = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = gen(buf, 200);
        struct verdict want = ref_check(buf, n);
        size_t cuts[4];

        compare(buf, n, run_whole(buf, n), want);
        compare(buf, n, run_bytewise(buf, n), want);
        for (size_t c = 0; c <= n; c++)
            compare(buf, n, run_cuts(buf, n, &c, 1), want);
        for (int j = 0; j < 8; j++) {
            for (size_t k = 0; k < 4; k++)
                cuts[k] = n ? rnd() % (n + 1) : 0;
            for (size_t a = 0; a < 4; a++)       /* sort the four cuts */
                for (size_t b = a + 1; b < 4; b++)
                    if (cuts[b] < cuts[a]) {
                        size_t tmp = cuts[a];
                        cuts[a] = cuts[b], cuts[b] = tmp;
                    }
            compare(buf, n, run_cuts(buf, n, cuts, 4), want);
        }
    }
    assert_no_mismatch("random");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* State handling                                                          */

START_TEST(test_sticky_failure)
{
    struct wse_utf8 u;
    size_t bad = 99;

    wse_utf8_init(&u);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"ab\xC0\x80" "cd", 6, &bad), WSE_FAIL);
    ck_assert_uint_eq(bad, 2);
    /* Valid text, continuation bytes, empty input and NULL bad all stay failed. */
    bad = 99;
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"hello", 5, &bad), WSE_FAIL);
    ck_assert_uint_eq(bad, 0);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"\x80", 1, &bad), WSE_FAIL);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"", 0, &bad), WSE_FAIL);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"x", 1, NULL), WSE_FAIL);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_FAIL);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_FAIL);

    /* Failing in a later call, and with bad == NULL. */
    wse_utf8_init(&u);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"\xE2\x82", 2, NULL), WSE_OK);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"A", 1, NULL), WSE_FAIL);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"\xAC", 1, NULL), WSE_FAIL);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_FAIL);

    /* Re-initialising is the only way out. */
    wse_utf8_init(&u);
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"ok", 2, &bad), WSE_OK);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_OK);
}
END_TEST

START_TEST(test_end)
{
    static const char *const seqs[] = {
        "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
        "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF3\xBF\xBF\xBF", "\xF4\x8F\xBF\xBF",
    };
    struct wse_utf8 u;

    /* Nothing fed, and empty feeds (even with p == NULL) are boundaries. */
    wse_utf8_init(&u);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_OK);
    ck_assert_int_eq(wse_utf8_feed(&u, NULL, 0, NULL), WSE_OK);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_OK);
    ck_assert_int_eq(wse_utf8_valid(NULL, 0), WSE_OK);

    /* A zeroed struct is a fresh validator, as the header promises. */
    memset(&u, 0, sizeof(u));
    ck_assert_int_eq(wse_utf8_feed(&u, (const uint8_t *)"\xC3\xA9", 2, NULL), WSE_OK);
    ck_assert_int_eq(wse_utf8_end(&u), WSE_OK);
    ck_assert_uint_eq(u.state, 0);

    for (size_t k = 0; k < countof(seqs); k++) {
        const uint8_t *s = (const uint8_t *)seqs[k];
        size_t n = strlen(seqs[k]);

        for (size_t cut = 1; cut < n; cut++) {
            wse_utf8_init(&u);
            ck_assert_int_eq(wse_utf8_feed(&u, s, cut, NULL), WSE_OK);
            ck_assert_msg(wse_utf8_end(&u) == WSE_FAIL, "seq %zu cut %zu", k, cut);
            ck_assert_int_eq(wse_utf8_valid(s, cut), WSE_FAIL);
            /* end() only looks: finishing the sequence still works. */
            ck_assert_int_eq(wse_utf8_feed(&u, s + cut, 0, NULL), WSE_OK);
            ck_assert_int_eq(wse_utf8_feed(&u, s + cut, n - cut, NULL), WSE_OK);
            ck_assert_int_eq(wse_utf8_end(&u), WSE_OK);
        }
        ck_assert_int_eq(wse_utf8_valid(s, n), WSE_OK);
    }
}
END_TEST

/* A long buffer that fails near its end: the offset must still be exact. */
START_TEST(test_long_buffers)
{
    static uint8_t big[1 << 16];
    struct verdict got;

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)('a' + i % 26);
    got = run_whole(big, sizeof(big));
    ck_assert_int_eq(got.kind, K_VALID);

    for (size_t at = sizeof(big) - 40; at < sizeof(big); at++) {
        uint8_t save = big[at];

        big[at] = 0xFF;
        got = run_whole(big, sizeof(big));
        ck_assert_int_eq(got.kind, K_BAD);
        ck_assert_uint_eq(got.off, at);
        big[at] = save;
    }

    /* Multi-byte text all the way (the DFA path), with one surrogate. */
    size_t n = 0;
    while (n + 3 <= sizeof(big)) {
        big[n++] = 0xE4, big[n++] = 0xB8, big[n++] = 0xAD;   /* U+4E2D */
    }
    got = run_whole(big, n);
    ck_assert_int_eq(got.kind, K_VALID);
    big[n - 30] = 0xED, big[n - 29] = 0xA0;
    got = run_whole(big, n);
    ck_assert_int_eq(got.kind, K_BAD);
    ck_assert_uint_eq(got.off, n - 29);
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc;

    tc = tcase_create("stress");
    tcase_add_loop_test(tc, test_cases, 0, (int)countof(cases));
    tcase_add_loop_test(tc, test_lonely_start, 0, 0x40);
    tcase_add_loop_test(tc, test_continuation_bytes, 0, 0x40);
    suite_add_tcase(s, tc);

    tc = tcase_create("exhaustive");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_exhaustive_1_2);
    tcase_add_test(tc, test_exhaustive_3);
    tcase_add_test(tc, test_exhaustive_4);
    tcase_add_test(tc, test_ascii_fast_path);
    tcase_add_test(tc, test_random);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_test(tc, test_sticky_failure);
    tcase_add_test(tc, test_end);
    tcase_add_test(tc, test_long_buffers);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
