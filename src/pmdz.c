/*
 * pmdz.c - permessage-deflate's inflate and deflate streams on zlib, over
 * caller memory (see pmdz.h for the contract).
 */
#include "pmdz.h"

#include <libdeflate.h>
#include <string.h>

#include "common.h"
#include "frame.h"

static const uint8_t TAIL[4] = { 0x00, 0x00, 0xff, 0xff };

static unsigned zlib_bits(unsigned bits)
{
    return bits < 9 ? 9 : bits;
}

static size_t align_up(size_t n)
{
    return (n + WSE_PMDZ_ALIGN - 1) & ~(size_t)(WSE_PMDZ_ALIGN - 1);
}

size_t wse_inflate_mem(unsigned bits)
{
    return align_up(WSE_PMDZ_INFLATE_STATE) + align_up((size_t)1 << zlib_bits(bits));
}

size_t wse_deflate_mem(unsigned bits, unsigned mem_level)
{
    unsigned b = zlib_bits(bits);

    /* window (2 x 2^bits bytes), prev (2^bits Pos), head (2^(ml+7) Pos),
     * pending_buf (2^(ml+6) x 4): the sum is the formula in pmdz.h. */
    return align_up(WSE_PMDZ_DEFLATE_STATE) + 2 * align_up((size_t)2 << b) +
           2 * align_up((size_t)1 << (mem_level + 8));
}

/* zlib's allocator: a bump in the caller's block; freed with the block. */
static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
    struct wse_arena *a = opaque;
    size_t n = (size_t)items * size;

    if (size && n / size != items)
        return Z_NULL;
    size_t r = align_up(n);
    if (r < n || r > a->cap - a->used)
        return Z_NULL;
    void *p = a->base + a->used;
    a->used += r;
    a->asked += n;
    return p;
}

static void arena_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    (void)p;
}

static void arena_init(struct wse_arena *a, z_stream *zs, void *mem, size_t cap)
{
    uintptr_t at = (uintptr_t)mem;
    size_t skip = (size_t)(align_up(at) - at);

    a->base = (uint8_t *)mem + (skip < cap ? skip : cap);
    a->cap = skip < cap ? cap - skip : 0;
    a->used = 0;
    a->asked = 0;
    memset(zs, 0, sizeof *zs);
    zs->zalloc = arena_alloc;
    zs->zfree = arena_free;
    zs->opaque = a;
}

/* ---- inflate ---- */

int wse_inflate_init(struct wse_inflate *in, void *mem, size_t cap, unsigned bits,
                     bool takeover, uint64_t max)
{
    memset(in, 0, sizeof *in);
    if (bits < 8 || bits > 15)
        return WSE_FAIL;
    in->bits = (uint8_t)zlib_bits(bits);
    in->takeover = takeover;
    in->max = max;
    arena_init(&in->arena, &in->zs, mem, cap);
    /* The window is taken at the first inflate: make sure it will fit. */
    if (cap < wse_inflate_mem(bits))
        return WSE_FAIL;
    return inflateInit2(&in->zs, -(int)in->bits) == Z_OK ? WSE_OK : WSE_FAIL;
}

static void inflate_begin(struct wse_inflate *in)
{
    if (!in->takeover || in->failed)
        inflateReset(&in->zs);
    in->failed = false;
    in->total = 0;
    in->ended = false;
    in->tail_fed = false;
    in->out_full = false;
    in->any_input = false;
}

void wse_inflate_input(struct wse_inflate *in, const uint8_t *p, size_t n, bool first,
                       bool last)
{
    if (first)
        inflate_begin(in);
    in->zs.next_in = (Bytef *)(uintptr_t)p;
    in->zs.avail_in = (uInt)n;
    in->last = last;
    if (n)
        in->any_input = true;
}

static int inflate_fail(struct wse_inflate *in, uint16_t code)
{
    in->failed = true;
    in->code = code;
    in->zs.avail_in = 0;
    return WSE_FAIL;
}

/*
 * With takeover, a DEFLATE stream ended by BFINAL leaves its window to the
 * next message's stream.  inflateReset() forgets the window, so it is
 * copied out (into the caller's output buffer, free between calls), the
 * stream reset, and the copy given back as the dictionary (raw inflate
 * takes one at any time).
 */
static int inflate_restore(struct wse_inflate *in, uint8_t *out, size_t cap)
{
    uInt len = 0;

    in->restore = false;
    if (cap < ((size_t)1 << in->bits))
        return inflate_fail(in, WSE_CLOSE_INTERNAL);
    if (inflateGetDictionary(&in->zs, out, &len) != Z_OK || inflateReset(&in->zs) != Z_OK)
        return inflate_fail(in, WSE_CLOSE_INTERNAL);
    if (len && inflateSetDictionary(&in->zs, out, len) != Z_OK)
        return inflate_fail(in, WSE_CLOSE_INTERNAL);
    return WSE_OK;
}

size_t wse_inflate_window(struct wse_inflate *in, uint8_t *out, size_t cap)
{
    uInt len = 0;

    if (cap < ((size_t)1 << in->bits) || inflateGetDictionary(&in->zs, out, &len) != Z_OK)
        return 0;
    return len;
}

/*
 * The piece is used up.  At the message's end the stream must stand at a
 * block boundary, after the empty stored block the appended tail completed:
 * data_type has 128 set when inflate() stopped there ("end of block").
 */
static int inflate_piece_done(struct wse_inflate *in)
{
    if (!in->last)
        return WSE_AGAIN;
    in->last = false;
    if (in->any_input && !in->ended && !(in->zs.data_type & 128))
        return inflate_fail(in, WSE_CLOSE_BAD_DATA);
    if (in->ended && in->takeover)
        in->restore = true;
    return WSE_AGAIN;
}

int wse_inflate_next(struct wse_inflate *in, uint8_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (in->failed)
        return WSE_FAIL;
    if (in->restore && inflate_restore(in, out, cap) != WSE_OK)
        return WSE_FAIL;
    for (;;) {
        if (!in->zs.avail_in && !in->out_full) {
            /* An empty payload is an empty message: appending the tail to
             * nothing would leave the stream inside a stored block's header
             * (some clients send it so with context takeover). */
            if (!in->last || in->tail_fed || in->ended || !in->any_input)
                return inflate_piece_done(in);
            in->zs.next_in = (Bytef *)(uintptr_t)TAIL;
            in->zs.avail_in = sizeof TAIL;
            in->tail_fed = true;
        }
        if (in->ended) {
            /* After BFINAL: the rest of the message is not DEFLATE data. */
            in->zs.avail_in = 0;
            in->out_full = false;
            continue;
        }
        /* Never more than one byte past the limit: that byte is the 1009. */
        uint64_t left = in->max - in->total + 1;
        size_t room = left < cap ? (size_t)left : cap;
        if (room > UINT32_MAX)
            room = UINT32_MAX;
        in->zs.next_out = out;
        in->zs.avail_out = (uInt)room;
        int rc = inflate(&in->zs, Z_SYNC_FLUSH);
        size_t got = room - in->zs.avail_out;
        in->out_full = in->zs.avail_out == 0;
        /* The limit first: one call may fill the output and then meet bad
         * data (a block header needs no output room); which comes first
         * must not depend on how the output was chunked. */
        in->total += got;
        if (in->total > in->max)
            return inflate_fail(in, WSE_CLOSE_TOO_BIG);
        if (rc == Z_STREAM_END) {
            in->ended = true;
            in->out_full = false;
        } else if (rc == Z_BUF_ERROR) {
            in->out_full = false;       /* no progress: the input is used up */
        } else if (rc != Z_OK) {
            return inflate_fail(in, rc == Z_MEM_ERROR ? WSE_CLOSE_INTERNAL : WSE_CLOSE_BAD_DATA);
        }
        if (got) {
            *n = got;
            return WSE_OK;
        }
    }
}

/* ---- deflate ---- */

int wse_deflate_init(struct wse_deflate *d, void *mem, size_t cap, unsigned bits,
                     unsigned mem_level, int level, bool takeover)
{
    memset(d, 0, sizeof *d);
    if (bits < 8 || bits > 15 || mem_level < 1 || mem_level > 9 || level < 0 || level > 9)
        return WSE_FAIL;
    d->takeover = takeover;
    d->bits = (uint8_t)zlib_bits(bits);
    arena_init(&d->arena, &d->zs, mem, cap);
    int rc = deflateInit2(&d->zs, level, Z_DEFLATED, -(int)zlib_bits(bits), (int)mem_level,
                          Z_DEFAULT_STRATEGY);
    return rc == Z_OK ? WSE_OK : WSE_FAIL;
}

/*
 * zlib keeps 2 x window bytes of input; once its position passes 2 x window
 * less MIN_LOOKAHEAD (262) it slides: it moves the upper half down and
 * rewrites every hash head and chain link, O(window + hash) whatever the
 * piece's size (about 20% of a takeover echo's CPU at 4 KiB and 64 KiB,
 * bench/README.md).  Bytes a stream may take since its reset without sliding
 * (a margin below zlib's own bound).
 */
static uint32_t slide_free(const struct wse_deflate *d)
{
    return (2u << d->bits) - 2 * 262u;
}

/*
 * The history a restarted takeover stream keeps: the most recent bytes,
 * where a chatty stream's repeats mostly are.  Given back by
 * deflateSetDictionary(), which hashes every byte (about 12 instructions a
 * byte, a tenth of a slide's cost per byte of input it saves).
 */
#define KEEP 4096u

/* Restarts a takeover stream with its last KEEP bytes as the dictionary
 * (all of it in its raw window, of which the receiver has the same). */
static void deflate_restart(struct wse_deflate *d)
{
    static uint8_t history[1u << 15];      /* a worker is single-threaded */
    uInt len = 0;

    if (deflateGetDictionary(&d->zs, history, &len) != Z_OK || len > sizeof history)
        len = 0;
    deflateReset(&d->zs);
    uInt k = len < KEEP ? len : KEEP;
    d->fed = 0;
    if (k && deflateSetDictionary(&d->zs, history + len - k, k) == Z_OK)
        d->fed = k;
}

int wse_deflate_prime(struct wse_deflate *d, const uint8_t *dict, size_t n)
{
    uInt k = n < KEEP ? (uInt)n : KEEP;

    if (d->busy || !d->takeover)
        return WSE_FAIL;
    if (k && deflateSetDictionary(&d->zs, dict + n - k, k) != Z_OK)
        return WSE_FAIL;
    d->fed = d->fed + k < UINT32_MAX ? d->fed + k : UINT32_MAX;
    return WSE_OK;
}

void wse_deflate_input(struct wse_deflate *d, const uint8_t *p, size_t n, bool last)
{
    /*
     * Without takeover the stream starts afresh at every piece: each piece
     * is flushed whole before the next call with other input, so one stream
     * serves a worker's connections by turns (the client's inflater sees
     * blocks that simply refer to nothing earlier).  With takeover it starts
     * afresh, the same way, where it would otherwise slide (above): the
     * reset clears the hash heads (a memset), the slide would have walked
     * them and the chains; the echo loses the history before the reset,
     * which the client's window still holds and nothing refers to, but
     * its last KEEP bytes.
     */
    if (!d->takeover)
        deflateReset(&d->zs);
    else if (n && d->fed + n > slide_free(d))
        deflate_restart(d);
    d->fed = n < UINT32_MAX - d->fed ? d->fed + (uint32_t)n : UINT32_MAX;
    d->zs.next_in = (Bytef *)(uintptr_t)p;
    d->zs.avail_in = (uInt)n;
    d->last = last;
    d->held = 0;
    d->busy = n > 0 || last;
    d->empty_last = n == 0 && last;
}

/*
 * An empty last piece: every earlier piece was flushed to a byte boundary,
 * so the message ends with an empty stored block whose LEN/NLEN (the tail)
 * the receiver appends: only its header byte, 0x00, is sent (7.2.3.6).
 */
static int deflate_empty_end(struct wse_deflate *d, uint8_t *out, size_t *n, bool *fin)
{
    out[0] = 0x00;
    *n = 1;
    *fin = true;
    d->busy = false;
    d->empty_last = false;
    return WSE_OK;
}

int wse_deflate_next(struct wse_deflate *d, uint8_t *out, size_t cap, size_t *n, bool *fin)
{
    *n = 0;
    *fin = false;
    if (!d->busy)
        return WSE_AGAIN;
    if (d->empty_last)
        return deflate_empty_end(d, out, n, fin);

    memcpy(out, d->carry, d->held);
    size_t pos = d->held;
    d->held = 0;
    d->zs.next_out = out + pos;
    d->zs.avail_out = (uInt)(cap - pos);
    int rc = deflate(&d->zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR)
        return WSE_FAIL;
    size_t len = cap - d->zs.avail_out;
    bool flushed = !d->zs.avail_in && d->zs.avail_out;

    if (!d->last) {
        d->busy = !flushed;
        *n = len;
        return len ? WSE_OK : WSE_AGAIN;
    }
    if (!flushed) {
        /* The tail may end this output: hold back its 4 bytes. */
        memcpy(d->carry, out + len - sizeof TAIL, sizeof TAIL);
        d->held = sizeof TAIL;
        *n = len - sizeof TAIL;
        return WSE_OK;
    }
    if (len < sizeof TAIL || memcmp(out + len - sizeof TAIL, TAIL, sizeof TAIL) != 0)
        return WSE_FAIL;
    *n = len - sizeof TAIL;
    *fin = true;
    d->busy = false;
    return WSE_OK;
}

/* ---- whole messages (libdeflate) ---- */

/* The tail, then a final empty stored block: the stream libdeflate needs. */
static const uint8_t WHOLE_END[WSE_PMDZ_WHOLE_ROOM] = { 0x00, 0x00, 0xff, 0xff,
                                                        0x01, 0x00, 0x00, 0xff, 0xff };

int wse_inflate_whole(struct libdeflate_decompressor *dec, uint8_t *in, size_t n,
                      uint8_t *out, size_t cap, uint64_t max, size_t *got, uint16_t *code)
{
    *got = 0;
    *code = 0;
    if (!n)
        return WSE_OK;      /* as the stream path: an empty payload, an empty message */
    bool limit = max <= cap;
    size_t avail = limit ? (size_t)max : cap;
    memcpy(in + n, WHOLE_END, sizeof WHOLE_END);
    enum libdeflate_result rc = libdeflate_deflate_decompress(dec, in, n + sizeof WHOLE_END,
                                                              out, avail, got);
    if (rc == LIBDEFLATE_SUCCESS)
        return WSE_OK;
    *got = 0;
    if (rc == LIBDEFLATE_INSUFFICIENT_SPACE && limit) {
        *code = WSE_CLOSE_TOO_BIG;
        return WSE_FAIL;
    }
    return WSE_AGAIN;
}

size_t wse_deflate_whole_bound(struct libdeflate_compressor *c, size_t n)
{
    return libdeflate_deflate_compress_bound(c, n) + 1;
}

size_t wse_deflate_whole(struct libdeflate_compressor *c, const uint8_t *p, size_t n,
                         uint8_t *out, size_t cap)
{
    if (cap < 1)
        return 0;
    size_t k = libdeflate_deflate_compress(c, p, n, out, cap - 1);
    if (!k)
        return 0;
    /* After the BFINAL block: the header byte of the empty stored block
     * 7.2.1 appends, whose LEN/NLEN (00 00 ff ff) the sender drops. */
    out[k] = 0x00;
    return k + 1;
}
