/*
 * Modern virtio-pci transport (virtio 1.x, section 4.1), MSI-X only: what
 * Linux's virtio_pci and DPDK's virtio PMD drive. It implements the
 * transport side of vmm/virtio/virtio.h for any device type.
 *
 * The function: vendor 0x1AF4, device 0x1040 + device type, revision 1,
 * subsystem 0x1AF4 / 0x40 + type, class per type (net: 0x020000), no INTx.
 * One 64-bit memory BAR (BAR 0, VIRTIO_PCI_BAR_SIZE) holds every structure,
 * each on its own page:
 *
 *   0x0000 common configuration (virtio_pci_common_cfg, 0x38 bytes)
 *   0x1000 ISR status (1 byte, read clears)
 *   0x2000 device configuration (vdev->config_size, <= 4 KiB)
 *   0x3000 notifications: queue q at 0x3000 + 4*q (notify_off_multiplier 4)
 *   0x4000 MSI-X table (max_queues + 1 vectors)
 *   0x5000 MSI-X PBA
 *
 * Capabilities: MSI-X, then the virtio COMMON, NOTIFY, ISR, DEVICE (when
 * config_size > 0) and PCI_CFG (the BAR window in config space) structures.
 *
 * Data path without the monitor:
 * - Kicks: at DRIVER_OK every enabled queue gets a kick eventfd registered as
 *   a KVM ioeventfd (any access length, no datamatch) on its own notify
 *   address; the ioeventfds follow BAR moves and memory-decode changes. A
 *   notify write that still reaches the monitor (ioeventfd refused, or via
 *   the PCI_CFG window) signals the same eventfd; one that comes before
 *   DRIVER_OK is remembered and signalled at activation.
 * - Interrupts: every enabled queue gets a call eventfd, bound to its MSI-X
 *   vector (vmm/pci/msix.h: a KVM irqfd while the vector is unmasked).
 * - The device gets both fds in struct virtio_activation and hands them to
 *   its backend.
 *
 * What the guest writes is checked, never trusted: at DRIVER_OK every
 * enabled queue's size (power of two for split rings, <= queue_max_size)
 * and its three ring areas (size and alignment per the negotiated ring
 * layout) must lie inside guest RAM, else the device sets NEEDS_RESET and
 * nothing reaches the device. Features outside the offer (or without
 * VERSION_1) fail FEATURES_OK. Queue registers are frozen after DRIVER_OK;
 * out-of-range selectors read 0 and ignore writes; any offset and width
 * (1, 2, 4, 8, unaligned) is handled byte-exactly. One recursive lock per
 * device (the pci_dev's) guards all state, and the device's ops run under it:
 * a device may call vdev->config_changed from inside them.
 */
#ifndef RTVMM_VIRTIO_PCI_H
#define RTVMM_VIRTIO_PCI_H

#include <stdint.h>

#include "vmm/guest_mem.h"
#include "vmm/irq.h"
#include "vmm/pci/pci.h"
#include "vmm/virtio/virtio.h"

#define VIRTIO_PCI_VENDOR_ID        0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE   0x1040
#define VIRTIO_PCI_SUBSYS_ID_BASE   0x0040
#define VIRTIO_PCI_REVISION         1

#define VIRTIO_PCI_BAR              0
#define VIRTIO_PCI_COMMON_OFF       0x0000
#define VIRTIO_PCI_COMMON_SIZE      0x38
#define VIRTIO_PCI_ISR_OFF          0x1000
#define VIRTIO_PCI_DEVICE_OFF       0x2000
#define VIRTIO_PCI_DEVICE_MAX       0x1000
#define VIRTIO_PCI_NOTIFY_OFF       0x3000
#define VIRTIO_PCI_NOTIFY_MULT      4
#define VIRTIO_PCI_MSIX_TABLE_OFF   0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF     0x5000
#define VIRTIO_PCI_BAR_SIZE         0x8000

/* What the transport needs from the VM. */
struct virtio_pci_env {
	struct pci_bus *pci;
	int vm_fd;                  /* ioeventfd, irqfd, KVM_SIGNAL_MSI */
	struct irq_routing *irqs;   /* MSI routes for the MSI-X vectors */
	const struct guest_mem *mem;/* ring addresses must lie inside it */
};

struct virtio_pci;

struct virtio_pci_stats {
	uint64_t activations;       /* successful DRIVER_OKs */
	uint64_t needs_reset;       /* times NEEDS_RESET was set */
	uint64_t features_rejected; /* FEATURES_OK refused */
	uint64_t ignored_writes;    /* writes the state did not allow (RO, frozen, out of range) */
	uint64_t exit_kicks;        /* notifies that reached the monitor instead of an ioeventfd */
	uint64_t ioeventfd_errors;  /* KVM_IOEVENTFD refused (those kicks then exit) */
	uint64_t irqfd_errors;      /* from MSI-X: KVM_IRQFD refused */
	uint64_t route_errors;      /* from MSI-X: no MSI route */
	uint64_t interrupts;        /* from MSI-X: messages the monitor sent (config changes, its own queues) */
	bool driver_ok;             /* activated and not reset since */
	char last_error[160];       /* why NEEDS_RESET was last set ("" if never) */
};

/*
 * Creates the PCI function for `vdev` and plugs it into env->pci (before
 * vCPUs start). Sets vdev->transport and vdev->config_changed. `vdev` must
 * have a device_id in 1..63 and offer 1..
 * VIRTIO_MAX_QUEUES queues of a power-of-two queue_max_size <= 32768 and
 * config_size <= VIRTIO_PCI_DEVICE_MAX, and have features, activate and
 * reset ops (config_read/write when config_size > 0).
 * Returns 0, -EINVAL, -ENOMEM or -ENOSPC (bus full).
 */
__attribute__((warn_unused_result))
int virtio_pci__add(const struct virtio_pci_env *env, struct virtio_dev *vdev,
		    struct virtio_pci **out);

/*
 * Stops the device (ops->reset if it was active), releases its fds and
 * frees it. Call once vCPUs are stopped, before pci_bus__destroy.
 */
void virtio_pci__destroy(struct virtio_pci *vp);

void virtio_pci__get_stats(struct virtio_pci *vp, struct virtio_pci_stats *st);

/* How a VM holds a virtio-pci function (vmm/device.h): its report and counters are its device's, with the transport's. */
extern const struct device_ops virtio_pci__device_ops;

#endif
