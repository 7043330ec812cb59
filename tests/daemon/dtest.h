/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/daemon/: helpers shared by the ivlinkd tests.
 *
 * Every test gets a temporary directory for sockets and logs; daemons it
 * starts and /dev/shm names it registers are killed and removed at exit,
 * including on failure (dt_fail() exits through atexit) and on the watchdog
 * alarm.
 */
#ifndef IVLINK_TESTS_DAEMON_DTEST_H
#define IVLINK_TESTS_DAEMON_DTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ivlink/region.h>

#define DT_SKIP 77

void dt_init(const char *name, int timeout_s);
void dt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define DT_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond))                                                                       \
			dt_fail("%s:%d: check '%s' failed", __FILE__, __LINE__, #cond);            \
	} while (0)
#define DT_EXPECT(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			dt_fail(__VA_ARGS__);                                                      \
	} while (0)

/* Path of leaf inside the test's temporary directory (static storage,
 * 8 rotating buffers). */
const char *dt_path(const char *leaf);
const char *dt_dir(void);
void dt_track_shm(const char *name);
/* A process that is not our child (a daemonized ivlinkd): killed at exit. */
void dt_track_pid(pid_t pid);

/* Starts "bin -F --log=stderr --log-level=debug -S SOCK" + extra (NULL
 * terminated), stderr to a log file in the temp dir, and waits until its
 * status socket answers. Returns the pid, or -1 if it exited (its status in
 * *status when not NULL). */
pid_t dt_daemon_start(const char *bin, const char *sock, const char *const *extra, int *status);
/* Sends sig and waits (up to 10 s). Returns the wait status. */
int dt_daemon_stop(pid_t pid, int sig);
/* Dumps the daemon logs to stderr (on failure). */
void dt_dump_logs(void);

int dt_connect(const char *path);
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
 * Returns 0 or -errno (dt_fail()s on protocol violations). */
int dt_peer_join(struct dt_peer *p, const char *sock, uint32_t n_vectors);
/* Reads pending join/leave messages (up to ms of silence) and updates
 * p->other. Returns the number of messages. */
int dt_peer_pump(struct dt_peer *p, int ms);
void dt_peer_close(struct dt_peer *p);

int dt_proc_fds(pid_t pid);
long dt_proc_rss_kb(pid_t pid);

#endif
