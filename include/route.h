/*
 * route.h - what to do with a parsed HTTP request: a pure decision (layer
 * 0), carried out by the connection (conn.c).
 *
 * Three resources, /healthz, / (the browser page) and the endpoint
 * (--path), each allowing GET and HEAD; a HEAD gets the GET's answer
 * without its body.  A HEAD never upgrades (RFC 6455 4.1 asks for GET;
 * RFC 9110 7.8 lets a server ignore Upgrade): it gets what the same GET
 * without Upgrade would get.  The decision points into nothing but static
 * strings, so the request's buffer may go before it is carried out.
 */
#ifndef WSE_ROUTE_H
#define WSE_ROUTE_H

#include <stdbool.h>

#include "http.h"

/* What routing needs of the configuration (layer 0 sees no struct wse_config). */
struct wse_route_cfg {
    const char *path;               /* --path: the WebSocket endpoint */
    const char *const *origins;     /* --allow-origin, each NUL-terminated */
    unsigned norigins;              /* 0: every Origin allowed */
};

enum wse_route_kind {
    WSE_ROUTE_ANSWER = 1,       /* answer status with headers and body, then close */
    WSE_ROUTE_PAGE,             /* serve the browser page (200), then close */
    WSE_ROUTE_UPGRADE,          /* answer 101: the connection becomes a WebSocket */
};

struct wse_route {
    enum wse_route_kind kind;
    int status;                 /* ANSWER: the status; PAGE: 200; UPGRADE: 101 */
    const char *headers;        /* ANSWER: extra header lines ("Name: v\r\n"...), or NULL */
    const char *body;           /* ANSWER: the body, or NULL */
    bool head;                  /* the request was a HEAD: no body goes out */
    bool origin_refused;        /* a 403 for the origin policy: the caller logs it */
};

/*
 * The decision for req (a request wse_http_parse() accepted, its spans in
 * buf) under cfg (path, allowed origins); draining: /healthz answers 503.
 */
struct wse_route wse_route(const struct wse_http_req *req, const char *buf,
                           const struct wse_route_cfg *cfg, bool draining);

/*
 * The origin policy: with --allow-origin, the listed origins (ASCII case
 * insensitive) and the server's own (wse_origin_is_own()); without it, all.
 */
bool wse_route_origin_allowed(const struct wse_http_req *req, const char *buf,
                              const struct wse_route_cfg *cfg);

#endif
