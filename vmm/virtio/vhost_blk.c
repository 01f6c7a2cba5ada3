/* vhost-user-blk: a virtio-blk device whose data path and config space are a backend's. */
#include "vmm/virtio/vhost_blk.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vm_limits.h"
#include "vmm/virtio/vhost_user.h"
#include "vmm/virtio/virtqueue.h"

_Static_assert(VM_MAX_DISK_QUEUES <= VIRTIO_MAX_QUEUES,
	       "a disk's request queues must fit the transport's queues");

#define BIT(n) (1ull << (n))

/*
 * The config space the guest reads: blk.h's fields, then the discard and
 * write-zeroes limits (virtio 1.1, 5.2.4), read when DISCARD or WRITE_ZEROES
 * is negotiated. All of it is the backend's (GET_CONFIG) but num_queues.
 */
struct vhost_blk_config {
	struct virtio_blk_config base;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_blk_config) == 60, "virtio-blk config up to write_zeroes_may_unmap");
_Static_assert(sizeof(struct vhost_blk_config) <= VHOST_USER_MAX_CONFIG, "GET_CONFIG carries it");

/*
 * Data-path features the guest gets when the backend offers them: the
 * backend serves every request, so what it offers it implements, and the
 * limits they announce are in its config space. Not CONFIG_WCE: the guest's
 * write to `writeback` would have to reach the backend (SET_CONFIG) from a
 * vCPU, which never waits for the backend; the cache mode stays the
 * backend's (FLUSH tells the guest to flush).
 */
#define BLK_DATA_FEATURES                                                                    \
	(BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_GEOMETRY) |    \
	 BIT(VIRTIO_BLK_F_RO) | BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH) |            \
	 BIT(VIRTIO_BLK_F_TOPOLOGY) | BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_BLK_F_DISCARD) |          \
	 BIT(VIRTIO_BLK_F_WRITE_ZEROES) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |                      \
	 BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))
/* Requests that change the disk: never offered on a readonly disk. */
#define BLK_WRITING_FEATURES (BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES))
/*
 * INFLIGHT_SHMFD: a backend completes requests out of order, so after a crash
 * the used index alone cannot say which ones the next backend must redo.
 */
#define BLK_PROTOCOL_WANTED                                                 \
	(BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 BIT(VHOST_USER_PROTOCOL_F_CONFIG) | BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))

#define VHOST_BLK_QUEUE_SIZE 1024   /* largest ring accepted (libvhost-user's and SPDK's limit) */

struct vblk {
	struct virtio_dev vdev;
	char name[32];
	char socket[108];
	bool readonly;
	unsigned queues;
	uint64_t data_features;         /* BLK_DATA_FEATURES for this disk's queues and mode */
	const struct guest_mem *mem;
	struct vu_session *session;

	/* Held around the transport's config_changed, so that the transport can detach. */
	pthread_mutex_t notify_lock;

	/* A snapshot's activation (load), for the transport's resuming DRIVER_OK; under `lock`. */
	pthread_mutex_t lock;
	bool loaded;
	uint64_t loaded_features;
	struct vu_session_frozen loaded_rings;
};

static struct vblk *to_vblk(struct virtio_dev *vdev)
{
	return vdev->priv;
}

/* ---- the session's callbacks ---- */

static void vblk_config_changed(void *opaque)
{
	struct vblk *b = opaque;

	pthread_mutex_lock(&b->notify_lock);
	if (b->vdev.config_changed)
		b->vdev.config_changed(&b->vdev);
	pthread_mutex_unlock(&b->notify_lock);
}

/* vu_fail_fn: while the backend is away its requests complete with IOERR. */
static int vblk_fail(void *opaque, const struct virtqueue *vq, uint16_t head, struct err *e)
{
	(void)opaque;
	return virtio_blk__fail_chain(vq, head, e);
}

/* The link is not in a disk's config space: only a changed config reaches the guest. */
static const struct vu_session_ops vblk_session_ops = {
	.config_changed = vblk_config_changed,
	.fail = vblk_fail,
};

/* ---- virtio_dev_ops ---- */

static uint64_t vblk_features(struct virtio_dev *vdev)
{
	struct vblk *b = to_vblk(vdev);
	uint64_t backend;

	if (vu_session__backend_features(b->session, &backend))
		return backend & b->data_features;
	/* No backend seen yet: nothing it might lack (the builder waits for one). */
	return BIT(VIRTIO_F_VERSION_1) | (b->readonly ? BIT(VIRTIO_BLK_F_RO) : 0);
}

/* The backend's config, num_queues being this disk's; zeros before any backend. */
static void vblk_config(struct vblk *b, struct vhost_blk_config *cfg)
{
	if (vu_session__config(b->session, 0, cfg, sizeof(*cfg)))
		cfg->base.num_queues = (uint16_t)b->queues;
}

static void vblk_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct vhost_blk_config cfg;

	memset(data, 0, len);
	if (off >= sizeof(cfg))
		return;
	if (len > sizeof(cfg) - off)
		len = (uint32_t)(sizeof(cfg) - off);
	vblk_config(to_vblk(vdev), &cfg);
	memcpy(data, (const uint8_t *)&cfg + off, len);
}

static void vblk_config_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			      uint32_t len)
{
	/* Only `writeback` is writable, with CONFIG_WCE, which is not offered. */
	(void)vdev;
	(void)off;
	(void)data;
	(void)len;
}

static int vblk_activate(struct virtio_dev *vdev, const struct virtio_activation *a)
{
	struct vblk *b = to_vblk(vdev);
	unsigned queues = (a->features & BIT(VIRTIO_BLK_F_MQ)) ? b->queues : 1;
	struct vu_session_frozen from;
	bool resume;
	struct err e = { 0 };
	int err;

	/* A snapshot's positions serve the one activation that resumes it, no other. */
	pthread_mutex_lock(&b->lock);
	resume = a->resume && b->loaded && b->loaded_features == a->features;
	from = b->loaded_rings;
	b->loaded = false;
	pthread_mutex_unlock(&b->lock);
	if (a->resume && !resume) {
		fprintf(stderr, "rtvmm: %s: the snapshot's activation does not match the device's "
			"saved state; the device needs a reset\n", b->name);
		return -EINVAL;
	}
	if (a->mem != b->mem)
		return -EINVAL;
	/* Every request queue is the backend's, all enabled; the device serves none itself. */
	err = vu_session__activate(b->session, a, 0, queues, queues, resume ? &from : NULL, &e);
	if (err)
		fprintf(stderr, "rtvmm: %s; the device needs a reset\n", e.msg);
	return err;
}

static void vblk_reset(struct virtio_dev *vdev)
{
	vu_session__reset(to_vblk(vdev)->session);
}

static bool vblk_resetting(struct virtio_dev *vdev)
{
	return vu_session__settling(to_vblk(vdev)->session);
}

static void vblk_detach(struct virtio_dev *vdev)
{
	struct vblk *b = to_vblk(vdev);

	pthread_mutex_lock(&b->notify_lock);
	vdev->config_changed = NULL;
	pthread_mutex_unlock(&b->notify_lock);
}

/*
 * "link up, backend connects 1, disconnects 0, failures 0, refused 0, 2048 sectors;
 * I/O served by the backend, 0 requests failed by the monitor; TRANSPORT[; last error: ...]"
 */
static void vblk_report(struct virtio_dev *vdev, FILE *out, const char *transport)
{
	struct vhost_blk_stats st;

	vhost_blk__stats(vdev, &st);
	vu_session_stats__report(&st.session, out);
	fprintf(out, ", %llu sectors; I/O %s, %llu requests failed by the monitor",
		(unsigned long long)st.capacity, vu_session_stats__io_state(&st.session),
		(unsigned long long)st.session.failed_by_monitor);
	if (st.session.bad_chains_by_monitor)
		fprintf(out, " (%llu returned empty: no status byte)",
			(unsigned long long)st.session.bad_chains_by_monitor);
	fprintf(out, "; %s%s%s", transport, st.session.last_error[0] ? "; last error: " : "",
		st.session.last_error);
}

static void vblk_counters(struct virtio_dev *vdev, const struct counter_sink *sink)
{
	struct vhost_blk_stats st;

	vhost_blk__stats(vdev, &st);
	vu_session_stats__counters(&st.session, sink);
	sink->num(sink->opaque, "capacity_sectors", st.capacity);
	sink->num(sink->opaque, "queues", to_vblk(vdev)->queues);
	sink->str(sink->opaque, "io_state", vu_session_stats__io_state(&st.session));
	sink->num(sink->opaque, "requests_failed_by_monitor", st.session.failed_by_monitor);
	sink->num(sink->opaque, "bad_chains_by_monitor", st.session.bad_chains_by_monitor);
	if (st.session.last_error[0])
		sink->str(sink->opaque, "last_error", st.session.last_error);
}

static const struct virtio_dev_ops vblk_ops = {
	.features = vblk_features,
	.config_read = vblk_config_read,
	.config_write = vblk_config_write,
	.activate = vblk_activate,
	.reset = vblk_reset,
	.resetting = vblk_resetting,
	.detach = vblk_detach,
	.report = vblk_report,
	.counters = vblk_counters,
};

/* ---- lifecycle ---- */

static void vblk_free(struct vblk *b)
{
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->notify_lock);
	free(b);
}

int vhost_blk__create(const struct vhost_blk_spec *spec, const struct guest_mem *mem,
		      struct virtio_dev **out, struct err *e)
{
	struct vu_session_config sc;
	struct vblk *b;
	int err;

	if (spec->queues < 1 || spec->queues > VM_MAX_DISK_QUEUES)
		return err__set(e, -EINVAL, "disk '%s': %u queues (1..%u)", spec->name, spec->queues,
				VM_MAX_DISK_QUEUES);
	b = calloc(1, sizeof(*b));
	if (!b)
		return err__set(e, -ENOMEM, "disk '%s': out of memory", spec->name);
	snprintf(b->name, sizeof(b->name), "%s", spec->name[0] ? spec->name : "disk");
	snprintf(b->socket, sizeof(b->socket), "%s", spec->socket);
	b->readonly = spec->readonly;
	b->queues = spec->queues;
	b->mem = mem;
	b->data_features = BLK_DATA_FEATURES;
	if (spec->queues == 1)
		b->data_features &= ~BIT(VIRTIO_BLK_F_MQ);
	if (spec->readonly)
		b->data_features &= ~BLK_WRITING_FEATURES;
	pthread_mutex_init(&b->notify_lock, NULL);
	pthread_mutex_init(&b->lock, NULL);
	b->vdev = (struct virtio_dev){
		.name = b->name,
		.device_id = VIRTIO_ID_BLOCK,
		.max_queues = spec->queues,
		.queue_max_size = VHOST_BLK_QUEUE_SIZE,
		.config_size = sizeof(struct vhost_blk_config),
		.ops = &vblk_ops,
		.priv = b,
	};

	sc = (struct vu_session_config){
		.kind = "disk",
		.name = b->name,
		.socket = spec->socket,
		.server = spec->server,
		.mem = mem,
		.data_features = b->data_features,
		.backend_features = b->data_features,
		.protocol = BLK_PROTOCOL_WANTED,
		.backend_queues = spec->queues,
		.queue_num = spec->queues,
		.queue_num_unit = "queues",
		.queue_max_size = VHOST_BLK_QUEUE_SIZE,
		.required_features = spec->readonly ? BIT(VIRTIO_BLK_F_RO) : 0,
		.required_why = "VIRTIO_BLK_F_RO: the disk is readonly and the backend would take writes",
		.config_size = sizeof(struct vhost_blk_config),
		.ops = &vblk_session_ops,
		.opaque = b,
		.peers = spec->peers_set ? &spec->peers : NULL,
		.run_dir = spec->run_dir[0] ? spec->run_dir : NULL,
		.run_dir_uid = spec->run_dir_uid,
		.run_dir_gid = spec->run_dir_gid,
	};
	err = vu_session__create(&sc, &b->session, e);
	if (err) {
		vblk_free(b);
		return err;
	}
	*out = &b->vdev;
	return 0;
}

void vhost_blk__destroy(struct virtio_dev *vdev)
{
	struct vblk *b;

	if (!vdev)
		return;
	b = to_vblk(vdev);
	/* The session's thread stops first: no callback runs after this. */
	vu_session__destroy(b->session);
	vblk_free(b);
}

int vhost_blk__wait_backend(struct virtio_dev *vdev, int timeout_ms)
{
	struct vblk *b = to_vblk(vdev);
	struct vu_session_stats st;

	if (!vu_session__wait_link(b->session, timeout_ms))
		return 0;
	vu_session__stats(b->session, &st);
	fprintf(stderr, "rtvmm: %s: no vhost-user-blk backend ready on %s within %d ms%s%s%s\n",
		b->name, b->socket, timeout_ms,
		st.last_error[0] ? " (last error: " : " (none answered there)",
		st.last_error, st.last_error[0] ? ")" : "");
	return -ETIMEDOUT;
}

void vhost_blk__stats(struct virtio_dev *vdev, struct vhost_blk_stats *st)
{
	struct vblk *b = to_vblk(vdev);
	struct vhost_blk_config cfg;

	vu_session__stats(b->session, &st->session);
	vblk_config(b, &cfg);
	st->capacity = cfg.base.capacity;
}

static void vblk_device_destroy(void *dev)
{
	vhost_blk__destroy(dev);
}

/* ---- snapshot ---- */

/* Freeze: the session's thread stops the backend's rings (GET_VRING_BASE) and the stand-in. */
static int vblk_device_freeze(void *dev)
{
	return vu_session__freeze(to_vblk(dev)->session, VIRTIO_FREEZE_TIMEOUT_MS);
}

/* Thaw: the backend gets its rings back from where they stopped. */
static int vblk_device_thaw(void *dev)
{
	return vu_session__thaw(to_vblk(dev)->session, VIRTIO_FREEZE_TIMEOUT_MS);
}

/* Live migration: the backend logs its writes to guest RAM (read data, status, used rings). */
static int vblk_device_dirty_log(void *dev, int log_fd, uint64_t log_size, struct err *e)
{
	return vu_session__dirty_log(to_vblk(dev)->session, log_fd, log_size,
				     VIRTIO_FREEZE_TIMEOUT_MS, e);
}

/*
 * The state, a fixed layout: version u32, kind u32 ('vubk'), queues u16,
 * readonly u8, active u8, features u64 (negotiated with the driver),
 * backend connected u8, its features u64, SET_FEATURES u64, backend queues
 * u64 (a bit each), then per queue: next avail u16, used index u16. The
 * config space is the backend's (fetched at each connect), not saved.
 */
static int vblk_device_save(void *dev, struct state_out *out)
{
	struct vblk *b = to_vblk(dev);
	struct vu_session_frozen fz;
	unsigned i;
	int err;

	err = vu_session__frozen(b->session, &fz);
	if (err)
		return err;
	virtio_state__begin(out, VIRTIO_STATE_VHOST_BLK);
	state_out__u16(out, (uint16_t)b->queues);
	state_out__u8(out, b->readonly);
	state_out__u8(out, fz.active);
	state_out__u64(out, fz.active ? fz.features : 0);
	state_out__u8(out, fz.connected);
	state_out__u64(out, fz.backend_features);
	state_out__u64(out, fz.negotiated);
	state_out__u64(out, fz.queues);
	for (i = 0; i < b->queues; i++) {
		state_out__u16(out, fz.avail[i]);
		state_out__u16(out, fz.used[i]);
	}
	return out->err;
}

static int vblk_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct vblk *b = to_vblk(dev);
	uint64_t offered = vblk_features(&b->vdev), backend, features, lacking;
	struct vu_session_frozen rings = { 0 };
	uint8_t readonly, active, connected;
	unsigned queues, used_queues, i;
	int err;

	/* Whatever comes, an earlier load's activation is void; the rings wait for the VM's thaw. */
	pthread_mutex_lock(&b->lock);
	b->loaded = false;
	pthread_mutex_unlock(&b->lock);
	vu_session__freeze_loaded(b->session);
	err = virtio_state__check_begin(in, VIRTIO_STATE_VHOST_BLK, b->name, why, why_len);
	if (err)
		return err;
	queues = state_in__u16(in);
	readonly = state_in__u8(in);
	active = state_in__u8(in);
	features = state_in__u64(in);
	connected = state_in__u8(in);
	rings.backend_features = state_in__u64(in);
	rings.negotiated = state_in__u64(in);
	rings.queues = state_in__u64(in);
	if (in->err)
		return virtio_state__refuse(why, why_len, "%s: state of %zu bytes is truncated",
					    b->name, in->len);
	if (queues != b->queues)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's disk has %u queues, "
					    "this one %u", b->name, queues, b->queues);
	for (i = 0; i < queues; i++) {
		rings.avail[i] = state_in__u16(in);
		rings.used[i] = state_in__u16(in);
	}
	if (state_in__end(in))
		return virtio_state__refuse(why, why_len, "%s: state of %zu bytes is truncated or has "
					    "bytes past its end", b->name, in->len);
	if (readonly > 1 || active > 1 || connected > 1)
		return virtio_state__refuse(why, why_len, "%s: a flag of the state is neither 0 nor 1",
					    b->name);
	if (readonly != b->readonly)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's disk is %s, this one %s",
					    b->name, readonly ? "readonly" : "writable",
					    b->readonly ? "readonly" : "writable");
	if (!active)
		return 0;
	if (features & ~offered)
		return virtio_state__refuse(why, why_len, "%s: the guest negotiated feature bit %u, "
					    "which this disk's backend does not offer", b->name,
					    virtio__first_bit(features & ~offered));
	if (vu_session__backend_features(b->session, &backend) &&
	    (lacking = rings.negotiated & ~backend))
		return virtio_state__refuse(why, why_len, "%s: the snapshot's backend took feature "
					    "bit %u, which this backend does not offer", b->name,
					    virtio__first_bit(lacking));
	used_queues = (features & BIT(VIRTIO_BLK_F_MQ)) ? queues : 1;
	if (rings.queues & ~(BIT(used_queues) - 1))
		return virtio_state__refuse(why, why_len, "%s: backend queue %u is not in use "
					    "(%u are)", b->name,
					    virtio__first_bit(rings.queues & ~(BIT(used_queues) - 1)),
					    used_queues);
	for (i = 0; i < queues; i++)
		if ((rings.queues & BIT(i)) &&
		    (uint16_t)(rings.avail[i] - rings.used[i]) > b->vdev.queue_max_size)
			return virtio_state__refuse(why, why_len, "%s: queue %u: next available entry "
						    "%u is %u past the used index %u (a ring holds "
						    "at most %u)", b->name, i, rings.avail[i],
						    (uint16_t)(rings.avail[i] - rings.used[i]),
						    rings.used[i], b->vdev.queue_max_size);
	rings.active = true;
	rings.connected = connected;
	pthread_mutex_lock(&b->lock);
	b->loaded = true;
	b->loaded_features = features;
	b->loaded_rings = rings;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

const struct device_ops vhost_blk__device_ops = {
	.destroy = vblk_device_destroy,
	.freeze = vblk_device_freeze,
	.thaw = vblk_device_thaw,
	.dirty_log = vblk_device_dirty_log,
	.save = vblk_device_save,
	.load = vblk_device_load,
};
