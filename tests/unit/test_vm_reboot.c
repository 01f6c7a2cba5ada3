/*
 * A reboot in place (vmm/vm.c, vm.restart_on_reboot) on real vCPU threads against the fake KVM:
 * a reset request (the API's, or a guest's KVM_SYSTEM_EVENT_RESET) parks every vCPU, resets the
 * devices, puts back the irqchip, the PIT, the guest RAM the builder wrote and kvmclock as
 * vm__seal found them, and each vCPU's registers, MSRs, LAPIC and MP state as it had them before
 * it first ran; the VM stays Running with one reboot counted. Without restart_on_reboot a reset
 * stops the VM with status 0.
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

#include <cmocka.h>

#include "fake_kvm.h"
#include "vmm/device.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define NR_VCPUS 2
#define WAIT_MS 5000
#define RAM (16u << 20)
#define BOOT_RIP 0x100000ULL
#define KERNEL_LEN 0x10000ULL
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define SLOW_PORT 0x80

struct rig {
	struct vm vm;
	pthread_t runner;
	bool running;
	int status;
	bool done;
	unsigned resets;           /* the test device's reset calls */
	unsigned parked_at_reset;  /* vCPUs parked when it was reset */
	bool in_slow;              /* a vCPU is inside the slow port's handler */
	bool release_slow;         /* the slow port's handler may return */
	int pause_ret;             /* what vm__pause returned on the pauser thread */
	bool pause_done;
};

static void sleep_ms(unsigned ms)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void dev_reset(void *dev)
{
	struct rig *r = dev;

	r->parked_at_reset = r->vm.parked;
	__atomic_add_fetch(&r->resets, 1, __ATOMIC_RELEASE);
}

static const struct device_ops dev_ops = { .reset = dev_reset };

/* A port whose write holds its vCPU until the test releases it. */
static void slow_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct rig *r = dev;

	(void)off, (void)data, (void)len;
	__atomic_store_n(&r->in_slow, true, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->release_slow, __ATOMIC_ACQUIRE))
		sleep_ms(1);
	__atomic_store_n(&r->in_slow, false, __ATOMIC_RELEASE);
}

static void slow_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	(void)dev, (void)off;
	memset(data, 0xff, len);
}

static const struct io_ops slow_ops = { .read = slow_read, .write = slow_write };

static uint8_t *ram(struct rig *r, uint64_t gpa)
{
	return guest_mem__ptr(&r->vm.mem, gpa, 1);
}

/* A VM as the builder leaves it: RAM with a "kernel", irqchip and PIT state, vcpu0's boot registers. */
static int build(struct rig *r, bool restart)
{
	struct err e = { 0 };

	fake_kvm__reset();
	if (vcpu__init_signals() || vm__create(&r->vm, fake_kvm__path(), NULL, &e))
		goto fail;
	r->vm.restart_on_reboot = restart;
	if (vm__setup_memory(&r->vm, RAM, &e) || vm__setup_irqchip(&r->vm, &e) ||
	    vm__create_vcpus(&r->vm, NR_VCPUS, &e))
		goto fail;
	if (device_list__add(&r->vm.devices, "dev", &dev_ops, r) ||
	    bus__register(&r->vm.pio, SLOW_PORT, 1, &slow_ops, r, "slow"))
		return -1;
	fake_kvm.chips[2].chip.ioapic.redirtbl[0].bits = 1ULL << 16;   /* masked, as created */
	fake_kvm.pit_state.channels[0].count = 0x10000;
	fake_kvm__vcpu(1)->mp_state.mp_state = KVM_MP_STATE_UNINITIALIZED;
	r->vm.boot.kernel_start = BOOT_RIP;
	r->vm.boot.kernel_end = BOOT_RIP + KERNEL_LEN;
	memset(ram(r, BOOT_RIP), 0xcd, KERNEL_LEN);
	*ram(r, 0x7000) = 0xab;   /* the zero page */
	if (vcpu__set_boot_state(&r->vm.vcpus[0], BOOT_RIP, 0x7000) || vm__seal(&r->vm, &e))
		goto fail;
	return 0;
fail:
	fprintf(stderr, "setup: %s\n", e.msg);
	return -1;
}

static int setup_restart(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	*state = r;
	return r ? build(r, true) : -1;
}

static int setup_exit(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	*state = r;
	return r ? build(r, false) : -1;
}

static void *runner(void *arg)
{
	struct rig *r = arg;

	r->status = vm__run(&r->vm);
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void start(struct rig *r)
{
	assert_int_equal(pthread_create(&r->runner, NULL, runner, r), 0);
	r->running = true;
}

static bool wait_for(bool (*cond)(struct rig *r), struct rig *r)
{
	unsigned ms;

	for (ms = 0; ms < WAIT_MS; ms++) {
		if (cond(r))
			return true;
		sleep_ms(1);
	}
	return cond(r);
}

static bool all_running(struct rig *r)
{
	return vm__state(&r->vm) == VM_STATE_RUNNING && fake_kvm__runs(0) && fake_kvm__runs(1);
}

static bool done(struct rig *r)
{
	return __atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
}

static uint64_t msr(unsigned vcpu, uint32_t index)
{
	const struct fake_kvm_vcpu *v = fake_kvm__vcpu(vcpu);
	unsigned i;

	for (i = 0; i < v->nr_msrs; i++)
		if (v->msrs[i].index == index)
			return v->msrs[i].data;
	return 0;
}

/* Both vCPUs are back in their boot state (each puts it back itself before KVM_RUN). */
static bool vcpus_reset(struct rig *r)
{
	(void)r;
	return vm__reboots(&r->vm) == 1 && fake_kvm__vcpu(0)->regs.rip == BOOT_RIP &&
	       fake_kvm__vcpu(1)->mp_state.mp_state == KVM_MP_STATE_UNINITIALIZED &&
	       msr(0, MSR_KVM_SYSTEM_TIME_NEW) == 0 && fake_kvm__vcpu(1)->lapic.regs[0x20] == 0;
}

/* What a guest changes as it runs: registers, kvmclock MSR, APs started, interrupt state, RAM. */
static void guest_runs(struct rig *r)
{
	struct fake_kvm_vcpu *v0 = fake_kvm__vcpu(0), *v1 = fake_kvm__vcpu(1);

	v0->regs.rip = 0xdead0;
	v0->msrs[v0->nr_msrs++] = (struct kvm_msr_entry){ .index = MSR_KVM_SYSTEM_TIME_NEW, .data = 0x5001 };
	v1->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
	v1->lapic.regs[0x20] = 0x01;
	fake_kvm.chips[2].chip.ioapic.redirtbl[0].bits = 0x31;
	fake_kvm.pit_state.channels[0].count = 0x1234;
	fake_kvm.kvmclock = 5000000000ULL;
	memset(ram(r, BOOT_RIP + 0x100), 0x00, 0x100);
	*ram(r, 0x7000) = 0;
}

static void assert_machine_reset(struct rig *r, unsigned clock_sets_before)
{
	assert_true(wait_for(vcpus_reset, r));
	assert_int_equal(vm__state(&r->vm), VM_STATE_RUNNING);
	assert_int_equal(r->resets, 1);
	assert_int_equal(r->parked_at_reset, NR_VCPUS);
	assert_int_equal(fake_kvm.irqchip_sets, 3);
	assert_int_equal(fake_kvm.chips[2].chip.ioapic.redirtbl[0].bits, 1ULL << 16);
	assert_int_equal(fake_kvm.pit_sets, 1);
	assert_int_equal(fake_kvm.pit_state.channels[0].count, 0x10000);
	assert_int_equal(fake_kvm.clock_sets, clock_sets_before + 1);
	assert_int_equal(*ram(r, 0x7000), 0xab);
	assert_int_equal(*ram(r, BOOT_RIP + 0x180), 0xcd);
	assert_int_equal(fake_kvm__vcpu(0)->regs.rip, BOOT_RIP);
	/* No "guest stopped" into the old kernel's kvmclock page, which is the new kernel's RAM now. */
	assert_int_equal(fake_kvm.kvmclock_ctrl, 0);
}

static int teardown(void **state)
{
	struct rig *r = *state;

	__atomic_store_n(&r->release_slow, true, __ATOMIC_RELEASE);
	if (r->running) {
		vm__request_stop(&r->vm, VM_STOP_ERROR, 1);
		pthread_join(r->runner, NULL);
	}
	vm__destroy(&r->vm);
	if (fake_kvm.violations)
		fprintf(stderr, "fake KVM: %s\n", fake_kvm.why);
	assert_int_equal(fake_kvm.violations, 0);
	free(r);
	return 0;
}

static void stop_and_finish(struct rig *r)
{
	vm__request_stop(&r->vm, VM_STOP_POWEROFF, 0);
	assert_true(wait_for(done, r));
	pthread_join(r->runner, NULL);
	r->running = false;
	assert_int_equal(r->status, 0);
}

static void test_vm_reboot_request_restarts_the_machine_in_place(void **state)
{
	struct rig *r = *state;
	unsigned runs0, clock_sets;

	start(r);
	assert_true(wait_for(all_running, r));
	guest_runs(r);
	runs0 = fake_kvm__runs(0);
	clock_sets = fake_kvm.clock_sets;
	vm__request_stop(&r->vm, VM_STOP_REBOOT, 0);   /* the API's vm.reboot */
	assert_machine_reset(r, clock_sets);
	assert_int_equal(vm__reboots(&r->vm), 1);
	assert_false(done(r));
	/* The vCPUs enter the guest again. */
	while (fake_kvm__runs(0) <= runs0 + 1)
		sleep_ms(1);
	stop_and_finish(r);
}

static void test_vm_reboot_while_paused_resets_and_runs(void **state)
{
	struct rig *r = *state;

	start(r);
	assert_true(wait_for(all_running, r));
	assert_int_equal(vm__pause(&r->vm), 0);
	guest_runs(r);
	vm__request_stop(&r->vm, VM_STOP_REBOOT, 0);
	assert_true(wait_for(vcpus_reset, r));
	assert_int_equal(vm__state(&r->vm), VM_STATE_RUNNING);
	assert_int_equal(fake_kvm.kvmclock_ctrl, 0);
	assert_int_equal(vm__resume(&r->vm), -EBUSY);
	stop_and_finish(r);
}

static bool in_slow(struct rig *r)
{
	return __atomic_load_n(&r->in_slow, __ATOMIC_ACQUIRE);
}

static bool pause_returned(struct rig *r)
{
	return __atomic_load_n(&r->pause_done, __ATOMIC_ACQUIRE);
}

static void *pauser(void *arg)
{
	struct rig *r = arg;

	r->pause_ret = vm__pause(&r->vm);
	__atomic_store_n(&r->pause_done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* A pause waiting for a vCPU busy in an exit when a reboot comes: the reboot wins, the pause is refused. */
static void test_vm_reboot_takes_over_a_pause_under_way(void **state)
{
	struct rig *r = *state;
	struct kvm_run out = { .exit_reason = KVM_EXIT_IO };
	pthread_t t;

	out.io.direction = KVM_EXIT_IO_OUT;
	out.io.size = 1;
	out.io.port = SLOW_PORT;
	out.io.count = 1;
	out.io.data_offset = 2048;
	fake_kvm__queue_exit(1, &out);
	start(r);
	assert_true(wait_for(in_slow, r));
	assert_int_equal(pthread_create(&t, NULL, pauser, r), 0);
	sleep_ms(20);
	assert_false(pause_returned(r));                /* vcpu1 is not parked yet */
	vm__request_stop(&r->vm, VM_STOP_REBOOT, 0);
	assert_true(wait_for(pause_returned, r));
	pthread_join(t, NULL);
	assert_int_equal(r->pause_ret, -EBUSY);
	assert_int_equal(vm__reboots(&r->vm), 0);        /* vcpu1 still busy: no reset yet */
	__atomic_store_n(&r->release_slow, true, __ATOMIC_RELEASE);
	assert_true(wait_for(vcpus_reset, r));
	assert_int_equal(vm__state(&r->vm), VM_STATE_RUNNING);
	assert_int_equal(vm__pause(&r->vm), 0);         /* a pause after the reboot works */
	assert_int_equal(vm__resume(&r->vm), 0);
	stop_and_finish(r);
}

static void test_vm_guest_reset_exit_restarts_and_vcpu_runs_again(void **state)
{
	struct rig *r = *state;
	struct kvm_run reset = { .exit_reason = KVM_EXIT_SYSTEM_EVENT };

	reset.system_event.type = KVM_SYSTEM_EVENT_RESET;
	fake_kvm__queue_exit(0, &reset);
	start(r);
	assert_true(wait_for(vcpus_reset, r));
	assert_int_equal(r->resets, 1);
	while (fake_kvm__runs(0) < 3)   /* the reset exit, the completing entry, the guest again */
		sleep_ms(1);
	assert_false(done(r));
	stop_and_finish(r);
}

static void test_vm_exit_on_reboot_stops_with_status_0(void **state)
{
	struct rig *r = *state;
	struct kvm_run reset = { .exit_reason = KVM_EXIT_SYSTEM_EVENT };

	reset.system_event.type = KVM_SYSTEM_EVENT_RESET;
	fake_kvm__queue_exit(0, &reset);
	start(r);
	assert_true(wait_for(done, r));
	pthread_join(r->runner, NULL);
	r->running = false;
	assert_int_equal(r->status, 0);
	assert_int_equal(r->vm.stop_reason, VM_STOP_REBOOT);
	assert_int_equal(vm__reboots(&r->vm), 0);
	assert_int_equal(r->resets, 0);
	assert_int_equal(fake_kvm.irqchip_sets, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vm_reboot_request_restarts_the_machine_in_place,
						setup_restart, teardown),
		cmocka_unit_test_setup_teardown(test_vm_reboot_while_paused_resets_and_runs,
						setup_restart, teardown),
		cmocka_unit_test_setup_teardown(test_vm_reboot_takes_over_a_pause_under_way,
						setup_restart, teardown),
		cmocka_unit_test_setup_teardown(test_vm_guest_reset_exit_restarts_and_vcpu_runs_again,
						setup_restart, teardown),
		cmocka_unit_test_setup_teardown(test_vm_exit_on_reboot_stops_with_status_0,
						setup_exit, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
