/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/integration/: starting a real ivlinkd in a temp
 * dir, forking peer processes, a deterministic byte stream with checksums.
 *
 * Every test binary takes the ivlinkd path as argv[1] (or $IVLINKD) and
 * exits 77 (skipped) without one. The harness kills only the processes it
 * started, on success, failure, timeout (alarm) or a fatal signal, and
 * removes its temp dir.
 */
#ifndef IVLINK_TESTS_INTEGRATION_HARNESS_H
#define IVLINK_TESTS_INTEGRATION_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include <ivlink/ivlink.h>

#include "support.h"

#define IT_SKIP 77

#define IT_FAIL	 TS_FAIL
#define IT_CHECK TS_CHECK

struct it_daemon {
	pid_t pid;
	char dir[128];
	char sock[192];
	char uri[200];
};

/*
 * Prepares the harness: argv[1] or $IVLINKD names the daemon (else exits
 * 77), installs the cleanup handlers and an alarm of timeout_s seconds.
 * Returns the daemon path.
 */
const char *it_init(int argc, char **argv, unsigned timeout_s);

/* Starts ivlinkd -F -S <tmp>/sock -l <size> -n <vectors> --max-peers 8,
 * waits until its socket accepts connections. Fails the test on error. */
void it_daemon_start(struct it_daemon *d, const char *ivlinkd, const char *size, unsigned vectors);
/* The same with --name NAME (the region's name in its header); up to four
 * daemons at once, each in a temp dir of its own. */
void it_daemon_start_named(struct it_daemon *d, const char *ivlinkd, const char *size,
			   unsigned vectors, const char *name);
void it_daemon_stop(struct it_daemon *d);

/* Forks a child running fn(arg) and exiting with its return value. */
pid_t it_spawn(int (*fn)(void *), void *arg);
/* Waits for a child; after timeout_s kills it (SIGKILL). Returns its exit
 * status (0..255), or 128 + signal. */
int it_wait(pid_t pid, unsigned timeout_s);
/* SIGKILL to a child started by it_spawn. */
void it_kill9(pid_t pid);

int64_t it_now_ns(void);

/* Opens an endpoint on d with a name and spin budget (see ivlink.h). */
struct ivl_endpoint *it_open(const struct it_daemon *d, const char *name, int64_t spin_ns);
/* Waits up to timeout_ns for a live peer named name; returns its id. */
uint32_t it_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns);

/*
 * A deterministic byte stream: byte i of stream seed is byte i % 8 of
 * splitmix64(seed, i / 8), so any range can be produced or checked without
 * the ones before it.
 */
void it_stream_fill(uint64_t seed, uint64_t off, void *buf, size_t len);
/* Returns the offset of the first byte that differs, or len. */
size_t it_stream_check(uint64_t seed, uint64_t off, const void *buf, size_t len);
/* Order-dependent 64-bit checksum, continued over calls: start with 0. */
uint64_t it_cksum(uint64_t cks, const void *buf, size_t len);
/* A small PRNG for sizes and choices. */
uint64_t it_rand(uint64_t *state);

#endif /* IVLINK_TESTS_INTEGRATION_HARNESS_H */
