/* SPDX-License-Identifier: MIT */
/*
 * Private header of the guest tools (ivlink-probe, ivlink-vfio-probe): the
 * ivshmem PCI device as a guest sees it, and sysfs helpers to find it.
 *
 * Register layout of BAR0 from QEMU's docs/specs/ivshmem-spec.txt: IntrMask
 * at 0, IntrStatus at 4 (both unused with MSI-X), IVPosition at 8 (the
 * peer id the server assigned, read only), Doorbell at 12 (write
 * peer_id << 16 | vector). BAR1 holds the MSI-X table, BAR2 the region.
 */
#ifndef IVL_GUEST_IVSHMEM_PCI_H
#define IVL_GUEST_IVSHMEM_PCI_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IVSHMEM_VENDOR 0x1af4u
#define IVSHMEM_DEVICE 0x1110u

#define IVSHMEM_REG_INTRMASK   0u
#define IVSHMEM_REG_INTRSTATUS 4u
#define IVSHMEM_REG_IVPOSITION 8u
#define IVSHMEM_REG_DOORBELL   12u

#define PCI_SYSFS "/sys/bus/pci/devices"

/* PCI command register (PCI Local Bus spec 3.0, 6.2.2). */
#define PCI_CFG_COMMAND 0x04u
#define PCI_CMD_MEMORY	0x2u
#define PCI_CMD_MASTER	0x4u

static inline int ivsh_read_hex_file(const char *path, unsigned long *out)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	*out = strtoul(buf, NULL, 16);
	return 0;
}

/*
 * Fills bdfs (up to max entries, each 32 bytes) with the PCI addresses of
 * every ivshmem device, in sysfs order. Returns the count or -errno.
 */
static inline int ivsh_find_devices(char (*bdfs)[32], int max)
{
	DIR *d = opendir(PCI_SYSFS);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL && n < max) {
		char path[512];
		unsigned long ven = 0, dev = 0;
		size_t nl = strlen(e->d_name);

		if (e->d_name[0] == '.' || nl >= 32)
			continue;
		snprintf(path, sizeof(path), PCI_SYSFS "/%s/vendor", e->d_name);
		if (ivsh_read_hex_file(path, &ven) < 0 || ven != IVSHMEM_VENDOR)
			continue;
		snprintf(path, sizeof(path), PCI_SYSFS "/%s/device", e->d_name);
		if (ivsh_read_hex_file(path, &dev) < 0 || dev != IVSHMEM_DEVICE)
			continue;
		memcpy(bdfs[n], e->d_name, nl + 1);
		n++;
	}
	closedir(d);
	return n;
}

/* Name of the driver bound to bdf into buf ("" when none). */
static inline void ivsh_driver(const char *bdf, char *buf, size_t len)
{
	char path[512], target[512];
	const char *base;
	size_t bl;
	ssize_t n;

	snprintf(path, sizeof(path), PCI_SYSFS "/%s/driver", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	target[n] = '\0';
	base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	bl = strlen(base);
	if (bl >= len)
		bl = len - 1;
	memcpy(buf, base, bl);
	buf[bl] = '\0';
}

#endif /* IVL_GUEST_IVSHMEM_PCI_H */
