/* A virtual machine: KVM VM fd, guest RAM, address-space buses, vCPUs, devices, stop state. */
#ifndef RTVMM_VM_H
#define RTVMM_VM_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vmm/bus.h"
#include "vmm/device.h"
#include "vmm/dirty_ring.h"
#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"
#include "vmm/vcpu.h"
#include "vmm/x86/boot.h"

struct vm;
struct acpi_pm;
struct vm_boot_blob;

/* KVM_GET_IRQCHIP's chips: PIC master, PIC slave, IOAPIC. */
#define VM_NR_IRQCHIPS 3

/* Where a VM is in its life (the API's vm.info "state"). */
enum vm_state {
	VM_STATE_CREATED,    /* built, vCPUs not yet in the guest */
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,     /* every vCPU parked out of KVM_RUN (vm__pause) */
	VM_STATE_SHUTDOWN,   /* a stop was requested: the vCPUs are leaving or gone */
};

/*
 * What the application plugs into the machine, so that the machine knows
 * nothing of plans, NUMA or scheduling. Every hook may be NULL.
 */
struct vm_hooks {
	void *opaque;
	/* Provides guest RAM of `size` bytes (guest_mem__adopt); NULL: a plain 4 KiB memfd. */
	int (*provide_memory)(void *opaque, struct guest_mem *mem, uint64_t size, struct err *e);
	/* On each vCPU thread before it first enters the guest; nonzero stops the VM. */
	int (*vcpu_thread_start)(void *opaque, unsigned index, pid_t tid);
	/*
	 * On the main thread once every vCPU thread started; nonzero stops the VM.
	 * When set, vCPU threads enter the guest only after it returned (the
	 * application proves placement and drops privileges here).
	 */
	int (*vcpus_started)(void *opaque, const struct vm *vm);
	/*
	 * On the main thread after vcpus_started, right before the vCPUs first
	 * enter the guest (an incoming migration tells its source here); its own
	 * opaque; nonzero stops the VM. When set, vCPUs wait for it as above.
	 */
	int (*guest_ready)(void *ready_opaque);
	void *ready_opaque;
};

struct vm {
	struct kvm kvm;
	int fd;
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	struct irq_routing irqs;   /* GSI routing: PC pins and MSI routes */
	bool irqs_ready;
	unsigned nr_vcpus;
	struct vcpu *vcpus;
	struct boot_image boot;
	int64_t rsdp;

	struct vm_ctl ctl;
	struct device_list devices; /* every device, in the order the builder added them */
	bool devices_loaded;        /* they loaded a saved state and wait frozen for vm__run's thaw */
	struct acpi_pm *acpi_pm;    /* PM1 block with the power button (the builder adds it); NULL: none */
	unsigned shutdown_grace_s;  /* SIGTERM presses the power button, stops after this; 0: at once */
	bool restart_on_reboot;     /* a guest reset or vm.reboot restarts in place (set before vm__create_vcpus) */
	unsigned disabled_exits;    /* KVM_X86_DISABLE_EXITS_* KVM enabled (vm__disable_exits) */
	int64_t halt_poll_ns;       /* KVM_CAP_HALT_POLL as set (vm__set_halt_poll); -1: KVM's default */

	struct vm_hooks hooks;
	struct vcpu_env vcpu_env;    /* what every vCPU gets */
	struct vcpu_msr_list msrs;  /* the MSRs a snapshot saves (KVM_GET_MSR_INDEX_LIST) */
	struct dirty_rings rings;   /* KVM's dirty ring (vm__dirty_ring); rings.entries 0: the bitmap */
	pthread_mutex_t snapshot_lock; /* held by a snapshot: vm__run stops no device meanwhile */

	pthread_mutex_t lock;      /* never held across KVM_RUN */
	pthread_cond_t go_cond;    /* `go` set: vCPU threads may enter the guest (under lock) */
	bool go;
	int stop_efd;              /* becomes readable once a stop is requested */
	bool stopping;
	enum vm_stop_reason stop_reason;
	int stop_status;
	bool verbose;

	/* State and pause (vm__pause), under lock; `state` and `pause` also read unlocked. */
	enum vm_state state;
	bool pause;                /* vCPUs must park before their next KVM_RUN */
	unsigned parked;           /* vCPU threads parked */
	pthread_cond_t parked_cond; /* `parked` grew, or a stop: the pauser waits on it */
	pthread_cond_t resume_cond; /* `pause` cleared, or a stop: parked vCPUs wait on it */
	uint64_t paused_ns;        /* pauses that ended */
	uint64_t paused_since;     /* CLOCK_MONOTONIC ns the pause in progress began */
	struct kvm_clock_data paused_clock; /* kvmclock as the pause began (written back at resume) */
	bool clock_frozen;         /* paused_clock holds it */

	/* Reboot in place (restart_on_reboot): what vm__seal recorded, and the reset under way. */
	bool sealed;
	struct kvm_irqchip chips[VM_NR_IRQCHIPS];
	struct kvm_pit_state2 pit;
	struct vm_boot_blob *blobs;  /* guest RAM the builder wrote (boot code, tables, kernel, initrd) */
	unsigned nr_blobs;
	bool reboot_pending;       /* set under lock (read unlocked): vm__run's thread resets once all parked */
	unsigned reset_gen;        /* bumped per reset: each vCPU then resets itself */
	uint64_t reboots;          /* resets done in place (relaxed atomic) */
};

/* Creates the KVM VM object and empty buses; `hooks` (may be NULL) are kept for what follows. */
int vm__create(struct vm *vm, const char *kvm_path, const struct vm_hooks *hooks, struct err *e);

/*
 * Lets the guest run the instructions in `exits` (KVM_X86_DISABLE_EXITS_* bits: HLT, PAUSE,
 * MWAIT, C-states) without exiting to KVM (KVM_CAP_X86_DISABLE_EXITS). Checked against what
 * this KVM supports first: -ENOTSUP naming what it lacks. Before vm__create_vcpus (KVM
 * refuses after).
 */
int vm__disable_exits(struct vm *vm, unsigned exits, struct err *e);

/*
 * How long a halted vCPU polls for a wake-up before it sleeps, this VM only
 * (KVM_CAP_HALT_POLL; 0: never polls). Checked against this KVM first: -ENOTSUP when it lacks it.
 */
int vm__set_halt_poll(struct vm *vm, unsigned ns, struct err *e);

/* "hlt, pause" for KVM_X86_DISABLE_EXITS_* bits, "none" for 0; `buf` is returned. */
const char *vm_exits__names(unsigned exits, char *buf, size_t len);

/*
 * Backs guest RAM with a MAP_SHARED memfd (from hooks.provide_memory when
 * set: placed by the application) and registers it as memslots.
 */
int vm__setup_memory(struct vm *vm, uint64_t size, struct err *e);

/*
 * Has KVM log the guest's writes in a ring per vCPU of `entries`
 * (KVM_CAP_DIRTY_LOG_RING) instead of its bitmap per memslot, before
 * vm__create_vcpus. -ENOTSUP (why in `e`) when this KVM has none that large.
 */
int vm__dirty_ring(struct vm *vm, uint32_t entries, struct err *e);

/* Turns KVM's dirty page logging of every memslot on or off (KVM_MEM_LOG_DIRTY_PAGES); -errno. */
int vm__dirty_log(struct vm *vm, bool on);

/*
 * Ors the pages the guest wrote since the last call (or since logging began)
 * into `bits`, one bit per 4 KiB page of guest RAM by memfd offset, and
 * clears KVM's log (its dirty rings, or KVM_GET_DIRTY_LOG); with guest RAM's own dirty log
 * running (guest_mem__log_start), also the pages the monitor's devices and
 * vhost-user backends wrote, clearing those too. -errno.
 */
int vm__take_dirty(struct vm *vm, uint64_t *bits);

/* In-kernel PIC + IOAPIC + LAPICs, and the in-kernel PIT. */
int vm__setup_irqchip(struct vm *vm, struct err *e);

/* Creates `nr` vCPUs with per-vCPU CPUID. */
int vm__create_vcpus(struct vm *vm, unsigned nr, struct err *e);

/*
 * Records the machine as built, which a reboot in place puts back: the
 * in-kernel PIC, IOAPIC and PIT, and the guest RAM the builder wrote (low
 * memory with the boot GDT, page tables, zero page, command line, ACPI and MP
 * tables; the kernel; the initrd), kept in monitor memory: the files may be
 * unreadable after the privilege drop. After the build, before vm__run.
 */
int vm__seal(struct vm *vm, struct err *e);

/* Resets done in place so far; safe from any thread. */
uint64_t vm__reboots(struct vm *vm);

/* An irq_sink that drives `gsi` on this VM's irqchip. */
struct irq_sink vm__irq_sink(struct vm *vm, unsigned gsi);

/*
 * Asks the VM to stop; the first request's reason and status win. Safe from any
 * thread. VM_STOP_REBOOT on a VM that restarts on reboot (restart_on_reboot,
 * sealed) is no stop: every vCPU parks, vm__run's thread resets the devices,
 * the irqchip, the boot images and kvmclock, each vCPU resets its registers,
 * and the guest boots again; the VM stays Running.
 */
void vm__request_stop(struct vm *vm, enum vm_stop_reason reason, int status);

/*
 * The signals vm__run reads from its signalfd (SIGINT, SIGTERM, SIGHUP: stop; SIGUSR2: dump
 * every vCPU's registers). A caller blocks them in every thread before any starts, so that
 * they wait for vm__run instead of killing the process.
 */
void vm__stop_signals(sigset_t *set);

/*
 * Runs the vCPUs until a stop request (guest poweroff/reset/exit/panic, guest
 * error, or a signal), joins every thread, stops the devices (the console's
 * bounded output flush) and returns the process exit status. SIGINT and
 * SIGHUP stop at once (status 128+N). SIGTERM presses the power button and
 * stops (status 143) only if the guest has not powered off within
 * shutdown_grace_s, or at a second SIGTERM; at once when the grace is 0 or
 * there is no power button. Each step is one line on stderr. Devices that
 * loaded a saved state (devices_loaded) are thawed right before the vCPUs
 * first enter the guest, before guest_ready; one that cannot start stops
 * the VM (status 1) before guest_ready is called.
 */
int vm__run(struct vm *vm);

/* "Created", "Running", "Paused", "Shutdown" (cloud-hypervisor's words). */
const char *vm_state__name(enum vm_state state);

/* The VM's state now; safe from any thread. */
enum vm_state vm__state(struct vm *vm);

/*
 * Parks every vCPU out of KVM_RUN and returns once all are parked: -EBUSY when
 * the VM is not Running, another pause is under way, or a stop or a reboot in
 * place came first (the reboot then lets the vCPUs run when it is done). From
 * any thread but a vCPU's; it takes no lock a vCPU thread holds across KVM_RUN.
 * Guest time stands still while paused (kvmclock is read here and written back
 * at resume; the TSC runs on), and each vCPU tells a kvmclock guest it was
 * stopped (KVM_KVMCLOCK_CTRL) before it enters the guest again. Each vCPU
 * parks with its last exit completed (a snapshot reads whole state). A stop
 * request wakes and ends parked vCPUs.
 */
int vm__pause(struct vm *vm);

/* Lets every parked vCPU enter the guest again: -EBUSY when the VM is not Paused, or a reboot is under way. */
int vm__resume(struct vm *vm);

/* Nanoseconds the VM spent paused in all, a pause in progress counted up to now. */
uint64_t vm__paused_ns(struct vm *vm);

/*
 * Presses the ACPI power button (PM1 PWRBTN_STS, an SCI when enabled): the
 * guest's OS shuts down in order. -ENODEV when the machine has no ACPI PM block.
 */
int vm__power_button(struct vm *vm);

/* Tears down devices, vCPUs, memory and fds; safe on a partly built VM. */
void vm__destroy(struct vm *vm);

#endif
