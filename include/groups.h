/*
 * groups.h - which of a listener group's sockets a worker watches (layer 1,
 * pure: the master's arithmetic, apart so it can be tested).
 *
 * Each listening address has a group of SO_REUSEPORT sockets, one per
 * worker slot the address ever had; the kernel keeps hashing connections to
 * every socket of a group, so none may be left unwatched.  When the worker
 * count shrinks below the group's size, the sockets of the vanished slots
 * are adopted: socket j is watched by worker j mod N.  Every socket has
 * exactly one watcher, and slot k keeps its own socket k.
 */
#ifndef WSE_GROUPS_H
#define WSE_GROUPS_H

/*
 * The indexes (into a group of nsockets) that worker `slot` of `nworkers`
 * watches, in increasing order, at most cap of them: slot, slot + nworkers,
 * ...  Returns how many were written to out.  None when nworkers is 0.
 */
unsigned wse_group_pick(unsigned slot, unsigned nworkers, unsigned nsockets, unsigned *out,
                        unsigned cap);

#endif
