/*
 * Fuzz target: the disk the monitor serves (vmm/virtio/blk.c) as a guest drives it: requests
 * (headers, sectors, types, data and status buffers, indirect tables) laid out by the fuzzer in
 * guest RAM, taken and served by the disk's own I/O thread through io_uring on a 64 KiB image.
 *
 * Input: 1 byte of flags (bit 0: indirect descriptors, bit 1: event index, bit 2: the
 * read-only disk, with an image of its own), then the guest's RAM (64 KiB; the rest is zero). The queue has 64 entries:
 * descriptor table at 0, available ring at 0x1000, used ring at 0x2000; the driver made
 * available what the available index (at 0x1002) says. One kick, then a reset: the target
 * waits until the reset is finished, so every request the kick started is done.
 * Beyond the sanitizers: the image keeps its size (no write lands outside it), the read-only
 * disk's image keeps its bytes, the I/O thread takes every kick and finishes every reset, and
 * no fd leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/virtqueue.h"

#include "fuzz.h"

#define RAM_SIZE   (64u << 10)
#define IMG_SIZE   (64u << 10)
#define QSIZE      64
#define DESC       0x0000
#define AVAIL      0x1000
#define USED       0x2000

static struct guest_mem mem;
static char dir[] = "/tmp/rtvmm-fuzz-blk-XXXXXX";
static char img[2][64];                  /* the writable disk's image, the read-only one's */
static struct virtio_dev *disk[2];
static uint32_t ro_sum;                  /* of the read-only disk's image */

/* A checksum of the image at `path`, and its size in *size. */
static uint32_t image_sum(const char *path, off_t *size)
{
	static uint8_t buf[2 * IMG_SIZE];
	uint32_t s = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, i;

	FUZZ_CHECK(fd >= 0, "cannot open %s", path);
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	FUZZ_CHECK(n >= 0, "cannot read %s", path);
	for (i = 0; i < n; i++)
		s = s * 31 + buf[i];
	*size = n;
	return s;
}

static struct virtio_dev *make_disk(const char *path, bool readonly)
{
	struct virtio_blk_spec spec = { .name = "fuzz", .readonly = readonly, .queues = 1 };
	struct virtio_dev *dev;
	struct err e = { 0 };

	snprintf(spec.path, sizeof(spec.path), "%s", path);
	FUZZ_CHECK(!virtio_blk__create(&spec, &mem, &dev, &e), "%s", e.msg);
	return dev;
}

static void cleanup(void)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		virtio_blk__destroy(disk[i]);
		unlink(img[i]);
	}
	rmdir(dir);
	guest_mem__destroy(&mem);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static uint8_t pattern[IMG_SIZE];
	unsigned i;
	off_t size;
	int fd;

	(void)argc;
	(void)argv;
	FUZZ_CHECK(!guest_mem__create(&mem, RAM_SIZE), "cannot create guest RAM");
	FUZZ_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + (i >> 9));
	for (i = 0; i < 2; i++) {
		snprintf(img[i], sizeof(img[i]), "%s/disk%u.img", dir, i);
		fd = open(img[i], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		FUZZ_CHECK(fd >= 0 && write(fd, pattern, sizeof(pattern)) == (ssize_t)sizeof(pattern),
			   "cannot make %s", img[i]);
		close(fd);
		disk[i] = make_disk(img[i], i == 1);
	}
	ro_sum = image_sum(img[1], &size);
	atexit(cleanup);
	return 0;
}

/* Kicks the one queue, waits until the I/O thread took the kick, resets, waits for the reset. */
static void serve(struct virtio_dev *dev, const struct virtio_activation *a)
{
	struct virtio_blk_stats before, now;
	uint64_t one = 1;
	int k;

	virtio_blk__stats(dev, &before);
	FUZZ_CHECK(!dev->ops->activate(dev, a), "a checked ring refused");
	FUZZ_CHECK(write(a->queues[0].kick_fd, &one, 8) == 8, "kick");
	for (k = 0; k < 5000; k++) {
		virtio_blk__stats(dev, &now);
		if (now.kicks > before.kicks)
			break;
		usleep(100);
	}
	FUZZ_CHECK(now.kicks > before.kicks, "the I/O thread never took the kick");
	dev->ops->reset(dev);
	for (k = 0; k < 100000 && dev->ops->resetting(dev); k++)
		usleep(100);
	FUZZ_CHECK(!dev->ops->resetting(dev), "a reset that never finished");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct virtio_queue q = { .size = QSIZE, .enabled = true, .desc = DESC, .driver = AVAIL,
				  .device = USED };
	struct virtio_activation a = { .nr_queues = 1, .queues = &q, .mem = &mem };
	unsigned fds = fuzz_open_fds();
	struct virtio_dev *dev;
	const uint8_t *ram;
	size_t ram_len;
	uint8_t flags;
	uint32_t sum;
	off_t img_size;

	flags = fuzz_in__u8(&in);
	a.features = 1ull << VIRTIO_F_VERSION_1;
	if (flags & 1)
		a.features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (flags & 2)
		a.features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	ram = fuzz_in__bytes(&in, RAM_SIZE, &ram_len);
	memcpy(mem.base, ram, ram_len);
	memset(mem.base + ram_len, 0, RAM_SIZE - ram_len);
	/* The device starts each activation at index 0: so does the used ring. */
	memset(mem.base + USED, 0, virtqueue__used_bytes(QSIZE, true));
	q.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FUZZ_CHECK(q.kick_fd >= 0 && q.call_fd >= 0, "eventfd");

	dev = disk[flags & 4 ? 1 : 0];
	serve(dev, &a);
	close(q.kick_fd);
	close(q.call_fd);
	sum = image_sum(img[1], &img_size);
	FUZZ_CHECK(sum == ro_sum && img_size == IMG_SIZE, "the read-only disk's image changed");
	image_sum(img[0], &img_size);
	FUZZ_CHECK(img_size == IMG_SIZE, "the image grew to %lld bytes", (long long)img_size);
	FUZZ_CHECK(fuzz_open_fds() == fds, "fds leaked: %u before, %u after", fds, fuzz_open_fds());
	return 0;
}
