/* common.c - the few helpers every module shares. */
#include <stdio.h>
#include <string.h>

#include "common.h"

static inline unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

int wse_ascii_casecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = ascii_lower((unsigned char)a[i]);
        unsigned char cb = ascii_lower((unsigned char)b[i]);
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return 0;
}

void wse_out_put(struct wse_out *o, const void *p, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

void wse_human(char out[WSE_HUMAN_MAX], double v)
{
    static const char units[] = "KMGTPE";

    if (!(v >= 0)) {
        snprintf(out, WSE_HUMAN_MAX, "?");
        return;
    }
    if (v < 999.5) {
        snprintf(out, WSE_HUMAN_MAX, "%.0f", v);
        return;
    }
    /*
     * The thresholds are where printf's rounding would add a digit ("9.995"
     * prints "10.00"): past each one the next, shorter form is taken.
     */
    for (int u = 0; units[u]; u++) {
        v /= 1000;
        if (v < 9.995) {
            snprintf(out, WSE_HUMAN_MAX, "%.2f%c", v, units[u]);
            return;
        }
        if (v < 99.95) {
            snprintf(out, WSE_HUMAN_MAX, "%.1f%c", v, units[u]);
            return;
        }
        if (v < 999.5) {
            snprintf(out, WSE_HUMAN_MAX, "%.0f%c", v, units[u]);
            return;
        }
    }
    snprintf(out, WSE_HUMAN_MAX, "?");
}
