#include "dataplane/l2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int l2_table__init(struct l2_table *t, unsigned entries, uint32_t aging_s, uint32_t port_cap,
		   const uint64_t key[2])
{
	unsigned nb = 1, bits = 0;

	memset(t, 0, sizeof(*t));
	while (nb * L2_WAYS < entries && bits < 24) {
		nb <<= 1;
		bits++;
	}
	t->buckets = aligned_alloc(64, sizeof(struct l2_bucket) * nb);
	if (!t->buckets)
		return -ENOMEM;
	memset(t->buckets, 0, sizeof(struct l2_bucket) * nb);
	t->mask = nb - 1;
	t->aging_s = aging_s;
	t->port_cap = port_cap;
	t->key[0] = key[0];
	t->key[1] = key[1];
	return 0;
}

void l2_table__lock_port(struct l2_table *t, uint16_t port, uint64_t mac)
{
	t->lock[port] = L2_LOCKED | mac;
	t->lock_bucket[port] = (uint32_t)(l2_bucket_of(t, mac) - t->buckets);
}

void l2_table__free(struct l2_table *t)
{
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

/* Empties way i of b if it still holds `k` (a worker may have moved it meanwhile). */
static bool drop_way(struct l2_table *t, struct l2_bucket *b, unsigned i, uint64_t k)
{
	if (!__atomic_compare_exchange_n(&b->key[i], &k, 0, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return false;
	l2_release(t, k);
	return true;
}

unsigned l2_table__tick(struct l2_table *t, uint32_t now)
{
	unsigned n = 0, bi, i;

	__atomic_store_n(&t->now, now, __ATOMIC_RELAXED);
	if (!t->aging_s)
		return 0;
	for (bi = 0; bi <= t->mask; bi++) {
		struct l2_bucket *b = &t->buckets[bi];

		for (i = 0; i < L2_WAYS; i++) {
			uint64_t k = __atomic_load_n(&b->key[i], __ATOMIC_RELAXED);
			uint32_t seen = __atomic_load_n(&b->seen[i], __ATOMIC_RELAXED);

			if (k && now - seen >= t->aging_s && (int32_t)(now - seen) > 0 &&
			    drop_way(t, b, i, k))
				n++;
		}
	}
	return n;
}

unsigned l2_table__flush_port(struct l2_table *t, uint16_t port)
{
	unsigned n = 0, bi, i;

	for (bi = 0; bi <= t->mask; bi++) {
		struct l2_bucket *b = &t->buckets[bi];

		for (i = 0; i < L2_WAYS; i++) {
			uint64_t k = __atomic_load_n(&b->key[i], __ATOMIC_RELAXED);

			if (k && (k >> 48) == port + 1u && drop_way(t, b, i, k))
				n++;
		}
	}
	return n;
}

unsigned l2_table__dump(const struct l2_table *t, struct l2_entry *out, unsigned max)
{
	uint32_t now = __atomic_load_n(&t->now, __ATOMIC_RELAXED);
	unsigned n = 0, bi, i, j;

	for (bi = 0; bi <= t->mask; bi++) {
		const struct l2_bucket *b = &t->buckets[bi];

		for (i = 0; i < L2_WAYS; i++) {
			uint64_t k = __atomic_load_n(&b->key[i], __ATOMIC_RELAXED);
			uint32_t seen = __atomic_load_n(&b->seen[i], __ATOMIC_RELAXED);

			if (!k)
				continue;
			if (n < max) {
				for (j = 0; j < 6; j++)
					out[n].mac[j] = (uint8_t)(k >> (40 - 8 * j));
				out[n].port = (uint16_t)((k >> 48) - 1);
				out[n].age_s = (int32_t)(now - seen) > 0 ? now - seen : 0;
			}
			n++;
		}
	}
	return n;
}
