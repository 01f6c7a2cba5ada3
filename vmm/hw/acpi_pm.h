/*
 * ACPI fixed hardware: PM1a event/control blocks (S5 poweroff) and the FADT
 * reset register, at the ports in vmm/x86/layout.h.
 *
 * - PM1a_EVT (4 bytes): PM1_STS (write 1 to clear) and PM1_EN (read/write).
 *   The one event is the fixed power button: a press sets PWRBTN_STS, and the
 *   SCI (level-triggered, FADT SCI_INT) is asserted while PWRBTN_STS and
 *   PWRBTN_EN are both set, deasserted once the guest clears either.
 * - PM1a_CNT (2 bytes): SCI_EN always reads 1 (ACPI mode, there is no
 *   SMI_CMD); writing SLP_EN with SLP_TYP == ACPI_PM_S5_SLP_TYP requests
 *   VM_STOP_POWEROFF; other sleep types are ignored (SLP_EN self-clears).
 * - RESET (1 byte): writing ACPI_RESET_VALUE requests VM_STOP_REBOOT.
 * Registers are little endian; any 1/2/4-byte access inside a block acts on
 * the bytes it covers (Linux uses 16-bit accesses on PM1).
 */
#ifndef RTVMM_HW_ACPI_PM_H
#define RTVMM_HW_ACPI_PM_H

#include "vmm/bus.h"
#include "vmm/device.h"

/* SLP_TYP of \_S5 in the DSDT: the two must agree. */
#define ACPI_PM_S5_SLP_TYP 5

#define ACPI_PM1_EVT_LEN   4
#define ACPI_PM1_CNT_LEN   2
#define ACPI_RESET_LEN     1

/* PM1 status/enable bit of the fixed power button. */
#define ACPI_PM1_PWRBTN        0x0100

/* PM1 control register bits. */
#define ACPI_PM1_CNT_SCI_EN    0x0001
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP   (7u << ACPI_PM1_CNT_SLP_TYP_SHIFT)
#define ACPI_PM1_CNT_SLP_EN    0x2000

struct acpi_pm;

/* Claims the three blocks on `pio`; `ctl` and `sci` (the SCI line) are copied. Returns 0 or -errno. */
__attribute__((warn_unused_result))
int acpi_pm__add(struct bus *pio, const struct vm_ctl *ctl, const struct irq_sink *sci,
		 struct acpi_pm **out);
void acpi_pm__destroy(struct acpi_pm *pm);

/* Sets PWRBTN_STS (and raises the SCI if the guest enabled the button); from any thread. */
void acpi_pm__press_power_button(struct acpi_pm *pm);


/*
 * How a VM holds the PM1 block (vmm/device.h; the FADT, not the DSDT,
 * describes it): counts presses, saves and loads PM1 status/enable/control.
 */
extern const struct device_ops acpi_pm__device_ops;

#endif
