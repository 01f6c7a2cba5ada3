/*
 * Poll workers: one per poll lcore, each owning a fixed set of (port, rx queue) pairs and, per
 * destination port, one tx queue. The loop: report a quiescent state (RCU QSBR), then for each
 * owned rx queue: rx burst of 32, forward, tx burst, free what tx did not take (counted as
 * TX-dropped). No syscalls, locks or logging per packet; counters are plain stores into the
 * worker's own cache-aligned struct.
 *
 * Transmit queues: a tx queue has exactly one user when the port has as many queue pairs as
 * workers sending to it. When it has fewer (a 1-queue guest and 2 poll lcores in l2switch),
 * those workers share a queue under a per-burst spinlock, as OVS-DPDK does; the stats show
 * "shared" and the fix is more queue pairs.
 */
#include "dataplane/dp.h"
#include "dataplane/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>

#define ETH_HDR_LEN 14

int dp_workers__create(struct dp *dp, struct err *e)
{
	unsigned n = dp_config__nr_lcores(dp->cfg), l, k = 0;
	size_t sz;

	sz = rte_rcu_qsbr_get_memsize(n);
	dp->qsbr = rte_zmalloc("dp_qsbr", sz, RTE_CACHE_LINE_SIZE);
	if (!dp->qsbr)
		return err__set(e, -ENOMEM, "cannot allocate the RCU state for %u workers", n);
	if (rte_rcu_qsbr_init(dp->qsbr, n))
		return err__set(e, -EINVAL, "rte_rcu_qsbr_init(%u) failed", n);
	for (l = 0; l < CPU_SETSIZE && k < n; l++) {
		struct dp_worker *w;

		if (!CPU_ISSET(l, &dp->cfg->lcores))
			continue;
		if (l >= RTE_MAX_LCORE || !rte_lcore_is_enabled(l))
			return err__set(e, -EINVAL, "lcore %u is not enabled in the EAL", l);
		w = rte_zmalloc_socket("dp_worker", sizeof(*w), RTE_CACHE_LINE_SIZE,
				       (int)rte_lcore_to_socket_id(l));
		if (!w)
			return err__set(e, -ENOMEM, "cannot allocate worker state for lcore %u", l);
		w->dp = dp;
		w->index = k;
		w->lcore = l;
		if (rte_rcu_qsbr_thread_register(dp->qsbr, k))
			return err__set(e, -EINVAL, "rte_rcu_qsbr_thread_register(%u) failed", k);
		dp->workers[k++] = w;
		dp->by_lcore[l] = w;
		dp->nr_workers = k;
	}
	return 0;
}

void dp_workers__free(struct dp *dp)
{
	unsigned i;

	for (i = 0; i < dp->nr_workers; i++) {
		if (dp->workers[i])
			dp->by_lcore[dp->workers[i]->lcore] = NULL;
		rte_free(dp->workers[i]);
		dp->workers[i] = NULL;
	}
	dp->nr_workers = 0;
	rte_free(dp->qsbr);
	dp->qsbr = NULL;
}

/* Does a frame received on rxq r go (or may it go) to port p? */
static bool sends_to(const struct dp *dp, const struct dp_rxq *r, unsigned p)
{
	return dp->fwd == DP_FWD_XCONNECT ? r->peer == (int)p : r->port != p;
}

int dp_workers__assign(struct dp *dp, struct err *e)
{
	unsigned n = dp->nr_workers, k = 0, maxq = 0, p, q, i, j;

	if (!n)
		return err__set(e, -EINVAL, "no workers");
	for (p = 0; p < dp->nr_ports; p++)
		if (dp->port[p].nb_queues > maxq)
			maxq = dp->port[p].nb_queues;

	/* rx: queue 0 of every port first, then queue 1, ..., dealt round-robin to workers */
	for (q = 0; q < maxq; q++) {
		for (p = 0; p < dp->nr_ports; p++) {
			struct dp_worker *w;
			struct dp_rxq *r;

			if (q >= dp->port[p].nb_queues)
				continue;
			w = dp->workers[k++ % n];
			r = &w->rxq[w->nr_rxq++];
			r->port = (uint16_t)p;
			r->queue = (uint16_t)q;
			r->eth = dp->port[p].eth;
			r->peer = (int16_t)(dp->fwd == DP_FWD_XCONNECT ? dp->port[p].peer : -1);
			dp->port[p].rx_lcore[q] = (int)w->lcore;
		}
	}

	/* tx: the workers that may send to port p get its queues in turn */
	for (p = 0; p < dp->nr_ports; p++) {
		unsigned senders = 0;

		for (i = 0; i < n; i++) {
			struct dp_worker *w = dp->workers[i];
			bool sends = false;

			for (j = 0; j < w->nr_rxq && !sends; j++)
				sends = sends_to(dp, &w->rxq[j], p);
			if (!sends)
				continue;
			q = senders++ % dp->port[p].nb_queues;
			w->txq[p].used = true;
			w->txq[p].queue = (uint16_t)q;
			w->txq[p].eth = dp->port[p].eth;
			dp->port[p].txq_users[q]++;
		}
		for (i = 0; i < n; i++) {
			struct dp_txq *t = &dp->workers[i]->txq[p];

			if (t->used && dp->port[p].txq_users[t->queue] > 1)
				t->lock = &dp->port[p].txq_lock[t->queue];
		}
		if (senders > dp->port[p].nb_queues)
			dp_log("port %u (%s): %u workers send to %u tx queue(s): they share them under "
			       "a per-burst spinlock (give it %u queue pairs to avoid that)", p,
			       dp->cfg->ports[p].name, senders, dp->port[p].nb_queues, senders);
		if (dp->fwd == DP_FWD_XCONNECT && dp->port[p].peer < 0)
			dp_log("port %u (%s): no xconnect peer: frames it receives are dropped "
			       "(RX-dropped)", p, dp->cfg->ports[p].name);
	}
	return 0;
}

void dp_workers__quiesce(struct dp *dp)
{
	uint64_t token;

	if (!dp->qsbr)
		return;
	token = rte_rcu_qsbr_start(dp->qsbr);
	(void)rte_rcu_qsbr_check(dp->qsbr, token, true);
}

/* Sends n frames (bytes in all) to port p on this worker's tx queue; drops and counts the rest. */
static inline void send_burst(struct dp_worker *w, unsigned p, struct rte_mbuf **pkts, uint16_t n,
			      uint64_t bytes)
{
	struct dp_txq *t = &w->txq[p];
	uint16_t sent, k;

	if (unlikely(!t->used)) {
		rte_pktmbuf_free_bulk(pkts, n);
		DP_COUNT(t->c.dropped, n);
		return;
	}
	if (t->lock)
		rte_spinlock_lock(t->lock);
	sent = rte_eth_tx_burst(t->eth, t->queue, pkts, n);
	if (t->lock)
		rte_spinlock_unlock(t->lock);
	if (unlikely(sent < n)) {
		for (k = sent; k < n; k++)
			bytes -= pkts[k]->pkt_len;
		rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
		DP_COUNT(t->c.dropped, n - sent);
	}
	DP_COUNT(t->c.pkts, sent);
	DP_COUNT(t->c.bytes, bytes);
}

/* xconnect: everything from the rx queue goes to the peer port. */
static inline void fwd_xconnect(struct dp_worker *w, struct dp_rxq *r, struct rte_mbuf **pkts,
				uint16_t n, uint64_t bytes)
{
	if (unlikely(r->peer < 0)) {
		rte_pktmbuf_free_bulk(pkts, n);
		DP_COUNT(r->c.dropped, n);
		return;
	}
	send_burst(w, (unsigned)r->peer, pkts, n, bytes);
}

static inline void pend(struct dp_worker *w, unsigned p, struct rte_mbuf *m, uint16_t *touched,
			unsigned *nt)
{
	if (!w->npend[p]) {
		touched[(*nt)++] = (uint16_t)p;
		w->pend_bytes[p] = 0;
	}
	w->pend[p][w->npend[p]++] = m;
	w->pend_bytes[p] += m->pkt_len;
}

/*
 * l2switch: learn the source MAC on the ingress port; unicast to the learned port; flood
 * broadcast, multicast and unknown unicast to every other port whose link is up (the mbuf's
 * reference count covers the copies); frames for a MAC on the ingress port are filtered.
 */
static inline void fwd_l2(struct dp *dp, struct dp_worker *w, struct dp_rxq *r,
			  struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t touched[DP_MAX_PORTS];
	uint32_t now = DP_READ(dp->l2.now), up = 0;
	unsigned nt = 0, i, p, nup;
	uint64_t dropped = 0, learned = 0, moved = 0, flooded = 0, spoofed = 0, unlearned = 0;

	for (p = 0; p < dp->nr_ports; p++)
		if (p != r->port && DP_READ(dp->link_up[p]))
			up |= 1u << p;
	nup = (unsigned)__builtin_popcount(up);

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const uint8_t *eth;
		int dst;

		if (i + 2 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 2], void *));
		if (unlikely(m->data_len < ETH_HDR_LEN)) {
			rte_pktmbuf_free(m);
			dropped++;
			continue;
		}
		eth = rte_pktmbuf_mtod(m, const uint8_t *);
		switch (l2_table__learn(&dp->l2, l2_mac(eth + 6), r->port, now)) {
		case L2_KNOWN:
		case L2_IGNORED:
			break;
		case L2_SPOOFED:
			rte_pktmbuf_free(m);
			dropped++;
			spoofed++;
			continue;
		case L2_CAPPED:
			unlearned++;
			break;
		case L2_MOVED:
			moved++;
			break;
		case L2_NEW:
		case L2_REPLACED:
			learned++;
			break;
		}
		dst = (eth[0] & 1) ? -1 : l2_table__lookup(&dp->l2, l2_mac(eth));
		if (dst >= 0 && (unsigned)dst < dp->nr_ports) {
			if (unlikely(dst == r->port)) {
				rte_pktmbuf_free(m);
				dropped++;
			} else {
				pend(w, (unsigned)dst, m, touched, &nt);
			}
			continue;
		}
		if (unlikely(!nup)) {
			rte_pktmbuf_free(m);
			dropped++;
			continue;
		}
		if (nup > 1)
			rte_mbuf_refcnt_update(m, (int16_t)(nup - 1));
		for (p = 0; p < dp->nr_ports; p++)
			if (up & (1u << p))
				pend(w, p, m, touched, &nt);
		flooded++;
	}
	for (i = 0; i < nt; i++) {
		p = touched[i];
		send_burst(w, p, w->pend[p], w->npend[p], w->pend_bytes[p]);
		w->npend[p] = 0;
	}
	if (dropped)
		DP_COUNT(r->c.dropped, dropped);
	if (unlikely(spoofed | unlearned)) {
		DP_COUNT(r->spoofed, spoofed);
		DP_COUNT(r->unlearned, unlearned);
	}
	if (unlikely(learned | moved)) {
		DP_COUNT(w->learned, learned);
		DP_COUNT(w->moved, moved);
	}
	if (flooded)
		DP_COUNT(w->flooded, flooded);
}

static inline unsigned poll_rxq(struct dp *dp, struct dp_worker *w, struct dp_rxq *r)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint64_t bytes = 0;
	uint16_t n, i;

	n = rte_eth_rx_burst(r->eth, r->queue, pkts, DP_BURST);
	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		bytes += pkts[i]->pkt_len;
	DP_COUNT(r->c.pkts, n);
	DP_COUNT(r->c.bytes, bytes);
	if (dp->fwd == DP_FWD_XCONNECT)
		fwd_xconnect(w, r, pkts, n, bytes);
	else
		fwd_l2(dp, w, r, pkts, n);
	return n;
}

int dp_worker__main(void *arg)
{
	struct dp *dp = arg;
	struct dp_worker *w = dp->by_lcore[rte_lcore_id()];
	char name[16];

	if (!w)
		return 0;
	snprintf(name, sizeof(name), "dp-poll%u", w->lcore);
	pthread_setname_np(pthread_self(), name);
	rte_rcu_qsbr_thread_online(dp->qsbr, w->index);
	__atomic_store_n(&w->running, true, __ATOMIC_RELAXED);

	while (likely(!DP_READ(dp->stop))) {
		uint64_t t0 = rte_rdtsc();
		unsigned moved = 0, i;

		/* Nothing from earlier iterations is in use past this point (dp_workers__quiesce). */
		rte_rcu_qsbr_quiescent(dp->qsbr, w->index);
		for (i = 0; i < w->nr_rxq; i++)
			moved += poll_rxq(dp, w, &w->rxq[i]);
		DP_COUNT(w->loops, 1);
		if (moved) {
			DP_COUNT(w->busy_loops, 1);
			DP_COUNT(w->busy_cycles, rte_rdtsc() - t0);
		}
	}

	rte_rcu_qsbr_thread_offline(dp->qsbr, w->index);
	__atomic_store_n(&w->running, false, __ATOMIC_RELAXED);
	return 0;
}
