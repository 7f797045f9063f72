/*
 * test_log.c - the per-call-site rate limit of lines a peer can cause at
 * will: bursts, summaries, their accounting (written + summarised = sent),
 * and the file a flood leaves; the escaping of peer text in access lines.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_suite.h"
#include "log.h"

START_TEST(burst_is_written_then_held_until_the_window_ends)
{
    struct wse_log_limit l = {.what = "test"};
    unsigned held;
    double span;

    for (int i = 0; i < 25; i++) {
        bool write = wse_log_limit_admit(&l, 100.0 + i * 0.02, &held, &span);
        ck_assert_int_eq(write, i < WSE_LOG_BURST);
        ck_assert_uint_eq(held, 0);
    }
    /* Still inside the window: held, no summary yet. */
    ck_assert(!wse_log_limit_admit(&l, 100.9, &held, &span));
    ck_assert_uint_eq(held, 0);
    /* The next line after the window is written, after the summary. */
    ck_assert(wse_log_limit_admit(&l, 101.25, &held, &span));
    ck_assert_uint_eq(held, 25 + 1 - WSE_LOG_BURST);
    ck_assert(span > 1.24 && span < 1.26);
    /* ... and it began a window of its own. */
    for (int i = 1; i < WSE_LOG_BURST; i++)
        ck_assert(wse_log_limit_admit(&l, 101.3, &held, &span));
    ck_assert(!wse_log_limit_admit(&l, 101.3, &held, &span));
}
END_TEST

START_TEST(a_quiet_site_is_never_limited)
{
    struct wse_log_limit l = {.what = "test"};
    unsigned held;
    double span;

    /* WSE_LOG_BURST lines per window, forever: all written, no summary. */
    for (int i = 0; i < 20 * WSE_LOG_BURST; i++) {
        double t = 50.0 + (i / WSE_LOG_BURST) * 1.01 + (i % WSE_LOG_BURST) * 0.001;
        ck_assert(wse_log_limit_admit(&l, t, &held, &span));
        ck_assert_uint_eq(held, 0);
    }
}
END_TEST

START_TEST(expire_summarises_only_an_ended_window)
{
    struct wse_log_limit l = {.what = "test"};
    unsigned held;
    double span;

    ck_assert_uint_eq(wse_log_limit_expire(&l, 10.0, false, &span), 0);
    for (int i = 0; i < WSE_LOG_BURST + 3; i++)
        wse_log_limit_admit(&l, 10.0, &held, &span);
    ck_assert_uint_eq(wse_log_limit_expire(&l, 10.5, false, &span), 0);
    ck_assert_uint_eq(wse_log_limit_expire(&l, 11.0, false, &span), 3);
    ck_assert(span > 0.99 && span < 1.01);
    /* Reported once only, and the next line is written at once. */
    ck_assert_uint_eq(wse_log_limit_expire(&l, 12.0, false, &span), 0);
    ck_assert(wse_log_limit_admit(&l, 12.0, &held, &span));
    ck_assert_uint_eq(held, 0);
    /* At exit, force reports a window that has not ended. */
    for (int i = 0; i < WSE_LOG_BURST + 4; i++)
        wse_log_limit_admit(&l, 12.1, &held, &span);
    ck_assert_uint_eq(wse_log_limit_expire(&l, 12.2, true, &span), 5);
}
END_TEST

START_TEST(a_clock_that_goes_back_ends_the_window)
{
    struct wse_log_limit l = {.what = "test"};
    unsigned held;
    double span;

    for (int i = 0; i < WSE_LOG_BURST + 2; i++)
        wse_log_limit_admit(&l, 500.0, &held, &span);
    ck_assert(wse_log_limit_admit(&l, 400.0, &held, &span));
    ck_assert_uint_eq(held, 2);
}
END_TEST

/* Whatever the timing, every line is either written or counted in a
 * summary: none is lost, none counted twice. */
START_TEST(every_line_is_written_or_summarised)
{
    struct wse_log_limit l = {.what = "test"};
    unsigned held, written = 0, summarised = 0;
    double span, t = 1000.0, next_flush = 1001.0;

    srand(7);
    for (int i = 0; i < 20000; i++) {
        t += (double)(rand() % 1000) / 1e6;     /* 0-1 ms apart: ~10 s */
        if (t >= next_flush) {
            summarised += wse_log_limit_expire(&l, t, false, &span);
            next_flush = t + 1.0;
        }
        if (wse_log_limit_admit(&l, t, &held, &span))
            written++;
        summarised += held;
    }
    summarised += wse_log_limit_expire(&l, t, true, &span);
    ck_assert_uint_eq(written + summarised, 20000);
    /* ~10 windows of WSE_LOG_BURST lines, not 20000. */
    ck_assert_uint_le(written, 15 * WSE_LOG_BURST);
}
END_TEST

static unsigned count_lines(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

START_TEST(a_flood_leaves_a_burst_and_one_summary_in_the_file)
{
    char path[] = "/tmp/wsechod-unit-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(wse_log_open(path, WSE_LOG_INFO), 0);

    for (int i = 0; i < 300; i++)
        log_limited(WSE_LOG_INFO, "flood test", "bad request %d", i);
    /* Debug lines are below the level: neither written nor counted. */
    for (int i = 0; i < 5; i++)
        log_limited(WSE_LOG_DEBUG, "debug test", "debug %d", i);
    wse_log_flush(true);
    /* The flush unlinked everything: another flush writes nothing. */
    wse_log_flush(true);

    char text[16384];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);

    ck_assert_uint_eq(count_lines(text, "bad request "), WSE_LOG_BURST);
    ck_assert_uint_eq(count_lines(text, "\n"), WSE_LOG_BURST + 1);
    char summary[128];
    snprintf(summary, sizeof summary, "info  [master] ... and %d more flood test lines in the last ",
             300 - WSE_LOG_BURST);
    ck_assert_msg(strstr(text, summary), "no summary line in:\n%s", text);
    ck_assert_uint_eq(count_lines(text, "debug"), 0);
}
END_TEST

START_TEST(one_line_held_is_one_line)
{
    char path[] = "/tmp/wsechod-unit-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(wse_log_open(path, WSE_LOG_INFO), 0);

    for (int i = 0; i < WSE_LOG_BURST + 1; i++)
        log_limited(WSE_LOG_INFO, "single test", "line %d", i);
    wse_log_flush(true);

    char text[4096];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    ck_assert_msg(strstr(text, "... and 1 more single test line in the last "), "in:\n%s", text);
}
END_TEST

START_TEST(escape_keeps_visible_ascii_and_hides_the_rest)
{
    char out[64];
    const char in[] = "/a\"b\\c d\n\x1b[2J\xff";

    ck_assert_str_eq(wse_log_escape(in, sizeof in - 1, out, sizeof out),
                     "/a\\x22b\\x5cc\\x20d\\x0a\\x1b[2J\\xff");
    ck_assert_str_eq(wse_log_escape("", 0, out, sizeof out), "");
    /* A NUL inside the span is a byte like the others. */
    ck_assert_str_eq(wse_log_escape("a\0b", 3, out, sizeof out), "a\\x00b");
}
END_TEST

START_TEST(escape_cuts_with_dots_and_never_overflows)
{
    char big[1000];
    char out[16];

    memset(big, 'x', sizeof big);
    for (size_t cap = 8; cap <= sizeof out; cap++) {
        memset(out, '#', sizeof out);
        const char *r = wse_log_escape(big, sizeof big, out, cap);
        size_t len = strlen(r);
        ck_assert_uint_lt(len, cap);
        ck_assert_str_eq(r + len - 3, "...");
        if (cap < sizeof out)
            ck_assert_int_eq(out[cap], '#');   /* nothing written past cap */
    }
    /* Exactly fitting: no dots. */
    ck_assert_str_eq(wse_log_escape(big, 7, out, 8), "xxxxxxx");
    /* An escape that would not fit whole is cut before, not halfway. */
    ck_assert_str_eq(wse_log_escape("abcd\"efgh", 9, out, 9), "abcd...");
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("limit");

    tcase_add_test(tc, burst_is_written_then_held_until_the_window_ends);
    tcase_add_test(tc, a_quiet_site_is_never_limited);
    tcase_add_test(tc, expire_summarises_only_an_ended_window);
    tcase_add_test(tc, a_clock_that_goes_back_ends_the_window);
    tcase_add_test(tc, every_line_is_written_or_summarised);
    tcase_add_test(tc, a_flood_leaves_a_burst_and_one_summary_in_the_file);
    tcase_add_test(tc, one_line_held_is_one_line);
    tcase_add_test(tc, escape_keeps_visible_ascii_and_hides_the_rest);
    tcase_add_test(tc, escape_cuts_with_dots_and_never_overflows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(log_suite());
}
