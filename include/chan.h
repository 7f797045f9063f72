/*
 * chan.h - the master <-> worker channel: a SOCK_SEQPACKET socketpair
 * carrying fixed-size records, so a record is never split or merged.
 * EOF on either end means the other process is gone.
 */
#ifndef WSE_CHAN_H
#define WSE_CHAN_H

#include <stdint.h>

enum wse_chan_type {
    WSE_CHAN_READY = 1,     /* worker -> master: listening and serving */
    WSE_CHAN_DRAIN,         /* master -> worker: stop accepting, drain, exit */
    WSE_CHAN_STOP,          /* master -> worker: close everything with 1001 now, exit */
    WSE_CHAN_REOPEN,        /* master -> worker: reopen the log file; see below */
    WSE_CHAN_WATCH,         /* master -> worker: serve slot arg's sockets too (its worker is down) */
    WSE_CHAN_UNWATCH,       /* master -> worker: slot arg's worker serves again: leave them */
    WSE_CHAN_TAKEOVER,      /* old master -> new (live upgrade): you are the master now */
};

/*
 * WSE_CHAN_REOPEN's arg: which of the master's reopened logs come attached,
 * in this order.  The worker writes to those from then on (it may not be
 * allowed to open the files itself: --user); a log not attached it
 * reopens by its path.
 */
#define WSE_CHAN_REOPEN_LOG    0x1u
#define WSE_CHAN_REOPEN_ACCESS 0x2u
#define WSE_CHAN_MAX_FDS 2

struct wse_chan_rec {
    uint32_t type;
    uint32_t arg;
};

/* fds[0] for the master, fds[1] for the worker; both non-blocking, close-on-exec. */
int wse_chan_pair(int fds[2]);

/* 0 on success, -1 with errno (EAGAIN if the peer is not reading). */
int wse_chan_send(int fd, uint32_t type, uint32_t arg);

/* wse_chan_send() with n <= WSE_CHAN_MAX_FDS descriptors attached. */
int wse_chan_send_fds(int fd, uint32_t type, uint32_t arg, const int *fds, unsigned n);

/* 1: *rec filled; 0: EOF (peer gone); -1: errno (EAGAIN: nothing now).
 * Descriptors attached to a record are closed. */
int wse_chan_recv(int fd, struct wse_chan_rec *rec);

/* wse_chan_recv() that keeps up to cap attached descriptors (close-on-exec)
 * in fds, their number in *nfds; those beyond cap are closed. */
int wse_chan_recv_fds(int fd, struct wse_chan_rec *rec, int *fds, unsigned cap, unsigned *nfds);

#endif
