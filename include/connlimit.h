/*
 * connlimit.h - a worker's side of --max-connections-per-ip: a connection
 * counted against its client in the shared table (iplimit.h) at accept,
 * or after its PROXY header names the client; released when it ends; and
 * the 503 for one over the limit.
 *
 * The connection decides when; this module counts, logs (rate-limited)
 * and answers.  A connection admitted as WSE_IPLIMIT_COUNTED must be
 * released exactly once.
 */
#ifndef WSE_CONNLIMIT_H
#define WSE_CONNLIMIT_H

#include <stddef.h>

#include "access.h"
#include "iplimit.h"
#include "stats.h"
#include "transport.h"

struct wse_connlimit {
    struct wse_iplimit *table;  /* NULL: no table, nobody is limited */
    unsigned holder;            /* this process's holder in it */
    unsigned limit;             /* connections per client; 0: no limit */
    struct wse_stats_slot *st;
};

/* Seconds a refused client is told to wait: time for one of its
 * connections to end. */
#define WSE_CONNLIMIT_RETRY_AFTER "5"

/*
 * Counts a new connection of client p.  WSE_IPLIMIT_COUNTED: release it at
 * its end.  WSE_IPLIMIT_UNTRACKED: let in uncounted (no limit, or the
 * table is full: logged).  WSE_IPLIMIT_REFUSED: over the limit (logged and
 * counted in refused_per_ip); answer it with wse_connlimit_refuse().
 */
enum wse_iplimit_result wse_connlimit_admit(const struct wse_connlimit *cl,
                                            const struct wse_peer *p);

/* A counted connection of client p has ended. */
void wse_connlimit_release(const struct wse_connlimit *cl, const struct wse_peer *p);

/*
 * The refusal on fd, before any request is read: the 503, the FIN, and
 * what the client already sent read into scratch[0..cap) and dropped, so
 * the caller's close is a FIN and not a reset that could destroy the answer
 * in flight.  Never blocks.  The caller closes fd.
 */
void wse_connlimit_refuse(const struct wse_transport *tp, int fd, void *scratch, size_t cap);

#endif
