/*
 * wsbench_loop.c - one wsbench thread: an edge-triggered epoll loop driving
 * its share of the connections.
 *
 * A connection's life: CONNECTING (non-blocking connect) -> HS (upgrade
 * request sent, waiting for the 101) -> OPEN (messages) -> CLOSING (close
 * frame queued, sent or received; waiting for the server's FIN) -> closed.
 * In echo and raw mode a failed connection is reopened at the next tick; in
 * connect-rate mode a completed cycle is reopened at once.
 *
 * Output is built in a per-connection buffer and written with one send():
 * every pipelined frame that fits, streamed in pieces when a message is
 * larger than the buffer.  A frame's payload is copied from the shared
 * pattern and masked in place.  Input is read into one large per-thread
 * buffer and parsed in place; echoes are compared with the pattern as they
 * stream in, so no message is ever reassembled or allocated.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "common.h"
#include "frame.h"
#include "handshake.h"
#include "msg.h"
#include "wsbench.h"

#define RBUF_SIZE   (256u * 1024u)  /* one read */
#define OBUF_MAX    (64u * 1024u)   /* per-connection output buffer, at most */
#define HS_CAP      1024u           /* largest 101 response head */
#define TICK_NS     100000000ull    /* 100 ms: rate samples, timeouts, retries */
#define OPEN_WINDOW 256u            /* connects+handshakes in progress at once */
#define MAX_EVENTS  512

enum cstate { CS_IDLE, CS_CONNECTING, CS_HS, CS_OPEN, CS_CLOSING, CS_DONE };

#define F_CLOSE_QUEUED 0x001    /* send a close frame (raw: shut down) at the next frame boundary */
#define F_CLOSE_SENT   0x002
#define F_CLOSE_RCVD   0x004
#define F_OURS         0x008    /* we started the close */
#define F_PONG         0x010    /* a pong is owed */
#define F_IN_FRAME     0x020    /* parsing a frame's payload */
#define F_IN_MSG       0x040    /* inside a (possibly fragmented) data message */
#define F_RETRY        0x080    /* reconnect at the next tick */
#define F_SHUT         0x100    /* raw: shut down writing once the output is sent */
#define F_SHUT_DONE    0x200
#define F_ZIN          0x400    /* --deflate: the message being received is compressed */

struct ctx;

struct wsb_conn {
    int fd;
    SSL *ssl;                   /* wss:// / tls:// only */
    uint8_t state;
    uint16_t flags;
    unsigned id;                /* global connection number */
    uint64_t t_start;           /* connect() */
    uint64_t t_deadline;        /* connect/handshake/close deadline */

    /* sending */
    uint64_t send_seq;          /* messages started */
    uint64_t msg_limit;         /* messages this connection may send */
    uint64_t cur_left;          /* payload bytes of the current frame still to write */
    uint64_t cur_pos;
    uint32_t cur_off;           /* pattern offset of the current message */
    unsigned cur_mpos;
    uint8_t cur_mask[4];
    uint16_t close_code;
    uint8_t pong_len;
    uint8_t *obuf;
    uint32_t ocap, olen, ooff;
    uint64_t *ts;               /* send times, ring of `pipeline` entries */

    /* receiving */
    uint64_t recv_seq;          /* echoes completed */
    uint64_t timed_out;         /* echoes below this were counted as timeouts */
    uint64_t frame_left;
    uint64_t msg_pos;
    uint32_t msg_off;
    uint8_t frame_op;
    uint8_t frame_fin;
    uint8_t hdr_have;
    uint8_t ctl_len;
    uint8_t hdr[14];
    uint8_t ctl[WSE_CONTROL_MAX];
    uint8_t pong[WSE_CONTROL_MAX];

    /* --deflate: the message being sent, compressed; the echo being
     * received, still compressed (inflated and checked at its end) */
    uint8_t *zout, *zin;
    uint32_t zout_len, zout_cap, zin_len, zin_cap;

    char *hs;                   /* the 101 response head while it arrives */
    uint32_t hs_len;
    char accept[WSE_ACCEPT_LEN + 1];
};

struct ctx {
    struct wsb_thread *t;
    const struct wsb_config *cfg;
    int ep;
    bool measuring;
    bool raw;
    bool opening;               /* inside open_more() */
    unsigned pipe;              /* ring size of ts[] */
    unsigned next_open;         /* slots opened at least once */
    unsigned connecting;        /* in CONNECTING or HS */
    unsigned open;              /* in OPEN or CLOSING */
    unsigned live;              /* with an fd */
    unsigned verbose_left;
    struct wsb_conn *conns;
    SSL_SESSION *sess;          /* --tls-resume: the last session with a ticket */
    struct wsb_conn **now_list; /* reconnect right after this batch of events */
    unsigned now_n;
    uint8_t *rbuf;
    uint8_t *obufs;
    uint64_t *tss;
    char *hss;
    uint64_t rng;
    uint64_t last_tick;
    uint64_t last_count;
    unsigned pool_pos;
    uint8_t pool[4096];         /* getrandom() bytes for handshake keys */
    z_stream def, inf;          /* --deflate: reset per message (no takeover either way) */
    uint8_t *zbuf;              /* inflated echo, ZBUF bytes at a time */
};

#define ZBUF (64u * 1024)

enum { LATER, NOW };

uint64_t wsb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Where in the pattern the payload of message seq of connection id starts. */
static inline uint32_t pat_off(unsigned id, uint64_t seq)
{
    return (uint32_t)(mix64(((uint64_t)id << 40) ^ seq) & (WSB_PAT_LEN - 1));
}

static void fill_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("wsbench: getrandom");
            exit(1);
        }
        p += r;
        n -= (size_t)r;
    }
}

static void b64_16(const uint8_t in[16], char out[25])
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    out[o++] = tab[in[15] >> 2];
    out[o++] = tab[(in[15] & 3) << 4];
    out[o++] = '=';
    out[o++] = '=';
    out[o] = '\0';
}

/* ------------------------------------------------------------------ */
/* errors and closing                                                 */

static void open_more(struct ctx *x, uint64_t now);

/* The session goes with the connection; a resumable one is kept first for
 * --tls-resume (a quiet shutdown: OpenSSL spoils the session of an SSL
 * freed without one). */
static void tls_drop(struct ctx *x, struct wsb_conn *c)
{
    if (x->cfg->tls_resume && SSL_is_init_finished(c->ssl)) {
        SSL_SESSION *s = SSL_get1_session(c->ssl);
        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(x->sess);
            x->sess = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
    SSL_set_quiet_shutdown(c->ssl, 1);
    SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();
}

static void conn_drop(struct ctx *x, struct wsb_conn *c, int when)
{
    if (c->ssl)
        tls_drop(x, c);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        x->live--;
    }
    if (c->state == CS_CONNECTING || c->state == CS_HS)
        x->connecting--;
    else if (c->state == CS_OPEN || c->state == CS_CLOSING)
        x->open--;
    c->flags = 0;
    if (!x->measuring || x->cfg->mode == WSB_HOLD) {
        c->state = CS_DONE;
        if (x->measuring)
            open_more(x, wsb_now());
        return;
    }
    c->state = CS_IDLE;
    if (when == NOW)
        x->now_list[x->now_n++] = c;
    else
        c->flags = F_RETRY;
}

static void conn_error(struct ctx *x, struct wsb_conn *c, enum wsb_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_error(struct ctx *x, struct wsb_conn *c, enum wsb_err e, const char *fmt, ...)
{
    x->t->err[e]++;
    if (x->verbose_left) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        x->verbose_left--;
        fprintf(stderr, "wsbench: connection %u (message %" PRIu64 "): %s error: %s\n", c->id,
                c->recv_seq, wsb_err_names[e], msg);
    }
    conn_drop(x, c, LATER);
}

static void queue_close(struct ctx *x, struct wsb_conn *c, uint16_t code, bool ours, uint64_t now)
{
    c->flags |= F_CLOSE_QUEUED | (ours ? F_OURS : 0);
    c->close_code = code;
    if (c->state == CS_OPEN)
        c->state = CS_CLOSING;
    c->t_deadline = now + x->cfg->timeout_ns;
}

/* ------------------------------------------------------------------ */
/* output                                                             */

/* A whole masked frame with a payload of at most 125 bytes. */
static void put_small_frame(struct ctx *x, struct wsb_conn *c, unsigned op, const uint8_t *pl,
                            size_t len)
{
    uint8_t *o = c->obuf + c->olen;
    uint32_t m = (uint32_t)(rng_next(&x->rng) >> 32);
    o[0] = (uint8_t)(0x80 | op);
    o[1] = (uint8_t)(0x80 | len);
    memcpy(o + 2, &m, 4);
    memcpy(o + 6, pl, len);
    wse_unmask(o + 6, len, o + 2, 0);
    c->olen += (uint32_t)(6 + len);
}

static void emit_payload(struct ctx *x, struct wsb_conn *c, uint32_t room)
{
    uint64_t k = c->cur_left < room ? c->cur_left : room;
    uint8_t *start = c->obuf + c->olen, *o = start;
    const uint8_t *pat = x->cfg->pattern;

    if (x->cfg->deflate) {
        memcpy(o, c->zout + c->cur_pos, (size_t)k);
        c->cur_pos += k;
    }
    for (uint64_t left = x->cfg->deflate ? 0 : k; left;) {
        uint32_t idx = (uint32_t)((c->cur_off + c->cur_pos) & (WSB_PAT_LEN - 1));
        size_t m = left < WSB_PAT_LEN ? (size_t)left : WSB_PAT_LEN;
        memcpy(o, pat + idx, m);
        o += m;
        left -= m;
        c->cur_pos += m;
    }
    if (!x->raw)
        c->cur_mpos = wse_unmask(start, (size_t)k, c->cur_mask, c->cur_mpos);
    c->olen += (uint32_t)k;
    c->cur_left -= k;
}

/*
 * --deflate: the message about to be sent (the pattern from cur_off),
 * compressed into c->zout as its own DEFLATE stream, the sync-flush tail
 * dropped (RFC 7692 7.2.1); cur_left becomes its length.  -1: no memory.
 */
static int compress_msg(struct ctx *x, struct wsb_conn *c)
{
    uint64_t size = x->cfg->size;
    uLong bound = deflateBound(&x->def, (uLong)size) + 16;

    if (bound > UINT32_MAX)
        return -1;
    if (c->zout_cap < bound) {
        free(c->zout);
        if (!(c->zout = malloc(bound))) {
            c->zout_cap = 0;
            conn_error(x, c, WSB_E_WRITE, "out of memory for a compressed message");
            return -1;
        }
        c->zout_cap = (uint32_t)bound;
    }
    deflateReset(&x->def);
    x->def.next_out = c->zout;
    x->def.avail_out = (uInt)bound;
    for (uint64_t pos = 0; pos < size || pos == 0;) {
        uint32_t idx = (uint32_t)((c->cur_off + pos) & (WSB_PAT_LEN - 1));
        uint64_t m = size - pos < WSB_PAT_LEN ? size - pos : WSB_PAT_LEN;
        x->def.next_in = (Bytef *)(uintptr_t)(x->cfg->pattern + idx);
        x->def.avail_in = (uInt)m;
        pos += m;
        if (deflate(&x->def, pos < size ? Z_NO_FLUSH : Z_SYNC_FLUSH) != Z_OK)
            break;
        if (!size)
            break;
    }
    c->zout_len = (uint32_t)(bound - x->def.avail_out);
    if (c->zout_len < 4) {
        conn_error(x, c, WSB_E_WRITE, "zlib failed to compress a message");
        return -1;
    }
    c->zout_len -= 4;
    c->cur_left = c->zout_len;
    return 0;
}

static int verify(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t k);

/* --deflate: the whole compressed echo is in c->zin: inflate and check it. */
static int inflate_echo(struct ctx *x, struct wsb_conn *c)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

    inflateReset(&x->inf);
    for (int part = 0; part < 2; part++) {
        x->inf.next_in = (Bytef *)(uintptr_t)(part ? tail : c->zin);
        x->inf.avail_in = part ? 4 : c->zin_len;
        do {
            x->inf.next_out = x->zbuf;
            x->inf.avail_out = ZBUF;
            int rc = inflate(&x->inf, Z_SYNC_FLUSH);
            if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
                conn_error(x, c, WSB_E_MISMATCH, "echo does not inflate (zlib %d)", rc);
                return -1;
            }
            if (verify(x, c, x->zbuf, ZBUF - x->inf.avail_out) < 0)
                return -1;
        } while (x->inf.avail_out == 0);
    }
    c->zin_len = 0;
    return 0;
}

/* Appends what may be sent now to the output buffer. */
static void fill(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    const struct wsb_config *cfg = x->cfg;
    const uint64_t size = cfg->size;
    const uint32_t need = x->raw ? 1 : WSE_FRAME_HDR_MAX + (size ? 1 : 0);

    for (;;) {
        uint32_t room = c->ocap - c->olen;
        if (c->cur_left) {
            if (!room)
                return;
            emit_payload(x, c, room);
            continue;
        }
        /* At a frame boundary: control frames first. */
        if (c->flags & F_PONG) {
            if (room < 6u + c->pong_len)
                return;
            put_small_frame(x, c, WSE_OP_PONG, c->pong, c->pong_len);
            c->flags &= (uint16_t)~F_PONG;
            continue;
        }
        if (c->flags & F_CLOSE_QUEUED) {
            if (x->raw) {
                c->flags = (uint16_t)((c->flags & ~F_CLOSE_QUEUED) | F_CLOSE_SENT | F_SHUT);
                return;
            }
            if (room < 8)
                return;
            uint8_t pl[2] = {(uint8_t)(c->close_code >> 8), (uint8_t)c->close_code};
            put_small_frame(x, c, WSE_OP_CLOSE, pl, 2);
            c->flags = (uint16_t)((c->flags & ~F_CLOSE_QUEUED) | F_CLOSE_SENT);
            return;
        }
        if (c->state != CS_OPEN || !x->measuring)
            return;
        if (c->send_seq - c->recv_seq >= x->pipe || c->send_seq >= c->msg_limit)
            return;
        if (room < need)
            return;
        uint64_t seq = c->send_seq++;
        c->ts[seq % x->pipe] = now;
        c->cur_off = pat_off(c->id, seq);
        c->cur_pos = 0;
        c->cur_left = size;
        if (cfg->deflate && compress_msg(x, c) < 0)
            return;
        if (!x->raw) {
            uint32_t m = (uint32_t)(rng_next(&x->rng) >> 32);
            uint8_t *o = c->obuf + c->olen;
            memcpy(c->cur_mask, &m, 4);
            c->cur_mpos = 0;
            size_t hl = wse_frame_write_header(o, true, cfg->binary ? WSE_OP_BINARY : WSE_OP_TEXT,
                                               c->cur_left);
            if (cfg->deflate)
                o[0] |= WSE_RSV1;
            o[1] |= 0x80;
            memcpy(o + hl, c->cur_mask, 4);
            c->olen += (uint32_t)(hl + 4);
        }
    }
}

/* send(2) and recv(2), or their TLS counterparts with the same
 * conventions (EAGAIN while the record layer waits either way). */
static ssize_t tls_errno(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e != SSL_ERROR_SYSCALL || !errno)
        errno = EPROTO;
    return -1;
}

static ssize_t io_send(struct wsb_conn *c, const void *b, size_t n)
{
    size_t w;
    if (!c->ssl)
        return send(c->fd, b, n, MSG_NOSIGNAL);
    int r = SSL_write_ex(c->ssl, b, n, &w);
    return r == 1 ? (ssize_t)w : tls_errno(c->ssl, r);
}

static ssize_t io_recv(struct wsb_conn *c, void *b, size_t cap)
{
    size_t got;
    if (!c->ssl)
        return recv(c->fd, b, cap, 0);
    int r = SSL_read_ex(c->ssl, b, cap, &got);
    return r == 1 ? (ssize_t)got : tls_errno(c->ssl, r);
}

/* close_notify, then the FIN. */
static int io_shutdown(struct wsb_conn *c)
{
    if (c->ssl && SSL_is_init_finished(c->ssl)) {
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    return shutdown(c->fd, SHUT_WR);
}

/* Sends what there is; 0, or -1 with errno set on a write error. */
static int flush(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    for (;;) {
        if (c->state == CS_OPEN || c->state == CS_CLOSING)
            fill(x, c, now);
        uint32_t n = c->olen - c->ooff;
        if (!n) {
            c->olen = c->ooff = 0;
            if ((c->flags & (F_SHUT | F_SHUT_DONE)) == F_SHUT) {
                c->flags |= F_SHUT_DONE;
                if (io_shutdown(c) < 0)
                    return -1;
            }
            return 0;
        }
        ssize_t w = io_send(c, c->obuf + c->ooff, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->ooff += (uint32_t)w;
        if ((uint32_t)w < n)
            return 0;       /* the socket buffer is full: wait for EPOLLOUT */
        c->olen = c->ooff = 0;
    }
}

static void on_eof(struct ctx *x, struct wsb_conn *c);
static void close_timed_out(struct ctx *x, struct wsb_conn *c);

/* flush(), and on failure the right error; -1 if c was dropped. */
static int flush_or_drop(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    if (flush(x, c, now) == 0)
        return 0;
    if (c->flags & F_CLOSE_RCVD) {
        on_eof(x, c);       /* the server closed first: as good as its FIN */
        return -1;
    }
    conn_error(x, c, WSB_E_WRITE, "%s", strerror(errno));
    return -1;
}

/* ------------------------------------------------------------------ */
/* connecting and the opening handshake                               */

static void established(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    struct wsb_thread *t = x->t;

    x->connecting--;
    x->open++;
    c->state = CS_OPEN;
    t->established++;
    if (c->ssl && SSL_session_reused(c->ssl))
        t->tls_resumed++;
    if (x->measuring && (x->cfg->mode == WSB_CONNECT_RATE || x->cfg->mode == WSB_HOLD))
        wsb_hist_record(&t->hist, now - c->t_start);
    if (x->cfg->mode == WSB_HOLD && x->next_open == t->nconns && x->connecting == 0)
        t->t_all_open = now;
    open_more(x, now);
}

static void conn_connect(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    const struct wsb_config *cfg = x->cfg;
    int one = 1;

    c->flags = 0;
    c->send_seq = c->recv_seq = c->timed_out = 0;
    c->cur_left = 0;
    c->olen = c->ooff = 0;
    c->hdr_have = 0;
    c->hs_len = 0;
    c->msg_pos = 0;
    c->t_start = now;
    c->t_deadline = now + cfg->timeout_ns;
    c->state = CS_CONNECTING;
    x->connecting++;

    c->fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_error(x, c, WSB_E_CONNECT, "socket: %s", strerror(errno));
        return;
    }
    x->live++;
    /* Pipelined frames must not wait for ACKs; a connect-rate cycle never
     * has unacknowledged data when it sends, so it saves the call -- but
     * for TLS, whose handshake sends flights of several writes. */
    if (cfg->mode != WSB_CONNECT_RATE || cfg->tls)
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) < 0 &&
        errno != EINPROGRESS) {
        conn_error(x, c, WSB_E_CONNECT, "connect: %s", strerror(errno));
        return;
    }
    /* Edge-triggered, both directions, registered once: an fd that is
     * closed leaves the epoll set by itself. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(x->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        conn_error(x, c, WSB_E_CONNECT, "epoll_ctl: %s", strerror(errno));
}

/* Opens never-used slots while fewer than OPEN_WINDOW are connecting. */
static void open_more(struct ctx *x, uint64_t now)
{
    if (x->opening)
        return;                 /* a failed connect inside the loop below */
    x->opening = true;
    while (x->measuring && x->next_open < x->t->nconns && x->connecting < OPEN_WINDOW)
        conn_connect(x, &x->conns[x->next_open++], now);
    x->opening = false;
}

static void on_connected(struct ctx *x, struct wsb_conn *c, uint32_t ev, uint64_t now)
{
    /* A failed connect reports EPOLLERR; only then ask for the reason. */
    if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        conn_error(x, c, WSB_E_CONNECT, "connect: %s", strerror(err ? err : ECONNRESET));
        return;
    }
    if (x->cfg->tls) {
        c->ssl = SSL_new(x->cfg->tls_ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
            ERR_clear_error();
            conn_error(x, c, WSB_E_CONNECT, "%s", "no memory for a TLS session");
            return;
        }
        SSL_set_connect_state(c->ssl);
        SSL_set_tlsext_host_name(c->ssl, x->cfg->host);
        if (x->sess)
            SSL_set_session(c->ssl, x->sess);
    }
    if (x->raw) {
        established(x, c, now);
    } else {
        char key[25];
        if (x->pool_pos + 16 > sizeof x->pool) {
            fill_random(x->pool, sizeof x->pool);
            x->pool_pos = 0;
        }
        b64_16(x->pool + x->pool_pos, key);
        x->pool_pos += 16;
        wse_handshake_accept(key, 24, c->accept);
        int n = snprintf((char *)c->obuf, c->ocap,
                         "GET %s HTTP/1.1\r\n"
                         "Host: %s\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "%s"
                         "\r\n",
                         x->cfg->path, x->cfg->host_hdr, key,
                         x->cfg->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                           "server_no_context_takeover; "
                                           "client_no_context_takeover\r\n" : "");
        c->olen = (uint32_t)n;      /* ocap was sized for the request */
        c->state = CS_HS;
    }
    flush_or_drop(x, c, now);
}

/* Is the comma-separated list v[0..n) holding the token tok? */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && wse_ascii_casecmp(v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

static bool name_is(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && wse_ascii_casecmp(s, name, n) == 0;
}

/* Checks the response head h[0..len) (RFC 6455 4.1, the client's duties). */
static const char *check_response(const struct ctx *x, const struct wsb_conn *c, const char *h,
                                  size_t len, char *why, size_t wlen)
{
    bool up = false, conn = false, acc = false, ext = false;

    if (len < 13 || memcmp(h, "HTTP/1.1 ", 9) != 0) {
        snprintf(why, wlen, "not an HTTP/1.1 response");
        return why;
    }
    if (memcmp(h + 9, "101", 3) != 0 || (h[12] != ' ' && h[12] != '\r')) {
        const char *eol = memchr(h, '\r', len);
        snprintf(why, wlen, "status line \"%.*s\"", (int)(eol ? eol - h : 40), h);
        return why;
    }
    const char *p = memchr(h, '\n', len);
    const char *end = h + len;
    for (p = p ? p + 1 : end; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        size_t ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (!ll)
            break;
        const char *colon = memchr(p, ':', ll);
        if (!colon) {
            snprintf(why, wlen, "malformed header line \"%.*s\"", (int)ll, p);
            return why;
        }
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1, *ve = p + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (name_is(p, nl, "upgrade")) {
            if (!(vl == 9 && wse_ascii_casecmp(v, "websocket", 9) == 0)) {
                snprintf(why, wlen, "Upgrade: %.*s", (int)vl, v);
                return why;
            }
            up = true;
        } else if (name_is(p, nl, "connection")) {
            conn = conn || has_token(v, vl, "upgrade");
        } else if (name_is(p, nl, "sec-websocket-accept")) {
            if (vl != WSE_ACCEPT_LEN || memcmp(v, c->accept, WSE_ACCEPT_LEN) != 0) {
                snprintf(why, wlen, "Sec-WebSocket-Accept \"%.*s\", expected \"%s\"", (int)vl, v,
                         c->accept);
                return why;
            }
            acc = true;
        } else if (x->cfg->deflate && name_is(p, nl, "sec-websocket-extensions")) {
            /* We offered no context takeover both ways: the answer must
             * keep the server's (RFC 7692 7.1.1.1); ours we keep anyway. */
            if (ext || vl < 18 || memcmp(v, "permessage-deflate", 18) != 0 ||
                !memmem(v, vl, "server_no_context_takeover", 26)) {
                snprintf(why, wlen, "Sec-WebSocket-Extensions: %.*s", (int)vl, v);
                return why;
            }
            ext = true;
        } else if (name_is(p, nl, "sec-websocket-extensions") ||
                   name_is(p, nl, "sec-websocket-protocol")) {
            snprintf(why, wlen, "unrequested %.*s", (int)nl, p);
            return why;
        }
        p = eol + 1;
    }
    if (!up || !conn || !acc) {
        snprintf(why, wlen, "missing %s", !up ? "Upgrade" : !conn ? "Connection: upgrade"
                                                                  : "Sec-WebSocket-Accept");
        return why;
    }
    if (x->cfg->deflate && !ext) {
        snprintf(why, wlen, "permessage-deflate declined");
        return why;
    }
    return NULL;
}

/*
 * Feeds response bytes; *used is how many belonged to the head.
 * 1 handshake done, 0 more needed, -1 c was dropped.
 */
static int hs_feed(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t n, uint64_t now,
                   size_t *used)
{
    uint32_t old = c->hs_len;
    size_t k = n < HS_CAP - 1 - old ? n : HS_CAP - 1 - old;

    memcpy(c->hs + old, p, k);
    c->hs_len += (uint32_t)k;
    c->hs[c->hs_len] = '\0';
    const char *from = c->hs + (old > 3 ? old - 3 : 0);
    const char *e = memmem(from, c->hs_len - (size_t)(from - c->hs), "\r\n\r\n", 4);
    if (!e) {
        if (c->hs_len >= HS_CAP - 1) {
            conn_error(x, c, WSB_E_HANDSHAKE, "response head longer than %u bytes", HS_CAP);
            return -1;
        }
        *used = n;
        return 0;
    }
    size_t head = (size_t)(e - c->hs) + 4;
    char why[200];
    *used = head - old;
    if (check_response(x, c, c->hs, head, why, sizeof why)) {
        conn_error(x, c, WSB_E_HANDSHAKE, "%s", why);
        return -1;
    }
    established(x, c, now);
    return 1;
}

/* ------------------------------------------------------------------ */
/* input                                                              */

static void msg_done(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    uint64_t seq = c->recv_seq++;
    /* In connect-rate mode the echo is counted with its cycle (on_eof), so
     * that cycles cut off by the end of the run count in neither figure. */
    if (x->measuring && x->cfg->mode != WSB_CONNECT_RATE) {
        x->t->msgs++;
        wsb_hist_record(&x->t->hist, now - c->ts[seq % x->pipe]);
    }
    if (x->cfg->mode == WSB_CONNECT_RATE && c->state == CS_OPEN)
        queue_close(x, c, WSE_CLOSE_NORMAL, true, now);
}

/* Compares k echoed bytes with the expected message; -1 if c was dropped. */
static int verify(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t k)
{
    const uint8_t *pat = x->cfg->pattern;

    if (c->msg_pos + k > x->cfg->size) {
        conn_error(x, c, WSB_E_MISMATCH, "echo longer than the %" PRIu64 "-byte message",
                   x->cfg->size);
        return -1;
    }
    while (k) {
        uint32_t idx = (uint32_t)((c->msg_off + c->msg_pos) & (WSB_PAT_LEN - 1));
        size_t m = k < WSB_PAT_LEN ? k : WSB_PAT_LEN;
        if (memcmp(p, pat + idx, m) != 0) {
            size_t i = 0;
            while (p[i] == pat[idx + i])
                i++;
            conn_error(x, c, WSB_E_MISMATCH, "payload byte %" PRIu64 " is 0x%02x, expected 0x%02x",
                       c->msg_pos + i, p[i], pat[idx + i]);
            return -1;
        }
        p += m;
        k -= m;
        c->msg_pos += m;
    }
    return 0;
}

static int raw_feed(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    const uint64_t size = x->cfg->size;
    while (n) {
        if (c->recv_seq == c->send_seq) {
            conn_error(x, c, WSB_E_MISMATCH, "%zu bytes nobody asked for", n);
            return -1;
        }
        if (c->msg_pos == 0)
            c->msg_off = pat_off(c->id, c->recv_seq);
        size_t k = size - c->msg_pos < n ? (size_t)(size - c->msg_pos) : n;
        if (verify(x, c, p, k) < 0)
            return -1;
        p += k;
        n -= k;
        if (c->msg_pos == size) {
            c->msg_pos = 0;
            msg_done(x, c, now);
        }
    }
    return 0;
}

static int on_close_frame(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    uint16_t code = WSE_CLOSE_NO_STATUS;

    if (c->ctl_len == 1) {
        conn_error(x, c, WSB_E_READ, "close frame with a 1-byte payload");
        return -1;
    }
    if (c->ctl_len >= 2) {
        code = (uint16_t)(c->ctl[0] << 8 | c->ctl[1]);
        if (!wse_close_code_valid(code)) {
            conn_error(x, c, WSB_E_READ, "close frame with code %u", code);
            return -1;
        }
    }
    bool ours = (c->flags & (F_CLOSE_QUEUED | F_CLOSE_SENT)) != 0;
    c->flags = (uint16_t)((c->flags | F_CLOSE_RCVD) & ~F_PONG);
    if (!ours) {
        x->t->codes[code < WSB_CODES - 1 ? code : WSB_CODES - 1]++;
        if (x->verbose_left) {
            x->verbose_left--;
            fprintf(stderr, "wsbench: connection %u (message %" PRIu64 "): server closed with %u\n",
                    c->id, c->recv_seq, code);
        }
        queue_close(x, c, code == WSE_CLOSE_NO_STATUS ? WSE_CLOSE_NORMAL : code, false, now);
    } else {
        c->t_deadline = now + x->cfg->timeout_ns;   /* now for the FIN */
    }
    c->state = CS_CLOSING;
    return 0;
}

static int end_frame(struct ctx *x, struct wsb_conn *c, uint64_t now)
{
    c->flags &= (uint16_t)~F_IN_FRAME;
    switch (c->frame_op) {
    case WSE_OP_PING:
        x->t->pings++;
        if (!(c->flags & (F_CLOSE_SENT | F_CLOSE_RCVD))) {
            memcpy(c->pong, c->ctl, c->ctl_len);
            c->pong_len = c->ctl_len;
            c->flags |= F_PONG;
        }
        return 0;
    case WSE_OP_PONG:
        return 0;
    case WSE_OP_CLOSE:
        return on_close_frame(x, c, now);
    default:
        if (!c->frame_fin)
            return 0;
        c->flags &= (uint16_t)~F_IN_MSG;
        if ((c->flags & F_ZIN) && inflate_echo(x, c) < 0)
            return -1;
        if (c->msg_pos != x->cfg->size) {
            conn_error(x, c, WSB_E_MISMATCH, "echo of %" PRIu64 " bytes, sent %" PRIu64,
                       c->msg_pos, x->cfg->size);
            return -1;
        }
        msg_done(x, c, now);
        return 0;
    }
}

static inline size_t hdr_need(uint8_t b1)
{
    unsigned l7 = b1 & 0x7F;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

static int start_frame(struct ctx *x, struct wsb_conn *c, const uint8_t *h, uint64_t now)
{
    unsigned op = h[0] & 0x0F, fin = h[0] >> 7, l7 = h[1] & 0x7F;
    uint64_t len = l7;

    bool rsv1_ok = x->cfg->deflate && (op == WSE_OP_TEXT || op == WSE_OP_BINARY);
    if (h[0] & (rsv1_ok ? 0x30 : 0x70)) {
        conn_error(x, c, WSB_E_READ, "frame with RSV bits 0x%02x", h[0] & 0x70);
        return -1;
    }
    if (h[1] & 0x80) {
        conn_error(x, c, WSB_E_READ, "masked frame from the server");
        return -1;
    }
    if (l7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        if (len < 126) {
            conn_error(x, c, WSB_E_READ, "non-minimal 16-bit length %" PRIu64, len);
            return -1;
        }
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63 || len <= 0xFFFF) {
            conn_error(x, c, WSB_E_READ, "bad 64-bit length %" PRIu64, len);
            return -1;
        }
    }
    switch (op) {
    case WSE_OP_CONT:
        if (!(c->flags & F_IN_MSG)) {
            conn_error(x, c, WSB_E_READ, "continuation frame outside a message");
            return -1;
        }
        break;
    case WSE_OP_TEXT:
    case WSE_OP_BINARY:
        if (c->flags & F_IN_MSG) {
            conn_error(x, c, WSB_E_READ, "new message inside a fragmented one");
            return -1;
        }
        if (c->flags & F_CLOSE_RCVD) {
            conn_error(x, c, WSB_E_READ, "data frame after the close frame");
            return -1;
        }
        if (op != (x->cfg->binary ? WSE_OP_BINARY : WSE_OP_TEXT)) {
            conn_error(x, c, WSB_E_MISMATCH, "echo has opcode %u", op);
            return -1;
        }
        if (c->recv_seq == c->send_seq) {
            conn_error(x, c, WSB_E_MISMATCH, "message nobody asked for");
            return -1;
        }
        c->flags |= F_IN_MSG;
        c->flags = (uint16_t)((c->flags & ~F_ZIN) | (h[0] & WSE_RSV1 ? F_ZIN : 0));
        c->zin_len = 0;
        c->msg_pos = 0;
        c->msg_off = pat_off(c->id, c->recv_seq);
        break;
    case WSE_OP_CLOSE:
    case WSE_OP_PING:
    case WSE_OP_PONG:
        if (!fin || len > WSE_CONTROL_MAX) {
            conn_error(x, c, WSB_E_READ, "bad control frame (opcode %u, fin %u, length %" PRIu64 ")",
                       op, fin, len);
            return -1;
        }
        c->ctl_len = 0;
        break;
    default:
        conn_error(x, c, WSB_E_READ, "reserved opcode %u", op);
        return -1;
    }
    c->frame_op = (uint8_t)op;
    c->frame_fin = (uint8_t)fin;
    c->frame_left = len;
    c->flags |= F_IN_FRAME;
    if (len == 0)
        return end_frame(x, c, now);
    return 0;
}

/* --deflate: a compressed echo's bytes, kept until its last frame. */
static int keep_zin(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t k)
{
    if (c->zin_len + k > c->zin_cap) {
        uint64_t cap = (uint64_t)(c->zin_len + k) * 2;
        uint8_t *z = cap <= UINT32_MAX ? realloc(c->zin, cap) : NULL;
        if (!z) {
            conn_error(x, c, WSB_E_READ, "out of memory for a compressed echo");
            return -1;
        }
        c->zin = z;
        c->zin_cap = (uint32_t)cap;
    }
    memcpy(c->zin + c->zin_len, p, k);
    c->zin_len += (uint32_t)k;
    return 0;
}

static int ws_feed(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    while (n) {
        if (!(c->flags & F_IN_FRAME)) {
            const uint8_t *h;
            size_t need;
            if (c->hdr_have == 0 && n >= 2 && n >= (need = hdr_need(p[1]))) {
                h = p;          /* the whole header is here: parse in place */
                p += need;
                n -= need;
            } else {
                while (c->hdr_have < 2 && n) {
                    c->hdr[c->hdr_have++] = *p++;
                    n--;
                }
                if (c->hdr_have < 2)
                    return 0;
                need = hdr_need(c->hdr[1]);
                while (c->hdr_have < need && n) {
                    c->hdr[c->hdr_have++] = *p++;
                    n--;
                }
                if (c->hdr_have < need)
                    return 0;
                h = c->hdr;
                c->hdr_have = 0;
            }
            if (start_frame(x, c, h, now) < 0)
                return -1;
            continue;
        }
        size_t k = n < c->frame_left ? n : (size_t)c->frame_left;
        if (c->frame_op >= WSE_OP_CLOSE) {
            memcpy(c->ctl + c->ctl_len, p, k);
            c->ctl_len = (uint8_t)(c->ctl_len + k);
        } else if (c->flags & F_ZIN) {
            if (keep_zin(x, c, p, k) < 0)
                return -1;
        } else if (verify(x, c, p, k) < 0) {
            return -1;
        }
        p += k;
        n -= k;
        c->frame_left -= k;
        if (c->frame_left == 0 && end_frame(x, c, now) < 0)
            return -1;
    }
    return 0;
}

static int feed(struct ctx *x, struct wsb_conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    if (c->state == CS_HS) {
        size_t used;
        int r = hs_feed(x, c, p, n, now, &used);
        if (r <= 0)
            return r;
        p += used;
        n -= used;
    }
    if (c->state == CS_CLOSING && (c->flags & F_CLOSE_RCVD) && !x->raw)
        return 0;               /* nothing may follow the close frame */
    return x->raw ? raw_feed(x, c, p, n, now) : ws_feed(x, c, p, n, now);
}

static void on_eof(struct ctx *x, struct wsb_conn *c)
{
    bool clean = x->raw ? (c->flags & F_SHUT_DONE) != 0 : (c->flags & F_CLOSE_RCVD) != 0;

    if (!clean) {
        conn_error(x, c, WSB_E_READ, "connection closed by the server without %s",
                   x->raw ? "our shutdown" : "a close frame");
        return;
    }
    x->t->closed_clean++;
    if (x->cfg->mode == WSB_CONNECT_RATE && (c->flags & F_OURS) && x->measuring) {
        x->t->cycles++;
        x->t->msgs++;
        conn_drop(x, c, NOW);
    } else {
        conn_drop(x, c, LATER);
    }
}

static void do_read(struct ctx *x, struct wsb_conn *c, uint32_t ev)
{
    /* A short read drained the socket unless a FIN or an error came too
     * (edge-triggered: then read on until EOF or EAGAIN). */
    bool shortcut = !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->ssl;
    uint64_t now = 0;

    for (;;) {
        ssize_t r = io_recv(c, x->rbuf, RBUF_SIZE);
        if (r > 0) {
            now = wsb_now();
            if (x->measuring)
                x->t->bytes_read += (uint64_t)r;
            if (feed(x, c, x->rbuf, (size_t)r, now) < 0)
                return;
            if (shortcut && (size_t)r < RBUF_SIZE)
                break;
            continue;
        }
        if (r == 0) {
            on_eof(x, c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        if ((c->flags & F_CLOSE_RCVD) && errno == ECONNRESET) {
            on_eof(x, c);
            return;
        }
        conn_error(x, c, WSB_E_READ, "%s", strerror(errno));
        return;
    }
    flush_or_drop(x, c, now ? now : wsb_now());
}

static void on_event(struct ctx *x, struct wsb_conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;                 /* closed earlier in this batch */
    if (c->state == CS_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(x, c, ev, wsb_now());
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        do_read(x, c, ev);
    else if (ev & EPOLLOUT)
        flush_or_drop(x, c, wsb_now());
}

/* ------------------------------------------------------------------ */
/* the loop                                                           */

static void push_sample(struct wsb_thread *t, double v)
{
    if (t->nsamples == t->samples_cap) {
        size_t cap = t->samples_cap ? t->samples_cap * 2 : 256;
        double *s = realloc(t->samples, cap * sizeof *s);
        if (!s)
            return;
        t->samples = s;
        t->samples_cap = cap;
    }
    t->samples[t->nsamples++] = v;
}

static void tick(struct ctx *x, uint64_t now)
{
    struct wsb_thread *t = x->t;
    const uint64_t to = x->cfg->timeout_ns;

    if (x->cfg->mode != WSB_HOLD && now > x->last_tick) {
        uint64_t cur = x->cfg->mode == WSB_CONNECT_RATE ? t->cycles : t->msgs;
        push_sample(t, (double)(cur - x->last_count) * 1e9 / (double)(now - x->last_tick));
        x->last_count = cur;
        x->last_tick = now;
    }
    for (unsigned i = 0; i < x->next_open; i++) {
        struct wsb_conn *c = &x->conns[i];
        switch (c->state) {
        case CS_IDLE:
            if (c->flags & F_RETRY)
                conn_connect(x, c, now);
            break;
        case CS_CONNECTING:
        case CS_HS:
            if (now > c->t_deadline)
                conn_error(x, c, c->state == CS_CONNECTING ? WSB_E_CONNECT : WSB_E_HANDSHAKE,
                           "no answer within the timeout");
            break;
        case CS_CLOSING:
            if (now > c->t_deadline) {
                close_timed_out(x, c);
                break;
            }
            /* fall through */
        case CS_OPEN: {
            uint64_t s = c->timed_out > c->recv_seq ? c->timed_out : c->recv_seq;
            while (s < c->send_seq && now - c->ts[s % x->pipe] > to) {
                t->err[WSB_E_TIMEOUT]++;
                if (x->verbose_left) {
                    x->verbose_left--;
                    fprintf(stderr, "wsbench: connection %u: message %" PRIu64 " timed out\n",
                            c->id, s);
                }
                s++;
            }
            c->timed_out = s;
            break;
        }
        default:
            break;
        }
    }
}

/* A close handshake ran out of time: a timeout, unless an echo of this
 * connection was counted as one already (the same silence). */
static void close_timed_out(struct ctx *x, struct wsb_conn *c)
{
    if (c->timed_out > c->recv_seq)
        conn_drop(x, c, LATER);
    else
        conn_error(x, c, WSB_E_TIMEOUT, "close handshake not finished in time");
}

static void run_now_list(struct ctx *x, uint64_t now)
{
    unsigned n = x->now_n;
    x->now_n = 0;
    for (unsigned i = 0; i < n; i++) {
        struct wsb_conn *c = x->now_list[i];
        if (c->state == CS_IDLE && x->measuring)
            conn_connect(x, c, now);
    }
}

static int setup(struct ctx *x, struct wsb_thread *t)
{
    const struct wsb_config *cfg = t->cfg;
    size_t n = t->nconns;

    x->t = t;
    x->cfg = cfg;
    x->raw = cfg->mode == WSB_RAW;
    x->pipe = cfg->mode == WSB_ECHO || cfg->mode == WSB_RAW ? cfg->pipeline : 1;
    x->verbose_left = cfg->verbose;
    x->pool_pos = sizeof x->pool;
    fill_random(&x->rng, sizeof x->rng);
    if (cfg->deflate) {
        if (deflateInit2(&x->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK ||
            inflateInit2(&x->inf, -15) != Z_OK || !(x->zbuf = malloc(ZBUF)))
            return -1;
    }
    x->rng |= 1;

    /* The output buffer holds the request, or every pipelined frame
     * (capped: larger messages are streamed through it). */
    uint64_t data = cfg->mode == WSB_HOLD ? 0
                    : (uint64_t)x->pipe * (cfg->size + (x->raw ? 0 : WSE_FRAME_HDR_MAX));
    data += 256;
    if (data > OBUF_MAX)
        data = OBUF_MAX;
    uint64_t req = 384 + strlen(cfg->path) + strlen(cfg->host_hdr);
    uint32_t ocap = (uint32_t)(data > req ? data : req);

    x->ep = epoll_create1(EPOLL_CLOEXEC);
    x->rbuf = malloc(RBUF_SIZE);
    x->conns = calloc(n, sizeof *x->conns);
    x->now_list = calloc(n, sizeof *x->now_list);
    x->obufs = malloc(n * ocap);
    x->tss = calloc(n * x->pipe, sizeof *x->tss);
    x->hss = x->raw ? NULL : malloc(n * HS_CAP);
    if (x->ep < 0 || !x->rbuf || !x->conns || !x->now_list || !x->obufs || !x->tss ||
        (!x->raw && !x->hss))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct wsb_conn *c = &x->conns[i];
        c->fd = -1;
        c->id = t->first_id + (unsigned)i;
        c->state = CS_IDLE;
        c->obuf = x->obufs + i * ocap;
        c->ocap = ocap;
        c->ts = x->tss + i * x->pipe;
        c->hs = x->hss ? x->hss + i * HS_CAP : NULL;
        c->msg_limit = cfg->mode == WSB_CONNECT_RATE ? 1 : cfg->mode == WSB_HOLD ? 0 : UINT64_MAX;
    }
    return 0;
}

static void teardown(struct ctx *x)
{
    for (unsigned i = 0; x->conns && i < x->t->nconns; i++)
        if (x->conns[i].ssl)
            tls_drop(x, &x->conns[i]);
    SSL_SESSION_free(x->sess);
    if (x->ep >= 0)
        close(x->ep);
    free(x->rbuf);
    for (unsigned i = 0; x->conns && i < x->t->nconns; i++) {
        free(x->conns[i].zout);
        free(x->conns[i].zin);
    }
    free(x->conns);
    free(x->now_list);
    free(x->obufs);
    free(x->tss);
    free(x->hss);
    if (x->cfg->deflate) {
        deflateEnd(&x->def);
        inflateEnd(&x->inf);
        free(x->zbuf);
    }
}

static void run_events(struct ctx *x, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(x->ep, ev, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(x, ev[i].data.ptr, ev[i].events);
}

static int ms_until(uint64_t now, uint64_t then)
{
    return then > now ? (int)((then - now + 999999) / 1000000) : 0;
}

void *wsb_thread_main(void *arg)
{
    struct wsb_thread *t = arg;
    const struct wsb_config *cfg = t->cfg;
    struct ctx x;

    memset(&x, 0, sizeof x);
    x.ep = -1;
    if (setup(&x, t) < 0) {
        t->failed = 1;
        teardown(&x);
        return NULL;
    }

    uint64_t deadline = cfg->t0 + cfg->duration_ns;
    uint64_t next_tick = cfg->t0 + TICK_NS;
    uint64_t now = wsb_now();

    x.measuring = true;
    x.last_tick = cfg->t0;
    open_more(&x, now);
    for (;;) {
        if (now >= deadline || atomic_load_explicit(&wsb_stop, memory_order_relaxed))
            break;
        uint64_t wake = next_tick < deadline ? next_tick : deadline;
        run_events(&x, ms_until(now, wake));
        now = wsb_now();
        if (x.now_n)
            run_now_list(&x, now);
        if (now >= next_tick) {
            tick(&x, now);
            next_tick += TICK_NS;
            if (next_tick <= now)
                next_tick = now + TICK_NS;
        }
    }

    /* Stop measuring; close every connection with a close handshake. */
    t->t_end = now;
    t->held = x.open;
    x.measuring = false;
    for (unsigned i = 0; i < x.next_open; i++) {
        struct wsb_conn *c = &x.conns[i];
        switch (c->state) {
        case CS_OPEN:
            queue_close(&x, c, WSE_CLOSE_NORMAL, true, now);
            flush_or_drop(&x, c, now);
            break;
        case CS_CLOSING:
            break;
        default:
            conn_drop(&x, c, LATER);    /* not open yet: just close */
            break;
        }
    }
    uint64_t grace = now + cfg->timeout_ns;
    while (x.live && atomic_load(&wsb_stop) < 2) {
        now = wsb_now();
        if (now >= grace)
            break;
        run_events(&x, ms_until(now, grace < now + TICK_NS ? grace : now + TICK_NS));
    }
    for (unsigned i = 0; i < x.next_open; i++) {
        struct wsb_conn *c = &x.conns[i];
        if (c->fd >= 0) {
            if (atomic_load(&wsb_stop) < 2)
                close_timed_out(&x, c);
            else
                conn_drop(&x, c, LATER);
        }
    }
    teardown(&x);
    return NULL;
}
