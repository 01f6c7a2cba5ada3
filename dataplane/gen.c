/* The generator's pure parts (gen.h): size mixes, flow MACs, pacing, the histogram, the search. */
#include "dataplane/gen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Simple IMIX 7:4:1 of 64/570/1518, the 12 frames of a round interleaved. */
static const uint16_t imix_round[GEN_MIX_LEN] = {
	64, 570, 64, 1518, 64, 570, 64, 64, 570, 64, 570, 64,
};

int gen_size__parse(const char *arg, struct gen_size *s, struct err *e)
{
	char *end;
	unsigned long v;
	unsigned i, sum = 0;

	memset(s, 0, sizeof(*s));
	if (!strcmp(arg, "imix")) {
		snprintf(s->label, sizeof(s->label), "imix");
		s->n = GEN_MIX_LEN;
		memcpy(s->round, imix_round, sizeof(imix_round));
	} else {
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno || end == arg || *end || *arg == '-' || v < GEN_FRAME_MIN ||
		    v > GEN_FRAME_MAX)
			return err__set(e, -EINVAL, "--sizes %s: a frame size is %u..%u (bytes, FCS "
					"included) or imix", arg, GEN_FRAME_MIN, GEN_FRAME_MAX);
		snprintf(s->label, sizeof(s->label), "%lu", v);
		s->n = 1;
		s->round[0] = (uint16_t)v;
	}
	for (i = 0; i < s->n; i++)
		sum += s->round[i];
	s->avg = (double)sum / s->n;
	return 0;
}

void gen_mac__flow(uint8_t mac[6], unsigned port, uint32_t k)
{
	mac[0] = 0x02;
	mac[1] = 0;
	mac[2] = (uint8_t)port;
	mac[3] = (uint8_t)(k >> 16);
	mac[4] = (uint8_t)(k >> 8);
	mac[5] = (uint8_t)k;
}

void gen_bucket__init(struct gen_bucket *b, uint64_t now, double rate_pps, uint64_t tsc_hz,
		      unsigned depth)
{
	memset(b, 0, sizeof(*b));
	b->t0 = now;
	b->per_cycle = rate_pps / (double)tsc_hz;
	b->depth = depth ? depth : 1;
}

unsigned gen_bucket__take(struct gen_bucket *b, uint64_t now, unsigned max)
{
	uint64_t due, ready;

	if (now <= b->t0)
		return 0;
	due = (uint64_t)((double)(now - b->t0) * b->per_cycle);
	if (due <= b->granted)
		return 0;
	ready = due - b->granted;
	if (ready > b->depth) {            /* fell behind: forfeit what a burst cannot catch up */
		b->forfeited += ready - b->depth;
		b->granted += ready - b->depth;
		ready = b->depth;
	}
	if (ready > max)
		ready = max;
	b->granted += ready;
	return (unsigned)ready;
}

int gen_hist__init(struct gen_hist *h, unsigned max_us, uint64_t tsc_hz)
{
	memset(h, 0, sizeof(*h));
	h->nr = max_us ? max_us : 1;
	h->cycles_per_us = (double)tsc_hz / 1e6;
	h->bucket = calloc(h->nr, sizeof(*h->bucket));
	if (!h->bucket)
		return -ENOMEM;
	gen_hist__reset(h);
	return 0;
}

void gen_hist__reset(struct gen_hist *h)
{
	memset(h->bucket, 0, sizeof(*h->bucket) * h->nr);
	h->count = h->overflow = h->sum = h->max = 0;
	h->min = UINT64_MAX;
}

void gen_hist__free(struct gen_hist *h)
{
	free(h->bucket);
	h->bucket = NULL;
}

/* The lower edge (us) of the bucket holding the sample of rank ceil(p/100 * count). */
static double percentile(const struct gen_hist *h, double p)
{
	uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999), acc = 0;
	unsigned k;

	if (rank < 1)
		rank = 1;
	for (k = 0; k < h->nr; k++) {
		acc += h->bucket[k];
		if (acc >= rank)
			return k;
	}
	return h->nr;
}

void gen_hist__stats(const struct gen_hist *h, struct gen_hist_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->count = h->count;
	s->overflow = h->overflow;
	if (!h->count)
		return;
	s->min = (double)h->min / h->cycles_per_us;
	s->max = (double)h->max / h->cycles_per_us;
	s->avg = (double)h->sum / (double)h->count / h->cycles_per_us;
	s->p50 = percentile(h, 50);
	s->p99 = percentile(h, 99);
	s->p99_9 = percentile(h, 99.9);
}

void gen_search__init(struct gen_search *s, double max_pps, double loss_pct,
		      double resolution_pct, unsigned max_iters)
{
	memset(s, 0, sizeof(*s));
	s->max_pps = max_pps;
	s->loss_pct = loss_pct;
	s->resolution_pct = resolution_pct;
	s->max_iters = max_iters ? max_iters : 1;
	s->lo = 0;
	s->hi = max_pps;
	s->lo_loss = -1;
}

bool gen_search__next(struct gen_search *s, double *rate_pps)
{
	if (s->iters >= s->max_iters || s->max_pps <= 0)
		return false;
	if (!s->top_tried) {
		*rate_pps = s->hi;
	} else {
		if (s->lo >= s->hi || s->hi - s->lo <= s->resolution_pct / 100.0 * s->max_pps)
			return false;
		*rate_pps = (s->lo + s->hi) / 2;
	}
	s->iters++;
	return true;
}

void gen_search__update(struct gen_search *s, double rate_pps, double loss_pct)
{
	bool pass = loss_pct <= s->loss_pct;

	if (rate_pps >= s->max_pps) {      /* a trial at (or above) the top */
		s->top_tried = true;
		s->applied++;
		if (pass) {
			s->lo = s->hi = s->max_pps;
			s->lo_loss = loss_pct;
		} else {
			s->hi = s->max_pps;
		}
		return;
	}
	if (rate_pps < s->lo || rate_pps > s->hi)
		return;                    /* outside the range: it cannot narrow it */
	s->applied++;
	if (pass) {
		s->lo = rate_pps;
		s->lo_loss = loss_pct;
	} else {
		s->hi = rate_pps;
	}
}

double gen_search__result(const struct gen_search *s)
{
	return s->lo;
}

void gen_config__init(struct gen_config *g)
{
	struct err e;

	memset(g, 0, sizeof(*g));
	(void)gen_size__parse("64", &g->sizes[0], &e);
	g->nr_sizes = 1;
	memcpy(g->dst, (const uint8_t[6]){ 0x02, 0, 0, 0, 0, 0x02 }, 6);
	g->ethertype = 0x88b6;
	g->trial_s = 1.0;
	g->warmup_s = 1.0;
	g->drain_ms = 200;
	g->link_timeout_s = 30;
	g->probe = true;
	g->max_trial = true;
	g->ndr = g->pdr = true;
	g->pdr_loss_pct = 0.5;
	g->resolution_pct = 1.0;
	g->iterations = 10;
	g->hist_max_us = 10000;
}
