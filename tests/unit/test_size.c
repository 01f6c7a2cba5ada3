#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/size.h"

static void test_size_plain_number_is_bytes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(size__parse("268435456", &v), 0);
	assert_int_equal(v, 268435456ULL);
}

static void test_size_binary_suffixes(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{ "4K", 4096 }, { "4k", 4096 }, { "512M", 512ULL << 20 }, { "2G", 2ULL << 30 },
		{ "1GiB", 1ULL << 30 }, { "1gib", 1ULL << 30 }, { "3MB", 3ULL << 20 },
		{ "1T", 1ULL << 40 }, { "0", 0 },
	};
	size_t i;
	uint64_t v;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(size__parse(cases[i].in, &v), 0);
		assert_int_equal(v, cases[i].want);
	}
}

static void test_size_rejects_garbage(void **state)
{
	static const char *const bad[] = { "", "M", "-1", "12Q", "1.5G", "1GiBs", "1 G", "abc", "1Gx" };
	size_t i;
	uint64_t v = 7;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(size__parse(bad[i], &v), -EINVAL);
	assert_int_equal(size__parse(NULL, &v), -EINVAL);
	assert_int_equal(v, 7);
}

static void test_size_rejects_overflow(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(size__parse("99999999999999999999999", &v), -ERANGE);
	assert_int_equal(size__parse("17179869184G", &v), -ERANGE);
	assert_int_equal(size__parse("16777215T", &v), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_plain_number_is_bytes),
		cmocka_unit_test(test_size_binary_suffixes),
		cmocka_unit_test(test_size_rejects_garbage),
		cmocka_unit_test(test_size_rejects_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
