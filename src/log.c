/*
 * log.c - levelled log lines.  Each line is formatted into a stack buffer
 * and written with one write(2), so lines from several workers sharing a
 * file (O_APPEND) or a terminal never interleave mid-line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum wse_log_level wse_log_max = WSE_LOG_INFO;

static int log_fd = STDERR_FILENO;
static char log_path[WSE_STR_MAX];
static char log_who[48] = "master";

static const char *const level_names[] = {"error", "warn ", "info ", "debug"};

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
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
    if (s->fd >= 0 && s->fd != STDERR_FILENO && s->fd != log_fd)
        close(s->fd);
    s->fd = -1;
}

void wse_log_identity(int worker, int pid)
{
    if (worker < 0)
        snprintf(log_who, sizeof log_who, "master pid %d", pid);
    else
        snprintf(log_who, sizeof log_who, "worker %d pid %d", worker, pid);
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
