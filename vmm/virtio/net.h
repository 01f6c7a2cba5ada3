/*
 * virtio-net (device type 1) whose data path is a vhost-user backend.
 *
 * The device is small: its config space (MAC, link status, queue pairs), its
 * feature policy (only data-path features the backend implements reach the
 * guest) and the control queue (VIRTIO_NET_F_CTRL_VQ, offered with multiqueue:
 * MQ_VQ_PAIRS_SET enables the backend's rings), served by the monitor through
 * virtqueue.h. The backend connection, with its thread ("vu-<name>"), its
 * reconnection and the rings it runs, is a vu_session (vu_session.h).
 *
 * Locking: the transport may call the ops from vCPU threads; none of them
 * waits for the backend (the session's thread does that). config_changed is
 * only ever called from the session's thread with no device lock held.
 */
#ifndef RTVMM_VIRTIO_NET_H
#define RTVMM_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/trust.h"
#include "base/vm_limits.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/virtio.h"
#include "vmm/virtio/vu_session.h"

#define VIRTIO_ID_NET 1

/* Feature bits (virtio 1.x, 5.1.3; the transport-wide ones are in virtio.h). */
#define VIRTIO_NET_F_CSUM            0
#define VIRTIO_NET_F_GUEST_CSUM      1
#define VIRTIO_NET_F_MTU             3
#define VIRTIO_NET_F_MAC             5
#define VIRTIO_NET_F_GUEST_TSO4      7
#define VIRTIO_NET_F_GUEST_TSO6      8
#define VIRTIO_NET_F_GUEST_ECN       9
#define VIRTIO_NET_F_GUEST_UFO       10
#define VIRTIO_NET_F_HOST_TSO4       11
#define VIRTIO_NET_F_HOST_TSO6       12
#define VIRTIO_NET_F_HOST_ECN        13
#define VIRTIO_NET_F_HOST_UFO        14
#define VIRTIO_NET_F_MRG_RXBUF       15
#define VIRTIO_NET_F_STATUS          16
#define VIRTIO_NET_F_CTRL_VQ         17
#define VIRTIO_NET_F_CTRL_RX         18
#define VIRTIO_NET_F_MQ              22

#define VIRTIO_NET_S_LINK_UP 1

/* Control queue (5.1.6.5). */
#define VIRTIO_NET_OK  0
#define VIRTIO_NET_ERR 1
#define VIRTIO_NET_CTRL_MQ              4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0

/* Device configuration space as the guest reads it (little-endian on x86). */
struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));

/* What the machine needs to build one NIC; the application fills it (from a plan or --net). */
struct virtio_net_spec {
	char name[32];               /* "net0", for messages and the thread name */
	char socket[108];            /* vhost-user unix socket path */
	uint8_t mac[6];              /* the guest's (the plan's or plan_nic__guest_mac's) */
	unsigned queues;             /* queue pairs, 1..VM_MAX_NIC_QUEUE_PAIRS */
	unsigned queue_size;         /* largest ring the device accepts, a power of two in
				      * VM_NIC_QUEUE_SIZE_MIN..MAX; 0: VM_NIC_QUEUE_SIZE_DEFAULT */
	bool server;                 /* listen for the backend instead of connecting to it */
	bool peers_set;              /* else the backend may be root or our own uid */
	struct trust_uids peers;     /* the uids the backend may run as (SO_PEERCRED) */
	char run_dir[108];           /* created 0700 when the socket lives below it; "" none */
	uid_t run_dir_uid;           /* its owner when created (TRUST_NO_UID: ours) */
	gid_t run_dir_gid;           /* its group when created ((gid_t)-1: ours) */
};

/* Counters and state; the device logs only connection events and errors. */
struct virtio_net_stats {
	struct vu_session_stats session; /* the backend connection; last_error also the device's */
	uint64_t ctrl_commands;      /* control-queue commands answered OK */
	uint64_t ctrl_errors;        /* answered VIRTIO_NET_ERR */
	uint64_t ctrl_bad_chains;    /* malformed descriptor chains (the control queue stops) */
	uint64_t ctrl_kicks;         /* control-queue notifications the monitor served */
	uint64_t features;           /* negotiated with the driver (0 while not active) */
	unsigned queue_pairs;        /* pairs the guest enabled (MQ_VQ_PAIRS_SET) */
};

/*
 * Creates the device for `nic` (socket path, mode, MAC, queue pairs) over
 * guest RAM `mem` (its memfd is what the backend maps; `mem` must outlive the
 * device) and starts its thread. Client mode makes one connection attempt
 * before returning; the thread keeps trying. Server mode listens at once.
 */
__attribute__((warn_unused_result))
int virtio_net__create(const struct virtio_net_spec *nic, const struct guest_mem *mem,
		       struct virtio_dev **out, struct err *e);

/* Stops the thread, stops the rings if active, closes the connection (and the listening socket). */
void virtio_net__destroy(struct virtio_dev *vdev);

/*
 * Waits up to `timeout_ms` until a backend is connected and negotiated (and,
 * when the device is active, its rings are set up): 0 or -ETIMEDOUT. The
 * builder calls this before booting so the guest sees the backend's features.
 */
int virtio_net__wait_backend(struct virtio_dev *vdev, int timeout_ms);

/* The counters; from any thread, without waiting on the device's or the session's lock. */
void virtio_net__stats(struct virtio_dev *vdev, struct virtio_net_stats *st);


/* How a VM holds a virtio-net device (vmm/device.h): added before its transport, freed after. */
extern const struct device_ops virtio_net__device_ops;

#endif
