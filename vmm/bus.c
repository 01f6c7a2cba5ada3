#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus__init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void bus__exit(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->nr = bus->cap = 0;
}

int bus__register(struct bus *bus, uint64_t base, uint64_t len,
		  const struct io_ops *ops, void *dev, const char *name)
{
	size_t i;

	if (len == 0 || base + len < base || !ops)
		return -EINVAL;
	for (i = 0; i < bus->nr; i++) {
		const struct io_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (bus->nr == bus->cap) {
		size_t cap = bus->cap ? bus->cap * 2 : 16;
		struct io_range *n = realloc(bus->ranges, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		bus->ranges = n;
		bus->cap = cap;
	}
	for (i = bus->nr; i > 0 && bus->ranges[i - 1].base > base; i--)
		bus->ranges[i] = bus->ranges[i - 1];
	bus->ranges[i] = (struct io_range){ base, len, ops, dev, name };
	bus->nr++;
	return 0;
}

const struct io_range *bus__find(const struct bus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct io_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool bus__access(struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write)
{
	const struct io_range *r = bus__find(bus, addr);

	if (!r || addr - r->base + len > r->len) {
		__atomic_add_fetch(&bus->unclaimed, 1, __ATOMIC_RELAXED);
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	if (is_write) {
		if (r->ops->write)
			r->ops->write(r->dev, addr - r->base, data, len);
	} else if (r->ops->read) {
		r->ops->read(r->dev, addr - r->base, data, len);
	} else {
		memset(data, 0xff, len);
	}
	return true;
}
