/*
 * The VM's state and pause (vmm/vm.c) on real vCPU threads, KVM_RUN scripted
 * by the fake KVM: Created until vm__run lets the vCPUs in, Running, Paused
 * with every vCPU parked out of KVM_RUN, Shutdown once a stop is requested;
 * the -EBUSY refusals, a pause that waits for a vCPU busy in an exit, a stop
 * (request or SIGTERM) while paused, and the time spent paused.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_kvm.h"
#include "fake_vm.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define NR_VCPUS 2
#define SLOW_PORT 0x80

static int setup(void **state)
{
	struct fake_vm *r = calloc(1, sizeof(*r));
	struct err e = { 0 };

	if (!r)
		return -1;
	if (vcpu__init_signals() || fake_vm__create(&r->vm, NR_VCPUS, &e)) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	if (slow_port__register(&r->slow, &r->vm.pio, SLOW_PORT))
		return -1;
	*state = r;
	return 0;
}

/* Starts vm__pause on its own thread. */
static void pause_start(struct fake_vm *r)
{
	vm_call__start(&r->pause, vm__pause, &r->vm);
}

static bool pause_done(struct fake_vm *r)
{
	return vm_call__done(&r->pause);
}

/* Waits until vm__pause returned (a failure after FAKE_VM_WAIT_MS); returns what it returned. */
static int pause_finish(struct fake_vm *r)
{
	return vm_call__finish(&r->pause, "vm__pause did not return: a vCPU did not park");
}

/* vm__pause, which must return within FAKE_VM_WAIT_MS. */
static int pause_vm(struct fake_vm *r)
{
	pause_start(r);
	return pause_finish(r);
}

static void start(struct fake_vm *r)
{
	vm_call__start(&r->run, vm__run, &r->vm);
}

/* Waits until `cond(r, arg)` holds, for at most FAKE_VM_WAIT_MS. */
static bool wait_for(bool (*cond)(struct fake_vm *r, unsigned arg), struct fake_vm *r, unsigned arg)
{
	unsigned ms;

	for (ms = 0; ms < FAKE_VM_WAIT_MS; ms++) {
		if (cond(r, arg))
			return true;
		fake_vm__sleep_ms(1);
	}
	return cond(r, arg);
}

static bool is_state(struct fake_vm *r, unsigned state)
{
	return vm__state(&r->vm) == (enum vm_state)state;
}

/* Every vCPU entered KVM_RUN at least `n` times. */
static bool all_ran(struct fake_vm *r, unsigned n)
{
	unsigned i;

	(void)r;
	for (i = 0; i < NR_VCPUS; i++)
		if (fake_kvm__runs(i) < n)
			return false;
	return true;
}

static bool in_slow(struct fake_vm *r, unsigned unused)
{
	(void)unused;
	return slow_port__busy(&r->slow);
}

/* Starts the VM and waits until both vCPUs are in KVM_RUN. */
static void start_running(struct fake_vm *r)
{
	start(r);
	assert_true(wait_for(is_state, r, VM_STATE_RUNNING));
	assert_true(wait_for(all_ran, r, 1));
}

/* Waits for vm__run to return (it joined every vCPU thread); returns its status. */
static int finish(struct fake_vm *r)
{
	return vm_call__finish(&r->run, "vm__run did not return: a vCPU did not stop");
}

static void test_vm_state_names_are_cloud_hypervisors(void **state)
{
	(void)state;
	assert_string_equal(vm_state__name(VM_STATE_CREATED), "Created");
	assert_string_equal(vm_state__name(VM_STATE_RUNNING), "Running");
	assert_string_equal(vm_state__name(VM_STATE_PAUSED), "Paused");
	assert_string_equal(vm_state__name(VM_STATE_SHUTDOWN), "Shutdown");
}

static void test_vm_is_created_until_run_and_refuses_pause_and_resume(void **state)
{
	struct fake_vm *r = *state;

	assert_int_equal(vm__state(&r->vm), VM_STATE_CREATED);
	assert_int_equal(pause_vm(r), -EBUSY);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
	assert_int_equal(vm__state(&r->vm), VM_STATE_CREATED);
	assert_int_equal(vm__paused_ns(&r->vm), 0);
	assert_int_equal(fake_kvm__runs(0), 0);
}

static void test_vm_pause_parks_every_vcpu_out_of_kvm_run_and_resume_returns_them(void **state)
{
	struct fake_vm *r = *state;
	unsigned before[NR_VCPUS], i;
	uint64_t clock;

	fake_kvm.kvmclock = 123456789;
	start_running(r);
	assert_int_equal(pause_vm(r), 0);
	assert_int_equal(vm__state(&r->vm), VM_STATE_PAUSED);
	assert_int_equal(r->vm.parked, NR_VCPUS);
	for (i = 0; i < NR_VCPUS; i++)
		before[i] = fake_kvm__runs(i);
	fake_vm__sleep_ms(50);
	/* Parked: no vCPU entered KVM_RUN again. */
	for (i = 0; i < NR_VCPUS; i++)
		assert_int_equal(fake_kvm__runs(i), before[i]);
	assert_int_equal(fake_kvm.kvmclock_ctrl, 0);
	assert_int_equal(fake_kvm.clock_sets, 0);
	clock = r->vm.paused_clock.clock;

	assert_int_equal(vm__resume(&r->vm), 0);
	assert_int_equal(vm__state(&r->vm), VM_STATE_RUNNING);
	/* Guest time stood still: kvmclock is back at its value as the pause began. */
	assert_int_equal(fake_kvm.clock_sets, 1);
	assert_int_equal(fake_kvm.kvmclock, clock);
	assert_true(wait_for(all_ran, r, before[0] > before[1] ? before[0] + 1 : before[1] + 1));
	/* Each vCPU back from the pause told a kvmclock guest so (once). */
	assert_int_equal(fake_kvm.kvmclock_ctrl, NR_VCPUS);
	assert_int_equal(r->vm.parked, 0);

	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);
	assert_int_equal(vm__state(&r->vm), VM_STATE_SHUTDOWN);
	assert_int_equal(finish(r), 0);
}

static void test_vm_pause_when_paused_and_resume_when_running_are_busy(void **state)
{
	struct fake_vm *r = *state;

	start_running(r);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
	assert_int_equal(vm__state(&r->vm), VM_STATE_RUNNING);
	assert_int_equal(pause_vm(r), 0);
	assert_int_equal(pause_vm(r), -EBUSY);
	assert_int_equal(vm__state(&r->vm), VM_STATE_PAUSED);
	assert_int_equal(vm__resume(&r->vm), 0);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
	/* Again: a second pause and resume work as the first. */
	assert_int_equal(pause_vm(r), 0);
	assert_int_equal(vm__resume(&r->vm), 0);
	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);
	assert_int_equal(pause_vm(r), -EBUSY);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
	assert_int_equal(finish(r), 0);
	assert_int_equal(vm__state(&r->vm), VM_STATE_SHUTDOWN);
}

/* vCPU 1 takes an OUT to the slow port and stays in its handler; vCPU 0 waits in KVM_RUN. */
static void hold_vcpu1_in_an_exit(struct fake_vm *r)
{
	fake_vm__queue_out(1, SLOW_PORT);
	start_running(r);
	assert_true(wait_for(in_slow, r, 0));
}

static void test_vm_pause_waits_for_every_vcpu_even_one_busy_in_an_exit(void **state)
{
	struct fake_vm *r = *state;

	hold_vcpu1_in_an_exit(r);
	pause_start(r);
	fake_vm__sleep_ms(100);
	/* vCPU 0 parked, vCPU 1 is not: the pause is not over. */
	assert_false(pause_done(r));
	assert_int_equal(r->vm.parked, 1);
	assert_int_equal(vm__state(&r->vm), VM_STATE_RUNNING);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
	assert_int_equal(vm__pause(&r->vm), -EBUSY);  /* one pause at a time */

	slow_port__release(&r->slow);
	assert_int_equal(pause_finish(r), 0);
	assert_int_equal(vm__state(&r->vm), VM_STATE_PAUSED);
	assert_int_equal(r->vm.parked, NR_VCPUS);
	assert_int_equal(vm__resume(&r->vm), 0);
	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);
	assert_int_equal(finish(r), 0);
}

static void test_vm_stop_during_a_pause_under_way_makes_it_busy(void **state)
{
	struct fake_vm *r = *state;

	hold_vcpu1_in_an_exit(r);
	pause_start(r);
	fake_vm__sleep_ms(50);
	assert_false(pause_done(r));
	vm__request_stop(&r->vm, VM_STOP_SIGNAL, 130);
	/* The pauser gives up at once, while vCPU 1 is still in its exit. */
	assert_int_equal(pause_finish(r), -EBUSY);
	assert_true(in_slow(r, 0));
	assert_int_equal(vm__state(&r->vm), VM_STATE_SHUTDOWN);
	slow_port__release(&r->slow);
	assert_int_equal(finish(r), 130);
}

static void test_vm_stop_request_while_paused_ends_the_parked_vcpus(void **state)
{
	struct fake_vm *r = *state;
	unsigned before[NR_VCPUS], i;

	start_running(r);
	assert_int_equal(pause_vm(r), 0);
	for (i = 0; i < NR_VCPUS; i++)
		before[i] = fake_kvm__runs(i);
	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);   /* what vm.shutdown does */
	assert_int_equal(finish(r), 0);
	/* Woken by the stop, no vCPU went back into the guest. */
	for (i = 0; i < NR_VCPUS; i++)
		assert_int_equal(fake_kvm__runs(i), before[i]);
	assert_int_equal(r->vm.stop_reason, VM_STOP_POWEROFF);
	assert_int_equal(vm__state(&r->vm), VM_STATE_SHUTDOWN);
	assert_int_equal(r->vm.parked, 0);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
}

static void test_vm_sigterm_while_paused_stops_the_vm(void **state)
{
	struct fake_vm *r = *state;

	start_running(r);
	assert_int_equal(pause_vm(r), 0);
	/* vm__run's thread reads SIGTERM from its signalfd, as the monitor's main thread does. */
	assert_int_equal(pthread_kill(r->run.thread, SIGTERM), 0);
	assert_int_equal(finish(r), 128 + SIGTERM);
	assert_int_equal(r->vm.stop_reason, VM_STOP_SIGNAL);
	assert_int_equal(vm__state(&r->vm), VM_STATE_SHUTDOWN);
}

static void test_vm_paused_ns_counts_pauses_and_the_one_in_progress(void **state)
{
	struct fake_vm *r = *state;
	uint64_t a, b, first;

	start_running(r);
	fake_vm__sleep_ms(20);
	assert_int_equal(vm__paused_ns(&r->vm), 0);

	assert_int_equal(pause_vm(r), 0);
	fake_vm__sleep_ms(30);
	a = vm__paused_ns(&r->vm);
	assert_true(a >= 30000000u);
	fake_vm__sleep_ms(10);
	b = vm__paused_ns(&r->vm);
	assert_true(b >= a + 10000000u);     /* in progress: counted up to now */
	assert_int_equal(vm__resume(&r->vm), 0);

	first = vm__paused_ns(&r->vm);
	assert_true(first >= b);
	fake_vm__sleep_ms(30);
	assert_int_equal(vm__paused_ns(&r->vm), first);   /* running: not counted */

	assert_int_equal(pause_vm(r), 0);
	fake_vm__sleep_ms(20);
	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);     /* a stop ends the pause */
	a = vm__paused_ns(&r->vm);
	assert_true(a >= first + 20000000u);
	fake_vm__sleep_ms(20);
	assert_int_equal(vm__paused_ns(&r->vm), a);
	assert_int_equal(finish(r), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, fake_vm__teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_state_names_are_cloud_hypervisors),
		T(test_vm_is_created_until_run_and_refuses_pause_and_resume),
		T(test_vm_pause_parks_every_vcpu_out_of_kvm_run_and_resume_returns_them),
		T(test_vm_pause_when_paused_and_resume_when_running_are_busy),
		T(test_vm_pause_waits_for_every_vcpu_even_one_busy_in_an_exit),
		T(test_vm_stop_during_a_pause_under_way_makes_it_busy),
		T(test_vm_stop_request_while_paused_ends_the_parked_vcpus),
		T(test_vm_sigterm_while_paused_stops_the_vm),
		T(test_vm_paused_ns_counts_pauses_and_the_one_in_progress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
