/*
 * connlimit.c - counting connections per client address, a worker's side.
 */
#include <sys/uio.h>

#include "common.h"
#include "connlimit.h"
#include "http.h"
#include "log.h"

static void key_of(const struct wse_peer *p, struct wse_iplimit_key *k)
{
    wse_iplimit_key(k, p->family, p->addr);
}

enum wse_iplimit_result wse_connlimit_admit(const struct wse_connlimit *cl,
                                            const struct wse_peer *p)
{
    struct wse_iplimit_key key;
    char addr[WSE_ADDR_MAX];
    unsigned have = 0;

    if (!cl->limit || !cl->table)
        return WSE_IPLIMIT_UNTRACKED;
    key_of(p, &key);
    enum wse_iplimit_result r = wse_iplimit_acquire(cl->table, &key, cl->holder, cl->limit, &have);
    switch (r) {
    case WSE_IPLIMIT_COUNTED:
        break;
    case WSE_IPLIMIT_UNTRACKED:
        wse_stat_add(cl->st, WSE_STAT_per_ip_untracked, 1);
        log_limited(WSE_LOG_WARN, "per-address table full",
                    "%s let in uncounted: the per-address table is full (%u records)",
                    wse_peer_str(p, addr), (unsigned)WSE_IPLIMIT_RECORDS);
        break;
    case WSE_IPLIMIT_REFUSED:
        log_limited(WSE_LOG_WARN, "per-address limit",
                    "%s has %u connections, the per-address limit: answering 503",
                    wse_peer_str(p, addr), have);
        wse_stat_add(cl->st, WSE_STAT_refused_per_ip, 1);
        break;
    }
    return r;
}

void wse_connlimit_release(const struct wse_connlimit *cl, const struct wse_peer *p)
{
    struct wse_iplimit_key key;

    key_of(p, &key);
    wse_iplimit_release(cl->table, &key, cl->holder);
}

void wse_connlimit_refuse(const struct wse_transport *tp, int fd, void *scratch, size_t cap)
{
    static const char body[] = "too many connections from your address\n";
    char resp[256];
    size_t n = wse_http_response(resp, sizeof resp, 503,
                                 "Retry-After: " WSE_CONNLIMIT_RETRY_AFTER "\r\n", NULL, body,
                                 sizeof body - 1);
    struct iovec iov = {.iov_base = resp, .iov_len = n};

    ssize_t w = tp->writev(fd, &iov, 1);
    (void)w;        /* a socket that cannot take 200 bytes gets the close alone */
    tp->shutdown(fd);
    for (int i = 0; i < 4 && tp->read(fd, scratch, cap) > 0; i++)
        ;
}
