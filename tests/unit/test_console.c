#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/serial_reg.h>
#include <pty.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hw_fakes.h"
#include "vmm/hw/console.h"
#include "vmm/hw/serial.h"
#include "vmm/x86/layout.h"

#define BASE PORT_COM1

struct rig {
	struct bus bus;
	struct serial *s;
	struct fake_ctl ctl_rec;
	struct vm_ctl ctl;
};

static int rig_setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	bus__init(&r->bus, "pio");
	if (serial__add(&r->bus, BASE, NULL, -1, &r->s))
		return -1;
	r->ctl = fake_vm_ctl(&r->ctl_rec);
	*state = r;
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *r = *state;

	serial__destroy(r->s);
	bus__exit(&r->bus);
	free(r);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads `len` bytes from the UART as a polling guest would; returns how many arrived in time. */
static size_t guest_read(struct rig *r, uint8_t *buf, size_t len, double timeout_s)
{
	double end = now_s() + timeout_s;
	size_t got = 0;

	while (got < len && now_s() < end) {
		if (io_inb(&r->bus, BASE + UART_LSR) & UART_LSR_DR)
			buf[got++] = io_inb(&r->bus, BASE + UART_RX);
		else
			usleep(100);
	}
	return got;
}

/* Whether this process has a thread named "console". */
static bool console_thread_alive(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	bool found = false;

	assert_non_null(d);
	while (!found && (e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "console\n"))
			found = true;
		fclose(f);
	}
	closedir(d);
	return found;
}

static bool wait_thread_gone(double timeout_s)
{
	double end = now_s() + timeout_s;

	while (now_s() < end) {
		if (!console_thread_alive())
			return true;
		usleep(1000);
	}
	return false;
}

static void test_console_forwards_pipe_bytes_to_uart(void **state)
{
	struct rig *r = *state;
	struct console *c;
	uint8_t buf[5];
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(console__start(&c, p[0], r->s, &r->ctl), 0);
	assert_true(console_thread_alive());
	/* Not a terminal: Ctrl-A passes through untouched. */
	assert_int_equal(write(p[1], "ab\x01x\n", 5), 5);
	assert_int_equal(guest_read(r, buf, 5, 5.0), 5);
	assert_memory_equal(buf, "ab\x01x\n", 5);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);
	console__destroy(c);
	assert_false(console_thread_alive());
	close(p[0]);
	close(p[1]);
}

#define BULK 3000

/* Feeds `len` bytes through a pipe (then EOF) and checks the guest reads them all, in order. */
static void feed_and_check(struct rig *r, const uint8_t *in, uint8_t *out, size_t len)
{
	struct console *c;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], in, len), (ssize_t)len);
	close(p[1]);
	assert_int_equal(console__start(&c, p[0], r->s, NULL), 0);
	assert_int_equal(guest_read(r, out, len, 10.0), len);
	assert_memory_equal(in, out, len);
	/* EOF ended the thread quietly once everything was delivered. */
	assert_true(wait_thread_gone(5.0));
	console__destroy(c);
	close(p[0]);
}

static void test_console_waits_for_room_without_dropping(void **state)
{
	struct rig *r = *state;
	static uint8_t in[BULK], out[BULK];
	struct serial_stats st;
	unsigned i;

	for (i = 0; i < BULK; i++)
		in[i] = (uint8_t)(i * 7 + i / 256);
	/* 16450 mode (one-byte receiver): a room event per byte. */
	feed_and_check(r, in, out, 200);
	/* FIFO mode: the pipe holds far more than the FIFO. */
	io_outb(&r->bus, BASE + UART_FCR, UART_FCR_ENABLE_FIFO);
	feed_and_check(r, in, out, BULK);
	serial__get_stats(r->s, &st);
	assert_int_equal(st.rx_bytes, 200 + BULK);
	assert_int_equal(st.rx_overruns, 0);
}

static void test_console_eof_ends_thread_and_stop_still_joins(void **state)
{
	struct rig *r = *state;
	struct console *c;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(null >= 0);
	assert_int_equal(console__start(&c, null, r->s, &r->ctl), 0);
	assert_true(wait_thread_gone(5.0));
	console__destroy(c);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);
	close(null);
}

static void test_console_stop_is_prompt_while_blocked(void **state)
{
	struct rig *r = *state;
	static uint8_t junk[2000];
	struct console *c;
	double t;
	int p[2];

	/* Blocked reading an idle pipe. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(console__start(&c, p[0], r->s, NULL), 0);
	usleep(20000);
	t = now_s();
	console__destroy(c);
	assert_true(now_s() - t < 1.0);
	assert_false(console_thread_alive());

	/* Blocked waiting for receive room the guest never makes. */
	assert_int_equal(write(p[1], junk, sizeof(junk)), sizeof(junk));
	assert_int_equal(console__start(&c, p[0], r->s, NULL), 0);
	usleep(20000);
	assert_int_equal(serial__rx_room(r->s), 0);
	t = now_s();
	console__destroy(c);
	assert_true(now_s() - t < 1.0);
	assert_false(console_thread_alive());
	close(p[0]);
	close(p[1]);
}

static void test_console_pty_raw_mode_set_and_restored(void **state)
{
	struct rig *r = *state;
	struct termios before, during, after;
	struct console *c, *c2;
	int master, slave, m2, s2;

	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	assert_int_equal(tcgetattr(slave, &before), 0);
	assert_true(before.c_lflag & ICANON);
	assert_int_equal(console__start(&c, slave, r->s, &r->ctl), 0);

	assert_int_equal(tcgetattr(slave, &during), 0);
	assert_false(during.c_lflag & (ICANON | ECHO | ISIG | IEXTEN));
	assert_false(during.c_iflag & (ICRNL | IXON));
	assert_true(during.c_oflag & OPOST); /* "\n" still returns the carriage */
	assert_int_equal(during.c_cflag & CSIZE, CS8);

	/* One terminal in raw mode at a time. */
	assert_int_equal(openpty(&m2, &s2, NULL, NULL, NULL), 0);
	assert_int_equal(console__start(&c2, s2, r->s, NULL), -EBUSY);
	close(m2);
	close(s2);

	console__destroy(c);
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	assert_int_equal(after.c_iflag, before.c_iflag);
	assert_int_equal(after.c_oflag, before.c_oflag);
	assert_int_equal(after.c_cflag, before.c_cflag);
	close(master);
	close(slave);
}

static void test_console_tty_ctrl_c_reaches_guest_and_ctrl_a_x_stops_vm(void **state)
{
	struct rig *r = *state;
	struct console *c;
	double end;
	uint8_t buf[4];
	int master, slave;

	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	io_outb(&r->bus, BASE + UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(console__start(&c, slave, r->s, &r->ctl), 0);

	/* Ctrl-C is a byte for the guest; Ctrl-A Ctrl-A and Ctrl-A a send one Ctrl-A. */
	assert_int_equal(write(master, "\x03\x01\x01q\x01" "a", 6), 6);
	assert_int_equal(guest_read(r, buf, 4, 5.0), 4);
	assert_memory_equal(buf, "\x03\x01q\x01", 4);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 0);

	/* Escape split across reads still counts; what follows is not delivered. */
	assert_int_equal(write(master, "\x01", 1), 1);
	usleep(20000);
	assert_int_equal(write(master, "xzz", 3), 3);
	end = now_s() + 5.0;
	while (fake_ctl_calls(&r->ctl_rec) == 0 && now_s() < end)
		usleep(1000);
	assert_int_equal(fake_ctl_calls(&r->ctl_rec), 1);
	assert_int_equal(r->ctl_rec.reason, VM_STOP_SIGNAL);
	assert_true(wait_thread_gone(5.0));
	assert_false(io_inb(&r->bus, BASE + UART_LSR) & UART_LSR_DR);

	console__destroy(c);
	close(master);
	close(slave);
}

/* A UART whose output goes to `out_fd`, with its console (no input). */
static void out_rig(struct bus *bus, struct serial **s, struct console **c, int out_fd)
{
	bus__init(bus, "pio");
	assert_int_equal(serial__add(bus, BASE, NULL, out_fd, s), 0);
	assert_int_equal(console__start(c, -1, *s, NULL), 0);
	assert_true(console_thread_alive());
}

#define OUT_BYTES 60000

/* Guest output reaches the reader complete and in order, written by the console thread. */
static void test_console_drains_uart_output_in_order(void **state)
{
	static uint8_t got[OUT_BYTES];
	struct serial_stats st;
	struct console *c;
	struct serial *s;
	struct bus bus;
	size_t have = 0;
	double end;
	unsigned i;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	out_rig(&bus, &s, &c, p[1]);
	for (i = 0; i < OUT_BYTES; i++)
		io_outb(&bus, BASE + UART_TX, (uint8_t)(i % 253));
	end = now_s() + 10.0;
	while (have < OUT_BYTES && now_s() < end) {
		ssize_t n = read(p[0], got + have, OUT_BYTES - have);

		assert_true(n > 0);
		have += (size_t)n;
	}
	assert_int_equal(have, OUT_BYTES);
	for (i = 0; i < OUT_BYTES; i++)
		if (got[i] != (uint8_t)(i % 253))
			fail_msg("output byte %u is %u, expected %u", i, got[i], i % 253);
	console__destroy(c);
	serial__get_stats(s, &st);
	assert_int_equal(st.tx_bytes, OUT_BYTES);
	assert_int_equal(st.tx_overflow, 0);
	assert_int_equal(st.tx_dropped, 0);
	serial__destroy(s);
	bus__exit(&bus);
	close(p[0]);
	close(p[1]);
}

#define STALL_BYTES (3 * SERIAL_TX_BUF)

/*
 * A blocking pipe nobody reads: the guest's writes return at once, the pipe
 * fills, the rest overflows, and stop gives up within its bound, counting
 * every byte either as written or as lost to the stalled reader.
 */
static void test_console_stop_is_bounded_when_the_reader_never_reads(void **state)
{
	struct serial_stats st;
	struct console *c;
	struct serial *s;
	struct bus bus;
	double t;
	unsigned i;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	out_rig(&bus, &s, &c, p[1]);
	alarm(20);
	t = now_s();
	for (i = 0; i < STALL_BYTES; i++)
		io_outb(&bus, BASE + UART_TX, 'x');
	assert_true(now_s() - t < 2.0);
	usleep(100000);
	t = now_s();
	console__destroy(c);
	assert_true(now_s() - t < 2.5);
	alarm(0);
	assert_false(console_thread_alive());
	serial__get_stats(s, &st);
	assert_true(st.tx_bytes > 0 && st.tx_bytes <= (uint64_t)fcntl(p[1], F_GETPIPE_SZ));
	assert_true(st.tx_overflow >= STALL_BYTES - SERIAL_TX_BUF - st.tx_bytes);
	assert_int_equal(st.tx_bytes + st.tx_overflow, STALL_BYTES);
	serial__destroy(s);
	bus__exit(&bus);
	close(p[0]);
	close(p[1]);
}

/* A reader that went away (EPIPE): output is counted as dropped, the console goes on. */
static void test_console_counts_output_to_a_closed_reader_as_dropped(void **state)
{
	struct serial_stats st;
	struct console *c;
	struct serial *s;
	struct bus bus;
	double end;
	int p[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	out_rig(&bus, &s, &c, p[1]);
	io_outb(&bus, BASE + UART_TX, 'a');
	io_outb(&bus, BASE + UART_TX, 'b');
	end = now_s() + 5.0;
	do {
		usleep(1000);
		serial__get_stats(s, &st);
	} while (st.tx_dropped < 2 && now_s() < end);
	assert_int_equal(st.tx_dropped, 2);
	assert_int_equal(st.tx_bytes, 0);
	assert_true(console_thread_alive());
	console__destroy(c);
	serial__destroy(s);
	bus__exit(&bus);
	close(p[1]);
}

#define T(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_console_forwards_pipe_bytes_to_uart),
		T(test_console_waits_for_room_without_dropping),
		T(test_console_eof_ends_thread_and_stop_still_joins),
		T(test_console_stop_is_prompt_while_blocked),
		T(test_console_pty_raw_mode_set_and_restored),
		T(test_console_tty_ctrl_c_reaches_guest_and_ctrl_a_x_stops_vm),
		cmocka_unit_test(test_console_drains_uart_output_in_order),
		cmocka_unit_test(test_console_stop_is_bounded_when_the_reader_never_reads),
		cmocka_unit_test(test_console_counts_output_to_a_closed_reader_as_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
