/*
 * timer.c - ordered timeout lists over one ev_timer each.
 */
#include <stdbool.h>

#include "common.h"
#include "timer.h"

static void schedule(struct wse_tlist *list)
{
    struct wse_tlink *first = list->head.next;

    if (first == &list->head || list->period <= 0) {
        ev_timer_stop(list->loop, &list->timer);
        return;
    }
    ev_tstamp wait = first->since + list->period - ev_now(list->loop);
    ev_timer_stop(list->loop, &list->timer);
    ev_timer_set(&list->timer, wait > 0 ? wait : 0, 0);
    ev_timer_start(list->loop, &list->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct wse_tlist *list = container_of(t, struct wse_tlist, timer);
    ev_tstamp now = ev_now(loop);
    (void)revents;

    /* expire() may re-add its link (to the tail, armed now), so stop at a
     * head that is not yet due rather than walking a list that grows. */
    for (;;) {
        struct wse_tlink *first = list->head.next;
        if (first == &list->head || first->since + list->period > now)
            break;
        wse_tlist_del(first);
        list->expire(list, first);
    }
    schedule(list);
}

void wse_tlist_init(struct wse_tlist *list, struct ev_loop *loop, ev_tstamp period,
                    wse_expire_fn expire)
{
    list->head.prev = list->head.next = &list->head;
    list->loop = loop;
    list->period = period;
    list->expire = expire;
    ev_timer_init(&list->timer, on_timer, 0, 0);
}

void wse_tlist_add(struct wse_tlist *list, struct wse_tlink *link)
{
    bool was_empty = list->head.next == &list->head;

    link->since = ev_now(list->loop);
    link->prev = list->head.prev;
    link->next = &list->head;
    list->head.prev->next = link;
    list->head.prev = link;
    if (was_empty)
        schedule(list);
}

void wse_tlist_del(struct wse_tlink *link)
{
    if (!link->next)
        return;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = NULL;
    /* The timer may now wait for a head that is gone; it then finds the
     * next one not due and reschedules, which is cheaper than rescheduling
     * on every removal. */
}

void wse_tlist_touch(struct wse_tlist *list, struct wse_tlink *link, ev_tstamp slack)
{
    if (ev_now(list->loop) - link->since <= slack)
        return;
    wse_tlist_del(link);
    wse_tlist_add(list, link);
}
