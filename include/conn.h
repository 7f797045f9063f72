/*
 * conn.h - WebSocket connections of one worker.
 *
 * A connection is driven by libev (one ev_io) and feeds its bytes to the
 * protocol core: http -> handshake -> msg (frames, UTF-8, limits).  It turns
 * what the core decides into actions: echo, pong, close, log.  It is the
 * only module that calls both libev and the core (ARCHITECTURE.md).
 *
 * Memory follows activity: the worker has one read buffer shared by all its
 * connections; a connection allocates only while it holds a half-received
 * handshake (a buffer grown with what arrived, under a worker-wide budget),
 * a partial frame header or control frame (<= 131 bytes), output the peer
 * has not taken yet (at most the high-water mark plus one echo), or the
 * unparsed rest of the read that passed that mark.  An idle open connection
 * is its struct.
 */
#ifndef WSE_CONN_H
#define WSE_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

#include <ev.h>

#include "config.h"

struct wse_stats_slot;

/* The close code of a stop (RFC 6455 7.4.1 "going away"), for callers
 * outside the protocol layer. */
#define WSE_CONN_GOING_AWAY 1001

/* Sets up the worker-wide state (read buffer, timeout lists); counts into stats.
 * 0; -1 out of memory; WSE_CONN_SETUP_FATAL when the configuration cannot
 * be served by this process (logged; respawning would not help). */
#define WSE_CONN_SETUP_FATAL (-2)
int wse_conn_setup(struct ev_loop *loop, const struct wse_config *cfg,
                   struct wse_stats_slot *stats);

struct wse_iplimit;

/* The table counting connections per client address, and this process's holder in it. */
void wse_conn_iplimit(struct wse_iplimit *table, unsigned holder);

struct wse_tls;

/* The TLS contexts connections of a --tls-listen address use (inherited
 * from the master; NULL when there is none). */
void wse_conn_tls(struct wse_tls *tls);

/* Takes over an accepted, non-blocking socket; tls: it came from a
 * --tls-listen address (TLS first, after a PROXY header if configured). */
void wse_conn_accepted(int fd, const struct sockaddr_storage *peer, bool tls);

/*
 * Over --max-connections: answers an accepted socket 503 at once (never
 * blocking), closes it, and counts and logs it (rate-limited, and its access
 * line) without it becoming a connection.
 */
void wse_conn_refuse_busy(int fd, const struct sockaddr_storage *peer, bool tls);

/* Open connections (any state). */
unsigned wse_conn_count(void);

/* /healthz answers 503 from now on. */
void wse_conn_set_draining(void);

/*
 * Starts closing every connection: open ones get a close frame with code and
 * are dropped after the close timeout at most; half-done handshakes are
 * dropped at once.
 */
void wse_conn_close_all(uint16_t code, const char *reason);

/*
 * Starts closing at most n open connections (for spreading a drain's
 * closes over time); returns how many.  0 means none is left open.
 */
unsigned wse_conn_close_some(unsigned n, uint16_t code, const char *reason);

/* Size of struct conn, for the memory figures in logs and docs. */
size_t wse_conn_struct_size(void);

#endif
