/* SPDX-License-Identifier: MIT */
/*
 * Protocol conformance of the ivlinkd server object, run in a thread with a
 * quit pipe: the handshake QEMU's ivshmem device expects, join and leave
 * messages, the peer table (UP/GONE, epochs, sections), the control-vector
 * doorbell, the memfd seals, and a doorbell between two peers through the
 * eventfds the daemon handed out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "dtest.h"
#include "server.h"

#define NVEC 4

static struct ivl_server *srv;
static int run_rc;

static void *run(void *arg)
{
	run_rc = ivl_server_run(srv, *(int *)arg);
	return NULL;
}

static void quiet_log(void *ctx, enum ivl_log_level lvl, const char *msg)
{
	if (lvl <= IVL_LOG_WARN || getenv("IVL_TEST_VERBOSE"))
		fprintf(stderr, "server: %s\n", msg);
}

static uint64_t efd_read(int fd, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	uint64_t v = 0;

	if (poll(&pfd, 1, ms) != 1 || read(fd, &v, 8) != 8)
		return 0;
	return v;
}

static void efd_write(int fd, uint64_t v)
{
	CHECK(write(fd, &v, 8) == 8);
}

int main(void)
{
	struct ivl_server_config cfg;
	struct dt_peer a, b;
	struct ivl_peer_view pv;
	struct stat st;
	pthread_t th;
	int quit[2], seals;
	uint32_t b_epoch;
	int64_t v;
	int fd, b_id;

	ts_init("protocol", 60);
	ivl_server_config_default(&cfg);
	cfg.socket_path = ts_path("sock");
	cfg.size = 4u << 20;
	cfg.n_vectors = NVEC;
	cfg.max_peers = 4;
	cfg.log = quiet_log;
	CHECK(ivl_server_init(&srv, &cfg) == 0);
	CHECK(ivl_server_start(srv) == 0);
	CHECK(pipe2(quit, O_CLOEXEC) == 0);
	CHECK(pthread_create(&th, NULL, run, &quit[0]) == 0);

	/* The socket mode is 0600 whatever the umask. */
	CHECK(stat(ts_path("sock"), &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(stat(ts_path("sock.ctl"), &st) == 0 && (st.st_mode & 0777) == 0600);

	/* First client: version 0, id 0, -1 + region fd, own eventfds. */
	CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0);
	CHECK(a.id == 0);
	CHECK(a.size == 4u << 20);
	CHECK(a.rg.hdr.n_vectors == NVEC && a.rg.hdr.max_peers == 4);
	CHECK(a.rg.hdr.daemon_gen == 1 && a.rg.hdr.daemon_pid == (uint32_t)getpid());
	CHECK(strcmp(a.rg.hdr.name, "ivlink") == 0);
	CHECK(ivl_region_peer_view(&a.rg, 0, &pv) == 0 && pv.state == IVL_PEER_UP);
	CHECK(ivl_section_check(&a.rg, 0) == 0);
	CHECK(ivl_region_section(&a.rg, 0)->owner_epoch == pv.epoch);
	CHECK(ivl_region_peer(&a.rg, 0)->pid == (uint32_t)getpid());
	CHECK(ivl_region_peer(&a.rg, 0)->n_vectors == NVEC);
	CHECK(dt_quiet(a.sock, 100));

	/* The memfd is sealed against shrinking, growing and new seals. */
	seals = fcntl(a.shm, F_GET_SEALS);
	CHECK(seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW) &&
	      (seals & F_SEAL_SEAL));
	CHECK(ftruncate(a.shm, 1u << 20) < 0 && errno == EPERM);

	/* Second client: gets a's fds, a gets the join and a control ring. */
	efd_read(a.own[IVL_CTRL_VECTOR], 0);
	CHECK(dt_peer_join(&b, ts_path("sock"), NVEC) == 0);
	b_id = b.id;
	CHECK(b_id == 1);
	for (unsigned k = 0; k < NVEC; k++)
		CHECK(b.other[0][k] >= 0);
	CHECK(dt_peer_pump(&a, 200) == NVEC);
	for (unsigned k = 0; k < NVEC; k++)
		CHECK(a.other[1][k] >= 0);
	CHECK(efd_read(a.own[IVL_CTRL_VECTOR], 1000) >= 1);
	CHECK(ivl_region_peer_view(&a.rg, 1, &pv) == 0 && pv.state == IVL_PEER_UP);
	CHECK(ivl_region_section(&a.rg, 1)->owner_epoch == pv.epoch);
	b_epoch = pv.epoch;

	/* Doorbells: a writes b's vector k (as handed to a), b reads its own
	 * vector k: the vectors arrived in order. And the other way round. */
	for (unsigned k = 0; k < NVEC; k++) {
		efd_read(b.own[k], 0);
		efd_write(a.other[1][k], 10 + k);
		CHECK(efd_read(b.own[k], 1000) == 10 + k);
		efd_write(b.other[0][k], 20 + k);
		CHECK(efd_read(a.own[k], 1000) == 20 + k);
	}

	/* The status socket does not make a peer. */
	fd = ts_connect(ts_path("sock.ctl"));
	CHECK(fd >= 0);
	{
		char buf[4096];
		ssize_t n, len = 0;

		while ((n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
			len += n;
		buf[len] = '\0';
		CHECK(strncmp(buf, "ivlinkd-status 1\n", 17) == 0);
		CHECK(strstr(buf, "client id=0 ") && strstr(buf, "client id=1 "));
	}
	close(fd);
	CHECK(dt_quiet(a.sock, 100));
	CHECK(ivl_server_n_peers(srv) == 2);

	/* A peer that dropped b's eventfds asks for one again ("vector/P/V"):
	 * the fd that comes is b's vector k (b reads what is written to it). */
	for (unsigned k = 0; k < NVEC; k++) {
		char buf[512], req[64], want[64];
		int vfd;

		snprintf(req, sizeof(req), "vector/%d/%u/t%u", b_id, k, k);
		CHECK(ts_status_request(ts_path("sock.ctl"), req, buf, sizeof(buf), &vfd) == 0);
		snprintf(want, sizeof(want), "ivlinkd-vector 1 id=%d vector=%u epoch=", b_id, k);
		CHECK(strncmp(buf, want, strlen(want)) == 0 && strstr(buf, "\nend\n"),
		      "vector request: %s", buf);
		CHECK(vfd >= 0, "vector request: no fd");
		efd_read(b.own[k], 0);
		efd_write(vfd, 30 + k);
		CHECK(efd_read(b.own[k], 1000) == 30 + k, "the fetched fd is not b's vector %u", k);
		close(vfd);
	}
	{
		/* A peer id not up, a vector out of range: ENOENT, no fd; a
		 * malformed request: the plain status. */
		static const char *const none[] = {"vector/5/0/x", "vector/1/4/x",
						   "vector/99999/0/x"};
		char buf[4096];
		int vfd;

		for (unsigned i = 0; i < 3; i++) {
			CHECK(ts_status_request(ts_path("sock.ctl"), none[i], buf, sizeof(buf),
						&vfd) == 0);
			CHECK(strncmp(buf, "ivlinkd-vector 1 error=ENOENT\n", 30) == 0 && vfd < 0,
			      "%s: %s", none[i], buf);
		}
		CHECK(ts_status_request(ts_path("sock.ctl"), "vector/1x/0/", buf, sizeof(buf),
					&vfd) == 0);
		CHECK(strncmp(buf, "ivlinkd-status 1\n", 17) == 0, "malformed: %.60s", buf);
		if (vfd >= 0)
			close(vfd); /* the status carries the region, read-only */
	}
	CHECK(ivl_server_n_peers(srv) == 2);

	/* b leaves: a gets "peer left" (id, no fd) and a control ring; the
	 * table shows GONE with a bumped epoch, and the section keeps its
	 * content (still stamped with b's epoch) until the id is reused, so
	 * that the remotes can drain what b published before it left. */
	efd_read(a.own[IVL_CTRL_VECTOR], 0);
	dt_peer_close(&b);
	{
		int rc = dt_recv(a.sock, &v, &fd, 2000);

		CHECK(rc == 1 && v == b_id && fd < 0);
		for (unsigned k = 0; k < NVEC; k++) {
			close(a.other[b_id][k]);
			a.other[b_id][k] = -1;
		}
	}
	CHECK(efd_read(a.own[IVL_CTRL_VECTOR], 1000) >= 1);
	CHECK(ivl_region_peer_view(&a.rg, 1, &pv) == 0 && pv.state == IVL_PEER_GONE);
	CHECK(pv.epoch == b_epoch + 1);
	CHECK(ivl_region_section(&a.rg, 1)->owner_epoch == b_epoch);
	CHECK(ivl_section_check(&a.rg, 1) == 0);
	CHECK(ivl_region_peer(&a.rg, 1)->left_unix_ns != 0);

	/* A new client takes the lowest free id again, with a new epoch. */
	CHECK(dt_peer_join(&b, ts_path("sock"), NVEC) == 0);
	CHECK(b.id == 1);
	CHECK(ivl_region_peer_view(&a.rg, 1, &pv) == 0 && pv.state == IVL_PEER_UP &&
	      pv.epoch == b_epoch + 2);
	CHECK(dt_peer_pump(&a, 200) == NVEC);
	dt_peer_close(&b);
	CHECK(dt_peer_pump(&a, 200) == 1);

	/* Shutdown through the quit pipe: a's entry is GONE, its control
	 * vector rung, its socket closed, the sockets removed. */
	efd_read(a.own[IVL_CTRL_VECTOR], 0);
	CHECK(write(quit[1], "q", 1) == 1);
	CHECK(pthread_join(th, NULL) == 0 && run_rc == 0);
	ivl_server_close(srv);
	CHECK(efd_read(a.own[IVL_CTRL_VECTOR], 1000) >= 1);
	CHECK(ivl_region_peer_view(&a.rg, 0, &pv) == 0 && pv.state == IVL_PEER_GONE);
	CHECK(dt_recv(a.sock, &v, &fd, 1000) == 0);
	CHECK(access(ts_path("sock"), F_OK) < 0 && access(ts_path("sock.ctl"), F_OK) < 0);
	dt_peer_close(&a);
	printf("PASS protocol\n");
	return 0;
}
