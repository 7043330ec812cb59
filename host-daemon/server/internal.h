/* SPDX-License-Identifier: MIT */
/*
 * Private header of host-daemon/server/: ivlinkd's server object, one
 * component per file (util, lifecycle, region, sockets, output, peers,
 * status, loop): region provisioning, the ivshmem-server protocol, the peer
 * table and the status socket. server.h is the contract; this header holds
 * the object's inside and the calls between its files (ivl__srv_*).
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
 * (ivl__srv_reap()), which is also where leaves are announced.
 */
#ifndef IVLINK_SERVER_INTERNAL_H
#define IVLINK_SERVER_INTERNAL_H

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
#include "os.h" /* transport/: ivl__now_ns(), ivl__realtime_ns() */
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
	int sealed;	  /* a memfd (normal or huge pages): size sealed */
	uint64_t shrinks; /* times a client shrank the region file */
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
	int ino_fd;	/* inotify on an unsealed region file: size changes, -1: none */
	int own_truncs; /* IN_MODIFY events our own ftruncate() will cause */

	struct client *peers[IVL_PEERS_LIMIT];
	struct client *clients;
	unsigned n_peers;
	uint64_t start_mono_ns;
	int started;
};

static inline int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* util.c */
void ivl__srv_log(const struct ivl_server *s, enum ivl_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *ivl__srv_dup_or_null(const char *str, int *err);
void ivl__srv_efd_unref(struct efd_ref *r);
struct efd_ref *ivl__srv_efd_new(void);

/* region.c */
int ivl__srv_open_region(struct ivl_server *s);
void ivl__srv_adopt_region(struct ivl_server *s);
void ivl__srv_unmap_region(struct ivl_server *s);

/* sockets.c */
int ivl__srv_ep_add(struct ivl_server *s, int fd, uint32_t events, void *tag);

/* output.c: queues flushed when the socket is writable, never blocking */
void ivl__srv_mark_dead(struct client *c, int quiet, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ivl__srv_enqueue(struct ivl_server *s, struct client *c, int64_t val, struct efd_ref *fd);
void ivl__srv_flush_peer(struct ivl_server *s, struct client *c);
void ivl__srv_flush_status(struct ivl_server *s, struct client *c);
void ivl__srv_ring_ctrl(struct ivl_server *s, struct client *c);

/* peers.c */
void ivl__srv_refused(struct ivl_server *s, uint64_t *counter, const struct ucred *cr,
		      const char *what, const char *why);
int ivl__srv_allowed(const struct ivl_server *s, const struct ucred *cr);
int ivl__srv_get_cred(struct ivl_server *s, int fd, struct ucred *cr);
struct client *ivl__srv_client_new(enum ep_kind kind, int fd, const struct ucred *cr);
void ivl__srv_client_free(struct client *c);
void ivl__srv_peer_join(struct ivl_server *s, int fd);
void ivl__srv_inotify_event(struct ivl_server *s);
void ivl__srv_reap(struct ivl_server *s);

/* status.c */
void ivl__srv_status_accept(struct ivl_server *s, int fd, const struct sockaddr_un *a,
			    socklen_t alen);

#endif /* IVLINK_SERVER_INTERNAL_H */
