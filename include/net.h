/*
 * net.h - sockets: listeners, accept, TCP options, address formatting.
 */
#ifndef WSE_NET_H
#define WSE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"

/* A listening address as configured (config.c fills it, this module uses it). */
struct wse_listen {
    char text[WSE_STR_MAX];   /* as given: "0.0.0.0:8000", "[::]:8000" */
    char host[WSE_STR_MAX];   /* numeric address, without brackets */
    uint16_t port;
    int family;               /* AF_INET or AF_INET6 */
    bool tls;                 /* a --tls-listen address: wss and https */
};

#define WSE_ADDR_MAX 64     /* "[ffff:...]:65535" and a NUL */

/*
 * Opens a non-blocking, close-on-exec TCP listener on l with SO_REUSEADDR
 * and SO_REUSEPORT (so one socket per worker slot can share the address and
 * the kernel spreads connections over them), IPV6_V6ONLY for IPv6.
 * Returns the fd, or -1 with a message naming the failed call in err.
 */
int wse_net_listen(const struct wse_listen *l, int backlog, char *err, size_t errlen);

/*
 * The same without SO_REUSEPORT: no other socket, even one of this user's,
 * can share the port (the --metrics-listen socket).
 */
int wse_net_listen_exclusive(const struct wse_listen *l, int backlog, char *err, size_t errlen);

/*
 * accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) plus TCP_NODELAY on the new socket
 * (echo replies must not wait for Nagle).  Returns the fd or -1 with errno.
 */
int wse_net_accept(int lfd, struct sockaddr_storage *peer);

/* "1.2.3.4:5678" or "[::1]:5678" */
void wse_net_format(const struct sockaddr_storage *sa, char out[WSE_ADDR_MAX]);

/*
 * The URL a client uses for l: scheme "ws" or "http", path starting with '/',
 * e.g. "ws://127.0.0.1:8000/websocket", "http://[::1]:8000/".  Truncated to n.
 */
void wse_net_url(char *out, size_t n, const char *scheme, const struct wse_listen *l,
                 const char *path);

/*
 * For a wildcard address, what it covers ("all IPv4 interfaces"); NULL for
 * an address of one interface.
 */
const char *wse_net_wildcard(const struct wse_listen *l);

/* Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit. */
long wse_net_raise_nofile(void);

#endif
