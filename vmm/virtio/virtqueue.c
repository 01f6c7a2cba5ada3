/* Split virtqueue on guest RAM: ring checks, bounded chain walks, used-ring publishing. */
#include "vmm/virtio/virtqueue.h"

#include <errno.h>
#include <string.h>

/* A descriptor as the driver writes it (virtio 1.x 2.7.5). */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

int virtqueue__check(const struct guest_mem *mem, const struct virtio_queue *q,
		     uint16_t max_size, bool event_idx, struct err *e)
{
	if (!q->size || q->size > max_size || (q->size & (q->size - 1)))
		return err__set(e, -EINVAL, "size %u is not a power of two <= %u", q->size, max_size);
	if ((q->desc & 15) || (q->driver & 1) || (q->device & 3))
		return err__set(e, -EINVAL, "misaligned ring (desc %#llx, driver %#llx, device %#llx)",
				(unsigned long long)q->desc, (unsigned long long)q->driver,
				(unsigned long long)q->device);
	if (!guest_mem__ptr(mem, q->desc, virtqueue__desc_bytes(q->size)) ||
	    !guest_mem__ptr(mem, q->driver, virtqueue__avail_bytes(q->size, event_idx)) ||
	    !guest_mem__ptr(mem, q->device, virtqueue__used_bytes(q->size, event_idx)))
		return err__set(e, -EFAULT, "ring outside guest RAM (desc %#llx, driver %#llx, device %#llx, %u entries)",
				(unsigned long long)q->desc, (unsigned long long)q->driver,
				(unsigned long long)q->device, q->size);
	return 0;
}

uint16_t virtqueue__used_idx(const struct guest_mem *mem, const struct virtio_queue *q)
{
	uint16_t *idx = guest_mem__ptr(mem, q->device + 2, 2);

	return idx ? __atomic_load_n(idx, __ATOMIC_ACQUIRE) : 0;
}

void virtqueue__init(struct virtqueue *vq, const struct guest_mem *mem,
		     const struct virtio_queue *q, uint64_t features)
{
	*vq = (struct virtqueue){
		.mem = mem,
		.size = q->size,
		.desc = q->desc,
		.avail = q->driver,
		.used = q->device,
		.indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC),
		.event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX),
	};
}

int virtqueue__pop(struct virtqueue *vq, uint16_t *head, struct err *e)
{
	uint16_t *avail_idx = guest_mem__ptr(vq->mem, vq->avail + 2, 2);
	uint16_t *ring = guest_mem__ptr(vq->mem, vq->avail + 4, 2ull * vq->size);
	uint16_t avail;

	if (!avail_idx || !ring)
		return err__set(e, -EFAULT, "available ring outside guest RAM");
	avail = __atomic_load_n(avail_idx, __ATOMIC_ACQUIRE);
	if (avail == vq->last_avail)
		return 0;
	if ((uint16_t)(avail - vq->last_avail) > vq->size)
		return err__set(e, -EINVAL, "available index ran ahead of the ring");
	*head = __atomic_load_n(&ring[vq->last_avail % vq->size], __ATOMIC_RELAXED);
	vq->last_avail++;
	return 1;
}

/* Descriptor `i` of a table that lies in guest RAM, copied once (the guest may rewrite it). */
static struct vring_desc read_desc(const struct vring_desc *table, unsigned i)
{
	struct vring_desc d;

	memcpy(&d, (const void *)&table[i], sizeof(d));
	return d;
}

int virtqueue__walk(const struct virtqueue *vq, uint16_t head, virtqueue_buf_fn fn, void *arg,
		    struct err *e)
{
	const struct vring_desc *table = guest_mem__ptr(vq->mem, vq->desc,
							 virtqueue__desc_bytes(vq->size));
	unsigned limit = vq->size, count = 0, i = head;
	bool in_indirect = false, writing = false;
	int err;

	if (!table)
		return err__set(e, -EFAULT, "descriptor table outside guest RAM");
	for (;;) {
		struct virtqueue_buf b;
		struct vring_desc d;

		if (i >= limit)
			return err__set(e, -EINVAL, "descriptor index out of range");
		if (++count > limit)
			return err__set(e, -EINVAL, "descriptor chain longer than its table (a loop)");
		d = read_desc(table, i);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect || in_indirect || (d.flags & VRING_DESC_F_NEXT) || count != 1)
				return err__set(e, -EINVAL, "indirect descriptor where none is allowed");
			if (!d.len || d.len % sizeof(struct vring_desc) ||
			    d.len / sizeof(struct vring_desc) > VIRTQUEUE_MAX_INDIRECT || (d.addr & 15) ||
			    !(table = guest_mem__ptr(vq->mem, d.addr, d.len)))
				return err__set(e, -EINVAL, "indirect table outside guest RAM or of a bad size");
			in_indirect = true;
			limit = d.len / sizeof(struct vring_desc);
			count = 0;
			i = 0;
			continue;
		}
		b = (struct virtqueue_buf){ .gpa = d.addr, .len = d.len,
					    .write = d.flags & VRING_DESC_F_WRITE };
		if (d.len && !(b.hva = guest_mem__ptr(vq->mem, d.addr, d.len)))
			return err__set(e, -EINVAL, "buffer outside guest RAM");
		if (writing && !b.write)
			return err__set(e, -EINVAL, "device-readable buffer after a writable one");
		writing = b.write;
		err = fn(arg, &b);
		if (err)
			return err;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

void virtqueue__push(struct virtqueue *vq, uint16_t head, uint32_t written)
{
	uint8_t *ring = guest_mem__ptr(vq->mem, vq->used + 4, 8ull * vq->size);
	uint16_t *used_idx = guest_mem__ptr(vq->mem, vq->used + 2, 2);
	uint32_t elem[2] = { head, written };

	if (!ring || !used_idx)
		return;
	memcpy(ring + 8u * (vq->next_used % vq->size), elem, sizeof(elem));
	guest_mem__log_write(vq->mem, vq->used + 4 + 8ull * (vq->next_used % vq->size), sizeof(elem));
	vq->next_used++;
	__atomic_store_n(used_idx, vq->next_used, __ATOMIC_RELEASE);
	guest_mem__log_write(vq->mem, vq->used + 2, 2);
}

void virtqueue__update_avail_event(struct virtqueue *vq)
{
	uint16_t *avail_event;

	if (!vq->event_idx)
		return;
	avail_event = guest_mem__ptr(vq->mem, vq->used + 4 + 8ull * vq->size, 2);
	if (avail_event) {
		__atomic_store_n(avail_event, vq->last_avail, __ATOMIC_RELEASE);
		guest_mem__log_write(vq->mem, vq->used + 4 + 8ull * vq->size, 2);
	}
}

bool virtqueue__need_signal(const struct virtqueue *vq, uint16_t old_used)
{
	uint16_t *flags = guest_mem__ptr(vq->mem, vq->avail, 2);
	uint16_t *used_event = guest_mem__ptr(vq->mem, vq->avail + 4 + 2ull * vq->size, 2);
	uint16_t event;

	if (vq->next_used == old_used)
		return false;
	/* The used index is published before the driver's wish is read (virtio 1.x 2.7.7.2). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !flags || !(__atomic_load_n(flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!used_event)
		return true;
	event = __atomic_load_n(used_event, __ATOMIC_RELAXED);
	/* Entries old_used .. next_used-1 were pushed: did one of them reach used_event? */
	return (uint16_t)(vq->next_used - event - 1) < (uint16_t)(vq->next_used - old_used);
}
