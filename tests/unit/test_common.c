/* test_common.c - the shared helpers: plurals and column numbers. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "common.h"

static const char *human(double v)
{
    static char out[WSE_HUMAN_MAX];
    memset(out, 'x', sizeof out);
    wse_human(out, v);
    return out;
}

START_TEST(plural_is_singular_for_one_only)
{
    ck_assert_str_eq(wse_plural(0, "worker", "workers"), "workers");
    ck_assert_str_eq(wse_plural(1, "worker", "workers"), "worker");
    ck_assert_str_eq(wse_plural(2, "worker", "workers"), "workers");
    ck_assert_str_eq(wse_plural(UINT64_MAX, "worker", "workers"), "workers");
}
END_TEST

START_TEST(small_numbers_as_they_are)
{
    ck_assert_str_eq(human(0), "0");
    ck_assert_str_eq(human(7), "7");
    ck_assert_str_eq(human(999), "999");
    ck_assert_str_eq(human(0.4), "0");
    ck_assert_str_eq(human(2.6), "3");
}
END_TEST

/* The example: 1417812 used to read "1417.8K". */
START_TEST(three_significant_digits_with_a_unit)
{
    ck_assert_str_eq(human(1000), "1.00K");
    ck_assert_str_eq(human(1417), "1.42K");
    ck_assert_str_eq(human(12345), "12.3K");
    ck_assert_str_eq(human(999499), "999K");
    ck_assert_str_eq(human(1417812), "1.42M");
    ck_assert_str_eq(human(25e6), "25.0M");
    ck_assert_str_eq(human(3.5e9), "3.50G");
    ck_assert_str_eq(human(1e12), "1.00T");
    ck_assert_str_eq(human(1e15), "1.00P");
    ck_assert_str_eq(human((double)UINT64_MAX), "18.4E");
}
END_TEST

/* Where rounding adds a digit, the next unit or the shorter form is taken. */
START_TEST(rounding_never_widens)
{
    ck_assert_str_eq(human(999.4), "999");
    ck_assert_str_eq(human(999.5), "1.00K");
    ck_assert_str_eq(human(9994), "9.99K");
    ck_assert_str_eq(human(9996), "10.0K");
    ck_assert_str_eq(human(99949), "99.9K");
    ck_assert_str_eq(human(99951), "100K");
    ck_assert_str_eq(human(999600), "1.00M");
}
END_TEST

START_TEST(never_more_than_five_characters)
{
    /* Every power of ten, and just below and above each, up to 2^64. */
    for (double p = 1; p <= 1e19; p *= 10)
        for (double f = 0.99; f < 1.02; f += 0.0005) {
            const char *s = human(p * f);
            ck_assert_msg(strlen(s) <= 5 && strlen(s) > 0, "%.4f: '%s'", p * f, s);
        }
}
END_TEST

START_TEST(out_of_range_is_a_question_mark)
{
    ck_assert_str_eq(human(-1), "?");
    ck_assert_str_eq(human(NAN), "?");
    ck_assert_str_eq(human(1e21), "?");
    ck_assert_str_eq(human(INFINITY), "?");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("common");
    tcase_add_test(tc, plural_is_singular_for_one_only);
    tcase_add_test(tc, small_numbers_as_they_are);
    tcase_add_test(tc, three_significant_digits_with_a_unit);
    tcase_add_test(tc, rounding_never_widens);
    tcase_add_test(tc, never_more_than_five_characters);
    tcase_add_test(tc, out_of_range_is_a_question_mark);
    suite_add_tcase(s, tc);
    return wse_run_suite(s);
}
