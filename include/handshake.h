/*
 * handshake.h - the RFC 6455 opening handshake, decided from a parsed
 * request (http.h): validation, Sec-WebSocket-Accept, and the 101 response.
 */
#ifndef WSE_HANDSHAKE_H
#define WSE_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

#define WSE_ACCEPT_LEN 28   /* base64 of a 20-byte SHA-1, without newline */

/*
 * Is req (parsed from buf) a valid WebSocket upgrade?  Returns 0 if so, else
 * the HTTP status to answer with, checked in this order:
 *   405  method is not GET
 *   400  HTTP version below 1.1, Host missing or repeated, Upgrade without
 *        the token "websocket", Connection without the token "upgrade",
 *        Sec-WebSocket-Key missing, repeated, or not the canonical base64 of
 *        exactly 16 bytes, a body announced (WSE_HTTP_BODY: after a 101 the
 *        bytes behind the head are frames, so a body a proxy in front
 *        forwards as HTTP would reach the server as frames: smuggling)
 *   426  Sec-WebSocket-Version missing or not 13 (answer with the header
 *        "Sec-WebSocket-Version: 13", see WSE_HANDSHAKE_426_HEADERS)
 * The path is not looked at: routing is the caller's.
 */
int wse_handshake_check(const struct wse_http_req *req, const char *buf);

#define WSE_HANDSHAKE_426_HEADERS "Sec-WebSocket-Version: 13\r\n"

/*
 * Is origin[0..olen) the origin of a page this same server served, judged
 * from the request's Host value host[0..hlen)?  True when the Origin is
 * "http://" or "https://" followed by an authority whose host equals Host's
 * host (ASCII case ignored) and whose port equals Host's port, a missing
 * port on either side meaning the Origin scheme's default (80 or 443); and
 * that host is an IP literal (IPv4 dotted decimal, or IPv6 in brackets) or
 * "localhost".
 *
 * Why only those: a browser reaches an IP literal or localhost without
 * asking DNS, so a page with that Origin came from the same address and
 * port as this connection, that is from this server.  A DNS name proves
 * nothing: a hostile site that rebinds its own name to our address makes
 * its pages' Origin and the Host they send equal (DNS rebinding).  Names
 * are allowed by listing their origin in --allow-origin.
 */
bool wse_origin_is_own(const char *origin, size_t olen, const char *host, size_t hlen);

/*
 * Computes base64(SHA-1(key || "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) into
 * out[0..28) and NUL-terminates it (out must hold 29 bytes).
 */
void wse_handshake_accept(const char *key, size_t key_len, char out[WSE_ACCEPT_LEN + 1]);

/*
 * Writes the 101 Switching Protocols response for key into out.  protocol
 * (may be NULL) is echoed as Sec-WebSocket-Protocol when the server chose
 * one.  Returns the length, or 0 if cap is too small (256 bytes always fit
 * when protocol is NULL).
 */
size_t wse_handshake_response(char *out, size_t cap, const char *key, size_t key_len,
                              const char *protocol, size_t protocol_len);

/*
 * The same with extra[0..extra_len) -- complete header lines the server
 * built itself, CRLF included (the permessage-deflate answer, pmd.h) --
 * before the blank line.
 */
size_t wse_handshake_response_ext(char *out, size_t cap, const char *key, size_t key_len,
                                  const char *protocol, size_t protocol_len,
                                  const char *extra, size_t extra_len);

#endif
