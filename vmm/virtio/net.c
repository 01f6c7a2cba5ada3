/* virtio-net whose data path is a vhost-user backend: config space, features, control queue. */
#include "vmm/virtio/net.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/counter.h"
#include "vmm/virtio/vhost_user.h"
#include "vmm/virtio/virtqueue.h"

_Static_assert(2 * VM_MAX_NIC_QUEUE_PAIRS + 1 <= VIRTIO_MAX_QUEUES,
	       "a NIC's data queues and control queue must fit the transport's queues");

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

struct net {
	struct virtio_dev vdev;
	char name[32];
	unsigned max_pairs;
	const struct guest_mem *mem;
	struct vu_session *session;

	/* Held around the transport's config_changed, so that the transport can detach. */
	pthread_mutex_t notify_lock;

	/* Config space: vCPU reads and the session's link changes; a short critical section. */
	pthread_mutex_t cfg_lock;
	struct virtio_net_config cfg;

	/*
	 * Everything below: under `lock` (taken before the session's, never inside
	 * link_set). The counters and `features`, `queue_pairs` are also read
	 * without it (base/counter.h).
	 */
	pthread_mutex_t lock;
	bool active;                    /* DRIVER_OK seen, not reset */
	uint64_t features;              /* negotiated with the guest */
	unsigned curr_pairs;            /* pairs the guest enabled */
	int ctrl_idx;                   /* control queue index, -1 when none is served */
	bool ctrl_broken;
	struct virtqueue ctrl;
	uint64_t ctrl_commands, ctrl_errors, ctrl_bad_chains, ctrl_kicks;
	uint64_t queue_pairs;           /* for the stats: 0 when inactive */
	/* A snapshot's activation (load), for the transport's resuming DRIVER_OK. */
	struct {
		bool valid;
		uint64_t features;
		unsigned curr_pairs;
		bool ctrl, ctrl_broken;
		uint16_t ctrl_avail, ctrl_used;
		struct vu_session_frozen rings;
	} loaded;
};

static struct net *to_net(struct virtio_dev *vdev)
{
	return vdev->priv;
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

	if (c->in_len < 2 || c->in_total != c->in_len)
		return VIRTIO_NET_ERR;
	if (c->in[0] != VIRTIO_NET_CTRL_MQ || c->in[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    !(n->features & BIT(VIRTIO_NET_F_MQ)) || c->in_len != 4)
		return VIRTIO_NET_ERR;
	memcpy(&pairs, c->in + 2, sizeof(pairs));
	if (pairs < 1 || pairs > n->max_pairs)
		return VIRTIO_NET_ERR;
	n->curr_pairs = pairs;
	counter__set(&n->queue_pairs, pairs);
	/* Valid whatever the backend does: without one it applies at the next setup. */
	vu_session__enable_queues(n->session, 2 * pairs);
	return VIRTIO_NET_OK;
}

/* A chain the device cannot serve: like a device that needs a reset, the queue stops. Lock held. */
static void ctrl_stop(struct net *n, const struct err *e, uint16_t at)
{
	char msg[512];

	n->ctrl_broken = true;
	counter__add(&n->ctrl_bad_chains, 1);
	snprintf(msg, sizeof(msg), "control queue: %.400s (head at avail %u)", e->msg, at);
	vu_session__record_error(n->session, msg);
	fprintf(stderr, "rtvmm: %s: control queue: %s; the queue stops until the driver resets the device\n",
		n->name, e->msg);
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
			ctrl_stop(n, &e, at);
			break;
		}
		ack = ctrl_execute(n, &c);
		counter__add(ack == VIRTIO_NET_OK ? &n->ctrl_commands : &n->ctrl_errors, 1);
		guest_mem__write(n->mem, c.ack_gpa, &ack, 1);
		virtqueue__push(&n->ctrl, head, 1);
		used_any = true;
	}
	virtqueue__update_avail_event(&n->ctrl);
	if (used_any)
		vu_session__signal(n->session, (unsigned)n->ctrl_idx);
}

/* ---- the session's callbacks ---- */

/* The link is the config space's status field: every change is a config change. */
static bool net_link_set(void *opaque, bool up)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->cfg_lock);
	n->cfg.status = up ? VIRTIO_NET_S_LINK_UP : 0;
	pthread_mutex_unlock(&n->cfg_lock);
	return true;
}

static void net_config_changed(void *opaque)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->notify_lock);
	if (n->vdev.config_changed)
		n->vdev.config_changed(&n->vdev);
	pthread_mutex_unlock(&n->notify_lock);
}

static void net_kicked(void *opaque, unsigned queue)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->lock);
	if ((int)queue == n->ctrl_idx) {
		counter__add(&n->ctrl_kicks, 1);
		ctrl_process(n);
	}
	pthread_mutex_unlock(&n->lock);
}

static const struct vu_session_ops net_session_ops = {
	.link_set = net_link_set,
	.config_changed = net_config_changed,
	.kicked = net_kicked,
};

/* ---- virtio_dev_ops ---- */

static uint64_t net_features(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);
	uint64_t f = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS), backend;

	if (n->max_pairs > 1)
		f |= BIT(VIRTIO_NET_F_MQ) | BIT(VIRTIO_NET_F_CTRL_VQ);
	if (vu_session__backend_features(n->session, &backend))
		return f | (backend & NET_DATA_FEATURES);
	return f | NET_DEFAULT_DATA_FEATURES;
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

static void net_reset_locked(struct net *n)
{
	if (!n->active)
		return;
	vu_session__reset(n->session);
	n->active = false;
	counter__set(&n->features, 0);
	n->curr_pairs = 1;
	counter__set(&n->queue_pairs, 0);
	n->ctrl_idx = -1;
	n->ctrl_broken = false;
}

/* Whether the driver set the control queue up: enabled, with a notify eventfd. */
static bool ctrl_configured(const struct virtio_activation *a, int idx)
{
	return idx >= 0 && (unsigned)idx < a->nr_queues && a->queues[idx].enabled &&
	       a->queues[idx].kick_fd >= 0;
}

static int net_activate(struct virtio_dev *vdev, const struct virtio_activation *a)
{
	struct net *n = to_net(vdev);
	struct err e = { 0 };
	int ctrl_idx = -1, err;
	unsigned data_queues, pairs = 1;
	bool resume = a->resume;

	pthread_mutex_lock(&n->lock);
	/* A snapshot's positions serve the one activation that resumes it, no other. */
	if (resume && (!n->loaded.valid || n->loaded.features != a->features)) {
		fprintf(stderr, "rtvmm: %s: the snapshot's activation does not match the device's "
			"saved state; the device needs a reset\n", n->name);
		resume = false;
	} else if (resume) {
		pairs = n->loaded.curr_pairs;
	}
	if (a->resume && !resume) {
		n->loaded.valid = false;
		pthread_mutex_unlock(&n->lock);
		return -EINVAL;
	}
	pthread_mutex_unlock(&n->lock);
	if (a->nr_queues > VIRTIO_MAX_QUEUES || a->mem != n->mem)
		return -EINVAL;
	if ((a->features & BIT(VIRTIO_NET_F_MQ)) && !(a->features & BIT(VIRTIO_NET_F_CTRL_VQ))) {
		fprintf(stderr, "rtvmm: %s: the driver negotiated MQ without CTRL_VQ; the device needs a reset\n",
			n->name);
		return -EINVAL;
	}
	/* Without MQ the driver uses one pair, and the control queue follows it (5.1.2). */
	data_queues = (a->features & BIT(VIRTIO_NET_F_MQ)) ? 2 * n->max_pairs : 2;
	if (a->features & BIT(VIRTIO_NET_F_CTRL_VQ))
		ctrl_idx = (int)data_queues;
	pthread_mutex_lock(&n->lock);
	net_reset_locked(n);
	n->curr_pairs = pairs;
	counter__set(&n->queue_pairs, pairs);
	/*
	 * The backend gets the data queues in use, the first pair enabled (a
	 * snapshot's: the pairs its driver had enabled, each ring from where it
	 * stopped); the control queue is ours.
	 */
	err = vu_session__activate(n->session, a, ctrl_idx >= 0 ? BIT(ctrl_idx) : 0, data_queues,
				   2 * pairs, resume ? &n->loaded.rings : NULL, &e);
	n->loaded.valid = false;
	if (err) {
		fprintf(stderr, "rtvmm: %s; the device needs a reset\n", e.msg);
		pthread_mutex_unlock(&n->lock);
		return err;
	}
	counter__set(&n->features, a->features);
	n->ctrl_idx = ctrl_configured(a, ctrl_idx) ? ctrl_idx : -1;
	if (n->ctrl_idx >= 0) {
		virtqueue__init(&n->ctrl, n->mem, &a->queues[n->ctrl_idx], a->features);
		if (resume) {
			n->ctrl.last_avail = n->loaded.ctrl_avail;
			n->ctrl.next_used = n->loaded.ctrl_used;
			n->ctrl_broken = n->loaded.ctrl_broken;
		}
	}
	n->active = true;
	pthread_mutex_unlock(&n->lock);
	/* Commands kicked before the snapshot, not yet served: their kick was the old eventfd's. */
	if (resume && n->ctrl_idx >= 0) {
		uint64_t one = 1;

		if (write(a->queues[n->ctrl_idx].kick_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: a kick is pending already */
		}
	}
	return 0;
}

static void net_reset(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);

	pthread_mutex_lock(&n->lock);
	net_reset_locked(n);
	pthread_mutex_unlock(&n->lock);
}

static void net_detach(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);

	pthread_mutex_lock(&n->notify_lock);
	vdev->config_changed = NULL;
	pthread_mutex_unlock(&n->notify_lock);
}

static bool net_resetting(struct virtio_dev *vdev)
{
	return vu_session__settling(to_net(vdev)->session);
}

/* "link up, backend connects 1, disconnects 0, failures 0, refused 0; TRANSPORT[; last error: ...]" */
static void net_report(struct virtio_dev *vdev, FILE *out, const char *transport)
{
	struct virtio_net_stats ns;

	virtio_net__stats(vdev, &ns);
	vu_session_stats__report(&ns.session, out);
	fprintf(out, "; %s%s%s", transport, ns.session.last_error[0] ? "; last error: " : "",
		ns.session.last_error);
}

static void net_counters(struct virtio_dev *vdev, const struct counter_sink *sink)
{
	struct virtio_net_stats ns;

	virtio_net__stats(vdev, &ns);
	vu_session_stats__counters(&ns.session, sink);
	sink->num(sink->opaque, "negotiated_features", ns.features);
	sink->num(sink->opaque, "queue_pairs", ns.queue_pairs);
	sink->num(sink->opaque, "max_queue_pairs", to_net(vdev)->max_pairs);
	sink->num(sink->opaque, "queue_size", vdev->queue_max_size);
	sink->num(sink->opaque, "ctrl_kicks", ns.ctrl_kicks);
	sink->num(sink->opaque, "ctrl_commands", ns.ctrl_commands);
	sink->num(sink->opaque, "ctrl_errors", ns.ctrl_errors);
	sink->num(sink->opaque, "ctrl_bad_chains", ns.ctrl_bad_chains);
	if (ns.session.last_error[0])
		sink->str(sink->opaque, "last_error", ns.session.last_error);
}

static const struct virtio_dev_ops net_ops = {
	.features = net_features,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.reset = net_reset,
	.resetting = net_resetting,
	.detach = net_detach,
	.report = net_report,
	.counters = net_counters,
};

/* ---- lifecycle ---- */

static void net_free(struct net *n)
{
	pthread_mutex_destroy(&n->lock);
	pthread_mutex_destroy(&n->cfg_lock);
	pthread_mutex_destroy(&n->notify_lock);
	free(n);
}

int virtio_net__create(const struct virtio_net_spec *nic, const struct guest_mem *mem,
		       struct virtio_dev **out, struct err *e)
{
	unsigned qsize = nic->queue_size ? nic->queue_size : VM_NIC_QUEUE_SIZE_DEFAULT;
	struct vu_session_config sc;
	struct net *n;
	int err;

	if (nic->queues < 1 || nic->queues > VM_MAX_NIC_QUEUE_PAIRS)
		return err__set(e, -EINVAL, "nic '%s': %u queue pairs (1..%u)", nic->name, nic->queues,
				VM_MAX_NIC_QUEUE_PAIRS);
	if (qsize < VM_NIC_QUEUE_SIZE_MIN || qsize > VM_NIC_QUEUE_SIZE_MAX || (qsize & (qsize - 1)))
		return err__set(e, -EINVAL, "nic '%s': queue size %u: a power of two from %u to %u",
				nic->name, qsize, VM_NIC_QUEUE_SIZE_MIN, VM_NIC_QUEUE_SIZE_MAX);
	n = calloc(1, sizeof(*n));
	if (!n)
		return err__set(e, -ENOMEM, "nic '%s': out of memory", nic->name);
	snprintf(n->name, sizeof(n->name), "%s", nic->name[0] ? nic->name : "net");
	n->max_pairs = nic->queues;
	n->mem = mem;
	n->curr_pairs = 1;
	n->ctrl_idx = -1;
	pthread_mutex_init(&n->cfg_lock, NULL);
	pthread_mutex_init(&n->notify_lock, NULL);
	pthread_mutex_init(&n->lock, NULL);
	memcpy(n->cfg.mac, nic->mac, sizeof(n->cfg.mac));
	n->cfg.max_virtqueue_pairs = (uint16_t)nic->queues;
	n->cfg.mtu = 1500;
	n->vdev = (struct virtio_dev){
		.name = n->name,
		.device_id = VIRTIO_ID_NET,
		.max_queues = 2 * nic->queues + (nic->queues > 1 ? 1 : 0),
		.queue_max_size = (uint16_t)qsize,
		.config_size = sizeof(struct virtio_net_config),
		.ops = &net_ops,
		.priv = n,
	};

	sc = (struct vu_session_config){
		.kind = "nic",
		.name = n->name,
		.socket = nic->socket,
		.server = nic->server,
		.mem = mem,
		.data_features = NET_DATA_FEATURES,
		.backend_features = NET_BACKEND_FEATURES,
		.protocol = NET_PROTOCOL_WANTED,
		.backend_queues = 2 * nic->queues,
		.queue_num = nic->queues,
		.queue_num_unit = "queue pairs",
		.queue_max_size = (uint16_t)qsize,
		.ops = &net_session_ops,
		.opaque = n,
		.peers = nic->peers_set ? &nic->peers : NULL,
		.run_dir = nic->run_dir[0] ? nic->run_dir : NULL,
		.run_dir_uid = nic->run_dir_uid,
		.run_dir_gid = nic->run_dir_gid,
	};
	err = vu_session__create(&sc, &n->session, e);
	if (err) {
		net_free(n);
		return err;
	}
	*out = &n->vdev;
	return 0;
}

void virtio_net__destroy(struct virtio_dev *vdev)
{
	struct net *n;

	if (!vdev)
		return;
	n = to_net(vdev);
	/* The session's thread stops first: no callback runs after this. */
	vu_session__destroy(n->session);
	net_free(n);
}

int virtio_net__wait_backend(struct virtio_dev *vdev, int timeout_ms)
{
	return vu_session__wait_link(to_net(vdev)->session, timeout_ms);
}

void virtio_net__stats(struct virtio_dev *vdev, struct virtio_net_stats *st)
{
	struct net *n = to_net(vdev);

	vu_session__stats(n->session, &st->session);
	st->ctrl_commands = counter__get(&n->ctrl_commands);
	st->ctrl_errors = counter__get(&n->ctrl_errors);
	st->ctrl_bad_chains = counter__get(&n->ctrl_bad_chains);
	st->ctrl_kicks = counter__get(&n->ctrl_kicks);
	st->queue_pairs = (unsigned)counter__get(&n->queue_pairs);
	st->features = counter__get(&n->features);
}

static void net_device_destroy(void *dev)
{
	virtio_net__destroy(dev);
}

/* ---- snapshot ---- */

/* Freeze: the session's thread stops the backend's rings (GET_VRING_BASE) and the control queue. */
static int net_device_freeze(void *dev)
{
	return vu_session__freeze(to_net(dev)->session, VIRTIO_FREEZE_TIMEOUT_MS);
}

/* Thaw: the backend gets its rings back from where they stopped; held kicks are served. */
static int net_device_thaw(void *dev)
{
	return vu_session__thaw(to_net(dev)->session, VIRTIO_FREEZE_TIMEOUT_MS);
}

/* Live migration: the backend logs its writes to guest RAM (RX buffers, used rings) for the session. */
static int net_device_dirty_log(void *dev, int log_fd, uint64_t log_size, struct err *e)
{
	return vu_session__dirty_log(to_net(dev)->session, log_fd, log_size,
				     VIRTIO_FREEZE_TIMEOUT_MS, e);
}

/*
 * The state, all fields always present (a fixed layout):
 *   version u32, kind u32 ('vnet'), queues u16, pairs u16, mac 6 bytes,
 *   active u8, features u64 (negotiated with the driver), pairs enabled u16,
 *   control queue served u8, broken u8, next avail u16, used index u16,
 *   backend connected u8, its features u64, SET_FEATURES u64,
 *   backend queues u64 (a bit each), then per queue: next avail u16, used index u16.
 */
static int net_device_save(void *dev, struct state_out *out)
{
	struct net *n = to_net(dev);
	struct vu_session_frozen fz;
	unsigned i;
	int err;

	err = vu_session__frozen(n->session, &fz);
	if (err)
		return err;
	pthread_mutex_lock(&n->lock);
	virtio_state__begin(out, VIRTIO_STATE_NET);
	state_out__u16(out, (uint16_t)n->vdev.max_queues);
	state_out__u16(out, (uint16_t)n->max_pairs);
	state_out__bytes(out, n->cfg.mac, sizeof(n->cfg.mac));
	state_out__u8(out, n->active);
	state_out__u64(out, n->active ? n->features : 0);
	state_out__u16(out, n->active ? (uint16_t)n->curr_pairs : 0);
	state_out__u8(out, n->active && n->ctrl_idx >= 0);
	state_out__u8(out, n->active && n->ctrl_broken);
	state_out__u16(out, n->active && n->ctrl_idx >= 0 ? n->ctrl.last_avail : 0);
	state_out__u16(out, n->active && n->ctrl_idx >= 0 ? n->ctrl.next_used : 0);
	state_out__u8(out, fz.connected);
	state_out__u64(out, fz.backend_features);
	state_out__u64(out, fz.negotiated);
	state_out__u64(out, n->active ? fz.queues : 0);
	for (i = 0; i < n->vdev.max_queues; i++) {
		state_out__u16(out, fz.avail[i]);
		state_out__u16(out, fz.used[i]);
	}
	pthread_mutex_unlock(&n->lock);
	return out->err;
}

/* A u8 that must be 0 or 1. */
static bool read_bool(struct state_in *in, bool *v)
{
	uint8_t b = state_in__u8(in);

	*v = b == 1;
	return b <= 1;
}

static int net_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct net *n = to_net(dev);
	uint64_t offered = net_features(&n->vdev) | BIT(VIRTIO_F_VERSION_1), backend, lacking;
	bool active, ctrl, ctrl_broken, connected, mq, bools = true;
	unsigned queues, pairs, curr_pairs, data_queues, i;
	struct vu_session_frozen rings = { 0 };
	uint16_t ctrl_avail, ctrl_used;
	uint8_t mac[6];
	uint64_t features;
	int err;

	/* Whatever comes, an earlier load's activation is void; the rings wait for the VM's thaw. */
	pthread_mutex_lock(&n->lock);
	n->loaded.valid = false;
	pthread_mutex_unlock(&n->lock);
	vu_session__freeze_loaded(n->session);
	err = virtio_state__check_begin(in, VIRTIO_STATE_NET, n->name, why, why_len);
	if (err)
		return err;
	queues = state_in__u16(in);
	pairs = state_in__u16(in);
	state_in__bytes(in, mac, sizeof(mac));
	bools &= read_bool(in, &active);
	features = state_in__u64(in);
	curr_pairs = state_in__u16(in);
	bools &= read_bool(in, &ctrl);
	bools &= read_bool(in, &ctrl_broken);
	ctrl_avail = state_in__u16(in);
	ctrl_used = state_in__u16(in);
	bools &= read_bool(in, &connected);
	rings.backend_features = state_in__u64(in);
	rings.negotiated = state_in__u64(in);
	rings.queues = state_in__u64(in);
	if (in->err)
		return virtio_state__refuse(why, why_len, "%s: state of %zu bytes is truncated",
					    n->name, in->len);
	if (queues != n->vdev.max_queues || pairs != n->max_pairs)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's NIC has %u queue pairs "
					    "(%u queues), this one %u", n->name, pairs, queues,
					    n->max_pairs);
	for (i = 0; i < queues; i++) {
		rings.avail[i] = state_in__u16(in);
		rings.used[i] = state_in__u16(in);
	}
	if (state_in__end(in))
		return virtio_state__refuse(why, why_len, "%s: state of %zu bytes is truncated or has "
					    "bytes past its end", n->name, in->len);
	if (!bools)
		return virtio_state__refuse(why, why_len, "%s: a flag of the state is neither 0 nor 1",
					    n->name);
	if (memcmp(mac, n->cfg.mac, sizeof(mac)))
		return virtio_state__refuse(why, why_len, "%s: the snapshot's MAC is "
					    "%02x:%02x:%02x:%02x:%02x:%02x, this NIC's "
					    "%02x:%02x:%02x:%02x:%02x:%02x", n->name, mac[0], mac[1],
					    mac[2], mac[3], mac[4], mac[5], n->cfg.mac[0],
					    n->cfg.mac[1], n->cfg.mac[2], n->cfg.mac[3], n->cfg.mac[4],
					    n->cfg.mac[5]);
	if (!active)
		return 0;
	if (features & ~offered)
		return virtio_state__refuse(why, why_len, "%s: the guest negotiated feature bit %u, "
					    "which this NIC's backend does not offer", n->name,
					    virtio__first_bit(features & ~offered));
	lacking = vu_session__backend_features(n->session, &backend) ? rings.negotiated & ~backend : 0;
	if (lacking)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's backend took feature bit "
					    "%u, which this backend does not offer", n->name,
					    virtio__first_bit(lacking));
	if ((features & BIT(VIRTIO_NET_F_MQ)) && !(features & BIT(VIRTIO_NET_F_CTRL_VQ)))
		return virtio_state__refuse(why, why_len, "%s: feature MQ without CTRL_VQ", n->name);
	if (ctrl && !(features & BIT(VIRTIO_NET_F_CTRL_VQ)))
		return virtio_state__refuse(why, why_len, "%s: a control queue without feature CTRL_VQ",
					    n->name);
	mq = features & BIT(VIRTIO_NET_F_MQ);
	if (curr_pairs < 1 || curr_pairs > (mq ? pairs : 1))
		return virtio_state__refuse(why, why_len, "%s: %u queue pairs enabled (1..%u)", n->name,
					    curr_pairs, mq ? pairs : 1);
	if ((uint16_t)(ctrl_avail - ctrl_used) > n->vdev.queue_max_size)
		return virtio_state__refuse(why, why_len, "%s: control queue: next available entry %u "
					    "is %u past the used index %u (a ring holds at most %u)",
					    n->name, ctrl_avail, (uint16_t)(ctrl_avail - ctrl_used),
					    ctrl_used, n->vdev.queue_max_size);
	data_queues = mq ? 2 * pairs : 2;
	if (rings.queues & ~(BIT(data_queues) - 1))
		return virtio_state__refuse(why, why_len, "%s: backend queue %u is not a data queue "
					    "(%u in use)", n->name,
					    virtio__first_bit(rings.queues & ~(BIT(data_queues) - 1)),
					    data_queues);
	for (i = 0; i < data_queues; i++) {
		uint16_t ahead = (uint16_t)(rings.avail[i] - rings.used[i]);

		if ((rings.queues & BIT(i)) && ahead > n->vdev.queue_max_size)
			return virtio_state__refuse(why, why_len, "%s: queue %u: next available entry "
						    "%u is %u past the used index %u (a ring holds "
						    "at most %u)", n->name, i, rings.avail[i], ahead,
						    rings.used[i], n->vdev.queue_max_size);
	}
	rings.active = true;
	rings.connected = connected;
	pthread_mutex_lock(&n->lock);
	n->loaded.valid = true;
	n->loaded.features = features;
	n->loaded.curr_pairs = curr_pairs;
	n->loaded.ctrl = ctrl;
	n->loaded.ctrl_broken = ctrl_broken;
	n->loaded.ctrl_avail = ctrl_avail;
	n->loaded.ctrl_used = ctrl_used;
	n->loaded.rings = rings;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

const struct device_ops virtio_net__device_ops = {
	.destroy = net_device_destroy,
	.freeze = net_device_freeze,
	.thaw = net_device_thaw,
	.dirty_log = net_device_dirty_log,
	.save = net_device_save,
	.load = net_device_load,
};
