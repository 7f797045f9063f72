/*
 * prom.c - the Prometheus text exposition of a stats snapshot (prom.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

/* What a slot's identity fields read as, when a writer left them mid-update. */
#define UNREADABLE "unreadable"

/* Longest label set of a sample: worker="-2147483648",generation="4294967295"
 * or worker="unreadable",slot="4294967295", plus a counter's own labels. */
#define LABELS_MAX 64
#define VALUE_MAX 20            /* digits of a uint64_t */
#define EXTRA_MAX 1024          /* build_info (two escaped labels of ours) and start time */

void wse_text_init(struct wse_text *t, size_t max)
{
    memset(t, 0, sizeof *t);
    t->max = max;
}

void wse_text_free(struct wse_text *t)
{
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
}

/* Room for need more bytes and a NUL, doubling up to max. */
static bool reserve(struct wse_text *t, size_t need)
{
    if (t->overflow || need > t->max - t->len || t->max - t->len - need < 1) {
        t->overflow = true;
        return false;
    }
    if (t->len + need + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + need + 1)
        cap *= 2;
    if (cap > t->max)
        cap = t->max;
    char *p = realloc(t->buf, cap);
    if (!p) {
        t->overflow = true;
        return false;
    }
    t->buf = p;
    t->cap = cap;
    return true;
}

void wse_text_printf(struct wse_text *t, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(t, (size_t)n))
        return;
    if ((size_t)n < sizeof small) {
        memcpy(t->buf + t->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

size_t wse_prom_max_size(unsigned nslots)
{
    size_t total = EXTRA_MAX;

    for (int i = 0; i < WSE_STAT_COUNT; i++) {
        size_t name = strlen(wse_stat_prom[i]);
        /* "# HELP name help\n# TYPE name counter\n" */
        total += 2 * (7 + name + 1) + strlen(wse_stat_help[i]) + sizeof "counter\n";
        /* "name{labels,own} value\n", for each slot and the retired line */
        size_t sample = name + 1 + LABELS_MAX + 1 + strlen(wse_stat_labels[i]) + 2 + VALUE_MAX + 1;
        total += ((size_t)nslots + 1) * sample;
    }
    return total;
}

static void sample(struct wse_text *t, int i, const char *labels, uint64_t value)
{
    const char *own = wse_stat_labels[i];
    wse_text_printf(t, "%s{%s%s%s} %llu\n", wse_stat_prom[i], labels, own[0] ? "," : "", own,
                    (unsigned long long)value);
}

/* A label value as the text format wants it: \, " and newline escaped. */
static void label_value(char *out, size_t n, const char *v)
{
    size_t o = 0;

    for (; *v && o + 3 < n; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            out[o++] = '\\';
            out[o++] = *v == '\n' ? 'n' : *v;
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

static void write_extra(struct wse_text *t, const struct wse_stats_copy *c,
                        const struct wse_prom_extra *extra)
{
    char version[128], revision[128];

    label_value(version, sizeof version, extra->version);
    label_value(revision, sizeof revision, extra->revision);
    wse_text_printf(t, "# HELP wsechod_build_info The running wsechod's version and "
                       "revision (git describe)\n"
                       "# TYPE wsechod_build_info gauge\n"
                       "wsechod_build_info{version=\"%s\",revision=\"%s\"} 1\n",
                    version, revision);
    wse_text_printf(t, "# HELP wsechod_start_time_seconds When the master started, in "
                       "seconds since the Unix epoch\n"
                       "# TYPE wsechod_start_time_seconds gauge\n"
                       "wsechod_start_time_seconds %llu.%03u\n",
                    (unsigned long long)(c->hdr.start_time_ms / 1000),
                    (unsigned)(c->hdr.start_time_ms % 1000));
}

/*
 * One metric family per name, one sample per worker process (labels worker
 * and generation: old and new processes of a slot overlap during a reload)
 * plus worker="retired" for exited processes, so that sum() is the total and
 * never goes backwards.
 */
void wse_prom_write(struct wse_text *t, unsigned nslots, const struct wse_stats_copy *c,
                    const struct wse_prom_extra *extra)
{
    for (int i = 0; i < WSE_STAT_COUNT; i++) {
        if (i == 0 || strcmp(wse_stat_prom[i], wse_stat_prom[i - 1]) != 0) {
            wse_text_printf(t, "# HELP %s %s\n", wse_stat_prom[i], wse_stat_help[i]);
            wse_text_printf(t, "# TYPE %s %s\n", wse_stat_prom[i],
                            wse_stat_is_gauge[i] ? "gauge" : "counter");
        }
        for (unsigned k = 0; k < nslots; k++) {
            const struct wse_stats_slot *s = &c->slots[k];
            char labels[LABELS_MAX];
            bool ok = c->slot_ok[k];
            if (ok && s->state == WSE_SLOT_EMPTY)
                continue;
            /* Counters of an unreadable slot still count: sum() stays the total. */
            if (ok)
                snprintf(labels, sizeof labels, "worker=\"%d\",generation=\"%u\"", s->worker,
                         s->generation);
            else
                snprintf(labels, sizeof labels, "worker=\"" UNREADABLE "\",slot=\"%u\"", k);
            sample(t, i, labels, s->c[i]);
        }
        if (!wse_stat_is_gauge[i])
            sample(t, i, "worker=\"retired\"", c->hdr.retired[i]);
    }
    if (extra)
        write_extra(t, c, extra);
}
