/*
 * The contract between a virtio transport (vmm/virtio/pci.c: modern
 * virtio-pci with MSI-X) and a virtio device (net, later blk/console).
 * The transport owns feature negotiation, queue registers, notifications
 * (ioeventfd per queue), interrupts (MSI-X vectors via irqfd) and the checks
 * on what the guest wrote; the device owns its config space and data path.
 */
#ifndef RTVMM_VIRTIO_VIRTIO_H
#define RTVMM_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/device.h"
#include "vmm/guest_mem.h"

/* Feature bits of every device type (virtio 1.x, 6). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32
#define VIRTIO_F_RING_PACKED        34

#define VIRTIO_MAX_QUEUES 34          /* 16 queue pairs + control + spare */
#define VIRTIO_NO_VECTOR  0xffff

/* One virtqueue as the driver configured it, validated by the transport. */
struct virtio_queue {
	uint16_t size;                /* entries, power of two */
	bool enabled;
	uint64_t desc, driver, device;/* guest-physical ring addresses, checked to lie in guest RAM */
	uint16_t msix_vector;
	int kick_fd;                  /* eventfd signalled by a KVM ioeventfd on the notify address */
	int call_fd;                  /* eventfd wired to a KVM irqfd on the queue's MSI route */
};

/* What a device gets when the driver sets DRIVER_OK. */
struct virtio_activation {
	uint64_t features;            /* negotiated */
	unsigned nr_queues;
	struct virtio_queue *queues;  /* nr_queues entries (disabled ones have enabled == false) */
	const struct guest_mem *mem;
};

struct virtio_dev;

struct virtio_dev_ops {
	/* Features the device offers (VIRTIO_F_VERSION_1 is added by the transport). */
	uint64_t (*features)(struct virtio_dev *vdev);
	/* Device-specific config space (virtio 1.x section 4.1.4.6); off/len bounded by config_size. */
	void (*config_read)(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *vdev, uint32_t off, const void *data, uint32_t len);
	/* DRIVER_OK: start the data path. A negative return sets DEVICE_NEEDS_RESET. */
	int (*activate)(struct virtio_dev *vdev, const struct virtio_activation *a);
	/* The driver reset the device (status 0) or the VM stops: stop the data path (may finish later). */
	void (*reset)(struct virtio_dev *vdev);
	/* Optional: the last reset is still finishing; status does not read 0 until it is done. */
	bool (*resetting)(struct virtio_dev *vdev);
	/* Optional: the transport goes away; config_changed is never called once this returns. */
	void (*detach)(struct virtio_dev *vdev);
	/* Stop report: the device's counters, with the transport's (`transport`) after its own state. */
	void (*report)(struct virtio_dev *vdev, FILE *out, const char *transport);
	/* Optional: live counters and backend state, from any thread (device_ops.counters' rules). */
	void (*counters)(struct virtio_dev *vdev, const struct counter_sink *sink);
};

struct virtio_dev {
	const char *name;             /* "net0", for messages */
	uint16_t device_id;           /* virtio device type: 1 = net */
	unsigned max_queues;
	uint16_t queue_max_size;
	uint32_t config_size;
	const struct virtio_dev_ops *ops;
	void *priv;                   /* the device's own state */
	/* Set by the transport: raises the configuration-change interrupt. */
	void (*config_changed)(struct virtio_dev *vdev);
	void *transport;
};

#endif
