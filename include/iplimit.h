/*
 * iplimit.h - connections per client address, counted across every worker
 * process of the server (--max-connections-per-ip).
 *
 * The master creates one table in a MAP_SHARED | MAP_ANONYMOUS mapping
 * before it forks anything, so every worker of every generation shares it
 * and a reload keeps the counts of old, draining workers.  It has no name:
 * only the server's own processes reach it.
 *
 * The table holds records (client key, holder, count): how many connections
 * of that client the process holding stats slot `holder` has open.  A
 * client's total is the sum of its records, so when a worker dies, however
 * it died, the master deletes that holder's records and the counts are
 * exact again: nothing stale can lock a client out.
 *
 * Keys: an IPv4 address counts as itself (also when it reaches an IPv6
 * listener as ::ffff:a.b.c.d); an IPv6 address counts by its /64, the
 * block one site gets, since one host can use a whole /64.
 *
 * Locking: one process-shared robust mutex, taken only at a connection's
 * open and close (never per message) for a probe of a few records.  A
 * process killed while holding it leaves an interrupted change that the
 * next locker repairs (EOWNERDEAD): every record in the array is either
 * whole or unused at every instant, so the repair rebuilds the index from
 * them.  Records are placed by SipHash with a key drawn at creation, so
 * clients cannot choose addresses that collide into long probe runs.
 *
 * Bounded memory: WSE_IPLIMIT_RECORDS records at most (about 3 MiB, pages
 * touched as used).  When they are all in use, a new client is let in
 * uncounted (WSE_IPLIMIT_UNTRACKED), clients already in the table stay
 * limited: a full table means that many distinct clients are connected,
 * which the per-address limit is not the defence against.
 */
#ifndef WSE_IPLIMIT_H
#define WSE_IPLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Most (client, holder) records in use at once: at most 3/4 of the slots. */
#define WSE_IPLIMIT_SLOTS   (1u << 17)
#define WSE_IPLIMIT_RECORDS (WSE_IPLIMIT_SLOTS / 4 * 3)

struct wse_iplimit_shared;

/* A process's handle: the sizes are its own, never re-read from the mapping. */
struct wse_iplimit {
    struct wse_iplimit_shared *sh;
    size_t size;                /* bytes mapped */
    unsigned nslots;            /* WSE_IPLIMIT_SLOTS, or fewer for tests */
    unsigned max_records;       /* 3/4 of nslots */
    unsigned nholders;          /* holders are 0 .. nholders-1 */
};

/* A client as counted: 16 bytes, IPv4 as ::ffff:a.b.c.d, IPv6 cut to /64. */
struct wse_iplimit_key {
    uint8_t b[16];
};

enum wse_iplimit_result {
    WSE_IPLIMIT_COUNTED = 0,    /* admitted and counted: release it at close */
    WSE_IPLIMIT_REFUSED,        /* the client has limit connections already */
    WSE_IPLIMIT_UNTRACKED,      /* admitted uncounted: the table is full (or broken) */
};

/*
 * Maps a table for nholders holders with nslots slots (a power of two, at
 * least 8; 0 means WSE_IPLIMIT_SLOTS).  0, or -1 with errno.
 */
int wse_iplimit_create(struct wse_iplimit *t, unsigned nslots, unsigned nholders);
void wse_iplimit_destroy(struct wse_iplimit *t);

/* The key of an address: family AF_INET (4 bytes) or AF_INET6 (16 bytes). */
void wse_iplimit_key(struct wse_iplimit_key *k, int family, const uint8_t *addr);

/*
 * A new connection of client k held by holder: counted if the client has
 * fewer than limit connections in the whole table, else refused.  limit
 * must be at least 1.  *total (if not NULL) gets the client's count
 * before this connection.
 */
enum wse_iplimit_result wse_iplimit_acquire(struct wse_iplimit *t, const struct wse_iplimit_key *k,
                                            unsigned holder, unsigned limit, unsigned *total);

/* A counted connection of client k held by holder has closed. */
void wse_iplimit_release(struct wse_iplimit *t, const struct wse_iplimit_key *k, unsigned holder);

/* The master, after holder's process is gone: its records are deleted.
 * Returns how many connections they counted. */
unsigned long wse_iplimit_forget(struct wse_iplimit *t, unsigned holder);

/* Connections of client k counted now, all holders together. */
unsigned wse_iplimit_count(struct wse_iplimit *t, const struct wse_iplimit_key *k);

/* Records in use (tests, logs). */
unsigned wse_iplimit_records(struct wse_iplimit *t);

/*
 * Tests only: takes the lock and returns holding it, as a process killed
 * inside the critical section would (then the caller _exits).
 */
int wse_iplimit_test_hold_lock(struct wse_iplimit *t);

#endif
