/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd's access control against a real second user. Needs root (to
 * become nobody, uid/gid 65534, in a forked child); skipped (77) otherwise.
 *
 *  1. Default --socket-mode 0600 with a named region: as nobody, connect()
 *     to the peer socket and to the status socket fails with EACCES,
 *     ivl_endpoint_open() returns -EACCES, and /dev/shm/NAME (mode 0600)
 *     cannot be opened (EACCES): the region is reachable only through the
 *     daemon. The temp dir is made 0755 so that only the socket's own mode
 *     can be what refuses.
 *  2. --socket-mode 0666 and no allow-list: nobody joins (the socket mode is
 *     then the only barrier, as documented).
 *  3. --socket-mode 0666 --allow-uid 0: nobody connects but is refused: the
 *     connection is closed before any message, no fd is ever passed, and
 *     ivl_endpoint_open() fails with -ECONNRESET; 300 more refusals in a
 *     burst are all counted in `ivlinkctl status --json` (refused.acl) but
 *     logged once, and the next line, 10 s later, says how many it did not
 *     log. (tests/daemon/daemon_limits
 *     checks the same refusal for an allow-list without the caller's uid,
 *     on both sockets.)
 *  4. A region file pre-created by another user (nobody, mode 0666) before
 *     root starts `ivlinkd -m NAME --allow-uid 0`, and one of root's own
 *     that others may write (0666), or with a second link: ivlinkd refuses
 *     to start with a clear error, and the file's bytes are untouched (it
 *     was not formatted, so its owner holds nothing of ours). A file of
 *     ivlinkd's own (0600) is re-attached as before.
 *  5. --socket-group 65534 --socket-mode 0660 with a named region and the
 *     socket in a directory that does not exist yet: ivlinkd creates the
 *     directory root:65534 mode 0750, both sockets and the region file are
 *     group 65534 mode 0660; a client of uid nobody and gid 65534 (QEMU
 *     under libvirt: user and group libvirt-qemu) connects to both sockets
 *     and joins, while uid nobody with another gid gets EACCES.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rel.h"

#define NOBODY 65534

static struct ts_daemon daemon_;
static char shm_name[64];

static int try_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	rc = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? s : -errno;
	if (rc < 0)
		close(s);
	return rc;
}

static void become_nobody(void)
{
	CHECK(setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 && setuid(NOBODY) == 0,
	      "cannot become nobody: %s", strerror(errno));
}

/* 1: as nobody, everything is refused by permissions. */
static int nobody_refused(void *arg)
{
	struct ivl_endpoint_opts o = {.uri = daemon_.uri, .name = "nobody"};
	struct ivl_endpoint *ep;
	char path[128];
	int rc;

	become_nobody();
	rc = try_connect(daemon_.sock);
	CHECK(rc == -EACCES, "peer socket: %s, want EACCES", strerror(-rc));
	rc = try_connect(daemon_.ctl);
	CHECK(rc == -EACCES, "status socket: %s, want EACCES", strerror(-rc));
	rc = ivl_endpoint_open(&ep, &o);
	CHECK(rc == -EACCES, "ivl_endpoint_open: %s, want -EACCES", strerror(-rc));
	snprintf(path, sizeof(path), "/dev/shm/%s", shm_name);
	rc = open(path, O_RDONLY);
	CHECK(rc < 0 && errno == EACCES, "%s readable by nobody", path);
	return 0;
}

/* 2: with a world-writable socket and no allow-list, nobody joins. */
static int nobody_joins(void *arg)
{
	struct ivl_endpoint_opts o = {.uri = daemon_.uri, .name = "nobody"};
	struct ivl_endpoint *ep;
	int rc;

	char buf[512];
	int vfd;

	become_nobody();
	/* No peer yet: a vector request is refused (EPERM, no fd). */
	CHECK(ts_status_request(daemon_.ctl, "vector/0/0/p", buf, sizeof(buf), &vfd) == 0,
	      "status socket as nobody");
	CHECK(strncmp(buf, "ivlinkd-vector 1 error=EPERM\n", 29) == 0 && vfd < 0,
	      "vector request from no peer: %s (fd %d)", buf, vfd);
	rc = ivl_endpoint_open(&ep, &o);
	CHECK(rc == 0, "ivl_endpoint_open with mode 0666: %s", strerror(-rc));
	/* A peer now: its own vector 0 comes back. */
	CHECK(ts_status_request(daemon_.ctl, "vector/0/0/q", buf, sizeof(buf), &vfd) == 0,
	      "status socket as nobody");
	CHECK(strncmp(buf, "ivlinkd-vector 1 id=0 vector=0 ", 31) == 0 && vfd >= 0,
	      "vector request from a peer: %s (fd %d)", buf, vfd);
	close(vfd);
	ivl_endpoint_close(ep);
	return 0;
}

/* 3: refused by the allow-list: closed before any message, no fd. */
static int nobody_not_allowed(void *arg)
{
	struct ivl_endpoint_opts o = {.uri = daemon_.uri, .name = "nobody"};
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cbuf;
	struct ivl_endpoint *ep;
	char data[64];
	struct iovec iov = {data, sizeof(data)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf.b,
			    .msg_controllen = sizeof(cbuf.b)};
	ssize_t n;
	int s, rc;

	become_nobody();
	s = try_connect(daemon_.sock);
	CHECK(s >= 0, "connect: %s", strerror(-s));
	n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	CHECK(n == 0 || (n < 0 && errno == ECONNRESET), "refused client got %zd bytes", n);
	CHECK(mh.msg_controllen == 0, "refused client got an fd");
	close(s);
	rc = ivl_endpoint_open(&ep, &o);
	CHECK(rc == -ECONNRESET, "ivl_endpoint_open: %s, want -ECONNRESET", strerror(-rc));
	return 0;
}

/* 5: group 65534 reaches the sockets; gid 1 (same uid) does not. */
static int group_member_joins(void *arg)
{
	struct ivl_endpoint_opts o = {.uri = daemon_.uri, .name = "group"};
	struct ivl_endpoint *ep;
	int rc;

	become_nobody();
	rc = try_connect(daemon_.ctl);
	CHECK(rc >= 0, "status socket as gid %d: %s", NOBODY, strerror(-rc));
	close(rc);
	rc = ivl_endpoint_open(&ep, &o);
	CHECK(rc == 0, "ivl_endpoint_open as gid %d: %s", NOBODY, strerror(-rc));
	ivl_endpoint_close(ep);
	return 0;
}

static int other_group_refused(void *arg)
{
	int rc;

	CHECK(setgroups(0, NULL) == 0 && setgid(1) == 0 && setuid(NOBODY) == 0,
	      "cannot become uid %d gid 1: %s", NOBODY, strerror(errno));
	rc = try_connect(daemon_.sock);
	CHECK(rc == -EACCES, "peer socket as gid 1: %s, want EACCES", strerror(-rc));
	rc = try_connect(daemon_.ctl);
	CHECK(rc == -EACCES, "status socket as gid 1: %s, want EACCES", strerror(-rc));
	return 0;
}

static void expect_owner(const char *path, mode_t type, gid_t gid, mode_t mode)
{
	struct stat st;

	CHECK(lstat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	CHECK((st.st_mode & S_IFMT) == type && st.st_uid == 0 && st.st_gid == gid &&
		  (st.st_mode & 07777) == mode,
	      "%s: uid %u gid %u mode %04o, want 0 %u %04o", path, (unsigned)st.st_uid,
	      (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), (unsigned)gid, (unsigned)mode);
}

static char precreated[128];

static int nobody_precreates(void *arg)
{
	int fd;

	become_nobody();
	fd = open(precreated, O_RDWR | O_CREAT | O_EXCL, 0666);
	if (fd < 0 || fchmod(fd, 0666) < 0 || ftruncate(fd, 2 << 20) < 0 ||
	    pwrite(fd, "mine", 4, 0) != 4)
		return 10;
	close(fd);
	return 0;
}

/* Runs ivlinkd (which must refuse the file and exit) and checks its error
 * and that the file still holds "mine" at offset 0. */
static void refused_region(const char *ivlinkd, const char *name, const char *what)
{
	char log[256], buf[4096] = "", head[5] = "";
	pid_t pid;
	int st, fd;

	snprintf(log, sizeof(log), "%s", ts_path("refused.log"));
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(lfd, 2);
		execl(ivlinkd, ivlinkd, "-F", "-S", ts_path("refused.sock"), "-l", "2M", "-n", "2",
		      "-m", name, "--allow-uid", "0", (char *)NULL);
		_exit(127);
	}
	ts_track_pid(pid);
	st = ts_wait(pid, 10000);
	fd = open(log, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		buf[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	CHECK(st != 0 && st != -1, "%s: ivlinkd served it (exit %d)", what, st);
	CHECK(strstr(buf, "not ours to serve"), "%s: no clear error:\n%s", what, buf);
	fd = open(precreated, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, head, 4, 0) == 4 && !strcmp(head, "mine"),
	      "%s: the file was touched", what);
	close(fd);
	printf("%s: OK\n", what);
}

#define BURST 300

static char burst_sock[192];

static int nobody_burst(void *arg)
{
	char c;

	become_nobody();
	for (int i = 0; i < (arg ? 1 : BURST); i++) {
		int s = try_connect(burst_sock);

		if (s < 0)
			return 10;
		if (read(s, &c, 1) > 0)
			return 11; /* a refused client gets nothing */
		close(s);
	}
	return 0;
}

static unsigned count_lines(const char *path, const char *needle)
{
	char line[1024];
	unsigned n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Refusals are counted, and logged at most once per 10 s per uid. */
static void refusals_rate_limited(const char *ivlinkd)
{
	char log[256], ctl[200], out[65536];
	const char *p;
	pid_t pid;
	int64_t deadline;
	int st;

	snprintf(log, sizeof(log), "%s", ts_path("burst.log"));
	snprintf(burst_sock, sizeof(burst_sock), "%s", ts_path("burst.sock"));
	snprintf(ctl, sizeof(ctl), "%s.ctl", burst_sock);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(lfd, 2);
		execl(ivlinkd, ivlinkd, "-F", "-S", burst_sock, "-l", "2M", "-n", "2",
		      "--socket-mode", "0666", "--allow-uid", "0", (char *)NULL);
		_exit(127);
	}
	ts_track_pid(pid);
	deadline = ts_now_ns() + 10000000000LL;
	while (!ts_can_connect(ctl)) {
		CHECK(ts_now_ns() < deadline, "ivlinkd did not start");
		usleep(5000);
	}
	st = ts_wait(ts_spawn(nobody_burst, NULL), 30000);
	CHECK(st == 0, "burst: child exit %d", st);
	CHECK(rel_ivlinkctl_json(IVLINKCTL, burst_sock, out, sizeof(out)) == 0, "ivlinkctl");
	p = strstr(out, "\"acl\":");
	CHECK(p && atoi(p + 6) == BURST, "refused.acl is not %d:\n%.600s", BURST, out);
	CHECK(count_lines(log, "refused client") == 1, "%u refusal lines for a burst of %d",
	      count_lines(log, "refused client"), BURST);
	sleep(11);
	st = ts_wait(ts_spawn(nobody_burst, (void *)1), 30000);
	CHECK(st == 0, "late refusal: child exit %d", st);
	usleep(200000);
	CHECK(count_lines(log, "refused client") == 2 &&
		  count_lines(log, "and 299 more from uid 65534") == 1,
	      "the next line does not tell the refusals it did not log");
	kill(pid, SIGTERM);
	ts_wait(pid, 10000);
	printf("refusals: %d counted, logged once, then summarised: OK\n", BURST);
}

static void run_as_nobody(int (*fn)(void *), const char *what)
{
	int st = ts_wait(ts_spawn(fn, NULL), 20000);

	CHECK(st == 0, "%s: child exit %d", what, st);
	printf("%s: OK\n", what);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "perm", 120);

	if (geteuid() != 0) {
		printf("SKIP: needs root to switch to uid %d\n", NOBODY);
		return TS_SKIP;
	}
	/* Only the socket's own mode may refuse: the directory is open. */
	CHECK(chmod(ts_dir(), 0755) == 0, "chmod: %s", strerror(errno));
	snprintf(shm_name, sizeof(shm_name), "ivlrel-perm-%d", (int)getpid());
	ts_track_shm(shm_name);

	{
		const char *const extra[] = {"-l", "2M", "-n", "2", "-m", shm_name, NULL};
		struct stat st;

		ts_daemon_start(&daemon_, ivlinkd, "sock", extra, NULL);
		CHECK(stat(daemon_.sock, &st) == 0 && (st.st_mode & 0777) == 0600, "mode");
		run_as_nobody(nobody_refused, "mode 0600: nobody gets EACCES on both sockets and "
					      "the /dev/shm region");
		ts_daemon_stop(daemon_.pid, SIGTERM);
	}
	{
		const char *const extra[] = {"-l", "2M", "-n", "2", "--socket-mode", "0666", NULL};

		ts_daemon_start(&daemon_, ivlinkd, "sock2", extra, NULL);
		run_as_nobody(nobody_joins, "mode 0666, no allow-list: nobody joins");
		ts_daemon_stop(daemon_.pid, SIGTERM);
	}
	{
		const char *const extra[] = {"-l",   "2M",	    "-n", "2", "--socket-mode",
					     "0666", "--allow-uid", "0",  NULL};

		ts_daemon_start(&daemon_, ivlinkd, "sock3", extra, NULL);
		run_as_nobody(nobody_not_allowed,
			      "mode 0666, --allow-uid 0: nobody refused without any message or fd");
		ts_daemon_stop(daemon_.pid, SIGTERM);
	}
	{
		char gname[64], file[128];
		const char *const extra[] = {"-l",
					     "2M",
					     "-n",
					     "2",
					     "-m",
					     gname,
					     "--socket-mode",
					     "0660",
					     "--socket-group",
					     "65534",
					     NULL};

		snprintf(gname, sizeof(gname), "ivlrel-grp-%d", (int)getpid());
		ts_track_shm(gname);
		ts_daemon_start(&daemon_, ivlinkd, "run-ivlink/sock6", extra, NULL);
		expect_owner(ts_path("run-ivlink"), S_IFDIR, NOBODY, 0750);
		expect_owner(daemon_.sock, S_IFSOCK, NOBODY, 0660);
		expect_owner(daemon_.ctl, S_IFSOCK, NOBODY, 0660);
		snprintf(file, sizeof(file), "/dev/shm/%s", gname);
		expect_owner(file, S_IFREG, NOBODY, 0660);
		run_as_nobody(group_member_joins,
			      "--socket-group 65534, mode 0660: a client of "
			      "gid 65534 joins through a created 0750 directory");
		run_as_nobody(other_group_refused, "--socket-group 65534: gid 1 gets EACCES");
		ts_daemon_stop(daemon_.pid, SIGTERM);
		/* Re-attached: a group-writable file of the socket group is ours. */
		ts_daemon_start(&daemon_, ivlinkd, "run-ivlink/sock6", extra, NULL);
		ts_daemon_stop(daemon_.pid, SIGTERM);
		/* The temp dir's cleanup removes files only. */
		CHECK(rmdir(ts_path("run-ivlink")) == 0, "rmdir: %s", strerror(errno));
		printf("the group's region file (0660) is re-attached: OK\n");
	}
	refusals_rate_limited(ivlinkd);
	{
		char name[64], link2[160];
		int fd;

		snprintf(name, sizeof(name), "ivlrel-pre-%d", (int)getpid());
		ts_track_shm(name);
		snprintf(link2, sizeof(link2), "%s.link", name);
		ts_track_shm(link2);
		snprintf(precreated, sizeof(precreated), "/dev/shm/%s", name);
		run_as_nobody(nobody_precreates, "nobody pre-creates the region file");
		refused_region(ivlinkd, name, "a file of another user (0666) is refused");
		CHECK(chown(precreated, 0, 0) == 0, "chown: %s", strerror(errno));
		refused_region(ivlinkd, name, "root's own file writable by others is refused");
		CHECK(chmod(precreated, 0600) == 0, "chmod: %s", strerror(errno));
		snprintf(link2, sizeof(link2), "%s.link", precreated);
		CHECK(link(precreated, link2) == 0, "link: %s", strerror(errno));
		refused_region(ivlinkd, name, "a file with a second link is refused");
		unlink(link2);
		unlink(precreated);
		/* Our own file, as a previous ivlinkd left it: re-attached. */
		{
			const char *const extra[] = {"-l", "2M", "-n", "2", "-m", name, NULL};

			ts_daemon_start(&daemon_, ivlinkd, "sock4", extra, NULL);
			ts_daemon_stop(daemon_.pid, SIGTERM);
			ts_daemon_start(&daemon_, ivlinkd, "sock5", extra, NULL);
			ts_daemon_stop(daemon_.pid, SIGTERM);
			fd = open(precreated, O_RDONLY);
			CHECK(fd >= 0, "own region file gone");
			close(fd);
			printf("ivlinkd's own region file is re-attached: OK\n");
		}
	}
	printf("PASS daemon_socket_permissions\n");
	return 0;
}
