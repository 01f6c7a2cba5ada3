/*
 * Hugepage pools as the kernel reports them in sysfs: the page sizes it offers and, per size,
 * total and free pages for the whole system (SYSFS/kernel/mm/hugepages/hugepages-NkB/) or one
 * NUMA node (SYSFS/devices/system/node/nodeN/hugepages/hugepages-NkB/). Every function takes
 * the sysfs root, HUGEPAGES_SYSFS on a host, a fake tree in tests.
 */
#ifndef RTVMM_BASE_HUGEPAGES_H
#define RTVMM_BASE_HUGEPAGES_H

#include <stddef.h>
#include <stdint.h>

#define HUGEPAGES_SYSFS     "/sys"
#define HUGEPAGES_MAX_SIZES 8

struct hugepages_count {
	uint64_t total;            /* nr_hugepages */
	uint64_t free;             /* free_hugepages */
	uint64_t reserved;         /* resv_hugepages: promised to mappings, not yet faulted (system only) */
};

/*
 * Page sizes in bytes, ascending, that the system (node < 0) or NUMA node `node` has a pool
 * for, into sizes[max]; returns how many, or -errno (-ENOENT: no such node or no hugepages).
 */
int hugepages__sizes(const char *sysfs, int node, uint64_t *sizes, unsigned max);

/* Total and free pages of `page_size` bytes on `node` (< 0: the system); -ENOENT: no such pool. */
int hugepages__count(const char *sysfs, uint64_t page_size, int node, struct hugepages_count *c);

/* The nr_hugepages file of that pool (what an administrator writes to reserve pages). */
void hugepages__nr_path(const char *sysfs, uint64_t page_size, int node, char *buf, size_t len);

/* Free hugepage bytes over every page size on `node` (< 0: the system); 0 when unknown. */
uint64_t hugepages__free_bytes(const char *sysfs, int node);

#endif
