/*
 * worker.c - post-fork hygiene, the loop, listener watchers, bounded accept,
 * EMFILE back-off, drain and fast stop.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <ev.h>

#include "chan.h"
#include "common.h"
#include "conn.h"
#include "log.h"
#include "net.h"
#include "priv.h"
#include "tls.h"
#include "worker.h"

/*
 * Sanitizer builds (make SAN=1) check a worker for leaks when it ends: it
 * leaves with _exit, which skips the exit-time check LeakSanitizer runs in
 * the master.  The compiler says whether its runtime is linked in.
 */
#if defined(__SANITIZE_ADDRESS__)
#define WSE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WSE_LSAN 1
#endif
#endif
#ifdef WSE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define ACCEPT_BATCH 64         /* accepts per wake-up: one busy listener cannot starve the loop */
#define ACCEPT_BACKOFF 0.1      /* seconds without accepting after EMFILE */
#define STOP_GRACE 1.5          /* a fast stop ends within this, whatever peers do */
#define ORPHAN_GRACE 0.5        /* ... and sooner when the master is gone */
#define EXIT_POLL 0.05
#define SPREAD_TICK 0.05        /* a drain's closes go out in batches this far apart */

static struct {
    struct ev_loop *loop;
    const struct wse_worker_args *args;
    ev_io *listeners;           /* one per listening socket this worker holds */
    bool *watched;              /* ... whether it serves it: its own slot's, or an adopted one's */
    bool listeners_closed;
    ev_io chan;
    ev_timer accept_backoff;
    ev_timer exit_poll;         /* while stopping: exit once no connection is left */
    ev_timer deadline;          /* while stopping: exit now */
    ev_timer drain_timer;       /* while draining: close what is left */
    ev_timer spread_timer;      /* ... in batches over close_spread */
    unsigned spread_batch;
    ev_signal sigterm;
    ev_timer heartbeat;
    bool stopping;
    bool emfile_logged;
} K;

static void listeners_stop(void)
{
    for (unsigned i = 0; i < K.args->nlisten; i++)
        ev_io_stop(K.loop, &K.listeners[i]);
}

static bool accepts_paused(void)
{
    return ev_is_active(&K.accept_backoff);
}

static void listeners_start(void)
{
    if (K.listeners_closed)
        return;
    for (unsigned i = 0; i < K.args->nlisten; i++)
        if (K.watched[i])
            ev_io_start(K.loop, &K.listeners[i]);
}

/*
 * The master's WATCH/UNWATCH: serve the sockets of slot `slot` too while
 * its worker is down (they stay open in the master and in every worker of
 * this generation, so the kernel keeps queueing there), or leave them to
 * that worker again.  Leaving loses nothing: what is queued waits for the
 * slot's own worker, which reported ready before the master said so.
 * A worker that stopped accepting (draining) adopts nothing.
 */
static void listeners_adopt(unsigned slot, bool on)
{
    const struct wse_worker_args *a = K.args;
    unsigned n = 0;

    if (K.listeners_closed)
        return;
    if (slot >= a->cfg->workers || slot == (unsigned)a->slot) {
        log_warn("channel: no slot %u to %s", slot, on ? "watch" : "unwatch");
        return;
    }
    for (unsigned i = 0; i < a->nlisten; i++) {
        if (a->listen_slots[i] != slot)
            continue;
        K.watched[i] = on;
        n++;
        if (!on)
            ev_io_stop(K.loop, &K.listeners[i]);
        else if (!accepts_paused())
            ev_io_start(K.loop, &K.listeners[i]);
    }
    log_debug("%s %u %s of slot %u", on ? "serving" : "leaving", n,
              wse_plural(n, "socket", "sockets"), slot);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents);

/*
 * Leaves the listening sockets to the others.  What the kernel already
 * queued on the sockets this worker watches is accepted first: the sockets
 * themselves stay open in the master (and in a new generation's workers),
 * so nothing queued after this is lost either.
 */
static void listeners_close(void)
{
    if (K.listeners_closed)
        return;
    listeners_stop();
    for (unsigned i = 0; i < K.args->nlisten; i++) {
        int before;
        if (!K.watched[i]) {
            /* Another worker's: holding it made no difference to anyone. */
            close(K.listeners[i].fd);
            continue;
        }
        do {
            before = (int)wse_conn_count();
            on_accept(K.loop, &K.listeners[i], EV_READ);
        } while ((int)wse_conn_count() > before);
        close(K.listeners[i].fd);
    }
    K.listeners_closed = true;
}

static void accept_pause(int err)
{
    if (!K.emfile_logged) {
        errno = err;
        wse_log_errno(WSE_LOG_ERROR, "accept4", "out of descriptors or memory, pausing accepts for %.0f ms",
                      ACCEPT_BACKOFF * 1000);
        K.emfile_logged = true;
    }
    listeners_stop();
    ev_timer_set(&K.accept_backoff, ACCEPT_BACKOFF, 0);
    ev_timer_start(K.loop, &K.accept_backoff);
}

static void on_accept_backoff(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    if (!K.stopping)
        listeners_start();
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    const struct wse_config *cfg = K.args->cfg;
    (void)loop, (void)revents;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        int fd = wse_net_accept(w->fd, &peer);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause(errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                wse_log_errno(WSE_LOG_ERROR, "accept4", "listener fd %d", w->fd);
            return;
        }
        K.emfile_logged = false;
        bool tls = w->data != NULL;
        if (wse_conn_count() >= cfg->max_connections) {
            wse_conn_refuse_busy(fd, &peer, tls);
            continue;
        }
        wse_conn_accepted(fd, &peer, tls);
    }
}

static void on_exit_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t, (void)revents;
    if (wse_conn_count() == 0)
        ev_break(loop, EVBREAK_ALL);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t, (void)revents;
    unsigned open = wse_conn_count();
    log_info("stop: %u %s still open at the deadline, exiting", open,
             wse_plural(open, "connection", "connections"));
    ev_break(loop, EVBREAK_ALL);
}

/* Stop accepting and leave once the connections are gone (or at deadline). */
static void begin_exit(double deadline)
{
    K.stopping = true;
    listeners_close();
    ev_timer_stop(K.loop, &K.accept_backoff);
    ev_timer_set(&K.exit_poll, 0, EXIT_POLL);
    ev_timer_again(K.loop, &K.exit_poll);
    ev_timer_set(&K.deadline, deadline, 0);
    ev_timer_start(K.loop, &K.deadline);
}

static void fast_stop(double grace)
{
    /* Overrides a drain in progress, and shortens any wait already set. */
    if (ev_is_active(&K.deadline)) {
        ev_tstamp left = ev_timer_remaining(K.loop, &K.deadline);
        if (left < grace)
            grace = left;
    }
    ev_timer_stop(K.loop, &K.drain_timer);
    ev_timer_stop(K.loop, &K.spread_timer);
    ev_timer_stop(K.loop, &K.deadline);
    unsigned open = wse_conn_count();
    log_info("stopping: closing %u %s with 1001", open,
             wse_plural(open, "connection", "connections"));
    wse_conn_close_all(WSE_CONN_GOING_AWAY, "server shutting down");
    begin_exit(grace);
}

/* Everything is closing: leave once it is closed, or the close timeout passed. */
static void drain_closed(void)
{
    ev_timer_stop(K.loop, &K.spread_timer);
    ev_timer_stop(K.loop, &K.deadline);
    begin_exit(K.args->cfg->close_timeout + 1);
}

static void on_spread(struct ev_loop *loop, ev_timer *t, int revents)
{
    const struct wse_config *cfg = K.args->cfg;
    (void)loop, (void)t, (void)revents;

    if (wse_conn_close_some(K.spread_batch, (uint16_t)cfg->drain_close_code,
                            "server restarting") < K.spread_batch)
        drain_closed();
}

/*
 * Thousands of clients told to go at the same millisecond would come back
 * at the same millisecond: the closes go out in batches over close_spread.
 */
static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    const struct wse_config *cfg = K.args->cfg;
    unsigned open = wse_conn_count();
    (void)loop, (void)t, (void)revents;

    log_info("drain timeout: closing %u %s with %u over %.1f s", open,
             wse_plural(open, "connection", "connections"), cfg->drain_close_code,
             cfg->close_spread);
    if (cfg->close_spread < SPREAD_TICK) {
        wse_conn_close_all((uint16_t)cfg->drain_close_code, "server restarting");
        drain_closed();
        return;
    }
    double ticks = cfg->close_spread / SPREAD_TICK;
    K.spread_batch = (unsigned)((double)open / ticks) + 1;
    ev_timer_set(&K.spread_timer, 0, SPREAD_TICK);
    ev_timer_again(K.loop, &K.spread_timer);
}

/* Graceful: no new connections, open ones served until drain timeout. */
static void drain(void)
{
    const struct wse_config *cfg = K.args->cfg;

    if (K.stopping)
        return;
    wse_stats_slot_state(K.args->stats, WSE_SLOT_DRAINING);
    wse_conn_set_draining();
    begin_exit(cfg->drain_timeout + cfg->close_spread + cfg->close_timeout + 1);
    ev_timer_set(&K.drain_timer, cfg->drain_timeout, 0);
    ev_timer_start(K.loop, &K.drain_timer);
    /* Logged once the listeners are closed: from this line on, this worker
     * accepts nothing (tests and operators may rely on that). */
    unsigned open = wse_conn_count();
    log_info("draining %u %s (up to %.1f s)", open, wse_plural(open, "connection", "connections"),
             cfg->drain_timeout);
}

/*
 * The master reopened the logs and sends what it opened: the worker takes
 * those (under --user it may not open the files itself).  A log that came
 * without a descriptor (stderr, or during a reload) is reopened by path.
 */
static void reopen_logs(uint32_t what, const int *fds, unsigned nfds)
{
    unsigned next = 0;

    if ((what & WSE_CHAN_REOPEN_LOG) && next < nfds)
        wse_log_use_fd(fds[next++]);
    else if (wse_log_reopen() < 0)
        wse_log_errno(WSE_LOG_ERROR, "open", "reopening the log file");
    if ((what & WSE_CHAN_REOPEN_ACCESS) && next < nfds)
        wse_access_use_fd(fds[next++]);
    else if (wse_access_reopen() < 0)
        wse_log_errno(WSE_LOG_ERROR, "open", "reopening the access log");
    while (next < nfds)
        close(fds[next++]);
}

static void on_chan(struct ev_loop *loop, ev_io *w, int revents)
{
    struct wse_chan_rec rec;
    int fds[WSE_CHAN_MAX_FDS];
    unsigned nfds;
    int rc;
    (void)revents;

    while ((rc = wse_chan_recv_fds(w->fd, &rec, fds, WSE_CHAN_MAX_FDS, &nfds)) == 1) {
        if (rec.type != WSE_CHAN_REOPEN)
            while (nfds)
                close(fds[--nfds]);
        switch (rec.type) {
        case WSE_CHAN_STOP: fast_stop(STOP_GRACE); break;
        case WSE_CHAN_DRAIN: drain(); break;
        case WSE_CHAN_REOPEN: reopen_logs(rec.arg, fds, nfds); break;
        case WSE_CHAN_WATCH: listeners_adopt(rec.arg, true); break;
        case WSE_CHAN_UNWATCH: listeners_adopt(rec.arg, false); break;
        default: log_warn("unknown channel record %u", rec.type); break;
        }
    }
    if (rc == 0 || (rc < 0 && errno != EAGAIN)) {
        log_error("master is gone: stopping");
        ev_io_stop(loop, w);
        fast_stop(ORPHAN_GRACE);
    }
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    wse_stats_heartbeat(K.args->stats);
    /* A flood that stopped still owes its "... and N more" line. */
    wse_log_flush(false);
}

static void on_sigterm(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop, (void)s, (void)revents;
    /* SIGTERM comes from PR_SET_PDEATHSIG, or from someone stopping us. */
    fast_stop(getppid() == K.args->master_pid ? STOP_GRACE : ORPHAN_GRACE);
}

/*
 * Everything a child inherited that is not its own: die with the master,
 * default signal handling, no blocked signals.  SIGINT, SIGQUIT and SIGHUP
 * from a terminal reach the whole process group; the master decides what
 * they mean and tells the workers, so workers ignore them.
 */
static int post_fork_hygiene(const struct wse_worker_args *a)
{
    sigset_t none;
    char err[256];

    wse_log_identity(a->slot, (int)getpid());
    /* First of all, before a byte from a peer is read.  It clears the
     * parent-death signal, which is therefore set after it. */
    if (wse_priv_drop(&a->cfg->cred, err, sizeof err) < 0) {
        log_error("cannot run as user '%s': %s", a->cfg->user, err);
        return WSE_WORKER_EXIT_FATAL;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* The master may have died before prctl took effect. */
    if (getppid() != a->master_pid)
        return 1;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);   /* a peer that vanished is an EPIPE, not a death */
    return 0;
}

#ifdef WSE_LSAN
/*
 * Test hook of sanitizer builds only: WSECHOD_TEST_LEAK=1 makes every worker
 * lose one block of WSE_TEST_LEAK_BYTES, so a test can see that the exit
 * check runs and that its report reaches the server's output.
 */
#define WSE_TEST_LEAK_BYTES 4242
/* Stored complemented: LeakSanitizer must find no pointer to the block. */
static volatile uintptr_t test_leak_hidden;

static void leak_on_request(void)
{
    const char *v = getenv("WSECHOD_TEST_LEAK");

    if (v && strcmp(v, "1") == 0)
        test_leak_hidden = ~(uintptr_t)malloc(WSE_TEST_LEAK_BYTES);
}
#else
static void leak_on_request(void) {}
#endif

int wse_worker_run(const struct wse_worker_args *a)
{
    int status = post_fork_hygiene(a);
    if (status != 0)
        return status;
    leak_on_request();
    K.args = a;
    K.loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!K.loop) {
        log_error("ev_loop_new(EVBACKEND_EPOLL) failed");
        return 1;
    }
    int rc = wse_conn_setup(K.loop, a->cfg, a->stats);
    if (rc == WSE_CONN_SETUP_FATAL)
        return WSE_WORKER_EXIT_FATAL;   /* the reason is logged */
    if (rc < 0) {
        log_error("out of memory setting up the worker");
        return 1;
    }
    wse_conn_iplimit(a->iplimit, a->holder);
    wse_conn_tls(a->tls);
    /* Only the master rotates the ticket keys; a worker only reads them. */
    if (a->tls_keys)
        wse_tls_keys_seal(a->tls_keys);
    K.listeners = calloc(a->nlisten ? a->nlisten : 1, sizeof *K.listeners);
    K.watched = calloc(a->nlisten ? a->nlisten : 1, sizeof *K.watched);
    if (!K.listeners || !K.watched) {
        log_error("out of memory setting up the worker");
        return 1;
    }
    for (unsigned i = 0; i < a->nlisten; i++) {
        ev_io_init(&K.listeners[i], on_accept, a->listen_fds[i], EV_READ);
        /* on_accept tells a TLS listener by its watcher's data. */
        K.listeners[i].data = a->listen_tls && a->listen_tls[i] ? (void *)&K : NULL;
        K.watched[i] = a->listen_slots[i] == (unsigned)a->slot;
    }
    ev_timer_init(&K.accept_backoff, on_accept_backoff, 0, 0);
    listeners_start();
    ev_io_init(&K.chan, on_chan, a->chan_fd, EV_READ);
    ev_io_start(K.loop, &K.chan);
    ev_timer_init(&K.exit_poll, on_exit_poll, 0, EXIT_POLL);
    ev_timer_init(&K.deadline, on_deadline, 0, 0);
    ev_timer_init(&K.drain_timer, on_drain_timeout, 0, 0);
    ev_timer_init(&K.spread_timer, on_spread, 0, SPREAD_TICK);
    ev_signal_init(&K.sigterm, on_sigterm, SIGTERM);
    ev_signal_start(K.loop, &K.sigterm);
    ev_timer_init(&K.heartbeat, on_heartbeat, 0, 1.0);
    ev_timer_again(K.loop, &K.heartbeat);
    wse_stats_slot_set(a->stats, getpid(), a->slot, a->generation, WSE_SLOT_RUNNING);
    wse_stats_heartbeat(a->stats);

    if (wse_chan_send(a->chan_fd, WSE_CHAN_READY, a->generation) < 0)
        wse_log_errno(WSE_LOG_WARN, "send", "telling the master we are ready");
    log_debug("serving (generation %u, struct conn is %zu bytes)", a->generation,
              wse_conn_struct_size());
    ev_run(K.loop, 0);
    wse_log_flush(true);
    unsigned left = wse_conn_count();
    log_debug("exiting with %u %s left", left, wse_plural(left, "connection", "connections"));
    return 0;
}

_Noreturn void wse_worker_exit(int status)
{
#ifdef WSE_LSAN
    /* Reports what this worker lost and exits with ASAN_OPTIONS' exitcode. */
    __lsan_do_leak_check();
#endif
    _exit(status);
}
