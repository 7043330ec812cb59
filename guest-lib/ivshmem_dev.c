/* SPDX-License-Identifier: MIT */
/* The ivshmem PCI device through VFIO or sysfs: see ivshmem_dev.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "ivshmem_dev.h"

/* ---------------------------------------------------------------- selection */

int ivl__dev_sel_parse(const char *target, struct ivl__dev_sel *sel)
{
	memset(sel, 0, sizeof(*sel));
	if (!target || !*target)
		return 0;
	if (strncmp(target, "name=", 5) == 0) {
		if (strlen(target + 5) == 0 || strlen(target + 5) >= sizeof(sel->name))
			return -EINVAL;
		strcpy(sel->name, target + 5);
		return 0;
	}
	/* A PCI address: domain:bus:dev.fn, the domain optional. */
	if (strlen(target) + 5 >= sizeof(sel->bdf) || strchr(target, '/') || !strchr(target, ':'))
		return -EINVAL;
	if (strlen(target) == 7) /* "00:03.0" */
		snprintf(sel->bdf, sizeof(sel->bdf), "0000:%s", target);
	else
		snprintf(sel->bdf, sizeof(sel->bdf), "%s", target);
	return 0;
}

int ivl__dev_sel_bdf_ok(const struct ivl__dev_sel *sel, const char *bdf)
{
	return !sel->bdf[0] || strcmp(sel->bdf, bdf) == 0;
}

int ivl__dev_sel_region_ok(const struct ivl__dev_sel *sel, const void *mem, uint64_t size)
{
	struct ivl_region rg;

	if (ivl_region_attach(&rg, (void *)mem, size) < 0)
		return 0;
	if (!sel->name[0])
		return 1;
	return strncmp(rg.hdr.name, sel->name, sizeof(rg.hdr.name)) == 0;
}

/* ---------------------------------------------------------------- sysfs */

static int read_hex_file(const char *path, unsigned long *out)
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

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		rc = -errno;
	close(fd);
	return rc;
}

int ivl__pci_list(char (*bdfs)[IVL__BDF_MAX], int max)
{
	DIR *d = opendir(IVL__PCI_SYSFS);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL && n < max) {
		char path[512];
		unsigned long ven = 0, dev = 0;
		size_t nl = strlen(e->d_name);

		if (e->d_name[0] == '.' || nl >= IVL__BDF_MAX)
			continue;
		snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/vendor", e->d_name);
		if (read_hex_file(path, &ven) < 0 || ven != IVL__IVSHMEM_VENDOR)
			continue;
		snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/device", e->d_name);
		if (read_hex_file(path, &dev) < 0 || dev != IVL__IVSHMEM_DEVICE)
			continue;
		memcpy(bdfs[n], e->d_name, nl + 1);
		n++;
	}
	closedir(d);
	/* readdir order is arbitrary: sort so that "the first device" is
	 * the same for every process. */
	qsort(bdfs, (size_t)n, IVL__BDF_MAX, (int (*)(const void *, const void *))strcmp);
	return n;
}

int ivl__pci_has_iommu_group(const char *bdf)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/iommu_group", bdf);
	return stat(path, &st) == 0;
}

void ivl__pci_driver(const char *bdf, char *buf, size_t len)
{
	char path[512], target[512];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/driver", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	target[n] = '\0';
	base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	snprintf(buf, len, "%s", base);
}

/* ---------------------------------------------------------------- VFIO */

static int bind_vfio(const char *bdf, const struct ivl__log *log)
{
	char path[512], drv[64];
	int rc;

	if (!ivl__pci_has_iommu_group(bdf)) {
		ivl__logf(log, IVL_LOG_INFO,
			  "%s: no IOMMU group, so no VFIO and no interrupts: the guest needs a "
			  "vIOMMU (-device intel-iommu,intremap=on,caching-mode=on and "
			  "intel_iommu=on); only the polling fallback works",
			  bdf);
		return -ENODEV;
	}
	ivl__pci_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci") == 0)
		return 0;
	if (drv[0]) {
		snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/driver/unbind", bdf);
		rc = write_str(path, bdf);
		if (rc < 0) {
			ivl__logf(log, IVL_LOG_ERROR, "%s: unbind %s: %s", bdf, drv, strerror(-rc));
			return rc;
		}
	}
	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/driver_override", bdf);
	rc = write_str(path, "vfio-pci");
	if (rc < 0) {
		ivl__logf(log, IVL_LOG_ERROR, "%s: driver_override: %s", bdf, strerror(-rc));
		return rc;
	}
	rc = write_str("/sys/bus/pci/drivers_probe", bdf);
	ivl__pci_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci") != 0) {
		ivl__logf(log, IVL_LOG_ERROR,
			  "%s: vfio-pci did not take the device (%s; is the "
			  "vfio-pci module loaded?)",
			  bdf, rc < 0 ? strerror(-rc) : "no error");
		return -ENODEV;
	}
	return 0;
}

static int region_info(int device, uint32_t index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, ri) < 0 ? -errno : 0;
}

int ivl__vfio_map(int device, volatile uint32_t **regs, void **mem, uint64_t *mem_size,
		  uint32_t *n_irqs)
{
	struct vfio_irq_info ii = {.argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX};
	struct vfio_region_info r0, r2;
	void *p0, *p2;
	int rc;

	rc = region_info(device, VFIO_PCI_BAR0_REGION_INDEX, &r0);
	if (rc == 0)
		rc = region_info(device, VFIO_PCI_BAR2_REGION_INDEX, &r2);
	if (rc < 0)
		return rc;
	if (!(r0.flags & VFIO_REGION_INFO_FLAG_MMAP) || !(r2.flags & VFIO_REGION_INFO_FLAG_MMAP) ||
	    r2.size < IVL_REGION_MIN_SIZE)
		return -ENOTSUP;
	if (ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
		return -errno;
	if (ii.count == 0 || ii.count > IVL_VECTORS_LIMIT)
		return -EPROTO;
	/* BAR0 is 256 bytes; a mapping is at least a page. */
	p0 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, device, (off_t)r0.offset);
	if (p0 == MAP_FAILED)
		return -errno;
	p2 = mmap(NULL, r2.size, PROT_READ | PROT_WRITE, MAP_SHARED, device, (off_t)r2.offset);
	if (p2 == MAP_FAILED) {
		rc = -errno;
		munmap(p0, 4096);
		return rc;
	}
	*regs = p0;
	*mem = p2;
	*mem_size = r2.size;
	*n_irqs = ii.count;
	return 0;
}

void ivl__vfio_unmap(volatile uint32_t *regs, void *mem, uint64_t mem_size)
{
	if (regs)
		munmap((void *)regs, 4096);
	if (mem)
		munmap(mem, mem_size);
}

int ivl__vfio_set_irqs(int device, uint32_t start, uint32_t count, const int *fds)
{
	size_t sz = sizeof(struct vfio_irq_set) + sizeof(int) * count;
	struct vfio_irq_set *set = calloc(1, sz);
	int rc = 0;

	if (!set)
		return -ENOMEM;
	set->argsz = (uint32_t)sz;
	set->flags = (fds ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
		     VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = start;
	set->count = count;
	if (fds)
		memcpy(set->data, fds, sizeof(int) * count);
	if (ioctl(device, VFIO_DEVICE_SET_IRQS, set) < 0)
		rc = -errno;
	free(set);
	return rc;
}

void ivl__vfio_close(struct ivl__vfio_dev *d)
{
	ivl__vfio_unmap(d->regs, d->mem, d->mem_size);
	d->regs = NULL;
	d->mem = NULL;
	if (d->device >= 0)
		close(d->device);
	if (d->group >= 0)
		close(d->group);
	if (d->container >= 0)
		close(d->container);
	d->device = d->group = d->container = -1;
}

int ivl__vfio_open(struct ivl__vfio_dev *d, const char *bdf, const struct ivl__log *log)
{
	struct vfio_group_status gs = {.argsz = sizeof(gs)};
	struct vfio_region_info ri;
	char path[600], link[512], *g;
	ssize_t n;
	uint16_t cmd;
	int rc;

	memset(d, 0, sizeof(*d));
	d->container = d->group = d->device = -1;
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	rc = bind_vfio(bdf, log);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return -ENODEV;
	link[n] = '\0';
	g = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	snprintf(path, sizeof(path), "/dev/vfio/%s", g);

	d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (d->container < 0) {
		rc = -errno;
		ivl__logf(log, IVL_LOG_ERROR, "open /dev/vfio/vfio: %s", strerror(-rc));
		goto fail;
	}
	rc = -EPROTO;
	if (ioctl(d->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    !ioctl(d->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)) {
		ivl__logf(log, IVL_LOG_ERROR, "VFIO: no API v%d with a type1v2 IOMMU",
			  VFIO_API_VERSION);
		goto fail;
	}
	d->group = open(path, O_RDWR | O_CLOEXEC);
	if (d->group < 0) {
		rc = -errno;
		/* A group is opened by one process at a time. */
		ivl__logf(log, rc == -EBUSY ? IVL_LOG_INFO : IVL_LOG_ERROR, "%s: open %s: %s%s",
			  bdf, path, strerror(-rc),
			  rc == -EBUSY ? " (another process owns the device: run ivlink-guestd "
					 "to share it)"
				       : "");
		goto fail;
	}
	if (ioctl(d->group, VFIO_GROUP_GET_STATUS, &gs) < 0 ||
	    !(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		rc = -EBUSY;
		ivl__logf(log, IVL_LOG_ERROR, "%s: VFIO group %s not viable", bdf, g);
		goto fail;
	}
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) < 0 ||
	    ioctl(d->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
		rc = -errno;
		ivl__logf(log, IVL_LOG_ERROR,
			  "%s: VFIO container: %s (interrupt remapping off? intremap=on)", bdf,
			  strerror(-rc));
		goto fail;
	}
	d->device = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (d->device < 0) {
		rc = -errno;
		ivl__logf(log, IVL_LOG_ERROR, "%s: VFIO_GROUP_GET_DEVICE_FD: %s", bdf,
			  strerror(-rc));
		goto fail;
	}
	/* Memory decoding and bus master: without the latter QEMU drops the
	 * device's MSI-X messages silently (design.md). */
	rc = region_info(d->device, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (rc < 0)
		goto fail;
	if (pread(d->device, &cmd, 2, (off_t)(ri.offset + IVL__PCI_CFG_COMMAND)) != 2) {
		rc = -EIO;
		goto fail;
	}
	cmd |= IVL__PCI_CMD_MEMORY | IVL__PCI_CMD_MASTER;
	if (pwrite(d->device, &cmd, 2, (off_t)(ri.offset + IVL__PCI_CFG_COMMAND)) != 2) {
		rc = -EIO;
		goto fail;
	}
	rc = ivl__vfio_map(d->device, &d->regs, &d->mem, &d->mem_size, &d->n_irqs);
	if (rc < 0) {
		ivl__logf(log, IVL_LOG_ERROR, "%s: mapping BAR0/BAR2: %s", bdf, strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	ivl__vfio_close(d);
	return rc;
}

/* ---------------------------------------------------------------- sysfs BARs */

static int enable_memory(const char *bdf)
{
	char path[512];
	uint8_t cmd[2];
	int fd, rc = 0;

	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/config", bdf);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (pread(fd, cmd, 2, IVL__PCI_CFG_COMMAND) != 2) {
		rc = -EIO;
	} else if (!(cmd[0] & IVL__PCI_CMD_MEMORY)) {
		cmd[0] |= IVL__PCI_CMD_MEMORY;
		if (pwrite(fd, cmd, 2, IVL__PCI_CFG_COMMAND) != 2)
			rc = -EIO;
	}
	close(fd);
	return rc;
}

static void *map_resource(const char *bdf, int bar, uint64_t *size, int *err)
{
	char path[512];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/resource%d", bdf, bar);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		close(fd);
		*err = -EIO;
		return NULL;
	}
	*size = ((uint64_t)st.st_size + 4095) & ~(uint64_t)4095;
	p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	*err = p == MAP_FAILED ? -errno : 0;
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

int ivl__sysfs_open(struct ivl__sysfs_dev *d, const char *bdf, const struct ivl__log *log)
{
	char drv[64];
	int rc;

	memset(d, 0, sizeof(*d));
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	ivl__pci_driver(bdf, drv, sizeof(drv));
	if (drv[0]) {
		ivl__logf(log, IVL_LOG_ERROR,
			  "%s is bound to %s; polling mode maps the sysfs BARs, which needs no "
			  "driver bound",
			  bdf, drv);
		return -EBUSY;
	}
	rc = enable_memory(bdf);
	if (rc < 0)
		ivl__logf(log, IVL_LOG_WARN, "%s: cannot enable memory decoding: %s", bdf,
			  strerror(-rc));
	d->regs = map_resource(bdf, 0, &d->regs_map, &rc);
	if (!d->regs)
		goto fail;
	d->mem = map_resource(bdf, 2, &d->mem_size, &rc);
	if (!d->mem)
		goto fail;
	return 0;
fail:
	ivl__logf(log, IVL_LOG_ERROR, "%s: mapping sysfs BARs: %s", bdf, strerror(-rc));
	ivl__sysfs_close(d);
	return rc;
}

int ivl__sysfs_read_hdr(const char *bdf, struct ivl_region_hdr *h, uint64_t *bar_size)
{
	char path[512], drv[64];
	struct stat st;
	void *p;
	int fd, rc;

	ivl__pci_driver(bdf, drv, sizeof(drv));
	if (drv[0])
		return -EBUSY;
	/* Without memory decoding the BAR reads as all ones. */
	enable_memory(bdf);
	snprintf(path, sizeof(path), IVL__PCI_SYSFS "/%s/resource2", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(*h)) {
		close(fd);
		return -EIO;
	}
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	rc = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (rc < 0)
		return rc;
	/* Read once into private memory, then validate only the copy. */
	memcpy(h, p, sizeof(*h));
	munmap(p, 4096);
	*bar_size = (uint64_t)st.st_size;
	return ivl_region_hdr_validate(h, *bar_size) < 0 ? -EPROTO : 0;
}

void ivl__sysfs_close(struct ivl__sysfs_dev *d)
{
	if (d->regs)
		munmap((void *)d->regs, d->regs_map);
	if (d->mem)
		munmap(d->mem, d->mem_size);
	d->regs = NULL;
	d->mem = NULL;
}
