/*
 * transport.c - the plain socket transport.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static ssize_t plain_read(int fd, void *buf, size_t cap)
{
    return read(fd, buf, cap);
}

/* One iovec is a write(): the common case of a small echo run. */
static ssize_t plain_writev(int fd, const struct iovec *iov, int niov)
{
    return niov == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, niov);
}

static int plain_shutdown(int fd)
{
    return shutdown(fd, SHUT_WR);
}

/* No state and no waits of its own: wants and forget stay NULL, so a plain
 * connection skips them. */
const struct wse_transport wse_transport_plain = {
    .name = "plain",
    .read = plain_read,
    .writev = plain_writev,
    .shutdown = plain_shutdown,
};
