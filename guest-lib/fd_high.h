/* SPDX-License-Identifier: MIT */
/*
 * The library's own descriptors (the daemon socket, doorbell eventfds, the
 * region fd, epoll and wake fds, the shim's readiness socketpairs) live
 * high above the ones a program uses: event loops size their tables from
 * their own connection count (wrk -c1 made 13 slots and failed on every
 * fd above them) and select() takes fds below FD_SETSIZE only.
 */
#ifndef IVLINK_FD_HIGH_H
#define IVLINK_FD_HIGH_H

/* The lowest number the library's fds take: three quarters of the soft
 * RLIMIT_NOFILE, at most 1024 (a larger one would only grow the kernel's
 * fd table); 0 (no move) below a soft limit of 256. */
int ivl__fd_mark(void);

/* Moves fd (close-on-exec kept) to ivl__fd_mark() or above and returns the
 * new number; fd itself if it is negative, already high, or cannot move. */
int ivl__fd_high(int fd);

#endif /* IVLINK_FD_HIGH_H */
