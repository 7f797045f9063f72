/*
 * handshake.c - the RFC 6455 opening handshake (section 4.2): is the parsed
 * request an upgrade we accept, its Sec-WebSocket-Accept, the 101 response.
 *
 * SHA-1 comes from libcrypto's EVP interface (SHA1() is deprecated in
 * OpenSSL 3), base64 from libb64.
 */
#include "handshake.h"

#include <stdbool.h>
#include <string.h>

#include <b64/cdecode.h>
#include <b64/cencode.h>
#include <openssl/evp.h>

#include "common.h"

#define WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define KEY_B64_LEN  24     /* base64 of 16 bytes, "==" included */
#define KEY_RAW_LEN  16
#define SHA1_LEN     20

/*
 * base64 of n <= SHA1_LEN bytes into out (at least 32 bytes); returns the
 * length.  Debian's libb64 1.2 ends its output with '\n' (and would break
 * lines every 72 characters, which n <= 20 never reaches): newlines are
 * dropped, so the result is plain RFC 4648 base64.
 */
static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    base64_encodestate st;
    size_t len = 0;

    base64_init_encodestate(&st);
    int a = base64_encode_block((const char *)in, (int)n, out, &st);
    int b = base64_encode_blockend(out + a, &st);
    for (int i = 0; i < a + b; i++) {
        if (out[i] != '\n')
            out[len++] = out[i];
    }
    return len;
}

/*
 * Is key the canonical base64 of exactly 16 bytes (RFC 6455 4.1)?  libb64's
 * decoder skips any byte outside the alphabet and ignores the unused low
 * bits of the last character, so a decoded length of 16 is not enough:
 * re-encoding must give back the key itself, byte for byte.
 */
static bool key_is_valid(const char *key, size_t len)
{
    base64_decodestate ds;
    char raw[KEY_B64_LEN];      /* decoding 24 chars touches at most 18 bytes */
    char again[32];

    if (len != KEY_B64_LEN)
        return false;
    base64_init_decodestate(&ds);
    if (base64_decode_block(key, (int)len, raw, &ds) != KEY_RAW_LEN)
        return false;
    return b64_encode((const unsigned char *)raw, KEY_RAW_LEN, again) == KEY_B64_LEN &&
           memcmp(again, key, KEY_B64_LEN) == 0;
}

static bool version_below_1_1(const struct wse_http_req *req)
{
    return req->version_major < 1 || (req->version_major == 1 && req->version_minor < 1);
}

int wse_handshake_check(const struct wse_http_req *req, const char *buf)
{
    uint16_t f = req->flags;

    if (req->method != WSE_HTTP_GET)
        return 405;
    if (version_below_1_1(req))
        return 400;
    if (!(f & WSE_HTTP_HOST) || (f & WSE_HTTP_HOST_DUP))
        return 400;
    if (!(f & WSE_HTTP_UPGRADE_WS) || !(f & WSE_HTTP_CONN_UPGRADE))
        return 400;
    if ((f & WSE_HTTP_KEY_DUP) || !key_is_valid(wse_span_ptr(buf, req->key), req->key.len))
        return 400;
    if (f & WSE_HTTP_BODY)
        return 400;
    if (!(f & WSE_HTTP_VERSION_SEEN) || !(f & WSE_HTTP_VERSION_13))
        return 426;
    return 0;
}

/*
 * SHA-1 of key || GUID, fed to the digest in two pieces rather than
 * concatenated in a stack buffer: no length guard is needed for keys that
 * never went through wse_handshake_check(), and EVP_Digest() would create
 * the same EVP_MD_CTX internally anyway.  False only if libcrypto fails
 * (out of memory).
 */
static bool accept_digest(const char *key, size_t key_len, unsigned char md[SHA1_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int md_len = 0;
    bool ok;

    if (!ctx)
        return false;
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, key, key_len) == 1 &&
         EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == SHA1_LEN;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* out[0] == '\0' tells a libcrypto failure apart: callers then answer 500. */
void wse_handshake_accept(const char *key, size_t key_len, char out[WSE_ACCEPT_LEN + 1])
{
    unsigned char md[SHA1_LEN];
    char enc[32];

    out[0] = '\0';
    if (!accept_digest(key, key_len, md))
        return;
    if (b64_encode(md, SHA1_LEN, enc) != WSE_ACCEPT_LEN)
        return;
    memcpy(out, enc, WSE_ACCEPT_LEN);
    out[WSE_ACCEPT_LEN] = '\0';
}

/*
 * A protocol containing CR or LF would let a caller's bug inject headers
 * into the response: refuse it.
 */
static bool header_value_ok(const char *v, size_t len)
{
    return memchr(v, '\r', len) == NULL && memchr(v, '\n', len) == NULL;
}

#define PUT_LIT(o, lit) wse_out_put(o, lit, sizeof(lit) - 1)

size_t wse_handshake_response(char *out, size_t cap, const char *key, size_t key_len,
                              const char *protocol, size_t protocol_len)
{
    return wse_handshake_response_ext(out, cap, key, key_len, protocol, protocol_len, NULL, 0);
}

size_t wse_handshake_response_ext(char *out, size_t cap, const char *key, size_t key_len,
                                  const char *protocol, size_t protocol_len,
                                  const char *extra, size_t extra_len)
{
    struct wse_out o = { out, cap, 0, false };
    char accept[WSE_ACCEPT_LEN + 1];
    bool with_proto = protocol != NULL && protocol_len > 0;

    if (with_proto && !header_value_ok(protocol, protocol_len))
        return 0;
    wse_handshake_accept(key, key_len, accept);
    if (accept[0] == '\0')
        return 0;

    PUT_LIT(&o, "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                "Sec-WebSocket-Accept: ");
    wse_out_put(&o, accept, WSE_ACCEPT_LEN);
    PUT_LIT(&o, "\r\n");
    if (with_proto) {
        PUT_LIT(&o, "Sec-WebSocket-Protocol: ");
        wse_out_put(&o, protocol, protocol_len);
        PUT_LIT(&o, "\r\n");
    }
    if (extra_len)
        wse_out_put(&o, extra, extra_len);
    PUT_LIT(&o, "\r\n");
    return o.overflow ? 0 : o.len;
}

/* ---- own origin ---- */

/* host[:port] split; port is the default when absent.  False if malformed. */
struct authority {
    const char *host;
    size_t host_len;
    unsigned port;
};

static bool parse_port(const char *p, size_t len, unsigned *port)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = v;
    return true;
}

/* An IPv6 literal keeps its brackets in the host part: "[::1]:8000". */
static bool split_authority(const char *a, size_t len, unsigned def_port, struct authority *out)
{
    size_t host_end = len;

    if (len && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (!close)
            return false;
        host_end = (size_t)(close - a) + 1;
        if (host_end < len && a[host_end] != ':')
            return false;
    } else {
        const char *colon = memchr(a, ':', len);
        if (colon)
            host_end = (size_t)(colon - a);
    }
    if (host_end == 0)
        return false;
    out->host = a;
    out->host_len = host_end;
    out->port = def_port;
    if (host_end == len)
        return true;
    return parse_port(a + host_end + 1, len - host_end - 1, &out->port);
}

/* Four dot-separated decimal numbers of 0-255: what a browser's URL parser
 * makes of a host whose last label is numeric, so never a DNS name. */
static bool is_ipv4_literal(const char *h, size_t len)
{
    unsigned parts = 0, digits = 0, value = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || h[i] == '.') {
            if (digits == 0 || value > 255)
                return false;
            parts++;
            digits = value = 0;
        } else if (h[i] >= '0' && h[i] <= '9' && digits < 3) {
            value = value * 10 + (unsigned)(h[i] - '0');
            digits++;
        } else {
            return false;
        }
    }
    return parts == 4;
}

/* Brackets around hex digits, colons and dots (an embedded IPv4 tail). */
static bool is_ipv6_literal(const char *h, size_t len)
{
    if (len < 4 || h[0] != '[' || h[len - 1] != ']')
        return false;
    for (size_t i = 1; i + 1 < len; i++) {
        char c = h[i];
        bool hexdigit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hexdigit && c != ':' && c != '.')
            return false;
    }
    return memchr(h, ':', len) != NULL;
}

static bool reached_without_dns(const char *h, size_t len)
{
    return is_ipv4_literal(h, len) || is_ipv6_literal(h, len) ||
           (len == 9 && wse_ascii_casecmp(h, "localhost", 9) == 0);
}

bool wse_origin_is_own(const char *origin, size_t olen, const char *host, size_t hlen)
{
    static const char http[] = "http://", https[] = "https://";
    struct authority o, h;
    unsigned def_port;
    size_t skip;

    if (olen >= sizeof https - 1 && wse_ascii_casecmp(origin, https, sizeof https - 1) == 0) {
        skip = sizeof https - 1;
        def_port = 443;
    } else if (olen >= sizeof http - 1 && wse_ascii_casecmp(origin, http, sizeof http - 1) == 0) {
        skip = sizeof http - 1;
        def_port = 80;
    } else {
        return false;
    }
    if (!split_authority(origin + skip, olen - skip, def_port, &o) ||
        !split_authority(host, hlen, def_port, &h))
        return false;
    return o.host_len == h.host_len && wse_ascii_casecmp(o.host, h.host, h.host_len) == 0 &&
           o.port == h.port && reached_without_dns(h.host, h.host_len);
}
