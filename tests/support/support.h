/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/: the one support library of every C test
 * harness (unit, stress, daemon, integration, apps, reliability, vm).
 *
 * - Checks: CHECK(cond[, fmt, ...]), CHECK_EQ(expr, want), CHECK_OK(expr)
 *   and FAIL(fmt, ...). A failure prints "<test>: FAIL file:line: ..." and
 *   exits 1: through exit() in the process that called ts_init() (its
 *   atexit cleanup stops what the test started), through _exit() in any
 *   other process (a forked child must not run the parent's cleanup).
 * - EXPECT(cond[, fmt, ...]): a check that does not end the test, for a
 *   verdict of several independent observations after one expensive run
 *   (a VM boot): it prints "ok: ..." or the failure like CHECK() and counts
 *   it; the test ends with ts_failures() ? 1 : 0.
 * - Exit code TS_SKIP (77) = skipped (CTest's SKIP_RETURN_CODE).
 * - ts_init(): a temp dir, a watchdog alarm, cleanup at exit and on
 *   signals of the child processes, daemons and /dev/shm names the test
 *   registered (by pid, never by name).
 * - ivlinkd start/stop, child processes, one deterministic byte stream,
 *   splitmix64, CLOCK_MONOTONIC, /proc counters.
 *
 * ivl_test_support (support.c) needs nothing but libc; the endpoint helpers
 * (support_ep.c, ivl_test_support_ep) link libivlink.
 */
#ifndef IVLINK_TESTS_SUPPORT_SUPPORT_H
#define IVLINK_TESTS_SUPPORT_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define TS_SKIP 77

/* ---------------------------------------------------------------- checks */

void ts_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
/* The failure of CHECK(): expr is the condition's text, fmt starts with a
 * space (so that an absent message is not an empty format). */
void ts_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define FAIL(...) ts_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Fails unless cond holds. The optional arguments are a printf format (a
 * string literal) and its values. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ts_check_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__);               \
	} while (0)

/* Evaluates expr once and fails unless it equals want (both as long). */
#define CHECK_EQ(expr, want)                                                                       \
	do {                                                                                       \
		long ts_got_ = (long)(expr), ts_want_ = (long)(want);                              \
		if (ts_got_ != ts_want_)                                                           \
			FAIL("%s == %ld (%s), expected %ld (%s)", #expr, ts_got_,                  \
			     ts_got_ < 0 ? strerror((int)-ts_got_) : "-", ts_want_,                \
			     ts_want_ < 0 ? strerror((int)-ts_want_) : "-");                       \
	} while (0)

/* Fails unless expr (an int-like return, -errno on failure) is >= 0. */
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		long ts_got_ = (long)(expr);                                                       \
		if (ts_got_ < 0)                                                                   \
			FAIL("%s failed: %ld (%s)", #expr, ts_got_, strerror((int)-ts_got_));      \
	} while (0)

int ts_expect(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Non-fatal CHECK(): when cond holds, prints "<test>: ok: <message>" (the
 * condition's text without one) to stdout; else prints the failure like
 * CHECK() to stderr and counts it, and the test goes on. Evaluates to
 * whether cond held. The test must end unsuccessfully when ts_failures()
 * is not 0; use it only where several failures at once tell more than the
 * first (later checks that depend on an earlier one want CHECK()).
 */
#define EXPECT(cond, ...) ts_expect(!!(cond), __FILE__, __LINE__, #cond, " " __VA_ARGS__)
/* The number of EXPECT() failures so far (in this process). */
int ts_failures(void);

/* ------------------------------------------------------- test lifetime */

/*
 * Starts a harnessed test: a temp dir /tmp/ivl-<name>-XXXXXX, cleanup at
 * exit and on SIGALRM/SIGINT/SIGTERM/SIGBUS, SIGPIPE ignored, stdout line
 * buffered, and a watchdog alarm of timeout_s seconds (0: none). name
 * prefixes failure messages.
 */
void ts_init(const char *name, unsigned timeout_s);
/*
 * The ivlinkd to test: argv[1] or $IVLINKD. Without an executable one the
 * test is skipped (exit TS_SKIP). Then ts_init(name, timeout_s).
 */
const char *ts_init_ivlinkd(int argc, char **argv, const char *name, unsigned timeout_s);
/* The temp dir of ts_init(). */
const char *ts_dir(void);
/* Path of leaf inside the temp dir (static storage, 8 rotating buffers). */
const char *ts_path(const char *leaf);
/* Removes /dev/shm/<name> at exit. */
void ts_track_shm(const char *name);
/* Removes dir and everything under it, without following links or
 * entering another file system mounted there. */
void ts_rm_tree(const char *dir);

/* ----------------------------------------------------------- processes */

/*
 * Processes a test started (up to 64): killed (SIGKILL) and reaped at exit
 * or on a signal. A process that is not our child (a daemonized ivlinkd)
 * may be tracked too.
 */
void ts_track_pid(pid_t pid);
/*
 * Tracks pid (or marks an already tracked one, as after ts_exec()) to be
 * stopped TERM first: the cleanup sends it SIGTERM, waits up to 5 s for it
 * to end, and only then sends SIGKILL. For a process whose own cleanup
 * must run, such as vm-configs/ivlink-vm, whose EXIT trap stops its QEMU
 * (SIGKILL would leave QEMU running).
 */
void ts_track_pid_term(pid_t pid);
void ts_forget_pid(pid_t pid);
/* fork() after flushing stdio; the child forgets the tracked pids and
 * the temp dir and cancels the alarm, the parent tracks the child. */
pid_t ts_fork(void);
/* Forks a child running fn(arg) and exiting with its return value. */
pid_t ts_spawn(int (*fn)(void *), void *arg);
/* Runs a(arg_a) and b(arg_b) in two children (ts_spawn) and fails the
 * test unless both exit 0 within timeout_ms each; the names say which
 * failed. */
void ts_run_two(const char *name_a, int (*a)(void *), void *arg_a, const char *name_b,
		int (*b)(void *), void *arg_b, unsigned timeout_ms);
/* Fork + exec argv (NULL terminated); the child is tracked. */
pid_t ts_exec(char *const *argv);
/*
 * Waits for child pid up to timeout_ms; past it, SIGKILL, reap and return
 * -1 (with a message). Else its exit status (0..255) or 128 + signal.
 * Forgets the pid. Fails the test when waitpid() fails.
 */
int ts_wait(pid_t pid, unsigned timeout_ms);
/* SIGKILL to child pid and reap it; returns what ts_wait() does. */
int ts_kill9(pid_t pid);
/*
 * Sends sig (0: none) to pid and waits up to timeout_ms for it to end,
 * then SIGKILL. Forgets the pid. Returns the raw wait status (-1 if pid
 * is not our child).
 */
int ts_stop(pid_t pid, int sig, unsigned timeout_ms);

/* --------------------------------------------------------------- ivlinkd */

struct ts_daemon_opts {
	const char *log_level; /* --log-level; "warn" when NULL */
	int log_file;	       /* stderr to a file in the temp dir; a failure prints its tail */
	unsigned nofile;       /* RLIMIT_NOFILE of the daemon when > 0 */
};

struct ts_daemon {
	pid_t pid;
	char sock[200]; /* the ivshmem-server socket */
	char ctl[208];	/* its status socket */
	char uri[208];	/* "host:<sock>" */
};

/*
 * Starts "bin -F --log=stderr --log-level=L -S sock" + extra (NULL
 * terminated; o may be NULL) and waits up to 10 s until its status socket
 * <sock>.ctl answers with the daemon's pid. A relative sock is a path in
 * the temp dir. Returns the pid, or -1 when it exited first (its wait
 * status in *status when not NULL). Fails the test when it never answers.
 */
pid_t ts_daemon_spawn(const char *bin, const char *sock, const char *const *extra,
		      const struct ts_daemon_opts *o, int *status);
/* ts_daemon_spawn() that fails the test unless the daemon came up, and
 * fills d. */
void ts_daemon_start(struct ts_daemon *d, const char *bin, const char *sock,
		     const char *const *extra, const struct ts_daemon_opts *o);
/* ts_stop(pid, sig, 10 s); pid <= 0 returns 0. Returns the wait status. */
int ts_daemon_stop(pid_t pid, int sig);
/* Prints the tail of each daemon log file to stderr (done by a failure). */
void ts_dump_logs(void);
/* Prints the last lines of file path to stderr, under a "---- path" line. */
void ts_print_tail(const char *path, int lines);

/* ------------------------------------------------------------- sockets */

/* A connected UNIX stream socket to path, or -errno. */
int ts_connect(const char *path);
/* 1 if a UNIX stream socket at path accepts a connection. */
int ts_can_connect(const char *path);
/* An ivlinkd status request by bound name (host-daemon/server/status.c):
 * connects to the status socket ctl bound to "\0ivlink-status-req/REQ",
 * reads the whole reply into buf (NUL-terminated) and the fd that came
 * with it into *fd (-1 if none). Returns 0 or -errno of connect(). */
int ts_status_request(const char *ctl, const char *req, char *buf, size_t len, int *fd);

/* ------------------------------------------------- random and streams */

/* splitmix64: one step from state x (a pure function of x). */
static inline uint64_t ts_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The next number of the splitmix64 sequence in *state. */
static inline uint64_t ts_rand(uint64_t *state)
{
	uint64_t r = ts_splitmix64(*state);

	*state += 0x9e3779b97f4a7c15ULL;
	return r;
}

/* Uniform-ish in [0, n); 0 when n is 0. */
static inline uint64_t ts_rand_below(uint64_t *state, uint64_t n)
{
	return n ? ts_rand(state) % n : 0;
}

/*
 * A deterministic byte stream: byte i of stream seed is byte i % 8 of
 * splitmix64(seed * FNV prime ^ i / 8), so any range can be produced or
 * checked without the ones before it.
 */
void ts_stream_fill(uint64_t seed, uint64_t off, void *buf, size_t len);
/* Returns the offset of the first byte that differs, or len. */
size_t ts_stream_check(uint64_t seed, uint64_t off, const void *buf, size_t len);

/* A cursor over one stream, for a producer and a consumer that each go
 * front to back. */
struct ts_stream {
	uint64_t seed;
	uint64_t off;
};

static inline void ts_stream_init(struct ts_stream *g, uint64_t seed)
{
	g->seed = seed;
	g->off = 0;
}

/* The next len bytes of the stream into dst. */
static inline void ts_stream_next(struct ts_stream *g, void *dst, size_t len)
{
	ts_stream_fill(g->seed, g->off, dst, len);
	g->off += len;
}

/* Compares src with the next len bytes; returns the index of the first
 * mismatch, or -1 when all match. */
static inline long ts_stream_next_check(struct ts_stream *g, const void *src, size_t len)
{
	size_t bad = ts_stream_check(g->seed, g->off, src, len);

	g->off += len;
	return bad == len ? -1 : (long)bad;
}

/* Order-dependent 64-bit checksum (FNV-1a), continued over calls: start
 * with 0. */
uint64_t ts_cksum(uint64_t cks, const void *buf, size_t len);

/* ---------------------------------------------------------- time, /proc */

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t ts_now_ns(void);
/* Sleeps us microseconds (restarted after a signal). */
void ts_sleep_us(long us);
/* Open fds of pid (/proc/PID/fd), or -1. For the calling process the
 * directory stream itself is not counted. */
int ts_proc_fds(pid_t pid);
/* VmRSS of pid in KiB, or -1. */
long ts_proc_rss_kb(pid_t pid);

/* ---------------------------------------------- endpoints (support_ep.c) */

struct ivl_endpoint;

/*
 * Opens an endpoint at uri with a peer-table name and spin budget; libivlink
 * messages up to max_level (IVL_LOG_ERROR or IVL_LOG_WARN; every level with
 * $IVL_TEST_VERBOSE) go to stderr, tagged with name, which must outlive the
 * endpoint. Returns 0 or -errno.
 */
int ts_endpoint_open(struct ivl_endpoint **ep, const char *uri, const char *name, int64_t spin_ns,
		     int max_level);
/* ts_endpoint_open() on daemon d that fails the test on error. */
struct ivl_endpoint *ts_open(const struct ts_daemon *d, const char *name, int64_t spin_ns,
			     int max_level);
/* Waits up to timeout_ns for a live peer called name (not ourselves);
 * returns its id or -ETIMEDOUT. */
int ts_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns);

#endif /* IVLINK_TESTS_SUPPORT_SUPPORT_H */
