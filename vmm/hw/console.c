/* Console input thread: host fd -> UART receive FIFO, raw terminal mode, Ctrl-A escape. */
#include "vmm/hw/console.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "base/thread_class.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */
#define CONSOLE_BUF    4096

struct console {
	pthread_t thread;
	int in_fd;
	int stop_fd;        /* eventfd: console__stop wakes the thread */
	struct serial *s;
	struct vm_ctl ctl;
	bool has_ctl;
	bool tty;           /* in raw mode, escapes active */
	bool got_escape;    /* last byte was Ctrl-A */
	size_t len;         /* bytes in buf not yet taken by the UART */
	uint8_t buf[CONSOLE_BUF];
};

/* The terminal mode to restore; global so that an atexit handler can reach it. */
static struct {
	pthread_mutex_t lock;
	bool saved;
	int fd;
	struct termios tio;
} console_tty = { .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t console_atexit_once = PTHREAD_ONCE_INIT;

static void console_tty_restore(void)
{
	pthread_mutex_lock(&console_tty.lock);
	if (console_tty.saved) {
		tcsetattr(console_tty.fd, TCSANOW, &console_tty.tio);
		console_tty.saved = false;
	}
	pthread_mutex_unlock(&console_tty.lock);
}

static void console_register_atexit(void)
{
	atexit(console_tty_restore);
}

/* Raw mode as QEMU's stdio chardev sets it: keep OPOST so "\n" still returns the carriage. */
static int console_tty_raw(int fd)
{
	struct termios tio;
	int err = 0;

	pthread_once(&console_atexit_once, console_register_atexit);
	pthread_mutex_lock(&console_tty.lock);
	if (console_tty.saved) {
		err = -EBUSY;
		goto out_unlock;
	}
	if (tcgetattr(fd, &tio) < 0) {
		err = -errno;
		goto out_unlock;
	}
	console_tty.tio = tio;
	tio.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	tio.c_oflag |= OPOST;
	tio.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	tio.c_cflag &= ~(CSIZE | PARENB);
	tio.c_cflag |= CS8;
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &tio) < 0) {
		err = -errno;
		goto out_unlock;
	}
	console_tty.fd = fd;
	console_tty.saved = true;
out_unlock:
	pthread_mutex_unlock(&console_tty.lock);
	return err;
}

static void console_help(void)
{
	static const char help[] =
		"\r\nC-a x    stop the VM\r\nC-a a    send C-a\r\nC-a h    this help\r\n";

	if (write(STDERR_FILENO, help, sizeof(help) - 1) < 0) {
		/* nowhere left to report it */
	}
}

/*
 * Applies the escape to the `n` new bytes at buf[len..]; keeps what goes to
 * the guest in place. Returns false after Ctrl-A x (stop reading).
 */
static bool console_escape(struct console *c, size_t n)
{
	uint8_t *in = c->buf + c->len, *out = in;
	bool more = true;
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t ch = in[i];

		if (!c->got_escape) {
			if (ch == CONSOLE_ESCAPE)
				c->got_escape = true;
			else
				*out++ = ch;
			continue;
		}
		c->got_escape = false;
		switch (ch) {
		case CONSOLE_ESCAPE:
		case 'a':
			*out++ = CONSOLE_ESCAPE;
			break;
		case 'x':
			if (!c->has_ctl)
				break; /* nobody to tell: swallowed like any unknown escape */
			vm_ctl__stop(&c->ctl, VM_STOP_SIGNAL, 0);
			more = false;
			i = n; /* the rest was typed after quitting */
			break;
		case 'h':
		case '?':
			console_help();
			break;
		}
	}
	c->len = out - c->buf;
	return more;
}

/* Reads what fits; false on EOF, hangup, error or Ctrl-A x. */
static bool console_read(struct console *c)
{
	ssize_t n = read(c->in_fd, c->buf + c->len, sizeof(c->buf) - c->len);

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (c->tty)
		return console_escape(c, n);
	c->len += n;
	return true;
}

static void console_deliver(struct console *c)
{
	size_t n;

	if (!c->len)
		return;
	n = serial__receive(c->s, c->buf, c->len);
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static void console_drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: already drained */
	}
}

static void *console_thread(void *arg)
{
	struct console *c = arg;
	int room_fd = serial__rx_room_fd(c->s);
	bool reading = true;

	thread_class__enter(THREAD_CLASS_CONSOLE, "console");
	while (reading || c->len) {
		struct pollfd pfd[3] = { { .fd = c->stop_fd, .events = POLLIN } };
		nfds_t n = 1, in = 0, room = 0;

		if (reading && c->len < sizeof(c->buf)) {
			in = n;
			pfd[n++] = (struct pollfd){ .fd = c->in_fd, .events = POLLIN };
		}
		if (c->len) {
			room = n;
			pfd[n++] = (struct pollfd){ .fd = room_fd, .events = POLLIN };
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if (room && pfd[room].revents)
			console_drain(room_fd);
		if (in && pfd[in].revents)
			reading = console_read(c);
		console_deliver(c);
	}
	return NULL;
}

int console__start(struct console **out, int in_fd, struct serial *s, const struct vm_ctl *ctl)
{
	sigset_t all, old;
	struct console *c;
	int err;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->in_fd = in_fd;
	c->s = s;
	if (ctl) {
		c->ctl = *ctl;
		c->has_ctl = true;
	}
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0) {
		err = -errno;
		goto err_free;
	}
	if (isatty(in_fd)) {
		err = console_tty_raw(in_fd);
		if (err)
			goto err_close_stop;
		c->tty = true;
	}

	/* The thread blocks every signal: SIGINT/SIGTERM stay with the monitor's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&c->thread, NULL, console_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto err_restore_tty;
	pthread_setname_np(c->thread, "console");
	*out = c;
	return 0;

err_restore_tty:
	if (c->tty)
		console_tty_restore();
err_close_stop:
	close(c->stop_fd);
err_free:
	free(c);
	return err;
}

void console__stop(struct console *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (write(c->stop_fd, &one, sizeof(one)) < 0) {
		/* cannot fail on a fresh eventfd */
	}
	pthread_join(c->thread, NULL);
	if (c->tty)
		console_tty_restore();
	close(c->stop_fd);
	free(c);
}

static void console_device_destroy(void *dev)
{
	console__stop(dev);
}

const struct device_ops console__device_ops = {
	.destroy = console_device_destroy,
};
