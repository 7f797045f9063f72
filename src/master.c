/*
 * master.c - listeners, worker processes and their generations, spawn and
 * respawn with back-off, signals, reload, pid file, the stats segment.
 *
 * Listeners: for every listen address the master keeps a group of
 * SO_REUSEPORT sockets, one per worker slot ever used, and never closes one
 * while its address stays configured: closing a reuseport socket drops the
 * connections waiting in its queue.  When the worker count shrinks, the
 * sockets of the vanished slots are adopted by the remaining workers (slot j
 * is watched by worker j mod N), so the kernel can keep using them.
 *
 * Reload (SIGHUP) is build, validate, swap: the configuration is read again
 * (a bad one changes nothing), a new generation of workers starts on the
 * same sockets, and only when every new worker reports ready are the old
 * ones told to drain.  Old generations drain side by side, as many as the
 * reloads that came.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "chan.h"
#include "common.h"
#include "groups.h"
#include "iplimit.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "net.h"
#include "notify.h"
#include "priv.h"
#include "sockets.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

#define LISTEN_BACKLOG 4096
#define RESPAWN_MIN 0.1          /* first delay after a quick death */
#define RESPAWN_MAX 5.0
#define QUICK_DEATH 1.0          /* dying sooner than this after start counts as failing */
#define STOP_KILL_AFTER 3.0      /* fast stop: SIGKILL what is left after this */
#define READY_TIMEOUT 10.0       /* a new generation must be serving within this */
#define MAX_GROUPS (2 * WSE_MAX_LISTEN)   /* old and new addresses during a reload */
/* Session tickets: the key that issues them is replaced this often, and
 * the one before still opens them, so a ticket lives one to two periods
 * (and a session at most TICKET_PERIOD: SSL_CTX_set_timeout). */
#define TICKET_PERIOD 3600

_Static_assert(WSE_MAX_TLS_PAIRS == WSE_TLS_MAX_PAIRS, "config's and tls's pair limits");

enum proc_state { P_STARTING, P_RUNNING, P_DRAINING, P_STOPPING };

struct proc {
    struct proc *next;
    pid_t pid;
    int slot;                    /* worker index within its generation */
    unsigned generation;
    enum proc_state state;
    int chan;                    /* master end of the channel, -1 once closed */
    ev_io chan_io;
    int stats_slot;
    ev_tstamp started;
};

/* One listen address: its sockets, one per worker slot ever used. */
struct group {
    struct wse_listen addr;
    int fds[WSE_MAX_WORKERS];
    unsigned nfds;
    unsigned committed;          /* sockets a serving generation watches */
    bool used;
};

/*
 * A worker slot of generation M.generation: what respawning needs.  Between
 * events, every slot below M.nslots has a live worker or an armed respawn
 * timer, or lost its worker to a fatal start-up failure (WSE_WORKER_EXIT_FATAL,
 * left empty until slots_cover() runs again at a reload), and no slot above
 * has either (slots_cover() restores that).
 */
struct wslot {
    struct proc *proc;           /* NULL while waiting to respawn */
    unsigned fails;              /* consecutive quick deaths */
    unsigned kept_fails;         /* the serving generation's, while a reload starts */
    ev_timer respawn;
};

static struct {
    struct ev_loop *loop;
    struct wse_config cfg;       /* the configuration being served */
    struct wse_config next;      /* a reload's configuration until its workers serve */
    int argc;
    char *const *argv;
    struct proc *procs;          /* every live worker process, all generations */
    struct wslot slots[WSE_MAX_WORKERS];
    unsigned nslots;
    struct group groups[MAX_GROUPS];
    int sigfd;
    ev_io sig_io;
    ev_timer kill_timer;
    ev_timer ready_timer;        /* a reload's deadline */
    struct wse_stats stats;
    struct wse_iplimit iplimit;  /* per-address counts; holders are stats slots */
    struct wse_log_saved log_before;   /* the master's log while a reload starts */
    struct wse_log_saved access_before;   /* ... and its access log */
    unsigned generation;         /* the generation owning the slots (the new one in a reload) */
    unsigned prev_generation;    /* the one serving while a reload starts */
    unsigned generations;        /* numbers handed out, never reused */
    bool reloading;              /* generation `generation` is starting */
    bool reload_again;           /* a SIGHUP came while it was starting (or before serving) */
    bool upgrade_waiting;        /* a SIGUSR2 came before the first workers served */
    bool serving;                /* the first generation reported ready */
    bool stopping;
    int exit_status;
    pid_t pid;
    bool pid_file_written;
    /* TLS: the serving generation's contexts, a reload's until it serves,
     * and the ticket keys every generation shares (made once, rotated by
     * ticket_timer, never written anywhere). */
    struct wse_tls *tls, *next_tls;
    struct wse_tls_keys *tls_keys;
    ev_timer ticket_timer;
} M;

/*
 * Sockets that outlive a master (sockets.h) and the live upgrade (SIGUSR2;
 * see "live upgrade" below).  The old master is the one that started the
 * new binary; the new master is that binary, its child until the switch.
 */
static struct {
    struct wse_passed_set passed;   /* handed to this process at start, until taken */
    char exe[PATH_MAX];          /* the binary an upgrade starts: this one's path */
    /* old master */
    pid_t child;                 /* the new binary while it starts, 0 if none */
    int chan;                    /* to it, -1 */
    ev_io chan_io;
    ev_timer timer;              /* its readiness deadline */
    pid_t dying;                 /* a rejected attempt still stopping, 0 if none */
    ev_timer kill_timer;         /* ... SIGKILL when it takes too long */
    pid_t successor;             /* the new master after the switch */
    /* new master */
    pid_t parent;                /* the old master, 0 when not started by an upgrade */
    int parent_chan;             /* to it until the switch, -1 */
    ev_io parent_io;
    int stats_fd;                /* the stats segment handed over, -1 */
    bool committed;              /* took over (or was never an upgrade) */
} U = {.chan = -1, .parent_chan = -1, .stats_fd = -1, .committed = true};

static const int handled_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
                                       SIGCHLD};

static void spawn(unsigned slot, const struct wse_config *cfg, unsigned generation);
static void begin_stop(bool graceful, int status);
static void reload(void);
static int metrics_open(const struct wse_config *cfg);
static int metrics_prepare(const struct wse_config *next);
static void metrics_commit(const struct wse_config *cfg);
static void metrics_rollback(void);
static void metrics_replace(void);
static void metrics_spawn(void);
static void metrics_died(pid_t pid, int status);
static bool metrics_running(void);
static void metrics_signal(int sig);
static void metrics_stop(void);
static void metrics_close(void);
static void metrics_child_cleanup(const int *keep, unsigned nkeep);
static int slot_socket(const struct wse_listen *addr, unsigned slot, char *err, size_t errlen);
static unsigned slots_handed_over(const struct wse_listen *addr);
static void store_sockets(void);
static void unstore_socket(const struct wse_listen *addr, int slot);
static void upgrade_start(void);
static bool upgrade_busy(void);
static bool upgrade_reaped(pid_t pid, int status);
static void upgrade_serving(void);
static void upgrade_child_cleanup(void);
static void upgrade_stop(void);
static int stats_open(const char *name, char *err, size_t errlen);
static int tls_build(const struct wse_config *cfg, struct wse_tls **out, char *err, size_t n);
static bool pid_file_mine(void);

/* ---- pid file ---------------------------------------------------------- */

/*
 * The pid in a pid file: a regular file (opened without following a
 * symlink, without blocking on a FIFO) holding digits and an optional
 * newline, 2 to INT_MAX.  Anything wider is refused before it is narrowed
 * to pid_t: 4294967295 would become kill(-1), every process.  0, or -1
 * with the reason in err.
 */
static int read_pid_file(const char *path, pid_t *pid, char *err, size_t errlen)
{
    char text[32];
    struct stat sb;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "cannot read pid file '%s': %s%s", path, strerror(errno),
                 errno == ELOOP ? " (a symbolic link)" : "");
        return -1;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "pid file '%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    char *end = text;
    errno = 0;
    long value = text[0] >= '0' && text[0] <= '9' ? strtol(text, &end, 10) : 0;
    if (end == text || errno || (*end && strcmp(end, "\n") != 0) || value < 2 ||
        value > INT_MAX) {
        snprintf(err, errlen, "pid file '%s' holds no pid (a number from 2 to %d)", path,
                 INT_MAX);
        return -1;
    }
    *pid = (pid_t)value;
    return 0;
}

static int write_pid_file(const char *path)
{
    char tmp[WSE_STR_MAX + 16], text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)M.pid);

    /* A fresh unique name next to the pid file (rename stays atomic),
     * created O_EXCL: never through a symlink planted in a shared directory,
     * and a temporary left by a crash cannot block the next start. */
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* Written whole, then renamed: a reader never sees a partial pid. */
    if (fchmod(fd, 0644) < 0 || write(fd, text, (size_t)n) != n || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    M.pid_file_written = true;
    return 0;
}

/* Only a pid file this master wrote and that still holds its pid: a second
 * instance that failed to start must not remove the running one's. */
static void remove_pid_file(void)
{
    char err[WSE_STR_MAX + 64];
    pid_t pid;

    if (M.pid_file_written && read_pid_file(M.cfg.pid_file, &pid, err, sizeof err) == 0 &&
        pid == M.pid)
        unlink(M.cfg.pid_file);
}

/* ---- listener groups ----------------------------------------------------- */

/*
 * A listening socket carries no protocol: each generation's workers get
 * their own configuration's kind with it (fds_for).  So an address that a
 * reload turns TLS (or back) keeps its sockets, as any other address does:
 * the old workers stop accepting at the swap and the new ones take what is
 * queued.  Closing the old sockets instead would reset every connection
 * still waiting in them.  (The configuration refuses one port for both.)
 */
static bool same_addr(const struct wse_listen *a, const struct wse_listen *b)
{
    return a->family == b->family && a->port == b->port && strcmp(a->host, b->host) == 0;
}

static struct group *group_find(const struct wse_listen *addr)
{
    for (unsigned g = 0; g < MAX_GROUPS; g++)
        if (M.groups[g].used && same_addr(&M.groups[g].addr, addr))
            return &M.groups[g];
    return NULL;
}

/* Makes sure addr has at least n sockets.  0, or -1 (logged). */
static int group_ensure(const struct wse_listen *addr, unsigned n)
{
    struct group *grp = group_find(addr);
    char err[256];

    if (!grp) {
        for (unsigned g = 0; g < MAX_GROUPS && !grp; g++)
            if (!M.groups[g].used)
                grp = &M.groups[g];
        if (!grp) {
            log_error("too many listen addresses at once");
            return -1;
        }
        memset(grp, 0, sizeof *grp);
        grp->addr = *addr;
        grp->used = true;
    }
    /* Slots handed over beyond n are kept: connections wait in them. */
    unsigned passed = slots_handed_over(addr);
    n = passed > n ? passed : n;
    while (grp->nfds < n) {
        int fd = slot_socket(addr, grp->nfds, err, sizeof err);
        if (fd < 0) {
            log_error("%s", err);
            if (!grp->nfds)
                grp->used = false;
            return -1;
        }
        grp->fds[grp->nfds++] = fd;
    }
    return 0;
}

static void group_close(struct group *grp)
{
    for (unsigned i = 0; i < grp->nfds; i++) {
        close(grp->fds[i]);
        unstore_socket(&grp->addr, (int)i);
    }
    /* After a live upgrade the sockets live on in the new master. */
    if (!U.successor)
        log_info("stopped listening on %s", grp->addr.text);
    grp->nfds = 0;
    grp->used = false;
}

/* Opens what cfg needs.  0, or -1 when an address cannot be bound. */
static int groups_open(const struct wse_config *cfg)
{
    for (unsigned l = 0; l < cfg->nlisten; l++)
        if (group_ensure(&cfg->listen[l], cfg->workers) < 0)
            return -1;
    return 0;
}

/* A kept address whose kind changed: its sockets' names in systemd's store
 * say the kind (sockets.h), so the old names go before store_sockets(). */
static void group_retag(struct group *grp, const struct wse_listen *now)
{
    if (grp->addr.tls == now->tls)
        return;
    for (unsigned i = 0; i < grp->nfds; i++)
        unstore_socket(&grp->addr, (int)i);
    grp->addr.tls = now->tls;
}

/* After a swap: addresses no longer configured stop listening. */
static void groups_prune(const struct wse_config *cfg)
{
    for (unsigned g = 0; g < MAX_GROUPS; g++) {
        struct group *grp = &M.groups[g];
        const struct wse_listen *wanted = NULL;
        for (unsigned l = 0; grp->used && l < cfg->nlisten && !wanted; l++)
            if (same_addr(&grp->addr, &cfg->listen[l]))
                wanted = &cfg->listen[l];
        if (wanted)
            group_retag(grp, wanted);
        else if (grp->used)
            group_close(grp);
        grp->committed = grp->nfds;
    }
}

/*
 * After a failed reload: sockets that only the abandoned generation would
 * have watched are closed, or the kernel would keep queueing connections
 * nobody accepts.  (Those already queued there are lost; logged.)
 */
static void groups_rollback(void)
{
    for (unsigned g = 0; g < MAX_GROUPS; g++) {
        struct group *grp = &M.groups[g];
        if (!grp->used || grp->nfds == grp->committed)
            continue;
        log_warn("reload undone: closing %u new sockets of %s", grp->nfds - grp->committed,
                 grp->addr.text);
        while (grp->nfds > grp->committed) {
            close(grp->fds[--grp->nfds]);
            unstore_socket(&grp->addr, (int)grp->nfds);
        }
        if (!grp->nfds)
            grp->used = false;
    }
}

static void groups_close_all(void)
{
    for (unsigned g = 0; g < MAX_GROUPS; g++)
        if (M.groups[g].used)
            group_close(&M.groups[g]);
}

/*
 * The sockets a worker of cfg holds: every socket of its addresses, each
 * with the slot that watches it (socket j: slot j mod workers, groups.h).
 * A worker watches its own slot's, and holds the others so that it can
 * adopt an orphaned slot's at once (see "orphaned slots").
 */
static unsigned fds_for(const struct wse_config *cfg, int *out, unsigned *slots, bool *tls,
                        unsigned cap)
{
    unsigned n = 0;

    for (unsigned l = 0; l < cfg->nlisten; l++) {
        const struct group *grp = group_find(&cfg->listen[l]);
        for (unsigned s = 0; grp && s < cfg->workers && n < cap; s++) {
            unsigned pick[WSE_MAX_WORKERS];
            unsigned k = wse_group_pick(s, cfg->workers, grp->nfds, pick, cap - n);
            for (unsigned i = 0; i < k; i++) {
                slots[n] = s;
                tls[n] = cfg->listen[l].tls;
                out[n++] = grp->fds[pick[i]];
            }
        }
    }
    return n;
}

/* ---- processes ----------------------------------------------------------- */

static struct proc *proc_by_pid(pid_t pid)
{
    for (struct proc *p = M.procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

static void proc_close_chan(struct proc *p)
{
    if (p->chan < 0)
        return;
    ev_io_stop(M.loop, &p->chan_io);
    close(p->chan);
    p->chan = -1;
}

static void adoption_forget(const struct proc *p);

static void proc_unlink(struct proc *p)
{
    adoption_forget(p);
    for (struct proc **pp = &M.procs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    proc_close_chan(p);
    free(p);
}

/* STOP or DRAIN.  (REOPEN goes with descriptors: wse_chan_send_fds.) */
static void tell(struct proc *p, uint32_t type)
{
    /* A worker that cannot hear us is stopped the blunt way. */
    if (p->chan < 0 || wse_chan_send(p->chan, type, 0) < 0)
        kill(p->pid, SIGTERM);
}

/* Closes in the child everything of the master's that is not its own. */
static void child_cleanup(const int *keep, unsigned nkeep)
{
    for (unsigned g = 0; g < MAX_GROUPS; g++) {
        const struct group *grp = &M.groups[g];
        for (unsigned i = 0; grp->used && i < grp->nfds; i++) {
            bool mine = false;
            for (unsigned k = 0; k < nkeep && !mine; k++)
                mine = keep[k] == grp->fds[i];
            if (!mine)
                close(grp->fds[i]);
        }
    }
    for (struct proc *p = M.procs; p; p = p->next)
        if (p->chan >= 0)
            close(p->chan);
    metrics_child_cleanup(keep, nkeep);
    upgrade_child_cleanup();
    close(M.sigfd);
    /* The logs a reload may go back to are the master's, not this worker's. */
    wse_log_discard(&M.log_before);
    wse_log_discard(&M.access_before);
    /* The master's loop (ev_loop_new, no signal handlers of libev's) is
     * freed with its epoll fd; the child builds its own. */
    ev_loop_destroy(M.loop);
}

static void on_chan(struct ev_loop *loop, ev_io *w, int revents);

static void child_main(struct proc *p, const struct wse_config *cfg, int chan_fd)
{
    static int fds[WSE_MAX_LISTEN * WSE_MAX_WORKERS];
    static unsigned fd_slots[countof(fds)];
    static bool fd_tls[countof(fds)];
    unsigned n = fds_for(cfg, fds, fd_slots, fd_tls, countof(fds));
    struct wse_worker_args args = {
        .slot = p->slot, .generation = p->generation, .master_pid = M.pid, .cfg = cfg,
        .listen_fds = fds, .listen_slots = fd_slots, .listen_tls = fd_tls, .nlisten = n,
        .chan_fd = chan_fd, .stats = &M.stats.slots[p->stats_slot],
        .iplimit = &M.iplimit, .holder = (unsigned)p->stats_slot,
        /* The generation's own contexts: a reload's while it starts. */
        .tls = cfg == &M.next ? M.next_tls : M.tls, .tls_keys = M.tls_keys,
    };

    child_cleanup(fds, n);
    free(p);            /* not linked into M.procs yet: the child's only reference */
    wse_worker_exit(wse_worker_run(&args));
}

static void respawn_later(unsigned slot, double delay)
{
    ev_timer_stop(M.loop, &M.slots[slot].respawn);
    ev_timer_set(&M.slots[slot].respawn, delay, 0);
    ev_timer_start(M.loop, &M.slots[slot].respawn);
}

static void spawn(unsigned slot, const struct wse_config *cfg, unsigned generation)
{
    int fds[2];
    int stats_slot = wse_stats_free_slot(&M.stats);

    if (stats_slot < 0 || wse_chan_pair(fds) < 0) {
        wse_log_errno(WSE_LOG_ERROR, stats_slot < 0 ? "stats slot" : "socketpair",
                      "starting worker %u", slot);
        respawn_later(slot, RESPAWN_MAX);
        return;
    }
    struct proc *p = calloc(1, sizeof *p);
    if (!p) {
        close(fds[0]);
        close(fds[1]);
        respawn_later(slot, RESPAWN_MAX);
        return;
    }
    p->slot = (int)slot;
    p->generation = generation;
    p->stats_slot = stats_slot;
    p->state = P_STARTING;
    /* The master writes a stats slot only while no worker owns it: before
     * fork and after the worker is reaped; in between the worker does. */
    wse_stats_slot_set(&M.stats.slots[stats_slot], 0, (int)slot, generation, WSE_SLOT_STARTING);

    pid_t pid = fork();
    if (pid < 0) {
        wse_log_errno(WSE_LOG_ERROR, "fork", "worker %u", slot);
        wse_stats_slot_set(&M.stats.slots[stats_slot], 0, -1, 0, WSE_SLOT_EMPTY);
        close(fds[0]);
        close(fds[1]);
        free(p);
        respawn_later(slot, RESPAWN_MAX);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(p, cfg, fds[1]);
    }
    close(fds[1]);
    p->pid = pid;
    p->chan = fds[0];
    p->started = ev_now(M.loop);
    ev_io_init(&p->chan_io, on_chan, p->chan, EV_READ);
    ev_io_start(M.loop, &p->chan_io);
    p->next = M.procs;
    M.procs = p;
    if (generation == M.generation)
        M.slots[slot].proc = p;
}

/* The configuration of generation M.generation: the one its slots respawn with. */
static const struct wse_config *slots_cfg(void)
{
    return M.reloading ? &M.next : &M.cfg;
}

/* The back-off after `fails` consecutive quick deaths: 0, 0.1, 0.2, ... 5 s. */
static double backoff_delay(unsigned fails)
{
    double delay = fails ? RESPAWN_MIN : 0;

    for (unsigned i = 1; i < fails && delay < RESPAWN_MAX; i++)
        delay *= 2;
    return delay > RESPAWN_MAX ? RESPAWN_MAX : delay;
}

static void on_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct wslot *ws = container_of(t, struct wslot, respawn);
    unsigned slot = (unsigned)(ws - M.slots);
    (void)loop, (void)revents;
    /* slots_cover() stops the timers of retired slots; this is the backstop. */
    if (!M.stopping && !ws->proc && slot < M.nslots)
        spawn(slot, slots_cfg(), M.generation);
}

static bool proc_live(const struct proc *p)
{
    return p->state == P_STARTING || p->state == P_RUNNING;
}

/*
 * Makes the slots true again after the generation owning them changed (a
 * swap, an abandoned reload): each slot below M.nslots points at its live
 * worker of M.generation or has its respawn timer armed, with the back-off
 * its fails earned; slots above have neither timer nor worker.
 */
static void slots_cover(void)
{
    for (unsigned i = 0; i < WSE_MAX_WORKERS; i++)
        M.slots[i].proc = NULL;
    for (struct proc *p = M.procs; p; p = p->next) {
        if (p->generation != M.generation || !proc_live(p))
            continue;
        if ((unsigned)p->slot < M.nslots && !M.slots[p->slot].proc) {
            M.slots[p->slot].proc = p;
        } else {
            /* Not a slot of this generation (any more): it must not serve on. */
            log_warn("worker %d (pid %d) has no slot in generation %u: draining it", p->slot,
                     (int)p->pid, M.generation);
            p->state = P_DRAINING;
            tell(p, WSE_CHAN_DRAIN);
        }
    }
    for (unsigned i = 0; i < WSE_MAX_WORKERS; i++) {
        struct wslot *ws = &M.slots[i];
        if (i >= M.nslots || ws->proc) {
            ev_timer_stop(M.loop, &ws->respawn);
            if (i >= M.nslots)
                ws->fails = 0;
        } else if (!ev_is_active(&ws->respawn)) {
            double delay = backoff_delay(ws->fails);
            log_warn("worker %u of generation %u is missing: respawning in %.1f s", i,
                     M.generation, delay);
            respawn_later(i, delay);
        }
    }
}

/* ---- orphaned slots ------------------------------------------------------- */

/*
 * A slot whose worker died leaves its sockets unserved until the respawn
 * (up to RESPAWN_MAX in a crash loop), while the kernel keeps hashing new
 * connections to them.  Every worker holds every socket of its addresses
 * (fds_for), so until the slot's worker is back and ready, a live worker
 * of the same generation is told to watch them too (WSE_CHAN_WATCH), and
 * to leave them once it is (WSE_CHAN_UNWATCH).  Holding or watching a
 * socket changes nothing in how the kernel spreads connections over them.
 *
 * The generation that adopts is the serving one: while a reload starts,
 * the previous one (a new worker that dies fails the reload instead).
 * Draining workers closed their sockets and adopt nothing.
 */
static struct proc *adopters[WSE_MAX_WORKERS];   /* who watches slot k's sockets for it */

static void adoption_forget(const struct proc *p)
{
    for (unsigned k = 0; k < WSE_MAX_WORKERS; k++)
        if (adopters[k] == p)
            adopters[k] = NULL;
}

static void adoption_tell(struct proc *p, uint32_t type, unsigned slot)
{
    /* Not fatal: a worker that cannot hear this is dying, and its death
     * makes another one adopt. */
    if (p->chan < 0 || wse_chan_send(p->chan, type, slot) < 0)
        log_warn("worker %d (pid %d): cannot tell it to %s slot %u's sockets", p->slot,
                 (int)p->pid, type == WSE_CHAN_WATCH ? "serve" : "leave", slot);
}

/* Brings every slot of the serving generation to: served by its own
 * worker, or else by the next live one after it. */
static void adoption_update(void)
{
    static struct proc *serving[WSE_MAX_WORKERS];
    unsigned generation = M.reloading ? M.prev_generation : M.generation;
    unsigned n = M.cfg.workers;

    if (M.stopping || !M.serving)
        return;
    memset(serving, 0, sizeof serving);
    for (struct proc *p = M.procs; p; p = p->next)
        if (p->generation == generation && p->state == P_RUNNING && (unsigned)p->slot < n)
            serving[p->slot] = p;
    for (unsigned k = 0; k < WSE_MAX_WORKERS; k++) {
        struct proc *want = NULL, *had = adopters[k];
        for (unsigned i = 1; k < n && !serving[k] && i < n && !want; i++)
            want = serving[(k + i) % n];
        if (want == had)
            continue;
        adopters[k] = want;
        if (had && had->generation == generation && proc_live(had)) {
            adoption_tell(had, WSE_CHAN_UNWATCH, k);
            log_info("worker %d (pid %d) leaves slot %u's sockets to its worker again", had->slot,
                     (int)had->pid, k);
        }
        if (want) {
            adoption_tell(want, WSE_CHAN_WATCH, k);
            log_info("worker %d (pid %d) serves slot %u's sockets until its worker is back",
                     want->slot, (int)want->pid, k);
        }
    }
}

/* ---- generations --------------------------------------------------------- */

static bool generation_ready(unsigned generation)
{
    unsigned ready = 0;
    for (struct proc *p = M.procs; p; p = p->next)
        if (p->generation == generation && p->state == P_RUNNING)
            ready++;
    return ready == M.nslots;
}

/* Every new worker serves: make the new configuration current, drain the rest. */
static void swap_generation(void)
{
    unsigned draining = 0;

    ev_timer_stop(M.loop, &M.ready_timer);
    M.reloading = false;
    M.cfg = M.next;
    /* The old workers have their copy of the old contexts (fork): the
     * master's is not needed any more, no old worker is ever respawned. */
    wse_tls_free(M.tls);
    M.tls = M.next_tls;
    M.next_tls = NULL;
    groups_prune(&M.cfg);
    metrics_commit(&M.cfg);
    store_sockets();
    wse_log_discard(&M.log_before);
    wse_log_discard(&M.access_before);
    slots_cover();
    for (struct proc *p = M.procs; p; p = p->next) {
        if (p->generation < M.generation && p->state != P_DRAINING && p->state != P_STOPPING) {
            p->state = P_DRAINING;
            tell(p, WSE_CHAN_DRAIN);
            draining++;
        }
    }
    __atomic_store_n(&M.stats.hdr->generation, M.generation, __ATOMIC_RELAXED);
    M.stats.hdr->workers = M.cfg.workers;
    log_info("reload: generation %u serving with %u %s; %u old %s draining", M.generation,
             M.nslots, wse_plural(M.nslots, "worker", "workers"), draining,
             wse_plural(draining, "worker", "workers"));
    wse_notify("READY=1\nSTATUS=generation %u serving with %u %s", M.generation, M.nslots,
               wse_plural(M.nslots, "worker", "workers"));
    if (M.reload_again) {
        M.reload_again = false;
        reload();
    }
}

static void on_ready(struct proc *p)
{
    p->state = P_RUNNING;
    log_debug("worker %d (pid %d, generation %u) ready", p->slot, (int)p->pid, p->generation);
    if (p->generation != M.generation || !generation_ready(M.generation))
        return;
    if (!M.serving) {
        M.serving = true;
        /* Where to point a client and a browser, on the first address. */
        const struct wse_listen *l = &M.cfg.listen[0];
        const char *all = wse_net_wildcard(l);
        const char *workers = wse_plural(M.nslots, "worker", "workers");
        char ws[WSE_STR_MAX + WSE_ADDR_MAX + 8], page[WSE_ADDR_MAX + 16], more[48] = "";
        wse_net_url(ws, sizeof ws, l->tls ? "wss" : "ws", l, M.cfg.path);
        wse_net_url(page, sizeof page, l->tls ? "https" : "http", l, "/");
        if (M.cfg.nlisten > 1)
            snprintf(more, sizeof more, " and %u more %s", M.cfg.nlisten - 1,
                     wse_plural(M.cfg.nlisten - 1, "address", "addresses"));
        log_info("serving %s (page %s%s%s)%s with %u %s", ws, page, all ? "; " : "",
                 all ? all : "", more, M.nslots, workers);
        wse_notify("READY=1\nSTATUS=serving %s%s with %u %s\nMAINPID=%d", ws, more, M.nslots,
                   workers, (int)M.pid);
        store_sockets();
        upgrade_serving();
        /* The new binary reads the configuration anew: an upgrade that was
         * waiting covers a reload that was waiting too. */
        if (M.upgrade_waiting) {
            M.upgrade_waiting = M.reload_again = false;
            upgrade_start();
        } else if (M.reload_again) {
            M.reload_again = false;
            reload();
        }
    } else if (M.reloading) {
        swap_generation();
    }
}

static void on_chan(struct ev_loop *loop, ev_io *w, int revents)
{
    struct proc *p = container_of(w, struct proc, chan_io);
    struct wse_chan_rec rec;
    int rc;
    (void)loop, (void)revents;

    while ((rc = wse_chan_recv(w->fd, &rec)) == 1)
        if (rec.type == WSE_CHAN_READY && p->state == P_STARTING)
            on_ready(p);
    if (rc == 0)
        proc_close_chan(p);     /* the worker is gone; SIGCHLD tells how */
    adoption_update();
}

/* The master logs as the serving generation's configuration says again. */
static void restore_log(void)
{
    struct wse_log_saved abandoned;

    wse_log_switch(M.log_before.fd, M.log_before.path, M.log_before.level, &abandoned);
    M.log_before.fd = -1;
    wse_log_discard(&abandoned);
    wse_access_switch(M.access_before.fd, M.access_before.path, &abandoned);
    M.access_before.fd = -1;
    wse_log_discard(&abandoned);
}

/* A reload whose workers did not all come up is undone: the old ones stay. */
static void abandon_reload(const char *why)
{
    log_error("reload failed: %s; generation %u keeps serving", why, M.prev_generation);
    wse_notify("READY=1\nSTATUS=reload failed: %s; generation %u keeps serving", why,
               M.prev_generation);
    ev_timer_stop(M.loop, &M.ready_timer);
    for (struct proc *p = M.procs; p; p = p->next) {
        if (p->generation == M.generation) {
            p->state = P_STOPPING;
            tell(p, WSE_CHAN_STOP);
        }
    }
    bool again = M.reload_again;
    M.reloading = false;
    M.reload_again = false;
    M.generation = M.prev_generation;
    wse_tls_free(M.next_tls);
    M.next_tls = NULL;
    groups_rollback();
    metrics_rollback();
    restore_log();
    /* The slots are the serving generation's again, with its back-off state:
     * a worker it lost during the reload, or one that was waiting to be
     * respawned when the reload began, is respawned. */
    M.nslots = M.cfg.workers;
    for (unsigned i = 0; i < WSE_MAX_WORKERS; i++) {
        ev_timer_stop(M.loop, &M.slots[i].respawn);
        M.slots[i].fails = M.slots[i].kept_fails;
    }
    slots_cover();
    if (again) {
        /* The operator may have fixed the file since: that SIGHUP counts. */
        log_info("reload: the SIGHUP that came meanwhile reloads now");
        reload();
    }
}

static void on_ready_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    if (M.reloading)
        abandon_reload("new workers not ready in time");
}

/* Closes the files a rejected reload opened for its logs. */
static void close_prepared(int log_fd, int access_fd)
{
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    if (access_fd >= 0 && access_fd != STDERR_FILENO)
        close(access_fd);
}

/* A rejected reload's contexts. */
static void tls_drop_next(void)
{
    wse_tls_free(M.next_tls);
    M.next_tls = NULL;
}

static void reload(void)
{
    char err[512];

    if (M.stopping)
        return;
    if (M.reloading || !M.serving) {
        /* Several SIGHUPs while one starts make one more reload, not none;
         * one before the first generation serves waits for it. */
        log_info("SIGHUP: %s; a reload follows once it serves or fails",
                 M.serving ? "a reload is starting" : "the first workers are starting");
        M.reload_again = true;
        return;
    }
    wse_notify_reloading();
    if (wse_config_load(&M.next, M.argc, M.argv, err, sizeof err) != 0) {
        log_error("reload: %s; configuration unchanged", err);
        wse_notify("READY=1\nSTATUS=reload rejected: %s", err);
        return;
    }
    /* Certificates and keys are read again: this is how they are rotated. */
    if (tls_build(&M.next, &M.next_tls, err, sizeof err) < 0) {
        log_error("reload: %s; configuration unchanged", err);
        wse_notify("READY=1\nSTATUS=reload rejected: %s", err);
        return;
    }
    if (M.next.pid_file[0] && strcmp(M.next.pid_file, M.cfg.pid_file) != 0)
        log_warn("reload: pid-file cannot change on reload; keeping %s", M.cfg.pid_file);
    snprintf(M.next.pid_file, sizeof M.next.pid_file, "%s", M.cfg.pid_file);
    snprintf(M.next.stats_name, sizeof M.next.stats_name, "%s", M.cfg.stats_name);
    int log_fd = wse_log_prepare(M.next.log_file);
    if (log_fd < 0) {
        wse_log_errno(WSE_LOG_ERROR, "open", "reload rejected, configuration unchanged: log file %s",
                      M.next.log_file);
        wse_notify("READY=1\nSTATUS=reload rejected: cannot open log file %s", M.next.log_file);
        tls_drop_next();
        return;
    }
    int access_fd;
    if (wse_access_prepare(M.next.access_log, &access_fd) < 0) {
        wse_log_errno(WSE_LOG_ERROR, "open",
                      "reload rejected, configuration unchanged: access log %s", M.next.access_log);
        wse_notify("READY=1\nSTATUS=reload rejected: cannot open access log %s",
                   M.next.access_log);
        close_prepared(log_fd, -1);
        tls_drop_next();
        return;
    }
    if (wse_priv_check(&M.next.cred, err, sizeof err) < 0) {
        log_error("reload: --user %s: %s; configuration unchanged", M.next.user, err);
        wse_notify("READY=1\nSTATUS=reload rejected: cannot switch to user %s", M.next.user);
        close_prepared(log_fd, access_fd);
        tls_drop_next();
        return;
    }
    if (groups_open(&M.next) < 0) {
        log_error("reload: cannot listen on the new addresses; configuration unchanged");
        wse_notify("READY=1\nSTATUS=reload rejected: cannot listen on the new addresses");
        close_prepared(log_fd, access_fd);
        tls_drop_next();
        return;
    }
    if (metrics_prepare(&M.next) < 0) {
        log_error("reload: cannot listen on the new metrics-listen address; configuration "
                  "unchanged");
        wse_notify("READY=1\nSTATUS=reload rejected: cannot listen on the new metrics-listen "
                   "address");
        groups_rollback();
        close_prepared(log_fd, access_fd);
        tls_drop_next();
        return;
    }
    /* The new workers inherit the master's logs at fork: switch them first. */
    wse_log_switch(log_fd, M.next.log_file, M.next.log_level, &M.log_before);
    wse_access_switch(access_fd, M.next.access_log, &M.access_before);
    M.prev_generation = M.generation;
    M.generation = ++M.generations;
    M.reloading = true;
    M.nslots = M.next.workers;
    log_info("reload: starting generation %u with %u %s", M.generation, M.nslots,
             wse_plural(M.nslots, "worker", "workers"));
    /* Every slot is the new generation's now, retired ones included: no
     * timer of the old one may fire into it (abandon_reload() re-arms them). */
    for (unsigned i = 0; i < WSE_MAX_WORKERS; i++) {
        ev_timer_stop(M.loop, &M.slots[i].respawn);
        M.slots[i].proc = NULL;
        M.slots[i].kept_fails = M.slots[i].fails;
        M.slots[i].fails = 0;
    }
    for (unsigned i = 0; i < M.nslots; i++)
        spawn(i, &M.next, M.generation);
    ev_timer_set(&M.ready_timer, READY_TIMEOUT, 0);
    ev_timer_start(M.loop, &M.ready_timer);
}

/* ---- deaths --------------------------------------------------------------- */

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

static void respawn_slot(unsigned slot, ev_tstamp lived, const char *how, pid_t pid)
{
    struct wslot *ws = &M.slots[slot];

    ws->proc = NULL;
    ws->fails = lived < QUICK_DEATH ? ws->fails + 1 : 0;
    double delay = backoff_delay(ws->fails);
    log_error("worker %u (pid %d) %s; respawning in %.1f s", slot, (int)pid, how, delay);
    if (delay == 0)
        spawn(slot, slots_cfg(), M.generation);
    else
        respawn_later(slot, delay);
}

/*
 * A worker that ended with connections still counted per address (killed,
 * or stopped at a deadline) must not keep them counted: its stats slot,
 * the holder of its counts, is about to be reused.
 */
static void forget_connections(const struct proc *p)
{
    unsigned long n = wse_iplimit_forget(&M.iplimit, (unsigned)p->stats_slot);

    if (n)
        log_info("worker %d (pid %d): %lu connections no longer counted per address", p->slot,
                 (int)p->pid, n);
}

static void worker_died(struct proc *p, int status)
{
    char how[96];
    ev_tstamp lived = ev_now(M.loop) - p->started;
    bool current = p->generation == M.generation && proc_live(p);
    /* While a reload starts, the generation still serving is the previous one. */
    bool serving_old = M.reloading && p->generation == M.prev_generation && proc_live(p);
    unsigned slot = (unsigned)p->slot;
    pid_t pid = p->pid;

    unsigned generation = p->generation;

    describe_exit(status, how, sizeof how);
    /* Totals never go backwards: fold before the stats slot is reused. */
    wse_stats_retire(&M.stats, (unsigned)p->stats_slot);
    forget_connections(p);
    wse_stats_slot_set(&M.stats.slots[p->stats_slot], 0, -1, 0, WSE_SLOT_EMPTY);
    proc_unlink(p);

    if (M.stopping || !(current || serving_old)) {
        log_info("worker %u (pid %d, generation %u) %s", slot, (int)pid, generation, how);
        return;
    }
    if (serving_old) {
        /* Its slot belongs to the starting generation; should that fail,
         * abandon_reload() respawns it with this back-off state. */
        unsigned *fails = &M.slots[slot].kept_fails;
        *fails = lived < QUICK_DEATH ? *fails + 1 : 0;
        log_error("worker %u (pid %d, generation %u) %s; respawned if the reload fails", slot,
                  (int)pid, generation, how);
        return;
    }
    if (!M.serving) {
        log_error("worker %u failed to start: %s", slot, how);
        begin_stop(false, 1);
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == WSE_WORKER_EXIT_FATAL && !M.reloading) {
        /* Its reason is in the log; a respawn would fail the same way. */
        M.slots[slot].proc = NULL;
        log_error("worker %u (pid %d) cannot start (exit status %d, reason above): not "
                  "respawned; another worker serves its sockets until a reload", slot,
                  (int)pid, WSE_WORKER_EXIT_FATAL);
        return;
    }
    if (M.reloading) {
        /* Dying before its generation serves, ready or not, fails the reload. */
        char why[160];
        snprintf(why, sizeof why, "new worker %u %s", slot, how);
        abandon_reload(why);
        return;
    }
    respawn_slot(slot, lived, how, pid);
}

static void reap_children(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (upgrade_reaped(pid, status))
            continue;
        struct proc *p = proc_by_pid(pid);
        if (p)
            worker_died(p, status);
        else
            metrics_died(pid, status);
    }
    adoption_update();
    if (M.stopping && !M.procs && !metrics_running())
        ev_break(M.loop, EVBREAK_ALL);
}

/* ---- the metrics process ------------------------------------------------- */

/*
 * --metrics-listen: the master binds the socket and keeps it (so a
 * privileged port works, and a respawned process serves the same socket);
 * a process of its own serves it (metrics.h says why neither the master
 * nor a worker).  A successful reload replaces the process, so that it
 * logs where the new configuration says; a changed address is bound
 * before the reload can succeed, and kept only if it does.
 */
static struct {
    struct wse_listen addr;      /* what fd is bound to */
    int fd;                      /* -1: off */
    struct wse_listen next_addr;
    int next_fd;                 /* a reload's new socket until it serves, or -1 */
    pid_t pid;                   /* the serving process, 0 if none */
    ev_tstamp started;
    unsigned fails;              /* consecutive quick deaths */
    ev_timer respawn;
} MX = {.fd = -1, .next_fd = -1};

static int metrics_bind(const struct wse_listen *addr)
{
    char err[256];
    /* No SO_REUSEPORT: nobody, not even another process of this user, may
     * share the port and take a part of the scrapes. */
    int fd = wse_sockets_take(&U.passed, addr, WSE_SOCK_METRICS, true, NULL);

    if (fd < 0)
        fd = wse_net_listen_exclusive(addr, 64, err, sizeof err);
    if (fd < 0)
        log_error("metrics-listen: %s", err);
    return fd;
}

static void on_metrics_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    metrics_spawn();
}

static int metrics_open(const struct wse_config *cfg)
{
    ev_timer_init(&MX.respawn, on_metrics_respawn, 0, 0);
    if (!cfg->nmetrics_listen)
        return 0;
    MX.fd = metrics_bind(&cfg->metrics_listen[0]);
    MX.addr = cfg->metrics_listen[0];
    return MX.fd < 0 ? -1 : 0;
}

/* A reload: binds a new address now, so that one that cannot be bound
 * rejects the reload.  0, or -1 (logged). */
static int metrics_prepare(const struct wse_config *next)
{
    metrics_rollback();
    if (!next->nmetrics_listen || (MX.fd >= 0 && same_addr(&MX.addr, &next->metrics_listen[0])))
        return 0;
    MX.next_fd = metrics_bind(&next->metrics_listen[0]);
    MX.next_addr = next->metrics_listen[0];
    return MX.next_fd < 0 ? -1 : 0;
}

static void metrics_rollback(void)
{
    if (MX.next_fd >= 0)
        close(MX.next_fd);
    MX.next_fd = -1;
}

/* The reload's generation serves: its metrics address and a fresh process. */
static void metrics_commit(const struct wse_config *cfg)
{
    if (!cfg->nmetrics_listen || MX.next_fd >= 0) {
        if (MX.fd >= 0) {
            close(MX.fd);
            log_info("metrics: stopped listening on %s", MX.addr.text);
        }
        MX.fd = MX.next_fd;
        MX.addr = MX.next_addr;
        MX.next_fd = -1;
    }
    metrics_replace();
}

/* A fresh process, with the master's logs; the old one stops accepting and
 * finishes what it has. */
static void metrics_replace(void)
{
    metrics_signal(SIGTERM);
    MX.pid = 0;
    MX.fails = 0;
    ev_timer_stop(M.loop, &MX.respawn);
    metrics_spawn();
}

static _Noreturn void metrics_child(void)
{
    static char name[sizeof M.stats.name];
    struct wse_metrics_args args = {
        .listen_fd = MX.fd, .listen_text = MX.addr.text, .stats_name = name,
        .master_pid = M.pid, .cred = &M.cfg.cred, .user = M.cfg.user,
    };

    snprintf(name, sizeof name, "%s", M.stats.name);
    child_cleanup(&MX.fd, 1);
    /* Read-only from here: the master's writable mapping goes (without
     * unlinking), the process reads the segment through a descriptor of
     * its own. */
    M.stats.owner = false;
    wse_stats_close(&M.stats);
    wse_worker_exit(wse_metrics_run(&args));
}

/*
 * In a child: the metrics sockets go unless kept.  A worker that held one
 * would keep it listening after the master closed it (a changed or
 * removed metrics-listen), with nobody accepting what it queues.
 */
static void metrics_child_cleanup(const int *keep, unsigned nkeep)
{
    int fds[] = {MX.fd, MX.next_fd};

    for (unsigned i = 0; i < countof(fds); i++) {
        bool mine = false;
        for (unsigned k = 0; k < nkeep && !mine; k++)
            mine = keep[k] == fds[i];
        if (fds[i] >= 0 && !mine)
            close(fds[i]);
    }
}

static void metrics_spawn(void)
{
    if (MX.fd < 0 || MX.pid || M.stopping)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        wse_log_errno(WSE_LOG_ERROR, "fork", "metrics process; trying again in %.1f s",
                      RESPAWN_MAX);
        ev_timer_set(&MX.respawn, RESPAWN_MAX, 0);
        ev_timer_start(M.loop, &MX.respawn);
        return;
    }
    if (pid == 0)
        metrics_child();
    MX.pid = pid;
    MX.started = ev_now(M.loop);
}

static void metrics_died(pid_t pid, int status)
{
    char how[96];

    describe_exit(status, how, sizeof how);
    if (pid != MX.pid || M.stopping) {
        if (pid == MX.pid)
            MX.pid = 0;
        log_info("metrics process (pid %d) %s", (int)pid, how);
        return;
    }
    MX.pid = 0;
    MX.fails = ev_now(M.loop) - MX.started < QUICK_DEATH ? MX.fails + 1 : 0;
    double delay = backoff_delay(MX.fails);
    log_error("metrics process (pid %d) %s; respawning in %.1f s", (int)pid, how, delay);
    ev_timer_set(&MX.respawn, delay, 0);
    ev_timer_start(M.loop, &MX.respawn);
}

static bool metrics_running(void)
{
    return MX.pid != 0;
}

static void metrics_signal(int sig)
{
    if (MX.pid)
        kill(MX.pid, sig);
}

/* Stopping: no new scrapes; the process ends within its timeout. */
static void metrics_stop(void)
{
    ev_timer_stop(M.loop, &MX.respawn);
    metrics_signal(SIGTERM);
    metrics_close();
}

static void metrics_close(void)
{
    metrics_rollback();
    if (MX.fd >= 0)
        close(MX.fd);
    MX.fd = -1;
}

/* ---- sockets that outlive the master ------------------------------------- */

/*
 * Slot `slot` of addr: the socket handed over for it (an upgrade, systemd's
 * activation or its store), else a new one.  A new address is probed first:
 * with SO_REUSEPORT, a second server on it would bind too and silently take
 * a share of the connections.
 */
static int slot_socket(const struct wse_listen *addr, unsigned slot, char *err, size_t errlen)
{
    bool reuseport = true;
    int fd = wse_sockets_take(&U.passed, addr, (int)slot, slot == 0, &reuseport);

    if (fd >= 0) {
        log_debug("%s: slot %u socket handed over%s", addr->text, slot,
                  reuseport ? "" : " (without SO_REUSEPORT)");
        return fd;
    }
    if (slot == 0 && wse_sockets_probe_free(addr, err, errlen) < 0)
        return -1;
    fd = wse_net_listen(addr, LISTEN_BACKLOG, err, errlen);
    if (fd < 0 && errno == EADDRINUSE && slot > 0) {
        size_t len = strlen(err);
        snprintf(err + len, errlen - len, " (a socket passed by systemd needs ReusePort=yes "
                 "in the .socket unit for more than one worker)");
    }
    return fd;
}

static unsigned slots_handed_over(const struct wse_listen *addr)
{
    return wse_sockets_slots(&U.passed, addr);
}

/* Under systemd with a file descriptor store: every listening socket goes
 * there, so that the next master gets it back after a crash or restart. */
static void store_sockets(void)
{
    char name[WSE_SOCK_NAME_MAX];

    if (!wse_sockets_store_enabled())
        return;
    for (unsigned g = 0; g < MAX_GROUPS; g++) {
        const struct group *grp = &M.groups[g];
        for (unsigned i = 0; grp->used && i < grp->nfds; i++) {
            wse_sockets_name(name, sizeof name, &grp->addr, (int)i);
            wse_sockets_store(grp->fds[i], name);
        }
    }
    if (MX.fd >= 0) {
        wse_sockets_name(name, sizeof name, &MX.addr, WSE_SOCK_METRICS);
        wse_sockets_store(MX.fd, name);
    }
}

static void unstore_socket(const struct wse_listen *addr, int slot)
{
    char name[WSE_SOCK_NAME_MAX];

    if (!wse_sockets_store_enabled())
        return;
    wse_sockets_name(name, sizeof name, addr, slot);
    wse_sockets_store(-1, name);
}

/* Handed-over sockets the configuration no longer names are closed (what
 * waits in them is lost: logged). */
static void close_unclaimed(void)
{
    char list[256];
    unsigned n = wse_sockets_close_rest(&U.passed, list, sizeof list);

    if (n)
        log_warn("closed %u handed-over %s the configuration does not listen on: %s", n,
                 wse_plural(n, "socket", "sockets"), list);
    wse_sockets_free(&U.passed);
}

/* ---- live upgrade ---------------------------------------------------------- */

/*
 * SIGUSR2 starts the binary found at this master's own path as a child
 * (nginx's way, not HAProxy's re-exec in place: see UPGRADING in the man
 * page).  It gets every listening socket the sd_listen_fds way, plus a
 * channel to us and the stats segment (WSECHOD_UPGRADE=ppid:chan:stats:
 * generations), starts its workers on those sockets without binding, and
 * says READY on the channel when they all serve.  Then, and only then, we
 * tell systemd MAINPID=child, hand over (TAKEOVER: it writes the pid file
 * and owns the segment), and drain our workers as a reload would, and
 * exit.  Until then nothing of ours changed: a child that exits, or is not
 * ready within READY_TIMEOUT, is stopped and we serve on.
 */

static bool upgrade_busy(void)
{
    return U.child != 0;
}

/* The path of our executable, as the kernel names it (a binary replaced on
 * disk reads "PATH (deleted)": the new file is what we want then). */
static void remember_exe(void)
{
    static const char deleted[] = " (deleted)";
    ssize_t n = readlink("/proc/self/exe", U.exe, sizeof U.exe - 1);

    U.exe[n > 0 ? n : 0] = '\0';
    size_t len = strlen(U.exe);
    if (len > sizeof deleted - 1 && strcmp(U.exe + len - (sizeof deleted - 1), deleted) == 0)
        U.exe[len - (sizeof deleted - 1)] = '\0';
}

static void on_upgrade_kill(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    if (U.dying) {
        log_warn("rejected upgrade (pid %d) still running: SIGKILL", (int)U.dying);
        kill(U.dying, SIGKILL);
    }
}

/* The attempt failed: it is stopped, we serve on as before. */
static void upgrade_fail(const char *why, bool running)
{
    log_error("upgrade failed: %s; pid %d keeps serving generation %u", why, (int)M.pid,
              M.generation);
    wse_notify("READY=1\nSTATUS=upgrade failed: %s; pid %d keeps serving", why, (int)M.pid);
    wse_stats_upgrade_failed(&M.stats);
    ev_timer_stop(M.loop, &U.timer);
    if (U.chan >= 0) {
        /* STOP first: a new master that saw only our channel close would
         * think us dead and take over. */
        (void)wse_chan_send(U.chan, WSE_CHAN_STOP, 0);
        ev_io_stop(M.loop, &U.chan_io);
        close(U.chan);
        U.chan = -1;
    }
    if (running) {
        kill(U.child, SIGTERM);
        U.dying = U.child;
        ev_timer_set(&U.kill_timer, STOP_KILL_AFTER + 2, 0);
        ev_timer_start(M.loop, &U.kill_timer);
    }
    U.child = 0;
}

/* The new binary serves: it becomes the master, this one drains and exits. */
static void upgrade_commit(void)
{
    pid_t child = U.child;

    ev_timer_stop(M.loop, &U.timer);
    /* systemd must know the new main pid before this one exits. */
    wse_notify("MAINPID=%d\nREADY=1\nSTATUS=upgraded: pid %d serves, pid %d drains", (int)child,
               (int)child, (int)M.pid);
    wse_notify_mute(true);
    M.stats.owner = false;          /* the segment is the new master's now */
    if (wse_chan_send(U.chan, WSE_CHAN_TAKEOVER, 0) < 0)
        wse_log_errno(WSE_LOG_WARN, "send", "telling pid %d to take over (it will when it "
                      "sees us gone)", (int)child);
    ev_io_stop(M.loop, &U.chan_io);
    close(U.chan);
    U.chan = -1;
    U.child = 0;
    U.successor = child;
    log_info("upgrade: pid %d serves; pid %d drains its workers and exits", (int)child,
             (int)M.pid);
    begin_stop(true, 0);
}

static void on_upgrade_chan(struct ev_loop *loop, ev_io *w, int revents)
{
    struct wse_chan_rec rec;
    int rc;
    (void)loop, (void)revents;

    while (U.child && (rc = wse_chan_recv(w->fd, &rec)) == 1)
        if (rec.type == WSE_CHAN_READY)
            upgrade_commit();
    if (U.child && rc == 0)
        ev_io_stop(M.loop, w);       /* it is gone: SIGCHLD says how */
}

static void on_upgrade_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    char why[96];
    (void)loop, (void)t, (void)revents;
    snprintf(why, sizeof why, "the new binary (pid %d) was not ready within %.0f s",
             (int)U.child, READY_TIMEOUT);
    upgrade_fail(why, true);
}

/* Every listening socket, named: the order LISTEN_FDS gets them in. */
static unsigned upgrade_sockets(int *fds, char (*names)[WSE_SOCK_NAME_MAX], unsigned cap)
{
    unsigned n = 0;

    for (unsigned g = 0; g < MAX_GROUPS; g++) {
        const struct group *grp = &M.groups[g];
        for (unsigned i = 0; grp->used && i < grp->nfds && n < cap; i++, n++) {
            fds[n] = grp->fds[i];
            wse_sockets_name(names[n], sizeof names[n], &grp->addr, (int)i);
        }
    }
    if (MX.fd >= 0 && n < cap) {
        fds[n] = MX.fd;
        wse_sockets_name(names[n], sizeof names[n], &MX.addr, WSE_SOCK_METRICS);
        n++;
    }
    return n;
}

static _Noreturn void upgrade_exec(int *fds, char (*names)[WSE_SOCK_NAME_MAX], unsigned n,
                                   int chan)
{
    sigset_t none;
    char env[96];
    int extra[2] = {chan, M.stats.fd};

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (wse_sockets_export(fds, names, n, extra, 2) == 0) {
        snprintf(env, sizeof env, "%d:%d:%d:%u", (int)M.pid, extra[0], extra[1], M.generations);
        if (setenv("WSECHOD_UPGRADE", env, 1) == 0)
            execv(U.exe, M.argv);
    }
    _exit(127);
}

/*
 * SIGUSR2 before the first workers serve waits for them, as SIGHUP does (a
 * deployment script may upgrade right after starting).  Otherwise one that
 * cannot be carried out now is refused and counted as a failed upgrade, so
 * that -s upgrade reports it at once instead of waiting for an outcome.
 */
static void upgrade_start(void)
{
    if (!M.serving && !M.stopping) {
        log_info("SIGUSR2: the first workers are starting; the upgrade follows once they serve");
        M.upgrade_waiting = true;
        return;
    }
    const char *refuse = M.stopping ? "stopping"
                         : M.reloading ? "a reload is starting; send it again once it serves"
                         : U.child ? "an upgrade is already under way"
                         : U.dying ? "the last rejected attempt is still stopping"
                         : U.successor ? "already handed over" : NULL;
    if (refuse) {
        log_warn("SIGUSR2 ignored: %s", refuse);
        /* An attempt under way will have an outcome of its own. */
        if (!U.child && !U.successor)
            wse_stats_upgrade_failed(&M.stats);
        return;
    }
    wse_notify_reloading();
    unsigned cap = MAX_GROUPS * WSE_MAX_WORKERS + 1;
    int *fds = malloc(cap * sizeof *fds);
    char (*names)[WSE_SOCK_NAME_MAX] = malloc(cap * sizeof *names);
    int ch[2] = {-1, -1};
    if (!fds || !names || M.stats.fd < 0 || wse_chan_pair(ch) < 0) {
        upgrade_fail(M.stats.fd < 0 ? "the stats segment cannot be handed over"
                                    : "out of memory or descriptors", false);
        goto out;
    }
    unsigned n = upgrade_sockets(fds, names, cap);
    pid_t pid = fork();
    if (pid < 0) {
        close(ch[0]);
        close(ch[1]);
        upgrade_fail("fork failed", false);
        goto out;
    }
    if (pid == 0)
        upgrade_exec(fds, names, n, ch[1]);
    close(ch[1]);
    U.child = pid;
    U.chan = ch[0];
    ev_io_init(&U.chan_io, on_upgrade_chan, U.chan, EV_READ);
    ev_io_start(M.loop, &U.chan_io);
    ev_timer_set(&U.timer, READY_TIMEOUT, 0);
    ev_timer_start(M.loop, &U.timer);
    log_info("SIGUSR2: upgrade: started %s (pid %d) with %u listening %s", U.exe, (int)pid, n,
             wse_plural(n, "socket", "sockets"));
out:
    free(fds);
    free(names);
}

static bool upgrade_reaped(pid_t pid, int status)
{
    char how[96], why[160];

    if (pid != U.child && pid != U.dying && pid != U.successor)
        return false;
    describe_exit(status, how, sizeof how);
    if (pid == U.child) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            snprintf(why, sizeof why, "%.100s could not be executed (status 127)", U.exe);
        else
            snprintf(why, sizeof why, "the new binary (pid %d) %s", (int)pid, how);
        upgrade_fail(why, false);
    } else if (pid == U.dying) {
        log_info("rejected upgrade (pid %d) %s", (int)pid, how);
        U.dying = 0;
        ev_timer_stop(M.loop, &U.kill_timer);
    } else {
        log_info("new master (pid %d) %s", (int)pid, how);
        U.successor = 0;
    }
    return true;
}

/* Stopping: an attempt under way is stopped with us, not left to take over. */
static void upgrade_stop(void)
{
    if (U.child)
        upgrade_fail("the master is stopping", true);
}

/* A worker or the metrics process holds none of the upgrade's channels:
 * its copy would hide the other side's exit from the channel's EOF. */
static void upgrade_child_cleanup(void)
{
    if (U.chan >= 0)
        close(U.chan);
    if (U.parent_chan >= 0)
        close(U.parent_chan);
}

/* ---- live upgrade: the new binary's side ----------------------------------- */

/* The pid file is written by the master in charge: not by a new binary
 * before it takes over. */
static bool pid_file_mine(void)
{
    return U.committed;
}

static int stats_open(const char *name, char *err, size_t errlen)
{
    if (U.stats_fd < 0)
        return wse_stats_create(&M.stats, name, 2 * WSE_MAX_WORKERS, M.cfg.workers, err, errlen);
    int fd = U.stats_fd;
    U.stats_fd = -1;
    return wse_stats_adopt(&M.stats, fd, name, 2 * WSE_MAX_WORKERS, err, errlen);
}

static void upgrade_take_over(const char *how)
{
    if (U.committed)
        return;
    U.committed = true;
    if (U.parent_chan >= 0) {
        ev_io_stop(M.loop, &U.parent_io);
        close(U.parent_chan);
        U.parent_chan = -1;
    }
    wse_notify_mute(false);
    wse_stats_take_over(&M.stats);
    __atomic_store_n(&M.stats.hdr->generation, M.generation, __ATOMIC_RELAXED);
    M.stats.hdr->workers = M.cfg.workers;
    if (M.cfg.pid_file[0] && write_pid_file(M.cfg.pid_file) < 0)
        wse_log_errno(WSE_LOG_ERROR, "write", "pid file %s", M.cfg.pid_file);
    wse_notify("READY=1\nSTATUS=upgraded: generation %u serving with %u %s\nMAINPID=%d",
               M.generation, M.nslots, wse_plural(M.nslots, "worker", "workers"), (int)M.pid);
    store_sockets();
    log_info("upgrade: pid %d took over from pid %d (%s)", (int)M.pid, (int)U.parent, how);
}

static void on_parent_chan(struct ev_loop *loop, ev_io *w, int revents)
{
    struct wse_chan_rec rec;
    int rc;
    (void)loop, (void)revents;

    while (U.parent_chan >= 0 && (rc = wse_chan_recv(w->fd, &rec)) == 1) {
        if (rec.type == WSE_CHAN_TAKEOVER) {
            upgrade_take_over("handed over");
        } else if (rec.type == WSE_CHAN_STOP) {
            log_warn("upgrade: pid %d rejected this binary; stopping", (int)U.parent);
            ev_io_stop(M.loop, w);
            close(U.parent_chan);
            U.parent_chan = -1;
            begin_stop(false, 1);
        }
    }
    if (U.parent_chan >= 0 && rc == 0) {
        /* The old master died before handing over: somebody must serve. */
        log_warn("upgrade: pid %d is gone without handing over", (int)U.parent);
        upgrade_take_over("its master died");
    }
}

/* The new binary's workers all serve: ask the old master to hand over. */
static void upgrade_serving(void)
{
    if (U.committed || U.parent_chan < 0)
        return;
    log_info("upgrade: serving; asking pid %d to hand over", (int)U.parent);
    if (wse_chan_send(U.parent_chan, WSE_CHAN_READY, M.generation) < 0)
        upgrade_take_over("its master cannot be told");
}

/* A positive int from "N" up to the next ':' (or the end); -1 if malformed. */
static long env_field(const char **p)
{
    char *end;

    errno = 0;
    long v = strtol(*p, &end, 10);
    if (errno || end == *p || (*end && *end != ':') || v < 0 || v > INT_MAX)
        return -1;
    *p = *end ? end + 1 : end;
    return v;
}

/*
 * At start: the sockets handed to us (any of the three ways), and whether
 * we are a new binary started by a live upgrade.  0, or -1 (logged).
 */
static int handover_init(void)
{
    char err[256];
    const char *up = getenv("WSECHOD_UPGRADE");

    remember_exe();
    ev_timer_init(&U.timer, on_upgrade_timeout, 0, 0);
    ev_timer_init(&U.kill_timer, on_upgrade_kill, 0, 0);
    if (wse_sockets_inherit(&U.passed, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    if (U.passed.n)
        log_info("%u listening %s handed over", U.passed.n,
                 wse_plural(U.passed.n, "socket", "sockets"));
    if (!up)
        return 0;
    const char *p = up;
    long ppid = env_field(&p), chan = env_field(&p), stats = env_field(&p),
         gens = env_field(&p);
    unsetenv("WSECHOD_UPGRADE");
    if (ppid < 2 || chan < 3 || stats < 3 || gens < 1 || gens >= INT_MAX - 1 ||
        fcntl((int)chan, F_SETFD, FD_CLOEXEC) < 0 || fcntl((int)stats, F_SETFD, FD_CLOEXEC) < 0 ||
        getppid() != (pid_t)ppid) {
        log_error("WSECHOD_UPGRADE is not from a live upgrade of our parent; ignored");
        return 0;
    }
    U.parent = (pid_t)ppid;
    U.parent_chan = (int)chan;
    U.stats_fd = (int)stats;
    U.committed = false;
    /* Generation numbers go on from the old master's. */
    M.generation = M.generations = (unsigned)gens + 1;
    wse_notify_mute(true);
    log_info("upgrade: started by pid %d, generation %u", (int)U.parent, M.generation);
    return 0;
}

/* After start(): the channels are watched, the unclaimed sockets closed. */
static void handover_started(void)
{
    close_unclaimed();
    if (U.parent_chan >= 0) {
        ev_io_init(&U.parent_io, on_parent_chan, U.parent_chan, EV_READ);
        ev_io_start(M.loop, &U.parent_io);
    }
}

/* ---- stopping ----------------------------------------------------------- */

static void on_kill_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    for (struct proc *p = M.procs; p; p = p->next) {
        log_warn("worker %d (pid %d) still running: SIGKILL", p->slot, (int)p->pid);
        kill(p->pid, SIGKILL);
    }
    if (metrics_running()) {
        log_warn("metrics process still running: SIGKILL");
        metrics_signal(SIGKILL);
    }
}

static void begin_stop(bool graceful, int status)
{
    /* A fast stop overrides a drain in progress; a second drain changes nothing. */
    if (M.stopping && graceful)
        return;
    if (!M.stopping)
        wse_notify("STOPPING=1");
    M.stopping = true;
    M.exit_status = status;
    upgrade_stop();
    ev_timer_stop(M.loop, &M.ready_timer);
    /* No new connections: the workers close their copies as they stop. */
    groups_close_all();
    metrics_stop();
    for (unsigned i = 0; i < WSE_MAX_WORKERS; i++)
        ev_timer_stop(M.loop, &M.slots[i].respawn);
    for (struct proc *p = M.procs; p; p = p->next) {
        if (graceful && p->state == P_DRAINING)
            continue;
        p->state = graceful ? P_DRAINING : P_STOPPING;
        tell(p, graceful ? WSE_CHAN_DRAIN : WSE_CHAN_STOP);
    }
    double grace = graceful ? M.cfg.drain_timeout + M.cfg.close_spread + M.cfg.close_timeout + 3
                            : STOP_KILL_AFTER;
    ev_timer_stop(M.loop, &M.kill_timer);
    ev_timer_set(&M.kill_timer, grace, 0);
    ev_timer_start(M.loop, &M.kill_timer);
    if (!M.procs && !metrics_running())
        ev_break(M.loop, EVBREAK_ALL);
}

/* ---- signals ------------------------------------------------------------ */

/*
 * After the master reopened its logs, the workers write to the files it
 * opened: they get its descriptors over their channels, so that a worker
 * running as --user needs no permission on the files or their directory.
 * While a reload starts, the master's logs are the new configuration's:
 * the older generations reopen their own paths instead.
 */
static void hand_logs(void)
{
    int fds[WSE_CHAN_MAX_FDS];
    unsigned n = 0;
    uint32_t what = 0;

    if ((fds[n] = wse_log_file_fd()) >= 0) {
        what |= WSE_CHAN_REOPEN_LOG;
        n++;
    }
    if ((fds[n] = wse_access_file_fd()) >= 0) {
        what |= WSE_CHAN_REOPEN_ACCESS;
        n++;
    }
    for (struct proc *p = M.procs; p; p = p->next) {
        bool same_logs = !M.reloading || p->generation == M.generation;
        if (p->chan >= 0)
            wse_chan_send_fds(p->chan, WSE_CHAN_REOPEN, same_logs ? what : 0, fds,
                              same_logs ? n : 0);
    }
}

static void reopen_logs(void)
{
    if (wse_log_reopen() < 0)
        wse_log_errno(WSE_LOG_ERROR, "open", "reopening log file %s", slots_cfg()->log_file);
    if (wse_access_reopen() < 0)
        wse_log_errno(WSE_LOG_ERROR, "open", "reopening access log %s", slots_cfg()->access_log);
    hand_logs();
    /* The metrics process may not open the files itself (--user): it is
     * replaced by one that inherits them; the old one finishes its scrapes. */
    if (!M.stopping)
        metrics_replace();
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
            if (upgrade_busy()) {
                log_warn("SIGHUP ignored: a live upgrade is under way (the new binary reads "
                         "the configuration as it starts)");
                break;
            }
            log_info("SIGHUP: reloading");
            reload();
            break;
        case SIGUSR1:
            reopen_logs();
            break;
        case SIGUSR2:
            upgrade_start();
            break;
        }
    }
}

static int setup_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < countof(handled_signals); i++)
        sigaddset(&set, handled_signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    M.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return M.sigfd < 0 ? -1 : 0;
}

/* ---- life ------------------------------------------------------------------ */

static void close_everything(void)
{
    while (M.procs)
        proc_unlink(M.procs);
    for (unsigned g = 0; g < MAX_GROUPS; g++)
        for (unsigned i = 0; M.groups[g].used && i < M.groups[g].nfds; i++)
            close(M.groups[g].fds[i]);
    metrics_close();
    wse_tls_free(M.tls);
    wse_tls_free(M.next_tls);
    wse_tls_keys_destroy(M.tls_keys);
    wse_stats_close(&M.stats);
    wse_iplimit_destroy(&M.iplimit);
    if (M.sigfd >= 0)
        close(M.sigfd);
    remove_pid_file();
    if (M.loop)
        ev_loop_destroy(M.loop);
}

/*
 * --user: the children drop to it (priv.h); the master only checks that
 * they can.  A root master without --user serves, as before, but says
 * that its workers parse what peers send as root.  0, or -1 (logged).
 */
static int check_user(const struct wse_config *cfg)
{
    char err[256];

    if (wse_priv_check(&cfg->cred, err, sizeof err) < 0) {
        log_error("--user %s: %s", cfg->user, err);
        return -1;
    }
    if (cfg->cred.set)
        log_info("workers run as user %u group %u (%s%s%s)", (unsigned)cfg->cred.uid,
                 (unsigned)cfg->cred.gid, cfg->user, cfg->group[0] ? ":" : "", cfg->group);
    else if (geteuid() == 0)
        log_warn("workers run as root: give --user USER to run them unprivileged "
                 "(--user root to keep root and silence this)");
    return 0;
}

/* ---- TLS ------------------------------------------------------------------ */

static void tls_opts(const struct wse_config *cfg, struct wse_tls_opts *o)
{
    memset(o, 0, sizeof *o);
    o->npairs = cfg->ntls_cert;
    for (unsigned i = 0; i < cfg->ntls_cert && i < WSE_TLS_MAX_PAIRS; i++) {
        o->cert[i] = cfg->tls_cert[i];
        o->key[i] = cfg->tls_key[i];
    }
    o->ciphers = cfg->tls_ciphers[0] ? cfg->tls_ciphers : NULL;
    o->ciphersuites = cfg->tls_ciphersuites[0] ? cfg->tls_ciphersuites : NULL;
    o->groups = cfg->tls_groups[0] ? cfg->tls_groups : NULL;
    o->ticket_lifetime = TICKET_PERIOD;
}

static bool wants_tls(const struct wse_config *cfg)
{
    return cfg->ntls_listen > 0;
}

int wse_master_check_tls(const struct wse_config *cfg, char *err, size_t errlen)
{
    struct wse_tls_opts o;

    if (!wants_tls(cfg))
        return 0;
    tls_opts(cfg, &o);
    struct wse_tls *t = wse_tls_new(&o, NULL, err, errlen);
    wse_tls_free(t);
    return t ? 0 : -1;
}

static void on_ticket_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
    if (wse_tls_keys_rotate(M.tls_keys) < 0)
        log_warn("TLS ticket keys: no randomness to rotate them; the current key stays");
    else
        log_debug("TLS ticket keys rotated (%llu)",
                  (unsigned long long)wse_tls_keys_serial(M.tls_keys));
}

/*
 * The contexts a generation of cfg serves TLS with, into *out (NULL when it
 * has no TLS address).  The ticket keys are made with the first TLS
 * configuration and kept for good: a reload must not cost every client its
 * resumption.  0, or -1 with err naming the file.
 */
static int tls_build(const struct wse_config *cfg, struct wse_tls **out, char *err, size_t n)
{
    struct wse_tls_opts o;

    *out = NULL;
    if (!wants_tls(cfg))
        return 0;
    if (!M.tls_keys) {
        if (!(M.tls_keys = wse_tls_keys_create(err, n)))
            return -1;
        ev_timer_init(&M.ticket_timer, on_ticket_timer, TICKET_PERIOD, TICKET_PERIOD);
        ev_timer_start(M.loop, &M.ticket_timer);
    }
    tls_opts(cfg, &o);
    *out = wse_tls_new(&o, M.tls_keys, err, n);
    return *out ? 0 : -1;
}

static int start(void)
{
    char name[WSE_STR_MAX + 2], err[512];

    M.loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!M.loop) {
        log_error("ev_loop_new(EVBACKEND_EPOLL) failed");
        return -1;
    }
    if (setup_signals() < 0) {
        wse_log_errno(WSE_LOG_ERROR, "signalfd", "setting up signals");
        return -1;
    }
    if (tls_build(&M.cfg, &M.tls, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    if (check_user(&M.cfg) < 0 || groups_open(&M.cfg) < 0 || metrics_open(&M.cfg) < 0)
        return -1;
    wse_stats_default_name(name, sizeof name, M.cfg.stats_name, M.cfg.listen[0].port);
    if (stats_open(name, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    log_info("stats segment %s", name);
    /* Made before any fork and kept across reloads, whatever the limit: a
     * reload may turn it on, and old workers' connections still count. */
    if (wse_iplimit_create(&M.iplimit, 0, M.stats.nslots) < 0) {
        wse_log_errno(WSE_LOG_ERROR, "mmap", "the per-address connection table");
        return -1;
    }
    if (M.cfg.pid_file[0] && pid_file_mine() && write_pid_file(M.cfg.pid_file) < 0) {
        wse_log_errno(WSE_LOG_ERROR, "write", "pid file %s", M.cfg.pid_file);
        return -1;
    }
    return 0;
}

/* A descriptor that pins pid (a recycled pid is another process), or -1
 * where pidfds are missing (then kill(2) after the checks). */
static int pin_process(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int send_signal(int pidfd, pid_t pid, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0)
        return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#endif
    (void)pidfd;
    return kill(pid, sig);
}

/*
 * -s upgrade: the outcome, as the pid file and the stats segment tell it:
 * the pid file names a new process that proves to be the segment's master
 * (success), or the segment counts one more failed upgrade, or the old
 * master is gone.  A new master's workers must be ready within
 * READY_TIMEOUT, and a rejected one is stopped: this waits a little longer.
 */
static int wait_for_upgrade(const struct wse_config *cfg, const char *name, pid_t old,
                            uint32_t failed_before)
{
    char err[WSE_STR_MAX + 256];
    struct timespec tick = {0, 20 * 1000 * 1000};
    uint32_t failed;
    pid_t pid;

    for (int i = 0; i < (int)(READY_TIMEOUT + 5) * 50; i++) {
        nanosleep(&tick, NULL);
        if (read_pid_file(cfg->pid_file, &pid, err, sizeof err) == 0 && pid != old &&
            wse_stats_check_master(name, pid, err, sizeof err) == 0) {
            printf("wsechod: upgraded: pid %d serves, pid %d drains and exits\n", (int)pid,
                   (int)old);
            return 0;
        }
        if (wse_stats_read_upgrades_failed(name, &failed) == 0 && failed != failed_before) {
            fprintf(stderr, "wsechod: upgrade failed; pid %d serves on (its log says why)\n",
                    (int)old);
            return 1;
        }
        if (kill(old, 0) < 0 && errno == ESRCH) {
            fprintf(stderr, "wsechod: pid %d exited and no new master took over\n", (int)old);
            return 1;
        }
    }
    fprintf(stderr, "wsechod: no outcome of the upgrade within %.0f s; see the log\n",
            READY_TIMEOUT + 5);
    return 1;
}

/*
 * -s: signals the master named by the pid file, and only if that process
 * is provably this configuration's master: the pid file is read strictly
 * (read_pid_file), and the process must be the running master of the
 * stats segment this configuration names (wse_stats_check_master: its
 * executable, its user, its mapping of that very segment).  A stale pid
 * file, a pid file rewritten by whoever can write it, or a process renamed
 * wsechod gets no signal.
 */
int wse_master_signal(const struct wse_config *cfg)
{
    static const struct { const char *name; int sig; } names[] = {
        {"reload", SIGHUP}, {"quit", SIGQUIT}, {"stop", SIGTERM}, {"reopen", SIGUSR1},
        {"upgrade", SIGUSR2},
    };
    char err[WSE_STR_MAX + 256], name[WSE_STR_MAX + 2];
    int sig = 0;
    pid_t pid;

    for (size_t i = 0; i < countof(names); i++)
        if (strcmp(cfg->signal_name, names[i].name) == 0)
            sig = names[i].sig;
    if (!cfg->pid_file[0]) {
        fprintf(stderr, "wsechod: -s %s needs the master's pid file: give --pid-file FILE, "
                "or -c CONFIG with a pid-file key\n", cfg->signal_name);
        return 1;
    }
    if (read_pid_file(cfg->pid_file, &pid, err, sizeof err) < 0) {
        fprintf(stderr, "wsechod: %s\n", err);
        return 1;
    }
    wse_stats_default_name(name, sizeof name, cfg->stats_name, cfg->listen[0].port);
    int pidfd = pin_process(pid);
    if (pidfd < 0 && errno == ESRCH) {
        fprintf(stderr, "wsechod: pid %d from pid file '%s' is not running (stale pid file)\n",
                (int)pid, cfg->pid_file);
        return 1;
    }
    if (wse_stats_check_master(name, pid, err, sizeof err) < 0) {
        fprintf(stderr, "wsechod: not signalling pid %d from pid file '%s': %s (a stale or "
                "rewritten pid file?  -s needs the server's own -c FILE, or its --stats-name "
                "or --listen)\n", (int)pid, cfg->pid_file, err);
        if (pidfd >= 0)
            close(pidfd);
        return 1;
    }
    uint32_t failed_before = 0;
    if (sig == SIGUSR2)
        (void)wse_stats_read_upgrades_failed(name, &failed_before);
    int rc = send_signal(pidfd, pid, sig);
    int e = errno;
    if (pidfd >= 0)
        close(pidfd);
    if (rc < 0) {
        fprintf(stderr, "wsechod: signalling pid %d (%s) failed: %s\n", (int)pid,
                strsignal(sig), strerror(e));
        return 1;
    }
    return sig == SIGUSR2 ? wait_for_upgrade(cfg, name, pid, failed_before) : 0;
}

int wse_master_run(const struct wse_config *cfg, int argc, char *const argv[])
{
    M.cfg = *cfg;
    M.argc = argc;
    M.argv = argv;
    M.pid = getpid();
    M.sigfd = -1;
    M.log_before.fd = -1;
    M.access_before.fd = -1;
    M.generation = M.generations = 1;
    wse_log_identity(-1, (int)M.pid);
    if (handover_init() < 0) {
        close_everything();
        return 1;
    }

    long nofile = wse_net_raise_nofile();
    if (nofile < 0)
        wse_log_errno(WSE_LOG_WARN, "setrlimit", "raising RLIMIT_NOFILE");
    else
        log_info("descriptor limit %ld per process", nofile);

    if (start() < 0) {
        close_everything();
        return 1;
    }
    handover_started();
    ev_io_init(&M.sig_io, on_signal, M.sigfd, EV_READ);
    ev_io_start(M.loop, &M.sig_io);
    ev_timer_init(&M.kill_timer, on_kill_timer, 0, 0);
    ev_timer_init(&M.ready_timer, on_ready_timeout, 0, 0);
    for (unsigned i = 0; i < WSE_MAX_WORKERS; i++)
        ev_timer_init(&M.slots[i].respawn, on_respawn, 0, 0);
    M.nslots = M.cfg.workers;
    groups_prune(&M.cfg);
    for (unsigned i = 0; i < M.nslots; i++)
        spawn(i, &M.cfg, M.generation);
    metrics_spawn();
    ev_run(M.loop, 0);
    log_info("exiting");
    close_everything();
    return M.exit_status;
}
