/* Host topology (hwloc): cpus, cores, packages, NUMA nodes, plus OS state RT hosting cares about. */
#ifndef RTVMM_NUMA_TOPOLOGY_H
#define RTVMM_NUMA_TOPOLOGY_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/err.h"

#define TOPO_PAGE_SIZES 3          /* indexed by enum plan_page_size: 4K, 2M, 1G */

struct topo_cpu {
	bool present;
	unsigned package;          /* os index of the package */
	unsigned core;             /* logical index of the core (unique across packages) */
	int node;                  /* NUMA node os index, -1 if unknown */
	cpu_set_t siblings;        /* SMT siblings, including itself */
};

struct topo_node {
	unsigned os_index;
	uint64_t mem_bytes;
	uint64_t free_pages[TOPO_PAGE_SIZES];    /* free hugepages per size (index 0 unused) */
	uint64_t total_pages[TOPO_PAGE_SIZES];
};

struct topology {
	char source[4200];         /* "this host", "XML file F", "synthetic 'D'" */
	bool is_host;              /* describes the machine we run on */
	unsigned nr_cpus;          /* highest os index + 1 */
	struct topo_cpu *cpus;     /* nr_cpus entries, indexed by os index */
	unsigned nr_nodes;
	struct topo_node *nodes;
	bool page_size_supported[TOPO_PAGE_SIZES];
	cpu_set_t isolated;        /* isolcpus= / cpusets: /sys/devices/system/cpu/isolated */
	cpu_set_t nohz_full;       /* /sys/devices/system/cpu/nohz_full */
	long rt_runtime_us;        /* /proc/sys/kernel/sched_rt_runtime_us (-1 = throttling off) */
	long rt_period_us;
};

/* This machine: hwloc discovery plus /sys and /proc for isolation, hugepages and RT throttling. */
int topology__load_host(struct topology *t, struct err *e);

/*
 * A machine described by an hwloc XML file or synthetic string (e.g.
 * "pack:2 numa:1 core:8 pu:2"). Host-only state comes from `overrides`
 * (may be NULL): see topology__parse_overrides.
 */
int topology__load_file(struct topology *t, const char *xml_path, const char *overrides,
			struct err *e);
int topology__load_synthetic(struct topology *t, const char *desc, const char *overrides,
			     struct err *e);

void topology__free(struct topology *t);

/* Node of cpu, or -1. */
int topology__cpu_node(const struct topology *t, unsigned cpu);

#endif
