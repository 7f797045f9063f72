/*
 * stats.c - the shared-memory statistics segment: create, attach, seqlocked
 * identity fields, folding exited workers into the retired totals.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

static int open_existing(const char *name, struct stat *sb)
{
    /* No symlink, and no blocking on a FIFO someone planted at the name. */
    int fd = shm_open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);

    if (fd >= 0 && fstat(fd, sb) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static bool basename_is(const char *path, const char *want)
{
    const char *slash = strrchr(path, '/');
    return strcmp(slash ? slash + 1 : path, want) == 0;
}

static bool cmdline_names_wsechod(pid_t pid)
{
    char path[64], cmd[4096];

    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    cmd[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
        if (basename_is(cmd + i, "wsechod"))
            return true;
    return false;
}

/*
 * The process runs a wsechod executable.  A binary replaced on disk (an
 * upgrade) reads "... (deleted)".  Under `make valgrind` the executable is
 * valgrind's tool, and the argument list names wsechod.  On its own this
 * proves little (anyone can copy sleep(1) to a file named wsechod): the
 * segment checks in wse_stats_is_master() are what make it an identity.
 */
static bool runs_wsechod(pid_t pid)
{
    static const char deleted[] = " (deleted)";
    char path[64], exe[4096];

    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    size_t len = (size_t)n;
    exe[len] = '\0';
    if (len > sizeof deleted - 1 && strcmp(exe + len - (sizeof deleted - 1), deleted) == 0)
        exe[len - (sizeof deleted - 1)] = '\0';
    if (basename_is(exe, "wsechod"))
        return true;
    return strstr(exe, "/valgrind/") != NULL && cmdline_names_wsechod(pid);
}

/* The process has this very file mapped (device and inode in its maps). */
static bool maps_file(pid_t pid, const struct stat *sb)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    bool found = false;

    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    while (!found && getline(&line, &cap, f) > 0) {
        unsigned long maj, min;
        unsigned long long ino;
        /* start-end perms offset major:minor inode path */
        if (sscanf(line, "%*s %*s %*s %lx:%lx %llu", &maj, &min, &ino) == 3)
            found = maj == major(sb->st_dev) && min == minor(sb->st_dev) &&
                    ino == (unsigned long long)sb->st_ino;
    }
    free(line);
    fclose(f);
    return found;
}

/* The master pid a segment's header names, or 0 when it is not wsechod's. */
static pid_t header_master(int fd, const struct stat *sb)
{
    pid_t pid = 0;

    if ((size_t)sb->st_size < sizeof(struct wse_stats_header))
        return 0;
    const struct wse_stats_header *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED)
        return 0;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == WSE_STATS_MAGIC)
        pid = __atomic_load_n(&h->master_pid, __ATOMIC_RELAXED);
    munmap((void *)h, sizeof *h);
    return pid;
}

bool wse_stats_is_master(int fd, pid_t pid)
{
    struct stat sb, proc;
    char path[64];

    if (pid < 2 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || header_master(fd, &sb) != pid)
        return false;
    /* /proc/PID belongs to the process's effective user. */
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    if (stat(path, &proc) < 0 || proc.st_uid != sb.st_uid)
        return false;
    return maps_file(pid, &sb) && runs_wsechod(pid);
}

int wse_stats_check_master(const char *name, pid_t pid, char *err, size_t errlen)
{
    struct stat sb;
    int fd = open_existing(name, &sb);

    if (fd < 0) {
        snprintf(err, errlen, "no stats segment %s to prove it (%s)", name, strerror(errno));
        return -1;
    }
    bool ok = S_ISREG(sb.st_mode) && !(sb.st_mode & (S_IWGRP | S_IWOTH)) &&
              wse_stats_is_master(fd, pid);
    close(fd);
    if (!ok)
        snprintf(err, errlen, "it is not the running wsechod master of stats segment %s", name);
    return ok ? 0 : -1;
}

/*
 * Before replacing an existing segment of this name: it must be a regular
 * file of this server's user that nobody else can write, and no live master
 * of it may exist.  Anything else is somebody else's, and a start
 * that removed it or waited on it (a FIFO) would be worse than one that
 * stops with a clear message.  0 if it may be replaced, or -1 and err.
 */
static int may_replace(const char *name, char *err, size_t errlen)
{
    static const char fix[] = "remove it, or give this server another --stats-name";
    struct stat sb;
    int fd = open_existing(name, &sb);

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;       /* gone meanwhile */
        snprintf(err, errlen, "stats segment %s exists and cannot be opened (%s%s): %s", name,
                 strerror(errno), errno == ELOOP ? ": a symbolic link" : "", fix);
        return -1;
    }
    int rc = -1;
    pid_t master;
    if (!S_ISREG(sb.st_mode))
        snprintf(err, errlen, "stats segment %s is not a regular file (type %#o): %s", name,
                 (unsigned)(sb.st_mode & S_IFMT), fix);
    else if (sb.st_uid != geteuid())
        snprintf(err, errlen, "stats segment %s belongs to uid %u, not to this server's uid %u: "
                 "%s", name, (unsigned)sb.st_uid, (unsigned)geteuid(), fix);
    else if (sb.st_mode & (S_IWGRP | S_IWOTH))
        snprintf(err, errlen, "stats segment %s is writable by others (mode %04o): %s", name,
                 (unsigned)(sb.st_mode & 07777), fix);
    else if ((master = header_master(fd, &sb)) && wse_stats_is_master(fd, master))
        snprintf(err, errlen, "stats segment %s belongs to wsechod pid %d, which is running "
                 "(stop it, or give this one another --stats-name)", name, (int)master);
    else
        rc = 0;     /* ours, left behind by a master that died */
    close(fd);
    return rc;
}

static int open_exclusive(const char *name, char *err, size_t errlen)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);

    if (fd >= 0 || errno != EEXIST)
        goto out;
    if (may_replace(name, err, errlen) < 0)
        return -1;
    shm_unlink(name);
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
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
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s) failed: %s", st->name, strerror(errno));
        close(fd);
        shm_unlink(st->name);
        return -1;
    }
    st->fd = fd;
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
    if (nslots > WSE_STATS_MAX_SLOTS)
        add_difference(out, n, "%u slots, more than the %u a segment may have", nslots,
                       WSE_STATS_MAX_SLOTS);
    if (out[0] == '\0' && size < header_size + (size_t)nslots * slot_size)
        add_difference(out, n, "%zu bytes, too small for %u slots of %u bytes", size, nslots,
                       slot_size);
    return out[0] != '\0';
}

/*
 * The reader's rule: a regular file (not a FIFO a reader would block on)
 * that nobody but its owner can write, owned by root, by the reader's own
 * user, or by the user of the live wsechod master it names (a service
 * running under its own or a dynamic user, read by root).
 */
static bool trusted_segment(int fd, const struct stat *sb, char *err, size_t errlen,
                            const char *name)
{
    if (!S_ISREG(sb->st_mode)) {
        snprintf(err, errlen, "stats segment %s is not a regular file (type %#o): not wsechod's",
                 name, (unsigned)(sb->st_mode & S_IFMT));
        return false;
    }
    if (sb->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen, "stats segment %s is writable by others (mode %04o): not "
                 "wsechod's", name, (unsigned)(sb->st_mode & 07777));
        return false;
    }
    if (sb->st_uid == 0 || sb->st_uid == geteuid() ||
        wse_stats_is_master(fd, header_master(fd, sb)))
        return true;
    snprintf(err, errlen, "stats segment %s belongs to uid %u, which runs no wsechod master of "
             "it: not trusted", name, (unsigned)sb->st_uid);
    return false;
}

static int attach_fd(struct wse_stats *st, int fd, size_t file_size, char *err, size_t errlen);

int wse_stats_attach(struct wse_stats *st, const char *name, char *err, size_t errlen)
{
    struct stat sb;

    memset(st, 0, sizeof *st);
    st->fd = -1;
    snprintf(st->name, sizeof st->name, "%s", name);
    int fd = open_existing(st->name, &sb);
    if (fd < 0) {
        snprintf(err, errlen, "no stats segment %s (%s%s): is wsechod running, and is this its "
                 "--stats-name?", st->name, strerror(errno),
                 errno == ELOOP ? ": a symbolic link" : "");
        return -1;
    }
    if (!trusted_segment(fd, &sb, err, errlen, st->name)) {
        close(fd);
        return -1;
    }
    if ((size_t)sb.st_size < sizeof(struct wse_stats_header)) {
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
    if (st->fd >= 0)
        close(st->fd);
    if (st->reader) {
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

#define READ_PAUSE_NS_LOCK 1000000L

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
    for (unsigned i = 0; i < st->nslots; i++) {
        uint32_t empty = WSE_SLOT_EMPTY;
        if (__atomic_compare_exchange_n(&st->slots[i].state, &empty, WSE_SLOT_STARTING, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return (int)i;
    }
    return -1;
}

void wse_stats_heartbeat(struct wse_stats_slot *s)
{
    __atomic_store_n(&s->heartbeat_ms, now_ms(), __ATOMIC_RELAXED);
}

/*
 * The retired seqlock doubles as the writers' lock: during a live upgrade
 * the old and the new master both fold.  Taken by moving it from even to
 * odd; a count still odd after about 0.1 s was left by a master killed
 * mid-fold, and is taken over (seq_begin's rule: the next odd count).
 */
static void retired_lock(uint32_t *seq)
{
    struct timespec pause = {0, READ_PAUSE_NS_LOCK};

    for (int i = 0; i < 100; i++) {
        uint32_t even = __atomic_load_n(seq, __ATOMIC_RELAXED) & ~1u;
        if (__atomic_compare_exchange_n(seq, &even, even + 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return;
        nanosleep(&pause, NULL);
    }
    seq_begin(seq);
}

void wse_stats_retire(struct wse_stats *st, unsigned slot)
{
    struct wse_stats_header *h = st->hdr;

    if (slot >= st->nslots)
        return;
    struct wse_stats_slot *s = &st->slots[slot];
    retired_lock(&h->retired_seq);
    for (int i = 0; i < WSE_STAT_COUNT; i++) {
        uint64_t v = __atomic_load_n(&s->c[i], __ATOMIC_RELAXED);
        if (!wse_stat_is_gauge[i])
            __atomic_store_n(&h->retired[i], h->retired[i] + v, __ATOMIC_RELAXED);
        __atomic_store_n(&s->c[i], 0, __ATOMIC_RELAXED);
    }
    seq_end(&h->retired_seq);
}

static bool layout_ok(const struct wse_stats_header *h, unsigned nslots);

int wse_stats_adopt(struct wse_stats *st, int fd, const char *name, unsigned nslots, char *err,
                    size_t errlen)
{
    struct stat sb;

    memset(st, 0, sizeof *st);
    st->fd = -1;
    snprintf(st->name, sizeof st->name, "%s", name);
    st->nslots = nslots;
    st->size = sizeof(struct wse_stats_header) + (size_t)nslots * sizeof(struct wse_stats_slot);
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
        (size_t)sb.st_size < st->size) {
        snprintf(err, errlen, "the stats segment handed over is not this build's (%zu bytes "
                 "wanted)", st->size);
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s) failed: %s", st->name, strerror(errno));
        close(fd);
        return -1;
    }
    st->fd = fd;
    st->hdr = p;
    st->slots = (struct wse_stats_slot *)((char *)p + sizeof(struct wse_stats_header));
    if (!layout_ok(st->hdr, nslots)) {
        snprintf(err, errlen, "stats segment %s has another layout than this build's: the "
                 "upgrade needs a restart instead", st->name);
        wse_stats_close(st);
        return -1;
    }
    return 0;
}

void wse_stats_take_over(struct wse_stats *st)
{
    st->owner = true;
    __atomic_store_n(&st->hdr->master_pid, (int32_t)getpid(), __ATOMIC_RELEASE);
}

void wse_stats_upgrade_failed(struct wse_stats *st)
{
    __atomic_fetch_add(&st->hdr->upgrades_failed, 1, __ATOMIC_RELEASE);
}

int wse_stats_read_upgrades_failed(const char *name, uint32_t *out)
{
    struct wse_stats_header h;
    struct stat sb;
    int fd = open_existing(name, &sb);

    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    close(fd);
    if (n != (ssize_t)sizeof h || h.magic != WSE_STATS_MAGIC)
        return -1;
    *out = h.upgrades_failed;
    return 0;
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
    char why[256];
    if (layout_mismatch(&h, file_size, why, sizeof why) || !layout_ok(&h, 0)) {
        snprintf(err, errlen, "stats segment %s has another layout: %s", st->name,
                 why[0] ? why : "unknown difference");
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
