/* The BIOS-e820 map: what an rtvmm PC tells its guest about physical memory. */
#include "vmm/x86/e820.h"

#include "vmm/x86/layout.h"

/* End of conventional memory: the EBDA runs up to here, VGA/ROM space follows. */
#define E820_LOW_END 0xA0000ULL

static unsigned e820_add(struct e820_entry *out, unsigned n, unsigned max,
			 uint64_t addr, uint64_t size, uint32_t type)
{
	if (!size || n >= max)
		return n;
	out[n] = (struct e820_entry){ .addr = addr, .size = size, .type = type };
	return n + 1;
}

/*
 * The region at gpa 0 is split like a PC's: conventional RAM up to the EBDA,
 * the EBDA, the BIOS area holding our ACPI and MP tables, then RAM from 1 MiB.
 * The reserved entries are reported even when RAM is too small to back them:
 * they describe address space, and the caller rejects such guests anyway.
 */
static unsigned e820_add_low(struct e820_entry *out, unsigned n, unsigned max, uint64_t low)
{
	n = e820_add(out, n, max, 0, low < LAYOUT_EBDA ? low : LAYOUT_EBDA, E820_RAM);
	n = e820_add(out, n, max, LAYOUT_EBDA, E820_LOW_END - LAYOUT_EBDA, E820_RESERVED);
	n = e820_add(out, n, max, LAYOUT_ACPI_START, LAYOUT_BIOS_END - LAYOUT_ACPI_START,
		     E820_RESERVED);
	if (low > LAYOUT_BIOS_END)
		n = e820_add(out, n, max, LAYOUT_BIOS_END, low - LAYOUT_BIOS_END, E820_RAM);
	return n;
}

unsigned e820__build(const struct guest_mem *mem, struct e820_entry *out, unsigned max)
{
	unsigned n = 0;
	unsigned i;

	for (i = 0; i < mem->nr_regions && i < GUEST_MEM_MAX_REGIONS; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (r->gpa == 0)
			n = e820_add_low(out, n, max, r->size);
		else
			n = e820_add(out, n, max, r->gpa, r->size, E820_RAM);
	}
	return n;
}
