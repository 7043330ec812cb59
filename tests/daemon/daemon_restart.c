/* SPDX-License-Identifier: MIT */
/*
 * Restart with a named region (-m NAME): SIGTERM is a clean shutdown
 * (sockets and pidfile removed, peers GONE); a new daemon re-attaches to
 * the region instead of wiping it (data kept, daemon_gen bumped). After a
 * SIGKILL the stale sockets are replaced, entries left UP keep their ids
 * until --reclaim-stale. A live daemon on the socket or on the region is
 * not displaced, another geometry is refused unless --force-format, and
 * the daemonizing path reports start-up failures in its exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "dtest.h"

#define NVEC 2
#define SIZE (2u << 20)

static char name[64], shm_path[96];

static struct ivl_region_hdr read_hdr(void)
{
	struct ivl_region_hdr h;
	int fd = open(shm_path, O_RDONLY);

	CHECK(fd >= 0);
	CHECK(pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h));
	close(fd);
	return h;
}

static uint8_t last_byte(int set, uint8_t v)
{
	int fd = open(shm_path, O_RDWR);
	uint8_t b = 0;

	CHECK(fd >= 0);
	if (set)
		CHECK(pwrite(fd, &v, 1, SIZE - 1) == 1);
	CHECK(pread(fd, &b, 1, SIZE - 1) == 1);
	close(fd);
	return b;
}

static int exit_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static pid_t start(const char *sock, const char *const *more, int *st)
{
	const char *args[24] = {"-m", name, "-l", "2M", "-n", "2", "-p", ts_path("pid")};
	int n = 8;

	for (; more && *more && n < 23; more++)
		args[n++] = *more;
	args[n] = NULL;
	return ts_daemon_spawn(IVLINKD, sock, args, &dt_daemon_opts, st);
}

int main(void)
{
	struct ivl_region_hdr h;
	struct ivl_peer_view pv;
	struct dt_peer a, b;
	char buf[64];
	pid_t d, d2;
	int st, fd;

	ts_init("restart", 120);
	snprintf(name, sizeof(name), "ivlink-test-%d", (int)getpid());
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/%s", name);
	ts_track_shm(name);
	unlink(shm_path);

	/* First start: formatted, generation 1, pidfile written. */
	d = start(ts_path("sock"), NULL, NULL);
	CHECK(d > 0);
	fd = open(ts_path("pid"), O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) > 0);
	close(fd);
	CHECK(atoi(buf) == d);
	h = read_hdr();
	CHECK(h.daemon_gen == 1 && h.daemon_pid == (uint32_t)d && h.region_size == SIZE);
	CHECK(strcmp(h.name, name) == 0);
	last_byte(1, 0x5a);
	CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0 && a.id == 0);

	/* SIGTERM: clean. */
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);
	CHECK(ivl_region_peer_view(&a.rg, 0, &pv) == 0 && pv.state == IVL_PEER_GONE);
	dt_peer_close(&a);
	CHECK(access(ts_path("sock"), F_OK) < 0 && access(ts_path("sock.ctl"), F_OK) < 0);
	CHECK(access(ts_path("pid"), F_OK) < 0);
	CHECK(access(shm_path, F_OK) == 0);

	/* Restart: re-attached, data kept, generation bumped. */
	d = start(ts_path("sock"), NULL, NULL);
	CHECK(d > 0);
	h = read_hdr();
	CHECK(h.daemon_gen == 2 && h.daemon_pid == (uint32_t)d, "gen %llu",
	      (unsigned long long)h.daemon_gen);
	CHECK(last_byte(0, 0) == 0x5a);
	CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0 && a.id == 0);

	/* A second daemon on the same socket, or on the same region with
	 * another socket, is refused and does not disturb the first. */
	CHECK(start(ts_path("sock"), NULL, &st) < 0 && exit_code(st) == 1);
	CHECK(start(ts_path("other"), NULL, &st) < 0 && exit_code(st) == 1);
	CHECK(dt_quiet(a.sock, 100));

	/* SIGKILL leaves stale sockets and an UP entry. */
	CHECK(ts_daemon_stop(d, SIGKILL) != -1);
	CHECK(access(ts_path("sock"), F_OK) == 0);
	dt_peer_close(&a);
	d = start(ts_path("sock"), NULL, NULL);
	CHECK(d > 0, "stale socket not replaced");
	h = read_hdr();
	CHECK(h.daemon_gen == 3);
	CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0);
	CHECK(a.id == 1, "stale id 0 was handed out again (got %d)", a.id);
	CHECK(ivl_region_peer_view(&a.rg, 0, &pv) == 0 && pv.state == IVL_PEER_UP);
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);
	dt_peer_close(&a);

	/* --reclaim-stale: entry 0 becomes GONE and its id is free. */
	{
		const char *const more[] = {"--reclaim-stale", NULL};

		d = start(ts_path("sock"), more, NULL);
	}
	CHECK(d > 0);
	CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0 && a.id == 0);
	CHECK(dt_peer_join(&b, ts_path("sock"), NVEC) == 0 && b.id == 1);
	dt_peer_close(&b);
	dt_peer_close(&a);
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);
	CHECK(last_byte(0, 0) == 0x5a);

	/* Another geometry is refused, with a message naming the option. */
	{
		const char *const more[] = {"-n", "4", NULL};

		CHECK(start(ts_path("sock"), more, &st) < 0 && exit_code(st) == 1);
	}
	{
		const char *const more[] = {"-l", "4M", NULL};

		CHECK(start(ts_path("sock"), more, &st) < 0 && exit_code(st) == 1);
	}
	{
		const char *const more[] = {"--chan-slots", "128", NULL};

		CHECK(start(ts_path("sock"), more, &st) < 0 && exit_code(st) == 1);
	}
	h = read_hdr();
	CHECK(h.daemon_gen == 4 && h.n_vectors == NVEC && h.chan_slots == 64);
	{
		const char *const more[] = {"-n", "4", "--force-format", NULL};

		d = start(ts_path("sock"), more, NULL);
	}
	CHECK(d > 0);
	h = read_hdr();
	CHECK(h.daemon_gen == 1 && h.n_vectors == 4);
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);
	/* --chan-slots is a format parameter: a wiped region gets it, and a
	 * restart with the same value re-attaches. */
	{
		const char *const more[] = {"-n",	    "4",    "--max-peers",    "1",
					    "--chan-slots", "2048", "--force-format", NULL};

		d = start(ts_path("sock"), more, NULL);
	}
	CHECK(d > 0);
	h = read_hdr();
	CHECK(h.daemon_gen == 1 && h.chan_slots == 2048);
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);
	{
		const char *const more[] = {"-n",	    "4",    "--max-peers", "1",
					    "--chan-slots", "2048", NULL};

		d = start(ts_path("sock"), more, NULL);
	}
	CHECK(d > 0);
	h = read_hdr();
	CHECK(h.daemon_gen == 2 && h.chan_slots == 2048);
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);
	{
		const char *const more[] = {"-n", "4", NULL};

		CHECK(start(ts_path("sock"), more, &st) < 0 && exit_code(st) == 1);
	}
	{
		const char *const more[] = {"-n", "4", "--force-format", NULL};

		d = start(ts_path("sock"), more, NULL);
	}
	CHECK(d > 0);
	CHECK(exit_code(ts_daemon_stop(d, SIGTERM)) == 0);

	/* Daemon mode: the foreground process exits 0 once the daemon runs
	 * (pidfile written), 1 with the reason when it cannot start. */
	{
		char cmd[600], out[2048];
		FILE *f;
		size_t n;

		snprintf(cmd, sizeof(cmd), "%s -S %s -m %s -l 2M -n 4 -p %s --log=syslog 2>&1",
			 IVLINKD, ts_path("dsock"), name, ts_path("dpid"));
		CHECK(exit_code(system(cmd)) == 0);
		fd = open(ts_path("dpid"), O_RDONLY);
		CHECK(fd >= 0);
		memset(buf, 0, sizeof(buf));
		CHECK(read(fd, buf, sizeof(buf) - 1) > 0);
		close(fd);
		d2 = atoi(buf);
		CHECK(d2 > 0 && kill(d2, 0) == 0);
		ts_track_pid(d2);
		CHECK(read_hdr().daemon_pid == (uint32_t)d2);
		f = popen(cmd, "r");
		CHECK(f);
		n = fread(out, 1, sizeof(out) - 1, f);
		out[n] = '\0';
		CHECK(exit_code(pclose(f)) == 1 && strstr(out, "another daemon"),
		      "second daemonized start: '%s'", out);
		kill(d2, SIGTERM);
		for (int i = 0; i < 500 && access(ts_path("dpid"), F_OK) == 0; i++)
			usleep(10000);
		CHECK(access(ts_path("dpid"), F_OK) < 0 && access(ts_path("dsock"), F_OK) < 0);
	}
	unlink(shm_path);
	printf("PASS restart\n");
	return 0;
}
