/*
 * sockets.c - listening sockets passed between processes (sockets.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "notify.h"
#include "config.h"   /* WSE_MAX_LISTEN, WSE_MAX_WORKERS */
#include "sockets.h"

#define FIRST_FD 3                   /* SD_LISTEN_FDS_START */
#define MAX_PASSED (2 * WSE_MAX_LISTEN * WSE_MAX_WORKERS + 16)

void wse_sockets_name(char *out, size_t n, const struct wse_listen *addr, int slot)
{
    char host[WSE_STR_MAX];

    snprintf(host, sizeof host, "%s", addr->host);
    for (char *c = host; *c; c++)
        if (*c == ':')
            *c = '.';
    if (slot == WSE_SOCK_METRICS)
        snprintf(out, n, "wsechod.metrics.%u.%s", addr->port, host);
    else
        snprintf(out, n, "wsechod.%s.%d.%u.%s", addr->tls ? "tls" : "listen", slot, addr->port,
                 host);
}

static bool same_listen(const struct wse_listen *a, const struct wse_listen *b)
{
    return a->family == b->family && a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* The address fd is bound to, as config.c writes one.  0, or -1. */
static int sock_addr(int fd, struct wse_listen *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    memset(out, 0, sizeof *out);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    out->family = ss.ss_family;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a4->sin_addr, out->host, sizeof out->host);
        out->port = ntohs(a4->sin_port);
        /* inet_ntop's text is short: bounded here for the compiler. */
        snprintf(out->text, sizeof out->text, "%.64s:%u", out->host, out->port);
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, out->host, sizeof out->host);
        out->port = ntohs(a6->sin6_port);
        snprintf(out->text, sizeof out->text, "[%.64s]:%u", out->host, out->port);
        return 0;
    }
    return -1;
}

static int int_opt(int fd, int level, int name)
{
    int v = 0;
    socklen_t len = sizeof v;

    return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

/* fd is a listening TCP socket; fills p.  0, or -1 with the reason. */
static int check_socket(int fd, struct wse_passed *p, char *err, size_t errlen)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || int_opt(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
        int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1 || sock_addr(fd, &p->addr) < 0) {
        snprintf(err, errlen, "passed descriptor %d is not a listening TCP socket", fd);
        return -1;
    }
    if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "passed descriptor %d: fcntl: %s", fd, strerror(errno));
        return -1;
    }
    p->fd = fd;
    p->reuseport = int_opt(fd, SOL_SOCKET, SO_REUSEPORT) == 1;
    return 0;
}

/* The slot a name gives, checked against the socket's own address; a TLS
 * listener's name ("wsechod.tls.") marks addr TLS, as it served. */
static int slot_of_name(const char *name, struct wse_listen *addr)
{
    char want[WSE_SOCK_NAME_MAX];
    const char *digits;
    char *end;

    wse_sockets_name(want, sizeof want, addr, WSE_SOCK_METRICS);
    if (strcmp(name, want) == 0)
        return WSE_SOCK_METRICS;
    if (strncmp(name, "wsechod.listen.", strlen("wsechod.listen.")) == 0)
        digits = name + strlen("wsechod.listen.");
    else if (strncmp(name, "wsechod.tls.", strlen("wsechod.tls.")) == 0)
        digits = name + strlen("wsechod.tls."), addr->tls = true;
    else
        return WSE_SOCK_UNNAMED;
    if (*digits < '0' || *digits > '9') {
        addr->tls = false;
        return WSE_SOCK_UNNAMED;
    }
    errno = 0;
    long slot = strtol(digits, &end, 10);
    if (errno || *end != '.' || slot < 0 || slot >= WSE_MAX_WORKERS)
        return WSE_SOCK_UNNAMED;
    wse_sockets_name(want, sizeof want, addr, (int)slot);
    if (strcmp(name, want) == 0)
        return (int)slot;
    addr->tls = false;
    return WSE_SOCK_UNNAMED;
}

/* LISTEN_FDS when LISTEN_PID is ours: the count, 0 when none, -1 if malformed. */
static long passed_count(char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    char *end;

    if (!pid || !fds)
        return 0;
    errno = 0;
    long p = strtol(pid, &end, 10);
    if (errno || *end || p != (long)getpid())
        return 0;           /* meant for another process (our parent) */
    errno = 0;
    long n = strtol(fds, &end, 10);
    if (errno || *end || n < 0 || n > MAX_PASSED) {
        snprintf(err, errlen, "LISTEN_FDS=%s is not a count of descriptors", fds);
        return -1;
    }
    return n;
}

int wse_sockets_inherit(struct wse_passed_set *set, char *err, size_t errlen)
{
    long n = passed_count(err, errlen);
    char *names = getenv("LISTEN_FDNAMES") ? strdup(getenv("LISTEN_FDNAMES")) : NULL;
    char *next = names;
    int rc = -1;

    set->s = NULL;
    set->n = 0;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (n <= 0) {
        free(names);
        return n < 0 ? -1 : 0;
    }
    set->s = calloc((size_t)n, sizeof *set->s);
    if (!set->s) {
        snprintf(err, errlen, "out of memory for %ld passed sockets", n);
        goto out;
    }
    for (long i = 0; i < n; i++) {
        struct wse_passed *p = &set->s[i];
        const char *name = next ? strsep(&next, ":") : "";
        if (check_socket(FIRST_FD + (int)i, p, err, errlen) < 0)
            goto out;
        set->n++;
        p->slot = slot_of_name(name ? name : "", &p->addr);
    }
    rc = 0;
out:
    free(names);
    if (rc < 0) {
        /* Close all of them: none may linger unserved in this process. */
        for (long i = 0; i < n; i++)
            close(FIRST_FD + (int)i);
        free(set->s);
        set->s = NULL;
        set->n = 0;
    }
    return rc;
}

int wse_sockets_take(struct wse_passed_set *set, const struct wse_listen *addr, int slot,
                     bool want_any, bool *reuseport)
{
    struct wse_passed *any = NULL;

    for (unsigned i = 0; i < set->n; i++) {
        struct wse_passed *p = &set->s[i];
        /* Matched by address alone: a socket serves what the
         * configuration says of its address, whatever its name says. */
        if (p->fd < 0 || !same_listen(&p->addr, addr))
            continue;
        if (p->slot == slot) {
            any = p;
            break;
        }
        if (want_any && p->slot == WSE_SOCK_UNNAMED && !any)
            any = p;
    }
    if (!any)
        return -1;
    int fd = any->fd;
    if (reuseport)
        *reuseport = any->reuseport;
    any->fd = -1;
    return fd;
}

unsigned wse_sockets_slots(const struct wse_passed_set *set, const struct wse_listen *addr)
{
    unsigned n = 0;

    for (unsigned i = 0; i < set->n; i++) {
        const struct wse_passed *p = &set->s[i];
        if (p->fd >= 0 && p->slot >= 0 && same_listen(&p->addr, addr) && (unsigned)p->slot >= n)
            n = (unsigned)p->slot + 1;
    }
    return n;
}

unsigned wse_sockets_close_rest(struct wse_passed_set *set, char *list, size_t n)
{
    unsigned closed = 0;
    size_t len = 0;

    if (n)
        list[0] = '\0';
    for (unsigned i = 0; i < set->n; i++) {
        struct wse_passed *p = &set->s[i];
        if (p->fd < 0)
            continue;
        if (len < n) {
            int w = snprintf(list + len, n - len, "%s%s", closed ? ", " : "", p->addr.text);
            len += w > 0 ? (size_t)w : 0;
        }
        close(p->fd);
        p->fd = -1;
        closed++;
    }
    return closed;
}

void wse_sockets_free(struct wse_passed_set *set)
{
    free(set->s);
    set->s = NULL;
    set->n = 0;
}

int wse_sockets_probe_free(const struct wse_listen *addr, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    memset(&ss, 0, sizeof ss);
    if (addr->family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(addr->port);
        inet_pton(AF_INET6, addr->host, &a6->sin6_addr);
        len = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(addr->port);
        inet_pton(AF_INET, addr->host, &a4->sin_addr);
        len = sizeof *a4;
    }
    int fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket() for %s failed: %s", addr->text, strerror(errno));
        return -1;
    }
    /* SO_REUSEADDR: a connection in TIME_WAIT is no listener.  No
     * SO_REUSEPORT: a listener of anyone's, ours included, collides. */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&ss, len);
    int e = errno;
    close(fd);
    if (rc == 0)
        return 0;
    if (e == EADDRINUSE)
        snprintf(err, errlen, "address %s in use by another process (another wsechod, or "
                 "anything else listening there)", addr->text);
    else
        snprintf(err, errlen, "bind() on %s failed: %s", addr->text, strerror(e));
    return -1;
}

int wse_sockets_export(const int *fds, char (*names)[WSE_SOCK_NAME_MAX], unsigned n, int *extra,
                       unsigned nextra)
{
    unsigned total = n + nextra;
    int *high = malloc((total ? total : 1) * sizeof *high);
    char *list = malloc((size_t)n * WSE_SOCK_NAME_MAX + 1);
    char num[32];

    if (!high || !list)
        return -1;
    /* First out of the way of 3..total+2, then into place: dup2 onto a
     * descriptor that is still a source would lose it. */
    for (unsigned i = 0; i < total; i++) {
        int src = i < n ? fds[i] : extra[i - n];
        high[i] = fcntl(src, F_DUPFD_CLOEXEC, FIRST_FD + (int)total);
        if (high[i] < 0)
            return -1;
    }
    for (unsigned i = 0; i < total; i++) {
        int want = FIRST_FD + (int)i;
        if (dup2(high[i], want) < 0)
            return -1;      /* dup2 leaves the target without FD_CLOEXEC */
        close(high[i]);
        if (i >= n)
            extra[i - n] = want;
    }
    list[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        if (i)
            strcat(list, ":");
        strcat(list, names[i]);
    }
    snprintf(num, sizeof num, "%d", (int)getpid());
    if (setenv("LISTEN_PID", num, 1) < 0)
        return -1;
    snprintf(num, sizeof num, "%u", n);
    if (setenv("LISTEN_FDS", num, 1) < 0 || setenv("LISTEN_FDNAMES", list, 1) < 0)
        return -1;
    return 0;           /* high and list: the exec frees them */
}

bool wse_sockets_store_enabled(void)
{
    const char *v = getenv("FDSTORE");
    char *end;

    if (!v)
        return false;
    long n = strtol(v, &end, 10);
    return end != v && *end == '\0' && n > 0;
}

void wse_sockets_store(int fd, const char *name)
{
    if (!wse_sockets_store_enabled())
        return;
    if (fd < 0)
        wse_notify("FDSTOREREMOVE=1\nFDNAME=%s", name);
    else
        wse_notify_fd(fd, "FDSTORE=1\nFDNAME=%s", name);
}
