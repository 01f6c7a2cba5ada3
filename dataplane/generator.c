/*
 * rtvmm-dataplane gen: the traffic generator's DPDK part (gen.h). The EAL's main lcore is the
 * generator: one pinned thread (`dp-gen`) that paces frames out of its ports and counts its own
 * frames coming back, trial after trial, while the peer (a guest behind a vhost port, or a
 * vhost-user backend behind a virtio_user port) stays connected. With several ports the loop
 * takes them in turn, one per iteration: a burst out of port p, then one rx burst of port p;
 * frames count per port by the port they were sent from and the port they came back on.
 *
 * A frame: dst MAC, src MAC, EtherType, then (packed, little-endian) magic "RGEN", the
 * process's run id, the trial number, a sequence number and the TSC when it was handed to the
 * port; the rest of the frame is not written. A received frame counts for the running trial
 * when magic, run id and trial match (its round trip = rx TSC - tx TSC into the histogram);
 * a frame of an earlier trial is "late", anything else "foreign". MACs are not checked: a
 * loopback peer returns them as they were, a guest swaps them.
 *
 * Trial: reset; send for the trial time, rx polled between tx bursts; then drain (rx only)
 * until every frame the port took is back or drain_ms passed. Rate trials pace with the token
 * bucket and a frame the port refuses (ring full: the peer is not keeping up) is lost, like a
 * frame a NIC drops; the max trial retries refused frames (backpressure), so its offered rate
 * is what the peer took, as fast as it would take it.
 */
#include "dataplane/gen.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "dataplane/config.h"
#include "dataplane/dp.h"
#include "dataplane/log.h"
#include "dataplane/runtime.h"

#define GEN_MAGIC      0x4e454752u    /* "RGEN" in memory */
#define ETH_HLEN       14
#define PROBE_GAP_MS   10

struct gen_hdr {
	uint32_t magic;
	uint32_t run;
	uint32_t trial;
	uint64_t seq;
	uint64_t tsc;
} __attribute__((packed));

enum trial_kind { T_PROBE, T_WARMUP, T_MAX, T_SEARCH, T_RATE, T_LATENCY };

static const char *const kind_names[] = {
	[T_PROBE] = "probe", [T_WARMUP] = "warmup", [T_MAX] = "max", [T_SEARCH] = "search",
	[T_RATE] = "rate", [T_LATENCY] = "latency",
};

struct trial {
	enum trial_kind kind;
	const struct gen_size *size;
	double requested_pps;      /* 0: as fast as the port takes frames */
	double duration_s;
	const char *target;        /* search: "ndr" or "pdr" */
	double load_pct;           /* latency: % of the NDR (of the PDR when no NDR was found) */

	uint64_t offered;          /* frames handed to the port (rate trials: refused ones too) */
	uint64_t refused;          /* rate trials: the port did not take them (lost) */
	uint64_t received, late, foreign, nombuf, forfeited;
	uint64_t rx_bytes;         /* of received frames, FCS included */
	uint64_t port_offered[GEN_MAX_PORTS];    /* by the port it went out of */
	uint64_t port_received[GEN_MAX_PORTS];   /* by the port it came back on */
	double tx_s;               /* measured sending time */
	double drain_s;
	struct gen_hist_stats lat;
};

struct gen {
	struct dp *dp;
	const struct gen_config *g;
	uint16_t eth[GEN_MAX_PORTS];
	unsigned nr_ports;
	uint32_t run_id;
	uint32_t trial_id;
	uint64_t hz;
	uint8_t src[GEN_MAX_PORTS][6];
	uint64_t flow[GEN_MAX_PORTS];   /* frames a port sent in all (--macs: its next flow) */
	struct gen_hist hist;
	json_t *trials;
	unsigned nr_trials;
};

static bool stopping(const struct gen *G)
{
	return DP_READ(G->dp->stop) != 0;
}

/* Is the link of every port up? */
static bool link_up(const struct gen *G)
{
	struct rte_eth_link link;
	unsigned p;

	for (p = 0; p < G->nr_ports; p++) {
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(G->eth[p], &link) || link.link_status != RTE_ETH_LINK_UP)
			return false;
	}
	return true;
}

/*
 * Allocates and writes n frames of the running trial, to go out of port p, into m; returns n,
 * or 0 when the pool is empty.
 */
static unsigned build(struct gen *G, unsigned port, const struct gen_size *sz, struct rte_mbuf **m,
		      unsigned n, uint64_t *seq)
{
	const struct gen_config *g = G->g;
	unsigned i;

	if (rte_pktmbuf_alloc_bulk(G->dp->pool, m, n))
		return 0;
	for (i = 0; i < n; i++) {
		uint8_t *f = rte_pktmbuf_mtod(m[i], uint8_t *);
		struct gen_hdr h = {
			.magic = GEN_MAGIC, .run = G->run_id, .trial = G->trial_id, .seq = *seq,
		};
		uint16_t len = (uint16_t)(gen_size__at(sz, *seq) - GEN_FCS);

		(*seq)++;
		m[i]->data_len = len;
		m[i]->pkt_len = len;
		if (g->macs) {
			uint32_t k = (uint32_t)(G->flow[port] % g->macs);

			gen_mac__flow(f, port ^ 1, k);
			gen_mac__flow(f + 6, port, k);
		} else {
			memcpy(f, g->dst, 6);
			memcpy(f + 6, G->src[port], 6);
		}
		G->flow[port]++;
		f[12] = (uint8_t)(g->ethertype >> 8);
		f[13] = (uint8_t)g->ethertype;
		memcpy(f + ETH_HLEN, &h, sizeof(h));
	}
	return n;
}

/* Writes the send time into n frames. */
static inline void stamp(struct rte_mbuf **m, unsigned n, uint64_t tsc)
{
	unsigned i;

	for (i = 0; i < n; i++)
		memcpy(rte_pktmbuf_mtod_offset(m[i], uint8_t *, ETH_HLEN + offsetof(struct gen_hdr, tsc)),
		       &tsc, sizeof(tsc));
}

/* One rx burst of port p: counts and times the running trial's frames; returns frames received. */
static inline unsigned poll_rx(struct gen *G, struct trial *t, unsigned p)
{
	struct rte_mbuf *m[DP_BURST];
	uint16_t n = rte_eth_rx_burst(G->eth[p], 0, m, DP_BURST), i;
	uint64_t now;

	if (!n)
		return 0;
	now = rte_rdtsc();
	for (i = 0; i < n; i++) {
		struct gen_hdr h;

		if (m[i]->data_len >= ETH_HLEN + sizeof(h)) {
			memcpy(&h, rte_pktmbuf_mtod_offset(m[i], const uint8_t *, ETH_HLEN), sizeof(h));
			if (h.magic == GEN_MAGIC && h.run == G->run_id) {
				if (h.trial == G->trial_id) {
					t->received++;
					t->port_received[p]++;
					t->rx_bytes += m[i]->pkt_len + GEN_FCS;
					gen_hist__add(&G->hist, now > h.tsc ? now - h.tsc : 0);
				} else {
					t->late++;
				}
				continue;
			}
		}
		t->foreign++;
	}
	rte_pktmbuf_free_bulk(m, n);
	return n;
}

static void trial_reset(struct gen *G, struct trial *t)
{
	t->offered = t->refused = t->received = t->late = t->foreign = t->nombuf = 0;
	t->forfeited = t->rx_bytes = 0;
	memset(t->port_offered, 0, sizeof(t->port_offered));
	memset(t->port_received, 0, sizeof(t->port_received));
	t->tx_s = t->drain_s = 0;
	G->trial_id++;
	gen_hist__reset(&G->hist);
}

/*
 * Sends for t->duration_s (paced at t->requested_pps, or as fast as the port takes frames),
 * then drains. The generator reports a quiescent state to the RCU every loop iteration, so a
 * vhost port's link-down handler can wait for it as for a dataplane worker.
 */
static void send_and_count(struct gen *G, struct trial *t)
{
	struct rte_mbuf *pend[GEN_MAX_PORTS][DP_BURST];
	struct rte_rcu_qsbr *q = G->dp->qsbr;
	struct gen_bucket b;
	uint64_t seq = 0, start, end, now, drain_end, iter = 0;
	bool max = t->requested_pps <= 0;
	unsigned np[GEN_MAX_PORTS] = { 0 }, p;

	rte_rcu_qsbr_thread_online(q, 0);
	start = rte_rdtsc();
	end = start + (uint64_t)(t->duration_s * (double)G->hz);
	gen_bucket__init(&b, start, t->requested_pps, G->hz, 2 * DP_BURST);
	while ((now = rte_rdtsc()) < end && !stopping(G)) {
		struct rte_mbuf **pp;
		unsigned want, k;

		p = (unsigned)(iter++ % G->nr_ports);
		pp = pend[p];
		rte_rcu_qsbr_quiescent(q, 0);
		want = max ? DP_BURST - np[p] : gen_bucket__take(&b, now, DP_BURST);
		if (want) {
			k = build(G, p, t->size, pp + np[p], want, &seq);
			if (!k)
				t->nombuf += want;
			np[p] += k;
			if (!max) {
				t->offered += k;
				t->port_offered[p] += k;
			}
		}
		if (np[p]) {
			uint16_t sent;

			stamp(pp, np[p], rte_rdtsc());
			sent = rte_eth_tx_burst(G->eth[p], 0, pp, (uint16_t)np[p]);
			if (max) {
				t->offered += sent;
				t->port_offered[p] += sent;
				memmove(pp, pp + sent, sizeof(pp[0]) * (np[p] - sent));
				np[p] -= sent;
			} else {
				if (sent < np[p]) {
					rte_pktmbuf_free_bulk(pp + sent, np[p] - sent);
					t->refused += np[p] - sent;
				}
				np[p] = 0;
			}
		}
		poll_rx(G, t, p);
	}
	t->tx_s = (double)(now - start) / (double)G->hz;
	t->forfeited = b.forfeited;
	for (p = 0; p < G->nr_ports; p++)
		if (np[p])
			rte_pktmbuf_free_bulk(pend[p], np[p]);

	/* Drain: everything the port took comes back, or drain_ms passes. */
	dp_log("gen: trial %u sent %lu", G->nr_trials, (unsigned long)t->offered);
	drain_end = now + (uint64_t)G->g->drain_ms * G->hz / 1000;
	while (t->received < t->offered - t->refused && (now = rte_rdtsc()) < drain_end &&
	       !stopping(G)) {
		rte_rcu_qsbr_quiescent(q, 0);
		poll_rx(G, t, (unsigned)(iter++ % G->nr_ports));
	}
	t->drain_s = (double)(rte_rdtsc() - start) / (double)G->hz - t->tx_s;
	rte_rcu_qsbr_thread_offline(q, 0);
	gen_hist__stats(&G->hist, &t->lat);
}

static double loss_pct(const struct trial *t)
{
	return t->offered ? 100.0 * ((double)t->offered - (double)t->received) / (double)t->offered
			  : 100.0;
}

static double offered_pps(const struct trial *t)
{
	return t->tx_s > 0 ? (double)t->offered / t->tx_s : 0;
}

static double rx_pps(const struct trial *t)
{
	return t->tx_s > 0 ? (double)t->received / t->tx_s : 0;
}

static json_t *latency_json(const struct trial *t)
{
	const struct gen_hist_stats *s = &t->lat;

	return json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)s->count,
			 "overflow", (json_int_t)s->overflow, "min", s->min, "avg", s->avg,
			 "p50", s->p50, "p99", s->p99, "p99_9", s->p99_9, "max", s->max);
}

/* Non-empty buckets as [[lower_us, count], ...]. */
static json_t *histogram_json(const struct gen *G)
{
	json_t *a = json_array();
	unsigned k;

	for (k = 0; k < G->hist.nr; k++)
		if (G->hist.bucket[k])
			json_array_append_new(a, json_pack("[I, I]", (json_int_t)k,
							   (json_int_t)G->hist.bucket[k]));
	return a;
}

/* Frames per port, by the port they went out of and the one they came back on. */
static json_t *ports_json(const struct gen *G, const struct trial *t)
{
	json_t *a = json_array();
	unsigned p;

	for (p = 0; p < G->nr_ports; p++)
		json_array_append_new(a, json_pack("{s:i, s:I, s:I, s:f}", "port", (int)p,
						   "offered", (json_int_t)t->port_offered[p],
						   "received", (json_int_t)t->port_received[p],
						   "rx_pps", t->tx_s > 0 ? (double)t->port_received[p] / t->tx_s
									 : 0.0));
	return a;
}

/* Runs one trial, logs it, appends it to the document; returns its loss in %. */
static double run_trial(struct gen *G, struct trial *t)
{
	json_t *o;
	double loss;
	bool limited;

	trial_reset(G, t);
	if (t->requested_pps > 0)
		dp_log("gen: trial %u start: %s, %s B, %.0f pps, %.2f s", G->nr_trials,
		       kind_names[t->kind], t->size->label, t->requested_pps, t->duration_s);
	else
		dp_log("gen: trial %u start: %s, %s B, max rate, %.2f s", G->nr_trials,
		       kind_names[t->kind], t->size->label, t->duration_s);
	send_and_count(G, t);
	loss = loss_pct(t);
	/* The generator could not offer the rate asked (it fell behind by more than 1 %). */
	limited = t->requested_pps > 0 && offered_pps(t) < 0.99 * t->requested_pps;
	dp_log("gen: trial %u done: offered %lu (%.3f Mpps) received %lu (%.3f Mpps) loss %.4f%% "
	       "late %lu; rtt us min/avg/p99/max %.1f/%.1f/%.0f/%.1f%s", G->nr_trials,
	       (unsigned long)t->offered, offered_pps(t) / 1e6, (unsigned long)t->received,
	       rx_pps(t) / 1e6, loss, (unsigned long)t->late, t->lat.min, t->lat.avg, t->lat.p99,
	       t->lat.max, limited ? " (generator fell behind)" : "");

	o = json_pack("{s:I, s:s, s:s, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, "
		      "s:f, s:f, s:f, s:f, s:b, s:o}",
		      "index", (json_int_t)G->nr_trials, "kind", kind_names[t->kind],
		      "size", t->size->label, "avg_frame", t->size->avg,
		      "requested_pps", t->requested_pps, "duration_s", t->tx_s,
		      "offered", (json_int_t)t->offered, "refused", (json_int_t)t->refused,
		      "sent", (json_int_t)(t->offered - t->refused),
		      "received", (json_int_t)t->received, "loss_pct", loss,
		      "lost", (json_int_t)((int64_t)t->offered - (int64_t)t->received),
		      "late", (json_int_t)t->late, "foreign", (json_int_t)t->foreign,
		      "nombuf", (json_int_t)t->nombuf,
		      "offered_pps", offered_pps(t), "rx_pps", rx_pps(t),
		      "rx_gbps", t->tx_s > 0 ? (double)t->rx_bytes * 8 / t->tx_s / 1e9 : 0.0,
		      "drain_s", t->drain_s, "generator_limited", limited,
		      "latency_us", latency_json(t));
	if (o) {
		json_object_set_new(o, "forfeited", json_integer((json_int_t)t->forfeited));
		if (t->requested_pps <= 0)
			json_object_set_new(o, "requested_pps", json_null());
		if (t->target)
			json_object_set_new(o, "for", json_string(t->target));
		if (t->kind == T_LATENCY) {
			json_object_set_new(o, "load_pct", json_real(t->load_pct));
			json_object_set_new(o, "histogram", histogram_json(G));
		}
		if (G->nr_ports > 1)
			json_object_set_new(o, "ports", ports_json(G, t));
		json_array_append_new(G->trials, o);
	}
	G->nr_trials++;
	return loss;
}

/* Waits for the link, then (unless told not to) sends single frames until one comes back. */
static int probe(struct gen *G, json_t *doc)
{
	struct trial t = { .kind = T_PROBE, .size = &G->g->sizes[0] };
	uint64_t start = rte_rdtsc(), deadline = start + (uint64_t)(G->g->link_timeout_s * G->hz);
	uint64_t seq = 0, link_at = 0;
	struct timespec gap = { .tv_nsec = PROBE_GAP_MS * 1000 * 1000 };
	unsigned p, answered = 0;

	while (!link_up(G)) {
		if (rte_rdtsc() > deadline || stopping(G))
			return -ETIMEDOUT;
		nanosleep(&gap, NULL);
	}
	link_at = rte_rdtsc();
	json_object_set_new(doc, "link_up_after_s", json_real((double)(link_at - start) / G->hz));
	dp_log("gen: link up after %.3f s%s", (double)(link_at - start) / G->hz,
	       G->g->probe ? "; probing the peer" : "");
	if (!G->g->probe)
		return 0;
	trial_reset(G, &t);
	rte_rcu_qsbr_thread_online(G->dp->qsbr, 0);
	/*
	 * A probe out of every port each gap until every port has received one: through a
	 * switch a port's probe comes back on another port, so one that has its answer keeps
	 * probing for the others.
	 */
	while (answered < G->nr_ports && rte_rdtsc() < deadline && !stopping(G)) {
		uint64_t until = rte_rdtsc() + PROBE_GAP_MS * G->hz / 1000;

		for (p = 0; p < G->nr_ports; p++) {
			struct rte_mbuf *m;

			if (build(G, p, t.size, &m, 1, &seq) != 1)
				continue;
			stamp(&m, 1, rte_rdtsc());
			if (rte_eth_tx_burst(G->eth[p], 0, &m, 1) != 1)
				rte_pktmbuf_free(m);
			t.offered++;
		}
		while (answered < G->nr_ports && rte_rdtsc() < until) {
			rte_rcu_qsbr_quiescent(G->dp->qsbr, 0);
			for (p = 0, answered = 0; p < G->nr_ports; p++) {
				poll_rx(G, &t, p);
				answered += t.port_received[p] != 0;
			}
		}
	}
	rte_rcu_qsbr_thread_offline(G->dp->qsbr, 0);
	if (answered < G->nr_ports)
		return -ETIMEDOUT;
	json_object_set_new(doc, "peer_answered_after_s",
			    json_real((double)(rte_rdtsc() - link_at) / G->hz));
	json_object_set_new(doc, "probes", json_integer((json_int_t)t.offered));
	dp_log("gen: the peer answered probe %lu after %.3f s", (unsigned long)t.offered,
	       (double)(rte_rdtsc() - link_at) / G->hz);
	return 0;
}

/* Every trial of one frame size; appends the size's summary to `results`. */
static void run_size(struct gen *G, unsigned si, json_t *results)
{
	const struct gen_config *g = G->g;
	const struct gen_size *sz = &g->sizes[si];
	struct trial t;
	struct gen_search ndr, pdr;
	double top = g->rate_cap_pps, rate, ndr_pps = 0, pdr_pps = 0, base_pps;
	json_t *r = json_pack("{s:s, s:f}", "size", sz->label, "avg_frame", sz->avg);
	unsigned i, ndr_limited = 0;

	if (g->max_trial || (top <= 0 && (g->ndr || g->pdr))) {
		memset(&t, 0, sizeof(t));
		t.kind = T_MAX;
		t.size = sz;
		t.duration_s = g->trial_s;
		run_trial(G, &t);
		json_object_set_new(r, "max", json_pack("{s:f, s:f, s:f}", "offered_pps",
							 offered_pps(&t), "rx_pps", rx_pps(&t),
							 "loss_pct", loss_pct(&t)));
		if (top <= 0)
			top = offered_pps(&t);
	}
	if ((g->ndr || g->pdr) && top > 0) {
		gen_search__init(&ndr, top, 0, g->resolution_pct, g->iterations);
		gen_search__init(&pdr, top, g->pdr_loss_pct, g->resolution_pct, g->iterations);
		json_object_set_new(r, "search_top_pps", json_real(top));
		for (i = 0; i < 2 && !stopping(G); i++) {
			struct gen_search *s = i == 0 ? &ndr : &pdr;

			if ((i == 0 && !g->ndr) || (i == 1 && !g->pdr))
				continue;
			while (!stopping(G) && gen_search__next(s, &rate)) {
				double loss;

				memset(&t, 0, sizeof(t));
				t.kind = T_SEARCH;
				t.size = sz;
				t.duration_s = g->trial_s;
				t.requested_pps = rate;
				t.target = i == 0 ? "ndr" : "pdr";
				loss = run_trial(G, &t);
				if (i == 0)
					gen_search__update(&ndr, rate, loss);
				gen_search__update(&pdr, rate, loss);
				if (loss <= 0 && rate == gen_search__result(&ndr) &&
				    offered_pps(&t) < 0.99 * rate)
					ndr_limited = 1;
			}
		}
		if (g->ndr) {
			ndr_pps = gen_search__result(&ndr);
			json_object_set_new(r, "ndr_pps", json_real(ndr_pps));
			json_object_set_new(r, "ndr_trials", json_integer(ndr.iters));
			json_object_set_new(r, "ndr_range_pps", json_pack("[f, f]", ndr.lo, ndr.hi));
			json_object_set_new(r, "ndr_at_top", json_boolean(ndr_pps >= top));
			json_object_set_new(r, "ndr_generator_limited", json_boolean(ndr_limited));
		}
		if (g->pdr) {
			pdr_pps = gen_search__result(&pdr);
			json_object_set_new(r, "pdr_pps", json_real(pdr_pps));
			json_object_set_new(r, "pdr_loss_pct", json_real(pdr.lo_loss < 0 ? 0 : pdr.lo_loss));
			json_object_set_new(r, "pdr_trials", json_integer(pdr.iters));
			json_object_set_new(r, "pdr_range_pps", json_pack("[f, f]", pdr.lo, pdr.hi));
		}
	}
	for (i = 0; i < g->nr_rates && !stopping(G); i++) {
		memset(&t, 0, sizeof(t));
		t.kind = T_RATE;
		t.size = sz;
		t.duration_s = g->trial_s;
		t.requested_pps = g->rates[i];
		run_trial(G, &t);
	}
	if ((int)si == g->latency_size && g->nr_latency) {
		/* Loads are fractions of the NDR; on a host where no rate is loss-free (a noisy
		 * nested VM) of the PDR instead, as FD.io CSIT does, and the JSON says which. */
		base_pps = ndr_pps > 0 ? ndr_pps : pdr_pps;
		if (base_pps <= 0) {
			json_object_set_new(r, "latency_skipped", json_string(
				g->ndr || g->pdr ? "no NDR or PDR found (every search trial lost too much)"
						 : "latency trials need the NDR or PDR search (--search)"));
			dp_log("gen: no latency trials for %s B: no NDR or PDR", sz->label);
		} else {
			json_object_set_new(r, "latency_base", json_string(ndr_pps > 0 ? "ndr" : "pdr"));
			json_object_set_new(r, "latency_base_pps", json_real(base_pps));
			if (ndr_pps <= 0)
				dp_log("gen: no NDR for %s B: latency loads are %% of the PDR", sz->label);
		}
		for (i = 0; i < g->nr_latency && base_pps > 0 && !stopping(G); i++) {
			memset(&t, 0, sizeof(t));
			t.kind = T_LATENCY;
			t.size = sz;
			t.duration_s = g->latency_s > 0 ? g->latency_s : g->trial_s;
			t.requested_pps = base_pps * g->latency_pct[i] / 100.0;
			t.load_pct = g->latency_pct[i];
			run_trial(G, &t);
		}
	}
	json_array_append_new(results, r);
}

static json_t *config_json(const struct gen *G, const struct dp_config *c)
{
	const struct gen_config *g = G->g;
	json_t *sizes = json_array(), *lat = json_array(), *rates = json_array();
	char dst[18], src[18];
	unsigned i;

	for (i = 0; i < g->nr_sizes; i++)
		json_array_append_new(sizes, json_string(g->sizes[i].label));
	for (i = 0; i < g->nr_latency; i++)
		json_array_append_new(lat, json_real(g->latency_pct[i]));
	for (i = 0; i < g->nr_rates; i++)
		json_array_append_new(rates, json_real(g->rates[i]));
	snprintf(dst, sizeof(dst), "%02x:%02x:%02x:%02x:%02x:%02x", g->dst[0], g->dst[1], g->dst[2],
		 g->dst[3], g->dst[4], g->dst[5]);
	snprintf(src, sizeof(src), "%02x:%02x:%02x:%02x:%02x:%02x", G->src[0][0], G->src[0][1],
		 G->src[0][2], G->src[0][3], G->src[0][4], G->src[0][5]);
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:o, s:s, s:s, s:i, s:f, s:f, s:i, s:f, "
			 "s:b, s:b, s:b, s:f, s:f, s:i, s:f, s:o, s:o, s:s, s:f, s:i, s:i, s:s}",
			 "port", c->ports[0].target, "port_type", dp_port_kind_name(c->ports[0].kind),
			 "driver", G->dp->port[0].driver, "port_mode",
			 c->ports[0].client ? "client" : "server",
			 "lcore", (int)dp_config__main_lcore(c), "tsc_hz", (json_int_t)G->hz,
			 "sizes", sizes, "dst_mac", dst, "src_mac", src, "ethertype", g->ethertype,
			 "trial_s", g->trial_s, "warmup_s", g->warmup_s, "drain_ms", (int)g->drain_ms,
			 "link_timeout_s", g->link_timeout_s, "max_trial", g->max_trial,
			 "ndr", g->ndr, "pdr", g->pdr, "pdr_loss_pct", g->pdr_loss_pct,
			 "resolution_pct", g->resolution_pct, "iterations", (int)g->iterations,
			 "rate_cap_pps", g->rate_cap_pps, "rates_pps", rates, "latency_pct", lat,
			 "latency_size", g->nr_latency ? g->sizes[g->latency_size].label : "",
			 "latency_s", g->latency_s > 0 ? g->latency_s : g->trial_s,
			 "hist_bucket_us", 1, "hist_max_us", (int)g->hist_max_us,
			 "imix", "7:4:1 of 64/570/1518 B (simple IMIX), frame sizes include the FCS");
}

/* What several ports or address flows add to the configuration document. */
static void config_ports_json(const struct gen *G, const struct dp_config *c, json_t *cfg)
{
	json_t *ports;
	unsigned p;

	if (G->nr_ports > 1) {
		ports = json_array();
		for (p = 0; p < G->nr_ports; p++)
			json_array_append_new(ports, json_string(c->ports[p].target));
		json_object_set_new(cfg, "ports", ports);
		json_object_set_new(cfg, "spread", json_string("round-robin by burst, one port "
							       "per loop iteration"));
	}
	if (G->g->macs)
		json_object_set_new(cfg, "macs", json_integer(G->g->macs));
}

static int write_doc(const struct gen_config *g, json_t *doc)
{
	FILE *f = stdout;
	int rc;

	if (g->json[0] && strcmp(g->json, "-")) {
		f = fopen(g->json, "w");
		if (!f) {
			fprintf(stderr, DP_PROG ": gen: %s: %s\n", g->json, strerror(errno));
			return -errno;
		}
	}
	rc = json_dumpf(doc, f, JSON_INDENT(1));
	fputc('\n', f);
	if (f != stdout && fclose(f))
		rc = -errno;
	return rc;
}

/* Trials in order: probe, warm-up, then per size: max, NDR, PDR, fixed rates, latency. */
static int run_trials(struct gen *G, const struct dp_config *c, json_t *doc)
{
	const struct gen_config *g = G->g;
	json_t *results = json_array();
	struct trial t;
	unsigned si;
	int rc;

	json_object_set_new(doc, "results", results);
	rc = probe(G, doc);
	if (rc) {
		json_object_set_new(doc, "error", json_sprintf(
			"%s: no link%s within %.0f s (is the peer connected%s?)", c->ports[0].target,
			g->probe ? ", or no probe came back," : "", g->link_timeout_s,
			g->probe ? " and forwarding" : ""));
		dp_log("gen: %s", json_string_value(json_object_get(doc, "error")));
		return rc;
	}
	if (g->warmup_s > 0) {
		memset(&t, 0, sizeof(t));
		t.kind = T_WARMUP;
		t.size = &g->sizes[0];
		t.duration_s = g->warmup_s;
		run_trial(G, &t);
	}
	for (si = 0; si < g->nr_sizes && !stopping(G); si++) {
		if (!link_up(G)) {
			json_object_set_new(doc, "error", json_sprintf("%s: link went down",
								       c->ports[0].target));
			dp_log("gen: link went down: stopping");
			return -ENOLINK;
		}
		run_size(G, si, results);
	}
	return 0;
}

int dp_gen__run(const struct dp_config *c, const struct gen_config *g)
{
	struct gen G = { .g = g };
	struct dp_runtime rt;
	struct err e = { 0 };
	int status = 1, rc;
	json_t *doc, *cfg;
	unsigned p;

	if (dp_runtime__init(&rt, c, &e)) {
		fprintf(stderr, DP_PROG ": %s\n", e.msg);
		return 1;
	}

	/*
	 * 1. The runtime: the generator's lcore is the EAL's main lcore (this thread, pinned by
	 * the EAL); it polls the port itself, as worker 0 of the RCU state a vhost port's
	 * link-down handler waits for.
	 */
	if (dp_runtime__open(&rt, false, &e)) {
		fprintf(stderr, DP_PROG ": gen: %s\n", e.msg);
		goto out;
	}
	G.dp = rt.dp;
	pthread_setname_np(pthread_self(), "dp-gen");
	G.hz = G.dp->tsc_hz;
	G.run_id = (uint32_t)(rte_rdtsc() ^ ((uint64_t)getpid() << 16));

	/* 2. The histogram, the document. */
	if (gen_hist__init(&G.hist, g->hist_max_us, G.hz)) {
		fprintf(stderr, DP_PROG ": gen: out of memory for the histogram\n");
		goto out;
	}
	G.nr_ports = G.dp->nr_ports;
	for (p = 0; p < G.nr_ports; p++) {
		G.eth[p] = G.dp->port[p].eth;
		memcpy(G.src[p], g->src_set ? g->src : G.dp->port[p].mac, 6);
	}
	G.trials = json_array();
	doc = json_object();
	json_object_set_new(doc, "generator", json_string("rtvmm-dataplane gen " RTVMM_VERSION));
	cfg = config_json(&G, c);
	if (cfg)
		config_ports_json(&G, c, cfg);
	json_object_set_new(doc, "config", cfg);
	json_object_set_new(doc, "trials", G.trials);
	if (G.nr_ports > 1)
		dp_log("gen: ready: %u ports (%s ...), lcore %u, run id %08x", G.nr_ports,
		       c->ports[0].target, dp_config__main_lcore(c), G.run_id);
	else
		dp_log("gen: ready: port %s (%s), lcore %u, run id %08x", c->ports[0].target,
		       G.dp->port[0].driver, dp_config__main_lcore(c), G.run_id);

	/* 3. The trials. */
	rc = run_trials(&G, c, doc);
	json_object_set_new(doc, "interrupted", json_boolean(stopping(&G)));
	if (!json_object_get(doc, "error"))
		json_object_set_new(doc, "error", json_null());
	status = rc || stopping(&G) ? 1 : 0;
	if (write_doc(g, doc))
		status = 1;
	json_decref(doc);

out:
	gen_hist__free(&G.hist);
	dp_runtime__close(&rt);
	return status;
}
