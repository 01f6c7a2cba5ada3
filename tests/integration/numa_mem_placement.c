/*
 * numa/: guest RAM on real hugepages of this machine, bound, prefaulted,
 * locked and verified; a hugepage shortage fails before anything is touched
 * (never a SIGBUS); allow_fallback gives 4K pages with a warning.
 *
 * Reserves hugepages on node 0 for the run and restores the old count on
 * every exit path (exit, failed check, fatal signal). Exits 77 only when no
 * hugepage can be reserved at all, saying why.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/memfd.h>
#include <numa.h>
#include <numaif.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "numa/mem.h"

/* ASan's mlock/mlockall interceptors do nothing and return 0. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define MIB ((uint64_t)1024 * 1024)
#define NODE 0
#define HP2M_NR "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
#define HP2M_FREE "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages"
#define HP2M_RESV "/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"
#define HP1G_NR "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"

static int failures;

#define CHECK(cond, ...) do {                                                   \
	if (!(cond)) {                                                          \
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
		fprintf(stderr, __VA_ARGS__);                                   \
		fprintf(stderr, "\n");                                          \
		failures++;                                                     \
	}                                                                       \
} while (0)

/* ---- hugepage reservation, restored on every exit path ---- */

struct restore {
	const char *path;
	char old[32];          /* preformatted for the signal handler */
	bool armed;
};
static struct restore restore_2m = { HP2M_NR }, restore_1g = { HP1G_NR };

static void restore_one(struct restore *r)
{
	int fd;

	if (!r->armed)
		return;
	fd = open(r->path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, r->old, strlen(r->old)) < 0) {
			/* nothing more to do from a signal handler */
		}
		close(fd);
	}
	r->armed = false;
}

static void restore_all(void)
{
	restore_one(&restore_1g);
	restore_one(&restore_2m);
}

static void on_fatal(int sig)
{
	static const char msg[] = "FAIL: fatal signal (SIGBUS would mean a hugepage shortage was not caught); "
				  "restoring nr_hugepages\n";

	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* ignore */
	}
	restore_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int read_u64(const char *path, uint64_t *v)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	*v = strtoull(buf, NULL, 10);
	return 0;
}

static int write_u64(const char *path, uint64_t v)
{
	char buf[32];
	int fd = open(path, O_WRONLY), len, r = 0;

	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	if (write(fd, buf, (size_t)len) != len)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Raises `r->path` by `extra` pages; returns how many of them the kernel
 * actually allocated (it may give fewer when memory is fragmented), or -errno.
 */
static int64_t reserve(struct restore *r, uint64_t extra)
{
	uint64_t old, now;
	int err;

	err = read_u64(r->path, &old);
	if (err < 0)
		return err;
	snprintf(r->old, sizeof(r->old), "%" PRIu64, old);
	r->armed = true;
	err = write_u64(r->path, old + extra);
	if (err < 0) {
		r->armed = false;
		return err;
	}
	if (read_u64(r->path, &now) < 0)
		return -EIO;
	return (int64_t)(now - old);
}

/* ---- what the kernel says about a mapping ---- */

struct smaps_info {
	uint64_t kernel_page_kb;
	uint64_t hugetlb_kb;       /* Shared_Hugetlb + Private_Hugetlb */
	uint64_t rss_kb;
	bool locked;               /* VmFlags "lo" */
	bool hugetlb;              /* VmFlags "ht" */
	bool shared;               /* VmFlags "sh" */
};

static int smaps_of(const void *addr, struct smaps_info *si)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, found = false;

	memset(si, 0, sizeof(*si));
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		uint64_t kb;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {     /* a mapping's header line */
			in = start == (unsigned long)addr;
			found |= in;
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, "KernelPageSize: %" SCNu64, &kb) == 1)
			si->kernel_page_kb = kb;
		else if (sscanf(line, "Shared_Hugetlb: %" SCNu64, &kb) == 1 ||
			 sscanf(line, "Private_Hugetlb: %" SCNu64, &kb) == 1)
			si->hugetlb_kb += kb;
		else if (sscanf(line, "Rss: %" SCNu64, &kb) == 1)
			si->rss_kb = kb;
		else if (!strncmp(line, "VmFlags:", 8)) {
			si->locked = strstr(line, " lo") != NULL;
			si->hugetlb = strstr(line, " ht") != NULL;
			si->shared = strstr(line, " sh") != NULL;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

/* The mapping's own policy (set by mbind): MPOL_BIND to exactly `node`. */
static bool bound_to(void *addr, int node)
{
	struct bitmask *bm = numa_allocate_nodemask();
	int mode = -1;
	bool ok;

	ok = get_mempolicy(&mode, bm->maskp, bm->size + 1, addr, MPOL_F_ADDR) == 0 &&
	     mode == MPOL_BIND && numa_bitmask_weight(bm) == 1 && numa_bitmask_isbitset(bm, (unsigned)node);
	numa_bitmask_free(bm);
	return ok;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct numa_mem_spec plan_mem(uint64_t size, enum page_size ps, int node, bool prefault,
				   bool mlock, bool fallback)
{
	struct numa_mem_spec m;

	memset(&m, 0, sizeof(m));
	m.size = size;
	m.page_size = ps;
	m.node = node;
	m.prefault = prefault;
	m.mlock = mlock;
	m.allow_fallback = fallback;
	return m;
}

/* numa_mem__create with stderr captured into `warn`. */
static int create_capturing(struct numa_mem *mem, const struct numa_mem_spec *m, struct err *e,
			    char *warn, size_t len)
{
	FILE *tmp = tmpfile();
	int saved = dup(2), r;
	size_t n;

	fflush(stderr);
	dup2(fileno(tmp), 2);
	r = numa_mem__create(mem, m, e);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(warn, 1, len - 1, tmp);
	warn[n] = '\0';
	fclose(tmp);
	return r;
}

/* Creates, times and verifies guest RAM: every page on `node`, of `page` bytes, locked, bound. */
static double create_and_verify(const char *what, uint64_t size, enum page_size ps, uint64_t page)
{
	struct numa_mem_spec m = plan_mem(size, ps, NODE, true, true, false);
	struct numa_mem mem;
	struct numa_placement pl;
	struct smaps_info si;
	struct err e = { 0 };
	double t0, ms;
	uint64_t i;
	int r;

	t0 = now_ms();
	r = numa_mem__create(&mem, &m, &e);
	ms = now_ms() - t0;
	CHECK(r == 0, "%s: %d %s", what, r, e.msg);
	if (r)
		return -1;
	CHECK(mem.page_size == page, "%s: page_size %" PRIu64, what, mem.page_size);
	CHECK(numa_mem__placement(&mem, &pl) == 0, "%s: placement", what);
	CHECK(pl.page_size == page, "%s: kernel page size %" PRIu64 ", want %" PRIu64, what, pl.page_size, page);
	CHECK(pl.pages_per_node[NODE] == size / page && pl.pages_unknown == 0,
	      "%s: node %d has %" PRIu64 " of %" PRIu64 " pages, %" PRIu64 " unknown", what, NODE,
	      pl.pages_per_node[NODE], size / page, pl.pages_unknown);
	for (i = 0; i < pl.nr_nodes; i++)
		CHECK(i == NODE || pl.pages_per_node[i] == 0, "%s: pages on node %" PRIu64, what, i);
	CHECK(bound_to(mem.base, NODE), "%s: mapping not MPOL_BIND to node %d", what, NODE);
	CHECK(smaps_of(mem.base, &si) == 0, "%s: mapping not in smaps", what);
	CHECK(si.kernel_page_kb * 1024 == page, "%s: smaps KernelPageSize %" PRIu64 " kB", what, si.kernel_page_kb);
	CHECK(si.shared, "%s: smaps VmFlags: not MAP_SHARED", what);
	if (ps == PAGE_4K) {
		CHECK(si.locked || UNDER_ASAN, "%s: smaps VmFlags: not locked", what);
		CHECK(si.rss_kb * 1024 == size, "%s: smaps Rss %" PRIu64 " kB (prefault)", what, si.rss_kb);
	} else   /* hugetlb: unswappable, the kernel never marks it VM_LOCKED */
		CHECK(si.hugetlb && si.hugetlb_kb * 1024 == size, "%s: smaps hugetlb %d, %" PRIu64 " kB (prefault)",
		      what, si.hugetlb, si.hugetlb_kb);
	memset(mem.base, 0xa5, 4096);
	mem.base[size - 1] = 0x5a;
	CHECK(mem.base[size - 1] == 0x5a && mem.base[100] == 0xa5, "%s: RAM not writable", what);
	printf("%-26s %6" PRIu64 " MiB: create+bind+prefault+mlock %8.2f ms, %" PRIu64 " pages on node %d\n",
	       what, size / MIB, ms, pl.pages_per_node[NODE], NODE);
	numa_mem__destroy(&mem);
	return ms;
}

static double min3(double a, double b, double c)
{
	double m = a < b ? a : b;

	return m < c ? m : c;
}

int main(void)
{
	const uint64_t size = 64 * MIB, pages = size / (2 * MIB);
	struct numa_mem mem, held;
	struct numa_mem_spec m;
	struct err e = { 0 };
	uint64_t free_before, free_after, resv_before, resv_after, avail;
	void *p;
	double t2m, t4k;
	char warn[1024], want[256];
	int64_t got;
	int r, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(restore_all);
	signal(SIGBUS, on_fatal);
	signal(SIGSEGV, on_fatal);
	signal(SIGABRT, on_fatal);
	signal(SIGTERM, on_fatal);
	signal(SIGINT, on_fatal);

	if (numa_available() < 0) {
		printf("SKIP: libnuma says this kernel has no NUMA support\n");
		return 77;
	}
	got = reserve(&restore_2m, pages);
	if (got < 0) {
		printf("SKIP: cannot reserve 2M hugepages: write %s: %s (needs root)\n", HP2M_NR, strerror((int)-got));
		return 77;
	}
	if (got < (int64_t)pages) {
		printf("SKIP: the kernel gave %" PRId64 " of %" PRIu64 " 2M hugepages on node 0 (memory fragmented?)\n",
		       got, pages);
		return 77;
	}
	printf("reserved %" PRIu64 " x 2M hugepages on node %d (nr_hugepages was %s)\n", pages, NODE, restore_2m.old);

	/* 1. 2M pages on node 0: bound, prefaulted, locked; 4K for comparison. */
	t2m = min3(create_and_verify("2M, node 0", size, PAGE_2M, 2 * MIB),
		   create_and_verify("2M, node 0", size, PAGE_2M, 2 * MIB),
		   create_and_verify("2M, node 0", size, PAGE_2M, 2 * MIB));
	t4k = min3(create_and_verify("4K, node 0", size, PAGE_4K, 4096),
		   create_and_verify("4K, node 0", size, PAGE_4K, 4096),
		   create_and_verify("4K, node 0", size, PAGE_4K, 4096));
	printf("prefault 64 MiB (best of 3): 2M %.2f ms, 4K %.2f ms (%.1fx)\n", t2m, t4k, t2m > 0 ? t4k / t2m : 0);

	/* 2. Without prefault the hugepages are still reserved at mmap (HugePages_Rsvd), so no later SIGBUS. */
	read_u64(HP2M_RESV, &resv_before);
	m = plan_mem(size, PAGE_2M, NODE, false, false, false);
	r = numa_mem__create(&mem, &m, &e);
	CHECK(r == 0, "2M without prefault: %d %s", r, e.msg);
	read_u64(HP2M_RESV, &resv_after);
	CHECK(resv_after == resv_before + pages, "reserved at mmap: resv_hugepages %" PRIu64 " -> %" PRIu64,
	      resv_before, resv_after);
	if (r == 0)
		numa_mem__destroy(&mem);

	/* 3. Shortage: hold all reserved pages, then ask for more than are free. */
	m = plan_mem(size, PAGE_2M, NODE, true, false, false);
	r = numa_mem__create(&held, &m, &e);
	CHECK(r == 0, "holding 64 MiB: %d %s", r, e.msg);
	read_u64(HP2M_FREE, &free_before);
	avail = free_before;
	read_u64(HP2M_RESV, &resv_before);
	avail = avail > resv_before ? avail - resv_before : 0;
	m = plan_mem((avail + 2) * 2 * MIB, PAGE_2M, NODE, true, true, false);
	r = numa_mem__create(&mem, &m, &e);
	printf("shortage: %s\n", e.msg);
	CHECK(r == -ENOMEM, "shortage returned %d", r);
	snprintf(want, sizeof(want), "node 0 has %" PRIu64 " free 2M hugepages, VM needs %" PRIu64, avail, avail + 2);
	CHECK(strstr(e.msg, want) != NULL, "message '%s' lacks '%s'", e.msg, want);
	CHECK(strstr(e.msg, "reserve with: echo ") && strstr(e.msg, HP2M_NR), "no reserve hint: %s", e.msg);
	CHECK(mem.base == NULL && mem.fd == -1, "shortage left a mapping");
	read_u64(HP2M_FREE, &free_after);
	CHECK(free_after == free_before, "shortage took hugepages: free %" PRIu64 " -> %" PRIu64, free_before, free_after);

	/* 3b. The reservation itself: a hugetlb mmap without MAP_NORESERVE fails with ENOMEM when short. */
	fd = memfd_create("short", MFD_HUGETLB | MFD_HUGE_2MB);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)((avail + 1) * 2 * MIB)) == 0, "memfd: %s", strerror(errno));
	p = mmap(NULL, (avail + 1) * 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = p == MAP_FAILED ? -errno : 0;
	CHECK(r == -ENOMEM, "short hugetlb mmap returned %d, want -ENOMEM", r);
	if (r == 0)
		munmap(p, (avail + 1) * 2 * MIB);
	close(fd);

	/* 4. allow_fallback: 4K pages on node 0, with a warning. */
	m = plan_mem((avail + 2) * 2 * MIB, PAGE_2M, NODE, true, true, true);
	r = create_capturing(&mem, &m, &e, warn, sizeof(warn));
	CHECK(r == 0, "fallback: %d %s", r, e.msg);
	printf("fallback: %s", warn);
	CHECK(strstr(warn, "warning") && strstr(warn, want) && strstr(warn, "using 4K pages"),
	      "fallback warning '%s'", warn);
	if (r == 0) {
		struct numa_placement pl;

		CHECK(mem.page_size == 4096, "fallback page size %" PRIu64, mem.page_size);
		CHECK(numa_mem__placement(&mem, &pl) == 0 && pl.page_size == 4096 &&
		      pl.pages_per_node[NODE] == m.size / 4096 && pl.pages_unknown == 0,
		      "fallback placement: %" PRIu64 " B pages, %" PRIu64 " on node 0", pl.page_size,
		      pl.pages_per_node[NODE]);
		CHECK(bound_to(mem.base, NODE), "fallback mapping not bound to node 0");
		numa_mem__destroy(&mem);
	}
	if (held.base)
		numa_mem__destroy(&held);

	/* 5. Plan errors that need no pages. */
	m = plan_mem(3 * MIB, PAGE_2M, NODE, true, false, false);
	CHECK(numa_mem__create(&mem, &m, &e) == -EINVAL && strstr(e.msg, "not a multiple of the 2M page size"),
	      "3 MiB of 2M pages: %s", e.msg);
	m = plan_mem(size, PAGE_2M, numa_max_node() + 1, true, false, false);
	snprintf(want, sizeof(want), "node %d does not exist", numa_max_node() + 1);
	CHECK(numa_mem__create(&mem, &m, &e) == -EINVAL && strstr(e.msg, want), "missing node: %s", e.msg);

	/* 6. No node binding (node -1): hugepages from anywhere, checked against the host total. */
	m = plan_mem(size, PAGE_2M, -1, true, false, false);
	r = numa_mem__create(&mem, &m, &e);
	CHECK(r == 0, "unbound 2M: %d %s", r, e.msg);
	if (r == 0) {
		struct numa_placement pl;

		CHECK(numa_mem__placement(&mem, &pl) == 0 && pl.page_size == 2 * MIB &&
		      pl.pages_unknown == 0, "unbound placement");
		numa_mem__destroy(&mem);
	}
	restore_one(&restore_2m);

	/* 7. One 1G page, if the kernel can find one. */
	got = reserve(&restore_1g, 1);
	if (got < 1) {
		printf("SKIP 1G part: could not reserve a 1G hugepage (%s)\n",
		       got < 0 ? strerror((int)-got) : "kernel found no free 1 GiB of contiguous memory");
		restore_one(&restore_1g);
	} else {
		create_and_verify("1G, node 0", 1024 * MIB, PAGE_1G, 1024 * MIB);
		restore_one(&restore_1g);
	}

	if (failures) {
		printf("%d check(s) failed\n", failures);
		return 1;
	}
	printf("all checks passed\n");
	return 0;
}
