/*
 * KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING): per vCPU, KVM appends each guest
 * page the vCPU first writes while its memslot logs (KVM_MEM_LOG_DIRTY_PAGES);
 * the monitor harvests the entries into a bitmap and gives them back
 * (KVM_RESET_DIRTY_RINGS), which write-protects those pages again. A live
 * migration's alternative to KVM_GET_DIRTY_LOG, whose cost grows with guest
 * RAM rather than with what the guest wrote.
 */
#ifndef RTVMM_DIRTY_RING_H
#define RTVMM_DIRTY_RING_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/guest_mem.h"

/* The ring size rtvmm asks for unless told: 64 KiB per vCPU, as QEMU's documentation suggests. */
#define DIRTY_RING_DEFAULT_ENTRIES 4096u
/*
 * KVM's bounds: it keeps 64 entries of a ring spare, plus 512 on an Intel host logging with
 * PML, and refuses a ring that small: 1024 is the least power of two every host takes (QEMU's
 * bound too); at most KVM_DIRTY_RING_MAX_ENTRIES.
 */
#define DIRTY_RING_MIN_ENTRIES 1024u
#define DIRTY_RING_MAX_ENTRIES 65536u

struct dirty_rings;

/* One vCPU's ring, mapped from its fd. */
struct dirty_ring {
	struct dirty_rings *set;
	struct kvm_dirty_gfn *gfns;
	uint32_t next;             /* the next entry to harvest (KVM's fetch index) */
	uint64_t *pages;           /* one harvest's pages (memfd offset / 4 KiB), `entries` of them */
	pthread_mutex_t lock;      /* one harvester at a time: the migration or the vCPU, when full */
};

struct dirty_rings {
	uint32_t entries;          /* per vCPU, a power of two; 0: KVM's ring is off */
	int vm_fd;
	const struct guest_mem *mem; /* memslot i is mem->regions[i] */
	unsigned nr;
	struct dirty_ring *rings;
	uint64_t *bits;            /* harvested, not yet taken: a bit per 4 KiB page by memfd offset */
	uint64_t words;
};

/*
 * Turns KVM's dirty ring on for VM `vm_fd` with `entries` per vCPU, before
 * any vCPU exists. -ENOTSUP (why in `e`) when this KVM has no ring or a smaller
 * one; -EINVAL when `entries` is no power of two within KVM's bounds.
 */
int dirty_ring__enable(struct dirty_rings *dr, int vm_fd, const struct guest_mem *mem,
		       uint32_t entries, struct err *e);

/* Maps vCPU `index`'s ring from its fd (after KVM_CREATE_VCPU); `nr` vCPUs in all. */
int dirty_ring__add_vcpu(struct dirty_rings *dr, unsigned index, unsigned nr, int vcpu_fd);

/* Readies the bitmap and drops anything the rings held: the dirty log begins. */
int dirty_ring__start(struct dirty_rings *dr);

/*
 * Harvests one ring into the bitmap and gives its entries back to KVM, from
 * the vCPU's thread at KVM_EXIT_DIRTY_RING_FULL (or any thread); -errno.
 */
int dirty_ring__harvest(struct dirty_ring *r);

/* Harvests every ring, gives the entries back, then moves the bitmap into `bits` (or'ed). */
int dirty_ring__take(struct dirty_rings *dr, uint64_t *bits);

void dirty_ring__destroy(struct dirty_rings *dr);

#endif
