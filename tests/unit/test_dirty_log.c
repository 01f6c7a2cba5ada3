/*
 * A live migration's dirty pages (vm__take_dirty) on the fake KVM: what the
 * guest's vCPUs wrote (KVM_GET_DIRTY_LOG per memslot) and what the monitor's
 * devices and vhost-user backends wrote (guest RAM's own log, guest_mem.h),
 * in one bitmap by memfd offset, with RAM on both sides of the PCI hole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_kvm.h"
#include "vmm/vm.h"

#define PAGE 4096ull
#define LOW  GUEST_PCI_HOLE_START     /* 3 GiB below the hole */
#define HIGH (8ull << 20)             /* 8 MiB from 4 GiB (memfd offset 3 GiB) */

static unsigned pages_in(const uint64_t *bits, uint64_t size)
{
	unsigned n = 0;
	uint64_t w;

	for (w = 0; w < (size / PAGE + 63) / 64; w++)
		n += (unsigned)__builtin_popcountll(bits[w]);
	return n;
}

static bool has(const uint64_t *bits, uint64_t memfd_off)
{
	return bits[memfd_off / PAGE / 64] >> (memfd_off / PAGE % 64) & 1;
}

static void test_take_dirty_merges_kvms_log_with_the_devices_by_memfd_offset(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	uint64_t *bits, words;
	struct err e = { 0 };

	(void)state;
	fake_kvm__reset();
	assert_int_equal(vm__create(vm, fake_kvm__path(), NULL, &e), 0);
	assert_int_equal(vm__setup_memory(vm, LOW + HIGH, &e), 0);
	assert_int_equal(vm->mem.nr_regions, 2);
	words = (vm->mem.size / PAGE + 63) / 64;
	bits = calloc(words, 8);
	assert_non_null(bits);
	assert_int_equal(vm__dirty_log(vm, true), 0);
	assert_int_equal(guest_mem__log_start(&vm->mem), 0);

	/* vCPUs wrote page 7 of slot 0 and page 2 of slot 1 (gpa 4 GiB + 8 KiB). */
	fake_kvm.dirty[0] = 1ull << 7;
	fake_kvm.dirty[1] = 1ull << 2;
	/* A device wrote gpa 0x5000; a backend the high region's fourth page, and page 7 too. */
	guest_mem__log_write(&vm->mem, 0x5000, 16);
	guest_mem__log_write(&vm->mem, GUEST_PCI_HOLE_END + 3 * PAGE, 1);
	guest_mem__log_write(&vm->mem, 7 * PAGE, 1);
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 4);
	assert_true(has(bits, 0x5000) && has(bits, 7 * PAGE));
	assert_true(has(bits, LOW + 2 * PAGE) && has(bits, LOW + 3 * PAGE));
	/* Both logs were cleared: nothing more until the next writes. */
	memset(bits, 0, words * 8);
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 0);
	/* The devices' log off: KVM's alone. */
	guest_mem__log_stop(&vm->mem);
	guest_mem__log_write(&vm->mem, 0x5000, 16);
	fake_kvm.dirty[0] = 1ull << 9;
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 1);
	assert_true(has(bits, 9 * PAGE));
	assert_int_equal(vm__dirty_log(vm, false), 0);
	assert_int_equal(fake_kvm.slots[0].flags, 0);
	assert_int_equal(fake_kvm.violations, 0);
	free(bits);
	vm__destroy(vm);
	free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_dirty_merges_kvms_log_with_the_devices_by_memfd_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
