/* `rtvmm ctl SOCKET console`: a terminal attached to a VM's serial console socket. */
#ifndef RTVMM_APP_CONSOLE_ATTACH_H
#define RTVMM_APP_CONSOLE_ATTACH_H

#include "base/err.h"

/*
 * Connects to the serial console socket `socket_path` (rtvmm run --serial
 * socket=PATH) and relays this terminal to it (raw mode when stdin is a tty)
 * until the VM closes it or the user types Ctrl-] ; returns 0, or -errno with `e`.
 */
int console_attach__run(const char *socket_path, struct err *e);

#endif
