/*
 * Guest RAM: one memfd mapped MAP_SHARED, split into regions around the PCI hole.
 *
 * And the dirty log of RAM written outside KVM's view (a live migration's
 * pre-copy): KVM's own log sees only what the guest's vCPUs write; the
 * monitor's devices (used rings, a disk's read data, acks) and vhost-user
 * backends (RX buffers, used rings) write guest RAM from user space. They all
 * mark what they wrote in one log, in the vhost-user format (its spec,
 * "Migration"): one bit per 4 KiB page of guest-physical address, the page at
 * `gpa` at byte gpa / 4096 / 8, bit (gpa / 4096) % 8, covering address 0 to
 * the end of the highest RAM region, in a memfd (MAP_SHARED) that backends
 * map (SET_LOG_BASE). A writer marks a page after writing it; the harvest
 * (guest_mem__log_take) clears each word with one atomic exchange before the
 * pages are read, so that a write is either in the copy or marked again.
 */
#ifndef RTVMM_GUEST_MEM_H
#define RTVMM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2

/* One contiguous guest-physical range backed by [fd_offset, fd_offset+size) of the memfd. */
struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t fd_offset;
	uint8_t *hva;
};

struct guest_mem {
	int fd;            /* memfd backing all of RAM (shareable with a vhost-user backend) */
	uint8_t *base;     /* host mapping of the whole memfd */
	uint64_t size;     /* total RAM in bytes */
	uint64_t page_size;/* backing page size in bytes (4 KiB, or a hugepage size) */
	unsigned nr_regions;
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];

	/*
	 * The dirty log (guest_mem__log_start): its bits while logging, NULL
	 * otherwise (writers read it with one relaxed atomic load); its memfd and
	 * size as backends get them. `log_users` counts writers inside
	 * guest_mem__log_mark (stop waits for none before it unmaps): shared state
	 * that writers holding a const guest_mem update too.
	 */
	uint64_t *log;
	int log_fd;
	uint64_t log_size;
	unsigned log_users;
};

/* Start of the 32-bit PCI/MMIO hole; RAM above it is relocated to 4 GiB. */
#define GUEST_PCI_HOLE_START 0xC0000000ULL
#define GUEST_PCI_HOLE_END   0x100000000ULL

/* Lays out `size` bytes of RAM in regions (low RAM below the PCI hole, the rest from 4 GiB). */
void guest_mem__layout(struct guest_mem *mem, uint64_t size);

/* Creates a 4 KiB-page memfd, sizes it and maps it MAP_SHARED; returns 0 or -errno. */
int guest_mem__create(struct guest_mem *mem, uint64_t size);

/*
 * Takes ownership of `fd` (already sized to `size`), maps it MAP_SHARED and
 * lays out the regions; `page_size` is recorded. On error the fd is closed.
 */
int guest_mem__map_fd(struct guest_mem *mem, int fd, uint64_t size, uint64_t page_size);

/*
 * Takes ownership of `base`, a MAP_SHARED mapping of all `size` bytes of
 * memfd `fd` made by a placement layer (hugepages, NUMA binding): seals the
 * fd's size and lays out the regions. On error the caller keeps both.
 */
int guest_mem__adopt(struct guest_mem *mem, int fd, uint8_t *base, uint64_t size, uint64_t page_size);
void guest_mem__destroy(struct guest_mem *mem);

/* Host pointer for [gpa, gpa+len) if it lies entirely inside one RAM region, else NULL. */
void *guest_mem__ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/*
 * Copies into guest RAM (marked in the dirty log when it runs); -EFAULT if the
 * range is not entirely RAM.
 */
int guest_mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len);

/* End of the RAM region that contains gpa (exclusive), or 0. */
uint64_t guest_mem__region_end(const struct guest_mem *mem, uint64_t gpa);

/* Bytes of RAM below 4 GiB. */
uint64_t guest_mem__low_size(const struct guest_mem *mem);

/* ---- the dirty log ---- */

#define GUEST_MEM_LOG_PAGE 4096u

/* Bytes of log covering every RAM region's guest-physical pages, a multiple of 4 KiB. */
uint64_t guest_mem__log_bytes(const struct guest_mem *mem);

/*
 * Starts the dirty log: a new sealed memfd of guest_mem__log_bytes, mapped
 * MAP_SHARED, all clear (mem->log_fd and log_size are what backends get).
 * -EBUSY when it runs already; -errno. From the thread that owns the VM's
 * migration; writers may run meanwhile.
 */
int guest_mem__log_start(struct guest_mem *mem);

/*
 * Stops the log: writers see it off at once, and once none is inside a mark
 * it is unmapped and its fd closed (a backend's own mapping of it stays its
 * own). Nothing when it is off.
 */
void guest_mem__log_stop(struct guest_mem *mem);

/* The slow path of guest_mem__log_write: marks the pages of [gpa, gpa+len) that are RAM. */
void guest_mem__log_mark(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/*
 * After a write of guest RAM from user space, [gpa, gpa+len): marks its pages
 * while the log runs. Off, it costs one relaxed load.
 */
static inline void guest_mem__log_write(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (__atomic_load_n(&mem->log, __ATOMIC_RELAXED) && len)
		guest_mem__log_mark(mem, gpa, len);
}

/* The same for a write through a host pointer into guest RAM (guest_mem__ptr's, an iovec). */
void guest_mem__log_host_mark(const struct guest_mem *mem, const void *hva, uint64_t len);

static inline void guest_mem__log_host(const struct guest_mem *mem, const void *hva, uint64_t len)
{
	if (__atomic_load_n(&mem->log, __ATOMIC_RELAXED) && len)
		guest_mem__log_host_mark(mem, hva, len);
}

/*
 * The harvest: ORs the pages marked since the last call into `bits`, one bit
 * per 4 KiB page of guest RAM by memfd offset (as vm__take_dirty), and clears
 * them in the log (an atomic exchange per 64-bit word). Nothing when it is off.
 */
void guest_mem__log_take(const struct guest_mem *mem, uint64_t *bits);

#endif
