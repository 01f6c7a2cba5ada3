/*
 * The dataplane's pure parts, without DPDK: the L2 MAC table (learning, moves, aging, flush,
 * a full bucket) and the configuration (port specs, pairs, a host plan -> EAL arguments).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/config.h"
#include "dataplane/l2.h"

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 0xb };

static void test_l2_learns_a_mac_on_its_port(void **state)
{
	struct l2_table t;

	(void)state;
	assert_int_equal(l2_table__init(&t, 1024, 300), 0);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_a)), -1);
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 3, 1), L2_NEW);
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 3, 1), L2_KNOWN);
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_b), 0, 1), L2_NEW);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_a)), 3);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_b)), 0);
	l2_table__free(&t);
}

static void test_l2_mac_seen_on_another_port_moves(void **state)
{
	struct l2_table t;

	(void)state;
	assert_int_equal(l2_table__init(&t, 64, 300), 0);
	l2_table__learn(&t, l2_mac(mac_a), 1, 1);
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 2, 2), L2_MOVED);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_a)), 2);
	l2_table__free(&t);
}

static void test_l2_ages_out_macs_not_seen_for_the_aging_time(void **state)
{
	struct l2_table t;
	struct l2_entry e[4];

	(void)state;
	assert_int_equal(l2_table__init(&t, 64, 10), 0);
	assert_int_equal(l2_table__tick(&t, 1), 0);
	l2_table__learn(&t, l2_mac(mac_a), 0, 1);
	l2_table__learn(&t, l2_mac(mac_b), 1, 1);
	assert_int_equal(l2_table__tick(&t, 8), 0);
	l2_table__learn(&t, l2_mac(mac_b), 1, 8);     /* b still talks, a went quiet */
	assert_int_equal(l2_table__dump(&t, e, 4), 2);
	assert_int_equal(l2_table__tick(&t, 11), 1);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_a)), -1);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_b)), 1);
	assert_int_equal(l2_table__dump(&t, e, 4), 1);
	assert_memory_equal(e[0].mac, mac_b, 6);
	assert_int_equal(e[0].port, 1);
	assert_int_equal(e[0].age_s, 3);
	l2_table__free(&t);
}

static void test_l2_flushing_a_port_forgets_only_its_macs(void **state)
{
	struct l2_table t;
	uint8_t m[6] = { 2, 0, 0, 0, 0, 0 };
	unsigned i;

	(void)state;
	assert_int_equal(l2_table__init(&t, 1024, 0), 0);
	for (i = 0; i < 100; i++) {
		m[5] = (uint8_t)i;
		l2_table__learn(&t, l2_mac(m), (uint16_t)(i % 2), 1);
	}
	assert_int_equal(l2_table__flush_port(&t, 1), 50);
	for (i = 0; i < 100; i++) {
		m[5] = (uint8_t)i;
		assert_int_equal(l2_table__lookup(&t, l2_mac(m)), i % 2 ? -1 : 0);
	}
	assert_int_equal(l2_table__tick(&t, 100000), 0);    /* aging 0 = never */
	l2_table__free(&t);
}

static void test_l2_full_bucket_replaces_its_oldest_entry(void **state)
{
	struct l2_table t;
	uint8_t m[6] = { 2, 0, 0, 0, 0, 0 };
	unsigned i;

	(void)state;
	assert_int_equal(l2_table__init(&t, 8, 300), 0);     /* one bucket of 8 */
	for (i = 0; i < 8; i++) {
		m[5] = (uint8_t)i;
		assert_int_equal(l2_table__learn(&t, l2_mac(m), 0, 10 + i), L2_NEW);
	}
	m[5] = 8;
	assert_int_equal(l2_table__learn(&t, l2_mac(m), 1, 20), L2_REPLACED);
	assert_int_equal(l2_table__lookup(&t, l2_mac(m)), 1);
	m[5] = 0;                                             /* the oldest, seen at 10 */
	assert_int_equal(l2_table__lookup(&t, l2_mac(m)), -1);
	m[5] = 1;
	assert_int_equal(l2_table__lookup(&t, l2_mac(m)), 0);
	l2_table__free(&t);
}

static void test_port_specs_parse_with_options(void **state)
{
	struct dp_config c;
	struct err e = { 0 };
	char buf[256];

	(void)state;
	dp_config__init(&c);
	assert_int_equal(dp_config__add_port(&c, "vhost:/run/a.sock", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "vhost:/run/b.sock,queues=4,client,name=up", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "af_packet:eth1,queues=2", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "tap:dp0", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "pci:0000:01:00.0", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);   /* no lcores yet */
	CPU_SET(1, &c.lcores);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_string_equal(c.ports[0].name, "port0");
	assert_string_equal(c.ports[1].name, "up");
	assert_true(c.ports[1].client);
	assert_int_equal(c.ports[1].queues, 4);
	assert_int_equal(dp_config__devargs(&c, 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "net_vhost1,iface=/run/b.sock,queues=4,client=1");
	assert_int_equal(dp_config__devargs(&c, 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "net_af_packet2,iface=eth1,qpairs=2");
	assert_int_equal(dp_config__devargs(&c, 3, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "net_tap3,iface=dp0");
	dp_config__dev_name(&c, 4, buf, sizeof(buf));
	assert_string_equal(buf, "0000:01:00.0");
	/* default pairs: 0<->1, 2<->3, 4 alone */
	assert_int_equal(dp_config__peer(&c, 0), 1);
	assert_int_equal(dp_config__peer(&c, 3), 2);
	assert_int_equal(dp_config__peer(&c, 4), -1);
}

static void test_bad_port_specs_are_refused_with_the_reason(void **state)
{
	static const char *const bad[][2] = {
		{ "vhost", "expected TYPE:TARGET" },
		{ "nic:/x", "unknown type 'nic'" },
		{ "vhost:", "no socket path" },
		{ "vhost:/a,queues=0", "queues must be 1..16" },
		{ "vhost:/a,queues=99", "queues must be 1..16" },
		{ "vhost:/a,bogus", "unknown option 'bogus'" },
		{ "tap:x,client", "unknown option 'client'" },
	};
	struct dp_config c;
	struct err e;
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dp_config__init(&c);
		memset(&e, 0, sizeof(e));
		assert_int_not_equal(dp_config__add_port(&c, bad[i][0], &e), 0);
		if (!strstr(e.msg, bad[i][1]))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i][0], e.msg, bad[i][1]);
	}
}

static void test_pairs_are_checked(void **state)
{
	struct dp_config c;
	struct err e = { 0 };

	(void)state;
	dp_config__init(&c);
	CPU_SET(0, &c.lcores);
	assert_int_equal(dp_config__add_port(&c, "vhost:/a", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "vhost:/b", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "vhost:/c", &e), 0);
	assert_int_equal(dp_config__add_pair(&c, "0:2", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_int_equal(dp_config__peer(&c, 2), 0);
	assert_int_equal(dp_config__peer(&c, 1), -1);
	assert_int_equal(dp_config__add_pair(&c, "2:1", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "already in a pair"));
	assert_int_not_equal(dp_config__add_pair(&c, "1-2", &e), 0);
	c.fwd = DP_FWD_L2SWITCH;
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "xconnect only"));
	assert_int_equal(dp_config__add_port(&c, "vhost:/a", &e), 0);   /* same socket twice */
	c.nr_pairs = 0;
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "both use vhost /a"));
}

static bool argv_has(int argc, char **argv, const char *a, const char *b)
{
	int i;

	for (i = 0; i + (b ? 1 : 0) < argc; i++)
		if (!strcmp(argv[i], a) && (!b || !strcmp(argv[i + 1], b)))
			return true;
	return false;
}

static void test_manual_no_huge_eal_arguments(void **state)
{
	struct dp_config c;
	struct err e = { 0 };
	char **argv;
	int argc;

	(void)state;
	dp_config__init(&c);
	CPU_SET(1, &c.lcores);
	c.no_huge = true;
	snprintf(c.extra_eal, sizeof(c.extra_eal), "--log-level=8  --foo");
	assert_int_equal(dp_config__add_port(&c, "vhost:/a", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_int_equal(dp_config__eal_argv(&c, &argc, &argv, &e), 0);
	assert_true(argv_has(argc, argv, "-l", "1"));
	assert_true(argv_has(argc, argv, "--main-lcore", "1"));
	assert_true(argv_has(argc, argv, "--no-huge", NULL));
	assert_true(argv_has(argc, argv, "-m", NULL));
	assert_true(argv_has(argc, argv, "--no-pci", NULL));
	assert_true(argv_has(argc, argv, "--file-prefix", DP_DEFAULT_FILE_PREFIX));
	assert_string_equal(argv[argc - 2], "--log-level=8");
	assert_string_equal(argv[argc - 1], "--foo");
	assert_null(argv[argc]);
	assert_true(dp_config__mem_mb(&c) >= 128 && dp_config__mem_mb(&c) % 2 == 0);
	dp_config__free_argv(argc, argv);
	free(argv);
}

static void test_telco_plan_gives_ports_per_nic_and_eal_from_the_dataplane_section(void **state)
{
	struct dp_config c;
	struct err e = { 0 };
	char **argv;
	int argc, rc;

	(void)state;
	dp_config__init(&c);
	assert_int_equal(dp_config__add_port(&c, "pci:0000:3b:00.0,name=uplink", &e), 0);
	rc = dp_config__load_plan(&c, RTVMM_SOURCE_ROOT "/examples/telco-host.yaml", &e);
	if (rc)
		fail_msg("%s", e.msg);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_int_equal(c.fwd, DP_FWD_L2SWITCH);
	assert_int_equal(c.nr_ports, 5);
	assert_string_equal(c.ports[0].name, "vnf1.net0");
	assert_string_equal(c.ports[0].target, "/run/rtvmm/vnf1-net0.sock");
	assert_int_equal(c.ports[0].queues, 2);
	assert_false(c.ports[0].client);          /* NIC mode client: the dataplane listens */
	assert_true(c.ports[0].mac_set);
	assert_string_equal(c.ports[3].name, "vnf2.net1");
	assert_int_equal(c.ports[3].queues, 1);
	assert_string_equal(c.ports[4].name, "uplink"); /* --port after the plan's NICs */
	assert_int_equal(dp_config__eal_argv(&c, &argc, &argv, &e), 0);
	assert_true(argv_has(argc, argv, "-l", "0-2"));
	assert_true(argv_has(argc, argv, "--main-lcore", "0"));
	assert_true(argv_has(argc, argv, "--socket-mem", NULL));
	assert_false(argv_has(argc, argv, "--no-huge", NULL));
	assert_false(argv_has(argc, argv, "--no-pci", NULL));   /* a pci port */
	assert_true(argv_has(argc, argv, "--log-level=5", NULL));
	dp_config__free_argv(argc, argv);
	free(argv);
}

static void test_command_line_wins_over_the_plan(void **state)
{
	struct dp_config c;
	struct err e = { 0 };

	(void)state;
	dp_config__init(&c);
	CPU_SET(5, &c.lcores);
	c.main_lcore = 4;
	c.no_huge = true;
	c.fwd = DP_FWD_XCONNECT;
	c.set = DP_SET_LCORES | DP_SET_MAIN | DP_SET_NO_HUGE | DP_SET_FWD;
	assert_int_equal(dp_config__load_plan(&c, RTVMM_SOURCE_ROOT "/examples/telco-host.yaml", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_int_equal(dp_config__nr_lcores(&c), 1);
	assert_true(CPU_ISSET(5, &c.lcores));
	assert_int_equal(dp_config__main_lcore(&c), 4);
	assert_true(c.no_huge);
	assert_int_equal(c.fwd, DP_FWD_XCONNECT);
	assert_int_equal(dp_config__peer(&c, 2), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_l2_learns_a_mac_on_its_port),
		cmocka_unit_test(test_l2_mac_seen_on_another_port_moves),
		cmocka_unit_test(test_l2_ages_out_macs_not_seen_for_the_aging_time),
		cmocka_unit_test(test_l2_flushing_a_port_forgets_only_its_macs),
		cmocka_unit_test(test_l2_full_bucket_replaces_its_oldest_entry),
		cmocka_unit_test(test_port_specs_parse_with_options),
		cmocka_unit_test(test_bad_port_specs_are_refused_with_the_reason),
		cmocka_unit_test(test_pairs_are_checked),
		cmocka_unit_test(test_manual_no_huge_eal_arguments),
		cmocka_unit_test(test_telco_plan_gives_ports_per_nic_and_eal_from_the_dataplane_section),
		cmocka_unit_test(test_command_line_wins_over_the_plan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
