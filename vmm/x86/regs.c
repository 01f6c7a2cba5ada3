/*
 * Boot-time CPU state for the 64-bit entry: a flat GDT, identity page tables
 * for the low 4 GiB and the matching long-mode segment/control registers.
 */
#include "vmm/x86/regs.h"

#include <errno.h>
#include <string.h>

#include "vmm/x86/layout.h"

/* GDT slots; the selector of slot i is i * 8. */
#define GDT_CODE64 2
#define GDT_DATA   3
#define GDT_NR     4

#define SEL_CODE64 (GDT_CODE64 * 8)
#define SEL_DATA   (GDT_DATA * 8)

/*
 * Descriptors: base 0, limit 0xfffff in 4 KiB units (G=1), DPL 0, present.
 * code64: type 0xb (execute/read, accessed), S=1, L=1, D=0.
 * data:   type 0x3 (read/write, accessed),   S=1, D/B=1.
 */
#define GDT_DESC_CODE64 0x00af9b000000ffffULL
#define GDT_DESC_DATA   0x00cf93000000ffffULL

#define SEG_TYPE_CODE_XRA  0xb
#define SEG_TYPE_DATA_RWA  0x3
#define SEG_TYPE_LDT       0x2
#define SEG_TYPE_TSS64_BSY 0xb

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_MP (1ULL << 1)
#define X86_CR0_ET (1ULL << 4)
#define X86_CR0_NE (1ULL << 5)
#define X86_CR0_WP (1ULL << 16)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_PWT (1ULL << 3)
#define PTE_PCD (1ULL << 4)
#define PTE_PS  (1ULL << 7)

#define PAGE_SIZE_4K  0x1000ULL
#define PAGE_SIZE_2M  0x200000ULL
#define PT_ENTRIES    512

static int write_gdt_idt(struct guest_mem *mem)
{
	const uint64_t gdt[GDT_NR] = {
		[GDT_CODE64] = GDT_DESC_CODE64,
		[GDT_DATA] = GDT_DESC_DATA,
	};
	const uint64_t idt[2] = { 0, 0 };   /* one empty 16-byte gate: limit 0 covers nothing */
	int err;

	err = guest_mem__write(mem, LAYOUT_GDT, gdt, sizeof(gdt));
	if (err)
		return err;
	return guest_mem__write(mem, LAYOUT_IDT, idt, sizeof(idt));
}

/*
 * PML4[0] -> PDPT, PDPT[0..3] -> four PDs, each PD maps 1 GiB with 2 MiB
 * pages. The part of the map that lies in the PCI hole is uncached (PCD|PWT),
 * as firmware would mark MMIO.
 */
static int write_page_tables(struct guest_mem *mem)
{
	uint64_t *pml4 = guest_mem__ptr(mem, LAYOUT_PML4, PAGE_SIZE_4K);
	uint64_t *pdpt = guest_mem__ptr(mem, LAYOUT_PDPT, PAGE_SIZE_4K);
	uint64_t *pd = guest_mem__ptr(mem, LAYOUT_PD, LAYOUT_PD_COUNT * PAGE_SIZE_4K);
	unsigned i;

	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, PAGE_SIZE_4K);
	memset(pdpt, 0, PAGE_SIZE_4K);
	pml4[0] = LAYOUT_PDPT | PTE_P | PTE_RW;
	for (i = 0; i < LAYOUT_PD_COUNT; i++)
		pdpt[i] = (LAYOUT_PD + i * PAGE_SIZE_4K) | PTE_P | PTE_RW;
	for (i = 0; i < LAYOUT_PD_COUNT * PT_ENTRIES; i++) {
		uint64_t addr = (uint64_t)i * PAGE_SIZE_2M;
		uint64_t flags = PTE_P | PTE_RW | PTE_PS;

		if (addr >= GUEST_PCI_HOLE_START)
			flags |= PTE_PCD | PTE_PWT;
		pd[i] = addr | flags;
	}
	return 0;
}

int x86_regs__write_tables(struct guest_mem *mem)
{
	int err = write_gdt_idt(mem);

	if (err)
		return err;
	return write_page_tables(mem);
}

static void flat_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type)
{
	*seg = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = 0,
		.s = 1,
		.g = 1,
	};
}

void x86_regs__long_mode_sregs(struct kvm_sregs *sregs)
{
	flat_segment(&sregs->cs, SEL_CODE64, SEG_TYPE_CODE_XRA);
	sregs->cs.l = 1;
	flat_segment(&sregs->ds, SEL_DATA, SEG_TYPE_DATA_RWA);
	sregs->ds.db = 1;
	sregs->es = sregs->ds;
	sregs->fs = sregs->ds;
	sregs->gs = sregs->ds;
	sregs->ss = sregs->ds;

	/*
	 * VM entry wants a present busy 64-bit TSS in TR even though nothing
	 * uses it before the guest loads its own; the hidden state is enough.
	 */
	sregs->tr = (struct kvm_segment){
		.base = 0,
		.limit = 0x67,
		.selector = 0,
		.type = SEG_TYPE_TSS64_BSY,
		.present = 1,
	};
	sregs->ldt = (struct kvm_segment){ .type = SEG_TYPE_LDT, .unusable = 1 };

	sregs->gdt.base = LAYOUT_GDT;
	sregs->gdt.limit = GDT_NR * 8 - 1;
	sregs->idt.base = LAYOUT_IDT;
	sregs->idt.limit = 0;

	/* The state Linux's startup_64 establishes itself, minus AM. */
	sregs->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP |
		     X86_CR0_PG;
	sregs->cr2 = 0;
	sregs->cr3 = LAYOUT_PML4;
	sregs->cr4 = X86_CR4_PAE;
	sregs->efer = EFER_LME | EFER_LMA;
}

void x86_regs__boot_regs(struct kvm_regs *regs, uint64_t entry, uint64_t zero_page)
{
	memset(regs, 0, sizeof(*regs));
	regs->rip = entry;
	regs->rsi = zero_page;
	regs->rsp = LAYOUT_BOOT_STACK;
	regs->rbp = LAYOUT_BOOT_STACK;
	regs->rflags = 0x2;   /* bit 1 is reserved-one; IF clear */
}
