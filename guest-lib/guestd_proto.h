/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/: the protocol between ivlink-guestd (the guest
 * agent, guestd.c) and libivlink's guest backend (backend_vfio.c).
 *
 * A VFIO group is opened by one process at a time, so one agent per VM owns
 * the ivshmem devices and hands every local process what it needs to use one
 * itself. On a SOCK_SEQPACKET UNIX socket the client sends one hello; the
 * agent answers with one reply and, when status is 0, three fds by
 * SCM_RIGHTS, in this order:
 *
 *   0  the VFIO device fd (the client maps BAR0 and BAR2 from it and rings
 *      doorbells directly);
 *   1  the client's control eventfd: the agent keeps MSI-X vector 0 and
 *      writes this eventfd on each of its interrupts (peers joined or left,
 *      a remote opened a channel);
 *   2  the client's vector eventfd for MSI-X vector `vector`: bound to the
 *      vector itself when the client has it alone, written by the agent when
 *      it is shared (more clients than vectors).
 *
 * The connection stays open for the client's lifetime: when it closes, the
 * agent frees the vector and aborts the channel halves the process left
 * behind. Both sides are the same build; the version guards against a stale
 * agent.
 *
 * A client that only wants to know which regions the VM has (ivl_regions())
 * sends a list request instead of the hello; the agent answers with one
 * list reply (no fds) describing every device it serves, and closes the
 * connection. An agent older than the list request answers a reply with
 * status -EPROTO, which the client tells apart by its size.
 */
#ifndef IVLINK_GUEST_LIB_GUESTD_PROTO_H
#define IVLINK_GUEST_LIB_GUESTD_PROTO_H

#include <stdint.h>

#include <ivlink/layout.h>

#define IVL_GUESTD_SOCK_DEFAULT "/run/ivlink/guestd.sock"
#define IVL_ENV_GUESTD		"IVLINK_GUESTD" /* socket path, or "off" */

#define IVL__GUESTD_MAGIC   0x44545347u /* "GSTD" */
#define IVL__GUESTD_VERSION 1u

struct ivl__guestd_hello {
	uint32_t magic;
	uint32_t version;
	char target[96]; /* device selector: "", a PCI address, "name=..." */
};

struct ivl__guestd_reply {
	uint32_t magic;
	uint32_t version;
	int32_t status;	    /* 0 or -errno (then no fds follow) */
	uint32_t vector;    /* the client's MSI-X vector */
	uint32_t n_vectors; /* MSI-X vectors of the device */
	uint32_t shared;    /* 1 when vector is shared (the agent forwards) */
	uint32_t peer_id;   /* IVPosition */
	uint32_t reserved;
	char bdf[32];
};

#define IVL__GUESTD_LIST_MAGIC 0x54534c47u /* "GLST" */
#define IVL__GUESTD_LIST_MAX   16u	   /* == IVL__MAX_DEVICES */

struct ivl__guestd_list_req {
	uint32_t magic; /* IVL__GUESTD_LIST_MAGIC */
	uint32_t version;
};

struct ivl__guestd_dev_desc {
	char bdf[32];
	char name[IVL_REGION_NAME_MAX]; /* NUL padded */
	uint64_t size;
	uint32_t max_peers;
	uint32_t peer_id; /* IVPosition */
};

struct ivl__guestd_list_reply {
	uint32_t magic; /* IVL__GUESTD_LIST_MAGIC */
	uint32_t version;
	int32_t status;
	uint32_t count; /* entries of dev used */
	struct ivl__guestd_dev_desc dev[IVL__GUESTD_LIST_MAX];
};

#endif /* IVLINK_GUEST_LIB_GUESTD_PROTO_H */
