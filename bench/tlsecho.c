/*
 * tlsecho.c - a raw TLS echo server: the floor for wss in bench/compare.sh.
 *
 * rawecho.c's I/O with OpenSSL between: one thread, epoll, level-triggered,
 * non-blocking sockets.  Each readable connection gets one read of up to
 * 64 KiB of plaintext (records read while a whole one still fits and
 * OpenSSL holds more, read ahead on: as the server's TLS transport reads),
 * written straight back as records, and again while whole records read
 * ahead remain inside OpenSSL (no socket event would come for them); what
 * the peer will not take yet is kept and the connection waits for EPOLLOUT
 * (without EPOLLIN) until it is sent.  The context is the server's: TLS 1.2
 * and 1.3, OpenSSL's default suites, released buffers, tickets (OpenSSL's
 * own keys: one process), no session cache.
 *
 * Usage: tlsecho PORT CERT KEY   (127.0.0.1:PORT; SIGINT/SIGTERM stop it)
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE   65536
#define MAX_EVENTS 256

/* A connection: its session, and output the peer has not taken yet. */
struct conn {
    SSL *ssl;
    size_t off, len;
    char *buf;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void drop(int ep, struct conn **conns, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    if (conns[fd]) {
        SSL_free(conns[fd]->ssl);
        free(conns[fd]->buf);
        free(conns[fd]);
        conns[fd] = NULL;
    }
    close(fd);
    ERR_clear_error();
}

/* Write what is left of c's output from buf; 1 = all sent, 0 = would
 * block (the same bytes are offered again later), -1 = error. */
static int flush_out(struct conn *c, const char *buf)
{
    while (c->off < c->len) {
        size_t w;
        int r = SSL_write_ex(c->ssl, buf + c->off, c->len - c->off, &w);
        if (r == 1) {
            c->off += w;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
    }
    return 1;
}

static void watch(int ep, int fd, uint32_t events)
{
    struct epoll_event cev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
}

static SSL_CTX *server_ctx(const char *cert, const char *key)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (!c)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(c, 1);   /* one read() per burst, not per record half */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c, 1);
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(c);
        return NULL;
    }
    return c;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tlsecho PORT CERT KEY\n");
        return 2;
    }
    SSL_CTX *ctx = server_ctx(argv[2], argv[3]);
    if (!ctx) {
        fprintf(stderr, "tlsecho: cannot load %s / %s\n", argv[2], argv[3]);
        return 1;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end || port < 1 || port > 65535) {
        fprintf(stderr, "tlsecho: bad port '%s'\n", argv[1]);
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
        perror("tlsecho: socket");
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
        perror("tlsecho: bind/listen");
        return 1;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn **conns = calloc(maxfd, sizeof *conns);
    char *buf = malloc(BUF_SIZE);
    if (ep < 0 || !conns || !buf) {
        fprintf(stderr, "tlsecho: out of memory or no epoll\n");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            perror("tlsecho: epoll_wait");
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

            struct conn *c = conns[fd];
            if (!c) {
                c = calloc(1, sizeof *c);
                if (!c || !(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, fd) != 1) {
                    free(c);
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    close(fd);
                    continue;
                }
                SSL_set_accept_state(c->ssl);
                conns[fd] = c;
            }
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                drop(ep, conns, fd);
                continue;
            }
            if (c->buf) {   /* waiting to finish a write */
                int r = flush_out(c, c->buf);
                if (r < 0) {
                    drop(ep, conns, fd);
                } else if (r > 0) {
                    free(c->buf);
                    c->buf = NULL;
                    watch(ep, fd, EPOLLIN);
                }
                continue;
            }

        again:;
            size_t got = 0;
            int e = SSL_ERROR_NONE;
            while (BUF_SIZE - got >= SSL3_RT_MAX_PLAIN_LENGTH) {
                size_t k;
                int r = SSL_read_ex(c->ssl, buf + got, BUF_SIZE - got, &k);
                if (r != 1) {
                    e = SSL_get_error(c->ssl, r);
                    break;
                }
                got += k;
                if (!SSL_has_pending(c->ssl))
                    break;      /* the rest, if any, is the socket's */
            }
            if (!got) {
                if (e == SSL_ERROR_WANT_READ)
                    watch(ep, fd, EPOLLIN);
                else if (e == SSL_ERROR_WANT_WRITE)     /* a handshake flight */
                    watch(ep, fd, EPOLLIN | EPOLLOUT);
                else {
                    if (e == SSL_ERROR_ZERO_RETURN)     /* close_notify answered */
                        SSL_shutdown(c->ssl);
                    drop(ep, conns, fd);
                }
                continue;
            }
            c->off = 0;
            c->len = got;
            int w = flush_out(c, buf);
            if (w < 0) {
                drop(ep, conns, fd);
            } else if (w > 0 && e == SSL_ERROR_NONE && SSL_has_pending(c->ssl)) {
                goto again;     /* the buffer filled with records still held */
            } else if (w == 0) {
                /* Keep the rest (from the start of the blocked record: the
                 * same bytes go again); stop reading until it is out. */
                c->buf = malloc(c->len);
                if (!c->buf) {
                    drop(ep, conns, fd);
                    continue;
                }
                memcpy(c->buf, buf, c->len);
                watch(ep, fd, EPOLLOUT);
            }
        }
    }
    for (size_t fd = 0; fd < maxfd; fd++)
        if (conns[fd])
            drop(ep, conns, (int)fd);
    free(conns);
    SSL_CTX_free(ctx);
    free(buf);
    close(ep);
    close(lfd);
    return 0;
}
