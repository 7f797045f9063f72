/*
 * master.c - slot table, listeners, spawn / respawn with back-off, signals,
 * pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "chan.h"
#include "common.h"
#include "log.h"
#include "master.h"
#include "net.h"
#include "stats.h"
#include "worker.h"

#define LISTEN_BACKLOG 4096
#define RESPAWN_MIN 0.1          /* first delay after a quick death */
#define RESPAWN_MAX 5.0
#define QUICK_DEATH 1.0          /* dying sooner than this after start counts as failing */
#define STOP_KILL_AFTER 3.0      /* fast stop: SIGKILL what is left after this */

enum slot_state { SLOT_EMPTY, SLOT_STARTING, SLOT_RUNNING, SLOT_STOPPING };

struct slot {
    int index;
    pid_t pid;
    int chan;                    /* master end of the channel, -1 when none */
    ev_io chan_io;
    ev_timer respawn;
    ev_tstamp started;
    unsigned fails;              /* consecutive quick deaths */
    unsigned generation;
    enum slot_state state;
    int stats_slot;              /* index in the stats segment, -1 when none */
    int lfds[WSE_MAX_LISTEN];
};

static struct {
    struct ev_loop *loop;
    struct wse_config cfg;
    int argc;
    char *const *argv;
    struct slot *slots;
    unsigned nslots;
    int sigfd;
    ev_io sig_io;
    struct wse_stats stats;
    ev_timer kill_timer;
    unsigned generation;
    bool serving;                /* every slot reported ready once */
    bool stopping;
    int exit_status;
    pid_t pid;
} M;

static const int handled_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGCHLD};

static void spawn(struct slot *s);

/* ---- pid file ---------------------------------------------------------- */

static int write_pid_file(const char *path)
{
    char tmp[WSE_STR_MAX + 16], text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)M.pid);

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    /* Written whole, then renamed: a reader never sees a partial pid. */
    if (write(fd, text, (size_t)n) != n || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return rename(tmp, path);
}

/* ---- the child's side of fork ------------------------------------------ */

/* Closes in the child everything of the master's that is not this slot's. */
static void child_cleanup(const struct slot *mine)
{
    for (unsigned i = 0; i < M.nslots; i++) {
        const struct slot *s = &M.slots[i];
        if (s->chan >= 0 && s != mine)
            close(s->chan);
        if (s == mine)
            continue;
        for (unsigned l = 0; l < M.cfg.nlisten; l++)
            if (s->lfds[l] >= 0)
                close(s->lfds[l]);
    }
    close(M.sigfd);
    /* The master's loop (an ev_loop_new one, no signal handlers) is freed
     * with its epoll fd; the child builds its own. */
    ev_loop_destroy(M.loop);
}

/* ---- slots -------------------------------------------------------------- */

static void on_chan(struct ev_loop *loop, ev_io *w, int revents);

static void slot_close_chan(struct slot *s)
{
    if (s->chan < 0)
        return;
    ev_io_stop(M.loop, &s->chan_io);
    close(s->chan);
    s->chan = -1;
}

static void spawn(struct slot *s)
{
    int fds[2];

    if (wse_chan_pair(fds) < 0) {
        wse_log_errno(WSE_LOG_ERROR, "socketpair", "worker %d", s->index);
        ev_timer_set(&s->respawn, RESPAWN_MAX, 0);
        ev_timer_start(M.loop, &s->respawn);
        return;
    }
    s->generation = M.generation;
    s->stats_slot = wse_stats_free_slot(&M.stats);
    if (s->stats_slot < 0) {
        log_error("no free stats slot for worker %d", s->index);
        close(fds[0]);
        close(fds[1]);
        return;
    }
    /* The master writes a slot only while no worker owns it: before fork
     * and after the worker is reaped; in between the worker does. */
    struct wse_stats_slot *st = &M.stats.slots[s->stats_slot];
    wse_stats_slot_set(st, 0, s->index, s->generation, WSE_SLOT_STARTING);
    pid_t pid = fork();
    if (pid < 0) {
        wse_log_errno(WSE_LOG_ERROR, "fork", "worker %d", s->index);
        wse_stats_slot_set(st, 0, -1, 0, WSE_SLOT_EMPTY);
        s->stats_slot = -1;
        close(fds[0]);
        close(fds[1]);
        ev_timer_set(&s->respawn, RESPAWN_MAX, 0);
        ev_timer_start(M.loop, &s->respawn);
        return;
    }
    if (pid == 0) {
        struct wse_worker_args args = {
            .slot = s->index, .generation = s->generation, .master_pid = M.pid,
            .cfg = &M.cfg, .listen_fds = s->lfds, .nlisten = M.cfg.nlisten,
            .chan_fd = fds[1], .stats = st,
        };
        close(fds[0]);
        child_cleanup(s);
        _exit(wse_worker_run(&args));
    }
    close(fds[1]);
    s->pid = pid;
    s->chan = fds[0];
    s->state = SLOT_STARTING;
    s->started = ev_now(M.loop);
    ev_io_init(&s->chan_io, on_chan, s->chan, EV_READ);
    ev_io_start(M.loop, &s->chan_io);
}

static void on_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct slot *s = container_of(t, struct slot, respawn);
    (void)loop, (void)revents;
    if (!M.stopping)
        spawn(s);
}

static bool all_running(void)
{
    for (unsigned i = 0; i < M.nslots; i++)
        if (M.slots[i].state != SLOT_RUNNING)
            return false;
    return true;
}

static void on_chan(struct ev_loop *loop, ev_io *w, int revents)
{
    struct slot *s = container_of(w, struct slot, chan_io);
    struct wse_chan_rec rec;
    int rc;
    (void)loop, (void)revents;

    while ((rc = wse_chan_recv(w->fd, &rec)) == 1) {
        if (rec.type == WSE_CHAN_READY && s->state == SLOT_STARTING) {
            s->state = SLOT_RUNNING;
            log_debug("worker %d (pid %d) ready", s->index, (int)s->pid);
            if (!M.serving && all_running()) {
                M.serving = true;
                log_info("serving %s%s with %u workers", M.cfg.listen[0].text,
                         M.cfg.nlisten > 1 ? " and more" : "", M.nslots);
            }
        }
    }
    if (rc == 0)
        slot_close_chan(s);     /* the worker is gone; SIGCHLD tells how */
}

static void describe_exit(int status, char *out, size_t n)
{
    if (WIFEXITED(status))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(out, n, "ended with status %#x", status);
}

static bool any_alive(void)
{
    for (unsigned i = 0; i < M.nslots; i++)
        if (M.slots[i].pid > 0)
            return true;
    return false;
}

static void begin_stop(bool graceful, int status);

static void worker_died(struct slot *s, int status)
{
    char how[96];
    pid_t pid = s->pid;
    ev_tstamp lived = ev_now(M.loop) - s->started;

    describe_exit(status, how, sizeof how);
    slot_close_chan(s);
    s->pid = 0;
    if (s->stats_slot >= 0) {
        /* Totals never go backwards: fold before the slot is reused. */
        wse_stats_retire(&M.stats, (unsigned)s->stats_slot);
        wse_stats_slot_set(&M.stats.slots[s->stats_slot], 0, -1, 0, WSE_SLOT_EMPTY);
        s->stats_slot = -1;
    }
    if (M.stopping) {
        log_info("worker %d %s", s->index, how);
        s->state = SLOT_EMPTY;
        return;
    }
    if (!M.serving) {
        log_error("worker %d failed to start: %s", s->index, how);
        s->state = SLOT_EMPTY;
        begin_stop(false, 1);
        return;
    }
    s->fails = lived < QUICK_DEATH ? s->fails + 1 : 0;
    double delay = 0;
    if (s->fails) {
        delay = RESPAWN_MIN;
        for (unsigned i = 1; i < s->fails && delay < RESPAWN_MAX; i++)
            delay *= 2;
        if (delay > RESPAWN_MAX)
            delay = RESPAWN_MAX;
    }
    log_error("worker %d (pid %d) %s; respawning in %.1f s", s->index, (int)pid, how, delay);
    s->state = SLOT_EMPTY;
    if (delay == 0) {
        spawn(s);
    } else {
        ev_timer_set(&s->respawn, delay, 0);
        ev_timer_start(M.loop, &s->respawn);
    }
}

static void reap_children(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (unsigned i = 0; i < M.nslots; i++) {
            if (M.slots[i].pid == pid) {
                worker_died(&M.slots[i], status);
                break;
            }
        }
    }
    if (M.stopping && !any_alive())
        ev_break(M.loop, EVBREAK_ALL);
}

/* ---- stopping ----------------------------------------------------------- */

static void on_kill_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    for (unsigned i = 0; i < M.nslots; i++) {
        if (M.slots[i].pid > 0) {
            log_warn("worker %d (pid %d) still running: SIGKILL", i, (int)M.slots[i].pid);
            kill(M.slots[i].pid, SIGKILL);
        }
    }
}

static void begin_stop(bool graceful, int status)
{
    /* A fast stop overrides a drain in progress; a second drain changes nothing. */
    if (M.stopping && graceful)
        return;
    M.stopping = true;
    M.exit_status = status;
    double grace = graceful ? M.cfg.drain_timeout + M.cfg.close_timeout + 2 : STOP_KILL_AFTER;
    for (unsigned i = 0; i < M.nslots; i++) {
        struct slot *s = &M.slots[i];
        ev_timer_stop(M.loop, &s->respawn);
        if (s->pid <= 0)
            continue;
        s->state = SLOT_STOPPING;
        if (s->chan < 0 || wse_chan_send(s->chan, graceful ? WSE_CHAN_DRAIN : WSE_CHAN_STOP, 0) < 0)
            kill(s->pid, SIGTERM);
    }
    ev_timer_stop(M.loop, &M.kill_timer);
    ev_timer_set(&M.kill_timer, grace, 0);
    ev_timer_start(M.loop, &M.kill_timer);
    if (!any_alive())
        ev_break(M.loop, EVBREAK_ALL);
}

/* ---- signals ------------------------------------------------------------ */

static void reopen_logs(void)
{
    if (wse_log_reopen() < 0)
        wse_log_errno(WSE_LOG_ERROR, "open", "reopening log file %s", M.cfg.log_file);
    for (unsigned i = 0; i < M.nslots; i++)
        if (M.slots[i].chan >= 0)
            wse_chan_send(M.slots[i].chan, WSE_CHAN_REOPEN, 0);
    log_info("log file reopened");
}

static void on_signal(struct ev_loop *loop, ev_io *w, int revents)
{
    struct signalfd_siginfo si;
    (void)loop, (void)revents;

    while (read(w->fd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap_children();
            break;
        case SIGTERM:
        case SIGINT:
            log_info("%s: fast stop", strsignal((int)si.ssi_signo));
            begin_stop(false, 0);
            break;
        case SIGQUIT:
            log_info("SIGQUIT: graceful stop");
            begin_stop(true, 0);
            break;
        case SIGHUP:
            log_warn("SIGHUP: reload is not supported yet; configuration unchanged");
            break;
        case SIGUSR1:
            reopen_logs();
            break;
        }
    }
}

static int setup_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
        sigaddset(&set, handled_signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    M.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return M.sigfd < 0 ? -1 : 0;
}

/* ---- listeners ---------------------------------------------------------- */

static int open_listeners(void)
{
    char err[256];

    for (unsigned i = 0; i < M.nslots; i++) {
        for (unsigned l = 0; l < M.cfg.nlisten; l++) {
            int fd = wse_net_listen(&M.cfg.listen[l], LISTEN_BACKLOG, err, sizeof err);
            if (fd < 0) {
                log_error("%s", err);
                return -1;
            }
            M.slots[i].lfds[l] = fd;
        }
    }
    return 0;
}

static void close_everything(void)
{
    for (unsigned i = 0; i < M.nslots; i++) {
        slot_close_chan(&M.slots[i]);
        for (unsigned l = 0; l < M.cfg.nlisten; l++)
            if (M.slots[i].lfds[l] >= 0)
                close(M.slots[i].lfds[l]);
    }
    free(M.slots);
    wse_stats_close(&M.stats);
    if (M.sigfd >= 0)
        close(M.sigfd);
    if (M.cfg.pid_file[0])
        unlink(M.cfg.pid_file);
    ev_loop_destroy(M.loop);
}

int wse_master_run(const struct wse_config *cfg, int argc, char *const argv[])
{
    M.cfg = *cfg;
    M.argc = argc;
    M.argv = argv;
    M.pid = getpid();
    M.sigfd = -1;
    M.generation = 1;
    wse_log_identity(-1, (int)M.pid);

    long nofile = wse_net_raise_nofile();
    if (nofile < 0)
        wse_log_errno(WSE_LOG_WARN, "setrlimit", "raising RLIMIT_NOFILE");
    else
        log_info("descriptor limit %ld per process", nofile);

    M.nslots = cfg->workers;
    M.slots = calloc(M.nslots, sizeof *M.slots);
    if (!M.slots)
        return 1;
    for (unsigned i = 0; i < M.nslots; i++) {
        M.slots[i].index = (int)i;
        M.slots[i].chan = -1;
        M.slots[i].stats_slot = -1;
        for (unsigned l = 0; l < WSE_MAX_LISTEN; l++)
            M.slots[i].lfds[l] = -1;
    }
    M.loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!M.loop || setup_signals() < 0 || open_listeners() < 0) {
        if (M.sigfd < 0)
            wse_log_errno(WSE_LOG_ERROR, "signalfd", "setting up signals");
        if (M.loop)
            close_everything();
        return 1;
    }
    char name[WSE_STR_MAX + 2], err[512];
    wse_stats_default_name(name, sizeof name, cfg->stats_name, cfg->listen[0].port);
    if (wse_stats_create(&M.stats, name, 2 * WSE_MAX_WORKERS, cfg->workers, err, sizeof err) < 0) {
        log_error("%s", err);
        close_everything();
        return 1;
    }
    log_info("stats segment %s", name);
    if (cfg->pid_file[0] && write_pid_file(cfg->pid_file) < 0) {
        wse_log_errno(WSE_LOG_ERROR, "write", "pid file %s", cfg->pid_file);
        close_everything();
        return 1;
    }
    ev_io_init(&M.sig_io, on_signal, M.sigfd, EV_READ);
    ev_io_start(M.loop, &M.sig_io);
    ev_timer_init(&M.kill_timer, on_kill_timer, 0, 0);
    for (unsigned i = 0; i < M.nslots; i++) {
        ev_timer_init(&M.slots[i].respawn, on_respawn, 0, 0);
        spawn(&M.slots[i]);
    }
    ev_run(M.loop, 0);
    log_info("exiting");
    close_everything();
    return M.exit_status;
}
