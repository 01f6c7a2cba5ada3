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

#define FAKE_KVM_MAX_MSRS  320
#define FAKE_KVM_EXTRA_MSR 0xc0010200u  /* fake_kvm.extra_msrs more MSRs from here (a PMU's) */
#define FAKE_KVM_MAX_CPUID 64
#define FAKE_KVM_TSC_KHZ   2500000u     /* the host's TSC while fake_kvm.tsc_khz is 0 */
#define FAKE_KVM_XCR0      0x7u         /* the XSAVE features the host has: x87, SSE, AVX */
#define FAKE_KVM_MAX_IO_MSRS 256        /* KVM_GET/SET_MSRS refuse nmsrs >= this (E2BIG), as KVM */

/* The MSRs the model knows: KVM_GET_MSR_INDEX_LIST's answer, in its order. */
extern const uint32_t fake_kvm_msr_index[];
extern const unsigned fake_kvm_nr_msr_index;

/* What the model holds of one vCPU's state (KVM_GET_* read it, KVM_SET_* write it). */
struct fake_kvm_vcpu {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct { __u32 region[1024]; } xsave;  /* struct kvm_xsave without its flexible tail (unused here) */
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp_state;
	struct kvm_vcpu_events events;
	/*
	 * Only MSRs of fake_kvm_msr_index (KVM_GET/SET_MSRS stop at any other, as KVM at an
	 * MSR it has not); those not here read 0. TSC_DEADLINE (0x6e0) as KVM keeps it: it
	 * reads 0 and a write is dropped unless the LAPIC timer (LVTT) is in TSC-deadline
	 * mode, and a KVM_SET_LAPIC that changes that mode clears it.
	 */
	struct kvm_msr_entry msrs[FAKE_KVM_MAX_MSRS];
	unsigned nr_msrs;
	uint32_t tsc_khz;          /* KVM_SET_TSC_KHZ; 0: the host's */
	struct kvm_cpuid_entry2 cpuid[FAKE_KVM_MAX_CPUID]; /* the last KVM_SET_CPUID2 */
	unsigned nr_cpuid;
	unsigned cpuid_sets;       /* KVM_SET_CPUID2 calls that took */
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
	/* Per slot, its first 64 pages the guest wrote (a test sets them): KVM_GET_DIRTY_LOG's
	 * answer while the slot logs (KVM_MEM_LOG_DIRTY_PAGES), cleared by it. */
	uint64_t dirty[16];
	/*
	 * KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]): whether this KVM lacks it (a test
	 * sets it), its size per vCPU once enabled, and KVM_RESET_DIRTY_RINGS: the calls, the
	 * entries they gave back, and a test's hook run at each (before it returns).
	 */
	bool dirty_ring_lacking;
	uint32_t ring_bytes;
	unsigned ring_resets, ring_reset_entries;
	void (*on_ring_reset)(void);
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
	/*
	 * The host (a test sets these after fake_kvm__reset, before the VM is built): its TSC
	 * (0: FAKE_KVM_TSC_KHZ) and whether KVM can scale a guest's TSC to another rate (without,
	 * KVM_SET_TSC_KHZ above the host's fails, as KVM's); a CPUID feature bit KVM_GET_SUPPORTED_CPUID
	 * lacks (reg 0..3: EAX..EDX; bits 0: none); an MSR of the model it has not (not listed,
	 * KVM_GET/SET_MSRS stop at it); an MSR it lists that its vCPUs have not (their CPUID lacks
	 * the feature: KVM_GET/SET_MSRS stop at it).
	 */
	uint32_t tsc_khz;
	bool tsc_scaling_lacking;
	struct { uint32_t function, index; unsigned reg; uint32_t bits; } cpuid_lacking;
	uint32_t msr_lacking;
	unsigned extra_msrs;           /* this many more MSRs listed, from FAKE_KVM_EXTRA_MSR */
	uint32_t msr_unreadable;
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

/*
 * vCPU `index` writes page `offset` of memslot `slot` as a guest would with its dirty
 * ring on: the entry KVM appends while the slot logs. Returns 1 when the ring is now
 * full enough that KVM exits with KVM_EXIT_DIRTY_RING_FULL, 0 when not, -1 when
 * nothing was appended (the slot does not log, or no ring).
 */
int fake_kvm__ring_push(unsigned index, uint32_t slot, uint64_t offset);

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
