/*
 * Interop: rtvmm's virtio-net device (vhost-user frontend) against DPDK
 * testpmd's net_vhost backend, forwarding in macswap mode.
 *
 * This program plays the guest: it creates guest RAM (a memfd), lays split
 * virtqueues out in it, drives the device through its virtio_dev_ops as the
 * transport would (features, activate with eventfds for kick and call), puts
 * UDP frames on a TX queue and expects them back, MACs swapped, on the RX
 * queue of the same pair. No KVM: the kick fd is an eventfd this program
 * writes, the call fd one it polls.
 *
 *   A. client mode (rtvmm connects), 1 pair: 64 frames round trip, a 1 s
 *      rate measurement, then testpmd is killed (SIGKILL): the link goes down
 *      with a config-change notification; testpmd restarts; the device
 *      reconnects, re-establishes the rings from the used index, the link
 *      comes up and 64 more frames make the round trip.
 *   B. server mode (testpmd connects, client=1), 2 pairs: the guest enables
 *      both pairs through the control queue (MQ_VQ_PAIRS_SET), frames sent on
 *      each TX queue come back on the RX queue of the same pair; testpmd is
 *      killed and started again and pair 1 carries traffic again.
 *   C. a live migration's dirty log, 1 pair, RAM on both sides of the PCI
 *      hole with the RX buffers above 4 GiB: logging starts on the running
 *      rings (SET_LOG_BASE, SET_FEATURES with LOG_ALL, SET_VRING_ADDR with
 *      LOG) and DPDK accepts it; the frames it forwards into the guest mark
 *      their RX buffers' pages and both used rings in the log (by gpa: the
 *      harvest finds them by memfd offset), never the TX buffers it only
 *      read; logging stops and traffic goes on.
 *
 * Usage: vhost_user_testpmd [PATH-TO-dpdk-testpmd]. Exits 77 (skip) only when
 * dpdk-testpmd is not installed.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/net.h"
#include "vmm/virtio/virtio.h"
#include "vring_rig.h"

#define BIT(n) (1ull << (n))
#define RAM_SIZE (64ull << 20)
#define QSIZE    256
#define BUF_SIZE 2048
#define HDR_LEN  12       /* virtio_net_hdr_mrg_rxbuf (VERSION_1) */
#define FRAME_LEN 60      /* 64 B on the wire with the FCS */

static const char *testpmd_bin;
static char run_dir_prefix[64];

/* ------------------------------------------------------------------ testpmd */

/*
 * One more testpmd option for the next start, NULL: none. "--no-mlockall" for
 * a guest with GiBs of (sparse) RAM: testpmd locks its memory (MCL_FUTURE), and
 * rte_vhost's mmap of each region would then fault all of it in, GiBs of the
 * guest's memfd, longer than any reply timeout.
 */
static const char *testpmd_opt;

/* Starts testpmd on `sock`, running until a newline (or EOF) arrives on t->stdin_wr. */
static int testpmd_start(struct rig_proc *t, const char *sock, unsigned queues, bool client,
			 unsigned run)
{
	char vdev[256], rxq[32], txq[32], prefix[96];
	char *argv[] = {
		"/usr/bin/stdbuf", "-oL", /* line-buffered log, readable after a kill */
		(char *)testpmd_bin, "-l", "0-1", "--no-huge", "--no-pci", "-m", "128",
		prefix, "--log-level=lib.eal:warning", "--vdev", vdev, "--",
		"--forward-mode=macswap", "--port-topology=loop", "--nb-cores=1", rxq, txq,
		"--total-num-mbufs=8192", "--no-flush-rx", (char *)testpmd_opt, NULL,
	};

	snprintf(vdev, sizeof(vdev), "net_vhost0,iface=%s,queues=%u%s", sock, queues,
		 client ? ",client=1" : "");
	snprintf(rxq, sizeof(rxq), "--rxq=%u", queues);
	snprintf(txq, sizeof(txq), "--txq=%u", queues);
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", run_dir_prefix);
	return rig_spawn(t, access(argv[0], X_OK) == 0 ? argv : argv + 2, NULL, RIG_SPAWN_STDIN,
			 "/tmp/%s-testpmd-%u.log", run_dir_prefix, run);
}

/* Enter: testpmd stops, prints its statistics and exits. Returns the RX-packets it counted, or -1. */
static long testpmd_stop(struct rig_proc *t)
{
	char line[512];
	long rx = -1, v;
	FILE *f;

	if (t->pid <= 0)
		return -1;
	if (write(t->stdin_wr, "\n", 1) < 0) {
		/* already gone */
	}
	rig_wait_exit(t, 10);
	f = fopen(t->log, "r");
	while (f && fgets(line, sizeof(line), f)) {
		/* The accumulated block comes last: keep the last RX-packets figure. */
		char *s = strstr(line, "RX-packets:");

		if (s && sscanf(s, "RX-packets: %ld", &v) == 1)
			rx = v;
	}
	if (f)
		fclose(f);
	return rx;
}

/*
 * How long testpmd may take to create its vhost-user socket: 1-2 s on an idle host, tens of
 * seconds in the KVM box (QEMU TCG) when the machine is loaded. Waiting longer costs nothing
 * when it starts sooner.
 */
#define TESTPMD_START_S 90

/* ------------------------------------------------------------------ the "guest" */

struct guest {
	struct guest_mem mem;
	struct virtio_dev *dev;
	struct virtio_queue vq[VIRTIO_MAX_QUEUES];
	struct rig_queue q[VIRTIO_MAX_QUEUES];
	unsigned nr_queues;
	uint8_t mac[6];
	unsigned config_irqs;
};

static unsigned config_changes(struct guest *g)
{
	return rig_config_irqs__read(&g->config_irqs);
}

static uint16_t link_status(struct guest *g)
{
	struct virtio_net_config cfg;

	g->dev->ops->config_read(g->dev, 0, &cfg, sizeof(cfg));
	return cfg.status & VIRTIO_NET_S_LINK_UP;
}

/* Waits for a config-change notification (after `since` of them) after which the link reads `up`. */
static int wait_link(struct guest *g, unsigned since, bool up, double timeout)
{
	double end = rig_now_s() + timeout;

	while (rig_now_s() < end) {
		if (config_changes(g) > since && !!link_status(g) == up)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* Queue i: rings at 1 MiB + i * 64 KiB, QSIZE buffers of BUF_SIZE at 16 MiB + i MiB. */
static int drv_init(struct guest *g, unsigned i)
{
	return rig_queue__init(&g->q[i], &g->mem, i, QSIZE, 0x100000 + i * 0x10000ull,
			       0x1000000 + i * 0x100000ull, BUF_SIZE, &g->vq[i]);
}

static uint16_t used_idx(const struct rig_queue *q)
{
	return rig_queue__used_idx(q);
}

static void drv_kick(struct guest *g, struct rig_queue *q)
{
	rig_queue__kick(q, g->vq[q->index].kick_fd);
}

static void drv_post_rx(struct rig_queue *q, uint16_t id)
{
	q->desc[id] = (struct rig_desc){ q->buf_gpa + (uint64_t)id * BUF_SIZE, BUF_SIZE,
				      RIG_DESC_F_WRITE, 0 };
	rig_queue__publish(q, id);
}

static void drv_fill_rx(struct rig_queue *q)
{
	while (q->nr_free)
		drv_post_rx(q, q->free_ids[--q->nr_free]);
}

/* A 60-byte IPv4/UDP frame from `src` to 02:00:00:00:00:02 carrying (queue, seq). */
static void make_frame(uint8_t *f, const uint8_t *src, unsigned queue, uint32_t seq)
{
	static const uint8_t dst[6] = { 0x02, 0, 0, 0, 0, 0x02 };
	uint8_t ip[20] = { 0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2 };
	uint32_t sum = 0;
	unsigned k;

	memset(f, 0, FRAME_LEN);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	for (k = 0; k < 20; k += 2)
		sum += (uint32_t)(ip[k] << 8 | ip[k + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = (uint8_t)(~sum >> 8);
	ip[11] = (uint8_t)~sum;
	memcpy(f + 14, ip, 20);
	f[34] = 0x30; f[35] = 0x39;       /* UDP 12345 -> 9 */
	f[36] = 0x00; f[37] = 0x09;
	f[38] = 0; f[39] = 26;            /* UDP length */
	memcpy(f + 42, "rtvmm", 5);
	f[47] = (uint8_t)queue;
	memcpy(f + 48, &seq, 4);
}

/* Returns reclaimed count. */
static unsigned drv_reclaim_tx(struct rig_queue *q)
{
	uint16_t end = used_idx(q);
	unsigned n = 0;

	while (q->last_used != end) {
		uint32_t id;

		memcpy(&id, q->used + 4 + 8 * (q->last_used % QSIZE), 4);
		if (id < QSIZE)
			q->free_ids[q->nr_free++] = (uint16_t)id;
		q->last_used++;
		n++;
	}
	return n;
}

static bool drv_send(struct rig_queue *q, const uint8_t *src, uint32_t seq, unsigned queue)
{
	uint16_t id;
	uint8_t *b;

	if (!q->nr_free)
		return false;
	id = q->free_ids[--q->nr_free];
	b = q->buf + (size_t)id * BUF_SIZE;
	memset(b, 0, HDR_LEN);
	make_frame(b + HDR_LEN, src, queue, seq);
	q->desc[id] = (struct rig_desc){ q->buf_gpa + (uint64_t)id * BUF_SIZE, HDR_LEN + FRAME_LEN, 0, 0 };
	rig_queue__publish(q, id);
	return true;
}

struct rx_check {
	const uint8_t *mac;
	unsigned queue;
	uint64_t got, bad;
	uint8_t seen[4096];      /* seq bitmap for the functional checks */
	uint8_t ids[QSIZE / 8];  /* the RX buffers that received a frame */
};

/* Takes what the backend delivered, checks it, gives the buffers back. */
static unsigned drv_poll_rx(struct rig_queue *q, struct rx_check *c)
{
	static const uint8_t peer[6] = { 0x02, 0, 0, 0, 0, 0x02 };
	uint16_t end = used_idx(q);
	unsigned n = 0;

	while (q->last_used != end) {
		uint32_t e[2];
		const uint8_t *b, *f;
		uint16_t nbufs;
		uint32_t seq;

		memcpy(e, q->used + 4 + 8 * (q->last_used % QSIZE), 8);
		q->last_used++;
		n++;
		if (e[0] >= QSIZE) {
			c->bad++;
			continue;
		}
		c->ids[e[0] / 8] |= (uint8_t)(1u << (e[0] % 8));
		b = q->buf + (size_t)e[0] * BUF_SIZE;
		f = b + HDR_LEN;
		memcpy(&nbufs, b + 10, 2);
		memcpy(&seq, f + 48, 4);
		/* macswap: the frame comes back from the peer's address to ours. */
		if (e[1] != HDR_LEN + FRAME_LEN || nbufs != 1 || memcmp(f, c->mac, 6) ||
		    memcmp(f + 6, peer, 6) || memcmp(f + 42, "rtvmm", 5) || f[47] != c->queue) {
			c->bad++;
		} else {
			c->got++;
			if (seq < sizeof(c->seen) * 8)
				c->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
		}
		drv_post_rx(q, (uint16_t)e[0]);
	}
	return n;
}

static bool seen_all(const struct rx_check *c, uint32_t from, uint32_t n)
{
	uint32_t s;

	for (s = from; s < from + n; s++)
		if (!(c->seen[s / 8] & (1u << (s % 8))))
			return false;
	return true;
}

/* Sends `n` frames (seq from `seq0`) on pair `pair` and waits until all came back. */
static int round_trip(struct guest *g, unsigned pair, uint32_t seq0, unsigned n, struct rx_check *c,
		      double timeout)
{
	struct rig_queue *tx = &g->q[2 * pair + 1], *rx = &g->q[2 * pair];
	double end = rig_now_s() + timeout;
	uint64_t calls = 0, v;
	unsigned sent = 0;

	while (sent < n) {
		drv_reclaim_tx(tx);
		if (!drv_send(tx, g->mac, seq0 + sent, pair)) {
			CHECK(rig_now_s() < end, "TX ring of pair %u stays full", pair);
			continue;
		}
		sent++;
	}
	drv_kick(g, tx);
	while (!seen_all(c, seq0, n)) {
		struct pollfd p = { .fd = g->vq[rx->index].call_fd, .events = POLLIN };

		CHECK(rig_now_s() < end, "pair %u: frames %u..%u did not all come back (%llu malformed); "
		      "tx avail %u used %u (flags %#x), rx avail %u used %u (flags %#x)", pair, seq0,
		      seq0 + n - 1, (unsigned long long)c->bad, tx->avail_idx, used_idx(tx),
		      *(uint16_t *)tx->used, rx->avail_idx, used_idx(rx), *(uint16_t *)rx->used);
		/* The backend's call fd is what a guest interrupt would be. */
		if (poll(&p, 1, 100) == 1 && read(p.fd, &v, 8) == 8)
			calls++;
		drv_poll_rx(rx, c);
		drv_kick(g, rx);
		drv_reclaim_tx(tx);
	}
	CHECK(c->bad == 0, "%llu malformed frames", (unsigned long long)c->bad);
	printf("  pair %u: %u frames sent, %u back with MACs swapped (interrupts via call fd: %llu)\n",
	       pair, n, n, (unsigned long long)calls);
	return 0;
}

/* Sends frames as fast as the rings allow for `secs`; returns frames back per second. */
static double rate(struct guest *g, double secs, uint64_t *sent_out, uint64_t *back_out)
{
	struct rig_queue *tx = &g->q[1], *rx = &g->q[0];
	struct rx_check c = { .mac = g->mac, .queue = 0 };
	uint64_t sent = 0;
	double t0 = rig_now_s(), t;

	/* Polling: no interrupts wanted. */
	__atomic_store_n(&tx->avail[0], RIG_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
	__atomic_store_n(&rx->avail[0], RIG_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
	do {
		unsigned burst = 0;

		drv_reclaim_tx(tx);
		while (burst < 32 && drv_send(tx, g->mac, 100000, 0)) {
			burst++;
			sent++;
		}
		if (burst)
			drv_kick(g, tx);
		if (drv_poll_rx(rx, &c))
			drv_kick(g, rx);
		t = rig_now_s();
	} while (t - t0 < secs);
	/* Let the last ones come home. */
	while (rig_now_s() - t < 0.2) {
		drv_reclaim_tx(tx);
		drv_poll_rx(rx, &c);
	}
	__atomic_store_n(&tx->avail[0], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&rx->avail[0], 0, __ATOMIC_RELAXED);
	*sent_out = sent;
	*back_out = c.got;
	return c.bad ? -1 : (double)c.got / (t - t0);
}

static int guest_init_ram(struct guest *g, const char *name, const char *sock, unsigned pairs,
			  bool server, uint64_t ram)
{
	struct virtio_net_spec nic = { .queues = pairs, .server = server,
				       .mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 } };
	struct err e = { 0 };
	unsigned i;
	int err;

	memset(g, 0, sizeof(*g));
	memcpy(g->mac, nic.mac, 6);
	snprintf(nic.name, sizeof(nic.name), "%s", name);
	snprintf(nic.socket, sizeof(nic.socket), "%s", sock);
	err = guest_mem__create(&g->mem, ram);
	CHECK(!err, "guest RAM: %s", strerror(-err));
	err = virtio_net__create(&nic, &g->mem, &g->dev, &e);
	CHECK(!err, "%s", e.msg);
	rig_config_irqs__watch(g->dev, &g->config_irqs);
	g->nr_queues = g->dev->max_queues;
	for (i = 0; i < g->nr_queues; i++)
		CHECK(!drv_init(g, i), "queue %u: no room or no eventfds", i);
	return 0;
}

static int guest_init(struct guest *g, const char *name, const char *sock, unsigned pairs,
		      bool server)
{
	return guest_init_ram(g, name, sock, pairs, server, RAM_SIZE);
}

static void guest_fini(struct guest *g)
{
	unsigned i;

	if (g->dev) {
		g->dev->ops->reset(g->dev);
		virtio_net__destroy(g->dev);
	}
	for (i = 0; i < g->nr_queues; i++)
		rig_queue__close(&g->vq[i]);
	guest_mem__destroy(&g->mem);
}

static int activate(struct guest *g, uint64_t want, uint64_t *negotiated)
{
	struct virtio_activation a = { .nr_queues = g->nr_queues, .queues = g->vq, .mem = &g->mem };
	uint64_t offered = g->dev->ops->features(g->dev) | BIT(VIRTIO_F_VERSION_1);
	int err;

	CHECK(!(offered & BIT(30)), "bit 30 (vhost-user protocol features) offered to the guest");
	a.features = offered & want;
	err = g->dev->ops->activate(g->dev, &a);
	CHECK(!err, "activate: %s", strerror(-err));
	*negotiated = a.features;
	return 0;
}

/* The guest's control command, as Linux lays it out: header, data, ack. */
static int ctrl_vq_pairs_set(struct guest *g, unsigned cq, uint16_t n, uint16_t pairs)
{
	const uint64_t buf = 0x3000000;
	struct rig_queue *q = &g->q[cq];
	uint8_t cmd[4] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, (uint8_t)pairs,
			   (uint8_t)(pairs >> 8) }, ack = 0xee;
	struct pollfd p = { .fd = g->vq[cq].call_fd, .events = POLLIN };
	uint64_t v;

	guest_mem__write(&g->mem, buf, cmd, 4);
	guest_mem__write(&g->mem, buf + 64, &ack, 1);
	q->desc[0] = (struct rig_desc){ buf, 2, RIG_DESC_F_NEXT, 1 };
	q->desc[1] = (struct rig_desc){ buf + 2, 2, RIG_DESC_F_NEXT, 2 };
	q->desc[2] = (struct rig_desc){ buf + 64, 1, RIG_DESC_F_WRITE, 0 };
	rig_queue__publish(q, 0);
	v = 1;
	CHECK(write(g->vq[cq].kick_fd, &v, 8) == 8, "kick");
	CHECK(poll(&p, 1, 3000) == 1 && read(p.fd, &v, 8) == 8, "no interrupt from the control queue");
	CHECK(used_idx(q) == n + 1, "control queue used index %u", used_idx(q));
	memcpy(&ack, g->mem.base + buf + 64, 1);
	CHECK(ack == VIRTIO_NET_OK, "MQ_VQ_PAIRS_SET %u answered %u", pairs, ack);
	return 0;
}

/* ------------------------------------------------------------------ scenarios */

static int scenario_client(const char *sock)
{
	const uint64_t want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
			      BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS);
	struct rig_proc t = { 0 };
	struct rx_check c = { .queue = 0 };
	struct virtio_net_stats st;
	struct guest *g = calloc(1, sizeof(*g));
	uint64_t features, sent, back;
	double t0, pps, down_s, up_s;
	unsigned cc;
	long peer_rx;
	int rc = -1;

	printf("A. client mode, 1 queue pair, testpmd serves %s\n", sock);
	unlink(sock);
	if (testpmd_start(&t, sock, 1, false, 1) || rig_wait_socket(sock, TESTPMD_START_S)) {
		fprintf(stderr, "FAIL: testpmd did not create %s\n", sock);
		rig_failures++;
		goto out;
	}
	if (guest_init(g, "net0", sock, 1, false))
		goto out;
	c.mac = g->mac;
	if (virtio_net__wait_backend(g->dev, 10000)) {
		fprintf(stderr, "FAIL: no session with testpmd\n");
		rig_failures++;
		goto out;
	}
	virtio_net__stats(g->dev, &st);
	printf("  testpmd's vhost features %#llx, protocol features %#llx; offered to the guest %#llx\n",
	       (unsigned long long)st.session.backend_features,
	       (unsigned long long)st.session.backend_protocol,
	       (unsigned long long)g->dev->ops->features(g->dev));
	if (activate(g, want, &features))
		goto out;
	drv_fill_rx(&g->q[0]);
	drv_kick(g, &g->q[0]);
	if (round_trip(g, 0, 0, 64, &c, 10))
		goto out;

	pps = rate(g, 1.0, &sent, &back);
	if (pps < 0) {
		fprintf(stderr, "FAIL: malformed frames during the rate run\n");
		rig_failures++;
		goto out;
	}
	printf("  rate: %.0f frames/s round trip (64 B, guest TX -> testpmd macswap -> guest RX; %llu sent, %llu back, %.1f%% back)\n",
	       pps, (unsigned long long)sent, (unsigned long long)back,
	       sent ? 100.0 * (double)back / (double)sent : 0.0);

	/* The backend crashes. */
	t0 = rig_now_s();
	cc = config_changes(g);
	rig_kill(&t);
	if (wait_link(g, cc, false, 5)) {
		fprintf(stderr, "FAIL: the link did not go down after testpmd was killed\n");
		rig_failures++;
		goto out;
	}
	down_s = rig_now_s() - t0;
	printf("  testpmd killed: link down after %.3f s (configuration-change notification seen)\n",
	       down_s);
	/* Traffic queued while the backend is away waits in the rings. */
	drv_reclaim_tx(&g->q[1]);
	unlink(sock); /* DPDK does not replace a stale socket file */
	t0 = rig_now_s();
	cc = config_changes(g);
	if (testpmd_start(&t, sock, 1, false, 2) || rig_wait_socket(sock, TESTPMD_START_S)) {
		fprintf(stderr, "FAIL: testpmd did not come back\n");
		rig_failures++;
		goto out;
	}
	if (wait_link(g, cc, true, 15)) {
		fprintf(stderr, "FAIL: the link did not come back up\n");
		rig_failures++;
		goto out;
	}
	up_s = rig_now_s() - t0;
	printf("  testpmd restarted: reconnected, rings re-established, link up after %.3f s\n", up_s);
	memset(c.seen, 0, sizeof(c.seen));
	c.got = 0;
	if (round_trip(g, 0, 1000, 64, &c, 10))
		goto out;
	virtio_net__stats(g->dev, &st);
	printf("  device: connects %llu, disconnects %llu, failures %llu, link changes %llu\n",
	       (unsigned long long)st.session.connects, (unsigned long long)st.session.disconnects,
	       (unsigned long long)st.session.failures, (unsigned long long)st.session.link_changes);
	if (st.session.connects != 2 || st.session.disconnects != 1 || st.session.failures != 0) {
		fprintf(stderr, "FAIL: unexpected session counters\n");
		rig_failures++;
		goto out;
	}
	g->dev->ops->reset(g->dev); /* GET_VRING_BASE on both rings */
	peer_rx = testpmd_stop(&t);
	printf("  testpmd's own count after the restart: RX-packets %ld (64 expected)\n", peer_rx);
	if (peer_rx != 64) {
		fprintf(stderr, "FAIL: testpmd counted %ld frames\n", peer_rx);
		rig_failures++;
		goto out;
	}
	rc = 0;
out:
	if (rc && t.pid > 0) {
		testpmd_stop(&t);
		rig_dump_file(t.log);
	}
	rig_kill(&t);
	guest_fini(g);
	free(g);
	unlink(sock);
	return rc;
}

static int scenario_server(const char *sock)
{
	const uint64_t want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
			      BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) |
			      BIT(VIRTIO_NET_F_MQ) | BIT(VIRTIO_NET_F_CTRL_VQ);
	struct rig_proc t = { 0 };
	struct rx_check c0 = { .queue = 0 }, c1 = { .queue = 1 };
	struct virtio_net_stats st;
	struct guest *g = calloc(1, sizeof(*g));
	uint64_t features;
	unsigned cc;
	int rc = -1;

	printf("B. server mode, 2 queue pairs, testpmd connects to %s\n", sock);
	if (guest_init(g, "net1", sock, 2, true))
		goto out;
	c0.mac = c1.mac = g->mac;
	/* The guest starts before any backend: the link is down, the rings wait. */
	if (activate(g, want, &features))
		goto out;
	if (!(features & BIT(VIRTIO_NET_F_MQ)) || link_status(g)) {
		fprintf(stderr, "FAIL: features %#llx, link %u\n", (unsigned long long)features,
			link_status(g));
		rig_failures++;
		goto out;
	}
	if (ctrl_vq_pairs_set(g, 4, 0, 2))
		goto out;
	printf("  control queue: MQ_VQ_PAIRS_SET 2 acknowledged before any backend\n");
	drv_fill_rx(&g->q[0]);
	drv_fill_rx(&g->q[2]);
	if (testpmd_start(&t, sock, 2, true, 3) || virtio_net__wait_backend(g->dev, 15000)) {
		fprintf(stderr, "FAIL: testpmd did not connect\n");
		rig_failures++;
		goto out;
	}
	if (round_trip(g, 1, 0, 32, &c1, 10) || round_trip(g, 0, 0, 32, &c0, 10))
		goto out;
	if (c0.got != 32 || c1.got != 32) {
		fprintf(stderr, "FAIL: frames crossed pairs (%llu on rx0, %llu on rx1)\n",
			(unsigned long long)c0.got, (unsigned long long)c1.got);
		rig_failures++;
		goto out;
	}
	cc = config_changes(g);
	rig_kill(&t);
	if (wait_link(g, cc, false, 5)) {
		fprintf(stderr, "FAIL: the link did not go down after testpmd was killed\n");
		rig_failures++;
		goto out;
	}
	printf("  testpmd killed: link down\n");
	cc = config_changes(g);
	if (testpmd_start(&t, sock, 2, true, 4) || wait_link(g, cc, true, 15)) {
		fprintf(stderr, "FAIL: testpmd did not reconnect\n");
		rig_failures++;
		goto out;
	}
	printf("  testpmd restarted and reconnected: link up\n");
	memset(c1.seen, 0, sizeof(c1.seen));
	if (round_trip(g, 1, 500, 32, &c1, 10))
		goto out;
	virtio_net__stats(g->dev, &st);
	printf("  device: connects %llu, disconnects %llu, queue pairs %u\n",
	       (unsigned long long)st.session.connects, (unsigned long long)st.session.disconnects,
	       st.queue_pairs);
	rc = 0;
out:
	if (t.pid > 0)
		testpmd_stop(&t);
	if (rc)
		rig_dump_file(t.log);
	guest_fini(g);
	free(g);
	return rc;
}

/* ------------------------------------------------------------------ C: the dirty log */

#define LOG_PAGE 4096ull

/* The memfd pages the log names (cleared by the take): how many; *bits allocated. */
static uint64_t harvest(struct guest *g, uint64_t **bits)
{
	uint64_t words = (g->mem.size / LOG_PAGE + 63) / 64, w, n = 0;

	*bits = calloc(words, 8);
	if (!*bits)
		return 0;
	guest_mem__log_take(&g->mem, *bits);
	for (w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll((*bits)[w]);
	return n;
}

/* Whether the page of guest-physical `gpa` is in `bits` (by memfd offset). */
static bool gpa_marked(const struct guest *g, const uint64_t *bits, uint64_t gpa)
{
	unsigned i;

	for (i = 0; i < g->mem.nr_regions; i++) {
		const struct guest_region *r = &g->mem.regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			uint64_t p = (r->fd_offset + gpa - r->gpa) / LOG_PAGE;

			return bits[p / 64] >> (p % 64) & 1;
		}
	}
	return false;
}

static int check_logged(struct guest *g, const struct rx_check *c)
{
	struct rig_queue *rx = &g->q[0], *tx = &g->q[1];
	uint64_t *bits = NULL, n = harvest(g, &bits);
	unsigned id, rx_ids = 0, rx_marked = 0, tx_marked = 0;
	bool rx_used, tx_used;

	CHECK(bits, "out of memory");
	rx_used = gpa_marked(g, bits, rx->used_gpa);
	tx_used = gpa_marked(g, bits, tx->used_gpa);
	for (id = 0; id < QSIZE; id++) {
		if (c->ids[id / 8] & (1u << (id % 8))) {
			rx_ids++;
			rx_marked += gpa_marked(g, bits, rx->buf_gpa + (uint64_t)id * BUF_SIZE);
		}
		tx_marked += gpa_marked(g, bits, tx->buf_gpa + (uint64_t)id * BUF_SIZE);
	}
	printf("  logged: %llu pages; the %u RX buffers written (above 4 GiB): %u marked; RX used ring %s, TX used ring %s; TX buffers (read only) marked: %u\n",
	       (unsigned long long)n, rx_ids, rx_marked,
	       rx_used ? "marked" : "NOT marked", tx_used ? "marked" : "NOT marked", tx_marked);
	free(bits);
	CHECK(rx_ids && rx_marked == rx_ids, "DPDK did not log every RX buffer it wrote");
	CHECK(rx_used && tx_used, "DPDK did not log the used rings it wrote");
	CHECK(tx_marked == 0, "TX buffers DPDK only read are marked");
	return 0;
}

static int scenario_dirty_log(const char *sock)
{
	const uint64_t want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
			      BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS);
	struct rig_proc t = { 0 };
	struct rx_check c = { .queue = 0 };
	struct guest *g = calloc(1, sizeof(*g));
	struct virtio_net_stats st;
	struct err e = { 0 };
	uint64_t features, *bits = NULL;
	int rc = -1, err;

	printf("C. dirty logging, 1 queue pair, RAM around the PCI hole, testpmd serves %s\n", sock);
	unlink(sock);
	testpmd_opt = "--no-mlockall";
	err = testpmd_start(&t, sock, 1, false, 5);
	testpmd_opt = NULL;
	if (err || rig_wait_socket(sock, TESTPMD_START_S)) {
		fprintf(stderr, "FAIL: testpmd did not create %s\n", sock);
		rig_failures++;
		goto out;
	}
	/* 3 GiB below the hole and 64 MiB from 4 GiB, sparse; the RX buffers up there. */
	if (guest_init_ram(g, "net2", sock, 1, false, GUEST_PCI_HOLE_START + (64ull << 20)))
		goto out;
	c.mac = g->mac;
	rig_queue__close(&g->vq[0]);
	if (rig_queue__init(&g->q[0], &g->mem, 0, QSIZE, 0x100000, GUEST_PCI_HOLE_END + 0x100000,
			    BUF_SIZE, &g->vq[0])) {
		fprintf(stderr, "FAIL: RX queue above 4 GiB\n");
		rig_failures++;
		goto out;
	}
	if (virtio_net__wait_backend(g->dev, 10000)) {
		fprintf(stderr, "FAIL: no session with testpmd\n");
		rig_failures++;
		goto out;
	}
	virtio_net__stats(g->dev, &st);
	printf("  testpmd's vhost features %#llx (LOG_ALL %s), protocol features %#llx (LOG_SHMFD %s)\n",
	       (unsigned long long)st.session.backend_features,
	       st.session.backend_features & BIT(26) ? "yes" : "no",
	       (unsigned long long)st.session.backend_protocol,
	       st.session.backend_protocol & BIT(1) ? "negotiated" : "no");
	if (activate(g, want, &features))
		goto out;
	drv_fill_rx(&g->q[0]);
	drv_kick(g, &g->q[0]);
	if (round_trip(g, 0, 0, 16, &c, 10))
		goto out;
	/* Logging on the running rings. */
	err = guest_mem__log_start(&g->mem);
	if (err) {
		fprintf(stderr, "FAIL: the log: %s\n", strerror(-err));
		rig_failures++;
		goto out;
	}
	err = virtio_net__device_ops.dirty_log(g->dev, g->mem.log_fd, g->mem.log_size, &e);
	if (err) {
		fprintf(stderr, "FAIL: testpmd did not take the dirty log: %s\n", e.msg);
		rig_failures++;
		goto out;
	}
	virtio_net__stats(g->dev, &st);
	printf("  logging on: testpmd took SET_LOG_BASE (%llu KiB memfd), LOG_ALL and the rings with LOG; link %s, connects %llu\n",
	       (unsigned long long)(g->mem.log_size >> 10), st.session.link_up ? "up" : "down",
	       (unsigned long long)st.session.connects);
	if (!st.session.link_up || st.session.connects != 1) {
		fprintf(stderr, "FAIL: the session did not survive the start of logging\n");
		rig_failures++;
		goto out;
	}
	harvest(g, &bits);                /* whatever came before */
	free(bits);
	memset(c.ids, 0, sizeof(c.ids));
	memset(c.seen, 0, sizeof(c.seen));
	c.got = 0;
	if (round_trip(g, 0, 100, 64, &c, 10) || check_logged(g, &c))
		goto out;
	/* Logging off: traffic goes on. */
	err = virtio_net__device_ops.dirty_log(g->dev, -1, 0, &e);
	guest_mem__log_stop(&g->mem);
	if (err) {
		fprintf(stderr, "FAIL: stopping the dirty log: %s\n", e.msg);
		rig_failures++;
		goto out;
	}
	memset(c.seen, 0, sizeof(c.seen));
	if (round_trip(g, 0, 500, 32, &c, 10))
		goto out;
	virtio_net__stats(g->dev, &st);
	if (st.session.connects != 1 || st.session.failures || st.session.disconnects) {
		fprintf(stderr, "FAIL: connects %llu, failures %llu, disconnects %llu\n",
			(unsigned long long)st.session.connects, (unsigned long long)st.session.failures,
			(unsigned long long)st.session.disconnects);
		rig_failures++;
		goto out;
	}
	printf("  logging off: 32 more frames round trip, the session never broke\n");
	rc = 0;
out:
	if (t.pid > 0)
		testpmd_stop(&t);
	if (rc)
		rig_dump_file(t.log);
	guest_fini(g);
	free(g);
	unlink(sock);
	return rc;
}

int main(int argc, char **argv)
{
	char sock_dir[80], sock_a[108], sock_b[108], sock_c[108], cmd[256];
	cpu_set_t cpus;
	int rc;

	testpmd_bin = argc > 1 && argv[1][0] ? argv[1] : "/usr/bin/dpdk-testpmd";
	if (access(testpmd_bin, X_OK) != 0) {
		printf("SKIP: %s not found: install Debian's dpdk package (scripts/deps.sh dataplane)\n",
		       testpmd_bin);
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	snprintf(run_dir_prefix, sizeof(run_dir_prefix), "rtvmm-vu-it-%d", getpid());
	/* Sockets live in a 0700 directory: rtvmm refuses a world-writable one such as /tmp. */
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/%s.XXXXXX", run_dir_prefix);
	if (!mkdtemp(sock_dir)) {
		printf("FAIL: mkdtemp %s: %s\n", sock_dir, strerror(errno));
		return 1;
	}
	snprintf(sock_a, sizeof(sock_a), "%s/a.sock", sock_dir);
	snprintf(sock_b, sizeof(sock_b), "%s/b.sock", sock_dir);
	snprintf(sock_c, sizeof(sock_c), "%s/c.sock", sock_dir);
	/* testpmd polls on lcore 1 (cpu 1); the "guest" and the monitor stay off it. */
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);

	rc = scenario_client(sock_a);
	if (!rc)
		rc = scenario_server(sock_b);
	if (!rc)
		rc = scenario_dirty_log(sock_c);

	/* EAL's runtime directory always goes; testpmd's logs stay when something failed. */
	snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/%s%s%s%s", run_dir_prefix,
		 rc || rig_failures ? "" : " /tmp/", rc || rig_failures ? "" : run_dir_prefix,
		 rc || rig_failures ? "" : "-testpmd-*.log");
	if (system(cmd) != 0) {
		/* leftovers only */
	}
	unlink(sock_a);
	unlink(sock_b);
	unlink(sock_c);
	rmdir(sock_dir);
	printf("%s\n", rc || rig_failures ? "FAIL" : "PASS: rtvmm <-> DPDK testpmd net_vhost interop");
	return rc || rig_failures ? 1 : 0;
}
