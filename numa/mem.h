/* Guest RAM placement: hugepage backing bound to a NUMA node, prefaulted, locked, verified. */
#ifndef RTVMM_NUMA_MEM_H
#define RTVMM_NUMA_MEM_H

#include <stdint.h>

#include "config/plan.h"
#include "base/err.h"
#include "vmm/guest_mem.h"

/*
 * Creates guest RAM per `m` (size, page size, node, prefault, mlock,
 * fallback): a memfd (MFD_HUGETLB|MFD_HUGE_2MB/1GB for hugepages),
 * MAP_SHARED (hugepages reserved at mmap: no MAP_NORESERVE), mbind(MPOL_BIND)
 * to the node before any page is touched, then prefault and mlock (4 KiB
 * pages only: the kernel ignores mlock on hugetlb, which is never swapped).
 * Fails before anything is touched when the node has
 * too few free hugepages, naming node, page size, pages needed and free
 * (unless allow_fallback, then 4 KiB pages with a warning on stderr).
 */
int numa_mem__create(struct guest_mem *mem, const struct plan_memory *m, struct err *e);

/* Where guest RAM actually is, after prefault. */
struct numa_placement {
	uint64_t page_size;        /* bytes, of the backing */
	uint64_t pages_per_node[64];
	uint64_t pages_unknown;    /* not present / error from move_pages */
	unsigned nr_nodes;         /* entries of pages_per_node that matter */
};

/* Queries every page's node with move_pages(2) (nodes = NULL). */
int numa_mem__placement(const struct guest_mem *mem, struct numa_placement *out);

#endif
