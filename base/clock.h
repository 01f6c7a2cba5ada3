/* The monotonic clock in nanoseconds: for durations and deadlines, never the wall time. */
#ifndef RTVMM_BASE_CLOCK_H
#define RTVMM_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t clock__mono_ns(void);

/* CLOCK_MONOTONIC now, in milliseconds. */
int64_t clock__mono_ms(void);

/* CLOCK_MONOTONIC `ms` from now, for a wait on a condition variable that runs on that clock. */
struct timespec clock__deadline(int ms);

#endif
