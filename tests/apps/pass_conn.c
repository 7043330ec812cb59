/* SPDX-License-Identifier: MIT */
/*
 * An accelerated connection handed to another process while bytes are in
 * flight in both rings (the apps_pass_* tests, run under ivlink-run):
 *
 *   pass_conn scm    the server accepts, then passes the socket over a UNIX
 *                    socket (SCM_RIGHTS) to a worker forked before the
 *                    connection existed, which serves the rest
 *   pass_conn exec   the server execs itself (exec-worker mode) with the
 *                    socket inherited (no FD_CLOEXEC); the new image serves
 *   pass_conn execvp the same through execvp()
 *   pass_conn dead   the client is SIGKILLed just before the hand-over: the
 *                    server's sendmsg() returns, and the worker reads EOF
 *                    or ECONNRESET, never hangs
 *
 * The client (a forked child: a peer of its own) writes 60000 bytes of its
 * stream; the server reads 20000 of them and writes 50000 of its own; the
 * client reads 10000. So at the hand-over 40000 bytes wait in each ring.
 * Then both sides stream 300000 more bytes each way, and every byte is
 * checked against the stream generator (tests/support), in order. Pipes
 * (not the socket) order the steps.
 *
 * When all is done, the process whose shim counters the test reads (the
 * client; the server in dead mode) prints "READY <pid>" and waits for its
 * stdin to close, so that ivlinkctl can still see its peer. Exit 0: pass.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define SEED_C 0xc11e47ULL /* client -> server */
#define SEED_S 0x5e7e7ULL  /* server -> client */
#define A1     60000u	   /* client writes before the hand-over */
#define A1_R   20000u	   /* of which the server reads */
#define B1     50000u	   /* server writes before the hand-over */
#define B1_R   10000u	   /* of which the client reads */
#define MORE   300000u	   /* each way after the hand-over */

static void token_put(int fd)
{
	char b = 'x';

	CHECK_EQ(write(fd, &b, 1), 1);
}

static void token_get(int fd)
{
	char b;

	CHECK_EQ(read(fd, &b, 1), 1);
}

static void write_stream(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[16384];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		ssize_t k;

		ts_stream_fill(seed, off, buf, n);
		k = send(fd, buf, n, MSG_NOSIGNAL);
		CHECK(k > 0, " send: %s", k < 0 ? strerror(errno) : "0");
		off += (uint64_t)k;
		len -= (size_t)k;
	}
}

static void read_stream(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[16384];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		ssize_t k = recv(fd, buf, n, 0);

		CHECK(k > 0, " recv at %llu: %s", (unsigned long long)off,
		      k < 0 ? strerror(errno) : "EOF");
		CHECK_EQ(ts_stream_check(seed, off, buf, (size_t)k), (size_t)k);
		off += (uint64_t)k;
		len -= (size_t)k;
	}
}

/* Both directions at once (neither side may wait for the other to read):
 * writes [tx_off, tx_end) of tx_seed and reads [rx_off, rx_end) of rx_seed,
 * checking every byte. */
static void pump(int fd, uint64_t tx_seed, uint64_t tx_off, uint64_t tx_end, uint64_t rx_seed,
		 uint64_t rx_off, uint64_t rx_end)
{
	uint8_t buf[16384];

	while (tx_off < tx_end || rx_off < rx_end) {
		struct pollfd p = {.fd = fd,
				   .events = (short)((rx_off < rx_end ? POLLIN : 0) |
						     (tx_off < tx_end ? POLLOUT : 0))};
		ssize_t k;

		CHECK(poll(&p, 1, -1) >= 0, " poll: %s", strerror(errno));
		if (rx_off < rx_end) {
			k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			CHECK(k > 0 || (k < 0 && errno == EAGAIN), " recv at %llu: %s",
			      (unsigned long long)rx_off, k < 0 ? strerror(errno) : "EOF");
			if (k > 0) {
				CHECK(rx_off + (uint64_t)k <= rx_end, " %zd bytes too many", k);
				CHECK_EQ(ts_stream_check(rx_seed, rx_off, buf, (size_t)k),
					 (size_t)k);
				rx_off += (uint64_t)k;
			}
		}
		if (tx_off < tx_end) {
			size_t n = tx_end - tx_off < sizeof(buf) ? tx_end - tx_off : sizeof(buf);

			ts_stream_fill(tx_seed, tx_off, buf, n);
			k = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
			CHECK(k > 0 || (k < 0 && errno == EAGAIN), " send at %llu: %s",
			      (unsigned long long)tx_off, k < 0 ? strerror(errno) : "0");
			if (k > 0)
				tx_off += (uint64_t)k;
		}
	}
}

/* Tells the test that the counters can be read, and waits for it. */
static void ready_wait(void)
{
	char b;

	printf("READY %d\n", (int)getpid());
	while (read(0, &b, 1) > 0)
		;
}

static int client(int port, int c2s, int s2c, int stay)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, " connect: %s",
	      strerror(errno));
	write_stream(fd, SEED_C, 0, A1);
	token_put(c2s);
	token_get(s2c);
	read_stream(fd, SEED_S, 0, B1_R);
	token_put(c2s);
	if (!stay) {
		pause(); /* dead mode: killed here */
		return 1;
	}
	pump(fd, SEED_C, A1, A1 + MORE, SEED_S, B1_R, B1 + MORE);
	close(fd);
	ready_wait();
	return 0;
}

/* The server's side after the hand-over (the worker, or the new image). */
static int serve(int fd)
{
	pump(fd, SEED_S, B1, B1 + MORE, SEED_C, A1_R, A1 + MORE);
	close(fd);
	return 0;
}

static int listener(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0);
	CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(fd, 4));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	*port = ntohs(sa.sin_port);
	return fd;
}

static void send_fd(int via, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	char b = 'f';
	struct iovec iov = {.iov_base = &b, .iov_len = 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);

	memset(cbuf, 0, sizeof(cbuf));
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	CHECK(sendmsg(via, &m, 0) == 1, " sendmsg: %s", strerror(errno));
}

static int recv_fd(int via)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	char b;
	struct iovec iov = {.iov_base = &b, .iov_len = 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *h;
	int fd;

	CHECK(recvmsg(via, &m, 0) == 1, " recvmsg: %s", strerror(errno));
	h = CMSG_FIRSTHDR(&m);
	CHECK(h && h->cmsg_type == SCM_RIGHTS);
	memcpy(&fd, CMSG_DATA(h), sizeof(int));
	return fd;
}

/* Dead mode's worker: the socket whose peer was killed ends, no hang. */
static int serve_dead(int fd)
{
	uint8_t buf[4096];
	ssize_t k;

	do
		k = recv(fd, buf, sizeof(buf), 0);
	while (k > 0);
	CHECK(k == 0 || errno == ECONNRESET || errno == ENOTCONN, " recv: %s", strerror(errno));
	printf("worker: %s\n", k == 0 ? "EOF" : strerror(errno));
	return 0;
}

static int worker_main(int via, int dead)
{
	int fd = recv_fd(via);

	return dead ? serve_dead(fd) : serve(fd);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int c2s[2], s2c[2], sv[2] = {-1, -1}, lfd, fd, port, st;
	int dead = !strcmp(mode, "dead"), execvp_mode = !strcmp(mode, "execvp");
	int exec_mode = !strcmp(mode, "exec") || execvp_mode;
	pid_t cpid, wpid = -1;

	if (!strcmp(mode, "exec-worker") && argc == 4) {
		ts_init("pass_conn exec-worker", 120);
		cpid = (pid_t)atoi(argv[3]);
		ts_track_pid(cpid);
		st = serve(atoi(argv[2]));
		CHECK_EQ(ts_wait(cpid, 60000), 0);
		return st;
	}
	if (!dead && !exec_mode && strcmp(mode, "scm")) {
		fprintf(stderr, "usage: pass_conn scm|exec|execvp|dead\n");
		return 2;
	}
	ts_init(mode, 120);
	setvbuf(stdout, NULL, _IONBF, 0);
	CHECK_OK(pipe(c2s));
	CHECK_OK(pipe(s2c));
	/* The worker exists before the connection: its shim knows nothing
	 * of it, as in a pre-fork server that passes accepted sockets. */
	if (!exec_mode) {
		CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
		wpid = ts_fork();
		if (wpid == 0) {
			close(sv[0]);
			_exit(worker_main(sv[1], dead));
		}
		close(sv[1]);
	}
	lfd = listener(&port);
	cpid = ts_fork();
	if (cpid == 0) {
		close(lfd);
		_exit(client(port, c2s[1], s2c[0], !dead));
	}
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0, " accept: %s", strerror(errno));
	close(lfd);
	token_get(c2s[0]);
	read_stream(fd, SEED_C, 0, A1_R);
	write_stream(fd, SEED_S, 0, B1);
	token_put(s2c[1]);
	token_get(c2s[0]);
	/* 40000 bytes wait in each ring now. */
	if (exec_mode) {
		char sfd[16], spid[16], w[] = "exec-worker";

		snprintf(sfd, sizeof(sfd), "%d", fd);
		snprintf(spid, sizeof(spid), "%d", (int)cpid);
		char *const nargv[] = {argv[0], w, sfd, spid, NULL};

		/* The new image has a temp dir of its own; this one's cleanup
		 * would not run after exec (it left /tmp/ivl-exec-* behind). */
		ts_rm_tree(ts_dir());
		if (execvp_mode)
			execvp("/proc/self/exe", nargv);
		else
			execve("/proc/self/exe", nargv, environ);
		FAIL("exec: %s", strerror(errno));
	}
	if (dead)
		CHECK_EQ(ts_kill9(cpid), 128 + SIGKILL);
	send_fd(sv[0], fd);
	close(fd);
	CHECK_EQ(ts_wait(wpid, 60000), 0);
	if (dead) {
		ready_wait();
		return 0;
	}
	CHECK_EQ(ts_wait(cpid, 60000), 0);
	return 0;
}
