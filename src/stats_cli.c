/*
 * stats_cli.c - `wsechod stats`: reads the shared-memory segment (stats.h)
 * and prints a table, JSON or the Prometheus text format (prom.c), once or with
 * --watch.  It only reads: a reader cannot disturb the server.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "prom.h"
#include "stats.h"
#include "stats_cli.h"

enum format { FMT_TABLE, FMT_JSON, FMT_PROM };

/* One sample: a private copy, nothing in it points into the segment. */
struct view {
    struct wse_stats_copy c;
};

/* What a slot's identity fields read as, when a writer left them mid-update. */
#define UNREADABLE "unreadable"

static const char *const state_names[] = {
    [WSE_SLOT_EMPTY] = "empty", [WSE_SLOT_STARTING] = "starting",
    [WSE_SLOT_RUNNING] = "running", [WSE_SLOT_DRAINING] = "draining",
    [WSE_SLOT_EXITED] = "exited",
};

static const char *state_name(uint32_t state)
{
    return state < sizeof state_names / sizeof state_names[0] ? state_names[state] : "?";
}

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: wsechod stats [--stats-name NAME | -c CONFIG] [--json | --prometheus]\n"
                "                     [--watch [SECONDS]]\n"
                "Reads the live counters of a running wsechod.  Without --stats-name or -c,\n"
                "the segment of the default configuration (port 8000) is read.\n");
}

/* The segment name the server would use with this configuration file. */
static int name_from_config(const char *file, char *out, size_t n)
{
    static struct wse_config cfg;
    char err[512];
    char *argv[] = {"wsechod", "-c", (char *)file, NULL};

    if (wse_config_load(&cfg, 3, argv, err, sizeof err) != 0) {
        fprintf(stderr, "wsechod stats: %s\n", err);
        return -1;
    }
    wse_stats_default_name(out, n, cfg.stats_name, cfg.listen[0].port);
    return 0;
}

static uint64_t sum(const uint64_t *c, enum wse_stat_index a, enum wse_stat_index b)
{
    return c[a] + c[b];
}

static uint64_t errors(const uint64_t *c)
{
    return c[WSE_STAT_err_1002] + c[WSE_STAT_err_1007] + c[WSE_STAT_err_1009];
}

/* What the rate columns of a row show. */
enum rate_cols {
    RATES_NONE,     /* one sample: no rate columns */
    RATES_UNKNOWN,  /* --watch, no earlier sample of this process yet: "-" */
    RATES_SHOWN,
};

static void table_row(const char *who, const char *pid, const char *gen, const char *state,
                      const uint64_t *c, enum rate_cols cols, const double *rate)
{
    char open[WSE_HUMAN_MAX], acc[WSE_HUMAN_MAX], mi[WSE_HUMAN_MAX], mo[WSE_HUMAN_MAX];
    char bi[WSE_HUMAN_MAX], bo[WSE_HUMAN_MAX], err[WSE_HUMAN_MAX];
    wse_human(open, (double)c[WSE_STAT_conn_open]);
    wse_human(acc, (double)c[WSE_STAT_conn_accepted]);
    wse_human(mi, (double)sum(c, WSE_STAT_msgs_in_text, WSE_STAT_msgs_in_binary));
    wse_human(mo, (double)sum(c, WSE_STAT_msgs_out_text, WSE_STAT_msgs_out_binary));
    wse_human(bi, (double)sum(c, WSE_STAT_bytes_in_text, WSE_STAT_bytes_in_binary));
    wse_human(bo, (double)sum(c, WSE_STAT_bytes_out_text, WSE_STAT_bytes_out_binary));
    wse_human(err, (double)errors(c));
    printf("%-7s %-8s %-5s %-10s %5s %8s %8s %8s %8s %9s %6s", who, pid, gen, state, open, acc,
           mi, mo, bi, bo, err);
    if (cols != RATES_NONE) {
        char r1[WSE_HUMAN_MAX] = "-", r2[WSE_HUMAN_MAX] = "-";
        if (cols == RATES_SHOWN) {
            wse_human(r1, rate[0]);
            wse_human(r2, rate[1]);
        }
        printf(" %6s %7s", r1, r2);
    }
    putchar('\n');
}

static void rates(const uint64_t *now, const uint64_t *before, double dt, double out[2])
{
    uint64_t m1 = sum(now, WSE_STAT_msgs_in_text, WSE_STAT_msgs_in_binary);
    uint64_t m0 = sum(before, WSE_STAT_msgs_in_text, WSE_STAT_msgs_in_binary);
    uint64_t b1 = sum(now, WSE_STAT_bytes_in_text, WSE_STAT_bytes_in_binary);
    uint64_t b0 = sum(before, WSE_STAT_bytes_in_text, WSE_STAT_bytes_in_binary);
    out[0] = m1 >= m0 && dt > 0 ? (double)(m1 - m0) / dt : 0;
    out[1] = b1 >= b0 && dt > 0 ? (double)(b1 - b0) / dt : 0;
}

/*
 * With --watch (watching) the rate columns are there from the first frame,
 * "-" until a process has two samples, so the table keeps its width.
 */
static void print_table(const struct wse_stats *st, const struct view *v,
                        const struct view *prev, double dt, bool watching)
{
    const struct wse_stats_header *h = &v->c.hdr;
    time_t started = (time_t)(h->start_time_ms / 1000);
    long up = (long)(time(NULL) - started);
    double rate[2] = {0, 0};

    printf("wsechod stats %s: master pid %d, up %ldh%02ldm%02lds, generation %u, %u %s\n",
           st->name, h->master_pid, up / 3600, up / 60 % 60, up % 60, h->generation, h->workers,
           wse_plural(h->workers, "worker", "workers"));
    printf("%-7s %-8s %-5s %-10s %5s %8s %8s %8s %8s %9s %6s%s\n", "worker", "pid", "gen",
           "state", "open", "accepted", "msgs in", "msgs out", "bytes in", "bytes out", "errors",
           watching ? " msgs/s bytes/s" : "");
    for (unsigned k = 0; k < st->nslots; k++) {
        const struct wse_stats_slot *s = &v->c.slots[k];
        bool ok = v->c.slot_ok[k];
        if (ok && s->state == WSE_SLOT_EMPTY)
            continue;
        char who[16] = "?", pid[16] = "?", gen[16] = "?";
        if (ok) {
            snprintf(who, sizeof who, "%d", s->worker);
            snprintf(pid, sizeof pid, "%d", s->pid);
            snprintf(gen, sizeof gen, "%u", s->generation);
        }
        /* A slot reused by another process since the last sample has no rate yet. */
        bool same = prev && ok && prev->c.slot_ok[k] && prev->c.slots[k].pid == s->pid;
        if (same)
            rates(s->c, prev->c.slots[k].c, dt, rate);
        table_row(who, pid, gen, ok ? state_name(s->state) : UNREADABLE, s->c,
                  !watching ? RATES_NONE : same ? RATES_SHOWN : RATES_UNKNOWN, rate);
    }
    if (prev)
        rates(v->c.totals, prev->c.totals, dt, rate);
    table_row("total", "", "", "", v->c.totals,
              !watching ? RATES_NONE : prev ? RATES_SHOWN : RATES_UNKNOWN, rate);
}

static void json_counters(const uint64_t *c)
{
    putchar('{');
    for (int i = 0; i < WSE_STAT_COUNT; i++)
        printf("%s\"%s\": %llu", i ? ", " : "", wse_stat_field[i], (unsigned long long)c[i]);
    putchar('}');
}

static void print_json(const struct wse_stats *st, const struct view *v)
{
    const struct wse_stats_header *h = &v->c.hdr;
    bool first = true;

    printf("{\"name\": \"%s\", \"header\": {\"version\": %u, \"master_pid\": %d, "
           "\"start_time_ms\": %llu, \"generation\": %u, \"workers\": %u, \"slots\": %u}, "
           "\"workers\": [",
           st->name, h->version, h->master_pid, (unsigned long long)h->start_time_ms,
           h->generation, h->workers, st->nslots);
    for (unsigned k = 0; k < st->nslots; k++) {
        const struct wse_stats_slot *s = &v->c.slots[k];
        bool ok = v->c.slot_ok[k];
        if (ok && s->state == WSE_SLOT_EMPTY)
            continue;
        printf("%s{\"slot\": %u, ", first ? "" : ", ", k);
        if (ok)
            printf("\"worker\": %d, \"pid\": %d, \"generation\": %u, \"state\": \"%s\", "
                   "\"heartbeat_ms\": %llu, ", s->worker, s->pid, s->generation,
                   state_name(s->state), (unsigned long long)s->heartbeat_ms);
        else
            printf("\"worker\": null, \"pid\": null, \"generation\": null, "
                   "\"state\": \"" UNREADABLE "\", \"heartbeat_ms\": null, ");
        printf("\"counters\": ");
        json_counters(s->c);
        putchar('}');
        first = false;
    }
    printf("], \"retired\": ");
    json_counters(h->retired);
    printf(", \"totals\": ");
    json_counters(v->c.totals);
    printf(", \"totals_consistent\": %s}\n", v->c.totals_ok ? "true" : "false");
}

/* The same text as the --metrics-listen endpoint's counters (prom.c). */
static int print_prometheus(const struct wse_stats *st, const struct view *v)
{
    struct wse_text t;

    wse_text_init(&t, wse_prom_max_size(st->nslots));
    wse_prom_write(&t, st->nslots, &v->c, NULL);
    bool ok = !t.overflow && fwrite(t.buf, 1, t.len, stdout) == t.len;
    if (t.overflow)
        fprintf(stderr, "wsechod stats: out of memory for the Prometheus text\n");
    wse_text_free(&t);
    return ok ? 0 : 1;
}

/*
 * Says on stderr what could not be read consistently (the output shows it
 * too); --watch says it once, not at every refresh.
 */
static void warn_unreadable(const struct wse_stats *st, const struct view *v,
                            const struct view *prev)
{
    for (unsigned k = 0; k < st->nslots; k++)
        if (!v->c.slot_ok[k] && (!prev || prev->c.slot_ok[k]))
            fprintf(stderr, "wsechod stats: slot %u of %s stays mid-update (a writer died in "
                    "it?): shown as " UNREADABLE "\n", k, st->name);
    if (!v->c.totals_ok && (!prev || prev->c.totals_ok))
        fprintf(stderr, "wsechod stats: the retired totals of %s stay mid-update: totals "
                "are as read, they may be off\n", st->name);
}

static int take(struct wse_stats *st, struct view *v, const struct view *prev, const char *name)
{
    char err[512];

    if (!st->reader && wse_stats_attach(st, name, err, sizeof err) < 0) {
        fprintf(stderr, "wsechod stats: %s\n", err);
        return -1;
    }
    if (!v->c.slots && wse_stats_copy_init(&v->c, st) < 0) {
        fprintf(stderr, "wsechod stats: out of memory\n");
        return -1;
    }
    if (wse_stats_snapshot(st, &v->c, err, sizeof err) < 0) {
        fprintf(stderr, "wsechod stats: %s\n", err);
        return -1;
    }
    warn_unreadable(st, v, prev);
    return 0;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Refreshes in place like top(1) until interrupted or the server goes away.
 * Into a pipe or a file there is no screen to clear: the frames follow one
 * another, a blank line between them.
 */
static int watch(const char *name, double interval)
{
    struct wse_stats st = {.fd = -1};
    struct view a = {0}, b = {0};
    struct view *cur = &a, *prev = NULL;
    double t_prev = 0;
    bool screen = isatty(STDOUT_FILENO);
    int status;

    for (;;) {
        if (take(&st, cur, prev, name) < 0) {
            status = 1;
            break;
        }
        double t = mono();
        if (screen)
            printf("\033[H\033[2J");
        else if (prev)
            putchar('\n');
        print_table(&st, cur, prev, t - t_prev, true);
        fflush(stdout);
        /* The segment outlives nothing: a stopped master unlinks it. */
        pid_t master = cur->c.hdr.master_pid;
        if (master <= 0 || (kill(master, 0) < 0 && errno == ESRCH)) {
            printf("master %d is gone\n", (int)master);
            status = 0;
            break;
        }
        prev = cur;
        cur = cur == &a ? &b : &a;
        t_prev = t;
        struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
    }
    wse_stats_copy_free(&a.c);
    wse_stats_copy_free(&b.c);
    wse_stats_close(&st);
    return status;
}

int wse_stats_cli(int argc, char *argv[])
{
    char name[WSE_STR_MAX + 2] = "";
    enum format fmt = FMT_TABLE;
    const char *fmt_option = NULL;      /* the --json or --prometheus given */
    double interval = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json") || !strcmp(a, "--prometheus")) {
            /* One output only: which one was meant is not for us to guess. */
            if (fmt_option && strcmp(fmt_option, a) != 0) {
                fprintf(stderr, "wsechod stats: %s and %s cannot be combined: choose one\n",
                        fmt_option, a);
                return 2;
            }
            fmt_option = a;
            fmt = !strcmp(a, "--json") ? FMT_JSON : FMT_PROM;
        } else if (!strcmp(a, "--watch")) {
            interval = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-') {
                char *end;
                interval = strtod(argv[++i], &end);
                if (*end || interval < 0.1 || interval > 3600) {
                    fprintf(stderr, "wsechod stats: --watch: expected seconds from 0.1 to 3600, got '%s'\n", argv[i]);
                    return 2;
                }
            }
        } else if (!strcmp(a, "--stats-name") && i + 1 < argc) {
            wse_stats_default_name(name, sizeof name, argv[++i], 0);
        } else if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            if (name_from_config(argv[++i], name, sizeof name) < 0)
                return 2;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "wsechod stats: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!name[0])
        wse_stats_default_name(name, sizeof name, NULL, 8000);
    if (interval > 0) {
        if (fmt_option) {
            fprintf(stderr, "wsechod stats: --watch and %s cannot be combined: --watch shows "
                    "the table only\n", fmt_option);
            return 2;
        }
        return watch(name, interval);
    }

    struct wse_stats st = {.fd = -1};
    struct view v = {0};
    int status = 1;
    if (take(&st, &v, NULL, name) == 0) {
        status = 0;
        if (fmt == FMT_JSON)
            print_json(&st, &v);
        else if (fmt == FMT_PROM)
            status = print_prometheus(&st, &v);
        else
            print_table(&st, &v, NULL, 0, false);
    }
    wse_stats_copy_free(&v.c);
    wse_stats_close(&st);
    return status;
}
