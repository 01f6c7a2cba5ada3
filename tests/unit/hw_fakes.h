/* Test doubles for legacy-device tests: a recording interrupt line, a recording vm_ctl, port I/O. */
#ifndef RTVMM_TESTS_HW_FAKES_H
#define RTVMM_TESTS_HW_FAKES_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/device.h"

#define FAKE_IRQ_HISTORY 64

/* Every level driven on one line, in order. */
struct fake_irq {
	unsigned gsi;
	int level;
	unsigned calls;
	int history[FAKE_IRQ_HISTORY];
};

static inline void fake_irq_set(void *opaque, unsigned gsi, int level)
{
	struct fake_irq *f = opaque;

	f->gsi = gsi;
	f->level = level;
	if (f->calls < FAKE_IRQ_HISTORY)
		f->history[f->calls] = level;
	f->calls++;
}

static inline struct irq_sink fake_irq_sink(struct fake_irq *f, unsigned gsi)
{
	memset(f, 0, sizeof(*f));
	return (struct irq_sink){ .set = fake_irq_set, .opaque = f, .gsi = gsi };
}

/* Stop requests, possibly from another thread (console). */
struct fake_ctl {
	pthread_mutex_t lock;
	unsigned calls;
	enum vm_stop_reason reason;
	int status;
};

static inline void fake_ctl_stop(void *opaque, enum vm_stop_reason reason, int status)
{
	struct fake_ctl *f = opaque;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	f->reason = reason;
	f->status = status;
	pthread_mutex_unlock(&f->lock);
}

static inline struct vm_ctl fake_vm_ctl(struct fake_ctl *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	return (struct vm_ctl){ .request_stop = fake_ctl_stop, .opaque = f };
}

static inline unsigned fake_ctl_calls(struct fake_ctl *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->calls;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Port I/O through the bus, as a vCPU exit would do it. */
static inline uint8_t io_inb(struct bus *b, uint64_t port)
{
	uint8_t v;

	bus__access(b, port, &v, 1, false);
	return v;
}

static inline void io_outb(struct bus *b, uint64_t port, uint8_t v)
{
	bus__access(b, port, &v, 1, true);
}

static inline uint16_t io_inw(struct bus *b, uint64_t port)
{
	uint16_t v;

	bus__access(b, port, &v, 2, false);
	return v;
}

static inline void io_outw(struct bus *b, uint64_t port, uint16_t v)
{
	bus__access(b, port, &v, 2, true);
}

static inline uint32_t io_inl(struct bus *b, uint64_t port)
{
	uint32_t v;

	bus__access(b, port, &v, 4, false);
	return v;
}

static inline void io_outl(struct bus *b, uint64_t port, uint32_t v)
{
	bus__access(b, port, &v, 4, true);
}

#endif
