/*
 * worker.h - one worker process: a libev loop over the listening sockets of
 * its slot, serving connections (conn.h) until the master says stop or
 * disappears.
 *
 * A worker sees the master only through these arguments and the channel
 * (chan.h): READY when it serves; it obeys STOP, DRAIN, REOPEN, WATCH and
 * UNWATCH; EOF on the channel means the master is gone, and the worker
 * stops at once.
 */
#ifndef WSE_WORKER_H
#define WSE_WORKER_H

#include <sys/types.h>

#include "config.h"
#include "iplimit.h"
#include "stats.h"

struct wse_tls;
struct wse_tls_keys;

struct wse_worker_args {
    int slot;
    unsigned generation;
    pid_t master_pid;
    const struct wse_config *cfg;
    /* Every listening socket of this generation's addresses; the worker
     * watches those of its own slot, and those of a slot the master tells
     * it to adopt (WSE_CHAN_WATCH) while that slot's worker is down. */
    const int *listen_fds;
    const unsigned *listen_slots;   /* for each socket: the slot whose worker watches it */
    const bool *listen_tls;         /* ... and whether it is a --tls-listen socket */
    unsigned nlisten;
    int chan_fd;
    struct wse_stats_slot *stats;   /* this process's slot in the stats segment */
    struct wse_iplimit *iplimit;    /* connections per client address, all workers */
    unsigned holder;                /* this process's holder in it: its stats slot index */
    struct wse_tls *tls;            /* this generation's TLS contexts; NULL without TLS */
    struct wse_tls_keys *tls_keys;  /* the master's ticket keys (sealed read-only here) */
};

/*
 * The exit status of a worker that cannot start for a reason a respawn
 * cannot cure (a certificate that does not load, a --user it cannot switch
 * to; as nginx's exit 2); so does the metrics process.  It logs the reason once; the master
 * does not respawn it: at first start it stops with exit 1, during a reload
 * it rejects the new generation, later it leaves the slot to be served by
 * another worker (orphan adoption) until the next reload.  Running out of memory is not fatal (status 1: respawned).
 */
#define WSE_WORKER_EXIT_FATAL 2

/*
 * Runs in the freshly forked child, after the master closed what the child
 * must not keep.  Returns the process exit status.
 */
int wse_worker_run(const struct wse_worker_args *args);

/*
 * Ends the worker process with status, never returning.  In a sanitizer
 * build, first a leak check (a leak exits with the sanitizer's exit code).
 */
_Noreturn void wse_worker_exit(int status);

#endif
