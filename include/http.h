/*
 * http.h - incremental parser for the HTTP/1.1 upgrade request, and writer of
 * the server's HTTP responses.
 *
 * Buffer ownership: the caller accumulates the request's bytes in one buffer
 * of its own, starting with the request's first byte, and passes the whole
 * accumulation on every call.  The parser remembers how far it got
 * (req->parsed) and resumes there (picohttpparser's last_len and nginx's
 * sw_* state, combined), so a request that arrives one byte at a time costs
 * O(n) in all.  It never copies or allocates: every value it keeps is a span
 * (offset, length) into the caller's buffer, valid while that buffer is.
 *
 * Returns (common.h):
 *   WSE_OK     the header block is complete: req->parsed is its length (the
 *              bytes after it, if any, already belong to the WebSocket
 *              stream); the spans and flags below are filled in.
 *   WSE_AGAIN  every byte so far is a valid prefix of a request; call again
 *              with the same buffer grown.
 *   WSE_FAIL   req->status is the HTTP status to answer with: 400 (syntax:
 *              request line, version, header line, bare LF, obs-fold), 431
 *              (header block over limits.max_header_bytes or more than
 *              limits.max_headers header lines).  Answer and close.
 *
 * The parser checks syntax only; whether the request is a valid WebSocket
 * upgrade is decided by wse_handshake_check() (handshake.h), and where it is
 * routed by the caller.
 */
#ifndef WSE_HTTP_H
#define WSE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct wse_span {
    uint16_t off;
    uint16_t len;
};

enum wse_http_method {
    WSE_HTTP_OTHER = 0,
    WSE_HTTP_GET,
    WSE_HTTP_HEAD,      /* answered as GET, without the body (RFC 9110 9.3.2) */
};

struct wse_http_limits {
    uint16_t max_header_bytes;   /* whole header block incl. request line; <= 65535 */
    uint16_t max_headers;        /* header lines after the request line */
};

/* Flags gathered from the headers (token lists may span several lines). */
enum {
    WSE_HTTP_HOST = 1u << 0,            /* a Host header was present */
    WSE_HTTP_UPGRADE_WS = 1u << 1,      /* Upgrade lists the token "websocket" */
    WSE_HTTP_CONN_UPGRADE = 1u << 2,    /* Connection lists the token "upgrade" */
    WSE_HTTP_KEY_DUP = 1u << 3,         /* Sec-WebSocket-Key appeared twice */
    WSE_HTTP_VERSION_SEEN = 1u << 4,    /* Sec-WebSocket-Version present */
    WSE_HTTP_VERSION_13 = 1u << 5,      /* ... and its value is exactly 13 */
    WSE_HTTP_ACCEPT_HTML = 1u << 6,     /* Accept mentions text/html */
    WSE_HTTP_HOST_DUP = 1u << 7,        /* Host appeared twice */
    WSE_HTTP_BODY = 1u << 8,            /* a body is announced: Transfer-Encoding
                                           (any value) or Content-Length other
                                           than exactly "0" */
    WSE_HTTP_EXT_MORE = 1u << 9,        /* Sec-WebSocket-Extensions lines beyond
                                           WSE_HTTP_EXT_LINES were not kept */
};

/*
 * Sec-WebSocket-Extensions lines kept, in order.  Offers are listed in the
 * client's order of preference and the server takes the first acceptable
 * one, so a later line can only matter when none before is acceptable: the
 * server then declines, which it may always do (RFC 6455 9.1).
 */
#define WSE_HTTP_EXT_LINES 4

struct wse_http_req {
    /* parser state: zero the struct (wse_http_init) before the first call */
    uint16_t parsed;      /* bytes consumed so far; total length on WSE_OK */
    uint8_t state;        /* resume point of the state machine */
    uint8_t hdr_kind;     /* which known header the current line is */
    uint16_t line_start;  /* offset of the current line's first byte */
    uint16_t name_len;    /* length of the current header's name */
    uint16_t value_off;   /* first byte of the current value */
    uint16_t nheaders;

    /* results */
    uint16_t status;      /* HTTP status on WSE_FAIL */
    uint8_t method;       /* enum wse_http_method */
    uint8_t version_major, version_minor;
    uint16_t flags;       /* WSE_HTTP_* */
    struct wse_span method_name;
    struct wse_span path;       /* request target up to '?' (origin-form) */
    struct wse_span query;      /* after '?', without it; len 0 if none */
    struct wse_span host;       /* Host value (first line), len 0 if absent */
    struct wse_span origin;     /* Origin value, len 0 if absent */
    struct wse_span key;        /* Sec-WebSocket-Key value */
    struct wse_span protocol;   /* Sec-WebSocket-Protocol (first line) */
    struct wse_span user_agent; /* User-Agent (first line), len 0 if absent */
    struct wse_span extensions[WSE_HTTP_EXT_LINES]; /* Sec-WebSocket-Extensions lines */
    uint8_t n_extensions;       /* how many of them are kept */
};

void wse_http_init(struct wse_http_req *req);

int wse_http_parse(struct wse_http_req *req, const char *buf, size_t len,
                   const struct wse_http_limits *limits);

/* Pointer to a span's first byte within buf. */
static inline const char *wse_span_ptr(const char *buf, struct wse_span s)
{
    return buf + s.off;
}

/*
 * Writes a complete non-101 response into out (capacity cap):
 *   HTTP/1.1 <status> <reason>\r\n
 *   Content-Type: <content_type or text/plain; charset=utf-8>\r\n
 *   Content-Length: <body_len>\r\n
 *   Connection: close\r\n
 *   <extra_headers, each ending in \r\n, may be NULL>\r\n
 *   <body>
 * Returns the length written, or 0 if it would not fit.  With body NULL the
 * body is the reason phrase and a newline.
 */
size_t wse_http_response(char *out, size_t cap, int status,
                         const char *extra_headers, const char *content_type,
                         const char *body, size_t body_len);

/* The reason phrase of a status the server sends ("Bad Request"...). */
const char *wse_http_reason(int status);

/*
 * The length of a response's head: up to and including the blank line that
 * ends it (all of resp[0..len) if there is none).  The answer to a HEAD is
 * the GET's response cut there: same status line and headers, Content-Length
 * included, no body (RFC 9110 9.3.2).
 */
size_t wse_http_head_len(const char *resp, size_t len);

/*
 * Renders a peer-supplied value (a header's bytes) for a log line into out
 * (cap >= 8): in double quotes, with '"', '\\', control bytes and bytes
 * >= 0x7F as \xHH, so that a log line stays one printable line whatever the
 * peer sent.  A value that does not fit is cut where whole escapes still
 * fit, and the closing quote is followed by "..." to say so.  Always
 * NUL-terminated; returns out.
 */
char *wse_http_quote(char *out, size_t cap, const char *v, size_t len);

#endif
