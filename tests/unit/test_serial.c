#include <errno.h>
#include <fcntl.h>
#include <linux/serial_reg.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "counters_sink.h"
#include "hw_fakes.h"
#include "state_refusals.h"
#include "vmm/hw/serial.h"
#include "vmm/x86/layout.h"

#define BASE PORT_COM1

struct uart {
	struct bus bus;
	struct fake_irq irq;
	struct serial *s;
	int out[2]; /* pipe: UART output lands in out[0] */
};

static int uart_setup(void **state)
{
	struct uart *u = calloc(1, sizeof(*u));
	struct irq_sink sink;

	if (!u || pipe2(u->out, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	bus__init(&u->bus, "pio");
	sink = fake_irq_sink(&u->irq, PORT_COM1_IRQ);
	if (serial__add(&u->bus, BASE, &sink, u->out[1], &u->s))
		return -1;
	*state = u;
	return 0;
}

static int uart_teardown(void **state)
{
	struct uart *u = *state;

	serial__destroy(u->s);
	bus__exit(&u->bus);
	close(u->out[0]);
	close(u->out[1]);
	free(u);
	return 0;
}

static uint8_t rd(struct uart *u, unsigned reg)
{
	return io_inb(&u->bus, BASE + reg);
}

static void wr(struct uart *u, unsigned reg, uint8_t v)
{
	io_outb(&u->bus, BASE + reg, v);
}

/* What the console thread does: the UART's buffered output to `fd`. */
static void flush_out(struct serial *s, int fd)
{
	const uint8_t *data;
	size_t n;

	while ((n = serial__tx_peek(s, &data))) {
		ssize_t w = write(fd, data, n);

		serial__tx_consume(s, w > 0 ? (size_t)w : n, w > 0 ? SERIAL_TX_WRITTEN : SERIAL_TX_FAILED);
	}
}

static ssize_t drain_out(struct uart *u, char *buf, size_t len)
{
	ssize_t n;

	flush_out(u->s, u->out[1]);
	n = read(u->out[0], buf, len);

	return n < 0 ? 0 : n;
}

static bool fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void test_serial_reset_state_is_idle_16550(void **state)
{
	struct uart *u = *state;

	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(rd(u, UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	assert_int_equal(rd(u, UART_IER), 0);
	assert_int_equal(rd(u, UART_LCR), 0);
	assert_int_equal(rd(u, UART_MCR), 0);
	wr(u, UART_SCR, 0x5a);
	assert_int_equal(rd(u, UART_SCR), 0x5a);
	assert_int_equal(u->irq.calls, 0);
}

/* A reboot in place: registers as at power-on, the receive FIFO empty, the line low. */
static void test_serial_device_reset_is_power_on_state(void **state)
{
	struct uart *u = *state;
	const uint8_t msg[3] = { 'a', 'b', 'c' };

	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	wr(u, UART_IER, UART_IER_RDI);
	wr(u, UART_MCR, UART_MCR_OUT2);
	wr(u, UART_LCR, 0x03);
	wr(u, UART_SCR, 0x5a);
	assert_int_equal(serial__receive(u->s, msg, 3), 3);
	assert_int_equal(u->irq.level, 1);
	serial__device_ops.reset(u->s);
	assert_int_equal(u->irq.level, 0);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(rd(u, UART_IER), 0);
	assert_int_equal(rd(u, UART_LCR), 0);
	assert_int_equal(rd(u, UART_MCR), 0);
	assert_int_equal(rd(u, UART_SCR), 0);
	assert_int_equal(serial__rx_room(u->s), 1);   /* FIFO off: one byte of room, none held */
}

static void test_serial_thre_interrupt_raised_when_enabled_and_cleared_by_iir_read(void **state)
{
	struct uart *u = *state;

	wr(u, UART_MCR, UART_MCR_OUT2);
	wr(u, UART_IER, UART_IER_THRI);
	assert_int_equal(u->irq.level, 1);
	assert_int_equal(u->irq.gsi, PORT_COM1_IRQ);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_THRI);
	assert_int_equal(u->irq.level, 0);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);

	/* Linux's UART_BUG_THRE test: toggling ETBEI must re-assert THRE. */
	wr(u, UART_IER, 0);
	wr(u, UART_IER, UART_IER_THRI);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_THRI);
	/* Rewriting the same IER does not: that edge was acknowledged. */
	wr(u, UART_IER, UART_IER_THRI);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
}

static void test_serial_thr_write_sends_byte_and_rearms_thre_with_new_edge(void **state)
{
	struct uart *u = *state;
	char buf[8];

	wr(u, UART_MCR, UART_MCR_OUT2);
	wr(u, UART_IER, UART_IER_THRI);
	assert_int_equal(u->irq.calls, 1);
	wr(u, UART_TX, 'A');
	assert_int_equal(drain_out(u, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'A');
	/* The write acknowledged THRE (line low), the instant transmit raised it again. */
	assert_int_equal(u->irq.calls, 3);
	assert_int_equal(u->irq.history[1], 0);
	assert_int_equal(u->irq.history[2], 1);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_THRI);
	assert_int_equal(rd(u, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
			 UART_LSR_THRE | UART_LSR_TEMT);
}

static void test_serial_out2_gates_irq_line_but_not_iir(void **state)
{
	struct uart *u = *state;

	wr(u, UART_IER, UART_IER_THRI);
	assert_int_equal(u->irq.level, 0);
	wr(u, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(u->irq.level, 1);
	wr(u, UART_MCR, UART_MCR_OUT2 | UART_MCR_LOOP);
	assert_int_equal(u->irq.level, 0);
	wr(u, UART_MCR, 0);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_THRI);
}

static void test_serial_rx_fifo_raises_data_ready_and_irq(void **state)
{
	struct uart *u = *state;
	uint8_t msg[14];
	unsigned i;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = 'a' + i;
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR | UART_FCR_TRIGGER_14);
	wr(u, UART_IER, UART_IER_RDI);
	wr(u, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(serial__rx_room(u->s), SERIAL_RX_FIFO);

	assert_int_equal(serial__receive(u->s, msg, 5), 5);
	assert_true(rd(u, UART_LSR) & UART_LSR_DR);
	assert_int_equal(u->irq.level, 1);
	/* Below the trigger level: character timeout, reported at once. */
	assert_int_equal(rd(u, UART_IIR), 0xc0 | UART_IIR_RX_TIMEOUT);
	assert_int_equal(serial__receive(u->s, msg + 5, 9), 9);
	assert_int_equal(rd(u, UART_IIR), 0xc0 | UART_IIR_RDI);

	for (i = 0; i < sizeof(msg); i++)
		assert_int_equal(rd(u, UART_RX), msg[i]);
	assert_false(rd(u, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(u, UART_IIR), 0xc0 | UART_IIR_NO_INT);
	assert_int_equal(u->irq.level, 0);
}

static void test_serial_without_fifo_holds_one_byte(void **state)
{
	struct uart *u = *state;

	assert_int_equal(serial__rx_room(u->s), 1);
	assert_int_equal(serial__receive(u->s, (const uint8_t *)"ab", 2), 1);
	assert_int_equal(serial__rx_room(u->s), 0);
	assert_int_equal(rd(u, UART_RX), 'a');
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
	assert_false(rd(u, UART_LSR) & UART_LSR_OE);
}

static void test_serial_receive_signals_room_fd_when_drained_to_half(void **state)
{
	struct uart *u = *state;
	int fd = serial__rx_room_fd(u->s);
	uint8_t buf[300] = { 0 };
	unsigned i;

	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(serial__receive(u->s, buf, sizeof(buf)), SERIAL_RX_FIFO);
	assert_false(fd_readable(fd));
	for (i = 0; i < SERIAL_RX_FIFO / 2 - 1; i++)
		rd(u, UART_RX);
	assert_false(fd_readable(fd));
	rd(u, UART_RX);
	assert_true(fd_readable(fd));
}

static void test_serial_loopback_echoes_tx(void **state)
{
	struct uart *u = *state;
	char buf[8];

	/* Linux's autoconfig check: RTS -> CTS, OUT2 -> DCD. */
	wr(u, UART_MCR, UART_MCR_LOOP | UART_MCR_RTS | UART_MCR_OUT2);
	assert_int_equal(rd(u, UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_CTS);
	wr(u, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	assert_int_equal(rd(u, UART_MSR) & 0xf0, UART_MSR_DSR | UART_MSR_RI);

	assert_int_equal(serial__rx_room(u->s), 0); /* host line disconnected */
	wr(u, UART_TX, 'x');
	assert_int_equal(drain_out(u, buf, sizeof(buf)), 0);
	assert_true(rd(u, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(u, UART_RX), 'x');

	wr(u, UART_MCR, 0);
	assert_int_equal(rd(u, UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	assert_int_equal(serial__rx_room(u->s), 1);
}

static void test_serial_modem_status_change_interrupts_until_msr_read(void **state)
{
	struct uart *u = *state;
	uint8_t msr;

	wr(u, UART_IER, UART_IER_MSI);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
	wr(u, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_MSI);
	msr = rd(u, UART_MSR);
	assert_int_equal(msr, UART_MSR_DSR | UART_MSR_DDCD | UART_MSR_DCTS);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
}

static void test_serial_dlab_switches_divisor_latch(void **state)
{
	struct uart *u = *state;
	char buf[8];

	wr(u, UART_IER, UART_IER_RDI);
	wr(u, UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8);
	wr(u, UART_DLL, 0x01);
	wr(u, UART_DLM, 0x02);
	assert_int_equal(rd(u, UART_DLL), 0x01);
	assert_int_equal(rd(u, UART_DLM), 0x02);
	assert_int_equal(drain_out(u, buf, sizeof(buf)), 0);

	wr(u, UART_LCR, UART_LCR_WLEN8);
	assert_int_equal(rd(u, UART_IER), UART_IER_RDI);
	wr(u, UART_TX, 'z');
	assert_int_equal(drain_out(u, buf, sizeof(buf)), 1);
	wr(u, UART_LCR, UART_LCR_DLAB);
	assert_int_equal(rd(u, UART_DLL), 0x01);
	assert_int_equal(rd(u, UART_DLM), 0x02);
}

static void test_serial_overrun_sets_lsr_oe(void **state)
{
	struct uart *u = *state;
	unsigned i;
	uint8_t lsr;

	wr(u, UART_IER, UART_IER_RLSI);
	wr(u, UART_MCR, UART_MCR_LOOP);
	/* 16450 mode: the second character overwrites the unread first. */
	wr(u, UART_TX, '1');
	wr(u, UART_TX, '2');
	assert_int_equal(rd(u, UART_IIR), UART_IIR_RLSI);
	lsr = rd(u, UART_LSR);
	assert_true(lsr & UART_LSR_OE);
	assert_true(lsr & UART_LSR_DR);
	assert_false(rd(u, UART_LSR) & UART_LSR_OE); /* cleared by reading LSR */
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(u, UART_RX), '2');

	/* FIFO mode: the FIFO is kept, the extra character is lost. */
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	for (i = 0; i <= SERIAL_RX_FIFO; i++)
		wr(u, UART_TX, i);
	assert_true(rd(u, UART_LSR) & UART_LSR_OE);
	for (i = 0; i < SERIAL_RX_FIFO; i++)
		assert_int_equal(rd(u, UART_RX), (uint8_t)i);
	assert_false(rd(u, UART_LSR) & UART_LSR_DR);
}

static void test_serial_fifo_control_reports_16550a_in_iir(void **state)
{
	struct uart *u = *state;

	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(rd(u, UART_IIR), 0xc0 | UART_IIR_NO_INT);
	/* Not a 16750: the 64-byte FIFO bit never shows. */
	wr(u, UART_LCR, UART_LCR_DLAB);
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR7_64BYTE);
	assert_int_equal(rd(u, UART_IIR) & 0xe0, 0xc0);
	wr(u, UART_LCR, 0);
	wr(u, UART_FCR, 0);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);

	/* A FIFO reset empties the receiver. */
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(serial__receive(u->s, (const uint8_t *)"abc", 3), 3);
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR);
	assert_false(rd(u, UART_LSR) & UART_LSR_DR);
	assert_int_equal(serial__rx_room(u->s), SERIAL_RX_FIFO);
}

/* The register checks of Linux's 8250 autoconfig(), in order. */
static void test_serial_passes_linux_8250_autoconfig(void **state)
{
	struct uart *u = *state;

	wr(u, UART_IER, 0);
	assert_int_equal(rd(u, UART_IER) & 0x0f, 0);
	wr(u, UART_IER, 0x0f);
	assert_int_equal(rd(u, UART_IER) & 0x0f, 0x0f);
	wr(u, UART_IER, 0);
	wr(u, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(rd(u, UART_MSR) & 0xf0, 0x90);
	wr(u, UART_MCR, 0);
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(rd(u, UART_IIR) >> 6, 3); /* 16550A branch */
	wr(u, UART_LCR, 0x80);
	assert_int_not_equal(rd(u, 2), 0); /* no EFR behind DLAB (not ST16C650V1) */
	wr(u, UART_LCR, 0xbf);
	assert_int_not_equal(rd(u, 2), 0); /* no EFR behind 0xbf */
	wr(u, UART_LCR, 0);
	wr(u, UART_IER, UART_IER_UUE);
	assert_int_equal(rd(u, UART_IER) & UART_IER_UUE, 0); /* not an XScale */
}

static void test_serial_wide_access_acts_on_first_register(void **state)
{
	struct uart *u = *state;

	assert_int_equal(io_inw(&u->bus, BASE + UART_LSR), 0xff00 | UART_LSR_THRE | UART_LSR_TEMT);
	io_outw(&u->bus, BASE + UART_LCR, 0x1f03);
	assert_int_equal(rd(u, UART_LCR), 0x03);
	assert_int_equal(rd(u, UART_MCR), 0);
	assert_int_equal(io_inl(&u->bus, BASE + UART_SCR - 3) & 0xffffff00, 0xffffff00);
}

static void test_serial_tx_failure_is_counted_not_fatal(void **state)
{
	struct serial_stats st;
	struct serial *s;
	struct bus bus;
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);

	(void)state;
	assert_true(full >= 0);
	bus__init(&bus, "pio");
	assert_int_equal(serial__add(&bus, BASE, NULL, full, &s), 0);
	io_outb(&bus, BASE + UART_TX, 'q');
	io_outb(&bus, BASE + UART_TX, 'r');
	flush_out(s, full);
	serial__get_stats(s, &st);
	assert_int_equal(st.tx_dropped, 2);
	assert_int_equal(st.tx_bytes, 0);
	assert_int_equal(serial__add(&bus, BASE + 4, NULL, -1, &s) , -EEXIST);
	serial__destroy(s);
	bus__exit(&bus);
	close(full);
}

/* vm.counters for COM1: bytes out (written, lost to a failing or slow reader) and bytes in. */
static void test_serial_counters_follow_output_and_input(void **state)
{
	struct counters c;
	struct counter_sink sink;
	const uint8_t in[3] = { 'x', 'y', 'z' };
	struct serial *s;
	struct bus bus;
	int p[2], full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	char got[8];
	unsigned i;

	(void)state;
	assert_true(full >= 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	bus__init(&bus, "pio");
	assert_int_equal(serial__add(&bus, BASE, NULL, p[1], &s), 0);
	for (i = 0; i < 5; i++)
		io_outb(&bus, BASE + UART_TX, (uint8_t)('a' + i));
	sink = counters_sink(&c);
	serial__device_ops.counters(s, &sink);
	assert_int_equal(counters_num(&c, "tx_buffered"), 5);
	assert_int_equal(counters_num(&c, "tx_bytes"), 0);
	flush_out(s, p[1]);
	assert_int_equal(read(p[0], got, sizeof(got)), 5);
	io_outb(&bus, BASE + UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(serial__receive(s, in, sizeof(in)), 3);
	io_outb(&bus, BASE + UART_TX, '!');
	flush_out(s, full);          /* the reader fails: the byte is dropped */
	sink = counters_sink(&c);
	serial__device_ops.counters(s, &sink);
	assert_int_equal(counters_num(&c, "tx_bytes"), 5);
	assert_int_equal(counters_num(&c, "tx_buffered"), 0);
	assert_int_equal(counters_num(&c, "tx_dropped"), 1);
	assert_int_equal(counters_num(&c, "tx_overflow"), 0);
	assert_int_equal(counters_num(&c, "rx_bytes"), 3);
	assert_int_equal(counters_num(&c, "rx_overruns"), 0);
	serial__destroy(s);
	bus__exit(&bus);
	close(p[0]);
	close(p[1]);
	close(full);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A blocking pipe nobody reads, no drainer: every THR write returns at once
 * (before the buffer, the 65537th byte blocked the vCPU for good: SIGALRM
 * then fails the test), the buffer keeps the oldest SERIAL_TX_BUF bytes in
 * order and the rest is counted as overflow.
 */
static void test_serial_tx_never_blocks_on_a_stalled_reader_and_counts_overflow(void **state)
{
	struct serial_stats st;
	const uint8_t *data;
	struct serial *s;
	struct bus bus;
	int p[2];
	double t0;
	unsigned i;

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	bus__init(&bus, "pio");
	assert_int_equal(serial__add(&bus, BASE, NULL, p[1], &s), 0);
	alarm(10);
	t0 = now_s();
	for (i = 0; i < SERIAL_TX_BUF + 100; i++)
		io_outb(&bus, BASE + UART_TX, (uint8_t)(i % 251));
	assert_true(now_s() - t0 < 2.0);
	alarm(0);
	assert_true(io_inb(&bus, BASE + UART_LSR) & UART_LSR_THRE);
	serial__get_stats(s, &st);
	assert_int_equal(st.tx_overflow, 100);
	assert_int_equal(st.tx_bytes, 0);
	assert_int_equal(serial__tx_peek(s, &data), SERIAL_TX_BUF);
	for (i = 0; i < SERIAL_TX_BUF; i++)
		if (data[i] != (uint8_t)(i % 251))
			fail_msg("buffered byte %u is %u, expected %u", i, data[i], i % 251);
	serial__tx_abandon(s);
	serial__get_stats(s, &st);
	assert_int_equal(st.tx_overflow, 100 + SERIAL_TX_BUF);
	assert_int_equal(serial__tx_peek(s, &data), 0);
	serial__destroy(s);
	bus__exit(&bus);
	close(p[0]);
	close(p[1]);
}

static uint64_t eventfd_value(int fd)
{
	uint64_t v = 0;

	return read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

/* The vCPU writes the eventfd once per busy period of the drainer, not once per byte. */
static void test_serial_tx_event_fires_once_per_busy_period(void **state)
{
	struct uart *u = *state;
	int efd = serial__tx_fd(u->s);
	const uint8_t *data;
	unsigned i;
	char buf[64];

	assert_false(fd_readable(efd));
	for (i = 0; i < 10; i++)
		wr(u, UART_TX, 'a' + i);
	assert_int_equal(eventfd_value(efd), 1);
	assert_int_equal(serial__tx_peek(u->s, &data), 10);
	serial__tx_consume(u->s, 4, SERIAL_TX_WRITTEN);
	wr(u, UART_TX, 'k'); /* the drainer is busy: no new wake-up */
	assert_false(fd_readable(efd));
	assert_false(serial__tx_rearm(u->s)); /* output waits: the drainer may not sleep */
	assert_int_equal(drain_out(u, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "efghijk", 7);
	wr(u, UART_TX, 'l'); /* the drainer has not gone idle yet: no wake-up */
	assert_false(fd_readable(efd));
	assert_int_equal(drain_out(u, buf, sizeof(buf)), 1);
	assert_true(serial__tx_rearm(u->s)); /* it goes idle: the next byte wakes it */
	wr(u, UART_TX, 'm');
	assert_int_equal(eventfd_value(efd), 1);
}

#define STRESS_BYTES 20000

static void *stress_feeder(void *arg)
{
	struct serial *s = arg;
	unsigned sent = 0;

	while (sent < STRESS_BYTES) {
		uint8_t chunk[37];
		unsigned i, n = STRESS_BYTES - sent < 37 ? STRESS_BYTES - sent : 37;
		size_t took;

		for (i = 0; i < n; i++)
			chunk[i] = (uint8_t)(sent + i);
		took = serial__receive(s, chunk, n);
		sent += took;
		if (!took)
			sched_yield();
	}
	return NULL;
}

static void test_serial_concurrent_receive_and_guest_reads_keep_order(void **state)
{
	struct uart *u = *state;
	unsigned got = 0, spins = 0;
	pthread_t t;

	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO);
	wr(u, UART_IER, UART_IER_RDI);
	wr(u, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(pthread_create(&t, NULL, stress_feeder, u->s), 0);
	while (got < STRESS_BYTES && spins < 100000000) {
		if (rd(u, UART_LSR) & UART_LSR_DR) {
			assert_int_equal(rd(u, UART_RX), (uint8_t)got);
			got++;
		} else {
			spins++;
		}
	}
	pthread_join(t, NULL);
	assert_int_equal(got, STRESS_BYTES);
	assert_false(rd(u, UART_LSR) & UART_LSR_OE);
}

/*
 * A guest's busy UART: divisor 0x0201, 8E1, an overrun left in LSR by
 * loopback, modem status deltas from leaving it, the FIFO on (trigger 8)
 * holding "hello" after one byte was read, every interrupt enabled, THRE
 * pending after a transmit, OUT2 on: the line is high.
 */
static void uart_drive_busy(struct uart *u)
{
	const uint8_t msg[6] = { 'x', 'h', 'e', 'l', 'l', 'o' };

	wr(u, UART_LCR, UART_LCR_DLAB);
	wr(u, UART_DLL, 0x01);
	wr(u, UART_DLM, 0x02);
	wr(u, UART_LCR, UART_LCR_WLEN8 | UART_LCR_PARITY | UART_LCR_EPAR);
	wr(u, UART_MCR, UART_MCR_LOOP);
	wr(u, UART_TX, 'a');
	wr(u, UART_TX, 'b');                         /* FIFO off: the holding register overruns */
	wr(u, UART_MCR, UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2);
	wr(u, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_8);
	assert_int_equal(serial__receive(u->s, msg, sizeof(msg)), sizeof(msg));
	assert_int_equal(rd(u, UART_RX), 'x');
	wr(u, UART_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
	wr(u, UART_SCR, 0xa5);
	wr(u, UART_TX, 'z');
	assert_int_equal(u->irq.level, 1);
}

#define UART_PROBE_MAX 32

/*
 * Everything a guest can read, in an order that spends every read side
 * effect (LSR errors, the FIFO, THRE by IIR, MSR deltas), with the line's
 * level between; returns how many values `v` got.
 */
static unsigned uart_probe(struct uart *u, uint8_t v[UART_PROBE_MAX])
{
	uint8_t lcr = rd(u, UART_LCR);
	unsigned n = 0, i;

	v[n++] = lcr;
	v[n++] = rd(u, UART_MCR);
	v[n++] = rd(u, UART_SCR);
	v[n++] = rd(u, UART_IER);
	v[n++] = rd(u, UART_IIR);
	v[n++] = rd(u, UART_LSR);
	v[n++] = rd(u, UART_LSR);
	v[n++] = rd(u, UART_IIR);
	v[n++] = (uint8_t)u->irq.level;
	for (i = 0; i < 6; i++)
		v[n++] = rd(u, UART_RX);
	v[n++] = rd(u, UART_IIR);
	v[n++] = rd(u, UART_IIR);
	v[n++] = (uint8_t)u->irq.level;
	v[n++] = rd(u, UART_MSR);
	v[n++] = rd(u, UART_MSR);
	v[n++] = rd(u, UART_IIR);
	v[n++] = (uint8_t)u->irq.level;
	wr(u, UART_LCR, lcr | UART_LCR_DLAB);
	v[n++] = rd(u, UART_DLL);
	v[n++] = rd(u, UART_DLM);
	wr(u, UART_LCR, lcr);
	return n;
}

/* Saved, loaded into a new UART: it answers every read as the first does, its line at the same level. */
static void test_serial_snapshot_restores_registers_fifo_and_irq_line(void **state)
{
	struct uart *u = *state, *f;
	uint8_t want[UART_PROBE_MAX], got[UART_PROBE_MAX];
	struct state_out saved, again;
	char why[STATE_WHY_LEN];
	void *fresh;
	unsigned n;

	uart_drive_busy(u);
	saved = state_save(&serial__device_ops, u->s);
	assert_int_equal(uart_setup(&fresh), 0);
	f = fresh;
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(state_load(&serial__device_ops, f->s, saved.buf, saved.len, why), 0);
	assert_int_equal(f->irq.calls, 1);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(f->irq.gsi, PORT_COM1_IRQ);
	assert_int_equal(serial__rx_room(f->s), serial__rx_room(u->s));
	/* Loaded is saved again byte for byte. */
	again = state_save(&serial__device_ops, f->s);
	assert_int_equal(again.len, saved.len);
	assert_memory_equal(again.buf, saved.buf, saved.len);

	n = uart_probe(u, want);
	assert_int_equal(uart_probe(f, got), n);
	assert_memory_equal(got, want, n);
	/* And the state was worth restoring. */
	assert_int_equal(want[4], UART_IIR_RLSI | 0xc0);
	assert_int_equal(want[5], UART_LSR_DR | UART_LSR_OE | UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(want[7], UART_IIR_RX_TIMEOUT | 0xc0);
	assert_memory_equal(&want[9], "hello", 5);
	assert_int_equal(want[14], 'o');             /* an empty receiver rereads the last byte */
	assert_int_equal(want[15], UART_IIR_THRI | 0xc0);
	assert_int_equal(want[16], UART_IIR_MSI | 0xc0);
	assert_int_equal(want[18] & UART_MSR_ANY_DELTA, UART_MSR_DDCD | UART_MSR_DDSR | UART_MSR_DCTS);
	assert_int_equal(want[20], UART_IIR_NO_INT | 0xc0);
	assert_int_equal(want[21], 0);
	assert_int_equal(want[22], 0x01);
	assert_int_equal(want[23], 0x02);

	state_out__free(&again);
	state_out__free(&saved);
	uart_teardown(&fresh);
}

/* A state cut short, too long, of another version or with a value the UART cannot hold: refused, nothing changed. */
static void test_serial_load_refuses_truncated_foreign_and_out_of_range_state(void **state)
{
	struct uart *u = *state, *o;
	struct state_out good;
	void *other;

	assert_int_equal(uart_setup(&other), 0);
	o = other;
	uart_drive_busy(o);
	good = state_save(&serial__device_ops, o->s);
	uart_teardown(&other);

	assert_state_length_exact(&serial__device_ops, u->s, &good);
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 0, 2, "version 2");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 4, 0xff, "IER 0xff");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 5, 0x03, "FCR 0x03");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 5, 0x00, "count 5");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 7, 0xff, "MCR 0xff");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 8, 0x00, "LSR 0x00");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 9, 0x0f, "MSR 0x0f");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 13, 2, "THRE pending 2");
	assert_state_byte_refused(&serial__device_ops, u->s, &good, 16, 0x01, "count 261");

	/* Still as at power-on, the line untouched. */
	assert_int_equal(u->irq.calls, 0);
	assert_int_equal(rd(u, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(rd(u, UART_IER), 0);
	assert_int_equal(rd(u, UART_SCR), 0);
	assert_int_equal(serial__rx_room(u->s), 1);
	state_out__free(&good);
}

#define T(f) cmocka_unit_test_setup_teardown(f, uart_setup, uart_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_serial_reset_state_is_idle_16550),
		T(test_serial_device_reset_is_power_on_state),
		T(test_serial_thre_interrupt_raised_when_enabled_and_cleared_by_iir_read),
		T(test_serial_thr_write_sends_byte_and_rearms_thre_with_new_edge),
		T(test_serial_out2_gates_irq_line_but_not_iir),
		T(test_serial_rx_fifo_raises_data_ready_and_irq),
		T(test_serial_without_fifo_holds_one_byte),
		T(test_serial_receive_signals_room_fd_when_drained_to_half),
		T(test_serial_loopback_echoes_tx),
		T(test_serial_modem_status_change_interrupts_until_msr_read),
		T(test_serial_dlab_switches_divisor_latch),
		T(test_serial_overrun_sets_lsr_oe),
		T(test_serial_fifo_control_reports_16550a_in_iir),
		T(test_serial_passes_linux_8250_autoconfig),
		T(test_serial_wide_access_acts_on_first_register),
		cmocka_unit_test(test_serial_tx_failure_is_counted_not_fatal),
		cmocka_unit_test(test_serial_counters_follow_output_and_input),
		cmocka_unit_test(test_serial_tx_never_blocks_on_a_stalled_reader_and_counts_overflow),
		T(test_serial_tx_event_fires_once_per_busy_period),
		T(test_serial_concurrent_receive_and_guest_reads_keep_order),
		T(test_serial_snapshot_restores_registers_fifo_and_irq_line),
		T(test_serial_load_refuses_truncated_foreign_and_out_of_range_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
