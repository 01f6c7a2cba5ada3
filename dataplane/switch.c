/*
 * The composition root of `rtvmm-dataplane run`: dp_switch__run builds the dataplane in the
 * order written there, on the runtime `gen` shares (runtime.h), and takes it down in reverse.
 */
#include "dataplane/switch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_launch.h>

#include "base/cpus.h"
#include "base/trust.h"
#include "config/parse.h"
#include "dataplane/config.h"
#include "dataplane/dp.h"
#include "dataplane/log.h"
#include "dataplane/privs.h"
#include "dataplane/runtime.h"
#include "dataplane/stats.h"

/* What will start: EAL arguments, lcores, forwarding, ports, stats socket. */
static void print_plan(const struct dp_config *c, int argc, char **argv, FILE *f)
{
	char cpus[256], devargs[512];
	unsigned i;
	int k;

	fprintf(f, "EAL:");
	for (k = 1; k < argc; k++)
		fprintf(f, " %s", argv[k]);
	fprintf(f, "\n");
	cpus__format(&c->lcores, cpus, sizeof(cpus));
	fprintf(f, "poll lcores: %s (main lcore %u%s)\n", cpus, dp_config__main_lcore(c),
		CPU_ISSET(dp_config__main_lcore(c), &c->lcores) ? ", polls too" : ", housekeeping");
	fprintf(f, "forwarding: %s\n", dp_fwd_name(c->fwd));
	for (i = 0; i < c->nr_ports; i++) {
		int peer = dp_config__peer(c, i);

		if (dp_config__devargs(c, i, devargs, sizeof(devargs)))
			devargs[0] = '\0';
		fprintf(f, "port %u: %s %s %s", i, c->ports[i].name, dp_port_kind_name(c->ports[i].kind),
			devargs);
		if (c->fwd == DP_FWD_XCONNECT)
			fprintf(f, peer >= 0 ? " <-> port %d" : " (no peer)", peer);
		fprintf(f, "\n");
	}
	fprintf(f, "stats socket: %s\n", c->stats_socket);
}

/*
 * Setup is over: the sockets the dataplane listens on go to the service user (who may then
 * connect to them, and whose directory lets it remove them at exit), then every thread
 * becomes that user, checked thread by thread. Without a service user, as root: one warning.
 */
static int drop_privileges(struct dp *dp, struct err *e)
{
	const struct dp_config *c = dp->cfg;
	unsigned i;
	int rc;

	if (dp->service_uid == TRUST_NO_UID) {
		if (geteuid() == 0)
			dp_log("WARNING: no service user (plan host.user or --user USER[:GROUP]): the "
			       "dataplane and every guest-facing parser in it keep running as root");
		return 0;
	}
	for (i = 0; i < c->nr_ports; i++) {
		const struct dp_port_spec *s = &c->ports[i];

		if ((s->kind == DP_PORT_VHOST || s->kind == DP_PORT_VIRTIO_USER) && !s->client &&
		    chown(s->target, dp->service_uid, dp->service_gid))
			return err__set(e, -errno, "port %u (%s): chown %s to %u:%u: %s", i, s->name,
					s->target, (unsigned)dp->service_uid,
					(unsigned)dp->service_gid, strerror(errno));
	}
	if (chown(c->stats_socket, dp->service_uid, dp->service_gid))
		return err__set(e, -errno, "stats socket: chown %s to %u:%u: %s", c->stats_socket,
				(unsigned)dp->service_uid, (unsigned)dp->service_gid, strerror(errno));
	rc = dp_privs__drop(dp->service_uid, dp->service_gid, e);
	if (rc)
		return rc;
	dp_log("running as %s (uid %u, gid %u): every thread checked: no capabilities, "
	       "no_new_privs", c->user, (unsigned)dp->service_uid, (unsigned)dp->service_gid);
	return 0;
}

int dp_switch__run(const struct dp_config *c)
{
	struct dp_runtime rt;
	struct err e = { 0 };
	unsigned main_lcore = dp_config__main_lcore(c), i;
	int status = 1;
	struct dp *dp;
	json_t *doc;

	if (dp_runtime__init(&rt, c, &e)) {
		fprintf(stderr, DP_PROG ": %s\n", e.msg);
		return 1;
	}
	if (c->dry_run) {
		print_plan(c, rt.eal_argc, rt.eal_argv, stdout);
		status = 0;
		goto out;
	}

	/* 1. Memory: enough free hugepages for the mbufs, or why there are none. */
	if (dp_runtime__check_memory(c, &e))
		goto out_err;

	/* 2. The runtime: EAL, mbufs, MAC table, workers, ports, each worker's queues, started. */
	print_plan(c, rt.eal_argc, rt.eal_argv, stdout);
	if (dp_runtime__open(&rt, true, &e))
		goto out_err;
	dp = rt.dp;

	/* 3. Housekeeping: rates, aging, links, the stats socket. */
	if (dp_stats__start(dp, &e))
		goto out_err;

	/* 4. Privileges: from here on the service user's, in every thread. */
	if (drop_privileges(dp, &e))
		goto out_err;

	/* 5. Poll: every poll lcore but the main one now; the main one too when it polls. */
	for (i = 0; i < dp->nr_workers; i++)
		if (dp->workers[i]->lcore != main_lcore)
			rte_eal_remote_launch(dp_worker__main, dp, dp->workers[i]->lcore);
	dp_log("ready: %u ports, %u poll lcore(s), %s forwarding, stats at %s", dp->nr_ports,
	       dp->nr_workers, dp_fwd_name(dp->fwd), c->stats_socket);
	if (CPU_ISSET(main_lcore, &c->lcores)) {
		dp_worker__main(dp);
	} else {
		struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };

		pthread_setname_np(pthread_self(), "dp-main");
		while (!DP_READ(dp->stop))
			nanosleep(&ts, NULL);
	}

	/* Stop: workers leave their loops, then the summary, then the runtime in reverse. */
	__atomic_store_n(&dp->stop, 1, __ATOMIC_RELAXED);
	rte_eal_mp_wait_lcore();
	dp_stats__stop(dp);
	doc = dp_stats__json(dp);
	if (doc) {
		dp_stats__print(stdout, doc, "Summary at exit");
		json_decref(doc);
	}
	status = 0;
	goto out;

out_err:
	fprintf(stderr, DP_PROG ": %s\n", e.msg);
out:
	dp_runtime__close(&rt);
	return status;
}
