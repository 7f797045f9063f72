/*
 * fuzz_pmdconn.c - libFuzzer target for the deflate transform (pmdconn.h):
 * a compressed message cut into pieces anywhere, paused at the high-water
 * mark anywhere, echoed into a batch.
 *
 * Input: byte 0 picks takeover, text or binary, the prefix, the size below
 * which echoes go uncompressed, and whether the rest is raw compressed data
 * (any bytes) or a message compressed here; byte 1 seeds the split and the
 * pauses; the rest is the data.
 * Oracles beyond the sanitizers:
 *   - a failure's code is 1007, 1009 or 1011 (never a crash, never 1011
 *     for data compressed here);
 *   - a message compressed here comes back as the same bytes (prefix first
 *     for text), in frames a client accepts: RSV1 on the first only, FIN on
 *     the last, inflated by plain zlib; invalid UTF-8 text fails with 1007.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "frame.h"
#include "pmd.h"
#include "pmdconn.h"
#include "utf8.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define MAX_IN 65536
#define MAX_OUT (4u << 20)

static struct wse_batch batch;
static uint8_t wire[MAX_OUT + 65536];
static size_t wire_len;
static uint64_t rng;
static unsigned pause_mask;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void take(void)
{
    for (int i = 0; i < batch.niov; i++) {
        CHECK(wire_len + batch.iov[i].iov_len <= sizeof wire);
        memcpy(wire + wire_len, batch.iov[i].iov_base, batch.iov[i].iov_len);
        wire_len += batch.iov[i].iov_len;
    }
    wse_batch_reset(&batch);
}

static bool do_flush(void *ctx)
{
    (void)ctx;
    take();
    return true;
}

static bool do_over(void *ctx)
{
    (void)ctx;
    return pause_mask && (next_rand() & pause_mask) == 0;
}

static const struct wse_pmdconn_io io = { do_flush, do_over, NULL };

/* Parses the frames in wire[] as a client would; the message, or -1. */
static long client_inflate(uint8_t *out, size_t cap, unsigned opcode, z_stream *zs,
                           bool reset)
{
    static uint8_t pay[MAX_OUT + 8];
    size_t pos = 0, plen = 0;
    bool first = true, fin = false, compressed = false;

    while (!fin) {
        CHECK(pos + 2 <= wire_len);
        uint8_t b0 = wire[pos], b1 = wire[pos + 1];
        uint64_t n = b1 & 0x7F;
        size_t h = 2;
        if (n == 126) {
            n = (uint64_t)wire[pos + 2] << 8 | wire[pos + 3];
            h = 4;
        } else if (n == 127) {
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | wire[pos + 2 + i];
            h = 10;
        }
        CHECK(!(b1 & 0x80));
        CHECK((b0 & 0x0F) == (first ? opcode : WSE_OP_CONT));
        if (first)
            compressed = b0 & WSE_RSV1;
        else
            CHECK(!(b0 & 0x70));
        CHECK(pos + h + n <= wire_len && plen + n <= MAX_OUT);
        memcpy(pay + plen, wire + pos + h, n);
        plen += n;
        pos += h + n;
        fin = b0 & 0x80;
        first = false;
    }
    CHECK(pos == wire_len);
    if (!compressed) {
        CHECK(plen <= cap);
        memcpy(out, pay, plen);
        return (long)plen;
    }
    memcpy(pay + plen, "\x00\x00\xff\xff", 4);
    if (reset)
        inflateReset(zs);
    zs->next_in = pay;
    zs->avail_in = (uInt)(plen + 4);
    zs->next_out = out;
    zs->avail_out = (uInt)cap;
    int rc = inflate(zs, Z_SYNC_FLUSH);
    if (rc == Z_STREAM_END) {
        /* libdeflate's whole echo (no server takeover, 4 KiB or more): one
         * BFINAL block, then the 0x00 whose LEN/NLEN the tail completes
         * (7.2.3.4).  With takeover no echo ends its stream. */
        CHECK(reset && zs->avail_in == 5 && memcmp(zs->next_in, "\x00\x00\x00\xff\xff", 5) == 0);
        return (long)(cap - zs->avail_out);
    }
    CHECK(rc == Z_OK || rc == Z_BUF_ERROR);
    CHECK(zs->avail_in == 0);
    return (long)(cap - zs->avail_out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t comp[MAX_IN * 2 + 64], back[MAX_OUT];
    static struct wse_pmdconn_cfg cfg = {
        .enabled = true, .window_bits = 15, .mem_level = 8, .level = 1,
        .safari_guard = true, .max_message = MAX_OUT, .max_inflating = 16,
    };
    static const char prefix[] = "You said: ";

    if (size < 2 || size > MAX_IN + 2)
        return 0;
    uint8_t mode = data[0];
    bool takeover = mode & 1, text = mode & 2, with_prefix = mode & 4, raw = mode & 8;
    rng = 0x9E3779B97F4A7C15ull ^ data[1];
    pause_mask = (mode >> 4) & 3 ? (1u << ((mode >> 4) & 3)) - 1 : 0;
    cfg.min_size = (mode & 64) ? 100 : 0;
    cfg.server_takeover = cfg.client_takeover = takeover;
    CHECK(wse_pmdconn_setup(&cfg) == WSE_OK);
    data += 2;
    size -= 2;

    /* The connection, through the real negotiation. */
    static const char offer[] = "permessage-deflate; client_max_window_bits";
    struct wse_http_req req;
    char hdr[WSE_PMD_RESPONSE_MAX];
    size_t hdr_len;
    memset(&req, 0, sizeof req);
    req.extensions[0] = (struct wse_span){ 0, sizeof offer - 1 };
    req.n_extensions = 1;
    struct wse_pmdconn *pc = wse_pmdconn_negotiate(&req, offer, hdr, &hdr_len, NULL);
    CHECK(pc && hdr_len);

    z_stream cz = {0}, dz = {0};
    CHECK(deflateInit2(&cz, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    CHECK(inflateInit2(&dz, -15) == Z_OK);

    /* Two messages in a row, so takeover state carries over. */
    for (int m = 0; m < 2; m++) {
        const uint8_t *c = data;
        size_t cn = size;
        if (!raw) {
            if (!takeover)
                deflateReset(&cz);
            cz.next_in = (Bytef *)(uintptr_t)data;
            cz.avail_in = (uInt)size;
            cz.next_out = comp;
            cz.avail_out = sizeof comp;
            int zrc = deflate(&cz, Z_SYNC_FLUSH);
            /* Nothing to flush (an empty message after one): an empty payload. */
            CHECK(zrc == Z_OK || (zrc == Z_BUF_ERROR && !size));
            cn = zrc == Z_OK ? sizeof comp - cz.avail_out - 4 : 0;
            c = comp;
        }
        wire_len = 0;
        wse_batch_reset(&batch);
        unsigned code = 0;
        size_t pos = 0;
        do {
            size_t k = cn - pos;
            if (k && (next_rand() & 3))
                k = next_rand() % k + 1;
            /* Each piece in an allocation of its own: reads past it show. */
            uint8_t *piece = malloc(k ? k : 1);
            memcpy(piece, c + pos, k);
            struct wse_event ev = {
                .kind = WSE_EV_DATA, .opcode = text ? WSE_OP_TEXT : WSE_OP_BINARY,
                .first = pos == 0, .last = pos + k == cn, .frame_start = true,
                .compressed = true, .data = piece, .len = k,
            };
            struct wse_pmdconn_counts n;
            code = wse_pmdconn_data(pc, &batch, &ev, with_prefix ? prefix : NULL,
                                    with_prefix ? sizeof prefix - 1 : 0, &io, &n);
            while (code == WSE_PMDCONN_PAUSED) {
                take();
                code = wse_pmdconn_resume(pc, &batch, &io, &n);
            }
            take();
            free(piece);
            pos += k;
        } while (!code && pos < cn);
        if (raw) {
            CHECK(code == 0 || code == WSE_CLOSE_BAD_DATA || code == WSE_CLOSE_TOO_BIG);
            if (code)
                break;
            continue;
        }
        bool utf8_ok = wse_utf8_valid(data, size) == WSE_OK;
        if (text && !utf8_ok) {
            CHECK(code == WSE_CLOSE_BAD_DATA);
            break;
        }
        CHECK(code == 0);
        long got = client_inflate(back, sizeof back, text ? WSE_OP_TEXT : WSE_OP_BINARY, &dz,
                                  !takeover);
        size_t plen = text && with_prefix ? sizeof prefix - 1 : 0;
        CHECK(got >= 0 && (size_t)got == plen + size);
        CHECK(memcmp(back, prefix, plen) == 0);
        CHECK(memcmp(back + plen, data, size) == 0);
    }
    wse_pmdconn_free(pc);
    deflateEnd(&cz);
    inflateEnd(&dz);
    return 0;
}
