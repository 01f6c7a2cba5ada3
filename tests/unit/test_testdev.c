#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/serial_reg.h>

#include "hw_fakes.h"
#include "state_refusals.h"
#include "vmm/hw/serial.h"
#include "vmm/hw/testdev.h"
#include "vmm/x86/layout.h"

#define PIO(r)  (PORT_TESTDEV + (r))
#define MMIO(r) (LAYOUT_TESTDEV_MMIO + (r))

struct td {
	struct bus pio, mmio;
	struct fake_ctl ctl_rec;
	int out[2];
	struct serial *com1; /* PUTC's console */
	struct testdev *t;
};

static int td_setup(void **state)
{
	struct td *t = calloc(1, sizeof(*t));
	struct vm_ctl ctl;

	if (!t || pipe2(t->out, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	bus__init(&t->pio, "pio");
	bus__init(&t->mmio, "mmio");
	if (serial__add(&t->pio, PORT_COM1, NULL, t->out[1], &t->com1))
		return -1;
	ctl = fake_vm_ctl(&t->ctl_rec);
	if (testdev__add(&t->pio, &t->mmio, &ctl, t->com1, &t->t))
		return -1;
	*state = t;
	return 0;
}

static int td_teardown(void **state)
{
	struct td *t = *state;

	testdev__destroy(t->t);
	serial__destroy(t->com1);
	bus__exit(&t->pio);
	bus__exit(&t->mmio);
	close(t->out[1]);
	close(t->out[0]);
	free(t);
	return 0;
}

static uint64_t mmio_read(struct td *t, uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	bus__access(&t->mmio, MMIO(off), &v, len, false);
	return v;
}

static void mmio_write(struct td *t, uint64_t off, uint64_t v, uint32_t len)
{
	bus__access(&t->mmio, MMIO(off), &v, len, true);
}

static void test_testdev_exit_port_stops_with_status(void **state)
{
	struct td *t = *state;

	io_outl(&t->pio, PIO(TESTDEV_PIO_EXIT), 42);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 1);
	assert_int_equal(t->ctl_rec.reason, VM_STOP_GUEST_EXIT);
	assert_int_equal(t->ctl_rec.status, 42);
	/* A byte write zero-extends; a write inside the register is dropped. */
	io_outb(&t->pio, PIO(TESTDEV_PIO_EXIT), 3);
	assert_int_equal(t->ctl_rec.status, 3);
	io_outb(&t->pio, PIO(TESTDEV_PIO_EXIT + 1), 9);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 2);
}

static void test_testdev_echo_returns_inverted_value(void **state)
{
	struct td *t = *state;

	io_outl(&t->pio, PIO(TESTDEV_PIO_ECHO), 0x12345678);
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_ECHO)), ~0x12345678u);
	assert_int_equal(io_inw(&t->pio, PIO(TESTDEV_PIO_ECHO + 2)), (uint16_t)~0x1234u);
	io_outb(&t->pio, PIO(TESTDEV_PIO_ECHO), 0x0f);
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_ECHO)), ~0x0fu);
}

static void test_testdev_putc_joins_com1_output_in_order_without_writing(void **state)
{
	struct td *t = *state;
	struct serial_stats st;
	const uint8_t *data;
	char buf[16];

	io_outb(&t->pio, PIO(TESTDEV_PIO_PUTC), 'h');
	io_outb(&t->pio, PORT_COM1 + UART_TX, 'i');
	io_outl(&t->pio, PIO(TESTDEV_PIO_PUTC), '\n');
	/* The vCPU never wrote: the bytes wait in the UART's buffer for the console thread. */
	assert_int_equal(read(t->out[0], buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(serial__tx_peek(t->com1, &data), 3);
	assert_memory_equal(data, "hi\n", 3);
	serial__tx_consume(t->com1, 3, SERIAL_TX_WRITTEN);
	serial__get_stats(t->com1, &st);
	assert_int_equal(st.tx_bytes, 3);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void test_testdev_pio_magic_and_unknown_reads(void **state)
{
	struct td *t = *state;

	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_MAGIC)), TESTDEV_MAGIC);
	assert_int_equal(io_inb(&t->pio, PIO(TESTDEV_PIO_MAGIC)), TESTDEV_MAGIC & 0xff);
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_EXIT)), 0xffffffff);
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_PUTC)), 0xffffffff);
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_ECHO + 2)), 0xffffffff); /* straddles */
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_SIZE)), 0xffffffff);   /* not ours */
}

static void test_testdev_mmio_magic_scratch_and_write_count(void **state)
{
	struct td *t = *state;

	assert_int_equal(mmio_read(t, TESTDEV_MMIO_MAGIC, 4), TESTDEV_MAGIC);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_COUNT, 8), 0);

	mmio_write(t, TESTDEV_MMIO_SCRATCH, 0x1122334455667788ull, 8);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_SCRATCH, 8), 0x1122334455667788ull);
	mmio_write(t, TESTDEV_MMIO_SCRATCH + 4, 0xdeadbeef, 4);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_SCRATCH, 8), 0xdeadbeef55667788ull);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_SCRATCH + 4, 4), 0xdeadbeef);

	mmio_write(t, TESTDEV_MMIO_MAGIC, 0, 4);   /* read-only: dropped, counted */
	mmio_write(t, 0x800, 1, 8);                 /* unknown: dropped, counted */
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_MAGIC, 4), TESTDEV_MAGIC);
	assert_int_equal(mmio_read(t, 0x800, 8), 0xffffffffffffffffull);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_SCRATCH + 4, 8), 0xffffffffffffffffull);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_COUNT, 8), 4);
	assert_int_equal(fake_ctl_calls(&t->ctl_rec), 0);
}

static void test_testdev_add_refuses_taken_mmio_claiming_nothing(void **state)
{
	static const struct io_ops none = { 0 };
	struct fake_ctl rec;
	struct vm_ctl ctl = fake_vm_ctl(&rec);
	struct testdev *dev = NULL;
	struct bus pio, mmio;

	(void)state;
	bus__init(&pio, "pio");
	bus__init(&mmio, "mmio");
	assert_int_equal(bus__register(&mmio, MMIO(0x100), 4, &none, NULL, "other"), 0);
	assert_int_equal(testdev__add(&pio, &mmio, &ctl, NULL, &dev), -EEXIST);
	assert_null(dev);
	assert_int_equal(pio.nr, 0);
	bus__exit(&pio);
	bus__exit(&mmio);
}

/* A guest's busy test device: an echo value, a scratch value, three MMIO writes counted. */
static void td_drive_busy(struct td *t)
{
	io_outl(&t->pio, PIO(TESTDEV_PIO_ECHO), 0x12345678);
	mmio_write(t, TESTDEV_MMIO_SCRATCH, 0x55667788, 4);
	mmio_write(t, TESTDEV_MMIO_SCRATCH + 4, 0x11223344, 4);
	mmio_write(t, 0x800, 1, 8);
}

#define TD_PROBE_MAX 8

/* What a guest reads, and the write count after one more write; returns how many values `v` got. */
static unsigned td_probe(struct td *t, uint64_t v[TD_PROBE_MAX])
{
	unsigned n = 0;

	v[n++] = io_inl(&t->pio, PIO(TESTDEV_PIO_ECHO));
	v[n++] = io_inl(&t->pio, PIO(TESTDEV_PIO_MAGIC));
	v[n++] = mmio_read(t, TESTDEV_MMIO_MAGIC, 4);
	v[n++] = mmio_read(t, TESTDEV_MMIO_SCRATCH, 8);
	v[n++] = mmio_read(t, TESTDEV_MMIO_COUNT, 8);
	mmio_write(t, TESTDEV_MMIO_SCRATCH, 0xff, 1);
	v[n++] = mmio_read(t, TESTDEV_MMIO_SCRATCH, 8);
	v[n++] = mmio_read(t, TESTDEV_MMIO_COUNT, 8);
	return n;
}

/* Saved, loaded into a new test device: it answers every read as the first does. */
static void test_testdev_snapshot_restores_echo_scratch_and_write_count(void **state)
{
	struct td *t = *state, *f;
	uint64_t want[TD_PROBE_MAX], got[TD_PROBE_MAX];
	struct state_out saved, again;
	char why[STATE_WHY_LEN];
	void *fresh;
	unsigned n;

	td_drive_busy(t);
	saved = state_save(&testdev__device_ops, t->t);
	assert_int_equal(td_setup(&fresh), 0);
	f = fresh;
	assert_int_equal(state_load(&testdev__device_ops, f->t, saved.buf, saved.len, why), 0);
	again = state_save(&testdev__device_ops, f->t);
	assert_int_equal(again.len, saved.len);
	assert_memory_equal(again.buf, saved.buf, saved.len);

	n = td_probe(t, want);
	assert_int_equal(td_probe(f, got), n);
	assert_memory_equal(got, want, n * sizeof(want[0]));
	assert_int_equal(want[0], ~0x12345678u);
	assert_int_equal(want[3], 0x1122334455667788ull);
	assert_int_equal(want[4], 3);
	assert_int_equal(want[6], 4);
	assert_int_equal(fake_ctl_calls(&f->ctl_rec), 0);

	state_out__free(&again);
	state_out__free(&saved);
	td_teardown(&fresh);
}

/* A state cut short, too long or of another version: refused, nothing changed (every register value is valid). */
static void test_testdev_load_refuses_truncated_and_foreign_state(void **state)
{
	struct td *t = *state, *o;
	struct state_out good;
	void *other;

	assert_int_equal(td_setup(&other), 0);
	o = other;
	td_drive_busy(o);
	good = state_save(&testdev__device_ops, o->t);
	td_teardown(&other);

	assert_state_length_exact(&testdev__device_ops, t->t, &good);
	assert_state_byte_refused(&testdev__device_ops, t->t, &good, 0, 7, "version 7");
	assert_int_equal(io_inl(&t->pio, PIO(TESTDEV_PIO_ECHO)), 0xffffffff);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_SCRATCH, 8), 0);
	assert_int_equal(mmio_read(t, TESTDEV_MMIO_COUNT, 8), 0);
	state_out__free(&good);
}

#define T(f) cmocka_unit_test_setup_teardown(f, td_setup, td_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_testdev_exit_port_stops_with_status),
		T(test_testdev_echo_returns_inverted_value),
		T(test_testdev_putc_joins_com1_output_in_order_without_writing),
		T(test_testdev_pio_magic_and_unknown_reads),
		T(test_testdev_mmio_magic_scratch_and_write_count),
		T(test_testdev_snapshot_restores_echo_scratch_and_write_count),
		T(test_testdev_load_refuses_truncated_and_foreign_state),
		cmocka_unit_test(test_testdev_add_refuses_taken_mmio_claiming_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
