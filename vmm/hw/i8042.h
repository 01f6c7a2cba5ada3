/*
 * i8042 PS/2 controller at ports 0x60 (data) and 0x64 (status/command), with
 * no keyboard or mouse attached. Enough for a guest's reset (command 0xFE, or
 * any pulse of output-port bit 0, or 0xD1 clearing it -> VM_STOP_REBOOT) and
 * for Linux's i8042 probe to finish at once: self-test 0xAA -> 0x55, command
 * byte 0x20/0x60, interface tests 0xA9/0xAB -> 0x00, port enable/disable
 * 0xA7/0xA8/0xAD/0xAE, output port 0xD0/0xD1, buffer loopback 0xD2/0xD3.
 * A byte sent to a device (a plain write to 0x60, or 0xD4 then a byte) gets
 * the controller's "no device" answer: 0xFE with the status timeout bit, so
 * atkbd/psmouse give up without waiting.
 *
 * The one-byte output buffer raises IRQ1 (keyboard byte, command byte bit 0)
 * or IRQ12 (aux byte, bit 1) level-style while it is full, once lines are
 * connected with i8042__set_irqs. Without them Linux's AUX IRQ test times out
 * (250 ms) and it drops the aux port; everything else works the same.
 */
#ifndef RTVMM_HW_I8042_H
#define RTVMM_HW_I8042_H

#include "vmm/bus.h"
#include "vmm/device.h"

#define I8042_KBD_IRQ 1
#define I8042_AUX_IRQ 12

struct i8042;

/* Claims PORT_I8042_DATA and PORT_I8042_CMD on `pio`; `ctl` is copied. Returns 0 or -errno. */
__attribute__((warn_unused_result))
int i8042__add(struct bus *pio, const struct vm_ctl *ctl, struct i8042 **out);

/* Optional: connects the keyboard (IRQ1) and aux (IRQ12) lines (copied; NULL: none). Before vCPUs run. */
void i8042__set_irqs(struct i8042 *k, const struct irq_sink *kbd_irq, const struct irq_sink *aux_irq);

void i8042__destroy(struct i8042 *k);


/* How a VM holds the i8042 (vmm/device.h): destroy, its DSDT entry, a snapshot of its registers. */
extern const struct device_ops i8042__device_ops;

#endif
