/*
 * stats.h - the shared-memory statistics segment.
 *
 * The master creates one POSIX shm segment (shm_open + mmap, mode 0640): a
 * header, then one cache-line-aligned slot per worker slot.  Each worker
 * writes only its own slot (single writer: relaxed atomic stores, no locks,
 * no read-modify-write bus locking).  64-bit counters are naturally
 * aligned and stored whole; fields that must agree (pid, generation, state)
 * and the master's fold of an exited worker into the retired totals are
 * published under sequence counters (seqlocks).
 *
 * Readers trust nothing in it: anyone with the server's uid can rewrite or
 * truncate it under them.  They copy it with pread(2) into their own memory
 * (a shrunk segment is a short read, not SIGBUS; the kernel copies aligned
 * words whole, which test_stats checks against a writer at full speed), fix
 * its sizes once at attach, and retry a seqlock a bounded number of times:
 * a slot a writer left mid-update is reported as unreadable, never waited
 * for.
 *
 * Counters are listed once, below, and generate the slot layout, the JSON
 * names and the Prometheus names.
 */
#ifndef WSE_STATS_H
#define WSE_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define WSE_STATS_MAGIC   0x5753454348535431ULL   /* "WSECHST1" */
#define WSE_STATS_VERSION 1u
#define WSE_CACHE_LINE    64
/* Most slots a reader accepts (the master makes 2 x WSE_MAX_WORKERS). */
#define WSE_STATS_MAX_SLOTS 4096

/*
 * X(field, Prometheus name, Prometheus labels, type, help).  Counters that
 * share a Prometheus name (told apart by labels) stand together.  type:
 * counter (only grows; folded into the retired totals when its worker exits)
 * or gauge (a current value, not folded: zero once its worker is gone).
 */
#define WSE_STATS_COUNTERS(X) \
    X(conn_accepted, "connections_accepted_total", "", counter, "Connections accepted") \
    X(conn_open, "connections_open", "", gauge, "Connections open now") \
    X(close_client, "connections_closed_total", "cause=\"client\"", counter, "Connections closed, by cause") \
    X(close_server, "connections_closed_total", "cause=\"server\"", counter, "") \
    X(close_error, "connections_closed_total", "cause=\"protocol_error\"", counter, "") \
    X(close_timeout, "connections_closed_total", "cause=\"timeout\"", counter, "") \
    X(close_reset, "connections_closed_total", "cause=\"reset\"", counter, "") \
    X(handshakes, "handshakes_completed_total", "", counter, "WebSocket handshakes completed (101)") \
    X(refused_400, "handshakes_refused_total", "status=\"400\"", counter, "HTTP requests refused, by status") \
    X(refused_403, "handshakes_refused_total", "status=\"403\"", counter, "") \
    X(refused_404, "handshakes_refused_total", "status=\"404\"", counter, "") \
    X(refused_405, "handshakes_refused_total", "status=\"405\"", counter, "") \
    X(refused_426, "handshakes_refused_total", "status=\"426\"", counter, "") \
    X(refused_431, "handshakes_refused_total", "status=\"431\"", counter, "") \
    X(refused_503, "handshakes_refused_total", "status=\"503\"", counter, "") \
    X(refused_per_ip, "connections_refused_per_ip_total", "", counter, "Connections refused by max-connections-per-ip (also counted as 503)") \
    X(per_ip_untracked, "connections_per_ip_untracked_total", "", counter, "Connections let in uncounted: the per-address table was full") \
    X(http_other, "http_other_responses_total", "", counter, "Other HTTP answers (healthz)") \
    X(msgs_in_text, "messages_received_total", "type=\"text\"", counter, "Messages received, by type") \
    X(msgs_in_binary, "messages_received_total", "type=\"binary\"", counter, "") \
    X(msgs_out_text, "messages_sent_total", "type=\"text\"", counter, "Messages echoed, by type") \
    X(msgs_out_binary, "messages_sent_total", "type=\"binary\"", counter, "") \
    X(bytes_in_text, "bytes_received_total", "type=\"text\"", counter, "Payload bytes received, by type") \
    X(bytes_in_binary, "bytes_received_total", "type=\"binary\"", counter, "") \
    X(bytes_out_text, "bytes_sent_total", "type=\"text\"", counter, "Payload bytes echoed, by type") \
    X(bytes_out_binary, "bytes_sent_total", "type=\"binary\"", counter, "") \
    X(frames_in, "frames_received_total", "", counter, "Frames received, data and control") \
    X(frames_out, "frames_sent_total", "", counter, "Frames sent, data and control") \
    X(pings_in, "pings_received_total", "", counter, "Pings received") \
    X(pongs_in, "pongs_received_total", "", counter, "Pongs received") \
    X(pings_out, "pings_sent_total", "", counter, "Pings sent to quiet peers") \
    X(err_1002, "protocol_errors_total", "code=\"1002\"", counter, "Connections failed, by close code") \
    X(err_1007, "protocol_errors_total", "code=\"1007\"", counter, "") \
    X(err_1009, "protocol_errors_total", "code=\"1009\"", counter, "") \
    X(backpressure, "backpressure_pauses_total", "", counter, "Times reading a peer paused for its unsent output") \
    X(tls_hs_12, "tls_handshakes_total", "version=\"1.2\"", counter, "TLS handshakes completed, by version") \
    X(tls_hs_13, "tls_handshakes_total", "version=\"1.3\"", counter, "") \
    X(tls_resumed, "tls_resumed_total", "", counter, "TLS handshakes that resumed a session (ticket)") \
    X(tls_fail_version, "tls_handshake_failures_total", "reason=\"version\"", counter, "TLS handshakes failed, by reason") \
    X(tls_fail_http, "tls_handshake_failures_total", "reason=\"http\"", counter, "") \
    X(tls_fail_timeout, "tls_handshake_failures_total", "reason=\"timeout\"", counter, "") \
    X(tls_fail_closed, "tls_handshake_failures_total", "reason=\"closed\"", counter, "") \
    X(tls_fail_other, "tls_handshake_failures_total", "reason=\"other\"", counter, "") \
    X(bytes_buffered, "bytes_buffered", "", gauge, "Output bytes waiting for slow peers")

enum wse_stat_index {
#define WSE_X_INDEX(field, name, labels, type, help) WSE_STAT_##field,
    WSE_STATS_COUNTERS(WSE_X_INDEX)
#undef WSE_X_INDEX
    WSE_STAT_COUNT
};

enum wse_slot_state {
    WSE_SLOT_EMPTY = 0,
    WSE_SLOT_STARTING,
    WSE_SLOT_RUNNING,
    WSE_SLOT_DRAINING,
    WSE_SLOT_EXITED,
};

struct wse_stats_slot {
    uint32_t seq;               /* odd while pid/worker/generation/state change */
    uint32_t state;             /* enum wse_slot_state */
    int32_t pid;
    int32_t worker;             /* worker slot index (a stats slot is reused) */
    uint32_t generation;
    uint32_t pad;
    uint64_t heartbeat_ms;      /* CLOCK_REALTIME ms of the worker's last loop tick */
    uint64_t c[WSE_STAT_COUNT];
} __attribute__((aligned(WSE_CACHE_LINE)));

struct wse_stats_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint32_t slot_size;
    uint32_t counter_count;
    uint32_t nslots;            /* slots after the header; unused ones are EMPTY.  A
                                   worker slot may have an old and a new process at
                                   once (reload), so there are more stats slots. */
    uint32_t workers;           /* configured worker count */
    int32_t master_pid;
    uint32_t generation;        /* bumped on every reload */
    uint64_t start_time_ms;     /* CLOCK_REALTIME ms */
    uint32_t retired_seq;       /* odd while a master folds a slot into retired (a lock:
                                   during a live upgrade two masters share the segment) */
    uint32_t upgrades_failed;   /* live upgrades that failed (wsechod -s upgrade waits on it) */
    uint64_t retired[WSE_STAT_COUNT];   /* totals of exited workers */
} __attribute__((aligned(WSE_CACHE_LINE)));

struct wse_stats {
    struct wse_stats_header *hdr;   /* the creator's mapping; NULL for a reader */
    struct wse_stats_slot *slots;
    size_t size;                /* header and nslots slots */
    unsigned nslots;            /* fixed at create/attach, never re-read from the segment */
    char name[256];
    bool owner;                 /* this process's master owns it: unlink at close */
    bool reader;                /* attached: fd and image are ours */
    int fd;                     /* reader: the segment, read with pread; master: kept to hand
                                   it to a new binary (live upgrade) */
    unsigned char *image[3];    /* reader: successive copies of the segment (size bytes) */
};

/*
 * Reader: a private copy of the segment taken by wse_stats_snapshot.  Every
 * array has the attach-time nslots entries.
 */
struct wse_stats_copy {
    struct wse_stats_header hdr;    /* the header as read (retired: see totals_ok) */
    struct wse_stats_slot *slots;   /* identity fields valid where slot_ok */
    bool *slot_ok;                  /* pid/worker/generation/state read consistently */
    bool totals_ok;                 /* retired read while no fold was under way */
    uint64_t totals[WSE_STAT_COUNT];    /* retired + every slot */
};

/* Counter names, types and help, indexed by enum wse_stat_index. */
extern const char *const wse_stat_field[WSE_STAT_COUNT];
extern const char *const wse_stat_prom[WSE_STAT_COUNT];
extern const char *const wse_stat_labels[WSE_STAT_COUNT];
extern const char *const wse_stat_help[WSE_STAT_COUNT];
extern const bool wse_stat_is_gauge[WSE_STAT_COUNT];

/* "/wsechod.8000" from a port when no name is configured; copies name otherwise. */
void wse_stats_default_name(char *out, size_t n, const char *configured, unsigned port);

/*
 * Creates the segment for nslots slots.  An existing one is replaced only
 * if it is a regular file of this process's user, writable by it only,
 * whose master is gone; one whose master runs, or anything else (a FIFO, a
 * symlink, another user's file), is an error with a clear message.  Returns 0, or -1 with a
 * message in err.
 */
int wse_stats_create(struct wse_stats *st, const char *name, unsigned nslots, unsigned workers,
                     char *err, size_t errlen);

/*
 * Is pid the running master of the segment open on fd?  Every one must
 * hold: pid >= 2; fd is a regular file whose header (magic) names pid as
 * master_pid; the process runs as the file's owner; it has this very file
 * (device, inode) mapped; its executable is wsechod.  A recycled pid, or a
 * process merely named wsechod, fails the mapping test.
 */
bool wse_stats_is_master(int fd, pid_t pid);

/*
 * Is pid the running master of the segment called name (regular file,
 * writable by its owner only)?  0, or -1 with the reason in err.
 */
int wse_stats_check_master(const char *name, pid_t pid, char *err, size_t errlen);

/*
 * Opens an existing segment for reading.  It must be a regular file (opened
 * without following a symlink or blocking on a FIFO), writable by its owner
 * only, owned by root, by the reader's user or by the user of the live
 * wsechod master it names.  Checks magic, layout version, sizes and that the
 * file holds its nslots slots.
 */
int wse_stats_attach(struct wse_stats *st, const char *name, char *err, size_t errlen);

/*
 * A new binary during a live upgrade: maps the segment its predecessor
 * handed over on fd (read-write, not owner: it unlinks nothing until
 * wse_stats_take_over).  The layout must be this build's, with nslots
 * slots.  0, or -1 with the reason in err.
 */
int wse_stats_adopt(struct wse_stats *st, int fd, const char *name, unsigned nslots, char *err,
                    size_t errlen);

/* The upgrade is done: this process is the segment's master and owner. */
void wse_stats_take_over(struct wse_stats *st);

/* Master: counts a failed live upgrade. */
void wse_stats_upgrade_failed(struct wse_stats *st);

/* Reader: upgrades_failed of the segment called name.  0, or -1. */
int wse_stats_read_upgrades_failed(const char *name, uint32_t *out);

/* Unmaps or closes; the creator also unlinks the name. */
void wse_stats_close(struct wse_stats *st);

/* Master: publishes pid, worker index, generation and state of a slot (seqlock). */
void wse_stats_slot_set(struct wse_stats_slot *s, pid_t pid, int worker, unsigned generation,
                        enum wse_slot_state state);

/*
 * Master: claims the first slot nobody uses (EMPTY -> STARTING, atomically:
 * two masters share the segment during a live upgrade), or -1.
 */
int wse_stats_free_slot(const struct wse_stats *st);

/* Worker: proof of life, once a second. */
void wse_stats_heartbeat(struct wse_stats_slot *s);

/* Worker: state change of its own slot. */
void wse_stats_slot_state(struct wse_stats_slot *s, enum wse_slot_state state);

/* Master: after a worker exited, folds its counters into retired and zeroes the slot. */
void wse_stats_retire(struct wse_stats *st, unsigned slot);

/* Reader: arrays for st->nslots slots.  0, or -1 out of memory. */
int wse_stats_copy_init(struct wse_stats_copy *c, const struct wse_stats *st);
void wse_stats_copy_free(struct wse_stats_copy *c);

/*
 * Reader: per-slot counters and the totals (retired + every slot), taken
 * under the retired seqlock so that totals never go backwards; identity
 * fields under each slot's seqlock.  A seqlock still held after a bounded
 * number of tries (about 0.1 s) is given up on: slot_ok or totals_ok is
 * false, the values are those last read.  Returns 0, or -1 with a message
 * in err when the segment shrank or changed its layout.
 */
int wse_stats_snapshot(struct wse_stats *st, struct wse_stats_copy *out, char *err,
                       size_t errlen);

#ifndef WSE_NO_STATS
/* Single-writer increment: no lock prefix, readers still see whole values. */
static inline void wse_stat_add(struct wse_stats_slot *s, enum wse_stat_index i, uint64_t n)
{
    __atomic_store_n(&s->c[i], __atomic_load_n(&s->c[i], __ATOMIC_RELAXED) + n,
                     __ATOMIC_RELAXED);
}

static inline void wse_stat_sub(struct wse_stats_slot *s, enum wse_stat_index i, uint64_t n)
{
    __atomic_store_n(&s->c[i], __atomic_load_n(&s->c[i], __ATOMIC_RELAXED) - n,
                     __ATOMIC_RELAXED);
}
#else
/* make STATS=0: counting compiled out, to measure what it costs (bench/). */
static inline void wse_stat_add(struct wse_stats_slot *s, enum wse_stat_index i, uint64_t n)
{
    (void)s, (void)i, (void)n;
}

static inline void wse_stat_sub(struct wse_stats_slot *s, enum wse_stat_index i, uint64_t n)
{
    (void)s, (void)i, (void)n;
}
#endif

#endif
