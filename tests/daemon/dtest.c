/* SPDX-License-Identifier: MIT */
/* Helpers for the ivlinkd tests: see dtest.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "dtest.h"
#include "support.h"

#define MAX_DAEMONS 16
#define MAX_SHM	    8

static char g_dir[128];
static char g_name[64];
static pid_t g_pids[MAX_DAEMONS];
static char g_logs[MAX_DAEMONS][160];
static unsigned g_ndaemons;
static char g_shm[MAX_SHM][80];
static unsigned g_nshm;
static pid_t g_owner;

static void cleanup(void)
{
	if (getpid() != g_owner)
		return;
	for (unsigned i = 0; i < g_ndaemons; i++) {
		if (g_pids[i] > 0) {
			kill(g_pids[i], SIGKILL);
			waitpid(g_pids[i], NULL, 0);
			g_pids[i] = 0;
		}
	}
	for (unsigned i = 0; i < g_nshm; i++) {
		char p[120];

		snprintf(p, sizeof(p), "/dev/shm/%s", g_shm[i]);
		unlink(p);
	}
	if (g_dir[0] && !getenv("IVL_TEST_KEEP"))
		ts_rm_tree(g_dir);
}

static void on_signal(int sig)
{
	static const char msg[] = "dtest: watchdog or signal: cleaning up\n";

	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	dt_dump_logs();
	cleanup();
	_exit(sig == SIGALRM ? 1 : 128 + sig);
}

void dt_init(const char *name, int timeout_s)
{
	snprintf(g_name, sizeof(g_name), "%s", name);
	snprintf(g_dir, sizeof(g_dir), "/tmp/ivl-%s-XXXXXX", name);
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		exit(1);
	}
	g_owner = getpid();
	atexit(cleanup);
	signal(SIGALRM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)timeout_s);
}

void dt_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL %s: ", g_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	dt_dump_logs();
	exit(1);
}

const char *dt_dir(void)
{
	return g_dir;
}

const char *dt_path(const char *leaf)
{
	static char bufs[8][256];
	static unsigned n;
	char *b = bufs[n++ % 8];

	snprintf(b, 256, "%s/%s", g_dir, leaf);
	return b;
}

void dt_track_shm(const char *name)
{
	if (g_nshm < MAX_SHM)
		snprintf(g_shm[g_nshm++], sizeof(g_shm[0]), "%s", name);
}

void dt_track_pid(pid_t pid)
{
	if (g_ndaemons < MAX_DAEMONS) {
		g_logs[g_ndaemons][0] = '\0';
		g_pids[g_ndaemons++] = pid;
	}
}

void dt_dump_logs(void)
{
	for (unsigned i = 0; i < g_ndaemons; i++) {
		char line[512];
		FILE *f = g_logs[i][0] ? fopen(g_logs[i], "r") : NULL;
		int n = 0;

		if (!f)
			continue;
		fprintf(stderr, "---- %s (last lines)\n", g_logs[i]);
		/* The last 40 lines are enough to see why. */
		while (fgets(line, sizeof(line), f))
			n++;
		rewind(f);
		for (int k = 0; fgets(line, sizeof(line), f); k++)
			if (k >= n - 40)
				fputs(line, stderr);
		fclose(f);
	}
}

int dt_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = -errno;

		close(s);
		return e;
	}
	return s;
}

pid_t dt_daemon_start(const char *bin, const char *sock, const char *const *extra, int *status)
{
	const char *argv[64];
	char ctl[300];
	int n = 0, log;
	pid_t pid;

	if (g_ndaemons == MAX_DAEMONS)
		dt_fail("too many daemons");
	snprintf(g_logs[g_ndaemons], sizeof(g_logs[0]), "%s/daemon-%u.log", g_dir, g_ndaemons);
	argv[n++] = bin;
	argv[n++] = "-F";
	argv[n++] = "--log=stderr";
	argv[n++] = "--log-level=debug";
	argv[n++] = "-S";
	argv[n++] = sock;
	for (; extra && *extra && n < 62; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	log = open(g_logs[g_ndaemons], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid = fork();
	if (pid < 0)
		dt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(log, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(log);
	g_pids[g_ndaemons++] = pid;
	snprintf(ctl, sizeof(ctl), "%s.ctl", sock);
	for (int i = 0; i < 500; i++) {
		int st, s;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			g_pids[g_ndaemons - 1] = 0;
			if (status)
				*status = st;
			return -1;
		}
		/* Ready when the status socket answers with this pid (another
		 * daemon may be live on the same path). */
		s = dt_connect(ctl);
		if (s >= 0) {
			char buf[512], want[48];
			ssize_t got, len = 0;

			while ((got = read(s, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
				len += got;
			buf[len] = '\0';
			close(s);
			snprintf(want, sizeof(want), "daemon pid=%d ", (int)pid);
			if (strstr(buf, want))
				return pid;
		}
		usleep(10000);
	}
	dt_fail("daemon did not come up within 5 s");
}

int dt_daemon_stop(pid_t pid, int sig)
{
	int st = -1;

	kill(pid, sig);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	for (unsigned i = 0; i < g_ndaemons; i++)
		if (g_pids[i] == pid)
			g_pids[i] = 0;
	return st;
}

int dt_recv(int sock, int64_t *val, int *fd, int timeout_ms)
{
	unsigned char buf[8];
	size_t got = 0;

	*fd = -1;
	while (got < 8) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = buf + got, .iov_len = 8 - got};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b)};
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		struct cmsghdr *cm;
		ssize_t n;
		int rc = poll(&pfd, 1, timeout_ms);

		if (rc == 0)
			return -ETIMEDOUT;
		if (rc < 0)
			return -errno;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0)
			return -errno;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int nfd = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				int fds[4];

				memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)nfd);
				for (int i = 0; i < nfd; i++) {
					if (*fd >= 0)
						dt_fail("more than one fd with a message");
					*fd = fds[i];
				}
			}
		}
		if (n == 0) {
			if (got)
				dt_fail("EOF in the middle of a message");
			return 0;
		}
		got += (size_t)n;
	}
	{
		uint64_t le;

		memcpy(&le, buf, 8);
		*val = (int64_t)le; /* x86-64 and aarch64 are little endian */
	}
	return 1;
}

int dt_quiet(int sock, int ms)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};

	return poll(&pfd, 1, ms) == 0;
}

static void other_reset(struct dt_peer *p, unsigned id)
{
	for (unsigned v = 0; v < IVL_VECTORS_LIMIT; v++) {
		if (p->other[id][v] >= 0)
			close(p->other[id][v]);
		p->other[id][v] = -1;
	}
}

/* Handles one post-handshake message. */
static void peer_msg(struct dt_peer *p, int64_t val, int fd)
{
	unsigned v;

	if (val < 0 || val >= IVL_PEERS_LIMIT || val == p->id)
		dt_fail("peer %d: unexpected message %lld (fd %d)", p->id, (long long)val, fd);
	if (fd < 0) {
		other_reset(p, (unsigned)val);
		return;
	}
	for (v = 0; v < p->n_vectors && p->other[val][v] >= 0; v++)
		;
	if (v == p->n_vectors)
		dt_fail("peer %d: more than %u vectors for peer %lld", p->id, p->n_vectors,
			(long long)val);
	p->other[val][v] = fd;
}

int dt_peer_join(struct dt_peer *p, const char *sock, uint32_t n_vectors)
{
	unsigned own = 0;
	int64_t v;
	int fd, rc;
	struct stat st;

	memset(p, 0, sizeof(*p));
	p->shm = -1;
	p->id = -1;
	p->n_vectors = n_vectors;
	for (unsigned i = 0; i < IVL_PEERS_LIMIT; i++)
		for (unsigned k = 0; k < IVL_VECTORS_LIMIT; k++)
			p->other[i][k] = -1;
	p->sock = dt_connect(sock);
	if (p->sock < 0)
		return p->sock;
	rc = dt_recv(p->sock, &v, &fd, 5000);
	if (rc <= 0)
		return rc == 0 ? -ECONNRESET : rc;
	if (v != 0 || fd >= 0)
		dt_fail("first message %lld fd %d, want version 0 without fd", (long long)v, fd);
	rc = dt_recv(p->sock, &v, &fd, 5000);
	if (rc <= 0)
		return rc == 0 ? -ECONNRESET : rc;
	if (v < 0 || v >= IVL_PEERS_LIMIT || fd >= 0)
		dt_fail("second message %lld fd %d, want an id without fd", (long long)v, fd);
	p->id = (int)v;
	rc = dt_recv(p->sock, &v, &fd, 5000);
	if (rc <= 0)
		return rc == 0 ? -ECONNRESET : rc;
	if (v != -1 || fd < 0)
		dt_fail("third message %lld fd %d, want -1 with the region fd", (long long)v, fd);
	p->shm = fd;
	if (fstat(fd, &st) < 0)
		dt_fail("fstat region: %s", strerror(errno));
	p->size = (uint64_t)st.st_size;
	p->base = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p->base == MAP_FAILED)
		dt_fail("mmap region: %s", strerror(errno));
	rc = ivl_region_attach(&p->rg, p->base, p->size);
	if (rc < 0)
		dt_fail("region header does not validate: %s", strerror(-rc));
	while (own < n_vectors) {
		rc = dt_recv(p->sock, &v, &fd, 5000);
		if (rc <= 0)
			return rc == 0 ? -ECONNRESET : rc;
		if (v == p->id) {
			if (fd < 0)
				dt_fail("own id without fd during the handshake");
			p->own[own++] = fd;
			continue;
		}
		peer_msg(p, v, fd);
	}
	return 0;
}

int dt_peer_pump(struct dt_peer *p, int ms)
{
	int n = 0;

	for (;;) {
		int64_t v;
		int fd, rc = dt_recv(p->sock, &v, &fd, ms);

		if (rc == -ETIMEDOUT)
			return n;
		if (rc <= 0)
			dt_fail("peer %d: daemon connection lost (%d)", p->id, rc);
		peer_msg(p, v, fd);
		n++;
	}
}

void dt_peer_close(struct dt_peer *p)
{
	for (unsigned v = 0; v < p->n_vectors; v++)
		if (p->own[v] > 0)
			close(p->own[v]);
	for (unsigned i = 0; i < IVL_PEERS_LIMIT; i++)
		other_reset(p, i);
	if (p->base && p->base != MAP_FAILED)
		munmap(p->base, p->size);
	if (p->shm >= 0)
		close(p->shm);
	if (p->sock >= 0)
		close(p->sock);
	memset(p, 0, sizeof(*p));
	p->sock = p->shm = -1;
}

int dt_proc_fds(pid_t pid)
{
	return ts_proc_fds(pid);
}

long dt_proc_rss_kb(pid_t pid)
{
	return ts_proc_rss_kb(pid);
}
