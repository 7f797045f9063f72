/*
 * pmd.c - permessage-deflate negotiation: an incremental parser of the
 * extension list, the choice among the offers, and the response header (see
 * pmd.h for the rules).
 *
 * The 8-bit window.  zlib's raw deflate cannot run with windowBits 8: since
 * 1.2.9 deflateInit2() silently takes 9 (a 256-byte window left no room for
 * its lookahead), and with 9 its longest distance is 512 - 262 = 250, but
 * that is an implementation detail zlib does not promise.  Per RFC 7692:
 *   - server_max_window_bits bounds the server's window, and the answer may
 *     not exceed the offer (7.1.2.1).  An offer of 8 cannot be kept with a
 *     documented zlib guarantee, so that offer is declined (the next one is
 *     considered); an offer of 9..15 is answered with min(configured, offer),
 *     a configured 8 counting as 9.  Without the parameter in the offer the
 *     answer leaves it out: the client then assumes 15, and a stream made
 *     with any smaller window inflates correctly with a larger one (some
 *     clients refuse an unoffered server_max_window_bits).
 *   - client_max_window_bits bounds the client's window.  Asking for 8 is
 *     fine (the answer may be any value up to the offer's, 7.1.2.2), and the
 *     server then inflates with 9: a larger inflate window accepts every
 *     stream a smaller one does, and zlib-based clients asked for 8 really
 *     deflate with 9 (the same silent change), which 9 also accepts.  That
 *     is the side where 8 may be handled as 9.
 */
#include "pmd.h"

#include <string.h>

#include "common.h"

static const char PMD_NAME[] = "permessage-deflate";
#define PMD_NAME_LEN (sizeof PMD_NAME - 1)

enum {
    S_LIST = 0,     /* before an element: OWS, ',' or a name */
    S_NAME,         /* in the extension's name */
    S_AFTER_NAME,   /* OWS after it */
    S_PARAM,        /* after ';': OWS or a parameter's name */
    S_PNAME,
    S_AFTER_PNAME,
    S_VALUE,        /* after '=': OWS, a token or '"' */
    S_VTOKEN,
    S_QUOTED,
    S_QPAIR,        /* after '\\' in a quoted string */
    S_AFTER_VALUE,
    S_FAILED,
};

/* The parameters, one bit each in `seen`. */
enum {
    P_SERVER_NCT = 1u << 0,
    P_CLIENT_NCT = 1u << 1,
    P_SERVER_BITS = 1u << 2,
    P_CLIENT_BITS = 1u << 3,
};

static const struct {
    const char *name;
    uint8_t len;
    uint8_t bit;
} params[] = {
    { "server_no_context_takeover", 26, P_SERVER_NCT },
    { "client_no_context_takeover", 26, P_CLIENT_NCT },
    { "server_max_window_bits", 22, P_SERVER_BITS },
    { "client_max_window_bits", 22, P_CLIENT_BITS },
};

const char *wse_pmd_why_str(enum wse_pmd_why why)
{
    switch (why) {
    case WSE_PMD_NO_OFFER: return "no permessage-deflate offer";
    case WSE_PMD_SYNTAX: return "malformed Sec-WebSocket-Extensions";
    case WSE_PMD_UNKNOWN_PARAM: return "unknown parameter";
    case WSE_PMD_REPEATED_PARAM: return "repeated parameter";
    case WSE_PMD_BAD_VALUE: return "invalid parameter value";
    case WSE_PMD_SERVER_BITS_8: return "server_max_window_bits=8 (zlib deflates with 9)";
    }
    return "?";
}

/* RFC 7230 3.2.6 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qdtext (RFC 7230 3.2.6): HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text. */
static bool is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
           (c >= 0x5D && c <= 0x7E) || c >= 0x80;
}

/* quoted-pair's second byte: HTAB, SP, VCHAR, obs-text. */
static bool is_qpair(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

void wse_pmd_init(struct wse_pmd_parser *p, const struct wse_pmd_cfg *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
}

static void offer_start(struct wse_pmd_parser *p)
{
    p->name_pos = 0;
    p->name_other = false;
    p->offer_why = 0;
    p->seen = 0;
    p->server_bits = p->client_bits = 0;
    p->server_nct = p->client_nct = false;
}

static void decline(struct wse_pmd_parser *p, uint8_t why)
{
    if (!p->offer_why)
        p->offer_why = why;
}

/* "8".."15", no leading zero; 0 when not that. */
static uint8_t window_value(const struct wse_pmd_parser *p)
{
    if (p->val_not_token || p->val_len == 0 || p->val_len > sizeof p->val)
        return 0;
    unsigned v = 0;
    for (unsigned i = 0; i < p->val_len; i++) {
        if (p->val[i] < '0' || p->val[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(p->val[i] - '0');
    }
    if (p->val[0] == '0' || v < WSE_PMD_BITS_MIN || v > WSE_PMD_BITS_MAX)
        return 0;
    return (uint8_t)v;
}

static uint8_t param_bit(const struct wse_pmd_parser *p)
{
    for (size_t i = 0; i < countof(params); i++) {
        if (p->pname_len == params[i].len && memcmp(p->pname, params[i].name, params[i].len) == 0)
            return params[i].bit;
    }
    return 0;
}

/* A parameter of the current offer is complete. */
static void param_end(struct wse_pmd_parser *p)
{
    if (p->name_other)
        return;     /* another extension's parameters: syntax only */
    uint8_t bit = param_bit(p);
    if (!bit) {
        decline(p, WSE_PMD_UNKNOWN_PARAM);
        return;
    }
    if (p->seen & bit) {
        decline(p, WSE_PMD_REPEATED_PARAM);
        return;
    }
    p->seen |= bit;
    uint8_t v = p->has_value ? window_value(p) : 0;
    switch (bit) {
    case P_SERVER_NCT:
    case P_CLIENT_NCT:
        if (p->has_value)
            decline(p, WSE_PMD_BAD_VALUE);
        else if (bit == P_SERVER_NCT)
            p->server_nct = true;
        else
            p->client_nct = true;
        break;
    case P_SERVER_BITS:
        if (!v)
            decline(p, WSE_PMD_BAD_VALUE);
        p->server_bits = v;
        break;
    default: /* P_CLIENT_BITS: the value is optional */
        if (p->has_value && !v)
            decline(p, WSE_PMD_BAD_VALUE);
        p->client_bits = p->has_value ? v : WSE_PMD_NO_VALUE;
        break;
    }
}

static uint8_t min_u8(uint8_t a, uint8_t b)
{
    return a < b ? a : b;
}

static uint8_t max_u8(uint8_t a, uint8_t b)
{
    return a > b ? a : b;
}

/* The server's answer to an acceptable offer (see the top of this file). */
static void choose(struct wse_pmd_parser *p)
{
    const struct wse_pmd_cfg *c = p->cfg;
    struct wse_pmd_agreed *a = &p->agreed;
    uint8_t own = max_u8(min_u8(c->server_bits, WSE_PMD_BITS_MAX), WSE_PMD_ZLIB_BITS_MIN);

    memset(a, 0, sizeof *a);
    a->server_nct = p->server_nct || !c->server_takeover;
    a->client_nct = p->client_nct || !c->client_takeover;
    a->deflate_bits = p->server_bits ? min_u8(own, p->server_bits) : own;
    a->server_bits = p->server_bits ? a->deflate_bits : 0;
    if (!p->client_bits) {
        /* Not offered: it must not be answered (7.1.2.2); the client may
         * use the full window. */
        a->inflate_bits = WSE_PMD_BITS_MAX;
        return;
    }
    uint8_t limit = p->client_bits == WSE_PMD_NO_VALUE ? WSE_PMD_BITS_MAX : p->client_bits;
    uint8_t ask = min_u8(max_u8(c->client_bits, WSE_PMD_BITS_MIN), limit);
    a->client_bits = ask < WSE_PMD_BITS_MAX ? ask : 0;
    a->inflate_bits = max_u8(ask, WSE_PMD_ZLIB_BITS_MIN);
}

/* An element of the list is complete. */
static void offer_end(struct wse_pmd_parser *p)
{
    if (p->name_other || p->name_pos != PMD_NAME_LEN)
        return;
    if (!p->offer_why && p->server_bits == 8)
        p->offer_why = WSE_PMD_SERVER_BITS_8;
    if (p->offer_why) {
        if (!p->why)
            p->why = p->offer_why;
        return;
    }
    if (!p->accepted) {
        choose(p);
        p->accepted = true;
    }
}

static void pname_start(struct wse_pmd_parser *p)
{
    p->pname_len = 0;
    p->val_len = 0;
    p->has_value = false;
    p->val_not_token = false;
}

static void pname_add(struct wse_pmd_parser *p, char c)
{
    if (p->pname_len < sizeof p->pname)
        p->pname[p->pname_len] = c;
    if (p->pname_len <= sizeof p->pname)
        p->pname_len++;
}

static void val_add(struct wse_pmd_parser *p, unsigned char c)
{
    if (!is_tchar(c))
        p->val_not_token = true;
    if (p->val_len < sizeof p->val)
        p->val[p->val_len] = (char)c;
    if (p->val_len <= sizeof p->val)
        p->val_len++;
}

static void name_add(struct wse_pmd_parser *p, char c)
{
    if (p->name_other)
        return;
    if (p->name_pos < PMD_NAME_LEN && PMD_NAME[p->name_pos] == c)
        p->name_pos++;
    else
        p->name_other = true;
}

/* After a name, a parameter or a value: ';' or ',' (OWS is the caller's). */
static int separator(struct wse_pmd_parser *p, unsigned char c, bool in_param)
{
    if (c == ';') {
        if (in_param)
            param_end(p);
        p->state = S_PARAM;
        return WSE_OK;
    }
    if (c == ',') {
        if (in_param)
            param_end(p);
        offer_end(p);
        p->state = S_LIST;
        return WSE_OK;
    }
    return WSE_FAIL;
}

static int step(struct wse_pmd_parser *p, unsigned char c)
{
    switch (p->state) {
    case S_LIST:
        if (is_ows(c) || c == ',')
            return WSE_OK;
        if (!is_tchar(c))
            return WSE_FAIL;
        offer_start(p);
        name_add(p, (char)c);
        p->state = S_NAME;
        return WSE_OK;
    case S_NAME:
        if (is_tchar(c)) {
            name_add(p, (char)c);
            return WSE_OK;
        }
        if (is_ows(c)) {
            p->state = S_AFTER_NAME;
            return WSE_OK;
        }
        return separator(p, c, false);
    case S_AFTER_NAME:
        return is_ows(c) ? WSE_OK : separator(p, c, false);
    case S_PARAM:
        if (is_ows(c))
            return WSE_OK;
        if (!is_tchar(c))
            return WSE_FAIL;
        pname_start(p);
        pname_add(p, (char)c);
        p->state = S_PNAME;
        return WSE_OK;
    case S_PNAME:
        if (is_tchar(c)) {
            pname_add(p, (char)c);
            return WSE_OK;
        }
        __attribute__((fallthrough));   /* OWS, '=' or a separator */
    case S_AFTER_PNAME:
        if (is_ows(c)) {
            p->state = S_AFTER_PNAME;
            return WSE_OK;
        }
        if (c == '=') {
            p->has_value = true;
            p->state = S_VALUE;
            return WSE_OK;
        }
        return separator(p, c, true);
    case S_VALUE:
        if (is_ows(c))
            return WSE_OK;
        if (c == '"') {
            p->state = S_QUOTED;
            return WSE_OK;
        }
        if (!is_tchar(c))
            return WSE_FAIL;
        val_add(p, c);
        p->state = S_VTOKEN;
        return WSE_OK;
    case S_VTOKEN:
        if (is_tchar(c)) {
            val_add(p, c);
            return WSE_OK;
        }
        if (is_ows(c)) {
            p->state = S_AFTER_VALUE;
            return WSE_OK;
        }
        return separator(p, c, true);
    case S_QUOTED:
        if (c == '"') {
            if (p->val_len == 0)
                p->val_not_token = true;    /* "" is no token */
            p->state = S_AFTER_VALUE;
            return WSE_OK;
        }
        if (c == '\\') {
            p->state = S_QPAIR;
            return WSE_OK;
        }
        if (!is_qdtext(c))
            return WSE_FAIL;
        val_add(p, c);
        return WSE_OK;
    case S_QPAIR:
        if (!is_qpair(c))
            return WSE_FAIL;
        val_add(p, c);
        p->state = S_QUOTED;
        return WSE_OK;
    case S_AFTER_VALUE:
        return is_ows(c) ? WSE_OK : separator(p, c, true);
    default:
        return WSE_FAIL;
    }
}

static int failed(struct wse_pmd_parser *p)
{
    p->state = S_FAILED;
    p->accepted = false;
    p->why = WSE_PMD_SYNTAX;
    return WSE_FAIL;
}

int wse_pmd_feed(struct wse_pmd_parser *p, const char *s, size_t n)
{
    if (p->state == S_FAILED)
        return WSE_FAIL;
    for (size_t i = 0; i < n; i++) {
        if (step(p, (unsigned char)s[i]) != WSE_OK)
            return failed(p);
    }
    return WSE_OK;
}

int wse_pmd_end_line(struct wse_pmd_parser *p)
{
    switch (p->state) {
    case S_LIST:
        return WSE_OK;
    case S_NAME:
    case S_AFTER_NAME:
        offer_end(p);
        break;
    case S_PNAME:
    case S_AFTER_PNAME:
    case S_VTOKEN:
    case S_AFTER_VALUE:
        param_end(p);
        offer_end(p);
        break;
    default:    /* a trailing ';' or '=', an open quoted string, or failed */
        return failed(p);
    }
    p->state = S_LIST;
    return WSE_OK;
}

bool wse_pmd_result(const struct wse_pmd_parser *p, struct wse_pmd_agreed *out)
{
    if (!p->accepted || p->state == S_FAILED)
        return false;
    *out = p->agreed;
    return true;
}

bool wse_pmd_negotiate(const struct wse_pmd_cfg *cfg, const char *buf,
                       const struct wse_span *lines, size_t nlines,
                       struct wse_pmd_agreed *out, enum wse_pmd_why *why)
{
    struct wse_pmd_parser p;

    wse_pmd_init(&p, cfg);
    for (size_t i = 0; i < nlines; i++) {
        if (wse_pmd_feed(&p, wse_span_ptr(buf, lines[i]), lines[i].len) != WSE_OK ||
            wse_pmd_end_line(&p) != WSE_OK)
            break;
    }
    bool ok = wse_pmd_result(&p, out);
    if (!ok && why)
        *why = (enum wse_pmd_why)p.why;
    return ok;
}

static void put_bits(struct wse_out *o, const char *name, uint8_t bits)
{
    char v[3] = { 0 };

    if (bits >= 10) {
        v[0] = '1';
        v[1] = (char)('0' + bits - 10);
    } else {
        v[0] = (char)('0' + bits);
    }
    wse_out_str(o, "; ");
    wse_out_str(o, name);
    wse_out_str(o, "=");
    wse_out_str(o, v);
}

size_t wse_pmd_response(char *out, size_t cap, const struct wse_pmd_agreed *a)
{
    struct wse_out o = { out, cap, 0, false };

    wse_out_str(&o, "Sec-WebSocket-Extensions: permessage-deflate");
    if (a->server_nct)
        wse_out_str(&o, "; server_no_context_takeover");
    if (a->client_nct)
        wse_out_str(&o, "; client_no_context_takeover");
    if (a->server_bits)
        put_bits(&o, "server_max_window_bits", a->server_bits);
    if (a->client_bits)
        put_bits(&o, "client_max_window_bits", a->client_bits);
    wse_out_str(&o, "\r\n");
    return o.overflow ? 0 : o.len;
}
