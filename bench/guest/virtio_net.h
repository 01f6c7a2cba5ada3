/*
 * A minimal virtio-net driver for the bare-metal guest: modern virtio-pci
 * (virtio 1.x, 4.1) found through PCI config space, split virtqueues
 * (rx = queue 0, tx = queue 1), poll mode: no interrupts (no MSI-X, every
 * avail ring has VRING_AVAIL_F_NO_INTERRUPT), notifications through the
 * queue's notify address only when the device asks for them
 * (VRING_USED_F_NO_NOTIFY clear) or `kick_always`.
 *
 * Split in two:
 * - vnet__init() and friends (virtio_net.c) run at CPL0: PCI, capabilities,
 *   the device status handshake, feature negotiation, ring set-up.
 * - The ring operations below are USER_INLINE and touch only struct vnet,
 *   its rings and buffers (all in .user.bss) and the notify address: a data
 *   path built from them runs at CPL3 (user__call) once the user region and
 *   the notify page are user-mapped, or at CPL0 as plain calls.
 *
 * Nothing the device writes is trusted: a used ring whose index runs ahead
 * of what the device holds, an id out of range or not in flight, a length
 * beyond the buffer set `error` (VNET_ERR_*) and stop the data path.
 *
 * Features: VERSION_1 (required), MAC and STATUS when offered; no offloads,
 * no MRG_RXBUF: every rx buffer takes a whole frame (VNET_BUF_SIZE bytes,
 * 12-byte virtio_net_hdr first), every tx frame is one descriptor.
 */
#ifndef RTVMM_GUEST_VIRTIO_NET_H
#define RTVMM_GUEST_VIRTIO_NET_H

#include "pci.h"

#define VNET_VENDOR_ID    0x1af4
#define VNET_DEVICE_ID    0x1041     /* modern virtio-net (0x1040 + type 1) */
#define VNET_QSIZE_MAX    256        /* ring entries we use at most (power of two) */
#define VNET_BUF_SIZE     2048       /* per descriptor: header + frame */
#define VNET_HDR_LEN      12         /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define VNET_FRAME_MAX    (VNET_BUF_SIZE - VNET_HDR_LEN)
#define VNET_RXQ          0
#define VNET_TXQ          1

/* Feature bits. */
#define VNET_F_MAC        5
#define VNET_F_STATUS     16
#define VNET_F_VERSION_1  32

/* Split ring (virtio 1.x 2.7). */
#define VRING_DESC_F_WRITE       2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY   1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct vring_used_elem {
	uint32_t id, len;
};

/* One queue's memory: each ring area on its own page, then the buffers (descriptor i <-> buffer i). */
struct vnet_ring {
	struct vring_desc desc[VNET_QSIZE_MAX];
	struct {
		uint16_t flags, idx;
		uint16_t ring[VNET_QSIZE_MAX];
	} avail __attribute__((aligned(4096)));
	struct {
		uint16_t flags, idx;
		struct vring_used_elem ring[VNET_QSIZE_MAX];
	} used __attribute__((aligned(4096)));
	uint8_t buf[VNET_QSIZE_MAX][VNET_BUF_SIZE] __attribute__((aligned(4096)));
};

struct vnet_queue {
	struct vnet_ring *ring;
	uint64_t notify;             /* notify address of this queue */
	uint16_t index;              /* queue index, the value written to `notify` */
	uint16_t size, mask;
	uint16_t avail_idx;          /* avail->idx we published last */
	uint16_t used_idx;           /* next used entry to take */
	uint16_t inflight;           /* buffers the device holds */
	uint16_t nfree;              /* tx: free descriptor ids in free_ids[0..nfree) */
	bool pending_kick;           /* avail entries published since the last kick */
	uint16_t free_ids[VNET_QSIZE_MAX];
	uint8_t with_device[VNET_QSIZE_MAX];
	uint64_t kicks, kicks_suppressed;
};

/* Why the data path stopped trusting the device (vnet.error); a and b say what was seen. */
enum vnet_error {
	VNET_OK = 0,
	VNET_ERR_USED_IDX,           /* used->idx advanced by a (> b buffers in flight) */
	VNET_ERR_USED_ID,            /* used id a is out of range or not in flight (queue size b) */
	VNET_ERR_USED_LEN,           /* rx used length a > buffer size b */
};

struct vnet {
	struct vnet_queue rx, tx;
	uint8_t mac[6];
	bool kick_always;
	uint32_t error;              /* enum vnet_error: the first one stays */
	uint32_t error_queue;
	uint64_t error_a, error_b;

	/* What the probe found (CPL0, for reports). */
	struct pci_addr pci;
	uint64_t features_offered, features;
	uint16_t qmax_rx, qmax_tx, num_queues;
	uint8_t common_bar, notify_bar;
	uint64_t bar_addr[6], bar_size[6];
	uint64_t common, notify_base, isr, device;   /* addresses of the structures; device 0: none */
	uint32_t notify_mult;
	uint32_t device_len;
};

struct vnet_options {
	unsigned nth;                /* use the nth virtio-net function on bus 0 */
	uint16_t qsize;              /* 0: min(VNET_QSIZE_MAX, device maximum) */
	bool kick_always;            /* notify after every batch, even with NO_NOTIFY */
};

/*
 * CPL0. Finds the device, enables memory decode and bus mastering, resets
 * it, negotiates features, sets up both queues, sets DRIVER_OK, posts every
 * rx buffer and reads the MAC. Returns the driver's struct vnet (in
 * .user.bss), or NULL with `why` filled in.
 */
struct vnet *vnet__init(const struct vnet_options *o, char *why, size_t len);
/* CPL0. 1 link up, 0 down, -1 unknown (STATUS not negotiated). */
int vnet__link_up(struct vnet *n);
/* CPL0. Writes status 0: the device stops using the rings. */
void vnet__reset(struct vnet *n);
/* Names the error for reports. */
const char *vnet__error_name(uint32_t error);

/* ---- data path: USER_INLINE, CPL3 or CPL0 ---- */

#define VNET_READ16(p)  (*(volatile const uint16_t *)&(p))
#define VNET_WRITE16(p, v) (*(volatile uint16_t *)&(p) = (v))

USER_INLINE void vnet_fail(struct vnet *n, const struct vnet_queue *q, uint32_t err, uint64_t a, uint64_t b)
{
	if (!n->error) {
		n->error = err;
		n->error_queue = q->index;
		n->error_a = a;
		n->error_b = b;
	}
}

/* Full barrier (store -> load), as a locked op: emulated fine at CPL0 on this host, native at CPL3. */
USER_INLINE void vnet_mb(void)
{
	__asm__ volatile("lock; addl $0, (%%rsp)" ::: "memory", "cc");
}

/*
 * Takes the next used entry of `q`: true with its descriptor id and length;
 * false if there is none or the device broke the contract (n->error set).
 */
USER_INLINE bool vnet_used_next(struct vnet *n, struct vnet_queue *q, uint16_t *id, uint32_t *len)
{
	uint16_t used = VNET_READ16(q->ring->used.idx);

	if (used == q->used_idx || n->error)
		return false;
	if ((uint16_t)(used - q->used_idx) > q->inflight) {
		vnet_fail(n, q, VNET_ERR_USED_IDX, (uint16_t)(used - q->used_idx), q->inflight);
		return false;
	}
	barrier();   /* x86 keeps loads in order: the entry is read after the index */
	const volatile struct vring_used_elem *e = &q->ring->used.ring[q->used_idx & q->mask];
	uint32_t i = e->id, l = e->len;
	if (i >= q->size || !q->with_device[i]) {
		vnet_fail(n, q, VNET_ERR_USED_ID, i, q->size);
		return false;
	}
	q->with_device[i] = 0;
	q->inflight--;
	q->used_idx++;
	*id = (uint16_t)i;
	*len = l;
	return true;
}

/* Makes descriptor `id` available to the device (published at once; the kick comes with vnet_kick). */
USER_INLINE void vnet_avail_push(struct vnet_queue *q, uint16_t id)
{
	q->ring->avail.ring[q->avail_idx & q->mask] = id;
	barrier();   /* x86 keeps stores in order: the entry is visible before the index */
	q->avail_idx++;
	VNET_WRITE16(q->ring->avail.idx, q->avail_idx);
	q->with_device[id] = 1;
	q->inflight++;
	q->pending_kick = true;
}

/* Notifies the device of new buffers in `q` unless it said it polls (or nothing was pushed). */
USER_INLINE void vnet_kick(struct vnet *n, struct vnet_queue *q)
{
	if (!q->pending_kick)
		return;
	q->pending_kick = false;
	vnet_mb();   /* the avail index must be visible before we read used->flags */
	if (n->kick_always || !(VNET_READ16(q->ring->used.flags) & VRING_USED_F_NO_NOTIFY)) {
		__asm__ volatile("movw %0, (%1)" :: "r"(q->index), "r"(q->notify) : "memory");
		q->kicks++;
	} else {
		q->kicks_suppressed++;
	}
}

/*
 * The next received frame: its rx descriptor id (give it back with
 * vnet_rx_post), the frame (after the virtio-net header) and its length
 * (0 for a runt shorter than the header). False if none, or on a device error.
 */
USER_INLINE bool vnet_rx_next(struct vnet *n, uint16_t *id, uint8_t **frame, uint32_t *len)
{
	struct vnet_queue *q = &n->rx;
	uint32_t l;

	if (!vnet_used_next(n, q, id, &l))
		return false;
	if (l > VNET_BUF_SIZE) {
		vnet_fail(n, q, VNET_ERR_USED_LEN, l, VNET_BUF_SIZE);
		return false;
	}
	*frame = q->ring->buf[*id] + VNET_HDR_LEN;
	*len = l >= VNET_HDR_LEN ? l - VNET_HDR_LEN : 0;
	return true;
}

USER_INLINE void vnet_rx_post(struct vnet *n, uint16_t id)
{
	vnet_avail_push(&n->rx, id);   /* the descriptor itself (address, size, WRITE) never changes */
}

/* Takes back every transmitted buffer. */
USER_INLINE void vnet_tx_reclaim(struct vnet *n)
{
	struct vnet_queue *q = &n->tx;
	uint16_t id;
	uint32_t len;

	while (vnet_used_next(n, q, &id, &len))
		q->free_ids[q->nfree++] = id;
}

/* A free tx buffer's frame area (VNET_FRAME_MAX bytes) and its id, or NULL if the device holds all. */
USER_INLINE uint8_t *vnet_tx_buf(struct vnet *n, uint16_t *id)
{
	struct vnet_queue *q = &n->tx;

	if (!q->nfree)
		vnet_tx_reclaim(n);
	if (!q->nfree)
		return NULL;
	*id = q->free_ids[--q->nfree];
	return q->ring->buf[*id] + VNET_HDR_LEN;
}

/* Queues the frame in tx buffer `id` (len <= VNET_FRAME_MAX) with an all-zero header. */
USER_INLINE void vnet_tx_send(struct vnet *n, uint16_t id, uint32_t len)
{
	struct vnet_queue *q = &n->tx;
	uint32_t *hdr = (uint32_t *)q->ring->buf[id];

	hdr[0] = hdr[1] = hdr[2] = 0;   /* no offloads; num_buffers 0 as the driver must send it */
	q->ring->desc[id].len = VNET_HDR_LEN + len;
	vnet_avail_push(q, id);
}

#endif
