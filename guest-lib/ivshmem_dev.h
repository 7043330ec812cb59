/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/: the ivshmem PCI device (1af4:1110) as a guest
 * sees it, reached through VFIO (interrupts) or through sysfs resource files
 * (no driver, no interrupts). Shared by the guest backend (backend_vfio.c),
 * the guest agent (guestd.c) and the static guest tools in vm-configs/guest.
 *
 * Register layout of BAR0 from QEMU's docs/specs/ivshmem-spec.rst: IntrMask
 * at 0, IntrStatus at 4 (both unused with MSI-X), IVPosition at 8 (the peer
 * id the server assigned, read only), Doorbell at 12 (write
 * peer_id << 16 | vector). BAR1 holds the MSI-X table, BAR2 the region.
 *
 * Facts this code relies on (design.md, "In a guest"): vfio-pci needs an
 * IOMMU group (a vIOMMU with interrupt remapping); QEMU drops MSI-X messages
 * unless the PCI command register's bus-master bit is set; this 6.1 kernel
 * cannot grow the set of enabled MSI-X vectors later, so all are enabled at
 * once and re-pointed one at a time; once vfio-pci owns the device, its
 * sysfs resource files cannot be mapped (CONFIG_IO_STRICT_DEVMEM).
 *
 * Every function returns >= 0 or -errno and logs through the given log.
 */
#ifndef IVLINK_GUEST_LIB_IVSHMEM_DEV_H
#define IVLINK_GUEST_LIB_IVSHMEM_DEV_H

#include <stdint.h>

#include <ivlink/layout.h>

#include "backend.h"

#define IVL__IVSHMEM_VENDOR 0x1af4u
#define IVL__IVSHMEM_DEVICE 0x1110u

#define IVL__REG_INTRMASK   0u
#define IVL__REG_INTRSTATUS 4u
#define IVL__REG_IVPOSITION 8u
#define IVL__REG_DOORBELL   12u

#define IVL__PCI_SYSFS	 "/sys/bus/pci/devices"
#define IVL__BDF_MAX	 32
#define IVL__MAX_DEVICES 16

/* PCI command register (PCI Local Bus spec 3.0, 6.2.2). */
#define IVL__PCI_CFG_COMMAND 0x04u
#define IVL__PCI_CMD_MEMORY  0x2u
#define IVL__PCI_CMD_MASTER  0x4u

/* Which device a URI target names: "" (the first usable one), a PCI
 * address ("0000:00:03.0" or "00:03.0"), or "name=<region name>". */
struct ivl__dev_sel {
	char bdf[IVL__BDF_MAX];
	char name[IVL_REGION_NAME_MAX];
};

int ivl__dev_sel_parse(const char *target, struct ivl__dev_sel *sel);
/* Does the selector accept bdf (before the region is looked at)? */
int ivl__dev_sel_bdf_ok(const struct ivl__dev_sel *sel, const char *bdf);
/* Does the mapped region (validated header) carry the selected name? */
int ivl__dev_sel_region_ok(const struct ivl__dev_sel *sel, const void *mem, uint64_t size);

/* PCI addresses of every ivshmem device, in sysfs order. Returns the count. */
int ivl__pci_list(char (*bdfs)[IVL__BDF_MAX], int max);
/* 1 if bdf is in an IOMMU group (VFIO possible), else 0. */
int ivl__pci_has_iommu_group(const char *bdf);
/* Name of the driver bound to bdf ("" when none). */
void ivl__pci_driver(const char *bdf, char *buf, size_t len);

/* A device opened through VFIO, BAR0 and BAR2 mapped. */
struct ivl__vfio_dev {
	char bdf[IVL__BDF_MAX];
	int container, group, device; /* -1 when not open */
	volatile uint32_t *regs;      /* BAR0 */
	void *mem;		      /* BAR2: the region */
	uint64_t mem_size;
	uint32_t n_irqs; /* MSI-X vectors of the device */
};

/*
 * Binds bdf to vfio-pci (driver_override) unless it already is, opens the
 * container, group and device, sets memory + bus master, maps BAR0/BAR2.
 * Returns 0, -ENODEV (no IOMMU group: no vIOMMU), -EBUSY (another process
 * holds the group: use the agent), or -errno.
 */
int ivl__vfio_open(struct ivl__vfio_dev *d, const char *bdf, const struct ivl__log *log);
/* Maps BAR0/BAR2 of an open VFIO device fd (a client of the agent). */
int ivl__vfio_map(int device, volatile uint32_t **regs, void **mem, uint64_t *mem_size,
		  uint32_t *n_irqs);
void ivl__vfio_unmap(volatile uint32_t *regs, void *mem, uint64_t mem_size);
/*
 * Points MSI-X vectors start..start+count-1 at fds (VFIO_DEVICE_SET_IRQS).
 * The first call must enable all vectors; later calls may re-point any
 * subset. fds NULL with count 0 disables MSI-X.
 */
int ivl__vfio_set_irqs(int device, uint32_t start, uint32_t count, const int *fds);
void ivl__vfio_close(struct ivl__vfio_dev *d);

/* A device mapped through sysfs resource0/resource2, no driver bound. */
struct ivl__sysfs_dev {
	char bdf[IVL__BDF_MAX];
	volatile uint32_t *regs;
	uint64_t regs_map;
	void *mem;
	uint64_t mem_size;
};

/*
 * Copies the region header of bdf through sysfs resource2 (first page, read
 * only; no driver may be bound) and validates it against the BAR's size.
 * Returns 0, -EBUSY (a driver is bound), -EPROTO (no valid region), -errno.
 */
int ivl__sysfs_read_hdr(const char *bdf, struct ivl_region_hdr *h, uint64_t *bar_size);

/* Returns 0, -EBUSY (a driver is bound), or -errno. */
int ivl__sysfs_open(struct ivl__sysfs_dev *d, const char *bdf, const struct ivl__log *log);
void ivl__sysfs_close(struct ivl__sysfs_dev *d);

static inline uint32_t ivl__reg_read(volatile uint32_t *regs, uint32_t off)
{
	return regs[off / 4];
}

static inline void ivl__reg_write(volatile uint32_t *regs, uint32_t off, uint32_t v)
{
	regs[off / 4] = v;
}

#endif /* IVLINK_GUEST_LIB_IVSHMEM_DEV_H */
