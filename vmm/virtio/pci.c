#include "vmm/virtio/pci.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "vmm/pci/msix.h"

#define BIT(n) (1ULL << (n))
#define PAGE   0x1000u

/*
 * Features that reach the driver: the device type's own bits (0-23 and
 * 50-63) and the transport bits this transport implements or passes through
 * to the backend unchanged. Left out: ACCESS_PLATFORM (no IOMMU), SR_IOV,
 * NOTIFICATION_DATA (the notify address would carry more than the queue
 * index) and RING_RESET (no queue_reset register).
 */
#define DEVICE_FEATURE_BITS    ((BIT(24) - 1) | ~(BIT(50) - 1))
#define TRANSPORT_FEATURE_BITS (BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_RING_F_EVENT_IDX) | \
				BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) |            \
				BIT(VIRTIO_F_IN_ORDER) | BIT(VIRTIO_F_ORDER_PLATFORM))

#define QUEUE_MAX_SIZE 32768u
/* How long a reboot in place waits for a device (its backend) to let go of the old rings. */
#define VIRTIO_PCI_REBOOT_SETTLE_MS 1000u

/* Offsets inside the VIRTIO_PCI_CAP_PCI_CFG capability. */
#define PCI_CFG_CAP_LEN  20
#define PCI_CFG_CAP_DATA 16

struct vpci_queue {
	uint16_t size;             /* as the driver wrote it; checked at DRIVER_OK */
	uint16_t vector;
	bool enabled;
	uint64_t desc, driver, device;
	bool early_kick;           /* notified before DRIVER_OK: kick once activated */
	/* From DRIVER_OK to reset: */
	int kick_fd, call_fd;
	bool ioeventfd;            /* kick_fd is a KVM ioeventfd at ioev_addr */
	uint64_t ioev_addr;
	uint32_t ioev_len;
};

struct virtio_pci {
	struct pci_dev pci;        /* its lock guards everything below */
	struct virtio_dev *vdev;
	struct msix msix;
	int vm_fd;
	const struct guest_mem *mem;
	uint8_t pci_cfg_cap;

	uint64_t host_features;
	uint32_t dfselect, gfselect;
	uint64_t guest_features;
	uint16_t msix_config;
	uint16_t queue_select;
	uint8_t status;
	uint8_t reset_from;        /* status before a reset the device is still finishing, else 0 */
	uint8_t config_generation;
	uint8_t isr;
	bool active;               /* the device was activated and not reset since */
	bool logged;               /* the one NEEDS_RESET message was printed */
	struct vpci_queue q[VIRTIO_MAX_QUEUES];
	struct virtio_queue act[VIRTIO_MAX_QUEUES];
	struct virtio_pci_stats stats;
};

static struct virtio_pci *to_vp(struct pci_dev *dev)
{
	return (struct virtio_pci *)((char *)dev - offsetof(struct virtio_pci, pci));
}

static void put_le(uint8_t *p, uint32_t len, uint64_t v)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, uint32_t len)
{
	uint64_t v = 0;
	uint32_t i;

	for (i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- interrupts and failure --------------------------------------------------- */

static void config_interrupt(struct virtio_pci *vp)
{
	vp->isr |= VIRTIO_PCI_ISR_CONFIG;
	if (vp->msix_config != VIRTIO_MSI_NO_VECTOR)
		msix__notify(&vp->msix, vp->msix_config);
}

/*
 * The driver did something the device cannot work with: set NEEDS_RESET
 * (and tell a running driver through the config-change interrupt), record
 * why, print it the first time only (a guest must not flood the host log).
 */
__attribute__((format(printf, 2, 3)))
static void fail(struct virtio_pci *vp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vp->stats.last_error, sizeof(vp->stats.last_error), fmt, ap);
	va_end(ap);
	vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	vp->stats.needs_reset++;
	if (!vp->logged) {
		fprintf(stderr, "rtvmm: %s: virtio-pci: %s: device needs reset "
			"(further errors only counted)\n", vp->vdev->name, vp->stats.last_error);
		vp->logged = true;
	}
	if (vp->status & VIRTIO_CONFIG_S_DRIVER_OK)
		config_interrupt(vp);
}

static void config_changed(struct virtio_dev *vdev)
{
	struct virtio_pci *vp = vdev->transport;

	pthread_mutex_lock(&vp->pci.lock);
	vp->config_generation++;
	if (vp->status & VIRTIO_CONFIG_S_DRIVER_OK)
		config_interrupt(vp);
	pthread_mutex_unlock(&vp->pci.lock);
}

/* ---- notifications ------------------------------------------------------------ */

/*
 * Makes the KVM ioeventfds match the state: one per enabled queue of an
 * active device while BAR 0 decodes, at that queue's notify address.
 */
static void sync_ioeventfds(struct virtio_pci *vp)
{
	const struct pci_bar *bar = &vp->pci.bars[VIRTIO_PCI_BAR];
	unsigned i;

	for (i = 0; i < vp->vdev->max_queues; i++) {
		struct vpci_queue *q = &vp->q[i];
		uint64_t addr = bar->addr + VIRTIO_PCI_NOTIFY_OFF + i * VIRTIO_PCI_NOTIFY_MULT;
		bool want = vp->active && q->enabled && q->kick_fd >= 0 && bar->decoding;
		int err;

		if (q->ioeventfd && (!want || q->ioev_addr != addr)) {
			if (irq__ioeventfd(vp->vm_fd, q->ioev_addr, q->ioev_len, true, false, 0,
					   q->kick_fd, false))
				vp->stats.ioeventfd_errors++;
			q->ioeventfd = false;
		}
		if (!want || q->ioeventfd)
			continue;
		/*
		 * Length 0 matches any access width (KVM_CAP_IOEVENTFD_ANY_LENGTH)
		 * and is what KVM serves on its fast MMIO path; without that
		 * capability, 2 bytes: the queue index drivers write.
		 */
		q->ioev_len = 0;
		err = irq__ioeventfd(vp->vm_fd, addr, 0, true, false, 0, q->kick_fd, true);
		if (err == -EINVAL) {
			q->ioev_len = 2;
			err = irq__ioeventfd(vp->vm_fd, addr, 2, true, false, 0, q->kick_fd, true);
		}
		if (err) {
			vp->stats.ioeventfd_errors++;   /* kicks to this queue now exit: still work */
			continue;
		}
		q->ioeventfd = true;
		q->ioev_addr = addr;
	}
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* Only fails if the counter would overflow: the backend is already behind. */
	}
}

static void notify_write(struct virtio_pci *vp, uint32_t off)
{
	unsigned i = off / VIRTIO_PCI_NOTIFY_MULT;
	struct vpci_queue *q;

	if (off % VIRTIO_PCI_NOTIFY_MULT || i >= vp->vdev->max_queues) {
		vp->stats.ignored_writes++;
		return;
	}
	q = &vp->q[i];
	if (!vp->active) {
		q->early_kick = true;
	} else if (q->kick_fd >= 0) {
		vp->stats.exit_kicks++;
		signal_fd(q->kick_fd);
	} else {
		vp->stats.ignored_writes++;
	}
}

/* ---- activation and reset ------------------------------------------------------ */

/* Releases what activation created: ioeventfds, irqfds, eventfds. */
static void deactivate(struct virtio_pci *vp)
{
	unsigned i;

	vp->active = false;
	sync_ioeventfds(vp);
	for (i = 0; i < vp->vdev->max_queues; i++) {
		struct vpci_queue *q = &vp->q[i];

		msix__unbind(&vp->msix, i);
		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
		q->kick_fd = q->call_fd = -1;
	}
}

/* What the driver is offered: the device's features this transport passes, and VERSION_1. */
static uint64_t offered_features(struct virtio_pci *vp)
{
	struct virtio_dev *vdev = vp->vdev;

	return (vdev->ops->features(vdev) & (DEVICE_FEATURE_BITS | TRANSPORT_FEATURE_BITS)) |
	       BIT(VIRTIO_F_VERSION_1);
}

static void reset_state(struct virtio_pci *vp)
{
	struct virtio_dev *vdev = vp->vdev;
	unsigned i;

	vp->host_features = offered_features(vp);
	vp->dfselect = vp->gfselect = 0;
	vp->guest_features = 0;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->queue_select = 0;
	vp->status = 0;
	vp->isr = 0;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vp->q[i] = (struct vpci_queue){
			.size = vdev->queue_max_size,
			.vector = VIRTIO_MSI_NO_VECTOR,
			.kick_fd = -1,
			.call_fd = -1,
		};
}

static void reset(struct virtio_pci *vp)
{
	uint8_t from = vp->status;

	vp->vdev->ops->reset(vp->vdev);   /* stop the data path before its fds go */
	if (vp->active)
		deactivate(vp);
	reset_state(vp);
	/* The driver waits for status 0 before reusing the rings (virtio 1.x 4.1.4.3.2). */
	vp->reset_from = from;
}

/* The status the driver reads: the old one while the device is still finishing a reset. */
static uint8_t status_read(struct virtio_pci *vp)
{
	if (vp->status || !vp->reset_from)
		return vp->status;
	if (vp->vdev->ops->resetting && vp->vdev->ops->resetting(vp->vdev))
		return vp->reset_from;
	vp->reset_from = 0;
	return 0;
}

/* One guest-physical area a queue uses: it must be aligned and lie inside guest RAM. */
static bool area_ok(const struct virtio_pci *vp, uint64_t addr, uint64_t len, uint64_t align)
{
	return !(addr & (align - 1)) && guest_mem__ptr(vp->mem, addr, len);
}

/* Checks queue `i`, `q`, against virtio 1.x 2.7 (split) / 2.8 (packed); 0 or -EINVAL with `why`. */
static int check_queue(const struct virtio_pci *vp, const struct vpci_queue *q, unsigned i,
		       bool packed, char *why, size_t n)
{
	uint64_t size = q->size;
	const struct { const char *name; uint64_t addr, len, align; } areas[] = {
		{ "descriptor area", q->desc, 16 * size, 16 },
		{ "driver area", q->driver, packed ? 4 : 6 + 2 * size, packed ? 4 : 2 },
		{ "device area", q->device, packed ? 4 : 6 + 8 * size, 4 },
	};
	unsigned a;

	if (!size || size > vp->vdev->queue_max_size || (!packed && (size & (size - 1)))) {
		snprintf(why, n, "queue %u: size %u is not %s <= %u", i, q->size,
			 packed ? "between 1 and" : "a power of two", vp->vdev->queue_max_size);
		return -EINVAL;
	}
	for (a = 0; a < sizeof(areas) / sizeof(areas[0]); a++)
		if (!area_ok(vp, areas[a].addr, areas[a].len, areas[a].align)) {
			snprintf(why, n, "queue %u: %s [%#llx, +%llu) is not %llu-aligned inside guest RAM",
				 i, areas[a].name, (unsigned long long)areas[a].addr,
				 (unsigned long long)areas[a].len, (unsigned long long)areas[a].align);
			return -EINVAL;
		}
	return 0;
}

/*
 * DRIVER_OK: check every enabled queue, create and wire its eventfds, start
 * the device (`resume`: a snapshot's DRIVER_OK, the device's rings where its
 * load put them).
 */
static void activate(struct virtio_pci *vp, bool resume)
{
	struct virtio_dev *vdev = vp->vdev;
	bool packed = vp->guest_features & BIT(VIRTIO_F_RING_PACKED);
	struct virtio_activation a;
	char why[128];
	unsigned i;
	int err;

	for (i = 0; i < vdev->max_queues; i++)
		if (vp->q[i].enabled && check_queue(vp, &vp->q[i], i, packed, why, sizeof(why))) {
			fail(vp, "%s", why);
			return;
		}
	for (i = 0; i < vdev->max_queues; i++) {
		struct vpci_queue *q = &vp->q[i];

		vp->act[i] = (struct virtio_queue){ .msix_vector = VIRTIO_MSI_NO_VECTOR,
						    .kick_fd = -1, .call_fd = -1 };
		if (!q->enabled)
			continue;
		q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		q->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->kick_fd < 0 || q->call_fd < 0) {
			err = -errno;
			deactivate(vp);
			fail(vp, "queue %u: eventfd: %s", i, strerror(-err));
			return;
		}
		err = msix__bind(&vp->msix, i, q->call_fd, q->vector);
		if (err) {
			deactivate(vp);
			fail(vp, "queue %u: no MSI route for vector %u: %s", i, q->vector,
			     strerror(-err));
			return;
		}
		vp->act[i] = (struct virtio_queue){
			.size = q->size, .enabled = true,
			.desc = q->desc, .driver = q->driver, .device = q->device,
			.msix_vector = q->vector, .kick_fd = q->kick_fd, .call_fd = q->call_fd,
		};
	}
	vp->active = true;
	sync_ioeventfds(vp);
	for (i = 0; i < vdev->max_queues; i++) {
		struct vpci_queue *q = &vp->q[i];

		if (q->early_kick && q->kick_fd >= 0)
			signal_fd(q->kick_fd);
		q->early_kick = false;
	}
	a = (struct virtio_activation){
		.features = vp->guest_features,
		.nr_queues = vdev->max_queues,
		.queues = vp->act,
		.mem = vp->mem,
		.resume = resume,
	};
	err = vdev->ops->activate(vdev, &a);
	if (err) {
		deactivate(vp);
		fail(vp, "device refused to start: %s", strerror(err < 0 ? -err : err));
		return;
	}
	vp->stats.activations++;
}

static bool features_ok(const struct virtio_pci *vp)
{
	return !(vp->guest_features & ~vp->host_features) &&
	       (vp->guest_features & BIT(VIRTIO_F_VERSION_1));
}

static void status_write(struct virtio_pci *vp, uint8_t v)
{
	uint8_t old = vp->status;

	if (v == 0) {
		reset(vp);
		return;
	}
	v &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;      /* the device's bit */
	vp->status = old | v;                             /* only a reset clears bits */
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !features_ok(vp)) {
		vp->status &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		vp->stats.features_rejected++;
	}
	if ((vp->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
		if (!(vp->status & VIRTIO_CONFIG_S_FEATURES_OK))
			fail(vp, "DRIVER_OK without FEATURES_OK");
		else if (!(vp->status & VIRTIO_CONFIG_S_NEEDS_RESET))
			activate(vp, false);
	}
}

/* ---- common configuration ------------------------------------------------------ */

static struct vpci_queue *selected_queue(struct virtio_pci *vp)
{
	return vp->queue_select < vp->vdev->max_queues ? &vp->q[vp->queue_select] : NULL;
}

/* The common configuration structure as the driver would read it now. */
static void common_image(struct virtio_pci *vp, uint8_t img[VIRTIO_PCI_COMMON_SIZE])
{
	const struct vpci_queue *q = selected_queue(vp);

	memset(img, 0, VIRTIO_PCI_COMMON_SIZE);
	put_le(img + VIRTIO_PCI_COMMON_DFSELECT, 4, vp->dfselect);
	put_le(img + VIRTIO_PCI_COMMON_DF, 4,
	       vp->dfselect < 2 ? vp->host_features >> (32 * vp->dfselect) : 0);
	put_le(img + VIRTIO_PCI_COMMON_GFSELECT, 4, vp->gfselect);
	put_le(img + VIRTIO_PCI_COMMON_GF, 4,
	       vp->gfselect < 2 ? vp->guest_features >> (32 * vp->gfselect) : 0);
	put_le(img + VIRTIO_PCI_COMMON_MSIX, 2, vp->msix_config);
	put_le(img + VIRTIO_PCI_COMMON_NUMQ, 2, vp->vdev->max_queues);
	img[VIRTIO_PCI_COMMON_STATUS] = status_read(vp);
	img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_generation;
	put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, 2, vp->queue_select);
	if (!q) {   /* no such queue: size 0 tells the driver so */
		put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
		return;
	}
	put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
	put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, 2, q->vector);
	put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, 2, q->enabled);
	put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, 2, vp->queue_select);
	put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, 8, q->desc);
	put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, q->driver);
	put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, 8, q->device);
}

/* A vector the driver asks for, or NO_VECTOR if it does not exist or has no route. */
static uint16_t accept_vector(struct virtio_pci *vp, uint64_t v, bool needs_route)
{
	if (v == VIRTIO_MSI_NO_VECTOR)
		return VIRTIO_MSI_NO_VECTOR;
	if (v >= vp->msix.nr_vectors || (needs_route && msix__prepare(&vp->msix, (uint16_t)v))) {
		vp->stats.ignored_writes++;
		return VIRTIO_MSI_NO_VECTOR;
	}
	return (uint16_t)v;
}

static void set_half(uint64_t *reg, bool high, uint64_t v)
{
	if (high)
		*reg = (*reg & 0xffffffffULL) | (v << 32);
	else
		*reg = (*reg & ~0xffffffffULL) | (v & 0xffffffffULL);
}

/* A write of the whole field at `off` with value `v`. */
static void common_field_write(struct virtio_pci *vp, uint32_t off, uint64_t v)
{
	struct vpci_queue *q = selected_queue(vp);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GF:
		if (vp->gfselect > 1 ||
		    vp->status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK))
			break;
		set_half(&vp->guest_features, vp->gfselect, v);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		/* Sent with KVM_SIGNAL_MSI: no route needed. */
		vp->msix_config = accept_vector(vp, v, false);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		status_write(vp, (uint8_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		return;
	default:
		break;
	}
	/* Queue registers: only for an existing queue, and frozen once the device runs. */
	if (!q || vp->status & VIRTIO_CONFIG_S_DRIVER_OK) {
		vp->stats.ignored_writes++;
		return;
	}
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		q->size = (uint16_t)v;
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		q->vector = accept_vector(vp, v, true);
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (v == 1) {   /* 0 is not a valid write (virtio 1.1 4.1.4.3.2) */
			q->enabled = true;
			return;
		}
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		set_half(&q->desc, off == VIRTIO_PCI_COMMON_Q_DESCHI, v);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		set_half(&q->driver, off == VIRTIO_PCI_COMMON_Q_AVAILHI, v);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		set_half(&q->device, off == VIRTIO_PCI_COMMON_Q_USEDHI, v);
		return;
	default:
		break;   /* read-only: device_feature, num_queues, config_generation, queue_notify_off */
	}
	vp->stats.ignored_writes++;
}

/* Every field of the structure, in address order: 64-bit registers are two 32-bit halves. */
static const struct { uint8_t off, len; } common_fields[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_DF, 4 },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4 }, { VIRTIO_PCI_COMMON_GF, 4 },
	{ VIRTIO_PCI_COMMON_MSIX, 2 }, { VIRTIO_PCI_COMMON_NUMQ, 2 },
	{ VIRTIO_PCI_COMMON_STATUS, 1 }, { VIRTIO_PCI_COMMON_CFGGENERATION, 1 },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2 }, { VIRTIO_PCI_COMMON_Q_SIZE, 2 },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2 }, { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2 },
	{ VIRTIO_PCI_COMMON_Q_DESCLO, 4 }, { VIRTIO_PCI_COMMON_Q_DESCHI, 4 },
	{ VIRTIO_PCI_COMMON_Q_AVAILLO, 4 }, { VIRTIO_PCI_COMMON_Q_AVAILHI, 4 },
	{ VIRTIO_PCI_COMMON_Q_USEDLO, 4 }, { VIRTIO_PCI_COMMON_Q_USEDHI, 4 },
};

static void common_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	uint8_t img[VIRTIO_PCI_COMMON_SIZE];
	uint32_t i;

	common_image(vp, img);
	for (i = 0; i < len; i++)
		data[i] = off + i < VIRTIO_PCI_COMMON_SIZE ? img[off + i] : 0;
}

/*
 * Any write, of any width at any offset, acts as whole-field writes: the
 * written bytes are merged into the current image and every field they touch
 * is written with its merged value, in address order.
 */
static void common_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data, uint32_t len)
{
	uint8_t img[VIRTIO_PCI_COMMON_SIZE];
	uint32_t end = off + len, f;

	if (off >= VIRTIO_PCI_COMMON_SIZE) {
		vp->stats.ignored_writes++;
		return;
	}
	if (end > VIRTIO_PCI_COMMON_SIZE)
		end = VIRTIO_PCI_COMMON_SIZE;
	common_image(vp, img);
	memcpy(img + off, data, end - off);
	for (f = 0; f < sizeof(common_fields) / sizeof(common_fields[0]); f++) {
		uint32_t fo = common_fields[f].off, fl = common_fields[f].len;

		if (fo < end && off < fo + fl)
			common_field_write(vp, fo, get_le(img + fo, fl));
	}
}

/* ---- BAR 0 ----------------------------------------------------------------------- */

static void bar_access(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len,
		       bool is_write)
{
	struct virtio_dev *vdev = vp->vdev;
	uint32_t page = (uint32_t)(off & ~(uint64_t)(PAGE - 1)), o = (uint32_t)(off & (PAGE - 1));

	if (off >= VIRTIO_PCI_BAR_SIZE || len > 8 || o + len > PAGE)
		goto unclaimed;
	switch (page) {
	case VIRTIO_PCI_COMMON_OFF:
		if (is_write)
			common_write(vp, o, data, len);
		else
			common_read(vp, o, data, len);
		return;
	case VIRTIO_PCI_ISR_OFF:
		if (is_write) {
			vp->stats.ignored_writes++;
			return;
		}
		memset(data, 0, len);
		if (o == 0) {   /* reading the ISR clears it */
			data[0] = vp->isr;
			vp->isr = 0;
		}
		return;
	case VIRTIO_PCI_DEVICE_OFF:
		if (o >= vdev->config_size || len > vdev->config_size - o) {
			if (is_write)
				vp->stats.ignored_writes++;
			else
				memset(data, 0, len);
			return;
		}
		if (is_write)
			vdev->ops->config_write(vdev, o, data, len);
		else
			vdev->ops->config_read(vdev, o, data, len);
		return;
	case VIRTIO_PCI_NOTIFY_OFF:
		if (is_write)
			notify_write(vp, o);
		else
			memset(data, 0, len);
		return;
	case VIRTIO_PCI_MSIX_TABLE_OFF:
		if (is_write)
			msix__table_write(&vp->msix, o, data, len);
		else
			msix__table_read(&vp->msix, o, data, len);
		return;
	case VIRTIO_PCI_MSIX_PBA_OFF:
		if (is_write)
			vp->stats.ignored_writes++;
		else
			msix__pba_read(&vp->msix, o, data, len);
		return;
	default:
		break;
	}
unclaimed:
	if (is_write)
		vp->stats.ignored_writes++;
	else
		memset(data, 0xff, len);
}

static void bar_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;

	pthread_mutex_lock(&vp->pci.lock);
	bar_access(vp, off, data, len, false);
	pthread_mutex_unlock(&vp->pci.lock);
}

static void bar_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint8_t buf[8];

	if (len > sizeof(buf))
		return;
	memcpy(buf, data, len);
	pthread_mutex_lock(&vp->pci.lock);
	bar_access(vp, off, buf, len, true);
	pthread_mutex_unlock(&vp->pci.lock);
}

static const struct io_ops bar_ops = {
	.read = bar_read,
	.write = bar_write,
};

/* ---- PCI configuration hooks -------------------------------------------------------- */

/*
 * The VIRTIO_PCI_CAP_PCI_CFG window: cap.bar/offset/length select 1, 2 or 4
 * naturally aligned bytes of BAR 0; pci_cfg_data reads and writes them.
 * Anything else (another BAR, a bad length, out of range) does nothing.
 */
static bool pci_cfg_window(const struct virtio_pci *vp, uint32_t *off, uint32_t *len)
{
	uint32_t cap = vp->pci_cfg_cap;

	*off = pci_dev__cfg_get(&vp->pci, cap + VIRTIO_PCI_CAP_OFFSET, 4);
	*len = pci_dev__cfg_get(&vp->pci, cap + VIRTIO_PCI_CAP_LENGTH, 4);
	return vp->pci.cfg[cap + VIRTIO_PCI_CAP_BAR] == VIRTIO_PCI_BAR &&
	       (*len == 1 || *len == 2 || *len == 4) && !(*off % *len) &&
	       (uint64_t)*off + *len <= VIRTIO_PCI_BAR_SIZE;
}

static bool touches(uint32_t off, uint32_t len, uint32_t start, uint32_t size)
{
	return off < start + size && start < off + len;
}

static void config_reading(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	struct virtio_pci *vp = to_vp(dev);
	uint32_t data = vp->pci_cfg_cap + PCI_CFG_CAP_DATA, boff, blen;

	if (!touches(off, len, data, 4))
		return;
	memset(dev->cfg + data, 0, 4);
	if (pci_cfg_window(vp, &boff, &blen))
		bar_access(vp, boff, dev->cfg + data, blen, false);
}

static void config_written(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	struct virtio_pci *vp = to_vp(dev);
	uint32_t data = vp->pci_cfg_cap + PCI_CFG_CAP_DATA, boff, blen;

	msix__config_written(&vp->msix, off, len);
	if (touches(off, len, data, 4) && pci_cfg_window(vp, &boff, &blen)) {
		uint8_t buf[4];

		memcpy(buf, dev->cfg + data, 4);
		bar_access(vp, boff, buf, blen, true);
	}
}

static void bar_changed(struct pci_dev *dev, unsigned bar, bool was_on, uint64_t old, bool on,
			uint64_t addr)
{
	(void)was_on, (void)old, (void)on, (void)addr;
	if (bar == VIRTIO_PCI_BAR)
		sync_ioeventfds(to_vp(dev));
}

static const struct pci_dev_ops virtio_pci_dev_ops = {
	.config_reading = config_reading,
	.config_written = config_written,
	.bar_changed = bar_changed,
};

/* ---- creation --------------------------------------------------------------------- */

static uint32_t class_of(uint16_t device_id)
{
	switch (device_id) {
	case 1:  return 0x020000;   /* network, Ethernet */
	case 2:  return 0x018000;   /* mass storage, other */
	case 3:  return 0x078000;   /* communication, other */
	default: return 0xff0000;   /* unassigned class */
	}
}

static int add_virtio_cap(struct virtio_pci *vp, uint8_t type, uint32_t off, uint32_t len,
			  uint8_t cap_len, uint32_t extra)
{
	uint8_t cap[PCI_CFG_CAP_LEN] = { PCI_CAP_ID_VNDR, 0, cap_len, type, VIRTIO_PCI_BAR };

	put_le(cap + VIRTIO_PCI_CAP_OFFSET, 4, off);
	put_le(cap + VIRTIO_PCI_CAP_LENGTH, 4, len);
	put_le(cap + VIRTIO_PCI_NOTIFY_CAP_MULT, 4, extra);   /* notify multiplier, or 0 */
	return pci_dev__add_cap(&vp->pci, cap, cap_len);
}

static int add_caps(struct virtio_pci *vp)
{
	const struct virtio_dev *vdev = vp->vdev;
	int off;

	off = add_virtio_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
			     VIRTIO_PCI_COMMON_SIZE, sizeof(struct virtio_pci_cap), 0);
	if (off >= 0)
		off = add_virtio_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
				     vdev->max_queues * VIRTIO_PCI_NOTIFY_MULT,
				     sizeof(struct virtio_pci_notify_cap), VIRTIO_PCI_NOTIFY_MULT);
	if (off >= 0)
		off = add_virtio_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1,
				     sizeof(struct virtio_pci_cap), 0);
	if (off >= 0 && vdev->config_size)
		off = add_virtio_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
				     vdev->config_size, sizeof(struct virtio_pci_cap), 0);
	if (off >= 0)
		off = add_virtio_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, PCI_CFG_CAP_LEN, 0);
	if (off < 0)
		return off;
	vp->pci_cfg_cap = (uint8_t)off;
	pci_dev__set_wmask(&vp->pci, (uint32_t)off + VIRTIO_PCI_CAP_BAR, 1, 0xff);
	pci_dev__set_wmask(&vp->pci, (uint32_t)off + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff);
	pci_dev__set_wmask(&vp->pci, (uint32_t)off + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffff);
	pci_dev__set_wmask(&vp->pci, (uint32_t)off + PCI_CFG_CAP_DATA, 4, 0xffffffff);
	return 0;
}

static bool vdev_ok(const struct virtio_dev *vdev)
{
	const struct virtio_dev_ops *ops = vdev->ops;
	uint16_t qs = vdev->queue_max_size;

	return vdev->device_id >= 1 && vdev->device_id <= 0x3f &&   /* PCI ids 0x1041-0x107f */
	       ops && ops->features && ops->activate && ops->reset &&
	       (!vdev->config_size || (ops->config_read && ops->config_write)) &&
	       vdev->max_queues >= 1 && vdev->max_queues <= VIRTIO_MAX_QUEUES &&
	       qs && qs <= QUEUE_MAX_SIZE && !(qs & (qs - 1)) &&
	       vdev->config_size <= VIRTIO_PCI_DEVICE_MAX && vdev->name;
}

int virtio_pci__add(const struct virtio_pci_env *env, struct virtio_dev *vdev,
		    struct virtio_pci **out)
{
	struct virtio_pci *vp;
	int err;

	if (!env || !env->pci || !env->irqs || !env->mem || !vdev || !vdev_ok(vdev))
		return -EINVAL;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	vp->vdev = vdev;
	vp->vm_fd = env->vm_fd;
	vp->mem = env->mem;
	pci_dev__init(&vp->pci, vdev->name, VIRTIO_PCI_VENDOR_ID,
		      (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + vdev->device_id), class_of(vdev->device_id),
		      VIRTIO_PCI_REVISION, &virtio_pci_dev_ops);
	pci_dev__set_subsystem(&vp->pci, VIRTIO_PCI_VENDOR_ID,
			       (uint16_t)(VIRTIO_PCI_SUBSYS_ID_BASE + vdev->device_id));
	err = pci_dev__add_bar(&vp->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE,
			       PCI_BASE_ADDRESS_MEM_TYPE_64, &bar_ops, vp);
	if (err)
		goto err_free;
	/* One vector per queue plus the configuration-change vector. */
	err = msix__init(&vp->msix, &vp->pci, (uint16_t)(vdev->max_queues + 1), VIRTIO_PCI_BAR,
			 VIRTIO_PCI_MSIX_TABLE_OFF, VIRTIO_PCI_MSIX_PBA_OFF, vdev->max_queues,
			 env->vm_fd, env->irqs);
	if (err)
		goto err_free;
	err = add_caps(vp);
	if (err)
		goto err_msix;
	reset_state(vp);
	vdev->transport = vp;
	vdev->config_changed = config_changed;
	err = pci_bus__add(env->pci, &vp->pci);
	if (err)
		goto err_msix;
	*out = vp;
	return 0;

err_msix:
	if (vdev->ops->detach)
		vdev->ops->detach(vdev);
	vdev->transport = NULL;
	vdev->config_changed = NULL;
	msix__exit(&vp->msix);
err_free:
	pci_dev__exit(&vp->pci);
	free(vp);
	return err;
}

void virtio_pci__destroy(struct virtio_pci *vp)
{
	if (!vp)
		return;
	/* A device thread may still report changes: not into a transport that is gone. */
	if (vp->vdev->ops->detach)
		vp->vdev->ops->detach(vp->vdev);
	pthread_mutex_lock(&vp->pci.lock);
	if (vp->active) {
		vp->vdev->ops->reset(vp->vdev);
		deactivate(vp);
	}
	msix__exit(&vp->msix);
	pthread_mutex_unlock(&vp->pci.lock);
	pci_dev__exit(&vp->pci);
	free(vp);
}

void virtio_pci__get_stats(struct virtio_pci *vp, struct virtio_pci_stats *st)
{
	pthread_mutex_lock(&vp->pci.lock);
	*st = vp->stats;
	st->irqfd_errors = vp->msix.stats.irqfd_errors;
	st->route_errors = vp->msix.stats.route_errors;
	st->interrupts = vp->msix.stats.notified;
	st->driver_ok = vp->active;
	pthread_mutex_unlock(&vp->pci.lock);
}

/*
 * A reboot in place: the device reset a driver's status 0 makes (the data path
 * stopped, a vhost-user backend told to stop its rings), and the MSI-X table
 * as at build. The bus restores the configuration space after. Waits (up to
 * VIRTIO_PCI_REBOOT_SETTLE_MS) until the device let go of the old rings: the
 * boot images are copied back into guest RAM next, and nothing may write there
 * for the old driver after that.
 */
static void virtio_pci_device_reset(void *dev)
{
	const struct timespec ms = { 0, 1000000 };
	struct virtio_pci *vp = dev;
	unsigned waited = 0;

	pthread_mutex_lock(&vp->pci.lock);
	if (vp->status || vp->active)
		reset(vp);
	msix__reset(&vp->msix);
	pthread_mutex_unlock(&vp->pci.lock);
	while (vp->vdev->ops->resetting && vp->vdev->ops->resetting(vp->vdev)) {
		if (waited++ == VIRTIO_PCI_REBOOT_SETTLE_MS) {
			fprintf(stderr, "rtvmm: %s: reboot: the device is still finishing its reset "
				"after %u ms; going on\n", vp->vdev->name, VIRTIO_PCI_REBOOT_SETTLE_MS);
			break;
		}
		nanosleep(&ms, NULL);
	}
}

static void virtio_pci_device_destroy(void *dev)
{
	virtio_pci__destroy(dev);
}

/* The device's line, with the transport's counters in it. */
static void virtio_pci_device_report(void *dev, FILE *out)
{
	struct virtio_pci *vp = dev;
	struct virtio_pci_stats st;
	char transport[160];

	virtio_pci__get_stats(vp, &st);
	snprintf(transport, sizeof(transport),
		 "driver activations %llu, needs-reset %llu, kicks through the monitor %llu",
		 (unsigned long long)st.activations, (unsigned long long)st.needs_reset,
		 (unsigned long long)st.exit_kicks);
	if (vp->vdev->ops->report)
		vp->vdev->ops->report(vp->vdev, out, transport);
	else
		fputs(transport, out);
}

/*
 * The device's counters, then the transport's. Under the function's lock,
 * which vCPUs take for a register access and never hold across KVM_RUN.
 */
static void virtio_pci_device_counters(void *dev, const struct counter_sink *sink)
{
	struct virtio_pci *vp = dev;
	struct virtio_pci_stats st;

	if (vp->vdev->ops->counters)
		vp->vdev->ops->counters(vp->vdev, sink);
	virtio_pci__get_stats(vp, &st);
	sink->str(sink->opaque, "driver", st.driver_ok ? "ok" : "not ready");
	sink->num(sink->opaque, "activations", st.activations);
	sink->num(sink->opaque, "needs_reset", st.needs_reset);
	sink->num(sink->opaque, "features_rejected", st.features_rejected);
	sink->num(sink->opaque, "ignored_writes", st.ignored_writes);
	sink->num(sink->opaque, "exit_kicks", st.exit_kicks);
	sink->num(sink->opaque, "monitor_interrupts", st.interrupts);
	sink->num(sink->opaque, "ioeventfd_errors", st.ioeventfd_errors);
	sink->num(sink->opaque, "irqfd_errors", st.irqfd_errors);
	sink->num(sink->opaque, "route_errors", st.route_errors);
	if (st.last_error[0])
		sink->str(sink->opaque, "transport_error", st.last_error);
}

/* ---- snapshot ----------------------------------------------------------------------- */

#define MSIX_CONTROL_BITS (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)

/* One MSI-X table entry and its pending bit, as saved. */
struct saved_vector {
	uint8_t entry[PCI_MSIX_ENTRY_SIZE];
	uint8_t pending;
};

/*
 * The transport as the driver set it, a fixed layout:
 *   version u32, kind u32 ('vpci'), device type u16, queues u16, MSI-X vectors u16,
 *   device status u8, config generation u8, ISR u8, device/driver feature select u32 each,
 *   driver features u64, config vector u16, queue select u16,
 *   per queue: size u16, vector u16, enabled u8, kicked before DRIVER_OK u8,
 *              descriptor, driver, device area u64 each,
 *   MSI-X message control (enable, function mask) u16,
 *   per vector: the table entry (16 bytes, as the guest reads it), pending (PBA) u8.
 * The function's configuration space is the PCI bus's to save.
 */
static int virtio_pci_device_save(void *dev, struct state_out *out)
{
	struct virtio_pci *vp = dev;
	struct virtio_dev *vdev = vp->vdev;
	uint8_t pba[MSIX_PBA_SIZE(VIRTIO_MAX_QUEUES + 1)], entry[PCI_MSIX_ENTRY_SIZE];
	uint16_t nvec, v;
	unsigned i;

	pthread_mutex_lock(&vp->pci.lock);
	nvec = vp->msix.nr_vectors;
	virtio_state__begin(out, VIRTIO_STATE_PCI);
	state_out__u16(out, vdev->device_id);
	state_out__u16(out, (uint16_t)vdev->max_queues);
	state_out__u16(out, nvec);
	state_out__u8(out, vp->status);
	state_out__u8(out, vp->config_generation);
	state_out__u8(out, vp->isr);
	state_out__u32(out, vp->dfselect);
	state_out__u32(out, vp->gfselect);
	state_out__u64(out, vp->guest_features);
	state_out__u16(out, vp->msix_config);
	state_out__u16(out, vp->queue_select);
	for (i = 0; i < vdev->max_queues; i++) {
		const struct vpci_queue *q = &vp->q[i];

		state_out__u16(out, q->size);
		state_out__u16(out, q->vector);
		state_out__u8(out, q->enabled);
		state_out__u8(out, q->early_kick);
		state_out__u64(out, q->desc);
		state_out__u64(out, q->driver);
		state_out__u64(out, q->device);
	}
	state_out__u16(out, (uint16_t)(pci_dev__cfg_get(&vp->pci, vp->msix.cap + PCI_MSIX_FLAGS, 2) &
				       MSIX_CONTROL_BITS));
	msix__pba_read(&vp->msix, 0, pba, MSIX_PBA_SIZE(nvec));
	for (v = 0; v < nvec; v++) {
		msix__table_read(&vp->msix, (uint64_t)v * PCI_MSIX_ENTRY_SIZE, entry, sizeof(entry));
		state_out__bytes(out, entry, sizeof(entry));
		state_out__u8(out, (pba[v / 8] >> (v % 8)) & 1);
	}
	pthread_mutex_unlock(&vp->pci.lock);
	return out->err;
}

/* A saved transport, read and checked before any of it is applied. */
struct saved_pci {
	uint8_t status, generation, isr;
	uint32_t dfselect, gfselect;
	uint64_t guest_features;
	uint16_t msix_config, queue_select, msix_control;
	struct vpci_queue q[VIRTIO_MAX_QUEUES];
	struct saved_vector vec[VIRTIO_MAX_QUEUES + 1];
};

/* Reads the state after its header into `sv`; 0 or -EINVAL with why. */
static int saved_pci_read(struct virtio_pci *vp, struct state_in *in, struct saved_pci *sv,
			  char *why, size_t why_len)
{
	const struct virtio_dev *vdev = vp->vdev;
	unsigned type, nq, nvec, i;

	type = state_in__u16(in);
	nq = state_in__u16(in);
	nvec = state_in__u16(in);
	if (in->err)
		return virtio_state__refuse(why, why_len, "%s: virtio-pci state of %zu bytes is "
					    "truncated", vdev->name, in->len);
	if (type != vdev->device_id)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's function is a virtio "
					    "device of type %u, this one of type %u", vdev->name, type,
					    vdev->device_id);
	if (nq != vdev->max_queues || nvec != vp->msix.nr_vectors)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's function has %u queues "
					    "and %u MSI-X vectors, this one %u and %u", vdev->name, nq,
					    nvec, vdev->max_queues, vp->msix.nr_vectors);
	sv->status = state_in__u8(in);
	sv->generation = state_in__u8(in);
	sv->isr = state_in__u8(in);
	sv->dfselect = state_in__u32(in);
	sv->gfselect = state_in__u32(in);
	sv->guest_features = state_in__u64(in);
	sv->msix_config = state_in__u16(in);
	sv->queue_select = state_in__u16(in);
	for (i = 0; i < nq; i++) {
		struct vpci_queue *q = &sv->q[i];
		uint8_t enabled, early;

		q->size = state_in__u16(in);
		q->vector = state_in__u16(in);
		enabled = state_in__u8(in);
		early = state_in__u8(in);
		q->desc = state_in__u64(in);
		q->driver = state_in__u64(in);
		q->device = state_in__u64(in);
		if (enabled > 1 || early > 1)
			state_in__fail(in);
		q->enabled = enabled;
		q->early_kick = early;
	}
	sv->msix_control = state_in__u16(in);
	for (i = 0; i < nvec; i++) {
		state_in__bytes(in, sv->vec[i].entry, PCI_MSIX_ENTRY_SIZE);
		sv->vec[i].pending = state_in__u8(in);
	}
	if (state_in__end(in))
		return virtio_state__refuse(why, why_len, "%s: virtio-pci state of %zu bytes is "
					    "truncated, has bytes past its end or a flag neither 0 nor 1",
					    vdev->name, in->len);
	return 0;
}

/* Checks what `sv` asks of this function; 0 or -EINVAL with why. */
static int saved_pci_check(struct virtio_pci *vp, const struct saved_pci *sv, bool resume,
			   char *why, size_t why_len)
{
	const struct virtio_dev *vdev = vp->vdev;
	bool packed = sv->guest_features & BIT(VIRTIO_F_RING_PACKED);
	uint64_t lacking = sv->guest_features & ~offered_features(vp);
	unsigned nvec = vp->msix.nr_vectors, i;
	char qwhy[128];

	if (sv->isr & ~(1u /* queue interrupt */ | VIRTIO_PCI_ISR_CONFIG))
		return virtio_state__refuse(why, why_len, "%s: ISR %#x has bits no device sets",
					    vdev->name, sv->isr);
	if (sv->msix_control & ~MSIX_CONTROL_BITS)
		return virtio_state__refuse(why, why_len, "%s: MSI-X message control %#x has bits "
					    "besides enable and function mask", vdev->name,
					    sv->msix_control);
	if (sv->msix_config != VIRTIO_MSI_NO_VECTOR && sv->msix_config >= nvec)
		return virtio_state__refuse(why, why_len, "%s: config vector %u of %u", vdev->name,
					    sv->msix_config, nvec);
	for (i = 0; i < nvec; i++) {
		uint32_t ctrl;

		memcpy(&ctrl, sv->vec[i].entry + PCI_MSIX_ENTRY_VECTOR_CTRL, sizeof(ctrl));
		if ((ctrl & ~PCI_MSIX_ENTRY_CTRL_MASKBIT) || sv->vec[i].pending > 1)
			return virtio_state__refuse(why, why_len, "%s: MSI-X vector %u: control %#x, "
						    "pending %u", vdev->name, i, ctrl,
						    sv->vec[i].pending);
	}
	if ((sv->status & VIRTIO_CONFIG_S_FEATURES_OK) && lacking)
		return virtio_state__refuse(why, why_len, "%s: the driver negotiated feature bit %u, "
					    "which this device does not offer", vdev->name,
					    virtio__first_bit(lacking));
	if ((sv->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !(sv->guest_features & BIT(VIRTIO_F_VERSION_1)))
		return virtio_state__refuse(why, why_len, "%s: FEATURES_OK without VERSION_1",
					    vdev->name);
	for (i = 0; i < vdev->max_queues; i++) {
		const struct vpci_queue *q = &sv->q[i];

		if (q->vector != VIRTIO_MSI_NO_VECTOR && q->vector >= nvec)
			return virtio_state__refuse(why, why_len, "%s: queue %u: vector %u of %u",
						    vdev->name, i, q->vector, nvec);
		if (!q->enabled)
			continue;   /* registers only: checked at the driver's DRIVER_OK */
		if (q->size > vdev->queue_max_size)
			return virtio_state__refuse(why, why_len, "%s: queue %u: size %u, at most %u",
						    vdev->name, i, q->size, vdev->queue_max_size);
		if (resume && check_queue(vp, q, i, packed, qwhy, sizeof(qwhy)))
			return virtio_state__refuse(why, why_len, "%s: %s", vdev->name, qwhy);
	}
	return 0;
}

/*
 * Puts the transport back as the driver had set it, on a function as built
 * (its configuration space restored by the bus first): the MSI-X table and
 * message control through the paths the guest's own writes take (routes,
 * irqfds), pending vectors held again, and, when the device was running, the
 * activation the driver's DRIVER_OK made, the device's rings resuming at its thaw.
 */
static int virtio_pci_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct virtio_pci *vp = dev;
	struct virtio_dev *vdev = vp->vdev;
	struct saved_pci *sv;
	uint32_t ctl_off = (uint32_t)vp->msix.cap + PCI_MSIX_FLAGS;
	bool resume;
	unsigned i;
	int err;

	err = virtio_state__check_begin(in, VIRTIO_STATE_PCI, vdev->name, why, why_len);
	if (err)
		return err;
	sv = calloc(1, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	pthread_mutex_lock(&vp->pci.lock);
	err = saved_pci_read(vp, in, sv, why, why_len);
	resume = (sv->status & VIRTIO_CONFIG_S_DRIVER_OK) && (sv->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
		 !(sv->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	if (!err)
		err = saved_pci_check(vp, sv, resume, why, why_len);
	if (err)
		goto out;

	if (vp->status || vp->active)
		reset(vp);
	vp->reset_from = 0;
	vp->host_features = offered_features(vp);
	pci_dev__cfg_set(&vp->pci, ctl_off, 2,
			 (pci_dev__cfg_get(&vp->pci, ctl_off, 2) & ~MSIX_CONTROL_BITS) | sv->msix_control);
	config_written(&vp->pci, ctl_off, 2);
	for (i = 0; i < vp->msix.nr_vectors; i++) {
		msix__table_write(&vp->msix, (uint64_t)i * PCI_MSIX_ENTRY_SIZE, sv->vec[i].entry,
				  PCI_MSIX_ENTRY_SIZE);
		if (sv->vec[i].pending)
			msix__notify(&vp->msix, (uint16_t)i);
	}
	vp->dfselect = sv->dfselect;
	vp->gfselect = sv->gfselect;
	vp->guest_features = sv->guest_features;
	vp->msix_config = accept_vector(vp, sv->msix_config, false);
	vp->queue_select = sv->queue_select;
	vp->config_generation = sv->generation;
	vp->isr = sv->isr;
	for (i = 0; i < vdev->max_queues; i++) {
		struct vpci_queue *q = &vp->q[i];

		q->size = sv->q[i].size;
		q->enabled = sv->q[i].enabled;
		q->early_kick = sv->q[i].early_kick;
		q->desc = sv->q[i].desc;
		q->driver = sv->q[i].driver;
		q->device = sv->q[i].device;
		q->vector = accept_vector(vp, sv->q[i].vector, true);
		if (q->vector != sv->q[i].vector) {
			snprintf(why, why_len, "%s: queue %u: no MSI route for vector %u", vdev->name, i,
				 sv->q[i].vector);
			err = -ENOSPC;
			goto out;
		}
	}
	vp->status = sv->status;
	if (resume) {
		activate(vp, true);
		if (!vp->active) {
			err = virtio_state__refuse(why, why_len, "%s: the saved activation failed: %s",
						   vdev->name, vp->stats.last_error);
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&vp->pci.lock);
	free(sv);
	return err;
}

const struct device_ops virtio_pci__device_ops = {
	.reset = virtio_pci_device_reset,
	.destroy = virtio_pci_device_destroy,
	.report = virtio_pci_device_report,
	.counters = virtio_pci_device_counters,
	/* No freeze: the transport runs nothing on its own (its device does). */
	.save = virtio_pci_device_save,
	.load = virtio_pci_device_load,
};
