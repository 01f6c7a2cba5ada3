#include "vmm/pci/msix.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static uint16_t msg_control(const struct msix *m)
{
	return (uint16_t)pci_dev__cfg_get(m->dev, m->cap + PCI_MSIX_FLAGS, 2);
}

bool msix__masked(const struct msix *m, uint16_t vector)
{
	uint16_t ctl = msg_control(m);

	if (vector >= m->nr_vectors)
		return true;
	return !(ctl & PCI_MSIX_FLAGS_ENABLE) || (ctl & PCI_MSIX_FLAGS_MASKALL) ||
	       !(pci_dev__cfg_get(m->dev, PCI_COMMAND, 2) & PCI_COMMAND_MASTER) ||
	       (m->vec[vector].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static uint64_t vec_addr(const struct msix_vector *v)
{
	return (uint64_t)v->addr_hi << 32 | v->addr_lo;
}

/* Sends the entry's message now (KVM_SIGNAL_MSI). */
static void signal_msi(struct msix *m, const struct msix_vector *v)
{
	struct kvm_msi msi = {
		.address_lo = v->addr_lo,
		.address_hi = v->addr_hi,
		.data = v->data,
	};

	m->stats.notified++;
	if (ioctl(m->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		m->stats.signal_errors++;
}

int msix__prepare(struct msix *m, uint16_t vector)
{
	struct msix_vector *v;
	int err;

	if (vector >= m->nr_vectors)
		return -EINVAL;
	v = &m->vec[vector];
	if (v->has_gsi)
		return 0;
	err = irq_routing__add_msi(m->irqs, vec_addr(v), v->data, &v->gsi);
	if (err) {
		m->stats.route_errors++;
		return err;
	}
	v->has_gsi = true;
	v->route_set = true;
	v->route_addr = vec_addr(v);
	v->route_data = v->data;
	return 0;
}

/* Points the vector's route at the entry's current message, if it changed. */
static void sync_route(struct msix *m, struct msix_vector *v)
{
	if (!v->has_gsi || (v->route_set && v->route_addr == vec_addr(v) &&
			    v->route_data == v->data))
		return;
	if (irq_routing__set_msi(m->irqs, v->gsi, vec_addr(v), v->data)) {
		m->stats.route_errors++;
		v->route_set = false;
		return;
	}
	v->route_set = true;
	v->route_addr = vec_addr(v);
	v->route_data = v->data;
}

static void wire(struct msix *m, struct msix_source *s, const struct msix_vector *v)
{
	if (s->wired || !v->has_gsi)
		return;
	if (irq__irqfd(m->vm_fd, s->efd, v->gsi, true)) {
		m->stats.irqfd_errors++;
		return;
	}
	s->wired = true;
}

static void unwire(struct msix *m, struct msix_source *s, const struct msix_vector *v)
{
	if (!s->wired)
		return;
	if (irq__irqfd(m->vm_fd, s->efd, v->gsi, false))
		m->stats.irqfd_errors++;
	s->wired = false;
}

/* Reads (and so clears) an eventfd; true if it had been signalled. */
static bool drain(int efd)
{
	uint64_t cnt;

	return read(efd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt) && cnt;
}

static bool signalled(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Applies vector `i`'s mask state if it changed (see the header for the protocol). */
static void sync_vector(struct msix *m, uint16_t i)
{
	struct msix_vector *v = &m->vec[i];
	bool live = !msix__masked(m, i);
	bool pending = v->pending;
	unsigned s;

	if (live == v->live) {
		if (live)
			sync_route(m, v);   /* the guest rewrote an unmasked entry */
		return;
	}
	v->live = live;
	if (!live) {
		for (s = 0; s < m->nr_sources; s++)
			if (m->src[s].efd >= 0 && m->src[s].vector == i)
				unwire(m, &m->src[s], v);
		return;
	}
	sync_route(m, v);
	for (s = 0; s < m->nr_sources; s++) {
		struct msix_source *src = &m->src[s];

		if (src->efd < 0 || src->vector != i)
			continue;
		pending |= drain(src->efd);
		wire(m, src, v);
	}
	v->pending = false;
	if (pending)
		signal_msi(m, v);
}

static void sync_all(struct msix *m)
{
	uint16_t i;

	for (i = 0; i < m->nr_vectors; i++)
		sync_vector(m, i);
}

int msix__init(struct msix *m, struct pci_dev *dev, uint16_t nr_vectors, unsigned bar,
	       uint32_t table_off, uint32_t pba_off, unsigned nr_sources, int vm_fd,
	       struct irq_routing *irqs)
{
	uint8_t cap[PCI_CAP_MSIX_SIZEOF] = { PCI_CAP_ID_MSIX };
	uint32_t v;
	unsigned i;
	int off;

	memset(m, 0, sizeof(*m));
	if (!nr_vectors || nr_vectors > MSIX_MAX_VECTORS || bar >= PCI_NR_BARS ||
	    (table_off | pba_off) & 7 || !irqs)
		return -EINVAL;
	m->vec = calloc(nr_vectors, sizeof(*m->vec));
	m->src = calloc(nr_sources ? nr_sources : 1, sizeof(*m->src));
	if (!m->vec || !m->src) {
		free(m->vec);
		free(m->src);
		return -ENOMEM;
	}
	for (i = 0; i < nr_vectors; i++)
		m->vec[i].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	for (i = 0; i < nr_sources; i++)
		m->src[i] = (struct msix_source){ .efd = -1, .vector = MSIX_NO_VECTOR };

	v = (uint32_t)(nr_vectors - 1);
	memcpy(cap + PCI_MSIX_FLAGS, &v, 2);
	v = table_off | bar;
	memcpy(cap + PCI_MSIX_TABLE, &v, 4);
	v = pba_off | bar;
	memcpy(cap + PCI_MSIX_PBA, &v, 4);
	off = pci_dev__add_cap(dev, cap, sizeof(cap));
	if (off < 0) {
		free(m->vec);
		free(m->src);
		return off;
	}
	pci_dev__set_wmask(dev, (uint32_t)off + PCI_MSIX_FLAGS, 2,
			   PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	m->dev = dev;
	m->cap = (uint8_t)off;
	m->nr_vectors = nr_vectors;
	m->nr_sources = nr_sources;
	m->vm_fd = vm_fd;
	m->irqs = irqs;
	return 0;
}

void msix__reset(struct msix *m)
{
	uint16_t i;

	for (i = 0; i < m->nr_vectors; i++) {
		struct msix_vector *v = &m->vec[i];

		v->addr_lo = v->addr_hi = v->data = 0;
		v->ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
		v->pending = false;
	}
	sync_all(m);
}

void msix__exit(struct msix *m)
{
	unsigned i;

	for (i = 0; m->src && i < m->nr_sources; i++)
		msix__unbind(m, i);
	free(m->vec);
	free(m->src);
	m->vec = NULL;
	m->src = NULL;
}

/* ---- table and PBA --------------------------------------------------------- */

static void entry_image(const struct msix_vector *v, uint8_t img[PCI_MSIX_ENTRY_SIZE])
{
	memcpy(img + PCI_MSIX_ENTRY_LOWER_ADDR, &v->addr_lo, 4);
	memcpy(img + PCI_MSIX_ENTRY_UPPER_ADDR, &v->addr_hi, 4);
	memcpy(img + PCI_MSIX_ENTRY_DATA, &v->data, 4);
	memcpy(img + PCI_MSIX_ENTRY_VECTOR_CTRL, &v->ctrl, 4);
}

void msix__table_read(struct msix *m, uint64_t off, void *data, uint32_t len)
{
	uint8_t *out = data;
	uint32_t i;

	for (i = 0; i < len; i++) {
		uint64_t o = off + i;
		uint8_t img[PCI_MSIX_ENTRY_SIZE];

		if (o >= MSIX_TABLE_SIZE(m->nr_vectors)) {
			out[i] = 0xff;
			continue;
		}
		entry_image(&m->vec[o / PCI_MSIX_ENTRY_SIZE], img);
		out[i] = img[o % PCI_MSIX_ENTRY_SIZE];
	}
}

void msix__table_write(struct msix *m, uint64_t off, const void *data, uint32_t len)
{
	const uint8_t *in = data;
	uint64_t first, last, e;

	if (!len || off >= MSIX_TABLE_SIZE(m->nr_vectors) ||
	    len > MSIX_TABLE_SIZE(m->nr_vectors) - off)
		return;
	first = off / PCI_MSIX_ENTRY_SIZE;
	last = (off + len - 1) / PCI_MSIX_ENTRY_SIZE;
	for (e = first; e <= last; e++) {
		struct msix_vector *v = &m->vec[e];
		uint8_t img[PCI_MSIX_ENTRY_SIZE];
		uint64_t base = e * PCI_MSIX_ENTRY_SIZE, o;

		entry_image(v, img);
		for (o = off > base ? off : base; o < off + len && o < base + PCI_MSIX_ENTRY_SIZE; o++)
			img[o - base] = in[o - off];
		memcpy(&v->addr_lo, img + PCI_MSIX_ENTRY_LOWER_ADDR, 4);
		memcpy(&v->addr_hi, img + PCI_MSIX_ENTRY_UPPER_ADDR, 4);
		memcpy(&v->data, img + PCI_MSIX_ENTRY_DATA, 4);
		memcpy(&v->ctrl, img + PCI_MSIX_ENTRY_VECTOR_CTRL, 4);
		v->ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;   /* other bits reserved */
		sync_vector(m, (uint16_t)e);
	}
}

static bool vector_pending(const struct msix *m, uint16_t i)
{
	const struct msix_vector *v = &m->vec[i];
	unsigned s;

	if (v->pending)
		return true;
	if (v->live)
		return false;
	for (s = 0; s < m->nr_sources; s++)
		if (m->src[s].efd >= 0 && m->src[s].vector == i && signalled(m->src[s].efd))
			return true;
	return false;
}

void msix__pba_read(struct msix *m, uint64_t off, void *data, uint32_t len)
{
	uint8_t *out = data;
	uint32_t i, b;

	for (i = 0; i < len; i++) {
		uint64_t o = off + i;

		out[i] = 0;
		if (o >= MSIX_PBA_SIZE(m->nr_vectors))
			continue;
		for (b = 0; b < 8; b++) {
			uint64_t vec = o * 8 + b;

			if (vec < m->nr_vectors && vector_pending(m, (uint16_t)vec))
				out[i] |= (uint8_t)(1u << b);
		}
	}
}

void msix__config_written(struct msix *m, uint32_t off, uint32_t len)
{
	uint32_t ctl = (uint32_t)m->cap + PCI_MSIX_FLAGS;

	/* Message control (enable, function mask) or the command register (bus master). */
	if ((off < ctl + 2 && ctl < off + len) || (off < PCI_COMMAND + 2 && PCI_COMMAND < off + len))
		sync_all(m);
}

/* ---- sources --------------------------------------------------------------- */

int msix__bind(struct msix *m, unsigned i, int efd, uint16_t vector)
{
	struct msix_source *s;
	int err;

	if (i >= m->nr_sources || efd < 0)
		return -EINVAL;
	msix__unbind(m, i);
	s = &m->src[i];
	if (vector != MSIX_NO_VECTOR) {
		err = msix__prepare(m, vector);
		if (err)
			return err;
	}
	*s = (struct msix_source){ .efd = efd, .vector = vector };
	if (vector != MSIX_NO_VECTOR && m->vec[vector].live) {
		sync_route(m, &m->vec[vector]);
		wire(m, s, &m->vec[vector]);
	}
	return 0;
}

void msix__unbind(struct msix *m, unsigned i)
{
	struct msix_source *s;

	if (i >= m->nr_sources)
		return;
	s = &m->src[i];
	if (s->efd >= 0 && s->vector < m->nr_vectors)
		unwire(m, s, &m->vec[s->vector]);
	*s = (struct msix_source){ .efd = -1, .vector = MSIX_NO_VECTOR };
}

void msix__notify(struct msix *m, uint16_t vector)
{
	struct msix_vector *v;

	if (vector >= m->nr_vectors)
		return;
	v = &m->vec[vector];
	if (v->live) {
		signal_msi(m, v);
	} else {
		v->pending = true;
		m->stats.pended++;
	}
}
