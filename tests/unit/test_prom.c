/*
 * test_prom.c - the Prometheus text of a snapshot (prom.c): the exact lines,
 * label escaping, and the size bound against the widest values a rewritten
 * segment can hold.
 */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "prom.h"

static void fill(struct wse_stats_copy *c, unsigned nslots)
{
    memset(c, 0, sizeof *c);
    c->slots = calloc(nslots, sizeof *c->slots);
    c->slot_ok = calloc(nslots, sizeof *c->slot_ok);
    ck_assert(c->slots && c->slot_ok);
}

static char *render(unsigned nslots, const struct wse_stats_copy *c,
                    const struct wse_prom_extra *extra, size_t *len)
{
    struct wse_text t;

    wse_text_init(&t, wse_prom_max_size(nslots));
    wse_prom_write(&t, nslots, c, extra);
    ck_assert(!t.overflow);
    ck_assert_uint_le(t.len, wse_prom_max_size(nslots));
    *len = t.len;
    return t.buf;
}

START_TEST(samples_retired_and_extra)
{
    struct wse_stats_copy c;
    struct wse_prom_extra extra = {"1.2.3", "v1.2.3-4-gabc\"\\x"};
    size_t len;

    fill(&c, 3);
    c.slot_ok[0] = c.slot_ok[2] = true;
    c.slots[0].state = WSE_SLOT_RUNNING;
    c.slots[0].worker = 0;
    c.slots[0].generation = 2;
    c.slots[0].c[WSE_STAT_msgs_in_text] = 37;
    c.slots[1].c[WSE_STAT_msgs_in_text] = 5;        /* unreadable: still counted */
    c.slots[2].state = WSE_SLOT_EMPTY;              /* empty: left out */
    c.slots[2].c[WSE_STAT_msgs_in_text] = 99;
    c.hdr.retired[WSE_STAT_msgs_in_text] = 4;
    c.hdr.retired[WSE_STAT_conn_open] = 7;          /* a gauge has no retired sample */
    c.hdr.start_time_ms = 1700000000042ULL;
    char *text = render(3, &c, &extra, &len);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_ptr_nonnull(strstr(text, "# HELP wsechod_messages_received_total Messages "
                                       "received, by type\n# TYPE wsechod_messages_received_total "
                                       "counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "wsechod_messages_received_total{worker=\"0\","
                                       "generation=\"2\",type=\"text\"} 37\n"));
    ck_assert_ptr_nonnull(strstr(text, "wsechod_messages_received_total{worker=\"unreadable\","
                                       "slot=\"1\",type=\"text\"} 5\n"));
    ck_assert_ptr_nonnull(strstr(text, "wsechod_messages_received_total{worker=\"retired\","
                                       "type=\"text\"} 4\n"));
    ck_assert_ptr_null(strstr(text, "} 99\n"));
    ck_assert_ptr_null(strstr(text, "wsechod_connections_open{worker=\"retired\""));
    ck_assert_ptr_nonnull(strstr(text, "wsechod_build_info{version=\"1.2.3\","
                                       "revision=\"v1.2.3-4-gabc\\\"\\\\x\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nwsechod_start_time_seconds 1700000000.042\n"));
    free(text);

    /* Without extra (the CLI): the counters only. */
    text = render(3, &c, NULL, &len);
    ck_assert_ptr_null(strstr(text, "wsechod_build_info"));
    ck_assert_ptr_null(strstr(text, "wsechod_start_time_seconds"));
    free(text);
    wse_stats_copy_free(&c);
}
END_TEST

/* Every slot in use with the widest identity and values: still within the bound. */
START_TEST(widest_segment_fits_the_bound)
{
    static const unsigned counts[] = {1, 7, WSE_STATS_MAX_SLOTS};
    char version[200];

    memset(version, '"', sizeof version - 1);       /* every byte escaped: cut, not overflowed */
    version[sizeof version - 1] = '\0';
    for (size_t n = 0; n < sizeof counts / sizeof counts[0]; n++) {
        unsigned nslots = counts[n];
        struct wse_stats_copy c;
        struct wse_prom_extra extra = {version, version};
        size_t len;

        fill(&c, nslots);
        for (unsigned k = 0; k < nslots; k++) {
            c.slot_ok[k] = k % 2 == 0;
            c.slots[k].state = WSE_SLOT_DRAINING;
            c.slots[k].worker = INT32_MIN;
            c.slots[k].generation = UINT32_MAX;
            for (int i = 0; i < WSE_STAT_COUNT; i++)
                c.slots[k].c[i] = UINT64_MAX;
        }
        for (int i = 0; i < WSE_STAT_COUNT; i++)
            c.hdr.retired[i] = UINT64_MAX;
        c.hdr.start_time_ms = UINT64_MAX;
        free(render(nslots, &c, &extra, &len));
        /* An upper bound, and not a careless one: the real text is most of it. */
        if (nslots == WSE_STATS_MAX_SLOTS)
            ck_assert_uint_gt(len, wse_prom_max_size(nslots) / 4 * 3);
        wse_stats_copy_free(&c);
    }
}
END_TEST

/* A cap too small cuts the text and says so; nothing is written past it. */
START_TEST(overflow_is_reported)
{
    struct wse_stats_copy c;
    struct wse_text t;

    fill(&c, 2);
    wse_text_init(&t, 100);
    wse_prom_write(&t, 2, &c, NULL);
    ck_assert(t.overflow);
    ck_assert_uint_le(t.len, 100);
    wse_text_free(&t);
    wse_stats_copy_free(&c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, samples_retired_and_extra);
    tcase_add_test(tc, widest_segment_fits_the_bound);
    tcase_add_test(tc, overflow_is_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(suite());
}
