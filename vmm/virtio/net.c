/* virtio-net over vhost-user: feature policy, ring setup, reconnection, control queue. */
#include "vmm/virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/virtio/vhost_user.h"
#include "vmm/virtio/virtqueue.h"

#define BIT(n) (1ull << (n))

/* Data-path features: only what the backend implements reaches the guest. */
#define NET_DATA_FEATURES                                                                    \
	(BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |  \
	 BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) |                            \
	 BIT(VIRTIO_NET_F_GUEST_UFO) | BIT(VIRTIO_NET_F_HOST_TSO4) |                             \
	 BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) | BIT(VIRTIO_NET_F_HOST_UFO) | \
	 BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |                        \
	 BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))
/* Offered before any backend was seen (what DPDK's vhost library implements). */
#define NET_DEFAULT_DATA_FEATURES                                                      \
	(BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |                  \
	 BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))
/* What SET_FEATURES may carry: the data path, and MQ so the backend keeps its extra rings. */
#define NET_BACKEND_FEATURES (NET_DATA_FEATURES | BIT(VIRTIO_NET_F_MQ))
#define NET_PROTOCOL_WANTED \
	(BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK))

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* epoll tags: kind in the top byte, a generation below so stale events are recognised. */
enum { EV_WAKE = 1, EV_SOCK, EV_LISTEN, EV_CTRL };
#define EV_TAG(kind, gen) (((uint64_t)(kind) << 56) | ((gen) & ((1ull << 56) - 1)))
#define EV_KIND(tag)      ((unsigned)((tag) >> 56))
#define EV_GEN(tag)       ((tag) & ((1ull << 56) - 1))

struct net_queue {
	bool enabled;            /* the guest enabled it */
	bool started;            /* handed to the current backend */
	uint16_t size;
	uint64_t desc, avail, used;   /* guest-physical */
	int kick_fd, call_fd;    /* our duplicates of the transport's eventfds, -1 if none */
};

struct net {
	struct virtio_dev vdev;
	char name[32];
	char path[108];
	bool server;
	unsigned max_pairs;
	const struct guest_mem *mem;

	/* Config snapshot and features: short critical sections, never held across I/O. */
	pthread_mutex_t cfg_lock;
	struct virtio_net_config cfg;
	bool backend_known;
	uint64_t backend_features;

	/* Everything below: under `lock`. */
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* link changes, for virtio_net__wait_backend */
	struct vhost_user vu;
	bool session;                   /* connected and negotiated */
	uint64_t sock_gen;              /* bumps with each session */
	int listen_fd;
	int epfd, wake_fd;
	pthread_t thread;
	bool stopping;
	int backoff_ms;
	int64_t next_attempt_ms;
	bool waiting_logged;
	bool link_up;
	bool config_pending;            /* the thread owes the transport a config_changed */

	bool active;                    /* DRIVER_OK seen, not reset */
	bool rings_up;                  /* the active rings are set up in the current session */
	bool rings_ever;                /* set up at least once since activation (base from used->idx) */
	uint64_t features;              /* negotiated with the guest */
	unsigned nr_queues;
	struct net_queue q[VIRTIO_MAX_QUEUES];
	unsigned curr_pairs;

	int ctrl_idx;                   /* control queue index, -1 when none */
	uint64_t ctrl_gen;
	bool ctrl_broken;
	struct virtqueue ctrl;

	struct virtio_net_stats stats;
};

static struct net *to_net(struct virtio_dev *vdev)
{
	return vdev->priv;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 2, 3)))
static void net_log(struct net *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "rtvmm: %s: %s\n", n->name, msg);
}

static void net_wake(struct net *n)
{
	uint64_t one = 1;

	if (write(n->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter is saturated: the thread is awake anyway. */
	}
}

static void eventfd_nudge(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the peer will see it. */
	}
}

/* Link state: config snapshot, interrupt owed by the thread, waiters. Lock held. */
static void net_set_link(struct net *n, bool up)
{
	if (n->link_up == up)
		return;
	n->link_up = up;
	n->stats.link_up = up;
	n->stats.link_changes++;
	pthread_mutex_lock(&n->cfg_lock);
	n->cfg.status = up ? VIRTIO_NET_S_LINK_UP : 0;
	pthread_mutex_unlock(&n->cfg_lock);
	n->config_pending = true;
	pthread_cond_broadcast(&n->cond);
	net_wake(n);
}

/* Ends the session (the backend is gone or misbehaved). Lock held. */
static void net_close_session(struct net *n)
{
	unsigned i;

	if (n->vu.fd >= 0)
		epoll_ctl(n->epfd, EPOLL_CTL_DEL, n->vu.fd, NULL);
	vhost_user__close(&n->vu);
	n->session = false;
	n->rings_up = false;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		n->q[i].started = false;
	net_set_link(n, false);
}

/* Client mode: the next attempt after the current backoff, which then doubles (to 5 s). */
static void net_schedule_retry(struct net *n)
{
	n->next_attempt_ms = now_ms() + n->backoff_ms;
	n->backoff_ms = n->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : n->backoff_ms * 2;
	net_wake(n);
}

/* A request failed: log it once, end the session, let the thread reconnect. Lock held. */
static void net_fail_session(struct net *n, const struct err *e)
{
	bool gone = e->code == -ECONNRESET || e->code == -EPIPE;

	/* e->msg names the NIC already. */
	fprintf(stderr, "rtvmm: %s; link down, %s\n", e->msg,
		n->server ? "waiting for the backend to connect again" : "reconnecting");
	snprintf(n->stats.last_error, sizeof(n->stats.last_error), "%s", e->msg);
	if (gone)
		n->stats.disconnects++;
	else
		n->stats.failures++;
	net_close_session(n);
	net_schedule_retry(n);
}

/* Number of data queues: rx/tx pairs. */
static unsigned net_data_queues(const struct net *n)
{
	return 2 * n->max_pairs;
}

/* Re-checks a ring the guest wrote: aligned, power-of-two size, every byte in one RAM region. */
static int net_check_ring(const struct net *n, unsigned idx, const struct net_queue *q,
			  bool event_idx, struct err *e)
{
	struct virtio_queue vq = { .size = q->size, .desc = q->desc, .driver = q->avail,
				   .device = q->used };
	struct err why;
	int err = virtqueue__check(n->mem, &vq, VIRTIO_NET_QUEUE_SIZE, event_idx, &why);

	return err ? err__set(e, err, "%s: queue %u: %s", n->name, idx, why.msg) : 0;
}

static int net_set_enables(struct net *n, struct err *e)
{
	unsigned i;
	int err;

	if (!(n->backend_features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		return 0; /* rings start enabled */
	for (i = 0; i < net_data_queues(n) && i < n->nr_queues; i++) {
		if (!n->q[i].started)
			continue;
		err = vhost_user__set_vring_enable(&n->vu, i, i < 2 * n->curr_pairs, e);
		if (err)
			return err;
	}
	return 0;
}

/* Hands the active rings to the backend. Lock held, session up. */
static int net_setup_rings(struct net *n, struct err *e)
{
	uint64_t lacking = n->features & NET_DATA_FEATURES & ~n->backend_features;
	bool event_idx = n->features & BIT(VIRTIO_RING_F_EVENT_IDX);
	bool resume = n->rings_ever;
	uint64_t f;
	unsigned i;
	int err;

	if (lacking)
		return err__set(e, -EPROTO, "%s: vhost-user: the backend lacks features %#llx the guest negotiated",
				n->name, (unsigned long long)lacking);
	f = (n->features & n->backend_features & NET_BACKEND_FEATURES) |
	    (n->backend_features & BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	err = vhost_user__set_features(&n->vu, f, e);
	if (!err)
		err = vhost_user__set_mem_table_guest(&n->vu, n->mem, e);
	for (i = 0; !err && i < net_data_queues(n) && i < n->nr_queues; i++) {
		struct net_queue *q = &n->q[i];
		struct vhost_user_vring_addr a = { .index = i, .log = q->used };
		unsigned base = 0;
		uint16_t *used_idx;

		if (!q->enabled)
			continue;
		/* Checked at activation; the check is cheap, and this is what the backend will trust. */
		err = net_check_ring(n, i, q, event_idx, e);
		if (err)
			return err;
		a.desc = (uint64_t)(uintptr_t)guest_mem__ptr(n->mem, q->desc, 16ull * q->size);
		a.avail = (uint64_t)(uintptr_t)guest_mem__ptr(n->mem, q->avail, 4 + 2ull * q->size);
		a.used = (uint64_t)(uintptr_t)guest_mem__ptr(n->mem, q->used, 4 + 8ull * q->size);
		if (resume) {
			/* The old backend cannot be asked: resume from what it completed, as QEMU does. */
			used_idx = guest_mem__ptr(n->mem, q->used + 2, 2);
			base = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE);
		}
		err = vhost_user__set_vring_num(&n->vu, i, q->size, e);
		if (!err)
			err = vhost_user__set_vring_base(&n->vu, i, base, e);
		if (!err)
			err = vhost_user__set_vring_addr(&n->vu, &a, e);
		if (!err)
			err = vhost_user__set_vring_kick(&n->vu, i, q->kick_fd, e);
		if (!err)
			err = vhost_user__set_vring_call(&n->vu, i, q->call_fd, e);
		if (!err)
			q->started = true;
	}
	if (!err)
		err = net_set_enables(n, e);
	/* Without REPLY_ACK, a request with a reply shows the backend took everything before it. */
	if (!err && !(n->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		err = vhost_user__get_features(&n->vu, &f, e);
	if (err)
		return err;
	n->rings_up = true;
	n->rings_ever = true;
	if (resume) {
		/* Work queued while the backend was away, and completions it may not have signalled. */
		for (i = 0; i < net_data_queues(n) && i < n->nr_queues; i++) {
			if (n->q[i].started) {
				eventfd_nudge(n->q[i].kick_fd);
				eventfd_nudge(n->q[i].call_fd);
			}
		}
	}
	return 0;
}

/* Stops the rings in the backend (disable, then GET_VRING_BASE). Lock held, session up. */
static int net_stop_rings(struct net *n, struct err *e)
{
	unsigned i, base;
	int err;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (!n->q[i].started)
			continue;
		if (n->backend_features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
			err = vhost_user__set_vring_enable(&n->vu, i, false, e);
			if (err)
				return err;
		}
	}
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (!n->q[i].started)
			continue;
		err = vhost_user__get_vring_base(&n->vu, i, &base, e);
		if (err)
			return err;
		n->q[i].started = false;
	}
	n->rings_up = false;
	return 0;
}

/* A new connection: negotiate, and set the rings up when the guest is running. Lock held. */
static int net_handshake(struct net *n, struct err *e)
{
	uint64_t features, protocol = 0, queues;
	int err;

	err = vhost_user__get_features(&n->vu, &features, e);
	if (err)
		return err;
	if (features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
		err = vhost_user__get_protocol_features(&n->vu, &protocol, e);
		if (!err)
			err = vhost_user__set_protocol_features(&n->vu, protocol & NET_PROTOCOL_WANTED, e);
		if (err)
			return err;
	}
	if (n->max_pairs > 1) {
		if (!(n->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_MQ)))
			return err__set(e, -EPROTO, "%s: vhost-user: the backend has no multiqueue (protocol feature MQ); %u queue pairs configured",
					n->name, n->max_pairs);
		err = vhost_user__get_queue_num(&n->vu, &queues, e);
		if (err)
			return err;
		if (queues < n->max_pairs)
			return err__set(e, -EPROTO, "%s: vhost-user: the backend supports %llu queue pairs, %u configured",
					n->name, (unsigned long long)queues, n->max_pairs);
	}
	err = vhost_user__set_owner(&n->vu, e);
	if (err)
		return err;
	n->stats.backend_known = true;
	n->stats.backend_features = features;
	n->stats.backend_protocol = n->vu.protocol;
	pthread_mutex_lock(&n->cfg_lock);
	n->backend_known = true;
	n->backend_features = features;
	pthread_mutex_unlock(&n->cfg_lock);
	return 0;
}

/* Takes a connected socket and brings the session up, or ends it with a logged error. Lock held. */
static void net_start_session(struct net *n, int fd)
{
	struct epoll_event ev = { .events = EPOLLRDHUP };
	struct err e = { 0 };
	int err;

	err = vhost_user__attach(&n->vu, fd);
	if (err) {
		close(fd);
		err__set(&e, err, "%s: vhost-user: cannot use the backend's socket: %s", n->name,
			 strerror(-err));
		net_fail_session(n, &e);
		return;
	}
	err = net_handshake(n, &e);
	if (!err && n->active)
		err = net_setup_rings(n, &e);
	if (!err) {
		n->sock_gen++;
		ev.data.u64 = EV_TAG(EV_SOCK, n->sock_gen);
		if (epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->vu.fd, &ev) < 0)
			err = err__set(&e, -errno, "%s: vhost-user: epoll: %s", n->name, strerror(errno));
	}
	if (err) {
		net_fail_session(n, &e);
		return;
	}
	n->session = true;
	n->backoff_ms = BACKOFF_MIN_MS;
	n->waiting_logged = false;
	n->stats.connects++;
	net_log(n, "vhost-user backend %s %s: features %#llx, protocol features %#llx%s; link up",
		n->server ? "connected to" : "at", n->path,
		(unsigned long long)n->backend_features, (unsigned long long)n->vu.protocol,
		n->rings_up ? ", rings set up" : "");
	net_set_link(n, true);
}

static void net_try_connect(struct net *n)
{
	int fd = vhost_user__connect(n->path);

	if (fd < 0) {
		if (!n->waiting_logged)
			net_log(n, "waiting for the vhost-user backend at %s (%s); retrying up to every %d ms",
				n->path, strerror(-fd), BACKOFF_MAX_MS);
		n->waiting_logged = true;
		net_schedule_retry(n);
		return;
	}
	net_start_session(n, fd);
}

/* The backend hung up: end its session so that a new one can start. Lock held. */
static void net_backend_gone(struct net *n)
{
	struct err e;

	err__set(&e, -ECONNRESET, "%s: vhost-user: the backend closed the connection", n->name);
	n->backoff_ms = BACKOFF_MIN_MS;
	net_fail_session(n, &e);
}

/* Whether the peer of a session socket has hung up (checked without blocking). */
static bool sock_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void net_accept(struct net *n)
{
	int fd;

	while ((fd = vhost_user__accept(n->listen_fd)) >= 0) {
		/* A restarted backend's new connection can be seen before its old one's hangup
		 * (both in one epoll batch, the listener first): end the dead session first. */
		if (n->session && sock_hung_up(n->vu.fd))
			net_backend_gone(n);
		if (n->session) {
			net_log(n, "refusing a second vhost-user backend on %s (one is connected)", n->path);
			close(fd);
			continue;
		}
		net_start_session(n, fd);
	}
}

/* ---- control queue: served by the monitor, never by the backend ---- */

struct ctrl_cmd {
	uint8_t in[64];          /* device-readable bytes (class, command, data) */
	uint32_t in_len;         /* bytes in `in` */
	uint64_t in_total;       /* all readable bytes of the chain */
	uint64_t ack_gpa;        /* first device-writable byte */
	bool has_ack;
};

/* virtqueue_buf_fn: gathers the command bytes and finds the ack byte. */
static int ctrl_gather(void *arg, const struct virtqueue_buf *b)
{
	struct ctrl_cmd *c = arg;
	uint32_t take;

	if (b->write) {
		if (!c->has_ack && b->len) {
			c->ack_gpa = b->gpa;
			c->has_ack = true;
		}
		return 0;
	}
	take = b->len < sizeof(c->in) - c->in_len ? b->len : (uint32_t)(sizeof(c->in) - c->in_len);
	if (take)
		memcpy(c->in + c->in_len, b->hva, take);
	c->in_len += take;
	c->in_total += b->len;
	return 0;
}

/* Runs one command; returns VIRTIO_NET_OK or VIRTIO_NET_ERR. Lock held. */
static uint8_t ctrl_execute(struct net *n, const struct ctrl_cmd *c)
{
	uint16_t pairs;
	struct err e = { 0 };

	if (c->in_len < 2 || c->in_total != c->in_len)
		return VIRTIO_NET_ERR;
	if (c->in[0] != VIRTIO_NET_CTRL_MQ || c->in[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    !(n->features & BIT(VIRTIO_NET_F_MQ)) || c->in_len != 4)
		return VIRTIO_NET_ERR;
	memcpy(&pairs, c->in + 2, sizeof(pairs));
	if (pairs < 1 || pairs > n->max_pairs)
		return VIRTIO_NET_ERR;
	n->curr_pairs = pairs;
	n->stats.queue_pairs = pairs;
	/* Valid whatever the backend does: without a session it applies at the next setup. */
	if (n->session && n->rings_up && net_set_enables(n, &e))
		net_fail_session(n, &e);
	return VIRTIO_NET_OK;
}

/* Serves the control queue: every command the guest queued. Lock held. */
static void ctrl_process(struct net *n)
{
	bool used_any = false;

	if (!n->active || n->ctrl_idx < 0 || n->ctrl_broken)
		return;
	for (;;) {
		uint16_t at = n->ctrl.last_avail, head;
		struct ctrl_cmd c = { 0 };
		struct err e = { 0 };
		uint8_t ack;
		int got;

		got = virtqueue__pop(&n->ctrl, &head, &e);
		if (!got)
			break;
		if (got > 0 && !virtqueue__walk(&n->ctrl, head, ctrl_gather, &c, &e) && !c.has_ack)
			err__set(&e, -EINVAL, "no writable byte for the ack");
		if (e.code) {
			/* Like a device that needs a reset: stop serving the queue, keep the VM running. */
			n->ctrl_broken = true;
			n->stats.ctrl_bad_chains++;
			snprintf(n->stats.last_error, sizeof(n->stats.last_error),
				 "control queue: %.400s (head at avail %u)", e.msg, at);
			net_log(n, "control queue: %s; the queue stops until the driver resets the device",
				e.msg);
			break;
		}
		ack = ctrl_execute(n, &c);
		if (ack == VIRTIO_NET_OK)
			n->stats.ctrl_commands++;
		else
			n->stats.ctrl_errors++;
		guest_mem__write(n->mem, c.ack_gpa, &ack, 1);
		virtqueue__push(&n->ctrl, head, 1);
		used_any = true;
	}
	virtqueue__update_avail_event(&n->ctrl);
	if (used_any)
		eventfd_nudge(n->q[n->ctrl_idx].call_fd);
}

static void ctrl_kicked(struct net *n, uint64_t gen)
{
	uint64_t v;

	if (!n->active || n->ctrl_idx < 0 || gen != n->ctrl_gen)
		return;
	if (read(n->q[n->ctrl_idx].kick_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: the kick was consumed already; the ring is read anyway. */
	}
	ctrl_process(n);
}

/* ---- the monitor thread ---- */

static void *net_thread(void *arg)
{
	struct net *n = arg;

	for (;;) {
		struct epoll_event ev[8];
		bool notify;
		int timeout = -1, nr, i;

		pthread_mutex_lock(&n->lock);
		if (n->stopping) {
			pthread_mutex_unlock(&n->lock);
			break;
		}
		if (!n->session && !n->server) {
			int64_t left = n->next_attempt_ms - now_ms();

			if (left <= 0) {
				net_try_connect(n);
				left = n->session ? -1 : n->next_attempt_ms - now_ms();
			}
			timeout = n->session ? -1 : (int)(left < 0 ? 0 : left);
		}
		notify = n->config_pending;
		n->config_pending = false;
		pthread_mutex_unlock(&n->lock);

		/* The transport's callback may take its own locks: never under ours. */
		if (notify && n->vdev.config_changed)
			n->vdev.config_changed(&n->vdev);

		nr = epoll_wait(n->epfd, ev, 8, notify ? 0 : timeout);
		for (i = 0; i < nr; i++) {
			uint64_t tag = ev[i].data.u64, v;

			pthread_mutex_lock(&n->lock);
			switch (EV_KIND(tag)) {
			case EV_WAKE:
				if (read(n->wake_fd, &v, sizeof(v)) < 0) {
					/* nothing pending */
				}
				break;
			case EV_SOCK:
				if (n->session && EV_GEN(tag) == n->sock_gen)
					net_backend_gone(n);
				break;
			case EV_LISTEN:
				net_accept(n);
				break;
			case EV_CTRL:
				ctrl_kicked(n, EV_GEN(tag));
				break;
			}
			pthread_mutex_unlock(&n->lock);
		}
	}
	return NULL;
}

/* ---- virtio_dev_ops ---- */

static uint64_t net_features(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);
	uint64_t f = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS);

	if (n->max_pairs > 1)
		f |= BIT(VIRTIO_NET_F_MQ) | BIT(VIRTIO_NET_F_CTRL_VQ);
	pthread_mutex_lock(&n->cfg_lock);
	f |= n->backend_known ? n->backend_features & NET_DATA_FEATURES : NET_DEFAULT_DATA_FEATURES;
	pthread_mutex_unlock(&n->cfg_lock);
	return f;
}

static void net_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct net *n = to_net(vdev);

	memset(data, 0, len);
	if (off >= sizeof(n->cfg))
		return;
	if (len > sizeof(n->cfg) - off)
		len = (uint32_t)(sizeof(n->cfg) - off);
	pthread_mutex_lock(&n->cfg_lock);
	memcpy(data, (const uint8_t *)&n->cfg + off, len);
	pthread_mutex_unlock(&n->cfg_lock);
}

static void net_config_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			     uint32_t len)
{
	/* Read-only in virtio 1.x (the MAC changes through the control queue, not offered). */
	(void)vdev;
	(void)off;
	(void)data;
	(void)len;
}

static void net_drop_queues(struct net *n)
{
	unsigned i;

	if (n->ctrl_idx >= 0 && n->q[n->ctrl_idx].kick_fd >= 0)
		epoll_ctl(n->epfd, EPOLL_CTL_DEL, n->q[n->ctrl_idx].kick_fd, NULL);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (n->q[i].kick_fd >= 0)
			close(n->q[i].kick_fd);
		if (n->q[i].call_fd >= 0)
			close(n->q[i].call_fd);
		n->q[i] = (struct net_queue){ .kick_fd = -1, .call_fd = -1 };
	}
	n->nr_queues = 0;
	n->ctrl_idx = -1;
	n->ctrl_broken = false;
}

static int dup_fd(int fd)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static void net_reset_locked(struct net *n)
{
	struct err e = { 0 };

	if (!n->active)
		return;
	if (n->session && net_stop_rings(n, &e))
		net_fail_session(n, &e);
	net_drop_queues(n);
	n->active = false;
	n->rings_up = false;
	n->rings_ever = false;
	n->features = 0;
	n->curr_pairs = 1;
	n->stats.queue_pairs = 0;
	n->ctrl_gen++;
}

static int net_activate(struct virtio_dev *vdev, const struct virtio_activation *a)
{
	struct net *n = to_net(vdev);
	bool event_idx = a->features & BIT(VIRTIO_RING_F_EVENT_IDX);
	struct err e = { 0 };
	unsigned i;
	int err = 0;

	if (a->nr_queues > VIRTIO_MAX_QUEUES || a->mem != n->mem)
		return -EINVAL;
	if ((a->features & BIT(VIRTIO_NET_F_MQ)) && !(a->features & BIT(VIRTIO_NET_F_CTRL_VQ))) {
		net_log(n, "the driver negotiated MQ without CTRL_VQ; the device needs a reset");
		return -EINVAL;
	}
	pthread_mutex_lock(&n->lock);
	net_reset_locked(n);
	n->features = a->features;
	n->nr_queues = a->nr_queues;
	n->curr_pairs = 1;
	n->stats.queue_pairs = 1;
	if (a->features & BIT(VIRTIO_NET_F_CTRL_VQ))
		n->ctrl_idx = (int)((a->features & BIT(VIRTIO_NET_F_MQ)) ? 2 * n->max_pairs : 2);
	for (i = 0; i < a->nr_queues; i++) {
		const struct virtio_queue *vq = &a->queues[i];
		struct net_queue *q = &n->q[i];
		bool used = i < net_data_queues(n) || (int)i == n->ctrl_idx;

		if (!vq->enabled || !used)
			continue;
		*q = (struct net_queue){ .enabled = true, .size = vq->size, .desc = vq->desc,
					 .avail = vq->driver, .used = vq->device,
					 .kick_fd = -1, .call_fd = -1 };
		err = net_check_ring(n, i, q, event_idx, &e);
		if (err)
			break;
		q->kick_fd = dup_fd(vq->kick_fd);
		q->call_fd = dup_fd(vq->call_fd);
		if ((vq->kick_fd >= 0 && q->kick_fd < 0) || (vq->call_fd >= 0 && q->call_fd < 0)) {
			err = err__set(&e, -errno, "%s: queue %u: cannot keep its eventfds: %s", n->name,
				       i, strerror(errno));
			break;
		}
	}
	if (!err && n->ctrl_idx >= 0 && ((unsigned)n->ctrl_idx >= a->nr_queues ||
					 !n->q[n->ctrl_idx].enabled || n->q[n->ctrl_idx].kick_fd < 0))
		n->ctrl_idx = -1; /* the driver did not set it up: nothing to serve */
	if (!err && n->ctrl_idx >= 0) {
		struct net_queue *cq = &n->q[n->ctrl_idx];
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = EV_TAG(EV_CTRL, n->ctrl_gen) };
		int fl = fcntl(cq->kick_fd, F_GETFL);

		/* The thread drains the kick without blocking (it is the KVM ioeventfd's file). */
		if (fl < 0 || fcntl(cq->kick_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
		    epoll_ctl(n->epfd, EPOLL_CTL_ADD, cq->kick_fd, &ev) < 0)
			err = err__set(&e, -errno, "%s: control queue: %s", n->name, strerror(errno));
		virtqueue__init(&n->ctrl, n->mem, &a->queues[n->ctrl_idx], a->features);
	}
	if (err) {
		fprintf(stderr, "rtvmm: %s; the device needs a reset\n", e.msg);
		net_drop_queues(n);
		n->features = 0;
		pthread_mutex_unlock(&n->lock);
		return err;
	}
	n->active = true;
	/* A backend problem is not the guest's: the link stays down and the thread reconnects. */
	if (n->session && net_setup_rings(n, &e))
		net_fail_session(n, &e);
	pthread_mutex_unlock(&n->lock);
	return 0;
}

static void net_reset(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);

	pthread_mutex_lock(&n->lock);
	net_reset_locked(n);
	pthread_mutex_unlock(&n->lock);
}

static const struct virtio_dev_ops net_ops = {
	.features = net_features,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.reset = net_reset,
};

/* ---- lifecycle ---- */

static void net_free(struct net *n)
{
	if (n->listen_fd >= 0) {
		close(n->listen_fd);
		unlink(n->path);
	}
	if (n->epfd >= 0)
		close(n->epfd);
	if (n->wake_fd >= 0)
		close(n->wake_fd);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	pthread_mutex_destroy(&n->cfg_lock);
	free(n);
}

int virtio_net__create(const struct virtio_net_spec *nic, const struct guest_mem *mem,
		       struct virtio_dev **out, struct err *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_TAG(EV_WAKE, 0) };
	sigset_t all, old;
	char tname[16];
	struct net *n;
	unsigned i;
	int err;

	if (nic->queues < 1 || nic->queues > VIRTIO_NET_MAX_PAIRS)
		return err__set(e, -EINVAL, "nic '%s': %u queue pairs (1..%u)", nic->name, nic->queues,
				VIRTIO_NET_MAX_PAIRS);
	if (!nic->socket[0])
		return err__set(e, -EINVAL, "nic '%s': no vhost-user socket path", nic->name);
	if (mem->fd < 0)
		return err__set(e, -EINVAL, "nic '%s': guest RAM is not a shareable fd (vhost-user needs a memfd or hugetlbfs)",
				nic->name);
	n = calloc(1, sizeof(*n));
	if (!n)
		return err__set(e, -ENOMEM, "nic '%s': out of memory", nic->name);
	snprintf(n->name, sizeof(n->name), "%s", nic->name[0] ? nic->name : "net");
	snprintf(n->path, sizeof(n->path), "%s", nic->socket);
	n->server = nic->server;
	n->max_pairs = nic->queues;
	n->mem = mem;
	n->listen_fd = n->epfd = n->wake_fd = -1;
	n->backoff_ms = BACKOFF_MIN_MS;
	n->curr_pairs = 1;
	n->ctrl_idx = -1;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		n->q[i] = (struct net_queue){ .kick_fd = -1, .call_fd = -1 };
	pthread_mutex_init(&n->cfg_lock, NULL);
	pthread_mutex_init(&n->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&n->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	vhost_user__init(&n->vu, n->name);
	memcpy(n->cfg.mac, nic->mac, sizeof(n->cfg.mac));
	if (!nic->mac_set) {
		/* A stable locally administered unicast address from the socket path. */
		uint32_t h = 2166136261u;
		const char *p;

		for (p = nic->socket; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
		n->cfg.mac[0] = 0x52;
		n->cfg.mac[1] = 0x54;
		n->cfg.mac[2] = (uint8_t)(h >> 24);
		n->cfg.mac[3] = (uint8_t)(h >> 16);
		n->cfg.mac[4] = (uint8_t)(h >> 8);
		n->cfg.mac[5] = (uint8_t)h;
	}
	n->cfg.max_virtqueue_pairs = (uint16_t)nic->queues;
	n->cfg.mtu = 1500;

	n->vdev = (struct virtio_dev){
		.name = n->name,
		.device_id = VIRTIO_ID_NET,
		.max_queues = 2 * nic->queues + (nic->queues > 1 ? 1 : 0),
		.queue_max_size = VIRTIO_NET_QUEUE_SIZE,
		.config_size = sizeof(struct virtio_net_config),
		.ops = &net_ops,
		.priv = n,
	};

	n->epfd = epoll_create1(EPOLL_CLOEXEC);
	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->epfd < 0 || n->wake_fd < 0 || epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->wake_fd, &ev) < 0) {
		err = err__set(e, -errno, "nic '%s': epoll/eventfd: %s", n->name, strerror(errno));
		goto err_free;
	}
	if (n->server) {
		n->listen_fd = vhost_user__listen(n->path, e);
		if (n->listen_fd < 0) {
			err = n->listen_fd;
			n->listen_fd = -1;
			goto err_free;
		}
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_TAG(EV_LISTEN, 0) };
		if (epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->listen_fd, &ev) < 0) {
			err = err__set(e, -errno, "nic '%s': epoll: %s", n->name, strerror(errno));
			goto err_free;
		}
		net_log(n, "listening for a vhost-user backend on %s", n->path);
	} else {
		/* The usual case: the dataplane is up first; the guest then sees its features at once. */
		pthread_mutex_lock(&n->lock);
		net_try_connect(n);
		pthread_mutex_unlock(&n->lock);
	}

	/* The thread takes no signals: they belong to the main thread's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&n->thread, NULL, net_thread, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		err__set(e, err, "nic '%s': cannot start its thread: %s", n->name, strerror(-err));
		goto err_close_session;
	}
	snprintf(tname, sizeof(tname), "vu-%.12s", n->name);
	pthread_setname_np(n->thread, tname);
	*out = &n->vdev;
	return 0;

err_close_session:
	vhost_user__close(&n->vu);
err_free:
	net_free(n);
	return err;
}

void virtio_net__destroy(struct virtio_dev *vdev)
{
	struct net *n;

	if (!vdev)
		return;
	n = to_net(vdev);
	pthread_mutex_lock(&n->lock);
	n->stopping = true;
	net_wake(n);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);

	pthread_mutex_lock(&n->lock);
	net_reset_locked(n);
	if (n->vu.fd >= 0)
		epoll_ctl(n->epfd, EPOLL_CTL_DEL, n->vu.fd, NULL);
	vhost_user__close(&n->vu);
	pthread_mutex_unlock(&n->lock);
	net_free(n);
}

int virtio_net__wait_backend(struct virtio_dev *vdev, int timeout_ms)
{
	struct net *n = to_net(vdev);
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&n->lock);
	while (!n->link_up && !err)
		err = -pthread_cond_timedwait(&n->cond, &n->lock, &ts);
	if (n->link_up)
		err = 0;
	pthread_mutex_unlock(&n->lock);
	return err;
}

void virtio_net__stats(struct virtio_dev *vdev, struct virtio_net_stats *st)
{
	struct net *n = to_net(vdev);

	pthread_mutex_lock(&n->lock);
	*st = n->stats;
	pthread_mutex_unlock(&n->lock);
}
