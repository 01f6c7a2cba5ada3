/*
 * Entry points: BSP entry (_start, from the monitor), AP entry (ap_entry64,
 * from the trampoline), and the interrupt stubs. Everything here runs at CPL0.
 */
#include "rt.h"

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	/* Monitor contract: long mode, RSI = zero page, RSP = LAYOUT_BOOT_STACK, IF = 0. */
	cli
	cld
	movl	$BOOT_ZERO_PAGE, %ebp

	/* pvh.S joins here in long mode: RSI = boot pointer, EBP = BOOT_*, IF = 0. */
	.globl start_common
start_common:
	leaq	cpu_stacks+STACK_SIZE(%rip), %rsp	/* cpu_stacks[0]: the BSP stack */
	movq	%rsi, %rbx
	/* Zero .bss (stacks live outside it: see guest.ld). */
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	movq	%rbx, %rdi
	movl	%ebp, %esi
	call	rt__start
1:	cli
	hlt
	jmp	1b

	/* The trampoline jumps here in long mode with RSP = this CPU's stack, EDI = cpu index. */
	.globl ap_entry64
ap_entry64:
	cld
	movl	$GDT_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	call	rt__ap_start
1:	cli
	hlt
	jmp	1b

/*
 * One 16-byte stub per vector: push a zero error code when the CPU does not
 * push one, push the vector, jump to the common path.
 */
	.text
	.balign 16
	.globl isr_stubs
isr_stubs:
	vec = 0
	.rept 256
	.balign 16
	.if vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	isr_common
	vec = vec + 1
	.endr

isr_common:
	PUSH_GPRS
	movq	%rsp, %rdi	/* struct trap_frame *; 16-byte aligned here */
	cld
	call	cpu__trap_dispatch
	POP_GPRS
	addq	$16, %rsp	/* vector, error code */
	iretq

	.section .note.GNU-stack, "", @progbits
