/* A virtual machine: KVM VM fd, guest RAM, address-space buses, vCPUs, devices, stop state. */
#ifndef RTVMM_VM_H
#define RTVMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/plan.h"
#include "vmm/bus.h"
#include "vmm/device.h"
#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"
#include "vmm/vcpu.h"
#include "vmm/x86/boot.h"

struct virtio_net_spec;

/* Everything needed to build and run one VM. */
struct vm_config {
	const char *kvm_path;      /* default /dev/kvm */
	struct boot_config boot;
	unsigned nr_vcpus;
	uint64_t mem_size;
	int console_in;            /* guest COM1 input (stdin), -1 for none */
	int console_out;           /* guest COM1 output (stdout) */
	bool verbose;
	const struct plan_vm *plan; /* host-plan placement (memory, threads), NULL for none */
	const struct virtio_net_spec *nics; /* virtio-net NICs over vhost-user (from the plan or --net) */
	unsigned nr_nics;
};

struct serial;
struct console;
struct i8042;
struct acpi_pm;
struct testdev;
struct pci_bus;
struct virtio_dev;
struct virtio_pci;

/* A guest NIC: the virtio-net device and its virtio-pci function. */
struct vm_nic {
	struct virtio_dev *dev;
	struct virtio_pci *pci;
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
	struct serial *serial;
	struct console *console;
	struct i8042 *i8042;
	struct acpi_pm *acpi_pm;
	struct testdev *testdev;
	struct pci_bus *pci;
	unsigned nr_nics;
	struct vm_nic *nics;

	const struct plan_vm *plan;  /* placement to apply and prove, or NULL */
	unsigned nr_placed;          /* vCPU threads that applied their placement */
	pthread_cond_t placed_cond;

	pthread_mutex_t lock;
	int stop_efd;              /* becomes readable once a stop is requested */
	bool stopping;
	enum vm_stop_reason stop_reason;
	int stop_status;
	bool verbose;
};

/* Builds the whole VM from `cfg` (the composition root, app/builder.c). */
int vm__build(struct vm *vm, const struct vm_config *cfg, struct err *e);

/* Creates the KVM VM object and empty buses. */
int vm__create(struct vm *vm, const char *kvm_path, struct err *e);

/*
 * Backs guest RAM with a MAP_SHARED memfd (placed per `placement` when not
 * NULL: page size, node, prefault, mlock) and registers it as memslots.
 */
int vm__setup_memory(struct vm *vm, uint64_t size, const struct plan_memory *placement,
		     struct err *e);

/* In-kernel PIC + IOAPIC + LAPICs, and the in-kernel PIT. */
int vm__setup_irqchip(struct vm *vm, struct err *e);

/* Creates `nr` vCPUs with per-vCPU CPUID. */
int vm__create_vcpus(struct vm *vm, unsigned nr, struct err *e);

/* An irq_sink that drives `gsi` on this VM's irqchip. */
struct irq_sink vm__irq_sink(struct vm *vm, unsigned gsi);

/* Asks the VM to stop; the first request's reason and status win. Safe from any thread. */
void vm__request_stop(struct vm *vm, enum vm_stop_reason reason, int status);

/*
 * Runs the vCPUs until a stop request (guest poweroff/reset/exit, guest
 * error, or SIGINT/SIGTERM), joins every thread and returns the process
 * exit status.
 */
int vm__run(struct vm *vm);

/* Tears down devices, vCPUs, memory and fds; safe on a partly built VM. */
void vm__destroy(struct vm *vm);

#endif
