/*
 * MSI-X for a PCI function: the capability, the vector table and the pending
 * bit array (PBA) in one of the function's memory BARs, and the delivery of
 * each vector through KVM.
 *
 * Delivery:
 * - Each vector that is used gets one GSI routed as an MSI
 *   (irq_routing__add_msi), allocated the first time a source is bound to it
 *   or msix__prepare is called, and kept for the device's life (routes are
 *   never freed); the route follows the entry's address/data when the vector
 *   is unmasked and whenever the guest rewrites an unmasked entry.
 * - A "source" is an eventfd a backend signals (a virtqueue's call fd). While
 *   its vector is live it is a KVM irqfd on the vector's GSI: the kernel
 *   injects, no monitor thread is involved.
 * - A vector is masked when MSI-X is disabled, the function is masked, bus
 *   mastering is off (COMMAND.MASTER: a function that cannot write memory
 *   cannot send a message) or its entry's mask bit is set. On masking, its
 *   sources' irqfds are deassigned; signals then accumulate in the eventfds
 *   (an eventfd is a counter) and read as the vector's PBA bit. On unmasking,
 *   each source is drained (read), re-assigned as an irqfd and, if anything
 *   was pending, the message is sent once with KVM_SIGNAL_MSI: nothing is
 *   lost, nothing is injected while masked.
 * - msix__notify raises a vector from user space (the virtio config-change
 *   interrupt): KVM_SIGNAL_MSI now, or a pending bit delivered on unmask.
 *
 * All functions run with the function's pci_dev lock held.
 */
#ifndef RTVMM_PCI_MSIX_H
#define RTVMM_PCI_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/irq.h"
#include "vmm/pci/pci.h"

#define MSIX_MAX_VECTORS 2048
#define MSIX_NO_VECTOR   0xffff

/* Bytes of table and PBA for `nr` vectors. */
#define MSIX_TABLE_SIZE(nr) ((uint32_t)(nr) * PCI_MSIX_ENTRY_SIZE)
#define MSIX_PBA_SIZE(nr)   ((((uint32_t)(nr) + 63) / 64) * 8)

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl;  /* the table entry as the guest wrote it */
	bool has_gsi;
	uint32_t gsi;
	bool route_set;                         /* the route holds route_addr/route_data */
	uint64_t route_addr;
	uint32_t route_data;
	bool live;                              /* unmasked, as last applied */
	bool pending;                           /* a user-space message waits for unmask */
};

struct msix_source {
	int efd;                                /* -1: unbound */
	uint16_t vector;
	bool wired;                             /* assigned as a KVM irqfd */
};

struct msix_stats {
	uint64_t notified;      /* user-space messages sent (KVM_SIGNAL_MSI) */
	uint64_t pended;        /* messages held while masked, sent on unmask */
	uint64_t route_errors;  /* no GSI left, or KVM_SET_GSI_ROUTING failed */
	uint64_t irqfd_errors;  /* KVM_IRQFD failed */
	uint64_t signal_errors; /* KVM_SIGNAL_MSI failed */
};

struct msix {
	struct pci_dev *dev;
	uint8_t cap;                            /* config offset of the capability */
	uint16_t nr_vectors;
	struct msix_vector *vec;
	unsigned nr_sources;
	struct msix_source *src;
	int vm_fd;
	struct irq_routing *irqs;
	struct msix_stats stats;
};

/*
 * Adds the MSI-X capability to `dev` for `nr_vectors` (1..MSIX_MAX_VECTORS)
 * with the table at `table_off` and the PBA at `pba_off` of BAR `bar`
 * (8-byte aligned; the caller serves them with msix__table_* and
 * msix__pba_read), and room for `nr_sources` eventfd sources. Every entry
 * starts masked. Returns 0 or -errno.
 */
int msix__init(struct msix *m, struct pci_dev *dev, uint16_t nr_vectors, unsigned bar,
	       uint32_t table_off, uint32_t pba_off, unsigned nr_sources, int vm_fd,
	       struct irq_routing *irqs);

/*
 * Every table entry as at msix__init (masked, no message), nothing pending;
 * sources stay bound. Call with the function's lock held, its configuration
 * space (enable bit) restored or about to be.
 */
void msix__reset(struct msix *m);

/* Unbinds every source (deassigning irqfds) and frees the tables. */
void msix__exit(struct msix *m);

/* Table and PBA accesses; `off` is relative to the structure, any width 1..8. */
void msix__table_read(struct msix *m, uint64_t off, void *data, uint32_t len);
void msix__table_write(struct msix *m, uint64_t off, const void *data, uint32_t len);
void msix__pba_read(struct msix *m, uint64_t off, void *data, uint32_t len);

/* The function's pci_dev_ops.config_written must forward here (enable/mask/bus master). */
void msix__config_written(struct msix *m, uint32_t off, uint32_t len);

/* Gives `vector` its GSI now; 0, -EINVAL (no such vector) or -ENOSPC/-errno (no route). */
int msix__prepare(struct msix *m, uint16_t vector);

/*
 * Binds source `i` (eventfd `efd`) to `vector` (MSIX_NO_VECTOR: kept, never
 * delivered). Returns 0, or -errno when the vector has no route (the source
 * is then unbound).
 */
int msix__bind(struct msix *m, unsigned i, int efd, uint16_t vector);
void msix__unbind(struct msix *m, unsigned i);

/* Sends `vector`'s message from user space, or holds it pending while masked. */
void msix__notify(struct msix *m, uint16_t vector);

/* Whether `vector` is masked (by its entry, the function mask, MSI-X disable or bus master off). */
bool msix__masked(const struct msix *m, uint16_t vector);

#endif
