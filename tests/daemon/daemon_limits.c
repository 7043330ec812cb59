/* SPDX-License-Identifier: MIT */
/*
 * Admission: a client beyond --max-peers is refused cleanly (closed before
 * any message) while the others are unaffected; a client outside the
 * --allow-uid/--allow-gid lists never receives the region fd; the command
 * line rejects unknown options and bad values with exit status 2 and
 * documents every option in --help.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "dtest.h"

#define NVEC 2

/* Runs ivlinkd with args, returns its exit status; output in *out. */
static int run_cli(const char *args, char *out, size_t len)
{
	char cmd[512];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", IVLINKD, args);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A refused client: the daemon closes the connection before sending
 * anything, in particular never the region fd. */
static void expect_refused(const char *sock)
{
	int s = ts_connect(sock), fd;
	int64_t v;

	CHECK(s >= 0);
	CHECK(dt_recv(s, &v, &fd, 3000) == 0, "refused client got a message (fd %d)", fd);
	close(s);
}

int main(void)
{
	static char out[65536];
	char uid_other[32], gid_self[32];
	struct dt_peer a, b;
	pid_t d;

	ts_init("limits", 60);

	/* --max-peers 2: the third client is refused, a and b see nothing. */
	{
		const char *const extra[] = {"-l", "2M", "-n", "2", "--max-peers", "2", NULL};

		d = ts_daemon_spawn(IVLINKD, ts_path("sock"), extra, &dt_daemon_opts, NULL);
		CHECK(d > 0);
		CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0 && a.id == 0);
		CHECK(dt_peer_join(&b, ts_path("sock"), NVEC) == 0 && b.id == 1);
		CHECK(dt_peer_pump(&a, 200) == NVEC);
		for (int i = 0; i < 3; i++)
			expect_refused(ts_path("sock"));
		CHECK(dt_quiet(a.sock, 200) && dt_quiet(b.sock, 10));
		/* When one leaves, its id can be taken again. */
		dt_peer_close(&b);
		CHECK(dt_peer_pump(&a, 300) == 1);
		CHECK(dt_peer_join(&b, ts_path("sock"), NVEC) == 0 && b.id == 1);
		dt_peer_close(&b);
		dt_peer_close(&a);
		CHECK(WIFEXITED(ts_daemon_stop(d, SIGTERM)));
	}

	/* --allow-uid with another uid: refused on both sockets. */
	snprintf(uid_other, sizeof(uid_other), "%u", (unsigned)getuid() + 4242);
	snprintf(gid_self, sizeof(gid_self), "%u", (unsigned)getgid());
	{
		const char *const extra[] = {
		    "-l",   "2M", "-n", "2", "--allow-uid", uid_other, "--status-socket",
		    "none", NULL};
		int s, fd;
		int64_t v;

		/* Without a status socket ts_daemon_spawn cannot wait on it:
		 * wait for the main socket ourselves. */
		d = fork();
		if (d == 0) {
			execl(IVLINKD, IVLINKD, "-F", "--log=stderr", "-S", ts_path("sock2"),
			      extra[0], extra[1], extra[2], extra[3], extra[4], extra[5], extra[6],
			      extra[7], (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 500 && access(ts_path("sock2"), F_OK) < 0; i++)
			usleep(10000);
		usleep(50000);
		expect_refused(ts_path("sock2"));
		CHECK(access(ts_path("sock2.ctl"), F_OK) < 0);
		s = ts_connect(ts_path("sock2"));
		CHECK(s >= 0);
		CHECK(dt_recv(s, &v, &fd, 2000) == 0 && fd < 0);
		close(s);
		kill(d, SIGTERM);
		waitpid(d, NULL, 0);
	}
	/* ... and a matching --allow-gid admits the same client. */
	{
		const char *const extra[] = {"-l",	"2M",	       "-n",	 "2", "--allow-uid",
					     uid_other, "--allow-gid", gid_self, NULL};

		d = ts_daemon_spawn(IVLINKD, ts_path("sock3"), extra, &dt_daemon_opts, NULL);
		CHECK(d > 0);
		CHECK(dt_peer_join(&a, ts_path("sock3"), NVEC) == 0 && a.id == 0);
		dt_peer_close(&a);
		CHECK(WIFEXITED(ts_daemon_stop(d, SIGTERM)));
	}

	/* Command line. */
	CHECK(run_cli("--help", out, sizeof(out)) == 0);
	{
		static const char *const must[] = {
		    "NAME",
		    "SYNOPSIS",
		    "DESCRIPTION",
		    "OPTIONS",
		    "SIGNALS",
		    "FILES",
		    "EXIT STATUS",
		    "EXAMPLES",
		    "--socket",
		    "--size",
		    "--vectors",
		    "--shm",
		    "--hugetlb",
		    "--max-peers",
		    "--foreground",
		    "--pidfile",
		    "--verbose",
		    "--log=",
		    "--log-level",
		    "--allow-uid",
		    "--allow-gid",
		    "--socket-mode",
		    "--name",
		    "--reclaim-stale",
		    "--force-format",
		    "--status-socket",
		    "--help",
		    "--version",
		    "-S,",
		    "-l,",
		    "-n,",
		    "-m NAME",
		    "-F,",
		    "-p,",
		    "-v,",
		    "-h,",
		};

		for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
			CHECK(strstr(out, must[i]), "--help does not mention '%s'", must[i]);
	}
	CHECK(run_cli("-h", out, sizeof(out)) == 0 && strstr(out, "SYNOPSIS"));
	CHECK(run_cli("--version", out, sizeof(out)) == 0 && strstr(out, "ivlinkd "));
	CHECK(run_cli("--bogus", out, sizeof(out)) == 2 && strstr(out, "unknown option"));
	CHECK(run_cli("-Z", out, sizeof(out)) == 2 && strstr(out, "unknown option"));
	CHECK(run_cli("-F -l 3M", out, sizeof(out)) == 2 && strstr(out, "power of two"));
	CHECK(run_cli("-F -l 12Q", out, sizeof(out)) == 2);
	CHECK(run_cli("-F -n 0", out, sizeof(out)) == 2);
	CHECK(run_cli("-F -n 65", out, sizeof(out)) == 2);
	CHECK(run_cli("-F --max-peers 100", out, sizeof(out)) == 2);
	CHECK(run_cli("-F --log=file", out, sizeof(out)) == 2);
	CHECK(run_cli("-F --socket-mode 999", out, sizeof(out)) == 2);
	CHECK(run_cli("-F -S", out, sizeof(out)) == 2 && strstr(out, "needs an argument"));
	CHECK(run_cli("-F stray", out, sizeof(out)) == 2);
	printf("PASS limits\n");
	return 0;
}
