/*
 * Fuzz target: the PCI bus (vmm/pci/pci.c: config mechanism #1, BARs, the MMIO window), MSI-X
 * (vmm/pci/msix.c) and the virtio-pci transport (vmm/virtio/pci.c: common config, notify, ISR,
 * device config, the PCI_CFG window) of two virtio functions, driven by a hostile guest: a
 * sequence of config-space and MMIO accesses, with KVM modelled by tests/unit/fake_kvm.c.
 *
 * Input: a list of operations, one byte each picking the operation and the function, then its
 * arguments (see run_op). One operation performs a whole Linux-like bring-up with fuzzed
 * values, so the fuzzer reaches DRIVER_OK early and spends its time on what follows.
 * Beyond the sanitizers: the library never asks KVM for something KVM refuses (the model counts
 * violations), a device is activated only with queues the transport checked (sizes, rings in
 * RAM, live fds) and only reads its config inside config_size, and after teardown no irqfd,
 * ioeventfd or file descriptor is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "fake_kvm.h"
#include "vmm/bus.h"
#include "vmm/guest_mem.h"
#include "vmm/irq.h"
#include "vmm/pci/pci.h"
#include "vmm/virtio/pci.h"
#include "vmm/x86/layout.h"

#include "fuzz.h"

#define BIT(n)   (1ULL << (n))
#define RAM_SIZE (2ULL << 20)
#define NR_DEVS  2
#define NQ       3
#define QMAX     256
#define CFG_SIZE 10

/* A virtio device that records what the transport hands it and checks it. */
struct fdev {
	struct virtio_dev vdev;
	uint8_t config[CFG_SIZE];
	const struct guest_mem *mem;
	bool active;
	struct virtio_queue q[NQ];
};

struct rig {
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct irq_routing irqs;
	struct fdev dev[NR_DEVS];
	struct virtio_pci *vp[NR_DEVS];
	int vm_fd;
};

static struct guest_mem mem;

static uint64_t fdev_features(struct virtio_dev *vdev)
{
	(void)vdev;
	return BIT(5) | BIT(16) | BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_RING_F_INDIRECT_DESC);
}

static void fdev_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct fdev *d = vdev->priv;

	FUZZ_CHECK(off <= CFG_SIZE && len <= CFG_SIZE - off, "config read %u+%u", off, len);
	memcpy(data, d->config + off, len);
}

static void fdev_config_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			      uint32_t len)
{
	struct fdev *d = vdev->priv;

	FUZZ_CHECK(off <= CFG_SIZE && len <= CFG_SIZE - off, "config write %u+%u", off, len);
	memcpy(d->config + off, data, len);
}

static int fdev_activate(struct virtio_dev *vdev, const struct virtio_activation *a)
{
	struct fdev *d = vdev->priv;
	bool packed = a->features & BIT(VIRTIO_F_RING_PACKED);
	unsigned i;

	FUZZ_CHECK(!d->active, "activated twice without a reset");
	FUZZ_CHECK(a->nr_queues == NQ && a->mem == d->mem, "activation of %u queues", a->nr_queues);
	FUZZ_CHECK(!(a->features & ~(fdev_features(vdev) | BIT(VIRTIO_F_VERSION_1))),
		   "features %#llx beyond the offer", (unsigned long long)a->features);
	for (i = 0; i < a->nr_queues; i++) {
		const struct virtio_queue *q = &a->queues[i];
		uint64_t n = q->size;

		d->q[i] = *q;
		if (!q->enabled)
			continue;
		FUZZ_CHECK(n && n <= QMAX && (packed || !(n & (n - 1))), "queue %u size %llu", i,
			   (unsigned long long)n);
		FUZZ_CHECK(guest_mem__ptr(a->mem, q->desc, 16 * n) &&
			   guest_mem__ptr(a->mem, q->driver, packed ? 4 : 6 + 2 * n) &&
			   guest_mem__ptr(a->mem, q->device, packed ? 4 : 6 + 8 * n),
			   "queue %u rings outside RAM (desc %#llx)", i, (unsigned long long)q->desc);
		FUZZ_CHECK(fcntl(q->kick_fd, F_GETFD) >= 0 && fcntl(q->call_fd, F_GETFD) >= 0,
			   "queue %u without live fds", i);
	}
	d->active = true;
	return 0;
}

static void fdev_reset(struct virtio_dev *vdev)
{
	((struct fdev *)vdev->priv)->active = false;
}

static const struct virtio_dev_ops fdev_ops = {
	.features = fdev_features,
	.config_read = fdev_config_read,
	.config_write = fdev_config_write,
	.activate = fdev_activate,
	.reset = fdev_reset,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(!guest_mem__create(&mem, RAM_SIZE), "cannot create guest RAM");
	fake_kvm__path(); /* the fake /dev/kvm stays open from now on */
	return 0;
}

static void rig_create(struct rig *r)
{
	unsigned i;

	fake_kvm__reset();
	r->vm_fd = fake_kvm__create_vm(true);
	FUZZ_CHECK(r->vm_fd >= 0, "fake VM: %d", r->vm_fd);
	bus__init(&r->pio, "pio");
	bus__init(&r->mmio, "mmio");
	FUZZ_CHECK(!irq_routing__init_pc(&r->irqs, r->vm_fd, 2), "irq routing");
	FUZZ_CHECK(!pci_bus__create(&r->pio, &r->mmio, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE,
				    &r->pci), "pci bus");
	for (i = 0; i < NR_DEVS; i++) {
		struct virtio_pci_env env = { .pci = r->pci, .vm_fd = r->vm_fd, .irqs = &r->irqs,
					      .mem = &mem };

		r->dev[i] = (struct fdev){
			.vdev = { .name = i ? "vnet1" : "vnet0", .device_id = 1, .max_queues = NQ,
				  .queue_max_size = QMAX, .config_size = CFG_SIZE, .ops = &fdev_ops },
			.config = { 0x52, 0x54, 0, 0x12, 0x34, (uint8_t)i, 1, 0, 1, 0 },
			.mem = &mem,
		};
		r->dev[i].vdev.priv = &r->dev[i];
		FUZZ_CHECK(!virtio_pci__add(&env, &r->dev[i].vdev, &r->vp[i]), "virtio_pci__add");
	}
}

static void rig_destroy(struct rig *r)
{
	unsigned i;

	for (i = 0; i < NR_DEVS; i++)
		virtio_pci__destroy(r->vp[i]);
	pci_bus__destroy(r->pci);
	irq_routing__exit(&r->irqs);
	bus__exit(&r->pio);
	bus__exit(&r->mmio);
	close(r->vm_fd);
	FUZZ_CHECK(!fake_kvm.violations, "KVM would refuse: %s", fake_kvm.why);
	FUZZ_CHECK(!fake_kvm.nr_irqfd && !fake_kvm.nr_ioev, "%u irqfds, %u ioeventfds left",
		   fake_kvm.nr_irqfd, fake_kvm.nr_ioev);
}

/* ---- a guest's accesses ------------------------------------------------------------- */

static const uint32_t widths[] = { 1, 2, 4, 8 };

static void cfg_access(struct rig *r, unsigned slot, unsigned reg, uint32_t len, uint32_t *v,
		       bool write)
{
	uint32_t addr = 0x80000000u | slot << 11 | (reg & 0xfc);

	bus__access(&r->pio, 0xcf8, &addr, 4, true);
	bus__access(&r->pio, 0xcfc + (reg & 3), v, len, write);
}

static uint64_t bar_of(struct rig *r, unsigned slot)
{
	uint32_t lo = 0, hi = 0;

	cfg_access(r, slot, PCI_BASE_ADDRESS_0, 4, &lo, false);
	cfg_access(r, slot, PCI_BASE_ADDRESS_1, 4, &hi, false);
	return (lo & ~0xfULL) | (uint64_t)hi << 32;
}

/* A guest write: KVM's ioeventfds see it first, as in the kernel. */
static void guest_write(struct rig *r, uint64_t addr, uint32_t len, uint64_t v)
{
	uint64_t one = 1;
	unsigned i;

	for (i = 0; i < fake_kvm.nr_ioev; i++)
		if (fake_kvm.ioev[i].addr == addr &&
		    (fake_kvm.ioev[i].len == 0 || fake_kvm.ioev[i].len == len)) {
			FUZZ_CHECK(write(fake_kvm.ioev[i].fd, &one, 8) == 8, "ioeventfd write");
			return;
		}
	bus__access(&r->mmio, addr, &v, len, true);
}

static void common_write(struct rig *r, uint64_t bar, uint32_t off, uint32_t len, uint64_t v)
{
	guest_write(r, bar + VIRTIO_PCI_COMMON_OFF + off, len, v);
}

/* What Linux's virtio_pci does up to DRIVER_OK, with the fuzzer's values. */
static void bring_up(struct rig *r, unsigned slot, struct fuzz_in *in)
{
	uint32_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, v;
	uint64_t bar = bar_of(r, slot), features = fuzz_in__u64(in);
	uint8_t nq = fuzz_in__u8(in) % (NQ + 1), size_log = fuzz_in__u8(in);
	uint16_t ring_page = fuzz_in__u16(in);
	unsigned q, i;

	cfg_access(r, slot, PCI_COMMAND, 2, &cmd, true);
	/* MSI-X: the capability is the first one (0x40); enable masked, fill, unmask. */
	v = PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL;
	cfg_access(r, slot, PCI_CAP_START + PCI_MSIX_FLAGS, 2, &v, true);
	for (i = 0; i < NQ + 1; i++) {
		uint64_t e = bar + VIRTIO_PCI_MSIX_TABLE_OFF + 16 * i;

		guest_write(r, e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, 0xfee00000u + 0x1000 * i);
		guest_write(r, e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
		guest_write(r, e + PCI_MSIX_ENTRY_DATA, 4, 0x4020 + i);
		guest_write(r, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	}
	v = PCI_MSIX_FLAGS_ENABLE;
	cfg_access(r, slot, PCI_CAP_START + PCI_MSIX_FLAGS, 2, &v, true);
	common_write(r, bar, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	common_write(r, bar, VIRTIO_PCI_COMMON_STATUS, 1,
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	common_write(r, bar, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_write(r, bar, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	common_write(r, bar, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_write(r, bar, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	common_write(r, bar, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE |
		     VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	common_write(r, bar, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (q = 0; q < nq; q++) {
		uint64_t base = (uint64_t)ring_page * 0x1000 + q * 0x10000ULL;

		common_write(r, bar, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_SIZE, 2, 1u << (size_log % 10));
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)base);
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_DESCHI, 4, (uint32_t)(base >> 32));
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)(base + 0x4000));
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)(base + 0x8000));
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_MSIX, 2, q + 1);
		common_write(r, bar, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	}
	common_write(r, bar, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE |
		     VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void run_op(struct rig *r, struct fuzz_in *in)
{
	uint8_t op = fuzz_in__u8(in);
	unsigned dev = (op >> 4) % NR_DEVS, slot = dev + 1;
	uint64_t v = 0;

	switch (op & 0xf) {
	case 0: /* config write to one of slots 0-3 (host bridge, the two functions, nothing) */
	case 1: { /* config read */
		uint8_t s = fuzz_in__u8(in), reg = fuzz_in__u8(in);
		uint32_t len = widths[fuzz_in__u8(in) % 3], x = fuzz_in__u32(in);

		cfg_access(r, s % 4, reg, len, &x, !(op & 1));
		break;
	}
	case 2: { /* raw port access around 0xcf8-0xcff: any width, any order */
		uint8_t port = fuzz_in__u8(in), w = fuzz_in__u8(in);
		uint32_t x = fuzz_in__u32(in);

		bus__access(&r->pio, 0xcf8 + port % 8, &x, widths[w % 3], w & 0x80);
		break;
	}
	case 3: /* BAR write: common, ISR, device config, notify, MSI-X table and PBA */
	case 4: { /* BAR read */
		uint16_t off = fuzz_in__u16(in);
		uint32_t len = widths[fuzz_in__u8(in) % 4];
		uint64_t bar = bar_of(r, slot);

		v = fuzz_in__u64(in);
		if ((op & 0xf) == 3)
			guest_write(r, bar + off, len, v);
		else
			bus__access(&r->mmio, bar + off, &v, len, false);
		break;
	}
	case 5: { /* anywhere in the MMIO window, read or write */
		uint32_t off = fuzz_in__u32(in);
		uint8_t w = fuzz_in__u8(in);

		v = fuzz_in__u64(in);
		bus__access(&r->mmio, LAYOUT_PCI_MMIO_BASE + off % LAYOUT_PCI_MMIO_SIZE, &v,
			    widths[w % 4], w & 0x80);
		break;
	}
	case 6: { /* the backend completes: signal a queue's call fd, KVM delivers */
		unsigned q = fuzz_in__u8(in) % NQ;
		uint64_t one = 1;

		if (r->dev[dev].active && r->dev[dev].q[q].enabled)
			FUZZ_CHECK(write(r->dev[dev].q[q].call_fd, &one, 8) == 8, "call fd write");
		fake_kvm__poll_irqfds();
		break;
	}
	case 7: /* the device's configuration changed */
		r->dev[dev].vdev.config_changed(&r->dev[dev].vdev);
		break;
	case 8:
		bring_up(r, slot, in);
		break;
	default: { /* a common-config write at a plausible offset (what a driver touches most) */
		uint8_t off = fuzz_in__u8(in);
		uint32_t len = widths[fuzz_in__u8(in) % 4];

		v = fuzz_in__u64(in);
		common_write(r, bar_of(r, slot), off % (VIRTIO_PCI_COMMON_SIZE + 8), len, v);
		break;
	}
	}
	FUZZ_CHECK(!fake_kvm.violations, "KVM would refuse: %s", fake_kvm.why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned fds_before = fuzz_open_fds();
	struct rig r;

	memset(&r, 0, sizeof(r));
	rig_create(&r);
	while (in.n)
		run_op(&r, &in);
	rig_destroy(&r);
	FUZZ_CHECK(fuzz_open_fds() == fds_before, "%u fds open after teardown, %u before", fuzz_open_fds(),
		   fds_before);
	return 0;
}
