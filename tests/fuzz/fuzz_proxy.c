/*
 * fuzz_proxy.c - libFuzzer target for the PROXY protocol header parser and
 * the address formatter (proxy.h).
 *
 * Oracles beyond the sanitizers:
 *   - differential: the input parsed whole and fed one byte at a time (the
 *     buffer growing by one byte per call) must give the same verdict,
 *     parsed offset, header_len, version, command, family, addresses and
 *     ports; all calls before the verdict say WSE_AGAIN with everything
 *     consumed; a verdict sticks;
 *   - bounds: on WSE_OK header_len <= len and <= WSE_PROXY_MAX (v1: <= 107,
 *     ends in CRLF; v2: 16 + its length field); WSE_AGAIN only below
 *     WSE_PROXY_MAX bytes;
 *   - a reference for v1 TCP4/TCP6 lines written the obvious way (split on
 *     spaces, glibc's inet_pton(), strict ports): it and the parser agree on
 *     every complete line and its source address, and where the parser
 *     fails, the bytes before the failing one can still begin a valid line
 *     and the failing one cannot (tried with the shortest completion of each
 *     field), so the parser fails neither early nor late;
 *   - references for v1 UNKNOWN lines and complete v2 headers;
 *   - the formatter: the same text as glibc's inet_ntop() (but for
 *     IPv4-compatible ::a.b.c.d, which we write in hex), and into a small
 *     buffer either the whole text or 0 and "".
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common.h"
#include "proxy.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static const uint8_t V2_SIG[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

static void same_result(const struct wse_proxy *a, const struct wse_proxy *b)
{
    CHECK(a->parsed == b->parsed);
    CHECK(a->header_len == b->header_len);
    CHECK(a->version == b->version);
    CHECK(a->command == b->command);
    CHECK(a->family == b->family);
    CHECK(a->src_port == b->src_port && a->dst_port == b->dst_port);
    CHECK(memcmp(a->src_addr, b->src_addr, 16) == 0);
    CHECK(memcmp(a->dst_addr, b->dst_addr, 16) == 0);
}

static int parse_bytewise(const uint8_t *buf, size_t size, struct wse_proxy *p)
{
    int rc;

    wse_proxy_init(p);
    rc = wse_proxy_parse(p, buf, 0);
    CHECK(rc == WSE_AGAIN);
    for (size_t k = 1; k <= size && rc == WSE_AGAIN; k++) {
        rc = wse_proxy_parse(p, buf, k);
        if (rc == WSE_AGAIN)
            CHECK(p->parsed == k);
    }
    return rc;
}

/* ---- v1 TCP4/TCP6 reference ---- */

static bool ref_port(const uint8_t *f, size_t n, uint16_t *out)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (f[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (unsigned)(f[i] - '0');
    }
    *out = (uint16_t)v;
    return v <= 65535;
}

static bool ref_addr(int af, const uint8_t *f, size_t n, uint8_t out[16])
{
    char t[64];

    if (n >= sizeof(t) || memchr(f, '\0', n))
        return false;
    memcpy(t, f, n);
    t[n] = '\0';
    memset(out, 0, 16);
    return inet_pton(af, t, out) == 1;
}

struct ref {
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
};

static bool ref_tcp_line(const uint8_t *l, size_t n, struct ref *r)
{
    int af;
    const uint8_t *f[4];
    size_t fl[4];

    if (n > WSE_PROXY_V1_MAX || n < 13 || l[n - 2] != '\r' || l[n - 1] != '\n')
        return false;
    if (memcmp(l, "PROXY TCP4 ", 11) == 0)
        af = AF_INET;
    else if (memcmp(l, "PROXY TCP6 ", 11) == 0)
        af = AF_INET6;
    else
        return false;
    const uint8_t *q = l + 11, *end = l + n - 2;
    for (int i = 0; i < 4; i++) {
        const uint8_t *sp = memchr(q, ' ', (size_t)(end - q));
        if ((i < 3) != (sp != NULL))
            return false;
        f[i] = q;
        fl[i] = (size_t)((sp ? sp : end) - q);
        q = sp ? sp + 1 : end;
    }
    return ref_addr(af, f[0], fl[0], r->src) && ref_addr(af, f[1], fl[1], r->dst) &&
           ref_port(f[2], fl[2], &r->sport) && ref_port(f[3], fl[3], &r->dport);
}

/* Can a valid line of at most 107 bytes begin with l[0..n)?  Tries the
 * shortest completion of the field in progress and then of the others. */
static bool tcp_line_completable(const uint8_t *l, size_t n)
{
    static const char *const field[] = {
        "", "0", ":", "::", ".0", "0.0", ".0.0", "0.0.0", ".0.0.0", "0.0.0.0",
    };
    static const char *const tails6[] = { " :: 0 0\r\n", " 0 0\r\n", " 0\r\n", "\r\n", "\n" };
    static const char *const tails4[] = { " 0.0.0.0 0 0\r\n", " 0 0\r\n", " 0\r\n", "\r\n", "\n" };
    uint8_t t[160];
    struct ref r;

    if (n > WSE_PROXY_V1_MAX)
        return false;
    bool six = l[9] == '6';
    for (size_t i = 0; i < countof(field); i++) {
        for (size_t j = 0; j < countof(tails6); j++) {
            const char *tl = six ? tails6[j] : tails4[j];
            size_t cn = strlen(field[i]), tn = strlen(tl);
            memcpy(t, l, n);
            memcpy(t + n, field[i], cn);
            memcpy(t + n + cn, tl, tn);
            if (ref_tcp_line(t, n + cn + tn, &r))
                return true;
        }
    }
    return false;
}

static void check_tcp_line(const uint8_t *d, size_t size, int rc, const struct wse_proxy *p)
{
    struct ref r;

    if (rc == WSE_OK) {
        CHECK(ref_tcp_line(d, p->header_len, &r));
        CHECK(p->family == (d[9] == '4' ? WSE_PROXY_INET : WSE_PROXY_INET6));
        CHECK(memcmp(p->src_addr, r.src, 16) == 0 && memcmp(p->dst_addr, r.dst, 16) == 0);
        CHECK(p->src_port == r.sport && p->dst_port == r.dport);
        return;
    }
    /* A complete valid line in the input would have been accepted. */
    const uint8_t *lf = memchr(d, '\n', size);
    if (lf)
        CHECK(!ref_tcp_line(d, (size_t)(lf - d) + 1, &r));
    if (rc == WSE_AGAIN) {
        CHECK(tcp_line_completable(d, size));
    } else {
        CHECK(tcp_line_completable(d, p->parsed));
        CHECK(!tcp_line_completable(d, (size_t)p->parsed + 1));
    }
}

/*
 * v1 UNKNOWN reference: "PROXY UNKNOWN" [SP *(any byte but CR, LF)] CRLF in
 * at most 107 bytes.  The verdict, the length, and the failing byte: byte 13
 * neither SP nor CR; a bare LF; a CR not followed by LF; or a byte after
 * which CRLF no longer fits (anything but CR from byte 105 on, CR at 106).
 */
static int ref_unknown(const uint8_t *d, size_t size, size_t *at)
{
    if (size == 13)
        return WSE_AGAIN;
    size_t i = 13;
    if (d[13] == ' ') {
        for (i = 14; i < size && d[i] != '\r' && d[i] != '\n'; i++) {
            if (i + 3 > WSE_PROXY_V1_MAX) {
                *at = i;
                return WSE_FAIL;
            }
        }
        if (i == size)
            return WSE_AGAIN;
    }
    if (d[i] != '\r' || i + 2 > WSE_PROXY_V1_MAX) {
        *at = i;
        return WSE_FAIL;
    }
    if (i + 1 == size)
        return WSE_AGAIN;
    *at = i + 1;
    return d[i + 1] == '\n' ? WSE_OK : WSE_FAIL;
}

static void check_unknown_line(const uint8_t *d, size_t size, int rc, const struct wse_proxy *p)
{
    size_t at = 0;

    CHECK(ref_unknown(d, size, &at) == rc);
    if (rc == WSE_OK)
        CHECK(p->header_len == at + 1 && p->family == WSE_PROXY_UNSPEC &&
              p->command == WSE_PROXY_CMD_PROXY);
    if (rc == WSE_FAIL)
        CHECK(p->parsed == at);
}

/* ---- v2 reference, for complete headers ---- */

static void check_v2(const uint8_t *d, size_t size, int rc, const struct wse_proxy *p)
{
    if (size < 16)
        return;
    unsigned vc = d[12], fam = d[13], len = (unsigned)d[14] << 8 | d[15];
    bool ok = (vc >> 4) == 2 && (vc & 0x0F) <= 1 && (fam >> 4) <= 3 && (fam & 0x0F) <= 2 &&
              len <= WSE_PROXY_V2_MAX_LEN;
    if (ok && (vc & 0x0F) == 1 && fam != 0x00) {
        unsigned alen = fam == 0x11 ? 12 : fam == 0x21 ? 36 : 0;
        ok = alen != 0 && len >= alen;
        if (ok && size < 16 + len)
            return;   /* TLVs are checked as they come: no verdict to compare */
        /* TLVs tile the rest exactly. */
        for (size_t t = 16 + alen; ok && t < 16 + len;) {
            if (t + 3 > 16 + len) {
                ok = false;
                break;
            }
            t += 3 + ((size_t)d[t + 1] << 8 | d[t + 2]);
            ok = t <= 16 + len;
        }
        if (ok && rc == WSE_OK) {
            size_t n = alen == 12 ? 4 : 16;
            CHECK(memcmp(p->src_addr, d + 16, n) == 0);
            CHECK(memcmp(p->dst_addr, d + 16 + n, n) == 0);
            CHECK(p->src_port == (d[16 + 2 * n] << 8 | d[17 + 2 * n]));
            CHECK(p->dst_port == (d[18 + 2 * n] << 8 | d[19 + 2 * n]));
        }
    }
    if (!ok) {
        CHECK(rc == WSE_FAIL);
        return;
    }
    if (size < 16 + len) {
        CHECK(rc == WSE_AGAIN);
        return;
    }
    CHECK(rc == WSE_OK && p->header_len == 16 + len);
    CHECK(p->command == (vc & 0x0F));
    if (p->command == WSE_PROXY_CMD_LOCAL || fam == 0x00)
        CHECK(p->family == WSE_PROXY_UNSPEC);
}

/* ---- formatter ---- */

static void check_format(const struct wse_proxy *p)
{
    char out[WSE_PROXY_ADDRSTRLEN], small[20], text[INET6_ADDRSTRLEN], want[64];
    size_t n = wse_proxy_format_addr(p, out, sizeof(out));

    if (p->family == WSE_PROXY_UNSPEC) {
        CHECK(n == 0 && out[0] == '\0');
        return;
    }
    const uint8_t *a = p->src_addr;
    bool compat = true;
    for (int i = 0; i < 12; i++)
        compat = compat && a[i] == 0;
    compat = compat && (a[12] | a[13]) != 0;
    if (p->family == WSE_PROXY_INET) {
        CHECK(inet_ntop(AF_INET, a, text, sizeof(text)) != NULL);
        snprintf(want, sizeof(want), "%s:%u", text, p->src_port);
    } else {
        CHECK(inet_ntop(AF_INET6, a, text, sizeof(text)) != NULL);
        snprintf(want, sizeof(want), "[%s]:%u", text, p->src_port);
    }
    CHECK(n > 0 && n == strlen(out) && n < sizeof(out));
    if (!compat)
        CHECK(strcmp(out, want) == 0);
    size_t m = wse_proxy_format_addr(p, small, sizeof(small));
    if (n < sizeof(small))
        CHECK(m == n && strcmp(small, out) == 0);
    else
        CHECK(m == 0 && small[0] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wse_proxy whole, inc;

    wse_proxy_init(&whole);
    int rc = wse_proxy_parse(&whole, data, size);
    CHECK(rc == WSE_OK || rc == WSE_AGAIN || rc == WSE_FAIL);
    CHECK(parse_bytewise(data, size, &inc) == rc);
    same_result(&whole, &inc);
    CHECK(wse_proxy_parse(&whole, data, size) == rc);   /* a verdict sticks */

    if (rc == WSE_AGAIN) {
        CHECK(whole.parsed == size && size < WSE_PROXY_MAX);
    } else if (rc == WSE_FAIL) {
        CHECK(whole.parsed < size);
    } else {
        CHECK(whole.header_len == whole.parsed);
        CHECK(whole.header_len <= size && whole.header_len <= WSE_PROXY_MAX);
        CHECK(whole.version == 1 || whole.version == 2);
        CHECK(whole.command <= WSE_PROXY_CMD_PROXY && whole.family <= WSE_PROXY_INET6);
        if (whole.version == 1) {
            CHECK(whole.header_len <= WSE_PROXY_V1_MAX);
            CHECK(data[whole.header_len - 2] == '\r' && data[whole.header_len - 1] == '\n');
        }
        check_format(&whole);
    }

    if (size >= 11 && (memcmp(data, "PROXY TCP4 ", 11) == 0 ||
                       memcmp(data, "PROXY TCP6 ", 11) == 0))
        check_tcp_line(data, size, rc, &whole);
    else if (size >= 13 && memcmp(data, "PROXY UNKNOWN", 13) == 0)
        check_unknown_line(data, size, rc, &whole);
    else if (size >= 12 && memcmp(data, V2_SIG, 12) == 0)
        check_v2(data, size, rc, &whole);
    else if (size > 0 && data[0] != 'P' && data[0] != 0x0D)
        CHECK(rc == WSE_FAIL && whole.parsed == 0);
    return 0;
}
