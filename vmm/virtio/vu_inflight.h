/*
 * The monitor standing in for a dead vhost-user backend on a split ring.
 *
 * With protocol feature INFLIGHT_SHMFD a backend marks in a shared region
 * (vhost-user spec, "Inflight I/O tracking", split virtqueues) each head it
 * took from the available ring and clears the mark once the head is in the
 * used ring. Per queue the region holds a 16-byte header (features u64,
 * version u16, desc_num u16, last_batch_head u16, used_idx u16) and then one
 * 16-byte state per descriptor (inflight u8, padding, next u16, counter u64).
 *
 * When the backend dies the monitor reads a copy of the region (the backend
 * wrote it: nothing in it is trusted before it is checked), completes the
 * heads the backend had taken with the device's error (`vu_fail_fn`), marks
 * them done, and then completes the chains the driver queues meanwhile the
 * same way, until a new backend takes the ring from the position reached.
 *
 * Checks: a queue's part must hold a state for every descriptor of the ring;
 * marks past the ring's size are ignored, never completed; there may be no
 * more marked heads than the driver made available past the used index; each
 * chain is walked by virtqueue.h (bounded, in guest RAM). A chain the device
 * cannot complete (no status byte) is returned with nothing written, so that
 * the driver is never left waiting; an available index that ran ahead of the
 * ring stops the stand-in for that queue.
 */
#ifndef RTVMM_VIRTIO_VU_INFLIGHT_H
#define RTVMM_VIRTIO_VU_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/virtio/virtqueue.h"

#define VU_INFLIGHT_HDR_BYTES  16u
#define VU_INFLIGHT_DESC_BYTES 16u

/* The least bytes one queue's part needs for a ring of `size` descriptors. */
static inline uint64_t vu_inflight__part_bytes(uint16_t size)
{
	return VU_INFLIGHT_HDR_BYTES + (uint64_t)VU_INFLIGHT_DESC_BYTES * size;
}

/*
 * Queue `queue`'s part of a copy of a region of `size` bytes made for
 * `num_queues` queues (the parts are of equal size, one after the other):
 * NULL with why in `e` when the part cannot hold `ring_size` states.
 */
uint8_t *vu_inflight__part(uint8_t *copy, uint64_t size, unsigned num_queues, unsigned queue,
			   uint16_t ring_size, struct err *e);

/*
 * The heads a part marks in flight, into `heads` (room for `ring_size`),
 * after a backend's start-up repair (the region's used index differs from the
 * ring's: the last batch head's completion was published, its mark is
 * cleared). Marks at or past `ring_size` name no head and are ignored. Returns their number,
 * or -EINVAL when there are more than the `avail_idx - used_idx` the driver
 * made available past the used index (or that exceeds the ring).
 */
int vu_inflight__collect(uint8_t *part, uint16_t ring_size, uint16_t used_idx, uint16_t avail_idx,
			 uint16_t *heads, struct err *e);

/* Marks `head` completed, the used index now `used_idx`. */
void vu_inflight__done(uint8_t *part, uint16_t head, uint16_t used_idx);

/*
 * Completes the chain at `head` with the device's error status: the bytes
 * written, or a negative errno with why (the chain has no room for it).
 */
typedef int (*vu_fail_fn)(void *arg, const struct virtqueue *vq, uint16_t head, struct err *e);

struct vu_standin_tally {
	uint64_t failed;               /* chains completed with the device's error */
	uint64_t taken;                /* of them: heads the dead backend had taken (its region's marks) */
	uint64_t bad_chains;           /* chains returned with nothing written */
	bool signal;                   /* the driver wants an interrupt */
	bool more;                     /* stopped at the round's limit: call drain again */
};

/*
 * Takes the ring `vq` over (initialised, indices ignored) from a dead backend:
 * completes with `fail` the heads its `part` marks in flight (`part` NULL: none
 * known) and marks them done there, asks the driver for kicks again (clears
 * VRING_USED_F_NO_NOTIFY, which a polling backend sets), then drains the ring. 0, or -EINVAL with
 * why (the part or the available index cannot be trusted; the ring is left).
 */
int vu_inflight__takeover(struct virtqueue *vq, uint8_t *part, vu_fail_fn fail, void *arg,
			  struct vu_standin_tally *t, struct err *e);

/*
 * Completes with `fail` what the driver made available since (a kick), at
 * most two rings' worth per call (t->more: call again), and asks for the next
 * kick (EVENT_IDX). 0, or -EINVAL with why (the available index ran ahead).
 */
int vu_inflight__drain(struct virtqueue *vq, vu_fail_fn fail, void *arg,
		       struct vu_standin_tally *t, struct err *e);

#endif
