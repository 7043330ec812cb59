/* SPDX-License-Identifier: MIT */
/*
 * A region file shrunk under everyone (issue 10, item 1). Named regions in
 * /dev/shm and in a hugetlbfs directory cannot be sealed: any client (it
 * holds a read-write fd) or the file's owner can ftruncate() them, and each
 * access beyond the new end used to kill every peer, both shim ends and
 * ivlinkd with SIGBUS.
 *
 * For each kind (shm; hugetlbfs, with a hugetlbfs mount and huge pages
 * reserved by the test and put back after), while a shimmed client and
 * server (shim_peer) exchange checked data and two native endpoints of this
 * process stream through a channel, the file is truncated to one page (one
 * huge page) five times, 300 ms apart. Verified:
 *  - nobody dies of a signal: the shim server is alive, the shim client
 *    ends with exit 0 or 1 (a clean error it reported), the native sender
 *    and receiver return (bytes right, or an -errno), ivlinkd answers
 *    `ivlinkctl status` and reports the shrinks; the file has its size back;
 *  - afterwards a fresh shim pair and a fresh native pair work, every byte
 *    checked.
 * The memfd region (the default) is sealed: ftruncate() fails with EPERM,
 * checked on the fd a client receives.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim_rel.h"

#define HUGE_PAGE (2u << 20)
#define SHRINKS	  5

struct native {
	struct ivl_channel *tx, *rx;
	uint64_t seed;
	volatile int stop;
	uint64_t moved;
	long tx_err, rx_err;
};

static void *native_tx(void *arg)
{
	struct native *n = arg;
	uint8_t buf[8192];
	uint64_t off = 0;

	while (!n->stop) {
		ssize_t r;

		ts_stream_fill(n->seed, off, buf, sizeof(buf));
		r = ivl_send(n->tx, buf, sizeof(buf), 0);
		if (r < 0) {
			n->tx_err = r;
			return NULL;
		}
		off += (uint64_t)r;
	}
	return NULL;
}

static void *native_rx(void *arg)
{
	struct native *n = arg;
	uint8_t buf[8192];

	for (;;) {
		ssize_t r = ivl_recv(n->rx, buf, sizeof(buf), 0);

		if (r <= 0) {
			n->rx_err = r ? r : -EPIPE;
			return NULL;
		}
		/* Bytes may be wrong after the shrink (the lost ring pages
		 * read as zeros): that is the corruption every member can
		 * cause; counted, not judged. Before it they must be right. */
		n->moved += (uint64_t)r;
		if (n->stop)
			return NULL;
	}
}

static char huge_dir[256];
static long huge_saved = -1;

static void huge_cleanup(void)
{
	if (huge_dir[0])
		umount2(huge_dir, MNT_DETACH);
	if (huge_saved >= 0) {
		FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");

		if (f) {
			fprintf(f, "%ld\n", huge_saved);
			fclose(f);
		}
	}
}

/* Reserves npages huge pages (more if the machine has them) and mounts
 * hugetlbfs in the test dir. Fails the test if it cannot. */
static const char *huge_setup(long npages)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	long have = 0;

	CHECK(f, "cannot open /proc/sys/vm/nr_hugepages: %s (run as root)", strerror(errno));
	CHECK(fscanf(f, "%ld", &have) == 1, "nr_hugepages unreadable");
	huge_saved = have;
	atexit(huge_cleanup);
	if (have < npages) {
		rewind(f);
		fprintf(f, "%ld\n", have + npages);
	}
	fclose(f);
	snprintf(huge_dir, sizeof(huge_dir), "%s", ts_path("huge"));
	CHECK(mkdir(huge_dir, 0700) == 0, "mkdir %s: %s", huge_dir, strerror(errno));
	CHECK(mount("none", huge_dir, "hugetlbfs", 0, "pagesize=2M") == 0,
	      "mount hugetlbfs on %s: %s", huge_dir, strerror(errno));
	return huge_dir;
}

static void shim_pair(const char *what, int must_pass)
{
	struct shim_proc S, C;
	char port[16], line[256];
	int st;

	snprintf(port, sizeof(port), "%d", shim_free_port());
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", "-k", NULL};

		shim_proc_start(&S, av, 1);
		shim_proc_expect(&S, "LISTEN", line, sizeof(line), 10000);
	}
	{
		char *const av[] = {SHIM_PEER, "client", port, "8", "4", "65536", "5", "0", NULL};

		shim_proc_start(&C, av, 1);
		if (must_pass)
			shim_proc_expect(&C, "DONE", line, sizeof(line), 30000);
	}
	st = shim_proc_stop(&C, 0, 30000);
	CHECK(st == 0, "%s: shim client exit status %d", what, st);
	st = shim_proc_stop(&S, SIGTERM, 10000);
	CHECK(st == 0, "%s: shim server exit status %d", what, st);
}

static void native_pair(const struct ts_daemon *d, const char *what)
{
	struct ivl_endpoint *a = ts_open(d, "fresh-a", 0, IVL_LOG_ERROR),
			    *b = ts_open(d, "fresh-b", 0, IVL_LOG_ERROR);
	struct ivl_channel *ca, *cb;
	uint8_t buf[65536], got[65536];
	int rc;

	rc = rel_pair_open(a, b, "fresh", NULL, 10000000000LL, &ca, &cb);
	CHECK(rc == 0, "%s: fresh native channel: %s", what, strerror(-rc));
	for (uint64_t off = 0; off < (8u << 20); off += sizeof(buf)) {
		size_t have = 0;

		ts_stream_fill(7, off, buf, sizeof(buf));
		CHECK(ivl_send(ca, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf), "%s: send", what);
		while (have < sizeof(got)) {
			ssize_t r = ivl_recv(cb, got + have, sizeof(got) - have, 0);

			CHECK(r > 0, "%s: recv: %zd", what, r);
			have += (size_t)r;
		}
		CHECK(ts_stream_check(7, off, got, sizeof(got)) == sizeof(got),
		      "%s: fresh native bytes wrong at %llu", what, (unsigned long long)off);
	}
	ivl_channel_close(ca);
	ivl_channel_close(cb);
	ivl_endpoint_close(a);
	ivl_endpoint_close(b);
}

static void scenario(const char *ivlinkd, const char *kind, const char *file,
		     const char *const *extra, off_t shrink_to, uint64_t size)
{
	struct ts_daemon d;
	struct shim_proc S, C;
	struct native n = {.seed = 42};
	struct ivl_endpoint *a, *b;
	pthread_t ttx, trx;
	char port[16], line[256], out[65536];
	struct stat st;
	int rc, fd;

	ts_daemon_start(&d, ivlinkd, "ivlinkd.sock", extra, NULL);
	shim_rel_setup(&d, IVL_PRELOAD, 65536);

	snprintf(port, sizeof(port), "%d", shim_free_port());
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", "-k", NULL};

		shim_proc_start(&S, av, 1);
		shim_proc_expect(&S, "LISTEN", line, sizeof(line), 10000);
	}
	{
		char *const av[] = {SHIM_PEER, "client", port, "8", "4", "65536", "9", "4", NULL};

		shim_proc_start(&C, av, 1);
	}
	a = ts_open(&d, "native-a", 0, IVL_LOG_ERROR);
	b = ts_open(&d, "native-b", 0, IVL_LOG_ERROR);
	rc = rel_pair_open(a, b, "stream", NULL, 10000000000LL, &n.tx, &n.rx);
	CHECK(rc == 0, "%s: native channel: %s", kind, strerror(-rc));
	CHECK(pthread_create(&ttx, NULL, native_tx, &n) == 0, "pthread_create");
	CHECK(pthread_create(&trx, NULL, native_rx, &n) == 0, "pthread_create");
	usleep(500000);
	CHECK(n.moved > 0, "%s: no native traffic before the shrink", kind);

	fd = open(file, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "%s: open %s: %s", kind, file, strerror(errno));
	for (int i = 0; i < SHRINKS; i++) {
		CHECK(ftruncate(fd, shrink_to) == 0, "%s: ftruncate: %s", kind, strerror(errno));
		usleep(300000);
	}
	close(fd);

	/* The victims: alive, or ended by a clean error; never a signal. */
	CHECK(kill(S.pid, 0) == 0, "%s: the shim server died", kind);
	rc = shim_proc_stop(&C, 0, 60000);
	CHECK(rc == 0 || rc == 1, "%s: shim client exit status %d (%s)", kind, rc,
	      rc == 66	 ? "sanitizer report"
	      : rc > 128 ? "killed by a signal"
			 : "?");
	rc = shim_proc_stop(&S, SIGTERM, 10000);
	CHECK(rc == 0 || rc == 1, "%s: shim server exit status %d", kind, rc);
	n.stop = 1;
	ivl_channel_shutdown(n.tx, SHUT_WR);
	pthread_join(ttx, NULL);
	pthread_join(trx, NULL);
	fprintf(stderr, "%s: native stream moved %llu bytes; tx %ld rx %ld\n", kind,
		(unsigned long long)n.moved, n.tx_err, n.rx_err);
	ivl_channel_close(n.tx);
	ivl_channel_close(n.rx);
	ivl_endpoint_close(a);
	ivl_endpoint_close(b);

	/* The daemon: alive, answering, size back, the shrinks reported. */
	CHECK(kill(d.pid, 0) == 0, "%s: ivlinkd died", kind);
	rc = rel_ivlinkctl_json(IVLINKCTL, d.sock, out, sizeof(out));
	CHECK(rc == 0, "%s: ivlinkctl status exit %d", kind, rc);
	{
		const char *p = strstr(out, "\"shrinks\":");

		CHECK(p && atoi(p + 10) >= 1, "%s: status does not report the shrinks:\n%.2000s",
		      kind, out);
	}
	CHECK(stat(file, &st) == 0 && (uint64_t)st.st_size == size,
	      "%s: region size %lld, want %llu", kind, (long long)st.st_size,
	      (unsigned long long)size);

	shim_pair(kind, 1);
	native_pair(&d, kind);
	rc = ts_daemon_stop(d.pid, SIGTERM);
	CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s: ivlinkd exit status 0x%x", kind, rc);
	fprintf(stderr, "%s: ok\n", kind);
}

/* The default memfd region is sealed: a client's ftruncate() fails. */
static void memfd_is_sealed(const char *ivlinkd)
{
	const char *const extra[] = {"-l", "16M", NULL};
	struct ts_daemon d;
	struct ivl_endpoint *ep;
	struct ivl_region rg;
	char self[64], path[320];
	struct dirent *de;
	DIR *dir;
	int fd, found = 0;

	ts_daemon_start(&d, ivlinkd, "memfd.sock", extra, NULL);
	ep = ts_open(&d, "sealed", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "memfd: no region mapping");
	/* Find the region fd this process holds (libivlink keeps it, high:
	 * guest-lib/fd_high.c). */
	dir = opendir("/proc/self/fd");
	CHECK(dir, "opendir /proc/self/fd: %s", strerror(errno));
	while (!found && (de = readdir(dir)) != NULL) {
		struct stat st;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		n = readlink(self, path, sizeof(path) - 1);
		if (n <= 0)
			continue;
		path[n] = '\0';
		if (strncmp(path, "/memfd:", 7) || fstat(fd, &st) < 0 ||
		    (uint64_t)st.st_size != (16u << 20))
			continue;
		CHECK(ftruncate(fd, 4096) < 0 && errno == EPERM,
		      "memfd: ftruncate was not refused by a seal (%s)", strerror(errno));
		found = 1;
	}
	closedir(dir);
	CHECK(found, "memfd: the region fd is not among this process's fds");
	ivl_endpoint_close(ep);
	ts_daemon_stop(d.pid, SIGTERM);
	fprintf(stderr, "memfd: sealed, ok\n");
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "region_shrunk_survives", 280);
	char name[64], file[320];
	const char *dir;

	memfd_is_sealed(ivlinkd);

	snprintf(name, sizeof(name), "ivl-shrunk-%d", (int)getpid());
	ts_track_shm(name);
	snprintf(file, sizeof(file), "/dev/shm/%s", name);
	{
		const char *const extra[] = {"-m", name, "-l", "32M", "--max-peers", "8", NULL};

		scenario(ivlinkd, "shm", file, extra, 4096, 32u << 20);
	}

	dir = huge_setup(16);
	snprintf(file, sizeof(file), "%s/%s", dir, name);
	{
		const char *const extra[] = {"--hugetlb", dir,		 "-m", name, "-l",
					     "16M",	  "--max-peers", "8",  NULL};

		scenario(ivlinkd, "hugetlbfs", file, extra, HUGE_PAGE, 16u << 20);
	}
	printf("region_shrunk_survives: ok\n");
	return 0;
}
