/* e820 map: what the guest learns about RAM and reserved ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"
#include "vmm/x86/e820.h"
#include "vmm/x86/layout.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void assert_entry(const struct e820_entry *en, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(en->addr, addr);
	assert_int_equal(en->size, size);
	assert_int_equal(en->type, type);
}

static void test_e820_reserves_ebda_and_bios(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[16];
	unsigned n;

	(void)state;
	guest_mem__layout(&mem, 256 * MiB);
	n = e820__build(&mem, map, 16);
	assert_int_equal(n, 4);
	assert_entry(&map[0], 0, LAYOUT_EBDA, E820_RAM);
	assert_entry(&map[1], LAYOUT_EBDA, 0xA0000 - LAYOUT_EBDA, E820_RESERVED);
	assert_entry(&map[2], LAYOUT_ACPI_START, LAYOUT_BIOS_END - LAYOUT_ACPI_START, E820_RESERVED);
	assert_entry(&map[3], LAYOUT_BIOS_END, 256 * MiB - LAYOUT_BIOS_END, E820_RAM);
}

static void test_e820_covers_acpi_and_mptable_area(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[16];
	unsigned n, i;
	int found = 0;

	(void)state;
	guest_mem__layout(&mem, 64 * MiB);
	n = e820__build(&mem, map, 16);
	for (i = 0; i < n; i++)
		if (map[i].type == E820_RESERVED && map[i].addr <= LAYOUT_ACPI_START &&
		    map[i].addr + map[i].size >= LAYOUT_BIOS_END)
			found = 1;
	assert_true(found);
	/* No RAM entry may overlap the tables the monitor writes there. */
	for (i = 0; i < n; i++)
		if (map[i].type == E820_RAM)
			assert_true(map[i].addr + map[i].size <= LAYOUT_ACPI_START ||
				    map[i].addr >= LAYOUT_BIOS_END);
}

static void test_e820_low_ram_ends_at_pci_hole(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[16];
	unsigned n;

	(void)state;
	guest_mem__layout(&mem, GUEST_PCI_HOLE_START);
	n = e820__build(&mem, map, 16);
	assert_int_equal(n, 4);
	assert_entry(&map[3], LAYOUT_BIOS_END, GUEST_PCI_HOLE_START - LAYOUT_BIOS_END, E820_RAM);
}

static void test_e820_ram_above_4g_when_memory_exceeds_pci_hole(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[16];
	unsigned n;

	(void)state;
	guest_mem__layout(&mem, 4 * GiB);
	n = e820__build(&mem, map, 16);
	assert_int_equal(n, 5);
	assert_entry(&map[3], LAYOUT_BIOS_END, GUEST_PCI_HOLE_START - LAYOUT_BIOS_END, E820_RAM);
	assert_entry(&map[4], GUEST_PCI_HOLE_END, 4 * GiB - GUEST_PCI_HOLE_START, E820_RAM);
}

static void test_e820_entries_sorted_and_disjoint(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[16];
	unsigned n, i;

	(void)state;
	guest_mem__layout(&mem, 6 * GiB);
	n = e820__build(&mem, map, 16);
	assert_true(n > 1);
	for (i = 1; i < n; i++)
		assert_true(map[i - 1].addr + map[i - 1].size <= map[i].addr);
}

static void test_e820_respects_max_entries(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[3] = { 0 };
	unsigned n;

	(void)state;
	guest_mem__layout(&mem, 4 * GiB);
	n = e820__build(&mem, map, 2);
	assert_int_equal(n, 2);
	assert_int_equal(map[2].size, 0); /* untouched */
	assert_int_equal(e820__build(&mem, map, 0), 0);
}

static void test_e820_tiny_memory_does_not_crash(void **state)
{
	struct guest_mem mem = { 0 };
	struct e820_entry map[16];
	unsigned n, i;

	(void)state;
	guest_mem__layout(&mem, 512 * 1024);
	n = e820__build(&mem, map, 16);
	assert_int_equal(n, 3);
	assert_entry(&map[0], 0, 512 * 1024, E820_RAM);
	for (i = 1; i < n; i++)
		assert_int_equal(map[i].type, E820_RESERVED);

	guest_mem__layout(&mem, LAYOUT_BIOS_END); /* exactly 1 MiB: no RAM above it */
	n = e820__build(&mem, map, 16);
	assert_int_equal(n, 3);

	guest_mem__layout(&mem, 0);
	n = e820__build(&mem, map, 16);
	for (i = 0; i < n; i++)
		assert_int_not_equal(map[i].type, E820_RAM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e820_reserves_ebda_and_bios),
		cmocka_unit_test(test_e820_covers_acpi_and_mptable_area),
		cmocka_unit_test(test_e820_low_ram_ends_at_pci_hole),
		cmocka_unit_test(test_e820_ram_above_4g_when_memory_exceeds_pci_hole),
		cmocka_unit_test(test_e820_entries_sorted_and_disjoint),
		cmocka_unit_test(test_e820_respects_max_entries),
		cmocka_unit_test(test_e820_tiny_memory_does_not_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
