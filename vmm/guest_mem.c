#include "vmm/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void guest_mem__layout(struct guest_mem *mem, uint64_t size)
{
	uint64_t low = size < GUEST_PCI_HOLE_START ? size : GUEST_PCI_HOLE_START;

	mem->size = size;
	mem->nr_regions = 1;
	mem->regions[0] = (struct guest_region){ .gpa = 0, .size = low, .fd_offset = 0 };
	if (size > low) {
		mem->regions[1] = (struct guest_region){
			.gpa = GUEST_PCI_HOLE_END, .size = size - low, .fd_offset = low };
		mem->nr_regions = 2;
	}
}

int guest_mem__map_fd(struct guest_mem *mem, int fd, uint64_t size, uint64_t page_size)
{
	uint8_t *base;
	int err;

	mem->fd = -1;
	mem->base = NULL;
	mem->log = NULL;
	mem->log_fd = -1;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		close(fd);
		return err;
	}
	err = guest_mem__adopt(mem, fd, base, size, page_size);
	if (err) {
		munmap(base, size);
		close(fd);
	}
	return err;
}

int guest_mem__adopt(struct guest_mem *mem, int fd, uint8_t *base, uint64_t size, uint64_t page_size)
{
	unsigned i;

	/*
	 * The fd is shared with vhost-user backends: seal its size so that no one
	 * (not even us by mistake) can shrink it under their mappings (SIGBUS).
	 * Files created without MFD_ALLOW_SEALING answer EPERM: nothing to seal.
	 */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0 && errno != EPERM)
		return -errno;
	memset(mem, 0, sizeof(*mem));
	mem->log_fd = -1;
	mem->fd = fd;
	mem->base = base;
	mem->page_size = page_size;
	guest_mem__layout(mem, size);
	for (i = 0; i < mem->nr_regions; i++)
		mem->regions[i].hva = mem->base + mem->regions[i].fd_offset;
	return 0;
}

int guest_mem__create(struct guest_mem *mem, uint64_t size)
{
	int fd, err;

	mem->fd = -1;
	mem->base = NULL;
	mem->log = NULL;
	mem->log_fd = -1;
	fd = memfd_create("rtvmm-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return guest_mem__map_fd(mem, fd, size, 4096);
}

void guest_mem__destroy(struct guest_mem *mem)
{
	guest_mem__log_stop(mem);
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->base = NULL;
	mem->fd = -1;
}

void *guest_mem__ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	unsigned i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = guest_mem__ptr(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	guest_mem__log_write(mem, gpa, len);
	return 0;
}

uint64_t guest_mem__region_end(const struct guest_mem *mem, uint64_t gpa)
{
	unsigned i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r->gpa + r->size;
	}
	return 0;
}

uint64_t guest_mem__low_size(const struct guest_mem *mem)
{
	return mem->regions[0].size;
}

/* ---- the dirty log ---- */

/* The end of the highest RAM region: what the log covers from 0. */
static uint64_t ram_end(const struct guest_mem *mem)
{
	uint64_t end = 0;
	unsigned i;

	for (i = 0; i < mem->nr_regions; i++)
		if (mem->regions[i].gpa + mem->regions[i].size > end)
			end = mem->regions[i].gpa + mem->regions[i].size;
	return end;
}

uint64_t guest_mem__log_bytes(const struct guest_mem *mem)
{
	uint64_t pages = (ram_end(mem) + GUEST_MEM_LOG_PAGE - 1) / GUEST_MEM_LOG_PAGE;

	/* A bit a page, in whole pages of log (64-bit words: DPDK ORs whole words in). */
	return ((pages + 7) / 8 + 4095) / 4096 * 4096;
}

int guest_mem__log_start(struct guest_mem *mem)
{
	uint64_t size = guest_mem__log_bytes(mem);
	uint64_t *bits;
	int fd, err;

	if (__atomic_load_n(&mem->log, __ATOMIC_RELAXED))
		return -EBUSY;
	fd = memfd_create("rtvmm-dirty-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* Backends map it: sealed, none of them can shrink it under our mapping (SIGBUS). */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	bits = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (bits == MAP_FAILED) {
		err = -errno;
		close(fd);
		return err;
	}
	mem->log_fd = fd;
	mem->log_size = size;
	/* Writers from here on: the mapping is complete before they can see it. */
	__atomic_store_n(&mem->log, bits, __ATOMIC_SEQ_CST);
	return 0;
}

void guest_mem__log_stop(struct guest_mem *mem)
{
	uint64_t *bits = __atomic_load_n(&mem->log, __ATOMIC_RELAXED);
	unsigned spins = 0;

	if (!bits)
		return;
	__atomic_store_n(&mem->log, NULL, __ATOMIC_SEQ_CST);
	/* A writer that saw the log before it went is inside a mark: a few stores, then out. */
	while (__atomic_load_n(&mem->log_users, __ATOMIC_SEQ_CST))
		if (++spins % 64 == 0)
			sched_yield();
	munmap(bits, mem->log_size);
	close(mem->log_fd);
	mem->log_fd = -1;
	mem->log_size = 0;
}

/* Sets the bits of pages [first, last] of the log `bits` of `bytes` bytes. */
static void mark_pages(uint64_t *bits, uint64_t bytes, uint64_t first, uint64_t last)
{
	uint64_t p;

	if (last >= bytes * 8)
		last = bytes * 8 - 1;
	for (p = first; p <= last; p++) {
		/* Whole words at once where the range covers them. */
		if (p % 64 == 0 && last - p >= 63) {
			__atomic_store_n(&bits[p / 64], ~0ull, __ATOMIC_RELEASE);
			p += 63;
			continue;
		}
		__atomic_fetch_or(&bits[p / 64], 1ull << (p % 64), __ATOMIC_RELEASE);
	}
}

void guest_mem__log_mark(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	/* The writers' count is shared state of a const guest_mem (see struct guest_mem). */
	unsigned *users = (unsigned *)&mem->log_users;
	uint64_t *bits, end;
	unsigned i;

	__atomic_fetch_add(users, 1, __ATOMIC_SEQ_CST);
	bits = __atomic_load_n(&mem->log, __ATOMIC_SEQ_CST);
	for (i = 0; bits && i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];
		uint64_t from, to;

		/* Only RAM is logged: the part of the range inside this region. */
		end = gpa + len < gpa ? UINT64_MAX : gpa + len;
		from = gpa > r->gpa ? gpa : r->gpa;
		to = end < r->gpa + r->size ? end : r->gpa + r->size;
		if (from < to)
			mark_pages(bits, mem->log_size, from / GUEST_MEM_LOG_PAGE,
				   (to - 1) / GUEST_MEM_LOG_PAGE);
	}
	__atomic_fetch_sub(users, 1, __ATOMIC_RELEASE);
}

void guest_mem__log_host_mark(const struct guest_mem *mem, const void *hva, uint64_t len)
{
	uintptr_t h = (uintptr_t)hva;
	unsigned i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];
		uintptr_t start = (uintptr_t)r->hva;

		if (h >= start && h - start < r->size) {
			uint64_t off = h - start, n = len < r->size - off ? len : r->size - off;

			guest_mem__log_mark(mem, r->gpa + off, n);
			return;
		}
	}
}

void guest_mem__log_take(const struct guest_mem *mem, uint64_t *bits)
{
	uint64_t *log = __atomic_load_n(&mem->log, __ATOMIC_ACQUIRE);
	uint64_t words, w;
	unsigned i;

	if (!log)
		return;
	words = mem->log_size / 8;
	for (w = 0; w < words; w++) {
		uint64_t v;

		if (!__atomic_load_n(&log[w], __ATOMIC_RELAXED))
			continue;
		/* The pages are read after this: a write marked later is in the next harvest. */
		v = __atomic_exchange_n(&log[w], 0, __ATOMIC_ACQ_REL);
		while (v) {
			uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(v), gpa = page * GUEST_MEM_LOG_PAGE;

			v &= v - 1;
			for (i = 0; i < mem->nr_regions; i++) {
				const struct guest_region *r = &mem->regions[i];

				/* A bit outside RAM (a backend's stray write in the hole) names no page. */
				if (gpa >= r->gpa && gpa - r->gpa < r->size) {
					uint64_t p = (r->fd_offset + (gpa - r->gpa)) / GUEST_MEM_LOG_PAGE;

					bits[p / 64] |= 1ull << (p % 64);
					break;
				}
			}
		}
	}
}
