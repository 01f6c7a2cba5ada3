/* The BIOS-e820 map an rtvmm PC reports. */
#ifndef RTVMM_X86_E820_H
#define RTVMM_X86_E820_H

#include <stdint.h>

#include "vmm/guest_mem.h"

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/*
 * Fills `out` with the map for `mem`: RAM below the EBDA, reserved EBDA and
 * BIOS areas (ACPI tables, MP table), RAM from 1 MiB to the PCI hole, RAM
 * above 4 GiB. Returns the number of entries (at most `max`).
 */
unsigned e820__build(const struct guest_mem *mem, struct e820_entry *out, unsigned max);

#endif
