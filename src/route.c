/*
 * route.c - the HTTP phase's decision: which answer a request gets.
 */
#include <string.h>

#include "common.h"
#include "handshake.h"
#include "route.h"

/* What every resource here allows (RFC 9110 15.5.6: a 405 must list it). */
#define ALLOW_GET_HEAD "Allow: GET, HEAD\r\n"

static bool span_is(const char *buf, struct wse_span s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && memcmp(buf + s.off, str, n) == 0;
}

/*
 * With --allow-origin, the listed origins and the server's own: a page this
 * server served (its Origin names the Host the request was sent to, an
 * address reached without DNS, see wse_origin_is_own()) must be able to
 * connect back, or the allow list would lock out the server's own page.
 */
bool wse_route_origin_allowed(const struct wse_http_req *req, const char *buf,
                              const struct wse_route_cfg *cfg)
{
    const char *origin = buf + req->origin.off;

    if (!cfg->norigins)
        return true;
    for (unsigned i = 0; i < cfg->norigins; i++) {
        size_t n = strlen(cfg->origins[i]);
        if (req->origin.len == n && wse_ascii_casecmp(origin, cfg->origins[i], n) == 0)
            return true;
    }
    return wse_origin_is_own(origin, req->origin.len, buf + req->host.off, req->host.len);
}

static struct wse_route answer(bool head, int status, const char *headers, const char *body)
{
    return (struct wse_route){
        .kind = WSE_ROUTE_ANSWER, .status = status, .headers = headers, .body = body,
        .head = head,
    };
}

/* The headers that go with a refusal of the handshake. */
static const char *refusal_headers(int status)
{
    if (status == 405)
        return ALLOW_GET_HEAD;
    return status == 426 ? WSE_HANDSHAKE_426_HEADERS : NULL;
}

struct wse_route wse_route(const struct wse_http_req *req, const char *buf,
                           const struct wse_route_cfg *cfg, bool draining)
{
    bool healthz = span_is(buf, req->path, "/healthz");
    bool root = span_is(buf, req->path, "/");
    bool endpoint = span_is(buf, req->path, cfg->path);
    bool head = req->method == WSE_HTTP_HEAD;

    if (!healthz && !root && !endpoint)
        return answer(false, 404, NULL, NULL);
    if (req->method == WSE_HTTP_OTHER)
        return answer(false, 405, ALLOW_GET_HEAD, NULL);
    if (healthz)
        return draining ? answer(head, 503, NULL, "draining\n") : answer(head, 200, NULL, "ok\n");
    bool plain = head || !(req->flags & WSE_HTTP_UPGRADE_WS);
    /* "Open http://host:8000/websocket in a browser", as the tutorial said. */
    if (plain && (root || (endpoint && (req->flags & WSE_HTTP_ACCEPT_HTML))))
        return (struct wse_route){.kind = WSE_ROUTE_PAGE, .status = 200, .head = head};
    if (!endpoint)
        return answer(head, 404, NULL, NULL);   /* an upgrade of / when the endpoint is elsewhere */
    if (plain) {
        /* A plain GET of the endpoint by a non-browser: it only speaks WebSocket. */
        return answer(head, 426, "Upgrade: websocket\r\n" WSE_HANDSHAKE_426_HEADERS, NULL);
    }
    int status = wse_handshake_check(req, buf);
    if (status)
        return answer(head, status, refusal_headers(status), NULL);
    if (!wse_route_origin_allowed(req, buf, cfg)) {
        struct wse_route r = answer(head, 403, NULL, NULL);
        r.origin_refused = true;
        return r;
    }
    /* A draining worker still serves what it accepted before it stopped
     * accepting, until the drain timeout; only /healthz tells it drains. */
    return (struct wse_route){.kind = WSE_ROUTE_UPGRADE, .status = 101};
}
