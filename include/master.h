/*
 * master.h - the master process: listeners, the worker slots, signals.
 *
 * The master opens every listening socket (one SO_REUSEPORT socket per
 * worker slot and address) and keeps them open for its whole life, so a
 * worker that dies or is replaced never takes the connections waiting in
 * its queue with it.  Signals are read from a signalfd in the master's libev
 * loop: nothing runs in a signal handler.
 */
#ifndef WSE_MASTER_H
#define WSE_MASTER_H

#include "config.h"

/*
 * Serves with cfg until told to stop.  argc/argv are kept for reloads
 * (the command line wins over the re-read file).  Returns the exit status.
 */
int wse_master_run(const struct wse_config *cfg, int argc, char *const argv[]);

/*
 * -t: reads and checks the TLS certificates and keys cfg names, as a start
 * or a reload would.  0 (also without TLS), or -1 with err naming the file.
 */
int wse_master_check_tls(const struct wse_config *cfg, char *err, size_t errlen);

/*
 * -s NAME: sends reload (HUP), quit (QUIT), stop (TERM) or reopen (USR1) to
 * the master whose pid is in cfg->pid_file.  Returns the exit status.
 */
int wse_master_signal(const struct wse_config *cfg);

#endif
