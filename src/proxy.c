/*
 * proxy.c - incremental parser of the PROXY protocol header (v1 text, v2
 * binary), and the formatter of the address it carries.
 *
 * Design: one explicit state machine over the caller's accumulated buffer,
 * one byte per step, everything needed to resume kept in struct wse_proxy
 * (as http.c does).  A byte that cannot continue a valid header fails at
 * once, never later:
 *   - literals ("PROXY ", "TCP4 ", the v2 signature) byte by byte;
 *   - v1 addresses and ports by small scanners that track exactly what may
 *     still follow (octet values, leading zeros, IPv6 group counts, where
 *     "::" and an embedded dotted quad may stand);
 *   - the 107-byte limit of v1 by the shortest completion of the fields not
 *     yet seen (v1_min_rest()): a line fails at the first byte after which
 *     no valid line of at most 107 bytes begins with the bytes so far;
 *   - v2's length at its bytes, each TLV's length when its second byte
 *     arrives.
 * So the bytes fed one at a time give the same verdict, at the same byte,
 * as the whole buffer at once.
 */
#include "proxy.h"

#include <stdbool.h>
#include <string.h>

#include "common.h"

enum proxy_state {
    ST_START = 0,     /* byte 0: 'P' (v1) or 0x0D (v2) */
    ST_V1_HEAD,       /* bytes 1..5: "ROXY " */
    ST_V1_PROTO,      /* byte 6: 'T' or 'U' */
    ST_V1_TCP,        /* bytes 7..8: "CP" */
    ST_V1_TCP_FAM,    /* byte 9: '4' or '6' */
    ST_V1_TCP_SP,     /* byte 10: ' ' */
    ST_V1_UNKNOWN,    /* bytes 7..12: "NKNOWN" */
    ST_V1_UNK_END,    /* byte 13: ' ' or CR */
    ST_V1_UNK_REST,   /* ignored bytes up to the CR */
    ST_V1_SRC,        /* source address, up to its ' ' */
    ST_V1_DST,        /* destination address, up to its ' ' */
    ST_V1_SPORT,      /* up to its ' ' */
    ST_V1_DPORT,      /* up to the CR */
    ST_V1_LF,
    ST_V2_SIG,        /* bytes 1..11 of the signature */
    ST_V2_VER_CMD,    /* byte 12 */
    ST_V2_FAM,        /* byte 13 */
    ST_V2_LEN_HI,     /* byte 14 */
    ST_V2_LEN_LO,     /* byte 15 */
    ST_V2_BODY,       /* address block and TLVs */
    ST_DONE,
    ST_FAILED,
};

static const char V1_TCP[] = "PROXY TCP";
static const char V1_UNKNOWN[] = "PROXY UNKNOWN";
static const uint8_t V2_SIG[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
#define V2_HDR 16

/* What one step did with its byte. */
enum step {
    STEP_GO,      /* consumed, carry on */
    STEP_END,     /* consumed, and it ended the field (or the header) */
    STEP_FAIL,    /* the byte cannot stand here */
};

/* What the previous character of an IPv6 address was (scan.prev). */
enum {
    P_START = 0,  /* none yet */
    P_HEX,        /* a hex digit: a group is in progress */
    P_COLON,      /* a ':' after a group */
    P_LEAD,       /* a ':' as the first character: only ':' may follow */
    P_DCOLON,     /* the second ':' of "::" */
};

/* scan.flags */
enum {
    S_DCOLON = 1u << 0,   /* "::" seen; scan.dcolon is where */
    S_QUAD = 1u << 1,     /* in the embedded dotted quad */
    S_DEC = 1u << 2,      /* the current group may be read as an octet */
};

static inline bool is_digit(unsigned c)
{
    return c - '0' < 10;
}

static int hex_value(unsigned c)
{
    if (is_digit(c))
        return (int)(c - '0');
    c |= 0x20;   /* ASCII lower case; no other byte lands in 'a'..'f' */
    if (c - 'a' < 6)
        return (int)(c - 'a' + 10);
    return -1;
}

static void scan_reset(struct wse_proxy *p)
{
    memset(&p->scan, 0, sizeof(p->scan));
}

/* ---- v1 field scanners ---- */

/*
 * Dotted quad: 4 octets, decimal, 0..255, no leading zeros, into out[0..4).
 * scan.octets counts the octets stored; the current one is scan.dval with
 * scan.ndig digits.  The IPv6 scanner enters with the first octet stored.
 */
static enum step quad_step(struct wse_proxy *p, uint8_t *out, unsigned c, unsigned term)
{
    if (is_digit(c)) {
        if (p->scan.ndig > 0 && p->scan.dval == 0)
            return STEP_FAIL;                       /* leading zero */
        unsigned v = p->scan.dval * 10u + (c - '0');
        if (v > 255)
            return STEP_FAIL;
        p->scan.dval = (uint16_t)v;
        p->scan.ndig++;
        return STEP_GO;
    }
    if (p->scan.ndig == 0)
        return STEP_FAIL;                           /* empty octet */
    if (c == '.' && p->scan.octets < 3) {
        out[p->scan.octets++] = (uint8_t)p->scan.dval;
        p->scan.dval = 0;
        p->scan.ndig = 0;
        return STEP_GO;
    }
    if (c == term && p->scan.octets == 3) {
        out[3] = (uint8_t)p->scan.dval;
        return STEP_END;
    }
    return STEP_FAIL;
}

static void store_group(uint8_t *a, unsigned i, unsigned v)
{
    a[2 * i] = (uint8_t)(v >> 8);
    a[2 * i + 1] = (uint8_t)v;
}

/* Moves the groups written after "::" to the end and zeroes the gap. */
static void expand_dcolon(const struct wse_proxy *p, uint8_t *a)
{
    if (!(p->scan.flags & S_DCOLON))
        return;
    unsigned at = p->scan.dcolon, after = p->scan.ngroups - at;
    memmove(a + 2 * (8 - after), a + 2 * at, 2 * after);
    memset(a + 2 * at, 0, 2 * (8u - p->scan.ngroups));
}

/* A hex digit: starts or extends a group. */
static enum step six_hex(struct wse_proxy *p, unsigned c, int h)
{
    if (p->scan.prev == P_LEAD)
        return STEP_FAIL;                   /* ":1": a lone leading colon */
    if (p->scan.prev != P_HEX) {
        /* A new group; after "::" it must leave room for the zeros. */
        if ((p->scan.flags & S_DCOLON) && p->scan.ngroups >= 7)
            return STEP_FAIL;
        p->scan.val = 0;
        p->scan.dval = 0;
        p->scan.ndig = 0;
        p->scan.flags |= S_DEC;
    } else if (p->scan.ndig == 4) {
        return STEP_FAIL;                   /* a fifth hex digit */
    }
    p->scan.val = (uint16_t)(p->scan.val << 4 | (unsigned)h);
    /* Whether the group could still be an octet if a '.' comes. */
    if ((p->scan.flags & S_DEC) && is_digit(c) &&
        !(p->scan.ndig > 0 && p->scan.dval == 0) &&
        p->scan.dval * 10u + (c - '0') <= 255)
        p->scan.dval = (uint16_t)(p->scan.dval * 10u + (c - '0'));
    else
        p->scan.flags &= (uint8_t)~S_DEC;
    p->scan.ndig++;
    p->scan.prev = P_HEX;
    return STEP_GO;
}

static enum step six_colon(struct wse_proxy *p, uint8_t *a)
{
    switch (p->scan.prev) {
    case P_START:
        p->scan.prev = P_LEAD;
        return STEP_GO;
    case P_HEX:
        store_group(a, p->scan.ngroups++, p->scan.val);
        /* Another group must follow (or, without "::" yet, a ':' making
         * one): at most 8 in all, 7 when "::" stands for at least one. */
        if (p->scan.ngroups > ((p->scan.flags & S_DCOLON) ? 6 : 7))
            return STEP_FAIL;
        p->scan.prev = P_COLON;
        return STEP_GO;
    case P_LEAD:
    case P_COLON:
        if (p->scan.flags & S_DCOLON)
            return STEP_FAIL;               /* a second "::" */
        p->scan.flags |= S_DCOLON;
        p->scan.dcolon = p->scan.ngroups;
        p->scan.prev = P_DCOLON;
        return STEP_GO;
    default:                                /* ":::" */
        return STEP_FAIL;
    }
}

/* '.': the current group was the first octet of a dotted quad. */
static enum step six_dot(struct wse_proxy *p, uint8_t *a)
{
    if (p->scan.prev != P_HEX || !(p->scan.flags & S_DEC))
        return STEP_FAIL;
    /* The quad is the last 32 bits: 6 groups before it, or at most 5 and
     * "::" for the rest. */
    if ((p->scan.flags & S_DCOLON) ? p->scan.ngroups > 5 : p->scan.ngroups != 6)
        return STEP_FAIL;
    a[2 * p->scan.ngroups] = (uint8_t)p->scan.dval;
    p->scan.octets = 1;
    p->scan.dval = 0;
    p->scan.ndig = 0;
    p->scan.flags |= S_QUAD;
    return STEP_GO;
}

static enum step six_end(struct wse_proxy *p, uint8_t *a)
{
    if (p->scan.prev == P_HEX)
        store_group(a, p->scan.ngroups++, p->scan.val);
    else if (p->scan.prev != P_DCOLON)
        return STEP_FAIL;                   /* empty, or ends in one ':' */
    if (!(p->scan.flags & S_DCOLON) && p->scan.ngroups != 8)
        return STEP_FAIL;
    expand_dcolon(p, a);
    return STEP_END;
}

/* RFC 4291 section 2.2 text form into a[0..16), ended by term. */
static enum step six_step(struct wse_proxy *p, uint8_t *a, unsigned c, unsigned term)
{
    if (p->scan.flags & S_QUAD) {
        enum step r = quad_step(p, a + 2 * p->scan.ngroups, c, term);
        if (r == STEP_END) {
            p->scan.ngroups = (uint8_t)(p->scan.ngroups + 2);
            expand_dcolon(p, a);
        }
        return r;
    }
    int h = hex_value(c);
    if (h >= 0)
        return six_hex(p, c, h);
    if (c == ':')
        return six_colon(p, a);
    if (c == '.')
        return six_dot(p, a);
    if (c == term)
        return six_end(p, a);
    return STEP_FAIL;
}

/* Decimal 0..65535, no leading zeros, ended by term. */
static enum step port_step(struct wse_proxy *p, uint16_t *out, unsigned c, unsigned term)
{
    if (is_digit(c)) {
        if (p->scan.ndig > 0 && p->scan.val == 0)
            return STEP_FAIL;
        unsigned v = p->scan.val * 10u + (c - '0');
        if (v > 65535)
            return STEP_FAIL;
        p->scan.val = (uint16_t)v;
        p->scan.ndig++;
        return STEP_GO;
    }
    if (c != term || p->scan.ndig == 0)
        return STEP_FAIL;
    *out = p->scan.val;
    return STEP_END;
}

/* ---- the 107-byte budget of v1 ---- */

/* Characters the address in progress still needs at least (not its ' '). */
static unsigned addr_min_rest(const struct wse_proxy *p)
{
    if (p->family == WSE_PROXY_INET || (p->scan.flags & S_QUAD))
        return (p->scan.ndig == 0) + 2u * (3u - p->scan.octets);
    switch (p->scan.prev) {
    case P_START:
        return 2;                           /* "::" */
    case P_LEAD:
    case P_COLON:
        return 1;                           /* ':' or a digit */
    case P_DCOLON:
        return 0;
    default:                                /* P_HEX */
        return (p->scan.flags & S_DCOLON) || p->scan.ngroups == 7 ? 0 : 2;
    }
}

/*
 * The fewest bytes that can still complete the line from the current state
 * (the shortest address is "::" or "0.0.0.0", the shortest port "0").  The
 * literal states before byte 14 return 0: they are far from the limit.
 */
static unsigned v1_min_rest(const struct wse_proxy *p)
{
    unsigned addr = p->family == WSE_PROXY_INET6 ? 2 : 7;
    unsigned port = p->scan.ndig == 0;

    switch (p->state) {
    case ST_V1_SRC:
        return addr_min_rest(p) + 1 + addr + 6;     /* " <dst> 0 0\r\n" */
    case ST_V1_DST:
        return addr_min_rest(p) + 6;                /* " 0 0\r\n" */
    case ST_V1_SPORT:
        return port + 4;                            /* " 0\r\n" */
    case ST_V1_DPORT:
        return port + 2;
    case ST_V1_UNK_END:
    case ST_V1_UNK_REST:
        return 2;
    case ST_V1_LF:
        return 1;
    default:
        return 0;
    }
}

/* ---- v1 ---- */

static enum step v1_next_field(struct wse_proxy *p, uint8_t state)
{
    scan_reset(p);
    p->state = state;
    return STEP_GO;
}

static enum step v1_literal(struct wse_proxy *p, size_t pos, unsigned c)
{
    switch (p->state) {
    case ST_V1_HEAD:
        if (c != (unsigned char)V1_TCP[pos])
            return STEP_FAIL;
        if (pos == 5)
            p->state = ST_V1_PROTO;
        return STEP_GO;
    case ST_V1_PROTO:
        if (c == 'T')
            p->state = ST_V1_TCP;
        else if (c == 'U')
            p->state = ST_V1_UNKNOWN;
        else
            return STEP_FAIL;
        return STEP_GO;
    case ST_V1_TCP:
        if (c != (unsigned char)V1_TCP[pos])
            return STEP_FAIL;
        if (pos == sizeof(V1_TCP) - 2)
            p->state = ST_V1_TCP_FAM;
        return STEP_GO;
    case ST_V1_TCP_FAM:
        if (c == '4')
            p->family = WSE_PROXY_INET;
        else if (c == '6')
            p->family = WSE_PROXY_INET6;
        else
            return STEP_FAIL;
        p->state = ST_V1_TCP_SP;
        return STEP_GO;
    case ST_V1_TCP_SP:
        return c == ' ' ? v1_next_field(p, ST_V1_SRC) : STEP_FAIL;
    case ST_V1_UNKNOWN:
        if (c != (unsigned char)V1_UNKNOWN[pos])
            return STEP_FAIL;
        if (pos == sizeof(V1_UNKNOWN) - 2)
            p->state = ST_V1_UNK_END;
        return STEP_GO;
    default: /* ST_V1_UNK_END */
        if (c == ' ')
            p->state = ST_V1_UNK_REST;
        else if (c == '\r')
            p->state = ST_V1_LF;
        else
            return STEP_FAIL;
        return STEP_GO;
    }
}

static enum step v1_addr(struct wse_proxy *p, uint8_t *a, unsigned c, uint8_t next)
{
    enum step r = p->family == WSE_PROXY_INET ? quad_step(p, a, c, ' ')
                                              : six_step(p, a, c, ' ');
    return r == STEP_END ? v1_next_field(p, next) : r;
}

static enum step v1_step(struct wse_proxy *p, size_t pos, unsigned c)
{
    enum step r;

    switch (p->state) {
    case ST_V1_SRC:
        return v1_addr(p, p->src_addr, c, ST_V1_DST);
    case ST_V1_DST:
        return v1_addr(p, p->dst_addr, c, ST_V1_SPORT);
    case ST_V1_SPORT:
        r = port_step(p, &p->src_port, c, ' ');
        return r == STEP_END ? v1_next_field(p, ST_V1_DPORT) : r;
    case ST_V1_DPORT:
        r = port_step(p, &p->dst_port, c, '\r');
        if (r != STEP_END)
            return r;
        p->state = ST_V1_LF;
        return STEP_GO;
    case ST_V1_UNK_REST:
        if (c == '\r')
            p->state = ST_V1_LF;
        return c == '\n' ? STEP_FAIL : STEP_GO;   /* a bare LF ends nothing */
    case ST_V1_LF:
        return c == '\n' ? STEP_END : STEP_FAIL;
    default:
        return v1_literal(p, pos, c);
    }
}

/* ---- v2 ---- */

static unsigned v2_addr_len(const struct wse_proxy *p)
{
    if (p->command != WSE_PROXY_CMD_PROXY)
        return 0;
    return p->family == WSE_PROXY_INET ? 12 : p->family == WSE_PROXY_INET6 ? 36 : 0;
}

/*
 * Byte 13: the family (high nibble: UNSPEC, INET, INET6, UNIX) and the
 * transport (low: UNSPEC, STREAM, DGRAM).  Values beyond those "must be
 * rejected as invalid by receivers", even with LOCAL, whose block is then
 * skipped unread.  PROXY is accepted for TCP over IPv4 or IPv6, and for
 * UNSPEC (the spec leaves it to the receiver; it means "use the real
 * endpoints", as v1's UNKNOWN does); UDP and AF_UNIX fail.
 */
static enum step v2_family(struct wse_proxy *p, unsigned c)
{
    if ((c >> 4) > 3 || (c & 0x0F) > 2)
        return STEP_FAIL;
    if (p->command == WSE_PROXY_CMD_PROXY) {
        if (c == 0x11)
            p->family = WSE_PROXY_INET;
        else if (c == 0x21)
            p->family = WSE_PROXY_INET6;
        else if (c != 0x00)
            return STEP_FAIL;
    }
    p->state = ST_V2_LEN_HI;
    return STEP_GO;
}

/* Byte 15: the length is known; check it against what it must hold. */
static enum step v2_length(struct wse_proxy *p, const uint8_t *buf, unsigned c)
{
    unsigned len = (unsigned)buf[14] << 8 | c;
    unsigned alen = v2_addr_len(p);

    if (len > WSE_PROXY_V2_MAX_LEN || len < alen)
        return STEP_FAIL;
    if (alen > 0) {
        /* TLVs follow a known address block: whole ones (3 bytes at least). */
        unsigned rest = len - alen;
        if (rest > 0 && rest < 3)
            return STEP_FAIL;
        p->tlv_next = (uint16_t)(V2_HDR + alen);
    }
    p->total = (uint16_t)(V2_HDR + len);
    p->state = ST_V2_BODY;
    return len == 0 ? STEP_END : STEP_GO;
}

static inline uint16_t get16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

/* The address block is complete (its last byte just arrived): copy it. */
static void v2_addresses(struct wse_proxy *p, const uint8_t *buf)
{
    const uint8_t *b = buf + V2_HDR;
    size_t n = p->family == WSE_PROXY_INET ? 4 : 16;

    memcpy(p->src_addr, b, n);
    memcpy(p->dst_addr, b + n, n);
    p->src_port = get16(b + 2 * n);
    p->dst_port = get16(b + 2 * n + 2);
}

static enum step v2_body(struct wse_proxy *p, const uint8_t *buf, size_t pos)
{
    unsigned alen = v2_addr_len(p);

    if (alen > 0 && pos == V2_HDR + alen - 1)
        v2_addresses(p, buf);
    if (p->tlv_next != 0 && pos == p->tlv_next + 2u) {
        /* A TLV's length is complete: its value must end within the
         * header, and leave either nothing or room for another TLV. */
        size_t end = pos + 1 + get16(buf + pos - 1);
        if (end > p->total || (end < p->total && p->total - end < 3))
            return STEP_FAIL;
        p->tlv_next = (uint16_t)end;
    }
    return pos + 1 == p->total ? STEP_END : STEP_GO;
}

static enum step v2_step(struct wse_proxy *p, const uint8_t *buf, size_t pos, unsigned c)
{
    switch (p->state) {
    case ST_V2_SIG:
        if (c != V2_SIG[pos])
            return STEP_FAIL;
        if (pos == sizeof(V2_SIG) - 1)
            p->state = ST_V2_VER_CMD;
        return STEP_GO;
    case ST_V2_VER_CMD:
        if ((c >> 4) != 2 || (c & 0x0F) > WSE_PROXY_CMD_PROXY)
            return STEP_FAIL;
        p->command = (uint8_t)(c & 0x0F);
        p->state = ST_V2_FAM;
        return STEP_GO;
    case ST_V2_FAM:
        return v2_family(p, c);
    case ST_V2_LEN_HI:
        /* Over WSE_PROXY_V2_MAX_LEN whatever the low byte says. */
        if (c > WSE_PROXY_V2_MAX_LEN >> 8)
            return STEP_FAIL;
        p->state = ST_V2_LEN_LO;
        return STEP_GO;
    case ST_V2_LEN_LO:
        return v2_length(p, buf, c);
    default: /* ST_V2_BODY */
        return v2_body(p, buf, pos);
    }
}

/* ---- driver ---- */

static enum step step_start(struct wse_proxy *p, unsigned c)
{
    if (c == 'P') {
        p->version = 1;
        p->command = WSE_PROXY_CMD_PROXY;
        p->state = ST_V1_HEAD;
        return STEP_GO;
    }
    if (c == V2_SIG[0]) {
        p->version = 2;
        p->state = ST_V2_SIG;
        return STEP_GO;
    }
    return STEP_FAIL;
}

static enum step step(struct wse_proxy *p, const uint8_t *buf, size_t pos)
{
    unsigned c = buf[pos];

    if (p->state == ST_START)
        return step_start(p, c);
    if (p->state >= ST_V2_SIG)
        return v2_step(p, buf, pos, c);
    enum step r = v1_step(p, pos, c);
    if (r == STEP_GO && pos + 1 + v1_min_rest(p) > WSE_PROXY_V1_MAX)
        return STEP_FAIL;
    return r;
}

void wse_proxy_init(struct wse_proxy *p)
{
    memset(p, 0, sizeof(*p));
}

int wse_proxy_parse(struct wse_proxy *p, const uint8_t *buf, size_t len)
{
    if (p->state == ST_DONE)
        return WSE_OK;
    if (p->state == ST_FAILED)
        return WSE_FAIL;

    /* Every state ends or fails by byte WSE_PROXY_MAX - 1: pos fits. */
    size_t pos = p->parsed;
    for (; pos < len; pos++) {
        enum step r = step(p, buf, pos);
        if (r == STEP_GO)
            continue;
        if (r == STEP_FAIL) {
            p->parsed = (uint16_t)pos;   /* the offending byte */
            p->state = ST_FAILED;
            return WSE_FAIL;
        }
        p->parsed = p->header_len = (uint16_t)(pos + 1);
        p->state = ST_DONE;
        return WSE_OK;
    }
    p->parsed = (uint16_t)pos;
    return WSE_AGAIN;
}

/* ---- formatting ---- */

/* Bounded appender (the output is short: a fixed local buffer). */
struct out {
    char buf[WSE_PROXY_ADDRSTRLEN];
    size_t len;
};

static void put_char(struct out *o, char ch)
{
    o->buf[o->len++] = ch;
}

static void put_str(struct out *o, const char *s)
{
    while (*s)
        put_char(o, *s++);
}

static void put_dec(struct out *o, unsigned v)
{
    char tmp[8];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i < sizeof(tmp))
        put_char(o, tmp[i++]);
}

static void put_hex(struct out *o, unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    int shift = 12;

    while (shift > 0 && (v >> shift) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        put_char(o, digits[(v >> shift) & 0xF]);
}

static void put_quad(struct out *o, const uint8_t *a)
{
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            put_char(o, '.');
        put_dec(o, a[i]);
    }
}

/* RFC 5952 section 4 (and 5 for IPv4-mapped addresses). */
static void put_six(struct out *o, const uint8_t *a)
{
    unsigned g[8];
    int best = -1, best_len = 0;

    for (int i = 0; i < 8; i++)
        g[i] = get16(a + 2 * i);
    if (!g[0] && !g[1] && !g[2] && !g[3] && !g[4] && g[5] == 0xFFFF) {
        put_str(o, "::ffff:");
        put_quad(o, a + 12);
        return;
    }
    /* The longest run of zero groups, the first of equals; one alone stays. */
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len && j - i >= 2) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    for (int i = 0; i < 8;) {
        if (i == best) {
            put_str(o, "::");
            i += best_len;
            continue;
        }
        if (i > 0 && i != best + best_len)
            put_char(o, ':');
        put_hex(o, g[i++]);
    }
}

size_t wse_proxy_format_addr(const struct wse_proxy *p, char *out, size_t n)
{
    struct out o = { .len = 0 };

    if (p->family == WSE_PROXY_INET) {
        put_quad(&o, p->src_addr);
    } else if (p->family == WSE_PROXY_INET6) {
        put_char(&o, '[');
        put_six(&o, p->src_addr);
        put_char(&o, ']');
    }
    if (o.len > 0) {
        put_char(&o, ':');
        put_dec(&o, p->src_port);
    }
    if (o.len == 0 || o.len >= n) {
        if (n > 0)
            out[0] = '\0';
        return 0;
    }
    memcpy(out, o.buf, o.len);
    out[o.len] = '\0';
    return o.len;
}
