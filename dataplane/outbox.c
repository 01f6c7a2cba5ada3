#include "dataplane/outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void outbox__init(struct outbox *o, size_t max_bytes, double timeout_s)
{
	unsigned i;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < OUTBOX_CLIENTS; i++)
		o->c[i].fd = -1;
	o->max_bytes = max_bytes;
	o->timeout_s = timeout_s;
}

bool outbox__has_room(const struct outbox *o)
{
	unsigned i;

	for (i = 0; i < OUTBOX_CLIENTS; i++)
		if (o->c[i].fd < 0)
			return true;
	return false;
}

static void drop(struct outbox_client *c)
{
	close(c->fd);
	free(c->data);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Writes what the socket takes; true when the client is done (all sent, or the peer is gone). */
static int write_some(struct outbox_client *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : 1;
	}
	return 1;
}

int outbox__add(struct outbox *o, int fd, char *data, size_t len, double now)
{
	struct outbox_client *c = NULL;
	unsigned i;

	for (i = 0; i < OUTBOX_CLIENTS && !c; i++)
		if (o->c[i].fd < 0)
			c = &o->c[i];
	if (!c || len > o->max_bytes) {
		outbox__refuse(o, fd);
		free(data);
		return c ? -EMSGSIZE : -ENOSPC;
	}
	*c = (struct outbox_client){ .fd = fd, .data = data, .len = len,
				     .deadline = now + o->timeout_s };
	if (write_some(c))
		drop(c);
	return 0;
}

void outbox__refuse(struct outbox *o, int fd)
{
	close(fd);
	o->refused++;
}

unsigned outbox__pollfds(const struct outbox *o, struct pollfd *p)
{
	unsigned i, n = 0;

	for (i = 0; i < OUTBOX_CLIENTS; i++)
		if (o->c[i].fd >= 0)
			p[n++] = (struct pollfd){ .fd = o->c[i].fd, .events = POLLOUT };
	return n;
}

void outbox__flush(struct outbox *o, double now)
{
	unsigned i;

	for (i = 0; i < OUTBOX_CLIENTS; i++) {
		struct outbox_client *c = &o->c[i];

		if (c->fd < 0)
			continue;
		if (write_some(c)) {
			drop(c);
		} else if (now >= c->deadline) {
			o->expired++;
			drop(c);
		}
	}
}

void outbox__close_all(struct outbox *o)
{
	unsigned i;

	for (i = 0; i < OUTBOX_CLIENTS; i++)
		if (o->c[i].fd >= 0)
			drop(&o->c[i]);
}
