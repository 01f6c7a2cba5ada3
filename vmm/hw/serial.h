/* 16550A-compatible UART (8250 family) with FIFOs and interrupts. */
#ifndef RTVMM_HW_SERIAL_H
#define RTVMM_HW_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/device.h"

struct serial;

/*
 * Creates a UART on `pio` at `base` (8 ports) raising `irq`; transmitted
 * bytes are written to `out_fd`. Returns 0 or -errno.
 */
__attribute__((warn_unused_result))
int serial__add(struct bus *pio, uint16_t base, const struct irq_sink *irq, int out_fd,
		struct serial **out);
void serial__destroy(struct serial *s);

/* Queues bytes from the host side into the receive FIFO (raises RX interrupt); returns bytes taken. */
size_t serial__receive(struct serial *s, const uint8_t *buf, size_t len);

/* Free space in the receive FIFO. */
size_t serial__rx_room(struct serial *s);

#endif
