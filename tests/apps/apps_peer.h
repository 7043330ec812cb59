/* SPDX-License-Identifier: MIT */
/*
 * Shared by the C programs of tests/apps: a forked peer process
 * that serves one TCP connection on 127.0.0.1 (a separate ivlink peer under
 * the shim: both processes attach after the fork).
 */
#ifndef IVLINK_TESTS_APPS_APPS_PEER_H
#define IVLINK_TESTS_APPS_APPS_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "support.h"

/* Writes all of p to s (blocking), or fails the test. */
static inline void peer_write_all(int s, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(s, p, len);

		CHECK(n > 0, "write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/*
 * Forks a child that listens on 127.0.0.1:port, accepts one connection and
 * hands it to serve(), which must _exit() (status 3: could not listen).
 * Returns the child's pid once it listens.
 */
static inline pid_t fork_peer(int port, void (*serve)(int s))
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int pfd[2], l, one = 1;
	pid_t child;
	char r;

	CHECK(pipe(pfd) == 0, "pipe");
	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		l = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0)
			_exit(3);
		if (write(pfd[1], "r", 1) != 1)
			_exit(3);
		serve(accept(l, NULL, NULL));
		_exit(0);
	}
	CHECK(read(pfd[0], &r, 1) == 1, "peer did not start");
	close(pfd[0]);
	close(pfd[1]);
	return child;
}

#endif /* IVLINK_TESTS_APPS_APPS_PEER_H */
