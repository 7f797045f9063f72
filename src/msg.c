/*
 * msg.c - message rules over frames: fragmentation, interleaved control
 * frames, the size limit, UTF-8 of text messages; as a resumable parser that
 * hands out one event per call (see msg.h for the contract).
 */
#include <string.h>

#include "common.h"
#include "msg.h"

/* ---- close payloads ---- */

bool wse_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true;        /* registered (3xxx) and private (4xxx) */
    switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
        return true;
    default:
        return false;       /* 1004-1006 and 1015 are reserved, never sent */
    }
}

int wse_close_parse(const uint8_t *p, size_t n, uint16_t *code)
{
    if (n == 0) {
        *code = WSE_CLOSE_NO_STATUS;
        return WSE_OK;
    }
    if (n == 1) {
        *code = WSE_CLOSE_PROTOCOL;
        return WSE_FAIL;
    }
    unsigned c = (unsigned)p[0] << 8 | p[1];
    if (!wse_close_code_valid(c)) {
        *code = WSE_CLOSE_PROTOCOL;
        return WSE_FAIL;
    }
    if (wse_utf8_valid(p + 2, n - 2) != WSE_OK) {
        *code = WSE_CLOSE_BAD_DATA;
        return WSE_FAIL;
    }
    *code = (uint16_t)c;
    return WSE_OK;
}

/* ---- the parser ---- */

void wse_parser_init(struct wse_parser *ps, uint64_t max_msg, unsigned rsv_allowed)
{
    memset(ps, 0, sizeof *ps);
    ps->max_msg = max_msg;
    ps->rsv_allowed = (uint8_t)rsv_allowed;
}

static int fail(struct wse_event *ev, uint16_t code)
{
    ev->code = code;
    return WSE_FAIL;
}

static void end_message(struct wse_parser *ps)
{
    ps->msg_opcode = 0;
    ps->piece_sent = 0;
    ps->msg_size = 0;
    ps->msg_compressed = 0;
    wse_utf8_init(&ps->utf8);
}

/*
 * Hands out the next n payload bytes of the current data frame (n may be 0
 * for an empty frame), validating text as it goes: invalid UTF-8 fails at
 * the piece that carries it, not at the end of the message.
 */
static int data_piece(struct wse_parser *ps, uint8_t *d, size_t n, struct wse_event *ev)
{
    if (n) {
        ps->mask_pos = (uint8_t)wse_unmask(d, n, ps->mask, ps->mask_pos);
        ps->remaining -= n;
    }
    bool frame_done = ps->remaining == 0;
    bool last = frame_done && ps->frame_fin;

    if (ps->msg_opcode == WSE_OP_TEXT && !ps->msg_compressed) {
        if (n && wse_utf8_feed(&ps->utf8, d, n, NULL) != WSE_OK)
            return fail(ev, WSE_CLOSE_BAD_DATA);
        if (last && wse_utf8_end(&ps->utf8) != WSE_OK)
            return fail(ev, WSE_CLOSE_BAD_DATA);
    }
    ev->kind = WSE_EV_DATA;
    ev->opcode = ps->msg_opcode;
    ev->first = !ps->piece_sent;
    ev->last = last;
    ev->frame_start = !ps->frame_piece_sent;
    ev->compressed = ps->msg_compressed;
    ev->data = d;
    ev->len = n;
    ps->piece_sent = 1;
    ps->frame_piece_sent = 1;
    if (frame_done) {
        ps->in_frame = 0;
        if (last)
            end_message(ps);
    }
    return WSE_OK;
}

/* A complete control frame lies at p (header included). */
static int control_frame(const struct wse_frame *f, uint8_t *p, struct wse_event *ev)
{
    uint8_t *payload = p + f->hdr_len;
    size_t n = (size_t)f->len;

    wse_unmask(payload, n, f->mask, 0);
    ev->data = payload;
    ev->len = n;
    ev->first = ev->last = true;
    ev->opcode = f->opcode;
    switch (f->opcode) {
    case WSE_OP_PING:
        ev->kind = WSE_EV_PING;
        return WSE_OK;
    case WSE_OP_PONG:
        ev->kind = WSE_EV_PONG;
        return WSE_OK;
    default:
        ev->kind = WSE_EV_CLOSE;
        return wse_close_parse(payload, n, &ev->code);
    }
}

/* Applies the fragmentation and size rules to a data frame's header. */
static int begin_data_frame(struct wse_parser *ps, const struct wse_frame *f,
                            struct wse_event *ev)
{
    if (f->opcode == WSE_OP_CONT) {
        if (!ps->msg_opcode)
            return fail(ev, WSE_CLOSE_PROTOCOL);    /* nothing to continue */
        if (f->rsv & WSE_RSV1)
            return fail(ev, WSE_CLOSE_PROTOCOL);    /* RFC 7692 6.1: first frame only */
    } else {
        if (ps->msg_opcode)
            return fail(ev, WSE_CLOSE_PROTOCOL);    /* previous message unfinished */
        ps->msg_opcode = f->opcode;
        ps->msg_compressed = (f->rsv & WSE_RSV1) != 0;
        ps->msg_size = 0;
        ps->piece_sent = 0;
        wse_utf8_init(&ps->utf8);
    }
    /* Refuse an oversized message at the header that makes it so. */
    if (f->len > ps->max_msg - ps->msg_size)
        return fail(ev, WSE_CLOSE_TOO_BIG);
    ps->msg_size += f->len;
    memcpy(ps->mask, f->mask, 4);
    ps->mask_pos = 0;
    ps->remaining = f->len;
    ps->frame_fin = f->fin;
    ps->frame_piece_sent = 0;
    ps->in_frame = 1;
    return WSE_OK;
}

int wse_parse(struct wse_parser *ps, uint8_t *buf, size_t len, size_t *used,
              struct wse_event *ev)
{
    size_t pos = 0;
    int rc;

    for (;;) {
        if (ps->in_frame) {
            size_t avail = len - pos;
            if (ps->remaining && !avail) {
                rc = WSE_AGAIN;
                break;
            }
            size_t n = avail < ps->remaining ? avail : (size_t)ps->remaining;
            rc = data_piece(ps, buf + pos, n, ev);
            if (rc == WSE_OK)
                pos += n;
            break;
        }

        struct wse_frame f;
        rc = wse_frame_decode(&f, buf + pos, len - pos, ps->rsv_allowed, &ev->code);
        if (rc != WSE_OK)
            break;
        if (wse_opcode_is_control(f.opcode)) {
            if (f.rsv) {                /* RFC 7692 6.1: no extension bit on control frames */
                ev->code = WSE_CLOSE_PROTOCOL;
                rc = WSE_FAIL;
                break;
            }
            /* Control frames (<= 131 bytes) are handled whole. */
            if (len - pos < f.hdr_len + f.len) {
                rc = WSE_AGAIN;
                break;
            }
            rc = control_frame(&f, buf + pos, ev);
            if (rc == WSE_OK)
                pos += f.hdr_len + (size_t)f.len;
            break;
        }
        rc = begin_data_frame(ps, &f, ev);
        if (rc != WSE_OK)
            break;
        pos += f.hdr_len;
        /* Loop: the payload (possibly empty) is handed out as a piece. */
    }
    *used = pos;
    return rc;
}
