/*
 * micro_deflate.c - zlib against libdeflate for permessage-deflate without
 * context takeover: one whole message compressed or decompressed per call,
 * for 64 B of JSON-like text, 4 KiB and 64 KiB of text.
 *
 * zlib runs as pmdz does (raw deflate, deflateReset per message, Z_SYNC_FLUSH,
 * the 00 00 ff ff tail dropped; inflateReset, the tail appended).  libdeflate
 * has no streaming: it compresses a whole buffer into one BFINAL block, to
 * which one 0x00 byte is added so the receiver's tail completes an empty
 * stored block after it (RFC 7692 7.2.3.4); it decompresses a whole message
 * given the payload, the tail and a final empty stored block, into a buffer
 * as large as the message may be.  Levels 1 and 6 for both (zlib's default
 * is 6; libdeflate's levels are not the same algorithm, so the sizes are
 * printed too), and zlib's memLevel 8 (its default) and 1: deflateReset
 * clears the hash heads, 2^(memLevel+8) bytes, on every message.
 *
 * Each cell runs about 0.2 s, five times; the median ns per message is
 * printed with MB/s of uncompressed text and the compressed size.
 *   build/bench/micro_deflate [seconds-per-run]
 */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define RUNS 5

static double secs = 0.2;
static int mem_level = 8;     /* zlib's: deflateReset clears 2^(ml+8) bytes of hash heads */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* English-like text from a small vocabulary (a chat or log line's entropy). */
static void fill_text(unsigned char *p, size_t n, unsigned seed)
{
    static const char *const words[] = {
        "the", "server", "message", "echo", "of", "and", "a", "to", "in", "is", "that",
        "connection", "client", "frame", "data", "window", "compression", "for", "with",
        "on", "user", "time", "value", "error", "request", "response", "status", "ok",
    };
    size_t i = 0;
    while (i < n) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % (sizeof words / sizeof *words)];
        while (*w && i < n)
            p[i++] = (unsigned char)*w++;
        if (i < n)
            p[i++] = (seed >> 8) % 11 == 0 ? '.' : ' ';
    }
}

static size_t fill_json(unsigned char *p, size_t cap)
{
    int n = snprintf((char *)p, cap, "{\"id\":48213,\"type\":\"chat\",\"user\":\"ada\",\"text\":\"hi!\"}");
    return (size_t)n;
}

typedef size_t (*op_fn)(void *ctx, const unsigned char *in, size_t n, unsigned char *out,
                        size_t cap);

struct zctx {
    z_stream z;
};

static size_t zlib_compress(void *ctx, const unsigned char *in, size_t n, unsigned char *out,
                            size_t cap)
{
    z_stream *z = &((struct zctx *)ctx)->z;
    deflateReset(z);
    z->next_in = (unsigned char *)in;
    z->avail_in = (unsigned)n;
    z->next_out = out;
    z->avail_out = (unsigned)cap;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_out == 0)
        abort();
    return cap - z->avail_out - 4;
}

static size_t zlib_decompress(void *ctx, const unsigned char *in, size_t n, unsigned char *out,
                              size_t cap)
{
    z_stream *z = &((struct zctx *)ctx)->z;
    inflateReset(z);
    z->next_in = (unsigned char *)in;   /* the caller placed the tail after it */
    z->avail_in = (unsigned)n + 4;
    z->next_out = out;
    z->avail_out = (unsigned)cap;
    int rc = inflate(z, Z_SYNC_FLUSH);
    /* A BFINAL block (libdeflate's) ends the stream before the tail. */
    if (rc != Z_STREAM_END && ((rc != Z_OK && rc != Z_BUF_ERROR) || z->avail_in))
        abort();
    return cap - z->avail_out;
}

static size_t ld_compress(void *ctx, const unsigned char *in, size_t n, unsigned char *out,
                          size_t cap)
{
    size_t k = libdeflate_deflate_compress(ctx, in, n, out, cap - 1);
    if (!k)
        abort();
    out[k] = 0x00;      /* 7.2.3.4: the receiver's tail completes a stored block */
    return k + 1;
}

static size_t ld_decompress(void *ctx, const unsigned char *in, size_t n, unsigned char *out,
                            size_t cap)
{
    size_t got = 0;
    /* in[n..n+9): the tail, then a final empty stored block. */
    if (libdeflate_deflate_decompress(ctx, in, n + 9, out, cap, &got) != LIBDEFLATE_SUCCESS)
        abort();
    return got;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median ns per call over RUNS runs of about `secs` each. */
static double measure(op_fn f, void *ctx, const unsigned char *in, size_t n, unsigned char *out,
                      size_t cap)
{
    double r[RUNS];
    size_t iters = 1;
    double t0 = now();
    /* calibrate */
    for (;;) {
        t0 = now();
        for (size_t i = 0; i < iters; i++)
            f(ctx, in, n, out, cap);
        if (now() - t0 > secs / 10)
            break;
        iters *= 2;
    }
    iters = (size_t)((double)iters * (secs / (now() - t0 + 1e-9)) * 0.1) * 10 + 1;
    for (int k = 0; k < RUNS; k++) {
        t0 = now();
        for (size_t i = 0; i < iters; i++)
            f(ctx, in, n, out, cap);
        r[k] = (now() - t0) * 1e9 / (double)iters;
    }
    qsort(r, RUNS, sizeof *r, cmp_double);
    return r[RUNS / 2];
}

static void cell(const char *name, const unsigned char *msg, size_t n, int level)
{
    static const unsigned char tail[9] = { 0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff };
    size_t cap = n * 2 + 1024;
    unsigned char *zc = malloc(cap + 16), *lc = malloc(cap + 16), *out = malloc(cap);
    struct zctx zd = { 0 }, zi = { 0 };

    if (deflateInit2(&zd.z, level, Z_DEFLATED, -15, mem_level, Z_DEFAULT_STRATEGY) != Z_OK ||
        inflateInit2(&zi.z, -15) != Z_OK)
        abort();
    struct libdeflate_compressor *lcomp = libdeflate_alloc_compressor(level);
    struct libdeflate_decompressor *ldec = libdeflate_alloc_decompressor();

    size_t zn = zlib_compress(&zd, msg, n, zc, cap);
    size_t ln = ld_compress(lcomp, msg, n, lc, cap);
    memcpy(zc + zn, tail, sizeof tail);
    memcpy(lc + ln, tail, sizeof tail);
    /* Both decode both (the same wire), and give the message back. */
    if (zlib_decompress(&zi, lc, ln, out, cap) != n || memcmp(out, msg, n) ||
        ld_decompress(ldec, zc, zn, out, cap) != n || memcmp(out, msg, n))
        abort();

    double zc_ns = measure(zlib_compress, &zd, msg, n, out, cap);
    double lc_ns = measure(ld_compress, lcomp, msg, n, out, cap);
    double zd_ns = measure(zlib_decompress, &zi, zc, zn, out, cap);
    double ld_ns = measure(ld_decompress, ldec, zc, zn, out, cap);
    printf("%-8s L%d m%d compress   zlib %9.0f ns %7.1f MB/s %6zu B | libdeflate %9.0f ns %7.1f MB/s "
           "%6zu B | x%.2f\n",
           name, level, mem_level, zc_ns, (double)n * 1e3 / zc_ns, zn, lc_ns, (double)n * 1e3 / lc_ns, ln,
           zc_ns / lc_ns);
    printf("%-8s L%d m%d decompress zlib %9.0f ns %7.1f MB/s          | libdeflate %9.0f ns %7.1f "
           "MB/s          | x%.2f\n",
           name, level, mem_level, zd_ns, (double)n * 1e3 / zd_ns, ld_ns, (double)n * 1e3 / ld_ns,
           zd_ns / ld_ns);
    deflateEnd(&zd.z);
    inflateEnd(&zi.z);
    libdeflate_free_compressor(lcomp);
    libdeflate_free_decompressor(ldec);
    free(zc);
    free(lc);
    free(out);
}

int main(int argc, char **argv)
{
    static unsigned char json[128], t4[4096], t64[65536];
    size_t jn = fill_json(json, sizeof json);

    if (argc > 1)
        secs = atof(argv[1]);
    fill_text(t4, sizeof t4, 1);
    fill_text(t64, sizeof t64, 2);
    printf("permessage-deflate, no context takeover, whole messages (zlib %s)\n", zlibVersion());
    for (mem_level = 8; mem_level >= 1; mem_level -= 7) {
        for (int level = 1; level <= 6; level += 5) {
            cell("json64", json, jn, level);
            cell("text4k", t4, sizeof t4, level);
            cell("text64k", t64, sizeof t64, level);
        }
    }
    return 0;
}
