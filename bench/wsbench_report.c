/*
 * wsbench_report.c - the results, as wrk prints them or as one JSON object.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "common.h"
#include "wsbench.h"

/* The nouns after a count: "1 thread and 1 connection", "2 threads and 100 connections". */
#define THREADS(n) wse_plural((n), "thread", "threads")
#define CONNS(n) wse_plural((n), "connection", "connections")

struct totals {
    uint64_t msgs, cycles, bytes, established, held, closed_clean, pings, tls_resumed;
    uint64_t err[WSB_E_COUNT];
    uint64_t errors;
    uint64_t bad_codes;         /* server closes other than 1000, 1001, 1012 */
    uint64_t ncodes;
    uint32_t codes[WSB_CODES];
    double elapsed;             /* seconds */
    double all_open;            /* hold: seconds until the last connection opened */
    struct wsb_hist hist;
    double rate_mean, rate_sd, rate_max, rate_within;
    double lat_mean, lat_sd, lat_within;    /* ns */
};

static const double pcts[] = {50, 75, 90, 99, 99.9, 99.99};
static const char *const pct_names[] = {"50", "75", "90", "99", "99.9", "99.99"};
static const char *const pct_keys[] = {"p50", "p75", "p90", "p99", "p999", "p9999"};

static const char *mode_name(enum wsb_mode m)
{
    switch (m) {
    case WSB_CONNECT_RATE: return "connect-rate";
    case WSB_HOLD: return "hold";
    case WSB_RAW: return "raw";
    default: return "echo";
    }
}

/* Nanoseconds as wrk prints times: 98.00us, 2.10ms, 1.50s, 2.00m. */
static char *fmt_time(char *buf, size_t n, double ns)
{
    double us = ns / 1000.0;
    if (us < 1000)
        snprintf(buf, n, "%.2fus", us);
    else if (us < 1e6)
        snprintf(buf, n, "%.2fms", us / 1e3);
    else if (us < 60e6)
        snprintf(buf, n, "%.2fs", us / 1e6);
    else if (us < 3600e6)
        snprintf(buf, n, "%.2fm", us / 60e6);
    else
        snprintf(buf, n, "%.2fh", us / 3600e6);
    return buf;
}

static char *fmt_metric(char *buf, size_t n, double v)
{
    if (v < 1e3)
        snprintf(buf, n, "%.2f", v);
    else if (v < 1e6)
        snprintf(buf, n, "%.2fk", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else
        snprintf(buf, n, "%.2fG", v / 1e9);
    return buf;
}

static char *fmt_bytes(char *buf, size_t n, double v)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    unsigned u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%.2f%s", v, units[u]);
    return buf;
}

/* The requested length as given: 10s, 2m, 1h, 500ms. */
static char *fmt_duration(char *buf, size_t n, double s)
{
    if (s >= 3600 && fmod(s, 3600) == 0)
        snprintf(buf, n, "%.0fh", s / 3600);
    else if (s >= 60 && fmod(s, 60) == 0)
        snprintf(buf, n, "%.0fm", s / 60);
    else if (s < 1)
        snprintf(buf, n, "%.0fms", s * 1000);
    else
        snprintf(buf, n, "%gs", s);
    return buf;
}

static void sum_up(const struct wsb_config *cfg, struct wsb_thread *th, unsigned n,
                   struct totals *T)
{
    uint64_t t_end = cfg->t0, all_open = 0;
    size_t ns = 0;

    memset(T, 0, sizeof *T);
    wsb_hist_init(&T->hist);
    for (unsigned i = 0; i < n; i++) {
        struct wsb_thread *t = &th[i];
        T->msgs += t->msgs;
        T->cycles += t->cycles;
        T->bytes += t->bytes_read;
        T->established += t->established;
        T->tls_resumed += t->tls_resumed;
        T->held += t->held;
        T->closed_clean += t->closed_clean;
        T->pings += t->pings;
        for (int e = 0; e < WSB_E_COUNT; e++)
            T->err[e] += t->err[e];
        for (unsigned c = 0; c < WSB_CODES; c++)
            T->codes[c] += t->codes[c];
        wsb_hist_merge(&T->hist, &t->hist);
        if (t->t_end > t_end)
            t_end = t->t_end;
        if (t->t_all_open > all_open)
            all_open = t->t_all_open;
        ns += t->nsamples;
    }
    for (int e = 0; e < WSB_E_COUNT; e++)
        T->errors += T->err[e];
    for (unsigned c = 0; c < WSB_CODES; c++) {
        T->ncodes += T->codes[c];
        if (c != 1000 && c != 1001 && c != 1012)
            T->bad_codes += T->codes[c];
    }
    T->elapsed = (double)(t_end - cfg->t0) / 1e9;
    T->all_open = all_open ? (double)(all_open - cfg->t0) / 1e9 : 0;

    /* Rate samples of all threads together. */
    double sum = 0, max = 0;
    for (unsigned i = 0; i < n; i++) {
        for (size_t j = 0; j < th[i].nsamples; j++) {
            sum += th[i].samples[j];
            if (th[i].samples[j] > max)
                max = th[i].samples[j];
        }
    }
    if (ns) {
        double mean = sum / (double)ns, acc = 0;
        size_t in = 0;
        for (unsigned i = 0; i < n; i++)
            for (size_t j = 0; j < th[i].nsamples; j++)
                acc += (th[i].samples[j] - mean) * (th[i].samples[j] - mean);
        double sd = ns > 1 ? sqrt(acc / (double)(ns - 1)) : 0;
        for (unsigned i = 0; i < n; i++)
            for (size_t j = 0; j < th[i].nsamples; j++)
                in += fabs(th[i].samples[j] - mean) <= sd;
        T->rate_mean = mean;
        T->rate_sd = sd;
        T->rate_max = max;
        T->rate_within = 100.0 * (double)in / (double)ns;
    }
    T->lat_mean = wsb_hist_mean(&T->hist);
    T->lat_sd = wsb_hist_stdev(&T->hist, T->lat_mean);
    T->lat_within = wsb_hist_within(&T->hist, T->lat_mean, T->lat_sd);
}

static void print_text(const struct wsb_config *cfg, const struct totals *T)
{
    char a[32], b[32], c[32];
    const char *kind = cfg->binary ? "binary" : "text";
    const char *lat_name = cfg->mode == WSB_ECHO || cfg->mode == WSB_RAW ? "Latency" : "Handshake";

    fmt_duration(a, sizeof a, cfg->duration_s);
    switch (cfg->mode) {
    case WSB_ECHO:
        printf("Running %s test @ %s\n", a, cfg->url);
        printf("  %u %s and %u %s, %" PRIu64 "-byte %s messages, pipeline %u\n", cfg->threads,
               THREADS(cfg->threads), cfg->conns, CONNS(cfg->conns), cfg->size, kind,
               cfg->pipeline);
        break;
    case WSB_RAW:
        printf("Running %s raw TCP test @ %s\n", a, cfg->url);
        printf("  %u %s and %u %s, %" PRIu64 "-byte blocks, pipeline %u\n", cfg->threads,
               THREADS(cfg->threads), cfg->conns, CONNS(cfg->conns), cfg->size, cfg->pipeline);
        break;
    case WSB_CONNECT_RATE:
        printf("Running %s connect-rate test @ %s\n", a, cfg->url);
        printf("  %u %s and %u %s, one %" PRIu64 "-byte %s echo per connection\n", cfg->threads,
               THREADS(cfg->threads), cfg->conns, CONNS(cfg->conns), cfg->size, kind);
        break;
    case WSB_HOLD:
        printf("Running %s hold test @ %s\n", a, cfg->url);
        printf("  %u %s and %u %s held idle\n", cfg->threads,
               THREADS(cfg->threads), cfg->conns, CONNS(cfg->conns));
        break;
    }

    printf("  Thread Stats   Avg      Stdev     Max   +/- Stdev\n");
    printf("    %-10s%8s%10s%9s%8.2f%%\n", lat_name, fmt_time(a, sizeof a, T->lat_mean),
           fmt_time(b, sizeof b, T->lat_sd), fmt_time(c, sizeof c, (double)T->hist.max),
           T->lat_within);
    if (cfg->mode != WSB_HOLD)
        printf("    %-10s%8s%10s%9s%8.2f%%\n", cfg->mode == WSB_CONNECT_RATE ? "Conns/Sec" : "Msgs/Sec",
               fmt_metric(a, sizeof a, T->rate_mean), fmt_metric(b, sizeof b, T->rate_sd),
               fmt_metric(c, sizeof c, T->rate_max), T->rate_within);
    if (cfg->latency) {
        printf("  %s Distribution\n", lat_name);
        for (size_t i = 0; i < sizeof pcts / sizeof *pcts; i++)
            printf("%7s%%%10s\n", pct_names[i],
                   fmt_time(a, sizeof a, wsb_hist_percentile(&T->hist, pcts[i])));
    }

    fmt_time(b, sizeof b, T->elapsed * 1e9);
    fmt_bytes(c, sizeof c, (double)T->bytes);
    switch (cfg->mode) {
    case WSB_ECHO:
    case WSB_RAW:
        printf("  %" PRIu64 " %s in %s, %s read\n", T->msgs,
               wse_plural(T->msgs, "message", "messages"), b, c);
        break;
    case WSB_CONNECT_RATE:
        printf("  %" PRIu64 " %s (connect, handshake, echo, close) in %s, %s read\n",
               T->cycles, CONNS(T->cycles), b, c);
        break;
    case WSB_HOLD:
        printf("  %" PRIu64 " of %u %s established", T->established, cfg->conns,
               CONNS(cfg->conns));
        if (T->all_open > 0)
            printf(" (all by %s)", fmt_time(a, sizeof a, T->all_open * 1e9));
        printf(", %" PRIu64 " open at the end of %s, %" PRIu64 " closed cleanly\n", T->held, b,
               T->closed_clean);
        printf("  %" PRIu64 " %s answered, %s read\n", T->pings,
               wse_plural(T->pings, "ping", "pings"), c);
        break;
    }
    if (cfg->tls)
        printf("  TLS (up to %s): %" PRIu64 " of %" PRIu64 " handshakes resumed\n",
               cfg->tls_max == TLS1_2_VERSION ? "1.2" : "1.3", T->tls_resumed, T->established);
    printf("  Errors: connect %" PRIu64 ", handshake %" PRIu64 ", read %" PRIu64 ", write %" PRIu64
           ", timeout %" PRIu64 ", mismatch %" PRIu64 "\n",
           T->err[WSB_E_CONNECT], T->err[WSB_E_HANDSHAKE], T->err[WSB_E_READ],
           T->err[WSB_E_WRITE], T->err[WSB_E_TIMEOUT], T->err[WSB_E_MISMATCH]);
    if (T->ncodes) {
        printf("  Close codes:");
        const char *sep = " ";
        for (unsigned i = 0; i < WSB_CODES; i++) {
            if (T->codes[i]) {
                if (i == WSB_CODES - 1)
                    printf("%sother x%" PRIu32, sep, T->codes[i]);
                else
                    printf("%s%u x%" PRIu32, sep, i, T->codes[i]);
                sep = ", ";
            }
        }
        printf("\n");
    }
    double el = T->elapsed > 0 ? T->elapsed : 1;
    switch (cfg->mode) {
    case WSB_ECHO:
    case WSB_RAW:
        printf("Messages/sec: %9.2f\n", (double)T->msgs / el);
        break;
    case WSB_CONNECT_RATE:
        printf("Conns/sec: %9.2f\n", (double)T->cycles / el);
        break;
    case WSB_HOLD:
        break;
    }
    if (cfg->mode != WSB_HOLD)
        printf("Transfer/sec: %10s\n", fmt_bytes(a, sizeof a, (double)T->bytes / el));
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct wsb_config *cfg, const struct totals *T)
{
    double el = T->elapsed > 0 ? T->elapsed : 1;

    printf("{\"url\": ");
    json_string(cfg->url);
    printf(", \"mode\": \"%s\", \"threads\": %u, \"connections\": %u, \"size\": %" PRIu64
           ", \"pipeline\": %u, \"binary\": %s, \"duration_s\": %.3f",
           mode_name(cfg->mode), cfg->threads, cfg->conns, cfg->size, cfg->pipeline,
           cfg->binary ? "true" : "false", T->elapsed);
    printf(", \"messages\": %" PRIu64 ", \"bytes_read\": %" PRIu64
           ", \"msgs_per_sec\": %.2f, \"bytes_per_sec\": %.2f",
           T->msgs, T->bytes, (double)T->msgs / el, (double)T->bytes / el);
    printf(", \"msgs_per_sec_thread\": {\"avg\": %.2f, \"stdev\": %.2f, \"max\": %.2f}",
           T->rate_mean, T->rate_sd, T->rate_max);
    if (cfg->mode == WSB_CONNECT_RATE)
        printf(", \"connections_completed\": %" PRIu64 ", \"conns_per_sec\": %.2f", T->cycles,
               (double)T->cycles / el);
    if (cfg->tls)
        printf(", \"tls_max\": \"%s\", \"tls_handshakes\": %" PRIu64 ", \"tls_resumed\": %" PRIu64,
               cfg->tls_max == TLS1_2_VERSION ? "1.2" : "1.3", T->established, T->tls_resumed);
    if (cfg->mode == WSB_HOLD)
        printf(", \"established\": %" PRIu64 ", \"all_open_s\": %.3f, \"held\": %" PRIu64
               ", \"closed_clean\": %" PRIu64 ", \"pings\": %" PRIu64,
               T->established, T->all_open, T->held, T->closed_clean, T->pings);
    printf(", \"latency_of\": \"%s\"",
           cfg->mode == WSB_ECHO || cfg->mode == WSB_RAW ? "message" : "handshake");
    printf(", \"latency_us\": {\"avg\": %.2f, \"stdev\": %.2f, \"max\": %.2f", T->lat_mean / 1e3,
           T->lat_sd / 1e3, (double)T->hist.max / 1e3);
    for (size_t i = 0; i < sizeof pcts / sizeof *pcts; i++)
        printf(", \"%s\": %.2f", pct_keys[i], wsb_hist_percentile(&T->hist, pcts[i]) / 1e3);
    printf("}, \"errors\": {");
    for (int e = 0; e < WSB_E_COUNT; e++)
        printf("%s\"%s\": %" PRIu64, e ? ", " : "", wsb_err_names[e], T->err[e]);
    printf("}, \"close_codes\": {");
    const char *sep = "";
    for (unsigned i = 0; i < WSB_CODES; i++) {
        if (T->codes[i]) {
            if (i == WSB_CODES - 1)
                printf("%s\"other\": %" PRIu32, sep, T->codes[i]);
            else
                printf("%s\"%u\": %" PRIu32, sep, i, T->codes[i]);
            sep = ", ";
        }
    }
    printf("}}\n");
}

int wsb_report(const struct wsb_config *cfg, struct wsb_thread *th, unsigned n)
{
    struct totals *T = malloc(sizeof *T);
    if (!T) {
        fprintf(stderr, "wsbench: out of memory\n");
        return 1;
    }
    sum_up(cfg, th, n, T);
    if (cfg->json)
        print_json(cfg, T);
    else
        print_text(cfg, T);
    fflush(stdout);
    int rc = T->errors || T->bad_codes ||
             (cfg->mode == WSB_HOLD && T->established < cfg->conns) ? 1 : 0;
    /* A count says that something failed, not what: a wrong path (404) and
     * a TLS failure are both handshake errors. */
    if (T->errors && !cfg->verbose)
        fprintf(stderr, "wsbench: %" PRIu64 " %s; run again with -v to see the first ones\n",
                T->errors, T->errors == 1 ? "error" : "errors");
    free(T);
    return rc;
}
