/*
 * KVM's dirty ring. A page is published (to the bitmap a migration copies
 * from) only after KVM_RESET_DIRTY_RINGS write-protected it again: a copy
 * made later holds every write before the reset, and a write after it
 * lands in the ring anew. Harvesting straight into the shared bitmap would
 * let a migration copy a page that the guest then writes before the reset,
 * and that write would be lost.
 */
#include "vmm/dirty_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ull

/* KVM_CHECK_EXTENSION on the VM fd: >0 the largest ring in bytes, 0 none. */
static int vm_cap(int vm_fd, long cap)
{
	int r = ioctl(vm_fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

int dirty_ring__enable(struct dirty_rings *dr, int vm_fd, const struct guest_mem *mem,
		       uint32_t entries, struct err *e)
{
	uint64_t bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
	struct kvm_enable_cap cap = { .args = { bytes } };
	int max;

	memset(dr, 0, sizeof(*dr));
	dr->vm_fd = -1;
	if (entries < DIRTY_RING_MIN_ENTRIES || entries > DIRTY_RING_MAX_ENTRIES ||
	    (entries & (entries - 1)))
		return err__set(e, -EINVAL, "dirty_ring %u: a power of two from %u to %u entries",
				entries, DIRTY_RING_MIN_ENTRIES, DIRTY_RING_MAX_ENTRIES);
	/* Acquire/release on each entry's flags where KVM offers it; x86 orders them anyway. */
	cap.cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	max = vm_cap(vm_fd, cap.cap);
	if (!max) {
		cap.cap = KVM_CAP_DIRTY_LOG_RING;
		max = vm_cap(vm_fd, cap.cap);
	}
	if (!max)
		return err__set(e, -ENOTSUP, "dirty_ring %u: KVM lacks KVM_CAP_DIRTY_LOG_RING on this "
				"host (Linux 5.11 or later); a migration uses KVM_GET_DIRTY_LOG", entries);
	if (bytes > (uint64_t)max)
		return err__set(e, -ENOTSUP, "dirty_ring %u: KVM's ring holds at most %u entries here",
				entries, (unsigned)(max / sizeof(struct kvm_dirty_gfn)));
	if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return err__set(e, -errno, "KVM_ENABLE_CAP KVM_CAP_DIRTY_LOG_RING%s %u entries: %s",
				cap.cap == KVM_CAP_DIRTY_LOG_RING_ACQ_REL ? "_ACQ_REL" : "", entries,
				strerror(errno));
	dr->entries = entries;
	dr->vm_fd = vm_fd;
	dr->mem = mem;
	return 0;
}

int dirty_ring__add_vcpu(struct dirty_rings *dr, unsigned index, unsigned nr, int vcpu_fd)
{
	size_t bytes = (size_t)dr->entries * sizeof(struct kvm_dirty_gfn);
	pthread_mutexattr_t attr;
	struct dirty_ring *r;

	if (!dr->rings) {
		dr->rings = calloc(nr, sizeof(*dr->rings));
		if (!dr->rings)
			return -ENOMEM;
		dr->nr = nr;
	}
	if (index >= dr->nr)
		return -EINVAL;
	r = &dr->rings[index];
	r->pages = calloc(dr->entries, sizeof(*r->pages));
	if (!r->pages)
		return -ENOMEM;
	r->gfns = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
		       (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
	if (r->gfns == MAP_FAILED) {
		r->gfns = NULL;
		free(r->pages);
		r->pages = NULL;
		return -errno;
	}
	r->set = dr;
	/* Shared by a SCHED_FIFO vCPU and the migration's thread: the holder inherits the priority. */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&r->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return 0;
}

/*
 * Collects the ring's dirty entries as pages, marks them harvested, gives
 * them back to KVM and only then ors them into `bits` (atomically when
 * `shared`). Under r->lock.
 */
static int harvest_into(struct dirty_ring *r, uint64_t *bits, bool shared)
{
	struct dirty_rings *dr = r->set;
	uint32_t n = 0, marked = 0, i;

	while (marked < dr->entries) {
		struct kvm_dirty_gfn *g = &r->gfns[r->next & (dr->entries - 1)];
		uint32_t slot;
		uint64_t off;

		if (!(__atomic_load_n(&g->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		slot = g->slot & 0xffff;     /* address space 0 (bits 16-31) is the only one on x86 */
		off = g->offset;
		/* KVM's own entries; one outside guest RAM is given back unrecorded. */
		if (slot < dr->mem->nr_regions && off < dr->mem->regions[slot].size / PAGE)
			r->pages[n++] = dr->mem->regions[slot].fd_offset / PAGE + off;
		__atomic_store_n(&g->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		r->next++;
		marked++;
	}
	if (!marked)
		return 0;
	if (ioctl(dr->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		uint64_t bit = 1ull << (r->pages[i] % 64);

		if (shared)
			__atomic_fetch_or(&bits[r->pages[i] / 64], bit, __ATOMIC_RELAXED);
		else
			bits[r->pages[i] / 64] |= bit;
	}
	return 0;
}

int dirty_ring__start(struct dirty_rings *dr)
{
	uint64_t words = (dr->mem->size / PAGE + 63) / 64, *bits;
	unsigned i;
	int err = 0;

	if (!__atomic_load_n(&dr->bits, __ATOMIC_ACQUIRE)) {
		bits = calloc(words, 8);
		if (!bits)
			return -ENOMEM;
		dr->words = words;
		__atomic_store_n(&dr->bits, bits, __ATOMIC_RELEASE);
	}
	/* What a previous dirty log left in the rings is not this one's. */
	for (i = 0; i < dr->nr && !err; i++) {
		pthread_mutex_lock(&dr->rings[i].lock);
		err = harvest_into(&dr->rings[i], dr->bits, true);
		pthread_mutex_unlock(&dr->rings[i].lock);
	}
	for (i = 0; i < dr->words; i++)
		__atomic_store_n(&dr->bits[i], 0, __ATOMIC_RELAXED);
	return err;
}

int dirty_ring__harvest(struct dirty_ring *r)
{
	uint64_t *bits = __atomic_load_n(&r->set->bits, __ATOMIC_ACQUIRE);
	int err;

	/* KVM fills a ring only while a memslot logs, after dirty_ring__start made the bitmap. */
	if (!bits)
		return -EPROTO;
	pthread_mutex_lock(&r->lock);
	err = harvest_into(r, bits, true);
	pthread_mutex_unlock(&r->lock);
	return err;
}

int dirty_ring__take(struct dirty_rings *dr, uint64_t *bits)
{
	unsigned i;
	int err = 0;

	if (!dr->bits)
		return -EPROTO;
	for (i = 0; i < dr->nr && !err; i++) {
		pthread_mutex_lock(&dr->rings[i].lock);
		err = harvest_into(&dr->rings[i], bits, false);
		pthread_mutex_unlock(&dr->rings[i].lock);
	}
	/* What vCPUs harvested themselves at a full ring, each page already given back. */
	for (i = 0; i < dr->words; i++)
		bits[i] |= __atomic_exchange_n(&dr->bits[i], 0, __ATOMIC_RELAXED);
	return err;
}

void dirty_ring__destroy(struct dirty_rings *dr)
{
	unsigned i;

	for (i = 0; i < dr->nr; i++) {
		if (!dr->rings[i].gfns)
			continue;
		munmap(dr->rings[i].gfns, (size_t)dr->entries * sizeof(struct kvm_dirty_gfn));
		free(dr->rings[i].pages);
		pthread_mutex_destroy(&dr->rings[i].lock);
	}
	free(dr->rings);
	free(dr->bits);
	memset(dr, 0, sizeof(*dr));
	dr->vm_fd = -1;
}
