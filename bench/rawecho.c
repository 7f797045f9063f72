/*
 * rawecho.c - a raw TCP echo server: the floor for bench/compare.sh.
 *
 * The same I/O as a WebSocket echo server with none of the WebSocket: one
 * thread, epoll, level-triggered, non-blocking sockets.  Each readable
 * connection gets one read of up to 64 KiB, written straight back; what the
 * peer will not take yet is kept and the connection waits for EPOLLOUT
 * (without EPOLLIN) until it is sent, so a slow reader cannot make the
 * server buffer without bound.
 *
 * Usage: rawecho PORT      (listens on 127.0.0.1:PORT; SIGINT/SIGTERM stop it)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE   65536
#define MAX_EVENTS 256

/* A connection with output the peer has not taken yet. */
struct pending {
    int fd;
    size_t off, len;
    char *buf;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void drop(int ep, struct pending **pend, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (pend[fd]) {
        free(pend[fd]->buf);
        free(pend[fd]);
        pend[fd] = NULL;
    }
}

/* Write what is left of p; 1 = all sent, 0 = would block, -1 = error. */
static int flush_pending(struct pending *p)
{
    while (p->off < p->len) {
        ssize_t w = write(p->fd, p->buf + p->off, p->len - p->off);
        if (w > 0) {
            p->off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: rawecho PORT\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end || port < 1 || port > 65535) {
        fprintf(stderr, "rawecho: bad port '%s'\n", argv[1]);
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t maxfd = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > maxfd)
        maxfd = (size_t)rl.rlim_cur;
    if (maxfd > 16u << 20)
        maxfd = 16u << 20;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("rawecho: socket");
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 4096) < 0) {
        perror("rawecho: bind/listen");
        return 1;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct pending **pend = calloc(maxfd, sizeof *pend);
    char *buf = malloc(BUF_SIZE);
    if (ep < 0 || !pend || !buf) {
        fprintf(stderr, "rawecho: out of memory or no epoll\n");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            perror("rawecho: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0)
                        break;  /* EAGAIN, or out of descriptors: try later */
                    if ((size_t)c >= maxfd) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
                        close(c);
                }
                continue;
            }

            struct pending *p = pend[fd];
            if (p) {    /* waiting to finish a write */
                int r = (evs[i].events & (EPOLLERR | EPOLLHUP)) ? -1 : flush_pending(p);
                if (r < 0) {
                    drop(ep, pend, fd);
                } else if (r > 0) {
                    free(p->buf);
                    free(p);
                    pend[fd] = NULL;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = fd};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
                }
                continue;
            }

            ssize_t r = read(fd, buf, BUF_SIZE);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (r <= 0) {
                drop(ep, pend, fd);
                continue;
            }
            struct pending tmp = {.fd = fd, .off = 0, .len = (size_t)r, .buf = buf};
            int w = flush_pending(&tmp);
            if (w < 0) {
                drop(ep, pend, fd);
            } else if (w == 0) {
                /* Keep the rest; stop reading until it is out. */
                p = malloc(sizeof *p);
                char *rest = p ? malloc(tmp.len - tmp.off) : NULL;
                if (!p || !rest) {
                    free(p);
                    drop(ep, pend, fd);
                    continue;
                }
                memcpy(rest, buf + tmp.off, tmp.len - tmp.off);
                p->fd = fd;
                p->buf = rest;
                p->len = tmp.len - tmp.off;
                p->off = 0;
                pend[fd] = p;
                struct epoll_event cev = {.events = EPOLLOUT, .data.fd = fd};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
            }
        }
    }
    for (size_t fd = 0; fd < maxfd; fd++) {
        if (pend[fd]) {
            free(pend[fd]->buf);
            free(pend[fd]);
        }
    }
    free(pend);
    free(buf);
    close(ep);
    close(lfd);
    return 0;
}
