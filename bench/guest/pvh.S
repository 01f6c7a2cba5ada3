/*
 * PVH entry: how QEMU's -kernel (and Xen, cloud-hypervisor, Firecracker)
 * boots an ELF that carries a XEN_ELFNOTE_PHYS32_ENTRY note. The CPU arrives
 * in 32-bit protected mode with flat segments, paging off, interrupts off,
 * no usable stack or GDT, and EBX = guest-physical address of struct
 * hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). This stub
 * loads its own GDT (the runtime's kernel selectors), builds an identity map
 * of 0..4 GiB with 2 MiB pages (as rtvmm's monitor does: PCD|PWT from
 * 3 GiB), enables PAE, long mode and paging, and joins _start's path in
 * start.S with RSI = hvm_start_info, EBP = BOOT_PVH. Runs at CPL0 (emulated
 * on the nested development host: it is short, and uses no instruction KVM's
 * emulator lacks).
 */
#include "rt.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CR0_PE     0x00000001
#define CR0_PG     0x80000000
#define CR4_PAE    0x00000020
#define EFER_MSR   0xC0000080
#define EFER_LME   0x00000100
#define PTE_FLAGS  0x3          /* present, writable */
#define PDE_2M     0x83         /* present, writable, 2 MiB page */
#define PDE_UC     0x18         /* PWT | PCD: the PCI hole and devices */
#define UC_START   0xC0000000

/*
 * The note (type 18, name "Xen"): the 32-bit entry address. Its payload is 8
 * bytes as in Linux (_ASM_PTR): QEMU 7.2 reads a size_t there. The PT_NOTE
 * segment (guest.ld) is 4-byte aligned, as QEMU's note walker assumes.
 */
	.section .note.Xen, "a", @note
	.balign 4
	.long	2f - 1f			/* namesz */
	.long	4f - 3f			/* descsz */
	.long	XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz	"Xen"
2:	.balign 4
3:	.quad	pvh_start32
4:	.balign 4

/* Boot GDT (accessed bits preset: nothing writes it). Same selectors as cpu.c's GDT. */
	.section .rodata
	.balign 16
pvh_gdt:
	.quad	0
	.quad	0x00cf9b000000ffff	/* GDT_KERNEL_CODE32 */
	.quad	0x00af9b000000ffff	/* GDT_KERNEL_CODE */
	.quad	0x00cf93000000ffff	/* GDT_KERNEL_DATA */
pvh_gdt_end:
	.balign 8
pvh_gdt_desc:
	.word	pvh_gdt_end - pvh_gdt - 1
	.long	pvh_gdt

/* Page tables: outside .bss, which _start zeroes while they are in use (guest.ld). */
	.section .pvh.tables, "aw", @nobits
	.balign 4096
pvh_pml4:
	.skip	4096
pvh_pdpt:
	.skip	4096
pvh_pd:
	.skip	4 * 4096
pvh_tables_end:

	.text
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	movl	%ebx, %esi			/* hvm_start_info, kept in ESI */
	lgdt	pvh_gdt_desc
	ljmp	$GDT_KERNEL_CODE32, $1f
1:	movl	$GDT_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	/* Zero the tables, then PML4[0] -> PDPT, PDPT[0..3] -> the 4 PDs. */
	movl	$pvh_pml4, %edi
	movl	$((pvh_tables_end - pvh_pml4) / 4), %ecx
	xorl	%eax, %eax
	rep stosl
	movl	$(pvh_pdpt + PTE_FLAGS), pvh_pml4
	movl	$(pvh_pd + PTE_FLAGS), %eax
	movl	$pvh_pdpt, %edi
	movl	$4, %ecx
2:	movl	%eax, (%edi)
	addl	$4096, %eax
	addl	$8, %edi
	decl	%ecx
	jnz	2b

	/* 2048 PDEs: identity, 2 MiB each; uncached from 3 GiB (PCI hole, IOAPIC, LAPIC). */
	movl	$pvh_pd, %edi
	movl	$PDE_2M, %eax
	movl	$2048, %ecx
3:	movl	%eax, %edx
	cmpl	$UC_START, %eax
	jb	4f
	orl	$PDE_UC, %edx
4:	movl	%edx, (%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	decl	%ecx
	jnz	3b

	/* PAE, CR3, EFER.LME, then paging: long mode (compatibility until the far jump). */
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pvh_pml4, %eax
	movl	%eax, %cr3
	movl	$EFER_MSR, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(CR0_PG | CR0_PE), %eax
	movl	%eax, %cr0
	ljmp	$GDT_KERNEL_CODE, $pvh_start64

	.code64
pvh_start64:
	movl	$GDT_KERNEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movl	%esi, %esi			/* zero-extend the start info address */
	movl	$BOOT_PVH, %ebp
	jmp	start_common

	.section .note.GNU-stack, "", @progbits
