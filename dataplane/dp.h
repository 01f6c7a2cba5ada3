/*
 * The running dataplane: ports (ethdevs), poll workers (one per lcore), the L2 table and the
 * counters the stats thread reads. One struct dp per process, built in a fixed order by
 * dp_runtime__open (runtime.c) for switch.c's dp_switch__run and generator.c's dp_gen__run.
 *
 * Threads (named so `top -H` shows the plan):
 *   dp-pollN   one per poll lcore N: rx burst 32 -> forward -> tx burst, nothing else
 *   dp-stats   housekeeping: rates every interval, MAC aging, link polling, the stats socket
 *   vhost-events / eal-intr-thread (DPDK's): guest connect/disconnect -> dp_port link events
 *   main       waits for SIGINT/SIGTERM (or polls too when its lcore is a poll lcore)
 *
 * Counters are plain 64-bit fields, each written by one worker only (relaxed stores, no
 * read-modify-write atomics), in the worker's own cache-aligned struct; readers sum them.
 */
#ifndef RTVMM_DATAPLANE_DP_H
#define RTVMM_DATAPLANE_DP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <rte_config.h>
#include <rte_common.h>
#include <rte_spinlock.h>

#include "dataplane/config.h"
#include "dataplane/l2.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_rcu_qsbr;

#define DP_MAX_RXQ (DP_MAX_PORTS * DP_MAX_QUEUES)

/* Counter update by its only writer: a plain add, published with a relaxed store. */
#define DP_COUNT(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define DP_READ(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct dp_qcnt {
	uint64_t pkts;
	uint64_t bytes;
	uint64_t dropped;          /* rx: no destination; tx: the PMD did not take them */
};

/* An rx queue a worker polls, and where its packets go. */
struct dp_rxq {
	uint16_t port;             /* dp port index */
	uint16_t queue;
	uint16_t eth;              /* ethdev port id */
	int16_t peer;              /* xconnect destination, -1 = none */
	struct dp_qcnt c;
	uint64_t spoofed;          /* l2switch: dropped, not the port's MAC as source */
	uint64_t unlearned;        /* l2switch: new source MAC over the port's cap (forwarded) */
};

/* How a worker transmits to one port. */
struct dp_txq {
	bool used;
	uint16_t queue;
	uint16_t eth;
	rte_spinlock_t *lock;      /* NULL when this worker is the queue's only user */
	struct dp_qcnt c;
};

struct dp;

struct dp_worker {
	struct dp *dp;
	unsigned index;            /* RCU thread id, position in dp->workers */
	unsigned lcore;
	pid_t tid;                 /* its thread (kernel tid), set when its placement is applied */
	unsigned nr_rxq;
	struct dp_rxq rxq[DP_MAX_RXQ];
	struct dp_txq txq[DP_MAX_PORTS];

	/* loop counters, written by this worker only */
	uint64_t loops __rte_cache_aligned;
	uint64_t busy_loops;
	uint64_t busy_cycles;      /* TSC cycles spent in iterations that moved packets */
	uint64_t flooded;          /* l2switch: frames sent to every other up port */
	uint64_t learned;          /* new MACs */
	uint64_t moved;            /* MACs seen on another port than before */
	bool running;

	/* l2switch scratch: frames waiting per destination port */
	uint16_t npend[DP_MAX_PORTS] __rte_cache_aligned;
	uint64_t pend_bytes[DP_MAX_PORTS];
	struct rte_mbuf *pend[DP_MAX_PORTS][DP_BURST];
} __rte_cache_aligned;

struct dp_port {
	uint16_t eth;              /* ethdev port id */
	unsigned nb_queues;        /* queue pairs configured */
	int peer;                  /* xconnect peer, -1 = none */
	int socket;                /* NUMA socket of the device, -1 unknown */
	bool lsc;                  /* the PMD raises link events (else the stats thread polls) */
	bool started;
	bool callback;             /* link event callback registered */
	uint8_t mac[6];
	char driver[32];
	uint64_t link_ups;         /* guest connects (vhost), link up transitions */
	uint64_t link_downs;
	int rx_lcore[DP_MAX_QUEUES];
	uint8_t txq_users[DP_MAX_QUEUES];
	rte_spinlock_t txq_lock[DP_MAX_QUEUES];
};

struct dp {
	const struct dp_config *cfg;
	enum dp_fwd fwd;
	unsigned nr_ports;
	/* read by every worker on every flood: one line, written only on link changes */
	uint8_t link_up[DP_MAX_PORTS] __rte_cache_aligned;
	int stop __rte_cache_aligned;
	struct dp_port port[DP_MAX_PORTS];
	struct rte_mempool *pool;
	struct l2_table l2;
	uint64_t l2_aged;
	uint64_t l2_flushed;
	struct rte_rcu_qsbr *qsbr; /* workers report a quiescent state every loop iteration */
	unsigned nr_workers;
	struct dp_worker *workers[DP_MAX_WORKERS];
	struct dp_worker *by_lcore[RTE_MAX_LCORE];
	uint64_t tsc_hz;
	uid_t service_uid;         /* the user it drops to (TRUST_NO_UID: none); may read stats */
	gid_t service_gid;         /* its group ((gid_t)-1: none) */
};

/*
 * Makes the directory of socket `path` (created 0700 for the service user, or checked: owner,
 * modes, ancestors); for a `server` socket also the path: removes a stale socket nobody
 * listens on; -EADDRINUSE when a process serves it, -EEXIST for another file.
 */
int dp_claim_socket_path(const struct dp *dp, const char *path, bool server, const char *what,
			 struct err *e);

/* ---- ports (port.c) ---- */

/* Probes and configures every port of dp->cfg (not started); -errno with e naming the port. */
int dp_ports__create(struct dp *dp, struct err *e);
int dp_ports__start(struct dp *dp, struct err *e);
/* Polls link state of ports that raise no link events (called by the stats thread). */
void dp_ports__poll_links(struct dp *dp);
void dp_ports__close(struct dp *dp);

/* ---- workers (worker.c) ---- */

/* Allocates the workers and RCU state, one per poll lcore (before ports: link events use it). */
int dp_workers__create(struct dp *dp, struct err *e);
/* Assigns (port, queue) pairs to workers and transmit queues to senders (after ports). */
int dp_workers__assign(struct dp *dp, struct err *e);
/* The lcore function (rte_eal_remote_launch); returns when dp->stop is set. */
int dp_worker__main(void *arg);
/*
 * Waits until every running worker has finished the loop iteration it was in: after it
 * returns, no worker is inside, or will enter, an rx/tx burst that started before the call.
 */
void dp_workers__quiesce(struct dp *dp);
void dp_workers__free(struct dp *dp);

#endif
