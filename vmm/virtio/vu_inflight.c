/* A dead vhost-user backend's split ring: its inflight region read and checked, its requests failed. */
#include "vmm/virtio/vu_inflight.h"

#include <errno.h>
#include <string.h>

#define OFF_LAST_BATCH_HEAD 12
#define OFF_USED_IDX        14
#define VU_INFLIGHT_MAX_RING 32768  /* virtio's largest split ring */

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint8_t *desc_state(uint8_t *part, uint16_t i)
{
	return part + VU_INFLIGHT_HDR_BYTES + (uint64_t)VU_INFLIGHT_DESC_BYTES * i;
}

uint8_t *vu_inflight__part(uint8_t *copy, uint64_t size, unsigned num_queues, unsigned queue,
			   uint16_t ring_size, struct err *e)
{
	uint64_t stride;

	if (!num_queues || queue >= num_queues) {
		err__set(e, -EINVAL, "inflight region: queue %u of %u", queue, num_queues);
		return NULL;
	}
	stride = size / num_queues;
	if (stride < vu_inflight__part_bytes(ring_size)) {
		err__set(e, -EINVAL, "inflight region: %llu bytes for %u queues cannot hold %u descriptors per queue (%llu bytes each)",
			 (unsigned long long)size, num_queues, ring_size,
			 (unsigned long long)vu_inflight__part_bytes(ring_size));
		return NULL;
	}
	return copy + stride * queue;
}

int vu_inflight__collect(uint8_t *part, uint16_t ring_size, uint16_t used_idx, uint16_t avail_idx,
			 uint16_t *heads, struct err *e)
{
	uint16_t pending = (uint16_t)(avail_idx - used_idx), last = get16(part + OFF_LAST_BATCH_HEAD);
	unsigned i, n = 0;

	if (pending > ring_size)
		return err__set(e, -EINVAL, "the available index %u runs %u entries ahead of the used index %u (ring of %u)",
				avail_idx, pending, used_idx, ring_size);
	/* The backend published its last completion and died before clearing its mark. */
	if (get16(part + OFF_USED_IDX) != used_idx) {
		if (last < ring_size)
			desc_state(part, last)[0] = 0;
		put16(part + OFF_USED_IDX, used_idx);
	}
	for (i = 0; i < ring_size; i++) {
		if (!desc_state(part, (uint16_t)i)[0])
			continue;
		if (n == pending)
			return err__set(e, -EINVAL, "inflight region marks more heads than the %u the driver made available past used index %u",
					pending, used_idx);
		heads[n++] = (uint16_t)i;
	}
	return (int)n;
}

void vu_inflight__done(uint8_t *part, uint16_t head, uint16_t used_idx)
{
	put16(part + OFF_LAST_BATCH_HEAD, head);
	desc_state(part, head)[0] = 0;
	put16(part + OFF_USED_IDX, used_idx);
}

/* Completes `head` with the device's error; a chain without room for it is returned empty. */
static void complete(struct virtqueue *vq, uint16_t head, vu_fail_fn fail, void *arg,
		     struct vu_standin_tally *t)
{
	struct err why = { 0 };
	int written = fail(arg, vq, head, &why);

	if (written < 0) {
		t->bad_chains++;
		written = 0;
	} else {
		t->failed++;
	}
	virtqueue__push(vq, head, (uint32_t)written);
}

int vu_inflight__takeover(struct virtqueue *vq, uint8_t *part, vu_fail_fn fail, void *arg,
			  struct vu_standin_tally *t, struct err *e)
{
	uint16_t heads[VU_INFLIGHT_MAX_RING];
	const uint16_t *avail_idx = guest_mem__ptr(vq->mem, vq->avail + 2, 2);
	const uint16_t *used_idx = guest_mem__ptr(vq->mem, vq->used + 2, 2);
	uint16_t *used_flags = guest_mem__ptr(vq->mem, vq->used, 2), used, old;
	int n = 0, i;

	if (!avail_idx || !used_idx || !used_flags)
		return err__set(e, -EFAULT, "ring outside guest RAM");
	if (vq->size > VU_INFLIGHT_MAX_RING)
		return err__set(e, -EINVAL, "a ring of %u entries (at most %u)", vq->size,
				VU_INFLIGHT_MAX_RING);
	used = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE);
	if (part) {
		n = vu_inflight__collect(part, vq->size, used, __atomic_load_n(avail_idx, __ATOMIC_ACQUIRE),
					 heads, e);
		if (n < 0)
			return n;
	}
	vq->next_used = old = used;
	vq->last_avail = (uint16_t)(used + n);
	/* A polling backend asked the driver not to kick (rte_vhost does): the stand-in needs kicks. */
	__atomic_store_n(used_flags, 0, __ATOMIC_RELEASE);
	guest_mem__log_write(vq->mem, vq->used, 2);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	t->taken += (uint64_t)n;
	for (i = 0; i < n; i++) {
		complete(vq, heads[i], fail, arg, t);
		vu_inflight__done(part, heads[i], vq->next_used);
	}
	if (virtqueue__need_signal(vq, old))
		t->signal = true;
	return vu_inflight__drain(vq, fail, arg, t, e);
}

int vu_inflight__drain(struct virtqueue *vq, vu_fail_fn fail, void *arg,
		       struct vu_standin_tally *t, struct err *e)
{
	const uint16_t *avail_idx = guest_mem__ptr(vq->mem, vq->avail + 2, 2);
	unsigned budget = 2u * vq->size;
	uint16_t head, old = vq->next_used;
	int got;

	t->more = false;
	if (!avail_idx)
		return err__set(e, -EFAULT, "available ring outside guest RAM");
	for (;;) {
		while ((got = virtqueue__pop(vq, &head, e)) == 1) {
			complete(vq, head, fail, arg, t);
			if (!--budget)
				break;
		}
		if (got < 0)
			return got;
		if (!budget) {
			t->more = true;
			break;
		}
		/* Ask for the next kick, then look again: the driver may have added meanwhile. */
		virtqueue__update_avail_event(vq);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(avail_idx, __ATOMIC_ACQUIRE) == vq->last_avail)
			break;
	}
	if (virtqueue__need_signal(vq, old))
		t->signal = true;
	return 0;
}
