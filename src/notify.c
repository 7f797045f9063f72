/*
 * notify.c - sd_notify datagrams.  Best effort: a service manager that is
 * not listening must not stop the server, so errors are ignored.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

static bool muted;

void wse_notify_mute(bool mute)
{
    muted = mute;
}

/* One datagram, with fd attached (SCM_RIGHTS) when fd >= 0. */
static void send_state(int fd, const char *fmt, va_list ap)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char msg[512];

    if (muted || !path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof sa.sun_path)
        return;
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        return;

    size_t plen = strlen(path);
    memcpy(sa.sun_path, path, plen);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';      /* abstract namespace */
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return;
    struct iovec iov = {.iov_base = msg, .iov_len = (size_t)n};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr mh = {
        .msg_name = &sa,
        .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen),
        .msg_iov = &iov, .msg_iovlen = 1,
    };
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof control.buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    (void)sendmsg(sock, &mh, MSG_NOSIGNAL);
    close(sock);
}

void wse_notify(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    send_state(-1, fmt, ap);
    va_end(ap);
}

void wse_notify_fd(int fd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    send_state(fd, fmt, ap);
    va_end(ap);
}

void wse_notify_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    wse_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}
