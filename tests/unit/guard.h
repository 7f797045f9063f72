/*
 * guard.h - for parser tests: input that ends right before a PROT_NONE page,
 * so any read at or past its length crashes at once (picohttpparser's
 * habit).  Header-only: each test binary is one file.
 */
#ifndef WSE_TEST_GUARD_H
#define WSE_TEST_GUARD_H

#include <check.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
    unsigned char *map;
    size_t page;
};

static inline struct guard guard_map(void)
{
    struct guard g = { NULL, (size_t)sysconf(_SC_PAGESIZE) };

    g.map = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(g.map != MAP_FAILED);
    ck_assert_int_eq(mprotect(g.map + g.page, g.page, PROT_NONE), 0);
    return g;
}

/* Copies buf[0..n) so its last byte sits just before the PROT_NONE page. */
static inline void *guard_place(struct guard *g, const void *buf, size_t n)
{
    ck_assert_uint_le(n, g->page);
    unsigned char *at = g->map + g->page - n;
    memcpy(at, buf, n);
    return at;
}

static inline void guard_unmap(struct guard *g)
{
    munmap(g->map, 2 * g->page);
}

#endif
