/*
 * pvpanic: the guest tells the monitor that its kernel panicked. The PCI
 * form of QEMU's device (1b36:0011, Linux's pvpanic-pci driver): one byte at
 * offset 0 of memory BAR 0. A read returns the events the device supports,
 * PVPANIC_PANICKED | PVPANIC_CRASH_LOADED; the guest writes the event that
 * happened. PANICKED stops the VM (VM_STOP_PANIC, exit status
 * PVPANIC_EXIT_STATUS); CRASH_LOADED (the guest boots its crash kernel next)
 * is counted and said once on stderr, and the guest goes on. The BAR's other
 * bytes read 0 and ignore writes.
 */
#ifndef RTVMM_HW_PVPANIC_H
#define RTVMM_HW_PVPANIC_H

#include "vmm/device.h"
#include "vmm/pci/pci.h"

#define PVPANIC_PCI_VENDOR_ID 0x1b36
#define PVPANIC_PCI_DEVICE_ID 0x0011
#define PVPANIC_PCI_CLASS     0x088000  /* system peripheral, other */
#define PVPANIC_BAR_SIZE      16        /* the smallest memory BAR; the register is byte 0 */

#define PVPANIC_PANICKED      0x01
#define PVPANIC_CRASH_LOADED  0x02

/* rtvmm's exit status after a guest kernel panic. */
#define PVPANIC_EXIT_STATUS   3

struct pvpanic;

/* Plugs a pvpanic function into `bus`; `ctl` is copied. Returns 0 or -errno (-ENOSPC: bus full). */
__attribute__((warn_unused_result))
int pvpanic__add(struct pci_bus *bus, const struct vm_ctl *ctl, struct pvpanic **out);
void pvpanic__destroy(struct pvpanic *p);

/*
 * How a VM holds it (vmm/device.h): counters "panicked" and "crash_loaded";
 * a snapshot holds only a version (its config space is the PCI bus's).
 */
extern const struct device_ops pvpanic__device_ops;

#endif
