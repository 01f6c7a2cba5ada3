/*
 * The traffic generator (`rtvmm-dataplane gen`, README.md "Traffic generator"): one pinned poll
 * lcore sends frames on one port, or round-robin on up to GEN_MAX_PORTS ports, at a paced rate
 * and counts its own frames coming back (per port), with a round-trip time per frame. Many trials run in one process: a max-rate trial, an RFC 2544
 * binary search for NDR and PDR per frame size, fixed-rate and fixed-load latency trials.
 *
 * This header has two halves. The pure part (gen.c, no DPDK, unit-tested on its own): frame
 * size mixes (IMIX), token-bucket pacing on the TSC, the latency histogram and the search.
 * The DPDK part (generator.c): the lcore loop, the trial plan and the JSON document.
 */
#ifndef RTVMM_DATAPLANE_GEN_H
#define RTVMM_DATAPLANE_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

#define GEN_MAX_SIZES      8
#define GEN_MIX_LEN        12      /* frames in one round of a size mix */
#define GEN_MAX_RATES      16
#define GEN_MAX_LATENCY    8
#define GEN_FRAME_MIN      64      /* frame sizes count the 4-byte FCS, as RFC 2544 does */
#define GEN_FRAME_MAX      1518
#define GEN_FCS            4
#define GEN_MAX_PORTS      32
#define GEN_MAX_MACS       (1u << 24)

/* ---- frame sizes ---- */

/*
 * A frame size or a mix of sizes, sent in a fixed round of `n` frames. "imix" is the simple
 * IMIX 7:4:1 of 64, 570 and 1518 B, interleaved (64 570 64 1518 64 570 ...), average 353.8 B.
 */
struct gen_size {
	char label[16];            /* "64", "imix" */
	unsigned n;
	uint16_t round[GEN_MIX_LEN];
	double avg;                /* average frame size, FCS included */
};

/* Parses "64".."1518" or "imix" into s; -EINVAL with e naming the value. */
int gen_size__parse(const char *arg, struct gen_size *s, struct err *e);

/* Size (FCS included) of the i-th frame sent. */
static inline unsigned gen_size__at(const struct gen_size *s, uint64_t i)
{
	return s->round[i % s->n];
}

/* ---- address flows ---- */

/*
 * With --macs N the k-th frame a port sends (k = 0, 1, ...) is one of N flows: source
 * gen_mac__flow(port, k % N), destination gen_mac__flow(port ^ 1, k % N), so that two ports
 * facing each other through a learning switch teach it N MACs each and then hit them.
 * A flow MAC is locally administered unicast: 02:00:PORT:K2:K1:K0 (K: 24 bits).
 */
void gen_mac__flow(uint8_t mac[6], unsigned port, uint32_t k);

/* ---- pacing ---- */

/*
 * A token bucket on the TSC: frames are due at t0 + k / rate; gen_bucket__take grants the ones
 * due now, at most `max` at a time. Credit beyond `depth` frames (the sender fell behind: it
 * was preempted, or cannot go that fast) is forfeited and counted, never sent as a burst.
 */
struct gen_bucket {
	uint64_t t0;
	double per_cycle;          /* frames per TSC cycle */
	uint64_t granted;          /* frames granted since t0 (including forfeited ones) */
	uint64_t depth;
	uint64_t forfeited;
};

/* Starts pacing at `rate_pps` from TSC `now` (tsc_hz cycles a second). */
void gen_bucket__init(struct gen_bucket *b, uint64_t now, double rate_pps, uint64_t tsc_hz,
		      unsigned depth);
/* Frames that may be sent at TSC `now`, at most `max`. */
unsigned gen_bucket__take(struct gen_bucket *b, uint64_t now, unsigned max);

/* ---- latency histogram ---- */

/*
 * Round-trip times in 1 us buckets from 0 to max_us (default 10000), plus an overflow count;
 * min, max and the sum are exact (TSC cycles), percentiles are the lower edge of the bucket
 * that holds them (or max_us when they fall in the overflow).
 */
struct gen_hist {
	uint64_t *bucket;
	unsigned nr;               /* buckets of 1 us */
	double cycles_per_us;
	uint64_t count;
	uint64_t overflow;
	uint64_t min, max, sum;    /* cycles */
};

struct gen_hist_stats {
	uint64_t count, overflow;
	double min, avg, p50, p99, p99_9, max;   /* us */
};

/* Allocates max_us buckets for a tsc_hz TSC; -ENOMEM. */
int gen_hist__init(struct gen_hist *h, unsigned max_us, uint64_t tsc_hz);
/* Empties it (between trials). */
void gen_hist__reset(struct gen_hist *h);
/* Frees the buckets. */
void gen_hist__free(struct gen_hist *h);

/* Adds one round trip of `cycles`. */
static inline void gen_hist__add(struct gen_hist *h, uint64_t cycles)
{
	uint64_t k = (uint64_t)((double)cycles / h->cycles_per_us);

	if (k < h->nr)
		h->bucket[k]++;
	else
		h->overflow++;
	h->count++;
	h->sum += cycles;
	if (cycles < h->min)
		h->min = cycles;
	if (cycles > h->max)
		h->max = cycles;
}

/* min/avg/p50/p99/p99.9/max in us (all 0 when empty). */
void gen_hist__stats(const struct gen_hist *h, struct gen_hist_stats *s);

/* ---- RFC 2544 binary search ---- */

/*
 * The highest rate whose loss is at most `loss_pct` (0: NDR; 0.5: a PDR). The first trial is at
 * the top of the range (max_pps); then the range [lo, hi] is halved until it is narrower than
 * resolution_pct of max_pps or `max_iters` trials were run. A trial result applies to a search
 * only when its rate lies within the search's range, so one trial can serve the NDR and the PDR
 * search (the PDR search goes on from where the NDR trials left it) and noise never inverts a
 * range. The result is lo: the highest rate that passed (0 if none did).
 */
struct gen_search {
	double max_pps;
	double loss_pct;
	double resolution_pct;
	unsigned max_iters;
	double lo, hi;
	bool top_tried;
	unsigned iters;            /* trials this search asked for */
	unsigned applied;          /* trials whose result narrowed this search */
	double lo_loss;            /* loss at lo (-1: none passed yet) */
};

/* A search of [0, max_pps] for the highest rate losing at most loss_pct %. */
void gen_search__init(struct gen_search *s, double max_pps, double loss_pct,
		      double resolution_pct, unsigned max_iters);
/* The next rate to try; false when the search is done. */
bool gen_search__next(struct gen_search *s, double *rate_pps);
/* A trial at rate_pps lost loss_pct % of its frames. */
void gen_search__update(struct gen_search *s, double rate_pps, double loss_pct);
/* The highest rate that passed (0 when none did). */
double gen_search__result(const struct gen_search *s);

/* ---- the generator (generator.c, DPDK) ---- */

struct dp_config;

/* What `gen` is asked to do (port, lcore and EAL memory are in the dp_config). */
struct gen_config {
	struct gen_size sizes[GEN_MAX_SIZES];
	unsigned nr_sizes;
	uint8_t dst[6], src[6];
	bool src_set;              /* else the port's MAC */
	uint32_t macs;             /* flows per port (gen_mac__flow); 0: dst and src as above */
	uint16_t ethertype;
	double trial_s;            /* sending time of a trial */
	double warmup_s;           /* one max-rate trial before the first (0: none) */
	unsigned drain_ms;         /* after sending, wait for frames still in flight */
	double link_timeout_s;     /* link up and the first frame back */
	bool probe;                /* wait for a probe frame to come back before the first trial */
	bool max_trial;            /* a max-rate trial per size */
	bool ndr, pdr;
	double pdr_loss_pct;
	double resolution_pct;
	unsigned iterations;       /* trials per search at most */
	double rate_cap_pps;       /* top of the search range (0: the max trial's offered rate) */
	double rates[GEN_MAX_RATES];   /* fixed-rate trials, pps */
	unsigned nr_rates;
	double latency_pct[GEN_MAX_LATENCY];  /* fixed-load trials at these % of the NDR */
	unsigned nr_latency;
	int latency_size;          /* index in sizes of the latency trials' size */
	double latency_s;          /* duration of a latency trial (0: trial_s) */
	unsigned hist_max_us;
	char json[4096];           /* the result document ("" or "-": stdout) */
};

/* Defaults: 64 B, 1 s trials, probe, 1 s warm-up, 200 ms drain, max + NDR + PDR 0.5 %, 1 %, 10 trials. */
void gen_config__init(struct gen_config *g);

/* Runs the generator on dp_config c (its ports, one lcore); returns the exit status. */
int dp_gen__run(const struct dp_config *c, const struct gen_config *g);

#endif
