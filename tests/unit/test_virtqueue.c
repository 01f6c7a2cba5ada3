/*
 * The split-virtqueue layer against rings built by hand in a buffer that
 * stands in for guest RAM (one region at RAM_GPA): checks, bounded chain walks,
 * index wrap, used publishing and the avail event.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"
#include "vmm/virtio/virtqueue.h"

#define RAM_GPA  0x10000ull
#define RAM_SIZE 0x10000ull
#define QSIZE    8
#define DESC     (RAM_GPA + 0x0000)
#define AVAIL    (RAM_GPA + 0x1000)
#define USED     (RAM_GPA + 0x2000)
#define BUF      (RAM_GPA + 0x4000)
#define TABLE    (RAM_GPA + 0x8000)

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));

static struct guest_mem mem = {
	.fd = -1,
	.size = RAM_SIZE,
	.nr_regions = 1,
	.regions = { { .gpa = RAM_GPA, .size = RAM_SIZE, .hva = ram } },
};

static const struct virtio_queue ring = { .size = QSIZE, .enabled = true, .desc = DESC,
					  .driver = AVAIL, .device = USED };

static uint8_t *at(uint64_t gpa)
{
	return ram + (gpa - RAM_GPA);
}

static void put_desc(uint64_t table, unsigned i, struct desc d)
{
	memcpy(at(table + 16ull * i), &d, sizeof(d));
}

static void set_avail(uint16_t slot, uint16_t head, uint16_t idx)
{
	memcpy(at(AVAIL + 4 + 2ull * (slot % QSIZE)), &head, 2);
	memcpy(at(AVAIL + 2), &idx, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, at(gpa), 2);
	return v;
}

/* Records what the walk saw. */
struct seen {
	unsigned nr;
	struct virtqueue_buf b[16];
	int fail_at;              /* return -EIO at this buffer, -1 never */
};

static int record(void *arg, const struct virtqueue_buf *b)
{
	struct seen *s = arg;

	if ((int)s->nr == s->fail_at)
		return -EIO;
	if (s->nr < 16)
		s->b[s->nr] = *b;
	s->nr++;
	return 0;
}

static int setup(void **state)
{
	(void)state;
	memset(ram, 0, sizeof(ram));
	return 0;
}

static struct virtqueue vq_with(uint64_t features)
{
	struct virtqueue vq;

	virtqueue__init(&vq, &mem, &ring, features);
	return vq;
}

static int walk(const struct virtqueue *vq, uint16_t head, struct seen *s, struct err *e)
{
	memset(s, 0, sizeof(*s));
	s->fail_at = -1;
	return virtqueue__walk(vq, head, record, s, e);
}

static void expect_bad(const struct virtqueue *vq, uint16_t head, const char *why)
{
	struct seen s;
	struct err e = { 0 };

	assert_int_equal(walk(vq, head, &s, &e), -EINVAL);
	assert_int_equal(e.code, -EINVAL);
	assert_string_equal(e.msg, why);
}

static void test_check_refuses_bad_sizes_misaligned_rings_and_rings_outside_ram(void **state)
{
	struct virtio_queue q = ring;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(virtqueue__check(&mem, &q, 256, true, &e), 0);
	q.size = 6;
	assert_int_equal(virtqueue__check(&mem, &q, 256, false, &e), -EINVAL);
	assert_string_equal(e.msg, "size 6 is not a power of two <= 256");
	q.size = 512;
	assert_int_equal(virtqueue__check(&mem, &q, 256, false, &e), -EINVAL);
	q = ring;
	q.desc = DESC + 8;
	assert_int_equal(virtqueue__check(&mem, &q, 256, false, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "misaligned ring (desc 0x10008"));
	q = ring;
	q.device = RAM_GPA + RAM_SIZE - 4 - 8 * QSIZE;  /* fits exactly without the event field */
	assert_int_equal(virtqueue__check(&mem, &q, 256, false, &e), 0);
	assert_int_equal(virtqueue__check(&mem, &q, 256, true, &e), -EFAULT);
	assert_non_null(strstr(e.msg, "ring outside guest RAM"));
	q = ring;
	q.driver = 0x100;                               /* below RAM */
	assert_int_equal(virtqueue__check(&mem, &q, 256, false, &e), -EFAULT);
}

static void test_walk_direct_chain_gives_buffers_in_order(void **state)
{
	struct virtqueue vq = vq_with(0);
	struct err e = { 0 };
	struct seen s;

	(void)state;
	put_desc(DESC, 3, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 5 });
	put_desc(DESC, 5, (struct desc){ BUF + 0x100, 0, VRING_DESC_F_NEXT, 1 });
	put_desc(DESC, 1, (struct desc){ BUF + 0x200, 1, VRING_DESC_F_WRITE, 7 /* no NEXT */ });
	assert_int_equal(walk(&vq, 3, &s, &e), 0);
	assert_int_equal(s.nr, 3);
	assert_true(s.b[0].gpa == BUF && s.b[0].len == 2 && !s.b[0].write);
	assert_ptr_equal(s.b[0].hva, at(BUF));
	assert_null(s.b[1].hva);                        /* empty buffer: no pointer */
	assert_true(s.b[2].gpa == BUF + 0x200 && s.b[2].write);
	assert_ptr_equal(s.b[2].hva, at(BUF + 0x200));
}

static void test_walk_refuses_loops_and_indices_past_the_table(void **state)
{
	struct virtqueue vq = vq_with(0);

	(void)state;
	expect_bad(&vq, QSIZE, "descriptor index out of range");
	put_desc(DESC, 0, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 1 });
	put_desc(DESC, 1, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 0 });
	expect_bad(&vq, 0, "descriptor chain longer than its table (a loop)");
	put_desc(DESC, 1, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 0xffff });
	expect_bad(&vq, 0, "descriptor index out of range");
	/* A chain as long as the table is fine; one more is not. */
	for (unsigned i = 0; i < QSIZE; i++)
		put_desc(DESC, i, (struct desc){ BUF, 1, i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0,
						 (uint16_t)(i + 1) });
	{
		struct seen s;
		struct err e = { 0 };

		assert_int_equal(walk(&vq, 0, &s, &e), 0);
		assert_int_equal(s.nr, QSIZE);
	}
}

static void test_walk_refuses_buffers_outside_ram(void **state)
{
	struct virtqueue vq = vq_with(0);

	(void)state;
	put_desc(DESC, 0, (struct desc){ RAM_GPA + RAM_SIZE, 1, 0, 0 });
	expect_bad(&vq, 0, "buffer outside guest RAM");
	put_desc(DESC, 0, (struct desc){ BUF, 0xffffffffu, 0, 0 });   /* starts in RAM, runs past it */
	expect_bad(&vq, 0, "buffer outside guest RAM");
	put_desc(DESC, 0, (struct desc){ UINT64_MAX - 1, 4, 0, 0 });  /* wraps the address space */
	expect_bad(&vq, 0, "buffer outside guest RAM");
	put_desc(DESC, 0, (struct desc){ RAM_GPA - 1, 2, 0, 0 });     /* straddles the start */
	expect_bad(&vq, 0, "buffer outside guest RAM");
}

static void test_walk_refuses_readable_after_writable(void **state)
{
	struct virtqueue vq = vq_with(0);

	(void)state;
	put_desc(DESC, 0, (struct desc){ BUF, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1 });
	put_desc(DESC, 1, (struct desc){ BUF, 2, 0, 0 });
	expect_bad(&vq, 0, "device-readable buffer after a writable one");
}

static void test_walk_follows_one_indirect_table_only_when_negotiated(void **state)
{
	struct virtqueue plain = vq_with(0);
	struct virtqueue vq = vq_with(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	struct err e = { 0 };
	struct seen s;

	(void)state;
	put_desc(TABLE, 0, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 2 });
	put_desc(TABLE, 2, (struct desc){ BUF + 0x10, 1, VRING_DESC_F_WRITE, 0 });
	put_desc(DESC, 4, (struct desc){ TABLE, 3 * 16, VRING_DESC_F_INDIRECT, 0 });
	assert_int_equal(walk(&vq, 4, &s, &e), 0);
	assert_int_equal(s.nr, 2);
	assert_true(s.b[0].gpa == BUF && s.b[1].gpa == BUF + 0x10 && s.b[1].write);
	expect_bad(&plain, 4, "indirect descriptor where none is allowed");

	/* Nested, chained or not first: refused. */
	put_desc(TABLE, 0, (struct desc){ TABLE, 32, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect descriptor where none is allowed");
	put_desc(DESC, 4, (struct desc){ TABLE, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 5 });
	expect_bad(&vq, 4, "indirect descriptor where none is allowed");
	put_desc(DESC, 4, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 5 });
	put_desc(DESC, 5, (struct desc){ TABLE, 32, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect descriptor where none is allowed");

	/* Bad tables. */
	put_desc(DESC, 4, (struct desc){ TABLE, 20, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect table outside guest RAM or of a bad size");
	put_desc(DESC, 4, (struct desc){ TABLE, 0, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect table outside guest RAM or of a bad size");
	put_desc(DESC, 4, (struct desc){ TABLE + 8, 32, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect table outside guest RAM or of a bad size");
	put_desc(DESC, 4, (struct desc){ RAM_GPA + RAM_SIZE - 16, 64, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect table outside guest RAM or of a bad size");
	put_desc(DESC, 4, (struct desc){ TABLE, 16 * (VIRTQUEUE_MAX_INDIRECT + 1),
					 VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "indirect table outside guest RAM or of a bad size");

	/* A loop inside the table, and an index past its end. */
	for (unsigned k = 0; k < 4; k++)
		put_desc(TABLE, k, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, (uint16_t)((k + 1) % 4) });
	put_desc(DESC, 4, (struct desc){ TABLE, 64, VRING_DESC_F_INDIRECT, 0 });
	expect_bad(&vq, 4, "descriptor chain longer than its table (a loop)");
	put_desc(TABLE, 3, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 4 });
	expect_bad(&vq, 4, "descriptor index out of range");
}

static void test_walk_stops_at_the_callbacks_error(void **state)
{
	struct virtqueue vq = vq_with(0);
	struct err e = { 0 };
	struct seen s = { .fail_at = 1 };

	(void)state;
	put_desc(DESC, 0, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 1 });
	put_desc(DESC, 1, (struct desc){ BUF, 2, VRING_DESC_F_NEXT, 2 });
	put_desc(DESC, 2, (struct desc){ BUF, 2, 0, 0 });
	assert_int_equal(virtqueue__walk(&vq, 0, record, &s, &e), -EIO);
	assert_int_equal(s.nr, 1);
}

static void test_pop_and_push_wrap_the_16_bit_indices(void **state)
{
	struct virtqueue vq = vq_with(0);
	struct err e = { 0 };
	uint16_t head, n;
	uint32_t elem[2];

	(void)state;
	/* Driver and device are both 3 short of the wrap. */
	vq.last_avail = 65533;
	vq.next_used = 65533;
	for (n = 0; n < 5; n++)
		set_avail((uint16_t)(65533 + n), (uint16_t)(n + 2), (uint16_t)(65533 + n + 1));
	for (n = 0; n < 5; n++) {
		assert_int_equal(virtqueue__pop(&vq, &head, &e), 1);
		assert_int_equal(head, n + 2);
		virtqueue__push(&vq, head, 100u + n);
		assert_int_equal(get16(USED + 2), (uint16_t)(65533 + n + 1));
		memcpy(elem, at(USED + 4 + 8ull * ((uint16_t)(65533 + n) % QSIZE)), 8);
		assert_int_equal(elem[0], n + 2);
		assert_int_equal(elem[1], 100 + n);
	}
	assert_int_equal(vq.last_avail, 2);
	assert_int_equal(virtqueue__pop(&vq, &head, &e), 0);
	assert_int_equal(virtqueue__used_idx(&mem, &ring), 2);
}

static void test_pop_refuses_an_available_index_ahead_of_the_ring(void **state)
{
	struct virtqueue vq = vq_with(0);
	struct err e = { 0 };
	uint16_t head = 0xdead;

	(void)state;
	vq.last_avail = 65530;
	set_avail(65530, 1, (uint16_t)(65530 + QSIZE));     /* a full ring: fine */
	assert_int_equal(virtqueue__pop(&vq, &head, &e), 1);
	vq.last_avail = 65530;
	set_avail(65530, 1, (uint16_t)(65530 + QSIZE + 1)); /* one more than the ring holds */
	head = 0xdead;
	assert_int_equal(virtqueue__pop(&vq, &head, &e), -EINVAL);
	assert_string_equal(e.msg, "available index ran ahead of the ring");
	assert_int_equal(head, 0xdead);
	assert_int_equal(vq.last_avail, 65530);
}

static void test_avail_event_is_written_only_with_event_idx(void **state)
{
	struct virtqueue plain = vq_with(0);
	struct virtqueue vq = vq_with(1ull << VIRTIO_RING_F_EVENT_IDX);
	const uint64_t avail_event = USED + 4 + 8ull * QSIZE;

	(void)state;
	plain.last_avail = 9;
	virtqueue__update_avail_event(&plain);
	assert_int_equal(get16(avail_event), 0);
	vq.last_avail = 9;
	virtqueue__update_avail_event(&vq);
	assert_int_equal(get16(avail_event), 9);
}

static void set16(uint64_t gpa, uint16_t v)
{
	memcpy(at(gpa), &v, 2);
}

static void test_need_signal_follows_used_event_or_no_interrupt(void **state)
{
	struct virtqueue plain = vq_with(0);
	struct virtqueue vq = vq_with(1ull << VIRTIO_RING_F_EVENT_IDX);
	const uint64_t used_event = AVAIL + 4 + 2ull * QSIZE;

	(void)state;
	/* Nothing pushed: never. */
	assert_false(virtqueue__need_signal(&plain, plain.next_used));
	virtqueue__push(&plain, 0, 1);
	assert_true(virtqueue__need_signal(&plain, 0));
	set16(AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
	assert_false(virtqueue__need_signal(&plain, 0));
	/* EVENT_IDX ignores the flag: entries old..new-1 must include used_event. */
	vq.next_used = 10;
	set16(used_event, 7);
	assert_true(virtqueue__need_signal(&vq, 7));     /* 7..9 */
	assert_true(virtqueue__need_signal(&vq, 5));     /* 5..9 */
	assert_false(virtqueue__need_signal(&vq, 8));    /* 8..9 */
	set16(used_event, 10);
	assert_false(virtqueue__need_signal(&vq, 5));    /* the driver waits for entry 10 */
	/* Across the 16-bit wrap: 65534..1 includes 65535 and 0. */
	vq.next_used = 2;
	set16(used_event, 0);
	assert_true(virtqueue__need_signal(&vq, 65534));
	set16(used_event, 2);
	assert_false(virtqueue__need_signal(&vq, 65534));
}

/* ---- the dirty log: what the device writes of the ring is marked ---- */

/* The pages of RAM the log says were written (bit i: the page at RAM_GPA + i * 4 KiB). */
static uint64_t logged_pages(void)
{
	uint64_t bits[(RAM_SIZE / 4096 + 63) / 64] = { 0 };

	guest_mem__log_take(&mem, bits);
	return bits[0];
}

#define PG(gpa) (1ull << (((gpa) - RAM_GPA) / 4096))

static void test_push_and_avail_event_mark_exactly_their_pages_while_logging(void **state)
{
	/* Used ring across a page boundary: flags and index on page 2, the entries on page 3. */
	const struct virtio_queue split = { .size = QSIZE, .enabled = true, .desc = DESC,
					    .driver = AVAIL, .device = RAM_GPA + 0x2ffc };
	struct virtqueue vq;

	(void)state;
	virtqueue__init(&vq, &mem, &split, 1ull << VIRTIO_RING_F_EVENT_IDX);
	/* Off: written, not marked (a later log knows nothing of it). */
	virtqueue__push(&vq, 0, 1);
	assert_int_equal(guest_mem__log_start(&mem), 0);
	assert_int_equal(logged_pages(), 0);
	/* The used element (page 3) and the used index (page 2); never the driver's pages. */
	virtqueue__push(&vq, 1, 2);
	assert_int_equal(logged_pages(), PG(RAM_GPA + 0x2000) | PG(RAM_GPA + 0x3000));
	assert_int_equal(get16(RAM_GPA + 0x2ffe), 2);
	/* avail_event, after the entries: page 3 only. */
	vq.last_avail = 4;
	virtqueue__update_avail_event(&vq);
	assert_int_equal(logged_pages(), PG(RAM_GPA + 0x3000));
	assert_int_equal(logged_pages(), 0);
	/* Stopped: the push writes, nothing is marked. */
	guest_mem__log_stop(&mem);
	virtqueue__push(&vq, 2, 3);
	assert_int_equal(get16(RAM_GPA + 0x2ffe), 3);
	assert_int_equal(logged_pages(), 0);
}

/* guest_mem__write marks what it wrote, nothing else. */
static void test_guest_mem_write_marks_its_pages_while_logging(void **state)
{
	(void)state;
	assert_int_equal(guest_mem__write(&mem, BUF + 0xffe, "ack", 3), 0);
	assert_int_equal(guest_mem__log_start(&mem), 0);
	assert_int_equal(guest_mem__write(&mem, BUF + 0xffe, "ack", 3), 0);
	assert_int_equal(logged_pages(), PG(BUF) | PG(BUF + 0x1000));
	guest_mem__log_stop(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_check_refuses_bad_sizes_misaligned_rings_and_rings_outside_ram, setup),
		cmocka_unit_test_setup(test_walk_direct_chain_gives_buffers_in_order, setup),
		cmocka_unit_test_setup(test_walk_refuses_loops_and_indices_past_the_table, setup),
		cmocka_unit_test_setup(test_walk_refuses_buffers_outside_ram, setup),
		cmocka_unit_test_setup(test_walk_refuses_readable_after_writable, setup),
		cmocka_unit_test_setup(test_walk_follows_one_indirect_table_only_when_negotiated, setup),
		cmocka_unit_test_setup(test_walk_stops_at_the_callbacks_error, setup),
		cmocka_unit_test_setup(test_pop_and_push_wrap_the_16_bit_indices, setup),
		cmocka_unit_test_setup(test_pop_refuses_an_available_index_ahead_of_the_ring, setup),
		cmocka_unit_test_setup(test_avail_event_is_written_only_with_event_idx, setup),
		cmocka_unit_test_setup(test_need_signal_follows_used_event_or_no_interrupt, setup),
		cmocka_unit_test_setup(test_push_and_avail_event_mark_exactly_their_pages_while_logging, setup),
		cmocka_unit_test_setup(test_guest_mem_write_marks_its_pages_while_logging, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
