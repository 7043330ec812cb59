/* SPDX-License-Identifier: MIT */
/*
 * Guest backends: the region is BAR2 of the ivshmem PCI device, the own peer
 * id is its IVPosition register, and a doorbell is a 32-bit write of
 * peer << 16 | vector to its Doorbell register (QEMU's ivshmem-spec).
 *
 * Three ways to get there, one set of ops after attach:
 *
 *   agent   ivlink-guestd owns the device (a VFIO group has one owner); we
 *           receive the VFIO device fd, map the BARs from it, and get an
 *           eventfd for an MSI-X vector of our own plus a control eventfd
 *           the agent writes on vector 0 (guestd_proto.h);
 *   direct  no agent: we bind vfio-pci, open container/group/device, set bus
 *           master and enable every MSI-X vector on eventfds of our own;
 *   poll    no IOMMU group (no vIOMMU, so no VFIO): sysfs resource0/2 with
 *           no driver bound, no interrupts at all. The vector eventfds never
 *           fire; the endpoint clamps its sleeps to a doubling back-off
 *           (poll_max_ns) and a timerfd makes ivl_endpoint_fd() readable
 *           every millisecond so epoll users re-check too. Kicks still ring
 *           the doorbell: the remote may well be using interrupts.
 *
 * The daemon is not reachable from a guest: peers joining and leaving are
 * learned from the region's peer table, which the daemon updates before it
 * rings everyone's control vector (vector 0), and which the channels re-read
 * between block slices anyway. process() only logs the changes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "fd_high.h"
#include "poll_sys.h"
#include "guestd_proto.h"
#include "ivshmem_dev.h"
#include "os.h"

#define POLL_MAX_NS   1000000LL /* polling back-off bound: 1 ms */
#define POLL_TIMER_NS 1000000LL /* ivl_endpoint_fd() tick in polling mode */

enum guest_kind { KIND_DIRECT, KIND_AGENT, KIND_POLL };

struct ivl__backend {
	enum guest_kind kind;
	struct ivl__log log;
	struct ivl__vfio_dev vdev;  /* direct */
	struct ivl__sysfs_dev sdev; /* poll */
	int agent_sock;		    /* agent: connection, kept open */
	int agent_dev;		    /* agent: the VFIO device fd */
	int lost;
	volatile uint32_t *regs;
	void *mem;
	uint64_t mem_size;
	uint32_t n_irqs; /* eventfds in vfd (>= n_vectors) */
	uint32_t n_vectors;
	int vfd[IVL_VECTORS_LIMIT];
	int timer_fd; /* poll: ivl_endpoint_fd() tick */
	struct ivl_region rg;
	uint32_t self;
	uint32_t seen_state[IVL_PEERS_LIMIT];
	uint32_t seen_epoch[IVL_PEERS_LIMIT];
	char mode[160];
};

const char *ivl__guestd_path(void)
{
	const char *p = getenv(IVL_ENV_GUESTD);

	if (p && (strcmp(p, "off") == 0 || strcmp(p, "none") == 0))
		return NULL;
	return p && *p ? p : IVL_GUESTD_SOCK_DEFAULT;
}

static struct ivl__backend *be_new(const struct ivl__log *log)
{
	struct ivl__backend *be = calloc(1, sizeof(*be));

	if (!be)
		return NULL;
	be->log = *log;
	be->agent_sock = be->agent_dev = be->timer_fd = -1;
	be->vdev.container = be->vdev.group = be->vdev.device = -1;
	for (uint32_t i = 0; i < IVL_VECTORS_LIMIT; i++)
		be->vfd[i] = -1;
	return be;
}

static void guest_detach(struct ivl__backend *be)
{
	if (!be)
		return;
	switch (be->kind) {
	case KIND_DIRECT:
		if (be->vdev.device >= 0)
			ivl__vfio_set_irqs(be->vdev.device, 0, 0, NULL);
		ivl__vfio_close(&be->vdev);
		break;
	case KIND_AGENT:
		ivl__vfio_unmap(be->regs, be->mem, be->mem_size);
		if (be->agent_dev >= 0)
			close(be->agent_dev);
		if (be->agent_sock >= 0)
			close(be->agent_sock);
		break;
	case KIND_POLL:
		ivl__sysfs_close(&be->sdev);
		break;
	}
	for (uint32_t i = 0; i < IVL_VECTORS_LIMIT; i++)
		if (be->vfd[i] >= 0)
			close(be->vfd[i]);
	if (be->timer_fd >= 0)
		close(be->timer_fd);
	free(be);
}

static int new_efd(int *fd)
{
	*fd = ivl__fd_high(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	return *fd < 0 ? -errno : 0;
}

/* Common tail of every attach: header, peer id, the info the endpoint needs. */
static int finish_attach(struct ivl__backend *be, uint64_t rx_vectors,
			 struct ivl__attach_info *info)
{
	int rc = ivl_region_attach(&be->rg, be->mem, be->mem_size);

	if (rc < 0) {
		char why[256];

		ivl__logf(&be->log, IVL_LOG_ERROR,
			  "BAR2 holds no valid ivlink region (%s): is ivlinkd the server?",
			  ivl_region_strerror(rc, be->mem, be->mem_size, why, sizeof(why)));
		return rc;
	}
	be->self = ivl__reg_read(be->regs, IVL__REG_IVPOSITION);
	if (be->self >= be->rg.hdr.max_peers) {
		ivl__logf(&be->log, IVL_LOG_ERROR, "IVPosition %u out of range (max %u peers)",
			  be->self, be->rg.hdr.max_peers);
		return -EPROTO;
	}
	be->n_vectors = be->rg.hdr.n_vectors;
	if (be->n_irqs < be->n_vectors) {
		ivl__logf(&be->log, IVL_LOG_ERROR,
			  "device has %u MSI-X vectors, the region %u: start QEMU with "
			  "vectors=%u",
			  be->n_irqs, be->n_vectors, be->n_vectors);
		return -EPROTO;
	}
	if (!rx_vectors)
		rx_vectors =
		    be->n_vectors > 1
			? ((be->n_vectors >= 64 ? ~0ULL : (1ULL << be->n_vectors) - 1) & ~1ULL)
			: 1ULL;
	info->base = be->mem;
	info->size = be->mem_size;
	info->self_id = be->self;
	info->n_vectors = be->n_vectors;
	info->vector_fds = be->vfd;
	info->rx_vectors = rx_vectors;
	info->mode = be->mode;
	return 0;
}

/* ---------------------------------------------------------------- direct */

static int attach_direct(struct ivl__backend *be, const struct ivl__dev_sel *sel,
			 struct ivl__attach_info *info)
{
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	int n = ivl__pci_list(bdfs, IVL__MAX_DEVICES), rc = -ENODEV, i;

	be->kind = KIND_DIRECT;
	for (i = 0; i < n; i++) {
		if (!ivl__dev_sel_bdf_ok(sel, bdfs[i]))
			continue;
		rc = ivl__vfio_open(&be->vdev, bdfs[i], &be->log);
		if (rc < 0)
			continue;
		if (ivl__dev_sel_region_ok(sel, be->vdev.mem, be->vdev.mem_size))
			break;
		ivl__vfio_close(&be->vdev);
		rc = -ENODEV;
	}
	if (i >= n) {
		if (n <= 0)
			ivl__logf(&be->log, IVL_LOG_ERROR, "no ivshmem device (1af4:1110)");
		else if (rc == -ENODEV)
			ivl__logf(&be->log, IVL_LOG_ERROR, "no ivshmem device matches '%s%s%s'",
				  sel->bdf, sel->name[0] ? "name=" : "", sel->name);
		return rc;
	}
	be->regs = be->vdev.regs;
	be->mem = be->vdev.mem;
	be->mem_size = be->vdev.mem_size;
	be->n_irqs = be->vdev.n_irqs;
	for (uint32_t v = 0; v < be->n_irqs; v++) {
		rc = new_efd(&be->vfd[v]);
		if (rc < 0)
			return rc;
	}
	/* All vectors at once: this kernel cannot grow the set later. */
	rc = ivl__vfio_set_irqs(be->vdev.device, 0, be->n_irqs, be->vfd);
	if (rc < 0) {
		ivl__logf(&be->log, IVL_LOG_ERROR, "%s: VFIO_DEVICE_SET_IRQS (MSI-X): %s",
			  be->vdev.bdf, strerror(-rc));
		return rc;
	}
	snprintf(be->mode, sizeof(be->mode), "vfio %s (MSI-X interrupts, %u vectors, device owned)",
		 be->vdev.bdf, be->n_irqs);
	info->ctl_fd = -1;
	info->backend_kind = IVL_BACKEND_VFIO;
	return finish_attach(be, 0, info);
}

/* ---------------------------------------------------------------- agent */

static int recv_reply(int s, struct ivl__guestd_reply *r, int fds[3], int64_t deadline)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = r, .iov_len = sizeof(*r)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf.b,
			    .msg_controllen = sizeof(cbuf.b)};
	struct pollfd p = {.fd = s, .events = POLLIN};
	int64_t left = deadline - ivl__now_ns();
	ssize_t n;
	int nfd = 0;

	if (left <= 0 || ivl__poll(&p, 1, left) <= 0)
		return -ETIMEDOUT;
	n = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (nfd > 3)
			nfd = 3;
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfd);
	}
	if (n != (ssize_t)sizeof(*r) || r->magic != IVL__GUESTD_MAGIC ||
	    r->version != IVL__GUESTD_VERSION || (r->status == 0 && nfd != 3)) {
		for (int i = 0; i < nfd; i++)
			close(fds[i]);
		return -EPROTO;
	}
	for (int i = 0; i < nfd; i++)
		fds[i] = ivl__fd_high(fds[i]);
	return nfd;
}

static int attach_agent(struct ivl__backend *be, const char *path, const char *target,
			int64_t timeout_ns, struct ivl__attach_info *info)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ivl__guestd_hello h = {.magic = IVL__GUESTD_MAGIC, .version = IVL__GUESTD_VERSION};
	struct ivl__guestd_reply r;
	int fds[3] = {-1, -1, -1};
	uint32_t n_irqs;
	int rc;

	be->kind = KIND_AGENT;
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(target) >= sizeof(h.target))
		return -EINVAL;
	strcpy(sa.sun_path, path);
	strcpy(h.target, target);
	be->agent_sock = ivl__fd_high(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
	if (be->agent_sock < 0)
		return -errno;
	if (connect(be->agent_sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		ivl__logf(&be->log, IVL_LOG_ERROR, "connect %s: %s", path, strerror(-rc));
		return rc;
	}
	if (send(be->agent_sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h)) {
		rc = -errno;
		ivl__logf(&be->log, IVL_LOG_ERROR, "send to %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = recv_reply(be->agent_sock, &r, fds, ivl__now_ns() + timeout_ns);
	if (rc < 0) {
		ivl__logf(&be->log, IVL_LOG_ERROR, "ivlink-guestd at %s: %s", path, strerror(-rc));
		return rc;
	}
	if (r.status < 0) {
		ivl__logf(&be->log, IVL_LOG_ERROR, "ivlink-guestd refused us: %s",
			  strerror(-r.status));
		return r.status;
	}
	be->agent_dev = fds[0];
	rc = ivl__vfio_map(be->agent_dev, &be->regs, &be->mem, &be->mem_size, &n_irqs);
	if (rc < 0 || r.n_vectors != n_irqs || r.vector >= n_irqs) {
		close(fds[1]);
		close(fds[2]);
		ivl__logf(&be->log, IVL_LOG_ERROR, "mapping the agent's device fd: %s",
			  strerror(rc < 0 ? -rc : EPROTO));
		return rc < 0 ? rc : -EPROTO;
	}
	be->n_irqs = n_irqs;
	/* Vector 0 is the agent's, forwarded to us; our own vector is ours;
	 * the others get private eventfds that never fire, so the endpoint
	 * can treat every vector alike. */
	be->vfd[0] = fds[1];
	if (r.vector == 0) {
		close(fds[2]);
	} else {
		be->vfd[r.vector] = fds[2];
	}
	for (uint32_t v = 1; v < n_irqs; v++) {
		if (be->vfd[v] < 0) {
			rc = new_efd(&be->vfd[v]);
			if (rc < 0)
				return rc;
		}
	}
	for (uint32_t v = 0; v < n_irqs; v++)
		fcntl(be->vfd[v], F_SETFL, fcntl(be->vfd[v], F_GETFL) | O_NONBLOCK);
	snprintf(be->mode, sizeof(be->mode),
		 "vfio %s via ivlink-guestd (MSI-X interrupts, vector %u%s)", r.bdf, r.vector,
		 r.shared ? ", shared: the agent forwards" : "");
	info->ctl_fd = be->agent_sock;
	info->backend_kind = IVL_BACKEND_VFIO;
	return finish_attach(be, 1ULL << r.vector, info);
}

/* ---------------------------------------------------------------- poll */

static int attach_poll(struct ivl__backend *be, const struct ivl__dev_sel *sel,
		       struct ivl__attach_info *info)
{
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	struct itimerspec its = {.it_interval = {0, POLL_TIMER_NS}, .it_value = {0, POLL_TIMER_NS}};
	int n = ivl__pci_list(bdfs, IVL__MAX_DEVICES), rc = -ENODEV, i;

	be->kind = KIND_POLL;
	for (i = 0; i < n; i++) {
		if (!ivl__dev_sel_bdf_ok(sel, bdfs[i]))
			continue;
		rc = ivl__sysfs_open(&be->sdev, bdfs[i], &be->log);
		if (rc < 0)
			continue;
		if (ivl__dev_sel_region_ok(sel, be->sdev.mem, be->sdev.mem_size))
			break;
		ivl__sysfs_close(&be->sdev);
		rc = -ENODEV;
	}
	if (i >= n) {
		if (n <= 0)
			ivl__logf(&be->log, IVL_LOG_ERROR, "no ivshmem device (1af4:1110)");
		return rc;
	}
	be->regs = be->sdev.regs;
	be->mem = be->sdev.mem;
	be->mem_size = be->sdev.mem_size;
	be->n_irqs = IVL_VECTORS_LIMIT; /* no MSI-X at all: any count is fine */
	snprintf(be->mode, sizeof(be->mode),
		 "poll %s (sysfs BARs, no interrupts: polling with back-off)", be->sdev.bdf);
	rc = finish_attach(be, 0, info);
	if (rc < 0)
		return rc;
	for (uint32_t v = 0; v < be->n_vectors; v++) {
		rc = new_efd(&be->vfd[v]);
		if (rc < 0)
			return rc;
	}
	be->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (be->timer_fd < 0 || timerfd_settime(be->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	info->ctl_fd = be->timer_fd;
	info->backend_kind = IVL_BACKEND_POLL;
	info->poll_max_ns = POLL_MAX_NS;
	return 0;
}

/* ---------------------------------------------------------------- attach */

static int agent_present(const char **path)
{
	struct stat st;

	*path = ivl__guestd_path();
	return *path && stat(*path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int done(struct ivl__backend *be, int rc, struct ivl__backend **out)
{
	if (rc < 0) {
		guest_detach(be);
		return rc;
	}
	for (uint32_t id = 0; id < be->rg.hdr.max_peers; id++) {
		struct ivl_peer_view pv;

		if (ivl_region_peer_view(&be->rg, id, &pv) == 0) {
			be->seen_state[id] = pv.state;
			be->seen_epoch[id] = pv.epoch;
		}
	}
	*out = be;
	return 0;
}

static int vfio_attach(struct ivl__backend **out, const char *target, int64_t timeout_ns,
		       const struct ivl__log *log, struct ivl__attach_info *info)
{
	struct ivl__backend *be;
	struct ivl__dev_sel sel;
	const char *path;
	int rc = ivl__dev_sel_parse(target, &sel);

	if (rc < 0)
		return rc;
	be = be_new(log);
	if (!be)
		return -ENOMEM;
	if (agent_present(&path))
		rc = attach_agent(be, path, target, timeout_ns, info);
	else
		rc = attach_direct(be, &sel, info);
	return done(be, rc, out);
}

static int poll_attach(struct ivl__backend **out, const char *target, int64_t timeout_ns,
		       const struct ivl__log *log, struct ivl__attach_info *info)
{
	struct ivl__backend *be;
	struct ivl__dev_sel sel;
	int rc = ivl__dev_sel_parse(target, &sel);

	if (rc < 0)
		return rc;
	be = be_new(log);
	if (!be)
		return -ENOMEM;
	return done(be, attach_poll(be, &sel, info), out);
}

/* "auto" in a guest: the agent, else the device through VFIO, else polling
 * when VFIO is impossible (no IOMMU group). A device that VFIO refuses for
 * another reason (busy, broken) is an error, not a reason to poll. */
static int auto_attach(struct ivl__backend **out, const char *target, int64_t timeout_ns,
		       const struct ivl__log *log, struct ivl__attach_info *info)
{
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	struct ivl__dev_sel sel;
	const char *path;
	int n, any_group = 0, rc = ivl__dev_sel_parse(target, &sel);

	if (rc < 0)
		return rc;
	if (agent_present(&path))
		return vfio_attach(out, target, timeout_ns, log, info);
	n = ivl__pci_list(bdfs, IVL__MAX_DEVICES);
	if (n <= 0) {
		ivl__logf(log, IVL_LOG_ERROR,
			  "no ivlinkd socket (" IVL_ENDPOINT_DEFAULT ", $" IVL_ENV_ENDPOINT
			  "), no ivlink-guestd and no ivshmem device");
		return -ENOENT;
	}
	for (int i = 0; i < n; i++)
		if (ivl__dev_sel_bdf_ok(&sel, bdfs[i]) && ivl__pci_has_iommu_group(bdfs[i]))
			any_group = 1;
	if (any_group)
		return vfio_attach(out, target, timeout_ns, log, info);
	ivl__logf(log, IVL_LOG_INFO, "no IOMMU group (no vIOMMU): polling mode");
	return poll_attach(out, target, timeout_ns, log, info);
}

/* ---------------------------------------------------------------- ops */

/* Logs peer-table changes; in polling mode also consumes the timer tick.
 * Serialised by the endpoint. */
static int guest_process(struct ivl__backend *be)
{
	int events = 0;

	if (be->timer_fd >= 0) {
		uint64_t ticks;

		if (read(be->timer_fd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
			events++;
	}
	if (be->kind == KIND_AGENT && !be->lost) {
		char c;
		ssize_t n = recv(be->agent_sock, &c, 1, MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* Our device fd, vector and mappings stay valid; only
			 * the forwarding of vector 0 and shared vectors stops,
			 * which the block slices' peer-table checks cover. */
			be->lost = 1;
			ivl__logf(&be->log, IVL_LOG_WARN,
				  "ivlink-guestd connection lost: join/leave wake-ups now "
				  "by polling only");
			return -ENOTCONN;
		}
	}
	for (uint32_t id = 0; id < be->rg.hdr.max_peers; id++) {
		struct ivl_peer_view pv;

		if (ivl_region_peer_view(&be->rg, id, &pv) < 0)
			continue;
		if (pv.state == be->seen_state[id] && pv.epoch == be->seen_epoch[id])
			continue;
		if (id != be->self)
			ivl__logf(&be->log, IVL_LOG_DEBUG, "peer %u %s (epoch %u)", id,
				  pv.state == IVL_PEER_UP ? "joined" : "left", pv.epoch);
		be->seen_state[id] = pv.state;
		be->seen_epoch[id] = pv.epoch;
		events++;
	}
	return events;
}

static int guest_kick_open(struct ivl__backend *be, uint32_t peer, uint32_t vector,
			   struct ivl__kick *k)
{
	if (peer >= be->rg.hdr.max_peers || vector >= be->n_vectors)
		return -EINVAL;
	k->fd = -1;
	k->doorbell = be->regs + IVL__REG_DOORBELL / 4;
	k->value = peer << 16 | vector;
	return 0;
}

/* One MMIO store: QEMU turns it into a write of the peer's eventfd. */
static int guest_kick(const struct ivl__kick *k)
{
	*k->doorbell = k->value;
	return 0;
}

static void guest_kick_close(struct ivl__kick *k)
{
	k->doorbell = NULL;
}

const struct ivl__backend_ops ivl__backend_vfio = {
    .name = "vfio",
    .attach = vfio_attach,
    .process = guest_process,
    .kick_open = guest_kick_open,
    .kick = guest_kick,
    .kick_close = guest_kick_close,
    .detach = guest_detach,
};

const struct ivl__backend_ops ivl__backend_poll = {
    .name = "poll",
    .attach = poll_attach,
    .process = guest_process,
    .kick_open = guest_kick_open,
    .kick = guest_kick,
    .kick_close = guest_kick_close,
    .detach = guest_detach,
};

const struct ivl__backend_ops ivl__backend_guest = {
    .name = "guest",
    .attach = auto_attach,
    .process = guest_process,
    .kick_open = guest_kick_open,
    .kick = guest_kick,
    .kick_close = guest_kick_close,
    .detach = guest_detach,
};
