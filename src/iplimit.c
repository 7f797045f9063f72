/*
 * iplimit.c - the shared table of connections per client address; see
 * iplimit.h for what it counts and why it survives a worker's death.
 *
 * Layout: a header (the robust mutex, the hash key, the records in use)
 * and an open-addressing array of records with linear probing.  Deletion
 * shifts later records of the run back (no tombstones, so runs stay short
 * however long the server runs).  Every write that a kill -9 may interrupt
 * is ordered so that a record marked used is always whole: a record is
 * filled before `used` is set, and a record moved back is written to its
 * new place and marked used before its old place is unmarked.  The worst
 * an interrupted change leaves is an identical copy of one record and a run
 * with a gap; the repair rebuilds the index from the whole records,
 * dropping copies.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "iplimit.h"

struct rec {
    uint8_t key[16];
    uint32_t count;             /* connections of this client this holder has open */
    uint16_t holder;
    uint8_t used;               /* set last, cleared first: see the top of this file */
    uint8_t pad;
};

struct wse_iplimit_shared {
    pthread_mutex_t lock;
    uint64_t k0, k1;            /* SipHash key */
    uint32_t used;              /* records in use (recomputed by a repair) */
    uint32_t repairs;           /* times a dead locker's change was repaired */
    struct rec recs[];
};

/* ---- SipHash-2-4 of a 16-byte key ---------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                \
    do {                                                                        \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);               \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                  \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                  \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);               \
    } while (0)

static uint64_t siphash16(uint64_t k0, uint64_t k1, const uint8_t key[16])
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m[2], b = (uint64_t)16 << 56;

    memcpy(m, key, sizeof m);
    for (int i = 0; i < 2; i++) {
        v3 ^= m[i];
        SIPROUND;
        SIPROUND;
        v0 ^= m[i];
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- records -------------------------------------------------------------- */

static unsigned home_of(const struct wse_iplimit *t, const uint8_t key[16])
{
    return (unsigned)(siphash16(t->sh->k0, t->sh->k1, key) & (t->nslots - 1));
}

static bool is_used(const struct rec *r)
{
    return __atomic_load_n(&r->used, __ATOMIC_RELAXED) != 0;
}

/* Release: the fields written before are in place when `used` is. */
static void mark(struct rec *r, bool used)
{
    __atomic_store_n(&r->used, used ? 1 : 0, __ATOMIC_RELEASE);
}

static void fill(struct rec *r, const uint8_t key[16], unsigned holder, uint32_t count)
{
    memcpy(r->key, key, 16);
    r->holder = (uint16_t)holder;
    r->count = count;
    mark(r, true);
}

/* Is slot i cyclically within (from, to]? */
static bool between(unsigned from, unsigned i, unsigned to, unsigned mask)
{
    return ((i - from - 1) & mask) < ((to - from) & mask);
}

/* Deletes the record at i, moving later records of its run back. */
static void delete_at(struct wse_iplimit *t, unsigned i)
{
    unsigned mask = t->nslots - 1, hole = i;
    struct rec *recs = t->sh->recs;

    mark(&recs[i], false);
    t->sh->used--;
    for (unsigned j = (i + 1) & mask, n = 0; n < t->nslots && is_used(&recs[j]);
         j = (j + 1) & mask, n++) {
        unsigned home = home_of(t, recs[j].key);
        if (between(hole, home, j, mask))
            continue;       /* reachable from its home without crossing the hole */
        fill(&recs[hole], recs[j].key, recs[j].holder, recs[j].count);
        mark(&recs[j], false);
        hole = j;
    }
}

/* The slot of (key, holder) from its home, or the first unused one (-1: none). */
static long find(struct wse_iplimit *t, const uint8_t key[16], unsigned holder, bool *found)
{
    unsigned mask = t->nslots - 1, i = home_of(t, key);

    for (unsigned n = 0; n < t->nslots; n++, i = (i + 1) & mask) {
        const struct rec *r = &t->sh->recs[i];
        if (!is_used(r)) {
            *found = false;
            return i;
        }
        if (r->holder == holder && memcmp(r->key, key, 16) == 0) {
            *found = true;
            return i;
        }
    }
    *found = false;
    return -1;
}

/* The client's connections, all holders: its records lie in its run. */
static unsigned long total_of(struct wse_iplimit *t, const uint8_t key[16])
{
    unsigned mask = t->nslots - 1, i = home_of(t, key);
    unsigned long total = 0;

    for (unsigned n = 0; n < t->nslots && is_used(&t->sh->recs[i]); n++, i = (i + 1) & mask)
        if (memcmp(t->sh->recs[i].key, key, 16) == 0)
            total += t->sh->recs[i].count;
    return total;
}

/*
 * A process died holding the lock: rebuild the index from the whole
 * records, dropping identical copies (a record being moved) and records of
 * no holder.  Without memory for that, everything is forgotten: clients
 * are undercounted until their connections close, never locked out.
 */
static void repair(struct wse_iplimit *t)
{
    struct rec *recs = t->sh->recs;
    struct rec *copy = malloc((size_t)t->nslots * sizeof *copy);
    unsigned n = 0;

    for (unsigned i = 0; copy && i < t->nslots; i++)
        if (is_used(&recs[i]) && recs[i].count && recs[i].holder < t->nholders)
            copy[n++] = recs[i];
    for (unsigned i = 0; i < t->nslots; i++)
        mark(&recs[i], false);
    t->sh->used = 0;
    for (unsigned i = 0; i < n && t->sh->used < t->max_records; i++) {
        bool found;
        long at = find(t, copy[i].key, copy[i].holder, &found);
        if (at >= 0 && !found) {
            fill(&recs[at], copy[i].key, copy[i].holder, copy[i].count);
            t->sh->used++;
        }
    }
    t->sh->repairs++;
    free(copy);
}

static int lock(struct wse_iplimit *t)
{
    int rc = pthread_mutex_lock(&t->sh->lock);

    if (rc == EOWNERDEAD) {
        repair(t);
        rc = pthread_mutex_consistent(&t->sh->lock);
    }
    return rc;
}

static void unlock(struct wse_iplimit *t)
{
    pthread_mutex_unlock(&t->sh->lock);
}

/* ---- public ----------------------------------------------------------------- */

static void random_key(uint64_t k[2])
{
    uint8_t *p = (uint8_t *)k;
    size_t got = 0;

    while (got < 2 * sizeof *k) {
        ssize_t n = getrandom(p + got, 2 * sizeof *k - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < 2 * sizeof *k) {
        /* No entropy source: still unpredictable enough to vary per start. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
        k[1] ^= (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fULL ^ (uint64_t)(uintptr_t)&ts;
    }
}

int wse_iplimit_create(struct wse_iplimit *t, unsigned nslots, unsigned nholders)
{
    pthread_mutexattr_t attr;

    if (!nslots)
        nslots = WSE_IPLIMIT_SLOTS;
    if (nslots < 8 || (nslots & (nslots - 1)) || nslots > WSE_IPLIMIT_SLOTS || !nholders ||
        nholders > UINT16_MAX) {
        errno = EINVAL;
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->nslots = nslots;
    t->max_records = nslots / 4 * 3;
    t->nholders = nholders;
    t->size = sizeof *t->sh + (size_t)nslots * sizeof(struct rec);
    /* Pages are touched as records use them; NORESERVE: no commit charge for the rest. */
    void *p = mmap(NULL, t->size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    t->sh = p;
    int rc = pthread_mutexattr_init(&attr);
    if (!rc)
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(&t->sh->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc) {
        munmap(p, t->size);
        t->sh = NULL;
        errno = rc;
        return -1;
    }
    uint64_t k[2] = {0, 0};
    random_key(k);
    t->sh->k0 = k[0];
    t->sh->k1 = k[1];
    return 0;
}

void wse_iplimit_destroy(struct wse_iplimit *t)
{
    if (t->sh)
        munmap(t->sh, t->size);
    t->sh = NULL;
}

void wse_iplimit_key(struct wse_iplimit_key *k, int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memset(k, 0, sizeof *k);
    if (family == AF_INET6 && memcmp(addr, mapped, sizeof mapped) != 0) {
        memcpy(k->b, addr, 8);      /* the /64 */
        return;
    }
    /* IPv4, or IPv4 reaching an IPv6 socket (::ffff:a.b.c.d): the address. */
    memcpy(k->b, mapped, sizeof mapped);
    memcpy(k->b + 12, family == AF_INET6 ? addr + 12 : addr, 4);
}

enum wse_iplimit_result wse_iplimit_acquire(struct wse_iplimit *t, const struct wse_iplimit_key *k,
                                            unsigned holder, unsigned limit, unsigned *total)
{
    enum wse_iplimit_result res = WSE_IPLIMIT_UNTRACKED;

    if (total)
        *total = 0;
    if (!t->sh || holder >= t->nholders || lock(t) != 0)
        return WSE_IPLIMIT_UNTRACKED;
    unsigned long have = total_of(t, k->b);
    if (total)
        *total = have > UINT32_MAX ? UINT32_MAX : (unsigned)have;
    if (have >= limit) {
        res = WSE_IPLIMIT_REFUSED;
    } else {
        bool found;
        long at = find(t, k->b, holder, &found);
        if (found && t->sh->recs[at].count < UINT32_MAX) {
            t->sh->recs[at].count++;
            res = WSE_IPLIMIT_COUNTED;
        } else if (at >= 0 && !found && t->sh->used < t->max_records) {
            fill(&t->sh->recs[at], k->b, holder, 1);
            t->sh->used++;
            res = WSE_IPLIMIT_COUNTED;
        }
    }
    unlock(t);
    return res;
}

void wse_iplimit_release(struct wse_iplimit *t, const struct wse_iplimit_key *k, unsigned holder)
{
    bool found;

    if (!t->sh || holder >= t->nholders || lock(t) != 0)
        return;
    long at = find(t, k->b, holder, &found);
    /* Not found: forgotten by a repair that had no memory.  Nothing to undo. */
    if (found && --t->sh->recs[at].count == 0)
        delete_at(t, (unsigned)at);
    unlock(t);
}

unsigned long wse_iplimit_forget(struct wse_iplimit *t, unsigned holder)
{
    unsigned long dropped = 0;

    if (!t->sh || lock(t) != 0)
        return 0;
    /* With the limit off the table stays empty: no scan touching its pages. */
    if (!t->sh->used) {
        unlock(t);
        return 0;
    }
    /* A deletion may move a later record into i: look at i again.  Every
     * deletion uses up a record, so this ends. */
    for (unsigned i = 0; i < t->nslots;) {
        struct rec *r = &t->sh->recs[i];
        if (is_used(r) && r->holder == holder) {
            dropped += r->count;
            delete_at(t, i);
        } else {
            i++;
        }
    }
    unlock(t);
    return dropped;
}

unsigned wse_iplimit_count(struct wse_iplimit *t, const struct wse_iplimit_key *k)
{
    if (!t->sh || lock(t) != 0)
        return 0;
    unsigned long n = total_of(t, k->b);
    unlock(t);
    return n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
}

unsigned wse_iplimit_records(struct wse_iplimit *t)
{
    if (!t->sh || lock(t) != 0)
        return 0;
    unsigned n = t->sh->used;
    unlock(t);
    return n;
}

int wse_iplimit_test_hold_lock(struct wse_iplimit *t)
{
    return lock(t);
}
