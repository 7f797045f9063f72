/*
 * test_pmdconn.c - the deflate transform (pmdconn.h) without a socket: a
 * message compressed here with plain zlib is fed as data events cut into
 * pieces of every size, the frames the transform adds to the batch are
 * collected as a connection would send them, parsed as a client would
 * (RSV1 on the first frame only, FIN on the last) and inflated with plain
 * zlib.  Also: the pause at the high-water mark and its resume, the limits'
 * close codes, and the Safari user-agent rule.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "run_suite.h"
#include "common.h"
#include "frame.h"
#include "pmd.h"
#include "pmdconn.h"

/* ---- a fake connection: the batch's output collected ---- */

static struct wse_batch batch;
static uint8_t wire[1 << 22];
static size_t wire_len;
static int over_every;          /* over() says yes every n-th call; 0: never */
static int over_calls;

static void take_batch(void)
{
    for (int i = 0; i < batch.niov; i++) {
        ck_assert_uint_le(wire_len + batch.iov[i].iov_len, sizeof wire);
        memcpy(wire + wire_len, batch.iov[i].iov_base, batch.iov[i].iov_len);
        wire_len += batch.iov[i].iov_len;
    }
    wse_batch_reset(&batch);
}

static bool fake_flush(void *ctx)
{
    (void)ctx;
    take_batch();
    return true;
}

static bool fake_over(void *ctx)
{
    (void)ctx;
    return over_every && ++over_calls % over_every == 0;
}

static const struct wse_pmdconn_io io = { fake_flush, fake_over, NULL };

/* ---- zlib on the client's side ---- */

static size_t client_deflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs = {0};
    ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t len = cap - zs.avail_out;
    deflateEnd(&zs);
    ck_assert_uint_ge(len, 4);
    return len - 4;        /* 7.2.1: the tail dropped */
}

/* The client's inflater: kept from message to message with takeover. */
static z_stream zs;
static bool client_takeover;
static unsigned whole_echoes;   /* echoes received as one BFINAL block */

static void client_reset(bool takeover)
{
    inflateEnd(&zs);
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(inflateInit2(&zs, -15), Z_OK);
    client_takeover = takeover;
}

/* The frames of the one message in wire[] (nothing after it), their
 * payloads joined in payload (4 bytes of room left for the tail); whether
 * its first frame had RSV1.  Its length. */
static size_t wire_message(unsigned opcode, uint8_t *payload, bool *compressed)
{
    size_t pos = 0, plen = 0;
    bool first = true, fin = false;

    while (!fin) {
        ck_assert_uint_le(pos + 2, wire_len);
        uint8_t b0 = wire[pos], b1 = wire[pos + 1];
        uint64_t n = b1 & 0x7F;
        size_t h = 2;
        if (n == 126) {
            n = (uint64_t)wire[pos + 2] << 8 | wire[pos + 3];
            h = 4;
        } else if (n == 127) {
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | wire[pos + 2 + i];
            h = 10;
        }
        ck_assert_uint_eq(b1 & 0x80, 0);
        ck_assert_uint_eq(b0 & 0x0F, first ? opcode : WSE_OP_CONT);
        if (first)
            *compressed = (b0 & WSE_RSV1) != 0;
        else
            ck_assert_uint_eq(b0 & 0x70, 0);    /* RSV1 on the first frame only */
        memcpy(payload + plen, wire + pos + h, n);
        plen += n;
        pos += h + n;
        fin = b0 & 0x80;
        first = false;
    }
    ck_assert_uint_eq(pos, wire_len);       /* nothing after the message */
    return plen;
}

/* Parses the server frames in wire[], inflates the message; its length. */
static size_t client_receive(uint8_t *out, size_t cap, unsigned opcode, bool *compressed)
{
    static uint8_t payload[(1 << 22) + 4];
    size_t plen = wire_message(opcode, payload, compressed);

    if (!*compressed) {
        memcpy(out, payload, plen);
        return plen;
    }
    memcpy(payload + plen, "\x00\x00\xff\xff", 4);
    if (!client_takeover) {
        inflateEnd(&zs);
        memset(&zs, 0, sizeof zs);
        ck_assert_int_eq(inflateInit2(&zs, -15), Z_OK);
    }
    zs.next_in = payload;
    zs.avail_in = (uInt)(plen + 4);
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    ck_assert(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END);
    if (rc == Z_STREAM_END) {
        /* A BFINAL block (7.2.3.4, libdeflate's whole echo): only the
         * empty stored block's 0x00 and the tail after it. */
        ck_assert(!client_takeover);
        ck_assert_uint_eq(zs.avail_in, 5);
        ck_assert_mem_eq(zs.next_in, "\x00\x00\x00\xff\xff", 5);
        whole_echoes++;
    } else {
        ck_assert_uint_eq(zs.avail_in, 0);
    }
    return cap - zs.avail_out;
}

/* ---- the transform, set up as a worker would ---- */

static uint32_t inflating_cap = 1024;

static struct wse_pmdconn *open_conn(const char *offer, const char *ua, uint64_t max,
                                     uint64_t min_size, bool takeover)
{
    static char buf[512];
    struct wse_http_req req;
    struct wse_pmdconn_cfg cfg = {
        .enabled = true, .window_bits = 15, .mem_level = 8, .level = 1,
        .server_takeover = takeover, .client_takeover = takeover, .safari_guard = true,
        .min_size = min_size, .max_message = max, .max_inflating = inflating_cap,
    };
    char hdr[WSE_PMD_RESPONSE_MAX];
    size_t hdr_len;

    ck_assert_int_eq(wse_pmdconn_setup(&cfg), WSE_OK);
    client_reset(takeover);
    memset(&req, 0, sizeof req);
    size_t ol = strlen(offer), ul = strlen(ua);
    memcpy(buf, offer, ol);
    memcpy(buf + ol, ua, ul);
    req.extensions[0] = (struct wse_span){ 0, (uint32_t)ol };
    req.n_extensions = 1;
    req.user_agent = (struct wse_span){ (uint32_t)ol, (uint32_t)ul };
    struct wse_pmdconn *pc = wse_pmdconn_negotiate(&req, buf, hdr, &hdr_len, NULL);
    ck_assert_ptr_nonnull(pc);
    ck_assert_uint_gt(hdr_len, 0);
    return pc;
}

/*
 * Feeds the compressed message c[0..n) in pieces of `piece` bytes (0: one
 * piece; frames of `frame` bytes each starting a new frame); returns the
 * transform's last code, resuming while paused.
 */
static unsigned feed(struct wse_pmdconn *pc, unsigned opcode, uint8_t *c, size_t n, size_t piece)
{
    size_t pos = 0;
    unsigned code = 0;
    struct wse_pmdconn_counts counts;

    wire_len = 0;
    wse_batch_reset(&batch);
    do {
        size_t k = piece && piece < n - pos ? piece : n - pos;
        struct wse_event ev = {
            .kind = WSE_EV_DATA, .opcode = (uint8_t)opcode, .first = pos == 0,
            .last = pos + k == n, .frame_start = pos == 0, .compressed = true,
            .data = c + pos, .len = k,
        };
        code = wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts);
        while (code == WSE_PMDCONN_PAUSED) {
            take_batch();
            ck_assert(wse_pmdconn_parked(pc));
            code = wse_pmdconn_resume(pc, &batch, &io, &counts);
        }
        take_batch();
        pos += k;
        if (code)
            return code;
    } while (pos < n);
    return code;
}

static uint8_t msg[1 << 21], comp[1 << 22], back[1 << 22];

static void fill(size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        msg[i] = (uint8_t)("abcdefgh ijkl"[(i * seed + i / 7) % 13]);
}

START_TEST(echo_in_every_piece_size)
{
    static const size_t sizes[] = {1, 40, 1000, 70000, 300000};
    static const size_t pieces[] = {1, 3, 64, 4096, 0};

    for (int t = 0; t < 2; t++) {
        struct wse_pmdconn *pc = open_conn("permessage-deflate", "", 1 << 22, 0, t);
        for (size_t i = 0; i < countof(sizes); i++) {
            for (size_t j = 0; j < countof(pieces); j++) {
                size_t n = sizes[i];
                if (pieces[j] == 1 && n > 1000)
                    continue;       /* byte at a time: the small ones suffice */
                fill(n, (unsigned)(i + 3));
                size_t cn = client_deflate(msg, n, comp, sizeof comp);
                over_every = 0;
                ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, cn, pieces[j]), 0);
                bool compressed;
                size_t got = client_receive(back, sizeof back, WSE_OP_TEXT, &compressed);
                ck_assert(compressed);
                ck_assert_uint_eq(got, n);
                ck_assert_mem_eq(back, msg, n);
            }
        }
        wse_pmdconn_free(pc);
    }
}
END_TEST

START_TEST(pauses_and_resumes_to_the_same_echo)
{
    struct wse_pmdconn *pc = open_conn("permessage-deflate", "", 1 << 22, 0, false);
    size_t n = 1 << 21;

    fill(n, 5);
    size_t cn = client_deflate(msg, n, comp, sizeof comp);
    for (int every = 1; every <= 3; every++) {
        over_every = every;
        over_calls = 0;
        ck_assert_uint_eq(feed(pc, WSE_OP_BINARY, comp, cn, 1000), 0);
        ck_assert(!wse_pmdconn_parked(pc));
        bool compressed;
        ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_BINARY, &compressed), n);
        ck_assert_mem_eq(back, msg, n);
    }
    over_every = 0;
    /* Abandoned while paused: the next message starts clean. */
    over_every = 1;
    struct wse_event ev = { .kind = WSE_EV_DATA, .opcode = WSE_OP_BINARY, .first = true,
                            .last = true, .compressed = true, .data = comp, .len = cn };
    struct wse_pmdconn_counts counts;
    wse_batch_reset(&batch);
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts),
                      WSE_PMDCONN_PAUSED);
    wse_pmdconn_abandon(pc);
    ck_assert(!wse_pmdconn_parked(pc));
    over_every = 0;
    ck_assert_uint_eq(feed(pc, WSE_OP_BINARY, comp, cn, 0), 0);
    wse_pmdconn_free(pc);
}
END_TEST

START_TEST(small_and_empty_go_back_uncompressed)
{
    struct wse_pmdconn *pc = open_conn("permessage-deflate", "", 1 << 20, 32, false);
    bool compressed;

    over_every = 0;
    fill(20, 1);
    size_t cn = client_deflate(msg, 20, comp, sizeof comp);
    ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, cn, 0), 0);
    ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_TEXT, &compressed), 20);
    ck_assert(!compressed);
    ck_assert_mem_eq(back, msg, 20);
    /* An empty payload is an empty message. */
    ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, 0, 0), 0);
    ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_TEXT, &compressed), 0);
    wse_pmdconn_free(pc);
}
END_TEST

START_TEST(limits_give_their_codes)
{
    struct wse_pmdconn *pc = open_conn("permessage-deflate", "", 100000, 0, false);

    over_every = 0;
    memset(msg, 0, 1 << 20);                    /* a bomb: 1 MiB of zeros */
    size_t cn = client_deflate(msg, 1 << 20, comp, sizeof comp);
    ck_assert_uint_lt(cn, 2000);
    ck_assert_uint_eq(feed(pc, WSE_OP_BINARY, comp, cn, 0), WSE_CLOSE_TOO_BIG);
    ck_assert_uint_lt(wire_len, 100000);        /* what went out before the close */
    wse_pmdconn_free(pc);

    pc = open_conn("permessage-deflate", "", 100000, 0, false);
    memcpy(msg, "ok \xc3\x28 bad", 10);
    cn = client_deflate(msg, 10, comp, sizeof comp);
    ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, cn, 1), WSE_CLOSE_BAD_DATA);
    uint8_t junk[] = {0xff, 0xff, 0xff, 0x00};
    ck_assert_uint_eq(feed(pc, WSE_OP_BINARY, junk, sizeof junk, 0), WSE_CLOSE_BAD_DATA);
    /* The next message after a failure starts afresh (a lent stream is reset). */
    fill(500, 2);
    cn = client_deflate(msg, 500, comp, sizeof comp);
    ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, cn, 0), 0);
    wse_pmdconn_free(pc);
}
END_TEST

START_TEST(safari_user_agents)
{
    static const struct { const char *ua; bool broken; } cases[] = {
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/15.0 Safari/605.1.15", true},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/15.3 Safari/605.1.15", true},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/15.4 Safari/605.1.15", false},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/15.10 Safari/605.1.15", false},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/14.1 Safari/605.1.15", false},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 15_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/15.2 Mobile/15E148 Safari/604.1", true},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 15_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) CriOS/96.0.4664.53 Mobile/15E148 Safari/604.1", true},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/16.0 Mobile/15E148 Safari/604.1", false},
        {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36", false},
        {"Version/15.2", false},
        {"", false},
    };

    for (size_t i = 0; i < countof(cases); i++)
        ck_assert_msg(wse_pmdconn_ua_ignores_nct(cases[i].ua, strlen(cases[i].ua)) ==
                      cases[i].broken, "%s", cases[i].ua);
    /* A cut just after "Version/15." must not read past the end. */
    const char *cut = "Safari/1 Version/15.";
    ck_assert(!wse_pmdconn_ua_ignores_nct(cut, strlen(cut)));
}
END_TEST

START_TEST(safari_guard_inflates_with_takeover)
{
    static const char *ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
                            " (KHTML, like Gecko) Version/15.2 Safari/605.1.15";
    struct wse_pmdconn *pc = open_conn("permessage-deflate", ua, 1 << 20, 0, false);
    z_stream cz = {0};
    bool compressed;

    /* The client keeps its context although the answer said not to. */
    ck_assert_int_eq(deflateInit2(&cz, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    fill(3000, 7);
    over_every = 0;
    for (int k = 0; k < 3; k++) {
        cz.next_in = msg;
        cz.avail_in = 3000;
        cz.next_out = comp;
        cz.avail_out = sizeof comp;
        ck_assert_int_eq(deflate(&cz, Z_SYNC_FLUSH), Z_OK);
        size_t cn = sizeof comp - cz.avail_out - 4;
        ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, cn, 0), 0);
        ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_TEXT, &compressed), 3000);
        ck_assert_mem_eq(back, msg, 3000);
    }
    deflateEnd(&cz);
    wse_pmdconn_free(pc);
}
END_TEST

START_TEST(lent_decompressors_are_capped)
{
    struct wse_pmdconn *pc[3];
    struct wse_pmdconn_counts counts;

    inflating_cap = 2;
    over_every = 0;
    fill(5000, 3);
    size_t cn = client_deflate(msg, 5000, comp, sizeof comp);
    for (int i = 0; i < 3; i++)
        pc[i] = open_conn("permessage-deflate", "", 1 << 20, 0, false);
    /* Two messages arriving (first pieces only) hold the two streams. */
    for (int i = 0; i < 3; i++) {
        struct wse_event ev = { .kind = WSE_EV_DATA, .opcode = WSE_OP_BINARY, .first = true,
                                .last = false, .compressed = true, .data = comp, .len = 10 };
        wse_batch_reset(&batch);
        unsigned code = wse_pmdconn_data(pc[i], &batch, &ev, NULL, 0, &io, &counts);
        ck_assert_uint_eq(code, i < 2 ? 0 : WSE_CLOSE_TRY_LATER);
    }
    /* The first ends its message: its stream goes back, the third may start. */
    struct wse_event rest = { .kind = WSE_EV_DATA, .opcode = WSE_OP_BINARY, .first = false,
                              .last = true, .compressed = true, .data = comp + 10,
                              .len = cn - 10 };
    wse_batch_reset(&batch);
    ck_assert_uint_eq(wse_pmdconn_data(pc[0], &batch, &rest, NULL, 0, &io, &counts), 0);
    ck_assert_uint_eq(feed(pc[2], WSE_OP_BINARY, comp, cn, 0), 0);
    /* Freeing a connection mid-message gives its stream back too. */
    wse_pmdconn_free(pc[1]);
    ck_assert_uint_eq(feed(pc[0], WSE_OP_BINARY, comp, cn, 100), 0);
    wse_pmdconn_free(pc[0]);
    wse_pmdconn_free(pc[2]);
    inflating_cap = 1024;
}
END_TEST

/* ---- the whole-message path (libdeflate) against the stream path ---- */

/* What one echo came to: the close code, the path, the message back. */
struct outcome {
    unsigned code;
    bool whole;
    bool compressed;
    size_t len;
};

static uint8_t back2[1 << 22];
static size_t agreed_len;       /* the message both paths echoed */

/*
 * Echoes c[0..n) once as one piece (the whole path when it applies) and
 * once as an empty first piece and the rest (the stream path always).
 */
static void echo_both(struct wse_pmdconn *pc, unsigned opcode, const char *prefix, uint8_t *c,
                      size_t n, struct outcome *w, struct outcome *st)
{
    static uint8_t copy[1 << 20];
    struct wse_pmdconn_counts counts;
    size_t pl = prefix ? strlen(prefix) : 0;

    ck_assert_uint_le(n, sizeof copy);
    memcpy(copy, c, n);     /* the transform may not write into the piece */
    for (int path = 0; path < 2; path++) {
        struct outcome *o = path ? st : w;
        uint8_t *out = path ? back2 : back;
        struct wse_event ev = {
            .kind = WSE_EV_DATA, .opcode = (uint8_t)opcode, .first = true, .last = !path,
            .frame_start = true, .compressed = true, .data = path ? c : copy,
            .len = path ? 0 : n,
        };
        wire_len = 0;
        wse_batch_reset(&batch);
        o->code = wse_pmdconn_data(pc, &batch, &ev, prefix, pl, &io, &counts);
        o->whole = counts.whole;
        if (path && !o->code) {
            ev = (struct wse_event){ .kind = WSE_EV_DATA, .opcode = (uint8_t)opcode,
                                     .last = true, .compressed = true, .data = c, .len = n };
            o->code = wse_pmdconn_data(pc, &batch, &ev, prefix, pl, &io, &counts);
            o->whole = o->whole || counts.whole;
        }
        take_batch();
        o->len = o->code ? 0 : client_receive(out, sizeof back, opcode, &o->compressed);
    }
}

/* Both paths agree; the first took the path `whole` says.  Returns the code. */
static unsigned agree(struct wse_pmdconn *pc, unsigned opcode, const char *prefix, uint8_t *c,
                      size_t n, bool whole)
{
    struct outcome w, st;

    echo_both(pc, opcode, prefix, c, n, &w, &st);
    ck_assert_msg(w.whole == whole, "n %zu: whole path %d, expected %d (codes %u %u)", n,
                  w.whole, whole, w.code, st.code);
    ck_assert(!st.whole);
    ck_assert_uint_eq(w.code, st.code);
    ck_assert_uint_eq(w.len, st.len);
    ck_assert_mem_eq(back, back2, w.len);
    agreed_len = w.len;
    return w.code;
}

/* A client's message compressed with zlib as pmdz.h's stream path expects. */
static size_t comp_msg(size_t n)
{
    return client_deflate(msg, n, comp, sizeof comp);
}

START_TEST(whole_path_matches_the_stream_path)
{
    enum { MAX = 300000 };
    struct wse_pmdconn *pc = open_conn("permessage-deflate", "", MAX, 0, false);
    size_t cn;

    over_every = 0;
    /* Empty, one byte, ordinary text and binary. */
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, 0, true), 0);
    ck_assert_uint_eq(agreed_len, 0);
    fill(1, 3);
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, comp_msg(1), true), 0);
    ck_assert_mem_eq(back, msg, 1);
    fill(5000, 4);
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, comp, comp_msg(5000), true), 0);
    ck_assert_mem_eq(back, msg, 5000);
    /* The echo prefix goes first, on text only. */
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, "pre: ", comp, comp_msg(5000), true), 0);
    ck_assert_mem_eq(back, "pre: ", 5);
    ck_assert_mem_eq(back + 5, msg, 5000);
    /* Exactly --max-message inflated, and one byte more (the limit is the
     * bound: 1009 at once on the whole path). */
    fill(MAX, 5);
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, comp, comp_msg(MAX), false), 0);
    struct wse_pmdconn *small = open_conn("permessage-deflate", "", 200000, 0, false);
    fill(200000, 5);
    ck_assert_uint_eq(agree(small, WSE_OP_BINARY, NULL, comp, comp_msg(200000), true), 0);
    ck_assert_mem_eq(back, msg, 200000);
    fill(200001, 5);
    ck_assert_uint_eq(agree(small, WSE_OP_BINARY, NULL, comp, comp_msg(200001), true),
                      WSE_CLOSE_TOO_BIG);
    /* A bomb: 1 MiB of zeros in about 1 KiB. */
    memset(msg, 0, 1 << 20);
    cn = comp_msg(1 << 20);
    ck_assert_uint_lt(cn, 2000);
    ck_assert_uint_eq(agree(small, WSE_OP_BINARY, NULL, comp, cn, true), WSE_CLOSE_TOO_BIG);
    wse_pmdconn_free(small);
    /* Above the buffer the limit is the stream path's (the settings are the
     * worker's: set them again). */
    wse_pmdconn_free(pc);
    pc = open_conn("permessage-deflate", "", MAX, 0, false);
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, comp, cn, false), WSE_CLOSE_TOO_BIG);
    /* The worker's buffer exactly (256 KiB) and one byte past it, below
     * --max-message: the second goes to the stream path, which echoes it. */
    fill(256 * 1024, 6);
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, comp_msg(256 * 1024), true), 0);
    ck_assert_mem_eq(back, msg, 256 * 1024);
    fill(256 * 1024 + 1, 6);
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, comp_msg(256 * 1024 + 1), false), 0);
    ck_assert_mem_eq(back, msg, 256 * 1024 + 1);
    /* Invalid UTF-8 at the very end, and cut inside a character. */
    fill(3000, 7);
    msg[2999] = 0xff;
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, comp_msg(3000), true),
                      WSE_CLOSE_BAD_DATA);
    msg[2999] = 0xc3;
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, comp_msg(3000), true),
                      WSE_CLOSE_BAD_DATA);
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, comp, comp_msg(3000), true), 0);
    /* Corrupt data (the stream path decides: 1007), a message cut inside a
     * block, and junk after the RFC 7692 tail. */
    uint8_t junk[] = {0xff, 0xff, 0xff, 0x00};
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, junk, sizeof junk, false),
                      WSE_CLOSE_BAD_DATA);
    fill(3000, 8);
    cn = comp_msg(3000);
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, comp, cn / 2, false), WSE_CLOSE_BAD_DATA);
    /* A BFINAL block ends the message (7.2.3.4), the rest ignored. */
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = msg;
    z.avail_in = 3000;
    z.next_out = comp;
    z.avail_out = sizeof comp;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    cn = sizeof comp - z.avail_out;
    deflateEnd(&z);
    memcpy(comp + cn, "\x00\x12\x34", 3);
    ck_assert_uint_eq(agree(pc, WSE_OP_BINARY, NULL, comp, cn + 3, true), 0);
    ck_assert_mem_eq(back, msg, 3000);
    /* Still usable after every failure. */
    fill(100, 9);
    ck_assert_uint_eq(agree(pc, WSE_OP_TEXT, NULL, comp, comp_msg(100), true), 0);
    wse_pmdconn_free(pc);
}
END_TEST

START_TEST(whole_path_only_where_it_applies)
{
    struct wse_pmdconn_counts counts;
    bool compressed;

    over_every = 0;
    fill(70000, 3);
    size_t cn = comp_msg(70000);
    /* Client takeover: the connection's own zlib stream. */
    struct wse_pmdconn *pc = open_conn("permessage-deflate", "", 1 << 20, 0, true);
    struct wse_event ev = { .kind = WSE_EV_DATA, .opcode = WSE_OP_BINARY, .first = true,
                            .last = true, .compressed = true, .data = comp, .len = cn };
    wse_batch_reset(&batch);
    wire_len = 0;
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts), 0);
    ck_assert(!counts.whole);
    take_batch();
    ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_BINARY, &compressed), 70000);
    wse_pmdconn_free(pc);
    /* Without it: whole when in one piece; streamed in pieces, or when the
     * output is past the high-water mark (that path pauses). */
    pc = open_conn("permessage-deflate", "", 1 << 20, 0, false);
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts), 0);
    ck_assert(counts.whole);
    ev.last = false;
    ev.len = cn / 2;
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts), 0);
    ck_assert(!counts.whole);
    ev = (struct wse_event){ .kind = WSE_EV_DATA, .opcode = WSE_OP_BINARY, .last = true,
                             .compressed = true, .data = comp + cn / 2, .len = cn - cn / 2 };
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts), 0);
    ck_assert(!counts.whole);
    over_every = 1;
    over_calls = 0;
    ev = (struct wse_event){ .kind = WSE_EV_DATA, .opcode = WSE_OP_BINARY, .first = true,
                             .last = true, .compressed = true, .data = comp, .len = cn };
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts),
                      WSE_PMDCONN_PAUSED);
    ck_assert(!counts.whole);
    wse_pmdconn_abandon(pc);
    over_every = 0;
    /* More than 64 KiB compressed in one piece: streamed. */
    uint32_t x = 1;
    for (size_t i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        msg[i] = (uint8_t)x;      /* incompressible */
    }
    cn = comp_msg(100000);
    ck_assert_uint_gt(cn, 64 * 1024);
    ev.len = cn;
    wse_batch_reset(&batch);
    wire_len = 0;
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts), 0);
    ck_assert(!counts.whole);
    take_batch();
    ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_BINARY, &compressed), 100000);
    ck_assert_mem_eq(back, msg, 100000);
    wse_pmdconn_free(pc);
}
END_TEST

/*
 * The echo's compressor: libdeflate (one BFINAL block and 0x00) for a whole
 * echo of 4 KiB or more with no server takeover and window 15; zlib below
 * it, with takeover, or with a smaller window.
 */
START_TEST(whole_echo_compressor_by_case)
{
    static const struct { const char *offer; bool takeover; size_t n; bool ld; } cases[] = {
        {"permessage-deflate", false, 4095, false},
        {"permessage-deflate", false, 4096, true},
        {"permessage-deflate", false, 30000, true},
        {"permessage-deflate", true, 30000, false},
        {"permessage-deflate; server_max_window_bits=10", false, 30000, false},
        {"permessage-deflate; client_max_window_bits=9", false, 30000, true},
    };

    over_every = 0;
    for (size_t i = 0; i < countof(cases); i++) {
        struct wse_pmdconn *pc = open_conn(cases[i].offer, "", 1 << 20, 0, cases[i].takeover);
        fill(cases[i].n, 11);
        size_t cn = comp_msg(cases[i].n);
        for (size_t piece = 0; piece <= 1000; piece += 1000) {
            bool compressed;
            whole_echoes = 0;
            ck_assert_uint_eq(feed(pc, WSE_OP_TEXT, comp, cn, piece), 0);
            ck_assert_uint_eq(client_receive(back, sizeof back, WSE_OP_TEXT, &compressed),
                              cases[i].n);
            ck_assert(compressed);
            ck_assert_mem_eq(back, msg, cases[i].n);
            ck_assert_msg(whole_echoes == cases[i].ld, "case %zu piece %zu", i, piece);
        }
        wse_pmdconn_free(pc);
    }
}
END_TEST

/* ---- pass-through (ARCHITECTURE.md) ---- */

/*
 * A takeover client: its compressor keeps its window (W_c bits; 8 runs as
 * 9, as zlib must) from message to message, and its decompressor inflates
 * our echoes with the window it was promised (W_s), keeping it across a
 * BFINAL block (RFC 7692 7.2.2: the window "used to process the last
 * compressed message").
 */
static z_stream cdef, cinf;

static void tk_client_open(unsigned w_c, unsigned w_s)
{
    deflateEnd(&cdef);
    inflateEnd(&cinf);
    memset(&cdef, 0, sizeof cdef);
    memset(&cinf, 0, sizeof cinf);
    int wb = w_c < 9 ? 9 : (int)w_c;
    ck_assert_int_eq(deflateInit2(&cdef, 6, Z_DEFLATED, -wb, 8, Z_DEFAULT_STRATEGY), Z_OK);
    ck_assert_int_eq(inflateInit2(&cinf, -(int)w_s), Z_OK);
}

/* Compresses msg[0..n) into comp as the client's next message; bfinal:
 * with Z_FINISH (7.2.3.4), after which the stream restarts on its window. */
static size_t tk_client_deflate(size_t n, bool bfinal)
{
    cdef.next_in = msg;
    cdef.avail_in = (uInt)n;
    cdef.next_out = comp;
    cdef.avail_out = sizeof comp;
    int rc = deflate(&cdef, bfinal ? Z_FINISH : Z_SYNC_FLUSH);
    size_t len = sizeof comp - cdef.avail_out;
    if (bfinal) {
        static uint8_t dict[1 << 15];
        uInt dl = 0;
        ck_assert_int_eq(rc, Z_STREAM_END);
        ck_assert_int_eq(deflateGetDictionary(&cdef, dict, &dl), Z_OK);
        ck_assert_int_eq(deflateReset(&cdef), Z_OK);
        if (dl)
            ck_assert_int_eq(deflateSetDictionary(&cdef, dict, dl), Z_OK);
        return len;
    }
    if (rc == Z_BUF_ERROR && n == 0)
        return 0;           /* nothing to flush: the empty message is empty */
    ck_assert_int_eq(rc, Z_OK);
    ck_assert_uint_ge(len, 4);
    ck_assert_mem_eq(comp + len - 4, "\x00\x00\xff\xff", 4);
    return len - 4;
}

/* Inflates the echo in wire[] with the client's decompressor; its length. */
static size_t tk_client_receive(unsigned opcode)
{
    static uint8_t payload[(1 << 22) + 4];
    bool compressed = false;
    size_t plen = wire_message(opcode, payload, &compressed);

    if (!compressed) {          /* below --deflate-min-size, recompressing */
        memcpy(back, payload, plen);
        return plen;
    }
    memcpy(payload + plen, "\x00\x00\xff\xff", 4);
    cinf.next_in = payload;
    cinf.avail_in = (uInt)(plen + 4);
    cinf.next_out = back;
    cinf.avail_out = sizeof back;
    int rc = inflate(&cinf, Z_SYNC_FLUSH);
    ck_assert_msg(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END, "client inflate: %d %s",
                  rc, cinf.msg ? cinf.msg : "");
    size_t got = sizeof back - cinf.avail_out;
    if (rc == Z_STREAM_END) {
        /* BFINAL: the rest is ignored, the window kept for the next. */
        static uint8_t dict[1 << 15];
        uInt dl = 0;
        ck_assert_int_eq(inflateGetDictionary(&cinf, dict, &dl), Z_OK);
        ck_assert_int_eq(inflateReset(&cinf), Z_OK);
        if (dl)
            ck_assert_int_eq(inflateSetDictionary(&cinf, dict, dl), Z_OK);
    } else {
        ck_assert_uint_eq(cinf.avail_in, 0);
    }
    return got;
}

static uint64_t tk_max = 1 << 22;

static struct wse_pmdconn *tk_open(const char *offer, unsigned window_bits)
{
    static char buf[256];
    struct wse_http_req req;
    struct wse_pmdconn_cfg cfg = {
        .enabled = true, .window_bits = (uint8_t)window_bits, .mem_level = 8, .level = 1,
        .server_takeover = true, .client_takeover = true, .safari_guard = true,
        .min_size = 64, .max_message = tk_max, .max_inflating = inflating_cap,
    };
    char hdr[WSE_PMD_RESPONSE_MAX];
    size_t hdr_len, ol = strlen(offer);

    ck_assert_int_eq(wse_pmdconn_setup(&cfg), WSE_OK);
    memset(&req, 0, sizeof req);
    memcpy(buf, offer, ol);
    req.extensions[0] = (struct wse_span){ 0, (uint32_t)ol };
    req.n_extensions = 1;
    struct wse_pmdconn *pc = wse_pmdconn_negotiate(&req, buf, hdr, &hdr_len, NULL);
    ck_assert_ptr_nonnull(pc);
    return pc;
}

/* Sends msg[0..n) compressed (in pieces of `piece`), checks the echo;
 * returns whether it was passed through. */
static bool tk_echo(struct wse_pmdconn *pc, unsigned opcode, size_t n, size_t piece, bool bfinal,
                    const char *prefix)
{
    size_t cn = tk_client_deflate(n, bfinal), pos = 0, plen = prefix ? strlen(prefix) : 0;
    bool passed = false;

    wire_len = 0;
    wse_batch_reset(&batch);
    do {
        size_t k = piece && piece < cn - pos ? piece : cn - pos;
        struct wse_event ev = {
            .kind = WSE_EV_DATA, .opcode = (uint8_t)opcode, .first = pos == 0,
            .last = pos + k == cn, .frame_start = pos == 0, .compressed = true,
            .data = comp + pos, .len = k,
        };
        struct wse_pmdconn_counts counts;
        ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, prefix, plen, &io, &counts), 0);
        passed |= counts.passed;
        take_batch();
        pos += k;
    } while (pos < cn);
    size_t got = tk_client_receive(opcode);
    ck_assert_uint_eq(got, plen + n);
    ck_assert_mem_eq(back, prefix ? prefix : "", plen);
    ck_assert_mem_eq(back + plen, msg, n);
    return passed;
}

/* Text that does not repeat by itself, so a repeat of it is a reference. */
static void fill_random(size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (uint8_t)('a' + (x >> 16) % 26);
    }
}

/*
 * Every (W_c, W_s) pair, each side offered: messages of 0 B to 100 KiB,
 * text and binary, whole and in pieces, one repeated at a distance just
 * past the server's window (so a client window larger than W_s, passed
 * through, would refer where the client's decompressor cannot), then a
 * BFINAL message, after which the connection recompresses for good on the
 * inflater's window (the repeats after it refer to the history before).
 */
START_TEST(pass_through_every_window_pair)
{
    static const size_t sizes[] = {0, 1, 64, 4096, 100 * 1024};
    char offer[128];

    over_every = 0;
    for (unsigned w_c = 8; w_c <= 15; w_c++) {
        for (unsigned w_s = 9; w_s <= 15; w_s++) {
            snprintf(offer, sizeof offer,
                     "permessage-deflate; client_max_window_bits=%u; server_max_window_bits=%u",
                     w_c, w_s);
            struct wse_pmdconn *pc = tk_open(offer, 15);
            unsigned eff_c = w_c < 9 ? 9 : w_c;
            bool expect = eff_c <= w_s;
            ck_assert_msg(wse_pmdconn_passing(pc) == expect, "W_c %u W_s %u", w_c, w_s);
            tk_client_open(w_c, w_s);
            for (int round = 0; round < 2; round++) {
                for (size_t i = 0; i < countof(sizes); i++) {
                    unsigned op = i % 2 ? WSE_OP_BINARY : WSE_OP_TEXT;
                    fill(sizes[i], (unsigned)(i + 3 + round));
                    ck_assert(tk_echo(pc, op, sizes[i], i == 4 ? 5000 : 0, false, NULL) ==
                              (expect && !round));
                }
                size_t far = ((size_t)1 << w_s) + 100;
                fill_random(far, w_c * 16 + w_s);
                ck_assert(tk_echo(pc, WSE_OP_TEXT, far, 0, false, NULL) == (expect && !round));
                ck_assert(tk_echo(pc, WSE_OP_TEXT, far, 700, false, NULL) == (expect && !round));
                if (!round) {
                    /* BFINAL: passed through if passing, then no more. */
                    fill(3000, 9);
                    ck_assert(tk_echo(pc, WSE_OP_BINARY, 3000, 0, true, NULL) == expect);
                    ck_assert(!wse_pmdconn_passing(pc));
                    fill(3000, 9);      /* the same again: refers across the BFINAL */
                    ck_assert(!tk_echo(pc, WSE_OP_BINARY, 3000, 0, false, NULL));
                }
            }
            wse_pmdconn_free(pc);
        }
    }
}
END_TEST

/* Where the answer leaves W_s out, the client takes 15 whatever our own
 * window; no takeover in either direction never passes through. */
START_TEST(pass_through_only_where_it_applies)
{
    static const struct { const char *offer; unsigned bits; bool passes; } cases[] = {
        {"permessage-deflate", 15, true},
        {"permessage-deflate", 10, true},           /* W_s left out: 15 */
        {"permessage-deflate; client_max_window_bits", 10, true},
        {"permessage-deflate; server_max_window_bits=10", 15, false},  /* W_c 15 > 10 */
        {"permessage-deflate; client_max_window_bits=10; server_max_window_bits=10", 15, true},
        {"permessage-deflate; client_max_window_bits=8; server_max_window_bits=9", 15, true},
        {"permessage-deflate; server_no_context_takeover", 15, false},
        {"permessage-deflate; client_no_context_takeover", 15, false},
    };

    for (size_t i = 0; i < countof(cases); i++) {
        struct wse_pmdconn *pc = tk_open(cases[i].offer, cases[i].bits);
        ck_assert_msg(wse_pmdconn_passing(pc) == cases[i].passes, "%s", cases[i].offer);
        wse_pmdconn_free(pc);
    }
}
END_TEST

/* A prefix (--echo-prefix, or one a reload set) ends pass-through before
 * the message it changes; later echoes refer to the history before. */
START_TEST(prefix_leaves_pass_through)
{
    struct wse_pmdconn *pc = tk_open("permessage-deflate", 15);

    over_every = 0;
    tk_client_open(15, 15);
    fill(4096, 4);
    ck_assert(tk_echo(pc, WSE_OP_TEXT, 4096, 0, false, NULL));
    fill(4096, 4);
    ck_assert(!tk_echo(pc, WSE_OP_TEXT, 4096, 100, false, "p: "));
    ck_assert(!wse_pmdconn_passing(pc));
    fill(4096, 4);
    ck_assert(!tk_echo(pc, WSE_OP_BINARY, 4096, 0, false, NULL));
    wse_pmdconn_free(pc);
    deflateEnd(&cdef);
    inflateEnd(&cinf);
}
END_TEST

/* Corrupt data, bad UTF-8 and the inflated limit close as on the other path,
 * before the bad piece goes back. */
START_TEST(pass_through_still_checks)
{
    struct wse_pmdconn *pc = tk_open("permessage-deflate", 15);
    struct wse_pmdconn_counts counts;

    over_every = 0;
    tk_client_open(15, 15);
    memcpy(msg, "ok \xc3\x28 bad", 10);
    size_t cn = tk_client_deflate(10, false);
    struct wse_event ev = { .kind = WSE_EV_DATA, .opcode = WSE_OP_TEXT, .first = true,
                            .last = true, .compressed = true, .data = comp, .len = cn };
    wse_batch_reset(&batch);
    wire_len = 0;
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts),
                      WSE_CLOSE_BAD_DATA);
    take_batch();
    ck_assert_uint_eq(wire_len, 0);
    wse_pmdconn_free(pc);

    tk_max = 100000;            /* a bomb: 1 MiB of zeros, in two pieces */
    pc = tk_open("permessage-deflate", 15);
    tk_client_open(15, 15);
    memset(msg, 0, 1 << 20);
    cn = tk_client_deflate(1 << 20, false);
    ck_assert_uint_lt(cn, 2000);
    ev.opcode = WSE_OP_BINARY;
    ev.len = cn / 2;
    ev.last = false;
    wse_batch_reset(&batch);
    wire_len = 0;
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts),
                      WSE_CLOSE_TOO_BIG);
    take_batch();
    ck_assert_uint_eq(wire_len, 0);
    ck_assert_uint_le(counts.inflated, 100001);
    wse_pmdconn_free(pc);
    tk_max = 1 << 22;
    ev.last = true;
    ev.first = true;

    pc = tk_open("permessage-deflate", 15);
    tk_client_open(15, 15);
    uint8_t junk[] = {0xff, 0xff, 0xff, 0x00};
    ev.data = junk;
    ev.len = sizeof junk;
    wse_batch_reset(&batch);
    wire_len = 0;
    ck_assert_uint_eq(wse_pmdconn_data(pc, &batch, &ev, NULL, 0, &io, &counts),
                      WSE_CLOSE_BAD_DATA);
    take_batch();
    ck_assert_uint_eq(wire_len, 0);
    wse_pmdconn_free(pc);
    deflateEnd(&cdef);
    inflateEnd(&cinf);
}
END_TEST

static Suite *pmdconn_suite(void)
{
    Suite *s = suite_create("pmdconn");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, wse_pmdconn_cleanup);
    tcase_add_test(tc, echo_in_every_piece_size);
    tcase_add_test(tc, pauses_and_resumes_to_the_same_echo);
    tcase_add_test(tc, small_and_empty_go_back_uncompressed);
    tcase_add_test(tc, limits_give_their_codes);
    tcase_add_test(tc, safari_user_agents);
    tcase_add_test(tc, safari_guard_inflates_with_takeover);
    tcase_add_test(tc, lent_decompressors_are_capped);
    tcase_add_test(tc, whole_path_matches_the_stream_path);
    tcase_add_test(tc, whole_path_only_where_it_applies);
    tcase_add_test(tc, whole_echo_compressor_by_case);
    tcase_add_test(tc, pass_through_every_window_pair);
    tcase_add_test(tc, pass_through_only_where_it_applies);
    tcase_add_test(tc, prefix_leaves_pass_through);
    tcase_add_test(tc, pass_through_still_checks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(pmdconn_suite());
}
