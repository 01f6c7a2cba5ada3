/*
 * base/hugepages against a fake sysfs tree in a temporary directory: two page sizes system-wide,
 * two NUMA nodes, one of them with a single size, and files a reader must not trip over.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/hugepages.h"

#define MB (1ULL << 20)
#define GB (1ULL << 30)

/* Writes `text` to root/rel, creating the directories on the way. */
static void put(const char *root, const char *rel, const char *text)
{
	char path[512];
	char *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*slash = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Two sizes system-wide; node0 has both, node1 only 2 MiB, node2 a count that is no number. */
static const struct {
	const char *path;
	const char *text;
} tree[] = {
	{ "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "512\n" },
	{ "kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "300\n" },
	{ "kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "4\n" },
	{ "kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "1\n" },
	{ "kernel/mm/hugepages/README", "not a pool\n" },
	{ "devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "256\n" },
	{ "devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", "100\n" },
	{ "devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages", "4\n" },
	{ "devices/system/node/node0/hugepages/hugepages-1048576kB/free_hugepages", "1\n" },
	{ "devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages", "256\n" },
	{ "devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages", "200\n" },
	{ "devices/system/node/node2/hugepages/hugepages-2048kB/nr_hugepages", "many\n" },
	{ "devices/system/node/node2/hugepages/hugepages-2048kB/free_hugepages", "0\n" },
};

static int setup(void **state)
{
	char *root = strdup("/tmp/test_hugepages.XXXXXX");
	size_t i;

	if (!root || !mkdtemp(root))
		return -1;
	for (i = 0; i < sizeof(tree) / sizeof(tree[0]); i++)
		put(root, tree[i].path, tree[i].text);
	*state = root;
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	int ret = nftw(*state, remove_one, 8, FTW_DEPTH | FTW_PHYS);

	free(*state);
	return ret;
}

static void test_hugepages_lists_the_system_sizes_ascending(void **state)
{
	uint64_t sizes[HUGEPAGES_MAX_SIZES];

	assert_int_equal(hugepages__sizes(*state, -1, sizes, HUGEPAGES_MAX_SIZES), 2);
	assert_int_equal(sizes[0], 2 * MB);
	assert_int_equal(sizes[1], GB);
}

static void test_hugepages_lists_a_nodes_own_sizes(void **state)
{
	uint64_t sizes[HUGEPAGES_MAX_SIZES];

	assert_int_equal(hugepages__sizes(*state, 1, sizes, HUGEPAGES_MAX_SIZES), 1);
	assert_int_equal(sizes[0], 2 * MB);
}

static void test_hugepages_says_when_sizes_do_not_fit(void **state)
{
	uint64_t sizes[1];

	assert_int_equal(hugepages__sizes(*state, -1, sizes, 1), -E2BIG);
}

static void test_hugepages_counts_system_and_node_pools(void **state)
{
	struct hugepages_count c;

	assert_int_equal(hugepages__count(*state, 2 * MB, -1, &c), 0);
	assert_int_equal(c.total, 512);
	assert_int_equal(c.free, 300);
	assert_int_equal(hugepages__count(*state, GB, 0, &c), 0);
	assert_int_equal(c.total, 4);
	assert_int_equal(c.free, 1);
	assert_int_equal(hugepages__count(*state, 2 * MB, 1, &c), 0);
	assert_int_equal(c.free, 200);
}

static void test_hugepages_refuses_missing_pools_and_garbage(void **state)
{
	uint64_t sizes[HUGEPAGES_MAX_SIZES];
	struct hugepages_count c;

	assert_int_equal(hugepages__count(*state, GB, 1, &c), -ENOENT);
	assert_int_equal(hugepages__count(*state, 2 * MB, 7, &c), -ENOENT);
	assert_int_equal(hugepages__sizes(*state, 7, sizes, HUGEPAGES_MAX_SIZES), -ENOENT);
	assert_int_equal(hugepages__count(*state, 2 * MB, 2, &c), -EINVAL);
}

static void test_hugepages_free_bytes_sum_every_size(void **state)
{
	assert_int_equal(hugepages__free_bytes(*state, -1), 300 * 2 * MB + GB);
	assert_int_equal(hugepages__free_bytes(*state, 0), 100 * 2 * MB + GB);
	assert_int_equal(hugepages__free_bytes(*state, 1), 200 * 2 * MB);
	assert_int_equal(hugepages__free_bytes(*state, 7), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hugepages_lists_the_system_sizes_ascending),
		cmocka_unit_test(test_hugepages_lists_a_nodes_own_sizes),
		cmocka_unit_test(test_hugepages_says_when_sizes_do_not_fit),
		cmocka_unit_test(test_hugepages_counts_system_and_node_pools),
		cmocka_unit_test(test_hugepages_refuses_missing_pools_and_garbage),
		cmocka_unit_test(test_hugepages_free_bytes_sum_every_size),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
