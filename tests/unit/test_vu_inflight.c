/*
 * The stand-in for a dead vhost-user disk backend, on a hand-built split ring
 * in a buffer standing in for guest RAM and an inflight region laid out as
 * DPDK's rte_vhost makes it (per queue: 16-byte header, 16 bytes per
 * descriptor, 64-byte aligned): the heads the region marks, its repair, its
 * checks against hostile content, and the requests completed with IOERR
 * (hostile chains included) without a crash or a stalled ring.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "driver_ring.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/virtqueue.h"
#include "vmm/virtio/vu_inflight.h"

#define RAM_GPA  0x10000ull
#define RAM_SIZE 0x20000ull
#define QSIZE    8
#define RING     (RAM_GPA + 0x0000)
#define HDRS     (RAM_GPA + 0x8000)   /* request headers, 16 bytes per head */
#define DATA     (RAM_GPA + 0x9000)   /* 512 bytes per head */
#define STATUS   (RAM_GPA + 0xa000)   /* one byte per head */

/* DPDK's per-queue size: header and states, 64-byte aligned. */
#define PART     ((16 + 16 * QSIZE + 63) / 64 * 64)

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));
static uint8_t region[2 * PART];

static struct guest_mem mem = {
	.fd = -1,
	.size = RAM_SIZE,
	.nr_regions = 1,
	.regions = { { .gpa = RAM_GPA, .size = RAM_SIZE, .hva = ram } },
};

static struct driver_ring dr;
static struct virtqueue vq;

static uint8_t *at(uint64_t gpa)
{
	return ram + (gpa - RAM_GPA);
}

static int setup(void **state)
{
	(void)state;
	memset(ram, 0, sizeof(ram));
	memset(region, 0, sizeof(region));
	driver_ring__init(&dr, &mem, RING, QSIZE);
	virtqueue__init(&vq, &mem, &dr.q, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	driver_ring__close(&dr);
	return 0;
}

/* A read request at `head`: header, 512-byte data-in, status (three descriptors from head). */
static void put_request(uint16_t head)
{
	memset(at(STATUS + head), 0xee, 1);
	driver_ring__desc(&dr, head, HDRS + 16u * head, 16, VRING_DESC_F_NEXT, (uint16_t)(head + 1));
	driver_ring__desc(&dr, (uint16_t)(head + 1), DATA + 512u * head, 512,
			  VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, (uint16_t)(head + 2));
	driver_ring__desc(&dr, (uint16_t)(head + 2), STATUS + head, 1, VRING_DESC_F_WRITE, 0);
}

/* What a backend does when it takes `head` and when it completes it (as rte_vhost). */
static void mark(unsigned queue, uint16_t head)
{
	region[queue * PART + 16 + 16 * head] = 1;
}

static bool marked(unsigned queue, uint16_t head)
{
	return region[queue * PART + 16 + 16 * head];
}

static void set_hdr(unsigned queue, uint16_t last_batch_head, uint16_t used_idx)
{
	memcpy(region + queue * PART + 12, &last_batch_head, 2);
	memcpy(region + queue * PART + 14, &used_idx, 2);
}

static uint16_t hdr_used(unsigned queue)
{
	uint16_t v;

	memcpy(&v, region + queue * PART + 14, 2);
	return v;
}

/* The backend completes `head` in the used ring (and dies before or after clearing its mark). */
static void backend_complete(uint16_t head, uint16_t *used)
{
	uint32_t elem[2] = { head, 1 };

	memcpy(at(dr.q.device + 4 + 8u * (*used % QSIZE)), elem, 8);
	(*used)++;
	memcpy(at(dr.q.device + 2), used, 2);
}

static int fail_blk(void *arg, const struct virtqueue *q, uint16_t head, struct err *e)
{
	(void)arg;
	return virtio_blk__fail_chain(q, head, e);
}

static void test_part_is_found_by_equal_strides(void **state)
{
	struct err e = { 0 };

	(void)state;
	assert_ptr_equal(vu_inflight__part(region, sizeof(region), 2, 1, QSIZE, &e), region + PART);
	assert_ptr_equal(vu_inflight__part(region, sizeof(region), 2, 0, QSIZE, &e), region);
}

static void test_part_too_small_for_the_ring_is_refused(void **state)
{
	struct err e = { 0 };

	(void)state;
	/* 2 queues in 200 bytes: 100 each, a ring of 8 needs 144. */
	assert_null(vu_inflight__part(region, 200, 2, 0, QSIZE, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_non_null(strstr(e.msg, "cannot hold 8 descriptors"));
	assert_null(vu_inflight__part(region, sizeof(region), 2, 2, QSIZE, &e));
	assert_null(vu_inflight__part(region, sizeof(region), 0, 0, QSIZE, &e));
}

static void test_collect_returns_the_marked_heads(void **state)
{
	uint16_t heads[QSIZE];
	struct err e = { 0 };

	(void)state;
	mark(0, 3);
	mark(0, 5);
	assert_int_equal(vu_inflight__collect(region, QSIZE, 0, 2, heads, &e), 2);
	assert_int_equal(heads[0], 3);
	assert_int_equal(heads[1], 5);
}

static void test_collect_repairs_a_completion_published_before_its_mark_was_cleared(void **state)
{
	uint16_t heads[QSIZE];
	struct err e = { 0 };

	(void)state;
	/* Head 3 reached the used ring (used 1) but the backend died before clearing it. */
	mark(0, 3);
	mark(0, 5);
	set_hdr(0, 3, 0);
	assert_int_equal(vu_inflight__collect(region, QSIZE, 1, 2, heads, &e), 1);
	assert_int_equal(heads[0], 5);
	assert_false(marked(0, 3));
	assert_int_equal(hdr_used(0), 1);
}

static void test_collect_refuses_more_marks_than_available_requests(void **state)
{
	uint16_t heads[QSIZE];
	struct err e = { 0 };

	(void)state;
	mark(0, 1);
	mark(0, 2);
	mark(0, 4);
	assert_int_equal(vu_inflight__collect(region, QSIZE, 0, 2, heads, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "marks more heads"));
}

static void test_collect_refuses_an_avail_index_beyond_the_ring(void **state)
{
	uint16_t heads[QSIZE];
	struct err e = { 0 };

	(void)state;
	assert_int_equal(vu_inflight__collect(region, QSIZE, 0, QSIZE + 1, heads, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "runs 9 entries ahead"));
}

static void test_collect_ignores_marks_and_a_batch_head_past_the_ring(void **state)
{
	uint16_t heads[QSIZE];
	struct err e = { 0 };

	(void)state;
	/* The region was made for rings of 16: a mark at 9 names no descriptor of this ring. */
	region[16 + 16 * 9] = 1;
	set_hdr(0, 0xffff, 7);
	assert_int_equal(vu_inflight__collect(region, QSIZE, 0, 0, heads, &e), 0);
	assert_int_equal(hdr_used(0), 0);
}

static void test_fail_chain_sets_the_last_writable_byte_only(void **state)
{
	struct err e = { 0 };

	(void)state;
	put_request(0);
	memset(at(DATA), 0x5a, 512);
	assert_int_equal(virtio_blk__fail_chain(&vq, 0, &e), 1);
	assert_int_equal(*at(STATUS), VIRTIO_BLK_S_IOERR);
	assert_int_equal(at(DATA)[511], 0x5a);
}

static void test_fail_chain_refuses_hostile_chains(void **state)
{
	struct err e = { 0 };

	(void)state;
	/* A loop. */
	driver_ring__desc(&dr, 0, HDRS, 16, VRING_DESC_F_NEXT, 1);
	driver_ring__desc(&dr, 1, STATUS, 1, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
	assert_int_equal(virtio_blk__fail_chain(&vq, 0, &e), -EINVAL);
	/* A next index past the table. */
	driver_ring__desc(&dr, 1, STATUS, 1, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 200);
	assert_int_equal(virtio_blk__fail_chain(&vq, 0, &e), -EINVAL);
	/* A status byte outside guest RAM. */
	driver_ring__desc(&dr, 1, RAM_GPA + RAM_SIZE, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(virtio_blk__fail_chain(&vq, 0, &e), -EINVAL);
	/* Nothing writable. */
	driver_ring__desc(&dr, 1, STATUS, 1, 0, 0);
	assert_int_equal(virtio_blk__fail_chain(&vq, 0, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no device-writable status byte"));
	/* A head past the table. */
	assert_int_equal(virtio_blk__fail_chain(&vq, QSIZE, &e), -EINVAL);
}

static void test_takeover_fails_what_the_backend_took_and_what_came_after(void **state)
{
	struct vu_standin_tally t = { 0 };
	struct err e = { 0 };
	uint16_t used = 0;
	uint32_t id, len;
	unsigned n;

	(void)state;
	put_request(0);
	put_request(3);
	/* Head 6: header and status only (a flush). */
	driver_ring__desc(&dr, 6, HDRS + 96, 16, VRING_DESC_F_NEXT, 7);
	driver_ring__desc(&dr, 7, STATUS + 6, 1, VRING_DESC_F_WRITE, 0);
	driver_ring__publish(&dr, 0);
	driver_ring__publish(&dr, 3);
	/* The backend took 0 and 3, completed 3 out of order, and died; then the guest queued 6. */
	mark(0, 0);
	backend_complete(3, &used);
	set_hdr(0, 3, used);
	driver_ring__publish(&dr, 6);

	/* The backend polled: it told the driver not to kick. */
	memset(at(dr.q.device), VRING_USED_F_NO_NOTIFY, 1);
	assert_int_equal(vu_inflight__takeover(&vq, region, fail_blk, NULL, &t, &e), 0);
	assert_int_equal(*at(dr.q.device), 0);
	assert_int_equal(t.failed, 2);
	assert_int_equal(t.taken, 1);
	assert_int_equal(t.bad_chains, 0);
	assert_true(t.signal);
	assert_int_equal(driver_ring__used_idx(&dr), 3);
	driver_ring__used(&dr, 1, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 1);
	driver_ring__used(&dr, 2, &id, &len);
	assert_int_equal(id, 6);
	assert_int_equal(*at(STATUS + 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*at(STATUS + 6), VIRTIO_BLK_S_IOERR);
	/* Head 3 was the backend's: its status is left as it was. */
	assert_int_equal(*at(STATUS + 3), 0xee);
	for (n = 0; n < QSIZE; n++)
		assert_false(marked(0, (uint16_t)n));
	assert_int_equal(hdr_used(0), 2);
	assert_int_equal(vq.last_avail, 3);

	/* Queued later: the kick's drain fails it too. */
	memset(&t, 0, sizeof(t));
	put_request(3);
	driver_ring__publish(&dr, 3);
	assert_int_equal(vu_inflight__drain(&vq, fail_blk, NULL, &t, &e), 0);
	assert_int_equal(t.failed, 1);
	assert_int_equal(driver_ring__used_idx(&dr), 4);
	assert_int_equal(*at(STATUS + 3), VIRTIO_BLK_S_IOERR);
}

static void test_takeover_returns_hostile_chains_empty_and_never_stalls(void **state)
{
	struct vu_standin_tally t = { 0 };
	struct err e = { 0 };
	uint32_t id, len;

	(void)state;
	/* A marked loop and a chain without a status byte, then a good request. */
	driver_ring__desc(&dr, 0, HDRS, 16, VRING_DESC_F_NEXT, 0);
	driver_ring__desc(&dr, 2, HDRS, 16, 0, 0);
	put_request(4);
	driver_ring__publish(&dr, 0);
	driver_ring__publish(&dr, 2);
	driver_ring__publish(&dr, 4);
	mark(0, 0);
	assert_int_equal(vu_inflight__takeover(&vq, region, fail_blk, NULL, &t, &e), 0);
	assert_int_equal(t.bad_chains, 2);
	assert_int_equal(t.failed, 1);
	assert_int_equal(driver_ring__used_idx(&dr), 3);
	driver_ring__used(&dr, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	assert_int_equal(*at(STATUS + 4), VIRTIO_BLK_S_IOERR);
}

static void test_takeover_leaves_a_ring_whose_region_lies(void **state)
{
	struct vu_standin_tally t = { 0 };
	struct err e = { 0 };

	(void)state;
	put_request(0);
	driver_ring__publish(&dr, 0);
	/* Three heads marked, one available: nothing is completed. */
	mark(0, 0);
	mark(0, 3);
	mark(0, 5);
	assert_int_equal(vu_inflight__takeover(&vq, region, fail_blk, NULL, &t, &e), -EINVAL);
	assert_int_equal(driver_ring__used_idx(&dr), 0);
	assert_int_equal(t.failed, 0);
	assert_int_equal(*at(STATUS), 0xee);
}

static void test_drain_refuses_an_avail_index_that_ran_ahead(void **state)
{
	struct vu_standin_tally t = { 0 };
	struct err e = { 0 };
	uint16_t idx = QSIZE + 3;

	(void)state;
	assert_int_equal(vu_inflight__takeover(&vq, region, fail_blk, NULL, &t, &e), 0);
	memcpy(at(dr.q.driver + 2), &idx, 2);
	assert_int_equal(vu_inflight__drain(&vq, fail_blk, NULL, &t, &e), -EINVAL);
	assert_int_equal(driver_ring__used_idx(&dr), 0);
}

/* A fail callback that is also a driver queueing each failed head again at once. */
static int fail_and_requeue(void *arg, const struct virtqueue *q, uint16_t head, struct err *e)
{
	(void)arg;
	driver_ring__publish(&dr, head);
	return virtio_blk__fail_chain(q, head, e);
}

static void test_drain_stops_after_two_rings_of_work(void **state)
{
	struct vu_standin_tally t = { 0 };
	struct err e = { 0 };

	(void)state;
	put_request(0);
	assert_int_equal(vu_inflight__takeover(&vq, region, fail_blk, NULL, &t, &e), 0);
	driver_ring__publish(&dr, 0);
	assert_int_equal(vu_inflight__drain(&vq, fail_and_requeue, NULL, &t, &e), 0);
	assert_true(t.more);
	assert_int_equal(t.failed, 2 * QSIZE);
	assert_int_equal(driver_ring__used_idx(&dr), 2 * QSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_part_is_found_by_equal_strides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_part_too_small_for_the_ring_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect_returns_the_marked_heads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect_repairs_a_completion_published_before_its_mark_was_cleared,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect_refuses_more_marks_than_available_requests,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect_refuses_an_avail_index_beyond_the_ring, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_collect_ignores_marks_and_a_batch_head_past_the_ring,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_chain_sets_the_last_writable_byte_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fail_chain_refuses_hostile_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_fails_what_the_backend_took_and_what_came_after,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_returns_hostile_chains_empty_and_never_stalls,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_leaves_a_ring_whose_region_lies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_refuses_an_avail_index_that_ran_ahead, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drain_stops_after_two_rings_of_work, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
