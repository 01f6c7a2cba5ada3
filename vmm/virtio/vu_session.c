/* vhost-user device session: connection, negotiation, rings, reconnection, link state. */
#include "vmm/virtio/vu_session.h"

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

#include "base/clock.h"
#include "base/counter.h"
#include "base/trust.h"
#include "base/thread_class.h"
#include "vmm/virtio/vhost_user.h"
#include "vmm/virtio/virtqueue.h"

#define BIT(n) (1ull << (n))

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* epoll tags: kind in the top byte, a queue in the next, a generation below so stale events are recognised. */
enum { EV_WAKE = 1, EV_SOCK, EV_LISTEN, EV_KICK, EV_STANDIN };
#define EV_GEN_MASK             ((1ull << 48) - 1)
#define EV_TAG(kind, queue, gen) \
	(((uint64_t)(kind) << 56) | ((uint64_t)(queue) << 48) | ((gen) & EV_GEN_MASK))
#define EV_KIND(tag)            ((unsigned)((tag) >> 56))
#define EV_QUEUE(tag)           ((unsigned)((tag) >> 48) & 0xffu)
#define EV_GEN(tag)             ((tag) & EV_GEN_MASK)

struct vu_queue {
	struct virtio_queue vq;    /* as activated; kick/call are our duplicates, -1 if none */
	bool started;              /* handed to the current backend */
	struct virtqueue standin;  /* the stand-in's view of the ring while the backend is away */
	bool taken;                /* the stand-in moved the ring: the next base is its position */
	bool watched;              /* the stand-in watches its kicks */
	bool base_set;             /* the next setup starts the ring at `base` (a freeze, a snapshot) */
	uint16_t base;
	bool deferred;             /* kicked while frozen: looked at when thawed */
};

/* The largest inflight region read (16 KiB and a header per queue of 1024 descriptors). */
#define INFLIGHT_MAX_BYTES ((uint64_t)VIRTIO_MAX_QUEUES * 80 * 1024)

struct vu_session {
	char name[32];
	char path[108];
	bool server;
	const struct guest_mem *mem;
	uint64_t data_features, backend_mask, protocol_wanted;
	unsigned backend_queues, queue_num;
	char unit[24];
	uint16_t queue_max_size;
	uint64_t required;
	char required_why[128];
	uint32_t config_size;
	const struct vu_session_ops *ops;
	void *opaque;
	struct trust_uids peers;        /* who may be the backend */
	char run_dir[108];              /* created 0700 when the socket lives in it; "" none */
	uid_t run_dir_uid;
	gid_t run_dir_gid;

	/*
	 * What the driver asked last, for the thread: vCPU threads only post here
	 * (a short critical section, never held across I/O) and wake the thread.
	 */
	pthread_mutex_t req_lock;
	pthread_cond_t req_cond;        /* the thread applied a request, for wait_settled */
	struct {
		uint64_t seq;           /* bumps with each post */
		uint64_t done;          /* the last seq the thread applied */
		bool queues_pending;    /* an activation or reset since the last apply */
		bool active;            /* the last one was an activation (else a reset) */
		uint64_t features, local;
		unsigned nr_queues, data_queues, enabled;
		bool enable_pending;    /* enable_queues since the last apply */
		bool frozen;            /* what freeze/thaw asked last */
		struct vu_queue q[VIRTIO_MAX_QUEUES]; /* owned here until the thread takes them */
		bool log_pending;       /* dirty_log since the last apply */
		int log_fd;             /* the dirty log asked for (a duplicate owned here), -1: off */
		uint64_t log_size;
		int log_result;         /* what the thread made of the last one it took */
		char log_why[sizeof(((struct err *)0)->msg)]; /* and why, when it failed */
	} req;

	/* The backend's features and config for vCPU threads: a short critical section, never held across I/O. */
	pthread_mutex_t info_lock;
	bool backend_known;
	uint64_t backend_features;
	bool config_known;
	uint8_t config[VHOST_USER_MAX_CONFIG];

	/* Everything below: under `lock`. */
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* link changes, for vu_session__wait_link */
	struct vhost_user vu;
	bool connected;                 /* connected and negotiated */
	uint64_t sock_gen;              /* bumps with each connection */
	int listen_fd;
	int epfd, wake_fd;
	pthread_t thread;
	bool stopping;
	int backoff_ms;
	int64_t next_attempt_ms;
	bool waiting_logged;
	char refused_msg[512];          /* the last refusal logged: each cause once */
	bool link_up;
	bool config_pending;            /* the thread owes the device a config_changed */

	bool active;                    /* DRIVER_OK seen, not reset */
	bool rings_up;                  /* the backend's rings are set up in the current connection */
	bool rings_ever;                /* set up at least once since activation (base from used->idx) */
	uint64_t features;              /* negotiated with the guest */
	unsigned nr_queues, data_queues, enabled;
	uint64_t local;                 /* queues the device serves itself */
	uint64_t queue_gen;             /* bumps with each reset: stale kick events are dropped */
	struct vu_queue q[VIRTIO_MAX_QUEUES];
	struct vhost_user_inflight inflight; /* this activation's (INFLIGHT_SHMFD), fd -1 before */
	bool standin;                   /* failing the backend's queues while it is away */
	bool frozen;                    /* a snapshot's freeze: nothing moves the rings or interrupts */
	uint64_t negotiated;            /* the last SET_FEATURES of this activation, 0 before one */
	bool inflight_tracked;          /* the last backend negotiated INFLIGHT_SHMFD */
	bool stall_logged;              /* said once why the I/O waits */
	int log_fd;                     /* the dirty log while a migration runs (our duplicate), -1 off */
	uint64_t log_size;
	bool log_all_sent;              /* the current backend's last SET_FEATURES carried LOG_ALL */

	struct vu_session_stats stats;
};

__attribute__((format(printf, 2, 3)))
static void session_log(struct vu_session *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "rtvmm: %s: %s\n", s->name, msg);
}

static void eventfd_nudge(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the peer will see it. */
	}
}

/* Records the last error for stats readers (under info_lock, whom `lock` never delays). Lock held. */
__attribute__((format(printf, 2, 3)))
static void set_last_error(struct vu_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->info_lock);
	va_start(ap, fmt);
	vsnprintf(s->stats.last_error, sizeof(s->stats.last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->info_lock);
}

/* Link state: the device's record, an interrupt owed by the thread, waiters. Lock held. */
static void session_set_link(struct vu_session *s, bool up)
{
	if (s->link_up == up)
		return;
	s->link_up = up;
	__atomic_store_n(&s->stats.link_up, up, __ATOMIC_RELAXED);
	counter__add(&s->stats.link_changes, 1);
	if (s->ops->link_set && s->ops->link_set(s->opaque, up)) {
		s->config_pending = true;
		eventfd_nudge(s->wake_fd);
	}
	pthread_cond_broadcast(&s->cond);
}

/* Ends the connection (the backend is gone or misbehaved). Lock held. */
static void session_close(struct vu_session *s)
{
	unsigned i;

	if (s->vu.fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->vu.fd, NULL);
	vhost_user__close(&s->vu);
	s->connected = false;
	s->rings_up = false;
	s->log_all_sent = false;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		s->q[i].started = false;
	session_set_link(s, false);
}

/* ---- the stand-in: the backend's queues failed by the monitor while it is away ---- */

/* The backend's queues in this activation: 0..n-1 (the device's own among them are skipped). */
static unsigned backend_queues(const struct vu_session *s)
{
	return s->data_queues < s->nr_queues ? s->data_queues : s->nr_queues;
}

/* Whether queue `i` is one the backend runs in this activation. */
static bool is_backend_queue(const struct vu_session *s, unsigned i)
{
	return i < backend_queues(s) && s->q[i].vq.enabled && !(s->local & BIT(i));
}

/* A copy of the inflight region (the backend's file: read, never mapped, so it cannot shrink under us). */
static uint8_t *inflight_read(struct vu_session *s, struct err *e)
{
	uint64_t size = s->inflight.mmap_size, off = 0;
	uint8_t *copy;

	if (!size || size > INFLIGHT_MAX_BYTES || s->inflight.mmap_offset > INT64_MAX - size) {
		err__set(e, -EINVAL, "%s: inflight region of %llu bytes at offset %llu (at most %llu bytes)",
			 s->name, (unsigned long long)size, (unsigned long long)s->inflight.mmap_offset,
			 (unsigned long long)INFLIGHT_MAX_BYTES);
		return NULL;
	}
	copy = malloc(size);
	if (!copy) {
		err__set(e, -ENOMEM, "%s: inflight region: out of memory", s->name);
		return NULL;
	}
	while (off < size) {
		ssize_t n = pread(s->inflight.fd, copy + off, size - off,
				  (off_t)(s->inflight.mmap_offset + off));

		if (n <= 0) {
			err__set(e, n < 0 ? -errno : -EIO, "%s: inflight region: %s", s->name,
				 n < 0 ? strerror(errno) : "shorter than the backend said");
			free(copy);
			return NULL;
		}
		off += (uint64_t)n;
	}
	return copy;
}

/* Writes the cleaned copy back for the next backend. */
static int inflight_write(struct vu_session *s, const uint8_t *copy, struct err *e)
{
	uint64_t off = 0;

	while (off < s->inflight.mmap_size) {
		ssize_t n = pwrite(s->inflight.fd, copy + off, s->inflight.mmap_size - off,
				   (off_t)(s->inflight.mmap_offset + off));

		if (n <= 0)
			return err__set(e, n < 0 ? -errno : -EIO, "%s: inflight region: cannot write it back: %s",
					s->name, n < 0 ? strerror(errno) : "short write");
		off += (uint64_t)n;
	}
	return 0;
}

/* Counts what the stand-in did on queue `i`, interrupts the guest, comes back for more. */
static void standin_account(struct vu_session *s, unsigned i, const struct vu_standin_tally *t)
{
	counter__add(&s->stats.failed_by_monitor, t->failed);
	counter__add(&s->stats.bad_chains_by_monitor, t->bad_chains);
	if (t->signal)
		eventfd_nudge(s->q[i].vq.call_fd);
	if (t->more)
		eventfd_nudge(s->q[i].vq.kick_fd);
}

/* A queue the stand-in cannot serve: said once, its requests wait for the next backend. Lock held. */
static void standin_give_up(struct vu_session *s, unsigned i, const char *why)
{
	set_last_error(s, "%s: queue %u: %s; its requests wait for the next backend", s->name, i, why);
	session_log(s, "queue %u: %s; its requests wait for the next backend", i, why);
	if (s->q[i].watched)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->q[i].vq.kick_fd, NULL);
	s->q[i].watched = false;
}

/* Watches queue `i`'s kicks for the stand-in. Lock held. */
static void standin_watch(struct vu_session *s, unsigned i)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = EV_TAG(EV_STANDIN, i, s->queue_gen) };
	int fd = s->q[i].vq.kick_fd, fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);
	char why[128];

	/* The backend's kick file too: it copes with O_NONBLOCK (it polls, or reads non-blocking). */
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		snprintf(why, sizeof(why), "cannot watch its kicks: %s", strerror(errno));
		standin_give_up(s, i, why);
		return;
	}
	s->q[i].watched = true;
}

/*
 * The backend died with the rings: complete what it had taken (its inflight
 * region says which) and what the guest queues meanwhile with the device's
 * error. Without the region the requests wait (said once). Lock held.
 */
static void standin_start(struct vu_session *s)
{
	uint64_t before = counter__get(&s->stats.failed_by_monitor), taken = 0;
	struct err e = { 0 };
	uint8_t *copy;
	unsigned i;

	if (!s->ops->fail || !s->active || !s->rings_ever || s->standin || s->frozen)
		return;
	if (s->inflight.fd < 0) {
		if (!s->stall_logged)
			session_log(s, "the backend did not track its requests (vhost-user protocol feature INFLIGHT_SHMFD): the monitor cannot tell which it completed, so the disk's I/O waits for the next backend");
		s->stall_logged = true;
		return;
	}
	copy = inflight_read(s, &e);
	if (!copy) {
		/* e.msg names the device already. */
		set_last_error(s, "%s; the disk's I/O waits for the next backend", e.msg);
		fprintf(stderr, "rtvmm: %s; the disk's I/O waits for the next backend\n", e.msg);
		return;
	}
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		struct vu_queue *q = &s->q[i];
		struct vu_standin_tally t = { 0 };
		struct err why = { 0 };
		uint8_t *part;

		q->taken = false;
		if (!is_backend_queue(s, i))
			continue;
		virtqueue__init(&q->standin, s->mem, &q->vq, s->features);
		part = vu_inflight__part(copy, s->inflight.mmap_size, s->inflight.num_queues, i,
					 q->vq.size, &why);
		if (!part || vu_inflight__takeover(&q->standin, part, s->ops->fail, s->opaque, &t, &why)) {
			/* Whatever it completed before the fault, the used index is its position. */
			standin_give_up(s, i, why.msg);
			continue;
		}
		q->taken = true;
		taken += t.taken;
		standin_account(s, i, &t);
		standin_watch(s, i);
	}
	if (inflight_write(s, copy, &e)) {
		/* The next backend would redo what was failed: it gets a new region instead. */
		fprintf(stderr, "rtvmm: %s; the next backend gets a new region\n", e.msg);
		close(s->inflight.fd);
		s->inflight.fd = -1;
	}
	free(copy);
	s->standin = true;
	__atomic_store_n(&s->stats.standin, true, __ATOMIC_RELAXED);
	session_log(s, "the monitor fails the disk's requests until a backend returns: %llu failed now, %llu of them taken by the backend (its inflight region)",
		    (unsigned long long)(counter__get(&s->stats.failed_by_monitor) - before),
		    (unsigned long long)taken);
}

/* A kick while standing in: fail what the guest queued. Lock held. */
static void standin_kick(struct vu_session *s, unsigned i, uint64_t gen)
{
	struct vu_standin_tally t = { 0 };
	struct err e = { 0 };
	uint64_t v;

	if (!s->standin || gen != EV_GEN(s->queue_gen) || i >= VIRTIO_MAX_QUEUES || !s->q[i].watched)
		return;
	if (read(s->q[i].vq.kick_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: consumed already; the ring is read anyway. */
	}
	if (s->frozen) {
		s->q[i].deferred = true;
		return;
	}
	if (vu_inflight__drain(&s->q[i].standin, s->ops->fail, s->opaque, &t, &e))
		standin_give_up(s, i, e.msg);
	standin_account(s, i, &t);
}

/* A backend takes the rings (or the device resets): the stand-in stops watching. Lock held. */
static void standin_stop(struct vu_session *s)
{
	unsigned i;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (s->q[i].watched)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->q[i].vq.kick_fd, NULL);
		s->q[i].watched = false;
	}
	s->standin = false;
	__atomic_store_n(&s->stats.standin, false, __ATOMIC_RELAXED);
}

/* Client mode: the next attempt after the current backoff, which then doubles (to 5 s). */
static void session_schedule_retry(struct vu_session *s)
{
	s->next_attempt_ms = clock__mono_ms() + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	eventfd_nudge(s->wake_fd);
}

/* A request failed: log it once, end the connection, let the thread reconnect. Lock held. */
static void session_fail(struct vu_session *s, const struct err *e)
{
	bool gone = e->code == -ECONNRESET || e->code == -EPIPE;

	/* e->msg names the device already. */
	fprintf(stderr, "rtvmm: %s; link down, %s\n", e->msg,
		s->server ? "waiting for the backend to connect again" : "reconnecting");
	set_last_error(s, "%s", e->msg);
	counter__add(gone ? &s->stats.disconnects : &s->stats.failures, 1);
	session_close(s);
	standin_start(s);
	session_schedule_retry(s);
}

/* Re-checks a ring the guest wrote before anything trusts it. */
static int session_check_ring(const struct vu_session *s, unsigned idx, bool event_idx,
			      struct err *e)
{
	struct err why;
	int err = virtqueue__check(s->mem, &s->q[idx].vq, s->queue_max_size, event_idx, &why);

	return err ? err__set(e, err, "%s: queue %u: %s", s->name, idx, why.msg) : 0;
}

static int session_set_enables(struct vu_session *s, struct err *e)
{
	unsigned i;
	int err;

	if (!(s->backend_features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		return 0; /* rings start enabled */
	for (i = 0; i < backend_queues(s); i++) {
		if (!s->q[i].started)
			continue;
		err = vhost_user__set_vring_enable(&s->vu, i, i < s->enabled, e);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Ring `i`'s addresses for SET_VRING_ADDR: ours of its parts, the used ring's
 * gpa as the log address, flag LOG while the dirty log runs. Lock held.
 */
static struct vhost_user_vring_addr session_ring_addr(const struct vu_session *s, unsigned i)
{
	const struct virtio_queue *q = &s->q[i].vq;
	struct vhost_user_vring_addr a = { .index = i, .log = q->device };

	a.desc = (uint64_t)(uintptr_t)guest_mem__ptr(s->mem, q->desc, virtqueue__desc_bytes(q->size));
	a.avail = (uint64_t)(uintptr_t)guest_mem__ptr(s->mem, q->driver,
						      virtqueue__avail_bytes(q->size, false));
	a.used = (uint64_t)(uintptr_t)guest_mem__ptr(s->mem, q->device,
						     virtqueue__used_bytes(q->size, false));
	if (s->log_fd >= 0)
		a.flags |= 1u << VHOST_VRING_F_LOG;
	return a;
}

/* Hands one ring to the backend, from `base`. Lock held. */
static int session_setup_ring(struct vu_session *s, unsigned i, unsigned base, struct err *e)
{
	const struct virtio_queue *q = &s->q[i].vq;
	struct vhost_user_vring_addr a = session_ring_addr(s, i);
	int err;

	err = vhost_user__set_vring_num(&s->vu, i, q->size, e);
	if (!err)
		err = vhost_user__set_vring_base(&s->vu, i, base, e);
	if (!err)
		err = vhost_user__set_vring_addr(&s->vu, &a, e);
	/* The call fd first: a backend may start on the ring (work queued meanwhile) at the kick. */
	if (!err)
		err = vhost_user__set_vring_call(&s->vu, i, q->call_fd, e);
	if (!err)
		err = vhost_user__set_vring_kick(&s->vu, i, q->kick_fd, e);
	if (!err)
		s->q[i].started = true;
	return err;
}

/*
 * The region where backends track the requests they took (INFLIGHT_SHMFD):
 * the first backend of an activation makes it, every backend after a crash
 * gets the same one and resubmits what the dead one had not completed. Lock
 * held, connected.
 */
static int session_inflight(struct vu_session *s, struct err *e)
{
	unsigned i, size = 0;
	int err;

	if (!(s->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)))
		return 0;
	if (s->inflight.fd < 0) {
		for (i = 0; i < backend_queues(s); i++)
			if (s->q[i].vq.enabled && !(s->local & BIT(i)) && s->q[i].vq.size > size)
				size = s->q[i].vq.size;
		if (!size)
			return 0;
		s->inflight.num_queues = (uint16_t)backend_queues(s);
		s->inflight.queue_size = (uint16_t)size;
		err = vhost_user__get_inflight_fd(&s->vu, &s->inflight, e);
		if (err)
			return err;
	}
	/* rte_vhost gives the region only to the queues it has: they exist once their size is known. */
	for (i = 0; i < backend_queues(s); i++) {
		if (!is_backend_queue(s, i))
			continue;
		err = vhost_user__set_vring_num(&s->vu, i, s->q[i].vq.size, e);
		if (err)
			return err;
	}
	return vhost_user__set_inflight_fd(&s->vu, &s->inflight, e);
}

/*
 * Where backend queue `i` starts at the next setup: where the stand-in got to;
 * else where a freeze or a snapshot said it stopped; else, after a backend
 * that cannot be asked (it died), the used index, as QEMU does; else (a new
 * activation) 0. Lock held.
 */
static uint16_t session_next_base(const struct vu_session *s, unsigned i)
{
	const struct vu_queue *q = &s->q[i];

	if (q->taken)
		return q->standin.last_avail;
	if (q->base_set)
		return q->base;
	if (s->rings_ever)
		return virtqueue__used_idx(s->mem, &q->vq);
	return 0;
}

/* Hands the active rings to the backend. Lock held, connected. */
static int session_setup_rings(struct vu_session *s, struct err *e)
{
	uint64_t lacking = s->features & s->data_features & ~s->backend_features;
	bool event_idx = s->features & BIT(VIRTIO_RING_F_EVENT_IDX);
	bool resume = s->rings_ever;
	uint64_t f;
	unsigned i;
	int err;

	if (lacking)
		return err__set(e, -EPROTO, "%s: vhost-user: the backend lacks features %#llx the guest negotiated",
				s->name, (unsigned long long)lacking);
	f = (s->features & s->backend_features & s->backend_mask) |
	    (s->backend_features & BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	/* The stand-in hands over: the next backend starts where it got to. */
	standin_stop(s);
	s->negotiated = f;
	/* A migration under way: the backend logs its writes from its first one (session_dirty_log). */
	if (s->log_fd >= 0)
		f |= BIT(VHOST_F_LOG_ALL);
	err = vhost_user__set_features(&s->vu, f, e);
	if (!err)
		s->log_all_sent = s->log_fd >= 0;
	if (!err)
		err = vhost_user__set_mem_table_guest(&s->vu, s->mem, e);
	if (!err && s->log_fd >= 0)
		err = vhost_user__set_log_base(&s->vu, s->log_fd, s->log_size, 0, e);
	if (!err)
		err = session_inflight(s, e);
	for (i = 0; !err && i < backend_queues(s); i++) {
		if (!s->q[i].vq.enabled || (s->local & BIT(i)))
			continue;
		/* Checked at activation; the check is cheap, and this is what the backend will trust. */
		err = session_check_ring(s, i, event_idx, e);
		if (err)
			return err;
		resume |= s->q[i].base_set;
		err = session_setup_ring(s, i, session_next_base(s, i), e);
	}
	if (!err)
		err = session_set_enables(s, e);
	/* Without REPLY_ACK, a request with a reply shows the backend took everything before it. */
	if (!err && !(s->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		err = vhost_user__get_features(&s->vu, &f, e);
	if (err)
		return err;
	s->rings_up = true;
	s->rings_ever = true;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		s->q[i].base_set = false;
	if (resume) {
		/* Work queued while the backend was away, and completions it may not have signalled. */
		for (i = 0; i < backend_queues(s); i++) {
			if (s->q[i].started) {
				eventfd_nudge(s->q[i].vq.kick_fd);
				eventfd_nudge(s->q[i].vq.call_fd);
			}
		}
	}
	return 0;
}

/*
 * Stops the rings in the backend (disable, then GET_VRING_BASE). While frozen
 * each ring's base is kept as where the next setup starts it. Lock held,
 * connected.
 */
static int session_stop_rings(struct vu_session *s, struct err *e)
{
	unsigned i, base;
	int err;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (!s->q[i].started)
			continue;
		if (s->backend_features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
			err = vhost_user__set_vring_enable(&s->vu, i, false, e);
			if (err)
				return err;
		}
	}
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (!s->q[i].started)
			continue;
		err = vhost_user__get_vring_base(&s->vu, i, &base, e);
		if (err)
			return err;
		s->q[i].started = false;
		if (s->frozen) {
			s->q[i].base_set = true;
			s->q[i].base = (uint16_t)base;
		}
	}
	s->rings_up = false;
	return 0;
}

/*
 * The device's config space from this backend, kept for config_read; a
 * change from the last backend's owes the device a config_changed. Lock held.
 */
static int session_fetch_config(struct vu_session *s, struct err *e)
{
	uint8_t cfg[VHOST_USER_MAX_CONFIG] = { 0 };
	bool changed;
	int err;

	if (!s->config_size)
		return 0;
	if (!(s->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_CONFIG)))
		return err__set(e, -EPROTO, "%s: vhost-user: the backend does not give its configuration space (protocol feature CONFIG)",
				s->name);
	err = vhost_user__get_config(&s->vu, 0, cfg, s->config_size, e);
	if (err)
		return err;
	pthread_mutex_lock(&s->info_lock);
	changed = s->config_known && memcmp(s->config, cfg, s->config_size);
	memcpy(s->config, cfg, s->config_size);
	s->config_known = true;
	pthread_mutex_unlock(&s->info_lock);
	if (changed) {
		session_log(s, "the backend's configuration space changed");
		s->config_pending = true;
		eventfd_nudge(s->wake_fd);
	}
	return 0;
}

/*
 * What a backend with `features` and negotiated `protocol` lacks to log its
 * writes to guest RAM for a migration, in the spec's words; NULL: nothing.
 */
static const char *session_log_lacks(uint64_t features, uint64_t protocol)
{
	bool shmfd = protocol & BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
	bool all = features & BIT(VHOST_F_LOG_ALL);

	if (!shmfd && !all)
		return "protocol feature LOG_SHMFD and feature VHOST_F_LOG_ALL";
	if (!shmfd)
		return "protocol feature LOG_SHMFD";
	return all ? NULL : "feature VHOST_F_LOG_ALL";
}

/* A new connection: negotiate, and set the rings up when the guest is running. Lock held. */
static int session_handshake(struct vu_session *s, struct err *e)
{
	uint64_t features, protocol = 0, queues;
	int err;

	err = vhost_user__get_features(&s->vu, &features, e);
	if (err)
		return err;
	if ((features & s->required) != s->required)
		return err__set(e, -EPROTO, "%s: vhost-user: the backend lacks features %#llx (%s)",
				s->name, (unsigned long long)(s->required & ~features), s->required_why);
	if (features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
		err = vhost_user__get_protocol_features(&s->vu, &protocol, e);
		if (!err)
			err = vhost_user__set_protocol_features(&s->vu, protocol & s->protocol_wanted, e);
		if (err)
			return err;
	}
	if (s->queue_num > 1) {
		if (!(s->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_MQ)))
			return err__set(e, -EPROTO, "%s: vhost-user: the backend has no multiqueue (protocol feature MQ); %u %s configured",
					s->name, s->queue_num, s->unit);
		err = vhost_user__get_queue_num(&s->vu, &queues, e);
		if (err)
			return err;
		if (queues < s->queue_num)
			return err__set(e, -EPROTO, "%s: vhost-user: the backend supports %llu %s, %u configured",
					s->name, (unsigned long long)queues, s->unit, s->queue_num);
	}
	err = vhost_user__set_owner(&s->vu, e);
	if (!err)
		err = session_fetch_config(s, e);
	if (err)
		return err;
	__atomic_store_n(&s->stats.backend_known, true, __ATOMIC_RELAXED);
	counter__set(&s->stats.backend_features, features);
	counter__set(&s->stats.backend_protocol, s->vu.protocol);
	s->inflight_tracked = s->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	__atomic_store_n(&s->stats.inflight_tracked, s->inflight_tracked, __ATOMIC_RELAXED);
	if (s->inflight_tracked)
		s->stall_logged = false;
	pthread_mutex_lock(&s->info_lock);
	s->backend_known = true;
	s->backend_features = features;
	pthread_mutex_unlock(&s->info_lock);
	/* Its writes would go unseen by the migration under way: it waits for its end. */
	if (s->log_fd >= 0 && session_log_lacks(features, s->vu.protocol))
		return err__set(e, -ENOTSUP, "%s: vhost-user: the backend at %s cannot log its writes to guest RAM (it lacks %s) and a live migration is under way: refused until it ends",
				s->name, s->path, session_log_lacks(features, s->vu.protocol));
	return 0;
}

/* A peer we must not trust: counted, logged once per cause, the link stays down. Lock held. */
static void session_refuse(struct vu_session *s, const struct err *e)
{
	counter__add(&s->stats.refused, 1);
	set_last_error(s, "%s: %.400s", s->name, e->msg);
	if (strncmp(s->refused_msg, e->msg, sizeof(s->refused_msg) - 1)) {
		fprintf(stderr, "rtvmm: %s: vhost-user: %s; link down, %s (further refusals only counted)\n",
			s->name, e->msg, s->server ? "waiting for another backend" : "retrying");
		snprintf(s->refused_msg, sizeof(s->refused_msg), "%s", e->msg);
	}
	if (!s->server)
		session_schedule_retry(s);
}

/* Takes a connected socket and brings the session up, or ends it with a logged error. Lock held. */
static void session_start(struct vu_session *s, int fd)
{
	struct epoll_event ev = { .events = EPOLLRDHUP };
	struct err e = { 0 };
	int err;

	/* SET_MEM_TABLE hands this peer all of guest RAM: nothing is sent before it is known. */
	err = trust__peer(fd, &s->peers, s->path, &e);
	if (err) {
		close(fd);
		session_refuse(s, &e);
		return;
	}
	err = vhost_user__attach(&s->vu, fd);
	if (err) {
		close(fd);
		err__set(&e, err, "%s: vhost-user: cannot use the backend's socket: %s", s->name,
			 strerror(-err));
		session_fail(s, &e);
		return;
	}
	err = session_handshake(s, &e);
	/* Frozen: the rings wait for the thaw. */
	if (!err && s->active && !s->frozen)
		err = session_setup_rings(s, &e);
	if (!err) {
		s->sock_gen++;
		ev.data.u64 = EV_TAG(EV_SOCK, 0, s->sock_gen);
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->vu.fd, &ev) < 0)
			err = err__set(&e, -errno, "%s: vhost-user: epoll: %s", s->name, strerror(errno));
	}
	if (err) {
		session_fail(s, &e);
		return;
	}
	s->connected = true;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->waiting_logged = false;
	s->refused_msg[0] = '\0';
	counter__add(&s->stats.connects, 1);
	session_log(s, "vhost-user backend %s %s: features %#llx, protocol features %#llx%s; link up",
		    s->server ? "connected to" : "at", s->path,
		    (unsigned long long)s->backend_features, (unsigned long long)s->vu.protocol,
		    s->rings_up ? ", rings set up" : "");
	session_set_link(s, true);
}

static void session_try_connect(struct vu_session *s)
{
	int fd = vhost_user__connect(s->path);

	if (fd < 0) {
		if (!s->waiting_logged)
			session_log(s, "waiting for the vhost-user backend at %s (%s); retrying up to every %d ms",
				    s->path, strerror(-fd), BACKOFF_MAX_MS);
		s->waiting_logged = true;
		session_schedule_retry(s);
		return;
	}
	session_start(s, fd);
}

/* The backend hung up: end its connection so that a new one can start. Lock held. */
static void session_backend_gone(struct vu_session *s)
{
	struct err e;

	err__set(&e, -ECONNRESET, "%s: vhost-user: the backend closed the connection", s->name);
	s->backoff_ms = BACKOFF_MIN_MS;
	session_fail(s, &e);
}

/* Whether the peer of a connected socket has hung up (checked without blocking). */
static bool sock_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void session_accept(struct vu_session *s)
{
	int fd;

	while ((fd = vhost_user__accept(s->listen_fd)) >= 0) {
		/* A restarted backend's new connection can be seen before its old one's hangup
		 * (both in one epoll batch, the listener first): end the dead connection first. */
		if (s->connected && sock_hung_up(s->vu.fd))
			session_backend_gone(s);
		if (s->connected) {
			session_log(s, "refusing a second vhost-user backend on %s (one is connected)",
				    s->path);
			close(fd);
			continue;
		}
		session_start(s, fd);
	}
}

/* A kick on a local queue of the current activation: drained; true if the device should look. */
static bool session_local_kick(struct vu_session *s, unsigned queue, uint64_t gen)
{
	uint64_t v;

	if (!s->active || gen != EV_GEN(s->queue_gen) || queue >= VIRTIO_MAX_QUEUES ||
	    !(s->local & BIT(queue)))
		return false;
	if (read(s->q[queue].vq.kick_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: the kick was consumed already; the ring is read anyway. */
	}
	if (s->frozen) {
		s->q[queue].deferred = true;
		return false;
	}
	return true;
}

static void queues_close(struct vu_queue *q)
{
	unsigned i;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (q[i].vq.kick_fd >= 0)
			close(q[i].vq.kick_fd);
		if (q[i].vq.call_fd >= 0)
			close(q[i].vq.call_fd);
		q[i] = (struct vu_queue){ .vq = { .kick_fd = -1, .call_fd = -1 } };
	}
}

static void session_drop_queues(struct vu_session *s)
{
	unsigned i;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if ((s->local & BIT(i)) && s->q[i].vq.kick_fd >= 0)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->q[i].vq.kick_fd, NULL);
	queues_close(s->q);
	s->nr_queues = 0;
	s->data_queues = 0;
	s->local = 0;
}

/* Stops the backend's rings and forgets the activation. Lock held. */
static void session_reset_locked(struct vu_session *s)
{
	struct err e = { 0 };

	if (!s->active)
		return;
	/* The driver is done with these rings: no stand-in writes to them from here on. */
	s->active = false;
	/* A backend that hung up cannot be asked for its rings: end its connection first. */
	if (s->connected && sock_hung_up(s->vu.fd))
		session_backend_gone(s);
	if (s->connected && session_stop_rings(s, &e))
		session_fail(s, &e);
	standin_stop(s);
	session_drop_queues(s);
	/* The next activation's rings are new: what this region tracked is void. */
	if (s->inflight.fd >= 0)
		close(s->inflight.fd);
	s->inflight.fd = -1;
	s->rings_up = false;
	s->rings_ever = false;
	s->features = 0;
	s->negotiated = 0;
	s->queue_gen++;
}

/*
 * A snapshot's freeze: the backend's rings stop (disabled, then
 * GET_VRING_BASE each: where each stopped is where the thaw or a restore
 * starts it), and the thread leaves the guest's rings and interrupts alone
 * (local kicks and the stand-in's wait, config changes are held) until the
 * thaw. A backend that fails to answer is let go, as at any failure: its rings
 * then stand where the next backend would take them. Lock held.
 */
static void session_freeze_locked(struct vu_session *s)
{
	struct err e = { 0 };

	if (s->frozen)
		return;
	s->frozen = true;
	if (s->connected && sock_hung_up(s->vu.fd))
		session_backend_gone(s);
	if (s->connected && s->rings_up && session_stop_rings(s, &e))
		session_fail(s, &e);
}

/* Starts again what the freeze stopped, the backend's rings where they stopped. Lock held. */
static void session_thaw_locked(struct vu_session *s)
{
	struct err e = { 0 };
	unsigned i;

	if (!s->frozen)
		return;
	s->frozen = false;
	if (s->active && s->connected && !s->rings_up) {
		if (session_setup_rings(s, &e))
			session_fail(s, &e);
	} else if (s->active && !s->connected) {
		/* The backend went away meanwhile: the stand-in takes over, as it would have. */
		standin_start(s);
	}
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (s->q[i].deferred)
			eventfd_nudge(s->q[i].vq.kick_fd);
		s->q[i].deferred = false;
	}
	if (s->config_pending)
		eventfd_nudge(s->wake_fd);
}

/*
 * Tells the connected backend the dirty log's state: on, SET_LOG_BASE, then
 * SET_FEATURES with LOG_ALL, then each running ring's SET_VRING_ADDR with flag
 * LOG (QEMU's order: the log is there before the backend is asked to use
 * it); off, SET_FEATURES without LOG_ALL and the rings without LOG. Without
 * REPLY_ACK, a GET_FEATURES shows it took them all. Lock held, connected.
 */
static int session_log_send(struct vu_session *s, bool on, struct err *e)
{
	uint64_t f = s->negotiated;
	unsigned i;
	int err = 0;

	if (on && s->rings_up)
		err = vhost_user__set_log_base(&s->vu, s->log_fd, s->log_size, 0, e);
	/* Features are the activation's (0 before one: the next setup sends them). */
	if (!err && s->negotiated && (on ? s->rings_up : s->log_all_sent)) {
		err = vhost_user__set_features(&s->vu, on ? f | BIT(VHOST_F_LOG_ALL) : f, e);
		if (!err)
			s->log_all_sent = on;
	}
	for (i = 0; !err && s->rings_up && i < VIRTIO_MAX_QUEUES; i++) {
		struct vhost_user_vring_addr a;

		if (!s->q[i].started)
			continue;
		a = session_ring_addr(s, i);
		err = vhost_user__set_vring_addr(&s->vu, &a, e);
	}
	if (!err && !(s->vu.protocol & BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		err = vhost_user__get_features(&s->vu, &f, e);
	return err;
}

/*
 * Starts (`fd` >= 0, taken over) or stops (-1) the dirty log, as
 * vu_session__dirty_log asked. A backend that cannot log (the connected one,
 * else the last one seen) refuses the start: -ENOTSUP. The log is kept for
 * the next setup (a reconnect, a thaw, an activation). Lock held.
 */
static int session_dirty_log(struct vu_session *s, int fd, uint64_t size, struct err *e)
{
	uint64_t features = 0, protocol = 0;
	const char *lacks = NULL;
	bool known;
	int err;

	if (fd < 0) {
		if (s->log_fd < 0)
			return 0;
		close(s->log_fd);
		s->log_fd = -1;
		s->log_size = 0;
		if (!s->connected || sock_hung_up(s->vu.fd))
			return 0;
		err = session_log_send(s, false, e);
		if (err)
			session_fail(s, e);
		return err;
	}
	pthread_mutex_lock(&s->info_lock);
	known = s->backend_known;
	features = s->backend_features;
	pthread_mutex_unlock(&s->info_lock);
	protocol = s->connected ? s->vu.protocol : counter__get(&s->stats.backend_protocol);
	if (s->connected || known)
		lacks = session_log_lacks(features, protocol);
	if (lacks) {
		close(fd);
		return err__set(e, -ENOTSUP, "%s: the vhost-user backend at %s cannot log its writes to guest RAM (it lacks %s): a live migration would copy what it wrote stale",
				s->name, s->path, lacks);
	}
	if (s->log_fd >= 0)
		close(s->log_fd);
	s->log_fd = fd;
	s->log_size = size;
	if (!s->connected)
		return 0;
	err = session_log_send(s, true, e);
	if (err) {
		/* Not logging after all: the caller refuses the migration. */
		close(s->log_fd);
		s->log_fd = -1;
		s->log_size = 0;
		session_fail(s, e);
	}
	return err;
}

/* Watches a local queue's kicks; the thread drains them without blocking. Lock held. */
static int session_watch_kicks(struct vu_session *s, unsigned i, struct err *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_TAG(EV_KICK, i, s->queue_gen) };
	int fd = s->q[i].vq.kick_fd, fl = fcntl(fd, F_GETFL);

	/* The KVM ioeventfd's file: O_NONBLOCK is shared with the transport, which never reads it. */
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err__set(e, -errno, "%s: queue %u: cannot watch its kicks: %s", s->name, i,
				strerror(errno));
	s->local |= BIT(i);
	return 0;
}

/*
 * Applies what the driver asked last (the thread, lock held): the latest
 * activation or reset wins, the one before is stopped first. A backend problem
 * only takes the link down; the queues themselves were checked when posted.
 */
static void session_apply_request(struct vu_session *s)
{
	struct vu_queue q[VIRTIO_MAX_QUEUES];
	uint64_t seq, features, local, log_size;
	unsigned nr_queues, data_queues, enabled, i;
	bool changed, active, enable_pending, frozen, log_pending;
	struct err e = { 0 }, le = { 0 };
	int log_fd, log_err = 0;

	pthread_mutex_lock(&s->req_lock);
	seq = s->req.seq;
	changed = s->req.queues_pending;
	s->req.queues_pending = false;
	active = s->req.active;
	features = s->req.features;
	local = s->req.local;
	nr_queues = s->req.nr_queues;
	data_queues = s->req.data_queues;
	enabled = s->req.enabled;
	enable_pending = s->req.enable_pending;
	s->req.enable_pending = false;
	frozen = s->req.frozen;
	log_pending = s->req.log_pending;
	s->req.log_pending = false;
	log_fd = s->req.log_fd;
	log_size = s->req.log_size;
	s->req.log_fd = -1;            /* the thread's now */
	memcpy(q, s->req.q, sizeof(q));
	for (i = 0; changed && i < VIRTIO_MAX_QUEUES; i++)
		s->req.q[i] = (struct vu_queue){ .vq = { .kick_fd = -1, .call_fd = -1 } };
	pthread_mutex_unlock(&s->req_lock);

	/* A freeze posted with an activation (a restore's) holds the new rings too: it comes first. */
	if (frozen)
		session_freeze_locked(s);
	if (changed) {
		session_reset_locked(s);
		if (active) {
			memcpy(s->q, q, sizeof(q));
			s->features = features;
			s->nr_queues = nr_queues;
			s->data_queues = data_queues;
			s->enabled = enabled;
			for (i = 0; !e.code && i < VIRTIO_MAX_QUEUES; i++)
				if ((local & BIT(i)) && s->q[i].vq.kick_fd >= 0)
					session_watch_kicks(s, i, &e);
			if (e.code) {
				/* Nothing the guest did: the device's kicks go unheard; say so. */
				set_last_error(s, "%s", e.msg);
				session_log(s, "%s", e.msg);
			}
			s->active = true;
			if (s->connected && !s->frozen && session_setup_rings(s, &e))
				session_fail(s, &e);
		}
	} else if (enable_pending && s->active) {
		s->enabled = enabled;
		/* Without a connection it applies at the next setup. */
		if (s->connected && s->rings_up && session_set_enables(s, &e))
			session_fail(s, &e);
	}
	if (log_pending)
		log_err = session_dirty_log(s, log_fd, log_size, &le);
	if (!frozen)
		session_thaw_locked(s);
	pthread_mutex_lock(&s->req_lock);
	if (log_pending) {
		s->req.log_result = log_err;
		snprintf(s->req.log_why, sizeof(s->req.log_why), "%s", log_err ? le.msg : "");
	}
	s->req.done = seq;
	pthread_cond_broadcast(&s->req_cond);
	pthread_mutex_unlock(&s->req_lock);
}

/* ---- the session thread ---- */

static void *session_thread(void *arg)
{
	struct vu_session *s = arg;

	thread_class__enter(THREAD_CLASS_SESSION, s->name);
	for (;;) {
		struct epoll_event ev[8];
		bool notify;
		int timeout = -1, nr, i;

		pthread_mutex_lock(&s->lock);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		session_apply_request(s);
		if (!s->connected && !s->server) {
			int64_t left = s->next_attempt_ms - clock__mono_ms();

			if (left <= 0) {
				session_try_connect(s);
				left = s->connected ? -1 : s->next_attempt_ms - clock__mono_ms();
			}
			timeout = s->connected ? -1 : (int)(left < 0 ? 0 : left);
		}
		/* Frozen: the interrupt waits for the thaw. */
		notify = s->config_pending && !s->frozen;
		if (notify)
			s->config_pending = false;
		pthread_mutex_unlock(&s->lock);

		/* The device's callbacks may take their own locks: never under ours. */
		if (notify)
			s->ops->config_changed(s->opaque);

		nr = epoll_wait(s->epfd, ev, 8, notify ? 0 : timeout);
		for (i = 0; i < nr; i++) {
			uint64_t tag = ev[i].data.u64, v;
			bool kicked = false;

			pthread_mutex_lock(&s->lock);
			/* A kick or a backend event belongs to the driver's latest state. */
			session_apply_request(s);
			switch (EV_KIND(tag)) {
			case EV_WAKE:
				if (read(s->wake_fd, &v, sizeof(v)) < 0) {
					/* nothing pending */
				}
				break;
			case EV_SOCK:
				if (s->connected && EV_GEN(tag) == EV_GEN(s->sock_gen))
					session_backend_gone(s);
				break;
			case EV_LISTEN:
				session_accept(s);
				break;
			case EV_KICK:
				kicked = session_local_kick(s, EV_QUEUE(tag), EV_GEN(tag));
				break;
			case EV_STANDIN:
				standin_kick(s, EV_QUEUE(tag), EV_GEN(tag));
				break;
			}
			pthread_mutex_unlock(&s->lock);
			if (kicked)
				s->ops->kicked(s->opaque, EV_QUEUE(tag));
		}
	}
	return NULL;
}

/* ---- the device's calls: they post to the thread and never wait for the backend ---- */

static int dup_fd(int fd)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* Keeps queue `vq` as `q`: its ring checked, its eventfds duplicated. */
static int session_keep_queue(const struct vu_session *s, const struct virtio_queue *vq,
			      unsigned i, bool event_idx, struct vu_queue *q, struct err *e)
{
	struct err why;
	int err;

	err = virtqueue__check(s->mem, vq, s->queue_max_size, event_idx, &why);
	if (err)
		return err__set(e, err, "%s: queue %u: %s", s->name, i, why.msg);
	q->vq = *vq;
	q->vq.kick_fd = dup_fd(vq->kick_fd);
	q->vq.call_fd = dup_fd(vq->call_fd);
	if ((vq->kick_fd >= 0 && q->vq.kick_fd < 0) || (vq->call_fd >= 0 && q->vq.call_fd < 0))
		return err__set(e, -errno, "%s: queue %u: cannot keep its eventfds: %s", s->name, i,
				strerror(errno));
	return 0;
}

/* Replaces the posted request with `active` (its queues `q`, moved in) and wakes the thread. */
static void session_post(struct vu_session *s, bool active, const struct virtio_activation *a,
			 uint64_t local, unsigned data_queues, unsigned enabled, struct vu_queue *q)
{
	struct vu_queue old[VIRTIO_MAX_QUEUES];
	unsigned i;

	pthread_mutex_lock(&s->req_lock);
	memcpy(old, s->req.q, sizeof(old));
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		s->req.q[i] = q ? q[i] : (struct vu_queue){ .vq = { .kick_fd = -1, .call_fd = -1 } };
	s->req.seq++;
	s->req.queues_pending = true;
	s->req.active = active;
	s->req.features = a ? a->features : 0;
	s->req.nr_queues = a ? a->nr_queues : 0;
	s->req.local = local;
	s->req.data_queues = data_queues;
	s->req.enabled = enabled;
	s->req.enable_pending = false;
	eventfd_nudge(s->wake_fd);
	pthread_mutex_unlock(&s->req_lock);
	/* An activation the thread never took: its duplicates are ours to close. */
	queues_close(old);
}

int vu_session__activate(struct vu_session *s, const struct virtio_activation *a,
			 uint64_t local_queues, unsigned data_queues, unsigned enabled,
			 const struct vu_session_frozen *from, struct err *e)
{
	bool event_idx = a->features & BIT(VIRTIO_RING_F_EVENT_IDX);
	struct vu_queue q[VIRTIO_MAX_QUEUES];
	unsigned i;
	int err = 0;

	if (a->nr_queues > VIRTIO_MAX_QUEUES)
		return err__set(e, -EINVAL, "%s: %u queues (at most %u)", s->name, a->nr_queues,
				VIRTIO_MAX_QUEUES);
	if (a->mem != s->mem)
		return err__set(e, -EINVAL, "%s: activated over another guest's memory", s->name);
	if (data_queues > s->backend_queues)
		return err__set(e, -EINVAL, "%s: %u data queues (the backend has %u)", s->name,
				data_queues, s->backend_queues);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		q[i] = (struct vu_queue){ .vq = { .kick_fd = -1, .call_fd = -1 } };
	for (i = 0; !err && i < a->nr_queues; i++) {
		bool local = local_queues & BIT(i);

		/* Only the data queues this activation uses reach the backend. */
		if (!a->queues[i].enabled || (i >= data_queues && !local))
			continue;
		err = session_keep_queue(s, &a->queues[i], i, event_idx, &q[i], e);
		if (!err && !local && from && (from->queues & BIT(i))) {
			q[i].base_set = true;
			q[i].base = from->avail[i];
		}
	}
	if (err) {
		queues_close(q);
		return err;
	}
	session_post(s, true, a, local_queues, data_queues, enabled, q);
	return 0;
}

void vu_session__reset(struct vu_session *s)
{
	session_post(s, false, NULL, 0, 0, 0, NULL);
}

/* Asks the thread to freeze (or thaw) the session. */
static void session_post_frozen(struct vu_session *s, bool frozen)
{
	pthread_mutex_lock(&s->req_lock);
	s->req.seq++;
	s->req.frozen = frozen;
	eventfd_nudge(s->wake_fd);
	pthread_mutex_unlock(&s->req_lock);
}

int vu_session__freeze(struct vu_session *s, int timeout_ms)
{
	int err;

	session_post_frozen(s, true);
	err = vu_session__wait_settled(s, timeout_ms);
	/* Not frozen in time: the caller goes on as if never frozen, and so does the thread. */
	if (err)
		session_post_frozen(s, false);
	return err;
}

void vu_session__freeze_loaded(struct vu_session *s)
{
	session_post_frozen(s, true);
}

int vu_session__thaw(struct vu_session *s, int timeout_ms)
{
	session_post_frozen(s, false);
	return vu_session__wait_settled(s, timeout_ms);
}

int vu_session__dirty_log(struct vu_session *s, int log_fd, uint64_t log_size, int timeout_ms,
			  struct err *e)
{
	int fd = -1, old, err;
	uint64_t seq;

	if (log_fd >= 0) {
		/* The thread's own copy: the caller's fd may be closed before the thread gets to it. */
		fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return err__set(e, -errno, "%s: dirty log: cannot keep its fd: %s", s->name,
					strerror(errno));
	}
	pthread_mutex_lock(&s->req_lock);
	old = s->req.log_fd;           /* a request the thread never took: superseded */
	s->req.log_fd = fd;
	s->req.log_size = log_fd >= 0 ? log_size : 0;
	s->req.log_pending = true;
	s->req.log_result = -ETIMEDOUT;
	s->req.log_why[0] = '\0';
	seq = ++s->req.seq;
	eventfd_nudge(s->wake_fd);
	pthread_mutex_unlock(&s->req_lock);
	if (old >= 0)
		close(old);
	err = vu_session__wait_settled(s, timeout_ms);
	pthread_mutex_lock(&s->req_lock);
	/* Settled past our request: its result is the thread's (a later post may have come too). */
	if (!err || s->req.done >= seq) {
		err = s->req.log_result;
		if (err)
			err__set(e, err, "%s", s->req.log_why[0] ? s->req.log_why : strerror(-err));
	} else {
		err = err__set(e, -ETIMEDOUT, "%s: the vhost-user session did not %s dirty logging within %d ms (its backend is slow to answer)",
			       s->name, log_fd >= 0 ? "start" : "stop", timeout_ms);
	}
	pthread_mutex_unlock(&s->req_lock);
	return err;
}

int vu_session__frozen(struct vu_session *s, struct vu_session_frozen *out)
{
	unsigned i;

	*out = (struct vu_session_frozen){ 0 };
	pthread_mutex_lock(&s->lock);
	if (!s->frozen) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	out->active = s->active;
	out->connected = s->connected;
	out->features = s->features;
	out->negotiated = s->negotiated;
	for (i = 0; s->active && i < VIRTIO_MAX_QUEUES; i++) {
		if (!is_backend_queue(s, i))
			continue;
		out->queues |= BIT(i);
		out->avail[i] = session_next_base(s, i);
		out->used[i] = virtqueue__used_idx(s->mem, &s->q[i].vq);
	}
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&s->info_lock);
	out->backend_features = s->backend_known ? s->backend_features : 0;
	pthread_mutex_unlock(&s->info_lock);
	return 0;
}

bool vu_session__settling(struct vu_session *s)
{
	bool settling;

	pthread_mutex_lock(&s->req_lock);
	settling = s->req.seq != s->req.done;
	pthread_mutex_unlock(&s->req_lock);
	return settling;
}

void vu_session__enable_queues(struct vu_session *s, unsigned enabled)
{
	pthread_mutex_lock(&s->req_lock);
	s->req.seq++;
	s->req.enabled = enabled;
	s->req.enable_pending = true;
	eventfd_nudge(s->wake_fd);
	pthread_mutex_unlock(&s->req_lock);
}

void vu_session__signal(struct vu_session *s, unsigned queue)
{
	pthread_mutex_lock(&s->lock);
	if (queue < VIRTIO_MAX_QUEUES)
		eventfd_nudge(s->q[queue].vq.call_fd);
	pthread_mutex_unlock(&s->lock);
}

bool vu_session__config(struct vu_session *s, uint32_t off, void *buf, uint32_t len)
{
	uint32_t n = 0;
	bool known;

	memset(buf, 0, len);
	pthread_mutex_lock(&s->info_lock);
	known = s->config_known;
	if (off < s->config_size)
		n = len < s->config_size - off ? len : s->config_size - off;
	if (known && n)
		memcpy(buf, s->config + off, n);
	pthread_mutex_unlock(&s->info_lock);
	return known;
}

bool vu_session__backend_features(struct vu_session *s, uint64_t *features)
{
	bool known;

	pthread_mutex_lock(&s->info_lock);
	known = s->backend_known;
	*features = s->backend_features;
	pthread_mutex_unlock(&s->info_lock);
	return known;
}

static struct timespec deadline(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int vu_session__wait_link(struct vu_session *s, int timeout_ms)
{
	struct timespec ts = deadline(timeout_ms);
	int err = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->link_up && !err)
		err = -pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	if (s->link_up)
		err = 0;
	pthread_mutex_unlock(&s->lock);
	return err;
}

int vu_session__wait_settled(struct vu_session *s, int timeout_ms)
{
	struct timespec ts = deadline(timeout_ms);
	int err = 0;

	pthread_mutex_lock(&s->req_lock);
	while (s->req.seq != s->req.done && !err)
		err = -pthread_cond_timedwait(&s->req_cond, &s->req_lock, &ts);
	if (s->req.seq == s->req.done)
		err = 0;
	pthread_mutex_unlock(&s->req_lock);
	return err;
}

void vu_session__record_error(struct vu_session *s, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	set_last_error(s, "%s", msg);
	pthread_mutex_unlock(&s->lock);
}

void vu_session__stats(struct vu_session *s, struct vu_session_stats *st)
{
	/* Never waits on `lock` (held across backend I/O): relaxed loads, the error under info_lock. */
	st->link_up = __atomic_load_n(&s->stats.link_up, __ATOMIC_RELAXED);
	st->backend_known = __atomic_load_n(&s->stats.backend_known, __ATOMIC_RELAXED);
	st->backend_features = counter__get(&s->stats.backend_features);
	st->backend_protocol = counter__get(&s->stats.backend_protocol);
	st->connects = counter__get(&s->stats.connects);
	st->disconnects = counter__get(&s->stats.disconnects);
	st->failures = counter__get(&s->stats.failures);
	st->refused = counter__get(&s->stats.refused);
	st->link_changes = counter__get(&s->stats.link_changes);
	st->standin_capable = s->ops->fail;
	st->standin = __atomic_load_n(&s->stats.standin, __ATOMIC_RELAXED);
	st->inflight_tracked = __atomic_load_n(&s->stats.inflight_tracked, __ATOMIC_RELAXED);
	st->failed_by_monitor = counter__get(&s->stats.failed_by_monitor);
	st->bad_chains_by_monitor = counter__get(&s->stats.bad_chains_by_monitor);
	pthread_mutex_lock(&s->info_lock);
	snprintf(st->last_error, sizeof(st->last_error), "%s", s->stats.last_error);
	pthread_mutex_unlock(&s->info_lock);
}

/* ---- lifecycle ---- */

static void session_free(struct vu_session *s)
{
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(s->path);
	}
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	queues_close(s->req.q);
	if (s->inflight.fd >= 0)
		close(s->inflight.fd);
	if (s->req.log_fd >= 0)
		close(s->req.log_fd);
	if (s->log_fd >= 0)
		close(s->log_fd);
	pthread_cond_destroy(&s->req_cond);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->req_lock);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->info_lock);
	free(s);
}

static struct vu_session *session_alloc(const struct vu_session_config *cfg)
{
	struct vu_session *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	unsigned i;

	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", cfg->name);
	snprintf(s->path, sizeof(s->path), "%s", cfg->socket);
	snprintf(s->unit, sizeof(s->unit), "%s", cfg->queue_num_unit ? cfg->queue_num_unit : "queues");
	s->server = cfg->server;
	s->mem = cfg->mem;
	s->data_features = cfg->data_features;
	s->backend_mask = cfg->backend_features;
	s->protocol_wanted = cfg->protocol;
	s->backend_queues = cfg->backend_queues;
	s->queue_num = cfg->queue_num;
	s->queue_max_size = cfg->queue_max_size;
	s->required = cfg->required_features;
	snprintf(s->required_why, sizeof(s->required_why), "%s",
		 cfg->required_why ? cfg->required_why : "the device needs them");
	s->config_size = cfg->config_size;
	if (s->config_size)
		s->protocol_wanted |= BIT(VHOST_USER_PROTOCOL_F_CONFIG);
	/* Where offered: the backend can then log its writes for a live migration. */
	s->protocol_wanted |= BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
	s->ops = cfg->ops;
	s->opaque = cfg->opaque;
	s->peers = cfg->peers ? *cfg->peers :
		(struct trust_uids){ .service = TRUST_NO_UID, .only = TRUST_NO_UID };
	snprintf(s->run_dir, sizeof(s->run_dir), "%s", cfg->run_dir ? cfg->run_dir : "");
	s->run_dir_uid = cfg->run_dir_uid;
	s->run_dir_gid = cfg->run_dir_gid;
	s->listen_fd = s->epfd = s->wake_fd = s->inflight.fd = -1;
	s->log_fd = s->req.log_fd = -1;
	s->backoff_ms = BACKOFF_MIN_MS;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		s->q[i] = (struct vu_queue){ .vq = { .kick_fd = -1, .call_fd = -1 } };
		s->req.q[i] = s->q[i];
	}
	pthread_mutex_init(&s->info_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->req_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_cond_init(&s->req_cond, &ca);
	pthread_condattr_destroy(&ca);
	vhost_user__init(&s->vu, s->name);
	return s;
}

/* Whether `path` lies below directory `dir`. */
static bool path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return n && !strncmp(path, dir, n) && path[n] == '/';
}

/*
 * Whoever can write the socket's directory can swap the socket: it must be
 * ours (or root's) and nobody else's to write. The run directory is created
 * 0700 when the socket lives in it.
 */
static int session_check_dir(struct vu_session *s, const char *kind, struct err *e)
{
	char what[192];
	int err;

	snprintf(what, sizeof(what), "%s '%s': socket %s", kind, s->name, s->path);
	if (s->run_dir[0] && path_below(s->path, s->run_dir)) {
		err = trust__make_run_dir(s->run_dir, s->run_dir_uid, s->run_dir_gid, &s->peers, e);
		if (err)
			return err__set(e, err, "%s: %s", what, e->msg);
	}
	return trust__socket_dir(s->path, &s->peers, what, e);
}

int vu_session__create(const struct vu_session_config *cfg, struct vu_session **out,
		       struct err *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_TAG(EV_WAKE, 0, 0) };
	sigset_t all, old;
	char tname[16];
	struct vu_session *s;
	int err;

	if (!cfg->socket[0])
		return err__set(e, -EINVAL, "%s '%s': no vhost-user socket path", cfg->kind, cfg->name);
	if (cfg->mem->fd < 0)
		return err__set(e, -EINVAL, "%s '%s': guest RAM is not a shareable fd (vhost-user needs a memfd or hugetlbfs)",
				cfg->kind, cfg->name);
	if (cfg->config_size > VHOST_USER_MAX_CONFIG)
		return err__set(e, -EINVAL, "%s '%s': a config space of %u bytes (at most %u)", cfg->kind,
				cfg->name, cfg->config_size, VHOST_USER_MAX_CONFIG);
	if (cfg->backend_queues > VIRTIO_MAX_QUEUES)
		return err__set(e, -EINVAL, "%s '%s': %u backend queues (at most %u)", cfg->kind,
				cfg->name, cfg->backend_queues, VIRTIO_MAX_QUEUES);
	s = session_alloc(cfg);
	if (!s)
		return err__set(e, -ENOMEM, "%s '%s': out of memory", cfg->kind, cfg->name);
	err = session_check_dir(s, cfg->kind, e);
	if (err)
		goto err_free;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->wake_fd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0) {
		err = err__set(e, -errno, "%s '%s': epoll/eventfd: %s", cfg->kind, s->name,
			       strerror(errno));
		goto err_free;
	}
	if (s->server) {
		s->listen_fd = vhost_user__listen(s->path, e);
		if (s->listen_fd < 0) {
			err = s->listen_fd;
			s->listen_fd = -1;
			goto err_free;
		}
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_TAG(EV_LISTEN, 0, 0) };
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0) {
			err = err__set(e, -errno, "%s '%s': epoll: %s", cfg->kind, s->name,
				       strerror(errno));
			goto err_free;
		}
		session_log(s, "listening for a vhost-user backend on %s", s->path);
	} else {
		/* The usual case: the backend is up first; the guest then sees its features at once. */
		pthread_mutex_lock(&s->lock);
		session_try_connect(s);
		pthread_mutex_unlock(&s->lock);
	}

	/* The thread takes no signals: they belong to the main thread's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&s->thread, NULL, session_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		err__set(e, err, "%s '%s': cannot start its thread: %s", cfg->kind, s->name,
			 strerror(-err));
		goto err_close_connection;
	}
	snprintf(tname, sizeof(tname), "vu-%.12s", s->name);
	pthread_setname_np(s->thread, tname);
	*out = s;
	return 0;

err_close_connection:
	vhost_user__close(&s->vu);
err_free:
	session_free(s);
	return err;
}

void vu_session__destroy(struct vu_session *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	eventfd_nudge(s->wake_fd);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);

	pthread_mutex_lock(&s->lock);
	session_reset_locked(s);
	if (s->vu.fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->vu.fd, NULL);
	vhost_user__close(&s->vu);
	pthread_mutex_unlock(&s->lock);
	session_free(s);
}

void vu_session_stats__report(const struct vu_session_stats *st, FILE *out)
{
	fprintf(out, "link %s, backend connects %llu, disconnects %llu, failures %llu, refused %llu",
		st->link_up ? "up" : "down", (unsigned long long)st->connects,
		(unsigned long long)st->disconnects, (unsigned long long)st->failures,
		(unsigned long long)st->refused);
}

const char *vu_session_stats__io_state(const struct vu_session_stats *st)
{
	if (st->link_up)
		return "served by the backend";
	if (st->standin)
		return "failed by the monitor (backend away)";
	if (st->standin_capable && st->backend_known && !st->inflight_tracked)
		return "waiting for the backend (it did not track inflight I/O, INFLIGHT_SHMFD: the monitor cannot fail it safely)";
	return "waiting for the backend";
}

void vu_session_stats__counters(const struct vu_session_stats *st, const struct counter_sink *sink)
{
	sink->str(sink->opaque, "link", st->link_up ? "up" : "down");
	sink->num(sink->opaque, "backend_connects", st->connects);
	sink->num(sink->opaque, "backend_disconnects", st->disconnects);
	sink->num(sink->opaque, "backend_failures", st->failures);
	sink->num(sink->opaque, "backend_refused", st->refused);
	sink->num(sink->opaque, "link_changes", st->link_changes);
	if (st->backend_known)
		sink->num(sink->opaque, "backend_features", st->backend_features);
}
