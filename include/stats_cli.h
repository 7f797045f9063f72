/*
 * stats_cli.h - `wsechod stats`: argv after "stats"; returns the exit status
 * (0, 1 when no segment of a known layout can be read, 2 for bad arguments).
 */
#ifndef WSE_STATS_CLI_H
#define WSE_STATS_CLI_H

int wse_stats_cli(int argc, char *argv[]);

#endif
