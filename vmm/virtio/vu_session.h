/*
 * A vhost-user device session: everything about one backend connection for a
 * virtio device whose data path runs in the backend (net, blk).
 * The device gives its feature policy, its queues and a few callbacks; the
 * session does the rest over vhost_user.h's messages.
 *
 * The monitor only sets the rings up: the guest's notify writes reach the
 * backend through the queue's kick eventfd (a KVM ioeventfd), the backend's
 * completions reach the guest through the call eventfd (a KVM irqfd on the
 * queue's MSI route). No monitor thread touches the backend's rings.
 *
 * One thread per session ("vu-<name>") watches the connection: it reconnects
 * (client mode, backoff 100 ms doubling to 5 s) or accepts the next backend
 * (server mode), negotiates, fetches the device's config space when the device
 * has one in the backend (GET_CONFIG: a copy the device serves, a change
 * between connections raises config_changed), re-sends the memory table and the
 * rings with the used index read from guest RAM as the base, and turns the
 * link up and down. With protocol feature INFLIGHT_SHMFD (when the device asks
 * for it) the backends of one activation share an inflight region, so that
 * the next one resubmits what a crashed one had taken and not completed.
 * The same thread watches the kicks of the queues the device serves itself
 * (net's control queue) and hands them to the device.
 *
 * A device that gives `fail` (a disk) has its I/O failed while the backend is
 * away: when a backend that tracked its requests in the inflight region dies,
 * the thread completes the requests it had taken with the device's error
 * (vu_inflight.h: the region is read and checked first), interrupts the
 * guest, and fails what the guest queues meanwhile (it watches the queues'
 * kicks); the next backend gets the rings from the position reached and the
 * cleaned region. Without INFLIGHT_SHMFD the monitor cannot tell which heads
 * the backend completed out of order (completing one twice would corrupt the
 * guest): the requests wait for the next backend, which resumes from the used
 * index, as in QEMU.
 *
 * A snapshot freezes the session (vu_session__freeze): the thread stops the
 * backend's rings the way the vhost-user spec stops them (SET_VRING_ENABLE 0,
 * then GET_VRING_BASE: the backend stops and says where) and leaves the
 * guest's rings and interrupts alone until the thaw, which hands the rings
 * back from where they stopped (SET_VRING_NUM, BASE, ADDR, CALL, KICK,
 * ENABLE, as at activation). A restored device is frozen by its load
 * (vu_session__freeze_loaded) and activated with the saved positions
 * (vu_session__activate's `from`): its rings start there, not at 0, at the
 * thaw the VM gives it right before the guest runs.
 *
 * A live migration has the backend log what it writes to guest RAM
 * (vu_session__dirty_log; the spec's "Migration"): protocol feature
 * LOG_SHMFD (asked for wherever offered) and feature VHOST_F_LOG_ALL, the log
 * handed over with SET_LOG_BASE, LOG_ALL added to SET_FEATURES and the
 * running rings' SET_VRING_ADDR sent again with flag LOG and the used ring's
 * gpa. The session keeps the log until it stops: a reconnecting backend, a
 * thaw and an activation get it with their rings, and a backend that cannot
 * log is refused (link down) until the migration ends.
 *
 * Activation, reset and queue enables are the thread's work: a call from a
 * vCPU only checks the rings, posts what the driver asked (the latest state
 * wins) and wakes the thread, which talks to the backend: activate, reset,
 * settling, enable_queues and backend_features never wait for the backend, so
 * a silent backend never stalls a vCPU. signal, record_error and stats take
 * the lock the thread holds across a request (up to the reply timeout): they
 * are for the device's callbacks and the main thread, never a vCPU. A device
 * lock taken around these calls must never be taken inside link_set.
 *
 * Trust: the socket's directory is checked at create (owned by root, us or the
 * service user, writable by nobody else; the run directory is created 0700
 * when the socket lives in it) and every backend's uid (SO_PEERCRED) before
 * anything is sent to it: SET_MEM_TABLE hands out all of guest RAM.
 */
#ifndef RTVMM_VIRTIO_VU_SESSION_H
#define RTVMM_VIRTIO_VU_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "base/trust.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/virtio.h"
#include "vmm/virtio/vu_inflight.h"

struct vu_session;

struct vu_session_ops {
	/*
	 * Optional: the link went up or down; the device records it and returns
	 * whether its config space changed (the interrupt is then raised). The
	 * session's lock is held. NULL: the link is not in the config space.
	 */
	bool (*link_set)(void *opaque, bool up);
	/* Raise the configuration-change interrupt. The session's thread, no lock held. */
	void (*config_changed)(void *opaque);
	/* The driver kicked `queue`, one the device serves itself (none: NULL). The session's thread, no lock held. */
	void (*kicked)(void *opaque, unsigned queue);
	/*
	 * Optional: completes a backend queue's chain with the device's error
	 * (`arg` is the opaque), for the stand-in while the backend is away. The
	 * session's thread, lock held. NULL: requests wait for the next backend.
	 */
	vu_fail_fn fail;
};

struct vu_session_config {
	const char *kind;              /* what create's errors call the device: "nic" */
	const char *name;              /* "net0": messages and the thread's name */
	const char *socket;            /* the backend's unix socket path */
	bool server;                   /* listen for the backend instead of connecting */
	const struct guest_mem *mem;   /* its memfd is what the backend maps; outlives the session */
	uint64_t data_features;        /* negotiated with the guest, the backend must implement them */
	uint64_t backend_features;     /* what SET_FEATURES may carry (data_features and more) */
	uint64_t protocol;             /* protocol features the session may use */
	unsigned backend_queues;       /* queues 0..n-1 are the backend's */
	unsigned queue_num;            /* > 1: the backend's GET_QUEUE_NUM must reach it */
	const char *queue_num_unit;    /* what GET_QUEUE_NUM counts, for messages: "queue pairs" */
	uint16_t queue_max_size;       /* largest ring accepted */
	uint64_t required_features;    /* a backend without all of these is refused (link down) */
	const char *required_why;      /* what they mean, for that message: "the disk is readonly" */
	uint32_t config_size;          /* config space bytes fetched (GET_CONFIG) at each connect; 0: none */
	const struct vu_session_ops *ops;
	void *opaque;                  /* passed to the ops */
	const struct trust_uids *peers;/* who may be the backend; NULL: root or our own uid */
	const char *run_dir;           /* created 0700 when the socket is below it; NULL: none */
	uid_t run_dir_uid;             /* its owner when created (TRUST_NO_UID: ours) */
	gid_t run_dir_gid;             /* its group when created ((gid_t)-1: ours) */
};

/* Counters and state; the session logs only connection events and errors. */
struct vu_session_stats {
	bool link_up;
	bool backend_known;            /* features below came from a backend */
	uint64_t backend_features;     /* the backend's GET_FEATURES */
	uint64_t backend_protocol;     /* negotiated protocol features */
	uint64_t connects;             /* sessions set up (handshake, and rings when active) */
	uint64_t disconnects;          /* the backend went away */
	uint64_t failures;             /* ended by a malformed/unexpected reply, refusal, timeout */
	uint64_t refused;              /* peers refused before anything was sent (SO_PEERCRED) */
	uint64_t link_changes;         /* the link went up or down */
	bool standin_capable;          /* the device gives `fail` */
	bool standin;                  /* the monitor fails the backend's queues now */
	bool inflight_tracked;         /* the last backend tracked inflight I/O (INFLIGHT_SHMFD) */
	uint64_t failed_by_monitor;    /* requests the stand-in completed with the device's error */
	uint64_t bad_chains_by_monitor;/* chains it returned with nothing written (no status byte) */
	char last_error[512];
};

/*
 * Starts the session: server mode listens at once; client mode makes one
 * connection attempt before returning and the thread keeps trying.
 */
__attribute__((warn_unused_result))
int vu_session__create(const struct vu_session_config *cfg, struct vu_session **out,
		       struct err *e);

/* Stops the thread, stops the rings if active, closes the connection (and the listening socket). */
void vu_session__destroy(struct vu_session *s);

/* Where a frozen session's backend rings stand: what a snapshot keeps of it. */
struct vu_session_frozen {
	bool active;                   /* the driver had activated the device */
	bool connected;                /* a backend was connected (the rings stopped by it) */
	uint64_t features;             /* negotiated with the driver */
	uint64_t backend_features;     /* the last backend's GET_FEATURES, 0 when none was seen */
	uint64_t negotiated;           /* the last SET_FEATURES of this activation, 0 before one */
	uint64_t queues;               /* bit i: backend queue i of the activation, positions below */
	uint16_t avail[VIRTIO_MAX_QUEUES]; /* the next available entry the backend takes */
	uint16_t used[VIRTIO_MAX_QUEUES];  /* the used index in guest RAM */
};

/*
 * DRIVER_OK: checks the enabled rings among the backend's first `data_queues`
 * (the data queues the driver uses) and those in `local_queues` (a bit per
 * queue the device serves itself; never the backend's), keeps them, and
 * returns; the thread then watches the local ones' kicks and hands the
 * backend's rings over when connected, the first `enabled` of them enabled,
 * each from `from->avail` when `from->queues` has it (a restored snapshot;
 * `from` NULL: a new activation, from 0). A ring fault is an error (the device
 * needs a reset); a backend problem only takes the link down.
 */
int vu_session__activate(struct vu_session *s, const struct virtio_activation *a,
			 uint64_t local_queues, unsigned data_queues, unsigned enabled,
			 const struct vu_session_frozen *from, struct err *e);

/* The driver reset the device: the thread stops the backend's rings and forgets the queues. */
void vu_session__reset(struct vu_session *s);

/*
 * A snapshot's freeze: the thread stops the backend's rings (SET_VRING_ENABLE
 * 0, GET_VRING_BASE each) and stops moving the guest's rings (local queues'
 * kicks wait, the stand-in pauses) and raising interrupts (config changes
 * wait), until vu_session__thaw. A backend that does not answer is let go,
 * as at any failure. Waits up to `timeout_ms`: 0, or -ETIMEDOUT (the session
 * is then not frozen). From the thread taking the snapshot, never a vCPU.
 */
int vu_session__freeze(struct vu_session *s, int timeout_ms);

/*
 * A restore's load: the session is frozen from now on, as vu_session__freeze
 * leaves it (a resuming activation keeps its positions, the backend gets no
 * ring), until vu_session__thaw. Never waits: the thread applies it before
 * any activation posted after it. From the main thread, before any vCPU ran.
 */
void vu_session__freeze_loaded(struct vu_session *s);

/*
 * Starts again what freeze stopped: a connected backend gets the rings back
 * from where they stopped (its GET_VRING_BASE), held kicks and interrupts go
 * out. Waits up to `timeout_ms` for the thread: 0 or -ETIMEDOUT (it thaws later).
 */
int vu_session__thaw(struct vu_session *s, int timeout_ms);

/*
 * A live migration's dirty log (guest_mem.h): `log_fd` (the session keeps a
 * duplicate) of `log_size` bytes starts the backend logging its writes to
 * guest RAM there; -1 stops it (SET_FEATURES without LOG_ALL, the rings
 * without flag LOG). Start: -ENOTSUP, naming the device and the backend, when
 * the backend (connected, else the last one seen) lacks protocol feature
 * LOG_SHMFD or feature VHOST_F_LOG_ALL; a backend failure is the link's, and
 * the start's (not logging). Without a backend it is kept for the next one.
 * Waits up to `timeout_ms` for the session's thread: -ETIMEDOUT (the request
 * stays posted; a later call supersedes it). From the migration's thread,
 * never a vCPU.
 */
int vu_session__dirty_log(struct vu_session *s, int log_fd, uint64_t log_size, int timeout_ms,
			  struct err *e);

/* A frozen session's rings for a snapshot: 0, or -EBUSY when the session is not frozen. */
int vu_session__frozen(struct vu_session *s, struct vu_session_frozen *out);

/* Whether the thread has yet to finish the last activation, reset or enable_queues. */
bool vu_session__settling(struct vu_session *s);

/* Waits up to `timeout_ms` until the thread finished what was posted: 0 or -ETIMEDOUT. */
int vu_session__wait_settled(struct vu_session *s, int timeout_ms);

/* Enables the backend's first `enabled` queues and disables the rest, now or at the next setup. */
void vu_session__enable_queues(struct vu_session *s, unsigned enabled);

/* Interrupts the guest for a local queue (its call eventfd). */
void vu_session__signal(struct vu_session *s, unsigned queue);

/*
 * Copies `len` bytes at `off` of the config space the last backend gave
 * (GET_CONFIG, config_size bytes): zeros before any backend and past the end.
 * Returns whether a backend's config was seen. Never waits on the backend.
 */
bool vu_session__config(struct vu_session *s, uint32_t off, void *buf, uint32_t len);

/* The last backend's GET_FEATURES: false before any backend was seen. Never waits on the backend. */
bool vu_session__backend_features(struct vu_session *s, uint64_t *features);

/* Waits up to `timeout_ms` for the link to be up: 0 or -ETIMEDOUT. */
int vu_session__wait_link(struct vu_session *s, int timeout_ms);

/* Records an error of the device itself as the last error (for the stop report). */
void vu_session__record_error(struct vu_session *s, const char *msg);

/* The counters and link state; from any thread, never waiting for backend I/O. */
void vu_session__stats(struct vu_session *s, struct vu_session_stats *st);

/* Writes "link up, backend connects 1, disconnects 0, failures 0, refused 0" (a stop report's start). */
void vu_session_stats__report(const struct vu_session_stats *st, FILE *out);

/*
 * What happens to the backend's I/O now: "served by the backend", "failed by
 * the monitor (backend away)", "waiting for the backend (...)".
 */
const char *vu_session_stats__io_state(const struct vu_session_stats *st);

/*
 * Puts the backend's link, connects, disconnects, failures, refusals, link changes and (when
 * known) features into `sink`: what every vhost-user device's counters begin with.
 */
void vu_session_stats__counters(const struct vu_session_stats *st, const struct counter_sink *sink);

#endif
