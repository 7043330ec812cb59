/* SPDX-License-Identifier: MIT */
/*
 * ivlink-vfio-probe: the interrupt path of an ivlink guest, standalone.
 *
 * With libivlink's device code (guest-lib/ivshmem_dev.c) it binds the
 * ivshmem device to vfio-pci (driver_override), opens the VFIO container,
 * group and device, sets memory and bus-master in the PCI command register
 * (without bus-master QEMU drops the MSI-X messages silently), maps BAR0 and
 * BAR2 through the device fd, and binds ALL MSI-X vectors to eventfds with
 * VFIO_DEVICE_SET_IRQS (this 6.1 kernel cannot grow the enabled set later).
 * Then:
 *
 *   selftest [VEC]           ring our own doorbell, wait for the eventfd
 *   recv PEER VEC N [MS]     announce readiness in our heap page, then N
 *                            times: wait for VEC, ring PEER's VEC back
 *   send PEER VEC N [MS]     wait for PEER's readiness, then N times: ring
 *                            PEER's VEC, wait for ours; print round trips
 *
 * PEER "auto" waits until exactly one other peer is UP in the region's peer
 * table and takes it. The readiness marker sits in the first page of the
 * receiver's heap, unallocated: fine for a probe, not for a library.
 *
 * recv/send are the two halves of a doorbell ping-pong between two guests:
 * the interrupt path alone, without libivlink's rings (design.md, "In a
 * guest").
 * Statically linked: the guest image has no libraries.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "ivshmem_dev.h"
#include "os.h"

#define READY_MAGIC 0x59444552564c5649ULL /* "IVLVREDY" */

struct vdev {
	char bdf[32];
	struct ivl__vfio_dev vd; /* guest-lib/ivshmem_dev.h, shared with libivlink */
	volatile uint32_t *regs;
	uint8_t *mem;
	uint64_t mem_size;
	int n_vectors;
	int efd[64];
	struct ivl_region rg;
	uint32_t id;
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "ivlink-vfio-probe: %s: %s\n", what, strerror(err));
	return -err;
}

static void log_stderr(void *ctx, enum ivl_log_level level, const char *msg)
{
	fprintf(stderr, "ivlink-vfio-probe: %s\n", msg);
}

/* Binds vfio-pci, opens container/group/device, sets memory + bus master,
 * maps BAR0/BAR2 (libivlink's code), then arms every MSI-X vector. */
static int open_vfio(struct vdev *v)
{
	struct ivl__log log = {.fn = log_stderr};
	int rc, i;

	rc = ivl__vfio_open(&v->vd, v->bdf, &log);
	if (rc < 0)
		return rc;
	v->regs = v->vd.regs;
	v->mem = v->vd.mem;
	v->mem_size = v->vd.mem_size;
	v->n_vectors = (int)v->vd.n_irqs;
	for (i = 0; i < v->n_vectors; i++) {
		v->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->efd[i] < 0)
			return fail("eventfd", errno);
	}
	rc = ivl__vfio_set_irqs(v->vd.device, 0, v->vd.n_irqs, v->efd);
	if (rc < 0)
		return fail("VFIO_DEVICE_SET_IRQS (MSI-X)", -rc);
	v->id = ivl__reg_read(v->regs, IVL__REG_IVPOSITION);
	printf("vfio: %s, BAR2 %" PRIu64 " MiB, %d MSI-X vectors armed, IVPosition %u\n", v->bdf,
	       v->mem_size >> 20, v->n_vectors, v->id);
	return 0;
}

/* Waits for vector vec's eventfd. Returns 0, -ETIMEDOUT. */
static int wait_vec(struct vdev *v, int vec, int ms)
{
	struct pollfd p = {.fd = v->efd[vec], .events = POLLIN};
	uint64_t cnt;
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return -ETIMEDOUT;
	if (read(v->efd[vec], &cnt, 8) != 8)
		return -EIO;
	return 0;
}

static void ring(struct vdev *v, uint32_t peer, uint32_t vec)
{
	ivl__reg_write(v->regs, IVL__REG_DOORBELL, peer << 16 | vec);
}

/* Our first heap page (or peer's): where readiness is announced. */
static volatile uint64_t *ready_slot(struct vdev *v, uint32_t id)
{
	struct ivl_section_hdr *s;
	uint64_t off;

	if (ivl_section_check(&v->rg, id) < 0)
		return NULL;
	s = ivl_region_section(&v->rg, id);
	off = __atomic_load_n(&s->heap_off, __ATOMIC_ACQUIRE);
	return ivl_region_ptr(&v->rg, off, 16);
}

static int peer_epoch(struct vdev *v, uint32_t id, uint32_t *epoch)
{
	struct ivl_peer_view pv;

	if (ivl_region_peer_view(&v->rg, id, &pv) < 0 || pv.state != IVL_PEER_UP)
		return -ENOENT;
	*epoch = pv.epoch;
	return 0;
}

/* Waits until one other peer is UP; returns its id or -ETIMEDOUT. */
static long other_peer(struct vdev *v, int ms)
{
	uint64_t t0 = (uint64_t)ivl__now_ns();

	for (;;) {
		long found = -1;
		int count = 0;
		uint32_t i, e;

		for (i = 0; i < v->rg.hdr.max_peers; i++) {
			if (i != v->id && peer_epoch(v, i, &e) == 0) {
				found = i;
				count++;
			}
		}
		if (count == 1)
			return found;
		if ((uint64_t)ivl__now_ns() - t0 > (uint64_t)ms * 1000000u)
			return -ETIMEDOUT;
		usleep(5000);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: ivlink-vfio-probe [-d BDF] selftest [VEC] | recv PEER VEC N [MS] | "
			"send PEER VEC N [MS]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct vdev v;
	const char *bdf = NULL, *cmd;
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	int opt, rc;

	memset(&v, 0, sizeof(v));
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt == 'd')
			bdf = optarg;
		else
			return usage();
	}
	if (optind >= argc)
		return usage();
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;
	if (!bdf) {
		if (ivl__pci_list(bdfs, IVL__MAX_DEVICES) <= 0) {
			fprintf(stderr, "ivlink-vfio-probe: no ivshmem device\n");
			return 1;
		}
		bdf = bdfs[0];
	}
	snprintf(v.bdf, sizeof(v.bdf), "%s", bdf);
	if (open_vfio(&v) < 0)
		return 1;
	rc = ivl_region_attach(&v.rg, v.mem, v.mem_size);
	if (rc < 0) {
		fail("region header", -rc);
		return 1;
	}

	if (strcmp(cmd, "selftest") == 0 && argc <= 1) {
		int vec = argc ? atoi(argv[0]) : 1;
		uint64_t t;

		if (vec < 0 || vec >= v.n_vectors)
			return usage();
		t = (uint64_t)ivl__now_ns();
		ring(&v, v.id, (uint32_t)vec);
		if (wait_vec(&v, vec, 5000) < 0) {
			printf("vfio: selftest: no interrupt on vector %d within 5 s\n", vec);
			return 1;
		}
		printf("vfio: selftest: own doorbell on vector %d arrived after %" PRIu64 " us\n",
		       vec, ((uint64_t)ivl__now_ns() - t) / 1000);
		return 0;
	}
	if ((strcmp(cmd, "recv") == 0 || strcmp(cmd, "send") == 0) && (argc == 3 || argc == 4)) {
		uint32_t peer = (uint32_t)strtoul(argv[0], NULL, 0);
		int vec = atoi(argv[1]), n = atoi(argv[2]), ms = argc == 4 ? atoi(argv[3]) : 60000,
		    i;
		uint64_t t0, sum = 0, min = UINT64_MAX, max = 0;
		volatile uint64_t *slot;
		uint32_t epoch;

		if (strcmp(argv[0], "auto") == 0) {
			long p = other_peer(&v, ms);

			if (p < 0) {
				printf("vfio: no single other peer UP within %d ms\n", ms);
				return 1;
			}
			peer = (uint32_t)p;
			printf("vfio: peer %u is the other side\n", peer);
		}
		if (vec < 0 || vec >= v.n_vectors || n < 1 || peer >= v.rg.hdr.max_peers ||
		    peer == v.id)
			return usage();
		if (cmd[0] == 'r') {
			/* Announce: magic and our current epoch, so a marker left
			 * by an earlier incarnation of this id is not taken. */
			slot = ready_slot(&v, v.id);
			if (!slot || peer_epoch(&v, v.id, &epoch) < 0) {
				fprintf(stderr,
					"ivlink-vfio-probe: own section/peer entry not set up\n");
				return 1;
			}
			slot[1] = epoch;
			__atomic_store_n(&slot[0], READY_MAGIC, __ATOMIC_RELEASE);
			printf("vfio: recv: ready (peer %u epoch %u), waiting on vector %d\n", v.id,
			       epoch, vec);
			for (i = 0; i < n; i++) {
				if (wait_vec(&v, vec, ms) < 0) {
					printf("vfio: recv: no interrupt %d/%d within %d ms\n",
					       i + 1, n, ms);
					return 1;
				}
				ring(&v, peer, (uint32_t)vec);
			}
			printf("vfio: recv: %d interrupts from peer %u received and answered\n", n,
			       peer);
			return 0;
		}
		t0 = (uint64_t)ivl__now_ns();
		for (;;) {
			slot = ready_slot(&v, peer);
			if (slot && peer_epoch(&v, peer, &epoch) == 0 &&
			    __atomic_load_n(&slot[0], __ATOMIC_ACQUIRE) == READY_MAGIC &&
			    slot[1] == epoch)
				break;
			if ((uint64_t)ivl__now_ns() - t0 > (uint64_t)ms * 1000000u) {
				printf("vfio: send: peer %u not ready within %d ms\n", peer, ms);
				return 1;
			}
			usleep(2000);
		}
		printf("vfio: send: peer %u ready after %" PRIu64 " ms\n", peer,
		       ((uint64_t)ivl__now_ns() - t0) / 1000000u);
		for (i = 0; i < n; i++) {
			uint64_t t = (uint64_t)ivl__now_ns(), d;

			ring(&v, peer, (uint32_t)vec);
			if (wait_vec(&v, vec, ms) < 0) {
				printf("vfio: send: no answer %d/%d within %d ms\n", i + 1, n, ms);
				return 1;
			}
			d = (uint64_t)ivl__now_ns() - t;
			sum += d;
			min = d < min ? d : min;
			max = d > max ? d : max;
		}
		printf("vfio: send: %d doorbell round trips to peer %u: min %" PRIu64
		       " avg %" PRIu64 " max %" PRIu64 " us\n",
		       n, peer, min / 1000, sum / (uint64_t)n / 1000, max / 1000);
		return 0;
	}
	return usage();
}
