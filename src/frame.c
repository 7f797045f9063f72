/*
 * frame.c - one RFC 6455 frame on the wire (section 5.2).
 */
#include <string.h>

#include "common.h"
#include "frame.h"

/* Checks the first byte on its own, so a bad frame fails at its first byte. */
static int check_byte0(uint8_t b0, unsigned rsv_allowed, uint16_t *code)
{
    unsigned opcode = b0 & 0x0F;

    if ((b0 & 0x70 & ~rsv_allowed) != 0)
        goto fail;
    switch (opcode) {
    case WSE_OP_CONT: case WSE_OP_TEXT: case WSE_OP_BINARY:
        return WSE_OK;
    case WSE_OP_CLOSE: case WSE_OP_PING: case WSE_OP_PONG:
        /* Control frames must not be fragmented (section 5.5). */
        if (!(b0 & 0x80))
            goto fail;
        return WSE_OK;
    default:
        goto fail;      /* 3-7 and 11-15 are reserved */
    }
fail:
    *code = WSE_CLOSE_PROTOCOL;
    return WSE_FAIL;
}

static int check_byte1(uint8_t b0, uint8_t b1, uint16_t *code)
{
    /* Section 5.1: a server MUST close on an unmasked client frame. */
    if (!(b1 & 0x80) || (wse_opcode_is_control(b0 & 0x0F) && (b1 & 0x7F) > WSE_CONTROL_MAX)) {
        *code = WSE_CLOSE_PROTOCOL;
        return WSE_FAIL;
    }
    return WSE_OK;
}

static uint64_t read_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int wse_frame_decode(struct wse_frame *f, const uint8_t *p, size_t n,
                     unsigned rsv_allowed, uint16_t *code)
{
    if (n < 1)
        return WSE_AGAIN;
    if (check_byte0(p[0], rsv_allowed, code) != WSE_OK)
        return WSE_FAIL;
    if (n < 2)
        return WSE_AGAIN;
    if (check_byte1(p[0], p[1], code) != WSE_OK)
        return WSE_FAIL;

    unsigned len7 = p[1] & 0x7F;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;

    /* The most significant bit of a 64-bit length must be 0 (section 5.2). */
    if (ext == 8 && n >= 3 && (p[2] & 0x80)) {
        *code = WSE_CLOSE_PROTOCOL;
        return WSE_FAIL;
    }
    if (n < 2 + ext + 4)
        return WSE_AGAIN;

    uint64_t len = ext ? read_be(p + 2, ext) : len7;
    /* "The minimal number of bytes MUST be used to encode the length." */
    if ((ext == 2 && len < 126) || (ext == 8 && len <= 0xFFFF)) {
        *code = WSE_CLOSE_PROTOCOL;
        return WSE_FAIL;
    }

    f->fin = p[0] >> 7;
    f->rsv = p[0] & 0x70;
    f->opcode = p[0] & 0x0F;
    f->len = len;
    memcpy(f->mask, p + 2 + ext, 4);
    f->hdr_len = (uint8_t)(2 + ext + 4);
    return WSE_OK;
}

/*
 * Sixteen bytes at a time through GCC/clang vector types (SSE2 on x86-64,
 * NEON on arm64); memcpy loads and stores keep any alignment legal and
 * compile to plain unaligned moves.
 */
typedef uint8_t wse_v16 __attribute__((vector_size(16)));

unsigned wse_unmask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned pos)
{
    uint8_t key[16];
    uint32_t k32;
    size_t i = 0;

    /* key[j] is the mask byte for p[j]: the mask rotated by pos, repeated.
     * Built with word moves, not a byte loop: for the many small frames of
     * a pipelined stream this setup is most of the call. */
    uint8_t rot[8];
    memcpy(rot, mask, 4);
    memcpy(rot + 4, mask, 4);
    memcpy(&k32, rot + (pos & 3), 4);
    if (n < 16) {
        for (; i < n; i++)
            p[i] ^= rot[(pos + i) & 3];
        return (unsigned)((pos + n) & 3);
    }
    for (unsigned j = 0; j < sizeof key; j += 4)
        memcpy(key + j, &k32, 4);

    wse_v16 k, a, b;
    memcpy(&k, key, 16);
    for (; i + 32 <= n; i += 32) {
        memcpy(&a, p + i, 16);
        memcpy(&b, p + i + 16, 16);
        a ^= k;
        b ^= k;
        memcpy(p + i, &a, 16);
        memcpy(p + i + 16, &b, 16);
    }
    for (; i + 16 <= n; i += 16) {
        memcpy(&a, p + i, 16);
        a ^= k;
        memcpy(p + i, &a, 16);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];     /* i is a multiple of 16 here, so i&3 stays in step */
    return (unsigned)((pos + n) & 3);
}

size_t wse_frame_write_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t wse_close_write(uint8_t *out, uint16_t code, const char *reason, size_t reason_len)
{
    if (reason_len > WSE_CONTROL_MAX - 2)
        reason_len = WSE_CONTROL_MAX - 2;
    size_t h = wse_frame_write_header(out, true, WSE_OP_CLOSE, 2 + reason_len);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (reason_len)
        memcpy(out + h + 2, reason, reason_len);
    return h + 2 + reason_len;
}
