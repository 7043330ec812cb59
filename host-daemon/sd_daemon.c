/* SPDX-License-Identifier: MIT */
/*
 * sd_notify(3) readiness and journal stream detection for ivlinkd, written
 * out so that the daemon needs no libsystemd. The wire format is systemd's
 * documented one: a single datagram of newline-separated VAR=VALUE
 * assignments, no reply.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "sd_daemon.h"

int ivl__sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un a;
	size_t n, len = strlen(state);
	socklen_t alen;
	ssize_t sent;
	int fd, rc;

	if (!path || !*path)
		return 0;
	/* systemd >= 254 also allows "vsock:CID:PORT"; 252 (Debian 12) only
	 * these two forms. */
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;
	n = strlen(path);
	if (n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, path, n);
	/* An abstract address is the bytes after a leading NUL, exactly n of
	 * them: the length, not a terminator, ends it. */
	if (path[0] == '@')
		a.sun_path[0] = '\0';
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sent = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&a, alen);
	rc = sent < 0 ? -errno : sent == (ssize_t)len ? 1 : -EMSGSIZE;
	close(fd);
	return rc;
}

int ivl__journal_stream_is(int fd)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	if (!env || sscanf(env, "%llu:%llu%n", &dev, &ino, &end) != 2 || env[end] != '\0')
		return 0;
	if (fstat(fd, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}
