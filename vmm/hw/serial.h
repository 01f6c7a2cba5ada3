/*
 * 16550A-compatible UART (8250 family) with FIFOs and interrupts.
 *
 * Register layout and bit names are Linux's <linux/serial_reg.h>. Model:
 * - The transmitter is instantaneous: a THR write lands in an output buffer
 *   (SERIAL_TX_BUF bytes) that one drainer thread (the console) writes to
 *   out_fd, so LSR.THRE|TEMT always read 1, the THRE interrupt re-arms right
 *   away and the vCPU never waits for the host's reader. A full buffer drops
 *   the byte and counts it (tx_overflow).
 * - The receive FIFO holds SERIAL_RX_FIFO bytes when FCR.FIFO is enabled (the
 *   guest still sees a 16550A) and 1 byte (the 16450 holding register) when it
 *   is not. Data in the FIFO below the trigger level reports the character
 *   timeout reason at once (the host line is idle between receive calls).
 * - The interrupt line is driven level-style through the irq_sink: 1 while an
 *   enabled reason is pending and MCR.OUT2 is set (OUT2 gates IRQ on a PC),
 *   0 otherwise; loopback mode forces OUT2's pin inactive, so no IRQ. A THR
 *   write drops the line before re-raising it (a new edge per THRE event).
 * - The UART is 8 bits wide: a wider access acts on the register at its
 *   first port; extra read bytes are 0xff and extra write bytes ignored.
 */
#ifndef RTVMM_HW_SERIAL_H
#define RTVMM_HW_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/device.h"

#define SERIAL_NR_PORTS 8
#define SERIAL_RX_FIFO  256
/*
 * Output buffer: 64 KiB holds a whole Linux boot log burst (typically 30-60 KiB
 * at console=ttyS0) and matches a pipe's default capacity, so a reader that
 * pauses briefly (terminal scrolling, a busy log collector) loses nothing,
 * while one that stops for good costs 64 KiB, not a frozen vCPU.
 */
#define SERIAL_TX_BUF   (64 * 1024)

struct serial;

/* Counters: the device never logs. */
struct serial_stats {
	uint64_t tx_bytes;    /* bytes written to out_fd (socket console: taken into its history) */
	uint64_t tx_dropped;  /* bytes lost because out_fd failed or is -1 */
	uint64_t tx_overflow; /* bytes lost to a reader too slow: buffer full, or abandoned at stop */
	uint64_t rx_bytes;    /* bytes taken by serial__receive */
	uint64_t rx_overruns; /* characters lost to a full receiver (LSR.OE) */
};

/*
 * Creates a UART on `pio` at `base` (SERIAL_NR_PORTS ports) raising `irq`
 * (NULL: no line); transmitted bytes are written to `out_fd` (-1: dropped) by
 * the console, or, when `out_fd` is a console socket's listening fd, handed to
 * its client (vmm/hw/console.h).
 * Returns 0 or -errno (-EEXIST if the ports are taken).
 */
__attribute__((warn_unused_result))
int serial__add(struct bus *pio, uint16_t base, const struct irq_sink *irq, int out_fd,
		struct serial **out);

/* Frees the UART. Call once the bus no longer dispatches to it and its console is stopped. */
void serial__destroy(struct serial *s);

/*
 * Queues bytes from the host side into the receive FIFO (raises the RX
 * interrupt). Takes at most serial__rx_room() bytes, never overruns, and
 * returns the number taken. When it takes fewer than `len`, the room event
 * (serial__rx_room_fd) fires once the guest has drained the FIFO to half.
 */
size_t serial__receive(struct serial *s, const uint8_t *buf, size_t len);

/* Free space in the receive FIFO (0 in loopback mode: the line is disconnected). */
size_t serial__rx_room(struct serial *s);

/*
 * Non-blocking eventfd that becomes readable when receive room appears after a
 * short serial__receive (the guest read RBR, reset the FIFO or left loopback).
 * Owned by the UART; the reader drains it with read(2) and retries.
 */
int serial__rx_room_fd(const struct serial *s);

/* The counters; safe from any thread while the UART runs (no lock). */
void serial__get_stats(struct serial *s, struct serial_stats *st);

/* Queues `c` for out_fd as if the guest had transmitted it (another device sharing the console). */
void serial__put(struct serial *s, uint8_t c);

/* The fd transmitted bytes go to (-1: none, nothing to drain). */
int serial__out_fd(const struct serial *s);

/*
 * The output buffer's drainer side, for ONE thread. serial__tx_fd is a
 * non-blocking eventfd that becomes readable when output arrives after the
 * drainer went idle (serial__tx_rearm: true when the buffer was empty, and
 * then the next byte writes the eventfd; once per busy period, not per byte).
 * serial__tx_peek points `data` at the oldest buffered bytes and returns how
 * many are contiguous (0: empty); they stay put until serial__tx_consume
 * removes `n` of them, counted by `fate`, so the drainer writes them without
 * holding the UART's lock. serial__tx_abandon counts all that is left as
 * tx_overflow and empties the buffer (a reader that never read at stop).
 */
enum serial_tx_fate { SERIAL_TX_WRITTEN, SERIAL_TX_FAILED, SERIAL_TX_ABANDONED };
int serial__tx_fd(const struct serial *s);
size_t serial__tx_peek(struct serial *s, const uint8_t **data);
bool serial__tx_rearm(struct serial *s);
void serial__tx_consume(struct serial *s, size_t n, enum serial_tx_fate fate);
void serial__tx_abandon(struct serial *s);


/*
 * How a VM holds a UART (vmm/device.h): destroy, tx/rx counters (stop report
 * and live), its DSDT entry, and a snapshot of its registers and receive FIFO
 * (not the output still waiting for the console: that is the host's).
 */
extern const struct device_ops serial__device_ops;

#endif
