/*
 * priv.c - resolving --user/--group, and dropping to them in a child.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "priv.h"

/* A decimal id that is not -1 (the "no change" value of setresuid). */
static bool parse_id(const char *s, unsigned long *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v >= (unsigned long)UINT32_MAX)
        return false;
    *out = v;
    return true;
}

int wse_priv_resolve(const char *user, const char *group, struct wse_cred *out, char *err,
                     size_t errlen)
{
    struct wse_cred c = {.set = false};
    unsigned long id;
    bool have_gid = false;

    if (!user[0]) {
        if (group[0]) {
            snprintf(err, errlen, "group '%s' given without user: give --user too", group);
            return -1;
        }
        *out = c;
        return 0;
    }
    /* A name first: a user may be called "1000"; only then a number. */
    errno = 0;
    const struct passwd *pw = getpwnam(user);
    if (!pw && parse_id(user, &id)) {
        c.uid = (uid_t)id;
        pw = getpwuid(c.uid);     /* for its login group, if it has an entry */
        if (pw) {
            c.gid = pw->pw_gid;
            have_gid = true;
        }
    } else if (pw) {
        c.uid = pw->pw_uid;
        c.gid = pw->pw_gid;
        have_gid = true;
    } else {
        snprintf(err, errlen, "user '%s' not found%s%s", user, errno ? ": " : "",
                 errno ? strerror(errno) : "");
        return -1;
    }
    if (group[0]) {
        errno = 0;
        const struct group *gr = getgrnam(group);
        if (gr) {
            c.gid = gr->gr_gid;
        } else if (parse_id(group, &id)) {
            c.gid = (gid_t)id;
        } else {
            snprintf(err, errlen, "group '%s' not found%s%s", group, errno ? ": " : "",
                     errno ? strerror(errno) : "");
            return -1;
        }
    } else if (!have_gid) {
        snprintf(err, errlen, "user %s has no passwd entry, so no login group: give --group",
                 user);
        return -1;
    }
    c.set = true;
    *out = c;
    return 0;
}

int wse_priv_check(const struct wse_cred *c, char *err, size_t errlen)
{
    if (!c->set || geteuid() == 0)
        return 0;
    if (c->uid == geteuid() && c->gid == getegid())
        return 0;
    snprintf(err, errlen, "user %u group %u: switching to them needs a master started as root "
             "(this one runs as user %u group %u); leave --user out, or give its own user and "
             "group", (unsigned)c->uid, (unsigned)c->gid, (unsigned)geteuid(),
             (unsigned)getegid());
    return -1;
}

/* Every id of the three (real, effective, saved) is the wanted one. */
static bool ids_are(uid_t uid, gid_t gid)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    return getresuid(&ru, &eu, &su) == 0 && getresgid(&rg, &eg, &sg) == 0 && ru == uid &&
           eu == uid && su == uid && rg == gid && eg == gid && sg == gid;
}

int wse_priv_drop(const struct wse_cred *c, char *err, size_t errlen)
{
    if (!c->set)
        return 0;
    if (geteuid() == 0) {
        /* Groups first: after setresuid the process may no longer change them.
         * Only the one group: root's supplementary groups (disk, adm...) must
         * not follow, nor the user's others from /etc/group. */
        if (setgroups(1, &c->gid) < 0) {
            snprintf(err, errlen, "setgroups(%u) failed: %s", (unsigned)c->gid, strerror(errno));
            return -1;
        }
        if (setresgid(c->gid, c->gid, c->gid) < 0) {
            snprintf(err, errlen, "setresgid(%u) failed: %s", (unsigned)c->gid, strerror(errno));
            return -1;
        }
        if (setresuid(c->uid, c->uid, c->uid) < 0) {
            snprintf(err, errlen, "setresuid(%u) failed: %s", (unsigned)c->uid, strerror(errno));
            return -1;
        }
    }
    if (!ids_are(c->uid, c->gid)) {
        snprintf(err, errlen, "running as user %u group %u, not %u:%u", (unsigned)geteuid(),
                 (unsigned)getegid(), (unsigned)c->uid, (unsigned)c->gid);
        return -1;
    }
    /* The point of it all: root must be out of reach for good. */
    if (c->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, errlen, "root could be regained after switching to user %u",
                 (unsigned)c->uid);
        return -1;
    }
    return 0;
}
