/*
 * virtio-blk served by the monitor (vmm/virtio/blk.c), without KVM: guest RAM
 * is a memfd guest_mem, the image a real file in a temporary directory, the
 * rings are laid out by hand (driver_ring.h) with real kick and call eventfds,
 * and the device's own I/O thread serves them through io_uring.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/loop.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <seccomp.h>

#include "app/sandbox.h"
#include "base/vm_limits.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/virtqueue.h"

#include "counters_sink.h"
#include "driver_ring.h"
#include "state_refusals.h"

#define BIT(n) (1ull << (n))

#define RAM_SIZE    (16u << 20)
#define QSIZE       256
#define IMG_SIZE    (1u << 20)
#define IMG_SECTORS (IMG_SIZE / 512)
#define MAXQ        4

static uint64_t ring_gpa(unsigned q) { return 0x100000 + q * 0x10000ull; }
/* Header of the request whose head is `head` on queue q; its status byte 0x20 after it. */
static uint64_t hdr_gpa(unsigned q, uint16_t head) { return 0x200000 + q * 0x10000ull + head * 0x40ull; }
static uint64_t data_gpa(unsigned q) { return 0x400000 + q * 0x100000ull; }
#define UFFD_GPA 0xa00000ull       /* pages never touched before the in-flight test */

static const uint64_t base_features = BIT(VIRTIO_F_VERSION_1);

struct env {
	struct guest_mem mem;
	char dir[64];
	char path[128];
	struct virtio_blk_spec spec;
	struct virtio_dev *dev;
	unsigned nq;
	struct driver_ring r[MAXQ];
	uint16_t next_head[MAXQ];
};

/* The image's byte at `off`: every sector different. */
static uint8_t img_byte(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void make_image(const char *path, size_t size)
{
	uint8_t *buf = malloc(size);
	size_t i;

	assert_non_null(buf);
	for (i = 0; i < size; i++)
		buf[i] = img_byte(i);
	write_file(path, buf, size, 0644);
	free(buf);
}

static uint8_t *at(struct env *env, uint64_t gpa)
{
	return env->mem.base + gpa;
}

static void rings_init(struct env *env)
{
	unsigned i;

	for (i = 0; i < env->nq; i++) {
		driver_ring__init(&env->r[i], &env->mem, ring_gpa(i), QSIZE);
		env->next_head[i] = 0;
	}
}

static void rings_close(struct env *env)
{
	unsigned i;

	for (i = 0; i < env->nq; i++)
		driver_ring__close(&env->r[i]);
}

static struct env *env_new_spec(unsigned queues, bool readonly, const char *serial)
{
	struct env *env = calloc(1, sizeof(*env));
	struct err e = { 0 };

	assert_non_null(env);
	snprintf(env->dir, sizeof(env->dir), "/tmp/rtvmm-blk-XXXXXX");
	assert_non_null(mkdtemp(env->dir));
	snprintf(env->path, sizeof(env->path), "%s/disk.img", env->dir);
	make_image(env->path, IMG_SIZE);
	assert_int_equal(guest_mem__create(&env->mem, RAM_SIZE), 0);
	snprintf(env->spec.name, sizeof(env->spec.name), "disk0");
	snprintf(env->spec.path, sizeof(env->spec.path), "%s", env->path);
	snprintf(env->spec.serial, sizeof(env->spec.serial), "%s", serial);
	env->spec.readonly = readonly;
	env->spec.queues = queues;
	if (virtio_blk__create(&env->spec, &env->mem, &env->dev, &e))
		fail_msg("virtio_blk__create: %s", e.msg);
	env->nq = queues;
	rings_init(env);
	return env;
}

static struct env *env_new(unsigned queues, bool readonly)
{
	return env_new_spec(queues, readonly, "");
}

static void env_activate(struct env *env, uint64_t features)
{
	struct virtio_queue q[MAXQ];
	struct virtio_activation a = { .features = features, .nr_queues = env->nq, .queues = q,
				       .mem = &env->mem };
	unsigned i;

	for (i = 0; i < env->nq; i++)
		q[i] = env->r[i].q;
	assert_int_equal(env->dev->ops->activate(env->dev, &a), 0);
}

/* Waits until a reset is finished, as the transport's status read does. */
static bool env_settled(struct env *env, int timeout_ms)
{
	int k;

	for (k = 0; k < timeout_ms && env->dev->ops->resetting(env->dev); k++)
		usleep(1000);
	return !env->dev->ops->resetting(env->dev);
}

static void env_free(struct env *env)
{
	virtio_blk__destroy(env->dev);
	rings_close(env);
	guest_mem__destroy(&env->mem);
	unlink(env->path);
	rmdir(env->dir);
	free(env);
}

/*
 * Lays a request out on queue `q` as Linux does (header, data segments, status)
 * and makes it available; `writable` data for IN and GET_ID. Returns its head.
 */
static uint16_t post(struct env *env, unsigned q, uint32_t type, uint64_t sector, uint64_t data,
		     const uint32_t *seg, unsigned nseg, bool writable)
{
	struct driver_ring *r = &env->r[q];
	uint16_t head = env->next_head[q], d = head;
	uint64_t hdr = hdr_gpa(q, head);
	struct virtio_blk_req_hdr h = { .type = type, .sector = sector };
	uint64_t off = 0;
	unsigned i;

	memcpy(at(env, hdr), &h, sizeof(h));
	*at(env, hdr + 0x20) = 0xee;
	driver_ring__desc(r, d, hdr, sizeof(h), VRING_DESC_F_NEXT, (uint16_t)(d + 1));
	d++;
	for (i = 0; i < nseg; i++, d++) {
		driver_ring__desc(r, d, data + off, seg[i],
				  VRING_DESC_F_NEXT | (writable ? VRING_DESC_F_WRITE : 0), (uint16_t)(d + 1));
		off += seg[i];
	}
	driver_ring__desc(r, d, hdr + 0x20, 1, VRING_DESC_F_WRITE, 0);
	env->next_head[q] = (uint16_t)((head + 8) % QSIZE);
	driver_ring__publish(r, head);
	return head;
}

/* Kicks queue `q`, waits for its interrupt and checks the last used entry is `head`. */
static uint8_t complete(struct env *env, unsigned q, uint16_t head, uint32_t *used_len)
{
	struct driver_ring *r = &env->r[q];
	uint32_t id, len;
	uint16_t n;

	driver_ring__kick(r);
	if (!driver_ring__wait_call(r, 5000))
		fail_msg("queue %u: no interrupt for head %u", q, head);
	n = driver_ring__used_idx(r);
	assert_true(n > 0);
	driver_ring__used(r, (uint16_t)(n - 1), &id, &len);
	assert_int_equal(id, head);
	if (used_len)
		*used_len = len;
	return *at(env, hdr_gpa(q, head) + 0x20);
}

static uint8_t request(struct env *env, unsigned q, uint32_t type, uint64_t sector,
		       const uint32_t *seg, unsigned nseg, uint32_t *used_len)
{
	uint16_t head = post(env, q, type, sector, data_gpa(q), seg, nseg, type != VIRTIO_BLK_T_OUT);

	return complete(env, q, head, used_len);
}

static void file_bytes(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static struct virtio_blk_stats stats(struct env *env)
{
	struct virtio_blk_stats st;

	virtio_blk__stats(env->dev, &st);
	return st;
}

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- the data path ---- */

static void test_blk_read_returns_the_image_bytes(void **state)
{
	struct env *env = env_new(1, false);
	const uint32_t two[] = { 512, 512 }, one[] = { 512 };
	uint32_t len, i;
	uint8_t *d;

	(void)state;
	env_activate(env, base_features);
	memset(at(env, data_gpa(0)), 0, 4096);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 3, two, 2, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1024 + 1);                  /* data and the status byte */
	d = at(env, data_gpa(0));
	for (i = 0; i < 1024; i++)
		if (d[i] != img_byte(3 * 512 + i))
			fail_msg("byte %u of sectors 3-4: %#x, the image has %#x", i, d[i],
				 img_byte(3 * 512 + i));
	/* The last sector of the image. */
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, one, 1, &len),
			 VIRTIO_BLK_S_OK);
	for (i = 0; i < 512; i++)
		assert_int_equal(d[i], img_byte((IMG_SECTORS - 1) * 512ull + i));
	assert_int_equal(stats(env).reads, 2);
	assert_int_equal(stats(env).bytes_read, 1536);
	assert_true(stats(env).kicks >= 2);
	env_free(env);
}

static void test_blk_write_lands_in_the_image_file(void **state)
{
	struct env *env = env_new(1, false);
	const uint32_t seg[] = { 1024, 512 };
	uint8_t got[1536];
	uint32_t len, i;

	(void)state;
	env_activate(env, base_features);
	for (i = 0; i < sizeof(got); i++)
		at(env, data_gpa(0))[i] = (uint8_t)(0xa5 ^ i);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_OUT, 100, seg, 2, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	file_bytes(env->path, 100 * 512, got, sizeof(got));
	for (i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], (uint8_t)(0xa5 ^ i));
	file_bytes(env->path, 99 * 512, got, 512);    /* the sector before is untouched */
	for (i = 0; i < 512; i++)
		assert_int_equal(got[i], img_byte(99 * 512 + i));
	assert_int_equal(stats(env).writes, 1);
	assert_int_equal(stats(env).bytes_written, 1536);
	env_free(env);
}

static void test_blk_flush_completes_ok(void **state)
{
	struct env *env = env_new(1, false);
	uint32_t len;

	(void)state;
	env_activate(env, base_features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	assert_int_equal(stats(env).flushes, 1);
	assert_int_equal(stats(env).unsupported, 0);
	env_free(env);
}

static void test_blk_get_id_answers_the_serial_nul_padded(void **state)
{
	const uint32_t seg[] = { VIRTIO_BLK_ID_BYTES };
	struct env *env = env_new(1, false);
	uint8_t want[VIRTIO_BLK_ID_BYTES] = "disk0";
	uint32_t len;

	(void)state;
	env_activate(env, base_features);
	memset(at(env, data_gpa(0)), 0xff, 32);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_GET_ID, 0, seg, 1, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(at(env, data_gpa(0)), want, sizeof(want));   /* the name, NUL-padded */
	assert_int_equal(stats(env).get_ids, 1);
	env_free(env);

	/* A serial of the full 20 bytes: no terminator. */
	env = env_new_spec(1, false, "ABCDEFGHIJKLMNOPQRST");
	env_activate(env, base_features);
	memset(at(env, data_gpa(0)), 0xff, 32);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_GET_ID, 0, seg, 1, &len), VIRTIO_BLK_S_OK);
	assert_memory_equal(at(env, data_gpa(0)), "ABCDEFGHIJKLMNOPQRST", VIRTIO_BLK_ID_BYTES);
	assert_int_equal(at(env, data_gpa(0))[VIRTIO_BLK_ID_BYTES], 0xff);
	env_free(env);
}

static void test_blk_sectors_outside_the_image_get_ioerr(void **state)
{
	const uint32_t one[] = { 512 }, two[] = { 512, 512 }, odd[] = { 100 };
	struct env *env = env_new(1, false);
	uint8_t got[512];
	uint32_t len, i;

	(void)state;
	env_activate(env, base_features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, IMG_SECTORS, one, 1, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, two, 2, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, UINT64_MAX, one, 1, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, one, 1, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 0, odd, 1, NULL), VIRTIO_BLK_S_IOERR);
	/* A write past the end changes nothing. */
	memset(at(env, data_gpa(0)), 0x5a, 1024);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_OUT, IMG_SECTORS - 1, two, 2, NULL),
			 VIRTIO_BLK_S_IOERR);
	file_bytes(env->path, (IMG_SECTORS - 1) * 512ull, got, sizeof(got));
	for (i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], img_byte((IMG_SECTORS - 1) * 512ull + i));
	assert_int_equal(stats(env).io_errors, 6);
	assert_int_equal(stats(env).reads + stats(env).writes, 0);
	env_free(env);
}

static void test_blk_unknown_request_types_get_unsupp(void **state)
{
	const uint32_t types[] = { VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, 99, 0x80000000u };
	const uint32_t seg[] = { 512 };
	struct env *env = env_new(1, false);
	unsigned i;

	(void)state;
	env_activate(env, base_features);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		assert_int_equal(request(env, 0, types[i], 0, seg, 1, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(stats(env).unsupported, 4);
	env_free(env);
}

static void test_blk_readonly_refuses_writes_with_ioerr(void **state)
{
	const uint32_t seg[] = { 512 };
	struct env *env = env_new(1, true);
	uint8_t got[512];
	unsigned i;

	(void)state;
	assert_true(env->dev->ops->features(env->dev) & BIT(VIRTIO_BLK_F_RO));
	env_activate(env, base_features | BIT(VIRTIO_BLK_F_RO));
	memset(at(env, data_gpa(0)), 0x77, 512);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_OUT, 5, seg, 1, NULL), VIRTIO_BLK_S_IOERR);
	file_bytes(env->path, 5 * 512, got, sizeof(got));
	for (i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], img_byte(5 * 512 + i));
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 5, seg, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(at(env, data_gpa(0))[0], img_byte(5 * 512));
	assert_int_equal(stats(env).writes, 0);
	assert_int_equal(stats(env).io_errors, 1);
	assert_string_equal(stats(env).last_error, "");   /* refused, not tried and failed */
	env_free(env);
}

static void test_blk_header_split_across_buffers_and_indirect_tables_are_served(void **state)
{
	struct env *env = env_new(1, false);
	struct driver_ring *r = &env->r[0];
	struct virtio_blk_req_hdr h = { .type = VIRTIO_BLK_T_IN, .sector = 7 };
	uint64_t hdr = hdr_gpa(0, 0), table = 0x300000, data = data_gpa(0);
	uint32_t len;
	unsigned i;

	(void)state;
	env_activate(env, base_features | BIT(VIRTIO_RING_F_INDIRECT_DESC));
	/* Header in two pieces (6 + 10 bytes), data in two, status: through one indirect table. */
	memcpy(at(env, hdr), &h, 6);
	memcpy(at(env, hdr + 0x100), (uint8_t *)&h + 6, 10);
	*at(env, hdr + 0x20) = 0xee;
	{
		const struct { uint64_t a; uint32_t l; uint16_t f, n; } d[5] = {
			{ hdr, 6, VRING_DESC_F_NEXT, 1 },
			{ hdr + 0x100, 10, VRING_DESC_F_NEXT, 2 },
			{ data, 300, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3 },
			{ data + 300, 212, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 4 },
			{ hdr + 0x20, 1, VRING_DESC_F_WRITE, 0 },
		};

		for (i = 0; i < 5; i++) {
			memcpy(at(env, table + 16 * i), &d[i].a, 8);
			memcpy(at(env, table + 16 * i + 8), &d[i].l, 4);
			memcpy(at(env, table + 16 * i + 12), &d[i].f, 2);
			memcpy(at(env, table + 16 * i + 14), &d[i].n, 2);
		}
	}
	driver_ring__desc(r, 0, table, 16 * 5, VRING_DESC_F_INDIRECT, 0);
	driver_ring__publish(r, 0);
	assert_int_equal(complete(env, 0, 0, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 513);
	for (i = 0; i < 512; i++)
		assert_int_equal(at(env, data)[i], img_byte(7 * 512 + i));
	env_free(env);
}

/* ---- a guest that sends garbage ---- */

static void test_blk_bad_chains_stop_the_queue_without_crash(void **state)
{
	static const struct {
		const char *what;
		uint64_t data;
		uint32_t len;
		uint16_t data_flags;
		bool status;
	} bad[] = {
		{ "buffer outside guest RAM", RAM_SIZE + 0x1000, 512, VRING_DESC_F_WRITE, true },
		{ "buffer outside guest RAM", RAM_SIZE - 256, 512, VRING_DESC_F_WRITE, true },
		{ "no device-writable status byte", 0x400000, 512, 0, false },
		{ "request header shorter than 16 bytes", 0, 0, 0, true },
	};
	const uint32_t seg[] = { 512 };
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct env *env = env_new(1, false);
		struct driver_ring *r = &env->r[0];
		uint64_t hdr = hdr_gpa(0, 0);
		struct virtio_blk_req_hdr h = { .type = VIRTIO_BLK_T_IN };
		struct virtio_blk_stats st;
		uint16_t head;

		env_activate(env, base_features);
		memcpy(at(env, hdr), &h, sizeof(h));
		*at(env, hdr + 0x20) = 0xee;
		if (bad[i].len) {
			driver_ring__desc(r, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
			driver_ring__desc(r, 1, bad[i].data, bad[i].len,
					  bad[i].data_flags | (bad[i].status ? VRING_DESC_F_NEXT : 0), 2);
		} else {
			driver_ring__desc(r, 0, hdr, 8, VRING_DESC_F_NEXT, 2);   /* half a header */
		}
		driver_ring__desc(r, 2, hdr + 0x20, 1, VRING_DESC_F_WRITE, 0);
		driver_ring__publish(r, 0);
		driver_ring__kick(r);
		for (int k = 0; k < 2000 && !stats(env).bad_chains; k++)
			usleep(1000);
		st = stats(env);
		assert_int_equal(st.bad_chains, 1);
		if (!strstr(st.last_error, bad[i].what) || !strstr(st.last_error, "queue 0"))
			fail_msg("case %u: last error '%s' does not say '%s'", i, st.last_error,
				 bad[i].what);
		assert_int_equal(driver_ring__used_idx(r), 0);
		assert_int_equal(*at(env, hdr + 0x20), 0xee);
		/* The queue stopped: a good request now is not served... */
		env->next_head[0] = 8;
		head = post(env, 0, VIRTIO_BLK_T_IN, 0, data_gpa(0), seg, 1, true);
		driver_ring__kick(r);
		assert_false(driver_ring__wait_call(r, 200));
		assert_int_equal(driver_ring__used_idx(r), 0);
		/* ...until the driver resets the device and sets it up again. */
		env->dev->ops->reset(env->dev);
		assert_true(env_settled(env, 5000));
		rings_close(env);
		rings_init(env);
		env_activate(env, base_features);
		head = post(env, 0, VIRTIO_BLK_T_IN, 0, data_gpa(0), seg, 1, true);
		assert_int_equal(complete(env, 0, head, NULL), VIRTIO_BLK_S_OK);
		env_free(env);
	}
}

static void test_blk_avail_index_running_ahead_is_a_bad_chain(void **state)
{
	struct env *env = env_new(1, false);
	uint16_t idx = QSIZE + 5;

	(void)state;
	env_activate(env, base_features);
	memcpy(at(env, env->r[0].q.driver + 2), &idx, 2);
	driver_ring__kick(&env->r[0]);
	for (int k = 0; k < 2000 && !stats(env).bad_chains; k++)
		usleep(1000);
	assert_int_equal(stats(env).bad_chains, 1);
	assert_non_null(strstr(stats(env).last_error, "available index ran ahead of the ring"));
	env_free(env);
}

static void test_blk_activation_with_a_ring_outside_guest_ram_is_refused(void **state)
{
	struct env *env = env_new(1, false);
	struct virtio_queue q = env->r[0].q;
	struct virtio_activation a = { .features = base_features, .nr_queues = 1, .queues = &q,
				       .mem = &env->mem };

	(void)state;
	q.device = RAM_SIZE - 8;
	assert_true(env->dev->ops->activate(env->dev, &a) < 0);
	assert_false(env->dev->ops->resetting(env->dev));
	env_free(env);
}

/* ---- queues, interrupts, reset ---- */

static void test_blk_serves_two_queues(void **state)
{
	struct env *env = env_new(2, false);
	const uint32_t seg[] = { 512 };
	struct virtio_blk_config cfg;
	uint16_t h0, h1;
	unsigned i, fds;

	(void)state;
	assert_true(env->dev->ops->features(env->dev) & BIT(VIRTIO_BLK_F_MQ));
	assert_int_equal(env->dev->max_queues, 2);
	env->dev->ops->config_read(env->dev, 0, &cfg, sizeof(cfg));
	assert_int_equal(cfg.num_queues, 2);
	fds = count_fds();
	env_activate(env, base_features | BIT(VIRTIO_BLK_F_MQ));
	assert_int_equal(count_fds(), fds + 4);            /* each queue's kick and call, duplicated */
	memset(at(env, data_gpa(0)), 0x31, 512);
	h0 = post(env, 0, VIRTIO_BLK_T_OUT, 40, data_gpa(0), seg, 1, false);
	h1 = post(env, 1, VIRTIO_BLK_T_IN, 41, data_gpa(1), seg, 1, true);
	assert_int_equal(complete(env, 1, h1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(complete(env, 0, h0, NULL), VIRTIO_BLK_S_OK);
	for (i = 0; i < 512; i++)
		assert_int_equal(at(env, data_gpa(1))[i], img_byte(41 * 512 + i));
	/* Queue 1 reads what queue 0 wrote. */
	h1 = post(env, 1, VIRTIO_BLK_T_IN, 40, data_gpa(1), seg, 1, true);
	assert_int_equal(complete(env, 1, h1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(at(env, data_gpa(1))[0], 0x31);
	assert_int_equal(driver_ring__used_idx(&env->r[0]), 1);
	assert_int_equal(driver_ring__used_idx(&env->r[1]), 2);
	/* A reset lets both queues go (their duplicated eventfds closed); both serve again. */
	env->dev->ops->reset(env->dev);
	assert_true(env_settled(env, 5000));
	assert_int_equal(count_fds(), fds);
	rings_close(env);
	rings_init(env);
	env_activate(env, base_features | BIT(VIRTIO_BLK_F_MQ));
	h0 = post(env, 0, VIRTIO_BLK_T_IN, 40, data_gpa(0), seg, 1, true);
	h1 = post(env, 1, VIRTIO_BLK_T_IN, 40, data_gpa(1), seg, 1, true);
	assert_int_equal(complete(env, 0, h0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(complete(env, 1, h1, NULL), VIRTIO_BLK_S_OK);
	env_free(env);
}

static void test_blk_interrupts_follow_event_idx_and_no_interrupt(void **state)
{
	const uint32_t seg[] = { 512 };
	struct env *env = env_new(1, false);
	struct driver_ring *r = &env->r[0];
	uint16_t head;

	(void)state;
	env_activate(env, base_features | BIT(VIRTIO_RING_F_EVENT_IDX));
	driver_ring__set_used_event(r, 0);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 0, seg, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(driver_ring__avail_event(r), 1);   /* kick me at the next entry */
	/* used_event 5: entries 1..4 complete without an interrupt, entry 5 with one. */
	driver_ring__set_used_event(r, 5);
	for (uint16_t n = 1; n < 5; n++) {
		head = post(env, 0, VIRTIO_BLK_T_IN, n, data_gpa(0), seg, 1, true);
		driver_ring__kick(r);
		assert_true(driver_ring__wait_used(r, (uint16_t)(n + 1), 5000));
		assert_false(driver_ring__wait_call(r, 50));
	}
	head = post(env, 0, VIRTIO_BLK_T_IN, 5, data_gpa(0), seg, 1, true);
	assert_int_equal(complete(env, 0, head, NULL), VIRTIO_BLK_S_OK);
	env_free(env);

	/* Without EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT holds them back. */
	env = env_new(1, false);
	r = &env->r[0];
	env_activate(env, base_features);
	driver_ring__set_avail_flags(r, VRING_AVAIL_F_NO_INTERRUPT);
	head = post(env, 0, VIRTIO_BLK_T_IN, 0, data_gpa(0), seg, 1, true);
	driver_ring__kick(r);
	assert_true(driver_ring__wait_used(r, 1, 5000));
	assert_false(driver_ring__wait_call(r, 50));
	driver_ring__set_avail_flags(r, 0);
	head = post(env, 0, VIRTIO_BLK_T_IN, 1, data_gpa(0), seg, 1, true);
	assert_int_equal(complete(env, 0, head, NULL), VIRTIO_BLK_S_OK);
	env_free(env);
}

/*
 * A request whose data is in guest pages under userfaultfd stays in flight
 * until the test resolves the fault: meanwhile a reset must not finish, and
 * once it has, nothing reached the reset rings. A read faults on the I/O
 * thread itself (io_uring copies page-cache hits inline); a buffered write to
 * ext4 goes to an io_uring worker, which faults while the I/O thread has
 * already let the rings go: then only the in-flight count holds the reset.
 * Returns false when userfaultfd is not available.
 */
static bool reset_with_request_in_flight(uint32_t type, uint64_t gpa)
{
	const uint32_t seg[] = { 8192 };
	struct env *env = env_new(1, false);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy;
	struct pollfd p = { .events = POLLIN };
	bool faulted, resetting_at_once, resetting_later;
	static uint8_t zero[8192] __attribute__((aligned(4096)));
	uint8_t *pages = at(env, gpa);
	int uffd;

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		fprintf(stderr, "no userfaultfd here (%s): cannot hold a request in flight\n",
			strerror(errno));
		env_free(env);
		return false;
	}
	reg.range = (struct uffdio_range){ (uintptr_t)pages, sizeof(zero) };
	assert_int_equal(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
	env_activate(env, base_features);
	post(env, 0, type, 4, gpa, seg, 1, type == VIRTIO_BLK_T_IN);
	driver_ring__kick(&env->r[0]);
	p.fd = uffd;
	faulted = poll(&p, 1, 5000) == 1;      /* the request touches guest RAM, and waits */
	env->dev->ops->reset(env->dev);
	resetting_at_once = env->dev->ops->resetting(env->dev);
	usleep(100000);
	resetting_later = env->dev->ops->resetting(env->dev);
	/* Let the request finish (before any assert: the I/O thread may be the one waiting). */
	copy = (struct uffdio_copy){ .dst = (uintptr_t)pages, .src = (uintptr_t)zero,
				     .len = sizeof(zero) };
	assert_int_equal(ioctl(uffd, UFFDIO_COPY, &copy), 0);
	assert_true(faulted);
	assert_true(resetting_at_once);
	assert_true(resetting_later);
	assert_true(env_settled(env, 5000));
	/* The reset driver's rings heard nothing: no used entry, no status, no interrupt. */
	assert_int_equal(driver_ring__used_idx(&env->r[0]), 0);
	assert_int_equal(*at(env, hdr_gpa(0, 0) + 0x20), 0xee);
	assert_false(driver_ring__wait_call(&env->r[0], 50));
	assert_int_equal(stats(env).reads + stats(env).writes, 0);
	close(uffd);

	/* And the device serves the next activation. */
	rings_close(env);
	rings_init(env);
	env_activate(env, base_features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 4, (const uint32_t[]){ 512 }, 1, NULL),
			 VIRTIO_BLK_S_OK);
	env_free(env);
	return true;
}

static void test_blk_reset_finishes_only_when_requests_in_flight_are_done(void **state)
{
	(void)state;
	if (!reset_with_request_in_flight(VIRTIO_BLK_T_IN, UFFD_GPA))
		skip();
	assert_true(reset_with_request_in_flight(VIRTIO_BLK_T_OUT, UFFD_GPA + 0x10000));
}

/* ---- snapshot ---- */

/* The transport's DRIVER_OK from a loaded snapshot: the device resumes its rings. */
static int env_activate_resume(struct env *env, uint64_t features)
{
	struct virtio_queue q[MAXQ];
	struct virtio_activation a = { .features = features, .nr_queues = env->nq, .queues = q,
				       .mem = &env->mem, .resume = true };
	unsigned i;

	for (i = 0; i < env->nq; i++)
		q[i] = env->r[i].q;
	return env->dev->ops->activate(env->dev, &a);
}

/* The source's disk goes (its image lock with it); a fresh one as the builder makes it, same RAM. */
static void env_rebuild_device(struct env *env)
{
	struct err e = { 0 };

	virtio_blk__destroy(env->dev);
	if (virtio_blk__create(&env->spec, &env->mem, &env->dev, &e))
		fail_msg("virtio_blk__create: %s", e.msg);
}

struct freezer {
	struct virtio_dev *dev;
	int ret;
	bool done;
};

static void *freeze_thread(void *arg)
{
	struct freezer *f = arg;

	f->ret = virtio_blk__device_ops.freeze(f->dev);
	__atomic_store_n(&f->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A request held in flight by userfaultfd when the freeze comes: freeze waits
 * for it, and when freeze returns it is in the used ring with its status and
 * interrupt; a request queued while frozen is not taken until the thaw.
 * Returns false when userfaultfd is not available.
 */
static bool freeze_with_request_in_flight(uint32_t type, uint64_t gpa)
{
	const uint32_t seg[] = { 8192 }, one[] = { 512 };
	struct env *env = env_new(1, false);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy;
	struct pollfd p = { .events = POLLIN };
	static uint8_t zero[8192] __attribute__((aligned(4096)));
	struct freezer f = { 0 };
	uint8_t *pages = at(env, gpa);
	bool faulted, waited;
	uint16_t head, head2;
	uint32_t id, len;
	pthread_t t;
	int uffd;

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		fprintf(stderr, "no userfaultfd here (%s): cannot hold a request in flight\n",
			strerror(errno));
		env_free(env);
		return false;
	}
	reg.range = (struct uffdio_range){ (uintptr_t)pages, sizeof(zero) };
	assert_int_equal(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
	env_activate(env, base_features);
	head = post(env, 0, type, 4, gpa, seg, 1, type == VIRTIO_BLK_T_IN);
	driver_ring__kick(&env->r[0]);
	p.fd = uffd;
	faulted = poll(&p, 1, 5000) == 1;      /* the request touches guest RAM, and waits */
	f.dev = env->dev;
	assert_int_equal(pthread_create(&t, NULL, freeze_thread, &f), 0);
	usleep(100000);
	waited = !__atomic_load_n(&f.done, __ATOMIC_ACQUIRE);
	/* Let the request finish (before any assert: the I/O thread may be the one waiting). */
	copy = (struct uffdio_copy){ .dst = (uintptr_t)pages, .src = (uintptr_t)zero,
				     .len = sizeof(zero) };
	assert_int_equal(ioctl(uffd, UFFDIO_COPY, &copy), 0);
	pthread_join(t, NULL);
	assert_true(faulted);
	assert_true(waited);
	assert_int_equal(f.ret, 0);
	/* Freeze returned: the request is used, its status written, its interrupt sent. */
	assert_int_equal(driver_ring__used_idx(&env->r[0]), 1);
	driver_ring__used(&env->r[0], 0, &id, &len);
	assert_int_equal(id, head);
	assert_int_equal(*at(env, hdr_gpa(0, head) + 0x20), VIRTIO_BLK_S_OK);
	assert_true(driver_ring__wait_call(&env->r[0], 0));
	/* Frozen: what the driver queues now waits. */
	head2 = post(env, 0, VIRTIO_BLK_T_IN, 9, data_gpa(0), one, 1, true);
	driver_ring__kick(&env->r[0]);
	usleep(100000);
	assert_int_equal(driver_ring__used_idx(&env->r[0]), 1);
	assert_int_equal(*at(env, hdr_gpa(0, head2) + 0x20), 0xee);
	/* Thawed: it is served, nothing lost. */
	assert_int_equal(virtio_blk__device_ops.thaw(env->dev), 0);
	assert_true(driver_ring__wait_used(&env->r[0], 2, 5000));
	driver_ring__used(&env->r[0], 1, &id, &len);
	assert_int_equal(id, head2);
	assert_int_equal(*at(env, hdr_gpa(0, head2) + 0x20), VIRTIO_BLK_S_OK);
	close(uffd);
	env_free(env);
	return true;
}

static void test_blk_freeze_completes_requests_in_flight_and_takes_no_new_one(void **state)
{
	(void)state;
	if (!freeze_with_request_in_flight(VIRTIO_BLK_T_IN, UFFD_GPA))
		skip();
	assert_true(freeze_with_request_in_flight(VIRTIO_BLK_T_OUT, UFFD_GPA + 0x10000));
}

/*
 * Frozen and saved with requests served and one made available but never
 * kicked; a fresh disk over the same RAM and image loads it and, once the
 * transport's resuming DRIVER_OK came and the VM thawed it (not before),
 * takes that one into the next used entry.
 */
static void test_blk_snapshot_round_trip_resumes_the_rings_where_they_stood(void **state)
{
	const uint64_t features = base_features | BIT(VIRTIO_BLK_F_MQ);
	const uint32_t one[] = { 512 };
	struct env *env = env_new(2, false);
	char why[STATE_WHY_LEN];
	struct state_out saved;
	uint16_t head;
	uint32_t id, len;

	(void)state;
	env_activate(env, features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 1, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 2, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(env, 1, VIRTIO_BLK_T_IN, 3, one, 1, NULL), VIRTIO_BLK_S_OK);
	head = post(env, 0, VIRTIO_BLK_T_IN, 5, data_gpa(0), one, 1, true);
	assert_int_equal(virtio_blk__device_ops.freeze(env->dev), 0);
	saved = state_save(&virtio_blk__device_ops, env->dev);
	assert_int_equal(driver_ring__used_idx(&env->r[0]), 2);

	env_rebuild_device(env);
	/* Without a loaded state a resuming DRIVER_OK is refused. */
	assert_int_equal(env_activate_resume(env, features), -EINVAL);
	assert_int_equal(state_load(&virtio_blk__device_ops, env->dev, saved.buf, saved.len, why), 0);
	/* Another activation than the snapshot's (other features) is refused too. */
	assert_int_equal(env_activate_resume(env, base_features), -EINVAL);
	assert_int_equal(state_load(&virtio_blk__device_ops, env->dev, saved.buf, saved.len, why), 0);
	assert_int_equal(env_activate_resume(env, features), 0);
	/* Loaded and activated, the disk stays frozen until the VM's thaw: no request is taken. */
	assert_false(driver_ring__wait_used(&env->r[0], 3, 300));
	assert_false(driver_ring__wait_call(&env->r[0], 50));
	assert_int_equal(stats(env).reads + stats(env).writes, 0);
	assert_int_equal(virtio_blk__device_ops.thaw(env->dev), 0);
	/* The request the source never took is taken now, into used entry 2, not 0. */
	assert_true(driver_ring__wait_used(&env->r[0], 3, 5000));
	driver_ring__used(&env->r[0], 2, &id, &len);
	assert_int_equal(id, head);
	assert_int_equal(*at(env, hdr_gpa(0, head) + 0x20), VIRTIO_BLK_S_OK);
	assert_true(driver_ring__wait_call(&env->r[0], 5000));
	assert_int_equal(driver_ring__used_idx(&env->r[1]), 1);
	/* And the rings go on from there. */
	assert_int_equal(request(env, 1, VIRTIO_BLK_T_IN, 4, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(driver_ring__used_idx(&env->r[1]), 2);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 6, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(driver_ring__used_idx(&env->r[0]), 4);
	/* The load served one activation: the driver's next is a new one. */
	env->dev->ops->reset(env->dev);
	assert_true(env_settled(env, 5000));
	assert_int_equal(env_activate_resume(env, features), -EINVAL);
	state_out__free(&saved);
	env_free(env);
}

/* Offsets in the disk's state (see blk_device_save). */
#define BST_READONLY 10
#define BST_CAPACITY 11
#define BST_FEATURES 20
#define BST_QUEUE0   28

static void test_blk_snapshot_hostile_states_are_refused(void **state)
{
	const struct device_ops *ops = &virtio_blk__device_ops;
	const uint32_t one[] = { 512 };
	struct env *env = env_new(1, false);
	struct state_out saved;

	(void)state;
	env_activate(env, base_features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 1, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(ops->freeze(env->dev), 0);
	saved = state_save(ops, env->dev);
	assert_int_equal(saved.len, BST_QUEUE0 + 5);
	env_rebuild_device(env);
	assert_state_length_exact(ops, env->dev, &saved);
	assert_state_byte_refused(ops, env->dev, &saved, 0, 7, "version");
	assert_state_byte_refused(ops, env->dev, &saved, 5, 0, "kind");
	assert_state_byte_refused(ops, env->dev, &saved, 8, 2, "2 queues");
	assert_state_byte_refused(ops, env->dev, &saved, BST_READONLY, 1, "readonly");
	assert_state_byte_refused(ops, env->dev, &saved, BST_READONLY, 2, "neither 0 nor 1");
	assert_state_byte_refused(ops, env->dev, &saved, BST_CAPACITY, 1, "sectors");
	/* VIRTIO_BLK_F_RO (bit 5) on a writable disk. */
	assert_state_byte_refused(ops, env->dev, &saved, BST_FEATURES, 0x20, "feature bit 5");
	/* The next available entry 0x8001 with 1 used: more than a ring holds. */
	assert_state_byte_refused(ops, env->dev, &saved, BST_QUEUE0 + 1, 0x80, "past");
	/* Refused states leave nothing for a resuming activation. */
	assert_int_equal(env_activate_resume(env, base_features), -EINVAL);
	state_out__free(&saved);
	env_free(env);
}

/*
 * The ring's workers run on the CPUs the I/O thread was placed on (Linux 6.1
 * would give them every CPU of the node): a write held in flight by
 * userfaultfd keeps its worker alive while the test reads its CPU list.
 */
static void test_blk_io_workers_run_where_the_io_thread_runs(void **state)
{
	const uint32_t seg[] = { 4096 };
	struct env *env;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy;
	struct pollfd p = { .events = POLLIN };
	static uint8_t zero[4096] __attribute__((aligned(4096)));
	char path[300], line[128], want[32], got[4][128], prefix[32];
	unsigned workers = 0, i;
	cpu_set_t one;
	struct dirent *d;
	uint8_t *page;
	bool faulted;
	pid_t tid;
	long cpu;
	DIR *dir;
	int uffd;

	(void)state;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip();
	env = env_new(1, false);
	page = at(env, UFFD_GPA + 0x20000);
	tid = virtio_blk__io_tid(env->dev);
	cpu = sysconf(_SC_NPROCESSORS_ONLN) - 1;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	assert_int_equal(sched_setaffinity(tid, sizeof(one), &one), 0);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		env_free(env);
		skip();
	}
	reg.range = (struct uffdio_range){ (uintptr_t)page, sizeof(zero) };
	assert_int_equal(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
	env_activate(env, base_features);
	post(env, 0, VIRTIO_BLK_T_OUT, 8, UFFD_GPA + 0x20000, seg, 1, false);
	driver_ring__kick(&env->r[0]);
	p.fd = uffd;
	faulted = poll(&p, 1, 5000) == 1;
	snprintf(prefix, sizeof(prefix), "iou-wrk-%d\n", (int)tid);
	dir = opendir("/proc/self/task");
	while (dir && (d = readdir(dir)) && workers < 4) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f) && !strcmp(line, prefix)) {
			fclose(f);
			snprintf(path, sizeof(path), "/proc/self/task/%s/status", d->d_name);
			f = fopen(path, "r");
			while (f && fgets(line, sizeof(line), f))
				if (!strncmp(line, "Cpus_allowed_list:", 18)) {
					line[strcspn(line, "\n")] = '\0';
					snprintf(got[workers++], sizeof(got[0]), "%s",
						 line + 18 + strspn(line + 18, " \t"));
				}
		}
		if (f)
			fclose(f);
	}
	if (dir)
		closedir(dir);
	copy = (struct uffdio_copy){ .dst = (uintptr_t)page, .src = (uintptr_t)zero,
				     .len = sizeof(zero) };
	assert_int_equal(ioctl(uffd, UFFDIO_COPY, &copy), 0);
	assert_true(driver_ring__wait_used(&env->r[0], 1, 5000));
	close(uffd);
	assert_true(faulted);
	if (!workers)
		fail_msg("no io_uring worker of the I/O thread held the write");
	snprintf(want, sizeof(want), "%ld", cpu);
	for (i = 0; i < workers; i++)
		if (strcmp(got[i], want))
			fail_msg("a worker may run on CPUs %s, the I/O thread on %ld only", got[i], cpu);
	env_free(env);
}

/* ---- the device's face ---- */

static void test_blk_features_and_config_space(void **state)
{
	struct env *env = env_new(1, false);
	uint64_t f = env->dev->ops->features(env->dev);
	struct virtio_blk_config cfg;
	uint32_t v = 0x12345678, seg_max;

	(void)state;
	assert_true(f & BIT(VIRTIO_BLK_F_SEG_MAX));
	assert_true(f & BIT(VIRTIO_BLK_F_BLK_SIZE));
	assert_true(f & BIT(VIRTIO_BLK_F_FLUSH));
	assert_true(f & BIT(VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(f & BIT(VIRTIO_RING_F_EVENT_IDX));
	assert_false(f & (BIT(VIRTIO_BLK_F_RO) | BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_BLK_F_CONFIG_WCE) |
			  BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES)));
	assert_int_equal(env->dev->device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(env->dev->config_size, sizeof(cfg));
	env->dev->ops->config_read(env->dev, 0, &cfg, sizeof(cfg));
	assert_int_equal(cfg.capacity, IMG_SECTORS);
	assert_int_equal(cfg.seg_max, env->dev->queue_max_size - 2);
	assert_int_equal(cfg.blk_size, 512);
	assert_int_equal(cfg.num_queues, 1);
	/* Config writes are ignored; reads past the end are zero. */
	env->dev->ops->config_write(env->dev, offsetof(struct virtio_blk_config, seg_max), &v, 4);
	env->dev->ops->config_read(env->dev, offsetof(struct virtio_blk_config, seg_max), &seg_max, 4);
	assert_int_equal(seg_max, env->dev->queue_max_size - 2);
	v = 0xffffffff;
	env->dev->ops->config_read(env->dev, sizeof(cfg) - 2, &v, 4);
	assert_int_equal(v, 1);      /* num_queues' two bytes, then zeros */
	assert_int_equal(stats(env).capacity, IMG_SECTORS);
	env_free(env);
}

static void test_blk_io_thread_is_named_after_the_disk(void **state)
{
	struct env *env = env_new(1, false);
	char path[64], comm[32] = "";
	pid_t tid = virtio_blk__io_tid(env->dev);
	FILE *f;

	(void)state;
	assert_true(tid > 0 && tid != getpid());
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof(comm), f));
	fclose(f);
	assert_string_equal(comm, "io-disk0\n");
	env_free(env);
}

static void test_blk_report_line_names_the_counters(void **state)
{
	const uint32_t seg[] = { 512 };
	struct env *env = env_new(1, false);
	char buf[1024] = "";
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	env_activate(env, base_features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 0, seg, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(env, 0, 42, 0, seg, 1, NULL), VIRTIO_BLK_S_UNSUPP);
	env->dev->ops->report(env->dev, f, "TRANSPORT");
	fclose(f);
	if (!strstr(buf, "2048 sectors, reads 1 (512 bytes), writes 0 (0 bytes), flushes 0, "
		    "get-id 0, I/O errors 0, unsupported 1, bad chains 0, kicks ") ||
	    !strstr(buf, "; TRANSPORT") || strstr(buf, "last error"))
		fail_msg("report: %s", buf);
	env_free(env);
}

/* vm.counters: each request the I/O thread served moves its counter, read while the device runs. */
static void test_blk_counters_move_with_each_request_served(void **state)
{
	const uint32_t one[] = { 512 }, two[] = { 512, 512 };
	struct env *env = env_new(1, false);
	struct counters c;
	struct counter_sink sink = counters_sink(&c);

	(void)state;
	env->dev->ops->counters(env->dev, &sink);
	assert_int_equal(counters_num(&c, "capacity_sectors"), IMG_SECTORS);
	assert_string_equal(counters_str(&c, "mode"), "read-write");
	assert_int_equal(counters_num(&c, "reads"), 0);
	assert_false(counters_has(&c, "last_error"));
	env_activate(env, base_features);

	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 0, one, 1, NULL), VIRTIO_BLK_S_OK);
	sink = counters_sink(&c);
	env->dev->ops->counters(env->dev, &sink);
	assert_int_equal(counters_num(&c, "reads"), 1);
	assert_int_equal(counters_num(&c, "bytes_read"), 512);
	assert_true(counters_num(&c, "kicks") >= 1);

	assert_int_equal(request(env, 0, VIRTIO_BLK_T_OUT, 8, two, 2, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(env, 0, 42, 0, one, 1, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, IMG_SECTORS, one, 1, NULL), VIRTIO_BLK_S_IOERR);
	sink = counters_sink(&c);
	env->dev->ops->counters(env->dev, &sink);
	assert_int_equal(counters_num(&c, "reads"), 1);
	assert_int_equal(counters_num(&c, "writes"), 1);
	assert_int_equal(counters_num(&c, "bytes_written"), 1024);
	assert_int_equal(counters_num(&c, "flushes"), 1);
	assert_int_equal(counters_num(&c, "unsupported"), 1);
	assert_int_equal(counters_num(&c, "io_errors"), 1);
	assert_int_equal(counters_num(&c, "bad_chains"), 0);
	assert_true(counters_num(&c, "kicks") >= 5);
	env_free(env);
}

/* ---- the image checks ---- */

/* Tries to create a disk on `path`; returns the error code with its message in `msg`. */
static int try_create(const char *path, bool readonly, char *msg, size_t len)
{
	struct virtio_blk_spec spec = { .name = "disk1", .readonly = readonly, .queues = 1 };
	struct guest_mem mem;
	struct virtio_dev *dev = NULL;
	struct err e = { 0 };
	int err;

	assert_int_equal(guest_mem__create(&mem, 1 << 20), 0);
	snprintf(spec.path, sizeof(spec.path), "%s", path);
	err = virtio_blk__create(&spec, &mem, &dev, &e);
	if (!err)
		virtio_blk__destroy(dev);
	snprintf(msg, len, "%s", e.msg);
	guest_mem__destroy(&mem);
	return err;
}

static void expect_refused(const char *path, bool readonly, int code, const char *words)
{
	char msg[512];
	int err = try_create(path, readonly, msg, sizeof(msg));

	if (err != code || !strstr(msg, words) || !strstr(msg, path) || !strstr(msg, "disk 'disk1'"))
		fail_msg("%s: got %d '%s', want %d with '%s' and the path", path, err, msg, code, words);
}

static void test_blk_image_checks_name_the_path_and_the_reason(void **state)
{
	char dir[64] = "/tmp/rtvmm-blk-XXXXXX", p[128], msg[512];
	uint8_t qcow[4096] = "QFI\xfb";
	static uint8_t zeros[4096];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/missing.img", dir);
	expect_refused(p, false, -ENOENT, "no such file");
	expect_refused(dir, false, -EISDIR, "is a directory");
	snprintf(p, sizeof(p), "%s/small.img", dir);
	write_file(p, zeros, 100, 0644);
	expect_refused(p, false, -EINVAL, "is 100 bytes, smaller than one 512-byte sector");
	unlink(p);
	snprintf(p, sizeof(p), "%s/empty.img", dir);
	write_file(p, zeros, 0, 0644);
	expect_refused(p, true, -EINVAL, "is 0 bytes, smaller than one 512-byte sector");
	unlink(p);
	snprintf(p, sizeof(p), "%s/disk.qcow2", dir);
	write_file(p, qcow, sizeof(qcow), 0644);
	expect_refused(p, true, -EINVAL, "is a qcow2 image: rtvmm serves raw images; use "
		       "qemu-storage-daemon's vhost-user-blk export, or convert with qemu-img "
		       "convert -O raw");
	unlink(p);
	snprintf(p, sizeof(p), "%s/ro.img", dir);
	write_file(p, zeros, sizeof(zeros), 0444);
	expect_refused(p, false, -EROFS, "is a read-only file (mode 0444, no write permission): "
		       "open it with readonly=on");
	assert_int_equal(try_create(p, true, msg, sizeof(msg)), 0);       /* as it says */
	unlink(p);
	snprintf(p, sizeof(p), "%s/fifo", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_refused(p, false, -EINVAL, "is neither a regular file nor a block device");
	unlink(p);
	rmdir(dir);
}

/* An image rtvmm's user cannot read: as root, checked as nobody in a child. */
static void test_blk_unreadable_image_is_refused(void **state)
{
	char dir[64] = "/tmp/rtvmm-blk-XXXXXX", p[128], msg[512] = "";
	static uint8_t zeros[4096];
	struct passwd *pw = getpwnam("nobody");
	int pipefd[2], status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/secret.img", dir);
	write_file(p, zeros, sizeof(zeros), 0000);
	if (geteuid() != 0) {
		expect_refused(p, true, -EACCES, "is unreadable: permission denied");
	} else {
		assert_non_null(pw);
		assert_int_equal(pipe(pipefd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int err;

			if (setgroups(0, NULL) || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) ||
			    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid))
				_exit(90);
			err = try_create(p, true, msg, sizeof(msg));
			if (write(pipefd[1], msg, strlen(msg)) < 0)
				_exit(91);
			_exit(err == -EACCES ? 0 : 92);
		}
		close(pipefd[1]);
		assert_true(read(pipefd[0], msg, sizeof(msg) - 1) > 0);
		close(pipefd[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) || !strstr(msg, p) ||
		    !strstr(msg, "is unreadable: permission denied"))
			fail_msg("as nobody: status %#x, message '%s'", status, msg);
	}
	unlink(p);
	rmdir(dir);
}

static void test_blk_image_in_use_by_a_writer_is_refused(void **state)
{
	struct env *env = env_new(1, false);
	char msg[512];

	(void)state;
	expect_refused(env->path, false, -EWOULDBLOCK, "is in use: another disk or process holds its lock");
	expect_refused(env->path, true, -EWOULDBLOCK, "is in use");
	env_free(env);

	/* Readers share. */
	env = env_new(1, true);
	assert_int_equal(try_create(env->path, true, msg, sizeof(msg)), 0);
	env_free(env);
}

static void test_blk_size_not_a_multiple_of_512_is_rounded_down_and_said(void **state)
{
	char dir[64] = "/tmp/rtvmm-blk-XXXXXX", p[128], out[1024] = "";
	struct virtio_blk_spec spec = { .name = "disk2", .queues = 1 };
	static uint8_t zeros[1000];
	struct virtio_dev *dev;
	struct guest_mem mem;
	struct err e = { 0 };
	struct virtio_blk_stats st;
	int saved, pipefd[2];
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/odd.img", dir);
	write_file(p, zeros, sizeof(zeros), 0644);
	snprintf(spec.path, sizeof(spec.path), "%s", p);
	assert_int_equal(guest_mem__create(&mem, 1 << 20), 0);
	assert_int_equal(pipe(pipefd), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(pipefd[1], STDERR_FILENO);
	assert_int_equal(virtio_blk__create(&spec, &mem, &dev, &e), 0);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(pipefd[1]);
	n = read(pipefd[0], out, sizeof(out) - 1);
	close(pipefd[0]);
	assert_true(n > 0);
	virtio_blk__stats(dev, &st);
	assert_int_equal(st.capacity, 1);
	if (!strstr(out, p) || !strstr(out, "is 1000 bytes, not a multiple of 512: the guest sees 1 "
					  "sectors, the last 488 bytes are not served"))
		fail_msg("stderr: %s", out);
	virtio_blk__destroy(dev);
	guest_mem__destroy(&mem);
	unlink(p);
	rmdir(dir);
}

static void test_blk_bad_spec_is_refused(void **state)
{
	struct virtio_blk_spec spec = { .name = "disk3", .path = "/nonexistent", .queues = 0 };
	struct virtio_dev *dev;
	struct guest_mem mem = { .fd = -1 };
	struct err e = { 0 };

	(void)state;
	assert_int_equal(virtio_blk__create(&spec, &mem, &dev, &e), -EINVAL);
	assert_string_equal(e.msg, "disk 'disk3': 0 queues (1..16)");
	spec.queues = VM_MAX_DISK_QUEUES + 1;
	assert_int_equal(virtio_blk__create(&spec, &mem, &dev, &e), -EINVAL);
	spec.queues = 1;
	spec.path[0] = '\0';
	assert_int_equal(virtio_blk__create(&spec, &mem, &dev, &e), -EINVAL);
	assert_string_equal(e.msg, "disk 'disk3': no image path");
}

/*
 * A block device (a loop device over an image, 4 KiB logical blocks): its size
 * from BLKGETSIZE64, BLK_SIZE from its logical block size, the same bytes.
 * Skipped where loop devices cannot be made (not root, a container).
 */
static void test_blk_block_device_reports_its_size_and_block_size(void **state)
{
	struct env *env = env_new(1, false);
	struct virtio_blk_spec spec = { .name = "disk4", .queues = 1 };
	const uint32_t seg[] = { 4096 };
	struct loop_config lc = { .block_size = 4096,
				  .info = { .lo_flags = LO_FLAGS_AUTOCLEAR } };
	struct virtio_blk_config cfg;
	struct virtio_dev *dev = NULL;
	struct err e = { 0 };
	int ctl, nr, loop, img, err;
	unsigned i;

	(void)state;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	nr = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
	if (ctl >= 0)
		close(ctl);
	snprintf(spec.path, sizeof(spec.path), "/dev/loop%d", nr);
	img = open(env->path, O_RDWR | O_CLOEXEC);
	loop = nr < 0 ? -1 : open(spec.path, O_RDWR | O_CLOEXEC);
	lc.fd = (uint32_t)img;
	if (loop < 0 || ioctl(loop, LOOP_CONFIGURE, &lc)) {
		fprintf(stderr, "no loop device here (%s): the block device path is not tested\n",
			strerror(errno));
		if (loop >= 0)
			close(loop);
		close(img);
		env_free(env);
		skip();
	}
	close(img);
	/* The image's own disk lets go of it first: the loop device is another open of it. */
	virtio_blk__destroy(env->dev);
	err = virtio_blk__create(&spec, &env->mem, &dev, &e);
	close(loop);                   /* autoclear: the device goes once the disk closes it */
	if (err)
		fail_msg("%s: %s", spec.path, e.msg);
	env->dev = dev;
	dev->ops->config_read(dev, 0, &cfg, sizeof(cfg));
	assert_int_equal(cfg.capacity, IMG_SECTORS);
	assert_int_equal(cfg.blk_size, 4096);
	env_activate(env, base_features);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 16, seg, 1, NULL), VIRTIO_BLK_S_OK);
	for (i = 0; i < 4096; i++)
		assert_int_equal(at(env, data_gpa(0))[i], img_byte(16 * 512 + i));
	env_free(env);
}

/* Without io_uring (refused by a seccomp policy, or absent), create fails and says why. */
static void test_blk_without_io_uring_create_fails_and_says_why(void **state)
{
	static const struct { int err; const char *words; } cases[] = {
		{ EPERM, "io_uring_setup was refused (Operation not permitted): a seccomp policy of "
			 "the container or service forbids io_uring, which rtvmm's disks need" },
		{ ENOSYS, "this kernel has no io_uring (io_uring_setup: Function not implemented): "
			  "rtvmm's disks need it" },
	};
	char dir[64] = "/tmp/rtvmm-blk-XXXXXX", p[128];
	unsigned i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/disk.img", dir);
	make_image(p, 4096);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int pipefd[2], status;
		char msg[512] = "";
		pid_t pid;

		assert_int_equal(pipe(pipefd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
			int err;

			if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(cases[i].err),
						     SCMP_SYS(io_uring_setup), 0) ||
			    seccomp_load(ctx))
				_exit(90);
			err = try_create(p, false, msg, sizeof(msg));
			if (write(pipefd[1], msg, strlen(msg)) < 0)
				_exit(91);
			_exit(err == -cases[i].err ? 0 : 92);
		}
		close(pipefd[1]);
		assert_true(read(pipefd[0], msg, sizeof(msg) - 1) > 0);
		close(pipefd[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) || !strstr(msg, cases[i].words) ||
		    !strstr(msg, "disk 'disk1'"))
			fail_msg("io_uring_setup failing with %d: status %#x, message '%s'", cases[i].err,
				 status, msg);
	}
	unlink(p);
	rmdir(dir);
}

/* ---- the I/O thread under its seccomp filter ---- */

/* Child: the sandbox on, a disk whose thread confines itself, every request kind served. */
static int confined_child(void)
{
	struct sandbox_config cfg = { 0 };
	const uint32_t seg[] = { 512 }, id[] = { VIRTIO_BLK_ID_BYTES }, big[10] = {
		512, 512, 512, 512, 512, 512, 512, 512, 512, 512 };
	struct err e = { 0 };
	char path[64], line[128];
	struct env *env;
	bool seccomp = false;
	FILE *f;

	if (sandbox__init(&cfg, &e)) {
		fprintf(stderr, "sandbox__init: %s\n", e.msg);
		return 90;
	}
	env = env_new(1, false);
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)virtio_blk__io_tid(env->dev));
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strcmp(line, "Seccomp:\t2\n"))
			seccomp = true;
	if (f)
		fclose(f);
	if (!seccomp)
		return 91;
	env_activate(env, base_features | BIT(VIRTIO_RING_F_INDIRECT_DESC));
	if (request(env, 0, VIRTIO_BLK_T_IN, 1, seg, 1, NULL) != VIRTIO_BLK_S_OK ||
	    request(env, 0, VIRTIO_BLK_T_OUT, 1, big, 10, NULL) != VIRTIO_BLK_S_OK ||
	    request(env, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) != VIRTIO_BLK_S_OK ||
	    request(env, 0, VIRTIO_BLK_T_GET_ID, 0, id, 1, NULL) != VIRTIO_BLK_S_OK ||
	    request(env, 0, VIRTIO_BLK_T_IN, IMG_SECTORS, seg, 1, NULL) != VIRTIO_BLK_S_IOERR)
		return 92;
	env->dev->ops->reset(env->dev);
	if (!env_settled(env, 5000))
		return 93;
	rings_close(env);
	rings_init(env);
	env_activate(env, base_features);
	if (request(env, 0, VIRTIO_BLK_T_IN, 1, seg, 1, NULL) != VIRTIO_BLK_S_OK)
		return 94;
	/* A bad chain: the thread says so on stderr and stops the queue. */
	post(env, 0, VIRTIO_BLK_T_IN, 0, RAM_SIZE, seg, 1, true);
	driver_ring__kick(&env->r[0]);
	for (int k = 0; k < 2000 && !stats(env).bad_chains; k++)
		usleep(1000);
	if (stats(env).bad_chains != 1)
		return 95;
	env_free(env);
	return 0;
}

static void test_blk_io_thread_works_under_its_seccomp_filter(void **state)
{
	int err[2], status;
	char out[2048] = "";
	ssize_t n, off = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(err[1], STDERR_FILENO);
		exit(confined_child());
	}
	close(err[1]);
	while ((n = read(err[0], out + off, sizeof(out) - 1 - (size_t)off)) > 0)
		off += n;
	close(err[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || strstr(out, "forbidden"))
		fail_msg("confined disk: status %#x, stderr: %s", status, out);
}

/* ---- the dirty log of a live migration ---- */

/* The memfd pages (= gpa pages: RAM is all below 4 GiB here) the log names, cleared; how many. */
static unsigned harvest(struct env *env, uint64_t *bits, size_t words)
{
	unsigned n = 0;
	size_t w;

	memset(bits, 0, words * 8);
	guest_mem__log_take(&env->mem, bits);
	for (w = 0; w < words; w++)
		n += (unsigned)__builtin_popcountll(bits[w]);
	return n;
}

static bool marked(const uint64_t *bits, uint64_t gpa)
{
	return bits[gpa / 4096 / 64] >> (gpa / 4096 % 64) & 1;
}

static void test_blk_completions_mark_exactly_what_the_device_wrote_while_logging(void **state)
{
	struct env *env = env_new(1, false);
	const uint32_t three[] = { 4096, 4096, 512 }, one[] = { 4096 };
	uint64_t bits[RAM_SIZE / 4096 / 64];
	uint64_t used = env->r[0].q.device, status = hdr_gpa(0, 0) + 0x20;
	const size_t words = sizeof(bits) / 8;

	(void)state;
	env_activate(env, base_features);
	assert_int_equal(guest_mem__log_start(&env->mem), 0);
	/* A read: its data pages (read by io_uring), its status, the used ring; nothing else. */
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 3, three, 3, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(harvest(env, bits, words), 5);
	assert_true(marked(bits, data_gpa(0)) && marked(bits, data_gpa(0) + 4096) &&
		    marked(bits, data_gpa(0) + 8192));
	assert_true(marked(bits, status) && marked(bits, used));
	/* A write reads the guest's data: only the status and the used ring are written. */
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_OUT, 100, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(harvest(env, bits, words), 2);
	assert_true(marked(bits, hdr_gpa(0, 8) + 0x20) && marked(bits, used));
	/* GET_ID writes the serial into the data buffer. */
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_GET_ID, 0, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(harvest(env, bits, words), 3);
	assert_true(marked(bits, data_gpa(0)));
	/* Off: the device writes, the (next) log knows nothing of it. */
	guest_mem__log_stop(&env->mem);
	assert_int_equal(request(env, 0, VIRTIO_BLK_T_IN, 3, one, 1, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(guest_mem__log_start(&env->mem), 0);
	assert_int_equal(harvest(env, bits, words), 0);
	guest_mem__log_stop(&env->mem);
	env_free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blk_read_returns_the_image_bytes),
		cmocka_unit_test(test_blk_completions_mark_exactly_what_the_device_wrote_while_logging),
		cmocka_unit_test(test_blk_write_lands_in_the_image_file),
		cmocka_unit_test(test_blk_flush_completes_ok),
		cmocka_unit_test(test_blk_get_id_answers_the_serial_nul_padded),
		cmocka_unit_test(test_blk_sectors_outside_the_image_get_ioerr),
		cmocka_unit_test(test_blk_unknown_request_types_get_unsupp),
		cmocka_unit_test(test_blk_readonly_refuses_writes_with_ioerr),
		cmocka_unit_test(test_blk_header_split_across_buffers_and_indirect_tables_are_served),
		cmocka_unit_test(test_blk_bad_chains_stop_the_queue_without_crash),
		cmocka_unit_test(test_blk_avail_index_running_ahead_is_a_bad_chain),
		cmocka_unit_test(test_blk_activation_with_a_ring_outside_guest_ram_is_refused),
		cmocka_unit_test(test_blk_serves_two_queues),
		cmocka_unit_test(test_blk_interrupts_follow_event_idx_and_no_interrupt),
		cmocka_unit_test(test_blk_reset_finishes_only_when_requests_in_flight_are_done),
		cmocka_unit_test(test_blk_freeze_completes_requests_in_flight_and_takes_no_new_one),
		cmocka_unit_test(test_blk_snapshot_round_trip_resumes_the_rings_where_they_stood),
		cmocka_unit_test(test_blk_snapshot_hostile_states_are_refused),
		cmocka_unit_test(test_blk_io_workers_run_where_the_io_thread_runs),
		cmocka_unit_test(test_blk_features_and_config_space),
		cmocka_unit_test(test_blk_io_thread_is_named_after_the_disk),
		cmocka_unit_test(test_blk_report_line_names_the_counters),
		cmocka_unit_test(test_blk_counters_move_with_each_request_served),
		cmocka_unit_test(test_blk_image_checks_name_the_path_and_the_reason),
		cmocka_unit_test(test_blk_unreadable_image_is_refused),
		cmocka_unit_test(test_blk_image_in_use_by_a_writer_is_refused),
		cmocka_unit_test(test_blk_size_not_a_multiple_of_512_is_rounded_down_and_said),
		cmocka_unit_test(test_blk_bad_spec_is_refused),
		cmocka_unit_test(test_blk_block_device_reports_its_size_and_block_size),
		cmocka_unit_test(test_blk_without_io_uring_create_fails_and_says_why),
		cmocka_unit_test(test_blk_io_thread_works_under_its_seccomp_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
