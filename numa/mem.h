/* Guest RAM placement: hugepage backing bound to a NUMA node, prefaulted, locked, verified. */
#ifndef RTVMM_NUMA_MEM_H
#define RTVMM_NUMA_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/page_size.h"

/* What guest RAM placement asks for. */
struct numa_mem_spec {
	uint64_t size;             /* bytes, a multiple of the page size */
	enum page_size page_size;
	int node;                  /* host NUMA node, -1 = no binding */
	bool prefault;             /* touch every page now */
	bool mlock;                /* lock the pages (4 KiB pages; hugetlb is never swapped) */
	bool allow_fallback;       /* 4 KiB pages when hugepages are short, else fail */
};

/* A placed memfd, mapped MAP_SHARED: the memory a VM takes as its RAM. */
struct numa_mem {
	int fd;
	uint8_t *base;
	uint64_t size;
	uint64_t page_size;        /* bytes, of the backing actually used */
};

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
int numa_mem__create(struct numa_mem *mem, const struct numa_mem_spec *m, struct err *e);

/* Unmaps and closes what numa_mem__create made. */
void numa_mem__destroy(struct numa_mem *mem);

/* Where guest RAM actually is, after prefault. */
struct numa_placement {
	uint64_t page_size;        /* bytes, of the backing */
	uint64_t pages_per_node[64];
	uint64_t pages_unknown;    /* not present / error from move_pages */
	unsigned nr_nodes;         /* entries of pages_per_node that matter */
};

/* Queries every page's node with move_pages(2) (nodes = NULL). */
int numa_mem__placement(const struct numa_mem *mem, struct numa_placement *out);

#endif
