/*
 * vhost-user-blk: a virtio-blk device (blk.h's facts) whose data path and
 * configuration space are a vhost-user backend's (SPDK, qemu-storage-daemon's
 * vhost-user-blk export), over a vu_session (vu_session.h) like virtio-net.
 * The configuration space is fetched from the backend (GET_CONFIG) by the
 * session's thread when it connects and served from that copy: a guest read
 * never waits for the backend. When the backend goes away the VM keeps
 * running: with a backend that tracked inflight I/O (INFLIGHT_SHMFD: DPDK's
 * rte_vhost, SPDK, libvhost-user) the monitor fails the disk's requests with
 * IOERR until the next one connects (vu_session.h); without it
 * (qemu-storage-daemon 7.2) they wait for the next backend, which resumes
 * from the used index. The stop report and counters say which.
 */
#ifndef RTVMM_VIRTIO_VHOST_BLK_H
#define RTVMM_VIRTIO_VHOST_BLK_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/trust.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/vu_session.h"

/* What the machine needs to build one vhost-user disk; the application fills it. */
struct vhost_blk_spec {
	char name[32];                /* "disk1": messages and the session thread "vu-disk1" */
	char socket[108];             /* the backend's unix socket path */
	bool server;                  /* listen for the backend instead of connecting to it */
	bool readonly;                /* the backend must offer VIRTIO_BLK_F_RO, else it is refused */
	unsigned queues;              /* request queues, 1..VM_MAX_DISK_QUEUES */
	bool peers_set;               /* else the backend may be root or our own uid */
	struct trust_uids peers;      /* the uids the backend may run as (SO_PEERCRED) */
	char run_dir[108];            /* created 0700 when the socket lives below it; "" none */
	uid_t run_dir_uid;            /* its owner when created (TRUST_NO_UID: ours) */
	gid_t run_dir_gid;            /* its group when created ((gid_t)-1: ours) */
};

struct vhost_blk_stats {
	struct vu_session_stats session; /* the backend connection; last_error also the device's */
	uint64_t capacity;            /* sectors, from the backend's config (0 before one was seen) */
};

/* Creates the device and starts its session (client mode: one attempt now, the thread retries). */
__attribute__((warn_unused_result))
int vhost_blk__create(const struct vhost_blk_spec *spec, const struct guest_mem *mem,
		      struct virtio_dev **out, struct err *e);

/* Stops the session, the backend's rings with it, and frees the device. */
void vhost_blk__destroy(struct virtio_dev *vdev);

/*
 * Waits up to `timeout_ms` until a backend is connected, negotiated and its
 * configuration fetched: 0 or -ETIMEDOUT. The builder calls it before booting.
 */
int vhost_blk__wait_backend(struct virtio_dev *vdev, int timeout_ms);

void vhost_blk__stats(struct virtio_dev *vdev, struct vhost_blk_stats *st);

/* How a VM holds a vhost-user disk (vmm/device.h): added before its transport, freed after. */
extern const struct device_ops vhost_blk__device_ops;

#endif
