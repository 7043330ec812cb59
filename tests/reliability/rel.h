/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/reliability/: starting ivlinkd with any options,
 * forking peers, killing them, counting fds, and guard pages around every
 * region mapping of this process.
 *
 * Every test takes the ivlinkd path as argv[1] (or $IVLINKD) and exits 77
 * (skipped) without one. rel_init() installs an atexit handler and a
 * watchdog alarm that kill the processes the test started (by pid, never by
 * name), remove its temp dir and the /dev/shm names it registered.
 *
 * Guard pages (rel_guard.c): this file's mmap() interposes the one libivlink
 * calls. A shared, fd-backed mapping of at least 1 MiB at no fixed address,
 * which is how every backend maps a region, is placed between two 64 KiB
 * PROT_NONE areas, so that a read or write just outside the region faults
 * (ASan cannot see such accesses: the region is not heap memory).
 */
#ifndef IVLINK_TESTS_RELIABILITY_REL_H
#define IVLINK_TESTS_RELIABILITY_REL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include <ivlink/ivlink.h>

#include "support.h"
#include <ivlink/region.h>

#define REL_SKIP       77
#define REL_GUARD_SIZE (64u << 10)

#define REL_FAIL  TS_FAIL
#define REL_CHECK TS_CHECK

struct rel_daemon {
	pid_t pid;
	char sock[192];
	char ctl[200];
	char uri[200];
};

/* argv[1] or $IVLINKD (else exit 77); temp dir, cleanup, watchdog. Returns
 * the daemon path. */
const char *rel_init(int argc, char **argv, const char *name, unsigned timeout_s);
const char *rel_dir(void);
/* A path in the temp dir (static storage, 8 rotating buffers). */
const char *rel_path(const char *leaf);
/* Removes /dev/shm/<name> at exit. */
void rel_track_shm(const char *name);

/* $IVLINK_RELIABILITY_ITERS scaled: max(dflt, env) (env < dflt allowed
 * only when env > 0: quick local runs). */
unsigned rel_iters(unsigned dflt);
/* $IVLINK_RELIABILITY_SEED, else dflt. */
uint64_t rel_seed(uint64_t dflt);

/*
 * Starts "ivlinkd -F -S <dir>/<leaf> --log-level=warn" plus extra (NULL
 * terminated) and waits until its status socket answers. nofile > 0 sets
 * the daemon's RLIMIT_NOFILE. Fails the test on error.
 */
void rel_daemon_start(struct rel_daemon *d, const char *ivlinkd, const char *leaf,
		      const char *const *extra, unsigned nofile);
/* Sends sig and reaps (SIGKILL after 5 s). Returns the wait status. */
int rel_daemon_stop(struct rel_daemon *d, int sig);

/* Forks a child running fn(arg), exiting with its return value. */
pid_t rel_spawn(int (*fn)(void *), void *arg);
/* Fork + exec argv (NULL terminated); the child is tracked. */
pid_t rel_exec(char *const *argv);
/* Waits for a child; SIGKILL after timeout_ms. Returns the exit status
 * (0..255), 128 + signal, or -1 if it had to be killed. */
int rel_wait(pid_t pid, unsigned timeout_ms);
/* SIGKILL to a tracked child and reap it. */
void rel_kill9(pid_t pid);
/* Tracks a child forked elsewhere (killed at exit unless reaped by
 * rel_wait() or rel_kill9()). */
void rel_track_pid(pid_t pid);

int64_t rel_now_ns(void);
int rel_fd_count(pid_t pid);
uint64_t rel_rand(uint64_t *state);

/* An endpoint on d; name is written to the peer table. */
struct ivl_endpoint *rel_open(const struct rel_daemon *d, const char *name, int64_t spin_ns);
/* Waits up to timeout_ns for a live peer called name; returns its id or
 * -ETIMEDOUT. */
int rel_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns);

/*
 * Opens channel name between two endpoints of this process (one side in a
 * helper thread). Returns 0 with *ca and *cb set, or the first -errno.
 */
int rel_pair_open(struct ivl_endpoint *a, struct ivl_endpoint *b, const char *name,
		  const struct ivl_channel_opts *o, int64_t timeout_ns, struct ivl_channel **ca,
		  struct ivl_channel **cb);

/* Deterministic streams (harness.h of tests/integration, reused). */
void rel_fill(uint64_t seed, uint64_t off, void *buf, size_t len);
size_t rel_check(uint64_t seed, uint64_t off, const void *buf, size_t len);

/* ---------------------------------------------------------- rel_guard.c */

/* Number of region mappings placed between guard pages so far. */
unsigned rel_guard_count(void);
/* The most recent guarded mapping (the region of the endpoint opened last):
 * attaches a local, validated view of it. Returns 0 or -ENOENT/-EPROTO. */
int rel_guard_region(struct ivl_region *rg);

/* Runs "ivlinkctl status --json --socket <sock>" and returns its exit status
 * (128 + signal if it crashed); its output in out. */
int rel_ivlinkctl_json(const char *ivlinkctl, const char *sock, char *out, size_t len);
/* 1 if s is one syntactically valid JSON value (a small checker). */
int rel_json_valid(const char *s);

#endif /* IVLINK_TESTS_RELIABILITY_REL_H */
