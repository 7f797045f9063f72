/*
 * pmd.h - permessage-deflate negotiation (RFC 7692 section 7): the offers in
 * Sec-WebSocket-Extensions, the server's choice, and the response header
 * (layer 0).
 *
 * Grammar (RFC 6455 9.1, RFC 7230 3.2.6 and 7):
 *   extension-list = 1#( token *( OWS ";" OWS param ) )
 *   param          = token [ OWS "=" OWS ( token / quoted-string ) ]
 * Several header lines count as one list (RFC 7230 3.2.2): a line's end is a
 * comma.  Empty list elements (",,") are allowed, as 7230 7 asks of a
 * recipient.  Names compare exactly (every client sends them in lower case;
 * any other spelling is an unknown extension or parameter, so declined).  A
 * quoted value is unescaped and must then be a token (RFC 6455 9.1).
 *
 * Verdicts:
 *   - a syntax error anywhere in the field declines every offer: once the
 *     syntax is broken, where one offer ends is a guess (the connection is
 *     still served, uncompressed);
 *   - an offer of permessage-deflate with an unknown parameter, a repeated
 *     one, a value where none belongs (*_no_context_takeover), no value or
 *     an invalid one (server_max_window_bits), or a window outside 8..15
 *     (a decimal without leading zeros) is declined on its own, and the next
 *     offer is considered (RFC 7692 7.1);
 *   - the first offer left is accepted, shaped by struct wse_pmd_cfg; other
 *     extensions are skipped.
 *
 * The parser is incremental: it can be fed a header value in pieces of any
 * size (bytewise in the tests), and it never allocates or copies more than
 * a parameter name and a value's three characters.
 */
#ifndef WSE_PMD_H
#define WSE_PMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define WSE_PMD_BITS_MIN 8
#define WSE_PMD_BITS_MAX 15
/* zlib's raw deflate and inflate never run with fewer bits (see pmd.c). */
#define WSE_PMD_ZLIB_BITS_MIN 9

/* What the server is willing to do (filled from the configuration). */
struct wse_pmd_cfg {
    uint8_t server_bits;        /* 8..15: largest window the server deflates with (8 runs as 9) */
    uint8_t client_bits;        /* 8..15: window asked of a client that lets the server choose */
    bool server_takeover;       /* false: answer server_no_context_takeover always */
    bool client_takeover;       /* false: answer client_no_context_takeover always */
};

/* The accepted offer: what to answer and how to run the streams. */
struct wse_pmd_agreed {
    bool server_nct;            /* server_no_context_takeover in the response */
    bool client_nct;            /* client_no_context_takeover in the response */
    uint8_t server_bits;        /* server_max_window_bits=N in the response; 0: left out */
    uint8_t client_bits;        /* client_max_window_bits=N in the response; 0: left out */
    uint8_t deflate_bits;       /* the window the server deflates with, 9..15 */
    uint8_t inflate_bits;       /* the window the server inflates with, 9..15 */
};

/* Why offers were declined (for a debug line), or none seen. */
enum wse_pmd_why {
    WSE_PMD_NO_OFFER = 0,       /* no permessage-deflate among the offers */
    WSE_PMD_SYNTAX,             /* the field is not an extension list */
    WSE_PMD_UNKNOWN_PARAM,
    WSE_PMD_REPEATED_PARAM,
    WSE_PMD_BAD_VALUE,          /* a value missing, unexpected, or not 8..15 */
    WSE_PMD_SERVER_BITS_8,      /* server_max_window_bits=8: zlib cannot keep it */
};

const char *wse_pmd_why_str(enum wse_pmd_why why);

struct wse_pmd_parser {
    const struct wse_pmd_cfg *cfg;
    struct wse_pmd_agreed agreed;
    bool accepted;
    uint8_t why;                /* enum wse_pmd_why: the first offer declined */
    uint8_t state;
    /* the offer being read */
    uint8_t name_pos;           /* bytes of the extension name so far */
    bool name_other;            /* the name is not "permessage-deflate" */
    uint8_t offer_why;          /* 0, or why this offer is declined */
    uint8_t seen;               /* parameters seen in this offer (bit per kind) */
    uint8_t server_bits;        /* 0: absent */
    uint8_t client_bits;        /* 0: absent; WSE_PMD_NO_VALUE: present without value */
    bool server_nct, client_nct;
    /* the parameter being read */
    uint8_t pname_len;          /* > sizeof pname: too long to be known */
    uint8_t val_len;            /* > sizeof val: too long to be valid */
    bool has_value;
    bool val_not_token;         /* a quoted value held a non-token byte */
    char pname[27];             /* the longest known name is 26 */
    char val[2];                /* "8".."15" */
};

#define WSE_PMD_NO_VALUE 0xFF

/* Starts a parse for one request's Sec-WebSocket-Extensions lines. */
void wse_pmd_init(struct wse_pmd_parser *p, const struct wse_pmd_cfg *cfg);

/*
 * Feeds n more bytes of the current header line.  WSE_OK while the field
 * can still be a valid list, WSE_FAIL at the first byte that breaks the
 * syntax (then every offer is declined and further calls keep failing).
 */
int wse_pmd_feed(struct wse_pmd_parser *p, const char *s, size_t n);

/* Ends the current header line (a comma in the list); WSE_OK or WSE_FAIL. */
int wse_pmd_end_line(struct wse_pmd_parser *p);

/*
 * The verdict after the last line: true with *out filled when an offer was
 * accepted; false otherwise (p->why says why, for a debug line).
 */
bool wse_pmd_result(const struct wse_pmd_parser *p, struct wse_pmd_agreed *out);

/*
 * All in one: the Sec-WebSocket-Extensions lines of a parsed request
 * (spans into buf), in order.  *why (may be NULL) is set when false.
 */
bool wse_pmd_negotiate(const struct wse_pmd_cfg *cfg, const char *buf,
                       const struct wse_span *lines, size_t nlines,
                       struct wse_pmd_agreed *out, enum wse_pmd_why *why);

/*
 * Writes the response header line for a (RFC 7692 7.1), CRLF included:
 *   Sec-WebSocket-Extensions: permessage-deflate[; server_no_context_takeover]
 *       [; client_no_context_takeover][; server_max_window_bits=N]
 *       [; client_max_window_bits=N]\r\n
 * Returns its length, or 0 when it does not fit cap (WSE_PMD_RESPONSE_MAX
 * always fits).
 */
#define WSE_PMD_RESPONSE_MAX 160
size_t wse_pmd_response(char *out, size_t cap, const struct wse_pmd_agreed *a);

#endif
