/* ACPI fixed hardware: PM1a event/control blocks (S5 poweroff) and the FADT reset register. */
#ifndef RTVMM_HW_ACPI_PM_H
#define RTVMM_HW_ACPI_PM_H

#include "vmm/bus.h"
#include "vmm/device.h"

struct acpi_pm;

__attribute__((warn_unused_result))
int acpi_pm__add(struct bus *pio, const struct vm_ctl *ctl, struct acpi_pm **out);
void acpi_pm__destroy(struct acpi_pm *pm);

#endif
