/*
 * http.c - incremental parser of the HTTP/1.1 upgrade request, and the
 * writer of the server's plain HTTP responses.
 *
 * Design: one explicit state machine over the caller's accumulated buffer.
 * Every byte is looked at exactly once, by step_request_line() or
 * step_header(), and everything needed to resume (the state, where the
 * current line, name and value start) lives in struct wse_http_req, so the
 * parser can stop after any byte and carry on when the buffer grows: a
 * request fed one byte at a time costs O(n) in all.  Values are recorded as
 * spans into the buffer.  The only second look at bytes is done once per
 * header, over its own name (at the ':', to recognise it) and value (at the
 * LF: trimming, token lists), which keeps the total linear.
 */
#include "http.h"

#include <stdbool.h>
#include <string.h>

#include "common.h"

/* Byte classes (RFC 7230 section 3.2 and 3.2.6). */
enum {
    C_TCHAR = 1u << 0,  /* token character: method, field-name */
    C_VCHAR = 1u << 1,  /* visible ASCII 0x21-0x7E: request-target */
    C_VALUE = 1u << 2,  /* field-value: VCHAR, SP, HTAB, obs-text */
};

#define T (C_TCHAR | C_VCHAR | C_VALUE)
#define V (C_VCHAR | C_VALUE)
/* Ranges are a GNU C extension (we build with -std=gnu11); none overlap. */
static const uint8_t cclass[256] = {
    ['\t'] = C_VALUE, [' '] = C_VALUE,
    ['!'] = T, ['"'] = V, ['#' ... '\''] = T, ['(' ... ')'] = V,
    ['*' ... '+'] = T, [','] = V, ['-' ... '.'] = T, ['/'] = V,
    ['0' ... '9'] = T, [':' ... '@'] = V, ['A' ... 'Z'] = T,
    ['[' ... ']'] = V, ['^' ... '`'] = T, ['a' ... 'z'] = T,
    ['{'] = V, ['|'] = T, ['}'] = V, ['~'] = T,
    [0x80 ... 0xFF] = C_VALUE,
};
#undef T
#undef V

static inline bool has_class(unsigned char c, unsigned cls)
{
    return (cclass[c] & cls) != 0;
}

static inline bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Parser states, in the order the bytes of a request meet them.  ST_METHOD
 * is 0 so that a zeroed struct (wse_http_init) starts the machine.
 */
enum http_state {
    ST_METHOD = 0,
    ST_TARGET,        /* first byte of the target: '/' (origin-form) */
    ST_PATH,
    ST_QUERY,
    ST_VER_H,         /* ST_VER_H .. ST_VER_SLASH match "HTTP/" */
    ST_VER_T1,
    ST_VER_T2,
    ST_VER_P,
    ST_VER_SLASH,
    ST_VER_MAJOR,
    ST_VER_DOT,
    ST_VER_MINOR,
    ST_RL_CR,
    ST_RL_LF,
    ST_LINE_START,    /* first byte of a header line, or of the blank line */
    ST_NAME,
    ST_OWS,           /* after ':', before the value */
    ST_VALUE,
    ST_HDR_LF,        /* after a header line's CR */
    ST_END_LF,        /* after the blank line's CR */
    ST_DONE,
    ST_FAILED,
};
/* step_version() walks the request line's tail by incrementing the state. */
_Static_assert(ST_VER_SLASH - ST_VER_H == 4 && ST_RL_LF + 1 == ST_LINE_START,
               "version states must be consecutive and lead to ST_LINE_START");

/* The headers the handshake looks at. */
enum hdr_kind {
    H_OTHER = 0,
    H_HOST,
    H_UPGRADE,
    H_CONNECTION,
    H_KEY,
    H_VERSION,
    H_ORIGIN,
    H_PROTOCOL,
    H_EXTENSIONS,
    H_ACCEPT,
    H_USER_AGENT,
    H_CONTENT_LENGTH,
    H_TRANSFER_ENCODING,
};

#define KNOWN(s, k) { s, sizeof(s) - 1, k }
static const struct {
    const char *name;
    uint8_t len;
    uint8_t kind;
} known_headers[] = {
    KNOWN("Host", H_HOST),
    KNOWN("Upgrade", H_UPGRADE),
    KNOWN("Connection", H_CONNECTION),
    KNOWN("Sec-WebSocket-Key", H_KEY),
    KNOWN("Sec-WebSocket-Version", H_VERSION),
    KNOWN("Origin", H_ORIGIN),
    KNOWN("Sec-WebSocket-Protocol", H_PROTOCOL),
    KNOWN("Sec-WebSocket-Extensions", H_EXTENSIONS),
    KNOWN("Accept", H_ACCEPT),
    KNOWN("User-Agent", H_USER_AGENT),
    KNOWN("Content-Length", H_CONTENT_LENGTH),
    KNOWN("Transfer-Encoding", H_TRANSFER_ENCODING),
};
#undef KNOWN

/* What one step did with its byte. */
enum step {
    STEP_GO,      /* consumed, carry on */
    STEP_DONE,    /* consumed the blank line's LF */
    STEP_FAIL,    /* the byte is not allowed here; req->status says why */
};

static enum step fail(struct wse_http_req *req, uint16_t status)
{
    req->status = status;
    return STEP_FAIL;
}

static uint8_t classify_header(const char *name, size_t len)
{
    for (size_t i = 0; i < countof(known_headers); i++) {
        if (known_headers[i].len == len &&
            wse_ascii_casecmp(name, known_headers[i].name, len) == 0)
            return known_headers[i].kind;
    }
    return H_OTHER;
}

/* Does the comma-separated list v[0..len) hold the token tok (any case)? */
static bool list_has_token(const char *v, size_t len, const char *tok)
{
    size_t toklen = strlen(tok);
    size_t i = 0;

    for (;;) {
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && is_ows((unsigned char)v[a]))
            a++;
        while (b > a && is_ows((unsigned char)v[b - 1]))
            b--;
        if (b - a == toklen && wse_ascii_casecmp(v + a, tok, toklen) == 0)
            return true;
        if (j == len)
            return false;
        i = j + 1;
    }
}

/* Does v[0..len) contain needle (any case)?  Values are short: naive is fine. */
static bool contains_ci(const char *v, size_t len, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; i + n <= len; i++) {
        if (wse_ascii_casecmp(v + i, needle, n) == 0)
            return true;
    }
    return false;
}

/*
 * Whether a span-valued header was seen already: a header value never starts
 * at offset 0 (the request line comes first), even an empty one (its span
 * sits at the line's CR), so off == 0 means "absent" without a flag bit.
 */
static inline bool span_seen(struct wse_span s)
{
    return s.off != 0;
}

/* Only the first line of a header counts for the span-valued ones. */
static void set_once(struct wse_span *dst, struct wse_span v)
{
    if (!span_seen(*dst))
        *dst = v;
}

/*
 * A repeated Sec-WebSocket-Version may only keep VERSION_13 if it says 13
 * again: "13" then "8" is a client we do not understand, whatever the order.
 */
static void apply_version(struct wse_http_req *req, const char *v, size_t len)
{
    bool is13 = len == 2 && v[0] == '1' && v[1] == '3';

    if (!(req->flags & WSE_HTTP_VERSION_SEEN)) {
        req->flags |= WSE_HTTP_VERSION_SEEN;
        if (is13)
            req->flags |= WSE_HTTP_VERSION_13;
    } else if (!is13) {
        req->flags &= (uint16_t)~WSE_HTTP_VERSION_13;
    }
}

static void apply_host(struct wse_http_req *req, struct wse_span v)
{
    if (req->flags & WSE_HTTP_HOST)
        req->flags |= WSE_HTTP_HOST_DUP;
    req->flags |= WSE_HTTP_HOST;
    set_once(&req->host, v);
}

/* A second Sec-WebSocket-Key is flagged whatever the first one held. */
static void apply_key(struct wse_http_req *req, struct wse_span v)
{
    if (span_seen(req->key))
        req->flags |= WSE_HTTP_KEY_DUP;
    else
        req->key = v;
}

/* Every line counts: the offers of all of them form one list. */
static void apply_extensions(struct wse_http_req *req, struct wse_span v)
{
    if (req->n_extensions < WSE_HTTP_EXT_LINES)
        req->extensions[req->n_extensions++] = v;
    else
        req->flags |= WSE_HTTP_EXT_MORE;
}

/* Records what a complete header line means; v is its trimmed value. */
static void apply_header(struct wse_http_req *req, const char *buf, struct wse_span v)
{
    const char *p = buf + v.off;

    switch (req->hdr_kind) {
    case H_HOST:
        apply_host(req, v);
        break;
    case H_UPGRADE:
        if (list_has_token(p, v.len, "websocket"))
            req->flags |= WSE_HTTP_UPGRADE_WS;
        break;
    case H_CONNECTION:
        if (list_has_token(p, v.len, "upgrade"))
            req->flags |= WSE_HTTP_CONN_UPGRADE;
        break;
    case H_KEY:
        apply_key(req, v);
        break;
    case H_VERSION:
        apply_version(req, p, v.len);
        break;
    case H_ORIGIN:
        set_once(&req->origin, v);
        break;
    case H_PROTOCOL:
        set_once(&req->protocol, v);
        break;
    case H_USER_AGENT:
        set_once(&req->user_agent, v);     /* permessage-deflate's Safari guard */
        break;
    case H_EXTENSIONS:
        apply_extensions(req, v);
        break;
    case H_ACCEPT:
        if (contains_ci(p, v.len, "text/html"))
            req->flags |= WSE_HTTP_ACCEPT_HTML;
        break;
    case H_CONTENT_LENGTH:
        /* Only the literal "0" announces no body; "00", "0, 0", "+0" and
         * anything else count as one rather than be interpreted. */
        if (v.len != 1 || p[0] != '0')
            req->flags |= WSE_HTTP_BODY;
        break;
    case H_TRANSFER_ENCODING:
        req->flags |= WSE_HTTP_BODY;
        break;
    default:
        break;
    }
}

/* At a header line's LF (cr is its CR): trim the value, apply it. */
static void finish_header(struct wse_http_req *req, const char *buf, size_t cr)
{
    size_t end = cr;

    while (end > req->value_off && is_ows((unsigned char)buf[end - 1]))
        end--;
    struct wse_span v = { req->value_off, (uint16_t)(end - req->value_off) };
    apply_header(req, buf, v);
}

static enum step step_method(struct wse_http_req *req, const char *buf, size_t p,
                             unsigned char c)
{
    if (has_class(c, C_TCHAR))
        return STEP_GO;
    if (c != ' ' || p == 0)
        return fail(req, 400);
    req->method_name = (struct wse_span){ 0, (uint16_t)p };
    /* Methods are case-sensitive (RFC 9110 9.1): "get" is another one. */
    if (p == 3 && memcmp(buf, "GET", 3) == 0)
        req->method = WSE_HTTP_GET;
    else if (p == 4 && memcmp(buf, "HEAD", 4) == 0)
        req->method = WSE_HTTP_HEAD;
    else
        req->method = WSE_HTTP_OTHER;
    req->state = ST_TARGET;
    return STEP_GO;
}

/* The request-target, split at its first '?'. */
static enum step step_target(struct wse_http_req *req, size_t p, unsigned char c)
{
    switch (req->state) {
    case ST_TARGET:
        if (c != '/')
            return fail(req, 400);
        req->path.off = (uint16_t)p;
        req->state = ST_PATH;
        return STEP_GO;
    case ST_PATH:
        if (c == '?' || c == ' ') {
            req->path.len = (uint16_t)(p - req->path.off);
            if (c == '?')
                req->query.off = (uint16_t)(p + 1);
            req->state = c == '?' ? ST_QUERY : ST_VER_H;
            return STEP_GO;
        }
        return has_class(c, C_VCHAR) ? STEP_GO : fail(req, 400);
    default: /* ST_QUERY */
        if (c == ' ') {
            req->query.len = (uint16_t)(p - req->query.off);
            req->state = ST_VER_H;
            return STEP_GO;
        }
        return has_class(c, C_VCHAR) ? STEP_GO : fail(req, 400);
    }
}

/* "HTTP/" DIGIT "." DIGIT CRLF */
static enum step step_version(struct wse_http_req *req, unsigned char c)
{
    static const char lit[] = "HTTP/";
    uint8_t st = req->state;
    bool ok;

    if (st <= ST_VER_SLASH)
        ok = c == (unsigned char)lit[st - ST_VER_H];
    else if (st == ST_VER_MAJOR || st == ST_VER_MINOR)
        ok = c >= '0' && c <= '9';
    else if (st == ST_VER_DOT)
        ok = c == '.';
    else if (st == ST_RL_CR)
        ok = c == '\r';
    else
        ok = c == '\n';
    if (!ok)
        return fail(req, 400);
    if (st == ST_VER_MAJOR)
        req->version_major = (uint8_t)(c - '0');
    else if (st == ST_VER_MINOR)
        req->version_minor = (uint8_t)(c - '0');
    req->state = (uint8_t)(st + 1);   /* ST_RL_LF + 1 == ST_LINE_START */
    return STEP_GO;
}

static enum step step_request_line(struct wse_http_req *req, const char *buf, size_t p,
                                   unsigned char c)
{
    if (req->state == ST_METHOD)
        return step_method(req, buf, p, c);
    if (req->state <= ST_QUERY)
        return step_target(req, p, c);
    return step_version(req, c);
}

/* First byte of a line after the request line. */
static enum step step_line_start(struct wse_http_req *req, size_t p, unsigned char c,
                                 const struct wse_http_limits *limits)
{
    if (c == '\r') {
        req->state = ST_END_LF;
        return STEP_GO;
    }
    /* SP/HTAB here is obs-fold, ':' an empty name, LF a bare LF: all 400. */
    if (!has_class(c, C_TCHAR))
        return fail(req, 400);
    if (++req->nheaders > limits->max_headers)
        return fail(req, 431);
    req->line_start = (uint16_t)p;
    req->state = ST_NAME;
    return STEP_GO;
}

static enum step step_header(struct wse_http_req *req, const char *buf, size_t p,
                             unsigned char c, const struct wse_http_limits *limits)
{
    switch (req->state) {
    case ST_LINE_START:
        return step_line_start(req, p, c, limits);
    case ST_NAME:
        if (has_class(c, C_TCHAR))
            return STEP_GO;
        if (c != ':')   /* includes whitespace before the colon */
            return fail(req, 400);
        req->name_len = (uint16_t)(p - req->line_start);
        req->hdr_kind = classify_header(buf + req->line_start, req->name_len);
        req->state = ST_OWS;
        return STEP_GO;
    case ST_OWS:
        if (is_ows(c))
            return STEP_GO;
        if (c != '\r' && !has_class(c, C_VALUE))
            return fail(req, 400);
        req->value_off = (uint16_t)p;   /* at the CR: an empty value */
        req->state = c == '\r' ? ST_HDR_LF : ST_VALUE;
        return STEP_GO;
    case ST_VALUE:
        if (has_class(c, C_VALUE))
            return STEP_GO;
        if (c != '\r')
            return fail(req, 400);
        req->state = ST_HDR_LF;
        return STEP_GO;
    case ST_HDR_LF:
        if (c != '\n')
            return fail(req, 400);
        finish_header(req, buf, p - 1);
        req->state = ST_LINE_START;
        return STEP_GO;
    default: /* ST_END_LF */
        return c == '\n' ? STEP_DONE : fail(req, 400);
    }
}

void wse_http_init(struct wse_http_req *req)
{
    memset(req, 0, sizeof(*req));
}

int wse_http_parse(struct wse_http_req *req, const char *buf, size_t len,
                   const struct wse_http_limits *limits)
{
    if (req->state == ST_DONE)
        return WSE_OK;
    if (req->state == ST_FAILED)
        return WSE_FAIL;

    /* Never look at byte max_header_bytes: that is where 431 starts. */
    size_t max = limits->max_header_bytes;
    size_t end = len < max ? len : max;
    size_t p = req->parsed;

    for (; p < end; p++) {
        unsigned char c = (unsigned char)buf[p];
        enum step r = req->state < ST_LINE_START
                          ? step_request_line(req, buf, p, c)
                          : step_header(req, buf, p, c, limits);
        if (r == STEP_GO)
            continue;
        if (r == STEP_FAIL) {
            req->parsed = (uint16_t)p;   /* the offending byte */
            req->state = ST_FAILED;
            return WSE_FAIL;
        }
        req->parsed = (uint16_t)(p + 1);
        req->state = ST_DONE;
        return WSE_OK;
    }
    req->parsed = (uint16_t)p;
    if (len > max) {
        /* p == max: the block goes on past the limit. */
        req->status = 431;
        req->state = ST_FAILED;
        return WSE_FAIL;
    }
    return WSE_AGAIN;
}

/* ---- responses ---- */

const char *wse_http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static void put_uint(struct wse_out *o, size_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wse_out_put(o, tmp + i, sizeof(tmp) - i);
}

size_t wse_http_response(char *out, size_t cap, int status,
                         const char *extra_headers, const char *content_type,
                         const char *body, size_t body_len)
{
    struct wse_out o = { out, cap, 0, false };
    const char *reason = wse_http_reason(status);

    /* A status line must carry three digits; anything else is a bug above. */
    if (status < 100 || status > 999)
        return 0;
    if (!body)
        body_len = strlen(reason) + 1;
    wse_out_str(&o, "HTTP/1.1 ");
    put_uint(&o, (size_t)status);
    wse_out_str(&o, " ");
    wse_out_str(&o, reason);
    wse_out_str(&o, "\r\nContent-Type: ");
    wse_out_str(&o, content_type ? content_type : "text/plain; charset=utf-8");
    wse_out_str(&o, "\r\nContent-Length: ");
    put_uint(&o, body_len);
    wse_out_str(&o, "\r\nConnection: close\r\n");
    if (extra_headers)
        wse_out_str(&o, extra_headers);
    wse_out_str(&o, "\r\n");
    if (body) {
        wse_out_put(&o, body, body_len);
    } else {
        wse_out_str(&o, reason);
        wse_out_str(&o, "\n");
    }
    return o.overflow ? 0 : o.len;
}

size_t wse_http_head_len(const char *resp, size_t len)
{
    const char *end = memmem(resp, len, "\r\n\r\n", 4);

    return end ? (size_t)(end - resp) + 4 : len;
}

/* The bytes a log line shows as they are: printable ASCII but the quote
 * and the backslash, which would make the rendering ambiguous. */
static bool quote_as_is(unsigned char c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

/* Bytes needed to render v[0..len), quotes excluded. */
static size_t quoted_len(const char *v, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += quote_as_is((unsigned char)v[i]) ? 1 : 4;
    return n;
}

char *wse_http_quote(char *out, size_t cap, const char *v, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    static const char cut[] = "\"...";
    bool whole = 2 + quoted_len(v, len) < cap;      /* two quotes, then the NUL */
    size_t room = whole ? cap : cap - sizeof cut;   /* where the escapes must end */
    size_t n = 0, i;

    out[n++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (quote_as_is(c)) {
            if (n + 1 > room)
                break;
            out[n++] = (char)c;
            continue;
        }
        if (n + 4 > room)
            break;
        out[n++] = '\\';
        out[n++] = 'x';
        out[n++] = hex[c >> 4];
        out[n++] = hex[c & 15];
    }
    if (whole)
        memcpy(out + n, "\"", 2);
    else
        memcpy(out + n, cut, sizeof cut);
    return out;
}
