/*
 * log.h - levelled log lines, one write(2) per line, to stderr or a file.
 *
 * Line format (ISO-8601 UTC time, level, who, message):
 *   2026-11-26T00:41:09.123Z info  [worker 1 pid 4242] 127.0.0.1:51234 open /websocket
 * Failed system calls are named with their errno text by wse_log_errno().
 * The file is opened O_APPEND, so several processes can share it; SIGUSR1
 * makes the master (and through it, the workers) reopen it for logrotate.
 *
 * Lines a peer can cause at will (one per connection, per bad request) go
 * through log_limited(): each call site writes at most WSE_LOG_BURST lines
 * per WSE_LOG_WINDOW seconds, and the lines held back become one summary
 * line, "... and N more WHAT lines in the last X s", written before the
 * site's next line or by wse_log_flush() (the worker calls it every second).
 *
 * The access log is a second stream: one line per connection (see
 * wse_access_line() and the man page's LOGGING section), to a file of its
 * own or stderr, never rate limited, nothing at all when it is off.  Opened,
 * reopened and switched on reload like the main log.
 */
#ifndef WSE_LOG_H
#define WSE_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

enum wse_log_level { WSE_LOG_ERROR = 0, WSE_LOG_WARN, WSE_LOG_INFO, WSE_LOG_DEBUG };

#define WSE_LOG_BURST 10        /* lines per call site and window written in full */
#define WSE_LOG_WINDOW 1.0      /* seconds */

extern enum wse_log_level wse_log_max;   /* lines above this level are skipped */

/* Opens path ("" = stderr).  Returns 0, or -1 with errno set. */
int wse_log_open(const char *path, enum wse_log_level level);

/* Reopens the same path (logrotate).  Returns 0, or -1 and keeps the old fd. */
int wse_log_reopen(void);

/* The log file's descriptor, -1 when the log goes to stderr: what the
 * master hands to the workers after a reopen. */
int wse_log_file_fd(void);

/* Writes the log to fd (the same file, reopened by the master) from now on;
 * the descriptor in use is closed. */
void wse_log_use_fd(int fd);

/* The log in use before a wse_log_switch(): to go back to, or to discard. */
struct wse_log_saved {
    int fd;
    enum wse_log_level level;
    char path[WSE_STR_MAX];
};

/* Opens path for wse_log_switch() ("" = stderr): an fd, or -1 with errno set. */
int wse_log_prepare(const char *path);

/* Logs to fd (from wse_log_prepare(path)) at level from now on.  What was in
 * use is stored in *before with its file still open: a reload switches back
 * to it if it fails, or discards it once it succeeds. */
void wse_log_switch(int fd, const char *path, enum wse_log_level level,
                    struct wse_log_saved *before);

/* Closes the file of a log set aside (never stderr, never one in use). */
void wse_log_discard(struct wse_log_saved *s);

/* ---- the access log ---- */

/* Opens the access log: "off", "stderr" or a file.  0, or -1 with errno set. */
int wse_access_open(const char *path);

/* Reopens its file (logrotate).  0, or -1 and keeps the old fd. */
int wse_access_reopen(void);

/* Opens path for wse_access_switch(): 0 with *fd (-1 for "off"), or -1 with
 * errno set. */
int wse_access_prepare(const char *path, int *fd);

/* Writes the access log to fd (from wse_access_prepare(path)) from now on;
 * what was in use goes to *before, as with wse_log_switch(). */
void wse_access_switch(int fd, const char *path, struct wse_log_saved *before);

/* The access log file's descriptor, -1 when it is off or stderr. */
int wse_access_file_fd(void);

/* wse_log_use_fd() for the access log. */
void wse_access_use_fd(int fd);

extern int wse_access_fd;      /* -1 while the access log is off */

/* True when access lines are written: callers skip their work otherwise. */
static inline bool wse_access_on(void)
{
    return wse_access_fd >= 0;
}

/* Writes one access line: the time, "worker=N", then the formatted fields. */
void wse_access_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies n bytes of peer-sent text into out (cap >= 8 bytes, NUL-terminated)
 * for a log line: visible ASCII as is, '"', '\\' and all other bytes as \xHH,
 * so that a field cannot end early or forge another; cut with "..." when it
 * does not fit. */
const char *wse_log_escape(const char *p, size_t n, char *out, size_t cap);

/* Sets the "[...]" part of every line: "master pid 10" or "worker 3 pid 12". */
void wse_log_identity(int worker, int pid);

/* The same for another kind of process: "metrics pid 14". */
void wse_log_identity_role(const char *role, int pid);

void wse_log_line(enum wse_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends ": SYSCALL failed: strerror(errno)" to the message. */
void wse_log_errno(enum wse_log_level level, const char *syscall, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * One call site's rate limit: a static struct, zero-initialised but for its
 * name, so that limiting never allocates.  Not thread-safe (nor needs to be:
 * each worker is a process with one thread).
 */
struct wse_log_limit {
    const char *what;               /* names the lines in the summary */
    enum wse_log_level level;       /* the summary's level: the lines' level */
    double start;                   /* monotonic start of the current window */
    unsigned logged;                /* lines written in this window */
    unsigned held;                  /* lines held back in this window */
    bool pending;                   /* on the list of limits that owe a summary */
    struct wse_log_limit *next;     /* ... that list */
};

/*
 * The decision for one line at time now (pure, for tests).  Returns true to
 * write it.  When a window with held lines ended, *held gets their number
 * and *span the seconds since that window began, and the summary is due
 * before this line; otherwise *held is 0.
 */
bool wse_log_limit_admit(struct wse_log_limit *l, double now, unsigned *held, double *span);

/*
 * For a periodic flush (pure, for tests): when l's window ended (or force)
 * with held lines, returns their number (*span as above) and starts afresh;
 * otherwise 0.
 */
unsigned wse_log_limit_expire(struct wse_log_limit *l, double now, bool force, double *span);

/* The clock-reading, summary-writing form of admit, for log_limited(). */
bool wse_log_admit(struct wse_log_limit *l, enum wse_log_level level);

/* Writes the summaries that are due (all of them when force: at exit). */
void wse_log_flush(bool force);

/* The level test is inline so that a skipped debug line costs no formatting. */
#define wse_log(level, ...) \
    do { if ((level) <= wse_log_max) wse_log_line((level), __VA_ARGS__); } while (0)
#define log_error(...) wse_log(WSE_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  wse_log(WSE_LOG_WARN, __VA_ARGS__)
#define log_info(...)  wse_log(WSE_LOG_INFO, __VA_ARGS__)
#define log_debug(...) wse_log(WSE_LOG_DEBUG, __VA_ARGS__)

/* A rate-limited line; each use is a call site with a limit of its own. */
#define log_limited(level, what_, ...)                                           \
    do {                                                                        \
        static struct wse_log_limit lim_ = {.what = (what_)};                   \
        if ((level) <= wse_log_max && wse_log_admit(&lim_, (level)))            \
            wse_log_line((level), __VA_ARGS__);                                 \
    } while (0)

#endif
