/*
 * `rtvmm check`: the whole host plan against a topology. Every finding names
 * the plan's file, line, key and value, and says why; where the topology lacks
 * what a check needs (no hugepage or isolation info, a machine without a
 * second node or 1G pages) the finding says so instead of passing silently.
 */
#include "config/check.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/cpus.h"
#include "base/trust.h"
#include "config/parse.h"

/* ---- findings ---- */

struct ctx {
	const struct plan *p;
	const struct topology *t;
	struct findings *out;
	int ret;                   /* -ENOMEM once an append failed */
};

__attribute__((format(printf, 7, 8)))
static void add(struct ctx *c, enum finding_level level, const char *code, unsigned line,
		const char *key, const char *value, const char *fmt, ...)
{
	struct findings *f = c->out;
	struct finding *x;
	va_list ap;

	if (c->ret)
		return;
	if (f->nr == f->cap) {
		unsigned cap = f->cap ? f->cap * 2 : 16;
		struct finding *items = realloc(f->items, cap * sizeof(*items));

		if (!items) {
			c->ret = -ENOMEM;
			return;
		}
		f->items = items;
		f->cap = cap;
	}
	x = &f->items[f->nr++];
	memset(x, 0, sizeof(*x));
	x->level = level;
	snprintf(x->code, sizeof(x->code), "%s", code);
	x->line = line;
	snprintf(x->key, sizeof(x->key), "%s", key ? key : "");
	snprintf(x->value, sizeof(x->value), "%s", value ? value : "");
	va_start(ap, fmt);
	vsnprintf(x->message, sizeof(x->message), fmt, ap);
	va_end(ap);
}

unsigned findings__count(const struct findings *f, enum finding_level level)
{
	unsigned i, n = 0;

	for (i = 0; f && i < f->nr; i++)
		n += f->items[i].level == level;
	return n;
}

void findings__free(struct findings *f)
{
	if (!f)
		return;
	free(f->items);
	memset(f, 0, sizeof(*f));
}

/* ---- helpers ---- */

static const char *cpus_str(const cpu_set_t *s, char *buf, unsigned len)
{
	cpus__format(s, buf, len);
	if (!buf[0])
		snprintf(buf, len, "none");
	return buf;
}

static const char *size_str(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (b && !(b & 1023) && u < 3) {
		b >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, b);
	else
		snprintf(buf, len, "%" PRIu64 "%c", b, units[u]);
	return buf;
}

/* Last components of the parser's locations that name a value, not a section. */
static bool is_value_component(const char *c, const char *leaf)
{
	static const char *const values[] = {
		"cpus", "cpu", "cores", "housekeeping_cpus", "emulator_cpus", "size",
	};
	unsigned i;

	if (!strcmp(c, leaf) || !strncmp(c, "pin[", 4))
		return true;
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		if (!strcmp(c, values[i]))
			return true;
	return false;
}

/*
 * Key of `leaf` next to where `loc` points ("vms[0].vcpus[1].cpus" + "priority"
 * -> "vms[0].vcpus[1].priority", "vms[0].memory" + "page_size" ->
 * "vms[0].memory.page_size"), `fallback` when the plan has no location.
 */
static const char *key_of(const struct plan_loc *loc, const char *fallback, const char *leaf,
			  char *buf, size_t len)
{
	const char *base = loc->key[0] ? loc->key : fallback;
	const char *dot = strrchr(base, '.');
	size_t n = strlen(base);

	if (leaf && dot && dot != base && is_value_component(dot + 1, leaf))
		n = (size_t)(dot - base);
	if (leaf)
		snprintf(buf, len, "%.*s.%s", (int)n, base, leaf);
	else
		snprintf(buf, len, "%s", base);
	return buf;
}

static unsigned line_of(const struct plan_loc *loc, const struct plan_loc *fallback)
{
	return loc->line ? loc->line : fallback ? fallback->line : 0;
}

static bool is_rt(enum rt_policy p)
{
	return p == RT_POLICY_FIFO || p == RT_POLICY_RR;
}

static int single_cpu(const cpu_set_t *s)
{
	int i;

	if (CPU_COUNT(s) != 1)
		return -1;
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, s))
			return i;
	return -1;
}

/* "1 NUMA node (0)" / "2 NUMA nodes (0-1)" */
static const char *nodes_str(const struct topology *t, char *buf, size_t len)
{
	cpu_set_t s;
	char list[256];
	unsigned i;

	CPU_ZERO(&s);
	for (i = 0; i < t->nr_nodes; i++)
		if (t->nodes[i].os_index < CPU_SETSIZE)
			CPU_SET(t->nodes[i].os_index, &s);
	snprintf(buf, len, "%u NUMA node%s (%s)", t->nr_nodes, t->nr_nodes == 1 ? "" : "s",
		 cpus_str(&s, list, sizeof(list)));
	return buf;
}

/* ---- the threads of the plan, for checks across VMs ---- */

enum thr_kind { THR_VCPU, THR_EMULATOR, THR_HOUSEKEEPING, THR_DATAPLANE };

struct thr {
	enum thr_kind kind;
	int vm;                    /* VM index, -1 for host threads */
	unsigned vcpu;             /* THR_VCPU: its index in the VM */
	bool rt;                   /* FIFO/RR vCPU or a dataplane poll core */
	enum rt_policy policy;
	int priority;
	cpu_set_t cpus;
	unsigned line;
	char key[96];
	char label[120];           /* "vm 'a' vcpu 1 (fifo 80)" */
};

struct thrs {
	struct thr *v;
	unsigned n;
};

static int build_threads(const struct plan *p, struct thrs *ts)
{
	const struct plan_dataplane *dp = &p->host.dataplane;
	unsigned i, j, cap = 1 + (unsigned)CPU_COUNT(&dp->cores);
	struct thr *x;
	int cpu;

	for (i = 0; i < p->nr_vms; i++)
		cap += p->vms[i].nr_vcpus + 1;
	ts->v = calloc(cap, sizeof(*ts->v));
	if (!ts->v)
		return -ENOMEM;
	ts->n = 0;

	for (i = 0; i < p->nr_vms; i++) {
		const struct plan_vm *vm = &p->vms[i];
		char fb[96];

		for (j = 0; j < vm->nr_vcpus; j++) {
			const struct plan_sched *s = &vm->vcpus[j];

			x = &ts->v[ts->n++];
			x->kind = THR_VCPU;
			x->vm = (int)i;
			x->vcpu = j;
			x->rt = is_rt(s->policy);
			x->policy = s->policy;
			x->priority = s->priority;
			x->cpus = s->cpus;
			x->line = line_of(&s->loc, &vm->loc);
			snprintf(fb, sizeof(fb), "vms[%u].vcpus[%u]", i, j);
			key_of(&s->loc, fb, NULL, x->key, sizeof(x->key));
			if (x->rt)
				snprintf(x->label, sizeof(x->label), "vm '%s' vcpu %u (%s %d)",
					 vm->name, j, rt__policy_name(s->policy), s->priority);
			else
				snprintf(x->label, sizeof(x->label), "vm '%s' vcpu %u", vm->name, j);
		}
		x = &ts->v[ts->n++];
		x->kind = THR_EMULATOR;
		x->vm = (int)i;
		x->rt = false;   /* an RT emulator is not a busy-poller; its priority is checked */
		x->policy = vm->emulator.policy;
		x->priority = vm->emulator.priority;
		x->cpus = vm->emulator.cpus;
		x->line = line_of(&vm->emulator.loc, &vm->loc);
		snprintf(fb, sizeof(fb), "vms[%u].emulator_cpus", i);
		key_of(&vm->emulator.loc, fb, NULL, x->key, sizeof(x->key));
		snprintf(x->label, sizeof(x->label), "vm '%s' emulator threads", vm->name);
	}

	x = &ts->v[ts->n++];
	x->kind = THR_HOUSEKEEPING;
	x->vm = -1;
	x->cpus = p->host.housekeeping;
	x->line = p->host.loc.line;
	key_of(&p->host.loc, "host", "housekeeping_cpus", x->key, sizeof(x->key));
	snprintf(x->label, sizeof(x->label), "housekeeping");

	if (dp->present) {
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
			if (!CPU_ISSET(cpu, &dp->cores))
				continue;
			x = &ts->v[ts->n++];
			x->kind = THR_DATAPLANE;
			x->vm = -1;
			x->rt = true;
			x->policy = dp->policy;
			x->priority = dp->priority;
			CPU_ZERO(&x->cpus);
			CPU_SET(cpu, &x->cpus);
			x->line = line_of(&dp->loc, &p->host.loc);
			key_of(&dp->loc, "host.dataplane", "cores", x->key, sizeof(x->key));
			if (is_rt(dp->policy))
				snprintf(x->label, sizeof(x->label), "dataplane poll core %d (%s %d)", cpu,
					 rt__policy_name(dp->policy), dp->priority);
			else
				snprintf(x->label, sizeof(x->label), "dataplane poll core %d", cpu);
		}
	}
	return 0;
}

/*
 * Threads by cpu, for the checks across threads: the threads allowed on cpu
 * `c` are idx[first[c]] .. idx[first[c + 1] - 1], in plan order. A check then
 * visits only the threads that share a cpu with the one it looks at, not all
 * of them: linear in the plan plus what it reports, not quadratic.
 */
struct by_cpu {
	unsigned first[CPU_SETSIZE + 1];
	unsigned *idx;
	unsigned *stamp;           /* per thread: the last query that saw it */
	unsigned query;
	unsigned *hits;            /* one query's threads, sorted */
};

static int by_cpu__build(struct by_cpu *b, const struct thrs *ts, bool rt_only)
{
	unsigned i, n = 0, fill[CPU_SETSIZE];
	int cpu;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < ts->n; i++)
		if (!rt_only || ts->v[i].rt)
			for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
				b->first[cpu + 1] += CPU_ISSET(cpu, &ts->v[i].cpus) ? 1 : 0;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		b->first[cpu + 1] += b->first[cpu];
		fill[cpu] = b->first[cpu];
	}
	n = b->first[CPU_SETSIZE];
	b->idx = calloc(n + 1, sizeof(*b->idx));
	b->stamp = calloc(ts->n + 1, sizeof(*b->stamp));
	b->hits = calloc(ts->n + 1, sizeof(*b->hits));
	if (!b->idx || !b->stamp || !b->hits)
		return -ENOMEM;
	for (i = 0; i < ts->n; i++)
		if (!rt_only || ts->v[i].rt)
			for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
				if (CPU_ISSET(cpu, &ts->v[i].cpus))
					b->idx[fill[cpu]++] = i;
	return 0;
}

static void by_cpu__free(struct by_cpu *b)
{
	free(b->idx);
	free(b->stamp);
	free(b->hits);
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* The threads of `b` allowed on any cpu of `set`, each once, in plan order, in b->hits. */
static unsigned by_cpu__overlapping(struct by_cpu *b, const cpu_set_t *set)
{
	unsigned n = 0, k;
	int cpu;

	b->query++;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, set))
			continue;
		for (k = b->first[cpu]; k < b->first[cpu + 1]; k++) {
			if (b->stamp[b->idx[k]] == b->query)
				continue;
			b->stamp[b->idx[k]] = b->query;
			b->hits[n++] = b->idx[k];
		}
	}
	qsort(b->hits, n, sizeof(*b->hits), cmp_unsigned);
	return n;
}

/* ---- checks ---- */

static void check_cpus_exist(struct ctx *c, const cpu_set_t *set, unsigned line,
			     const char *key, const char *what)
{
	cpu_set_t missing, barred, all;
	char m[256], a[256];
	int i;

	CPU_ZERO(&missing);
	CPU_ZERO(&barred);
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, set) && !topology__has_cpu(c->t, (unsigned)i))
			CPU_SET(i, topology__cpu_disallowed(c->t, (unsigned)i) ? &barred : &missing);
	topology__cpus(c->t, &all);
	if (CPU_COUNT(&barred)) {
		cpus_str(&barred, m, sizeof(m));
		add(c, FINDING_ERROR, "cpu-not-allowed", line, key, m,
		    "%s: cpu%s %s %s outside this process's cpuset (it allows cpus %s): run rtvmm in a "
		    "cpuset that holds %s, or plan other cpus", what, CPU_COUNT(&barred) == 1 ? "" : "s",
		    m, CPU_COUNT(&barred) == 1 ? "is" : "are", cpus_str(&all, a, sizeof(a)),
		    CPU_COUNT(&barred) == 1 ? "it" : "them");
	}
	if (!CPU_COUNT(&missing))
		return;
	cpus_str(&missing, m, sizeof(m));
	add(c, FINDING_ERROR, "cpu-missing", line, key, m,
	    "%s: cpu%s %s do%s not exist on %s (cpus %s)", what,
	    CPU_COUNT(&missing) == 1 ? "" : "s", m, CPU_COUNT(&missing) == 1 ? "es" : "",
	    c->t->source, cpus_str(&all, a, sizeof(a)));
}

static void check_priority(struct ctx *c, const struct plan_sched *s, const struct plan_loc *fb,
			   const char *fbkey, const char *what)
{
	char key[96], v[16];

	if (is_rt(s->policy) && s->priority >= 1 && s->priority <= 99)
		return;
	if (s->policy == RT_POLICY_OTHER && s->priority == 0)
		return;
	key_of(&s->loc, fbkey, "priority", key, sizeof(key));
	snprintf(v, sizeof(v), "%d", s->priority);
	if (is_rt(s->policy))
		add(c, FINDING_ERROR, "priority-range", line_of(&s->loc, fb), key, v,
		    "%s: %s priority %d is out of range 1..99", what, rt__policy_name(s->policy),
		    s->priority);
	else
		add(c, FINDING_ERROR, "priority-range", line_of(&s->loc, fb), key, v,
		    "%s: policy other takes priority 0, not %d (use fifo or rr for an RT priority)",
		    what, s->priority);
}

static bool any_rt_policy(const struct plan *p)
{
	unsigned i, j;

	if (p->host.dataplane.present && is_rt(p->host.dataplane.policy))
		return true;
	for (i = 0; i < p->nr_vms; i++) {
		if (is_rt(p->vms[i].emulator.policy))
			return true;
		for (j = 0; j < p->vms[i].nr_vcpus; j++)
			if (is_rt(p->vms[i].vcpus[j].policy))
				return true;
		for (j = 0; j < p->vms[i].nr_disks; j++)
			if (is_rt(p->vms[i].disks[j].io.policy))
				return true;
	}
	return false;
}

/* Memory node, page size. */
static void check_vm_memory(struct ctx *c, unsigned i)
{
	const struct plan_vm *vm = &c->p->vms[i];
	const struct plan_memory *m = &vm->memory;
	const struct topology *t = c->t;
	char fb[96], key[96], v[32], ns[320];
	unsigned line = line_of(&m->loc, &vm->loc);

	snprintf(fb, sizeof(fb), "vms[%u].memory", i);
	if (m->node >= 0 && !topology__node(t, m->node)) {
		snprintf(v, sizeof(v), "%d", m->node);
		add(c, FINDING_ERROR, "node-missing", line, key_of(&m->loc, fb, "numa_node", key,
								       sizeof(key)), v,
		    "vm '%s': NUMA node %d does not exist on %s, which has %s", vm->name, m->node,
		    t->source, nodes_str(t, ns, sizeof(ns)));
	}
	if (m->page_size != PAGE_4K && t->page_sizes_known &&
	    !t->page_size_supported[m->page_size]) {
		add(c, FINDING_ERROR, "page-size-unsupported", line,
		    key_of(&m->loc, fb, "page_size", key, sizeof(key)),
		    page_size__name(m->page_size),
		    "vm '%s': %s hugepages are not supported on %s (no %s pages in the kernel: "
		    "the CPU lacks them or hugepagesz= was not given)%s", vm->name,
		    page_size__name(m->page_size), t->source,
		    page_size__name(m->page_size),
		    m->allow_fallback ? "; 4K pages would be used" : "");
	}
}

static uint64_t pages_needed(const struct plan_memory *m)
{
	uint64_t ps = page_size__bytes(m->page_size);

	return ps ? (m->size + ps - 1) / ps : 0;
}

/*
 * Hugepages: VMs are created in plan order; each takes its pages from its
 * node's free pool (any node for unbound memory) or, if short and allowed,
 * falls back to 4K pages and takes none.
 */
static void check_hugepages(struct ctx *c)
{
	const struct plan *p = c->p;
	const struct topology *t = c->t;
	uint64_t *used;             /* [node index][size] pages taken by VMs before */
	unsigned i, pass, n;

	if (!t->hugepages_known) {
		for (i = 0; i < p->nr_vms; i++) {
			const struct plan_vm *vm = &p->vms[i];
			const struct plan_memory *m = &vm->memory;
			char fb[96], key[96], sz[32], where[32] = "";

			if (m->page_size == PAGE_4K ||
			    (t->page_sizes_known && !t->page_size_supported[m->page_size]))
				continue;
			snprintf(fb, sizeof(fb), "vms[%u].memory", i);
			if (m->node >= 0)
				snprintf(where, sizeof(where), " on node %d", m->node);
			add(c, FINDING_WARNING, "hugepages-unknown", line_of(&m->loc, &vm->loc),
			    key_of(&m->loc, fb, "size", key, sizeof(key)),
			    size_str(m->size, sz, sizeof(sz)),
			    "vm '%s': cannot verify hugepages: %s has no hugepage information%s; "
			    "it needs %" PRIu64 " free %s pages%s", vm->name, t->source,
			    t->page_sizes_known ? "" : ", nor which page sizes the kernel supports",
			    pages_needed(m), page_size__name(m->page_size), where);
		}
		return;
	}

	used = calloc((size_t)t->nr_nodes * PAGE_SIZES + 1, sizeof(*used));
	if (!used) {
		c->ret = -ENOMEM;
		return;
	}
	/* Bound VMs first, then unbound ones from what is left anywhere. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < p->nr_vms; i++) {
			const struct plan_vm *vm = &p->vms[i];
			const struct plan_memory *m = &vm->memory;
			const struct topo_node *node = NULL;
			unsigned s = m->page_size, ni = 0;
			uint64_t need = pages_needed(m), before = 0, avail = 0, total = 0;
			char fb[96], key[96], sz[32], where[64], others[160];

			if (s == PAGE_4K || (t->page_sizes_known && !t->page_size_supported[s]))
				continue;
			if ((pass == 0) != (m->node >= 0))
				continue;
			if (m->node >= 0) {
				node = topology__node(t, m->node);
				if (!node)
					continue;       /* node-missing already said */
				ni = (unsigned)(node - t->nodes);
				before = used[ni * PAGE_SIZES + s];
				avail = node->free_pages[s] - (before < node->free_pages[s] ?
							       before : node->free_pages[s]);
				total = node->total_pages[s];
				snprintf(where, sizeof(where), "node %d", m->node);
			} else {
				for (n = 0; n < t->nr_nodes; n++) {
					uint64_t u = used[n * PAGE_SIZES + s];
					uint64_t f = t->nodes[n].free_pages[s];

					avail += f - (u < f ? u : f);
					before += u;
					total += t->nodes[n].total_pages[s];
				}
				snprintf(where, sizeof(where), "all nodes");
			}
			if (need <= avail) {
				if (node) {
					used[ni * PAGE_SIZES + s] += need;
				} else {
					/* take from nodes in order */
					uint64_t left = need;

					for (n = 0; n < t->nr_nodes && left; n++) {
						uint64_t *u = &used[n * PAGE_SIZES + s];
						uint64_t f = t->nodes[n].free_pages[s];
						uint64_t take = f > *u ? f - *u : 0;

						take = take < left ? take : left;
						*u += take;
						left -= take;
					}
				}
				continue;
			}
			others[0] = '\0';
			if (before)
				snprintf(others, sizeof(others),
					 " (%" PRIu64 " more are taken by VMs before it in the plan)",
					 before);
			snprintf(fb, sizeof(fb), "vms[%u].memory", i);
			key_of(&m->loc, fb, "size", key, sizeof(key));
			size_str(m->size, sz, sizeof(sz));
			add(c, m->allow_fallback ? FINDING_WARNING : FINDING_ERROR, "hugepages-short",
			    line_of(&m->loc, &vm->loc), key, sz,
			    "vm '%s': %s: needs %" PRIu64 " %s pages, %" PRIu64 " free of %" PRIu64
			    "%s%s", vm->name, where, need, page_size__name(m->page_size), avail,
			    total, others,
			    m->allow_fallback ? "; will fall back to 4K pages" :
			    "; reserve more (hugepagesz= hugepages= at boot, or nr_hugepages in "
			    "/sys/devices/system/node/nodeN/hugepages) or set fallback_4k");
		}
	}
	free(used);
}

/* A vCPU's own checks: priority, cpus exist, pinning, node, isolation, housekeeping. */
static void check_vcpu(struct ctx *c, unsigned i, unsigned j, bool *isolation_unknown)
{
	const struct plan_vm *vm = &c->p->vms[i];
	const struct plan_sched *s = &vm->vcpus[j];
	const struct topology *t = c->t;
	const struct plan_memory *m = &vm->memory;
	char fb[96], key[96], what[96], cl[256], bad[256];
	unsigned line = line_of(&s->loc, &vm->loc);
	cpu_set_t x;
	int cpu;

	snprintf(fb, sizeof(fb), "vms[%u].vcpus[%u]", i, j);
	key_of(&s->loc, fb, NULL, key, sizeof(key));
	snprintf(what, sizeof(what), "vm '%s' vcpu %u", vm->name, j);
	check_priority(c, s, &vm->loc, fb, what);
	check_cpus_exist(c, &s->cpus, line, key, what);
	cpus_str(&s->cpus, cl, sizeof(cl));

	if (!CPU_COUNT(&s->cpus)) {
		if (is_rt(s->policy))
			add(c, FINDING_WARNING, "vcpu-unpinned", line, key, "",
			    "%s is %s but not pinned: it may migrate across cpus and share them",
			    what, rt__policy_name(s->policy));
		if (m->strict && m->node >= 0 && t->nr_nodes > 1)
			add(c, FINDING_ERROR, "vcpu-memory-node", line, key, "unpinned",
			    "%s is not pinned but its memory is strictly bound to node %d: pin it to "
			    "node %d's cpus", what, m->node, m->node);
		return;
	}

	/* vCPU and its memory on one node. */
	if (m->node >= 0 && topology__node(t, m->node)) {
		CPU_ZERO(&x);
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &s->cpus) && topology__has_cpu(t, (unsigned)cpu) &&
			    topology__cpu_node(t, (unsigned)cpu) != m->node)
				CPU_SET(cpu, &x);
		if (CPU_COUNT(&x)) {
			int first = 0;

			while (!CPU_ISSET(first, &x))
				first++;
			cpus_str(&x, bad, sizeof(bad));
			add(c, m->strict ? FINDING_ERROR : FINDING_WARNING, "vcpu-memory-node", line,
			    key, cl, "%s: cpu%s %s on node %d but its memory is bound to node %d%s",
			    what, CPU_COUNT(&x) == 1 ? "" : "s", bad,
			    topology__cpu_node(t, (unsigned)first), m->node,
			    m->strict ? " (strict)" : ": every memory access crosses the interconnect");
		}
	}

	if (!is_rt(s->policy))
		return;

	/* RT vCPU on housekeeping cpus. */
	if (c->p->host.housekeeping_set) {
		CPU_AND(&x, &s->cpus, &c->p->host.housekeeping);
		if (CPU_COUNT(&x))
			add(c, FINDING_ERROR, "rt-on-housekeeping", line, key, cl,
			    "%s is pinned to housekeeping cpu%s %s: an RT thread there starves the "
			    "kernel's and the monitor's own work", what,
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)));
	}

	/* Isolation. */
	if (!t->isolated_known || !t->nohz_full_known)
		*isolation_unknown = true;
}

/* isolcpus / nohz_full for an RT thread (RT vCPU or dataplane core). */
static void check_isolation(struct ctx *c, const struct thr *th)
{
	const struct topology *t = c->t;
	char cl[256], bad[256], all[256];
	cpu_set_t x;

	cpu_set_t present;

	topology__cpus(t, &present);
	CPU_AND(&present, &present, &th->cpus);   /* missing cpus are reported as such */
	if (!CPU_COUNT(&present))
		return;
	cpus_str(&th->cpus, cl, sizeof(cl));
	if (t->isolated_known) {
		CPU_XOR(&x, &present, &t->isolated);
		CPU_AND(&x, &x, &present);
		if (CPU_COUNT(&x))
			add(c, FINDING_WARNING, "cpu-not-isolated", th->line, th->key, cl,
			    "%s: cpu%s %s not isolated (isolcpus=/cpusets; isolated on %s: %s): "
			    "other tasks may be scheduled there", th->label,
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)),
			    t->source, cpus_str(&t->isolated, all, sizeof(all)));
	}
	if (t->nohz_full_known) {
		CPU_XOR(&x, &present, &t->nohz_full);
		CPU_AND(&x, &x, &present);
		if (CPU_COUNT(&x))
			add(c, FINDING_WARNING, "cpu-not-nohz-full", th->line, th->key, cl,
			    "%s: cpu%s %s not nohz_full (nohz_full on %s: %s): the scheduler tick "
			    "interrupts it", th->label, CPU_COUNT(&x) == 1 ? "" : "s",
			    cpus_str(&x, bad, sizeof(bad)), t->source,
			    cpus_str(&t->nohz_full, all, sizeof(all)));
	}
}

static void check_dataplane(struct ctx *c)
{
	const struct plan *p = c->p;
	const struct plan_dataplane *dp = &p->host.dataplane;
	const struct topology *t = c->t;
	char key[96], cl[256], bad[256], ns[320], v[16];
	unsigned line = line_of(&dp->loc, &p->host.loc), i;
	cpu_set_t x;
	int cpu;

	if (!dp->present)
		return;
	key_of(&dp->loc, "host.dataplane", "cores", key, sizeof(key));
	cpus_str(&dp->cores, cl, sizeof(cl));
	if (!CPU_COUNT(&dp->cores)) {
		add(c, FINDING_ERROR, "dataplane-no-cores", line, key, "",
		    "the dataplane has no poll-mode cores: give it at least one isolated core");
		return;
	}
	check_cpus_exist(c, &dp->cores, line, key, "dataplane");
	if (dp->main_core >= 0 && !topology__has_cpu(t, (unsigned)dp->main_core)) {
		char mk[96];

		CPU_ZERO(&x);
		CPU_SET(dp->main_core, &x);
		check_cpus_exist(c, &x, line, key_of(&dp->loc, "host.dataplane", "main_core", mk,
						     sizeof(mk)), "dataplane main core");
	}
	if (dp->node >= 0 && !topology__node(t, dp->node)) {
		char nk[96];

		snprintf(v, sizeof(v), "%d", dp->node);
		add(c, FINDING_ERROR, "node-missing", line,
		    key_of(&dp->loc, "host.dataplane", "numa_node", nk, sizeof(nk)), v,
		    "dataplane: NUMA node %d does not exist on %s, which has %s", dp->node,
		    t->source, nodes_str(t, ns, sizeof(ns)));
	}
	if (p->host.housekeeping_set) {
		CPU_AND(&x, &dp->cores, &p->host.housekeeping);
		if (CPU_COUNT(&x))
			add(c, FINDING_WARNING, "dataplane-on-housekeeping", line, key, cl,
			    "dataplane poll core%s %s %s housekeeping: a busy-polling thread takes "
			    "the whole cpu", CPU_COUNT(&x) == 1 ? "" : "s",
			    cpus_str(&x, bad, sizeof(bad)), CPU_COUNT(&x) == 1 ? "is" : "are");
	}
	if (dp->node >= 0 && topology__node(t, dp->node)) {
		CPU_ZERO(&x);
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &dp->cores) && topology__has_cpu(t, (unsigned)cpu) &&
			    topology__cpu_node(t, (unsigned)cpu) != dp->node)
				CPU_SET(cpu, &x);
		if (CPU_COUNT(&x))
			add(c, FINDING_WARNING, "dataplane-node-mismatch", line, key, cl,
			    "dataplane node is %d but poll core%s %s %s on another node", dp->node,
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)),
			    CPU_COUNT(&x) == 1 ? "is" : "are");
	}

	/* The dataplane touches the memory of every VM with a NIC. */
	for (i = 0; i < p->nr_vms; i++) {
		const struct plan_vm *vm = &p->vms[i];

		if (!vm->nr_nics || vm->memory.node < 0 || !topology__node(t, vm->memory.node))
			continue;
		CPU_ZERO(&x);
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &dp->cores) && topology__has_cpu(t, (unsigned)cpu) &&
			    topology__cpu_node(t, (unsigned)cpu) != vm->memory.node)
				CPU_SET(cpu, &x);
		if (CPU_COUNT(&x))
			add(c, FINDING_WARNING, "dataplane-remote-node", line, key, cl,
			    "dataplane poll core%s %s %s not on node %d, where vm '%s' (NIC %s) has "
			    "its memory: every packet crosses the socket interconnect",
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)),
			    CPU_COUNT(&x) == 1 ? "is" : "are", vm->memory.node, vm->name,
			    vm->nics[0].name);
	}
}

/*
 * One finding per RT thread of `rt` allowed on a cpu of `cpus` (the threads of `who`,
 * `line`/`key` in the plan): "WHO VERB cpu(s) X LINK THREAD: ADVICE".
 */
static void check_off_rt_cpus(struct ctx *c, const struct thrs *ts, struct by_cpu *rt,
			      const cpu_set_t *cpus, enum finding_level sev, const char *code,
			      unsigned line, const char *key, const char *who, const char *verb,
			      const char *link, const char *advice)
{
	char cl[256], bad[256];
	unsigned k, n;
	cpu_set_t x;

	cpus_str(cpus, cl, sizeof(cl));
	n = by_cpu__overlapping(rt, cpus);
	for (k = 0; k < n; k++) {
		const struct thr *o = &ts->v[rt->hits[k]];

		CPU_AND(&x, cpus, &o->cpus);
		if (CPU_COUNT(&x))
			add(c, sev, code, line, key, cl, "%s %s cpu%s %s %s %s: %s", who, verb,
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)), link,
			    o->label, advice);
	}
}

/* Emulator threads on RT vCPU cpus; emulator cpus exist; its priority. */
static void check_emulator(struct ctx *c, unsigned i, const struct thrs *ts, struct by_cpu *rt)
{
	const struct plan_vm *vm = &c->p->vms[i];
	const struct plan_sched *s = &vm->emulator;
	char fb[96], key[96], what[96];
	unsigned line = line_of(&s->loc, &vm->loc);

	snprintf(fb, sizeof(fb), "vms[%u].emulator_cpus", i);
	key_of(&s->loc, fb, NULL, key, sizeof(key));
	snprintf(what, sizeof(what), "vm '%s' emulator threads", vm->name);
	check_priority(c, s, &vm->loc, fb, what);
	check_cpus_exist(c, &s->cpus, line, key, what);
	if (!CPU_COUNT(&s->cpus))
		return;
	check_off_rt_cpus(c, ts, rt, &s->cpus, FINDING_WARNING, "emulator-on-rt-cpu", line, key,
			  what, "share", "with", "put them on housekeeping cpus");
}

/* A local disk's I/O thread: its cpus exist, its priority, no RT thread's cpu. */
static void check_disk_io(struct ctx *c, unsigned i, unsigned j, const struct thrs *ts,
			  struct by_cpu *rt)
{
	const struct plan_vm *vm = &c->p->vms[i];
	const struct plan_disk *d = &vm->disks[j];
	const struct plan_sched *s = &d->io;
	char fb[104], key[128], what[136], who[180];
	unsigned line = line_of(&s->loc, &d->loc);

	if (d->kind != PLAN_DISK_LOCAL)
		return;
	snprintf(fb, sizeof(fb), "%s.io", d->loc.key);
	key_of(&s->loc, fb, NULL, key, sizeof(key));
	snprintf(what, sizeof(what), "vm '%s' disk '%s' I/O thread", vm->name, d->name);
	check_priority(c, s, &d->loc, fb, what);
	if (d->io_cpus_set)
		check_cpus_exist(c, &s->cpus, line, key, what);
	if (!CPU_COUNT(&s->cpus))
		return;
	snprintf(who, sizeof(who), "%s%s", what, d->io_cpus_set ? "" : " (on the emulator cpus: no io.cpus)");
	check_off_rt_cpus(c, ts, rt, &s->cpus, FINDING_ERROR, "io-on-rt-cpu", line, key, who,
			  "may run on", "of", "the one starves the other; give it housekeeping or "
			  "emulator cpus");
}

/*
 * The cpus any local disk's I/O thread was given (io.cpus) in *all; with `cpus`, the first
 * such disk allowed on one of them in *vm, *disk.
 */
static void io_cpus(const struct plan *p, cpu_set_t *all, const cpu_set_t *cpus,
		    const struct plan_vm **vm, const struct plan_disk **disk)
{
	unsigned i, j;
	cpu_set_t x;

	CPU_ZERO(all);
	for (i = 0; i < p->nr_vms; i++)
		for (j = 0; j < p->vms[i].nr_disks; j++) {
			const struct plan_disk *d = &p->vms[i].disks[j];

			if (d->kind != PLAN_DISK_LOCAL || !d->io_cpus_set)
				continue;
			CPU_OR(all, all, &d->io.cpus);
			if (!cpus || *disk)
				continue;
			CPU_AND(&x, &d->io.cpus, cpus);
			if (CPU_COUNT(&x)) {
				*vm = &p->vms[i];
				*disk = d;
			}
		}
}

/*
 * The vCPUs of a VM that disables exits (KVM_CAP_X86_DISABLE_EXITS) must own their cpus: a
 * guest that halts (hlt, mwait, cstate) or spins (pause) in guest mode keeps the cpu until the
 * host's tick preempts it, so any other thread allowed there (another vCPU, the VM's emulator,
 * I/O and API threads, a poll core, housekeeping) waits for it. Each such sharing is an error;
 * a cpu that is not isolated (the kernel's own work waits there) a warning.
 */
static void check_exits_disabled(struct ctx *c, unsigned i, const struct thrs *ts,
				 struct by_cpu *all, const cpu_set_t *io_all, bool *isolation_unknown)
{
	static const char advice[] = "the other waits while the guest halts or spins in guest mode; "
		"give each vCPU of a VM with disable_exits a cpu of its own";
	const struct plan_vm *vm = &c->p->vms[i];
	const struct topology *t = c->t;
	char names[64], fb[96], key[96], what[240], cl[256], bad[256];
	unsigned j, k, n;
	cpu_set_t x;

	if (!vm->disable_exits)
		return;
	plan_exit__names(vm->disable_exits, names, sizeof(names));
	for (j = 0; j < vm->nr_vcpus; j++) {
		const struct plan_sched *s = &vm->vcpus[j];
		unsigned line = line_of(&s->loc, &vm->loc);
		const struct plan_vm *io_vm = NULL;
		const struct plan_disk *io_disk = NULL;

		snprintf(fb, sizeof(fb), "vms[%u].vcpus[%u]", i, j);
		key_of(&s->loc, fb, NULL, key, sizeof(key));
		snprintf(what, sizeof(what), "vm '%s' vcpu %u (disable_exits: %s)", vm->name, j, names);
		if (!CPU_COUNT(&s->cpus)) {
			add(c, FINDING_ERROR, "exits-disabled-shared-core", line, key, "unpinned",
			    "%s is not pinned: any thread may share its cpu and wait while the guest "
			    "halts or spins in guest mode; give each vCPU of a VM with disable_exits "
			    "a cpu of its own", what);
			continue;
		}
		cpus_str(&s->cpus, cl, sizeof(cl));
		n = by_cpu__overlapping(all, &s->cpus);
		for (k = 0; k < n; k++) {
			const struct thr *o = &ts->v[all->hits[k]];

			if (o->kind == THR_VCPU && o->vm == (int)i && o->vcpu == j)
				continue;
			if (o->kind == THR_HOUSEKEEPING && !c->p->host.housekeeping_set)
				continue;
			CPU_AND(&x, &s->cpus, &o->cpus);
			add(c, FINDING_ERROR, "exits-disabled-shared-core", line, key, cl,
			    "%s shares cpu%s %s with %s: %s", what, CPU_COUNT(&x) == 1 ? "" : "s",
			    cpus_str(&x, bad, sizeof(bad)), o->label, advice);
		}
		if (!CPU_COUNT(&vm->emulator.cpus))
			add(c, FINDING_ERROR, "exits-disabled-shared-core", line, key, cl,
			    "%s: the VM's emulator threads (main, console, I/O, API) are not pinned, so "
			    "they may run on its cpu%s %s (set emulator_cpus or host.housekeeping_cpus): "
			    "%s", what, CPU_COUNT(&s->cpus) == 1 ? "" : "s", cl, advice);
		CPU_AND(&x, &s->cpus, io_all);
		if (CPU_COUNT(&x)) {
			io_cpus(c->p, &x, &s->cpus, &io_vm, &io_disk);
			CPU_AND(&x, &s->cpus, &io_disk->io.cpus);
			add(c, FINDING_ERROR, "exits-disabled-shared-core", line, key, cl,
			    "%s shares cpu%s %s with vm '%s' disk '%s' I/O thread (%s): %s", what,
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)), io_vm->name,
			    io_disk->name, io_disk->io.loc.key, advice);
		}
		if (!t->isolated_known) {
			*isolation_unknown = true;
			continue;
		}
		topology__cpus(t, &x);
		CPU_AND(&x, &x, &s->cpus);
		CPU_XOR(&x, &x, &t->isolated);
		CPU_AND(&x, &x, &s->cpus);
		if (CPU_COUNT(&x))
			add(c, FINDING_WARNING, "exits-disabled-not-isolated", line, key, cl,
			    "%s: cpu%s %s not isolated (isolcpus=/cpusets on %s): the kernel's tasks "
			    "there wait while the guest halts or spins in guest mode", what,
			    CPU_COUNT(&x) == 1 ? "" : "s", cpus_str(&x, bad, sizeof(bad)), t->source);
	}
}

/* Two RT threads confined to one cpu; other threads on an RT thread's only cpu. */
static void check_shared_cpus(struct ctx *c, const struct thrs *ts, const struct by_cpu *all)
{
	unsigned a, b, k;
	char v[16];

	for (a = 0; a < ts->n; a++) {
		const struct thr *x = &ts->v[a];
		int cpu = single_cpu(&x->cpus);

		if (!x->rt || cpu < 0)
			continue;
		for (k = all->first[cpu]; k < all->first[cpu + 1]; k++) {
			const struct thr *y = &ts->v[all->idx[k]];

			b = all->idx[k];
			if (b == a || (y->kind != THR_VCPU && y->kind != THR_DATAPLANE))
				continue;
			snprintf(v, sizeof(v), "%d", cpu);
			if (y->rt && single_cpu(&y->cpus) == cpu) {
				if (b < a)
					continue;       /* the pair was reported from y */
				add(c, FINDING_ERROR, "fifo-shared-core", y->line, y->key, v,
				    "%s and %s are both confined to cpu %d: whichever runs first "
				    "starves the other", x->label, y->label, cpu);
			} else {
				add(c, FINDING_WARNING, "rt-cpu-shared", y->line, y->key, v,
				    "%s may run on cpu %d, the only cpu of %s: it will be starved or "
				    "add latency", y->label, cpu, x->label);
			}
		}
	}
}

/* Who else uses the SMT siblings of an RT thread's cpus. */
static void check_siblings(struct ctx *c, const struct thrs *ts, struct by_cpu *all)
{
	const struct topology *t = c->t;
	unsigned a, b, k, n;

	for (a = 0; a < ts->n; a++) {
		const struct thr *x = &ts->v[a];
		cpu_set_t sib;
		int cpu;

		if (!x->rt || !CPU_COUNT(&x->cpus))
			continue;
		/* siblings of x's cpus that x itself does not use */
		CPU_ZERO(&sib);
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &x->cpus) && topology__has_cpu(t, (unsigned)cpu))
				CPU_OR(&sib, &sib, &t->cpus[cpu].siblings);
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &x->cpus))
				CPU_CLR(cpu, &sib);
		if (!CPU_COUNT(&sib))
			continue;

		n = by_cpu__overlapping(all, &sib);
		for (k = 0; k < n; k++) {
			const struct thr *y = &ts->v[all->hits[k]];
			char cl[256], bad[256];
			cpu_set_t both;

			b = all->hits[k];
			if (b == a)
				continue;
			/* the same VM's own threads, or dataplane with dataplane: one owner */
			if (x->vm >= 0 && y->vm == x->vm)
				continue;
			if (x->kind == THR_DATAPLANE && y->kind == THR_DATAPLANE)
				continue;
			/* an RT pair is reported once */
			if (y->rt && b < a)
				continue;
			/* emulator threads inside housekeeping: housekeeping says it */
			if (y->kind == THR_EMULATOR && c->p->host.housekeeping_set) {
				cpu_set_t in;

				CPU_AND(&in, &y->cpus, &c->p->host.housekeeping);
				if (CPU_EQUAL(&in, &y->cpus))
					continue;
			}
			if (y->kind == THR_HOUSEKEEPING && !c->p->host.housekeeping_set)
				continue;
			CPU_AND(&both, &sib, &y->cpus);
			if (!CPU_COUNT(&both))
				continue;
			cpus_str(&x->cpus, cl, sizeof(cl));
			add(c, FINDING_WARNING, "smt-sibling-shared", x->line, x->key, cl,
			    "%s on cpu%s %s: its SMT sibling%s %s %s used by %s; siblings share the "
			    "core's execution units and caches", x->label,
			    CPU_COUNT(&x->cpus) == 1 ? "" : "s", cl, CPU_COUNT(&both) == 1 ? "" : "s",
			    cpus_str(&both, bad, sizeof(bad)), CPU_COUNT(&both) == 1 ? "is" : "are",
			    y->label);
		}
	}
}

static void check_rt_throttling(struct ctx *c)
{
	const struct topology *t = c->t;
	char v[32];

	if (!any_rt_policy(c->p))
		return;
	if (!t->rt_known) {
		add(c, FINDING_WARNING, "rt-throttling-unknown", 0, "kernel.sched_rt_runtime_us", "",
		    "cannot check RT throttling: %s has no sched_rt_runtime_us (give rt_runtime=)",
		    t->source);
		return;
	}
	if (t->rt_runtime_us < 0 || t->rt_runtime_us >= t->rt_period_us)
		return;
	snprintf(v, sizeof(v), "%ld", t->rt_runtime_us);
	add(c, FINDING_WARNING, "rt-throttling", 0, "kernel.sched_rt_runtime_us", v,
	    "RT throttling is on (%ld of every %ld us) on %s: fifo/rr threads are stopped for "
	    "%ld us each period; set /proc/sys/kernel/sched_rt_runtime_us to -1",
	    t->rt_runtime_us, t->rt_period_us, t->source, t->rt_period_us - t->rt_runtime_us);
}

/*
 * A vhost-user socket (a NIC's, a disk's) at `loc`: its backend_user exists, its directory
 * can be trusted (a missing host.run_dir is created 0700 by whichever tool starts first).
 */
static void check_socket(struct ctx *c, const struct trust_uids *tu, const char *socket,
			 const char *backend_user, const struct plan_loc *loc, const char *what)
{
	const struct plan_host *h = &c->p->host;
	size_t rl = strlen(h->run_dir);
	struct err e = { 0 };
	char key[128];
	uid_t uid;

	snprintf(key, sizeof(key), "%s.socket", loc->key);
	if (backend_user[0] && trust__user(backend_user, &uid, NULL))
		add(c, FINDING_ERROR, "user-missing", loc->line, key, backend_user,
		    "backend_user: no such user on this host");
	if (trust__socket_dir(socket, tu, what, &e) == 0)
		return;
	if (e.code == -ENOENT && !strncmp(socket, h->run_dir, rl) && socket[rl] == '/')
		return;
	add(c, e.code == -ENOENT ? FINDING_WARNING : FINDING_ERROR,
	    e.code == -ENOENT ? "socket-dir-missing" : "socket-dir-untrusted", loc->line, key,
	    socket, "%s", e.msg);
}

int plan_serial__check(const struct plan_serial *ser, const struct trust_uids *tu,
		       const char *run_dir, const char **code, struct err *e)
{
	size_t rl = strlen(run_dir);
	char dir[sizeof(ser->path)];
	const char *slash;
	struct stat st;
	int rc;

	if (ser->mode != PLAN_SERIAL_FILE && ser->mode != PLAN_SERIAL_SOCKET)
		return 0;
	slash = strrchr(ser->path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - ser->path) : 1,
		 slash ? ser->path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	if (ser->mode == PLAN_SERIAL_FILE) {
		*code = "serial-file-unusable";
		if (stat(ser->path, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				return err__set(e, -EISDIR, "file %s: a directory", ser->path);
			if (access(ser->path, W_OK) < 0) {
				rc = -errno;
				return err__set(e, rc, "file %s: not writable here: %s", ser->path,
						strerror(-rc));
			}
			return 0;
		}
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return err__set(e, -ENOENT, "file %s: no directory %s to create it in",
					ser->path, dir);
		if (access(dir, W_OK | X_OK) < 0) {
			rc = -errno;
			return err__set(e, rc, "file %s: cannot be created in %s: %s", ser->path, dir,
					strerror(-rc));
		}
		return 0;
	}
	/* A socket: its directory trusted as a vhost-user socket's (a missing run_dir is made). */
	*code = "socket-dir-untrusted";
	rc = trust__socket_dir(ser->path, tu, "socket", e);
	if (rc == -ENOENT && rl && !strncmp(ser->path, run_dir, rl) && ser->path[rl] == '/')
		return 0;
	if (rc == -ENOENT)
		*code = "serial-socket-unusable";
	if (rc)
		return rc;
	*code = "serial-socket-unusable";
	if (lstat(ser->path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return err__set(e, -EEXIST, "socket %s: the path exists and is not a socket",
				ser->path);
	*code = "serial-socket-in-use";
	if (lstat(ser->path, &st) == 0 && trust__socket_in_use(ser->path))
		return err__set(e, -EADDRINUSE, "socket %s: another process listens on it (a VM "
				"running already?)", ser->path);
	return 0;
}

int plan_disk__check_image(const struct plan_disk *d, const char **code, struct err *e)
{
	static const unsigned char qcow2_magic[4] = { 'Q', 'F', 'I', 0xfb };
	unsigned char head[4];
	struct stat st;
	ssize_t got;
	int fd, rc;

	*code = "disk-image-missing";
	if (stat(d->path, &st) < 0) {
		rc = -errno;
		if (rc != -ENOENT && rc != -ENOTDIR)
			*code = "disk-image-unreadable";
		return err__set(e, rc, "image: %s", strerror(-rc));
	}
	*code = "disk-image-not-a-disk";
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return err__set(e, -EINVAL, "image: %s, not a raw image file or a block device",
				S_ISDIR(st.st_mode) ? "a directory" : "a special file");
	*code = "disk-image-unreadable";
	if (access(d->path, R_OK) < 0) {
		rc = -errno;
		return err__set(e, rc, "image: cannot read it: %s", strerror(-rc));
	}
	*code = "disk-image-readonly";
	if (!d->readonly && access(d->path, W_OK) < 0) {
		rc = -errno;
		return err__set(e, rc, "image: not writable here (%s): set readonly (readonly: true, "
				"--disk ...,readonly=on) or make it writable", strerror(-rc));
	}
	/* A block device is left alone: opening one can have effects (a tape, a CD tray). */
	if (!S_ISREG(st.st_mode))
		return 0;
	*code = "disk-image-too-small";
	if (st.st_size < 512)
		return err__set(e, -EINVAL, "image: %lld bytes: a disk holds at least one 512-byte "
				"sector", (long long)st.st_size);
	*code = "disk-image-unreadable";
	fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		return err__set(e, rc, "image: cannot open it: %s", strerror(-rc));
	}
	got = pread(fd, head, sizeof(head), 0);
	rc = got < 0 ? -errno : 0;
	close(fd);
	if (rc)
		return err__set(e, rc, "image: cannot read it: %s", strerror(-rc));
	*code = "disk-image-qcow2";
	if (got == (ssize_t)sizeof(head) && !memcmp(head, qcow2_magic, sizeof(head)))
		return err__set(e, -EINVAL, "image: a qcow2 image (magic QFI\\xfb), not raw: serve it "
				"with qemu-storage-daemon (--export type=vhost-user-blk) as a disk with "
				"'socket', or convert it (qemu-img convert -O raw)");
	*code = "";
	return 0;
}

/* One local disk's image, for the check across images: which file, which disk. */
struct image_use {
	dev_t dev;
	ino_t ino;
	unsigned vm, disk;
};

static int cmp_image_use(const void *a, const void *b)
{
	const struct image_use *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->vm != y->vm)
		return x->vm < y->vm ? -1 : 1;
	return x->disk < y->disk ? -1 : x->disk > y->disk;
}

/*
 * Local disks' images on this host: each one usable as its disk says; one image (the
 * same file or device under any name) given to two disks, one of them writable, is an error:
 * the writer corrupts what the other has cached.
 */
static void check_disk_images(struct ctx *c)
{
	const struct plan *p = c->p;
	struct image_use *u;
	unsigned i, j, n = 0, cap = 0, first;
	struct stat st;

	for (i = 0; i < p->nr_vms; i++)
		cap += p->vms[i].nr_disks;
	if (!cap)
		return;
	u = calloc(cap, sizeof(*u));
	if (!u) {
		c->ret = -ENOMEM;
		return;
	}
	for (i = 0; i < p->nr_vms; i++)
		for (j = 0; j < p->vms[i].nr_disks; j++) {
			const struct plan_disk *d = &p->vms[i].disks[j];
			struct err e = { 0 };
			const char *code;

			if (d->kind != PLAN_DISK_LOCAL)
				continue;
			if (plan_disk__check_image(d, &code, &e)) {
				add(c, FINDING_ERROR, code, line_of(&d->image_loc, &d->loc),
				    d->image_loc.key, d->path, "vm '%s' disk '%s': %s", p->vms[i].name,
				    d->name, e.msg);
				continue;
			}
			if (stat(d->path, &st) < 0)
				continue;
			u[n++] = (struct image_use){ .dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev,
						     .ino = S_ISBLK(st.st_mode) ? 0 : st.st_ino,
						     .vm = i, .disk = j };
		}
	qsort(u, n, sizeof(*u), cmp_image_use);
	for (first = 0, i = 1; i <= n; i++) {
		const struct plan_disk *a, *b;
		bool writer = false;

		if (i < n && u[i].dev == u[first].dev && u[i].ino == u[first].ino)
			continue;
		for (j = first; j < i; j++)
			writer |= !p->vms[u[j].vm].disks[u[j].disk].readonly;
		a = &p->vms[u[first].vm].disks[u[first].disk];
		for (j = first + 1; writer && j < i; j++) {
			b = &p->vms[u[j].vm].disks[u[j].disk];
			add(c, FINDING_ERROR, "disk-image-shared", line_of(&b->image_loc, &b->loc),
			    b->image_loc.key, b->path, "vm '%s' disk '%s' and vm '%s' disk '%s' (%s, "
			    "line %u) use the same image and %s writable: the writer corrupts what "
			    "the other reads; give each its own image, or make both readonly",
			    p->vms[u[j].vm].name, b->name, p->vms[u[first].vm].name, a->name,
			    a->image_loc.key, line_of(&a->image_loc, &a->loc),
			    a->readonly || b->readonly ? "one of them is" : "both are");
		}
		first = i;
	}
	free(u);
}

/* A VM's serial file or socket: usable here (plan_serial__check). */
static void check_serial(struct ctx *c, const struct trust_uids *tu, const struct plan_serial *ser)
{
	struct err e = { 0 };
	const char *code = "";

	if (plan_serial__check(ser, tu, c->p->host.run_dir, &code, &e))
		add(c, FINDING_ERROR, code, ser->loc.line, ser->loc.key, ser->path, "%s", e.msg);
}

/*
 * Who the tools run as, where the sockets that hand out guest RAM live, the disks' images.
 * Users, groups, directories and files are this host's facts: checked only against this host.
 */
static void check_security(struct ctx *c)
{
	const struct plan_host *h = &c->p->host;
	struct trust_uids tu = { .service = TRUST_NO_UID, .only = TRUST_NO_UID };
	bool here = !strcmp(c->t->source, "this host");
	unsigned i, j;
	gid_t gid;

	if (!h->user[0] && (c->p->nr_vms || h->dataplane.present))
		add(c, FINDING_WARNING, "no-service-user", h->loc.line, "host", "",
		    "no host.user: rtvmm and rtvmm-dataplane keep the privileges they start with for "
		    "the VMs' whole life; name an unprivileged user to drop to after set-up");
	if (here && h->user[0] && trust__user(h->user, &tu.service, &gid))
		add(c, FINDING_ERROR, "user-missing", h->user_loc.line, "host.user", h->user,
		    "no such user on this host");
	if (here && h->group[0] && trust__group(h->group, &gid))
		add(c, FINDING_ERROR, "group-missing", h->user_loc.line, "host.group", h->group,
		    "no such group on this host");
	if (!here)
		return;
	for (i = 0; i < c->p->nr_vms; i++) {
		const struct plan_vm *vm = &c->p->vms[i];

		for (j = 0; j < vm->nr_nics; j++)
			check_socket(c, &tu, vm->nics[j].socket, vm->nics[j].backend_user,
				     &vm->nics[j].loc, "NIC socket");
		for (j = 0; j < vm->nr_disks; j++)
			if (vm->disks[j].kind == PLAN_DISK_VHOST_USER)
				check_socket(c, &tu, vm->disks[j].socket, vm->disks[j].backend_user,
					     &vm->disks[j].loc, "disk socket");
		check_serial(c, &tu, &vm->serial);
	}
	check_disk_images(c);
}

/* Report order: by line in the file (stable), findings about the host (line 0) last. */
struct order {
	unsigned line;             /* 0 -> UINT_MAX: last */
	unsigned index;            /* where it was added: ties keep that order */
};

static int cmp_order(const void *a, const void *b)
{
	const struct order *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int sort_by_line(struct findings *f)
{
	struct finding *sorted;
	struct order *o;
	unsigned i;

	if (f->nr < 2)
		return 0;
	o = calloc(f->nr, sizeof(*o));
	sorted = calloc(f->nr, sizeof(*sorted));
	if (!o || !sorted) {
		free(o);
		free(sorted);
		return -ENOMEM;
	}
	for (i = 0; i < f->nr; i++) {
		o[i].line = f->items[i].line ? f->items[i].line : UINT_MAX;
		o[i].index = i;
	}
	qsort(o, f->nr, sizeof(*o), cmp_order);
	for (i = 0; i < f->nr; i++)
		sorted[i] = f->items[o[i].index];
	free(f->items);
	free(o);
	f->items = sorted;
	f->cap = f->nr;
	return 0;
}

int plan__check(const struct plan *p, const struct topology *t, struct findings *out)
{
	struct ctx c = { .p = p, .t = t, .out = out };
	bool isolation_unknown = false;
	struct by_cpu *rt, *all;
	cpu_set_t io_all;
	struct thrs ts = { 0 };
	unsigned i, j;

	if (!p || !t || !out)
		return -EINVAL;
	rt = calloc(1, sizeof(*rt));
	all = calloc(1, sizeof(*all));
	if (!rt || !all || build_threads(p, &ts) || by_cpu__build(rt, &ts, true) ||
	    by_cpu__build(all, &ts, false)) {
		c.ret = -ENOMEM;
		goto out_free;
	}

	for (i = 0; i < p->nr_vms; i++) {
		check_vm_memory(&c, i);
		for (j = 0; j < p->vms[i].nr_vcpus; j++)
			check_vcpu(&c, i, j, &isolation_unknown);
		check_emulator(&c, i, &ts, rt);
		for (j = 0; j < p->vms[i].nr_disks; j++)
			check_disk_io(&c, i, j, &ts, rt);
	}
	check_hugepages(&c);

	for (i = 0; i < ts.n; i++)
		if (ts.v[i].kind == THR_HOUSEKEEPING && p->host.housekeeping_set)
			check_cpus_exist(&c, &ts.v[i].cpus, ts.v[i].line, ts.v[i].key,
					 "housekeeping");
	check_dataplane(&c);

	for (i = 0; i < ts.n; i++)
		if (ts.v[i].rt)
			check_isolation(&c, &ts.v[i]);
	if (p->host.dataplane.present && CPU_COUNT(&p->host.dataplane.cores) &&
	    (!t->isolated_known || !t->nohz_full_known))
		isolation_unknown = true;

	check_shared_cpus(&c, &ts, all);
	io_cpus(p, &io_all, NULL, NULL, NULL);
	for (i = 0; i < p->nr_vms; i++)
		check_exits_disabled(&c, i, &ts, all, &io_all, &isolation_unknown);
	if (isolation_unknown)
		add(&c, FINDING_WARNING, "isolation-unknown", 0, "", "",
		    "cannot check that RT cpus are isolated: %s has no %s information (give "
		    "isolated= and nohz_full=)", t->source,
		    !t->isolated_known && !t->nohz_full_known ? "isolcpus or nohz_full" :
		    !t->isolated_known ? "isolcpus" : "nohz_full");
	check_siblings(&c, &ts, all);
	check_rt_throttling(&c);
	check_security(&c);
	if (!c.ret)
		c.ret = sort_by_line(out);

out_free:
	if (rt)
		by_cpu__free(rt);
	if (all)
		by_cpu__free(all);
	free(rt);
	free(all);
	free(ts.v);
	return c.ret;
}

/* ---- output ---- */

static const char *level_name(enum finding_level l)
{
	return l == FINDING_ERROR ? "error" : "warning";
}

void findings__print(const struct findings *f, const struct plan *p, const struct topology *t,
		     FILE *out)
{
	const char *file = p && p->file[0] ? p->file : "(plan)";
	unsigned i, ne = findings__count(f, FINDING_ERROR), nw = findings__count(f, FINDING_WARNING);

	for (i = 0; f && i < f->nr; i++) {
		const struct finding *x = &f->items[i];

		if (x->line)
			fprintf(out, "%s:%u: ", file, x->line);
		else
			fprintf(out, "%s: ", file);
		fprintf(out, "%s: ", level_name(x->level));
		if (x->key[0])
			fprintf(out, "%s: ", x->key);
		if (x->value[0])
			fprintf(out, "%s: ", x->value);
		fprintf(out, "%s [%s]\n", x->message, x->code);
	}
	fprintf(out, "%u error%s, %u warning%s (topology: %s)\n", ne, ne == 1 ? "" : "s", nw,
		nw == 1 ? "" : "s", t ? t->source : "none");
}

int findings__print_json(const struct findings *f, const struct plan *p, const struct topology *t,
			 FILE *out)
{
	json_t *root, *arr;
	unsigned i;
	int ret = 0;

	arr = json_array();
	if (!arr)
		return -ENOMEM;
	for (i = 0; f && i < f->nr; i++) {
		const struct finding *x = &f->items[i];
		json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "level", level_name(x->level),
				      "code", x->code, "line", (json_int_t)x->line, "key", x->key,
				      "value", x->value, "message", x->message);

		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	root = json_pack("{s:s, s:s, s:I, s:I, s:o}", "file", p ? p->file : "",
			 "topology", t ? t->source : "", "errors",
			 (json_int_t)findings__count(f, FINDING_ERROR), "warnings",
			 (json_int_t)findings__count(f, FINDING_WARNING), "findings", arr);
	if (!root)
		return -EINVAL;   /* out of memory or not UTF-8; "o" released arr */
	if (json_dumpf(root, out, JSON_INDENT(2)) || fputc('\n', out) == EOF)
		ret = -EIO;
	json_decref(root);
	return ret;
}

int plan__check_host(const struct plan *p, FILE *out, struct err *e)
{
	struct findings f = { 0 };
	struct topology t;
	int err;

	err = topology__load_host(&t, e);
	if (err)
		return err;
	err = plan__check(p, &t, &f);
	if (err < 0) {
		err__set(e, err, "%s: cannot check the plan", p->file);
	} else {
		err = (int)findings__count(&f, FINDING_ERROR);
		if (f.nr)
			findings__print(&f, p, &t, out);
	}
	findings__free(&f);
	topology__free(&t);
	return err;
}
