/*
 * test_msg.c - the message parser: fragmentation, interleaved control frames,
 * size limit, UTF-8, close payloads; and for every stream, feeding it in any
 * chunking (one byte at a time included) gives the same events as feeding it
 * whole.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "common.h"
#include "msg.h"

/* ---- building client streams ------------------------------------------ */

struct stream {
    uint8_t bytes[400000];
    size_t len;
};

static void add_frame(struct stream *s, bool fin, unsigned opcode, const void *payload, size_t n)
{
    static const uint8_t mask[4] = {0xA5, 0x3C, 0x0F, 0x96};
    uint8_t *p = s->bytes + s->len;
    ck_assert_uint_lt(s->len + WSE_FRAME_HDR_MAX + n, sizeof s->bytes);
    size_t h = wse_frame_write_header(p, fin, opcode, n);

    p[1] |= 0x80;
    memcpy(p + h, mask, 4);
    memcpy(p + h + 4, payload, n);
    wse_unmask(p + h + 4, n, mask, 0);     /* masking is the same XOR */
    s->len += h + 4 + n;
}

static void add_raw(struct stream *s, const void *bytes, size_t n)
{
    memcpy(s->bytes + s->len, bytes, n);
    s->len += n;
}

/* ---- a transcript of what the parser reported --------------------------- */

struct transcript {
    char text[4096];
    size_t fail_at;         /* input offset at which WSE_FAIL came, or SIZE_MAX */
    uint32_t hash;          /* FNV-1a over the open message's bytes */
    size_t msg_len;
    int msg_opcode;
};

static void say(struct transcript *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct transcript *t, const char *fmt, ...)
{
    size_t used = strlen(t->text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->text + used, sizeof t->text - used, fmt, ap);
    va_end(ap);
}

static void record(struct transcript *t, const struct wse_event *ev)
{
    switch (ev->kind) {
    case WSE_EV_DATA:
        if (ev->first) {
            ck_assert_int_eq(t->msg_opcode, 0);
            t->hash = 2166136261u;
            t->msg_len = 0;
            t->msg_opcode = ev->opcode;
        }
        ck_assert_int_eq(ev->opcode, t->msg_opcode);
        for (size_t i = 0; i < ev->len; i++)
            t->hash = (t->hash ^ ev->data[i]) * 16777619u;
        t->msg_len += ev->len;
        if (ev->last) {
            say(t, "msg(%d,%zu,%08x) ", t->msg_opcode, t->msg_len, t->hash);
            t->msg_opcode = 0;
        }
        break;
    case WSE_EV_PING:
        say(t, "ping(%.*s) ", (int)ev->len, (const char *)ev->data);
        break;
    case WSE_EV_PONG:
        say(t, "pong(%.*s) ", (int)ev->len, (const char *)ev->data);
        break;
    case WSE_EV_CLOSE:
        say(t, "close(%u,%.*s) ", ev->code, (int)(ev->len > 2 ? ev->len - 2 : 0),
            (const char *)ev->data + 2);
        break;
    default:
        ck_abort_msg("unknown event kind %d", ev->kind);
    }
}

/*
 * Feeds the stream in chunks of `chunk` bytes (0 = whole), keeping the
 * unconsumed tail as a connection would, and records the events.
 */
static void run(const struct stream *s, size_t chunk, uint64_t max_msg, struct transcript *t)
{
    static uint8_t buf[sizeof ((struct stream *)0)->bytes];
    struct wse_parser ps;
    size_t have = 0, fed = 0;

    memset(t, 0, sizeof *t);
    t->fail_at = SIZE_MAX;
    wse_parser_init(&ps, max_msg, 0);
    while (fed < s->len) {
        size_t c = chunk && chunk < s->len - fed ? chunk : s->len - fed;
        memcpy(buf + have, s->bytes + fed, c);
        have += c;
        fed += c;
        for (;;) {
            struct wse_event ev;
            size_t used = 0;
            int rc = wse_parse(&ps, buf, have, &used, &ev);
            ck_assert_uint_le(used, have);
            if (rc == WSE_OK)
                record(t, &ev);
            memmove(buf, buf + used, have - used);
            have -= used;
            if (rc == WSE_FAIL) {
                say(t, "FAIL(%u)", ev.code);
                t->fail_at = fed;
                return;
            }
            if (rc == WSE_AGAIN)
                break;
            if (ev.kind == WSE_EV_CLOSE) {
                say(t, "| ");
                return;     /* a server reads nothing after a close */
            }
        }
    }
    if (have)
        say(t, "tail(%zu)", have);
}

/* Whole, one byte at a time, and a few odd chunk sizes agree. */
static void check_stream(const struct stream *s, uint64_t max_msg, const char *want)
{
    static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 13, 64, 1000, 4096};
    struct transcript whole, other;

    run(s, 0, max_msg, &whole);
    ck_assert_str_eq(whole.text, want);
    for (size_t i = 1; i < countof(chunks); i++) {
        run(s, chunks[i], max_msg, &other);
        ck_assert_msg(strcmp(whole.text, other.text) == 0, "chunk %zu: '%s' vs '%s'",
                      chunks[i], other.text, whole.text);
    }
}

static char *expect_msg(char *out, int opcode, const void *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)p)[i]) * 16777619u;
    sprintf(out + strlen(out), "msg(%d,%zu,%08x) ", opcode, n, h);
    return out;
}

#define MAXMSG (16u << 20)

START_TEST(single_frames)
{
    static uint8_t big[70000];
    struct stream s = {0};
    char want[1024] = "";

    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31);
    add_frame(&s, true, WSE_OP_TEXT, "Hello", 5);
    expect_msg(want, 1, "Hello", 5);
    add_frame(&s, true, WSE_OP_TEXT, "", 0);
    expect_msg(want, 1, "", 0);
    add_frame(&s, true, WSE_OP_BINARY, "", 0);
    expect_msg(want, 2, "", 0);
    static const size_t sizes[] = {1, 125, 126, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < countof(sizes); i++) {
        add_frame(&s, true, WSE_OP_BINARY, big, sizes[i]);
        expect_msg(want, 2, big, sizes[i]);
    }
    check_stream(&s, MAXMSG, want);
}
END_TEST

START_TEST(rfc_hello_bytes)
{
    struct stream s = {0};
    char want[256] = "";
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};

    add_raw(&s, hello, sizeof hello);
    add_raw(&s, pong, sizeof pong);
    expect_msg(want, 1, "Hello", 5);
    strcat(want, "pong(Hello) ");
    check_stream(&s, MAXMSG, want);
}
END_TEST

START_TEST(fragments_with_interleaved_control)
{
    struct stream s = {0};
    char want[512] = "";

    add_frame(&s, false, WSE_OP_TEXT, "Hel", 3);
    add_frame(&s, true, WSE_OP_PING, "p1", 2);
    add_frame(&s, false, WSE_OP_CONT, "", 0);
    add_frame(&s, true, WSE_OP_PONG, "", 0);
    add_frame(&s, true, WSE_OP_CONT, "lo", 2);
    add_frame(&s, false, WSE_OP_BINARY, "\0\1", 2);
    add_frame(&s, true, WSE_OP_CONT, "", 0);
    strcat(want, "ping(p1) pong() ");
    expect_msg(want, 1, "Hello", 5);
    expect_msg(want, 2, "\0\1", 2);
    check_stream(&s, MAXMSG, want);
}
END_TEST

START_TEST(utf8_split_across_fragments)
{
    struct stream s = {0};
    char want[512] = "";
    static const char kosme[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";   /* κόσμε */

    for (size_t split = 0; split <= 11; split++) {
        add_frame(&s, false, WSE_OP_TEXT, kosme, split);
        add_frame(&s, true, WSE_OP_CONT, kosme + split, 11 - split);
        expect_msg(want, 1, kosme, 11);
    }
    check_stream(&s, MAXMSG, want);
}
END_TEST

START_TEST(close_frames)
{
    struct stream s = {0};

    add_frame(&s, true, WSE_OP_CLOSE, "\x03\xe8" "bye", 5);
    add_frame(&s, true, WSE_OP_TEXT, "after", 5);   /* never looked at */
    check_stream(&s, MAXMSG, "close(1000,bye) | ");
    s.len = 0;
    add_frame(&s, true, WSE_OP_CLOSE, "", 0);
    check_stream(&s, MAXMSG, "close(1005,) | ");
}
END_TEST

static void check_fail(const struct stream *s, uint64_t max_msg, const char *want, size_t fail_at)
{
    struct transcript t;

    check_stream(s, max_msg, want);
    run(s, 1, max_msg, &t);
    ck_assert_msg(t.fail_at == fail_at, "failed after byte %zu, expected %zu", t.fail_at, fail_at);
}

START_TEST(continuation_without_message)
{
    struct stream s = {0};
    add_frame(&s, true, WSE_OP_CONT, "x", 1);
    check_fail(&s, MAXMSG, "FAIL(1002)", 6);   /* decided at the header */
}
END_TEST

START_TEST(new_message_while_one_is_open)
{
    struct stream s = {0};
    add_frame(&s, false, WSE_OP_TEXT, "a", 1);
    add_frame(&s, true, WSE_OP_BINARY, "b", 1);
    check_fail(&s, MAXMSG, "FAIL(1002)", 7 + 6);
}
END_TEST

START_TEST(message_size_limit)
{
    static uint8_t big[1001];
    struct stream s = {0};
    char want[256] = "";

    add_frame(&s, false, WSE_OP_BINARY, big, 600);
    add_frame(&s, true, WSE_OP_CONT, big, 400);          /* exactly 1000: fine */
    expect_msg(want, 2, big, 1000);
    add_frame(&s, false, WSE_OP_BINARY, big, 600);
    size_t at = s.len;
    add_frame(&s, true, WSE_OP_CONT, big, 401);          /* 1001: too big */
    strcat(want, "FAIL(1009)");
    check_fail(&s, 1000, want, at + 8);   /* refused at its header, before the payload */
}
END_TEST

/* Invalid UTF-8 fails at the byte that carries it, mid-frame. */
START_TEST(utf8_fails_fast)
{
    struct stream s = {0};
    static const char text[] = "valid \xce\xba then \xed\xa0\x80 and more text after";

    add_frame(&s, true, WSE_OP_TEXT, "ok", 2);
    size_t hdr_end = s.len + 6;
    add_frame(&s, true, WSE_OP_TEXT, text, sizeof text - 1);
    char want[256] = "";
    expect_msg(want, 1, "ok", 2);
    strcat(want, "FAIL(1007)");
    /* \xed\xa0: the A0 (offset 15 in text) is the first impossible byte. */
    check_fail(&s, MAXMSG, want, hdr_end + 16);
}
END_TEST

START_TEST(utf8_truncated_at_message_end)
{
    struct stream s = {0};
    add_frame(&s, false, WSE_OP_TEXT, "\xce", 1);
    add_frame(&s, true, WSE_OP_CONT, "", 0);
    check_fail(&s, MAXMSG, "FAIL(1007)", s.len);
}
END_TEST

START_TEST(binary_is_not_utf8_checked)
{
    struct stream s = {0};
    char want[128] = "";
    add_frame(&s, true, WSE_OP_BINARY, "\xff\xfe", 2);
    expect_msg(want, 2, "\xff\xfe", 2);
    check_stream(&s, MAXMSG, want);
}
END_TEST

START_TEST(bad_close_payloads)
{
    struct stream s = {0};

    add_frame(&s, true, WSE_OP_CLOSE, "\x03", 1);
    check_fail(&s, MAXMSG, "FAIL(1002)", s.len);
    s.len = 0;
    add_frame(&s, true, WSE_OP_CLOSE, "\x03\xee", 2);    /* 1006 */
    check_fail(&s, MAXMSG, "FAIL(1002)", s.len);
    s.len = 0;
    add_frame(&s, true, WSE_OP_CLOSE, "\x03\xe8\xff", 3);
    check_fail(&s, MAXMSG, "FAIL(1007)", s.len);
}
END_TEST

START_TEST(control_frame_split_waits_whole)
{
    struct stream s = {0};
    add_frame(&s, true, WSE_OP_PING, "0123456789", 10);
    struct wse_parser ps;
    struct wse_event ev;
    size_t used;

    wse_parser_init(&ps, MAXMSG, 0);
    for (size_t n = 0; n < s.len; n++) {
        ck_assert_int_eq(wse_parse(&ps, s.bytes, n, &used, &ev), WSE_AGAIN);
        ck_assert_uint_eq(used, 0);
    }
    ck_assert_int_eq(wse_parse(&ps, s.bytes, s.len, &used, &ev), WSE_OK);
    ck_assert_uint_eq(used, s.len);
    ck_assert_int_eq(ev.kind, WSE_EV_PING);
}
END_TEST

/* Data payloads stream: a header is consumed once whole, payload bytes as they come. */
START_TEST(data_streams_without_buffering)
{
    static uint8_t big[5000];
    struct stream s = {0};
    struct wse_parser ps;
    struct wse_event ev;
    size_t used;

    add_frame(&s, true, WSE_OP_BINARY, big, sizeof big);
    wse_parser_init(&ps, MAXMSG, 0);
    ck_assert_int_eq(wse_parse(&ps, s.bytes, 3, &used, &ev), WSE_AGAIN);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(wse_parse(&ps, s.bytes, 8, &used, &ev), WSE_AGAIN);
    ck_assert_uint_eq(used, 8);                 /* header consumed, no payload yet */
    ck_assert_int_eq(wse_parse(&ps, s.bytes + 8, 100, &used, &ev), WSE_OK);
    ck_assert_uint_eq(used, 100);
    ck_assert(ev.first && !ev.last);
    ck_assert_int_eq(wse_parse(&ps, s.bytes + 108, s.len - 108, &used, &ev), WSE_OK);
    ck_assert(!ev.first && ev.last);
    ck_assert_uint_eq(ev.len, sizeof big - 100);
}
END_TEST

START_TEST(close_codes)
{
    for (unsigned c = 0; c < 6000; c++) {
        bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
                    (c >= 3000 && c <= 4999);
        ck_assert_msg(wse_close_code_valid(c) == want, "code %u", c);
    }
}
END_TEST

START_TEST(close_payloads)
{
    uint16_t code = 0;

    ck_assert_int_eq(wse_close_parse((const uint8_t *)"", 0, &code), WSE_OK);
    ck_assert_int_eq(code, 1005);
    ck_assert_int_eq(wse_close_parse((const uint8_t *)"\x03", 1, &code), WSE_FAIL);
    ck_assert_int_eq(code, 1002);
    ck_assert_int_eq(wse_close_parse((const uint8_t *)"\x03\xe8", 2, &code), WSE_OK);
    ck_assert_int_eq(code, 1000);
    ck_assert_int_eq(wse_close_parse((const uint8_t *)"\x03\xe8ok \xc3\xa9", 7, &code), WSE_OK);
    ck_assert_int_eq(code, 1000);
    ck_assert_int_eq(wse_close_parse((const uint8_t *)"\x03\xed", 2, &code), WSE_FAIL);
    ck_assert_int_eq(code, 1002);   /* 1005 may not be sent */
    ck_assert_int_eq(wse_close_parse((const uint8_t *)"\x03\xe8\xce\xba\xe1\xbd", 6, &code), WSE_FAIL);
    ck_assert_int_eq(code, 1007);   /* truncated UTF-8 reason */
    ck_assert_int_eq(wse_close_parse((const uint8_t *)"\x13\x88", 2, &code), WSE_FAIL);
    ck_assert_int_eq(code, 1002);   /* 4999 + 1 */
}
END_TEST

/* ---- permessage-deflate's RSV1 (RFC 7692 6.1) ---- */

/* Parses one stream whole with RSV1 allowed; the last rc and event. */
static int parse_rsv(const struct stream *s, struct wse_event *last, int *compressed_events)
{
    static uint8_t buf[sizeof ((struct stream *)0)->bytes];
    struct wse_parser ps;
    size_t pos = 0, used;
    int rc;

    memcpy(buf, s->bytes, s->len);
    wse_parser_init(&ps, 1 << 20, WSE_RSV1);
    *compressed_events = 0;
    while ((rc = wse_parse(&ps, buf + pos, s->len - pos, &used, last)) == WSE_OK) {
        pos += used;
        if (last->kind == WSE_EV_DATA && last->compressed)
            (*compressed_events)++;
    }
    return rc;
}

START_TEST(rsv1_marks_first_frame_only)
{
    static struct stream s;
    struct wse_event ev;
    int nc;

    /* RSV1 on a first frame: the whole message is compressed, and its
     * (deflate, not UTF-8) payload is not UTF-8 checked. */
    s.len = 0;
    add_frame(&s, false, WSE_OP_TEXT, "\xff\xfe", 2);
    s.bytes[0] |= WSE_RSV1;
    add_frame(&s, true, WSE_OP_CONT, "\xc0", 1);
    add_frame(&s, true, WSE_OP_TEXT, "plain", 5);
    ck_assert_int_eq(parse_rsv(&s, &ev, &nc), WSE_AGAIN);
    ck_assert_int_eq(nc, 2);        /* both pieces of the first message, not the plain one */

    /* RSV1 on a continuation frame: 1002. */
    s.len = 0;
    add_frame(&s, false, WSE_OP_TEXT, "ab", 2);
    size_t cont = s.len;
    add_frame(&s, true, WSE_OP_CONT, "cd", 2);
    s.bytes[cont] |= WSE_RSV1;
    ck_assert_int_eq(parse_rsv(&s, &ev, &nc), WSE_FAIL);
    ck_assert_uint_eq(ev.code, WSE_CLOSE_PROTOCOL);

    /* RSV1 on a control frame: 1002, whether ping, pong or close. */
    static const unsigned ops[] = {WSE_OP_PING, WSE_OP_PONG, WSE_OP_CLOSE};
    for (size_t i = 0; i < 3; i++) {
        s.len = 0;
        add_frame(&s, true, ops[i], "", 0);
        s.bytes[0] |= WSE_RSV1;
        ck_assert_int_eq(parse_rsv(&s, &ev, &nc), WSE_FAIL);
        ck_assert_uint_eq(ev.code, WSE_CLOSE_PROTOCOL);
    }

    /* Uncompressed text on the same parser is still UTF-8 checked. */
    s.len = 0;
    add_frame(&s, true, WSE_OP_TEXT, "\xff", 1);
    ck_assert_int_eq(parse_rsv(&s, &ev, &nc), WSE_FAIL);
    ck_assert_uint_eq(ev.code, WSE_CLOSE_BAD_DATA);
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tcase_create("msg");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, single_frames);
    tcase_add_test(tc, rfc_hello_bytes);
    tcase_add_test(tc, fragments_with_interleaved_control);
    tcase_add_test(tc, utf8_split_across_fragments);
    tcase_add_test(tc, close_frames);
    tcase_add_test(tc, continuation_without_message);
    tcase_add_test(tc, new_message_while_one_is_open);
    tcase_add_test(tc, message_size_limit);
    tcase_add_test(tc, utf8_fails_fast);
    tcase_add_test(tc, utf8_truncated_at_message_end);
    tcase_add_test(tc, binary_is_not_utf8_checked);
    tcase_add_test(tc, bad_close_payloads);
    tcase_add_test(tc, control_frame_split_waits_whole);
    tcase_add_test(tc, data_streams_without_buffering);
    tcase_add_test(tc, close_codes);
    tcase_add_test(tc, close_payloads);
    tcase_add_test(tc, rsv1_marks_first_frame_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(msg_suite());
}
