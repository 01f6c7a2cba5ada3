/*
 * rtvmm test device, used by the bare-metal guest to prove exits and report
 * results. Port I/O at PORT_TESTDEV, MMIO at LAYOUT_TESTDEV_MMIO.
 */
#ifndef RTVMM_HW_TESTDEV_H
#define RTVMM_HW_TESTDEV_H

#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/device.h"
#include "vmm/hw/serial.h"

/*
 * Register map, shared with the guest (bench/guest). Offsets from PORT_TESTDEV.
 * PIO registers are 32 bits wide. A read inside one register returns the bytes
 * it covers; a write must start at the register (narrower ones zero-extend).
 * Anything else (write-only or unknown register, straddling access) reads 0xff
 * and drops writes.
 */
#define TESTDEV_PIO_EXIT    0x0  /* write32: stop the VM, monitor exits with this status */
#define TESTDEV_PIO_ECHO    0x4  /* write32 then read32: returns the value written, bit-inverted */
#define TESTDEV_PIO_PUTC    0x8  /* write8: character to the console's output (COM1's, never blocks) */
#define TESTDEV_PIO_MAGIC   0xC  /* read32: TESTDEV_MAGIC */
#define TESTDEV_PIO_SIZE    0x10
#define TESTDEV_MAGIC       0x52545654u /* "RTVT" */

/*
 * Offsets from LAYOUT_TESTDEV_MMIO. MMIO registers are 64 bits wide; any
 * access inside one register acts on the bytes it covers (so 32-bit halves
 * work). Unknown offsets read 0xff and drop writes; every write to the window
 * is counted.
 */
#define TESTDEV_MMIO_MAGIC   0x00 /* read32: TESTDEV_MAGIC */
#define TESTDEV_MMIO_SCRATCH 0x08 /* read/write64: scratch register */
#define TESTDEV_MMIO_COUNT   0x10 /* read64: number of MMIO writes seen */

struct testdev;

/*
 * Claims PORT_TESTDEV on `pio` and LAYOUT_TESTDEV_MMIO on `mmio`. `ctl` is
 * copied; PUTC characters go to the output of UART `out` (NULL: dropped), in
 * order with what the guest writes to that UART, through its bounded buffer.
 * An EXIT write requests VM_STOP_GUEST_EXIT with the value as status.
 * Returns 0 or -errno.
 */
__attribute__((warn_unused_result))
int testdev__add(struct bus *pio, struct bus *mmio, const struct vm_ctl *ctl, struct serial *out,
		 struct testdev **out_dev);
void testdev__destroy(struct testdev *t);


/* How a VM holds the test device (vmm/device.h): reset, destroy, a snapshot of its registers. */
extern const struct device_ops testdev__device_ops;

#endif
