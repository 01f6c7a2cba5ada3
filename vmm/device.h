/* What a device gets from the VM it plugs into: an interrupt line and a way to stop the VM. */
#ifndef RTVMM_DEVICE_H
#define RTVMM_DEVICE_H

/* Why a VM stopped; the monitor's exit status follows from it. */
enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_POWEROFF,    /* ACPI S5 or equivalent: exit 0 */
	VM_STOP_REBOOT,      /* guest reset request (i8042, ACPI reset reg): exit 0 */
	VM_STOP_GUEST_EXIT,  /* test device exit port: exit with the guest's status */
	VM_STOP_ERROR,       /* triple fault, internal error, unknown exit: exit 1 */
	VM_STOP_SIGNAL,      /* SIGINT/SIGTERM to the monitor */
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

#endif
