/*
 * virtio-net driver, CPL0 half: probe and initialisation (virtio 1.x,
 * 3.1.1 and 4.1.4) of the first (or nth) modern virtio-net PCI function.
 * The data path is in virtio_net.h (inline ring operations) and
 * test_net_user.c (the loops that use them). See virtio_net.h.
 */
#include "virtio_net.h"

/* Capability types (4.1.4). */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR    3
#define CAP_DEVICE 4
#define CAP_TYPES  5

/* Common configuration structure (4.1.4.3). */
#define CC_DFSELECT  0x00
#define CC_DF        0x04
#define CC_GFSELECT  0x08
#define CC_GF        0x0c
#define CC_NUMQ      0x12
#define CC_STATUS    0x14
#define CC_CFGGEN    0x15
#define CC_Q_SELECT  0x16
#define CC_Q_SIZE    0x18
#define CC_Q_MSIX    0x1a
#define CC_Q_ENABLE  0x1c
#define CC_Q_NOFF    0x1e
#define CC_Q_DESC    0x20
#define CC_Q_DRIVER  0x28
#define CC_Q_DEVICE  0x30
#define CC_SIZE      0x38

#define S_ACKNOWLEDGE 1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED      0x80

#define NO_VECTOR     0xffff
#define BIT(n)        (1ull << (n))

/* Device configuration (5.1.4). */
#define NETCFG_MAC    0
#define NETCFG_STATUS 6
#define NET_S_LINK_UP 1

static USER_BSS struct vnet vnet;
static USER_BSS struct vnet_ring vnet_rings[2];

struct cap {
	bool found;
	uint8_t bar;
	uint32_t off, len, mult;
};

__printf(3, 4)
static struct vnet *fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return NULL;
}

/* rep stosq: one instruction for the emulator, not one per byte. */
static void zero_qwords(void *p, size_t bytes)
{
	size_t n = bytes / 8;
	__asm__ volatile("rep stosq" : "+D"(p), "+c"(n) : "a"(0ull) : "memory");
}

static void set_status(struct vnet *n, uint8_t bits)
{
	mmio_write8(n->common + CC_STATUS, (uint8_t)(mmio_read8(n->common + CC_STATUS) | bits));
}

static void write64(uint64_t addr, uint64_t v)
{
	/* 64-bit fields as two 32-bit writes, low first (4.1.3.1: the device need not take 64-bit accesses). */
	mmio_write32(addr, (uint32_t)v);
	mmio_write32(addr + 4, (uint32_t)(v >> 32));
}

static const char *const cap_names[CAP_TYPES] = { "?", "common", "notify", "isr", "device" };

/* The first capability of each type (4.1.4: use the first one the driver understands). */
static bool read_caps(struct pci_addr a, struct cap caps[CAP_TYPES], char *why, size_t len)
{
	for (uint8_t off = pci__next_cap(a, PCI_CAP_ID_VNDR, 0); off; off = pci__next_cap(a, PCI_CAP_ID_VNDR, off)) {
		uint8_t cap_len = pci__read8(a, (uint8_t)(off + 2)), type = pci__read8(a, (uint8_t)(off + 3));
		struct cap c = {
			.found = true,
			.bar = pci__read8(a, (uint8_t)(off + 4)),
			.off = pci__read32(a, (uint8_t)(off + 8)),
			.len = pci__read32(a, (uint8_t)(off + 12)),
		};
		if (type == 0 || type >= CAP_TYPES || caps[type].found)
			continue;   /* PCI_CFG (5), vendor-specific or a later duplicate */
		if (cap_len < 16 || (type == CAP_NOTIFY && cap_len < 20) || c.bar > 5) {
			fail(why, len, "%s capability at 0x%x: length %u, bar %u", cap_names[type], off, cap_len, c.bar);
			return false;
		}
		if (type == CAP_NOTIFY)
			c.mult = pci__read32(a, (uint8_t)(off + 16));
		caps[type] = c;
	}
	return true;
}

/* The guest address of a capability's structure, checked against its BAR (size, 4 GiB identity map). */
static uint64_t cap_addr(struct vnet *n, const struct cap *c, uint32_t min_len, const char *name,
			 char *why, size_t len)
{
	uint64_t base = n->bar_addr[c->bar], size = n->bar_size[c->bar];

	if (!size || !base) {
		fail(why, len, "%s structure: BAR %u is %s", name, c->bar, size ? "unassigned (address 0)" : "not a memory BAR");
		return 0;
	}
	if (c->len < min_len || c->off > size || c->len > size - c->off) {
		fail(why, len, "%s structure: [+0x%x, %u bytes) does not fit BAR %u (%lu bytes) or is under %u bytes",
		     name, c->off, c->len, c->bar, size, min_len);
		return 0;
	}
	if (base + c->off + c->len > 0x100000000ull) {
		fail(why, len, "%s structure at 0x%lx: above 4 GiB, outside the guest's identity map", name, base + c->off);
		return 0;
	}
	return base + c->off;
}

static bool setup_queue(struct vnet *n, struct vnet_queue *q, uint16_t index, uint16_t want,
			const struct cap *notify, char *why, size_t len)
{
	mmio_write16(n->common + CC_Q_SELECT, index);
	uint16_t max = mmio_read16(n->common + CC_Q_SIZE);
	if (!max) {
		fail(why, len, "queue %u: not available (size 0)", index);
		return false;
	}
	if (mmio_read16(n->common + CC_Q_ENABLE)) {
		fail(why, len, "queue %u: enabled right after a reset", index);
		return false;
	}
	uint16_t size = want && want < VNET_QSIZE_MAX ? want : VNET_QSIZE_MAX;
	while (size > max)
		size >>= 1;
	while (size & (size - 1))
		size &= (uint16_t)(size - 1);   /* a power of two (split ring) */
	uint16_t noff = mmio_read16(n->common + CC_Q_NOFF);
	uint64_t where = (uint64_t)noff * notify->mult;
	if (where + 2 > notify->len) {
		fail(why, len, "queue %u: notify offset %u x %u is outside the notify structure (%u bytes)",
		     index, noff, notify->mult, notify->len);
		return false;
	}

	struct vnet_ring *r = &vnet_rings[index];
	zero_qwords(r, offsetof(struct vnet_ring, buf));
	*q = (struct vnet_queue){
		.ring = r,
		.notify = n->notify_base + where,
		.index = index,
		.size = size,
		.mask = (uint16_t)(size - 1),
	};
	r->avail.flags = VRING_AVAIL_F_NO_INTERRUPT;   /* we poll */
	for (uint16_t i = 0; i < size; i++) {
		r->desc[i] = (struct vring_desc){
			.addr = (uintptr_t)r->buf[i],
			.len = VNET_BUF_SIZE,
			.flags = index == VNET_RXQ ? VRING_DESC_F_WRITE : 0,
		};
		if (index == VNET_TXQ)
			q->free_ids[q->nfree++] = (uint16_t)(size - 1 - i);
	}

	mmio_write16(n->common + CC_Q_SIZE, size);
	mmio_write16(n->common + CC_Q_MSIX, NO_VECTOR);
	write64(n->common + CC_Q_DESC, (uintptr_t)r->desc);
	write64(n->common + CC_Q_DRIVER, (uintptr_t)&r->avail);
	write64(n->common + CC_Q_DEVICE, (uintptr_t)&r->used);
	mmio_write16(n->common + CC_Q_ENABLE, 1);
	if (index == VNET_RXQ)
		n->qmax_rx = max;
	else
		n->qmax_tx = max;
	return true;
}

/* Device configuration bytes, consistent per config_generation (4.1.4.3.1). */
static void read_config(struct vnet *n, uint32_t off, uint8_t *out, uint32_t count)
{
	for (unsigned tries = 0; tries < 100; tries++) {
		uint8_t gen = mmio_read8(n->common + CC_CFGGEN);
		for (uint32_t i = 0; i < count; i++)
			out[i] = mmio_read8(n->device + off + i);
		if (mmio_read8(n->common + CC_CFGGEN) == gen)
			return;
	}
}

struct vnet *vnet__init(const struct vnet_options *o, char *why, size_t len)
{
	struct vnet *n = &vnet;
	struct cap caps[CAP_TYPES] = { { 0 } };
	struct pci_addr a;

	zero_qwords(n, sizeof(*n));
	n->kick_always = o->kick_always;

	/* 1. The function, its capabilities, their BARs. */
	if (!pci__find(VNET_VENDOR_ID, VNET_DEVICE_ID, o->nth, &a))
		return fail(why, len, "no virtio-net function %u (%04x:%04x) on PCI bus 0", o->nth,
			    VNET_VENDOR_ID, VNET_DEVICE_ID);
	n->pci = a;
	if (!read_caps(a, caps, why, len))
		return NULL;
	for (unsigned t = CAP_COMMON; t <= CAP_ISR; t++)
		if (!caps[t].found)
			return fail(why, len, "no virtio %s capability", cap_names[t]);
	for (unsigned t = CAP_COMMON; t < CAP_TYPES; t++) {
		struct pci_bar_info b;
		uint8_t bar = caps[t].bar;
		if (!caps[t].found || n->bar_size[bar])
			continue;
		if (pci__bar(a, bar, &b) || b.io)
			return fail(why, len, "%s structure: BAR %u is not a memory BAR", cap_names[t], bar);
		n->bar_addr[bar] = b.addr;
		n->bar_size[bar] = b.size;
	}
	n->common_bar = caps[CAP_COMMON].bar;
	n->notify_bar = caps[CAP_NOTIFY].bar;
	n->notify_mult = caps[CAP_NOTIFY].mult;
	if (!(n->common = cap_addr(n, &caps[CAP_COMMON], CC_SIZE, "common", why, len)) ||
	    !(n->notify_base = cap_addr(n, &caps[CAP_NOTIFY], 2, "notify", why, len)) ||
	    !(n->isr = cap_addr(n, &caps[CAP_ISR], 1, "isr", why, len)))
		return NULL;
	if (caps[CAP_DEVICE].found) {
		n->device = cap_addr(n, &caps[CAP_DEVICE], 1, "device", why, len);
		if (!n->device)
			return NULL;
		n->device_len = caps[CAP_DEVICE].len;
	}

	/* 2. Memory decode and bus mastering (the device reads and writes our rings). */
	pci__write16(a, PCI_COMMAND, pci__read16(a, PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

	/* 3. Reset, then ACKNOWLEDGE and DRIVER (3.1.1). */
	mmio_write8(n->common + CC_STATUS, 0);
	uint64_t end = rdtsc() + time__us_to_tsc(1000000);
	while (mmio_read8(n->common + CC_STATUS))
		if (rdtsc() > end)
			return fail(why, len, "the device status stays 0x%x after a reset", mmio_read8(n->common + CC_STATUS));
	set_status(n, S_ACKNOWLEDGE);
	set_status(n, S_DRIVER);

	/* 4. Features: VERSION_1 required, MAC and STATUS if offered; FEATURES_OK must stick. */
	mmio_write32(n->common + CC_DFSELECT, 0);
	uint64_t offered = mmio_read32(n->common + CC_DF);
	mmio_write32(n->common + CC_DFSELECT, 1);
	offered |= (uint64_t)mmio_read32(n->common + CC_DF) << 32;
	n->features_offered = offered;
	if (!(offered & BIT(VNET_F_VERSION_1))) {
		set_status(n, S_FAILED);
		return fail(why, len, "the device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)", offered);
	}
	uint64_t want = BIT(VNET_F_VERSION_1);
	if (n->device && n->device_len >= 6)
		want |= offered & BIT(VNET_F_MAC);
	if (n->device && n->device_len >= 8)
		want |= offered & BIT(VNET_F_STATUS);
	n->features = want;
	mmio_write32(n->common + CC_GFSELECT, 0);
	mmio_write32(n->common + CC_GF, (uint32_t)want);
	mmio_write32(n->common + CC_GFSELECT, 1);
	mmio_write32(n->common + CC_GF, (uint32_t)(want >> 32));
	set_status(n, S_FEATURES_OK);
	uint8_t st = mmio_read8(n->common + CC_STATUS);
	if (!(st & S_FEATURES_OK)) {
		set_status(n, S_FAILED);
		return fail(why, len, "the device refused features 0x%lx (status 0x%x)", want, st);
	}

	/* 5. Queues: rx 0, tx 1; MSI-X vectors none (poll mode). */
	n->num_queues = mmio_read16(n->common + CC_NUMQ);
	if (n->num_queues < 2) {
		set_status(n, S_FAILED);
		return fail(why, len, "the device has %u queues, rx and tx need 2", n->num_queues);
	}
	if (!setup_queue(n, &n->rx, VNET_RXQ, o->qsize, &caps[CAP_NOTIFY], why, len) ||
	    !setup_queue(n, &n->tx, VNET_TXQ, o->qsize, &caps[CAP_NOTIFY], why, len)) {
		set_status(n, S_FAILED);
		return NULL;
	}

	/* 6. DRIVER_OK; a device that found fault with the set-up says NEEDS_RESET. */
	set_status(n, S_DRIVER_OK);
	st = mmio_read8(n->common + CC_STATUS);
	if (st & S_NEEDS_RESET || !(st & S_DRIVER_OK)) {
		set_status(n, S_FAILED);
		return fail(why, len, "the device did not take DRIVER_OK (status 0x%x)", st);
	}

	/* 7. Every rx buffer to the device, one kick. */
	for (uint16_t i = 0; i < n->rx.size; i++)
		vnet_rx_post(n, i);
	vnet_kick(n, &n->rx);

	/* 8. The MAC: the device's, or a locally administered one. */
	if (n->features & BIT(VNET_F_MAC)) {
		read_config(n, NETCFG_MAC, n->mac, 6);
	} else {
		static const uint8_t local[6] = { 0x02, 0, 0, 0, 0, 0x01 };
		memcpy(n->mac, local, 6);
	}
	return n;
}

int vnet__link_up(struct vnet *n)
{
	uint8_t s[2];

	if (!(n->features & BIT(VNET_F_STATUS)))
		return -1;
	read_config(n, NETCFG_STATUS, s, 2);
	return s[0] & NET_S_LINK_UP;
}

void vnet__reset(struct vnet *n)
{
	mmio_write8(n->common + CC_STATUS, 0);
	uint64_t end = rdtsc() + time__us_to_tsc(1000000);
	while (mmio_read8(n->common + CC_STATUS) && rdtsc() < end)
		barrier();
}

const char *vnet__error_name(uint32_t error)
{
	switch (error) {
	case VNET_OK: return "none";
	case VNET_ERR_USED_IDX: return "used index ran ahead of the buffers in flight";
	case VNET_ERR_USED_ID: return "used id out of range or not in flight";
	case VNET_ERR_USED_LEN: return "used length beyond the buffer";
	default: return "?";
	}
}
