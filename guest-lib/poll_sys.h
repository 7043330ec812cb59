/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/: the library's own poll.
 */
#ifndef IVLINK_GUEST_LIB_POLL_SYS_H
#define IVLINK_GUEST_LIB_POLL_SYS_H

#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * ppoll(2) for the library's own waits (timeout_ns < 0: none), as a system
 * call: inside the socket shim the libc names poll and ppoll are the shim's
 * wrappers (preload/wrap.c), whose housekeeping runs ivl_endpoint_process()
 * and so takes the endpoint's lock, which a backend call waiting here (a
 * daemon answer, under ivl__ep_kick_open) already holds. Returns as ppoll.
 */
static inline int ivl__poll(struct pollfd *p, unsigned n, int64_t timeout_ns)
{
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL,
			      .tv_nsec = timeout_ns % 1000000000LL};

	return (int)syscall(SYS_ppoll, p, (unsigned long)n, timeout_ns < 0 ? NULL : &ts, NULL,
			    (size_t)8);
}

#endif /* IVLINK_GUEST_LIB_POLL_SYS_H */
