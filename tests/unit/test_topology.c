/* numa/topology: hwloc synthetic and XML topologies, overrides, and this host. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cpus.h"
#include "config/parse.h"
#include "config/plan.h"
#include "numa/topology.h"

/* 2 sockets x 8 cores x 2 threads, Intel numbering: cpu N+16 is the SMT sibling of cpu N. */
#define SYNTH_2S8C2T_INTEL                                                                   \
	"package:2 numa:1 core:8 pu:2(indexes=0,16,1,17,2,18,3,19,4,20,5,21,6,22,7,23,8,24,9," \
	"25,10,26,11,27,12,28,13,29,14,30,15,31)"

/* The example next to this source, whether run from the build or the source directory. */
static const char *example_xml(void)
{
	static char path[4096];
	const char *slash = strrchr(__FILE__, '/');

	snprintf(path, sizeof(path), "%.*s/../../examples/topologies/2s8c2t.xml",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	if (access(path, R_OK) && !access("examples/topologies/2s8c2t.xml", R_OK))
		snprintf(path, sizeof(path), "examples/topologies/2s8c2t.xml");
	return path;
}

static cpu_set_t cpus(const char *list)
{
	cpu_set_t s;

	assert_int_equal(cpus__parse(list, &s), 0);
	return s;
}

static void test_topology_synthetic_2s8c2t_has_32_cpus_2_nodes_and_siblings(void **state)
{
	struct topology t;
	struct err e = { 0 };
	cpu_set_t want;
	unsigned i;

	(void)state;
	assert_int_equal(topology__load_synthetic(&t, "package:2 numa:1 core:8 pu:2", NULL, &e), 0);
	assert_false(t.is_host);
	assert_int_equal(t.nr_cpus, 32);
	assert_int_equal(t.nr_nodes, 2);
	assert_int_equal(t.nodes[0].os_index, 0);
	assert_int_equal(t.nodes[1].os_index, 1);
	assert_true(t.nodes[0].mem_bytes > 0);
	for (i = 0; i < 32; i++) {
		assert_true(t.cpus[i].present);
		assert_int_equal(topology__cpu_node(&t, i), i < 16 ? 0 : 1);
		assert_int_equal(t.cpus[i].package, i < 16 ? 0 : 1);
		assert_int_equal(t.cpus[i].core, i / 2);
		/* hwloc numbers synthetic PUs in order: the siblings of 2k are 2k and 2k+1 */
		CPU_ZERO(&want);
		CPU_SET(i & ~1u, &want);
		CPU_SET(i | 1u, &want);
		assert_true(CPU_EQUAL(&t.cpus[i].siblings, &want));
	}
	assert_int_equal(topology__cpu_node(&t, 32), -1);
	assert_false(topology__has_cpu(&t, 32));
	assert_non_null(strstr(t.source, "package:2 numa:1 core:8 pu:2"));
	topology__free(&t);
}

static void test_topology_synthetic_intel_numbering_pairs_n_and_n_plus_16(void **state)
{
	struct topology t;
	struct err e = { 0 };
	cpu_set_t want;

	(void)state;
	assert_int_equal(topology__load_synthetic(&t, SYNTH_2S8C2T_INTEL, NULL, &e), 0);
	assert_int_equal(t.nr_cpus, 32);
	want = cpus("3,19");
	assert_true(CPU_EQUAL(&t.cpus[3].siblings, &want));
	assert_true(CPU_EQUAL(&t.cpus[19].siblings, &want));
	want = cpus("9,25");
	assert_true(CPU_EQUAL(&t.cpus[25].siblings, &want));
	assert_int_equal(topology__cpu_node(&t, 7), 0);
	assert_int_equal(topology__cpu_node(&t, 23), 0);
	assert_int_equal(topology__cpu_node(&t, 8), 1);
	assert_int_equal(topology__cpu_node(&t, 31), 1);
	assert_int_equal(t.cpus[20].package, 0);
	assert_int_equal(t.cpus[24].package, 1);
	assert_int_equal(t.cpus[3].core, t.cpus[19].core);
	assert_int_not_equal(t.cpus[3].core, t.cpus[4].core);
	topology__free(&t);
}

static void test_topology_synthetic_without_overrides_knows_no_host_state(void **state)
{
	struct topology t;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(topology__load_synthetic(&t, "numa:1 core:2 pu:1", NULL, &e), 0);
	assert_int_equal(t.nr_cpus, 2);
	assert_int_equal(t.nr_nodes, 1);
	assert_false(t.isolated_known);
	assert_false(t.nohz_full_known);
	assert_false(t.hugepages_known);
	assert_false(t.page_sizes_known);
	assert_false(t.rt_known);
	assert_true(t.page_size_supported[PAGE_4K]);
	topology__free(&t);
}

static void test_topology_overrides_set_isolation_hugepages_and_rt(void **state)
{
	struct topology t;
	struct err e = { 0 };
	cpu_set_t want;

	(void)state;
	assert_int_equal(topology__load_synthetic(&t, SYNTH_2S8C2T_INTEL,
		"isolated=2-15,18-31 nohz_full=2-7 hugepages=node0:2M:1024/2048,node1:1G:8 "
		"rt_runtime=-1", &e), 0);
	assert_true(t.isolated_known);
	want = cpus("2-15,18-31");
	assert_true(CPU_EQUAL(&t.isolated, &want));
	want = cpus("2-7");
	assert_true(CPU_EQUAL(&t.nohz_full, &want));
	assert_true(t.hugepages_known);
	assert_int_equal(topology__node(&t, 0)->free_pages[PAGE_2M], 1024);
	assert_int_equal(topology__node(&t, 0)->total_pages[PAGE_2M], 2048);
	assert_int_equal(topology__node(&t, 0)->free_pages[PAGE_1G], 0);
	assert_int_equal(topology__node(&t, 1)->free_pages[PAGE_1G], 8);
	assert_int_equal(topology__node(&t, 1)->total_pages[PAGE_1G], 8);
	/* the sizes hugepages= names are the supported ones */
	assert_true(t.page_sizes_known);
	assert_true(t.page_size_supported[PAGE_2M]);
	assert_true(t.page_size_supported[PAGE_1G]);
	assert_true(t.rt_known);
	assert_int_equal(t.rt_runtime_us, -1);
	topology__free(&t);

	assert_int_equal(topology__load_synthetic(&t, "numa:1 core:2 pu:1",
		"isolated=none pagesizes=2M hugepages=node0:2M:0 rt_runtime=950000", &e), 0);
	assert_true(t.isolated_known);
	assert_int_equal(CPU_COUNT(&t.isolated), 0);
	assert_true(t.page_size_supported[PAGE_2M]);
	assert_false(t.page_size_supported[PAGE_1G]);
	assert_int_equal(t.rt_runtime_us, 950000);
	assert_int_equal(t.rt_period_us, 1000000);
	topology__free(&t);
}

static void test_topology_bad_overrides_name_the_item(void **state)
{
	static const struct {
		const char *ov, *want;
	} cases[] = {
		{ "isolated=2-x", "isolated" },
		{ "hugepages=node5:2M:10", "node5" },
		{ "hugepages=node0:3M:10", "node0:3M:10" },
		{ "hugepages=node0:2M:10/5", "node0:2M:10/5" },
		{ "pagesizes=4M", "4M" },
		{ "rt_runtime=lots", "lots" },
		{ "colour=blue", "colour" },
		{ "isolated", "isolated" },
	};
	struct topology t;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(topology__load_synthetic(&t, "package:2 numa:1 core:2 pu:1",
							  cases[i].ov, &e), -EINVAL);
		if (!strstr(e.msg, cases[i].want))
			fail_msg("'%s': message '%s' does not name '%s'", cases[i].ov, e.msg,
				 cases[i].want);
		assert_null(t.cpus);
	}
}

static void test_topology_xml_example_loads_with_its_info_attributes(void **state)
{
	struct topology t;
	struct err e = { 0 };
	cpu_set_t want;

	(void)state;
	if (topology__load_file(&t, example_xml(), NULL, &e))
		fail_msg("%s", e.msg);
	assert_non_null(strstr(t.source, "2s8c2t.xml"));
	assert_int_equal(t.nr_cpus, 32);
	assert_int_equal(t.nr_nodes, 2);
	assert_int_equal(t.nodes[0].mem_bytes + 4 * (1ull << 30) + 8 * (1ull << 30),
			 64ull << 30);
	want = cpus("0,16");
	assert_true(CPU_EQUAL(&t.cpus[16].siblings, &want));
	assert_int_equal(topology__cpu_node(&t, 24), 1);

	assert_true(t.isolated_known);
	want = cpus("1-7,9-15,17-23,25-31");
	assert_true(CPU_EQUAL(&t.isolated, &want));
	assert_true(t.nohz_full_known);
	assert_true(CPU_EQUAL(&t.nohz_full, &want));
	assert_true(t.hugepages_known);
	assert_int_equal(t.nodes[0].free_pages[PAGE_2M], 2048);
	assert_int_equal(t.nodes[0].free_pages[PAGE_1G], 8);
	assert_int_equal(t.nodes[1].free_pages[PAGE_2M], 1024);
	assert_int_equal(t.nodes[1].free_pages[PAGE_1G], 4);
	assert_true(t.page_sizes_known);
	assert_true(t.page_size_supported[PAGE_1G]);
	assert_true(t.rt_known);
	assert_int_equal(t.rt_runtime_us, -1);
	topology__free(&t);

	/* overrides win over the file's info attributes */
	assert_int_equal(topology__load_file(&t, example_xml(), "rt_runtime=950000 isolated=4", &e),
			 0);
	assert_int_equal(t.rt_runtime_us, 950000);
	want = cpus("4");
	assert_true(CPU_EQUAL(&t.isolated, &want));
	assert_int_equal(t.nodes[1].free_pages[PAGE_1G], 4);
	topology__free(&t);
}

static void test_topology_bad_synthetic_string_is_named(void **state)
{
	struct topology t;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(topology__load_synthetic(&t, "sockets:two cores:lots", NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "sockets:two cores:lots"));
	assert_non_null(strstr(e.msg, "synthetic"));
	assert_null(t.cpus);
	assert_int_equal(topology__load_synthetic(&t, "", NULL, &e), -EINVAL);
}

static void test_topology_missing_xml_file_is_an_error(void **state)
{
	struct topology t;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(topology__load_file(&t, "/nonexistent/host.xml", NULL, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent/host.xml"));
	assert_null(t.cpus);
}

static void test_topology_garbage_xml_file_is_an_error(void **state)
{
	char path[] = "/tmp/rtvmm-topo-XXXXXX";
	struct topology t;
	struct err e = { 0 };
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not xml\n", 8), 8);
	close(fd);
	assert_true(topology__load_file(&t, path, NULL, &e) < 0);
	assert_non_null(strstr(e.msg, path));
	unlink(path);
}

static unsigned count_sys_nodes(void)
{
	DIR *d = opendir("/sys/devices/system/node");
	struct dirent *de;
	unsigned n = 0;
	char *end;

	if (!d)
		return 1;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "node", 4) || !de->d_name[4])
			continue;
		strtoul(de->d_name + 4, &end, 10);
		n += !*end;
	}
	closedir(d);
	return n ? n : 1;
}

static void test_topology_this_host_loads(void **state)
{
	struct topology t;
	struct err e = { 0 };
	long runtime;
	FILE *f;

	(void)state;
	if (topology__load_host(&t, &e))
		fail_msg("%s", e.msg);
	assert_true(t.is_host);
	assert_string_equal(t.source, "this host");
	assert_int_equal(t.nr_cpus, sysconf(_SC_NPROCESSORS_CONF));
	assert_int_equal(t.nr_nodes, count_sys_nodes());
	assert_true(topology__has_cpu(&t, 0));
	assert_true(topology__cpu_node(&t, 0) >= 0);
	assert_true(CPU_ISSET(0, &t.cpus[0].siblings));
	assert_true(t.isolated_known);
	assert_true(t.nohz_full_known);
	assert_true(t.hugepages_known);
	assert_true(t.page_sizes_known);
	assert_true(t.page_size_supported[PAGE_4K]);
	assert_int_equal(t.page_size_supported[PAGE_2M],
			 access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK) == 0);
	assert_int_equal(t.page_size_supported[PAGE_1G],
			 access("/sys/kernel/mm/hugepages/hugepages-1048576kB", F_OK) == 0);
	f = fopen("/proc/sys/kernel/sched_rt_runtime_us", "r");
	if (f) {
		assert_int_equal(fscanf(f, "%ld", &runtime), 1);
		fclose(f);
		assert_true(t.rt_known);
		assert_int_equal(t.rt_runtime_us, runtime);
	}
	topology__free(&t);
	topology__free(&t);   /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topology_synthetic_2s8c2t_has_32_cpus_2_nodes_and_siblings),
		cmocka_unit_test(test_topology_synthetic_intel_numbering_pairs_n_and_n_plus_16),
		cmocka_unit_test(test_topology_synthetic_without_overrides_knows_no_host_state),
		cmocka_unit_test(test_topology_overrides_set_isolation_hugepages_and_rt),
		cmocka_unit_test(test_topology_bad_overrides_name_the_item),
		cmocka_unit_test(test_topology_xml_example_loads_with_its_info_attributes),
		cmocka_unit_test(test_topology_bad_synthetic_string_is_named),
		cmocka_unit_test(test_topology_missing_xml_file_is_an_error),
		cmocka_unit_test(test_topology_garbage_xml_file_is_an_error),
		cmocka_unit_test(test_topology_this_host_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
