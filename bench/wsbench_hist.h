/*
 * wsbench_hist.h - a log-linear latency histogram for wsbench.
 *
 * Values are nanoseconds.  Below 256 ns every value has its own bucket;
 * above, each power of two is split into 128 equal buckets, so a bucket is
 * at most 1/128 of its lower bound wide and its midpoint is within 0.4 % of
 * any value in it.  The top bucket ends at 2^37 ns (about 137 s); larger
 * values are counted there (the exact maximum is kept separately).
 * Recording is a count-leading-zeros and an increment; histograms of
 * different threads merge by adding buckets.
 */
#ifndef WSBENCH_HIST_H
#define WSBENCH_HIST_H

#include <stdint.h>

#define WSB_HIST_SUB_BITS 8
#define WSB_HIST_SUB      (1u << WSB_HIST_SUB_BITS)   /* 256 exact buckets */
#define WSB_HIST_HALF     (WSB_HIST_SUB / 2)          /* 128 per power of two */
#define WSB_HIST_TOP_BIT  37                          /* values < 2^37 ns */
#define WSB_HIST_BUCKETS  (WSB_HIST_SUB + (WSB_HIST_TOP_BIT - WSB_HIST_SUB_BITS) * WSB_HIST_HALF)

struct wsb_hist {
    uint64_t count;
    uint64_t sum;       /* exact, for the mean */
    uint64_t min;
    uint64_t max;
    uint64_t b[WSB_HIST_BUCKETS];
};

void wsb_hist_init(struct wsb_hist *h);

static inline unsigned wsb_hist_index(uint64_t v)
{
    if (v < WSB_HIST_SUB)
        return (unsigned)v;
    if (v >= (1ull << WSB_HIST_TOP_BIT))
        v = (1ull << WSB_HIST_TOP_BIT) - 1;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);     /* >= SUB_BITS */
    unsigned shift = msb - (WSB_HIST_SUB_BITS - 1);        /* v >> shift in [128, 256) */
    return WSB_HIST_SUB + (shift - 1) * WSB_HIST_HALF +
           (unsigned)((v >> shift) - WSB_HIST_HALF);
}

static inline void wsb_hist_record(struct wsb_hist *h, uint64_t v)
{
    h->b[wsb_hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

/* Adds src into dst. */
void wsb_hist_merge(struct wsb_hist *dst, const struct wsb_hist *src);

/* The value a bucket stands for (its midpoint). */
double wsb_hist_bucket_value(unsigned idx);

double wsb_hist_mean(const struct wsb_hist *h);
/* Sample standard deviation, from the buckets. */
double wsb_hist_stdev(const struct wsb_hist *h, double mean);
/* Percent of the values within mean +- stdev. */
double wsb_hist_within(const struct wsb_hist *h, double mean, double stdev);
/* The value at percentile p (0 < p <= 100), clamped to [min, max]. */
double wsb_hist_percentile(const struct wsb_hist *h, double p);

#endif
