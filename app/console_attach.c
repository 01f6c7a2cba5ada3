/*
 * `rtvmm ctl SOCKET console`: this terminal relayed to a VM's console socket
 * (rtvmm run --serial socket=PATH) both ways, as `virsh console` does: raw
 * mode on a terminal, Ctrl-] detaches, the terminal's mode restored on every
 * way out (detach, the VM closing the socket, an error, SIGTERM/SIGHUP/SIGINT).
 */
#include "app/console_attach.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define ATTACH_ESCAPE 0x1d /* Ctrl-] */
#define ATTACH_BUF 4096

/* The signal that asked us to go (0: none); a handler only records it, poll(2) then returns. */
static volatile sig_atomic_t attach_signal;

static void attach_on_signal(int sig)
{
	attach_signal = sig;
}

/* Raw mode for the relay: every byte as typed, no echo, no signals; output as the guest sends it. */
static int attach_tty_raw(int fd, struct termios *saved)
{
	struct termios tio;

	if (tcgetattr(fd, saved) < 0)
		return -errno;
	tio = *saved;
	tio.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	tio.c_oflag &= ~OPOST;
	tio.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	tio.c_cflag &= ~(CSIZE | PARENB);
	tio.c_cflag |= CS8;
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSAFLUSH, &tio) < 0)
		return -errno;
	return 0;
}

static int attach_connect(const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (!path[0] || strlen(path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "console socket '%s': empty or longer than %zu bytes",
				path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__set(e, -errno, "console socket %s: %s", path, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return err__set(e, err, "console socket %s: cannot connect: %s%s", path, strerror(-err),
				err == -ENOENT || err == -ECONNREFUSED ?
				" (is the VM running with --serial socket=?)" : "");
	}
	return fd;
}

/* Writes all of `buf` to `fd` (blocking); 0 or -errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * The relay: returns 0 on Ctrl-], the VM's hangup or a signal, else -errno
 * with `e`. The stop signals are blocked but while waiting (`waitmask`), so
 * one cannot slip in between the check and the wait.
 */
static int attach_relay(int sock, const char *path, bool tty, const sigset_t *waitmask,
			struct err *e)
{
	bool reading = true;
	uint8_t buf[ATTACH_BUF];
	int err;

	while (!attach_signal) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN },
				       { .fd = STDIN_FILENO, .events = POLLIN } };
		ssize_t n;

		if (ppoll(p, reading ? 2 : 1, NULL, waitmask) < 0) {
			if (errno == EINTR)
				continue;
			return err__set(e, -errno, "console: poll: %s", strerror(errno));
		}
		if (p[0].revents) {
			n = read(sock, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fprintf(stderr, "%sConnection to %s closed by the VM\r\n", tty ? "\r\n" : "",
					path);
				return 0;
			}
			err = write_all(STDOUT_FILENO, buf, (size_t)n);
			if (err)
				return err__set(e, err, "console: writing to stdout: %s", strerror(-err));
		}
		if (reading && p[1].revents) {
			uint8_t *esc;

			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* Input ended (a script's pipe): keep showing the VM's output. */
				reading = false;
				continue;
			}
			esc = memchr(buf, ATTACH_ESCAPE, (size_t)n);
			err = write_all(sock, buf, esc ? (size_t)(esc - buf) : (size_t)n);
			if (err)
				return err__set(e, err, "console socket %s: %s", path, strerror(-err));
			if (esc)
				return 0;
		}
	}
	return 0;
}

int console_attach__run(const char *socket_path, struct err *e)
{
	static const int signals[] = { SIGTERM, SIGHUP, SIGINT };
	struct sigaction sa = { .sa_handler = attach_on_signal }, old[3];
	sigset_t stop, waitmask;
	struct termios saved;
	bool tty = isatty(STDIN_FILENO);
	unsigned i;
	int sock, err;

	sock = attach_connect(socket_path, e);
	if (sock < 0)
		return sock;
	/* A signal ends the wait, and the terminal is restored below. */
	sigemptyset(&sa.sa_mask);
	sigemptyset(&stop);
	attach_signal = 0;
	for (i = 0; i < 3; i++) {
		sigaction(signals[i], &sa, &old[i]);
		sigaddset(&stop, signals[i]);
	}
	sigprocmask(SIG_BLOCK, &stop, &waitmask);
	if (tty) {
		err = attach_tty_raw(STDIN_FILENO, &saved);
		if (err) {
			err__set(e, err, "console: cannot put the terminal in raw mode: %s",
				 strerror(-err));
			goto out_signals;
		}
	}
	fprintf(stderr, "Connected to %s\r\nEscape character is ^] (Ctrl-])\r\n", socket_path);
	err = attach_relay(sock, socket_path, tty, &waitmask, e);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
out_signals:
	for (i = 0; i < 3; i++)
		sigaction(signals[i], &old[i], NULL);
	sigprocmask(SIG_SETMASK, &waitmask, NULL);
	close(sock);
	return err;
}
