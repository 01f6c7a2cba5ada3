#include "base/hugepages.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>

/* The directory that holds the hugepages-NkB pools of `node` (< 0: the system). */
static void pools_dir(const char *sysfs, int node, char *buf, size_t len)
{
	if (node < 0)
		snprintf(buf, len, "%s/kernel/mm/hugepages", sysfs);
	else
		snprintf(buf, len, "%s/devices/system/node/node%d/hugepages", sysfs, node);
}

/* One unsigned number from a sysfs file; -errno, -EINVAL when it holds none. */
static int read_u64(const char *path, uint64_t *v)
{
	unsigned long long n;
	FILE *f = fopen(path, "r");
	int ret = 0;

	if (!f)
		return -errno;
	if (fscanf(f, "%llu", &n) == 1)
		*v = n;
	else
		ret = -EINVAL;
	fclose(f);
	return ret;
}

int hugepages__sizes(const char *sysfs, int node, uint64_t *sizes, unsigned max)
{
	char dir[512];
	struct dirent *d;
	unsigned n = 0, i;
	int ret = 0;
	DIR *dp;

	pools_dir(sysfs, node, dir, sizeof(dir));
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((d = readdir(dp))) {
		unsigned long long kb;
		char tail;

		if (sscanf(d->d_name, "hugepages-%llukB%c", &kb, &tail) != 1 || !kb)
			continue;
		if (n == max) {
			ret = -E2BIG;
			break;
		}
		for (i = n++; i > 0 && sizes[i - 1] > kb << 10; i--)
			sizes[i] = sizes[i - 1];
		sizes[i] = kb << 10;
	}
	closedir(dp);
	return ret ? ret : (int)n;
}

/* SYSFS/.../hugepages-NkB/FILE of a pool. */
static void pool_file(const char *sysfs, uint64_t page_size, int node, const char *file,
		      char *buf, size_t len)
{
	char dir[512];

	pools_dir(sysfs, node, dir, sizeof(dir));
	snprintf(buf, len, "%s/hugepages-%llukB/%s", dir, (unsigned long long)(page_size >> 10), file);
}

void hugepages__nr_path(const char *sysfs, uint64_t page_size, int node, char *buf, size_t len)
{
	pool_file(sysfs, page_size, node, "nr_hugepages", buf, len);
}

int hugepages__count(const char *sysfs, uint64_t page_size, int node, struct hugepages_count *c)
{
	char path[640];
	int ret;

	pool_file(sysfs, page_size, node, "nr_hugepages", path, sizeof(path));
	ret = read_u64(path, &c->total);
	if (ret)
		return ret;
	pool_file(sysfs, page_size, node, "free_hugepages", path, sizeof(path));
	ret = read_u64(path, &c->free);
	if (ret)
		return ret;
	pool_file(sysfs, page_size, node, "resv_hugepages", path, sizeof(path));
	if (read_u64(path, &c->reserved))
		c->reserved = 0;
	return 0;
}

uint64_t hugepages__free_bytes(const char *sysfs, int node)
{
	uint64_t sizes[HUGEPAGES_MAX_SIZES], bytes = 0;
	struct hugepages_count c;
	int n = hugepages__sizes(sysfs, node, sizes, HUGEPAGES_MAX_SIZES), i;

	for (i = 0; i < n; i++)
		if (!hugepages__count(sysfs, sizes[i], node, &c))
			bytes += c.free * sizes[i];
	return bytes;
}
