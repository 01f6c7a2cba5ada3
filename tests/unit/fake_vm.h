/*
 * A VM on the fake KVM (fake_kvm.h) for tests that run it on real vCPU
 * threads: making it, vm__run or vm__pause on a thread of their own, a port
 * that holds a vCPU in an exit, stderr captured (where the vCPUs and the
 * monitor report), and the fake's verdict when the VM goes.
 */
#ifndef RTVMM_TESTS_FAKE_VM_H
#define RTVMM_TESTS_FAKE_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/bus.h"
#include "vmm/vm.h"

/* How long a vCPU thread may take to do what a test waits for. */
#define FAKE_VM_WAIT_MS 5000

void fake_vm__sleep_ms(unsigned ms);

/* Resets the fake KVM, makes a VM with an irqchip and `nr_vcpus` vCPUs: 0 or -errno (`e`: why). */
int fake_vm__create(struct vm *vm, unsigned nr_vcpus, struct err *e);

/* Scripts vCPU `vcpu`'s next exit: a one-byte OUT to `port`. */
void fake_vm__queue_out(unsigned vcpu, uint16_t port);

/* vm__run or vm__pause on a thread of its own, so that a call that never returns fails the test. */
struct vm_call {
	struct vm *vm;
	int (*fn)(struct vm *vm);
	pthread_t thread;
	bool started;              /* started and not joined */
	bool done;                 /* fn returned */
	int ret;                   /* what fn returned */
};

/* Calls fn(vm) on a new thread. */
void vm_call__start(struct vm_call *c, int (*fn)(struct vm *vm), struct vm *vm);

/* fn returned. */
bool vm_call__done(struct vm_call *c);

/* Waits FAKE_VM_WAIT_MS for fn to return (else fails the test: `why`), joins; what fn returned. */
int vm_call__finish(struct vm_call *c, const char *why);

/* A port whose write holds its vCPU until the test releases it; reads return 0xff. */
struct slow_port {
	bool busy;                 /* a vCPU is inside the write */
	bool released;             /* writes may return */
};

/* Puts the slow port at `port` on `pio`: 0 or -errno. */
__attribute__((warn_unused_result))
int slow_port__register(struct slow_port *s, struct bus *pio, uint64_t port);

/* A vCPU is held in the port's write. */
bool slow_port__busy(struct slow_port *s);

/* Lets the write held, and every later one, return. */
void slow_port__release(struct slow_port *s);

/* stderr sent to a memfd, to check what was reported there. */
struct stderr_capture {
	bool on;                   /* stderr goes to the memfd */
	int saved;                 /* the real stderr */
	int out;                   /* the memfd */
};

/* From now on stderr goes to the capture: 0 or -errno. */
int stderr_capture__start(struct stderr_capture *c);

/* What went to stderr since __start (the next call overwrites it). */
const char *stderr_capture__text(const struct stderr_capture *c);

/*
 * What a test that drives a VM from threads keeps, first in its rig (so that
 * fake_vm__teardown can take the rig); zeroed (calloc), none of it started.
 */
struct fake_vm {
	struct vm vm;
	struct vm_call run;        /* vm__run */
	struct vm_call pause;      /* vm__pause */
	struct slow_port slow;
	struct stderr_capture err; /* where the vCPUs and the monitor report, when captured */
};

/*
 * A cmocka teardown for a rig that starts with a struct fake_vm: lets the slow
 * port go, stops the VM if a call still runs and joins it, puts stderr back
 * (showing what was captured), destroys the VM (failing the test, saying why,
 * if it broke a rule of KVM's) and frees the rig.
 */
int fake_vm__teardown(void **state);

#endif
