/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: creating, opening, formatting, sealing and adopting the
 * shared-memory region. */
#define _GNU_SOURCE
#include "internal.h"

static int map_region(struct ivl_server *s)
{
	void *p = mmap(NULL, s->cfg.size, PROT_READ | PROT_WRITE, MAP_SHARED, s->shm_fd, 0);
	int rc;

	if (p == MAP_FAILED) {
		int err = -errno;

		ivl__srv_log(s, IVL_LOG_ERROR, "cannot map the %s region (%" PRIu64 " bytes): %s",
			     s->kind, s->cfg.size, strerror(-err));
		return err;
	}
	s->base = p;
	/* Named and hugetlbfs files cannot be sealed: a client may shrink
	 * them under us. The guard restores the size instead of dying. */
	rc = ivl__guard_add(p, s->cfg.size, s->sealed ? -1 : s->shm_fd);
	if (rc < 0)
		ivl__srv_log(s, IVL_LOG_WARN, "region guard: %s", strerror(-rc));
	return 0;
}

void ivl__srv_unmap_region(struct ivl_server *s)
{
	if (!s->base)
		return;
	ivl__guard_remove(s->base);
	munmap(s->base, s->cfg.size);
	s->base = NULL;
}

static int format_region(struct ivl_server *s)
{
	struct ivl_region_params p;
	struct ivl_region_hdr *h = s->base;
	int rc;

	ivl_region_params_default(&p);
	p.size = s->cfg.size;
	p.max_peers = s->cfg.max_peers;
	p.n_vectors = s->cfg.n_vectors;
	p.chan_slots = s->cfg.chan_slots;
	p.name = s->region_name;
	rc = ivl_region_format(s->base, s->cfg.size, &p);
	if (rc < 0) {
		ivl__srv_log(s, IVL_LOG_ERROR,
			     "cannot format a %" PRIu64
			     "-byte region for %u peers with %u channel slots: "
			     "too small",
			     s->cfg.size, s->cfg.max_peers, s->cfg.chan_slots);
		return rc;
	}
	/* The daemon owns these header fields; format() leaves them zero. */
	h->created_unix_ns = (uint64_t)ivl__realtime_ns();
	h->daemon_gen = 0;
	return 0;
}

/* Compares an existing region's geometry with what we were asked for. */
static int same_geometry(struct ivl_server *s, const struct ivl_region_hdr *h, char *why,
			 size_t len)
{
	if (h->region_size != s->cfg.size)
		snprintf(why, len, "size %" PRIu64 " (asked %" PRIu64 ")", h->region_size,
			 s->cfg.size);
	else if (h->max_peers != s->cfg.max_peers)
		snprintf(why, len, "max peers %u (asked %u)", h->max_peers, s->cfg.max_peers);
	else if (h->n_vectors != s->cfg.n_vectors)
		snprintf(why, len, "vectors %u (asked %u)", h->n_vectors, s->cfg.n_vectors);
	else if (h->chan_slots != s->cfg.chan_slots)
		snprintf(why, len, "channel slots %u (asked %u)", h->chan_slots, s->cfg.chan_slots);
	else
		return 1;
	return 0;
}

/*
 * An existing named region: re-attach when it holds a valid header of the
 * same geometry, so that a daemon restart does not wipe the peers' data
 * (QEMU guests keep their mapping across our restart). Anything else is
 * refused unless force_format, because it may be someone else's file.
 */
static int open_existing(struct ivl_server *s, const struct stat *st, int *need_format)
{
	char why[128];
	int rc;

	*need_format = 0;
	if (st->st_size == 0) {
		/* Created but never sized: a daemon died right after creating
		 * it. There is nothing to lose. */
		*need_format = 1;
		return 0;
	}
	if ((uint64_t)st->st_size != s->cfg.size) {
		uint64_t have = (uint64_t)st->st_size;

		if (!s->cfg.force_format && (!is_pow2(have) || have < IVL_REGION_MIN_SIZE)) {
			ivl__srv_log(s, IVL_LOG_ERROR,
				     "region %s exists with size %" PRIu64
				     ", which no -l accepts (a "
				     "power of two of at least 1M): it cannot be re-attached; "
				     "--force-format wipes it",
				     s->file_path, have);
			return -EEXIST;
		}
		if (!s->cfg.force_format) {
			/* In the form -l takes: whole MiB, or GiB. */
			ivl__srv_log(s, IVL_LOG_ERROR,
				     "region %s exists with size %" PRIu64 ", not %" PRIu64
				     ": restart with -l %" PRIu64
				     "%s to re-attach, or --force-format to "
				     "wipe it",
				     s->file_path, have, s->cfg.size,
				     have % (1ull << 30) ? have >> 20 : have >> 30,
				     have % (1ull << 30) ? "M" : "G");
			return -EEXIST;
		}
		*need_format = 1;
		return 0;
	}
	rc = map_region(s);
	if (rc < 0)
		return rc;
	rc = ivl_region_attach(&s->rg, s->base, s->cfg.size);
	if (rc < 0) {
		if (!s->cfg.force_format) {
			char msg[256];

			ivl__srv_log(
			    s, IVL_LOG_ERROR,
			    "%s exists but holds no valid ivlink layout v%u header (%s); "
			    "use --force-format to wipe it",
			    s->file_path, IVL_LAYOUT_VERSION,
			    ivl_region_strerror(rc, s->base, s->cfg.size, msg, sizeof(msg)));
			return -EEXIST;
		}
		*need_format = 1;
		return 0;
	}
	if (!same_geometry(s, &s->rg.hdr, why, sizeof(why))) {
		if (!s->cfg.force_format) {
			ivl__srv_log(
			    s, IVL_LOG_ERROR,
			    "region %s has another geometry: %s; use --force-format to wipe it",
			    s->file_path, why);
			return -EEXIST;
		}
		ivl__srv_log(s, IVL_LOG_WARN, "region %s: %s; wiping it (--force-format)",
			     s->file_path, why);
		*need_format = 1;
		return 0;
	}
	s->reattached = 1;
	return 0;
}

static int open_named(struct ivl_server *s, const char *dir, int *need_format)
{
	mode_t fmode = s->cfg.socket_mode & 0666;
	struct stat st;
	int rc, created = 0;

	if (asprintf(&s->file_path, "%s/%s", dir, s->shm_name) < 0) {
		s->file_path = NULL;
		return -ENOMEM;
	}
	s->shm_fd = open(s->file_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, fmode);
	if (s->shm_fd >= 0) {
		created = 1;
		/* The file mode must not depend on our umask. */
		if (fchmod(s->shm_fd, fmode) < 0)
			ivl__srv_log(s, IVL_LOG_WARN, "chmod %s: %s", s->file_path,
				     strerror(errno));
		/* The group the sockets get, so that the mode's group bits
		 * mean the same set of users for the file (ivlinkctl --shm). */
		if (s->cfg.socket_gid != IVL_SERVER_NO_GID &&
		    fchown(s->shm_fd, (uid_t)-1, s->cfg.socket_gid) < 0) {
			rc = -errno;
			ivl__srv_log(s, IVL_LOG_ERROR, "cannot give %s the group %u: %s",
				     s->file_path, (unsigned)s->cfg.socket_gid, strerror(-rc));
			return rc;
		}
	} else if (errno == EEXIST) {
		s->shm_fd = open(s->file_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (s->shm_fd < 0) {
		rc = -errno;
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot open region %s: %s", s->file_path,
			     strerror(-rc));
		return rc;
	}
	/* One daemon per named region: two would both write the peer table.
	 * The lock belongs to an open file description, so it is taken on a
	 * private one: shm_fd's is shared with every client (SCM_RIGHTS), and
	 * their mappings keep it alive after we die, which would lock a
	 * restarted daemon out for as long as any peer stays attached. */
	s->lock_fd = open(s->file_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
		if (rc == -EADDRINUSE)
			ivl__srv_log(s, IVL_LOG_ERROR, "region %s is in use by another daemon",
				     s->file_path);
		else
			ivl__srv_log(s, IVL_LOG_ERROR, "cannot lock region %s: %s", s->file_path,
				     strerror(-rc));
		return rc;
	}
	if (fstat(s->shm_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ivl__srv_log(s, IVL_LOG_ERROR, "%s is not a regular file", s->file_path);
		return -EINVAL;
	}
	/* A file we did not create may be someone else's: a local user who
	 * pre-creates it keeps a read-write fd and owns the region without
	 * ever passing the socket's mode or the allow-list. Serve only a file
	 * of our own uid, with one link, that nobody else may write. */
	if (!created &&
	    (st.st_uid != geteuid() || st.st_nlink != 1 || (st.st_mode & 002) ||
	     ((st.st_mode & 020) && st.st_gid != getegid() && st.st_gid != s->cfg.socket_gid))) {
		ivl__srv_log(
		    s, IVL_LOG_ERROR,
		    "region %s exists but is not ours to serve (owner uid %u, mode %04o, %lu "
		    "links; want uid %u, not writable by others, 1 link): remove it, or pick "
		    "another name",
		    s->file_path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
		    (unsigned long)st.st_nlink, (unsigned)geteuid());
		return -EPERM;
	}
	if (created) {
		*need_format = 1;
		return 0;
	}
	return open_existing(s, &st, need_format);
}

int ivl__srv_open_region(struct ivl_server *s)
{
	int need_format = 1, rc;

	if (s->hugetlb_dir) {
		struct statfs sf;

		s->kind = "hugetlbfs";
		if (statfs(s->hugetlb_dir, &sf) < 0) {
			rc = -errno;
			ivl__srv_log(s, IVL_LOG_ERROR, "--hugetlb %s: %s", s->hugetlb_dir,
				     strerror(-rc));
			return rc;
		}
		if ((unsigned long)sf.f_type != HUGETLBFS_MAGIC)
			ivl__srv_log(s, IVL_LOG_WARN,
				     "%s is not a hugetlbfs mount; using normal pages",
				     s->hugetlb_dir);
		else if (s->cfg.size % (uint64_t)sf.f_bsize) {
			ivl__srv_log(s, IVL_LOG_ERROR,
				     "size %" PRIu64 " is not a multiple of the huge page size %ld",
				     s->cfg.size, (long)sf.f_bsize);
			return -EINVAL;
		}
		if (s->shm_name) {
			rc = open_named(s, s->hugetlb_dir, &need_format);
		} else if ((unsigned long)sf.f_type == HUGETLBFS_MAGIC) {
			/* An anonymous huge-page region: a hugetlb memfd of the
			 * mount's page size, which, unlike a file, can be sealed. */
			unsigned shift = (unsigned)__builtin_ctzl((unsigned long)sf.f_bsize);

			s->shm_fd =
			    memfd_create(s->region_name, MFD_CLOEXEC | MFD_ALLOW_SEALING |
							     MFD_HUGETLB | shift << MFD_HUGE_SHIFT);
			rc = s->shm_fd < 0 ? -errno : 0;
			if (rc < 0)
				ivl__srv_log(s, IVL_LOG_ERROR,
					     "memfd_create (huge pages of %ld bytes): %s",
					     (long)sf.f_bsize, strerror(-rc));
			s->sealed = rc == 0;
		} else {
			char *tmpl;

			if (asprintf(&tmpl, "%s/ivlink.XXXXXX", s->hugetlb_dir) < 0)
				return -ENOMEM;
			s->shm_fd = mkostemp(tmpl, O_CLOEXEC);
			rc = s->shm_fd < 0 ? -errno : 0;
			if (rc == 0)
				unlink(tmpl);
			else
				ivl__srv_log(s, IVL_LOG_ERROR, "cannot create a file in %s: %s",
					     s->hugetlb_dir, strerror(-rc));
			free(tmpl);
		}
	} else if (s->shm_name) {
		s->kind = "shm";
		rc = open_named(s, "/dev/shm", &need_format);
	} else {
		s->kind = "memfd";
		s->shm_fd = memfd_create(s->region_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		rc = s->shm_fd < 0 ? -errno : 0;
		if (rc < 0)
			ivl__srv_log(s, IVL_LOG_ERROR, "memfd_create: %s", strerror(-rc));
		s->sealed = rc == 0;
	}
	if (rc < 0)
		return rc;

	if (need_format) {
		ivl__srv_unmap_region(s);
		if (ftruncate(s->shm_fd, (off_t)s->cfg.size) < 0) {
			rc = -errno;
			ivl__srv_log(s, IVL_LOG_ERROR, "cannot size the region to %" PRIu64 ": %s",
				     s->cfg.size, strerror(-rc));
			return rc;
		}
		if (s->sealed) {
			/* Every client gets a read-write fd of the memfd. Seal
			 * its size so that none can shrink it under the others
			 * (SIGBUS) or grow it (QEMU takes the BAR size from
			 * fstat, it must stay a power of two), and seal the
			 * seals so that none can add F_SEAL_FUTURE_WRITE and
			 * keep later peers from mapping it writable. */
			if (fcntl(s->shm_fd, F_ADD_SEALS,
				  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
				rc = -errno;
				ivl__srv_log(s, IVL_LOG_ERROR, "cannot seal the memfd: %s",
					     strerror(-rc));
				return rc;
			}
		}
		rc = map_region(s);
		if (rc < 0)
			return rc;
		rc = format_region(s);
		if (rc < 0)
			return rc;
		rc = ivl_region_attach(&s->rg, s->base, s->cfg.size);
		if (rc < 0) {
			ivl__srv_log(s, IVL_LOG_ERROR, "formatted region does not validate: %s",
				     strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* After ivl__srv_open_region(): stamp this daemon's generation and deal with entries
 * left UP by a previous daemon that died. */
void ivl__srv_adopt_region(struct ivl_server *s)
{
	struct ivl_region_hdr *h = s->base;
	uint64_t gen = h->daemon_gen + 1;

	h->daemon_gen = gen;
	h->daemon_pid = (uint32_t)getpid();
	s->rg.hdr.daemon_gen = gen;
	s->rg.hdr.daemon_pid = (uint32_t)getpid();
	__atomic_thread_fence(__ATOMIC_RELEASE);

	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct ivl_peer_entry *e = ivl_region_peer(&s->rg, id);
		struct ivl_peer_view v;
		long ep;

		if (ivl_region_peer_view(&s->rg, id, &v) < 0 || v.state != IVL_PEER_UP)
			continue;
		if (!s->cfg.reclaim_stale) {
			/* Its channels keep running, but nobody may start a
			 * new one with it: we cannot ring it or see it leave. */
			__atomic_fetch_or(&e->daemon_flags, IVL_PEER_F_STALE, __ATOMIC_RELEASE);
			ivl__srv_log(
			    s, IVL_LOG_WARN,
			    "peer %u is UP from a previous daemon (pid %u, epoch %u): marked stale "
			    "(no new connections with it); its id is not handed out until a "
			    "restart with --reclaim-stale",
			    id, e->pid, v.epoch);
			continue;
		}
		e->left_unix_ns = (uint64_t)ivl__realtime_ns();
		ep = ivl_region_peer_set(&s->rg, id, IVL_PEER_GONE, 0, 0, 0);
		if (ep > 0)
			ivl_section_reset(&s->rg, id, (uint32_t)ep);
		ivl__srv_log(s, IVL_LOG_INFO, "peer %u: stale entry reclaimed, GONE at epoch %ld",
			     id, ep);
	}
	ivl__srv_log(s, IVL_LOG_INFO,
		     "region '%s' (%s%s%s): %" PRIu64
		     " bytes, %u vectors, %u peers, generation %" PRIu64 ", %s",
		     s->rg.hdr.name, s->kind, s->file_path ? " " : "",
		     s->file_path ? s->file_path : "", s->rg.hdr.region_size, s->rg.hdr.n_vectors,
		     s->rg.hdr.max_peers, gen, s->reattached ? "re-attached" : "formatted");
}
