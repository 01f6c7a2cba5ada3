/* i8042 keyboard controller, enough for the guest's reset via command 0xFE. */
#ifndef RTVMM_HW_I8042_H
#define RTVMM_HW_I8042_H

#include "vmm/bus.h"
#include "vmm/device.h"

struct i8042;

__attribute__((warn_unused_result))
int i8042__add(struct bus *pio, const struct vm_ctl *ctl, struct i8042 **out);
void i8042__destroy(struct i8042 *k);

#endif
