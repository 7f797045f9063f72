/*
 * micro_core.c - throughput of the hot path of the protocol core: frame
 * decoding + unmasking in place + UTF-8 validation (text), as wse_parse()
 * does it for a server, for 64 B, 4 KiB and 1 MiB messages.
 *
 * Each case builds ~64 MiB of masked client frames once and parses it
 * repeatedly for about a second, reporting payload GB/s and ns per message.
 * Text payloads are multilingual UTF-8 with mostly ASCII (the common case);
 * their mask is zero so that the buffer stays valid text from pass to pass:
 * the XOR costs the same whatever the key.  Binary frames use a real key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "msg.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill_text(uint8_t *p, size_t n)
{
    static const char sample[] = "The quick brown fox jumps over the lazy dog; "
                                 "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 "; /* κόσμε */
    size_t i = 0;
    while (i < n) {
        size_t k = sizeof sample - 1;
        if (k > n - i)
            k = n - i;
        memcpy(p + i, sample, k);
        i += k;
    }
    /* Never end inside a multi-byte sequence: pad the tail with ASCII. */
    for (size_t j = n >= 4 ? n - 4 : 0; j < n; j++)
        if (p[j] & 0x80)
            p[j] = '.';
}

static uint8_t *build(size_t msg, size_t count, unsigned opcode, size_t *len)
{
    static const uint8_t key[4] = {0x5a, 0xa5, 0x3c, 0xc3};
    size_t cap = count * (msg + WSE_FRAME_HDR_MAX);
    uint8_t *buf = malloc(cap), *p = buf;

    for (size_t i = 0; i < count; i++) {
        size_t h = wse_frame_write_header(p, true, opcode, msg);
        p[1] |= 0x80;
        if (opcode == WSE_OP_TEXT) {
            memset(p + h, 0, 4);
            fill_text(p + h + 4, msg);
        } else {
            memcpy(p + h, key, 4);
            for (size_t j = 0; j < msg; j++)
                p[h + 4 + j] = (uint8_t)(j * 13);
        }
        p += h + 4 + msg;
    }
    *len = (size_t)(p - buf);
    return buf;
}

static void bench(const char *name, size_t msg, unsigned opcode)
{
    size_t count = (64u << 20) / msg, len;
    uint8_t *buf = build(msg, count, opcode, &len);
    struct wse_parser ps;
    uint64_t msgs = 0, bytes = 0;
    double t0 = now(), t1;

    wse_parser_init(&ps, 16u << 20, 0);
    do {
        size_t pos = 0, used;
        struct wse_event ev;
        while (pos < len) {
            if (wse_parse(&ps, buf + pos, len - pos, &used, &ev) != WSE_OK) {
                fprintf(stderr, "%s: parse failed\n", name);
                exit(1);
            }
            pos += used;
            msgs += ev.last;
        }
        bytes += (uint64_t)count * msg;
        t1 = now();
    } while (t1 - t0 < 1.0);
    printf("%-8s %-7s %8.2f GB/s %10.1f ns/msg %12.0f msgs/s\n", name,
           opcode == WSE_OP_TEXT ? "text" : "binary", (double)bytes / (t1 - t0) / 1e9,
           (t1 - t0) * 1e9 / (double)msgs, (double)msgs / (t1 - t0));
    free(buf);
}

int main(void)
{
    static const struct { const char *name; size_t size; } sizes[] = {
        {"64B", 64}, {"4KiB", 4096}, {"1MiB", 1u << 20},
    };
    printf("core parse path (decode + unmask + UTF-8), one thread\n");
    for (size_t i = 0; i < countof(sizes); i++) {
        bench(sizes[i].name, sizes[i].size, WSE_OP_TEXT);
        bench(sizes[i].name, sizes[i].size, WSE_OP_BINARY);
    }
    return 0;
}
