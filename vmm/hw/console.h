/*
 * Host terminal -> guest UART: a thread named "console" reads `in_fd` and
 * feeds the UART, never dropping input (it waits on the UART's room event
 * when the receive FIFO is full and stops reading meanwhile).
 *
 * When `in_fd` is a terminal it is put in raw mode (no echo, no line editing,
 * no signals: Ctrl-C goes to the guest; output post-processing kept, as QEMU's
 * -serial stdio does) and QEMU's escape works: Ctrl-A x asks the VM to stop
 * (VM_STOP_SIGNAL) and ends input, Ctrl-A a or Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A h prints
 * help on stderr; other Ctrl-A sequences are swallowed. The terminal mode is
 * restored by console__stop and, should the process exit without it, by an
 * atexit handler. Otherwise (pipe, file, /dev/null) bytes are forwarded as is.
 * EOF or a hangup on `in_fd` ends the thread quietly; the guest keeps running.
 */
#ifndef RTVMM_HW_CONSOLE_H
#define RTVMM_HW_CONSOLE_H

#include "vmm/device.h"
#include "vmm/hw/serial.h"

struct console;

/*
 * Starts the input thread reading `in_fd` into `s`. `ctl` (copied; may be
 * NULL) receives Ctrl-A x. Returns 0 or -errno (-EBUSY if another console
 * already holds a terminal in raw mode).
 */
__attribute__((warn_unused_result))
int console__start(struct console **out, int in_fd, struct serial *s, const struct vm_ctl *ctl);

/* Stops the input thread promptly (even if blocked), joins it, restores the terminal. NULL is a no-op. */
void console__stop(struct console *c);


/* How a VM holds the console reader (vmm/device.h): added after its UART, so stopped first. */
extern const struct device_ops console__device_ops;

#endif
