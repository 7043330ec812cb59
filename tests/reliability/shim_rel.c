/* SPDX-License-Identifier: MIT */
/* The shim tests' driver side: see shim_rel.h. */
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
#include <sys/socket.h>
#include <unistd.h>

#include <ivlink/layout.h>

#include "shim_rel.h"
#include "support.h"

static char preload_env[2048];
static char endpoint_env[256];
static char ring_env[64];
static int sanitized;

/* The sanitizer runtimes this process runs with, ':' separated. */
static void sanitizer_runtimes(char *out, size_t len)
{
	static const char *const names[] = {"/libasan.so", "/libubsan.so"};
	char line[1024];
	FILE *f = fopen("/proc/self/maps", "r");

	out[0] = '\0';
	if (!f)
		return;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			char *p = strchr(line, '/');
			char *nl = strchr(line, '\n');

			if (!p || !strstr(p, names[i]))
				continue;
			if (nl)
				*nl = '\0';
			if (!strstr(out, p))
				snprintf(out + strlen(out), len - strlen(out), "%s%s",
					 out[0] ? ":" : "", p);
			break;
		}
	}
	fclose(f);
}

void shim_rel_setup(const struct ts_daemon *d, const char *preload, unsigned ring_size)
{
	char rt[1024];

	sanitizer_runtimes(rt, sizeof(rt));
	snprintf(preload_env, sizeof(preload_env), "%s%s%s", rt, rt[0] ? ":" : "", preload);
	snprintf(endpoint_env, sizeof(endpoint_env), "%s", d->uri);
	snprintf(ring_env, sizeof(ring_env), "%u", ring_size);
	sanitized = rt[0] != '\0';
	if (rt[0])
		printf("shim children preload the sanitizer runtimes: %s\n", rt);
}

int shim_rel_sanitized(void)
{
	return sanitized;
}

void shim_proc_start(struct shim_proc *p, char *const *argv, int shimmed)
{
	int in[2], out[2];

	CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	p->pid = fork();
	CHECK(p->pid >= 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		alarm(0);
		if (shimmed) {
			setenv("LD_PRELOAD", preload_env, 1);
			setenv("IVLINK_ENDPOINT", endpoint_env, 1);
			setenv("IVLINK_RING_SIZE", ring_env, 1);
			/* A short spin: the two shimmed processes and the
			 * driver share two vCPUs. */
			setenv("IVLINK_SPIN_NS", "20000", 0);
			/* Bursts of 1,000 connects on a loaded CI machine
			 * (ASan): give the server's shim time to accept
			 * rather than count fallbacks as failures. */
			setenv("IVLINK_ACCEPT_TIMEOUT_MS", "15000", 0);
		}
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	ts_track_pid(p->pid);
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
	p->len = 0;
}

int shim_proc_line(struct shim_proc *p, char *line, size_t len, int timeout_ms)
{
	int64_t deadline = ts_now_ns() + (int64_t)timeout_ms * 1000000LL;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pf = {.fd = p->out, .events = POLLIN};
		int64_t left;
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - p->buf);

			snprintf(line, len, "%.*s", (int)l, p->buf);
			memmove(p->buf, nl + 1, p->len - l - 1);
			p->len -= l + 1;
			return 1;
		}
		if (p->len == sizeof(p->buf))
			p->len = 0; /* an absurd line: drop it */
		left = (deadline - ts_now_ns()) / 1000000;
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		n = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		p->len += (size_t)n;
	}
}

void shim_proc_expect(struct shim_proc *p, const char *prefix, char *line, size_t len,
		      int timeout_ms)
{
	int64_t deadline = ts_now_ns() + (int64_t)timeout_ms * 1000000LL;

	for (;;) {
		int left = (int)((deadline - ts_now_ns()) / 1000000);
		int rc = shim_proc_line(p, line, len, left > 0 ? left : 0);

		CHECK(rc != 0, "process %d ended before '%s'", (int)p->pid, prefix);
		CHECK(rc > 0, "process %d: no '%s' within %d ms", (int)p->pid, prefix, timeout_ms);
		if (!strncmp(line, prefix, strlen(prefix)))
			return;
		CHECK(strncmp(line, "BAD", 3) != 0, "process %d: %s", (int)p->pid, line);
	}
}

void shim_proc_send(struct shim_proc *p, const char *line)
{
	size_t l = strlen(line);

	CHECK(write(p->in, line, l) == (ssize_t)l, "write to %d: %s", (int)p->pid, strerror(errno));
}

static void close_pipes(struct shim_proc *p)
{
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
}

int shim_proc_stop(struct shim_proc *p, int sig, unsigned timeout_ms)
{
	int st;

	if (p->pid <= 0)
		return 0;
	if (sig)
		kill(p->pid, sig);
	st = ts_wait(p->pid, timeout_ms);
	close_pipes(p);
	p->pid = 0;
	return st;
}

void shim_proc_kill9(struct shim_proc *p)
{
	ts_kill9(p->pid);
	close_pipes(p);
	p->pid = 0;
}

int shim_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  getsockname(s, (struct sockaddr *)&a, &l) == 0,
	      "free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

int shim_peer_of(const struct ivl_region *rg, pid_t pid)
{
	for (uint32_t id = 0; id < rg->hdr.max_peers; id++) {
		const struct ivl_peer_entry *e = ivl_region_peer(rg, id);

		if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == IVL_PEER_UP &&
		    __atomic_load_n(&e->pid, __ATOMIC_RELAXED) == (uint32_t)pid)
			return (int)id;
	}
	return -ENOENT;
}

unsigned shim_accel_halves(const struct ivl_region *rg, uint32_t id)
{
	unsigned n = 0;

	for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
		const struct ivl_chan_half *h = ivl_region_chan(rg, id, s);
		uint32_t st = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);
		uint32_t kind = __atomic_load_n(&h->shim.kind, __ATOMIC_RELAXED);
		uint32_t rdv = __atomic_load_n(&h->shim.rdv, __ATOMIC_RELAXED);
		uint32_t rs = __atomic_load_n(&h->remote_slot, __ATOMIC_RELAXED);

		if (st != IVL_CHAN_OFFERED)
			continue;
		if ((kind == IVL_SHIM_PROPOSAL && rdv == IVL_RDV_CONFIRMED) ||
		    (kind == IVL_SHIM_ACCEPT && rs != IVL_SLOT_NONE))
			n++;
	}
	return n;
}

unsigned shim_used_halves(const struct ivl_region *rg, uint32_t id)
{
	unsigned n = 0;

	for (uint32_t s = 0; s < rg->hdr.chan_slots; s++)
		if (__atomic_load_n(&ivl_region_chan(rg, id, s)->state, __ATOMIC_ACQUIRE) !=
		    IVL_CHAN_FREE)
			n++;
	return n;
}

void shim_dump_halves(const struct ivl_region *rg, uint32_t id)
{
	unsigned hist[8][8] = {{0}};

	for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
		const struct ivl_chan_half *h = ivl_region_chan(rg, id, s);
		uint32_t st = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);
		uint32_t kind = __atomic_load_n(&h->shim.kind, __ATOMIC_RELAXED);

		if (st != IVL_CHAN_FREE)
			hist[st & 7][kind & 7]++;
	}
	for (unsigned st = 0; st < 8; st++)
		for (unsigned k = 0; k < 8; k++)
			if (hist[st][k])
				fprintf(stderr, "  peer %u: %u halves in state %u, shim kind %u\n",
					id, hist[st][k], st, k);
}
