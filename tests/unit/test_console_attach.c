/*
 * console_attach__run (app/console_attach.c) against a console socket served
 * here, its terminal a pty: raw mode while attached, bytes both ways, Ctrl-]
 * detaches, the VM's hangup and SIGTERM end it, the terminal's mode comes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/console_attach.h"

struct fx {
	char dir[64];
	char path[96];
	int listen_fd;
	int master, slave;
	struct termios before;
	pid_t child;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	snprintf(x->dir, sizeof(x->dir), "/tmp/rtvmm-attach-XXXXXX");
	if (!mkdtemp(x->dir))
		return -1;
	snprintf(x->path, sizeof(x->path), "%s/console.sock", x->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", x->path);
	x->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x->listen_fd < 0 || bind(x->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(x->listen_fd, 1))
		return -1;
	if (openpty(&x->master, &x->slave, NULL, NULL, NULL) || tcgetattr(x->slave, &x->before))
		return -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (x->child > 0) {
		kill(x->child, SIGKILL);
		waitpid(x->child, NULL, 0);
	}
	close(x->listen_fd);
	close(x->master);
	close(x->slave);
	unlink(x->path);
	rmdir(x->dir);
	free(x);
	return 0;
}

/* The attach in a child whose stdin and stdout are the pty; its exit status is 0 when it returned 0. */
static void start_attach(struct fx *x)
{
	x->child = fork();
	assert_true(x->child >= 0);
	if (x->child == 0) {
		struct err e = { 0 };
		int null = open("/dev/null", O_WRONLY);

		dup2(x->slave, STDIN_FILENO);
		dup2(x->slave, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		_exit(console_attach__run(x->path, &e) ? 1 : 0);
	}
}

/* Accepts the attach's connection and waits until its terminal is raw. */
static int accept_client(struct fx *x)
{
	struct pollfd p = { .fd = x->listen_fd, .events = POLLIN };
	struct termios tio;
	double end = now_s() + 10.0;
	int fd;

	assert_int_equal(poll(&p, 1, 10000), 1);
	fd = accept4(x->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	do {
		assert_int_equal(tcgetattr(x->slave, &tio), 0);
		if (!(tio.c_lflag & ICANON))
			break;
		usleep(1000);
	} while (now_s() < end);
	assert_false(tio.c_lflag & (ICANON | ECHO | ISIG));
	assert_false(tio.c_iflag & (ICRNL | IXON));
	return fd;
}

/* Reads exactly `len` bytes from `fd` within 5 s. */
static void read_exactly(int fd, uint8_t *buf, size_t len)
{
	double end = now_s() + 5.0;
	size_t got = 0;

	while (got < len && now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(fd, buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(got, len);
}

/* The child ended with status 0 within 5 s and the terminal is as it was. */
static void expect_clean_exit(struct fx *x)
{
	struct termios after;
	double end = now_s() + 5.0;
	int status = -1;
	pid_t r;

	while ((r = waitpid(x->child, &status, WNOHANG)) == 0 && now_s() < end)
		usleep(1000);
	assert_int_equal(r, x->child);
	x->child = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(tcgetattr(x->slave, &after), 0);
	assert_int_equal(after.c_lflag, x->before.c_lflag);
	assert_int_equal(after.c_iflag, x->before.c_iflag);
	assert_int_equal(after.c_oflag, x->before.c_oflag);
	assert_int_equal(after.c_cflag, x->before.c_cflag);
}

static void test_attach_relays_both_ways_and_ctrl_bracket_detaches(void **state)
{
	struct fx *x = *state;
	uint8_t buf[16];
	int fd;

	start_attach(x);
	fd = accept_client(x);
	/* Typed bytes reach the VM as typed (Ctrl-C and CR included). */
	assert_int_equal(write(x->master, "ls\x03\r", 4), 4);
	read_exactly(fd, buf, 4);
	assert_memory_equal(buf, "ls\x03\r", 4);
	/* The VM's output reaches the terminal untranslated. */
	assert_int_equal(write(fd, "out\r\n", 5), 5);
	read_exactly(x->master, buf, 5);
	assert_memory_equal(buf, "out\r\n", 5);
	/* Ctrl-]: what came before it is sent, nothing after, and the attach ends. */
	assert_int_equal(write(x->master, "a\x1d" "b", 3), 3);
	read_exactly(fd, buf, 1);
	assert_int_equal(buf[0], 'a');
	expect_clean_exit(x);
	assert_int_equal(read(fd, buf, sizeof(buf)), 0);
	close(fd);
}

static void test_attach_ends_when_the_vm_closes_the_socket(void **state)
{
	struct fx *x = *state;

	start_attach(x);
	close(accept_client(x));
	expect_clean_exit(x);
}

static void test_attach_restores_the_terminal_on_sigterm(void **state)
{
	struct fx *x = *state;
	int fd;

	start_attach(x);
	fd = accept_client(x);
	assert_int_equal(kill(x->child, SIGTERM), 0);
	expect_clean_exit(x);
	close(fd);
}

static void test_attach_without_a_listener_names_the_socket(void **state)
{
	struct fx *x = *state;
	struct err e = { 0 };
	struct termios after;

	close(x->listen_fd);
	x->listen_fd = -1;
	unlink(x->path);
	assert_int_equal(console_attach__run(x->path, &e), -ENOENT);
	assert_non_null(strstr(e.msg, x->path));
	assert_non_null(strstr(e.msg, "--serial socket="));
	assert_int_equal(tcgetattr(x->slave, &after), 0);
	assert_int_equal(after.c_lflag, x->before.c_lflag);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_attach_relays_both_ways_and_ctrl_bracket_detaches),
		T(test_attach_ends_when_the_vm_closes_the_socket),
		T(test_attach_restores_the_terminal_on_sigterm),
		T(test_attach_without_a_listener_names_the_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
