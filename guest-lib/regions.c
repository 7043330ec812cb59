/* SPDX-License-Identifier: MIT */
/*
 * ivl_regions(): which regions this process could attach to, without
 * attaching (several regions per guest or per host process, issue 13).
 *
 * In a guest a region is an ivshmem device. When ivlink-guestd runs it owns
 * every device through VFIO, and the sysfs BARs cannot be mapped any more
 * (CONFIG_IO_STRICT_DEVMEM), so the agent is asked (a list request,
 * guestd_proto.h); otherwise each device's header is read through sysfs.
 * On the host a region is a daemon socket: those $IVLINK_ENDPOINTS lists,
 * else the default one, the only one with a known place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "guestd_proto.h"
#include "internal.h"
#include "ivshmem_dev.h"

#define AGENT_TIMEOUT_MS 2000

static void set_name(struct ivl_region_info *ri, const char *name, size_t max)
{
	size_t n = strnlen(name, max);

	if (n >= sizeof(ri->name))
		n = sizeof(ri->name) - 1;
	memcpy(ri->name, name, n);
	ri->name[n] = '\0';
}

static void uri_for(struct ivl_region_info *ri, const char *bdf)
{
	snprintf(ri->uri, sizeof(ri->uri), "%s:%s", ivl__pci_has_iommu_group(bdf) ? "vfio" : "poll",
		 bdf);
}

/* Asks the agent at path. Returns the number of devices it serves, or
 * -errno (no agent, or one that does not know the list request). */
static int ask_agent(const char *path, struct ivl__guestd_list_reply *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ivl__guestd_list_req q = {.magic = IVL__GUESTD_LIST_MAGIC,
					 .version = IVL__GUESTD_VERSION};
	struct pollfd p;
	ssize_t n;
	int s, rc = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(s, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q)) {
		rc = -errno;
		goto out;
	}
	p = (struct pollfd){.fd = s, .events = POLLIN};
	if (ivl__poll(&p, 1, AGENT_TIMEOUT_MS * 1000000LL) <= 0) {
		rc = -ETIMEDOUT;
		goto out;
	}
	n = recv(s, r, sizeof(*r), MSG_DONTWAIT);
	/* An older agent answers with a short hello reply (-EPROTO). */
	if (n != (ssize_t)sizeof(*r) || r->magic != IVL__GUESTD_LIST_MAGIC ||
	    r->version != IVL__GUESTD_VERSION || r->status < 0 || r->count > IVL__GUESTD_LIST_MAX)
		rc = n < 0 ? -errno : -EPROTO;
	else
		rc = (int)r->count;
out:
	close(s);
	return rc;
}

static int from_agent(const char *path, struct ivl_region_info *out, size_t n)
{
	struct ivl__guestd_list_reply r;
	int count = ask_agent(path, &r);

	for (int i = 0; i < count; i++) {
		/* The reply is a private copy already; terminate its strings. */
		struct ivl__guestd_dev_desc *d = &r.dev[i];

		d->bdf[sizeof(d->bdf) - 1] = '\0';
		if ((size_t)i >= n)
			continue;
		memset(&out[i], 0, sizeof(out[i]));
		uri_for(&out[i], d->bdf);
		set_name(&out[i], d->name, sizeof(d->name));
		out[i].size = d->size;
		out[i].max_peers = d->max_peers;
		out[i].self_id = d->peer_id;
	}
	return count;
}

static int from_sysfs(struct ivl_region_info *out, size_t n)
{
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	int count = ivl__pci_list(bdfs, IVL__MAX_DEVICES);

	for (int i = 0; i < count && (size_t)i < n; i++) {
		struct ivl_region_hdr h;
		uint64_t size;

		memset(&out[i], 0, sizeof(out[i]));
		uri_for(&out[i], bdfs[i]);
		out[i].self_id = UINT32_MAX;
		if (ivl__sysfs_read_hdr(bdfs[i], &h, &size) == 0) {
			set_name(&out[i], h.name, sizeof(h.name));
			out[i].size = h.region_size;
			out[i].max_peers = h.max_peers;
		}
	}
	return count < 0 ? 0 : count;
}

/* The daemon sockets of $IVLINK_ENDPOINTS ("host:PATH" or PATH, separated
 * by commas, blanks around them ignored), in their order, unchecked: a
 * socket that is not there fails when it is opened. */
static int from_env(const char *list, struct ivl_region_info *out, size_t n)
{
	int count = 0;

	while (*list) {
		size_t len = strcspn(list, ","), skip = 0;

		while (skip < len && (list[skip] == ' ' || list[skip] == '\t'))
			skip++;
		while (len > skip && (list[len - 1] == ' ' || list[len - 1] == '\t'))
			len--;
		if (len > skip && len - skip < sizeof(out[0].uri)) {
			if ((size_t)count < n) {
				memset(&out[count], 0, sizeof(out[count]));
				memcpy(out[count].uri, list + skip, len - skip);
				out[count].self_id = UINT32_MAX;
			}
			count++;
		}
		list += strcspn(list, ",");
		if (*list == ',')
			list++;
	}
	return count;
}

int ivl_regions(struct ivl_region_info *out, size_t n)
{
	struct stat st;
	const char *agent = ivl__guestd_path();
	int count;

	if (n && !out)
		return -EINVAL;
	if (getenv(IVL_ENV_ENDPOINTS))
		return from_env(getenv(IVL_ENV_ENDPOINTS), out, n);
	if (stat(IVL_ENDPOINT_DEFAULT, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (n) {
			memset(&out[0], 0, sizeof(out[0]));
			snprintf(out[0].uri, sizeof(out[0].uri), "%s", IVL_ENDPOINT_DEFAULT);
			out[0].self_id = UINT32_MAX;
		}
		return 1;
	}
	if (agent && stat(agent, &st) == 0 && S_ISSOCK(st.st_mode)) {
		count = from_agent(agent, out, n);
		if (count >= 0)
			return count;
	}
	return from_sysfs(out, n);
}

const char *ivl_endpoint_region(const struct ivl_endpoint *ep)
{
	return ep->region_name;
}
