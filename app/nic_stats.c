#include "app/nic_stats.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"

#define FETCH_CHUNK 65536

/* Connects without blocking: a unix socket connects at once or not at all. */
static int connect_unix(const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "stats socket %s: longer than a unix socket path",
				path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__set(e, -errno, "stats socket %s: socket: %s", path, strerror(errno));
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return fd;
	err = -errno;
	close(fd);
	if (err == -EAGAIN)
		return err__set(e, err, "stats socket %s: not accepting connections (its backlog is "
				"full)", path);
	return err__set(e, err, "stats socket %s: connect: %s (is rtvmm-dataplane running with "
			"this --stats-socket?)", path, strerror(-err));
}

int nic_stats__fetch(const char *path, int timeout_ms, size_t max, char **text, size_t *len,
		     struct err *e)
{
	long long deadline = clock__mono_ms() + timeout_ms;
	size_t used = 0, cap = 0;
	char *buf = NULL;
	int fd, rc = 0;

	fd = connect_unix(path, e);
	if (fd < 0)
		return fd;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - clock__mono_ms();
		ssize_t n;

		if (used == cap) {      /* cap <= max here: more than max bytes ended the loop */
			size_t want = cap + FETCH_CHUNK > max + 1 ? max + 1 : cap + FETCH_CHUNK;
			char *nb = realloc(buf, want + 1);

			if (!nb) {
				rc = err__set(e, -ENOMEM, "stats socket %s: out of memory", path);
				break;
			}
			buf = nb;
			cap = want;
		}
		if (left <= 0) {
			rc = err__set(e, -ETIMEDOUT, "stats socket %s: no complete reply within %d ms",
				      path, timeout_ms);
			break;
		}
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err__set(e, -errno, "stats socket %s: poll: %s", path, strerror(errno));
			break;
		}
		if (!n)
			continue;
		n = read(fd, buf + used, cap - used);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			rc = err__set(e, -errno, "stats socket %s: read: %s", path, strerror(errno));
			break;
		}
		if (!n)
			break;
		used += (size_t)n;
		if (used > max) {
			rc = err__set(e, -EFBIG, "stats socket %s: the reply exceeds %zu bytes", path,
				      max);
			break;
		}
	}
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	if (!buf)
		buf = malloc(1);
	if (!buf)
		return err__set(e, -ENOMEM, "stats socket %s: out of memory", path);
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
}

/* The port's counter `key` as a count: a JSON integer >= 0, else false. */
static bool count(const json_t *port, const char *key, json_int_t *v)
{
	const json_t *j = json_object_get(port, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*v = json_integer_value(j);
	return true;
}

/* Guest's name <- the port's: what the port sent is what the guest received. */
static const struct {
	const char *guest, *port;
} counter_map[] = {
	{ "rx_packets", "TX-packets" }, { "rx_bytes", "TX-bytes" }, { "rx_dropped", "TX-dropped" },
	{ "tx_packets", "RX-packets" }, { "tx_bytes", "RX-bytes" }, { "tx_dropped", "RX-dropped" },
};

static int port_json(const json_t *port, size_t idx, json_t **out, struct err *e)
{
	const json_t *link = json_object_get(port, "link"), *name = json_object_get(port, "name");
	json_int_t v, nr;
	json_t *o;
	size_t i;

	if (!count(port, "port", &nr))
		return err__set(e, -EPROTO, "ports[%zu].port: not a port number", idx);
	if (link && (!json_is_string(link) || (strcmp(json_string_value(link), "up") &&
					      strcmp(json_string_value(link), "down"))))
		return err__set(e, -EPROTO, "ports[%zu].link: neither \"up\" nor \"down\"", idx);
	if (name && !json_is_string(name))
		return err__set(e, -EPROTO, "ports[%zu].name: not a string", idx);
	o = json_pack("{s:s, s:I}", "source", "rtvmm-dataplane", "port", nr);
	if (!o)
		return err__set(e, -ENOMEM, "out of memory");
	if (name)
		json_object_set_new(o, "port_name", json_string(json_string_value(name)));
	if (link)
		json_object_set_new(o, "link", json_string(json_string_value(link)));
	for (i = 0; i < sizeof(counter_map) / sizeof(counter_map[0]); i++) {
		if (!count(port, counter_map[i].port, &v)) {
			json_decref(o);
			return err__set(e, -EPROTO, "ports[%zu].%s: not a count (an integer >= 0)", idx,
					counter_map[i].port);
		}
		json_object_set_new(o, counter_map[i].guest, json_integer(v));
	}
	*out = o;
	return 0;
}

int nic_stats__port(const char *text, size_t len, const char *nic_socket, json_t **out,
		    struct err *e)
{
	const json_t *ports, *p, *match = NULL, *target;
	size_t i, at = 0;
	json_error_t je;
	json_t *doc;
	int rc;

	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return err__set(e, -EPROTO, "not a stats document: %s (line %d)", je.text, je.line);
	ports = json_object_get(doc, "ports");
	if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "version")) ||
	    json_integer_value(json_object_get(doc, "version")) != 1 || !json_is_array(ports)) {
		json_decref(doc);
		return err__set(e, -EPROTO, "not a stats document of rtvmm-dataplane (version 1 "
				"with a ports list)");
	}
	json_array_foreach(ports, i, p) {
		target = json_object_get(p, "target");
		if (!json_is_object(p) || !json_is_string(target)) {
			json_decref(doc);
			return err__set(e, -EPROTO, "ports[%zu]: not a port with a target", i);
		}
		if (strcmp(json_string_value(target), nic_socket))
			continue;
		if (match) {
			json_decref(doc);
			return err__set(e, -EPROTO, "ports[%zu] and ports[%zu] both serve %s", at, i,
					nic_socket);
		}
		match = p;
		at = i;
	}
	if (!match) {
		rc = err__set(e, -ENOENT, "no port of the dataplane serves %s (%zu ports)",
			      nic_socket, json_array_size(ports));
		json_decref(doc);
		return rc;
	}
	rc = port_json(match, at, out, e);
	json_decref(doc);
	return rc;
}

/* A fetched document or why there is none, for one stats socket. */
struct fetched {
	const char *path;
	char *text;
	size_t len;
	struct err e;
	int rc;
};

static json_t *error_json(const char *path, const char *msg)
{
	return json_pack("{s:s, s:s}", "stats_socket", path, "error", msg);
}

void nic_stats__backends(const char *const *stats, const char *const *nic_sockets, unsigned n,
			 int timeout_ms, json_t **out)
{
	struct fetched *f = calloc(n ? n : 1, sizeof(*f));
	unsigned i, j, nr = 0;

	for (i = 0; i < n; i++) {
		struct err e = { 0 };
		json_t *port;

		out[i] = NULL;
		if (!stats[i]) {
			out[i] = json_null();
			continue;
		}
		if (!f) {
			out[i] = error_json(stats[i], "out of memory");
			continue;
		}
		for (j = 0; j < nr && strcmp(f[j].path, stats[i]); j++)
			;
		if (j == nr) {
			f[nr].path = stats[i];
			f[nr].rc = nic_stats__fetch(stats[i], timeout_ms, NIC_STATS_MAX_BYTES,
						    &f[nr].text, &f[nr].len, &f[nr].e);
			nr++;
		}
		if (f[j].rc) {
			out[i] = error_json(stats[i], f[j].e.msg);
			continue;
		}
		if (nic_stats__port(f[j].text, f[j].len, nic_sockets[i], &port, &e)) {
			char msg[sizeof(e.msg) + 160];

			snprintf(msg, sizeof(msg), "stats socket %s: %s", stats[i], e.msg);
			out[i] = error_json(stats[i], msg);
			continue;
		}
		json_object_set_new(port, "stats_socket", json_string(stats[i]));
		out[i] = port;
	}
	for (j = 0; j < nr; j++)
		free(f[j].text);
	free(f);
}
