#include "vmm/irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* KVM_SET_GSI_ROUTING with the current table; called with the lock held. */
static int commit(struct irq_routing *r)
{
	struct kvm_irq_routing *table;
	int err = 0;

	table = malloc(sizeof(*table) + r->nr * sizeof(table->entries[0]));
	if (!table)
		return -ENOMEM;
	table->nr = r->nr;
	table->flags = 0;
	memcpy(table->entries, r->entries, r->nr * sizeof(r->entries[0]));
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, table) < 0)
		err = -errno;
	free(table);
	return err;
}

static void add_irqchip(struct irq_routing *r, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	r->entries[r->nr++] = (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
		.u.irqchip = { .irqchip = chip, .pin = pin } };
}

int irq_routing__init_pc(struct irq_routing *r, int vm_fd, unsigned irq0_pin)
{
	uint32_t gsi;
	int err;

	memset(r, 0, sizeof(*r));
	r->vm_fd = vm_fd;
	r->next_msi_gsi = IRQ_FIRST_MSI_GSI;
	pthread_mutex_init(&r->lock, NULL);
	for (gsi = 0; gsi < IRQ_NR_PIC_PINS; gsi++)
		if (gsi != 2) /* the cascade */
			add_irqchip(r, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				    gsi % 8);
	for (gsi = 0; gsi < IRQ_NR_IOAPIC_PINS; gsi++)
		if (gsi != irq0_pin) /* that pin belongs to GSI 0 */
			add_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, gsi ? gsi : irq0_pin);
	pthread_mutex_lock(&r->lock);
	err = commit(r);
	pthread_mutex_unlock(&r->lock);
	return err;
}

void irq_routing__exit(struct irq_routing *r)
{
	pthread_mutex_destroy(&r->lock);
}

int irq_routing__add_msi(struct irq_routing *r, uint64_t addr, uint32_t data, uint32_t *gsi)
{
	int err;

	pthread_mutex_lock(&r->lock);
	if (r->nr == IRQ_MAX_ROUTES) {
		pthread_mutex_unlock(&r->lock);
		return -ENOSPC;
	}
	*gsi = r->next_msi_gsi++;
	r->entries[r->nr++] = (struct kvm_irq_routing_entry){
		.gsi = *gsi, .type = KVM_IRQ_ROUTING_MSI,
		.u.msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32),
			   .data = data } };
	err = commit(r);
	pthread_mutex_unlock(&r->lock);
	return err;
}

const struct kvm_irq_routing_entry *irq_routing__find(const struct irq_routing *r, uint32_t gsi,
						      uint32_t type)
{
	unsigned i;

	for (i = 0; i < r->nr; i++)
		if (r->entries[i].gsi == gsi && r->entries[i].type == type)
			return &r->entries[i];
	return NULL;
}

int irq_routing__set_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct kvm_irq_routing_entry *e;
	int err;

	pthread_mutex_lock(&r->lock);
	e = (struct kvm_irq_routing_entry *)irq_routing__find(r, gsi, KVM_IRQ_ROUTING_MSI);
	if (!e) {
		pthread_mutex_unlock(&r->lock);
		return -ENOENT;
	}
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	err = commit(r);
	pthread_mutex_unlock(&r->lock);
	return err;
}

int irq__irqfd(int vm_fd, int efd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd irqfd = {
		.fd = (uint32_t)efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int irq__ioeventfd(int vm_fd, uint64_t addr, uint32_t len, bool mmio, bool match,
		   uint64_t datamatch, int efd, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = match ? datamatch : 0,
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = (mmio ? 0 : KVM_IOEVENTFD_FLAG_PIO) |
			 (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}
