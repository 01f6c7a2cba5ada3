/*
 * What a device gets from the VM it plugs into (an interrupt line, a way to
 * stop the VM), and the registry through which the VM holds its devices: in
 * the order they were added, torn down in reverse, each reporting its
 * counters at stop and describing itself to the guest's ACPI tables.
 */
#ifndef RTVMM_DEVICE_H
#define RTVMM_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "base/state.h"

/* Why a VM stopped; the monitor's exit status follows from it. */
enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_POWEROFF,    /* ACPI S5 or equivalent: exit 0 */
	VM_STOP_REBOOT,      /* guest reset request (i8042, ACPI reset reg, vm.reboot): exit 0, or a restart */
	VM_STOP_GUEST_EXIT,  /* test device exit port: exit with the guest's status */
	VM_STOP_ERROR,       /* triple fault, internal error, unknown exit: exit 1 */
	VM_STOP_SIGNAL,      /* SIGINT/SIGTERM to the monitor */
	VM_STOP_PANIC,       /* the guest kernel panicked (pvpanic): exit 3 */
	VM_STOP_MIGRATED,    /* the guest runs on a migration's destination now: exit 0 */
};

/* Drives one guest interrupt line (GSI) of the in-kernel irqchip. */
struct irq_sink {
	void (*set)(void *opaque, unsigned gsi, int level);
	void *opaque;
	unsigned gsi;
};

static inline void irq_sink__set(const struct irq_sink *irq, int level)
{
	irq->set(irq->opaque, irq->gsi, level);
}

/* Lets a device ask the VM to stop (poweroff, reset, test exit). */
struct vm_ctl {
	void (*request_stop)(void *opaque, enum vm_stop_reason reason, int status);
	void *opaque;
};

static inline void vm_ctl__stop(const struct vm_ctl *ctl, enum vm_stop_reason reason, int status)
{
	ctl->request_stop(ctl->opaque, reason, status);
}

/* A legacy ISA device as the DSDT describes it: fixed I/O ranges and one edge-triggered IRQ. */
struct device_acpi {
	char name[5];              /* ACPI name segment, e.g. "COM1" */
	char hid[8];               /* EISA id, e.g. "PNP0501" */
	unsigned nr_io;
	struct { uint16_t port; uint8_t len; } io[2];
	uint8_t irq;
};

/*
 * Where a device puts its counters and states (the API's vm.counters): named
 * numbers ("rx_packets") and named words ("link": "up"). Called from any thread.
 */
struct counter_sink {
	void (*num)(void *opaque, const char *name, uint64_t value);
	void (*str)(void *opaque, const char *name, const char *value);
	void *opaque;
};

/* What the VM asks of a device it holds; every entry may be NULL. */
struct device_ops {
	/* Finishes the device's own work once the vCPUs have stopped, before the stop report. */
	void (*stop)(void *dev);
	/*
	 * Puts the device back as the builder left it, for a reboot in place: every
	 * vCPU is parked out of KVM_RUN; called from the main thread.
	 */
	void (*reset)(void *dev);
	/* Frees the device (the vCPUs have stopped). */
	void (*destroy)(void *dev);
	/* Writes the device's counters for the stop report: one line after "NAME: ", no newline. */
	void (*report)(void *dev, FILE *out);
	/*
	 * Puts the device's counters and backend state into `sink`, live, from any
	 * thread (the API thread): reads only what is safe to read unlocked
	 * (relaxed atomic loads) or under a lock no vCPU holds across KVM_RUN.
	 */
	void (*counters)(void *dev, const struct counter_sink *sink);
	/* Describes the device for the DSDT; false when the guest finds it otherwise. */
	bool (*acpi)(void *dev, struct device_acpi *out);
	/*
	 * Snapshot, before save: stops whatever changes guest RAM or raises
	 * interrupts on its own (a vhost-user backend's rings, an I/O thread's
	 * requests: completed or stopped, their ring positions known), every vCPU
	 * parked, from the thread taking the snapshot. NULL: nothing runs on its own.
	 */
	int (*freeze)(void *dev);
	/* Starts again what freeze stopped, from where it stopped (the VM goes on after a snapshot). */
	int (*thaw)(void *dev);
	/*
	 * Live migration: has whatever writes guest RAM outside the monitor (a
	 * vhost-user backend) mark what it writes in guest RAM's dirty log
	 * (guest_mem.h), memfd `log_fd` of `log_size` bytes, until called with
	 * `log_fd` -1; kept across the device's own reconnects and freeze/thaw.
	 * -ENOTSUP (why in `e`, naming the device and its backend) when it cannot:
	 * the migration is refused. From the migration's thread. NULL: nothing
	 * outside the monitor writes guest RAM for this device (the monitor's own
	 * writes mark the log themselves).
	 */
	int (*dirty_log)(void *dev, int log_fd, uint64_t log_size, struct err *e);
	/*
	 * Snapshot: writes every guest-visible register and the work in flight
	 * into `out`, every vCPU parked, from the thread taking the snapshot.
	 * NULL: the device cannot be saved, and a snapshot of its VM is refused
	 * naming it (device__save_nothing for a device with no such state).
	 */
	int (*save)(void *dev, struct state_out *out);
	/*
	 * Restore: puts back what save wrote, on the built device before any vCPU
	 * entered the guest, from the main thread, and leaves the device as freeze
	 * does (nothing runs on its own: no backend ring started, no request
	 * taken, even once the transport's load activated it) until thaw, which
	 * the VM calls right before the guest runs. -EINVAL (the reason in `why`,
	 * at most 160 bytes) when `in` holds no state this device can take.
	 */
	int (*load)(void *dev, struct state_in *in, char *why, size_t why_len);
};

/* device_ops.save of a device the guest sees no state in (a console's host side). */
int device__save_nothing(void *dev, struct state_out *out);
/* device_ops.load of the same: the saved state must be empty. */
int device__load_nothing(void *dev, struct state_in *in, char *why, size_t why_len);

struct device {
	char name[32];
	const struct device_ops *ops;
	void *dev;
};

/* The devices of one VM, in the order they were added. */
struct device_list {
	struct device *v;
	unsigned nr;
	unsigned cap;
};

/* Adds `dev`: from now on the list destroys it. On error (-ENOMEM) the caller still owns it. */
__attribute__((warn_unused_result))
int device_list__add(struct device_list *l, const char *name, const struct device_ops *ops, void *dev);

/* Calls every device's stop, the last added first. */
void device_list__stop(const struct device_list *l);

/*
 * Freezes every device, the first added first; on a failure thaws those
 * frozen and returns it with `*failed` the device that failed.
 */
int device_list__freeze(const struct device_list *l, const struct device **failed);

/* Thaws every device, the last added first; the first failure is returned (all are tried). */
int device_list__thaw(const struct device_list *l, const struct device **failed);

/*
 * Starts (`log_fd` >= 0) every device's dirty_log, the first added first; on
 * a failure stops those started and returns it, `*failed` the device and `e`
 * why. Stops (-1): every device, the last added first; the first failure is
 * returned (all are tried).
 */
int device_list__dirty_log(const struct device_list *l, int log_fd, uint64_t log_size,
			   const struct device **failed, struct err *e);

/* Calls every device's reset, the last added first (functions before their bus). */
void device_list__reset(const struct device_list *l);

/* Destroys every device, the last added first, and empties the list. */
void device_list__destroy(struct device_list *l);

/* One "PREFIXNAME: counters" line per device that reports. */
void device_list__report(const struct device_list *l, const char *prefix, FILE *out);

/* Fills up to `max` DSDT descriptions, in order; returns how many devices have one. */
unsigned device_list__acpi(const struct device_list *l, struct device_acpi *out, unsigned max);

#endif
