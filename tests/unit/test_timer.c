/*
 * test_timer.c - the ordered timeout lists (timer.h) on a real libev loop:
 * expiry in arming order, removal, re-arming from inside expire(), touch
 * and its slack, a list that never expires.
 */
#include <check.h>
#include <string.h>

#include "run_suite.h"
#include "common.h"
#include "timer.h"

#define PERIOD 0.02

struct item {
    struct wse_tlink tl;
    char name;
    int rearm;          /* times expire() puts it back on the list */
};

static char order[32];
static size_t norder;

static void expire(struct wse_tlist *list, struct wse_tlink *link)
{
    struct item *it = container_of(link, struct item, tl);

    ck_assert(!wse_tlink_linked(link));     /* taken off before the call */
    ck_assert_uint_lt(norder, sizeof order - 1);
    order[norder++] = it->name;
    if (it->rearm > 0) {
        it->rearm--;
        wse_tlist_add(list, link);
    }
}

static struct ev_loop *loop;
static struct wse_tlist list;

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(loop);
    memset(order, 0, sizeof order);
    norder = 0;
    wse_tlist_init(&list, loop, PERIOD, expire);
}

static void teardown(void)
{
    ev_loop_destroy(loop);
}

/* The names on the list, head first. */
static const char *names(const struct wse_tlist *l)
{
    static char out[32];
    size_t n = 0;

    for (const struct wse_tlink *p = l->head.next; p != &l->head; p = p->next)
        out[n++] = container_of(p, struct item, tl)->name;
    out[n] = '\0';
    return out;
}

START_TEST(expire_in_arming_order_and_del_cancels)
{
    struct item a = {.name = 'a'}, b = {.name = 'b'}, c = {.name = 'c'}, d = {.name = 'd'};

    /* The list arms its timer at the loop's cached time: make that time now,
     * and take t0 before it, so that "not before its period" is measured
     * from no later than the arming (valgrind makes the steps slow). */
    ev_tstamp t0 = ev_time();
    ev_now_update(loop);
    wse_tlist_add(&list, &a.tl);
    wse_tlist_add(&list, &b.tl);
    wse_tlist_add(&list, &c.tl);
    wse_tlist_add(&list, &d.tl);
    ck_assert_str_eq(names(&list), "abcd");
    wse_tlist_del(&b.tl);
    ck_assert(!wse_tlink_linked(&b.tl));
    wse_tlist_del(&b.tl);                   /* on no list: a no-op */
    wse_tlist_del(&a.tl);                   /* the head: the timer finds c next */
    ck_assert_str_eq(names(&list), "cd");
    ev_run(loop, 0);                        /* returns when the list's timer stops */
    ck_assert_str_eq(order, "cd");
    ck_assert(ev_time() - t0 >= PERIOD * 0.9);
    ck_assert_str_eq(names(&list), "");
    ck_assert(!ev_is_active(&list.timer));
}
END_TEST

/* expire() may put its link back (as idle -> pinged does): it goes to the
 * tail, armed anew, and fires a period later, after the others. */
START_TEST(rearm_from_expire_goes_last)
{
    struct item a = {.name = 'a', .rearm = 2}, b = {.name = 'b'}, c = {.name = 'c'};

    wse_tlist_add(&list, &a.tl);
    wse_tlist_add(&list, &b.tl);
    wse_tlist_add(&list, &c.tl);
    ev_run(loop, 0);
    ck_assert_str_eq(order, "abcaa");
}
END_TEST

/* touch moves a link only when armed more than `slack` ago. */
START_TEST(touch_respects_slack)
{
    struct item a = {.name = 'a'}, b = {.name = 'b'}, c = {.name = 'c'};

    wse_tlist_add(&list, &a.tl);
    wse_tlist_add(&list, &b.tl);
    wse_tlist_add(&list, &c.tl);
    ev_tstamp since = a.tl.since;
    wse_tlist_touch(&list, &a.tl, 1.0);     /* armed just now: stays */
    ck_assert_str_eq(names(&list), "abc");
    ck_assert(a.tl.since == since);
    a.tl.since -= 2.0;                      /* as if armed 2 s ago */
    wse_tlist_touch(&list, &a.tl, 1.0);
    ck_assert_str_eq(names(&list), "bca");
    ck_assert(a.tl.since == ev_now(loop));
    b.tl.since -= 0.5;                      /* within the slack: stays first */
    wse_tlist_touch(&list, &b.tl, 1.0);
    ck_assert_str_eq(names(&list), "bca");
    ev_run(loop, 0);
    ck_assert_str_eq(order, "bca");
}
END_TEST

/* A period <= 0 (a timeout switched off) never arms its timer. */
START_TEST(zero_period_never_expires)
{
    struct wse_tlist off;
    struct item a = {.name = 'a'};

    wse_tlist_init(&off, loop, 0, expire);
    wse_tlist_add(&off, &a.tl);
    ck_assert(!ev_is_active(&off.timer));
    ev_run(loop, EVRUN_NOWAIT);
    ck_assert_uint_eq(norder, 0);
    ck_assert_str_eq(names(&off), "a");
    wse_tlist_del(&a.tl);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timer");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, expire_in_arming_order_and_del_cancels);
    tcase_add_test(tc, rearm_from_expire_goes_last);
    tcase_add_test(tc, touch_respects_slack);
    tcase_add_test(tc, zero_period_never_expires);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(timer_suite());
}
