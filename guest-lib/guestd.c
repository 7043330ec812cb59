/* SPDX-License-Identifier: MIT */
/*
 * ivlink-guestd: the guest agent. A VFIO group is opened by one process at a
 * time, so this one process per VM owns the ivshmem devices and lets every
 * local process use them (protocol: guestd_proto.h):
 *
 *  - at start it binds each device to vfio-pci and enables ALL its MSI-X
 *    vectors on eventfds of its own (this kernel cannot grow the enabled set
 *    later, design.md), so any vector can be re-pointed one at a time with
 *    VFIO_DEVICE_SET_IRQS start=v, count=1;
 *  - a client gets the device fd (it maps BAR0/BAR2 and rings doorbells
 *    itself, no agent on the data path), a control eventfd and an eventfd
 *    for a vector of its own. A vector with exactly one client is bound to
 *    that client's eventfd directly; when there are more clients than
 *    vectors, a vector is shared: it is bound back to the agent's eventfd
 *    and every interrupt is forwarded to each sharing client's eventfd;
 *  - vector 0 (the control vector the daemon rings on every join/leave, and
 *    remotes ring when they open a channel) stays with the agent and is
 *    forwarded to every client of the device;
 *  - when a client goes away, its vector is rebound and the channel halves
 *    its process left OFFERED are aborted (ABORT on its rings, a doorbell to
 *    the remote), so a remote blocked on them gets -ECONNRESET instead of
 *    waiting forever: a crashed process must not hang the other VM.
 *
 * Shape: a server object (init/run/close) and a thin main(), one poll()
 * loop, no threads. Logs go to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "guestd_proto.h"
#include "ivshmem_dev.h"

#define MAX_CLIENTS 256

_Static_assert(IVL__GUESTD_LIST_MAX >= IVL__MAX_DEVICES, "a list reply holds every device");

struct gdev {
	struct ivl__vfio_dev vd;
	struct ivl_region rg;
	uint32_t self;
	uint32_t n_irqs;
	int efd[IVL_VECTORS_LIMIT];   /* the agent's own eventfd per vector */
	int bound[IVL_VECTORS_LIMIT]; /* eventfd the vector points at now */
	uint32_t users[IVL_VECTORS_LIMIT];
};

struct gclient {
	int fd;
	pid_t pid;
	int ready; /* hello answered */
	struct gdev *dev;
	uint32_t vector;
	int ctrl_efd;
	int vec_efd;
};

struct guestd {
	const char *sock_path;
	struct ivl__log log;
	int lsock;
	int sig_fd;
	struct gdev devs[IVL__MAX_DEVICES];
	int n_devs;
	struct gclient clients[MAX_CLIENTS];
	int n_clients;
};

static int verbose;

static void log_stderr(void *ctx, enum ivl_log_level level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	if (level == IVL_LOG_DEBUG && !verbose)
		return;
	fprintf(stderr, "ivlink-guestd: %s: %s\n", names[level], msg);
}

static void efd_signal(int fd)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is saturated, a wake-up is pending anyway. */
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static int efd_drain(int fd)
{
	uint64_t cnt;

	return read(fd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt);
}

/* ---------------------------------------------------------------- vectors */

/* Points vector v at the one client that has it, or back at the agent. */
static void rebind(struct guestd *g, struct gdev *d, uint32_t v)
{
	int want = d->efd[v];
	int rc;

	if (v != IVL_CTRL_VECTOR && d->users[v] == 1) {
		for (int i = 0; i < g->n_clients; i++)
			if (g->clients[i].ready && g->clients[i].dev == d &&
			    g->clients[i].vector == v)
				want = g->clients[i].vec_efd;
	}
	if (want == d->bound[v])
		return;
	rc = ivl__vfio_set_irqs(d->vd.device, v, 1, &want);
	if (rc < 0) {
		/* The vector keeps its old target; with the agent's eventfd
		 * the clients still get forwarded wake-ups. */
		ivl__logf(&g->log, IVL_LOG_ERROR, "%s: re-pointing vector %u: %s", d->vd.bdf, v,
			  strerror(-rc));
		return;
	}
	d->bound[v] = want;
	ivl__logf(&g->log, IVL_LOG_DEBUG, "%s: vector %u -> %s", d->vd.bdf, v,
		  want == d->efd[v] ? "agent (forwarding)" : "client eventfd");
}

static uint32_t pick_vector(struct gdev *d)
{
	uint32_t best = IVL_CTRL_VECTOR;

	for (uint32_t v = 1; v < d->n_irqs; v++)
		if (best == IVL_CTRL_VECTOR || d->users[v] < d->users[best])
			best = v;
	return best;
}

/* An interrupt on the agent's eventfd of vector v: forward it. */
static void forward(struct guestd *g, struct gdev *d, uint32_t v)
{
	if (!efd_drain(d->efd[v]))
		return;
	for (int i = 0; i < g->n_clients; i++) {
		struct gclient *c = &g->clients[i];

		if (!c->ready || c->dev != d)
			continue;
		if (v == IVL_CTRL_VECTOR)
			efd_signal(c->ctrl_efd);
		else if (c->vector == v)
			efd_signal(c->vec_efd);
	}
}

/* ---------------------------------------------------------------- devices */

static int open_devices(struct guestd *g, const char *target)
{
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	struct ivl__dev_sel sel;
	int n, rc;

	rc = ivl__dev_sel_parse(target, &sel);
	if (rc < 0) {
		ivl__logf(&g->log, IVL_LOG_ERROR, "bad device selector '%s'", target);
		return rc;
	}
	n = ivl__pci_list(bdfs, IVL__MAX_DEVICES);
	for (int i = 0; i < n; i++) {
		struct gdev *d = &g->devs[g->n_devs];

		if (!ivl__dev_sel_bdf_ok(&sel, bdfs[i]))
			continue;
		if (ivl__vfio_open(&d->vd, bdfs[i], &g->log) < 0)
			continue;
		if (!ivl__dev_sel_region_ok(&sel, d->vd.mem, d->vd.mem_size) ||
		    ivl_region_attach(&d->rg, d->vd.mem, d->vd.mem_size) < 0) {
			ivl__logf(&g->log, IVL_LOG_INFO, "%s: skipped (no ivlink region%s%s)",
				  bdfs[i], sel.name[0] ? " named " : "", sel.name);
			ivl__vfio_close(&d->vd);
			continue;
		}
		d->n_irqs = d->vd.n_irqs;
		d->self = ivl__reg_read(d->vd.regs, IVL__REG_IVPOSITION);
		for (uint32_t v = 0; v < IVL_VECTORS_LIMIT; v++)
			d->efd[v] = d->bound[v] = -1;
		for (uint32_t v = 0; v < d->n_irqs; v++) {
			d->efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (d->efd[v] < 0)
				return -errno;
			d->bound[v] = d->efd[v];
		}
		rc = ivl__vfio_set_irqs(d->vd.device, 0, d->n_irqs, d->efd);
		if (rc < 0) {
			ivl__logf(&g->log, IVL_LOG_ERROR, "%s: enabling MSI-X: %s", bdfs[i],
				  strerror(-rc));
			return rc;
		}
		ivl__logf(&g->log, IVL_LOG_INFO,
			  "%s: region '%.*s' %llu MiB, peer %u, %u MSI-X vectors enabled", bdfs[i],
			  (int)sizeof(d->rg.hdr.name), d->rg.hdr.name,
			  (unsigned long long)(d->vd.mem_size >> 20), d->self, d->n_irqs);
		g->n_devs++;
	}
	if (g->n_devs == 0) {
		ivl__logf(&g->log, IVL_LOG_ERROR, "no usable ivshmem device%s%s",
			  target[0] ? " " : "", target);
		return -ENODEV;
	}
	return 0;
}

static struct gdev *find_device(struct guestd *g, const char *target)
{
	struct ivl__dev_sel sel;

	if (ivl__dev_sel_parse(target, &sel) < 0)
		return NULL;
	for (int i = 0; i < g->n_devs; i++) {
		struct gdev *d = &g->devs[i];

		if (ivl__dev_sel_bdf_ok(&sel, d->vd.bdf) &&
		    ivl__dev_sel_region_ok(&sel, d->vd.mem, d->vd.mem_size))
			return d;
	}
	return NULL;
}

/*
 * Aborts the channel halves of a departed process: its rings get ABORT (the
 * remote's calls return -ECONNRESET) and CLOSED, the half is closed, and the
 * remote is rung on its channel vector and its control vector.
 */
static void reap_halves(struct guestd *g, struct gdev *d, pid_t pid)
{
	int n = 0;

	for (uint32_t s = 0; s < d->rg.hdr.chan_slots; s++) {
		struct ivl_chan_half *c = ivl_region_chan(&d->rg, d->self, s);
		uint32_t st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
		uint32_t rpeer, rslot, rvec = IVL_CTRL_VECTOR;
		struct ivl_chan_half *rc;

		if ((st != IVL_CHAN_OFFERED && st != IVL_CHAN_CLAIMED) ||
		    __atomic_load_n(&c->owner_pid, __ATOMIC_RELAXED) != (uint32_t)pid)
			continue;
		/* R: release so that a remote that sees the flags (acquire in
		 * ring.c) also sees everything the process published. */
		__atomic_fetch_or(&c->tx_prod.flags, IVL_RING_F_ABORT | IVL_RING_F_CLOSED,
				  __ATOMIC_RELEASE);
		__atomic_fetch_or(&c->rx_cons.flags, IVL_RING_F_ABORT | IVL_RING_F_CLOSED,
				  __ATOMIC_RELEASE);
		ivl_ctab_close(&d->rg, d->self, s);
		rpeer = __atomic_load_n(&c->remote_peer, __ATOMIC_RELAXED);
		rslot = __atomic_load_n(&c->remote_slot, __ATOMIC_RELAXED);
		if (rpeer >= d->rg.hdr.max_peers || rpeer == d->self)
			continue;
		rc = ivl_region_chan(&d->rg, rpeer, rslot);
		if (rc)
			rvec = __atomic_load_n(&rc->rx_vector, __ATOMIC_RELAXED);
		if (rvec < d->rg.hdr.n_vectors)
			ivl__reg_write(d->vd.regs, IVL__REG_DOORBELL, rpeer << 16 | rvec);
		ivl__reg_write(d->vd.regs, IVL__REG_DOORBELL, rpeer << 16 | IVL_CTRL_VECTOR);
		n++;
	}
	if (n) {
		ivl__logf(&g->log, IVL_LOG_INFO, "pid %d left %d open channel(s): aborted",
			  (int)pid, n);
		ivl_ctab_gc(&d->rg, d->self);
	}
}

/* ---------------------------------------------------------------- clients */

static void client_drop(struct guestd *g, int i)
{
	struct gclient c = g->clients[i];
	int others = 0;

	g->clients[i] = g->clients[--g->n_clients];
	if (c.ready) {
		c.dev->users[c.vector]--;
		rebind(g, c.dev, c.vector);
		/* Another connection of the same process to the same device
		 * may still use the halves; one to another device may not. */
		for (int j = 0; j < g->n_clients; j++)
			if (g->clients[j].ready && g->clients[j].pid == c.pid &&
			    g->clients[j].dev == c.dev)
				others = 1;
		if (!others)
			reap_halves(g, c.dev, c.pid);
		ivl__logf(&g->log, IVL_LOG_DEBUG, "client pid %d left (vector %u)", (int)c.pid,
			  c.vector);
		close(c.ctrl_efd);
		if (c.vec_efd != c.ctrl_efd)
			close(c.vec_efd);
	}
	close(c.fd);
}

static int send_reply(int fd, const struct ivl__guestd_reply *r, const int *fds, int nfd)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)r, .iov_len = sizeof(*r)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;

	if (nfd > 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfd);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(*r))
		return -errno;
	return 0;
}

/* A list request: describe every device served, then the client is done
 * (-ENOTCONN drops it quietly). */
static int client_list(struct guestd *g, struct gclient *c)
{
	struct ivl__guestd_list_reply r = {.magic = IVL__GUESTD_LIST_MAGIC,
					   .version = IVL__GUESTD_VERSION};

	for (int i = 0; i < g->n_devs && r.count < IVL__GUESTD_LIST_MAX; i++) {
		struct gdev *d = &g->devs[i];
		struct ivl__guestd_dev_desc *e = &r.dev[r.count++];

		snprintf(e->bdf, sizeof(e->bdf), "%s", d->vd.bdf);
		/* rg.hdr is the validated private copy of the header. */
		memcpy(e->name, d->rg.hdr.name, sizeof(e->name));
		e->name[sizeof(e->name) - 1] = '\0';
		e->size = d->vd.mem_size;
		e->max_peers = d->rg.hdr.max_peers;
		e->peer_id = d->self;
	}
	if (send(c->fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(r))
		return -errno;
	return -ENOTCONN;
}

/* The hello: pick the device and a vector, answer with the three fds.
 * Returns 0, or -errno when the client must be dropped. */
static int client_hello(struct guestd *g, struct gclient *c)
{
	union {
		struct ivl__guestd_hello h;
		struct ivl__guestd_list_req l;
	} u;
	struct ivl__guestd_hello h;
	struct ivl__guestd_reply r = {.magic = IVL__GUESTD_MAGIC, .version = IVL__GUESTD_VERSION};
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	ssize_t n = recv(c->fd, &u, sizeof(u), MSG_DONTWAIT);
	struct gdev *d;
	int fds[3], rc;

	if (n == 0)
		return -ENOTCONN;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == (ssize_t)sizeof(u.l) && u.l.magic == IVL__GUESTD_LIST_MAGIC &&
	    u.l.version == IVL__GUESTD_VERSION)
		return client_list(g, c);
	h = u.h;
	if (n != (ssize_t)sizeof(h) || h.magic != IVL__GUESTD_MAGIC ||
	    h.version != IVL__GUESTD_VERSION) {
		r.status = -EPROTO;
		send_reply(c->fd, &r, NULL, 0);
		return -EPROTO;
	}
	h.target[sizeof(h.target) - 1] = '\0';
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0)
		return -errno;
	d = find_device(g, h.target);
	if (!d) {
		r.status = -ENODEV;
		send_reply(c->fd, &r, NULL, 0);
		return -ENODEV;
	}
	c->pid = cr.pid;
	c->dev = d;
	c->vector = pick_vector(d);
	c->ctrl_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->vec_efd =
	    c->vector == IVL_CTRL_VECTOR ? c->ctrl_efd : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->ctrl_efd < 0 || c->vec_efd < 0) {
		rc = -errno;
		if (c->ctrl_efd >= 0)
			close(c->ctrl_efd);
		return rc;
	}
	c->ready = 1;
	d->users[c->vector]++;
	/* Bind (or un-bind, when it becomes shared) before the client can
	 * open a channel on it. */
	rebind(g, d, c->vector);
	r.vector = c->vector;
	r.n_vectors = d->n_irqs;
	r.shared = d->users[c->vector] > 1 || c->vector == IVL_CTRL_VECTOR;
	r.peer_id = d->self;
	snprintf(r.bdf, sizeof(r.bdf), "%s", d->vd.bdf);
	fds[0] = d->vd.device;
	fds[1] = c->ctrl_efd;
	fds[2] = c->vec_efd;
	rc = send_reply(c->fd, &r, fds, 3);
	if (rc < 0)
		return rc;
	ivl__logf(&g->log, IVL_LOG_INFO, "client pid %d: %s vector %u%s (%d clients)", (int)c->pid,
		  d->vd.bdf, c->vector, r.shared ? " (shared, forwarded)" : "", g->n_clients);
	return 0;
}

static void client_accept(struct guestd *g)
{
	int fd = accept4(g->lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (g->n_clients >= MAX_CLIENTS) {
		ivl__logf(&g->log, IVL_LOG_WARN, "too many clients (%d): refusing one",
			  MAX_CLIENTS);
		close(fd);
		return;
	}
	memset(&g->clients[g->n_clients], 0, sizeof(g->clients[0]));
	g->clients[g->n_clients].fd = fd;
	g->clients[g->n_clients].ctrl_efd = g->clients[g->n_clients].vec_efd = -1;
	g->n_clients++;
}

/* ---------------------------------------------------------------- server */

static int listen_on(struct guestd *g)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int s;

	if (strlen(g->sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, g->sock_path);
	strcpy(dir, g->sock_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	/* A live agent answers connect(); a stale socket file does not. */
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(s);
		ivl__logf(&g->log, IVL_LOG_ERROR, "another ivlink-guestd serves %s", g->sock_path);
		return -EADDRINUSE;
	}
	close(s);
	unlink(g->sock_path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0) {
		int rc = -errno;

		close(s);
		ivl__logf(&g->log, IVL_LOG_ERROR, "listen on %s: %s", g->sock_path, strerror(-rc));
		return rc;
	}
	chmod(g->sock_path, 0666);
	g->lsock = s;
	return 0;
}

static int guestd_init(struct guestd *g, const char *sock_path, const char *target)
{
	sigset_t ss;
	int rc;

	memset(g, 0, sizeof(*g));
	g->sock_path = sock_path;
	g->log.fn = log_stderr;
	g->lsock = g->sig_fd = -1;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	g->sig_fd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (g->sig_fd < 0)
		return -errno;
	rc = open_devices(g, target);
	if (rc < 0)
		return rc;
	return listen_on(g);
}

static int guestd_run(struct guestd *g)
{
	struct pollfd p[2 + IVL__MAX_DEVICES * IVL_VECTORS_LIMIT + MAX_CLIENTS];

	for (;;) {
		int np = 0, nc, rc;

		p[np++] = (struct pollfd){.fd = g->sig_fd, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = g->lsock, .events = POLLIN};
		for (int i = 0; i < g->n_devs; i++)
			for (uint32_t v = 0; v < g->devs[i].n_irqs; v++)
				p[np++] =
				    (struct pollfd){.fd = g->devs[i].efd[v], .events = POLLIN};
		nc = g->n_clients;
		for (int i = 0; i < nc; i++)
			p[np++] = (struct pollfd){.fd = g->clients[i].fd, .events = POLLIN};
		rc = poll(p, (nfds_t)np, -1);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents)
			return 0;
		np = 2;
		for (int i = 0; i < g->n_devs; i++)
			for (uint32_t v = 0; v < g->devs[i].n_irqs; v++, np++)
				if (p[np].revents & POLLIN)
					forward(g, &g->devs[i], v);
		/* Backwards: client_drop() moves the last client into i. */
		for (int i = nc - 1; i >= 0; i--) {
			short re = p[np + i].revents;

			if (!re)
				continue;
			if (!g->clients[i].ready && (re & POLLIN)) {
				rc = client_hello(g, &g->clients[i]);
				if (rc < 0) {
					if (rc != -ENOTCONN)
						ivl__logf(&g->log, IVL_LOG_WARN, "client: %s",
							  strerror(-rc));
					client_drop(g, i);
				}
				continue;
			}
			if (re & (POLLHUP | POLLERR | POLLIN)) {
				char b[64];
				ssize_t n = recv(g->clients[i].fd, b, sizeof(b), MSG_DONTWAIT);

				/* Clients send nothing after the hello: data is
				 * ignored, EOF is the client leaving. */
				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
					client_drop(g, i);
			}
		}
		if (p[1].revents & POLLIN)
			client_accept(g);
	}
}

static void guestd_close(struct guestd *g)
{
	while (g->n_clients > 0)
		client_drop(g, g->n_clients - 1);
	if (g->lsock >= 0) {
		close(g->lsock);
		unlink(g->sock_path);
	}
	for (int i = 0; i < g->n_devs; i++) {
		ivl__vfio_set_irqs(g->devs[i].vd.device, 0, 0, NULL);
		ivl__vfio_close(&g->devs[i].vd);
		for (uint32_t v = 0; v < g->devs[i].n_irqs; v++)
			close(g->devs[i].efd[v]);
	}
	if (g->sig_fd >= 0)
		close(g->sig_fd);
}

/* ---------------------------------------------------------------- main */

#ifndef IVL_VERSION
#define IVL_VERSION "0.0.0"
#endif

static const char usage_text[] =
    "NAME\n"
    "    ivlink-guestd - ivlink guest agent: shares a VM's ivshmem devices\n"
    "\n"
    "SYNOPSIS\n"
    "    ivlink-guestd [-b] [-v] [-S SOCKET] [-d DEVICE]\n"
    "    ivlink-guestd --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    In a guest, a VFIO group is opened by one process at a time, so one\n"
    "    agent per VM owns the ivshmem-doorbell devices and lets every local\n"
    "    process use them. At start it binds each device to vfio-pci and enables\n"
    "    all its MSI-X vectors. A client of its socket (libivlink's vfio: and\n"
    "    auto backends, when the socket exists) receives the VFIO device fd, a\n"
    "    control eventfd and an eventfd for an MSI-X vector of its own; with\n"
    "    more clients than vectors a vector is shared and forwarded. Vector 0\n"
    "    (join/leave and channel announcements) is forwarded to every client.\n"
    "    When a client exits, the channels it left open are aborted, so that\n"
    "    the other VM sees ECONNRESET instead of waiting.\n"
    "\n"
    "    It needs a virtual IOMMU with interrupt remapping (QEMU: -device\n"
    "    intel-iommu,intremap=on; guest: intel_iommu=on) and the vfio, vfio-pci\n"
    "    and vfio_iommu_type1 modules.\n"
    "\n"
    "OPTIONS\n"
    "    -S, --socket SOCKET   UNIX socket for local processes (default\n"
    "                          $" IVL_ENV_GUESTD ", else " IVL_GUESTD_SOCK_DEFAULT ")\n"
    "    -d, --device DEVICE   serve only this ivshmem device: a PCI address\n"
    "                          (0000:00:03.0) or name=REGION (default: every\n"
    "                          ivshmem device with an ivlink region)\n"
    "    -b, --background      go to the background once the socket is ready\n"
    "    -v, --verbose         debug logs\n"
    "    -h, --help            show this help and exit\n"
    "        --version         show the version and exit\n"
    "\n"
    "SIGNALS\n"
    "    SIGTERM, SIGINT   clean shutdown: clients are closed, the socket removed.\n"
    "\n"
    "ENVIRONMENT\n"
    "    " IVL_ENV_GUESTD "         the socket path (also read by libivlink; \"off\"\n"
    "                          makes the library open the device itself)\n"
    "\n"
    "FILES\n"
    "    " IVL_GUESTD_SOCK_DEFAULT "  default socket\n"
    "\n"
    "EXIT STATUS\n"
    "    0  clean shutdown (or --help, --version)\n"
    "    1  start-up or runtime failure (message on stderr)\n"
    "    2  invalid command line\n"
    "\n"
    "EXAMPLES\n"
    "    ivlink-guestd -b && ivlink-run redis-server\n"
    "\n"
    "SEE ALSO\n"
    "    ivlink-run(1), ivlinkd(8), ivlink(7)\n";

static void die_usage(const char *msg, const char *arg) __attribute__((noreturn));

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ivlink-guestd: %s%s%s\nTry 'ivlink-guestd --help' for more information.\n",
		msg, arg ? " " : "", arg ? arg : "");
	exit(2);
}

enum { OPT_VERSION = 256 };

static const struct option long_opts[] = {
    {"socket", required_argument, NULL, 'S'},
    {"device", required_argument, NULL, 'd'},
    {"background", no_argument, NULL, 'b'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	const char *sock = getenv(IVL_ENV_GUESTD), *target = "";
	struct guestd g;
	int opt, bg = 0, rc;

	if (!sock || !*sock || strcmp(sock, "off") == 0)
		sock = IVL_GUESTD_SOCK_DEFAULT;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":S:d:bvh", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'S':
			sock = optarg;
			break;
		case 'd':
			target = optarg;
			break;
		case 'b':
			bg = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case OPT_VERSION:
			printf("ivlink-guestd " IVL_VERSION "\n");
			return 0;
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
	if (optind < argc)
		die_usage("unexpected argument", argv[optind]);
	if (!*sock)
		die_usage("--socket: empty path", NULL);
	rc = guestd_init(&g, sock, target);
	if (rc < 0) {
		guestd_close(&g);
		fprintf(stderr, "ivlink-guestd: cannot start: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "ivlink-guestd: serving %d device(s) on %s\n", g.n_devs, sock);
	if (bg) {
		/* The socket exists before the parent returns, so a script can
		 * start the agent and use it on the next line. */
		pid_t pid = fork();

		if (pid < 0) {
			perror("ivlink-guestd: fork");
			guestd_close(&g);
			return 1;
		}
		if (pid > 0)
			_exit(0);
		setsid();
	}
	rc = guestd_run(&g);
	guestd_close(&g);
	if (rc < 0) {
		fprintf(stderr, "ivlink-guestd: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
