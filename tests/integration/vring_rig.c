/* The guest's side of split virtqueues for KVM-less device tests. */
#include "vring_rig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int rig_queue__init(struct rig_queue *q, struct guest_mem *mem, unsigned index, unsigned size,
		    uint64_t ring_gpa, uint64_t buf_gpa, uint32_t buf_size, struct virtio_queue *vq)
{
	unsigned k;

	if (!size || size > RIG_QSIZE_MAX || (size & (size - 1)))
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	q->index = index;
	q->size = size;
	q->desc_gpa = ring_gpa;
	q->avail_gpa = ring_gpa + 0x1000;
	q->used_gpa = ring_gpa + 0x2000;
	q->buf_gpa = buf_gpa;
	q->buf_size = buf_size;
	q->desc = guest_mem__ptr(mem, q->desc_gpa, 16ull * size);
	q->avail = guest_mem__ptr(mem, q->avail_gpa, 6 + 2ull * size);
	q->used = guest_mem__ptr(mem, q->used_gpa, 6 + 8ull * size);
	q->buf = guest_mem__ptr(mem, q->buf_gpa, (uint64_t)size * buf_size);
	if (!q->desc || !q->avail || !q->used || !q->buf)
		return -ERANGE;
	memset(q->desc, 0, 0x3000);
	for (k = 0; k < size; k++)
		q->free_ids[q->nr_free++] = (uint16_t)(size - 1 - k);
	*vq = (struct virtio_queue){
		.size = (uint16_t)size, .enabled = true, .desc = q->desc_gpa, .driver = q->avail_gpa,
		.device = q->used_gpa, .msix_vector = (uint16_t)index,
		.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
		.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	};
	return vq->kick_fd < 0 || vq->call_fd < 0 ? -errno : 0;
}

void rig_queue__close(struct virtio_queue *vq)
{
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	vq->kick_fd = vq->call_fd = -1;
}

uint16_t rig_queue__used_idx(const struct rig_queue *q)
{
	return __atomic_load_n((const uint16_t *)(q->used + 2), __ATOMIC_ACQUIRE);
}

void rig_queue__used_elem(const struct rig_queue *q, uint16_t at, uint32_t *id, uint32_t *len)
{
	uint32_t e[2];

	memcpy(e, q->used + 4 + 8 * (at % q->size), sizeof(e));
	*id = e[0];
	*len = e[1];
}

void rig_queue__publish(struct rig_queue *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	q->avail_idx++;
	__atomic_store_n(&q->avail[1], q->avail_idx, __ATOMIC_RELEASE);
}

void rig_queue__kick(struct rig_queue *q, int kick_fd)
{
	uint64_t one = 1;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n((const uint16_t *)q->used, __ATOMIC_RELAXED) & RIG_USED_F_NO_NOTIFY)
		return;
	q->kicks++;
	if (write(kick_fd, &one, 8) < 0) {
		/* saturated: the device will see it */
	}
}

int rig_wait_eventfd(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* drained by someone else: it fired all the same */
	}
	return 1;
}

double rig_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int rig_wait_socket(const char *path, double timeout)
{
	double end = rig_now_s() + timeout;
	struct stat st;

	while (rig_now_s() < end) {
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

void rig_dump_file(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	fprintf(stderr, "---- %s ----\n", path);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}
