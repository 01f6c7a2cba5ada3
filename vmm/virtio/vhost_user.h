/*
 * vhost-user frontend: one connection to a backend (a DPDK vhost port, a
 * software switch) over a unix socket, per QEMU's docs/interop/vhost-user.rst.
 * rtvmm is the frontend; the backend maps guest RAM from the fds we pass and
 * runs the virtqueues. This module only frames and checks messages; the
 * device (net.c) decides what to send and when, and serialises all calls.
 *
 * Every reply is checked before it is believed: request code, flags exactly
 * version 1 | REPLY, payload size exactly what the request expects (a larger
 * size is refused before a byte of payload is read), no file descriptors, and
 * a bounded wait. Any failure records why in the caller's struct err and marks
 * the connection broken: later calls fail at once with -ENOTCONN until the
 * owner closes it and attaches a new socket.
 */
#ifndef RTVMM_VIRTIO_VHOST_USER_H
#define RTVMM_VIRTIO_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/guest_mem.h"

/* Requests (front-end message types). */
enum vhost_user_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
};

/* Header flags. */
#define VHOST_USER_VERSION        0x1u
#define VHOST_USER_VERSION_MASK   0x3u
#define VHOST_USER_FLAG_REPLY     0x4u
#define VHOST_USER_FLAG_NEED_REPLY 0x8u

#define VHOST_USER_HDR_SIZE       12u
#define VHOST_USER_MAX_REGIONS    8u
/* The largest device configuration space GET_CONFIG carries (after its 12-byte header). */
#define VHOST_USER_MAX_CONFIG     256u
#define VHOST_USER_CONFIG_HDR_SIZE 12u
/* The largest payload we ever send or accept: a full GET_CONFIG (the memory table is 264). */
#define VHOST_USER_MAX_PAYLOAD    (VHOST_USER_CONFIG_HDR_SIZE + VHOST_USER_MAX_CONFIG)

/* Feature bit 30 of GET/SET_FEATURES: the backend speaks protocol features. Never for the guest. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/*
 * Feature bit 26 of GET/SET_FEATURES: the backend logs its writes to guest
 * RAM (the log of SET_LOG_BASE) while the frontend sets it. Never for the guest.
 */
#define VHOST_F_LOG_ALL 26

/* SET_VRING_ADDR flag: log the used ring's writes too, at log_guest_addr (its gpa). */
#define VHOST_VRING_F_LOG 0

/* Protocol features (GET/SET_PROTOCOL_FEATURES). */
#define VHOST_USER_PROTOCOL_F_MQ        0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG    9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12

/* SET_VRING_KICK/CALL payload: bits 0-7 vring index, bit 8 "no fd in the ancillary data". */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD     0x100u

/* One SET_MEM_TABLE region as sent on the wire (with its fd beside it). */
struct vhost_user_region {
	uint64_t gpa;           /* guest-physical start */
	uint64_t size;
	uint64_t uaddr;         /* our (frontend) virtual address of the start */
	uint64_t mmap_offset;   /* offset of the start in the fd */
	int fd;
};

/*
 * A region where the backend tracks the requests it took from the rings and
 * has not completed (shared memory, the fd beside it): the next backend
 * resubmits them after a crash instead of resuming from the used index.
 */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;    /* descriptors per queue it tracks: at least every ring's size */
	int fd;
};

/* SET_VRING_ADDR: frontend user addresses (not guest-physical), log = used ring's gpa. */
struct vhost_user_vring_addr {
	unsigned index;
	uint32_t flags;
	uint64_t desc, used, avail, log;
};

struct vhost_user {
	char name[32];          /* for messages: "net0" */
	int fd;                 /* connected socket, -1 when none */
	bool broken;            /* a send/receive/check failed: only close is useful now */
	int timeout_ms;         /* longest wait for a reply or a blocked send */
	uint64_t features;      /* the backend's GET_FEATURES, valid after vhost_user__get_features */
	uint64_t protocol;      /* negotiated protocol features (ours & theirs) */
	uint64_t nr_sent, nr_replies;
};

#define VHOST_USER_DEFAULT_TIMEOUT_MS 3000

/* Sets up an unconnected object; `name` labels messages. */
void vhost_user__init(struct vhost_user *vu, const char *name);

/* Takes ownership of a connected stream socket (from connect, accept or a socketpair). */
int vhost_user__attach(struct vhost_user *vu, int fd);

/* Closes the socket (if any) and clears the broken flag and negotiated state. */
void vhost_user__close(struct vhost_user *vu);

static inline bool vhost_user__connected(const struct vhost_user *vu)
{
	return vu->fd >= 0 && !vu->broken;
}

/*
 * Client mode: one non-blocking connect attempt to `path`. Returns a connected,
 * blocking, close-on-exec socket or -errno (-ENOENT, -ECONNREFUSED, -EAGAIN:
 * the backend is not (yet) there; retry later).
 */
int vhost_user__connect(const char *path);

/*
 * Server mode: a listening, non-blocking socket at `path`. A stale socket file
 * left by an earlier run is replaced, never one a process still listens on
 * (-EADDRINUSE); any other file there is an error.
 */
int vhost_user__listen(const char *path, struct err *e);

/* Server mode: accepts one pending backend; -EAGAIN when none is waiting. */
int vhost_user__accept(int listen_fd);

/* Requests. Each returns 0 or -errno and, on failure, says why in `e`. */
int vhost_user__get_features(struct vhost_user *vu, uint64_t *features, struct err *e);
int vhost_user__set_features(struct vhost_user *vu, uint64_t features, struct err *e);
int vhost_user__get_protocol_features(struct vhost_user *vu, uint64_t *features, struct err *e);
/* Records the set as vu->protocol (REPLY_ACK is used from the next request on). */
int vhost_user__set_protocol_features(struct vhost_user *vu, uint64_t features, struct err *e);
int vhost_user__get_queue_num(struct vhost_user *vu, uint64_t *num, struct err *e);
int vhost_user__set_owner(struct vhost_user *vu, struct err *e);
int vhost_user__set_mem_table(struct vhost_user *vu, const struct vhost_user_region *regions,
			      unsigned nr, struct err *e);
/* The memory table for guest RAM: one region per guest_mem region, fd = the RAM memfd. */
int vhost_user__set_mem_table_guest(struct vhost_user *vu, const struct guest_mem *mem,
				    struct err *e);
int vhost_user__set_vring_num(struct vhost_user *vu, unsigned index, unsigned num, struct err *e);
int vhost_user__set_vring_base(struct vhost_user *vu, unsigned index, unsigned base,
			       struct err *e);
int vhost_user__set_vring_addr(struct vhost_user *vu, const struct vhost_user_vring_addr *a,
			       struct err *e);
/* fd < 0 sends the no-fd flag (the backend polls instead). */
int vhost_user__set_vring_kick(struct vhost_user *vu, unsigned index, int fd, struct err *e);
int vhost_user__set_vring_call(struct vhost_user *vu, unsigned index, int fd, struct err *e);
int vhost_user__set_vring_enable(struct vhost_user *vu, unsigned index, bool enable,
				 struct err *e);
/*
 * Reads `size` bytes (1..VHOST_USER_MAX_CONFIG) of the device's configuration
 * space from `offset` (protocol feature CONFIG). The reply must carry exactly
 * that window; an empty reply is the backend's refusal (-EREMOTEIO).
 */
int vhost_user__get_config(struct vhost_user *vu, uint32_t offset, void *buf, uint32_t size,
			   struct err *e);
/*
 * Asks the backend for a new inflight region for `in->num_queues` queues of
 * `in->queue_size` (protocol feature INFLIGHT_SHMFD): fills in its size,
 * offset and fd (the caller's to close). The reply must carry exactly one fd.
 */
int vhost_user__get_inflight_fd(struct vhost_user *vu, struct vhost_user_inflight *in,
				struct err *e);
/* Hands a backend the inflight region (a new one: the region the last one filled). */
int vhost_user__set_inflight_fd(struct vhost_user *vu, const struct vhost_user_inflight *in,
				struct err *e);
/*
 * Hands the backend the dirty log (protocol feature LOG_SHMFD): `size` bytes
 * of memfd `fd` from `offset`, one bit per 4 KiB page of guest-physical
 * address. The backend maps it and answers: without payload (the spec, DPDK),
 * or with 8 bytes that say nothing (libvhost-user), taken too. It writes
 * there once VHOST_F_LOG_ALL is set.
 */
int vhost_user__set_log_base(struct vhost_user *vu, int fd, uint64_t size, uint64_t offset,
			     struct err *e);
/* Stops the ring; *base receives the backend's next available index. */
int vhost_user__get_vring_base(struct vhost_user *vu, unsigned index, unsigned *base,
			       struct err *e);

/* "SET_MEM_TABLE", for messages; "an unknown request" for codes we never send. */
const char *vhost_user__request_name(uint32_t request);

#endif
