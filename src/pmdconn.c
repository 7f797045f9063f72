/*
 * pmdconn.c - the deflate transform: where permessage-deflate's streams live
 * and how a compressed piece becomes echoed frames (see pmdconn.h).
 */
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "pmd.h"
#include "pmdconn.h"
#include "pmdz.h"
#include "utf8.h"

/* Inflated bytes per step: the window, which takeover's carry-over needs. */
#define OUT_CAP (1u << WSE_PMD_BITS_MAX)
/* Compressed bytes per echoed frame at most. */
#define FRAME_CAP (16u * 1024)
/* Inflate streams kept for lending; more are allocated and freed as needed. */
#define FREE_KEEP 16
/*
 * The whole-message path (libdeflate, see pmdz.h): a message that arrived
 * whole in one piece of at most WHOLE_IN compressed bytes, without client
 * takeover, is inflated at once into a worker buffer of WHOLE_OUT bytes.
 * libdeflate decompresses 1.5-3x faster than zlib; one that inflates past
 * WHOLE_OUT (below --max-message) is inflated again by the stream path, so
 * WHOLE_OUT is a few times WHOLE_IN (text compresses 3-5x).
 */
#define WHOLE_IN (64u * 1024)
#define WHOLE_OUT (256u * 1024)
/*
 * An echo held whole of at least this many bytes is compressed with
 * libdeflate (no server takeover, window 15): below it zlib is faster (its
 * per-call setup is smaller; bench/README.md: libdeflate 0.5-0.7x at 64 B,
 * 1.3x at 4 KiB at level 1, 2.1x at 64 KiB; end to end the same crossover).
 */
#define LD_COMPRESS_MIN 4096u

/* A stream and the memory zlib carves from, in one allocation. */
struct own_inflate {
    struct wse_inflate in;
    struct own_inflate *next;       /* on the free list */
    /* A piece paused at the high-water mark (see wse_pmdconn_resume()): its
     * compressed rest, copied out of the read buffer. */
    uint8_t *park;
    size_t park_len;
    bool parked, park_last;
    uint8_t park_opcode;
    _Alignas(WSE_PMDZ_ALIGN) uint8_t mem[];
};

struct own_deflate {
    struct wse_deflate d;
    _Alignas(WSE_PMDZ_ALIGN) uint8_t mem[];
};

/* 24 bytes: an idle connection without takeover holds only this. */
struct wse_pmdconn {
    struct own_inflate *in;     /* owned (takeover), or lent while a message arrives */
    struct own_deflate *out;    /* owned with server takeover (from the first echo) */
    struct wse_utf8 utf8;       /* the inflated text of the open message */
    uint8_t deflate_bits : 4;   /* 9..15 */
    uint8_t inflate_bits : 4;   /* 9..15, of an owned decompressor */
    bool in_owned : 1;          /* client takeover (or the Safari guard) */
    bool out_owned : 1;         /* server takeover */
    bool started : 1;           /* the echo's first frame went out */
    bool passing : 1;           /* echoes are the client's own bytes (see pass()) */
};
_Static_assert(sizeof(struct wse_pmdconn) <= 24, "a malloc chunk of 32 bytes");

static struct {
    struct wse_pmdconn_cfg cfg;
    struct wse_pmd_cfg pmd;
    uint8_t *buf[2];                            /* OUT_CAP + WSE_STR_MAX each */
    struct own_deflate *shared[WSE_PMD_BITS_MAX + 1];  /* no server takeover, by bits */
    struct own_inflate *free_list;
    unsigned nfree;
    uint32_t lent;                              /* borrowed now */
    /* The whole-message path's, made at first use. */
    struct libdeflate_decompressor *dec;
    struct libdeflate_compressor *comp;
    int comp_level;
    uint8_t *whole_in;                          /* WHOLE_IN + WSE_PMDZ_WHOLE_ROOM */
    uint8_t *whole_out;                         /* WSE_STR_MAX + WHOLE_OUT */
    uint8_t *zout;                              /* zout_cap: libdeflate's output */
    size_t zout_cap;
} P;

int wse_pmdconn_setup(const struct wse_pmdconn_cfg *cfg)
{
    P.cfg = *cfg;
    P.pmd.server_bits = cfg->window_bits;
    P.pmd.client_bits = WSE_PMD_BITS_MAX;
    P.pmd.server_takeover = cfg->server_takeover;
    P.pmd.client_takeover = cfg->client_takeover;
    if (!cfg->enabled)
        return WSE_OK;
    for (int i = 0; i < 2; i++)
        if (!P.buf[i] && !(P.buf[i] = malloc(OUT_CAP + WSE_STR_MAX)))
            return WSE_FAIL;
    if (P.comp && P.comp_level != cfg->level) {
        libdeflate_free_compressor(P.comp);     /* a reload changed the level */
        P.comp = NULL;
    }
    return WSE_OK;
}

void wse_pmdconn_cleanup(void)
{
    libdeflate_free_compressor(P.comp);
    libdeflate_free_decompressor(P.dec);
    free(P.whole_in);
    free(P.whole_out);
    free(P.zout);
    P.comp = NULL;
    P.dec = NULL;
    P.whole_in = P.whole_out = P.zout = NULL;
    P.zout_cap = 0;
}

/* The whole-message inflate path's memory; false: none (the stream path
 * then does the work). */
static bool whole_inflate_ready(void)
{
    if (!P.dec && !(P.dec = libdeflate_alloc_decompressor()))
        return false;
    if (!P.whole_in && !(P.whole_in = malloc(WHOLE_IN + WSE_PMDZ_WHOLE_ROOM)))
        return false;
    return P.whole_out || (P.whole_out = malloc(WSE_STR_MAX + WHOLE_OUT));
}

/* The libdeflate compressor and an output buffer for n bytes, or false. */
static bool whole_deflate_ready(size_t n)
{
    if (!P.comp) {
        if (!(P.comp = libdeflate_alloc_compressor(P.cfg.level)))
            return false;
        P.comp_level = P.cfg.level;
    }
    size_t need = wse_deflate_whole_bound(P.comp, n);
    if (need > P.zout_cap) {
        /* Sized for the largest echo held whole, so it is made once. */
        size_t cap = wse_deflate_whole_bound(P.comp, WSE_STR_MAX + WHOLE_OUT);
        if (need > cap)
            return false;
        free(P.zout);
        P.zout_cap = 0;
        if (!(P.zout = malloc(cap)))
            return false;
        P.zout_cap = cap;
    }
    return true;
}

/* ---- streams ---- */

static struct own_inflate *inflate_new(unsigned bits, bool takeover)
{
    size_t mem = wse_inflate_mem(bits);
    struct own_inflate *o = aligned_alloc(WSE_PMDZ_ALIGN,
                                          (sizeof *o + mem + WSE_PMDZ_ALIGN - 1) &
                                          ~(size_t)(WSE_PMDZ_ALIGN - 1));

    if (!o)
        return NULL;
    o->next = NULL;
    o->park = NULL;
    o->park_len = 0;
    o->parked = false;
    if (wse_inflate_init(&o->in, o->mem, mem, bits, takeover, P.cfg.max_message) != WSE_OK) {
        inflateEnd(&o->in.zs);
        free(o);
        return NULL;
    }
    return o;
}

static void unpark(struct own_inflate *o)
{
    free(o->park);
    o->park = NULL;
    o->parked = false;
}

static void inflate_del(struct own_inflate *o)
{
    if (o) {
        unpark(o);
        inflateEnd(&o->in.zs);
        free(o);
    }
}

/* A decompressor for one message, or NULL: *code says why. */
static struct own_inflate *inflate_borrow(unsigned *code)
{
    struct own_inflate *o = P.free_list;

    *code = WSE_CLOSE_TRY_LATER;
    if (P.lent >= P.cfg.max_inflating)
        return NULL;        /* each costs 40 KiB: peers that start messages and stall */
    *code = WSE_CLOSE_INTERNAL;
    if (o) {
        P.free_list = o->next;
        P.nfree--;
    } else if (!(o = inflate_new(WSE_PMD_BITS_MAX, false))) {
        return NULL;
    }
    o->in.max = P.cfg.max_message;     /* a setup since it was made may have changed it */
    P.lent++;
    return o;
}

static void inflate_return(struct own_inflate *o)
{
    unpark(o);
    P.lent--;
    if (P.nfree >= FREE_KEEP) {
        inflate_del(o);
        return;
    }
    o->next = P.free_list;
    P.free_list = o;
    P.nfree++;
}

static struct own_deflate *deflate_new(unsigned bits, bool takeover)
{
    size_t mem = wse_deflate_mem(bits, P.cfg.mem_level);
    struct own_deflate *o = aligned_alloc(WSE_PMDZ_ALIGN,
                                          (sizeof *o + mem + WSE_PMDZ_ALIGN - 1) &
                                          ~(size_t)(WSE_PMDZ_ALIGN - 1));

    if (!o)
        return NULL;
    if (wse_deflate_init(&o->d, o->mem, mem, bits, P.cfg.mem_level,
                         (int)P.cfg.level, takeover) != WSE_OK) {
        deflateEnd(&o->d.zs);
        free(o);
        return NULL;
    }
    return o;
}

static void deflate_del(struct own_deflate *o)
{
    if (o) {
        deflateEnd(&o->d.zs);
        free(o);
    }
}

/* The compressor for pc's echo: its own, or the worker's for its window. */
static struct wse_deflate *deflater(struct wse_pmdconn *pc)
{
    if (pc->out_owned && !pc->out)
        pc->out = deflate_new(pc->deflate_bits, true);     /* at the first echo */
    if (pc->out_owned)
        return pc->out ? &pc->out->d : NULL;
    struct own_deflate **s = &P.shared[pc->deflate_bits];
    if (!*s)
        *s = deflate_new(pc->deflate_bits, false);
    return *s ? &(*s)->d : NULL;
}

/* ---- negotiation ---- */

/* "Version/15.N" with N 0..3 and no more digits, at p. */
static bool has_token_15x(const char *ua, size_t len, const char *tok, char sep)
{
    size_t tl = strlen(tok);

    for (size_t i = 0; i + tl + 3 <= len; i++) {
        if (memcmp(ua + i, tok, tl) != 0)
            continue;
        const char *v = ua + i + tl;
        if (v[0] == '1' && v[1] == '5' && v[2] == sep && i + tl + 3 < len &&
            v[3] >= '0' && v[3] <= '3' && (i + tl + 4 == len || v[4] < '0' || v[4] > '9'))
            return true;
    }
    return false;
}

static bool has(const char *ua, size_t len, const char *tok)
{
    size_t tl = strlen(tok);

    for (size_t i = 0; i + tl <= len; i++)
        if (memcmp(ua + i, tok, tl) == 0)
            return true;
    return false;
}

bool wse_pmdconn_ua_ignores_nct(const char *ua, size_t len)
{
    /* Desktop and iOS Safari name their version; every iOS browser is
     * WebKit, and names the system's version instead. */
    if (has(ua, len, "Safari/") && !has(ua, len, "Chrome/") && !has(ua, len, "Chromium/") &&
        has_token_15x(ua, len, "Version/", '.'))
        return true;
    return has(ua, len, "AppleWebKit/") && has_token_15x(ua, len, " OS ", '_');
}

/*
 * The client's compressor window W_c (15 when client_max_window_bits is
 * left out; 8 counts as 9, which zlib deflates with) within what its
 * decompressor takes from us, W_s (server_max_window_bits, 15 when left
 * out), and takeover both ways: ARCHITECTURE.md, "Pass-through echo".
 */
bool wse_pmdconn_passes(const struct wse_pmd_agreed *a)
{
    unsigned w_c = a->client_bits ? a->client_bits : WSE_PMD_BITS_MAX;
    unsigned w_s = a->server_bits ? a->server_bits : WSE_PMD_BITS_MAX;

    if (w_c < WSE_PMD_ZLIB_BITS_MIN)
        w_c = WSE_PMD_ZLIB_BITS_MIN;
    return !a->server_nct && !a->client_nct && w_c <= w_s;
}

struct wse_pmdconn *wse_pmdconn_negotiate(const struct wse_http_req *req, const char *buf,
                                          char *hdr, size_t *hdr_len, const char **why)
{
    struct wse_pmd_agreed a;
    enum wse_pmd_why w = WSE_PMD_NO_OFFER;
    struct wse_pmdconn *pc;

    *hdr_len = 0;
    if (why)
        *why = "not offered";
    if (!P.cfg.enabled)
        return NULL;
    if (!wse_pmd_negotiate(&P.pmd, buf, req->extensions, req->n_extensions, &a, &w)) {
        if (why)
            *why = wse_pmd_why_str(w);
        return NULL;
    }
    /* A client that ignores client_no_context_takeover keeps its window:
     * inflate it with a window of its own (15 bits: it may ignore the
     * window's bound too). */
    bool guard = a.client_nct && P.cfg.safari_guard &&
                 wse_pmdconn_ua_ignores_nct(buf + req->user_agent.off, req->user_agent.len);
    if (why)
        *why = "no memory";
    if (!(pc = calloc(1, sizeof *pc)))
        return NULL;
    /* Takeover streams are made at the first message that needs them, so
     * a connection that never sends one costs its 24 bytes only. */
    pc->deflate_bits = a.deflate_bits & 15;
    pc->inflate_bits = (guard ? WSE_PMD_BITS_MAX : a.inflate_bits) & 15;
    pc->out_owned = !a.server_nct;
    pc->in_owned = !a.client_nct || guard;
    pc->passing = wse_pmdconn_passes(&a);
    *hdr_len = wse_pmd_response(hdr, WSE_PMD_RESPONSE_MAX, &a);
    if (!*hdr_len) {
        free(pc);
        return NULL;
    }
    if (why)
        *why = guard ? "accepted (Safari guard: own inflate context)" : "accepted";
    return pc;
}

void wse_pmdconn_free(struct wse_pmdconn *pc)
{
    if (!pc)
        return;
    if (pc->in) {
        if (pc->in_owned)
            inflate_del(pc->in);
        else
            inflate_return(pc->in);
    }
    deflate_del(pc->out);
    free(pc);
}

/* ---- the echo ---- */

/* One call's run: the inflated chunk held back, in P.buf[cur]. */
struct run {
    struct wse_pmdconn *pc;
    struct wse_batch *b;
    const struct wse_pmdconn_io *io;
    struct wse_pmdconn_counts *n;
    unsigned opcode;
    bool last;                  /* the piece ends the message */
    size_t held;
    bool held_is_prefix;        /* the held bytes are only the prefix */
    int cur;
};

/* Batch scratch, flushing when full; NULL: the connection is gone. */
static uint8_t *room(struct run *r, size_t n)
{
    uint8_t *p = wse_batch_scratch(r->b, n);

    if (!p) {
        if (!r->io->flush(r->io->ctx))
            return NULL;
        p = wse_batch_scratch(r->b, n);
    }
    return p;
}

/* Compresses p[0..n) as the echo's next input; 0 or a close code. */
static unsigned deflate_out(struct run *r, const uint8_t *p, size_t n, bool last)
{
    struct wse_deflate *d = deflater(r->pc);

    if (!d)
        return WSE_CLOSE_INTERNAL;
    wse_deflate_input(d, p, n, last);
    for (;;) {
        uint8_t *s = room(r, WSE_SERVER_HDR_MAX + FRAME_CAP);
        size_t len;
        bool fin;
        if (!s)
            return WSE_PMDCONN_DEAD;
        int rc = wse_deflate_next(d, s + WSE_SERVER_HDR_MAX, FRAME_CAP, &len, &fin);
        if (rc != WSE_OK) {
            wse_batch_unscratch(r->b, WSE_SERVER_HDR_MAX + FRAME_CAP);
            return rc == WSE_AGAIN ? 0 : WSE_CLOSE_INTERNAL;
        }
        size_t hl = wse_server_hdr_len(len);
        uint8_t *h = s + WSE_SERVER_HDR_MAX - hl;
        wse_frame_write_header(h, fin, r->pc->started ? WSE_OP_CONT : r->opcode, len);
        if (!r->pc->started)
            h[0] |= WSE_RSV1;
        r->pc->started = true;
        wse_batch_unscratch(r->b, FRAME_CAP - len);
        wse_batch_add(r->b, h, hl + len, false);    /* scratch reserved its iovecs */
        r->n->sent += len;
        r->n->frames++;
        if (fin)
            return 0;
    }
}

/* The whole message is p[0..n) and small: send it as it is. */
static unsigned plain_out(struct run *r, const uint8_t *p, size_t n)
{
    size_t hl = wse_server_hdr_len(n);
    uint8_t *s = room(r, hl + n);

    if (!s)
        return WSE_PMDCONN_DEAD;
    wse_frame_write_header(s, true, r->opcode, n);
    memcpy(s + hl, p, n);
    wse_batch_add(r->b, s, hl + n, false);
    r->n->sent += n;
    r->n->frames++;
    return 0;
}

/*
 * The whole echo p[0..n) compressed by libdeflate, sent as frames of at
 * most FRAME_CAP bytes (as the stream path's).  *done false: nothing was
 * done (no memory), the caller compresses with zlib instead.
 */
static unsigned whole_deflate_out(struct run *r, const uint8_t *p, size_t n, bool *done)
{
    *done = false;
    if (!whole_deflate_ready(n))
        return 0;
    size_t len = wse_deflate_whole(P.comp, p, n, P.zout, P.zout_cap);
    if (!len)
        return 0;
    *done = true;
    for (size_t at = 0; at < len;) {
        size_t k = len - at < FRAME_CAP ? len - at : FRAME_CAP;
        size_t hl = wse_server_hdr_len(k);
        uint8_t *s = room(r, hl + k);
        if (!s)
            return WSE_PMDCONN_DEAD;
        wse_frame_write_header(s, at + k == len, at ? WSE_OP_CONT : r->opcode, k);
        if (!at)
            s[0] |= WSE_RSV1;
        memcpy(s + hl, P.zout + at, k);
        wse_batch_add(r->b, s, hl + k, false);
        r->n->sent += k;
        r->n->frames++;
        at += k;
    }
    r->pc->started = true;
    return 0;
}

/*
 * The echo of a message held whole in p[0..n) (nothing of it sent yet):
 * uncompressed below --deflate-min-size (while it fits one step), with
 * libdeflate from LD_COMPRESS_MIN when the window and takeover allow it,
 * else with zlib.
 */
static unsigned whole_out(struct run *r, const uint8_t *p, size_t n)
{
    struct wse_pmdconn *pc = r->pc;

    if (n < P.cfg.min_size && n <= OUT_CAP + WSE_STR_MAX)
        return plain_out(r, p, n);
    if (n >= LD_COMPRESS_MIN && !pc->out_owned && pc->deflate_bits == WSE_PMD_BITS_MAX) {
        bool done;
        unsigned code = whole_deflate_out(r, p, n, &done);
        if (done)
            return code;
    }
    return deflate_out(r, p, n, true);
}

static void release_inflate(struct wse_pmdconn *pc)
{
    if (pc->in && !pc->in_owned) {
        inflate_return(pc->in);
        pc->in = NULL;
    }
}

static unsigned inflate_fail(struct wse_pmdconn *pc)
{
    unsigned code = pc->in->in.code ? pc->in->in.code : WSE_CLOSE_INTERNAL;

    release_inflate(pc);
    return code;
}

/*
 * The output passed the high-water mark and the peer is not taking it: what
 * is held goes out, and the rest of the piece's compressed input is copied
 * out of the (worker's) read buffer to wait for wse_pmdconn_resume().
 */
static unsigned park(struct run *r)
{
    struct own_inflate *o = r->pc->in;
    z_stream *zs = &o->in.zs;
    unsigned code = deflate_out(r, P.buf[r->cur], r->held, false);

    if (code)
        return code;
    r->held = 0;
    uintptr_t at = (uintptr_t)zs->next_in, base = (uintptr_t)o->park;
    bool in_park = o->park && at >= base && at <= base + o->park_len;   /* paused again */
    if (!in_park && zs->avail_in) {
        uint8_t *copy = malloc(zs->avail_in);
        if (!copy)
            return WSE_CLOSE_INTERNAL;
        memcpy(copy, zs->next_in, zs->avail_in);
        free(o->park);
        o->park = copy;
        o->park_len = zs->avail_in;
        zs->next_in = copy;
    }
    o->parked = true;
    o->park_last = r->last;
    o->park_opcode = (uint8_t)r->opcode;
    return WSE_PMDCONN_PAUSED;
}

/* Inflates the piece through, deflating all but the last chunk. */
static unsigned pump(struct run *r)
{
    struct wse_pmdconn *pc = r->pc;
    bool text = r->opcode == WSE_OP_TEXT;

    for (;;) {
        bool swap = r->held && !r->held_is_prefix;
        if (swap && r->io->over(r->io->ctx))
            return park(r);
        uint8_t *dst = swap ? P.buf[!r->cur] : P.buf[r->cur] + r->held;
        size_t n;
        int rc = wse_inflate_next(&pc->in->in, dst, OUT_CAP, &n);
        if (rc == WSE_AGAIN)
            return 0;
        if (rc != WSE_OK)
            return inflate_fail(pc);
        if (text && wse_utf8_feed(&pc->utf8, dst, n, NULL) != WSE_OK)
            return WSE_CLOSE_BAD_DATA;
        r->n->inflated += n;
        if (swap) {
            unsigned code = deflate_out(r, P.buf[r->cur], r->held, false);
            if (code)
                return code;
            r->cur = !r->cur;
            r->held = n;
        } else {
            r->held += n;
        }
        r->held_is_prefix = false;
    }
}

/* The piece's input is in the stream: inflate it through and echo. */
static unsigned drive(struct run *r)
{
    struct wse_pmdconn *pc = r->pc;
    unsigned code = pump(r);

    if (code)
        return code;
    free(pc->in->park);         /* used up */
    pc->in->park = NULL;
    if (!r->last)
        return r->held ? deflate_out(r, P.buf[r->cur], r->held, false) : 0;
    if (r->opcode == WSE_OP_TEXT && wse_utf8_end(&pc->utf8) != WSE_OK)
        return WSE_CLOSE_BAD_DATA;
    if (!pc->started)
        code = whole_out(r, P.buf[r->cur], r->held);
    else
        code = deflate_out(r, P.buf[r->cur], r->held, true);
    release_inflate(pc);
    return code;
}

/*
 * A message whole in one piece (ev first and last), small enough, without
 * client takeover, and with the output below the high-water mark (its echo
 * is made at once, up to WHOLE_OUT, where the stream path checks every
 * step): inflated by libdeflate.  *taken false: the stream path does it.
 */
static unsigned whole(struct run *r, const struct wse_event *ev, const char *prefix,
                      size_t prefix_len, bool *taken)
{
    struct wse_pmdconn *pc = r->pc;

    *taken = false;
    if (!ev->first || !ev->last || pc->in_owned || ev->len > WHOLE_IN)
        return 0;
    if (r->io->over(r->io->ctx) || !whole_inflate_ready())
        return 0;
    release_inflate(pc);    /* still lent after a failed message: not needed */
    size_t pre = ev->opcode == WSE_OP_TEXT && prefix_len <= WSE_STR_MAX ? prefix_len : 0;
    size_t got;
    uint16_t code;
    memcpy(P.whole_in, ev->data, ev->len);
    int rc = wse_inflate_whole(P.dec, P.whole_in, ev->len, P.whole_out + pre, WHOLE_OUT,
                               P.cfg.max_message, &got, &code);
    if (rc == WSE_AGAIN)
        return 0;
    *taken = true;
    r->n->whole = true;
    if (rc != WSE_OK)
        return code;
    r->n->inflated += got;
    if (ev->opcode == WSE_OP_TEXT) {
        struct wse_utf8 u;
        wse_utf8_init(&u);
        if (wse_utf8_feed(&u, P.whole_out + pre, got, NULL) != WSE_OK ||
            wse_utf8_end(&u) != WSE_OK)
            return WSE_CLOSE_BAD_DATA;
    }
    if (pre)
        memcpy(P.whole_out, prefix, pre);
    return whole_out(r, P.whole_out, pre + got);
}

/*
 * Leaves pass-through for good, at a message boundary: from now on echoes
 * are compressed by the connection's own stream, made now (a pass-through
 * connection has none) and given the inflater's window as its history,
 * which is the history the client's decompressor holds for our stream
 * (ARCHITECTURE.md), so the echoes may refer to it.
 */
static unsigned leave_pass(struct wse_pmdconn *pc)
{
    pc->passing = false;
    struct wse_deflate *d = deflater(pc);
    if (!d)
        return WSE_CLOSE_INTERNAL;
    if (!pc->in)
        return 0;               /* no message yet: no history */
    size_t len = wse_inflate_window(&pc->in->in, P.buf[1], OUT_CAP + WSE_STR_MAX);
    return len && wse_deflate_prime(d, P.buf[1], len) != WSE_OK ? WSE_CLOSE_INTERNAL : 0;
}

/* The piece p[0..n) as received, as the echo's next frame (header in
 * scratch, payload where it was read, as the plain echo's). */
static unsigned raw_out(struct run *r, uint8_t *p, size_t n)
{
    if (!n && !r->last)
        return 0;               /* nothing to say yet */
    uint8_t *s = room(r, WSE_SERVER_HDR_MAX);

    if (!s)
        return WSE_PMDCONN_DEAD;
    size_t hl = wse_frame_write_header(s, r->last, r->pc->started ? WSE_OP_CONT : r->opcode, n);
    if (!r->pc->started)
        s[0] |= WSE_RSV1;
    r->pc->started = true;
    wse_batch_unscratch(r->b, WSE_SERVER_HDR_MAX - hl);
    wse_batch_add(r->b, s, hl, false);      /* scratch reserved its iovecs */
    if (n)
        wse_batch_add(r->b, p, n, true);
    r->n->sent += n;
    r->n->frames++;
    return 0;
}

/*
 * Pass-through: the piece is inflated as on the other path (UTF-8, the
 * inflated limit, corrupt data: same codes), the output only checked, and
 * once the piece passed, its compressed bytes go back as they came.  A
 * message that ended its DEFLATE stream with BFINAL (7.2.3.4) goes back so
 * too (the client's decompressor then sees its own compressor's stream),
 * and the connection leaves pass-through after it: what a client does
 * across a BFINAL is the one thing the proof does not cover.
 */
static unsigned pass(struct run *r, const struct wse_event *ev)
{
    struct wse_pmdconn *pc = r->pc;
    bool text = r->opcode == WSE_OP_TEXT;

    for (;;) {
        size_t n;
        int rc = wse_inflate_next(&pc->in->in, P.buf[0], OUT_CAP, &n);
        if (rc == WSE_AGAIN)
            break;
        if (rc != WSE_OK)
            return inflate_fail(pc);
        if (text && wse_utf8_feed(&pc->utf8, P.buf[0], n, NULL) != WSE_OK)
            return WSE_CLOSE_BAD_DATA;
        r->n->inflated += n;
    }
    if (r->last && text && wse_utf8_end(&pc->utf8) != WSE_OK)
        return WSE_CLOSE_BAD_DATA;
    r->n->passed = true;
    unsigned code = raw_out(r, ev->data, ev->len);
    if (!code && r->last && pc->in->in.ended)
        code = leave_pass(pc);
    return code;
}

unsigned wse_pmdconn_data(struct wse_pmdconn *pc, struct wse_batch *b,
                          const struct wse_event *ev, const char *prefix, size_t prefix_len,
                          const struct wse_pmdconn_io *io, struct wse_pmdconn_counts *n)
{
    struct run r = { pc, b, io, n, ev->opcode, ev->last, 0, false, 0 };

    memset(n, 0, sizeof *n);
    if (ev->first) {
        pc->started = false;
        /* A prefix (--echo-prefix) changes what the client's decompressor
         * sees: no pass-through (negotiation does not know the prefix). */
        if (pc->passing && prefix_len) {
            unsigned code = leave_pass(pc);
            if (code)
                return code;
        }
        bool taken;
        unsigned code = whole(&r, ev, prefix, prefix_len, &taken);
        if (taken)
            return code;
        wse_utf8_init(&pc->utf8);
        code = WSE_CLOSE_INTERNAL;
        if (!pc->in && pc->in_owned)
            pc->in = inflate_new(pc->inflate_bits, true);   /* the first message */
        else if (!pc->in)
            pc->in = inflate_borrow(&code);
        if (!pc->in)
            return code;
        if (ev->opcode == WSE_OP_TEXT && prefix_len && prefix_len <= WSE_STR_MAX) {
            memcpy(P.buf[0], prefix, prefix_len);
            r.held = prefix_len;
            r.held_is_prefix = true;
        }
    }
    if (!pc->in || pc->in->parked)
        return WSE_CLOSE_INTERNAL;      /* the caller broke the protocol: cannot happen */
    wse_inflate_input(&pc->in->in, ev->data, ev->len, ev->first, ev->last);
    return pc->passing ? pass(&r, ev) : drive(&r);
}

bool wse_pmdconn_passing(const struct wse_pmdconn *pc)
{
    return pc && pc->passing;
}

bool wse_pmdconn_parked(const struct wse_pmdconn *pc)
{
    return pc && pc->in && pc->in->parked;
}

unsigned wse_pmdconn_resume(struct wse_pmdconn *pc, struct wse_batch *b,
                            const struct wse_pmdconn_io *io, struct wse_pmdconn_counts *n)
{
    struct own_inflate *o = pc->in;
    struct run r = { pc, b, io, n, o->park_opcode, o->park_last, 0, false, 0 };

    memset(n, 0, sizeof *n);
    o->parked = false;
    return drive(&r);
}

void wse_pmdconn_abandon(struct wse_pmdconn *pc)
{
    if (pc && pc->in) {
        unpark(pc->in);
        release_inflate(pc);
    }
}
