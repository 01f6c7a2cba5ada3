/*
 * test=net: the virtio-net driver (virtio_net.c) against a real vhost-user
 * backend: set-up at CPL0, then the data path (test_net_user.c) at CPL3 by
 * default, at CPL0 with net_cpl=0. Exit 0 with "net ok", else ST_NET.
 *
 * Command line:
 *   net=ping            (default) probe the peer until it answers, then send `count` frames one at
 *                       a time, each waiting for its reply: the peer must send it back with the
 *                       MACs swapped (net=echo here, testpmd --forward-mode=macswap)
 *   net=echo            reflect every frame addressed to us, MACs swapped, until `count` were
 *                       echoed or nothing came for idle_ms (after the first frame)
 *   peer=MAC            ping: the destination (required)
 *   count=N             ping: frames in the counted run (default 100); echo: stop after N (0: no limit)
 *   min=N               frames for "net ok": ping replies (default count), echoes (default 1)
 *   len=N               ping: frame length without FCS, 60..2036 (default 64)
 *   timeout_ms=N        ping: per reply, and how long tx may stay full (default 1000)
 *   interval_us=N       ping: at least N us from one send to the next (default 0)
 *   wait_ms=N           link up, and the peer's first answer (ping) or first frame (echo) (default 20000)
 *   probe_ms=N          ping: between probes (default 100)
 *   idle_ms=N           echo: stop after N ms without a frame (default 2000; 0: never)
 *   limit_ms=N          the whole data-path run (default 60000)
 *   qsize=N             ring entries (power of two <= 256, default 256, less if the device has less)
 *   kick=auto|always    notify only when the device asks (default) or after every batch
 *   net_cpl=3|0         where the data path runs (default 3)
 *   expect_mac=MAC      fail unless the device's MAC is this
 *   nic=N               the Nth virtio-net function on bus 0 (default 0)
 *   rounds=N            all of it N times, the device reset and set up again in between (default 1)
 */
#include "test_net.h"

static USER_BSS struct net_run net_run;

static uint64_t opt(const char *key, uint64_t def)
{
	return boot_info__cmdline_u64(key, def, 111);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "52:54:00:00:00:01" -> 6 bytes; false if malformed. */
static bool parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		int h = hexval(s[0]), l = hexval(s[1]);
		if (h < 0 || l < 0 || s[2] != (i == 5 ? '\0' : ':'))
			return false;
		mac[i] = (uint8_t)(h << 4 | l);
		s += 3;
	}
	return true;
}

static const char *fmt_mac(const uint8_t m[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

static const char *status_name(uint32_t st)
{
	switch (st) {
	case NET_DONE: return "done";
	case NET_DEVICE: return "device error";
	case NET_NO_PEER: return "no peer";
	case NET_TX_STUCK: return "tx ring stuck";
	case NET_LIMIT: return "time limit";
	default: return "?";
	}
}

static uint64_t tsc_us(uint64_t t) { return time__tsc_to_us(t); }

static void report_device(const struct vnet *n)
{
	console__log("net: virtio-net %02x:%02x.%u (%04x:%04x), BAR%u 0x%lx (%lu KiB), notify BAR%u +0x%lx x%u",
		     n->pci.bus, n->pci.dev, n->pci.fn, VNET_VENDOR_ID, VNET_DEVICE_ID, n->common_bar,
		     n->bar_addr[n->common_bar], n->bar_size[n->common_bar] >> 10, n->notify_bar,
		     n->notify_base - n->bar_addr[n->notify_bar], n->notify_mult);
	console__log("net: features offered 0x%lx, negotiated 0x%lx (VERSION_1%s%s)", n->features_offered,
		     n->features, n->features & (1ull << VNET_F_MAC) ? " MAC" : "",
		     n->features & (1ull << VNET_F_STATUS) ? " STATUS" : "");
	console__log("net: queues rx %u tx %u (device max %u/%u, %u queues), rings at 0x%lx 0x%lx",
		     n->rx.size, n->tx.size, n->qmax_rx, n->qmax_tx, n->num_queues,
		     (uint64_t)(uintptr_t)n->rx.ring, (uint64_t)(uintptr_t)n->tx.ring);
}

/* The parsed command line. */
struct net_cfg {
	struct vnet_options vo;
	bool ping;
	uint8_t peer[6];
	uint32_t count, min, len;
	uint64_t wait_ms, cpl;
	bool expect_mac;
	uint8_t want_mac[6];
};

static void parse_cfg(struct net_cfg *c)
{
	char buf[32];

	const char *role = boot_info__cmdline_get("net", buf, sizeof(buf)) ? buf : "ping";
	c->ping = !strncmp(role, "ping", 5) || !role[0];
	if (!c->ping && strncmp(role, "echo", 5))
		rt__fail(111, "cmdline: net=%s: ping or echo", role);
	if (c->ping && (!boot_info__cmdline_get("peer", buf, sizeof(buf)) || !parse_mac(buf, c->peer)))
		rt__fail(111, "cmdline: net=ping needs peer=MAC (xx:xx:xx:xx:xx:xx)");
	c->count = (uint32_t)opt("count", c->ping ? 100 : 0);
	if (c->count >= NET_NO_SEQ)
		rt__fail(111, "cmdline: count=%u: below %u", c->count, NET_NO_SEQ);
	c->min = (uint32_t)opt("min", c->ping ? c->count : 1);
	c->len = (uint32_t)opt("len", 64);
	if (c->len < 60 || c->len > VNET_FRAME_MAX)
		rt__fail(111, "cmdline: len=%u: 60..%u", c->len, VNET_FRAME_MAX);
	c->wait_ms = opt("wait_ms", 20000);
	uint64_t qsize = opt("qsize", VNET_QSIZE_MAX);
	if (!qsize || qsize > VNET_QSIZE_MAX || (qsize & (qsize - 1)))
		rt__fail(111, "cmdline: qsize=%lu: a power of two <= %u", qsize, VNET_QSIZE_MAX);
	c->vo.qsize = (uint16_t)qsize;
	c->vo.nth = (unsigned)opt("nic", 0);
	if (boot_info__cmdline_get("kick", buf, sizeof(buf))) {
		c->vo.kick_always = !strncmp(buf, "always", 7);
		if (!c->vo.kick_always && strncmp(buf, "auto", 5))
			rt__fail(111, "cmdline: kick=%s: auto or always", buf);
	}
	c->cpl = opt("net_cpl", 3);
	if (c->cpl != 0 && c->cpl != 3)
		rt__fail(111, "cmdline: net_cpl=%lu: 0 or 3", c->cpl);
	if (boot_info__cmdline_get("expect_mac", buf, sizeof(buf))) {
		if (!parse_mac(buf, c->want_mac))
			rt__fail(111, "cmdline: expect_mac=%s is not a MAC", buf);
		c->expect_mac = true;
	}
}

/* One round: device set-up from reset, link, the data path, results, reset. Fails the guest on error. */
static void net_round(const struct net_cfg *c)
{
	struct net_run *r = &net_run;
	char why[200], mac[18], mac2[18];

	/* Device. */
	uint64_t t0 = rdtsc();
	struct vnet *n = vnet__init(&c->vo, why, sizeof(why));
	if (!n)
		rt__fail(ST_NET, "net: %s", why);
	report_device(n);
	console__log("net: driver ok in %lu us", tsc_us(rdtsc() - t0));

	int link = vnet__link_up(n);
	uint64_t end = rdtsc() + time__us_to_tsc(c->wait_ms * 1000);
	while (link == 0 && rdtsc() < end) {
		time__delay_us(10000);
		link = vnet__link_up(n);
	}
	console__log("net: mac %s, link %s", fmt_mac(n->mac, mac),
		     link > 0 ? "up" : link == 0 ? "down" : "state unknown (no VIRTIO_NET_F_STATUS)");
	if (link == 0)
		rt__fail(ST_NET, "net: link still down after %lu ms", c->wait_ms);
	if (c->expect_mac && memcmp(c->want_mac, n->mac, 6))
		rt__fail(ST_NET, "net: the device's MAC is %s, expected %s", fmt_mac(n->mac, mac),
			 fmt_mac(c->want_mac, mac2));

	/* The run. */
	memset(r, 0, sizeof(*r));
	r->dev = n;
	r->role = c->ping ? NET_PING : NET_ECHO;
	r->count = c->count;
	r->frame_len = c->len;
	memcpy(r->peer, c->peer, 6);
	r->reply_tsc = time__us_to_tsc(opt("timeout_ms", 1000) * 1000);
	r->wait_tsc = time__us_to_tsc(c->wait_ms * 1000);
	r->probe_tsc = time__us_to_tsc(opt("probe_ms", 100) * 1000);
	r->idle_tsc = time__us_to_tsc(opt("idle_ms", 2000) * 1000);
	r->limit_tsc = time__us_to_tsc(opt("limit_ms", 60000) * 1000);
	r->interval_tsc = time__us_to_tsc(opt("interval_us", 0));

	const char *role = c->ping ? "ping" : "echo";
	if (c->cpl == 3) {
		/* The user region (rings, buffers, struct vnet, this run) is U=1; the notify page too. */
		user__init();
		user__map(n->rx.notify, 2);
		user__map(n->tx.notify, 2);
		console__log("net: %s at cpl3 (user__call; rings and notify page user-mapped)", role);
	} else {
		console__log("net: %s at cpl0 (emulated here: slow)", role);
	}
	if (!c->ping)
		console__log("net: echo ready");
	uint32_t st = c->cpl == 3 ? (uint32_t)user__call(net_user_entry, (uintptr_t)r, 0, 0) : net_user_run(r);

	/* Results. */
	if (st == NET_DEVICE)
		rt__fail(ST_NET, "net: device error on queue %u: %s (%lu, %lu)", n->error_queue,
			 vnet__error_name(n->error), n->error_a, n->error_b);
	if (c->ping) {
		if (st == NET_NO_PEER)
			rt__fail(ST_NET, "net: peer %s did not answer %u probes in %lu ms (ignored %u frames)",
				 fmt_mac(r->peer, mac), r->probes, c->wait_ms, r->ignored);
		console__log("net: peer %s answered after %u probe(s), %lu ms", fmt_mac(r->peer, mac), r->probes,
			     tsc_us(r->peer_tsc) / 1000);
		uint64_t avg = r->received ? tsc_us(r->rtt_sum / r->received) : 0;
		console__log("net: sent %u received %u (min/avg/max rtt %lu/%lu/%lu us)", r->sent, r->received,
			     r->received ? tsc_us(r->rtt_min) : 0, avg, tsc_us(r->rtt_max));
		console__log("net: lost %u late %u corrupt %u ignored %u; %lu us for the run",
			     r->lost, r->late, r->corrupt, r->ignored, tsc_us(r->run_tsc));
	} else {
		if (st == NET_NO_PEER)
			rt__fail(ST_NET, "net: echo: no frame in %lu ms", c->wait_ms);
		console__log("net: echoed %u frames (received %u, ignored %u, dropped %u) in %lu ms",
			     r->sent, r->received, r->ignored, r->dropped, tsc_us(r->run_tsc) / 1000);
	}
	console__log("net: kicks tx %lu rx %lu (suppressed by the device: tx %lu rx %lu)", n->tx.kicks,
		     n->rx.kicks, n->tx.kicks_suppressed, n->rx.kicks_suppressed);
	vnet__reset(n);
	if (st != NET_DONE)
		rt__fail(ST_NET, "net: %s", status_name(st));
	if (r->corrupt)
		rt__fail(ST_NET, "net: %u frames came back damaged", r->corrupt);
	if ((c->ping ? r->received : r->sent) < c->min)
		rt__fail(ST_NET, "net: %u %s, wanted at least %u", c->ping ? r->received : r->sent,
			 c->ping ? "replies" : "frames echoed", c->min);
}

void check_net(void)
{
	static struct net_cfg cfg;

	parse_cfg(&cfg);
	uint64_t rounds = opt("rounds", 1);
	for (uint64_t i = 1; i <= rounds; i++) {
		if (rounds > 1)
			console__log("net: round %lu of %lu (the device is reset and set up again)", i, rounds);
		net_round(&cfg);
	}
	console__log("net ok");
}
