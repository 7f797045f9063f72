/*
 * chan.c - fixed-size records over a SOCK_SEQPACKET socketpair.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"

int wse_chan_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

int wse_chan_send(int fd, uint32_t type, uint32_t arg)
{
    struct wse_chan_rec rec = {.type = type, .arg = arg};
    ssize_t n;

    do
        n = send(fd, &rec, sizeof rec, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof rec ? 0 : -1;
}

int wse_chan_send_fds(int fd, uint32_t type, uint32_t arg, const int *fds, unsigned n)
{
    struct wse_chan_rec rec = {.type = type, .arg = arg};
    struct iovec iov = {.iov_base = &rec, .iov_len = sizeof rec};
    union {
        char buf[CMSG_SPACE(WSE_CHAN_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t r;

    if (n > WSE_CHAN_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (n) {
        memset(&ctl, 0, sizeof ctl);
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
    }
    do
        r = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)sizeof rec ? 0 : -1;
}

/* Takes the descriptors of one control message: up to cap into fds, the rest closed. */
static void take_fds(struct msghdr *msg, int *fds, unsigned cap, unsigned *nfds)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int got;
            memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
            if (*nfds < cap)
                fds[(*nfds)++] = got;
            else
                close(got);
        }
    }
}

int wse_chan_recv_fds(int fd, struct wse_chan_rec *rec, int *fds, unsigned cap, unsigned *nfds)
{
    struct iovec iov = {.iov_base = rec, .iov_len = sizeof *rec};
    union {
        char buf[CMSG_SPACE(WSE_CHAN_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    ssize_t n;

    *nfds = 0;
    do
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0;
    if (n < 0)
        return -1;
    /* Descriptors that did not fit the control buffer were dropped by the kernel. */
    take_fds(&msg, fds, cap, nfds);
    if (n != (ssize_t)sizeof *rec) {
        while (*nfds)
            close(fds[--*nfds]);
        errno = EPROTO;
        return -1;
    }
    return 1;
}

int wse_chan_recv(int fd, struct wse_chan_rec *rec)
{
    unsigned n;

    return wse_chan_recv_fds(fd, rec, NULL, 0, &n);
}
