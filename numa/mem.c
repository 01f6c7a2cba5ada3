/*
 * Guest RAM placement. The order is what makes it safe:
 *
 *   1. check the node has enough free hugepages (fail or fall back to 4K now,
 *      naming node, page size, pages needed and free);
 *   2. memfd (MFD_HUGETLB for hugepages), sized;
 *   3. mmap MAP_SHARED without MAP_NORESERVE for hugepages, with the thread's
 *      policy bound to the node, so the kernel reserves the pages (counted on
 *      that node) at mmap and a shortage is an error here, never a SIGBUS;
 *   4. mbind(MPOL_BIND) the mapping before any page is touched;
 *   5. prefault (MADV_POPULATE_WRITE, else one write per page), then mlock
 *      (4K pages only: hugetlb pages cannot be swapped, mlock ignores them).
 *
 * numa_mem__placement then asks the kernel (move_pages) where each page is.
 */
#include "numa/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hugepages.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif
#ifndef MFD_HUGE_1GB
#define MFD_HUGE_1GB (30U << 26)
#endif

#define MIB ((uint64_t)1024 * 1024)

/*
 * Hugepages available for a new mapping bound to `node` (-1 = any): the
 * node's free pages, capped by the host's free pages not already reserved by
 * other mappings. Also returns the node's (or host's) nr_hugepages, for the
 * "reserve with" hint, and that file's path.
 */
static int hugepages_available(int node, enum page_size s, uint64_t *avail, uint64_t *nr,
			       char *nr_path, size_t nr_path_len)
{
	uint64_t page = page_size__bytes(s);
	struct hugepages_count sys, on_node;
	int r;

	r = hugepages__count(HUGEPAGES_SYSFS, page, -1, &sys);
	if (r < 0) {
		hugepages__nr_path(HUGEPAGES_SYSFS, page, -1, nr_path, nr_path_len);
		return r;
	}
	*avail = sys.free > sys.reserved ? sys.free - sys.reserved : 0;
	hugepages__nr_path(HUGEPAGES_SYSFS, page, node, nr_path, nr_path_len);
	if (node < 0) {
		*nr = sys.total;
		return 0;
	}
	r = hugepages__count(HUGEPAGES_SYSFS, page, node, &on_node);
	if (r < 0)
		return r;
	if (on_node.free < *avail)
		*avail = on_node.free;
	*nr = on_node.total;
	return 0;
}

/* A libnuma node mask with only `node` set; NULL on allocation failure. */
static struct bitmask *node_mask(int node)
{
	struct bitmask *bm = numa_allocate_nodemask();

	if (bm)
		numa_bitmask_setbit(bm, (unsigned)node);
	return bm;
}

static int check_node(int node, struct err *e)
{
	int max;

	if (node < 0)
		return 0;
	if (numa_available() < 0) {
		if (node == 0)
			return 0;     /* no NUMA in this kernel: everything is node 0 */
		return err__set(e, -EINVAL, "memory: node %d: this kernel has no NUMA support (only node 0)", node);
	}
	max = numa_max_node();
	if (node > max || !numa_bitmask_isbitset(numa_nodes_ptr, (unsigned)node))
		return err__set(e, -EINVAL, "memory: node %d does not exist on this host (highest node %d)", node, max);
	if (numa_node_size64(node, NULL) <= 0)
		return err__set(e, -EINVAL, "memory: node %d has no memory", node);
	return 0;
}

/* mmap MAP_SHARED with the thread's memory policy bound to `node`, so hugetlb's reservation counts that node's pages.
 * Takes `fd`: closes it on failure. */
static int map_bound(struct numa_mem *mem, int fd, uint64_t size, uint64_t page, int flags, int node)
{
	struct bitmask *old = NULL, *bind = NULL;
	int mode = MPOL_DEFAULT, r;
	bool rebind = false;

	if (node >= 0 && numa_available() >= 0) {
		old = numa_allocate_nodemask();
		bind = node_mask(node);
		if (old && bind &&
		    get_mempolicy(&mode, old->maskp, old->size + 1, NULL, 0) == 0 &&
		    set_mempolicy(MPOL_BIND, bind->maskp, bind->size + 1) == 0)
			rebind = true;
	}
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | flags, fd, 0);
	if (mem->base == MAP_FAILED) {
		r = -errno;
		mem->base = NULL;
		close(fd);
	} else {
		mem->fd = fd;
		mem->size = size;
		mem->page_size = page;
		r = 0;
	}
	if (rebind) {
		if (mode == MPOL_DEFAULT)
			set_mempolicy(MPOL_DEFAULT, NULL, 0);
		else
			set_mempolicy(mode, old->maskp, old->size + 1);
	}
	if (old)
		numa_bitmask_free(old);
	if (bind)
		numa_bitmask_free(bind);
	return r;
}

/* Writes one byte per page (for kernels before 5.14 without MADV_POPULATE_WRITE). */
static void touch_pages(uint8_t *base, uint64_t size, uint64_t page)
{
	volatile uint8_t *p = base;
	uint64_t off;

	for (off = 0; off < size; off += page)
		p[off] = p[off];
}

static int prefault(struct numa_mem *mem, const struct numa_mem_spec *m, enum page_size ps,
		    struct err *e)
{
	int err;

	if (madvise(mem->base, mem->size, MADV_POPULATE_WRITE) == 0)
		return 0;
	err = -errno;
	if (err == -EINVAL) {
		/* kernel without MADV_POPULATE_WRITE: pages are reserved (hugetlb) so touching is safe */
		touch_pages(mem->base, mem->size, mem->page_size);
		return 0;
	}
	return err__set(e, err, "memory: prefault of %" PRIu64 " MiB of %s pages on node %d: %s%s",
			mem->size / MIB, page_size__name(ps), m->node, strerror(-err),
			err == -EFAULT || err == -ENOMEM ?
			" (hugepages taken by another process since the check, or the node is out of memory)" : "");
}

/* Creates, maps, binds, prefaults and locks with page size `ps`. */
static int create_with(struct numa_mem *mem, const struct numa_mem_spec *m, enum page_size ps,
		       struct err *e)
{
	uint64_t page = page_size__bytes(ps);
	unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int fd, r;

	if (ps == PAGE_2M)
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	else if (ps == PAGE_1G)
		flags |= MFD_HUGETLB | MFD_HUGE_1GB;
	fd = memfd_create("rtvmm-ram", flags);
	if (fd < 0) {
		r = -errno;
		return err__set(e, r, "memory: memfd_create(%s pages): %s%s", page_size__name(ps), strerror(-r),
				ps != PAGE_4K && r == -EINVAL ?
				" (kernel without hugetlbfs or this hugepage size)" : "");
	}
	if (ftruncate(fd, (off_t)m->size) < 0) {
		r = -errno;
		close(fd);
		return err__set(e, r, "memory: sizing the %s-page memfd to %" PRIu64 " bytes: %s",
				page_size__name(ps), m->size, strerror(-r));
	}
	/* Hugepages: no MAP_NORESERVE, so the pages are reserved now. map_bound closes fd on error. */
	r = map_bound(mem, fd, m->size, page, ps == PAGE_4K ? MAP_NORESERVE : 0, m->node);
	if (r < 0)
		return err__set(e, r, "memory: mmap of %" PRIu64 " MiB of %s pages on node %d: %s%s",
				m->size / MIB, page_size__name(ps), m->node, strerror(-r),
				ps != PAGE_4K && r == -ENOMEM ?
				" (could not reserve the hugepages: taken by another process since the check?)" : "");

	if (m->node >= 0 && numa_available() >= 0) {
		struct bitmask *bm = node_mask(m->node);

		if (!bm) {
			r = -ENOMEM;
			goto err_destroy;
		}
		if (mbind(mem->base, mem->size, MPOL_BIND, bm->maskp, bm->size + 1, 0) < 0) {
			r = -errno;
			numa_bitmask_free(bm);
			err__set(e, r, "memory: mbind(MPOL_BIND, node %d) of %" PRIu64 " MiB: %s",
				 m->node, m->size / MIB, strerror(-r));
			goto err_destroy;
		}
		numa_bitmask_free(bm);
	}
	if (m->prefault) {
		r = prefault(mem, m, ps, e);
		if (r < 0)
			goto err_destroy;
	}
	/*
	 * hugetlb pages are never swapped and the kernel ignores mlock on them
	 * (no VM_LOCKED), yet still checks RLIMIT_MEMLOCK: lock 4K RAM only.
	 */
	if (m->mlock && ps == PAGE_4K && mlock(mem->base, mem->size) < 0) {
		r = -errno;
		err__set(e, r, "memory: mlock of %" PRIu64 " MiB guest RAM: %s%s", m->size / MIB, strerror(-r),
			 r == -ENOMEM || r == -EPERM ?
			 " (RLIMIT_MEMLOCK (ulimit -l) too small; raise it or run with CAP_IPC_LOCK)" : "");
		goto err_destroy;
	}
	return 0;

err_destroy:
	numa_mem__destroy(mem);
	return r;
}

int numa_mem__create(struct numa_mem *mem, const struct numa_mem_spec *m, struct err *e)
{
	enum page_size ps = m->page_size;
	uint64_t page = page_size__bytes(ps);
	int r;

	mem->fd = -1;
	mem->base = NULL;
	if (m->size == 0)
		return err__set(e, -EINVAL, "memory: size is 0");
	if (m->size % page)
		return err__set(e, -EINVAL, "memory: size %" PRIu64 " bytes (%" PRIu64 " MiB) is not a multiple of the %s page size",
				m->size, m->size / MIB, page_size__name(ps));
	r = check_node(m->node, e);
	if (r < 0)
		return r;

	if (ps != PAGE_4K) {
		uint64_t need = m->size / page, avail = 0, nr = 0;
		char nr_path[160] = "", why[512];

		r = hugepages_available(m->node, ps, &avail, &nr, nr_path, sizeof(nr_path));
		if (r == -ENOENT)
			snprintf(why, sizeof(why), "memory: this host has no %s hugepages (no %s), VM needs %" PRIu64,
				 page_size__name(ps), nr_path, need);
		else if (r < 0)
			snprintf(why, sizeof(why), "memory: reading free %s hugepages: %s", page_size__name(ps), strerror(-r));
		else if (avail < need && m->node >= 0)
			snprintf(why, sizeof(why), "memory: node %d has %" PRIu64 " free %s hugepages, VM needs %" PRIu64
				 " (reserve with: echo %" PRIu64 " > %s)",
				 m->node, avail, page_size__name(ps), need, nr + (need - avail), nr_path);
		else if (avail < need)
			snprintf(why, sizeof(why), "memory: the host has %" PRIu64 " free %s hugepages, VM needs %" PRIu64
				 " (reserve with: echo %" PRIu64 " > %s)",
				 avail, page_size__name(ps), need, nr + (need - avail), nr_path);
		if (r < 0 || avail < need) {
			if (!m->allow_fallback)
				return err__set(e, r < 0 ? r : -ENOMEM, "%s", why);
			fprintf(stderr, "rtvmm: warning: %s; using 4K pages (allow_fallback)\n", why);
			ps = PAGE_4K;
		}
	}

	r = create_with(mem, m, ps, e);
	if (r == -ENOMEM && ps != PAGE_4K && m->allow_fallback) {
		/* lost a race for the pages between the check and mmap */
		fprintf(stderr, "rtvmm: warning: %s; using 4K pages (allow_fallback)\n", e ? e->msg : "hugepages short");
		r = create_with(mem, m, PAGE_4K, e);
	}
	return r;
}

void numa_mem__destroy(struct numa_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->base = NULL;
	mem->fd = -1;
}

int numa_mem__placement(const struct numa_mem *mem, struct numa_placement *out)
{
	enum { CHUNK = 4096 };
	void **pages;
	int *status;
	uint64_t page = mem->page_size, off;
	unsigned max_nodes = sizeof(out->pages_per_node) / sizeof(out->pages_per_node[0]);
	struct stat st;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (!mem->base)
		return -EINVAL;
	/* The kernel's page size for the file (hugetlbfs reports its hugepage size), not what was asked for. */
	if (mem->fd >= 0 && fstat(mem->fd, &st) == 0 && st.st_blksize > 0)
		page = (uint64_t)st.st_blksize;
	if (!page)
		return -EINVAL;
	out->page_size = page;
	if (numa_available() >= 0)
		out->nr_nodes = (unsigned)numa_max_node() + 1;
	if (out->nr_nodes > max_nodes)
		out->nr_nodes = max_nodes;

	pages = calloc(CHUNK, sizeof(*pages));
	status = calloc(CHUNK, sizeof(*status));
	if (!pages || !status) {
		r = -ENOMEM;
		goto out_free;
	}
	for (off = 0; off < mem->size;) {
		unsigned long n = 0, i;

		for (; n < CHUNK && off < mem->size; n++, off += page)
			pages[n] = mem->base + off;
		if (move_pages(0, n, pages, NULL, status, 0) < 0) {
			r = -errno;
			goto out_free;
		}
		for (i = 0; i < n; i++) {
			if (status[i] >= 0 && (unsigned)status[i] < max_nodes) {
				out->pages_per_node[status[i]]++;
				if ((unsigned)status[i] >= out->nr_nodes)
					out->nr_nodes = (unsigned)status[i] + 1;
			} else {
				out->pages_unknown++;
			}
		}
	}
out_free:
	free(pages);
	free(status);
	return r;
}
