/* Guest RAM: one memfd mapped MAP_SHARED, split into regions around the PCI hole. */
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

/* Copies into guest RAM; -EFAULT if the range is not entirely RAM. */
int guest_mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len);

/* End of the RAM region that contains gpa (exclusive), or 0. */
uint64_t guest_mem__region_end(const struct guest_mem *mem, uint64_t gpa);

/* Bytes of RAM below 4 GiB. */
uint64_t guest_mem__low_size(const struct guest_mem *mem);

#endif
