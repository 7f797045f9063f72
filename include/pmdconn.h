/*
 * pmdconn.h - the deflate transform: permessage-deflate (RFC 7692) on a
 * connection, between the parser's data events and the echo batch
 * (layer 1: pmd negotiates, pmdz runs the streams, this decides where each
 * stream lives and turns inflated text into echoed frames).
 *
 * Where the memory is (ARCHITECTURE.md, man page "PERMESSAGE-DEFLATE"):
 *   - per worker: two inflate output buffers, one deflate stream per window
 *     size used without server takeover (created at first use), and a free
 *     list of 15-bit inflate streams lent to connections without client
 *     takeover while a compressed message arrives;
 *   - per connection that negotiated the extension: struct wse_pmdconn (a
 *     few dozen bytes), plus its own deflate stream with server takeover and
 *     its own inflate stream with client takeover (or the Safari guard);
 *   - a connection without the extension: one NULL pointer.
 *
 * The echo of a compressed message: each piece is inflated in bounded steps
 * (32 KiB), text is UTF-8 checked as it comes out (1007), the inflated size
 * is limited to --max-message (1009), and each inflated chunk is deflated
 * into the batch's scratch as frames: RSV1 and the opcode on the first,
 * continuations after, FIN on the last.  One chunk is held back so that a
 * message arriving in one piece goes back as one frame, and an echo whose
 * whole inflated size is below --deflate-min-size goes back uncompressed
 * (RSV1 clear, always allowed).  Uncompressed messages on a deflate
 * connection are the caller's (the plain transform).
 *
 * Whole messages (libdeflate, pmdz.h): a piece that is a whole message
 * (first and last) of at most 64 KiB, without client takeover, with the
 * output below the high-water mark, is inflated at once into a worker
 * buffer of 256 KiB (bound: min(--max-message, 256 KiB)); past the buffer,
 * corrupt or cut, the stream path above takes the same piece and decides.
 * An echo held whole of at least 4 KiB, without server takeover and with a
 * 15-bit window, is compressed by libdeflate (one BFINAL block and 0x00).
 */
#ifndef WSE_PMDCONN_H
#define WSE_PMDCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "http.h"
#include "msg.h"

struct wse_pmdconn;

/* The settings (config.h gathers them from the options). */
struct wse_pmdconn_cfg {
    bool enabled;               /* --permessage-deflate */
    uint8_t window_bits;        /* --deflate-window-bits, 8..15 */
    uint8_t mem_level;          /* --deflate-mem-level, 1..9 */
    uint8_t level;              /* --deflate-level, 0..9 */
    bool server_takeover;       /* --deflate-server-takeover */
    bool client_takeover;       /* --deflate-client-takeover */
    bool safari_guard;          /* --deflate-safari-guard */
    uint64_t min_size;          /* --deflate-min-size */
    uint64_t max_message;       /* --max-message: the inflated limit */
    uint32_t max_inflating;     /* --deflate-max-inflating: streams lent at once */
};

/* Worker setup (cfg is copied); WSE_OK or WSE_FAIL (no memory). */
int wse_pmdconn_setup(const struct wse_pmdconn_cfg *cfg);

/* Frees the worker's buffers and libdeflate state (for leak checkers:
 * libdeflate's compressor is held through an interior pointer). */
void wse_pmdconn_cleanup(void);

/*
 * Negotiates for a request (buf holds its spans).  With an offer accepted
 * and memory for the connection's state: returns that state and writes the
 * response's header line to hdr (WSE_PMD_RESPONSE_MAX bytes), its length in
 * *hdr_len.  Otherwise NULL and *hdr_len = 0 (the connection goes on
 * uncompressed); *why then says why, for a debug line (NULL: not asked).
 */
struct wse_pmdconn *wse_pmdconn_negotiate(const struct wse_http_req *req, const char *buf,
                                          char *hdr, size_t *hdr_len, const char **why);

/* Releases a connection's state and anything it borrowed (NULL is fine). */
void wse_pmdconn_free(struct wse_pmdconn *pc);

/* How the transform reaches the connection's output. */
struct wse_pmdconn_io {
    bool (*flush)(void *ctx);   /* send the batch; false: that ended the connection */
    /* Is the output past the high-water mark, with the peer not taking it
     * (after a flush)?  Then the piece pauses (WSE_PMDCONN_PAUSED). */
    bool (*over)(void *ctx);
    void *ctx;
};

/* What one call sent, for the statistics. */
struct wse_pmdconn_counts {
    uint64_t inflated;          /* bytes the piece inflated to */
    uint64_t sent;              /* payload bytes of the frames added (compressed or not) */
    uint32_t frames;            /* frames added */
    bool whole;                 /* inflated whole by libdeflate (no stream lent) */
    bool passed;                /* echoed as received (pass-through) */
};

/*
 * Echoes the piece ev of a compressed message (ev->compressed) into b,
 * calling io->flush whenever b is full.  prefix (may be NULL, len 0) goes
 * before a text message's inflated payload (--echo-prefix).  Returns 0, or
 * the close code to fail the connection with (1007 corrupt data or invalid
 * UTF-8, 1009 inflated past max, 1011 internal, 1013 when the worker has
 * lent --deflate-max-inflating decompressors already), WSE_PMDCONN_DEAD when
 * flush reported the connection gone, or WSE_PMDCONN_PAUSED when io->over
 * said so: the output of one piece can be many times its size (a small
 * compressed piece inflates to megabytes, and a level-0 echo stays that
 * big), so the high-water mark is checked every 32 KiB of inflated output,
 * not once per piece.  Paused, the piece's unread compressed rest is copied
 * out of ev's buffer; the caller holds all later input back and calls
 * wse_pmdconn_resume() once the output drained (or wse_pmdconn_abandon()
 * when the connection stops echoing).  *n counts what was done, also on
 * failure.
 */
#define WSE_PMDCONN_DEAD 1
#define WSE_PMDCONN_PAUSED 2
unsigned wse_pmdconn_data(struct wse_pmdconn *pc, struct wse_batch *b,
                          const struct wse_event *ev, const char *prefix, size_t prefix_len,
                          const struct wse_pmdconn_io *io, struct wse_pmdconn_counts *n);

/*
 * Pass-through (ARCHITECTURE.md): with context takeover both ways and the
 * client's window within the server's (W_c <= W_s, each 15 when left out
 * of the answer), the echo of a compressed message is the client's own
 * compressed bytes, once inflated and checked; no deflate stream is made.
 * A connection leaves it for good (its own deflate stream, given the
 * inflater's window) after a message with a BFINAL block, or at a message
 * with a prefix (--echo-prefix).  wse_pmdconn_passes(): does the answer
 * allow it; wse_pmdconn_passing(): is pc in it now.
 */
struct wse_pmd_agreed;
bool wse_pmdconn_passes(const struct wse_pmd_agreed *a);
bool wse_pmdconn_passing(const struct wse_pmdconn *pc);

/* A piece is paused (NULL: no). */
bool wse_pmdconn_parked(const struct wse_pmdconn *pc);

/* Goes on with the paused piece: returns as wse_pmdconn_data(). */
unsigned wse_pmdconn_resume(struct wse_pmdconn *pc, struct wse_batch *b,
                            const struct wse_pmdconn_io *io, struct wse_pmdconn_counts *n);

/* Drops the paused piece and the message's decompressor if lent. */
void wse_pmdconn_abandon(struct wse_pmdconn *pc);

/* Does this User-Agent belong to a WebSocket client that ignores
 * client_no_context_takeover (Safari and iOS WebKit 15.0-15.3)? */
bool wse_pmdconn_ua_ignores_nct(const char *ua, size_t len);

#endif
