/* Guest-physical memory map of an rtvmm PC: where the monitor puts boot structures. */
#ifndef RTVMM_X86_LAYOUT_H
#define RTVMM_X86_LAYOUT_H

#define LAYOUT_GDT            0x0500ULL   /* boot GDT: null, null, code64 (0x10), data (0x18) */
#define LAYOUT_IDT            0x0520ULL   /* empty IDT (limit 0) until the guest loads its own */
#define LAYOUT_BOOT_STACK     0x8000ULL   /* initial RSP for the BSP (grows down) */
#define LAYOUT_ZERO_PAGE      0x7000ULL   /* struct boot_params */
#define LAYOUT_PML4           0x9000ULL   /* identity page tables: PML4 */
#define LAYOUT_PDPT           0xA000ULL   /* one PDPT */
#define LAYOUT_PD             0xB000ULL   /* 4 PDs of 2 MiB pages: identity map of 0..4 GiB */
#define LAYOUT_PD_COUNT       4
#define LAYOUT_CMDLINE        0x20000ULL  /* kernel command line */
#define LAYOUT_CMDLINE_MAX    0x10000ULL
#define LAYOUT_EBDA           0x9FC00ULL  /* start of the reserved EBDA: RAM below 640K ends here */
#define LAYOUT_ACPI_START     0xE0000ULL  /* RSDP and ACPI tables (RSDP is searched in E0000-FFFFF) */
#define LAYOUT_ACPI_END       0xF0000ULL
#define LAYOUT_MPTABLE        0xF0000ULL  /* MP floating pointer + config table */
#define LAYOUT_BIOS_END       0x100000ULL
#define LAYOUT_KERNEL         0x100000ULL /* bzImage protected-mode code */

/* Devices at fixed places, as on a PC. */
#define LAYOUT_IOAPIC         0xFEC00000ULL
#define LAYOUT_LAPIC          0xFEE00000ULL
#define LAYOUT_TESTDEV_MMIO   0xD0000000ULL /* rtvmm test device (bare-metal guest), 4 KiB */
#define LAYOUT_TESTDEV_MMIO_SIZE 0x1000ULL

/*
 * PCI (vmm/pci): memory BARs are assigned from this window of the PCI hole,
 * which the DSDT's host bridge _CRS describes. It starts above the test
 * device and ends below the IOAPIC. No ECAM: configuration space is reached
 * through ports 0xCF8/0xCFC only (room for a 256 MiB ECAM is left at
 * 0xC0000000-0xCFFFFFFF should one be added).
 */
#define LAYOUT_PCI_MMIO_BASE  0xE0000000ULL
#define LAYOUT_PCI_MMIO_SIZE  (LAYOUT_IOAPIC - LAYOUT_PCI_MMIO_BASE)

/* Port I/O. */
#define PORT_COM1             0x3F8
#define PORT_COM1_IRQ         4
#define PORT_I8042_DATA       0x60
#define PORT_I8042_CMD        0x64
#define PORT_ACPI_PM1A_EVT    0x600       /* PM1a event block, 4 bytes */
#define PORT_ACPI_PM1A_CNT    0x604       /* PM1a control block, 2 bytes */
#define PORT_ACPI_RESET       0x608       /* FADT RESET_REG, 1 byte, value ACPI_RESET_VALUE */
#define ACPI_RESET_VALUE      0x01
#define ACPI_SCI_IRQ          9
#define PORT_TESTDEV          0x510       /* rtvmm test device (bare-metal guest), 16 ports */
#define PORT_PCI_CONFIG_ADDRESS 0xCF8     /* PCI configuration mechanism #1: address, 32-bit */
#define PORT_PCI_CONFIG_DATA  0xCFC       /* ... and data, 0xCFC-0xCFF */

#endif
