/*
 * chan.c - fixed-size records over a SOCK_SEQPACKET socketpair.
 */
#include <errno.h>
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

int wse_chan_recv(int fd, struct wse_chan_rec *rec)
{
    ssize_t n;

    do
        n = recv(fd, rec, sizeof *rec, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0;
    if (n < 0)
        return -1;
    if (n != (ssize_t)sizeof *rec) {
        errno = EPROTO;
        return -1;
    }
    return 1;
}
