/*
 * groups.c - slot adoption in a listener group: socket j to worker j mod N.
 */
#include "groups.h"

unsigned wse_group_pick(unsigned slot, unsigned nworkers, unsigned nsockets, unsigned *out,
                        unsigned cap)
{
    unsigned n = 0;

    if (!nworkers)
        return 0;
    for (unsigned j = slot; j < nsockets && n < cap; j += nworkers)
        out[n++] = j;
    return n;
}
