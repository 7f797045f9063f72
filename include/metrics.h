/*
 * metrics.h - the --metrics-listen process: GET /metrics (Prometheus text)
 * on its own address, from the stats segment, read-only.
 *
 * Why a process of its own (forked by the master, like a worker, and
 * respawned by it): the master may run as root and must never stall, so
 * it holds no HTTP parser; a worker may be busy, stopped or dying, so none
 * of them answers either.  This process only reads the segment (pread into
 * private copies, stats.h), so whatever the workers do, a scrape is
 * answered.  The master binds the socket (a privileged port works) and
 * hands it over.
 *
 * Bounded: at most WSE_METRICS_MAX_CONNS connections (one more is answered
 * 503 and closed), WSE_METRICS_TIMEOUT seconds per connection from accept
 * to close, a request head of at most WSE_METRICS_HEAD_MAX bytes, one
 * request per connection (Connection: close), a response no larger than
 * the segment's slot count allows (prom.h).
 */
#ifndef WSE_METRICS_H
#define WSE_METRICS_H

#include <sys/types.h>

#include "priv.h"

#define WSE_METRICS_MAX_CONNS 16
#define WSE_METRICS_TIMEOUT 5.0
#define WSE_METRICS_HEAD_MAX 4096

struct wse_metrics_args {
    int listen_fd;              /* bound and listening, non-blocking */
    const char *listen_text;    /* its address as configured, for the log */
    const char *stats_name;     /* the segment to read */
    pid_t master_pid;
    const struct wse_cred *cred;    /* run as this (--user) once the segment is open */
    const char *user;               /* ... as configured, for the log */
};

/* Runs in the freshly forked child; returns the exit status (SIGTERM: 0). */
int wse_metrics_run(const struct wse_metrics_args *args);

#endif
