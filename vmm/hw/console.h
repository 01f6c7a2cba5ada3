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
 *
 * Socket mode (console__start_socket; cloud-hypervisor's --serial socket=):
 * the thread serves a listening unix socket, one client at a time. Output
 * goes first into a history ring of CONSOLE_HISTORY bytes (the UART's buffer
 * is emptied at once, whoever reads), then to the client without waiting: a
 * client that reads slower than the guest writes, or not at all, loses the
 * oldest bytes it had not got (counted), never the guest's time. Output made
 * while nobody is attached stays in the ring: a client that attaches gets
 * what nobody has seen yet, at most the last CONSOLE_HISTORY bytes (the
 * recent boot log). A second client replaces the first, which is told so in
 * one line and disconnected (as cloud-hypervisor does). Client bytes go to
 * the UART as they are (no escape: the client detaches itself). At stop the
 * client gets CONSOLE_FLUSH_MS to take what is left; the socket is unlinked.
 */
#ifndef RTVMM_HW_CONSOLE_H
#define RTVMM_HW_CONSOLE_H

#include <stdint.h>

#include "base/err.h"
#include "vmm/device.h"
#include "vmm/hw/serial.h"

/* Socket mode: the output kept for a client that attaches later (a Linux boot log fits). */
#define CONSOLE_HISTORY (64 * 1024)

struct console;

/* Socket mode's counters: the console never logs. */
struct console_stats {
	uint64_t clients;          /* connections accepted */
	uint64_t replaced;         /* clients disconnected by a newer one */
	uint64_t sent_bytes;       /* output written to clients */
	uint64_t lost_slow_client; /* output an attached client fell too far behind to get */
	uint64_t lost_unattached;  /* output pushed out of the history while nobody was attached */
};

/*
 * Starts the thread reading `in_fd` (-1: none) into `s` and draining `s`'s
 * output. `ctl` (copied; may be NULL) receives Ctrl-A x. Returns 0 or -errno
 * (-EBUSY if another console already holds a terminal in raw mode).
 */
__attribute__((warn_unused_result))
int console__start(struct console **out, int in_fd, struct serial *s, const struct vm_ctl *ctl);

/*
 * A listening unix socket at `path` for console__start_socket: mode 0600 (the
 * caller's uid), a stale socket nobody listens on replaced; -EADDRINUSE when a
 * process listens there, -EEXIST when the path is something else. Returns the
 * fd or -errno with `e` set.
 */
int console__listen(const char *path, struct err *e);

/*
 * Starts the thread serving `listen_fd` (from console__listen at `path`) for
 * `s`, whose out_fd must not be -1 (else its output is dropped before the
 * console sees it). The console then owns `listen_fd` and unlinks `path` at
 * stop; on failure (-errno) the caller still owns both.
 */
__attribute__((warn_unused_result))
int console__start_socket(struct console **out, int listen_fd, const char *path, struct serial *s);

/* Socket mode's counters, from any thread (relaxed loads). */
void console__get_stats(const struct console *c, struct console_stats *st);

/*
 * Stops the thread: input at once, output after the bounded flush (a write
 * that still hangs is interrupted by a signal and abandoned), joins it,
 * restores the terminal. At most about 1.5 s. Idempotent; NULL is a no-op.
 */
void console__stop(struct console *c);

/* Stops the console if needed and frees it. */
void console__destroy(struct console *c);


/*
 * How a VM holds the console (vmm/device.h): added after its UART; stopped
 * (flushed) before the stop report; an empty snapshot (the host side holds no guest state).
 */
extern const struct device_ops console__device_ops;
/* The same for socket mode, with its counters in the stop report and in vm.counters (live). */
extern const struct device_ops console__socket_device_ops;

#endif
