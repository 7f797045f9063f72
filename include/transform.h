/*
 * transform.h - the message transform between the parser's data events
 * (msg.h) and the echo batch (batch.h): what a received piece becomes on the
 * way back (layer 0).
 *
 * Today two transforms, chosen once per worker from the configuration: the
 * identity (the piece goes back as a server frame whose header overwrites
 * the client's, no copy) and the echo prefix (a text message's first frame
 * starts with --echo-prefix: header and prefix go to the batch's scratch,
 * the payload stays in place).  Neither keeps state per connection.  The
 * permessage-deflate pair (inflate what arrives, deflate what leaves) fits
 * here as a third: its per-connection state (zlib streams) is allocated only
 * on connections that negotiated it and passed in by the connection, so a
 * connection without the extension stays the size it is today.
 *
 * A transform adds to the batch and never sends: when the batch is full it
 * returns false having added nothing, and the caller sends the batch and
 * calls again with the same event (the identity's in-place header is then
 * simply written again).
 */
#ifndef WSE_TRANSFORM_H
#define WSE_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "batch.h"
#include "msg.h"

struct wse_transform {
    const char *prefix;         /* --echo-prefix: before each text message; NULL/0: identity */
    size_t prefix_len;
};

/* The echo prefix's branch (transform.c). */
bool wse_transform_prefixed(const struct wse_transform *t, struct wse_batch *b,
                            const struct wse_event *ev, unsigned opcode);

static inline bool wse_transform_prefixes(const struct wse_transform *t,
                                          const struct wse_event *ev)
{
    return t->prefix_len && ev->first && ev->opcode == WSE_OP_TEXT;
}

/* The payload bytes the echo of ev carries beyond ev->len (the prefix). */
static inline size_t wse_transform_extra(const struct wse_transform *t,
                                         const struct wse_event *ev)
{
    return wse_transform_prefixes(t, ev) ? t->prefix_len : 0;
}

/*
 * Adds the echo of the data piece ev (kind WSE_EV_DATA) to b.  False when b
 * is full: nothing was added.
 */
static inline bool wse_transform_echo(const struct wse_transform *t, struct wse_batch *b,
                                      const struct wse_event *ev)
{
    unsigned opcode = ev->first ? ev->opcode : WSE_OP_CONT;

    if (!wse_transform_prefixes(t, ev))
        return wse_batch_frame(b, ev->last, opcode, ev->data, ev->len);
    return wse_transform_prefixed(t, b, ev, opcode);
}

#endif
