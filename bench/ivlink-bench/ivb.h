/* SPDX-License-Identifier: MIT */
/*
 * Private header of bench/ivlink-bench/: the parts of ivlink-bench shared by
 * its files (main, conn, server, client, results, report, plot, host).
 *
 * ivlink-bench: what ivlink buys an application, against the sockets it
 * replaces, measured in one run (issue 6). Where ivlink-ring-bench measures
 * the bare ring inside one forked process pair, this tool measures whole
 * transports as an application sees them: the native API (libivlink through
 * ivlinkd, or the guest backend inside a VM), TCP, UNIX sockets, and TCP run
 * under the socket shim (ivlink-run).
 *
 * Every measurement is a client process talking to a server process through
 * one transport ("mode"):
 *
 *   latency     the client sends SIZE bytes, the server echoes them; one
 *               sample per round trip (CLOCK_MONOTONIC), percentiles by
 *               nearest rank, after a discarded warm-up.
 *   throughput  the client sends SIZE-byte messages for DURATION, one send
 *               call each, then shuts down writing; the server receives
 *               them one message at a time until end of stream. Rates are
 *               the receiver's bytes over the receiver's elapsed time.
 *   CPU cost    each process reads its own CLOCK_PROCESS_CPUTIME_ID around
 *               its side of every test (spinning, copies, system calls and
 *               wake-ups all count); the server sends its figure back. Per
 *               message = CPU / messages; per byte = CPU / bytes.
 *
 * Each test runs on a connection of its own (a TCP/UNIX connection, or a
 * native channel named "ivb<k>"), opened with a 32-byte header saying what
 * to do, and closed with the server's 48-byte result. So the same client
 * and server work between two host processes and between two VMs (--role).
 *
 * Without --role the tool orchestrates a host run: it starts a private
 * ivlinkd (for the native modes) and, per mode, a server and a client
 * (itself, re-executed, pinned to two CPUs), collects the client's result
 * lines, and prints/writes everything. With --from it only aggregates result
 * lines from files, e.g. the serial consoles of the guests (ivlink-libvirt
 * bench). The result lines ("IVB ...", see ivb_print_result_lines() in results.c) are the
 * only interface between the roles, so a row measured in a VM and a row
 * measured on the host are handled by the same code.
 *
 * Ratios are always against baselines of the same run (design.md): tcp on
 * the host, vm-tcp in the VMs. The CPU goal (>= 90% less CPU per
 * message than TCP) is reported, never asserted: a shared machine must not
 * fail a build on a measurement.
 */
#ifndef IVLINK_BENCH_IVB_H
#define IVLINK_BENCH_IVB_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#include "bench_common.h"

/* ------------------------------------------------------------ parameters */

#define MAX_SIZES   16
#define MAX_MODES   8
#define MAX_ROWS    256
#define MAX_MSG	    (1u << 20)	  /* largest message size accepted */
#define WIRE_MAGIC  0x31425649u	  /* "IVB1" */
#define SPIN_LONG   10000000000LL /* ivlink-spin: 10 s, i.e. never sleeps */
#define NATIVE_RING (1u << 20)

/* Default and --quick run lengths. The default run of every host mode takes
 * about a minute on the 2-vCPU reference machine; --quick a few seconds. */
#define ITERS_DEFAULT	    10000u
#define ITERS_QUICK	    300u
#define DURATION_DEFAULT_MS 300u
#define DURATION_QUICK_MS   40u
#define TIMEOUT_DEFAULT_S   60u
#define REPEAT_DEFAULT	    3u
#define MAX_REPEAT	    9u

/* Quantiles of the latency CDF lines and plots: min, every percent, then
 * the tail. */
#define NQ 104
static inline double cdf_q(int i)
{
	static const double tail[] = {0.995, 0.999, 0.9999, 1.0};

	if (i == 0)
		return 0.0;
	if (i < 100)
		return i / 100.0;
	return tail[i - 100];
}

enum kind { K_NATIVE, K_TCP, K_UNIX };

struct mode_def {
	const char *name;
	enum kind kind;
	int64_t spin_ns; /* native: endpoint spin budget (0: library default) */
	bool shim;	 /* run both ends under ivlink-run */
	const char *what;
};

/* ------------------------------------------------------------ results */

struct lat_row {
	char mode[32];
	uint32_t size;
	uint64_t n;
	bool have_pct; /* false for rows that carry min/avg/max only */
	int64_t min, p50, p90, p99, p999, max;
	double avg;
	double cli_cpu_ns, srv_cpu_ns; /* per round trip */
	bool have_cdf;
	int64_t cdf[NQ];
};

struct tput_row {
	char mode[32];
	uint32_t size;
	uint64_t msgs, bytes;
	int64_t ns;		       /* receiver's elapsed time */
	double snd_cpu_ns, rcv_cpu_ns; /* whole test, each end */
};

struct store {
	struct lat_row lat[MAX_ROWS];
	size_t n_lat;
	struct tput_row tput[MAX_ROWS];
	size_t n_tput;
	char skipped[MAX_MODES * 2][160];
	size_t n_skipped;
	char failed[MAX_MODES * 2][160];
	size_t n_failed;
	char meta[16][2][128]; /* key, value: from --from files and the run */
	size_t n_meta;
};

/* ------------------------------------------------------------ options */

struct opts {
	const char *role; /* NULL, "server", "client" */
	char modes[256];
	const char *mode; /* --mode (roles) */
	const char *name; /* row name of a client's results */
	const char *listen, *connect, *endpoint, *peer;
	const char *daemon, *ivlink_run, *out, *label;
	const char *from[16];
	int n_from;
	uint32_t iters, duration_ms, timeout_s, repeat;
	uint32_t lat_sizes[MAX_SIZES], n_lat_sizes;
	uint32_t tput_sizes[MAX_SIZES], n_tput_sizes;
	int cpu, cpus[2];
	int64_t spin_ns;
	bool spin_set, quick, plot, json_stdout;
};
/* ------------------------------------------------------------ wire */

enum op { OP_LAT = 1, OP_TPUT = 2, OP_END = 3 };

struct wire_hdr {
	uint32_t magic;
	uint32_t op;
	uint32_t size;
	uint32_t reserved;
	uint64_t count;	      /* OP_LAT: round trips to echo */
	uint64_t duration_ns; /* OP_TPUT: informative */
};

struct wire_res {
	uint32_t magic;
	int32_t status; /* 0 or -errno of the server's side */
	uint64_t msgs;
	uint64_t bytes;
	uint64_t elapsed_ns;
	uint64_t cpu_ns;
	uint64_t reserved;
};

_Static_assert(sizeof(struct wire_hdr) == 32, "header is 32 bytes on the wire");
_Static_assert(sizeof(struct wire_res) == 48, "result is 48 bytes on the wire");

/* One test's connection: a socket or a native channel. */
struct conn {
	enum kind kind;
	int fd;
	struct ivl_channel *ch;
};

/* main.c */
extern struct opts ivb_opt;
extern struct store ivb_store;
extern char ivb_self_exe[PATH_MAX];
extern char ivb_tmpdir[PATH_MAX];
extern pid_t ivb_daemon_pid;
void ivb_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ivb_fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
const struct mode_def *ivb_mode_find(const char *name);

/* conn.c */
int ivb_conn_send(struct conn *c, const void *buf, size_t len);
int ivb_conn_recv(struct conn *c, void *buf, size_t len);
int ivb_conn_shutdown_wr(struct conn *c);
void ivb_conn_close(struct conn *c);
void ivb_sock_timeouts(int fd, uint32_t secs);
int ivb_parse_addr(const char *s, enum kind kind, struct sockaddr_storage *ss, socklen_t *len);
int ivb_native_open(const char *name, int64_t spin_ns, struct ivl_endpoint **ep);
long ivb_native_find_peer(struct ivl_endpoint *ep, const char *want, const char *alt);
int ivb_native_channel(struct ivl_endpoint *ep, uint32_t peer, unsigned k, struct conn *c);

/* server.c */
int ivb_run_server(const struct mode_def *m);

/* client.c */
int ivb_run_client(const struct mode_def *m);

/* results.c */
void ivb_print_result_lines(FILE *f, const struct store *s);
bool ivb_kv(const char *line, const char *key, char *out, size_t len);
void ivb_add_note(char (*list)[160], size_t *n, size_t max, const char *mode, const char *why);
void ivb_add_meta(const char *key, const char *val);
struct lat_row *ivb_find_lat(const char *mode, uint32_t size);
struct tput_row *ivb_find_tput(const char *mode, uint32_t size);
bool ivb_parse_result_line(const char *raw);
int ivb_read_result_file(const char *path);
const char *ivb_baseline_of(const char *mode);
double ivb_t_msgs_per_s(const struct tput_row *t);
double ivb_t_gbps(const struct tput_row *t);
/* which: 0 sender, 1 receiver, 2 both */
double ivb_t_cpu_per_msg(const struct tput_row *t, int which);
double ivb_t_cpu_per_byte(const struct tput_row *t, int which);
double ivb_cpu_pct_less(double mine, double base);
size_t ivb_row_modes(char (*out)[32], size_t max);

/* report.c */
void ivb_us(char *buf, size_t len, bool have, double ns);
void ivb_print_human(FILE *f);
FILE *ivb_open_out(const char *name, char *path, size_t len);
int ivb_write_outputs(void);

/* plot.c */
int ivb_write_plots(void);

/* host.c */
void ivb_cleanup(void);
void ivb_on_signal(int sig);
int ivb_run_host(void);

#endif /* IVLINK_BENCH_IVB_H */
