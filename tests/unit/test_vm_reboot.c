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
#include "fake_vm.h"
#include "vmm/device.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define NR_VCPUS 2
#define RAM (16u << 20)
#define BOOT_RIP 0x100000ULL
#define KERNEL_LEN 0x10000ULL
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define SLOW_PORT 0x80

struct rig {
	struct fake_vm f;          /* first: fake_vm__teardown takes the rig */
	unsigned resets;           /* the test device's reset calls */
	unsigned parked_at_reset;  /* vCPUs parked when it was reset */
};

static void dev_reset(void *dev)
{
	struct rig *r = dev;

	r->parked_at_reset = r->f.vm.parked;
	__atomic_add_fetch(&r->resets, 1, __ATOMIC_RELEASE);
}

static const struct device_ops dev_ops = { .reset = dev_reset };

static uint8_t *ram(struct rig *r, uint64_t gpa)
{
	return guest_mem__ptr(&r->f.vm.mem, gpa, 1);
}

/* A VM as the builder leaves it: RAM with a "kernel", irqchip and PIT state, vcpu0's boot registers. */
static int build(struct rig *r, bool restart)
{
	struct err e = { 0 };

	fake_kvm__reset();
	if (vcpu__init_signals() || vm__create(&r->f.vm, fake_kvm__path(), NULL, &e))
		goto fail;
	r->f.vm.restart_on_reboot = restart;
	if (vm__setup_memory(&r->f.vm, RAM, &e) || vm__setup_irqchip(&r->f.vm, &e) ||
	    vm__create_vcpus(&r->f.vm, NR_VCPUS, &e))
		goto fail;
	if (device_list__add(&r->f.vm.devices, "dev", &dev_ops, r) ||
	    slow_port__register(&r->f.slow, &r->f.vm.pio, SLOW_PORT))
		return -1;
	fake_kvm.chips[2].chip.ioapic.redirtbl[0].bits = 1ULL << 16;   /* masked, as created */
	fake_kvm.pit_state.channels[0].count = 0x10000;
	fake_kvm__vcpu(1)->mp_state.mp_state = KVM_MP_STATE_UNINITIALIZED;
	r->f.vm.boot.kernel_start = BOOT_RIP;
	r->f.vm.boot.kernel_end = BOOT_RIP + KERNEL_LEN;
	memset(ram(r, BOOT_RIP), 0xcd, KERNEL_LEN);
	*ram(r, 0x7000) = 0xab;   /* the zero page */
	if (vcpu__set_boot_state(&r->f.vm.vcpus[0], BOOT_RIP, 0x7000) || vm__seal(&r->f.vm, &e))
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

static void start(struct rig *r)
{
	vm_call__start(&r->f.run, vm__run, &r->f.vm);
}

static bool wait_for(bool (*cond)(struct rig *r), struct rig *r)
{
	unsigned ms;

	for (ms = 0; ms < FAKE_VM_WAIT_MS; ms++) {
		if (cond(r))
			return true;
		fake_vm__sleep_ms(1);
	}
	return cond(r);
}

static bool all_running(struct rig *r)
{
	return vm__state(&r->f.vm) == VM_STATE_RUNNING && fake_kvm__runs(0) && fake_kvm__runs(1);
}

static bool done(struct rig *r)
{
	return vm_call__done(&r->f.run);
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
	return vm__reboots(&r->f.vm) == 1 && fake_kvm__vcpu(0)->regs.rip == BOOT_RIP &&
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
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
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

static void stop_and_finish(struct rig *r)
{
	vm__request_stop(&r->f.vm, VM_STOP_POWEROFF, 0);
	assert_int_equal(vm_call__finish(&r->f.run, "vm__run did not return: a vCPU did not stop"), 0);
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
	vm__request_stop(&r->f.vm, VM_STOP_REBOOT, 0);   /* the API's vm.reboot */
	assert_machine_reset(r, clock_sets);
	assert_int_equal(vm__reboots(&r->f.vm), 1);
	assert_false(done(r));
	/* The vCPUs enter the guest again. */
	while (fake_kvm__runs(0) <= runs0 + 1)
		fake_vm__sleep_ms(1);
	stop_and_finish(r);
}

static void test_vm_reboot_while_paused_resets_and_runs(void **state)
{
	struct rig *r = *state;

	start(r);
	assert_true(wait_for(all_running, r));
	assert_int_equal(vm__pause(&r->f.vm), 0);
	guest_runs(r);
	vm__request_stop(&r->f.vm, VM_STOP_REBOOT, 0);
	assert_true(wait_for(vcpus_reset, r));
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
	assert_int_equal(fake_kvm.kvmclock_ctrl, 0);
	assert_int_equal(vm__resume(&r->f.vm), -EBUSY);
	stop_and_finish(r);
}

static bool in_slow(struct rig *r)
{
	return slow_port__busy(&r->f.slow);
}

/* A pause waiting for a vCPU busy in an exit when a reboot comes: the reboot wins, the pause is refused. */
static void test_vm_reboot_takes_over_a_pause_under_way(void **state)
{
	struct rig *r = *state;

	fake_vm__queue_out(1, SLOW_PORT);
	start(r);
	assert_true(wait_for(in_slow, r));
	/* vm__run lets the vCPUs in before it says Running: a pause before that is refused at once. */
	assert_true(wait_for(all_running, r));
	vm_call__start(&r->f.pause, vm__pause, &r->f.vm);
	fake_vm__sleep_ms(20);
	assert_false(vm_call__done(&r->f.pause));     /* vcpu1 is not parked yet */
	vm__request_stop(&r->f.vm, VM_STOP_REBOOT, 0);
	assert_int_equal(vm_call__finish(&r->f.pause, "vm__pause did not return"), -EBUSY);
	assert_int_equal(vm__reboots(&r->f.vm), 0);   /* vcpu1 still busy: no reset yet */
	slow_port__release(&r->f.slow);
	assert_true(wait_for(vcpus_reset, r));
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
	assert_int_equal(vm__pause(&r->f.vm), 0);     /* a pause after the reboot works */
	assert_int_equal(vm__resume(&r->f.vm), 0);
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
		fake_vm__sleep_ms(1);
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
	assert_int_equal(vm_call__finish(&r->f.run, "vm__run did not return: a vCPU did not stop"), 0);
	assert_int_equal(r->f.vm.stop_reason, VM_STOP_REBOOT);
	assert_int_equal(vm__reboots(&r->f.vm), 0);
	assert_int_equal(r->resets, 0);
	assert_int_equal(fake_kvm.irqchip_sets, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vm_reboot_request_restarts_the_machine_in_place,
						setup_restart, fake_vm__teardown),
		cmocka_unit_test_setup_teardown(test_vm_reboot_while_paused_resets_and_runs,
						setup_restart, fake_vm__teardown),
		cmocka_unit_test_setup_teardown(test_vm_reboot_takes_over_a_pause_under_way,
						setup_restart, fake_vm__teardown),
		cmocka_unit_test_setup_teardown(test_vm_guest_reset_exit_restarts_and_vcpu_runs_again,
						setup_restart, fake_vm__teardown),
		cmocka_unit_test_setup_teardown(test_vm_exit_on_reboot_stops_with_status_0,
						setup_exit, fake_vm__teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
