/*
 * transform.c - the echo prefix transform (the identity is inline in
 * transform.h).
 */
#include <string.h>

#include "transform.h"

/*
 * Header and prefix go to scratch, the payload stays where it was read: a
 * prefixed echo is one frame in two regions.  Scratch reserves the two
 * iovecs, so once it is granted both adds succeed.
 */
bool wse_transform_prefixed(const struct wse_transform *t, struct wse_batch *b,
                            const struct wse_event *ev, unsigned opcode)
{
    size_t plen = t->prefix_len;
    uint8_t *s = wse_batch_scratch(b, WSE_SERVER_HDR_MAX + plen);

    if (!s)
        return false;
    size_t hl = wse_frame_write_header(s, ev->last, opcode, plen + ev->len);
    memcpy(s + hl, t->prefix, plen);
    wse_batch_unscratch(b, WSE_SERVER_HDR_MAX - hl);
    wse_batch_add(b, s, hl + plen, false);
    if (ev->len)
        wse_batch_add(b, ev->data, ev->len, true);
    return true;
}
