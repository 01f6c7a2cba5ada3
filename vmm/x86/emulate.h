/*
 * Monitor-side emulation of the few instructions KVM's own emulator rejects
 * (KVM_EXIT_INTERNAL_ERROR, emulation failure). Matters where guest CPL0 is
 * emulated (nested PVM hosts, see docs/nested-kvm.md); never reached on a
 * host where the guest kernel runs natively.
 */
#ifndef RTVMM_X86_EMULATE_H
#define RTVMM_X86_EMULATE_H

#include <linux/kvm.h>
#include <stdint.h>

#define EMULATE_NO_EXCEPTION (-1)

/*
 * Emulates the instruction `insn` (len bytes fetched at regs->rip) on `regs`:
 * int3 (advance, then #BP), clac/stac, fwait, popcnt reg,reg. Sets *vector to
 * an exception to inject after the update, or EMULATE_NO_EXCEPTION. Returns
 * the instruction's name, or NULL (regs untouched) when it is not one of them.
 */
const char *x86_emulate__insn(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector);

#endif
