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
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hw_fakes.h"
#include "state_refusals.h"
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

/* Reads `len` bytes from the UART on `bus` as a polling guest would; returns how many arrived in time. */
static size_t bus_read(struct bus *bus, uint8_t *buf, size_t len, double timeout_s)
{
	double end = now_s() + timeout_s;
	size_t got = 0;

	while (got < len && now_s() < end) {
		if (io_inb(bus, BASE + UART_LSR) & UART_LSR_DR)
			buf[got++] = io_inb(bus, BASE + UART_RX);
		else
			usleep(100);
	}
	return got;
}

static size_t guest_read(struct rig *r, uint8_t *buf, size_t len, double timeout_s)
{
	return bus_read(&r->bus, buf, len, timeout_s);
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

/* ---- socket mode ---- */

/* A UART whose output goes to a socket console listening at a fresh path. */
struct sock_rig {
	struct bus bus;
	struct serial *s;
	struct console *c;
	char dir[64];
	char path[96];
};

static void sock_rig_start(struct sock_rig *r)
{
	struct err e = { 0 };
	int fd;

	snprintf(r->dir, sizeof(r->dir), "/tmp/rtvmm-console-XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	snprintf(r->path, sizeof(r->path), "%s/console.sock", r->dir);
	fd = console__listen(r->path, &e);
	assert_true(fd >= 0);
	bus__init(&r->bus, "pio");
	assert_int_equal(serial__add(&r->bus, BASE, NULL, fd, &r->s), 0);
	io_outb(&r->bus, BASE + UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(console__start_socket(&r->c, fd, r->path, r->s), 0);
	assert_true(console_thread_alive());
}

/* Stops the console (its counters in `cs`, the UART's in `st`) and checks it cleaned up. */
static void sock_rig_stop(struct sock_rig *r, struct console_stats *cs, struct serial_stats *st)
{
	struct stat sb;

	console__stop(r->c);
	assert_false(console_thread_alive());
	/* The console unlinked its socket at stop. */
	assert_int_equal(lstat(r->path, &sb), -1);
	console__get_stats(r->c, cs);
	console__destroy(r->c);
	serial__get_stats(r->s, st);
	serial__destroy(r->s);
	bus__exit(&r->bus);
	assert_int_equal(rmdir(r->dir), 0);
}

static int sock_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads up to `len` bytes within `timeout_s` (stops early at EOF); returns how many came. */
static size_t sock_read(int fd, uint8_t *buf, size_t len, double timeout_s)
{
	double end = now_s() + timeout_s;
	size_t got = 0;

	while (got < len && now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void guest_write(struct bus *bus, const char *s)
{
	while (*s)
		io_outb(bus, BASE + UART_TX, (uint8_t)*s++);
}

/* Waits until the console took (or the UART dropped) `n` bytes in all. */
static void wait_taken(struct serial *s, uint64_t n)
{
	struct serial_stats st;
	double end = now_s() + 10.0;

	do {
		serial__get_stats(s, &st);
		if (st.tx_bytes + st.tx_overflow >= n)
			return;
		usleep(1000);
	} while (now_s() < end);
	fail_msg("the console took %llu of %llu bytes", (unsigned long long)st.tx_bytes,
		 (unsigned long long)n);
}

/* What console__socket_device_ops.counters said last, by name. */
struct seen_counters {
	uint64_t clients, sent_bytes;
	char client[16], socket[96];
};

static void seen_num(void *opaque, const char *name, uint64_t value)
{
	struct seen_counters *c = opaque;

	if (!strcmp(name, "clients"))
		c->clients = value;
	else if (!strcmp(name, "sent_bytes"))
		c->sent_bytes = value;
}

static void seen_str(void *opaque, const char *name, const char *value)
{
	struct seen_counters *c = opaque;

	if (!strcmp(name, "client"))
		snprintf(c->client, sizeof(c->client), "%s", value);
	else if (!strcmp(name, "socket"))
		snprintf(c->socket, sizeof(c->socket), "%s", value);
}

static struct seen_counters live_counters(struct console *c)
{
	struct seen_counters seen = { 0 };
	const struct counter_sink sink = { .num = seen_num, .str = seen_str, .opaque = &seen };

	console__socket_device_ops.counters(c, &sink);
	return seen;
}

/* Output made before anyone attached reaches the client, then live output; its input reaches the guest. */
static void test_console_socket_client_sees_earlier_output_and_types_to_guest(void **state)
{
	struct seen_counters seen;
	double end;
	struct console_stats cs;
	struct serial_stats st;
	struct sock_rig r;
	uint8_t buf[32];
	struct stat sb;
	int fd;

	(void)state;
	sock_rig_start(&r);
	assert_int_equal(lstat(r.path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0600);
	guest_write(&r.bus, "boot log\n");
	wait_taken(r.s, 9);
	fd = sock_connect(r.path);
	assert_int_equal(sock_read(fd, buf, 9, 5.0), 9);
	assert_memory_equal(buf, "boot log\n", 9);
	guest_write(&r.bus, "live");
	assert_int_equal(sock_read(fd, buf, 4, 5.0), 4);
	assert_memory_equal(buf, "live", 4);
	/* The live counters (the API's vm.counters) while a client is attached (the count of
	 * sent bytes follows the write the client may already have read). */
	end = now_s() + 5.0;
	do
		seen = live_counters(r.c);
	while (seen.sent_bytes < 13 && now_s() < end);
	assert_string_equal(seen.client, "attached");
	assert_string_equal(seen.socket, r.path);
	assert_int_equal(seen.clients, 1);
	assert_int_equal(seen.sent_bytes, 13);
	/* Input as it is: no escape in socket mode. */
	assert_int_equal(write(fd, "ls\x01x\r", 5), 5);
	assert_int_equal(bus_read(&r.bus, buf, 5, 5.0), 5);
	assert_memory_equal(buf, "ls\x01x\r", 5);
	/* A client that leaves and one that comes back: it gets only what it has not seen. */
	close(fd);
	end = now_s() + 5.0;
	do
		seen = live_counters(r.c);
	while (strcmp(seen.client, "none") && now_s() < end);
	assert_string_equal(seen.client, "none");
	guest_write(&r.bus, "meanwhile");
	wait_taken(r.s, 22);
	fd = sock_connect(r.path);
	assert_int_equal(sock_read(fd, buf, sizeof(buf), 1.0), 9);
	assert_memory_equal(buf, "meanwhile", 9);
	sock_rig_stop(&r, &cs, &st);
	/* At stop the client is disconnected: EOF. */
	assert_int_equal(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	assert_int_equal(cs.clients, 2);
	assert_int_equal(cs.replaced, 0);
	assert_int_equal(cs.sent_bytes, 22);
	assert_int_equal(cs.lost_slow_client + cs.lost_unattached, 0);
	assert_int_equal(st.tx_bytes, 22);
	assert_int_equal(st.rx_bytes, 5);
}

/* A second client replaces the first, which is told in one line and disconnected. */
static void test_console_socket_second_client_replaces_the_first(void **state)
{
	static const char notice[] = "\r\nrtvmm: another client attached to this console; "
				     "detaching you\r\n";
	struct console_stats cs;
	struct serial_stats st;
	struct sock_rig r;
	uint8_t buf[128];
	int a, b;

	(void)state;
	sock_rig_start(&r);
	a = sock_connect(r.path);
	guest_write(&r.bus, "one");
	assert_int_equal(sock_read(a, buf, 3, 5.0), 3);
	b = sock_connect(r.path);
	assert_int_equal(sock_read(a, buf, sizeof(buf), 5.0), sizeof(notice) - 1);
	assert_memory_equal(buf, notice, sizeof(notice) - 1);
	guest_write(&r.bus, "two");
	assert_int_equal(sock_read(b, buf, 3, 5.0), 3);
	assert_memory_equal(buf, "two", 3);
	/* b types, the guest reads it; a's line is closed. */
	assert_int_equal(write(b, "b", 1), 1);
	assert_int_equal(bus_read(&r.bus, buf, 1, 5.0), 1);
	assert_int_equal(buf[0], 'b');
	sock_rig_stop(&r, &cs, &st);
	close(a);
	close(b);
	assert_int_equal(cs.clients, 2);
	assert_int_equal(cs.replaced, 1);
	assert_int_equal(cs.sent_bytes, 6);
}

#define FLOOD (4u << 20)

/*
 * A client that connects and never reads: the guest's writes never wait, the
 * console keeps taking the UART's output, and what the client's socket does
 * not take is counted as lost to it; every byte is accounted for at stop.
 */
static void test_console_socket_client_that_never_reads_costs_output_not_time(void **state)
{
	struct console_stats cs;
	struct serial_stats st;
	struct sock_rig r;
	double t = 0, worst = 0, end;
	unsigned i;
	int fd;

	(void)state;
	sock_rig_start(&r);
	fd = sock_connect(r.path);
	end = now_s() + 5.0;
	while (strcmp(live_counters(r.c).client, "attached") && now_s() < end)
		usleep(1000);
	alarm(60);
	for (i = 0; i < FLOOD; i++) {
		if (!(i & 4095))
			t = now_s();
		io_outb(&r.bus, BASE + UART_TX, (uint8_t)i);
		if ((i & 4095) == 4095 && now_s() - t > worst)
			worst = now_s() - t;
	}
	alarm(0);
	/* 4096 port writes never waited for the reader (a blocked one would hang: alarm). */
	assert_true(worst < 1.0);
	wait_taken(r.s, FLOOD);
	t = now_s();
	sock_rig_stop(&r, &cs, &st);
	assert_true(now_s() - t < 2.5);
	close(fd);
	assert_int_equal(st.tx_bytes + st.tx_overflow, FLOOD);
	/* The client got what its socket holds, the rest is lost to it, counted. */
	assert_true(cs.lost_slow_client > 0);
	assert_int_equal(cs.sent_bytes + cs.lost_slow_client, st.tx_bytes);
	assert_int_equal(cs.lost_unattached, 0);
	assert_true(cs.sent_bytes < FLOOD / 2);
}

#define UNATTACHED (160u << 10)

/* Output while nobody is attached: the next client gets the last CONSOLE_HISTORY bytes, in order. */
static void test_console_socket_keeps_the_recent_history_for_a_late_client(void **state)
{
	static uint8_t got[CONSOLE_HISTORY + 16];
	struct console_stats cs;
	struct serial_stats st;
	struct sock_rig r;
	unsigned i, first = UNATTACHED - CONSOLE_HISTORY;
	int fd;

	(void)state;
	sock_rig_start(&r);
	/* In slices the console drains at once: nothing overflows the UART's own buffer. */
	for (i = 0; i < UNATTACHED; i++) {
		io_outb(&r.bus, BASE + UART_TX, (uint8_t)(i % 251));
		if (i % 8192 == 8191)
			wait_taken(r.s, i + 1);
	}
	wait_taken(r.s, UNATTACHED);
	fd = sock_connect(r.path);
	assert_int_equal(sock_read(fd, got, sizeof(got), 3.0), CONSOLE_HISTORY);
	for (i = 0; i < CONSOLE_HISTORY; i++)
		if (got[i] != (uint8_t)((first + i) % 251))
			fail_msg("history byte %u is %u, expected %u", i, got[i], (first + i) % 251);
	sock_rig_stop(&r, &cs, &st);
	close(fd);
	assert_int_equal(st.tx_overflow, 0);
	assert_int_equal(cs.lost_unattached, UNATTACHED - CONSOLE_HISTORY);
	assert_int_equal(cs.sent_bytes, CONSOLE_HISTORY);
}

/* console__listen: a stale socket is replaced; a live one or another file refused, naming it. */
static void test_console_listen_refuses_a_busy_or_foreign_path(void **state)
{
	char dir[64] = "/tmp/rtvmm-console-XXXXXX", path[96];
	struct err e = { 0 };
	int fd, fd2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.sock", dir);
	fd = console__listen(path, &e);
	assert_true(fd >= 0);
	assert_int_equal(console__listen(path, &e), -EADDRINUSE);
	assert_non_null(strstr(e.msg, path));
	close(fd);
	/* Nobody listens any more: a stale socket, replaced. */
	fd2 = console__listen(path, &e);
	assert_true(fd2 >= 0);
	close(fd2);
	assert_int_equal(unlink(path), 0);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(console__listen(path, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "not a socket"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(console__listen("", &e), -ENAMETOOLONG);
	assert_int_equal(rmdir(dir), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)

/* Both console modes save an empty state and refuse any byte to load: the host side holds no guest state. */
static void test_console_snapshot_holds_no_state(void **state)
{
	const struct device_ops *ops[] = { &console__device_ops, &console__socket_device_ops };
	const uint8_t byte = 0;
	char why[STATE_WHY_LEN];
	struct state_out out;
	unsigned i;

	(void)state;
	for (i = 0; i < 2; i++) {
		assert_ptr_equal(ops[i]->save, device__save_nothing);
		assert_ptr_equal(ops[i]->load, device__load_nothing);
		out = state_save(ops[i], NULL);
		assert_int_equal(out.len, 0);
		assert_int_equal(state_load(ops[i], NULL, out.buf, out.len, why), 0);
		assert_int_equal(state_load(ops[i], NULL, &byte, 1, why), -EINVAL);
		state_out__free(&out);
	}
}

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
		cmocka_unit_test(test_console_socket_client_sees_earlier_output_and_types_to_guest),
		cmocka_unit_test(test_console_socket_second_client_replaces_the_first),
		cmocka_unit_test(test_console_socket_client_that_never_reads_costs_output_not_time),
		cmocka_unit_test(test_console_socket_keeps_the_recent_history_for_a_late_client),
		cmocka_unit_test(test_console_listen_refuses_a_busy_or_foreign_path),
		cmocka_unit_test(test_console_snapshot_holds_no_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
