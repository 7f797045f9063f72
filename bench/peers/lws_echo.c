/*
 * lws_echo.c - libwebsockets echo peer for bench/compare.sh (Debian
 * libwebsockets-dev): one context, one service thread, one protocol callback.
 *
 *   cc -O2 bench/peers/lws_echo.c -o build/peers/lws_echo $(pkg-config --cflags --libs libwebsockets)
 *   lws_echo PORT [deflate|deflate-64k]   (127.0.0.1:PORT, any path)
 *
 * "deflate" (bench/deflate_compare.py) registers lws's own permessage-deflate
 * extension (lws_extension_callback_pm_deflate, compiled into Debian's
 * libwebsockets17) with its defaults: level 1, memLevel 8, inflating and
 * deflating through 1 KiB buffers.  "deflate-64k" raises those buffers to
 * 64 KiB (rx_buf_size and tx_buf_size 16, set per connection; lws caps them
 * at the protocol's rx buffer), lws tuned for whole messages.  The server
 * side takes the takeover parameters from the client's offer; without
 * takeover lws ends and re-creates its zlib stream for every message.
 *
 * Every message goes back unchanged with its type.  lws hands a message to
 * the callback in pieces of at most rx_buffer_size bytes; each piece is
 * queued and written back as a fragment with the same first/final flags, so
 * the echo is the same message.  More than HIGH_WATER bytes queued stops
 * reading that connection until the queue drains below LOW_WATER.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_BUF      65536
#define HIGH_WATER  (1u << 20)
#define LOW_WATER   (256u << 10)

struct piece {
    struct piece *next;
    size_t len;
    int binary, first, final;
    unsigned char buf[];        /* LWS_PRE bytes, then the payload */
};

struct session {
    struct piece *head, *tail;
    size_t queued;
    int paused;
};

/* Only the name and callback matter to a server; the offer is a client's. */
static const struct lws_extension deflate_extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_max_window_bits"},
    {NULL, NULL, NULL},
};

static volatile sig_atomic_t interrupted;
static struct lws_context *context;
static int big_deflate_buffers;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (context)
        lws_cancel_service(context);
}

static void free_queue(struct session *s)
{
    while (s->head) {
        struct piece *p = s->head;
        s->head = p->next;
        free(p);
    }
    s->tail = NULL;
    s->queued = 0;
}

static int callback_echo(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct session *s = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof *s);
        /* Before the first message: lws allocates its pmd buffers then. */
        if (big_deflate_buffers) {
            lws_set_extension_option(wsi, "permessage-deflate", "rx_buf_size", "16");
            lws_set_extension_option(wsi, "permessage-deflate", "tx_buf_size", "16");
        }
        break;

    case LWS_CALLBACK_RECEIVE: {
        struct piece *p = malloc(sizeof *p + LWS_PRE + len);
        if (!p)
            return -1;
        p->next = NULL;
        p->len = len;
        p->binary = lws_frame_is_binary(wsi);
        p->first = lws_is_first_fragment(wsi);
        p->final = lws_is_final_fragment(wsi);
        if (len)
            memcpy(p->buf + LWS_PRE, in, len);
        if (s->tail)
            s->tail->next = p;
        else
            s->head = p;
        s->tail = p;
        s->queued += len;
        if (!s->paused && s->queued > HIGH_WATER) {
            s->paused = 1;
            lws_rx_flow_control(wsi, 0);
        }
        lws_callback_on_writable(wsi);
        break;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE:
        while (s->head && !lws_send_pipe_choked(wsi)) {
            struct piece *p = s->head;
            int flags = lws_write_ws_flags(p->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT,
                                           p->first, p->final);
            if (lws_write(wsi, p->buf + LWS_PRE, p->len, (enum lws_write_protocol)flags) <
                (int)p->len)
                return -1;
            s->head = p->next;
            if (!s->head)
                s->tail = NULL;
            s->queued -= p->len;
            free(p);
        }
        if (s->paused && s->queued < LOW_WATER) {
            s->paused = 0;
            lws_rx_flow_control(wsi, 1);
        }
        if (s->head)
            lws_callback_on_writable(wsi);
        break;

    case LWS_CALLBACK_CLOSED:
        free_queue(s);
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", callback_echo, sizeof(struct session), RX_BUF, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    char *end;

    if (argc < 2 || argc > 3 ||
        (argc == 3 && strcmp(argv[2], "deflate") != 0 && strcmp(argv[2], "deflate-64k") != 0)) {
        fprintf(stderr, "usage: lws_echo PORT [deflate|deflate-64k]\n");
        return 2;
    }
    big_deflate_buffers = argc == 3 && strcmp(argv[2], "deflate-64k") == 0;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end || port < 1 || port > 65535) {
        fprintf(stderr, "lws_echo: bad port '%s'\n", argv[1]);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    lws_set_log_level(LLL_ERR, NULL);

    memset(&info, 0, sizeof info);
    info.port = (int)port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.count_threads = 1;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (argc == 3)
        info.extensions = deflate_extensions;
    context = lws_create_context(&info);
    if (!context) {
        fprintf(stderr, "lws_echo: lws_create_context failed\n");
        return 1;
    }
    while (!interrupted)
        if (lws_service(context, 0) < 0)
            break;
    lws_context_destroy(context);
    return 0;
}
