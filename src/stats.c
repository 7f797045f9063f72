/*
 * stats.c - the shared-memory statistics segment: create, attach, seqlocked
 * identity fields, folding exited workers into the retired totals.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

#define WSE_X_FIELD(field, name, labels, type, help) #field,
#define WSE_X_PROM(field, name, labels, type, help) "wsechod_" name,
#define WSE_X_LABELS(field, name, labels, type, help) labels,
#define WSE_X_HELP(field, name, labels, type, help) help,
#define WSE_X_GAUGE(field, name, labels, type, help) WSE_IS_##type,
#define WSE_IS_counter false
#define WSE_IS_gauge true

const char *const wse_stat_field[WSE_STAT_COUNT] = {WSE_STATS_COUNTERS(WSE_X_FIELD)};
const char *const wse_stat_prom[WSE_STAT_COUNT] = {WSE_STATS_COUNTERS(WSE_X_PROM)};
const char *const wse_stat_labels[WSE_STAT_COUNT] = {WSE_STATS_COUNTERS(WSE_X_LABELS)};
const char *const wse_stat_help[WSE_STAT_COUNT] = {WSE_STATS_COUNTERS(WSE_X_HELP)};
const bool wse_stat_is_gauge[WSE_STAT_COUNT] = {WSE_STATS_COUNTERS(WSE_X_GAUGE)};

_Static_assert(sizeof(struct wse_stats_slot) % WSE_CACHE_LINE == 0, "slots share no cache line");
_Static_assert(sizeof(struct wse_stats_header) % WSE_CACHE_LINE == 0, "slots start on a line");

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void wse_stats_default_name(char *out, size_t n, const char *configured, unsigned port)
{
    if (configured && configured[0])
        snprintf(out, n, "%s%s", configured[0] == '/' ? "" : "/", configured);
    else
        snprintf(out, n, "/wsechod.%u", port);
}

/*
 * A pid is a live wsechod when it exists and its command line names
 * wsechod (a recycled pid belongs to something else).  The command line,
 * not /proc/PID/comm: under valgrind or a wrapper comm names the wrapper.
 */
static bool master_alive(pid_t pid)
{
    char path[64], cmd[4096];

    if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
        return false;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;    /* exists, and we cannot tell: assume it is ours */
    size_t n = fread(cmd, 1, sizeof cmd, f);
    fclose(f);
    return memmem(cmd, n, "wsechod", 7) != NULL;
}

/* Who holds an existing segment?  0 if nobody alive does. */
static pid_t segment_owner(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    struct stat sb;
    pid_t pid = 0;

    if (fd < 0)
        return 0;
    if (fstat(fd, &sb) == 0 && (size_t)sb.st_size >= sizeof(struct wse_stats_header)) {
        const struct wse_stats_header *h =
            mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
        if (h != MAP_FAILED) {
            if (h->magic == WSE_STATS_MAGIC && master_alive(h->master_pid))
                pid = h->master_pid;
            munmap((void *)h, sizeof *h);
        }
    }
    close(fd);
    return pid;
}

static int open_exclusive(const char *name, char *err, size_t errlen)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

    if (fd >= 0 || errno != EEXIST)
        goto out;
    pid_t owner = segment_owner(name);
    if (owner) {
        snprintf(err, errlen, "stats segment %s belongs to wsechod pid %d, which is running "
                 "(stop it, or give this one another --stats-name)", name, (int)owner);
        return -1;
    }
    /* Left behind by a master that died: replace it. */
    shm_unlink(name);
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
out:
    if (fd < 0)
        snprintf(err, errlen, "shm_open(%s) failed: %s", name, strerror(errno));
    return fd;
}

int wse_stats_create(struct wse_stats *st, const char *name, unsigned nslots, unsigned workers,
                     char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->fd = -1;
    snprintf(st->name, sizeof st->name, "%s", name);
    if (nslots > WSE_STATS_MAX_SLOTS) {
        snprintf(err, errlen, "stats segment %s: %u slots, readers accept at most %u", name,
                 nslots, WSE_STATS_MAX_SLOTS);
        return -1;
    }
    st->nslots = nslots;
    st->size = sizeof(struct wse_stats_header) + (size_t)nslots * sizeof(struct wse_stats_slot);

    int fd = open_exclusive(st->name, err, errlen);
    if (fd < 0)
        return -1;
    /* The creator's umask must not widen or narrow the documented 0640. */
    fchmod(fd, 0640);
    if (ftruncate(fd, (off_t)st->size) < 0) {
        snprintf(err, errlen, "ftruncate(%s) failed: %s", st->name, strerror(errno));
        close(fd);
        shm_unlink(st->name);
        return -1;
    }
    void *p = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s) failed: %s", st->name, strerror(errno));
        shm_unlink(st->name);
        return -1;
    }
    st->hdr = p;
    st->slots = (struct wse_stats_slot *)((char *)p + sizeof(struct wse_stats_header));
    st->owner = true;
    st->hdr->version = WSE_STATS_VERSION;
    st->hdr->header_size = sizeof(struct wse_stats_header);
    st->hdr->slot_size = sizeof(struct wse_stats_slot);
    st->hdr->counter_count = WSE_STAT_COUNT;
    st->hdr->nslots = nslots;
    st->hdr->workers = workers;
    st->hdr->master_pid = (int32_t)getpid();
    st->hdr->generation = 1;
    st->hdr->start_time_ms = now_ms();
    /* Readers trust nothing before the magic appears. */
    __atomic_store_n(&st->hdr->magic, WSE_STATS_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

static int attach_fd(struct wse_stats *st, int fd, size_t file_size, char *err, size_t errlen);

int wse_stats_attach(struct wse_stats *st, const char *name, char *err, size_t errlen)
{
    struct stat sb;

    memset(st, 0, sizeof *st);
    st->fd = -1;
    snprintf(st->name, sizeof st->name, "%s", name);
    int fd = shm_open(st->name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "no stats segment %s (%s): is wsechod running, and is this its "
                 "--stats-name?", st->name, strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) < 0 || (size_t)sb.st_size < sizeof(struct wse_stats_header)) {
        snprintf(err, errlen, "stats segment %s is too small to be wsechod's", st->name);
        close(fd);
        return -1;
    }
    return attach_fd(st, fd, (size_t)sb.st_size, err, errlen);
}

void wse_stats_close(struct wse_stats *st)
{
    if (st->hdr)
        munmap(st->hdr, st->size);
    if (st->owner)
        shm_unlink(st->name);
    if (st->reader) {
        close(st->fd);
        for (int i = 0; i < 3; i++)
            free(st->image[i]);
    }
    st->hdr = NULL;
    st->slots = NULL;
    st->reader = false;
    st->fd = -1;
    memset(st->image, 0, sizeof st->image);
}

/*
 * A seqlock has one writer at a time: the master before fork and after
 * reaping, the worker in between.  A writer killed between seq_begin and
 * seq_end (a worker's SIGKILL) leaves the count odd, and every later
 * begin/end pair would keep it odd: readers could never read the slot
 * again.  So a writer starts from the next odd count, whatever the last one
 * left; the master, which writes every slot it reaps, repairs it within a
 * reap.  A master killed mid-fold leaves retired_seq odd in a segment that
 * the next master replaces at start.
 */
static void seq_begin(uint32_t *seq)
{
    __atomic_store_n(seq, (*seq + 1) | 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void seq_end(uint32_t *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

void wse_stats_slot_set(struct wse_stats_slot *s, pid_t pid, int worker, unsigned generation,
                        enum wse_slot_state state)
{
    seq_begin(&s->seq);
    __atomic_store_n(&s->pid, (int32_t)pid, __ATOMIC_RELAXED);
    __atomic_store_n(&s->worker, (int32_t)worker, __ATOMIC_RELAXED);
    __atomic_store_n(&s->generation, generation, __ATOMIC_RELAXED);
    __atomic_store_n(&s->state, (uint32_t)state, __ATOMIC_RELAXED);
    seq_end(&s->seq);
}

void wse_stats_slot_state(struct wse_stats_slot *s, enum wse_slot_state state)
{
    seq_begin(&s->seq);
    __atomic_store_n(&s->state, (uint32_t)state, __ATOMIC_RELAXED);
    __atomic_store_n(&s->heartbeat_ms, now_ms(), __ATOMIC_RELAXED);
    seq_end(&s->seq);
}

int wse_stats_free_slot(const struct wse_stats *st)
{
    /* Our own nslots: the segment's could have been rewritten. */
    for (unsigned i = 0; i < st->nslots; i++)
        if (st->slots[i].state == WSE_SLOT_EMPTY)
            return (int)i;
    return -1;
}

void wse_stats_heartbeat(struct wse_stats_slot *s)
{
    __atomic_store_n(&s->heartbeat_ms, now_ms(), __ATOMIC_RELAXED);
}

void wse_stats_retire(struct wse_stats *st, unsigned slot)
{
    struct wse_stats_header *h = st->hdr;

    if (slot >= st->nslots)
        return;
    struct wse_stats_slot *s = &st->slots[slot];
    seq_begin(&h->retired_seq);
    for (int i = 0; i < WSE_STAT_COUNT; i++) {
        uint64_t v = __atomic_load_n(&s->c[i], __ATOMIC_RELAXED);
        if (!wse_stat_is_gauge[i])
            __atomic_store_n(&h->retired[i], h->retired[i] + v, __ATOMIC_RELAXED);
        __atomic_store_n(&s->c[i], 0, __ATOMIC_RELAXED);
    }
    seq_end(&h->retired_seq);
}

/* ---- reader: everything through pread into private copies ---------------- */

/* Back-to-back tries, then the rest 1 ms apart: a writer holds a seqlock
 * for a few stores, unless it is preempted (or was killed) in between.
 * About 0.1 s in all, then the reader gives up on what is still held. */
#define READ_TRIES      100
#define READ_SPIN_TRIES 10
#define READ_PAUSE_NS   1000000L

/*
 * Reads size bytes at offset 0.  A shrunk segment is a short read here,
 * where a mapping would have raised SIGBUS.
 */
static int read_image(const struct wse_stats *st, void *buf, char *err, size_t errlen)
{
    size_t done = 0;

    while (done < st->size) {
        ssize_t n = pread(st->fd, (char *)buf + done, st->size - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "reading stats segment %s: %s", st->name, strerror(errno));
            return -1;
        }
        if (n == 0) {
            snprintf(err, errlen, "stats segment %s shrank under the reader (%zu of %zu bytes "
                     "left): the server is gone or something rewrote it", st->name, done,
                     st->size);
            return -1;
        }
        done += (size_t)n;
    }
    /* Each copy is complete before the next one begins (seqlock order). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return 0;
}

/* The layout this reader knows, with the nslots it attached with (0: any). */
static bool layout_ok(const struct wse_stats_header *h, unsigned nslots)
{
    return h->magic == WSE_STATS_MAGIC && h->version == WSE_STATS_VERSION &&
           h->header_size == sizeof(struct wse_stats_header) &&
           h->slot_size == sizeof(struct wse_stats_slot) && h->counter_count == WSE_STAT_COUNT &&
           h->nslots <= WSE_STATS_MAX_SLOTS && (!nslots || h->nslots == nslots);
}

static int attach_fd(struct wse_stats *st, int fd, size_t file_size, char *err, size_t errlen)
{
    struct wse_stats_header h;

    st->fd = fd;
    st->reader = true;
    st->size = sizeof h;
    if (read_image(st, &h, err, errlen) < 0)
        goto fail;
    if (!layout_ok(&h, 0)) {
        snprintf(err, errlen, "stats segment %s has another layout (version %u, this reader "
                 "knows version %u)", st->name, h.version, WSE_STATS_VERSION);
        goto fail;
    }
    /* Sizes are fixed now: a writer changing nslots later cannot move them. */
    st->nslots = h.nslots;
    st->size = sizeof h + (size_t)h.nslots * sizeof(struct wse_stats_slot);
    if (file_size < st->size) {
        snprintf(err, errlen, "stats segment %s is %zu bytes, too small for its %u slots",
                 st->name, file_size, st->nslots);
        goto fail;
    }
    for (int i = 0; i < 3; i++) {
        /* Slots are cache-line aligned types: so are their copies. */
        st->image[i] = aligned_alloc(WSE_CACHE_LINE, st->size);
        if (!st->image[i]) {
            snprintf(err, errlen, "stats segment %s: out of memory", st->name);
            goto fail;
        }
    }
    return 0;
fail:
    wse_stats_close(st);
    return -1;
}

int wse_stats_copy_init(struct wse_stats_copy *c, const struct wse_stats *st)
{
    memset(c, 0, sizeof *c);
    c->slots = calloc(st->nslots ? st->nslots : 1, sizeof *c->slots);
    c->slot_ok = calloc(st->nslots ? st->nslots : 1, sizeof *c->slot_ok);
    if (!c->slots || !c->slot_ok) {
        wse_stats_copy_free(c);
        return -1;
    }
    return 0;
}

void wse_stats_copy_free(struct wse_stats_copy *c)
{
    free(c->slots);
    free(c->slot_ok);
    c->slots = NULL;
    c->slot_ok = NULL;
}

static const struct wse_stats_slot *image_slot(const unsigned char *image, unsigned k)
{
    return (const struct wse_stats_slot *)(image + sizeof(struct wse_stats_header)) + k;
}

/* A seqlock read is good if the counter was even before and unchanged after. */
static bool stable(uint32_t before, uint32_t after)
{
    return !(before & 1) && before == after;
}

static void copy_identity(struct wse_stats_slot *out, const struct wse_stats_slot *s)
{
    out->seq = s->seq;
    out->state = s->state;
    out->pid = s->pid;
    out->worker = s->worker;
    out->generation = s->generation;
    out->heartbeat_ms = s->heartbeat_ms;
}

/* Header, retired, per-slot counters and totals, all from one copy. */
static void copy_counters(const struct wse_stats *st, struct wse_stats_copy *out,
                          const unsigned char *image)
{
    memcpy(&out->hdr, image, sizeof out->hdr);
    memcpy(out->totals, out->hdr.retired, sizeof out->totals);
    for (unsigned k = 0; k < st->nslots; k++) {
        const struct wse_stats_slot *s = image_slot(image, k);
        for (int i = 0; i < WSE_STAT_COUNT; i++) {
            out->slots[k].c[i] = s->c[i];
            out->totals[i] += s->c[i];
        }
    }
}

/*
 * Successive copies before, data, after: data is consistent where a
 * seqlock is stable from before to after.  Copies rotate, so each further
 * try costs one read.
 */
int wse_stats_snapshot(struct wse_stats *st, struct wse_stats_copy *out, char *err,
                       size_t errlen)
{
    unsigned pending = st->nslots + 1;      /* slots and the totals still to read */

    out->totals_ok = false;
    memset(out->slot_ok, 0, st->nslots * sizeof *out->slot_ok);
    for (int i = 0; i < 2; i++)
        if (read_image(st, st->image[i], err, errlen) < 0)
            return -1;
    const unsigned char *last = st->image[1];
    for (unsigned t = 0;; t++) {
        const unsigned char *before = st->image[t % 3], *data = st->image[(t + 1) % 3];
        const unsigned char *after = st->image[(t + 2) % 3];
        if (read_image(st, st->image[(t + 2) % 3], err, errlen) < 0)
            return -1;
        last = data;
        const struct wse_stats_header *hb = (const void *)before, *ha = (const void *)after;
        if (!layout_ok((const void *)data, st->nslots)) {
            snprintf(err, errlen, "stats segment %s changed its layout under the reader "
                     "(%u slots at attach, %u now): something rewrote it", st->name,
                     st->nslots, ((const struct wse_stats_header *)(const void *)data)->nslots);
            return -1;
        }
        for (unsigned k = 0; k < st->nslots; k++) {
            if (out->slot_ok[k] || !stable(image_slot(before, k)->seq, image_slot(after, k)->seq))
                continue;
            copy_identity(&out->slots[k], image_slot(data, k));
            out->slot_ok[k] = true;
            pending--;
        }
        if (!out->totals_ok && stable(hb->retired_seq, ha->retired_seq)) {
            copy_counters(st, out, data);
            out->totals_ok = true;
            pending--;
        }
        if (!pending)
            return 0;
        if (t + 1 >= READ_TRIES)
            break;
        if (t >= READ_SPIN_TRIES)
            nanosleep(&(struct timespec){0, READ_PAUSE_NS}, NULL);
    }
    /* Given up: what was read last, marked as such. */
    for (unsigned k = 0; k < st->nslots; k++)
        if (!out->slot_ok[k])
            copy_identity(&out->slots[k], image_slot(last, k));
    if (!out->totals_ok)
        copy_counters(st, out, last);
    return 0;
}
