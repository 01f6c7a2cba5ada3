/* A vCPU: its KVM fd, its shared kvm_run page, its thread and run loop. */
#ifndef RTVMM_VCPU_H
#define RTVMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "vmm/bus.h"
#include "vmm/device.h"
#include "vmm/exit.h"
#include "vmm/guest_mem.h"
#include "vmm/kvm.h"
#include "base/state.h"

/* What a vCPU needs from its VM: filled once by the VM, shared by its vCPUs. */
struct vcpu_env {
	int vm_fd;
	const struct kvm *kvm;
	struct bus *pio;
	struct bus *mmio;
	const struct guest_mem *mem;
	unsigned nr_vcpus;
	struct vm_ctl ctl;         /* stop requests */
	const bool *stopping;      /* true once a stop was requested */
	bool verbose;
	/* On the vCPU thread before it first enters the guest (placement); nonzero stops the VM. */
	int (*thread_start)(void *opaque, unsigned index, pid_t tid);
	void *opaque;
	/* When set: after thread_start, wait under go_lock until *go (the VM says so, or stops). */
	pthread_mutex_t *go_lock;
	pthread_cond_t *go_cond;
	const bool *go;
	/*
	 * Pause: while *pause is set, the vCPU calls park() out of KVM_RUN; park
	 * returns once the VM resumes or stops, true when the vCPU waited.
	 */
	const bool *pause;
	bool (*park)(void *park_opaque);
	void *park_opaque;
	/*
	 * Reboot in place: when set, each vCPU records its state before it first
	 * enters the guest (vcpu__save_boot_state) and puts it back, from its own
	 * thread, whenever *reset_gen moved on since it last looked.
	 */
	const unsigned *reset_gen;
};

struct vcpu_boot_state;

struct vcpu {
	const struct vcpu_env *env;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	pid_t tid;              /* kernel thread id, valid once the thread runs */
	bool dump_pending;      /* print registers at the next exit (SIGUSR2 to the monitor) */
	struct exit_ctx exits;
	struct kvm_cpuid2 *cpuid;     /* what KVM_SET_CPUID2 gave it (a snapshot keeps it) */
	struct vcpu_boot_state *boot; /* its state before it first ran (env->reset_gen), or NULL */
	unsigned reset_seen;          /* the *env->reset_gen it last reset to */
};

/* Creates vCPU `index` (KVM_CREATE_VCPU, maps kvm_run) and sets its CPUID from `supported`. */
int vcpu__create(struct vcpu *vcpu, const struct vcpu_env *env, unsigned index,
		 const struct kvm_cpuid2 *supported);
void vcpu__destroy(struct vcpu *vcpu);

/* Puts the vCPU in 64-bit long mode at `entry` with RSI = `zero_page` (the BSP's boot state). */
int vcpu__set_boot_state(struct vcpu *vcpu, uint64_t entry, uint64_t zero_page);

/*
 * Records what a reset puts back: registers, segment and control registers,
 * FPU, XCR0, the MSRs a guest changes (syscall entry, PAT, kvmclock and the
 * other KVM paravirtual MSRs), LAPIC, MP state (the BSP runnable, an AP waiting
 * for INIT/SIPI) and pending events. From the vCPU's thread, before its first
 * KVM_RUN. Returns 0 or -errno with `*call` naming the ioctl that failed.
 */
int vcpu__save_boot_state(struct vcpu *vcpu, const char **call);

/*
 * Puts back what vcpu__save_boot_state recorded, from the vCPU's thread while
 * it is out of KVM_RUN; an I/O exit it was in the middle of is completed
 * first. Returns 0, -ENODATA when nothing was recorded, or -errno with `*call`
 * naming the ioctl that failed.
 */
int vcpu__restore_boot_state(struct vcpu *vcpu, const char **call);

/* MSR indices KVM saves and restores (KVM_GET_MSR_INDEX_LIST), for vcpu__save_state. */
struct vcpu_msr_list {
	uint32_t *index;
	unsigned nr;
};

/*
 * Appends the vCPU's whole architectural state to `out` for a snapshot: CPUID,
 * TSC frequency, general, segment, control and debug registers, XSAVE area
 * (or the FPU), XCRs, every MSR of `msrs` KVM reads, LAPIC, pending events
 * and MP state. The vCPU is parked out of KVM_RUN with its last exit
 * completed; any thread. With `stopped_ns` (CLOCK_MONOTONIC ns the guest's
 * time stopped, kvmclock frozen then; 0: none) the TSC is saved as it read
 * at that moment, not later: a guest on either clock sees the same time.
 * -errno with `*call` naming the ioctl that failed.
 */
int vcpu__save_state(struct vcpu *vcpu, const struct vcpu_msr_list *msrs, uint64_t stopped_ns,
		     struct state_out *out, const char **call);

/*
 * Puts back what vcpu__save_state wrote, on a vCPU that never ran, after
 * checking it against this host: every CPUID feature bit the guest saw must be
 * in the CPUID this host gives the vCPU (vcpu__create's, from
 * KVM_GET_SUPPORTED_CPUID), the TSC frequency must be this one's or settable,
 * every MSR must be one KVM takes. -EINVAL (a malformed state) or -ENOTSUP
 * (this host cannot run it) with the reason in `why`; -errno of a failed
 * ioctl, named in `why`.
 */
int vcpu__load_state(struct vcpu *vcpu, struct state_in *in, char *why, size_t why_len);

/* Starts the vCPU thread (named "vcpuN"); it runs until the VM stops. */
int vcpu__start(struct vcpu *vcpu);

/* Asks the vCPU to print its registers from its own thread, then run on. */
void vcpu__request_dump(struct vcpu *vcpu);

/* Makes the vCPU leave KVM_RUN promptly (immediate_exit + signal). */
void vcpu__kick(struct vcpu *vcpu);

/* Prints general, segment and control registers, and the instruction bytes at RIP. */
void vcpu__dump(struct vcpu *vcpu, FILE *out);

/* Installs the (empty) kick signal handler; call once before any vCPU starts. */
int vcpu__init_signals(void);

#endif
