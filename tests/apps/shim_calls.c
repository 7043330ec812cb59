/* SPDX-License-Identifier: MIT */
/*
 * The socket calls the shim intercepts, one by one, on one connection to a
 * forked echo server (a separate ivlink peer: both attach after the fork):
 * write/read, writev/readv, sendmsg/recvmsg, sendto/recvfrom, MSG_PEEK,
 * sendfile, dup/dup2/dup3 (a closed duplicate keeps the connection),
 * fcntl(O_NONBLOCK) and ioctl(FIONBIO), FIONREAD, getsockopt(SO_ERROR),
 * setsockopt(TCP_NODELAY), fork (the child writes on the inherited
 * connection, the parent reads the echo), execve with an environment that
 * lacks LD_PRELOAD (the shim puts it and IVLINK_* back), and shutdown(WR)
 * carrying EOF. Every echoed byte is checked. Run under ivlink-run by
 * apps_shim_calls.sh, which checks through ivlinkctl that the bytes went
 * through the rings; it passes over plain TCP too (same semantics).
 *
 * usage: shim_calls PORT [shim]       ("shim": also check execve's env)
 *        shim_calls --exec-check      (internal: the execve'd program)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps_peer.h"

#define FILE_BYTES (256u << 10)

/* Echo server: everything back, until EOF; then closes. */
static void echo_server(int s)
{
	char buf[16384];
	ssize_t n;

	while ((n = read(s, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t k = write(s, buf + off, (size_t)(n - off));

			if (k <= 0)
				_exit(4);
			off += k;
		}
	close(s);
	_exit(n == 0 ? 0 : 5);
}

static uint8_t pat(size_t i, unsigned seed)
{
	return (uint8_t)(i * 131u + seed * 17u + (i >> 8));
}

/* Reads exactly len bytes (blocking socket) and checks them against pat. */
static void read_check(int s, size_t len, unsigned seed, const char *what)
{
	char buf[8192];
	size_t got = 0;

	while (got < len) {
		size_t want = len - got < sizeof(buf) ? len - got : sizeof(buf);
		ssize_t n = read(s, buf, want);

		CHECK(n > 0, "%s: read after %zu of %zu: %zd %s", what, got, len, n,
		      n < 0 ? strerror(errno) : "EOF");
		for (ssize_t i = 0; i < n; i++)
			CHECK((uint8_t)buf[i] == pat(got + (size_t)i, seed), "%s: byte %zu differs",
			      what, got + (size_t)i);
		got += (size_t)n;
	}
}

static void fill(char *p, size_t len, unsigned seed, size_t from)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)pat(from + i, seed);
}

static void write_all(int s, const char *p, size_t len)
{
	peer_write_all(s, p, len);
}

static int exec_check(void)
{
	const char *pre = getenv("LD_PRELOAD"), *epv = getenv("IVLINK_ENDPOINT");

	CHECK(pre && strstr(pre, "libivlink-preload"), "execve: LD_PRELOAD lost (%s)",
	      pre ? pre : "unset");
	CHECK(epv && *epv, "execve: IVLINK_ENDPOINT lost");
	CHECK(getenv("SHIM_CALLS_MARK") && !strcmp(getenv("SHIM_CALLS_MARK"), "1"),
	      "execve: the app's own environment was not passed");
	return 0;
}

int main(int argc, char **argv)
{
	int port, s, d, st, v, err;
	int shimmed = argc > 2 && !strcmp(argv[2], "shim");
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(err);
	char buf[4096], r;
	pid_t child, kid;

	if (argc > 1 && !strcmp(argv[1], "--exec-check"))
		return exec_check();
	port = argc > 1 ? atoi(argv[1]) : 0;
	CHECK(port > 0, "usage: %s PORT [shim]", argv[0]);
	signal(SIGPIPE, SIG_IGN);
	child = fork_peer(port, echo_server);

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(s, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
	v = 1;
	CHECK(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0, "TCP_NODELAY");
	CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0, "SO_ERROR %d", err);

	/* write/read */
	fill(buf, 1000, 1, 0);
	write_all(s, buf, 1000);
	read_check(s, 1000, 1, "write/read");
	printf("ok: write, read, TCP_NODELAY, SO_ERROR\n");

	/* writev/readv: three pieces out, two back. */
	{
		char a1[100], a2[1], a3[3000], b1[1500], b2[1601];
		struct iovec out[3] = {{a1, sizeof(a1)}, {a2, sizeof(a2)}, {a3, sizeof(a3)}};
		struct iovec in[2] = {{b1, sizeof(b1)}, {b2, sizeof(b2)}};
		size_t got = 0;

		fill(a1, sizeof(a1), 2, 0);
		fill(a2, sizeof(a2), 2, 100);
		fill(a3, sizeof(a3), 2, 101);
		CHECK(writev(s, out, 3) == 3101, "writev: %s", strerror(errno));
		while (got < 3101) {
			ssize_t n;

			n = readv(s, in, 2);
			CHECK(n > 0, "readv: %s", strerror(errno));
			for (ssize_t i = 0; i < n; i++) {
				size_t at = got + (size_t)i;
				char c = at < sizeof(b1) ? b1[at] : b2[at - sizeof(b1)];

				CHECK((uint8_t)c == pat(at, 2), "readv: byte %zu differs", at);
			}
			got += (size_t)n;
			/* The rest goes on after what was read. */
			if (got < sizeof(b1)) {
				in[0].iov_base = b1 + got;
				in[0].iov_len = sizeof(b1) - got;
			} else {
				in[0].iov_base = b2 + (got - sizeof(b1));
				in[0].iov_len = sizeof(b2) - (got - sizeof(b1));
				in[1].iov_len = 0;
			}
		}
	}
	printf("ok: writev, readv\n");

	/* sendmsg/recvmsg, sendto/recvfrom, MSG_PEEK */
	{
		char x[700], y[700];
		struct iovec io[2] = {{x, 300}, {x + 300, 400}};
		struct msghdr m = {.msg_iov = io, .msg_iovlen = 2};
		struct iovec ii = {y, sizeof(y)};
		struct msghdr mi = {.msg_iov = &ii, .msg_iovlen = 1};
		size_t got = 0;

		fill(x, sizeof(x), 3, 0);
		CHECK(sendmsg(s, &m, 0) == 700, "sendmsg: %s", strerror(errno));
		while (got < 700) {
			ssize_t n;

			ii.iov_base = y + got;
			ii.iov_len = sizeof(y) - got;
			n = recvmsg(s, &mi, 0);
			CHECK(n > 0, "recvmsg: %s", strerror(errno));
			got += (size_t)n;
		}
		CHECK(!memcmp(x, y, 700), "recvmsg: bytes differ");
		CHECK(sendto(s, "peek-me", 7, 0, NULL, 0) == 7, "sendto: %s", strerror(errno));
		got = 0;
		while (got < 7) { /* wait until all 7 are there, peeking */
			ssize_t n = recv(s, y, 7, MSG_PEEK);

			CHECK(n > 0, "MSG_PEEK: %s", strerror(errno));
			got = (size_t)n;
		}
		CHECK(!memcmp(y, "peek-me", 7), "MSG_PEEK: bytes differ");
		CHECK(recvfrom(s, y, 7, 0, NULL, NULL) == 7 && !memcmp(y, "peek-me", 7),
		      "recvfrom after MSG_PEEK");
	}
	printf("ok: sendmsg, recvmsg, sendto, recvfrom, MSG_PEEK\n");

	/* sendfile from a file; the echo comes back through read. */
	{
		char path[] = "/tmp/ivl-shim-calls-XXXXXX", chunk[4096];
		int f = mkstemp(path);
		off_t off = 0;
		size_t sent = 0, total = 0;
		pid_t rd;
		int rp[2];

		CHECK(f >= 0, "mkstemp: %s", strerror(errno));
		unlink(path);
		for (size_t at = 0; at < FILE_BYTES; at += sizeof(chunk)) {
			fill(chunk, sizeof(chunk), 4, at);
			CHECK(write(f, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk), "file");
		}
		/* A reader thread would share the fd table; a child process
		 * reads the echo so that neither side's buffer can stall. */
		CHECK(pipe(rp) == 0, "pipe");
		rd = fork();
		CHECK(rd >= 0, "fork");
		if (rd == 0) {
			read_check(s, FILE_BYTES, 4, "sendfile echo");
			_exit(write(rp[1], "d", 1) == 1 ? 0 : 1);
		}
		while (sent < FILE_BYTES) {
			ssize_t n = sendfile(s, f, &off, FILE_BYTES - sent);

			CHECK(n > 0, "sendfile: %s", strerror(errno));
			sent += (size_t)n;
			total++;
		}
		CHECK(read(rp[0], &r, 1) == 1, "sendfile: echo not read back");
		CHECK(waitpid(rd, &st, 0) == rd && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "sendfile: reader failed");
		CHECK((size_t)off == FILE_BYTES, "sendfile: offset %lld", (long long)off);
		close(f);
		close(rp[0]);
		close(rp[1]);
	}
	printf("ok: sendfile (%u KiB), and a forked child reading the connection\n",
	       FILE_BYTES >> 10);

	/* dup, dup2, dup3: any duplicate works; closing one keeps the rest. */
	d = dup(s);
	CHECK(d >= 0, "dup");
	CHECK(dup2(s, 100) == 100, "dup2: %s", strerror(errno));
	CHECK(dup3(s, 101, O_CLOEXEC) == 101, "dup3: %s", strerror(errno));
	fill(buf, 64, 5, 0);
	write_all(d, buf, 64);
	read_check(100, 64, 5, "dup -> dup2");
	CHECK(close(d) == 0 && close(100) == 0, "close duplicates");
	write_all(101, buf, 64);
	read_check(s, 64, 5, "dup3 -> original");
	CHECK(close(101) == 0, "close dup3");
	write_all(s, buf, 64);
	read_check(s, 64, 5, "after the duplicates closed");
	printf("ok: dup, dup2, dup3, closing duplicates\n");

	/* Non-blocking: fcntl on, EAGAIN; FIONREAD; FIONBIO off, blocking read. */
	CHECK(fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) == 0, "fcntl O_NONBLOCK");
	CHECK(fcntl(s, F_GETFL) & O_NONBLOCK, "F_GETFL lost O_NONBLOCK");
	CHECK(read(s, buf, 1) < 0 && errno == EAGAIN, "non-blocking empty read: %s",
	      strerror(errno));
	write_all(s, "12345", 5);
	for (int i = 0; i < 5000; i++) {
		CHECK(ioctl(s, FIONREAD, &v) == 0, "FIONREAD: %s", strerror(errno));
		if (v == 5)
			break;
		usleep(1000);
	}
	CHECK(v == 5, "FIONREAD %d, not 5", v);
	CHECK(read(s, buf, 5) == 5 && !memcmp(buf, "12345", 5), "read after FIONREAD");
	v = 0;
	CHECK(ioctl(s, FIONBIO, &v) == 0, "FIONBIO 0");
	CHECK(!(fcntl(s, F_GETFL) & O_NONBLOCK), "FIONBIO 0 left O_NONBLOCK");
	write_all(s, "abc", 3);
	CHECK(read(s, buf, 3) == 3 && !memcmp(buf, "abc", 3), "blocking read after FIONBIO");
	printf("ok: fcntl O_NONBLOCK, EAGAIN, FIONREAD, FIONBIO\n");

	/* fork: the child writes on the inherited connection and exits; the
	 * parent reads the echo. */
	kid = fork();
	CHECK(kid >= 0, "fork");
	if (kid == 0) {
		fill(buf, 2000, 6, 0);
		write_all(s, buf, 2000);
		_exit(0);
	}
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "fork: child failed");
	read_check(s, 2000, 6, "fork: child's bytes echoed to the parent");
	write_all(s, "after-fork", 10);
	CHECK(read(s, buf, 10) == 10 && !memcmp(buf, "after-fork", 10), "parent after fork");
	printf("ok: fork, both processes use the connection\n");

	/* execve with an environment of the app's own, without LD_PRELOAD. */
	if (shimmed) {
		char *const av[] = {argv[0], "--exec-check", NULL};
		char *const ev[] = {"SHIM_CALLS_MARK=1", NULL};

		kid = fork();
		CHECK(kid >= 0, "fork");
		if (kid == 0) {
			execve("/proc/self/exe", av, ev);
			_exit(127);
		}
		CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "execve: the shim's environment was not preserved (status %d)", st);
		printf("ok: execve keeps LD_PRELOAD and IVLINK_*\n");
	}

	/* shutdown(SHUT_WR): the server sees EOF and closes; so do we. */
	CHECK(shutdown(s, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
	CHECK(read(s, buf, sizeof(buf)) == 0, "EOF after the server closed");
	CHECK(write(s, "x", 1) < 0 && errno == EPIPE, "write after SHUT_WR: %s", strerror(errno));
	close(s);
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "echo server failed (%d)", st);
	printf("ok: shutdown(SHUT_WR), EOF, EPIPE\nPASS\n");
	return 0;
}
