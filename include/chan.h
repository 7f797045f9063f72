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
    WSE_CHAN_REOPEN,        /* master -> worker: reopen the log file */
    WSE_CHAN_TAKEOVER,      /* old master -> new (live upgrade): you are the master now */
};

struct wse_chan_rec {
    uint32_t type;
    uint32_t arg;
};

/* fds[0] for the master, fds[1] for the worker; both non-blocking, close-on-exec. */
int wse_chan_pair(int fds[2]);

/* 0 on success, -1 with errno (EAGAIN if the peer is not reading). */
int wse_chan_send(int fd, uint32_t type, uint32_t arg);

/* 1: *rec filled; 0: EOF (peer gone); -1: errno (EAGAIN: nothing now). */
int wse_chan_recv(int fd, struct wse_chan_rec *rec);

#endif
