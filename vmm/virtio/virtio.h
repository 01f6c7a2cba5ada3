/*
 * The contract between a virtio transport (vmm/virtio/pci.c: modern
 * virtio-pci with MSI-X) and a virtio device (net, later blk/console).
 * The transport owns feature negotiation, queue registers, notifications
 * (ioeventfd per queue), interrupts (MSI-X vectors via irqfd) and the checks
 * on what the guest wrote; the device owns its config space and data path.
 */
#ifndef RTVMM_VIRTIO_VIRTIO_H
#define RTVMM_VIRTIO_VIRTIO_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/state.h"

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
	/*
	 * The transport's load (a snapshot's DRIVER_OK) activates: the device
	 * starts its rings where its own load (device_ops.load, called before
	 * the transport's) said they stood, not at 0, once thawed (the load left
	 * it frozen); -EINVAL when it loaded no activation. False for the
	 * driver's own DRIVER_OK.
	 */
	bool resume;
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

/*
 * Saved states (device_ops.save/load): each begins with the version, then the
 * kind, both u32 (base/state.h). A load refuses another version or kind.
 */
#define VIRTIO_STATE_VERSION 1u
#define VIRTIO_STATE_KIND(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define VIRTIO_STATE_PCI        VIRTIO_STATE_KIND('v', 'p', 'c', 'i')   /* pci.c's transport */
#define VIRTIO_STATE_NET        VIRTIO_STATE_KIND('v', 'n', 'e', 't')   /* net.c */
#define VIRTIO_STATE_BLK        VIRTIO_STATE_KIND('v', 'b', 'l', 'k')   /* blk.c */
#define VIRTIO_STATE_VHOST_BLK  VIRTIO_STATE_KIND('v', 'u', 'b', 'k')   /* vhost_blk.c */

/* How long a freeze waits for a device's thread to stop its rings (vhost-user: its backend). */
#define VIRTIO_FREEZE_TIMEOUT_MS 5000

static inline void virtio_state__begin(struct state_out *out, uint32_t kind)
{
	state_out__u32(out, VIRTIO_STATE_VERSION);
	state_out__u32(out, kind);
}

/* Reads and checks the version and kind: 0, or -EINVAL with why (naming `what`, "net0"). */
static inline int virtio_state__check_begin(struct state_in *in, uint32_t kind, const char *what,
					    char *why, size_t why_len)
{
	uint32_t version = state_in__u32(in), got = state_in__u32(in);

	if (in->err) {
		snprintf(why, why_len, "%s: state of %zu bytes, shorter than its header", what, in->len);
		return -EINVAL;
	}
	if (version != VIRTIO_STATE_VERSION) {
		snprintf(why, why_len, "%s: state version %u, this rtvmm reads version %u", what,
			 version, VIRTIO_STATE_VERSION);
		return -EINVAL;
	}
	if (got != kind) {
		snprintf(why, why_len, "%s: a state of kind %#x, not this device's (%#x)", what, got, kind);
		return -EINVAL;
	}
	return 0;
}

/* Writes why a state is refused into `why` and returns -EINVAL (a load's refusal). */
__attribute__((format(printf, 3, 4)))
static inline int virtio_state__refuse(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The first feature bit in `bits` (for messages naming it); 64 when none. */
static inline unsigned virtio__first_bit(uint64_t bits)
{
	return bits ? (unsigned)__builtin_ctzll(bits) : 64;
}

#endif
