/*
 * Split virtqueue (virtio 1.x 2.7) served by the monitor itself, on guest RAM.
 *
 * Nothing here trusts the guest: a ring is checked to lie in one RAM region
 * before it is used, and every chain walk is bounded (no index past the table,
 * no more descriptors than the table holds, so no loop; one level of indirect
 * table when negotiated; every buffer inside guest RAM; device-readable
 * buffers before device-writable ones). A broken chain is an error with the
 * reason, never a crash; what to do then is the device's choice.
 *
 * Not thread-safe: the device serialises the calls on one queue.
 */
#ifndef RTVMM_VIRTIO_VIRTQUEUE_H
#define RTVMM_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/virtio.h"

#define VRING_DESC_F_NEXT     1
#define VRING_DESC_F_WRITE    2
#define VRING_DESC_F_INDIRECT 4

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY     1

#define VIRTQUEUE_MAX_INDIRECT 1024   /* descriptors in one indirect table */

/* Bytes of each ring part for `size` entries; event_idx adds the trailing event field. */
static inline uint64_t virtqueue__desc_bytes(uint16_t size)
{
	return 16ull * size;
}

static inline uint64_t virtqueue__avail_bytes(uint16_t size, bool event_idx)
{
	return 4 + 2ull * size + (event_idx ? 2 : 0);
}

static inline uint64_t virtqueue__used_bytes(uint16_t size, bool event_idx)
{
	return 4 + 8ull * size + (event_idx ? 2 : 0);
}

/*
 * Checks a ring the driver configured: a power-of-two size up to `max_size`,
 * aligned parts, each entirely inside one RAM region. -EINVAL or -EFAULT with
 * the reason (without a queue name: the caller adds it).
 */
int virtqueue__check(const struct guest_mem *mem, const struct virtio_queue *q,
		     uint16_t max_size, bool event_idx, struct err *e);

/* The used ring's index as the guest sees it now (what a backend completed). */
uint16_t virtqueue__used_idx(const struct guest_mem *mem, const struct virtio_queue *q);

/* One buffer of a chain: guest address, host pointer (NULL when len is 0), direction. */
struct virtqueue_buf {
	uint64_t gpa;
	void *hva;
	uint32_t len;
	bool write;                   /* device-writable */
};

/* Called for each buffer of a chain in order; a negative return stops the walk with it. */
typedef int (*virtqueue_buf_fn)(void *arg, const struct virtqueue_buf *b);

struct virtqueue {
	const struct guest_mem *mem;
	uint16_t size;
	uint64_t desc, avail, used;   /* guest-physical, checked by virtqueue__check */
	bool indirect;                /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool event_idx;               /* VIRTIO_RING_F_EVENT_IDX negotiated */
	uint16_t last_avail;          /* next available entry to take */
	uint16_t next_used;           /* next used entry to fill */
};

/* Sets `vq` up for a ring already checked with virtqueue__check; indices start at 0. */
void virtqueue__init(struct virtqueue *vq, const struct guest_mem *mem,
		     const struct virtio_queue *q, uint64_t features);

/*
 * Takes the next available chain: 1 with its head, 0 when the driver has
 * queued nothing more, -EINVAL when the available index ran ahead of the ring.
 */
int virtqueue__pop(struct virtqueue *vq, uint16_t *head, struct err *e);

/* Walks the chain at `head`, calling `fn` per buffer: 0, fn's error, or -EINVAL with why. */
int virtqueue__walk(const struct virtqueue *vq, uint16_t head, virtqueue_buf_fn fn, void *arg,
		    struct err *e);

/*
 * Publishes `head` as used with `written` bytes (the driver sees it with the
 * new used index). The used element and index are marked in guest RAM's
 * dirty log (guest_mem.h) when it runs; the buffers the device wrote are the
 * device's to mark, before it pushes.
 */
void virtqueue__push(struct virtqueue *vq, uint16_t head, uint32_t written);

/* With EVENT_IDX: asks the driver to kick at the next entry it makes available (marked in the dirty log). */
void virtqueue__update_avail_event(struct virtqueue *vq);

/*
 * Whether the driver wants an interrupt for the entries pushed since the used
 * index was `old_used`: with EVENT_IDX when its used_event lies among them,
 * else unless it set VRING_AVAIL_F_NO_INTERRUPT. Call after the pushes.
 */
bool virtqueue__need_signal(const struct virtqueue *vq, uint16_t old_used);

#endif
