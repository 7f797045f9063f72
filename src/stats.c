/*
 * stats.c - the shared-memory statistics segment: create, attach, seqlocked
 * identity fields, folding exited workers into the retired totals.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
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
    snprintf(st->name, sizeof st->name, "%s", name);
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

/* Appends "; " (after the first) and one difference to out. */
static void add_difference(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_difference(char *out, size_t n, const char *fmt, ...)
{
    size_t len = strnlen(out, n);
    va_list ap;

    if (len + 3 >= n)
        return;
    if (len) {
        memcpy(out + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(out + len, n - len, fmt, ap);
    va_end(ap);
}

/*
 * Does the header h of a size-byte segment differ from the layout this
 * program was built with?  If so, out says what differs, field by field.
 * Each field is read once: another process may rewrite the segment while
 * it is checked, and the message must name the value that was checked.
 */
static bool layout_mismatch(const struct wse_stats_header *h, size_t size, char *out, size_t n)
{
    uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
    uint32_t version = __atomic_load_n(&h->version, __ATOMIC_RELAXED);
    uint32_t header_size = __atomic_load_n(&h->header_size, __ATOMIC_RELAXED);
    uint32_t slot_size = __atomic_load_n(&h->slot_size, __ATOMIC_RELAXED);
    uint32_t counters = __atomic_load_n(&h->counter_count, __ATOMIC_RELAXED);
    uint32_t nslots = __atomic_load_n(&h->nslots, __ATOMIC_RELAXED);

    out[0] = '\0';
    if (magic != WSE_STATS_MAGIC) {
        /* Nothing else in it means anything then. */
        add_difference(out, n, "magic number %#llx, not wsechod's %#llx",
                       (unsigned long long)magic, (unsigned long long)WSE_STATS_MAGIC);
        return true;
    }
    if (version != WSE_STATS_VERSION)
        add_difference(out, n, "version %u, this reader knows version %u", version,
                       WSE_STATS_VERSION);
    if (header_size != sizeof(struct wse_stats_header))
        add_difference(out, n, "header size %u, this reader knows %zu", header_size,
                       sizeof(struct wse_stats_header));
    if (slot_size != sizeof(struct wse_stats_slot))
        add_difference(out, n, "slot size %u, this reader knows %zu", slot_size,
                       sizeof(struct wse_stats_slot));
    if (counters != WSE_STAT_COUNT)
        add_difference(out, n, "counter count %u, this reader knows %u", counters,
                       (unsigned)WSE_STAT_COUNT);
    if (out[0] == '\0' && size < header_size + (size_t)nslots * slot_size)
        add_difference(out, n, "%zu bytes, too small for %u slots of %u bytes", size, nslots,
                       slot_size);
    return out[0] != '\0';
}

int wse_stats_attach(struct wse_stats *st, const char *name, char *err, size_t errlen)
{
    struct stat sb;

    memset(st, 0, sizeof *st);
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
    st->size = (size_t)sb.st_size;
    void *p = mmap(NULL, st->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s) failed: %s", st->name, strerror(errno));
        return -1;
    }
    st->hdr = p;
    const struct wse_stats_header *h = st->hdr;
    char why[256];
    if (layout_mismatch(h, st->size, why, sizeof why)) {
        snprintf(err, errlen, "stats segment %s has another layout: %s", st->name, why);
        munmap(p, st->size);
        st->hdr = NULL;
        return -1;
    }
    st->slots = (struct wse_stats_slot *)((char *)p + h->header_size);
    return 0;
}

void wse_stats_close(struct wse_stats *st)
{
    if (st->hdr)
        munmap(st->hdr, st->size);
    if (st->owner)
        shm_unlink(st->name);
    st->hdr = NULL;
    st->slots = NULL;
}

static void seq_begin(uint32_t *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
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
    for (unsigned i = 0; i < st->hdr->nslots; i++)
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

void wse_stats_read_slot(const struct wse_stats_slot *s, struct wse_stats_slot *out)
{
    uint32_t s1, s2;

    do {
        s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        out->pid = __atomic_load_n(&s->pid, __ATOMIC_RELAXED);
        out->worker = __atomic_load_n(&s->worker, __ATOMIC_RELAXED);
        out->generation = __atomic_load_n(&s->generation, __ATOMIC_RELAXED);
        out->state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
        out->heartbeat_ms = __atomic_load_n(&s->heartbeat_ms, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    } while ((s1 & 1) || s1 != s2);
    out->seq = s1;
}

void wse_stats_snapshot(const struct wse_stats *st, struct wse_stats_slot *slots_out,
                        uint64_t totals[WSE_STAT_COUNT])
{
    const struct wse_stats_header *h = st->hdr;
    uint32_t s1, s2;

    do {
        s1 = __atomic_load_n(&h->retired_seq, __ATOMIC_ACQUIRE);
        for (int i = 0; i < WSE_STAT_COUNT; i++)
            totals[i] = __atomic_load_n(&h->retired[i], __ATOMIC_RELAXED);
        for (unsigned k = 0; k < h->nslots; k++) {
            wse_stats_read_slot(&st->slots[k], &slots_out[k]);
            for (int i = 0; i < WSE_STAT_COUNT; i++) {
                uint64_t v = __atomic_load_n(&st->slots[k].c[i], __ATOMIC_RELAXED);
                slots_out[k].c[i] = v;
                totals[i] += v;
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&h->retired_seq, __ATOMIC_RELAXED);
    } while ((s1 & 1) || s1 != s2);
}
