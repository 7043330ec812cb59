/* SPDX-License-Identifier: MIT */
/*
 * Readiness semantics of a shimmed connection, checked from the client
 * while a forked peer (a separate ivlink peer: both attach after the fork)
 * sends on command: non-blocking connect with EINPROGRESS and SO_ERROR,
 * epoll level-triggered, edge-triggered (EPOLLIN per arrival, partial reads,
 * EPOLLOUT after a full buffer), ONESHOT, EPOLL_CTL_MOD between
 * them, a shimmed and a kernel fd in one set, an epoll fd nested in another
 * or polled, poll, select, FIONREAD, non-blocking EAGAIN, and EOF with
 * EPOLLRDHUP. Run under ivlink-run (apps_epoll_semantics.sh checks through
 * ivlinkctl that the connection used the rings); it passes over plain TCP
 * too, which is the point: the semantics must be the same.
 *
 * usage: shim_epoll_semantics PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps_peer.h"

/* Reads and drops exactly n bytes. */
static void discard(int s, long n)
{
	char buf[65536];

	while (n > 0) {
		ssize_t k = read(s, buf, n < (long)sizeof(buf) ? (size_t)n : sizeof(buf));

		if (k <= 0)
			_exit(6);
		n -= k;
	}
}

/* The peer: sends on command ("S<n>\n": n bytes, "E\n": shutdown(WR),
 * "D<n>\n": reads nothing for 300 ms, then drops the next n bytes). */
static void peer(int s)
{
	char line[64], data[4096];
	size_t got = 0;

	memset(data, 'x', sizeof(data));
	for (;;) {
		ssize_t n = read(s, line + got, 1);

		if (n <= 0)
			break;
		if (line[got] != '\n') {
			if (++got >= sizeof(line) - 1)
				_exit(4);
			continue;
		}
		line[got] = '\0';
		got = 0;
		if (line[0] == 'S') {
			int k = atoi(line + 1);

			if (write(s, data, (size_t)k) != k)
				_exit(5);
		} else if (line[0] == 'E') {
			shutdown(s, SHUT_WR);
		} else if (line[0] == 'D') {
			usleep(300000);
			discard(s, atol(line + 1));
		}
	}
	close(s);
	_exit(0);
}

static void cmd(int s, const char *c)
{
	CHECK(write(s, c, strlen(c)) == (ssize_t)strlen(c), "write cmd: %s", strerror(errno));
}

static int drain(int s)
{
	char buf[8192];
	int total = 0;

	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			total += (int)n;
			continue;
		}
		CHECK(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "drain: %zd %s", n,
		      strerror(errno));
		return total;
	}
}

static int wait_ev(int ep, struct epoll_event *ev, int ms)
{
	int n;

	do
		n = epoll_wait(ep, ev, 1, ms);
	while (n < 0 && errno == EINTR);
	return n;
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 0, s, lt, et, outer, inner, err, n, avail;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct epoll_event ev, out;
	socklen_t len = sizeof(err);
	pid_t child;
	char r;

	CHECK(port > 0, "usage: %s PORT", argv[0]);
	signal(SIGPIPE, SIG_IGN);
	child = fork_peer(port, peer);

	/* Non-blocking connect. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	n = connect(s, (struct sockaddr *)&a, sizeof(a));
	CHECK(n == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
	lt = epoll_create1(0);
	ev.events = EPOLLOUT;
	ev.data.u64 = 0x1234;
	CHECK(epoll_ctl(lt, EPOLL_CTL_ADD, s, &ev) == 0, "epoll_ctl add");
	CHECK(wait_ev(lt, &out, 5000) == 1 && (out.events & EPOLLOUT) && out.data.u64 == 0x1234,
	      "connect never completed");
	CHECK(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0, "SO_ERROR %d", err);
	printf("ok: non-blocking connect, EPOLLOUT, SO_ERROR 0\n");

	/* Empty: EAGAIN. */
	CHECK(recv(s, &r, 1, 0) < 0 && errno == EAGAIN, "empty recv: %s", strerror(errno));

	/* Level triggered: reported until read. */
	ev.events = EPOLLIN;
	ev.data.u64 = 0x5678;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod to IN");
	CHECK(wait_ev(lt, &out, 100) == 0, "LT: readable before any data");
	cmd(s, "S100\n");
	CHECK(wait_ev(lt, &out, 5000) == 1 && (out.events & EPOLLIN) && out.data.u64 == 0x5678,
	      "LT: no EPOLLIN");
	usleep(20000);
	CHECK(wait_ev(lt, &out, 100) == 1, "LT: not reported again");
	CHECK(ioctl(s, FIONREAD, &avail) == 0 && avail == 100, "FIONREAD %d", avail);
	CHECK(drain(s) == 100, "LT: wrong count");
	CHECK(wait_ev(lt, &out, 100) == 0, "LT: still readable after drain");
	printf("ok: level-triggered EPOLLIN, FIONREAD, EAGAIN\n");

	/* EPOLL_CTL_MOD to EPOLLOUT and back. */
	ev.events = EPOLLOUT;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod to OUT");
	CHECK(wait_ev(lt, &out, 1000) == 1 && (out.events & EPOLLOUT), "MOD: no EPOLLOUT");
	ev.events = EPOLLIN;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod back to IN");
	CHECK(wait_ev(lt, &out, 100) == 0, "MOD: EPOLLIN without data");
	printf("ok: EPOLL_CTL_MOD\n");

	/* A level-triggered shimmed fd and a pipe in one set: one call
	 * returns both (the shim computes the first, the kernel the other). */
	{
		struct epoll_event two[4];
		int p[2], got = 0;

		CHECK(pipe(p) == 0, "pipe");
		ev.events = EPOLLIN;
		ev.data.u64 = 0x77;
		CHECK(epoll_ctl(lt, EPOLL_CTL_ADD, p[0], &ev) == 0, "add pipe");
		cmd(s, "S30\n");
		CHECK(write(p[1], "p", 1) == 1, "write pipe");
		usleep(20000);
		n = epoll_wait(lt, two, 4, 5000);
		for (int i = 0; i < n; i++)
			got |= two[i].data.u64 == 0x5678 ? 1 : two[i].data.u64 == 0x77 ? 2 : 4;
		CHECK(n == 2 && got == 3, "socket + pipe: %d events, mask %d", n, got);
		CHECK(drain(s) == 30, "socket + pipe: count");
		CHECK(epoll_ctl(lt, EPOLL_CTL_DEL, p[0], NULL) == 0, "del pipe");
		close(p[0]);
		close(p[1]);
	}
	printf("ok: shimmed fd and a kernel fd in one epoll_wait\n");

	/* MOD from level to edge triggered and back, then ONESHOT. */
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x5678;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod to ET");
	cmd(s, "S5\n");
	CHECK(wait_ev(lt, &out, 5000) == 1 && out.data.u64 == 0x5678, "MOD ET: no edge");
	CHECK(wait_ev(lt, &out, 200) == 0, "MOD ET: reported twice for one arrival");
	ev.events = EPOLLIN;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod back to LT");
	CHECK(wait_ev(lt, &out, 1000) == 1, "MOD LT: unread data not reported");
	CHECK(wait_ev(lt, &out, 1000) == 1, "MOD LT: not reported again");
	ev.events = EPOLLIN | EPOLLONESHOT;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod to ONESHOT");
	CHECK(wait_ev(lt, &out, 1000) == 1, "ONESHOT: not reported");
	CHECK(wait_ev(lt, &out, 200) == 0, "ONESHOT: reported twice");
	CHECK(drain(s) == 5, "ONESHOT: count");
	ev.events = EPOLLIN;
	CHECK(epoll_ctl(lt, EPOLL_CTL_MOD, s, &ev) == 0, "mod back from ONESHOT");
	CHECK(wait_ev(lt, &out, 100) == 0, "LT after ONESHOT: readable without data");
	printf("ok: EPOLL_CTL_MOD between LT, ET and ONESHOT\n");

	/* An epoll fd watched by poll(): readable when the socket is. */
	{
		struct pollfd p = {.fd = lt, .events = POLLIN};

		CHECK(poll(&p, 1, 100) == 0, "polled epoll fd: ready without data");
		cmd(s, "S7\n");
		CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "polled epoll fd: no POLLIN");
		CHECK(wait_ev(lt, &out, 1000) == 1 && out.data.u64 == 0x5678,
		      "polled epoll fd: no event inside");
		usleep(20000);
		CHECK(drain(s) == 7, "polled epoll fd: count");
		CHECK(poll(&p, 1, 100) == 0, "polled epoll fd: ready after drain");
	}
	printf("ok: epoll fd in poll()\n");

	/* Edge triggered, in a second set: one event per arrival. */
	et = epoll_create1(0);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x9abc;
	CHECK(epoll_ctl(et, EPOLL_CTL_ADD, s, &ev) == 0, "et add");
	cmd(s, "S50\n");
	CHECK(wait_ev(et, &out, 5000) == 1 && out.data.u64 == 0x9abc, "ET: no first edge");
	CHECK(wait_ev(et, &out, 200) == 0, "ET: reported twice for one arrival");
	cmd(s, "S60\n");
	CHECK(wait_ev(et, &out, 5000) == 1, "ET: no second edge");
	usleep(20000);
	n = drain(s);
	CHECK(n == 110, "ET: read %d, expected 110", n);
	CHECK(wait_ev(et, &out, 100) == 0, "ET: edge without new data");
	/* A partial read, then a new arrival: a new edge (the kernel reports
	 * each arrival, read to EAGAIN or not). */
	cmd(s, "S50\n");
	CHECK(wait_ev(et, &out, 5000) == 1, "ET partial: no edge");
	usleep(20000);
	CHECK(recv(s, &r, 1, 0) == 1, "ET partial: recv");
	CHECK(wait_ev(et, &out, 200) == 0, "ET partial: edge without new data");
	cmd(s, "S60\n");
	CHECK(wait_ev(et, &out, 5000) == 1, "ET partial: no edge for the new arrival");
	usleep(20000);
	CHECK(drain(s) == 109, "ET partial: count");
	close(et);
	printf("ok: edge-triggered EPOLLIN, two sets on one fd, partial reads\n");

	/* Edge-triggered EPOLLOUT: reported at ADD, then not again until a
	 * write found no room and room came back (the peer reads again). */
	{
		enum { TOTAL = 32 << 20 };
		static char fill[65536];
		long sent = 0;

		memset(fill, 'f', sizeof(fill));
		et = epoll_create1(0);
		ev.events = EPOLLOUT | EPOLLET;
		ev.data.u64 = 0xe0;
		CHECK(epoll_ctl(et, EPOLL_CTL_ADD, s, &ev) == 0, "et out add");
		CHECK(wait_ev(et, &out, 1000) == 1 && (out.events & EPOLLOUT),
		      "ET OUT: not at ADD");
		CHECK(wait_ev(et, &out, 200) == 0, "ET OUT: reported twice");
		{
			char c[32];

			snprintf(c, sizeof(c), "D%d\n", TOTAL);
			cmd(s, c);
		}
		for (;;) {
			ssize_t k = send(s, fill, sizeof(fill), MSG_DONTWAIT);

			if (k < 0) {
				CHECK(errno == EAGAIN, "ET OUT: fill: %s", strerror(errno));
				break;
			}
			sent += k;
			CHECK(sent < TOTAL, "ET OUT: %ld bytes sent and never full", sent);
		}
		n = wait_ev(et, &out, 100);
		CHECK(n == 0, "ET OUT: writable while full (events 0x%x)", n > 0 ? out.events : 0);
		CHECK(wait_ev(et, &out, 5000) == 1 && (out.events & EPOLLOUT),
		      "ET OUT: no edge when room came back");
		while (sent < TOTAL) {
			long k =
			    TOTAL - sent < (long)sizeof(fill) ? TOTAL - sent : (long)sizeof(fill);

			struct pollfd p = {.fd = s, .events = POLLOUT};

			k = send(s, fill, (size_t)k, 0);
			if (k < 0 && errno == EAGAIN) {
				CHECK(poll(&p, 1, 5000) == 1, "ET OUT: rest: never writable");
				continue;
			}
			CHECK(k > 0, "ET OUT: rest: %s", strerror(errno));
			sent += k;
		}
		close(et);
	}
	printf("ok: edge-triggered EPOLLOUT after a full send buffer\n");

	/* ONESHOT edge triggered: one report, none for more arrivals, MOD
	 * re-arms and reports what is there at once. */
	et = epoll_create1(0);
	ev.events = EPOLLIN | EPOLLET | EPOLLONESHOT;
	ev.data.u64 = 0x0e;
	CHECK(epoll_ctl(et, EPOLL_CTL_ADD, s, &ev) == 0, "oneshot et add");
	cmd(s, "S5\n");
	CHECK(wait_ev(et, &out, 5000) == 1, "ONESHOT ET: not reported");
	cmd(s, "S5\n");
	CHECK(wait_ev(et, &out, 300) == 0, "ONESHOT ET: reported while disabled");
	CHECK(epoll_ctl(et, EPOLL_CTL_MOD, s, &ev) == 0, "oneshot et mod");
	CHECK(wait_ev(et, &out, 1000) == 1 && out.data.u64 == 0x0e,
	      "ONESHOT ET: MOD did not re-arm");
	CHECK(wait_ev(et, &out, 200) == 0, "ONESHOT ET: reported twice after MOD");
	usleep(20000);
	CHECK(drain(s) == 10, "ONESHOT ET: count");
	close(et);
	printf("ok: edge-triggered ONESHOT and its re-arm\n");

	/* Nested: outer holds inner holds the socket. */
	CHECK(epoll_ctl(lt, EPOLL_CTL_DEL, s, NULL) == 0, "del");
	inner = epoll_create1(0);
	outer = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.u64 = 1;
	CHECK(epoll_ctl(inner, EPOLL_CTL_ADD, s, &ev) == 0, "inner add");
	ev.data.u64 = 2;
	CHECK(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &ev) == 0, "outer add");
	CHECK(wait_ev(outer, &out, 100) == 0, "nested: ready without data");
	cmd(s, "S10\n");
	CHECK(wait_ev(outer, &out, 5000) == 1 && out.data.u64 == 2, "nested: outer not woken");
	CHECK(wait_ev(inner, &out, 1000) == 1 && out.data.u64 == 1, "nested: inner has no event");
	usleep(20000);
	CHECK(drain(s) == 10, "nested: count");
	close(outer);
	close(inner);
	printf("ok: epoll nested in epoll\n");

	/* poll and select. */
	{
		struct pollfd p = {.fd = s, .events = POLLIN};
		fd_set rs;
		struct timeval tv = {5, 0};

		CHECK(poll(&p, 1, 100) == 0, "poll: ready without data");
		cmd(s, "S20\n");
		CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "poll: no POLLIN");
		FD_ZERO(&rs);
		FD_SET(s, &rs);
		CHECK(select(s + 1, &rs, NULL, NULL, &tv) == 1 && FD_ISSET(s, &rs), "select");
		usleep(20000);
		CHECK(drain(s) == 20, "poll: count");
		p.events = POLLOUT;
		CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLOUT), "poll: no POLLOUT");
	}
	printf("ok: poll, select\n");

	/* EOF from the peer: EPOLLIN|EPOLLRDHUP, then read() == 0. */
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.u64 = 3;
	CHECK(epoll_ctl(lt, EPOLL_CTL_ADD, s, &ev) == 0, "add rdhup");
	cmd(s, "E\n");
	CHECK(wait_ev(lt, &out, 5000) == 1 && (out.events & EPOLLIN), "EOF: no EPOLLIN");
	CHECK(out.events & EPOLLRDHUP, "EOF: no EPOLLRDHUP (events 0x%x)", out.events);
	CHECK(read(s, &r, 1) == 0, "EOF: read did not return 0");
	printf("ok: EOF, EPOLLRDHUP\n");
	close(s);
	CHECK(waitpid(child, &n, 0) == child && WIFEXITED(n) && WEXITSTATUS(n) == 0,
	      "peer failed (%d)", n);

	/* The set outlives its shimmed socket (libuv keeps its loop's set):
	 * only the app's own events come out of it, even while the shim's
	 * doorbells and daemon messages (the peer just left) arrive. */
	{
		int pfd[2];
		struct epoll_event evs[8];

		CHECK(pipe(pfd) == 0, "pipe");
		ev.events = EPOLLIN;
		ev.data.u64 = 0xabcd;
		CHECK(epoll_ctl(lt, EPOLL_CTL_ADD, pfd[0], &ev) == 0, "add pipe");
		for (int round = 0; round < 5; round++) {
			n = epoll_wait(lt, evs, 8, 100);
			CHECK(n == 0, "outlived set: %d event(s) with nothing ready (data 0x%llx)",
			      n, n > 0 ? (unsigned long long)evs[0].data.u64 : 0ull);
		}
		CHECK(write(pfd[1], "p", 1) == 1, "write pipe");
		n = epoll_wait(lt, evs, 8, 1000);
		CHECK(n == 1 && evs[0].data.u64 == 0xabcd, "outlived set: %d event(s), data 0x%llx",
		      n, n > 0 ? (unsigned long long)evs[0].data.u64 : 0ull);
		close(pfd[0]);
		close(pfd[1]);
	}
	close(lt);
	printf("ok: an epoll set that outlives its shimmed socket\n");
	printf("PASS\n");
	return 0;
}
