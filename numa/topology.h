/* Host topology (hwloc): cpus, cores, packages, NUMA nodes, plus OS state RT hosting cares about. */
#ifndef RTVMM_NUMA_TOPOLOGY_H
#define RTVMM_NUMA_TOPOLOGY_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/page_size.h"


struct topo_cpu {
	bool present;
	bool disallowed;           /* the machine's, but outside this process's cpuset (not present) */
	unsigned package;          /* os index of the package */
	unsigned core;             /* logical index of the core (unique across packages) */
	int node;                  /* NUMA node os index, -1 if unknown */
	cpu_set_t siblings;        /* SMT siblings, including itself */
};

struct topo_node {
	unsigned os_index;
	uint64_t mem_bytes;
	uint64_t free_pages[PAGE_SIZES];    /* free hugepages per size (index 0 unused) */
	uint64_t total_pages[PAGE_SIZES];
};

/*
 * What a topology knows. The host knows everything it can read; an XML file
 * or synthetic string knows only the hardware (cpus, cores, packages, nodes,
 * memory) plus what its overrides say. A field whose *_known flag is false
 * holds no information (empty sets, zero counts): a checker must say it could
 * not verify, never treat it as "none".
 */
struct topology {
	char source[4200];         /* "this host", "XML file F", "synthetic 'D'" */
	bool is_host;              /* describes the machine we run on */
	unsigned nr_cpus;          /* highest os index + 1 */
	struct topo_cpu *cpus;     /* nr_cpus entries, indexed by os index */
	unsigned nr_nodes;
	struct topo_node *nodes;   /* nr_nodes entries in os index order (not indexed by it) */
	bool page_sizes_known;
	bool page_size_supported[PAGE_SIZES];  /* [0] (4K) is always true */
	bool hugepages_known;      /* nodes[].free_pages / total_pages are real */
	bool isolated_known;
	cpu_set_t isolated;        /* isolcpus= / cpusets: /sys/devices/system/cpu/isolated */
	bool nohz_full_known;
	cpu_set_t nohz_full;       /* /sys/devices/system/cpu/nohz_full (absent file: empty) */
	bool rt_known;
	long rt_runtime_us;        /* /proc/sys/kernel/sched_rt_runtime_us (-1 = throttling off) */
	long rt_period_us;
};

/* This machine: hwloc discovery plus /sys and /proc for isolation, hugepages and RT throttling. */
int topology__load_host(struct topology *t, struct err *e);

/*
 * A machine described by an hwloc XML file or synthetic string (hwloc 2.9
 * syntax, e.g. "package:2 numa:1 core:8 pu:2"; os indexes may be given with
 * "pu:2(indexes=0,16,1,17,...)"). Host-only state comes first from info
 * attributes on the XML root object, then from `overrides` (may be NULL),
 * which wins. Both use the same keys:
 *
 *   overrides: space-separated KEY=VALUE, e.g.
 *     "isolated=2-15,18-31 nohz_full=2-15,18-31 hugepages=node0:2M:2048,node0:1G:8
 *      rt_runtime=-1"
 *   XML: <info name="rtvmm.KEY" value="VALUE"/> under the Machine object.
 *
 *   isolated=CPUS       cpus isolated from the scheduler (isolcpus=); "" or "none" = none
 *   nohz_full=CPUS      nohz_full= cpus; "" or "none" = none
 *   hugepages=nodeN:SIZE:FREE[/TOTAL],...   SIZE is 2M or 1G; free (and total, default
 *                       = free) hugepages of that size on node N. Makes hugepage counts
 *                       known: sizes and nodes not listed have 0. "none" = none reserved.
 *   pagesizes=SIZE,...  hugepage sizes the kernel supports (2M, 1G); default: the sizes
 *                       named in hugepages=
 *   rt_runtime=N        sched_rt_runtime_us (-1 = RT throttling off)
 *   rt_period=N         sched_rt_period_us (default 1000000)
 *
 * Without them: no isolation, hugepage or RT throttling information (*_known false).
 */
int topology__load_file(struct topology *t, const char *xml_path, const char *overrides,
			struct err *e);
int topology__load_synthetic(struct topology *t, const char *desc, const char *overrides,
			     struct err *e);

/* Applies an overrides string (syntax above) to a loaded topology; `origin` names it in errors. */
int topology__apply_overrides(struct topology *t, const char *overrides, const char *origin,
			      struct err *e);

void topology__free(struct topology *t);

/* Node of cpu, or -1. */
int topology__cpu_node(const struct topology *t, unsigned cpu);

/* True when cpu exists (is a PU) in t. */
bool topology__has_cpu(const struct topology *t, unsigned cpu);

/* True when this host has cpu but this process's cpuset leaves it out (not has_cpu). */
bool topology__cpu_disallowed(const struct topology *t, unsigned cpu);

/* The node with that os index, or NULL. */
const struct topo_node *topology__node(const struct topology *t, int os_index);

/* All present cpus as a set. */
void topology__cpus(const struct topology *t, cpu_set_t *set);

#endif
