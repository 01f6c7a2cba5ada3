/*
 * The placement proof (app/placement.c) on real vCPU threads of a VM built
 * on the fake KVM: vcpus_started waits until every vCPU thread placed itself,
 * then proves the kernel's view against the plan, and reports a plan the
 * threads could not get. Policy OTHER on the cpus we already have: no privilege.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "app/placement.h"
#include "fake_kvm.h"
#include "vmm/vm.h"

#define NR_VCPUS 2
#define WAIT_S 5

struct rig {
	struct plan_sched sched[NR_VCPUS];
	struct plan_vm plan;
	struct placement p;
	struct vm_hooks hooks;
	struct vm vm;
	/* vcpus_started, called on its own thread */
	pthread_t prover;
	int proof;
	bool proved;
};

static void sleep_ms(unsigned ms)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A VM whose plan pins every vCPU, policy OTHER, to `cpus`. */
static void rig_init(struct rig *r, const cpu_set_t *cpus)
{
	struct err e = { 0 };
	unsigned i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < NR_VCPUS; i++)
		r->sched[i] = (struct plan_sched){ .cpus = *cpus, .policy = RT_POLICY_OTHER,
						   .loc = { .line = 10 + i, .key = "cpus" } };
	strcpy(r->plan.name, "vm0");
	r->plan.nr_vcpus = NR_VCPUS;
	r->plan.vcpus = r->sched;
	placement__init(&r->p, &r->plan);
	r->hooks = placement__hooks(&r->p);
	fake_kvm__reset();
	if (vm__create(&r->vm, fake_kvm__path(), &r->hooks, &e) || vm__setup_irqchip(&r->vm, &e) ||
	    vm__create_vcpus(&r->vm, NR_VCPUS, &e))
		fail_msg("%s", e.msg);
}

static void *prove(void *arg)
{
	struct rig *r = arg;
	int proof = r->hooks.vcpus_started(r->hooks.opaque, &r->vm);

	r->proof = proof;
	__atomic_store_n(&r->proved, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool proved(struct rig *r)
{
	return __atomic_load_n(&r->proved, __ATOMIC_ACQUIRE);
}

static void wait_proof(struct rig *r)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	if (pthread_timedjoin_np(r->prover, NULL, &until))
		fail_msg("vcpus_started did not return once every vCPU had started");
}

/* Stops the vCPU threads (blocked in the fake KVM_RUN) and drops everything. */
static void rig_exit(struct rig *r)
{
	unsigned i;

	vm__request_stop(&r->vm, VM_STOP_SIGNAL, 130);
	for (i = 0; i < NR_VCPUS; i++)
		if (r->vm.vcpus[i].started) {
			pthread_join(r->vm.vcpus[i].thread, NULL);
			r->vm.vcpus[i].started = false;
		}
	vm__destroy(&r->vm);
	placement__fini(&r->p);
	assert_int_equal(fake_kvm.violations, 0);
}

static void test_placement_proof_waits_for_every_vcpu_then_holds(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	cpu_set_t mine;

	(void)state;
	assert_non_null(r);
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	rig_init(r, &mine);
	assert_int_equal(pthread_create(&r->prover, NULL, prove, r), 0);
	sleep_ms(50);
	assert_false(proved(r));               /* no vCPU started */
	assert_int_equal(vcpu__start(&r->vm.vcpus[0]), 0);
	sleep_ms(50);
	assert_false(proved(r));               /* one of two */
	assert_int_equal(vcpu__start(&r->vm.vcpus[1]), 0);
	wait_proof(r);
	assert_int_equal(r->proof, 0);
	assert_false(r->vm.stopping);
	rig_exit(r);
	free(r);
}

static void test_placement_proof_reports_a_cpu_the_threads_could_not_get(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	cpu_set_t want;
	unsigned i;

	(void)state;
	assert_non_null(r);
	assert_int_equal(sched_getaffinity(0, sizeof(want), &want), 0);
	CPU_SET(CPU_SETSIZE - 1, &want);       /* no machine here has it */
	rig_init(r, &want);
	assert_int_equal(pthread_create(&r->prover, NULL, prove, r), 0);
	for (i = 0; i < NR_VCPUS; i++)
		assert_int_equal(vcpu__start(&r->vm.vcpus[i]), 0);
	wait_proof(r);
	assert_int_equal(r->proof, -EINVAL);
	assert_true(r->vm.stopping);           /* a vCPU that could not place itself stops the VM */
	assert_int_equal(r->vm.stop_status, 1);
	rig_exit(r);
	free(r);
}

static void test_placement_proof_reads_the_kernel_not_the_plan(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	cpu_set_t mine, one;
	unsigned placed = 0;

	(void)state;
	assert_non_null(r);
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	if (CPU_COUNT(&mine) < 2) {
		free(r);
		skip();
	}
	rig_init(r, &mine);
	assert_int_equal(vcpu__start(&r->vm.vcpus[0]), 0);
	assert_int_equal(vcpu__start(&r->vm.vcpus[1]), 0);
	while (placed < NR_VCPUS) {
		sleep_ms(1);
		pthread_mutex_lock(&r->p.lock);
		placed = r->p.nr_placed;
		pthread_mutex_unlock(&r->p.lock);
	}
	/* Placed as planned; then something moves vcpu1 to one cpu behind the plan's back. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(r->vm.vcpus[1].tid, sizeof(one), &one), 0);
	assert_int_equal(pthread_create(&r->prover, NULL, prove, r), 0);
	wait_proof(r);
	assert_int_equal(r->proof, -EINVAL);
	rig_exit(r);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement_proof_waits_for_every_vcpu_then_holds),
		cmocka_unit_test(test_placement_proof_reports_a_cpu_the_threads_could_not_get),
		cmocka_unit_test(test_placement_proof_reads_the_kernel_not_the_plan),
	};

	if (vcpu__init_signals())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
