/* SPDX-License-Identifier: MIT */
/*
 * Private header of host-daemon/: the ivlinkd server object.
 *
 * The server provisions one ivlink region, serves the ivshmem-server
 * protocol (docs/specs/ivshmem-spec.rst in QEMU) on a UNIX stream socket and
 * a small status protocol on a second socket, and maintains the region's
 * peer table. main.c is a thin wrapper around it (arguments, daemonizing,
 * signals, logging), so tests can run the same server in a thread:
 *
 *     ivl_server_config_default(&cfg);  cfg.socket_path = ...;
 *     ivl_server_init(&srv, &cfg);      allocates, copies the config
 *     ivl_server_start(srv);            region + sockets (fails cleanly)
 *     ivl_server_run(srv, quit_fd);     until quit_fd is readable
 *     ivl_server_close(srv);            peers GONE, sockets removed, free
 *
 * Every function returns >= 0 on success and -errno on failure, never sets
 * errno, never prints and never exits: messages go to cfg.log. One thread at
 * a time may call into a server object; ivl_server_run() is the only call
 * that blocks.
 */
#ifndef IVLINK_HOST_DAEMON_SERVER_H
#define IVLINK_HOST_DAEMON_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include <ivlink/ivlink.h> /* enum ivl_log_level, ivl_log_fn: one set of log levels */
#include <ivlink/region.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IVL_SERVER_ALLOW_MAX 32
/* Default per-client output queue bound, in protocol messages. It is raised
 * automatically so that one complete handshake always fits. */
#define IVL_SERVER_QUEUE_DEFAULT 4096u
/* The one default socket path: ivlinkd's, ivlinkctl's, the unit's and the
 * library's (IVL_ENDPOINT_DEFAULT in ivlink.h). */
#define IVL_SERVER_DEFAULT_SOCKET "/run/ivlink/ivlinkd.sock"
/* socket_gid when the sockets keep the daemon's group. */
#define IVL_SERVER_NO_GID ((gid_t)-1)

struct ivl_server_config {
	const char *socket_path; /* ivshmem protocol socket (required) */
	/* Status socket for ivlinkctl. NULL: "<socket_path>.ctl"; "none" or
	 * "": no status socket. */
	const char *status_path;
	/* Region backing: memfd when both are NULL; shm_name alone is
	 * /dev/shm/<shm_name>; hugetlb_dir alone is an unlinked file in that
	 * hugetlbfs mount; both is <hugetlb_dir>/<shm_name>. A named region
	 * survives the daemon and is re-attached on restart. */
	const char *shm_name;
	const char *hugetlb_dir;
	const char *region_name; /* header name; NULL: shm_name or "ivlink" */
	uint64_t size;		 /* power of two >= 1 MiB */
	uint32_t n_vectors;	 /* 1..IVL_VECTORS_LIMIT */
	uint32_t max_peers;	 /* 1..IVL_PEERS_LIMIT */
	uint32_t chan_slots;	 /* channel halves per section, 1..IVL_CHAN_SLOTS_LIMIT */
	uint32_t queue_limit;	 /* messages per client before it is dropped */
	mode_t socket_mode;	 /* both sockets; the shm file gets mode & 0666 */
	/* Group of both sockets, of a named region file ivlinkd creates and
	 * of the socket's directory if ivlinkd creates it (e.g. the group
	 * QEMU runs as under libvirt); IVL_SERVER_NO_GID: the daemon's. */
	gid_t socket_gid;
	uid_t allow_uid[IVL_SERVER_ALLOW_MAX];
	unsigned n_allow_uid;
	gid_t allow_gid[IVL_SERVER_ALLOW_MAX];
	unsigned n_allow_gid;
	int reclaim_stale; /* re-attach: mark stale UP entries GONE */
	int force_format;  /* named region with other geometry: wipe it */
	ivl_log_fn log;	   /* NULL: silent */
	void *log_ctx;
};

struct ivl_server;

/* Fills defaults: 64 MiB, 8 vectors, 8 peers, 64 channel slots, mode 0600,
 * the daemon's group, memfd. */
void ivl_server_config_default(struct ivl_server_config *cfg);

/*
 * Validates cfg and allocates a server (strings are copied). Returns 0,
 * -EINVAL (bad parameter, logged), -ENAMETOOLONG (a socket path does not fit
 * in sockaddr_un), -ENOMEM.
 */
int ivl_server_init(struct ivl_server **out, const struct ivl_server_config *cfg);

/*
 * Creates or re-attaches the region, then binds and listens on the
 * socket(s). A missing directory of a socket (only the last component, e.g.
 * /run/ivlink) is created, mode 0755, or 0750 with socket_gid as its group.
 * Returns 0, -EADDRINUSE (another daemon is live on a socket or
 * holds the named region), -EEXIST (named region of another geometry, or
 * not an ivlink region, and no force_format), or another -errno.
 */
int ivl_server_start(struct ivl_server *s);

/*
 * Serves clients until quit_fd becomes readable (a pipe, eventfd or
 * signalfd; it is not read). Returns 0 then, or -errno on a fatal error of
 * the event loop itself. May be called again after it returned 0.
 */
int ivl_server_run(struct ivl_server *s, int quit_fd);

/*
 * Marks every connected peer GONE, rings their control vectors, closes all
 * clients, removes the sockets, unmaps the region (a named one stays) and
 * frees s. Safe on a server that was never started. NULL is a no-op.
 */
void ivl_server_close(struct ivl_server *s);

/* For main.c and tests. */
int ivl_server_shm_fd(const struct ivl_server *s);
const struct ivl_region *ivl_server_region(const struct ivl_server *s);
unsigned ivl_server_n_peers(const struct ivl_server *s);

/* Parses "64M", "4096", "1G", "2KiB". Returns 0 or -EINVAL/-ERANGE. */
int ivl_parse_size(const char *str, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_HOST_DAEMON_SERVER_H */
