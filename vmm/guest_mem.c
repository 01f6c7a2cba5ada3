#include "vmm/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
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
