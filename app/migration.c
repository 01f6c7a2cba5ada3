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
#include <unistd.h>

#include "app/builder.h"
#include "base/thread_class.h"

/* How often a wait for the migration source looks for a stop signal. */
#define ACCEPT_SIGNAL_POLL_MS 100

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

/* One outgoing migration handed to the worker. */
struct send_job {
	struct vm *vm;
	const char *url;
	const struct migrate_params *p;
	struct migrate_stats *st;
	struct err *e;
	int err;
	bool done;
};

struct migration_worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct send_job *job;      /* the one under way, NULL: idle */
	bool quit;
};

static void run_job(struct send_job *j)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd;

	j->err = migration__parse_url(j->url, &sa, &len, j->e);
	if (j->err)
		return;
	fd = tcp_socket(sa.ss_family, SOCK_NONBLOCK);
	j->err = fd < 0 ? -errno : connect_within(fd, (struct sockaddr *)&sa, len, CONNECT_TIMEOUT_MS);
	if (j->err) {
		err__set(j->e, j->err, "%s: %s", j->url, j->err == -ETIMEDOUT ?
			 "no answer within 10 s" : strerror(-j->err));
		if (fd >= 0)
			close(fd);
		return;
	}
	j->err = migrate__send(j->vm, fd, j->p, j->st, j->e);
	close(fd);
}

static void *worker(void *arg)
{
	struct migration_worker *w = arg;

	thread_class__enter(THREAD_CLASS_MIGRATION, "migrate");
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->quit && (!w->job || w->job->done))
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->quit)
			break;
		pthread_mutex_unlock(&w->lock);
		run_job(w->job);
		pthread_mutex_lock(&w->lock);
		w->job->done = true;
		pthread_cond_broadcast(&w->cond);
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
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	err = pthread_create(&w->thread, NULL, worker, w);
	if (err) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -err;
	}
	pthread_setname_np(w->thread, "migrate");
	*out = w;
	return 0;
}

void migration__stop_worker(struct migration_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int migration__send(struct migration_worker *w, struct vm *vm, const char *url,
		    const struct migrate_params *p, struct migrate_stats *st, struct err *e)
{
	struct send_job j = { .vm = vm, .url = url, .p = p, .st = st, .e = e };

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&w->lock);
	if (w->job && !w->job->done) {
		pthread_mutex_unlock(&w->lock);
		return err__set(e, -EBUSY, "a migration is already under way");
	}
	w->job = &j;
	pthread_cond_broadcast(&w->cond);
	while (!j.done)
		pthread_cond_wait(&w->cond, &w->lock);
	w->job = NULL;
	pthread_mutex_unlock(&w->lock);
	return j.err;
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
