/*
 * The dataplane's pure parts, without DPDK: the L2 MAC table (learning, moves, aging, flush,
 * a full bucket, locked guest MACs, the keyed hash, the per-port cap) and the configuration
 * (port specs, pairs, a host plan -> EAL arguments, strings that may reach the EAL).
 */
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

#include "dataplane/config.h"
#include "dataplane/l2.h"

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 0xb };
static const uint64_t key_a[2] = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
static const uint64_t key_b[2] = { 0x1111111111111111ull, 0x2222222222222222ull };

static void test_l2_learns_a_mac_on_its_port(void **state)
{
	struct l2_table t;

	(void)state;
	assert_int_equal(l2_table__init(&t, 1024, 300, 0, key_a), 0);
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
	assert_int_equal(l2_table__init(&t, 64, 300, 0, key_a), 0);
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
	assert_int_equal(l2_table__init(&t, 64, 10, 0, key_a), 0);
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
	assert_int_equal(l2_table__init(&t, 1024, 0, 0, key_a), 0);
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
	assert_int_equal(l2_table__init(&t, 8, 300, 0, key_a), 0);     /* one bucket of 8 */
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

static void test_l2_a_locked_port_accepts_only_its_guest_mac(void **state)
{
	static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0, 0, 1 };
	struct l2_table t;

	(void)state;
	assert_int_equal(l2_table__init(&t, 64, 300, 0, key_a), 0);
	l2_table__lock_port(&t, 0, l2_mac(mac_a));
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_b), 0, 1), L2_SPOOFED);
	assert_int_equal(l2_table__learn(&t, l2_mac(mcast), 0, 1), L2_SPOOFED);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_b)), -1);
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 0, 1), L2_NEW);
	/* another port cannot take the guest's MAC over either: it is not that port's MAC... */
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_b), 1, 2), L2_NEW);
	/* ...but an unlocked port may claim it, so lock every guest port (the dataplane does) */
	l2_table__lock_port(&t, 1, l2_mac(mac_b));
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 1, 3), L2_SPOOFED);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_a)), 0);
	assert_int_equal(t.count[0], 1);
	assert_int_equal(t.count[1], 1);
	l2_table__free(&t);
}

/* Fills `out` with `n` MACs that share victim's bucket in t. */
static void colliding_macs(const struct l2_table *t, uint64_t victim, uint64_t *out, unsigned n)
{
	uint64_t m;
	unsigned k = 0;

	for (m = 0x020000000000ull; k < n; m++)
		if (m != victim && l2_bucket_of(t, m) == l2_bucket_of(t, victim))
			out[k++] = m;
}

static void test_l2_collisions_aimed_under_one_key_miss_under_another(void **state)
{
	struct l2_table a, b;
	uint64_t victim = l2_mac(mac_a), attack[L2_WAYS];
	unsigned i, same = 0;

	(void)state;
	assert_int_equal(l2_table__init(&a, 1024, 300, 0, key_a), 0);
	assert_int_equal(l2_table__init(&b, 1024, 300, 0, key_b), 0);
	colliding_macs(&a, victim, attack, L2_WAYS);
	/* under key A, 8 chosen MACs on port 1 push the victim out of its bucket... */
	assert_int_equal(l2_table__learn(&a, victim, 0, 1), L2_NEW);
	for (i = 0; i < L2_WAYS; i++)
		l2_table__learn(&a, attack[i], 1, 2);
	assert_int_equal(l2_table__lookup(&a, victim), -1);
	/* ...the same MACs under another key land elsewhere and the victim stays */
	assert_int_equal(l2_table__learn(&b, victim, 0, 1), L2_NEW);
	for (i = 0; i < L2_WAYS; i++) {
		same += l2_bucket_of(&b, attack[i]) == l2_bucket_of(&b, victim);
		l2_table__learn(&b, attack[i], 1, 2);
	}
	assert_true(same < L2_WAYS);
	assert_int_equal(l2_table__lookup(&b, victim), 0);
	l2_table__free(&a);
	l2_table__free(&b);
}

static void test_l2_a_port_holds_at_most_its_cap(void **state)
{
	struct l2_table t;
	uint8_t m[6] = { 2, 0, 0, 0, 1, 0 };
	unsigned i;

	(void)state;
	assert_int_equal(l2_table__init(&t, 1024, 10, 4, key_a), 0);
	for (i = 0; i < 4; i++) {
		m[5] = (uint8_t)i;
		assert_int_equal(l2_table__learn(&t, l2_mac(m), 1, 1 + i), L2_NEW);
	}
	m[5] = 4;                          /* the fifth: not learned, the four stay */
	assert_int_equal(l2_table__learn(&t, l2_mac(m), 1, 5), L2_CAPPED);
	assert_int_equal(l2_table__lookup(&t, l2_mac(m)), -1);
	m[5] = 0;
	assert_int_equal(l2_table__lookup(&t, l2_mac(m)), 1);
	assert_int_equal(t.count[1], 4);
	/* a MAC of another port cannot move in either; that port still learns */
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 0, 5), L2_NEW);
	assert_int_equal(l2_table__learn(&t, l2_mac(mac_a), 1, 6), L2_CAPPED);
	assert_int_equal(l2_table__lookup(&t, l2_mac(mac_a)), 0);
	/* the oldest entry ages out (seen at 1, aging 10): room for one again */
	assert_int_equal(l2_table__tick(&t, 11), 1);
	assert_int_equal(t.count[1], 3);
	m[5] = 4;
	assert_int_equal(l2_table__learn(&t, l2_mac(m), 1, 11), L2_NEW);
	assert_int_equal(l2_table__flush_port(&t, 1), 4);
	assert_int_equal(t.count[1], 0);
	assert_int_equal(t.count[0], 1);
	l2_table__free(&t);
}

static void test_strings_for_the_eal_are_limited_to_the_safe_set(void **state)
{
	struct dp_config c;
	struct err e = { 0 };

	(void)state;
	dp_config__init(&c);
	CPU_SET(1, &c.lcores);
	assert_int_equal(dp_config__add_port(&c, "vhost:/run/a.sock", &e), 0);
	snprintf(c.file_prefix, sizeof(c.file_prefix), "dp,vdev=net_tap9");
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	if (!strstr(e.msg, "--file-prefix 'dp,vdev=net_tap9': character ',' at offset 2"))
		fail_msg("message: %s", e.msg);

	dp_config__init(&c);
	CPU_SET(1, &c.lcores);
	assert_int_equal(dp_config__add_port(&c, "vhost:/run/a=b.sock", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	if (!strstr(e.msg, "--port vhost:/run/a=b.sock: character '=' at offset 6"))
		fail_msg("message: %s", e.msg);

	dp_config__init(&c);
	CPU_SET(1, &c.lcores);
	assert_int_equal(dp_config__add_port(&c, "tap:dp0", &e), 0);
	snprintf(c.ports[0].target, sizeof(c.ports[0].target), "x,iface=eth0");
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	if (!strstr(e.msg, "--port tap:x,iface=eth0: character ',' at offset 1"))
		fail_msg("message: %s", e.msg);

	dp_config__init(&c);
	CPU_SET(1, &c.lcores);
	assert_int_equal(dp_config__add_port(&c, "pci:0000:01:00.0", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_int_equal(dp_config__add_port(&c, "pci:0000:01:00.0=x", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	if (!strstr(e.msg, "not a PCI address"))
		fail_msg("message: %s", e.msg);
}

static void test_vhost_mac_option_and_user_option(void **state)
{
	static const char *const bad_mac[] = { "vhost:/a,mac=01:00:00:00:00:01",
					       "vhost:/a,mac=00:00:00:00:00:00",
					       "vhost:/a,mac=52:54:00:00:00", "vhost:/a,mac=52-54-00-00-00-01",
					       "tap:x,mac=52:54:00:00:00:01" };
	struct dp_config c;
	struct err e = { 0 };
	unsigned i;

	(void)state;
	dp_config__init(&c);
	assert_int_equal(dp_config__add_port(&c, "vhost:/a,mac=52:54:00:AB:cd:01", &e), 0);
	assert_true(c.ports[0].mac_set);
	assert_int_equal(l2_mac(c.ports[0].mac), 0x525400abcd01ull);
	for (i = 0; i < sizeof(bad_mac) / sizeof(bad_mac[0]); i++) {
		dp_config__init(&c);
		if (!dp_config__add_port(&c, bad_mac[i], &e))
			fail_msg("%s accepted", bad_mac[i]);
	}
	dp_config__init(&c);
	assert_int_equal(dp_config__set_user(&c, "nobody", &e), 0);
	assert_string_equal(c.user, "nobody");
	assert_string_equal(c.group, "");
	assert_int_equal(dp_config__set_user(&c, "daemon:nogroup", &e), 0);
	assert_string_equal(c.user, "daemon");
	assert_string_equal(c.group, "nogroup");
	assert_int_equal(dp_config__set_user(&c, ":x", &e), -EINVAL);
	assert_int_equal(dp_config__set_user(&c, "x:", &e), -EINVAL);
}

/* Writes `yaml` to a new temporary file; `path` is its mkstemp template and becomes its name. */
static void write_temp_plan(char *path, const char *yaml)
{
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_true(fputs(yaml, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void test_plan_gives_user_run_dir_and_mac_cap_unless_the_command_line_does(void **state)
{
	char path[] = "/tmp/rtvmm-dp-plan-XXXXXX";
	struct dp_config c;
	struct err e = { 0 };

	(void)state;
	write_temp_plan(path, "host:\n  user: nobody\n  run_dir: /run/x\n  dataplane:\n    cores: \"1\"\n"
			"    mac_per_port: 64\nvms:\n  - name: a\n    kernel: /dev/null\n    memory: 64M\n"
			"    vcpus: 1\n    nics:\n      - name: n0\n        socket: /run/x/a.sock\n");
	dp_config__init(&c);
	assert_int_equal(dp_config__load_plan(&c, path, &e), 0);
	assert_int_equal(c.mac_per_port, 64);
	assert_string_equal(c.user, "nobody");
	assert_string_equal(c.stats_socket, "/run/x/dataplane.sock");
	/* no mac in the plan: the port is locked to the one rtvmm gives the guest (52:54, then
	 * FNV-1a of the socket path) */
	assert_true(c.ports[0].mac_set);
	assert_int_equal(l2_mac(c.ports[0].mac), 0x52544430a56eull);
	dp_config__init(&c);
	c.mac_per_port = 0;
	c.set |= DP_SET_PER_PORT;
	assert_int_equal(dp_config__set_user(&c, "daemon", &e), 0);
	assert_int_equal(dp_config__load_plan(&c, path, &e), 0);
	assert_int_equal(c.mac_per_port, 0);
	assert_string_equal(c.user, "daemon");
	unlink(path);
}

/* --poll-sched as chrt names policies; the plan's host.dataplane.policy unless it is given. */
static void test_poll_sched_from_the_command_line_or_the_plan(void **state)
{
	char path[] = "/tmp/rtvmm-dp-plan-XXXXXX";
	struct dp_config c;
	struct err e = { 0 };

	(void)state;
	dp_config__init(&c);
	assert_int_equal(c.poll_policy, RT_POLICY_OTHER);
	assert_int_equal(dp_config__parse_sched(&c, "rr:7", &e), 0);
	assert_int_equal(c.poll_policy, RT_POLICY_RR);
	assert_int_equal(c.poll_priority, 7);
	assert_int_equal(dp_config__parse_sched(&c, "other", &e), 0);
	assert_int_equal(c.poll_policy, RT_POLICY_OTHER);
	assert_int_equal(c.poll_priority, 0);
	assert_int_equal(dp_config__parse_sched(&c, "fifo", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "policy fifo needs a priority 1..99 (fifo:PRIO)"));
	assert_int_equal(dp_config__parse_sched(&c, "fifo:100", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "priority '100' is not 1..99"));
	assert_int_equal(dp_config__parse_sched(&c, "fifo:9x", &e), -EINVAL);
	assert_int_equal(dp_config__parse_sched(&c, "other:3", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "policy other takes no priority"));
	assert_int_equal(dp_config__parse_sched(&c, "fif:3", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "expected other, fifo:PRIO or rr:PRIO"));

	write_temp_plan(path, "host:\n  dataplane:\n    cores: \"1\"\n    policy: fifo\n    priority: 20\n");
	dp_config__init(&c);
	assert_int_equal(dp_config__load_plan(&c, path, &e), 0);
	assert_int_equal(c.poll_policy, RT_POLICY_FIFO);
	assert_int_equal(c.poll_priority, 20);
	dp_config__init(&c);
	assert_int_equal(dp_config__parse_sched(&c, "rr:3", &e), 0);
	assert_int_equal(dp_config__load_plan(&c, path, &e), 0);
	assert_int_equal(c.poll_policy, RT_POLICY_RR);
	assert_int_equal(c.poll_priority, 3);
	unlink(path);
}

/* mbufs: a NIC's rings hold one per descriptor, a vhost-user port's only its bursts in flight. */
static void test_mbufs_count_descriptors_of_nics_but_not_of_vhost_ports(void **state)
{
	struct dp_config v, a;
	struct err e = { 0 };
	char spec[64];
	unsigned i;

	(void)state;
	dp_config__init(&v);
	dp_config__init(&a);
	CPU_SET(1, &v.lcores);
	CPU_SET(1, &a.lcores);
	for (i = 0; i < 32; i++) {
		snprintf(spec, sizeof(spec), "vhost:/run/p%u.sock", i);
		assert_int_equal(dp_config__add_port(&v, spec, &e), 0);
		snprintf(spec, sizeof(spec), "af_packet:eth%u", i);
		assert_int_equal(dp_config__add_port(&a, spec, &e), 0);
	}
	assert_true(dp_config__nr_mbufs(&a) >= 32 * (DP_RX_DESC + DP_TX_DESC));
	assert_true(dp_config__nr_mbufs(&v) < 16384);
	assert_true(dp_config__nr_mbufs(&v) >= 32 * 2 * DP_BURST);
	assert_true(dp_config__mem_mb(&v) < dp_config__mem_mb(&a));
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
	assert_true(c.ports[3].mac_set);
	assert_string_equal(c.stats_socket, "/run/rtvmm/dataplane.sock");
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
		cmocka_unit_test(test_l2_a_locked_port_accepts_only_its_guest_mac),
		cmocka_unit_test(test_l2_collisions_aimed_under_one_key_miss_under_another),
		cmocka_unit_test(test_l2_a_port_holds_at_most_its_cap),
		cmocka_unit_test(test_strings_for_the_eal_are_limited_to_the_safe_set),
		cmocka_unit_test(test_vhost_mac_option_and_user_option),
		cmocka_unit_test(test_plan_gives_user_run_dir_and_mac_cap_unless_the_command_line_does),
		cmocka_unit_test(test_port_specs_parse_with_options),
		cmocka_unit_test(test_bad_port_specs_are_refused_with_the_reason),
		cmocka_unit_test(test_pairs_are_checked),
		cmocka_unit_test(test_manual_no_huge_eal_arguments),
		cmocka_unit_test(test_telco_plan_gives_ports_per_nic_and_eal_from_the_dataplane_section),
		cmocka_unit_test(test_command_line_wins_over_the_plan),
		cmocka_unit_test(test_poll_sched_from_the_command_line_or_the_plan),
		cmocka_unit_test(test_mbufs_count_descriptors_of_nics_but_not_of_vhost_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
