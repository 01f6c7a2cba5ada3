/* Address-space buses: port I/O and MMIO ranges claimed by devices. */
#ifndef RTVMM_BUS_H
#define RTVMM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A device's handlers for one claimed range. `off` is relative to the range
 * base; `len` is 1, 2, 4 or 8. Reads fill `data` (little endian); a device
 * that does not implement a width fills 0xff bytes. Handlers run on vCPU
 * threads concurrently and must do their own locking.
 */
struct io_ops {
	void (*read)(void *dev, uint64_t off, void *data, uint32_t len);
	void (*write)(void *dev, uint64_t off, const void *data, uint32_t len);
};

struct io_range {
	uint64_t base;
	uint64_t len;
	const struct io_ops *ops;
	void *dev;
	const char *name;
};

/* Ranges are registered before vCPUs start and kept sorted; lookups take no lock. */
struct bus {
	const char *name;
	struct io_range *ranges;
	size_t nr;
	size_t cap;
	uint64_t unclaimed; /* accesses no device claimed (counted, never logged) */
};

void bus__init(struct bus *bus, const char *name);
void bus__exit(struct bus *bus);

/* Claims [base, base+len) for a device; -EEXIST on overlap, -EINVAL on empty/wrapping range. */
__attribute__((warn_unused_result))
int bus__register(struct bus *bus, uint64_t base, uint64_t len,
		  const struct io_ops *ops, void *dev, const char *name);

/* Finds the range containing addr, or NULL. */
const struct io_range *bus__find(const struct bus *bus, uint64_t addr);

/*
 * Dispatches one access. Unclaimed reads return all-ones, unclaimed writes
 * are dropped (as on a PC); both are counted. Returns true if a device claimed it.
 */
bool bus__access(struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write);

#endif
