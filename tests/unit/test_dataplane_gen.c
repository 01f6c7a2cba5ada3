/*
 * The traffic generator's pure parts (dataplane/gen.c), without DPDK: frame size mixes, token
 * bucket pacing, the latency histogram, the RFC 2544 search; and the configuration it adds
 * (virtio_user ports, a port looped back to itself).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/config.h"
#include "dataplane/gen.h"

#define HZ 2000000000ull   /* a 2 GHz TSC */

static void test_flow_macs_are_distinct_unicast_per_port_and_flow(void **state)
{
	static uint8_t seen[1 << 16 >> 3];
	uint8_t m[6], other[6];
	uint32_t k;

	(void)state;
	for (k = 0; k < 1u << 16; k++) {
		gen_mac__flow(m, 3, k);
		assert_int_equal(m[0] & 3, 2);            /* locally administered, unicast */
		assert_int_equal(m[2], 3);                /* the port */
		assert_int_equal(seen[(m[4] << 8 | m[5]) >> 3] & (1 << (m[5] & 7)), 0);
		seen[(m[4] << 8 | m[5]) >> 3] |= (uint8_t)(1 << (m[5] & 7));
		gen_mac__flow(other, 2, k);
		assert_memory_not_equal(m, other, 6);     /* another port, another MAC */
	}
	gen_mac__flow(m, 0, 0x123456);
	assert_memory_equal(m, ((uint8_t[]){ 0x02, 0, 0, 0x12, 0x34, 0x56 }), 6);
}

static void test_imix_is_7_4_1_of_64_570_1518_interleaved(void **state)
{
	struct gen_size s;
	struct err e;
	unsigned n64 = 0, n570 = 0, n1518 = 0, i, run = 0, longest = 0;

	(void)state;
	assert_int_equal(gen_size__parse("imix", &s, &e), 0);
	assert_string_equal(s.label, "imix");
	assert_int_equal(s.n, 12);
	for (i = 0; i < 120; i++) {
		unsigned sz = gen_size__at(&s, i);

		n64 += sz == 64;
		n570 += sz == 570;
		n1518 += sz == 1518;
		run = sz == 64 ? run + 1 : 0;
		longest = run > longest ? run : longest;
	}
	assert_int_equal(n64, 70);
	assert_int_equal(n570, 40);
	assert_int_equal(n1518, 10);
	assert_true(longest <= 2);             /* interleaved, not 7 small frames in a row */
	assert_true(fabs(s.avg - 4246.0 / 12) < 1e-9);
}

static void test_frame_sizes_are_64_to_1518_with_fcs(void **state)
{
	struct gen_size s;
	struct err e;

	(void)state;
	assert_int_equal(gen_size__parse("64", &s, &e), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(gen_size__at(&s, 7), 64);
	assert_int_equal(gen_size__parse("1518", &s, &e), 0);
	assert_true(s.avg == 1518);
	assert_int_equal(gen_size__parse("63", &s, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "64..1518"));
	assert_int_equal(gen_size__parse("1519", &s, &e), -EINVAL);
	assert_int_equal(gen_size__parse("64x", &s, &e), -EINVAL);
	assert_int_equal(gen_size__parse("-64", &s, &e), -EINVAL);
}

static void test_bucket_grants_frames_at_the_rate(void **state)
{
	struct gen_bucket b;
	uint64_t t, total = 0;

	(void)state;
	gen_bucket__init(&b, 1000, 1e6, HZ, 64);       /* 1 Mpps: a frame every 2000 cycles */
	assert_int_equal(gen_bucket__take(&b, 1000, 32), 0);
	assert_int_equal(gen_bucket__take(&b, 1000 + 1999, 32), 0);
	assert_int_equal(gen_bucket__take(&b, 1000 + 2001, 32), 1);
	assert_int_equal(gen_bucket__take(&b, 1000 + 2001, 32), 0);
	/* polled every 500 cycles for one second: 1e6 frames (to a rounding), one at a time */
	gen_bucket__init(&b, 0, 1e6, HZ, 64);
	for (t = 500; t <= HZ + 1; t += 500) {
		unsigned n = gen_bucket__take(&b, t, 32);

		assert_true(n <= 1);
		total += n;
	}
	assert_true(total >= 999999 && total <= 1000000);
	assert_int_equal(b.forfeited, 0);
}

static void test_bucket_forfeits_credit_a_late_sender_cannot_catch_up(void **state)
{
	struct gen_bucket b;

	(void)state;
	gen_bucket__init(&b, 0, 1e6, HZ, 64);
	/* 1 ms late: 1000 frames due; 64 may still go (in bursts of 32), 936 are forfeited */
	assert_int_equal(gen_bucket__take(&b, 2000001, 32), 32);
	assert_int_equal(b.forfeited, 936);
	assert_int_equal(gen_bucket__take(&b, 2000001, 32), 32);
	assert_int_equal(gen_bucket__take(&b, 2000001, 32), 0);
	/* and then the rate goes on from there */
	assert_int_equal(gen_bucket__take(&b, 2000001 + 4000, 32), 2);
}

static void test_histogram_percentiles_min_max_and_overflow(void **state)
{
	struct gen_hist h;
	struct gen_hist_stats s;
	double cyc_us = HZ / 1e6;
	unsigned i;

	(void)state;
	assert_int_equal(gen_hist__init(&h, 1000, HZ), 0);
	gen_hist__stats(&h, &s);
	assert_int_equal(s.count, 0);
	for (i = 0; i < 990; i++)
		gen_hist__add(&h, (uint64_t)(10.5 * cyc_us));     /* 990 x 10.5 us */
	for (i = 0; i < 9; i++)
		gen_hist__add(&h, (uint64_t)(500.2 * cyc_us));    /* 9 x 500.2 us */
	gen_hist__add(&h, (uint64_t)(5000 * cyc_us));          /* 1 beyond the range */
	gen_hist__stats(&h, &s);
	assert_int_equal(s.count, 1000);
	assert_int_equal(s.overflow, 1);
	assert_true(fabs(s.min - 10.5) < 0.01);
	assert_true(fabs(s.max - 5000) < 0.01);
	assert_true(fabs(s.avg - (990 * 10.5 + 9 * 500.2 + 5000) / 1000) < 0.01);
	assert_true(s.p50 == 10);
	assert_true(s.p99 == 10);           /* rank 990 */
	assert_true(s.p99_9 == 500);        /* rank 999 */
	gen_hist__add(&h, (uint64_t)(6000 * cyc_us));
	gen_hist__stats(&h, &s);
	assert_true(s.p99_9 == 1000);       /* in the overflow: the range's end */
	gen_hist__reset(&h);
	gen_hist__stats(&h, &s);
	assert_int_equal(s.count, 0);
	gen_hist__free(&h);
}

/* A device that loses nothing up to `capacity` pps and the excess above it. */
static double dut_loss(double capacity, double rate)
{
	return rate <= capacity ? 0 : 100.0 * (rate - capacity) / rate;
}

static void test_search_converges_on_the_zero_loss_rate(void **state)
{
	struct gen_search s;
	double rate, first = -1;
	unsigned trials = 0;

	(void)state;
	gen_search__init(&s, 10e6, 0, 1, 20);
	while (gen_search__next(&s, &rate)) {
		if (first < 0)
			first = rate;
		gen_search__update(&s, rate, dut_loss(3.3e6, rate));
		trials++;
	}
	assert_true(first == 10e6);                  /* RFC 2544: start at the top */
	assert_true(gen_search__result(&s) <= 3.3e6);
	assert_true(gen_search__result(&s) >= 3.3e6 - 0.01 * 10e6);
	assert_true(trials <= 9);                    /* 1 + ceil(log2(100)) */
	assert_true(s.lo_loss == 0);
}

static void test_search_stops_after_its_iterations(void **state)
{
	struct gen_search s;
	double rate;
	unsigned trials = 0;

	(void)state;
	gen_search__init(&s, 10e6, 0, 0.001, 4);
	while (gen_search__next(&s, &rate)) {
		gen_search__update(&s, rate, dut_loss(3.3e6, rate));
		trials++;
	}
	assert_int_equal(trials, 4);                 /* 10, 5, 2.5, 3.75 Mpps */
	assert_true(gen_search__result(&s) == 2.5e6);
	assert_true(s.hi == 3.75e6);
}

static void test_search_ends_at_once_when_the_top_passes(void **state)
{
	struct gen_search s;
	double rate;

	(void)state;
	gen_search__init(&s, 1e6, 0, 1, 10);
	assert_true(gen_search__next(&s, &rate));
	assert_true(rate == 1e6);
	gen_search__update(&s, rate, 0);
	assert_false(gen_search__next(&s, &rate));
	assert_true(gen_search__result(&s) == 1e6);
}

static void test_search_result_is_zero_when_every_trial_loses(void **state)
{
	struct gen_search s;
	double rate;

	(void)state;
	gen_search__init(&s, 1e6, 0, 1, 30);
	while (gen_search__next(&s, &rate))
		gen_search__update(&s, rate, 100);
	assert_true(gen_search__result(&s) == 0);
	assert_true(s.lo_loss < 0);
}

static void test_pdr_search_goes_on_from_the_ndr_trials(void **state)
{
	struct gen_search ndr, pdr;
	double rate;
	unsigned pdr_trials = 0;

	(void)state;
	/* loses 0.2 % from 3 Mpps to 4 Mpps, then 5 %: NDR ~3 Mpps, PDR (0.5 %) ~4 Mpps */
	gen_search__init(&ndr, 10e6, 0, 1, 20);
	gen_search__init(&pdr, 10e6, 0.5, 1, 20);
	while (gen_search__next(&ndr, &rate)) {
		double loss = rate <= 3e6 ? 0 : rate <= 4e6 ? 0.2 : 5;

		gen_search__update(&ndr, rate, loss);
		gen_search__update(&pdr, rate, loss);
	}
	assert_true(pdr.top_tried);
	assert_true(pdr.lo >= gen_search__result(&ndr));
	while (gen_search__next(&pdr, &rate)) {
		double loss = rate <= 3e6 ? 0 : rate <= 4e6 ? 0.2 : 5;

		gen_search__update(&pdr, rate, loss);
		pdr_trials++;
	}
	assert_true(gen_search__result(&ndr) <= 3e6 && gen_search__result(&ndr) >= 2.9e6);
	assert_true(gen_search__result(&pdr) <= 4e6 && gen_search__result(&pdr) >= 3.9e6);
	assert_true(pdr_trials < 8);                 /* it did not start from scratch */
	/* a result outside its range (a noisy trial) does not invert it */
	gen_search__update(&pdr, 1e6, 3);
	assert_true(pdr.lo <= pdr.hi);
	assert_true(gen_search__result(&pdr) >= 3.9e6);
}

static void test_config_takes_virtio_user_ports(void **state)
{
	struct dp_config c;
	struct err e;
	char buf[256];

	(void)state;
	dp_config__init(&c);
	assert_int_equal(dp_config__add_port(&c, "virtio_user:/tmp/x.sock", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "virtio_user:/tmp/y.sock,server,queues=2", &e), 0);
	assert_true(c.ports[0].client);
	assert_false(c.ports[1].client);
	assert_int_equal(dp_config__devargs(&c, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "net_virtio_user0,path=/tmp/x.sock,queues=1,queue_size=1024");
	assert_int_equal(dp_config__devargs(&c, 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "net_virtio_user1,path=/tmp/y.sock,queues=2,queue_size=1024,server=1");
	dp_config__dev_name(&c, 1, buf, sizeof(buf));
	assert_string_equal(buf, "net_virtio_user1");
	assert_int_equal(dp_config__add_port(&c, "virtio_user:/tmp/z.sock,client", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "server"));
	assert_int_equal(dp_config__add_port(&c, "vhost:/tmp/z.sock,server", &e), -EINVAL);
	assert_int_equal(dp_config__add_port(&c, "bogus:/tmp/z.sock", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "virtio_user"));
}

static void test_a_port_paired_with_itself_loops_back(void **state)
{
	struct dp_config c;
	struct err e;

	(void)state;
	dp_config__init(&c);
	CPU_SET(1, &c.lcores);
	assert_int_equal(dp_config__add_port(&c, "vhost:/tmp/l.sock", &e), 0);
	assert_int_equal(dp_config__add_port(&c, "vhost:/tmp/m.sock", &e), 0);
	assert_int_equal(dp_config__add_pair(&c, "0:0", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), 0);
	assert_int_equal(dp_config__peer(&c, 0), 0);
	assert_int_equal(dp_config__peer(&c, 1), -1);
	/* still one pair per port */
	assert_int_equal(dp_config__add_pair(&c, "0:1", &e), 0);
	assert_int_equal(dp_config__finish(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "already in a pair"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imix_is_7_4_1_of_64_570_1518_interleaved),
		cmocka_unit_test(test_frame_sizes_are_64_to_1518_with_fcs),
		cmocka_unit_test(test_bucket_grants_frames_at_the_rate),
		cmocka_unit_test(test_bucket_forfeits_credit_a_late_sender_cannot_catch_up),
		cmocka_unit_test(test_histogram_percentiles_min_max_and_overflow),
		cmocka_unit_test(test_search_converges_on_the_zero_loss_rate),
		cmocka_unit_test(test_search_stops_after_its_iterations),
		cmocka_unit_test(test_search_ends_at_once_when_the_top_passes),
		cmocka_unit_test(test_search_result_is_zero_when_every_trial_loses),
		cmocka_unit_test(test_pdr_search_goes_on_from_the_ndr_trials),
		cmocka_unit_test(test_flow_macs_are_distinct_unicast_per_port_and_flow),
		cmocka_unit_test(test_config_takes_virtio_user_ports),
		cmocka_unit_test(test_a_port_paired_with_itself_loops_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
