/*
 * batch.h - the echo batch: what one read's worth of events sends back, as
 * one write() or writev() (layer 0: memory only, no socket).
 *
 * The contract:
 * - Regions are added in the order they go out.  A region that starts where
 *   the last one ends extends it (coalescing).  A small region (<=
 *   WSE_BATCH_SLIDE_MAX) added as `slidable` after a slidable last region is
 *   moved down onto that region's end (memmove) when there is a gap: the
 *   caller promises the gap holds nothing still to be sent (consumed client
 *   headers, see msg.h) and that both regions lie in the same buffer, which
 *   stays put until the batch is sent.  Many small frames thus leave as one
 *   contiguous run, not one iovec each.
 * - The scratch area holds bytes that have no place in the read buffer
 *   (headers with an echo prefix, close frames); it lives as long as the
 *   batch.  Taking scratch also reserves two iovecs, so the (at most two)
 *   regions a caller adds right after it always fit.
 * - Nothing here sends or flushes.  An add that does not fit returns false
 *   and changes nothing: the caller sends what is batched (wse_batch_iov()),
 *   resets, and adds again.  So a caller decides when the batch leaves, and
 *   the bytes of a region are final once it is added.
 * - The header-over-header write (wse_batch_frame()): a server frame's
 *   header goes into the bytes just before its payload.  The caller
 *   guarantees WSE_SERVER_HDR_MAX writable, consumed bytes there (the
 *   parser's promise in msg.h, plus headroom before the read buffer).
 */
#ifndef WSE_BATCH_H
#define WSE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "frame.h"

#define WSE_BATCH_IOV_CAP 512       /* IOV_MAX is 1024; half keeps a writev short */
#define WSE_BATCH_SLIDE_MAX 1024    /* regions up to this size are slid into one run */
#define WSE_BATCH_SCRATCH_CAP (64 * 1024)

struct wse_batch {
    int niov;
    bool last_slidable;         /* the last iovec may grow by sliding */
    size_t bytes;               /* total of all iovecs */
    size_t scratch_used;
    struct iovec iov[WSE_BATCH_IOV_CAP];
    uint8_t scratch[WSE_BATCH_SCRATCH_CAP];
};

static inline void wse_batch_reset(struct wse_batch *b)
{
    b->niov = 0;
    b->bytes = 0;
    b->scratch_used = 0;
    b->last_slidable = false;
}

static inline bool wse_batch_empty(const struct wse_batch *b)
{
    return b->niov == 0;
}

/*
 * Adds p[0..n) after what is batched.  False when it does not fit (the
 * iovecs are all used): nothing changed, send the batch and add again.
 */
static inline bool wse_batch_add(struct wse_batch *b, uint8_t *p, size_t n, bool slidable)
{
    struct iovec *last = b->niov ? &b->iov[b->niov - 1] : NULL;

    if (last && (uint8_t *)last->iov_base + last->iov_len == p) {
        last->iov_len += n;
    } else if (last && slidable && b->last_slidable && n <= WSE_BATCH_SLIDE_MAX) {
        memmove((uint8_t *)last->iov_base + last->iov_len, p, n);
        last->iov_len += n;
    } else {
        if (b->niov == WSE_BATCH_IOV_CAP)
            return false;
        b->iov[b->niov].iov_base = p;
        b->iov[b->niov].iov_len = n;
        b->niov++;
        b->last_slidable = slidable;
    }
    b->bytes += n;
    return true;
}

/*
 * n bytes of scratch (n <= WSE_BATCH_SCRATCH_CAP), with room for two more
 * iovecs; NULL when full (send, reset, ask again).  What the caller does not
 * use it gives back with wse_batch_unscratch() before taking more.
 */
static inline uint8_t *wse_batch_scratch(struct wse_batch *b, size_t n)
{
    if (b->scratch_used + n > WSE_BATCH_SCRATCH_CAP || b->niov >= WSE_BATCH_IOV_CAP - 2)
        return NULL;
    uint8_t *p = b->scratch + b->scratch_used;
    b->scratch_used += n;
    return p;
}

/* Gives back the last `unused` bytes of the scratch just taken. */
static inline void wse_batch_unscratch(struct wse_batch *b, size_t unused)
{
    b->scratch_used -= unused;
}

/*
 * Adds a server frame for the payload data[0..len), its header written over
 * the WSE_SERVER_HDR_MAX bytes before data (see the contract above), sliding
 * allowed.  False when it does not fit, as wse_batch_add(); the header may
 * be written again on the retry.
 */
static inline bool wse_batch_frame(struct wse_batch *b, bool fin, unsigned opcode, uint8_t *data,
                                   size_t len)
{
    size_t hl = wse_server_hdr_len(len);
    uint8_t *h = data - hl;

    wse_frame_write_header(h, fin, opcode, len);
    return wse_batch_add(b, h, hl + len, true);
}

#endif
