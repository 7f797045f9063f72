/*
 * priv.h - the user and group the workers and the metrics process run as
 * (--user, --group), and dropping to them in a freshly forked child.
 *
 * The master keeps its credentials (root, typically): it binds, opens the
 * logs, the pid file and the statistics segment.  Each child it forks
 * drops to the configured user before it reads anything a peer sent:
 * supplementary groups set to exactly the configured group, then the
 * group, then the user (real, effective and saved ids alike), then
 * checked, including that root cannot be regained.
 */
#ifndef WSE_PRIV_H
#define WSE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What --user/--group resolved to. */
struct wse_cred {
    bool set;       /* --user given: the children run as uid:gid */
    uid_t uid;
    gid_t gid;
};

/*
 * Resolves user (a name, or a number when no such name exists) and group
 * (the same; "" = the user's login group) into *out.  user "" leaves
 * out->set false.  0, or -1 with a message in err naming what was not found,
 * e.g. "user 'nobdy' not found".
 */
int wse_priv_resolve(const char *user, const char *group, struct wse_cred *out, char *err,
                     size_t errlen);

/*
 * For the master, before forking: can this process's children switch to c?
 * Yes when it runs as root, or already as exactly c's user and group (then
 * nothing changes).  0, or -1 with the reason in err.
 */
int wse_priv_check(const struct wse_cred *c, char *err, size_t errlen);

/*
 * In a child: become c (nothing to do when !c->set).  0, or -1 with the
 * reason in err; the caller must then exit without serving.  Dropping
 * credentials clears the parent-death signal (prctl(2)): the caller sets
 * it again afterwards.
 */
int wse_priv_drop(const struct wse_cred *c, char *err, size_t errlen);

#endif
