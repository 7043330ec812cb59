/* SPDX-License-Identifier: MIT */
/* ivlink-bench: a host run: a private ivlinkd, a server and a client per mode. */
#define _GNU_SOURCE
#include "ivb.h"

/* ------------------------------------------------------------ host run */

#define MAX_CHILDREN 4
static pid_t children[MAX_CHILDREN];

static void track(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] <= 0) {
			children[i] = pid;
			return;
		}
}

static void untrack(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* Stops a process we started: TERM, then KILL after a grace period. */
static void stop_pid(pid_t pid, int grace_ms)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < grace_ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			untrack(pid);
			return;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	untrack(pid);
}

static void rm_tmpdir(void)
{
	char path[PATH_MAX + 64];
	const char *names[] = {"ivlinkd.sock", "ivlinkd.sock.ctl", "unix.sock", "ivlinkd.log"};

	if (!ivb_tmpdir[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", ivb_tmpdir, names[i]);
		unlink(path);
	}
	rmdir(ivb_tmpdir);
	ivb_tmpdir[0] = 0;
}

void ivb_cleanup(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		stop_pid(children[i], 500);
	if (ivb_daemon_pid > 0)
		stop_pid(ivb_daemon_pid, 2000);
	ivb_daemon_pid = -1;
	rm_tmpdir();
}

void ivb_on_signal(int sig)
{
	/* kill(2) is async-signal safe; the children's own timeouts and the
	 * daemon's handling of SIGTERM do the rest. */
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGTERM);
	if (ivb_daemon_pid > 0)
		kill(ivb_daemon_pid, SIGTERM);
	_exit(128 + sig);
}

/* Starts argv with stdout on a pipe (returned in *out_fd). */
static pid_t spawn(char *const argv[], int *out_fd, int cpu)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(p[0]);
		close(p[1]);
		return -err;
	}
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		/* Pinning here covers ivlink-run too, whatever it does. */
		bench_pin_to(cpu);
		execvp(argv[0], argv);
		fprintf(stderr, "ivlink-bench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	track(pid);
	return pid;
}

/* Reads one line from fd within the deadline. Returns its length, 0 at EOF,
 * -ETIMEDOUT. A byte at a time: these are a handful of short lines. */
static int read_line(int fd, char *buf, size_t len, int64_t deadline)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = (deadline - ivl__now_ns()) / 1000000;
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left) <= 0)
			continue;
		r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf[n] == '\n') {
			n++;
			break;
		}
		n++;
	}
	buf[n] = 0;
	return (int)n;
}

static int start_daemon(char *endpoint, size_t len)
{
	char path[PATH_MAX], sock[PATH_MAX + 32], logp[PATH_MAX + 32];
	const char *bin = ivb_opt.daemon;
	int64_t deadline;
	pid_t pid;

	if (!bin) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", ivb_self_exe);
		*strrchr(dir, '/') = 0;
		if (ivb_fmt(path, sizeof(path), "%s/../host-daemon/ivlinkd", dir) < 0)
			return -ENAMETOOLONG;
		bin = path;
	}
	if (access(bin, X_OK) < 0)
		return -ENOENT;
	snprintf(sock, sizeof(sock), "%s/ivlinkd.sock", ivb_tmpdir);
	snprintf(logp, sizeof(logp), "%s/ivlinkd.log", ivb_tmpdir);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl(bin, bin, "-F", "-S", sock, "-l", "64M", "--log-level=warn", (char *)NULL);
		_exit(127);
	}
	ivb_daemon_pid = pid;
	deadline = ivl__now_ns() + 10000000000LL;
	for (;;) {
		struct stat sb;
		int status;

		if (stat(sock, &sb) == 0 && S_ISSOCK(sb.st_mode))
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			ivb_daemon_pid = -1;
			ivb_msg("ivlinkd (%s) exited at start; see its log above", bin);
			return -ECHILD;
		}
		if (ivl__now_ns() > deadline)
			return -ETIMEDOUT;
		usleep(10000);
	}
	return ivb_fmt(endpoint, len, "host:%s", sock);
}

static void join_sizes(char *buf, size_t len, const uint32_t *s, uint32_t n)
{
	buf[0] = 0;
	for (uint32_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%u", i ? "," : "", s[i]);
}

/* Runs one mode: a server, then a client, both re-executions of this
 * program (under ivlink-run for the shim). Returns 0 or -errno. */
static int run_mode(const struct mode_def *m, const char *endpoint, const char *ivlink_run)
{
	char *sargv[32], *cargv[40], ready[256], line[4096], val[PATH_MAX];
	char iters[16], dur[16], rep[16], tmo[16], scpu[8], ccpu[8], lsz[128], tsz[192],
	    addr[PATH_MAX];
	int sn = 0, cn = 0, sfd = -1, cfd = -1, status, rc = 0, lines = 0;
	pid_t spid, cpid = -1;
	int64_t deadline;

	snprintf(iters, sizeof(iters), "%u", ivb_opt.iters);
	snprintf(dur, sizeof(dur), "%u", ivb_opt.duration_ms);
	snprintf(rep, sizeof(rep), "%u", ivb_opt.repeat);
	snprintf(tmo, sizeof(tmo), "%u", ivb_opt.timeout_s);
	snprintf(scpu, sizeof(scpu), "%d", ivb_opt.cpus[1]);
	snprintf(ccpu, sizeof(ccpu), "%d", ivb_opt.cpus[0]);
	join_sizes(lsz, sizeof(lsz), ivb_opt.lat_sizes, ivb_opt.n_lat_sizes);
	join_sizes(tsz, sizeof(tsz), ivb_opt.tput_sizes, ivb_opt.n_tput_sizes);

	if (m->shim) {
		sargv[sn++] = (char *)ivlink_run;
		cargv[cn++] = (char *)ivlink_run;
	}
	sargv[sn++] = ivb_self_exe;
	cargv[cn++] = ivb_self_exe;
	sargv[sn++] = "--role";
	sargv[sn++] = "server";
	cargv[cn++] = "--role";
	cargv[cn++] = "client";
	sargv[sn++] = "--mode";
	sargv[sn++] = (char *)m->name;
	cargv[cn++] = "--mode";
	cargv[cn++] = (char *)m->name;
	sargv[sn++] = "--timeout";
	sargv[sn++] = tmo;
	cargv[cn++] = "--timeout";
	cargv[cn++] = tmo;
	cargv[cn++] = "--iters";
	cargv[cn++] = iters;
	cargv[cn++] = "--duration";
	cargv[cn++] = dur;
	cargv[cn++] = "--lat-sizes";
	cargv[cn++] = lsz;
	cargv[cn++] = "--tput-sizes";
	cargv[cn++] = tsz;
	cargv[cn++] = "--no-table";
	cargv[cn++] = "--repeat";
	cargv[cn++] = rep;
	if (m->kind == K_NATIVE) {
		sargv[sn++] = "--endpoint";
		sargv[sn++] = (char *)endpoint;
		cargv[cn++] = "--endpoint";
		cargv[cn++] = (char *)endpoint;
	} else if (m->kind == K_UNIX) {
		ivb_fmt(addr, sizeof(addr), "unix:%s/unix.sock", ivb_tmpdir);
		sargv[sn++] = "--listen";
		sargv[sn++] = addr;
	} else {
		sargv[sn++] = "--listen";
		sargv[sn++] = "127.0.0.1:0";
	}
	sargv[sn] = NULL;

	spid = spawn(sargv, &sfd, ivb_opt.cpus[1]);
	if (spid < 0)
		return (int)spid;
	deadline = ivl__now_ns() + (int64_t)ivb_opt.timeout_s * 1000000000LL;
	for (;;) {
		rc = read_line(sfd, ready, sizeof(ready), deadline);
		if (rc <= 0) {
			ivb_msg("%s: the server did not get ready (%s)", m->name,
				rc == 0 ? "it exited" : "timeout");
			rc = rc == 0 ? -ECHILD : rc;
			goto out;
		}
		/* ivlink-run may print its own lines first. */
		if (strncmp(ready, "IVB-READY ", 10) == 0)
			break;
	}
	if (ivb_kv(ready, "peer", val, sizeof(val))) {
		cargv[cn++] = "--peer";
		cargv[cn++] = val;
	} else if (ivb_kv(ready, "port", val, sizeof(val))) {
		ivb_fmt(addr, sizeof(addr), "127.0.0.1:%s", val);
		cargv[cn++] = "--connect";
		cargv[cn++] = addr;
	} else if (ivb_kv(ready, "path", val, sizeof(val))) {
		ivb_fmt(addr, sizeof(addr), "unix:%s", val);
		cargv[cn++] = "--connect";
		cargv[cn++] = addr;
	}
	cargv[cn] = NULL;
	cpid = spawn(cargv, &cfd, ivb_opt.cpus[0]);
	if (cpid < 0) {
		rc = (int)cpid;
		goto out;
	}
	/* Generous: every test's timeout could be spent once. */
	deadline = ivl__now_ns() + (int64_t)(ivb_opt.timeout_s * 2u +
					     (ivb_opt.n_lat_sizes + ivb_opt.n_tput_sizes) * 5u) *
				       1000000000LL;
	while ((rc = read_line(cfd, line, sizeof(line), deadline)) > 0)
		lines += ivb_parse_result_line(line);
	if (rc < 0)
		ivb_msg("%s: the client timed out", m->name);
	if (waitpid(cpid, &status, 0) == cpid) {
		untrack(cpid);
		cpid = -1;
		if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			rc = -ECHILD;
	}
out:
	if (cpid > 0)
		stop_pid(cpid, 500);
	/* A server that got its END exits by itself; give it a moment. */
	for (int i = 0; i < 200; i++) {
		if (waitpid(spid, &status, WNOHANG) == spid) {
			untrack(spid);
			spid = -1;
			break;
		}
		usleep(10000);
	}
	if (spid > 0)
		stop_pid(spid, 500);
	if (sfd >= 0)
		close(sfd);
	if (cfd >= 0)
		close(cfd);
	return rc < 0 ? rc : lines > 0 ? 0 : -ENODATA;
}

/* The machine is shared: its load next to the figures says how much to
 * trust them. */
static void load_meta(const char *key)
{
	char buf[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");

	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = 0;
		/* The three averages only. */
		char *p = buf;

		for (int i = 0; i < 3 && p; i++)
			p = strchr(p + 1, ' ');
		if (p)
			*p = 0;
		ivb_add_meta(key, buf);
	}
	fclose(f);
}

static void host_meta(void)
{
	char buf[256] = "unknown", date[64];
	struct utsname u;
	time_t now = time(NULL);
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (f) {
		char line[512];

		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
				snprintf(buf, sizeof(buf), "%s", strchr(line, ':') + 2);
				buf[strcspn(buf, "\n")] = 0;
				break;
			}
		}
		fclose(f);
	}
	ivb_add_meta("cpu", buf);
	snprintf(buf, sizeof(buf), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	ivb_add_meta("cpus", buf);
	if (uname(&u) == 0) {
		ivb_add_meta("host", u.nodename);
		ivb_add_meta("kernel", u.release);
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
	ivb_add_meta("date", date);
	ivb_add_meta("label", ivb_opt.label ? ivb_opt.label : "host");
	snprintf(buf, sizeof(buf), "%u", ivb_opt.iters);
	ivb_add_meta("iters", buf);
	snprintf(buf, sizeof(buf), "%u", ivb_opt.duration_ms);
	ivb_add_meta("duration_ms", buf);
	ivb_add_meta("quick", ivb_opt.quick ? "yes" : "no");
	snprintf(buf, sizeof(buf), "%u", ivb_opt.repeat);
	ivb_add_meta("repeat", buf);
	load_meta("loadavg_start");
	snprintf(buf, sizeof(buf), "%d,%d", ivb_opt.cpus[0], ivb_opt.cpus[1]);
	ivb_add_meta("pinned_cpus", buf);
}

int ivb_run_host(void)
{
	char endpoint[PATH_MAX + 8] = "", runpath[PATH_MAX] = "", *save = NULL;
	bool daemon_tried = false;
	int failures = 0, ran = 0;

	snprintf(ivb_tmpdir, sizeof(ivb_tmpdir), "%s/ivlink-bench.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(ivb_tmpdir)) {
		ivb_msg("mkdtemp: %s", strerror(errno));
		ivb_tmpdir[0] = 0;
		return 1;
	}
	host_meta();
	if (ivb_opt.endpoint)
		snprintf(endpoint, sizeof(endpoint), "%s", ivb_opt.endpoint);
	if (ivb_opt.ivlink_run) {
		snprintf(runpath, sizeof(runpath), "%s", ivb_opt.ivlink_run);
	} else {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", ivb_self_exe);
		*strrchr(dir, '/') = 0;
		ivb_fmt(runpath, sizeof(runpath), "%s/../guest-lib/preload/ivlink-run", dir);
	}

	for (char *name = strtok_r(ivb_opt.modes, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		const struct mode_def *m = ivb_mode_find(name);
		int rc;

		if (!m) {
			ivb_msg("unknown mode %s (see --help)", name);
			return 2;
		}
		if (m->shim && access(runpath, X_OK) < 0) {
			ivb_add_note(
			    ivb_store.skipped, &ivb_store.n_skipped, MAX_MODES * 2, m->name,
			    "ivlink-run not found (build guest-lib/preload or --ivlink-run PATH)");
			ivb_msg("skipping %s: no ivlink-run at %s", m->name, runpath);
			continue;
		}
		if ((m->kind == K_NATIVE || m->shim) && !endpoint[0]) {
			if (!daemon_tried) {
				daemon_tried = true;
				rc = start_daemon(endpoint, sizeof(endpoint));
				if (rc < 0)
					ivb_msg(
					    "no ivlinkd for the native modes: %s (--daemon PATH or "
					    "--endpoint URI)",
					    strerror(-rc));
				else
					setenv(IVL_ENV_ENDPOINT, endpoint, 1);
			}
			if (!endpoint[0]) {
				ivb_add_note(ivb_store.skipped, &ivb_store.n_skipped, MAX_MODES * 2,
					     m->name,
					     "no ivlinkd (--daemon PATH or --endpoint URI)");
				continue;
			}
		}
		ivb_msg("running %s ...", m->name);
		rc = run_mode(m, endpoint, runpath);
		ran++;
		if (rc < 0) {
			char why[128];

			snprintf(why, sizeof(why), "failed: %s", strerror(-rc));
			ivb_add_note(ivb_store.failed, &ivb_store.n_failed, MAX_MODES * 2, m->name,
				     why);
			failures++;
		}
	}
	ivb_cleanup();
	load_meta("loadavg_end");
	ivb_print_human(stdout);
	if (ivb_opt.out && ivb_write_outputs() < 0)
		failures++;
	return failures || ran == 0 ? 1 : 0;
}
