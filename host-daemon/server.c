/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd's server object: region provisioning, the ivshmem-server protocol,
 * the peer table and the status socket (see server.h for the contract).
 *
 * The protocol is one-way, server to client: each message is an 8-byte
 * little-endian signed integer, optionally carrying one fd (SCM_RIGHTS), as
 * QEMU's ivshmem device reads it (QEMU docs/specs/ivshmem-spec.rst). A new
 * client receives:
 *
 *     0                      protocol version, no fd
 *     own id                 no fd
 *     -1 + region fd
 *     for each other peer:   its id n_vectors times, with its eventfd per vector
 *     own id n_vectors times with its own eventfds
 *
 * and every other client receives the new id n_vectors times with the new
 * eventfds. When a client leaves, the others receive its id without an fd.
 *
 * The daemon never blocks on a client: sockets are non-blocking, and every
 * client has a bounded queue of (value, fd) messages that is flushed when the
 * socket is writable. Fds in queues are reference counted (struct efd_ref),
 * so a peer that leaves while messages naming its eventfds are still queued
 * to others does not invalidate them.
 *
 * Clients are never freed while events of the current epoll batch may still
 * point at them: a failing client is marked dead and reaped after the batch
 * (reap()), which is also where leaves are announced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>

#include "server.h"
#include "region_guard.h"

#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26 /* linux/memfd.h: the huge page size's log2, from bit 26 */
#endif

#ifndef IVL_VERSION
#define IVL_VERSION "0.0.0"
#endif

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6 /* include/uapi/linux/magic.h */
#endif

/* A reference-counted fd: a peer's eventfd, or the region fd. */
struct efd_ref {
	int fd;
	unsigned refs;
};

struct msg {
	int64_t val;
	struct efd_ref *fd; /* NULL: no fd */
};

enum ep_kind { EP_LISTEN, EP_STATUS_LISTEN, EP_QUIT, EP_PEER, EP_STATUS, EP_INOTIFY };

struct client {
	enum ep_kind kind; /* first: epoll data points here */
	struct client *next;
	int fd;
	int id; /* peer id, -1 for a status client */
	uint32_t epoch;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t since_real_ns, since_mono_ns;
	struct efd_ref *efd[IVL_VECTORS_LIMIT];
	/* Peer output queue: a ring of q_cap messages. */
	struct msg *q;
	uint32_t q_cap, q_head, q_len;
	uint32_t q_off; /* bytes of the head message already sent */
	/* Status output: a byte buffer, the fd goes with its first byte. */
	char *sbuf;
	size_t slen, soff;
	int sfd;
	int out_armed; /* EPOLLOUT registered */
	int dead;      /* to be reaped */
	int dead_quiet;
	char dead_why[96];
};

struct ivl_server {
	struct ivl_server_config cfg; /* strings below are our copies */
	char *socket_path, *status_path, *shm_name, *hugetlb_dir, *region_name;
	char *file_path; /* named region file, NULL for memfd/unlinked */
	const char *kind;
	uint32_t queue_limit;

	int shm_fd;
	int lock_fd; /* private open of a named region, holds the flock */
	struct efd_ref shm_ref;
	void *base;
	struct ivl_region rg;
	int reattached;
	int sealed;	       /* a memfd (normal or huge pages): size sealed */
	uint64_t shrinks;      /* times a client shrank the region file */
	/* Refused connections, counted for the status, logged at most once
	 * per REFUSAL_LOG_NS per uid (an abusive client must not flood the
	 * log: the count of the ones not logged goes with the next line). */
	uint64_t refused_acl, refused_full, refused_status;
	struct refusal {
		uint32_t uid;
		uint64_t last_ns; /* 0: free */
		uint64_t quiet;	  /* refused and not logged since last_ns */
	} refusals[16];
	uint64_t guard_faults; /* region guard faults already reported */
	/* Counters since start or since the last "reset-stats" request
	 * (ivlinkctl stats [--reset]). The absolute counters above stay as
	 * they are: the status shows both. */
	struct ivl_server_stats {
		uint64_t since_real_ns;
		uint64_t resets; /* never reset itself */
		uint64_t joins, leaves;
		uint64_t refused_acl, refused_full, refused_status;
		uint64_t queue_kills; /* peers dropped: their output queue was full */
		uint64_t shrinks;
	} stats;

	int listen_fd, status_fd, epfd, spare_fd;
	struct stat listen_st, status_st; /* to remove only our own sockets */
	enum ep_kind listen_tag, status_tag, quit_tag, inotify_tag;
	int ino_fd; /* inotify on an unsealed region file: size changes, -1: none */
	int own_truncs; /* IN_MODIFY events our own ftruncate() will cause */

	struct client *peers[IVL_PEERS_LIMIT];
	struct client *clients;
	unsigned n_peers;
	uint64_t start_mono_ns;
	int started;
};

/* ------------------------------------------------------------------ utils */

static void slog(const struct ivl_server *s, enum ivl_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void slog(const struct ivl_server *s, enum ivl_log_level lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!s->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_ctx, lvl, buf);
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static char *dup_or_null(const char *str, int *err)
{
	char *d;

	if (!str)
		return NULL;
	d = strdup(str);
	if (!d)
		*err = -ENOMEM;
	return d;
}

int ivl_parse_size(const char *str, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	/* Decimal only, from the first character: base 0 would read "010M"
	 * as 8M, and strtoull() alone takes blanks and a sign ("-1" is
	 * ULLONG_MAX). */
	if (!str || *str < '0' || *str > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(str, &end, 10);
	if (errno || end == str)
		return errno == ERANGE ? -ERANGE : -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		end++;
		break;
	case 't':
	case 'T':
		mult = 1ull << 40;
		end++;
		break;
	default:
		return -EINVAL;
	}
	/* Accept "64M", "64MB" and "64MiB" alike; all are binary units, as in
	 * QEMU's ivshmem-server ("1K means 1024"). */
	if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

static void efd_unref(struct efd_ref *r)
{
	if (r && --r->refs == 0) {
		close(r->fd);
		free(r);
	}
}

static struct efd_ref *efd_new(void)
{
	struct efd_ref *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->fd < 0) {
		free(r);
		return NULL;
	}
	r->refs = 1;
	return r;
}

/* --------------------------------------------------------------- lifecycle */

void ivl_server_config_default(struct ivl_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_path = IVL_SERVER_DEFAULT_SOCKET;
	cfg->size = 64ull << 20;
	cfg->n_vectors = 8;
	cfg->max_peers = 8;
	cfg->chan_slots = 64;
	cfg->queue_limit = IVL_SERVER_QUEUE_DEFAULT;
	cfg->socket_mode = 0600;
	cfg->socket_gid = IVL_SERVER_NO_GID;
}

static int path_fits(const char *p)
{
	return strlen(p) < sizeof(((struct sockaddr_un *)0)->sun_path);
}

int ivl_server_init(struct ivl_server **out, const struct ivl_server_config *cfg)
{
	struct ivl_server *s;
	uint32_t min_q;
	int err = 0;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->shm_fd = s->listen_fd = s->status_fd = s->epfd = s->spare_fd = -1;
	s->lock_fd = -1;
	s->listen_tag = EP_LISTEN;
	s->status_tag = EP_STATUS_LISTEN;
	s->quit_tag = EP_QUIT;
	s->inotify_tag = EP_INOTIFY;
	s->ino_fd = -1;

	if (!cfg->socket_path || !*cfg->socket_path) {
		slog(s, IVL_LOG_ERROR, "no socket path given");
		err = -EINVAL;
		goto fail;
	}
	if (!is_pow2(cfg->size) || cfg->size < IVL_REGION_MIN_SIZE) {
		slog(s, IVL_LOG_ERROR, "region size %" PRIu64 " must be a power of two >= %u",
		     cfg->size, IVL_REGION_MIN_SIZE);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->n_vectors < 1 || cfg->n_vectors > IVL_VECTORS_LIMIT) {
		slog(s, IVL_LOG_ERROR, "vectors must be 1..%u", IVL_VECTORS_LIMIT);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->max_peers < 1 || cfg->max_peers > IVL_PEERS_LIMIT) {
		slog(s, IVL_LOG_ERROR, "max peers must be 1..%u", IVL_PEERS_LIMIT);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->chan_slots < 1 || cfg->chan_slots > IVL_CHAN_SLOTS_LIMIT) {
		slog(s, IVL_LOG_ERROR, "channel slots must be 1..%u", IVL_CHAN_SLOTS_LIMIT);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->shm_name) {
		/* shm_open() style names may start with one '/'. */
		const char *n = cfg->shm_name[0] == '/' ? cfg->shm_name + 1 : cfg->shm_name;

		if (!*n || strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
		    strlen(n) > NAME_MAX) {
			slog(s, IVL_LOG_ERROR, "invalid shm name '%s'", cfg->shm_name);
			err = -EINVAL;
			goto fail;
		}
		s->shm_name = dup_or_null(n, &err);
	}
	s->socket_path = dup_or_null(cfg->socket_path, &err);
	if (!cfg->status_path) {
		if (asprintf(&s->status_path, "%s.ctl", cfg->socket_path) < 0) {
			s->status_path = NULL;
			err = -ENOMEM;
		}
	} else if (*cfg->status_path && strcmp(cfg->status_path, "none") != 0) {
		s->status_path = dup_or_null(cfg->status_path, &err);
	}
	s->hugetlb_dir = dup_or_null(cfg->hugetlb_dir, &err);
	s->region_name = dup_or_null(cfg->region_name ? cfg->region_name
				     : s->shm_name    ? s->shm_name
						      : "ivlink",
				     &err);
	if (err)
		goto fail;
	if (!path_fits(s->socket_path) || (s->status_path && !path_fits(s->status_path))) {
		slog(s, IVL_LOG_ERROR, "socket path too long (max %zu bytes): %s",
		     sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
		     path_fits(s->socket_path) ? s->status_path : s->socket_path);
		err = -ENAMETOOLONG;
		goto fail;
	}
	/* Whatever the configured bound, one complete handshake must fit:
	 * 3 messages plus n_vectors per peer including the client itself. */
	min_q = (cfg->max_peers + 1) * cfg->n_vectors + 16;
	s->queue_limit = cfg->queue_limit > min_q ? cfg->queue_limit : min_q;
	s->cfg.socket_path = s->cfg.status_path = s->cfg.shm_name = NULL;
	s->cfg.hugetlb_dir = s->cfg.region_name = NULL;
	*out = s;
	return 0;
fail:
	if (err == -ENOMEM)
		slog(s, IVL_LOG_ERROR, "out of memory");
	s->started = 0;
	ivl_server_close(s);
	return err;
}

int ivl_server_shm_fd(const struct ivl_server *s)
{
	return s->shm_fd;
}

const struct ivl_region *ivl_server_region(const struct ivl_server *s)
{
	return &s->rg;
}

unsigned ivl_server_n_peers(const struct ivl_server *s)
{
	return s->n_peers;
}

/* ----------------------------------------------------------------- region */

static int map_region(struct ivl_server *s)
{
	void *p = mmap(NULL, s->cfg.size, PROT_READ | PROT_WRITE, MAP_SHARED, s->shm_fd, 0);
	int rc;

	if (p == MAP_FAILED) {
		int err = -errno;

		slog(s, IVL_LOG_ERROR, "cannot map the %s region (%" PRIu64 " bytes): %s", s->kind,
		     s->cfg.size, strerror(-err));
		return err;
	}
	s->base = p;
	/* Named and hugetlbfs files cannot be sealed: a client may shrink
	 * them under us. The guard restores the size instead of dying. */
	rc = ivl__guard_add(p, s->cfg.size, s->sealed ? -1 : s->shm_fd);
	if (rc < 0)
		slog(s, IVL_LOG_WARN, "region guard: %s", strerror(-rc));
	return 0;
}

static void unmap_region(struct ivl_server *s)
{
	if (!s->base)
		return;
	ivl__guard_remove(s->base);
	munmap(s->base, s->cfg.size);
	s->base = NULL;
}

static int format_region(struct ivl_server *s)
{
	struct ivl_region_params p;
	struct ivl_region_hdr *h = s->base;
	int rc;

	ivl_region_params_default(&p);
	p.size = s->cfg.size;
	p.max_peers = s->cfg.max_peers;
	p.n_vectors = s->cfg.n_vectors;
	p.chan_slots = s->cfg.chan_slots;
	p.name = s->region_name;
	rc = ivl_region_format(s->base, s->cfg.size, &p);
	if (rc < 0) {
		slog(s, IVL_LOG_ERROR,
		     "cannot format a %" PRIu64 "-byte region for %u peers with %u channel slots: "
		     "too small",
		     s->cfg.size, s->cfg.max_peers, s->cfg.chan_slots);
		return rc;
	}
	/* The daemon owns these header fields; format() leaves them zero. */
	h->created_unix_ns = now_ns(CLOCK_REALTIME);
	h->daemon_gen = 0;
	return 0;
}

/* Compares an existing region's geometry with what we were asked for. */
static int same_geometry(struct ivl_server *s, const struct ivl_region_hdr *h, char *why,
			 size_t len)
{
	if (h->region_size != s->cfg.size)
		snprintf(why, len, "size %" PRIu64 " (asked %" PRIu64 ")", h->region_size,
			 s->cfg.size);
	else if (h->max_peers != s->cfg.max_peers)
		snprintf(why, len, "max peers %u (asked %u)", h->max_peers, s->cfg.max_peers);
	else if (h->n_vectors != s->cfg.n_vectors)
		snprintf(why, len, "vectors %u (asked %u)", h->n_vectors, s->cfg.n_vectors);
	else if (h->chan_slots != s->cfg.chan_slots)
		snprintf(why, len, "channel slots %u (asked %u)", h->chan_slots, s->cfg.chan_slots);
	else
		return 1;
	return 0;
}

/*
 * An existing named region: re-attach when it holds a valid header of the
 * same geometry, so that a daemon restart does not wipe the peers' data
 * (QEMU guests keep their mapping across our restart). Anything else is
 * refused unless force_format, because it may be someone else's file.
 */
static int open_existing(struct ivl_server *s, const struct stat *st, int *need_format)
{
	char why[128];
	int rc;

	*need_format = 0;
	if (st->st_size == 0) {
		/* Created but never sized: a daemon died right after creating
		 * it. There is nothing to lose. */
		*need_format = 1;
		return 0;
	}
	if ((uint64_t)st->st_size != s->cfg.size) {
		uint64_t have = (uint64_t)st->st_size;

		if (!s->cfg.force_format && (!is_pow2(have) || have < IVL_REGION_MIN_SIZE)) {
			slog(s, IVL_LOG_ERROR,
			     "region %s exists with size %" PRIu64 ", which no -l accepts (a "
			     "power of two of at least 1M): it cannot be re-attached; "
			     "--force-format wipes it",
			     s->file_path, have);
			return -EEXIST;
		}
		if (!s->cfg.force_format) {
			/* In the form -l takes: whole MiB, or GiB. */
			slog(s, IVL_LOG_ERROR,
			     "region %s exists with size %" PRIu64 ", not %" PRIu64
			     ": restart with -l %" PRIu64 "%s to re-attach, or --force-format to "
			     "wipe it",
			     s->file_path, have, s->cfg.size,
			     have % (1ull << 30) ? have >> 20 : have >> 30,
			     have % (1ull << 30) ? "M" : "G");
			return -EEXIST;
		}
		*need_format = 1;
		return 0;
	}
	rc = map_region(s);
	if (rc < 0)
		return rc;
	rc = ivl_region_attach(&s->rg, s->base, s->cfg.size);
	if (rc < 0) {
		if (!s->cfg.force_format) {
			char msg[256];

			slog(s, IVL_LOG_ERROR,
			     "%s exists but holds no valid ivlink layout v%u header (%s); "
			     "use --force-format to wipe it",
			     s->file_path, IVL_LAYOUT_VERSION,
			     ivl_region_strerror(rc, s->base, s->cfg.size, msg, sizeof(msg)));
			return -EEXIST;
		}
		*need_format = 1;
		return 0;
	}
	if (!same_geometry(s, &s->rg.hdr, why, sizeof(why))) {
		if (!s->cfg.force_format) {
			slog(s, IVL_LOG_ERROR,
			     "region %s has another geometry: %s; use --force-format to wipe it",
			     s->file_path, why);
			return -EEXIST;
		}
		slog(s, IVL_LOG_WARN, "region %s: %s; wiping it (--force-format)", s->file_path,
		     why);
		*need_format = 1;
		return 0;
	}
	s->reattached = 1;
	return 0;
}

static int open_named(struct ivl_server *s, const char *dir, int *need_format)
{
	mode_t fmode = s->cfg.socket_mode & 0666;
	struct stat st;
	int rc, created = 0;

	if (asprintf(&s->file_path, "%s/%s", dir, s->shm_name) < 0) {
		s->file_path = NULL;
		return -ENOMEM;
	}
	s->shm_fd = open(s->file_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, fmode);
	if (s->shm_fd >= 0) {
		created = 1;
		/* The file mode must not depend on our umask. */
		if (fchmod(s->shm_fd, fmode) < 0)
			slog(s, IVL_LOG_WARN, "chmod %s: %s", s->file_path, strerror(errno));
		/* The group the sockets get, so that the mode's group bits
		 * mean the same set of users for the file (ivlinkctl --shm). */
		if (s->cfg.socket_gid != IVL_SERVER_NO_GID &&
		    fchown(s->shm_fd, (uid_t)-1, s->cfg.socket_gid) < 0) {
			rc = -errno;
			slog(s, IVL_LOG_ERROR, "cannot give %s the group %u: %s", s->file_path,
			     (unsigned)s->cfg.socket_gid, strerror(-rc));
			return rc;
		}
	} else if (errno == EEXIST) {
		s->shm_fd = open(s->file_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (s->shm_fd < 0) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot open region %s: %s", s->file_path, strerror(-rc));
		return rc;
	}
	/* One daemon per named region: two would both write the peer table.
	 * The lock belongs to an open file description, so it is taken on a
	 * private one: shm_fd's is shared with every client (SCM_RIGHTS), and
	 * their mappings keep it alive after we die, which would lock a
	 * restarted daemon out for as long as any peer stays attached. */
	s->lock_fd = open(s->file_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
		if (rc == -EADDRINUSE)
			slog(s, IVL_LOG_ERROR, "region %s is in use by another daemon",
			     s->file_path);
		else
			slog(s, IVL_LOG_ERROR, "cannot lock region %s: %s", s->file_path,
			     strerror(-rc));
		return rc;
	}
	if (fstat(s->shm_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		slog(s, IVL_LOG_ERROR, "%s is not a regular file", s->file_path);
		return -EINVAL;
	}
	/* A file we did not create may be someone else's: a local user who
	 * pre-creates it keeps a read-write fd and owns the region without
	 * ever passing the socket's mode or the allow-list. Serve only a file
	 * of our own uid, with one link, that nobody else may write. */
	if (!created &&
	    (st.st_uid != geteuid() || st.st_nlink != 1 || (st.st_mode & 002) ||
	     ((st.st_mode & 020) && st.st_gid != getegid() && st.st_gid != s->cfg.socket_gid))) {
		slog(s, IVL_LOG_ERROR,
		     "region %s exists but is not ours to serve (owner uid %u, mode %04o, %lu "
		     "links; want uid %u, not writable by others, 1 link): remove it, or pick "
		     "another name",
		     s->file_path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
		     (unsigned long)st.st_nlink, (unsigned)geteuid());
		return -EPERM;
	}
	if (created) {
		*need_format = 1;
		return 0;
	}
	return open_existing(s, &st, need_format);
}

static int open_region(struct ivl_server *s)
{
	int need_format = 1, rc;

	if (s->hugetlb_dir) {
		struct statfs sf;

		s->kind = "hugetlbfs";
		if (statfs(s->hugetlb_dir, &sf) < 0) {
			rc = -errno;
			slog(s, IVL_LOG_ERROR, "--hugetlb %s: %s", s->hugetlb_dir, strerror(-rc));
			return rc;
		}
		if ((unsigned long)sf.f_type != HUGETLBFS_MAGIC)
			slog(s, IVL_LOG_WARN, "%s is not a hugetlbfs mount; using normal pages",
			     s->hugetlb_dir);
		else if (s->cfg.size % (uint64_t)sf.f_bsize) {
			slog(s, IVL_LOG_ERROR,
			     "size %" PRIu64 " is not a multiple of the huge page size %ld",
			     s->cfg.size, (long)sf.f_bsize);
			return -EINVAL;
		}
		if (s->shm_name) {
			rc = open_named(s, s->hugetlb_dir, &need_format);
		} else if ((unsigned long)sf.f_type == HUGETLBFS_MAGIC) {
			/* An anonymous huge-page region: a hugetlb memfd of the
			 * mount's page size, which, unlike a file, can be sealed. */
			unsigned shift = (unsigned)__builtin_ctzl((unsigned long)sf.f_bsize);

			s->shm_fd = memfd_create(s->region_name, MFD_CLOEXEC | MFD_ALLOW_SEALING |
								     MFD_HUGETLB | shift << MFD_HUGE_SHIFT);
			rc = s->shm_fd < 0 ? -errno : 0;
			if (rc < 0)
				slog(s, IVL_LOG_ERROR, "memfd_create (huge pages of %ld bytes): %s",
				     (long)sf.f_bsize, strerror(-rc));
			s->sealed = rc == 0;
		} else {
			char *tmpl;

			if (asprintf(&tmpl, "%s/ivlink.XXXXXX", s->hugetlb_dir) < 0)
				return -ENOMEM;
			s->shm_fd = mkostemp(tmpl, O_CLOEXEC);
			rc = s->shm_fd < 0 ? -errno : 0;
			if (rc == 0)
				unlink(tmpl);
			else
				slog(s, IVL_LOG_ERROR, "cannot create a file in %s: %s",
				     s->hugetlb_dir, strerror(-rc));
			free(tmpl);
		}
	} else if (s->shm_name) {
		s->kind = "shm";
		rc = open_named(s, "/dev/shm", &need_format);
	} else {
		s->kind = "memfd";
		s->shm_fd = memfd_create(s->region_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		rc = s->shm_fd < 0 ? -errno : 0;
		if (rc < 0)
			slog(s, IVL_LOG_ERROR, "memfd_create: %s", strerror(-rc));
		s->sealed = rc == 0;
	}
	if (rc < 0)
		return rc;

	if (need_format) {
		unmap_region(s);
		if (ftruncate(s->shm_fd, (off_t)s->cfg.size) < 0) {
			rc = -errno;
			slog(s, IVL_LOG_ERROR, "cannot size the region to %" PRIu64 ": %s",
			     s->cfg.size, strerror(-rc));
			return rc;
		}
		if (s->sealed) {
			/* Every client gets a read-write fd of the memfd. Seal
			 * its size so that none can shrink it under the others
			 * (SIGBUS) or grow it (QEMU takes the BAR size from
			 * fstat, it must stay a power of two), and seal the
			 * seals so that none can add F_SEAL_FUTURE_WRITE and
			 * keep later peers from mapping it writable. */
			if (fcntl(s->shm_fd, F_ADD_SEALS,
				  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
				rc = -errno;
				slog(s, IVL_LOG_ERROR, "cannot seal the memfd: %s", strerror(-rc));
				return rc;
			}
		}
		rc = map_region(s);
		if (rc < 0)
			return rc;
		rc = format_region(s);
		if (rc < 0)
			return rc;
		rc = ivl_region_attach(&s->rg, s->base, s->cfg.size);
		if (rc < 0) {
			slog(s, IVL_LOG_ERROR, "formatted region does not validate: %s",
			     strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* After open_region(): stamp this daemon's generation and deal with entries
 * left UP by a previous daemon that died. */
static void adopt_region(struct ivl_server *s)
{
	struct ivl_region_hdr *h = s->base;
	uint64_t gen = h->daemon_gen + 1;

	h->daemon_gen = gen;
	h->daemon_pid = (uint32_t)getpid();
	s->rg.hdr.daemon_gen = gen;
	s->rg.hdr.daemon_pid = (uint32_t)getpid();
	__atomic_thread_fence(__ATOMIC_RELEASE);

	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct ivl_peer_entry *e = ivl_region_peer(&s->rg, id);
		struct ivl_peer_view v;
		long ep;

		if (ivl_region_peer_view(&s->rg, id, &v) < 0 || v.state != IVL_PEER_UP)
			continue;
		if (!s->cfg.reclaim_stale) {
			/* Its channels keep running, but nobody may start a
			 * new one with it: we cannot ring it or see it leave. */
			__atomic_fetch_or(&e->daemon_flags, IVL_PEER_F_STALE, __ATOMIC_RELEASE);
			slog(s, IVL_LOG_WARN,
			     "peer %u is UP from a previous daemon (pid %u, epoch %u): marked stale "
			     "(no new connections with it); its id is not handed out until a "
			     "restart with --reclaim-stale",
			     id, e->pid, v.epoch);
			continue;
		}
		e->left_unix_ns = now_ns(CLOCK_REALTIME);
		ep = ivl_region_peer_set(&s->rg, id, IVL_PEER_GONE, 0, 0, 0);
		if (ep > 0)
			ivl_section_reset(&s->rg, id, (uint32_t)ep);
		slog(s, IVL_LOG_INFO, "peer %u: stale entry reclaimed, GONE at epoch %ld", id, ep);
	}
	slog(s, IVL_LOG_INFO,
	     "region '%s' (%s%s%s): %" PRIu64 " bytes, %u vectors, %u peers, generation %" PRIu64
	     ", %s",
	     s->rg.hdr.name, s->kind, s->file_path ? " " : "", s->file_path ? s->file_path : "",
	     s->rg.hdr.region_size, s->rg.hdr.n_vectors, s->rg.hdr.max_peers, gen,
	     s->reattached ? "re-attached" : "formatted");
}

/* ---------------------------------------------------------------- sockets */

static void fill_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, path, strlen(path) + 1);
}

/*
 * Checks path before we bind it: absent is fine; a socket nobody listens on
 * is the leftover of a dead daemon and is removed; a live socket or another
 * kind of file is refused.
 */
static int probe_socket(struct ivl_server *s, const char *path)
{
	struct sockaddr_un a;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		slog(s, IVL_LOG_ERROR, "%s exists and is not a socket; not replacing it", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	fill_addr(&a, path);
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : -errno;
	close(fd);
	if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS) {
		slog(s, IVL_LOG_ERROR, "another daemon is listening on %s", path);
		return -EADDRINUSE;
	}
	if (rc != -ECONNREFUSED) {
		slog(s, IVL_LOG_ERROR, "cannot probe %s: %s", path, strerror(-rc));
		return rc;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot remove stale socket %s: %s", path, strerror(-rc));
		return rc;
	}
	slog(s, IVL_LOG_INFO, "removed stale socket %s", path);
	return 0;
}

static int listen_on(struct ivl_server *s, const char *path, int *out, struct stat *st)
{
	struct sockaddr_un a;
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Linux creates the socket file with the socket inode's mode minus
	 * the umask, so this keeps it no wider than asked even before the
	 * chmod below. Nobody can connect before listen() anyway. */
	if (fchmod(fd, s->cfg.socket_mode) < 0)
		slog(s, IVL_LOG_DEBUG, "fchmod on socket: %s", strerror(errno));
	fill_addr(&a, path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot bind %s: %s", path, strerror(-rc));
		goto err_close;
	}
	/* The exact mode, whatever the umask (it may be wider than the umask
	 * allows, e.g. 0660 for a group of QEMU users). */
	if (chmod(path, s->cfg.socket_mode) < 0 || lstat(path, st) < 0) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot set mode of %s: %s", path, strerror(-rc));
		goto err_unlink;
	}
	/* Connecting needs write permission on the socket file: its group
	 * is who the mode's group bits let in (--socket-group). Before
	 * listen(), so that no client ever connects under the old group. */
	if (s->cfg.socket_gid != IVL_SERVER_NO_GID &&
	    (chown(path, (uid_t)-1, s->cfg.socket_gid) < 0 || lstat(path, st) < 0)) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot give %s the group %u: %s", path,
		     (unsigned)s->cfg.socket_gid, strerror(-rc));
		goto err_unlink;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot listen on %s: %s", path, strerror(-rc));
		goto err_unlink;
	}
	*out = fd;
	return 0;
err_unlink:
	unlink(path);
err_close:
	close(fd);
	return rc;
}

/*
 * Creates the directory of a socket path if it is missing, as systemd's
 * RuntimeDirectory= would: only the last component (/run/ivlink, never
 * /run), mode 0755, or 0750 owned by the socket group so that exactly that
 * group can reach the socket (QEMU under libvirt runs as libvirt-qemu). An
 * existing directory is left as it is: it is the administrator's.
 */
static int ensure_socket_dir(struct ivl_server *s, const char *path)
{
	const char *slash = strrchr(path, '/');
	int withgid = s->cfg.socket_gid != IVL_SERVER_NO_GID;
	mode_t mode = withgid ? 0750 : 0755;
	char *dir;
	int rc = 0;

	if (!slash || slash == path)
		return 0; /* relative name in the cwd, or in / */
	dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	if (mkdir(dir, mode) < 0) {
		if (errno != EEXIST) {
			rc = -errno;
			slog(s, IVL_LOG_ERROR, "cannot create the socket directory %s: %s", dir,
			     strerror(-rc));
		}
		goto out;
	}
	/* The mode whatever the umask, and the group before anyone looks. */
	if ((withgid && chown(dir, (uid_t)-1, s->cfg.socket_gid) < 0) || chmod(dir, mode) < 0) {
		rc = -errno;
		slog(s, IVL_LOG_ERROR, "cannot set the owner or mode of %s: %s", dir,
		     strerror(-rc));
		rmdir(dir);
		goto out;
	}
	slog(s, IVL_LOG_INFO, "created the socket directory %s (mode %04o)", dir, (unsigned)mode);
out:
	free(dir);
	return rc;
}

static int ep_add(struct ivl_server *s, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = {.events = events, .data.ptr = tag};

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int ivl_server_start(struct ivl_server *s)
{
	char gid_text[24] = "unchanged";
	int rc;

	s->start_mono_ns = now_ns(CLOCK_MONOTONIC);
	s->stats.since_real_ns = now_ns(CLOCK_REALTIME);
	rc = open_region(s);
	if (rc < 0)
		return rc;
	s->shm_ref.fd = s->shm_fd;
	s->shm_ref.refs = 1; /* ours; never dropped to zero by clients */

	rc = ensure_socket_dir(s, s->socket_path);
	if (rc == 0 && s->status_path)
		rc = ensure_socket_dir(s, s->status_path);
	if (rc < 0)
		return rc;

	/* Probe the status socket first: it tells a live ivlinkd without
	 * making the probe a peer (probing the main socket of a live daemon
	 * is a short join and leave that its peers would see). */
	if (s->status_path) {
		rc = probe_socket(s, s->status_path);
		if (rc < 0)
			return rc;
	}
	rc = probe_socket(s, s->socket_path);
	if (rc < 0)
		return rc;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;
	/* A spare descriptor, given up when accept() hits EMFILE so that the
	 * pending connection can be accepted and closed instead of spinning. */
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	rc = listen_on(s, s->socket_path, &s->listen_fd, &s->listen_st);
	if (rc < 0)
		return rc;
	if (s->status_path) {
		rc = listen_on(s, s->status_path, &s->status_fd, &s->status_st);
		if (rc < 0)
			return rc;
	}
	rc = ep_add(s, s->listen_fd, EPOLLIN, &s->listen_tag);
	if (rc == 0 && s->status_fd >= 0)
		rc = ep_add(s, s->status_fd, EPOLLIN, &s->status_tag);
	if (rc < 0)
		return rc;
	/* A file region cannot be sealed: watch its size (ftruncate() raises
	 * IN_MODIFY; writes through the mapping do not). */
	if (!s->sealed && s->file_path) {
		s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (s->ino_fd < 0 || inotify_add_watch(s->ino_fd, s->file_path, IN_MODIFY) < 0 ||
		    ep_add(s, s->ino_fd, EPOLLIN, &s->inotify_tag) < 0)
			slog(s, IVL_LOG_WARN,
			     "cannot watch %s for size changes (%s): shrinks are seen only when "
			     "they fault",
			     s->file_path, strerror(errno));
	}

	/* Only now, when nothing can fail any more, do we touch a re-attached
	 * region's header and table. */
	adopt_region(s);
	s->started = 1;
	if (s->cfg.socket_gid != IVL_SERVER_NO_GID)
		snprintf(gid_text, sizeof(gid_text), "%u", (unsigned)s->cfg.socket_gid);
	slog(s, IVL_LOG_INFO, "listening on %s%s%s (mode %04o, group %s)", s->socket_path,
	     s->status_path ? ", status on " : "", s->status_path ? s->status_path : "",
	     (unsigned)s->cfg.socket_mode, gid_text);
	return 0;
}

/* ----------------------------------------------------------------- output */

static void mark_dead(struct client *c, int quiet, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mark_dead(struct client *c, int quiet, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	c->dead = 1;
	c->dead_quiet = quiet;
	va_start(ap, fmt);
	vsnprintf(c->dead_why, sizeof(c->dead_why), fmt, ap);
	va_end(ap);
}

static void set_out(struct ivl_server *s, struct client *c, int on)
{
	struct epoll_event ev = {.events = (c->kind == EP_PEER ? EPOLLIN | EPOLLRDHUP : 0) |
					   (on ? EPOLLOUT : 0),
				 .data.ptr = c};

	if (c->out_armed == on)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		mark_dead(c, 0, "epoll_ctl: %s", strerror(errno));
		return;
	}
	c->out_armed = on;
}

static void enqueue(struct ivl_server *s, struct client *c, int64_t val, struct efd_ref *fd)
{
	if (c->dead)
		return;
	if (c->q_len >= s->queue_limit) {
		s->stats.queue_kills++;
		mark_dead(c, 0, "output queue full (%u messages): the client does not read",
			  c->q_len);
		return;
	}
	if (c->q_len == c->q_cap) {
		uint32_t ncap = c->q_cap ? c->q_cap * 2 : 64;
		struct msg *nq = malloc(sizeof(*nq) * ncap);

		if (!nq) {
			mark_dead(c, 0, "out of memory for its output queue");
			return;
		}
		for (uint32_t i = 0; i < c->q_len; i++)
			nq[i] = c->q[(c->q_head + i) % c->q_cap];
		free(c->q);
		c->q = nq;
		c->q_cap = ncap;
		c->q_head = 0;
	}
	if (fd)
		fd->refs++;
	c->q[(c->q_head + c->q_len) % c->q_cap] = (struct msg){.val = val, .fd = fd};
	c->q_len++;
}

static int send_one(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

static void flush_peer(struct ivl_server *s, struct client *c)
{
	while (c->q_len && !c->dead) {
		struct msg *m = &c->q[c->q_head];
		int64_t le = (int64_t)htole64((uint64_t)m->val);
		/* The fd goes with the first byte; the rest of a message cut
		 * by a partial send goes without it. */
		int fd = m->fd && c->q_off == 0 ? m->fd->fd : -1;
		int n = send_one(c->fd, (char *)&le + c->q_off, sizeof(le) - c->q_off, fd);

		if (n == -EAGAIN) {
			set_out(s, c, 1);
			return;
		}
		if (n < 0) {
			/* EPIPE/ECONNRESET: it left. ETOOMANYREFS: too many fds
			 * in flight to clients that do not read. Either way
			 * this client cannot get a consistent stream any more. */
			mark_dead(c, n == -EPIPE || n == -ECONNRESET, "send failed: %s",
				  strerror(-n));
			return;
		}
		c->q_off += (uint32_t)n;
		if (c->q_off < sizeof(le))
			continue;
		efd_unref(m->fd);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
		c->q_off = 0;
	}
	if (!c->dead)
		set_out(s, c, 0);
}

static void flush_status(struct ivl_server *s, struct client *c)
{
	while (c->soff < c->slen && !c->dead) {
		int n = send_one(c->fd, c->sbuf + c->soff, c->slen - c->soff, c->sfd);

		if (n == -EAGAIN) {
			set_out(s, c, 1);
			return;
		}
		if (n < 0) {
			mark_dead(c, 1, "status send failed: %s", strerror(-n));
			return;
		}
		if (c->sfd >= 0) {
			close(c->sfd);
			c->sfd = -1;
		}
		c->soff += (size_t)n;
	}
	mark_dead(c, 1, "status sent");
}

/* Rings a peer's control vector: its table view changed. */
static void ring_ctrl(struct ivl_server *s, struct client *c)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(c->efd[IVL_CTRL_VECTOR]->fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
	if (n < 0 && errno != EAGAIN)
		slog(s, IVL_LOG_WARN, "peer %d: cannot ring control vector: %s", c->id,
		     strerror(errno));
}

/* ------------------------------------------------------------ join, leave */

#define REFUSAL_LOG_NS (10 * 1000000000ULL)

/*
 * Whether a refusal of uid may be logged now; if so, *quiet is the number
 * refused since the last line for that uid. A table of the 16 most recent
 * uids: a uid not in it takes the least recently logged entry.
 */
static int refusal_log_ok(struct ivl_server *s, uint32_t uid, uint64_t *quiet)
{
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	struct refusal *r = NULL, *oldest = &s->refusals[0];

	for (size_t i = 0; i < sizeof(s->refusals) / sizeof(s->refusals[0]); i++) {
		struct refusal *e = &s->refusals[i];

		if (e->last_ns && e->uid == uid) {
			r = e;
			break;
		}
		if (e->last_ns < oldest->last_ns)
			oldest = e;
	}
	if (!r) {
		r = oldest;
		r->uid = uid;
		r->last_ns = 0;
		r->quiet = 0;
	}
	if (r->last_ns && now - r->last_ns < REFUSAL_LOG_NS) {
		r->quiet++;
		return 0;
	}
	*quiet = r->quiet;
	r->quiet = 0;
	r->last_ns = now;
	return 1;
}

/* Counts a refused client and logs it, rate-limited per uid. */
static void refused(struct ivl_server *s, uint64_t *counter, const struct ucred *cr,
		    const char *what, const char *why)
{
	uint64_t quiet;

	(*counter)++;
	if (!refusal_log_ok(s, (uint32_t)cr->uid, &quiet))
		return;
	if (quiet)
		slog(s, IVL_LOG_WARN,
		     "refused %s pid %d uid %u gid %u: %s (and %" PRIu64
		     " more from uid %u in the last %llu s, not logged)",
		     what, (int)cr->pid, (unsigned)cr->uid, (unsigned)cr->gid, why, quiet,
		     (unsigned)cr->uid, REFUSAL_LOG_NS / 1000000000ULL);
	else
		slog(s, IVL_LOG_WARN, "refused %s pid %d uid %u gid %u: %s", what, (int)cr->pid,
		     (unsigned)cr->uid, (unsigned)cr->gid, why);
}

static int allowed(const struct ivl_server *s, const struct ucred *cr)
{
	if (!s->cfg.n_allow_uid && !s->cfg.n_allow_gid)
		return 1;
	for (unsigned i = 0; i < s->cfg.n_allow_uid; i++)
		if (s->cfg.allow_uid[i] == cr->uid)
			return 1;
	for (unsigned i = 0; i < s->cfg.n_allow_gid; i++)
		if (s->cfg.allow_gid[i] == cr->gid)
			return 1;
	return 0;
}

/* Lowest id that no client holds and that the table does not show UP (an
 * UP entry without a client is a stale one from a previous daemon). */
static int pick_id(struct ivl_server *s, unsigned *stale)
{
	*stale = 0;
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct ivl_peer_view v;

		if (s->peers[id])
			continue;
		if (ivl_region_peer_view(&s->rg, id, &v) == 0 && v.state == IVL_PEER_UP) {
			(*stale)++;
			continue;
		}
		return (int)id;
	}
	return -ENOSPC;
}

static void client_free(struct client *c)
{
	for (unsigned v = 0; v < IVL_VECTORS_LIMIT; v++)
		efd_unref(c->efd[v]);
	for (uint32_t i = 0; i < c->q_len; i++)
		efd_unref(c->q[(c->q_head + i) % c->q_cap].fd);
	free(c->q);
	free(c->sbuf);
	if (c->sfd >= 0)
		close(c->sfd);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static struct client *client_new(enum ep_kind kind, int fd, const struct ucred *cr)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = kind;
	c->fd = fd;
	c->id = -1;
	c->sfd = -1;
	c->pid = cr->pid;
	c->uid = cr->uid;
	c->gid = cr->gid;
	c->since_real_ns = now_ns(CLOCK_REALTIME);
	c->since_mono_ns = now_ns(CLOCK_MONOTONIC);
	return c;
}

static int get_cred(struct ivl_server *s, int fd, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0) {
		slog(s, IVL_LOG_WARN, "SO_PEERCRED: %s; refusing the client", strerror(errno));
		return -errno;
	}
	return 0;
}

static void peer_join(struct ivl_server *s, int fd)
{
	struct ivl_peer_entry *e;
	struct ivl_peer_view v;
	struct client *c;
	struct ucred cr;
	unsigned stale;
	uint32_t next;
	long ep;
	int id;

	if (get_cred(s, fd, &cr) < 0)
		goto err_close;
	if (!allowed(s, &cr)) {
		s->stats.refused_acl++;
		refused(s, &s->refused_acl, &cr, "client", "not in the allow-list");
		goto err_close;
	}
	id = pick_id(s, &stale);
	if (id < 0) {
		char why[160];

		snprintf(why, sizeof(why),
			 "all %u peer ids in use (%u connected, %u stale; see --max-peers, "
			 "--reclaim-stale)",
			 s->rg.hdr.max_peers, s->n_peers, stale);
		s->stats.refused_full++;
		refused(s, &s->refused_full, &cr, "client", why);
		goto err_close;
	}
	c = client_new(EP_PEER, fd, &cr);
	if (!c) {
		slog(s, IVL_LOG_ERROR, "out of memory; refusing client pid %d", (int)cr.pid);
		goto err_close;
	}
	c->id = id;
	for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++) {
		c->efd[vec] = efd_new();
		if (!c->efd[vec]) {
			slog(s, IVL_LOG_ERROR, "eventfd: %s; refusing client pid %d",
			     strerror(errno), (int)cr.pid);
			goto err_free;
		}
	}
	if (ep_add(s, fd, EPOLLIN | EPOLLRDHUP, c) < 0) {
		slog(s, IVL_LOG_ERROR, "epoll_ctl: %s; refusing client pid %d", strerror(errno),
		     (int)cr.pid);
		goto err_free;
	}

	/* Reset the section before the peer goes UP, stamped with the epoch
	 * that peer_set() is about to give it, so that nobody ever sees an UP
	 * peer whose section belongs to an older incarnation. */
	e = ivl_region_peer(&s->rg, (uint32_t)id);
	ivl_region_peer_view(&s->rg, (uint32_t)id, &v);
	next = v.epoch + 1 ? v.epoch + 1 : 1; /* peer_set() skips 0 the same way */
	ivl_section_reset(&s->rg, (uint32_t)id, next);
	e->joined_unix_ns = c->since_real_ns;
	e->left_unix_ns = 0;
	ep = ivl_region_peer_set(&s->rg, (uint32_t)id, IVL_PEER_UP, (uint32_t)cr.pid,
				 (uint32_t)cr.uid, s->rg.hdr.n_vectors);
	if (ep != (long)next) {
		/* Someone scribbled on the epoch between our read and the set
		 * (ivshmem cannot stop a hostile peer). Re-stamp the section. */
		slog(s, IVL_LOG_WARN, "peer %d: epoch changed under us (%u, now %ld)", id, next,
		     ep);
		ivl_section_reset(&s->rg, (uint32_t)id, (uint32_t)ep);
	}
	c->epoch = (uint32_t)ep;
	s->peers[id] = c;
	s->n_peers++;
	s->stats.joins++;
	c->next = s->clients;
	s->clients = c;

	/* The handshake, in the order QEMU's ivshmem device expects it. */
	enqueue(s, c, 0, NULL);
	enqueue(s, c, id, NULL);
	enqueue(s, c, -1, &s->shm_ref);
	for (uint32_t o = 0; o < s->rg.hdr.max_peers; o++) {
		struct client *p = s->peers[o];

		if (!p || p == c || p->dead)
			continue;
		for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++)
			enqueue(s, c, p->id, p->efd[vec]);
		for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++)
			enqueue(s, p, id, c->efd[vec]);
		ring_ctrl(s, p);
	}
	for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++)
		enqueue(s, c, id, c->efd[vec]);

	slog(s, IVL_LOG_INFO, "peer %d joined: pid %d uid %u gid %u, epoch %u (%u/%u peers)", id,
	     (int)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid, c->epoch, s->n_peers,
	     s->rg.hdr.max_peers);
	return;
err_free:
	c->fd = -1;
	client_free(c);
err_close:
	close(fd);
}

static void peer_leave(struct ivl_server *s, struct client *c)
{
	struct ivl_peer_entry *e = ivl_region_peer(&s->rg, (uint32_t)c->id);
	long ep;

	e->left_unix_ns = now_ns(CLOCK_REALTIME);
	ep = ivl_region_peer_set(&s->rg, (uint32_t)c->id, IVL_PEER_GONE, 0, 0, 0);
	/* The section is NOT wiped here: a section belongs to its id and no
	 * other peer can use it, so reclaiming it early gains nothing, while
	 * the remotes may still be draining what the peer published before it
	 * left (its last data and EOF). peer_join() resets it whole before the
	 * id is handed out again; the GONE epoch already tells the remotes to
	 * stop trusting it once they have read what is there. */
	s->peers[c->id] = NULL;
	s->n_peers--;
	s->stats.leaves++;
	for (uint32_t o = 0; o < s->rg.hdr.max_peers; o++) {
		struct client *p = s->peers[o];

		if (!p || p->dead)
			continue;
		enqueue(s, p, c->id, NULL);
		ring_ctrl(s, p);
	}
	slog(s, c->dead_quiet ? IVL_LOG_INFO : IVL_LOG_WARN,
	     "peer %d left (pid %d): %s; GONE at epoch %ld (%u/%u peers)", c->id, (int)c->pid,
	     c->dead_why, ep, s->n_peers, s->rg.hdr.max_peers);
}

/*
 * A named or hugetlbfs region file whose size someone changed (a client
 * holds a read-write fd; a local user may own the file): put the size back
 * before anyone else touches the lost pages, and the header with it, from
 * our private copy (the pages beyond the new end read as zeros, which every
 * reader validates). A client's region guard may have restored the size
 * first (its SIGBUS handler), so any size change we did not make counts.
 */
static void check_region(struct ivl_server *s, int changed)
{
	uint64_t faults = ivl__guard_faults(s->base);
	struct stat st;

	if (s->sealed || s->shm_fd < 0 || fstat(s->shm_fd, &st) < 0)
		return;
	if (!changed && (uint64_t)st.st_size >= s->cfg.size && faults == s->guard_faults)
		return;
	s->guard_faults = faults;
	if ((uint64_t)st.st_size < s->cfg.size) {
		if (ftruncate(s->shm_fd, (off_t)s->cfg.size) < 0) {
			slog(s, IVL_LOG_ERROR, "region %s shrunk to %lld bytes; cannot restore it: %s",
			     s->file_path ? s->file_path : s->kind, (long long)st.st_size,
			     strerror(errno));
			return;
		}
		s->own_truncs++;
	}
	s->shrinks++;
	s->stats.shrinks++;
	if (memcmp(s->base, &s->rg.hdr, sizeof(s->rg.hdr)))
		memcpy(s->base, &s->rg.hdr, sizeof(s->rg.hdr));
	slog(s, IVL_LOG_ERROR,
	     "region %s: its size was changed (now %lld bytes) by a client or a local user; "
	     "size %" PRIu64 " restored, lost contents read as zeros (%" PRIu64 " time(s))",
	     s->file_path ? s->file_path : s->kind, (long long)st.st_size, s->cfg.size,
	     s->shrinks);
}

/* Drains the inotify fd; a size change someone else made is checked. */
static void inotify_event(struct ivl_server *s)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int events = 0;
	ssize_t n;

	while ((n = read(s->ino_fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;
		     p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
			events++;
	if (s->own_truncs >= events) {
		s->own_truncs -= events;
		return;
	}
	s->own_truncs = 0;
	check_region(s, 1);
}

/* Removes dead clients (announcing peers' leaves, which may kill others
 * whose queues overflow) and flushes pending output, until stable. */
static void reap(struct ivl_server *s)
{
	int again = 1;

	check_region(s, 0);
	while (again) {
		struct client **pp = &s->clients;

		again = 0;
		while (*pp) {
			struct client *c = *pp;

			if (!c->dead) {
				pp = &c->next;
				continue;
			}
			*pp = c->next;
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
			if (c->kind == EP_PEER)
				peer_leave(s, c);
			else if (!c->dead_quiet)
				slog(s, IVL_LOG_WARN, "status client pid %d: %s", (int)c->pid,
				     c->dead_why);
			client_free(c);
		}
		for (struct client *c = s->clients; c; c = c->next) {
			if (c->kind == EP_PEER && c->q_len && !c->out_armed)
				flush_peer(s, c);
			if (c->dead)
				again = 1;
		}
	}
}

/* ---------------------------------------------------------------- status */

/*
 * The status protocol. A status client connects; the daemon sends one text
 * reply, "ivlinkd-status 1\n" then one record per line ("daemon", "socket",
 * "region", "stats", "client" ..., "end"), the first byte carrying a
 * read-only fd of the region, and closes. Readers skip lines they do not
 * know, so a line added later (as "stats" was) breaks no older ivlinkctl.
 *
 * A client asks for more with the name it binds its own socket to before
 * connecting, which ivlinkd learns from accept() together with the
 * connection: the abstract name "\0" STATUS_REQ_PREFIX "REQUEST/anything"
 * (ivlinkctl adds its pid and a counter, so that two clients never collide).
 * The one request is "reset-stats": the "stats" counters are reset before
 * the reply is built, and the reply carries a "reset-stats ok" line after the
 * header. Carried with the connection, a request is never late and costs no
 * wait: ivlinkd need not read from status clients (it never did), and an
 * older ivlinkctl, which binds no name, is served exactly as before. An
 * older ivlinkd ignores the name: its reply has no "stats" line, which tells
 * the new client that it cannot reset. Only clients that pass the
 * allow-list get this far, as for the status itself.
 */
#define STATUS_REQ_PREFIX "ivlink-status-req/"

/* The request a new status client's bound name carries: 1 for
 * "reset-stats", 0 for none (or one we do not know, which is ignored). */
static int status_request(const struct sockaddr_un *a, socklen_t alen)
{
	static const char want[] = STATUS_REQ_PREFIX "reset-stats/";
	size_t off = offsetof(struct sockaddr_un, sun_path);

	return alen >= off + 1 + sizeof(want) - 1 && a->sun_path[0] == '\0' &&
	       memcmp(a->sun_path + 1, want, sizeof(want) - 1) == 0;
}

static void stats_reset(struct ivl_server *s, const struct ucred *cr)
{
	uint64_t resets = s->stats.resets + 1;

	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.resets = resets;
	s->stats.since_real_ns = now_ns(CLOCK_REALTIME);
	slog(s, IVL_LOG_INFO, "statistics reset by pid %d uid %u", (int)cr->pid, (unsigned)cr->uid);
}

static int sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return 0;
		}
		char *nb = realloc(*buf, *cap * 2 + (size_t)n);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = *cap * 2 + (size_t)n;
	}
}

/* Copies a path for the one-line-per-record status format. */
static void line_safe(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++)
		dst[i] = (src[i] == '\n' || src[i] == '\r') ? '?' : src[i];
	dst[i] = '\0';
}

static int build_status(struct ivl_server *s, struct client *sc, int reset_done)
{
	size_t cap = 1024, len = 0;
	char *b = malloc(cap);
	uint64_t mono = now_ns(CLOCK_MONOTONIC);
	char path[PATH_MAX];
	int rc = 0;

	if (!b)
		return -ENOMEM;
	b[0] = '\0';
	rc |= sb_printf(&b, &len, &cap, "ivlinkd-status 1\n");
	if (reset_done)
		rc |= sb_printf(&b, &len, &cap, "reset-stats ok\n");
	rc |=
	    sb_printf(&b, &len, &cap,
		      "daemon pid=%d version=" IVL_VERSION " gen=%" PRIu64 " uptime_s=%" PRIu64
		      " peers=%u max_peers=%u vectors=%u queue_limit=%u refused_acl=%" PRIu64
		      " refused_full=%" PRIu64 " refused_status=%" PRIu64 "\n",
		      (int)getpid(), s->rg.hdr.daemon_gen, (mono - s->start_mono_ns) / 1000000000u,
		      s->n_peers, s->rg.hdr.max_peers, s->rg.hdr.n_vectors, s->queue_limit,
		      s->refused_acl, s->refused_full, s->refused_status);
	line_safe(path, sizeof(path), s->socket_path);
	rc |= sb_printf(&b, &len, &cap, "socket %s\n", path);
	line_safe(path, sizeof(path), s->file_path ? s->file_path : "-");
	rc |= sb_printf(&b, &len, &cap,
			"region kind=%s size=%" PRIu64 " reattached=%d sealed=%d shrinks=%" PRIu64
			" file=%s\n",
			s->kind, s->rg.hdr.region_size, s->reattached, s->sealed, s->shrinks, path);
	rc |= sb_printf(&b, &len, &cap,
			"stats since_unix=%" PRIu64 " resets=%" PRIu64 " joins=%" PRIu64
			" leaves=%" PRIu64 " refused_acl=%" PRIu64 " refused_full=%" PRIu64
			" refused_status=%" PRIu64 " queue_kills=%" PRIu64 " shrinks=%" PRIu64 "\n",
			s->stats.since_real_ns / 1000000000u, s->stats.resets, s->stats.joins,
			s->stats.leaves, s->stats.refused_acl, s->stats.refused_full,
			s->stats.refused_status, s->stats.queue_kills, s->stats.shrinks);
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct client *c = s->peers[id];

		if (!c || c->dead)
			continue;
		rc |= sb_printf(&b, &len, &cap,
				"client id=%d pid=%d uid=%u gid=%u epoch=%u since_unix=%" PRIu64
				" age_s=%" PRIu64 " vectors=%u queued=%u\n",
				c->id, (int)c->pid, (unsigned)c->uid, (unsigned)c->gid, c->epoch,
				c->since_real_ns / 1000000000u,
				(mono - c->since_mono_ns) / 1000000000u, s->rg.hdr.n_vectors,
				c->q_len);
	}
	rc |= sb_printf(&b, &len, &cap, "end\n");
	if (rc) {
		free(b);
		return -ENOMEM;
	}
	sc->sbuf = b;
	sc->slen = len;
	/* A read-only open of the region, so that ivlinkctl can map it but
	 * cannot write it even by mistake. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->shm_fd);
	sc->sfd = open(path, O_RDONLY | O_CLOEXEC);
	if (sc->sfd < 0)
		slog(s, IVL_LOG_WARN, "cannot reopen the region read-only for a status client: %s",
		     strerror(errno));
	return 0;
}

static void status_accept(struct ivl_server *s, int fd, const struct sockaddr_un *a, socklen_t alen)
{
	struct ucred cr;
	struct client *c;
	int reset = 0;

	if (get_cred(s, fd, &cr) < 0)
		goto err_close;
	if (!allowed(s, &cr)) {
		s->stats.refused_status++;
		refused(s, &s->refused_status, &cr, "status client", "not in the allow-list");
		goto err_close;
	}
	c = client_new(EP_STATUS, fd, &cr);
	if (!c)
		goto err_close;
	if (status_request(a, alen)) {
		stats_reset(s, &cr);
		reset = 1;
	}
	if (build_status(s, c, reset) < 0 || ep_add(s, fd, 0, c) < 0) {
		slog(s, IVL_LOG_ERROR, "cannot serve status client pid %d", (int)cr.pid);
		c->fd = -1;
		client_free(c);
		goto err_close;
	}
	c->next = s->clients;
	s->clients = c;
	slog(s, IVL_LOG_DEBUG, "status client pid %d uid %u", (int)cr.pid, (unsigned)cr.uid);
	flush_status(s, c);
	return;
err_close:
	close(fd);
}

/* ------------------------------------------------------------------ loop */

static void do_accept(struct ivl_server *s, int lfd, int status)
{
	for (;;) {
		struct sockaddr_un a;
		socklen_t alen = sizeof(a);
		int fd = accept4(lfd, (struct sockaddr *)&a, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
				slog(s, IVL_LOG_ERROR,
				     "out of file descriptors; refusing a client");
				close(s->spare_fd);
				fd = accept(lfd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				return;
			}
			slog(s, IVL_LOG_ERROR, "accept: %s", strerror(errno));
			return;
		}
		if (status)
			status_accept(s, fd, &a, alen);
		else
			peer_join(s, fd);
	}
}

static void peer_event(struct client *c, uint32_t events)
{
	char buf[64];
	ssize_t n;

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* Read even on a hang-up, to tell garbage from a plain close. */
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			mark_dead(c, 0, "sent %zd bytes on the server-to-client protocol", n);
		else if (n == 0 || (events & (EPOLLRDHUP | EPOLLHUP)))
			mark_dead(c, 1, "disconnected");
		else if (errno != EAGAIN && errno != EINTR)
			mark_dead(c, 1, "recv: %s", strerror(errno));
		else if (events & EPOLLERR)
			mark_dead(c, 1, "socket error");
	}
}

int ivl_server_run(struct ivl_server *s, int quit_fd)
{
	struct epoll_event evs[64];
	int rc = 0, quit = 0;

	if (!s->started)
		return -EINVAL;
	rc = ep_add(s, quit_fd, EPOLLIN, &s->quit_tag);
	if (rc < 0)
		return rc;
	while (!quit) {
		int n = epoll_wait(s->epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			slog(s, IVL_LOG_ERROR, "epoll_wait: %s", strerror(-rc));
			break;
		}
		for (int i = 0; i < n; i++) {
			enum ep_kind *tag = evs[i].data.ptr;
			struct client *c = (struct client *)tag;

			switch (*tag) {
			case EP_QUIT:
				quit = 1;
				break;
			case EP_LISTEN:
				do_accept(s, s->listen_fd, 0);
				break;
			case EP_STATUS_LISTEN:
				do_accept(s, s->status_fd, 1);
				break;
			case EP_PEER:
				if (c->dead)
					break;
				if (evs[i].events & EPOLLOUT)
					flush_peer(s, c);
				peer_event(c, evs[i].events);
				break;
			case EP_INOTIFY:
				inotify_event(s);
				break;
			case EP_STATUS:
				if (c->dead)
					break;
				if (evs[i].events & (EPOLLHUP | EPOLLERR))
					mark_dead(c, 1, "hung up");
				else
					flush_status(s, c);
				break;
			}
		}
		reap(s);
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, quit_fd, NULL);
	return rc;
}

static void unlink_ours(const char *path, const struct stat *ours)
{
	struct stat st;

	/* Remove the socket only if it is still the one we bound: a second
	 * daemon may have replaced it after deciding ours was stale. */
	if (path && ours->st_ino && lstat(path, &st) == 0 && st.st_ino == ours->st_ino &&
	    st.st_dev == ours->st_dev)
		unlink(path);
}

void ivl_server_close(struct ivl_server *s)
{
	struct client *c, *next;

	if (!s)
		return;
	if (s->started) {
		/* Mark everyone GONE first, then ring, so that each peer sees
		 * the final table when it wakes. Sections are left as they are:
		 * they are reset when their id is handed out again. */
		for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
			struct ivl_peer_entry *e;

			c = s->peers[id];
			if (!c)
				continue;
			e = ivl_region_peer(&s->rg, id);
			e->left_unix_ns = now_ns(CLOCK_REALTIME);
			ivl_region_peer_set(&s->rg, id, IVL_PEER_GONE, 0, 0, 0);
		}
		for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++)
			if (s->peers[id])
				ring_ctrl(s, s->peers[id]);
		slog(s, IVL_LOG_INFO, "shutting down: %u peers marked GONE", s->n_peers);
	}
	for (c = s->clients; c; c = next) {
		next = c->next;
		client_free(c);
	}
	if (s->listen_fd >= 0) {
		unlink_ours(s->socket_path, &s->listen_st);
		close(s->listen_fd);
	}
	if (s->status_fd >= 0) {
		unlink_ours(s->status_path, &s->status_st);
		close(s->status_fd);
	}
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	if (s->ino_fd >= 0)
		close(s->ino_fd);
	unmap_region(s);
	if (s->shm_fd >= 0)
		close(s->shm_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->socket_path);
	free(s->status_path);
	free(s->shm_name);
	free(s->hugetlb_dir);
	free(s->region_name);
	free(s->file_path);
	free(s);
}
