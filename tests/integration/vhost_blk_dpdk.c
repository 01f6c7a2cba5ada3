/*
 * A vhost-user-blk backend that dies mid-I/O, with inflight tracking: rtvmm's
 * vhost-user-blk device against DPDK's own vhost_blk example (a RAM disk on
 * rte_vhost, which marks the requests it takes in the inflight region; built
 * from Debian's dpdk-doc by tests/integration/meson.build).
 *
 * This program plays the guest without KVM (guest RAM a memfd guest_mem, rings
 * by vring_rig.c, the device driven through its virtio_dev_ops):
 *   1. The backend negotiates protocol feature INFLIGHT_SHMFD with rtvmm; a
 *      write reads back.
 *   2. A burst of writes, and the backend is killed (SIGKILL) under it: every
 *      write completes exactly once, signalled, OK (the backend's) or IOERR
 *      (the monitor's), none lost, none twice; the monitor's count is the
 *      number of IOERRs. Writes posted while it is away complete IOERR.
 *   3. The backend starts again: the session reconnects, a write and a read
 *      succeed (a new RAM disk: success, not content), the monitor fails no more.
 *
 * Usage: vhost_blk_dpdk PATH-TO-dpdk-vhost-blk ("none": skip, exit 77).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/vhost_blk.h"
#include "vmm/virtio/vhost_user.h"
#include "vmm/virtio/virtio.h"
#include "vring_rig.h"

#define BIT(n) (1ull << (n))
#define RAM_SIZE (64ull << 20)
#define QSIZE    128
#define SLOTS    (QSIZE / 3)          /* chains of three descriptors: header, data, status */
#define BUF_SIZE 4096u
#define BURST    40

static const char *backend_bin;
static char dir[64], sock[108];

/* ------------------------------------------------------------------ the backend */

/* Starts DPDK's vhost_blk in `dir` (its socket: dir/vhost.socket), niced: its worker busy-polls. */
static int backend_start(struct rig_proc *b, unsigned run)
{
	char *argv[] = { (char *)backend_bin, "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
			 "-l", "0", "--log-level", "lib.vhost.config:warning", NULL };
	int err;

	unlink(sock);
	err = rig_spawn(b, argv, dir, RIG_SPAWN_NICE, "%s/backend-%u.log", dir, run);
	return err ? err : rig_wait_socket(sock, 30);
}

/* ------------------------------------------------------------------ the "guest" */

struct guest {
	struct guest_mem mem;
	struct virtio_dev *dev;
	struct virtio_queue vq;
	struct rig_queue q;
};

/* Posts a write (OUT) or read (IN) of BUF_SIZE bytes at `sector`; returns the chain's head. */
static uint16_t blk_post(struct guest *g, uint32_t type, uint64_t sector, uint8_t fill)
{
	struct rig_queue *q = &g->q;
	uint16_t h = (uint16_t)((q->avail_idx % SLOTS) * 3);
	struct virtio_blk_req_hdr hdr = { .type = type, .sector = sector };
	bool in = type == VIRTIO_BLK_T_IN;
	uint64_t bs = q->buf_size;

	memcpy(q->buf + h * bs, &hdr, sizeof(hdr));
	memset(q->buf + (h + 1) * bs, fill, BUF_SIZE);
	q->buf[(h + 2) * bs] = 0xff;
	q->desc[h] = (struct rig_desc){ q->buf_gpa + h * bs, sizeof(hdr), RIG_DESC_F_NEXT,
					(uint16_t)(h + 1) };
	q->desc[h + 1] = (struct rig_desc){ q->buf_gpa + (h + 1) * bs, BUF_SIZE,
					    RIG_DESC_F_NEXT | (in ? RIG_DESC_F_WRITE : 0),
					    (uint16_t)(h + 2) };
	q->desc[h + 2] = (struct rig_desc){ q->buf_gpa + (h + 2) * bs, 1, RIG_DESC_F_WRITE, 0 };
	rig_queue__publish(q, h);
	rig_queue__kick(q, g->vq.kick_fd);
	return h;
}

static uint8_t blk_status(struct guest *g, uint16_t head)
{
	return g->q.buf[(head + 2) * (uint64_t)g->q.buf_size];
}

/*
 * Takes completions until each of the `n` chains in `heads` completed exactly
 * once (no other, none twice), with an interrupt; counts OK and IOERR.
 */
static int collect(struct guest *g, const uint16_t *heads, unsigned n, double timeout,
		   unsigned *ok, unsigned *ioerr)
{
	struct rig_queue *q = &g->q;
	double end = rig_now_s() + timeout;
	bool seen[SLOTS * 3] = { false }, called = false;
	unsigned got = 0, k;

	*ok = *ioerr = 0;
	while (got < n) {
		uint32_t id, len;
		uint8_t st;

		if (rig_wait_eventfd(g->vq.call_fd, 0))
			called = true;
		if (rig_queue__used_idx(q) == q->last_used) {
			CHECK(rig_now_s() < end, "%u of %u requests completed within %.0f s (the rest stalled)",
			      got, n, timeout);
			if (rig_wait_eventfd(g->vq.call_fd, 100))
				called = true;
			continue;
		}
		rig_queue__used_elem(q, q->last_used, &id, &len);
		q->last_used++;
		for (k = 0; k < n && heads[k] != id; k++)
			;
		CHECK(k < n, "completion of chain %u, which was not posted", id);
		CHECK(!seen[id], "chain %u completed twice", id);
		seen[id] = true;
		got++;
		st = blk_status(g, (uint16_t)id);
		CHECK(st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_IOERR, "chain %u: status %u", id, st);
		if (st == VIRTIO_BLK_S_OK)
			(*ok)++;
		else
			(*ioerr)++;
	}
	CHECK(called, "completions without an interrupt");
	usleep(200000);
	CHECK(rig_queue__used_idx(q) == q->last_used, "%u completions more than requests",
	      (unsigned)(uint16_t)(rig_queue__used_idx(q) - q->last_used));
	return 0;
}

/* One request that must complete with `want`. */
static int one(struct guest *g, uint32_t type, uint64_t sector, uint8_t fill, uint8_t want)
{
	uint16_t h = blk_post(g, type, sector, fill);
	unsigned ok, ioerr;

	if (collect(g, &h, 1, 10, &ok, &ioerr))
		return -1;
	CHECK(blk_status(g, h) == want, "request type %u at sector %llu: status %u, %u expected", type,
	      (unsigned long long)sector, blk_status(g, h), want);
	return 0;
}

static bool all_bytes(const uint8_t *p, uint8_t v, size_t n)
{
	while (n--)
		if (*p++ != v)
			return false;
	return true;
}

/* Writes `v` at `sector` and reads it back. */
static int write_read(struct guest *g, uint64_t sector, uint8_t v)
{
	uint16_t h;

	if (one(g, VIRTIO_BLK_T_OUT, sector, v, VIRTIO_BLK_S_OK))
		return -1;
	h = (uint16_t)((g->q.avail_idx % SLOTS) * 3);
	if (one(g, VIRTIO_BLK_T_IN, sector, 0xee, VIRTIO_BLK_S_OK))
		return -1;
	CHECK(all_bytes(g->q.buf + (h + 1) * (uint64_t)g->q.buf_size, v, BUF_SIZE),
	      "read at sector %llu is not the %#x written", (unsigned long long)sector, v);
	return 0;
}

static int wait_link(struct guest *g, bool up, double timeout)
{
	struct vhost_blk_stats st;
	double end = rig_now_s() + timeout;

	do {
		vhost_blk__stats(g->dev, &st);
		if (st.session.link_up == up)
			return 0;
		usleep(5000);
	} while (rig_now_s() < end);
	fprintf(stderr, "FAIL: the link did not go %s within %.0f s\n", up ? "up" : "down", timeout);
	rig_failures++;
	return -1;
}

static int run(struct rig_proc *b)
{
	struct vhost_blk_spec spec = { .name = "disk0", .queues = 1 };
	struct guest *g = calloc(1, sizeof(*g));
	struct virtio_activation a;
	struct virtio_blk_config cfg;
	struct vhost_blk_stats st;
	struct err e = { 0 };
	uint16_t heads[BURST];
	unsigned ok, ioerr, k;
	uint64_t offered;
	double t0;

	CHECK(g && !guest_mem__create(&g->mem, RAM_SIZE), "guest RAM");
	snprintf(spec.socket, sizeof(spec.socket), "%s", sock);
	CHECK(!vhost_blk__create(&spec, &g->mem, &g->dev, &e), "create: %s", e.msg);
	CHECK(!rig_queue__init(&g->q, &g->mem, 0, QSIZE, 0x100000, 0x1000000, BUF_SIZE, &g->vq),
	      "queue 0: no room or no eventfds");
	CHECK(!vhost_blk__wait_backend(g->dev, 15000), "no session with DPDK's vhost_blk");

	printf("1. DPDK's vhost_blk example at %s\n", sock);
	vhost_blk__stats(g->dev, &st);
	offered = g->dev->ops->features(g->dev);
	g->dev->ops->config_read(g->dev, 0, &cfg, sizeof(cfg));
	printf("  its features %#llx, protocol features %#llx; offered %#llx; capacity %llu sectors\n",
	       (unsigned long long)st.session.backend_features,
	       (unsigned long long)st.session.backend_protocol, (unsigned long long)offered,
	       (unsigned long long)cfg.capacity);
	CHECK(st.session.backend_protocol & BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
	      "protocol features %#llx: INFLIGHT_SHMFD not negotiated",
	      (unsigned long long)st.session.backend_protocol);
	CHECK(cfg.capacity == (128ull << 20) / 512, "capacity %llu, its 128 MiB RAM disk expected",
	      (unsigned long long)cfg.capacity);
	a = (struct virtio_activation){ .features = offered & BIT(VIRTIO_F_VERSION_1), .nr_queues = 1,
					.queues = &g->vq, .mem = &g->mem };
	CHECK(!g->dev->ops->activate(g->dev, &a), "activate");
	for (k = 0; k < 1000 && g->dev->ops->resetting(g->dev); k++)
		usleep(10000);
	if (write_read(g, 0, 0x5a))
		return -1;
	printf("  INFLIGHT_SHMFD negotiated; a 4 KiB write reads back\n");

	printf("2. %d writes, the backend killed (SIGKILL) under them\n", BURST);
	for (k = 0; k < BURST; k++)
		heads[k] = blk_post(g, VIRTIO_BLK_T_OUT, 8 * k, (uint8_t)k);
	rig_kill(b);
	t0 = rig_now_s();
	if (collect(g, heads, BURST, 10, &ok, &ioerr))
		return -1;
	vhost_blk__stats(g->dev, &st);
	printf("  all %d completed once within %.3f s: %u OK (the backend's), %u IOERR (the monitor's)\n",
	       BURST, rig_now_s() - t0, ok, ioerr);
	CHECK(st.session.failed_by_monitor == ioerr, "the monitor counts %llu failed, %u IOERR seen",
	      (unsigned long long)st.session.failed_by_monitor, ioerr);
	if (wait_link(g, false, 5))
		return -1;
	for (k = 0; k < 5; k++)
		heads[k] = blk_post(g, VIRTIO_BLK_T_OUT, 8 * k, 0x11);
	if (collect(g, heads, 5, 10, &ok, &ioerr))
		return -1;
	CHECK(ioerr == 5, "%u of 5 writes posted with the backend away failed", ioerr);
	vhost_blk__stats(g->dev, &st);
	CHECK(!strcmp(vu_session_stats__io_state(&st.session), "failed by the monitor (backend away)"),
	      "I/O state '%s'", vu_session_stats__io_state(&st.session));
	printf("  with the backend away: 5 writes IOERR at once; I/O %s, %llu requests failed by the monitor\n",
	       vu_session_stats__io_state(&st.session),
	       (unsigned long long)st.session.failed_by_monitor);

	printf("3. the backend starts again\n");
	t0 = rig_now_s();
	CHECK(!backend_start(b, 2), "the backend did not come back");
	CHECK(!vhost_blk__wait_backend(g->dev, 15000), "no reconnection");
	printf("  reconnected after %.3f s\n", rig_now_s() - t0);
	if (write_read(g, 64, 0x77) || write_read(g, 0, 0x3c))
		return -1;
	vhost_blk__stats(g->dev, &st);
	CHECK(st.session.connects == 2, "connects %llu", (unsigned long long)st.session.connects);
	CHECK(!strcmp(vu_session_stats__io_state(&st.session), "served by the backend"),
	      "I/O state '%s'", vu_session_stats__io_state(&st.session));
	printf("  writes and reads succeed again; I/O %s\n", vu_session_stats__io_state(&st.session));
	g->dev->ops->reset(g->dev);
	for (k = 0; k < 1000 && g->dev->ops->resetting(g->dev); k++)
		usleep(10000);
	vhost_blk__destroy(g->dev);
	rig_queue__close(&g->vq);
	guest_mem__destroy(&g->mem);
	free(g);
	return 0;
}

int main(int argc, char **argv)
{
	struct rig_proc b = { 0 };
	char cmd[128];
	int rc;

	/* Absolute: the backend runs in its own directory. */
	backend_bin = argc > 1 ? realpath(argv[1], NULL) : NULL;
	if (!backend_bin || access(backend_bin, X_OK) != 0) {
		printf("SKIP: DPDK's vhost_blk example was not built (libdpdk-dev and dpdk-doc: scripts/deps.sh dataplane test)\n");
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* A 0700 directory: rtvmm refuses a socket in a world-writable one such as /tmp. */
	snprintf(dir, sizeof(dir), "/tmp/rtvmm-vublk-dpdk.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("FAIL: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/vhost.socket", dir);
	if (backend_start(&b, 1)) {
		printf("FAIL: DPDK's vhost_blk did not create %s\n", sock);
		rig_dump_file(b.log);
		return 1;
	}
	rc = run(&b);
	rig_kill(&b);
	if (rc || rig_failures) {
		rig_dump_file(b.log);
		printf("(files kept in %s)\nFAIL\n", dir);
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
		/* a leftover directory in /tmp */
	}
	printf("PASS: a vhost-user-blk backend that dies mid-I/O: IOERR while away, I/O again when it returns\n");
	return 0;
}
