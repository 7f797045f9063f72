/*
 * wsbench_hist.c - the log-linear latency histogram (see wsbench_hist.h).
 */
#include "wsbench_hist.h"

#include <math.h>
#include <string.h>

void wsb_hist_init(struct wsb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void wsb_hist_merge(struct wsb_hist *dst, const struct wsb_hist *src)
{
    for (unsigned i = 0; i < WSB_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->min < dst->min)
        dst->min = src->min;
}

double wsb_hist_bucket_value(unsigned idx)
{
    if (idx < WSB_HIST_SUB)
        return idx;
    unsigned k = idx - WSB_HIST_SUB;
    unsigned shift = k / WSB_HIST_HALF + 1;
    uint64_t lo = (uint64_t)(k % WSB_HIST_HALF + WSB_HIST_HALF) << shift;
    return (double)lo + (double)(1ull << shift) / 2.0;
}

double wsb_hist_mean(const struct wsb_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

/* A bucket's value clamped to what was really seen. */
static double clamped(const struct wsb_hist *h, unsigned idx)
{
    double v = wsb_hist_bucket_value(idx);
    if (h->count) {
        if (v > (double)h->max)
            v = (double)h->max;
        if (v < (double)h->min)
            v = (double)h->min;
    }
    return v;
}

double wsb_hist_stdev(const struct wsb_hist *h, double mean)
{
    if (h->count < 2)
        return 0.0;
    double acc = 0.0;
    for (unsigned i = 0; i < WSB_HIST_BUCKETS; i++) {
        if (h->b[i]) {
            double d = clamped(h, i) - mean;
            acc += d * d * (double)h->b[i];
        }
    }
    return sqrt(acc / (double)(h->count - 1));
}

double wsb_hist_within(const struct wsb_hist *h, double mean, double stdev)
{
    if (!h->count)
        return 0.0;
    uint64_t in = 0;
    for (unsigned i = 0; i < WSB_HIST_BUCKETS; i++) {
        if (h->b[i]) {
            double v = clamped(h, i);
            if (v >= mean - stdev && v <= mean + stdev)
                in += h->b[i];
        }
    }
    return 100.0 * (double)in / (double)h->count;
}

double wsb_hist_percentile(const struct wsb_hist *h, double p)
{
    if (!h->count)
        return 0.0;
    uint64_t target = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (target < 1)
        target = 1;
    if (target > h->count)
        target = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < WSB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= target)
            return clamped(h, i);
    }
    return (double)h->max;
}
