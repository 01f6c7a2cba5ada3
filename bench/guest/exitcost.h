/*
 * Exit-cost timing loop (exitcost_loop.S) and its statistics, shared by the
 * bare-metal guest (test=exitcost, test_exitcost.c) and the raw-KVM floor
 * program (bench/kvm_floor.c): both run the same instruction bytes and
 * reduce the samples with the same code, so their figures compare exactly.
 *
 * Freestanding: usable from assembly (the #defines), from the guest (no
 * libc) and from host C.
 */
#ifndef RTVMM_BENCH_EXITCOST_H
#define RTVMM_BENCH_EXITCOST_H

/* struct exitcost_args, shared with exitcost_loop.S */
#define EC_SAMPLES  0    /* uint32_t *: one TSC delta per round trip */
#define EC_COUNT    8    /* round trips */
#define EC_ADDR     16   /* port (pio) or address (mmio) */
#define EC_KIND     24
#define EC_EXPECT   28   /* the value every read must return */

#define EXITCOST_NONE  0   /* the loop without the access: what the timing itself costs */
#define EXITCOST_PIO   1   /* inl from a port */
#define EXITCOST_MMIO  2   /* 32-bit load from an unbacked guest-physical address */

/* Registers of the rtvmm test device the loop reads: constant, no side effect, no lock. */
#define EXITCOST_PORT_OFF   0xC   /* TESTDEV_PIO_MAGIC */
#define EXITCOST_MMIO_OFF   0x0   /* TESTDEV_MMIO_MAGIC */
#define EXITCOST_MAGIC      0x52545654u

#define EXITCOST_HIST       40    /* log2 buckets: [2^i, 2^(i+1)) ns, bucket 0 also holds 0 */
#define EXITCOST_HIST_PER_LINE 8  /* "ns:count" pairs per printed hist line (the guest's lines are short) */

#ifndef __ASSEMBLER__
#include <stdint.h>

struct exitcost_args {
	uint32_t *samples;
	uint64_t count;
	uint64_t addr;
	uint32_t kind;
	uint32_t expect;
};
_Static_assert(__builtin_offsetof(struct exitcost_args, samples) == EC_SAMPLES &&
	       __builtin_offsetof(struct exitcost_args, count) == EC_COUNT &&
	       __builtin_offsetof(struct exitcost_args, addr) == EC_ADDR &&
	       __builtin_offsetof(struct exitcost_args, kind) == EC_KIND &&
	       __builtin_offsetof(struct exitcost_args, expect) == EC_EXPECT, "exitcost_loop.S offsets");

/*
 * exitcost_loop.S: `count` round trips of `kind`, each timed alone with
 * rdtsc right before and right after the access; returns how many reads did
 * not return `expect`. Position independent (copied into the floor's VM).
 * Code bytes [exitcost_run, exitcost_run_end) are what both programs hash.
 */
uint64_t exitcost_run(const struct exitcost_args *a);
extern const uint8_t exitcost_run_end[];

/* Statistics of one run, in ns. */
struct exitcost_stats {
	uint64_t n, min, avg, p50, p99, max;
	uint32_t hist[EXITCOST_HIST];
};

#define EXITCOST_INLINE static inline __attribute__((always_inline))

EXITCOST_INLINE void exitcost_sift(uint32_t *a, uint64_t root, uint64_t n)
{
	for (;;) {
		uint64_t c = 2 * root + 1;
		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[root] >= a[c])
			return;
		uint32_t t = a[root];
		a[root] = a[c];
		a[c] = t;
		root = c;
	}
}

/* Nearest-rank percentile (P in per mille) of sorted A[0..N). */
EXITCOST_INLINE uint32_t exitcost_rank(const uint32_t *a, uint64_t n, uint64_t permille)
{
	uint64_t k = (n * permille + 999) / 1000;
	return a[k ? k - 1 : 0];
}

EXITCOST_INLINE uint64_t exitcost_ns(uint64_t cycles, uint64_t khz)
{
	return cycles * 1000000 / khz;
}

/*
 * Sorts the TSC deltas S[0..N) in place (heapsort: no recursion, no calls)
 * and fills OUT in ns at KHZ (TSC kHz). Inline only, so that the guest can run it
 * at CPL3 (native on the nested development host, CPL0 is emulated).
 */
EXITCOST_INLINE void exitcost_reduce(uint32_t *s, uint64_t n, uint64_t khz, struct exitcost_stats *out)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < EXITCOST_HIST; i++)
		out->hist[i] = 0;
	out->n = n;
	out->min = out->avg = out->p50 = out->p99 = out->max = 0;
	if (!n || !khz)
		return;
	for (uint64_t i = n / 2; i-- > 0;)
		exitcost_sift(s, i, n);
	for (uint64_t end = n - 1; end > 0; end--) {
		uint32_t t = s[0];
		s[0] = s[end];
		s[end] = t;
		exitcost_sift(s, 0, end);
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t ns = exitcost_ns(s[i], khz);
		unsigned b = 0;
		sum += ns;
		while (b + 1 < EXITCOST_HIST && ns >> (b + 1))
			b++;
		out->hist[b]++;
	}
	out->min = exitcost_ns(s[0], khz);
	out->max = exitcost_ns(s[n - 1], khz);
	out->avg = sum / n;
	out->p50 = exitcost_ns(exitcost_rank(s, n, 500), khz);
	out->p99 = exitcost_ns(exitcost_rank(s, n, 990), khz);
}

/* FNV-1a of the loop's code bytes: both programs print it, so a run shows they timed the same code. */
EXITCOST_INLINE uint32_t exitcost_code_hash(const uint8_t *p, const uint8_t *end)
{
	uint32_t h = 2166136261u;
	while (p < end)
		h = (h ^ *p++) * 16777619u;
	return h;
}
#endif /* __ASSEMBLER__ */
#endif
