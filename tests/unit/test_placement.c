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
#include <unistd.h>

#include <cmocka.h>

#include "app/placement.h"
#include "fake_kvm.h"
#include "vmm/vm.h"

#define NR_VCPUS 2
#define WAIT_S 5

struct rig {
	struct plan_sched sched[NR_VCPUS];
	struct plan_disk disk;
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

/* A VM whose plan pins every vCPU, policy OTHER, to `cpus`, and has one disk (io: `cpus`). */
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
	strcpy(r->disk.name, "disk0");
	r->disk.io = (struct plan_sched){ .cpus = *cpus, .policy = RT_POLICY_OTHER,
					  .loc = { .line = 20, .key = "vm.disks[0].io.cpus" } };
	r->plan.nr_disks = 1;
	r->plan.disks = &r->disk;
	placement__init(&r->p, &r->plan, "plan.yaml");
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

/* A stand-in for a disk's I/O thread: a thread of ours that waits until told to go. */
struct io_thread {
	pthread_t thread;
	pid_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

static void *io_thread_main(void *arg)
{
	struct io_thread *t = arg;

	pthread_mutex_lock(&t->lock);
	t->tid = gettid();
	pthread_cond_broadcast(&t->cond);
	while (!t->stop)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void io_thread_start(struct io_thread *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	assert_int_equal(pthread_create(&t->thread, NULL, io_thread_main, t), 0);
	pthread_mutex_lock(&t->lock);
	while (!t->tid)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

static void io_thread_stop(struct io_thread *t)
{
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

/*
 * A disk's I/O thread is placed on its io cpus before the vCPUs run, and the proof reads it
 * back from the kernel: as planned it holds; moved behind the plan's back it fails.
 */
static void test_placement_places_and_proves_the_disk_io_thread(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct io_thread io;
	struct err e = { 0 };
	cpu_set_t mine, one, got;
	unsigned i;

	(void)state;
	assert_non_null(r);
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	rig_init(r, &mine);
	r->disk.io.cpus = one;
	io_thread_start(&io);
	assert_int_equal(placement__place_io(&r->p, 0, "disk0", io.tid, &e), 0);
	assert_int_equal(sched_getaffinity(io.tid, sizeof(got), &got), 0);
	assert_true(CPU_EQUAL(&got, &one));    /* applied at once, before any vCPU runs */
	assert_int_equal(r->p.io_tids[0], io.tid);
	for (i = 0; i < NR_VCPUS; i++)
		assert_int_equal(vcpu__start(&r->vm.vcpus[i]), 0);
	assert_int_equal(pthread_create(&r->prover, NULL, prove, r), 0);
	wait_proof(r);
	assert_int_equal(r->proof, 0);
	rig_exit(r);

	if (CPU_COUNT(&mine) >= 2) {
		rig_init(r, &mine);
		r->disk.io.cpus = one;
		assert_int_equal(placement__place_io(&r->p, 0, "disk0", io.tid, &e), 0);
		assert_int_equal(sched_setaffinity(io.tid, sizeof(mine), &mine), 0);
		for (i = 0; i < NR_VCPUS; i++)
			assert_int_equal(vcpu__start(&r->vm.vcpus[i]), 0);
		assert_int_equal(pthread_create(&r->prover, NULL, prove, r), 0);
		wait_proof(r);
		assert_int_equal(r->proof, -EINVAL);
		rig_exit(r);
	}
	io_thread_stop(&io);
	free(r);
}

/* An I/O thread that cannot get its planned cpus fails the build, naming the disk and key. */
static void test_placement_io_thread_on_a_missing_cpu_is_an_error(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct io_thread io;
	struct err e = { 0 };
	cpu_set_t mine;

	(void)state;
	assert_non_null(r);
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	rig_init(r, &mine);
	CPU_ZERO(&r->disk.io.cpus);
	CPU_SET(CPU_SETSIZE - 1, &r->disk.io.cpus);
	io_thread_start(&io);
	assert_int_equal(placement__place_io(&r->p, 0, "disk0", io.tid, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "disk0 I/O thread (vm.disks[0].io.cpus): "));
	assert_int_equal(r->p.io_tids[0], 0);
	assert_int_equal(placement__place_io(&r->p, 1, "disk1", io.tid, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "disk1: no disk 1 in the plan of vm 'vm0'"));
	io_thread_stop(&io);
	rig_exit(r);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement_proof_waits_for_every_vcpu_then_holds),
		cmocka_unit_test(test_placement_proof_reports_a_cpu_the_threads_could_not_get),
		cmocka_unit_test(test_placement_proof_reads_the_kernel_not_the_plan),
		cmocka_unit_test(test_placement_places_and_proves_the_disk_io_thread),
		cmocka_unit_test(test_placement_io_thread_on_a_missing_cpu_is_an_error),
	};

	if (vcpu__init_signals())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
