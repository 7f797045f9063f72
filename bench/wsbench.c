/*
 * wsbench.c - a WebSocket load generator in the manner of wrk: the command
 * line, set-up, the threads and the signals.  See man/wsbench.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"
#include "wsbench.h"

atomic_int wsb_stop;

const char *const wsb_err_names[WSB_E_COUNT] = {
    "connect", "handshake", "read", "write", "timeout", "mismatch",
};

#define EXIT_USAGE 2
#define MAX_THREADS 1024
#define MAX_PIPELINE 65536

static void usage(FILE *f)
{
    fputs("Usage: wsbench [OPTIONS] ws://HOST[:PORT][/PATH]\n"
          "\n"
          "  -t, --threads N          threads (default 1)\n"
          "  -c, --connections N      connections, all threads together (default 10)\n"
          "  -d, --duration T         test length: 10s, 2m, 1h, 500ms; plain = seconds (default 10s)\n"
          "  -s, --size SIZE          message payload bytes; k/K = 1024, m/M, g/G (default 64)\n"
          "  -p, --pipeline N         messages in flight per connection (default 1)\n"
          "      --binary             binary messages (default: printable ASCII text)\n"
          "      --latency            print the latency distribution\n"
          "      --timeout T          an echo later than this is an error (default 2s)\n"
          "      --json               print the results as one JSON object\n"
          "      --connect-rate       connect, handshake, one echo, close; repeat\n"
          "      --hold N             open N connections, keep them idle, close them\n"
          "      --raw                plain TCP echo: no handshake, no framing\n"
          "  -v, --verbose            print the first errors (up to 20 per thread)\n"
          "  -h, --help               this text\n"
          "\n"
          "HOST is a numeric IPv4 address, [IPv6 address] or localhost.\n"
          "Exit status: 0 no errors, 1 errors, 2 usage.\n",
          f);
}

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "wsbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'wsbench --help'.\n");
    exit(EXIT_USAGE);
}

static unsigned parse_count(const char *s, const char *what, unsigned min, unsigned max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v < min || v > max) {
        fprintf(stderr, "wsbench: %s must be a whole number from %u to %u, not '%s'\n", what, min,
                max, s);
        exit(EXIT_USAGE);
    }
    return (unsigned)v;
}

/* "10", "10s", "1.5s", "500ms", "2m", "1h" -> seconds; < 0 if bad. */
static double parse_time(const char *s)
{
    char *end;
    if (!((*s >= '0' && *s <= '9') || *s == '.'))
        return -1;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v))
        return -1;
    if (!*end || !strcmp(end, "s"))
        ;
    else if (!strcmp(end, "ms"))
        v /= 1000;
    else if (!strcmp(end, "m"))
        v *= 60;
    else if (!strcmp(end, "h"))
        v *= 3600;
    else
        return -1;
    return v > 0 && v <= 366.0 * 86400 ? v : -1;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    if (*s < '0' || *s > '9')
        die_usage("bad size '%s'", s);
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: end = NULL; break;
    }
    if (!end || *end || errno || v > (1ull << 40) / mul)
        die_usage("bad size '%s' (bytes, or with k, m or g; at most 1T)", s);
    return v * mul;
}

/* ws://HOST[:PORT][/PATH]; raw mode also takes tcp://HOST:PORT. */
static void parse_url(struct wsb_config *cfg, const char *url)
{
    const char *p;
    char host[WSB_HOST_MAX];
    unsigned port = 80;

    if (!strncmp(url, "ws://", 5))
        p = url + 5;
    else if (cfg->mode == WSB_RAW && !strncmp(url, "tcp://", 6))
        p = url + 6;
    else if (!strncmp(url, "wss://", 6))
        die_usage("'%s': wss:// (TLS) is not supported", url);
    else
        die_usage("'%s' is not a ws:// URL", url);

    size_t alen = strcspn(p, "/?#");
    if (alen == 0 || alen >= sizeof cfg->host_hdr)
        die_usage("bad host in '%s'", url);
    memcpy(cfg->host_hdr, p, alen);
    cfg->host_hdr[alen] = '\0';

    const char *a = cfg->host_hdr, *colon;
    size_t hlen;
    bool v6 = false;
    if (*a == '[') {
        const char *rb = strchr(a, ']');
        if (!rb)
            die_usage("missing ']' in '%s'", url);
        hlen = (size_t)(rb - a - 1);
        memcpy(host, a + 1, hlen);
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (rb[1] && rb[1] != ':')
            die_usage("bad host in '%s'", url);
        v6 = true;
    } else {
        colon = strchr(a, ':');
        hlen = colon ? (size_t)(colon - a) : strlen(a);
        memcpy(host, a, hlen);
    }
    host[hlen] = '\0';
    if (colon)
        port = parse_count(colon + 1, "the port", 1, 65535);

    memset(&cfg->addr, 0, sizeof cfg->addr);
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&cfg->addr;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            die_usage("'%s' is not a numeric IPv6 address", host);
        cfg->addrlen = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&cfg->addr;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        const char *h = host;
        if (hlen == 9 && wse_ascii_casecmp(host, "localhost", 9) == 0)
            h = "127.0.0.1";    /* no DNS */
        if (inet_pton(AF_INET, h, &s4->sin_addr) != 1)
            die_usage("'%s': the host must be a numeric IPv4 address, [IPv6] or localhost", host);
        cfg->addrlen = sizeof *s4;
    }

    const char *path = p + alen;
    if (!*path || *path == '#')
        path = "/";
    size_t plen = strcspn(path, "#");
    if (plen >= sizeof cfg->path)
        die_usage("path too long in '%s'", url);
    if (*path == '?') {         /* "ws://h?q" means "/?q" */
        if (plen + 1 >= sizeof cfg->path)
            die_usage("path too long in '%s'", url);
        cfg->path[0] = '/';
        memcpy(cfg->path + 1, path, plen);
        cfg->path[plen + 1] = '\0';
    } else {
        memcpy(cfg->path, path, plen);
        cfg->path[plen] = '\0';
    }
    for (const char *q = cfg->path; *q; q++) {
        if ((unsigned char)*q <= ' ' || *q == 0x7F)
            die_usage("the path may not hold spaces or control characters: '%s'", url);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&wsb_stop, 1);
}

/* The payload source: 64 KiB of printable ASCII (or any bytes), twice. */
static uint8_t *make_pattern(bool binary)
{
    uint8_t *p = malloc(2 * WSB_PAT_LEN);
    uint64_t s = 0x9E3779B97F4A7C15ull;     /* fixed: runs are reproducible */
    if (!p)
        return NULL;
    for (unsigned i = 0; i < WSB_PAT_LEN; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t r = (s * 0x2545F4914F6CDD1Dull) >> 32;
        p[i] = binary ? (uint8_t)r : (uint8_t)(' ' + r % 95);
    }
    memcpy(p + WSB_PAT_LEN, p, WSB_PAT_LEN);
    return p;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"threads", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 's'},
        {"pipeline", required_argument, NULL, 'p'},
        {"binary", no_argument, NULL, 'B'},
        {"latency", no_argument, NULL, 'L'},
        {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'J'},
        {"connect-rate", no_argument, NULL, 'C'},
        {"hold", required_argument, NULL, 'H'},
        {"raw", no_argument, NULL, 'R'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct wsb_config cfg;
    unsigned hold = 0, modes = 0;
    int o;

    cfg.threads = 1;
    cfg.conns = 10;
    cfg.duration_s = 10;
    cfg.size = 64;
    cfg.pipeline = 1;
    cfg.timeout_s = 2;
    cfg.mode = WSB_ECHO;

    while ((o = getopt_long(argc, argv, "t:c:d:s:p:vh", opts, NULL)) != -1) {
        switch (o) {
        case 't': cfg.threads = parse_count(optarg, "-t", 1, MAX_THREADS); break;
        case 'c': cfg.conns = parse_count(optarg, "-c", 1, 10000000); break;
        case 'd':
            if ((cfg.duration_s = parse_time(optarg)) < 0)
                die_usage("bad duration '%s' (like 10s, 2m, 1h)", optarg);
            break;
        case 's': cfg.size = parse_size(optarg); break;
        case 'p': cfg.pipeline = parse_count(optarg, "-p", 1, MAX_PIPELINE); break;
        case 'B': cfg.binary = true; break;
        case 'L': cfg.latency = true; break;
        case 'T':
            if ((cfg.timeout_s = parse_time(optarg)) < 0)
                die_usage("bad timeout '%s' (like 2, 2s, 500ms)", optarg);
            break;
        case 'J': cfg.json = true; break;
        case 'C': cfg.mode = WSB_CONNECT_RATE; modes++; break;
        case 'H':
            cfg.mode = WSB_HOLD;
            hold = parse_count(optarg, "--hold", 1, 10000000);
            modes++;
            break;
        case 'R': cfg.mode = WSB_RAW; modes++; break;
        case 'v': cfg.verbose = 20; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "wsbench: %s\n", optind == argc ? "no URL given" : "one URL only");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (modes > 1)
        die_usage("%s", "--connect-rate, --hold and --raw exclude each other");
    if (cfg.mode == WSB_HOLD)
        cfg.conns = hold;
    if (cfg.mode == WSB_RAW && cfg.size == 0)
        die_usage("%s", "--raw needs a size of at least 1 byte");
    if (cfg.conns < cfg.threads)
        die_usage("%s", "the number of connections must be at least the number of threads");
    cfg.url = argv[optind];
    parse_url(&cfg, cfg.url);
    cfg.duration_ns = (uint64_t)(cfg.duration_s * 1e9);
    cfg.timeout_ns = (uint64_t)(cfg.timeout_s * 1e9);

    /* One descriptor per connection, and a few. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t need = (uint64_t)cfg.conns + 2u * cfg.threads + 16;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        fprintf(stderr,
                "wsbench: %u connections need about %llu file descriptors; the limit is %llu "
                "(raise the hard limit, e.g. ulimit -Hn)\n",
                cfg.conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        return EXIT_USAGE;
    }

    uint8_t *pattern = make_pattern(cfg.binary);
    struct wsb_thread *th = calloc(cfg.threads, sizeof *th);
    if (!pattern || !th) {
        fprintf(stderr, "wsbench: out of memory\n");
        return 1;
    }
    cfg.pattern = pattern;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    cfg.t0 = wsb_now();
    unsigned id = 0, started = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        th[i].cfg = &cfg;
        th[i].index = i;
        th[i].first_id = id;
        th[i].nconns = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);
        wsb_hist_init(&th[i].hist);
        id += th[i].nconns;
        int e = pthread_create(&th[i].tid, NULL, wsb_thread_main, &th[i]);
        if (e) {
            fprintf(stderr, "wsbench: pthread_create: %s\n", strerror(e));
            atomic_store(&wsb_stop, 2);
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i].tid, NULL);
    if (started < cfg.threads)
        return 1;
    for (unsigned i = 0; i < cfg.threads; i++) {
        if (th[i].failed) {
            fprintf(stderr, "wsbench: thread %u could not set up (out of memory?)\n", i);
            return 1;
        }
    }
    int rc = wsb_report(&cfg, th, cfg.threads);
    for (unsigned i = 0; i < cfg.threads; i++)
        free(th[i].samples);
    free(th);
    free(pattern);
    return rc;
}
