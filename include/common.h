/*
 * common.h - return codes and small macros shared by every wsechod module.
 *
 * Return-code convention (nginx's NGX_OK / NGX_AGAIN / NGX_ERROR, made
 * explicit): every incremental function of the protocol core returns one of
 *
 *   WSE_OK     the step finished; its results are in the caller's struct.
 *   WSE_AGAIN  the input ended before the step could finish.  Nothing after
 *              the reported "used" count was consumed: call again with the
 *              same unconsumed bytes followed by more input.
 *   WSE_FAIL   the peer broke the protocol.  The struct names the answer the
 *              RFC asks for (an HTTP status or a WebSocket close code); the
 *              caller sends it and stops feeding this peer.
 *
 * The core never closes, logs or allocates: codes flow up, decisions are
 * made above (see ARCHITECTURE.md).
 */
#ifndef WSE_COMMON_H
#define WSE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

enum wse_rc {
    WSE_OK = 0,
    WSE_AGAIN = -1,
    WSE_FAIL = -2,
};

#define countof(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define WSE_UNUSED __attribute__((unused))

#define WSE_STR_MAX 256     /* longest path, prefix, origin, file name, address text */

/*
 * A bounded appender for responses written into a caller's buffer: it
 * writes what fits and remembers whether anything did not, so a writer can
 * append freely and check once at the end.
 */
struct wse_out {
    char *buf;
    size_t cap, len;
    bool overflow;
};

void wse_out_put(struct wse_out *o, const void *p, size_t n);

static inline void wse_out_str(struct wse_out *o, const char *s)
{
    wse_out_put(o, s, strlen(s));
}

/* Strings compare equal ignoring ASCII case; n bytes of each. */
int wse_ascii_casecmp(const char *a, const char *b, size_t n);

/* The noun for a count: wse_plural(n, "worker", "workers"), "1 worker", "0 workers". */
static inline const char *wse_plural(unsigned long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/*
 * A count or a rate for a column, like top(1): at most 5 characters and 3
 * significant digits: "0", "999", "1.00K", "12.3K", "999K", "1.42M", ... up
 * to "18.4E" (2^64).  Fractions below 1000 are rounded ("0", "3").
 * Negative, NaN and values past 999E read "?".  out has WSE_HUMAN_MAX bytes.
 */
#define WSE_HUMAN_MAX 8
void wse_human(char out[WSE_HUMAN_MAX], double v);

#endif
