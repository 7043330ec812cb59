/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/: helpers shared by the integration, daemon and
 * reliability harnesses (tests/integration/harness.h, tests/daemon/dtest.h,
 * tests/reliability/rel.h), which keep their own prefixes and failure
 * conventions on top of these.
 *
 * ivl_test_support (support.c) needs nothing but libc; the endpoint helpers
 * (support_ep.c, ivl_test_support_ep) link libivlink.
 */
#ifndef IVLINK_TESTS_SUPPORT_SUPPORT_H
#define IVLINK_TESTS_SUPPORT_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

/* Prints "FAIL file:line: message" and exits 1 (the atexit cleanup of the
 * harness kills what the test started). */
#define TS_FAIL(...)                                                                               \
	do {                                                                                       \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fprintf(stderr, "\n");                                                             \
		exit(1);                                                                           \
	} while (0)

#define TS_CHECK(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond))                                                                       \
			TS_FAIL(__VA_ARGS__);                                                      \
	} while (0)

struct ivl_endpoint;

/*
 * Child processes a test started (up to 64): ts_kill_tracked() sends each
 * SIGKILL and reaps it (from the cleanup at exit or a signal handler;
 * kill() and waitpid() only). A forked child calls ts_forget_all() first.
 */
void ts_track_pid(pid_t pid);
void ts_forget_pid(pid_t pid);
void ts_forget_all(void);
void ts_kill_tracked(void);
/*
 * Waits for child pid up to timeout_ns; past it, SIGKILL and reap, and
 * *killed = 1. Forgets the pid. Returns its exit status (0..255), 128 +
 * signal, or -errno when waitpid() fails.
 */
int ts_wait(pid_t pid, int64_t timeout_ns, int *killed);
/*
 * Sends sig to child pid and waits up to timeout_ns for it, then SIGKILL.
 * Forgets the pid. Returns the raw wait status.
 */
int ts_stop(pid_t pid, int sig, int64_t timeout_ns);
/* fork() after flushing stdio; the child forgets the tracked pids and
 * cancels the alarm, the parent tracks the child. Returns fork()'s
 * result. */
pid_t ts_fork(void);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t ts_now_ns(void);
/* Removes the files of dir (one level) and dir itself. */
void ts_rm_tree(const char *dir);
/* Open fds of pid (/proc/PID/fd), or -1. For the calling process the
 * directory stream itself is not counted. */
int ts_proc_fds(pid_t pid);
/* VmRSS of pid in KiB, or -1. */
long ts_proc_rss_kb(pid_t pid);
/* 1 if a UNIX stream socket at path accepts a connection. */
int ts_can_connect(const char *path);

/*
 * Opens an endpoint at uri with a peer-table name and spin budget; libivlink
 * messages up to max_level (IVL_LOG_ERROR or IVL_LOG_WARN; every level with
 * $IVL_TEST_VERBOSE) go to stderr, tagged with name, which must outlive the
 * endpoint. Returns 0 or -errno.
 */
int ts_endpoint_open(struct ivl_endpoint **ep, const char *uri, const char *name, int64_t spin_ns,
		     int max_level);
/* Waits up to timeout_ns for a live peer called name (not ourselves);
 * returns its id or -ETIMEDOUT. */
int ts_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns);

#endif /* IVLINK_TESTS_SUPPORT_SUPPORT_H */
