/* rtvmm test device: exit port, echo, putc, magic over PIO; magic, scratch, write count over MMIO. */
#include "vmm/hw/testdev.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/x86/layout.h"

#define PIO_REG_SIZE  4
#define MMIO_REG_SIZE 8

struct testdev {
	pthread_mutex_t lock;
	struct vm_ctl ctl;
	struct serial *out;
	uint32_t echo;      /* last value written to ECHO */
	uint64_t scratch;
	uint64_t mmio_writes;
};

/* Bytes [off, off+len) of little-endian `v`. */
static void testdev_get(uint64_t v, unsigned off, void *data, uint32_t len)
{
	uint8_t *p = data;
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = v >> (8 * (off + i));
}

/* `v` with bytes [off, off+len) replaced by `data`. */
static uint64_t testdev_put(uint64_t v, unsigned off, const void *data, uint32_t len)
{
	const uint8_t *p = data;
	uint32_t i;

	for (i = 0; i < len; i++) {
		unsigned shift = 8 * (off + i);

		v = (v & ~(0xffull << shift)) | (uint64_t)p[i] << shift;
	}
	return v;
}

static void testdev_pio_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct testdev *t = dev;
	unsigned reg = off & ~(uint64_t)(PIO_REG_SIZE - 1), in = off - reg;
	uint32_t v;

	memset(data, 0xff, len);
	if (in + len > PIO_REG_SIZE)
		return;
	switch (reg) {
	case TESTDEV_PIO_ECHO:
		pthread_mutex_lock(&t->lock);
		v = ~t->echo;
		pthread_mutex_unlock(&t->lock);
		break;
	case TESTDEV_PIO_MAGIC:
		v = TESTDEV_MAGIC;
		break;
	default:
		return; /* EXIT and PUTC are write-only */
	}
	testdev_get(v, in, data, len);
}

static void testdev_pio_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct testdev *t = dev;
	uint32_t v;

	if (off % PIO_REG_SIZE || len > PIO_REG_SIZE)
		return;
	v = testdev_put(0, 0, data, len);
	switch (off) {
	case TESTDEV_PIO_EXIT:
		vm_ctl__stop(&t->ctl, VM_STOP_GUEST_EXIT, (int)v);
		return;
	case TESTDEV_PIO_ECHO:
		pthread_mutex_lock(&t->lock);
		t->echo = v;
		pthread_mutex_unlock(&t->lock);
		return;
	case TESTDEV_PIO_PUTC:
		if (t->out)
			serial__put(t->out, (uint8_t)v);
		return;
	}
}

static void testdev_mmio_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct testdev *t = dev;
	uint64_t reg = off & ~(uint64_t)(MMIO_REG_SIZE - 1), v;
	unsigned in = off - reg;

	memset(data, 0xff, len);
	if (in + len > MMIO_REG_SIZE)
		return;
	switch (reg) {
	case TESTDEV_MMIO_MAGIC:
		v = TESTDEV_MAGIC;
		break;
	case TESTDEV_MMIO_SCRATCH:
		pthread_mutex_lock(&t->lock);
		v = t->scratch;
		pthread_mutex_unlock(&t->lock);
		break;
	case TESTDEV_MMIO_COUNT:
		pthread_mutex_lock(&t->lock);
		v = t->mmio_writes;
		pthread_mutex_unlock(&t->lock);
		break;
	default:
		return;
	}
	testdev_get(v, in, data, len);
}

static void testdev_mmio_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct testdev *t = dev;
	uint64_t reg = off & ~(uint64_t)(MMIO_REG_SIZE - 1);
	unsigned in = off - reg;

	pthread_mutex_lock(&t->lock);
	t->mmio_writes++;
	if (reg == TESTDEV_MMIO_SCRATCH && in + len <= MMIO_REG_SIZE)
		t->scratch = testdev_put(t->scratch, in, data, len);
	pthread_mutex_unlock(&t->lock);
}

static const struct io_ops testdev_pio_ops = {
	.read = testdev_pio_read,
	.write = testdev_pio_write,
};

static const struct io_ops testdev_mmio_ops = {
	.read = testdev_mmio_read,
	.write = testdev_mmio_write,
};

static bool testdev_overlaps(const struct bus *bus, uint64_t base, uint64_t len)
{
	size_t i;

	for (i = 0; i < bus->nr; i++) {
		const struct io_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < base + len)
			return true;
	}
	return false;
}

int testdev__add(struct bus *pio, struct bus *mmio, const struct vm_ctl *ctl, struct serial *out,
		 struct testdev **out_dev)
{
	struct testdev *t;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	err = -pthread_mutex_init(&t->lock, NULL);
	if (err)
		goto err_free;
	t->ctl = *ctl;
	t->out = out;

	/*
	 * The buses have no unregister: the MMIO claim (checked first) must not
	 * fail after the PIO one succeeded. Should it still (-ENOMEM), the device
	 * stays allocated for the PIO range rather than leave it dangling.
	 */
	if (testdev_overlaps(mmio, LAYOUT_TESTDEV_MMIO, LAYOUT_TESTDEV_MMIO_SIZE)) {
		err = -EEXIST;
		goto err_destroy_lock;
	}
	err = bus__register(pio, PORT_TESTDEV, TESTDEV_PIO_SIZE, &testdev_pio_ops, t, "testdev");
	if (err)
		goto err_destroy_lock;
	err = bus__register(mmio, LAYOUT_TESTDEV_MMIO, LAYOUT_TESTDEV_MMIO_SIZE, &testdev_mmio_ops,
			    t, "testdev");
	if (err)
		return err;
	*out_dev = t;
	return 0;

err_destroy_lock:
	pthread_mutex_destroy(&t->lock);
err_free:
	free(t);
	return err;
}

void testdev__destroy(struct testdev *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Its registers as at power-on (the MMIO write count stays: it counts for the whole run). */
static void testdev_device_reset(void *dev)
{
	struct testdev *t = dev;

	pthread_mutex_lock(&t->lock);
	t->echo = 0;
	t->scratch = 0;
	pthread_mutex_unlock(&t->lock);
}

static void testdev_device_destroy(void *dev)
{
	testdev__destroy(dev);
}

#define TESTDEV_STATE_VERSION 1

/* Version 1: ECHO (u32), SCRATCH and the MMIO write count the guest reads back (u64 each). */
static int testdev_device_save(void *dev, struct state_out *out)
{
	struct testdev *t = dev;

	pthread_mutex_lock(&t->lock);
	state_out__u32(out, TESTDEV_STATE_VERSION);
	state_out__u32(out, t->echo);
	state_out__u64(out, t->scratch);
	state_out__u64(out, t->mmio_writes);
	pthread_mutex_unlock(&t->lock);
	return out->err;
}

/* Takes a version 1 state (see testdev_device_save); every value of each register is valid. */
static int testdev_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct testdev *t = dev;
	uint64_t scratch, mmio_writes;
	uint32_t version, echo;

	version = state_in__u32(in);
	if (in->err) {
		snprintf(why, why_len, "state truncated: %zu bytes", in->len);
		return -EINVAL;
	}
	if (version != TESTDEV_STATE_VERSION) {
		snprintf(why, why_len, "state version %u, expected %u", version, TESTDEV_STATE_VERSION);
		return -EINVAL;
	}
	echo = state_in__u32(in);
	scratch = state_in__u64(in);
	mmio_writes = state_in__u64(in);
	if (state_in__end(in)) {
		snprintf(why, why_len, "state %s: %zu bytes", in->err ? "truncated" : "too long", in->len);
		return -EINVAL;
	}

	pthread_mutex_lock(&t->lock);
	t->echo = echo;
	t->scratch = scratch;
	t->mmio_writes = mmio_writes;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

const struct device_ops testdev__device_ops = {
	.reset = testdev_device_reset,
	.destroy = testdev_device_destroy,
	.save = testdev_device_save,
	.load = testdev_device_load,
};
