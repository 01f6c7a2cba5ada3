/*
 * The driver's side of a split virtqueue (virtio 1.x 2.7) on a guest_mem, for
 * the tests of devices the monitor serves: lay descriptors out, make chains
 * available, kick, wait for the interrupt, read what the device used. The
 * ring's eventfds are real (what the transport would hand the device).
 * Include after <cmocka.h>.
 */
#ifndef RTVMM_TESTS_DRIVER_RING_H
#define RTVMM_TESTS_DRIVER_RING_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/guest_mem.h"
#include "vmm/virtio/virtio.h"
#include "vmm/virtio/virtqueue.h"

/* One ring: descriptor table at `base`, available ring after it, used ring on the next page. */
struct driver_ring {
	const struct guest_mem *mem;
	struct virtio_queue q;        /* what the transport would hand the device */
	uint16_t avail_idx;           /* entries made available so far */
};

static inline uint8_t *driver_ring__at(const struct driver_ring *r, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem__ptr(r->mem, gpa, len);

	assert_non_null(p);
	return p;
}

static inline void driver_ring__init(struct driver_ring *r, const struct guest_mem *mem,
				     uint64_t base, uint16_t size)
{
	uint64_t avail = base + 16ull * size;
	uint64_t used = (avail + virtqueue__avail_bytes(size, true) + 4095) & ~4095ull;

	*r = (struct driver_ring){ .mem = mem };
	r->q = (struct virtio_queue){ .size = size, .enabled = true, .desc = base, .driver = avail,
				      .device = used, .msix_vector = 0,
				      .kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
				      .call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	assert_true(r->q.kick_fd >= 0 && r->q.call_fd >= 0);
	memset(driver_ring__at(r, base, 16ull * size), 0, 16ull * size);
	memset(driver_ring__at(r, avail, virtqueue__avail_bytes(size, true)), 0,
	       virtqueue__avail_bytes(size, true));
	memset(driver_ring__at(r, used, virtqueue__used_bytes(size, true)), 0,
	       virtqueue__used_bytes(size, true));
}

static inline void driver_ring__close(struct driver_ring *r)
{
	close(r->q.kick_fd);
	close(r->q.call_fd);
	r->q.kick_fd = r->q.call_fd = -1;
}

/* Writes descriptor `i` (flags: VRING_DESC_F_*). */
static inline void driver_ring__desc(struct driver_ring *r, uint16_t i, uint64_t addr, uint32_t len,
				     uint16_t flags, uint16_t next)
{
	uint8_t *d = driver_ring__at(r, r->q.desc + 16ull * i, 16);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Makes the chain at `head` available (after its descriptors, as a driver must). */
static inline void driver_ring__publish(struct driver_ring *r, uint16_t head)
{
	uint16_t *idx = (uint16_t *)driver_ring__at(r, r->q.driver + 2, 2);

	memcpy(driver_ring__at(r, r->q.driver + 4 + 2ull * (r->avail_idx % r->q.size), 2), &head, 2);
	r->avail_idx++;
	__atomic_store_n(idx, r->avail_idx, __ATOMIC_RELEASE);
}

static inline void driver_ring__kick(struct driver_ring *r)
{
	uint64_t one = 1;

	assert_int_equal(write(r->q.kick_fd, &one, 8), 8);
}

/* Waits up to `timeout_ms` for the device's interrupt (the call eventfd) and consumes it. */
static inline bool driver_ring__wait_call(struct driver_ring *r, int timeout_ms)
{
	struct pollfd p = { .fd = r->q.call_fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(r->q.call_fd, &v, 8) == 8;
}

static inline uint16_t driver_ring__used_idx(const struct driver_ring *r)
{
	return __atomic_load_n((uint16_t *)driver_ring__at(r, r->q.device + 2, 2), __ATOMIC_ACQUIRE);
}

/* Used entry `n` (counted from 0): the head it returns and the bytes the device wrote. */
static inline void driver_ring__used(const struct driver_ring *r, uint16_t n, uint32_t *id,
				     uint32_t *len)
{
	const uint8_t *e = driver_ring__at(r, r->q.device + 4 + 8ull * (n % r->q.size), 8);

	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

/* Waits up to `timeout_ms` until the used index reaches `n`. */
static inline bool driver_ring__wait_used(const struct driver_ring *r, uint16_t n, int timeout_ms)
{
	int k;

	for (k = 0; k < timeout_ms && driver_ring__used_idx(r) != n; k++)
		usleep(1000);
	return driver_ring__used_idx(r) == n;
}

/* EVENT_IDX: the driver's used_event (after the available ring) and the device's avail_event. */
static inline void driver_ring__set_used_event(struct driver_ring *r, uint16_t v)
{
	memcpy(driver_ring__at(r, r->q.driver + 4 + 2ull * r->q.size, 2), &v, 2);
}

static inline uint16_t driver_ring__avail_event(const struct driver_ring *r)
{
	uint16_t v;

	memcpy(&v, driver_ring__at(r, r->q.device + 4 + 8ull * r->q.size, 2), 2);
	return v;
}

static inline void driver_ring__set_avail_flags(struct driver_ring *r, uint16_t flags)
{
	memcpy(driver_ring__at(r, r->q.driver, 2), &flags, 2);
}

#endif
