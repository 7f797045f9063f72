/*
 * transport.h - how a connection's bytes cross the wire (layer 1: sockets,
 * no libev).
 *
 * A connection never calls read(2), write(2) or shutdown(2) itself: it goes
 * through the transport of the listener it came from.  The plain socket is
 * the first one; a TLS transport fits the same four calls (its record layer
 * between the connection's buffers and the socket), so the echo and the
 * parser never see which one carries them.
 *
 * The calls follow the system calls' conventions: a count, 0 at EOF (read),
 * or -1 with errno (EAGAIN/EINTR: try again when the socket is ready).  A
 * transport with state of its own (a TLS session) keeps it per descriptor
 * and drops it in forget(); the plain one has none, so a plain connection
 * costs no memory for its transport and one indirect call per read or
 * batch.
 */
#ifndef WSE_TRANSPORT_H
#define WSE_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

enum wse_want {
    WSE_WANT_READ = 1,          /* the transport needs the socket readable ... */
    WSE_WANT_WRITE = 2,         /* ... or writable, whatever the connection wants */
};

struct wse_transport {
    const char *name;
    /* Reads at most cap bytes into buf. */
    ssize_t (*read)(int fd, void *buf, size_t cap);
    /* Writes the batch iov[0..niov) in order, possibly in part. */
    ssize_t (*writev)(int fd, const struct iovec *iov, int niov);
    /* Ends the sending side once all was written (close_notify + FIN for TLS). */
    int (*shutdown)(int fd);
    /* What the transport itself waits for (a TLS write that needs a read,
     * say), as enum wse_want bits.  NULL: it never waits on its own. */
    unsigned (*wants)(int fd);
    /* The connection is gone: drop any state kept for fd.  NULL: none kept. */
    void (*forget)(int fd);
};

extern const struct wse_transport wse_transport_plain;

#endif
