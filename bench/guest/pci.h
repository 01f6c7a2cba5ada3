/*
 * PCI for the bare-metal guest: configuration mechanism #1 (ports 0xCF8 /
 * 0xCFC), bus 0 only (rtvmm and QEMU's pc machine put every device there),
 * memory BARs read (and sized) but never assigned: the monitor or the
 * firmware placed them. CPL0 only (port I/O); every access is an exit.
 */
#ifndef RTVMM_GUEST_PCI_H
#define RTVMM_GUEST_PCI_H

#include "rt.h"

#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_REVISION       0x08
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_CAP_PTR        0x34
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_VNDR    0x09

struct pci_addr {
	uint8_t bus, dev, fn;
};

uint32_t pci__read32(struct pci_addr a, uint8_t off);
uint16_t pci__read16(struct pci_addr a, uint8_t off);
uint8_t pci__read8(struct pci_addr a, uint8_t off);
void pci__write32(struct pci_addr a, uint8_t off, uint32_t v);
void pci__write16(struct pci_addr a, uint8_t off, uint16_t v);

/* The `nth` (from 0) function on bus 0 with this vendor and device id; false if there is none. */
bool pci__find(uint16_t vendor, uint16_t device, unsigned nth, struct pci_addr *out);

struct pci_bar_info {
	uint64_t addr, size;   /* size 0: not implemented */
	bool is64, prefetch, io;
};
/*
 * BAR `bar` (0-5): its address and, by the sizing protocol (all-ones, read
 * back, restore; memory decode off meanwhile, then restored), its size.
 * 0, or -1 for a bad index or the upper half of a 64-bit BAR.
 */
int pci__bar(struct pci_addr a, unsigned bar, struct pci_bar_info *out);

/*
 * Walks the capability list: the offset of the next capability with `id`
 * after the one at `prev` (0: from the start of the list), or 0. Offsets
 * below 0x40 end the walk; at most 48 steps, so a looping list ends too.
 */
uint8_t pci__next_cap(struct pci_addr a, uint8_t id, uint8_t prev);

#endif
