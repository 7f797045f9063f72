/*
 * prom.h - the Prometheus text exposition of the stats segment, written
 * once for both readers: `wsechod stats --prometheus` (stats_cli.c) and the
 * --metrics-listen endpoint (metrics.c).
 *
 * The text goes into a growable buffer with a hard cap computed from the
 * segment's slot count (wse_prom_max_size), so that no segment content,
 * however rewritten, can make a reader allocate without bound.
 */
#ifndef WSE_PROM_H
#define WSE_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "stats.h"

/* A bounded, growable text buffer. */
struct wse_text {
    char *buf;
    size_t len, cap;
    size_t max;             /* never grows past this */
    bool overflow;          /* something did not fit (or no memory): the text is cut */
};

void wse_text_init(struct wse_text *t, size_t max);
void wse_text_free(struct wse_text *t);
void wse_text_printf(struct wse_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What the endpoint adds to the counters (the CLI adds nothing). */
struct wse_prom_extra {
    const char *version;        /* wsechod_build_info's labels */
    const char *revision;
};

/* Upper bound of wse_prom_write's output for a segment of nslots slots. */
size_t wse_prom_max_size(unsigned nslots);

/*
 * Appends the exposition of snapshot c (taken from a segment of nslots
 * slots): one family per counter name, one sample per worker process
 * (labels worker and generation) plus worker="retired" for the counters of
 * exited ones.  With extra, also wsechod_build_info and
 * wsechod_start_time_seconds (from the header's start_time_ms).
 */
void wse_prom_write(struct wse_text *t, unsigned nslots, const struct wse_stats_copy *c,
                    const struct wse_prom_extra *extra);

#endif
