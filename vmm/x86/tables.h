/* Firmware tables that describe the machine to the guest: MP table and ACPI. */
#ifndef RTVMM_X86_TABLES_H
#define RTVMM_X86_TABLES_H

#include <stdint.h>

#include "base/vm_limits.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"

/*
 * Interrupt wiring both tables describe (and the VM's GSI routing must match):
 * ISA IRQ 0 (PIT) arrives at IOAPIC pin 2 as on PCs and under QEMU, so GSI 0
 * must be routed to IOAPIC pin 2; ISA IRQ 2 is the cascade and is not listed;
 * every other ISA IRQ n is pin n, edge, active high. The SCI (ACPI_SCI_IRQ) is
 * level-triggered, active high: the ACPI PM device asserts it by raising the line.
 */
#define TABLES_IRQ0_IOAPIC_PIN 2

/*
 * Writes the Intel MP 1.4 floating pointer and config table (CPUs, buses,
 * IOAPIC, ISA IRQ routes, LINT0 ExtINT / LINT1 NMI) at LAYOUT_MPTABLE.
 * Returns 0, -EINVAL for 0 vCPUs, -E2BIG for more than VM_MAX_VCPUS or
 * if the table would pass LAYOUT_BIOS_END, -EFAULT if that area is not RAM.
 */
int mptable__write(struct guest_mem *mem, unsigned nr_vcpus);

/*
 * Writes RSDP, XSDT, FADT (PM1a event/control ports, SCI, reset register),
 * FACS, DSDT (with \_S5 so poweroff works, the `nr_isa` legacy devices in
 * `isa` and the PCI host bridge) and MADT (LAPICs, IOAPIC, ISA overrides) in
 * LAYOUT_ACPI_START..END. Returns the RSDP's gpa, or -EINVAL / -E2BIG /
 * -EFAULT as mptable__write.
 */
int64_t acpi__write(struct guest_mem *mem, unsigned nr_vcpus, const struct device_acpi *isa,
		    unsigned nr_isa);

/* 8-bit checksum byte that makes `len` bytes sum to zero (computed with the byte itself zeroed). */
uint8_t tables__checksum(const void *buf, uint64_t len);

#endif
