#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bus.h"

struct recorder {
	uint64_t last_off;
	uint32_t last_len;
	uint8_t last_data[8];
	int reads, writes;
};

static void rec_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct recorder *r = dev;

	r->reads++;
	r->last_off = off;
	r->last_len = len;
	memset(data, 0xa5, len);
}

static void rec_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct recorder *r = dev;

	r->writes++;
	r->last_off = off;
	r->last_len = len;
	memcpy(r->last_data, data, len);
}

static const struct io_ops rec_ops = { .read = rec_read, .write = rec_write };

static void test_bus_routes_access_with_offset_from_base(void **state)
{
	struct recorder a = { 0 }, b = { 0 };
	uint8_t buf[4] = { 1, 2, 3, 4 };
	struct bus bus;

	(void)state;
	bus__init(&bus, "pio");
	assert_int_equal(bus__register(&bus, 0x3f8, 8, &rec_ops, &a, "a"), 0);
	assert_int_equal(bus__register(&bus, 0x60, 1, &rec_ops, &b, "b"), 0);
	assert_true(bus__access(&bus, 0x3fd, buf, 1, true));
	assert_int_equal(a.writes, 1);
	assert_int_equal(a.last_off, 5);
	assert_int_equal(a.last_data[0], 1);
	assert_true(bus__access(&bus, 0x60, buf, 1, false));
	assert_int_equal(b.reads, 1);
	assert_int_equal(buf[0], 0xa5);
	bus__exit(&bus);
}

static void test_bus_rejects_overlapping_and_empty_ranges(void **state)
{
	struct recorder a = { 0 };
	struct bus bus;

	(void)state;
	bus__init(&bus, "mmio");
	assert_int_equal(bus__register(&bus, 0x1000, 0x100, &rec_ops, &a, "a"), 0);
	assert_int_equal(bus__register(&bus, 0x10ff, 1, &rec_ops, &a, "b"), -EEXIST);
	assert_int_equal(bus__register(&bus, 0xf00, 0x101, &rec_ops, &a, "c"), -EEXIST);
	assert_int_equal(bus__register(&bus, 0x2000, 0, &rec_ops, &a, "d"), -EINVAL);
	assert_int_equal(bus__register(&bus, UINT64_MAX, 2, &rec_ops, &a, "e"), -EINVAL);
	assert_int_equal(bus__register(&bus, 0x1100, 0x100, &rec_ops, &a, "f"), 0);
	bus__exit(&bus);
}

static void test_bus_unclaimed_read_is_all_ones_and_counted(void **state)
{
	struct recorder a = { 0 };
	uint32_t v = 0;
	struct bus bus;

	(void)state;
	bus__init(&bus, "pio");
	assert_int_equal(bus__register(&bus, 0x100, 4, &rec_ops, &a, "a"), 0);
	assert_false(bus__access(&bus, 0x200, &v, 4, false));
	assert_int_equal(v, 0xffffffffu);
	assert_false(bus__access(&bus, 0x200, &v, 4, true));
	/* An access straddling the end of a range is not the device's. */
	assert_false(bus__access(&bus, 0x102, &v, 4, false));
	assert_int_equal(bus.unclaimed, 3);
	assert_int_equal(a.reads + a.writes, 0);
	bus__exit(&bus);
}

static void test_bus_finds_among_many_sorted_ranges(void **state)
{
	struct recorder devs[40];
	struct bus bus;
	int i;

	(void)state;
	bus__init(&bus, "mmio");
	/* Register in descending order to exercise insertion sorting and growth. */
	for (i = 39; i >= 0; i--)
		assert_int_equal(bus__register(&bus, (uint64_t)i * 0x1000, 0x800, &rec_ops, &devs[i],
					       "d"), 0);
	for (i = 0; i < 40; i++) {
		const struct io_range *r = bus__find(&bus, (uint64_t)i * 0x1000 + 0x7ff);

		assert_non_null(r);
		assert_ptr_equal(r->dev, &devs[i]);
		assert_null(bus__find(&bus, (uint64_t)i * 0x1000 + 0x800));
	}
	bus__exit(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_routes_access_with_offset_from_base),
		cmocka_unit_test(test_bus_rejects_overlapping_and_empty_ranges),
		cmocka_unit_test(test_bus_unclaimed_read_is_all_ones_and_counted),
		cmocka_unit_test(test_bus_finds_among_many_sorted_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
