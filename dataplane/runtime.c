#include "dataplane/runtime.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "base/hugepages.h"
#include "dataplane/config.h"
#include "dataplane/dp.h"
#include "dataplane/log.h"
#include "dataplane/privs.h"

/* The dataplane SIGINT and SIGTERM stop (one per process). */
static struct dp *g_dp;

static void on_signal(int sig)
{
	(void)sig;
	if (g_dp)
		__atomic_store_n(&g_dp->stop, 1, __ATOMIC_RELAXED);
}

static void stop_on_signals(struct dp *dp)
{
	struct sigaction sa;

	g_dp = dp;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static bool hugetlbfs_mounted(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/mounts", "r");

	if (!f)
		return true;   /* cannot tell: let the EAL say */
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, " hugetlbfs ") != NULL;
	fclose(f);
	return found;
}

int dp_runtime__check_memory(const struct dp_config *c, struct err *e)
{
	unsigned mb = dp_config__mem_mb(c);
	unsigned long long free_b;

	if (c->no_huge) {
		dp_log("running without hugepages (--no-huge): %u MB of ordinary 4 KiB pages for %u "
		       "mbufs. vhost-user still works, since guest RAM is the frontend's shared memfd "
		       "that the vhost library maps itself; expect more TLB misses, and physical NICs "
		       "need hugepages", mb, dp_config__nr_mbufs(c));
		return 0;
	}
	if (!hugetlbfs_mounted())
		return err__set(e, -ENOMEM, "no hugetlbfs is mounted: mount one (mount -t hugetlbfs "
				"nodev /dev/hugepages) or run with --no-huge (plan: host.dataplane.no_huge: "
				"true)");
	free_b = hugepages__free_bytes(HUGEPAGES_SYSFS, c->node);
	if (free_b < (unsigned long long)mb << 20)
		return err__set(e, -ENOMEM, "%llu MB of free hugepages%s, the dataplane needs %u MB: "
				"reserve them (echo %u > /sys/kernel/mm/hugepages/hugepages-2048kB/"
				"nr_hugepages) or run with --no-huge (plan: host.dataplane.no_huge: true)",
				free_b >> 20, c->node >= 0 ? " on its node" : "", mb, (mb + 1) / 2);
	dp_log("using hugepages: %u MB%s for %u mbufs (%llu MB free)", mb,
	       c->node >= 0 ? " on its NUMA node" : "", dp_config__nr_mbufs(c), free_b >> 20);
	return 0;
}

int dp_runtime__init(struct dp_runtime *rt, const struct dp_config *c, struct err *e)
{
	memset(rt, 0, sizeof(*rt));
	rt->cfg = c;
	return dp_config__eal_argv(c, &rt->eal_argc, &rt->eal_argv, e);
}

int dp_runtime__open(struct dp_runtime *rt, bool workers_poll, struct err *e)
{
	const struct dp_config *c = rt->cfg;
	struct dp *dp;
	int ret;

	rt->dp = dp = calloc(1, sizeof(*dp));
	rt->eal_copy = calloc((size_t)rt->eal_argc + 1, sizeof(char *));
	if (!dp || !rt->eal_copy)
		return err__set(e, -ENOMEM, "out of memory");
	dp->cfg = c;
	dp->fwd = c->fwd;
	ret = dp_privs__resolve(c->user, c->group, &dp->service_uid, &dp->service_gid, e);
	if (ret)
		return ret;
	stop_on_signals(dp);

	/* 0. no_new_privs before the EAL starts threads: every thread inherits it. */
	ret = dp_privs__no_new_privs(e);
	if (ret)
		return ret;

	/* 1. The EAL: lcores, memory, drivers. It may permute argv: give it a copy. */
	memcpy(rt->eal_copy, rt->eal_argv, sizeof(char *) * (size_t)rt->eal_argc);
	if (rte_eal_init(rt->eal_argc, rt->eal_copy) < 0)
		return err__set(e, rte_errno ? -rte_errno : -EINVAL, "EAL initialisation failed%s%s "
				"(see the EAL lines above; every DPDK process on a host needs its own "
				"--file-prefix, this one is '%s')", rte_errno ? ": " : "",
				rte_errno ? rte_strerror(rte_errno) : "", c->file_prefix);
	rt->eal_up = true;
	dp->tsc_hz = rte_get_tsc_hz();

	/* 2. Packet buffers, on the dataplane's node. */
	dp->pool = rte_pktmbuf_pool_create("dp_mbufs", dp_config__nr_mbufs(c), DP_MBUF_CACHE, 0,
					   RTE_MBUF_DEFAULT_BUF_SIZE, c->node >= 0 ? c->node :
					   (int)rte_lcore_to_socket_id(dp_config__main_lcore(c)));
	if (!dp->pool)
		return err__set(e, -ENOMEM, "cannot create %u mbufs: %s (raise --mem)",
				dp_config__nr_mbufs(c), rte_strerror(rte_errno));

	/* 3. The MAC table (l2switch): a random hash key, guest ports locked to their MAC. */
	if (dp->fwd == DP_FWD_L2SWITCH) {
		uint64_t key[2];
		unsigned i;

		if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
			return err__set(e, -errno, "getrandom (the MAC table's hash key): %s",
					strerror(errno));
		if (l2_table__init(&dp->l2, c->mac_entries, c->mac_aging_s, c->mac_per_port, key))
			return err__set(e, -ENOMEM, "cannot allocate the MAC table (%u entries)",
					c->mac_entries);
		for (i = 0; i < c->nr_ports; i++)
			if (c->ports[i].mac_set)
				l2_table__lock_port(&dp->l2, (uint16_t)i, l2_mac(c->ports[i].mac));
	}

	/* 4. Workers and their RCU state: link events (step 5 on) wait for workers through it. */
	ret = dp_workers__create(dp, e);
	if (ret)
		return ret;

	/* 5. Ports: probe, configure; vhost-user sockets are listening (or connecting) now. */
	ret = dp_ports__create(dp, e);
	if (ret)
		return ret;

	/* 6. Which worker polls which (port, queue), and which tx queue it sends on. */
	if (workers_poll) {
		ret = dp_workers__assign(dp, e);
		if (ret)
			return ret;
	}

	/* 7. Start the ports (a guest that connected since step 5 now gets its queues). */
	return dp_ports__start(dp, e);
}

void dp_runtime__close(struct dp_runtime *rt)
{
	struct dp *dp = rt->dp;

	if (rt->eal_up) {
		__atomic_store_n(&dp->stop, 1, __ATOMIC_RELAXED);
		rte_eal_mp_wait_lcore();
		dp_ports__close(dp);
		dp_workers__free(dp);
		l2_table__free(&dp->l2);
		rte_mempool_free(dp->pool);
		rte_eal_cleanup();
	}
	g_dp = NULL;
	free(dp);
	free(rt->eal_copy);
	dp_config__free_argv(rt->eal_argc, rt->eal_argv);
	memset(rt, 0, sizeof(*rt));
}
