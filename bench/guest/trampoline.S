/*
 * AP start-up trampoline. smp.c copies trampoline_start..trampoline_end to
 * TRAMPOLINE_BASE (4 KiB aligned, below 1 MiB) and fills tramp_params; a
 * STARTUP IPI with vector TRAMPOLINE_BASE >> 12 starts the AP here in real
 * mode at CS = TRAMPOLINE_BASE >> 4, IP = 0. It goes 16-bit real mode ->
 * 32-bit protected mode -> 64-bit long mode (the BSP's CR3 and EFER), then
 * jumps to ap_entry64 on its own stack. Never executed where it is linked.
 */
#include "rt.h"

#define LIN(x) ((x) - trampoline_start + TRAMPOLINE_BASE)  /* linear address once copied */
#define OFF(x) ((x) - trampoline_start)                    /* offset from CS in real mode */

	.section .rodata.trampoline, "a"
	.balign 16
	.globl trampoline_start
trampoline_start:
	.code16
	cli
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	OFF(tramp_gdtr)
	movl	%cr0, %eax
	orl	$1, %eax			/* PE */
	movl	%eax, %cr0
	ljmpl	$GDT_KERNEL_CODE32, $LIN(tramp32)

	.code32
tramp32:
	movl	$GDT_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr4, %eax
	orl	$0x20, %eax			/* PAE */
	movl	%eax, %cr4
	movl	LIN(tramp_cr3), %eax
	movl	%eax, %cr3
	movl	$0xC0000080, %ecx
	movl	LIN(tramp_efer), %eax		/* LME (+ NXE, SCE as on the BSP) */
	xorl	%edx, %edx
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax		/* PG | PE: long mode becomes active */
	movl	%eax, %cr0
	ljmpl	$GDT_KERNEL_CODE, $LIN(tramp64)

	.code64
tramp64:
	movq	LIN(tramp_stack), %rsp
	movl	LIN(tramp_cpu), %edi
	movq	LIN(tramp_entry), %rax
	jmpq	*%rax

	.balign 8
tramp_gdt:
	.quad	0
	.quad	0x00cf9a000000ffff		/* 0x08: 32-bit code, flat */
	.quad	0x00af9a000000ffff		/* 0x10: 64-bit code */
	.quad	0x00cf92000000ffff		/* 0x18: data, flat */
tramp_gdt_end:
	.balign 8
tramp_gdtr:
	.word	tramp_gdt_end - tramp_gdt - 1
	.long	LIN(tramp_gdt)

	/* Parameters, filled by smp.c in the copy (struct tramp_params). */
	.balign 8
	.globl tramp_params
tramp_params:
tramp_cr3:	.quad 0
tramp_efer:	.quad 0
tramp_stack:	.quad 0
tramp_entry:	.quad 0
tramp_cpu:	.long 0
		.long 0
	.globl trampoline_end
trampoline_end:

	.section .note.GNU-stack, "", @progbits
