/*
 * msg.h - message rules over the frame layer, as one resumable parser that
 * walks a client byte stream and hands out events (wslay's split: frame.h is
 * the wire, this is fragmentation, control frames, UTF-8 and limits).
 *
 * Streaming design: the parser never buffers a data payload.  Each call
 * returns the next piece of a data message as it lies in the caller's buffer
 * (unmasked in place, UTF-8 already checked for text), so a server can echo
 * every piece at once as a frame of its own and no message is ever held
 * whole.  A frame header, and a whole control frame (at most 131 bytes), are
 * only consumed once complete: on WSE_AGAIN the caller keeps the unconsumed
 * tail and presents it again, followed by more bytes.
 *
 * Per connection the state is a few dozen bytes (struct wse_parser).
 */
#ifndef WSE_MSG_H
#define WSE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "utf8.h"

struct wse_parser {
    uint64_t remaining;     /* payload bytes of the current data frame not yet seen */
    uint64_t msg_size;      /* payload bytes of the open message so far */
    uint64_t max_msg;       /* limit on a message's size (1009 over it) */
    struct wse_utf8 utf8;   /* running validation of an open text message */
    uint8_t mask[4];        /* current data frame's mask ... */
    uint8_t mask_pos;       /* ... and where in it the next byte is */
    uint8_t in_frame;       /* 1 while a data frame's payload is coming */
    uint8_t frame_fin;      /* FIN of the current data frame */
    uint8_t msg_opcode;     /* TEXT or BINARY while a message is open, else 0 */
    uint8_t piece_sent;     /* a piece of the open message was handed out */
    uint8_t frame_piece_sent; /* ... and of the current frame */
    uint8_t rsv_allowed;    /* RSV bits an extension allows (0: none) */
    uint8_t msg_compressed; /* the open message's first frame had RSV1 (permessage-deflate) */
};

enum wse_event_kind {
    WSE_EV_DATA = 1,    /* a piece of a text/binary message */
    WSE_EV_PING,        /* a complete ping; payload in data/len */
    WSE_EV_PONG,        /* a complete pong */
    WSE_EV_CLOSE,       /* a valid close frame; code (1005 if none), reason in data+2 */
};

struct wse_event {
    uint8_t kind;       /* enum wse_event_kind */
    uint8_t opcode;     /* DATA: the message's opcode (TEXT or BINARY) */
    bool first;         /* DATA: first piece of its message */
    bool last;          /* DATA: last piece of its message (FIN frame fully seen) */
    bool frame_start;   /* DATA: this piece begins a frame (for frame counts) */
    bool compressed;    /* DATA: the message is compressed (RSV1 on its first frame) */
    uint16_t code;      /* CLOSE: received code; on WSE_FAIL: the close code to send */
    uint8_t *data;      /* payload piece, unmasked, inside the caller's buffer */
    size_t len;
};

/*
 * max_msg: largest message payload accepted (on the wire: a compressed
 * message's inflated size is the inflater's limit, pmdz.h); rsv_allowed: 0
 * without extensions, WSE_RSV1 with permessage-deflate (RFC 7692 6): RSV1
 * then marks a message compressed on its first frame and is a 1002 on a
 * continuation or control frame, and a compressed text message's UTF-8 is
 * not checked here (its payload is deflate data: the caller checks the
 * inflated text).
 */
void wse_parser_init(struct wse_parser *ps, uint64_t max_msg, unsigned rsv_allowed);

/*
 * Parses buf[0..len) (which it may modify: payloads are unmasked in place)
 * up to the next event.  *used is always set to the bytes consumed.
 *   WSE_OK     *ev is an event; call again with buf + *used.
 *   WSE_AGAIN  no more events in these bytes.  buf[*used..len) is an
 *              incomplete frame header or control frame: present it again,
 *              followed by more input.
 *   WSE_FAIL   ev->code is the close code to fail the connection with
 *              (1002 protocol, 1007 invalid UTF-8, 1009 too big).  Events
 *              returned before still stand: frames are handled in order.
 * Zero-length data frames yield a DATA event with len 0, so empty messages
 * and empty final fragments are seen; a non-empty frame whose payload has
 * not started yet yields nothing.
 *
 * The bytes before ev->data (the promise the in-place echo relies on, see
 * batch.h): for every event, either
 *   - ev->data > buf, and the bytes from buf to ev->data were consumed by
 *     this call and end with the event's client frame header, so at least
 *     wse_server_hdr_len(ev->len) + 4 bytes right before ev->data are
 *     consumed header the caller may overwrite (a client header is the
 *     server header for the same length plus the 4-byte mask); or
 *   - ev->data == buf, which happens only when the previous call consumed
 *     all its input inside a data frame (the payload, or the header of a
 *     frame whose payload had not started): then this is the first call on
 *     new input, and what lies before buf is the caller's (its headroom).
 * So within one buffer, a write over the server header's bytes before a
 * piece never reaches a byte of an earlier event's payload.
 */
int wse_parse(struct wse_parser *ps, uint8_t *buf, size_t len, size_t *used,
              struct wse_event *ev);

/* ---- close payloads: the rules behind WSE_EV_CLOSE (kept with the events,
 * as wslay does: the frame layer knows no UTF-8) ---- */

/*
 * Is code one a peer may send in a close frame?  1000-1003, 1007-1014 and
 * 3000-4999; 1004, 1005, 1006, 1015 and all else are not.
 */
bool wse_close_code_valid(unsigned code);

/*
 * Checks a received close payload (n <= 125 bytes, already unmasked):
 * empty (*code = 1005: none given), or a 2-byte valid code followed by a
 * UTF-8 reason.  WSE_OK with *code set, or WSE_FAIL with *code = 1002 (one
 * byte, or a code not valid on the wire) or 1007 (reason not UTF-8).
 */
int wse_close_parse(const uint8_t *p, size_t n, uint16_t *code);


#endif
