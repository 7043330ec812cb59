/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd keeps serving everybody else when a client misbehaves: one sends
 * data on the one-way protocol, one never reads (its queue overflows), and
 * some disconnect in the middle of the handshake. Each is dropped, a
 * well-behaved watcher sees each leave, and a fresh client still completes
 * the handshake.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "dtest.h"

#define NVEC 4

/* The daemon's status text (empty string on failure). */
static const char *status_text(void)
{
	static char buf[8192];
	ssize_t n, len = 0;
	int fd = ts_connect(ts_path("sock.ctl"));

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	buf[len] = '\0';
	close(fd);
	return buf;
}

static int n_clients(void)
{
	const char *p = strstr(status_text(), " peers=");

	return p ? atoi(p + 7) : -1;
}

/* Reads until EOF; returns 1 if the daemon closed the connection. */
static int drained_to_eof(int sock, int ms)
{
	for (;;) {
		int64_t v;
		int fd, rc = dt_recv(sock, &v, &fd, ms);

		if (fd >= 0)
			close(fd);
		if (rc == 0)
			return 1;
		if (rc < 0)
			return rc == -ECONNRESET;
	}
}

int main(void)
{
	const char *const extra[] = {"-l", "4M", "-n", "4", "--max-queue", "256", NULL};
	struct dt_peer w, g, c;
	int n, rcv = 4096, i;
	pid_t d;

	ts_init("misbehaving", 120);
	d = ts_daemon_spawn(IVLINKD, ts_path("sock"), extra, &dt_daemon_opts, NULL);
	CHECK(d > 0);
	CHECK(dt_peer_join(&w, ts_path("sock"), NVEC) == 0);

	/* 1. Garbage: dropped, its connection closed; the watcher sees it
	 * join and leave. */
	CHECK(dt_peer_join(&g, ts_path("sock"), NVEC) == 0);
	CHECK(write(g.sock, "GET / HTTP/1.0\r\n\r\n", 18) == 18);
	CHECK(drained_to_eof(g.sock, 3000), "garbage client was not dropped");
	dt_peer_close(&g);
	dt_peer_pump(&w, 200);
	for (unsigned k = 0; k < NVEC; k++)
		CHECK(w.other[1][k] == -1);

	/* 2. Disconnects mid-handshake: right after connecting, and after
	 * reading only the version. */
	for (i = 0; i < 20; i++) {
		int s = ts_connect(ts_path("sock"));
		int64_t v;
		int fd;

		CHECK(s >= 0);
		if (i & 1)
			CHECK(dt_recv(s, &v, &fd, 2000) == 1 && v == 0);
		close(s);
	}
	dt_peer_pump(&w, 200);

	/* 3. Never reads, with a small receive buffer: other clients joining
	 * and leaving generate messages to it until its queue overflows. */
	n = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(n >= 0);
	CHECK(setsockopt(n, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) == 0);
	{
		struct sockaddr_un a = {.sun_family = AF_UNIX};

		snprintf(a.sun_path, sizeof(a.sun_path), "%s", ts_path("sock"));
		CHECK(connect(n, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	for (i = 0; i < 400 && n_clients() != 1; i++) {
		CHECK(dt_peer_join(&c, ts_path("sock"), NVEC) == 0,
		      "cycle %d: a fresh client could not join", i);
		dt_peer_close(&c);
		dt_peer_pump(&w, 0);
	}
	printf("the non-reading client was dropped after %d join/leave cycles\n", i);
	for (int k = 0; k < 200 && n_clients() != 1; k++)
		usleep(10000);
	CHECK(n_clients() == 1, "non-reading client still connected after %d cycles", i);
	close(n);

	/* 4. The others are still served: the watcher gets the messages of
	 * a fresh client, which completes its handshake. */
	dt_peer_pump(&w, 200);
	CHECK(dt_peer_join(&c, ts_path("sock"), NVEC) == 0);
	for (unsigned k = 0; k < NVEC; k++)
		CHECK(c.other[w.id][k] >= 0);
	CHECK(dt_peer_pump(&w, 300) == NVEC);
	dt_peer_close(&c);
	CHECK(dt_peer_pump(&w, 300) == 1);
	dt_peer_close(&w);
	{
		int st = ts_daemon_stop(d, SIGTERM);

		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status %d", st);
	}
	printf("PASS misbehaving_clients\n");
	return 0;
}
