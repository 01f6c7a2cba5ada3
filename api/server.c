/*
 * The API server: libmicrohttpd without a thread of its own (MHD_USE_EPOLL, external
 * polling), run by our "api" thread, which polls MHD's epoll fd and a stop eventfd. A
 * request's body is gathered up to a bound, parsed with jansson, and given to the route's
 * handler; what the handler answers goes out as JSON. libmicrohttpd closes a connection
 * idle past the timeout and leaves connections beyond the limit waiting in the listen
 * backlog until a slot frees, so a client that never sends or never reads holds one slot
 * for a few seconds, never the thread.
 */
#include "api/server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/thread_class.h"
#include "base/trust.h"

#define API_DEFAULT_CONNECTIONS 16
#define API_DEFAULT_TIMEOUT_S 5
#define API_DEFAULT_MAX_BODY (64u << 10)
#define API_POLL_MS 100

struct request;

struct api_server {
	struct api_server_config cfg;
	char path[108];
	int listen_fd;
	int stop_efd;
	int wake_efd;              /* a deferred answer is ready (api_deferred__answer) */
	pthread_mutex_t lock;      /* guards `ready` */
	struct request *ready;     /* deferred requests answered, their connections to resume */
	struct MHD_Daemon *mhd;
	pthread_t thread;
};

/* One request as it arrives: its body, bounded. */
struct request {
	char *body;
	size_t len, cap;
	bool too_big;
	struct api_answer answer;  /* kept for its `after` until the request completes */
	struct api_server *server;
	struct MHD_Connection *conn;
	bool deferred;             /* suspended until another thread answers */
	bool ready;                /* that answer is in `answer` */
	struct request *next;      /* in server->ready */
};

void api_answer__json(struct api_answer *a, int status, json_t *body)
{
	json_decref(a->body);
	a->status = status;
	a->body = body;
}

void api_answer__error(struct api_answer *a, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_answer__json(a, status, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result send_answer(struct MHD_Connection *c, const struct api_answer *a,
				   const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text = a->body ? json_dumps(a->body, JSON_COMPACT) : NULL;

	if (a->body && !text)
		return MHD_NO;
	/* json_dumps allocates with malloc (jansson's default allocator): free() releases it. */
	r = text ? MHD_create_response_from_buffer_with_free_callback(strlen(text), text, free)
		 : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	if (text)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, (unsigned)a->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The route for `method` `url`; else NULL with `allow` listing the path's methods ("" when none). */
static const struct api_route *route_for(const struct api_server *s, const char *method,
					 const char *url, char *allow, size_t allow_len)
{
	size_t off = 0;
	unsigned i;

	allow[0] = '\0';
	for (i = 0; i < s->cfg.nr_routes; i++) {
		const struct api_route *r = &s->cfg.routes[i];

		if (strcmp(r->path, url))
			continue;
		if (!strcmp(r->method, method))
			return r;
		if (off < allow_len)
			off += (size_t)snprintf(allow + off, allow_len - off, "%s%s", off ? ", " : "",
						r->method);
	}
	return NULL;
}

/* Gathers the body; false when it passed the bound (the rest is read and dropped). */
static bool gather(struct api_server *s, struct request *req, const char *data, size_t len)
{
	if (req->too_big || req->len + len > s->cfg.max_body) {
		req->too_big = true;
		return false;
	}
	if (req->len + len + 1 > req->cap) {
		size_t cap = (req->len + len + 1) * 2;
		char *p = realloc(req->body, cap < s->cfg.max_body + 1 ? cap : s->cfg.max_body + 1);

		if (!p) {
			req->too_big = true;
			return false;
		}
		req->body = p;
		req->cap = cap < s->cfg.max_body + 1 ? cap : s->cfg.max_body + 1;
	}
	memcpy(req->body + req->len, data, len);
	req->len += len;
	return true;
}

struct api_deferred *api_answer__defer(struct api_answer *a)
{
	struct request *req = (struct request *)((char *)a - offsetof(struct request, answer));

	json_decref(a->body);
	a->body = NULL;
	req->deferred = true;
	return (struct api_deferred *)req;
}

void api_deferred__answer(struct api_deferred *d, struct api_answer *a)
{
	struct request *req = (struct request *)d;
	struct api_server *s = req->server;

	pthread_mutex_lock(&s->lock);
	req->answer = *a;
	a->body = NULL;
	req->ready = true;
	req->next = s->ready;
	s->ready = req;
	pthread_mutex_unlock(&s->lock);
	eventfd_write(s->wake_efd, 1);
}

/* On the API thread: the deferred requests answered meanwhile go back to libmicrohttpd. */
static void resume_ready(struct api_server *s)
{
	struct request *req;
	eventfd_t n;

	eventfd_read(s->wake_efd, &n);
	pthread_mutex_lock(&s->lock);
	while ((req = s->ready)) {
		s->ready = req->next;
		MHD_resume_connection(req->conn);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Answers the whole request: route, body, handler. */
static enum MHD_Result answer(struct api_server *s, struct MHD_Connection *c,
			      struct request *req, const char *method, const char *url)
{
	struct api_answer *a = &req->answer;
	const struct api_route *route;
	json_t *body = NULL;
	json_error_t jerr;
	char allow[128];

	route = route_for(s, method, url, allow, sizeof(allow));
	if (!route && !allow[0]) {
		api_answer__error(a, MHD_HTTP_NOT_FOUND, "no such path: %s", url);
		return send_answer(c, a, NULL);
	}
	if (!route) {
		api_answer__error(a, MHD_HTTP_METHOD_NOT_ALLOWED, "%s does not take %s (it takes %s)",
				  url, method, allow);
		return send_answer(c, a, allow);
	}
	if (req->too_big) {
		api_answer__error(a, MHD_HTTP_BAD_REQUEST, "%s %s: the body is larger than %zu bytes",
				  method, url, s->cfg.max_body);
		return send_answer(c, a, NULL);
	}
	if (req->len) {
		body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
		if (!body) {
			api_answer__error(a, MHD_HTTP_BAD_REQUEST, "%s %s: the body is not JSON: line "
					  "%d column %d: %s", method, url, jerr.line, jerr.column,
					  jerr.text);
			return send_answer(c, a, NULL);
		}
	}
	a->status = MHD_HTTP_NO_CONTENT;
	req->server = s;
	req->conn = c;
	route->handler(s->cfg.opaque, body, a);
	json_decref(body);
	if (req->deferred) {
		MHD_suspend_connection(c);
		return MHD_YES;
	}
	return send_answer(c, a, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_len, void **con_cls)
{
	struct api_server *s = cls;
	struct request *req = *con_cls;

	(void)version;
	if (!req) {
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*con_cls = req;
		return MHD_YES;
	}
	if (*data_len) {
		gather(s, req, data, *data_len);
		*data_len = 0;
		return MHD_YES;
	}
	if (req->deferred)
		return req->ready ? send_answer(c, &req->answer, NULL) : MHD_YES;
	return answer(s, c, req, method, url);
}

/* The request is over (answered, or the client left): the handler's after-action, then free. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct request *req = *con_cls;

	(void)cls;
	(void)c;
	(void)why;
	if (!req)
		return;
	if (req->answer.after)
		req->answer.after(req->answer.after_opaque);
	json_decref(req->answer.body);
	free(req->body);
	free(req);
	*con_cls = NULL;
}

static void *serve(void *arg)
{
	struct api_server *s = arg;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct pollfd fds[3] = {
		{ .fd = info ? info->epoll_fd : -1, .events = POLLIN },
		{ .fd = s->stop_efd, .events = POLLIN },
		{ .fd = s->wake_efd, .events = POLLIN },
	};

	pthread_setname_np(pthread_self(), "api");
	thread_class__enter(THREAD_CLASS_API, "api");
	for (;;) {
		MHD_UNSIGNED_LONG_LONG ms;
		int timeout;

		/*
		 * Never sleep long: at the connection limit libmicrohttpd takes the listening
		 * socket out of its epoll set and puts it back only in a later MHD_run, once a
		 * slot is free; a waiting client must not wait for an unrelated event.
		 */
		if (MHD_get_timeout(s->mhd, &ms) == MHD_YES && ms < API_POLL_MS)
			timeout = (int)ms;
		else
			timeout = API_POLL_MS;
		if (poll(fds, 3, timeout) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN) {
			/* Deferred answers given before the stop still go out, as far as they can. */
			resume_ready(s);
			MHD_run(s->mhd);
			break;
		}
		if (fds[2].revents & POLLIN)
			resume_ready(s);
		MHD_run(s->mhd);
	}
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
	return NULL;
}

/* Binds and listens on `path` (0600), refusing a live socket there and replacing a stale one. */
static int listen_unix(struct api_server *s, struct err *e)
{
	const struct api_server_config *cfg = &s->cfg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, err;

	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "API socket %s: path longer than %zu bytes",
				cfg->socket_path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, cfg->socket_path);
	if (trust__socket_in_use(cfg->socket_path))
		return err__set(e, -EADDRINUSE, "API socket %s: a server answers there already (another "
				"rtvmm?): refusing to replace it", cfg->socket_path);
	if (unlink(cfg->socket_path) && errno != ENOENT)
		return err__set(e, -errno, "API socket %s: cannot remove the stale socket: %s",
				cfg->socket_path, strerror(errno));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err__set(e, -errno, "API socket %s: socket: %s", cfg->socket_path, strerror(errno));
	/* Created 0600 at once (umask around bind): no moment where others may connect. */
	old = umask(0177);
	err = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (err) {
		err__set(e, err, "API socket %s: bind: %s", cfg->socket_path, strerror(-err));
		goto err_close;
	}
	if (cfg->owner != (uid_t)-1 && chown(cfg->socket_path, cfg->owner, cfg->group)) {
		err = err__set(e, -errno, "API socket %s: cannot give it to uid %u: %s",
			       cfg->socket_path, (unsigned)cfg->owner, strerror(errno));
		goto err_unlink;
	}
	if (listen(fd, 16)) {
		err = err__set(e, -errno, "API socket %s: listen: %s", cfg->socket_path,
			       strerror(errno));
		goto err_unlink;
	}
	s->listen_fd = fd;
	return 0;

err_unlink:
	unlink(cfg->socket_path);
err_close:
	close(fd);
	return err;
}

int api_server__start(struct api_server **out, const struct api_server_config *cfg,
		      struct err *e)
{
	struct api_server *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return err__set(e, -ENOMEM, "API socket %s: out of memory", cfg->socket_path);
	s->cfg = *cfg;
	if (!s->cfg.max_connections)
		s->cfg.max_connections = API_DEFAULT_CONNECTIONS;
	if (!s->cfg.timeout_s)
		s->cfg.timeout_s = API_DEFAULT_TIMEOUT_S;
	if (!s->cfg.max_body)
		s->cfg.max_body = API_DEFAULT_MAX_BODY;
	snprintf(s->path, sizeof(s->path), "%s", cfg->socket_path);
	s->cfg.socket_path = s->path;
	err = listen_unix(s, e);
	if (err)
		goto err_free;
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_efd < 0 || s->wake_efd < 0) {
		err = err__set(e, -errno, "API socket %s: eventfd: %s", s->path, strerror(errno));
		goto err_close_efd;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
				  on_request, s,
				  MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
				  MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections,
				  MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_END);
	if (!s->mhd) {
		err = err__set(e, -EIO, "API socket %s: libmicrohttpd refused to serve it", s->path);
		goto err_close_efd;
	}
	/* libmicrohttpd owns the listening socket now (it closes it when stopped). */
	s->listen_fd = -1;
	err = -pthread_create(&s->thread, NULL, serve, s);
	if (err) {
		err__set(e, err, "API socket %s: cannot start the api thread: %s", s->path,
			 strerror(-err));
		goto err_stop_mhd;
	}
	*out = s;
	return 0;

err_stop_mhd:
	MHD_stop_daemon(s->mhd);
err_close_efd:
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	if (s->wake_efd >= 0)
		close(s->wake_efd);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	unlink(s->path);
err_free:
	free(s);
	return err;
}

void api_server__stop(struct api_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (write(s->stop_efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		pthread_join(s->thread, NULL);
	close(s->stop_efd);
	close(s->wake_efd);
	pthread_mutex_destroy(&s->lock);
	unlink(s->path);
	free(s);
}
