/*
 * pmdz.h - the permessage-deflate streams (RFC 7692 7.2): inflate what a
 * client sends and deflate what the server sends back, message by message,
 * in bounded steps (layer 0: zlib over memory the caller gives).
 *
 * Memory.  A stream never allocates: zlib's allocations are carved from the
 * block the caller passes to *_init (wse_inflate_mem / wse_deflate_mem bytes,
 * measured in test_pmdz.c against zlib's own requests), so the caller decides
 * where a stream lives and what it costs:
 *   - no context takeover in a direction: the stream is reset per message
 *     (inflate) or per piece (deflate), so one per worker serves every
 *     connection; an idle connection holds nothing.  (An inflate stream is
 *     held by a connection while one of its messages is still arriving, see
 *     ARCHITECTURE.md.)
 *   - context takeover: the connection keeps its own stream, sized by the
 *     negotiated window and memory level.
 *
 * Inflate (the client's message):
 *   wse_inflate_input(in, piece, len, first, last);
 *   while ((rc = wse_inflate_next(in, out, cap, &n)) == WSE_OK)
 *       use out[0..n): check UTF-8, deflate it back ...
 *   rc == WSE_AGAIN: the piece is used up (and with last, the message is
 *   complete and checked); rc == WSE_FAIL: close with in->code.
 * Each call produces at most cap bytes and consumes at most the piece, so
 * the work per call is bounded; the inflated size of a message is counted
 * across pieces and refused (1009) one byte past the limit, so a bomb costs
 * the limit's worth of output and no more.  The window is the memory, not a
 * check: zlib lets a distance past a window below 15 bits through while its
 * source is still in the current call's output, so a client that exceeds
 * its negotiated window may be refused (1007) or not, depending on how the
 * bytes arrived; what comes out is right either way.  An empty payload is an empty
 * message.  Otherwise at the message's end the 4
 * bytes 00 00 ff ff are appended (7.2.2), after which the stream must stand
 * at a block boundary (else 1007: the message was cut inside a block).  A
 * block with BFINAL set ends the DEFLATE stream (7.2.3.4): the rest of the
 * message is ignored, and with takeover the window is carried over to the
 * next message (which starts a new DEFLATE stream).
 *
 * Deflate (the echo):
 *   wse_deflate_input(d, data, len, last);
 *   while ((rc = wse_deflate_next(d, out, cap, &n, &fin)) == WSE_OK)
 *       send out[0..n) as the next frame's payload, FIN when fin
 *   rc == WSE_AGAIN: the input is used up (after the fin chunk, or for a
 *   piece that is not the last).
 * Every piece is compressed with Z_SYNC_FLUSH, so all its output leaves
 * with it (the echo streams); the message's last chunk drops the trailing
 * 00 00 ff ff (7.2.1).  With takeover, a piece that would carry the stream
 * past zlib's 2 x window buffer starts it afresh instead (see
 * wse_deflate_input()): the receiver keeps its window either way.  An empty last piece after a flushed one is the
 * single byte 0x00, the empty stored block's header whose LEN/NLEN the
 * receiver appends.
 */
#ifndef WSE_PMDZ_H
#define WSE_PMDZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/*
 * zlib's state structures, measured on zlib 1.2.13 (x86_64: 5952 and 7160
 * bytes) with room to spare; test_pmdz.c fails if zlib ever asks for more.
 */
#define WSE_PMDZ_DEFLATE_STATE 6144
#define WSE_PMDZ_INFLATE_STATE 7168
#define WSE_PMDZ_ALIGN 16

/* The smallest output buffer the calls accept. */
#define WSE_PMDZ_OUT_MIN 64

/*
 * Bytes a stream needs (zlib's requests, each rounded to WSE_PMDZ_ALIGN):
 *   inflate: state + 2^bits (the window, taken at the first inflate)
 *   deflate: state + 2^(bits+2) + 2^(mem_level+9)
 * bits 8 counts as 9 (zlib runs raw deflate with 9 when asked for 8).
 */
size_t wse_inflate_mem(unsigned bits);
size_t wse_deflate_mem(unsigned bits, unsigned mem_level);

struct wse_arena {
    uint8_t *base;
    size_t cap, used;
    size_t asked;       /* bytes zlib asked for, unrounded (for the tests) */
};

struct wse_inflate {
    z_stream zs;
    struct wse_arena arena;
    uint64_t total;     /* inflated bytes of the current message */
    uint64_t max;       /* the largest inflated message; one byte more is 1009 */
    uint16_t code;      /* on WSE_FAIL: 1007 corrupt, 1009 too big, 1011 internal */
    uint8_t bits;
    bool takeover;      /* keep the window from message to message */
    bool last;          /* the current piece ends the message */
    bool tail_fed;      /* 00 00 ff ff given to zlib */
    bool out_full;      /* the last call filled the output: more may be pending */
    bool ended;         /* BFINAL seen: the rest of the message is ignored */
    bool restore;       /* takeover after BFINAL: reseed the window first */
    bool any_input;     /* the message had compressed bytes */
    bool failed;
};

/*
 * Starts an inflate stream in mem[0..cap) (cap >= wse_inflate_mem(bits)):
 * window bits 8..15 (8 inflates with 9), takeover, and the inflated size
 * limit.  WSE_OK, or WSE_FAIL (cap too small, bad bits).
 */
int wse_inflate_init(struct wse_inflate *in, void *mem, size_t cap, unsigned bits,
                     bool takeover, uint64_t max);

/*
 * The next piece of a compressed message (p[0..n), read until the last
 * wse_inflate_next() call that returns WSE_AGAIN).  first: the message's
 * first piece; last: its last.
 */
void wse_inflate_input(struct wse_inflate *in, const uint8_t *p, size_t n, bool first,
                       bool last);

/*
 * Inflates into out[0..cap) (cap >= WSE_PMDZ_OUT_MIN; with takeover, cap >=
 * 2^bits, which the window's carry-over after BFINAL borrows).  WSE_OK:
 * *n > 0 bytes came out, call again; WSE_AGAIN: the piece is used up;
 * WSE_FAIL: in->code (the stream is then unusable until the next message's
 * first piece, when it is reset; with takeover, until re-initialised).
 */
int wse_inflate_next(struct wse_inflate *in, uint8_t *out, size_t cap, size_t *n);

/*
 * The stream's window (the most recent inflated bytes, at most 2^bits) into
 * out[0..cap), cap >= 2^bits, between calls: its length (0 on failure or
 * before any output).  Still the window after a BFINAL block (7.2.3.4).
 */
size_t wse_inflate_window(struct wse_inflate *in, uint8_t *out, size_t cap);

struct wse_deflate {
    z_stream zs;
    struct wse_arena arena;
    bool takeover;      /* keep the window from message to message */
    bool busy;          /* input given and not yet all flushed out */
    bool last;          /* the input ends the message */
    bool empty_last;    /* ... and is empty: the 0x00 alone */
    uint8_t held;       /* bytes of carry (the possible tail, held back) */
    uint8_t carry[4];
    uint8_t bits;       /* the window zlib runs (9..15) */
    uint32_t fed;       /* takeover: bytes given since the stream's last reset */
};

/*
 * Starts a deflate stream in mem[0..cap) (cap >= wse_deflate_mem(bits,
 * mem_level)): window bits 8..15 (8 runs as 9), mem_level 1..9, level
 * 0..9, takeover.  WSE_OK or WSE_FAIL.
 */
int wse_deflate_init(struct wse_deflate *d, void *mem, size_t cap, unsigned bits,
                     unsigned mem_level, int level, bool takeover);

/*
 * The next piece of the message to compress; last: it ends the message.
 * Call wse_deflate_next() until WSE_AGAIN before giving the next piece.
 */
void wse_deflate_input(struct wse_deflate *d, const uint8_t *p, size_t n, bool last);

/*
 * Compresses into out[0..cap) (cap >= WSE_PMDZ_OUT_MIN).  WSE_OK: out[0..*n)
 * is the next chunk of the message's payload (possibly empty when *fin);
 * *fin: it is the last.  WSE_AGAIN: nothing more for this input.  WSE_FAIL:
 * zlib failed (a bug: close with 1011).
 */
int wse_deflate_next(struct wse_deflate *d, uint8_t *out, size_t cap, size_t *n, bool *fin);

/*
 * Gives a takeover stream that is between messages (fresh, or its last
 * message flushed out) dict[0..n) as the history the receiver's window
 * already holds: its last 4 KiB (the restart's KEEP), so later echoes may
 * refer to it.  WSE_OK, or WSE_FAIL (no takeover, busy, or zlib refused).
 */
int wse_deflate_prime(struct wse_deflate *d, const uint8_t *dict, size_t n);

/*
 * Whole messages (libdeflate): no context takeover, the message held whole.
 * libdeflate has no streaming and no window carried between calls, and it
 * always compresses with a 32 KiB window; it is faster than zlib on whole
 * buffers (bench/README.md), so the transform uses it where those limits
 * do not matter and zlib everywhere else.
 *
 * Inflate: in[0..n) is the message's whole payload, and
 * in[n..n+WSE_PMDZ_WHOLE_ROOM) writable room: the 00 00 ff ff tail (7.2.2)
 * and a final empty stored block are appended there, since libdeflate needs
 * a stream that ends.  Up to cap bytes come out into out; max is the
 * inflated limit (--max-message).  An empty payload is an empty message.
 *   WSE_OK     *got bytes, the whole message (a BFINAL block in the payload
 *              ends it early, the rest ignored, as the stream path does);
 *   WSE_FAIL   *code 1009: past max, when max <= cap (so the bound was the
 *              limit: the message is too big whatever follows);
 *   WSE_AGAIN  not decided here: the message inflates past cap (below max)
 *              or is not valid as given (corrupt, or cut inside a block):
 *              the stream path then decodes it and gives its verdict, so
 *              corrupt data closes with the same code either way.
 * One divergence is accepted: a message whose bits after the tail do not
 * stand at a block boundary (the stream path's 1007) but which the appended
 * block happens to complete into a valid final block is echoed as decoded.
 * Only a crafted message does that, and it echoes the sender's own bytes.
 */
#define WSE_PMDZ_WHOLE_ROOM 9

struct libdeflate_compressor;
struct libdeflate_decompressor;

int wse_inflate_whole(struct libdeflate_decompressor *dec, uint8_t *in, size_t n,
                      uint8_t *out, size_t cap, uint64_t max, size_t *got, uint16_t *code);

/* The most wse_deflate_whole() writes for n bytes. */
size_t wse_deflate_whole_bound(struct libdeflate_compressor *c, size_t n);

/*
 * Compresses p[0..n) as one whole message's payload (no takeover, 32 KiB
 * window: only for a negotiated server window of 15) into out[0..cap), cap
 * >= wse_deflate_whole_bound(n): one BFINAL-ended DEFLATE stream plus the
 * 0x00 byte whose LEN/NLEN the receiver's tail completes (RFC 7692
 * 7.2.3.4).  Returns the payload's length, 0 on failure.
 */
size_t wse_deflate_whole(struct libdeflate_compressor *c, const uint8_t *p, size_t n,
                         uint8_t *out, size_t cap);

#endif
