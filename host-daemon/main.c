/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd: command line, daemonizing, signals and logging around the server
 * object in server.c. Accepts QEMU ivshmem-server's short options with the
 * same meanings so that it can replace that server in existing setups.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sd_daemon.h"
#include "server.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "NAME\n"
    "    ivlinkd - ivlink host daemon: ivshmem server and region provisioner\n"
    "\n"
    "SYNOPSIS\n"
    "    ivlinkd [-F] [-v] [-S SOCKET] [-l SIZE] [-n VECTORS] [-m NAME|DIR] [-M NAME]\n"
    "            [-p PIDFILE] [LONG OPTIONS]\n"
    "\n"
    "DESCRIPTION\n"
    "    ivlinkd creates an ivlink shared-memory region (layout v%u) and serves the\n"
    "    ivshmem-server protocol on a UNIX stream socket, so QEMU's ivshmem-doorbell\n"
    "    device (-chardev socket,path=SOCKET) and libivlink host processes can join\n"
    "    it as peers. Each peer gets an id below --max-peers, the region fd and one\n"
    "    eventfd per vector for itself and for every other peer. The daemon keeps\n"
    "    the region's peer table (state UP/GONE and an epoch bumped at every join\n"
    "    and leave) and rings vector 0 (the control vector) of every live peer on\n"
    "    each join and leave. A gone peer's section is reset at once.\n"
    "\n"
    "    It is a drop-in replacement for QEMU's contrib/ivshmem-server: the short\n"
    "    options below have that server's meanings. Unlike it, ivlinkd never\n"
    "    blocks on a client: a client that sends data (the protocol is one-way),\n"
    "    stops reading (more than --max-queue messages pending) or hangs up is\n"
    "    dropped, and a client beyond --max-peers or outside the allow-lists is\n"
    "    refused (its connection is closed before it receives anything).\n"
    "\n"
    "    A named region (-m/-M/--shm) outlives the daemon. When ivlinkd starts and\n"
    "    finds it with a valid header of the same size, vectors, max peers and\n"
    "    channel slots, it re-attaches instead of wiping it: the header's daemon\n"
    "    generation is bumped and the data kept. Table entries left UP by a\n"
    "    daemon that died (not shut down cleanly) are kept as they are, and their\n"
    "    ids are not handed out again, until a restart with --reclaim-stale marks\n"
    "    them GONE.\n"
    "    A region of another geometry is refused unless --force-format.\n"
    "\n"
    "    A status socket (default SOCKET.ctl) serves ivlinkctl(8): it replies with\n"
    "    a text description of the connected clients and a read-only fd of the\n"
    "    region, and never makes the caller a peer.\n"
    "\n"
    "OPTIONS\n"
    "    Numbers are decimal (a leading 0 is not octal, 0x is not hex), except a\n"
    "    MODE, which is octal as for chmod(1). A value out of range, empty, with a\n"
    "    sign, blanks or trailing characters is an invalid command line.\n"
    "\n"
    "    -S, --socket PATH     ivshmem socket (default " IVL_SERVER_DEFAULT_SOCKET ");\n"
    "                          a missing directory of PATH (the last one only) is\n"
    "                          created, mode 0755, or 0750 with --socket-group\n"
    "    -l, --size SIZE       region size in bytes, a power of two >= 1M; suffixes\n"
    "                          K, M, G, T are binary (64M, 64MB and 64MiB are\n"
    "                          2^26 bytes) (default 64M)\n"
    "    -n, --vectors N       doorbell vectors per peer, 1..%u (default 8). QEMU's\n"
    "                          ivshmem-doorbell must have vectors >= N.\n"
    "    -m NAME|DIR           ivshmem-server compatibility: a NAME is a POSIX shm\n"
    "                          object (as --shm NAME); a DIR (contains '/') is where\n"
    "                          to create the region file (as --hugetlb DIR)\n"
    "    -M, --shm NAME        region in /dev/shm/NAME (kept after exit, re-attached\n"
    "                          on restart); default: an anonymous sealed memfd\n"
    "        --hugetlb DIR     region file in the hugetlbfs mount DIR: DIR/NAME with\n"
    "                          --shm NAME, else an anonymous huge-page memfd (an\n"
    "                          unlinked file if DIR is not a hugetlbfs mount)\n"
    "        --name NAME       region name in the header (default: the shm name, or\n"
    "                          \"ivlink\")\n"
    "        --max-peers N     peer ids 0..N-1, 1..%u (default 8)\n"
    "        --chan-slots N    channel halves in each peer's section, 1..%u\n"
    "                          (default 64; 512 bytes each). Every native channel\n"
    "                          end, and under the socket shim every connection,\n"
    "                          listening socket and fallback note, takes one; a\n"
    "                          process with 1,000 shimmed connections needs more\n"
    "                          than 1024. Part of the region's geometry.\n"
    "        --max-queue N     messages queued to one client before it is dropped\n"
    "                          (default %u; raised to fit one handshake)\n"
    "    -F, --foreground      do not daemonize (default: double fork, setsid,\n"
    "                          stdio to /dev/null, log to syslog)\n"
    "    -p, --pidfile PATH    write the daemon's pid to PATH (removed at exit)\n"
    "    -v, --verbose         same as --log-level=debug\n"
    "        --log=stderr|syslog\n"
    "                          log destination (default: stderr with -F, else\n"
    "                          syslog, facility daemon)\n"
    "        --log-level=error|warn|info|debug\n"
    "                          least severe level logged (default info)\n"
    "        --allow-uid UID   accept only clients of this uid (0..4294967294, or a\n"
    "                          user name; all digits is always a number);\n"
    "                          repeatable, combines with --allow-gid; without\n"
    "                          either, any client that can open the socket is served\n"
    "        --allow-gid GID   accept clients whose primary gid is GID (0..4294967294,\n"
    "                          or a group name); repeatable\n"
    "        --socket-mode MODE\n"
    "                          octal mode 0..0777 of both sockets, whatever the\n"
    "                          umask (default 0600); a /dev/shm region file gets\n"
    "                          MODE & 0666\n"
    "        --socket-group GROUP\n"
    "                          group of both sockets and of a region file ivlinkd\n"
    "                          creates (a gid 0..4294967294, or a group name), e.g.\n"
    "                          the group QEMU runs as (libvirt-qemu under libvirt):\n"
    "                          with --socket-mode 0660 its members may connect\n"
    "                          (default: the daemon's group)\n"
    "        --status-socket PATH|none\n"
    "                          status socket for ivlinkctl (default SOCKET.ctl)\n"
    "        --reclaim-stale   at start, mark table entries left UP by a previous\n"
    "                          daemon GONE and reset their sections\n"
    "        --force-format    wipe an existing named region of another geometry\n"
    "                          (or that holds no valid ivlink header)\n"
    "    -h, --help            show this help and exit\n"
    "        --version         show the version and exit\n"
    "\n"
    "SIGNALS\n"
    "    SIGTERM, SIGINT   clean shutdown: every connected peer is marked GONE and\n"
    "                      its control vector rung, clients are closed, the sockets\n"
    "                      and pidfile removed. A named region is kept.\n"
    "    SIGHUP            logged and ignored (nothing to reload).\n"
    "    SIGPIPE           ignored (failed sends drop the client).\n"
    "\n"
    "ENVIRONMENT\n"
    "    NOTIFY_SOCKET     systemd's notification socket (Type=notify): READY=1 once\n"
    "                      both sockets listen, STOPPING=1 at shutdown\n"
    "    JOURNAL_STREAM    when it names stderr, log lines start with their syslog\n"
    "                      priority (<3> error ... <7> debug) for the journal\n"
    "\n"
    "FILES\n"
    "    " IVL_SERVER_DEFAULT_SOCKET "       default ivshmem socket\n"
    "    SOCKET.ctl                status socket (ivlinkctl status)\n"
    "    /run/ivlink/              the default socket directory (created if missing)\n"
    "    /dev/shm/NAME             named region (-m NAME, -M NAME, --shm NAME)\n"
    "\n"
    "EXIT STATUS\n"
    "    0  clean shutdown (or --help, --version)\n"
    "    1  start-up or runtime failure (message on stderr or in the log); as a\n"
    "       daemon, the foreground process exits 1 if the daemon failed to start\n"
    "    2  invalid command line\n"
    "\n"
    "EXAMPLES\n"
    "    ivlinkd -F -S /run/ivlink/ivlinkd.sock -l 64M -n 8\n"
    "        serve an anonymous 64 MiB region in the foreground\n"
    "    ivlinkd -m ivlink -l 256M -p /run/ivlinkd.pid\n"
    "        daemonize, on the default socket; region /dev/shm/ivlink,\n"
    "        re-attached on restart\n"
    "    ivlinkd -F --socket-group libvirt-qemu --socket-mode 0660\n"
    "        QEMU started by libvirt (group libvirt-qemu) may connect\n"
    "    ivlinkd -F --hugetlb /dev/hugepages --shm ivlink -l 1G --allow-gid kvm \\\n"
    "            --socket-mode 0660\n"
    "        huge pages, any member (primary group) of kvm may connect\n"
    "    qemu-system-x86_64 ... -chardev socket,path=" IVL_SERVER_DEFAULT_SOCKET ",id=ivl \\\n"
    "            -device ivshmem-doorbell,chardev=ivl,vectors=8\n"
    "\n"
    "SEE ALSO\n"
    "    ivlinkctl(8), ivlink(7), QEMU docs/specs/ivshmem-spec.rst\n";

struct logger {
	int use_syslog;
	/* stderr is systemd's journal stream: each line starts with its
	 * syslog priority ("<3>"), which the journal strips and keeps as
	 * PRIORITY=, and the journal adds the name and pid itself. */
	int journal;
	enum ivl_log_level max;
	int startup_fd; /* daemon start-up: errors also go to the parent */
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void log_cb(void *ctx, enum ivl_log_level level, const char *msg)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	struct logger *lg = ctx;

	if (level == IVL_LOG_ERROR && lg->startup_fd >= 0)
		dprintf(lg->startup_fd, "E %s\n", msg);
	if (level > lg->max)
		return;
	if (lg->use_syslog)
		syslog(prio[level], "%s", msg);
	else if (lg->journal)
		fprintf(stderr, "<%d>%s: %s\n", prio[level], level_names[level], msg);
	else
		fprintf(stderr, "ivlinkd[%d]: %s: %s\n", (int)getpid(), level_names[level], msg);
}

/* Tells systemd (sd_notify protocol) fmt; a failure is logged as a
 * warning, as the daemon works without it. */
static void notify(struct logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void notify(struct logger *lg, const char *fmt, ...)
{
	char state[512], msg[600];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	rc = ivl__sd_notify(state);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "cannot notify $NOTIFY_SOCKET: %s", strerror(-rc));
		log_cb(lg, IVL_LOG_WARN, msg);
	}
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("ivlinkd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'ivlinkd --help' for more information.\n", stderr);
	exit(EXIT_USAGE);
}

/*
 * Option values are decimal: strtoul() would also take leading blanks, a
 * sign ("-1" is ULONG_MAX) and, in base 0, octal ("010" is 8) and hex, and
 * a cast to uid_t would wrap 4294967296 to 0 (root). Returns 0, -EINVAL
 * (empty, or not only digits) or -ERANGE (above max).
 */
static int parse_decimal(const char *arg, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	int big = 0;

	if (!*arg)
		return -EINVAL;
	for (const char *p = arg; *p; p++) {
		unsigned d;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		d = (unsigned)(*p - '0');
		if (big || v > (ULLONG_MAX - d) / 10)
			big = 1; /* keep scanning: trailing garbage is still -EINVAL */
		else
			v = v * 10 + d;
	}
	if (big || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static uint32_t parse_u32(const char *opt, const char *arg, uint32_t lo, uint32_t hi)
{
	unsigned long long v;

	if (parse_decimal(arg, hi, &v) < 0 || v < lo)
		die_usage("%s: '%s' is not a decimal number in %u..%u", opt, arg, lo, hi);
	return (uint32_t)v;
}

/* The largest uid or gid: (uid_t)-1 means "no id" to chown(2) and
 * setreuid(2). */
#define ID_MAX ((unsigned long long)(uid_t)-1 - 1)
_Static_assert(sizeof(uid_t) == sizeof(gid_t), "one range for uids and gids");

/* A uid is a decimal number in 0..ID_MAX or a user name. A string of
 * digits is always a number, never looked up as a name, so that an
 * out-of-range uid is refused rather than truncated or resolved. */
static uid_t parse_uid(const char *arg)
{
	unsigned long long v;
	struct passwd *pw;
	int rc = parse_decimal(arg, ID_MAX, &v);

	if (rc == 0)
		return (uid_t)v;
	if (rc == -EINVAL && *arg && (pw = getpwnam(arg)) != NULL)
		return pw->pw_uid;
	die_usage("--allow-uid: '%s' is not a uid in 0..%llu or a known user name", arg, ID_MAX);
}

/* As parse_uid, for a gid or a group name (opt names the option). */
static gid_t parse_gid(const char *opt, const char *arg)
{
	unsigned long long v;
	struct group *gr;
	int rc = parse_decimal(arg, ID_MAX, &v);

	if (rc == 0)
		return (gid_t)v;
	if (rc == -EINVAL && *arg && (gr = getgrnam(arg)) != NULL)
		return gr->gr_gid;
	die_usage("%s: '%s' is not a gid in 0..%llu or a known group name", opt, arg, ID_MAX);
}

/* An octal mode, the convention of chmod(1) and ivshmem setups: octal
 * digits only (no sign, no blanks, no "0x"), at most 0777. */
static mode_t parse_mode(const char *opt, const char *arg)
{
	unsigned long v = 0;
	const char *p;

	for (p = arg; *p >= '0' && *p <= '7' && v <= 0777; p++)
		v = v * 8 + (unsigned long)(*p - '0');
	if (p == arg || *p || v > 0777)
		die_usage("%s: '%s' is not an octal mode in 0..0777 (e.g. 0600, 0660)", opt, arg);
	return (mode_t)v;
}

enum {
	OPT_HUGETLB = 256,
	OPT_MAX_PEERS,
	OPT_MAX_QUEUE,
	OPT_CHAN_SLOTS,
	OPT_LOG,
	OPT_LOG_LEVEL,
	OPT_ALLOW_UID,
	OPT_ALLOW_GID,
	OPT_SOCKET_MODE,
	OPT_SOCKET_GROUP,
	OPT_NAME,
	OPT_RECLAIM,
	OPT_FORCE,
	OPT_STATUS,
	OPT_VERSION,
};

static const struct option long_opts[] = {
    {"socket", required_argument, NULL, 'S'},
    {"size", required_argument, NULL, 'l'},
    {"vectors", required_argument, NULL, 'n'},
    {"shm", required_argument, NULL, 'M'},
    {"hugetlb", required_argument, NULL, OPT_HUGETLB},
    {"max-peers", required_argument, NULL, OPT_MAX_PEERS},
    {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
    {"chan-slots", required_argument, NULL, OPT_CHAN_SLOTS},
    {"foreground", no_argument, NULL, 'F'},
    {"pidfile", required_argument, NULL, 'p'},
    {"verbose", no_argument, NULL, 'v'},
    {"log", required_argument, NULL, OPT_LOG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
    {"allow-gid", required_argument, NULL, OPT_ALLOW_GID},
    {"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
    {"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
    {"name", required_argument, NULL, OPT_NAME},
    {"reclaim-stale", no_argument, NULL, OPT_RECLAIM},
    {"force-format", no_argument, NULL, OPT_FORCE},
    {"status-socket", required_argument, NULL, OPT_STATUS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

struct args {
	struct ivl_server_config cfg;
	int foreground;
	const char *pidfile;
	int log_set; /* 0: default, 1: stderr, 2: syslog */
	enum ivl_log_level level;
};

static void parse_args(struct args *a, int argc, char **argv)
{
	int c;

	ivl_server_config_default(&a->cfg);
	a->level = IVL_LOG_INFO;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":S:l:n:m:M:Fp:vh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			a->cfg.socket_path = optarg;
			break;
		case 'l':
			if (ivl_parse_size(optarg, &a->cfg.size) < 0 ||
			    a->cfg.size < IVL_REGION_MIN_SIZE || (a->cfg.size & (a->cfg.size - 1)))
				die_usage(
				    "-l/--size: '%s' is not a power of two >= 1M, in decimal"
				    " with an optional K, M, G or T suffix (e.g. 1M, 64M, 1G)",
				    optarg);
			break;
		case 'n':
			a->cfg.n_vectors = parse_u32("-n/--vectors", optarg, 1, IVL_VECTORS_LIMIT);
			break;
		case 'm':
			/* ivshmem-server's -m is a directory to create the file
			 * in; many setups pass a shm name. A '/' tells them
			 * apart. */
			if (strchr(optarg, '/'))
				a->cfg.hugetlb_dir = optarg;
			else
				a->cfg.shm_name = optarg;
			break;
		case 'M':
			a->cfg.shm_name = optarg;
			break;
		case OPT_HUGETLB:
			a->cfg.hugetlb_dir = optarg;
			break;
		case OPT_MAX_PEERS:
			a->cfg.max_peers = parse_u32("--max-peers", optarg, 1, IVL_PEERS_LIMIT);
			break;
		case OPT_CHAN_SLOTS:
			a->cfg.chan_slots =
			    parse_u32("--chan-slots", optarg, 1, IVL_CHAN_SLOTS_LIMIT);
			break;
		case OPT_MAX_QUEUE:
			a->cfg.queue_limit = parse_u32("--max-queue", optarg, 1, 1u << 24);
			break;
		case 'F':
			a->foreground = 1;
			break;
		case 'p':
			a->pidfile = optarg;
			break;
		case 'v':
			a->level = IVL_LOG_DEBUG;
			break;
		case OPT_LOG:
			if (strcmp(optarg, "stderr") == 0)
				a->log_set = 1;
			else if (strcmp(optarg, "syslog") == 0)
				a->log_set = 2;
			else
				die_usage("--log: '%s' is not stderr or syslog", optarg);
			break;
		case OPT_LOG_LEVEL: {
			int i;

			for (i = 0; i < 4; i++)
				if (strcmp(optarg, level_names[i]) == 0 ||
				    (i == 1 && strcmp(optarg, "warning") == 0))
					break;
			if (i == 4)
				die_usage("--log-level: '%s' is not error, warn, info or debug",
					  optarg);
			a->level = (enum ivl_log_level)i;
			break;
		}
		case OPT_ALLOW_UID:
			if (a->cfg.n_allow_uid == IVL_SERVER_ALLOW_MAX)
				die_usage("at most %d --allow-uid", IVL_SERVER_ALLOW_MAX);
			a->cfg.allow_uid[a->cfg.n_allow_uid++] = parse_uid(optarg);
			break;
		case OPT_ALLOW_GID:
			if (a->cfg.n_allow_gid == IVL_SERVER_ALLOW_MAX)
				die_usage("at most %d --allow-gid", IVL_SERVER_ALLOW_MAX);
			a->cfg.allow_gid[a->cfg.n_allow_gid++] = parse_gid("--allow-gid", optarg);
			break;
		case OPT_SOCKET_MODE:
			a->cfg.socket_mode = parse_mode("--socket-mode", optarg);
			break;
		case OPT_SOCKET_GROUP:
			a->cfg.socket_gid = parse_gid("--socket-group", optarg);
			break;
		case OPT_NAME:
			if (strlen(optarg) >= IVL_REGION_NAME_MAX)
				die_usage("--name: at most %u bytes", IVL_REGION_NAME_MAX - 1);
			a->cfg.region_name = optarg;
			break;
		case OPT_RECLAIM:
			a->cfg.reclaim_stale = 1;
			break;
		case OPT_FORCE:
			a->cfg.force_format = 1;
			break;
		case OPT_STATUS:
			a->cfg.status_path = optarg;
			break;
		case 'h':
			printf(usage_text, IVL_LAYOUT_VERSION, IVL_VECTORS_LIMIT, IVL_PEERS_LIMIT,
			       IVL_CHAN_SLOTS_LIMIT, IVL_SERVER_QUEUE_DEFAULT);
			exit(0);
		case OPT_VERSION:
			printf("ivlinkd " IVL_VERSION " (region layout v%u)\n", IVL_LAYOUT_VERSION);
			exit(0);
		case ':':
			die_usage("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				die_usage("unknown option '-%c'", optopt);
			die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
}

/* Forks twice so that the daemon is not a session leader and cannot get a
 * controlling terminal. The original process waits on a pipe for the
 * daemon's start-up result, so that errors reach the terminal and the exit
 * status tells whether the daemon runs. Returns the pipe's write end in the
 * daemon, or -1 in the (foreground) error case. */
static int daemonize(void)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("ivlinkd: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("ivlinkd: fork");
		exit(1);
	}
	if (pid > 0) {
		FILE *f;
		char line[600];
		int ok = 0;

		close(p[1]);
		waitpid(pid, NULL, 0); /* the intermediate child exits at once */
		f = fdopen(p[0], "r");
		while (f && fgets(line, sizeof(line), f)) {
			if (strcmp(line, "OK\n") == 0)
				ok = 1;
			else if (line[0] == 'E' && line[1] == ' ')
				fprintf(stderr, "ivlinkd: %s", line + 2);
		}
		if (!ok)
			fprintf(stderr, "ivlinkd: the daemon failed to start\n");
		exit(ok ? 0 : 1);
	}
	close(p[0]);
	if (setsid() < 0)
		_exit(1);
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	return p[1];
}

static int write_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (dprintf(fd, "%d\n", (int)getpid()) < 0)
		rc = -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void stdio_to_null(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

int main(int argc, char **argv)
{
	struct logger lg = {.startup_fd = -1};
	struct ivl_server *srv = NULL;
	struct signalfd_siginfo si;
	struct rlimit rl;
	struct args a;
	sigset_t set;
	int sfd = -1, rc, ret = 1, pid_written = 0, notified = 0;

	memset(&a, 0, sizeof(a));
	parse_args(&a, argc, argv);
	lg.max = a.level;
	lg.use_syslog = a.log_set == 2 || (a.log_set == 0 && !a.foreground);
	lg.journal = !lg.use_syslog && ivl__journal_stream_is(STDERR_FILENO);
	a.cfg.log = log_cb;
	a.cfg.log_ctx = &lg;

	if (!a.foreground)
		lg.startup_fd = daemonize();
	if (lg.use_syslog)
		openlog("ivlinkd", LOG_PID | LOG_NDELAY, LOG_DAEMON);

	/* Each peer holds n_vectors eventfds and fds queued to slow clients
	 * stay open until sent: allow what the administrator allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_cb(&lg, IVL_LOG_ERROR, "cannot set up signal handling");
		goto out;
	}

	rc = ivl_server_init(&srv, &a.cfg);
	if (rc < 0)
		goto out;
	rc = ivl_server_start(srv);
	if (rc < 0) {
		log_cb(&lg, IVL_LOG_ERROR, "start-up failed");
		goto out;
	}
	if (a.pidfile) {
		rc = write_pidfile(a.pidfile);
		if (rc < 0) {
			char msg[300];

			snprintf(msg, sizeof(msg), "cannot write pidfile %s: %s", a.pidfile,
				 strerror(-rc));
			log_cb(&lg, IVL_LOG_ERROR, msg);
			goto out;
		}
		pid_written = 1;
	}
	if (lg.startup_fd >= 0) {
		if (dprintf(lg.startup_fd, "OK\n") < 0) {
			/* The parent is gone; run anyway, as a daemon would. */
		}
		close(lg.startup_fd);
		lg.startup_fd = -1;
		stdio_to_null();
	}
	/* Type=notify: both sockets listen now (ivl_server_start), so a unit
	 * ordered after ivlinkd.service finds the socket accepting. */
	notify(&lg, "READY=1\nSTATUS=serving %s", a.cfg.socket_path);
	notified = 1;

	for (;;) {
		rc = ivl_server_run(srv, sfd);
		if (rc < 0)
			break;
		if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			log_cb(&lg, IVL_LOG_INFO, "SIGHUP ignored: nothing to reload");
			continue;
		}
		log_cb(&lg, IVL_LOG_INFO,
		       si.ssi_signo == SIGTERM ? "SIGTERM: shutting down"
					       : "SIGINT: shutting down");
		break;
	}
	ret = rc < 0 ? 1 : 0;
out:
	if (notified)
		notify(&lg, "STOPPING=1\nSTATUS=%s", ret ? "event loop failed" : "shutting down");
	ivl_server_close(srv);
	if (pid_written)
		unlink(a.pidfile);
	if (sfd >= 0)
		close(sfd);
	if (lg.startup_fd >= 0)
		close(lg.startup_fd);
	if (lg.use_syslog)
		closelog();
	return ret;
}
