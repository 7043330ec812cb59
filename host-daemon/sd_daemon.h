/* SPDX-License-Identifier: MIT */
/*
 * Private header of host-daemon/: the two systemd service protocols ivlinkd
 * speaks, without libsystemd (see sd_notify(3) and systemd.exec(5),
 * $JOURNAL_STREAM). Both are no-ops outside systemd.
 */
#ifndef IVLINK_HOST_DAEMON_SD_DAEMON_H
#define IVLINK_HOST_DAEMON_SD_DAEMON_H

/*
 * Sends state ("READY=1", "STOPPING=1", "STATUS=...", several separated by
 * newlines) to the service manager: one datagram to the AF_UNIX socket
 * $NOTIFY_SOCKET names (a path, or "@name" for the abstract namespace).
 * Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset or empty (not run
 * by systemd, or not Type=notify), -EAFNOSUPPORT (neither '/' nor '@'),
 * -ENAMETOOLONG, or the -errno of socket(2)/sendto(2).
 */
int ivl__sd_notify(const char *state);

/*
 * 1 when $JOURNAL_STREAM ("DEV:INO", decimal) names fd's device and inode:
 * fd is the stream systemd connected to the journal, so each line may start
 * with a "<N>" syslog priority. 0 otherwise (unset, malformed, or fd was
 * redirected elsewhere since).
 */
int ivl__journal_stream_is(int fd);

#endif /* IVLINK_HOST_DAEMON_SD_DAEMON_H */
