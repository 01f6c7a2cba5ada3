/*
 * The guest UART's host side, a thread named "console". Input: it reads
 * `in_fd` and feeds the UART, never dropping input (it waits on the UART's
 * room event when the receive FIFO is full and stops reading meanwhile).
 * Output: it drains the UART's output buffer to the UART's out_fd, waiting for
 * POLLOUT when the reader is slow (the vCPU never waits: a full buffer drops,
 * see serial.h). At stop, buffered output gets CONSOLE_FLUSH_MS (1 s) to
 * reach the reader; what is left is counted as tx_overflow.
 *
 * When `in_fd` is a terminal it is put in raw mode (no echo, no line editing,
 * no signals: Ctrl-C goes to the guest; output post-processing kept, as QEMU's
 * -serial stdio does) and QEMU's escape works: Ctrl-A x asks the VM to stop
 * (VM_STOP_SIGNAL) and ends input, Ctrl-A a or Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A h prints
 * help on stderr; other Ctrl-A sequences are swallowed. The terminal mode is
 * restored by console__stop and, should the process exit without it, by an
 * atexit handler. Otherwise (pipe, file, /dev/null) bytes are forwarded as is.
 * EOF or a hangup on `in_fd` ends input quietly; the guest keeps running.
 */
#ifndef RTVMM_HW_CONSOLE_H
#define RTVMM_HW_CONSOLE_H

#include "vmm/device.h"
#include "vmm/hw/serial.h"

struct console;

/*
 * Starts the thread reading `in_fd` (-1: none) into `s` and draining `s`'s
 * output. `ctl` (copied; may be NULL) receives Ctrl-A x. Returns 0 or -errno
 * (-EBUSY if another console already holds a terminal in raw mode).
 */
__attribute__((warn_unused_result))
int console__start(struct console **out, int in_fd, struct serial *s, const struct vm_ctl *ctl);

/*
 * Stops the thread: input at once, output after the bounded flush (a write
 * that still hangs is interrupted by a signal and abandoned), joins it,
 * restores the terminal. At most about 1.5 s. Idempotent; NULL is a no-op.
 */
void console__stop(struct console *c);

/* Stops the console if needed and frees it. */
void console__destroy(struct console *c);


/* How a VM holds the console (vmm/device.h): added after its UART; stopped (flushed) before the stop report. */
extern const struct device_ops console__device_ops;

#endif
