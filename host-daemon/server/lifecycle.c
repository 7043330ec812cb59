/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: configuration, init and close (see server.h). */
#define _GNU_SOURCE
#include "internal.h"

void ivl_server_config_default(struct ivl_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_path = IVL_SERVER_DEFAULT_SOCKET;
	cfg->size = 64ull << 20;
	cfg->n_vectors = 8;
	cfg->max_peers = 8;
	cfg->chan_slots = 64;
	cfg->queue_limit = IVL_SERVER_QUEUE_DEFAULT;
	cfg->socket_mode = 0600;
	cfg->socket_gid = IVL_SERVER_NO_GID;
}

static int path_fits(const char *p)
{
	return strlen(p) < sizeof(((struct sockaddr_un *)0)->sun_path);
}

int ivl_server_init(struct ivl_server **out, const struct ivl_server_config *cfg)
{
	struct ivl_server *s;
	uint32_t min_q;
	int err = 0;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->shm_fd = s->listen_fd = s->status_fd = s->epfd = s->spare_fd = -1;
	s->lock_fd = -1;
	s->listen_tag = EP_LISTEN;
	s->status_tag = EP_STATUS_LISTEN;
	s->quit_tag = EP_QUIT;
	s->inotify_tag = EP_INOTIFY;
	s->ino_fd = -1;

	if (!cfg->socket_path || !*cfg->socket_path) {
		ivl__srv_log(s, IVL_LOG_ERROR, "no socket path given");
		err = -EINVAL;
		goto fail;
	}
	if (!is_pow2(cfg->size) || cfg->size < IVL_REGION_MIN_SIZE) {
		ivl__srv_log(s, IVL_LOG_ERROR,
			     "region size %" PRIu64 " must be a power of two >= %u", cfg->size,
			     IVL_REGION_MIN_SIZE);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->n_vectors < 1 || cfg->n_vectors > IVL_VECTORS_LIMIT) {
		ivl__srv_log(s, IVL_LOG_ERROR, "vectors must be 1..%u", IVL_VECTORS_LIMIT);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->max_peers < 1 || cfg->max_peers > IVL_PEERS_LIMIT) {
		ivl__srv_log(s, IVL_LOG_ERROR, "max peers must be 1..%u", IVL_PEERS_LIMIT);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->chan_slots < 1 || cfg->chan_slots > IVL_CHAN_SLOTS_LIMIT) {
		ivl__srv_log(s, IVL_LOG_ERROR, "channel slots must be 1..%u", IVL_CHAN_SLOTS_LIMIT);
		err = -EINVAL;
		goto fail;
	}
	if (cfg->shm_name) {
		/* shm_open() style names may start with one '/'. */
		const char *n = cfg->shm_name[0] == '/' ? cfg->shm_name + 1 : cfg->shm_name;

		if (!*n || strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
		    strlen(n) > NAME_MAX) {
			ivl__srv_log(s, IVL_LOG_ERROR, "invalid shm name '%s'", cfg->shm_name);
			err = -EINVAL;
			goto fail;
		}
		s->shm_name = ivl__srv_dup_or_null(n, &err);
	}
	s->socket_path = ivl__srv_dup_or_null(cfg->socket_path, &err);
	if (!cfg->status_path) {
		if (asprintf(&s->status_path, "%s.ctl", cfg->socket_path) < 0) {
			s->status_path = NULL;
			err = -ENOMEM;
		}
	} else if (*cfg->status_path && strcmp(cfg->status_path, "none") != 0) {
		s->status_path = ivl__srv_dup_or_null(cfg->status_path, &err);
	}
	s->hugetlb_dir = ivl__srv_dup_or_null(cfg->hugetlb_dir, &err);
	s->region_name = ivl__srv_dup_or_null(cfg->region_name ? cfg->region_name
					      : s->shm_name    ? s->shm_name
							       : "ivlink",
					      &err);
	if (err)
		goto fail;
	if (!path_fits(s->socket_path) || (s->status_path && !path_fits(s->status_path))) {
		ivl__srv_log(s, IVL_LOG_ERROR, "socket path too long (max %zu bytes): %s",
			     sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
			     path_fits(s->socket_path) ? s->status_path : s->socket_path);
		err = -ENAMETOOLONG;
		goto fail;
	}
	/* Whatever the configured bound, one complete handshake must fit:
	 * 3 messages plus n_vectors per peer including the client itself. */
	min_q = (cfg->max_peers + 1) * cfg->n_vectors + 16;
	s->queue_limit = cfg->queue_limit > min_q ? cfg->queue_limit : min_q;
	s->cfg.socket_path = s->cfg.status_path = s->cfg.shm_name = NULL;
	s->cfg.hugetlb_dir = s->cfg.region_name = NULL;
	*out = s;
	return 0;
fail:
	if (err == -ENOMEM)
		ivl__srv_log(s, IVL_LOG_ERROR, "out of memory");
	s->started = 0;
	ivl_server_close(s);
	return err;
}

int ivl_server_shm_fd(const struct ivl_server *s)
{
	return s->shm_fd;
}

const struct ivl_region *ivl_server_region(const struct ivl_server *s)
{
	return &s->rg;
}

unsigned ivl_server_n_peers(const struct ivl_server *s)
{
	return s->n_peers;
}

static void unlink_ours(const char *path, const struct stat *ours)
{
	struct stat st;

	/* Remove the socket only if it is still the one we bound: a second
	 * daemon may have replaced it after deciding ours was stale. */
	if (path && ours->st_ino && lstat(path, &st) == 0 && st.st_ino == ours->st_ino &&
	    st.st_dev == ours->st_dev)
		unlink(path);
}

void ivl_server_close(struct ivl_server *s)
{
	struct client *c, *next;

	if (!s)
		return;
	if (s->started) {
		/* Mark everyone GONE first, then ring, so that each peer sees
		 * the final table when it wakes. Sections are left as they are:
		 * they are reset when their id is handed out again. */
		for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
			struct ivl_peer_entry *e;

			c = s->peers[id];
			if (!c)
				continue;
			e = ivl_region_peer(&s->rg, id);
			e->left_unix_ns = (uint64_t)ivl__realtime_ns();
			ivl_region_peer_set(&s->rg, id, IVL_PEER_GONE, 0, 0, 0);
		}
		for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++)
			if (s->peers[id])
				ivl__srv_ring_ctrl(s, s->peers[id]);
		ivl__srv_log(s, IVL_LOG_INFO, "shutting down: %u peers marked GONE", s->n_peers);
	}
	for (c = s->clients; c; c = next) {
		next = c->next;
		ivl__srv_client_free(c);
	}
	if (s->listen_fd >= 0) {
		unlink_ours(s->socket_path, &s->listen_st);
		close(s->listen_fd);
	}
	if (s->status_fd >= 0) {
		unlink_ours(s->status_path, &s->status_st);
		close(s->status_fd);
	}
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	if (s->ino_fd >= 0)
		close(s->ino_fd);
	ivl__srv_unmap_region(s);
	if (s->shm_fd >= 0)
		close(s->shm_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->socket_path);
	free(s->status_path);
	free(s->shm_name);
	free(s->hugetlb_dir);
	free(s->region_name);
	free(s->file_path);
	free(s);
}
