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
#include "rt/rt.h"

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

/* What this lcore's poll thread should be: its cpu alone, the configured policy and priority. */
static struct rt_sched poll_sched(const struct dp_config *c, unsigned lcore)
{
	struct rt_sched s = { .policy = c->poll_policy, .priority = c->poll_priority };

	CPU_ZERO(&s.cpus);
	CPU_SET(lcore, &s.cpus);
	return s;
}

/* A fifo/rr poll thread never sleeps: RT throttling stops it for the rest of each period. */
static void warn_rt_throttling(void)
{
	long runtime, period;

	if (!rt__read_throttling(&runtime, &period) && runtime >= 0 && runtime < period)
		dp_log("WARNING: RT throttling is on (%ld of every %ld us): each busy fifo/rr poll "
		       "thread is stopped for %ld us every period and drops what arrives meanwhile; "
		       "set /proc/sys/kernel/sched_rt_runtime_us to -1", runtime, period,
		       period - runtime);
}

/* One poll lcore's scheduling, applied on that lcore's own thread (remote launch or main). */
struct sched_job {
	struct dp *dp;
	struct err e;
	int rc;
};

static int apply_poll_sched(void *arg)
{
	struct sched_job *job = arg;
	struct dp_worker *w = job->dp->by_lcore[rte_lcore_id()];
	struct rt_sched s = poll_sched(job->dp->cfg, w->lcore);
	char name[16];

	snprintf(name, sizeof(name), "dp-poll%u", w->lcore);
	pthread_setname_np(pthread_self(), name);
	w->tid = gettid();
	job->rc = rt__apply(w->tid, &s, &job->e);
	return 0;
}

/*
 * Before the privilege drop (setting fifo/rr needs CAP_SYS_NICE): every poll thread gets its
 * cpu, policy and priority on its own thread, and then each is read back from the kernel and
 * proved, or the dataplane stops naming the thread. The log says what the kernel reports.
 */
static int place_poll_threads(struct dp *dp, struct err *e)
{
	const struct dp_config *c = dp->cfg;
	unsigned main_lcore = dp_config__main_lcore(c), i;
	struct sched_job job = { .dp = dp };
	char cpus[64];

	for (i = 0; i < dp->nr_workers; i++) {
		unsigned lcore = dp->workers[i]->lcore;

		job.rc = 0;
		if (lcore == main_lcore)
			apply_poll_sched(&job);
		else if (rte_eal_remote_launch(apply_poll_sched, &job, lcore) ||
			 rte_eal_wait_lcore(lcore) < 0)
			return err__set(e, -EBUSY, "poll lcore %u: cannot run on its thread", lcore);
		if (job.rc)
			return err__set(e, job.rc, "poll lcore %u: %s", lcore, job.e.msg);
	}
	for (i = 0; i < dp->nr_workers; i++) {
		const struct dp_worker *w = dp->workers[i];
		struct rt_sched want = poll_sched(c, w->lcore);
		struct rt_thread t;
		int rc = rt__read(w->tid, &t);

		if (rc)
			return err__set(e, rc, "poll lcore %u: cannot read thread %d back from the kernel: "
					"%s", w->lcore, (int)w->tid, strerror(-rc));
		cpus__format(&t.cpus, cpus, sizeof(cpus));
		if (!rt__matches(&t, &want))
			return err__set(e, -EPERM, "poll lcore %u: thread %s (tid %d) reads back as cpus "
					"%s, %s %d; the configuration asks cpu %u, %s %d", w->lcore,
					t.name, (int)t.tid, cpus, rt__kernel_policy_name(t.policy),
					t.priority, w->lcore, rt__policy_name(want.policy),
					want.priority);
		dp_log("poll lcore %u: thread %s (tid %d) on cpu %s, %s %d (read back from the kernel)",
		       w->lcore, t.name, (int)t.tid, cpus, rt__kernel_policy_name(t.policy),
		       t.priority);
	}
	if (c->poll_policy != RT_POLICY_OTHER)
		warn_rt_throttling();
	return 0;
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

	/* 3. Each poll thread's cpu, policy and priority, applied and read back. */
	if (place_poll_threads(dp, &e))
		goto out_err;

	/* 4. Housekeeping: rates, aging, links, the stats socket. */
	if (dp_stats__start(dp, &e))
		goto out_err;

	/* 5. Privileges: from here on the service user's, in every thread. */
	if (drop_privileges(dp, &e))
		goto out_err;

	/* 6. Poll: every poll lcore but the main one now; the main one too when it polls. */
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
