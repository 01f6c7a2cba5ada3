#include "app/migration.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "app/builder.h"
#include "base/clock.h"
#include "base/thread_class.h"

/* How often a wait for the migration source looks for a stop signal. */
#define ACCEPT_SIGNAL_POLL_MS 100
/* A peer has this long to send its whole hello, or it is dropped; looked at this often. */
#define HELLO_TIMEOUT_MS 10000
#define HELLO_POLL_MS 20

int migration__parse_url(const char *url, struct sockaddr_storage *sa, socklen_t *len,
			 struct err *e)
{
	char host[64];
	const char *p, *port;
	unsigned long n;
	char *end;

	memset(sa, 0, sizeof(*sa));
	if (strncmp(url, "tcp:", 4))
		return err__set(e, -EINVAL, "'%s': expected tcp:HOST:PORT", url);
	p = url + 4;
	if (*p == '[') {
		const char *close = strchr(p, ']');

		if (!close || close[1] != ':' || (size_t)(close - p - 1) >= sizeof(host))
			return err__set(e, -EINVAL, "'%s': expected tcp:[IPV6]:PORT", url);
		snprintf(host, sizeof(host), "%.*s", (int)(close - p - 1), p + 1);
		port = close + 2;
	} else {
		const char *colon = strrchr(p, ':');

		if (!colon || (size_t)(colon - p) >= sizeof(host))
			return err__set(e, -EINVAL, "'%s': expected tcp:HOST:PORT", url);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
		port = colon + 1;
	}
	errno = 0;
	n = strtoul(port, &end, 10);
	if (!*port || *end || errno || n == 0 || n > 65535)
		return err__set(e, -EINVAL, "'%s': port '%s' is not 1..65535", url, port);
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
		((struct sockaddr_in *)sa)->sin_family = AF_INET;
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)n);
		*len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)n);
		*len = sizeof(struct sockaddr_in6);
	} else {
		return err__set(e, -EINVAL, "'%s': host '%s' is not a numeric IPv4 or [IPv6] address "
				"(rtvmm looks up no names)", url, host);
	}
	return 0;
}

/* A stream socket with no Nagle delay (small records go out at once). */
static int tcp_socket(int family, int flags)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0), one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

#define CONNECT_TIMEOUT_MS 10000   /* an unreachable destination: TCP's own would be ~2 min */

/* connect() on a non-blocking socket, waiting at most `timeout_ms`; 0 or -errno. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t elen = sizeof(int);
	int n, soerr = 0;

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -errno : -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0)
		return -errno;
	return -soerr;
}

/* The one outgoing migration, under way or the last. */
struct send_job {
	struct vm *vm;
	char url[128];
	struct sockaddr_storage sa;    /* url's address */
	socklen_t sa_len;
	struct migrate_params p;
	migration_done_fn done;
	void *opaque;
	bool cancel;               /* the operator asked (migration__cancel) */
	const char *state;         /* as migration_status.state */
	uint64_t started_ns, ended_ns;
	char error[512];
};

struct migration_worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct send_job job;
	int cancel_efd;            /* the job's migrate_params.cancel_fd (made before the sandbox) */
	bool pending;              /* `job` waits for the thread */
	bool quit;
};

static int run_job(struct send_job *j, struct migrate_stats *st, struct err *e)
{
	int fd, err;

	fd = tcp_socket(j->sa.ss_family, SOCK_NONBLOCK);
	err = fd < 0 ? -errno : connect_within(fd, (struct sockaddr *)&j->sa, j->sa_len,
					       CONNECT_TIMEOUT_MS);
	if (err) {
		err__set(e, err, "%s: %s", j->url, err == -ETIMEDOUT ?
			 "no answer within 10 s" : strerror(-err));
		if (fd >= 0)
			close(fd);
		return err;
	}
	err = migrate__send(j->vm, fd, &j->p, st, e);
	close(fd);
	return err;
}

static void *worker(void *arg)
{
	struct migration_worker *w = arg;

	thread_class__enter(THREAD_CLASS_MIGRATION, "migrate");
	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct migrate_stats st = { 0 };
		struct err e = { 0 };
		int err;

		while (!w->quit && !w->pending)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->pending)
			break;
		pthread_mutex_unlock(&w->lock);
		err = run_job(&w->job, &st, &e);
		pthread_mutex_lock(&w->lock);
		w->job.ended_ns = clock__mono_ns();
		w->job.state = !err ? "succeeded" : err == -ECANCELED && w->job.cancel ? "cancelled" :
			       "failed";
		snprintf(w->job.error, sizeof(w->job.error), "%s", err ? e.msg : "");
		/* Still pending while it answers: no new job replaces this one meanwhile. */
		pthread_mutex_unlock(&w->lock);
		w->job.done(w->job.opaque, err, &st, &e);
		pthread_mutex_lock(&w->lock);
		w->pending = false;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int migration__start_worker(struct migration_worker **out)
{
	struct migration_worker *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->job.state = "none";
	w->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->cancel_efd < 0) {
		err = -errno;
		free(w);
		return err;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	err = pthread_create(&w->thread, NULL, worker, w);
	if (err) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		close(w->cancel_efd);
		free(w);
		return -err;
	}
	pthread_setname_np(w->thread, "migrate");
	*out = w;
	return 0;
}

void migration__quit(struct migration_worker *w)
{
	bool joined;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	joined = w->quit;
	w->quit = true;
	if (w->pending) {
		w->job.cancel = true;
		eventfd_write(w->cancel_efd, 1);
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (!joined)
		pthread_join(w->thread, NULL);
}

void migration__stop_worker(struct migration_worker *w)
{
	if (!w)
		return;
	migration__quit(w);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	close(w->cancel_efd);
	free(w);
}

int migration__start_send(struct migration_worker *w, struct vm *vm, const char *url,
			  const struct migrate_params *p, migration_done_fn done, void *opaque,
			  struct err *e)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int err = migration__parse_url(url, &sa, &len, e);

	if (err)
		return err;
	if (strlen(url) >= sizeof(w->job.url))
		return err__set(e, -EINVAL, "'%s': longer than %zu bytes", url, sizeof(w->job.url) - 1);
	pthread_mutex_lock(&w->lock);
	if (w->pending || w->quit) {
		pthread_mutex_unlock(&w->lock);
		return err__set(e, -EBUSY, w->quit ? "rtvmm is stopping" :
				"a migration is already under way");
	}
	w->job = (struct send_job){ .vm = vm, .sa = sa, .sa_len = len, .p = *p, .done = done,
				    .opaque = opaque, .state = "active",
				    .started_ns = clock__mono_ns() };
	snprintf(w->job.url, sizeof(w->job.url), "%s", url);
	/* A cancel that came after the last migration ended is not this one's. */
	eventfd_read(w->cancel_efd, &(eventfd_t){ 0 });
	w->job.p.cancel_fd = w->cancel_efd;
	w->pending = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

bool migration__cancel(struct migration_worker *w)
{
	bool active;

	pthread_mutex_lock(&w->lock);
	active = w->pending;
	if (active) {
		w->job.cancel = true;
		eventfd_write(w->cancel_efd, 1);
	}
	pthread_mutex_unlock(&w->lock);
	return active;
}

void migration__status(struct migration_worker *w, struct migration_status *out)
{
	pthread_mutex_lock(&w->lock);
	out->state = w->job.state;
	snprintf(out->url, sizeof(out->url), "%s", w->job.url);
	snprintf(out->error, sizeof(out->error), "%s", w->job.error);
	out->elapsed_ns = !w->job.started_ns ? 0 :
			  (w->pending ? clock__mono_ns() : w->job.ended_ns) - w->job.started_ns;
	pthread_mutex_unlock(&w->lock);
}

int migration__listen(struct migration_incoming *in, const char *url, struct err *e)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int one = 1, err;

	in->listen_fd = in->fd = -1;
	err = migration__parse_url(url, &sa, &len, e);
	if (err)
		return err;
	in->listen_fd = tcp_socket(sa.ss_family, 0);
	if (in->listen_fd < 0)
		return err__set(e, -errno, "--incoming %s: %s", url, strerror(errno));
	setsockopt(in->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(in->listen_fd, (struct sockaddr *)&sa, len) < 0 || listen(in->listen_fd, 1) < 0)
		return err__set(e, -errno, "--incoming %s: %s", url, strerror(errno));
	return 0;
}

/* "ADDR:PORT" of the peer on `fd`, for a log line. */
static const char *peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0) {
		if (sa.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		}
	}
	snprintf(buf, len, "%s:%u", host, port);
	return buf;
}

/*
 * Waits HELLO_TIMEOUT_MS in all for the peer's whole hello, looking for stop
 * signals: 0, -ENOMSG (why in `e`: the peer is dropped) or -EINTR.
 */
static int await_hello(int fd, struct vm *vm, struct err *e)
{
	uint64_t end = clock__mono_ns() + HELLO_TIMEOUT_MS * 1000000ull;

	for (;;) {
		int ready, err = builder__stop_signal(vm, "waiting for the migration source", e);

		if (err)
			return err;
		ready = migrate__hello_ready(fd);
		if (ready > 0)
			return 0;
		if (ready < 0)
			return err__set(e, -ENOMSG, "not an rtvmm migration source: it closed the "
					"connection");
		if (clock__mono_ns() >= end)
			return err__set(e, -ENOMSG, "not an rtvmm migration source: no hello within "
					"%d s", HELLO_TIMEOUT_MS / 1000);
		/* A sleep, not a poll for input: a peer that sent part of it stays readable. */
		poll(NULL, 0, HELLO_POLL_MS);
	}
}

int migration__receive(struct migration_incoming *in, struct vm *vm, struct err *e)
{
	char peer[INET6_ADDRSTRLEN + 8];
	int err;

	for (;;) {
		struct pollfd p = { .fd = in->listen_fd, .events = POLLIN };

		err = builder__stop_signal(vm, "waiting for the migration source", e);
		if (err)
			return err;
		if (poll(&p, 1, ACCEPT_SIGNAL_POLL_MS) <= 0)
			continue;
		in->fd = accept4(in->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (in->fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return err__set(e, -errno, "accepting the migration source: %s", strerror(errno));
		}
		fprintf(stderr, "rtvmm: --incoming: a connection from %s\n",
			peer_name(in->fd, peer, sizeof(peer)));
		err = await_hello(in->fd, vm, e);
		if (!err)
			err = migrate__receive(vm, in->fd, &in->st, e);
		if (err != -ENOMSG)
			break;
		fprintf(stderr, "rtvmm: --incoming: dropped the connection from %s (%s); still "
			"waiting for the source\n", peer, e->msg);
		close(in->fd);
		in->fd = -1;
	}
	close(in->listen_fd);
	in->listen_fd = -1;
	in->answered = err != 0;   /* a failed receive told the source, if it could */
	return err;
}

int migration__ready(void *opaque)
{
	struct migration_incoming *in = opaque;
	int err = migrate__confirm(in->fd);

	in->answered = true;
	if (err)
		fprintf(stderr, "rtvmm: the migration source cannot be told the guest runs here (%s): "
			"stopping, it keeps its guest\n", strerror(-err));
	else
		fprintf(stderr, "rtvmm: incoming migration: placement proven, the guest runs here now\n");
	return err;
}

void migration__close(struct migration_incoming *in, const char *why)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "the destination stopped before its guest ran: %s",
		 why ? why : "see its log");
	if (in->fd >= 0 && !in->answered)
		migrate__refuse(in->fd, msg);
	if (in->listen_fd >= 0)
		close(in->listen_fd);
	if (in->fd >= 0)
		close(in->fd);
	in->listen_fd = in->fd = -1;
}
