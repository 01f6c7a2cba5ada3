/*
 * The L2 switch's MAC table, shared by every poll worker without locks.
 *
 * Set-associative: a MAC hashes to one bucket of 8 ways; a bucket's keys fill one cache line,
 * so a lookup reads one line. A key packs the MAC (48 bits) and the port + 1 (16 bits) into one
 * 64-bit word (0 = empty), so readers never see a torn entry. Learning a MAC already known on
 * the same port writes nothing, except its last-seen second, and that at most once a second:
 * in steady state workers only read the table. A new MAC claims an empty way with one
 * compare-and-swap (new MACs, not packets, pay for it); a full bucket replaces its oldest way.
 * The housekeeping thread ages entries out and flushes a port whose guest went away.
 * Pure C (no DPDK), so it is tested on its own.
 */
#ifndef RTVMM_DATAPLANE_L2_H
#define RTVMM_DATAPLANE_L2_H

#include <stdbool.h>
#include <stdint.h>

#define L2_WAYS      8
#define L2_MAC_MASK  0xffffffffffffull

struct l2_bucket {
	uint64_t key[L2_WAYS];     /* mac | (port + 1) << 48; 0 = empty */
	uint32_t seen[L2_WAYS];    /* last second the MAC was seen (l2_table.now) */
	uint8_t pad[32];
} __attribute__((aligned(64)));

struct l2_table {
	struct l2_bucket *buckets;
	unsigned mask;             /* nr buckets - 1 */
	unsigned shift;            /* 64 - log2(nr buckets) */
	uint32_t aging_s;          /* entries unseen this long are removed; 0 = never */
	uint32_t now;              /* seconds, advanced by l2_table__tick */
};

enum l2_learn {
	L2_KNOWN = 0,              /* already there on that port */
	L2_NEW,                    /* added */
	L2_MOVED,                  /* was on another port */
	L2_REPLACED,               /* added over the bucket's oldest entry (table full there) */
};

struct l2_entry {
	uint8_t mac[6];
	uint16_t port;
	uint32_t age_s;
};

/* Room for at least `entries` MACs (rounded up to a power of two buckets of 8). */
int l2_table__init(struct l2_table *t, unsigned entries, uint32_t aging_s);
void l2_table__free(struct l2_table *t);

/* Sets the clock (seconds) and removes entries older than aging_s; returns how many. */
unsigned l2_table__tick(struct l2_table *t, uint32_t now);

/* Removes every entry on `port`; returns how many. */
unsigned l2_table__flush_port(struct l2_table *t, uint16_t port);

/* Copies up to `max` entries; returns how many there are in all. */
unsigned l2_table__dump(const struct l2_table *t, struct l2_entry *out, unsigned max);

static inline uint64_t l2_mac(const uint8_t *p)
{
	return (uint64_t)p[0] << 40 | (uint64_t)p[1] << 32 | (uint64_t)p[2] << 24 |
	       (uint64_t)p[3] << 16 | (uint64_t)p[4] << 8 | (uint64_t)p[5];
}

static inline struct l2_bucket *l2_bucket_of(const struct l2_table *t, uint64_t mac)
{
	return &t->buckets[((mac * 0x9e3779b97f4a7c15ull) >> t->shift) & t->mask];
}

/* The port `mac` was learned on, or -1. */
static inline int l2_table__lookup(const struct l2_table *t, uint64_t mac)
{
	const struct l2_bucket *b = l2_bucket_of(t, mac);
	unsigned i;

	for (i = 0; i < L2_WAYS; i++) {
		uint64_t k = __atomic_load_n(&b->key[i], __ATOMIC_RELAXED);

		if (k && (k & L2_MAC_MASK) == mac)
			return (int)(k >> 48) - 1;
	}
	return -1;
}

/* Records that `mac` was seen on `port` now. Callers skip multicast source MACs. */
static inline enum l2_learn l2_table__learn(struct l2_table *t, uint64_t mac, uint16_t port,
					    uint32_t now)
{
	struct l2_bucket *b = l2_bucket_of(t, mac);
	uint64_t key = mac | (uint64_t)(port + 1u) << 48;
	unsigned i, oldest = 0;
	uint32_t oldest_seen = UINT32_MAX;

	for (i = 0; i < L2_WAYS; i++) {
		uint64_t k = __atomic_load_n(&b->key[i], __ATOMIC_RELAXED);

		if (!k || (k & L2_MAC_MASK) != mac)
			continue;
		if (__atomic_load_n(&b->seen[i], __ATOMIC_RELAXED) != now)
			__atomic_store_n(&b->seen[i], now, __ATOMIC_RELAXED);
		if (k == key)
			return L2_KNOWN;
		__atomic_store_n(&b->key[i], key, __ATOMIC_RELAXED);
		return L2_MOVED;
	}
	for (i = 0; i < L2_WAYS; i++) {
		uint64_t empty = 0;
		uint32_t seen;

		if (__atomic_compare_exchange_n(&b->key[i], &empty, key, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			__atomic_store_n(&b->seen[i], now, __ATOMIC_RELAXED);
			return L2_NEW;
		}
		seen = __atomic_load_n(&b->seen[i], __ATOMIC_RELAXED);
		if (seen < oldest_seen) {
			oldest_seen = seen;
			oldest = i;
		}
	}
	__atomic_store_n(&b->key[oldest], key, __ATOMIC_RELAXED);
	__atomic_store_n(&b->seen[oldest], now, __ATOMIC_RELAXED);
	return L2_REPLACED;
}

#endif
