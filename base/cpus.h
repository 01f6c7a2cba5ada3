/* Cpu lists as the kernel writes them (cpuset.cpus, isolcpus=, taskset -c): "0-3,8,10-11". */
#ifndef RTVMM_BASE_CPUS_H
#define RTVMM_BASE_CPUS_H

#include <sched.h>

/*
 * Parses a cpu list into `set`: comma-separated cpus and ranges "a-b", blanks
 * around items allowed, "" is the empty set. Returns 0, -EINVAL (syntax, or a
 * range that runs backwards) or -ERANGE (a cpu >= CPU_SETSIZE).
 */
int cpus__parse(const char *s, cpu_set_t *set);

/* Writes `set` as a cpu list into buf (never a half-written item); returns buf. */
const char *cpus__format(const cpu_set_t *set, char *buf, unsigned len);

#endif
