/*
 * CPL3 entry and exit (user.c has the C side), and the kernel entry points
 * of SYSCALL and SYSENTER. All of it runs at CPL0.
 */
#include "rt.h"

	.text
	.code64

/*
 * uint64_t user__enter(struct user_cpu *uc, const struct user_entry *e)
 * Saves the callee-saved registers and RSP (uc->saved_rsp, also TSS.RSP0:
 * traps from CPL3 run below it), then IRETQ (or SYSRETQ) to e->rip at CPL3.
 * Returns through user__resume.
 */
	.globl user__enter
user__enter:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, UCPU_SAVED_RSP(%rdi)
	movq	%rsp, %rax
	andq	$-16, %rax
	movq	%rax, UCPU_TSS_RSP0(%rdi)
	cmpq	$0, UENT_SYSRET(%rsi)
	jne	1f
	pushq	$(GDT_USER_DATA | 3)		/* SS */
	pushq	UENT_RSP(%rsi)			/* RSP */
	pushq	UENT_RFLAGS(%rsi)		/* RFLAGS */
	pushq	$(GDT_USER_CODE | 3)		/* CS */
	pushq	UENT_RIP(%rsi)			/* RIP */
	movq	UENT_ARG0(%rsi), %rdi
	movq	UENT_ARG1(%rsi), %rsi
	iretq
1:	movq	UENT_RIP(%rsi), %rcx
	movq	UENT_RFLAGS(%rsi), %r11
	movq	UENT_RSP(%rsi), %rsp
	movq	UENT_ARG0(%rsi), %rdi
	movq	UENT_ARG1(%rsi), %rsi
	sysretq

/* void user__resume(struct user_cpu *uc, uint64_t v): user__enter returns v. */
	.globl user__resume
user__resume:
	movq	UCPU_SAVED_RSP(%rdi), %rsp
	movl	$GDT_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movq	%rsi, %rax
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret

/*
 * MSR_LSTAR. SYSCALL: CS/SS from STAR, RCX = user RIP, R11 = user RFLAGS,
 * RFLAGS &= ~SFMASK (IF = 0), RSP unchanged. The handler runs on the caller's
 * stack (no stack switch, hence no SWAPGS and no per-CPU data: user and
 * kernel trust each other in this runtime). It builds a struct trap_frame
 * laid out as an IRET frame, so it returns with IRETQ, or with SYSRETQ when
 * syscall_return_sysret is set.
 */
	.globl syscall_entry
syscall_entry:
	pushq	$(GDT_USER_DATA | 3)		/* ss */
	pushq	%rsp
	addq	$8, (%rsp)			/* rsp: the caller's */
	pushq	%r11				/* rflags */
	pushq	$(GDT_USER_CODE | 3)		/* cs */
	pushq	%rcx				/* rip */
	pushq	$0				/* error */
	pushq	$VEC_SYSCALL			/* vector */
	PUSH_GPRS
	movq	%rsp, %rdi
	movq	%rsp, %rbp
	andq	$-16, %rsp
	cld
	call	cpu__syscall_dispatch
	movq	%rbp, %rsp
	POP_GPRS
	addq	$16, %rsp			/* vector, error */
	cmpb	$0, syscall_return_sysret(%rip)
	jne	1f
	iretq
1:	popq	%rcx				/* rip */
	addq	$8, %rsp			/* cs */
	popq	%r11				/* rflags */
	popq	%rsp
	sysretq

/*
 * MSR_SYSENTER_EIP. SYSENTER (valid in 64-bit mode on Intel only; #UD on
 * AMD): CS = SYSENTER_CS, SS = CS + 8, RSP = SYSENTER_ESP, no return state
 * saved. Only records that it arrived, then ends the user__call.
 */
	.globl sysenter_entry
sysenter_entry:
	andq	$-16, %rsp
	call	user__sysenter_c
	ud2

/* CPL3 code ends its user__call with `jmp user_exit` (RAX = result). */
	.section .user.text, "ax"
	.globl user_exit
user_exit:
	ud2

	.section .note.GNU-stack, "", @progbits
