#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw_fakes.h"
#include "state_refusals.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/x86/layout.h"

#define EVT PORT_ACPI_PM1A_EVT
#define CNT PORT_ACPI_PM1A_CNT

struct pm {
	struct bus bus;
	struct fake_ctl ctl_rec;
	struct fake_irq sci;
	struct acpi_pm *pm;
};

static int pm_setup(void **state)
{
	struct pm *t = calloc(1, sizeof(*t));
	struct irq_sink sci;
	struct vm_ctl ctl;

	if (!t)
		return -1;
	bus__init(&t->bus, "pio");
	ctl = fake_vm_ctl(&t->ctl_rec);
	sci = fake_irq_sink(&t->sci, ACPI_SCI_IRQ);
	if (acpi_pm__add(&t->bus, &ctl, &sci, &t->pm))
		return -1;
	*state = t;
	return 0;
}

static int pm_teardown(void **state)
{
	struct pm *t = *state;

	acpi_pm__destroy(t->pm);
	bus__exit(&t->bus);
	free(t);
	return 0;
}

static uint16_t slp(unsigned typ, bool en)
{
	return typ << ACPI_PM1_CNT_SLP_TYP_SHIFT | (en ? ACPI_PM1_CNT_SLP_EN : 0);
}

static void test_acpi_pm_s5_requests_poweroff(void **state)
{
	struct pm *t = *state;

	/* Linux's sequence: SLP_TYP first, then SLP_TYP | SLP_EN. */
	io_outw(&t->bus, CNT, ACPI_PM1_CNT_SCI_EN | slp(ACPI_PM_S5_SLP_TYP, false));
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
	io_outw(&t->bus, CNT, ACPI_PM1_CNT_SCI_EN | slp(ACPI_PM_S5_SLP_TYP, true));
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
	assert_int_equal(t->ctl_rec.reason, VM_STOP_POWEROFF);
	assert_int_equal(t->ctl_rec.status, 0);
}

static void test_acpi_pm_s5_by_byte_write_to_high_half(void **state)
{
	struct pm *t = *state;

	io_outb(&t->bus, CNT + 1, slp(ACPI_PM_S5_SLP_TYP, true) >> 8);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
	assert_int_equal(t->ctl_rec.reason, VM_STOP_POWEROFF);
}

static void test_acpi_pm_other_sleep_state_ignored(void **state)
{
	struct pm *t = *state;
	unsigned typ;

	for (typ = 0; typ < 8; typ++)
		if (typ != ACPI_PM_S5_SLP_TYP)
			io_outw(&t->bus, CNT, slp(typ, true));
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void test_acpi_pm_control_reads_sci_en_and_no_slp_en(void **state)
{
	struct pm *t = *state;
	uint16_t v;

	assert_int_equal(io_inw(&t->bus, CNT), ACPI_PM1_CNT_SCI_EN);
	io_outw(&t->bus, CNT, slp(1, true));
	v = io_inw(&t->bus, CNT);
	assert_int_equal(v, ACPI_PM1_CNT_SCI_EN | slp(1, false));
	assert_int_equal(io_inb(&t->bus, CNT), ACPI_PM1_CNT_SCI_EN);
	/* 4 bytes do not fit the 2-byte block: unclaimed, all ones. */
	assert_int_equal(io_inl(&t->bus, CNT), 0xffffffff);
}

static void test_acpi_pm_event_block_status_w1c_and_enable_rw(void **state)
{
	struct pm *t = *state;

	assert_int_equal(io_inl(&t->bus, EVT), 0);
	io_outw(&t->bus, EVT + 2, 0x0100); /* PWRBTN_EN */
	assert_int_equal(io_inw(&t->bus, EVT + 2), 0x0100);
	assert_int_equal(io_inl(&t->bus, EVT), 0x01000000);
	/* Writing ones to PM1_STS clears, never sets; reserved enable bits stay 0. */
	io_outl(&t->bus, EVT, 0xffff0000 | 0xffff);
	assert_int_equal(io_inw(&t->bus, EVT), 0);
	assert_int_equal(io_inw(&t->bus, EVT + 2), 0x4721);
	io_outb(&t->bus, EVT + 3, 0);
	assert_int_equal(io_inw(&t->bus, EVT + 2), 0x0021);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

/* A reboot in place: no event pending or enabled, the SCI low, the control block as at power-on. */
static void test_acpi_pm_device_reset_clears_events_and_lowers_the_sci(void **state)
{
	struct pm *t = *state;

	io_outw(&t->bus, EVT + 2, ACPI_PM1_PWRBTN);
	acpi_pm__press_power_button(t->pm);
	io_outw(&t->bus, CNT, slp(1, false));
	assert_int_equal(t->sci.level, 1);
	acpi_pm__device_ops.reset(t->pm);
	assert_int_equal(t->sci.level, 0);
	assert_int_equal(io_inl(&t->bus, EVT), 0);
	assert_int_equal(io_inw(&t->bus, CNT), ACPI_PM1_CNT_SCI_EN);
	/* The next boot's press works as the first one did. */
	acpi_pm__press_power_button(t->pm);
	assert_int_equal(t->sci.level, 0);
	io_outw(&t->bus, EVT + 2, ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.level, 1);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

/* A press before the guest enabled the button waits in PWRBTN_STS; enabling it raises the SCI. */
static void test_acpi_pm_press_sets_status_and_sci_follows_enable(void **state)
{
	struct pm *t = *state;

	acpi_pm__press_power_button(t->pm);
	assert_int_equal(io_inw(&t->bus, EVT), ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.calls, 0);              /* not enabled: no SCI */
	io_outw(&t->bus, EVT + 2, ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.calls, 1);
	assert_int_equal(t->sci.gsi, ACPI_SCI_IRQ);
	assert_int_equal(t->sci.level, 1);
	/* Disabling the event drops the line, the status stays until cleared. */
	io_outw(&t->bus, EVT + 2, 0);
	assert_int_equal(t->sci.level, 0);
	assert_int_equal(io_inw(&t->bus, EVT), ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.calls, 2);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

/* Linux's handler: the SCI stays up until the guest writes 1 to PWRBTN_STS, and only that clears it. */
static void test_acpi_pm_sci_is_level_until_status_written_one(void **state)
{
	struct pm *t = *state;

	io_outw(&t->bus, EVT + 2, ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.calls, 0);              /* enabled, nothing pressed */
	acpi_pm__press_power_button(t->pm);
	assert_int_equal(t->sci.calls, 1);
	assert_int_equal(t->sci.level, 1);
	/* A second press while the first is pending: still one level, no new edge. */
	acpi_pm__press_power_button(t->pm);
	assert_int_equal(t->sci.calls, 1);
	/* Writing 0s, or 1s to other status bits, leaves it asserted. */
	io_outw(&t->bus, EVT, 0);
	io_outw(&t->bus, EVT, (uint16_t)~ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.calls, 1);
	assert_int_equal(io_inw(&t->bus, EVT), ACPI_PM1_PWRBTN);
	/* Write 1 to clear, as a 32-bit access that also rewrites the enable half unchanged. */
	io_outl(&t->bus, EVT, (uint32_t)ACPI_PM1_PWRBTN << 16 | ACPI_PM1_PWRBTN);
	assert_int_equal(t->sci.calls, 2);
	assert_int_equal(t->sci.level, 0);
	assert_int_equal(io_inl(&t->bus, EVT), (uint32_t)ACPI_PM1_PWRBTN << 16);
	/* The next press raises it again. */
	acpi_pm__press_power_button(t->pm);
	assert_int_equal(t->sci.calls, 3);
	assert_int_equal(t->sci.level, 1);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void count_num(void *opaque, const char *name, uint64_t value)
{
	if (!strcmp(name, "power_button_presses"))
		*(uint64_t *)opaque = value;
}

static void test_acpi_pm_counts_presses(void **state)
{
	struct pm *t = *state;
	uint64_t presses = 99;
	const struct counter_sink sink = { .num = count_num, .opaque = &presses };

	acpi_pm__device_ops.counters(t->pm, &sink);
	assert_int_equal(presses, 0);
	acpi_pm__press_power_button(t->pm);
	acpi_pm__press_power_button(t->pm);
	acpi_pm__device_ops.counters(t->pm, &sink);
	assert_int_equal(presses, 2);
}

static void test_acpi_pm_reset_register_requests_reboot(void **state)
{
	struct pm *t = *state;

	io_outb(&t->bus, PORT_ACPI_RESET, ACPI_RESET_VALUE + 1);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
	io_outb(&t->bus, PORT_ACPI_RESET, ACPI_RESET_VALUE);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
	assert_int_equal(t->ctl_rec.reason, VM_STOP_REBOOT);
	assert_int_equal(io_inb(&t->bus, PORT_ACPI_RESET), 0);
}

static void test_acpi_pm_add_refuses_taken_ports_claiming_nothing(void **state)
{
	static const struct io_ops none = { 0 };
	struct fake_ctl rec;
	struct vm_ctl ctl = fake_vm_ctl(&rec);
	struct fake_irq irq;
	struct irq_sink sci = fake_irq_sink(&irq, ACPI_SCI_IRQ);
	struct acpi_pm *pm = NULL;
	struct bus bus;

	(void)state;
	bus__init(&bus, "pio");
	assert_int_equal(bus__register(&bus, PORT_ACPI_RESET, 1, &none, NULL, "other"), 0);
	assert_int_equal(acpi_pm__add(&bus, &ctl, &sci, &pm), -EEXIST);
	assert_null(pm);
	assert_int_equal(bus.nr, 1);
	bus__exit(&bus);
}

/* A guest's busy PM1 block: the power button enabled and pressed (SCI high), sleep type 3 and BM_RLD kept. */
static void pm_drive_busy(struct pm *t)
{
	io_outw(&t->bus, EVT + 2, ACPI_PM1_PWRBTN | 0x0020);   /* PWRBTN_EN, GBL_EN */
	acpi_pm__press_power_button(t->pm);
	io_outw(&t->bus, CNT, slp(3, false) | 0x0002);
	assert_int_equal(t->sci.level, 1);
}

#define PM_PROBE_MAX 8

/* What a guest reads and the SCI's level, then the button acknowledged; returns how many values `v` got. */
static unsigned pm_probe(struct pm *t, uint32_t v[PM_PROBE_MAX])
{
	unsigned n = 0;

	v[n++] = io_inl(&t->bus, EVT);
	v[n++] = io_inw(&t->bus, CNT);
	v[n++] = (uint32_t)t->sci.level;
	io_outw(&t->bus, EVT, ACPI_PM1_PWRBTN);                 /* write 1 to clear */
	v[n++] = io_inl(&t->bus, EVT);
	v[n++] = (uint32_t)t->sci.level;
	return n;
}

/* Saved, loaded into a new PM1 block: it answers every read as the first does, the SCI at the same level. */
static void test_acpi_pm_snapshot_restores_registers_and_sci(void **state)
{
	struct pm *t = *state, *f;
	uint32_t want[PM_PROBE_MAX], got[PM_PROBE_MAX];
	struct state_out saved, again;
	char why[STATE_WHY_LEN];
	void *fresh;
	unsigned n;

	pm_drive_busy(t);
	saved = state_save(&acpi_pm__device_ops, t->pm);
	assert_int_equal(pm_setup(&fresh), 0);
	f = fresh;
	assert_int_equal(state_load(&acpi_pm__device_ops, f->pm, saved.buf, saved.len, why), 0);
	assert_int_equal(f->sci.calls, 1);
	assert_int_equal(f->sci.level, 1);
	assert_int_equal(f->sci.gsi, ACPI_SCI_IRQ);
	again = state_save(&acpi_pm__device_ops, f->pm);
	assert_int_equal(again.len, saved.len);
	assert_memory_equal(again.buf, saved.buf, saved.len);

	n = pm_probe(t, want);
	assert_int_equal(pm_probe(f, got), n);
	assert_memory_equal(got, want, n * sizeof(want[0]));
	assert_int_equal(want[0], (uint32_t)(ACPI_PM1_PWRBTN | 0x0020) << 16 | ACPI_PM1_PWRBTN);
	assert_int_equal(want[1], ACPI_PM1_CNT_SCI_EN | slp(3, false) | 0x0002);
	assert_int_equal(want[4], 0);
	assert_int_equal(fake_ctl_calls(&f->ctl_rec), 0);

	state_out__free(&again);
	state_out__free(&saved);
	pm_teardown(&fresh);
}

/* A state cut short, too long, of another version or with bits the block cannot hold: refused, nothing changed. */
static void test_acpi_pm_load_refuses_truncated_foreign_and_out_of_range_state(void **state)
{
	struct pm *t = *state, *o;
	struct state_out good;
	void *other;

	assert_int_equal(pm_setup(&other), 0);
	o = other;
	pm_drive_busy(o);
	good = state_save(&acpi_pm__device_ops, o->pm);
	pm_teardown(&other);

	assert_state_length_exact(&acpi_pm__device_ops, t->pm, &good);
	assert_state_byte_refused(&acpi_pm__device_ops, t->pm, &good, 3, 1, "version 16777217");
	assert_state_byte_refused(&acpi_pm__device_ops, t->pm, &good, 4, 0x01, "PM1_STS 0x0101");
	assert_state_byte_refused(&acpi_pm__device_ops, t->pm, &good, 7, 0xff, "PM1_EN 0xff20");
	assert_state_byte_refused(&acpi_pm__device_ops, t->pm, &good, 8, 0x03, "PM1_CNT 0x0c03");

	assert_int_equal(t->sci.calls, 0);
	assert_int_equal(io_inl(&t->bus, EVT), 0);
	assert_int_equal(io_inw(&t->bus, CNT), ACPI_PM1_CNT_SCI_EN);
	state_out__free(&good);
}

#define T(f) cmocka_unit_test_setup_teardown(f, pm_setup, pm_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_acpi_pm_s5_requests_poweroff),
		T(test_acpi_pm_device_reset_clears_events_and_lowers_the_sci),
		T(test_acpi_pm_s5_by_byte_write_to_high_half),
		T(test_acpi_pm_other_sleep_state_ignored),
		T(test_acpi_pm_control_reads_sci_en_and_no_slp_en),
		T(test_acpi_pm_event_block_status_w1c_and_enable_rw),
		T(test_acpi_pm_press_sets_status_and_sci_follows_enable),
		T(test_acpi_pm_sci_is_level_until_status_written_one),
		T(test_acpi_pm_counts_presses),
		T(test_acpi_pm_reset_register_requests_reboot),
		T(test_acpi_pm_snapshot_restores_registers_and_sci),
		T(test_acpi_pm_load_refuses_truncated_foreign_and_out_of_range_state),
		cmocka_unit_test(test_acpi_pm_add_refuses_taken_ports_claiming_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
