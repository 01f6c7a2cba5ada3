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

int device_list__freeze(const struct device_list *l, const struct device **failed)
{
	unsigned i;
	int err;

	for (i = 0; i < l->nr; i++) {
		if (!l->v[i].ops->freeze)
			continue;
		err = l->v[i].ops->freeze(l->v[i].dev);
		if (err) {
			*failed = &l->v[i];
			while (i--)
				if (l->v[i].ops->thaw)
					l->v[i].ops->thaw(l->v[i].dev);
			return err;
		}
	}
	return 0;
}

int device_list__thaw(const struct device_list *l, const struct device **failed)
{
	unsigned i;
	int err, first = 0;

	for (i = l->nr; i--;) {
		if (!l->v[i].ops->thaw)
			continue;
		err = l->v[i].ops->thaw(l->v[i].dev);
		if (err && !first) {
			first = err;
			*failed = &l->v[i];
		}
	}
	return first;
}

int device_list__dirty_log(const struct device_list *l, int log_fd, uint64_t log_size,
			   const struct device **failed, struct err *e)
{
	struct err ignored;
	unsigned i;
	int err, first = 0;

	if (log_fd < 0) {
		for (i = l->nr; i--;) {
			if (!l->v[i].ops->dirty_log)
				continue;
			err = l->v[i].ops->dirty_log(l->v[i].dev, -1, 0, first ? &ignored : e);
			if (err && !first) {
				first = err;
				*failed = &l->v[i];
			}
		}
		return first;
	}
	for (i = 0; i < l->nr; i++) {
		if (!l->v[i].ops->dirty_log)
			continue;
		err = l->v[i].ops->dirty_log(l->v[i].dev, log_fd, log_size, e);
		if (err) {
			*failed = &l->v[i];
			while (i--)
				if (l->v[i].ops->dirty_log)
					l->v[i].ops->dirty_log(l->v[i].dev, -1, 0, &ignored);
			return err;
		}
	}
	return 0;
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

int device__save_nothing(void *dev, struct state_out *out)
{
	(void)dev;
	(void)out;
	return 0;
}

int device__load_nothing(void *dev, struct state_in *in, char *why, size_t why_len)
{
	(void)dev;
	if (state_in__end(in)) {
		snprintf(why, why_len, "%zu bytes of state where none is kept", in->len);
		return -EINVAL;
	}
	return 0;
}
