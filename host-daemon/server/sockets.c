/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: the listening sockets and ivl_server_start(). */
#define _GNU_SOURCE
#include "internal.h"

static void fill_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, path, strlen(path) + 1);
}

/*
 * Checks path before we bind it: absent is fine; a socket nobody listens on
 * is the leftover of a dead daemon and is removed; a live socket or another
 * kind of file is refused.
 */
static int probe_socket(struct ivl_server *s, const char *path)
{
	struct sockaddr_un a;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		ivl__srv_log(s, IVL_LOG_ERROR, "%s exists and is not a socket; not replacing it",
			     path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	fill_addr(&a, path);
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : -errno;
	close(fd);
	if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS) {
		ivl__srv_log(s, IVL_LOG_ERROR, "another daemon is listening on %s", path);
		return -EADDRINUSE;
	}
	if (rc != -ECONNREFUSED) {
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot probe %s: %s", path, strerror(-rc));
		return rc;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot remove stale socket %s: %s", path,
			     strerror(-rc));
		return rc;
	}
	ivl__srv_log(s, IVL_LOG_INFO, "removed stale socket %s", path);
	return 0;
}

/*
 * Listens on path. The socket is bound, given its mode and group, and set
 * listening under a temporary name beside path, then linked to path: a
 * client that finds path can connect (before, a client starting right
 * after the file appeared could get ECONNREFUSED between bind() and
 * listen(), as vm_host_guest's host process once did). link() fails if
 * path exists, so a second daemon started at the same moment still fails
 * with EADDRINUSE as a bind() on path would. A path too long for the
 * temporary name is bound directly, as before.
 */
static int listen_on(struct ivl_server *s, const char *path, int *out, struct stat *st)
{
	struct sockaddr_un a;
	char tmp[sizeof(a.sun_path)];
	const char *bpath = path;
	int fd, rc, n;

	n = snprintf(tmp, sizeof(tmp), "%s.%ld.new", path, (long)getpid());
	if (n > 0 && (size_t)n < sizeof(tmp)) {
		bpath = tmp;
		unlink(tmp); /* a crashed daemon's, with our pid */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Linux creates the socket file with the socket inode's mode minus
	 * the umask, so this keeps it no wider than asked even before the
	 * chmod below. */
	if (fchmod(fd, s->cfg.socket_mode) < 0)
		ivl__srv_log(s, IVL_LOG_DEBUG, "fchmod on socket: %s", strerror(errno));
	fill_addr(&a, bpath);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot bind %s: %s", bpath, strerror(-rc));
		goto err_close;
	}
	/* The exact mode, whatever the umask (it may be wider than the umask
	 * allows, e.g. 0660 for a group of QEMU users). */
	if (chmod(bpath, s->cfg.socket_mode) < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot set mode of %s: %s", bpath, strerror(-rc));
		goto err_unlink;
	}
	/* Connecting needs write permission on the socket file: its group
	 * is who the mode's group bits let in (--socket-group). Before the
	 * socket is reachable, so that no client ever connects under the
	 * old group. */
	if (s->cfg.socket_gid != IVL_SERVER_NO_GID &&
	    chown(bpath, (uid_t)-1, s->cfg.socket_gid) < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot give %s the group %u: %s", bpath,
			     (unsigned)s->cfg.socket_gid, strerror(-rc));
		goto err_unlink;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot listen on %s: %s", bpath, strerror(-rc));
		goto err_unlink;
	}
	if (bpath != path) {
		if (link(bpath, path) < 0) {
			rc = errno == EEXIST ? -EADDRINUSE : -errno;
			ivl__srv_log(s, IVL_LOG_ERROR, "cannot create %s: %s", path,
				     strerror(errno));
			goto err_unlink;
		}
		unlink(bpath);
	}
	if (lstat(path, st) < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot stat %s: %s", path, strerror(-rc));
		unlink(path);
		goto err_close;
	}
	*out = fd;
	return 0;
err_unlink:
	unlink(bpath);
err_close:
	close(fd);
	return rc;
}

/*
 * Creates the directory of a socket path if it is missing, as systemd's
 * RuntimeDirectory= would: only the last component (/run/ivlink, never
 * /run), mode 0755, or 0750 owned by the socket group so that exactly that
 * group can reach the socket (QEMU under libvirt runs as libvirt-qemu). An
 * existing directory is left as it is: it is the administrator's.
 */
static int ensure_socket_dir(struct ivl_server *s, const char *path)
{
	const char *slash = strrchr(path, '/');
	int withgid = s->cfg.socket_gid != IVL_SERVER_NO_GID;
	mode_t mode = withgid ? 0750 : 0755;
	char *dir;
	int rc = 0;

	if (!slash || slash == path)
		return 0; /* relative name in the cwd, or in / */
	dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	if (mkdir(dir, mode) < 0) {
		if (errno != EEXIST) {
			rc = -errno;
			ivl__srv_log(s, IVL_LOG_ERROR, "cannot create the socket directory %s: %s",
				     dir, strerror(-rc));
		}
		goto out;
	}
	/* The mode whatever the umask, and the group before anyone looks. */
	if ((withgid && chown(dir, (uid_t)-1, s->cfg.socket_gid) < 0) || chmod(dir, mode) < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot set the owner or mode of %s: %s", dir,
			     strerror(-rc));
		rmdir(dir);
		goto out;
	}
	ivl__srv_log(s, IVL_LOG_INFO, "created the socket directory %s (mode %04o)", dir,
		     (unsigned)mode);
out:
	free(dir);
	return rc;
}

int ivl__srv_ep_add(struct ivl_server *s, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = {.events = events, .data.ptr = tag};

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int ivl_server_start(struct ivl_server *s)
{
	char gid_text[24] = "unchanged";
	int rc;

	s->start_mono_ns = (uint64_t)ivl__now_ns();
	s->stats.since_real_ns = (uint64_t)ivl__realtime_ns();
	rc = ivl__srv_open_region(s);
	if (rc < 0)
		return rc;
	s->shm_ref.fd = s->shm_fd;
	s->shm_ref.refs = 1; /* ours; never dropped to zero by clients */

	rc = ensure_socket_dir(s, s->socket_path);
	if (rc == 0 && s->status_path)
		rc = ensure_socket_dir(s, s->status_path);
	if (rc < 0)
		return rc;

	/* Probe the status socket first: it tells a live ivlinkd without
	 * making the probe a peer (probing the main socket of a live daemon
	 * is a short join and leave that its peers would see). */
	if (s->status_path) {
		rc = probe_socket(s, s->status_path);
		if (rc < 0)
			return rc;
	}
	rc = probe_socket(s, s->socket_path);
	if (rc < 0)
		return rc;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;
	/* A spare descriptor, given up when accept() hits EMFILE so that the
	 * pending connection can be accepted and closed instead of spinning. */
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	rc = listen_on(s, s->socket_path, &s->listen_fd, &s->listen_st);
	if (rc < 0)
		return rc;
	if (s->status_path) {
		rc = listen_on(s, s->status_path, &s->status_fd, &s->status_st);
		if (rc < 0)
			return rc;
	}
	rc = ivl__srv_ep_add(s, s->listen_fd, EPOLLIN, &s->listen_tag);
	if (rc == 0 && s->status_fd >= 0)
		rc = ivl__srv_ep_add(s, s->status_fd, EPOLLIN, &s->status_tag);
	if (rc < 0)
		return rc;
	/* A file region cannot be sealed: watch its size (ftruncate() raises
	 * IN_MODIFY; writes through the mapping do not). */
	if (!s->sealed && s->file_path) {
		s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (s->ino_fd < 0 || inotify_add_watch(s->ino_fd, s->file_path, IN_MODIFY) < 0 ||
		    ivl__srv_ep_add(s, s->ino_fd, EPOLLIN, &s->inotify_tag) < 0)
			ivl__srv_log(
			    s, IVL_LOG_WARN,
			    "cannot watch %s for size changes (%s): shrinks are seen only when "
			    "they fault",
			    s->file_path, strerror(errno));
	}

	/* Only now, when nothing can fail any more, do we touch a re-attached
	 * region's header and table. */
	ivl__srv_adopt_region(s);
	s->started = 1;
	if (s->cfg.socket_gid != IVL_SERVER_NO_GID)
		snprintf(gid_text, sizeof(gid_text), "%u", (unsigned)s->cfg.socket_gid);
	ivl__srv_log(s, IVL_LOG_INFO, "listening on %s%s%s (mode %04o, group %s)", s->socket_path,
		     s->status_path ? ", status on " : "", s->status_path ? s->status_path : "",
		     (unsigned)s->cfg.socket_mode, gid_text);
	return 0;
}
