/*
 * test_pmdz.c - the permessage-deflate streams (pmdz.h).
 *
 * Inflate is checked on RFC 7692's own examples (7.2.3) and on messages
 * compressed by Python's zlib (pmdz_vectors.h), split at every position;
 * deflate by decoding its output with a plain zlib inflater set up here (not
 * through pmdz), the tail appended as a receiver does.  Memory is checked
 * against what zlib really asks of the allocator.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "frame.h"
#include "pmdz.h"
#include "pmdz_vectors.h"

#define MAX (1u << 20)

static uint8_t *mem_for(size_t n)
{
    uint8_t *m = malloc(n);
    ck_assert_ptr_nonnull(m);
    return m;
}

static uint8_t *sample(size_t n, unsigned seed, bool text);

/* ---- inflate helpers ---- */

struct inf {
    struct wse_inflate in;
    uint8_t *mem;
};

static void inf_open(struct inf *f, unsigned bits, bool takeover, uint64_t max)
{
    size_t n = wse_inflate_mem(bits);
    f->mem = mem_for(n);
    ck_assert_int_eq(wse_inflate_init(&f->in, f->mem, n, bits, takeover, max), WSE_OK);
}

static void inf_close(struct inf *f)
{
    inflateEnd(&f->in.zs);
    free(f->mem);
}

/*
 * Inflates one message given as pieces (cuts: the offsets where a new piece
 * starts, ascending) into out; returns WSE_AGAIN on success (the whole
 * message), WSE_FAIL with in->code.  *olen is what came out before.
 */
static int inflate_msg(struct wse_inflate *in, const uint8_t *p, size_t n, const size_t *cuts,
                       size_t ncuts, size_t cap, uint8_t *out, size_t out_cap, size_t *olen)
{
    uint8_t *buf = malloc(cap < 32768 ? 32768 : cap);
    size_t start = 0;
    int rc = WSE_AGAIN;

    ck_assert_ptr_nonnull(buf);
    *olen = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        /* Each piece in an allocation of its own: ASan sees a read past it. */
        uint8_t *piece = malloc(end - start + 1);
        ck_assert_ptr_nonnull(piece);
        memcpy(piece, p + start, end - start);
        wse_inflate_input(in, piece, end - start, k == 0, k == ncuts);
        size_t got;
        while ((rc = wse_inflate_next(in, buf, cap, &got)) == WSE_OK) {
            ck_assert_uint_gt(got, 0);
            ck_assert_uint_le(got, cap);
            ck_assert_uint_le(*olen + got, out_cap);
            memcpy(out + *olen, buf, got);
            *olen += got;
        }
        free(piece);
        if (rc == WSE_FAIL)
            break;
        start = end;
    }
    free(buf);
    return rc;
}

static void expect_msg(struct wse_inflate *in, const uint8_t *p, size_t n, const void *want,
                       size_t want_len)
{
    uint8_t out[4096];
    size_t olen;

    /* 32 KiB: with takeover, the window's carry-over after BFINAL borrows it. */
    ck_assert_int_eq(inflate_msg(in, p, n, NULL, 0, 32768, out, sizeof out, &olen), WSE_AGAIN);
    ck_assert_uint_eq(olen, want_len);
    ck_assert(memcmp(out, want, want_len) == 0);
}

static int fail_msg(struct wse_inflate *in, const uint8_t *p, size_t n)
{
    uint8_t out[4096];
    size_t olen;

    ck_assert_int_eq(inflate_msg(in, p, n, NULL, 0, 4096, out, sizeof out, &olen), WSE_FAIL);
    return in->code;
}

/* RFC 7692 7.2.3's examples. */
static const uint8_t HELLO[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
static const uint8_t HELLO_AGAIN[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };     /* 7.2.3.2 */
static const uint8_t HELLO_STORED[] = { 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65,
                                        0x6c, 0x6c, 0x6f, 0x00 };           /* 7.2.3.3 */
static const uint8_t HELLO_BFINAL[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00 };
static const uint8_t HELLO_TWO[] = { 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                     0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00 };  /* 7.2.3.5 */
static const uint8_t EMPTY[] = { 0x00 };                                    /* 7.2.3.6 */

START_TEST(test_rfc_examples)
{
    struct inf f;

    inf_open(&f, 15, false, MAX);
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    expect_msg(&f.in, HELLO_STORED, sizeof HELLO_STORED, "Hello", 5);
    expect_msg(&f.in, HELLO_BFINAL, sizeof HELLO_BFINAL, "Hello", 5);
    expect_msg(&f.in, HELLO_TWO, sizeof HELLO_TWO, "Hello", 5);
    expect_msg(&f.in, EMPTY, sizeof EMPTY, "", 0);
    /* An empty payload is an empty message, and leaves the stream usable. */
    expect_msg(&f.in, EMPTY, 0, "", 0);
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    inf_close(&f);
}
END_TEST

/* 7.2.3.2: the second "Hello" refers to the first; only takeover has it. */
START_TEST(test_takeover)
{
    struct inf f;

    inf_open(&f, 15, true, MAX);
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    expect_msg(&f.in, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello", 5);
    expect_msg(&f.in, EMPTY, 0, "", 0);
    expect_msg(&f.in, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello", 5);
    inf_close(&f);

    inf_open(&f, 15, false, MAX);
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    ck_assert_uint_eq(fail_msg(&f.in, HELLO_AGAIN, sizeof HELLO_AGAIN), WSE_CLOSE_BAD_DATA);
    /* The next message starts afresh. */
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    inf_close(&f);
}
END_TEST

/* A BFINAL message ends its DEFLATE stream; with takeover the window lives on. */
START_TEST(test_bfinal_takeover)
{
    struct inf f;

    inf_open(&f, 15, true, MAX);
    expect_msg(&f.in, HELLO_BFINAL, sizeof HELLO_BFINAL, "Hello", 5);
    expect_msg(&f.in, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello", 5);
    expect_msg(&f.in, HELLO_BFINAL, sizeof HELLO_BFINAL, "Hello", 5);
    expect_msg(&f.in, HELLO_BFINAL, sizeof HELLO_BFINAL, "Hello", 5);
    expect_msg(&f.in, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello", 5);
    inf_close(&f);
    /* Bytes after the final block are ignored, whatever they are. */
    static const uint8_t junk[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0x13 };
    inf_open(&f, 15, false, MAX);
    expect_msg(&f.in, junk, sizeof junk, "Hello", 5);
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    inf_close(&f);
}
END_TEST

/* Python's zlib as the peer: with takeover, fresh, and a 9-bit window. */
START_TEST(test_python_vectors)
{
    static const struct {
        const uint8_t *p;
        size_t n;
    } take[] = { { py15_take0, sizeof py15_take0 }, { py15_take1, sizeof py15_take1 },
                 { py15_take2, sizeof py15_take2 } },
      fresh[] = { { py15_fresh0, sizeof py15_fresh0 }, { py15_fresh1, sizeof py15_fresh1 },
                  { py15_fresh2, sizeof py15_fresh2 } },
      nine[] = { { py9_take0, sizeof py9_take0 }, { py9_take1, sizeof py9_take1 },
                 { py9_take2, sizeof py9_take2 } };
    char want[3][sizeof py_json + 1];
    size_t wlen = sizeof py_json;
    struct inf f, g, h;

    memcpy(want[0], py_json, wlen);
    memcpy(want[1], py_json, wlen);
    memcpy(want[2], py_json, wlen);
    memcpy(strstr(want[1], "12345"), "12346", 5);
    memcpy(strstr(want[2], "update"), "delete", 6);
    inf_open(&f, 15, true, MAX);
    inf_open(&g, 15, false, MAX);
    inf_open(&h, 9, true, MAX);
    for (int i = 0; i < 3; i++) {
        want[i][wlen] = 0;
        expect_msg(&f.in, take[i].p, take[i].n, want[i], wlen);
        expect_msg(&g.in, fresh[i].p, fresh[i].n, want[i], wlen);
        expect_msg(&h.in, nine[i].p, nine[i].n, want[i], wlen);
    }
    /* The short ones refer back: not a message on their own. */
    ck_assert_uint_lt(sizeof py15_take1, 16);
    ck_assert_uint_eq(fail_msg(&g.in, py15_take1, sizeof py15_take1), WSE_CLOSE_BAD_DATA);
    inf_close(&f);
    inf_close(&g);
    inf_close(&h);
}
END_TEST

/* Any split into two or three pieces, and one byte a piece, gives the same. */
static void every_split(const uint8_t *p, size_t n, const void *want, size_t wlen)
{
    uint8_t out[4096];
    size_t olen;
    struct inf f;

    inf_open(&f, 15, false, MAX);
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            size_t cuts[2] = { i, j };
            ck_assert_int_eq(inflate_msg(&f.in, p, n, cuts, 2, 64, out, sizeof out, &olen),
                             WSE_AGAIN);
            ck_assert_uint_eq(olen, wlen);
            ck_assert(memcmp(out, want, wlen) == 0);
        }
    }
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    ck_assert_int_eq(inflate_msg(&f.in, p, n, cuts, n ? n - 1 : 0, 64, out, sizeof out, &olen),
                     WSE_AGAIN);
    ck_assert_uint_eq(olen, wlen);
    ck_assert(memcmp(out, want, wlen) == 0);
    free(cuts);
    inf_close(&f);
}

START_TEST(test_splits)
{
    every_split(HELLO_TWO, sizeof HELLO_TWO, "Hello", 5);     /* a sync flush inside */
    every_split(HELLO_STORED, sizeof HELLO_STORED, "Hello", 5);
    every_split(HELLO_BFINAL, sizeof HELLO_BFINAL, "Hello", 5);
    every_split(py15_fresh0, sizeof py15_fresh0, py_json, sizeof py_json);
}
END_TEST

START_TEST(test_corrupt)
{
    static const uint8_t bad_type[] = { 0x07, 0x00 };                 /* BTYPE 11 */
    static const uint8_t bad_stored[] = { 0x00, 0x05, 0x00, 0x00, 0x00, 'H' }; /* NLEN */
    static const uint8_t far[] = { 0x4a, 0x04, 0x82, 0x00 };         /* no such distance */
    struct inf f;

    inf_open(&f, 15, false, MAX);
    ck_assert_uint_eq(fail_msg(&f.in, bad_type, sizeof bad_type), WSE_CLOSE_BAD_DATA);
    ck_assert_uint_eq(fail_msg(&f.in, bad_stored, sizeof bad_stored), WSE_CLOSE_BAD_DATA);
    ck_assert_uint_eq(fail_msg(&f.in, far, sizeof far), WSE_CLOSE_BAD_DATA);
    /* Cut short anywhere inside a block: not at a boundary after the tail. */
    for (size_t n = 1; n + 1 < sizeof py15_fresh0; n++)
        ck_assert_uint_eq(fail_msg(&f.in, py15_fresh0, n), WSE_CLOSE_BAD_DATA);
    /* A failure sticks until the next message. */
    uint8_t out[64];
    size_t got;
    ck_assert_int_eq(wse_inflate_next(&f.in, out, sizeof out, &got), WSE_FAIL);
    expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
    inf_close(&f);
}
END_TEST

/*
 * The window: a 9-bit inflater refuses a distance beyond 512 once its
 * source has left the output buffer (zlib lets a longer one through while
 * the bytes are still in the output: lenient, and it costs no memory).
 */
START_TEST(test_window_enforced)
{
    static uint8_t text[2048], comp[2048];
    struct inf f;
    z_stream z = { 0 };

    uint8_t *rnd = sample(1000, 7, false);
    for (size_t i = 0; i < 1000; i++)
        text[i] = (uint8_t)('a' + rnd[i] % 26);     /* no repeats to speak of */
    free(rnd);
    memcpy(text + 1000, text, 40);      /* a match 1000 bytes back */
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = text;
    z.avail_in = 1040;
    z.next_out = comp;
    z.avail_out = sizeof comp;
    ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    size_t n = sizeof comp - z.avail_out - 4;
    deflateEnd(&z);
    uint8_t out[2048];
    size_t olen;
    inf_open(&f, 9, false, MAX);
    ck_assert_int_eq(inflate_msg(&f.in, comp, n, NULL, 0, 256, out, sizeof out, &olen), WSE_FAIL);
    ck_assert_uint_eq(f.in.code, WSE_CLOSE_BAD_DATA);
    inf_close(&f);
    inf_open(&f, 10, false, MAX);
    ck_assert_int_eq(inflate_msg(&f.in, comp, n, NULL, 0, 256, out, sizeof out, &olen), WSE_AGAIN);
    ck_assert_uint_eq(olen, 1040);
    ck_assert(memcmp(out, text, 1040) == 0);
    inf_close(&f);
}
END_TEST

/* The size limit counts inflated bytes, across pieces; exactly max is fine. */
START_TEST(test_limit_exact)
{
    uint8_t out[4096];
    size_t olen;
    struct inf f;
    size_t cuts[1] = { 7 };

    inf_open(&f, 15, false, sizeof py_json);
    ck_assert_int_eq(inflate_msg(&f.in, py15_fresh0, sizeof py15_fresh0, cuts, 1, 64, out,
                                 sizeof out, &olen), WSE_AGAIN);
    ck_assert_uint_eq(olen, sizeof py_json);
    inf_close(&f);
    inf_open(&f, 15, false, sizeof py_json - 1);
    ck_assert_int_eq(inflate_msg(&f.in, py15_fresh0, sizeof py15_fresh0, cuts, 1, 64, out,
                                 sizeof out, &olen), WSE_FAIL);
    ck_assert_uint_eq(f.in.code, WSE_CLOSE_TOO_BIG);
    /* The chunk that passes the limit is not handed out. */
    ck_assert_uint_le(olen, sizeof py_json - 1);
    ck_assert_uint_gt(olen, sizeof py_json - 1 - 64);
    inf_close(&f);
}
END_TEST

/*
 * A bomb: about 1 MiB of compressed zeros that would inflate to 1 GiB.  It
 * stops one byte past the limit, having produced no more than that, through
 * the same fixed buffer; the rest is never inflated.
 */
START_TEST(test_bomb)
{
    enum { CHUNK = 1 << 20, REPS = 1024, CAP = 16384 };
    uint8_t *zeros = calloc(1, CHUNK);
    uint8_t *c1 = malloc(CHUNK), *c2 = malloc(CHUNK), *c3 = malloc(CHUNK);
    z_stream z = { 0 };
    size_t n1, n2, n3;

    ck_assert(zeros && c1 && c2 && c3);
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    uint8_t *outs[3] = { c1, c2, c3 };
    size_t *lens[3] = { &n1, &n2, &n3 };
    for (int i = 0; i < 3; i++) {
        z.next_in = zeros;
        z.avail_in = CHUNK;
        z.next_out = outs[i];
        z.avail_out = CHUNK;
        ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
        *lens[i] = CHUNK - z.avail_out;
    }
    deflateEnd(&z);
    /* Once the window is all zeros, each further MiB compresses the same. */
    ck_assert_uint_eq(n2, n3);
    ck_assert(memcmp(c2, c3, n2) == 0);
    size_t total = n1 + n2 * REPS;
    uint8_t *bomb = malloc(total);
    memcpy(bomb, c1, n1);
    for (size_t i = 0; i < REPS; i++)
        memcpy(bomb + n1 + i * n2, c2, n2);
    ck_assert_uint_lt(total, 2u * CHUNK);   /* ~1 MiB in, 1 GiB + 1 MiB out */

    struct inf f;
    uint8_t *buf = malloc(CAP);
    inf_open(&f, 15, false, MAX);
    size_t produced = 0, calls = 0, got;
    int rc = WSE_OK;
    for (size_t off = 0; off < total && rc != WSE_FAIL; off += 4096) {
        size_t len = total - off < 4096 ? total - off : 4096;
        wse_inflate_input(&f.in, bomb + off, len, off == 0, off + len == total);
        while ((rc = wse_inflate_next(&f.in, buf, CAP, &got)) == WSE_OK) {
            produced += got;
            calls++;
        }
    }
    ck_assert_int_eq(rc, WSE_FAIL);
    ck_assert_uint_eq(f.in.code, WSE_CLOSE_TOO_BIG);
    ck_assert_uint_le(produced, MAX);       /* the chunk past it is not handed out */
    ck_assert_uint_gt(produced, MAX - CAP);
    ck_assert_uint_le(calls, MAX / CAP + 2);
    ck_assert_uint_lt(f.in.zs.total_in, total / 100);   /* most of the bomb never read */
    inf_close(&f);
    free(buf);
    free(bomb);
    free(zeros);
    free(c1);
    free(c2);
    free(c3);
}
END_TEST

/* ---- deflate ---- */

struct def {
    struct wse_deflate d;
    uint8_t *mem;
};

static void def_open(struct def *f, unsigned bits, unsigned ml, bool takeover)
{
    size_t n = wse_deflate_mem(bits, ml);
    f->mem = mem_for(n);
    ck_assert_int_eq(wse_deflate_init(&f->d, f->mem, n, bits, ml, 6, takeover), WSE_OK);
}

static void def_close(struct def *f)
{
    deflateEnd(&f->d.zs);
    free(f->mem);
}

/*
 * Deflates msg[0..n) given in pieces of `piece` bytes through chunks of cap;
 * the payload (all chunks) into out; checks fin comes once, last.
 */
static size_t deflate_msg(struct wse_deflate *d, const uint8_t *msg, size_t n, size_t piece,
                          size_t cap, uint8_t *out, size_t out_cap)
{
    uint8_t *buf = malloc(cap);
    size_t len = 0, off = 0;
    bool fin_seen = false;

    ck_assert_ptr_nonnull(buf);
    do {
        size_t k = n - off < piece ? n - off : piece;
        bool last = off + k == n;
        wse_deflate_input(d, msg + off, k, last);
        size_t got;
        bool fin;
        int rc;
        while ((rc = wse_deflate_next(d, buf, cap, &got, &fin)) == WSE_OK) {
            ck_assert(!fin_seen);
            ck_assert_uint_le(got, cap);
            ck_assert_uint_le(len + got, out_cap);
            memcpy(out + len, buf, got);
            len += got;
            fin_seen = fin;
            if (fin)
                ck_assert(last);
        }
        ck_assert_int_eq(rc, WSE_AGAIN);
        off += k;
    } while (off < n);
    ck_assert(fin_seen);
    free(buf);
    return len;
}

/* A receiver's decoding with plain zlib: payload + 00 00 ff ff. */
static size_t plain_inflate(z_stream *z, const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    static const uint8_t tail[4] = { 0, 0, 0xff, 0xff };
    uint8_t *in = malloc(n + 4);

    memcpy(in, p, n);
    memcpy(in + n, tail, 4);
    z->next_in = in;
    z->avail_in = (uInt)(n + 4);
    z->next_out = out;
    z->avail_out = (uInt)cap;
    int rc = inflate(z, Z_SYNC_FLUSH);
    ck_assert_msg(rc == Z_OK || rc == Z_BUF_ERROR, "inflate: %d", rc);
    ck_assert_uint_eq(z->avail_in, 0);
    ck_assert_uint_gt(z->avail_out, 0);
    ck_assert(z->data_type & 128);      /* at a block boundary */
    free(in);
    return cap - z->avail_out;
}

static uint8_t *sample(size_t n, unsigned seed, bool text)
{
    uint8_t *p = malloc(n ? n : 1);
    static const char *const words[] = { "{\"id\":", "\"name\":", "\"value\"", ",", "}",
                                         "42", "true", " ", "caf\xc3\xa9", "\n" };

    for (size_t i = 0; i < n;) {
        seed = seed * 1103515245u + 12345u;
        if (!text) {
            p[i++] = (uint8_t)(seed >> 16);
            continue;
        }
        const char *w = words[(seed >> 16) % countof(words)];
        for (; *w && i < n; w++)
            p[i++] = (uint8_t)*w;
    }
    return p;
}

START_TEST(test_deflate_round_trip)
{
    static const size_t sizes[] = { 0, 1, 5, 64, 4096, 65537 };
    static const size_t pieces[] = { 1, 7, 1000, 1u << 20 };
    static const size_t caps[] = { WSE_PMDZ_OUT_MIN, 16384 };
    size_t out_cap = 2 * 65537 + 4096;
    uint8_t *out = malloc(out_cap), *back = malloc(out_cap);

    for (int text = 0; text <= 1; text++) {
        for (size_t si = 0; si < countof(sizes); si++) {
            uint8_t *msg = sample(sizes[si], (unsigned)si, text);
            for (size_t pi = 0; pi < countof(pieces); pi++) {
                if (sizes[si] > 4096 && pieces[pi] == 1)
                    continue;
                for (size_t ci = 0; ci < countof(caps); ci++) {
                    struct def f;
                    z_stream z = { 0 };
                    def_open(&f, 15, 8, false);
                    size_t n = deflate_msg(&f.d, msg, sizes[si], pieces[pi], caps[ci], out,
                                           out_cap);
                    ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
                    size_t m = plain_inflate(&z, out, n, back, out_cap);
                    ck_assert_uint_eq(m, sizes[si]);
                    ck_assert(memcmp(back, msg, m) == 0);
                    inflateEnd(&z);
                    /* and through pmdz's own inflater */
                    struct inf g;
                    size_t olen;
                    inf_open(&g, 15, false, MAX);
                    ck_assert_int_eq(inflate_msg(&g.in, out, n, NULL, 0, 4096, back, out_cap,
                                                 &olen), WSE_AGAIN);
                    ck_assert_uint_eq(olen, sizes[si]);
                    ck_assert(memcmp(back, msg, olen) == 0);
                    inf_close(&g);
                    def_close(&f);
                }
            }
            free(msg);
        }
    }
    free(out);
    free(back);
}
END_TEST

/* An empty message is the byte 0x00; so is an empty last piece. */
START_TEST(test_deflate_empty)
{
    struct def f;
    uint8_t out[64], back[64];
    z_stream z = { 0 };

    for (int takeover = 0; takeover <= 1; takeover++) {
        def_open(&f, 15, 8, takeover);
        ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
        for (int i = 0; i < 3; i++) {
            size_t n = deflate_msg(&f.d, (const uint8_t *)"", 0, 1, sizeof out, out, sizeof out);
            ck_assert_uint_eq(n, 1);
            ck_assert_uint_eq(out[0], 0x00);
            ck_assert_uint_eq(plain_inflate(&z, out, n, back, sizeof back), 0);
            n = deflate_msg(&f.d, (const uint8_t *)"abc", 3, 3, sizeof out, out, sizeof out);
            ck_assert_uint_eq(plain_inflate(&z, out, n, back, sizeof back), 3);
            ck_assert(memcmp(back, "abc", 3) == 0);
        }
        inflateEnd(&z);
        def_close(&f);
    }
    /* "abc" then an empty last piece. */
    def_open(&f, 15, 8, false);
    wse_deflate_input(&f.d, (const uint8_t *)"abc", 3, false);
    size_t got, len = 0;
    bool fin;
    while (wse_deflate_next(&f.d, out + len, sizeof out - len, &got, &fin) == WSE_OK) {
        ck_assert(!fin);
        len += got;
    }
    wse_deflate_input(&f.d, NULL, 0, true);
    ck_assert_int_eq(wse_deflate_next(&f.d, out + len, sizeof out - len, &got, &fin), WSE_OK);
    ck_assert(fin);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(out[len], 0x00);
    len += got;
    ck_assert_int_eq(wse_deflate_next(&f.d, out + len, sizeof out - len, &got, &fin), WSE_AGAIN);
    ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
    ck_assert_uint_eq(plain_inflate(&z, out, len, back, sizeof back), 3);
    inflateEnd(&z);
    def_close(&f);
}
END_TEST

/* Takeover: the second copy of a message refers to the first. */
START_TEST(test_deflate_takeover)
{
    static uint8_t out[3][4096], back[4096];
    size_t n[3];

    for (int takeover = 0; takeover <= 1; takeover++) {
        struct def f;
        z_stream z = { 0 };
        def_open(&f, 15, 8, takeover);
        for (int i = 0; i < 3; i++)
            n[i] = deflate_msg(&f.d, py_json, sizeof py_json, 50, 128, out[i], sizeof out[i]);
        ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
        for (int i = 0; i < 3; i++) {
            if (!takeover) {
                inflateEnd(&z);
                ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
            }
            ck_assert_uint_eq(plain_inflate(&z, out[i], n[i], back, sizeof back), sizeof py_json);
            ck_assert(memcmp(back, py_json, sizeof py_json) == 0);
        }
        inflateEnd(&z);
        if (takeover) {
            ck_assert_uint_lt(n[1], n[0] / 3);
        } else {
            ck_assert_uint_eq(n[1], n[0]);
            ck_assert(memcmp(out[0], out[1], n[0]) == 0);
        }
        def_close(&f);
    }
}
END_TEST

/*
 * Takeover past zlib's 2 x window buffer: the stream restarts where zlib
 * would slide, keeping its most recent bytes as the dictionary.  Every
 * message decodes with one plain receiver kept throughout, and a repeat
 * right after a restart still refers to the copy before it.
 */
START_TEST(test_deflate_takeover_restart)
{
    static uint8_t out[8192], back[8192];
    uint8_t *other = sample(3000, 7, true), *rep = sample(1000, 8, true);
    struct def f;
    z_stream z = { 0 };
    unsigned restarts = 0;
    size_t first = 0;

    def_open(&f, 15, 8, true);
    ck_assert_int_eq(inflateInit2(&z, -15), Z_OK);
    for (int i = 0; i < 120; i++) {
        /* a fresh 3000 bytes (new input), then the repeated 1000 */
        const uint8_t *msg = i % 2 ? rep : other;
        size_t len = i % 2 ? 1000 : 3000;
        if (!(i % 2))
            other[0] = (uint8_t)('a' + i % 26), other[1500] = (uint8_t)('A' + i % 26);
        uint32_t before = f.d.fed;
        size_t n = deflate_msg(&f.d, msg, len, len, 4096, out, sizeof out);
        if (f.d.fed < before)
            restarts++;
        ck_assert_uint_eq(plain_inflate(&z, out, n, back, sizeof back), len);
        ck_assert(memcmp(back, msg, len) == 0);
        if (i == 1)
            first = n;
        else if (i % 2)
            ck_assert_msg(n < 40, "message %d: %zu bytes, the repeat is not referred to", i, n);
    }
    ck_assert_uint_gt(first, 0);
    ck_assert_uint_ge(restarts, 3);     /* 240 KB through a 64 KiB buffer */
    inflateEnd(&z);
    def_close(&f);
    free(other);
    free(rep);
}
END_TEST

/* ---- memory ---- */

/* zlib's own requests, against the formula of pmdz.h. */
START_TEST(test_memory_measured)
{
    size_t state = 0;

    for (unsigned bits = 8; bits <= 15; bits++) {
        for (unsigned ml = 1; ml <= 9; ml++) {
            struct def f;
            def_open(&f, bits, ml, true);
            unsigned b = bits < 9 ? 9 : bits;
            size_t formula = ((size_t)1 << (b + 2)) + ((size_t)1 << (ml + 9));
            size_t s = f.d.arena.asked - formula;
            if (!state)
                state = s;
            ck_assert_uint_eq(s, state);    /* the same state struct for all */
            ck_assert_uint_le(f.d.arena.used, wse_deflate_mem(bits, ml));
            ck_assert_uint_le(wse_deflate_mem(bits, ml) - f.d.arena.asked, 1024);
            /* Deflating asks for nothing more. */
            uint8_t out[4096];
            deflate_msg(&f.d, py_json, sizeof py_json, 100, 64, out, sizeof out);
            ck_assert_uint_eq(f.d.arena.asked, formula + state);
            def_close(&f);
        }
    }
    ck_assert_uint_le(state, WSE_PMDZ_DEFLATE_STATE);
    ck_assert_uint_gt(state, WSE_PMDZ_DEFLATE_STATE - 1024);

    for (unsigned bits = 8; bits <= 15; bits++) {
        struct inf f;
        inf_open(&f, bits, false, MAX);
        size_t before = f.in.arena.asked;
        ck_assert_uint_le(before, WSE_PMDZ_INFLATE_STATE);
        ck_assert_uint_gt(before, WSE_PMDZ_INFLATE_STATE - 1024);
        expect_msg(&f.in, HELLO, sizeof HELLO, "Hello", 5);
        unsigned b = bits < 9 ? 9 : bits;
        ck_assert_uint_eq(f.in.arena.asked, before + ((size_t)1 << b));
        ck_assert_uint_le(f.in.arena.used, wse_inflate_mem(bits));
        ck_assert_uint_le(wse_inflate_mem(bits) - f.in.arena.asked, 1024);
        inf_close(&f);
    }
}
END_TEST

START_TEST(test_memory_short)
{
    struct wse_deflate d;
    struct wse_inflate in;
    size_t n = wse_deflate_mem(15, 8);
    uint8_t *m = mem_for(n);

    ck_assert_int_eq(wse_deflate_init(&d, m, n - 40000, 15, 8, 6, true), WSE_FAIL);
    ck_assert_int_eq(wse_inflate_init(&in, m, wse_inflate_mem(15) - 1, 15, true, MAX), WSE_FAIL);
    ck_assert_int_eq(wse_deflate_init(&d, m, n, 16, 8, 6, true), WSE_FAIL);
    ck_assert_int_eq(wse_deflate_init(&d, m, n, 15, 10, 6, true), WSE_FAIL);
    ck_assert_int_eq(wse_inflate_init(&in, m, n, 7, true, MAX), WSE_FAIL);
    free(m);
}
END_TEST

static Suite *pmdz_suite(void)
{
    Suite *s = suite_create("pmdz");
    TCase *tc = tcase_create("inflate");

    tcase_add_test(tc, test_rfc_examples);
    tcase_add_test(tc, test_takeover);
    tcase_add_test(tc, test_bfinal_takeover);
    tcase_add_test(tc, test_python_vectors);
    tcase_add_test(tc, test_splits);
    tcase_add_test(tc, test_corrupt);
    tcase_add_test(tc, test_window_enforced);
    tcase_add_test(tc, test_limit_exact);
    tcase_add_test(tc, test_bomb);
    suite_add_tcase(s, tc);
    tc = tcase_create("deflate");
    tcase_add_test(tc, test_deflate_round_trip);
    tcase_add_test(tc, test_deflate_empty);
    tcase_add_test(tc, test_deflate_takeover);
    tcase_add_test(tc, test_deflate_takeover_restart);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_add_test(tc, test_memory_measured);
    tcase_add_test(tc, test_memory_short);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pmdz_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
