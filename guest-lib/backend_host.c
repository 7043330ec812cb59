/* SPDX-License-Identifier: MIT */
/*
 * Host backend: a client of ivlinkd, as QEMU's ivshmem-client is of
 * ivshmem-server. The protocol (QEMU docs/specs/ivshmem-spec.rst, design.md)
 * is one-way, server to client, each message an 8-byte little-endian signed
 * integer, some carrying one fd by SCM_RIGHTS:
 *
 *   0                      protocol version
 *   own id                 no fd
 *   -1 + shm fd            the region
 *   id + eventfd ...       every other peer's vectors, in vector order
 *   own id + eventfd ...   own vectors 0..n-1
 *   later: id + eventfd    that peer's next vector (a join)
 *          id, no fd       that peer left
 *
 * The protocol has no end-of-handshake marker: the vector count is read from
 * the region header, and the handshake ends with our own n-th vector.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "backend.h"
#include "fd_high.h"
#include "poll_sys.h"
#include "os.h"
#include "region_guard.h"

#define PROTOCOL_VERSION 0

/*
 * A peer's vector eventfd, shared by the peer table and every kick handle
 * of this process that rings it: a server with 10,000 connections from one
 * peer used to hold a private dup per connection (10,000 extra fds; at
 * RLIMIT_NOFILE a kick that cannot be opened is a lost wake-up), and now
 * holds none beyond the fds the daemon sent. The table holds a reference
 * while the peer's incarnation lasts; each handle holds one until it is
 * closed, so the fd is closed when both are gone: a handle outliving the
 * peer still writes to that peer's (now harmless) eventfd, never to a
 * reused fd number. References are taken under the endpoint's lock (like
 * kick_open, serialised with process(), which alone drops the table's),
 * and dropped from any thread.
 */
struct ivl__kick_ref {
	int fd;
	int refs;
};

/*
 * Fds of the region's other peers. The daemon sends every peer's vectors
 * to every member (the ivshmem protocol), max_peers x vectors fds, which
 * would make a process's fd count grow with the region's peers, whether it
 * talks to them or not. So only the first IVL_EAGER_PEERS peers' fds are
 * kept as they arrive (most processes talk to few peers, and a channel to
 * them needs no daemon); for any other peer the fds are closed at once
 * (fd -1, the peer still counted as up) and a vector is fetched from the
 * daemon's status socket ("vector/P/V" request, host-daemon/server/status.c)
 * when a channel first needs it, then kept until the peer leaves. A daemon
 * without a status socket at SOCKET.ctl, or one that does not know the
 * request, gets every fd kept, as before.
 */
#define IVL_EAGER_PEERS 8u

struct peer_fds {
	int fd[IVL_VECTORS_LIMIT]; /* -1: closed, fetch on demand (lazy) */
	struct ivl__kick_ref *ref[IVL_VECTORS_LIMIT];
	uint32_t count; /* vectors the daemon sent for this incarnation */
	int lazy;	/* its fds were not kept: fetched on demand */
};

struct ivl__backend {
	int sock;
	int lost; /* 1 once the daemon connection is gone */
	uint32_t self;
	uint32_t n_vectors;
	uint32_t max_peers;
	void *base;
	uint64_t size;
	int region_fd; /* kept for the region guard: restores a shrunk file */
	/* Partial message: the stream may deliver a message in pieces; the
	 * fd arrives with its first byte. */
	uint8_t buf[8];
	size_t have;
	int pending_fd;
	struct ivl__log log;
	char *status_path;   /* SOCKET.ctl, NULL: keep every peer's fds */
	uint32_t eager_left; /* peers whose fds may still be kept as sent */
	uint32_t fetch_seq;  /* makes each request's bound name unique */
	int lazy_ok;	     /* the daemon answered a vector request */
	struct peer_fds peers[IVL_PEERS_LIMIT];
};

static void kick_ref_put(struct ivl__kick_ref *r)
{
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(r->fd);
		free(r);
	}
}

static void close_fds(struct ivl__backend *be, struct peer_fds *p)
{
	for (uint32_t i = 0; i < p->count; i++) {
		if (p->ref[i])
			kick_ref_put(p->ref[i]);
		else if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->ref[i] = NULL;
		p->fd[i] = -1;
	}
	if (p->count && !p->lazy && be->status_path)
		be->eager_left++;
	p->count = 0;
	p->lazy = 0;
}

/*
 * Reads at most one message without blocking. Returns 1 with *val and *fd
 * (-1 if none) set, 0 if no complete message is available, -ENOTCONN on EOF
 * or another -errno.
 */
static int read_msg(struct ivl__backend *be, int64_t *val, int *fd)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cbuf;

	while (be->have < sizeof(be->buf)) {
		struct iovec iov = {.iov_base = be->buf + be->have,
				    .iov_len = sizeof(be->buf) - be->have};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf.b,
				    .msg_controllen = sizeof(cbuf.b)};
		ssize_t n = recvmsg(be->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		if (n == 0)
			return -ENOTCONN;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			size_t nfd;
			int fds[4];

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (nfd > 4)
				nfd = 4;
			memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
			for (size_t i = 0; i < nfd; i++) {
				/* One fd per message; more is a protocol
				 * violation we survive by closing extras. */
				if (be->pending_fd < 0)
					be->pending_fd = ivl__fd_high(fds[i]);
				else
					close(fds[i]);
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			ivl__logf(&be->log, IVL_LOG_WARN, "ivlinkd sent too many fds; dropped");
		be->have += (size_t)n;
	}
	/* The protocol is little endian; so are all supported hosts. */
	memcpy(val, be->buf, sizeof(*val));
	*fd = be->pending_fd;
	be->pending_fd = -1;
	be->have = 0;
	return 1;
}

/* read_msg(), waiting until deadline. Returns 1, -ETIMEDOUT or -errno. */
static int read_msg_wait(struct ivl__backend *be, int64_t *val, int *fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = be->sock, .events = POLLIN};
		int64_t left;
		int rc = read_msg(be, val, fd);

		if (rc != 0)
			return rc;
		left = deadline - ivl__now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		rc = ivl__poll(&p, 1, left);
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* Applies a post-handshake message about another peer. */
static int lazy_possible(struct ivl__backend *be);

/* The table keeps fd as p's vector v, with the table's reference, until
 * the peer leaves. Without memory for the reference, kick_open dups
 * instead. */
static void table_keep(struct peer_fds *p, uint32_t v, int fd)
{
	p->ref[v] = malloc(sizeof(*p->ref[v]));
	if (p->ref[v]) {
		p->ref[v]->fd = fd;
		p->ref[v]->refs = 1;
	}
	p->fd[v] = fd;
}

static int handle_peer_msg(struct ivl__backend *be, int64_t id, int fd)
{
	struct peer_fds *p;

	if (id < 0 || id >= (int64_t)be->max_peers) {
		ivl__logf(&be->log, IVL_LOG_WARN, "ivlinkd sent invalid peer id %lld",
			  (long long)id);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	p = &be->peers[id];
	if (fd < 0) {
		ivl__logf(&be->log, IVL_LOG_DEBUG, "peer %lld left", (long long)id);
		close_fds(be, p);
		return 1;
	}
	if ((uint32_t)id == be->self) {
		close(fd);
		return 0;
	}
	/* A complete set followed by more fds is a new incarnation whose
	 * "left" message we never got: start over rather than keep ringing
	 * the old one's eventfds. */
	if (p->count >= be->n_vectors)
		close_fds(be, p);
	if (p->count == 0 && be->status_path) {
		if (be->eager_left)
			be->eager_left--;
		else if (lazy_possible(be))
			p->lazy = 1;
	}
	if (p->lazy) {
		close(fd);
		p->ref[p->count] = NULL;
		p->fd[p->count++] = -1;
		return 1;
	}
	table_keep(p, p->count++, fd);
	if (p->count == be->n_vectors)
		ivl__logf(&be->log, IVL_LOG_DEBUG, "peer %lld joined", (long long)id);
	return 1;
}

static int map_region(struct ivl__backend *be, int fd)
{
	struct ivl_region rg;
	struct stat st;
	void *base;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)IVL_REGION_MIN_SIZE)
		return -EPROTO;
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	/* Another member may shrink the file (named and hugetlbfs regions
	 * cannot be sealed): the guard keeps that from killing us, from the
	 * first read of the header on. */
	rc = ivl__guard_add(base, (uint64_t)st.st_size, fd);
	if (rc < 0)
		ivl__logf(&be->log, IVL_LOG_WARN, "region guard: %s", strerror(-rc));
	rc = ivl_region_attach(&rg, base, (uint64_t)st.st_size);
	if (rc < 0) {
		char why[256];

		ivl__logf(&be->log, IVL_LOG_ERROR, "region rejected: %s",
			  ivl_region_strerror(rc, base, (uint64_t)st.st_size, why, sizeof(why)));
		ivl__guard_remove(base);
		munmap(base, (size_t)st.st_size);
		return rc;
	}
	be->region_fd = fd;
	be->base = base;
	be->size = (uint64_t)st.st_size;
	be->n_vectors = rg.hdr.n_vectors;
	be->max_peers = rg.hdr.max_peers;
	return 0;
}

static void host_detach(struct ivl__backend *be)
{
	if (!be)
		return;
	for (uint32_t i = 0; i < IVL_PEERS_LIMIT; i++)
		close_fds(be, &be->peers[i]);
	free(be->status_path);
	if (be->pending_fd >= 0)
		close(be->pending_fd);
	if (be->sock >= 0)
		close(be->sock);
	if (be->base) {
		ivl__guard_remove(be->base);
		munmap(be->base, (size_t)be->size);
	}
	if (be->region_fd >= 0)
		close(be->region_fd);
	free(be);
}

static int do_connect(const char *path, int64_t deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	s = ivl__fd_high(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (s < 0)
		return -errno;
	/* A UNIX stream connect completes at once unless the backlog is
	 * full (EAGAIN): then retry until the deadline. */
	while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc == -EINTR)
			continue;
		if (rc != -EAGAIN || ivl__now_ns() >= deadline) {
			close(s);
			return rc == -EAGAIN ? -ETIMEDOUT : rc;
		}
		usleep(1000);
	}
	return s;
}

static int host_attach(struct ivl__backend **out, const char *target, int64_t timeout_ns,
		       const struct ivl__log *log, struct ivl__attach_info *info)
{
	int64_t deadline = ivl__now_ns() + timeout_ns;
	struct ivl__backend *be;
	struct peer_fds *own;
	int64_t val;
	int fd, rc;

	if (!target || target[0] == '\0')
		return -EINVAL;
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->pending_fd = -1;
	be->region_fd = -1;
	be->log = *log;
	for (uint32_t i = 0; i < IVL_PEERS_LIMIT; i++)
		for (uint32_t v = 0; v < IVL_VECTORS_LIMIT; v++)
			be->peers[i].fd[v] = -1;
	be->eager_left = IVL_EAGER_PEERS;
	{
		const char *e = getenv("IVLINK_EAGER_PEERS");
		struct stat st;
		char *end;

		if (e && *e) {
			unsigned long v = strtoul(e, &end, 10);

			if (*end == '\0' && v <= IVL_PEERS_LIMIT)
				be->eager_left = (uint32_t)v;
			else
				ivl__logf(log, IVL_LOG_WARN,
					  "IVLINK_EAGER_PEERS=%s: not a number 0..%u, using %u", e,
					  IVL_PEERS_LIMIT, IVL_EAGER_PEERS);
		}
		/* Without the daemon's status socket next to its socket there
		 * is nobody to fetch from later: keep every fd. */
		if (asprintf(&be->status_path, "%s.ctl", target) < 0)
			be->status_path = NULL;
		else if (stat(be->status_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			free(be->status_path);
			be->status_path = NULL;
		}
	}
	be->sock = do_connect(target, deadline);
	if (be->sock < 0) {
		rc = be->sock;
		be->sock = -1;
		ivl__logf(log, IVL_LOG_ERROR, "connect %s: %s", target, strerror(-rc));
		goto fail;
	}

	rc = read_msg_wait(be, &val, &fd, deadline);
	if (rc < 0)
		goto fail_proto;
	if (fd >= 0)
		close(fd);
	if (val != PROTOCOL_VERSION) {
		ivl__logf(log, IVL_LOG_ERROR, "ivlinkd protocol version %lld, want %d",
			  (long long)val, PROTOCOL_VERSION);
		rc = -EPROTO;
		goto fail;
	}
	rc = read_msg_wait(be, &val, &fd, deadline);
	if (rc < 0)
		goto fail_proto;
	if (fd >= 0)
		close(fd);
	if (val < 0 || val >= IVL_PEERS_LIMIT) {
		/* ivshmem-server sends -1 with no fd to a client it refuses. */
		ivl__logf(log, IVL_LOG_ERROR, "ivlinkd refused us (id %lld)", (long long)val);
		rc = val == -1 ? -ECONNREFUSED : -EPROTO;
		goto fail;
	}
	be->self = (uint32_t)val;
	rc = read_msg_wait(be, &val, &fd, deadline);
	if (rc < 0)
		goto fail_proto;
	if (val != -1 || fd < 0) {
		if (fd >= 0)
			close(fd);
		rc = -EPROTO;
		goto fail;
	}
	rc = map_region(be, fd);
	if (rc < 0) {
		close(fd);
		goto fail;
	}
	if (be->self >= be->max_peers) {
		rc = -EPROTO;
		goto fail;
	}

	own = &be->peers[be->self];
	while (own->count < be->n_vectors) {
		rc = read_msg_wait(be, &val, &fd, deadline);
		if (rc < 0)
			goto fail_proto;
		if (val == (int64_t)be->self) {
			if (fd < 0) {
				rc = -EPROTO;
				goto fail;
			}
			/* Our own eventfds are read by several threads
			 * which must never block in read(). */
			if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
				rc = -errno;
				close(fd);
				goto fail;
			}
			own->fd[own->count++] = fd;
		} else {
			handle_peer_msg(be, val, fd);
		}
	}

	info->base = be->base;
	info->size = be->size;
	info->self_id = be->self;
	info->n_vectors = be->n_vectors;
	info->vector_fds = own->fd;
	info->ctl_fd = be->sock;
	info->backend_kind = IVL_BACKEND_HOST;
	*out = be;
	return 0;

fail_proto:
	if (rc == -ENOTCONN)
		rc = -ECONNRESET;
	ivl__logf(log, IVL_LOG_ERROR, "handshake with ivlinkd failed: %s", strerror(-rc));
fail:
	host_detach(be);
	return rc;
}

static int host_process(struct ivl__backend *be)
{
	int events = 0;

	if (be->lost)
		return 0;
	for (;;) {
		int64_t val;
		int fd, rc = read_msg(be, &val, &fd);

		if (rc == 0)
			return events;
		if (rc < 0) {
			be->lost = 1;
			ivl__logf(&be->log, IVL_LOG_ERROR, "ivlinkd connection lost: %s",
				  strerror(-rc));
			return -ENOTCONN;
		}
		events += handle_peer_msg(be, val, fd);
	}
}

/*
 * Fetches peer's vector eventfd from the daemon's status socket (see
 * peer_fds). Returns the fd (above the high mark) or -errno: -ENOENT the
 * daemon says the peer is not up, -ENOTCONN no daemon, -EPROTO an answer
 * we cannot read (an older ivlinkd: it sent its status instead).
 */
static int fetch_vector(struct ivl__backend *be, uint32_t peer, uint32_t vector)
{
	struct sockaddr_un me = {.sun_family = AF_UNIX}, sa = {.sun_family = AF_UNIX};
	char reply[256];
	size_t have = 0;
	int s, fd = -1, rc;
	int64_t deadline = ivl__now_ns() + 2000000000LL;

	if (strlen(be->status_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, be->status_path);
	s = ivl__fd_high(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (s < 0)
		return -errno;
	int n = snprintf(me.sun_path + 1, sizeof(me.sun_path) - 1,
			 "ivlink-status-req/vector/%u/%u/%ld-%u", peer, vector, (long)getpid(),
			 be->fetch_seq++);
	if (bind(s, (struct sockaddr *)&me,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0 ||
	    connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = errno == ENOENT || errno == ECONNREFUSED ? -ENOTCONN : -errno;
		close(s);
		return rc;
	}
	while (have + 1 < sizeof(reply) && !memmem(reply, have, "end\n", 4)) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = {reply + have, sizeof(reply) - 1 - have};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		int64_t left = deadline - ivl__now_ns();

		if (left <= 0 || ivl__poll(&pfd, 1, left) == 0) {
			rc = -ETIMEDOUT;
			goto out;
		}
		ssize_t r = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
			    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
				int got;

				memcpy(&got, CMSG_DATA(c), sizeof(got));
				if (fd >= 0)
					close(fd);
				fd = got;
			}
		have += (size_t)r;
	}
	reply[have] = '\0';
	char want[64];

	snprintf(want, sizeof(want), "ivlinkd-vector 1 id=%u vector=%u ", peer, vector);
	if (strncmp(reply, want, strlen(want)) == 0 && fd >= 0) {
		rc = ivl__fd_high(fd);
		fd = -1;
	} else if (strncmp(reply, "ivlinkd-vector 1 error=ENOENT", 29) == 0) {
		rc = -ENOENT;
	} else {
		ivl__logf(&be->log, IVL_LOG_WARN,
			  "ivlinkd did not give peer %u's vector %u (%.40s): keeping every fd "
			  "from now on",
			  peer, vector, reply);
		rc = -EPROTO;
	}
out:
	if (fd >= 0)
		close(fd);
	close(s);
	return rc;
}

/* Whether peers' fds may be dropped: once per endpoint, before the first
 * is, the daemon must answer a vector request (our own vector 0); an older
 * ivlinkd does not, and then every fd is kept. */
static int lazy_possible(struct ivl__backend *be)
{
	if (!be->lazy_ok && be->status_path) {
		int fd = fetch_vector(be, be->self, 0);

		if (fd >= 0) {
			close(fd);
			be->lazy_ok = 1;
		} else {
			ivl__logf(&be->log, IVL_LOG_DEBUG,
				  "ivlinkd gives no vector on request (%s): keeping every fd",
				  strerror(-fd));
			free(be->status_path);
			be->status_path = NULL;
		}
	}
	return be->lazy_ok;
}

/* A kick handle on eventfd fd (ref: the table's shared one, or NULL: fd
 * is the handle's own) for peer's vector. */
static int kick_fill(struct ivl__kick *k, struct ivl__kick_ref *ref, int fd, uint32_t peer,
		     uint32_t vector)
{
	k->ref = ref;
	k->fd = fd;
	k->doorbell = NULL;
	k->value = peer << 16 | vector;
	return 0;
}

static int host_kick_open(struct ivl__backend *be, uint32_t peer, uint32_t vector,
			  struct ivl__kick *k)
{
	struct peer_fds *p;
	int fd;

	if (peer >= be->max_peers || vector >= be->n_vectors)
		return -EINVAL;
	p = &be->peers[peer];
	if (p->count <= vector) {
		/* A peer whose join we have not read yet (one that just
		 * attached, e.g. to take a doorbell of its own: wake_to in
		 * layout.h): ask the daemon for this one fd, kept by the kick
		 * alone; the table fills in when the join message is read. */
		fd = be->status_path ? fetch_vector(be, peer, vector) : -ENOENT;
		if (fd < 0)
			return -EAGAIN;
		return kick_fill(k, NULL, fd, peer, vector);
	}
	if (p->fd[vector] < 0) {
		/* A lazy peer: its fds were closed as they came. */
		fd = be->status_path ? fetch_vector(be, peer, vector) : -EPROTO;
		if (fd == -EPROTO) {
			free(be->status_path); /* an older daemon: no more lazy peers */
			be->status_path = NULL;
		}
		if (fd < 0) {
			ivl__logf(&be->log, IVL_LOG_DEBUG, "peer %u vector %u: %s", peer, vector,
				  strerror(-fd));
			return fd == -ENOENT ? -EAGAIN : fd;
		}
		table_keep(p, vector, fd);
	}
	/* The peer's fds are closed when it leaves, while a channel may
	 * still kick until it is closed: a reference (above), or for our own
	 * vectors, which are not shared that way, a private duplicate. */
	if (p->ref[vector]) {
		__atomic_add_fetch(&p->ref[vector]->refs, 1, __ATOMIC_RELAXED);
		return kick_fill(k, p->ref[vector], p->ref[vector]->fd, peer, vector);
	}
	fd = fcntl(p->fd[vector], F_DUPFD_CLOEXEC, ivl__fd_mark());
	if (fd < 0)
		return -errno;
	return kick_fill(k, NULL, fd, peer, vector);
}

static int host_kick(const struct ivl__kick *k)
{
	uint64_t one = 1;

	for (;;) {
		if (write(k->fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		/* EAGAIN: the counter is saturated, so the peer is certainly
		 * going to wake up. */
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static void host_kick_close(struct ivl__kick *k)
{
	if (k->ref)
		kick_ref_put(k->ref);
	else if (k->fd >= 0)
		close(k->fd);
	k->ref = NULL;
	k->fd = -1;
}

const struct ivl__backend_ops ivl__backend_host = {
    .name = "host",
    .attach = host_attach,
    .process = host_process,
    .kick_open = host_kick_open,
    .kick = host_kick,
    .kick_close = host_kick_close,
    .detach = host_detach,
};
