/*
 * The DPDK runtime that `run` (the switch) and `gen` (the generator) share: a dp_config's EAL
 * arguments, then, opened in this order, the service user resolved (c->user, c->group),
 * SIGINT/SIGTERM handling (they set dp->stop), no_new_privs (inherited by every thread the EAL
 * starts), the EAL, the mbuf pool on the dataplane's node, the MAC table (l2switch: a random
 * hash key, guest ports locked to their MACs), the workers and their RCU state, the ports, and
 * the ports started. Closing undoes all of it in reverse. Dropping to the service user is the
 * caller's, once its own sockets are bound (switch.c).
 */
#ifndef RTVMM_DATAPLANE_RUNTIME_H
#define RTVMM_DATAPLANE_RUNTIME_H

#include <stdbool.h>

#include "base/err.h"

struct dp;
struct dp_config;

struct dp_runtime {
	const struct dp_config *cfg;
	int eal_argc;
	char **eal_argv;           /* argv[0] first, as the EAL takes them */
	char **eal_copy;           /* what the EAL was given: it permutes it */
	bool eal_up;
	struct dp *dp;             /* NULL until opened */
};

/* Computes c's EAL arguments into rt; starts nothing (a dry run prints them). */
int dp_runtime__init(struct dp_runtime *rt, const struct dp_config *c, struct err *e);

/*
 * Says what memory the EAL will get (a dp_log line), or why it cannot get it: -ENOMEM when
 * no hugetlbfs is mounted or the free hugepages on c's node are short.
 */
int dp_runtime__check_memory(const struct dp_config *c, struct err *e);

/*
 * Opens everything in the order above; with `workers_poll`, the workers are given the ports'
 * (rx queue, tx queue) pairs before the ports start (`run`); without, the caller's thread polls
 * them itself as worker 0 (`gen`). On error e says what failed; dp_runtime__close then
 * closes what was opened.
 */
int dp_runtime__open(struct dp_runtime *rt, bool workers_poll, struct err *e);

/* Stops the workers, closes what open opened (all or part), frees the EAL arguments. */
void dp_runtime__close(struct dp_runtime *rt);

#endif
