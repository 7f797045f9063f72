/* test_frame.c - the wire format: header decoding, unmasking, server headers, close payloads. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "common.h"
#include "frame.h"
#include "msg.h"     /* wse_close_parse() reads back what close_write wrote */

static int decode(const uint8_t *p, size_t n, struct wse_frame *f, uint16_t *code)
{
    return wse_frame_decode(f, p, n, 0, code);
}

/* RFC 6455 section 5.7: a single-frame masked text message "Hello". */
START_TEST(rfc_masked_hello)
{
    uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct wse_frame f;
    uint16_t code = 0;

    ck_assert_int_eq(decode(in, sizeof in, &f, &code), WSE_OK);
    ck_assert_int_eq(f.fin, 1);
    ck_assert_int_eq(f.opcode, WSE_OP_TEXT);
    ck_assert_int_eq(f.len, 5);
    ck_assert_int_eq(f.hdr_len, 6);
    wse_unmask(in + 6, 5, f.mask, 0);
    ck_assert_mem_eq(in + 6, "Hello", 5);
}
END_TEST

/* Every proper prefix of a header is WSE_AGAIN and consumes nothing. */
START_TEST(prefixes_need_more)
{
    uint8_t in[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
    struct wse_frame f;
    uint16_t code = 0;

    for (size_t n = 0; n < sizeof in; n++)
        ck_assert_int_eq(decode(in, n, &f, &code), WSE_AGAIN);
    ck_assert_int_eq(decode(in, sizeof in, &f, &code), WSE_OK);
    ck_assert_uint_eq(f.len, 65536);
    ck_assert_int_eq(f.hdr_len, 14);
    ck_assert_mem_eq(f.mask, "\1\2\3\4", 4);
}
END_TEST

static void expect_fail_at(const uint8_t *in, size_t n, size_t at)
{
    struct wse_frame f;
    uint16_t code = 0;

    /* Before the offending byte the header is only incomplete ... */
    for (size_t k = 0; k < at; k++)
        ck_assert_int_eq(decode(in, k, &f, &code), WSE_AGAIN);
    /* ... and from it on, it fails with 1002, however much follows. */
    for (size_t k = at + 1; k <= n; k++) {
        code = 0;
        ck_assert_int_eq(decode(in, k, &f, &code), WSE_FAIL);
        ck_assert_int_eq(code, WSE_CLOSE_PROTOCOL);
    }
}

START_TEST(reserved_opcodes_fail)
{
    static const int reserved[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < countof(reserved); i++) {
        uint8_t in[] = {(uint8_t)(0x80 | reserved[i]), 0x80, 1, 2, 3, 4};
        expect_fail_at(in, sizeof in, 0);
    }
}
END_TEST

START_TEST(rsv_bits_fail_without_extension)
{
    for (unsigned rsv = 1; rsv < 8; rsv++) {
        uint8_t in[] = {(uint8_t)(0x81 | rsv << 4), 0x80, 1, 2, 3, 4};
        expect_fail_at(in, sizeof in, 0);
    }
}
END_TEST

START_TEST(rsv1_allowed_by_extension)
{
    uint8_t in[] = {0xC1, 0x80, 1, 2, 3, 4};
    struct wse_frame f;
    uint16_t code = 0;

    ck_assert_int_eq(wse_frame_decode(&f, in, sizeof in, WSE_RSV1, &code), WSE_OK);
    ck_assert_int_eq(f.rsv, WSE_RSV1);
    in[0] = 0xA1;   /* RSV2 is still not allowed */
    ck_assert_int_eq(wse_frame_decode(&f, in, sizeof in, WSE_RSV1, &code), WSE_FAIL);
}
END_TEST

START_TEST(unmasked_client_frame_fails)
{
    uint8_t in[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    expect_fail_at(in, sizeof in, 1);
}
END_TEST

START_TEST(control_frame_rules)
{
    uint8_t fragmented_ping[] = {0x09, 0x80, 1, 2, 3, 4};
    uint8_t long_ping[] = {0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4};
    uint8_t close126[] = {0x88, 0xFE, 0x00, 0x7E, 1, 2, 3, 4};
    uint8_t ping125[] = {0x89, 0xFD, 1, 2, 3, 4};
    struct wse_frame f;
    uint16_t code;

    expect_fail_at(fragmented_ping, sizeof fragmented_ping, 0);
    expect_fail_at(long_ping, sizeof long_ping, 1);
    expect_fail_at(close126, sizeof close126, 1);
    ck_assert_int_eq(decode(ping125, sizeof ping125, &f, &code), WSE_OK);
    ck_assert_uint_eq(f.len, 125);
}
END_TEST

START_TEST(length_top_bit_fails)
{
    uint8_t in[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_fail_at(in, sizeof in, 2);
}
END_TEST

START_TEST(non_minimal_length_fails)
{
    uint8_t len16[] = {0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4};
    uint8_t len64[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4};
    uint8_t ok16[] = {0x82, 0xFE, 0x00, 0x7E, 1, 2, 3, 4};
    struct wse_frame f;
    uint16_t code;

    ck_assert_int_eq(decode(len16, sizeof len16, &f, &code), WSE_FAIL);
    ck_assert_int_eq(code, WSE_CLOSE_PROTOCOL);
    ck_assert_int_eq(decode(len64, sizeof len64, &f, &code), WSE_FAIL);
    ck_assert_int_eq(decode(ok16, sizeof ok16, &f, &code), WSE_OK);
    ck_assert_uint_eq(f.len, 126);
}
END_TEST

/* Section 5.7's unmasked examples are exactly what the server writes. */
START_TEST(server_headers)
{
    uint8_t out[WSE_SERVER_HDR_MAX];

    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_TEXT, 5), 2);
    ck_assert_mem_eq(out, "\x81\x05", 2);
    ck_assert_uint_eq(wse_frame_write_header(out, false, WSE_OP_TEXT, 3), 2);
    ck_assert_mem_eq(out, "\x01\x03", 2);
    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_CONT, 2), 2);
    ck_assert_mem_eq(out, "\x80\x02", 2);
    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_BINARY, 256), 4);
    ck_assert_mem_eq(out, "\x82\x7E\x01\x00", 4);
    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_BINARY, 65536), 10);
    ck_assert_mem_eq(out, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_BINARY, 125), 2);
    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_BINARY, 126), 4);
    ck_assert_uint_eq(wse_frame_write_header(out, true, WSE_OP_BINARY, 65535), 4);
    ck_assert_mem_eq(out, "\x82\x7E\xFF\xFF", 4);
    for (uint64_t len = 0; len < 70000; len += 97)
        ck_assert_uint_eq(wse_frame_write_header(out, true, 2, len), wse_server_hdr_len(len));
}
END_TEST

/* Unmasking in pieces, at every alignment, matches the byte-wise definition. */
START_TEST(unmask_any_alignment_and_split)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t orig[200], buf[216], want[200];

    for (size_t i = 0; i < sizeof orig; i++) {
        orig[i] = (uint8_t)(i * 7 + 3);
        want[i] = orig[i] ^ mask[i & 3];
    }
    for (size_t align = 0; align < 16; align++) {
        for (size_t n = 0; n <= sizeof orig; n += (n < 40 ? 1 : 13)) {
            for (size_t split = 0; split <= n; split += (split < 20 ? 1 : 17)) {
                uint8_t *p = buf + align;
                memcpy(p, orig, n);
                unsigned pos = wse_unmask(p, split, mask, 0);
                ck_assert_uint_eq(pos, split & 3);
                pos = wse_unmask(p + split, n - split, mask, pos);
                ck_assert_uint_eq(pos, n & 3);
                ck_assert_mem_eq(p, want, n);
            }
        }
    }
}
END_TEST

START_TEST(close_write)
{
    uint8_t out[2 + WSE_CONTROL_MAX];
    char reason[200];
    uint16_t code;

    size_t n = wse_close_write(out, 1001, "going away", 10);
    ck_assert_uint_eq(n, 14);
    ck_assert_mem_eq(out, "\x88\x0c\x03\xe9going away", 14);
    memset(reason, 'x', sizeof reason);
    n = wse_close_write(out, 1009, reason, sizeof reason);
    ck_assert_uint_eq(n, 2 + 125);      /* reason cut to fit a control frame */
    ck_assert_int_eq(wse_close_parse(out + 2, n - 2, &code), WSE_OK);
    ck_assert_int_eq(code, 1009);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");

    tcase_add_test(tc, rfc_masked_hello);
    tcase_add_test(tc, prefixes_need_more);
    tcase_add_test(tc, reserved_opcodes_fail);
    tcase_add_test(tc, rsv_bits_fail_without_extension);
    tcase_add_test(tc, rsv1_allowed_by_extension);
    tcase_add_test(tc, unmasked_client_frame_fails);
    tcase_add_test(tc, control_frame_rules);
    tcase_add_test(tc, length_top_bit_fails);
    tcase_add_test(tc, non_minimal_length_fails);
    tcase_add_test(tc, server_headers);
    tcase_add_test(tc, unmask_any_alignment_and_split);
    tcase_add_test(tc, close_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return wse_run_suite(frame_suite());
}
