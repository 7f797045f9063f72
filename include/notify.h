/*
 * notify.h - systemd's readiness protocol (sd_notify), without libsystemd:
 * one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET.  Without that
 * variable (not started by systemd as Type=notify) every call does nothing.
 */
#ifndef WSE_NOTIFY_H
#define WSE_NOTIFY_H

#include <stdbool.h>

/* Sends the printf-formatted state ("READY=1", "RELOADING=1\nMONOTONIC_USEC=..."). */
void wse_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same with fd attached (SCM_RIGHTS): "FDSTORE=1\nFDNAME=...". */
void wse_notify_fd(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * While muted nothing is sent: a master that is not (or no longer) the
 * service's main process must not speak for it (a new binary before it
 * takes over, the old master after it handed over).
 */
void wse_notify_mute(bool mute);

/* "RELOADING=1" with MONOTONIC_USEC, as Type=notify-reload asks for. */
void wse_notify_reloading(void);

#endif
