/*
 * The PCI bus as a guest sees it: configuration mechanism #1 through the port
 * bus, BAR sizing and moves through the MMIO bus, the capability list, and
 * MSI-X tables/PBA against the fake KVM (tests/unit/fake_kvm.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_kvm.h"
#include "state_refusals.h"
#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/pci/msix.h"
#include "vmm/pci/pci.h"
#include "vmm/x86/layout.h"

#define FAKE_VENDOR 0x1234
#define FAKE_DEVICE 0x5678
#define FAKE_CLASS  0x0b4000   /* processor, co-processor */

/* A function with a 32-bit BAR 0 (4 KiB) and a 64-bit BAR 2 (16 KiB) that records accesses. */
struct fake_pci {
	struct pci_dev pci;
	unsigned reads, writes;
	unsigned last_bar;
	uint64_t last_off;
	uint32_t last_len;
	uint64_t last_val;
	unsigned bar_changes;
	unsigned changed_bar;
	bool was_on, on;
	uint64_t old_addr, new_addr;
	struct msix *msix;      /* when set, BAR 0 serves the table at 0 and the PBA at 0x800 */
};

struct bar_ref {
	struct fake_pci *f;
	unsigned bar;
};

static void fake_bar_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct bar_ref *r = opaque;
	struct fake_pci *f = r->f;

	pthread_mutex_lock(&f->pci.lock);
	f->reads++;
	f->last_bar = r->bar;
	f->last_off = off;
	f->last_len = len;
	if (f->msix && r->bar == 0 && off < 0x800)
		msix__table_read(f->msix, off, data, len);
	else if (f->msix && r->bar == 0)
		msix__pba_read(f->msix, off - 0x800, data, len);
	else
		memset(data, 0x5a, len);
	pthread_mutex_unlock(&f->pci.lock);
}

static void fake_bar_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct bar_ref *r = opaque;
	struct fake_pci *f = r->f;

	pthread_mutex_lock(&f->pci.lock);
	f->writes++;
	f->last_bar = r->bar;
	f->last_off = off;
	f->last_len = len;
	f->last_val = 0;
	memcpy(&f->last_val, data, len);
	if (f->msix && r->bar == 0 && off < 0x800)
		msix__table_write(f->msix, off, data, len);
	pthread_mutex_unlock(&f->pci.lock);
}

static const struct io_ops fake_bar_ops = { .read = fake_bar_read, .write = fake_bar_write };

static void fake_bar_changed(struct pci_dev *dev, unsigned bar, bool was_on, uint64_t old,
			     bool on, uint64_t addr)
{
	struct fake_pci *f = (struct fake_pci *)dev;

	f->bar_changes++;
	f->changed_bar = bar;
	f->was_on = was_on;
	f->old_addr = old;
	f->on = on;
	f->new_addr = addr;
}

static void fake_config_written(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	struct fake_pci *f = (struct fake_pci *)dev;

	if (f->msix)
		msix__config_written(f->msix, off, len);
}

static const struct pci_dev_ops fake_ops = {
	.config_written = fake_config_written,
	.bar_changed = fake_bar_changed,
};

struct rig {
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct fake_pci dev;
	struct bar_ref refs[PCI_NR_BARS];
};

static void fake_init(struct rig *r, struct fake_pci *f)
{
	unsigned i;

	memset(f, 0, sizeof(*f));
	pci_dev__init(&f->pci, "fake", FAKE_VENDOR, FAKE_DEVICE, FAKE_CLASS, 3, &fake_ops);
	for (i = 0; i < PCI_NR_BARS; i++)
		r->refs[i] = (struct bar_ref){ f, i };
	assert_int_equal(pci_dev__add_bar(&f->pci, 0, 0x1000, 0, &fake_bar_ops, &r->refs[0]), 0);
	assert_int_equal(pci_dev__add_bar(&f->pci, 2, 0x4000, PCI_BASE_ADDRESS_MEM_TYPE_64,
					  &fake_bar_ops, &r->refs[2]), 0);
}

static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	bus__init(&r->pio, "pio");
	bus__init(&r->mmio, "mmio");
	if (pci_bus__create(&r->pio, &r->mmio, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &r->pci))
		return -1;
	fake_init(r, &r->dev);
	if (pci_bus__add(r->pci, &r->dev.pci))
		return -1;
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;

	pci_bus__destroy(r->pci);
	pci_dev__exit(&r->dev.pci);
	bus__exit(&r->pio);
	bus__exit(&r->mmio);
	free(r);
	return 0;
}

/* ---- configuration mechanism #1, as a guest drives it --------------------------- */

static void outl(struct bus *b, uint16_t port, uint32_t v)
{
	bus__access(b, port, &v, 4, true);
}

static uint32_t inl(struct bus *b, uint16_t port)
{
	uint32_t v = 0;

	bus__access(b, port, &v, 4, false);
	return v;
}

static uint32_t cfg_addr(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read(struct rig *r, unsigned slot, unsigned reg, uint32_t len)
{
	uint32_t v = 0;

	outl(&r->pio, 0xcf8, cfg_addr(0, slot, 0, reg));
	bus__access(&r->pio, 0xcfc + (reg & 3), &v, len, false);
	return v;
}

static void cfg_write(struct rig *r, unsigned slot, unsigned reg, uint32_t len, uint32_t v)
{
	outl(&r->pio, 0xcf8, cfg_addr(0, slot, 0, reg));
	bus__access(&r->pio, 0xcfc + (reg & 3), &v, len, true);
}

static uint32_t mmio_read32(struct rig *r, uint64_t addr)
{
	uint32_t v = 0;

	bus__access(&r->mmio, addr, &v, 4, false);
	return v;
}

static void mmio_write32(struct rig *r, uint64_t addr, uint32_t v)
{
	bus__access(&r->mmio, addr, &v, 4, true);
}

static void test_pci_linux_type1_probe_and_host_bridge_ids(void **state)
{
	struct rig *r = *state;
	uint8_t b = 1;

	/* Linux's pci_check_type1: outb 0xCFB, then CONFIG_ADDRESS must read back 0x80000000. */
	bus__access(&r->pio, 0xcfb, &b, 1, true);
	outl(&r->pio, 0xcf8, 0x80000000);
	assert_int_equal(inl(&r->pio, 0xcf8), 0x80000000);
	/* Low two bits of CONFIG_ADDRESS are reserved and read 0. */
	outl(&r->pio, 0xcf8, 0x80000003);
	assert_int_equal(inl(&r->pio, 0xcf8), 0x80000000);

	assert_int_equal(cfg_read(r, 0, PCI_VENDOR_ID, 2), PCI_HOST_VENDOR_ID);
	assert_int_equal(cfg_read(r, 0, PCI_DEVICE_ID, 2), PCI_HOST_DEVICE_ID);
	/* pci_sanity_check: class word 0x0600 (host bridge). */
	assert_int_equal(cfg_read(r, 0, PCI_CLASS_DEVICE, 2), 0x0600);
	assert_int_equal(cfg_read(r, 0, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(cfg_read(r, 0, PCI_BASE_ADDRESS_0, 4), 0);
}

static void test_pci_device_ids_class_revision_and_no_intx(void **state)
{
	struct rig *r = *state;

	assert_int_equal(r->dev.pci.slot, 1);
	assert_int_equal(cfg_read(r, 1, PCI_VENDOR_ID, 4), FAKE_DEVICE << 16 | FAKE_VENDOR);
	assert_int_equal(cfg_read(r, 1, PCI_CLASS_REVISION, 4), FAKE_CLASS << 8 | 3);
	assert_int_equal(cfg_read(r, 1, PCI_INTERRUPT_PIN, 1), 0);
	assert_int_equal(cfg_read(r, 1, PCI_HEADER_TYPE, 1) & 0x80, 0);   /* single function */
}

static void test_pci_absent_slots_buses_functions_read_all_ones(void **state)
{
	struct rig *r = *state;
	struct pci_bus_stats st;
	uint32_t v;

	assert_int_equal(cfg_read(r, 7, PCI_VENDOR_ID, 4), 0xffffffff);
	assert_int_equal(cfg_read(r, 31, PCI_VENDOR_ID, 2), 0xffff);
	outl(&r->pio, 0xcf8, cfg_addr(1, 0, 0, 0));                 /* bus 1 */
	assert_int_equal(inl(&r->pio, 0xcfc), 0xffffffff);
	outl(&r->pio, 0xcf8, cfg_addr(0, 1, 3, 0));                 /* function 3 */
	assert_int_equal(inl(&r->pio, 0xcfc), 0xffffffff);
	outl(&r->pio, 0xcf8, cfg_addr(0, 1, 0, 0) & ~0x80000000u);  /* enable bit clear */
	assert_int_equal(inl(&r->pio, 0xcfc), 0xffffffff);
	outl(&r->pio, 0xcf8, cfg_addr(0, 1, 0, 0) | 0x01000000u);   /* extended register 0x100 */
	assert_int_equal(inl(&r->pio, 0xcfc), 0xffffffff);
	outl(&r->pio, 0xcf8, cfg_addr(0, 7, 0, 0));
	outl(&r->pio, 0xcfc, 0x12345678);                           /* dropped */
	pci_bus__get_stats(r->pci, &st);
	assert_true(st.cfg_unclaimed >= 6);
	/* A non-dword CONFIG_ADDRESS access is not CONFIG_ADDRESS (0xCF9 is the reset register). */
	v = 0;
	bus__access(&r->pio, 0xcf9, &v, 1, true);
	outl(&r->pio, 0xcf8, 0x80000000);
	v = 0;
	bus__access(&r->pio, 0xcf8, &v, 2, false);
	assert_int_equal(v, 0xffff);
	assert_int_equal(inl(&r->pio, 0xcf8), 0x80000000);
}

static void test_pci_byte_and_word_accesses_at_data_port_offsets(void **state)
{
	struct rig *r = *state;
	uint32_t v = 0;

	assert_int_equal(cfg_read(r, 1, PCI_DEVICE_ID, 2), FAKE_DEVICE);           /* port 0xCFE */
	assert_int_equal(cfg_read(r, 1, PCI_DEVICE_ID + 1, 1), FAKE_DEVICE >> 8);  /* port 0xCFF */
	assert_int_equal(cfg_read(r, 1, PCI_CLASS_REVISION + 3, 1), FAKE_CLASS >> 16);
	/* An access that crosses 0xCFF is not claimed: all-ones. */
	outl(&r->pio, 0xcf8, cfg_addr(0, 1, 0, 0));
	assert_false(bus__access(&r->pio, 0xcfe, &v, 4, false));
	assert_int_equal(v, 0xffffffff);
}

static void test_pci_read_only_bits_hold_and_status_errors_clear_on_one(void **state)
{
	struct rig *r = *state;

	cfg_write(r, 1, PCI_VENDOR_ID, 4, 0);
	assert_int_equal(cfg_read(r, 1, PCI_VENDOR_ID, 4), FAKE_DEVICE << 16 | FAKE_VENDOR);
	cfg_write(r, 1, PCI_CLASS_REVISION, 4, 0xffffffff);
	assert_int_equal(cfg_read(r, 1, PCI_CLASS_REVISION, 4), FAKE_CLASS << 8 | 3);
	cfg_write(r, 1, PCI_INTERRUPT_PIN, 1, 1);
	assert_int_equal(cfg_read(r, 1, PCI_INTERRUPT_PIN, 1), 0);
	cfg_write(r, 1, PCI_INTERRUPT_LINE, 1, 0x0b);                /* OS scratch */
	assert_int_equal(cfg_read(r, 1, PCI_INTERRUPT_LINE, 1), 0x0b);

	cfg_write(r, 1, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(cfg_read(r, 1, PCI_COMMAND, 2), PCI_COMMAND_WMASK);
	cfg_write(r, 1, PCI_COMMAND, 2, 0);

	/* Status: a detected parity error (set by hardware) clears when 1 is written; 0 keeps it. */
	r->dev.pci.cfg[PCI_STATUS + 1] |= PCI_STATUS_DETECTED_PARITY >> 8;
	cfg_write(r, 1, PCI_STATUS, 2, 0);
	assert_true(cfg_read(r, 1, PCI_STATUS, 2) & PCI_STATUS_DETECTED_PARITY);
	cfg_write(r, 1, PCI_STATUS, 2, 0xffff);
	assert_false(cfg_read(r, 1, PCI_STATUS, 2) & PCI_STATUS_DETECTED_PARITY);
}

/* ---- BARs ------------------------------------------------------------------------ */

static void test_pci_bars_assigned_in_window_aligned_and_disjoint(void **state)
{
	struct rig *r = *state;
	uint32_t b0 = cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4);
	uint64_t b2 = cfg_read(r, 1, PCI_BASE_ADDRESS_2, 4) |
		      (uint64_t)cfg_read(r, 1, PCI_BASE_ADDRESS_3, 4) << 32;

	assert_int_equal(b0 & 0xf, 0);                               /* 32-bit memory */
	assert_int_equal(b2 & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64);
	b2 &= ~0xfULL;
	assert_true(b0 >= LAYOUT_PCI_MMIO_BASE && b0 + 0x1000 <= LAYOUT_PCI_MMIO_BASE + LAYOUT_PCI_MMIO_SIZE);
	assert_true(b2 >= LAYOUT_PCI_MMIO_BASE && b2 + 0x4000 <= LAYOUT_PCI_MMIO_BASE + LAYOUT_PCI_MMIO_SIZE);
	assert_int_equal(b0 % 0x1000, 0);
	assert_int_equal(b2 % 0x4000, 0);
	assert_true(b0 + 0x1000 <= b2 || b2 + 0x4000 <= b0);
	/* Unimplemented BARs and the ROM BAR read 0 whatever is written. */
	cfg_write(r, 1, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	cfg_write(r, 1, PCI_ROM_ADDRESS, 4, 0xffffffff);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_1, 4), 0);
	assert_int_equal(cfg_read(r, 1, PCI_ROM_ADDRESS, 4), 0);
}

static void test_pci_bar_sizing_protocol_32_and_64_bit(void **state)
{
	struct rig *r = *state;
	uint32_t b0 = cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4);
	uint32_t lo = cfg_read(r, 1, PCI_BASE_ADDRESS_2, 4), hi = cfg_read(r, 1, PCI_BASE_ADDRESS_3, 4);

	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4), 0xfffff000);   /* 4 KiB */
	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, b0);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4), b0);

	cfg_write(r, 1, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
	cfg_write(r, 1, PCI_BASE_ADDRESS_3, 4, 0xffffffff);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_2, 4), 0xffffc000 | PCI_BASE_ADDRESS_MEM_TYPE_64);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_3, 4), 0xffffffff);
	cfg_write(r, 1, PCI_BASE_ADDRESS_2, 4, lo);
	cfg_write(r, 1, PCI_BASE_ADDRESS_3, 4, hi);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_2, 4), lo);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_3, 4), hi);

	/* Byte writes work too: the size bits stay 0. */
	cfg_write(r, 1, PCI_BASE_ADDRESS_0 + 1, 1, 0xff);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4), b0 | 0xf000);
	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, b0);
}

static void test_pci_bar_decodes_with_memory_enabled_and_follows_moves(void **state)
{
	struct rig *r = *state;
	struct fake_pci *f = &r->dev;
	uint32_t b0 = cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4);
	uint32_t moved = (uint32_t)LAYOUT_PCI_MMIO_BASE + 0x100000;
	struct pci_bus_stats st;

	/* Memory decode off: the window does not route to the BAR. */
	assert_int_equal(mmio_read32(r, b0 + 8), 0xffffffff);
	assert_int_equal(f->reads, 0);
	cfg_write(r, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_true(f->bar_changes >= 1);
	assert_true(f->on);
	assert_int_equal(mmio_read32(r, b0 + 8), 0x5a5a5a5a);
	assert_int_equal(f->last_bar, 0);
	assert_int_equal(f->last_off, 8);
	mmio_write32(r, b0 + 0xffc, 0xcafe);
	assert_int_equal(f->last_off, 0xffc);
	assert_int_equal(f->last_val, 0xcafe);
	/* Straddling the end of the BAR: not the device's. */
	assert_int_equal(f->writes, 1);
	mmio_write32(r, b0 + 0xffe, 1);
	assert_int_equal(f->writes, 1);

	/* The guest moves BAR 0: the old place goes dark, the new one decodes. */
	f->bar_changes = 0;
	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, moved);
	assert_int_equal(f->bar_changes, 1);
	assert_int_equal(f->changed_bar, 0);
	assert_int_equal(f->old_addr, b0);
	assert_int_equal(f->new_addr, moved);
	assert_true(f->was_on && f->on);
	assert_int_equal(mmio_read32(r, b0 + 8), 0xffffffff);
	assert_int_equal(mmio_read32(r, moved + 0x10), 0x5a5a5a5a);
	assert_int_equal(f->last_off, 0x10);

	/* Outside the window (here: over the test device) it decodes nothing. */
	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, (uint32_t)LAYOUT_TESTDEV_MMIO);
	assert_false(f->on);
	assert_false(bus__access(&r->mmio, LAYOUT_TESTDEV_MMIO, &b0, 4, false));
	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, moved);
	assert_true(f->on);

	/* Memory decode off again: nothing decodes; counted. */
	cfg_write(r, 1, PCI_COMMAND, 2, 0);
	assert_false(f->on);
	assert_int_equal(mmio_read32(r, moved + 0x10), 0xffffffff);
	pci_bus__get_stats(r->pci, &st);
	assert_true(st.mmio_unclaimed >= 3);
}

static void test_pci_64_bit_bar_moves_above_4g_only_inside_window(void **state)
{
	struct rig *r = *state;
	struct fake_pci *f = &r->dev;
	uint32_t lo = cfg_read(r, 1, PCI_BASE_ADDRESS_2, 4);

	cfg_write(r, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(mmio_read32(r, (lo & ~0xfu) + 4), 0x5a5a5a5a);
	assert_int_equal(f->last_bar, 2);
	/* High dword set: above 4 GiB, outside the window: no decode. */
	cfg_write(r, 1, PCI_BASE_ADDRESS_3, 4, 1);
	assert_false(f->on);
	assert_int_equal(f->changed_bar, 2);
	assert_int_equal(mmio_read32(r, (lo & ~0xfu) + 4), 0xffffffff);
	cfg_write(r, 1, PCI_BASE_ADDRESS_3, 4, 0);
	assert_true(f->on);
	cfg_write(r, 1, PCI_COMMAND, 2, 0);
}

static void test_pci_capability_list_links_every_capability(void **state)
{
	struct rig *r = *state;
	struct fake_pci f;
	const uint8_t vndr[8] = { PCI_CAP_ID_VNDR, 0xee, 8, 1, 2, 3, 4, 5 };
	const uint8_t pm[6] = { PCI_CAP_ID_PM, 0, 3, 0, 0, 0 };
	uint8_t ids[8], pos;
	unsigned n = 0;
	int a, b;

	fake_init(r, &f);
	assert_false(f.pci.cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST);
	a = pci_dev__add_cap(&f.pci, vndr, sizeof(vndr));
	b = pci_dev__add_cap(&f.pci, pm, sizeof(pm));
	assert_int_equal(a, PCI_CAP_START);
	assert_int_equal(b, PCI_CAP_START + 8);
	assert_int_equal(pci_dev__add_cap(&f.pci, vndr, sizeof(vndr)) % 4, 0);   /* dword-aligned */
	assert_int_equal(pci_bus__add(r->pci, &f.pci), 0);

	assert_true(cfg_read(r, (unsigned)f.pci.slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	for (pos = (uint8_t)cfg_read(r, (unsigned)f.pci.slot, PCI_CAPABILITY_LIST, 1); pos && n < 8;
	     pos = (uint8_t)cfg_read(r, (unsigned)f.pci.slot, pos + PCI_CAP_LIST_NEXT, 1))
		ids[n++] = (uint8_t)cfg_read(r, (unsigned)f.pci.slot, pos, 1);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[1], PCI_CAP_ID_PM);
	assert_int_equal(ids[2], PCI_CAP_ID_VNDR);
	/* Capability bytes are read-only by default. */
	cfg_write(r, (unsigned)f.pci.slot, (unsigned)a + 4, 4, 0);
	assert_int_equal(cfg_read(r, (unsigned)f.pci.slot, (unsigned)a + 4, 1), 2);
	/* Full: a capability that does not fit. */
	{
		uint8_t big[200] = { PCI_CAP_ID_VNDR };

		assert_int_equal(pci_dev__add_cap(&f.pci, big, sizeof(big)), -ENOSPC);
	}
}

static void test_pci_rejects_bad_bars_and_full_bus_or_window(void **state)
{
	struct rig *r = *state;
	struct fake_pci *devs = calloc(PCI_MAX_SLOTS, sizeof(*devs));
	struct fake_pci big;
	unsigned i, added = 0;
	int err;

	pci_dev__init(&big.pci, "big", 1, 2, FAKE_CLASS, 0, NULL);
	assert_int_equal(pci_dev__add_bar(&big.pci, 0, 0x3000, 0, &fake_bar_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev__add_bar(&big.pci, 0, 8, 0, &fake_bar_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev__add_bar(&big.pci, 5, 0x1000, PCI_BASE_ADDRESS_MEM_TYPE_64,
					  &fake_bar_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev__add_bar(&big.pci, 6, 0x1000, 0, &fake_bar_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev__add_bar(&big.pci, 0, 0x1000, PCI_BASE_ADDRESS_MEM_TYPE_64,
					  &fake_bar_ops, NULL), 0);
	assert_int_equal(pci_dev__add_bar(&big.pci, 1, 0x1000, 0, &fake_bar_ops, NULL), -EINVAL);
	/* 512 MiB does not fit the window. */
	assert_int_equal(pci_dev__add_bar(&big.pci, 2, 0x20000000, PCI_BASE_ADDRESS_MEM_TYPE_64,
					  &fake_bar_ops, NULL), 0);
	assert_int_equal(pci_bus__add(r->pci, &big.pci), -ENOSPC);
	assert_int_equal(big.pci.slot, -1);
	pci_dev__exit(&big.pci);

	for (i = 0; i < PCI_MAX_SLOTS; i++) {
		pci_dev__init(&devs[i].pci, "filler", 1, 2, FAKE_CLASS, 0, NULL);
		err = pci_bus__add(r->pci, &devs[i].pci);
		if (!err)
			added++;
		else
			assert_int_equal(err, -ENOSPC);
	}
	assert_int_equal(added, PCI_MAX_SLOTS - 2);   /* host bridge and the fake take two */
	for (i = 0; i < PCI_MAX_SLOTS; i++)
		pci_dev__exit(&devs[i].pci);
	free(devs);
}

static void test_pci_bus_create_fails_when_ports_taken(void **state)
{
	struct bus pio, mmio;
	struct pci_bus *pci;

	(void)state;
	bus__init(&pio, "pio");
	bus__init(&mmio, "mmio");
	assert_int_equal(bus__register(&pio, 0xcf8, 1, &fake_bar_ops, NULL, "squatter"), 0);
	assert_int_equal(pci_bus__create(&pio, &mmio, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &pci),
			 -EEXIST);
	assert_int_equal(pci_bus__create(&pio, &mmio, 0x1000, 0, &pci), -EINVAL);
	bus__exit(&pio);
	bus__exit(&mmio);
}

/* ---- MSI-X -------------------------------------------------------------------------- */

struct msix_rig {
	struct rig *r;
	struct fake_pci f;
	struct msix msix;
	struct irq_routing *irqs;
	int vm_fd;                 /* a fake KVM VM */
	uint32_t table;            /* BAR 0 address (decoding) */
};

static void msix_rig_init(struct msix_rig *m, struct rig *r)
{
	memset(m, 0, sizeof(*m));
	m->r = r;
	m->irqs = calloc(1, sizeof(*m->irqs));
	fake_kvm__reset();
	m->vm_fd = fake_kvm__create_vm(true);
	assert_true(m->vm_fd >= 0);
	assert_int_equal(irq_routing__init_pc(m->irqs, m->vm_fd, 2), 0);
	fake_init(r, &m->f);
	assert_int_equal(msix__init(&m->msix, &m->f.pci, 4, 0, 0, 0x800, 2, m->vm_fd, m->irqs), 0);
	m->f.msix = &m->msix;
	assert_int_equal(pci_bus__add(r->pci, &m->f.pci), 0);
	m->table = cfg_read(r, (unsigned)m->f.pci.slot, PCI_BASE_ADDRESS_0, 4);
	cfg_write(r, (unsigned)m->f.pci.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void msix_rig_exit(struct msix_rig *m)
{
	msix__exit(&m->msix);
	pci_dev__exit(&m->f.pci);
	irq_routing__exit(m->irqs);
	free(m->irqs);
	close(m->vm_fd);
	assert_int_equal(fake_kvm.violations, 0);
}

static void program(struct msix_rig *m, unsigned v, uint64_t addr, uint32_t data)
{
	mmio_write32(m->r, m->table + 16 * v + PCI_MSIX_ENTRY_LOWER_ADDR, (uint32_t)addr);
	mmio_write32(m->r, m->table + 16 * v + PCI_MSIX_ENTRY_UPPER_ADDR, (uint32_t)(addr >> 32));
	mmio_write32(m->r, m->table + 16 * v + PCI_MSIX_ENTRY_DATA, data);
}

static void set_entry_mask(struct msix_rig *m, unsigned v, bool masked)
{
	mmio_write32(m->r, m->table + 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, masked);
}

static void set_msix_control(struct msix_rig *m, uint16_t ctl)
{
	cfg_write(m->r, (unsigned)m->f.pci.slot, m->msix.cap + PCI_MSIX_FLAGS, 2, ctl);
}

static uint32_t pba(struct msix_rig *m)
{
	return mmio_read32(m->r, m->table + 0x800);
}

static void test_msix_capability_describes_table_and_pba(void **state)
{
	struct msix_rig m;
	unsigned slot;
	uint8_t cap;

	msix_rig_init(&m, *state);
	slot = (unsigned)m.f.pci.slot;
	cap = (uint8_t)cfg_read(m.r, slot, PCI_CAPABILITY_LIST, 1);
	assert_int_equal(cfg_read(m.r, slot, cap, 1), PCI_CAP_ID_MSIX);
	assert_int_equal(cfg_read(m.r, slot, cap + PCI_MSIX_FLAGS, 2), 3);          /* 4 vectors */
	assert_int_equal(cfg_read(m.r, slot, cap + PCI_MSIX_TABLE, 4), 0);          /* BAR 0 + 0 */
	assert_int_equal(cfg_read(m.r, slot, cap + PCI_MSIX_PBA, 4), 0x800);
	/* Only enable and function mask are writable. */
	cfg_write(m.r, slot, cap + PCI_MSIX_FLAGS, 2, 0xffff);
	assert_int_equal(cfg_read(m.r, slot, cap + PCI_MSIX_FLAGS, 2), 0xc003);
	set_msix_control(&m, 0);
	/* Entries start masked; reserved control bits read 0; the table past its end reads ones. */
	assert_int_equal(mmio_read32(m.r, m.table + 16 * 2 + 12), 1);
	mmio_write32(m.r, m.table + 16 * 2 + 12, 0xfffffffe);
	assert_int_equal(mmio_read32(m.r, m.table + 16 * 2 + 12), 0);
	assert_int_equal(mmio_read32(m.r, m.table + 16 * 4), 0xffffffff);
	msix_rig_exit(&m);
}

static void test_msix_programming_creates_then_updates_the_msi_route(void **state)
{
	struct msix_rig m;
	const struct kvm_irq_routing_entry *e;
	uint64_t q;

	msix_rig_init(&m, *state);
	program(&m, 1, 0xfee01000, 0x4041);
	assert_int_equal(msix__prepare(&m.msix, 1), 0);
	assert_true(m.msix.vec[1].has_gsi);
	e = irq_routing__find(m.irqs, m.msix.vec[1].gsi, KVM_IRQ_ROUTING_MSI);
	assert_non_null(e);
	assert_int_equal(e->u.msi.address_lo, 0xfee01000);
	assert_int_equal(e->u.msi.data, 0x4041);
	assert_int_equal(msix__prepare(&m.msix, 4), -EINVAL);

	/* The guest reprograms the entry (masked, then unmasked): the route follows. */
	set_msix_control(&m, PCI_MSIX_FLAGS_ENABLE);
	program(&m, 1, 0xfee02000, 0x4051);
	set_entry_mask(&m, 1, false);
	e = irq_routing__find(m.irqs, m.msix.vec[1].gsi, KVM_IRQ_ROUTING_MSI);
	assert_int_equal(e->u.msi.address_lo, 0xfee02000);
	assert_int_equal(e->u.msi.data, 0x4051);
	/* A rewrite while unmasked (64-bit access to address + upper address) too. */
	q = 0xfee03000ULL;
	bus__access(&m.r->mmio, m.table + 16, &q, 8, true);
	e = irq_routing__find(m.irqs, m.msix.vec[1].gsi, KVM_IRQ_ROUTING_MSI);
	assert_int_equal(e->u.msi.address_lo, 0xfee03000);
	assert_int_equal(e->u.msi.address_hi, 0);
	assert_false(m.msix.vec[0].has_gsi);   /* unused vectors take no GSI */
	msix_rig_exit(&m);
}

/* A reboot in place: the bus puts back every function's config space as plugged in; MSI-X masked. */
static void test_pci_bus_reset_restores_config_and_msix_as_built(void **state)
{
	struct msix_rig m;
	unsigned slot;
	uint32_t b0, b2;

	msix_rig_init(&m, *state);
	slot = (unsigned)m.f.pci.slot;
	b2 = cfg_read(m.r, slot, PCI_BASE_ADDRESS_2, 4);
	program(&m, 1, 0xfee01000, 0x4041);
	set_msix_control(&m, PCI_MSIX_FLAGS_ENABLE);
	set_entry_mask(&m, 1, false);
	assert_false(msix__masked(&m.msix, 1));
	/* The guest moves BAR 0 and sets its interrupt line. */
	b0 = (uint32_t)LAYOUT_PCI_MMIO_BASE + 0x200000;
	cfg_write(m.r, slot, PCI_BASE_ADDRESS_0, 4, b0);
	cfg_write(m.r, slot, PCI_INTERRUPT_LINE, 1, 11);
	assert_true(m.f.on);

	pthread_mutex_lock(&m.f.pci.lock);
	msix__reset(&m.msix);
	pthread_mutex_unlock(&m.f.pci.lock);
	pci_bus__reset(m.r->pci);

	assert_int_equal(cfg_read(m.r, slot, PCI_COMMAND, 2), 0);
	assert_int_equal(cfg_read(m.r, slot, PCI_BASE_ADDRESS_0, 4), m.table);
	assert_int_equal(cfg_read(m.r, slot, PCI_BASE_ADDRESS_2, 4), b2);
	assert_int_equal(cfg_read(m.r, slot, PCI_INTERRUPT_LINE, 1), 0);
	assert_int_equal(cfg_read(m.r, slot, m.msix.cap + PCI_MSIX_FLAGS, 2), 3);
	assert_false(m.f.on);                           /* no BAR decodes: memory decode is off */
	assert_int_equal(mmio_read32(m.r, b0 + 8), 0xffffffff);
	assert_true(msix__masked(&m.msix, 1));
	/* The entry reads as at build once decoding again. */
	cfg_write(m.r, slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(mmio_read32(m.r, m.table + 16 + PCI_MSIX_ENTRY_LOWER_ADDR), 0);
	assert_int_equal(mmio_read32(m.r, m.table + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL), 1);
	/* The host bridge is untouched: its ids still answer. */
	assert_int_equal(cfg_read(m.r, 0, PCI_VENDOR_ID, 2), PCI_HOST_VENDOR_ID);
	msix_rig_exit(&m);
}

static void test_msix_masked_vector_pends_and_fires_once_on_unmask(void **state)
{
	struct msix_rig m;
	uint64_t cnt;
	int efd = eventfd(0, EFD_NONBLOCK);

	msix_rig_init(&m, *state);
	program(&m, 2, 0xfee00000, 0x4061);
	assert_int_equal(msix__bind(&m.msix, 0, efd, 2), 0);
	assert_true(msix__masked(&m.msix, 2));

	/* The backend signals while masked: nothing is sent, the PBA shows it. */
	cnt = 1;
	assert_int_equal(write(efd, &cnt, 8), 8);
	assert_int_equal(pba(&m), 1u << 2);
	/* A user-space message (config change) on vector 3 while masked pends too. */
	msix__notify(&m.msix, 3);
	assert_int_equal(pba(&m), 1u << 2 | 1u << 3);
	assert_int_equal(m.msix.stats.notified, 0);

	/* MSI-X enabled but the function masked: still masked. */
	set_msix_control(&m, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	set_entry_mask(&m, 2, false);
	assert_true(msix__masked(&m.msix, 2));
	assert_int_equal(m.msix.stats.notified, 0);
	/* Function unmasked: vector 2 delivers once and its eventfd is drained. */
	set_msix_control(&m, PCI_MSIX_FLAGS_ENABLE);
	assert_false(msix__masked(&m.msix, 2));
	assert_int_equal(m.msix.stats.notified, 1);
	assert_int_equal(pba(&m), 1u << 3);
	assert_int_equal(read(efd, &cnt, 8), -1);
	/* Bus mastering off masks everything; vector 3's pending message waits for both. */
	cfg_write(m.r, (unsigned)m.f.pci.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_true(msix__masked(&m.msix, 2));
	set_entry_mask(&m, 3, false);
	assert_int_equal(m.msix.stats.notified, 1);
	cfg_write(m.r, (unsigned)m.f.pci.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(m.msix.stats.notified, 2);   /* 3's pending message; 2 had nothing new */
	assert_int_equal(pba(&m), 0);
	/* Unmasked: user-space messages go straight out. */
	msix__notify(&m.msix, 3);
	assert_int_equal(m.msix.stats.notified, 3);
	msix__notify(&m.msix, 99);                    /* no such vector: ignored */
	assert_int_equal(m.msix.stats.notified, 3);
	msix_rig_exit(&m);
	close(efd);
}

/* ---- snapshot ---------------------------------------------------------------------- */

#define SNAP_BAR0      (LAYOUT_PCI_MMIO_BASE + 0x200000)
#define SNAP_BAR2      (LAYOUT_PCI_MMIO_BASE + 0x400000)
#define SNAP_CFG_ADDR  cfg_addr(0, 1, 0, PCI_INTERRUPT_LINE)
/* Where function `i`'s slot byte and configuration space lie in a saved bus. */
#define SNAP_SLOT(i)   (12 + (i) * (1 + PCI_CFG_SIZE))
#define SNAP_CFG(i)    (SNAP_SLOT(i) + 1)

/*
 * What a guest's driver leaves: both BARs moved and decoding, bus mastering,
 * an interrupt line and latency timer, the host bridge's memory enable, and
 * CONFIG_ADDRESS pointing mid-sequence.
 */
static void snap_drive(struct rig *r)
{
	cfg_write(r, 1, PCI_BASE_ADDRESS_0, 4, (uint32_t)SNAP_BAR0);
	cfg_write(r, 1, PCI_BASE_ADDRESS_2, 4, (uint32_t)SNAP_BAR2);
	cfg_write(r, 1, PCI_BASE_ADDRESS_3, 4, (uint32_t)(SNAP_BAR2 >> 32));
	cfg_write(r, 1, PCI_INTERRUPT_LINE, 1, 0x0b);
	cfg_write(r, 1, PCI_LATENCY_TIMER, 1, 0x40);
	cfg_write(r, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_write(r, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	outl(&r->pio, 0xcf8, SNAP_CFG_ADDR);
	assert_int_equal(mmio_read32(r, SNAP_BAR0), 0x5a5a5a5a);
}

/*
 * Saved, loaded into a new bus with the same functions: the BARs decode where
 * the guest put them (the device told), nothing at the built addresses, and
 * every configuration register and CONFIG_ADDRESS read as before.
 */
static void test_pci_snapshot_maps_guest_programmed_bars_on_a_fresh_bus(void **state)
{
	struct rig *r = *state, *f;
	struct state_out saved, again;
	char why[STATE_WHY_LEN];
	uint32_t built0, reg;
	unsigned slot;
	void *fresh;

	snap_drive(r);
	saved = state_save(&pci_bus__device_ops, r->pci);
	assert_int_equal(saved.len, SNAP_SLOT(2));

	assert_int_equal(setup(&fresh), 0);
	f = fresh;
	built0 = cfg_read(f, 1, PCI_BASE_ADDRESS_0, 4);
	assert_int_not_equal(built0, SNAP_BAR0);
	assert_int_equal(mmio_read32(f, SNAP_BAR0), 0xffffffff);
	assert_int_equal(state_load(&pci_bus__device_ops, f->pci, saved.buf, saved.len, why), 0);
	again = state_save(&pci_bus__device_ops, f->pci);
	assert_int_equal(again.len, saved.len);
	assert_memory_equal(again.buf, saved.buf, saved.len);
	assert_int_equal(inl(&f->pio, 0xcf8), SNAP_CFG_ADDR);

	/* Both BARs went on at their new places, and the device heard of it. */
	assert_int_equal(f->dev.bar_changes, 2);
	assert_true(f->dev.on);
	assert_false(f->dev.was_on);
	assert_int_equal(f->dev.changed_bar, 2);
	assert_int_equal(f->dev.new_addr, SNAP_BAR2);
	assert_int_equal(mmio_read32(f, SNAP_BAR0 + 8), 0x5a5a5a5a);
	assert_int_equal(f->dev.last_bar, 0);
	assert_int_equal(f->dev.last_off, 8);
	mmio_write32(f, SNAP_BAR2 + 0x3ffc, 0xcafe);
	assert_int_equal(f->dev.last_bar, 2);
	assert_int_equal(f->dev.last_off, 0x3ffc);
	assert_int_equal(f->dev.last_val, 0xcafe);
	assert_int_equal(mmio_read32(f, built0), 0xffffffff);
	assert_int_equal(r->dev.writes, 0);

	for (slot = 0; slot < 3; slot++)
		for (reg = 0; reg < PCI_CFG_SIZE; reg += 4)
			assert_int_equal(cfg_read(f, slot, reg, 4), cfg_read(r, slot, reg, 4));

	state_out__free(&again);
	state_out__free(&saved);
	teardown(&fresh);
}

/*
 * A state cut short, too long, of another version, of other functions or
 * with a bad CONFIG_ADDRESS: refused, the bus untouched.
 */
static void test_pci_load_refuses_other_functions_and_bad_state(void **state)
{
	struct rig *r = *state, *o;
	struct state_out good;
	void *other;

	assert_int_equal(setup(&other), 0);
	o = other;
	snap_drive(o);
	good = state_save(&pci_bus__device_ops, o->pci);
	teardown(&other);

	assert_state_length_exact(&pci_bus__device_ops, r->pci, &good);
	assert_state_byte_refused(&pci_bus__device_ops, r->pci, &good, 0, 9, "version 9");
	assert_state_byte_refused(&pci_bus__device_ops, r->pci, &good, 8, 3,
				  "3 functions saved, the bus has 2");
	assert_state_byte_refused(&pci_bus__device_ops, r->pci, &good, SNAP_SLOT(1), 5, "00:05.0");
	assert_state_byte_refused(&pci_bus__device_ops, r->pci, &good, SNAP_CFG(1) + PCI_VENDOR_ID,
				  0x00, "1200:5678");
	assert_state_byte_refused(&pci_bus__device_ops, r->pci, &good, SNAP_CFG(0) + PCI_DEVICE_ID,
				  0x09, "1b36:0009");
	assert_state_byte_refused(&pci_bus__device_ops, r->pci, &good, 4, 0x3f,
				  "CONFIG_ADDRESS 0x8000083f");

	assert_int_equal(r->dev.bar_changes, 0);
	assert_int_equal(inl(&r->pio, 0xcf8), 0);
	assert_int_equal(cfg_read(r, 1, PCI_COMMAND, 2), 0);
	assert_int_equal(cfg_read(r, 1, PCI_INTERRUPT_LINE, 1), 0);
	assert_int_equal(mmio_read32(r, SNAP_BAR0), 0xffffffff);
	state_out__free(&good);
}

/* A snapshot cannot rewrite what a guest cannot: ids, class, BAR sizes and flags, header, pointers. */
static void test_pci_load_keeps_read_only_bits_as_built(void **state)
{
	struct rig *r = *state, *o;
	uint32_t class_rev = cfg_read(r, 1, PCI_CLASS_REVISION, 4);
	char why[STATE_WHY_LEN];
	struct state_out good;
	uint8_t *cfg;
	void *other;

	assert_int_equal(setup(&other), 0);
	o = other;
	snap_drive(o);
	good = state_save(&pci_bus__device_ops, o->pci);
	teardown(&other);

	cfg = good.buf + SNAP_CFG(1);
	memset(cfg + PCI_CLASS_REVISION, 0xff, 4);
	cfg[PCI_HEADER_TYPE] = 0x80;
	cfg[PCI_BASE_ADDRESS_0] = 0xff;                      /* flags and size bits */
	cfg[PCI_BASE_ADDRESS_0 + 1] |= 0x0f;
	cfg[PCI_CAPABILITY_LIST] = 0x40;
	cfg[PCI_INTERRUPT_PIN] = 1;
	cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	cfg[PCI_COMMAND + 1] |= 0xf8;                        /* reserved command bits */
	assert_int_equal(state_load(&pci_bus__device_ops, r->pci, good.buf, good.len, why), 0);

	assert_int_equal(cfg_read(r, 1, PCI_CLASS_REVISION, 4), class_rev);
	assert_int_equal(cfg_read(r, 1, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(cfg_read(r, 1, PCI_BASE_ADDRESS_0, 4), (uint32_t)SNAP_BAR0);
	assert_int_equal(cfg_read(r, 1, PCI_CAPABILITY_LIST, 1), 0);
	assert_int_equal(cfg_read(r, 1, PCI_INTERRUPT_PIN, 1), 0);
	assert_false(cfg_read(r, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_read(r, 1, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(cfg_read(r, 1, PCI_INTERRUPT_LINE, 1), 0x0b);
	assert_int_equal(mmio_read32(r, SNAP_BAR0), 0x5a5a5a5a);
	state_out__free(&good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pci_linux_type1_probe_and_host_bridge_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_device_ids_class_revision_and_no_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_absent_slots_buses_functions_read_all_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_byte_and_word_accesses_at_data_port_offsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_read_only_bits_hold_and_status_errors_clear_on_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_bars_assigned_in_window_aligned_and_disjoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_bar_sizing_protocol_32_and_64_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_bar_decodes_with_memory_enabled_and_follows_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_64_bit_bar_moves_above_4g_only_inside_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_capability_list_links_every_capability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_rejects_bad_bars_and_full_bus_or_window, setup, teardown),
		cmocka_unit_test(test_pci_bus_create_fails_when_ports_taken),
		cmocka_unit_test_setup_teardown(test_msix_capability_describes_table_and_pba, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_programming_creates_then_updates_the_msi_route, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_bus_reset_restores_config_and_msix_as_built, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_msix_masked_vector_pends_and_fires_once_on_unmask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_snapshot_maps_guest_programmed_bars_on_a_fresh_bus,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_load_refuses_other_functions_and_bad_state, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pci_load_keeps_read_only_bits_as_built, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
