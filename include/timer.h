/*
 * timer.h - many identical timeouts with one ev_timer (the libev manual,
 * "Be smart about timeouts", strategy 4).
 *
 * Every entry of a list has the same period, so appending on (re)arm keeps
 * the list ordered by deadline: arming, re-arming and cancelling are O(1)
 * pointer moves and the list's one ev_timer always waits for the head.
 * A connection is on at most one list at a time (handshake, idle, closing).
 */
#ifndef WSE_TIMER_H
#define WSE_TIMER_H

#include <ev.h>

struct wse_tlink {
    struct wse_tlink *prev, *next;   /* NULL while on no list */
    ev_tstamp since;                 /* when it was (re)armed */
};

struct wse_tlist;
typedef void (*wse_expire_fn)(struct wse_tlist *list, struct wse_tlink *link);

struct wse_tlist {
    struct wse_tlink head;           /* sentinel of a circular list */
    ev_timer timer;
    struct ev_loop *loop;
    ev_tstamp period;                /* <= 0: the list never expires */
    wse_expire_fn expire;
};

void wse_tlist_init(struct wse_tlist *list, struct ev_loop *loop, ev_tstamp period,
                    wse_expire_fn expire);

/* Appends link (which must be on no list), armed from now. */
void wse_tlist_add(struct wse_tlist *list, struct wse_tlink *link);

/* Takes link off whatever list it is on (no-op when on none). */
void wse_tlist_del(struct wse_tlink *link);

/*
 * Re-arms link from now, but moves it only when it was armed more than
 * `slack` seconds ago: a busy connection costs one list move per `slack`,
 * and its timeout fires at most `slack` late.
 */
void wse_tlist_touch(struct wse_tlist *list, struct wse_tlink *link, ev_tstamp slack);

static inline int wse_tlink_linked(const struct wse_tlink *link) { return link->next != NULL; }

#endif
