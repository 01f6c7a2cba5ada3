/* vCPU exit dispatch: one handler per KVM exit reason, separate from KVM_RUN so it can be unit-tested. */
#ifndef RTVMM_EXIT_H
#define RTVMM_EXIT_H

#include <linux/kvm.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/device.h"

/* What the vCPU loop does after an exit. */
enum exit_action {
	EXIT_CONTINUE = 0,   /* re-enter the guest */
	EXIT_STOP,           /* stop the VM with `stop` */
};

/* Where exits are routed, and per-vCPU exit counters (exposed, never logged). */
struct exit_ctx {
	struct bus *pio;
	struct bus *mmio;
	uint64_t count[64];  /* by exit reason, reasons >= 63 counted in [63] */
	/*
	 * Fallback for instructions KVM's emulator rejects (emulation failure
	 * with instruction bytes): returns 0 when it emulated the instruction.
	 * NULL disables it.
	 */
	int (*emulate)(void *opaque, const uint8_t *insn, unsigned len);
	void *emulate_opaque;
	uint64_t emulated;   /* instructions the fallback emulated */
	/* KVM_EXIT_DIRTY_RING_FULL: harvests this vCPU's dirty ring; 0 or -errno. NULL: no ring. */
	int (*ring_full)(void *opaque);
	void *ring_opaque;
};

/* Outcome of a stopping exit: why, with what status, and a one-line description. */
struct exit_stop {
	enum vm_stop_reason reason;
	int status;
	int dump_regs;       /* the vCPU's registers explain it (guest fault, unknown exit) */
	char why[256];
};

/* Handles the exit described by `run`; fills `stop` when the answer is EXIT_STOP. */
enum exit_action exit__handle(struct exit_ctx *ctx, struct kvm_run *run, struct exit_stop *stop);

/* Name of a KVM exit reason ("KVM_EXIT_IO"), or "unknown". */
const char *exit__name(uint32_t reason);

#endif
