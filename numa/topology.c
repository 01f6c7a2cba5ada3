/*
 * Topology from hwloc (this host, an XML file or a synthetic string), plus
 * the OS state RT hosting cares about: isolated and nohz_full cpus, hugepages
 * per node, RT throttling. The hwloc topology is copied into plain arrays and
 * destroyed before returning, so a struct topology owns no hwloc state.
 */
#include "numa/topology.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hwloc.h>

#include "base/cpus.h"
#include "base/hugepages.h"
#include "rt/rt.h"

#define SYS_CPU "/sys/devices/system/cpu"

static void bitmap_to_cpuset(hwloc_const_bitmap_t b, cpu_set_t *set)
{
	int i;

	CPU_ZERO(set);
	hwloc_bitmap_foreach_begin(i, b) {
		if (i < CPU_SETSIZE)
			CPU_SET(i, set);
	} hwloc_bitmap_foreach_end();
}

static int node_index_cmp(const void *a, const void *b)
{
	const struct topo_node *x = a, *y = b;

	return (x->os_index > y->os_index) - (x->os_index < y->os_index);
}

/* Copies cpus and nodes out of a loaded hwloc topology. */
static int copy_hwloc(struct topology *t, hwloc_topology_t h, struct err *e)
{
	hwloc_obj_t root = hwloc_get_root_obj(h), pu, node;
	int last = hwloc_bitmap_last(root->complete_cpuset);
	int nr_nodes = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE);
	int i;

	pu = NULL;
	while ((pu = hwloc_get_next_obj_by_type(h, HWLOC_OBJ_PU, pu)))
		if ((int)pu->os_index > last)
			last = (int)pu->os_index;
	if (last < 0)
		return err__set(e, -EINVAL, "%s: no cpus in the topology", t->source);
	if (last >= CPU_SETSIZE)
		return err__set(e, -ERANGE, "%s: cpu %d is past the %d cpus rtvmm supports",
				t->source, last, CPU_SETSIZE);

	t->nr_cpus = (unsigned)last + 1;
	t->cpus = calloc(t->nr_cpus, sizeof(*t->cpus));
	if (!t->cpus)
		return err__set(e, -ENOMEM, "%s: out of memory for %u cpus", t->source, t->nr_cpus);
	for (i = 0; i < (int)t->nr_cpus; i++)
		t->cpus[i].node = -1;

	if (nr_nodes > 0) {
		t->nodes = calloc((size_t)nr_nodes, sizeof(*t->nodes));
		if (!t->nodes)
			return err__set(e, -ENOMEM, "%s: out of memory for %d nodes", t->source,
					nr_nodes);
	}
	node = NULL;
	while ((node = hwloc_get_next_obj_by_type(h, HWLOC_OBJ_NUMANODE, node))) {
		struct topo_node *n = &t->nodes[t->nr_nodes++];

		n->os_index = node->os_index;
		n->mem_bytes = node->attr ? node->attr->numanode.local_memory : 0;
	}
	qsort(t->nodes, t->nr_nodes, sizeof(*t->nodes), node_index_cmp);

	pu = NULL;
	while ((pu = hwloc_get_next_obj_by_type(h, HWLOC_OBJ_PU, pu))) {
		struct topo_cpu *c = &t->cpus[pu->os_index];
		hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(h, HWLOC_OBJ_PACKAGE, pu);
		hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(h, HWLOC_OBJ_CORE, pu);

		c->present = true;
		c->package = pkg && pkg->os_index != HWLOC_UNKNOWN_INDEX ? pkg->os_index : 0;
		c->core = core ? core->logical_index : pu->logical_index;
		bitmap_to_cpuset(core ? core->cpuset : pu->cpuset, &c->siblings);
		/* The node whose cpuset holds this PU (NUMA nodes are memory children in hwloc 2). */
		node = NULL;
		while ((node = hwloc_get_next_obj_by_type(h, HWLOC_OBJ_NUMANODE, node)))
			if (node->cpuset && hwloc_bitmap_isset(node->cpuset, pu->os_index)) {
				c->node = (int)node->os_index;
				break;
			}
	}
	/* hwloc leaves out the PUs this process's cpuset disallows; its complete set keeps them. */
	for (i = 0; i < (int)t->nr_cpus; i++)
		t->cpus[i].disallowed = !t->cpus[i].present &&
					hwloc_bitmap_isset(root->complete_cpuset, (unsigned)i) &&
					!hwloc_bitmap_isset(root->cpuset, (unsigned)i);
	t->page_size_supported[PAGE_4K] = true;
	return 0;
}

static int apply_kv(struct topology *t, const char *key, const char *val, const char *origin,
		    bool *sizes_named, bool *hugepages_given, bool *pagesizes_given,
		    struct err *e);
static void finish_overrides(struct topology *t, const bool *sizes_named, bool hugepages_given,
			     bool pagesizes_given);

/* Applies the rtvmm.* info attributes of the XML root object, if any. */
static int apply_root_info(struct topology *t, hwloc_topology_t h, struct err *e)
{
	static const char *const keys[] = {
		"isolated", "nohz_full", "hugepages", "pagesizes", "rt_runtime", "rt_period",
	};
	bool sizes_named[PAGE_SIZES] = { false }, hugepages_given = false;
	bool pagesizes_given = false;
	hwloc_obj_t root = hwloc_get_root_obj(h);
	char origin[sizeof(t->source) + 64];
	unsigned i;
	int ret;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char name[32];
		const char *v;

		snprintf(name, sizeof(name), "rtvmm.%s", keys[i]);
		v = hwloc_obj_get_info_by_name(root, name);
		if (!v)
			continue;
		snprintf(origin, sizeof(origin), "%s: info %s", t->source, name);
		ret = apply_kv(t, keys[i], v, origin, sizes_named, &hugepages_given,
			       &pagesizes_given, e);
		if (ret)
			return ret;
	}
	finish_overrides(t, sizes_named, hugepages_given, pagesizes_given);
	return 0;
}

enum topo_kind { TOPO_HOST, TOPO_XML, TOPO_SYNTHETIC };

static int load_hwloc(struct topology *t, enum topo_kind kind, const char *arg, struct err *e)
{
	hwloc_topology_t h;
	int ret = 0;

	if (hwloc_topology_init(&h))
		return err__set(e, -errno ? -errno : -ENOMEM, "%s: hwloc_topology_init failed",
				t->source);
	if (kind == TOPO_XML && hwloc_topology_set_xml(h, arg)) {
		ret = err__set(e, errno ? -errno : -EINVAL,
			       "%s: hwloc cannot use it as an XML topology", t->source);
		goto err_destroy;
	}
	if (kind == TOPO_SYNTHETIC && hwloc_topology_set_synthetic(h, arg)) {
		ret = err__set(e, -EINVAL,
			       "%s: not a valid hwloc synthetic description (e.g. \"package:2 numa:1 "
			       "core:8 pu:2\")", t->source);
		goto err_destroy;
	}
	if (hwloc_topology_load(h)) {
		ret = err__set(e, errno ? -errno : -EINVAL, "%s: hwloc could not load it: %s",
			       t->source, strerror(errno ? errno : EINVAL));
		goto err_destroy;
	}
	ret = copy_hwloc(t, h, e);
	if (!ret && kind == TOPO_XML)
		ret = apply_root_info(t, h, e);
err_destroy:
	hwloc_topology_destroy(h);
	return ret;
}

/* ---- host state from /sys and /proc ---- */

/* Reads a small file into buf (trailing newline removed); -errno if it cannot be read. */
static int read_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;
	int ret = 0;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	if (ferror(f))
		ret = -EIO;
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return ret;
}

/* A kernel cpu list file: absent means the kernel has no such feature, so none. A kernel built
 * with CONFIG_NO_HZ_FULL (Debian's) and booted without nohz_full= prints "(null)" in
 * .../cpu/nohz_full: none either. */
static int read_cpu_list(const char *path, cpu_set_t *set, struct err *e)
{
	char buf[4096];
	int ret = read_small(path, buf, sizeof(buf));

	CPU_ZERO(set);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return err__set(e, ret, "%s: %s", path, strerror(-ret));
	if (!buf[0] || !strcmp(buf, "(null)"))
		return 0;
	ret = cpus__parse(buf, set);
	if (ret)
		return err__set(e, ret, "%s: cannot parse cpu list '%s'", path, buf);
	return 0;
}

/* A node's pool of a size; the system's on a 1-node kernel without per-node files. */
static struct hugepages_count read_hugepage_count(const struct topology *t, unsigned node,
						 enum page_size size)
{
	struct hugepages_count c = { 0 };
	uint64_t page = page_size__bytes(size);

	if (hugepages__count(HUGEPAGES_SYSFS, page, (int)node, &c) && t->nr_nodes == 1 &&
	    hugepages__count(HUGEPAGES_SYSFS, page, -1, &c))
		memset(&c, 0, sizeof(c));
	return c;
}

static void read_host_hugepages(struct topology *t)
{
	uint64_t sizes[HUGEPAGES_MAX_SIZES];
	int n = hugepages__sizes(HUGEPAGES_SYSFS, -1, sizes, HUGEPAGES_MAX_SIZES), i;
	unsigned s, k;

	for (i = 0; i < n; i++)
		for (s = PAGE_2M; s < PAGE_SIZES; s++)
			if (sizes[i] == page_size__bytes(s))
				t->page_size_supported[s] = true;
	t->page_sizes_known = true;

	for (k = 0; k < t->nr_nodes; k++) {
		struct topo_node *nd = &t->nodes[k];

		for (s = PAGE_2M; s < PAGE_SIZES; s++) {
			struct hugepages_count c;

			if (!t->page_size_supported[s])
				continue;
			c = read_hugepage_count(t, nd->os_index, s);
			nd->total_pages[s] = c.total;
			nd->free_pages[s] = c.free;
		}
	}
	t->hugepages_known = true;
}

static void init(struct topology *t, const char *fmt, const char *arg)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->source, sizeof(t->source), fmt, arg);
	t->rt_runtime_us = -1;
	t->rt_period_us = 1000000;
}

int topology__load_host(struct topology *t, struct err *e)
{
	int ret;

	init(t, "%s", "this host");
	t->is_host = true;
	ret = load_hwloc(t, TOPO_HOST, NULL, e);
	if (ret)
		goto err_free;

	read_host_hugepages(t);

	ret = read_cpu_list(SYS_CPU "/isolated", &t->isolated, e);
	if (ret)
		goto err_free;
	t->isolated_known = true;
	ret = read_cpu_list(SYS_CPU "/nohz_full", &t->nohz_full, e);
	if (ret)
		goto err_free;
	t->nohz_full_known = true;

	if (!rt__read_throttling(&t->rt_runtime_us, &t->rt_period_us))
		t->rt_known = true;
	return 0;

err_free:
	topology__free(t);
	return ret;
}

int topology__load_file(struct topology *t, const char *xml_path, const char *overrides,
			struct err *e)
{
	int ret;

	init(t, "XML file %s", xml_path ? xml_path : "(null)");
	if (!xml_path || !*xml_path)
		return err__set(e, -EINVAL, "topology XML file: no path given");
	if (access(xml_path, R_OK)) {
		ret = -errno;
		return err__set(e, ret, "topology XML file %s: %s", xml_path, strerror(-ret));
	}
	ret = load_hwloc(t, TOPO_XML, xml_path, e);
	if (!ret && overrides)
		ret = topology__apply_overrides(t, overrides, "topology overrides", e);
	if (ret)
		topology__free(t);
	return ret;
}

int topology__load_synthetic(struct topology *t, const char *desc, const char *overrides,
			     struct err *e)
{
	int ret;

	init(t, "synthetic '%s'", desc ? desc : "(null)");
	if (!desc || !*desc)
		return err__set(e, -EINVAL, "synthetic topology: empty description");
	ret = load_hwloc(t, TOPO_SYNTHETIC, desc, e);
	if (!ret && overrides)
		ret = topology__apply_overrides(t, overrides, "topology overrides", e);
	if (ret)
		topology__free(t);
	return ret;
}

void topology__free(struct topology *t)
{
	if (!t)
		return;
	free(t->cpus);
	free(t->nodes);
	t->cpus = NULL;
	t->nodes = NULL;
	t->nr_cpus = 0;
	t->nr_nodes = 0;
}

/* ---- overrides ---- */

static struct topo_node *node_mut(struct topology *t, int os_index)
{
	unsigned i;

	for (i = 0; i < t->nr_nodes; i++)
		if ((int)t->nodes[i].os_index == os_index)
			return &t->nodes[i];
	return NULL;
}

static int parse_page_size(const char *s, size_t len, enum page_size *out)
{
	static const struct {
		const char *name;
		enum page_size size;
	} names[] = {
		{ "2M", PAGE_2M }, { "2048kB", PAGE_2M },
		{ "1G", PAGE_1G }, { "1048576kB", PAGE_1G },
	};
	unsigned i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (len == strlen(names[i].name) && !strncasecmp(s, names[i].name, len)) {
			*out = names[i].size;
			return 0;
		}
	return -EINVAL;
}

static int parse_u64(const char *s, char **end, uint64_t *v)
{
	unsigned long long x;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	x = strtoull(s, end, 10);
	if (errno)
		return -ERANGE;
	*v = x;
	return 0;
}

static bool is_none(const char *v)
{
	return !*v || !strcmp(v, "none");
}

static int apply_cpus(const char *v, cpu_set_t *set, bool *known,
		      const char *origin, const char *key, struct err *e)
{
	cpu_set_t s;
	int ret;

	CPU_ZERO(&s);
	if (!is_none(v)) {
		ret = cpus__parse(v, &s);
		if (ret)
			return err__set(e, ret, "%s: %s: bad cpu list '%s'", origin, key, v);
	}
	*set = s;
	*known = true;
	return 0;
}

/* "node0:2M:1024,node1:1G:8/16" */
static int apply_hugepages(struct topology *t, const char *v, const char *origin, bool *sizes,
			   struct err *e)
{
	const char *p = v;
	unsigned i;

	for (i = 0; i < t->nr_nodes; i++) {
		memset(t->nodes[i].free_pages, 0, sizeof(t->nodes[i].free_pages));
		memset(t->nodes[i].total_pages, 0, sizeof(t->nodes[i].total_pages));
	}
	t->hugepages_known = true;
	if (is_none(v))
		return 0;

	while (*p) {
		const char *item = p, *colon;
		size_t item_len = strcspn(p, ",");
		enum page_size size;
		struct topo_node *n;
		uint64_t node_nr, fr, tot;
		char *end;

		if (strncmp(p, "node", 4))
			goto bad;
		p += 4;
		if (parse_u64(p, &end, &node_nr) || *end != ':')
			goto bad;
		p = end + 1;
		colon = strchr(p, ':');
		if (!colon || parse_page_size(p, (size_t)(colon - p), &size))
			goto bad;
		p = colon + 1;
		if (parse_u64(p, &end, &fr))
			goto bad;
		tot = fr;
		if (*end == '/') {
			if (parse_u64(end + 1, &end, &tot) || tot < fr)
				goto bad;
		}
		if (*end && *end != ',')
			goto bad;
		n = node_nr <= INT_MAX ? node_mut(t, (int)node_nr) : NULL;
		if (!n)
			return err__set(e, -EINVAL, "%s: hugepages: '%.*s': no NUMA node %" PRIu64
					" in %s (%u node%s)", origin, (int)item_len, item, node_nr,
					t->source, t->nr_nodes, t->nr_nodes == 1 ? "" : "s");
		n->free_pages[size] = fr;
		n->total_pages[size] = tot;
		sizes[size] = true;
		p = *end ? end + 1 : end;
		continue;
bad:
		return err__set(e, -EINVAL, "%s: hugepages: bad item '%.*s' (want nodeN:2M|1G:FREE"
				"[/TOTAL])", origin, (int)item_len, item);
	}
	return 0;
}

static int apply_pagesizes(struct topology *t, const char *v, const char *origin, struct err *e)
{
	const char *p = v;
	unsigned s;

	for (s = PAGE_2M; s < PAGE_SIZES; s++)
		t->page_size_supported[s] = false;
	t->page_sizes_known = true;
	if (is_none(v))
		return 0;
	while (*p) {
		size_t len = strcspn(p, ",");
		enum page_size size;

		if (parse_page_size(p, len, &size))
			return err__set(e, -EINVAL, "%s: pagesizes: '%.*s' is not 2M or 1G", origin,
					(int)len, p);
		t->page_size_supported[size] = true;
		p += len;
		if (*p)
			p++;
	}
	return 0;
}

static int apply_long(const char *v, long *out, const char *origin, const char *key,
		      struct err *e)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end)
		return err__set(e, -EINVAL, "%s: %s: '%s' is not a number", origin, key, v);
	*out = x;
	return 0;
}

static int apply_kv(struct topology *t, const char *key, const char *val, const char *origin,
		    bool *sizes_named, bool *hugepages_given, bool *pagesizes_given,
		    struct err *e)
{
	int ret;

	if (!strcmp(key, "isolated"))
		return apply_cpus(val, &t->isolated, &t->isolated_known, origin, key, e);
	if (!strcmp(key, "nohz_full"))
		return apply_cpus(val, &t->nohz_full, &t->nohz_full_known, origin, key, e);
	if (!strcmp(key, "hugepages")) {
		*hugepages_given = true;
		return apply_hugepages(t, val, origin, sizes_named, e);
	}
	if (!strcmp(key, "pagesizes")) {
		*pagesizes_given = true;
		return apply_pagesizes(t, val, origin, e);
	}
	if (!strcmp(key, "rt_runtime")) {
		ret = apply_long(val, &t->rt_runtime_us, origin, key, e);
		t->rt_known = t->rt_known || !ret;
		return ret;
	}
	if (!strcmp(key, "rt_period"))
		return apply_long(val, &t->rt_period_us, origin, key, e);
	return err__set(e, -EINVAL, "%s: unknown key '%s' (isolated, nohz_full, hugepages, "
			"pagesizes, rt_runtime, rt_period)", origin, key);
}

/* hugepages= without pagesizes=: the sizes it names are supported (besides any known before). */
static void finish_overrides(struct topology *t, const bool *sizes_named, bool hugepages_given,
			     bool pagesizes_given)
{
	unsigned s;

	if (!hugepages_given || pagesizes_given)
		return;
	for (s = PAGE_2M; s < PAGE_SIZES; s++)
		t->page_size_supported[s] = sizes_named[s] ||
					    (t->page_sizes_known && t->page_size_supported[s]);
	t->page_sizes_known = true;
}

int topology__apply_overrides(struct topology *t, const char *overrides, const char *origin,
			      struct err *e)
{
	bool sizes_named[PAGE_SIZES] = { false }, hugepages_given = false;
	bool pagesizes_given = false;
	const char *p = overrides;
	char key[32], val[4200];
	int ret;

	if (!overrides)
		return 0;
	while (*p) {
		size_t len, klen;
		const char *eq;

		while (*p && (isspace((unsigned char)*p) || *p == ';'))
			p++;
		if (!*p)
			break;
		len = strcspn(p, " \t\n;");
		eq = memchr(p, '=', len);
		if (!eq)
			return err__set(e, -EINVAL, "%s: '%.*s' is not KEY=VALUE", origin, (int)len,
					p);
		klen = (size_t)(eq - p);
		if (klen >= sizeof(key) || len - klen - 1 >= sizeof(val))
			return err__set(e, -EINVAL, "%s: '%.*s' is too long", origin, (int)len, p);
		memcpy(key, p, klen);
		key[klen] = '\0';
		memcpy(val, eq + 1, len - klen - 1);
		val[len - klen - 1] = '\0';
		p += len;

		ret = apply_kv(t, key, val, origin, sizes_named, &hugepages_given,
			       &pagesizes_given, e);
		if (ret)
			return ret;
	}
	finish_overrides(t, sizes_named, hugepages_given, pagesizes_given);
	return 0;
}

/* ---- queries ---- */

bool topology__has_cpu(const struct topology *t, unsigned cpu)
{
	return cpu < t->nr_cpus && t->cpus[cpu].present;
}

bool topology__cpu_disallowed(const struct topology *t, unsigned cpu)
{
	return cpu < t->nr_cpus && t->cpus[cpu].disallowed;
}

int topology__cpu_node(const struct topology *t, unsigned cpu)
{
	return topology__has_cpu(t, cpu) ? t->cpus[cpu].node : -1;
}

const struct topo_node *topology__node(const struct topology *t, int os_index)
{
	unsigned i;

	for (i = 0; i < t->nr_nodes; i++)
		if ((int)t->nodes[i].os_index == os_index)
			return &t->nodes[i];
	return NULL;
}

void topology__cpus(const struct topology *t, cpu_set_t *set)
{
	unsigned i;

	CPU_ZERO(set);
	for (i = 0; i < t->nr_cpus && i < CPU_SETSIZE; i++)
		if (t->cpus[i].present)
			CPU_SET(i, set);
}
