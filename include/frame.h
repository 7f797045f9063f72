/*
 * frame.h - the RFC 6455 wire format of one frame (section 5.2): header
 * decoding, unmasking, and writing server (unmasked) frame headers.
 *
 * Message rules (fragmentation, UTF-8, size limit) live in msg.h.
 */
#ifndef WSE_FRAME_H
#define WSE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wse_opcode {
    WSE_OP_CONT = 0x0,
    WSE_OP_TEXT = 0x1,
    WSE_OP_BINARY = 0x2,
    WSE_OP_CLOSE = 0x8,
    WSE_OP_PING = 0x9,
    WSE_OP_PONG = 0xA,
};

#define WSE_RSV1 0x40
#define WSE_RSV2 0x20
#define WSE_RSV3 0x10

#define WSE_FRAME_HDR_MAX 14       /* 2 + 8 (64-bit length) + 4 (mask) */
#define WSE_SERVER_HDR_MAX 10      /* server frames carry no mask */
#define WSE_CONTROL_MAX 125        /* largest control frame payload */

/* Close codes the server sends (RFC 6455 section 7.4.1). */
enum wse_close_code {
    WSE_CLOSE_NORMAL = 1000,
    WSE_CLOSE_GOING_AWAY = 1001,
    WSE_CLOSE_PROTOCOL = 1002,
    WSE_CLOSE_UNSUPPORTED = 1003,
    WSE_CLOSE_NO_STATUS = 1005,     /* never on the wire: "no code given" */
    WSE_CLOSE_BAD_DATA = 1007,
    WSE_CLOSE_POLICY = 1008,
    WSE_CLOSE_TOO_BIG = 1009,
    WSE_CLOSE_INTERNAL = 1011,
    WSE_CLOSE_RESTART = 1012,
    WSE_CLOSE_TRY_LATER = 1013,
};

static inline bool wse_opcode_is_control(unsigned op) { return (op & 0x8) != 0; }

struct wse_frame {
    uint64_t len;        /* payload length */
    uint8_t fin;         /* 1 if FIN is set */
    uint8_t rsv;         /* RSV1..3 bits, as in the first byte (mask 0x70) */
    uint8_t opcode;
    uint8_t mask[4];
    uint8_t hdr_len;     /* bytes of header: 2..14 */
};

/*
 * Decodes a client frame header from p[0..n).  rsv_allowed is the set of RSV
 * bits a negotiated extension gives a meaning to (0 without extensions).
 *   WSE_OK     *f is filled in; the payload starts at p + f->hdr_len.
 *   WSE_AGAIN  n is shorter than the header; nothing is consumed (call again
 *              with the same bytes and more).
 *   WSE_FAIL   *code is the close code to fail the connection with: 1002 for
 *              RSV bits not allowed, reserved opcodes (3-7, 11-15), an
 *              unmasked frame, a 64-bit length with the top bit set, or a
 *              control frame that is fragmented or longer than 125 bytes.
 * Each check fails as soon as the byte carrying it has arrived, so a bad
 * header is refused at its first byte.
 */
int wse_frame_decode(struct wse_frame *f, const uint8_t *p, size_t n,
                     unsigned rsv_allowed, uint16_t *code);

/*
 * XORs p[0..n) with mask, starting at byte pos of the mask (0..3), in place;
 * returns the mask position for the byte after p[n-1].  p may have any
 * alignment and the frame may be unmasked in pieces of any size.
 */
unsigned wse_unmask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned pos);

/* Header bytes a server frame with a payload of len bytes needs: 2, 4 or 10. */
static inline size_t wse_server_hdr_len(uint64_t len)
{
    return len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
}

/*
 * Writes the smallest unmasked header for (fin, opcode, len) to out, which
 * must hold wse_server_hdr_len(len) bytes; returns that length.
 */
size_t wse_frame_write_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len);

/*
 * Writes a complete server close frame: header, code, then up to 123 bytes
 * of reason.  out must hold 2 + 125 bytes.  Returns the frame's length.
 */
size_t wse_close_write(uint8_t *out, uint16_t code, const char *reason, size_t reason_len);

#endif
