/*
 * main.c - turns argv into a mode and dispatches; nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "stats_cli.h"

#ifndef WSE_VERSION
#define WSE_VERSION "0.1.0"
#endif

int main(int argc, char *argv[])
{
    static struct wse_config cfg;
    char err[512];

    if (argc > 1 && strcmp(argv[1], "stats") == 0)
        return wse_stats_cli(argc - 2, argv + 2);
    if (wse_config_load(&cfg, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "wsechod: %s\n", err);
        return 2;
    }
    switch (cfg.mode) {
    case WSE_MODE_HELP:
        wse_config_usage(stdout);
        return 0;
    case WSE_MODE_VERSION:
        printf("wsechod %s\n", WSE_VERSION);
        return 0;
    case WSE_MODE_TEST:
        printf("wsechod: configuration %s%sis ok\n", cfg.config_file,
               cfg.config_file[0] ? " " : "");
        return 0;
    case WSE_MODE_SIGNAL:
        return wse_master_signal(&cfg);
    case WSE_MODE_SERVE:
        break;
    }
    if (wse_log_open(cfg.log_file, cfg.log_level) < 0) {
        fprintf(stderr, "wsechod: cannot open log file '%s': %s\n", cfg.log_file, strerror(errno));
        return 1;
    }
    return wse_master_run(&cfg, argc, argv);
}
