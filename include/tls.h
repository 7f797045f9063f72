/*
 * tls.h - TLS for wss:// (layer 1: OpenSSL and sockets, no libev).
 *
 * Three parts, used by three kinds of process:
 *
 *  - The context (struct wse_tls): certificates and keys read and checked,
 *    protocol versions, ciphers, ALPN, SNI.  Built by the master, which may
 *    be the only process able to read the key, before any worker of a
 *    generation starts; the workers inherit it at fork.  A reload builds a
 *    new one for the new generation and leaves the old one to the old.
 *
 *  - The ticket keys (struct wse_tls_keys): one shared page, created and
 *    rotated by the master alone (random, never on disk), read by every
 *    worker of every generation in the ticket callback, so a client resumes
 *    on whichever worker it lands.  The current key issues tickets; the
 *    previous one still opens them (and asks for a fresh ticket).
 *
 *  - The transport (wse_transport_tls, transport.h): one SSL per
 *    descriptor, kept in a table indexed by descriptor and made by
 *    wse_tls_attach() after accept.  It reads, writes, shuts down with a
 *    close_notify, and says what the record layer waits for.
 *
 * Errors are written into the caller's buffer, naming the file at fault; no
 * function here logs.
 */
#ifndef WSE_TLS_H
#define WSE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define WSE_TLS_MAX_PAIRS 4     /* certificate/key pairs: RSA + ECDSA, or several names */
#define WSE_TLS_ERR_MAX 512     /* room for an error message naming a file */

struct wse_tls_opts {
    const char *cert[WSE_TLS_MAX_PAIRS];   /* full chain, leaf first, PEM */
    const char *key[WSE_TLS_MAX_PAIRS];    /* its private key, PEM */
    unsigned npairs;
    const char *ciphers;        /* TLS 1.2 cipher list; NULL: OpenSSL's default */
    const char *ciphersuites;   /* TLS 1.3 suites; NULL: OpenSSL's default */
    const char *groups;         /* key exchange groups; NULL: OpenSSL's default */
    unsigned ticket_lifetime;   /* seconds a ticket is good for (the rotation period); 0: none issued */
};

struct wse_tls;
struct wse_tls_keys;

/* ---- ticket keys (master) ---------------------------------------------- */

/* A shared anonymous page with a fresh current and previous key; NULL and
 * err set when memory or randomness fails.  Children forked later read it. */
struct wse_tls_keys *wse_tls_keys_create(char *err, size_t errlen);
/* The previous key is dropped, the current one becomes previous, a new
 * random one current.  Master only; readers never see a torn key. */
int wse_tls_keys_rotate(struct wse_tls_keys *k);
/* How many rotations so far (tests, stats). */
uint64_t wse_tls_keys_serial(const struct wse_tls_keys *k);
/* A worker's view: the page becomes read-only in this process. */
void wse_tls_keys_seal(struct wse_tls_keys *k);
void wse_tls_keys_destroy(struct wse_tls_keys *k);

/* ---- the context (master; inherited by workers) ------------------------ */

/* Reads and checks every pair (loads, chain, key matches, dates) and builds
 * the contexts.  keys may be NULL: then no tickets (full handshakes only).
 * NULL with err naming the file and the reason on any failure. */
struct wse_tls *wse_tls_new(const struct wse_tls_opts *o, struct wse_tls_keys *keys, char *err,
                            size_t errlen);
void wse_tls_free(struct wse_tls *t);

/* ---- the transport (worker) -------------------------------------------- */

/* fd (non-blocking, just accepted) gets a TLS session of t, server side.
 * plain_first: the connection begins with a PROXY header in the clear;
 * reads stay plain until wse_tls_begin().  -1 (ENOMEM/EBADF) on failure. */
int wse_tls_attach(struct wse_tls *t, int fd, bool plain_first);
/* The PROXY header is consumed: TLS starts now.  rest[0..len) are bytes
 * already read behind the header (the start of the ClientHello); the
 * session reads them before the socket.  -1 with ENOMEM. */
int wse_tls_begin(int fd, const void *rest, size_t len);
/* Has fd a session?  Finished its handshake? */
bool wse_tls_is_tls(int fd);
bool wse_tls_established(int fd);
/* Decrypted input the session holds beyond what read() returned: the
 * socket may be quiet, so the caller must read again without waiting. */
bool wse_tls_has_pending(int fd);
/* After a failed read or write (errno EPROTO): why, for the log and the
 * counters ("wrong version number", "http request", ...). */
const char *wse_tls_failure(int fd);
/* "TLSv1.3" once established, else NULL. */
const char *wse_tls_version(int fd);
bool wse_tls_resumed(int fd);

extern const struct wse_transport wse_transport_tls;

#endif
