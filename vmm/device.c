#include "vmm/device.h"

#include <errno.h>
#include <stdlib.h>

int device_list__add(struct device_list *l, const char *name, const struct device_ops *ops, void *dev)
{
	if (l->nr == l->cap) {
		unsigned cap = l->cap ? 2 * l->cap : 16;
		struct device *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->nr] = (struct device){ .ops = ops, .dev = dev };
	snprintf(l->v[l->nr].name, sizeof(l->v[l->nr].name), "%s", name);
	l->nr++;
	return 0;
}

void device_list__stop(const struct device_list *l)
{
	unsigned i;

	for (i = l->nr; i--;)
		if (l->v[i].ops->stop)
			l->v[i].ops->stop(l->v[i].dev);
}

void device_list__reset(const struct device_list *l)
{
	unsigned i;

	for (i = l->nr; i--;)
		if (l->v[i].ops->reset)
			l->v[i].ops->reset(l->v[i].dev);
}

void device_list__destroy(struct device_list *l)
{
	while (l->nr) {
		struct device *d = &l->v[--l->nr];

		if (d->ops->destroy)
			d->ops->destroy(d->dev);
	}
	free(l->v);
	*l = (struct device_list){ 0 };
}

void device_list__report(const struct device_list *l, const char *prefix, FILE *out)
{
	unsigned i;

	for (i = 0; i < l->nr; i++) {
		if (!l->v[i].ops->report)
			continue;
		fprintf(out, "%s%s: ", prefix, l->v[i].name);
		l->v[i].ops->report(l->v[i].dev, out);
		fputc('\n', out);
	}
}

unsigned device_list__acpi(const struct device_list *l, struct device_acpi *out, unsigned max)
{
	unsigned i, n = 0;

	for (i = 0; i < l->nr; i++) {
		struct device_acpi d;

		if (l->v[i].ops->acpi && l->v[i].ops->acpi(l->v[i].dev, &d)) {
			if (n < max)
				out[n] = d;
			n++;
		}
	}
	return n;
}
