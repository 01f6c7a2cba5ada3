/* Host terminal <-> guest UART: stdin feeds the UART, raw mode only when stdin is a TTY. */
#ifndef RTVMM_HW_CONSOLE_H
#define RTVMM_HW_CONSOLE_H

#include "vmm/hw/serial.h"

struct console;

/* Starts the input thread ("console") reading `in_fd` into `s`. Returns 0 or -errno. */
int console__start(struct console **out, int in_fd, struct serial *s);

/* Stops the input thread and restores the terminal mode. */
void console__stop(struct console *c);

#endif
