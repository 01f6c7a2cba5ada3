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
 *
 * No guest steers it: the bucket is a keyed hash (SipHash rounds, a random key per run), so
 * nobody can pick MACs that collide with a victim's; a port may hold at most port_cap MACs
 * (further new MACs are not learned, their frames are still forwarded); and a guest port can
 * be locked to the one source MAC the plan gave its NIC (anything else is L2_SPOOFED).
 * Pure C (no DPDK), so it is tested on its own.
 */
#ifndef RTVMM_DATAPLANE_L2_H
#define RTVMM_DATAPLANE_L2_H

#include <stdbool.h>
#include <stdint.h>

#define L2_WAYS      8
#define L2_MAC_MASK  0xffffffffffffull
#define L2_MAX_PORTS 64
#define L2_LOCKED    (1ull << 63)  /* in l2_table.lock: the port's one source MAC is set */

struct l2_bucket {
	uint64_t key[L2_WAYS];     /* mac | (port + 1) << 48; 0 = empty */
	uint32_t seen[L2_WAYS];    /* last second the MAC was seen (l2_table.now) */
	uint8_t pad[32];
} __attribute__((aligned(64)));

struct l2_table {
	struct l2_bucket *buckets;
	unsigned mask;             /* nr buckets - 1 */
	uint32_t aging_s;          /* entries unseen this long are removed; 0 = never */
	uint32_t now;              /* seconds, advanced by l2_table__tick */
	uint32_t port_cap;         /* MACs one port may hold; 0 = no limit */
	uint64_t key[2];           /* the bucket hash's key */
	uint64_t lock[L2_MAX_PORTS];   /* L2_LOCKED | the only source MAC, or 0 = any */
	uint32_t lock_bucket[L2_MAX_PORTS]; /* that MAC's bucket: learning it costs no hash */
	uint32_t count[L2_MAX_PORTS];  /* MACs each port holds now */
};

enum l2_learn {
	L2_KNOWN = 0,              /* already there on that port */
	L2_NEW,                    /* added */
	L2_MOVED,                  /* was on another port */
	L2_REPLACED,               /* added over the bucket's oldest entry (table full there) */
	L2_SPOOFED,                /* not the port's locked MAC: drop the frame */
	L2_CAPPED,                 /* new, but the port holds port_cap MACs: not learned */
	L2_IGNORED,                /* a multicast source, or a race lost to another worker */
};

struct l2_entry {
	uint8_t mac[6];
	uint16_t port;
	uint32_t age_s;
};

/*
 * Room for at least `entries` MACs (rounded up to a power of two buckets of 8), at most
 * `port_cap` per port (0 = no limit), buckets chosen by a hash keyed with `key` (random per
 * run: getrandom).
 */
int l2_table__init(struct l2_table *t, unsigned entries, uint32_t aging_s, uint32_t port_cap,
		   const uint64_t key[2]);
void l2_table__free(struct l2_table *t);

/* From now on `port` may only use source MAC `mac` (l2_mac); before traffic starts. */
void l2_table__lock_port(struct l2_table *t, uint16_t port, uint64_t mac);

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

static inline uint64_t l2_rotl(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

#define L2_SIPROUND(v0, v1, v2, v3) do {                                                  \
	v0 += v1; v1 = l2_rotl(v1, 13); v1 ^= v0; v0 = l2_rotl(v0, 32);                   \
	v2 += v3; v3 = l2_rotl(v3, 16); v3 ^= v2;                                         \
	v0 += v3; v3 = l2_rotl(v3, 21); v3 ^= v0;                                         \
	v2 += v1; v1 = l2_rotl(v1, 17); v1 ^= v2; v2 = l2_rotl(v2, 32);                   \
} while (0)

/* SipHash-1-3 of the 6-byte MAC under `key`: unpredictable buckets without the key. */
static inline uint64_t l2_hash(const uint64_t key[2], uint64_t mac)
{
	uint64_t v0 = key[0] ^ 0x736f6d6570736575ull, v1 = key[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = key[0] ^ 0x6c7967656e657261ull, v3 = key[1] ^ 0x7465646279746573ull;
	uint64_t m = 6ull << 56 | mac;

	v3 ^= m;
	L2_SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	L2_SIPROUND(v0, v1, v2, v3);
	L2_SIPROUND(v0, v1, v2, v3);
	L2_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

static inline struct l2_bucket *l2_bucket_of(const struct l2_table *t, uint64_t mac)
{
	return &t->buckets[l2_hash(t->key, mac) & t->mask];
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

/* Takes one of port's port_cap places; false when it has none left. */
static inline bool l2_reserve(struct l2_table *t, uint16_t port)
{
	if (__atomic_add_fetch(&t->count[port], 1, __ATOMIC_RELAXED) <= t->port_cap || !t->port_cap)
		return true;
	__atomic_sub_fetch(&t->count[port], 1, __ATOMIC_RELAXED);
	return false;
}

static inline void l2_release(struct l2_table *t, uint64_t key)
{
	__atomic_sub_fetch(&t->count[(key >> 48) - 1], 1, __ATOMIC_RELAXED);
}

/*
 * Records that `mac` was seen as a source on `port` (< L2_MAX_PORTS) now. L2_SPOOFED: the
 * port is locked to another MAC, the caller drops the frame. Every entry change is one
 * compare-and-swap, so the per-port counts stay exact with several workers on one port.
 */
static inline enum l2_learn l2_table__learn(struct l2_table *t, uint64_t mac, uint16_t port,
					    uint32_t now)
{
	struct l2_bucket *b;
	uint64_t key = mac | (uint64_t)(port + 1u) << 48, lock = t->lock[port], old;
	unsigned i, oldest = 0;
	uint32_t oldest_seen = UINT32_MAX;

	if (lock && (lock & L2_MAC_MASK) != mac)
		return L2_SPOOFED;
	if (mac & (1ull << 40))
		return L2_IGNORED;
	b = lock ? &t->buckets[t->lock_bucket[port]] : l2_bucket_of(t, mac);
	for (i = 0; i < L2_WAYS; i++) {
		uint64_t k = __atomic_load_n(&b->key[i], __ATOMIC_RELAXED);

		if (!k || (k & L2_MAC_MASK) != mac)
			continue;
		if (__atomic_load_n(&b->seen[i], __ATOMIC_RELAXED) != now)
			__atomic_store_n(&b->seen[i], now, __ATOMIC_RELAXED);
		if (k == key)
			return L2_KNOWN;
		if (!l2_reserve(t, port))
			return L2_CAPPED;
		if (!__atomic_compare_exchange_n(&b->key[i], &k, key, false, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED)) {
			l2_release(t, key);
			return L2_IGNORED;
		}
		l2_release(t, k);
		return L2_MOVED;
	}
	if (!l2_reserve(t, port))
		return L2_CAPPED;
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
	old = __atomic_load_n(&b->key[oldest], __ATOMIC_RELAXED);
	if (!old || !__atomic_compare_exchange_n(&b->key[oldest], &old, key, false, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED)) {
		l2_release(t, key);
		return L2_IGNORED;
	}
	__atomic_store_n(&b->seen[oldest], now, __ATOMIC_RELAXED);
	l2_release(t, old);
	return L2_REPLACED;
}

#endif
