/*
 * pvpanic-pci as the guest's driver sees it: found by its ids on bus 0, BAR 0
 * sized and enabled, the supported events read, a panic written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw_fakes.h"
#include "state_refusals.h"
#include "vmm/hw/pvpanic.h"
#include "vmm/pci/pci.h"
#include "vmm/x86/layout.h"

struct rig {
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct fake_ctl ctl_rec;
	struct pvpanic *panic;
	unsigned slot;
	uint64_t bar;
};

static uint32_t cfg_read(struct rig *r, unsigned slot, unsigned reg, uint32_t len)
{
	uint32_t v = 0;

	io_outl(&r->pio, PORT_PCI_CONFIG_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
	bus__access(&r->pio, PORT_PCI_CONFIG_DATA + (reg & 3), &v, len, false);
	return v;
}

static void cfg_write(struct rig *r, unsigned slot, unsigned reg, uint32_t len, uint32_t v)
{
	io_outl(&r->pio, PORT_PCI_CONFIG_ADDRESS, 0x80000000u | slot << 11 | (reg & 0xfc));
	bus__access(&r->pio, PORT_PCI_CONFIG_DATA + (reg & 3), &v, len, true);
}

static uint8_t bar_readb(struct rig *r, uint64_t off)
{
	uint8_t v = 0;

	bus__access(&r->mmio, r->bar + off, &v, 1, false);
	return v;
}

static void bar_writeb(struct rig *r, uint64_t off, uint8_t v)
{
	bus__access(&r->mmio, r->bar + off, &v, 1, true);
}

/* The bus, the device, and what Linux's pvpanic-pci probe does: find it, enable BAR 0. */
static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct vm_ctl ctl;
	unsigned slot;

	if (!r)
		return -1;
	bus__init(&r->pio, "pio");
	bus__init(&r->mmio, "mmio");
	ctl = fake_vm_ctl(&r->ctl_rec);
	if (pci_bus__create(&r->pio, &r->mmio, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &r->pci) ||
	    pvpanic__add(r->pci, &ctl, &r->panic))
		return -1;
	for (slot = 0; slot < PCI_MAX_SLOTS; slot++)
		if (cfg_read(r, slot, PCI_VENDOR_ID, 4) == (0x0011u << 16 | 0x1b36))
			r->slot = slot;
	if (!r->slot)
		return -1;
	r->bar = cfg_read(r, r->slot, PCI_BASE_ADDRESS_0, 4) & ~0xfull;
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;

	pci_bus__destroy(r->pci);
	pvpanic__destroy(r->panic);
	bus__exit(&r->pio);
	bus__exit(&r->mmio);
	free(r);
	return 0;
}

static void enable_memory(struct rig *r)
{
	cfg_write(r, r->slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
}

static void test_pvpanic_is_qemus_pci_device_with_a_small_memory_bar(void **state)
{
	struct rig *r = *state;

	assert_int_equal(cfg_read(r, r->slot, PCI_CLASS_DEVICE, 2), 0x0880);  /* system, other */
	assert_int_equal(cfg_read(r, r->slot, PCI_REVISION_ID, 1), 1);
	assert_int_equal(cfg_read(r, r->slot, PCI_INTERRUPT_PIN, 1), 0);     /* no INTx */
	assert_true(r->bar >= LAYOUT_PCI_MMIO_BASE && r->bar < LAYOUT_PCI_MMIO_BASE + LAYOUT_PCI_MMIO_SIZE);
	/* Sizing: all ones read back as the size mask of a 32-bit memory BAR. */
	cfg_write(r, r->slot, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	assert_int_equal(cfg_read(r, r->slot, PCI_BASE_ADDRESS_0, 4), (uint32_t)~(PVPANIC_BAR_SIZE - 1));
	cfg_write(r, r->slot, PCI_BASE_ADDRESS_0, 4, (uint32_t)r->bar);
	assert_int_equal(cfg_read(r, r->slot, PCI_BASE_ADDRESS_1, 4), 0);    /* no second BAR */
}

static void test_pvpanic_reads_supported_events_once_decoding(void **state)
{
	struct rig *r = *state;

	assert_int_equal(bar_readb(r, 0), 0xff);       /* memory decode off: nobody answers */
	enable_memory(r);
	assert_int_equal(bar_readb(r, 0), PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
	assert_int_equal(bar_readb(r, 1), 0);
	assert_int_equal(bar_readb(r, PVPANIC_BAR_SIZE - 1), 0);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);
}

static void count_num(void *opaque, const char *name, uint64_t value)
{
	uint64_t *c = opaque;

	if (!strcmp(name, "panicked"))
		c[0] = value;
	else if (!strcmp(name, "crash_loaded"))
		c[1] = value;
}

static void counters(struct rig *r, uint64_t c[2])
{
	const struct counter_sink sink = { .num = count_num, .opaque = c };

	c[0] = c[1] = 99;
	pvpanic__device_ops.counters(r->panic, &sink);
}

static void test_pvpanic_panic_stops_the_vm_with_its_status(void **state)
{
	struct rig *r = *state;
	uint64_t c[2];

	enable_memory(r);
	bar_writeb(r, 1, PVPANIC_PANICKED);            /* not the register */
	bar_writeb(r, 0, 0);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);
	bar_writeb(r, 0, PVPANIC_PANICKED);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 1);
	assert_int_equal(r->ctl_rec.reason, VM_STOP_PANIC);
	assert_int_equal(r->ctl_rec.status, PVPANIC_EXIT_STATUS);
	assert_int_equal(PVPANIC_EXIT_STATUS, 3);
	counters(r, c);
	assert_int_equal(c[0], 1);
	assert_int_equal(c[1], 0);
}

/* With a crash kernel loaded the guest goes on into it: counted, not a stop. */
static void test_pvpanic_crash_loaded_is_counted_and_the_guest_goes_on(void **state)
{
	struct rig *r = *state;
	uint64_t c[2];

	enable_memory(r);
	bar_writeb(r, 0, PVPANIC_CRASH_LOADED);
	bar_writeb(r, 0, PVPANIC_CRASH_LOADED);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);
	counters(r, c);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[1], 2);
}

/*
 * Saved with its bus after the guest moved BAR 0 and enabled it, loaded into
 * a new VM's bus and pvpanic (bus first, as the VM holds them): the register
 * answers at the moved address, and a panic written there stops the new VM.
 */
static void test_pvpanic_snapshot_restores_it_where_the_guest_put_it(void **state)
{
	struct rig *r = *state, *f;
	uint64_t moved = LAYOUT_PCI_MMIO_BASE + 0x300000;
	struct state_out bus_state, dev_state, again;
	char why[STATE_WHY_LEN];
	void *fresh;

	cfg_write(r, r->slot, PCI_BASE_ADDRESS_0, 4, (uint32_t)moved);
	enable_memory(r);
	r->bar = moved;
	assert_int_equal(bar_readb(r, 0), PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
	bus_state = state_save(&pci_bus__device_ops, r->pci);
	dev_state = state_save(&pvpanic__device_ops, r->panic);

	assert_int_equal(setup(&fresh), 0);
	f = fresh;
	assert_int_not_equal(f->bar, moved);
	f->bar = moved;
	assert_int_equal(bar_readb(f, 0), 0xff);
	assert_int_equal(state_load(&pci_bus__device_ops, f->pci, bus_state.buf, bus_state.len, why), 0);
	assert_int_equal(state_load(&pvpanic__device_ops, f->panic, dev_state.buf, dev_state.len, why), 0);
	again = state_save(&pvpanic__device_ops, f->panic);
	assert_int_equal(again.len, dev_state.len);
	assert_memory_equal(again.buf, dev_state.buf, dev_state.len);

	assert_int_equal(bar_readb(f, 0), bar_readb(r, 0));
	assert_int_equal(bar_readb(f, 1), bar_readb(r, 1));
	assert_int_equal(cfg_read(f, f->slot, PCI_COMMAND, 2), cfg_read(r, r->slot, PCI_COMMAND, 2));
	bar_writeb(f, 0, PVPANIC_PANICKED);
	assert_int_equal(fake_ctl_calls(&f->ctl_rec), 1);
	assert_int_equal(f->ctl_rec.reason, VM_STOP_PANIC);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);

	state_out__free(&again);
	state_out__free(&dev_state);
	state_out__free(&bus_state);
	teardown(&fresh);
}

/* A state cut short, too long or of another version: refused. */
static void test_pvpanic_load_refuses_truncated_and_foreign_state(void **state)
{
	struct rig *r = *state;
	struct state_out good = state_save(&pvpanic__device_ops, r->panic);

	assert_state_length_exact(&pvpanic__device_ops, r->panic, &good);
	assert_state_byte_refused(&pvpanic__device_ops, r->panic, &good, 0, 2, "version 2");
	state_out__free(&good);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pvpanic_is_qemus_pci_device_with_a_small_memory_bar),
		T(test_pvpanic_reads_supported_events_once_decoding),
		T(test_pvpanic_panic_stops_the_vm_with_its_status),
		T(test_pvpanic_crash_loaded_is_counted_and_the_guest_goes_on),
		T(test_pvpanic_snapshot_restores_it_where_the_guest_put_it),
		T(test_pvpanic_load_refuses_truncated_and_foreign_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
