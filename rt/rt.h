/* Real-time scheduling: apply a thread's placement, read it back from the kernel, report it. */
#ifndef RTVMM_RT_RT_H
#define RTVMM_RT_RT_H

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/err.h"

enum rt_policy {
	RT_POLICY_OTHER = 0,       /* SCHED_OTHER: priority must be 0 */
	RT_POLICY_FIFO,            /* SCHED_FIFO 1..99 */
	RT_POLICY_RR,              /* SCHED_RR 1..99 */
};

/* A thread's placement: allowed cpus (empty = not pinned), policy and priority. */
struct rt_sched {
	cpu_set_t cpus;
	enum rt_policy policy;
	int priority;
};

/* "other", "fifo", "rr": the names plans use (inline: the plan's parser names them too). */
static inline const char *rt__policy_name(enum rt_policy p)
{
	switch (p) {
	case RT_POLICY_OTHER:
		return "other";
	case RT_POLICY_FIFO:
		return "fifo";
	case RT_POLICY_RR:
		return "rr";
	}
	return "?";
}

/* A kernel policy (SCHED_FIFO...) as plans spell it ("fifo"), and batch, idle, deadline. */
const char *rt__kernel_policy_name(int policy);

/* Pins thread `tid` to s->cpus (if non-empty) and sets its policy/priority. */
int rt__apply(pid_t tid, const struct rt_sched *s, struct err *e);

/* What the kernel says about a thread (sched_getaffinity / sched_getscheduler on the tid, /proc). */
struct rt_thread {
	pid_t tid;
	char name[16];             /* /proc/self/task/TID/comm */
	cpu_set_t cpus;
	int policy;                /* SCHED_FIFO, ... */
	int priority;
	int last_cpu;              /* cpu it last ran on (/proc/.../stat field 39) */
	int node;                  /* NUMA node of last_cpu, -1 unknown */
};

int rt__read(pid_t tid, struct rt_thread *out);

/* True when `t` matches what `s` asked for (cpus, policy, priority). */
bool rt__matches(const struct rt_thread *t, const struct rt_sched *s);

/* Prints "thread tid cpus policy prio node" rows. */
void rt__print_table(FILE *out, const struct rt_thread *rows, unsigned n);

/*
 * The kernel's RT throttling: sched_rt_runtime_us (-1 = off) and sched_rt_period_us from
 * /proc/sys/kernel; -errno when either cannot be read (then neither is set).
 */
int rt__read_throttling(long *runtime_us, long *period_us);

/* mlockall(MCL_CURRENT|MCL_FUTURE). */
int rt__lock_all_memory(struct err *e);

/* Opens /dev/cpu_dma_latency and writes 0; keep the fd open while running. Returns fd or -errno. */
int rt__hold_dma_latency(struct err *e);

#endif
