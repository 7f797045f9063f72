/*
 * test_proxy.c - the PROXY protocol header parser and the address formatter
 * (proxy.h).
 *
 * Every input below goes through the same checks:
 *   - parsed whole and fed one byte at a time (the buffer growing by one byte
 *     per call), with every result field compared, and every call before the
 *     verdict saying WSE_AGAIN with everything consumed;
 *   - every proper prefix, parsed whole from a fresh struct, says WSE_AGAIN;
 *   - bytes after the header (an HTTP request, garbage) change nothing;
 *   - placed right before a PROT_NONE page, so a read past len crashes.
 * Each bad input ends with its offending byte: it is a valid prefix plus one
 * byte, so the tests pin down that the parser fails at exactly that byte,
 * neither earlier nor later.
 *
 * Oracles independent of the parser: glibc's inet_pton() for the expected
 * address bytes, and for differential runs over random IPv4 and IPv6 texts;
 * glibc's inet_ntop() for the formatter (which differs from it only in not
 * writing IPv4-compatible addresses, ::a.b.c.d, with a dotted quad).
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guard.h"
#include "common.h"
#include "proxy.h"

/* A literal with its length (v2 headers hold NUL bytes). */
#define B(lit) lit, sizeof(lit) - 1
#define SIG "\r\n\r\n\0\r\nQUIT\n"

static const char HTTP_REQ[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/* ---- helpers ---- */

static void assert_same_result(const struct wse_proxy *a, const struct wse_proxy *b)
{
    ck_assert_uint_eq(a->parsed, b->parsed);
    ck_assert_uint_eq(a->version, b->version);
    ck_assert_uint_eq(a->command, b->command);
    ck_assert_uint_eq(a->family, b->family);
    ck_assert_uint_eq(a->header_len, b->header_len);
    ck_assert_uint_eq(a->src_port, b->src_port);
    ck_assert_uint_eq(a->dst_port, b->dst_port);
    ck_assert(memcmp(a->src_addr, b->src_addr, 16) == 0);
    ck_assert(memcmp(a->dst_addr, b->dst_addr, 16) == 0);
}

/* Feeds buf[0..n) one byte at a time; every call before the verdict must be AGAIN. */
static int parse_bytewise(const uint8_t *buf, size_t n, struct wse_proxy *p)
{
    int rc = WSE_AGAIN;

    wse_proxy_init(p);
    ck_assert_int_eq(wse_proxy_parse(p, buf, 0), WSE_AGAIN);
    for (size_t k = 1; k <= n && rc == WSE_AGAIN; k++) {
        rc = wse_proxy_parse(p, buf, k);
        if (rc == WSE_AGAIN)
            ck_assert_uint_eq(p->parsed, k);
    }
    return rc;
}

/* Parses whole and byte by byte, checks they agree; the whole result in *p. */
static int parse_both(const uint8_t *buf, size_t n, struct wse_proxy *p)
{
    struct wse_proxy inc;

    wse_proxy_init(p);
    int rc = wse_proxy_parse(p, buf, n);
    ck_assert_int_eq(parse_bytewise(buf, n, &inc), rc);
    assert_same_result(p, &inc);
    if (rc != WSE_AGAIN)   /* a verdict sticks */
        ck_assert_int_eq(wse_proxy_parse(p, buf, n), rc);
    return rc;
}

/*
 * parse_both() without Check's assertions, for the differential loops (each
 * passing ck_assert writes to the parent's pipe: millions would take long).
 * Returns the whole parse's verdict, or 99 if the two ways disagree.
 */
static int parse_both_quiet(const uint8_t *buf, size_t n, struct wse_proxy *p)
{
    struct wse_proxy q;
    int rc = WSE_AGAIN, whole;

    wse_proxy_init(p);
    whole = wse_proxy_parse(p, buf, n);
    wse_proxy_init(&q);
    for (size_t k = 1; k <= n && rc == WSE_AGAIN; k++) {
        rc = wse_proxy_parse(&q, buf, k);
        if (rc == WSE_AGAIN && q.parsed != k)
            return 99;
    }
    if (rc != whole || p->parsed != q.parsed || p->family != q.family ||
        p->header_len != q.header_len || p->src_port != q.src_port ||
        p->dst_port != q.dst_port || memcmp(p->src_addr, q.src_addr, 16) != 0 ||
        memcmp(p->dst_addr, q.dst_addr, 16) != 0)
        return 99;
    return whole;
}

static int parse_once(const void *buf, size_t n, struct wse_proxy *p)
{
    wse_proxy_init(p);
    return wse_proxy_parse(p, buf, n);
}

/* buf[0..n) followed by tail[0..tn), in a malloc'd buffer. */
static uint8_t *concat(const void *buf, size_t n, const void *tail, size_t tn)
{
    uint8_t *b = malloc(n + tn + 1);

    ck_assert_ptr_nonnull(b);
    memcpy(b, buf, n);
    memcpy(b + n, tail, tn);
    return b;
}

/* ---- guard page: no byte at or past len is ever read ---- */

/* Every prefix parsed whole from a fresh struct, then all of it byte by byte. */
static void guard_check(const void *buf, size_t n, int final_rc)
{
    struct guard g = guard_map();
    struct wse_proxy p;

    for (size_t k = 0; k <= n; k++) {
        const uint8_t *at = guard_place(&g, buf, k);
        int rc = parse_once(at, k, &p);
        ck_assert_int_eq(rc, k < n ? WSE_AGAIN : final_rc);
    }
    ck_assert_int_eq(parse_bytewise(guard_place(&g, buf, n), n, &p), final_rc);
    guard_unmap(&g);
}

/* ---- the two checks every case goes through ---- */

/* A complete valid header: returns the whole parse's result in *p. */
static void check_valid(const void *buf, size_t n, struct wse_proxy *p)
{
    struct wse_proxy q;
    static const uint8_t junk[] = { 'P', 0x0D, 0x00, 0xFF, '\n', ' ' };

    ck_assert_int_eq(parse_both(buf, n, p), WSE_OK);
    ck_assert_uint_eq(p->header_len, n);
    ck_assert_uint_eq(p->parsed, n);
    /* Every proper prefix is a valid prefix. */
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(parse_once(buf, k, &q), WSE_AGAIN);
    /* What follows the header is the client's and changes nothing. */
    const struct { const void *b; size_t n; } tails[] = {
        { HTTP_REQ, sizeof(HTTP_REQ) - 1 }, { junk, sizeof(junk) }, { buf, n },
    };
    for (size_t i = 0; i < countof(tails); i++) {
        uint8_t *b = concat(buf, n, tails[i].b, tails[i].n);
        ck_assert_int_eq(parse_both(b, n + tails[i].n, &q), WSE_OK);
        assert_same_result(p, &q);
        ck_assert(memcmp(b + n, tails[i].b, tails[i].n) == 0);
        free(b);
    }
    guard_check(buf, n, WSE_OK);
}

/* A valid prefix and one offending byte: fails at exactly that byte. */
static void check_bad(const void *buf, size_t n)
{
    struct wse_proxy p, q;

    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(parse_both(buf, n, &p), WSE_FAIL);
    ck_assert_uint_eq(p.parsed, n - 1);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(parse_once(buf, k, &q), WSE_AGAIN);
    uint8_t *b = concat(buf, n, HTTP_REQ, sizeof(HTTP_REQ) - 1);
    ck_assert_int_eq(parse_both(b, n + sizeof(HTTP_REQ) - 1, &q), WSE_FAIL);
    ck_assert_uint_eq(q.parsed, n - 1);
    free(b);
    guard_check(buf, n, WSE_FAIL);
}

/* The 16 bytes inet_pton() makes of text (IPv4 in the first 4, rest zero). */
static void addr_bytes(int family, const char *text, uint8_t out[16])
{
    memset(out, 0, 16);
    if (family == WSE_PROXY_UNSPEC)
        return;
    ck_assert_msg(inet_pton(family == WSE_PROXY_INET ? AF_INET : AF_INET6, text, out) == 1,
                  "test bug: bad address %s", text);
}

/* ---- valid headers ---- */

struct valid_case {
    const char *name;
    const char *bytes;
    size_t len;
    uint8_t version, command, family;
    const char *src, *dst;     /* inet_pton() text, NULL when UNSPEC */
    uint16_t sport, dport;
    const char *formatted;     /* wse_proxy_format_addr(); "" when UNSPEC */
};

#define V1(name, line, fam, src, dst, sp, dp, fmt) \
    { name, B(line), 1, WSE_PROXY_CMD_PROXY, fam, src, dst, sp, dp, fmt }
#define V2(name, bytes, cmd, fam, src, dst, sp, dp, fmt) \
    { name, B(bytes), 2, cmd, fam, src, dst, sp, dp, fmt }

static const struct valid_case valid[] = {
    /* v1 TCP4 */
    V1("v1-tcp4-spec", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
       WSE_PROXY_INET, "192.168.0.1", "192.168.0.11", 56324, 443, "192.168.0.1:56324"),
    V1("v1-tcp4-extremes", "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
       WSE_PROXY_INET, "0.0.0.0", "255.255.255.255", 0, 65535, "0.0.0.0:0"),
    V1("v1-tcp4-longest", "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
       WSE_PROXY_INET, "255.255.255.255", "255.255.255.255", 65535, 65535,
       "255.255.255.255:65535"),
    V1("v1-tcp4-zeros-in-octets", "PROXY TCP4 10.0.100.200 100.10.0.1 10 100\r\n",
       WSE_PROXY_INET, "10.0.100.200", "100.10.0.1", 10, 100, "10.0.100.200:10"),
    /* v1 TCP6 */
    V1("v1-tcp6-doc", "PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n",
       WSE_PROXY_INET6, "2001:db8::1", "2001:db8::2", 1234, 80, "[2001:db8::1]:1234"),
    V1("v1-tcp6-spec-longest",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
       WSE_PROXY_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535,
       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    V1("v1-tcp6-any-loopback", "PROXY TCP6 :: ::1 0 1\r\n",
       WSE_PROXY_INET6, "::", "::1", 0, 1, "[::]:0"),
    V1("v1-tcp6-trailing-dcolon", "PROXY TCP6 1:2:3:4:5:6:7:: 1:: 2 3\r\n",
       WSE_PROXY_INET6, "1:2:3:4:5:6:7::", "1::", 2, 3, "[1:2:3:4:5:6:7:0]:2"),
    V1("v1-tcp6-dcolon-one-group", "PROXY TCP6 ::2:3:4:5:6:7:8 1::3:4:5:6:7:8 4 5\r\n",
       WSE_PROXY_INET6, "::2:3:4:5:6:7:8", "1::3:4:5:6:7:8", 4, 5, "[0:2:3:4:5:6:7:8]:4"),
    V1("v1-tcp6-no-compression", "PROXY TCP6 0:0:0:0:0:0:0:0 1:0:0:0:0:0:0:1 6 7\r\n",
       WSE_PROXY_INET6, "::", "1::1", 6, 7, "[::]:6"),
    V1("v1-tcp6-case-leading-zeros",
       "PROXY TCP6 ABCD:EF01:0023:4567:89aB:cDeF:0000:000F 0001:0002::00ff 8 9\r\n",
       WSE_PROXY_INET6, "abcd:ef01:23:4567:89ab:cdef:0:f", "1:2::ff", 8, 9,
       "[abcd:ef01:23:4567:89ab:cdef:0:f]:8"),
    V1("v1-tcp6-mapped", "PROXY TCP6 ::ffff:1.2.3.4 ::FFFF:255.255.255.255 10 11\r\n",
       WSE_PROXY_INET6, "::ffff:1.2.3.4", "::ffff:255.255.255.255", 10, 11,
       "[::ffff:1.2.3.4]:10"),
    V1("v1-tcp6-quad-after-six", "PROXY TCP6 1:2:3:4:5:6:7.8.9.10 1:2:3:4:5::0.0.0.0 12 13\r\n",
       WSE_PROXY_INET6, "1:2:3:4:5:6:708:90a", "1:2:3:4:5::", 12, 13,
       "[1:2:3:4:5:6:708:90a]:12"),
    V1("v1-tcp6-compat", "PROXY TCP6 ::1.2.3.4 1::2.3.4.5 14 15\r\n",
       WSE_PROXY_INET6, "::102:304", "1::203:405", 14, 15, "[::102:304]:14"),
    /* The longest line that fits: dotted quads make 45-character addresses. */
    V1("v1-tcp6-107-bytes",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
       "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 65535 65535\r\n",
       WSE_PROXY_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
       "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4", 65535, 65535,
       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    /* v1 UNKNOWN */
    V1("v1-unknown-short", "PROXY UNKNOWN\r\n", WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V1("v1-unknown-space", "PROXY UNKNOWN \r\n", WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V1("v1-unknown-addresses", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
       WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V1("v1-unknown-anything", "PROXY UNKNOWN \t\x01\x7F\x80\xFF  double  spaces ::: 99999\r\n",
       WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V1("v1-unknown-spec-worst-107",
       "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
       WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    /* v2 */
    V2("v2-tcp4",
       SIG "\x21\x11\x00\x0C" "\xC0\x00\x02\x01" "\xC6\x33\x64\x07" "\x04\xD2" "\x01\xBB",
       WSE_PROXY_CMD_PROXY, WSE_PROXY_INET, "192.0.2.1", "198.51.100.7", 1234, 443,
       "192.0.2.1:1234"),
    V2("v2-tcp6",
       SIG "\x21\x21\x00\x24"
       "\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
       "\x20\x01\x0D\xB8\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
       "\xFF\xFF" "\x00\x00",
       WSE_PROXY_CMD_PROXY, WSE_PROXY_INET6, "2001:db8::1", "2001:db8:1::2", 65535, 0,
       "[2001:db8::1]:65535"),
    V2("v2-tcp4-tlvs",
       SIG "\x21\x11\x00\x26" "\x7F\x00\x00\x01" "\x7F\x00\x00\x02" "\x00\x50" "\x1F\x90"
       "\x01\x00\x02" "h2"                      /* ALPN */
       "\x04\x00\x00"                           /* NOOP, empty */
       "\x05\x00\x04" "abcd"                    /* UNIQUE_ID */
       "\x20\x00\x08" "\x01\x00\x00\x00\x00" "\x21\x00\x00",   /* SSL, a sub-TLV */
       WSE_PROXY_CMD_PROXY, WSE_PROXY_INET, "127.0.0.1", "127.0.0.2", 80, 8080,
       "127.0.0.1:80"),
    V2("v2-tcp6-tlv",
       SIG "\x21\x21\x00\x29"
       "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xFF\xFF\x0A\x00\x00\x01"
       "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
       "\x00\x01" "\x00\x02"
       "\x30\x00\x02" "ns",
       WSE_PROXY_CMD_PROXY, WSE_PROXY_INET6, "::ffff:10.0.0.1", "::1", 1, 2,
       "[::ffff:10.0.0.1]:1"),
    V2("v2-local-empty", SIG "\x20\x00\x00\x00",
       WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    /* LOCAL: the block is skipped whatever it holds, even bytes no TLV makes. */
    V2("v2-local-with-addresses",
       SIG "\x20\x11\x00\x0E" "\x7F\x00\x00\x01" "\x7F\x00\x00\x01" "\x00\x50" "\x00\x51" "\xAA\xBB",
       WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V2("v2-local-udp6-short", SIG "\x20\x22\x00\x01" "\x00",
       WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V2("v2-local-unix", SIG "\x20\x31\x00\x00",
       WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    /* Family and transport nibbles each defined, the pair unusual. */
    V2("v2-local-unspec-stream", SIG "\x20\x01\x00\x00",
       WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V2("v2-local-inet-unspec", SIG "\x20\x10\x00\x00",
       WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V2("v2-proxy-unspec", SIG "\x21\x00\x00\x00",
       WSE_PROXY_CMD_PROXY, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
    V2("v2-proxy-unspec-skipped", SIG "\x21\x00\x00\x05" "\x01\x02\x03\x04\x05",
       WSE_PROXY_CMD_PROXY, WSE_PROXY_UNSPEC, NULL, NULL, 0, 0, ""),
};

static void check_case_fields(const struct valid_case *c, const struct wse_proxy *p)
{
    uint8_t src[16], dst[16];

    ck_assert_uint_eq(p->version, c->version);
    ck_assert_uint_eq(p->command, c->command);
    ck_assert_uint_eq(p->family, c->family);
    addr_bytes(c->family, c->src, src);
    addr_bytes(c->family, c->dst, dst);
    ck_assert(memcmp(p->src_addr, src, 16) == 0);
    ck_assert(memcmp(p->dst_addr, dst, 16) == 0);
    ck_assert_uint_eq(p->src_port, c->sport);
    ck_assert_uint_eq(p->dst_port, c->dport);

    char out[WSE_PROXY_ADDRSTRLEN];
    size_t n = wse_proxy_format_addr(p, out, sizeof(out));
    ck_assert_str_eq(out, c->formatted);
    ck_assert_uint_eq(n, strlen(c->formatted));
}

START_TEST(test_valid)
{
    const struct valid_case *c = &valid[_i];
    struct wse_proxy p;

    check_valid(c->bytes, c->len, &p);
    check_case_fields(c, &p);
}
END_TEST

/* v2 headers at the length limit, built: 16 + 1024 bytes. */
START_TEST(test_v2_max_length)
{
    uint8_t b[WSE_PROXY_MAX + 1];
    struct wse_proxy p;

    /* TCP6, then one TLV filling the rest: 36 + 3 + 985 = 1024. */
    memset(b, 0xA5, sizeof(b));
    memcpy(b, SIG "\x21\x21\x04\x00", 16);
    b[52] = 0xE0;
    b[53] = 985 >> 8;
    b[54] = 985 & 0xFF;
    check_valid(b, WSE_PROXY_MAX, &p);
    ck_assert_uint_eq(p.header_len, 1040);
    ck_assert_uint_eq(p.family, WSE_PROXY_INET6);
    ck_assert_uint_eq(p.src_port, 0xA5A5);

    /* TCP4, 336 empty TLVs and a 1-byte one: 12 + 3 * 336 + (3 + 1) = 1024. */
    memset(b, 0, sizeof(b));
    memcpy(b, SIG "\x21\x11\x04\x00", 16);
    b[16] = 10;
    b[1038] = 1;   /* the last TLV's length: 1, its value at 1039 */
    check_valid(b, WSE_PROXY_MAX, &p);
    ck_assert_uint_eq(p.src_addr[0], 10);

    /* LOCAL skips 1024 bytes. */
    memset(b, 0xFF, sizeof(b));
    memcpy(b, SIG "\x20\x00\x04\x00", 16);
    check_valid(b, WSE_PROXY_MAX, &p);
    ck_assert_uint_eq(p.command, WSE_PROXY_CMD_LOCAL);
}
END_TEST

/*
 * Headers haproxy 2.6.12 sent, byte for byte: send-proxy and send-proxy-v2
 * over IPv4 and IPv6, proxy-v2-options crc32c,unique-id (two TLVs), and the
 * LOCAL header of check-send-proxy health checks.
 */
static const struct {
    const char *hex;
    uint8_t version, command, family;
    const char *src;
    uint16_t sport, dport;
} captures[] = {
    { "50524f58592054435034203132372e302e302e31203132372e302e302e31203535363038"
      "2032383038300d0a", 1, WSE_PROXY_CMD_PROXY, WSE_PROXY_INET, "127.0.0.1", 55608, 28080 },
    { "50524f58592054435036203a3a31203a3a312033353034302032383130300d0a",
      1, WSE_PROXY_CMD_PROXY, WSE_PROXY_INET6, "::1", 35040, 28100 },
    { "0d0a0d0a000d0a515549540a2111000c7f0000017f000001c5ce6dba",
      2, WSE_PROXY_CMD_PROXY, WSE_PROXY_INET, "127.0.0.1", 50638, 28090 },
    { "0d0a0d0a000d0a515549540a21210024000000000000000000000000000000010000000000"
      "000000000000000000000199606dce",
      2, WSE_PROXY_CMD_PROXY, WSE_PROXY_INET6, "::1", 39264, 28110 },
    { "0d0a0d0a000d0a515549540a2111003f7f0000017f000001ece46dba0300042d9c13ce0500"
      "2937463030303030313a454345345f37463030303030313a364442415f36423037384446"
      "415f30303030",
      2, WSE_PROXY_CMD_PROXY, WSE_PROXY_INET, "127.0.0.1", 60644, 28090 },
    { "0d0a0d0a000d0a515549540a212100870000000000000000000000000000000100000000000"
      "000000000000000000001e8c06dce0300042a762a2505005930303030303030303030303030"
      "303030303030303030303030303030303030313a453843305f303030303030303030303030"
      "30303030303030303030303030303030303030313a364443455f3642303738444641"
      "5f30303031",
      2, WSE_PROXY_CMD_PROXY, WSE_PROXY_INET6, "::1", 59584, 28110 },
    { "0d0a0d0a000d0a515549540a20000000", 2, WSE_PROXY_CMD_LOCAL, WSE_PROXY_UNSPEC, NULL, 0, 0 },
};

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;

    ck_assert_uint_le(n, cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

START_TEST(test_haproxy_captures)
{
    uint8_t b[256], addr[16];
    struct wse_proxy p;
    size_t n = unhex(captures[_i].hex, b, sizeof(b));

    check_valid(b, n, &p);
    ck_assert_uint_eq(p.version, captures[_i].version);
    ck_assert_uint_eq(p.command, captures[_i].command);
    ck_assert_uint_eq(p.family, captures[_i].family);
    addr_bytes(captures[_i].family, captures[_i].src, addr);
    ck_assert(memcmp(p.src_addr, addr, 16) == 0);
    ck_assert(memcmp(p.dst_addr, addr, 16) == 0);
    ck_assert_uint_eq(p.src_port, captures[_i].sport);
    ck_assert_uint_eq(p.dst_port, captures[_i].dport);
}
END_TEST

/* ---- malformed headers: each ends with its offending byte ---- */

struct bad_case {
    const char *name;
    const char *bytes;
    size_t len;
};

#define BAD(name, bytes) { name, B(bytes) }

static const struct bad_case bad[] = {
    /* not a PROXY header at all: the first byte says so */
    BAD("http-get", "G"),
    BAD("tls-hello", "\x16"),
    BAD("lowercase-proxy", "p"),
    BAD("nul", "\0"),
    BAD("v1-typo", "PROXZ"),
    BAD("v1-no-space", "PROXYT"),
    /* v1 literals and single spaces */
    BAD("v1-double-space-1", "PROXY  "),
    BAD("v1-tab", "PROXY\t"),
    BAD("v1-lowercase-tcp", "PROXY t"),
    BAD("v1-tcp5", "PROXY TCP5"),
    BAD("v1-tcp-no-family", "PROXY TCP "),
    BAD("v1-udp4", "PROXY UD"),
    BAD("v1-double-space-2", "PROXY TCP4  "),
    BAD("v1-double-space-3", "PROXY TCP4 1.2.3.4  "),
    BAD("v1-double-space-4", "PROXY TCP4 1.2.3.4 5.6.7.8  "),
    BAD("v1-double-space-5", "PROXY TCP4 1.2.3.4 5.6.7.8 1  "),
    BAD("v1-space-before-crlf", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 "),
    BAD("v1-bare-lf", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
    BAD("v1-cr-not-lf", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"),
    BAD("v1-cr-cr", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r"),
    BAD("v1-missing-dport", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r"),
    BAD("v1-missing-dst", "PROXY TCP4 1.2.3.4\r"),
    BAD("v1-unknownx", "PROXY UNKNOWNX"),
    BAD("v1-unknown-bare-lf", "PROXY UNKNOWN\n"),
    BAD("v1-unknown-tail-bare-lf", "PROXY UNKNOWN foo\n"),
    BAD("v1-unknown-cr-not-lf", "PROXY UNKNOWN foo\rb"),
    BAD("v1-unknown-short", "PROXY UNKNOWNN"),
    /* IPv4 */
    BAD("v4-octet-256", "PROXY TCP4 256"),
    BAD("v4-octet-300", "PROXY TCP4 1.2.3.4 5.6.7.300"),
    BAD("v4-octet-999", "PROXY TCP4 99"  "9"),
    BAD("v4-leading-zero", "PROXY TCP4 01"),
    BAD("v4-leading-zeros", "PROXY TCP4 1.00"),
    BAD("v4-leading-zero-last", "PROXY TCP4 1.2.3.4 1.2.3.01"),
    BAD("v4-three-octets", "PROXY TCP4 1.2.3 "),
    BAD("v4-five-octets", "PROXY TCP4 1.2.3.4."),
    BAD("v4-empty-octet", "PROXY TCP4 1.."),
    BAD("v4-leading-dot", "PROXY TCP4 ."),
    BAD("v4-trailing-dot", "PROXY TCP4 1.2.3. "),
    BAD("v4-hex", "PROXY TCP4 0x"),
    BAD("v4-ipv6", "PROXY TCP4 :"),
    BAD("v4-sign", "PROXY TCP4 +"),
    BAD("v4-in-tcp6", "PROXY TCP6 1."),
    /* ports */
    BAD("port-65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536"),
    BAD("port-70000", "PROXY TCP4 1.2.3.4 5.6.7.8 1 70000"),
    BAD("port-six-digits", "PROXY TCP4 1.2.3.4 5.6.7.8 100000"),
    BAD("port-leading-zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01"),
    BAD("port-zero-zero", "PROXY TCP4 1.2.3.4 5.6.7.8 1 00"),
    BAD("port-sign", "PROXY TCP4 1.2.3.4 5.6.7.8 -"),
    BAD("port-hex", "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x"),
    BAD("port-empty-dport", "PROXY TCP4 1.2.3.4 5.6.7.8 1 \r"),
    /* IPv6 */
    BAD("v6-triple-colon", "PROXY TCP6 :::"),
    BAD("v6-triple-colon-mid", "PROXY TCP6 1:::"),
    BAD("v6-two-dcolons", "PROXY TCP6 1::2::"),
    BAD("v6-two-dcolons-lead", "PROXY TCP6 ::1::"),
    BAD("v6-nine-groups", "PROXY TCP6 1:2:3:4:5:6:7:8:"),
    BAD("v6-eight-and-dcolon", "PROXY TCP6 1:2:3:4:5:6:7::8"),
    BAD("v6-dcolon-and-eight", "PROXY TCP6 ::1:2:3:4:5:6:7:"),
    BAD("v6-dcolon-mid-eight", "PROXY TCP6 1:2:3::4:5:6:7:"),
    BAD("v6-seven-groups", "PROXY TCP6 1:2:3:4:5:6:7 "),
    BAD("v6-lone-leading-colon", "PROXY TCP6 :1"),
    BAD("v6-lone-leading-colon-2", "PROXY TCP6 :/"),
    BAD("v6-trailing-colon", "PROXY TCP6 1::2: "),
    BAD("v6-only-colon", "PROXY TCP6 : "),
    BAD("v6-empty", "PROXY TCP6  "),
    BAD("v6-five-hex-digits", "PROXY TCP6 12345"),
    BAD("v6-bad-hex", "PROXY TCP6 1:g"),
    BAD("v6-zone", "PROXY TCP6 fe80::1%"),
    BAD("v6-brackets", "PROXY TCP6 ["),
    BAD("v6-quad-first", "PROXY TCP6 1."),
    BAD("v6-quad-then-dcolon", "PROXY TCP6 ::1.2.3.4:"),
    BAD("v6-quad-then-group", "PROXY TCP6 ::1.2.3.4a"),
    BAD("v6-quad-after-seven", "PROXY TCP6 1:2:3:4:5:6:7:1."),
    BAD("v6-quad-after-five", "PROXY TCP6 1:2:3:4:5:1."),
    BAD("v6-quad-after-six-dcolon", "PROXY TCP6 1:2:3:4:5:6::1."),
    BAD("v6-quad-after-six-dcolon-2", "PROXY TCP6 ::1:2:3:4:5:6:7."),
    BAD("v6-quad-after-colon", "PROXY TCP6 ::1:."),
    BAD("v6-quad-after-dcolon", "PROXY TCP6 ::."),
    BAD("v6-quad-hex-octet", "PROXY TCP6 ::a."),
    BAD("v6-quad-octet-256", "PROXY TCP6 ::256."),
    BAD("v6-quad-octet-4-digits", "PROXY TCP6 ::1234."),
    BAD("v6-quad-leading-zero", "PROXY TCP6 ::01."),
    BAD("v6-quad-leading-zero-2", "PROXY TCP6 ::1.02"),
    BAD("v6-quad-later-256", "PROXY TCP6 ::1.2.3.256"),
    BAD("v6-quad-three-octets", "PROXY TCP6 ::1.2.3 "),
    BAD("v6-quad-five-octets", "PROXY TCP6 ::1.2.3.4."),
    BAD("v6-quad-empty-octet", "PROXY TCP6 ::1.."),
    /* the 107-byte limit: a 5-digit dport cannot fit after this, */
    BAD("v1-tcp6-108-bytes",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
        "ffff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 65535 65535"),
    /* nor a destination this long (" 0 0\r\n" must still follow), */
    BAD("v1-tcp6-long-dst",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"),
    /* nor anything but the CR at byte 105 of UNKNOWN */
    BAD("v1-unknown-108-bytes",
        "PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    /* v2 */
    BAD("v2-version-1", SIG "\x11"),
    BAD("v2-version-3", SIG "\x31"),
    BAD("v2-version-0", SIG "\x01"),
    BAD("v2-command-2", SIG "\x22"),
    BAD("v2-command-f", SIG "\x2F"),
    BAD("v2-proxy-udp4", SIG "\x21\x12"),
    BAD("v2-proxy-udp6", SIG "\x21\x22"),
    BAD("v2-proxy-unix-stream", SIG "\x21\x31"),
    BAD("v2-proxy-unix-dgram", SIG "\x21\x32"),
    BAD("v2-proxy-family-4", SIG "\x21\x41"),
    BAD("v2-proxy-transport-3", SIG "\x21\x13"),
    BAD("v2-proxy-unspec-stream", SIG "\x21\x01"),
    BAD("v2-proxy-inet-unspec", SIG "\x21\x10"),
    BAD("v2-local-undefined", SIG "\x20\x13"),
    BAD("v2-local-family-f", SIG "\x20\xF1"),
    BAD("v2-local-family-4", SIG "\x20\x40"),
    BAD("v2-tcp4-len-11", SIG "\x21\x11\x00\x0B"),
    BAD("v2-tcp4-len-0", SIG "\x21\x11\x00\x00"),
    BAD("v2-tcp4-len-13", SIG "\x21\x11\x00\x0D"),   /* 1 byte: no TLV */
    BAD("v2-tcp4-len-14", SIG "\x21\x11\x00\x0E"),   /* 2 bytes: no TLV */
    BAD("v2-tcp6-len-35", SIG "\x21\x21\x00\x23"),
    BAD("v2-tcp6-len-12", SIG "\x21\x21\x00\x0C"),
    BAD("v2-tcp6-len-38", SIG "\x21\x21\x00\x26"),
    BAD("v2-len-1280", SIG "\x21\x11\x05"),
    BAD("v2-len-65535", SIG "\x21\x11\xFF"),
    BAD("v2-len-1025", SIG "\x21\x11\x04\x01"),
    BAD("v2-local-len-1025", SIG "\x20\x00\x04\x01"),
    BAD("v2-unspec-len-1025", SIG "\x21\x00\x04\x01"),
    /* TLVs: one longer than the rest of the header */
    BAD("v2-tlv-overruns",
        SIG "\x21\x11\x00\x14" "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02"
        "\x01\x00\x06"),
    /* or one that leaves 1 or 2 bytes, too few for another */
    BAD("v2-tlv-leaves-1",
        SIG "\x21\x11\x00\x14" "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02"
        "\x01\x00\x04"),
    BAD("v2-tlv-leaves-2",
        SIG "\x21\x11\x00\x14" "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02"
        "\x01\x00\x03"),
    BAD("v2-second-tlv-overruns",
        SIG "\x21\x11\x00\x14" "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02"
        "\x01\x00\x00" "\x02\x00\x03"),
    BAD("v2-tlv-huge", SIG "\x21\x21\x00\x27"
        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
        "\x00\x01" "\x00\x02" "\xFF\xFF\xFF"),
};

START_TEST(test_bad)
{
    check_bad(bad[_i].bytes, bad[_i].len);
}
END_TEST

/* Each signature byte, when wrong, fails at exactly its own position. */
START_TEST(test_v2_bad_signature_each_byte)
{
    static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
    uint8_t b[13];

    for (int i = 0; i < 12; i++) {
        for (int v = 0; v < 256; v++) {
            if (v == sig[i] || (i == 0 && v == 'P'))
                continue;
            memcpy(b, sig, (size_t)i);
            b[i] = (uint8_t)v;
            check_bad(b, (size_t)i + 1);
        }
    }
}
END_TEST

/* A GET sent straight to the listener is refused on its first byte. */
START_TEST(test_get_fails_at_first_byte)
{
    static const char req[] = "GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n";
    struct wse_proxy p;

    ck_assert_int_eq(parse_once(req, 1, &p), WSE_FAIL);
    ck_assert_uint_eq(p.parsed, 0);
    ck_assert_int_eq(parse_once(req, sizeof(req) - 1, &p), WSE_FAIL);
    ck_assert_uint_eq(p.parsed, 0);
    ck_assert_int_eq(parse_once(req, 0, &p), WSE_AGAIN);
}
END_TEST

/* Only 'P' and 0x0D may start a header. */
START_TEST(test_first_byte)
{
    struct wse_proxy p;

    for (int v = 0; v < 256; v++) {
        uint8_t c = (uint8_t)v;
        int want = (c == 'P' || c == 0x0D) ? WSE_AGAIN : WSE_FAIL;
        ck_assert_int_eq(parse_once(&c, 1, &p), want);
    }
}
END_TEST

/* The header is at the front of the stream: a PROXY line later is not one. */
START_TEST(test_header_not_at_start)
{
    static const char s[] = "\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    struct wse_proxy p;

    ck_assert_int_eq(parse_once(B(s), &p), WSE_FAIL);
    ck_assert_uint_eq(p.parsed, 2);
}
END_TEST

/* Every header is decided within WSE_PROXY_MAX bytes. */
START_TEST(test_more_than_max_never_needed)
{
    uint8_t b[WSE_PROXY_MAX + 200];
    struct wse_proxy p;

    /* Whatever follows a max-length v2 header, the verdict is at 1040. */
    memset(b, 0, sizeof(b));
    memcpy(b, SIG "\x20\x00\x04\x00", 16);
    ck_assert_int_eq(parse_once(b, WSE_PROXY_MAX - 1, &p), WSE_AGAIN);
    ck_assert_int_eq(parse_once(b, sizeof(b), &p), WSE_OK);
    ck_assert_uint_eq(p.header_len, WSE_PROXY_MAX);
    /* A v1 line without CRLF fails by byte 107. */
    memset(b, 'x', sizeof(b));
    memcpy(b, "PROXY UNKNOWN ", 14);
    ck_assert_int_eq(parse_once(b, sizeof(b), &p), WSE_FAIL);
    ck_assert_uint_lt(p.parsed, WSE_PROXY_V1_MAX);
}
END_TEST

/* ---- differential: the address scanners against glibc's inet_pton() ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    /* xorshift64*: deterministic, good enough to pick characters */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* A random address-like text: weighted towards the tricky characters. */
static size_t random_text(char *s, size_t max, const char *alphabet)
{
    size_t n = rnd() % (max + 1), alen = strlen(alphabet);

    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[rnd() % alen];
    s[n] = '\0';
    return n;
}

/* The shortest completions of an address field, as proxy.c's budget has them. */
static const char *const completions[] = {
    "", "0", ":", "::", ".0", "0.0", ".0.0", "0.0.0", ".0.0.0", "0.0.0.0",
};

static bool pton_ok(int af, const char *s, uint8_t out[16])
{
    memset(out, 0, 16);
    return inet_pton(af, s, out) == 1;
}

static bool completable(int af, const char *s)
{
    char t[128];
    uint8_t tmp[16];

    for (size_t i = 0; i < countof(completions); i++) {
        snprintf(t, sizeof(t), "%s%s", s, completions[i]);
        if (pton_ok(af, t, tmp))
            return true;
    }
    return false;
}

/*
 * "PROXY TCP6 <s> ::1 1 2\r\n": the parser accepts exactly what inet_pton()
 * accepts, with the same bytes; and where it fails inside the address, the
 * text up to the failing byte can be completed (it failed no earlier than
 * needed) and the text with it cannot (no later than needed).
 */
static void differential(int af, const char *s, size_t n)
{
    char line[160];
    uint8_t want[16];
    struct wse_proxy p;
    const char *head = af == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ";
    size_t hl = strlen(head);

    int len = snprintf(line, sizeof(line), "%s%s %s 1 2\r\n", head, s,
                       af == AF_INET ? "0.0.0.0" : "::1");
    bool ok = pton_ok(af, s, want);
    int rc = parse_both_quiet((const uint8_t *)line, (size_t)len, &p);
    if (rc != (ok ? WSE_OK : WSE_FAIL))
        ck_abort_msg("\"%s\": parser %d, inet_pton %d", s, rc, ok);
    if (ok) {
        if (memcmp(p.src_addr, want, 16) != 0)
            ck_abort_msg("\"%s\": bytes differ", s);
        return;
    }
    size_t at = p.parsed - hl;   /* the failing byte within s, or its ' ' */
    if (p.parsed < hl || at > n)
        ck_abort_msg("\"%s\": failed at %u, outside the address", s, p.parsed);
    char pre[128];
    memcpy(pre, s, at);
    pre[at] = '\0';
    if (!completable(af, pre))
        ck_abort_msg("\"%s\": failed at %zu, too late", s, at);
    if (at < n) {
        memcpy(pre, s, at + 1);
        pre[at + 1] = '\0';
        if (completable(af, pre))
            ck_abort_msg("\"%s\": failed at %zu, too early", s, at);
    }
}

START_TEST(test_differential_ipv6)
{
    char s[64];

    for (int i = 0; i < 300000; i++) {
        const char *alpha = (i & 1) ? "0123456789abcdefABCDEF::::...." : "01f::.25";
        size_t n = random_text(s, 46, alpha);
        differential(AF_INET6, s, n);
    }
}
END_TEST

START_TEST(test_differential_ipv4)
{
    char s[64];

    for (int i = 0; i < 100000; i++) {
        size_t n = random_text(s, 17, (i & 1) ? "0123456789...." : "0125..");
        differential(AF_INET, s, n);
    }
}
END_TEST

/* Addresses glibc prints, printed back by inet_ntop() and parsed again. */
START_TEST(test_differential_ipv6_roundtrip)
{
    uint8_t a[16];
    char text[INET6_ADDRSTRLEN], line[160];
    struct wse_proxy p;

    for (int i = 0; i < 100000; i++) {
        for (int j = 0; j < 16; j += 2) {
            uint32_t r = rnd();
            bool zero = r % 3 != 0;   /* many zero groups: compression cases */
            a[j] = zero ? 0 : (uint8_t)(r >> 8);
            a[j + 1] = zero ? 0 : (uint8_t)(r >> 16);
        }
        ck_assert_ptr_nonnull(inet_ntop(AF_INET6, a, text, sizeof(text)));
        int len = snprintf(line, sizeof(line), "PROXY TCP6 %s %s 1 2\r\n", text, text);
        if (parse_both_quiet((const uint8_t *)line, (size_t)len, &p) != WSE_OK ||
            memcmp(p.src_addr, a, 16) != 0 || memcmp(p.dst_addr, a, 16) != 0)
            ck_abort_msg("%s: not parsed back", text);
    }
}
END_TEST

/* ---- differential: whole v1 lines near the 107-byte limit ---- */

/* Strict decimal port: 1-5 digits, no leading zero, <= 65535. */
static bool ref_port(const char *f, size_t n)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (f[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (unsigned)(f[i] - '0');
    }
    return v <= 65535;
}

static bool ref_addr(int af, const char *f, size_t n, uint8_t out[16])
{
    char t[64];

    if (n >= sizeof(t) || memchr(f, '\0', n))
        return false;
    memcpy(t, f, n);
    t[n] = '\0';
    return pton_ok(af, t, out);
}

/*
 * A reference for complete TCP4/TCP6 lines, written the obvious way: split
 * on single spaces, inet_pton() for the addresses, at most 107 bytes.
 */
static bool ref_v1_line(const char *l, size_t n, uint8_t src[16], uint16_t *sport)
{
    int af;
    const char *f[4];
    size_t fl[4];
    uint8_t dst[16];

    if (n > WSE_PROXY_V1_MAX || n < 13 || l[n - 2] != '\r' || l[n - 1] != '\n')
        return false;
    if (memcmp(l, "PROXY TCP4 ", 11) == 0)
        af = AF_INET;
    else if (memcmp(l, "PROXY TCP6 ", 11) == 0)
        af = AF_INET6;
    else
        return false;
    const char *q = l + 11, *end = l + n - 2;
    for (int i = 0; i < 4; i++) {
        const char *sp = memchr(q, ' ', (size_t)(end - q));
        if (i < 3 && !sp)
            return false;
        if (i == 3 && sp)
            return false;
        f[i] = q;
        fl[i] = (size_t)((sp ? sp : end) - q);
        q = sp ? sp + 1 : end;
    }
    if (!ref_addr(af, f[0], fl[0], src) || !ref_addr(af, f[1], fl[1], dst) ||
        !ref_port(f[2], fl[2]) || !ref_port(f[3], fl[3]))
        return false;
    *sport = (uint16_t)atoi(f[2]);
    return true;
}

/* Can some line of at most 107 bytes begin with l[0..n)?  The candidates are
 * the shortest completions of each field, as in differential() above. */
static bool line_completable(const char *l, size_t n)
{
    static const char *const tails6[] = { " :: 0 0\r\n", " 0 0\r\n", " 0\r\n", "\r\n", "\n" };
    static const char *const tails4[] = { " 0.0.0.0 0 0\r\n", " 0 0\r\n", " 0\r\n", "\r\n", "\n" };
    char t[256];
    uint8_t a[16];
    uint16_t port;

    if (n < 11 || n > WSE_PROXY_V1_MAX)
        return false;
    bool six = l[9] == '6';
    for (size_t i = 0; i < countof(completions); i++) {
        for (size_t j = 0; j < countof(tails6); j++) {
            const char *c = completions[i], *tl = six ? tails6[j] : tails4[j];
            size_t cn = strlen(c), tn = strlen(tl);
            if (n + cn + tn > sizeof(t))
                continue;
            memcpy(t, l, n);
            memcpy(t + n, c, cn);
            memcpy(t + n + cn, tl, tn);
            if (ref_v1_line(t, n + cn + tn, a, &port))
                return true;
        }
    }
    return false;
}

static size_t gen_hex_group(char *o)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    size_t n = rnd() % 3 ? 4 : 1 + rnd() % 4;

    for (size_t i = 0; i < n; i++)
        o[i] = hex[rnd() % (sizeof(hex) - 1)];
    return n;
}

static size_t gen_octet(char *o)
{
    unsigned v = rnd() % 3 ? 100 + rnd() % 156 : rnd() % 256;

    return (size_t)sprintf(o, "%u", v);
}

/* A valid address, long more often than not. */
static size_t gen_addr(int af, char *o)
{
    size_t n = 0;

    if (af == AF_INET) {
        for (int i = 0; i < 4; i++) {
            if (i)
                o[n++] = '.';
            n += gen_octet(o + n);
        }
        return n;
    }
    bool quad = rnd() % 2, dcolon = rnd() % 4 == 0;
    int groups = quad ? 6 : 8;
    int at = dcolon ? (int)(rnd() % (unsigned)groups) : -1;
    int skip = dcolon ? 1 + (int)(rnd() % (unsigned)(groups - at)) : 0;
    for (int g = 0; g < groups; g++) {
        if (g == at) {
            o[n++] = ':';
            o[n++] = ':';
            g += skip - 1;
            continue;
        }
        if (g > 0 && g != at + skip)
            o[n++] = ':';
        n += gen_hex_group(o + n);
    }
    if (quad) {
        if (n > 0 && o[n - 1] != ':')
            o[n++] = ':';
        for (int i = 0; i < 4; i++) {
            if (i)
                o[n++] = '.';
            n += gen_octet(o + n);
        }
    }
    return n;
}

static size_t gen_port(char *o)
{
    unsigned v = rnd() % 4 ? 10000 + rnd() % 55536 : rnd() % 65536;

    return (size_t)sprintf(o, "%u", v);
}

/*
 * Random lines, mostly long, some with a character replaced, inserted or
 * removed: the parser accepts exactly what the reference accepts, and where
 * it fails, the bytes before the failing one could still begin a valid
 * line (not too early) and the failing one cannot (not too late).  Over
 * long lines this pins the 107-byte budget to the byte.
 */
START_TEST(test_differential_lines)
{
    char l[256];
    uint8_t src[16];
    uint16_t sport;
    struct wse_proxy p;

    for (int it = 0; it < 20000; it++) {
        int af = rnd() % 8 ? AF_INET6 : AF_INET;
        size_t n = (size_t)sprintf(l, "PROXY TCP%c ", af == AF_INET ? '4' : '6');
        n += gen_addr(af, l + n);
        l[n++] = ' ';
        n += gen_addr(af, l + n);
        l[n++] = ' ';
        n += gen_port(l + n);
        l[n++] = ' ';
        n += gen_port(l + n);
        l[n++] = '\r';
        l[n++] = '\n';
        if (rnd() % 3 == 0) {
            static const char alpha[] = "0123456789abcdef:. \r\n";
            size_t at = 11 + rnd() % (n - 11);
            char c = alpha[rnd() % (sizeof(alpha) - 1)];
            switch (rnd() % 3) {
            case 0:
                l[at] = c;
                break;
            case 1:
                memmove(l + at + 1, l + at, n - at);
                l[at] = c;
                n++;
                break;
            default:
                memmove(l + at, l + at + 1, n - at - 1);
                n--;
                break;
            }
        }
        int rc = parse_both_quiet((const uint8_t *)l, n, &p);
        bool ok = ref_v1_line(l, n, src, &sport);
        if (ok && (rc != WSE_OK || p.header_len != n || memcmp(p.src_addr, src, 16) != 0 ||
                   p.src_port != sport))
            ck_abort_msg("%.*s: parser %d, reference accepts", (int)n - 2, l, rc);
        /* (a mutation may leave bytes after a CRLF: they are the client's) */
        if (rc == WSE_OK && !ref_v1_line(l, p.header_len, src, &sport))
            ck_abort_msg("%.*s: parser accepts %u bytes", (int)n - 2, l, p.header_len);
        if (rc == WSE_AGAIN && !line_completable(l, n))
            ck_abort_msg("%.*s: parser waits, no line can follow", (int)n - 2, l);
        if (rc != WSE_FAIL)
            continue;
        if (!line_completable(l, p.parsed))
            ck_abort_msg("%.*s: failed at %u, too late", (int)n - 2, l, p.parsed);
        if (line_completable(l, p.parsed + 1u))
            ck_abort_msg("%.*s: failed at %u, too early", (int)n - 2, l, p.parsed);
    }
}
END_TEST

/* ---- address formatting ---- */

static struct wse_proxy make_addr(int family, const char *text, uint16_t port)
{
    struct wse_proxy p;

    wse_proxy_init(&p);
    p.family = (uint8_t)family;
    p.src_port = port;
    addr_bytes(family, text, p.src_addr);
    return p;
}

static void check_format(int family, const char *text, uint16_t port, const char *want)
{
    struct wse_proxy p = make_addr(family, text, port);
    char out[WSE_PROXY_ADDRSTRLEN + 8];
    size_t n = strlen(want);

    ck_assert_uint_eq(wse_proxy_format_addr(&p, out, sizeof(out)), n);
    ck_assert_str_eq(out, want);
    /* Exactly enough room: n + 1; one less: 0, and nothing past the capacity. */
    ck_assert_uint_eq(wse_proxy_format_addr(&p, out, n + 1), n);
    ck_assert_str_eq(out, want);
    for (size_t cap = 0; cap <= n; cap++) {
        memset(out, '#', sizeof(out));
        ck_assert_uint_eq(wse_proxy_format_addr(&p, out, cap), 0);
        if (cap > 0)
            ck_assert_int_eq(out[0], '\0');
        for (size_t i = cap > 0 ? 1 : 0; i < sizeof(out); i++)
            ck_assert_int_eq(out[i], '#');
    }
}

START_TEST(test_format_ipv4)
{
    check_format(WSE_PROXY_INET, "1.2.3.4", 5678, "1.2.3.4:5678");
    check_format(WSE_PROXY_INET, "0.0.0.0", 0, "0.0.0.0:0");
    check_format(WSE_PROXY_INET, "255.255.255.255", 65535, "255.255.255.255:65535");
    check_format(WSE_PROXY_INET, "10.0.100.9", 80, "10.0.100.9:80");
}
END_TEST

START_TEST(test_format_rfc5952)
{
    static const struct { const char *in, *out; } c[] = {
        { "2001:db8::1", "2001:db8::1" },
        { "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
        { "::1", "::1" },
        { "::", "::" },
        { "1::", "1::" },
        { "1:0:0:0:0:0:0:0", "1::" },
        { "0:0:0:0:0:0:0:1", "::1" },
        /* 4.2.3: the first of two equally long runs */
        { "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
        /* 4.2.3: the longest run, wherever it is */
        { "2001:0:0:1:0:0:0:1", "2001:0:0:1::1" },
        { "1:0:0:2:0:0:0:3", "1:0:0:2::3" },
        /* 4.2.2: one zero group stays */
        { "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },
        { "1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0" },
        { "0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7" },
        { "1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0" },
        /* 4.3: lower case; 4.1: no leading zeros */
        { "ABCD:EF01:0023:4567:89AB:CDEF:0000:000F", "abcd:ef01:23:4567:89ab:cdef:0:f" },
        { "fe80::0200:5eff:fe00:5301", "fe80::200:5eff:fe00:5301" },
        /* 5: IPv4-mapped with the dotted quad; IPv4-compatible (deprecated)
         * and everything else in hex */
        { "::ffff:1.2.3.4", "::ffff:1.2.3.4" },
        { "::ffff:102:304", "::ffff:1.2.3.4" },
        { "::ffff:0.0.0.0", "::ffff:0.0.0.0" },
        { "::1.2.3.4", "::102:304" },
        { "::ffff:0:1.2.3.4", "::ffff:0:102:304" },
        { "64:ff9b::192.0.2.33", "64:ff9b::c000:221" },
        { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
    };
    char want[64];

    for (size_t i = 0; i < countof(c); i++) {
        snprintf(want, sizeof(want), "[%s]:%u", c[i].out, (unsigned)(i * 1000));
        check_format(WSE_PROXY_INET6, c[i].in, (uint16_t)(i * 1000), want);
    }
    /* The longest output uses the whole of WSE_PROXY_ADDRSTRLEN. */
    check_format(WSE_PROXY_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
                 "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    ck_assert_uint_eq(strlen("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535") + 1,
                      WSE_PROXY_ADDRSTRLEN);
}
END_TEST

/* glibc's inet_ntop() follows RFC 5952 too, but for ::a.b.c.d. */
START_TEST(test_format_vs_inet_ntop)
{
    char text[INET6_ADDRSTRLEN], want[64], out[WSE_PROXY_ADDRSTRLEN];

    for (int i = 0; i < 200000; i++) {
        struct wse_proxy p;
        wse_proxy_init(&p);
        p.family = WSE_PROXY_INET6;
        p.src_port = (uint16_t)rnd();
        for (int j = 0; j < 16; j += 2) {
            uint32_t r = rnd();
            bool zero = r % 2 != 0;
            p.src_addr[j] = zero ? 0 : (uint8_t)(r >> 8);
            p.src_addr[j + 1] = zero ? 0 : (uint8_t)(r >> 16) & (r & 4 ? 0xFF : 0x0F);
        }
        if (i % 7 == 0) {   /* IPv4-mapped now and then */
            memset(p.src_addr, 0, 10);
            p.src_addr[10] = p.src_addr[11] = 0xFF;
        }
        bool compat = true;
        for (int j = 0; j < 12; j++)
            compat = compat && p.src_addr[j] == 0;
        if (compat && (p.src_addr[12] | p.src_addr[13]) != 0)
            continue;   /* glibc: "::1.2.3.4"; we: "::102:304" */
        if (!inet_ntop(AF_INET6, p.src_addr, text, sizeof(text)))
            ck_abort_msg("inet_ntop");
        snprintf(want, sizeof(want), "[%s]:%u", text, p.src_port);
        if (wse_proxy_format_addr(&p, out, sizeof(out)) != strlen(want) ||
            strcmp(out, want) != 0)
            ck_abort_msg("wrote %s, inet_ntop %s", out, want);
    }
}
END_TEST

START_TEST(test_format_unspec)
{
    struct wse_proxy p;
    char out[WSE_PROXY_ADDRSTRLEN];

    ck_assert_int_eq(parse_once(B("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"), &p), WSE_OK);
    memset(out, '#', sizeof(out));
    ck_assert_uint_eq(wse_proxy_format_addr(&p, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(parse_once(B(SIG "\x20\x11\x00\x0C" "\x01\x02\x03\x04"
                                  "\x05\x06\x07\x08" "\x00\x01" "\x00\x02"), &p), WSE_OK);
    ck_assert_uint_eq(wse_proxy_format_addr(&p, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(wse_proxy_format_addr(&p, NULL, 0), 0);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("valid");

    tcase_add_loop_test(tc, test_valid, 0, (int)countof(valid));
    tcase_add_test(tc, test_v2_max_length);
    tcase_add_loop_test(tc, test_haproxy_captures, 0, (int)countof(captures));
    suite_add_tcase(s, tc);

    tc = tcase_create("bad");
    tcase_add_loop_test(tc, test_bad, 0, (int)countof(bad));
    tcase_add_test(tc, test_v2_bad_signature_each_byte);
    tcase_add_test(tc, test_get_fails_at_first_byte);
    tcase_add_test(tc, test_first_byte);
    tcase_add_test(tc, test_header_not_at_start);
    tcase_add_test(tc, test_more_than_max_never_needed);
    suite_add_tcase(s, tc);

    tc = tcase_create("differential");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_differential_ipv6);
    tcase_add_test(tc, test_differential_ipv4);
    tcase_add_test(tc, test_differential_ipv6_roundtrip);
    tcase_add_test(tc, test_differential_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, test_format_ipv4);
    tcase_add_test(tc, test_format_rfc5952);
    tcase_add_test(tc, test_format_vs_inet_ntop);
    tcase_add_test(tc, test_format_unspec);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proxy_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
