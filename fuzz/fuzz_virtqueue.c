/*
 * Fuzz target: the split virtqueue the monitor serves (vmm/virtio/virtqueue.c): ring checks,
 * chain walks over descriptor tables (direct and indirect) and used-ring publishing, on guest
 * RAM the fuzzer fills, with ring addresses and indices it chooses.
 *
 * Input: 13 bytes of queue setup (size 2, descriptor table 4, available and used rings 2 each,
 * features 1 (bit 0: indirect, bit 1: event index), the largest size the device allows 2), then the guest's RAM (64 KiB; the rest is zero). The device pops every
 * chain the driver made available (two rounds), walks it and writes to its writable buffers
 * (which may overlap the rings and the descriptor table: the walk must not care), then
 * publishes it as used.
 * Beyond the sanitizers: every buffer a walk hands out lies inside guest RAM at its gpa, a chain
 * has no more buffers than its tables hold, a failure says why, and the used index the guest
 * sees is the device's.
 */
#include <stdint.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/virtqueue.h"

#include "fuzz.h"

#define RAM_SIZE (64u << 10)

static struct guest_mem mem;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(!guest_mem__create(&mem, RAM_SIZE), "cannot create guest RAM");
	return 0;
}

struct walk {
	unsigned bufs;
	uint64_t bytes;
	uint8_t sum;                  /* of what the device read: the reads are real */
};

/*
 * What a device does with a buffer: read from it, write to it (the device's writes may land on
 * the rings and descriptor tables). Its first and last bytes only: a buffer can be 64 KiB and
 * a chain a thousand of them, so touching every byte would make the target, not the
 * virtqueue, slow; the bounds are what matters, and they are checked in full.
 */
static int on_buf(void *arg, const struct virtqueue_buf *b)
{
	struct walk *w = arg;
	uint8_t *p = b->hva;

	w->bufs++;
	w->bytes += b->len;
	if (!b->len) {
		FUZZ_CHECK(!b->hva, "an empty buffer with a host pointer");
		return 0;
	}
	FUZZ_CHECK(b->gpa < RAM_SIZE && b->len <= RAM_SIZE - b->gpa && p == mem.base + b->gpa,
		   "buffer gpa %#llx len %u hva %p outside guest RAM", (unsigned long long)b->gpa,
		   b->len, b->hva);
	if (b->write) {
		p[0] = 0x5a;
		p[b->len - 1] = 0x5a;
	} else {
		w->sum += p[0] + p[b->len - 1];
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct virtio_queue q = { 0 };
	struct virtqueue vq;
	struct err e = { 0 };
	uint64_t features = 0;
	uint16_t max_size, head;
	uint8_t flags;
	const uint8_t *ram;
	size_t ram_len;
	unsigned popped = 0, rounds;
	int r = 0;

	q.size = fuzz_in__u16(&in);
	q.desc = fuzz_in__u32(&in);
	q.driver = fuzz_in__u16(&in);
	q.device = fuzz_in__u16(&in);
	flags = fuzz_in__u8(&in);
	max_size = fuzz_in__u16(&in);
	if (flags & 1)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (flags & 2)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	ram = fuzz_in__bytes(&in, RAM_SIZE, &ram_len);
	memcpy(mem.base, ram, ram_len);
	memset(mem.base + ram_len, 0, RAM_SIZE - ram_len);

	if (virtqueue__check(&mem, &q, max_size, flags & 2, &e)) {
		FUZZ_CHECK(e.msg[0], "a refused ring without a reason");
		return 0;
	}
	virtqueue__init(&vq, &mem, &q, features);
	/*
	 * Two rounds of at most a ring's worth of chains each (a writable buffer may lie over
	 * the available index, so the driver's side moves while the device works).
	 */
	for (rounds = 0; rounds < 2 && r >= 0; rounds++) {
		for (popped = 0; popped < q.size && (r = virtqueue__pop(&vq, &head, &e)) == 1;
		     popped++) {
			struct walk w = { 0 };
			int wr = virtqueue__walk(&vq, head, on_buf, &w, &e);

			FUZZ_CHECK(w.bufs <= (unsigned)q.size + VIRTQUEUE_MAX_INDIRECT,
				   "a chain of %u buffers", w.bufs);
			FUZZ_CHECK(!wr || (wr < 0 && e.msg[0]), "walk returned %d", wr);
			virtqueue__push(&vq, head, wr ? 0 : (uint32_t)w.bytes);
			FUZZ_CHECK(virtqueue__used_idx(&mem, &q) == vq.next_used,
				   "used index %u after publishing %u", virtqueue__used_idx(&mem, &q),
				   vq.next_used);
			virtqueue__update_avail_event(&vq);
		}
		FUZZ_CHECK(r >= 0 || e.msg[0], "pop returned %d without a reason", r);
	}
	return 0;
}
