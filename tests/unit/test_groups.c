/*
 * test_groups.c - slot adoption in a listener group (groups.h): socket j to
 * worker j mod N, so every socket has exactly one watcher whatever N.
 */
#include <check.h>
#include <string.h>

#include "run_suite.h"
#include "groups.h"

#define MAXS 64

START_TEST(each_worker_keeps_its_own_socket)
{
    unsigned out[MAXS];

    for (unsigned n = 1; n <= 8; n++) {
        for (unsigned slot = 0; slot < n; slot++) {
            ck_assert_uint_eq(wse_group_pick(slot, n, n, out, MAXS), 1);
            ck_assert_uint_eq(out[0], slot);
        }
    }
}
END_TEST

/* Shrinking 8 workers to 3: the sockets of slots 3..7 are adopted. */
START_TEST(shrinking_adopts_j_mod_n)
{
    unsigned out[MAXS];

    ck_assert_uint_eq(wse_group_pick(0, 3, 8, out, MAXS), 3);
    ck_assert_uint_eq(out[0], 0);
    ck_assert_uint_eq(out[1], 3);
    ck_assert_uint_eq(out[2], 6);
    ck_assert_uint_eq(wse_group_pick(1, 3, 8, out, MAXS), 3);
    ck_assert_uint_eq(out[1], 4);
    ck_assert_uint_eq(out[2], 7);
    ck_assert_uint_eq(wse_group_pick(2, 3, 8, out, MAXS), 2);
    ck_assert_uint_eq(out[0], 2);
    ck_assert_uint_eq(out[1], 5);
    /* One worker watches all. */
    ck_assert_uint_eq(wse_group_pick(0, 1, 8, out, MAXS), 8);
    for (unsigned j = 0; j < 8; j++)
        ck_assert_uint_eq(out[j], j);
}
END_TEST

/* For every group size and worker count: each socket exactly once. */
START_TEST(every_socket_has_exactly_one_watcher)
{
    unsigned out[MAXS];

    for (unsigned nsockets = 0; nsockets <= 20; nsockets++) {
        for (unsigned n = 1; n <= 24; n++) {
            unsigned seen[MAXS] = {0};
            for (unsigned slot = 0; slot < n; slot++) {
                unsigned k = wse_group_pick(slot, n, nsockets, out, MAXS);
                for (unsigned i = 0; i < k; i++) {
                    ck_assert_uint_lt(out[i], nsockets);
                    ck_assert_uint_eq(out[i] % n, slot);
                    if (i)
                        ck_assert_uint_gt(out[i], out[i - 1]);
                    seen[out[i]]++;
                }
            }
            for (unsigned j = 0; j < nsockets; j++)
                ck_assert_msg(seen[j] == 1, "socket %u of %u, %u workers: %u watchers", j,
                              nsockets, n, seen[j]);
        }
    }
}
END_TEST

START_TEST(cap_and_no_workers)
{
    unsigned out[MAXS];

    memset(out, 0xFF, sizeof out);
    ck_assert_uint_eq(wse_group_pick(0, 2, 10, out, 2), 2);
    ck_assert_uint_eq(out[1], 2);
    ck_assert_uint_eq(out[2], 0xFFFFFFFFu);     /* nothing past cap */
    ck_assert_uint_eq(wse_group_pick(0, 0, 10, out, MAXS), 0);
    ck_assert_uint_eq(wse_group_pick(5, 8, 4, out, MAXS), 0);   /* a slot beyond the group */
}
END_TEST

static Suite *groups_suite(void)
{
    Suite *s = suite_create("groups");
    TCase *tc = tcase_create("groups");

    tcase_add_test(tc, each_worker_keeps_its_own_socket);
    tcase_add_test(tc, shrinking_adopts_j_mod_n);
    tcase_add_test(tc, every_socket_has_exactly_one_watcher);
    tcase_add_test(tc, cap_and_no_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(groups_suite());
}
