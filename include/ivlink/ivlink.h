/* SPDX-License-Identifier: MIT */
/*
 * libivlink: the native API.
 *
 * An endpoint is one peer of an ivlink region: on the host a process
 * connected to ivlinkd, in a guest a process using the ivshmem device. A
 * channel is a pair of SPSC rings between two peers, opened by name from
 * both sides (like a rendezvous), used like a connected socket: stream mode
 * (a byte stream) or message mode (records delivered whole).
 *
 * Conventions (as in liburing and libuv):
 *  - Every call returns >= 0 on success and -errno on failure. None sets
 *    errno. Nothing prints: diagnostics go to the log callback.
 *  - Timeouts are in nanoseconds; < 0 means forever, 0 means "do not wait".
 *  - Errors any data call may return besides those listed with it:
 *      -ECONNRESET  the remote peer died, was reset, or published corrupt
 *                   ring state after it left (its section was reclaimed);
 *      -EPROTO      the remote peer, still alive, published impossible ring
 *                   state (it is buggy or hostile); the channel is unusable;
 *      -EINVAL      bad arguments.
 *
 * Thread safety (as liburcu documents its calls):
 *
 *   call                         may run concurrently with
 *   ---------------------------  -------------------------------------------
 *   ivl_endpoint_open/close      nothing on the same endpoint (close last)
 *   ivl_endpoint_id/fd/peers/    anything, including each other
 *   peer/process
 *   ivl_channel_open             anything on the endpoint, other channels
 *   ivl_channel_close            nothing on the same channel
 *   send side: ivl_send, _sendv, the receive side of the same channel, and
 *   _reserve, _commit, _flush,   anything on other channels; one thread at
 *   ivl_channel_shutdown(WR)     a time per side (a socket's usual rule)
 *   receive side: ivl_recv,      the send side of the same channel
 *   _recvv, _peek, _release
 *   ivl_channel_stats, _poll     anything (statistics may be a little stale)
 *
 * Waiting: a blocking call spins for the endpoint's spin_ns, then advertises
 * that it sleeps (the producer rings a doorbell only then) and sleeps on the
 * channel's doorbell vector and the endpoint's control vector, in slices of
 * at most IVL_BLOCK_SLICE_NS. Several channels, and several threads, may
 * share one vector: no wake-up is lost to another thread draining the
 * vector's eventfd (see guest-lib/endpoint.c for the mechanism).
 *
 * Peer death: a channel records the remote peer's epoch (peer table, layout.h)
 * when it is matched. Once the daemon marks the remote GONE, or a new
 * incarnation takes its id, calls on the channel return -ECONNRESET (data the
 * remote published before it left is still delivered first while its section
 * has not been reused). The daemon rings every peer's control vector on a
 * leave, so even a blocked call notices at once; the block slice bounds the
 * delay if that doorbell is lost. ivl_send()/ivl_recv() look at the peer
 * table only when the ring is full or empty (their fast path is the ring's
 * own): as with TCP, a send may still succeed while a remote that just died
 * has room left in its ring; the first send that finds the ring full, and
 * every later send, returns -ECONNRESET.
 */
#ifndef IVLINK_IVLINK_H
#define IVLINK_IVLINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <ivlink/layout.h>
#include <ivlink/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define IVL_API __attribute__((visibility("default")))
#else
#define IVL_API
#endif

/* Log levels, in the order of syslog's priorities. The daemon's private
 * server.h declares the same type; the guard lets both be included. */
#ifndef IVL_LOG_LEVEL_DECLARED
#define IVL_LOG_LEVEL_DECLARED
enum ivl_log_level {
	IVL_LOG_ERROR = 0,
	IVL_LOG_WARN = 1,
	IVL_LOG_INFO = 2,
	IVL_LOG_DEBUG = 3,
};
typedef void (*ivl_log_fn)(void *ctx, enum ivl_log_level level, const char *msg);
#endif

/* Default daemon socket, and the environment variables the library reads. */
#define IVL_ENDPOINT_DEFAULT "/run/ivlink/ivlinkd.sock"
#define IVL_ENV_ENDPOINT     "IVLINK_ENDPOINT"
#define IVL_ENV_SPIN_NS	     "IVLINK_SPIN_NS"
/* Host: the daemon sockets ivl_regions() lists, separated by commas. */
#define IVL_ENV_ENDPOINTS "IVLINK_ENDPOINTS"

#define IVL_CHANNEL_RING_DEFAULT (1u << 20)

/* Default spin budget before blocking, overridable per endpoint. Chosen near
 * the cost of one wake-up on the reference machines (design.md: eventfd
 * round trip 59-74 us), so spinning never costs more than sleeping would. */
#define IVL_SPIN_NS_DEFAULT 20000

/* Longest single sleep: a lost peer is noticed within this, even if nobody
 * rings its doorbell (e.g. a killed VM). */
#define IVL_BLOCK_SLICE_NS 50000000LL

/* One contiguous piece of ring data (zero-copy calls); a wrapped range is
 * two spans. */
struct ivl_span {
	void *base;
	size_t len;
};

/*
 * The version of the library actually loaded, IVL_VERSION_NUMBER of its
 * build: ((major << 16) | (minor << 8) | patch). Compare it with the
 * IVL_VERSION_NUMBER this program was compiled with (ivlink/version.h) to
 * find an older libivlink.so at run time. Never fails.
 */
IVL_API uint32_t ivl_version(void);

struct ivl_endpoint;
struct ivl_channel;

/* ---------------------------------------------------------------- endpoints */

struct ivl_endpoint_opts {
	/*
	 * Where to attach. NULL: $IVLINK_ENDPOINT (same syntax), else "auto".
	 *   "host:/path/to/ivlinkd.sock" or "/path/...": the host backend, a
	 *                   client of ivlinkd's socket;
	 *   "vfio:[SEL]"    in a guest: the ivshmem PCI device with MSI-X
	 *                   interrupts through VFIO (needs a vIOMMU); through
	 *                   ivlink-guestd when its socket exists ($IVLINK_GUESTD,
	 *                   default /run/ivlink/guestd.sock; "off" disables),
	 *                   else the process opens the device itself (then no
	 *                   other process of the VM can until it closes);
	 *   "poll:[SEL]"    in a guest: the device's sysfs BARs, no driver, no
	 *                   interrupts: blocking calls poll with a back-off
	 *                   (10 us doubling to 1 ms). Works without a vIOMMU;
	 *   "auto"          IVL_ENDPOINT_DEFAULT if that socket exists, else
	 *                   the agent, else VFIO, else (no IOMMU group) polling.
	 * SEL picks one of several ivshmem devices: "" the first whose region
	 * is valid, a PCI address ("0000:00:03.0"), or "name=<region name>".
	 */
	const char *uri;
	/* Written to this peer's entry in the region's peer table (diagnostics
	 * for ivlinkctl). NULL: empty on the host, the host name in a guest
	 * (all processes of a VM are one peer). Truncated to
	 * IVL_PEER_NAME_MAX - 1. */
	const char *name;
	/* Spin budget of blocking calls before they sleep. 0: $IVLINK_SPIN_NS,
	 * else IVL_SPIN_NS_DEFAULT; < 0: never spin; > 0: nanoseconds. */
	int64_t spin_ns;
	/* Handshake with the daemon: 0 means 5 s. */
	int64_t connect_timeout_ns;
	ivl_log_fn log; /* NULL: silent */
	void *log_ctx;
	uint64_t reserved[4]; /* zero */
};

/*
 * Attaches to a region as a new peer. opts may be NULL (all defaults); a
 * zero-initialised struct means defaults too.
 * Host backend: connects to ivlinkd, receives the region memfd and the
 * doorbell eventfds (ivshmem-server protocol), maps and validates the region,
 * and writes name, backend and pid into its peer-table entry.
 * Guest backends: map BAR2 of the ivshmem device, read the peer id from
 * IVPosition and ring peers through the Doorbell register. In a guest every
 * process of the VM shares the VM's peer id (and section), and closing an
 * endpoint does not make the peer leave.
 * Returns 0 and sets *ep, or:
 *   -EINVAL      bad opts or URI;
 *   -ENODEV      no (matching) ivshmem device, or VFIO impossible (no IOMMU
 *                group: use "poll:" or "auto");
 *   -EBUSY       another process of the VM owns the device: run
 *                ivlink-guestd;
 *   -ENOENT      "auto" found neither a daemon socket nor a device;
 *   -ENOENT, -ECONNREFUSED, -EACCES   the daemon socket (connect(2));
 *   -ETIMEDOUT   the daemon did not complete the handshake in time;
 *   -EPROTO      the daemon or the region broke the protocol or layout;
 *   -ECONNRESET  the daemon closed the connection (e.g. it is full);
 *   -ENOMEM, -EMFILE and other -errno of the system calls used.
 */
IVL_API int ivl_endpoint_open(struct ivl_endpoint **ep, const struct ivl_endpoint_opts *opts);

/*
 * Detaches: host backend: closes the daemon connection (the daemon marks
 * this peer GONE and tells the others); guest backends: releases the device
 * or the agent connection (the VM stays a peer). Unmaps the region, frees ep. Every channel of ep
 * must be closed first; those still open are closed here. NULL is a no-op.
 */
IVL_API void ivl_endpoint_close(struct ivl_endpoint *ep);

/* This peer's id in the region (0..max_peers-1). Never fails. */
IVL_API uint32_t ivl_endpoint_id(const struct ivl_endpoint *ep);

struct ivl_peer_info {
	uint32_t id;
	uint32_t state; /* enum ivl_peer_state */
	uint32_t epoch;
	uint32_t pid;	  /* daemon-observed (SO_PEERCRED) */
	uint32_t backend; /* enum ivl_peer_backend, peer-written */
	uint32_t self_pid;
	uint64_t joined_unix_ns;
	uint64_t left_unix_ns;
	char name[IVL_PEER_NAME_MAX]; /* peer-written, NUL terminated */
	int is_self;
};

/*
 * Lists live (UP) peers, this one included, from the region's peer table,
 * in id order. Fills at most n entries of out (out may be NULL when n is 0)
 * and returns the number of live peers, which may exceed n.
 */
IVL_API int ivl_endpoint_peers(struct ivl_endpoint *ep, struct ivl_peer_info *out, size_t n);

/*
 * Reads one peer-table entry whatever its state (FREE, UP, GONE).
 * Returns 0, -EINVAL (id out of range), -EPROTO (corrupt entry).
 */
IVL_API int ivl_endpoint_peer(struct ivl_endpoint *ep, uint32_t id, struct ivl_peer_info *out);

/*
 * One file descriptor for poll/epoll/select: it becomes readable when a
 * channel of ep may have progressed (data, space, EOF, a peer joined or
 * left). It is an epoll fd over the endpoint's doorbell eventfds and the
 * daemon socket: level triggered until ivl_endpoint_process() drains them.
 * Doorbells are only sent to a side that asked for one: a channel asks when
 * an IVL_DONTWAIT call returns -EAGAIN, or through ivl_channel_poll(). The fd
 * belongs to ep; do not close it.
 */
IVL_API int ivl_endpoint_fd(struct ivl_endpoint *ep);

/*
 * Non-blocking: handles pending daemon messages (peers joining and leaving)
 * and drains the doorbell eventfds, waking any thread blocked on them. Call
 * it when ivl_endpoint_fd() is readable, then retry the channels.
 * Returns the number of events handled (>= 0), or -ENOTCONN once when the
 * daemon connection was lost (existing channels keep working; new peers are
 * not seen any more).
 */
IVL_API int ivl_endpoint_process(struct ivl_endpoint *ep);

/* ---------------------------------------------------------------- regions */

/*
 * Several regions (since IVLINK_0.1). A process reaches each region it is
 * attached to through an endpoint of its own: on the host one per ivlinkd
 * socket ("host:/run/ivlink/tenant-a.sock", ...); in a guest one per
 * ivshmem device (one device per region), named by its PCI address
 * ("vfio:0000:00:10.0") or by the region's name ("vfio:name=tenant-a").
 * Peer ids are per region: the same VM has a different id in each.
 */
struct ivl_region_info {
	char uri[128];			/* for ivl_endpoint_opts.uri */
	char name[IVL_REGION_NAME_MAX]; /* region name ("" if unknown) */
	uint64_t size;			/* region bytes (0 if unknown) */
	uint32_t max_peers;		/* 0 if unknown */
	uint32_t self_id;		/* own peer id (IVPosition), or UINT32_MAX */
	uint64_t reserved[2];
};

/*
 * Lists the regions this process can attach to, without attaching. In a
 * guest: every ivshmem device in PCI address order, with the URI that opens
 * exactly it ("vfio:BDF" when it has an IOMMU group, else "poll:BDF"); the
 * name, size, peers and own id come from the agent (ivlink-guestd) when it
 * runs, else from the device's header through sysfs (no driver bound); a
 * device owned by another process directly is listed with name "". On the
 * host: the sockets listed in $IVLINK_ENDPOINTS (IVL_ENV_ENDPOINTS, comma
 * separated, as written, unchecked) when it is set, else the default
 * daemon socket if it exists (uri = its path, name ""), since daemons'
 * sockets can live anywhere. With IVLINK_ENDPOINTS set this is the list
 * in a guest too.
 * Fills at most n entries of out (out may be NULL when n is 0) and returns
 * the number of regions found (may exceed n), or -EINVAL. Thread safe.
 */
IVL_API int ivl_regions(struct ivl_region_info *out, size_t n);

/* The name of ep's region (from its validated header; "" if unnamed). Valid
 * until ivl_endpoint_close(). Never fails. Since IVLINK_0.1. */
IVL_API const char *ivl_endpoint_region(const struct ivl_endpoint *ep);

/* ---------------------------------------------------------------- channels */

struct ivl_channel_opts {
	uint32_t mode;	     /* enum ivl_ring_mode; 0: IVL_MODE_STREAM */
	uint32_t ring_size;  /* our tx ring, power of two >= 4096; 0: 1 MiB */
	uint32_t max_record; /* message mode; 0: ring_size / 4 */
	uint32_t reserved0;
	uint64_t reserved[4]; /* zero */
};

/*
 * Opens channel name (1..IVL_NAME_MAX-1 bytes) with remote_peer, which must
 * open the same name (and mode) towards us. Publishes our half in the
 * region's channel table, then waits up to timeout_ns for the remote's half
 * (woken by the remote's doorbell on our control vector, polling as a
 * fallback). Each side chooses its own ring size.
 * Returns 0 and sets *ch, or:
 *   -ETIMEDOUT   the remote did not open its side in time;
 *   -ECONNRESET  remote_peer is not UP (or left while we waited);
 *   -EEXIST      this peer already has an open channel of that name with
 *                remote_peer;
 *   -ENOSPC      no free slot in this peer's channel table;
 *   -ENOMEM      not enough room for the ring in this peer's section;
 *   -EINVAL      bad name, mode, sizes, or remote_peer == own id;
 *   -EPROTO      the remote's half is malformed;
 *   -EINTR.
 */
IVL_API int ivl_channel_open(struct ivl_endpoint *ep, const char *name, uint32_t remote_peer,
			     const struct ivl_channel_opts *opts, int64_t timeout_ns,
			     struct ivl_channel **ch);

/*
 * Closes: marks both rings CLOSED (the remote reads what is left, then EOF;
 * its sends fail with -EPIPE), releases our half and reclaims closed halves
 * the remote no longer reads. Returns 0; the channel is freed whatever
 * happens. NULL is a no-op.
 */
IVL_API int ivl_channel_close(struct ivl_channel *ch);

#define IVL_SHUT_RD   0
#define IVL_SHUT_WR   1
#define IVL_SHUT_RDWR 2

/*
 * IVL_SHUT_WR: end of stream after the data already sent (the remote's recv
 * returns 0 in stream mode, -EPIPE in message mode, once everything was
 * read); our later sends fail with -EPIPE. IVL_SHUT_RD: the remote's sends
 * fail with -EPIPE. Returns 0, -EINVAL.
 */
IVL_API int ivl_channel_shutdown(struct ivl_channel *ch, int how);

/*
 * Timeouts of blocking calls on ch, in ns (< 0: forever, the default;
 * 0: never block, as IVL_DONTWAIT). Never fails.
 */
IVL_API void ivl_channel_set_timeouts(struct ivl_channel *ch, int64_t send_ns, int64_t recv_ns);

/* Readiness bits of ivl_channel_poll(). */
#define IVL_POLLIN  0x1u /* recv would not return -EAGAIN */
#define IVL_POLLOUT 0x2u /* a send of up to one byte / an empty record fits */
#define IVL_POLLHUP 0x4u /* remote closed or shut down writing */
#define IVL_POLLERR 0x8u /* reset or protocol error */

/*
 * Non-blocking readiness of ch for events (IVL_POLLIN|IVL_POLLOUT). For each
 * requested event that is not ready, asks the remote for a doorbell when it
 * becomes ready, so that ivl_endpoint_fd() turns readable then. Returns the
 * ready bits (IVL_POLLHUP and IVL_POLLERR are always reported).
 */
IVL_API unsigned ivl_channel_poll(struct ivl_channel *ch, unsigned events);

/* Flags of the data calls. IVL_MORE (commit, release, send): defer the
 * doorbell and publication until a later call without IVL_MORE or
 * ivl_flush(). */
#define IVL_MORE     0x1u
#define IVL_DONTWAIT 0x100u /* never block: -EAGAIN instead */
#define IVL_WAITALL  0x200u /* stream recv: wait for len bytes (or EOF/error) */

/*
 * Sends len bytes. Stream mode: blocking calls send everything (looping as
 * the remote frees space) unless the timeout expires or an error occurs
 * after part was sent, in which case the count sent so far is returned;
 * IVL_DONTWAIT sends what fits now. Message mode: one record of len bytes
 * (0 allowed), all or nothing.
 * Returns the bytes sent, or:
 *   -EAGAIN     IVL_DONTWAIT and no room (nothing sent);
 *   -ETIMEDOUT  no room within the send timeout (nothing sent);
 *   -EPIPE      the remote closed or shut down reading, or we shut down
 *               writing;
 *   -EMSGSIZE   message mode, len > max_record;
 *   -ECONNRESET, -EPROTO, -EINTR.
 */
IVL_API ssize_t ivl_send(struct ivl_channel *ch, const void *buf, size_t len, unsigned flags);
IVL_API ssize_t ivl_sendv(struct ivl_channel *ch, const struct iovec *iov, int iovcnt,
			  unsigned flags);

/*
 * Receives. Stream mode: up to len bytes, as soon as at least one is there
 * (all len with IVL_WAITALL); 0 at end of stream. Message mode: one whole
 * record, returning its length (which may be 0).
 * Returns the bytes received, or:
 *   -EAGAIN     IVL_DONTWAIT and nothing to read;
 *   -ETIMEDOUT  nothing within the receive timeout;
 *   -EMSGSIZE   message mode, the record is longer than len (it stays);
 *   -EPIPE      message mode, end of stream;
 *   -ECONNRESET, -EPROTO, -EINTR.
 */
IVL_API ssize_t ivl_recv(struct ivl_channel *ch, void *buf, size_t len, unsigned flags);
IVL_API ssize_t ivl_recvv(struct ivl_channel *ch, const struct iovec *iov, int iovcnt,
			  unsigned flags);

/*
 * Zero copy, producer side: reserves room in the tx ring and describes it as
 * up to two spans (sp[1].len is 0 unless the room wraps). Stream: up to len
 * bytes (at least 1); message: exactly one record of len bytes. Blocks like
 * ivl_send() unless IVL_DONTWAIT. Returns the bytes reserved; errors as
 * ivl_send(), plus -EINVAL when a reservation is already outstanding.
 * ivl_commit() publishes len <= reserved bytes (flags: IVL_MORE);
 * ivl_flush() publishes what IVL_MORE deferred. Both return 0 or -errno.
 */
IVL_API ssize_t ivl_reserve(struct ivl_channel *ch, size_t len, struct ivl_span sp[2],
			    unsigned flags);
IVL_API int ivl_commit(struct ivl_channel *ch, size_t len, unsigned flags);
IVL_API int ivl_flush(struct ivl_channel *ch);

/*
 * Zero copy, consumer side: describes readable data (stream: all of it;
 * message: the next record) as up to two spans, blocking like ivl_recv()
 * unless IVL_DONTWAIT. Returns the byte count: 0 at end of stream (stream
 * mode), or the record length; -EPIPE at end of stream in message mode;
 * other errors as ivl_recv(). ivl_release() consumes len bytes of what was
 * peeked (message mode: the whole record; flags: IVL_MORE).
 */
IVL_API ssize_t ivl_peek(struct ivl_channel *ch, struct ivl_span sp[2], unsigned flags);
IVL_API int ivl_release(struct ivl_channel *ch, size_t len, unsigned flags);

struct ivl_channel_stats {
	uint64_t tx_bytes; /* payload bytes sent (message mode: incl. padding) */
	uint64_t tx_msgs;  /* send calls or records */
	uint64_t rx_bytes;
	uint64_t rx_msgs;
	uint64_t kicks_sent;	   /* doorbells rung to the remote */
	uint64_t kicks_suppressed; /* publishes that needed no doorbell */
	uint64_t sleeps;	   /* times a call of ours slept on a vector */
	uint32_t tx_ring_size;
	uint32_t rx_ring_size;
	uint32_t tx_fill; /* bytes in the tx ring not yet consumed */
	uint32_t rx_fill;
	uint32_t remote_peer;
	uint32_t remote_epoch;
	uint32_t slot;	    /* our half in our channel table */
	uint32_t rx_vector; /* our vector the remote rings */
	uint32_t mode;
	uint32_t reserved0;
};

/* Fills st. Returns 0 or -EINVAL. */
IVL_API int ivl_channel_stats(struct ivl_channel *ch, struct ivl_channel_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_IVLINK_H */
