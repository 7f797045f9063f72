/*
 * fuzz_frame.c - libFuzzer target for the frame decoder with the message
 * state (msg.h).  The first input byte picks a chunk size; the rest is a
 * client byte stream.  The stream is parsed whole and in chunks, keeping the
 * unconsumed tail as a connection does; both runs must report the same
 * events, the same verdict, and every invariant of the contract must hold.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "msg.h"
#include "utf8.h"

#define MAX_MSG 4096u       /* small, so the 1009 path is reached */
#define check(c) do { if (!(c)) __builtin_trap(); } while (0)

struct summary {
    uint64_t hash;          /* over every complete event, in order */
    uint64_t msg_hash;      /* over the open message's pieces */
    int verdict;            /* WSE_AGAIN at end of input, WSE_FAIL, or WSE_OK after close */
    uint16_t code;
    int open_opcode;
    size_t msg_len;
    struct wse_utf8 utf8;   /* independent check that text events are valid */
};

static void mix(struct summary *s, uint64_t v)
{
    s->hash = (s->hash ^ v) * 0x100000001b3ULL;
}

static void mix_msg(struct summary *s, uint64_t v)
{
    s->msg_hash = (s->msg_hash ^ v) * 0x100000001b3ULL;
}

/*
 * How a message is cut into pieces depends on the chunking, and so does how
 * much of a message that later fails was handed out; so a message counts in
 * the hash only once it is complete.
 */
static void on_event(struct summary *s, const struct wse_event *ev)
{
    if (ev->kind != WSE_EV_DATA)
        mix(s, ev->kind);
    switch (ev->kind) {
    case WSE_EV_DATA:
        check(ev->opcode == WSE_OP_TEXT || ev->opcode == WSE_OP_BINARY);
        check(ev->first == (s->open_opcode == 0));
        if (ev->first) {
            s->open_opcode = ev->opcode;
            s->msg_len = 0;
            wse_utf8_init(&s->utf8);
            s->msg_hash = ev->opcode;
        }
        check(ev->opcode == s->open_opcode);
        s->msg_len += ev->len;
        check(s->msg_len <= MAX_MSG);
        if (ev->opcode == WSE_OP_TEXT)
            check(wse_utf8_feed(&s->utf8, ev->data, ev->len, NULL) == WSE_OK);
        for (size_t i = 0; i < ev->len; i++)
            mix_msg(s, ev->data[i]);
        if (ev->last) {
            if (ev->opcode == WSE_OP_TEXT)
                check(wse_utf8_end(&s->utf8) == WSE_OK);
            mix(s, s->msg_hash);
            mix(s, 0x100 | s->msg_len);
            s->open_opcode = 0;
        }
        break;
    case WSE_EV_PING:
    case WSE_EV_PONG:
        check(ev->len <= 125);
        for (size_t i = 0; i < ev->len; i++)
            mix(s, ev->data[i]);
        break;
    case WSE_EV_CLOSE:
        check(ev->len <= 125 && ev->len != 1);
        mix(s, ev->code);
        break;
    default:
        check(0);
    }
}

static void run(const uint8_t *in, size_t n, size_t chunk, struct summary *s)
{
    uint8_t *buf = malloc(n + 1);
    struct wse_parser ps;
    size_t have = 0, fed = 0;

    memset(s, 0, sizeof *s);
    s->verdict = WSE_AGAIN;
    wse_parser_init(&ps, MAX_MSG, 0);
    while (fed < n) {
        size_t c = chunk < n - fed ? chunk : n - fed;
        memcpy(buf + have, in + fed, c);
        have += c;
        fed += c;
        for (;;) {
            struct wse_event ev;
            size_t used = (size_t)-1;
            int rc = wse_parse(&ps, buf, have, &used, &ev);
            check(used <= have);
            check(rc == WSE_OK || rc == WSE_AGAIN || rc == WSE_FAIL);
            if (rc == WSE_OK)
                on_event(s, &ev);
            memmove(buf, buf + used, have - used);
            have -= used;
            if (rc == WSE_FAIL) {
                check(ev.code == 1002 || ev.code == 1007 || ev.code == 1009);
                s->verdict = WSE_FAIL;
                s->code = ev.code;
                goto out;
            }
            if (rc == WSE_AGAIN) {
                /* What is kept back is a header or a control frame, never more. */
                check(have < 14 + 125 + 1);
                break;
            }
            check(used > 0);
            if (ev.kind == WSE_EV_CLOSE) {
                s->verdict = WSE_OK;
                goto out;
            }
        }
    }
out:
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct summary whole, pieces;

    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 17) + 1;
    run(data + 1, size - 1, size, &whole);
    run(data + 1, size - 1, chunk, &pieces);
    check(whole.hash == pieces.hash);
    check(whole.verdict == pieces.verdict);
    check(whole.code == pieces.code);
    return 0;
}
