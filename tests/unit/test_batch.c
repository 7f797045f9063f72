/*
 * test_batch.c - the echo batch (batch.h): coalescing, sliding, "full"
 * reported instead of sent, the scratch area, the header-over-header write;
 * the transform (transform.h) on top of it; and the message parser's promise
 * about the bytes before ev->data (msg.h) that the in-place echo relies on,
 * on input that ends at a guard page.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "batch.h"
#include "common.h"
#include "guard.h"
#include "msg.h"
#include "transform.h"

static struct wse_batch *B;

static void setup(void)
{
    B = malloc(sizeof *B);
    ck_assert_ptr_nonnull(B);
    wse_batch_reset(B);
}

static void teardown(void)
{
    free(B);
}

/* The batch's bytes, as a writev would send them. */
static size_t gather(const struct wse_batch *b, uint8_t *out, size_t cap)
{
    size_t n = 0;

    for (int i = 0; i < b->niov; i++) {
        ck_assert_uint_le(n + b->iov[i].iov_len, cap);
        memcpy(out + n, b->iov[i].iov_base, b->iov[i].iov_len);
        n += b->iov[i].iov_len;
    }
    ck_assert_uint_eq(n, b->bytes);
    return n;
}

/* ---- the batch ----------------------------------------------------------- */

START_TEST(adjacent_regions_coalesce)
{
    uint8_t buf[64] = "abcdefgh";

    ck_assert(wse_batch_add(B, buf, 3, false));
    ck_assert(wse_batch_add(B, buf + 3, 5, false));     /* not slidable, but adjacent */
    ck_assert_int_eq(B->niov, 1);
    ck_assert_uint_eq(B->iov[0].iov_len, 8);
    ck_assert_uint_eq(B->bytes, 8);
}
END_TEST

START_TEST(small_regions_slide_down)
{
    uint8_t buf[64] = "AAAA____BBB___CC";

    ck_assert(wse_batch_add(B, buf, 4, true));
    ck_assert(wse_batch_add(B, buf + 8, 3, true));
    ck_assert(wse_batch_add(B, buf + 14, 2, true));
    ck_assert_int_eq(B->niov, 1);
    ck_assert_ptr_eq(B->iov[0].iov_base, buf);
    ck_assert_uint_eq(B->bytes, 9);
    ck_assert_int_eq(memcmp(buf, "AAAABBBCC", 9), 0);
}
END_TEST

START_TEST(no_slide_across_scratch_or_for_large)
{
    static uint8_t buf[4 * WSE_BATCH_SLIDE_MAX];
    uint8_t other[8] = "xyz";

    /* After a region that is not slidable (scratch), a gap stays a gap. */
    ck_assert(wse_batch_add(B, other, 3, false));
    ck_assert(wse_batch_add(B, buf, 4, true));
    ck_assert_int_eq(B->niov, 2);
    /* A slidable region after a slidable one, but larger than SLIDE_MAX. */
    memset(buf + 100, 'L', WSE_BATCH_SLIDE_MAX + 1);
    ck_assert(wse_batch_add(B, buf + 100, WSE_BATCH_SLIDE_MAX + 1, true));
    ck_assert_int_eq(B->niov, 3);
    ck_assert_ptr_eq(B->iov[2].iov_base, buf + 100);
    /* ... and one of exactly SLIDE_MAX slides. */
    wse_batch_reset(B);
    ck_assert(wse_batch_add(B, buf, 4, true));
    ck_assert(wse_batch_add(B, buf + 100, WSE_BATCH_SLIDE_MAX, true));
    ck_assert_int_eq(B->niov, 1);
    ck_assert_uint_eq(B->bytes, 4 + WSE_BATCH_SLIDE_MAX);
}
END_TEST

/* Full is reported, never acted on: nothing changes until the caller resets. */
START_TEST(full_is_reported_and_changes_nothing)
{
    static uint8_t buf[2 * WSE_BATCH_IOV_CAP + 2];

    for (int i = 0; i < WSE_BATCH_IOV_CAP; i++)
        ck_assert(wse_batch_add(B, buf + 2 * i, 1, false));   /* gaps, no sliding */
    ck_assert_int_eq(B->niov, WSE_BATCH_IOV_CAP);
    ck_assert(!wse_batch_add(B, buf + 2 * WSE_BATCH_IOV_CAP, 1, false));
    ck_assert_int_eq(B->niov, WSE_BATCH_IOV_CAP);
    ck_assert_uint_eq(B->bytes, WSE_BATCH_IOV_CAP);
    /* Adjacent to the last region still fits: it takes no iovec. */
    ck_assert(wse_batch_add(B, buf + 2 * WSE_BATCH_IOV_CAP - 1, 1, false));
    ck_assert_uint_eq(B->bytes, WSE_BATCH_IOV_CAP + 1);
    wse_batch_reset(B);
    ck_assert(wse_batch_empty(B));
    ck_assert(wse_batch_add(B, buf, 1, false));
}
END_TEST

START_TEST(scratch_bounds_and_reserved_iovecs)
{
    static uint8_t buf[2 * WSE_BATCH_IOV_CAP];
    uint8_t *a = wse_batch_scratch(B, 100);

    ck_assert_ptr_eq(a, B->scratch);
    wse_batch_unscratch(B, 40);                     /* 60 used */
    ck_assert_ptr_eq(wse_batch_scratch(B, 10), B->scratch + 60);
    ck_assert_ptr_null(wse_batch_scratch(B, WSE_BATCH_SCRATCH_CAP - 70 + 1));
    ck_assert_ptr_nonnull(wse_batch_scratch(B, WSE_BATCH_SCRATCH_CAP - 70));
    ck_assert_ptr_null(wse_batch_scratch(B, 1));
    /* Scratch is refused once fewer than two iovecs are left after it. */
    wse_batch_reset(B);
    for (int i = 0; i < WSE_BATCH_IOV_CAP - 3; i++)
        ck_assert(wse_batch_add(B, buf + 2 * i, 1, false));
    ck_assert_ptr_nonnull(wse_batch_scratch(B, 1));
    ck_assert(wse_batch_add(B, buf + 2 * (WSE_BATCH_IOV_CAP - 3), 1, false));
    ck_assert_ptr_null(wse_batch_scratch(B, 1));
}
END_TEST

START_TEST(header_over_header)
{
    uint8_t buf[400];
    uint8_t want[200];

    memset(buf, 0xEE, sizeof buf);
    memcpy(buf + 20, "hello", 5);
    ck_assert(wse_batch_frame(B, true, WSE_OP_TEXT, buf + 20, 5));
    ck_assert_int_eq(B->niov, 1);
    ck_assert_ptr_eq(B->iov[0].iov_base, buf + 18);     /* 2-byte header just before */
    size_t hl = wse_frame_write_header(want, true, WSE_OP_TEXT, 5);
    memcpy(want + hl, "hello", 5);
    uint8_t got[200];
    ck_assert_uint_eq(gather(B, got, sizeof got), hl + 5);
    ck_assert_int_eq(memcmp(got, want, hl + 5), 0);
    ck_assert_uint_eq(buf[17], 0xEE);                   /* nothing written before it */
    /* A 126-byte payload takes a 4-byte header. */
    wse_batch_reset(B);
    ck_assert(wse_batch_frame(B, false, WSE_OP_BINARY, buf + 100, 126));
    ck_assert_ptr_eq(B->iov[0].iov_base, buf + 96);
}
END_TEST

/* ---- the parser's promise and the echo over it --------------------------- */

static size_t client_frame(uint8_t *p, bool fin, unsigned opcode, const void *payload, size_t n)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = wse_frame_write_header(p, fin, opcode, n);

    p[1] |= 0x80;
    memcpy(p + h, mask, 4);
    memcpy(p + h + 4, payload, n);
    wse_unmask(p + h + 4, n, mask, 0);
    return h + 4 + n;
}

static size_t server_frame(uint8_t *p, bool fin, unsigned opcode, const void *a, size_t an,
                           const void *b, size_t bn)
{
    size_t h = wse_frame_write_header(p, fin, opcode, an + bn);

    memcpy(p + h, a, an);
    memcpy(p + h + an, b, bn);
    return h + an + bn;
}

/*
 * Parses in[0..n) in chunks of `chunk` bytes, each chunk placed right before
 * a guard page with HEADROOM writable bytes before it as the server's read
 * buffer has (a partial header is carried over as the server carries its
 * tail), echoing every data piece and ping through the transform into one
 * batch per chunk; checks the promise at each event and returns the bytes
 * the batches sent.
 */
#define HEADROOM 64

static size_t echo_stream(const struct wse_transform *t, const uint8_t *in, size_t n,
                          size_t chunk, uint8_t *out, size_t cap)
{
    struct wse_parser ps;
    struct guard g = guard_map();
    uint8_t carry[WSE_FRAME_HDR_MAX + WSE_CONTROL_MAX];
    size_t carried = 0, pos = 0, sent = 0;

    wse_parser_init(&ps, 1 << 20, 0);
    while (pos < n || carried) {
        size_t take = n - pos < chunk ? n - pos : chunk;
        uint8_t tmp[4096];
        ck_assert_uint_le(carried + take + HEADROOM, sizeof tmp);
        memset(tmp, 0xAB, HEADROOM);
        memcpy(tmp + HEADROOM, carry, carried);
        memcpy(tmp + HEADROOM + carried, in + pos, take);
        pos += take;
        uint8_t *region = guard_place(&g, tmp, HEADROOM + carried + take);
        uint8_t *buf = region + HEADROOM, *end = buf + carried + take;
        size_t off = 0;
        carried = 0;
        wse_batch_reset(B);
        for (;;) {
            struct wse_event ev;
            size_t used;
            uint8_t *call = buf + off;
            int rc = wse_parse(&ps, call, (size_t)(end - call), &used, &ev);
            off += used;
            if (rc == WSE_AGAIN) {
                carried = (size_t)(end - (buf + off));
                memcpy(carry, buf + off, carried);
                break;
            }
            ck_assert_int_eq(rc, WSE_OK);
            if (ev.kind == WSE_EV_DATA) {
                /* The promise (msg.h): either the piece's frame header
                 * (server header + 4 mask bytes at least) was consumed
                 * just before it in this call, or the piece starts at the
                 * call's first byte, and that only when the previous
                 * input ended inside the frame: on the first call of a
                 * read, whose bytes before are the caller's headroom. */
                if (ev.data != call)
                    ck_assert(ev.data - call >= (ptrdiff_t)(wse_server_hdr_len(ev.len) + 4));
                else
                    ck_assert_ptr_eq(call, buf);
                if (!ev.frame_start)
                    ck_assert_ptr_eq(ev.data, call);
                ck_assert(wse_transform_echo(t, B, &ev));
            } else if (ev.kind == WSE_EV_PING) {
                ck_assert(ev.data - call >= 6);
                uint8_t *h = ev.data - 2;
                wse_frame_write_header(h, true, WSE_OP_PONG, ev.len);
                ck_assert(wse_batch_add(B, h, 2 + ev.len, true));
            }
            if (buf + off == end)
                break;
        }
        sent += gather(B, out + sent, cap - sent);
        if (pos == n && carried)
            ck_abort_msg("stream ends inside a frame");
    }
    guard_unmap(&g);
    return sent;
}

struct streams {
    uint8_t in[3000], want[3000], want_prefixed[3000];
    size_t in_len, want_len, want_prefixed_len;
};

/* Text, binary, a fragmented text with a ping in between, empty frames. */
static void build(struct streams *s, const char *prefix)
{
    static const char *const texts[] = {"a", "hello", "", "0123456789abcdef"};
    uint8_t big[300];
    size_t pl = strlen(prefix);

    memset(big, 'z', sizeof big);
    s->in_len = s->want_len = s->want_prefixed_len = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < countof(texts); i++) {
            size_t n = strlen(texts[i]);
            s->in_len += client_frame(s->in + s->in_len, true, WSE_OP_TEXT, texts[i], n);
            s->want_len += server_frame(s->want + s->want_len, true, WSE_OP_TEXT, texts[i], n,
                                        "", 0);
            s->want_prefixed_len += server_frame(s->want_prefixed + s->want_prefixed_len, true,
                                                 WSE_OP_TEXT, prefix, pl, texts[i], n);
        }
        s->in_len += client_frame(s->in + s->in_len, true, WSE_OP_BINARY, big, sizeof big);
        s->want_len += server_frame(s->want + s->want_len, true, WSE_OP_BINARY, big, sizeof big,
                                    "", 0);
        s->want_prefixed_len += server_frame(s->want_prefixed + s->want_prefixed_len, true,
                                             WSE_OP_BINARY, big, sizeof big, "", 0);
        s->in_len += client_frame(s->in + s->in_len, false, WSE_OP_TEXT, "frag", 4);
        s->in_len += client_frame(s->in + s->in_len, true, WSE_OP_PING, "pi", 2);
        s->in_len += client_frame(s->in + s->in_len, true, WSE_OP_CONT, "ment", 4);
        s->want_len += server_frame(s->want + s->want_len, false, WSE_OP_TEXT, "frag", 4, "", 0);
        s->want_len += server_frame(s->want + s->want_len, true, WSE_OP_PONG, "pi", 2, "", 0);
        s->want_len += server_frame(s->want + s->want_len, true, WSE_OP_CONT, "ment", 4, "", 0);
        s->want_prefixed_len += server_frame(s->want_prefixed + s->want_prefixed_len, false,
                                             WSE_OP_TEXT, prefix, pl, "frag", 4);
        s->want_prefixed_len += server_frame(s->want_prefixed + s->want_prefixed_len, true,
                                             WSE_OP_PONG, "pi", 2, "", 0);
        s->want_prefixed_len += server_frame(s->want_prefixed + s->want_prefixed_len, true,
                                             WSE_OP_CONT, "ment", 4, "", 0);
    }
}

/* One read: the echo is exactly the server frames of the messages. */
START_TEST(identity_echo_in_one_read_is_the_server_frames)
{
    static struct streams s;
    static uint8_t out[8000];
    struct wse_transform id = {0};

    build(&s, "");
    size_t n = echo_stream(&id, s.in, s.in_len, s.in_len, out, sizeof out);
    ck_assert_uint_eq(n, s.want_len);
    ck_assert_int_eq(memcmp(out, s.want, n), 0);
}
END_TEST

START_TEST(prefix_echo_in_one_read_is_the_server_frames)
{
    static struct streams s;
    static uint8_t out[8000];
    struct wse_transform pre = {.prefix = "> ", .prefix_len = 2};

    build(&s, "> ");
    size_t n = echo_stream(&pre, s.in, s.in_len, s.in_len, out, sizeof out);
    ck_assert_uint_eq(n, s.want_prefixed_len);
    ck_assert_int_eq(memcmp(out, s.want_prefixed, n), 0);
}
END_TEST

/* Payload bytes of the data messages in a server stream, and its pongs. */
static size_t payloads(const uint8_t *p, size_t n, uint8_t *out, size_t *pongs)
{
    size_t pos = 0, len = 0;

    *pongs = 0;
    while (pos < n) {
        ck_assert_uint_ge(n - pos, 2);
        unsigned opcode = p[pos] & 0x0F;
        size_t plen = p[pos + 1] & 0x7F, h = 2;
        ck_assert_uint_eq(p[pos + 1] & 0x80, 0);        /* server frames are unmasked */
        if (plen == 126) {
            plen = (size_t)p[pos + 2] << 8 | p[pos + 3];
            h = 4;
        }
        ck_assert_uint_le(pos + h + plen, n);
        if (opcode == WSE_OP_PONG)
            (*pongs)++;
        else
            memcpy(out + len, p + pos + h, plen), len += plen;
        pos += h + plen;
    }
    return len;
}

/* Any chunking, one byte at a time included: the same payload bytes and
 * pongs come back, every byte before a piece written was consumed input. */
START_TEST(echo_in_any_chunking_carries_the_same_bytes)
{
    static struct streams s;
    static uint8_t out[40000], whole[8000], got[8000];
    struct wse_transform id = {0};
    size_t pongs_whole, pongs;

    build(&s, "");
    size_t n = echo_stream(&id, s.in, s.in_len, s.in_len, out, sizeof out);
    size_t wl = payloads(out, n, whole, &pongs_whole);
    ck_assert_uint_eq(pongs_whole, 3);
    for (size_t chunk = 1; chunk <= 97; chunk += 3) {
        n = echo_stream(&id, s.in, s.in_len, chunk, out, sizeof out);
        size_t gl = payloads(out, n, got, &pongs);
        ck_assert_uint_eq(gl, wl);
        ck_assert_int_eq(memcmp(got, whole, wl), 0);
        ck_assert_uint_eq(pongs, pongs_whole);
    }
}
END_TEST

/* The transform reports full as the batch does, having added nothing. */
START_TEST(prefixed_echo_reports_full)
{
    static uint8_t buf[2 * WSE_BATCH_IOV_CAP + 64];
    struct wse_transform pre = {.prefix = "> ", .prefix_len = 2};
    struct wse_event ev = {
        .kind = WSE_EV_DATA, .opcode = WSE_OP_TEXT, .first = true, .last = true,
        .data = buf + 2 * WSE_BATCH_IOV_CAP + 32, .len = 3,
    };

    for (int i = 0; i < WSE_BATCH_IOV_CAP - 2; i++)
        ck_assert(wse_batch_add(B, buf + 2 * i, 1, false));
    size_t used = B->scratch_used, bytes = B->bytes;
    ck_assert(!wse_transform_echo(&pre, B, &ev));
    ck_assert_int_eq(B->niov, WSE_BATCH_IOV_CAP - 2);
    ck_assert_uint_eq(B->scratch_used, used);
    ck_assert_uint_eq(B->bytes, bytes);
    ck_assert_uint_eq(wse_transform_extra(&pre, &ev), 2);
    wse_batch_reset(B);
    ck_assert(wse_transform_echo(&pre, B, &ev));
    ck_assert_int_eq(B->niov, 2);
    ck_assert_uint_eq(B->bytes, 2 + 2 + 3);
    /* Binary messages and continuations get no prefix. */
    ev.opcode = WSE_OP_BINARY;
    ck_assert_uint_eq(wse_transform_extra(&pre, &ev), 0);
}
END_TEST

static Suite *batch_suite(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("batch");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, adjacent_regions_coalesce);
    tcase_add_test(tc, small_regions_slide_down);
    tcase_add_test(tc, no_slide_across_scratch_or_for_large);
    tcase_add_test(tc, full_is_reported_and_changes_nothing);
    tcase_add_test(tc, scratch_bounds_and_reserved_iovecs);
    tcase_add_test(tc, header_over_header);
    tcase_add_test(tc, identity_echo_in_one_read_is_the_server_frames);
    tcase_add_test(tc, prefix_echo_in_one_read_is_the_server_frames);
    tcase_add_test(tc, echo_in_any_chunking_carries_the_same_bytes);
    tcase_add_test(tc, prefixed_echo_reports_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(batch_suite());
}
