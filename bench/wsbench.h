/*
 * wsbench.h - shared declarations of wsbench, the WebSocket load generator.
 *
 *   wsbench.c         command line, set-up, threads, signals
 *   wsbench_loop.c    one thread: epoll loop and the connection state machine
 *   wsbench_report.c  wrk-style text and JSON output
 *   wsbench_hist.c    the latency histogram
 */
#ifndef WSBENCH_H
#define WSBENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "wsbench_hist.h"

enum wsb_mode {
    WSB_ECHO,           /* keep PIPELINE messages in flight per connection */
    WSB_CONNECT_RATE,   /* connect, handshake, one echo, close, repeat */
    WSB_HOLD,           /* open N connections and keep them idle */
    WSB_RAW,            /* plain TCP echo, no WebSocket */
};

enum wsb_err {
    WSB_E_CONNECT,
    WSB_E_HANDSHAKE,
    WSB_E_READ,
    WSB_E_WRITE,
    WSB_E_TIMEOUT,
    WSB_E_MISMATCH,
    WSB_E_COUNT
};

extern const char *const wsb_err_names[WSB_E_COUNT];

/* Payload bytes come from a pattern of this many bytes, stored twice. */
#define WSB_PAT_LEN   65536u
#define WSB_PATH_MAX  2048
#define WSB_HOST_MAX  128
#define WSB_CODES     5001      /* close codes 0..4999; 5000 = anything else */

struct wsb_config {
    enum wsb_mode mode;
    unsigned threads;
    unsigned conns;             /* total, all threads */
    uint64_t size;              /* payload bytes per message */
    unsigned pipeline;
    bool binary;
    bool deflate;               /* --deflate: permessage-deflate, no context takeover */
    bool latency;
    bool json;
    unsigned verbose;           /* error lines to print per thread */
    double duration_s;
    double timeout_s;
    uint64_t duration_ns;
    uint64_t timeout_ns;

    const char *url;
    char host_hdr[WSB_HOST_MAX];    /* Host: header value (host[:port]) */
    char path[WSB_PATH_MAX];
    char host[WSB_HOST_MAX];        /* the name or address to resolve */
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;

    /* wss:// (tls:// with --raw): TLS under the protocol.  The server's
     * certificate is not verified: wsbench measures, it does not trust. */
    bool tls;
    bool tls_resume;            /* --connect-rate: resume each thread's last session */
    int tls_max;                /* highest version offered (TLS1_3_VERSION unless --tls12) */
    void *tls_ctx;              /* SSL_CTX *, shared by the threads */

    const uint8_t *pattern;     /* 2 * WSB_PAT_LEN bytes: printable or any */
    uint64_t t0;                /* start, CLOCK_MONOTONIC ns */
};

/* 0 = running; 1 = stop measuring and close; 2 = abort now (second ^C). */
extern atomic_int wsb_stop;

struct wsb_conn;

struct wsb_thread {
    const struct wsb_config *cfg;
    unsigned index;
    unsigned first_id;          /* global id of conns[0] */
    unsigned nconns;
    pthread_t tid;

    /* filled in by the thread */
    uint64_t msgs;              /* echoes completed */
    uint64_t cycles;            /* connect-rate: connections completed */
    uint64_t bytes_read;
    uint64_t established;       /* handshakes completed */
    uint64_t tls_resumed;       /* of them, TLS sessions resumed */
    uint64_t held;              /* open when the measurement ended */
    uint64_t closed_clean;
    uint64_t pings;
    uint64_t err[WSB_E_COUNT];
    uint64_t t_end;             /* end of measurement, ns */
    uint64_t t_all_open;        /* hold: when the last connection opened */
    struct wsb_hist hist;
    double *samples;            /* per-second rates, one per 100 ms tick */
    size_t nsamples;
    size_t samples_cap;
    uint32_t codes[WSB_CODES];  /* close codes the server started with */
    int failed;                 /* set-up failure (no epoll etc.) */
};

uint64_t wsb_now(void);
void *wsb_thread_main(void *arg);

/* wsbench_report.c */
int wsb_report(const struct wsb_config *cfg, struct wsb_thread *th, unsigned n);

#endif
