/*
 * The modern virtio-pci transport, driven the way Linux's virtio_pci drives
 * it (config mechanism #1, capability walk, MSI-X table, common config), with
 * a recording fake device and a model of the KVM ioctls the transport uses.
 *
 * The model is tests/unit/fake_kvm.h, behind the link seam -Wl,--wrap=ioctl:
 * every KVM ioctl the library makes on the fake VM fd is checked against what
 * KVM accepts (one MSI route per GSI, no double irqfd/ioeventfd, deassign only
 * what was assigned) and simulated: an irqfd delivers its route's message when
 * its eventfd is signalled, an ioeventfd signals its eventfd when the "guest"
 * writes its address. One test hands the same calls to a real /dev/kvm VM as
 * well (skipped without /dev/kvm).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "counters_sink.h"
#include "fake_kvm.h"
#include "state_refusals.h"

#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "vmm/bus.h"
#include "vmm/guest_mem.h"
#include "vmm/irq.h"
#include "vmm/pci/msix.h"
#include "vmm/pci/pci.h"
#include "vmm/virtio/pci.h"
#include "vmm/x86/layout.h"

#define BIT(n) (1ULL << (n))

/* ---- what the fake KVM holds ---------------------------------------------------- */

static bool has_ioeventfd(uint64_t addr)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_ioev; i++)
		if (fake_kvm.ioev[i].addr == addr)
			return true;
	return false;
}

static bool has_irqfd(int fd)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_irqfd; i++)
		if (fake_kvm.irqfd[i].fd == fd)
			return true;
	return false;
}

/* ---- a recording virtio device ----------------------------------------------------- */

struct fake_dev {
	struct virtio_dev vdev;
	uint64_t features;
	uint8_t config[10];
	const struct guest_mem *mem;
	int activate_ret;
	unsigned activations, resets, config_reads, config_writes;
	uint64_t features_acked;
	unsigned nr_queues;
	struct virtio_queue q[VIRTIO_MAX_QUEUES];
	unsigned bad_activations;     /* activations with something the transport should have refused */
	bool resumed;                 /* the last activation was a snapshot's (virtio_activation.resume) */
	bool resetting;               /* the last reset is still finishing */
	unsigned detaches;
	char bad[160];
};

static uint64_t fd_features(struct virtio_dev *vdev)
{
	return ((struct fake_dev *)vdev->priv)->features;
}

static void fd_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct fake_dev *d = vdev->priv;

	d->config_reads++;
	if (off > sizeof(d->config) || len > sizeof(d->config) - off) {
		snprintf(d->bad, sizeof(d->bad), "config read %u+%u", off, len);
		d->bad_activations++;
		return;
	}
	memcpy(data, d->config + off, len);
}

static void fd_config_write(struct virtio_dev *vdev, uint32_t off, const void *data, uint32_t len)
{
	struct fake_dev *d = vdev->priv;

	d->config_writes++;
	if (off > sizeof(d->config) || len > sizeof(d->config) - off) {
		snprintf(d->bad, sizeof(d->bad), "config write %u+%u", off, len);
		d->bad_activations++;
		return;
	}
	memcpy(d->config + off, data, len);
}

/* Checks what a device relies on: every enabled queue valid, inside RAM, with live fds. */
static int fd_activate(struct virtio_dev *vdev, const struct virtio_activation *a)
{
	struct fake_dev *d = vdev->priv;
	bool packed = a->features & BIT(VIRTIO_F_RING_PACKED);
	unsigned i;

	d->activations++;
	d->resumed = a->resume;
	d->features_acked = a->features;
	d->nr_queues = a->nr_queues;
	if (a->nr_queues != vdev->max_queues || a->mem != d->mem || (a->features & ~d->features &
								       ~BIT(VIRTIO_F_VERSION_1))) {
		snprintf(d->bad, sizeof(d->bad), "activation header");
		d->bad_activations++;
	}
	for (i = 0; i < a->nr_queues; i++) {
		const struct virtio_queue *q = &a->queues[i];
		uint64_t n = q->size;

		d->q[i] = *q;
		if (!q->enabled)
			continue;
		if (!n || n > vdev->queue_max_size || (!packed && (n & (n - 1))) ||
		    !guest_mem__ptr(a->mem, q->desc, 16 * n) ||
		    !guest_mem__ptr(a->mem, q->driver, packed ? 4 : 6 + 2 * n) ||
		    !guest_mem__ptr(a->mem, q->device, packed ? 4 : 6 + 8 * n) ||
		    fcntl(q->kick_fd, F_GETFD) < 0 || fcntl(q->call_fd, F_GETFD) < 0) {
			snprintf(d->bad, sizeof(d->bad), "queue %u: size %u desc %#llx", i, q->size,
				 (unsigned long long)q->desc);
			d->bad_activations++;
		}
	}
	return d->activate_ret;
}

static void fd_reset(struct virtio_dev *vdev)
{
	((struct fake_dev *)vdev->priv)->resets++;
}

static bool fd_resetting(struct virtio_dev *vdev)
{
	return ((struct fake_dev *)vdev->priv)->resetting;
}

static void fd_detach(struct virtio_dev *vdev)
{
	((struct fake_dev *)vdev->priv)->detaches++;
	vdev->config_changed = NULL;
}

static void fd_counters(struct virtio_dev *vdev, const struct counter_sink *sink)
{
	sink->num(sink->opaque, "device_activations", ((struct fake_dev *)vdev->priv)->activations);
}

static const struct virtio_dev_ops fake_dev_ops = {
	.features = fd_features,
	.config_read = fd_config_read,
	.config_write = fd_config_write,
	.activate = fd_activate,
	.reset = fd_reset,
	.resetting = fd_resetting,
	.detach = fd_detach,
	.counters = fd_counters,
};

/* ---- the rig: a PCI bus with one virtio device, and a Linux-like driver ------------- */

#define RAM_SIZE   (16ULL << 20)
#define NQ         5                /* fake device queues */
#define QMAX       256
#define RING_BASE  0x100000ULL
#define MSI_ADDR   0xfee00000ULL
#define MSI_DATA   0x4020

/* Features the fake offers: MAC, STATUS, EVENT_IDX, plus two this transport must hide. */
#define FAKE_FEATURES (BIT(5) | BIT(16) | BIT(29) | BIT(VIRTIO_F_ACCESS_PLATFORM) | BIT(38))

struct vrig {
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct guest_mem mem;
	struct irq_routing *irqs;
	struct fake_dev dev;
	struct virtio_pci *vp;
	int vm_fd;                    /* the fake VM this rig made, or -1 */
	/* What the driver found. */
	unsigned slot;
	uint64_t bar;
	uint8_t msix_cap, pci_cfg_cap;
	uint32_t common, notify, isr, device, device_len, notify_len, notify_mult;
	uint32_t common_len, isr_len;
	unsigned caps_found;
};

static void outl(struct bus *b, uint16_t port, uint32_t v)
{
	bus__access(b, port, &v, 4, true);
}

static uint32_t cfg_rd(struct vrig *v, unsigned reg, uint32_t len)
{
	uint32_t x = 0;

	outl(&v->pio, 0xcf8, 0x80000000u | v->slot << 11 | (reg & 0xfc));
	bus__access(&v->pio, 0xcfc + (reg & 3), &x, len, false);
	return x;
}

static void cfg_wr(struct vrig *v, unsigned reg, uint32_t len, uint32_t x)
{
	outl(&v->pio, 0xcf8, 0x80000000u | v->slot << 11 | (reg & 0xfc));
	bus__access(&v->pio, 0xcfc + (reg & 3), &x, len, true);
}

static uint64_t mrd(struct vrig *v, uint64_t off, uint32_t len)
{
	uint64_t x = 0;

	bus__access(&v->mmio, v->bar + off, &x, len, false);
	return x;
}

/* A guest write: KVM's ioeventfds see it first, as in the kernel. */
static void mwr(struct vrig *v, uint64_t off, uint32_t len, uint64_t x)
{
	uint64_t addr = v->bar + off, one = 1;
	unsigned i;

	for (i = 0; i < fake_kvm.nr_ioev; i++)
		if (fake_kvm.ioev[i].addr == addr && (fake_kvm.ioev[i].len == 0 || fake_kvm.ioev[i].len == len)) {
			assert_int_equal(write(fake_kvm.ioev[i].fd, &one, 8), 8);
			return;
		}
	bus__access(&v->mmio, addr, &x, len, true);
}

static uint64_t crd(struct vrig *v, uint32_t off, uint32_t len)
{
	return mrd(v, v->common + off, len);
}

static void cwr(struct vrig *v, uint32_t off, uint32_t len, uint64_t x)
{
	mwr(v, v->common + off, len, x);
}

static uint8_t status(struct vrig *v)
{
	return (uint8_t)crd(v, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* What Linux's virtio_pci_modern_probe does: find the function, its BAR and capabilities. */
static void drv_probe(struct vrig *v)
{
	unsigned slot;
	uint8_t pos;

	for (slot = 0; slot < 32; slot++) {
		v->slot = slot;
		if (cfg_rd(v, PCI_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR_ID)
			break;
	}
	assert_true(slot < 32);
	v->bar = (cfg_rd(v, PCI_BASE_ADDRESS_0, 4) & ~0xfULL) |
		 (uint64_t)cfg_rd(v, PCI_BASE_ADDRESS_1, 4) << 32;
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	v->caps_found = 0;
	for (pos = (uint8_t)cfg_rd(v, PCI_CAPABILITY_LIST, 1); pos;
	     pos = (uint8_t)cfg_rd(v, pos + PCI_CAP_LIST_NEXT, 1)) {
		uint8_t id = (uint8_t)cfg_rd(v, pos, 1), type;
		uint32_t off, len;

		if (id == PCI_CAP_ID_MSIX) {
			v->msix_cap = pos;
			continue;
		}
		assert_int_equal(id, PCI_CAP_ID_VNDR);
		type = (uint8_t)cfg_rd(v, pos + VIRTIO_PCI_CAP_CFG_TYPE, 1);
		assert_int_equal(cfg_rd(v, pos + VIRTIO_PCI_CAP_BAR, 1), 0);
		off = cfg_rd(v, pos + VIRTIO_PCI_CAP_OFFSET, 4);
		len = cfg_rd(v, pos + VIRTIO_PCI_CAP_LENGTH, 4);
		v->caps_found |= 1u << type;
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			assert_int_equal(cfg_rd(v, pos + VIRTIO_PCI_CAP_LEN, 1), 16);
			v->common = off;
			v->common_len = len;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			assert_int_equal(cfg_rd(v, pos + VIRTIO_PCI_CAP_LEN, 1), 20);
			v->notify = off;
			v->notify_len = len;
			v->notify_mult = cfg_rd(v, pos + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			v->isr = off;
			v->isr_len = len;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			v->device = off;
			v->device_len = len;
			break;
		case VIRTIO_PCI_CAP_PCI_CFG:
			assert_int_equal(cfg_rd(v, pos + VIRTIO_PCI_CAP_LEN, 1), 20);
			v->pci_cfg_cap = pos;
			break;
		default:
			fail_msg("unexpected virtio capability type %u", type);
		}
	}
}

/* MSI-X as Linux enables it: function masked while the entries are written, then unmasked. */
static void drv_msix(struct vrig *v, unsigned nvec)
{
	unsigned i;

	cfg_wr(v, v->msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	for (i = 0; i < nvec; i++) {
		uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * i;

		mwr(v, e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, MSI_ADDR + 0x1000 * i);
		mwr(v, e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
		mwr(v, e + PCI_MSIX_ENTRY_DATA, 4, MSI_DATA + i);
		mwr(v, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	}
	cfg_wr(v, v->msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back. */
static uint8_t drv_features(struct vrig *v, uint64_t features)
{
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(status(v), 0);
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	cwr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	cwr(v, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	cwr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	cwr(v, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					    VIRTIO_CONFIG_S_FEATURES_OK);
	return status(v);
}

static uint64_t ring(unsigned q, unsigned which)
{
	return RING_BASE + q * 0x10000ULL + which * 0x4000ULL;
}

/* One queue as Linux's setup_vq configures it; returns the vector read back. */
static uint16_t drv_queue(struct vrig *v, unsigned q, uint16_t size, uint64_t desc, uint64_t drv,
			  uint64_t dev, uint16_t vector)
{
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
	cwr(v, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	cwr(v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)desc);
	cwr(v, VIRTIO_PCI_COMMON_Q_DESCHI, 4, (uint32_t)(desc >> 32));
	cwr(v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)drv);
	cwr(v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, (uint32_t)(drv >> 32));
	cwr(v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)dev);
	cwr(v, VIRTIO_PCI_COMMON_Q_USEDHI, 4, (uint32_t)(dev >> 32));
	cwr(v, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	return (uint16_t)crd(v, VIRTIO_PCI_COMMON_Q_MSIX, 2);
}

static void drv_enable(struct vrig *v, unsigned q)
{
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	cwr(v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static uint8_t drv_ok(struct vrig *v)
{
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	return status(v);
}

/* The whole bring-up: config vector 0, queue q on vector q+1, the first `nq` queues enabled. */
static uint8_t drv_init(struct vrig *v, unsigned nq)
{
	unsigned q;

	assert_true(drv_features(v, BIT(VIRTIO_F_VERSION_1) | BIT(5) | BIT(29)) &
		    VIRTIO_CONFIG_S_FEATURES_OK);
	drv_msix(v, NQ + 1);
	cwr(v, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_MSIX, 2), 0);
	for (q = 0; q < nq; q++)
		assert_int_equal(drv_queue(v, q, QMAX, ring(q, 0), ring(q, 1), ring(q, 2),
					   (uint16_t)(q + 1)), q + 1);
	for (q = 0; q < nq; q++)
		drv_enable(v, q);
	return drv_ok(v);
}

static uint64_t notify_off(struct vrig *v, unsigned q)
{
	uint64_t noff;

	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	noff = crd(v, VIRTIO_PCI_COMMON_Q_NOFF, 2);
	return v->notify + noff * v->notify_mult;
}

/* A bus with the fake device's function on VM `vm_fd`, probed as Linux does. */
static int rig_init(struct vrig *v, int vm_fd)
{
	struct virtio_pci_env env;

	bus__init(&v->pio, "pio");
	bus__init(&v->mmio, "mmio");
	if (guest_mem__create(&v->mem, RAM_SIZE))
		return -1;
	v->irqs = calloc(1, sizeof(*v->irqs));
	if (irq_routing__init_pc(v->irqs, vm_fd, 2))
		return -1;
	if (pci_bus__create(&v->pio, &v->mmio, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &v->pci))
		return -1;
	v->dev = (struct fake_dev){
		.vdev = { .name = "vnet0", .device_id = 1, .max_queues = NQ, .queue_max_size = QMAX,
			  .config_size = 10, .ops = &fake_dev_ops },
		.features = FAKE_FEATURES,
		.config = { 0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 1, 0 },
		.mem = &v->mem,
	};
	v->dev.vdev.priv = &v->dev;
	env = (struct virtio_pci_env){ .pci = v->pci, .vm_fd = vm_fd, .irqs = v->irqs, .mem = &v->mem };
	if (virtio_pci__add(&env, &v->dev.vdev, &v->vp))
		return -1;
	drv_probe(v);
	return 0;
}

/* Frees what rig_init made (the VM fd stays). */
static void rig_release(struct vrig *v)
{
	virtio_pci__destroy(v->vp);
	/* The device's threads can no longer reach the transport. */
	assert_int_equal(v->dev.detaches, 1);
	assert_null(v->dev.vdev.config_changed);
	pci_bus__destroy(v->pci);
	irq_routing__exit(v->irqs);
	free(v->irqs);
	guest_mem__destroy(&v->mem);
	bus__exit(&v->pio);
	bus__exit(&v->mmio);
}

static int setup_with_fd(void **state, int vm_fd, bool passthrough)
{
	struct vrig *v = calloc(1, sizeof(*v));

	if (passthrough) {
		fake_kvm__reset();
		fake_kvm__watch(vm_fd);
	}
	v->vm_fd = -1;
	if (rig_init(v, vm_fd))
		return -1;
	*state = v;
	return 0;
}

static int setup(void **state)
{
	int fd;

	fake_kvm__reset();
	fd = fake_kvm__create_vm(true);
	if (fd < 0 || setup_with_fd(state, fd, false))
		return -1;
	((struct vrig *)*state)->vm_fd = fd;
	return 0;
}

static int teardown(void **state)
{
	struct vrig *v = *state;

	rig_release(v);
	if (v->vm_fd >= 0)
		close(v->vm_fd);
	free(v);
	/* Whatever ran, the library never asked KVM for something it would refuse. */
	if (fake_kvm.violations)
		fprintf(stderr, "KVM model violation: %s\n", fake_kvm.why);
	assert_int_equal(fake_kvm.violations, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	fake_kvm__reset();
	return 0;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_virtio_pci_ids_class_and_bar(void **state)
{
	struct vrig *v = *state;
	uint32_t lo, hi;

	assert_int_equal(cfg_rd(v, PCI_DEVICE_ID, 2), 0x1041);            /* 0x1040 + net */
	assert_int_equal(cfg_rd(v, PCI_REVISION_ID, 1), 1);
	assert_int_equal(cfg_rd(v, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_true(cfg_rd(v, PCI_SUBSYSTEM_ID, 2) >= 0x40);
	assert_int_equal(cfg_rd(v, PCI_CLASS_REVISION, 4) >> 8, 0x020000);
	assert_int_equal(cfg_rd(v, PCI_INTERRUPT_PIN, 1), 0);
	/* BAR 0: 64-bit memory, VIRTIO_PCI_BAR_SIZE by the sizing protocol. */
	lo = cfg_rd(v, PCI_BASE_ADDRESS_0, 4);
	hi = cfg_rd(v, PCI_BASE_ADDRESS_1, 4);
	assert_int_equal(lo & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64);
	cfg_wr(v, PCI_COMMAND, 2, 0);
	cfg_wr(v, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	cfg_wr(v, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	assert_int_equal(~(cfg_rd(v, PCI_BASE_ADDRESS_0, 4) & ~0xfu) + 1, VIRTIO_PCI_BAR_SIZE);
	cfg_wr(v, PCI_BASE_ADDRESS_0, 4, lo);
	cfg_wr(v, PCI_BASE_ADDRESS_1, 4, hi);
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
}

static void test_virtio_pci_capabilities_found_with_offsets_and_lengths(void **state)
{
	struct vrig *v = *state;
	unsigned want = 1u << VIRTIO_PCI_CAP_COMMON_CFG | 1u << VIRTIO_PCI_CAP_NOTIFY_CFG |
			1u << VIRTIO_PCI_CAP_ISR_CFG | 1u << VIRTIO_PCI_CAP_DEVICE_CFG |
			1u << VIRTIO_PCI_CAP_PCI_CFG;

	assert_int_equal(v->caps_found, want);
	assert_int_not_equal(v->msix_cap, 0);
	assert_int_equal(cfg_rd(v, v->msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, NQ);
	assert_int_equal(cfg_rd(v, v->msix_cap + PCI_MSIX_TABLE, 4), VIRTIO_PCI_MSIX_TABLE_OFF);
	assert_int_equal(cfg_rd(v, v->msix_cap + PCI_MSIX_PBA, 4), VIRTIO_PCI_MSIX_PBA_OFF);
	assert_int_equal(v->common, VIRTIO_PCI_COMMON_OFF);
	assert_int_equal(v->common_len, sizeof(struct virtio_pci_common_cfg));
	assert_int_equal(v->isr, VIRTIO_PCI_ISR_OFF);
	assert_int_equal(v->isr_len, 1);
	assert_int_equal(v->device, VIRTIO_PCI_DEVICE_OFF);
	assert_int_equal(v->device_len, 10);
	assert_int_equal(v->notify, VIRTIO_PCI_NOTIFY_OFF);
	assert_int_equal(v->notify_mult, 4);
	assert_true(v->notify_len >= (NQ - 1) * v->notify_mult + 2);   /* Linux's check */
	/* Every structure and the MSI-X table on its own page, all inside the BAR. */
	assert_true(VIRTIO_PCI_MSIX_PBA_OFF + MSIX_PBA_SIZE(NQ + 1) <= VIRTIO_PCI_BAR_SIZE);
	/* Each queue has its own notify address. */
	assert_int_equal(notify_off(v, 0), VIRTIO_PCI_NOTIFY_OFF);
	assert_int_equal(notify_off(v, 3), VIRTIO_PCI_NOTIFY_OFF + 12);
	/* Device config reads reach the device. */
	assert_int_equal(mrd(v, v->device, 4), 0x12000000 | 0x5452);
	assert_int_equal(mrd(v, v->device + 8, 2), 1);
}

static void test_virtio_pci_offers_device_features_with_version_1_only_supported_ones(void **state)
{
	struct vrig *v = *state;
	uint64_t f;

	cwr(v, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = crd(v, VIRTIO_PCI_COMMON_DF, 4);
	cwr(v, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	f |= crd(v, VIRTIO_PCI_COMMON_DF, 4) << 32;
	assert_int_equal(f, BIT(5) | BIT(16) | BIT(29) | BIT(VIRTIO_F_VERSION_1));
	cwr(v, VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_DF, 4), 0);
	assert_true(drv_features(v, BIT(VIRTIO_F_VERSION_1) | BIT(16)) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* Driver features are frozen after FEATURES_OK. */
	cwr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	cwr(v, VIRTIO_PCI_COMMON_GF, 4, 0xffffffff);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_GF, 4), BIT(16));
}

static void test_virtio_pci_features_ok_refused_for_unoffered_or_missing_version_1(void **state)
{
	struct vrig *v = *state;
	struct virtio_pci_stats st;

	/* A bit the device did not offer (ACCESS_PLATFORM was hidden by the transport). */
	assert_false(drv_features(v, BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_ACCESS_PLATFORM)) &
		     VIRTIO_CONFIG_S_FEATURES_OK);
	/* A legacy driver (no VERSION_1). */
	assert_false(drv_features(v, BIT(5)) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* DRIVER_OK anyway: NEEDS_RESET, the device never starts. */
	assert_true(drv_ok(v) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(v->dev.activations, 0);
	virtio_pci__get_stats(v->vp, &st);
	assert_int_equal(st.features_rejected, 3);   /* drv_ok asked for FEATURES_OK once more */
	assert_int_equal(st.needs_reset, 1);
	/* After a reset the same driver can do it right. */
	assert_true(drv_features(v, BIT(VIRTIO_F_VERSION_1)) & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_virtio_pci_driver_ok_activates_with_checked_queues_and_wired_fds(void **state)
{
	struct vrig *v = *state;
	const struct kvm_irq_routing_entry *r;
	unsigned q;

	assert_int_equal(drv_init(v, 3), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(v->dev.activations, 1);
	assert_int_equal(v->dev.bad_activations, 0);
	assert_int_equal(v->dev.features_acked, BIT(VIRTIO_F_VERSION_1) | BIT(5) | BIT(29));
	assert_int_equal(v->dev.nr_queues, NQ);
	for (q = 0; q < NQ; q++) {
		const struct virtio_queue *vq = &v->dev.q[q];

		if (q >= 3) {
			assert_false(vq->enabled);
			assert_int_equal(vq->kick_fd, -1);
			assert_int_equal(vq->call_fd, -1);
			continue;
		}
		assert_true(vq->enabled);
		assert_int_equal(vq->size, QMAX);
		assert_int_equal(vq->desc, ring(q, 0));
		assert_int_equal(vq->driver, ring(q, 1));
		assert_int_equal(vq->device, ring(q, 2));
		assert_int_equal(vq->msix_vector, q + 1);
		/* Kick: a KVM ioeventfd on this queue's own notify address. */
		assert_true(has_ioeventfd(v->bar + notify_off(v, q)));
		/* Call: a KVM irqfd on the GSI whose MSI route is the queue's MSI-X entry. */
		assert_true(has_irqfd(vq->call_fd));
	}
	assert_int_equal(fake_kvm.nr_ioev, 3);
	assert_int_equal(fake_kvm.nr_irqfd, 3);
	for (q = 0; q < fake_kvm.nr_irqfd; q++) {
		r = fake_kvm__route(fake_kvm.irqfd[q].gsi);
		assert_non_null(r);
		assert_true(r->u.msi.data > MSI_DATA && r->u.msi.data <= MSI_DATA + 3);
		assert_int_equal(r->u.msi.address_lo, MSI_ADDR + 0x1000 * (r->u.msi.data - MSI_DATA));
	}
	/* Queue registers are frozen now. */
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	cwr(v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
	cwr(v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_DESCLO, 8), ring(0, 0));
	/* A second DRIVER_OK write does not activate twice. */
	drv_ok(v);
	assert_int_equal(v->dev.activations, 1);
}

static void test_virtio_pci_kicks_and_interrupts_bypass_the_monitor(void **state)
{
	struct vrig *v = *state;
	struct virtio_pci_stats st;
	uint64_t one = 1, cnt;
	unsigned before;

	assert_true(drv_init(v, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
	/* The guest notifies queue 1 (16-bit write of the queue index): its kick fd fires. */
	mwr(v, notify_off(v, 1), 2, 1);
	assert_int_equal(read(v->dev.q[1].kick_fd, &cnt, 8), 8);
	assert_int_equal(read(v->dev.q[0].kick_fd, &cnt, 8), -1);
	virtio_pci__get_stats(v->vp, &st);
	assert_int_equal(st.exit_kicks, 0);
	/* The backend completes on queue 0: KVM sends vector 1's message. */
	before = fake_kvm.nr_msi;
	assert_int_equal(write(v->dev.q[0].call_fd, &one, 8), 8);
	fake_kvm__poll_irqfds();
	assert_int_equal(fake_kvm.nr_msi, before + 1);
	assert_int_equal(fake_kvm.msi[before].addr, MSI_ADDR + 0x1000);
	assert_int_equal(fake_kvm.msi[before].data, MSI_DATA + 1);
	assert_false(fake_kvm.msi[before].by_signal);
	/* A kick that does reach the monitor (e.g. the ioeventfd was refused) still works. */
	bus__access(&v->mmio, v->bar + notify_off(v, 0), &one, 2, true);
	assert_int_equal(read(v->dev.q[0].kick_fd, &cnt, 8), 8);
	virtio_pci__get_stats(v->vp, &st);
	assert_int_equal(st.exit_kicks, 1);
	/* Notify of a queue that does not exist, or off the multiplier grid: ignored. */
	bus__access(&v->mmio, v->bar + VIRTIO_PCI_NOTIFY_OFF + 4 * NQ, &one, 2, true);
	bus__access(&v->mmio, v->bar + VIRTIO_PCI_NOTIFY_OFF + 1, &one, 1, true);
}

static void test_virtio_pci_early_kick_is_delivered_at_activation(void **state)
{
	struct vrig *v = *state;
	uint64_t cnt, one = 1;

	assert_true(drv_features(v, BIT(VIRTIO_F_VERSION_1)) & VIRTIO_CONFIG_S_FEATURES_OK);
	drv_queue(v, 0, QMAX, ring(0, 0), ring(0, 1), ring(0, 2), VIRTIO_MSI_NO_VECTOR);
	drv_enable(v, 0);
	bus__access(&v->mmio, v->bar + notify_off(v, 0), &one, 2, true);
	assert_true(drv_ok(v) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(read(v->dev.q[0].kick_fd, &cnt, 8), 8);
	/* No vector: the call fd is not wired anywhere. */
	assert_false(has_irqfd(v->dev.q[0].call_fd));
}

/* Each bad queue setup: NEEDS_RESET, no activation, nothing left in KVM. */
static void expect_refused(struct vrig *v, uint16_t size, uint64_t desc, uint64_t drv, uint64_t dev)
{
	struct virtio_pci_stats st;
	uint64_t msis = fake_kvm.nr_msi;

	assert_true(drv_features(v, BIT(VIRTIO_F_VERSION_1)) & VIRTIO_CONFIG_S_FEATURES_OK);
	drv_msix(v, NQ + 1);
	cwr(v, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	drv_queue(v, 0, QMAX, ring(0, 0), ring(0, 1), ring(0, 2), 1);
	drv_queue(v, 1, size, desc, drv, dev, 2);
	drv_enable(v, 0);
	drv_enable(v, 1);
	assert_true(drv_ok(v) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(v->dev.activations, 0);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	/* The running driver is told: config-change message on vector 0, ISR bit 1. */
	assert_int_equal(fake_kvm.nr_msi, msis + 1);
	assert_int_equal(fake_kvm.msi[msis].data, MSI_DATA);
	assert_int_equal(mrd(v, v->isr, 1), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(mrd(v, v->isr, 1), 0);   /* read clears */
	virtio_pci__get_stats(v->vp, &st);
	assert_non_null(strstr(st.last_error, "queue 1"));
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(status(v), 0);
}

static void test_virtio_pci_rings_outside_ram_or_bad_sizes_need_reset(void **state)
{
	struct vrig *v = *state;
	const uint64_t end = RAM_SIZE;

	expect_refused(v, 100, ring(1, 0), ring(1, 1), ring(1, 2));             /* not a power of 2 */
	expect_refused(v, 512, ring(1, 0), ring(1, 1), ring(1, 2));             /* > queue_max_size */
	expect_refused(v, 0, ring(1, 0), ring(1, 1), ring(1, 2));               /* empty */
	expect_refused(v, 256, LAYOUT_PCI_MMIO_BASE, ring(1, 1), ring(1, 2));   /* MMIO, not RAM */
	expect_refused(v, 256, ring(1, 0) + 8, ring(1, 1), ring(1, 2));         /* misaligned */
	expect_refused(v, 256, ring(1, 0), end - 6, ring(1, 2));                /* runs past RAM */
	expect_refused(v, 256, ring(1, 0), ring(1, 1), end - 2048);             /* used: 2054 bytes */
	expect_refused(v, 256, ring(1, 0), ring(1, 1), 0xfffffffffffff000ULL);  /* wraps */
	expect_refused(v, 256, 1ULL << 32, ring(1, 1), ring(1, 2));             /* no RAM at 4 GiB */
	/* The same queues inside RAM work. */
	assert_true(drv_init(v, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(v->dev.activations, 1);
	assert_int_equal(v->dev.bad_activations, 0);
}

static void test_virtio_pci_reset_stops_device_and_releases_everything(void **state)
{
	struct vrig *v = *state;
	unsigned resets;

	assert_true(drv_init(v, NQ) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(fake_kvm.nr_ioev, NQ);
	resets = v->dev.resets;
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(v->dev.resets, resets + 1);
	assert_int_equal(status(v), 0);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	assert_int_equal(fcntl(v->dev.q[0].kick_fd, F_GETFD), -1);   /* closed */
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_GF, 4), 0);
	/* And it comes back up. */
	assert_true(drv_init(v, NQ) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(v->dev.activations, 2);
}

/* A reboot in place: the function as built (status 0, nothing wired, MSI-X masked and off, no decode). */
static void test_virtio_pci_reboot_reset_returns_the_function_to_its_built_state(void **state)
{
	struct vrig *v = *state;
	unsigned resets;
	uint64_t bar = v->bar;

	assert_true(drv_init(v, NQ) & VIRTIO_CONFIG_S_DRIVER_OK);
	resets = v->dev.resets;
	virtio_pci__device_ops.reset(v->vp);
	pci_bus__reset(v->pci);
	assert_int_equal(v->dev.resets, resets + 1);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	assert_int_equal(cfg_rd(v, PCI_COMMAND, 2), 0);
	assert_int_equal(cfg_rd(v, v->msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE, 0);
	/* The next boot's driver finds it where the first one did, and it comes up. */
	drv_probe(v);
	assert_int_equal(v->bar, bar);
	assert_int_equal(status(v), 0);
	assert_int_equal(mrd(v, VIRTIO_PCI_MSIX_TABLE_OFF + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
	assert_true(drv_init(v, NQ) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(v->dev.activations, 2);
}

static void test_virtio_pci_status_reads_0_only_once_the_device_finished_its_reset(void **state)
{
	struct vrig *v = *state;
	uint8_t st;

	st = drv_init(v, NQ);
	assert_true(st & VIRTIO_CONFIG_S_DRIVER_OK);
	/* The device stops its data path on its own thread: the driver keeps polling the status. */
	v->dev.resetting = true;
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(status(v), st);
	assert_int_equal(status(v), st);
	v->dev.resetting = false;
	assert_int_equal(status(v), 0);
	/* Done is done: a later busy spell of the device does not bring the old status back. */
	v->dev.resetting = true;
	assert_int_equal(status(v), 0);
	v->dev.resetting = false;
	assert_true(drv_init(v, NQ) & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void test_virtio_pci_activate_failure_needs_reset_and_leaves_nothing_wired(void **state)
{
	struct vrig *v = *state;

	v->dev.activate_ret = -EIO;
	assert_true(drv_init(v, 2) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(v->dev.activations, 1);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	v->dev.activate_ret = 0;
	assert_true(drv_init(v, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(fake_kvm.nr_ioev, 2);
}

static void test_virtio_pci_masked_vector_holds_interrupt_until_unmask(void **state)
{
	struct vrig *v = *state;
	uint64_t one = 1, entry = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * 1;
	int call;
	unsigned before;

	assert_true(drv_init(v, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
	call = v->dev.q[0].call_fd;
	mwr(v, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);         /* mask vector 1 */
	assert_false(has_irqfd(call));
	before = fake_kvm.nr_msi;
	assert_int_equal(write(call, &one, 8), 8);
	fake_kvm__poll_irqfds();
	assert_int_equal(fake_kvm.nr_msi, before);                     /* nothing while masked */
	assert_int_equal(mrd(v, VIRTIO_PCI_MSIX_PBA_OFF, 8), 1u << 1);
	/* The driver moves the vector meanwhile (another CPU). */
	mwr(v, entry + PCI_MSIX_ENTRY_LOWER_ADDR, 4, MSI_ADDR + 0x3000);
	mwr(v, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);         /* unmask */
	assert_true(has_irqfd(call));
	assert_int_equal(fake_kvm.nr_msi, before + 1);                 /* the held one, once */
	assert_true(fake_kvm.msi[before].by_signal);
	assert_int_equal(fake_kvm.msi[before].addr, MSI_ADDR + 0x3000);
	assert_int_equal(mrd(v, VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);
	/* The irqfd's route followed the move too. */
	assert_int_equal(write(call, &one, 8), 8);
	fake_kvm__poll_irqfds();
	assert_int_equal(fake_kvm.nr_msi, before + 2);
	assert_int_equal(fake_kvm.msi[before + 1].addr, MSI_ADDR + 0x3000);
	/* MSI-X disabled: masked as a whole. */
	cfg_wr(v, v->msix_cap + PCI_MSIX_FLAGS, 2, 0);
	assert_false(has_irqfd(call));
	cfg_wr(v, v->msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_true(has_irqfd(call));
}

static void test_virtio_pci_bar_move_moves_ioeventfds(void **state)
{
	struct vrig *v = *state;
	uint64_t old = v->bar, moved = LAYOUT_PCI_MMIO_BASE + 0x1000000, cnt;

	assert_true(drv_init(v, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(has_ioeventfd(old + VIRTIO_PCI_NOTIFY_OFF));
	/* Linux-style: memory decode off, move, on. */
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	cfg_wr(v, PCI_BASE_ADDRESS_0, 4, (uint32_t)moved | PCI_BASE_ADDRESS_MEM_TYPE_64);
	cfg_wr(v, PCI_BASE_ADDRESS_1, 4, 0);
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(fake_kvm.nr_ioev, 2);
	assert_true(has_ioeventfd(moved + VIRTIO_PCI_NOTIFY_OFF));
	assert_true(has_ioeventfd(moved + VIRTIO_PCI_NOTIFY_OFF + 4));
	v->bar = moved;
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
	mwr(v, notify_off(v, 1), 2, 1);
	assert_int_equal(read(v->dev.q[1].kick_fd, &cnt, 8), 8);
	/* Nothing answers at the old place. */
	cnt = 0;
	assert_true(bus__access(&v->mmio, old + VIRTIO_PCI_COMMON_NUMQ, &cnt, 2, false));
	assert_int_equal(cnt, 0xffff);
	/* Moved while decoding (no decode toggle): follows as well. */
	cfg_wr(v, PCI_BASE_ADDRESS_0, 4, (uint32_t)old | PCI_BASE_ADDRESS_MEM_TYPE_64);
	assert_true(has_ioeventfd(old + VIRTIO_PCI_NOTIFY_OFF));
	assert_false(has_ioeventfd(moved + VIRTIO_PCI_NOTIFY_OFF));
	v->bar = old;
}

static void test_virtio_pci_config_change_bumps_generation_and_interrupts(void **state)
{
	struct vrig *v = *state;
	uint8_t gen;
	unsigned before;

	gen = (uint8_t)crd(v, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	v->dev.vdev.config_changed(&v->dev.vdev);      /* before DRIVER_OK: no interrupt */
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
	assert_int_equal(mrd(v, v->isr, 1), 0);
	assert_true(drv_init(v, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
	before = fake_kvm.nr_msi;
	v->dev.vdev.config_changed(&v->dev.vdev);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_CFGGENERATION, 1), (uint8_t)(gen + 2));
	assert_int_equal(fake_kvm.nr_msi, before + 1);
	assert_int_equal(fake_kvm.msi[before].data, MSI_DATA);   /* msix_config = vector 0 */
	assert_int_equal(mrd(v, v->isr, 1), VIRTIO_PCI_ISR_CONFIG);
	/* Vector 0 masked: the message waits in the PBA and goes on unmask. */
	mwr(v, VIRTIO_PCI_MSIX_TABLE_OFF + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
	v->dev.vdev.config_changed(&v->dev.vdev);
	assert_int_equal(fake_kvm.nr_msi, before + 1);
	assert_int_equal(mrd(v, VIRTIO_PCI_MSIX_PBA_OFF, 1), 1);
	mwr(v, VIRTIO_PCI_MSIX_TABLE_OFF + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	assert_int_equal(fake_kvm.nr_msi, before + 2);
}

/* vm.counters for a virtio-pci function: its device's counters, then the transport's. */
static void test_virtio_pci_counters_carry_the_device_and_the_transport(void **state)
{
	struct vrig *v = *state;
	struct counters c;
	struct counter_sink sink = counters_sink(&c);
	uint64_t one = 1, cnt;

	virtio_pci__device_ops.counters(v->vp, &sink);
	assert_int_equal(counters_num(&c, "device_activations"), 0);
	assert_string_equal(counters_str(&c, "driver"), "not ready");
	assert_int_equal(counters_num(&c, "activations"), 0);
	assert_int_equal(counters_num(&c, "exit_kicks"), 0);
	assert_int_equal(counters_num(&c, "monitor_interrupts"), 0);
	assert_false(counters_has(&c, "transport_error"));

	assert_true(drv_init(v, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
	bus__access(&v->mmio, v->bar + notify_off(v, 0), &one, 2, true);   /* a kick that exits */
	assert_int_equal(read(v->dev.q[0].kick_fd, &cnt, 8), 8);
	v->dev.vdev.config_changed(&v->dev.vdev);                          /* the monitor's MSI */
	sink = counters_sink(&c);
	virtio_pci__device_ops.counters(v->vp, &sink);
	assert_int_equal(counters_num(&c, "device_activations"), 1);
	assert_string_equal(counters_str(&c, "driver"), "ok");
	assert_int_equal(counters_num(&c, "activations"), 1);
	assert_int_equal(counters_num(&c, "exit_kicks"), 1);
	assert_int_equal(counters_num(&c, "monitor_interrupts"), 1);
	assert_int_equal(counters_num(&c, "needs_reset"), 0);
}

static void test_virtio_pci_bounds_vectors_selectors_and_odd_widths(void **state)
{
	struct vrig *v = *state;
	struct virtio_pci_stats st;
	uint64_t x;

	/* A queue that does not exist: size 0, writes ignored. */
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, NQ);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	cwr(v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0xffff);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	/* Vectors beyond the table read back NO_VECTOR (Linux then uses fewer vectors). */
	cwr(v, VIRTIO_PCI_COMMON_MSIX, 2, NQ + 1);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	cwr(v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0x7ff);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	/* 64-bit queue address in one access, and back. */
	cwr(v, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x0000000123456000ULL);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0x0000000123456000ULL);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_DESCHI, 4), 1);
	/* Byte writes into the middle of a register. */
	cwr(v, VIRTIO_PCI_COMMON_Q_DESCLO + 1, 1, 0x70);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0x0000000123457000ULL);
	/* Read-only registers. */
	cwr(v, VIRTIO_PCI_COMMON_NUMQ, 2, 99);
	cwr(v, VIRTIO_PCI_COMMON_Q_NOFF, 2, 3);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	/* Past the structure, the device config's end, a page straddle: harmless. */
	assert_int_equal(crd(v, VIRTIO_PCI_COMMON_SIZE, 4), 0);
	cwr(v, 0x100, 8, ~0ULL);
	x = v->dev.config_reads;
	assert_int_equal(mrd(v, v->device + 8, 4), 0);   /* 8+4 > 10 */
	assert_int_equal(v->dev.config_reads, x);
	mwr(v, v->device + 9, 2, 0xffff);
	assert_int_equal(mrd(v, 0xffe, 4), 0xffffffff);
	mwr(v, VIRTIO_PCI_BAR_SIZE - 4, 4, 1);           /* unused page */
	virtio_pci__get_stats(v->vp, &st);
	assert_true(st.ignored_writes >= 6);
	assert_int_equal(v->dev.bad_activations, 0);
}

static void test_virtio_pci_pci_cfg_window_reaches_bar(void **state)
{
	struct vrig *v = *state;
	uint8_t c = v->pci_cfg_cap;
	uint64_t cnt;

	/* Read num_queues (2 bytes at common + 0x12) through configuration space only. */
	cfg_wr(v, PCI_COMMAND, 2, 0);                    /* works without memory decode */
	cfg_wr(v, c + VIRTIO_PCI_CAP_BAR, 1, 0);
	cfg_wr(v, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_NUMQ);
	cfg_wr(v, c + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	assert_int_equal(cfg_rd(v, c + 16, 4), NQ);
	/* Write the status through it. */
	cfg_wr(v, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_STATUS);
	cfg_wr(v, c + VIRTIO_PCI_CAP_LENGTH, 4, 1);
	cfg_wr(v, c + 16, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(status(v), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* Invalid windows do nothing: another BAR, a 3-byte length, misaligned, past the BAR. */
	cfg_wr(v, c + VIRTIO_PCI_CAP_BAR, 1, 2);
	assert_int_equal(cfg_rd(v, c + 16, 4), 0);
	cfg_wr(v, c + VIRTIO_PCI_CAP_BAR, 1, 0);
	cfg_wr(v, c + VIRTIO_PCI_CAP_LENGTH, 4, 3);
	assert_int_equal(cfg_rd(v, c + 16, 4), 0);
	cfg_wr(v, c + VIRTIO_PCI_CAP_LENGTH, 4, 4);
	cfg_wr(v, c + VIRTIO_PCI_CAP_OFFSET, 4, 2);
	cfg_wr(v, c + 16, 4, 0);
	cfg_wr(v, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_BAR_SIZE);
	cfg_wr(v, c + 16, 4, 0);
	cfg_wr(v, c + VIRTIO_PCI_CAP_OFFSET, 4, 0xfffffffc);
	assert_int_equal(cfg_rd(v, c + 16, 4), 0);
	assert_int_equal(status(v), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* A notify through the window, after activation, kicks the queue. */
	assert_true(drv_init(v, 1) & VIRTIO_CONFIG_S_DRIVER_OK);
	cfg_wr(v, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_NOTIFY_OFF);
	cfg_wr(v, c + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	cfg_wr(v, c + 16, 2, 0);
	assert_int_equal(read(v->dev.q[0].kick_fd, &cnt, 8), 8);
}

static void test_virtio_pci_add_rejects_impossible_devices(void **state)
{
	struct vrig *v = *state;
	struct virtio_pci_env env = { .pci = v->pci, .vm_fd = v->vm_fd, .irqs = v->irqs, .mem = &v->mem };
	const struct virtio_dev good = v->dev.vdev;
	struct virtio_dev bad[7];
	struct virtio_dev_ops no_reset = fake_dev_ops;
	struct virtio_pci *vp;
	unsigned i;

	for (i = 0; i < 7; i++)
		bad[i] = good;
	bad[0].device_id = 0;
	bad[1].max_queues = 0;
	bad[2].max_queues = VIRTIO_MAX_QUEUES + 1;
	bad[3].queue_max_size = 300;
	bad[4].config_size = VIRTIO_PCI_DEVICE_MAX + 1;
	no_reset.reset = NULL;
	bad[5].ops = &no_reset;
	bad[6].device_id = 0x40;
	for (i = 0; i < 7; i++)
		assert_int_equal(virtio_pci__add(&env, &bad[i], &vp), -EINVAL);
	env.mem = NULL;
	assert_int_equal(virtio_pci__add(&env, &bad[0], &vp), -EINVAL);
}

/* ---- fuzz ------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A random but plausible value: small numbers, ring-ish addresses, all-ones, garbage. */
static uint64_t interesting(void)
{
	switch (rnd() % 8) {
	case 0: return rnd() % 8;
	case 1: return ring(rnd() % NQ, rnd() % 3);
	case 2: return ~0ULL;
	case 3: return 1ULL << (rnd() % 64);
	case 4: return RAM_SIZE - (rnd() % 4096);
	case 5: return VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	case 6: return (uint16_t)(rnd() % (NQ + 3));
	default: return rnd();
	}
}

static const uint32_t widths[] = { 1, 2, 4, 8 };

static void test_virtio_pci_random_guest_accesses_never_break_the_host(void **state)
{
	struct vrig *v = *state;
	uint32_t bar_lo = cfg_rd(v, PCI_BASE_ADDRESS_0, 4), bar_hi = cfg_rd(v, PCI_BASE_ADDRESS_1, 4);
	unsigned fds = open_fds(), i, seed, iters = 50000, seeds = 4;
	const char *env = getenv("RTVMM_FUZZ_ITERS");   /* longer runs: RTVMM_FUZZ_ITERS=1000000 */

	if (env && atoi(env) > 0)
		iters = (unsigned)atoi(env);
	for (seed = 1; seed <= seeds; seed++) {
		rng_state = 0x9e3779b97f4a7c15ULL * seed;
		for (i = 0; i < iters; i++) {
			uint32_t len = widths[rnd() % 4];
			uint64_t off, x = interesting(), one = 1;

			switch (rnd() % 16) {
			case 0: case 1: case 2: case 3: case 4:   /* common config, mostly real fields */
				off = rnd() % 2 ? rnd() % VIRTIO_PCI_COMMON_SIZE : rnd() % 0x80;
				if (rnd() % 2)
					cwr(v, (uint32_t)off, len, x);
				else
					crd(v, (uint32_t)off, len);
				break;
			case 5:                                  /* MSI-X table and PBA */
				off = VIRTIO_PCI_MSIX_TABLE_OFF + rnd() % (16 * (NQ + 2));
				mwr(v, off, len, rnd() % 2 ? (x & 1) : x);
				mrd(v, VIRTIO_PCI_MSIX_PBA_OFF + rnd() % 16, len);
				break;
			case 6:                                  /* notify, ISR, device config */
				mwr(v, VIRTIO_PCI_NOTIFY_OFF + rnd() % (4 * NQ + 8), len, x);
				mrd(v, VIRTIO_PCI_ISR_OFF + rnd() % 8, len);
				if (rnd() % 2)
					mwr(v, VIRTIO_PCI_DEVICE_OFF + rnd() % 16, len, x);
				else
					mrd(v, VIRTIO_PCI_DEVICE_OFF + rnd() % 16, len);
				break;
			case 7:                                  /* anywhere in the BAR */
				off = rnd() % (VIRTIO_PCI_BAR_SIZE + 16);
				if (rnd() % 2)
					mwr(v, off, len, x);
				else
					mrd(v, off, len);
				break;
			case 8: case 9:                          /* configuration space */
				len = widths[rnd() % 3];
				off = rnd() % 2 ? rnd() % 256 : v->msix_cap + rnd() % 12;
				if (rnd() % 4 == 0)
					off = v->pci_cfg_cap + rnd() % 20;
				if (rnd() % 2)
					cfg_wr(v, (unsigned)off, len, (uint32_t)x);
				else
					cfg_rd(v, (unsigned)off, len);
				break;
			case 10:                                 /* a plausible bring-up */
				cfg_wr(v, PCI_BASE_ADDRESS_0, 4, bar_lo);
				cfg_wr(v, PCI_BASE_ADDRESS_1, 4, bar_hi);
				cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
				drv_init(v, 1 + (unsigned)(rnd() % NQ));
				break;
			case 11:                                 /* the backend and the device */
				if (v->dev.activations && v->dev.q[0].call_fd >= 0 &&
				    fcntl(v->dev.q[0].call_fd, F_GETFD) >= 0)
					assert_int_equal(write(v->dev.q[0].call_fd, &one, 8), 8);
				fake_kvm__poll_irqfds();
				if (rnd() % 4 == 0)
					v->dev.vdev.config_changed(&v->dev.vdev);
				break;
			case 12:                                 /* put the BAR back where it was */
				cfg_wr(v, PCI_BASE_ADDRESS_0, 4, bar_lo);
				cfg_wr(v, PCI_BASE_ADDRESS_1, 4, bar_hi);
				cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
				break;
			default:                                 /* queue setup with random values */
				cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, rnd() % (NQ + 1));
				cwr(v, VIRTIO_PCI_COMMON_Q_SIZE + 2 * (uint32_t)(rnd() % 12), 2, x);
				if (rnd() % 8 == 0)
					cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, x);
				break;
			}
			if (v->dev.bad_activations || fake_kvm.violations)
				fail_msg("seed %u iteration %u: %s%s", seed, i, v->dev.bad, fake_kvm.why);
		}
	}
	/* Back to a clean state: reset releases every fd and KVM registration. */
	cfg_wr(v, PCI_BASE_ADDRESS_0, 4, bar_lo);
	cfg_wr(v, PCI_BASE_ADDRESS_1, 4, bar_hi);
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	assert_int_equal(open_fds(), fds);
	assert_true(v->dev.activations > 0);   /* the fuzz did reach the device */
}

/* ---- vCPUs at once ------------------------------------------------------------------ */

#define NR_VCPU_THREADS 4

struct vcpu_arg {
	struct vrig *v;
	uint64_t seed;
	unsigned iters;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One "vCPU": bring-ups, random register writes, config cycles, all without asserting. */
static void *vcpu_thread(void *opaque)
{
	struct vcpu_arg *a = opaque;
	struct vrig *v = a->v;
	uint64_t s = a->seed;
	unsigned i, q;

	for (i = 0; i < a->iters; i++) {
		uint64_t bar = __atomic_load_n(&v->bar, __ATOMIC_RELAXED), x = xorshift(&s), val;
		uint32_t len = widths[x % 4], cfg;

		switch ((x >> 8) % 6) {
		case 0:   /* a bring-up, racing everyone else's */
			val = 0;
			bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_STATUS, &val, 1, true);
			val = 1;
			bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_GFSELECT, &val, 4, true);
			bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_GF, &val, 4, true);
			val = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
			bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_STATUS, &val, 1, true);
			for (q = 0; q < 2; q++) {
				bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_Q_SELECT, &q, 2, true);
				val = ring(q, 0);
				bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_Q_DESCLO, &val, 8, true);
				val = ring(q, 1);
				bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_Q_AVAILLO, &val, 8, true);
				val = ring(q, 2);
				bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_Q_USEDLO, &val, 8, true);
				val = q + 1;
				bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_Q_MSIX, &val, 2, true);
				val = 1;
				bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_Q_ENABLE, &val, 2, true);
			}
			val = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
			bus__access(&v->mmio, bar + VIRTIO_PCI_COMMON_STATUS, &val, 1, true);
			break;
		case 1:   /* MSI-X entries: program and (un)mask */
			val = xorshift(&s);
			bus__access(&v->mmio, bar + VIRTIO_PCI_MSIX_TABLE_OFF + val % (16 * (NQ + 1)),
				    &val, len, true);
			break;
		case 2:   /* anywhere in the BAR */
			val = xorshift(&s);
			bus__access(&v->mmio, bar + val % VIRTIO_PCI_BAR_SIZE, &val, len, (val >> 40) & 1);
			break;
		case 3:   /* a configuration cycle (CONFIG_ADDRESS is shared: cycles interleave) */
			cfg = 0x80000000u | v->slot << 11 | (uint32_t)(xorshift(&s) % 256 & 0xfc);
			bus__access(&v->pio, 0xcf8, &cfg, 4, true);
			val = xorshift(&s);
			if (val % 4 == 0 && (cfg & 0xfc) != PCI_BASE_ADDRESS_0 && (cfg & 0xfc) != PCI_BASE_ADDRESS_1)
				bus__access(&v->pio, 0xcfc, &val, 4, true);
			else
				bus__access(&v->pio, 0xcfc, &val, 4, false);
			break;
		case 4:   /* notify every queue */
			for (q = 0; q < NQ; q++)
				bus__access(&v->mmio, bar + VIRTIO_PCI_NOTIFY_OFF + 4 * q, &q, 2, true);
			break;
		default:  /* the device side: a config change */
			v->dev.vdev.config_changed(&v->dev.vdev);
			break;
		}
	}
	return NULL;
}

static void test_virtio_pci_concurrent_vcpus_while_the_bar_moves(void **state)
{
	struct vrig *v = *state;
	struct vcpu_arg args[NR_VCPU_THREADS];
	pthread_t t[NR_VCPU_THREADS];
	uint32_t lo = cfg_rd(v, PCI_BASE_ADDRESS_0, 4);
	uint64_t base = v->bar;
	unsigned i;

	for (i = 0; i < NR_VCPU_THREADS; i++) {
		args[i] = (struct vcpu_arg){ v, 0x1234567ULL * (i + 1), 20000 };
		assert_int_equal(pthread_create(&t[i], NULL, vcpu_thread, &args[i]), 0);
	}
	/* Meanwhile "firmware" keeps moving BAR 0 and toggling decode (as vCPU 0 would). */
	for (i = 0; i < 2000; i++) {
		uint64_t at = base + (i % 4) * VIRTIO_PCI_BAR_SIZE;

		outl(&v->pio, 0xcf8, 0x80000000u | v->slot << 11 | PCI_COMMAND);
		outl(&v->pio, 0xcfc, PCI_COMMAND_MASTER);
		outl(&v->pio, 0xcf8, 0x80000000u | v->slot << 11 | PCI_BASE_ADDRESS_0);
		outl(&v->pio, 0xcfc, (uint32_t)at | (lo & 0xf));
		outl(&v->pio, 0xcf8, 0x80000000u | v->slot << 11 | PCI_COMMAND);
		outl(&v->pio, 0xcfc, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
		__atomic_store_n(&v->bar, at, __ATOMIC_RELAXED);
	}
	for (i = 0; i < NR_VCPU_THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(v->dev.bad_activations, 0);
	/* The threads' config cycles may have left anything in the command register. */
	cfg_wr(v, PCI_BASE_ADDRESS_0, 4, lo);
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	v->bar = base;
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
}

/* ---- snapshot ------------------------------------------------------------------------ */

/*
 * Everything the driver can read of the function, in a fixed order: the
 * common configuration at its selectors and for each queue, the device
 * configuration, the MSI-X table and PBA, and last the ISR (a read clears it).
 * Leaves the selectors as it found them.
 */
#define REGS_BYTES (VIRTIO_PCI_COMMON_SIZE * (NQ + 1) + 10 + 16 * (NQ + 1) + 8 + 1)

static void read_regs(struct vrig *v, uint8_t out[REGS_BYTES])
{
	uint16_t sel = (uint16_t)crd(v, VIRTIO_PCI_COMMON_Q_SELECT, 2);
	unsigned q, o, n = 0;

	for (o = 0; o < VIRTIO_PCI_COMMON_SIZE; o++)
		out[n++] = (uint8_t)crd(v, o, 1);
	for (q = 0; q < NQ; q++) {
		cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		for (o = 0; o < VIRTIO_PCI_COMMON_SIZE; o++)
			out[n++] = (uint8_t)crd(v, o, 1);
	}
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, sel);
	for (o = 0; o < 10; o++)
		out[n++] = (uint8_t)mrd(v, v->device + o, 1);
	for (o = 0; o < 16 * (NQ + 1); o++)
		out[n++] = (uint8_t)mrd(v, VIRTIO_PCI_MSIX_TABLE_OFF + o, 1);
	for (o = 0; o < 8; o++)
		out[n++] = (uint8_t)mrd(v, VIRTIO_PCI_MSIX_PBA_OFF + o, 1);
	out[n++] = (uint8_t)mrd(v, v->isr, 1);
	assert_int_equal(n, REGS_BYTES);
}

/*
 * A fresh function on the same fake VM, as the builder makes it for a
 * restore; the bus's own load would put its configuration space back (here:
 * drv_probe's memory decode and bus mastering, which the source had).
 */
static void rig_rebuild(struct vrig *v)
{
	rig_release(v);
	memset(v, 0, offsetof(struct vrig, vm_fd));
	assert_int_equal(rig_init(v, v->vm_fd), 0);
}

/* The driver's state of a running device, saved, reads back the same from a fresh function. */
static void test_virtio_pci_snapshot_round_trip_reads_back_the_same_registers(void **state)
{
	struct vrig *v = *state;
	uint8_t before[REGS_BYTES], after[REGS_BYTES];
	uint64_t one = 1, cnt, entry2 = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * 2;
	struct state_out saved;
	char why[STATE_WHY_LEN];
	unsigned msi;

	assert_true(drv_init(v, 3) & VIRTIO_CONFIG_S_DRIVER_OK);
	/* Selectors elsewhere, queue 1's vector masked with an interrupt held, a config change. */
	cwr(v, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	cwr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	cwr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
	mwr(v, entry2 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
	assert_int_equal(write(v->dev.q[1].call_fd, &one, 8), 8);
	v->dev.vdev.config_changed(&v->dev.vdev);
	assert_int_equal(mrd(v, VIRTIO_PCI_MSIX_PBA_OFF, 8), 1u << 2);

	saved = state_save(&virtio_pci__device_ops, v->vp);
	read_regs(v, before);
	assert_int_equal(before[VIRTIO_PCI_COMMON_CFGGENERATION], 1);
	assert_int_equal(before[REGS_BYTES - 1], VIRTIO_PCI_ISR_CONFIG);

	rig_rebuild(v);
	assert_int_equal(state_load(&virtio_pci__device_ops, v->vp, saved.buf, saved.len, why), 0);
	/* The device was activated as at the driver's DRIVER_OK, resuming its rings. */
	assert_int_equal(v->dev.activations, 1);
	assert_true(v->dev.resumed);
	assert_int_equal(v->dev.bad_activations, 0);
	assert_int_equal(v->dev.features_acked, BIT(VIRTIO_F_VERSION_1) | BIT(5) | BIT(29));
	read_regs(v, after);
	assert_memory_equal(before, after, REGS_BYTES);

	/* Routes and irqfds as the guest's writes made them: queues 0 and 2 live, 1 masked. */
	assert_true(has_irqfd(v->dev.q[0].call_fd));
	assert_false(has_irqfd(v->dev.q[1].call_fd));
	assert_true(has_irqfd(v->dev.q[2].call_fd));
	assert_true(has_ioeventfd(v->bar + notify_off(v, 0)));
	msi = fake_kvm.nr_msi;
	assert_int_equal(write(v->dev.q[0].call_fd, &one, 8), 8);
	fake_kvm__poll_irqfds();
	assert_int_equal(fake_kvm.nr_msi, msi + 1);
	assert_int_equal(fake_kvm.msi[msi].addr, MSI_ADDR + 0x1000);
	assert_int_equal(fake_kvm.msi[msi].data, MSI_DATA + 1);
	/* The held interrupt goes out once the driver unmasks its vector. */
	mwr(v, entry2 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	assert_int_equal(fake_kvm.nr_msi, msi + 2);
	assert_int_equal(fake_kvm.msi[msi + 1].data, MSI_DATA + 2);
	assert_true(has_irqfd(v->dev.q[1].call_fd));
	/* And the device works on: a kick reaches it without the monitor. */
	mwr(v, notify_off(v, 2), 2, 2);
	assert_int_equal(read(v->dev.q[2].kick_fd, &cnt, 8), 8);
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(v->dev.resets, 1);
	state_out__free(&saved);
}

/* A function the driver never started loads as such: nothing is activated. */
static void test_virtio_pci_snapshot_of_a_device_before_driver_ok_activates_nothing(void **state)
{
	struct vrig *v = *state;
	uint8_t before[REGS_BYTES], after[REGS_BYTES];
	struct state_out saved;
	char why[STATE_WHY_LEN];

	assert_true(drv_features(v, BIT(VIRTIO_F_VERSION_1) | BIT(5)) & VIRTIO_CONFIG_S_FEATURES_OK);
	drv_queue(v, 0, 64, ring(0, 0), ring(0, 1), ring(0, 2), VIRTIO_MSI_NO_VECTOR);
	saved = state_save(&virtio_pci__device_ops, v->vp);
	read_regs(v, before);
	rig_rebuild(v);
	assert_int_equal(state_load(&virtio_pci__device_ops, v->vp, saved.buf, saved.len, why), 0);
	read_regs(v, after);
	assert_memory_equal(before, after, REGS_BYTES);
	assert_int_equal(v->dev.activations, 0);
	/* The driver goes on from there. */
	drv_enable(v, 0);
	assert_true(drv_ok(v) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(v->dev.activations, 1);
	assert_false(v->dev.resumed);
	assert_int_equal(v->dev.q[0].size, 64);
	state_out__free(&saved);
}

/* Offsets in the transport's state (see virtio_pci_device_save). */
#define ST_TYPE      8
#define ST_ISR       16
#define ST_FEATURES  25
#define ST_QUEUE0    37
#define ST_Q_SIZE    0
#define ST_Q_VECTOR  2
#define ST_Q_DESC    6

/* What a snapshot file may hold is refused with a reason, and leaves the function as built. */
static void test_virtio_pci_snapshot_hostile_states_are_refused(void **state)
{
	const struct device_ops *ops = &virtio_pci__device_ops;
	struct vrig *v = *state;
	struct state_out saved;
	char why[STATE_WHY_LEN];

	assert_true(drv_init(v, 2) & VIRTIO_CONFIG_S_DRIVER_OK);
	saved = state_save(ops, v->vp);
	rig_rebuild(v);
	assert_state_length_exact(ops, v->vp, &saved);
	assert_state_byte_refused(ops, v->vp, &saved, 0, 2, "version");
	assert_state_byte_refused(ops, v->vp, &saved, 4, 'x', "kind");
	assert_state_byte_refused(ops, v->vp, &saved, ST_TYPE, 2, "type 2");
	assert_state_byte_refused(ops, v->vp, &saved, ST_ISR, 0x80, "ISR");
	/* Bit 38: the fake device offers it, the transport never does. */
	assert_state_byte_refused(ops, v->vp, &saved, ST_FEATURES + 4, 0x40, "feature bit 38");
	assert_state_byte_refused(ops, v->vp, &saved, ST_QUEUE0 + ST_Q_SIZE + 1, 0x02, "size 512");
	assert_state_byte_refused(ops, v->vp, &saved, ST_QUEUE0 + ST_Q_VECTOR + 1, 0x40, "vector");
	/* The descriptor table far outside guest RAM (its top byte). */
	assert_state_byte_refused(ops, v->vp, &saved, ST_QUEUE0 + ST_Q_DESC + 7, 0x10, "guest RAM");
	/* Size 0 (no power of two) for a running queue. */
	assert_state_byte_refused(ops, v->vp, &saved, ST_QUEUE0 + ST_Q_SIZE + 1, 0, "power of two");
	/* Nothing of all that reached the function or KVM. */
	assert_int_equal(status(v), 0);
	assert_int_equal(v->dev.activations, 0);
	assert_int_equal(fake_kvm.nr_irqfd, 0);
	assert_int_equal(fake_kvm.nr_ioev, 0);
	/* And the good state still loads. */
	assert_int_equal(state_load(ops, v->vp, saved.buf, saved.len, why), 0);
	assert_true(status(v) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(fake_kvm.nr_irqfd, 2);
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	state_out__free(&saved);
}

/* Random bytes never crash the host: refused, or loaded into a state the transport can hold. */
static void test_virtio_pci_snapshot_random_corruption_never_breaks_the_host(void **state)
{
	const struct device_ops *ops = &virtio_pci__device_ops;
	struct vrig *v = *state;
	struct state_out saved;
	char why[STATE_WHY_LEN];
	uint32_t seed = 12345;
	uint8_t *bad;
	unsigned k;

	assert_true(drv_init(v, 3) & VIRTIO_CONFIG_S_DRIVER_OK);
	saved = state_save(ops, v->vp);
	rig_rebuild(v);
	bad = malloc(saved.len);
	assert_non_null(bad);
	for (k = 0; k < 400; k++) {
		unsigned flips = 1 + k % 4, f;
		struct state_in in;
		int err;

		memcpy(bad, saved.buf, saved.len);
		for (f = 0; f < flips; f++) {
			seed = seed * 1103515245u + 12345u;
			/* After the header (version, kind, shape): the driver's registers. */
			bad[14 + (seed >> 8) % (saved.len - 14)] ^= (uint8_t)(1u << ((seed >> 4) % 8));
		}
		in = state_in__of(bad, saved.len);
		memset(why, 0, sizeof(why));
		err = ops->load(v->vp, &in, why, sizeof(why));
		assert_true(err == 0 || (err < 0 && why[0]));
		/* Whatever was taken, the driver's reset releases it. */
		cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
		assert_int_equal(fake_kvm.nr_ioev, 0);
		assert_int_equal(fake_kvm.nr_irqfd, 0);
	}
	free(bad);
	state_out__free(&saved);
}

/* ---- the same calls against a real KVM VM ----------------------------------------- */

static void test_virtio_pci_real_kvm_accepts_routes_irqfds_and_ioeventfds(void **state)
{
	struct vrig *v = NULL;
	struct virtio_pci_stats st;
	int kvm_fd, vm, vcpu;
	uint64_t entry = VIRTIO_PCI_MSIX_TABLE_OFF + 16, one = 1;

	(void)state;
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		print_message("skipped: /dev/kvm: %s\n", strerror(errno));
		skip();
	}
	vm = (int)syscall(SYS_ioctl, kvm_fd, KVM_CREATE_VM, 0);
	assert_true(vm >= 0);
	assert_int_equal(syscall(SYS_ioctl, vm, KVM_CREATE_IRQCHIP, 0), 0);
	vcpu = (int)syscall(SYS_ioctl, vm, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	assert_int_equal(setup_with_fd((void **)&v, vm, true), 0);

	assert_true(drv_init(v, NQ) & VIRTIO_CONFIG_S_DRIVER_OK);
	mwr(v, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);       /* mask: irqfd out */
	assert_int_equal(write(v->dev.q[0].call_fd, &one, 8), 8);
	mwr(v, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);       /* unmask: KVM_SIGNAL_MSI, irqfd in */
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MASTER);          /* ioeventfds out */
	cfg_wr(v, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	v->dev.vdev.config_changed(&v->dev.vdev);
	virtio_pci__get_stats(v->vp, &st);
	assert_int_equal(st.ioeventfd_errors, 0);
	assert_int_equal(st.irqfd_errors, 0);
	assert_int_equal(st.route_errors, 0);
	assert_int_equal(fake_kvm.kernel_errors, 0);
	assert_int_equal(fake_kvm.nr_ioev, NQ);
	cwr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(fake_kvm.kernel_errors, 0);
	teardown((void **)&v);
	close(vcpu);
	close(vm);
	close(kvm_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_virtio_pci_ids_class_and_bar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_capabilities_found_with_offsets_and_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_offers_device_features_with_version_1_only_supported_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_features_ok_refused_for_unoffered_or_missing_version_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_driver_ok_activates_with_checked_queues_and_wired_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_kicks_and_interrupts_bypass_the_monitor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_early_kick_is_delivered_at_activation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_rings_outside_ram_or_bad_sizes_need_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_reset_stops_device_and_releases_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_reboot_reset_returns_the_function_to_its_built_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_status_reads_0_only_once_the_device_finished_its_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_activate_failure_needs_reset_and_leaves_nothing_wired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_masked_vector_holds_interrupt_until_unmask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_bar_move_moves_ioeventfds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_config_change_bumps_generation_and_interrupts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_counters_carry_the_device_and_the_transport, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_bounds_vectors_selectors_and_odd_widths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_pci_cfg_window_reaches_bar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_add_rejects_impossible_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_random_guest_accesses_never_break_the_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_concurrent_vcpus_while_the_bar_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_snapshot_round_trip_reads_back_the_same_registers,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_snapshot_of_a_device_before_driver_ok_activates_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_snapshot_hostile_states_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtio_pci_snapshot_random_corruption_never_breaks_the_host,
						setup, teardown),
		cmocka_unit_test(test_virtio_pci_real_kvm_accepts_routes_irqfds_and_ioeventfds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
