/* vhost-user frontend: message framing, fd passing and strict reply checks. */
#include "vmm/virtio/vhost_user.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/trust.h"

/* Wire layouts (native byte order, naturally aligned: no packing needed). */
struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

struct vu_state {
	uint32_t index;
	uint32_t num;
};

struct vu_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_mem {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region regions[VHOST_USER_MAX_REGIONS];
};

_Static_assert(sizeof(struct vu_hdr) == VHOST_USER_HDR_SIZE, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vu_state) == 8, "vring state is 8 bytes");
_Static_assert(sizeof(struct vu_addr) == 40, "vring address is 40 bytes");
_Static_assert(sizeof(struct vu_region) == 32, "memory region is 32 bytes");
_Static_assert(sizeof(struct vu_mem) == 8 + VHOST_USER_MAX_REGIONS * 32, "memory table is 264 bytes");
_Static_assert(sizeof(struct vu_mem) <= VHOST_USER_MAX_PAYLOAD, "the memory table fits a payload");

/* GET_CONFIG's payload both ways: the window, then its bytes. */
struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VHOST_USER_MAX_CONFIG];
};

_Static_assert(offsetof(struct vu_config, data) == VHOST_USER_CONFIG_HDR_SIZE,
	       "config header is 12 bytes");

/* GET/SET_INFLIGHT_FD's payload (naturally aligned: 24 bytes with its tail padding). */
struct vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

_Static_assert(sizeof(struct vu_inflight) == 24, "inflight description is 24 bytes");

/* SET_LOG_BASE's payload (the fd beside it). */
struct vu_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

_Static_assert(sizeof(struct vu_log) == 16, "log description is 16 bytes");

static const char *const request_names[] = {
	[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
	[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
	[VHOST_USER_SET_OWNER] = "SET_OWNER",
	[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
	[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
	[VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
	[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
	[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
	[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
	[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
	[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
	[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
	[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
	[VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
};

const char *vhost_user__request_name(uint32_t request)
{
	if (request < sizeof(request_names) / sizeof(request_names[0]) && request_names[request])
		return request_names[request];
	return "an unknown request";
}

/* Records "net0: vhost-user: <why>", marks the connection broken, returns `code`. */
__attribute__((format(printf, 4, 5)))
static int vu_fail(struct vhost_user *vu, struct err *e, int code, const char *fmt, ...)
{
	char why[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	vu->broken = true;
	return err__set(e, code, "%s: vhost-user: %s", vu->name, why);
}

void vhost_user__init(struct vhost_user *vu, const char *name)
{
	memset(vu, 0, sizeof(*vu));
	snprintf(vu->name, sizeof(vu->name), "%s", name);
	vu->fd = -1;
	vu->timeout_ms = VHOST_USER_DEFAULT_TIMEOUT_MS;
}

int vhost_user__attach(struct vhost_user *vu, int fd)
{
	struct timeval tv = {
		.tv_sec = vu->timeout_ms / 1000,
		.tv_usec = (vu->timeout_ms % 1000) * 1000,
	};
	int flags;

	if (fd < 0)
		return -EBADF;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	/* A backend that stops reading must not block the monitor forever. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	vhost_user__close(vu);
	vu->fd = fd;
	return 0;
}

void vhost_user__close(struct vhost_user *vu)
{
	if (vu->fd >= 0)
		close(vu->fd);
	vu->fd = -1;
	vu->broken = false;
	vu->features = 0;
	vu->protocol = 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!path[0] || strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int vhost_user__connect(const char *path)
{
	struct sockaddr_un sa;
	int fd, err;

	err = unix_addr(path, &sa);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* A unix socket connects at once or not at all (EAGAIN: backlog full). */
		err = errno == EINPROGRESS ? -EAGAIN : -errno;
		close(fd);
		return err;
	}
	return fd;
}

int vhost_user__listen(const char *path, struct err *e)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, err;

	err = unix_addr(path, &sa);
	if (err)
		return err__set(e, err, "vhost-user socket path '%s': empty or longer than %zu bytes",
				path, sizeof(sa.sun_path) - 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err__set(e, -EEXIST, "vhost-user socket path '%s' exists and is not a socket",
					path);
		if (trust__socket_in_use(path))
			return err__set(e, -EADDRINUSE, "vhost-user socket '%s': another process listens on %s",
					path, path);
		unlink(path); /* a stale socket from an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__set(e, -errno, "vhost-user socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		err = -errno;
		close(fd);
		return err__set(e, err, "vhost-user socket '%s': cannot listen: %s", path, strerror(-err));
	}
	return fd;
}

int vhost_user__accept(int listen_fd)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return fd;
}

static int vu_send(struct vhost_user *vu, uint32_t req, uint32_t flags, const void *payload,
		   uint32_t size, const int *fds, unsigned nfds, struct err *e)
{
	struct vu_hdr hdr = { .request = req, .flags = VHOST_USER_VERSION | flags, .size = size };
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_REGIONS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	size_t left = sizeof(hdr) + size;

	if (vu->fd < 0 || vu->broken)
		return err__set(e, -ENOTCONN, "%s: vhost-user: %s: no backend connected", vu->name,
				vhost_user__request_name(req));
	if (nfds > VHOST_USER_MAX_REGIONS)
		return err__set(e, -EINVAL, "%s: vhost-user: %s: %u fds (at most %u)", vu->name,
				vhost_user__request_name(req), nfds, VHOST_USER_MAX_REGIONS);
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	while (left) {
		ssize_t n = sendmsg(vu->fd, &msg, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return vu_fail(vu, e, -ETIMEDOUT, "%s: the backend stopped reading (%d ms)",
					       vhost_user__request_name(req), vu->timeout_ms);
			return vu_fail(vu, e, -errno, "sending %s: %s", vhost_user__request_name(req),
				       strerror(errno));
		}
		left -= (size_t)n;
		/* A short write: the fds went with the first byte; send the rest plainly. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		while (n > 0 && msg.msg_iovlen) {
			if ((size_t)n >= msg.msg_iov->iov_len) {
				n -= (ssize_t)msg.msg_iov->iov_len;
				msg.msg_iov++;
				msg.msg_iovlen--;
			} else {
				msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
				msg.msg_iov->iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	vu->nr_sent++;
	return 0;
}

/*
 * Reads exactly `len` bytes of the reply to `req` by `deadline`. File
 * descriptors in the ancillary data are closed at once and counted in *nfds,
 * but for the first one when `keep` is given (and still -1): it lands there.
 */
static int vu_read_exact(struct vhost_user *vu, uint32_t req, void *buf, size_t len,
			 int64_t deadline, unsigned *nfds, int *keep, struct err *e)
{
	size_t got = 0;

	while (got < len) {
		union {
			char buf[CMSG_SPACE(VHOST_USER_MAX_REGIONS * sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { .iov_base = (char *)buf + got, .iov_len = len - got };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		struct pollfd pfd = { .fd = vu->fd, .events = POLLIN };
		int64_t left = deadline - clock__mono_ms();
		struct cmsghdr *c;
		ssize_t n;
		int r;

		if (left < 0)
			left = 0;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return vu_fail(vu, e, -errno, "waiting for the reply to %s: %s",
				       vhost_user__request_name(req), strerror(errno));
		if (r == 0)
			return vu_fail(vu, e, -ETIMEDOUT, "no reply to %s within %d ms",
				       vhost_user__request_name(req), vu->timeout_ms);
		n = recvmsg(vu->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return vu_fail(vu, e, -errno, "reading the reply to %s: %s",
				       vhost_user__request_name(req), strerror(errno));
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				size_t k, nr = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int fd;

				for (k = 0; k < nr; k++) {
					memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
					if (keep && *keep < 0) {
						*keep = fd;
						continue;
					}
					close(fd);
					*nfds += 1;
				}
			}
		}
		if (msg.msg_flags & MSG_CTRUNC)
			*nfds += 1; /* more than we had room for: refused below all the same */
		if (n == 0)
			return vu_fail(vu, e, -ECONNRESET,
				       got ? "the backend closed the connection in the middle of the reply to %s"
					   : "the backend closed the connection (waiting for the reply to %s)",
				       vhost_user__request_name(req));
		got += (size_t)n;
	}
	return 0;
}

/*
 * Receives the reply to `req`: a header with exactly version 1 | REPLY, the
 * same request code and a payload of exactly `size` bytes, then the payload;
 * no file descriptor but the one `keep` takes when given.
 */
static int vu_recv_checked(struct vhost_user *vu, uint32_t req, void *payload, uint32_t size,
			   int *keep, struct err *e)
{
	int64_t deadline = clock__mono_ms() + vu->timeout_ms;
	const char *name = vhost_user__request_name(req);
	unsigned nfds = 0;
	struct vu_hdr hdr;
	int err;

	err = vu_read_exact(vu, req, &hdr, sizeof(hdr), deadline, &nfds, keep, e);
	if (err)
		return err;
	if ((hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return vu_fail(vu, e, -EPROTO, "reply to %s: protocol version %u (expected %u)", name,
			       hdr.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
	if (hdr.request != req)
		return vu_fail(vu, e, -EPROTO, "reply to %s carries request %u (%s)", name,
			       hdr.request, vhost_user__request_name(hdr.request));
	if (hdr.flags != (VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY))
		return vu_fail(vu, e, -EPROTO, "reply to %s: flags %#x (expected %#x: version 1, reply)",
			       name, hdr.flags, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY);
	/* The spec's way for GET_CONFIG to say no: a reply without payload. */
	if (req == VHOST_USER_GET_CONFIG && hdr.size == 0 && size)
		return vu_fail(vu, e, -EREMOTEIO, "the backend refused GET_CONFIG (an empty reply)");
	/*
	 * SET_LOG_BASE's reply has no payload (the spec, DPDK); libvhost-user
	 * (qemu-storage-daemon) sends back 8 bytes, its request's first u64 in
	 * QEMU 7.2: read and ignored, as QEMU's frontend ignores them.
	 */
	if (req == VHOST_USER_SET_LOG_BASE && size == 0 && hdr.size == sizeof(uint64_t)) {
		uint64_t ignored;

		err = vu_read_exact(vu, req, &ignored, sizeof(ignored), deadline, &nfds, keep, e);
		if (err)
			return err;
		hdr.size = 0;
	}
	if (hdr.size != size)
		return vu_fail(vu, e, -EPROTO, "reply to %s: payload of %u bytes (expected %u)", name,
			       hdr.size, size);
	if (size) {
		err = vu_read_exact(vu, req, payload, size, deadline, &nfds, keep, e);
		if (err)
			return err;
	}
	if (nfds)
		return vu_fail(vu, e, -EPROTO, "reply to %s carried %u file descriptor%s (%s expected; closed)",
			       name, nfds + (keep && *keep >= 0), nfds + (keep && *keep >= 0) == 1 ? "" : "s",
			       keep ? "one" : "none");
	if (keep && *keep < 0)
		return vu_fail(vu, e, -EPROTO, "reply to %s carried no file descriptor", name);
	return 0;
}

/* Receives the reply to `req` (vu_recv_checked); with `fd_out`, it must carry one fd, kept there. */
static int vu_recv_reply(struct vhost_user *vu, uint32_t req, void *payload, uint32_t size,
			 int *fd_out, struct err *e)
{
	int keep = -1, err;

	err = vu_recv_checked(vu, req, payload, size, fd_out ? &keep : NULL, e);
	if (err) {
		if (keep >= 0)
			close(keep);
		return err;
	}
	if (fd_out)
		*fd_out = keep;
	vu->nr_replies++;
	return 0;
}

/* A request without a reply body: with REPLY_ACK negotiated, waits for the backend's status. */
static int vu_request(struct vhost_user *vu, uint32_t req, const void *payload, uint32_t size,
		      const int *fds, unsigned nfds, struct err *e)
{
	bool ack = vu->protocol & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
	uint64_t status;
	int err;

	err = vu_send(vu, req, ack ? VHOST_USER_FLAG_NEED_REPLY : 0, payload, size, fds, nfds, e);
	if (err || !ack)
		return err;
	err = vu_recv_reply(vu, req, &status, sizeof(status), NULL, e);
	if (err)
		return err;
	if (status)
		return vu_fail(vu, e, -EREMOTEIO, "the backend refused %s (status %llu)",
			       vhost_user__request_name(req), (unsigned long long)status);
	return 0;
}

/* A request whose reply body is `size` bytes. */
static int vu_query(struct vhost_user *vu, uint32_t req, const void *payload, uint32_t psize,
		    void *reply, uint32_t size, struct err *e)
{
	int err = vu_send(vu, req, 0, payload, psize, NULL, 0, e);

	return err ? err : vu_recv_reply(vu, req, reply, size, NULL, e);
}

int vhost_user__get_features(struct vhost_user *vu, uint64_t *features, struct err *e)
{
	int err = vu_query(vu, VHOST_USER_GET_FEATURES, NULL, 0, features, sizeof(*features), e);

	if (!err)
		vu->features = *features;
	return err;
}

int vhost_user__set_features(struct vhost_user *vu, uint64_t features, struct err *e)
{
	return vu_request(vu, VHOST_USER_SET_FEATURES, &features, sizeof(features), NULL, 0, e);
}

int vhost_user__get_protocol_features(struct vhost_user *vu, uint64_t *features, struct err *e)
{
	if (!(vu->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		return err__set(e, -EOPNOTSUPP, "%s: vhost-user: the backend has no protocol features",
				vu->name);
	return vu_query(vu, VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0, features, sizeof(*features),
			e);
}

int vhost_user__set_protocol_features(struct vhost_user *vu, uint64_t features, struct err *e)
{
	int err;

	/* Not acknowledged: REPLY_ACK takes effect once this message is through. */
	vu->protocol = 0;
	err = vu_request(vu, VHOST_USER_SET_PROTOCOL_FEATURES, &features, sizeof(features), NULL, 0,
			 e);
	if (!err)
		vu->protocol = features;
	return err;
}

int vhost_user__get_queue_num(struct vhost_user *vu, uint64_t *num, struct err *e)
{
	if (!(vu->protocol & (1ull << VHOST_USER_PROTOCOL_F_MQ)))
		return err__set(e, -EOPNOTSUPP, "%s: vhost-user: GET_QUEUE_NUM needs protocol feature MQ",
				vu->name);
	return vu_query(vu, VHOST_USER_GET_QUEUE_NUM, NULL, 0, num, sizeof(*num), e);
}

int vhost_user__set_owner(struct vhost_user *vu, struct err *e)
{
	return vu_request(vu, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, e);
}

int vhost_user__set_mem_table(struct vhost_user *vu, const struct vhost_user_region *regions,
			      unsigned nr, struct err *e)
{
	struct vu_mem mem = { .nregions = nr };
	int fds[VHOST_USER_MAX_REGIONS];
	unsigned i;

	if (nr == 0 || nr > VHOST_USER_MAX_REGIONS)
		return err__set(e, -EINVAL, "%s: vhost-user: %u memory regions (1..%u)", vu->name, nr,
				VHOST_USER_MAX_REGIONS);
	for (i = 0; i < nr; i++) {
		const struct vhost_user_region *r = &regions[i];

		if (r->fd < 0 || !r->size || r->gpa + r->size < r->gpa)
			return err__set(e, -EINVAL, "%s: vhost-user: memory region %u (gpa %#llx, %llu bytes, fd %d) is not shareable",
					vu->name, i, (unsigned long long)r->gpa,
					(unsigned long long)r->size, r->fd);
		mem.regions[i] = (struct vu_region){ .gpa = r->gpa, .size = r->size,
						     .uaddr = r->uaddr, .mmap_offset = r->mmap_offset };
		fds[i] = r->fd;
	}
	/* Only the regions in use are sent (the table holds "up to 8"). */
	return vu_request(vu, VHOST_USER_SET_MEM_TABLE, &mem,
			  (uint32_t)(offsetof(struct vu_mem, regions) + nr * sizeof(struct vu_region)),
			  fds, nr, e);
}

int vhost_user__set_mem_table_guest(struct vhost_user *vu, const struct guest_mem *mem,
				    struct err *e)
{
	struct vhost_user_region r[GUEST_MEM_MAX_REGIONS];
	unsigned i;

	if (mem->fd < 0 || !mem->nr_regions || mem->nr_regions > GUEST_MEM_MAX_REGIONS)
		return err__set(e, -EINVAL, "%s: vhost-user: guest RAM has no shareable fd", vu->name);
	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *g = &mem->regions[i];

		r[i] = (struct vhost_user_region){ .gpa = g->gpa, .size = g->size,
						   .uaddr = (uint64_t)(uintptr_t)g->hva,
						   .mmap_offset = g->fd_offset, .fd = mem->fd };
	}
	return vhost_user__set_mem_table(vu, r, mem->nr_regions, e);
}

static int vu_state(struct vhost_user *vu, uint32_t req, unsigned index, unsigned num,
		    struct err *e)
{
	struct vu_state s = { .index = index, .num = num };

	return vu_request(vu, req, &s, sizeof(s), NULL, 0, e);
}

int vhost_user__set_vring_num(struct vhost_user *vu, unsigned index, unsigned num, struct err *e)
{
	return vu_state(vu, VHOST_USER_SET_VRING_NUM, index, num, e);
}

int vhost_user__set_vring_base(struct vhost_user *vu, unsigned index, unsigned base,
			       struct err *e)
{
	return vu_state(vu, VHOST_USER_SET_VRING_BASE, index, base, e);
}

int vhost_user__set_vring_enable(struct vhost_user *vu, unsigned index, bool enable,
				 struct err *e)
{
	return vu_state(vu, VHOST_USER_SET_VRING_ENABLE, index, enable, e);
}

int vhost_user__set_vring_addr(struct vhost_user *vu, const struct vhost_user_vring_addr *a,
			       struct err *e)
{
	struct vu_addr addr = { .index = a->index, .flags = a->flags, .desc = a->desc,
				.used = a->used, .avail = a->avail, .log = a->log };

	return vu_request(vu, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0, e);
}

static int vu_vring_fd(struct vhost_user *vu, uint32_t req, unsigned index, int fd,
		       struct err *e)
{
	uint64_t v = index & VHOST_USER_VRING_IDX_MASK;

	if (index > VHOST_USER_VRING_IDX_MASK)
		return err__set(e, -EINVAL, "%s: vhost-user: %s: vring %u out of range", vu->name,
				vhost_user__request_name(req), index);
	if (fd < 0)
		v |= VHOST_USER_VRING_NOFD;
	return vu_request(vu, req, &v, sizeof(v), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, e);
}

int vhost_user__set_vring_kick(struct vhost_user *vu, unsigned index, int fd, struct err *e)
{
	return vu_vring_fd(vu, VHOST_USER_SET_VRING_KICK, index, fd, e);
}

int vhost_user__set_vring_call(struct vhost_user *vu, unsigned index, int fd, struct err *e)
{
	return vu_vring_fd(vu, VHOST_USER_SET_VRING_CALL, index, fd, e);
}

int vhost_user__set_log_base(struct vhost_user *vu, int fd, uint64_t size, uint64_t offset,
			     struct err *e)
{
	struct vu_log log = { .mmap_size = size, .mmap_offset = offset };
	int err;

	if (!(vu->protocol & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD)))
		return err__set(e, -EOPNOTSUPP, "%s: vhost-user: SET_LOG_BASE needs protocol feature LOG_SHMFD",
				vu->name);
	if (fd < 0 || !size || offset > UINT64_MAX - size)
		return err__set(e, -EINVAL, "%s: vhost-user: SET_LOG_BASE of %llu bytes at offset %llu, fd %d",
				vu->name, (unsigned long long)size, (unsigned long long)offset, fd);
	/* Answered with LOG_SHMFD whatever REPLY_ACK says (the spec): no NEED_REPLY, one reply. */
	err = vu_send(vu, VHOST_USER_SET_LOG_BASE, 0, &log, sizeof(log), &fd, 1, e);
	return err ? err : vu_recv_reply(vu, VHOST_USER_SET_LOG_BASE, NULL, 0, NULL, e);
}

int vhost_user__get_vring_base(struct vhost_user *vu, unsigned index, unsigned *base,
			       struct err *e)
{
	struct vu_state s = { .index = index }, r;
	int err;

	err = vu_query(vu, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), &r, sizeof(r), e);
	if (err)
		return err;
	if (r.index != index)
		return vu_fail(vu, e, -EPROTO, "reply to GET_VRING_BASE for vring %u names vring %u",
			       index, r.index);
	if (r.num > 0xffff)
		return vu_fail(vu, e, -EPROTO, "reply to GET_VRING_BASE for vring %u: base %u is not a 16-bit ring index",
			       index, r.num);
	*base = r.num;
	return 0;
}

int vhost_user__get_config(struct vhost_user *vu, uint32_t offset, void *buf, uint32_t size,
			   struct err *e)
{
	struct vu_config req = { .offset = offset, .size = size }, r;
	uint32_t len = VHOST_USER_CONFIG_HDR_SIZE + size;
	int err;

	if (!(vu->protocol & (1ull << VHOST_USER_PROTOCOL_F_CONFIG)))
		return err__set(e, -EOPNOTSUPP, "%s: vhost-user: GET_CONFIG needs protocol feature CONFIG",
				vu->name);
	if (!size || size > VHOST_USER_MAX_CONFIG)
		return err__set(e, -EINVAL, "%s: vhost-user: GET_CONFIG of %u bytes (1..%u)", vu->name,
				size, VHOST_USER_MAX_CONFIG);
	/* The request carries the window and room for its bytes, as the reply does. */
	err = vu_query(vu, VHOST_USER_GET_CONFIG, &req, len, &r, len, e);
	if (err)
		return err;
	if (r.offset != offset || r.size != size)
		return vu_fail(vu, e, -EPROTO, "reply to GET_CONFIG describes %u bytes at offset %u (asked %u at %u)",
			       r.size, r.offset, size, offset);
	memcpy(buf, r.data, size);
	return 0;
}

int vhost_user__get_inflight_fd(struct vhost_user *vu, struct vhost_user_inflight *in,
				struct err *e)
{
	struct vu_inflight req = { .num_queues = in->num_queues, .queue_size = in->queue_size }, r;
	int err, fd = -1;

	if (!(vu->protocol & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)))
		return err__set(e, -EOPNOTSUPP, "%s: vhost-user: GET_INFLIGHT_FD needs protocol feature INFLIGHT_SHMFD",
				vu->name);
	err = vu_send(vu, VHOST_USER_GET_INFLIGHT_FD, 0, &req, sizeof(req), NULL, 0, e);
	if (!err)
		err = vu_recv_reply(vu, VHOST_USER_GET_INFLIGHT_FD, &r, sizeof(r), &fd, e);
	if (err)
		return err;
	if (!r.mmap_size || r.num_queues != req.num_queues || r.queue_size != req.queue_size) {
		close(fd);
		return vu_fail(vu, e, -EPROTO, "reply to GET_INFLIGHT_FD: %llu bytes for %u queues of %u (asked %u of %u)",
			       (unsigned long long)r.mmap_size, r.num_queues, r.queue_size,
			       req.num_queues, req.queue_size);
	}
	in->mmap_size = r.mmap_size;
	in->mmap_offset = r.mmap_offset;
	in->fd = fd;
	return 0;
}

int vhost_user__set_inflight_fd(struct vhost_user *vu, const struct vhost_user_inflight *in,
				struct err *e)
{
	struct vu_inflight req = { .mmap_size = in->mmap_size, .mmap_offset = in->mmap_offset,
				   .num_queues = in->num_queues, .queue_size = in->queue_size };

	if (in->fd < 0)
		return err__set(e, -EBADF, "%s: vhost-user: SET_INFLIGHT_FD without a region", vu->name);
	return vu_request(vu, VHOST_USER_SET_INFLIGHT_FD, &req, sizeof(req), &in->fd, 1, e);
}
