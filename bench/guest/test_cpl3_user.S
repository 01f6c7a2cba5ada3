/*
 * test=cpl3: the code it runs at CPL3 (user region, .user.text). Entered by
 * user__call with RDI = arg0, RSI = arg1; each routine ends with UEXIT
 * (jmp user_exit): user__call returns RAX. Labels *_insn / *_next mark the instruction that traps and where the
 * kernel's handler resumes (test_cpl3.c).
 */
#include "rt.h"

#define UEXIT	jmp user_exit
#define TSC(r)	rdtsc; shlq $32, %rdx; orq %rdx, %rax; movq %rax, r

	.section .user.text, "ax"
	.code64

/* What CPL3 code sees of itself: CS, SS, DS, RFLAGS, RSP (native instructions here). */
	.globl u_hello
u_hello:
	movq	%cs, %rax
	movq	%rax, uinfo+0(%rip)
	movq	%ss, %rax
	movq	%rax, uinfo+8(%rip)
	movq	%ds, %rax
	movq	%rax, uinfo+16(%rip)
	pushfq
	popq	%rax
	movq	%rax, uinfo+24(%rip)
	movq	%rsp, uinfo+32(%rip)
	movl	$0xC0DE, %eax
	UEXIT

/* RDI round trips through the DPL3 gate VEC_INT80. */
	.globl u_int80_loop, u_int80_insn
u_int80_loop:
u_int80_insn:
1:	int	$VEC_INT80
	decq	%rdi
	jnz	1b
	xorl	%eax, %eax
	UEXIT

/* RDI x ud2 (#UD); the handler resumes at u_ud_next. */
	.globl u_ud_loop, u_ud_insn, u_ud_next
u_ud_loop:
u_ud_insn:
	ud2
u_ud_next:
	decq	%rdi
	jnz	u_ud_loop
	xorl	%eax, %eax
	UEXIT

/* RDI x load from RSI (a supervisor page: #PF). */
	.globl u_pf_loop, u_pf_insn, u_pf_next
u_pf_loop:
u_pf_insn:
	movq	(%rsi), %rax
u_pf_next:
	decq	%rdi
	jnz	u_pf_loop
	xorl	%eax, %eax
	UEXIT

/* RDI x mov %cr3 (privileged: #GP(0)). */
	.globl u_gp_loop, u_gp_insn, u_gp_next
u_gp_loop:
u_gp_insn:
	movq	%cr3, %rax
u_gp_next:
	decq	%rdi
	jnz	u_gp_loop
	xorl	%eax, %eax
	UEXIT

/* RDI x divide by zero (#DE). */
	.globl u_de_loop, u_de_insn, u_de_next
u_de_loop:
	xorl	%ecx, %ecx
1:	movl	$1, %eax
	xorl	%edx, %edx
u_de_insn:
	divq	%rcx
u_de_next:
	decq	%rdi
	jnz	1b
	xorl	%eax, %eax
	UEXIT

/* RDI x int3 (#BP through a DPL3 gate: a trap, the frame's RIP is u_bp_next). */
	.globl u_bp_loop, u_bp_next
u_bp_loop:
	int3
u_bp_next:
	decq	%rdi
	jnz	u_bp_loop
	xorl	%eax, %eax
	UEXIT

/* RDI x int $0x82 through a DPL0 gate: #GP(0x82 * 8 + 2). */
	.globl u_intdpl0_loop, u_intdpl0_insn, u_intdpl0_next
u_intdpl0_loop:
u_intdpl0_insn:
	int	$0x82
u_intdpl0_next:
	decq	%rdi
	jnz	u_intdpl0_loop
	xorl	%eax, %eax
	UEXIT

/* Jump to RSI (kernel text): how a CPL3 fetch from a supervisor page is reported. */
	.globl u_jump, u_jump_next
u_jump:
	jmp	*%rsi
u_jump_next:
	xorl	%eax, %eax
	UEXIT

/* RDI x SYSCALL with RAX = 7: the handler returns RAX = 8. */
	.globl u_syscall_loop
u_syscall_loop:
	xorl	%r8d, %r8d
1:	movl	$7, %eax
	syscall
	cmpq	$8, %rax
	je	2f
	incq	%r8			/* wrong result */
2:	decq	%rdi
	jnz	1b
	movq	%r8, %rax
	UEXIT

/* One SYSCALL, for the probe (LSTAR = u_syscall_probe) and for EFER.SCE = 0. */
	.globl u_syscall_once, u_syscall_insn
u_syscall_once:
	movl	$7, %eax
u_syscall_insn:
	syscall
	UEXIT

/*
 * LSTAR during the probe: a user page, so it runs whatever CPL SYSCALL left.
 * Records CS, SS, RFLAGS, RSP, RCX, R11, then ud2 at u_probe_exit (the #UD
 * handler ends the user__call at either CPL).
 */
	.globl u_syscall_probe, u_probe_exit
u_syscall_probe:
	movq	%rcx, uinfo+40(%rip)
	movq	%r11, uinfo+48(%rip)
	movq	%cs, %rcx
	movq	%rcx, uinfo+0(%rip)
	movq	%ss, %rcx
	movq	%rcx, uinfo+8(%rip)
	pushfq
	popq	%rcx
	movq	%rcx, uinfo+24(%rip)
	movq	%rsp, uinfo+32(%rip)
u_probe_exit:
	ud2

/* SYSENTER (#UD on AMD in long mode). */
	.globl u_sysenter, u_sysenter_insn
u_sysenter:
u_sysenter_insn:
	sysenter
	movl	$0xbad, %eax
	UEXIT

/* Spins forever reading the TSC; uinfo.maxgap = longest gap between two reads (cycles). */
	.globl u_tsc_spin
u_tsc_spin:
	TSC(%r8)
	xorl	%r9d, %r9d
1:	TSC(%r10)
	movq	%r10, %rcx
	subq	%r8, %rcx
	movq	%r10, %r8
	cmpq	%r9, %rcx
	jbe	1b
	movq	%rcx, %r9
	movq	%r9, uinfo+56(%rip)
	jmp	1b

/* dec/jnz loop of RDI iterations, timed with RDTSC at CPL3: returns the cycles. */
	.globl u_spin
u_spin:
	TSC(%r8)
	.balign 16
1:	decq	%rdi
	jnz	1b
	TSC(%rax)
	subq	%r8, %rax
	UEXIT

/* RDI PIO echo round trips (needs IOPL 3 or the port in the TSS I/O bitmap): returns wrong echoes. */
	.globl u_pio_loop, u_pio_insn
u_pio_loop:
	xorl	%r8d, %r8d
	movl	$(PORT_TESTDEV + TESTDEV_PIO_ECHO), %edx
	movl	$0x12345678, %ecx
1:	movl	%ecx, %eax
u_pio_insn:
	outl	%eax, %dx
	inl	%dx, %eax
	notl	%eax
	cmpl	%ecx, %eax
	je	2f
	incq	%r8
2:	addl	$0x9E3779B9, %ecx
	decq	%rdi
	jnz	1b
	movq	%r8, %rax
	UEXIT

/* RDI MMIO scratch round trips at RSI (the test device, mapped U=1): returns wrong reads. */
	.globl u_mmio_loop
u_mmio_loop:
	xorl	%r8d, %r8d
	movabsq	$0x9E3779B97F4A7C15, %rcx
1:	movq	%rcx, TESTDEV_MMIO_SCRATCH(%rsi)
	movq	TESTDEV_MMIO_SCRATCH(%rsi), %rax
	cmpq	%rcx, %rax
	je	2f
	incq	%r8
2:	addq	%rdi, %rcx
	decq	%rdi
	jnz	1b
	movq	%r8, %rax
	UEXIT

	.section .user.data, "aw"
	.balign 64
	.globl uinfo
uinfo:	.zero	64

	.section .note.GNU-stack, "", @progbits
