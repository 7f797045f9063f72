/*
 * proxy.h - incremental parser of the PROXY protocol header, versions 1
 * (text) and 2 (binary), as HAProxy's send-proxy / send-proxy-v2 put it in
 * front of the client's bytes (HAProxy's doc/proxy-protocol.txt).
 *
 * Buffer ownership: the caller accumulates the connection's bytes in one
 * buffer of its own, starting with the connection's very first byte, and
 * passes the whole accumulation on every call (the same bytes, grown; the
 * buffer may move between calls).  The parser remembers how far it got
 * (p->parsed) and resumes there, so a header that arrives one byte at a time
 * costs O(n) in all.  It never copies the buffer, allocates or reads a byte
 * at or past len; its results are copied into struct wse_proxy.
 *
 * Every byte is checked as it arrives: the call fails as soon as the bytes
 * so far cannot begin a valid header.  In particular a connection that does
 * not start with 'P' (v1) or 0x0D (v2) fails on its first byte, so an HTTP
 * request sent straight to a PROXY listener is refused at once.
 *
 * Returns (common.h):
 *   WSE_OK     the header is complete and valid: p->header_len (== parsed)
 *              is its length; buf[header_len..len) is untouched and is the
 *              beginning of the client's stream (the HTTP request), to be
 *              handed to the next parser.  The results below are filled in.
 *   WSE_AGAIN  every byte so far is a valid prefix of a header (all of them
 *              consumed: parsed == len); call again with the buffer grown.
 *              A header never needs more than WSE_PROXY_MAX bytes (1040),
 *              so a caller whose buffer is at least that big never has to
 *              refuse for lack of room.
 *   WSE_FAIL   not a PROXY header, or a malformed one: the listener requires
 *              the header, so the caller closes the connection (there is no
 *              protocol answer to send).  p->parsed is the offset of the
 *              offending byte (for the log); the results are unspecified.
 * After WSE_OK or WSE_FAIL further calls return the same verdict.
 *
 * What the caller does with the result (struct wse_proxy):
 *   command == WSE_PROXY_CMD_PROXY and family != WSE_PROXY_UNSPEC:
 *       the client is src_addr/src_port (the proxy's own view of the server
 *       is dst_addr/dst_port): use them instead of getpeername()'s.
 *   otherwise (v2 LOCAL: the proxy's own health check; v1 "UNKNOWN";
 *   v2 PROXY with family UNSPEC): keep the real peer address.
 *
 * Accepted (anything else fails):
 *   v1  "PROXY TCP4 <a.b.c.d> <a.b.c.d> <sport> <dport>\r\n"
 *       "PROXY TCP6 <ipv6> <ipv6> <sport> <dport>\r\n"
 *       "PROXY UNKNOWN\r\n", "PROXY UNKNOWN <any bytes but CR, LF>\r\n"
 *       at most WSE_PROXY_V1_MAX bytes including the CRLF; single spaces;
 *       IPv4: exactly 4 decimal octets <= 255, no leading zeros ("0" only);
 *       IPv6: RFC 4291 text form, groups of 1 to 4 hex digits in either
 *       case, at most one "::", an embedded dotted quad only as the last
 *       32 bits; ports 0..65535 decimal, no leading zeros.
 *   v2  the 12-byte signature, version 2 with command LOCAL (any defined
 *       family byte: family nibble 0-3, transport nibble 0-2; the block is
 *       skipped unread) or PROXY with TCP over
 *       IPv4 (0x11), TCP over IPv6 (0x21) or UNSPEC (0x00, block skipped);
 *       length field at most WSE_PROXY_V2_MAX_LEN and at least the address
 *       block (12 or 36 bytes).  After a PROXY address block the rest must
 *       be whole TLVs (type, 2-byte length, value); they are skipped.
 *       UDP and AF_UNIX with PROXY fail: this is a TCP server.
 *
 * The core has no socket headers: addresses are the raw bytes in network
 * order (IPv4 in src_addr[0..4), the rest zero), ports in host order.
 */
#ifndef WSE_PROXY_H
#define WSE_PROXY_H

#include <stddef.h>
#include <stdint.h>

enum wse_proxy_cmd {
    WSE_PROXY_CMD_LOCAL = 0,    /* v2 only: the proxy's own connection */
    WSE_PROXY_CMD_PROXY = 1,    /* relayed on behalf of a client (every v1) */
};

enum wse_proxy_family {
    WSE_PROXY_UNSPEC = 0,       /* no usable address: keep the real peer */
    WSE_PROXY_INET = 1,         /* 4-byte addresses */
    WSE_PROXY_INET6 = 2,        /* 16-byte addresses */
};

#define WSE_PROXY_V1_MAX 107        /* longest v1 line, CRLF included */
#define WSE_PROXY_V2_MAX_LEN 1024   /* largest v2 length field accepted */
#define WSE_PROXY_MAX (16 + WSE_PROXY_V2_MAX_LEN)   /* longest header of all */
/* wse_proxy_format_addr()'s longest output plus its NUL:
 * "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" */
#define WSE_PROXY_ADDRSTRLEN 48

struct wse_proxy {
    /* parser state: wse_proxy_init() before the first call */
    uint16_t parsed;      /* bytes consumed; header_len on OK, bad byte on FAIL */
    uint8_t state;        /* resume point of the state machine */
    /* the v1 field in progress (address or port), reset for each field;
     * private to proxy.c */
    struct {
        uint16_t val;     /* port, or the current IPv6 group read as hex */
        uint16_t dval;    /* current octet, or the IPv6 group read as decimal */
        uint8_t ndig;     /* digits in the current number or group */
        uint8_t ngroups;  /* IPv6: 16-bit groups stored so far */
        uint8_t dcolon;   /* IPv6: group index of the "::", once seen */
        uint8_t prev;     /* IPv6: what the previous character was */
        uint8_t octets;   /* dotted quad: octets stored so far */
        uint8_t flags;    /* IPv6: "::" seen, in the dotted quad, decimal */
    } scan;
    /* v2 */
    uint16_t total;       /* 16 + the length field */
    uint16_t tlv_next;    /* offset of the next TLV, 0 when TLVs are not walked */

    /* results, valid on WSE_OK */
    uint8_t version;      /* 1 or 2 */
    uint8_t command;      /* enum wse_proxy_cmd */
    uint8_t family;       /* enum wse_proxy_family */
    uint16_t header_len;  /* bytes of buf that are the header */
    uint16_t src_port, dst_port;      /* host order; 0 when UNSPEC */
    uint8_t src_addr[16], dst_addr[16];   /* network order; zero when UNSPEC */
};

/* Zeroes the struct: the parser's start state. */
void wse_proxy_init(struct wse_proxy *p);

/* See the contract above.  buf holds the connection's first len bytes. */
int wse_proxy_parse(struct wse_proxy *p, const uint8_t *buf, size_t len);

/*
 * Writes the client's address (the source) of a parsed header into out
 * (capacity n) as "192.0.2.1:5678" or "[2001:db8::1]:5678", NUL-terminated,
 * and returns its length without the NUL.  IPv6 is in RFC 5952's canonical
 * form: lowercase, no leading zeros, the longest run of two or more zero
 * groups (the first of equals) as "::"; an IPv4-mapped address
 * (::ffff:0:0/96) is written with its dotted quad, "[::ffff:192.0.2.1]:80"
 * (RFC 5952 section 5).  Returns 0, with out[0] = '\0' if n > 0, when the
 * family is UNSPEC (format the real peer instead) or the text does not fit
 * (n >= WSE_PROXY_ADDRSTRLEN always fits).
 */
size_t wse_proxy_format_addr(const struct wse_proxy *p, char *out, size_t n);

#endif
