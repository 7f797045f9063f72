/*
 * run_suite.h - the one main() body every Check suite shares: run the suite
 * (fork mode unless CK_FORK says otherwise), print Check's summary, exit
 * non-zero when a test failed.
 */
#ifndef WSE_RUN_SUITE_H
#define WSE_RUN_SUITE_H

#include <check.h>
#include <stdlib.h>

static inline int wse_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
