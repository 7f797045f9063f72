/*
 * config.h - wsechod's configuration: defaults, command line (getopt_long),
 * `key = value` files, validation.
 *
 * Building a configuration has no side effects (no file but the config file
 * is opened, nothing is bound, nothing is logged), so `wsechod -t`, start-up
 * and a SIGHUP reload run the same code: wse_config_load().
 *
 * Precedence: built-in defaults < config file (-c FILE) < command line.
 * Every long option is also a config-file key; in keys '-' and '_' are the
 * same (`drain-timeout` and `drain_timeout`).
 */
#ifndef WSE_CONFIG_H
#define WSE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "log.h"    /* enum wse_log_level */
#include "net.h"    /* struct wse_listen */
#include "priv.h"

#define WSE_MAX_LISTEN   16
#define WSE_MAX_ORIGINS  32
#define WSE_MAX_WORKERS  1024
#define WSE_MAX_TLS_PAIRS 4     /* tls-cert/tls-key pairs (tls.h's WSE_TLS_MAX_PAIRS) */

/* What the command line asks the process to do. */
enum wse_mode {
    WSE_MODE_SERVE = 0,
    WSE_MODE_TEST,       /* -t: check the configuration, exit 0 or 2 */
    WSE_MODE_SIGNAL,     /* -s reload|quit|stop|reopen: signal a running master */
    WSE_MODE_HELP,       /* -h */
    WSE_MODE_VERSION,    /* -V */
};

struct wse_config {
    /* process */
    enum wse_mode mode;
    char signal_name[16];               /* with WSE_MODE_SIGNAL */
    char config_file[WSE_STR_MAX];      /* "" when none */
    unsigned workers;                   /* 1..WSE_MAX_WORKERS; default online CPUs */
    /* Every address served: the plain ones (-l), then the TLS ones
     * (--tls-listen, .tls set), all within WSE_MAX_LISTEN. */
    struct wse_listen listen[WSE_MAX_LISTEN];
    unsigned nlisten;
    struct wse_listen tls_listen[WSE_MAX_LISTEN];   /* as given; merged into listen[] */
    unsigned ntls_listen;
    char pid_file[WSE_STR_MAX];
    char stats_name[WSE_STR_MAX];       /* "" = derived from the first port */
    struct wse_listen metrics_listen[1];    /* GET /metrics served here (metrics.c) */
    unsigned nmetrics_listen;           /* 0: off (the default) */
    char user[WSE_STR_MAX];             /* --user: workers' user, "" = the master's */
    char group[WSE_STR_MAX];            /* --group: "" = the user's login group */
    struct wse_cred cred;               /* what they resolve to (priv.h) */

    /* endpoint */
    char path[WSE_STR_MAX];             /* default "/websocket" */
    char echo_prefix[WSE_STR_MAX];
    size_t echo_prefix_len;
    char origins[WSE_MAX_ORIGINS][WSE_STR_MAX];
    unsigned norigins;                  /* 0: every Origin allowed */
    unsigned proxy_protocol;            /* 1: every connection starts with a PROXY header */

    /* TLS (wss://, https://): read and checked by the master (master.c) */
    char tls_cert[WSE_MAX_TLS_PAIRS][WSE_STR_MAX];  /* full chain, PEM */
    unsigned ntls_cert;
    char tls_key[WSE_MAX_TLS_PAIRS][WSE_STR_MAX];   /* the matching keys, in order */
    unsigned ntls_key;
    char tls_ciphers[WSE_STR_MAX];      /* TLS 1.2 cipher list; "" = OpenSSL's default */
    char tls_ciphersuites[WSE_STR_MAX]; /* TLS 1.3 suites; "" = OpenSSL's default */
    char tls_groups[WSE_STR_MAX];       /* key exchange groups; "" = OpenSSL's default */
    /* permessage-deflate (RFC 7692), off by default */
    unsigned permessage_deflate;        /* 1: accept the extension */
    unsigned deflate_window_bits;       /* 8..15: the server's window (15) */
    unsigned deflate_mem_level;         /* 1..9: zlib's memLevel (8) */
    unsigned deflate_level;             /* 0..9: zlib's level (1) */
    unsigned deflate_server_takeover;   /* 1: keep the server's context (no) */
    unsigned deflate_client_takeover;   /* 1: let the client keep its context (no) */
    uint64_t deflate_min_size;          /* echoes smaller than this go out uncompressed */
    unsigned deflate_safari_guard;      /* 1: inflate Safari 15.0-15.3 with takeover (yes) */
    unsigned deflate_max_inflating;     /* decompressors lent at once per worker (1024) */

    /* limits (bytes / counts) */
    uint64_t max_message;               /* default 16 MiB */
    unsigned max_header;                /* default 8192, <= 65535 */
    unsigned max_headers;               /* default 100 header lines */
    unsigned max_connections;           /* per worker, default 100000 */
    unsigned max_connections_per_ip;    /* per client address (IPv6 /64), whole server; 0 = off */
    uint64_t high_water;                /* default 1 MiB */
    uint64_t low_water;                 /* default 256 KiB, < high_water */

    /* timeouts, in seconds (fractions allowed: "0.5", "500ms") */
    double handshake_timeout;           /* 10 */
    double ping_interval;               /* 30, 0 = never ping */
    double idle_timeout;                /* 75, 0 = never */
    double close_timeout;               /* 5 */
    double drain_timeout;               /* 30 */
    double close_spread;                /* 5 */
    unsigned drain_close_code;          /* 1001 or 1012 */

    /* logging */
    char log_file[WSE_STR_MAX];         /* "" = stderr */
    enum wse_log_level log_level;       /* info */
    char access_log[WSE_STR_MAX];       /* "off" (default), "stderr" or a file */
};

/*
 * Builds a configuration from argv (argv[0] is the program name): defaults,
 * then the file named by -c/--config if any, then the other options.
 * Returns 0 and fills *out, or returns 2 (the exit status for a bad
 * configuration) with a one-line message in err that names the option or
 * the key with its file and line, and the form expected, e.g.
 *   "wsechod.conf:12: idle-timeout: expected a duration like 75, 1.5 or 500ms, got 'soon'"
 * *out is only written on success, so a failed reload keeps the old config.
 */
int wse_config_load(struct wse_config *out, int argc, char *const argv[],
                    char *err, size_t errlen);

/* Writes --help text (every option, its key, default) to fp. */
void wse_config_usage(void *fp);

/* Name of a log level ("info"). */
const char *wse_log_level_name(enum wse_log_level level);

#endif
