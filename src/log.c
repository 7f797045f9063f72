/*
 * log.c - levelled log lines.  Each line is formatted into a stack buffer
 * and written with one write(2), so lines from several workers sharing a
 * file (O_APPEND) or a terminal never interleave mid-line.
 *
 * Rate limits: a call site's window starts with its first line; the first
 * WSE_LOG_BURST lines of a window are written, the rest only counted.  The
 * count is written as one summary line when the window is over: before the
 * site's next written line, or by the worker's periodic wse_log_flush() if
 * the flood stopped.  Unflooded, a limited line costs one coarse clock read.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

enum wse_log_level wse_log_max = WSE_LOG_INFO;

static int log_fd = STDERR_FILENO;
static char log_path[WSE_STR_MAX];

int wse_access_fd = -1;
static char access_path[WSE_STR_MAX] = "off";
static char log_who[48] = "master";
static int log_worker = -1;     /* the worker slot, for access lines */

static const char *const level_names[] = {"error", "warn ", "info ", "debug"};

/* Limits that held lines back and owe a summary (a handful at most: one
 * per call site). */
static struct wse_log_limit *pending_limits;

/*
 * O_NONBLOCK only while opening: a FIFO planted at the path (with nobody
 * reading it) fails with ENXIO instead of hanging the master at start or
 * at every SIGUSR1.  Symlinks are followed on purpose: operators link log
 * files, and the log's directory is theirs to keep others out of.
 */
static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
    int flags;

    if (fd >= 0 && ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int wse_log_open(const char *path, enum wse_log_level level)
{
    wse_log_max = level;
    snprintf(log_path, sizeof log_path, "%s", path);
    if (!path[0]) {
        log_fd = STDERR_FILENO;
        return 0;
    }
    int fd = open_path(path);
    if (fd < 0)
        return -1;
    log_fd = fd;
    return 0;
}

int wse_log_reopen(void)
{
    if (!log_path[0])
        return 0;
    int fd = open_path(log_path);
    if (fd < 0)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return 0;
}

int wse_log_file_fd(void)
{
    return log_path[0] && log_fd != STDERR_FILENO ? log_fd : -1;
}

void wse_log_use_fd(int fd)
{
    if (log_fd != STDERR_FILENO && log_fd != fd)
        close(log_fd);
    log_fd = fd;
}

int wse_log_prepare(const char *path)
{
    return path[0] ? open_path(path) : STDERR_FILENO;
}

void wse_log_switch(int fd, const char *path, enum wse_log_level level,
                    struct wse_log_saved *before)
{
    before->fd = log_fd;
    before->level = wse_log_max;
    snprintf(before->path, sizeof before->path, "%s", log_path);
    log_fd = fd;
    wse_log_max = level;
    snprintf(log_path, sizeof log_path, "%s", path);
}

void wse_log_discard(struct wse_log_saved *s)
{
    if (s->fd >= 0 && s->fd != STDERR_FILENO && s->fd != log_fd && s->fd != wse_access_fd)
        close(s->fd);
    s->fd = -1;
}

/* ---- the access log ------------------------------------------------------ */

int wse_access_prepare(const char *path, int *fd)
{
    if (strcmp(path, "off") == 0)
        *fd = -1;
    else if (strcmp(path, "stderr") == 0)
        *fd = STDERR_FILENO;
    else if ((*fd = open_path(path)) < 0)
        return -1;
    return 0;
}

int wse_access_open(const char *path)
{
    int fd;

    if (wse_access_prepare(path, &fd) < 0)
        return -1;
    wse_access_fd = fd;
    snprintf(access_path, sizeof access_path, "%s", path);
    return 0;
}

int wse_access_reopen(void)
{
    if (wse_access_fd < 0 || wse_access_fd == STDERR_FILENO)
        return 0;
    int fd = open_path(access_path);
    if (fd < 0)
        return -1;
    close(wse_access_fd);
    wse_access_fd = fd;
    return 0;
}

int wse_access_file_fd(void)
{
    return wse_access_fd != STDERR_FILENO ? wse_access_fd : -1;
}

void wse_access_use_fd(int fd)
{
    if (wse_access_fd >= 0 && wse_access_fd != STDERR_FILENO && wse_access_fd != fd)
        close(wse_access_fd);
    wse_access_fd = fd;
}

void wse_access_switch(int fd, const char *path, struct wse_log_saved *before)
{
    before->fd = wse_access_fd;
    before->level = WSE_LOG_INFO;
    snprintf(before->path, sizeof before->path, "%s", access_path);
    wse_access_fd = fd;
    snprintf(access_path, sizeof access_path, "%s", path);
}

static bool escape_plain(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

const char *wse_log_escape(const char *p, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t whole = 0, room, o = 0, i = 0;

    for (; i < n && whole < cap; i++)
        whole += escape_plain((unsigned char)p[i]) ? 1 : 4;
    /* All of it with its NUL, or as much as leaves room for "..." and the NUL;
     * an escape is never cut in half. */
    room = i == n && whole < cap ? cap - 1 : cap - 4;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (o + (escape_plain(ch) ? 1 : 4) > room)
            break;
        if (escape_plain(ch)) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (i < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

void wse_log_identity(int worker, int pid)
{
    log_worker = worker;
    if (worker < 0)
        snprintf(log_who, sizeof log_who, "master pid %d", pid);
    else
        snprintf(log_who, sizeof log_who, "worker %d pid %d", worker, pid);
}

void wse_log_identity_role(const char *role, int pid)
{
    snprintf(log_who, sizeof log_who, "%s pid %d", role, pid);
}

static size_t format_prefix(char *out, size_t cap, enum wse_log_level level)
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int k = snprintf(out + n, cap - n, ".%03dZ %s [%s] ", (int)(tv.tv_usec / 1000),
                     level_names[level], log_who);
    return n + (size_t)(k > 0 ? k : 0);
}

static void emit(enum wse_log_level level, const char *syscall, int err,
                 const char *fmt, va_list ap)
{
    char line[1024];
    size_t n = format_prefix(line, sizeof line, level);
    int k = vsnprintf(line + n, sizeof line - n, fmt, ap);

    n = k < 0 ? n : (n + (size_t)k < sizeof line ? n + (size_t)k : sizeof line - 1);
    if (syscall) {
        k = snprintf(line + n, sizeof line - n, ": %s failed: %s", syscall, strerror(err));
        n = k < 0 ? n : (n + (size_t)k < sizeof line ? n + (size_t)k : sizeof line - 1);
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* A log line is best effort: a full disk must not stop the server. */
    ssize_t w = write(log_fd, line, n);
    (void)w;
}

void wse_access_line(const char *fmt, ...)
{
    char line[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (wse_access_fd < 0)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int k = snprintf(line + n, sizeof line - n, ".%03dZ worker=%d ", (int)(tv.tv_usec / 1000),
                     log_worker);
    n += (size_t)(k > 0 ? k : 0);
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    n = k < 0 ? n : (n + (size_t)k < sizeof line ? n + (size_t)k : sizeof line - 1);
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* Best effort, like the main log; O_APPEND keeps workers' lines whole. */
    ssize_t w = write(wse_access_fd, line, n);
    (void)w;
}

void wse_log_line(enum wse_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void wse_log_errno(enum wse_log_level level, const char *syscall, const char *fmt, ...)
{
    int err = errno;
    va_list ap;

    if (level > wse_log_max)
        return;
    va_start(ap, fmt);
    emit(level, syscall, err, fmt, ap);
    va_end(ap);
    errno = err;
}

/* ---- rate limits --------------------------------------------------------- */

static bool window_over(const struct wse_log_limit *l, double now)
{
    /* A clock that went back ends the window too: it must not last forever. */
    return now - l->start >= WSE_LOG_WINDOW || now < l->start;
}

static void window_reset(struct wse_log_limit *l, double now)
{
    l->start = now;
    l->logged = 0;
    l->held = 0;
}

bool wse_log_limit_admit(struct wse_log_limit *l, double now, unsigned *held, double *span)
{
    *held = 0;
    *span = 0;
    if (l->logged == 0 && l->held == 0) {
        l->start = now;
    } else if (window_over(l, now)) {
        *held = l->held;
        *span = now - l->start;
        window_reset(l, now);
    }
    if (l->logged < WSE_LOG_BURST) {
        l->logged++;
        return true;
    }
    if (l->held < UINT32_MAX)
        l->held++;
    return false;
}

unsigned wse_log_limit_expire(struct wse_log_limit *l, double now, bool force, double *span)
{
    *span = 0;
    if (l->held == 0 || (!force && !window_over(l, now)))
        return 0;
    unsigned held = l->held;
    *span = now - l->start;
    /* The next line starts a window of its own (logged = 0). */
    window_reset(l, now);
    return held;
}

static double log_clock(void)
{
    struct timespec ts;
    /* Coarse (a few ms, no system call) is plenty for one-second windows. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_summary(const struct wse_log_limit *l, unsigned held, double span)
{
    wse_log_line(l->level, "... and %u more %s %s in the last %.1f s", held, l->what,
                 wse_plural(held, "line", "lines"), span > 0 ? span : 0);
}

bool wse_log_admit(struct wse_log_limit *l, enum wse_log_level level)
{
    unsigned held;
    double span;

    l->level = level;
    bool write = wse_log_limit_admit(l, log_clock(), &held, &span);
    if (held)
        write_summary(l, held, span);
    if (!write && !l->pending) {
        l->pending = true;
        l->next = pending_limits;
        pending_limits = l;
    }
    return write;
}

void wse_log_flush(bool force)
{
    struct wse_log_limit **link = &pending_limits;
    double now = pending_limits ? log_clock() : 0;

    while (*link) {
        struct wse_log_limit *l = *link;
        double span;
        unsigned held = wse_log_limit_expire(l, now, force, &span);

        if (held)
            write_summary(l, held, span);
        if (l->held == 0) {
            *link = l->next;
            l->next = NULL;
            l->pending = false;
        } else {
            link = &l->next;
        }
    }
}
