/*
 * test_hsbuf.c - the buffers of handshakes split over reads (hsbuf.h): growth
 * by doubling up to the cap, the bytes kept across growth, the budget's
 * refusal, the accounting back to zero, and the once-per-exhaustion warning.
 */
#include <check.h>
#include <string.h>

#include "run_suite.h"
#include "hsbuf.h"

#define CAP 8193    /* --max-header 8192 plus the byte where 431 is answered */

static char input[CAP + 64];

static void fill_input(void)
{
    for (size_t i = 0; i < sizeof input; i++)
        input[i] = (char)('a' + i % 26);
}

START_TEST(first_keep_takes_the_minimum_room)
{
    struct wse_hsbuf_budget b;
    struct wse_hsbuf *hs = NULL;

    fill_input();
    wse_hsbuf_budget_init(&b, CAP);
    ck_assert_uint_eq(b.bytes, 0);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs, input, 10), WSE_HSBUF_KEPT);
    ck_assert_ptr_nonnull(hs);
    ck_assert_uint_eq(hs->len, 10);
    ck_assert_uint_eq(hs->room, WSE_HSBUF_ROOM_MIN);
    ck_assert_uint_eq(b.bytes, sizeof *hs + WSE_HSBUF_ROOM_MIN);
    ck_assert_mem_eq(hs->buf, input, 10);
    wse_hsbuf_free(&b, &hs);
    ck_assert_ptr_null(hs);
    ck_assert_uint_eq(b.bytes, 0);
}
END_TEST

/* Each read brings more; the kept bytes survive every doubling and only the
 * new ones are copied (the caller put the old ones back at buf's start). */
START_TEST(growth_doubles_up_to_the_cap_and_keeps_the_bytes)
{
    struct wse_hsbuf_budget b;
    struct wse_hsbuf *hs = NULL;
    static const size_t steps[] = {100, 256, 257, 600, 2000, 5000, CAP};
    static const uint32_t rooms[] = {256, 256, 512, 1024, 2048, 8192, CAP};
    char buf[CAP];

    fill_input();
    wse_hsbuf_budget_init(&b, CAP);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        /* What the caller does: kept bytes back in front, new ones after. */
        size_t kept = hs ? hs->len : 0;
        memset(buf, 'X', sizeof buf);
        if (kept)
            memcpy(buf, hs->buf, kept);
        memcpy(buf + kept, input + kept, steps[i] - kept);
        ck_assert_int_eq(wse_hsbuf_keep(&b, &hs, buf, steps[i]), WSE_HSBUF_KEPT);
        ck_assert_uint_eq(hs->len, steps[i]);
        ck_assert_uint_eq(hs->room, rooms[i]);
        ck_assert_uint_eq(b.bytes, sizeof *hs + rooms[i]);
        ck_assert_mem_eq(hs->buf, input, steps[i]);
    }
    wse_hsbuf_free(&b, &hs);
    ck_assert_uint_eq(b.bytes, 0);
}
END_TEST

START_TEST(more_than_the_cap_is_refused_unchanged)
{
    struct wse_hsbuf_budget b;
    struct wse_hsbuf *hs = NULL;

    fill_input();
    wse_hsbuf_budget_init(&b, CAP);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs, input, CAP + 1), WSE_HSBUF_NOMEM);
    ck_assert_ptr_null(hs);
    ck_assert_uint_eq(b.bytes, 0);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs, input, 300), WSE_HSBUF_KEPT);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs, input, CAP + 1), WSE_HSBUF_NOMEM);
    ck_assert_uint_eq(hs->len, 300);
    ck_assert_uint_eq(b.bytes, sizeof *hs + 512);
    wse_hsbuf_free(&b, &hs);
    ck_assert_uint_eq(b.bytes, 0);
}
END_TEST

/* The budget holds WSE_HSBUF_HEADS full-size buffers; the next growth is
 * refused and leaves that buffer as it was; freeing gives it all back. */
START_TEST(the_budget_refuses_growth_past_it_and_accounts_back_to_zero)
{
    static struct wse_hsbuf *hs[WSE_HSBUF_HEADS + 1];
    struct wse_hsbuf_budget b;

    fill_input();
    wse_hsbuf_budget_init(&b, CAP);
    ck_assert_uint_eq(b.limit, WSE_HSBUF_HEADS * (sizeof(struct wse_hsbuf) + CAP));
    for (unsigned i = 0; i < WSE_HSBUF_HEADS; i++)
        ck_assert_int_eq(wse_hsbuf_keep(&b, &hs[i], input, CAP), WSE_HSBUF_KEPT);
    ck_assert_uint_eq(b.bytes, b.limit);
    /* Not even the smallest buffer fits now. */
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs[WSE_HSBUF_HEADS], input, 1), WSE_HSBUF_FULL);
    ck_assert_ptr_null(hs[WSE_HSBUF_HEADS]);
    ck_assert_uint_eq(b.bytes, b.limit);

    /* One full buffer's room holds two small ones, which then cannot grow
     * to full size. */
    wse_hsbuf_free(&b, &hs[0]);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs[0], input, 100), WSE_HSBUF_KEPT);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs[WSE_HSBUF_HEADS], input, 100), WSE_HSBUF_KEPT);
    ck_assert_int_eq(wse_hsbuf_keep(&b, &hs[0], input, CAP), WSE_HSBUF_FULL);
    ck_assert_uint_eq(hs[0]->len, 100);
    ck_assert_uint_eq(hs[0]->room, WSE_HSBUF_ROOM_MIN);
    ck_assert_mem_eq(hs[0]->buf, input, 100);

    for (unsigned i = 0; i <= WSE_HSBUF_HEADS; i++)
        wse_hsbuf_free(&b, &hs[i]);
    ck_assert_uint_eq(b.bytes, 0);
}
END_TEST

/* The warning comes once per exhaustion: again only after the budget fell
 * below half. */
START_TEST(the_warning_rearms_below_half)
{
    static struct wse_hsbuf *hs[WSE_HSBUF_HEADS];
    struct wse_hsbuf_budget b;

    fill_input();
    wse_hsbuf_budget_init(&b, CAP);
    for (unsigned i = 0; i < WSE_HSBUF_HEADS; i++)
        ck_assert_int_eq(wse_hsbuf_keep(&b, &hs[i], input, CAP), WSE_HSBUF_KEPT);
    ck_assert(wse_hsbuf_warn_once(&b));
    ck_assert(!wse_hsbuf_warn_once(&b));
    /* Down to exactly half: still not rearmed. */
    for (unsigned i = 0; i < WSE_HSBUF_HEADS / 2; i++)
        wse_hsbuf_free(&b, &hs[i]);
    ck_assert(!wse_hsbuf_warn_once(&b));
    wse_hsbuf_free(&b, &hs[WSE_HSBUF_HEADS / 2]);
    ck_assert(wse_hsbuf_warn_once(&b));
    for (unsigned i = 0; i < WSE_HSBUF_HEADS; i++)
        wse_hsbuf_free(&b, &hs[i]);
    ck_assert_uint_eq(b.bytes, 0);
}
END_TEST

START_TEST(free_of_none_is_harmless)
{
    struct wse_hsbuf_budget b;
    struct wse_hsbuf *hs = NULL;

    wse_hsbuf_budget_init(&b, CAP);
    wse_hsbuf_free(&b, &hs);
    ck_assert_uint_eq(b.bytes, 0);
    ck_assert(wse_hsbuf_warn_once(&b));
}
END_TEST

static Suite *hsbuf_suite(void)
{
    Suite *s = suite_create("hsbuf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, first_keep_takes_the_minimum_room);
    tcase_add_test(tc, growth_doubles_up_to_the_cap_and_keeps_the_bytes);
    tcase_add_test(tc, more_than_the_cap_is_refused_unchanged);
    tcase_add_test(tc, the_budget_refuses_growth_past_it_and_accounts_back_to_zero);
    tcase_add_test(tc, the_warning_rearms_below_half);
    tcase_add_test(tc, free_of_none_is_harmless);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(hsbuf_suite());
}
