/* SPDX-License-Identifier: MIT */
/* Reliability test helpers: see rel.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rel.h"
#include "support.h"

#define MAX_SHM 8

static char tmpdir[128];
static char shm_names[MAX_SHM][80];
static int n_shm;
static pid_t owner_pid;

static void rm_tmpdir(void)
{
	if (!tmpdir[0] || getenv("IVL_TEST_KEEP"))
		return;
	ts_rm_tree(tmpdir);
}

/* Kills what we started (by pid), removes the temp dir and shm files. */
static void cleanup(void)
{
	char p[128];

	if (getpid() != owner_pid)
		return;
	ts_kill_tracked();
	for (int i = 0; i < n_shm; i++) {
		snprintf(p, sizeof(p), "/dev/shm/%.79s", shm_names[i]);
		unlink(p);
	}
	n_shm = 0;
	rm_tmpdir();
	tmpdir[0] = '\0';
}

static void on_signal(int sig)
{
	static const char msg[] = "rel: watchdog or signal: cleaning up\n";

	if (getpid() == owner_pid) {
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing more to do */
		}
		cleanup();
	}
	_exit(sig == SIGALRM ? 1 : 128 + sig);
}

/* A test killed by SIGBUS (region_shrunk_survives without the region
 * guard, say) still stops what it started; then it dies of the signal.
 * Installed before any region is mapped, so libivlink's guard chains to it
 * for faults that are not in a region. */
static void on_fatal(int sig)
{
	static const char msg[] = "rel: fatal signal: cleaning up\n";

	if (getpid() == owner_pid) {
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing more to do */
		}
		cleanup();
	}
	/* Back to the default action, for the whole process (also when the
	 * region guard chained to us): the faulting access runs again on
	 * return and now kills the process as it would have. */
	signal(sig, SIG_DFL);
}

const char *rel_init(int argc, char **argv, const char *name, unsigned timeout_s)
{
	const char *d = argc > 1 && argv[1][0] ? argv[1] : getenv("IVLINKD");

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!d || access(d, X_OK) != 0) {
		printf("SKIP: no ivlinkd (pass its path as argv[1] or $IVLINKD)\n");
		exit(REL_SKIP);
	}
	owner_pid = getpid();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ivl-rel-%s-XXXXXX", name);
	REL_CHECK(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	atexit(cleanup);
	signal(SIGALRM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_fatal;
		sa.sa_flags = 0;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
	}
	alarm(timeout_s);
	return d;
}

const char *rel_dir(void)
{
	return tmpdir;
}

const char *rel_path(const char *leaf)
{
	static char buf[8][256];
	static unsigned k;
	char *b = buf[k++ % 8];

	snprintf(b, sizeof(buf[0]), "%s/%s", tmpdir, leaf);
	return b;
}

void rel_track_shm(const char *name)
{
	if (n_shm < MAX_SHM)
		snprintf(shm_names[n_shm++], sizeof(shm_names[0]), "%s", name);
}

unsigned rel_iters(unsigned dflt)
{
	const char *s = getenv("IVLINK_RELIABILITY_ITERS");
	long v = s ? strtol(s, NULL, 10) : 0;

	return v > 0 ? (unsigned)v : dflt;
}

uint64_t rel_seed(uint64_t dflt)
{
	const char *s = getenv("IVLINK_RELIABILITY_SEED");

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

int64_t rel_now_ns(void)
{
	return ts_now_ns();
}

void rel_daemon_start(struct rel_daemon *d, const char *ivlinkd, const char *leaf,
		      const char *const *extra, unsigned nofile)
{
	const char *args[40];
	int64_t deadline;
	int n = 0;

	memset(d, 0, sizeof(*d));
	snprintf(d->sock, sizeof(d->sock), "%s", rel_path(leaf));
	snprintf(d->ctl, sizeof(d->ctl), "%s.ctl", d->sock);
	snprintf(d->uri, sizeof(d->uri), "host:%s", d->sock);
	args[n++] = ivlinkd;
	args[n++] = "-F";
	args[n++] = "-S";
	args[n++] = d->sock;
	args[n++] = "--log-level=warn";
	for (int i = 0; extra && extra[i] && n < 38; i++)
		args[n++] = extra[i];
	args[n] = NULL;

	fflush(stdout);
	fflush(stderr);
	d->pid = fork();
	REL_CHECK(d->pid >= 0, "fork: %s", strerror(errno));
	if (d->pid == 0) {
		if (nofile) {
			struct rlimit rl = {.rlim_cur = nofile, .rlim_max = nofile};

			setrlimit(RLIMIT_NOFILE, &rl);
		}
		execv(ivlinkd, (char *const *)args);
		fprintf(stderr, "exec %s: %s\n", ivlinkd, strerror(errno));
		_exit(127);
	}
	ts_track_pid(d->pid);
	deadline = rel_now_ns() + 10000000000LL;
	while (!ts_can_connect(d->ctl)) {
		int st;

		REL_CHECK(waitpid(d->pid, &st, WNOHANG) == 0, "ivlinkd exited at start-up (%d)",
			  st);
		REL_CHECK(rel_now_ns() < deadline, "ivlinkd status socket never appeared");
		usleep(5000);
	}
}

int rel_daemon_stop(struct rel_daemon *d, int sig)
{
	int st;

	if (d->pid <= 0)
		return 0;
	st = ts_stop(d->pid, sig, 5000000000LL);
	d->pid = 0;
	return st;
}

pid_t rel_spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = ts_fork();

	REL_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		n_shm = 0;
		tmpdir[0] = '\0';
		exit(fn(arg));
	}
	return pid;
}

pid_t rel_exec(char *const *argv)
{
	pid_t pid = ts_fork();

	REL_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

int rel_wait(pid_t pid, unsigned timeout_ms)
{
	int killed, st = ts_wait(pid, (int64_t)timeout_ms * 1000000LL, &killed);

	REL_CHECK(st >= 0, "waitpid %d: %s", (int)pid, strerror(-st));
	if (killed) {
		fprintf(stderr, "child %d did not finish in %u ms; killed it\n", (int)pid,
			timeout_ms);
		return -1;
	}
	return st;
}

void rel_track_pid(pid_t pid)
{
	ts_track_pid(pid);
}

void rel_kill9(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ts_forget_pid(pid);
}

int rel_fd_count(pid_t pid)
{
	return ts_proc_fds(pid);
}

uint64_t rel_rand(uint64_t *state)
{
	return it_rand(state);
}

struct ivl_endpoint *rel_open(const struct rel_daemon *d, const char *name, int64_t spin_ns)
{
	struct ivl_endpoint *ep;
	int rc = ts_endpoint_open(&ep, d->uri, name, spin_ns, IVL_LOG_ERROR);

	REL_CHECK(rc == 0, "%s: ivl_endpoint_open: %s", name, strerror(-rc));
	return ep;
}

int rel_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns)
{
	return ts_find_peer(ep, name, timeout_ns);
}

struct pair_arg {
	struct ivl_endpoint *ep;
	uint32_t remote;
	const char *name;
	const struct ivl_channel_opts *o;
	int64_t timeout_ns;
	struct ivl_channel *ch;
	int rc;
};

static void *pair_side(void *arg)
{
	struct pair_arg *p = arg;

	p->rc = ivl_channel_open(p->ep, p->name, p->remote, p->o, p->timeout_ns, &p->ch);
	return NULL;
}

int rel_pair_open(struct ivl_endpoint *a, struct ivl_endpoint *b, const char *name,
		  const struct ivl_channel_opts *o, int64_t timeout_ns, struct ivl_channel **ca,
		  struct ivl_channel **cb)
{
	struct pair_arg pa = {a, ivl_endpoint_id(b), name, o, timeout_ns, NULL, 0};
	struct pair_arg pb = {b, ivl_endpoint_id(a), name, o, timeout_ns, NULL, 0};
	pthread_t t;

	if (pthread_create(&t, NULL, pair_side, &pa) != 0)
		return -EAGAIN;
	pair_side(&pb);
	pthread_join(t, NULL);
	if (pa.rc < 0 || pb.rc < 0) {
		ivl_channel_close(pa.ch);
		ivl_channel_close(pb.ch);
		return pa.rc < 0 ? pa.rc : pb.rc;
	}
	*ca = pa.ch;
	*cb = pb.ch;
	return 0;
}

void rel_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	it_stream_fill(seed, off, buf, len);
}

size_t rel_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
	return it_stream_check(seed, off, buf, len);
}

int rel_ivlinkctl_json(const char *ivlinkctl, const char *sock, char *out, size_t len)
{
	char cmd[512];
	size_t n = 0, r;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "%s status --json --socket %s 2>/dev/null", ivlinkctl, sock);
	f = popen(cmd, "r");
	REL_CHECK(f, "popen: %s", strerror(errno));
	while (n + 1 < len && (r = fread(out + n, 1, len - 1 - n, f)) > 0)
		n += r;
	out[n] = '\0';
	/* Drain what did not fit, so that the child is not blocked. */
	while (fread(cmd, 1, sizeof(cmd), f) > 0)
		;
	st = pclose(f);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ------------------------------------------------------------ JSON check */

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_value(const char *p, int depth);

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (!*p)
				return NULL;
		}
		p++;
	}
	return *p == '"' ? p + 1 : NULL;
}

static const char *json_value(const char *p, int depth)
{
	if (depth > 64)
		return NULL;
	p = ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		int obj = *p == '{';

		p = ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = json_string(ws(p));
				if (!p)
					return NULL;
				p = ws(p);
				if (*p++ != ':')
					return NULL;
			}
			p = json_value(p, depth + 1);
			if (!p)
				return NULL;
			p = ws(p);
			if (*p == ',') {
				p++;
				continue;
			}
			return *p == close ? p + 1 : NULL;
		}
	}
	if (*p == '"')
		return json_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		char *end;

		strtod(p, &end);
		return end == p ? NULL : end;
	}
	return NULL;
}

int rel_json_valid(const char *s)
{
	const char *p = json_value(s, 0);

	return p && *ws(p) == '\0';
}
