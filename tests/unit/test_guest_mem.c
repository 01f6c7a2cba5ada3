#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"

static void test_guest_mem_layout_splits_around_pci_hole(void **state)
{
	struct guest_mem mem;

	(void)state;
	guest_mem__layout(&mem, 256ULL << 20);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].size, 256ULL << 20);
	guest_mem__layout(&mem, 4ULL << 30);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, GUEST_PCI_HOLE_START);
	assert_int_equal(mem.regions[1].gpa, GUEST_PCI_HOLE_END);
	assert_int_equal(mem.regions[1].size, (4ULL << 30) - GUEST_PCI_HOLE_START);
	assert_int_equal(mem.regions[1].fd_offset, GUEST_PCI_HOLE_START);
}

static void test_guest_mem_ptr_rejects_ranges_outside_ram(void **state)
{
	struct guest_mem mem;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, 16ULL << 20), 0);
	assert_non_null(guest_mem__ptr(&mem, 0, 16ULL << 20));
	assert_null(guest_mem__ptr(&mem, (16ULL << 20) - 8, 16));
	assert_null(guest_mem__ptr(&mem, UINT64_MAX - 4, 8));
	assert_null(guest_mem__ptr(&mem, 4, UINT64_MAX));
	assert_int_equal(guest_mem__write(&mem, 16ULL << 20, "x", 1), -EFAULT);
	guest_mem__destroy(&mem);
}

static void test_guest_mem_memfd_is_shared_and_sealed_against_resizing(void **state)
{
	struct guest_mem mem;
	uint8_t byte = 0;
	int seals;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, 8ULL << 20), 0);
	seals = fcntl(mem.fd, F_GET_SEALS);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	/* A backend mapping the fd can never see it shrink under it. */
	assert_int_equal(ftruncate(mem.fd, 4ULL << 20), -1);
	assert_int_equal(errno, EPERM);
	/* MAP_SHARED: what the guest writes is in the fd a backend maps. */
	mem.base[4096] = 0x5a;
	assert_int_equal(pread(mem.fd, &byte, 1, 4096), 1);
	assert_int_equal(byte, 0x5a);
	guest_mem__destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_mem_layout_splits_around_pci_hole),
		cmocka_unit_test(test_guest_mem_ptr_rejects_ranges_outside_ram),
		cmocka_unit_test(test_guest_mem_memfd_is_shared_and_sealed_against_resizing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
