/*
 * A guest's bad descriptors never crash rtvmm-dataplane.
 *
 * This program is a small vhost-user frontend (the protocol rtvmm speaks for a VM's NIC): it
 * shares a memfd as guest RAM, sets up the rx and tx split virtqueues and writes descriptors
 * the way a buggy or hostile guest driver could: addresses outside guest RAM, lengths of 0 or
 * 4 GiB, chains that loop or point past the ring, heads out of range, an avail index far
 * ahead, indirect tables that are outside RAM, misaligned, nested or looping, buffers the
 * device must write but may only read, and rings outside RAM. Port 1 carries a well-behaved
 * guest that keeps sending, so the dataplane also has to write into the bad rx rings.
 * After every case the dataplane must be alive and answer on its stats socket; at the end two
 * well-behaved guests exchange frames through it and every frame arrives intact.
 *
 * Usage: dataplane_bad_guest RTVMM_DATAPLANE|none   (exit 77 when the dataplane was not built)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- vhost-user (docs.qemu.org/master/interop/vhost-user.html) ---- */

enum {
	VU_GET_FEATURES = 1, VU_SET_FEATURES = 2, VU_SET_OWNER = 3, VU_SET_MEM_TABLE = 5,
	VU_SET_VRING_NUM = 8, VU_SET_VRING_ADDR = 9, VU_SET_VRING_BASE = 10,
	VU_SET_VRING_KICK = 12, VU_SET_VRING_CALL = 13,
};
#define VU_VERSION        0x1
#define VU_REPLY          0x4

#define F_INDIRECT_DESC   (1ull << 28)
#define F_VERSION_1       (1ull << 32)

struct vu_region {
	uint64_t gpa, size, uaddr, mmap_offset;
};

struct vu_msg {
	uint32_t request, flags, size;
	union {
		uint64_t u64;
		struct { uint32_t index, num; } state;
		struct { uint32_t index, flags; uint64_t desc, used, avail, log; } addr;
		struct { uint32_t nregions, padding; struct vu_region r[8]; } mem;
	} p;
} __attribute__((packed));

/* ---- split virtqueues ---- */

#define D_NEXT     1
#define D_WRITE    2
#define D_INDIRECT 4

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vavail {
	uint16_t flags, idx, ring[];
};

struct vused {
	uint16_t flags, idx;
	struct { uint32_t id, len; } ring[];
};

#define QSIZE     256
#define HDR_LEN   12            /* virtio_net_hdr_mrg_rxbuf: VIRTIO_F_VERSION_1 */
#define MEM_SIZE  (4u << 20)
#define GPA_BASE  0x100000000ull
#define BUF_SIZE  2048
/* guest RAM layout (offsets) */
#define RING_OFF(q)  ((q) * 0x4000u)           /* desc, +0x1000 avail, +0x2000 used */
#define RXBUF_OFF    0x100000u
#define TXBUF_OFF    0x200000u
#define INDIR_OFF    0x300000u

struct vq {
	struct vdesc *desc;
	struct vavail *avail;
	struct vused *used;
	uint16_t avail_idx, used_seen;
	int kick, call;
};

struct guest {
	int sock, memfd;
	uint8_t *mem;
	struct vq q[2];             /* 0 = rx (device writes), 1 = tx (device reads) */
};

static const char *g_dir;
static pid_t g_dp = -1;
static unsigned g_failures;

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void dump_log(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "tail -n 40 %s/dp.log", g_dir);
	say("---- dataplane log (last 40 lines)\n");
	if (system(cmd) < 0)
		say("(cannot show the log)\n");
}

static void die(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	dump_log();
	if (g_dp > 0)
		kill(g_dp, SIGKILL);
	exit(1);
}

static uint64_t gpa(uint32_t off)
{
	return GPA_BASE + off;
}

static int vu_send(int sock, struct vu_msg *m, uint32_t req, uint32_t size, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(8 * sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = 12 + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	m->request = req;
	m->flags = VU_VERSION;
	m->size = size;
	if (nfds) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)(12 + size) ? 0 : -1;
}

static int vu_get_features(int sock, uint64_t *f)
{
	struct vu_msg m = { 0 };
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	if (vu_send(sock, &m, VU_GET_FEATURES, 0, NULL, 0))
		return -1;
	if (poll(&pfd, 1, 5000) != 1 || recv(sock, &m, 12 + 8, MSG_WAITALL) != 20 ||
	    m.request != VU_GET_FEATURES || !(m.flags & VU_REPLY))
		return -1;
	*f = m.p.u64;
	return 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* How a case corrupts the ring setup itself (before the device starts). */
enum ring_fault { RING_OK, RING_ADDR_OUTSIDE, RING_NUM_NOT_POW2 };

/* Connects a guest to port `port`'s socket with fresh RAM; rings empty. -1 on failure. */
static int guest_open(struct guest *g, int port, enum ring_fault fault)
{
	char path[256];
	struct vu_msg m;
	uint64_t feat;
	int q;

	memset(g, 0, sizeof(*g));
	snprintf(path, sizeof(path), "%s/%c.sock", g_dir, 'a' + port);
	g->sock = connect_to(path);
	if (g->sock < 0)
		return -1;
	g->memfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (g->memfd < 0 || ftruncate(g->memfd, MEM_SIZE))
		return -1;
	g->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	if (g->mem == MAP_FAILED)
		return -1;
	for (q = 0; q < 2; q++) {
		g->q[q].desc = (struct vdesc *)(g->mem + RING_OFF(q));
		g->q[q].avail = (struct vavail *)(g->mem + RING_OFF(q) + 0x1000);
		g->q[q].used = (struct vused *)(g->mem + RING_OFF(q) + 0x2000);
		g->q[q].avail->flags = 1;     /* VRING_AVAIL_F_NO_INTERRUPT: we poll */
		g->q[q].kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		g->q[q].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}

	if (vu_get_features(g->sock, &feat))
		return -1;
	memset(&m, 0, sizeof(m));
	m.p.u64 = feat & (F_VERSION_1 | F_INDIRECT_DESC);
	if (vu_send(g->sock, &m, VU_SET_FEATURES, 8, NULL, 0) ||
	    vu_send(g->sock, &m, VU_SET_OWNER, 0, NULL, 0))
		return -1;
	memset(&m, 0, sizeof(m));
	m.p.mem.nregions = 1;
	m.p.mem.r[0] = (struct vu_region){ GPA_BASE, MEM_SIZE, (uint64_t)(uintptr_t)g->mem, 0 };
	if (vu_send(g->sock, &m, VU_SET_MEM_TABLE, 8 + sizeof(struct vu_region), &g->memfd, 1))
		return -1;
	for (q = 0; q < 2; q++) {
		memset(&m, 0, sizeof(m));
		m.p.state.index = (uint32_t)q;
		m.p.state.num = fault == RING_NUM_NOT_POW2 ? 100 : QSIZE;
		if (vu_send(g->sock, &m, VU_SET_VRING_NUM, 8, NULL, 0))
			return -1;
		memset(&m, 0, sizeof(m));
		m.p.addr.index = (uint32_t)q;
		m.p.addr.desc = (uint64_t)(uintptr_t)g->q[q].desc;
		m.p.addr.avail = (uint64_t)(uintptr_t)g->q[q].avail;
		m.p.addr.used = (uint64_t)(uintptr_t)g->q[q].used;
		if (fault == RING_ADDR_OUTSIDE)
			m.p.addr.used = (uint64_t)(uintptr_t)g->mem + MEM_SIZE + 0x10000;
		if (vu_send(g->sock, &m, VU_SET_VRING_ADDR, sizeof(m.p.addr), NULL, 0))
			return -1;
		memset(&m, 0, sizeof(m));
		m.p.state.index = (uint32_t)q;
		if (vu_send(g->sock, &m, VU_SET_VRING_BASE, 8, NULL, 0))
			return -1;
		memset(&m, 0, sizeof(m));
		m.p.u64 = (uint64_t)q;
		if (vu_send(g->sock, &m, VU_SET_VRING_CALL, 8, &g->q[q].call, 1) ||
		    vu_send(g->sock, &m, VU_SET_VRING_KICK, 8, &g->q[q].kick, 1))
			return -1;
	}
	return 0;
}

static void guest_close(struct guest *g)
{
	int q;

	if (g->sock >= 0)
		close(g->sock);
	for (q = 0; q < 2; q++) {
		if (g->q[q].kick > 0)
			close(g->q[q].kick);
		if (g->q[q].call > 0)
			close(g->q[q].call);
	}
	if (g->mem && g->mem != MAP_FAILED)
		munmap(g->mem, MEM_SIZE);
	if (g->memfd > 0)
		close(g->memfd);
	memset(g, 0, sizeof(*g));
	g->sock = -1;
}

/* Publishes `n` more avail entries (already written into the ring). */
static void publish(struct vq *v, uint16_t n)
{
	v->avail_idx = (uint16_t)(v->avail_idx + n);
	__atomic_store_n(&v->avail->idx, v->avail_idx, __ATOMIC_RELEASE);
}

static void post(struct vq *v, uint16_t head)
{
	v->avail->ring[v->avail_idx % QSIZE] = head;
	publish(v, 1);
}

static uint16_t used_idx(const struct vq *v)
{
	return __atomic_load_n(&v->used->idx, __ATOMIC_ACQUIRE);
}

/* A frame: dst, src, ethertype 0x88b5 (local experimental), then seq and a pattern. */
static unsigned make_frame(uint8_t *p, unsigned port, uint32_t seq)
{
	static const uint8_t dst[6] = { 2, 0, 0, 0, 0, 0xb }, src[6] = { 2, 0, 0, 0, 0, 0xa };
	unsigned i, len = 64 + seq % 200;

	memcpy(p, port ? src : dst, 6);
	memcpy(p + 6, port ? dst : src, 6);
	p[12] = 0x88;
	p[13] = 0xb5;
	memcpy(p + 14, &seq, 4);
	p[18] = (uint8_t)port;
	for (i = 19; i < len; i++)
		p[i] = (uint8_t)(seq * 7 + i);
	return len;
}

static bool check_frame(const uint8_t *p, unsigned len, unsigned from_port, uint32_t *seq)
{
	uint8_t want[BUF_SIZE];

	if (len < 19)
		return false;
	memcpy(seq, p + 14, 4);
	return make_frame(want, from_port, *seq) == len && !memcmp(want, p, len);
}

/* Sends up to n good frames on g's tx queue; returns how many were posted. */
static unsigned send_frames(struct guest *g, unsigned port, unsigned n, uint32_t *seq)
{
	struct vq *v = &g->q[1];
	unsigned k;

	for (k = 0; k < n; k++) {
		uint16_t slot = v->avail_idx % QSIZE;
		uint8_t *buf = g->mem + TXBUF_OFF + slot * BUF_SIZE;
		unsigned len;

		if ((uint16_t)(v->avail_idx - used_idx(v)) >= QSIZE)
			break;
		memset(buf, 0, HDR_LEN);
		len = make_frame(buf + HDR_LEN, port, (*seq)++);
		v->desc[slot] = (struct vdesc){ gpa(TXBUF_OFF + slot * BUF_SIZE), HDR_LEN + len, 0, 0 };
		v->avail->ring[slot] = slot;
		publish(v, 1);
	}
	return k;
}

/* Gives all rx buffers to the device. */
static void fill_rx(struct guest *g)
{
	struct vq *v = &g->q[0];
	uint16_t i;

	for (i = 0; i < QSIZE; i++) {
		v->desc[i] = (struct vdesc){ gpa(RXBUF_OFF + i * BUF_SIZE), BUF_SIZE, D_WRITE, 0 };
		v->avail->ring[i] = i;
	}
	publish(v, QSIZE);
}

/* Takes received frames back, checks them, re-posts the buffers; counts good and bad ones. */
static void reap_rx(struct guest *g, unsigned from_port, unsigned *good, unsigned *bad)
{
	struct vq *v = &g->q[0];
	uint16_t end = used_idx(v);

	while (v->used_seen != end) {
		uint32_t id = v->used->ring[v->used_seen % QSIZE].id;
		uint32_t len = v->used->ring[v->used_seen % QSIZE].len, seq;

		if (id < QSIZE && len > HDR_LEN && len <= BUF_SIZE &&
		    check_frame(g->mem + RXBUF_OFF + id * BUF_SIZE + HDR_LEN, len - HDR_LEN, from_port, &seq))
			(*good)++;
		else
			(*bad)++;
		if (id < QSIZE)
			post(v, (uint16_t)id);
		v->used_seen++;
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The dataplane runs and answers on its stats socket with a JSON document. */
static void check_alive(const char *after)
{
	char path[256], buf[256];
	struct timeval tv = { .tv_sec = 5 };
	int status, fd;
	ssize_t n;

	if (waitpid(g_dp, &status, WNOHANG) == g_dp)
		die("the dataplane died after %s (%s %d)", after,
		    WIFSIGNALED(status) ? "signal" : "exit status",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	snprintf(path, sizeof(path), "%s/stats.sock", g_dir);
	fd = connect_to(path);
	if (fd < 0)
		die("the dataplane's stats socket does not answer after %s", after);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[0] != '{')
		die("no stats document after %s", after);
}

/* ---- the cases ---- */

struct bad_case {
	const char *name;
	int queue;                  /* 0 = rx (the dataplane writes), 1 = tx (it reads) */
	enum ring_fault ring;
	void (*setup)(struct guest *g, struct vq *v);
};

static void bad_addr(struct guest *g, struct vq *v)
{
	(void)g;
	v->desc[0] = (struct vdesc){ 0xdead00000000ull, 64, (uint16_t)(v == &g->q[0] ? D_WRITE : 0), 0 };
	post(v, 0);
}

static void len_huge(struct guest *g, struct vq *v)
{
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 0xffffffffu, (uint16_t)(v == &g->q[0] ? D_WRITE : 0), 0 };
	post(v, 0);
}

static void len_zero(struct guest *g, struct vq *v)
{
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 0, (uint16_t)(v == &g->q[0] ? D_WRITE : 0), 0 };
	post(v, 0);
}

static void len_short_header(struct guest *g, struct vq *v)
{
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 4, (uint16_t)(v == &g->q[0] ? D_WRITE : 0), 0 };
	post(v, 0);
}

static void header_only(struct guest *g, struct vq *v)
{
	memset(g->mem + TXBUF_OFF, 0, HDR_LEN);
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), HDR_LEN, 0, 0 };
	post(v, 0);
}

static void crosses_ram_end(struct guest *g, struct vq *v)
{
	v->desc[0] = (struct vdesc){ gpa(MEM_SIZE - 8), 128, (uint16_t)(v == &g->q[0] ? D_WRITE : 0), 0 };
	post(v, 0);
}

static void chain_loop(struct guest *g, struct vq *v)
{
	uint16_t w = (uint16_t)(v == &g->q[0] ? D_WRITE : 0);

	memset(g->mem + TXBUF_OFF, 0, 4096);
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 64, (uint16_t)(D_NEXT | w), 1 };
	v->desc[1] = (struct vdesc){ gpa(TXBUF_OFF + 64), 64, (uint16_t)(D_NEXT | w), 0 };
	post(v, 0);
}

static void next_out_of_range(struct guest *g, struct vq *v)
{
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 64, (uint16_t)(D_NEXT | (v == &g->q[0] ? D_WRITE : 0)), 999 };
	post(v, 0);
}

static void head_out_of_range(struct guest *g, struct vq *v)
{
	(void)g;
	post(v, 4000);
}

static void avail_idx_jump(struct guest *g, struct vq *v)
{
	(void)g;
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 64, (uint16_t)(v == &g->q[0] ? D_WRITE : 0), 0 };
	v->avail->ring[0] = 0;
	publish(v, 40000);
}

static void read_only_rx(struct guest *g, struct vq *v)
{
	(void)g;
	v->desc[0] = (struct vdesc){ gpa(RXBUF_OFF), BUF_SIZE, 0, 0 };
	post(v, 0);
}

static void write_only_tx(struct guest *g, struct vq *v)
{
	(void)g;
	v->desc[0] = (struct vdesc){ gpa(TXBUF_OFF), 64, D_WRITE, 0 };
	post(v, 0);
}

static void indirect_outside(struct guest *g, struct vq *v)
{
	(void)g;
	v->desc[0] = (struct vdesc){ 0xdead00000000ull, 4 * 16, D_INDIRECT, 0 };
	post(v, 0);
}

static void indirect_bad_len(struct guest *g, struct vq *v)
{
	struct vdesc *t = (struct vdesc *)(g->mem + INDIR_OFF);

	t[0] = (struct vdesc){ gpa(TXBUF_OFF), 64, 0, 0 };
	v->desc[0] = (struct vdesc){ gpa(INDIR_OFF), 17, D_INDIRECT, 0 };
	v->desc[1] = (struct vdesc){ gpa(INDIR_OFF), 0, D_INDIRECT, 0 };
	v->desc[2] = (struct vdesc){ gpa(INDIR_OFF), 0xfffffff0u, D_INDIRECT, 0 };
	post(v, 0);
	post(v, 1);
	post(v, 2);
}

static void indirect_nested_and_loop(struct guest *g, struct vq *v)
{
	struct vdesc *t = (struct vdesc *)(g->mem + INDIR_OFF);

	t[0] = (struct vdesc){ gpa(INDIR_OFF), 16 * 4, D_INDIRECT, 0 };       /* nested */
	t[4] = (struct vdesc){ gpa(TXBUF_OFF), 64, D_NEXT, 5 };              /* loop 4 -> 5 -> 4 */
	t[5] = (struct vdesc){ gpa(TXBUF_OFF), 64, D_NEXT, 4 };
	t[8] = (struct vdesc){ gpa(TXBUF_OFF), 64, D_NEXT, 200 };            /* next past the table */
	v->desc[0] = (struct vdesc){ gpa(INDIR_OFF), 16 * 4, D_INDIRECT, 0 };
	v->desc[1] = (struct vdesc){ gpa(INDIR_OFF + 4 * 16), 16 * 4, D_INDIRECT, 0 };
	v->desc[2] = (struct vdesc){ gpa(INDIR_OFF + 8 * 16), 16 * 2, D_INDIRECT, 0 };
	post(v, 0);
	post(v, 1);
	post(v, 2);
}

static void garbage(struct guest *g, struct vq *v)
{
	unsigned i;
	uint32_t x = 0x12345678;

	for (i = 0; i < QSIZE * sizeof(struct vdesc) / 4; i++) {
		x = x * 1103515245 + 12345;
		((uint32_t *)v->desc)[i] = x;
	}
	for (i = 0; i < QSIZE; i++) {
		x = x * 1103515245 + 12345;
		v->avail->ring[i] = (uint16_t)(x >> 16);
	}
	(void)g;
	publish(v, QSIZE);
}

static const struct bad_case cases[] = {
	{ "tx: buffer address outside guest RAM", 1, RING_OK, bad_addr },
	{ "tx: buffer length 4 GiB", 1, RING_OK, len_huge },
	{ "tx: buffer length 0", 1, RING_OK, len_zero },
	{ "tx: buffer shorter than the virtio-net header", 1, RING_OK, len_short_header },
	{ "tx: header only, empty frame", 1, RING_OK, header_only },
	{ "tx: buffer crosses the end of guest RAM", 1, RING_OK, crosses_ram_end },
	{ "tx: descriptor chain loops", 1, RING_OK, chain_loop },
	{ "tx: chain points past the ring", 1, RING_OK, next_out_of_range },
	{ "tx: avail head out of range", 1, RING_OK, head_out_of_range },
	{ "tx: avail index 40000 ahead", 1, RING_OK, avail_idx_jump },
	{ "tx: device-writable buffer on the tx queue", 1, RING_OK, write_only_tx },
	{ "tx: indirect table outside guest RAM", 1, RING_OK, indirect_outside },
	{ "tx: indirect table length 17, 0, 4 GiB", 1, RING_OK, indirect_bad_len },
	{ "tx: nested, looping and overrunning indirect tables", 1, RING_OK, indirect_nested_and_loop },
	{ "tx: random descriptors and heads", 1, RING_OK, garbage },
	{ "rx: buffer address outside guest RAM", 0, RING_OK, bad_addr },
	{ "rx: read-only buffer on the rx queue", 0, RING_OK, read_only_rx },
	{ "rx: buffer length 0", 0, RING_OK, len_zero },
	{ "rx: buffer shorter than the virtio-net header", 0, RING_OK, len_short_header },
	{ "rx: buffer length 4 GiB", 0, RING_OK, len_huge },
	{ "rx: buffer crosses the end of guest RAM", 0, RING_OK, crosses_ram_end },
	{ "rx: descriptor chain loops", 0, RING_OK, chain_loop },
	{ "rx: chain points past the ring", 0, RING_OK, next_out_of_range },
	{ "rx: avail head out of range", 0, RING_OK, head_out_of_range },
	{ "rx: avail index 40000 ahead", 0, RING_OK, avail_idx_jump },
	{ "rx: random descriptors and heads", 0, RING_OK, garbage },
	{ "used ring outside guest RAM", 1, RING_ADDR_OUTSIDE, NULL },
	{ "ring size 100 (not a power of two)", 1, RING_NUM_NOT_POW2, NULL },
};

static pid_t start_dataplane(const char *bin, unsigned cpu)
{
	char lcores[16], prefix[64], stats[256], a[256], b[256], log[256];
	pid_t pid;

	snprintf(lcores, sizeof(lcores), "%u", cpu);
	snprintf(prefix, sizeof(prefix), "rtvmm-bad%d", (int)getpid());
	snprintf(stats, sizeof(stats), "%s/stats.sock", g_dir);
	snprintf(a, sizeof(a), "vhost:%s/a.sock", g_dir);
	snprintf(b, sizeof(b), "vhost:%s/b.sock", g_dir);
	snprintf(log, sizeof(log), "%s/dp.log", g_dir);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);     /* never outlive the test */
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "run", "--lcores", lcores, "--no-huge", "--file-prefix", prefix,
		      "--stats-socket", stats, "--fwd", "xconnect", "--port", a, "--port", b,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/rtvmm-badguest.XXXXXX", path[256];
	struct guest good, bad, g0, g1;
	cpu_set_t cpus;
	unsigned cpu = 0, i, c, good_rx = 0, bad_rx = 0;
	uint32_t seq1 = 0, seq0 = 0;
	int status;
	double t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: dataplane_bad_guest RTVMM_DATAPLANE|none\n");
		return 2;
	}
	if (!strcmp(argv[1], "none")) {
		say("SKIP: rtvmm-dataplane was not built: libdpdk (Debian libdpdk-dev) was not found\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	g_dir = mkdtemp(tmpl);
	if (!g_dir)
		die("mkdtemp: %s", strerror(errno));
	/* the dataplane polls on our last allowed cpu */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		for (c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &cpus))
				cpu = c;
	g_dp = start_dataplane(argv[1], cpu);
	snprintf(path, sizeof(path), "%s/stats.sock", g_dir);
	for (t = now_s(); access(path, F_OK); sleep_ms(50))
		if (now_s() - t > 30 || waitpid(g_dp, &status, WNOHANG) == g_dp)
			die("the dataplane did not start");

	/* A good guest on port 1 sends all along, so the dataplane writes into port 0's rx ring. */
	if (guest_open(&good, 1, RING_OK))
		die("the good guest cannot connect to port 1: %s", strerror(errno));
	fill_rx(&good);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *bc = &cases[i];

		if (guest_open(&bad, 0, bc->ring)) {
			/* a broken ring setup may be refused outright: that is fine */
			guest_close(&bad);
			check_alive(bc->name);
			say("ok: %s (refused at setup)\n", bc->name);
			continue;
		}
		sleep_ms(100);      /* let the device start */
		if (bc->queue == 1)
			fill_rx(&bad);
		if (bc->setup)
			bc->setup(&bad, &bad.q[bc->queue]);
		for (t = now_s(); now_s() - t < 0.3; sleep_ms(1)) {
			send_frames(&good, 1, 64, &seq1);
			reap_rx(&good, 0, &good_rx, &bad_rx);
		}
		guest_close(&bad);
		sleep_ms(50);
		check_alive(bc->name);
		say("ok: %s\n", bc->name);
	}
	guest_close(&good);
	sleep_ms(100);
	check_alive("all bad guests");

	/*
	 * Two good guests: frames both ways arrive intact. Each sends until the other has 5000
	 * (frames sent before the other guest's link is up are dropped by the dataplane).
	 */
	if (guest_open(&g0, 0, RING_OK) || guest_open(&g1, 1, RING_OK))
		die("good guests cannot connect after the bad ones");
	fill_rx(&g0);
	fill_rx(&g1);
	seq0 = seq1 = 0;
	{
		unsigned got0 = 0, got1 = 0, bad0 = 0, bad1 = 0;

		for (t = now_s(); now_s() - t < 10 && (got0 < 5000 || got1 < 5000); sleep_ms(1)) {
			if (got1 < 5000)
				send_frames(&g0, 0, 32, &seq0);
			if (got0 < 5000)
				send_frames(&g1, 1, 32, &seq1);
			reap_rx(&g1, 0, &got1, &bad1);
			reap_rx(&g0, 1, &got0, &bad0);
		}
		if (bad0 || bad1)
			die("%u + %u frames arrived corrupted", bad0, bad1);
		if (got1 < 5000 || got0 < 5000)
			die("good guests received only %u and %u of 5000 frames", got1, got0);
		say("ok: two good guests exchanged %u + %u frames intact after %zu bad ones\n", got1,
		    got0, sizeof(cases) / sizeof(cases[0]));
	}
	guest_close(&g0);
	guest_close(&g1);
	check_alive("the good guests");

	kill(g_dp, SIGINT);
	if (waitpid(g_dp, &status, 0) != g_dp || !WIFEXITED(status) || WEXITSTATUS(status))
		die("the dataplane did not exit cleanly on SIGINT (status 0x%x)", status);
	g_dp = -1;
	if (g_failures)
		return 1;
	snprintf(path, sizeof(path), "rm -rf %s /var/run/dpdk/rtvmm-bad%d", g_dir, (int)getpid());
	if (system(path) < 0)
		say("cannot remove %s\n", g_dir);
	say("PASS: the dataplane survived every bad guest\n");
	return 0;
}
