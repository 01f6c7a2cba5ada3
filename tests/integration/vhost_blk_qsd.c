/*
 * Interop: rtvmm's vhost-user-blk device against qemu-storage-daemon's
 * vhost-user-blk export of a qcow2 image (a backend nobody here wrote).
 *
 * This program plays the guest without KVM: guest RAM is a memfd guest_mem,
 * the split rings are laid out by tests/integration/vring_rig.c, the device
 * is driven through its virtio_dev_ops as the transport would (features,
 * config reads, activate with real kick and call eventfds), and virtio-blk
 * requests are written into the rings by hand.
 *
 *   A. A socket with no backend: create succeeds, wait_backend times out with
 *      a message naming the socket; the config space reads zeros.
 *   B. A readonly disk against a writable export: refused (VIRTIO_BLK_F_RO).
 *   C. Two queues against the export: capacity = the qcow2's virtual size;
 *      a read returns qemu-io's pattern, writes read back, GET_ID, FLUSH, an
 *      unknown request type is UNSUPP, queue 1 is served too. Then the daemon
 *      is killed (SIGKILL) with a read in flight: the link goes down without
 *      a config interrupt, vCPU-side calls return at once, a request queued
 *      meanwhile waits; the image is grown and the daemon restarted on the same
 *      socket: the session reconnects, the config interrupt announces the new
 *      capacity, both reads complete exactly once with the right data, new
 *      requests complete.
 *      Before the kill, a live migration's dirty log: libvhost-user takes it
 *      (SET_LOG_BASE answered with its u64 0, LOG_ALL, the rings with flag
 *      LOG) and marks the pages of a read's data, its status and the used
 *      ring; logging stops and I/O goes on.
 *   D. A readonly disk against a read-only export (writable=off): RO offered,
 *      a write the guest sends anyway is IOERR, the data stays.
 *   E. With the daemon gone, qemu-io reads every pattern back from the qcow2.
 *
 * Usage: vhost_blk_qsd [PATH-TO-qemu-storage-daemon]. Exits 77 (skip) only
 * when qemu-storage-daemon is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/vhost_blk.h"
#include "vmm/virtio/virtio.h"
#include "vring_rig.h"

#define BIT(n) (1ull << (n))
#define RAM_SIZE   (64ull << 20)
#define QSIZE      128
#define BUF_SIZE   (64u << 10)
#define IMG_SIZE   (64ull << 20)
#define IMG_GROWN  (96ull << 20)
#define CONFIG_LEN 60          /* the device's config space: up to write_zeroes_may_unmap */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

static const char *qsd_bin;
static char dir[64], img[128];

/* ------------------------------------------------------------------ the daemon */

/* Starts qemu-storage-daemon exporting the image on `sock`; its log: dir/qsd-RUN.log. */
static int qsd_start(struct rig_proc *q, const char *sock, bool writable, unsigned run)
{
	char file[256], exp[256];
	char *argv[] = { (char *)qsd_bin, "--blockdev", file, "--blockdev",
			 "driver=qcow2,file=file0,node-name=disk0", "--export", exp, NULL };

	snprintf(file, sizeof(file), "driver=file,filename=%s,node-name=file0", img);
	snprintf(exp, sizeof(exp),
		 "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=%s,writable=%s,num-queues=2",
		 sock, writable ? "on" : "off");
	unlink(sock);
	return rig_spawn(q, argv, NULL, 0, "%s/qsd-%u.log", dir, run);
}

/* SIGTERM: the daemon closes the export and the image; returns its exit status or -1. */
static int qsd_stop(struct rig_proc *q)
{
	if (q->pid <= 0)
		return -1;
	kill(q->pid, SIGTERM);
	return rig_wait_exit(q, 10);
}

/* Runs a shell command; its output goes to `out` (a file) when given. Returns its exit status. */
static int run(const char *cmd, const char *out)
{
	char full[1024];
	int st;

	snprintf(full, sizeof(full), "%s >%s 2>&1", cmd, out ? out : "/dev/null");
	st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool file_has(const char *path, const char *what)
{
	char buf[8192];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

/* Copies a file to stdout, each line after `indent`. */
static void print_file(const char *path, const char *indent)
{
	char line[512];
	FILE *f = fopen(path, "r");

	while (f && fgets(line, sizeof(line), f))
		printf("%s%s", indent, line);
	if (f)
		fclose(f);
}

/* ------------------------------------------------------------------ the "guest" */

struct guest {
	struct guest_mem mem;
	struct virtio_dev *dev;
	struct virtio_queue vq[2];
	struct rig_queue q[2];
	unsigned nr_queues;
	unsigned config_irqs;
};

static unsigned config_changes(struct guest *g)
{
	return rig_config_irqs__read(&g->config_irqs);
}

static int guest_init(struct guest *g, const struct vhost_blk_spec *spec, struct err *e)
{
	unsigned i;
	int err;

	memset(g, 0, sizeof(*g));
	err = guest_mem__create(&g->mem, RAM_SIZE);
	CHECK(!err, "guest RAM: %s", strerror(-err));
	err = vhost_blk__create(spec, &g->mem, &g->dev, e);
	if (err)
		return err;
	rig_config_irqs__watch(g->dev, &g->config_irqs);
	g->nr_queues = g->dev->max_queues;
	for (i = 0; i < g->nr_queues; i++)
		CHECK(!rig_queue__init(&g->q[i], &g->mem, i, QSIZE, 0x100000 + i * 0x10000ull,
				       0x1000000 + i * (uint64_t)QSIZE * BUF_SIZE, BUF_SIZE, &g->vq[i]),
		      "queue %u: no room or no eventfds", i);
	return 0;
}

static void guest_fini(struct guest *g)
{
	unsigned i;

	if (g->dev)
		vhost_blk__destroy(g->dev);
	for (i = 0; i < g->nr_queues; i++)
		rig_queue__close(&g->vq[i]);
	guest_mem__destroy(&g->mem);
}

static struct virtio_blk_config read_config(struct guest *g)
{
	struct virtio_blk_config cfg;

	g->dev->ops->config_read(g->dev, 0, &cfg, sizeof(cfg));
	return cfg;
}

static void settle(struct guest *g)
{
	int k;

	for (k = 0; k < 1000 && g->dev->ops->resetting(g->dev); k++)
		usleep(10000);
}

/*
 * Puts one request on queue `qi`: header, `len` data bytes (device-writable
 * for IN and GET_ID, else `out`'s bytes), status. Chain heads go 0, 3, 6...
 * Returns the head.
 */
static uint16_t blk_post(struct guest *g, unsigned qi, uint32_t type, uint64_t sector,
			 const void *out, uint32_t len)
{
	struct rig_queue *q = &g->q[qi];
	uint16_t h = (uint16_t)((q->avail_idx % (q->size / 3)) * 3);
	struct virtio_blk_req_hdr hdr = { .type = type, .sector = sector };
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	uint64_t bs = q->buf_size;

	memcpy(q->buf + h * bs, &hdr, sizeof(hdr));
	q->desc[h] = (struct rig_desc){ q->buf_gpa + h * bs, sizeof(hdr), RIG_DESC_F_NEXT,
					(uint16_t)(h + 2) };
	if (len) {
		if (in)
			memset(q->buf + (h + 1) * bs, 0xee, len);
		else
			memcpy(q->buf + (h + 1) * bs, out, len);
		q->desc[h].next = (uint16_t)(h + 1);
		q->desc[h + 1] = (struct rig_desc){ q->buf_gpa + (h + 1) * bs, len,
						    RIG_DESC_F_NEXT | (in ? RIG_DESC_F_WRITE : 0),
						    (uint16_t)(h + 2) };
	}
	q->buf[(h + 2) * bs] = 0xff;
	q->desc[h + 2] = (struct rig_desc){ q->buf_gpa + (h + 2) * bs, 1, RIG_DESC_F_WRITE, 0 };
	rig_queue__publish(q, h);
	rig_queue__kick(q, g->vq[qi].kick_fd);
	return h;
}

/*
 * Waits for the next completion on queue `qi`, which must be `head`'s and
 * signalled on the call eventfd. Returns its status byte, -1 on failure.
 */
static int blk_complete(struct guest *g, unsigned qi, uint16_t head, double timeout)
{
	struct rig_queue *q = &g->q[qi];
	double end = rig_now_s() + timeout;
	bool called = false;
	uint32_t id, len;

	while (rig_queue__used_idx(q) == q->last_used || !called) {
		int left = (int)((end - rig_now_s()) * 1000);

		CHECK(left > 0, "queue %u: request %u not completed%s within %.0f s (used %u)", qi, head,
		      called ? "" : " or not signalled", timeout, rig_queue__used_idx(q));
		if (rig_wait_eventfd(g->vq[qi].call_fd, left < 100 ? left : 100))
			called = true;
	}
	rig_queue__used_elem(q, q->last_used, &id, &len);
	q->last_used++;
	CHECK(id == head, "queue %u: completion of chain %u, %u expected", qi, id, head);
	return q->buf[(head + 2) * (uint64_t)q->buf_size];
}

static const uint8_t *blk_data(struct guest *g, unsigned qi, uint16_t head)
{
	return g->q[qi].buf + (head + 1) * (uint64_t)g->q[qi].buf_size;
}

static bool all_bytes(const uint8_t *p, uint8_t v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* Reads `len` bytes at `sector` on queue `qi` and expects every byte to be `v`. */
static int expect_read(struct guest *g, unsigned qi, uint64_t sector, uint32_t len, uint8_t v)
{
	uint16_t h = blk_post(g, qi, VIRTIO_BLK_T_IN, sector, NULL, len);
	int st = blk_complete(g, qi, h, 10);

	CHECK(st == VIRTIO_BLK_S_OK, "read of %u bytes at sector %llu on queue %u: status %d", len,
	      (unsigned long long)sector, qi, st);
	CHECK(all_bytes(blk_data(g, qi, h), v, len),
	      "read at sector %llu on queue %u: not all %#x (first byte %#x)",
	      (unsigned long long)sector, qi, v, blk_data(g, qi, h)[0]);
	return 0;
}

static int do_write(struct guest *g, unsigned qi, uint64_t sector, uint32_t len, uint8_t v)
{
	static uint8_t data[BUF_SIZE];
	uint16_t h;
	int st;

	memset(data, v, len);
	h = blk_post(g, qi, VIRTIO_BLK_T_OUT, sector, data, len);
	st = blk_complete(g, qi, h, 10);
	CHECK(st == VIRTIO_BLK_S_OK, "write at sector %llu on queue %u: status %d",
	      (unsigned long long)sector, qi, st);
	return 0;
}

static int do_simple(struct guest *g, unsigned qi, uint32_t type, int want)
{
	uint16_t h = blk_post(g, qi, type, 0, NULL, 0);
	int st = blk_complete(g, qi, h, 10);

	CHECK(st == want, "request type %u on queue %u: status %d, %d expected", type, qi, st, want);
	return 0;
}

/* Runs `fn` with stderr going to `path`, so that what the device logs can be checked. */
static int with_stderr_to(const char *path, int (*fn)(void *), void *arg)
{
	int saved, fd, rc;

	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	dup2(fd, 2);
	close(fd);
	rc = fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	return rc;
}

/* ------------------------------------------------------------------ scenarios */

struct no_backend {
	struct guest *g;
	struct vhost_blk_spec *spec;
	int create_err, wait_err;
	double waited;
};

static int no_backend_run(void *arg)
{
	struct no_backend *nb = arg;
	struct err e = { 0 };
	double t0;

	nb->create_err = guest_init(nb->g, nb->spec, &e);
	if (nb->create_err) {
		fprintf(stderr, "%s\n", e.msg);
		return 0;
	}
	t0 = rig_now_s();
	nb->wait_err = vhost_blk__wait_backend(nb->g->dev, 500);
	nb->waited = rig_now_s() - t0;
	return 0;
}

static int scenario_no_backend(void)
{
	struct vhost_blk_spec spec = { .name = "disk9", .queues = 1 };
	struct guest *g = calloc(1, sizeof(*g));
	struct no_backend nb = { .g = g, .spec = &spec };
	uint8_t cfg[CONFIG_LEN], zero[CONFIG_LEN] = { 0 };
	char log[128];
	int rc = -1;

	printf("A. a socket with no backend\n");
	snprintf(spec.socket, sizeof(spec.socket), "%s/nobody.sock", dir);
	snprintf(log, sizeof(log), "%s/no-backend.log", dir);
	with_stderr_to(log, no_backend_run, &nb);
	if (nb.create_err) {
		fprintf(stderr, "FAIL: create without a backend: %s\n", strerror(-nb.create_err));
		rig_failures++;
		goto out;
	}
	if (nb.wait_err != -ETIMEDOUT || nb.waited < 0.45 || nb.waited > 3) {
		fprintf(stderr, "FAIL: wait_backend returned %d after %.3f s (-ETIMEDOUT after 0.5 s expected)\n",
			nb.wait_err, nb.waited);
		rig_failures++;
		goto out;
	}
	if (!file_has(log, "disk9: no vhost-user-blk backend ready on ") || !file_has(log, spec.socket)) {
		fprintf(stderr, "FAIL: the timeout does not say which disk and socket:\n");
		print_file(log, "  ");
		rig_failures++;
		goto out;
	}
	g->dev->ops->config_read(g->dev, 0, cfg, sizeof(cfg));
	if (memcmp(cfg, zero, sizeof(cfg))) {
		fprintf(stderr, "FAIL: the config space of a disk without a backend is not zeros\n");
		rig_failures++;
		goto out;
	}
	printf("  create ok, wait_backend -ETIMEDOUT after %.3f s, config space zeros; the log says:\n",
	       nb.waited);
	print_file(log, "    ");
	rc = 0;
out:
	guest_fini(g);
	free(g);
	return rc;
}

static int scenario_readonly_refused(const char *sock)
{
	struct vhost_blk_spec spec = { .name = "disk8", .queues = 1, .readonly = true };
	struct guest *g = calloc(1, sizeof(*g));
	struct vhost_blk_stats st;
	struct err e = { 0 };
	int rc = -1;

	printf("B. a readonly disk against a writable export\n");
	snprintf(spec.socket, sizeof(spec.socket), "%s", sock);
	if (guest_init(g, &spec, &e)) {
		fprintf(stderr, "FAIL: create: %s\n", e.msg);
		rig_failures++;
		goto out;
	}
	if (vhost_blk__wait_backend(g->dev, 1000) != -ETIMEDOUT) {
		fprintf(stderr, "FAIL: a backend without VIRTIO_BLK_F_RO was taken for a readonly disk\n");
		rig_failures++;
		goto out;
	}
	vhost_blk__stats(g->dev, &st);
	if (!strstr(st.session.last_error, "VIRTIO_BLK_F_RO") || st.session.failures < 1 ||
	    st.session.connects) {
		fprintf(stderr, "FAIL: refusal not recorded: failures %llu, connects %llu, last error '%s'\n",
			(unsigned long long)st.session.failures, (unsigned long long)st.session.connects,
			st.session.last_error);
		rig_failures++;
		goto out;
	}
	printf("  refused: %s\n", st.session.last_error);
	rc = 0;
out:
	guest_fini(g);
	free(g);
	return rc;
}

/*
 * Reads in flight when the daemon is killed. One: the daemon completes
 * concurrent requests out of order, and without an inflight region (protocol
 * feature INFLIGHT_SHMFD, which qemu-storage-daemon 7.2 does not offer) the
 * next one resumes from the used index: with more in flight a request may be
 * completed twice or never. The session does use such a region when offered.
 */
#define MID_IO 1

/*
 * Takes completions on queue `qi` until each of the `n` chains in `heads`
 * completed exactly once (none twice, no other), signalled, with status OK
 * and every data byte `pattern[k]`.
 */
static int collect(struct guest *g, unsigned qi, const uint16_t *heads, const uint8_t *pattern,
		   unsigned n, double timeout)
{
	struct rig_queue *q = &g->q[qi];
	double end = rig_now_s() + timeout;
	unsigned got = 0, k;
	bool seen[MID_IO + 1] = { false }, called = false;

	while (got < n) {
		uint32_t id, len;

		if (rig_wait_eventfd(g->vq[qi].call_fd, 0))
			called = true;
		if (rig_queue__used_idx(q) == q->last_used) {
			CHECK(rig_now_s() < end, "queue %u: %u of %u requests completed", qi, got, n);
			if (rig_wait_eventfd(g->vq[qi].call_fd, 100))
				called = true;
			continue;
		}
		rig_queue__used_elem(q, q->last_used, &id, &len);
		q->last_used++;
		for (k = 0; k < n && heads[k] != id; k++)
			;
		CHECK(k < n, "queue %u: completion of chain %u, which was not in flight", qi, id);
		CHECK(!seen[k], "queue %u: chain %u completed twice", qi, id);
		seen[k] = true;
		got++;
		CHECK(q->buf[(id + 2) * (uint64_t)q->buf_size] == VIRTIO_BLK_S_OK,
		      "queue %u: chain %u: status %u", qi, id, q->buf[(id + 2) * (uint64_t)q->buf_size]);
		CHECK(all_bytes(blk_data(g, qi, (uint16_t)id), pattern[k], BUF_SIZE),
		      "queue %u: chain %u: data not all %#x", qi, id, pattern[k]);
	}
	CHECK(called, "queue %u: completions without an interrupt", qi);
	usleep(200000);
	CHECK(rig_queue__used_idx(q) == q->last_used, "queue %u: %u completions more than requests",
	      qi, (unsigned)(uint16_t)(rig_queue__used_idx(q) - q->last_used));
	return 0;
}

/*
 * Kills the daemon with reads in flight, checks the VM side, queues one more
 * read, grows the image, restarts the daemon: every read completes once.
 */
static int kill_and_restart(struct guest *g, struct rig_proc *q, const char *sock)
{
	struct vhost_blk_stats st;
	struct virtio_blk_config cfg;
	double t0, worst = 0, t;
	char cmd[300];
	uint16_t heads[MID_IO + 1], at_kill;
	uint8_t pattern[MID_IO + 1];
	unsigned cc = config_changes(g);
	int k;

	/* Mid-I/O: the daemon dies with a read posted, taken or not, done or not. */
	for (k = 0; k < MID_IO; k++) {
		heads[k] = blk_post(g, 0, VIRTIO_BLK_T_IN, (uint64_t)(k % 16) * 128, NULL, BUF_SIZE);
		pattern[k] = 0xab;
	}
	rig_kill(q);
	t0 = rig_now_s();
	do {
		vhost_blk__stats(g->dev, &st);
		CHECK(rig_now_s() - t0 < 5, "the link did not go down after the daemon was killed");
		usleep(5000);
	} while (st.session.link_up);
	at_kill = (uint16_t)(rig_queue__used_idx(&g->q[0]) - g->q[0].last_used);
	printf("  daemon killed (SIGKILL) with %d read(s) in flight (%u completed): link down after %.3f s\n",
	       MID_IO, at_kill, rig_now_s() - t0);
	/* What a vCPU does meanwhile returns at once. */
	for (k = 0; k < 100; k++) {
		t = rig_now_s();
		cfg = read_config(g);
		(void)g->dev->ops->features(g->dev);
		(void)g->dev->ops->resetting(g->dev);
		t = rig_now_s() - t;
		worst = t > worst ? t : worst;
	}
	CHECK(worst < 0.05, "a config read took %.3f s with the backend gone", worst);
	CHECK(cfg.capacity == IMG_SIZE / 512, "capacity %llu with the backend gone",
	      (unsigned long long)cfg.capacity);
	/* A request the guest queues while the backend is gone waits in the ring. */
	heads[MID_IO] = blk_post(g, 0, VIRTIO_BLK_T_IN, 4096, NULL, BUF_SIZE);
	pattern[MID_IO] = 0x5c;
	usleep(300000);
	CHECK((uint16_t)(rig_queue__used_idx(&g->q[0]) - g->q[0].last_used) == at_kill,
	      "a request completed with no backend");
	CHECK(config_changes(g) == cc, "a config interrupt for a link change (the disk's config did not change)");
	printf("  meanwhile: config reads return in %.1f us at worst, a queued read waits\n",
	       worst * 1e6);

	snprintf(cmd, sizeof(cmd), "qemu-img resize -f qcow2 %s %llu", img,
		 (unsigned long long)IMG_GROWN);
	CHECK(run(cmd, NULL) == 0, "%s failed", cmd);
	t0 = rig_now_s();
	CHECK(!qsd_start(q, sock, true, 2) && !rig_wait_socket(sock, 30), "the daemon did not come back");
	CHECK(!vhost_blk__wait_backend(g->dev, 15000), "no reconnection to the restarted daemon");
	printf("  image grown to %llu MiB, daemon restarted: reconnected after %.3f s\n",
	       (unsigned long long)(IMG_GROWN >> 20), rig_now_s() - t0);
	for (k = 0; k < 500 && config_changes(g) == cc; k++)
		usleep(10000);
	cfg = read_config(g);
	CHECK(config_changes(g) == cc + 1, "%u config interrupts after the reconnection, 1 expected",
	      config_changes(g) - cc);
	CHECK(cfg.capacity == IMG_GROWN / 512, "capacity %llu after the resize, %llu expected",
	      (unsigned long long)cfg.capacity, (unsigned long long)(IMG_GROWN / 512));
	printf("  config interrupt: capacity now %llu sectors\n", (unsigned long long)cfg.capacity);
	if (collect(g, 0, heads, pattern, MID_IO + 1, 10))
		return -1;
	printf("  the %d read(s) in flight at the kill and the one queued meanwhile completed once each, right data\n",
	       MID_IO);
	vhost_blk__stats(g->dev, &st);
	CHECK(st.session.connects == 2 && st.session.disconnects == 1,
	      "connects %llu, disconnects %llu", (unsigned long long)st.session.connects,
	      (unsigned long long)st.session.disconnects);
	CHECK(st.capacity == IMG_GROWN / 512, "stats capacity %llu", (unsigned long long)st.capacity);
	return 0;
}

/* Whether the page of `gpa` (below 4 GiB here: the memfd offset) is in the harvest `bits`. */
static bool page_marked(const uint64_t *bits, uint64_t gpa)
{
	return bits[gpa / 4096 / 64] >> (gpa / 4096 % 64) & 1;
}

/* The daemon logs its writes while the log runs: a read's data, status and used ring. */
static int dirty_log_read(struct guest *g)
{
	uint64_t words = (g->mem.size / 4096 + 63) / 64, *bits = calloc(words, 8), w, n = 0, p;
	struct rig_queue *q = &g->q[0];
	struct err e = { 0 };
	unsigned data = 0;
	uint16_t h;
	int err;

	CHECK(bits, "out of memory");
	err = guest_mem__log_start(&g->mem);
	CHECK(!err, "the log: %s", strerror(-err));
	err = vhost_blk__device_ops.dirty_log(g->dev, g->mem.log_fd, g->mem.log_size, &e);
	CHECK(!err, "the daemon did not take the dirty log: %s", e.msg);
	guest_mem__log_take(&g->mem, bits);           /* nothing written yet */
	memset(bits, 0, words * 8);
	h = blk_post(g, 0, VIRTIO_BLK_T_IN, 0, NULL, BUF_SIZE);
	CHECK(blk_complete(g, 0, h, 10) == VIRTIO_BLK_S_OK, "read while logging");
	guest_mem__log_take(&g->mem, bits);
	for (w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(bits[w]);
	for (p = 0; p < BUF_SIZE; p += 4096)
		data += page_marked(bits, q->buf_gpa + (h + 1) * (uint64_t)BUF_SIZE + p);
	printf("  dirty log: the daemon took it; a 64 KiB read marked %llu pages: %u of its 16 data pages, status %s, used ring %s\n",
	       (unsigned long long)n, data,
	       page_marked(bits, q->buf_gpa + (h + 2) * (uint64_t)BUF_SIZE) ? "yes" : "no",
	       page_marked(bits, q->used_gpa) ? "yes" : "no");
	CHECK(data == BUF_SIZE / 4096, "data pages the daemon wrote are not all marked");
	CHECK(page_marked(bits, q->buf_gpa + (h + 2) * (uint64_t)BUF_SIZE), "status page not marked");
	CHECK(page_marked(bits, q->used_gpa), "used ring not marked");
	free(bits);
	err = vhost_blk__device_ops.dirty_log(g->dev, -1, 0, &e);
	guest_mem__log_stop(&g->mem);
	CHECK(!err, "stopping the dirty log: %s", e.msg);
	return expect_read(g, 0, 0, 4096, 0xab);
}

static int scenario_qsd(const char *sock, struct rig_proc *q)
{
	const uint64_t want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_FLUSH) |
			      BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_BLK_F_BLK_SIZE) |
			      BIT(VIRTIO_BLK_F_SEG_MAX);
	struct vhost_blk_spec spec = { .name = "disk0", .queues = 2 };
	struct guest *g = calloc(1, sizeof(*g));
	struct virtio_activation a;
	struct virtio_blk_config cfg;
	struct vhost_blk_stats st;
	struct err e = { 0 };
	uint64_t offered;
	char id[VIRTIO_BLK_ID_BYTES + 1] = { 0 };
	uint16_t h;
	double t;
	int rc = -1, err;

	printf("C. 2 queues against qemu-storage-daemon's export of a qcow2\n");
	snprintf(spec.socket, sizeof(spec.socket), "%s", sock);
	if (guest_init(g, &spec, &e)) {
		fprintf(stderr, "FAIL: create: %s\n", e.msg);
		rig_failures++;
		goto out;
	}
	if (vhost_blk__wait_backend(g->dev, 15000)) {
		fprintf(stderr, "FAIL: no session with the daemon\n");
		rig_failures++;
		goto out;
	}
	vhost_blk__stats(g->dev, &st);
	offered = g->dev->ops->features(g->dev);
	cfg = read_config(g);
	printf("  daemon's features %#llx, protocol features %#llx; offered %#llx\n",
	       (unsigned long long)st.session.backend_features,
	       (unsigned long long)st.session.backend_protocol, (unsigned long long)offered);
	printf("  config: capacity %llu sectors, blk_size %u, seg_max %u, size_max %u, num_queues %u\n",
	       (unsigned long long)cfg.capacity, cfg.blk_size, cfg.seg_max, cfg.size_max,
	       cfg.num_queues);
	if (cfg.capacity != IMG_SIZE / 512 || st.capacity != cfg.capacity || cfg.num_queues != 2) {
		fprintf(stderr, "FAIL: capacity %llu (stats %llu), num_queues %u: %llu and 2 expected\n",
			(unsigned long long)cfg.capacity, (unsigned long long)st.capacity,
			cfg.num_queues, (unsigned long long)(IMG_SIZE / 512));
		rig_failures++;
		goto out;
	}
	if ((offered & want) != want || (offered & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) ||
	    (offered & BIT(VIRTIO_BLK_F_CONFIG_WCE))) {
		fprintf(stderr, "FAIL: offered %#llx: want %#llx, never bit 30 or CONFIG_WCE\n",
			(unsigned long long)offered, (unsigned long long)want);
		rig_failures++;
		goto out;
	}
	a = (struct virtio_activation){ .features = offered & want, .nr_queues = g->nr_queues,
					.queues = g->vq, .mem = &g->mem };
	err = g->dev->ops->activate(g->dev, &a);
	if (err) {
		fprintf(stderr, "FAIL: activate: %s\n", strerror(-err));
		rig_failures++;
		goto out;
	}
	settle(g);

	if (expect_read(g, 0, 0, BUF_SIZE, 0xab) || expect_read(g, 0, 2048 - 8, 4096, 0xab) ||
	    expect_read(g, 0, 2048, 4096, 0))
		goto out;
	printf("  read: qemu-io's 0xab pattern at 0, zeros past 1 MiB\n");
	if (do_write(g, 0, 4096, BUF_SIZE, 0x5c) || expect_read(g, 0, 4096, BUF_SIZE, 0x5c))
		goto out;
	printf("  write 64 KiB of 0x5c at 2 MiB, read back\n");
	h = blk_post(g, 0, VIRTIO_BLK_T_GET_ID, 0, NULL, VIRTIO_BLK_ID_BYTES);
	if (blk_complete(g, 0, h, 10) != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "FAIL: GET_ID\n");
		rig_failures++;
		goto out;
	}
	/* The answer is NUL-terminated when shorter than 20 bytes (what follows is not written). */
	memcpy(id, blk_data(g, 0, h), VIRTIO_BLK_ID_BYTES);
	if (!id[0] || memchr(id, 0xee, strlen(id))) {
		fprintf(stderr, "FAIL: GET_ID answered '%s'\n", id);
		rig_failures++;
		goto out;
	}
	printf("  GET_ID: '%s'\n", id);
	if (do_simple(g, 0, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_S_OK) ||
	    do_simple(g, 0, 99, VIRTIO_BLK_S_UNSUPP))
		goto out;
	printf("  FLUSH ok, request type 99 UNSUPP\n");
	if (expect_read(g, 1, 0, BUF_SIZE, 0xab) || do_write(g, 1, 8192, 4096, 0x77) ||
	    do_simple(g, 1, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_S_OK) || expect_read(g, 0, 8192, 4096, 0x77))
		goto out;
	printf("  queue 1: read 0xab, wrote 0x77 at 4 MiB (read back on queue 0)\n");
	if (dirty_log_read(g))
		goto out;

	if (kill_and_restart(g, q, sock))
		goto out;
	if (do_write(g, 1, 12288, 4096, 0x3d) || do_simple(g, 1, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_S_OK) ||
	    expect_read(g, 0, 12288, 4096, 0x3d) ||
	    expect_read(g, 0, IMG_GROWN / 512 - 8, 4096, 0))
		goto out;
	printf("  after the restart: wrote 0x3d at 6 MiB on queue 1, read it on queue 0; the grown end reads\n");
	t = rig_now_s();
	g->dev->ops->reset(g->dev);
	t = rig_now_s() - t;
	if (t > 0.05) {
		fprintf(stderr, "FAIL: reset took %.3f s\n", t);
		rig_failures++;
		goto out;
	}
	settle(g);
	printf("  reset returned in %.1f us (the session thread stops the rings)\n", t * 1e6);
	rc = 0;
out:
	guest_fini(g);
	free(g);
	return rc;
}

static int scenario_readonly(const char *sock, struct rig_proc *q)
{
	struct vhost_blk_spec spec = { .name = "disk7", .queues = 1, .readonly = true };
	struct guest *g = calloc(1, sizeof(*g));
	struct virtio_activation a;
	struct err e = { 0 };
	uint64_t offered;
	int rc = -1;

	printf("D. a readonly disk against a read-only export (writable=off)\n");
	snprintf(spec.socket, sizeof(spec.socket), "%s", sock);
	if (qsd_start(q, sock, false, 3) || rig_wait_socket(sock, 30)) {
		fprintf(stderr, "FAIL: qemu-storage-daemon did not create %s\n", sock);
		rig_failures++;
		goto out;
	}
	if (guest_init(g, &spec, &e) || vhost_blk__wait_backend(g->dev, 15000)) {
		fprintf(stderr, "FAIL: no session with the read-only export%s%s\n", e.msg[0] ? ": " : "",
			e.msg);
		rig_failures++;
		goto out;
	}
	offered = g->dev->ops->features(g->dev);
	if (!(offered & BIT(VIRTIO_BLK_F_RO)) ||
	    (offered & (BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES)))) {
		fprintf(stderr, "FAIL: offered %#llx to a readonly disk\n", (unsigned long long)offered);
		rig_failures++;
		goto out;
	}
	a = (struct virtio_activation){ .features = offered & (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_RO)),
					.nr_queues = g->nr_queues, .queues = g->vq, .mem = &g->mem };
	if (g->dev->ops->activate(g->dev, &a)) {
		fprintf(stderr, "FAIL: activate\n");
		rig_failures++;
		goto out;
	}
	settle(g);
	/* A guest that writes all the same: the backend refuses, the data stays. */
	{
		static uint8_t junk[4096];
		uint16_t h;
		int st;

		memset(junk, 0x11, sizeof(junk));
		h = blk_post(g, 0, VIRTIO_BLK_T_OUT, 0, junk, sizeof(junk));
		st = blk_complete(g, 0, h, 10);
		if (st != VIRTIO_BLK_S_IOERR) {
			fprintf(stderr, "FAIL: a write to the read-only export: status %d\n", st);
			rig_failures++;
			goto out;
		}
	}
	if (expect_read(g, 0, 0, BUF_SIZE, 0xab))
		goto out;
	printf("  RO offered (no DISCARD/WRITE_ZEROES), a write is IOERR, the data reads unchanged\n");
	g->dev->ops->reset(g->dev);
	settle(g);
	rc = 0;
out:
	guest_fini(g);
	free(g);
	if (qsd_stop(q) != 0 && !rc) {
		fprintf(stderr, "FAIL: qemu-storage-daemon did not exit cleanly on SIGTERM\n");
		rig_failures++;
		rc = -1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	char sock[108], out[160], cmd[600];
	struct rig_proc q = { 0 };
	int rc = 1;

	qsd_bin = argc > 1 && argv[1][0] ? argv[1] : "/usr/bin/qemu-storage-daemon";
	if (access(qsd_bin, X_OK) != 0) {
		printf("SKIP: %s not found: install Debian's qemu-system-common (scripts/deps.sh test)\n",
		       qsd_bin);
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* The socket lives in a 0700 directory: rtvmm refuses a world-writable one such as /tmp. */
	snprintf(dir, sizeof(dir), "/tmp/rtvmm-vublk-it.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("FAIL: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(img, sizeof(img), "%s/disk.qcow2", dir);
	snprintf(sock, sizeof(sock), "%s/qsd.sock", dir);
	snprintf(out, sizeof(out), "%s/qemu-io.log", dir);

	snprintf(cmd, sizeof(cmd), "qemu-img create -f qcow2 %s %llu && qemu-io -f qcow2 -c 'write -P 0xab 0 1M' %s",
		 img, (unsigned long long)IMG_SIZE, img);
	if (run(cmd, out)) {
		printf("FAIL: %s (qemu-utils installed?)\n", cmd);
		print_file(out, "  ");
		goto out;
	}
	if (scenario_no_backend())
		goto out;
	if (qsd_start(&q, sock, true, 1) || rig_wait_socket(sock, 30)) {
		printf("FAIL: qemu-storage-daemon did not create %s\n", sock);
		goto out;
	}
	if (scenario_readonly_refused(sock) || scenario_qsd(sock, &q))
		goto out;
	if (qsd_stop(&q) != 0) {
		printf("FAIL: qemu-storage-daemon did not exit cleanly on SIGTERM\n");
		goto out;
	}
	if (scenario_readonly(sock, &q))
		goto out;
	/* What the guest wrote is in the qcow2, read by QEMU's own tool. */
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -r -f qcow2 -c 'read -P 0xab 0 1M' -c 'read -P 0x5c 2M 64k' -c 'read -P 0x77 4M 4k' -c 'read -P 0x3d 6M 4k' %s",
		 img);
	if (run(cmd, out) || file_has(out, "verification failed") || file_has(out, "rror")) {
		printf("FAIL: %s:\n", cmd);
		print_file(out, "  ");
		goto out;
	}
	printf("E. qemu-io -r on the qcow2 after the daemon exited: 0xab, 0x5c, 0x77, 0x3d all there\n");
	rc = 0;
out:
	if (rc || rig_failures) {
		qsd_stop(&q);
		rig_dump_file(q.log);
	}
	rig_kill(&q);
	if (!rc && !rig_failures) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		run(cmd, NULL);
	} else {
		printf("(files kept in %s)\n", dir);
	}
	printf("%s\n", rc || rig_failures ? "FAIL" : "PASS: rtvmm vhost-user-blk <-> qemu-storage-daemon (qcow2) interop");
	return rc || rig_failures ? 1 : 0;
}
