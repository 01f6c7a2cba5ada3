/*
 * PCI: one conventional PCI bus (bus 0, 32 slots, function 0 only), reached
 * through configuration mechanism #1 (CONFIG_ADDRESS at port 0xCF8,
 * CONFIG_DATA at 0xCFC-0xCFF), with a host bridge at 00:00.0 and devices'
 * memory BARs in one MMIO window of the PCI hole.
 *
 * Model:
 * - Each device has a 256-byte type-0 configuration header with per-byte
 *   write masks: read-only bits keep their value, read-write bits take the
 *   written value, RW1C bits (status errors) clear where a 1 is written.
 *   A device hooks writes and reads it must react to (pci_dev_ops).
 * - BARs are memory BARs (32- or 64-bit), power-of-two sized, naturally
 *   aligned, assigned from the window when the device is added (as firmware
 *   would). The sizing protocol works as on hardware: write all-ones, read
 *   back the size mask. Linux keeps assignments that lie in the host bridge's
 *   _CRS window (vmm/x86/acpi.c describes it).
 * - The PCI bus claims the whole window on the MMIO bus once and routes each
 *   access inside it to the BAR that decodes it, so the MMIO bus stays
 *   immutable after vCPUs start (its lookups take no lock) even though the
 *   guest moves BARs and toggles memory decode at run time. A BAR decodes
 *   while COMMAND.MEMORY is set and it lies entirely inside the window (as
 *   behind a host bridge that only forwards its window). BAR addresses are
 *   published under a rwlock held only for the lookup; the device handler
 *   runs after it is released (an access racing a BAR move reaches the device
 *   at its old place, as if it had happened just before the move).
 * - No INTx: every device has interrupt pin 0; devices interrupt by MSI-X
 *   (vmm/pci/msix.h). No I/O BARs, no expansion ROM, no ECAM (extended config
 *   space reads all-ones), no bridges.
 * - A guest can write anything anywhere: every access is bounds-checked,
 *   unclaimed reads return all-ones and unclaimed writes are dropped, counted.
 */
#ifndef RTVMM_PCI_PCI_H
#define RTVMM_PCI_PCI_H

#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/device.h"

#define PCI_MAX_SLOTS       32
#define PCI_CFG_SIZE        256
#define PCI_NR_BARS         6
#define PCI_CAP_START       0x40      /* first capability (after the type-0 header) */
#define PCI_BAR_MIN_ALIGN   0x1000ULL /* BARs are placed on page boundaries */

/* The host bridge at 00:00.0: QEMU's generic PCIe host bridge id, which no guest driver binds to. */
#define PCI_HOST_VENDOR_ID  0x1b36
#define PCI_HOST_DEVICE_ID  0x0008
#define PCI_HOST_CLASS      0x060000  /* bridge, host bridge */

/* Command register bits a guest may change (I/O, memory, bus master, parity, SERR, INTx disable). */
#define PCI_COMMAND_WMASK   0x0547
/* Status bits that are write-one-to-clear (error bits; never set by rtvmm devices). */
#define PCI_STATUS_W1C      0xf900

struct pci_bus;
struct pci_dev;

/* A device's reactions to the guest; every hook is optional and runs with dev->lock held. */
struct pci_dev_ops {
	/* Before a guest read of config [off, off+len) is served from cfg[]: refresh those bytes. */
	void (*config_reading)(struct pci_dev *dev, uint32_t off, uint32_t len);
	/* After a guest write of config [off, off+len) landed in cfg[] (masks applied). */
	void (*config_written)(struct pci_dev *dev, uint32_t off, uint32_t len);
	/*
	 * BAR `bar` started or stopped decoding, or moved. `was_on`/`old` is the
	 * previous state, `on`/`addr` the new one (addresses mean something only when on).
	 */
	void (*bar_changed)(struct pci_dev *dev, unsigned bar, bool was_on, uint64_t old, bool on,
			    uint64_t addr);
};

struct pci_bar {
	uint64_t size;             /* 0: not implemented; else a power of two >= 16 */
	uint32_t flags;            /* low BAR bits: PCI_BASE_ADDRESS_MEM_TYPE_64, _MEM_PREFETCH */
	uint64_t addr;             /* address programmed in the BAR register(s) */
	bool decoding;             /* memory decode on and [addr, addr+size) inside the window */
	const struct io_ops *ops;  /* accesses: off relative to the BAR; called without dev->lock */
	void *opaque;
};

/*
 * One PCI function, embedded in the device's own state. `lock` is recursive
 * (a device may call back into itself, e.g. a BAR access through its own
 * configuration window) and guards cfg[], bars[] and, by convention, all of
 * the device's state. bars[].addr/decoding change with the bus's BAR lock
 * held as well.
 */
struct pci_dev {
	pthread_mutex_t lock;
	const char *name;
	const struct pci_dev_ops *ops;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];   /* bits the guest can write */
	uint8_t w1cmask[PCI_CFG_SIZE]; /* bits the guest clears by writing 1 */
	uint8_t cfg_reset[PCI_CFG_SIZE]; /* cfg[] as pci_bus__add left it (a reset restores it) */
	struct pci_bar bars[PCI_NR_BARS];
	uint8_t cap_last;              /* offset of the last capability, 0 for none */
	uint8_t cap_free;              /* where the next capability goes */
	int slot;                      /* -1 until added to a bus */
	struct pci_bus *bus;
};

struct pci_bus_stats {
	uint64_t cfg_unclaimed;    /* config accesses to absent devices, other buses/functions */
	uint64_t mmio_unclaimed;   /* window accesses no decoding BAR covers */
};

/*
 * Creates bus 0: claims ports 0xCF8-0xCFF on `pio` and [mmio_base, +mmio_size)
 * on `mmio`, and puts the host bridge in slot 0. Returns 0 or -errno
 * (-EEXIST if the ports or the window are taken, -EINVAL for a bad window).
 */
__attribute__((warn_unused_result))
int pci_bus__create(struct bus *pio, struct bus *mmio, uint64_t mmio_base, uint64_t mmio_size,
		    struct pci_bus **out);

/*
 * Frees the bus (not the devices: their owners destroy them). The bus's
 * ranges stay on `pio`/`mmio`: call once vCPUs are stopped, before bus__exit.
 */
void pci_bus__destroy(struct pci_bus *bus);

/*
 * Plugs `dev` into a free slot (the lowest) and assigns its BARs from the
 * window (BARs are left not decoding: the guest's driver sets
 * COMMAND.MEMORY). Before vCPUs start: config cycles find slots without a
 * lock. Returns 0, -ENOSPC (no slot or no room in the window).
 */
__attribute__((warn_unused_result))
int pci_bus__add(struct pci_bus *bus, struct pci_dev *dev);

void pci_bus__get_stats(struct pci_bus *bus, struct pci_bus_stats *st);

/*
 * A bus reset (a reboot in place): every function's configuration space as
 * pci_bus__add left it (BARs at their assigned addresses, not decoding, MSI-X
 * off), each told through its hooks; CONFIG_ADDRESS 0. The functions' own
 * state (virtio status, MSI-X table) is their owners' to reset, first.
 */
void pci_bus__reset(struct pci_bus *bus);

/*
 * Initialises a function's header: ids, class code (base<<16 | sub<<8 |
 * prog-if), revision, header type 0, no BARs, no capabilities, interrupt
 * pin 0 (none), and the standard write masks (command, cache line size,
 * latency timer, interrupt line; status error bits RW1C).
 */
void pci_dev__init(struct pci_dev *dev, const char *name, uint16_t vendor, uint16_t device,
		   uint32_t class_code, uint8_t revision, const struct pci_dev_ops *ops);
void pci_dev__exit(struct pci_dev *dev);

void pci_dev__set_subsystem(struct pci_dev *dev, uint16_t vendor, uint16_t device);

/*
 * Declares memory BAR `bar` (a 64-bit BAR also takes `bar`+1) of `size`
 * bytes (power of two, >= 16); `flags` is 0 or PCI_BASE_ADDRESS_MEM_TYPE_64,
 * optionally | PCI_BASE_ADDRESS_MEM_PREFETCH. Before pci_bus__add.
 * Returns 0 or -EINVAL.
 */
int pci_dev__add_bar(struct pci_dev *dev, unsigned bar, uint64_t size, uint32_t flags,
		     const struct io_ops *ops, void *opaque);

/*
 * Appends a capability (cap[0] is its id; cap[1], the next pointer, is
 * filled in) at a dword-aligned offset, links it into the list at 0x34 and
 * sets STATUS.CAP_LIST. The bytes are read-only until pci_dev__set_wmask.
 * Returns the capability's offset, or -ENOSPC / -EINVAL.
 */
int pci_dev__add_cap(struct pci_dev *dev, const void *cap, uint8_t len);

/* Makes the bits of `mask` (len <= 4 bytes, little endian) at config offset `off` guest-writable. */
void pci_dev__set_wmask(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t mask);

/* Config space accessors for device code (no locking, no hooks; little endian). */
uint32_t pci_dev__cfg_get(const struct pci_dev *dev, uint32_t off, uint32_t len);
void pci_dev__cfg_set(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val);


/*
 * How a VM holds its PCI bus (vmm/device.h): added before its functions, so
 * destroyed after. Its snapshot holds CONFIG_ADDRESS and each function's
 * configuration space; load (refused unless the bus has the same functions,
 * by slot and ids) puts back the bits a guest can write, maps the BARs where
 * they were (bar_changed) and calls config_written for the command register
 * only, as a guest write of it would: a function re-derives anything else it
 * keeps from its configuration space in its own load, which runs after the bus's.
 */
extern const struct device_ops pci_bus__device_ops;

#endif
