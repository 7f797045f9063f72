/*
 * access.c - a connection's peer as the logs name it, and its access line.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "access.h"
#include "common.h"
#include "log.h"
#include "proxy.h"

_Static_assert(WSE_ADDR_MAX >= WSE_PROXY_ADDRSTRLEN, "a peer's text fits an address buffer");

/* The PROXY module's formatter serves every peer, forwarded or not. */
const char *wse_peer_str(const struct wse_peer *p, char out[WSE_ADDR_MAX])
{
    struct wse_proxy a = {
        .family = p->family == AF_INET6 ? WSE_PROXY_INET6 : WSE_PROXY_INET,
        .src_port = ntohs(p->port),
    };

    memcpy(a.src_addr, p->addr, p->family == AF_INET6 ? 16 : 4);
    wse_proxy_format_addr(&a, out, WSE_ADDR_MAX);
    return out;
}

/* `"METHOD PATH"`, or `-` without a request line. */
static const char *request_str(const struct wse_access *a, char *out, size_t cap)
{
    char method[24], path[320];

    if (a->method && a->method_len && a->path && a->path_len)
        snprintf(out, cap, "\"%s %s\"", wse_log_escape(a->method, a->method_len, method, sizeof method),
                 wse_log_escape(a->path, a->path_len, path, sizeof path));
    else
        snprintf(out, cap, "-");
    return out;
}

size_t wse_access_format(char *out, size_t cap, const struct wse_access *a)
{
    static const char *const by[] = {
        [WSE_BY_RESET] = "reset", [WSE_BY_CLIENT] = "client", [WSE_BY_SERVER] = "server",
        [WSE_BY_ERROR] = "error", [WSE_BY_TIMEOUT] = "timeout",
    };
    char addr[WSE_ADDR_MAX], request[360], st[8] = "-", code[8] = "-";

    if (!cap)
        return 0;
    if (a->status)
        snprintf(st, sizeof st, "%d", a->status);
    if (a->close_code)
        snprintf(code, sizeof code, "%u", a->close_code);
    int n = snprintf(out, cap, "peer=%s request=%s status=%s time=%u.%03u msgs=%u bytes=%llu "
                     "close=%s by=%s", wse_peer_str(a->peer, addr),
                     request_str(a, request, sizeof request), st, a->ms / 1000, a->ms % 1000,
                     a->msgs, (unsigned long long)a->bytes, code,
                     a->by < countof(by) ? by[a->by] : "?");
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

uint32_t wse_access_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Truncated on purpose: durations are differences modulo 2^32 ms (49 days). */
    return (uint32_t)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}
