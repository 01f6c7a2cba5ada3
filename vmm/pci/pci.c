#include "vmm/pci/pci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/x86/layout.h"

#define PCI_CONFIG_ADDRESS_ENABLE  0x80000000u
/* Bits kept in CONFIG_ADDRESS: enable, extended register (27:24), bus, device, function, register. */
#define PCI_CONFIG_ADDRESS_MASK    0x8ffffffcu

struct pci_bus {
	uint64_t mmio_base, mmio_size;
	uint64_t mmio_next;          /* BAR allocator: next free address in the window */
	uint32_t config_address;     /* CONFIG_ADDRESS (atomic: written by any vCPU) */
	pthread_rwlock_t bars_lock;  /* publishes bars[].addr/decoding to the window's lookup */
	struct pci_dev *slots[PCI_MAX_SLOTS];
	struct pci_dev host;
	uint64_t cfg_unclaimed, mmio_unclaimed;
};

/* ---- config space bytes --------------------------------------------------- */

uint32_t pci_dev__cfg_get(const struct pci_dev *dev, uint32_t off, uint32_t len)
{
	uint32_t v = 0, i;

	for (i = 0; i < len && i < 4 && off + i < PCI_CFG_SIZE; i++)
		v |= (uint32_t)dev->cfg[off + i] << (8 * i);
	return v;
}

void pci_dev__cfg_set(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val)
{
	uint32_t i;

	for (i = 0; i < len && i < 4 && off + i < PCI_CFG_SIZE; i++)
		dev->cfg[off + i] = (uint8_t)(val >> (8 * i));
}

void pci_dev__set_wmask(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t mask)
{
	uint32_t i;

	for (i = 0; i < len && i < 4 && off + i < PCI_CFG_SIZE; i++)
		dev->wmask[off + i] = (uint8_t)(mask >> (8 * i));
}

static void set_w1cmask(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t mask)
{
	uint32_t i;

	for (i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
		dev->w1cmask[off + i] = (uint8_t)(mask >> (8 * i));
}

void pci_dev__init(struct pci_dev *dev, const char *name, uint16_t vendor, uint16_t device,
		   uint32_t class_code, uint8_t revision, const struct pci_dev_ops *ops)
{
	pthread_mutexattr_t attr;

	memset(dev, 0, sizeof(*dev));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&dev->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	dev->name = name;
	dev->ops = ops;
	dev->slot = -1;
	dev->cap_free = PCI_CAP_START;

	pci_dev__cfg_set(dev, PCI_VENDOR_ID, 2, vendor);
	pci_dev__cfg_set(dev, PCI_DEVICE_ID, 2, device);
	pci_dev__cfg_set(dev, PCI_CLASS_REVISION, 4, class_code << 8 | revision);
	dev->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL; /* single function */
	dev->cfg[PCI_INTERRUPT_PIN] = 0;                     /* no INTx: MSI-X only */

	pci_dev__set_wmask(dev, PCI_COMMAND, 2, PCI_COMMAND_WMASK);
	set_w1cmask(dev, PCI_STATUS, 2, PCI_STATUS_W1C);
	pci_dev__set_wmask(dev, PCI_CACHE_LINE_SIZE, 1, 0xff);
	pci_dev__set_wmask(dev, PCI_LATENCY_TIMER, 1, 0xff);
	pci_dev__set_wmask(dev, PCI_INTERRUPT_LINE, 1, 0xff); /* OS scratch byte */
}

void pci_dev__exit(struct pci_dev *dev)
{
	pthread_mutex_destroy(&dev->lock);
}

void pci_dev__set_subsystem(struct pci_dev *dev, uint16_t vendor, uint16_t device)
{
	pci_dev__cfg_set(dev, PCI_SUBSYSTEM_VENDOR_ID, 2, vendor);
	pci_dev__cfg_set(dev, PCI_SUBSYSTEM_ID, 2, device);
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int pci_dev__add_bar(struct pci_dev *dev, unsigned bar, uint64_t size, uint32_t flags,
		     const struct io_ops *ops, void *opaque)
{
	bool is64 = flags & PCI_BASE_ADDRESS_MEM_TYPE_64;
	unsigned i;

	if (bar >= PCI_NR_BARS || (is64 && bar + 1 >= PCI_NR_BARS) || !is_pow2(size) || size < 16 ||
	    (!is64 && size > 0x80000000ULL) || !ops || dev->slot >= 0 ||
	    (flags & ~(uint32_t)(PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH)))
		return -EINVAL;
	for (i = 0; i < PCI_NR_BARS; i++) {
		const struct pci_bar *b = &dev->bars[i];

		if (!b->size)
			continue;
		/* Taken: this slot, or the upper half of a 64-bit BAR below. */
		if (i == bar || (is64 && i == bar + 1) ||
		    ((b->flags & PCI_BASE_ADDRESS_MEM_TYPE_64) && i + 1 == bar))
			return -EINVAL;
	}
	dev->bars[bar] = (struct pci_bar){ .size = size, .flags = flags, .ops = ops,
					   .opaque = opaque };
	/* The address bits above the size are writable; the low 4 flag bits are not. */
	pci_dev__set_wmask(dev, PCI_BASE_ADDRESS_0 + 4 * bar, 4, (uint32_t)~(size - 1) & ~0xfu);
	pci_dev__cfg_set(dev, PCI_BASE_ADDRESS_0 + 4 * bar, 4, flags);
	if (is64)
		pci_dev__set_wmask(dev, PCI_BASE_ADDRESS_0 + 4 * (bar + 1), 4,
				   (uint32_t)(~(size - 1) >> 32));
	return 0;
}

int pci_dev__add_cap(struct pci_dev *dev, const void *cap, uint8_t len)
{
	uint32_t off = (dev->cap_free + 3u) & ~3u;

	if (len < 2)
		return -EINVAL;
	if (off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(dev->cfg + off, cap, len);
	dev->cfg[off + PCI_CAP_LIST_NEXT] = 0;
	if (dev->cap_last)
		dev->cfg[dev->cap_last + PCI_CAP_LIST_NEXT] = (uint8_t)off;
	else
		dev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	dev->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	dev->cap_last = (uint8_t)off;
	dev->cap_free = (uint8_t)(off + len);
	return (int)off;
}

/* ---- BARs ------------------------------------------------------------------ */

static bool in_window(const struct pci_bus *bus, uint64_t addr, uint64_t size)
{
	return addr >= bus->mmio_base && addr - bus->mmio_base < bus->mmio_size &&
	       size <= bus->mmio_size - (addr - bus->mmio_base);
}

/* The address in BAR `bar`'s register(s), with the bits below the size forced to 0. */
static uint64_t bar_register_addr(const struct pci_dev *dev, unsigned bar)
{
	const struct pci_bar *b = &dev->bars[bar];
	uint64_t raw = pci_dev__cfg_get(dev, PCI_BASE_ADDRESS_0 + 4 * bar, 4) & ~0xfu;

	if (b->flags & PCI_BASE_ADDRESS_MEM_TYPE_64)
		raw |= (uint64_t)pci_dev__cfg_get(dev, PCI_BASE_ADDRESS_0 + 4 * (bar + 1), 4) << 32;
	return raw & ~(b->size - 1);
}

static void bar_register_set(struct pci_dev *dev, unsigned bar, uint64_t addr)
{
	const struct pci_bar *b = &dev->bars[bar];

	pci_dev__cfg_set(dev, PCI_BASE_ADDRESS_0 + 4 * bar, 4, (uint32_t)addr | b->flags);
	if (b->flags & PCI_BASE_ADDRESS_MEM_TYPE_64)
		pci_dev__cfg_set(dev, PCI_BASE_ADDRESS_0 + 4 * (bar + 1), 4, (uint32_t)(addr >> 32));
}

/*
 * Recomputes every BAR's address and decode state from the registers and the
 * command register; publishes changes to the window's lookup and tells the
 * device. Called with dev->lock held (lock order: dev->lock, then bars_lock).
 */
static void update_bars(struct pci_dev *dev)
{
	bool mem_on = pci_dev__cfg_get(dev, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY;
	unsigned i;

	for (i = 0; i < PCI_NR_BARS; i++) {
		struct pci_bar *b = &dev->bars[i];
		uint64_t addr, old;
		bool on, was_on;

		if (!b->size)
			continue;
		addr = bar_register_addr(dev, i);
		on = mem_on && dev->bus && in_window(dev->bus, addr, b->size);
		if (on == b->decoding && addr == b->addr)
			continue;
		old = b->addr;
		was_on = b->decoding;
		if (dev->bus)
			pthread_rwlock_wrlock(&dev->bus->bars_lock);
		b->addr = addr;
		b->decoding = on;
		if (dev->bus)
			pthread_rwlock_unlock(&dev->bus->bars_lock);
		/* Only decode changes and moves of a decoding BAR matter to the device. */
		if ((on || was_on) && dev->ops && dev->ops->bar_changed)
			dev->ops->bar_changed(dev, i, was_on, old, on, addr);
	}
}

/* ---- config accesses ------------------------------------------------------- */

static void dev_config_read(struct pci_dev *dev, uint32_t off, void *data, uint32_t len)
{
	pthread_mutex_lock(&dev->lock);
	if (dev->ops && dev->ops->config_reading)
		dev->ops->config_reading(dev, off, len);
	memcpy(data, dev->cfg + off, len);
	pthread_mutex_unlock(&dev->lock);
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t end)
{
	return off < end && start < off + len;
}

/*
 * What follows a change of config [off, off+len) in cfg[]: BAR registers and
 * decode when the command register or a BAR changed, then the device's hook.
 * Called with dev->lock held.
 */
static void config_changed(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	if (overlaps(off, len, PCI_COMMAND, PCI_COMMAND + 2) ||
	    overlaps(off, len, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_5 + 4)) {
		unsigned b;

		/* Registers hold what the BAR decodes: size bits read back as 0 (the sizing protocol). */
		for (b = 0; b < PCI_NR_BARS; b++)
			if (dev->bars[b].size)
				bar_register_set(dev, b, bar_register_addr(dev, b));
		update_bars(dev);
	}
	if (dev->ops && dev->ops->config_written)
		dev->ops->config_written(dev, off, len);
}

static void dev_config_write(struct pci_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	const uint8_t *v = data;
	uint32_t i;

	pthread_mutex_lock(&dev->lock);
	for (i = 0; i < len; i++) {
		uint8_t *c = &dev->cfg[off + i];

		*c = (uint8_t)((*c & ~dev->wmask[off + i]) | (v[i] & dev->wmask[off + i]));
		*c &= (uint8_t)~(v[i] & dev->w1cmask[off + i]);
	}
	config_changed(dev, off, len);
	pthread_mutex_unlock(&dev->lock);
}

/*
 * Puts a saved configuration space back as far as a guest could have made
 * it: the writable and write-one-to-clear bits from `saved`, the read-only
 * ones as built (so a hostile snapshot cannot rewrite ids, capability
 * pointers or BAR sizes). BARs then map and the device hears of it as after a
 * guest write of the command register; other writes are not replayed (a
 * write can act, e.g. virtio-pci's configuration access window).
 */
static void dev_config_restore(struct pci_dev *dev, const uint8_t *saved)
{
	uint32_t i;

	pthread_mutex_lock(&dev->lock);
	for (i = 0; i < PCI_CFG_SIZE; i++) {
		uint8_t keep = (uint8_t)~(dev->wmask[i] | dev->w1cmask[i]);

		dev->cfg[i] = (uint8_t)((dev->cfg[i] & keep) | (saved[i] & ~keep));
	}
	config_changed(dev, PCI_COMMAND, 2);
	pthread_mutex_unlock(&dev->lock);
}

/*
 * The function CONFIG_ADDRESS selects, with the register offset of an access
 * at CONFIG_DATA + `port_off`; NULL for disabled cycles, other buses,
 * functions other than 0, extended registers and empty slots.
 */
static struct pci_dev *config_target(struct pci_bus *bus, uint32_t port_off, uint32_t *reg)
{
	uint32_t a = __atomic_load_n(&bus->config_address, __ATOMIC_RELAXED);
	unsigned bus_nr = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;

	if (!(a & PCI_CONFIG_ADDRESS_ENABLE) || bus_nr != 0 || fn != 0 || (a >> 24) & 0xf)
		return NULL;
	*reg = (a & 0xfc) + port_off;
	return bus->slots[slot];
}

static void config_address_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	uint32_t v;

	if (off != 0 || len != 4) {   /* 0xCF9 etc. are not CONFIG_ADDRESS */
		memset(data, 0xff, len);
		return;
	}
	v = __atomic_load_n(&bus->config_address, __ATOMIC_RELAXED);
	memcpy(data, &v, 4);
}

static void config_address_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	uint32_t v;

	if (off != 0 || len != 4)
		return;
	memcpy(&v, data, 4);
	__atomic_store_n(&bus->config_address, v & PCI_CONFIG_ADDRESS_MASK, __ATOMIC_RELAXED);
}

static void config_data_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	struct pci_dev *dev;
	uint32_t reg;

	dev = config_target(bus, (uint32_t)off, &reg);
	if (!dev || len > 4 || reg + len > PCI_CFG_SIZE) {
		__atomic_add_fetch(&bus->cfg_unclaimed, 1, __ATOMIC_RELAXED);
		memset(data, 0xff, len);
		return;
	}
	dev_config_read(dev, reg, data, len);
}

static void config_data_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	struct pci_dev *dev;
	uint32_t reg;

	dev = config_target(bus, (uint32_t)off, &reg);
	if (!dev || len > 4 || reg + len > PCI_CFG_SIZE) {
		__atomic_add_fetch(&bus->cfg_unclaimed, 1, __ATOMIC_RELAXED);
		return;
	}
	dev_config_write(dev, reg, data, len);
}

static const struct io_ops config_address_ops = {
	.read = config_address_read,
	.write = config_address_write,
};

static const struct io_ops config_data_ops = {
	.read = config_data_read,
	.write = config_data_write,
};

/* ---- the MMIO window ------------------------------------------------------- */

struct bar_hit {
	const struct io_ops *ops;
	void *opaque;
	uint64_t off;
};

static bool window_lookup(struct pci_bus *bus, uint64_t addr, uint32_t len, struct bar_hit *hit)
{
	bool found = false;
	unsigned s, i;

	pthread_rwlock_rdlock(&bus->bars_lock);
	for (s = 0; s < PCI_MAX_SLOTS && !found; s++) {
		const struct pci_dev *dev = bus->slots[s];

		if (!dev)
			continue;
		for (i = 0; i < PCI_NR_BARS; i++) {
			const struct pci_bar *b = &dev->bars[i];

			if (b->decoding && addr >= b->addr && addr - b->addr < b->size &&
			    len <= b->size - (addr - b->addr)) {
				*hit = (struct bar_hit){ b->ops, b->opaque, addr - b->addr };
				found = true;
				break;
			}
		}
	}
	pthread_rwlock_unlock(&bus->bars_lock);
	return found;
}

static void window_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	struct bar_hit hit;

	if (!window_lookup(bus, bus->mmio_base + off, len, &hit) || !hit.ops->read) {
		__atomic_add_fetch(&bus->mmio_unclaimed, 1, __ATOMIC_RELAXED);
		memset(data, 0xff, len);
		return;
	}
	hit.ops->read(hit.opaque, hit.off, data, len);
}

static void window_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct pci_bus *bus = opaque;
	struct bar_hit hit;

	if (!window_lookup(bus, bus->mmio_base + off, len, &hit) || !hit.ops->write) {
		__atomic_add_fetch(&bus->mmio_unclaimed, 1, __ATOMIC_RELAXED);
		return;
	}
	hit.ops->write(hit.opaque, hit.off, data, len);
}

static const struct io_ops window_ops = {
	.read = window_read,
	.write = window_write,
};

/* ---- the bus --------------------------------------------------------------- */

int pci_bus__create(struct bus *pio, struct bus *mmio, uint64_t mmio_base, uint64_t mmio_size,
		    struct pci_bus **out)
{
	struct pci_bus *bus;
	int err;

	if (!mmio_size || mmio_base + mmio_size < mmio_base || mmio_base % PCI_BAR_MIN_ALIGN)
		return -EINVAL;
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return -ENOMEM;
	bus->mmio_base = bus->mmio_next = mmio_base;
	bus->mmio_size = mmio_size;
	pthread_rwlock_init(&bus->bars_lock, NULL);

	err = bus__register(pio, PORT_PCI_CONFIG_ADDRESS, 4, &config_address_ops, bus,
			    "pci-config-address");
	if (err)
		goto err_free;
	/*
	 * Buses have no unregister: once a range is claimed the bus must outlive
	 * it, so a later failure leaves `bus` allocated (and inert) rather than
	 * dangling. The composition root abandons the VM on any error anyway.
	 */
	err = bus__register(pio, PORT_PCI_CONFIG_DATA, 4, &config_data_ops, bus, "pci-config-data");
	if (err)
		return err;
	err = bus__register(mmio, mmio_base, mmio_size, &window_ops, bus, "pci-mmio-window");
	if (err)
		return err;

	pci_dev__init(&bus->host, "host-bridge", PCI_HOST_VENDOR_ID, PCI_HOST_DEVICE_ID,
		      PCI_HOST_CLASS, 0, NULL);
	bus->host.slot = 0;
	bus->host.bus = bus;
	memcpy(bus->host.cfg_reset, bus->host.cfg, sizeof(bus->host.cfg));
	bus->slots[0] = &bus->host;
	*out = bus;
	return 0;

err_free:
	pthread_rwlock_destroy(&bus->bars_lock);
	free(bus);
	return err;
}

void pci_bus__destroy(struct pci_bus *bus)
{
	if (!bus)
		return;
	pci_dev__exit(&bus->host);
	pthread_rwlock_destroy(&bus->bars_lock);
	free(bus);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int pci_bus__add(struct pci_bus *bus, struct pci_dev *dev)
{
	uint64_t next = bus->mmio_next, addr[PCI_NR_BARS] = { 0 };
	unsigned slot, i;

	for (slot = 0; slot < PCI_MAX_SLOTS && bus->slots[slot]; slot++)
		;
	if (slot == PCI_MAX_SLOTS)
		return -ENOSPC;
	for (i = 0; i < PCI_NR_BARS; i++) {
		const struct pci_bar *b = &dev->bars[i];
		uint64_t a;

		if (!b->size)
			continue;
		a = align_up(next, b->size > PCI_BAR_MIN_ALIGN ? b->size : PCI_BAR_MIN_ALIGN);
		if (a < next || !in_window(bus, a, b->size))
			return -ENOSPC;
		addr[i] = a;
		next = a + b->size;
	}
	pthread_mutex_lock(&dev->lock);
	for (i = 0; i < PCI_NR_BARS; i++)
		if (dev->bars[i].size) {
			dev->bars[i].addr = addr[i];
			bar_register_set(dev, i, addr[i]);
		}
	dev->slot = (int)slot;
	dev->bus = bus;
	memcpy(dev->cfg_reset, dev->cfg, sizeof(dev->cfg));
	pthread_mutex_unlock(&dev->lock);
	bus->mmio_next = next;
	pthread_rwlock_wrlock(&bus->bars_lock);
	bus->slots[slot] = dev;
	pthread_rwlock_unlock(&bus->bars_lock);
	return 0;
}

void pci_bus__get_stats(struct pci_bus *bus, struct pci_bus_stats *st)
{
	st->cfg_unclaimed = __atomic_load_n(&bus->cfg_unclaimed, __ATOMIC_RELAXED);
	st->mmio_unclaimed = __atomic_load_n(&bus->mmio_unclaimed, __ATOMIC_RELAXED);
}

void pci_bus__reset(struct pci_bus *bus)
{
	unsigned s;

	__atomic_store_n(&bus->config_address, 0, __ATOMIC_RELAXED);
	for (s = 0; s < PCI_MAX_SLOTS; s++) {
		struct pci_dev *dev = bus->slots[s];

		if (!dev)
			continue;
		pthread_mutex_lock(&dev->lock);
		memcpy(dev->cfg, dev->cfg_reset, sizeof(dev->cfg));
		update_bars(dev);
		if (dev->ops && dev->ops->config_written)
			dev->ops->config_written(dev, 0, PCI_CFG_SIZE);
		pthread_mutex_unlock(&dev->lock);
	}
}

static void pci_bus_device_reset(void *dev)
{
	pci_bus__reset(dev);
}

static void pci_bus_device_destroy(void *dev)
{
	pci_bus__destroy(dev);
}

static void pci_bus_device_report(void *dev, FILE *out)
{
	struct pci_bus_stats st;

	pci_bus__get_stats(dev, &st);
	fprintf(out, "unclaimed config accesses %llu, unclaimed window accesses %llu",
		(unsigned long long)st.cfg_unclaimed, (unsigned long long)st.mmio_unclaimed);
}

#define PCI_STATE_VERSION 1

/*
 * Version 1: CONFIG_ADDRESS (u32), the number of functions (u32), then per
 * function in slot order its slot (u8) and configuration space
 * (PCI_CFG_SIZE bytes, as the guest reads it without a device's refresh).
 */
static int pci_bus_device_save(void *opaque, struct state_out *out)
{
	struct pci_bus *bus = opaque;
	uint32_t nr = 0;
	unsigned s;

	for (s = 0; s < PCI_MAX_SLOTS; s++)
		nr += bus->slots[s] != NULL;
	state_out__u32(out, PCI_STATE_VERSION);
	state_out__u32(out, __atomic_load_n(&bus->config_address, __ATOMIC_RELAXED));
	state_out__u32(out, nr);
	for (s = 0; s < PCI_MAX_SLOTS; s++) {
		struct pci_dev *dev = bus->slots[s];

		if (!dev)
			continue;
		state_out__u8(out, (uint8_t)s);
		pthread_mutex_lock(&dev->lock);
		state_out__bytes(out, dev->cfg, PCI_CFG_SIZE);
		pthread_mutex_unlock(&dev->lock);
	}
	return out->err;
}

/*
 * Takes a version 1 state (see pci_bus_device_save) saved from a bus with the
 * same functions (slot, vendor and device ids) in the same order, and maps
 * the BARs where it puts them.
 */
static int pci_bus_device_load(void *opaque, struct state_in *in, char *why, size_t why_len)
{
	struct pci_bus *bus = opaque;
	uint8_t cfg[PCI_MAX_SLOTS][PCI_CFG_SIZE];
	uint32_t version, address, nr, built = 0, i;
	unsigned s;

	version = state_in__u32(in);
	if (in->err) {
		snprintf(why, why_len, "state truncated: %zu bytes", in->len);
		return -EINVAL;
	}
	if (version != PCI_STATE_VERSION) {
		snprintf(why, why_len, "state version %u, expected %u", version, PCI_STATE_VERSION);
		return -EINVAL;
	}
	address = state_in__u32(in);
	nr = state_in__u32(in);
	for (s = 0; s < PCI_MAX_SLOTS; s++)
		built += bus->slots[s] != NULL;
	if (!in->err && nr != built) {
		snprintf(why, why_len, "%u functions saved, the bus has %u", nr, built);
		return -EINVAL;
	}
	for (i = 0, s = 0; i < nr && !in->err; i++, s++) {
		const struct pci_dev *dev;
		uint8_t slot;

		while (!bus->slots[s])
			s++;
		dev = bus->slots[s];
		slot = state_in__u8(in);
		state_in__bytes(in, cfg[s], PCI_CFG_SIZE);
		if (in->err)
			break;
		if (slot != s || memcmp(cfg[s] + PCI_VENDOR_ID, dev->cfg + PCI_VENDOR_ID, 4)) {
			snprintf(why, why_len, "function %u: saved 00:%02x.0 %04x:%04x, the bus has "
				 "00:%02x.0 %04x:%04x (%s)", i, slot,
				 cfg[s][PCI_VENDOR_ID] | cfg[s][PCI_VENDOR_ID + 1] << 8,
				 cfg[s][PCI_DEVICE_ID] | cfg[s][PCI_DEVICE_ID + 1] << 8, s,
				 pci_dev__cfg_get(dev, PCI_VENDOR_ID, 2),
				 pci_dev__cfg_get(dev, PCI_DEVICE_ID, 2), dev->name);
			return -EINVAL;
		}
	}
	if (state_in__end(in)) {
		snprintf(why, why_len, "state %s: %zu bytes", in->err ? "truncated" : "too long", in->len);
		return -EINVAL;
	}
	if (address & ~PCI_CONFIG_ADDRESS_MASK) {
		snprintf(why, why_len, "CONFIG_ADDRESS 0x%08x: reserved bits set", address);
		return -EINVAL;
	}

	for (s = 0; s < PCI_MAX_SLOTS; s++)
		if (bus->slots[s])
			dev_config_restore(bus->slots[s], cfg[s]);
	__atomic_store_n(&bus->config_address, address, __ATOMIC_RELAXED);
	return 0;
}

const struct device_ops pci_bus__device_ops = {
	.reset = pci_bus_device_reset,
	.destroy = pci_bus_device_destroy,
	.report = pci_bus_device_report,
	.save = pci_bus_device_save,
	.load = pci_bus_device_load,
};
