/* SPDX-License-Identifier: MIT */
/* Helpers for the ivlinkd tests: see dtest.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "dtest.h"
#include "support.h"

const struct ts_daemon_opts dt_daemon_opts = {.log_level = "debug", .log_file = 1};

int dt_recv(int sock, int64_t *val, int *fd, int timeout_ms)
{
	unsigned char buf[8];
	size_t got = 0;

	*fd = -1;
	while (got < 8) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = buf + got, .iov_len = 8 - got};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b)};
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		struct cmsghdr *cm;
		ssize_t n;
		int rc = poll(&pfd, 1, timeout_ms);

		if (rc == 0)
			return -ETIMEDOUT;
		if (rc < 0)
			return -errno;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0)
			return -errno;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int nfd = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				int fds[4];

				memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)nfd);
				for (int i = 0; i < nfd; i++) {
					if (*fd >= 0)
						FAIL("more than one fd with a message");
					*fd = fds[i];
				}
			}
		}
		if (n == 0) {
			if (got)
				FAIL("EOF in the middle of a message");
			return 0;
		}
		got += (size_t)n;
	}
	{
		uint64_t le;

		memcpy(&le, buf, 8);
		*val = (int64_t)le; /* x86-64 and aarch64 are little endian */
	}
	return 1;
}

int dt_quiet(int sock, int ms)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};

	return poll(&pfd, 1, ms) == 0;
}

static void other_reset(struct dt_peer *p, unsigned id)
{
	for (unsigned v = 0; v < IVL_VECTORS_LIMIT; v++) {
		if (p->other[id][v] >= 0)
			close(p->other[id][v]);
		p->other[id][v] = -1;
	}
}

/* Handles one post-handshake message. */
static void peer_msg(struct dt_peer *p, int64_t val, int fd)
{
	unsigned v;

	if (val < 0 || val >= IVL_PEERS_LIMIT || val == p->id)
		FAIL("peer %d: unexpected message %lld (fd %d)", p->id, (long long)val, fd);
	if (fd < 0) {
		other_reset(p, (unsigned)val);
		return;
	}
	for (v = 0; v < p->n_vectors && p->other[val][v] >= 0; v++)
		;
	if (v == p->n_vectors)
		FAIL("peer %d: more than %u vectors for peer %lld", p->id, p->n_vectors,
		     (long long)val);
	p->other[val][v] = fd;
}

int dt_peer_join(struct dt_peer *p, const char *sock, uint32_t n_vectors)
{
	unsigned own = 0;
	int64_t v;
	int fd, rc;
	struct stat st;

	memset(p, 0, sizeof(*p));
	p->shm = -1;
	p->id = -1;
	p->n_vectors = n_vectors;
	for (unsigned i = 0; i < IVL_PEERS_LIMIT; i++)
		for (unsigned k = 0; k < IVL_VECTORS_LIMIT; k++)
			p->other[i][k] = -1;
	p->sock = ts_connect(sock);
	if (p->sock < 0)
		return p->sock;
	rc = dt_recv(p->sock, &v, &fd, 5000);
	if (rc <= 0)
		return rc == 0 ? -ECONNRESET : rc;
	if (v != 0 || fd >= 0)
		FAIL("first message %lld fd %d, want version 0 without fd", (long long)v, fd);
	rc = dt_recv(p->sock, &v, &fd, 5000);
	if (rc <= 0)
		return rc == 0 ? -ECONNRESET : rc;
	if (v < 0 || v >= IVL_PEERS_LIMIT || fd >= 0)
		FAIL("second message %lld fd %d, want an id without fd", (long long)v, fd);
	p->id = (int)v;
	rc = dt_recv(p->sock, &v, &fd, 5000);
	if (rc <= 0)
		return rc == 0 ? -ECONNRESET : rc;
	if (v != -1 || fd < 0)
		FAIL("third message %lld fd %d, want -1 with the region fd", (long long)v, fd);
	p->shm = fd;
	if (fstat(fd, &st) < 0)
		FAIL("fstat region: %s", strerror(errno));
	p->size = (uint64_t)st.st_size;
	p->base = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p->base == MAP_FAILED)
		FAIL("mmap region: %s", strerror(errno));
	rc = ivl_region_attach(&p->rg, p->base, p->size);
	if (rc < 0)
		FAIL("region header does not validate: %s", strerror(-rc));
	while (own < n_vectors) {
		rc = dt_recv(p->sock, &v, &fd, 5000);
		if (rc <= 0)
			return rc == 0 ? -ECONNRESET : rc;
		if (v == p->id) {
			if (fd < 0)
				FAIL("own id without fd during the handshake");
			p->own[own++] = fd;
			continue;
		}
		peer_msg(p, v, fd);
	}
	return 0;
}

int dt_peer_pump(struct dt_peer *p, int ms)
{
	int n = 0;

	for (;;) {
		int64_t v;
		int fd, rc = dt_recv(p->sock, &v, &fd, ms);

		if (rc == -ETIMEDOUT)
			return n;
		if (rc <= 0)
			FAIL("peer %d: daemon connection lost (%d)", p->id, rc);
		peer_msg(p, v, fd);
		n++;
	}
}

void dt_peer_close(struct dt_peer *p)
{
	for (unsigned v = 0; v < p->n_vectors; v++)
		if (p->own[v] > 0)
			close(p->own[v]);
	for (unsigned i = 0; i < IVL_PEERS_LIMIT; i++)
		other_reset(p, i);
	if (p->base && p->base != MAP_FAILED)
		munmap(p->base, p->size);
	if (p->shm >= 0)
		close(p->shm);
	if (p->sock >= 0)
		close(p->sock);
	memset(p, 0, sizeof(*p));
	p->sock = p->shm = -1;
}
