/*
 * The vCPU loop (vmm/vcpu.c) on a real thread, KVM_RUN scripted by the fake
 * KVM: what it continues through, what stops it and with which status, and
 * the register dump. Also vm__request_stop: the first request wins.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
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

#define RIP 0xfeedf00dULL

static int setup(void **state)
{
	struct fake_vm *r = calloc(1, sizeof(*r));
	struct err e = { 0 };

	if (!r)
		return -1;
	if (fake_vm__create(&r->vm, 1, &e) || vcpu__set_boot_state(&r->vm.vcpus[0], RIP, 0x7000)) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	/* The vCPU reports on stderr: keep it. */
	if (stderr_capture__start(&r->err))
		return -1;
	*state = r;
	return 0;
}

/* What the vCPU wrote to stderr so far. */
static const char *output(struct fake_vm *r)
{
	return stderr_capture__text(&r->err);
}

static void start(struct fake_vm *r)
{
	assert_int_equal(vcpu__start(&r->vm.vcpus[0]), 0);
}

/* Joins the vCPU thread, which must end by itself within FAKE_VM_WAIT_MS. */
static void join(struct fake_vm *r)
{
	struct vcpu *v = &r->vm.vcpus[0];
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += FAKE_VM_WAIT_MS / 1000;
	if (pthread_timedjoin_np(v->thread, NULL, &until))
		fail_msg("the vCPU thread did not stop");
	v->started = false;
}

static void wait_runs(unsigned n)
{
	unsigned ms;

	for (ms = 0; fake_kvm__runs(0) < n; ms++) {
		if (ms == FAKE_VM_WAIT_MS)
			fail_msg("the vCPU entered KVM_RUN %u times, not %u", fake_kvm__runs(0), n);
		fake_vm__sleep_ms(1);
	}
}

static void assert_running(struct fake_vm *r)
{
	assert_int_equal(pthread_tryjoin_np(r->vm.vcpus[0].thread, NULL), EBUSY);
}

static void test_vcpu_eintr_and_eagain_from_kvm_run_continue(void **state)
{
	struct fake_vm *r = *state;
	struct kvm_run off = { .exit_reason = KVM_EXIT_SYSTEM_EVENT };

	off.system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
	fake_kvm__queue_errno(0, EINTR);
	fake_kvm__queue_errno(0, EAGAIN);
	fake_kvm__queue_exit(0, &off);
	start(r);
	join(r);
	assert_int_equal(fake_kvm__runs(0), 3);
	assert_int_equal(r->vm.stop_reason, VM_STOP_POWEROFF);
	assert_int_equal(r->vm.stop_status, 0);
}

static void test_vcpu_kick_stops_a_vcpu_blocked_in_kvm_run(void **state)
{
	struct fake_vm *r = *state;

	start(r);                  /* nothing scripted: KVM_RUN blocks until kicked */
	wait_runs(1);
	fake_vm__sleep_ms(20);
	assert_running(r);
	vm__request_stop(&r->vm, VM_STOP_SIGNAL, 130);
	join(r);
	assert_int_equal(r->vm.stop_reason, VM_STOP_SIGNAL);
	assert_int_equal(r->vm.stop_status, 130);
	assert_null(strstr(output(r), "registers"));
}

static void test_vcpu_dump_request_prints_registers_and_runs_on(void **state)
{
	struct fake_vm *r = *state;
	unsigned ms;

	start(r);
	wait_runs(1);
	vcpu__request_dump(&r->vm.vcpus[0]);
	wait_runs(2);              /* back in KVM_RUN after the dump */
	for (ms = 0; ms < FAKE_VM_WAIT_MS && !strstr(output(r), "RIP=00000000feedf00d"); ms++)
		fake_vm__sleep_ms(1);
	assert_non_null(strstr(output(r), "rtvmm: vcpu0 registers:"));
	assert_non_null(strstr(output(r), "RIP=00000000feedf00d"));
	assert_false(r->vm.stopping);
	assert_running(r);
	vm__request_stop(&r->vm, VM_STOP_SIGNAL, 130);
	join(r);
	assert_int_equal(r->vm.stop_status, 130);
}

static void test_vcpu_unknown_exit_stops_with_status_2_and_a_register_dump(void **state)
{
	struct fake_vm *r = *state;
	struct kvm_run odd = { .exit_reason = 0x7777 };

	fake_kvm__queue_exit(0, &odd);
	start(r);
	join(r);
	assert_int_equal(r->vm.stop_reason, VM_STOP_ERROR);
	assert_int_equal(r->vm.stop_status, 2);
	assert_non_null(strstr(output(r), "rtvmm: vcpu0: "));
	assert_non_null(strstr(output(r), "RIP=00000000feedf00d"));
}

static void test_vcpu_kvm_run_failing_otherwise_stops_with_status_2(void **state)
{
	struct fake_vm *r = *state;

	fake_kvm__queue_errno(0, EFAULT);
	start(r);
	join(r);
	assert_int_equal(fake_kvm__runs(0), 1);
	assert_int_equal(r->vm.stop_reason, VM_STOP_ERROR);
	assert_int_equal(r->vm.stop_status, 2);
	assert_non_null(strstr(output(r), "vcpu0: KVM_RUN failed: Bad address"));
	assert_non_null(strstr(output(r), "RIP=00000000feedf00d"));
}

/* ---- vm__request_stop --------------------------------------------------------------- */

static uint64_t stop_events(struct vm *vm)
{
	uint64_t n = 0;

	return read(vm->stop_efd, &n, sizeof(n)) == (ssize_t)sizeof(n) ? n : 0;
}

static void test_vm_first_stop_request_wins(void **state)
{
	struct fake_vm *r = *state;

	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);
	vm__request_stop(&r->vm, VM_STOP_ERROR, 2);
	vm__request_stop(&r->vm, VM_STOP_SIGNAL, 143);
	assert_true(r->vm.stopping);
	assert_int_equal(r->vm.stop_reason, VM_STOP_POWEROFF);
	assert_int_equal(r->vm.stop_status, 0);
	assert_int_equal(stop_events(&r->vm), 1);
}

#define STOPPERS 8

struct stopper {
	struct vm *vm;
	pthread_barrier_t *go;
	unsigned i;
};

static enum vm_stop_reason reason_of(unsigned i)
{
	static const enum vm_stop_reason reasons[] = {
		VM_STOP_POWEROFF, VM_STOP_REBOOT, VM_STOP_ERROR, VM_STOP_SIGNAL };

	return reasons[i % 4];
}

static void *stop_racer(void *arg)
{
	struct stopper *s = arg;

	pthread_barrier_wait(s->go);
	vm__request_stop(s->vm, reason_of(s->i), 10 + (int)s->i);
	return NULL;
}

static void test_vm_concurrent_stop_requests_keep_one_reason_and_its_status(void **state)
{
	struct fake_vm *r = *state;
	struct stopper s[STOPPERS];
	pthread_t t[STOPPERS];
	pthread_barrier_t go;
	unsigned round, i;

	for (round = 0; round < 200; round++) {
		r->vm.stopping = false;
		r->vm.stop_status = -1;
		pthread_barrier_init(&go, NULL, STOPPERS);
		for (i = 0; i < STOPPERS; i++) {
			s[i] = (struct stopper){ &r->vm, &go, i };
			assert_int_equal(pthread_create(&t[i], NULL, stop_racer, &s[i]), 0);
		}
		for (i = 0; i < STOPPERS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		assert_true(r->vm.stopping);
		assert_in_range(r->vm.stop_status, 10, 10 + STOPPERS - 1);
		/* reason and status come from the same (first) request, told once */
		assert_int_equal(r->vm.stop_reason, reason_of((unsigned)r->vm.stop_status - 10));
		assert_int_equal(stop_events(&r->vm), 1);
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, fake_vm__teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_vcpu_eintr_and_eagain_from_kvm_run_continue),
		T(test_vcpu_kick_stops_a_vcpu_blocked_in_kvm_run),
		T(test_vcpu_dump_request_prints_registers_and_runs_on),
		T(test_vcpu_unknown_exit_stops_with_status_2_and_a_register_dump),
		T(test_vcpu_kvm_run_failing_otherwise_stops_with_status_2),
		T(test_vm_first_stop_request_wins),
		T(test_vm_concurrent_stop_requests_keep_one_reason_and_its_status),
	};

	if (vcpu__init_signals())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
