/*
 * access.h - who a connection is, and its access-log line.
 *
 * A connection's peer as the logs name it (the PROXY header's client when
 * there is one), and the fields of its one access line formatted into the
 * caller's buffer.  Formatting is pure: no clock, no I/O; the caller hands
 * the line to wse_access_line() (log.h), which adds the time and worker.
 */
#ifndef WSE_ACCESS_H
#define WSE_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

/* A client address: family AF_INET or AF_INET6, port in network order,
 * addr holding 4 or 16 bytes.  Small: it lives in every connection. */
struct wse_peer {
    uint8_t family;
    uint16_t port;
    uint8_t addr[16];
};

/* Formats p as "1.2.3.4:5" or "[::1]:5" into out; returns out. */
const char *wse_peer_str(const struct wse_peer *p, char out[WSE_ADDR_MAX]);

/* Who ended a connection (the access line's by=). */
enum wse_access_by {
    WSE_BY_RESET = 0,   /* the socket failed or the peer left without a word */
    WSE_BY_CLIENT,      /* the client's close frame */
    WSE_BY_SERVER,      /* our answer or our close frame */
    WSE_BY_ERROR,       /* the peer broke the protocol */
    WSE_BY_TIMEOUT,
};

/* One access line's fields.  The request is shown only when both method
 * and path are non-empty (else `-`); both are the peer's bytes, escaped. */
struct wse_access {
    const struct wse_peer *peer;
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    int status;             /* the HTTP answer (101 for a session); 0: none */
    uint32_t ms;            /* the connection's lifetime */
    uint32_t msgs;          /* data messages echoed */
    uint64_t bytes;         /* their payload bytes */
    uint16_t close_code;    /* the first close frame's code; 0: none */
    uint8_t by;             /* enum wse_access_by */
};

/* The largest line wse_access_format() writes, its NUL included. */
#define WSE_ACCESS_LINE_MAX 640

/*
 * Writes `peer=... request=... status=... time=S.mmm msgs=N bytes=N
 * close=C by=WHO` into out (cap bytes, NUL-terminated, truncated when cap
 * is short of WSE_ACCESS_LINE_MAX).  Returns the length written.
 */
size_t wse_access_format(char *out, size_t cap, const struct wse_access *a);

/* Monotonic milliseconds, wrapping: lifetimes are differences mod 2^32. */
uint32_t wse_access_clock_ms(void);

#endif
