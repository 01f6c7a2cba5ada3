#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hw_fakes.h"
#include "state_refusals.h"
#include "vmm/hw/i8042.h"
#include "vmm/x86/layout.h"

#define DATA PORT_I8042_DATA
#define CMD  PORT_I8042_CMD

#define STR_OBF     0x01
#define STR_IBF     0x02
#define STR_SYS     0x04
#define STR_CMD     0x08
#define STR_AUXDATA 0x20
#define STR_TIMEOUT 0x40

#define CTR_KBDINT  0x01
#define CTR_AUXINT  0x02
#define CTR_SYS     0x04
#define CTR_KBDDIS  0x10
#define CTR_AUXDIS  0x20

struct kbc {
	struct bus bus;
	struct fake_ctl ctl_rec;
	struct fake_irq kbd, aux;
	struct i8042 *k;
};

static int kbc_setup(void **state)
{
	struct kbc *t = calloc(1, sizeof(*t));
	struct vm_ctl ctl;
	struct irq_sink kbd, aux;

	if (!t)
		return -1;
	bus__init(&t->bus, "pio");
	ctl = fake_vm_ctl(&t->ctl_rec);
	if (i8042__add(&t->bus, &ctl, &t->k))
		return -1;
	kbd = fake_irq_sink(&t->kbd, I8042_KBD_IRQ);
	aux = fake_irq_sink(&t->aux, I8042_AUX_IRQ);
	i8042__set_irqs(t->k, &kbd, &aux);
	*state = t;
	return 0;
}

static int kbc_teardown(void **state)
{
	struct kbc *t = *state;

	i8042__destroy(t->k);
	bus__exit(&t->bus);
	free(t);
	return 0;
}

/* i8042_command() as Linux does it: command, optional parameter, optional answer. */
static int kbc_command(struct kbc *t, uint8_t cmd, int param)
{
	assert_false(io_inb(&t->bus, CMD) & STR_IBF);
	io_outb(&t->bus, CMD, cmd);
	if (param >= 0)
		io_outb(&t->bus, DATA, param);
	if (!(io_inb(&t->bus, CMD) & STR_OBF))
		return -1;
	return io_inb(&t->bus, DATA);
}

static void test_i8042_reset_command_requests_reboot(void **state)
{
	struct kbc *t = *state;

	io_outb(&t->bus, CMD, 0xfe);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
	assert_int_equal(t->ctl_rec.reason, VM_STOP_REBOOT);
	/* Pulsing other output-port bits does not reset. */
	io_outb(&t->bus, CMD, 0xff);
	io_outb(&t->bus, CMD, 0xfd);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
}

static void test_i8042_output_port_reset_line_low_requests_reboot(void **state)
{
	struct kbc *t = *state;

	assert_int_equal(kbc_command(t, 0xd0, -1) & 0x03, 0x03); /* running, A20 on */
	io_outb(&t->bus, CMD, 0xd1);
	io_outb(&t->bus, DATA, 0x03);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
	io_outb(&t->bus, CMD, 0xd1);
	io_outb(&t->bus, DATA, 0x02);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
	assert_int_equal(t->ctl_rec.reason, VM_STOP_REBOOT);
}

static void test_i8042_self_test_answers_0x55(void **state)
{
	struct kbc *t = *state;
	uint8_t st = io_inb(&t->bus, CMD);

	assert_int_equal(st & (STR_OBF | STR_IBF), 0);
	assert_true(st & STR_SYS);
	io_outb(&t->bus, CMD, 0xaa);
	st = io_inb(&t->bus, CMD);
	assert_true(st & STR_OBF);
	assert_true(st & STR_CMD);
	assert_int_equal(io_inb(&t->bus, DATA), 0x55);
	assert_false(io_inb(&t->bus, CMD) & STR_OBF);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void test_i8042_command_byte_read_write(void **state)
{
	struct kbc *t = *state;
	int ctr = kbc_command(t, 0x20, -1);

	assert_true(ctr >= 0);
	assert_true(ctr & CTR_SYS);
	assert_int_equal(kbc_command(t, 0x20, -1), ctr); /* Linux wants a stable read */
	assert_int_equal(kbc_command(t, 0x60, 0x47), -1);
	assert_false(io_inb(&t->bus, CMD) & STR_CMD); /* last write went to the data port */
	assert_int_equal(kbc_command(t, 0x20, -1), 0x47);
}

static void test_i8042_interface_tests_pass(void **state)
{
	struct kbc *t = *state;

	assert_int_equal(kbc_command(t, 0xab, -1), 0x00);
	assert_int_equal(kbc_command(t, 0xa9, -1), 0x00);
}

static void test_i8042_port_disable_enable_toggle_command_byte(void **state)
{
	struct kbc *t = *state;

	io_outb(&t->bus, CMD, 0xa7);
	assert_true(kbc_command(t, 0x20, -1) & CTR_AUXDIS);
	io_outb(&t->bus, CMD, 0xa8);
	assert_false(kbc_command(t, 0x20, -1) & CTR_AUXDIS);
	io_outb(&t->bus, CMD, 0xad);
	assert_true(kbc_command(t, 0x20, -1) & CTR_KBDDIS);
	io_outb(&t->bus, CMD, 0xae);
	assert_false(kbc_command(t, 0x20, -1) & CTR_KBDDIS);
}

static void test_i8042_aux_loopback_sets_auxdata_and_raises_irq12(void **state)
{
	struct kbc *t = *state;
	int ctr = kbc_command(t, 0x20, -1);

	assert_int_equal(kbc_command(t, 0x60, ctr | CTR_AUXINT), -1);
	io_outb(&t->bus, CMD, 0xd3);
	io_outb(&t->bus, DATA, 0x5a);
	assert_int_equal(io_inb(&t->bus, CMD) & (STR_OBF | STR_AUXDATA), STR_OBF | STR_AUXDATA);
	assert_int_equal(t->aux.level, 1);
	assert_int_equal(t->aux.gsi, I8042_AUX_IRQ);
	assert_int_equal(t->kbd.level, 0);
	assert_int_equal(io_inb(&t->bus, DATA), 0x5a);
	assert_int_equal(t->aux.level, 0);
	assert_false(io_inb(&t->bus, CMD) & (STR_OBF | STR_AUXDATA));

	/* Linux's MUX probe: a plain controller echoes 0xa4 back, so no MUX. */
	assert_int_equal(kbc_command(t, 0xd3, 0xa4), 0xa4);
}

static void test_i8042_keyboard_loopback_raises_irq1(void **state)
{
	struct kbc *t = *state;

	io_outb(&t->bus, CMD, 0xd2);
	io_outb(&t->bus, DATA, 0x1c);
	assert_int_equal(io_inb(&t->bus, CMD) & (STR_OBF | STR_AUXDATA), STR_OBF);
	assert_int_equal(t->kbd.level, 1);
	assert_int_equal(t->kbd.gsi, I8042_KBD_IRQ);
	assert_int_equal(io_inb(&t->bus, DATA), 0x1c);
	assert_int_equal(t->kbd.level, 0);

	/* With KBDINT off the byte is there but the line stays low. */
	assert_int_equal(kbc_command(t, 0x60, CTR_SYS), -1);
	io_outb(&t->bus, CMD, 0xd2);
	io_outb(&t->bus, DATA, 0x1c);
	assert_true(io_inb(&t->bus, CMD) & STR_OBF);
	assert_int_equal(t->kbd.level, 0);
}

/* A reboot in place: the firmware's command byte back, the output buffer empty, IRQ 1 low. */
static void test_i8042_device_reset_is_power_on_state(void **state)
{
	struct kbc *t = *state;
	int ctr = kbc_command(t, 0x20, -1);

	assert_int_equal(kbc_command(t, 0x60, CTR_SYS | 0x01), -1);
	io_outb(&t->bus, CMD, 0xd2);
	io_outb(&t->bus, DATA, 0x1c);
	assert_int_equal(t->kbd.level, 1);
	io_outb(&t->bus, CMD, 0x60);               /* a command waiting for its data byte */
	i8042__device_ops.reset(t->k);
	assert_int_equal(t->kbd.level, 0);
	assert_int_equal(io_inb(&t->bus, CMD) & (STR_OBF | STR_CMD), 0);
	assert_int_equal(kbc_command(t, 0x20, -1), ctr);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void test_i8042_device_bytes_answer_no_device_with_timeout(void **state)
{
	struct kbc *t = *state;
	uint8_t st;

	io_outb(&t->bus, DATA, 0xf2); /* keyboard GET ID */
	st = io_inb(&t->bus, CMD);
	assert_int_equal(st & (STR_OBF | STR_AUXDATA | STR_TIMEOUT), STR_OBF | STR_TIMEOUT);
	assert_int_equal(io_inb(&t->bus, DATA), 0xfe);
	assert_false(io_inb(&t->bus, CMD) & STR_TIMEOUT);

	io_outb(&t->bus, CMD, 0xd4);
	io_outb(&t->bus, DATA, 0xff); /* mouse reset */
	st = io_inb(&t->bus, CMD);
	assert_int_equal(st & (STR_OBF | STR_AUXDATA | STR_TIMEOUT),
			 STR_OBF | STR_AUXDATA | STR_TIMEOUT);
	assert_int_equal(io_inb(&t->bus, DATA), 0xfe);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void test_i8042_add_refuses_taken_ports(void **state)
{
	struct kbc *t = *state;
	struct fake_ctl rec;
	struct vm_ctl ctl = fake_vm_ctl(&rec);
	struct i8042 *k2 = NULL;

	assert_int_equal(i8042__add(&t->bus, &ctl, &k2), -EEXIST);
	assert_null(k2);
}

/*
 * A guest's busy controller: a command byte with both interrupts on, a RAM
 * byte written, an aux byte waiting in the output buffer (IRQ12 high), and a
 * RAM write command waiting for its data byte.
 */
static void kbc_drive_busy(struct kbc *t)
{
	io_outb(&t->bus, CMD, 0x60);
	io_outb(&t->bus, DATA, CTR_KBDINT | CTR_AUXINT | CTR_SYS | 0x40);
	io_outb(&t->bus, CMD, 0x65);
	io_outb(&t->bus, DATA, 0x99);
	io_outb(&t->bus, CMD, 0xd3);
	io_outb(&t->bus, DATA, 0x42);
	io_outb(&t->bus, CMD, 0x61);
	assert_int_equal(t->aux.level, 1);
}

#define KBC_PROBE_MAX 24

/*
 * What a guest reads and the lines' levels, spending the output buffer and
 * the waiting command; returns how many values `v` got.
 */
static unsigned kbc_probe(struct kbc *t, int v[KBC_PROBE_MAX])
{
	static const uint8_t reads[] = { 0x21, 0x25, 0x20, 0xd0 };
	unsigned n = 0, i;

	v[n++] = io_inb(&t->bus, CMD);
	v[n++] = t->kbd.level;
	v[n++] = t->aux.level;
	v[n++] = io_inb(&t->bus, DATA);
	v[n++] = io_inb(&t->bus, CMD);
	v[n++] = t->aux.level;
	io_outb(&t->bus, DATA, 0x77);                /* the waiting command's data byte */
	v[n++] = io_inb(&t->bus, CMD);
	for (i = 0; i < sizeof(reads); i++) {
		io_outb(&t->bus, CMD, reads[i]);
		v[n++] = t->kbd.level;
		v[n++] = io_inb(&t->bus, DATA);
	}
	v[n++] = io_inb(&t->bus, DATA);              /* empty: rereads the last byte */
	return n;
}

/* Saved, loaded into a new controller: it answers every read as the first does, its lines at the same levels. */
static void test_i8042_snapshot_restores_registers_and_irq_lines(void **state)
{
	struct kbc *t = *state, *f;
	int want[KBC_PROBE_MAX], got[KBC_PROBE_MAX];
	struct state_out saved, again;
	char why[STATE_WHY_LEN];
	void *fresh;
	unsigned n;

	kbc_drive_busy(t);
	saved = state_save(&i8042__device_ops, t->k);
	assert_int_equal(kbc_setup(&fresh), 0);
	f = fresh;
	assert_int_equal(state_load(&i8042__device_ops, f->k, saved.buf, saved.len, why), 0);
	assert_int_equal(f->aux.level, 1);
	assert_int_equal(f->kbd.level, 0);
	assert_int_equal(f->aux.calls, 1);
	assert_int_equal(f->kbd.calls, 1);
	again = state_save(&i8042__device_ops, f->k);
	assert_int_equal(again.len, saved.len);
	assert_memory_equal(again.buf, saved.buf, saved.len);

	n = kbc_probe(t, want);
	assert_int_equal(kbc_probe(f, got), n);
	assert_memory_equal(got, want, n * sizeof(want[0]));
	assert_int_equal(want[0], STR_OBF | STR_SYS | STR_CMD | 0x10 | STR_AUXDATA);
	assert_int_equal(want[3], 0x42);
	assert_int_equal(want[7], 1);                /* RAM byte 1 read back: IRQ1 */
	assert_int_equal(want[8], 0x77);
	assert_int_equal(want[10], 0x99);
	assert_int_equal(want[12], CTR_KBDINT | CTR_AUXINT | CTR_SYS | 0x40);
	assert_int_equal(fake_ctl_calls(&f->ctl_rec), 0);

	state_out__free(&again);
	state_out__free(&saved);
	kbc_teardown(&fresh);
}

/* A state cut short, too long, of another version or with a value the controller cannot hold: refused, nothing changed. */
static void test_i8042_load_refuses_truncated_foreign_and_out_of_range_state(void **state)
{
	struct kbc *t = *state, *o;
	struct state_out good;
	void *other;

	assert_int_equal(kbc_setup(&other), 0);
	o = other;
	kbc_drive_busy(o);
	good = state_save(&i8042__device_ops, o->k);
	kbc_teardown(&other);

	assert_state_length_exact(&i8042__device_ops, t->k, &good);
	assert_state_byte_refused(&i8042__device_ops, t->k, &good, 0, 0, "version 0");
	assert_state_byte_refused(&i8042__device_ops, t->k, &good, 36, 0x81, "status 0x81");
	assert_state_byte_refused(&i8042__device_ops, t->k, &good, 37, 2, "full 2");
	assert_state_byte_refused(&i8042__device_ops, t->k, &good, 37, 0, "empty output buffer");
	assert_state_byte_refused(&i8042__device_ops, t->k, &good, 39, 0xaa, "command 0xaa");

	assert_int_equal(t->kbd.calls + t->aux.calls, 0);
	assert_int_equal(io_inb(&t->bus, CMD), STR_SYS | 0x10);
	assert_int_equal(kbc_command(t, 0x20, -1), 0x65);   /* the firmware's command byte */
	state_out__free(&good);
}

#define T(f) cmocka_unit_test_setup_teardown(f, kbc_setup, kbc_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_i8042_reset_command_requests_reboot),
		T(test_i8042_device_reset_is_power_on_state),
		T(test_i8042_output_port_reset_line_low_requests_reboot),
		T(test_i8042_self_test_answers_0x55),
		T(test_i8042_command_byte_read_write),
		T(test_i8042_interface_tests_pass),
		T(test_i8042_port_disable_enable_toggle_command_byte),
		T(test_i8042_aux_loopback_sets_auxdata_and_raises_irq12),
		T(test_i8042_keyboard_loopback_raises_irq1),
		T(test_i8042_device_bytes_answer_no_device_with_timeout),
		T(test_i8042_add_refuses_taken_ports),
		T(test_i8042_snapshot_restores_registers_and_irq_lines),
		T(test_i8042_load_refuses_truncated_foreign_and_out_of_range_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
