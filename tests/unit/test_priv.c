/* test_priv.c - resolving --user/--group, and the drop in a child. */
#include <check.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_suite.h"
#include "priv.h"

START_TEST(names_and_numbers_resolve)
{
    struct wse_cred c;
    char err[256];

    ck_assert_int_eq(wse_priv_resolve("root", "", &c, err, sizeof err), 0);
    ck_assert(c.set);
    ck_assert_uint_eq(c.uid, 0);
    ck_assert_uint_eq(c.gid, 0);
    /* A number with a passwd entry takes its login group from it. */
    ck_assert_int_eq(wse_priv_resolve("0", "", &c, err, sizeof err), 0);
    ck_assert_uint_eq(c.uid, 0);
    ck_assert_uint_eq(c.gid, 0);
    ck_assert_int_eq(wse_priv_resolve("root", "12345", &c, err, sizeof err), 0);
    ck_assert_uint_eq(c.gid, 12345);
    /* None: the children keep the master's credentials. */
    ck_assert_int_eq(wse_priv_resolve("", "", &c, err, sizeof err), 0);
    ck_assert(!c.set);
}
END_TEST

START_TEST(what_is_missing_is_named)
{
    struct wse_cred c = {.set = true, .uid = 7, .gid = 7};
    char err[256];

    ck_assert_int_eq(wse_priv_resolve("no-such-user-wse", "", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "user 'no-such-user-wse' not found"));
    ck_assert_int_eq(wse_priv_resolve("root", "no-such-group-wse", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "group 'no-such-group-wse' not found"));
    ck_assert_int_eq(wse_priv_resolve("", "root", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "without user"));
    /* A uid without a passwd entry has no login group to default to. */
    ck_assert_int_eq(wse_priv_resolve("3999999999", "", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "give --group"));
    /* -1 is "no change" to setresuid: never an id. */
    ck_assert_int_eq(wse_priv_resolve("4294967295", "0", &c, err, sizeof err), -1);
    /* A failed resolve leaves *out alone. */
    ck_assert(c.set);
    ck_assert_uint_eq(c.uid, 7);
}
END_TEST

/* In a child: 0 when it ends up exactly uid:gid, with no other group, and
 * root out of reach; a distinct status per failure otherwise. */
static int drop_in_child(uid_t uid, gid_t gid)
{
    struct wse_cred c = {.set = true, .uid = uid, .gid = gid};
    char err[256];
    pid_t pid = fork();

    if (pid == 0) {
        gid_t groups[4];
        if (wse_priv_drop(&c, err, sizeof err) < 0)
            _exit(10);
        if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
            _exit(11);
        if (getgroups(4, groups) != 1 || groups[0] != gid)
            _exit(12);
        if (setuid(0) == 0 || setgroups(0, NULL) == 0)
            _exit(13);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(a_child_drops_for_good)
{
    if (geteuid() != 0)
        return;     /* needs root; the integration test counts the skip */
    ck_assert_int_eq(drop_in_child(65534, 65534), 0);
    ck_assert_int_eq(drop_in_child(4242, 4343), 0);
}
END_TEST

START_TEST(non_root_cannot_switch)
{
    struct wse_cred same = {.set = true, .uid = geteuid(), .gid = getegid()};
    struct wse_cred other = {.set = true, .uid = geteuid() + 1, .gid = getegid()};
    struct wse_cred none = {.set = false};
    char err[256];

    ck_assert_int_eq(wse_priv_check(&none, err, sizeof err), 0);
    ck_assert_int_eq(wse_priv_check(&same, err, sizeof err), 0);
    ck_assert_int_eq(wse_priv_check(&other, err, sizeof err), geteuid() == 0 ? 0 : -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("priv");
    TCase *tc = tcase_create("priv");
    tcase_add_test(tc, names_and_numbers_resolve);
    tcase_add_test(tc, what_is_missing_is_named);
    tcase_add_test(tc, a_child_drops_for_good);
    tcase_add_test(tc, non_root_cannot_switch);
    suite_add_tcase(s, tc);
    return wse_run_suite(s);
}
