/*
 * hsbuf.c - handshake buffers split over reads and their shared budget.
 */
#include <stdlib.h>
#include <string.h>

#include "hsbuf.h"

void wse_hsbuf_budget_init(struct wse_hsbuf_budget *b, size_t cap)
{
    b->bytes = 0;
    b->cap = cap;
    b->limit = WSE_HSBUF_HEADS * (sizeof(struct wse_hsbuf) + cap);
    b->warned = false;
}

static size_t room_for(const struct wse_hsbuf_budget *b, size_t have)
{
    size_t room = WSE_HSBUF_ROOM_MIN;

    while (room < have)
        room *= 2;
    return room < b->cap ? room : b->cap;
}

enum wse_hsbuf_rc wse_hsbuf_keep(struct wse_hsbuf_budget *b, struct wse_hsbuf **hs,
                                 const char *buf, size_t have)
{
    struct wse_hsbuf *h = *hs;
    size_t kept = h ? h->len : 0;
    size_t room = room_for(b, have);

    if (have > room || have < kept || room > UINT32_MAX)
        return WSE_HSBUF_NOMEM;
    if (!h || room > h->room) {
        size_t old = h ? sizeof *h + h->room : 0;
        size_t need = sizeof *h + room;
        if (b->bytes - old + need > b->limit)
            return WSE_HSBUF_FULL;
        h = realloc(h, need);
        if (!h)
            return WSE_HSBUF_NOMEM;
        *hs = h;
        h->room = (uint32_t)room;
        b->bytes += need - old;
    }
    /* The bytes kept before are still there (realloc keeps them). */
    memcpy(h->buf + kept, buf + kept, have - kept);
    h->len = (uint32_t)have;
    return WSE_HSBUF_KEPT;
}

void wse_hsbuf_free(struct wse_hsbuf_budget *b, struct wse_hsbuf **hs)
{
    if (!*hs)
        return;
    b->bytes -= sizeof **hs + (*hs)->room;
    if (b->bytes < b->limit / 2)
        b->warned = false;
    free(*hs);
    *hs = NULL;
}

bool wse_hsbuf_warn_once(struct wse_hsbuf_budget *b)
{
    if (b->warned)
        return false;
    b->warned = true;
    return true;
}
