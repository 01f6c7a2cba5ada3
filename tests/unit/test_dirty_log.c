/*
 * A live migration's dirty pages (vm__take_dirty) on the fake KVM: what the
 * guest's vCPUs wrote (KVM_GET_DIRTY_LOG per memslot, or KVM's dirty ring per
 * vCPU) and what the monitor's devices and vhost-user backends wrote (guest
 * RAM's own log, guest_mem.h), in one bitmap by memfd offset, with RAM on
 * both sides of the PCI hole.
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
#include "vmm/exit.h"
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

/* A VM of LOW + HIGH RAM with an irqchip and two vCPUs, KVM's dirty ring of `entries` on. */
static struct vm *ring_vm(uint32_t entries)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct err e = { 0 };

	fake_kvm__reset();
	assert_non_null(vm);
	assert_int_equal(vm__create(vm, fake_kvm__path(), NULL, &e), 0);
	assert_int_equal(vm__setup_memory(vm, LOW + HIGH, &e), 0);
	assert_int_equal(vm__setup_irqchip(vm, &e), 0);
	assert_int_equal(vm__dirty_ring(vm, entries, &e), 0);
	assert_int_equal(vm__create_vcpus(vm, 2, &e), 0);
	assert_int_equal(fake_kvm.ring_bytes, entries * sizeof(struct kvm_dirty_gfn));
	return vm;
}

static void test_ring_take_gathers_every_vcpus_writes_and_gives_the_entries_back(void **state)
{
	struct vm *vm = ring_vm(1024);
	uint64_t *bits = calloc((vm->mem.size / PAGE + 63) / 64, 8);
	unsigned i;

	(void)state;
	assert_non_null(bits);
	/* Not logging yet: KVM appends nothing. */
	assert_int_equal(fake_kvm__ring_push(0, 0, 3), -1);
	assert_int_equal(vm__dirty_log(vm, true), 0);
	assert_int_equal(fake_kvm__ring_push(0, 0, 7), 0);
	assert_int_equal(fake_kvm__ring_push(1, 1, 2), 0);
	assert_int_equal(fake_kvm__ring_push(1, 0, 7), 0);
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 2);
	assert_true(has(bits, 7 * PAGE) && has(bits, LOW + 2 * PAGE));
	/* Every entry was given back; KVM_GET_DIRTY_LOG (refused with a ring) never called. */
	assert_int_equal(fake_kvm.ring_reset_entries, 3);
	memset(bits, 0, (vm->mem.size / PAGE + 63) / 64 * 8);
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 0);
	/* The ring wraps: four times its size in writes, taken as they come. */
	for (i = 0; i < 4 * 1024; i++) {
		assert_int_equal(fake_kvm__ring_push(0, 0, i % 100), 0);
		if (i % 100 == 99)
			assert_int_equal(vm__take_dirty(vm, bits), 0);
	}
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 100);
	assert_int_equal(fake_kvm.ring_reset_entries, 3 + 4 * 1024);
	assert_int_equal(vm__dirty_log(vm, false), 0);
	assert_int_equal(fake_kvm.violations, 0);
	free(bits);
	vm__destroy(vm);
	free(vm);
}

static struct vm *reset_vm;
static uint64_t reset_page;
static unsigned published_before_reset;

/* fake_kvm.on_ring_reset: was the page already where a migration copies from? */
static void check_unpublished(void)
{
	uint64_t *bits = reset_vm->rings.bits;

	if (bits && bits[reset_page / 64] >> (reset_page % 64) & 1)
		published_before_reset++;
}

static void test_a_full_ring_is_harvested_by_its_vcpu_and_published_only_once_given_back(void **state)
{
	struct vm *vm = ring_vm(1024);
	uint64_t *bits = calloc((vm->mem.size / PAGE + 63) / 64, 8);
	struct kvm_run run = { .exit_reason = KVM_EXIT_DIRTY_RING_FULL };
	struct exit_stop stop = { 0 };
	unsigned i;
	int full = 0;

	(void)state;
	assert_non_null(bits);
	assert_int_equal(vm__dirty_log(vm, true), 0);
	for (i = 0; !full; i++)
		full = fake_kvm__ring_push(1, 1, i);
	assert_int_equal(i, 1024 - 576);
	reset_vm = vm;
	reset_page = LOW / PAGE + 5;
	published_before_reset = 0;
	fake_kvm.on_ring_reset = check_unpublished;
	/* vCPU 1's thread at the exit: it harvests its own ring and goes on. */
	assert_int_equal(exit__handle(&vm->vcpus[1].exits, &run, &stop), EXIT_CONTINUE);
	assert_int_equal(fake_kvm.ring_reset_entries, 1024 - 576);
	assert_int_equal(published_before_reset, 0);
	assert_int_equal(fake_kvm__ring_push(1, 1, 0), 0);
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 1024 - 576);
	assert_true(has(bits, LOW) && has(bits, LOW + (1024 - 577) * PAGE));
	fake_kvm.on_ring_reset = NULL;
	assert_int_equal(vm__dirty_log(vm, false), 0);
	assert_int_equal(fake_kvm.violations, 0);
	free(bits);
	vm__destroy(vm);
	free(vm);
}

static void test_a_vcpu_without_a_ring_stops_at_a_full_ring_exit(void **state)
{
	struct kvm_run run = { .exit_reason = KVM_EXIT_DIRTY_RING_FULL };
	struct exit_ctx ctx = { 0 };
	struct exit_stop stop = { 0 };

	(void)state;
	assert_int_equal(exit__handle(&ctx, &run, &stop), EXIT_STOP);
	assert_non_null(strstr(stop.why, "KVM_EXIT_DIRTY_RING_FULL"));
}

static void test_what_a_previous_log_left_in_a_ring_is_not_the_next_ones(void **state)
{
	struct vm *vm = ring_vm(2048);
	uint64_t *bits = calloc((vm->mem.size / PAGE + 63) / 64, 8);

	(void)state;
	assert_non_null(bits);
	assert_int_equal(vm__dirty_log(vm, true), 0);
	assert_int_equal(fake_kvm__ring_push(0, 0, 9), 0);
	assert_int_equal(vm__dirty_log(vm, false), 0);
	assert_int_equal(vm__dirty_log(vm, true), 0);
	assert_int_equal(fake_kvm__ring_push(0, 0, 11), 0);
	assert_int_equal(vm__take_dirty(vm, bits), 0);
	assert_int_equal(pages_in(bits, vm->mem.size), 1);
	assert_true(has(bits, 11 * PAGE));
	assert_int_equal(fake_kvm.violations, 0);
	free(bits);
	vm__destroy(vm);
	free(vm);
}

static void test_the_ring_is_refused_with_the_reason(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct err e = { 0 };

	(void)state;
	fake_kvm__reset();
	assert_int_equal(vm__create(vm, fake_kvm__path(), NULL, &e), 0);
	assert_int_equal(vm__dirty_ring(vm, 300, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "power of two"));
	assert_int_equal(vm__dirty_ring(vm, 512, &e), -EINVAL);
	fake_kvm.dirty_ring_lacking = true;
	assert_int_equal(vm__dirty_ring(vm, 4096, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "KVM_CAP_DIRTY_LOG_RING"));
	assert_int_equal(vm->rings.entries, 0);
	assert_int_equal(fake_kvm.violations, 0);
	vm__destroy(vm);
	free(vm);
	vm = ring_vm(1024);
	assert_int_equal(vm__dirty_ring(vm, 1024, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "before the first vCPU"));
	vm__destroy(vm);
	free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_dirty_merges_kvms_log_with_the_devices_by_memfd_offset),
		cmocka_unit_test(test_ring_take_gathers_every_vcpus_writes_and_gives_the_entries_back),
		cmocka_unit_test(test_a_full_ring_is_harvested_by_its_vcpu_and_published_only_once_given_back),
		cmocka_unit_test(test_a_vcpu_without_a_ring_stops_at_a_full_ring_exit),
		cmocka_unit_test(test_what_a_previous_log_left_in_a_ring_is_not_the_next_ones),
		cmocka_unit_test(test_the_ring_is_refused_with_the_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
