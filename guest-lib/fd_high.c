/* SPDX-License-Identifier: MIT */
/* High descriptors for the library's own fds: see fd_high.h. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fd_high.h"

int ivl__fd_mark(void)
{
	struct rlimit rl;
	rlim_t cur;

	/* Read every time: a program may raise its limit after we started
	 * (cheap: one system call, on a path that creates an fd anyway). */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	cur = rl.rlim_cur;
	if (cur < 256)
		return 0;
	if (cur == RLIM_INFINITY || cur >= 2048)
		return 1024;
	return (int)(cur / 4 * 3);
}

int ivl__fd_high(int fd)
{
	int mark = ivl__fd_mark(), nfd, flags;

	if (fd < 0 || fd >= mark)
		return fd;
	flags = fcntl(fd, F_GETFD);
	nfd = fcntl(fd, (flags >= 0 && (flags & FD_CLOEXEC)) ? F_DUPFD_CLOEXEC : F_DUPFD, mark);
	if (nfd < 0)
		return fd; /* no room up there (EMFILE, EINVAL): keep it low */
	close(fd);
	return nfd;
}
