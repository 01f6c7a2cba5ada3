/*
 * vhost-user frontend, the device session and virtio-net against a fake backend.
 *
 * The fake is a test double of the peer written from the protocol text
 * (docs/interop/vhost-user.rst): it records every message (and keeps the fds
 * it receives), answers GET_* and NEED_REPLY, and can misbehave once on a
 * chosen request. The real interop test is tests/integration/vhost_user_testpmd.c
 * against DPDK's vhost library.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>
#include "counters_sink.h"
#include "state_refusals.h"

#include "vmm/guest_mem.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/net.h"
#include "vmm/virtio/vhost_blk.h"
#include "vmm/virtio/vhost_user.h"
#include "vmm/virtio/vu_session.h"

#define BIT(n) (1ull << (n))
#define MAXLOG 512

/* A 0700 directory of this run's sockets (mkdtemp): /tmp itself is world-writable, never trusted. */
static char sock_dir[64];

/* ---------------------------------------------------------------- fake backend */

struct msg {
	uint32_t req, flags, size;
	uint8_t payload[VHOST_USER_MAX_PAYLOAD];
	int nfds;
	int fds[8];
	unsigned conn;
};

enum misbehave {
	MB_NONE,
	MB_WRONG_CODE,    /* reply names another request */
	MB_TOO_BIG,       /* header claims 1000 bytes of payload */
	MB_SHORT,         /* header claims 4 bytes where 8 are due */
	MB_TRUNCATED,     /* header says 8, 4 bytes follow, then the backend dies */
	MB_BAD_VERSION,   /* version 2 */
	MB_NO_REPLY_FLAG, /* flags = version only */
	MB_WITH_FD,       /* the reply carries an fd nobody asked for */
	MB_SILENT,        /* no reply at all */
	MB_NACK,          /* REPLY_ACK status 1 */
	MB_CLOSE,         /* the backend dies instead of answering */
	MB_WRONG_INDEX,   /* GET_VRING_BASE reply for another vring */
	MB_EMPTY,         /* a reply without payload (GET_CONFIG's refusal) */
	MB_WRONG_WINDOW,  /* GET_CONFIG reply for another offset */
	MB_NO_FD,         /* GET_INFLIGHT_FD reply without its fd */
	MB_U64,           /* 8 bytes where no payload is due (libvhost-user's SET_LOG_BASE reply) */
};

struct fake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int pair_fd;          /* socketpair mode: the one connection */
	int listen_fd;        /* listening mode (the device is a client) */
	char path[108];       /* connecting mode (the device is a server) when listen_fd < 0 */
	int conn_fd;
	bool stop;
	uint64_t features, protocol, queue_num;
	uint32_t bad_req;
	enum misbehave how;
	int bad_count;
	uint32_t bases[64];
	uint8_t config[VHOST_USER_MAX_CONFIG]; /* the device config space GET_CONFIG reads */
	int inflight_fd;      /* the last inflight region made (GET_INFLIGHT_FD), -1 none */
	bool away;            /* listening mode: the backend is down (no listening socket) */
	char listen_path[108];
	struct msg log[MAXLOG];
	unsigned nlog, conns;
};

static int read_full(int fd, void *buf, size_t len, int *fds, int *nfds)
{
	size_t got = 0;

	while (got < len) {
		union {
			char b[CMSG_SPACE(8 * sizeof(int))];
			struct cmsghdr a;
		} ctl;
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
				    .msg_controllen = sizeof(ctl.b) };
		struct cmsghdr *c;
		ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);

		if (n <= 0)
			return -1;
		for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			int k, nr = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (k = 0; k < nr; k++) {
				int f;

				memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				if (fds && *nfds < 8)
					fds[(*nfds)++] = f;
				else
					close(f);
			}
		}
		got += (size_t)n;
	}
	return 0;
}

static void send_raw(int fd, uint32_t req, uint32_t flags, uint32_t size, const void *p,
		     size_t plen, int pass_fd)
{
	uint32_t hdr[3] = { req, flags, size };
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)p, plen } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = plen ? 2 : 1 };

	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.b;
		m.msg_controllen = sizeof(ctl.b);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0) {
		/* the frontend went away: the serve loop notices */
	}
}

/* Returns false when the connection should end. */
static bool fake_reply(struct fake *f, int fd, const struct msg *m, const void *body, uint32_t size)
{
	const uint32_t ok = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
	enum misbehave how = MB_NONE;
	uint8_t junk[16] = { 0 };

	pthread_mutex_lock(&f->lock);
	if (f->bad_count > 0 && m->req == f->bad_req) {
		how = f->how;
		f->bad_count--;
	}
	pthread_mutex_unlock(&f->lock);
	switch (how) {
	case MB_NONE:
	case MB_NO_FD:
		send_raw(fd, m->req, ok, size, body, size, -1);
		return true;
	case MB_WRONG_CODE:
		send_raw(fd, m->req == 5 ? 6 : 5, ok, size, body, size, -1);
		return true;
	case MB_TOO_BIG:
		send_raw(fd, m->req, ok, 1000, junk, sizeof(junk), -1);
		return true;
	case MB_SHORT:
		send_raw(fd, m->req, ok, 4, junk, 4, -1);
		return true;
	case MB_TRUNCATED:
		send_raw(fd, m->req, ok, 8, junk, 4, -1);
		return false;
	case MB_BAD_VERSION:
		send_raw(fd, m->req, 2 | VHOST_USER_FLAG_REPLY, size, body, size, -1);
		return true;
	case MB_NO_REPLY_FLAG:
		send_raw(fd, m->req, VHOST_USER_VERSION, size, body, size, -1);
		return true;
	case MB_WITH_FD:
		/* Our own socket: no new fd on this side, so the frontend's fd count tells. */
		send_raw(fd, m->req, ok, size, body, size, fd);
		return true;
	case MB_SILENT:
		return true;
	case MB_NACK: {
		uint64_t one = 1;

		send_raw(fd, m->req, ok, 8, &one, 8, -1);
		return true;
	}
	case MB_CLOSE:
		return false;
	case MB_EMPTY:
		send_raw(fd, m->req, ok, 0, NULL, 0, -1);
		return true;
	case MB_U64: {
		uint64_t echo = 4096;  /* QEMU 7.2's libvhost-user echoes the request's mmap_size */

		send_raw(fd, m->req, ok, 8, &echo, 8, -1);
		return true;
	}
	case MB_WRONG_WINDOW: {
		uint8_t r[VHOST_USER_MAX_PAYLOAD];
		uint32_t off;

		memcpy(r, body, size);
		memcpy(&off, r, 4);
		off++;
		memcpy(r, &off, 4);
		send_raw(fd, m->req, ok, size, r, size, -1);
		return true;
	}
	case MB_WRONG_INDEX: {
		uint32_t st[2];

		memcpy(st, body, sizeof(st));
		st[0]++;
		send_raw(fd, m->req, ok, size, st, size, -1);
		return true;
	}
	}
	return true;
}

static void fake_serve(struct fake *f, int fd, unsigned conn)
{
	for (;;) {
		struct msg m = { .conn = conn };
		uint32_t hdr[3];
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t u;
		uint32_t st[2];
		bool need = false;

		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			return;
		}
		pthread_mutex_unlock(&f->lock);
		if (poll(&p, 1, 50) <= 0)
			continue;
		if (read_full(fd, hdr, sizeof(hdr), m.fds, &m.nfds))
			break;
		m.req = hdr[0];
		m.flags = hdr[1];
		m.size = hdr[2];
		/* (No cmocka asserts in this thread: an oversized message just ends the connection.) */
		if (m.size > sizeof(m.payload) ||
		    (m.size && read_full(fd, m.payload, m.size, m.fds, &m.nfds))) {
			for (int k = 0; k < m.nfds; k++)
				close(m.fds[k]);
			break;
		}
		pthread_mutex_lock(&f->lock);
		if (f->nlog < MAXLOG)
			f->log[f->nlog++] = m;
		else
			for (int k = 0; k < m.nfds; k++)
				close(m.fds[k]);
		if (m.req == VHOST_USER_SET_VRING_BASE) {
			memcpy(st, m.payload, sizeof(st));
			if (st[0] < 64)
				f->bases[st[0]] = st[1];
		}
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);

		switch (m.req) {
		case VHOST_USER_GET_FEATURES:
			u = f->features;
			need = !fake_reply(f, fd, &m, &u, 8);
			break;
		case VHOST_USER_GET_PROTOCOL_FEATURES:
			u = f->protocol;
			need = !fake_reply(f, fd, &m, &u, 8);
			break;
		case VHOST_USER_GET_QUEUE_NUM:
			u = f->queue_num;
			need = !fake_reply(f, fd, &m, &u, 8);
			break;
		case VHOST_USER_GET_CONFIG: {
			uint8_t r[VHOST_USER_MAX_PAYLOAD] = { 0 };
			uint32_t win[2] = { 0, 0 };

			/* offset, size, flags, then the window's bytes */
			if (m.size >= 12)
				memcpy(win, m.payload, sizeof(win));
			if (win[0] > VHOST_USER_MAX_CONFIG || win[1] > VHOST_USER_MAX_CONFIG - win[0])
				win[1] = 0;
			memcpy(r, win, sizeof(win));
			pthread_mutex_lock(&f->lock);
			memcpy(r + 12, f->config + win[0], win[1]);
			pthread_mutex_unlock(&f->lock);
			need = !fake_reply(f, fd, &m, r, 12 + win[1]);
			break;
		}
		case VHOST_USER_GET_INFLIGHT_FD: {
			uint64_t in[3] = { 0 };
			bool armed;
			int mfd;

			/* mmap_size, mmap_offset, then num_queues and queue_size echoed; a new memfd
			 * sized as rte_vhost sizes it (per queue: 16 + 16 per descriptor, 64-aligned). */
			memcpy(in, m.payload, m.size < sizeof(in) ? m.size : sizeof(in));
			in[0] = (in[2] & 0xffff) * ((16 + 16 * (in[2] >> 16 & 0xffff) + 63) / 64 * 64);
			in[1] = 0;
			pthread_mutex_lock(&f->lock);
			armed = f->bad_count > 0 && f->bad_req == m.req;
			pthread_mutex_unlock(&f->lock);
			if (armed) {
				need = !fake_reply(f, fd, &m, in, sizeof(in));
				break;
			}
			mfd = memfd_create("fake-inflight", MFD_CLOEXEC);
			if (mfd < 0 || ftruncate(mfd, (off_t)in[0]) < 0) {
				need = true;
			} else {
				send_raw(fd, m.req, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
					 sizeof(in), in, sizeof(in), mfd);
			}
			pthread_mutex_lock(&f->lock);
			if (f->inflight_fd >= 0)
				close(f->inflight_fd);
			f->inflight_fd = mfd;
			pthread_mutex_unlock(&f->lock);
			break;
		}
		case VHOST_USER_GET_VRING_BASE:
			memcpy(st, m.payload, sizeof(st));
			st[1] = st[0] < 64 ? f->bases[st[0]] : 0;
			need = !fake_reply(f, fd, &m, st, 8);
			break;
		case VHOST_USER_SET_LOG_BASE:
			/* Answered without payload, NEED_REPLY or not (the spec; DPDK and QEMU so). */
			need = !fake_reply(f, fd, &m, NULL, 0);
			break;
		default:
			if (m.flags & VHOST_USER_FLAG_NEED_REPLY) {
				u = 0;
				need = !fake_reply(f, fd, &m, &u, 8);
			}
		}
		if (need)
			break;
	}
}

static void fake_listen(struct fake *f, const char *path);

static void *fake_thread(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		int fd = -1;
		unsigned conn;

		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		/* A backend that is down has no listening socket: connects are refused. */
		if (f->away && f->listen_fd >= 0) {
			close(f->listen_fd);
			f->listen_fd = -1;
			unlink(f->listen_path);
		}
		if (f->away) {
			pthread_mutex_unlock(&f->lock);
			usleep(10000);
			continue;
		}
		if (f->listen_fd < 0 && f->listen_path[0])
			fake_listen(f, f->listen_path);
		pthread_mutex_unlock(&f->lock);
		if (f->pair_fd >= 0) {
			fd = f->pair_fd;
			f->pair_fd = -1;
		} else if (f->listen_fd >= 0) {
			struct pollfd p = { .fd = f->listen_fd, .events = POLLIN };

			if (poll(&p, 1, 50) > 0)
				fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		} else if (f->path[0]) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };

			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
				close(fd);
				fd = -1;
				usleep(50000);
			}
		} else {
			break;
		}
		if (fd < 0)
			continue;
		pthread_mutex_lock(&f->lock);
		f->conn_fd = fd;
		conn = ++f->conns;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		fake_serve(f, fd, conn);
		pthread_mutex_lock(&f->lock);
		close(fd);
		f->conn_fd = -1;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

static const uint64_t fake_features =
	BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_CTRL_RX) |
	BIT(VIRTIO_NET_F_MQ) | BIT(VHOST_USER_F_PROTOCOL_FEATURES) | BIT(26) /* LOG_ALL */ |
	BIT(VIRTIO_F_RING_PACKED);

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->pair_fd = f->listen_fd = f->conn_fd = f->inflight_fd = -1;
	f->features = fake_features;
	f->protocol = BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
		      BIT(VHOST_USER_PROTOCOL_F_CONFIG) | BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |
		      BIT(1) /* LOG_SHMFD */;
	f->queue_num = 8;
	return f;
}

/* The fake listens at `path` (the device is a client). */
static void fake_listen(struct fake *f, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (path != f->listen_path)
		snprintf(f->listen_path, sizeof(f->listen_path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listen_fd, 4), 0);
}

static void fake_start(struct fake *f)
{
	assert_int_equal(pthread_create(&f->thread, NULL, fake_thread, f), 0);
}

static void fake_free(struct fake *f)
{
	unsigned i;
	int k;

	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	for (i = 0; i < f->nlog; i++)
		for (k = 0; k < f->log[i].nfds; k++)
			close(f->log[i].fds[k]);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->pair_fd >= 0)
		close(f->pair_fd);
	if (f->inflight_fd >= 0)
		close(f->inflight_fd);
	free(f);
}

static void fake_misbehave(struct fake *f, uint32_t req, enum misbehave how)
{
	pthread_mutex_lock(&f->lock);
	f->bad_req = req;
	f->how = how;
	f->bad_count = 1;
	pthread_mutex_unlock(&f->lock);
}

/* Listening mode: the backend goes down (`away`: connects refused) or comes back. */
static void fake_set_away(struct fake *f, bool away)
{
	pthread_mutex_lock(&f->lock);
	f->away = away;
	pthread_mutex_unlock(&f->lock);
}

/* The backend "crashes": its end of the current connection goes away. */
static void fake_drop(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	if (f->conn_fd >= 0)
		shutdown(f->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&f->lock);
}

/* Index of the first message `req` (for vring `vring`, or any when < 0) of connection `conn` from `from`. */
static int fake_find(struct fake *f, unsigned from, unsigned conn, uint32_t req, int vring)
{
	unsigned i;

	for (i = from; i < f->nlog; i++) {
		uint32_t idx;

		if (f->log[i].req != req || (conn && f->log[i].conn != conn))
			continue;
		memcpy(&idx, f->log[i].payload, sizeof(idx));
		if (vring >= 0 && f->log[i].size >= 4 && (idx & 0xff) != (uint32_t)vring)
			continue;
		return (int)i;
	}
	return -1;
}

static int fake_wait(struct fake *f, unsigned from, unsigned conn, uint32_t req, int vring,
		     int timeout_ms)
{
	struct timespec ts;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	while ((i = fake_find(f, from, conn, req, vring)) < 0)
		if (pthread_cond_timedwait(&f->cond, &f->lock, &ts))
			break;
	pthread_mutex_unlock(&f->lock);
	return i;
}

static uint64_t payload_u64(const struct msg *m)
{
	uint64_t v;

	memcpy(&v, m->payload, sizeof(v));
	return v;
}

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned n = 0;

	while ((de = readdir(d)))
		n++;
	closedir(d);
	return n;
}

static void log_base_of(const struct msg *m, uint64_t *size, uint64_t *offset);
static ino_t fd_ino(int fd);

/* ---------------------------------------------------------------- connection tests */

struct pair {
	struct fake *f;
	struct vhost_user vu;
};

static struct pair *pair_new(void)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->f = fake_new();
	p->f->pair_fd = sv[1];
	vhost_user__init(&p->vu, "net9");
	p->vu.timeout_ms = 300;
	assert_int_equal(vhost_user__attach(&p->vu, sv[0]), 0);
	fake_start(p->f);
	return p;
}

static void pair_free(struct pair *p)
{
	vhost_user__close(&p->vu);
	fake_free(p->f);
	free(p);
}

static void test_features_and_protocol_features_negotiate(void **state)
{
	struct pair *p = pair_new();
	struct err e = { 0 };
	uint64_t f, proto, q;
	int i;

	(void)state;
	assert_int_equal(vhost_user__get_features(&p->vu, &f, &e), 0);
	assert_true(f == fake_features);
	assert_int_equal(vhost_user__get_protocol_features(&p->vu, &proto, &e), 0);
	assert_int_equal(vhost_user__set_protocol_features(&p->vu, proto & (BIT(0) | BIT(3)), &e), 0);
	assert_true(p->vu.protocol == (BIT(0) | BIT(3)));
	assert_int_equal(vhost_user__get_queue_num(&p->vu, &q, &e), 0);
	assert_int_equal(q, 8);
	assert_int_equal(vhost_user__set_owner(&p->vu, &e), 0);
	assert_int_equal(vhost_user__set_features(&p->vu, BIT(32) | BIT(30), &e), 0);

	/* SET_PROTOCOL_FEATURES itself goes without NEED_REPLY; what follows asks for the ack. */
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_PROTOCOL_FEATURES, -1);
	assert_true(i >= 0);
	assert_int_equal(p->f->log[i].flags, VHOST_USER_VERSION);
	assert_int_equal(p->f->log[i].size, 8);
	assert_true(payload_u64(&p->f->log[i]) == (BIT(0) | BIT(3)));
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_OWNER, -1);
	assert_int_equal(p->f->log[i].flags, VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY);
	assert_int_equal(p->f->log[i].size, 0);
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_FEATURES, -1);
	assert_true(payload_u64(&p->f->log[i]) == (BIT(32) | BIT(30)));
	i = fake_find(p->f, 0, 0, VHOST_USER_GET_FEATURES, -1);
	assert_int_equal(p->f->log[i].flags, VHOST_USER_VERSION);
	assert_int_equal(p->f->log[i].size, 0);
	pair_free(p);
}

static void test_get_queue_num_needs_protocol_mq(void **state)
{
	struct pair *p = pair_new();
	struct err e = { 0 };
	uint64_t q;

	(void)state;
	assert_int_equal(vhost_user__get_queue_num(&p->vu, &q, &e), -EOPNOTSUPP);
	assert_false(p->vu.broken);
	pair_free(p);
}

static void check_region_maps_guest_ram(const struct msg *m, unsigned r, const struct guest_mem *mem)
{
	uint64_t reg[4];
	struct stat st;
	uint8_t *map;
	int fd = m->fds[r];

	memcpy(reg, m->payload + 8 + 32 * r, sizeof(reg));
	assert_true(reg[0] == mem->regions[r].gpa);
	assert_true(reg[1] == mem->regions[r].size);
	assert_true(reg[2] == (uint64_t)(uintptr_t)mem->regions[r].hva);
	assert_true(reg[3] == mem->regions[r].fd_offset);
	/* What a backend does: map the fd and find guest RAM at mmap_offset. */
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_size == mem->size);
	map = mmap(NULL, reg[3] + reg[1], PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_memory_equal(map + reg[3] + 4096, "guest RAM", 9);
	/* Shared both ways: the backend's write shows in guest RAM. */
	memcpy(map + reg[3] + 8192, "from the backend", 16);
	assert_memory_equal(mem->regions[r].hva + 8192, "from the backend", 16);
	munmap(map, reg[3] + reg[1]);
}

static void test_mem_table_passes_the_guest_ram_memfd(void **state)
{
	const uint64_t size = GUEST_PCI_HOLE_START + (16ull << 20); /* two regions, sparse */
	struct pair *p = pair_new();
	struct guest_mem mem;
	struct err e = { 0 };
	const struct msg *m;
	uint32_t n[2];
	unsigned r;
	int i, fd;

	(void)state;
	fd = memfd_create("test-ram", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(guest_mem__map_fd(&mem, fd, size, 4096), 0);
	assert_int_equal(mem.nr_regions, 2);
	for (r = 0; r < mem.nr_regions; r++)
		memcpy(mem.regions[r].hva + 4096, "guest RAM", 9);

	assert_int_equal(vhost_user__set_mem_table_guest(&p->vu, &mem, &e), 0);
	i = fake_wait(p->f, 0, 0, VHOST_USER_SET_MEM_TABLE, -1, 10000);
	assert_true(i >= 0);
	m = &p->f->log[i];
	memcpy(n, m->payload, sizeof(n));
	assert_int_equal(n[0], 2);
	assert_int_equal(m->size, 8 + 2 * 32);   /* only the regions in use */
	assert_int_equal(m->nfds, 2);            /* one fd per region, in order */
	for (r = 0; r < 2; r++)
		check_region_maps_guest_ram(m, r, &mem);
	pair_free(p);
	guest_mem__destroy(&mem);
}

static void test_vring_messages_carry_index_values_and_fds(void **state)
{
	struct pair *p = pair_new();
	struct vhost_user_vring_addr a = { .index = 3, .desc = 0x7f0000001000ull,
					   .used = 0x7f0000003000ull, .avail = 0x7f0000002000ull,
					   .log = 0x3000 };
	struct err e = { 0 };
	uint64_t u[5], v = 0;
	uint32_t s[2];
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), i;

	(void)state;
	assert_int_equal(vhost_user__set_vring_num(&p->vu, 3, 256, &e), 0);
	assert_int_equal(vhost_user__set_vring_base(&p->vu, 3, 17, &e), 0);
	assert_int_equal(vhost_user__set_vring_addr(&p->vu, &a, &e), 0);
	assert_int_equal(vhost_user__set_vring_kick(&p->vu, 3, kick, &e), 0);
	assert_int_equal(vhost_user__set_vring_call(&p->vu, 3, -1, &e), 0);
	assert_int_equal(vhost_user__set_vring_enable(&p->vu, 3, true, &e), 0);
	assert_int_equal(vhost_user__get_vring_base(&p->vu, 3, &s[0], &e), 0);
	assert_int_equal(s[0], 17);

	i = fake_find(p->f, 0, 0, VHOST_USER_SET_VRING_NUM, 3);
	memcpy(s, p->f->log[i].payload, 8);
	assert_int_equal(s[1], 256);
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_VRING_ADDR, 3);
	assert_int_equal(p->f->log[i].size, 40);
	memcpy(s, p->f->log[i].payload, 8);
	memcpy(u, p->f->log[i].payload + 8, 32);
	assert_int_equal(s[1], 0);
	assert_true(u[0] == a.desc && u[1] == a.used && u[2] == a.avail && u[3] == a.log);
	/* The kick fd the backend got is our eventfd. */
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_VRING_KICK, 3);
	assert_int_equal(p->f->log[i].nfds, 1);
	assert_true(payload_u64(&p->f->log[i]) == 3);
	v = 5;
	assert_int_equal(write(p->f->log[i].fds[0], &v, 8), 8);
	assert_int_equal(read(kick, &v, 8), 8);
	assert_true(v == 5);
	/* No call fd: the no-fd flag and no ancillary data. */
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_VRING_CALL, 3);
	assert_int_equal(p->f->log[i].nfds, 0);
	assert_true(payload_u64(&p->f->log[i]) == (3 | VHOST_USER_VRING_NOFD));
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_VRING_ENABLE, 3);
	memcpy(s, p->f->log[i].payload, 8);
	assert_int_equal(s[1], 1);
	close(kick);
	pair_free(p);
}

/* One malformed reply: an error that says why, the connection broken, no crash, no fd leak. */
static void expect_broken(enum misbehave how, uint32_t req, int code, const char *words)
{
	uint8_t cfg[60];
	struct pair *p = pair_new();
	struct err e = { 0 };
	unsigned fds_before;
	uint64_t f;
	unsigned base;
	int err;

	if (req == VHOST_USER_SET_OWNER || req == VHOST_USER_GET_CONFIG) {
		uint64_t proto;

		assert_int_equal(vhost_user__get_features(&p->vu, &f, &e), 0);
		assert_int_equal(vhost_user__get_protocol_features(&p->vu, &proto, &e), 0);
		assert_int_equal(vhost_user__set_protocol_features(&p->vu,
								   BIT(3) | BIT(VHOST_USER_PROTOCOL_F_CONFIG), &e), 0);
	}
	fake_misbehave(p->f, req, how);
	fds_before = count_fds();
	if (req == VHOST_USER_GET_FEATURES)
		err = vhost_user__get_features(&p->vu, &f, &e);
	else if (req == VHOST_USER_GET_VRING_BASE)
		err = vhost_user__get_vring_base(&p->vu, 2, &base, &e);
	else if (req == VHOST_USER_GET_CONFIG)
		err = vhost_user__get_config(&p->vu, 0, cfg, sizeof(cfg), &e);
	else
		err = vhost_user__set_owner(&p->vu, &e);
	print_message("    %s\n", e.msg);
	assert_int_equal(err, code);
	assert_int_equal(e.code, code);
	assert_non_null(strstr(e.msg, words));
	assert_non_null(strstr(e.msg, "net9: vhost-user: "));
	assert_true(p->vu.broken);
	assert_false(vhost_user__connected(&p->vu));
	assert_true(count_fds() <= fds_before); /* the received fd was closed (the fake may have closed its end) */
	/* Nothing more goes out on a broken connection. */
	assert_int_equal(vhost_user__get_features(&p->vu, &f, &e), -ENOTCONN);
	pair_free(p);
}

static void test_reply_with_wrong_request_code_breaks_connection(void **state)
{
	(void)state;
	expect_broken(MB_WRONG_CODE, VHOST_USER_GET_FEATURES, -EPROTO, "carries request 5 (SET_MEM_TABLE)");
}

static void test_reply_too_big_is_refused_before_reading_it(void **state)
{
	(void)state;
	expect_broken(MB_TOO_BIG, VHOST_USER_GET_FEATURES, -EPROTO, "payload of 1000 bytes (expected 8)");
}

static void test_reply_too_short_is_refused(void **state)
{
	(void)state;
	expect_broken(MB_SHORT, VHOST_USER_GET_VRING_BASE, -EPROTO, "payload of 4 bytes (expected 8)");
}

static void test_truncated_reply_then_eof_breaks_connection(void **state)
{
	(void)state;
	expect_broken(MB_TRUNCATED, VHOST_USER_GET_FEATURES, -ECONNRESET, "in the middle of the reply");
}

static void test_reply_with_wrong_version_breaks_connection(void **state)
{
	(void)state;
	expect_broken(MB_BAD_VERSION, VHOST_USER_GET_FEATURES, -EPROTO, "protocol version 2");
}

static void test_reply_without_reply_flag_breaks_connection(void **state)
{
	(void)state;
	expect_broken(MB_NO_REPLY_FLAG, VHOST_USER_GET_FEATURES, -EPROTO, "flags 0x1");
}

static void test_reply_with_unexpected_fd_is_closed_and_refused(void **state)
{
	(void)state;
	expect_broken(MB_WITH_FD, VHOST_USER_GET_FEATURES, -EPROTO, "carried 1 file descriptor");
}

static void test_missing_reply_times_out(void **state)
{
	(void)state;
	expect_broken(MB_SILENT, VHOST_USER_GET_FEATURES, -ETIMEDOUT, "no reply to GET_FEATURES within 300 ms");
}

static void test_backend_gone_instead_of_reply(void **state)
{
	(void)state;
	expect_broken(MB_CLOSE, VHOST_USER_GET_VRING_BASE, -ECONNRESET, "closed the connection");
}

static void test_vring_base_for_another_vring_is_refused(void **state)
{
	(void)state;
	expect_broken(MB_WRONG_INDEX, VHOST_USER_GET_VRING_BASE, -EPROTO, "names vring 3");
}

static void test_reply_ack_failure_is_reported(void **state)
{
	(void)state;
	expect_broken(MB_NACK, VHOST_USER_SET_OWNER, -EREMOTEIO, "refused SET_OWNER (status 1)");
}

static void test_get_config_reads_the_window_it_asked_for(void **state)
{
	struct pair *p = pair_new();
	struct err e = { 0 };
	uint8_t cfg[60];
	uint32_t win[3];
	uint64_t f, proto;
	unsigned k;
	int i;

	(void)state;
	for (k = 0; k < sizeof(p->f->config); k++)
		p->f->config[k] = (uint8_t)(k * 7 + 1);
	/* Not before protocol feature CONFIG is negotiated (and nothing is sent). */
	assert_int_equal(vhost_user__get_config(&p->vu, 0, cfg, sizeof(cfg), &e), -EOPNOTSUPP);
	assert_false(p->vu.broken);
	assert_int_equal(vhost_user__get_features(&p->vu, &f, &e), 0);
	assert_int_equal(vhost_user__get_protocol_features(&p->vu, &proto, &e), 0);
	assert_int_equal(vhost_user__set_protocol_features(&p->vu, BIT(VHOST_USER_PROTOCOL_F_CONFIG), &e), 0);
	assert_int_equal(vhost_user__get_config(&p->vu, 4, cfg, sizeof(cfg), &e), 0);
	assert_memory_equal(cfg, p->f->config + 4, sizeof(cfg));
	/* The request: offset, size, flags 0 and room for the bytes; no NEED_REPLY. */
	i = fake_find(p->f, 0, 0, VHOST_USER_GET_CONFIG, -1);
	assert_true(i >= 0);
	assert_int_equal(p->f->log[i].flags, VHOST_USER_VERSION);
	assert_int_equal(p->f->log[i].size, 12 + sizeof(cfg));
	memcpy(win, p->f->log[i].payload, sizeof(win));
	assert_int_equal(win[0], 4);
	assert_int_equal(win[1], sizeof(cfg));
	assert_int_equal(win[2], 0);
	/* A window the protocol cannot carry is refused before anything is sent. */
	assert_int_equal(vhost_user__get_config(&p->vu, 0, cfg, 0, &e), -EINVAL);
	assert_int_equal(vhost_user__get_config(&p->vu, 0, cfg, VHOST_USER_MAX_CONFIG + 1, &e), -EINVAL);
	assert_false(p->vu.broken);
	pair_free(p);
}

static void test_get_config_short_reply_is_refused(void **state)
{
	(void)state;
	expect_broken(MB_SHORT, VHOST_USER_GET_CONFIG, -EPROTO, "reply to GET_CONFIG: payload of 4 bytes (expected 72)");
}

static void test_get_config_empty_reply_is_the_backends_refusal(void **state)
{
	(void)state;
	expect_broken(MB_EMPTY, VHOST_USER_GET_CONFIG, -EREMOTEIO, "the backend refused GET_CONFIG (an empty reply)");
}

static void test_get_config_reply_for_another_window_is_refused(void **state)
{
	(void)state;
	expect_broken(MB_WRONG_WINDOW, VHOST_USER_GET_CONFIG, -EPROTO,
		      "reply to GET_CONFIG describes 60 bytes at offset 1 (asked 60 at 0)");
}

static void test_get_config_oversized_reply_is_refused_before_reading_it(void **state)
{
	(void)state;
	expect_broken(MB_TOO_BIG, VHOST_USER_GET_CONFIG, -EPROTO, "payload of 1000 bytes (expected 72)");
}

static void test_unconnected_and_peer_closed_sends_fail_cleanly(void **state)
{
	struct vhost_user vu;
	struct err e = { 0 };
	int sv[2];

	(void)state;
	vhost_user__init(&vu, "net9");
	assert_int_equal(vhost_user__set_owner(&vu, &e), -ENOTCONN);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vhost_user__attach(&vu, sv[0]), 0);
	close(sv[1]);
	assert_int_equal(vhost_user__set_owner(&vu, &e), -EPIPE); /* MSG_NOSIGNAL: no SIGPIPE */
	assert_true(vu.broken);
	vhost_user__close(&vu);
}

static void test_set_log_base_passes_the_log_fd_and_takes_the_backends_answer(void **state)
{
	struct pair *p = pair_new();
	struct err e = { 0 };
	uint64_t f, proto, size, offset;
	int fd = memfd_create("log", MFD_CLOEXEC), i;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	assert_int_equal(vhost_user__get_features(&p->vu, &f, &e), 0);
	/* Only with protocol feature LOG_SHMFD: nothing is sent without. */
	assert_int_equal(vhost_user__set_log_base(&p->vu, fd, 8192, 0, &e), -EOPNOTSUPP);
	assert_int_equal(fake_find(p->f, 0, 0, VHOST_USER_SET_LOG_BASE, -1), -1);
	assert_int_equal(vhost_user__get_protocol_features(&p->vu, &proto, &e), 0);
	proto &= BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	assert_int_equal(vhost_user__set_protocol_features(&p->vu, proto, &e), 0);
	/* The spec's (and DPDK's) answer: a reply without payload, NEED_REPLY or not. */
	assert_int_equal(vhost_user__set_log_base(&p->vu, fd, 8192, 0, &e), 0);
	i = fake_find(p->f, 0, 0, VHOST_USER_SET_LOG_BASE, -1);
	assert_true(i >= 0);
	assert_int_equal(p->f->log[i].flags, VHOST_USER_VERSION);
	log_base_of(&p->f->log[i], &size, &offset);
	assert_int_equal(size, 8192);
	assert_int_equal(offset, 0);
	assert_true(fd_ino(p->f->log[i].fds[0]) == fd_ino(fd));
	/* libvhost-user's: 8 bytes that mean nothing, read and ignored (the stream stays in step). */
	fake_misbehave(p->f, VHOST_USER_SET_LOG_BASE, MB_U64);
	assert_int_equal(vhost_user__set_log_base(&p->vu, fd, 8192, 0, &e), 0);
	assert_int_equal(vhost_user__get_features(&p->vu, &f, &e), 0);
	assert_true(f == fake_features);
	/* Any other size is not an answer to it. */
	fake_misbehave(p->f, VHOST_USER_SET_LOG_BASE, MB_SHORT);
	assert_int_equal(vhost_user__set_log_base(&p->vu, fd, 8192, 0, &e), -EPROTO);
	assert_true(p->vu.broken);
	close(fd);
	pair_free(p);
}

static void test_listen_replaces_stale_socket_but_not_other_files(void **state)
{
	char path[108];
	struct err e = { 0 };
	int fd, c, s;

	(void)state;
	snprintf(path, sizeof(path), "%s/listen.sock", sock_dir);
	unlink(path);
	fd = vhost_user__listen(path, &e);
	assert_true(fd >= 0);
	close(fd); /* the socket file stays: a stale socket */
	fd = vhost_user__listen(path, &e);
	assert_true(fd >= 0);
	c = vhost_user__connect(path);
	assert_true(c >= 0);
	s = vhost_user__accept(fd);
	assert_true(s >= 0);
	assert_int_equal(vhost_user__accept(fd), -EAGAIN);
	close(s);
	close(c);
	close(fd);
	unlink(path);
	assert_int_equal(vhost_user__connect(path), -ENOENT);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(vhost_user__listen(path, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "is not a socket"));
	unlink(path);
}

/* ---------------------------------------------------------------- virtio-net device tests */

#define RAM_SIZE (16u << 20)
#define CLIENT   false          /* the device connects to the fake */
#define SERVER   true           /* the device listens, the fake connects */
#define QSIZE    256

struct env {
	struct guest_mem mem;
	struct fake *f;
	struct virtio_dev *dev;
	struct virtio_net_spec nic;
	struct virtio_queue q[VIRTIO_MAX_QUEUES];
	unsigned nr_queues;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned config_changes;
	int ctrl_q;                 /* the control queue's index, -1: after all pairs (MQ) */
};

static void on_config_changed(struct virtio_dev *vdev)
{
	struct env *env = vdev->transport;

	pthread_mutex_lock(&env->lock);
	env->config_changes++;
	pthread_cond_broadcast(&env->cond);
	pthread_mutex_unlock(&env->lock);
}

static bool wait_config_changes(struct env *env, unsigned n, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&env->lock);
	while (env->config_changes < n)
		if (pthread_cond_timedwait(&env->cond, &env->lock, &ts))
			break;
	ok = env->config_changes >= n;
	pthread_mutex_unlock(&env->lock);
	return ok;
}

static uint16_t link_status(struct env *env)
{
	struct virtio_net_config cfg;

	env->dev->ops->config_read(env->dev, 0, &cfg, sizeof(cfg));
	return cfg.status;
}

static uint64_t q_desc(unsigned i)  { return 0x100000 + i * 0x10000ull; }
static uint64_t q_avail(unsigned i) { return q_desc(i) + 0x1000; }
static uint64_t q_used(unsigned i)  { return q_desc(i) + 0x2000; }

/*
 * A device whose backend must run as `only` (TRUST_NO_UID: root or our uid, the
 * default), over `ram` bytes of guest RAM, the fake offering neither features
 * `no_features` nor protocol features `no_protocol`.
 */
static struct env *env_new_full(unsigned pairs, bool server, uid_t only, uint64_t ram,
				uint64_t no_features, uint64_t no_protocol)
{
	struct env *env = calloc(1, sizeof(*env));
	static unsigned seq;
	struct err e = { 0 };
	unsigned i;

	pthread_mutex_init(&env->lock, NULL);
	pthread_cond_init(&env->cond, NULL);
	assert_int_equal(guest_mem__create(&env->mem, ram), 0);
	env->f = fake_new();
	env->f->features &= ~no_features;
	env->f->protocol &= ~no_protocol;
	snprintf(env->nic.name, sizeof(env->nic.name), "net%u", seq);
	snprintf(env->nic.socket, sizeof(env->nic.socket), "%s/net-%u.sock", sock_dir, seq++);
	memcpy(env->nic.mac, "\x02\x00\x00\x00\x00\x01", 6);
	env->nic.queues = pairs;
	env->nic.server = server;
	env->ctrl_q = -1;
	if (only != TRUST_NO_UID) {
		env->nic.peers_set = true;
		env->nic.peers = (struct trust_uids){ .service = TRUST_NO_UID, .only = only };
	}
	unlink(env->nic.socket);
	if (!server)
		fake_listen(env->f, env->nic.socket);
	else
		snprintf(env->f->path, sizeof(env->f->path), "%s", env->nic.socket);
	if (!server)
		fake_start(env->f);
	assert_int_equal(virtio_net__create(&env->nic, &env->mem, &env->dev, &e), 0);
	env->dev->transport = env;
	env->dev->config_changed = on_config_changed;
	if (server)
		fake_start(env->f);
	env->nr_queues = env->dev->max_queues;
	for (i = 0; i < env->nr_queues; i++) {
		env->q[i] = (struct virtio_queue){ .size = QSIZE, .enabled = true, .desc = q_desc(i),
						   .driver = q_avail(i), .device = q_used(i),
						   .msix_vector = (uint16_t)i,
						   .kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
						   .call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	}
	return env;
}

static struct env *env_new_peers(unsigned pairs, bool server, uid_t only)
{
	return env_new_full(pairs, server, only, RAM_SIZE, 0, 0);
}

static struct env *env_new(unsigned pairs, bool server)
{
	return env_new_peers(pairs, server, TRUST_NO_UID);
}

static void env_free(struct env *env)
{
	unsigned i;

	virtio_net__destroy(env->dev);
	fake_free(env->f);
	for (i = 0; i < env->nr_queues; i++) {
		close(env->q[i].kick_fd);
		close(env->q[i].call_fd);
	}
	unlink(env->nic.socket);
	guest_mem__destroy(&env->mem);
	free(env);
}

/* Waits until the session's thread has done what the driver asked (activation, reset, enables). */
static void env_settle(struct env *env)
{
	int k;

	for (k = 0; k < 1000 && env->dev->ops->resetting(env->dev); k++)
		usleep(10000);
	assert_false(env->dev->ops->resetting(env->dev));
}

static int env_activate(struct env *env, uint64_t features)
{
	struct virtio_activation a = { .features = features, .nr_queues = env->nr_queues,
				       .queues = env->q, .mem = &env->mem };
	int err = env->dev->ops->activate(env->dev, &a);

	if (!err)
		env_settle(env);
	return err;
}

/* Activation as the transport does it, without waiting for the session's thread. */
static int env_activate_nowait(struct env *env, uint64_t features)
{
	struct virtio_activation a = { .features = features, .nr_queues = env->nr_queues,
				       .queues = env->q, .mem = &env->mem };

	return env->dev->ops->activate(env->dev, &a);
}

static void env_reset(struct env *env)
{
	env->dev->ops->reset(env->dev);
	env_settle(env);
}

static uint32_t state_num(const struct msg *m)
{
	uint32_t s[2];

	memcpy(s, m->payload, sizeof(s));
	return s[1];
}

static void test_net_offers_backend_data_features_never_protocol_bit(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct virtio_net_stats st;
	uint64_t f;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	f = env->dev->ops->features(env->dev);
	assert_true(f == (BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_F_VERSION_1) |
			  BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_RING_F_EVENT_IDX) |
			  BIT(VIRTIO_RING_F_INDIRECT_DESC)));
	assert_int_equal(env->dev->device_id, 1);
	assert_int_equal(env->dev->max_queues, 2);
	assert_int_equal(env->dev->config_size, 12);
	assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
	virtio_net__stats(env->dev, &st);
	assert_true(st.session.link_up && st.session.backend_known && st.session.connects == 1);
	/* MQ and REPLY_ACK the NIC's, LOG_SHMFD every session's (a live migration's dirty log). */
	assert_true(st.session.backend_protocol ==
		    (BIT(0) | BIT(3) | BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD)));
	/* The handshake in order, and no multiqueue query for one pair. */
	assert_int_equal(env->f->log[0].req, VHOST_USER_GET_FEATURES);
	assert_int_equal(env->f->log[1].req, VHOST_USER_GET_PROTOCOL_FEATURES);
	assert_int_equal(env->f->log[2].req, VHOST_USER_SET_PROTOCOL_FEATURES);
	assert_int_equal(env->f->log[3].req, VHOST_USER_SET_OWNER);
	assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_GET_QUEUE_NUM, -1), -1);
	env_free(env);
}

static void test_net_mq_config_and_queue_layout(void **state)
{
	struct env *env = env_new(4, CLIENT);
	struct virtio_net_config cfg;
	uint8_t b[4];
	uint64_t f;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	f = env->dev->ops->features(env->dev);
	assert_true(f & BIT(VIRTIO_NET_F_MQ));
	assert_true(f & BIT(VIRTIO_NET_F_CTRL_VQ));
	assert_false(f & BIT(VIRTIO_NET_F_CTRL_RX));
	assert_false(f & BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	assert_int_equal(env->dev->max_queues, 9);
	env->dev->ops->config_read(env->dev, 0, &cfg, sizeof(cfg));
	assert_memory_equal(cfg.mac, "\x02\x00\x00\x00\x00\x01", 6);
	assert_int_equal(cfg.max_virtqueue_pairs, 4);
	assert_int_equal(cfg.status, VIRTIO_NET_S_LINK_UP);
	/* Partial and out-of-range reads are bounded. */
	memset(b, 0xaa, sizeof(b));
	env->dev->ops->config_read(env->dev, 10, b, 4);
	assert_int_equal(b[0] | b[1] << 8, 1500);
	assert_int_equal(b[2] | b[3], 0);
	assert_true(fake_find(env->f, 0, 0, VHOST_USER_GET_QUEUE_NUM, -1) >= 0);
	env_free(env);
}

static void test_net_activate_hands_rings_to_backend_as_frontend_addresses(void **state)
{
	struct env *env = env_new(1, CLIENT);
	uint64_t feat, u[4], v;
	const struct msg *m;
	unsigned r;
	int i;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	feat = env->dev->ops->features(env->dev);
	assert_int_equal(env_activate(env, feat), 0);

	i = fake_find(env->f, 0, 1, VHOST_USER_SET_FEATURES, -1);
	assert_true(i >= 0);
	/* The data path, plus bit 30 for the backend; MAC/STATUS are the device's own. */
	assert_true(payload_u64(&env->f->log[i]) ==
		    (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_RING_F_EVENT_IDX) |
		     BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VHOST_USER_F_PROTOCOL_FEATURES)));
	i = fake_find(env->f, 0, 1, VHOST_USER_SET_MEM_TABLE, -1);
	assert_true(i >= 0);
	assert_int_equal(env->f->log[i].nfds, 1);
	for (r = 0; r < 2; r++) {
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_NUM, (int)r);
		assert_int_equal(state_num(&env->f->log[i]), QSIZE);
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_BASE, (int)r);
		assert_int_equal(state_num(&env->f->log[i]), 0);
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_ADDR, (int)r);
		m = &env->f->log[i];
		memcpy(u, m->payload + 8, sizeof(u));
		/* desc, used, avail: our virtual addresses of the guest's rings; log: the used ring's gpa. */
		assert_true(u[0] == (uint64_t)(uintptr_t)(env->mem.base + q_desc(r)));
		assert_true(u[1] == (uint64_t)(uintptr_t)(env->mem.base + q_used(r)));
		assert_true(u[2] == (uint64_t)(uintptr_t)(env->mem.base + q_avail(r)));
		assert_true(u[3] == q_used(r));
		/* The kick and call fds are the transport's eventfds. */
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_KICK, (int)r);
		assert_int_equal(env->f->log[i].nfds, 1);
		v = 1;
		assert_int_equal(write(env->f->log[i].fds[0], &v, 8), 8);
		assert_int_equal(read(env->q[r].kick_fd, &v, 8), 8);
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_CALL, (int)r);
		assert_int_equal(env->f->log[i].nfds, 1);
		v = 1;
		assert_int_equal(write(env->f->log[i].fds[0], &v, 8), 8);
		assert_int_equal(read(env->q[r].call_fd, &v, 8), 8);
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_int_equal(state_num(&env->f->log[i]), 1);
		/* Enable comes last for the ring. */
		assert_true(i > fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_CALL, (int)r));
		/* The call fd before the kick: a backend may complete queued work as soon as it is kicked. */
		assert_true(fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_CALL, (int)r) <
			    fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_KICK, (int)r));
	}
	env_free(env);
}

static void test_net_reset_stops_rings_with_get_vring_base(void **state)
{
	struct env *env = env_new(1, CLIENT);
	int i, j;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	env_reset(env);
	for (unsigned r = 0; r < 2; r++) {
		i = fake_find(env->f, 0, 1, VHOST_USER_GET_VRING_BASE, (int)r);
		assert_true(i >= 0);
		/* Disabled before stopped. */
		j = fake_find(env->f, (unsigned)fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_ENABLE, (int)r) + 1,
			      1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_true(j >= 0 && j < i);
		assert_int_equal(state_num(&env->f->log[j]), 0);
	}
	/* Still connected: the link stays up for the next activation. */
	assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
	env_free(env);
}

static void test_net_ring_outside_guest_ram_never_reaches_backend(void **state)
{
	struct env *env = env_new(1, CLIENT);

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	env->q[1].device = RAM_SIZE - 64; /* 4 + 8 * 256 bytes do not fit */
	assert_true(env_activate(env, env->dev->ops->features(env->dev)) < 0);
	env->q[1].device = q_used(1);
	env->q[0].desc = q_desc(0) + 8; /* misaligned */
	assert_true(env_activate(env, env->dev->ops->features(env->dev)) < 0);
	env->q[0].desc = q_desc(0);
	env->q[0].size = 100; /* not a power of two */
	assert_true(env_activate(env, env->dev->ops->features(env->dev)) < 0);
	assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_VRING_ADDR, -1), -1);
	assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_MEM_TABLE, -1), -1);
	env_free(env);
}

static void test_net_backend_gone_link_down_then_rings_resume_from_used_idx(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct virtio_net_stats st;
	uint16_t used_idx = 7;
	int i;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	assert_true(wait_config_changes(env, 0, 0));
	/* The backend completed 7 transmissions, then crashes. */
	assert_int_equal(guest_mem__write(&env->mem, q_used(1) + 2, &used_idx, 2), 0);
	pthread_mutex_lock(&env->lock);
	env->config_changes = 0;
	pthread_mutex_unlock(&env->lock);
	fake_drop(env->f);
	/* Link down (a config interrupt), then up again once the fake accepts the reconnection. */
	assert_true(wait_config_changes(env, 2, 10000));
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	virtio_net__stats(env->dev, &st);
	assert_int_equal(st.session.disconnects, 1);
	assert_int_equal(st.session.connects, 2);
	assert_int_equal(st.session.link_changes, 3);
	assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
	/* The new backend got everything again, the tx ring from the guest's used index. */
	i = fake_wait(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 1, 10000);
	assert_true(i >= 0);
	assert_true(fake_find(env->f, 0, 2, VHOST_USER_SET_MEM_TABLE, -1) >= 0);
	i = fake_find(env->f, 0, 2, VHOST_USER_SET_VRING_BASE, 1);
	assert_int_equal(state_num(&env->f->log[i]), 7);
	i = fake_find(env->f, 0, 2, VHOST_USER_SET_VRING_BASE, 0);
	assert_int_equal(state_num(&env->f->log[i]), 0);
	env_free(env);
}

static void test_net_malformed_reply_takes_link_down_and_retries(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct virtio_net_stats st;
	int i;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	/* The backend answers SET_MEM_TABLE with another request's reply. */
	fake_misbehave(env->f, VHOST_USER_SET_MEM_TABLE, MB_WRONG_CODE);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0); /* not the guest's fault */
	virtio_net__stats(env->dev, &st);
	assert_int_equal(st.session.failures, 1);
	assert_non_null(strstr(st.session.last_error, "reply to SET_MEM_TABLE carries request 6"));
	/* The link went down; the thread reconnects and sets the rings up. */
	assert_true(wait_config_changes(env, 2, 10000));
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	i = fake_wait(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 1, 10000);
	assert_true(i >= 0);
	virtio_net__stats(env->dev, &st);
	assert_int_equal(st.session.connects, 2);
	env_free(env);
}

static void test_net_backend_without_enough_queues_keeps_link_down(void **state)
{
	struct env *env = env_new(4, CLIENT);
	struct virtio_net_stats st;
	int k;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	/* The backend comes back with only 2 queue pairs: a clear error, link down, the VM goes on. */
	pthread_mutex_lock(&env->f->lock);
	env->f->queue_num = 2;
	pthread_mutex_unlock(&env->f->lock);
	fake_drop(env->f);
	for (k = 0; k < 150; k++) {
		virtio_net__stats(env->dev, &st);
		if (st.session.failures)
			break;
		usleep(20000);
	}
	assert_true(st.session.failures >= 1);
	assert_non_null(strstr(st.session.last_error, "supports 2 queue pairs, 4 configured"));
	assert_int_equal(link_status(env), 0);
	assert_false(st.session.link_up);
	env_free(env);
}

static void test_net_without_reply_ack_syncs_with_get_features(void **state)
{
	struct env *env = env_new(1, CLIENT);
	int i, last;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	/* Reconnect to a backend without REPLY_ACK. */
	pthread_mutex_lock(&env->f->lock);
	env->f->protocol = BIT(VHOST_USER_PROTOCOL_F_MQ);
	pthread_mutex_unlock(&env->f->lock);
	fake_drop(env->f);
	assert_true(wait_config_changes(env, 2, 10000));
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	i = fake_find(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 1);
	assert_true(i >= 0);
	assert_int_equal(env->f->log[i].flags, VHOST_USER_VERSION); /* no NEED_REPLY */
	last = fake_find(env->f, (unsigned)i, 2, VHOST_USER_GET_FEATURES, -1);
	assert_true(last > i);
	env_free(env);
}

static void test_net_server_mode_accepts_backend_and_its_return(void **state)
{
	struct env *env = env_new(1, SERVER);
	struct virtio_net_stats st;
	struct stat sb;

	(void)state;
	assert_int_equal(stat(env->nic.socket, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	/* Activated before any backend: the rings go out when it connects. */
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_true(fake_wait(env->f, 0, 1, VHOST_USER_SET_VRING_ENABLE, 1, 10000) >= 0);
	fake_drop(env->f);
	assert_true(fake_wait(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 1, 10000) >= 0);
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	/* Up, down, up; the thread may fold a quick down-up into one interrupt. */
	assert_true(wait_config_changes(env, 2, 10000));
	virtio_net__stats(env->dev, &st);
	assert_int_equal(st.session.link_changes, 3);
	assert_int_equal(st.session.connects, 2);
	assert_int_equal(st.session.disconnects, 1);
	{
		char path[108];

		snprintf(path, sizeof(path), "%s", env->nic.socket);
		env_free(env);
		/* The listening socket is gone with the device. */
		assert_int_equal(stat(path, &sb), -1);
	}
}

/* ---- control queue ---- */

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

#define CTRL_BUF 0x400000ull

static void ctrl_put_desc(struct env *env, unsigned q, unsigned i, struct desc d)
{
	assert_int_equal(guest_mem__write(&env->mem, q_desc(q) + 16ull * i, &d, sizeof(d)), 0);
}

/* Publishes head `head` as the next available entry and kicks. */
static void ctrl_publish(struct env *env, unsigned q, uint16_t slot, uint16_t head, uint16_t idx)
{
	uint64_t one = 1;

	assert_int_equal(guest_mem__write(&env->mem, q_avail(q) + 4 + 2ull * slot, &head, 2), 0);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	assert_int_equal(guest_mem__write(&env->mem, q_avail(q) + 2, &idx, 2), 0);
	assert_int_equal(write(env->q[q].kick_fd, &one, 8), 8);
}

static bool wait_call(struct env *env, unsigned q, int timeout_ms)
{
	struct pollfd p = { .fd = env->q[q].call_fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(env->q[q].call_fd, &v, 8) == 8;
}

/* A well-formed command: header, data, ack, as Linux lays it out; returns the ack. */
static int ctrl_command(struct env *env, uint16_t n, uint8_t cls, uint8_t cmd, const void *data,
			uint32_t len)
{
	const unsigned cq = env->ctrl_q >= 0 ? (unsigned)env->ctrl_q : 2 * env->nic.queues;
	uint8_t hdr[2] = { cls, cmd }, ack = 0xee;
	uint16_t used_idx;
	uint32_t elem[2];

	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF, hdr, 2), 0);
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF + 0x100, data, len), 0);
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF + 0x200, &ack, 1), 0);
	ctrl_put_desc(env, cq, 10, (struct desc){ CTRL_BUF, 2, 1, 11 });
	ctrl_put_desc(env, cq, 11, (struct desc){ CTRL_BUF + 0x100, len, 1, 12 });
	ctrl_put_desc(env, cq, 12, (struct desc){ CTRL_BUF + 0x200, 1, 2, 0 });
	ctrl_publish(env, cq, n, 10, (uint16_t)(n + 1));
	if (!wait_call(env, cq, 2000))
		return -1;
	env_settle(env);
	memcpy(&used_idx, env->mem.base + q_used(cq) + 2, 2);
	assert_int_equal(used_idx, n + 1);
	memcpy(elem, env->mem.base + q_used(cq) + 4 + 8 * (n % QSIZE), 8);
	assert_int_equal(elem[0], 10);
	assert_int_equal(elem[1], 1);
	memcpy(&ack, env->mem.base + CTRL_BUF + 0x200, 1);
	return ack;
}

static void test_net_ctrl_mq_vq_pairs_set_enables_backend_rings(void **state)
{
	struct env *env = env_new(2, CLIENT);
	struct virtio_net_stats st;
	uint16_t pairs = 2, avail_event;
	uint8_t junk[2] = { 0 };
	unsigned from;
	int i;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	/* Only the first pair runs until the driver asks for more. */
	for (unsigned r = 0; r < 4; r++) {
		i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_true(i >= 0);
		assert_int_equal(state_num(&env->f->log[i]), r < 2);
	}
	/* The control queue is the monitor's: never handed to the backend. */
	assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_VRING_ADDR, 4), -1);
	from = env->f->nlog;
	assert_int_equal(ctrl_command(env, 0, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
				      &pairs, 2), VIRTIO_NET_OK);
	for (unsigned r = 2; r < 4; r++) {
		i = fake_find(env->f, from, 1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_true(i >= 0);
		assert_int_equal(state_num(&env->f->log[i]), 1);
	}
	/* EVENT_IDX: the device tells the driver where to kick next. */
	memcpy(&avail_event, env->mem.base + q_used(4) + 4 + 8 * QSIZE, 2);
	assert_int_equal(avail_event, 1);
	/* Out of range, unknown class: ERR, and the queue keeps working. */
	pairs = 3;
	assert_int_equal(ctrl_command(env, 1, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
				      &pairs, 2), VIRTIO_NET_ERR);
	assert_int_equal(ctrl_command(env, 2, 0 /* RX */, 0, junk, 1), VIRTIO_NET_ERR);
	pairs = 1;
	assert_int_equal(ctrl_command(env, 3, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
				      &pairs, 2), VIRTIO_NET_OK);
	virtio_net__stats(env->dev, &st);
	assert_int_equal(st.ctrl_commands, 2);
	assert_int_equal(st.ctrl_errors, 2);
	assert_int_equal(st.queue_pairs, 1);
	/* Reconnection keeps the guest's choice: pair 1 stays disabled in the new backend. */
	fake_drop(env->f);
	assert_true(fake_wait(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 3, 10000) >= 0);
	i = fake_find(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 3);
	assert_int_equal(state_num(&env->f->log[i]), 0);
	i = fake_find(env->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 1);
	assert_int_equal(state_num(&env->f->log[i]), 1);
	env_free(env);
}

static void test_net_ctrl_vq_without_mq_is_never_handed_to_the_backend(void **state)
{
	struct env *env = env_new(2, CLIENT);
	uint64_t feat;
	unsigned r;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	/* CTRL_VQ without MQ: one pair, the control queue follows it at 2 (even with 2 pairs). */
	feat = env->dev->ops->features(env->dev) & ~BIT(VIRTIO_NET_F_MQ);
	assert_true(feat & BIT(VIRTIO_NET_F_CTRL_VQ));
	assert_int_equal(env_activate(env, feat), 0);
	for (r = 0; r < 2; r++) {
		assert_true(fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_ADDR, (int)r) >= 0);
		assert_true(fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_KICK, (int)r) >= 0);
	}
	/* Vring 2 is the monitor's control queue, 3 and 4 are not in use without MQ. */
	for (r = 2; r < env->nr_queues; r++) {
		assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_VRING_NUM, (int)r), -1);
		assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_VRING_ADDR, (int)r), -1);
		assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_VRING_KICK, (int)r), -1);
		assert_int_equal(fake_find(env->f, 0, 0, VHOST_USER_SET_VRING_ENABLE, (int)r), -1);
	}
	/* The monitor serves it: a multiqueue command without MQ is answered ERR. */
	env->ctrl_q = 2;
	{
		uint16_t pairs = 2;

		assert_int_equal(ctrl_command(env, 0, VIRTIO_NET_CTRL_MQ,
					      VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
				 VIRTIO_NET_ERR);
	}
	env_free(env);
}

static void test_net_activation_never_waits_for_a_silent_backend(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct virtio_activation a;
	struct timespec t0, t1;
	uint64_t feat;
	long ms;
	int i;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	feat = env->dev->ops->features(env->dev);
	/* The backend takes the memory table and never answers (REPLY_ACK): a 3 s reply timeout. */
	fake_misbehave(env->f, VHOST_USER_SET_MEM_TABLE, MB_SILENT);
	a = (struct virtio_activation){ .features = feat, .nr_queues = env->nr_queues,
					.queues = env->q, .mem = &env->mem };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(env->dev->ops->activate(env->dev, &a), 0);
	assert_true(fake_wait(env->f, 0, 1, VHOST_USER_SET_MEM_TABLE, -1, 10000) >= 0);
	/* While the thread waits for the reply: a reset and a new activation return at once. */
	env->dev->ops->reset(env->dev);
	assert_true(env->dev->ops->resetting(env->dev));
	env->q[0].desc = q_desc(3);   /* the driver moved a ring: the new one must be what counts */
	assert_int_equal(env->dev->ops->activate(env->dev, &a), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 500);
	/* The thread times out, reconnects and sets up the latest activation only. */
	env_settle(env);
	i = fake_wait(env->f, 0, 2, VHOST_USER_SET_VRING_ADDR, 0, 10000);
	assert_true(i >= 0);
	{
		uint64_t u[4];

		memcpy(u, env->f->log[i].payload + 8, sizeof(u));
		assert_true(u[0] == (uint64_t)(uintptr_t)(env->mem.base + q_desc(3)));
	}
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	env_free(env);
}

/* vm.counters for a NIC: link, the backend's connections and features, what the driver negotiated. */
static void test_net_counters_show_link_connects_features_and_queue_pairs(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct counters c;
	struct counter_sink sink;
	uint64_t feat;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	sink = counters_sink(&c);
	env->dev->ops->counters(env->dev, &sink);
	assert_string_equal(counters_str(&c, "link"), "up");
	assert_int_equal(counters_num(&c, "backend_connects"), 1);
	assert_int_equal(counters_num(&c, "backend_disconnects"), 0);
	assert_true(counters_num(&c, "backend_features") == fake_features);
	assert_int_equal(counters_num(&c, "negotiated_features"), 0);
	assert_int_equal(counters_num(&c, "queue_pairs"), 0);
	assert_int_equal(counters_num(&c, "max_queue_pairs"), 1);
	assert_int_equal(counters_num(&c, "queue_size"), VM_NIC_QUEUE_SIZE_DEFAULT);

	feat = env->dev->ops->features(env->dev);
	assert_int_equal(env_activate(env, feat), 0);
	sink = counters_sink(&c);
	env->dev->ops->counters(env->dev, &sink);
	assert_true(counters_num(&c, "negotiated_features") == feat);
	assert_int_equal(counters_num(&c, "queue_pairs"), 1);

	/* The backend goes away and comes back: both counted, the link up again. */
	fake_drop(env->f);
	assert_true(wait_config_changes(env, 2, 10000));
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	sink = counters_sink(&c);
	env->dev->ops->counters(env->dev, &sink);
	assert_string_equal(counters_str(&c, "link"), "up");
	assert_int_equal(counters_num(&c, "backend_disconnects"), 1);
	assert_int_equal(counters_num(&c, "backend_connects"), 2);
	assert_int_equal(counters_num(&c, "link_changes"), 3);
	assert_true(counters_has(&c, "last_error"));
	env_free(env);
}

/* The session's thread holds its lock while a backend does not answer: counters never wait for it. */
static void test_net_counters_answer_at_once_while_the_backend_is_silent(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct counters c;
	struct counter_sink sink;
	struct timespec t0, t1;
	long ms;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	fake_misbehave(env->f, VHOST_USER_SET_MEM_TABLE, MB_SILENT);   /* a 3 s reply timeout */
	assert_int_equal(env_activate_nowait(env, env->dev->ops->features(env->dev)), 0);
	assert_true(fake_wait(env->f, 0, 1, VHOST_USER_SET_MEM_TABLE, -1, 10000) >= 0);
	usleep(100000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sink = counters_sink(&c);
	env->dev->ops->counters(env->dev, &sink);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (ms >= 500)
		fail_msg("the counters took %ld ms: they waited for the backend", ms);
	assert_int_equal(counters_num(&c, "backend_connects"), 1);
	env_settle(env);
	env_free(env);
}

static void test_net_backend_of_another_uid_is_refused_before_anything_is_sent(void **state)
{
	struct virtio_net_stats st;
	char log[4096], *p;
	struct env *env;
	int k, saved, logfd, said;
	ssize_t n;

	(void)state;
	/* What the session says goes to a file: each cause once, however often it retries. */
	snprintf(log, sizeof(log), "%s/stderr.log", sock_dir);
	logfd = open(log, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(logfd >= 0);
	saved = dup(STDERR_FILENO);
	assert_int_equal(dup2(logfd, STDERR_FILENO), STDERR_FILENO);
	/* Client mode: the fake runs as us, the plan says the backend runs as uid 65534 (or 65533). */
	env = env_new_peers(1, CLIENT, getuid() == 65534 ? 65533 : 65534);
	for (k = 0; k < 200; k++) {
		virtio_net__stats(env->dev, &st);
		if (st.session.refused >= 3)
			break;
		usleep(10000);
	}
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(logfd, log, sizeof(log) - 1, 0);
	close(logfd);
	log[n > 0 ? n : 0] = '\0';
	for (said = 0, p = log; (p = strstr(p, "runs as uid")); p++)
		said++;
	assert_int_equal(said, 1);
	assert_non_null(strstr(log, "further refusals only counted"));
	/* Refused on each retry, and nothing reached the peer: no GET_FEATURES, no memory table. */
	assert_true(st.session.refused >= 3);
	assert_int_equal(env->f->nlog, 0);
	assert_int_equal(st.session.connects, 0);
	assert_false(st.session.link_up);
	assert_int_equal(link_status(env), 0);
	assert_non_null(strstr(st.session.last_error, "runs as uid"));
	assert_int_equal(virtio_net__wait_backend(env->dev, 100), -ETIMEDOUT);
	env_free(env);

	/* Server mode: the connecting backend is refused the same way; the listener stays. */
	env = env_new_peers(1, SERVER, getuid() == 65534 ? 65533 : 65534);
	for (k = 0; k < 200; k++) {
		virtio_net__stats(env->dev, &st);
		if (st.session.refused >= 2)
			break;
		usleep(10000);
	}
	assert_true(st.session.refused >= 2);
	assert_int_equal(env->f->nlog, 0);
	assert_false(st.session.link_up);
	env_free(env);

	/* The same backend with its uid named is served. */
	env = env_new_peers(1, CLIENT, getuid());
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	env_free(env);
}

/* A NIC at `socket`, from a spec; returns create's result, `e` the error. */
static int nic_try(const char *socket, bool server, const char *run_dir, struct err *e)
{
	struct virtio_net_spec nic = { .name = "net7", .queues = 1, .server = server,
				       .run_dir_uid = TRUST_NO_UID, .run_dir_gid = (gid_t)-1 };
	struct guest_mem mem;
	struct virtio_dev *dev;
	int err;

	snprintf(nic.socket, sizeof(nic.socket), "%s", socket);
	if (run_dir)
		snprintf(nic.run_dir, sizeof(nic.run_dir), "%s", run_dir);
	assert_int_equal(guest_mem__create(&mem, RAM_SIZE), 0);
	err = virtio_net__create(&nic, &mem, &dev, e);
	if (!err)
		virtio_net__destroy(dev);
	guest_mem__destroy(&mem);
	return err;
}

/* The ring size the device offers (queue_size): the default, a plan's, and refusals by value. */
static void test_net_queue_size_is_offered_and_bounded(void **state)
{
	static const unsigned bad[] = { 1000, 32, 65536, 96 };
	struct virtio_net_spec nic = { .name = "net7", .queues = 2, .server = SERVER,
				       .run_dir_uid = TRUST_NO_UID, .run_dir_gid = (gid_t)-1 };
	struct guest_mem mem;
	struct virtio_dev *dev;
	struct err e = { 0 };
	char want[128];
	unsigned i;

	(void)state;
	snprintf(nic.socket, sizeof(nic.socket), "%s/qs.sock", sock_dir);
	assert_int_equal(guest_mem__create(&mem, RAM_SIZE), 0);
	assert_int_equal(virtio_net__create(&nic, &mem, &dev, &e), 0);
	assert_int_equal(dev->queue_max_size, VM_NIC_QUEUE_SIZE_DEFAULT);
	virtio_net__destroy(dev);
	nic.queue_size = 4096;
	assert_int_equal(virtio_net__create(&nic, &mem, &dev, &e), 0);
	assert_int_equal(dev->queue_max_size, 4096);
	virtio_net__destroy(dev);
	nic.queue_size = VM_NIC_QUEUE_SIZE_MAX;
	assert_int_equal(virtio_net__create(&nic, &mem, &dev, &e), 0);
	assert_int_equal(dev->queue_max_size, 32768);
	virtio_net__destroy(dev);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		nic.queue_size = bad[i];
		assert_int_equal(virtio_net__create(&nic, &mem, &dev, &e), -EINVAL);
		snprintf(want, sizeof(want), "nic 'net7': queue size %u: a power of two from 64 to "
			 "32768", bad[i]);
		if (!strstr(e.msg, want))
			fail_msg("'%s' lacks '%s'", e.msg, want);
	}
	guest_mem__destroy(&mem);
}

static void test_net_socket_in_a_writable_directory_is_refused(void **state)
{
	char dir[96], sock[128];
	struct err e = { 0 };

	(void)state;
	snprintf(dir, sizeof(dir), "%s/open", sock_dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	snprintf(sock, sizeof(sock), "%s/n.sock", dir);
	assert_int_equal(nic_try(sock, CLIENT, NULL, &e), -EPERM);
	assert_non_null(strstr(e.msg, "nic 'net7'"));
	assert_non_null(strstr(e.msg, sock));
	assert_non_null(strstr(e.msg, "world-writable"));
	assert_int_equal(chmod(dir, 0720), 0);
	assert_int_equal(nic_try(sock, SERVER, NULL, &e), -EPERM);
	assert_non_null(strstr(e.msg, "group-writable"));
	assert_int_equal(access(sock, F_OK), -1); /* nothing bound there */
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(nic_try(sock, SERVER, NULL, &e), 0);
	rmdir(dir);
}

static void test_net_creates_the_run_dir_0700_for_its_socket(void **state)
{
	char run[96], sock[128];
	struct err e = { 0 };
	struct stat st;

	(void)state;
	snprintf(run, sizeof(run), "%s/run", sock_dir);
	snprintf(sock, sizeof(sock), "%s/n.sock", run);
	/* Without the run dir named, a missing directory is an error... */
	assert_true(nic_try(sock, SERVER, NULL, &e) < 0);
	assert_non_null(strstr(e.msg, "nic 'net7'"));
	/* ...with it, it is created 0700 and the server listens there. */
	assert_int_equal(nic_try(sock, SERVER, run, &e), 0);
	assert_int_equal(stat(run, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	rmdir(run);
}

static void test_net_server_never_unlinks_a_live_socket(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct err e = { 0 };
	char sock[128];
	int l, c;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/live.sock", sock_dir);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(nic_try(sock, SERVER, NULL, &e), -EADDRINUSE);
	assert_non_null(strstr(e.msg, "another process listens on"));
	/* The other listener still has its socket. */
	c = vhost_user__connect(sock);
	assert_true(c >= 0);
	close(c);
	close(l);
	/* Once nobody listens, the stale file is replaced. */
	assert_int_equal(nic_try(sock, SERVER, NULL, &e), 0);
	unlink(sock);
}

static void test_net_detached_transport_hears_no_more_changes(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct virtio_net_stats st;
	int k;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	env->dev->ops->detach(env->dev);
	assert_null(env->dev->config_changed);
	pthread_mutex_lock(&env->lock);
	env->config_changes = 0;
	pthread_mutex_unlock(&env->lock);
	/* The backend goes: the link goes down, and the transport that left is not told. */
	fake_drop(env->f);
	for (k = 0; k < 500; k++) {
		virtio_net__stats(env->dev, &st);
		if (!st.session.link_up)
			break;
		usleep(10000);
	}
	assert_false(st.session.link_up);
	assert_false(wait_config_changes(env, 1, 300));
	env_free(env);
}

enum bad_chain {
	BAD_HEAD_INDEX,
	BAD_ADDR_OUTSIDE_RAM,
	BAD_HUGE_LEN,
	BAD_LOOP,
	BAD_NEXT_OUT_OF_RANGE,
	BAD_NESTED_INDIRECT,
	BAD_INDIRECT_OUTSIDE_RAM,
	BAD_INDIRECT_LEN,
	BAD_NO_WRITABLE,
	BAD_READ_AFTER_WRITE,
	BAD_AVAIL_RUNS_AHEAD,
	BAD_INDIRECT_LOOP,
	NR_BAD,
};

static const char *const bad_names[NR_BAD] = {
	"head index out of range", "buffer outside RAM", "length wraps past RAM", "loop",
	"next out of range", "nested indirect", "indirect table outside RAM",
	"indirect length not a multiple of 16", "no writable byte", "readable after writable",
	"available index runs ahead", "loop inside an indirect table",
};

static void test_net_ctrl_bad_descriptors_stop_queue_without_crash(void **state)
{
	struct env *env = env_new(2, CLIENT);
	const unsigned cq = 4;
	uint64_t feat;
	struct virtio_net_stats st;
	unsigned b;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	feat = env->dev->ops->features(env->dev);
	for (b = 0; b < NR_BAD; b++) {
		uint16_t head = 0, idx = 1;
		uint64_t tbl = CTRL_BUF + 0x1000;
		unsigned k;

		print_message("    bad chain: %s\n", bad_names[b]);
		memset(env->mem.base + q_desc(cq), 0, 0x3000);
		memset(env->mem.base + CTRL_BUF, 0, 0x2000);
		assert_int_equal(env_activate(env, feat), 0);
		switch (b) {
		case BAD_HEAD_INDEX:
			head = QSIZE + 44;
			break;
		case BAD_ADDR_OUTSIDE_RAM:
			ctrl_put_desc(env, cq, 0, (struct desc){ RAM_SIZE + 0x1000, 2, 1, 1 });
			ctrl_put_desc(env, cq, 1, (struct desc){ CTRL_BUF, 1, 2, 0 });
			break;
		case BAD_HUGE_LEN:
			ctrl_put_desc(env, cq, 0, (struct desc){ CTRL_BUF, 0xffffffffu, 1, 1 });
			ctrl_put_desc(env, cq, 1, (struct desc){ CTRL_BUF, 1, 2, 0 });
			break;
		case BAD_LOOP:
			ctrl_put_desc(env, cq, 0, (struct desc){ CTRL_BUF, 2, 1, 1 });
			ctrl_put_desc(env, cq, 1, (struct desc){ CTRL_BUF, 2, 1, 0 });
			break;
		case BAD_NEXT_OUT_OF_RANGE:
			ctrl_put_desc(env, cq, 0, (struct desc){ CTRL_BUF, 2, 1, 0xffff });
			break;
		case BAD_NESTED_INDIRECT:
			ctrl_put_desc(env, cq, 0, (struct desc){ tbl, 32, 4, 0 });
			assert_int_equal(guest_mem__write(&env->mem, tbl, &(struct desc){ tbl, 32, 4, 0 }, 16), 0);
			break;
		case BAD_INDIRECT_OUTSIDE_RAM:
			ctrl_put_desc(env, cq, 0, (struct desc){ RAM_SIZE - 16, 64, 4, 0 });
			break;
		case BAD_INDIRECT_LEN:
			ctrl_put_desc(env, cq, 0, (struct desc){ tbl, 20, 4, 0 });
			break;
		case BAD_NO_WRITABLE:
			ctrl_put_desc(env, cq, 0, (struct desc){ CTRL_BUF, 2, 0, 0 });
			break;
		case BAD_READ_AFTER_WRITE:
			ctrl_put_desc(env, cq, 0, (struct desc){ CTRL_BUF, 1, 2 | 1, 1 });
			ctrl_put_desc(env, cq, 1, (struct desc){ CTRL_BUF, 2, 0, 0 });
			break;
		case BAD_AVAIL_RUNS_AHEAD:
			idx = 1000;
			break;
		case BAD_INDIRECT_LOOP:
			ctrl_put_desc(env, cq, 0, (struct desc){ tbl, 64, 4, 0 });
			for (k = 0; k < 4; k++)
				assert_int_equal(guest_mem__write(&env->mem, tbl + 16 * k,
								  &(struct desc){ CTRL_BUF, 2, 1, (uint16_t)((k + 1) % 4) }, 16), 0);
			break;
		}
		ctrl_publish(env, cq, 0, head, idx);
		for (k = 0; k < 200; k++) {
			virtio_net__stats(env->dev, &st);
			if (st.ctrl_bad_chains == b + 1)
				break;
			usleep(10000);
		}
		assert_int_equal(st.ctrl_bad_chains, b + 1);
		/* Nothing was completed; the queue waits for a reset; the link is untouched. */
		assert_int_equal(*(uint16_t *)(env->mem.base + q_used(cq) + 2), 0);
		assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
		env_reset(env);
	}
	/* After a reset the queue serves again. */
	memset(env->mem.base + q_desc(cq), 0, 0x3000);
	assert_int_equal(env_activate(env, feat), 0);
	{
		uint16_t pairs = 2;

		assert_int_equal(ctrl_command(env, 0, VIRTIO_NET_CTRL_MQ,
					      VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_OK);
	}
	env_free(env);
}

static void test_net_ctrl_indirect_command_is_served(void **state)
{
	struct env *env = env_new(2, CLIENT);
	const unsigned cq = 4;
	uint64_t tbl = CTRL_BUF + 0x1000;
	uint8_t hdr[4] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 }, ack = 0xee;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF, hdr, 4), 0);
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF + 0x200, &ack, 1), 0);
	assert_int_equal(guest_mem__write(&env->mem, tbl, &(struct desc){ CTRL_BUF, 2, 1, 1 }, 16), 0);
	assert_int_equal(guest_mem__write(&env->mem, tbl + 16, &(struct desc){ CTRL_BUF + 2, 2, 1, 2 }, 16), 0);
	assert_int_equal(guest_mem__write(&env->mem, tbl + 32, &(struct desc){ CTRL_BUF + 0x200, 1, 2, 0 }, 16), 0);
	ctrl_put_desc(env, cq, 5, (struct desc){ tbl, 48, 4, 0 });
	ctrl_publish(env, cq, 0, 5, 1);
	assert_true(wait_call(env, cq, 2000));
	assert_int_equal(env->mem.base[CTRL_BUF + 0x200], VIRTIO_NET_OK);
	env_free(env);
}

/* ---------------------------------------------------------------- the session alone */

/*
 * A device that is not net: one backend queue (like virtio-blk), queue 1 served
 * locally, REPLY_ACK only; its callbacks record what the session did.
 */
struct sdev {
	struct guest_mem mem;
	struct fake *f;
	struct vu_session *s;
	char path[108];
	struct virtio_queue q[2];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ups, downs, config_changes, kicks;
	int last_kicked;
};

static bool sdev_link_set(void *opaque, bool up)
{
	struct sdev *d = opaque;

	/* The session's lock is held: record only (our own lock is a leaf). */
	pthread_mutex_lock(&d->lock);
	if (up)
		d->ups++;
	else
		d->downs++;
	pthread_mutex_unlock(&d->lock);
	return true;
}

static void sdev_config_changed(void *opaque)
{
	struct sdev *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->config_changes++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void sdev_kicked(void *opaque, unsigned queue)
{
	struct sdev *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->kicks++;
	d->last_kicked = (int)queue;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static const struct vu_session_ops sdev_ops = {
	.link_set = sdev_link_set,
	.config_changed = sdev_config_changed,
	.kicked = sdev_kicked,
};

#define SDEV_FEATURES (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX))

/* A device with a config space in the backend: the link is not part of it (no link_set). */
static const struct vu_session_ops sdev_config_ops = {
	.config_changed = sdev_config_changed,
	.kicked = sdev_kicked,
};

#define SDEV_CONFIG_SIZE 60

/*
 * A started fake listening for the session (client mode), with `how` armed
 * once for request `bad_req`, speaking protocol features `protocol` (0: the
 * fake's). With `config_size`, the session fetches that much config space
 * (the fake's bytes are k * 3 + 1) and has no link_set.
 */
static struct sdev *sdev_create(unsigned queue_num, uint32_t bad_req, enum misbehave how,
				uint32_t config_size, uint64_t protocol)
{
	struct sdev *d = calloc(1, sizeof(*d));
	struct vu_session_config cfg;
	struct err e = { 0 };
	unsigned i;

	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->last_kicked = -1;
	assert_int_equal(guest_mem__create(&d->mem, RAM_SIZE), 0);
	memcpy(d->mem.regions[0].hva + 4096, "guest RAM", 9);
	snprintf(d->path, sizeof(d->path), "%s/session.sock", sock_dir);
	unlink(d->path);
	d->f = fake_new();
	for (i = 0; i < sizeof(d->f->config); i++)
		d->f->config[i] = (uint8_t)(i * 3 + 1);
	if (protocol)
		d->f->protocol = protocol;
	fake_listen(d->f, d->path);
	if (how != MB_NONE)
		fake_misbehave(d->f, bad_req, how);
	fake_start(d->f);
	cfg = (struct vu_session_config){
		.kind = "disk", .name = "blk0", .socket = d->path, .mem = &d->mem,
		.data_features = SDEV_FEATURES, .backend_features = SDEV_FEATURES,
		.protocol = BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | BIT(VHOST_USER_PROTOCOL_F_MQ),
		.backend_queues = 1, .queue_num = queue_num, .queue_max_size = QSIZE,
		.config_size = config_size,
		.ops = config_size ? &sdev_config_ops : &sdev_ops, .opaque = d,
	};
	assert_int_equal(vu_session__create(&cfg, &d->s, &e), 0);
	for (i = 0; i < 2; i++)
		d->q[i] = (struct virtio_queue){ .size = QSIZE, .enabled = true, .desc = q_desc(i),
						 .driver = q_avail(i), .device = q_used(i),
						 .kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
						 .call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	return d;
}

/* A started fake listening for the session (client mode), with `misbehave` armed for GET_FEATURES. */
static struct sdev *sdev_new(unsigned queue_num, enum misbehave misbehave)
{
	return sdev_create(queue_num, VHOST_USER_GET_FEATURES, misbehave, 0, 0);
}

static void sdev_free(struct sdev *d)
{
	vu_session__destroy(d->s);
	fake_free(d->f);
	close(d->q[0].kick_fd);
	close(d->q[0].call_fd);
	close(d->q[1].kick_fd);
	close(d->q[1].call_fd);
	unlink(d->path);
	guest_mem__destroy(&d->mem);
	free(d);
}

static int sdev_activate(struct sdev *d)
{
	struct virtio_activation a = { .features = SDEV_FEATURES, .nr_queues = 2, .queues = d->q,
				       .mem = &d->mem };
	struct err e = { 0 };

	int err = vu_session__activate(d->s, &a, BIT(1), 1, 1, NULL, &e);

	if (!err)
		assert_int_equal(vu_session__wait_settled(d->s, 10000), 0);
	return err;
}

static void test_session_handshake_then_mem_table_with_the_ram_fd(void **state)
{
	struct sdev *d = sdev_new(0, MB_NONE);
	struct vu_session_stats st;
	uint64_t features;
	int i;

	(void)state;
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	assert_true(vu_session__backend_features(d->s, &features));
	assert_true(features == fake_features);
	assert_int_equal(d->f->log[0].req, VHOST_USER_GET_FEATURES);
	assert_int_equal(d->f->log[1].req, VHOST_USER_GET_PROTOCOL_FEATURES);
	assert_int_equal(d->f->log[2].req, VHOST_USER_SET_PROTOCOL_FEATURES);
	assert_true(payload_u64(&d->f->log[2]) ==
		    (BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | BIT(VHOST_USER_PROTOCOL_F_MQ) |
		     BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD)));
	assert_int_equal(d->f->log[3].req, VHOST_USER_SET_OWNER);
	assert_int_equal(fake_find(d->f, 0, 0, VHOST_USER_GET_QUEUE_NUM, -1), -1);
	assert_int_equal(fake_find(d->f, 0, 0, VHOST_USER_SET_MEM_TABLE, -1), -1); /* not before DRIVER_OK */
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->ups, 1);
	pthread_mutex_unlock(&d->lock);

	assert_int_equal(sdev_activate(d), 0);
	/* The device's data features plus bit 30; the memory table carries the RAM memfd. */
	i = fake_find(d->f, 0, 1, VHOST_USER_SET_FEATURES, -1);
	assert_true(payload_u64(&d->f->log[i]) == (SDEV_FEATURES | BIT(VHOST_USER_F_PROTOCOL_FEATURES)));
	i = fake_find(d->f, 0, 1, VHOST_USER_SET_MEM_TABLE, -1);
	assert_true(i >= 0);
	assert_int_equal(d->f->log[i].nfds, 1);
	check_region_maps_guest_ram(&d->f->log[i], 0, &d->mem);
	/* Only the backend's queue goes out, enabled. */
	i = fake_find(d->f, 0, 1, VHOST_USER_SET_VRING_ENABLE, 0);
	assert_int_equal(state_num(&d->f->log[i]), 1);
	assert_int_equal(fake_find(d->f, 0, 0, VHOST_USER_SET_VRING_ADDR, 1), -1);
	vu_session__stats(d->s, &st);
	assert_true(st.link_up && st.backend_known && st.connects == 1 && st.failures == 0);
	sdev_free(d);
}

static void test_session_reconnect_resumes_rings_from_used_idx(void **state)
{
	struct sdev *d = sdev_new(0, MB_NONE);
	struct vu_session_stats st;
	uint16_t used_idx = 11;
	int i;

	(void)state;
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	assert_int_equal(sdev_activate(d), 0);
	i = fake_find(d->f, 0, 1, VHOST_USER_SET_VRING_BASE, 0);
	assert_int_equal(state_num(&d->f->log[i]), 0);
	/* The backend completed 11 requests, then crashes. */
	assert_int_equal(guest_mem__write(&d->mem, q_used(0) + 2, &used_idx, 2), 0);
	fake_drop(d->f);
	i = fake_wait(d->f, 0, 2, VHOST_USER_SET_VRING_ENABLE, 0, 10000);
	assert_true(i >= 0);
	assert_true(fake_find(d->f, 0, 2, VHOST_USER_SET_MEM_TABLE, -1) >= 0);
	i = fake_find(d->f, 0, 2, VHOST_USER_SET_VRING_BASE, 0);
	assert_int_equal(state_num(&d->f->log[i]), 11);
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	vu_session__stats(d->s, &st);
	assert_int_equal(st.disconnects, 1);
	assert_int_equal(st.connects, 2);
	assert_non_null(strstr(st.last_error, "blk0: vhost-user: the backend closed the connection"));
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->downs, 1);
	assert_int_equal(d->ups, 2);
	pthread_mutex_unlock(&d->lock);
	sdev_free(d);
}

static void test_session_refuses_a_malformed_reply_and_retries(void **state)
{
	struct sdev *d = sdev_new(0, MB_BAD_VERSION);
	struct vu_session_stats st;

	(void)state;
	/* The first connection's GET_FEATURES reply is refused; the retry (100 ms later) succeeds. */
	vu_session__stats(d->s, &st);
	assert_int_equal(st.failures, 1);
	assert_false(st.link_up);
	assert_false(st.backend_known);
	assert_non_null(strstr(st.last_error, "protocol version 2"));
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	vu_session__stats(d->s, &st);
	assert_int_equal(st.connects, 1);
	assert_int_equal(d->f->conns, 2);
	/* Nothing but GET_FEATURES went to the backend that misbehaved. */
	assert_int_equal(fake_find(d->f, 0, 1, VHOST_USER_SET_OWNER, -1), -1);
	assert_true(fake_find(d->f, 0, 2, VHOST_USER_SET_OWNER, -1) >= 0);
	sdev_free(d);
}

static void test_session_requires_the_backends_queue_num(void **state)
{
	struct sdev *d = sdev_new(16, MB_NONE);
	struct vu_session_stats st;

	(void)state;
	vu_session__stats(d->s, &st);
	assert_int_equal(st.failures, 1);
	assert_non_null(strstr(st.last_error, "blk0: vhost-user: the backend supports 8 queues, 16 configured"));
	assert_int_equal(vu_session__wait_link(d->s, 150), -ETIMEDOUT);
	sdev_free(d);
}

static void test_session_hands_local_queue_kicks_to_the_device(void **state)
{
	struct sdev *d = sdev_new(0, MB_NONE);
	struct pollfd p = { .fd = -1, .events = POLLIN };
	uint64_t one = 1;
	int k;

	(void)state;
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	assert_int_equal(sdev_activate(d), 0);
	assert_int_equal(write(d->q[1].kick_fd, &one, 8), 8);
	pthread_mutex_lock(&d->lock);
	for (k = 0; k < 100 && !d->kicks; k++) {
		pthread_mutex_unlock(&d->lock);
		usleep(10000);
		pthread_mutex_lock(&d->lock);
	}
	assert_int_equal(d->kicks, 1);
	assert_int_equal(d->last_kicked, 1);
	pthread_mutex_unlock(&d->lock);
	/* The device's completion interrupts the guest on the queue's call eventfd. */
	vu_session__signal(d->s, 1);
	p.fd = d->q[1].call_fd;
	assert_int_equal(poll(&p, 1, 1000), 1);
	/* After a reset the kicks are no longer the device's business. */
	vu_session__reset(d->s);
	assert_int_equal(vu_session__wait_settled(d->s, 10000), 0);
	assert_int_equal(write(d->q[1].kick_fd, &one, 8), 8);
	usleep(100000);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->kicks, 1);
	pthread_mutex_unlock(&d->lock);
	sdev_free(d);
}

/* ---------------------------------------------------------------- the config space (GET_CONFIG) */

static unsigned sdev_config_changes(struct sdev *d)
{
	unsigned n;

	pthread_mutex_lock(&d->lock);
	n = d->config_changes;
	pthread_mutex_unlock(&d->lock);
	return n;
}

static void test_session_fetches_config_after_set_owner_and_serves_the_copy(void **state)
{
	struct sdev *d = sdev_create(0, 0, MB_NONE, SDEV_CONFIG_SIZE, 0);
	uint8_t cfg[SDEV_CONFIG_SIZE], tail[8];
	int owner, get;

	(void)state;
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	/* The device asked for protocol feature CONFIG without naming it; GET_CONFIG follows SET_OWNER. */
	assert_true(payload_u64(&d->f->log[2]) == (BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
						   BIT(VHOST_USER_PROTOCOL_F_MQ) |
						   BIT(VHOST_USER_PROTOCOL_F_CONFIG) |
						   BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD)));
	owner = fake_find(d->f, 0, 1, VHOST_USER_SET_OWNER, -1);
	get = fake_find(d->f, 0, 1, VHOST_USER_GET_CONFIG, -1);
	assert_true(owner >= 0 && get > owner);
	assert_int_equal(d->f->log[get].size, 12 + SDEV_CONFIG_SIZE);
	assert_true(vu_session__config(d->s, 0, cfg, sizeof(cfg)));
	assert_memory_equal(cfg, d->f->config, sizeof(cfg));
	/* Past the end: zeros, never the fake's bytes beyond what was asked. */
	assert_true(vu_session__config(d->s, SDEV_CONFIG_SIZE - 4, tail, sizeof(tail)));
	assert_memory_equal(tail, d->f->config + SDEV_CONFIG_SIZE - 4, 4);
	assert_memory_equal(tail + 4, "\0\0\0\0", 4);
	/* Served from the copy: the backend is not asked again. */
	assert_int_equal(fake_find(d->f, (unsigned)get + 1, 0, VHOST_USER_GET_CONFIG, -1), -1);
	/* The first config and the link coming up are no config change for this device. */
	assert_int_equal(sdev_config_changes(d), 0);
	sdev_free(d);
}

static void test_session_config_reads_zeros_before_any_backend(void **state)
{
	struct vu_session_config cfg;
	struct vu_session *s;
	struct guest_mem mem;
	struct err e = { 0 };
	uint8_t buf[SDEV_CONFIG_SIZE], zero[SDEV_CONFIG_SIZE] = { 0 };
	char path[108];

	(void)state;
	assert_int_equal(guest_mem__create(&mem, RAM_SIZE), 0);
	snprintf(path, sizeof(path), "%s/nobody.sock", sock_dir);
	unlink(path);
	cfg = (struct vu_session_config){
		.kind = "disk", .name = "blk0", .socket = path, .mem = &mem,
		.data_features = SDEV_FEATURES, .backend_features = SDEV_FEATURES,
		.backend_queues = 1, .queue_max_size = QSIZE, .config_size = SDEV_CONFIG_SIZE,
		.ops = &sdev_config_ops,
	};
	assert_int_equal(vu_session__create(&cfg, &s, &e), 0);
	memset(buf, 0xee, sizeof(buf));
	assert_false(vu_session__config(s, 0, buf, sizeof(buf)));
	assert_memory_equal(buf, zero, sizeof(buf));
	vu_session__destroy(s);
	guest_mem__destroy(&mem);
}

/* A bad GET_CONFIG reply on the first connection: an error, the link down, no config; the retry works. */
static void expect_config_failure(enum misbehave how, const char *words)
{
	struct sdev *d = sdev_create(0, VHOST_USER_GET_CONFIG, how, SDEV_CONFIG_SIZE, 0);
	uint8_t cfg[SDEV_CONFIG_SIZE], zero[SDEV_CONFIG_SIZE] = { 0 };
	struct vu_session_stats st;

	vu_session__stats(d->s, &st);
	print_message("    %s\n", st.last_error);
	assert_int_equal(st.failures + st.disconnects, 1);
	assert_false(st.link_up);
	assert_false(st.backend_known);
	assert_non_null(strstr(st.last_error, words));
	assert_false(vu_session__config(d->s, 0, cfg, sizeof(cfg)));
	assert_memory_equal(cfg, zero, sizeof(cfg));
	/* The next backend (the fake misbehaves once) is taken, its config with it. */
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	assert_true(vu_session__config(d->s, 0, cfg, sizeof(cfg)));
	assert_memory_equal(cfg, d->f->config, sizeof(cfg));
	assert_int_equal(d->f->conns, 2);
	sdev_free(d);
}

static void test_session_short_get_config_reply_takes_link_down(void **state)
{
	(void)state;
	expect_config_failure(MB_SHORT, "blk0: vhost-user: reply to GET_CONFIG: payload of 4 bytes (expected 72)");
}

static void test_session_refused_get_config_takes_link_down(void **state)
{
	(void)state;
	expect_config_failure(MB_EMPTY, "blk0: vhost-user: the backend refused GET_CONFIG");
}

static void test_session_get_config_for_another_window_takes_link_down(void **state)
{
	(void)state;
	expect_config_failure(MB_WRONG_WINDOW, "describes 60 bytes at offset 1");
}

static void test_session_backend_gone_during_get_config_takes_link_down(void **state)
{
	(void)state;
	expect_config_failure(MB_CLOSE, "blk0: vhost-user: the backend closed the connection");
}

static void test_session_backend_without_protocol_config_is_refused(void **state)
{
	struct sdev *d = sdev_create(0, 0, MB_NONE, SDEV_CONFIG_SIZE,
				     BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	struct vu_session_stats st;

	(void)state;
	assert_int_equal(vu_session__wait_link(d->s, 200), -ETIMEDOUT);
	vu_session__stats(d->s, &st);
	assert_true(st.failures >= 1);
	assert_non_null(strstr(st.last_error, "does not give its configuration space (protocol feature CONFIG)"));
	assert_int_equal(fake_find(d->f, 0, 0, VHOST_USER_GET_CONFIG, -1), -1);
	sdev_free(d);
}

static void test_session_reconnect_with_changed_config_raises_config_changed(void **state)
{
	struct sdev *d = sdev_create(0, 0, MB_NONE, SDEV_CONFIG_SIZE, 0);
	uint8_t cfg[SDEV_CONFIG_SIZE];
	int k;

	(void)state;
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	/* The same config from the next backend: nothing for the guest. */
	fake_drop(d->f);
	assert_true(fake_wait(d->f, 0, 2, VHOST_USER_GET_CONFIG, -1, 10000) >= 0);
	assert_int_equal(vu_session__wait_link(d->s, 10000), 0);
	usleep(100000);
	assert_int_equal(sdev_config_changes(d), 0);
	/* The backend comes back with another capacity: one config interrupt, the new bytes served. */
	pthread_mutex_lock(&d->f->lock);
	d->f->config[0] ^= 0xff;
	pthread_mutex_unlock(&d->f->lock);
	fake_drop(d->f);
	assert_true(fake_wait(d->f, 0, 3, VHOST_USER_GET_CONFIG, -1, 10000) >= 0);
	for (k = 0; k < 500 && !sdev_config_changes(d); k++)
		usleep(10000);
	assert_int_equal(sdev_config_changes(d), 1);
	assert_true(vu_session__config(d->s, 0, cfg, sizeof(cfg)));
	assert_memory_equal(cfg, d->f->config, sizeof(cfg));
	sdev_free(d);
}

/* ---------------------------------------------------------------- vhost-user-blk */

struct bdev {
	struct guest_mem mem;
	struct fake *f;
	struct virtio_dev *dev;
	struct vhost_blk_spec spec;
	struct virtio_queue q[2];
};

/* A vhost-user-blk disk against the fake offering `features`, less protocol features `no_protocol`. */
static struct bdev *bdev_new_without(uint64_t features, unsigned queues, bool readonly,
				     uint64_t no_protocol)
{
	struct bdev *b = calloc(1, sizeof(*b));
	struct virtio_blk_config cfg = { .capacity = 12345, .blk_size = 4096, .seg_max = 126,
					 .num_queues = 8 };
	struct err e = { 0 };
	unsigned i;

	assert_int_equal(guest_mem__create(&b->mem, RAM_SIZE), 0);
	b->f = fake_new();
	b->f->features = features | BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	b->f->protocol &= ~no_protocol;
	memcpy(b->f->config, &cfg, sizeof(cfg));
	snprintf(b->spec.name, sizeof(b->spec.name), "disk1");
	snprintf(b->spec.socket, sizeof(b->spec.socket), "%s/blk.sock", sock_dir);
	b->spec.queues = queues;
	b->spec.readonly = readonly;
	unlink(b->spec.socket);
	fake_listen(b->f, b->spec.socket);
	fake_start(b->f);
	assert_int_equal(vhost_blk__create(&b->spec, &b->mem, &b->dev, &e), 0);
	for (i = 0; i < 2; i++)
		b->q[i] = (struct virtio_queue){ .size = QSIZE, .enabled = true, .desc = q_desc(i),
						 .driver = q_avail(i), .device = q_used(i),
						 .kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
						 .call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	return b;
}

/* A vhost-user-blk disk against the fake offering `features` with a 12345-sector config. */
static struct bdev *bdev_new(uint64_t features, unsigned queues, bool readonly)
{
	return bdev_new_without(features, queues, readonly, 0);
}

static void bdev_free(struct bdev *b)
{
	unsigned i;

	vhost_blk__destroy(b->dev);
	fake_free(b->f);
	for (i = 0; i < 2; i++) {
		close(b->q[i].kick_fd);
		close(b->q[i].call_fd);
	}
	unlink(b->spec.socket);
	guest_mem__destroy(&b->mem);
	free(b);
}

#define BLK_ALL_FEATURES                                                                      \
	(BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) |       \
	 BIT(VIRTIO_BLK_F_GEOMETRY) | BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH) |       \
	 BIT(VIRTIO_BLK_F_TOPOLOGY) | BIT(VIRTIO_BLK_F_CONFIG_WCE) | BIT(VIRTIO_BLK_F_MQ) |        \
	 BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES) | BIT(VIRTIO_RING_F_EVENT_IDX) | \
	 BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_F_RING_PACKED))

static void test_vhost_blk_config_and_features_come_from_the_backend(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 2, false);
	struct virtio_blk_config cfg;
	struct vhost_blk_stats st;
	uint64_t f;

	(void)state;
	assert_int_equal(b->dev->device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(b->dev->max_queues, 2);
	assert_int_equal(b->dev->config_size, 60);
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	b->dev->ops->config_read(b->dev, 0, &cfg, sizeof(cfg));
	assert_int_equal(cfg.capacity, 12345);
	assert_int_equal(cfg.blk_size, 4096);
	assert_int_equal(cfg.seg_max, 126);
	assert_int_equal(cfg.num_queues, 2);           /* this disk's queues, not the backend's 8 */
	vhost_blk__stats(b->dev, &st);
	assert_int_equal(st.capacity, 12345);
	/* The backend's data path, never CONFIG_WCE (a config write would wait), PACKED or bit 30. */
	f = b->dev->ops->features(b->dev);
	assert_true(f == (BLK_ALL_FEATURES & ~(BIT(VIRTIO_BLK_F_CONFIG_WCE) | BIT(VIRTIO_F_RING_PACKED))));
	/* GET_QUEUE_NUM reached the backend for two queues. */
	assert_true(fake_find(b->f, 0, 1, VHOST_USER_GET_QUEUE_NUM, -1) >= 0);
	bdev_free(b);
}

static void test_vhost_blk_one_queue_and_readonly_narrow_the_features(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES | BIT(VIRTIO_BLK_F_RO), 1, true);
	uint64_t f;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	f = b->dev->ops->features(b->dev);
	assert_true(f & BIT(VIRTIO_BLK_F_RO));
	assert_false(f & (BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_BLK_F_DISCARD) |
			  BIT(VIRTIO_BLK_F_WRITE_ZEROES)));
	assert_int_equal(fake_find(b->f, 0, 0, VHOST_USER_GET_QUEUE_NUM, -1), -1);
	bdev_free(b);
}

static void test_vhost_blk_readonly_refuses_a_backend_without_ro(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 1, true);
	struct vhost_blk_stats st;
	uint8_t cfg[60], zero[60] = { 0 };

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 300), -ETIMEDOUT);
	vhost_blk__stats(b->dev, &st);
	assert_false(st.session.link_up);
	assert_non_null(strstr(st.session.last_error, "disk1: vhost-user: the backend lacks features 0x20 (VIRTIO_BLK_F_RO"));
	/* Refused right after GET_FEATURES: no memory table, no config. */
	assert_int_equal(fake_find(b->f, 0, 0, VHOST_USER_SET_OWNER, -1), -1);
	b->dev->ops->config_read(b->dev, 0, cfg, sizeof(cfg));
	assert_memory_equal(cfg, zero, sizeof(cfg));
	bdev_free(b);
}

static void test_vhost_blk_activation_hands_the_queues_in_use_to_the_backend(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 2, false);
	struct virtio_activation a = { .nr_queues = 2, .queues = b->q, .mem = &b->mem };
	unsigned n;
	int k;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	/* Without MQ the driver uses queue 0 only. */
	a.features = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_FLUSH);
	assert_int_equal(b->dev->ops->activate(b->dev, &a), 0);
	for (k = 0; k < 1000 && b->dev->ops->resetting(b->dev); k++)
		usleep(10000);
	assert_true(fake_find(b->f, 0, 1, VHOST_USER_SET_VRING_KICK, 0) >= 0);
	assert_int_equal(fake_find(b->f, 0, 1, VHOST_USER_SET_VRING_ADDR, 1), -1);
	b->dev->ops->reset(b->dev);
	/* With MQ both, each enabled. */
	n = b->f->nlog;
	a.features |= BIT(VIRTIO_BLK_F_MQ);
	assert_int_equal(b->dev->ops->activate(b->dev, &a), 0);
	for (k = 0; k < 1000 && b->dev->ops->resetting(b->dev); k++)
		usleep(10000);
	assert_true(fake_find(b->f, n, 1, VHOST_USER_SET_VRING_ADDR, 1) >= 0);
	k = fake_find(b->f, n, 1, VHOST_USER_SET_VRING_ENABLE, 1);
	assert_true(k >= 0);
	assert_int_equal(state_num(&b->f->log[k]), 1);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

static ino_t msg_fd_ino(const struct msg *m)
{
	struct stat st;

	assert_int_equal(m->nfds, 1);
	assert_int_equal(fstat(m->fds[0], &st), 0);
	return st.st_ino;
}

static void bdev_activate(struct bdev *b, uint64_t features)
{
	struct virtio_activation a = { .features = features, .nr_queues = 2, .queues = b->q,
				       .mem = &b->mem };
	int k;

	assert_int_equal(b->dev->ops->activate(b->dev, &a), 0);
	for (k = 0; k < 1000 && b->dev->ops->resetting(b->dev); k++)
		usleep(10000);
	assert_false(b->dev->ops->resetting(b->dev));
}

static void test_vhost_blk_inflight_region_survives_a_backend_crash_not_a_reset(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 2, false);
	int get, set, kick, n;
	uint16_t in[2];
	ino_t first;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_MQ));
	/* A region for the 2 queues of 256, handed back before any ring is kicked. */
	get = fake_find(b->f, 0, 1, VHOST_USER_GET_INFLIGHT_FD, -1);
	set = fake_find(b->f, 0, 1, VHOST_USER_SET_INFLIGHT_FD, -1);
	kick = fake_find(b->f, 0, 1, VHOST_USER_SET_VRING_KICK, 0);
	assert_true(get >= 0 && set > get && kick > set);
	/* Both rings' sizes first: rte_vhost attaches the region only to queues it has. */
	assert_in_range(fake_find(b->f, 0, 1, VHOST_USER_SET_VRING_NUM, 0), 0, set - 1);
	assert_in_range(fake_find(b->f, 0, 1, VHOST_USER_SET_VRING_NUM, 1), 0, set - 1);
	assert_int_equal(b->f->log[get].size, 24);
	memcpy(in, b->f->log[get].payload + 16, sizeof(in));
	assert_int_equal(in[0], 2);
	assert_int_equal(in[1], QSIZE);
	/* The size the backend gave: 2 queues of 16 + 16 * 256 bytes, 64-aligned. */
	assert_int_equal(payload_u64(&b->f->log[set]), 2 * 4160);
	first = msg_fd_ino(&b->f->log[set]);
	/* The backend crashes: the next one gets the same region, no new one. */
	fake_drop(b->f);
	kick = fake_wait(b->f, 0, 2, VHOST_USER_SET_VRING_KICK, 1, 10000);
	assert_true(kick >= 0);
	assert_int_equal(fake_find(b->f, 0, 2, VHOST_USER_GET_INFLIGHT_FD, -1), -1);
	set = fake_find(b->f, 0, 2, VHOST_USER_SET_INFLIGHT_FD, -1);
	assert_true(set >= 0 && set < fake_find(b->f, 0, 2, VHOST_USER_SET_VRING_KICK, 0));
	assert_in_range(fake_find(b->f, 0, 2, VHOST_USER_SET_VRING_NUM, 0), 0, set - 1);
	assert_true(msg_fd_ino(&b->f->log[set]) == first);
	/* A reset voids what it tracked: the next activation asks for a new region. */
	b->dev->ops->reset(b->dev);
	n = (int)b->f->nlog;
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1));
	assert_true(fake_find(b->f, (unsigned)n, 2, VHOST_USER_GET_INFLIGHT_FD, -1) >= 0);
	set = fake_find(b->f, (unsigned)n, 2, VHOST_USER_SET_INFLIGHT_FD, -1);
	assert_true(set >= 0);
	assert_true(msg_fd_ino(&b->f->log[set]) != first);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

/* ---- a backend that dies mid-I/O ---- */

#define BLK_HDRS   0x300000ull        /* request headers, 16 bytes per head */
#define BLK_STATUS 0x301000ull        /* status bytes, one per head */

/* A flush at `head` on queue 0: header, then the status byte (descriptors head, head + 1). */
static void blk_put_request(struct bdev *b, uint16_t head)
{
	struct desc d[2] = {
		{ .addr = BLK_HDRS + 16u * head, .len = 16, .flags = VRING_DESC_F_NEXT,
		  .next = (uint16_t)(head + 1) },
		{ .addr = BLK_STATUS + head, .len = 1, .flags = VRING_DESC_F_WRITE },
	};
	uint8_t fresh = 0xee;

	assert_int_equal(guest_mem__write(&b->mem, q_desc(0) + 16ull * head, d, sizeof(d)), 0);
	assert_int_equal(guest_mem__write(&b->mem, BLK_STATUS + head, &fresh, 1), 0);
}

static void blk_publish(struct bdev *b, uint16_t slot, uint16_t head)
{
	uint16_t idx = (uint16_t)(slot + 1);

	assert_int_equal(guest_mem__write(&b->mem, q_avail(0) + 4 + 2ull * slot, &head, 2), 0);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	assert_int_equal(guest_mem__write(&b->mem, q_avail(0) + 2, &idx, 2), 0);
}

static uint16_t blk_used_idx(struct bdev *b)
{
	return __atomic_load_n((uint16_t *)guest_mem__ptr(&b->mem, q_used(0) + 2, 2), __ATOMIC_ACQUIRE);
}

static uint8_t blk_status(struct bdev *b, uint16_t head)
{
	return __atomic_load_n((uint8_t *)guest_mem__ptr(&b->mem, BLK_STATUS + head, 1), __ATOMIC_ACQUIRE);
}

static bool blk_wait_used(struct bdev *b, uint16_t n)
{
	int k;

	for (k = 0; k < 500 && blk_used_idx(b) != n; k++)
		usleep(10000);
	return blk_used_idx(b) == n;
}

/*
 * The backend takes heads 0 and 2 (marked in its inflight region, as rte_vhost
 * does), completes 2 out of order, and dies with 0 in flight.
 */
static void blk_backend_dies_with_head_0_in_flight(struct bdev *b, bool tracked)
{
	uint32_t used[2] = { 2, 1 };
	uint16_t one = 1, hdr[2] = { 2, 1 };
	uint8_t on = 1;

	blk_put_request(b, 0);
	blk_put_request(b, 2);
	blk_publish(b, 0, 0);
	blk_publish(b, 1, 2);
	assert_int_equal(guest_mem__write(&b->mem, q_used(0) + 4, used, sizeof(used)), 0);
	assert_int_equal(guest_mem__write(&b->mem, q_used(0) + 2, &one, 2), 0);
	if (tracked) {
		pthread_mutex_lock(&b->f->lock);
		assert_int_equal(pwrite(b->f->inflight_fd, &on, 1, 16 + 16 * 0), 1);
		assert_int_equal(pwrite(b->f->inflight_fd, hdr, sizeof(hdr), 12), (ssize_t)sizeof(hdr));
		pthread_mutex_unlock(&b->f->lock);
	}
	fake_set_away(b->f, true);
	fake_drop(b->f);
}

static void test_vhost_blk_dead_backend_requests_fail_with_ioerr_until_it_returns(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 1, false);
	struct vhost_blk_stats st;
	struct counters c;
	struct counter_sink sink;
	char report[1024];
	FILE *out;
	uint8_t mark = 1;
	uint64_t v, one = 1;
	int k, base;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1));
	assert_true(fake_wait(b->f, 0, 1, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	blk_backend_dies_with_head_0_in_flight(b, true);

	/* The monitor completes head 0 with IOERR, leaves 2 (the backend's), interrupts the guest. */
	assert_true(blk_wait_used(b, 2));
	assert_int_equal(blk_status(b, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_status(b, 2), 0xee);
	assert_int_equal(read(b->q[0].call_fd, &v, 8), 8);
	pthread_mutex_lock(&b->f->lock);
	assert_int_equal(pread(b->f->inflight_fd, &mark, 1, 16), 1);
	pthread_mutex_unlock(&b->f->lock);
	assert_int_equal(mark, 0);

	/* What the guest queues meanwhile fails at its kick. */
	blk_put_request(b, 4);
	blk_publish(b, 2, 4);
	assert_int_equal(write(b->q[0].kick_fd, &one, 8), 8);
	assert_true(blk_wait_used(b, 3));
	assert_int_equal(blk_status(b, 4), VIRTIO_BLK_S_IOERR);
	vhost_blk__stats(b->dev, &st);
	assert_false(st.session.link_up);
	assert_int_equal(st.session.failed_by_monitor, 2);
	assert_string_equal(vu_session_stats__io_state(&st.session), "failed by the monitor (backend away)");
	sink = counters_sink(&c);
	b->dev->ops->counters(b->dev, &sink);
	assert_int_equal(counters_num(&c, "requests_failed_by_monitor"), 2);
	out = fmemopen(report, sizeof(report), "w");
	b->dev->ops->report(b->dev, out, "pci 00:03.0");
	fclose(out);
	assert_non_null(strstr(report, "I/O failed by the monitor (backend away), 2 requests failed by the monitor"));

	/* The backend returns: it gets the ring from where the monitor got to, and the same region. */
	fake_set_away(b->f, false);
	assert_true(fake_wait(b->f, 0, 2, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	base = fake_find(b->f, 0, 2, VHOST_USER_SET_VRING_BASE, 0);
	assert_true(base >= 0);
	assert_int_equal(state_num(&b->f->log[base]), 3);
	assert_true(fake_find(b->f, 0, 2, VHOST_USER_SET_INFLIGHT_FD, -1) >= 0);
	for (k = 0; k < 500; k++) {
		vhost_blk__stats(b->dev, &st);
		if (st.session.link_up)
			break;
		usleep(10000);
	}
	assert_string_equal(vu_session_stats__io_state(&st.session), "served by the backend");
	/* The monitor no longer answers: a request now is the backend's. */
	blk_put_request(b, 6);
	blk_publish(b, 3, 6);
	assert_int_equal(write(b->q[0].kick_fd, &one, 8), 8);
	usleep(200000);
	assert_int_equal(blk_used_idx(b), 3);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

static void test_vhost_blk_dead_backend_without_inflight_tracking_stalls_and_resumes(void **state)
{
	struct bdev *b = bdev_new_without(BLK_ALL_FEATURES, 1, false,
					  BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD));
	struct vhost_blk_stats st;
	int base;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1));
	assert_true(fake_wait(b->f, 0, 1, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	assert_int_equal(fake_find(b->f, 0, 1, VHOST_USER_GET_INFLIGHT_FD, -1), -1);
	blk_backend_dies_with_head_0_in_flight(b, false);
	/* Which of 0 and 2 it completed, only the used ring says: head 0 waits. */
	usleep(300000);
	assert_int_equal(blk_used_idx(b), 1);
	assert_int_equal(blk_status(b, 0), 0xee);
	vhost_blk__stats(b->dev, &st);
	assert_int_equal(st.session.failed_by_monitor, 0);
	assert_non_null(strstr(vu_session_stats__io_state(&st.session), "waiting for the backend (it did not track inflight I/O"));
	/* The next backend resumes from the used index. */
	fake_set_away(b->f, false);
	assert_true(fake_wait(b->f, 0, 2, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	base = fake_find(b->f, 0, 2, VHOST_USER_SET_VRING_BASE, 0);
	assert_true(base >= 0);
	assert_int_equal(state_num(&b->f->log[base]), 1);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

static void test_vhost_blk_dead_backend_whose_region_shrank_is_not_trusted(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 1, false);
	struct vhost_blk_stats st;
	int k;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1));
	assert_true(fake_wait(b->f, 0, 1, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	/* A hostile backend truncates the region's file before it goes: a mapping would fault. */
	pthread_mutex_lock(&b->f->lock);
	assert_int_equal(ftruncate(b->f->inflight_fd, 100), 0);
	pthread_mutex_unlock(&b->f->lock);
	blk_backend_dies_with_head_0_in_flight(b, false);
	for (k = 0; k < 500; k++) {
		vhost_blk__stats(b->dev, &st);
		if (strstr(st.session.last_error, "inflight region"))
			break;
		usleep(10000);
	}
	print_message("    %s\n", st.session.last_error);
	assert_non_null(strstr(st.session.last_error, "disk1: inflight region: shorter than the backend said; the disk's I/O waits for the next backend"));
	assert_int_equal(blk_used_idx(b), 1);
	assert_int_equal(blk_status(b, 0), 0xee);
	assert_string_equal(vu_session_stats__io_state(&st.session), "waiting for the backend");
	fake_set_away(b->f, false);
	assert_true(fake_wait(b->f, 0, 2, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

/* vm.counters for a vhost-user disk: link, the backend's connections, capacity and queues. */
static void test_vhost_blk_counters_show_link_connects_and_capacity(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 2, false);
	struct counters c;
	struct counter_sink sink;
	int k;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	sink = counters_sink(&c);
	b->dev->ops->counters(b->dev, &sink);
	assert_string_equal(counters_str(&c, "link"), "up");
	assert_int_equal(counters_num(&c, "backend_connects"), 1);
	assert_int_equal(counters_num(&c, "backend_disconnects"), 0);
	assert_int_equal(counters_num(&c, "capacity_sectors"), 12345);
	assert_int_equal(counters_num(&c, "queues"), 2);
	assert_true(counters_num(&c, "backend_features") ==
		    (BLK_ALL_FEATURES | BIT(VHOST_USER_F_PROTOCOL_FEATURES)));
	/* The backend crashes, the session reconnects: both counted. */
	fake_drop(b->f);
	for (k = 0; k < 1000; k++) {
		sink = counters_sink(&c);
		b->dev->ops->counters(b->dev, &sink);
		/* The link goes up just after the connect is counted: wait for both. */
		if (counters_num(&c, "backend_connects") == 2 && counters_num(&c, "link_changes") == 3)
			break;
		usleep(10000);
	}
	assert_int_equal(counters_num(&c, "backend_connects"), 2);
	assert_int_equal(counters_num(&c, "backend_disconnects"), 1);
	assert_int_equal(counters_num(&c, "link_changes"), 3);
	bdev_free(b);
}

static void test_vhost_blk_inflight_reply_without_fd_takes_link_down(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 1, false);
	struct vhost_blk_stats st;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	fake_misbehave(b->f, VHOST_USER_GET_INFLIGHT_FD, MB_NO_FD);
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1));
	vhost_blk__stats(b->dev, &st);
	print_message("    %s\n", st.session.last_error);
	assert_non_null(strstr(st.session.last_error, "disk1: vhost-user: reply to GET_INFLIGHT_FD carried no file descriptor"));
	assert_int_equal(st.session.failures, 1);
	/* The next connection (the fake misbehaves once) sets the rings up with a region. */
	assert_true(fake_wait(b->f, 0, 2, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	assert_true(fake_find(b->f, 0, 2, VHOST_USER_SET_INFLIGHT_FD, -1) >= 0);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

static void test_vhost_blk_without_backend_reads_zeros_and_times_out(void **state)
{
	struct vhost_blk_spec spec = { .name = "disk2", .queues = 1, .readonly = true };
	uint8_t cfg[60], zero[60] = { 0 };
	struct virtio_dev *dev;
	struct guest_mem mem;
	struct err e = { 0 };
	uint32_t off;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, RAM_SIZE), 0);
	snprintf(spec.socket, sizeof(spec.socket), "%s/nobody-blk.sock", sock_dir);
	unlink(spec.socket);
	assert_int_equal(vhost_blk__create(&spec, &mem, &dev, &e), 0);
	for (off = 0; off < 60; off += 4) {
		memset(cfg, 0xee, sizeof(cfg));
		dev->ops->config_read(dev, off, cfg, 4);
		assert_memory_equal(cfg, zero, 4);
	}
	/* Nothing the next backend might lack; readonly says so from the start. */
	assert_true(dev->ops->features(dev) == (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_RO)));
	assert_int_equal(vhost_blk__wait_backend(dev, 100), -ETIMEDOUT);
	vhost_blk__destroy(dev);
	guest_mem__destroy(&mem);
}


/* ---------------------------------------------------------------- snapshot */

/* Sets the fake's ring positions, as if the backend had moved its rings (GET_VRING_BASE answers them). */
static void fake_set_bases(struct fake *f, const uint32_t *bases, unsigned n)
{
	pthread_mutex_lock(&f->lock);
	memcpy(f->bases, bases, n * sizeof(*bases));
	pthread_mutex_unlock(&f->lock);
}

static unsigned fake_nlog(struct fake *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->nlog;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* The value of the SET_VRING_BASE for `vring` in connection `conn` at or after `from`, or -1. */
static int base_sent(struct fake *f, unsigned from, unsigned conn, unsigned vring)
{
	int i = fake_find(f, from, conn, VHOST_USER_SET_VRING_BASE, (int)vring);

	return i < 0 ? -1 : (int)state_num(&f->log[i]);
}

/* Offsets in a NIC's state (see net_device_save) and its size for `queues`. */
#define NST_PAIRS      10
#define NST_MAC        12
#define NST_ACTIVE     18
#define NST_FEATURES   19
#define NST_NEGOTIATED 44
#define NST_QUEUES     52
#define NST_QUEUE0     60

/* The backend's bookkeeping, as GET_VRING_BASE answers it, and the kick fd it got, checked. */
static void expect_ring_works(struct env *env, unsigned from, unsigned conn, unsigned r)
{
	uint64_t v = 1;
	int i;

	i = fake_find(env->f, from, conn, VHOST_USER_SET_VRING_KICK, (int)r);
	assert_true(i >= 0);
	assert_int_equal(write(env->f->log[i].fds[0], &v, 8), 8);
	assert_int_equal(read(env->q[r].kick_fd, &v, 8), 8);
	i = fake_find(env->f, from, conn, VHOST_USER_SET_VRING_CALL, (int)r);
	assert_true(i >= 0);
	assert_int_equal(write(env->f->log[i].fds[0], &v, 8), 8);
	assert_int_equal(read(env->q[r].call_fd, &v, 8), 8);
}

static void test_net_freeze_stops_rings_with_get_vring_base_and_thaw_restarts_them_there(void **state)
{
	const uint32_t moved[2] = { 5, 9 };
	struct env *env = env_new(1, CLIENT);
	struct state_out saved;
	unsigned from, r, n;
	uint16_t avail;
	int g, e;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	fake_set_bases(env->f, moved, 2);
	from = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.freeze(env->dev), 0);
	for (r = 0; r < 2; r++) {
		/* Disabled, then stopped: the backend says where it stopped. */
		g = fake_find(env->f, from, 1, VHOST_USER_GET_VRING_BASE, (int)r);
		e = fake_find(env->f, from, 1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_true(g >= 0 && e >= 0 && e < g);
		assert_int_equal(state_num(&env->f->log[e]), 0);
	}
	/* Frozen: nothing more reaches the backend; the state holds where each ring stopped. */
	n = fake_nlog(env->f);
	saved = state_save(&virtio_net__device_ops, env->dev);
	for (r = 0; r < 2; r++) {
		memcpy(&avail, saved.buf + NST_QUEUE0 + 4 * r, 2);
		assert_int_equal(avail, moved[r]);
	}
	usleep(100000);
	assert_int_equal(fake_nlog(env->f), n);
	/* Thawed: each ring back as at activation, from where it stopped; the link never went down. */
	assert_int_equal(virtio_net__device_ops.thaw(env->dev), 0);
	for (r = 0; r < 2; r++) {
		assert_int_equal(base_sent(env->f, n, 1, r), (int)moved[r]);
		assert_true(fake_find(env->f, n, 1, VHOST_USER_SET_VRING_NUM, (int)r) >= 0);
		assert_true(fake_find(env->f, n, 1, VHOST_USER_SET_VRING_ADDR, (int)r) >= 0);
		e = fake_find(env->f, n, 1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_true(e >= 0);
		assert_int_equal(state_num(&env->f->log[e]), 1);
		expect_ring_works(env, n, 1, r);
	}
	assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
	/* A second freeze asks the backend again. */
	n = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.freeze(env->dev), 0);
	assert_true(fake_find(env->f, n, 1, VHOST_USER_GET_VRING_BASE, 1) >= 0);
	assert_int_equal(virtio_net__device_ops.thaw(env->dev), 0);
	state_out__free(&saved);
	env_free(env);
}

static void test_net_freeze_holds_control_commands_until_the_thaw(void **state)
{
	struct env *env = env_new(2, CLIENT);
	uint8_t hdr[2] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET }, ack = 0xee;
	uint16_t pairs = 2, used_idx;
	unsigned from;
	int i;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	assert_int_equal(virtio_net__device_ops.freeze(env->dev), 0);
	/* The driver queues a command and kicks while frozen (a vCPU parked just after). */
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF, hdr, 2), 0);
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF + 0x100, &pairs, 2), 0);
	assert_int_equal(guest_mem__write(&env->mem, CTRL_BUF + 0x200, &ack, 1), 0);
	ctrl_put_desc(env, 4, 10, (struct desc){ CTRL_BUF, 2, 1, 11 });
	ctrl_put_desc(env, 4, 11, (struct desc){ CTRL_BUF + 0x100, 2, 1, 12 });
	ctrl_put_desc(env, 4, 12, (struct desc){ CTRL_BUF + 0x200, 1, 2, 0 });
	ctrl_publish(env, 4, 0, 10, 1);
	assert_false(wait_call(env, 4, 200));
	memcpy(&used_idx, env->mem.base + q_used(4) + 2, 2);
	assert_int_equal(used_idx, 0);
	from = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.thaw(env->dev), 0);
	/* Served at the thaw, nothing lost: pair 2's rings enabled. */
	assert_true(wait_call(env, 4, 5000));
	memcpy(&ack, env->mem.base + CTRL_BUF + 0x200, 1);
	assert_int_equal(ack, VIRTIO_NET_OK);
	i = fake_wait(env->f, from, 1, VHOST_USER_SET_VRING_ENABLE, 3, 5000);
	assert_true(i >= 0);
	env_free(env);
}

/*
 * A loaded device stays frozen until the VM's thaw: after 200 ms, nothing of a
 * ring reached the backend of connection `conn` since `from` (no base, no
 * kick, no enable).
 */
static void expect_no_ring_started(struct fake *f, unsigned from, unsigned conn)
{
	usleep(200000);
	assert_int_equal(fake_find(f, from, conn, VHOST_USER_SET_VRING_BASE, -1), -1);
	assert_int_equal(fake_find(f, from, conn, VHOST_USER_SET_VRING_KICK, -1), -1);
	assert_int_equal(fake_find(f, from, conn, VHOST_USER_SET_VRING_ENABLE, -1), -1);
}

static void test_net_snapshot_round_trip_resumes_rings_at_the_saved_bases(void **state)
{
	const uint32_t moved[4] = { 5, 9, 3, 4 };
	struct env *env = env_new(2, CLIENT), *env2;
	struct virtio_activation a;
	char why[STATE_WHY_LEN];
	struct state_out saved;
	uint16_t pairs = 2;
	uint64_t features, v;
	unsigned r;
	int e;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	features = env->dev->ops->features(env->dev);
	assert_int_equal(env_activate(env, features), 0);
	assert_int_equal(ctrl_command(env, 0, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
				      &pairs, 2), VIRTIO_NET_OK);
	fake_set_bases(env->f, moved, 4);
	assert_int_equal(virtio_net__device_ops.freeze(env->dev), 0);
	saved = state_save(&virtio_net__device_ops, env->dev);

	/* The restored VM: the same NIC and a backend of its own, guest RAM put back first. */
	env2 = env_new(2, CLIENT);
	memcpy(env2->nic.mac, env->nic.mac, 6);
	memcpy(env2->mem.base, env->mem.base, RAM_SIZE);
	assert_int_equal(virtio_net__wait_backend(env2->dev, 10000), 0);
	a = (struct virtio_activation){ .features = features, .nr_queues = env2->nr_queues,
					.queues = env2->q, .mem = &env2->mem, .resume = true };
	/* No state loaded: a resuming activation is refused. */
	assert_int_equal(env2->dev->ops->activate(env2->dev, &a), -EINVAL);
	assert_int_equal(state_load(&virtio_net__device_ops, env2->dev, saved.buf, saved.len, why), 0);
	assert_int_equal(env2->dev->ops->activate(env2->dev, &a), 0);
	env_settle(env2);
	expect_no_ring_started(env2->f, 0, 1);
	assert_int_equal(virtio_net__device_ops.thaw(env2->dev), 0);
	for (r = 0; r < 4; r++) {
		/* Completions the source's backend may not have signalled: an interrupt at the start. */
		assert_int_equal(read(env2->q[r].call_fd, &v, 8), 8);
		/* Each ring from where the source's backend stopped, both pairs enabled. */
		assert_int_equal(base_sent(env2->f, 0, 1, r), (int)moved[r]);
		e = fake_find(env2->f, 0, 1, VHOST_USER_SET_VRING_ENABLE, (int)r);
		assert_true(e >= 0);
		assert_int_equal(state_num(&env2->f->log[e]), 1);
		expect_ring_works(env2, 0, 1, r);
	}
	/* The control queue goes on from the source's position: command 1 into used entry 1. */
	pairs = 1;
	assert_int_equal(ctrl_command(env2, 1, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
				      &pairs, 2), VIRTIO_NET_OK);
	state_out__free(&saved);
	env_free(env2);
	env_free(env);
}

static void test_net_snapshot_hostile_states_are_refused(void **state)
{
	const struct device_ops *ops = &virtio_net__device_ops;
	struct env *env = env_new(1, CLIENT), *env2;
	struct state_out saved;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	assert_int_equal(ops->freeze(env->dev), 0);
	saved = state_save(ops, env->dev);
	assert_int_equal(saved.len, NST_QUEUE0 + 4 * 2);
	env2 = env_new(1, CLIENT);
	assert_int_equal(virtio_net__wait_backend(env2->dev, 10000), 0);
	assert_state_length_exact(ops, env2->dev, &saved);
	assert_state_byte_refused(ops, env2->dev, &saved, 0, 0, "version");
	assert_state_byte_refused(ops, env2->dev, &saved, 7, 0, "kind");
	assert_state_byte_refused(ops, env2->dev, &saved, NST_PAIRS, 2, "queue pairs");
	assert_state_byte_refused(ops, env2->dev, &saved, NST_MAC, 0x42, "MAC");
	assert_state_byte_refused(ops, env2->dev, &saved, NST_ACTIVE, 2, "neither 0 nor 1");
	/* VIRTIO_NET_F_CSUM: the guest's or the old backend's, this backend has not got it. */
	assert_state_byte_refused(ops, env2->dev, &saved, NST_FEATURES, saved.buf[NST_FEATURES] | 1,
				  "feature bit 0");
	assert_state_byte_refused(ops, env2->dev, &saved, NST_NEGOTIATED,
				  saved.buf[NST_NEGOTIATED] | 1, "feature bit 0");
	assert_state_byte_refused(ops, env2->dev, &saved, NST_QUEUES, 0x07, "not a data queue");
	assert_state_byte_refused(ops, env2->dev, &saved, NST_QUEUE0 + 1, 0x80, "past the used index");
	state_out__free(&saved);
	env_free(env2);
	env_free(env);
}

static void test_vhost_blk_snapshot_round_trip_resumes_rings_at_the_saved_bases(void **state)
{
	const uint64_t features = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_BLK_F_FLUSH);
	const uint32_t moved[2] = { 17, 300 };
	struct bdev *b = bdev_new(BLK_ALL_FEATURES, 2, false);
	struct virtio_activation a;
	char why[STATE_WHY_LEN];
	struct state_out saved;
	unsigned from;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	bdev_activate(b, features);
	fake_set_bases(b->f, moved, 2);
	from = fake_nlog(b->f);
	assert_int_equal(vhost_blk__device_ops.freeze(b->dev), 0);
	assert_true(fake_find(b->f, from, 1, VHOST_USER_GET_VRING_BASE, 1) >= 0);
	saved = state_save(&vhost_blk__device_ops, b->dev);
	/* Thawed, the source's backend takes its rings back where they stopped. */
	from = fake_nlog(b->f);
	assert_int_equal(vhost_blk__device_ops.thaw(b->dev), 0);
	assert_int_equal(base_sent(b->f, from, 1, 1), (int)moved[1]);
	bdev_free(b);

	b = bdev_new(BLK_ALL_FEATURES, 2, false);
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	assert_state_length_exact(&vhost_blk__device_ops, b->dev, &saved);
	assert_state_byte_refused(&vhost_blk__device_ops, b->dev, &saved, 0, 9, "version");
	assert_int_equal(state_load(&vhost_blk__device_ops, b->dev, saved.buf, saved.len, why), 0);
	a = (struct virtio_activation){ .features = features, .nr_queues = 2, .queues = b->q,
					.mem = &b->mem, .resume = true };
	assert_int_equal(b->dev->ops->activate(b->dev, &a), 0);
	for (int k = 0; k < 1000 && b->dev->ops->resetting(b->dev); k++)
		usleep(10000);
	expect_no_ring_started(b->f, 0, 1);
	assert_int_equal(vhost_blk__device_ops.thaw(b->dev), 0);
	assert_int_equal(base_sent(b->f, 0, 1, 0), (int)moved[0]);
	assert_int_equal(base_sent(b->f, 0, 1, 1), (int)moved[1]);
	b->dev->ops->reset(b->dev);
	state_out__free(&saved);
	bdev_free(b);
}

static void test_vhost_blk_refuses_queue_counts_out_of_range(void **state)
{
	struct vhost_blk_spec spec = { .name = "disk3", .queues = 0 };
	struct virtio_dev *dev = NULL;
	struct guest_mem mem;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(guest_mem__create(&mem, RAM_SIZE), 0);
	snprintf(spec.socket, sizeof(spec.socket), "%s/x.sock", sock_dir);
	assert_int_equal(vhost_blk__create(&spec, &mem, &dev, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "disk 'disk3': 0 queues (1..16)"));
	spec.queues = 17;
	assert_int_equal(vhost_blk__create(&spec, &mem, &dev, &e), -EINVAL);
	assert_null(dev);
	guest_mem__destroy(&mem);
}


/* ---------------------------------------------------------------- dirty logging (live migration) */

#define PAGE 4096ull

/* SET_LOG_BASE's mmap_size and mmap_offset. */
static void log_base_of(const struct msg *m, uint64_t *size, uint64_t *offset)
{
	uint64_t p[2];

	assert_int_equal(m->size, 16);
	memcpy(p, m->payload, sizeof(p));
	*size = p[0];
	*offset = p[1];
}

/* The log a SET_LOG_BASE handed the fake, mapped as DPDK maps it (from 0, then the offset). */
static uint8_t *backend_map_log(const struct msg *m, uint64_t *len)
{
	uint64_t size, offset;
	uint8_t *p;

	log_base_of(m, &size, &offset);
	assert_int_equal(m->nfds, 1);
	p = mmap(NULL, size + offset, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[0], 0);
	assert_true(p != MAP_FAILED);
	*len = size + offset;
	return p + offset;
}

/* What a backend does after writing the page at `gpa` (the spec's pseudo-code, DPDK's vhost_log_page). */
static void backend_log_page(uint8_t *log, uint64_t gpa)
{
	uint64_t page = gpa / PAGE;

	__atomic_fetch_or(&log[page / 8], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
}

/* The harvest into `*bits` (allocated, memfd-offset pages of `mem`): how many pages. */
static unsigned harvest(const struct guest_mem *mem, uint64_t **bits)
{
	size_t words = (mem->size / PAGE + 63) / 64, w;
	unsigned n = 0;

	*bits = calloc(words, 8);
	assert_non_null(*bits);
	guest_mem__log_take(mem, *bits);
	for (w = 0; w < words; w++)
		n += (unsigned)__builtin_popcountll((*bits)[w]);
	return n;
}

static bool has_page(const uint64_t *bits, uint64_t memfd_off)
{
	return bits[memfd_off / PAGE / 64] >> (memfd_off / PAGE % 64) & 1;
}

static ino_t fd_ino(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* SET_VRING_ADDR's flags and log address. */
static void vring_addr_of(const struct msg *m, uint32_t *flags, uint64_t *log)
{
	memcpy(flags, m->payload + 4, 4);
	memcpy(log, m->payload + 32, 8);
}

/*
 * In connection `conn` from log entry `from`: the log handed over (the memfd of
 * `mem`, its whole size, offset 0), then SET_FEATURES `features` with LOG_ALL,
 * then each of `rings` rings' SET_VRING_ADDR with flag LOG and its used ring's gpa.
 */
static int expect_logging_sent(struct fake *f, unsigned from, unsigned conn,
			       const struct guest_mem *mem, uint64_t features, unsigned rings)
{
	uint64_t size, offset, log;
	uint32_t flags;
	int lb, sf, a;
	unsigned r;

	lb = fake_wait(f, from, conn, VHOST_USER_SET_LOG_BASE, -1, 10000);
	assert_true(lb >= 0);
	log_base_of(&f->log[lb], &size, &offset);
	assert_int_equal(size, mem->log_size);
	assert_int_equal(size, guest_mem__log_bytes(mem));
	assert_int_equal(offset, 0);
	assert_int_equal(f->log[lb].nfds, 1);
	assert_true(fd_ino(f->log[lb].fds[0]) == fd_ino(mem->log_fd));
	sf = fake_find(f, from, conn, VHOST_USER_SET_FEATURES, -1);
	assert_true(sf >= 0);
	assert_true(payload_u64(&f->log[sf]) == (features | BIT(VHOST_F_LOG_ALL)));
	for (r = 0; r < rings; r++) {
		a = fake_wait(f, from, conn, VHOST_USER_SET_VRING_ADDR, (int)r, 10000);
		assert_true(a >= 0);
		vring_addr_of(&f->log[a], &flags, &log);
		assert_int_equal(flags, 1u << VHOST_VRING_F_LOG);
		assert_true(log == q_used(r));
	}
	return lb;
}

static void test_net_dirty_log_reaches_the_backend_whose_marks_come_back_by_memfd_offset(void **state)
{
	/* 3 GiB below the PCI hole, 16 MiB from 4 GiB (memfd offset 3 GiB): sparse. */
	struct env *env = env_new_full(1, CLIENT, TRUST_NO_UID, GUEST_PCI_HOLE_START + (16ull << 20),
				       0, 0);
	uint64_t negotiated, *bits, len, log;
	struct err e = { 0 };
	unsigned from, r;
	uint32_t flags;
	uint8_t *blog;
	int i, lb;

	(void)state;
	assert_int_equal(env->mem.nr_regions, 2);
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	i = fake_find(env->f, 0, 1, VHOST_USER_SET_FEATURES, -1);
	negotiated = payload_u64(&env->f->log[i]);
	assert_false(negotiated & BIT(VHOST_F_LOG_ALL));
	/* The rings run unlogged: their SET_VRING_ADDR had no LOG flag. */
	i = fake_find(env->f, 0, 1, VHOST_USER_SET_VRING_ADDR, 0);
	vring_addr_of(&env->f->log[i], &flags, &log);
	assert_int_equal(flags, 0);

	assert_int_equal(guest_mem__log_start(&env->mem), 0);
	from = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.dirty_log(env->dev, env->mem.log_fd,
							  env->mem.log_size, &e), 0);
	/* QEMU's order: the log, then LOG_ALL, then the running rings again with flag LOG. */
	lb = expect_logging_sent(env->f, from, 1, &env->mem, negotiated, 2);
	assert_true(lb < fake_find(env->f, from, 1, VHOST_USER_SET_FEATURES, -1));
	assert_true(fake_find(env->f, from, 1, VHOST_USER_SET_FEATURES, -1) <
		    fake_find(env->f, from, 1, VHOST_USER_SET_VRING_ADDR, 0));

	/* The backend forwards into an RX buffer, completes it, and writes high RAM (and the hole). */
	blog = backend_map_log(&env->f->log[lb], &len);
	backend_log_page(blog, 0x200000);
	backend_log_page(blog, q_used(0));
	backend_log_page(blog, GUEST_PCI_HOLE_END + 5 * PAGE);
	backend_log_page(blog, GUEST_PCI_HOLE_START + 7 * PAGE);    /* no RAM there */
	assert_int_equal(harvest(&env->mem, &bits), 3);
	assert_true(has_page(bits, 0x200000));
	assert_true(has_page(bits, q_used(0)));
	assert_true(has_page(bits, GUEST_PCI_HOLE_START + 5 * PAGE)); /* gpa 4 GiB + 20 KiB */
	free(bits);
	assert_int_equal(harvest(&env->mem, &bits), 0);
	free(bits);

	/* Stop: SET_FEATURES without LOG_ALL, the rings without LOG. */
	from = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.dirty_log(env->dev, -1, 0, &e), 0);
	i = fake_find(env->f, from, 1, VHOST_USER_SET_FEATURES, -1);
	assert_true(i >= 0);
	assert_true(payload_u64(&env->f->log[i]) == negotiated);
	for (r = 0; r < 2; r++) {
		i = fake_find(env->f, from, 1, VHOST_USER_SET_VRING_ADDR, (int)r);
		assert_true(i >= 0);
		vring_addr_of(&env->f->log[i], &flags, &log);
		assert_int_equal(flags, 0);
	}
	assert_int_equal(fake_find(env->f, from, 1, VHOST_USER_SET_LOG_BASE, -1), -1);
	assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
	munmap(blog, len);
	guest_mem__log_stop(&env->mem);
	env_free(env);
}

/* A stand-in device in a list: records its dirty_log calls. */
struct log_stub {
	int starts, stops;
};

static int log_stub_dirty_log(void *dev, int log_fd, uint64_t log_size, struct err *e)
{
	struct log_stub *st = dev;

	(void)log_size;
	(void)e;
	if (log_fd >= 0)
		st->starts++;
	else
		st->stops++;
	return 0;
}

static const struct device_ops log_stub_ops = { .dirty_log = log_stub_dirty_log };

static void expect_refused(uint64_t no_features, uint64_t no_protocol, const char *lacks)
{
	struct env *env = env_new_full(1, CLIENT, TRUST_NO_UID, RAM_SIZE, no_features, no_protocol);
	struct device_list l = { 0 };
	struct log_stub stub = { 0 };
	const struct device *bad = NULL;
	struct err e = { 0 };
	unsigned from;

	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	assert_int_equal(guest_mem__log_start(&env->mem), 0);
	from = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.dirty_log(env->dev, env->mem.log_fd,
							  env->mem.log_size, &e), -ENOTSUP);
	/* Named: the device, its backend, what it lacks. */
	assert_non_null(strstr(e.msg, env->nic.name));
	assert_non_null(strstr(e.msg, env->nic.socket));
	assert_non_null(strstr(e.msg, lacks));
	assert_int_equal(fake_find(env->f, from, 0, VHOST_USER_SET_LOG_BASE, -1), -1);
	assert_int_equal(fake_find(env->f, from, 0, VHOST_USER_SET_FEATURES, -1), -1);
	/* In a VM's list: the devices started before it are stopped again, it is named. */
	assert_int_equal(device_list__add(&l, "stub", &log_stub_ops, &stub), 0);
	assert_int_equal(device_list__add(&l, env->nic.name, &virtio_net__device_ops, env->dev), 0);
	memset(&e, 0, sizeof(e));
	assert_int_equal(device_list__dirty_log(&l, env->mem.log_fd, env->mem.log_size, &bad, &e),
			 -ENOTSUP);
	assert_ptr_equal(bad, &l.v[1]);
	assert_non_null(strstr(e.msg, lacks));
	assert_int_equal(stub.starts, 1);
	assert_int_equal(stub.stops, 1);
	free(l.v);
	/* The link is the guest's as before. */
	assert_int_equal(link_status(env), VIRTIO_NET_S_LINK_UP);
	guest_mem__log_stop(&env->mem);
	env_free(env);
}

static void test_net_dirty_log_refuses_a_backend_that_cannot_log_naming_it(void **state)
{
	(void)state;
	expect_refused(0, BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD), "protocol feature LOG_SHMFD");
	expect_refused(BIT(VHOST_F_LOG_ALL), 0, "feature VHOST_F_LOG_ALL");
}

static bool wait_conns(struct fake *f, unsigned n, int timeout_ms)
{
	int k;

	for (k = 0; k < timeout_ms / 10; k++) {
		pthread_mutex_lock(&f->lock);
		if (f->conns >= n && f->conn_fd < 0) {
			pthread_mutex_unlock(&f->lock);
			return true;
		}
		pthread_mutex_unlock(&f->lock);
		usleep(10000);
	}
	return false;
}

static void test_net_dirty_log_survives_freeze_thaw_and_a_backend_reconnect(void **state)
{
	struct env *env = env_new(1, CLIENT);
	struct virtio_net_stats st;
	uint64_t negotiated, *bits, len, log;
	struct err e = { 0 };
	uint32_t flags;
	unsigned n, r, c;
	uint8_t *blog;
	int i, lb;

	(void)state;
	assert_int_equal(virtio_net__wait_backend(env->dev, 10000), 0);
	assert_int_equal(env_activate(env, env->dev->ops->features(env->dev)), 0);
	i = fake_find(env->f, 0, 1, VHOST_USER_SET_FEATURES, -1);
	negotiated = payload_u64(&env->f->log[i]);
	assert_int_equal(guest_mem__log_start(&env->mem), 0);
	assert_int_equal(virtio_net__device_ops.dirty_log(env->dev, env->mem.log_fd,
							  env->mem.log_size, &e), 0);

	/* A snapshot's freeze and thaw: the rings come back logged. */
	assert_int_equal(virtio_net__device_ops.freeze(env->dev), 0);
	n = fake_nlog(env->f);
	assert_int_equal(virtio_net__device_ops.thaw(env->dev), 0);
	expect_logging_sent(env->f, n, 1, &env->mem, negotiated, 2);

	/* The backend crashes and comes back: the new one logs from its first write. */
	n = fake_nlog(env->f);
	fake_drop(env->f);
	assert_true(fake_wait(env->f, n, 2, VHOST_USER_SET_VRING_ENABLE, 1, 10000) >= 0);
	lb = expect_logging_sent(env->f, n, 2, &env->mem, negotiated, 2);
	/* Handed before its rings start. */
	assert_true(lb < fake_find(env->f, n, 2, VHOST_USER_SET_VRING_KICK, 0));
	blog = backend_map_log(&env->f->log[lb], &len);
	backend_log_page(blog, 0x300000);
	assert_int_equal(harvest(&env->mem, &bits), 1);
	assert_true(has_page(bits, 0x300000));
	free(bits);
	munmap(blog, len);

	/* One that cannot log is refused while the migration runs: its writes would go unseen. */
	pthread_mutex_lock(&env->f->lock);
	env->f->protocol &= ~BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
	pthread_mutex_unlock(&env->f->lock);
	n = fake_nlog(env->f);
	fake_drop(env->f);
	assert_true(wait_conns(env->f, 3, 10000));
	assert_int_equal(fake_find(env->f, n, 3, VHOST_USER_SET_MEM_TABLE, -1), -1);
	virtio_net__stats(env->dev, &st);
	assert_false(st.session.link_up);
	assert_non_null(strstr(st.session.last_error, "cannot log"));
	/* The migration ends: the next attempt takes it, unlogged. */
	assert_int_equal(virtio_net__device_ops.dirty_log(env->dev, -1, 0, &e), 0);
	guest_mem__log_stop(&env->mem);
	assert_int_equal(virtio_net__wait_backend(env->dev, 15000), 0);
	pthread_mutex_lock(&env->f->lock);
	c = env->f->conns;
	pthread_mutex_unlock(&env->f->lock);
	assert_true(c > 3);
	assert_true(fake_wait(env->f, n, c, VHOST_USER_SET_VRING_ENABLE, 1, 10000) >= 0);
	i = fake_find(env->f, n, c, VHOST_USER_SET_FEATURES, -1);
	assert_true(payload_u64(&env->f->log[i]) == negotiated);
	assert_int_equal(fake_find(env->f, n, c, VHOST_USER_SET_LOG_BASE, -1), -1);
	for (r = 0; r < 2; r++) {
		i = fake_find(env->f, n, c, VHOST_USER_SET_VRING_ADDR, (int)r);
		vring_addr_of(&env->f->log[i], &flags, &log);
		assert_int_equal(flags, 0);
	}
	env_free(env);
}

static void test_vhost_blk_standin_marks_what_it_writes_and_the_returning_backend_logs(void **state)
{
	struct bdev *b = bdev_new(BLK_ALL_FEATURES | BIT(VHOST_F_LOG_ALL), 1, false);
	uint64_t negotiated, one = 1, *bits;
	struct err e = { 0 };
	unsigned from;
	int i;

	(void)state;
	assert_int_equal(vhost_blk__wait_backend(b->dev, 10000), 0);
	bdev_activate(b, BIT(VIRTIO_F_VERSION_1));
	assert_true(fake_wait(b->f, 0, 1, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	negotiated = payload_u64(&b->f->log[fake_find(b->f, 0, 1, VHOST_USER_SET_FEATURES, -1)]);
	assert_int_equal(guest_mem__log_start(&b->mem), 0);
	from = fake_nlog(b->f);
	assert_int_equal(vhost_blk__device_ops.dirty_log(b->dev, b->mem.log_fd, b->mem.log_size, &e),
			 0);
	expect_logging_sent(b->f, from, 1, &b->mem, negotiated, 1);

	/* The backend dies: the monitor fails its requests, and marks what it writes. */
	blk_backend_dies_with_head_0_in_flight(b, true);
	assert_true(blk_wait_used(b, 2));
	blk_put_request(b, 4);
	blk_publish(b, 2, 4);
	harvest(&b->mem, &bits);                /* what the test wrote as the guest */
	free(bits);
	assert_int_equal(write(b->q[0].kick_fd, &one, 8), 8);
	assert_true(blk_wait_used(b, 3));
	assert_int_equal(blk_status(b, 4), VIRTIO_BLK_S_IOERR);
	/* Its status byte and the used ring: nothing else. */
	assert_int_equal(harvest(&b->mem, &bits), 2);
	assert_true(has_page(bits, BLK_STATUS) && has_page(bits, q_used(0)));
	free(bits);

	/* The backend returns while the migration runs: it gets the log with its rings. */
	from = fake_nlog(b->f);
	fake_set_away(b->f, false);
	assert_true(fake_wait(b->f, from, 2, VHOST_USER_SET_VRING_KICK, 0, 10000) >= 0);
	expect_logging_sent(b->f, from, 2, &b->mem, negotiated, 1);
	from = fake_nlog(b->f);
	assert_int_equal(vhost_blk__device_ops.dirty_log(b->dev, -1, 0, &e), 0);
	i = fake_find(b->f, from, 2, VHOST_USER_SET_FEATURES, -1);
	assert_true(i >= 0 && payload_u64(&b->f->log[i]) == negotiated);
	guest_mem__log_stop(&b->mem);
	b->dev->ops->reset(b->dev);
	bdev_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_features_and_protocol_features_negotiate),
		cmocka_unit_test(test_get_queue_num_needs_protocol_mq),
		cmocka_unit_test(test_mem_table_passes_the_guest_ram_memfd),
		cmocka_unit_test(test_vring_messages_carry_index_values_and_fds),
		cmocka_unit_test(test_reply_with_wrong_request_code_breaks_connection),
		cmocka_unit_test(test_reply_too_big_is_refused_before_reading_it),
		cmocka_unit_test(test_reply_too_short_is_refused),
		cmocka_unit_test(test_truncated_reply_then_eof_breaks_connection),
		cmocka_unit_test(test_reply_with_wrong_version_breaks_connection),
		cmocka_unit_test(test_reply_without_reply_flag_breaks_connection),
		cmocka_unit_test(test_reply_with_unexpected_fd_is_closed_and_refused),
		cmocka_unit_test(test_missing_reply_times_out),
		cmocka_unit_test(test_backend_gone_instead_of_reply),
		cmocka_unit_test(test_vring_base_for_another_vring_is_refused),
		cmocka_unit_test(test_reply_ack_failure_is_reported),
		cmocka_unit_test(test_get_config_reads_the_window_it_asked_for),
		cmocka_unit_test(test_get_config_short_reply_is_refused),
		cmocka_unit_test(test_get_config_empty_reply_is_the_backends_refusal),
		cmocka_unit_test(test_get_config_reply_for_another_window_is_refused),
		cmocka_unit_test(test_get_config_oversized_reply_is_refused_before_reading_it),
		cmocka_unit_test(test_unconnected_and_peer_closed_sends_fail_cleanly),
		cmocka_unit_test(test_listen_replaces_stale_socket_but_not_other_files),
		cmocka_unit_test(test_set_log_base_passes_the_log_fd_and_takes_the_backends_answer),
		cmocka_unit_test(test_net_offers_backend_data_features_never_protocol_bit),
		cmocka_unit_test(test_net_mq_config_and_queue_layout),
		cmocka_unit_test(test_net_activate_hands_rings_to_backend_as_frontend_addresses),
		cmocka_unit_test(test_net_reset_stops_rings_with_get_vring_base),
		cmocka_unit_test(test_net_ring_outside_guest_ram_never_reaches_backend),
		cmocka_unit_test(test_net_backend_gone_link_down_then_rings_resume_from_used_idx),
		cmocka_unit_test(test_net_malformed_reply_takes_link_down_and_retries),
		cmocka_unit_test(test_net_backend_without_enough_queues_keeps_link_down),
		cmocka_unit_test(test_net_without_reply_ack_syncs_with_get_features),
		cmocka_unit_test(test_net_server_mode_accepts_backend_and_its_return),
		cmocka_unit_test(test_net_ctrl_mq_vq_pairs_set_enables_backend_rings),
		cmocka_unit_test(test_net_ctrl_vq_without_mq_is_never_handed_to_the_backend),
		cmocka_unit_test(test_net_activation_never_waits_for_a_silent_backend),
		cmocka_unit_test(test_net_counters_show_link_connects_features_and_queue_pairs),
		cmocka_unit_test(test_net_counters_answer_at_once_while_the_backend_is_silent),
		cmocka_unit_test(test_net_backend_of_another_uid_is_refused_before_anything_is_sent),
		cmocka_unit_test(test_net_socket_in_a_writable_directory_is_refused),
		cmocka_unit_test(test_net_queue_size_is_offered_and_bounded),
		cmocka_unit_test(test_net_creates_the_run_dir_0700_for_its_socket),
		cmocka_unit_test(test_net_server_never_unlinks_a_live_socket),
		cmocka_unit_test(test_net_detached_transport_hears_no_more_changes),
		cmocka_unit_test(test_net_ctrl_bad_descriptors_stop_queue_without_crash),
		cmocka_unit_test(test_net_ctrl_indirect_command_is_served),
		cmocka_unit_test(test_session_handshake_then_mem_table_with_the_ram_fd),
		cmocka_unit_test(test_session_reconnect_resumes_rings_from_used_idx),
		cmocka_unit_test(test_session_refuses_a_malformed_reply_and_retries),
		cmocka_unit_test(test_session_requires_the_backends_queue_num),
		cmocka_unit_test(test_session_hands_local_queue_kicks_to_the_device),
		cmocka_unit_test(test_session_fetches_config_after_set_owner_and_serves_the_copy),
		cmocka_unit_test(test_session_config_reads_zeros_before_any_backend),
		cmocka_unit_test(test_session_short_get_config_reply_takes_link_down),
		cmocka_unit_test(test_session_refused_get_config_takes_link_down),
		cmocka_unit_test(test_session_get_config_for_another_window_takes_link_down),
		cmocka_unit_test(test_session_backend_gone_during_get_config_takes_link_down),
		cmocka_unit_test(test_session_backend_without_protocol_config_is_refused),
		cmocka_unit_test(test_session_reconnect_with_changed_config_raises_config_changed),
		cmocka_unit_test(test_vhost_blk_config_and_features_come_from_the_backend),
		cmocka_unit_test(test_vhost_blk_one_queue_and_readonly_narrow_the_features),
		cmocka_unit_test(test_vhost_blk_readonly_refuses_a_backend_without_ro),
		cmocka_unit_test(test_vhost_blk_activation_hands_the_queues_in_use_to_the_backend),
		cmocka_unit_test(test_vhost_blk_inflight_region_survives_a_backend_crash_not_a_reset),
		cmocka_unit_test(test_vhost_blk_inflight_reply_without_fd_takes_link_down),
		cmocka_unit_test(test_vhost_blk_dead_backend_requests_fail_with_ioerr_until_it_returns),
		cmocka_unit_test(test_vhost_blk_dead_backend_without_inflight_tracking_stalls_and_resumes),
		cmocka_unit_test(test_vhost_blk_dead_backend_whose_region_shrank_is_not_trusted),
		cmocka_unit_test(test_vhost_blk_counters_show_link_connects_and_capacity),
		cmocka_unit_test(test_vhost_blk_without_backend_reads_zeros_and_times_out),
		cmocka_unit_test(test_vhost_blk_refuses_queue_counts_out_of_range),
		cmocka_unit_test(test_net_freeze_stops_rings_with_get_vring_base_and_thaw_restarts_them_there),
		cmocka_unit_test(test_net_freeze_holds_control_commands_until_the_thaw),
		cmocka_unit_test(test_net_snapshot_round_trip_resumes_rings_at_the_saved_bases),
		cmocka_unit_test(test_net_snapshot_hostile_states_are_refused),
		cmocka_unit_test(test_vhost_blk_snapshot_round_trip_resumes_rings_at_the_saved_bases),
		cmocka_unit_test(test_net_dirty_log_reaches_the_backend_whose_marks_come_back_by_memfd_offset),
		cmocka_unit_test(test_net_dirty_log_refuses_a_backend_that_cannot_log_naming_it),
		cmocka_unit_test(test_net_dirty_log_survives_freeze_thaw_and_a_backend_reconnect),
		cmocka_unit_test(test_vhost_blk_standin_marks_what_it_writes_and_the_returning_backend_logs),
	};
	int rc;

	snprintf(sock_dir, sizeof(sock_dir), "/tmp/rtvmm-vu-unit.XXXXXX");
	if (!mkdtemp(sock_dir)) {
		perror("mkdtemp");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(sock_dir);
	return rc;
}
