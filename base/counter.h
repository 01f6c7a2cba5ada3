/*
 * Event counters that one writer at a time updates (its own thread, or under
 * its lock) and any thread reads while it runs (the API's vm.counters): a
 * relaxed load and store, as cheap as a plain increment, never torn.
 */
#ifndef RTVMM_BASE_COUNTER_H
#define RTVMM_BASE_COUNTER_H

#include <stdint.h>

/* Adds `n`; only from the counter's one writer (thread or lock holder). */
static inline void counter__add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Sets a value (a state, a feature word) under the same rule. */
static inline void counter__set(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Reads the counter from any thread. */
static inline uint64_t counter__get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#endif
