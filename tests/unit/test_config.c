/* test_config.c - defaults, command line, config files, validation, modes, --help. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"

static struct wse_config cfg;
static char err[1024];
static char conf_path[64];

/* Loads "wsechod" + args (NULL-terminated) into cfg. */
static int load_args(struct wse_config *c, const char *const *args)
{
    char *argv[80];
    int argc = 0;

    argv[argc++] = (char *)"wsechod";
    for (; *args != NULL; args++) {
        ck_assert_int_lt(argc, 79);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    strcpy(err, "(unchanged)");
    return wse_config_load(c, argc, argv, err, sizeof err);
}

#define LOAD(...) load_args(&cfg, (const char *const[]){ __VA_ARGS__, NULL })
#define LOAD0()   load_args(&cfg, (const char *const[]){ NULL })

/* Writes text to a fresh file under /tmp; its name is in conf_path. */
static void write_conf(const char *text)
{
    size_t n = strlen(text);
    int fd;

    strcpy(conf_path, "/tmp/wse_test_config_XXXXXX");
    fd = mkstemp(conf_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Loads "-c FILE" + extra args, FILE holding text; removes FILE before returning. */
static int load_conf(const char *text, const char *const *extra)
{
    const char *args[80];
    int n = 0, rc;

    write_conf(text);
    args[n++] = "-c";
    args[n++] = conf_path;
    for (; *extra != NULL; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    rc = load_args(&cfg, args);
    unlink(conf_path);
    return rc;
}

#define LOADF(text)       load_conf(text, (const char *const[]){ NULL })
#define LOADFA(text, ...) load_conf(text, (const char *const[]){ __VA_ARGS__, NULL })

/* The load fails with exactly this message. */
#define ck_fails_with(call, msg) do { \
        ck_assert_int_eq((call), 2); \
        ck_assert_str_eq(err, (msg)); \
    } while (0)

/* The message a file error carries: "<conf_path>:<rest>". */
static const char *at_file(const char *rest)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s:%s", conf_path, rest);
    return buf;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > WSE_MAX_WORKERS ? WSE_MAX_WORKERS : (unsigned)n;
}

/* ------------------------------------------------------------------ defaults */

START_TEST(defaults)
{
    ck_assert_int_eq(LOAD0(), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_SERVE);
    ck_assert_str_eq(cfg.signal_name, "");
    ck_assert_str_eq(cfg.config_file, "");
    ck_assert_uint_eq(cfg.workers, online_cpus());
    ck_assert_uint_eq(cfg.nlisten, 1);
    ck_assert_str_eq(cfg.listen[0].text, "0.0.0.0:8000");
    ck_assert_str_eq(cfg.listen[0].host, "0.0.0.0");
    ck_assert_uint_eq(cfg.listen[0].port, 8000);
    ck_assert_int_eq(cfg.listen[0].family, AF_INET);
    ck_assert_str_eq(cfg.pid_file, "");
    ck_assert_str_eq(cfg.stats_name, "");
    ck_assert_str_eq(cfg.path, "/websocket");
    ck_assert_str_eq(cfg.echo_prefix, "");
    ck_assert_uint_eq(cfg.echo_prefix_len, 0);
    ck_assert_uint_eq(cfg.norigins, 0);
    ck_assert_uint_eq(cfg.max_message, 16u << 20);
    ck_assert_uint_eq(cfg.max_header, 8192);
    ck_assert_uint_eq(cfg.max_headers, 100);
    ck_assert_uint_eq(cfg.max_connections, 100000);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 0);
    ck_assert_uint_eq(cfg.high_water, 1u << 20);
    ck_assert_uint_eq(cfg.low_water, 256u << 10);
    ck_assert_double_eq(cfg.handshake_timeout, 10);
    ck_assert_double_eq(cfg.ping_interval, 30);
    ck_assert_double_eq(cfg.idle_timeout, 75);
    ck_assert_double_eq(cfg.close_timeout, 5);
    ck_assert_double_eq(cfg.drain_timeout, 30);
    ck_assert_double_eq(cfg.close_spread, 5);
    ck_assert_uint_eq(cfg.drain_close_code, 1001);
    ck_assert_str_eq(cfg.log_file, "");
    ck_assert_int_eq(cfg.log_level, WSE_LOG_INFO);
    ck_assert_str_eq(cfg.access_log, "off");
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(log_level_names)
{
    ck_assert_str_eq(wse_log_level_name(WSE_LOG_ERROR), "error");
    ck_assert_str_eq(wse_log_level_name(WSE_LOG_WARN), "warn");
    ck_assert_str_eq(wse_log_level_name(WSE_LOG_INFO), "info");
    ck_assert_str_eq(wse_log_level_name(WSE_LOG_DEBUG), "debug");
}
END_TEST

/* ------------------------------------------------------------- command line */

START_TEST(every_option_on_command_line)
{
    ck_assert_int_eq(LOAD("--workers", "3", "--listen", "127.0.0.1:9000",
                          "--listen", "[::1]:9001", "--pid-file", "/run/w.pid",
                          "--stats-name", "edge", "--path", "/echo",
                          "--echo-prefix", "> ", "--allow-origin", "https://a.example",
                          "--allow-origin", "https://b.example", "--max-message", "1M",
                          "--max-header", "4K", "--max-headers", "50",
                          "--max-connections", "1000", "--high-water", "2M",
                          "--low-water", "1M", "--handshake-timeout", "3",
                          "--ping-interval", "20", "--idle-timeout", "60",
                          "--close-timeout", "2", "--drain-timeout", "10",
                          "--close-spread", "1", "--drain-close-code", "1012",
                          "--log-file", "/var/log/w.log", "--log-level", "debug"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_SERVE);
    ck_assert_uint_eq(cfg.workers, 3);
    ck_assert_uint_eq(cfg.nlisten, 2);
    ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:9000");
    ck_assert_str_eq(cfg.listen[1].text, "[::1]:9001");
    ck_assert_str_eq(cfg.pid_file, "/run/w.pid");
    ck_assert_str_eq(cfg.stats_name, "edge");
    ck_assert_str_eq(cfg.path, "/echo");
    ck_assert_str_eq(cfg.echo_prefix, "> ");
    ck_assert_uint_eq(cfg.echo_prefix_len, 2);
    ck_assert_uint_eq(cfg.norigins, 2);
    ck_assert_str_eq(cfg.origins[0], "https://a.example");
    ck_assert_str_eq(cfg.origins[1], "https://b.example");
    ck_assert_uint_eq(cfg.max_message, 1u << 20);
    ck_assert_uint_eq(cfg.max_header, 4096);
    ck_assert_uint_eq(cfg.max_headers, 50);
    ck_assert_uint_eq(cfg.max_connections, 1000);
    ck_assert_uint_eq(cfg.high_water, 2u << 20);
    ck_assert_uint_eq(cfg.low_water, 1u << 20);
    ck_assert_double_eq(cfg.handshake_timeout, 3);
    ck_assert_double_eq(cfg.ping_interval, 20);
    ck_assert_double_eq(cfg.idle_timeout, 60);
    ck_assert_double_eq(cfg.close_timeout, 2);
    ck_assert_double_eq(cfg.drain_timeout, 10);
    ck_assert_double_eq(cfg.close_spread, 1);
    ck_assert_uint_eq(cfg.drain_close_code, 1012);
    ck_assert_str_eq(cfg.log_file, "/var/log/w.log");
    ck_assert_int_eq(cfg.log_level, WSE_LOG_DEBUG);
}
END_TEST

START_TEST(short_options_and_long_forms)
{
    ck_assert_int_eq(LOAD("-w", "7", "-l", "10.0.0.1:81"), 0);
    ck_assert_uint_eq(cfg.workers, 7);
    ck_assert_uint_eq(cfg.nlisten, 1);
    ck_assert_str_eq(cfg.listen[0].host, "10.0.0.1");

    ck_assert_int_eq(LOAD("-w9", "--listen=10.0.0.2:82", "--path=/x"), 0);
    ck_assert_uint_eq(cfg.workers, 9);
    ck_assert_str_eq(cfg.listen[0].host, "10.0.0.2");
    ck_assert_str_eq(cfg.path, "/x");

    /* An exact name wins over a longer one it prefixes; unique prefixes work. */
    ck_assert_int_eq(LOAD("--max-header", "512", "--max-headers", "7", "--work", "2"), 0);
    ck_assert_uint_eq(cfg.max_header, 512);
    ck_assert_uint_eq(cfg.max_headers, 7);
    ck_assert_uint_eq(cfg.workers, 2);

    /* A scalar given twice: the last wins. */
    ck_assert_int_eq(LOAD("-w", "2", "--workers", "5"), 0);
    ck_assert_uint_eq(cfg.workers, 5);
}
END_TEST

START_TEST(command_line_syntax_errors)
{
    ck_fails_with(LOAD("--bogus"), "unknown option '--bogus' (see --help)");
    ck_fails_with(LOAD("--bogus=3"), "unknown option '--bogus' (see --help)");
    ck_fails_with(LOAD("-x"), "unknown option '-x' (see --help)");
    ck_fails_with(LOAD("-tx"), "unknown option '-x' (see --help)");
    ck_fails_with(LOAD("--workers"), "--workers: missing value, expected a whole number from 1 to 1024");
    ck_fails_with(LOAD("-w"), "--workers: missing value, expected a whole number from 1 to 1024");
    ck_fails_with(LOAD("--path"), "--path: missing value, expected a path like /websocket: "
                  "starting with '/', without spaces, '?' or '#'");
    ck_fails_with(LOAD("--help=yes"), "--help: takes no value");
    ck_fails_with(LOAD("foo"), "unexpected argument 'foo' (see --help)");
    ck_fails_with(LOAD("-w", "2", "foo", "-w", "3"), "unexpected argument 'foo' (see --help)");
    ck_fails_with(LOAD("--", "foo"), "unexpected argument 'foo' (see --help)");
    ck_assert_int_eq(LOAD("-w", "2", "--"), 0);
    ck_fails_with(LOAD("--max", "5"), "ambiguous option '--max': --max-message, --max-header, "
                  "--max-headers, --max-connections, --max-connections-per-ip?");
    ck_fails_with(LOAD("--close-", "5"), "ambiguous option '--close-': --close-timeout, "
                  "--close-spread?");
    ck_fails_with(LOAD("-c", ""), "--config: expected a file name, got ''");
}
END_TEST

/* argv is the caller's: it is neither permuted nor written. */
START_TEST(argv_left_in_order)
{
    char *argv[] = { (char *)"wsechod", (char *)"stray", (char *)"-w", (char *)"3", NULL };
    char *copy[5];

    memcpy(copy, argv, sizeof argv);
    ck_assert_int_eq(wse_config_load(&cfg, 4, argv, err, sizeof err), 2);
    ck_assert_mem_eq(copy, argv, sizeof argv);
    ck_assert_str_eq(argv[1], "stray");
}
END_TEST

/* ------------------------------------------------------------------- numbers */

START_TEST(uint_ranges)
{
    ck_assert_int_eq(LOAD("-w", "1"), 0);
    ck_assert_uint_eq(cfg.workers, 1);
    ck_assert_int_eq(LOAD("-w", "1024"), 0);
    ck_assert_uint_eq(cfg.workers, 1024);
    ck_fails_with(LOAD("-w", "0"), "--workers: expected a whole number from 1 to 1024, got '0'");
    ck_fails_with(LOAD("-w", "1025"), "--workers: expected a whole number from 1 to 1024, got '1025'");
    ck_fails_with(LOAD("--workers", "x"), "--workers: expected a whole number from 1 to 1024, got 'x'");

    static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1k",
                                       "99999999999999999999999" };
    for (size_t i = 0; i < countof(bad); i++)
        ck_assert_msg(LOAD("-w", bad[i]) == 2, "'%s' accepted", bad[i]);

    ck_assert_int_eq(LOAD("--max-headers", "1"), 0);
    ck_assert_uint_eq(cfg.max_headers, 1);
    ck_assert_int_eq(LOAD("--max-headers", "1000"), 0);
    ck_assert_uint_eq(cfg.max_headers, 1000);
    ck_assert_int_eq(LOAD("--max-headers", "0"), 2);
    ck_assert_int_eq(LOAD("--max-headers", "1001"), 2);

    ck_assert_int_eq(LOAD("--max-connections", "1"), 0);
    ck_assert_uint_eq(cfg.max_connections, 1);
    ck_assert_int_eq(LOAD("--max-connections", "10000000"), 0);
    ck_assert_uint_eq(cfg.max_connections, 10000000);
    ck_assert_int_eq(LOAD("--max-connections", "0"), 2);
    ck_fails_with(LOAD("--max-connections", "10000001"),
                  "--max-connections: expected a whole number from 1 to 10000000, got '10000001'");

    ck_assert_int_eq(LOAD("--max-connections-per-ip", "0"), 0);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 0);
    ck_assert_int_eq(LOAD("--max-connections-per-ip", "64"), 0);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 64);
    ck_fails_with(LOAD("--max-connections-per-ip", "-1"),
                  "--max-connections-per-ip: expected a whole number from 0 to 10000000, got '-1'");
}
END_TEST

START_TEST(size_suffixes_and_ranges)
{
    ck_assert_int_eq(LOAD("--max-message", "16777216"), 0);
    ck_assert_uint_eq(cfg.max_message, 16777216);
    ck_assert_int_eq(LOAD("--max-message", "64k"), 0);
    ck_assert_uint_eq(cfg.max_message, 65536);
    ck_assert_int_eq(LOAD("--max-message", "64K"), 0);
    ck_assert_uint_eq(cfg.max_message, 65536);
    ck_assert_int_eq(LOAD("--max-message", "16M"), 0);
    ck_assert_uint_eq(cfg.max_message, 16u << 20);
    ck_assert_int_eq(LOAD("--max-message", "3m"), 0);
    ck_assert_uint_eq(cfg.max_message, 3u << 20);
    ck_assert_int_eq(LOAD("--max-message", "1G"), 0);
    ck_assert_uint_eq(cfg.max_message, 1u << 30);
    ck_assert_int_eq(LOAD("--max-message", "1"), 0);
    ck_assert_uint_eq(cfg.max_message, 1);
    ck_assert_int_eq(LOAD("--max-message", "1T"), 0);
    ck_assert_uint_eq(cfg.max_message, (uint64_t)1 << 40);
    ck_assert_int_eq(LOAD("--max-message", "1099511627776"), 0);
    ck_assert_uint_eq(cfg.max_message, (uint64_t)1 << 40);
    ck_assert_int_eq(LOAD("--max-message", "0"), 2);
    ck_fails_with(LOAD("--max-message", "1099511627777"),
                  "--max-message: expected a size from 1 to 1T (bytes, or with a K, M, G or T suffix), "
                  "got '1099511627777'");

    ck_assert_int_eq(LOAD("--max-header", "256"), 0);
    ck_assert_uint_eq(cfg.max_header, 256);
    ck_assert_int_eq(LOAD("--max-header", "65535"), 0);
    ck_assert_uint_eq(cfg.max_header, 65535);
    ck_assert_int_eq(LOAD("--max-header", "255"), 2);
    ck_fails_with(LOAD("--max-header", "64K"),
                  "--max-header: expected a size from 256 to 65535 (bytes, or with a K, M, G or T suffix), "
                  "got '64K'");

    ck_assert_int_eq(LOAD("--high-water", "4K", "--low-water", "1K"), 0);
    ck_assert_uint_eq(cfg.high_water, 4096);
    ck_assert_int_eq(LOAD("--high-water", "4095", "--low-water", "1K"), 2);
    ck_assert_int_eq(LOAD("--high-water", "1G"), 0);
    ck_assert_uint_eq(cfg.high_water, 1u << 30);
    ck_assert_int_eq(LOAD("--high-water", "1073741825"), 2);
    ck_assert_int_eq(LOAD("--low-water", "0"), 0);
    ck_assert_uint_eq(cfg.low_water, 0);

    static const char *const bad[] = { "", "M", "k16", "1.5M", "16MB", "16 M", "-1", "16X",
                                       "17179869184G", "99999999999999999999" };
    for (size_t i = 0; i < countof(bad); i++)
        ck_assert_msg(LOAD("--max-message", bad[i]) == 2, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(durations)
{
    static const struct { const char *in; double want; } good[] = {
        { "10", 10 }, { "1.5", 1.5 }, { "0.25", 0.25 }, { "500ms", 0.5 }, { "2s", 2 },
        { "1m", 60 }, { "1.5m", 90 }, { "1h", 3600 }, { "86400", 86400 }, { "1440m", 86400 },
        { "0.001", 0.001 },
    };
    for (size_t i = 0; i < countof(good); i++) {
        ck_assert_msg(LOAD("--idle-timeout", good[i].in) == 0, "'%s': %s", good[i].in, err);
        ck_assert_double_eq_tol(cfg.idle_timeout, good[i].want, 1e-12);
    }

    static const char *const bad[] = { "", "soon", "1.", ".5", "-1", "1e3", "10 s", "5min",
                                       "1.5.2", "ms", "0x10", "inf", "nan",
                                       "1234567890123456789012" };
    for (size_t i = 0; i < countof(bad); i++)
        ck_assert_msg(LOAD("--idle-timeout", bad[i]) == 2, "'%s' accepted", bad[i]);

    ck_fails_with(LOAD("--idle-timeout", "soon"),
                  "--idle-timeout: expected a duration like 75, 1.5 or 500ms, got 'soon'");
    ck_fails_with(LOAD("--close-spread", "86401"),
                  "--close-spread: expected a duration from 0 to 86400 seconds, got '86401'");
    ck_assert_int_eq(LOAD("--ping-interval", "86400.5"), 2);
    ck_assert_int_eq(LOAD("--ping-interval", "1441m"), 2);
    ck_assert_int_eq(LOAD("--ping-interval", "25h"), 2);

    /* 0 turns pings and the idle timeout off; drains may be immediate. */
    ck_assert_int_eq(LOAD("--ping-interval", "0", "--idle-timeout", "0",
                          "--drain-timeout", "0", "--close-spread", "0"), 0);
    ck_assert_double_eq(cfg.ping_interval, 0);
    ck_assert_double_eq(cfg.idle_timeout, 0);
    ck_assert_double_eq(cfg.drain_timeout, 0);
    ck_assert_double_eq(cfg.close_spread, 0);

    /* ... but a handshake and a close need some time. */
    ck_fails_with(LOAD("--handshake-timeout", "0"),
                  "--handshake-timeout: expected a duration above 0 and at most 86400 seconds, got '0'");
    ck_assert_int_eq(LOAD("--handshake-timeout", "0ms"), 2);
    ck_assert_int_eq(LOAD("--close-timeout", "0"), 2);
    ck_assert_int_eq(LOAD("--handshake-timeout", "1ms", "--close-timeout", "86400"), 0);
    ck_assert_double_eq(cfg.handshake_timeout, 0.001);
    ck_assert_double_eq(cfg.close_timeout, 86400);
    ck_assert_int_eq(LOAD("--close-timeout", "86401"), 2);
    ck_assert_int_eq(LOAD("--drain-timeout", "86400", "--close-spread", "86400"), 0);
    ck_assert_int_eq(LOAD("--drain-timeout", "86401"), 2);
}
END_TEST

START_TEST(enums)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (size_t i = 0; i < countof(names); i++) {
        ck_assert_int_eq(LOAD("--log-level", names[i]), 0);
        ck_assert_int_eq(cfg.log_level, (int)i);
        ck_assert_str_eq(wse_log_level_name(cfg.log_level), names[i]);
    }
    ck_fails_with(LOAD("--log-level", "warning"),
                  "--log-level: expected error, warn, info or debug, got 'warning'");
    ck_assert_int_eq(LOAD("--log-level", "INFO"), 2);
    ck_assert_int_eq(LOAD("--log-level", ""), 2);

    ck_assert_int_eq(LOAD("--drain-close-code", "1012"), 0);
    ck_assert_uint_eq(cfg.drain_close_code, 1012);
    ck_assert_int_eq(LOAD("--drain-close-code", "1001"), 0);
    ck_assert_uint_eq(cfg.drain_close_code, 1001);
    ck_fails_with(LOAD("--drain-close-code", "1000"),
                  "--drain-close-code: expected 1001 or 1012, got '1000'");
    ck_assert_int_eq(LOAD("--drain-close-code", "1002"), 2);
    ck_assert_int_eq(LOAD("--drain-close-code", "1011"), 2);
}
END_TEST

/* ------------------------------------------------------------------- strings */

START_TEST(booleans)
{
    ck_assert_int_eq(LOAD0(), 0);
    ck_assert_uint_eq(cfg.proxy_protocol, 0);
    ck_assert_int_eq(LOAD("--proxy-protocol"), 0);
    ck_assert_uint_eq(cfg.proxy_protocol, 1);
    static const char *const yes[] = {"yes", "on", "true", "1"};
    static const char *const no[] = {"no", "off", "false", "0"};
    char text[64];
    for (size_t i = 0; i < 4; i++) {
        snprintf(text, sizeof text, "proxy_protocol = %s\n", yes[i]);
        ck_assert_int_eq(LOADF(text), 0);
        ck_assert_uint_eq(cfg.proxy_protocol, 1);
        snprintf(text, sizeof text, "proxy-protocol = %s\n", no[i]);
        ck_assert_int_eq(LOADF(text), 0);
        ck_assert_uint_eq(cfg.proxy_protocol, 0);
    }
    /* The command line's bare flag wins over the file's "no". */
    ck_assert_int_eq(LOADFA("proxy-protocol = no\n", "--proxy-protocol"), 0);
    ck_assert_uint_eq(cfg.proxy_protocol, 1);
    ck_assert_int_ne(LOADF("proxy-protocol = maybe\n"), 0);
    ck_assert_ptr_nonnull(strstr(err, "proxy-protocol: expected yes or no, got 'maybe'"));
    /* A flag takes no value on the command line. */
    ck_assert_int_ne(LOAD("--proxy-protocol=yes"), 0);
}
END_TEST

START_TEST(strings)
{
    char long_path[300];

    ck_assert_int_eq(LOAD("--path", "/"), 0);
    ck_assert_str_eq(cfg.path, "/");
    ck_assert_int_eq(LOAD("--path", "/a/b-c_d.e"), 0);
    ck_assert_str_eq(cfg.path, "/a/b-c_d.e");
    ck_fails_with(LOAD("--path", "websocket"), "--path: expected a path like /websocket: "
                  "starting with '/', without spaces, '?' or '#', got 'websocket'");
    ck_assert_int_eq(LOAD("--path", ""), 2);
    ck_assert_int_eq(LOAD("--path", "/a b"), 2);
    ck_assert_int_eq(LOAD("--path", "/a\tb"), 2);
    ck_assert_int_eq(LOAD("--path", "/a?b"), 2);
    ck_assert_int_eq(LOAD("--path", "/a#b"), 2);

    /* 255 bytes fit the field, 256 do not. */
    long_path[0] = '/';
    memset(long_path + 1, 'a', 254);
    long_path[255] = '\0';
    ck_assert_int_eq(LOAD("--path", long_path), 0);
    ck_assert_uint_eq(strlen(cfg.path), 255);
    long_path[255] = 'a';
    long_path[256] = '\0';
    ck_assert_int_eq(LOAD("--path", long_path), 2);
    ck_assert_ptr_nonnull(strstr(err, "--path: expected at most 255 bytes, got '/aaaa"));
    ck_assert_ptr_nonnull(strstr(err, "...'"));

    ck_assert_int_eq(LOAD("--echo-prefix", "You said: "), 0);
    ck_assert_str_eq(cfg.echo_prefix, "You said: ");
    ck_assert_uint_eq(cfg.echo_prefix_len, 10);
    ck_assert_int_eq(LOAD("--echo-prefix", "\xc3\xa9t\xc3\xa9: "), 0);
    ck_assert_uint_eq(cfg.echo_prefix_len, 7);
    ck_fails_with(LOAD("--echo-prefix", "bad \xc3"), "--echo-prefix: expected UTF-8 text, got 'bad \xc3'");

    ck_assert_int_eq(LOAD("--log-file", "/tmp/x.log", "--pid-file", "/tmp/x.pid"), 0);
    ck_assert_str_eq(cfg.log_file, "/tmp/x.log");
    ck_assert_str_eq(cfg.pid_file, "/tmp/x.pid");

    ck_assert_int_eq(LOAD("--stats-name", "edge-1.a_B"), 0);
    ck_assert_str_eq(cfg.stats_name, "edge-1.a_B");
    ck_assert_int_eq(LOAD("--stats-name", "a/b"), 2);
    ck_assert_int_eq(LOAD("--stats-name", "../x"), 2);
    ck_assert_int_eq(LOAD("--stats-name", "-x"), 2);

    ck_assert_int_eq(LOAD("--allow-origin", ""), 2);
    ck_assert_int_eq(LOAD("--allow-origin", "https://a b"), 2);
}
END_TEST

/* Error messages stay on one line whatever the value holds. */
START_TEST(error_shows_controls_as_question_marks)
{
    ck_fails_with(LOAD("-w", "1\n2"), "--workers: expected a whole number from 1 to 1024, got '1?2'");
}
END_TEST

/* -------------------------------------------------------------------- listen */

START_TEST(listen_forms)
{
    static const struct { const char *in, *host; unsigned port; int family; } good[] = {
        { "1.2.3.4:80", "1.2.3.4", 80, AF_INET },
        { "127.0.0.1:1", "127.0.0.1", 1, AF_INET },
        { "0.0.0.0:65535", "0.0.0.0", 65535, AF_INET },
        { "*:8000", "0.0.0.0", 8000, AF_INET },
        { ":8000", "0.0.0.0", 8000, AF_INET },
        { "[::1]:8000", "::1", 8000, AF_INET6 },
        { "[::]:8000", "::", 8000, AF_INET6 },
        { "[2001:db8:0:0::1]:443", "2001:db8::1", 443, AF_INET6 },
        { "[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80, AF_INET6 },
    };
    for (size_t i = 0; i < countof(good); i++) {
        ck_assert_msg(LOAD("--listen", good[i].in) == 0, "'%s': %s", good[i].in, err);
        ck_assert_uint_eq(cfg.nlisten, 1);
        ck_assert_str_eq(cfg.listen[0].text, good[i].in);
        ck_assert_str_eq(cfg.listen[0].host, good[i].host);
        ck_assert_uint_eq(cfg.listen[0].port, good[i].port);
        ck_assert_int_eq(cfg.listen[0].family, good[i].family);
    }
}
END_TEST

START_TEST(listen_rejects)
{
    static const char *const bad[] = {
        "", "8000", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:80x",
        "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3:80", "256.1.1.1:80", "01.2.3.4:80", "localhost:8000",
        "example.com:80", "::1:8000", "[::1]8000", "[::1]", "[::1", "[zz]:80", "[]:80",
        "[1.2.3.4]:80", "[fe80::1%lo]:80", "**:80", " 1.2.3.4:80", "1.2.3.4:80 ",
        "1.2.3.4:0000080",
    };
    for (size_t i = 0; i < countof(bad); i++)
        ck_assert_msg(LOAD("--listen", bad[i]) == 2, "'%s' accepted", bad[i]);

    ck_fails_with(LOAD("-l", "localhost:8000"),
                  "--listen: expected a numeric IPv4 address, '*' or a bracketed IPv6 address "
                  "(host names are not resolved) (or off), got 'localhost:8000'");
    ck_fails_with(LOAD("-l", "::1:8000"),
                  "--listen: expected an IPv6 address in brackets, like [::1]:8000 (or off), "
                  "got '::1:8000'");
    ck_fails_with(LOAD("-l", "1.2.3.4:0"),
                  "--listen: expected a port from 1 to 65535 after the ':' (or off), got '1.2.3.4:0'");
    ck_fails_with(LOAD("-l", "1.2.3.4"),
                  "--listen: expected a numeric ADDRESS:PORT like 0.0.0.0:8000, [::1]:8000 or *:8000 (or off), "
                  "got '1.2.3.4'");
    ck_fails_with(LOAD("-l", "[zz]:80"),
                  "--listen: expected a numeric IPv6 address inside the brackets (or off), got '[zz]:80'");
}
END_TEST

START_TEST(listen_repeat_and_duplicates)
{
    const char *args[2 * (WSE_MAX_LISTEN + 1) + 1];
    char addrs[WSE_MAX_LISTEN + 1][32];
    size_t n = 0;

    /* Repeated --listen accumulate; the first one replaces the default. */
    ck_assert_int_eq(LOAD("-l", "10.0.0.1:80", "-l", "10.0.0.1:81", "-l", "[::]:80"), 0);
    ck_assert_uint_eq(cfg.nlisten, 3);
    ck_assert_str_eq(cfg.listen[0].text, "10.0.0.1:80");
    ck_assert_str_eq(cfg.listen[1].text, "10.0.0.1:81");
    ck_assert_str_eq(cfg.listen[2].text, "[::]:80");

    /* The IPv4 and IPv6 wildcards are different sockets. */
    ck_assert_int_eq(LOAD("-l", "0.0.0.0:80", "-l", "[::]:80"), 0);
    ck_assert_uint_eq(cfg.nlisten, 2);

    /* The same address twice, however spelled, is an error. */
    ck_fails_with(LOAD("-l", "0.0.0.0:80", "-l", "*:80"),
                  "--listen: duplicate address '*:80' (already listening on '0.0.0.0:80')");
    ck_assert_int_eq(LOAD("-l", "[::0]:80", "-l", "[::]:80"), 2);
    ck_assert_int_eq(LOAD("-l", "1.2.3.4:80", "-l", "1.2.3.4:80"), 2);
    /* Giving the default address explicitly is not a duplicate of the default. */
    ck_assert_int_eq(LOAD("-l", "0.0.0.0:8000"), 0);
    ck_assert_uint_eq(cfg.nlisten, 1);

    /* Up to WSE_MAX_LISTEN, not one more. */
    for (unsigned i = 0; i < WSE_MAX_LISTEN + 1; i++) {
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%u", 9000 + i);
        args[n++] = "-l";
        args[n++] = addrs[i];
    }
    args[n] = NULL;
    args[n - 2] = NULL;
    ck_assert_int_eq(load_args(&cfg, args), 0);
    ck_assert_uint_eq(cfg.nlisten, WSE_MAX_LISTEN);
    ck_assert_str_eq(cfg.listen[WSE_MAX_LISTEN - 1].text, addrs[WSE_MAX_LISTEN - 1]);
    args[n - 2] = "-l";
    ck_fails_with(load_args(&cfg, args),
                  "--listen: at most 16 addresses, got one more: '127.0.0.1:9016'");
}
END_TEST

/* TLS addresses join listen[] after the plain ones, marked; the files are
 * not read here (-t and the master read them, master.c). */
START_TEST(tls_listen_merged_and_checked)
{
    ck_assert_int_eq(LOAD("-l", "127.0.0.1:80", "--tls-listen", "127.0.0.1:443", "--tls-cert",
                          "a.pem", "--tls-key", "a.key", "--tls-cert", "b.pem", "--tls-key",
                          "b.key", "--tls-groups", "X25519"), 0);
    ck_assert_uint_eq(cfg.nlisten, 2);
    ck_assert(!cfg.listen[0].tls);
    ck_assert(cfg.listen[1].tls);
    ck_assert_str_eq(cfg.listen[1].text, "127.0.0.1:443");
    ck_assert_uint_eq(cfg.ntls_cert, 2);
    ck_assert_str_eq(cfg.tls_key[1], "b.key");
    ck_assert_str_eq(cfg.tls_groups, "X25519");

    /* TLS only. */
    ck_assert_int_eq(LOAD("-l", "off", "--tls-listen", "[::1]:443", "--tls-cert", "a.pem",
                          "--tls-key", "a.key"), 0);
    ck_assert_uint_eq(cfg.nlisten, 1);
    ck_assert(cfg.listen[0].tls);

    ck_fails_with(LOAD("--tls-listen", "127.0.0.1:443"),
                  "tls-listen needs a certificate: give tls-cert and tls-key");
    ck_fails_with(LOAD("--tls-listen", "127.0.0.1:443", "--tls-cert", "a.pem"),
                  "tls-cert and tls-key come in pairs: 1 certificate, 0 keys");
    ck_fails_with(LOAD("--tls-cert", "a.pem", "--tls-key", "a.key"),
                  "tls-cert is given but no tls-listen address serves it");
    ck_fails_with(LOAD("-l", "off"), "no address to serve: give listen or tls-listen");
    ck_fails_with(LOAD("-l", "0.0.0.0:443", "--tls-listen", "127.0.0.1:443", "--tls-cert",
                       "a.pem", "--tls-key", "a.key"),
                  "tls-listen '127.0.0.1:443' overlaps listen address '0.0.0.0:443' (same port): "
                  "one port serves one protocol");
}
END_TEST

START_TEST(origins_up_to_limit)
{
    const char *args[2 * (WSE_MAX_ORIGINS + 1) + 1];
    char names[WSE_MAX_ORIGINS + 1][40];
    size_t n = 0;

    for (unsigned i = 0; i < WSE_MAX_ORIGINS + 1; i++) {
        snprintf(names[i], sizeof names[i], "https://h%u.example", i);
        args[n++] = "--allow-origin";
        args[n++] = names[i];
    }
    args[n] = NULL;
    args[n - 2] = NULL;
    ck_assert_int_eq(load_args(&cfg, args), 0);
    ck_assert_uint_eq(cfg.norigins, WSE_MAX_ORIGINS);
    ck_assert_str_eq(cfg.origins[WSE_MAX_ORIGINS - 1], names[WSE_MAX_ORIGINS - 1]);
    args[n - 2] = "--allow-origin";
    ck_fails_with(load_args(&cfg, args),
                  "--allow-origin: at most 32 values, got one more: 'https://h32.example'");
}
END_TEST

/* --------------------------------------------------------------- config file */

START_TEST(file_syntax)
{
    ck_assert_int_eq(LOADF("# a comment\n"
                           "\n"
                           "   \t\n"
                           "   # an indented comment\n"
                           "workers = 3\n"
                           "  max_message\t=\t2M   # trailing comment\n"
                           "idle_timeout=500ms\n"
                           "pid-file = /tmp/a#b\n"
                           "log_file = /tmp/log # comment\n"
                           "echo_prefix = \"You said: \"\n"
                           "stats_name = \"edge\"   # quoted, then a comment\n"
                           "drain-close-code = 1012\r\n"
                           "path=/p\n"
                           "path = /q\n"
                           "allow_origin = https://a.example\n"
                           "allow-origin = https://b.example\n"
                           "listen = 10.0.0.1:80\n"
                           "listen = [::1]:81\n"
                           "log_level = debug"), 0);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(cfg.config_file, conf_path);
    ck_assert_uint_eq(cfg.workers, 3);
    ck_assert_uint_eq(cfg.max_message, 2u << 20);
    ck_assert_double_eq(cfg.idle_timeout, 0.5);
    ck_assert_str_eq(cfg.pid_file, "/tmp/a#b");
    ck_assert_str_eq(cfg.log_file, "/tmp/log");
    ck_assert_str_eq(cfg.echo_prefix, "You said: ");
    ck_assert_uint_eq(cfg.echo_prefix_len, 10);
    ck_assert_str_eq(cfg.stats_name, "edge");
    ck_assert_uint_eq(cfg.drain_close_code, 1012);
    ck_assert_str_eq(cfg.path, "/q");
    ck_assert_uint_eq(cfg.norigins, 2);
    ck_assert_str_eq(cfg.origins[0], "https://a.example");
    ck_assert_str_eq(cfg.origins[1], "https://b.example");
    ck_assert_uint_eq(cfg.nlisten, 2);
    ck_assert_str_eq(cfg.listen[0].text, "10.0.0.1:80");
    ck_assert_str_eq(cfg.listen[1].text, "[::1]:81");
    ck_assert_int_eq(cfg.log_level, WSE_LOG_DEBUG);
}
END_TEST

START_TEST(file_quoting)
{
    ck_assert_int_eq(LOADF("echo_prefix = \"  a \\\"quoted\\\" # not a comment \\\\ \"  # comment\n"), 0);
    ck_assert_str_eq(cfg.echo_prefix, "  a \"quoted\" # not a comment \\ ");
    ck_assert_uint_eq(cfg.echo_prefix_len, strlen(cfg.echo_prefix));

    ck_assert_int_eq(LOADF("echo_prefix = \"\"\n"), 0);
    ck_assert_str_eq(cfg.echo_prefix, "");
    /* Any value may be quoted. */
    ck_assert_int_eq(LOADF("workers = \"4\"\n"), 0);
    ck_assert_uint_eq(cfg.workers, 4);
    /* Empty values: fine for a string that may be empty ... */
    ck_assert_int_eq(LOADF("log_file =\npid_file = # none\n"), 0);
    ck_assert_str_eq(cfg.log_file, "");
    ck_assert_str_eq(cfg.pid_file, "");
    /* ... not for a number. */
    ck_assert_int_eq(LOADF("workers =\n"), 2);
    ck_assert_str_eq(err, at_file("1: workers: expected a whole number from 1 to 1024, got ''"));

    ck_fails_with(LOADF("workers = 2\necho_prefix = \"abc\n"),
                  at_file("2: echo-prefix: expected a closing '\"'"));
    ck_fails_with(LOADF("echo_prefix = \"a\\nb\"\n"),
                  at_file("1: echo-prefix: expected \\\" or \\\\ after a backslash inside quotes"));
    ck_fails_with(LOADF("echo_prefix = \"a\" b\n"),
                  at_file("1: echo-prefix: expected only a comment after the closing '\"'"));
}
END_TEST

START_TEST(file_errors)
{
    ck_fails_with(LOADF("workers = 2\n\nnope = 1\n"), at_file("3: unknown key 'nope'"));
    ck_fails_with(LOADF("workers 4\n"), at_file("1: expected 'key = value', got 'workers 4'"));
    ck_fails_with(LOADF("  = 4\n"), at_file("1: expected 'key = value', got '= 4'"));
    ck_fails_with(LOADF("# idle\n\nidle-timeout = soon\n"),
                  at_file("3: idle-timeout: expected a duration like 75, 1.5 or 500ms, got 'soon'"));
    /* The key is named in its canonical form, however the file spells it. */
    ck_fails_with(LOADF("idle_timeout = soon # later\n"),
                  at_file("1: idle-timeout: expected a duration like 75, 1.5 or 500ms, got 'soon'"));
    ck_fails_with(LOADF("config = /etc/other.conf\n"),
                  at_file("1: unknown key 'config' (a command-line option only)"));
    ck_fails_with(LOADF("Workers = 2\n"), at_file("1: unknown key 'Workers'"));
    ck_fails_with(LOADF("listen = localhost:80\n"),
                  at_file("1: listen: expected a numeric IPv4 address, '*' or a bracketed IPv6 "
                          "address (host names are not resolved) (or off), got 'localhost:80'"));
    ck_fails_with(LOADF("listen = 1.2.3.4:80\nlisten = 1.2.3.4:80\n"),
                  at_file("2: listen: duplicate address '1.2.3.4:80' (already listening on '1.2.3.4:80')"));

    ck_fails_with(LOAD("-c", "/nonexistent/wsechod.conf"),
                  "cannot open config file '/nonexistent/wsechod.conf': No such file or directory");
    ck_fails_with(LOAD("-c", "/tmp"), "cannot read config file '/tmp': Is a directory");
}
END_TEST

/* A line of n bytes: a comment ("# xxx...") followed by end. */
static char *comment_line(size_t n, const char *end)
{
    char *s = malloc(n + strlen(end) + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, 'x', n);
    s[0] = '#';
    strcpy(s + n, end);
    return s;
}

/* A wrong -c (a log file, /dev/zero, a FIFO) must not take the master's
 * memory or time: lines and files are capped, only regular files are read. */
START_TEST(file_caps_and_types)
{
    char *ok = comment_line(4096, "\nworkers = 3\n");
    ck_assert_int_eq(LOADF(ok), 0);
    ck_assert_uint_eq(cfg.workers, 3);
    free(ok);

    char *bad = comment_line(4097, "\n");
    ck_fails_with(LOADF(bad), at_file("1: line longer than 4096 bytes"));
    free(bad);
    /* No newline at all: refused at the cap, not read to the end. */
    bad = comment_line(100000, "");
    ck_fails_with(LOADFA(bad, "-w", "2"), at_file("1: line longer than 4096 bytes"));
    free(bad);

    /* 1 MiB exactly is read; one byte more is refused where it is. */
    size_t total = 1u << 20, lines = total / 1024;
    char *big = malloc(total + 2);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < lines; i++) {
        memset(big + i * 1024, ' ', 1023);
        big[i * 1024] = '#';
        big[i * 1024 + 1023] = '\n';
    }
    big[total] = '\0';
    ck_assert_int_eq(LOADF(big), 0);
    big[total] = '#';
    big[total + 1] = '\0';
    ck_fails_with(LOADF(big), at_file("1025: config file larger than 1048576 bytes (1 MiB)"));
    free(big);

    int fd;
    /* A NUL byte (write_conf stops at it: the file is written here). */
    write_conf("workers = 2\n");
    fd = open(conf_path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "x\0y\n", 4), 4);
    close(fd);
    ck_fails_with(LOAD("-c", conf_path), at_file("2: unexpected NUL byte"));
    unlink(conf_path);
    ck_fails_with(LOAD("-t", "-c", "/dev/zero"), "config file '/dev/zero' is not a regular file");

    /* A FIFO without a writer: refused at once, not waited on. */
    strcpy(conf_path, "/tmp/wse_test_fifo_XXXXXX");
    fd = mkstemp(conf_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(conf_path);
    ck_assert_int_eq(mkfifo(conf_path, 0600), 0);
    char want[128];
    snprintf(want, sizeof want, "config file '%s' is not a regular file", conf_path);
    ck_fails_with(LOAD("-c", conf_path), want);
    unlink(conf_path);
}
END_TEST

START_TEST(file_every_key_with_underscores)
{
    /* Every option but the command-line-only ones is a key, in either spelling. */
    ck_assert_int_eq(LOADF("workers = 2\nlisten = *:81\npid_file = /tmp/p\nstats_name = s\n"
                           "path = /w\necho_prefix = e\nallow_origin = https://o\n"
                           "max_message = 1K\nmax_header = 1K\nmax_headers = 9\n"
                           "max_connections = 9\nhigh_water = 8K\nlow_water = 4K\n"
                           "handshake_timeout = 1\nping_interval = 2\nidle_timeout = 3\n"
                           "close_timeout = 4\ndrain_timeout = 5\nclose_spread = 6\n"
                           "drain_close_code = 1012\nlog_file = /tmp/l\nlog_level = warn\n"), 0);
    ck_assert_uint_eq(cfg.workers, 2);
    ck_assert_str_eq(cfg.listen[0].text, "*:81");
    ck_assert_str_eq(cfg.pid_file, "/tmp/p");
    ck_assert_str_eq(cfg.stats_name, "s");
    ck_assert_str_eq(cfg.path, "/w");
    ck_assert_str_eq(cfg.echo_prefix, "e");
    ck_assert_str_eq(cfg.origins[0], "https://o");
    ck_assert_uint_eq(cfg.max_message, 1024);
    ck_assert_uint_eq(cfg.max_header, 1024);
    ck_assert_uint_eq(cfg.max_headers, 9);
    ck_assert_uint_eq(cfg.max_connections, 9);
    ck_assert_uint_eq(cfg.high_water, 8192);
    ck_assert_uint_eq(cfg.low_water, 4096);
    ck_assert_double_eq(cfg.handshake_timeout, 1);
    ck_assert_double_eq(cfg.ping_interval, 2);
    ck_assert_double_eq(cfg.idle_timeout, 3);
    ck_assert_double_eq(cfg.close_timeout, 4);
    ck_assert_double_eq(cfg.drain_timeout, 5);
    ck_assert_double_eq(cfg.close_spread, 6);
    ck_assert_uint_eq(cfg.drain_close_code, 1012);
    ck_assert_str_eq(cfg.log_file, "/tmp/l");
    ck_assert_int_eq(cfg.log_level, WSE_LOG_WARN);
}
END_TEST

START_TEST(command_line_beats_file)
{
    /* Wherever -c stands, the command line wins. */
    ck_assert_int_eq(LOADFA("workers = 3\nidle_timeout = 9\n", "-w", "5"), 0);
    ck_assert_uint_eq(cfg.workers, 5);
    ck_assert_double_eq(cfg.idle_timeout, 9);

    write_conf("workers = 3\nmax_headers = 42\n");
    ck_assert_int_eq(LOAD("-w", "6", "-c", conf_path), 0);
    unlink(conf_path);
    ck_assert_uint_eq(cfg.workers, 6);
    ck_assert_uint_eq(cfg.max_headers, 42);

    /* A bad file value fails even if the command line would override it. */
    ck_assert_int_eq(LOADFA("workers = 0\n", "-w", "5"), 2);

    /* -c twice: the last one is read. */
    write_conf("workers = 11\n");
    ck_assert_int_eq(LOAD("-c", "/nonexistent/x.conf", "-c", conf_path), 0);
    unlink(conf_path);
    ck_assert_uint_eq(cfg.workers, 11);
}
END_TEST

START_TEST(lists_replace_not_append)
{
    /* The file's listens replace the default ... */
    ck_assert_int_eq(LOADF("listen = 10.0.0.1:80\nlisten = 10.0.0.1:81\n"), 0);
    ck_assert_uint_eq(cfg.nlisten, 2);
    ck_assert_str_eq(cfg.listen[0].text, "10.0.0.1:80");
    ck_assert_str_eq(cfg.listen[1].text, "10.0.0.1:81");

    /* ... and the command line's replace the file's (so repeating one is no duplicate). */
    ck_assert_int_eq(LOADFA("listen = 10.0.0.1:80\nlisten = 10.0.0.1:81\n",
                            "-l", "10.0.0.1:81", "-l", "[::1]:82"), 0);
    ck_assert_uint_eq(cfg.nlisten, 2);
    ck_assert_str_eq(cfg.listen[0].text, "10.0.0.1:81");
    ck_assert_str_eq(cfg.listen[1].text, "[::1]:82");

    /* The command line without --listen keeps the file's. */
    ck_assert_int_eq(LOADFA("listen = 10.0.0.1:80\n", "-w", "2"), 0);
    ck_assert_uint_eq(cfg.nlisten, 1);
    ck_assert_str_eq(cfg.listen[0].text, "10.0.0.1:80");

    /* The same for origins. */
    ck_assert_int_eq(LOADFA("allow_origin = https://a\nallow_origin = https://b\n",
                            "--allow-origin", "https://c"), 0);
    ck_assert_uint_eq(cfg.norigins, 1);
    ck_assert_str_eq(cfg.origins[0], "https://c");
    ck_assert_int_eq(LOADF("allow_origin = https://a\nallow_origin = https://b\n"), 0);
    ck_assert_uint_eq(cfg.norigins, 2);
}
END_TEST

START_TEST(low_water_below_high_water)
{
    ck_fails_with(LOAD("--low-water", "1M"), "low-water (1M) must be less than high-water (1M)");
    ck_fails_with(LOAD("--high-water", "64K", "--low-water", "65537"),
                  "low-water (65537) must be less than high-water (64K)");
    ck_assert_int_eq(LOAD("--high-water", "64K", "--low-water", "65535"), 0);
    /* Checked on the merged result: the file's high-water, the command line's low-water. */
    ck_assert_int_eq(LOADFA("high_water = 8K\n", "--low-water", "4K"), 0);
    ck_assert_uint_eq(cfg.high_water, 8192);
    ck_assert_uint_eq(cfg.low_water, 4096);
    ck_fails_with(LOADF("high_water = 128K\n"),
                  "low-water (256K) must be less than high-water (128K)");
}
END_TEST

/* --------------------------------------------------------- reload semantics */

START_TEST(load_twice_resets_getopt)
{
    ck_assert_int_eq(LOAD("-w", "2", "-l", "1.1.1.1:80"), 0);
    ck_assert_uint_eq(cfg.workers, 2);
    ck_assert_int_eq(LOAD("-w", "3"), 0);
    ck_assert_uint_eq(cfg.workers, 3);
    ck_assert_str_eq(cfg.listen[0].text, "0.0.0.0:8000");

    /* Failures part-way through argv leave getopt mid-word: the next load still works. */
    ck_assert_int_eq(LOAD("-tx", "-w", "2"), 2);
    ck_assert_int_eq(LOAD("-w", "2", "-w"), 2);
    ck_assert_int_eq(LOAD("-w", "4", "-t"), 0);
    ck_assert_uint_eq(cfg.workers, 4);
    ck_assert_int_eq(cfg.mode, WSE_MODE_TEST);

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(LOADFA("workers = 3\n", "--idle-timeout", "1"), 0);
        ck_assert_uint_eq(cfg.workers, 3);
        ck_assert_double_eq(cfg.idle_timeout, 1);
        ck_assert_int_eq(cfg.mode, WSE_MODE_SERVE);
    }
    ck_assert_int_eq(opterr, 1);        /* getopt's message switch is restored */
}
END_TEST

START_TEST(out_untouched_on_failure)
{
    const char *const *const bad[] = {
        (const char *const[]){ "-w", "0", NULL },
        (const char *const[]){ "--bogus", NULL },
        (const char *const[]){ "stray", NULL },
        (const char *const[]){ "-c", "/nonexistent/x.conf", NULL },
        (const char *const[]){ "--low-water", "2M", NULL },
        (const char *const[]){ "-l", "1.2.3.4:80", "-l", "1.2.3.4:80", NULL },
        (const char *const[]){ "-t", "-s", "reload", NULL },
    };
    struct wse_config mark;

    memset(&mark, 0x5a, sizeof mark);
    for (size_t i = 0; i < countof(bad); i++) {
        memcpy(&cfg, &mark, sizeof cfg);
        ck_assert_int_eq(load_args(&cfg, bad[i]), 2);
        ck_assert_msg(memcmp(&cfg, &mark, sizeof cfg) == 0, "case %zu wrote *out", i);
        ck_assert_msg(err[0] != '\0' && strchr(err, '\n') == NULL, "case %zu: '%s'", i, err);
    }

    memcpy(&cfg, &mark, sizeof cfg);
    ck_assert_int_eq(LOADF("workers = 2\nbad line\n"), 2);
    ck_assert(memcmp(&cfg, &mark, sizeof cfg) == 0);
}
END_TEST

START_TEST(small_error_buffer)
{
    char small[8];
    char *argv[] = { (char *)"wsechod", (char *)"-w", (char *)"0", NULL };

    ck_assert_int_eq(wse_config_load(&cfg, 3, argv, small, sizeof small), 2);
    ck_assert_str_eq(small, "--worke");
    ck_assert_int_eq(wse_config_load(&cfg, 3, argv, NULL, 0), 2);
}
END_TEST

/* --------------------------------------------------------------------- modes */

START_TEST(modes)
{
    ck_assert_int_eq(LOAD("-t"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_TEST);
    ck_assert_int_eq(LOAD("--test-config", "-w", "2"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_TEST);
    ck_assert_uint_eq(cfg.workers, 2);

    static const char *const sigs[] = { "reload", "quit", "stop", "reopen" };
    for (size_t i = 0; i < countof(sigs); i++) {
        ck_assert_int_eq(LOAD("-s", sigs[i]), 0);
        ck_assert_int_eq(cfg.mode, WSE_MODE_SIGNAL);
        ck_assert_str_eq(cfg.signal_name, sigs[i]);
    }
    ck_fails_with(LOAD("-s", "hup"), "--signal: expected reload, quit, stop, reopen or upgrade, got 'hup'");
    ck_fails_with(LOAD("--signal"),
                  "--signal: missing value, expected reload, quit, stop, reopen or upgrade");
    ck_fails_with(LOAD("-t", "-s", "stop"), "--signal: cannot be combined with --test-config");

    /* -s reads the file too: it needs the pid file. */
    ck_assert_int_eq(LOADFA("pid_file = /tmp/w.pid\n", "-s", "quit"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_SIGNAL);
    ck_assert_str_eq(cfg.pid_file, "/tmp/w.pid");

    /* -t checks the file and reports its errors. */
    ck_assert_int_eq(LOADFA("workers = x\n", "-t"), 2);

    ck_assert_int_eq(LOAD("-V"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_VERSION);
    ck_assert_int_eq(LOAD("--version"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_VERSION);
}
END_TEST

START_TEST(help_mode)
{
    ck_assert_int_eq(LOAD("-h"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_HELP);
    ck_assert_int_eq(LOAD("--help"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_HELP);
    /* Help beats the other modes and does not read the file. */
    ck_assert_int_eq(LOAD("-t", "-h", "-c", "/nonexistent/x.conf"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_HELP);
    ck_assert_int_eq(LOAD("-V", "-h"), 0);
    ck_assert_int_eq(cfg.mode, WSE_MODE_HELP);
    /* A malformed command line is still an error. */
    ck_assert_int_eq(LOAD("-h", "--bogus"), 2);
}
END_TEST

START_TEST(usage_text)
{
    static const char *const must[] = {
        "-c, --config FILE", "-t, --test-config", "-s, --signal NAME", "-h, --help",
        "-V, --version", "-w, --workers N", "-l, --listen ADDR:PORT", "--pid-file FILE",
        "--stats-name NAME", "--path PATH", "--echo-prefix STR", "--allow-origin ORIGIN",
        "--max-message SIZE", "--max-header SIZE", "--max-headers N", "--max-connections N",
        "--high-water SIZE", "--low-water SIZE", "--handshake-timeout DURATION",
        "--ping-interval DURATION", "--idle-timeout DURATION", "--close-timeout DURATION",
        "--drain-timeout DURATION", "--close-spread DURATION", "--drain-close-code CODE",
        "--log-file FILE", "--log-level LEVEL",
        "(1 to 1024; default: online CPUs)", "(up to 16; default: 0.0.0.0:8000)",
        "(default: \"/websocket\")", "(1 to 1T bytes; default: 16M)",
        "(256 to 65535 bytes; default: 8K)", "(4K to 1G bytes; default: 1M)",
        "(0 to 86400 s; default: 75)", "(above 0, up to 86400 s; default: 10)",
        "(1001 or 1012; default: 1001)", "(error, warn, info or debug; default: info)",
        "(reload, quit, stop, reopen or upgrade; command line only)", "(default: stderr)",
        "(up to 32; default: any origin)", "(default: \"\")",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(fp);
    wse_config_usage(fp);
    fclose(fp);
    ck_assert_msg(strncmp(text, "Usage: wsechod [OPTIONS]\n       wsechod stats [...]\n", 51) == 0,
                  "%s", text);
    for (size_t i = 0; i < countof(must); i++)
        ck_assert_msg(strstr(text, must[i]) != NULL, "help lacks '%s'", must[i]);
    free(text);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");

    tcase_add_test(tc, defaults);
    tcase_add_test(tc, log_level_names);
    tcase_add_test(tc, every_option_on_command_line);
    tcase_add_test(tc, short_options_and_long_forms);
    tcase_add_test(tc, command_line_syntax_errors);
    tcase_add_test(tc, argv_left_in_order);
    tcase_add_test(tc, uint_ranges);
    tcase_add_test(tc, size_suffixes_and_ranges);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, enums);
    tcase_add_test(tc, booleans);
    tcase_add_test(tc, strings);
    tcase_add_test(tc, error_shows_controls_as_question_marks);
    tcase_add_test(tc, listen_forms);
    tcase_add_test(tc, listen_rejects);
    tcase_add_test(tc, listen_repeat_and_duplicates);
    tcase_add_test(tc, tls_listen_merged_and_checked);
    tcase_add_test(tc, origins_up_to_limit);
    tcase_add_test(tc, file_syntax);
    tcase_add_test(tc, file_quoting);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, file_caps_and_types);
    tcase_add_test(tc, file_every_key_with_underscores);
    tcase_add_test(tc, command_line_beats_file);
    tcase_add_test(tc, lists_replace_not_append);
    tcase_add_test(tc, low_water_below_high_water);
    tcase_add_test(tc, load_twice_resets_getopt);
    tcase_add_test(tc, out_untouched_on_failure);
    tcase_add_test(tc, small_error_buffer);
    tcase_add_test(tc, modes);
    tcase_add_test(tc, help_mode);
    tcase_add_test(tc, usage_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
