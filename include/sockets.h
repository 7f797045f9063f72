/*
 * sockets.h - listening sockets that outlive a master: handed to a new
 * binary (live upgrade), passed by systemd (socket activation), or kept in
 * systemd's file descriptor store across a crash or restart.  All three
 * arrive the same way, as sd_listen_fds(3) does it: descriptors 3, 4, ...
 * with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, and each is named by what
 * it serves: "wsechod.listen.SLOT.PORT.HOST" (HOST with ':' written as
 * '.', since LISTEN_FDNAMES separates with ':'), "wsechod.tls.SLOT.PORT.HOST"
 * for a --tls-listen socket, or
 * "wsechod.metrics.PORT.HOST".  A socket of another name (systemd's
 * default is the socket unit's name) is matched by its address only, and
 * so is a named one: a socket serves whatever the configuration says of
 * its address (a port serves one protocol), the kind in a name is what it
 * served.
 * The address is always the socket's own (getsockname): a name is never
 * trusted for it.
 */
#ifndef WSE_SOCKETS_H
#define WSE_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"      /* struct wse_listen */

#define WSE_SOCK_UNNAMED (-1)   /* slot of a socket passed without our name */
#define WSE_SOCK_METRICS (-2)   /* the --metrics-listen socket */
#define WSE_SOCK_NAME_MAX (WSE_STR_MAX + 48)   /* real names are under 80 bytes */

struct wse_passed {
    int fd;                     /* -1 once taken or closed */
    int slot;                   /* listener slot, WSE_SOCK_UNNAMED or WSE_SOCK_METRICS */
    bool reuseport;             /* SO_REUSEPORT is set (per-slot siblings can bind) */
    struct wse_listen addr;     /* from getsockname; text is "HOST:PORT" / "[HOST]:PORT" */
};

struct wse_passed_set {
    struct wse_passed *s;
    unsigned n;
};

/*
 * The sockets passed to this process (LISTEN_PID must be ours), checked:
 * each must be a listening TCP socket (SOCK_STREAM, SO_ACCEPTCONN, IPv4 or
 * IPv6).  They are made non-blocking and close-on-exec, and the LISTEN_*
 * variables are removed so that no child sees them.  None passed: an empty
 * set.  0, or -1 with the reason in err (the caller should not start).
 */
int wse_sockets_inherit(struct wse_passed_set *set, char *err, size_t errlen);

/*
 * Takes the passed socket for slot of addr (a named one, or for want_any,
 * an unnamed one of that address); the set forgets it.  The fd, or -1.
 */
int wse_sockets_take(struct wse_passed_set *set, const struct wse_listen *addr, int slot,
                     bool want_any, bool *reuseport);

/* One more than the highest slot passed for addr (0 if none). */
unsigned wse_sockets_slots(const struct wse_passed_set *set, const struct wse_listen *addr);

/* Closes what nobody took; returns how many, their addresses in list (truncated). */
unsigned wse_sockets_close_rest(struct wse_passed_set *set, char *list, size_t n);

void wse_sockets_free(struct wse_passed_set *set);

/* The name a socket of addr and slot (or WSE_SOCK_METRICS) travels under. */
void wse_sockets_name(char *out, size_t n, const struct wse_listen *addr, int slot);

/*
 * Is addr free of other listeners?  Binds a probe socket without
 * SO_REUSEPORT (so it collides with any socket listening there, whoever's),
 * then closes it.  0, or -1 with "address ... in use by another process"
 * (or the bind error) in err.
 */
int wse_sockets_probe_free(const struct wse_listen *addr, char *err, size_t errlen);

/*
 * In a child about to exec: moves fds[0..n-1] to 3..n+2 and extra[] right
 * after them (extra[i] becomes n+3+i), none close-on-exec, and sets
 * LISTEN_PID (this process), LISTEN_FDS=n and LISTEN_FDNAMES.  0, or -1.
 */
int wse_sockets_export(const int *fds, char (*names)[WSE_SOCK_NAME_MAX], unsigned n, int *extra,
                       unsigned nextra);

/*
 * Under systemd with FileDescriptorStoreMax= (it sets $FDSTORE): hands fd to
 * the store under name (FDSTORE=1, FDNAME=, SCM_RIGHTS), or removes that
 * name from it (fd < 0: FDSTOREREMOVE=1).  Does nothing otherwise.
 */
void wse_sockets_store(int fd, const char *name);

/* $FDSTORE is set and positive: a store will keep what we send. */
bool wse_sockets_store_enabled(void);

#endif
