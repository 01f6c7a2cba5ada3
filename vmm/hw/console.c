/*
 * Console thread: host fd -> UART receive FIFO (raw terminal mode, Ctrl-A escape), UART output ->
 * host fd; or, in socket mode, UART output -> a history ring -> the one client, client -> UART.
 */
#include "vmm/hw/console.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/counter.h"
#include "base/thread_class.h"
#include "base/trust.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */
#define CONSOLE_BUF    4096
/* At stop: how long buffered output may take to reach a slow reader, then how long a write may hang. */
#define CONSOLE_FLUSH_MS  1000
#define CONSOLE_CANCEL_MS 500
/* Interrupts a write that hangs (a stopped terminal) once console__stop gives up on it. */
#define CONSOLE_WAKE_SIGNAL (SIGRTMIN + 1)
/* During a burst of output, how long the thread collects before writing (instead of a wake-up per byte). */
#define CONSOLE_LINGER_MS 1

struct console {
	pthread_t thread;
	int in_fd;          /* -1: output only (socket mode: the client is the input) */
	int out_fd;         /* the UART's out_fd, -1: input only or socket mode */
	int stop_fd;        /* eventfd: console__stop wakes the thread */
	bool stopped;       /* console__stop ran */
	bool abandon;       /* console__stop gave up on the reader: write no more */
	struct serial *s;
	struct vm_ctl ctl;
	bool has_ctl;
	bool tty;           /* in raw mode, escapes active */
	bool got_escape;    /* last byte was Ctrl-A */
	size_t len;         /* bytes in buf not yet taken by the UART */
	uint8_t buf[CONSOLE_BUF];

	/*
	 * Socket mode. Every byte the guest writes goes into `ring` at ring_total
	 * (an absolute offset); the client is sent from client_pos on. seen_pos is
	 * where the last client stopped: the next one starts there, or at the
	 * oldest byte the ring still holds.
	 */
	int listen_fd;      /* -1: not socket mode */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int client_fd;      /* -1: nobody attached */
	bool attached;      /* client_fd >= 0, for other threads (relaxed) */
	uint64_t ring_total, client_pos, seen_pos;
	struct console_stats stats; /* written by the console thread only; read relaxed */
	uint8_t ring[CONSOLE_HISTORY];
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

/*
 * Writes buffered UART output while out_fd takes it, waiting for room until
 * `deadline` (CLOCK_MONOTONIC ms; in the past: no waiting). Chunks of at most
 * PIPE_BUF after POLLOUT do not block on a pipe; should a write block anyway
 * (a stopped terminal), console__stop sets `abandon` and interrupts it with
 * CONSOLE_WAKE_SIGNAL (no thread cancellation: that needs calls no sandboxed
 * thread may make). Returns the bytes written once the buffer is empty, -1
 * while output still waits for room or was abandoned.
 */
static ssize_t console_flush(struct console *c, int64_t deadline)
{
	const uint8_t *data;
	ssize_t done = 0;
	size_t n;

	while ((n = serial__tx_peek(c->s, &data))) {
		struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
		int64_t left = deadline - clock__mono_ms();
		ssize_t w;

		if (poll(&p, 1, left > 0 ? (int)left : 0) <= 0)
			return -1;
		if (n > PIPE_BUF)
			n = PIPE_BUF;
		if (__atomic_load_n(&c->abandon, __ATOMIC_ACQUIRE))
			return -1;
		w = write(c->out_fd, data, n);
		if (w > 0) {
			serial__tx_consume(c->s, (size_t)w, SERIAL_TX_WRITTEN);
			done += w;
		} else if (w < 0 && errno != EINTR && errno != EAGAIN) {
			serial__tx_consume(c->s, n, SERIAL_TX_FAILED); /* EPIPE, EIO: the reader is gone */
		}
	}
	return done;
}

/*
 * The output side's state: asleep until the UART's event, lingering (the
 * guest is mid-burst: collect for CONSOLE_LINGER_MS instead of being woken
 * per byte), or waiting for the reader to make room.
 */
enum console_out { OUT_IDLE, OUT_LINGER, OUT_BLOCKED };

/* After a flush: blocked, or linger; a linger that found nothing goes idle. */
static enum console_out console_out_next(struct console *c, ssize_t flushed, bool lingering)
{
	if (flushed < 0)
		return OUT_BLOCKED;
	if (flushed > 0 || !lingering)
		return OUT_LINGER;
	return serial__tx_rearm(c->s) ? OUT_IDLE : OUT_LINGER;
}

/* ---- socket mode ---- */

/* Where the next client's output starts, or the attached client's next byte. */
static uint64_t *console_reader_pos(struct console *c)
{
	return c->client_fd >= 0 ? &c->client_pos : &c->seen_pos;
}

/* Appends to the history; what the reader had not got before it is overwritten is counted. */
static void console_ring_put(struct console *c, const uint8_t *data, size_t n)
{
	uint64_t *pos = console_reader_pos(c);

	while (n) {
		size_t off = c->ring_total % CONSOLE_HISTORY, chunk = CONSOLE_HISTORY - off;

		if (chunk > n)
			chunk = n;
		memcpy(c->ring + off, data, chunk);
		c->ring_total += chunk;
		data += chunk;
		n -= chunk;
	}
	if (c->ring_total - *pos > CONSOLE_HISTORY) {
		uint64_t lost = c->ring_total - CONSOLE_HISTORY - *pos;

		counter__add(c->client_fd >= 0 ? &c->stats.lost_slow_client : &c->stats.lost_unattached,
			 lost);
		*pos += lost;
	}
}

/* Moves all buffered UART output into the history; returns the bytes taken (never blocks). */
static ssize_t console_take(struct console *c)
{
	const uint8_t *data;
	ssize_t done = 0;
	size_t n;

	while ((n = serial__tx_peek(c->s, &data))) {
		console_ring_put(c, data, n);
		serial__tx_consume(c->s, n, SERIAL_TX_WRITTEN);
		done += (ssize_t)n;
	}
	return done;
}

static void console_detach(struct console *c)
{
	close(c->client_fd);
	c->client_fd = -1;
	__atomic_store_n(&c->attached, false, __ATOMIC_RELAXED);
	c->seen_pos = c->client_pos;
}

/* Sends the client what it has not got, as far as its socket takes it without waiting. */
static void console_send(struct console *c)
{
	while (c->client_fd >= 0 && c->client_pos < c->ring_total) {
		size_t off = c->client_pos % CONSOLE_HISTORY, n = CONSOLE_HISTORY - off;
		ssize_t w;

		if (n > c->ring_total - c->client_pos)
			n = c->ring_total - c->client_pos;
		w = write(c->client_fd, c->ring + off, n);
		if (w > 0) {
			c->client_pos += (uint64_t)w;
			counter__add(&c->stats.sent_bytes, (uint64_t)w);
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else {
			if (w < 0 && errno != EAGAIN)
				console_detach(c); /* EPIPE, ECONNRESET: the client went away */
			return;
		}
	}
}

/*
 * A new client replaces the attached one (cloud-hypervisor's --serial socket=
 * does the same), which is told so in one line; the newcomer gets the output
 * nobody has seen yet, at most the history's last CONSOLE_HISTORY bytes.
 */
static void console_accept(struct console *c)
{
	static const char replaced[] = "\r\nrtvmm: another client attached to this console; "
				       "detaching you\r\n";
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return; /* EAGAIN, ECONNABORTED: nobody after all */
	if (c->client_fd >= 0) {
		if (write(c->client_fd, replaced, sizeof(replaced) - 1) < 0) {
			/* its socket is full or gone: it learns from the hangup */
		}
		console_detach(c);
		counter__add(&c->stats.replaced, 1);
	}
	c->client_fd = fd;
	__atomic_store_n(&c->attached, true, __ATOMIC_RELAXED);
	c->client_pos = c->seen_pos;
	if (c->ring_total - c->client_pos > CONSOLE_HISTORY)
		c->client_pos = c->ring_total - CONSOLE_HISTORY;
	counter__add(&c->stats.clients, 1);
}

/* Client input, as much as fits; false when the client left (EOF, reset). */
static bool console_read_client(struct console *c)
{
	ssize_t n = read(c->client_fd, c->buf + c->len, sizeof(c->buf) - c->len);

	if (n > 0) {
		c->len += (size_t)n;
		return true;
	}
	return n < 0 && (errno == EINTR || errno == EAGAIN);
}

/*
 * At stop: the client gets what is left while it takes it, until `deadline`;
 * what it does not take in time is counted as lost to it.
 */
static void console_flush_client(struct console *c, int64_t deadline)
{
	console_take(c);
	while (c->client_fd >= 0 && c->client_pos < c->ring_total) {
		struct pollfd p = { .fd = c->client_fd, .events = POLLOUT };
		int64_t left = deadline - clock__mono_ms();

		if (__atomic_load_n(&c->abandon, __ATOMIC_ACQUIRE) || left <= 0 ||
		    poll(&p, 1, (int)left) <= 0)
			break;
		console_send(c);
	}
	if (c->client_fd >= 0) {
		counter__add(&c->stats.lost_slow_client, c->ring_total - c->client_pos);
		console_detach(c);
	}
}

/* ---- the thread ---- */

static void *console_thread(void *arg)
{
	struct console *c = arg;
	int room_fd = serial__rx_room_fd(c->s), tx_fd = serial__tx_fd(c->s);
	enum console_out out_state = OUT_IDLE;
	bool sock = c->listen_fd >= 0, reading = c->in_fd >= 0;
	int64_t linger_end = 0;

	thread_class__enter(THREAD_CLASS_CONSOLE, "console");
	while (sock || reading || c->len || c->out_fd >= 0) {
		struct pollfd pfd[6] = { { .fd = c->stop_fd, .events = POLLIN } };
		nfds_t n = 1, in = 0, room = 0, out = 0, lis = 0, cli = 0;
		enum console_out was = out_state;
		int timeout = -1;

		if (reading && c->len < sizeof(c->buf)) {
			in = n;
			pfd[n++] = (struct pollfd){ .fd = c->in_fd, .events = POLLIN };
		}
		if (c->len) {
			room = n;
			pfd[n++] = (struct pollfd){ .fd = room_fd, .events = POLLIN };
		}
		if (sock) {
			lis = n;
			pfd[n++] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
		}
		if (c->client_fd >= 0) {
			/* Hangups come without asking; input only while there is room for it. */
			cli = n;
			pfd[n++] = (struct pollfd){ .fd = c->client_fd,
				.events = (short)((c->len < sizeof(c->buf) ? POLLIN : 0) |
						  (c->client_pos < c->ring_total ? POLLOUT : 0)) };
		}
		if (out_state == OUT_IDLE && (sock || c->out_fd >= 0)) {
			out = n;
			pfd[n++] = (struct pollfd){ .fd = tx_fd, .events = POLLIN };
		} else if (out_state == OUT_BLOCKED) {
			out = n;
			pfd[n++] = (struct pollfd){ .fd = c->out_fd, .events = POLLOUT };
		} else if (out_state == OUT_LINGER) {
			int64_t left = linger_end - clock__mono_ms();

			timeout = left > 0 ? (int)left : 0;
		}
		if (poll(pfd, n, timeout) < 0) {
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
		if (cli && (pfd[cli].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !console_read_client(c))
			console_detach(c);
		if (lis && pfd[lis].revents)
			console_accept(c);
		console_deliver(c);
		if (out && pfd[out].revents) {
			if (out_state == OUT_IDLE)
				console_drain(tx_fd);
			out_state = console_out_next(c, sock ? console_take(c) : console_flush(c, 0),
						     false);
		} else if (out_state == OUT_LINGER && clock__mono_ms() >= linger_end) {
			out_state = console_out_next(c, sock ? console_take(c) : console_flush(c, 0),
						     true);
		}
		if (out_state == OUT_LINGER && (was != OUT_LINGER || clock__mono_ms() >= linger_end))
			linger_end = clock__mono_ms() + CONSOLE_LINGER_MS;
		console_send(c);
	}
	/* Stopping: what the guest wrote goes out if the reader takes it in time, else it is counted. */
	if (sock)
		console_flush_client(c, clock__mono_ms() + CONSOLE_FLUSH_MS);
	else if (c->out_fd >= 0)
		console_flush(c, clock__mono_ms() + CONSOLE_FLUSH_MS);
	serial__tx_abandon(c->s);
	return NULL;
}

/* CONSOLE_WAKE_SIGNAL only makes a blocking call return EINTR. */
static void console_wake_handler(int sig)
{
	(void)sig;
}

/* Allocates a console for `s`, not started: no input, no output, no socket. */
static struct console *console_alloc(struct serial *s, const struct vm_ctl *ctl)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->in_fd = c->out_fd = c->listen_fd = c->client_fd = -1;
	c->s = s;
	if (ctl) {
		c->ctl = *ctl;
		c->has_ctl = true;
	}
	return c;
}

/* Starts the thread of `c` (raw mode on a terminal input first); frees `c` on failure. */
static int console_run(struct console **out, struct console *c)
{
	struct sigaction wake = { .sa_handler = console_wake_handler };
	sigset_t all, old;
	int err;

	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0) {
		err = -errno;
		goto err_free;
	}
	if (c->in_fd >= 0 && isatty(c->in_fd)) {
		err = console_tty_raw(c->in_fd);
		if (err)
			goto err_close_stop;
		c->tty = true;
	}

	/* No SA_RESTART: the signal must end a write that hangs. */
	sigemptyset(&wake.sa_mask);
	if (sigaction(CONSOLE_WAKE_SIGNAL, &wake, NULL)) {
		err = -errno;
		goto err_restore_tty;
	}
	/* The thread blocks every signal but its wake-up: SIGINT/SIGTERM stay with the monitor's threads. */
	sigfillset(&all);
	sigdelset(&all, CONSOLE_WAKE_SIGNAL);
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

int console__start(struct console **out, int in_fd, struct serial *s, const struct vm_ctl *ctl)
{
	struct console *c = console_alloc(s, ctl);

	if (!c)
		return -ENOMEM;
	c->in_fd = in_fd;
	c->out_fd = serial__out_fd(s);
	return console_run(out, c);
}

int console__listen(const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (!path[0] || strlen(path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "console socket '%s': empty or longer than %zu bytes",
				path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err__set(e, -EEXIST, "console socket %s: the path exists and is not a "
					"socket", path);
		if (trust__socket_in_use(path))
			return err__set(e, -EADDRINUSE, "console socket %s: another process listens on it",
					path);
		unlink(path); /* a stale socket from an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__set(e, -errno, "console socket %s: %s", path, strerror(errno));
	/* Nobody can connect before listen(2): the mode is 0600 by then. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return err__set(e, err, "console socket %s: cannot bind: %s", path, strerror(-err));
	}
	if (chmod(path, 0600) < 0 || listen(fd, 1) < 0) {
		err = -errno;
		close(fd);
		unlink(path);
		return err__set(e, err, "console socket %s: cannot listen: %s", path, strerror(-err));
	}
	return fd;
}

int console__start_socket(struct console **out, int listen_fd, const char *path, struct serial *s)
{
	struct console *c;

	if (strlen(path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	c = console_alloc(s, NULL);
	if (!c)
		return -ENOMEM;
	c->listen_fd = listen_fd;
	memcpy(c->path, path, strlen(path) + 1);
	return console_run(out, c);
}

void console__get_stats(const struct console *c, struct console_stats *st)
{
	st->clients = counter__get(&c->stats.clients);
	st->replaced = counter__get(&c->stats.replaced);
	st->sent_bytes = counter__get(&c->stats.sent_bytes);
	st->lost_slow_client = counter__get(&c->stats.lost_slow_client);
	st->lost_unattached = counter__get(&c->stats.lost_unattached);
}

void console__stop(struct console *c)
{
	uint64_t one = 1;
	struct timespec until;

	if (!c || c->stopped)
		return;
	c->stopped = true;
	if (write(c->stop_fd, &one, sizeof(one)) < 0) {
		/* cannot fail on a fresh eventfd */
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (CONSOLE_FLUSH_MS + CONSOLE_CANCEL_MS) / 1000;
	until.tv_nsec += (long)((CONSOLE_FLUSH_MS + CONSOLE_CANCEL_MS) % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(c->thread, NULL, &until)) {
		/*
		 * Stuck in a write the reader never takes: no more writes, and the signal
		 * ends the one under way (again, should it land just before the write).
		 */
		__atomic_store_n(&c->abandon, true, __ATOMIC_RELEASE);
		do {
			pthread_kill(c->thread, CONSOLE_WAKE_SIGNAL);
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 20 * 1000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
		} while (pthread_timedjoin_np(c->thread, NULL, &until));
		serial__tx_abandon(c->s);
	}
	if (c->tty)
		console_tty_restore();
	close(c->stop_fd);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
}

void console__destroy(struct console *c)
{
	if (!c)
		return;
	console__stop(c);
	free(c);
}

static void console_device_stop(void *dev)
{
	console__stop(dev);
}

static void console_device_destroy(void *dev)
{
	console__destroy(dev);
}

const struct device_ops console__device_ops = {
	.stop = console_device_stop,
	.destroy = console_device_destroy,
	.save = device__save_nothing,
	.load = device__load_nothing,
};

static void console_device_report(void *dev, FILE *out)
{
	const struct console *c = dev;
	struct console_stats st;

	console__get_stats(c, &st);
	fprintf(out, "socket %s: %llu client%s (%llu replaced), sent %llu bytes, lost %llu to a slow "
		"client, %llu beyond the %u KiB history while nobody was attached", c->path,
		(unsigned long long)st.clients, st.clients == 1 ? "" : "s",
		(unsigned long long)st.replaced, (unsigned long long)st.sent_bytes,
		(unsigned long long)st.lost_slow_client, (unsigned long long)st.lost_unattached,
		CONSOLE_HISTORY >> 10);
}

static void console_device_counters(void *dev, const struct counter_sink *sink)
{
	const struct console *c = dev;
	struct console_stats st;

	console__get_stats(c, &st);
	sink->str(sink->opaque, "socket", c->path);
	sink->str(sink->opaque, "client", __atomic_load_n(&c->attached, __ATOMIC_RELAXED) ?
		  "attached" : "none");
	sink->num(sink->opaque, "clients", st.clients);
	sink->num(sink->opaque, "replaced", st.replaced);
	sink->num(sink->opaque, "sent_bytes", st.sent_bytes);
	sink->num(sink->opaque, "lost_slow_client", st.lost_slow_client);
	sink->num(sink->opaque, "lost_unattached", st.lost_unattached);
	sink->num(sink->opaque, "history_bytes", CONSOLE_HISTORY);
}

const struct device_ops console__socket_device_ops = {
	.stop = console_device_stop,
	.destroy = console_device_destroy,
	.report = console_device_report,
	.counters = console_device_counters,
	.save = device__save_nothing,
	.load = device__load_nothing,
};
