/*
 * hsbuf.h - the buffer of a handshake split over reads, and the budget all
 * of a worker's such buffers share.
 *
 * A request that arrives in one read (the usual case) needs none: it is
 * parsed in the worker's read buffer.  One that does not is kept here with
 * its parsers' state, in a buffer that starts at WSE_HSBUF_ROOM_MIN bytes
 * and doubles as bytes arrive, up to the budget's cap (the most one
 * handshake may hold).  All buffers of a budget together hold at most
 * WSE_HSBUF_HEADS full-size ones (about 4 MiB with the default
 * --max-header 8K); a handshake that would pass that is refused (the
 * caller answers 503).  Without the bound, each half-sent request held a
 * full-size buffer until its timeout, ~800 MiB at --max-connections.
 *
 * Pure apart from malloc: no I/O, no log.  Not thread-safe (one budget per
 * worker).
 */
#ifndef WSE_HSBUF_H
#define WSE_HSBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "proxy.h"

#define WSE_HSBUF_ROOM_MIN 256
#define WSE_HSBUF_HEADS    512

struct wse_hsbuf {
    struct wse_http_req req;    /* the parsers' state: the caller's to fill */
    struct wse_proxy px;
    uint32_t len;               /* bytes kept in buf */
    uint32_t room;              /* size of buf */
    uint16_t http_off;          /* where the HTTP request starts: after a PROXY header */
    char buf[];
};

struct wse_hsbuf_budget {
    size_t bytes;       /* held by the budget's buffers, struct and room */
    size_t limit;       /* most bytes may reach */
    size_t cap;         /* most room one buffer gets */
    bool warned;        /* the exhaustion was reported; again once below half */
};

/* A budget for buffers of at most cap bytes each, holding none. */
void wse_hsbuf_budget_init(struct wse_hsbuf_budget *b, size_t cap);

enum wse_hsbuf_rc {
    WSE_HSBUF_KEPT = 0,     /* *hs holds buf[0..have) */
    WSE_HSBUF_FULL,         /* the budget is spent: *hs unchanged */
    WSE_HSBUF_NOMEM,        /* out of memory, or have > the cap: *hs unchanged */
};

/*
 * Keeps buf[0..have) in *hs (NULL: none yet), growing it to the smallest
 * power-of-two room >= have (at least WSE_HSBUF_ROOM_MIN, at most the cap).
 * The first (*hs)->len bytes are assumed to be buf's already (they were
 * kept before, and the caller put them back at buf's start): only the rest
 * is copied.  Sets len; the parsers' state is the caller's to store.
 */
enum wse_hsbuf_rc wse_hsbuf_keep(struct wse_hsbuf_budget *b, struct wse_hsbuf **hs,
                                 const char *buf, size_t have);

/* Frees *hs (NULL is fine), gives its bytes back and sets *hs to NULL. */
void wse_hsbuf_free(struct wse_hsbuf_budget *b, struct wse_hsbuf **hs);

/* True once per exhaustion: after a WSE_HSBUF_FULL, until the budget is
 * below half again.  For a warning that must not flood. */
bool wse_hsbuf_warn_once(struct wse_hsbuf_budget *b);

#endif
