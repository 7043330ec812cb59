/* SPDX-License-Identifier: MIT */
/*
 * ivlinkctl: shows an ivlink region, its peers and channels, like smcss does
 * for SMC. It maps the region read-only (PROT_READ, from a read-only fd the
 * daemon's status socket passes, or /dev/shm/NAME opened O_RDONLY), so it
 * cannot disturb the data path. Everything it reads from the region is read
 * once into a local copy and validated: the region may be written by buggy
 * or hostile peers while we look at it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ivlink/layout.h>
#include <ivlink/region.h>

#ifndef IVL_VERSION
#define IVL_VERSION "0.0.0"
#endif
/* ivlinkd's default socket, the library's IVL_ENDPOINT_DEFAULT. */
#define DEFAULT_SOCKET "/run/ivlink/ivlinkd.sock"
#define ENV_ENDPOINT   "IVLINK_ENDPOINT"
#define EXIT_USAGE     2
#define STATUS_MAX     (1u << 20)
#define MAX_CLIENTS    IVL_PEERS_LIMIT

static const char usage_text[] =
    "NAME\n"
    "    ivlinkctl - show the state of an ivlink region\n"
    "\n"
    "SYNOPSIS\n"
    "    ivlinkctl status [-j] [-S PATH | --status-socket PATH | -m NAME]\n"
    "    ivlinkctl --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    status maps the region read-only and prints the region header, every\n"
    "    peer-table entry that was ever used, and every channel with both halves\n"
    "    joined (\"A:slot <-> B:slot\"): for each direction the ring fill (tail -\n"
    "    head over size), bytes moved (the producer's tail), messages, and the\n"
    "    doorbells the producer sent and suppressed. It never writes the region.\n"
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
    "    -j, --json            print one JSON object instead of tables\n"
    "    -h, --help            show this help and exit\n"
    "        --version         show the version and exit\n"
    "    Give only one of --socket, --status-socket and --shm.\n"
    "\n"
    "JSON OUTPUT\n"
    "    {\"source\": PATH,\n"
    "     \"daemon\": {pid, version, gen, uptime_s, socket, kind, file, sealed,\n"
    "                shrinks (times the region file was shrunk and restored),\n"
    "                refused: {acl, full, status} (clients refused: not in the\n"
    "                allow-list, all ids in use, status not allowed)} or null,\n"
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
    "           \"closed\", \"abort\"]}\n"
    "\n"
    "ENVIRONMENT\n"
    "    IVLINK_ENDPOINT       the daemon when no option names one: \"host:PATH\"\n"
    "                          or a PATH (its status socket is PATH.ctl); another\n"
    "                          backend (\"vfio:\", \"poll:\", \"auto\") or an empty\n"
    "                          value means " DEFAULT_SOCKET "\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 the daemon or region could not be read or is invalid,\n"
    "    2 invalid command line.\n"
    "\n"
    "EXAMPLES\n"
    "    ivlinkctl status --socket /run/ivlink/ivlinkd.sock\n"
    "    ivlinkctl status --shm ivlink --json | python3 -m json.tool\n"
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

/* Reads the status reply and the region fd. Returns the fd (>= 0), or
 * -errno; a daemon that sends no fd yields -EBADF. */
static int ask_daemon(const char *path, struct daemon_info *d)
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

/* One direction: prod's tx ring, consumed through cons (NULL if unmatched). */
static void fill_dir(struct dir_info *d, const struct ivl_chan_half *prod,
		     const struct ivl_chan_half *cons)
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
			fill_dir(&c->ab, &ha, matched ? &hb : NULL);
			if (matched) {
				c->hb = hb;
				fill_dir(&c->ba, &hb, &ha);
			}
		}
	}
	*out = ch;
	return ch ? n : 0;
}

/* ------------------------------------------------------ socket shim view */

static void json_str(const char *s);

static const char *const fb_names[] = {
    "none",   "no-region", "no-listener", "peer-no-shim", "region-full", "timeout",  "declined",
    "option", "rules",	   "peer-gone",	  "withdrawn",	  "proto",	 "internal", "peer-stale",
};

static const char *fb_name(uint32_t r)
{
	return r < sizeof(fb_names) / sizeof(fb_names[0]) ? fb_names[r] : "unknown";
}

static const char *shim_kind_name(uint32_t k)
{
	static const char *const n[] = {"none",	  "listen",  "proposal",
					"accept", "decline", "fallback"};

	return k < 6 ? n[k] : "invalid";
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

struct shim_sock;
static struct shim_sock *g_ss;
static unsigned g_nss;

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
			    x->h.shim.kind == IVL_SHIM_NONE || x->h.shim.kind > IVL_SHIM_FALLBACK)
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

static void json_shim(const struct ivl_region *rg, const struct peer_info *pi,
		      const struct shim_sock *ss, unsigned nss)
{
	int first = 1;

	printf(",\"shim\":{\"peers\":[");
	for (uint32_t id = 0; id < rg->hdr.max_peers; id++) {
		const struct ivl_peer_shim *sh = &pi[id].e.shim;
		int f2 = 1;

		if (!pi[id].used || sh->magic != IVL_SHIM_MAGIC)
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
	for (unsigned i = 0; i < nss; i++) {
		const struct shim_sock *x = &ss[i];
		char la[64], ra[64];

		shim_addr(la, sizeof(la), x->h.shim.family, x->h.shim.laddr, x->h.shim.lport);
		shim_addr(ra, sizeof(ra), x->h.shim.family, x->h.shim.raddr, x->h.shim.rport);
		printf("%s{\"peer\":%u,\"slot\":%u,\"state\":\"%s\",\"kind\":\"%s\",\"name\":",
		       i ? "," : "", x->peer, x->slot, half_state_name(x->state),
		       shim_kind_name(x->h.shim.kind));
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

static void text_shim(const struct ivl_region *rg, const struct peer_info *pi,
		      const struct shim_sock *ss, unsigned nss)
{
	int any = 0;

	for (uint32_t id = 0; id < rg->hdr.max_peers; id++) {
		const struct ivl_peer_shim *sh = &pi[id].e.shim;

		if (!pi[id].used || sh->magic != IVL_SHIM_MAGIC)
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
	for (unsigned i = 0; i < nss; i++) {
		const struct shim_sock *x = &ss[i];
		char la[64], ra[64];

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
	putchar('}');
}

static void print_json(const char *source, const struct daemon_info *d, const struct ivl_region *rg,
		       const struct peer_info *pi, const struct chan_info *ch, unsigned nch)
{
	char name[IVL_REGION_NAME_MAX];
	int first = 1;

	printf("{\"source\":");
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
		       "\"status\":%lld}}",
		       d->sealed, d->shrinks, d->refused_acl, d->refused_full, d->refused_status);
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

		if (!p->used)
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
		       p->e.state == IVL_PEER_UP && (p->e.daemon_flags & IVL_PEER_F_STALE) ? "true"
											 : "false");
		if (c)
			printf("%lld,\"queued\":%lld}", c->age_s, c->queued);
		else
			printf("null,\"queued\":null}");
	}
	printf("],\"channels\":[");
	for (unsigned i = 0; i < nch; i++) {
		const struct chan_info *c = &ch[i];

		printf("%s{\"a\":{\"peer\":%u,\"slot\":%u,\"state\":\"%s\",\"epoch_ok\":%s},\"b\":",
		       i ? "," : "", c->a, c->a_slot, chan_state_name(c->ha.state),
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
		json_dir(&c->ab);
		printf(",\"b_to_a\":");
		json_dir(&c->ba);
		putchar('}');
	}
	printf("]");
	json_shim(rg, pi, g_ss, g_nss);
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
	char fill[32];

	if (!d->present)
		return;
	if (d->fill_ok)
		snprintf(fill, sizeof(fill), "%" PRIu64 "/%u", d->fill, d->size);
	else
		snprintf(fill, sizeof(fill), "?/%u", d->size);
	printf("    %-8s fill %-16s bytes %-12" PRIu64 " msgs %-10" PRIu64 " doorbells %" PRIu64
	       " sent, %" PRIu64 " suppressed (consumer %" PRIu64 ")%s%s%s\n",
	       label, fill, d->bytes, d->msgs, d->kicks, d->suppressed, d->cons_kicks,
	       d->flags & IVL_RING_F_DONE_WRITING ? " done" : "",
	       d->flags & IVL_RING_F_CLOSED ? " closed" : "",
	       d->flags & IVL_RING_F_ABORT ? " abort" : "");
}

static void print_text(const char *source, const struct daemon_info *d, const struct ivl_region *rg,
		       const struct peer_info *pi, const struct chan_info *ch, unsigned nch)
{
	char name[IVL_REGION_NAME_MAX], sz[32];

	safe_name(name, rg->hdr.name, sizeof(name));
	human_size(sz, sizeof(sz), rg->hdr.region_size);
	printf("region %s: %s, layout v%u, %u peers max, %u vectors, %u channel slots/peer\n", name,
	       sz, rg->hdr.version, rg->hdr.max_peers, rg->hdr.n_vectors, rg->hdr.chan_slots);
	printf("daemon pid %u, generation %" PRIu64, rg->hdr.daemon_pid, rg->hdr.daemon_gen);
	if (d->present)
		printf(", ivlinkd %s, up %llds, %s%s%s", d->version, d->uptime_s, d->kind,
		       strcmp(d->file, "-") ? " " : "", strcmp(d->file, "-") ? d->file : "");
	printf(" (via %s)\n", source);
	if (d->present && (d->shrinks > 0 || d->refused_acl > 0 || d->refused_full > 0 ||
			   d->refused_status > 0))
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

		if (!p->used)
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
	printf("\nCHANNELS (%u)\n", nch);
	for (unsigned i = 0; i < nch; i++) {
		const struct chan_info *c = &ch[i];
		char lab[32];

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
	text_shim(rg, pi, g_ss, g_nss);
}

/* ------------------------------------------------------------------ main */

static struct daemon_info g_daemon;

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m)   ? "a FIFO"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISDIR(m)  ? "a directory"
			     : "another kind of file";
}

static void die_usage(const char *msg, const char *arg) __attribute__((noreturn));

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ivlinkctl: %s%s%s\nTry 'ivlinkctl --help' for more information.\n", msg,
		arg ? " " : "", arg ? arg : "");
	exit(EXIT_USAGE);
}

enum { OPT_STATUS = 256, OPT_VERSION };

static const struct option long_opts[] = {
    {"socket", required_argument, NULL, 'S'},
    {"status-socket", required_argument, NULL, OPT_STATUS},
    {"shm", required_argument, NULL, 'm'},
    {"json", no_argument, NULL, 'j'},
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

int main(int argc, char **argv)
{
	const char *sock = NULL, *status = NULL, *shm = NULL;
	struct daemon_info *d = &g_daemon;
	struct peer_info pi[IVL_PEERS_LIMIT];
	struct chan_info *ch = NULL;
	char source[600];
	struct ivl_region rg;
	struct stat st;
	unsigned nch;
	int json = 0, fd, rc, c, cmd = 0;
	void *base;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hjS:m:", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case OPT_VERSION:
			printf("ivlinkctl " IVL_VERSION " (region layout v%u)\n",
			       IVL_LAYOUT_VERSION);
			return 0;
		case 'j':
			json = 1;
			break;
		case 'S':
			sock = optarg;
			break;
		case OPT_STATUS:
			status = optarg;
			break;
		case 'm':
			shm = optarg;
			break;
		case ':':
			die_usage("option needs an argument:", argv[optind - 1]);
		default:
			if (optopt) {
				char o[3] = {'-', (char)optopt, 0};

				die_usage("unknown option", o);
			}
			die_usage("unknown option", argv[optind - 1]);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "status") == 0 && !cmd)
			cmd = 1;
		else
			die_usage(cmd ? "unexpected argument" : "unknown command", argv[i]);
	}
	if (!cmd)
		die_usage("no command given (try 'status')", NULL);
	if (!!shm + !!sock + !!status > 1)
		die_usage("give only one of --socket, --status-socket, --shm", NULL);

	if (shm) {
		if (shm[0] == '/')
			shm++;
		if (!*shm || strchr(shm, '/'))
			die_usage("invalid shm name", shm);
		snprintf(source, sizeof(source), "/dev/shm/%s", shm);
		/* O_NONBLOCK: opening a FIFO for reading would wait for a
		 * writer, and a device could do anything; only a regular file
		 * is a region (checked below). No symlinks either. */
		fd = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
		if (fd < 0) {
			fprintf(stderr, "ivlinkctl: cannot open %s: %s\n", source,
				errno == ELOOP ? "a symbolic link, not a region file"
					       : strerror(errno));
			return 1;
		}
	} else {
		if (status)
			snprintf(source, sizeof(source), "%s", status);
		else
			snprintf(source, sizeof(source), "%s.ctl", sock ? sock : env_socket());
		fd = ask_daemon(source, d);
		if (fd < 0) {
			fprintf(stderr, "ivlinkctl: cannot get the region from %s: %s\n", source,
				fd == -EBADF	? "the daemon passed no region fd"
				: fd == -EPROTO ? "not an ivlinkd status socket"
						: strerror(-fd));
			return 1;
		}
	}
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "ivlinkctl: %s: cannot stat the region: %s\n", source,
			strerror(errno));
		close(fd);
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "ivlinkctl: %s: not a regular file (%s), not a region\n", source,
			file_kind(st.st_mode));
		close(fd);
		return 1;
	}
	if (st.st_size <= 0) {
		fprintf(stderr, "ivlinkctl: %s: empty region file\n", source);
		close(fd);
		return 1;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED) {
		fprintf(stderr, "ivlinkctl: cannot map the region: %s\n", strerror(errno));
		return 1;
	}
	rc = ivl_region_attach(&rg, base, (uint64_t)st.st_size);
	if (rc < 0) {
		fprintf(stderr, "ivlinkctl: %s: not a valid ivlink layout v%u region: %s\n", source,
			IVL_LAYOUT_VERSION, strerror(-rc));
		return 1;
	}
	read_peers(&rg, pi);
	nch = read_channels(&rg, pi, &ch);
	g_nss = read_shim_socks(&rg, pi, &g_ss);
	if (json)
		print_json(source, d, &rg, pi, ch, nch);
	else
		print_text(source, d, &rg, pi, ch, nch);
	free(ch);
	free(g_ss);
	munmap(base, (size_t)st.st_size);
	return fflush(stdout) == 0 ? 0 : 1;
}
