/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/daemon/: a raw ivshmem-server protocol client
 * (dt_recv, dt_peer_*) for the ivlinkd tests, on top of
 * tests/support/support.h (checks, temp dir, ivlinkd start/stop, cleanup).
 */
#ifndef IVLINK_TESTS_DAEMON_DTEST_H
#define IVLINK_TESTS_DAEMON_DTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ivlink/region.h>
#include <ivlink/ring.h>

#include "support.h"

/* How the daemon tests run ivlinkd: every level logged, into a file in the
 * temp dir whose tail a failure prints. */
extern const struct ts_daemon_opts dt_daemon_opts;

/* One protocol message: 1, 0 on EOF, -ETIMEDOUT, -errno. *fd = -1 if none. */
int dt_recv(int sock, int64_t *val, int *fd, int timeout_ms);
/* 1 if sock has nothing to read within ms. */
int dt_quiet(int sock, int ms);

struct dt_peer {
	int sock;
	int id;
	int shm;
	uint32_t n_vectors;
	int own[IVL_VECTORS_LIMIT];
	int other[IVL_PEERS_LIMIT][IVL_VECTORS_LIMIT]; /* -1 if none */
	void *base;
	uint64_t size;
	struct ivl_region rg;
};

/* Connects and completes the handshake (region mapped and validated).
 * Returns 0 or -errno (FAIL()s on protocol violations). */
int dt_peer_join(struct dt_peer *p, const char *sock, uint32_t n_vectors);
/* Reads pending join/leave messages (up to ms of silence) and updates
 * p->other. Returns the number of messages. */
int dt_peer_pump(struct dt_peer *p, int ms);
void dt_peer_close(struct dt_peer *p);

/*
 * The ivlinkctl tests' scene: ivlinkd (bin) with a 4 MiB region named
 * ivlink-<tag>-test-<pid> and 2 vectors; raw peers a (id 0, "west") and b
 * (id 1, east_name), both of backend host; then before_channel(f) (may be
 * NULL); then a matched stream channel "echo" of 4096 bytes, a -> b, whose
 * two ends are f->prod (in a) and f->cons (in b). Fails the test on error.
 */
#define DT_CTL_NVEC 2
struct dt_ctl_fixture {
	char name[64];
	char sock[256];
	pid_t daemon;
	struct dt_peer a, b;
	struct ivl_peer_view pa, pb;
	int sa, sb;
	struct ivl_ctab_remote ma, mb; /* a's and b's view of the other half */
	struct ivl_ring prod, cons;
};
void dt_ctl_fixture(struct dt_ctl_fixture *f, const char *bin, const char *tag,
		    const char *east_name, void (*before_channel)(struct dt_ctl_fixture *f));
/* Runs "bin args > outfile" through the shell; the output in out. Returns
 * the exit status (-1 if it did not exit). */
int dt_run(const char *bin, const char *args, const char *outfile, char *out, size_t len);

#endif
