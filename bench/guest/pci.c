/* PCI configuration mechanism #1 on bus 0: enumeration, BARs, capabilities (pci.h). */
#include "pci.h"

#define CFG_ENABLE 0x80000000u

static void select(struct pci_addr a, uint8_t off)
{
	outl(PORT_PCI_CONFIG_ADDRESS, CFG_ENABLE | (uint32_t)a.bus << 16 | (uint32_t)(a.dev & 31) << 11 |
				      (uint32_t)(a.fn & 7) << 8 | (off & 0xfc));
}

uint32_t pci__read32(struct pci_addr a, uint8_t off)
{
	select(a, off);
	return inl(PORT_PCI_CONFIG_DATA);
}

uint16_t pci__read16(struct pci_addr a, uint8_t off)
{
	select(a, off);
	return inw((uint16_t)(PORT_PCI_CONFIG_DATA + (off & 2)));
}

uint8_t pci__read8(struct pci_addr a, uint8_t off)
{
	select(a, off);
	return inb((uint16_t)(PORT_PCI_CONFIG_DATA + (off & 3)));
}

void pci__write32(struct pci_addr a, uint8_t off, uint32_t v)
{
	select(a, off);
	outl(PORT_PCI_CONFIG_DATA, v);
}

void pci__write16(struct pci_addr a, uint8_t off, uint16_t v)
{
	select(a, off);
	outw((uint16_t)(PORT_PCI_CONFIG_DATA + (off & 2)), v);
}

bool pci__find(uint16_t vendor, uint16_t device, unsigned nth, struct pci_addr *out)
{
	for (uint8_t dev = 0; dev < 32; dev++) {
		for (uint8_t fn = 0; fn < 8; fn++) {
			struct pci_addr a = { 0, dev, fn };
			uint32_t id = pci__read32(a, PCI_VENDOR_ID);

			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;   /* no device in this slot */
				continue;
			}
			if ((id & 0xffff) == vendor && id >> 16 == device && nth-- == 0) {
				*out = a;
				return true;
			}
			if (fn == 0 && !(pci__read8(a, PCI_HEADER_TYPE) & 0x80))
				break;   /* single-function device */
		}
	}
	return false;
}

int pci__bar(struct pci_addr a, unsigned bar, struct pci_bar_info *out)
{
	uint8_t off = (uint8_t)(PCI_BAR0 + 4 * bar);

	*out = (struct pci_bar_info){ 0 };
	if (bar > 5)
		return -1;
	uint32_t lo = pci__read32(a, off);
	if (lo & 1) {   /* I/O BAR: reported, not sized (nothing here uses one) */
		out->io = true;
		out->addr = lo & ~3u;
		return 0;
	}
	out->is64 = ((lo >> 1) & 3) == 2;
	out->prefetch = lo & 8;
	if (out->is64 && bar == 5)
		return -1;
	uint32_t hi = out->is64 ? pci__read32(a, (uint8_t)(off + 4)) : 0;
	out->addr = ((uint64_t)hi << 32) | (lo & ~0xfu);

	/* Sizing: decode off so the all-ones address never decodes, then restore both. */
	uint16_t cmd = pci__read16(a, PCI_COMMAND);
	pci__write16(a, PCI_COMMAND, cmd & (uint16_t)~PCI_COMMAND_MEMORY);
	pci__write32(a, off, 0xffffffffu);
	uint64_t mask = pci__read32(a, off) & ~0xfull;
	pci__write32(a, off, lo);
	if (out->is64) {
		pci__write32(a, (uint8_t)(off + 4), 0xffffffffu);
		mask |= (uint64_t)pci__read32(a, (uint8_t)(off + 4)) << 32;
		pci__write32(a, (uint8_t)(off + 4), hi);
	} else if (mask) {
		mask |= 0xffffffff00000000ull;
	}
	pci__write16(a, PCI_COMMAND, cmd);
	out->size = mask ? ~mask + 1 : 0;   /* no writable address bits: not implemented */
	return 0;
}

uint8_t pci__next_cap(struct pci_addr a, uint8_t id, uint8_t prev)
{
	if (!(pci__read16(a, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	uint8_t off = prev ? pci__read8(a, (uint8_t)(prev + 1)) : pci__read8(a, PCI_CAP_PTR);
	for (unsigned steps = 0; steps < 48; steps++) {
		off &= 0xfc;
		if (off < 0x40)
			return 0;
		if (pci__read8(a, off) == id)
			return off;
		off = pci__read8(a, (uint8_t)(off + 1));
	}
	return 0;
}
