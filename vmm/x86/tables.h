/* Firmware tables that describe the machine to the guest: MP table and ACPI. */
#ifndef RTVMM_X86_TABLES_H
#define RTVMM_X86_TABLES_H

#include <stdint.h>

#include "vmm/guest_mem.h"

/* Writes the Intel MP floating pointer and config table (CPUs, bus, IOAPIC, IRQ routes) at LAYOUT_MPTABLE. */
int mptable__write(struct guest_mem *mem, unsigned nr_vcpus);

/*
 * Writes RSDP, XSDT, FADT (PM1a event/control ports, SCI, reset register),
 * FACS, DSDT (with \_S5 so poweroff works) and MADT (LAPICs, IOAPIC,
 * ISA overrides) in LAYOUT_ACPI_START..END. Returns the RSDP's gpa, or -errno.
 */
int64_t acpi__write(struct guest_mem *mem, unsigned nr_vcpus);

/* 8-bit checksum byte that makes `len` bytes sum to zero (computed with the byte itself zeroed). */
uint8_t tables__checksum(const void *buf, uint64_t len);

#endif
