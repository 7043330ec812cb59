/* SPDX-License-Identifier: MIT */
/*
 * The POSIX boundary of the socket shim: every exported symbol of
 * libivlink-preload.so (preload.map). Each looks the fd up (lock-free) and
 * passes anything that is not an active shimmed connection straight to the
 * real call; shim results (-errno) become -1 + errno only here.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <urcu/urcu-memb.h>

/*
 * Entry points that no header included here declares: glibc's fortified
 * variants (_FORTIFY_SOURCE turns read() into __read_chk() in the
 * program) and sendfile/sendfile64 (<sys/sendfile.h>, not included: its
 * off64_t variant has this signature on every 64-bit target).
 */
SHIM_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
SHIM_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
SHIM_API ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				struct sockaddr *from, socklen_t *fromlen);
SHIM_API ssize_t sendfile(int out, int in, off_t *off, size_t count);
SHIM_API ssize_t sendfile64(int out, int in, off_t *off, size_t count);
SHIM_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
SHIM_API int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
			 const sigset_t *mask, size_t fdslen);

static long ret_errno(long rc)
{
	if (rc < 0) {
		errno = (int)-rc;
		return -1;
	}
	return rc;
}

/* An active connection on fd (with a reference), or NULL. */
static struct shim_conn *active_conn(int fd)
{
	struct shim_obj *o = shim_get(fd);
	struct shim_conn *c = shim_conn_of(o);

	if (c && shim_is_active(__atomic_load_n(&c->state, __ATOMIC_ACQUIRE)))
		return c;
	shim_put(o);
	return NULL;
}

static struct shim_conn *any_conn(int fd)
{
	struct shim_obj *o = shim_get(fd);
	struct shim_conn *c = shim_conn_of(o);

	if (!c)
		shim_put(o);
	return c;
}

/* Forgets fd (closed, or about to be replaced), as close() would. */
static void forget_fd(int fd)
{
	struct shim_obj *o = shim_take(fd);
	struct shim_conn *c;

	if (!o)
		return;
	/* Both kinds of readers: shim_get() under the RCU read lock, and the
	 * fast sections, which hold no reference (fast.c). */
	urcu_memb_synchronize_rcu();
	shim_fast_sync();
	c = shim_conn_of(o);
	if (c) {
		pthread_mutex_lock(&c->lock);
		c->nfds--;
		if (c->nfds > 0 && c->fd == fd) {
			/* Another dup keeps the socket: find it. */
			for (int k = 0; k < 1 << 20; k++) {
				struct shim_obj *x = shim_get(k);

				shim_put(x);
				if (x == o && k != fd) {
					c->fd = k;
					break;
				}
			}
		}
		pthread_mutex_unlock(&c->lock);
		if (c->nfds == 0)
			shim_conn_last_close(c);
	} else if (shim_epoll_of(o)) {
		shim_epoll_drop(shim_epoll_of(o));
	}
	shim_put(o);
}

static void track_dup(int oldfd, int newfd)
{
	struct shim_conn *c = any_conn(oldfd);

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->nfds++;
	pthread_mutex_unlock(&c->lock);
	shim_set(newfd, &c->o);
	shim_put(&c->o);
}

/* ------------------------------------------------------------ sockets */

SHIM_API int socket(int domain, int type, int protocol)
{
	int fd = REAL(socket)(domain, type, protocol);
	struct shim_conn *c;

	if (fd < 0)
		return fd;
	forget_fd(fd);
	if (shim_cfg.disabled || (domain != AF_INET && domain != AF_INET6) ||
	    (type & 0xff) != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP))
		return fd;
	c = shim_conn_new(fd, domain, !!(type & SOCK_NONBLOCK));
	if (c) {
		c->nfds = 1;
		shim_set(fd, &c->o);
	}
	return fd;
}

SHIM_API int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	return REAL(bind)(fd, sa, len);
}

SHIM_API int listen(int fd, int backlog)
{
	struct shim_conn *c;
	int rc = REAL(listen)(fd, backlog), saved = errno;

	if (rc < 0)
		return rc;
	c = any_conn(fd);
	if (c) {
		if (c->state == SS_PLAIN)
			shim_listen_publish(c);
		shim_put(&c->o);
	}
	errno = saved;
	return 0;
}

SHIM_API int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct shim_conn *c = any_conn(fd);
	int rc;

	if (!c)
		return REAL(connect)(fd, sa, len);
	rc = shim_connect(c, sa, len);
	shim_put(&c->o);
	return (int)ret_errno(rc);
}

static int do_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags, int four)
{
	int nfd = four ? REAL(accept4)(fd, sa, len, flags) : REAL(accept)(fd, sa, len);
	struct shim_conn *lc;
	int saved = errno;

	if (nfd < 0)
		return nfd;
	forget_fd(nfd);
	lc = any_conn(fd);
	if (lc) {
		if (__atomic_load_n(&lc->state, __ATOMIC_ACQUIRE) == SS_LISTEN)
			shim_accept_attach(lc, nfd, !!(flags & SOCK_NONBLOCK));
		shim_put(&lc->o);
	}
	{
		struct shim_conn *c = any_conn(nfd);

		if (c) {
			c->nfds = 1;
			shim_put(&c->o);
		}
	}
	errno = saved;
	return nfd;
}

SHIM_API int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return do_accept(fd, sa, len, 0, 0);
}

SHIM_API int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	return do_accept(fd, sa, len, flags, 1);
}

SHIM_API int close(int fd)
{
	forget_fd(fd);
	return REAL(close)(fd);
}

SHIM_API int shutdown(int fd, int how)
{
	struct shim_conn *c = active_conn(fd);
	int rc;

	if (!c)
		return REAL(shutdown)(fd, how);
	rc = shim_shutdown(c, how);
	shim_put(&c->o);
	if (rc == SHIM_PASS)
		return REAL(shutdown)(fd, how);
	return (int)ret_errno(rc);
}

/* ------------------------------------------------------------ data */

/* io (shim_recvv or shim_sendv) on fd's connection; *pass: use the real
 * call instead (not ours, or plain TCP now). */
static inline ssize_t io_common(int fd, const struct iovec *iov, int cnt, int flags, int *pass,
				ssize_t (*io)(struct shim_conn *, const struct iovec *, int, int))
{
	struct shim_conn *c = active_conn(fd);
	ssize_t rc;

	*pass = 1;
	if (!c)
		return 0;
	rc = io(c, iov, cnt, flags);
	shim_put(&c->o);
	if (rc == SHIM_PASS)
		return 0;
	*pass = 0;
	return ret_errno(rc);
}

static ssize_t recv_common(int fd, const struct iovec *iov, int cnt, int flags, int *pass)
{
	return io_common(fd, iov, cnt, flags, pass, shim_recvv);
}

static ssize_t send_common(int fd, const struct iovec *iov, int cnt, int flags, int *pass)
{
	return io_common(fd, iov, cnt, flags, pass, shim_sendv);
}

/* read() past the fast path. */
static __attribute__((noinline)) ssize_t read_full(int fd, void *buf, size_t n)
{
	struct iovec v = {buf, n};
	int pass;
	ssize_t rc = recv_common(fd, &v, 1, 0, &pass);

	return pass ? REAL(read)(fd, buf, n) : rc;
}

/*
 * The four one-buffer calls try the fast path first (conn_io.c: an
 * accelerated connection this thread owns, room or data in the ring) and
 * only then the full path, kept out of line so that the fast one needs no
 * register saves.
 */
SHIM_API ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t rc;

	if (shim_fast_recv(fd, buf, n, 0, &rc))
		return ret_errno(rc);
	return read_full(fd, buf, n);
}

SHIM_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		abort();
	return read(fd, buf, n);
}

/* write() past the fast path. */
static __attribute__((noinline)) ssize_t write_full(int fd, const void *buf, size_t n)
{
	struct iovec v = {(void *)buf, n};
	int pass;
	ssize_t rc = send_common(fd, &v, 1, 0, &pass);

	return pass ? REAL(write)(fd, buf, n) : rc;
}

SHIM_API ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t rc;

	if (shim_fast_send(fd, buf, n, 0, &rc))
		return ret_errno(rc);
	return write_full(fd, buf, n);
}

SHIM_API ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	int pass;
	ssize_t rc = recv_common(fd, iov, cnt, 0, &pass);

	return pass ? REAL(readv)(fd, iov, cnt) : rc;
}

SHIM_API ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	int pass;
	ssize_t rc = send_common(fd, iov, cnt, 0, &pass);

	return pass ? REAL(writev)(fd, iov, cnt) : rc;
}

/* send() past the fast path. */
static __attribute__((noinline)) ssize_t send_full(int fd, const void *buf, size_t n, int flags)
{
	struct iovec v = {(void *)buf, n};
	int pass;
	ssize_t rc = send_common(fd, &v, 1, flags, &pass);

	return pass ? REAL(send)(fd, buf, n, flags) : rc;
}

SHIM_API ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	ssize_t rc;

	if (shim_fast_send(fd, buf, n, flags, &rc))
		return ret_errno(rc);
	return send_full(fd, buf, n, flags);
}

/* recv() past the fast path. */
static __attribute__((noinline)) ssize_t recv_full(int fd, void *buf, size_t n, int flags)
{
	struct iovec v = {buf, n};
	int pass;
	ssize_t rc = recv_common(fd, &v, 1, flags, &pass);

	return pass ? REAL(recv)(fd, buf, n, flags) : rc;
}

SHIM_API ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t rc;

	if (shim_fast_recv(fd, buf, n, flags, &rc))
		return ret_errno(rc);
	return recv_full(fd, buf, n, flags);
}

SHIM_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		abort();
	return recv(fd, buf, n, flags);
}

SHIM_API ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
			socklen_t len)
{
	struct iovec v = {(void *)buf, n};
	ssize_t rc;
	int pass;

	if (sa && (flags & MSG_FASTOPEN)) {
		/* TCP Fast Open connects and sends at once: stay on TCP. */
		struct shim_conn *c = any_conn(fd);

		if (c) {
			if (c->state == SS_PLAIN) {
				c->state = SS_FALLBACK;
				c->reason = IVL_FB_OPTION;
				SHIM_DBG("fd %d: MSG_FASTOPEN: plain TCP (option)", fd);
			}
			shim_put(&c->o);
		}
		return REAL(sendto)(fd, buf, n, flags, sa, len);
	}
	rc = send_common(fd, &v, 1, flags, &pass);
	return pass ? REAL(sendto)(fd, buf, n, flags, sa, len) : rc;
}

SHIM_API ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
			  socklen_t *len)
{
	struct iovec v = {buf, n};
	int pass;
	ssize_t rc = recv_common(fd, &v, 1, flags, &pass);

	if (pass)
		return REAL(recvfrom)(fd, buf, n, flags, sa, len);
	if (rc >= 0 && sa && len)
		*len = 0; /* as for a connected TCP socket */
	return rc;
}

SHIM_API ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				struct sockaddr *sa, socklen_t *len)
{
	if (n > buflen)
		abort();
	return recvfrom(fd, buf, n, flags, sa, len);
}

SHIM_API ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	int pass;
	ssize_t rc;

	/* Accelerated fds passed in m move back to TCP before they leave. */
	if (m->msg_controllen)
		shim_demote_msg(m);
	rc = send_common(fd, m->msg_iov, (int)m->msg_iovlen, flags, &pass);

	return pass ? REAL(sendmsg)(fd, m, flags) : rc;
}

SHIM_API ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	int pass;
	ssize_t rc = recv_common(fd, m->msg_iov, (int)m->msg_iovlen, flags, &pass);

	if (pass)
		return REAL(recvmsg)(fd, m, flags);
	if (rc >= 0) {
		m->msg_namelen = 0;
		m->msg_controllen = 0;
		m->msg_flags = 0;
	}
	return rc;
}

SHIM_API ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	struct shim_conn *c = active_conn(out);
	char *buf;
	size_t done = 0;
	ssize_t rc = 0;

	if (!c)
		return REAL(sendfile)(out, in, off, count);
	buf = malloc(65536);
	if (!buf) {
		shim_put(&c->o);
		return ret_errno(-ENOMEM);
	}
	while (done < count) {
		size_t want = count - done < 65536 ? count - done : 65536;
		ssize_t n = off ? pread(in, buf, want, *off) : REAL(read)(in, buf, want);
		struct iovec v;

		if (n <= 0) {
			rc = n < 0 ? -errno : 0;
			break;
		}
		v.iov_base = buf;
		v.iov_len = (size_t)n;
		rc = shim_sendv(c, &v, 1, 0);
		if (rc == SHIM_PASS)
			rc = REAL(write)(out, buf, (size_t)n) < 0 ? -errno : (ssize_t)n;
		if (rc <= 0)
			break;
		if (off)
			*off += rc;
		else if (rc < n)
			lseek(in, rc - n, SEEK_CUR);
		done += (size_t)rc;
		if (rc < n)
			break;
	}
	free(buf);
	shim_put(&c->o);
	if (done)
		return (ssize_t)done;
	return ret_errno(rc);
}

SHIM_API ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
	return sendfile(out, in, off, count);
}

/* ------------------------------------------------------------ waiting */

SHIM_API int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return (int)ret_errno(
	    shim_poll(fds, n, timeout < 0 ? -1 : (int64_t)timeout * 1000000LL, NULL));
}

SHIM_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return poll(fds, n, timeout);
}

SHIM_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	int64_t t = ts ? (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec : -1;

	return (int)ret_errno(shim_poll(fds, n, t, mask));
}

SHIM_API int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
			 const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return ppoll(fds, n, ts, mask);
}

static int sets_have_shim(int n, fd_set *r, fd_set *w, fd_set *x)
{
	for (int fd = 0; fd < n && fd < FD_SETSIZE; fd++) {
		if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (x && FD_ISSET(fd, x))) {
			struct shim_conn *c = active_conn(fd);

			if (c) {
				shim_put(&c->o);
				return 1;
			}
		}
	}
	return 0;
}

static int select_common(int n, fd_set *r, fd_set *w, fd_set *x, int64_t t, const sigset_t *mask)
{
	struct pollfd pf[FD_SETSIZE];
	int k = 0, count = 0, rc;

	if (n > FD_SETSIZE)
		n = FD_SETSIZE;
	for (int fd = 0; fd < n; fd++) {
		short ev = 0;

		if (r && FD_ISSET(fd, r))
			ev |= POLLIN;
		if (w && FD_ISSET(fd, w))
			ev |= POLLOUT;
		if (x && FD_ISSET(fd, x))
			ev |= POLLPRI;
		if (ev) {
			pf[k].fd = fd;
			pf[k].events = ev;
			pf[k].revents = 0;
			k++;
		}
	}
	rc = shim_poll(pf, (nfds_t)k, t, mask);
	if (rc < 0)
		return (int)ret_errno(rc);
	for (int i = 0; i < k; i++) {
		if (pf[i].revents & POLLNVAL)
			return (int)ret_errno(-EBADF);
	}
	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (x)
		FD_ZERO(x);
	for (int i = 0; i < k; i++) {
		short re = pf[i].revents;

		if (r && (pf[i].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) {
			FD_SET(pf[i].fd, r);
			count++;
		}
		if (w && (pf[i].events & POLLOUT) && (re & (POLLOUT | POLLERR))) {
			FD_SET(pf[i].fd, w);
			count++;
		}
		if (x && (pf[i].events & POLLPRI) && (re & POLLPRI)) {
			FD_SET(pf[i].fd, x);
			count++;
		}
	}
	return count;
}

SHIM_API int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
	if (!sets_have_shim(n, r, w, x))
		return REAL(select)(n, r, w, x, tv);
	return select_common(
	    n, r, w, x, tv ? (int64_t)tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL : -1, NULL);
}

SHIM_API int pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts,
		     const sigset_t *mask)
{
	if (!sets_have_shim(n, r, w, x))
		return REAL(pselect)(n, r, w, x, ts, mask);
	return select_common(n, r, w, x, ts ? (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec : -1,
			     mask);
}

SHIM_API int epoll_create(int size)
{
	int fd = REAL(epoll_create)(size);

	if (fd >= 0)
		forget_fd(fd);
	return fd;
}

SHIM_API int epoll_create1(int flags)
{
	int fd = REAL(epoll_create1)(flags);

	if (fd >= 0)
		forget_fd(fd);
	return fd;
}

SHIM_API int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return (int)ret_errno(shim_epoll_ctl(epfd, op, fd, ev));
}

SHIM_API int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	return (int)ret_errno(shim_epoll_wait(epfd, evs, max, timeout, NULL));
}

SHIM_API int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
			 const sigset_t *mask)
{
	return (int)ret_errno(shim_epoll_wait(epfd, evs, max, timeout, mask));
}

/* ------------------------------------------------------------ fd control */

static int fcntl_common(int fd, int cmd, void *arg)
{
	int rc = REAL(fcntl)(fd, cmd, arg);
	struct shim_conn *c;

	if (rc < 0)
		return rc;
	switch (cmd) {
	case F_SETFL:
		c = any_conn(fd);
		if (c) {
			c->nonblock = !!((int)(intptr_t)arg & O_NONBLOCK);
			shim_put(&c->o);
		}
		break;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		forget_fd(rc);
		track_dup(fd, rc);
		break;
	default:
		break;
	}
	return rc;
}

SHIM_API int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(fd, cmd, arg);
}

SHIM_API int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(fd, cmd, arg);
}

SHIM_API int ioctl(int fd, unsigned long req, ...)
{
	struct shim_conn *c;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == FIONREAD && (c = active_conn(fd))) {
		long n = shim_conn_nread(c);

		shim_put(&c->o);
		if (n >= 0) {
			*(int *)arg = (int)n;
			return 0;
		}
	}
	if (req == FIONBIO && arg && (c = any_conn(fd))) {
		c->nonblock = *(int *)arg != 0;
		shim_put(&c->o);
	}
	return REAL(ioctl)(fd, req, arg);
}

SHIM_API int dup(int fd)
{
	int nfd = REAL(dup)(fd);

	if (nfd >= 0) {
		forget_fd(nfd);
		track_dup(fd, nfd);
	}
	return nfd;
}

SHIM_API int dup2(int fd, int nfd)
{
	int rc;

	if (fd == nfd)
		return REAL(dup2)(fd, nfd);
	rc = REAL(dup2)(fd, nfd);
	if (rc >= 0) {
		forget_fd(nfd);
		track_dup(fd, nfd);
	}
	return rc;
}

SHIM_API int dup3(int fd, int nfd, int flags)
{
	int rc = REAL(dup3)(fd, nfd, flags);

	if (rc >= 0) {
		forget_fd(nfd);
		track_dup(fd, nfd);
	}
	return rc;
}

SHIM_API int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	int rc = REAL(getsockopt)(fd, level, name, val, len), saved = errno;
	struct shim_conn *c;

	if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR && (c = any_conn(fd))) {
		/* An error read here is gone for a later poll: say so. No
		 * error may mean "still in progress" (a program may ask before
		 * it polls): then the check polls as usual. */
		if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == SS_CONNECTING)
			shim_connecting_check(c, val && *len >= sizeof(int) && *(int *)val != 0);
		else if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == SS_ACCEL && c->lk.reset &&
			 val && *len >= sizeof(int) && *(int *)val == 0)
			*(int *)val = ECONNRESET;
		shim_put(&c->o);
	}
	errno = saved;
	return rc;
}

SHIM_API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	int rc = REAL(setsockopt)(fd, level, name, val, len), saved = errno;
	struct shim_conn *c;

	if (rc == 0 && (c = any_conn(fd))) {
		if (level == IPPROTO_TCP &&
		    (name == TCP_FASTOPEN || name == TCP_FASTOPEN_CONNECT)) {
			c->opt_unsupported = 1;
		} else if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
			   len >= sizeof(struct timeval)) {
			const struct timeval *tv = val;
			int64_t ns = (int64_t)tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL;

			if (name == SO_RCVTIMEO)
				c->rcvtimeo_ns = ns > 0 ? ns : -1;
			else
				c->sndtimeo_ns = ns > 0 ? ns : -1;
		}
		shim_put(&c->o);
	}
	errno = saved;
	return rc;
}

/* ------------------------------------------------------------ processes */

SHIM_API pid_t fork(void)
{
	pid_t pid;
	int saved;

	shim_fork_prepare();
	pid = REAL(fork)();
	saved = errno;
	if (pid == 0)
		shim_fork_child();
	else
		shim_fork_parent(pid < 0);
	errno = saved;
	return pid;
}

SHIM_API int execve(const char *path, char *const argv[], char *const envp[])
{
	char **env;
	int rc;

	/* The new program's shim knows nothing of our rings: connections it
	 * inherits move back to TCP first. */
	shim_demote_exec();
	env = shim_exec_env(envp);
	rc = REAL(execve)(path, argv, env ? env : envp);

	free(env);
	return rc;
}

/*
 * glibc's execv*() reach execve inside libc, past this library: wrapped
 * too, so that they move connections back to TCP and keep the shim's
 * environment like execve(). execl*() and posix_spawn() are not.
 */
SHIM_API int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

static int exec_search(const char *file, char *const argv[], char *const envp[])
{
	static int (*real)(const char *, char *const[], char *const[]);
	char **env;
	int rc, saved;

	if (!real)
		real = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT,
										  "execvpe");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	shim_demote_exec();
	env = shim_exec_env(envp);
	rc = real(file, argv, env ? env : envp);
	saved = errno;
	free(env);
	errno = saved;
	return rc;
}

SHIM_API int execvp(const char *file, char *const argv[])
{
	return exec_search(file, argv, environ);
}

SHIM_API int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return exec_search(file, argv, envp);
}
