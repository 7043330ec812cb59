/* SPDX-License-Identifier: MIT */
/* Integration test harness: see harness.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

/* One temp dir per daemon (a test may run several: one per region). */
#define MAX_DAEMONS 4
static char tmpdirs[MAX_DAEMONS][128];
static pid_t owner_pid;

static void rm_tmpdir(const char *dir)
{
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (!tmpdirs[i][0] || (dir && strcmp(dir, tmpdirs[i]) != 0))
			continue;
		ts_rm_tree(tmpdirs[i]);
		tmpdirs[i][0] = '\0';
	}
}

/* Kills what we started and removes the temp dir; async-signal-safe
 * enough for a test (kill, waitpid, unlink, rmdir). */
static void cleanup(void)
{
	if (getpid() != owner_pid)
		return;
	ts_kill_tracked();
	rm_tmpdir(NULL);
}

static void on_signal(int sig)
{
	if (getpid() == owner_pid) {
		static const char msg[] = "harness: timeout or signal, cleaning up\n";

		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing to do */
		}
		cleanup();
	}
	_exit(sig == SIGALRM ? 1 : 128 + sig);
}

const char *it_init(int argc, char **argv, unsigned timeout_s)
{
	const char *d = argc > 1 && argv[1][0] ? argv[1] : getenv("IVLINKD");

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!d || access(d, X_OK) != 0) {
		printf("SKIP: no ivlinkd (pass its path as argv[1] or $IVLINKD)\n");
		exit(IT_SKIP);
	}
	owner_pid = getpid();
	atexit(cleanup);
	signal(SIGALRM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	alarm(timeout_s);
	return d;
}

int64_t it_now_ns(void)
{
	return ts_now_ns();
}

void it_daemon_start(struct it_daemon *d, const char *ivlinkd, const char *size, unsigned vectors)
{
	it_daemon_start_named(d, ivlinkd, size, vectors, NULL);
}

void it_daemon_start_named(struct it_daemon *d, const char *ivlinkd, const char *size,
			   unsigned vectors, const char *name)
{
	char nvec[16], *dir = NULL;
	int64_t deadline;

	memset(d, 0, sizeof(*d));
	for (int i = 0; i < MAX_DAEMONS && !dir; i++)
		if (!tmpdirs[i][0])
			dir = tmpdirs[i];
	IT_CHECK(dir, "more than %d daemons", MAX_DAEMONS);
	snprintf(dir, sizeof(tmpdirs[0]), "/tmp/ivl-itest-XXXXXX");
	IT_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	snprintf(d->sock, sizeof(d->sock), "%s/ivlinkd.sock", dir);
	snprintf(d->uri, sizeof(d->uri), "host:%s", d->sock);
	snprintf(nvec, sizeof(nvec), "%u", vectors);

	d->pid = fork();
	IT_CHECK(d->pid >= 0, "fork: %s", strerror(errno));
	if (d->pid == 0) {
		if (name)
			execl(ivlinkd, ivlinkd, "-F", "-S", d->sock, "-l", size, "-n", nvec,
			      "--max-peers", "8", "--log-level=warn", "--name", name, (char *)NULL);
		else
			execl(ivlinkd, ivlinkd, "-F", "-S", d->sock, "-l", size, "-n", nvec,
			      "--max-peers", "8", "--log-level=warn", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", ivlinkd, strerror(errno));
		_exit(127);
	}
	ts_track_pid(d->pid);
	deadline = it_now_ns() + 10000000000LL;
	while (!ts_can_connect(d->sock)) {
		int st;

		IT_CHECK(waitpid(d->pid, &st, WNOHANG) == 0, "ivlinkd exited at start-up");
		IT_CHECK(it_now_ns() < deadline, "ivlinkd socket never appeared");
		usleep(5000);
	}
}

void it_daemon_stop(struct it_daemon *d)
{
	if (d->pid <= 0)
		return;
	ts_stop(d->pid, SIGTERM, 3000000000LL);
	d->pid = 0;
	rm_tmpdir(d->dir);
}

pid_t it_spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = ts_fork();

	IT_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* The temp dirs are the parent's to remove. */
		for (int i = 0; i < MAX_DAEMONS; i++)
			tmpdirs[i][0] = '\0';
		exit(fn(arg));
	}
	return pid;
}

int it_wait(pid_t pid, unsigned timeout_s)
{
	int killed, st = ts_wait(pid, (int64_t)timeout_s * 1000000000LL, &killed);

	IT_CHECK(st >= 0, "waitpid: %s", strerror(-st));
	if (killed)
		fprintf(stderr, "child %d timed out; killed it\n", (int)pid);
	return st;
}

void it_kill9(pid_t pid)
{
	kill(pid, SIGKILL);
}

struct ivl_endpoint *it_open(const struct it_daemon *d, const char *name, int64_t spin_ns)
{
	struct ivl_endpoint *ep;
	int rc = ts_endpoint_open(&ep, d->uri, name, spin_ns, IVL_LOG_WARN);

	IT_CHECK(rc == 0, "%s: ivl_endpoint_open: %s", name, strerror(-rc));
	return ep;
}

uint32_t it_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns)
{
	int id = ts_find_peer(ep, name, timeout_ns);

	IT_CHECK(id >= 0, "peer '%s' never appeared", name);
	return (uint32_t)id;
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t word_at(uint64_t seed, uint64_t k)
{
	return splitmix(seed * 0x100000001b3ULL ^ k);
}

void it_stream_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len && (off & 7)) {
		*p++ = (uint8_t)(word_at(seed, off / 8) >> (8 * (off & 7)));
		off++;
		len--;
	}
	while (len >= 8) {
		uint64_t w = word_at(seed, off / 8);

		memcpy(p, &w, 8);
		p += 8;
		off += 8;
		len -= 8;
	}
	while (len) {
		*p++ = (uint8_t)(word_at(seed, off / 8) >> (8 * (off & 7)));
		off++;
		len--;
	}
}

size_t it_stream_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
	uint8_t tmp[4096];
	const uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		size_t n = len - done < sizeof(tmp) ? len - done : sizeof(tmp);

		it_stream_fill(seed, off + done, tmp, n);
		if (memcmp(tmp, p + done, n) != 0) {
			for (size_t i = 0; i < n; i++)
				if (tmp[i] != p[done + i])
					return done + i;
		}
		done += n;
	}
	return len;
}

uint64_t it_cksum(uint64_t cks, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	/* FNV-1a, 64 bit: order dependent, independent of chunking. */
	if (cks == 0)
		cks = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++)
		cks = (cks ^ p[i]) * 0x100000001b3ULL;
	return cks;
}

uint64_t it_rand(uint64_t *state)
{
	*state += 1;
	return splitmix(*state);
}
