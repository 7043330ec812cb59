/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/: the attach backend interface.
 *
 * A backend is how one endpoint reaches the region and the doorbells: the
 * host backend (backend_host.c) is a client of ivlinkd's socket; the guest
 * backends (backend_vfio.c) map BAR2 of the ivshmem device and ring its
 * Doorbell register, with MSI-X interrupts on eventfds (VFIO, directly or
 * through the guest agent) or by polling (sysfs BARs, no vIOMMU). The
 * endpoint and channel code (endpoint.c, channel.c) only use what is here:
 *
 *  - attach gives the mapped region, the own peer id and one pollable
 *    eventfd per own vector (0 = control, 1.. = channel wake-ups); the
 *    endpoint polls, reads and even writes those (to re-arm a waiter);
 *  - a kick handle names a (peer, vector) doorbell; opening it may need
 *    information the backend learns later (a host peer's eventfds arrive
 *    from the daemon), so kick_open may return -EAGAIN; kick itself is
 *    lock-free and must be cheap;
 *  - ctl_fd (may be -1) is polled by the endpoint, and process() called
 *    when it is readable;
 *  - rx_vectors says which own vectors this process may give its channels
 *    (in a guest, processes sharing the device through the agent each own
 *    one); poll_max_ns > 0 says that no vector ever fires (polling mode):
 *    blocking calls then sleep with a back-off up to that bound instead.
 */
#ifndef IVLINK_GUEST_LIB_BACKEND_H
#define IVLINK_GUEST_LIB_BACKEND_H

#include <stdint.h>

#include <ivlink/ivlink.h>

struct ivl__backend;

struct ivl__attach_info {
	void *base;	       /* mapping of the region */
	uint64_t size;	       /* bytes mapped */
	uint32_t self_id;      /* own peer id */
	uint32_t n_vectors;    /* own vectors (== region header's n_vectors) */
	const int *vector_fds; /* n_vectors eventfds, O_NONBLOCK, owned by be */
	int ctl_fd;	       /* pollable control fd, or -1 */
	uint32_t backend_kind; /* enum ivl_peer_backend */
	uint64_t rx_vectors;   /* bit v: own vector v may carry channel wake-ups */
	int64_t poll_max_ns;   /* > 0: polling mode, the back-off's bound */
	const char *mode;      /* for the log line: "vfio 0000:00:03.0 ..." */
};

/* A doorbell: host eventfd, or (later) a mapped Doorbell register. */
struct ivl__kick {
	int fd;			     /* eventfd to write, or -1 */
	volatile uint32_t *doorbell; /* MMIO register, or NULL */
	uint32_t value;		     /* peer_id << 16 | vector */
	struct ivl__kick_ref *ref;   /* backend's shared fd, or NULL */
};

struct ivl__log {
	ivl_log_fn fn;
	void *ctx;
};

struct ivl__backend_ops {
	const char *name;
	/*
	 * Attaches to the place named by target (the part of the URI after
	 * the scheme). Blocks at most timeout_ns. On success sets *be and
	 * fills info. Returns 0 or -errno (see ivl_endpoint_open()).
	 */
	int (*attach)(struct ivl__backend **be, const char *target, int64_t timeout_ns,
		      const struct ivl__log *log, struct ivl__attach_info *info);
	/* Handles pending control messages without blocking. Not thread
	 * safe: the endpoint serialises calls. Returns >= 0 events handled,
	 * -ENOTCONN once the control connection is lost, or -errno. */
	int (*process)(struct ivl__backend *be);
	/* Opens a kick handle for (peer, vector): 0, -EAGAIN (peer not known
	 * yet: process() and retry), -ENOENT (peer gone), -EINVAL. Serialised
	 * with process() by the endpoint. */
	int (*kick_open)(struct ivl__backend *be, uint32_t peer, uint32_t vector,
			 struct ivl__kick *k);
	/* Rings the doorbell. Thread safe, lock free. Returns 0 or -errno. */
	int (*kick)(const struct ivl__kick *k);
	void (*kick_close)(struct ivl__kick *k);
	/* Unmaps, closes everything, frees be. */
	void (*detach)(struct ivl__backend *be);
};

extern const struct ivl__backend_ops ivl__backend_host;
/* backend_vfio.c: "vfio:[SEL]" (agent when its socket exists, else the
 * device itself), "poll:[SEL]" (sysfs BARs), and the guest half of "auto"
 * (agent, else VFIO, else polling). SEL: "", a PCI address, "name=REGION". */
extern const struct ivl__backend_ops ivl__backend_vfio;
extern const struct ivl__backend_ops ivl__backend_poll;
extern const struct ivl__backend_ops ivl__backend_guest;

/* Agent socket path ($IVLINK_GUESTD or the default), or NULL when disabled
 * ("off"). */
const char *ivl__guestd_path(void);

/* Formats a message and passes it to the log callback, if any. */
void ivl__logf(const struct ivl__log *log, enum ivl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* IVLINK_GUEST_LIB_BACKEND_H */
