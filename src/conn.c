/*
 * conn.c - one WebSocket connection: handshake, echo, ping/pong, close,
 * backpressure, timeouts.  See conn.h for the memory model.
 *
 * The echo path: one read() into the worker's buffer, wse_parse() hands out
 * each data piece unmasked in place, and each piece goes back as a server
 * frame whose header is written over the client header's bytes just before
 * the payload (a server header is always 4 bytes shorter than the client's
 * for the same length).  Small frames are slid down to make one contiguous
 * run, large ones become iovecs; the whole batch leaves in one write() or
 * writev().  No allocation and no copy beyond that slide, per message.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "batch.h"
#include "common.h"
#include "conn.h"
#include "connlimit.h"
#include "frame.h"
#include "handshake.h"
#include "hsbuf.h"
#include "http.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "page.h"
#include "pmd.h"
#include "pmdconn.h"
#include "proxy.h"
#include "route.h"
#include "stats.h"
#include "timer.h"
#include "tls.h"
#include "transform.h"
#include "transport.h"

#define RBUF_SIZE   (256 * 1024)    /* one read's worth; large messages stream */
/* Room for a server header before a piece at the start of the buffer: a
 * piece that continues a frame has no consumed header before it (msg.h). */
#define HEADROOM    64
#define TAIL_CAP    (WSE_FRAME_HDR_MAX + WSE_CONTROL_MAX)
#define TOUCH_SLACK 1.0             /* idle timeouts may fire up to 1 s late */

enum conn_state {
    ST_HANDSHAKE,   /* reading the HTTP request */
    ST_OPEN,        /* echoing */
    ST_CLOSING,     /* we sent a close frame; waiting for the peer's */
    ST_LINGER,      /* done: output flushed then FIN sent; read and drop until EOF */
};

enum conn_flag {
    F_READ_PAUSED = 1 << 0,     /* backpressure: output above the high-water mark */
    F_SHUT_AFTER = 1 << 1,      /* shutdown(SHUT_WR) once output is flushed */
    F_SHUT_DONE = 1 << 2,
    F_DEAD = 1 << 3,            /* freed at the end of this loop iteration */
    F_INPUT_HELD = 1 << 4,      /* tail holds read input not parsed yet (paused mid-read) */
    F_HEAD = 1 << 5,            /* the request was a HEAD: answers go without their body */
    F_IP_COUNTED = 1 << 6,      /* counted in the per-address table: released in conn_free */
    F_ANSWERED = 1 << 7,        /* an HTTP answer (not 101): its access line is written */
};

/* Which transport carries a connection (transports[] below). */
enum conn_tp { TP_PLAIN, TP_TLS };

enum tls_flag {
    T_PROXY_DONE = 1 << 0,      /* a TLS connection's PROXY header is read: TLS has begun */
    T_TLS_DONE = 1 << 1,        /* its TLS handshake finished (and was counted) */
};

enum timer_kind { TK_NONE, TK_HANDSHAKE, TK_IDLE, TK_PINGED, TK_CLOSE };

/* Why a connection ended, for the stats (the first cause set wins). */
enum close_cause {
    CC_RESET = WSE_BY_RESET, CC_CLIENT = WSE_BY_CLIENT, CC_SERVER = WSE_BY_SERVER,
    CC_ERROR = WSE_BY_ERROR, CC_TIMEOUT = WSE_BY_TIMEOUT,
};

struct conn {
    ev_io io;
    struct wse_tlink tl;
    struct wse_parser ps;
    ev_tstamp last_rx;          /* time of the last byte received */
    uint8_t *out;               /* unsent output, NULL when there is none */
    uint32_t out_pos, out_len, out_cap;
    uint32_t start_ms;          /* accepted at (monotonic ms, wraps), with an access log */
    union {
        struct wse_hsbuf *hs;   /* ST_HANDSHAKE: a request split over reads */
        uint8_t *tail;          /* otherwise: input kept for later, see tail_len */
    };
    struct conn *next_dead;
    /* An incomplete header or control frame (<= TAIL_CAP), or with
     * F_INPUT_HELD the rest of a read whose echoes would have passed the
     * high-water mark (<= RBUF_SIZE). */
    uint32_t tail_len;
    uint8_t state;
    uint8_t flags;
    uint8_t timer;              /* enum timer_kind: which list tl is on */
    uint8_t cause;              /* enum close_cause, 0 until known */
    struct wse_peer peer;
    /* For the access line (counted always: cheaper than asking) */
    uint16_t close_code;        /* the first close frame's code, sent or received; 0: none */
    uint8_t tp;                 /* enum conn_tp: its listener's transport */
    uint8_t tflags;             /* enum tls_flag */
    uint32_t msgs;              /* data messages echoed, saturating */
    uint64_t bytes;             /* their payload bytes, as received */
    struct wse_pmdconn *pmd;    /* permessage-deflate's state; NULL without it */
};

/* Worker-wide state shared by all connections of this process. */
static struct {
    struct ev_loop *loop;
    const struct wse_config *cfg;
    struct wse_stats_slot *st;  /* this worker's stats slot */
    struct wse_connlimit iplimit;   /* connections per client address, all workers */
    struct wse_http_limits limits;
    uint8_t *rbuf;              /* HEADROOM + RBUF_SIZE */
    struct wse_tlist hs_list, idle_list, pinged_list, close_list;
    struct wse_hsbuf_budget hs_budget;  /* the buffers of handshakes split over reads */
    ev_check reaper;
    struct conn *dead;
    unsigned nconns;
    bool draining;
    /* The request being answered, for its access line: set while hs_read()
     * routes it, NULL otherwise. */
    const struct wse_http_req *req;
    const char *req_buf;
    struct wse_route_cfg route;     /* the routing's view of cfg */
    const char *origins[WSE_MAX_ORIGINS];
    struct wse_transform xform;     /* what a data piece becomes on the way back */
    struct wse_tls *tls;        /* this generation's TLS contexts (NULL: no TLS listener) */
    struct wse_batch batch;     /* the output of the connection being served */
    char busy[256];             /* the 503 at --max-connections, built once */
    size_t busy_len;
    char page[8192];            /* the browser page's whole response, built once */
    size_t page_len;
    size_t page_head_len;       /* ... its head: what a HEAD gets */
} W;

#define RB (W.rbuf + HEADROOM)

static const struct wse_transport *const transports[] = {
    [TP_PLAIN] = &wse_transport_plain, [TP_TLS] = &wse_transport_tls,
};
#define TP(c) (transports[(c)->tp])
#define STAT(field, n) wse_stat_add(W.st, WSE_STAT_##field, (n))
#define STAT_SUB(field, n) wse_stat_sub(W.st, WSE_STAT_##field, (n))

static void conn_free(struct conn *c);
static void update_events(struct conn *c);
static void start_close(struct conn *c, uint16_t code, const char *reason);
static void pinged_expired(struct wse_tlist *list, struct wse_tlink *link);

/* ---- small helpers ----------------------------------------------------- */

_Static_assert(WSE_CONN_GOING_AWAY == WSE_CLOSE_GOING_AWAY, "conn.h's going-away code");

static const char *peer_str(const struct conn *c, char out[WSE_ADDR_MAX])
{
    return wse_peer_str(&c->peer, out);
}

static void set_peer(struct conn *c, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        c->peer.family = AF_INET6;
        c->peer.port = a6->sin6_port;
        memcpy(c->peer.addr, &a6->sin6_addr, 16);
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
        c->peer.family = AF_INET;
        c->peer.port = a4->sin_port;
        memcpy(c->peer.addr, &a4->sin_addr, 4);
    }
}

static void set_cause(struct conn *c, enum close_cause cause)
{
    if (!c->cause)
        c->cause = (uint8_t)cause;
}

static void set_close_code(struct conn *c, uint16_t code)
{
    if (!c->close_code)
        c->close_code = code;
}

/* ---- the access log ------------------------------------------------------ */

/*
 * The connection's access line: written once, at its HTTP answer (status)
 * or, for a WebSocket session or a connection that never got an answer
 * (status 0), when it ends.  The request is the one being answered (W.req)
 * or, for a session, the upgrade's.
 */
static void access_record(struct conn *c, int status)
{
    char line[WSE_ACCESS_LINE_MAX];
    struct wse_access a = {
        .peer = &c->peer, .status = status, .msgs = c->msgs, .bytes = c->bytes,
        .close_code = c->close_code, .by = c->cause,
    };

    if (!wse_access_on())
        return;
    a.ms = wse_access_clock_ms() - c->start_ms;
    if (status == 101) {
        a.method = "GET", a.method_len = 3;
        a.path = W.cfg->path, a.path_len = strlen(W.cfg->path);
    } else if (W.req) {
        a.method = W.req_buf + W.req->method_name.off, a.method_len = W.req->method_name.len;
        a.path = W.req_buf + W.req->path.off, a.path_len = W.req->path.len;
    }
    wse_access_format(line, sizeof line, &a);
    wse_access_line("%s", line);
}

static size_t pending(const struct conn *c)
{
    return c->out ? c->out_len - c->out_pos : 0;
}

static void set_timer(struct conn *c, enum timer_kind kind)
{
    static struct wse_tlist *const lists[] = {
        [TK_HANDSHAKE] = &W.hs_list, [TK_IDLE] = &W.idle_list,
        [TK_PINGED] = &W.pinged_list, [TK_CLOSE] = &W.close_list,
    };
    wse_tlist_del(&c->tl);
    c->timer = (uint8_t)kind;
    if (kind != TK_NONE)
        wse_tlist_add(lists[kind], &c->tl);
}

/* ---- output ------------------------------------------------------------ */

/* Appends bytes to the connection's own output buffer. */
static int out_append(struct conn *c, const void *p, size_t n)
{
    if (c->out && c->out_pos == c->out_len)
        c->out_pos = c->out_len = 0;
    if ((size_t)c->out_len + n > c->out_cap) {
        /* Slide unsent bytes to the front before growing. */
        if (c->out_pos) {
            memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
            c->out_len -= c->out_pos;
            c->out_pos = 0;
        }
        size_t need = (size_t)c->out_len + n, cap = c->out_cap ? c->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        if (cap > UINT32_MAX)
            return -1;
        uint8_t *grown = realloc(c->out, cap);
        if (!grown)
            return -1;
        c->out = grown;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    return 0;
}

static void out_release(struct conn *c)
{
    free(c->out);
    c->out = NULL;
    c->out_pos = c->out_len = c->out_cap = 0;
}

static void abort_conn(struct conn *c, const char *why)
{
    char addr[WSE_ADDR_MAX];
    /* A reset after the close handshake or an HTTP answer (load balancers'
     * health checks do that) is no news. */
    if (c->state == ST_LINGER)
        log_debug("%s reset after closing: %s", peer_str(c, addr), why);
    else
        log_debug("%s aborted: %s", peer_str(c, addr), why);
    conn_free(c);
}

/* Our failure, not the peer's: a diagnostic for the main log. */
static void abort_oom(struct conn *c, const char *what)
{
    char addr[WSE_ADDR_MAX];

    log_limited(WSE_LOG_WARN, "out of memory", "%s aborted: out of memory for %s",
                peer_str(c, addr), what);
    conn_free(c);
}

/* Keeps what write() did not take, in order, and watches for writability. */
static int keep_unsent(struct conn *c, const struct iovec *iov, int niov, size_t skip)
{
    for (int i = 0; i < niov; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (out_append(c, (uint8_t *)iov[i].iov_base + skip, len - skip) < 0)
            return -1;
        STAT(bytes_buffered, len - skip);
        skip = 0;
    }
    return 0;
}

static void after_output(struct conn *c)
{
    size_t left = pending(c);

    if (left > W.cfg->high_water && !(c->flags & F_READ_PAUSED) && c->state != ST_LINGER) {
        c->flags |= F_READ_PAUSED;
        STAT(backpressure, 1);
        log_debug("backpressure: %zu bytes unsent, reading paused", left);
    } else if ((c->flags & F_READ_PAUSED) && left <= W.cfg->low_water) {
        c->flags &= (uint8_t)~F_READ_PAUSED;
    }
    if (!left) {
        out_release(c);
        if ((c->flags & (F_SHUT_AFTER | F_SHUT_DONE)) == F_SHUT_AFTER) {
            c->flags |= F_SHUT_DONE;
            TP(c)->shutdown(c->io.fd);
        }
    }
    update_events(c);
}

/* Sends iov now if nothing is queued before it, else queues it. */
static void send_iov(struct conn *c, struct iovec *iov, int niov, size_t total)
{
    ssize_t n = 0;

    if (!pending(c)) {
        n = TP(c)->writev(c->io.fd, iov, niov);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                abort_conn(c, strerror(errno));
                return;
            }
            n = 0;
        }
    }
    if ((size_t)n < total && keep_unsent(c, iov, niov, (size_t)n) < 0) {
        abort_oom(c, "output");
        return;
    }
    after_output(c);
}

static void send_bytes(struct conn *c, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    send_iov(c, &iov, 1, n);
}

static void batch_reset(void)
{
    wse_batch_reset(&W.batch);
}

/* Sends the batch (see batch.h: the batch itself never sends). */
static void flush(struct conn *c)
{
    if (c->flags & F_DEAD)
        ;
    else if (!wse_batch_empty(&W.batch))
        send_iov(c, W.batch.iov, W.batch.niov, W.batch.bytes);
    else if ((c->flags & (F_SHUT_AFTER | F_SHUT_DONE)) == F_SHUT_AFTER)
        after_output(c);    /* nothing to send, but a FIN is due */
    batch_reset();
}

/* Adds p[0..n) to the batch, sending it first when it is full. */
static void emit(struct conn *c, uint8_t *p, size_t n, bool in_rbuf)
{
    if (wse_batch_add(&W.batch, p, n, in_rbuf))
        return;
    flush(c);
    if (!(c->flags & F_DEAD))
        wse_batch_add(&W.batch, p, n, in_rbuf);
}

/* Room in the scratch area, sending the batch first when it is full. */
static uint8_t *scratch(struct conn *c, size_t n)
{
    uint8_t *p = wse_batch_scratch(&W.batch, n);

    if (!p) {
        flush(c);
        p = wse_batch_scratch(&W.batch, n);
    }
    return p;
}

/* ---- WebSocket events -------------------------------------------------- */

static void count_piece(const struct wse_event *ev, size_t extra_out)
{
    STAT(frames_out, 1);
    if (ev->frame_start)
        STAT(frames_in, 1);
    if (ev->opcode == WSE_OP_TEXT) {
        STAT(bytes_in_text, ev->len);
        STAT(bytes_out_text, ev->len + extra_out);
        if (ev->last) {
            STAT(msgs_in_text, 1);
            STAT(msgs_out_text, 1);
        }
    } else {
        STAT(bytes_in_binary, ev->len);
        STAT(bytes_out_binary, ev->len);
        if (ev->last) {
            STAT(msgs_in_binary, 1);
            STAT(msgs_out_binary, 1);
        }
    }
}

/* The piece's echo, through the worker's transform, into the batch. */
static void echo_piece(struct conn *c, const struct wse_event *ev)
{
    count_piece(ev, wse_transform_extra(&W.xform, ev));
    c->bytes += ev->len;
    if (ev->last && c->msgs < UINT32_MAX)
        c->msgs++;
    if (wse_transform_echo(&W.xform, &W.batch, ev))
        return;
    flush(c);
    if (!(c->flags & F_DEAD))
        wse_transform_echo(&W.xform, &W.batch, ev);     /* an empty batch takes it */
}

static void fail_ws(struct conn *c, uint16_t code);

static bool pmd_flush(void *ctx)
{
    struct conn *c = ctx;

    flush(c);
    return !(c->flags & F_DEAD);
}

/* Past the high-water mark after a flush: the deflate transform pauses. */
static bool pmd_over(void *ctx)
{
    struct conn *c = ctx;

    if (pending(c) + W.batch.bytes <= W.cfg->high_water)
        return false;
    flush(c);
    return (c->flags & (F_DEAD | F_READ_PAUSED)) != 0;
}

static const struct wse_pmdconn_io pmd_io = { pmd_flush, pmd_over, NULL };

static void pmd_result(struct conn *c, unsigned code)
{
    if (code == WSE_PMDCONN_PAUSED)
        c->flags |= F_INPUT_HELD;       /* everything after the piece waits too */
    else if (code && !(c->flags & F_DEAD))
        fail_ws(c, (uint16_t)code);
}

/* The statistics count a compressed message's bytes as they travel. */
static void count_compressed(const struct wse_event *ev, const struct wse_pmdconn_counts *n)
{
    bool text = ev->opcode == WSE_OP_TEXT;

    STAT(frames_out, n->frames);
    if (ev->frame_start)
        STAT(frames_in, 1);
    if (text) {
        STAT(bytes_in_text, ev->len);
        STAT(bytes_out_text, n->sent);
    } else {
        STAT(bytes_in_binary, ev->len);
        STAT(bytes_out_binary, n->sent);
    }
    if (ev->last && text) {
        STAT(msgs_in_text, 1);
        STAT(msgs_out_text, 1);
    } else if (ev->last) {
        STAT(msgs_in_binary, 1);
        STAT(msgs_out_binary, 1);
    }
}

/* A compressed message's piece: inflated, checked and deflated back. */
static void echo_compressed(struct conn *c, const struct wse_event *ev)
{
    struct wse_pmdconn_counts n;
    struct wse_pmdconn_io io = pmd_io;

    io.ctx = c;
    unsigned code = wse_pmdconn_data(c->pmd, &W.batch, ev, W.xform.prefix, W.xform.prefix_len,
                                     &io, &n);
    count_compressed(ev, &n);
    c->bytes += ev->len;
    if (ev->last && c->msgs < UINT32_MAX)
        c->msgs++;
    pmd_result(c, code);
}

/* The output drained: the paused piece goes on (see ws_resume). */
static void echo_resumed(struct conn *c)
{
    struct wse_pmdconn_counts n;
    struct wse_pmdconn_io io = pmd_io;

    io.ctx = c;
    if (c->state != ST_OPEN) {
        wse_pmdconn_abandon(c->pmd);    /* closing: no more echoes */
        return;
    }
    unsigned code = wse_pmdconn_resume(c->pmd, &W.batch, &io, &n);
    STAT(frames_out, n.frames);
    pmd_result(c, code);
}

static void queue_close(struct conn *c, uint16_t code, const char *reason)
{
    uint8_t *s = scratch(c, 2 + WSE_CONTROL_MAX);
    size_t n;

    if (code == WSE_CLOSE_NO_STATUS) {
        /* The peer gave no code: answer with an empty close frame. */
        n = wse_frame_write_header(s, true, WSE_OP_CLOSE, 0);
    } else {
        n = wse_close_write(s, code, reason, strlen(reason));
    }
    wse_batch_unscratch(&W.batch, 2 + WSE_CONTROL_MAX - n);
    emit(c, s, n, false);
    STAT(frames_out, 1);
}

/* The close handshake is complete (or abandoned): flush, FIN, wait for EOF. */
static void linger(struct conn *c)
{
    c->state = ST_LINGER;
    c->flags |= F_SHUT_AFTER;
    c->flags &= (uint8_t)~F_READ_PAUSED;
    set_timer(c, TK_CLOSE);
}

static void on_close_frame(struct conn *c, const struct wse_event *ev)
{
    char addr[WSE_ADDR_MAX];

    STAT(frames_in, 1);
    if (c->state == ST_OPEN) {
        set_cause(c, CC_CLIENT);
        set_close_code(c, ev->code);
        log_debug("%s close %u from client", peer_str(c, addr), ev->code);
        queue_close(c, ev->code, "");
    } else {
        log_debug("%s close handshake complete (%u)", peer_str(c, addr), ev->code);
    }
    linger(c);
}

static void on_event(struct conn *c, const struct wse_event *ev)
{
    switch (ev->kind) {
    case WSE_EV_DATA:
        if (c->state == ST_OPEN && ev->compressed)
            echo_compressed(c, ev);
        else if (c->state == ST_OPEN)
            echo_piece(c, ev);
        else if (ev->frame_start)
            STAT(frames_in, 1);
        break;
    case WSE_EV_PING:
        STAT(frames_in, 1);
        STAT(pings_in, 1);
        if (c->state == ST_OPEN) {
            STAT(frames_out, 1);
            /* The pong header goes where the ping's header was. */
            uint8_t *h = ev->data - 2;
            wse_frame_write_header(h, true, WSE_OP_PONG, ev->len);
            emit(c, h, 2 + ev->len, true);
        }
        break;
    case WSE_EV_PONG:
        STAT(frames_in, 1);
        STAT(pongs_in, 1);
        break;      /* its arrival already counted as activity */
    case WSE_EV_CLOSE:
        on_close_frame(c, ev);
        break;
    }
}

static const char *close_reason(uint16_t code)
{
    switch (code) {
    case WSE_CLOSE_PROTOCOL: return "protocol error";
    case WSE_CLOSE_BAD_DATA: return "invalid UTF-8";
    case WSE_CLOSE_TOO_BIG: return "message too big";
    case WSE_CLOSE_INTERNAL: return "internal error";
    case WSE_CLOSE_TRY_LATER: return "try again later";
    default: return "";
    }
}

static void count_error(uint16_t code)
{
    if (code == WSE_CLOSE_PROTOCOL)
        STAT(err_1002, 1);
    else if (code == WSE_CLOSE_BAD_DATA)
        STAT(err_1007, 1);
    else if (code == WSE_CLOSE_TOO_BIG)
        STAT(err_1009, 1);
}

/*
 * Keeps input for later: an incomplete header or control frame, presented
 * again with the next read, or the unparsed rest of a paused read.  p lies
 * in the read buffer, never in c->tail.
 */
static int keep_tail(struct conn *c, const uint8_t *p, size_t n)
{
    if (n > TAIL_CAP) {
        free(c->tail);
        c->tail = NULL;
    }
    if (!c->tail && !(c->tail = malloc(n > TAIL_CAP ? n : TAIL_CAP)))
        return -1;
    memcpy(c->tail, p, n);
    c->tail_len = (uint32_t)n;
    return 0;
}

static void drop_empty_tail(struct conn *c)
{
    if (!(c->flags & F_DEAD) && !c->tail_len && c->tail) {
        free(c->tail);
        c->tail = NULL;
    }
}

/*
 * The output queued and batched so far has passed the high-water mark: send
 * it, and if the peer does not take enough, stop parsing and keep the rest
 * of the input (rest[0..n)) until the output drains (on_io resumes it).
 * True when parsing must stop.  Checked after every event, not once per
 * read: one read's echoes can be many times its size (6-byte empty frames
 * each echoed behind an --echo-prefix), so a whole read's worth would let
 * a peer that never reads queue megabytes past the mark.
 */
static bool stop_at_high_water(struct conn *c, const uint8_t *rest, size_t n)
{
    flush(c);
    if (c->flags & F_DEAD)
        return true;
    if (!(c->flags & F_READ_PAUSED))
        return false;       /* the socket took enough: carry on */
    if (n) {
        if (keep_tail(c, rest, n) < 0) {
            abort_oom(c, "input");
            return true;
        }
        c->flags |= F_INPUT_HELD;
    }
    return true;
}

static void ws_process(struct conn *c, uint8_t *base, size_t have)
{
    size_t pos = 0;

    batch_reset();
    while (pos < have && c->state != ST_LINGER) {
        struct wse_event ev;
        size_t used;
        int rc = wse_parse(&c->ps, base + pos, have - pos, &used, &ev);

        pos += used;
        if (rc == WSE_OK) {
            on_event(c, &ev);
            if (c->flags & F_DEAD)
                return;
            if (c->flags & F_INPUT_HELD) {      /* the deflate transform paused */
                if (pos < have && keep_tail(c, base + pos, have - pos) < 0) {
                    abort_oom(c, "input");
                    return;
                }
                break;                          /* to the flush: the batch holds its last frames */
            }
            if (pending(c) + W.batch.bytes > W.cfg->high_water &&
                stop_at_high_water(c, base + pos, have - pos))
                return;
            continue;
        }
        if (rc == WSE_AGAIN) {
            if (pos < have && keep_tail(c, base + pos, have - pos) < 0) {
                abort_oom(c, "input");
                return;
            }
            break;
        }
        fail_ws(c, ev.code);
    }
    flush(c);
}

/* Fails the connection with code: the close frame, then linger. */
static void fail_ws(struct conn *c, uint16_t code)
{
    char addr[WSE_ADDR_MAX];

    log_limited(WSE_LOG_WARN, "failing connection", "%s failing connection with %u: %s",
                peer_str(c, addr), code, close_reason(code));
    set_cause(c, CC_ERROR);
    set_close_code(c, code);
    count_error(code);
    queue_close(c, code, close_reason(code));
    linger(c);
}

/* The output has drained below low-water: parse what the paused read left. */
static void ws_resume(struct conn *c)
{
    if (wse_pmdconn_parked(c->pmd)) {
        batch_reset();
        echo_resumed(c);
        if (c->flags & F_DEAD)
            return;
        flush(c);
        if ((c->flags & F_DEAD) || wse_pmdconn_parked(c->pmd))
            return;                         /* paused again: the tail still waits */
        if (c->state == ST_LINGER) {
            c->tail_len = 0;                /* failed: later input is dropped */
            c->flags &= (uint8_t)~F_INPUT_HELD;
            drop_empty_tail(c);
            return;
        }
        if (c->flags & F_READ_PAUSED)
            return;                         /* the tail waits for the next drain */
    }

    size_t have = c->tail_len;

    if (have)
        memcpy(RB, c->tail, have);
    free(c->tail);      /* it may be a read's size: the next tail is allocated anew */
    c->tail = NULL;
    c->tail_len = 0;
    c->flags &= (uint8_t)~F_INPUT_HELD;
    ws_process(c, RB, have);
    drop_empty_tail(c);
}

static void ws_read(struct conn *c)
{
    size_t have = c->tail_len;
    if (have)
        memcpy(RB, c->tail, have);

    ssize_t n = TP(c)->read(c->io.fd, RB + have, RBUF_SIZE - have);
    if (n <= 0) {
        char addr[WSE_ADDR_MAX];
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n == 0) {
            if (c->state != ST_LINGER)
                log_debug("%s closed by peer without a close frame (1006)", peer_str(c, addr));
            conn_free(c);
        } else {
            abort_conn(c, strerror(errno));
        }
        return;
    }
    c->tail_len = 0;
    c->last_rx = ev_now(W.loop);
    if (c->timer == TK_IDLE)
        wse_tlist_touch(&W.idle_list, &c->tl, TOUCH_SLACK);
    else if (c->timer == TK_PINGED)
        set_timer(c, TK_IDLE);      /* alive after all: back to idle watch */
    if (c->state == ST_LINGER)
        return;     /* after the close handshake, input is dropped */
    ws_process(c, RB, have + (size_t)n);
    drop_empty_tail(c);
}

/* ---- the HTTP phase ---------------------------------------------------- */

/* Names what was refused: both values are the peer's, hence quoted. */
static void log_refused_origin(const struct conn *c, const struct wse_http_req *req,
                               const char *buf)
{
    char addr[WSE_ADDR_MAX], origin[128], host[96];

    if (req->origin.len == 0) {
        log_limited(WSE_LOG_WARN, "origin refused",
                    "%s origin refused: no Origin (--allow-origin is set)", peer_str(c, addr));
        return;
    }
    log_limited(WSE_LOG_WARN, "origin refused",
                "%s origin refused: Origin %s is not in --allow-origin nor this server's "
                "own (Host %s)", peer_str(c, addr),
                wse_http_quote(origin, sizeof origin, buf + req->origin.off, req->origin.len),
                wse_http_quote(host, sizeof host, buf + req->host.off, req->host.len));
}

static void hs_free(struct conn *c)
{
    wse_hsbuf_free(&W.hs_budget, &c->hs);
}

static void count_status(int status)
{
    switch (status) {
    case 400: STAT(refused_400, 1); break;
    case 403: STAT(refused_403, 1); break;
    case 404: STAT(refused_404, 1); break;
    case 405: STAT(refused_405, 1); break;
    case 426: STAT(refused_426, 1); break;
    case 431: STAT(refused_431, 1); break;
    case 503: STAT(refused_503, 1); break;
    default: STAT(http_other, 1); break;
    }
}

/* Any answer but 101: send it, then close without reading further. */
static void respond(struct conn *c, int status, const char *extra, const char *body)
{
    char resp[512];
    char addr[WSE_ADDR_MAX];
    size_t n = wse_http_response(resp, sizeof resp, status, extra, NULL, body,
                                 body ? strlen(body) : 0);

    if (!n) {
        /* Never sent empty: a bare 500 always fits. */
        log_limited(WSE_LOG_ERROR, "HTTP response", "%s answering 500: the %d response does "
                    "not fit %zu bytes", peer_str(c, addr), status, sizeof resp);
        status = 500;
        n = wse_http_response(resp, sizeof resp, status, NULL, NULL, NULL, 0);
    }
    if (status >= 400)
        log_debug("%s http %d %s", peer_str(c, addr), status, wse_http_reason(status));
    count_status(status);
    set_cause(c, CC_SERVER);
    c->flags |= F_ANSWERED;
    access_record(c, status);
    hs_free(c);
    linger(c);
    send_bytes(c, resp, c->flags & F_HEAD ? wse_http_head_len(resp, n) : n);
}

static void respond_page(struct conn *c)
{
    count_status(200);
    set_cause(c, CC_SERVER);
    c->flags |= F_ANSWERED;
    access_record(c, 200);
    hs_free(c);
    linger(c);
    send_bytes(c, W.page, c->flags & F_HEAD ? W.page_head_len : W.page_len);
}

/*
 * The 101, or a 500 when it cannot be written (handshake.h: a response of
 * 0 bytes is the caller's to refuse; it becomes reachable once the 101
 * carries an extension's header).
 */
static void upgrade(struct conn *c, const struct wse_http_req *req, const char *buf)
{
    char resp[256 + WSE_PMD_RESPONSE_MAX];
    char addr[WSE_ADDR_MAX];
    char ext[WSE_PMD_RESPONSE_MAX];
    size_t ext_len = 0;
    const char *why = NULL;
    struct wse_pmdconn *pmd = W.cfg->permessage_deflate
                              ? wse_pmdconn_negotiate(req, buf, ext, &ext_len, &why) : NULL;
    size_t n = wse_handshake_response_ext(resp, sizeof resp, buf + req->key.off, req->key.len,
                                          NULL, 0, ext, ext_len);

    if (why)
        log_debug("%s permessage-deflate: %s", peer_str(c, addr), why);
    if (!n) {
        wse_pmdconn_free(pmd);
        log_limited(WSE_LOG_ERROR, "handshake response", "%s handshake refused with 500: the "
                    "101 response does not fit %zu bytes", peer_str(c, addr), sizeof resp);
        respond(c, 500, NULL, NULL);
        return;
    }
    c->state = ST_OPEN;
    STAT(handshakes, 1);
    c->pmd = pmd;
    wse_parser_init(&c->ps, W.cfg->max_message, pmd ? WSE_RSV1 : 0);
    c->last_rx = ev_now(W.loop);
    set_timer(c, TK_IDLE);
    log_debug("%s open %.*s", peer_str(c, addr), req->path.len, buf + req->path.off);
    send_bytes(c, resp, n);
}

static void route(struct conn *c, const struct wse_http_req *req, const char *buf)
{
    struct wse_route r = wse_route(req, buf, &W.route, W.draining);

    if (r.head)
        c->flags |= F_HEAD;
    switch (r.kind) {
    case WSE_ROUTE_PAGE:
        respond_page(c);
        break;
    case WSE_ROUTE_UPGRADE:
        upgrade(c, req, buf);
        break;
    case WSE_ROUTE_ANSWER:
        if (r.origin_refused)
            log_refused_origin(c, req, buf);
        respond(c, r.status, r.headers, r.body);
        break;
    }
}

/* One byte more than --max-header, so that an over-long head that comes in
 * pieces still reaches the byte where the parser answers 431. */
static size_t hs_cap(const struct wse_config *cfg)
{
    return cfg->max_header + 1 + (cfg->proxy_protocol ? WSE_PROXY_MAX : 0);
}

/*
 * Keeps a handshake split over reads (buf[0..have), in the read buffer) and
 * its parsers' state; true when the connection goes on waiting.  When the
 * worker's handshake memory is spent it is answered 503.
 */
static bool hs_wait(struct conn *c, const char *buf, size_t have,
                    const struct wse_http_req *req, const struct wse_proxy *px, size_t off)
{
    switch (wse_hsbuf_keep(&W.hs_budget, &c->hs, buf, have)) {
    case WSE_HSBUF_KEPT:
        c->hs->req = *req;
        c->hs->px = *px;
        c->hs->http_off = (uint16_t)off;
        return true;
    case WSE_HSBUF_NOMEM:
        abort_oom(c, "the handshake");
        return false;
    case WSE_HSBUF_FULL:
        break;
    }
    if (wse_hsbuf_warn_once(&W.hs_budget))
        log_warn("handshakes split over reads hold %zu bytes, this worker's limit: "
                 "more of them get 503 until half of that is free", W.hs_budget.bytes);
    respond(c, 503, NULL, NULL);
    return false;
}

/*
 * Counts a new connection against its client's limit (the client being the
 * PROXY header's source when there is one).  False when it was refused
 * (and is gone): 503 at once, before any request is read, and closed (it
 * takes no slot while a client insists).
 */
static bool admit_per_ip(struct conn *c)
{
    switch (wse_connlimit_admit(&W.iplimit, &c->peer)) {
    case WSE_IPLIMIT_COUNTED:
        c->flags |= F_IP_COUNTED;
        return true;
    case WSE_IPLIMIT_UNTRACKED:
        return true;
    case WSE_IPLIMIT_REFUSED:
        break;
    }
    count_status(503);
    set_cause(c, CC_SERVER);
    /* A TLS client could not read a 503 before its handshake: it is closed. */
    if (c->tp == TP_PLAIN)
        wse_connlimit_refuse(TP(c), c->io.fd, RB, RBUF_SIZE);
    conn_free(c);
    return false;
}

/* The client behind the load balancer becomes this connection's peer. */
static void apply_proxy(struct conn *c, const struct wse_proxy *px)
{
    char before[WSE_ADDR_MAX], after[WSE_ADDR_MAX];

    if (px->command != WSE_PROXY_CMD_PROXY || px->family == WSE_PROXY_UNSPEC)
        return;     /* the balancer's own health check: keep its address */
    peer_str(c, before);
    c->peer.family = px->family == WSE_PROXY_INET6 ? AF_INET6 : AF_INET;
    c->peer.port = htons(px->src_port);
    memcpy(c->peer.addr, px->src_addr, px->family == WSE_PROXY_INET6 ? 16 : 4);
    log_debug("%s is %s (PROXY v%u)", before, peer_str(c, after), px->version);
}

/*
 * The PROXY header a --proxy-protocol listener requires before the request.
 * Returns 1 when it is complete (*off: where the request starts), 0 when
 * more bytes are needed, -1 when the connection was refused.
 */
static int proxy_step(struct conn *c, struct wse_proxy *px, const char *buf, size_t have,
                      size_t *off)
{
    char addr[WSE_ADDR_MAX];
    int rc = wse_proxy_parse(px, (const uint8_t *)buf, have);

    if (rc == WSE_AGAIN)
        return 0;
    if (rc == WSE_FAIL) {
        /* No HTTP answer: whatever sent this does not speak PROXY. */
        log_limited(WSE_LOG_WARN, "PROXY refused",
                    "%s refused: no valid PROXY protocol header (bad byte at offset %u)",
                    peer_str(c, addr), px->parsed);
        STAT(refused_400, 1);
        set_cause(c, CC_ERROR);
        hs_free(c);
        conn_free(c);
        return -1;
    }
    apply_proxy(c, px);
    if (!admit_per_ip(c))
        return -1;
    *off = px->header_len;
    return 1;
}

/* ---- TLS ----------------------------------------------------------------- */

/* Has this TLS connection's handshake begun (its PROXY header, if any, read)
 * without finishing?  Then a failure or a timeout is the handshake's. */
static bool tls_in_handshake(const struct conn *c)
{
    return c->tp == TP_TLS && !(c->tflags & T_TLS_DONE) &&
           (!W.cfg->proxy_protocol || (c->tflags & T_PROXY_DONE));
}

/* Counts the handshake once it has finished. */
static void tls_note_done(struct conn *c)
{
    if (!tls_in_handshake(c) || !wse_tls_established(c->io.fd))
        return;
    const char *v = wse_tls_version(c->io.fd);
    c->tflags |= T_TLS_DONE;
    if (v && strcmp(v, "TLSv1.3") == 0)
        STAT(tls_hs_13, 1);
    else
        STAT(tls_hs_12, 1);
    if (wse_tls_resumed(c->io.fd))
        STAT(tls_resumed, 1);
}

/*
 * A TLS handshake that failed (why: OpenSSL's reason, or NULL when the peer
 * closed): counted by reason, logged at debug only -- scanners and plain
 * HTTP clients on a TLS port are common and nobody's error here.
 */
static void tls_failed(struct conn *c, const char *why)
{
    char addr[WSE_ADDR_MAX];

    if (!why || strcmp(why, "connection reset") == 0) {
        why = why ? why : "closed by the peer";
        STAT(tls_fail_closed, 1);
    } else if (strcmp(why, "http request") == 0 || strcmp(why, "https proxy request") == 0) {
        STAT(tls_fail_http, 1);
    } else if (strstr(why, "version") || strstr(why, "protocol")) {
        STAT(tls_fail_version, 1);
    } else {
        STAT(tls_fail_other, 1);
    }
    log_debug("%s TLS handshake failed: %s", peer_str(c, addr), why);
    set_cause(c, CC_ERROR);
}

/*
 * The PROXY header in front of a TLS connection is read: TLS begins with
 * the bytes behind it (rest[0..n), the start of the ClientHello).  The
 * socket may stay quiet with those bytes already here, so the connection
 * reads again at once.  False when it is gone.
 */
static bool tls_begin_after_proxy(struct conn *c, const char *rest, size_t n)
{
    hs_free(c);
    c->tflags |= T_PROXY_DONE;
    if (wse_tls_begin(c->io.fd, rest, n) < 0) {
        abort_oom(c, "the TLS session");
        return false;
    }
    ev_feed_event(W.loop, &c->io, EV_READ);
    return true;
}

/*
 * Reads the request.  The common case, a request that arrives in one read,
 * is parsed straight from the worker's buffer and costs no allocation; only
 * a request split over reads is kept in a buffer of its own, and brought
 * back into the worker's buffer for the next read.
 */
static void hs_read(struct conn *c)
{
    size_t have = c->hs ? c->hs->len : 0;
    char *buf = (char *)RB;
    struct wse_http_req req;
    struct wse_proxy px;
    size_t off = 0;

    if (c->hs) {
        memcpy(buf, c->hs->buf, have);
        req = c->hs->req;
        px = c->hs->px;
        off = c->hs->http_off;
    } else {
        wse_http_init(&req);
        wse_proxy_init(&px);
    }
    ssize_t n = TP(c)->read(c->io.fd, buf + have, c->hs ? W.hs_budget.cap - have : RBUF_SIZE);
    if (c->tp == TP_TLS)
        tls_note_done(c);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (tls_in_handshake(c))
            tls_failed(c, n < 0 ? wse_tls_failure(c->io.fd) : NULL);
        hs_free(c);
        conn_free(c);
        return;
    }
    have += (size_t)n;

    if (W.cfg->proxy_protocol && !off && !(c->tflags & T_PROXY_DONE)) {
        int step = proxy_step(c, &px, buf, have, &off);
        if (step < 0)
            return;
        if (step == 0) {
            hs_wait(c, buf, have, &req, &px, 0);
            return;
        }
        if (c->tp == TP_TLS) {
            tls_begin_after_proxy(c, buf + off, have - off);
            return;
        }
    }
    int rc = wse_http_parse(&req, buf + off, have - off, &W.limits);
    if (rc == WSE_AGAIN) {
        hs_wait(c, buf, have, &req, &px, off);
        return;
    }
    hs_free(c);
    W.req = &req;
    W.req_buf = buf + off;
    if (rc == WSE_FAIL) {
        /* A response to HEAD has no body, even a refusal (RFC 9110 9.3.2). */
        if (req.method == WSE_HTTP_HEAD)
            c->flags |= F_HEAD;
        respond(c, req.status, NULL, NULL);
        W.req = NULL;
        return;
    }
    size_t parsed_end = off + req.parsed;
    route(c, &req, buf + off);
    W.req = NULL;
    /* After the 101, bytes behind the request already belong to the WebSocket. */
    if (c->state == ST_OPEN && !(c->flags & F_DEAD) && have > parsed_end)
        ws_process(c, (uint8_t *)buf + parsed_end, have - parsed_end);
}

/* ---- libev glue -------------------------------------------------------- */

static void on_writable(struct conn *c)
{
    while (pending(c)) {
        struct iovec iov = {.iov_base = c->out + c->out_pos, .iov_len = pending(c)};
        ssize_t n = TP(c)->writev(c->io.fd, &iov, 1);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            /* Nothing written and no wait to report: retrying would spin. */
            abort_conn(c, n < 0 ? strerror(errno) : "the transport wrote nothing");
            return;
        }
        c->out_pos += (uint32_t)n;
        STAT_SUB(bytes_buffered, (size_t)n);
    }
    after_output(c);
}

static void on_io_events(struct conn *c, int revents);

/*
 * A TLS session may hold decrypted input the last read had no room for (a
 * full buffer, a handshake's small cap) while the socket stays quiet: then
 * the connection reads again without waiting for the socket.
 */
static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = container_of(w, struct conn, io);
    (void)loop;

    on_io_events(c, revents);
    if (c->tp == TP_TLS && !(c->flags & (F_DEAD | F_INPUT_HELD | F_READ_PAUSED)) &&
        wse_tls_has_pending(c->io.fd))
        ev_feed_event(W.loop, &c->io, EV_READ);
}

static void on_io_events(struct conn *c, int revents)
{
    if (revents & EV_WRITE)
        on_writable(c);
    /* Input held back by the high-water mark goes before any new read. */
    if ((c->flags & (F_DEAD | F_INPUT_HELD | F_READ_PAUSED)) == F_INPUT_HELD)
        ws_resume(c);
    if ((c->flags & (F_DEAD | F_INPUT_HELD | F_READ_PAUSED)) || !(revents & EV_READ))
        return;
    if (c->state == ST_HANDSHAKE)
        hs_read(c);
    else
        ws_read(c);
}

static void update_events(struct conn *c)
{
    int want = (c->flags & F_READ_PAUSED) ? 0 : EV_READ;

    if (pending(c))
        want |= EV_WRITE;
    if (TP(c)->wants) {
        unsigned tw = TP(c)->wants(c->io.fd);
        want |= (tw & WSE_WANT_READ ? EV_READ : 0) | (tw & WSE_WANT_WRITE ? EV_WRITE : 0);
    }
    if (c->flags & F_DEAD || want == (c->io.events & (EV_READ | EV_WRITE)))
        return;
    ev_io_stop(W.loop, &c->io);
    ev_io_set(&c->io, c->io.fd, want);
    if (want)
        ev_io_start(W.loop, &c->io);
}

/* Never freed inside its own callback chain: the reaper frees after it. */
static void conn_free(struct conn *c)
{
    if (c->flags & F_DEAD)
        return;
    if (!(c->flags & F_ANSWERED))
        access_record(c, c->state == ST_HANDSHAKE ? 0 : 101);
    c->flags |= F_DEAD;
    STAT_SUB(bytes_buffered, pending(c));
    STAT_SUB(conn_open, 1);
    if (c->flags & F_IP_COUNTED)
        wse_connlimit_release(&W.iplimit, &c->peer);
    switch (c->cause) {
    case CC_CLIENT: STAT(close_client, 1); break;
    case CC_SERVER: STAT(close_server, 1); break;
    case CC_ERROR: STAT(close_error, 1); break;
    case CC_TIMEOUT: STAT(close_timeout, 1); break;
    default: STAT(close_reset, 1); break;
    }
    ev_io_stop(W.loop, &c->io);
    if (TP(c)->forget)
        TP(c)->forget(c->io.fd);
    close(c->io.fd);
    wse_tlist_del(&c->tl);
    if (c->state == ST_HANDSHAKE)
        hs_free(c);
    c->next_dead = W.dead;
    W.dead = c;
    W.nconns--;
}

static void on_reap(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    while (W.dead) {
        struct conn *c = W.dead;
        W.dead = c->next_dead;
        if (c->state != ST_HANDSHAKE)
            free(c->tail);
        free(c->out);
        wse_pmdconn_free(c->pmd);   /* here: the transform may still hold it when c dies */
        free(c);
    }
}

/* ---- timeouts ---------------------------------------------------------- */

static void start_close(struct conn *c, uint16_t code, const char *reason)
{
    set_cause(c, CC_SERVER);
    set_close_code(c, code);
    batch_reset();
    queue_close(c, code, reason);
    c->state = ST_CLOSING;
    set_timer(c, TK_CLOSE);
    flush(c);
}

static void hs_expired(struct wse_tlist *list, struct wse_tlink *link)
{
    struct conn *c = container_of(link, struct conn, tl);
    char addr[WSE_ADDR_MAX];
    (void)list;
    c->timer = TK_NONE;
    if (tls_in_handshake(c))
        STAT(tls_fail_timeout, 1);
    log_debug("%s handshake timeout", peer_str(c, addr));
    set_cause(c, CC_TIMEOUT);
    conn_free(c);
}

static void send_ping(struct conn *c)
{
    uint8_t ping[2];
    STAT(pings_out, 1);
    STAT(frames_out, 1);
    wse_frame_write_header(ping, true, WSE_OP_PING, 0);
    send_bytes(c, ping, sizeof ping);
}

/*
 * Idle watch: after ping_interval without input the peer gets a ping and
 * moves to the "pinged" list; any input moves it back.  When the pinged list
 * expires too (idle_timeout in all), the connection is closed with 1001.
 */
static void idle_expired(struct wse_tlist *list, struct wse_tlink *link)
{
    struct conn *c = container_of(link, struct conn, tl);
    const struct wse_config *cfg = W.cfg;
    (void)list;

    c->timer = TK_NONE;
    if (cfg->ping_interval > 0 && (cfg->idle_timeout <= 0 || cfg->ping_interval < cfg->idle_timeout)) {
        send_ping(c);
        if (!(c->flags & F_DEAD))
            set_timer(c, cfg->idle_timeout > 0 ? TK_PINGED : TK_IDLE);
        return;
    }
    pinged_expired(list, link);
}

static void pinged_expired(struct wse_tlist *list, struct wse_tlink *link)
{
    struct conn *c = container_of(link, struct conn, tl);
    char addr[WSE_ADDR_MAX];
    (void)list;

    c->timer = TK_NONE;
    log_debug("%s idle timeout: closing with 1001", peer_str(c, addr));
    start_close(c, WSE_CLOSE_GOING_AWAY, "idle timeout");
}

static void close_expired(struct wse_tlist *list, struct wse_tlink *link)
{
    struct conn *c = container_of(link, struct conn, tl);
    (void)list;
    c->timer = TK_NONE;
    if (c->state != ST_LINGER) {
        char addr[WSE_ADDR_MAX];
        log_debug("%s close timeout: dropping", peer_str(c, addr));
        set_cause(c, CC_TIMEOUT);
    }
    conn_free(c);
}

/* ---- public ------------------------------------------------------------ */

int wse_conn_setup(struct ev_loop *loop, const struct wse_config *cfg,
                   struct wse_stats_slot *stats)
{
    W.loop = loop;
    W.st = stats;
    W.cfg = cfg;
    W.limits.max_header_bytes = (uint16_t)cfg->max_header;
    W.limits.max_headers = (uint16_t)cfg->max_headers;
    wse_hsbuf_budget_init(&W.hs_budget, hs_cap(cfg));
    W.iplimit.limit = cfg->max_connections_per_ip;
    W.iplimit.st = stats;
    W.rbuf = malloc(HEADROOM + RBUF_SIZE);
    W.page_len = wse_page_response(W.page, sizeof W.page, cfg->path);
    W.page_head_len = wse_http_head_len(W.page, W.page_len);
    W.busy_len = wse_http_response(W.busy, sizeof W.busy, 503, "Retry-After: 1\r\n", NULL,
                                   "too many connections\n", 21);
    struct wse_pmdconn_cfg pc = {
        .enabled = cfg->permessage_deflate, .window_bits = (uint8_t)cfg->deflate_window_bits,
        .mem_level = (uint8_t)cfg->deflate_mem_level, .level = (uint8_t)cfg->deflate_level,
        .server_takeover = cfg->deflate_server_takeover,
        .client_takeover = cfg->deflate_client_takeover,
        .safari_guard = cfg->deflate_safari_guard, .min_size = cfg->deflate_min_size,
        .max_message = cfg->max_message, .max_inflating = cfg->deflate_max_inflating,
    };
    if (wse_pmdconn_setup(&pc) != WSE_OK)
        return -1;
    W.xform.prefix = cfg->echo_prefix;
    W.xform.prefix_len = cfg->echo_prefix_len;
    W.route.path = cfg->path;
    for (unsigned i = 0; i < cfg->norigins && i < WSE_MAX_ORIGINS; i++)
        W.origins[i] = cfg->origins[i];
    W.route.origins = W.origins;
    W.route.norigins = cfg->norigins < WSE_MAX_ORIGINS ? cfg->norigins : WSE_MAX_ORIGINS;
    if (!W.page_len || !W.busy_len) {
        log_error("the %s response does not fit its buffer: cannot serve this configuration",
                  W.page_len ? "503" : "browser page");
        return WSE_CONN_SETUP_FATAL;
    }
    if (!W.rbuf)
        return -1;

    double idle_period = cfg->ping_interval > 0 ? cfg->ping_interval : cfg->idle_timeout;
    if (cfg->idle_timeout > 0 && cfg->ping_interval > cfg->idle_timeout)
        idle_period = cfg->idle_timeout;
    wse_tlist_init(&W.hs_list, loop, cfg->handshake_timeout, hs_expired);
    wse_tlist_init(&W.idle_list, loop, idle_period, idle_expired);
    wse_tlist_init(&W.pinged_list, loop, cfg->idle_timeout - cfg->ping_interval, pinged_expired);
    wse_tlist_init(&W.close_list, loop, cfg->close_timeout, close_expired);
    ev_check_init(&W.reaper, on_reap);
    ev_check_start(loop, &W.reaper);
    return 0;
}

void wse_conn_tls(struct wse_tls *tls)
{
    W.tls = tls;
}

void wse_conn_accepted(int fd, const struct sockaddr_storage *peer, bool tls)
{
    struct conn *c = calloc(1, sizeof *c);

    if (!c || (tls && wse_tls_attach(W.tls, fd, W.cfg->proxy_protocol) < 0)) {
        log_limited(WSE_LOG_WARN, "out of memory", "closing a new connection: out of memory "
                    "for its %s", c ? "TLS session" : "state");
        free(c);
        close(fd);
        return;
    }
    c->tp = tls ? TP_TLS : TP_PLAIN;
    set_peer(c, peer);
    if (wse_access_on())
        c->start_ms = wse_access_clock_ms();
    c->state = ST_HANDSHAKE;
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_io_start(W.loop, &c->io);
    set_timer(c, TK_HANDSHAKE);
    W.nconns++;
    STAT(conn_accepted, 1);
    STAT(conn_open, 1);
    /* Behind --proxy-protocol the client is known after its header. */
    if (!W.cfg->proxy_protocol)
        admit_per_ip(c);
}

void wse_conn_iplimit(struct wse_iplimit *table, unsigned holder)
{
    W.iplimit.table = table;
    W.iplimit.holder = holder;
}

/* The access line of a connection answered at accept, never a struct conn. */
static void access_refused(const struct sockaddr_storage *peer, int status)
{
    struct conn c = {.cause = CC_SERVER};

    if (!wse_access_on())
        return;
    set_peer(&c, peer);
    c.start_ms = wse_access_clock_ms();
    access_record(&c, status);
}

void wse_conn_refuse_busy(int fd, const struct sockaddr_storage *peer, bool tls)
{
    struct iovec iov = {.iov_base = W.busy, .iov_len = W.busy_len};

    log_limited(WSE_LOG_WARN, "connection limit", "connection limit %u reached: answering 503",
                W.cfg->max_connections);
    /* Never blocking: a socket that cannot take it gets the close alone, and
     * so does a TLS client, which could not read an answer before its handshake. */
    if (!tls) {
        ssize_t w = wse_transport_plain.writev(fd, &iov, 1);
        (void)w;
    }
    close(fd);
    STAT(conn_accepted, 1);
    STAT(refused_503, 1);
    STAT(close_server, 1);
    access_refused(peer, 503);
}

unsigned wse_conn_count(void)
{
    return W.nconns;
}

void wse_conn_set_draining(void)
{
    W.draining = true;
}

/* Walks a timeout list; fn may move the entry to another list. */
static void each_on(struct wse_tlist *list, void (*fn)(struct conn *c, uint16_t code, const char *r),
                    uint16_t code, const char *reason)
{
    struct wse_tlink *l = list->head.next;
    while (l != &list->head) {
        struct wse_tlink *next = l->next;
        fn(container_of(l, struct conn, tl), code, reason);
        l = next;
    }
}

static void close_one(struct conn *c, uint16_t code, const char *reason)
{
    if (c->state == ST_HANDSHAKE)
        conn_free(c);
    else if (c->state == ST_OPEN)
        start_close(c, code, reason);
}

void wse_conn_close_all(uint16_t code, const char *reason)
{
    each_on(&W.hs_list, close_one, code, reason);
    each_on(&W.idle_list, close_one, code, reason);
    each_on(&W.pinged_list, close_one, code, reason);
}

/* Open connections are on the idle or pinged list; the longest quiet go first. */
unsigned wse_conn_close_some(unsigned n, uint16_t code, const char *reason)
{
    unsigned done = 0;
    struct wse_tlist *lists[] = {&W.pinged_list, &W.idle_list};

    for (size_t i = 0; i < countof(lists) && done < n; i++) {
        while (done < n && lists[i]->head.next != &lists[i]->head) {
            struct conn *c = container_of(lists[i]->head.next, struct conn, tl);
            start_close(c, code, reason);   /* moves it to the close list */
            done++;
        }
    }
    return done;
}

size_t wse_conn_struct_size(void)
{
    return sizeof(struct conn);
}
