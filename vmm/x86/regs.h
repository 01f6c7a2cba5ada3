/* Boot-time CPU state: GDT, identity page tables, long-mode segment and control registers. */
#ifndef RTVMM_X86_REGS_H
#define RTVMM_X86_REGS_H

#include <linux/kvm.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

/* Writes the boot GDT and identity-mapped page tables (0..4 GiB, 2 MiB pages) to guest RAM. */
int x86_regs__write_tables(struct guest_mem *mem);

/* Sets 64-bit long mode: CR0/CR3/CR4/EFER, CS=0x10 (64-bit code), data segments 0x18, GDT/IDT. */
void x86_regs__long_mode_sregs(struct kvm_sregs *sregs);

/* Sets RIP=entry, RSI=zero_page, RSP, RFLAGS=0x2 (interrupts off), per the 64-bit boot protocol. */
void x86_regs__boot_regs(struct kvm_regs *regs, uint64_t entry, uint64_t zero_page);

#endif
