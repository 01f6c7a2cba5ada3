/*
 * The API client: one HTTP/1.1 request over a unix socket, `Connection: close`, the answer read
 * to its Content-Length (or to the server's close when it sends none), all within one deadline
 * kept with poll.
 */
#include "api/client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* An answer larger than this is refused as malformed: rtvmm's answers are a few KiB. */
#define API_CLIENT_MAX_ANSWER (16u << 20)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until `fd` is ready for `events` or the deadline passes: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int connect_unix(const char *path, int64_t deadline, int *fd_out, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "API socket %s: path longer than %zu bytes", path,
				sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err__set(e, -errno, "API socket %s: socket: %s", path, strerror(errno));
	/* A unix socket connects at once or fails; EAGAIN (the backlog is full) is retried. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN && now_ms() < deadline) {
			poll(NULL, 0, 10);
			continue;
		}
		if (r == -EAGAIN)
			err__set(e, -ETIMEDOUT, "API socket %s: the server accepted no connection within "
				 "the timeout", path);
		else if (r == -ENOENT)
			err__set(e, r, "API socket %s: no such socket (is rtvmm running with "
				 "--api-socket?)", path);
		else if (r == -ECONNREFUSED)
			err__set(e, r, "API socket %s: nobody serves it (a stale socket: rtvmm has "
				 "exited?)", path);
		else
			err__set(e, r, "API socket %s: connect: %s", path, strerror(-r));
		close(fd);
		return e->code;
	}
	*fd_out = fd;
	return 0;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = wait_fd(fd, POLLOUT, deadline);
			if (r)
				return r;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Grows `*buf` (of `*cap`) to hold at least `need` bytes. */
static int reserve(char **buf, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 4096;
	char *p;

	while (c < need)
		c *= 2;
	if (c == *cap)
		return 0;
	p = realloc(*buf, c);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = c;
	return 0;
}

/*
 * Parses the head of an answer (`head`, NUL-terminated, without the blank line): the status and
 * the Content-Length (-1: none). Returns 0 or a message saying what is malformed.
 */
static const char *parse_head(char *head, int *status, long long *content_length)
{
	char *save = NULL, *line, *end;
	long v;

	line = strtok_r(head, "\r\n", &save);
	if (!line || strncmp(line, "HTTP/1.", 7) != 0 || !line[7] || line[8] != ' ')
		return "the status line is not HTTP/1.x";
	errno = 0;
	v = strtol(line + 9, &end, 10);
	if (errno || end != line + 12 || v < 100 || v > 599 || (*end && *end != ' '))
		return "the status code is not three digits in 100..599";
	*status = (int)v;
	*content_length = -1;
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		char *colon = strchr(line, ':');

		if (!colon)
			return "a header line has no ':'";
		*colon = '\0';
		if (!strcasecmp(line, "Transfer-Encoding"))
			return "the answer is chunked (rtvmm's client reads Content-Length bodies only)";
		if (!strcasecmp(line, "Content-Length")) {
			long long n;
			char *p = colon + 1;

			while (*p == ' ' || *p == '\t')
				p++;
			errno = 0;
			n = strtoll(p, &end, 10);
			while (*end == ' ' || *end == '\t')
				end++;
			if (errno || end == p || *end || n < 0 || n > API_CLIENT_MAX_ANSWER)
				return "Content-Length is not a number within the client's bound";
			*content_length = n;
		}
	}
	return NULL;
}

int api_client__call(const char *socket_path, const char *method, const char *uri,
		     const char *body, int timeout_ms, struct api_reply *out, struct err *e)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	size_t body_len = body ? strlen(body) : 0;
	char *req = NULL, *buf = NULL, *head_end = NULL;
	size_t cap = 0, len = 0, head_len = 0;
	long long content_length = -1;
	const char *bad;
	int fd = -1, r, status = 0, n;

	*out = (struct api_reply){ 0 };
	r = connect_unix(socket_path, deadline, &fd, e);
	if (r)
		return r;
	n = body ? asprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			    method, uri, body_len, body)
		 : asprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
			    method, uri);
	if (n < 0) {
		r = err__set(e, -ENOMEM, "API request %s %s: out of memory", method, uri);
		goto err_close;
	}
	r = send_all(fd, req, (size_t)n, deadline);
	free(req);
	if (r) {
		err__set(e, r, "API socket %s: sending %s %s: %s", socket_path, method, uri,
			 r == -ETIMEDOUT ? "timed out" : strerror(-r));
		goto err_close;
	}
	for (;;) {
		ssize_t got;

		if (head_end && content_length >= 0 && len - head_len >= (size_t)content_length)
			break;
		r = reserve(&buf, &cap, len + 4096 + 1);
		if (r) {
			err__set(e, r, "API socket %s: out of memory for the answer", socket_path);
			goto err_free;
		}
		got = recv(fd, buf + len, cap - len - 1, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				r = err__set(e, -errno, "API socket %s: reading the answer to %s %s: %s",
					     socket_path, method, uri, strerror(errno));
				goto err_free;
			}
			r = wait_fd(fd, POLLIN, deadline);
			if (r) {
				err__set(e, r, "API socket %s: no %sanswer to %s %s within %d ms",
					 socket_path, len ? "complete " : "", method, uri, timeout_ms);
				goto err_free;
			}
			continue;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		buf[len] = '\0';
		if (len > API_CLIENT_MAX_ANSWER + 65536) {
			r = err__set(e, -EMSGSIZE, "API socket %s: the answer to %s %s exceeds %u bytes",
				     socket_path, method, uri, API_CLIENT_MAX_ANSWER);
			goto err_free;
		}
		if (!head_end && (head_end = strstr(buf, "\r\n\r\n"))) {
			head_len = (size_t)(head_end - buf) + 4;
			*head_end = '\0';
			bad = parse_head(buf, &status, &content_length);
			if (bad) {
				r = err__set(e, -EPROTO, "API socket %s: malformed answer to %s %s: %s",
					     socket_path, method, uri, bad);
				goto err_free;
			}
		}
	}
	if (!head_end) {
		r = err__set(e, -EPROTO, "API socket %s: malformed answer to %s %s: %s", socket_path,
			     method, uri, len ? "no end of headers before the connection closed"
					      : "the server closed the connection without answering");
		goto err_free;
	}
	if (content_length >= 0 && len - head_len < (size_t)content_length) {
		r = err__set(e, -EPROTO, "API socket %s: malformed answer to %s %s: body of %zu bytes, "
			     "Content-Length says %lld", socket_path, method, uri, len - head_len,
			     content_length);
		goto err_free;
	}
	out->len = content_length >= 0 ? (size_t)content_length : len - head_len;
	memmove(buf, buf + head_len, out->len);
	buf[out->len] = '\0';
	out->body = buf;
	out->status = status;
	close(fd);
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return r;
}

void api_reply__free(struct api_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}
