/* SPDX-License-Identifier: MIT */
/* Eventfd notifier: see include/ivlink/notify.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/notify.h>

int ivl_efd_kick(void *ctx)
{
	struct ivl_efd_notifier *e = ctx;
	uint64_t one = 1;

	for (;;) {
		if (write(e->kick_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		/* EAGAIN: the counter is saturated, so the other side is
		 * certainly awake. */
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int ivl_efd_block(void *ctx, int64_t timeout_ns)
{
	struct ivl_efd_notifier *e = ctx;
	struct pollfd pfd = {.fd = e->wait_fd, .events = POLLIN};
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL,
			      .tv_nsec = timeout_ns % 1000000000LL};
	uint64_t cnt;
	int n;

	n = ppoll(&pfd, 1, timeout_ns < 0 ? NULL : &ts, NULL);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	/* Drain so that the next sleep blocks; a kick that lands after this
	 * read is not lost, it leaves the counter non-zero for next time. */
	if (read(e->wait_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static int efd_check(void *ctx)
{
	struct ivl_efd_notifier *e = ctx;

	return e->check ? e->check(e->check_ctx) : 0;
}

void ivl_efd_notifier_bind(struct ivl_notifier *n, struct ivl_efd_notifier *e)
{
	n->kick = ivl_efd_kick;
	n->block = ivl_efd_block;
	n->check = efd_check;
	n->ctx = e;
}
