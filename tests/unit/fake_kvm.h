/*
 * A stateful model of the KVM ioctls, behind the link seam -Wl,--wrap=ioctl:
 * every KVM ioctl on a descriptor the model made (or watches) lands here, is
 * checked against what KVM accepts and simulated; every other ioctl goes to the
 * kernel. The fake /dev/kvm is a memfd opened by path, so kvm__open runs as in
 * production. One VM at a time.
 */
#ifndef RTVMM_TESTS_FAKE_KVM_H
#define RTVMM_TESTS_FAKE_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/irq.h"

#define FAKE_KVM_MAX       256
#define FAKE_KVM_MAX_VCPUS 8
#define FAKE_KVM_MAX_CALLS 4096

#define FAKE_KVM_MAX_MSRS 32

/* What the model holds of one vCPU's state (KVM_GET_* read it, KVM_SET_* write it). */
struct fake_kvm_vcpu {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp_state;
	struct kvm_vcpu_events events;
	struct kvm_msr_entry msrs[FAKE_KVM_MAX_MSRS]; /* every MSR is known; those not here read 0 */
	unsigned nr_msrs;
};

/* What the model holds of the VM; tests read it. */
struct fake_kvm {
	struct kvm_irq_routing_entry routes[IRQ_MAX_ROUTES];
	unsigned nr_routes, commits;
	struct { int fd; uint32_t gsi; } irqfd[FAKE_KVM_MAX];
	unsigned nr_irqfd;
	struct { uint64_t addr; uint32_t len; int fd; } ioev[FAKE_KVM_MAX];
	unsigned nr_ioev;
	struct { uint64_t addr; uint32_t data; bool by_signal; } msi[4096];
	unsigned nr_msi;
	struct kvm_userspace_memory_region slots[16];
	unsigned nr_slots;
	bool irqchip, pit;
	unsigned nr_vcpus;
	unsigned irq_lines;            /* KVM_IRQ_LINE calls */
	unsigned kvmclock_ctrl;        /* KVM_KVMCLOCK_CTRL calls (a vCPU back from a pause) */
	uint64_t kvmclock;             /* the VM's kvmclock: KVM_GET_CLOCK reads it, then it ticks 1000 */
	struct kvm_irqchip chips[3];   /* PIC master, PIC slave, IOAPIC (KVM_GET/SET_IRQCHIP) */
	struct kvm_pit_state2 pit_state;
	unsigned irqchip_sets, pit_sets; /* KVM_SET_IRQCHIP, KVM_SET_PIT2 calls */
	unsigned clock_sets;           /* KVM_SET_CLOCK calls (the last value is in kvmclock) */
	/* KVM_CAP_X86_DISABLE_EXITS and KVM_CAP_HALT_POLL: what this KVM lacks (a test sets it),
	 * what KVM_CHECK_EXTENSION was asked on the VM fd, and every KVM_ENABLE_CAP, in order. */
	unsigned disable_exits_lacking;  /* KVM_X86_DISABLE_EXITS_* bits it cannot disable */
	bool halt_poll_lacking;
	uint64_t vm_caps_checked[8];
	unsigned nr_vm_caps_checked;
	struct kvm_enable_cap enabled[8];
	unsigned nr_enabled;
	bool mwait_in_guest, hlt_in_guest, pause_in_guest, cstate_in_guest; /* as KVM keeps them */
	int64_t max_halt_poll_ns;      /* -1 until KVM_CAP_HALT_POLL sets it */
	unsigned violations;           /* calls KVM would refuse or that break its rules */
	char why[256];                 /* the last violation */
	unsigned kernel_errors;        /* watched fd: calls the kernel refused */
	unsigned long calls[FAKE_KVM_MAX_CALLS];   /* every KVM request, in order */
	unsigned nr_calls;
};

extern struct fake_kvm fake_kvm;

/* Forgets every object, script and injected failure; the fake /dev/kvm stays. */
void fake_kvm__reset(void);

/* A path that opens the fake /dev/kvm (for kvm__open / vm__create). */
const char *fake_kvm__path(void);

/* A fresh VM fd, made as a monitor makes one (open the fake /dev/kvm, KVM_CREATE_VM),
 * with the in-kernel irqchip when `irqchip`; -errno on failure. */
int fake_kvm__create_vm(bool irqchip);

/* The `nth` KVM ioctl from now (1 = the next one) fails with `err`; 0 disarms. */
void fake_kvm__fail(unsigned nth, int err);

/* Models the KVM calls on a real VM fd too, and hands each to the kernel as well. */
void fake_kvm__watch(int fd);

/* The next KVM_RUN of vCPU `index` returns `exit` (its exit_reason and union). */
void fake_kvm__queue_exit(unsigned index, const struct kvm_run *exit);

/* The next KVM_RUN of vCPU `index` fails with `err`. With nothing queued, KVM_RUN blocks
 * until the vCPU is kicked (immediate_exit) and then fails with EINTR. */
void fake_kvm__queue_errno(unsigned index, int err);

/* vCPU `index`'s state in the model: a test changes it as a guest would. */
struct fake_kvm_vcpu *fake_kvm__vcpu(unsigned index);

/* How many times vCPU `index` entered KVM_RUN. */
unsigned fake_kvm__runs(unsigned index);

/* "KVM_CREATE_VM" for KVM_CREATE_VM, ...; "?" for what the model does not know. */
const char *fake_kvm__name(unsigned long req);

/* Position of the first call of `req` in fake_kvm.calls, or -1. */
int fake_kvm__first(unsigned long req);

/* The MSI route of `gsi`, or NULL. */
const struct kvm_irq_routing_entry *fake_kvm__route(uint32_t gsi);

/* What KVM does when irqfd eventfds are signalled: delivers each one's MSI. */
void fake_kvm__poll_irqfds(void);

#endif
