/* SPDX-License-Identifier: MIT */
/*
 * ivlink-probe: inspect and poke an ivlink region from inside a guest,
 * through the ivshmem PCI device's sysfs resource files (no driver bound,
 * no interrupts). Linked statically so the guest image needs no libraries.
 *
 * It is the guest half of the QEMU compatibility test and a debugging tool:
 * it shows which peer id the server gave this VM, checks the region header
 * the daemon wrote, and reads, writes and waits for bytes at region offsets.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "ivshmem_dev.h"
#include "os.h"

struct dev {
	char bdf[32];
	struct ivl__sysfs_dev sd;
	volatile uint32_t *regs; /* BAR0 */
	uint8_t *mem;		 /* BAR2 */
	uint64_t mem_size;
	struct ivl_region rg;
	int attached; /* ivl_region_attach() result == 0 */
	int attach_err;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ivlink-probe [-d BDF] [-n REGION] COMMAND [ARGS]\n"
		"  list                 ivshmem devices (1af4:1110) and their driver\n"
		"  id                   this VM's peer id (IVPosition)\n"
		"  info                 validate the region header; print it and the peer table\n"
		"  heap ID              region offset of peer ID's first heap page\n"
		"  read OFF LEN         hex of LEN bytes at region offset OFF\n"
		"  write OFF HEX        write bytes at OFF\n"
		"  expect OFF HEX       exit 1 unless the bytes at OFF equal HEX\n"
		"  wait OFF HEX [MS]    poll until the bytes at OFF equal HEX (default 10000 ms)\n"
		"  ring PEER VECTOR     write the Doorbell register (PEER << 16 | VECTOR)\n"
		"  scan TEXT            look for TEXT in every memory BAR of every PCI\n"
		"                       device (sysfs resourceN, read only); exit 0 if\n"
		"                       absent everywhere, 3 if found, 1 on errors\n"
		"Options: -d BDF picks the PCI device, -n REGION the one whose region\n"
		"header carries that name. Offsets and lengths accept 0x prefixes.\n"
		"The device must have no driver bound (sysfs resource mapping).\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end) {
		fprintf(stderr, "ivlink-probe: bad number '%s'\n", s);
		return -EINVAL;
	}
	return 0;
}

static int parse_hex(const char *s, uint8_t **buf, size_t *len)
{
	size_t n = strlen(s), i;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		n -= 2;
	}
	if (n == 0 || n % 2) {
		fprintf(stderr, "ivlink-probe: hex string needs an even, non-zero length\n");
		return -EINVAL;
	}
	*buf = malloc(n / 2);
	if (!*buf)
		return -ENOMEM;
	for (i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			fprintf(stderr, "ivlink-probe: bad hex at '%s'\n", s + 2 * i);
			free(*buf);
			return -EINVAL;
		}
		(*buf)[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

static void log_stderr(void *ctx, enum ivl_log_level level, const char *msg)
{
	fprintf(stderr, "ivlink-probe: %s\n", msg);
}

/* Maps the sysfs BARs with libivlink's code (guest-lib/ivshmem_dev.c):
 * no driver bound, memory decoding enabled. */
static int open_dev(const char *bdf, struct dev *d)
{
	struct ivl__log log = {.fn = log_stderr};
	int rc;

	memset(d, 0, sizeof(*d));
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	rc = ivl__sysfs_open(&d->sd, bdf, &log);
	if (rc < 0)
		return rc;
	d->regs = d->sd.regs;
	d->mem = d->sd.mem;
	d->mem_size = d->sd.mem_size;
	d->attach_err = ivl_region_attach(&d->rg, d->mem, d->mem_size);
	d->attached = d->attach_err == 0;
	return 0;
}

static int select_dev(const char *want_bdf, const char *want_name, struct dev *d)
{
	char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX];
	int n, i;

	if (want_bdf)
		return open_dev(want_bdf, d);
	n = ivl__pci_list(bdfs, IVL__MAX_DEVICES);
	if (n <= 0) {
		fprintf(stderr,
			"ivlink-probe: no ivshmem device (1af4:1110) in " IVL__PCI_SYSFS "\n");
		return -ENODEV;
	}
	for (i = 0; i < n; i++) {
		if (open_dev(bdfs[i], d) < 0)
			continue;
		if (!want_name)
			return 0;
		if (d->attached && strncmp(d->rg.hdr.name, want_name, IVL_REGION_NAME_MAX) == 0)
			return 0;
	}
	fprintf(stderr, "ivlink-probe: no usable ivshmem device%s%s\n",
		want_name ? " with region " : "", want_name ? want_name : "");
	return -ENODEV;
}

static uint32_t reg_read(struct dev *d, unsigned off)
{
	return d->regs[off / 4];
}

static int need_region(struct dev *d)
{
	if (d->attached)
		return 0;
	fprintf(stderr, "ivlink-probe: %s: region header invalid: %s\n", d->bdf,
		strerror(-d->attach_err));
	return -EPROTO;
}

/* A bounds-checked pointer into the region; the header need not be valid
 * for raw reads and writes, so this checks against the BAR size only. */
static uint8_t *at(struct dev *d, uint64_t off, uint64_t len)
{
	if (off > d->mem_size || len > d->mem_size - off) {
		fprintf(stderr,
			"ivlink-probe: [%#" PRIx64 ", +%" PRIu64 ") outside the %" PRIu64
			"-byte region\n",
			off, len, d->mem_size);
		return NULL;
	}
	return d->mem + off;
}

static void print_hex(FILE *f, const volatile uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		fprintf(f, "%02x", p[i]);
	fprintf(f, "\n");
}

static int cmd_info(struct dev *d)
{
	const struct ivl_region_hdr *h = &d->rg.hdr;
	uint32_t i;

	printf("device %s bar2 %" PRIu64 " bytes ivposition %u\n", d->bdf, d->mem_size,
	       reg_read(d, IVL__REG_IVPOSITION));
	if (need_region(d) < 0)
		return 1;
	printf("region '%.*s' version %u size %" PRIu64 " max_peers %u vectors %u "
	       "sections at %#" PRIx64 " x %#" PRIx64 " chan_slots %u daemon_gen %" PRIu64
	       " daemon_pid %u\n",
	       (int)IVL_REGION_NAME_MAX, h->name, h->version, h->region_size, h->max_peers,
	       h->n_vectors, h->section_off, h->section_size, h->chan_slots, h->daemon_gen,
	       h->daemon_pid);
	for (i = 0; i < h->max_peers; i++) {
		struct ivl_peer_view v;

		if (ivl_region_peer_view(&d->rg, i, &v) == 0 && v.state != IVL_PEER_FREE)
			printf("peer %u state %s epoch %u section %s\n", i,
			       v.state == IVL_PEER_UP	  ? "up"
			       : v.state == IVL_PEER_GONE ? "gone"
							  : "?",
			       v.epoch, ivl_section_check(&d->rg, i) == 0 ? "ok" : "uninitialised");
	}
	return 0;
}

static int cmd_heap(struct dev *d, uint32_t id)
{
	struct ivl_section_hdr *s;
	uint64_t off;

	if (need_region(d) < 0)
		return 1;
	if (ivl_section_check(&d->rg, id) < 0) {
		fprintf(stderr, "ivlink-probe: section of peer %u is not initialised\n", id);
		return 1;
	}
	s = ivl_region_section(&d->rg, id);
	off = __atomic_load_n(&s->heap_off, __ATOMIC_ACQUIRE);
	if (!ivl_region_ptr(&d->rg, off, IVL_PAGE_SIZE)) {
		fprintf(stderr, "ivlink-probe: heap of peer %u outside the region\n", id);
		return 1;
	}
	printf("%" PRIu64 "\n", off);
	return 0;
}

/*
 * scan: what a guest can see. Every memory BAR that sysfs lets us map is
 * copied with aligned 32-bit reads (MMIO may not take wider or unaligned
 * ones) and searched. A BAR of a device with a driver bound cannot be
 * mapped (CONFIG_IO_STRICT_DEVMEM): it is reported, and counted as an
 * error, so that the caller unbinds what it wants scanned.
 */
#define IORESOURCE_MEM 0x200u

static int scan_bar(const char *bdf, int bar, uint64_t size, const char *text, uint64_t *bytes)
{
	char path[512];
	volatile uint32_t *p;
	uint32_t *copy;
	size_t tl = strlen(text);
	int fd, hits = 0;

	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/resource%d", bdf, bar);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("scan %s bar%d: cannot open: %s\n", bdf, bar, strerror(errno));
		return -1;
	}
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		printf("scan %s bar%d: cannot map: %s\n", bdf, bar, strerror(errno));
		return -1;
	}
	copy = malloc(size);
	if (!copy) {
		munmap((void *)p, size);
		return -1;
	}
	for (uint64_t i = 0; i < size / 4; i++)
		copy[i] = p[i];
	munmap((void *)p, size);
	for (const uint8_t *at = (const uint8_t *)copy, *end = at + size;
	     (at = memmem(at, (size_t)(end - at), text, tl)) != NULL; at += tl) {
		if (hits++ == 0)
			printf("scan %s bar%d: FOUND at offset 0x%zx\n", bdf, bar,
			       (size_t)(at - (const uint8_t *)copy));
	}
	printf("scan %s bar%d: %" PRIu64 " bytes, %d hit(s)\n", bdf, bar, size, hits);
	free(copy);
	*bytes += size;
	return hits;
}

static int cmd_scan(const char *text)
{
	DIR *dir = opendir(IVL__PCI_SYSFS);
	struct dirent *e;
	uint64_t bytes = 0;
	int bars = 0, hits = 0, errs = 0;

	if (!dir || !*text) {
		fprintf(stderr, "ivlink-probe: scan: %s\n", dir ? "empty text" : strerror(errno));
		if (dir)
			closedir(dir);
		return 1;
	}
	while ((e = readdir(dir)) != NULL) {
		char path[512], line[256];
		FILE *f;
		int bar = 0;

		if (e->d_name[0] == '.')
			continue;
		/* "start end flags" per resource; the first six are the BARs. */
		snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/resource", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (bar < 6 && fgets(line, sizeof(line), f)) {
			unsigned long long start, end, flags;

			if (sscanf(line, "%llx %llx %llx", &start, &end, &flags) == 3 &&
			    end > start && (flags & IORESOURCE_MEM)) {
				int h = scan_bar(e->d_name, bar, end - start + 1, text, &bytes);

				if (h < 0)
					errs++;
				else
					hits += h, bars++;
			}
			bar++;
		}
		fclose(f);
	}
	closedir(dir);
	printf("scan: %d memory BAR(s), %" PRIu64 " bytes, %d hit(s), %d not mappable\n", bars,
	       bytes, hits, errs);
	return hits ? 3 : errs ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *want_bdf = NULL, *want_name = NULL, *cmd;
	struct dev d;
	int opt;

	while ((opt = getopt(argc, argv, "d:n:h")) != -1) {
		switch (opt) {
		case 'd':
			want_bdf = optarg;
			break;
		case 'n':
			want_name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;

	if (strcmp(cmd, "list") == 0) {
		char bdfs[IVL__MAX_DEVICES][IVL__BDF_MAX], drv[64];
		int n = ivl__pci_list(bdfs, IVL__MAX_DEVICES), i;

		for (i = 0; i < n; i++) {
			ivl__pci_driver(bdfs[i], drv, sizeof(drv));
			printf("%s driver %s\n", bdfs[i], drv[0] ? drv : "none");
		}
		return n > 0 ? 0 : 1;
	}
	if (strcmp(cmd, "scan") == 0 && argc == 1)
		return cmd_scan(argv[0]);
	if (select_dev(want_bdf, want_name, &d) < 0)
		return 1;

	if (strcmp(cmd, "id") == 0 && argc == 0) {
		printf("%u\n", reg_read(&d, IVL__REG_IVPOSITION));
		return 0;
	}
	if (strcmp(cmd, "info") == 0 && argc == 0)
		return cmd_info(&d);
	if (strcmp(cmd, "heap") == 0 && argc == 1) {
		uint64_t id;

		if (parse_u64(argv[0], &id) < 0 || id >= IVL_PEERS_LIMIT)
			return 2;
		return cmd_heap(&d, (uint32_t)id);
	}
	if (strcmp(cmd, "read") == 0 && argc == 2) {
		uint64_t off, len;
		uint8_t *p;

		if (parse_u64(argv[0], &off) < 0 || parse_u64(argv[1], &len) < 0)
			return 2;
		p = at(&d, off, len);
		if (!p)
			return 1;
		print_hex(stdout, p, len);
		return 0;
	}
	if ((strcmp(cmd, "write") == 0 && argc == 2) || (strcmp(cmd, "expect") == 0 && argc == 2) ||
	    (strcmp(cmd, "wait") == 0 && (argc == 2 || argc == 3))) {
		uint64_t off, ms = 10000, t0;
		uint8_t *want, *p;
		size_t len;

		if (parse_u64(argv[0], &off) < 0 || parse_hex(argv[1], &want, &len) < 0 ||
		    (argc == 3 && parse_u64(argv[2], &ms) < 0))
			return 2;
		p = at(&d, off, len);
		if (!p)
			return 1;
		if (cmd[0] == 'w' && cmd[1] == 'r') {
			memcpy(p, want, len);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			return 0;
		}
		t0 = (uint64_t)ivl__now_ns() / 1000000u;
		for (;;) {
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (memcmp(p, want, len) == 0)
				return 0;
			if (cmd[0] == 'e' || ((uint64_t)ivl__now_ns() / 1000000u) - t0 >= ms)
				break;
			usleep(1000);
		}
		fprintf(stderr, "ivlink-probe: %s at %#" PRIx64 " failed: found ",
			cmd[0] == 'e' ? "expect" : "wait", off);
		print_hex(stderr, p, len);
		return 1;
	}
	if (strcmp(cmd, "ring") == 0 && argc == 2) {
		uint64_t peer, vec;

		if (parse_u64(argv[0], &peer) < 0 || parse_u64(argv[1], &vec) < 0 ||
		    peer > 0xffff || vec > 0xffff)
			return 2;
		ivl__reg_write(d.regs, IVL__REG_DOORBELL, (uint32_t)(peer << 16 | vec));
		return 0;
	}
	usage(stderr);
	return 2;
}
