/*
 * config.c - wsechod's options, each described once.
 *
 * Every option is one row of opts[] below: long name (also its config-file
 * key), short letter, kind of value, field, default, range and help text.
 * Everything else is derived from that table: the getopt_long array and
 * optstring, the config-file key lookup, --help, the "expected ..." part of
 * every error message and the range checks.  Defaults are written in the
 * option's own syntax and go through the same parser as user values, so
 * --help cannot disagree with the built-in value.
 *
 * Order of a load:
 *   1. defaults (the table's .def strings; workers from sysconf);
 *   2. command-line pass 1: syntax errors (unknown option, missing value,
 *      stray argument) and the command-line-only options (-c -t -s -h -V);
 *   3. the file named by -c, if any (skipped for -h and -V);
 *   4. command-line pass 2: every other option, so the command line wins
 *      wherever it stands relative to -c;
 *   5. cross-checks (low-water < high-water) and derived fields.
 * Everything is built in a local struct and copied to *out only at the end.
 *
 * Repeatable options (listen, allow-origin): within one source (defaults,
 * file, command line) values accumulate; the first value a source gives
 * replaces whatever the earlier sources left.
 */
#include "config.h"
#include "common.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

enum kind {
    K_UINT,      /* whole number in [min, max] */
    K_SIZE,      /* bytes, optional K/M/G/T suffix (1024-based), in [min, max] */
    K_DURATION,  /* seconds: "10", "1.5", "500ms", "2s", "1m", "1h"; <= max */
    K_STRING,    /* text shorter than the field, checked by .valid if set */
    K_ENUM,      /* one of .words, stored as the matching .values entry */
    K_LISTEN,    /* ADDRESS:PORT, repeatable up to .max */
    K_STRLIST,   /* text, repeatable up to .max */
    K_FLAG,      /* no value: selects the mode .min */
    K_BOOL,      /* no value on the command line (= yes); yes/no/on/off/true/false in a file */
    K_SIGNAL,    /* one of .words, copied to the field; selects WSE_MODE_SIGNAL */
};

#define F_CLI     0x1u   /* command line only (not a file key), read in pass 1 */
#define F_NONZERO 0x2u   /* K_DURATION: must be above 0 */
#define F_NCPU    0x4u   /* default: online CPUs, clamped to [min, max] */
#define F_OFF     0x8u   /* K_LISTEN: "off" (or "") empties the list */

struct opt {
    const char *name;          /* --name and file key */
    char letter;               /* short option, 0 if none */
    enum kind kind;
    unsigned flags;
    size_t off;                /* field in struct wse_config */
    size_t size;               /* its size; for lists, one element's size */
    size_t count_off;          /* lists: the unsigned count field */
    const char *def;           /* default in the option's syntax; NULL: none */
    const char *def_help;      /* --help's default when .def can't say it */
    uint64_t min, max;         /* numbers; durations in s; lists: entries; flags: mode */
    const char *const *words;  /* K_ENUM, K_SIGNAL; NULL-terminated */
    const unsigned *values;    /* K_ENUM: value of each word */
    bool (*valid)(const char *);
    const char *expect;        /* K_STRING, K_STRLIST: the form, for errors */
    const char *arg;           /* value placeholder in --help */
    const char *help;
};

#define FIELD(f) \
    .off = offsetof(struct wse_config, f), \
    .size = sizeof(((struct wse_config *)0)->f)
#define LIST(f, n) \
    .off = offsetof(struct wse_config, f), \
    .size = sizeof(((struct wse_config *)0)->f[0]), \
    .count_off = offsetof(struct wse_config, n), \
    .max = countof(((struct wse_config *)0)->f)

/* Numbers are stored through a size: these fields must be one of the two. */
_Static_assert(sizeof(enum wse_log_level) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum wse_mode) == sizeof(unsigned), "enum size");

static const char *const level_words[] = { "error", "warn", "info", "debug", NULL };
static const unsigned level_values[] = { WSE_LOG_ERROR, WSE_LOG_WARN, WSE_LOG_INFO, WSE_LOG_DEBUG };
static const char *const close_code_words[] = { "1001", "1012", NULL };
static const unsigned close_code_values[] = { 1001, 1012 };
static const char *const signal_words[] = { "reload", "quit", "stop", "reopen", "upgrade", NULL };

static bool valid_nonempty(const char *s);
static bool valid_path(const char *s);
static bool valid_origin(const char *s);
static bool valid_name(const char *s);
static bool valid_utf8(const char *s);
static bool valid_account(const char *s);

/* A configuration file is a few hundred bytes; these caps only keep a wrong
 * path (a log file, /dev/zero) from taking the master's memory and time. */
#define CONF_LINE_MAX 4096u         /* bytes in a line, without its newline */
#define CONF_FILE_MAX (1u << 20)    /* bytes in the file */

#define ACCOUNT_FORM "a user or group name (letters, digits, '.', '_', '-', a final '$') or a number"
#define LISTEN_FORM "a numeric ADDRESS:PORT like 0.0.0.0:8000, [::1]:8000 or *:8000"

static const struct opt opts[] = {
    /* command line only */
    { .name = "config", .letter = 'c', .kind = K_STRING, .flags = F_CLI, FIELD(config_file),
      .valid = valid_nonempty, .expect = "a file name", .arg = "FILE",
      .help = "read options from FILE ('key = value' lines)" },
    { .name = "test-config", .letter = 't', .kind = K_FLAG, .flags = F_CLI, FIELD(mode),
      .min = WSE_MODE_TEST, .help = "check the configuration; exit 0 if good, 2 if not" },
    { .name = "signal", .letter = 's', .kind = K_SIGNAL, .flags = F_CLI, FIELD(signal_name),
      .words = signal_words, .arg = "NAME",
      .help = "signal the master named by pid-file, then exit" },
    { .name = "help", .letter = 'h', .kind = K_FLAG, .flags = F_CLI, FIELD(mode),
      .min = WSE_MODE_HELP, .help = "print this help, then exit" },
    { .name = "version", .letter = 'V', .kind = K_FLAG, .flags = F_CLI, FIELD(mode),
      .min = WSE_MODE_VERSION, .help = "print the version, then exit" },

    /* process */
    { .name = "workers", .letter = 'w', .kind = K_UINT, .flags = F_NCPU, FIELD(workers),
      .def_help = "online CPUs", .min = 1, .max = WSE_MAX_WORKERS, .arg = "N",
      .help = "worker processes" },
    { .name = "listen", .letter = 'l', .kind = K_LISTEN, .flags = F_OFF, LIST(listen, nlisten),
      .def = "0.0.0.0:8000", .arg = "ADDR:PORT",
      .help = "numeric ADDR:PORT to listen on; repeat for more; off = TLS only" },
    { .name = "tls-listen", .kind = K_LISTEN, .flags = F_OFF, LIST(tls_listen, ntls_listen),
      .def_help = "none", .arg = "ADDR:PORT",
      .help = "serve wss:// and https:// on ADDR:PORT; repeatable (needs tls-cert, tls-key)" },
    { .name = "metrics-listen", .kind = K_LISTEN, .flags = F_OFF,
      LIST(metrics_listen, nmetrics_listen), .def_help = "off", .arg = "ADDR:PORT",
      .help = "serve Prometheus GET /metrics here (not a listen port); off = none" },
    { .name = "pid-file", .kind = K_STRING, FIELD(pid_file), .def = "", .def_help = "none",
      .arg = "FILE", .help = "write the master's pid to FILE" },
    { .name = "user", .kind = K_STRING, FIELD(user), .def = "", .def_help = "the master's",
      .valid = valid_account, .expect = ACCOUNT_FORM, .arg = "USER",
      .help = "run workers and the metrics process as USER (name or uid); needs root" },
    { .name = "group", .kind = K_STRING, FIELD(group), .def = "",
      .def_help = "USER's login group", .valid = valid_account, .expect = ACCOUNT_FORM,
      .arg = "GROUP",
      .help = "... and as GROUP (name or gid), their only group" },
    { .name = "stats-name", .kind = K_STRING, FIELD(stats_name), .def = "",
      .def_help = "derived from the first port", .valid = valid_name,
      .expect = "a name of letters, digits, '.', '_' and '-', starting with a letter or digit",
      .arg = "NAME", .help = "stats segment name, for 'wsechod stats'" },

    /* endpoint */
    { .name = "path", .kind = K_STRING, FIELD(path), .def = "/websocket", .valid = valid_path,
      .expect = "a path like /websocket: starting with '/', without spaces, '?' or '#'",
      .arg = "PATH", .help = "the WebSocket endpoint; other paths get 404" },
    { .name = "echo-prefix", .kind = K_STRING, FIELD(echo_prefix), .def = "",
      .valid = valid_utf8, .expect = "UTF-8 text", .arg = "STR",
      .help = "put STR before every echoed text message" },
    { .name = "proxy-protocol", .kind = K_BOOL, FIELD(proxy_protocol), .def = "no",
      .help = "require a PROXY protocol v1 or v2 header (HAProxy send-proxy)" },
    { .name = "allow-origin", .kind = K_STRLIST, LIST(origins, norigins), .valid = valid_origin,
      .expect = "an origin like https://example.com, without spaces", .def_help = "any origin",
      .arg = "ORIGIN", .help = "accept handshakes from ORIGIN only; repeatable" },

    /* TLS */
    { .name = "tls-cert", .kind = K_STRLIST, LIST(tls_cert, ntls_cert), .valid = valid_nonempty,
      .expect = "a file name", .def_help = "none", .arg = "FILE",
      .help = "certificate chain (PEM, leaf first); repeat for RSA + ECDSA" },
    { .name = "tls-key", .kind = K_STRLIST, LIST(tls_key, ntls_key), .valid = valid_nonempty,
      .expect = "a file name", .def_help = "none", .arg = "FILE",
      .help = "private key (PEM) of the tls-cert in the same position" },
    { .name = "tls-ciphers", .kind = K_STRING, FIELD(tls_ciphers), .def = "",
      .def_help = "OpenSSL's", .arg = "LIST", .help = "TLS 1.2 cipher list (OpenSSL syntax)" },
    { .name = "tls-ciphersuites", .kind = K_STRING, FIELD(tls_ciphersuites), .def = "",
      .def_help = "OpenSSL's", .arg = "LIST", .help = "TLS 1.3 cipher suites (OpenSSL syntax)" },
    { .name = "tls-groups", .kind = K_STRING, FIELD(tls_groups), .def = "",
      .def_help = "OpenSSL's", .arg = "LIST", .help = "key exchange groups, like X25519:P-256" },
    /* permessage-deflate */
    { .name = "permessage-deflate", .kind = K_BOOL, FIELD(permessage_deflate), .def = "no",
      .help = "accept permessage-deflate (RFC 7692) when a client offers it" },
    { .name = "deflate-window-bits", .kind = K_UINT, FIELD(deflate_window_bits), .def = "15",
      .min = 8, .max = 15, .arg = "N",
      .help = "largest window the server compresses with (2^N bytes; 8 runs as 9)" },
    { .name = "deflate-mem-level", .kind = K_UINT, FIELD(deflate_mem_level), .def = "8",
      .min = 1, .max = 9, .arg = "N", .help = "zlib memLevel of the server's compressor" },
    { .name = "deflate-level", .kind = K_UINT, FIELD(deflate_level), .def = "1",
      .min = 0, .max = 9, .arg = "N", .help = "zlib compression level of the echo" },
    { .name = "deflate-server-takeover", .kind = K_BOOL, FIELD(deflate_server_takeover),
      .def = "no", .help = "keep the compressor's context between messages (costs memory)" },
    { .name = "deflate-client-takeover", .kind = K_BOOL, FIELD(deflate_client_takeover),
      .def = "no", .help = "let clients keep their context between messages (costs memory)" },
    { .name = "deflate-min-size", .kind = K_SIZE, FIELD(deflate_min_size), .def = "32",
      .min = 0, .max = (uint64_t)1 << 40, .arg = "SIZE",
      .help = "echo compressed messages smaller than this uncompressed" },
    { .name = "deflate-safari-guard", .kind = K_BOOL, FIELD(deflate_safari_guard), .def = "yes",
      .help = "keep a decompression context for Safari 15.0-15.3" },
    { .name = "deflate-max-inflating", .kind = K_UINT, FIELD(deflate_max_inflating),
      .def = "1024", .min = 1, .max = 10000000, .arg = "N",
      .help = "compressed messages arriving at once per worker; more close with 1013" },

    /* limits */
    { .name = "max-message", .kind = K_SIZE, FIELD(max_message), .def = "16M",
      .min = 1, .max = (uint64_t)1 << 40, .arg = "SIZE",
      .help = "largest message, all its fragments together" },
    { .name = "max-header", .kind = K_SIZE, FIELD(max_header), .def = "8K",
      .min = 256, .max = 65535, .arg = "SIZE", .help = "largest handshake request head" },
    { .name = "max-headers", .kind = K_UINT, FIELD(max_headers), .def = "100",
      .min = 1, .max = 1000, .arg = "N", .help = "most header lines in a handshake request" },
    { .name = "max-connections", .kind = K_UINT, FIELD(max_connections), .def = "100000",
      .min = 1, .max = 10000000, .arg = "N", .help = "open connections per worker" },
    { .name = "max-connections-per-ip", .kind = K_UINT, FIELD(max_connections_per_ip),
      .def = "0", .min = 0, .max = 10000000, .arg = "N",
      .help = "open connections per client address (IPv6: per /64), all workers; 0 = no limit" },
    { .name = "high-water", .kind = K_SIZE, FIELD(high_water), .def = "1M",
      .min = 4096, .max = (uint64_t)1 << 30, .arg = "SIZE",
      .help = "pause reading a peer with this much unsent output" },
    { .name = "low-water", .kind = K_SIZE, FIELD(low_water), .def = "256K",
      .min = 0, .max = (uint64_t)1 << 30, .arg = "SIZE",
      .help = "resume reading below this; less than high-water" },

    /* timeouts */
    { .name = "handshake-timeout", .kind = K_DURATION, .flags = F_NONZERO,
      FIELD(handshake_timeout), .def = "10", .max = 86400, .arg = "DURATION",
      .help = "time a new connection has for its handshake" },
    { .name = "ping-interval", .kind = K_DURATION, FIELD(ping_interval), .def = "30",
      .max = 86400, .arg = "DURATION", .help = "ping a quiet peer this often; 0 = never" },
    { .name = "idle-timeout", .kind = K_DURATION, FIELD(idle_timeout), .def = "75",
      .max = 86400, .arg = "DURATION", .help = "close a peer silent this long; 0 = never" },
    { .name = "close-timeout", .kind = K_DURATION, .flags = F_NONZERO, FIELD(close_timeout),
      .def = "5", .max = 86400, .arg = "DURATION",
      .help = "wait this long for the peer's close frame" },
    { .name = "drain-timeout", .kind = K_DURATION, FIELD(drain_timeout), .def = "30",
      .max = 86400, .arg = "DURATION",
      .help = "old workers' time to drain on reload or quit" },
    { .name = "close-spread", .kind = K_DURATION, FIELD(close_spread), .def = "5",
      .max = 86400, .arg = "DURATION",
      .help = "spread a drain's close frames over this long" },
    { .name = "drain-close-code", .kind = K_ENUM, FIELD(drain_close_code), .def = "1001",
      .words = close_code_words, .values = close_code_values, .arg = "CODE",
      .help = "close code sent when draining (1012 = restart)" },

    /* logging */
    { .name = "log-file", .kind = K_STRING, FIELD(log_file), .def = "", .def_help = "stderr",
      .arg = "FILE", .help = "append log lines to FILE" },
    { .name = "log-level", .kind = K_ENUM, FIELD(log_level), .def = "info",
      .words = level_words, .values = level_values, .arg = "LEVEL",
      .help = "log this level and the more severe ones" },
    { .name = "access-log", .kind = K_STRING, FIELD(access_log), .def = "off",
      .def_help = "off", .valid = valid_nonempty, .expect = "off, stderr or a file name",
      .arg = "FILE",
      .help = "one line per connection to FILE; off or stderr" },
};

#define NOPTS countof(opts)

/* Where values come from, for error messages and the replace-lists rule. */
struct loader {
    struct wse_config *c;
    char *err;
    size_t errlen;
    const char *file;       /* NULL: the command line (or the defaults) */
    unsigned line;
    bool defaults;          /* applying the built-in defaults */
    bool given[NOPTS];      /* lists already given by the current source */
};

/* ---- small helpers ---- */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* A value as error messages show it: at most 60 bytes, controls as '?'. */
static const char *show(const char *v, char *buf, size_t n)
{
    size_t i = 0, max = n - 4 < 60 ? n - 4 : 60;

    for (; i < max && v[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)v[i];
        buf[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    buf[i] = '\0';
    if (v[i] != '\0')
        memcpy(buf + i, "...", 4);
    return buf;
}

/* 16777216 -> "16M", 65535 -> "65535". */
static const char *fmt_size(uint64_t v, char *buf, size_t n)
{
    static const char suffix[] = "TGMK";
    static const unsigned shift[] = { 40, 30, 20, 10 };

    for (size_t i = 0; v != 0 && i < countof(shift); i++) {
        if ((v & (((uint64_t)1 << shift[i]) - 1)) == 0) {
            snprintf(buf, n, "%llu%c", (unsigned long long)(v >> shift[i]), suffix[i]);
            return buf;
        }
    }
    snprintf(buf, n, "%llu", (unsigned long long)v);
    return buf;
}

/* "error, warn, info or debug" */
static const char *fmt_words(const char *const *w, char *buf, size_t n)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; w[i] != NULL && len < n; i++) {
        const char *sep = i == 0 ? "" : w[i + 1] == NULL ? " or " : ", ";
        int k = snprintf(buf + len, n - len, "%s%s", sep, w[i]);
        if (k < 0)
            break;
        len += (size_t)k;
    }
    return buf;
}

static const struct opt *opt_by_key(const char *name, bool cli_only_too)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0 && (cli_only_too || !(opts[i].flags & F_CLI)))
            return &opts[i];
    return NULL;
}

/* getopt's val for an option: its letter, or 256 + its index. */
static int opt_val(size_t i)
{
    return opts[i].letter ? opts[i].letter : 256 + (int)i;
}

static const struct opt *opt_by_val(int val)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opt_val(i) == val)
            return &opts[i];
    return NULL;
}

static void *field(struct wse_config *c, const struct opt *o)
{
    return (char *)c + o->off;
}

static void store_uint(struct wse_config *c, const struct opt *o, uint64_t v)
{
    if (o->size == sizeof(uint64_t)) {
        uint64_t x = v;
        memcpy(field(c, o), &x, sizeof x);
    } else {
        unsigned x = (unsigned)v;
        memcpy(field(c, o), &x, sizeof x);
    }
}

/* The "expected ..." form of an option's value. */
static const char *expected(const struct opt *o, char *buf, size_t n)
{
    char a[32], b[32];

    switch (o->kind) {
    case K_UINT:
        snprintf(buf, n, "a whole number from %llu to %llu",
                 (unsigned long long)o->min, (unsigned long long)o->max);
        break;
    case K_SIZE:
        snprintf(buf, n, "a size from %s to %s (bytes, or with a K, M, G or T suffix)",
                 fmt_size(o->min, a, sizeof a), fmt_size(o->max, b, sizeof b));
        break;
    case K_DURATION:
        snprintf(buf, n, "a duration like 75, 1.5 or 500ms");
        break;
    case K_ENUM:
    case K_SIGNAL:
        fmt_words(o->words, buf, n);
        break;
    case K_LISTEN:
        snprintf(buf, n, "%s", LISTEN_FORM);
        break;
    case K_STRING:
    case K_STRLIST:
        snprintf(buf, n, "%s", o->expect ? o->expect : "a text");
        break;
    case K_FLAG:
        snprintf(buf, n, "no value");
        break;
    case K_BOOL:
        snprintf(buf, n, "yes or no");
        break;
    }
    return buf;
}

/* ---- errors ---- */

/* Writes "<where>: <message>" to ld->err; returns 2. o may be NULL. */
__attribute__((format(printf, 3, 4)))
static int fail(struct loader *ld, const struct opt *o, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ld->err == NULL || ld->errlen == 0)
        return 2;
    if (ld->file != NULL && o != NULL)
        snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", ld->file, ld->line, o->name, msg);
    else if (ld->file != NULL)
        snprintf(ld->err, ld->errlen, "%s:%u: %s", ld->file, ld->line, msg);
    else if (ld->defaults && o != NULL)
        snprintf(ld->err, ld->errlen, "built-in default of %s: %s", o->name, msg);
    else if (o != NULL)
        snprintf(ld->err, ld->errlen, "--%s: %s", o->name, msg);
    else
        snprintf(ld->err, ld->errlen, "%s", msg);
    return 2;
}

/* "expected <form>, got '<value>'" */
static int fail_expected(struct loader *ld, const struct opt *o, const char *v)
{
    char form[160], shown[64];

    return fail(ld, o, "expected %s, got '%s'", expected(o, form, sizeof form),
                show(v, shown, sizeof shown));
}

/* ---- value parsers ---- */

/* Decimal digits at *pp into *v; false without digits or on overflow. */
static bool parse_digits(const char **pp, uint64_t *v)
{
    const char *p = *pp;
    uint64_t x = 0;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t)(*p - '0'), &x))
            return false;
    *pp = p;
    *v = x;
    return true;
}

static bool parse_uint(const char *s, uint64_t *v)
{
    return parse_digits(&s, v) && *s == '\0';
}

/* "16777216", "64k", "16M", "1G", "1T" (1024-based). */
static bool parse_size(const char *s, uint64_t *v)
{
    uint64_t x;
    unsigned shift = 0;

    if (!parse_digits(&s, &x))
        return false;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    case 't': case 'T': shift = 40; s++; break;
    }
    if (*s != '\0' || x > (UINT64_MAX >> shift))
        return false;
    *v = x << shift;
    return true;
}

/*
 * Seconds: digits with an optional fraction, then an optional unit
 * (ms, s, m, h).  All digits are read as one integer and divided once by a
 * power of ten, so "1.5" is exactly 1.5 and "0.3" the double nearest 0.3.
 */
static bool parse_duration(const char *s, double *v)
{
    uint64_t mant = 0;
    unsigned digits = 0, frac = 0;
    double x, scale = 1;

    for (; *s >= '0' && *s <= '9'; s++, digits++)
        mant = mant * 10 + (uint64_t)(*s - '0');
    if (digits == 0)
        return false;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return false;
        for (; *s >= '0' && *s <= '9'; s++, digits++, frac++)
            mant = mant * 10 + (uint64_t)(*s - '0');
    }
    if (digits > 18)                 /* mant would overflow; no sane duration */
        return false;
    for (unsigned i = 0; i < frac; i++)
        scale *= 10;
    x = (double)mant / scale;
    if (strcmp(s, "ms") == 0)
        x /= 1000;
    else if (strcmp(s, "m") == 0)
        x *= 60;
    else if (strcmp(s, "h") == 0)
        x *= 3600;
    else if (strcmp(s, "s") != 0 && *s != '\0')
        return false;
    *v = x;
    return true;
}

/*
 * ADDRESS:PORT into *l.  Returns NULL, or why s is not one ("expected ...").
 * Accepted: 1.2.3.4:80, [::1]:8000, [::]:8000, *:8000 and :8000 (both
 * 0.0.0.0).  Host names are refused: resolving is a side effect and its
 * answer can change between a reload's check and its bind.
 */
static const char *parse_listen(const char *s, struct wse_listen *l)
{
    const char *host, *colon, *p;
    size_t hlen;
    int family;
    uint64_t port;
    char hostbuf[WSE_STR_MAX];
    unsigned char bin[sizeof(struct in6_addr)];

    memset(l, 0, sizeof *l);
    if (strlen(s) >= sizeof l->text)
        return "expected at most 255 bytes";
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return "expected " LISTEN_FORM;
        host = s + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
        family = AF_INET6;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return "expected " LISTEN_FORM;
        host = s;
        hlen = (size_t)(colon - s);
        if (memchr(host, ':', hlen) != NULL)
            return "expected an IPv6 address in brackets, like [::1]:8000";
        family = AF_INET;
        if (hlen == 0 || (hlen == 1 && host[0] == '*')) {
            host = "0.0.0.0";
            hlen = 7;
        }
    }
    p = colon + 1;
    if (!parse_digits(&p, &port) || *p != '\0' || port < 1 || port > 65535 || p - colon > 6)
        return "expected a port from 1 to 65535 after the ':'";
    memcpy(hostbuf, host, hlen);
    hostbuf[hlen] = '\0';
    if (inet_pton(family, hostbuf, bin) != 1)
        return family == AF_INET6
            ? "expected a numeric IPv6 address inside the brackets"
            : "expected a numeric IPv4 address, '*' or a bracketed IPv6 address"
              " (host names are not resolved)";
    if (inet_ntop(family, bin, l->host, sizeof l->host) == NULL)
        return "expected a numeric address";
    memcpy(l->text, s, strlen(s) + 1);
    l->port = (uint16_t)port;
    l->family = family;
    return NULL;
}

/* ---- string checks ---- */

static bool no_space_or_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool valid_nonempty(const char *s)
{
    return s[0] != '\0';
}

static bool valid_path(const char *s)
{
    return s[0] == '/' && no_space_or_control(s) && strpbrk(s, "?#") == NULL;
}

static bool valid_origin(const char *s)
{
    return s[0] != '\0' && no_space_or_control(s);
}

static bool alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool valid_name(const char *s)
{
    if (s[0] == '\0')
        return true;                /* "": derived by the server */
    if (!alnum(s[0]))
        return false;
    for (; *s != '\0'; s++)
        if (!alnum(*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

/* A portable user or group name (useradd's rule), or a number; "" = none. */
static bool valid_account(const char *s)
{
    if (s[0] == '\0')
        return true;
    if (s[0] == '-')
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!alnum(*p) && *p != '.' && *p != '_' && *p != '-' && !(*p == '$' && !p[1]))
            return false;
    return true;
}

/* The prefix goes into text messages, which must stay valid UTF-8. */
static bool valid_utf8(const char *s)
{
    return wse_utf8_valid((const uint8_t *)s, strlen(s)) == WSE_OK;
}

/* ---- applying one value ---- */

static int set_mode(struct loader *ld, const struct opt *o, enum wse_mode m)
{
    struct wse_config *c = ld->c;

    /* -h beats -V beats everything; -t and -s exclude each other. */
    if (c->mode == WSE_MODE_HELP || (c->mode == WSE_MODE_VERSION && m != WSE_MODE_HELP))
        return 0;
    if (m != WSE_MODE_HELP && m != WSE_MODE_VERSION &&
        c->mode != WSE_MODE_SERVE && c->mode != m)
        return fail(ld, o, "cannot be combined with --%s",
                    c->mode == WSE_MODE_TEST ? "test-config" : "signal");
    c->mode = m;
    return 0;
}

/* A list option's first value from a source replaces the earlier ones. */
static unsigned *list_count(struct loader *ld, const struct opt *o)
{
    unsigned *n = (unsigned *)(void *)((char *)ld->c + o->count_off);

    if (!ld->given[o - opts]) {
        ld->given[o - opts] = true;
        *n = 0;
    }
    return n;
}

static int apply(struct loader *ld, const struct opt *o, const char *v)
{
    struct wse_config *c = ld->c;
    char a[64], b[64];
    uint64_t u;
    double d;

    switch (o->kind) {
    case K_UINT:
    case K_SIZE:
        if (!(o->kind == K_UINT ? parse_uint(v, &u) : parse_size(v, &u)) ||
            u < o->min || u > o->max)
            return fail_expected(ld, o, v);
        store_uint(c, o, u);
        return 0;

    case K_DURATION:
        if (!parse_duration(v, &d))
            return fail_expected(ld, o, v);
        if (d > (double)o->max || d < (double)o->min || ((o->flags & F_NONZERO) && d == 0))
            return fail(ld, o, "expected a duration %s %llu %s %llu seconds, got '%s'",
                        (o->flags & F_NONZERO) ? "above" : "from", (unsigned long long)o->min,
                        (o->flags & F_NONZERO) ? "and at most" : "to",
                        (unsigned long long)o->max, show(v, a, sizeof a));
        memcpy(field(c, o), &d, sizeof d);
        return 0;

    case K_ENUM:
    case K_SIGNAL:
        for (size_t i = 0; o->words[i] != NULL; i++) {
            if (strcmp(v, o->words[i]) != 0)
                continue;
            if (o->kind == K_ENUM) {
                store_uint(c, o, o->values[i]);
                return 0;
            }
            memcpy(field(c, o), v, strlen(v) + 1);   /* a word fits its field */
            return set_mode(ld, o, WSE_MODE_SIGNAL);
        }
        return fail_expected(ld, o, v);

    case K_FLAG:
        return set_mode(ld, o, (enum wse_mode)o->min);

    case K_BOOL: {
        static const char *const yes[] = {"yes", "on", "true", "1"};
        static const char *const no[] = {"no", "off", "false", "0"};
        if (v == NULL) {            /* the command line's bare --option */
            store_uint(c, o, 1);
            return 0;
        }
        for (size_t i = 0; i < countof(yes); i++) {
            if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
                store_uint(c, o, strcmp(v, yes[i]) == 0);
                return 0;
            }
        }
        return fail_expected(ld, o, v);
    }

    case K_STRING:
        if (strlen(v) >= o->size)
            return fail(ld, o, "expected at most %zu bytes, got '%s'", o->size - 1,
                        show(v, a, sizeof a));
        if (o->valid != NULL && !o->valid(v))
            return fail_expected(ld, o, v);
        memcpy(field(c, o), v, strlen(v) + 1);
        return 0;

    case K_STRLIST: {
        unsigned *n;
        if (strlen(v) >= o->size)
            return fail(ld, o, "expected at most %zu bytes, got '%s'", o->size - 1,
                        show(v, a, sizeof a));
        if (o->valid != NULL && !o->valid(v))
            return fail_expected(ld, o, v);
        n = list_count(ld, o);
        if (*n >= o->max)
            return fail(ld, o, "at most %llu values, got one more: '%s'",
                        (unsigned long long)o->max, show(v, a, sizeof a));
        memcpy((char *)field(c, o) + *n * o->size, v, strlen(v) + 1);
        (*n)++;
        return 0;
    }

    case K_LISTEN: {
        struct wse_listen l, *list = field(c, o);
        const char *why;
        unsigned *n;
        if ((o->flags & F_OFF) && (strcmp(v, "off") == 0 || v[0] == '\0')) {
            *list_count(ld, o) = 0;
            return 0;
        }
        why = parse_listen(v, &l);
        if (why != NULL)
            return fail(ld, o, "%s%s, got '%s'", why, (o->flags & F_OFF) ? " (or off)" : "",
                        show(v, a, sizeof a));
        n = list_count(ld, o);
        for (unsigned i = 0; i < *n; i++)
            if (list[i].family == l.family && list[i].port == l.port &&
                strcmp(list[i].host, l.host) == 0)
                return fail(ld, o, "duplicate address '%s' (already listening on '%s')",
                            show(v, a, sizeof a), show(list[i].text, b, sizeof b));
        if (*n >= o->max)
            return fail(ld, o, "at most %llu addresses, got one more: '%s'",
                        (unsigned long long)o->max, show(v, a, sizeof a));
        list[(*n)++] = l;
        return 0;
    }
    }
    return fail(ld, o, "internal error: unknown option kind");
}

/* ---- sources ---- */

static int set_defaults(struct loader *ld)
{
    int rc;

    ld->defaults = true;
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->flags & F_NCPU) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            uint64_t v = n < 1 ? 1 : (uint64_t)n;
            store_uint(ld->c, o, v < o->min ? o->min : v > o->max ? o->max : v);
        } else if (o->def != NULL && (rc = apply(ld, o, o->def)) != 0) {
            return rc;
        }
    }
    ld->defaults = false;
    return 0;
}

/* A value after '=': trimmed, unquoted ("..." with \" and \\), comment cut.
 * Works in place; returns NULL or what is wrong. */
static const char *file_value(char *raw, char **out)
{
    char *p = raw, *end;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '"') {
        char *r = p + 1, *w = p;
        for (;;) {
            if (*r == '\0')
                return "expected a closing '\"'";
            if (*r == '"')
                break;
            if (*r == '\\') {
                if (r[1] != '"' && r[1] != '\\')
                    return "expected \\\" or \\\\ after a backslash inside quotes";
                r++;
            }
            *w++ = *r++;
        }
        *w = '\0';
        for (r++; is_space(*r); r++)
            ;
        if (*r != '\0' && *r != '#')
            return "expected only a comment after the closing '\"'";
        *out = p;
        return NULL;
    }
    /* A '#' starts a comment only after whitespace: "path = /a#b" keeps it. */
    end = p + strlen(p);
    for (char *q = p; *q != '\0'; q++) {
        if (*q == '#' && q > raw && (q[-1] == ' ' || q[-1] == '\t')) {
            end = q;
            break;
        }
    }
    while (end > p && is_space(end[-1]))
        end--;
    *end = '\0';
    *out = p;
    return NULL;
}

static int file_line(struct loader *ld, char *s)
{
    char key[64], shown[64], *eq, *kend, *value;
    const struct opt *o;
    const char *why;
    size_t klen;

    while (is_space(*s))
        s++;
    if (*s == '\0' || *s == '#')
        return 0;
    eq = strchr(s, '=');
    for (kend = eq ? eq : s; kend > s && is_space(kend[-1]); kend--)
        ;
    if (eq == NULL || kend == s)
        return fail(ld, NULL, "expected 'key = value', got '%s'", show(s, shown, sizeof shown));
    klen = (size_t)(kend - s);
    o = NULL;
    if (klen < sizeof key) {
        for (size_t i = 0; i < klen; i++)
            key[i] = s[i] == '_' ? '-' : s[i];
        key[klen] = '\0';
        o = opt_by_key(key, true);
    }
    *kend = '\0';
    if (o == NULL)
        return fail(ld, NULL, "unknown key '%s'", show(s, shown, sizeof shown));
    if (o->flags & F_CLI)
        return fail(ld, NULL, "unknown key '%s' (a command-line option only)",
                    show(s, shown, sizeof shown));
    if ((why = file_value(eq + 1, &value)) != NULL)
        return fail(ld, o, "%s", why);
    return apply(ld, o, value);
}

/*
 * Reads one line (without its "\n") into buf, which holds CONF_LINE_MAX + 1
 * bytes.  Returns 1 for a line, 0 at the end of the file, or fail()'s code:
 * a line or file over its cap is refused as soon as the cap is passed, so
 * memory and time stay bounded whatever the file holds.
 */
static int read_line(struct loader *ld, FILE *fp, char *buf, size_t *total)
{
    size_t n = 0;
    int ch;

    while ((ch = getc_unlocked(fp)) != EOF) {
        if (++*total > CONF_FILE_MAX)
            return fail(ld, NULL, "config file larger than %u bytes (1 MiB)", CONF_FILE_MAX);
        if (ch == '\n')
            break;
        if (ch == '\0')
            return fail(ld, NULL, "unexpected NUL byte");
        if (n == CONF_LINE_MAX)
            return fail(ld, NULL, "line longer than %u bytes", CONF_LINE_MAX);
        buf[n++] = (char)ch;
    }
    if (ch == EOF && (n == 0 || ferror(fp)))
        return 0;       /* the caller tells an error from the end */
    while (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return 1;
}

/*
 * Opens the configuration file, which must be a regular file: a FIFO or a
 * device would block the master (at start or at a reload) or never end, and
 * a pipe read once would be empty at the next reload, silently resetting
 * every option to its default.  O_NONBLOCK: opening a FIFO does not wait
 * for a writer.
 */
static FILE *open_regular(struct loader *ld, const char *path, int *rc)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int err = 0;

    if (fd < 0) {
        *rc = fail(ld, NULL, "cannot open config file '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0)
        err = errno;
    else if (S_ISDIR(st.st_mode))
        err = EISDIR;
    else if (!S_ISREG(st.st_mode))
        err = -1;
    FILE *fp = err ? NULL : fdopen(fd, "r");
    if (fp == NULL && !err)
        err = errno;
    if (fp == NULL) {
        if (err < 0)
            *rc = fail(ld, NULL, "config file '%s' is not a regular file", path);
        else
            *rc = fail(ld, NULL, "cannot read config file '%s': %s", path, strerror(err));
        close(fd);
    }
    return fp;
}

static int load_file(struct loader *ld, const char *path)
{
    char line[CONF_LINE_MAX + 1];
    size_t total = 0;
    int rc = 0;
    FILE *fp = open_regular(ld, path, &rc);

    if (fp == NULL)
        return rc;
    ld->file = path;
    ld->line = 0;
    memset(ld->given, 0, sizeof ld->given);
    for (;;) {
        ld->line++;
        rc = read_line(ld, fp, line, &total);
        if (rc != 1)
            break;
        if ((rc = file_line(ld, line)) != 0)
            break;
    }
    if (rc == 0 && ferror(fp)) {
        int e = errno;
        ld->file = NULL;
        rc = fail(ld, NULL, "cannot read config file '%s': %s", path, strerror(e));
    }
    fclose(fp);
    ld->file = NULL;
    return rc;
}

/* Reports getopt's '?' or ':' (pass 1; opterr is off). */
static int cli_error(struct loader *ld, int ch, int argc, char *const argv[])
{
    char form[160], shown[64], name[64], cands[256];
    const struct opt *o = optopt != 0 ? opt_by_val(optopt) : NULL;
    const char *arg;
    size_t len, matches = 0, used = 0;

    if (ch == ':' && o != NULL)
        return fail(ld, o, "missing value, expected %s", expected(o, form, sizeof form));
    if (optopt != 0 && optopt < 256 && (o == NULL || o->letter == 0)) {
        if (optopt > 0x20 && optopt < 0x7f)
            return fail(ld, NULL, "unknown option '-%c' (see --help)", optopt);
        return fail(ld, NULL, "unknown option '-\\x%02x' (see --help)", (unsigned)optopt & 0xff);
    }
    if (o != NULL)      /* --flag=value */
        return fail(ld, o, "takes no value");

    /* Unknown or ambiguous long option: getopt has stepped past it. */
    arg = optind >= 1 && optind <= argc ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) == 0)
        arg += 2;
    len = strcspn(arg, "=");
    cands[0] = '\0';
    for (size_t i = 0; i < NOPTS && len > 0; i++) {
        if (strncmp(opts[i].name, arg, len) != 0)
            continue;
        if (used < sizeof cands) {
            int k = snprintf(cands + used, sizeof cands - used, "%s--%s",
                             matches ? ", " : "", opts[i].name);
            used += k > 0 ? (size_t)k : 0;
        }
        matches++;
    }
    snprintf(name, sizeof name, "%.*s", (int)(len < 60 ? len : 60), arg);
    show(name, shown, sizeof shown);
    if (matches > 1)
        return fail(ld, NULL, "ambiguous option '--%s': %s?", shown, cands);
    return fail(ld, NULL, "unknown option '--%s' (see --help)", shown);
}

/*
 * One getopt_long pass over argv.  Pass 1 (cli_only) reports syntax errors
 * and applies the command-line-only options; pass 2 applies the rest.
 * '+' stops at the first non-option (an error here) and, unlike GNU's
 * default, leaves argv in its order; ':' reports missing values as ':'.
 */
static int cli_pass(struct loader *ld, int argc, char *const argv[],
                    const struct option *lopts, const char *optstring, bool cli_only)
{
    char shown[64];
    int ch, rc;

    ld->file = NULL;
    memset(ld->given, 0, sizeof ld->given);
    if (argc < 1 || argv == NULL)
        return 0;
    optind = 0;                 /* GNU: full re-initialisation */
    while ((ch = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        const struct opt *o;
        if (ch == '?' || ch == ':') {
            if (cli_only)
                return cli_error(ld, ch, argc, argv);
            continue;
        }
        o = opt_by_val(ch);
        if (o == NULL)
            return fail(ld, NULL, "internal error: getopt returned %d", ch);
        if (((o->flags & F_CLI) != 0) == cli_only && (rc = apply(ld, o, optarg)) != 0)
            return rc;
    }
    if (optind < argc)
        return fail(ld, NULL, "unexpected argument '%s' (see --help)",
                    show(argv[optind], shown, sizeof shown));
    return 0;
}

/* Could a connection to a reach a socket bound to b?  (IPv6 listeners are
 * IPV6_V6ONLY, so the families never share a port.) */
static bool addresses_overlap(const struct wse_listen *a, const struct wse_listen *b)
{
    const char *any = a->family == AF_INET6 ? "::" : "0.0.0.0";

    return a->family == b->family && a->port == b->port &&
           (strcmp(a->host, b->host) == 0 || strcmp(a->host, any) == 0 ||
            strcmp(b->host, any) == 0);
}

/* /metrics has its own port: sharing one with the WebSocket listeners
 * (SO_REUSEPORT would let both bind) would split its connections. */
static int check_metrics_listen(struct loader *ld)
{
    const struct wse_config *c = ld->c;
    char a[64], b[64];

    for (unsigned m = 0; m < c->nmetrics_listen; m++)
        for (unsigned l = 0; l < c->nlisten; l++)
            if (addresses_overlap(&c->metrics_listen[m], &c->listen[l]))
                return fail(ld, NULL, "metrics-listen '%s' overlaps listen address '%s' (same "
                            "port): /metrics is never served on a WebSocket port, choose "
                            "another port", show(c->metrics_listen[m].text, a, sizeof a),
                            show(c->listen[l].text, b, sizeof b));
    return 0;
}

/*
 * The TLS addresses join listen[] (marked .tls) after the plain ones, so
 * everything that opens, passes and watches listeners sees one list.  A
 * TLS address may not overlap a plain one: SO_REUSEPORT would let both
 * bind and split its connections between the two protocols.
 */
static int merge_tls_listen(struct loader *ld)
{
    struct wse_config *c = ld->c;
    char a[64], b[64];

    if (c->ntls_cert != c->ntls_key)
        return fail(ld, NULL, "tls-cert and tls-key come in pairs: %u %s, %u %s", c->ntls_cert,
                    c->ntls_cert == 1 ? "certificate" : "certificates", c->ntls_key,
                    c->ntls_key == 1 ? "key" : "keys");
    if (c->ntls_listen && !c->ntls_cert)
        return fail(ld, NULL, "tls-listen needs a certificate: give tls-cert and tls-key");
    if (!c->ntls_listen && c->ntls_cert)
        return fail(ld, NULL, "tls-cert is given but no tls-listen address serves it");
    if (c->nlisten + c->ntls_listen == 0)
        return fail(ld, NULL, "no address to serve: give listen or tls-listen");
    if (c->nlisten + c->ntls_listen > WSE_MAX_LISTEN)
        return fail(ld, NULL, "at most %u addresses in all (listen and tls-listen), got %u",
                    WSE_MAX_LISTEN, c->nlisten + c->ntls_listen);
    for (unsigned t = 0; t < c->ntls_listen; t++)
        for (unsigned l = 0; l < c->nlisten; l++)
            if (addresses_overlap(&c->tls_listen[t], &c->listen[l]))
                return fail(ld, NULL, "tls-listen '%s' overlaps listen address '%s' (same "
                            "port): one port serves one protocol",
                            show(c->tls_listen[t].text, a, sizeof a),
                            show(c->listen[l].text, b, sizeof b));
    for (unsigned t = 0; t < c->ntls_listen; t++) {
        c->listen[c->nlisten] = c->tls_listen[t];
        c->listen[c->nlisten++].tls = true;
    }
    return 0;
}

static int finish(struct loader *ld)
{
    struct wse_config *c = ld->c;
    char a[2 * WSE_STR_MAX], b[32];

    if (check_metrics_listen(ld) != 0)
        return 2;
    /* After the metrics check, which names the list the address came from. */
    for (unsigned t = 0; t < c->ntls_listen; t++)
        if (c->nmetrics_listen && addresses_overlap(&c->metrics_listen[0], &c->tls_listen[t]))
            return fail(ld, NULL, "metrics-listen '%s' overlaps tls-listen address '%s' (same "
                        "port): choose another port", show(c->metrics_listen[0].text, a, 64),
                        show(c->tls_listen[t].text, b, sizeof b));
    if (merge_tls_listen(ld) != 0)
        return 2;
    if (wse_priv_resolve(c->user, c->group, &c->cred, a, sizeof a) < 0)
        return fail(ld, NULL, "%s", a);

    if (c->low_water >= c->high_water)
        return fail(ld, NULL, "low-water (%s) must be less than high-water (%s)",
                    fmt_size(c->low_water, a, sizeof a), fmt_size(c->high_water, b, sizeof b));
    c->echo_prefix_len = strlen(c->echo_prefix);
    return 0;
}

int wse_config_load(struct wse_config *out, int argc, char *const argv[],
                    char *err, size_t errlen)
{
    struct wse_config c;
    struct loader ld = { .c = &c, .err = err, .errlen = errlen };
    struct option lopts[NOPTS + 1];
    char optstring[3 + 2 * NOPTS], *p = optstring;
    int rc, saved_opterr = opterr;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *p++ = '+';
    *p++ = ':';
    for (size_t i = 0; i < NOPTS; i++) {
        bool has_arg = opts[i].kind != K_FLAG && opts[i].kind != K_BOOL;
        lopts[i] = (struct option){ opts[i].name, has_arg ? required_argument : no_argument,
                                    NULL, opt_val(i) };
        if (opts[i].letter) {
            *p++ = opts[i].letter;
            if (has_arg)
                *p++ = ':';
        }
    }
    *p = '\0';
    lopts[NOPTS] = (struct option){ NULL, 0, NULL, 0 };

    memset(&c, 0, sizeof c);
    rc = set_defaults(&ld);
    opterr = 0;
    if (rc == 0)
        rc = cli_pass(&ld, argc, argv, lopts, optstring, true);
    if (rc == 0 && c.mode != WSE_MODE_HELP && c.mode != WSE_MODE_VERSION) {
        if (c.config_file[0] != '\0')
            rc = load_file(&ld, c.config_file);
        if (rc == 0)
            rc = cli_pass(&ld, argc, argv, lopts, optstring, false);
        if (rc == 0)
            rc = finish(&ld);
    }
    opterr = saved_opterr;
    if (rc == 0)
        *out = c;
    return rc;
}

/* ---- --help ---- */

static const char *range_text(const struct opt *o, char *buf, size_t n)
{
    char a[32], b[32];

    buf[0] = '\0';
    switch (o->kind) {
    case K_UINT:
        snprintf(buf, n, "%llu to %llu", (unsigned long long)o->min, (unsigned long long)o->max);
        break;
    case K_SIZE:
        snprintf(buf, n, "%s to %s bytes", fmt_size(o->min, a, sizeof a),
                 fmt_size(o->max, b, sizeof b));
        break;
    case K_DURATION:
        snprintf(buf, n, (o->flags & F_NONZERO) ? "above %llu, up to %llu s" : "%llu to %llu s",
                 (unsigned long long)o->min, (unsigned long long)o->max);
        break;
    case K_ENUM:
    case K_SIGNAL:
        fmt_words(o->words, buf, n);
        break;
    case K_LISTEN:
    case K_STRLIST:
        if (o->max > 1)
            snprintf(buf, n, "up to %llu", (unsigned long long)o->max);
        break;
    case K_STRING:
    case K_FLAG:
    case K_BOOL:
        break;
    }
    return buf;
}

void wse_config_usage(void *fp)
{
    FILE *f = fp;
    char head[64], range[128], def[160];

    fputs("Usage: wsechod [OPTIONS]\n"
          "       wsechod stats [...]\n"
          "\n"
          "Every long option not marked 'command line only' is also a key of the -c file:\n"
          "'key = value' lines, '#' comments, '-' and '_' alike in keys.  The command line\n"
          "wins over the file; a repeatable option given there replaces the file's list.\n"
          "SIZE: bytes, or with K, M, G or T (1024-based).  DURATION: seconds, like 75,\n"
          "1.5, 500ms, 2s, 1m or 1h.\n"
          "\n", f);
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        const char *arg = o->arg ? o->arg : "";
        const char *sp = o->arg ? " " : "";

        if (o->letter)
            snprintf(head, sizeof head, "-%c, --%s%s%s", o->letter, o->name, sp, arg);
        else
            snprintf(head, sizeof head, "    --%s%s%s", o->name, sp, arg);
        if (strlen(head) > 28)
            fprintf(f, "  %s\n  %-28s %s\n", head, "", o->help);
        else
            fprintf(f, "  %-28s %s\n", head, o->help);

        range_text(o, range, sizeof range);
        if (o->flags & F_CLI)
            snprintf(def, sizeof def, "command line only");
        else if (o->def_help != NULL)
            snprintf(def, sizeof def, "default: %s", o->def_help);
        else if (o->def != NULL && (o->kind == K_STRING || o->kind == K_STRLIST))
            snprintf(def, sizeof def, "default: \"%s\"", o->def);
        else if (o->def != NULL)
            snprintf(def, sizeof def, "default: %s", o->def);
        else
            def[0] = '\0';
        if (range[0] != '\0' || def[0] != '\0')
            fprintf(f, "  %-28s (%s%s%s)\n", "", range, range[0] && def[0] ? "; " : "", def);
    }
}

const char *wse_log_level_name(enum wse_log_level level)
{
    for (size_t i = 0; level_words[i] != NULL; i++)
        if (level_values[i] == (unsigned)level)
            return level_words[i];
    return "unknown";
}
