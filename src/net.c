/*
 * net.c - listeners and accepted sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net.h"

static int fail(int fd, char *err, size_t errlen, const struct wse_listen *l, const char *what)
{
    snprintf(err, errlen, "%s on %s failed: %s", what, l->text, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static socklen_t fill_addr(const struct wse_listen *l, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (l->family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(l->port);
        inet_pton(AF_INET6, l->host, &a6->sin6_addr);
        return sizeof *a6;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(l->port);
    inet_pton(AF_INET, l->host, &a4->sin_addr);
    return sizeof *a4;
}

static int listen_on(const struct wse_listen *l, int backlog, bool reuseport, char *err,
                     size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = fill_addr(l, &ss);
    int one = 1;
    int fd = socket(l->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return fail(fd, err, errlen, l, "socket()");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return fail(fd, err, errlen, l, "setsockopt(SO_REUSEADDR)");
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        return fail(fd, err, errlen, l, "setsockopt(SO_REUSEPORT)");
    /* "[::]:8000" means IPv6 only; list 0.0.0.0:8000 too for both. */
    if (l->family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        return fail(fd, err, errlen, l, "setsockopt(IPV6_V6ONLY)");
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        return fail(fd, err, errlen, l, "bind()");
    if (listen(fd, backlog) < 0)
        return fail(fd, err, errlen, l, "listen()");
    return fd;
}

int wse_net_listen(const struct wse_listen *l, int backlog, char *err, size_t errlen)
{
    return listen_on(l, backlog, true, err, errlen);
}

int wse_net_listen_exclusive(const struct wse_listen *l, int backlog, char *err, size_t errlen)
{
    return listen_on(l, backlog, false, err, errlen);
}

int wse_net_accept(int lfd, struct sockaddr_storage *peer)
{
    socklen_t len = sizeof *peer;
    int fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    int one = 1;
    /* Best effort: a socket without it still works, only slower. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void wse_net_format(const struct sockaddr_storage *sa, char out[WSE_ADDR_MAX])
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        snprintf(out, WSE_ADDR_MAX, "[%s]:%u", host, ntohs(a6->sin6_port));
    } else if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        snprintf(out, WSE_ADDR_MAX, "%s:%u", host, ntohs(a4->sin_port));
    } else {
        snprintf(out, WSE_ADDR_MAX, "unknown");
    }
}

void wse_net_url(char *out, size_t n, const char *scheme, const struct wse_listen *l,
                 const char *path)
{
    /* l->host is inet_ntop's form: only an IPv6 one needs brackets. */
    bool v6 = l->family == AF_INET6;
    snprintf(out, n, "%s://%s%s%s:%u%s", scheme, v6 ? "[" : "", l->host, v6 ? "]" : "",
             l->port, path);
}

const char *wse_net_wildcard(const struct wse_listen *l)
{
    /* IPv6 listeners are IPV6_V6ONLY: "::" covers IPv6 only. */
    if (l->family == AF_INET && strcmp(l->host, "0.0.0.0") == 0)
        return "all IPv4 interfaces";
    if (l->family == AF_INET6 && strcmp(l->host, "::") == 0)
        return "all IPv6 interfaces";
    return NULL;
}

long wse_net_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -1;
    }
    return (long)rl.rlim_cur;
}
