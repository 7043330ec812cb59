/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/vm: a raw ivshmem-server protocol client, the
 * way QEMU's ivshmem-doorbell device and contrib/ivshmem-client see the
 * server. It deliberately does not use libivlink's host backend: the vm
 * tests check the daemon against the protocol itself.
 *
 * Protocol (QEMU docs/specs/ivshmem-spec.rst): the server sends 8-byte
 * little-endian signed integers, some with one fd (SCM_RIGHTS): version 0;
 * the client's id; -1 with the shared-memory fd; then for each peer its id
 * once per vector with an eventfd, the client's own id last. Later, an id
 * with an fd is a vector of a joining peer and an id without one a peer
 * that left.
 */
#ifndef IVL_TESTS_VM_IVSHMEM_CLIENT_H
#define IVL_TESTS_VM_IVSHMEM_CLIENT_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define IVSHC_MAX_PEERS	  64
#define IVSHC_MAX_VECTORS 64

struct ivshc {
	int sock;
	int64_t id;
	int shm_fd;
	/* Eventfds per peer and vector; -1 where none. Writing peer p's
	 * vector v's fd rings it; own (id) fds become readable when rung. */
	int efd[IVSHC_MAX_PEERS][IVSHC_MAX_VECTORS];
	int n_efd[IVSHC_MAX_PEERS];
};

/* One message: returns 0 and sets *val, *fd (-1 when none); -ETIMEDOUT,
 * -ECONNRESET (server closed), -EPROTO or -errno. */
static inline int ivshc_recv(int sock, int timeout_ms, int64_t *val, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	unsigned char b[8];
	ssize_t n;
	int i, rc;

	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = b;
	iov.iov_len = sizeof(b);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = c.buf;
	msg.msg_controllen = sizeof(c.buf);
	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if (n != 8)
		return -EPROTO;
	*fd = -1;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	*val = 0;
	for (i = 7; i >= 0; i--)
		*val = (int64_t)((uint64_t)*val << 8 | b[i]);
	return 0;
}

static inline void ivshc_init(struct ivshc *c)
{
	int p, v;

	memset(c, 0, sizeof(*c));
	c->sock = -1;
	c->shm_fd = -1;
	c->id = -1;
	for (p = 0; p < IVSHC_MAX_PEERS; p++)
		for (v = 0; v < IVSHC_MAX_VECTORS; v++)
			c->efd[p][v] = -1;
}

/*
 * Handles one peer message after the handshake: a vector fd of peer val
 * (stored) or, without an fd, peer val leaving (its fds closed). Returns 1
 * for a join vector, 2 for a leave, or -EPROTO.
 */
static inline int ivshc_apply(struct ivshc *c, int64_t val, int fd)
{
	int v;

	if (val < 0 || val >= IVSHC_MAX_PEERS) {
		if (fd >= 0)
			close(fd);
		return -EPROTO;
	}
	if (fd >= 0) {
		if (c->n_efd[val] >= IVSHC_MAX_VECTORS) {
			close(fd);
			return -EPROTO;
		}
		c->efd[val][c->n_efd[val]++] = fd;
		return 1;
	}
	for (v = 0; v < c->n_efd[val]; v++) {
		close(c->efd[val][v]);
		c->efd[val][v] = -1;
	}
	c->n_efd[val] = 0;
	return 2;
}

/*
 * Connects and reads the handshake up to the shm fd. The eventfds follow;
 * how many depends on the vector count, which the caller reads from the
 * region header before calling ivshc_finish().
 */
static inline int ivshc_connect(struct ivshc *c, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t val;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->sock < 0)
		return -errno;
	if (connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	rc = ivshc_recv(c->sock, timeout_ms, &val, &fd);
	if (rc < 0)
		return rc;
	if (val != 0 || fd >= 0)
		return -EPROTO; /* protocol version 0, no fd */
	rc = ivshc_recv(c->sock, timeout_ms, &val, &fd);
	if (rc < 0)
		return rc;
	if (val < 0 || val >= IVSHC_MAX_PEERS || fd >= 0)
		return -EPROTO;
	c->id = val;
	rc = ivshc_recv(c->sock, timeout_ms, &val, &fd);
	if (rc < 0)
		return rc;
	if (val != -1 || fd < 0)
		return -EPROTO;
	c->shm_fd = fd;
	return 0;
}

/* Reads peer messages until this client's own n_vectors eventfds are in. */
static inline int ivshc_finish(struct ivshc *c, int n_vectors, int timeout_ms)
{
	int64_t val;
	int fd, rc;

	while (c->n_efd[c->id] < n_vectors) {
		rc = ivshc_recv(c->sock, timeout_ms, &val, &fd);
		if (rc < 0)
			return rc;
		if (fd < 0)
			return -EPROTO; /* no leaves during the handshake */
		rc = ivshc_apply(c, val, fd);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static inline void ivshc_close(struct ivshc *c)
{
	int p, v;

	for (p = 0; p < IVSHC_MAX_PEERS; p++)
		for (v = 0; v < c->n_efd[p]; v++)
			close(c->efd[p][v]);
	if (c->shm_fd >= 0)
		close(c->shm_fd);
	if (c->sock >= 0)
		close(c->sock);
	ivshc_init(c);
}

#endif /* IVL_TESTS_VM_IVSHMEM_CLIENT_H */
