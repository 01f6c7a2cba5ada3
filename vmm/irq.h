/* Interrupt plumbing: the VM's GSI routing table (PC pins + MSI routes), irqfd, ioeventfd. */
#ifndef RTVMM_IRQ_H
#define RTVMM_IRQ_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IRQ_NR_PIC_PINS    16
#define IRQ_NR_IOAPIC_PINS 24
#define IRQ_FIRST_MSI_GSI  IRQ_NR_IOAPIC_PINS
#define IRQ_MAX_ROUTES     1024

/*
 * The whole KVM GSI routing table, owned in one place: KVM_SET_GSI_ROUTING
 * replaces it as a whole, so every change goes through here.
 */
struct irq_routing {
	int vm_fd;                 /* where KVM_SET_GSI_ROUTING goes */
	pthread_mutex_t lock;
	struct kvm_irq_routing_entry entries[IRQ_MAX_ROUTES];
	unsigned nr;
	uint32_t next_msi_gsi;
};

/* The PC's routes: ISA IRQs to the PIC, GSIs to IOAPIC pins, IRQ0 on pin `irq0_pin`; commits. */
int irq_routing__init_pc(struct irq_routing *r, int vm_fd, unsigned irq0_pin);
void irq_routing__exit(struct irq_routing *r);

/* Allocates a GSI routed as an MSI (address, data) and commits; *gsi receives it. */
int irq_routing__add_msi(struct irq_routing *r, uint64_t addr, uint32_t data, uint32_t *gsi);

/* Re-points an MSI GSI (the guest reprogrammed an MSI-X entry) and commits. */
int irq_routing__set_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data);

/* Finds the route of `gsi` of type `type`, or NULL. */
const struct kvm_irq_routing_entry *irq_routing__find(const struct irq_routing *r, uint32_t gsi,
						      uint32_t type);

/* Makes a write to eventfd `efd` inject `gsi` in the kernel (no monitor thread). */
int irq__irqfd(int vm_fd, int efd, uint32_t gsi, bool assign);

/*
 * Makes a guest write of `len` bytes to `addr` (MMIO, or port I/O when !mmio)
 * signal `efd` in the kernel instead of exiting; with `match`, only when the
 * value written equals `datamatch`.
 */
int irq__ioeventfd(int vm_fd, uint64_t addr, uint32_t len, bool mmio, bool match,
		   uint64_t datamatch, int efd, bool assign);

#endif
