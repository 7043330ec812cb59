/* SPDX-License-Identifier: MIT */
/*
 * ivlinkctl: shows an ivlink region, its peers and channels, like smcss does
 * for SMC; as a monitor, the rates between samples (status -i), ivlinkd's
 * counters (stats) and OpenMetrics text (metrics). It maps the region
 * read-only (PROT_READ, from a read-only fd the daemon's status socket
 * passes, or /dev/shm/NAME opened O_RDONLY), so it cannot disturb the data
 * path. Everything it reads from the region is read once into a local copy
 * and validated: the region may be written by buggy or hostile peers while
 * we look at it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include <ivlink/layout.h>
#include <ivlink/region.h>

#include "os.h" /* transport/: ivl__now_ns(), ivl__realtime_ns() */

#ifndef IVL_VERSION
#define IVL_VERSION "0.0.0"
#endif
/* ivlinkd's default socket, the library's IVL_ENDPOINT_DEFAULT. */
#define DEFAULT_SOCKET "/run/ivlink/ivlinkd.sock"
#define ENV_ENDPOINT   "IVLINK_ENDPOINT"
#define EXIT_USAGE     2
#define STATUS_MAX     (1u << 20)
#define MAX_CLIENTS    IVL_PEERS_LIMIT
/* "schema" in every JSON output: 2 added it (with "rates", "stats" and the
 * stats command); 1 is the unversioned format before it. Bump it when a
 * field changes meaning or goes away, not when one is added. */
#define IVL_CTL_SCHEMA 2

static const char usage_text[] =
    "NAME\n"
    "    ivlinkctl - show the state of an ivlink region\n"
    "\n"
    "SYNOPSIS\n"
    "    ivlinkctl status [-j] [-i SEC [-c N]] [--pid PID] [--peer ID] [--port PORT]\n"
    "                     [--listening] [SOURCE]\n"
    "    ivlinkctl stats [-j] [--reset] [SOURCE]\n"
    "    ivlinkctl metrics [SOURCE]\n"
    "    ivlinkctl --help | --version\n"
    "    SOURCE: -S PATH | --status-socket PATH | -m NAME\n"
    "\n"
    "DESCRIPTION\n"
    "    status maps the region read-only and prints the region header, every\n"
    "    peer-table entry that was ever used, and every channel with both halves\n"
    "    joined (\"A:slot <-> B:slot\"): for each direction the ring fill (tail -\n"
    "    head over size), bytes moved (the producer's tail), messages, and the\n"
    "    doorbells the producer sent and suppressed. It never writes the region.\n"
    "    With -i it samples every SEC seconds and prints per-second rates since\n"
    "    the sample before: ring bytes written (tx) and read (rx), doorbells\n"
    "    sent and suppressed, and the socket shim's accelerated connections and\n"
    "    fallbacks, per peer and in total (a table per interval, or with --json\n"
    "    one JSON object per line, the status with \"rates\" added).\n"
    "\n"
    "    stats prints ivlinkd's counters since it started or since the last\n"
    "    --reset: joins, leaves, refused clients by reason, peers dropped because\n"
    "    their output queue was full, region-file shrinks; and the socket shim's\n"
    "    fallbacks by reason, summed over the peers running it (the shim's own\n"
    "    counters, each since its peer joined: --reset leaves them).\n"
    "\n"
    "    metrics prints the counters and gauges as OpenMetrics text, ending with\n"
    "    \"# EOF\", for node_exporter's textfile collector.\n"
    "\n"
    "    By default it asks the daemon over its status socket, which adds the\n"
    "    daemon's view of its connected clients (pid, uid, connection age): the\n"
    "    daemon socket named by $IVLINK_ENDPOINT (host:PATH or PATH, as the\n"
    "    library reads it), else " DEFAULT_SOCKET ".\n"
    "    With --shm it reads /dev/shm/NAME directly, without a daemon.\n"
    "\n"
    "OPTIONS\n"
    "    -S, --socket PATH     the daemon's ivshmem socket; its status socket is\n"
    "                          PATH.ctl (default: $IVLINK_ENDPOINT, else\n"
    "                          " DEFAULT_SOCKET ")\n"
    "        --status-socket PATH\n"
    "                          the daemon's status socket itself\n"
    "    -m, --shm NAME        read the region /dev/shm/NAME (no daemon needed)\n"
    "    -j, --json            print JSON instead of tables (status, stats)\n"
    "    -i, --interval SEC    status: repeat every SEC seconds (fractions\n"
    "                          allowed, > 0) with rates; until interrupted\n"
    "    -c, --count N         status -i: stop after N intervals\n"
    "        --pid PID         status: only peers whose pid (ivlinkd's view or the\n"
    "                          peer's own) is PID, their channels and their shim\n"
    "                          counters, and shim sockets PID owns\n"
    "        --peer ID         status: only peer ID, its channels and shim sockets\n"
    "        --port PORT       status: only shim sockets whose local or remote port\n"
    "                          is PORT, and the channels of shim connections on it\n"
    "        --listening       status: only listening shim sockets (no channels)\n"
    "                          Filters combine (all must match); --port and\n"
    "                          --listening leave the peer table whole.\n"
    "        --reset           stats: reset ivlinkd's counters (allowed to the\n"
    "                          clients its status socket lets in) and print them\n"
    "    -h, --help            show this help and exit\n"
    "        --version         show the version and exit\n"
    "    Give only one of --socket, --status-socket and --shm.\n"
    "\n"
    "JSON OUTPUT\n"
    "    Every object carries \"schema\": 2 (the format's version: it changes\n"
    "    when a field changes meaning or goes away; new fields may appear).\n"
    "    status: {\"schema\": 2, \"source\": PATH,\n"
    "     \"daemon\": {pid, version, gen, uptime_s, socket, kind, file, sealed,\n"
    "                shrinks (times the region file was shrunk and restored),\n"
    "                refused: {acl, full, status} (clients refused: not in the\n"
    "                allow-list, all ids in use, status not allowed), stats: STATS\n"
    "                or null (ivlinkd too old)} or null,\n"
    "     \"region\": {name, size, layout_version, max_peers, vectors, chan_slots,\n"
    "                section_size, daemon_pid, daemon_gen, created_unix_ns},\n"
    "     \"peers\": [{id, name, state (\"up\"|\"gone\"|\"free\"), epoch, backend,\n"
    "                pid, uid, self_pid, n_vectors, joined_unix_ns, left_unix_ns,\n"
    "                section (\"ok\"|\"none\"), section_epoch, pages_used, heap_pages,\n"
    "                stale (UP from an earlier ivlinkd: no new connections with it),\n"
    "                connected_s (daemon view, or null), queued (or null)}],\n"
    "     \"channels\": [{a: {peer, slot, state, epoch_ok}, b: {...} or null,\n"
    "                name, mode (\"stream\"|\"message\"), matched,\n"
    "                a_to_b: DIR, b_to_a: DIR or null}]}\n"
    "     \"shim\": {\"peers\": [{id, listeners, accelerated, fallbacks, tx_bytes,\n"
    "                rx_bytes, last_reason, reasons: {REASON: count}}],\n"
    "              \"sockets\": [{peer, slot, state, kind (\"listen\"|\"proposal\"|\n"
    "                \"accept\"|\"decline\"|\"fallback\"), name, rdv, reason, local,\n"
    "                remote, remote_peer, procs, pid}]}  (socket shim, ivlink-run)\n"
    "    DIR = {size, fill (null if the indices are inconsistent), bytes, msgs,\n"
    "           kicks, kicks_suppressed, consumer_kicks, flags: [\"done\",\n"
    "           \"closed\", \"abort\"], wakes: {peer, vector, moved} (the doorbell\n"
    "           rung when the consumer sleeps; moved: a process forked from\n"
    "           the consumer took one of its own) or null}\n"
    "    status -i adds \"time_unix\" and \"rates\": {interval_s, total: RATE,\n"
    "           peers: [{id, RATE...}]}, RATE = {ring_tx_bytes_s, ring_rx_bytes_s,\n"
    "           doorbells_s, doorbells_suppressed_s, shim_tx_bytes_s,\n"
    "           shim_rx_bytes_s, accelerated_s, fallbacks_s} (a counter that went\n"
    "           down, a channel closed or a peer joined again, counts 0)\n"
    "    stats: {\"schema\": 2, \"source\": PATH, \"daemon\": STATS or null,\n"
    "           \"shim\": {peers, accelerated, fallbacks, reasons: {REASON: count}}}\n"
    "    STATS = {since_unix, resets, joins, leaves, refused: {acl, full, status},\n"
    "             queue_kills, shrinks}\n"
    "\n"
    "ENVIRONMENT\n"
    "    IVLINK_ENDPOINT       the daemon when no option names one: \"host:PATH\"\n"
    "                          or a PATH (its status socket is PATH.ctl); another\n"
    "                          backend (\"vfio:\", \"poll:\", \"auto\") or an empty\n"
    "                          value means " DEFAULT_SOCKET "\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 the daemon or region could not be read or is invalid (or\n"
    "    the daemon cannot reset its counters), 2 invalid command line.\n"
    "\n"
    "EXAMPLES\n"
    "    ivlinkctl status --socket /run/ivlink/ivlinkd.sock\n"
    "    ivlinkctl status --shm ivlink --json | python3 -m json.tool\n"
    "    ivlinkctl status -i 1 --port 6379      # redis traffic, every second\n"
    "    ivlinkctl status -i 0.5 -c 10 --json   # NDJSON, one line per interval\n"
    "    ivlinkctl stats --reset\n"
    "    ivlinkctl metrics > /var/lib/prometheus/node-exporter/ivlink.prom.$$ &&\n"
    "        mv /var/lib/prometheus/node-exporter/ivlink.prom.$$ \\\n"
    "           /var/lib/prometheus/node-exporter/ivlink.prom\n"
    "    IVLINK_ENDPOINT=host:/tmp/ivl/ivlinkd.sock ivlinkctl status\n"
    "\n"
    "SEE ALSO\n"
    "    ivlinkd(8), ivlink-run(1), ivlink(7)\n";

/* ------------------------------------------------------------ daemon view */

struct client_info {
	int id;
	long long pid, uid, age_s, queued;
	int valid;
};

struct daemon_info {
	int present;
	long long pid, gen, uptime_s;
	long long refused_acl, refused_full, refused_status; /* -1: daemon too old */
	long long sealed, shrinks;
	/* The "stats" line (counters since start or the last reset); has_stats
	 * is 0 for an ivlinkd older than it. reset_ok: "reset-stats ok". */
	int has_stats, reset_ok;
	long long st_since_unix, st_resets, st_joins, st_leaves, st_refused_acl, st_refused_full,
	    st_refused_status, st_queue_kills, st_shrinks;
	char version[32], socket[512], kind[32], file[512];
	struct client_info clients[MAX_CLIENTS];
	unsigned n_clients;
};

/* Value of key=VALUE in a space-separated line, or NULL. */
static const char *kv_get(const char *line, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \n");

			if (n >= len)
				n = len - 1;
			memcpy(out, p + kl + 1, n);
			out[n] = '\0';
			return out;
		}
		p += kl;
	}
	return NULL;
}

static long long kv_num(const char *line, const char *key, long long dflt)
{
	char v[32];

	return kv_get(line, key, v, sizeof(v)) ? strtoll(v, NULL, 10) : dflt;
}

static void parse_status(char *text, struct daemon_info *d)
{
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "daemon ", 7) == 0) {
			d->pid = kv_num(line, "pid", -1);
			d->gen = kv_num(line, "gen", -1);
			d->uptime_s = kv_num(line, "uptime_s", -1);
			d->refused_acl = kv_num(line, "refused_acl", -1);
			d->refused_full = kv_num(line, "refused_full", -1);
			d->refused_status = kv_num(line, "refused_status", -1);
			if (!kv_get(line, "version", d->version, sizeof(d->version)))
				strcpy(d->version, "?");
		} else if (strncmp(line, "stats ", 6) == 0) {
			d->has_stats = 1;
			d->st_since_unix = kv_num(line, "since_unix", -1);
			d->st_resets = kv_num(line, "resets", -1);
			d->st_joins = kv_num(line, "joins", -1);
			d->st_leaves = kv_num(line, "leaves", -1);
			d->st_refused_acl = kv_num(line, "refused_acl", -1);
			d->st_refused_full = kv_num(line, "refused_full", -1);
			d->st_refused_status = kv_num(line, "refused_status", -1);
			d->st_queue_kills = kv_num(line, "queue_kills", -1);
			d->st_shrinks = kv_num(line, "shrinks", -1);
		} else if (strcmp(line, "reset-stats ok") == 0) {
			d->reset_ok = 1;
		} else if (strncmp(line, "socket ", 7) == 0) {
			snprintf(d->socket, sizeof(d->socket), "%s", line + 7);
		} else if (strncmp(line, "region ", 7) == 0) {
			char *f = strstr(line, " file=");

			kv_get(line, "kind", d->kind, sizeof(d->kind));
			d->sealed = kv_num(line, "sealed", -1);
			d->shrinks = kv_num(line, "shrinks", -1);
			if (f)
				snprintf(d->file, sizeof(d->file), "%s", f + 6);
		} else if (strncmp(line, "client ", 7) == 0 && d->n_clients < MAX_CLIENTS) {
			struct client_info *c = &d->clients[d->n_clients++];

			c->id = (int)kv_num(line, "id", -1);
			c->pid = kv_num(line, "pid", -1);
			c->uid = kv_num(line, "uid", -1);
			c->age_s = kv_num(line, "age_s", -1);
			c->queued = kv_num(line, "queued", -1);
			c->valid = c->id >= 0;
		}
	}
}

/* Reads the status reply and the region fd. req (NULL: none) is a request
 * carried in the abstract name our socket binds before connecting (the
 * protocol: host-daemon/server.c, "The status protocol"). Returns the fd
 * (>= 0), or -errno; a daemon that sends no fd yields -EBADF. */
static int ask_daemon(const char *path, struct daemon_info *d, const char *req)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t len = 0;
	char *text;
	int s, rfd = -1, rc;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (req) {
		static unsigned seq;
		struct sockaddr_un me = {.sun_family = AF_UNIX};
		int n = snprintf(me.sun_path + 1, sizeof(me.sun_path) - 1,
				 "ivlink-status-req/%s/%d.%u", req, (int)getpid(), seq++);

		if (bind(s, (struct sockaddr *)&me,
			 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
			rc = -errno;
			close(s);
			return rc;
		}
	}
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		rc = -errno;
		close(s);
		return rc;
	}
	text = malloc(STATUS_MAX + 1);
	if (!text) {
		close(s);
		return -ENOMEM;
	}
	for (;;) {
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		struct iovec iov = {.iov_base = text + len, .iov_len = STATUS_MAX - len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		struct cmsghdr *cm;
		ssize_t n;

		if (len == STATUS_MAX)
			break;
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		rc = poll(&pfd, 1, 5000);
		if (rc == 0) {
			rc = -ETIMEDOUT;
			goto fail;
		}
		if (rc < 0 && errno == EINTR)
			continue;
		n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto fail;
		}
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
				if (rfd < 0)
					rfd = fd;
				else
					close(fd);
			}
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(s);
	text[len] = '\0';
	if (strncmp(text, "ivlinkd-status 1\n", 17) != 0) {
		free(text);
		if (rfd >= 0)
			close(rfd);
		return -EPROTO;
	}
	d->present = 1;
	parse_status(text, d);
	free(text);
	return rfd >= 0 ? rfd : -EBADF;
fail:
	close(s);
	free(text);
	if (rfd >= 0)
		close(rfd);
	return rc;
}

/* ----------------------------------------------------------- region view */

struct peer_info {
	struct ivl_peer_entry e; /* local copy */
	int used;
	int section_ok;
	uint32_t section_epoch, heap_pages;
	long pages_used;
	char name[IVL_PEER_NAME_MAX];
};

static const char *state_name(uint32_t st)
{
	switch (st) {
	case IVL_PEER_FREE:
		return "free";
	case IVL_PEER_UP:
		return "up";
	case IVL_PEER_GONE:
		return "gone";
	}
	return "invalid";
}

static const char *backend_name(uint32_t b)
{
	static const char *const n[] = {"unknown", "host", "vfio", "poll", "qemu"};

	return b < sizeof(n) / sizeof(n[0]) ? n[b] : "invalid";
}

static const char *chan_state_name(uint32_t st)
{
	static const char *const n[] = {"free", "claimed", "offered", "closed"};

	return st < 4 ? n[st] : "invalid";
}

static const char *mode_name(uint32_t m)
{
	return m == IVL_MODE_STREAM ? "stream" : m == IVL_MODE_MESSAGE ? "message" : "invalid";
}

/* Printable copy of a name from shared memory (never trusted to be
 * terminated or printable). */
static void safe_name(char *dst, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f && src[i] != '"' && src[i] != '\\')
			     ? src[i]
			     : '?';
	dst[i] = '\0';
}

static void read_peers(const struct ivl_region *rg, struct peer_info *pi)
{
	for (uint32_t id = 0; id < rg->hdr.max_peers; id++) {
		const struct ivl_peer_entry *e = ivl_region_peer(rg, id);
		const struct ivl_section_hdr *sh;
		struct peer_info *p = &pi[id];

		memset(p, 0, sizeof(*p));
		if (!e)
			continue;
		memcpy(&p->e, e, sizeof(p->e));
		p->used = p->e.state != IVL_PEER_FREE || p->e.epoch != 0;
		safe_name(p->name, p->e.name, sizeof(p->name));
		if (ivl_section_check(rg, id) == 0) {
			sh = ivl_region_section(rg, id);
			p->section_ok = 1;
			p->section_epoch = __atomic_load_n(&sh->owner_epoch, __ATOMIC_RELAXED);
			p->heap_pages = sh->heap_pages;
			p->pages_used = ivl_section_pages_used(rg, id);
		}
	}
}

struct dir_info {
	int present;
	uint32_t size;
	int fill_ok;
	uint64_t fill, bytes, msgs, kicks, suppressed, cons_kicks;
	uint32_t flags;
	int wake_known;			 /* the consumer's half was read */
	int wake_moved;			 /* its wake_to names another doorbell */
	uint32_t wake_peer, wake_vector; /* the doorbell the producer rings */
};

struct chan_info {
	uint32_t a, a_slot, b, b_slot;
	struct ivl_chan_half ha, hb; /* local copies */
	int matched;
	char name[IVL_NAME_MAX];
	struct dir_info ab, ba;
};

static int read_half(const struct ivl_region *rg, const struct peer_info *pi, uint32_t id,
		     uint32_t slot, struct ivl_chan_half *out)
{
	const struct ivl_chan_half *h;

	if (id >= rg->hdr.max_peers || !pi[id].section_ok)
		return -EINVAL;
	h = ivl_region_chan(rg, id, slot);
	if (!h)
		return -EINVAL;
	memcpy(out, h, sizeof(*out));
	return out->state == IVL_CHAN_FREE || out->state > IVL_CHAN_CLOSED ? -ENOENT : 0;
}

/* One direction: prod's tx ring, consumed through cons (NULL if unmatched),
 * the half of peer cons_id. */
static void fill_dir(struct dir_info *d, const struct ivl_chan_half *prod,
		     const struct ivl_chan_half *cons, uint32_t cons_id)
{
	uint64_t tail = prod->tx_prod.tail;

	d->present = 1;
	d->size = prod->tx_size;
	d->bytes = tail;
	d->msgs = prod->tx_prod.msgs;
	d->kicks = prod->tx_prod.kicks;
	d->suppressed = prod->tx_prod.kicks_suppressed;
	d->flags = prod->tx_prod.flags;
	if (cons) {
		uint64_t head = cons->rx_cons.head;

		d->cons_kicks = cons->rx_cons.kicks;
		d->wake_known = 1;
		d->wake_moved = (cons->wake_to & IVL_WAKE_TO_SET) != 0;
		d->wake_peer = d->wake_moved ? IVL_WAKE_TO_PEER(cons->wake_to) : cons_id;
		d->wake_vector =
		    d->wake_moved ? IVL_WAKE_TO_VECTOR(cons->wake_to) : cons->rx_vector;
		d->flags |= cons->rx_cons.flags & (IVL_RING_F_CLOSED | IVL_RING_F_ABORT);
		/* Free-running indices: the fill is tail - head, which must
		 * lie in [0, size] for an honest pair. */
		if (tail - head <= prod->tx_size) {
			d->fill_ok = 1;
			d->fill = tail - head;
		}
	}
}

static unsigned read_channels(const struct ivl_region *rg, const struct peer_info *pi,
			      struct chan_info **out)
{
	unsigned n = 0, cap = 16;
	struct chan_info *ch = malloc(sizeof(*ch) * cap);

	for (uint32_t a = 0; ch && a < rg->hdr.max_peers; a++) {
		for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
			struct ivl_chan_half ha, hb;
			struct chan_info *c;
			uint32_t b, bs;
			int matched = 0;

			if (read_half(rg, pi, a, s, &ha) < 0)
				continue;
			b = ha.remote_peer;
			bs = ha.remote_slot;
			if (b < rg->hdr.max_peers && bs < rg->hdr.chan_slots &&
			    read_half(rg, pi, b, bs, &hb) == 0 && hb.remote_peer == a &&
			    hb.remote_slot == s)
				matched = 1;
			/* A matched pair is shown once, from its lower half. */
			if (matched && (b < a || (b == a && bs < s)))
				continue;
			if (n == cap) {
				struct chan_info *nc = realloc(ch, sizeof(*ch) * cap * 2);

				if (!nc)
					break;
				ch = nc;
				cap *= 2;
			}
			c = &ch[n++];
			memset(c, 0, sizeof(*c));
			c->a = a;
			c->a_slot = s;
			c->b = b;
			c->b_slot = bs;
			c->ha = ha;
			c->matched = matched;
			safe_name(c->name, ha.name, sizeof(c->name));
			fill_dir(&c->ab, &ha, matched ? &hb : NULL, b);
			if (matched) {
				c->hb = hb;
				fill_dir(&c->ba, &hb, &ha, a);
			}
		}
	}
	*out = ch;
	return ch ? n : 0;
}

/* ------------------------------------------------------ socket shim view */

static void json_str(const char *s);

static const char *const fb_names[] = {
    "none",	 "no-region", "no-listener", "peer-no-shim", "region-full",
    "timeout",	 "declined",  "option",	     "rules",	     "peer-gone",
    "withdrawn", "proto",     "internal",    "peer-stale",   "no-shared-region",
};

static const char *fb_name(uint32_t r)
{
	if (r == IVL_FB_DEMOTED)
		return "demoted";
	if (r == IVL_FB_DEMOTE_RESET)
		return "demote-reset";
	return r < sizeof(fb_names) / sizeof(fb_names[0]) ? fb_names[r] : "unknown";
}

static const char *shim_kind_name(uint32_t k)
{
	static const char *const n[] = {"none",	   "listen",   "proposal", "accept",
					"decline", "fallback", "redirect"};

	return k < sizeof(n) / sizeof(n[0]) ? n[k] : "invalid";
}

static const char *rdv_name(uint32_t r)
{
	static const char *const n[] = {"none", "proposed", "confirmed", "withdrawn"};

	return r < 4 ? n[r] : "invalid";
}

static void shim_addr(char *buf, size_t len, uint32_t fam, const uint8_t *a, uint16_t port_be)
{
	unsigned port = (unsigned)((port_be & 0xff) << 8 | port_be >> 8);

	if (fam == 2)
		snprintf(buf, len, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3], port);
	else if (fam == 10)
		snprintf(buf, len, "[%02x%02x:%02x%02x:..:%02x%02x]:%u", a[0], a[1], a[2], a[3],
			 a[14], a[15], port);
	else
		snprintf(buf, len, "?");
}

struct shim_sock {
	uint32_t peer, slot, state;
	struct ivl_chan_half h; /* local copy */
	char name[IVL_NAME_MAX];
};

/* Halves that carry a shim block: listeners, notes, and the channels of
 * shimmed connections (proposal/accept). */
static unsigned read_shim_socks(const struct ivl_region *rg, const struct peer_info *pi,
				struct shim_sock **out)
{
	unsigned n = 0, cap = 16;
	struct shim_sock *v = malloc(sizeof(*v) * cap);

	for (uint32_t p = 0; v && p < rg->hdr.max_peers; p++) {
		if (!pi[p].section_ok)
			continue;
		for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
			const struct ivl_chan_half *h = ivl_region_chan(rg, p, s);
			struct shim_sock *x;

			if (!h)
				continue;
			if (n == cap) {
				struct shim_sock *nv = realloc(v, sizeof(*v) * cap * 2);

				if (!nv)
					break;
				v = nv;
				cap *= 2;
			}
			x = &v[n];
			memcpy(&x->h, h, sizeof(x->h));
			if (x->h.state == IVL_CHAN_FREE || x->h.state > IVL_CHAN_NOTE ||
			    x->h.shim.kind == IVL_SHIM_NONE || x->h.shim.kind > IVL_SHIM_REDIRECT)
				continue;
			x->peer = p;
			x->slot = s;
			x->state = x->h.state;
			safe_name(x->name, x->h.name, sizeof(x->name));
			n++;
		}
	}
	*out = v;
	return v ? n : 0;
}

static const char *half_state_name(uint32_t st)
{
	return st == IVL_CHAN_LISTEN ? "listen"
	       : st == IVL_CHAN_NOTE ? "note"
				     : chan_state_name(st);
}

/* ---------------------------------------------------------------- filters */

/*
 * What `status` shows (--pid, --peer, --port, --listening; -1/0: no filter).
 * --pid and --peer select peers (a pid matches the pid ivlinkd saw, the
 * peer's own pid, or a shim socket's owner), channels with a selected peer
 * at either end, and that peer's shim counters and sockets. --port selects
 * shim sockets whose local or remote port is PORT, and the channels of shim
 * connections on it; --listening only listening shim sockets (so no
 * channel). Peers are filtered by --pid and --peer only.
 */
struct filter {
	long long pid, peer, port;
	int listening;
};

struct snap {
	struct daemon_info d;
	void *base;
	size_t size;
	struct ivl_region rg;
	struct peer_info pi[IVL_PEERS_LIMIT];
	struct chan_info *ch;
	unsigned nch;
	struct shim_sock *ss;
	unsigned nss;
	uint64_t mono_ns, real_ns;
};

static const struct client_info *client_of(const struct daemon_info *d, uint32_t id);

static int peer_match(const struct filter *f, const struct snap *s, uint32_t id)
{
	const struct peer_info *p = &s->pi[id];

	if (f->peer >= 0 && (long long)id != f->peer)
		return 0;
	if (f->pid > 0) {
		const struct client_info *c = client_of(&s->d, id);

		if ((long long)p->e.pid != f->pid && (long long)p->e.self_pid != f->pid &&
		    !(c && c->pid == f->pid))
			return 0;
	}
	return 1;
}

static int port_of(const struct ivl_chan_half *h, long long port)
{
	return h->shim.kind != IVL_SHIM_NONE &&
	       (ntohs(h->shim.lport) == port ||
		(h->shim.kind != IVL_SHIM_LISTEN && ntohs(h->shim.rport) == port));
}

static int chan_match(const struct filter *f, const struct snap *s, const struct chan_info *c)
{
	if (f->listening)
		return 0;
	if (f->port >= 0 && !port_of(&c->ha, f->port) && !(c->matched && port_of(&c->hb, f->port)))
		return 0;
	if (f->peer >= 0 || f->pid > 0)
		return peer_match(f, s, c->a) || (c->matched && peer_match(f, s, c->b));
	return 1;
}

static int sock_match(const struct filter *f, const struct snap *s, const struct shim_sock *x)
{
	if (f->listening && x->h.shim.kind != IVL_SHIM_LISTEN)
		return 0;
	if (f->port >= 0 && !port_of(&x->h, f->port))
		return 0;
	if (f->peer >= 0 && (long long)x->peer != f->peer)
		return 0;
	if (f->pid > 0 && (long long)x->h.shim.owner_pid != f->pid &&
	    (long long)s->pi[x->peer].e.pid != f->pid)
		return 0;
	return 1;
}

static int shim_peer_shown(const struct filter *f, const struct snap *s, uint32_t id)
{
	return s->pi[id].used && s->pi[id].e.shim.magic == IVL_SHIM_MAGIC && peer_match(f, s, id);
}

static void json_shim(const struct snap *s, const struct filter *f)
{
	int first = 1;

	printf(",\"shim\":{\"peers\":[");
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		const struct ivl_peer_shim *sh = &s->pi[id].e.shim;
		int f2 = 1;

		if (!shim_peer_shown(f, s, id))
			continue;
		printf("%s{\"id\":%u,\"listeners\":%u,\"accelerated\":%" PRIu64
		       ",\"fallbacks\":%" PRIu64 ",\"tx_bytes\":%" PRIu64 ",\"rx_bytes\":%" PRIu64
		       ",\"last_reason\":\"%s\",\"reasons\":{",
		       first ? "" : ",", id, sh->listeners, sh->accelerated, sh->fallbacks,
		       sh->tx_bytes, sh->rx_bytes, fb_name(sh->last_reason));
		first = 0;
		for (uint32_t r = 1; r < IVL_FB_REASONS; r++) {
			if (!sh->by_reason[r])
				continue;
			printf("%s\"%s\":%u", f2 ? "" : ",", fb_name(r), sh->by_reason[r]);
			f2 = 0;
		}
		printf("}}");
	}
	printf("],\"sockets\":[");
	first = 1;
	for (unsigned i = 0; i < s->nss; i++) {
		const struct shim_sock *x = &s->ss[i];
		char la[64], ra[64];

		if (!sock_match(f, s, x))
			continue;
		shim_addr(la, sizeof(la), x->h.shim.family, x->h.shim.laddr, x->h.shim.lport);
		shim_addr(ra, sizeof(ra), x->h.shim.family, x->h.shim.raddr, x->h.shim.rport);
		printf("%s{\"peer\":%u,\"slot\":%u,\"state\":\"%s\",\"kind\":\"%s\",\"name\":",
		       first ? "" : ",", x->peer, x->slot, half_state_name(x->state),
		       shim_kind_name(x->h.shim.kind));
		first = 0;
		json_str(x->name);
		printf(",\"rdv\":\"%s\",\"reason\":\"%s\",\"local\":\"%s\",\"remote\":\"%s\","
		       "\"remote_peer\":%d,\"procs\":%u,\"pid\":%u}",
		       rdv_name(x->h.shim.rdv), fb_name(x->h.shim.reason), la,
		       x->h.shim.kind == IVL_SHIM_LISTEN ? "" : ra,
		       x->h.remote_peer == IVL_SLOT_NONE ? -1 : (int)x->h.remote_peer,
		       x->h.shim.procs, x->h.shim.owner_pid);
	}
	printf("]}");
}

static void text_shim(const struct snap *s, const struct filter *f)
{
	int any = 0;

	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		const struct ivl_peer_shim *sh = &s->pi[id].e.shim;

		if (!shim_peer_shown(f, s, id))
			continue;
		if (!any)
			printf("\nSOCKET SHIM\n");
		any = 1;
		printf("peer %u: %" PRIu64 " accelerated, %" PRIu64
		       " fallbacks, ring bytes tx %" PRIu64 " rx %" PRIu64 ", %u listeners",
		       id, sh->accelerated, sh->fallbacks, sh->tx_bytes, sh->rx_bytes,
		       sh->listeners);
		for (uint32_t r = 1; r < IVL_FB_REASONS; r++)
			if (sh->by_reason[r])
				printf(" %s=%u", fb_name(r), sh->by_reason[r]);
		printf("\n");
	}
	for (unsigned i = 0; i < s->nss; i++) {
		const struct shim_sock *x = &s->ss[i];
		char la[64], ra[64];

		if (!sock_match(f, s, x))
			continue;
		if (!any)
			printf("\nSOCKET SHIM\n");
		any = 1;
		shim_addr(la, sizeof(la), x->h.shim.family, x->h.shim.laddr, x->h.shim.lport);
		shim_addr(ra, sizeof(ra), x->h.shim.family, x->h.shim.raddr, x->h.shim.rport);
		if (x->h.shim.kind == IVL_SHIM_LISTEN)
			printf("  %u:%-3u listen    %s (pid %u)\n", x->peer, x->slot, la,
			       x->h.shim.owner_pid);
		else
			printf("  %u:%-3u %-9s %s -> %s  %s%s%s (pid %u)\n", x->peer, x->slot,
			       shim_kind_name(x->h.shim.kind), la, ra, half_state_name(x->state),
			       x->h.shim.rdv ? " " : "",
			       x->h.shim.rdv ? rdv_name(x->h.shim.rdv) : "", x->h.shim.owner_pid);
		if (x->h.shim.reason)
			printf("          reason: %s\n", fb_name(x->h.shim.reason));
	}
}

/* ---------------------------------------------------------------- output */

static const struct client_info *client_of(const struct daemon_info *d, uint32_t id)
{
	for (unsigned i = 0; i < d->n_clients; i++)
		if (d->clients[i].valid && d->clients[i].id == (int)id)
			return &d->clients[i];
	return NULL;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_flags(uint32_t f)
{
	int first = 1;

	putchar('[');
	if (f & IVL_RING_F_DONE_WRITING) {
		printf("\"done\"");
		first = 0;
	}
	if (f & IVL_RING_F_CLOSED) {
		printf("%s\"closed\"", first ? "" : ",");
		first = 0;
	}
	if (f & IVL_RING_F_ABORT)
		printf("%s\"abort\"", first ? "" : ",");
	putchar(']');
}

static void json_dir(const struct dir_info *d)
{
	if (!d->present) {
		printf("null");
		return;
	}
	printf("{\"size\":%u,\"fill\":", d->size);
	if (d->fill_ok)
		printf("%" PRIu64, d->fill);
	else
		printf("null");
	printf(",\"bytes\":%" PRIu64 ",\"msgs\":%" PRIu64 ",\"kicks\":%" PRIu64
	       ",\"kicks_suppressed\":%" PRIu64 ",\"consumer_kicks\":%" PRIu64 ",\"flags\":",
	       d->bytes, d->msgs, d->kicks, d->suppressed, d->cons_kicks);
	json_flags(d->flags);
	if (d->wake_known)
		printf(",\"wakes\":{\"peer\":%u,\"vector\":%u,\"moved\":%s}", d->wake_peer,
		       d->wake_vector, d->wake_moved ? "true" : "false");
	else
		printf(",\"wakes\":null");
	putchar('}');
}

static void json_stats(const struct daemon_info *d);
static void json_rates(const struct snap *prev, const struct snap *s, const struct filter *f);

/* The status as one JSON object (one line); with prev, the rates since prev
 * in "rates" (status -i). */
static void print_json(const char *source, const struct snap *s, const struct filter *f,
		       const struct snap *prev)
{
	const struct daemon_info *d = &s->d;
	const struct ivl_region *rg = &s->rg;
	const struct peer_info *pi = s->pi;
	const struct chan_info *ch = s->ch;
	unsigned nch = s->nch;
	char name[IVL_REGION_NAME_MAX];
	int first = 1;

	printf("{\"schema\":%d,\"source\":", IVL_CTL_SCHEMA);
	json_str(source);
	printf(",\"daemon\":");
	if (d->present) {
		printf("{\"pid\":%lld,\"version\":", d->pid);
		json_str(d->version);
		printf(",\"gen\":%lld,\"uptime_s\":%lld,\"socket\":", d->gen, d->uptime_s);
		json_str(d->socket);
		printf(",\"kind\":");
		json_str(d->kind);
		printf(",\"file\":");
		json_str(d->file);
		printf(",\"sealed\":%lld,\"shrinks\":%lld,\"refused\":{\"acl\":%lld,\"full\":%lld,"
		       "\"status\":%lld},\"stats\":",
		       d->sealed, d->shrinks, d->refused_acl, d->refused_full, d->refused_status);
		json_stats(d);
		putchar('}');
	} else {
		printf("null");
	}
	safe_name(name, rg->hdr.name, sizeof(name));
	printf(",\"region\":{\"name\":");
	json_str(name);
	printf(",\"size\":%" PRIu64 ",\"layout_version\":%u,\"max_peers\":%u,\"vectors\":%u,"
	       "\"chan_slots\":%u,\"section_size\":%" PRIu64 ",\"daemon_pid\":%u,"
	       "\"daemon_gen\":%" PRIu64 ",\"created_unix_ns\":%" PRIu64 "}",
	       rg->hdr.region_size, rg->hdr.version, rg->hdr.max_peers, rg->hdr.n_vectors,
	       rg->hdr.chan_slots, rg->hdr.section_size, rg->hdr.daemon_pid, rg->hdr.daemon_gen,
	       rg->hdr.created_unix_ns);
	printf(",\"peers\":[");
	for (uint32_t id = 0; id < rg->hdr.max_peers; id++) {
		const struct peer_info *p = &pi[id];
		const struct client_info *c = client_of(d, id);

		if (!p->used || !peer_match(f, s, id))
			continue;
		printf("%s{\"id\":%u,\"name\":", first ? "" : ",", id);
		first = 0;
		json_str(p->name);
		printf(",\"state\":\"%s\",\"epoch\":%u,\"backend\":\"%s\",\"pid\":%u,\"uid\":%u,"
		       "\"self_pid\":%u,\"n_vectors\":%u,\"joined_unix_ns\":%" PRIu64
		       ",\"left_unix_ns\":%" PRIu64 ",\"section\":\"%s\",\"section_epoch\":%u,"
		       "\"pages_used\":%ld,\"heap_pages\":%u,\"stale\":%s,\"connected_s\":",
		       state_name(p->e.state), p->e.epoch, backend_name(p->e.backend), p->e.pid,
		       p->e.uid, p->e.self_pid, p->e.n_vectors, p->e.joined_unix_ns,
		       p->e.left_unix_ns, p->section_ok ? "ok" : "none", p->section_epoch,
		       p->section_ok ? p->pages_used : 0, p->heap_pages,
		       p->e.state == IVL_PEER_UP && (p->e.daemon_flags & IVL_PEER_F_STALE)
			   ? "true"
			   : "false");
		if (c)
			printf("%lld,\"queued\":%lld}", c->age_s, c->queued);
		else
			printf("null,\"queued\":null}");
	}
	printf("],\"channels\":[");
	first = 1;
	for (unsigned i = 0; i < nch; i++) {
		const struct chan_info *c = &ch[i];

		if (!chan_match(f, s, c))
			continue;
		printf("%s{\"a\":{\"peer\":%u,\"slot\":%u,\"state\":\"%s\",\"epoch_ok\":%s},\"b\":",
		       first ? "" : ",", c->a, c->a_slot, chan_state_name(c->ha.state),
		       c->ha.owner_epoch == pi[c->a].e.epoch ? "true" : "false");
		if (c->matched)
			printf("{\"peer\":%u,\"slot\":%u,\"state\":\"%s\",\"epoch_ok\":%s}", c->b,
			       c->b_slot, chan_state_name(c->hb.state),
			       c->hb.owner_epoch == pi[c->b].e.epoch ? "true" : "false");
		else
			printf("null");
		printf(",\"name\":");
		json_str(c->name);
		printf(",\"mode\":\"%s\",\"matched\":%s,\"a_to_b\":", mode_name(c->ha.mode),
		       c->matched ? "true" : "false");
		first = 0;
		json_dir(&c->ab);
		printf(",\"b_to_a\":");
		json_dir(&c->ba);
		putchar('}');
	}
	printf("]");
	json_shim(s, f);
	if (prev)
		json_rates(prev, s, f);
	printf("}\n");
}

static void human_size(char *buf, size_t len, uint64_t v)
{
	if (v >= (1ull << 30) && !(v % (1ull << 30)))
		snprintf(buf, len, "%" PRIu64 " GiB", v >> 30);
	else if (v >= (1ull << 20) && !(v % (1ull << 20)))
		snprintf(buf, len, "%" PRIu64 " MiB", v >> 20);
	else if (v >= (1ull << 10) && !(v % (1ull << 10)))
		snprintf(buf, len, "%" PRIu64 " KiB", v >> 10);
	else
		snprintf(buf, len, "%" PRIu64 " B", v);
}

static void print_dir(const char *label, const struct dir_info *d)
{
	char fill[32], wakes[48] = "";

	if (!d->present)
		return;
	if (d->wake_moved)
		snprintf(wakes, sizeof(wakes), " wakes peer %u vector %u", d->wake_peer,
			 d->wake_vector);
	if (d->fill_ok)
		snprintf(fill, sizeof(fill), "%" PRIu64 "/%u", d->fill, d->size);
	else
		snprintf(fill, sizeof(fill), "?/%u", d->size);
	printf("    %-8s fill %-16s bytes %-12" PRIu64 " msgs %-10" PRIu64 " doorbells %" PRIu64
	       " sent, %" PRIu64 " suppressed (consumer %" PRIu64 ")%s%s%s%s\n",
	       label, fill, d->bytes, d->msgs, d->kicks, d->suppressed, d->cons_kicks,
	       d->flags & IVL_RING_F_DONE_WRITING ? " done" : "",
	       d->flags & IVL_RING_F_CLOSED ? " closed" : "",
	       d->flags & IVL_RING_F_ABORT ? " abort" : "", wakes);
}

static void print_text(const char *source, const struct snap *s, const struct filter *f)
{
	const struct daemon_info *d = &s->d;
	const struct ivl_region *rg = &s->rg;
	const struct peer_info *pi = s->pi;
	const struct chan_info *ch = s->ch;
	unsigned nch = s->nch;
	char name[IVL_REGION_NAME_MAX], sz[32];
	unsigned shown = 0;

	safe_name(name, rg->hdr.name, sizeof(name));
	human_size(sz, sizeof(sz), rg->hdr.region_size);
	printf("region %s: %s, layout v%u, %u peers max, %u vectors, %u channel slots/peer\n", name,
	       sz, rg->hdr.version, rg->hdr.max_peers, rg->hdr.n_vectors, rg->hdr.chan_slots);
	printf("daemon pid %u, generation %" PRIu64, rg->hdr.daemon_pid, rg->hdr.daemon_gen);
	if (d->present)
		printf(", ivlinkd %s, up %llds, %s%s%s", d->version, d->uptime_s, d->kind,
		       strcmp(d->file, "-") ? " " : "", strcmp(d->file, "-") ? d->file : "");
	printf(" (via %s)\n", source);
	if (d->present &&
	    (d->shrinks > 0 || d->refused_acl > 0 || d->refused_full > 0 || d->refused_status > 0))
		printf("attention: region file shrunk %lld time(s) (size restored); refused "
		       "clients: %lld not allowed, %lld with all ids in use, %lld status\n",
		       d->shrinks > 0 ? d->shrinks : 0, d->refused_acl > 0 ? d->refused_acl : 0,
		       d->refused_full > 0 ? d->refused_full : 0,
		       d->refused_status > 0 ? d->refused_status : 0);
	printf("\n");

	printf("%-3s %-16s %-5s %-6s %-8s %-8s %-6s %-13s %s\n", "ID", "NAME", "STATE", "EPOCH",
	       "BACKEND", "PID", "UID", "PAGES", "CONNECTED");
	for (uint32_t id = 0; id < rg->hdr.max_peers; id++) {
		const struct peer_info *p = &pi[id];
		const struct client_info *c = client_of(d, id);
		char pages[32], conn[32];

		if (!p->used || !peer_match(f, s, id))
			continue;
		if (p->section_ok)
			snprintf(pages, sizeof(pages), "%ld/%u", p->pages_used, p->heap_pages);
		else
			snprintf(pages, sizeof(pages), "-");
		if (c)
			snprintf(conn, sizeof(conn), "%llds", c->age_s);
		else
			snprintf(conn, sizeof(conn),
				 d->present && p->e.state == IVL_PEER_UP ? "stale" : "-");
		printf("%-3u %-16s %-5s %-6u %-8s %-8u %-6u %-13s %s\n", id,
		       p->name[0] ? p->name : "-", state_name(p->e.state), p->e.epoch,
		       backend_name(p->e.backend), p->e.pid, p->e.uid, pages, conn);
	}
	for (unsigned i = 0; i < nch; i++)
		shown += (unsigned)chan_match(f, s, &ch[i]);
	printf("\nCHANNELS (%u)\n", shown);
	for (unsigned i = 0; i < nch; i++) {
		const struct chan_info *c = &ch[i];
		char lab[32];

		if (!chan_match(f, s, c))
			continue;
		if (c->matched)
			printf("%u:%u <-> %u:%u  %s  %s  %s/%s\n", c->a, c->a_slot, c->b, c->b_slot,
			       c->name, mode_name(c->ha.mode), chan_state_name(c->ha.state),
			       chan_state_name(c->hb.state));
		else
			printf("%u:%u <-> %u:-  %s  %s  %s (not matched)\n", c->a, c->a_slot, c->b,
			       c->name, mode_name(c->ha.mode), chan_state_name(c->ha.state));
		snprintf(lab, sizeof(lab), "%u->%u", c->a, c->b);
		print_dir(lab, &c->ab);
		snprintf(lab, sizeof(lab), "%u->%u", c->b, c->a);
		print_dir(lab, &c->ba);
	}
	text_shim(s, f);
}

/* ------------------------------------------------------------ snapshots */

struct opts {
	const char *sock, *status, *shm;
	char source[600];
};

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m)   ? "a FIFO"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISDIR(m)  ? "a directory"
			     : "another kind of file";
}

static void snap_free(struct snap *s)
{
	free(s->ch);
	free(s->ss);
	if (s->base)
		munmap(s->base, s->size);
	memset(s, 0, sizeof(*s));
}

/* Opens the region the options name (asking the daemon, with req, unless
 * --shm) and reads everything into s. Returns 0, or 1 after a message. */
static int snap_take(const struct opts *o, struct snap *s, const char *req)
{
	struct stat st;
	int fd, rc;

	memset(s, 0, sizeof(*s));
	if (o->shm) {
		/* O_NONBLOCK: opening a FIFO for reading would wait for a
		 * writer, and a device could do anything; only a regular file
		 * is a region (checked below). No symlinks either. */
		fd = open(o->source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
		if (fd < 0) {
			fprintf(stderr, "ivlinkctl: cannot open %s: %s\n", o->source,
				errno == ELOOP ? "a symbolic link, not a region file"
					       : strerror(errno));
			return 1;
		}
	} else {
		fd = ask_daemon(o->source, &s->d, req);
		if (fd < 0) {
			fprintf(stderr, "ivlinkctl: cannot get the region from %s: %s\n", o->source,
				fd == -EBADF	? "the daemon passed no region fd"
				: fd == -EPROTO ? "not an ivlinkd status socket"
						: strerror(-fd));
			return 1;
		}
	}
	s->mono_ns = (uint64_t)ivl__now_ns();
	s->real_ns = (uint64_t)ivl__realtime_ns();
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "ivlinkctl: %s: cannot stat the region: %s\n", o->source,
			strerror(errno));
		close(fd);
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "ivlinkctl: %s: not a regular file (%s), not a region\n", o->source,
			file_kind(st.st_mode));
		close(fd);
		return 1;
	}
	if (st.st_size <= 0) {
		fprintf(stderr, "ivlinkctl: %s: empty region file\n", o->source);
		close(fd);
		return 1;
	}
	s->base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (s->base == MAP_FAILED) {
		s->base = NULL;
		fprintf(stderr, "ivlinkctl: cannot map the region: %s\n", strerror(errno));
		return 1;
	}
	s->size = (size_t)st.st_size;
	rc = ivl_region_attach(&s->rg, s->base, (uint64_t)st.st_size);
	if (rc < 0) {
		char why[256];

		fprintf(stderr, "ivlinkctl: %s: not a valid ivlink layout v%u region: %s\n",
			o->source, IVL_LAYOUT_VERSION,
			ivl_region_strerror(rc, s->base, (uint64_t)st.st_size, why, sizeof(why)));
		return 1;
	}
	read_peers(&s->rg, s->pi);
	s->nch = read_channels(&s->rg, s->pi, &s->ch);
	s->nss = read_shim_socks(&s->rg, s->pi, &s->ss);
	return 0;
}

/* ------------------------------------------------------------ rates (-i) */

/* A peer's counters, summed over the channels it produces or consumes. */
struct peer_tot {
	uint64_t tx, rx, kicks, suppressed;
	uint64_t shim_tx, shim_rx, accel, fb;
	uint32_t epoch;
};

static void dir_add(struct peer_tot *t, uint32_t max, uint32_t prod, uint32_t cons, int matched,
		    const struct dir_info *d)
{
	if (!d->present)
		return;
	if (prod < max) {
		t[prod].tx += d->bytes;
		t[prod].kicks += d->kicks;
		t[prod].suppressed += d->suppressed;
	}
	if (matched && cons < max) {
		/* Consumed bytes: the consumer's head, tail - fill. */
		t[cons].rx += d->fill_ok ? d->bytes - d->fill : d->bytes;
		t[cons].kicks += d->cons_kicks;
	}
}

static void totals(const struct snap *s, struct peer_tot *t)
{
	uint32_t max = s->rg.hdr.max_peers;

	memset(t, 0, sizeof(*t) * IVL_PEERS_LIMIT);
	for (unsigned i = 0; i < s->nch; i++) {
		const struct chan_info *c = &s->ch[i];

		dir_add(t, max, c->a, c->b, c->matched, &c->ab);
		if (c->matched)
			dir_add(t, max, c->b, c->a, 1, &c->ba);
	}
	for (uint32_t id = 0; id < max; id++) {
		const struct ivl_peer_shim *sh = &s->pi[id].e.shim;

		t[id].epoch = s->pi[id].e.epoch;
		if (sh->magic != IVL_SHIM_MAGIC)
			continue;
		t[id].shim_tx = sh->tx_bytes;
		t[id].shim_rx = sh->rx_bytes;
		t[id].accel = sh->accelerated;
		t[id].fb = sh->fallbacks;
	}
}

struct rate {
	double tx, rx, kicks, suppressed, shim_tx, shim_rx, accel, fb;
};

/* Per second over dt; a counter that went down (a channel closed and its
 * slot was freed, the peer joined again) counts 0 for this interval. */
static double per_s(uint64_t cur, uint64_t prev, double dt)
{
	return cur >= prev && dt > 0 ? (double)(cur - prev) / dt : 0.0;
}

/* Rates of the peers f shows (r[id]) and their sum (*sum); returns dt. */
static double rates(const struct snap *prev, const struct snap *s, const struct filter *f,
		    struct rate *r, struct rate *sum)
{
	static struct peer_tot a[IVL_PEERS_LIMIT], b[IVL_PEERS_LIMIT];
	double dt = (double)(s->mono_ns - prev->mono_ns) / 1e9;

	totals(prev, a);
	totals(s, b);
	memset(sum, 0, sizeof(*sum));
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct rate *x = &r[id];

		memset(x, 0, sizeof(*x));
		if (!s->pi[id].used || !peer_match(f, s, id) || a[id].epoch != b[id].epoch)
			continue;
		x->tx = per_s(b[id].tx, a[id].tx, dt);
		x->rx = per_s(b[id].rx, a[id].rx, dt);
		x->kicks = per_s(b[id].kicks, a[id].kicks, dt);
		x->suppressed = per_s(b[id].suppressed, a[id].suppressed, dt);
		x->shim_tx = per_s(b[id].shim_tx, a[id].shim_tx, dt);
		x->shim_rx = per_s(b[id].shim_rx, a[id].shim_rx, dt);
		x->accel = per_s(b[id].accel, a[id].accel, dt);
		x->fb = per_s(b[id].fb, a[id].fb, dt);
		sum->tx += x->tx;
		sum->rx += x->rx;
		sum->kicks += x->kicks;
		sum->suppressed += x->suppressed;
		sum->shim_tx += x->shim_tx;
		sum->shim_rx += x->shim_rx;
		sum->accel += x->accel;
		sum->fb += x->fb;
	}
	return dt;
}

static void json_rate(const struct rate *x)
{
	printf("\"ring_tx_bytes_s\":%.1f,\"ring_rx_bytes_s\":%.1f,\"doorbells_s\":%.1f,"
	       "\"doorbells_suppressed_s\":%.1f,\"shim_tx_bytes_s\":%.1f,\"shim_rx_bytes_s\":%.1f,"
	       "\"accelerated_s\":%.2f,\"fallbacks_s\":%.2f",
	       x->tx, x->rx, x->kicks, x->suppressed, x->shim_tx, x->shim_rx, x->accel, x->fb);
}

static void json_rates(const struct snap *prev, const struct snap *s, const struct filter *f)
{
	static struct rate r[IVL_PEERS_LIMIT];
	struct rate sum;
	double dt = rates(prev, s, f, r, &sum);
	int first = 1;

	printf(",\"time_unix\":%.3f,\"rates\":{\"interval_s\":%.3f,\"total\":{",
	       (double)s->real_ns / 1e9, dt);
	json_rate(&sum);
	printf("},\"peers\":[");
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		if (!s->pi[id].used || !peer_match(f, s, id))
			continue;
		printf("%s{\"id\":%u,", first ? "" : ",", id);
		first = 0;
		json_rate(&r[id]);
		putchar('}');
	}
	printf("]}");
}

static void human_rate(char *buf, size_t len, double v)
{
	if (v >= 1e9)
		snprintf(buf, len, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, len, "%.2fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
}

static void text_rate_row(const char *id, const char *name, const struct rate *x)
{
	char tx[16], rx[16], k[16], sup[16];

	human_rate(tx, sizeof(tx), x->tx);
	human_rate(rx, sizeof(rx), x->rx);
	human_rate(k, sizeof(k), x->kicks);
	human_rate(sup, sizeof(sup), x->suppressed);
	printf("  %-5s %-16s %10s %10s %10s %10s %8.1f %8.1f\n", id, name, tx, rx, k, sup, x->accel,
	       x->fb);
}

static void print_text_rates(const struct snap *prev, const struct snap *s, const struct filter *f)
{
	static struct rate r[IVL_PEERS_LIMIT];
	struct rate sum;
	double dt = rates(prev, s, f, r, &sum);
	time_t t = (time_t)(s->real_ns / 1000000000u);
	char when[32];
	struct tm tm;

	strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&t, &tm));
	printf("%s  per second over %.2fs\n", when, dt);
	printf("  %-5s %-16s %10s %10s %10s %10s %8s %8s\n", "PEER", "NAME", "RING TX B",
	       "RING RX B", "DOORBELLS", "SUPPRESS", "ACCEL", "FALLBACK");
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		char ids[12];

		if (!s->pi[id].used || !peer_match(f, s, id))
			continue;
		snprintf(ids, sizeof(ids), "%u", id);
		text_rate_row(ids, s->pi[id].name[0] ? s->pi[id].name : "-", &r[id]);
	}
	text_rate_row("total", "", &sum);
}

static void sleep_until(uint64_t mono_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(mono_ns / 1000000000u),
			      .tv_nsec = (long)(mono_ns % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* status -i SEC [-c N]: a sample, then every SEC the rates since the one
 * before (so every output carries rates), count times or forever. */
static int watch(const struct opts *o, const struct filter *f, int json, double interval,
		 long long count)
{
	static struct snap buf[2];
	struct snap *prev = &buf[0], *cur = &buf[1], *t;
	uint64_t step = (uint64_t)(interval * 1e9), next;

	if (snap_take(o, prev, NULL))
		return 1;
	next = prev->mono_ns;
	for (long long n = 0; count <= 0 || n < count; n++) {
		/* On the SEC grid; but after a late sample (a busy machine, a
		 * slow daemon) the next one comes no sooner than SEC/2 after
		 * it, so that no rate is taken over a few microseconds. */
		next += step;
		if (next < prev->mono_ns + step / 2)
			next = prev->mono_ns + step;
		sleep_until(next);
		if (snap_take(o, cur, NULL)) {
			snap_free(prev);
			snap_free(cur);
			return 1;
		}
		if (json)
			print_json(o->source, cur, f, prev);
		else
			print_text_rates(prev, cur, f);
		if (fflush(stdout) != 0) {
			snap_free(prev);
			snap_free(cur);
			return 1;
		}
		snap_free(prev);
		t = prev;
		prev = cur;
		cur = t;
	}
	snap_free(prev);
	return 0;
}

/* ---------------------------------------------------------------- stats */

/* The shim's fallbacks by reason, summed over the peers running it. Each
 * peer counts since it joined (they are its own counters in the region, not
 * the daemon's), so `stats --reset` does not clear them. */
struct shim_sum {
	unsigned peers;
	uint64_t accel, fb, by_reason[IVL_FB_REASONS];
};

static void shim_sum(const struct snap *s, struct shim_sum *m)
{
	memset(m, 0, sizeof(*m));
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		const struct ivl_peer_shim *sh = &s->pi[id].e.shim;

		if (!s->pi[id].used || sh->magic != IVL_SHIM_MAGIC)
			continue;
		m->peers++;
		m->accel += sh->accelerated;
		m->fb += sh->fallbacks;
		for (uint32_t r = 1; r < IVL_FB_REASONS; r++)
			m->by_reason[r] += sh->by_reason[r];
	}
}

static void json_stats(const struct daemon_info *d)
{
	if (!d->present || !d->has_stats) {
		printf("null");
		return;
	}
	printf("{\"since_unix\":%lld,\"resets\":%lld,\"joins\":%lld,\"leaves\":%lld,"
	       "\"refused\":{\"acl\":%lld,\"full\":%lld,\"status\":%lld},\"queue_kills\":%lld,"
	       "\"shrinks\":%lld}",
	       d->st_since_unix, d->st_resets, d->st_joins, d->st_leaves, d->st_refused_acl,
	       d->st_refused_full, d->st_refused_status, d->st_queue_kills, d->st_shrinks);
}

static void print_stats(const struct opts *o, const struct snap *s, int json)
{
	const struct daemon_info *d = &s->d;
	struct shim_sum m;

	shim_sum(s, &m);
	if (json) {
		int first = 1;

		printf("{\"schema\":%d,\"source\":", IVL_CTL_SCHEMA);
		json_str(o->source);
		printf(",\"daemon\":");
		json_stats(d);
		printf(",\"shim\":{\"peers\":%u,\"accelerated\":%" PRIu64 ",\"fallbacks\":%" PRIu64
		       ",\"reasons\":{",
		       m.peers, m.accel, m.fb);
		for (uint32_t r = 1; r < IVL_FB_REASONS; r++) {
			if (!m.by_reason[r])
				continue;
			printf("%s\"%s\":%" PRIu64, first ? "" : ",", fb_name(r), m.by_reason[r]);
			first = 0;
		}
		printf("}}}\n");
		return;
	}
	if (d->present && d->has_stats) {
		time_t t = (time_t)d->st_since_unix;
		char when[40];
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
		printf("ivlinkd pid %lld, counters since %s (%s, %lld reset(s))\n", d->pid, when,
		       d->st_resets > 0 ? "the last reset" : "start", d->st_resets);
		printf("  joins          %lld\n", d->st_joins);
		printf("  leaves         %lld\n", d->st_leaves);
		printf("  refused        %lld not allowed, %lld all ids in use, %lld status\n",
		       d->st_refused_acl, d->st_refused_full, d->st_refused_status);
		printf("  queue kills    %lld (peers dropped: output queue full)\n",
		       d->st_queue_kills);
		printf("  region shrinks %lld\n", d->st_shrinks);
	} else {
		printf("daemon counters: not available (%s)\n",
		       d->present ? "ivlinkd too old" : "no daemon, --shm");
	}
	printf("socket shim (%u peer(s), each since it joined): %" PRIu64 " accelerated, %" PRIu64
	       " fallbacks",
	       m.peers, m.accel, m.fb);
	for (uint32_t r = 1; r < IVL_FB_REASONS; r++)
		if (m.by_reason[r])
			printf(" %s=%" PRIu64, fb_name(r), m.by_reason[r]);
	printf("\n");
}

/* stats --reset: the reply shows the counters just reset. */
static int stats_reset(const struct opts *o, struct snap *s)
{
	if (snap_take(o, s, "reset-stats"))
		return 1;
	if (s->d.reset_ok)
		return 0;
	fprintf(stderr, "ivlinkctl: %s: %s\n", o->source,
		s->d.has_stats ? "ivlinkd did not take the reset request"
			       : "this ivlinkd cannot reset its counters (too old)");
	return 1;
}

/* -------------------------------------------------------------- metrics */

/* An OpenMetrics label value: backslash, double quote and newline escaped
 * (OpenMetrics 1.0, "ABNF": escaped-string). The name comes from shared
 * memory: only printable ASCII is kept. */
static void om_label(const char *src, size_t len)
{
	for (size_t i = 0; i < len && src[i]; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '\\' || ch == '"')
			printf("\\%c", ch);
		else if (ch == '\n')
			printf("\\n");
		else if (ch >= 0x20 && ch < 0x7f)
			putchar(ch);
		else
			putchar('?');
	}
}

static void om_family(const char *name, const char *type, const char *unit, const char *help)
{
	printf("# TYPE %s %s\n", name, type);
	if (unit)
		printf("# UNIT %s %s\n", name, unit);
	printf("# HELP %s %s\n", name, help);
}

static void om_peer(const char *metric, const struct snap *s, uint32_t id)
{
	printf("%s{peer=\"%u\",name=\"", metric, id);
	om_label(s->pi[id].e.name, sizeof(s->pi[id].e.name));
	printf("\"}");
}

/* A counter of ivlinkd's since it started: its _total and its _created
 * (the start, in Unix seconds). */
static void om_daemon_counter(const char *name, const char *help, long long v, long long since)
{
	om_family(name, "counter", NULL, help);
	printf("%s_total %lld\n%s_created %lld\n", name, v, name, since);
}

/* The per-peer counters summed over a peer's open channels (totals()). */
static const struct om_peer_counter {
	const char *name, *unit, *help;
	size_t off; /* a uint64_t in struct peer_tot */
} om_peer_counters[] = {
    {"ivlink_ring_tx_bytes", "bytes", "Bytes the peer wrote into the rings of its open channels.",
     offsetof(struct peer_tot, tx)},
    {"ivlink_ring_rx_bytes", "bytes", "Bytes the peer read from the rings of its open channels.",
     offsetof(struct peer_tot, rx)},
    {"ivlink_doorbells", NULL, "Doorbells the peer rang on its open channels.",
     offsetof(struct peer_tot, kicks)},
    {"ivlink_doorbells_suppressed", NULL, "Doorbells not needed because the consumer was awake.",
     offsetof(struct peer_tot, suppressed)},
};

static void print_metrics(const struct snap *s)
{
	static struct peer_tot t[IVL_PEERS_LIMIT];
	const struct daemon_info *d = &s->d;
	uint32_t max = s->rg.hdr.max_peers;
	unsigned up = 0;

	totals(s, t);
	for (uint32_t id = 0; id < max; id++)
		up += s->pi[id].used && s->pi[id].e.state == IVL_PEER_UP;
	om_family("ivlink_peers", "gauge", NULL, "Peers UP in the region's peer table.");
	printf("ivlink_peers %u\n", up);
	om_family("ivlink_region_size_bytes", "gauge", "bytes", "Size of the region.");
	printf("ivlink_region_size_bytes %" PRIu64 "\n", s->rg.hdr.region_size);
	om_family("ivlink_channels", "gauge", NULL, "Channels in the region (pairs and halves).");
	printf("ivlink_channels %u\n", s->nch);
	if (d->present) {
		om_family("ivlink_daemon_uptime_seconds", "gauge", "seconds",
			  "Time since ivlinkd started.");
		printf("ivlink_daemon_uptime_seconds %lld\n", d->uptime_s);
	}
	if (d->present && d->has_stats) {
		static const char *const reasons[] = {"acl", "full", "status"};
		long long refused[] = {d->st_refused_acl, d->st_refused_full, d->st_refused_status};

		om_daemon_counter("ivlink_joins", "Peers that joined ivlinkd.", d->st_joins,
				  d->st_since_unix);
		om_daemon_counter("ivlink_leaves", "Peers that left ivlinkd.", d->st_leaves,
				  d->st_since_unix);
		om_family("ivlink_refused", "counter", NULL,
			  "Clients ivlinkd refused, by reason (acl: not allowed, full: all ids in "
			  "use, status: status client not allowed).");
		for (int i = 0; i < 3; i++)
			printf("ivlink_refused_total{reason=\"%s\"} %lld\n"
			       "ivlink_refused_created{reason=\"%s\"} %lld\n",
			       reasons[i], refused[i], reasons[i], d->st_since_unix);
		om_daemon_counter("ivlink_queue_kills",
				  "Peers dropped because their output queue was full.",
				  d->st_queue_kills, d->st_since_unix);
		om_daemon_counter("ivlink_region_shrinks",
				  "Times the region file was shrunk and its size restored.",
				  d->st_shrinks, d->st_since_unix);
	}
	om_family("ivlink_peer_up", "gauge", NULL, "1 while the peer is UP.");
	for (uint32_t id = 0; id < max; id++)
		if (s->pi[id].used) {
			om_peer("ivlink_peer_up", s, id);
			printf(" %d\n", s->pi[id].e.state == IVL_PEER_UP);
		}
	for (size_t k = 0; k < sizeof(om_peer_counters) / sizeof(om_peer_counters[0]); k++) {
		const struct om_peer_counter *m = &om_peer_counters[k];
		char total[64];

		om_family(m->name, "counter", m->unit, m->help);
		snprintf(total, sizeof(total), "%s_total", m->name);
		for (uint32_t id = 0; id < max; id++)
			if (s->pi[id].used) {
				om_peer(total, s, id);
				printf(" %" PRIu64 "\n",
				       *(const uint64_t *)((const char *)&t[id] + m->off));
			}
	}
	om_family("ivlink_shim_accelerated_connections", "counter", NULL,
		  "Connections the socket shim moved onto the rings.");
	for (uint32_t id = 0; id < max; id++)
		if (s->pi[id].used && s->pi[id].e.shim.magic == IVL_SHIM_MAGIC) {
			om_peer("ivlink_shim_accelerated_connections_total", s, id);
			printf(" %" PRIu64 "\n", s->pi[id].e.shim.accelerated);
		}
	om_family("ivlink_shim_fallbacks", "counter", NULL,
		  "Connections the socket shim left on TCP, by reason.");
	for (uint32_t id = 0; id < max; id++) {
		const struct ivl_peer_shim *sh = &s->pi[id].e.shim;

		if (!s->pi[id].used || sh->magic != IVL_SHIM_MAGIC)
			continue;
		for (uint32_t r = 1; r < IVL_FB_REASONS; r++) {
			if (!sh->by_reason[r])
				continue;
			printf("ivlink_shim_fallbacks_total{peer=\"%u\",name=\"", id);
			om_label(s->pi[id].e.name, sizeof(s->pi[id].e.name));
			printf("\",reason=\"%s\"} %u\n", fb_name(r), sh->by_reason[r]);
		}
	}
	printf("# EOF\n");
}

/* ------------------------------------------------------------------ main */

static void die_usage(const char *msg, const char *arg) __attribute__((noreturn));

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ivlinkctl: %s%s%s\nTry 'ivlinkctl --help' for more information.\n", msg,
		arg ? " " : "", arg ? arg : "");
	exit(EXIT_USAGE);
}

enum {
	OPT_STATUS = 256,
	OPT_VERSION,
	OPT_PID,
	OPT_PEER,
	OPT_PORT,
	OPT_LISTENING,
	OPT_RESET,
};

static const struct option long_opts[] = {
    {"socket", required_argument, NULL, 'S'},
    {"status-socket", required_argument, NULL, OPT_STATUS},
    {"shm", required_argument, NULL, 'm'},
    {"json", no_argument, NULL, 'j'},
    {"interval", required_argument, NULL, 'i'},
    {"count", required_argument, NULL, 'c'},
    {"pid", required_argument, NULL, OPT_PID},
    {"peer", required_argument, NULL, OPT_PEER},
    {"port", required_argument, NULL, OPT_PORT},
    {"listening", no_argument, NULL, OPT_LISTENING},
    {"reset", no_argument, NULL, OPT_RESET},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/*
 * The daemon socket of $IVLINK_ENDPOINT, read as the library reads it
 * (guest-lib/endpoint.c): "host:PATH" or a bare path is the host backend on
 * PATH; any other scheme ("vfio:", "poll:", "auto") is no daemon socket, so
 * the default is used, as it is when the variable is unset or empty.
 */
static const char *env_socket(void)
{
	const char *e = getenv(ENV_ENDPOINT);

	if (!e || !*e)
		return DEFAULT_SOCKET;
	if (strncmp(e, "host:", 5) == 0)
		return e[5] ? e + 5 : DEFAULT_SOCKET;
	if (e[0] == '/' || e[0] == '.')
		return e;
	return DEFAULT_SOCKET;
}

/* A whole number in [min, max] for opt, or a usage error. */
static long long parse_num(const char *opt, const char *arg, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%s: not a number in %lld..%lld:", opt, min, max);
		die_usage(msg, arg);
	}
	return v;
}

enum { CMD_NONE, CMD_STATUS, CMD_STATS, CMD_METRICS };

int main(int argc, char **argv)
{
	static struct snap snap;
	struct filter f = {.pid = -1, .peer = -1, .port = -1};
	struct opts o = {0};
	double interval = 0;
	long long count = -1;
	int json = 0, reset = 0, filtered = 0, rc, c, cmd = CMD_NONE;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hjS:m:i:c:", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case OPT_VERSION:
			printf("ivlinkctl " IVL_VERSION " (region layout v%u, JSON schema %d)\n",
			       IVL_LAYOUT_VERSION, IVL_CTL_SCHEMA);
			return 0;
		case 'j':
			json = 1;
			break;
		case 'S':
			o.sock = optarg;
			break;
		case OPT_STATUS:
			o.status = optarg;
			break;
		case 'm':
			o.shm = optarg;
			break;
		case 'i': {
			char *end;

			errno = 0;
			interval = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(interval > 0) || interval > 86400)
				die_usage("--interval: not a number of seconds in (0, 86400]:",
					  optarg);
			break;
		}
		case 'c':
			count = parse_num("--count", optarg, 1, 1000000000);
			break;
		case OPT_PID:
			f.pid = parse_num("--pid", optarg, 1, 4194304);
			filtered = 1;
			break;
		case OPT_PEER:
			f.peer = parse_num("--peer", optarg, 0, IVL_PEERS_LIMIT - 1);
			filtered = 1;
			break;
		case OPT_PORT:
			f.port = parse_num("--port", optarg, 0, 65535);
			filtered = 1;
			break;
		case OPT_LISTENING:
			f.listening = 1;
			filtered = 1;
			break;
		case OPT_RESET:
			reset = 1;
			break;
		case ':':
			die_usage("option needs an argument:", argv[optind - 1]);
		default:
			if (optopt) {
				char o2[3] = {'-', (char)optopt, 0};

				die_usage("unknown option", o2);
			}
			die_usage("unknown option", argv[optind - 1]);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (cmd)
			die_usage("unexpected argument", argv[i]);
		else if (strcmp(argv[i], "status") == 0)
			cmd = CMD_STATUS;
		else if (strcmp(argv[i], "stats") == 0)
			cmd = CMD_STATS;
		else if (strcmp(argv[i], "metrics") == 0)
			cmd = CMD_METRICS;
		else
			die_usage("unknown command", argv[i]);
	}
	if (!cmd)
		die_usage("no command given (try 'status')", NULL);
	if (!!o.shm + !!o.sock + !!o.status > 1)
		die_usage("give only one of --socket, --status-socket, --shm", NULL);
	if (cmd != CMD_STATUS && (interval > 0 || count > 0 || filtered))
		die_usage("--interval, --count, --pid, --peer, --port and --listening are for "
			  "'status'",
			  NULL);
	if (count > 0 && !(interval > 0))
		die_usage("--count needs --interval", NULL);
	if (reset && cmd != CMD_STATS)
		die_usage("--reset is for 'stats'", NULL);
	if (reset && o.shm)
		die_usage("--reset needs the daemon, not --shm", NULL);
	if (json && cmd == CMD_METRICS)
		die_usage("--json: metrics are OpenMetrics text", NULL);

	if (o.shm) {
		const char *name = o.shm[0] == '/' ? o.shm + 1 : o.shm;

		if (!*name || strchr(name, '/'))
			die_usage("invalid shm name", o.shm);
		o.shm = name;
		snprintf(o.source, sizeof(o.source), "/dev/shm/%s", name);
	} else if (o.status) {
		snprintf(o.source, sizeof(o.source), "%s", o.status);
	} else {
		snprintf(o.source, sizeof(o.source), "%s.ctl", o.sock ? o.sock : env_socket());
	}

	if (cmd == CMD_STATUS && interval > 0)
		return watch(&o, &f, json, interval, count);
	rc = reset ? stats_reset(&o, &snap) : snap_take(&o, &snap, NULL);
	if (rc) {
		snap_free(&snap);
		return rc;
	}
	if (cmd == CMD_STATS)
		print_stats(&o, &snap, json);
	else if (cmd == CMD_METRICS)
		print_metrics(&snap);
	else if (json)
		print_json(o.source, &snap, &f, NULL);
	else
		print_text(o.source, &snap, &f);
	snap_free(&snap);
	return fflush(stdout) == 0 ? 0 : 1;
}
