/*
 * Boot CPU state: the GDT the selectors point at, the identity page tables
 * (checked with a small software page walker, as the MMU would walk them)
 * and the long-mode sregs/regs KVM gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>

#include "vmm/guest_mem.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/regs.h"

#define RAM_SIZE (2ull << 20)

#define PTE_P   (1ull << 0)
#define PTE_RW  (1ull << 1)
#define PTE_PCD (1ull << 4)
#define PTE_PS  (1ull << 7)
#define PTE_ADDR 0x000ffffffffff000ull

static int setup_mem(void **state)
{
	static struct guest_mem mem;

	if (guest_mem__create(&mem, RAM_SIZE))
		return -1;
	if (x86_regs__write_tables(&mem))
		return -1;
	*state = &mem;
	return 0;
}

static int teardown_mem(void **state)
{
	guest_mem__destroy(*state);
	return 0;
}

static uint64_t rd64(const struct guest_mem *mem, uint64_t gpa)
{
	const void *p = guest_mem__ptr(mem, gpa, 8);
	uint64_t v;

	assert_non_null(p);
	memcpy(&v, p, 8);
	return v;
}

/*
 * 4-level walk from CR3 with 2 MiB leaves allowed at the PD level. Returns
 * the physical address, or ~0 if some level is not present; `*leaf` gets the
 * flags of the last entry.
 */
static uint64_t walk(const struct guest_mem *mem, uint64_t cr3, uint64_t va, uint64_t *leaf)
{
	uint64_t pml4e = rd64(mem, (cr3 & PTE_ADDR) + ((va >> 39) & 511) * 8);
	uint64_t pdpte, pde;

	if (!(pml4e & PTE_P))
		return ~0ull;
	pdpte = rd64(mem, (pml4e & PTE_ADDR) + ((va >> 30) & 511) * 8);
	if (!(pdpte & PTE_P))
		return ~0ull;
	assert_false(pdpte & PTE_PS);                       /* no 1 GiB pages */
	pde = rd64(mem, (pdpte & PTE_ADDR) + ((va >> 21) & 511) * 8);
	if (!(pde & PTE_P))
		return ~0ull;
	assert_true(pde & PTE_PS);                          /* 2 MiB pages */
	*leaf = pde;
	return (pde & 0x000fffffffe00000ull) | (va & 0x1fffff);
}

static void test_page_tables_identity_map_low_4g(void **state)
{
	static const uint64_t addrs[] = {
		0, 0x1234, LAYOUT_ZERO_PAGE, 0x1fffff, 0x200000, 0x100000, 0x3fffffff,
		0x40000000, 0x7fffffff, 0xbfffffff, 0xc0000000, LAYOUT_IOAPIC, LAYOUT_LAPIC,
		0xffffffff,
	};
	struct guest_mem *mem = *state;
	struct kvm_sregs sregs = { 0 };
	unsigned i;

	x86_regs__long_mode_sregs(&sregs);
	for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		uint64_t leaf = 0;

		assert_int_equal(walk(mem, sregs.cr3, addrs[i], &leaf), addrs[i]);
		assert_true(leaf & PTE_RW);
	}
}

static void test_page_tables_stop_at_4g(void **state)
{
	struct guest_mem *mem = *state;
	uint64_t leaf;

	assert_int_equal(walk(mem, LAYOUT_PML4, 0x100000000ull, &leaf), ~0ull);
	assert_int_equal(walk(mem, LAYOUT_PML4, 0x8000000000ull, &leaf), ~0ull);
}

static void test_pci_hole_mapped_uncached_ram_cached(void **state)
{
	struct guest_mem *mem = *state;
	uint64_t leaf = 0;

	walk(mem, LAYOUT_PML4, LAYOUT_LAPIC, &leaf);
	assert_true(leaf & PTE_PCD);
	walk(mem, LAYOUT_PML4, 0x100000, &leaf);
	assert_false(leaf & PTE_PCD);
}

static void test_gdt_has_flat_code64_and_data(void **state)
{
	struct guest_mem *mem = *state;

	assert_int_equal(rd64(mem, LAYOUT_GDT + 0x00), 0);
	assert_int_equal(rd64(mem, LAYOUT_GDT + 0x08), 0);
	assert_int_equal(rd64(mem, LAYOUT_GDT + 0x10), 0x00af9b000000ffffull);
	assert_int_equal(rd64(mem, LAYOUT_GDT + 0x18), 0x00cf93000000ffffull);
}

/* The segment a descriptor gives when its selector is loaded, as the CPU decodes it. */
static void assert_segment_matches_descriptor(const struct kvm_segment *s, uint64_t d)
{
	uint64_t limit = (d & 0xffff) | ((d >> 32) & 0xf0000);

	if ((d >> 55) & 1)
		limit = limit << 12 | 0xfff;
	assert_int_equal(s->base, ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000));
	assert_int_equal(s->limit, limit);
	assert_int_equal(s->type, (d >> 40) & 0xf);
	assert_int_equal(s->s, (d >> 44) & 1);
	assert_int_equal(s->dpl, (d >> 45) & 3);
	assert_int_equal(s->present, (d >> 47) & 1);
	assert_int_equal(s->l, (d >> 53) & 1);
	assert_int_equal(s->db, (d >> 54) & 1);
	assert_int_equal(s->g, (d >> 55) & 1);
	assert_int_equal(s->unusable, 0);
}

static void test_sregs_segments_match_their_gdt_descriptors(void **state)
{
	struct guest_mem *mem = *state;
	struct kvm_sregs sregs = { 0 };
	const struct kvm_segment *data[] = {
		&sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss,
	};
	unsigned i;

	x86_regs__long_mode_sregs(&sregs);
	assert_int_equal(sregs.cs.selector, 0x10);
	assert_int_equal(sregs.cs.l, 1);
	assert_int_equal(sregs.cs.type, 0xb);
	assert_segment_matches_descriptor(&sregs.cs, rd64(mem, LAYOUT_GDT + sregs.cs.selector));
	for (i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
		assert_int_equal(data[i]->selector, 0x18);
		assert_int_equal(data[i]->type, 3);
		assert_segment_matches_descriptor(data[i],
						  rd64(mem, LAYOUT_GDT + data[i]->selector));
	}
	assert_int_equal(sregs.gdt.base, LAYOUT_GDT);
	assert_int_equal(sregs.gdt.limit, 4 * 8 - 1);
	assert_int_equal(sregs.idt.base, LAYOUT_IDT);
	assert_int_equal(sregs.idt.limit, 0);
}

static void test_sregs_tr_busy_tss_and_ldt_unusable(void **state)
{
	struct kvm_sregs sregs = { 0 };

	(void)state;
	x86_regs__long_mode_sregs(&sregs);
	assert_int_equal(sregs.tr.type, 0xb);
	assert_int_equal(sregs.tr.present, 1);
	assert_int_equal(sregs.tr.s, 0);
	assert_int_equal(sregs.tr.selector & 4, 0);          /* TI = 0: GDT */
	assert_int_equal(sregs.ldt.unusable, 1);
	assert_int_equal(sregs.ldt.present, 0);
}

static void test_sregs_enter_long_mode_with_paging(void **state)
{
	struct kvm_sregs sregs = { 0 };

	(void)state;
	sregs.apic_base = 0xfee00900;                        /* what KVM_GET_SREGS gave */
	x86_regs__long_mode_sregs(&sregs);
	assert_int_equal(sregs.cr0 & 0x80000001, 0x80000001);   /* PG | PE */
	assert_int_equal(sregs.cr0 & 0x60000000, 0);             /* caches on: CD, NW clear */
	assert_int_equal(sregs.cr3, LAYOUT_PML4);
	assert_int_equal(sregs.cr4, 1 << 5);                     /* PAE only */
	assert_int_equal(sregs.efer & 0x500, 0x500);             /* LME | LMA */
	assert_int_equal(sregs.efer & 1, 0);                     /* SCE not needed */
	assert_int_equal(sregs.apic_base, 0xfee00900);           /* untouched */
}

static void test_boot_regs_follow_64bit_boot_protocol(void **state)
{
	struct kvm_regs regs;

	(void)state;
	memset(&regs, 0xaa, sizeof(regs));
	x86_regs__boot_regs(&regs, 0x1000200, LAYOUT_ZERO_PAGE);
	assert_int_equal(regs.rip, 0x1000200);
	assert_int_equal(regs.rsi, LAYOUT_ZERO_PAGE);
	assert_int_equal(regs.rsp, LAYOUT_BOOT_STACK);
	assert_int_equal(regs.rflags, 0x2);
	assert_int_equal(regs.rax, 0);
	assert_int_equal(regs.rdi, 0);
}

static void test_write_tables_needs_ram_for_page_tables(void **state)
{
	struct guest_mem small;

	(void)state;
	assert_int_equal(guest_mem__create(&small, LAYOUT_PML4), 0);
	assert_int_equal(x86_regs__write_tables(&small), -EFAULT);
	guest_mem__destroy(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_tables_identity_map_low_4g),
		cmocka_unit_test(test_page_tables_stop_at_4g),
		cmocka_unit_test(test_pci_hole_mapped_uncached_ram_cached),
		cmocka_unit_test(test_gdt_has_flat_code64_and_data),
		cmocka_unit_test(test_sregs_segments_match_their_gdt_descriptors),
		cmocka_unit_test(test_sregs_tr_busy_tss_and_ldt_unusable),
		cmocka_unit_test(test_sregs_enter_long_mode_with_paging),
		cmocka_unit_test(test_boot_regs_follow_64bit_boot_protocol),
		cmocka_unit_test(test_write_tables_needs_ram_for_page_tables),
	};

	return cmocka_run_group_tests(tests, setup_mem, teardown_mem);
}
