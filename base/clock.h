/* The monotonic clock in nanoseconds: for durations and deadlines, never the wall time. */
#ifndef RTVMM_BASE_CLOCK_H
#define RTVMM_BASE_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t clock__mono_ns(void);

#endif
