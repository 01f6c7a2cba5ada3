/*
 * config/check: host plans built in C (no YAML) checked against synthetic
 * topologies: a 2-socket x 8-core x 2-thread telco host with isolated cores
 * and hugepages, and a 1-node 2-cpu machine like the one the tests run on.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/cpus.h"
#include "config/check.h"
#include "config/parse.h"
#include "config/plan.h"
#include "numa/topology.h"

/* Intel numbering: cpus 0-7 socket 0, 8-15 socket 1, cpu N+16 is the sibling of cpu N. */
#define TELCO_DESC                                                                           \
	"package:2 numa:1 core:8 pu:2(indexes=0,16,1,17,2,18,3,19,4,20,5,21,6,22,7,23,8,24,9," \
	"25,10,26,11,27,12,28,13,29,14,30,15,31)"
/* Housekeeping is cores 0 and 8 (cpus 0,16,8,24). */
#define TELCO_OVERRIDES                                                                      \
	"isolated=1-7,9-15,17-23,25-31 nohz_full=1-7,9-15,17-23,25-31 "                      \
	"hugepages=node0:2M:2048,node0:1G:8,node1:2M:1024,node1:1G:4 rt_runtime=-1"
/* Like the machine here: one node, two cpus, nothing isolated, RT throttling on, no 1G. */
#define SMALL_DESC "numa:1 core:2 pu:1"
#define SMALL_OVERRIDES                                                                      \
	"isolated=none nohz_full=none pagesizes=2M hugepages=node0:2M:0 rt_runtime=950000 "    \
	"rt_period=1000000"

struct fx {
	struct topology t;
	struct plan p;
	struct findings f;
};

static int setup_topo(struct fx **out, const char *desc, const char *ov)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct err e = { 0 };

	if (!x || topology__load_synthetic(&x->t, desc, ov, &e)) {
		fprintf(stderr, "setup: %s\n", e.msg);
		free(x);
		return -1;
	}
	snprintf(x->p.file, sizeof(x->p.file), "host.yaml");
	/* A service user (nobody's uid): only test_check_without_user_warns goes without. */
	snprintf(x->p.host.user, sizeof(x->p.host.user), "65534");
	snprintf(x->p.host.run_dir, sizeof(x->p.host.run_dir), "/run/rtvmm");
	*out = x;
	return 0;
}

static int setup_telco(void **state)
{
	return setup_topo((struct fx **)state, TELCO_DESC, TELCO_OVERRIDES);
}

static int setup_small(void **state)
{
	return setup_topo((struct fx **)state, SMALL_DESC, SMALL_OVERRIDES);
}

static int setup_bare(void **state)
{
	return setup_topo((struct fx **)state, TELCO_DESC, NULL);
}

static int teardown(void **state)
{
	struct fx *x = *state;

	findings__free(&x->f);
	plan__free(&x->p);
	topology__free(&x->t);
	free(x);
	return 0;
}

/* ---- building plans ---- */

static void loc(struct plan_loc *l, unsigned line, const char *fmt, ...)
{
	va_list ap;

	l->line = line;
	va_start(ap, fmt);
	vsnprintf(l->key, sizeof(l->key), fmt, ap);
	va_end(ap);
}

static cpu_set_t cpus(const char *list)
{
	cpu_set_t s;

	assert_int_equal(cpus__parse(list, &s), 0);
	return s;
}

static void housekeeping(struct plan *p, const char *list)
{
	p->host.housekeeping = cpus(list);
	p->host.housekeeping_set = true;
	loc(&p->host.loc, 2, "host");
}

/* A VM whose lines start at 10 * (index + 1): memory on +2, vcpus[j] on +4+j, emulator +3. */
static struct plan_vm *vm_add(struct plan *p, const char *name, uint64_t size,
			      enum page_size ps, int node, bool strict)
{
	struct plan_vm *v;
	unsigned i = p->nr_vms, base = 10 * (i + 1);

	p->vms = realloc(p->vms, (i + 1) * sizeof(*p->vms));
	assert_non_null(p->vms);
	p->nr_vms++;
	v = &p->vms[i];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	loc(&v->loc, base, "vms[%u]", i);
	v->memory.size = size;
	v->memory.page_size = ps;
	v->memory.node = node;
	v->memory.strict = strict;
	loc(&v->memory.loc, base + 2, "vms[%u].memory", i);
	loc(&v->emulator.loc, base + 3, "vms[%u].emulator_cpus", i);
	return v;
}

static void vcpu_add(struct plan *p, struct plan_vm *v, const char *list, enum rt_policy pol,
		     int prio)
{
	unsigned i = (unsigned)(v - p->vms), j = v->nr_vcpus;
	struct plan_sched *s;

	v->vcpus = realloc(v->vcpus, (j + 1) * sizeof(*v->vcpus));
	assert_non_null(v->vcpus);
	v->nr_vcpus++;
	s = &v->vcpus[j];
	memset(s, 0, sizeof(*s));
	if (list)
		s->cpus = cpus(list);
	else
		CPU_ZERO(&s->cpus);
	s->policy = pol;
	s->priority = prio;
	loc(&s->loc, 10 * (i + 1) + 4 + j, "vms[%u].vcpus[%u].cpus", i, j);
}

static void emulator(struct plan_vm *v, const char *list)
{
	v->emulator.cpus = cpus(list);
}

static void nic_add(struct plan_vm *v, const char *name)
{
	v->nics = realloc(v->nics, (v->nr_nics + 1) * sizeof(*v->nics));
	assert_non_null(v->nics);
	memset(&v->nics[v->nr_nics], 0, sizeof(v->nics[0]));
	snprintf(v->nics[v->nr_nics].name, sizeof(v->nics[0].name), "%s", name);
	v->nics[v->nr_nics].queues = 1;
	v->nr_nics++;
}

/* A local disk (path) or, with `socket`, a vhost-user one; its lines start at 40 + 2 * index. */
static struct plan_disk *disk_add(struct plan_vm *v, const char *path, const char *socket,
				  bool readonly)
{
	unsigned i = v->nr_disks, vm = v->loc.line / 10 - 1;
	struct plan_disk *d;

	v->disks = realloc(v->disks, (v->nr_disks + 1) * sizeof(*v->disks));
	assert_non_null(v->disks);
	d = &v->disks[v->nr_disks++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "disk%u", i);
	d->kind = socket ? PLAN_DISK_VHOST_USER : PLAN_DISK_LOCAL;
	snprintf(d->path, sizeof(d->path), "%s", path ? path : "");
	snprintf(d->socket, sizeof(d->socket), "%s", socket ? socket : "");
	d->readonly = readonly;
	d->queues = 1;
	d->io = v->emulator;
	loc(&d->loc, 40 + 2 * i, "vms[%u].disks[%u]", vm, i);
	loc(&d->image_loc, 41 + 2 * i, "vms[%u].disks[%u].%s", vm, i, socket ? "socket" : "path");
	return d;
}

/* io: {cpus: LIST, policy, priority} of a local disk, given on line 60. */
static void disk_io(struct plan_disk *d, const char *list, enum rt_policy pol, int prio)
{
	d->io.cpus = cpus(list);
	d->io.policy = pol;
	d->io.priority = prio;
	d->io_cpus_set = true;
	loc(&d->io.loc, 60, "%s.io.cpus", d->loc.key);
}

static void dataplane(struct plan *p, const char *cores, int node)
{
	p->host.dataplane.present = true;
	p->host.dataplane.cores = cpus(cores);
	p->host.dataplane.main_core = -1;
	p->host.dataplane.node = node;
	loc(&p->host.dataplane.loc, 5, "host.dataplane");
}

/*
 * The telco plan: VM vnf0 (4 fifo vCPUs on cores 1-4 of socket 0, 1G pages on
 * node 0, a NIC served by the dataplane on cores 5-6), vnf1 (2 fifo vCPUs on
 * socket 1, node 1), vm2 (best-effort vCPUs, 2M pages); emulators on
 * housekeeping; every RT cpu's sibling idle.
 */
static void telco_plan(struct plan *p)
{
	struct plan_vm *v;

	housekeeping(p, "0,8,16,24");
	dataplane(p, "5-6", 0);

	v = vm_add(p, "vnf0", 4ull << 30, PAGE_1G, 0, true);
	vcpu_add(p, v, "1", RT_POLICY_FIFO, 80);
	vcpu_add(p, v, "2", RT_POLICY_FIFO, 80);
	vcpu_add(p, v, "3", RT_POLICY_FIFO, 80);
	vcpu_add(p, v, "4", RT_POLICY_FIFO, 80);
	emulator(v, "0,16");
	nic_add(v, "net0");

	v = vm_add(p, "vnf1", 2ull << 30, PAGE_1G, 1, true);
	vcpu_add(p, v, "9", RT_POLICY_FIFO, 80);
	vcpu_add(p, v, "10", RT_POLICY_RR, 70);
	emulator(v, "8,24");

	v = vm_add(p, "vm2", 1ull << 30, PAGE_2M, 1, false);
	vcpu_add(p, v, "11-12", RT_POLICY_OTHER, 0);
	vcpu_add(p, v, "11-12", RT_POLICY_OTHER, 0);
	emulator(v, "8,24");
}

/* ---- looking at findings ---- */

static void dump(const struct fx *x)
{
	findings__print(&x->f, &x->p, &x->t, stderr);
}

static unsigned count(const struct findings *f, const char *code)
{
	unsigned i, n = 0;

	for (i = 0; i < f->nr; i++)
		n += !strcmp(f->items[i].code, code);
	return n;
}

/* The only finding with `code`, failing the test if there is not exactly one. */
static const struct finding *only(const struct fx *x, const char *code)
{
	unsigned i;

	if (count(&x->f, code) != 1) {
		dump(x);
		fail_msg("want exactly one '%s' finding, have %u", code, count(&x->f, code));
	}
	for (i = 0; i < x->f.nr; i++)
		if (!strcmp(x->f.items[i].code, code))
			return &x->f.items[i];
	return NULL;
}

static void check(struct fx *x)
{
	assert_int_equal(plan__check(&x->p, &x->t, &x->f), 0);
}

static void assert_contains(const char *s, const char *part)
{
	if (!strstr(s, part))
		fail_msg("'%s' does not contain '%s'", s, part);
}

/* ---- tests on the telco host ---- */

static void test_check_clean_plan_has_no_findings(void **state)
{
	struct fx *x = *state;

	telco_plan(&x->p);
	check(x);
	if (x->f.nr) {
		dump(x);
		fail_msg("%u findings on the clean telco plan", x->f.nr);
	}
}

static void test_check_cpu_missing_is_error_naming_key(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *v;

	v = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, v, "1", RT_POLICY_OTHER, 0);
	vcpu_add(&x->p, v, "12", RT_POLICY_OTHER, 0);
	check(x);
	f = only(x, "cpu-missing");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[0].vcpus[1].cpus");
	assert_int_equal(f->line, 15);
	assert_string_equal(f->value, "12");
	assert_contains(f->message, "cpu 12");
	assert_contains(f->message, "cpus 0-1");     /* what the machine does have */
	assert_int_equal(findings__count(&x->f, FINDING_ERROR), 1);
}

static void test_check_housekeeping_and_dataplane_cpus_missing(void **state)
{
	struct fx *x = *state;
	unsigned i, hk = 0, dp = 0;

	housekeeping(&x->p, "0,40");
	dataplane(&x->p, "1,33", -1);
	check(x);
	assert_int_equal(count(&x->f, "cpu-missing"), 2);
	for (i = 0; i < x->f.nr; i++) {
		if (strcmp(x->f.items[i].code, "cpu-missing"))
			continue;
		hk += !strcmp(x->f.items[i].key, "host.housekeeping_cpus") &&
		      !strcmp(x->f.items[i].value, "40");
		dp += !strcmp(x->f.items[i].key, "host.dataplane.cores") &&
		      !strcmp(x->f.items[i].value, "33");
	}
	assert_int_equal(hk, 1);
	assert_int_equal(dp, 1);
}

static void test_check_two_fifo_vcpus_on_one_core(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a, *b;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "3", RT_POLICY_FIFO, 80);
	b = vm_add(&x->p, "b", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, b, "3", RT_POLICY_RR, 50);
	check(x);
	f = only(x, "fifo-shared-core");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[1].vcpus[0].cpus");
	assert_int_equal(f->line, 24);
	assert_string_equal(f->value, "3");
	assert_contains(f->message, "vm 'a' vcpu 0");
	assert_contains(f->message, "vm 'b' vcpu 0");
}

static void test_check_fifo_vcpu_on_dataplane_core(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	dataplane(&x->p, "5-6", 0);
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "6", RT_POLICY_FIFO, 80);
	check(x);
	f = only(x, "fifo-shared-core");
	assert_string_equal(f->value, "6");
	assert_contains(f->message, "dataplane poll core 6");
}

static void test_check_best_effort_vcpu_on_rt_cpu_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "3", RT_POLICY_FIFO, 80);
	vcpu_add(&x->p, a, "3-4", RT_POLICY_OTHER, 0);
	check(x);
	f = only(x, "rt-cpu-shared");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "vms[0].vcpus[1].cpus");
	assert_int_equal(count(&x->f, "fifo-shared-core"), 0);
}

static void test_check_strict_memory_on_other_node_is_error(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, true);
	vcpu_add(&x->p, a, "2", RT_POLICY_FIFO, 80);
	vcpu_add(&x->p, a, "9", RT_POLICY_FIFO, 80);
	check(x);
	f = only(x, "vcpu-memory-node");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[0].vcpus[1].cpus");
	assert_string_equal(f->value, "9");
	assert_contains(f->message, "node 1");
	assert_contains(f->message, "node 0");
	assert_contains(f->message, "strict");

	/* not strict: a warning */
	findings__free(&x->f);
	x->p.vms[0].memory.strict = false;
	check(x);
	assert_int_equal(only(x, "vcpu-memory-node")->level, FINDING_WARNING);
}

static void test_check_unpinned_vcpus(void **state)
{
	struct fx *x = *state;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 1, true);
	vcpu_add(&x->p, a, NULL, RT_POLICY_FIFO, 80);
	check(x);
	assert_int_equal(only(x, "vcpu-unpinned")->level, FINDING_WARNING);
	assert_int_equal(only(x, "vcpu-memory-node")->level, FINDING_ERROR);
	assert_string_equal(only(x, "vcpu-memory-node")->value, "unpinned");
}

static void test_check_memory_node_missing(void **state)
{
	struct fx *x = *state;
	const struct finding *f;

	vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 2, true);
	check(x);
	f = only(x, "node-missing");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[0].memory.numa_node");
	assert_string_equal(f->value, "2");
	assert_contains(f->message, "2 NUMA nodes (0-1)");
}

static void test_check_hugepages_short_names_node_needed_free(void **state)
{
	struct fx *x = *state;
	const struct finding *f;

	/* node 1 has 1024 free 2M pages: 768 + 768 do not fit */
	vm_add(&x->p, "a", 1536ull << 20, PAGE_2M, 1, false);
	vm_add(&x->p, "b", 1536ull << 20, PAGE_2M, 1, false);
	vm_add(&x->p, "c", 1536ull << 20, PAGE_2M, 0, false);   /* node 0: fine */
	check(x);
	f = only(x, "hugepages-short");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[1].memory.size");
	assert_int_equal(f->line, 22);
	assert_string_equal(f->value, "1536M");
	assert_contains(f->message, "vm 'b'");
	assert_contains(f->message, "node 1");
	assert_contains(f->message, "needs 768 2M pages");
	assert_contains(f->message, "256 free of 1024");
	assert_contains(f->message, "768 more are taken");

	/* allowed to fall back: a warning, and the fallback VM takes no hugepages */
	findings__free(&x->f);
	x->p.vms[1].memory.allow_fallback = true;
	check(x);
	f = only(x, "hugepages-short");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_contains(f->message, "fall back to 4K");
}

static void test_check_1g_pages_over_the_node(void **state)
{
	struct fx *x = *state;

	vm_add(&x->p, "a", 5ull << 30, PAGE_1G, 1, false);   /* node 1 has 4 */
	check(x);
	assert_contains(only(x, "hugepages-short")->message, "needs 5 1G pages, 4 free");
}

static void test_check_sibling_of_rt_vcpu_used_by_housekeeping_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,17,24");   /* 17 is cpu 1's sibling */
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	emulator(a, "0,16");
	check(x);
	f = only(x, "smt-sibling-shared");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "vms[0].vcpus[0].cpus");
	assert_string_equal(f->value, "1");
	assert_contains(f->message, "sibling 17");
	assert_contains(f->message, "housekeeping");
}

static void test_check_sibling_of_rt_vcpu_used_by_another_vm_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a, *b;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "2", RT_POLICY_FIFO, 80);
	vcpu_add(&x->p, a, "18", RT_POLICY_FIFO, 80);   /* its own sibling: the VM's choice */
	vcpu_add(&x->p, a, "4", RT_POLICY_FIFO, 80);
	b = vm_add(&x->p, "b", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, b, "20", RT_POLICY_OTHER, 0);   /* cpu 4's sibling */
	check(x);
	f = only(x, "smt-sibling-shared");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "vms[0].vcpus[2].cpus");
	assert_string_equal(f->value, "4");
	assert_contains(f->message, "sibling 20");
	assert_contains(f->message, "vm 'b' vcpu 0");
	assert_int_equal(x->f.nr, 1);
}

static void test_check_dataplane_on_other_node_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	dataplane(&x->p, "9-10", -1);
	a = vm_add(&x->p, "a", 1ull << 30, PAGE_1G, 0, true);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	nic_add(a, "net0");
	check(x);
	f = only(x, "dataplane-remote-node");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "host.dataplane.cores");
	assert_int_equal(f->line, 5);
	assert_string_equal(f->value, "9-10");
	assert_contains(f->message, "node 0");
	assert_contains(f->message, "vm 'a'");
}

static void test_check_rt_vcpu_on_housekeeping_is_error(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "0", RT_POLICY_FIFO, 80);
	emulator(a, "16");
	check(x);
	f = only(x, "rt-on-housekeeping");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->value, "0");
	/* and cpu 0 is not isolated either */
	assert_int_equal(count(&x->f, "cpu-not-isolated"), 1);
}

static void test_check_emulator_on_rt_cpu_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	emulator(a, "0-1");
	check(x);
	f = only(x, "emulator-on-rt-cpu");
	assert_string_equal(f->key, "vms[0].emulator_cpus");
	assert_contains(f->message, "cpu 1");
}

static void test_check_priorities_out_of_range(void **state)
{
	struct fx *x = *state;
	struct plan_vm *a;
	unsigned i, n = 0;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 100);
	vcpu_add(&x->p, a, "2", RT_POLICY_RR, 0);
	vcpu_add(&x->p, a, "3", RT_POLICY_OTHER, 5);
	vcpu_add(&x->p, a, "4", RT_POLICY_FIFO, 99);
	check(x);
	assert_int_equal(count(&x->f, "priority-range"), 3);
	for (i = 0; i < x->f.nr; i++)
		if (!strcmp(x->f.items[i].code, "priority-range")) {
			assert_int_equal(x->f.items[i].level, FINDING_ERROR);
			n++;
		}
	assert_int_equal(n, 3);
	assert_string_equal(x->f.items[0].key, "vms[0].vcpus[0].priority");
	assert_string_equal(x->f.items[0].value, "100");
}

static void test_check_not_isolated_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	/* no housekeeping given: cpu 8 is simply not isolated */
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 1, false);
	vcpu_add(&x->p, a, "8", RT_POLICY_FIFO, 80);
	vcpu_add(&x->p, a, "9", RT_POLICY_FIFO, 80);
	check(x);
	f = only(x, "cpu-not-isolated");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "vms[0].vcpus[0].cpus");
	assert_string_equal(f->value, "8");
	assert_contains(f->message, "isolcpus");
	f = only(x, "cpu-not-nohz-full");
	assert_string_equal(f->value, "8");
	assert_int_equal(x->f.nr, 2);
}

static void test_check_dataplane_cores_need_isolation_too(void **state)
{
	struct fx *x = *state;

	housekeeping(&x->p, "0,8,16,24");
	dataplane(&x->p, "16", 0);
	check(x);
	assert_int_equal(only(x, "cpu-not-isolated")->level, FINDING_WARNING);
	assert_int_equal(only(x, "dataplane-on-housekeeping")->level, FINDING_WARNING);
}

static void test_check_dataplane_without_cores_is_error(void **state)
{
	struct fx *x = *state;

	dataplane(&x->p, "", -1);
	check(x);
	assert_int_equal(only(x, "dataplane-no-cores")->level, FINDING_ERROR);
}

/* ---- tests on the small machine ---- */

static void test_check_1g_pages_unsupported(void **state)
{
	struct fx *x = *state;
	const struct finding *f;

	vm_add(&x->p, "a", 1ull << 30, PAGE_1G, 0, false);
	check(x);
	f = only(x, "page-size-unsupported");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[0].memory.page_size");
	assert_string_equal(f->value, "1G");
	assert_int_equal(f->line, 12);
	assert_contains(f->message, "1G");
	assert_int_equal(count(&x->f, "hugepages-short"), 0);   /* one error is enough */
}

static void test_check_small_machine_has_no_second_node(void **state)
{
	struct fx *x = *state;
	const struct finding *f;

	vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 1, true);
	check(x);
	f = only(x, "node-missing");
	assert_contains(f->message, "1 NUMA node (0)");
}

static void test_check_small_machine_2m_pages_none_reserved(void **state)
{
	struct fx *x = *state;

	vm_add(&x->p, "a", 64ull << 20, PAGE_2M, 0, false);
	check(x);
	assert_contains(only(x, "hugepages-short")->message, "needs 32 2M pages, 0 free of 0");
}

static void test_check_rt_throttling_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a;

	housekeeping(&x->p, "0");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	emulator(a, "0");
	check(x);
	f = only(x, "rt-throttling");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "kernel.sched_rt_runtime_us");
	assert_string_equal(f->value, "950000");
	assert_contains(f->message, "-1");
	/* and the machine has nothing isolated */
	assert_int_equal(count(&x->f, "cpu-not-isolated"), 1);
	assert_int_equal(count(&x->f, "cpu-not-nohz-full"), 1);

	/* no RT policy, no throttling finding */
	findings__free(&x->f);
	a->vcpus[0].policy = RT_POLICY_OTHER;
	a->vcpus[0].priority = 0;
	check(x);
	assert_int_equal(x->f.nr, 0);

	/* a fifo dataplane alone is RT too: throttled, and named with its priority where it
	 * shares a cpu */
	dataplane(&x->p, "1", -1);
	x->p.host.dataplane.policy = RT_POLICY_FIFO;
	x->p.host.dataplane.priority = 50;
	findings__free(&x->f);
	check(x);
	assert_int_equal(only(x, "rt-throttling")->level, FINDING_WARNING);
	assert_contains(only(x, "cpu-not-isolated")->message, "dataplane poll core 1 (fifo 50)");
}

/* ---- a topology that knows only the hardware ---- */

static void test_check_unknown_host_state_is_said_not_passed(void **state)
{
	struct fx *x = *state;
	struct plan_vm *a;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 1ull << 30, PAGE_1G, 0, true);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	check(x);
	assert_int_equal(findings__count(&x->f, FINDING_ERROR), 0);
	assert_contains(only(x, "hugepages-unknown")->message, "no hugepage information");
	assert_int_equal(only(x, "isolation-unknown")->level, FINDING_WARNING);
	assert_int_equal(only(x, "rt-throttling-unknown")->level, FINDING_WARNING);
	assert_int_equal(count(&x->f, "cpu-not-isolated"), 0);
}

/* ---- output ---- */

static void test_check_print_names_file_line_key_value(void **state)
{
	struct fx *x = *state;
	struct plan_vm *a;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "12", RT_POLICY_OTHER, 0);
	check(x);
	out = open_memstream(&buf, &len);
	assert_non_null(out);
	findings__print(&x->f, &x->p, &x->t, out);
	fclose(out);
	assert_contains(buf, "host.yaml:14: error: vms[0].vcpus[0].cpus: 12: ");
	assert_contains(buf, "1 error, 0 warnings (topology: synthetic 'numa:1 core:2 pu:1')\n");
	free(buf);
}

static void test_check_json_is_valid(void **state)
{
	struct fx *x = *state;
	struct plan_vm *a;
	json_error_t jerr;
	json_t *root, *arr, *it;
	char *buf = NULL;
	size_t len = 0, i;
	FILE *out;

	housekeeping(&x->p, "0");
	a = vm_add(&x->p, "a \"quoted\"", 1ull << 30, PAGE_1G, 0, false);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	vcpu_add(&x->p, a, "7", RT_POLICY_FIFO, 80);
	check(x);
	assert_true(x->f.nr >= 4);

	out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(findings__print_json(&x->f, &x->p, &x->t, out), 0);
	fclose(out);
	root = json_loads(buf, 0, &jerr);
	if (!root)
		fail_msg("invalid JSON at line %d: %s\n%s", jerr.line, jerr.text, buf);
	assert_string_equal(json_string_value(json_object_get(root, "file")), "host.yaml");
	assert_string_equal(json_string_value(json_object_get(root, "topology")), x->t.source);
	assert_int_equal(json_integer_value(json_object_get(root, "errors")),
			 findings__count(&x->f, FINDING_ERROR));
	assert_int_equal(json_integer_value(json_object_get(root, "warnings")),
			 findings__count(&x->f, FINDING_WARNING));
	arr = json_object_get(root, "findings");
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), x->f.nr);
	json_array_foreach(arr, i, it) {
		const char *level = json_string_value(json_object_get(it, "level"));

		assert_non_null(level);
		assert_true(!strcmp(level, "error") || !strcmp(level, "warning"));
		assert_string_equal(json_string_value(json_object_get(it, "code")),
				    x->f.items[i].code);
		assert_true(json_is_integer(json_object_get(it, "line")));
		assert_true(json_is_string(json_object_get(it, "key")));
		assert_true(json_is_string(json_object_get(it, "value")));
		assert_string_equal(json_string_value(json_object_get(it, "message")),
				    x->f.items[i].message);
	}
	json_decref(root);
	free(buf);
}

static void test_check_without_user_warns(void **state)
{
	struct fx *x = *state;

	telco_plan(&x->p);
	x->p.host.user[0] = '\0';
	check(x);
	assert_int_equal(x->f.nr, 1);
	assert_non_null(only(x, "no-service-user"));
}

/* On this host: a NIC socket in a world-writable directory is an error, in a 0700 one nothing. */
static void test_check_socket_directory_on_this_host(void **state)
{
	char open_dir[] = "/tmp/rtvmm-check-XXXXXX", tight[] = "/tmp/rtvmm-check-XXXXXX";
	struct fx *x = *state;
	struct err e = { 0 };
	struct plan_vm *v;

	topology__free(&x->t);
	assert_int_equal(topology__load_host(&x->t, &e), 0);
	assert_non_null(mkdtemp(open_dir));
	assert_non_null(mkdtemp(tight));
	assert_int_equal(chmod(open_dir, 0777), 0);
	v = vm_add(&x->p, "a", 64ull << 20, PAGE_4K, -1, false);
	vcpu_add(&x->p, v, "0", RT_POLICY_OTHER, 0);
	nic_add(v, "net0");
	nic_add(v, "net1");
	snprintf(v->nics[0].socket, sizeof(v->nics[0].socket), "%s/a.sock", open_dir);
	snprintf(v->nics[1].socket, sizeof(v->nics[1].socket), "%s/b.sock", tight);
	loc(&v->nics[0].loc, 20, "vms[0].nics[0]");
	loc(&v->nics[1].loc, 24, "vms[0].nics[1]");
	snprintf(x->p.host.user, sizeof(x->p.host.user), "no-such-user-here");
	check(x);
	assert_int_equal(count(&x->f, "socket-dir-untrusted"), 1);
	assert_string_equal(only(x, "socket-dir-untrusted")->key, "vms[0].nics[0].socket");
	assert_non_null(strstr(only(x, "socket-dir-untrusted")->message, "world-writable"));
	assert_int_equal(count(&x->f, "user-missing"), 1);
	rmdir(open_dir);
	rmdir(tight);
}

/* ---- disks ---- */

/*
 * A disk's I/O thread on an RT vCPU's cpu is an error (explicit io.cpus or the emulator's by
 * default); on the emulator's cpus next to the monitor's other threads it is fine. Against a
 * topology that is not this host the images are not looked at.
 */
static void test_check_disk_io_thread_on_rt_cpu_is_error(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *a, *b;
	struct plan_disk *d;
	unsigned i;

	housekeeping(&x->p, "0,8,16,24");
	a = vm_add(&x->p, "a", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, a, "1", RT_POLICY_FIFO, 80);
	vcpu_add(&x->p, a, "2", RT_POLICY_FIFO, 80);
	emulator(a, "0,16");
	disk_io(disk_add(a, "/no/such/root.img", NULL, false), "0,16", RT_POLICY_FIFO, 10);
	disk_io(disk_add(a, "/no/such/data.img", NULL, false), "2-3", RT_POLICY_OTHER, 0);
	disk_add(a, "/no/such/log.img", NULL, false);          /* the emulator's cpus */
	disk_add(a, NULL, "/no/such/qsd.sock", false);        /* vhost-user: no I/O thread here */
	check(x);
	f = only(x, "io-on-rt-cpu");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_int_equal(f->line, 60);
	assert_string_equal(f->key, "vms[0].disks[1].io.cpus");
	assert_string_equal(f->value, "2-3");
	assert_contains(f->message, "vm 'a' disk 'disk1' I/O thread may run on cpu 2 of vm 'a' vcpu 1 (fifo 80)");
	assert_int_equal(count(&x->f, "disk-image-missing"), 0);
	assert_int_equal(count(&x->f, "emulator-on-rt-cpu"), 0);
	findings__free(&x->f);

	/* By default on the emulator cpus: an emulator on an RT cpu takes its disks' I/O there. */
	b = vm_add(&x->p, "b", 256ull << 20, PAGE_4K, 0, false);
	vcpu_add(&x->p, b, "3", RT_POLICY_FIFO, 80);
	emulator(b, "3,8");
	d = disk_add(b, "/no/such/b.img", NULL, false);
	d->io.loc = b->emulator.loc;
	check(x);
	assert_int_equal(count(&x->f, "io-on-rt-cpu"), 3);
	assert_int_equal(count(&x->f, "emulator-on-rt-cpu"), 1);
	for (i = 0; i < x->f.nr; i++)
		if (!strcmp(x->f.items[i].code, "io-on-rt-cpu") && x->f.items[i].line == 23) {
			assert_string_equal(x->f.items[i].key, "vms[1].emulator_cpus");
			assert_contains(x->f.items[i].message, "disk 'disk0' I/O thread (on the "
					"emulator cpus: no io.cpus) may run on cpu 3 of vm 'b' vcpu 0");
		}

	/* An RT I/O thread's priority is checked like any other. */
	findings__free(&x->f);
	x->p.vms[1].disks[0].io.policy = RT_POLICY_RR;
	x->p.vms[1].disks[0].io.priority = 120;
	check(x);
	assert_int_equal(count(&x->f, "priority-range"), 1);
}

/* The first finding with `code` whose message contains `part`, failing the test if there is none. */
static const struct finding *saying(const struct fx *x, const char *code, const char *part)
{
	unsigned i;

	for (i = 0; i < x->f.nr; i++)
		if (!strcmp(x->f.items[i].code, code) && strstr(x->f.items[i].message, part))
			return &x->f.items[i];
	dump(x);
	fail_msg("no '%s' finding saying '%s'", code, part);
	return NULL;
}

/*
 * disable_exits: each vCPU of the VM must own its cpus. Sharing one with another vCPU, a poll
 * core, housekeeping, its emulator or a disk's I/O thread, or being unpinned, is an error.
 */
static void test_check_disable_exits_needs_cpus_of_its_own(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *v;

	/* The telco plan's vnf0 owns cores 1-4, isolated: nothing to say. */
	telco_plan(&x->p);
	x->p.vms[0].disable_exits = PLAN_EXIT_HLT | PLAN_EXIT_PAUSE;
	check(x);
	if (x->f.nr) {
		dump(x);
		fail_msg("%u findings for vnf0 with exits disabled on its own cores", x->f.nr);
	}
	findings__free(&x->f);

	/* vm2's two vCPUs share cpus 11-12: each is refused, naming the other. */
	x->p.vms[2].disable_exits = PLAN_EXIT_HLT;
	check(x);
	assert_int_equal(count(&x->f, "exits-disabled-shared-core"), 2);
	f = saying(x, "exits-disabled-shared-core", "vm 'vm2' vcpu 0 (disable_exits: hlt) shares "
		   "cpus 11-12 with vm 'vm2' vcpu 1: the other waits");
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[2].vcpus[0].cpus");
	assert_int_equal(f->line, 34);
	assert_string_equal(f->value, "11-12");
	saying(x, "exits-disabled-shared-core", "vm 'vm2' vcpu 1 (disable_exits: hlt) shares cpus "
	       "11-12 with vm 'vm2' vcpu 0");
	findings__free(&x->f);
	x->p.vms[2].disable_exits = 0;

	/* A poll core, housekeeping, its own emulator, a disk's I/O thread, no pin at all. */
	v = vm_add(&x->p, "rt", 256ull << 20, PAGE_4K, 0, false);
	v->disable_exits = PLAN_EXIT_MWAIT;
	vcpu_add(&x->p, v, "6", RT_POLICY_OTHER, 0);
	vcpu_add(&x->p, v, "0", RT_POLICY_OTHER, 0);
	vcpu_add(&x->p, v, "7", RT_POLICY_OTHER, 0);
	vcpu_add(&x->p, v, "13", RT_POLICY_OTHER, 0);
	vcpu_add(&x->p, v, NULL, RT_POLICY_OTHER, 0);
	emulator(v, "7,8");
	disk_io(disk_add(v, "/no/such/rt.img", NULL, false), "13", RT_POLICY_OTHER, 0);
	check(x);
	saying(x, "exits-disabled-shared-core", "vm 'rt' vcpu 0 (disable_exits: mwait) shares cpu 6 "
	       "with dataplane poll core 6");
	saying(x, "exits-disabled-shared-core", "vm 'rt' vcpu 1 (disable_exits: mwait) shares cpu 0 "
	       "with housekeeping");
	saying(x, "exits-disabled-shared-core", "vm 'rt' vcpu 2 (disable_exits: mwait) shares cpu 7 "
	       "with vm 'rt' emulator threads");
	f = saying(x, "exits-disabled-shared-core", "vm 'rt' vcpu 3 (disable_exits: mwait) shares cpu "
		   "13 with vm 'rt' disk 'disk0' I/O thread (vms[3].disks[0].io.cpus)");
	assert_string_equal(f->key, "vms[3].vcpus[3].cpus");
	f = saying(x, "exits-disabled-shared-core", "vm 'rt' vcpu 4 (disable_exits: mwait) is not "
		   "pinned");
	assert_string_equal(f->value, "unpinned");
	saying(x, "exits-disabled-shared-core", "vm 'rt' vcpu 1 (disable_exits: mwait) shares cpu 0 "
	       "with vm 'vnf0' emulator threads");
	assert_int_equal(count(&x->f, "exits-disabled-shared-core"), 6);
	assert_int_equal(count(&x->f, "exits-disabled-not-isolated"), 1);   /* cpu 0 */
	findings__free(&x->f);

	/* An unpinned emulator may run on any cpu, the vCPU's too. */
	CPU_ZERO(&v->emulator.cpus);
	v->nr_vcpus = 1;
	v->vcpus[0].cpus = cpus("7");
	v->nr_disks = 0;
	check(x);
	f = only(x, "exits-disabled-shared-core");
	assert_contains(f->message, "vm 'rt' vcpu 0 (disable_exits: mwait): the VM's emulator "
			"threads (main, console, I/O, API) are not pinned, so they may run on its cpu 7");
}

/* disable_exits on a cpu that is not isolated: a warning. */
static void test_check_disable_exits_on_a_cpu_not_isolated_warns(void **state)
{
	struct fx *x = *state;
	const struct finding *f;
	struct plan_vm *v;

	v = vm_add(&x->p, "a", 64ull << 20, PAGE_4K, 0, false);
	v->disable_exits = PLAN_EXIT_PAUSE;
	vcpu_add(&x->p, v, "1", RT_POLICY_OTHER, 0);
	emulator(v, "0");
	check(x);
	f = only(x, "exits-disabled-not-isolated");
	assert_int_equal(f->level, FINDING_WARNING);
	assert_string_equal(f->key, "vms[0].vcpus[0].cpus");
	assert_string_equal(f->value, "1");
	assert_contains(f->message, "vm 'a' vcpu 0 (disable_exits: pause): cpu 1 not isolated");
	assert_int_equal(count(&x->f, "exits-disabled-shared-core"), 0);
	assert_int_equal(count(&x->f, "isolation-unknown"), 0);
	findings__free(&x->f);

	/* Without exits disabled, a best-effort vCPU there is no finding. */
	v->disable_exits = 0;
	check(x);
	assert_int_equal(count(&x->f, "exits-disabled-not-isolated"), 0);
}

/* A topology without isolation information: said, not passed. */
static void test_check_disable_exits_without_isolation_info_says_so(void **state)
{
	struct fx *x = *state;
	struct plan_vm *v;

	v = vm_add(&x->p, "a", 64ull << 20, PAGE_4K, 0, false);
	v->disable_exits = PLAN_EXIT_HLT;
	vcpu_add(&x->p, v, "1", RT_POLICY_OTHER, 0);
	emulator(v, "0");
	check(x);
	assert_int_equal(count(&x->f, "isolation-unknown"), 1);
	assert_int_equal(count(&x->f, "exits-disabled-not-isolated"), 0);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* The finding with `code` on line `line`, failing the test if there is none. */
static const struct finding *at_line(const struct fx *x, const char *code, unsigned line)
{
	unsigned i;

	for (i = 0; i < x->f.nr; i++)
		if (!strcmp(x->f.items[i].code, code) && x->f.items[i].line == line)
			return &x->f.items[i];
	dump(x);
	fail_msg("no '%s' finding on line %u", code, line);
	return NULL;
}

/* On this host: each image as its disk uses it, one image shared with a writer. */
static void test_check_disk_images_on_this_host(void **state)
{
	char dir[] = "/tmp/rtvmm-check-XXXXXX", path[8][128];
	static const unsigned char qcow2[1024] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	static const unsigned char raw[1024] = { 0xeb, 0x63 };
	struct fx *x = *state;
	struct err e = { 0 };
	const struct finding *f;
	struct plan_vm *v, *w;

	topology__free(&x->t);
	assert_int_equal(topology__load_host(&x->t, &e), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(path[0], sizeof(path[0]), "%s/root.img", dir);
	snprintf(path[1], sizeof(path[1]), "%s/small.img", dir);
	snprintf(path[2], sizeof(path[2]), "%s/vnf.qcow2", dir);
	snprintf(path[3], sizeof(path[3]), "%s/missing.img", dir);
	snprintf(path[4], sizeof(path[4]), "%s/link.img", dir);
	snprintf(path[5], sizeof(path[5]), "%s/shared.img", dir);
	write_file(path[0], raw, sizeof(raw), 0644);
	write_file(path[1], raw, 511, 0644);
	write_file(path[2], qcow2, sizeof(qcow2), 0644);
	assert_int_equal(symlink(path[0], path[4]), 0);
	write_file(path[5], raw, sizeof(raw), 0644);

	v = vm_add(&x->p, "a", 64ull << 20, PAGE_4K, -1, false);
	vcpu_add(&x->p, v, "0", RT_POLICY_OTHER, 0);
	disk_add(v, path[0], NULL, false);   /* 41: fine alone ...                          */
	disk_add(v, path[1], NULL, false);   /* 43: 511 bytes                               */
	disk_add(v, path[2], NULL, false);   /* 45: qcow2                                   */
	disk_add(v, path[3], NULL, false);   /* 47: missing                                 */
	disk_add(v, dir, NULL, true);        /* 49: a directory                             */
	disk_add(v, "/dev/null", NULL, true);/* 51: a character device                      */
	disk_add(v, path[5], NULL, true);    /* 53: shared readonly, fine                   */
	w = vm_add(&x->p, "b", 64ull << 20, PAGE_4K, -1, false);
	vcpu_add(&x->p, w, "0", RT_POLICY_OTHER, 0);
	disk_add(w, path[4], NULL, true);    /* 41 (vm b): ... but vm b reads it via a link */
	disk_add(w, path[5], NULL, true);    /* 43 (vm b): shared readonly, fine            */
	check(x);

	f = at_line(x, "disk-image-too-small", 43);
	assert_int_equal(f->level, FINDING_ERROR);
	assert_string_equal(f->key, "vms[0].disks[1].path");
	assert_string_equal(f->value, path[1]);
	assert_contains(f->message, "vm 'a' disk 'disk1': image: 511 bytes: a disk holds at least one 512-byte sector");
	assert_contains(at_line(x, "disk-image-qcow2", 45)->message, "a qcow2 image");
	assert_contains(at_line(x, "disk-image-qcow2", 45)->message, "qemu-storage-daemon");
	assert_contains(at_line(x, "disk-image-missing", 47)->message, "No such file or directory");
	assert_contains(at_line(x, "disk-image-not-a-disk", 49)->message, "a directory");
	assert_contains(at_line(x, "disk-image-not-a-disk", 51)->message, "a special file");
	f = only(x, "disk-image-shared");
	assert_string_equal(f->key, "vms[1].disks[0].path");
	assert_contains(f->message, "vm 'b' disk 'disk0' and vm 'a' disk 'disk0' (vms[0].disks[0].path, "
			"line 41) use the same image and one of them is writable");
	assert_int_equal(count(&x->f, "disk-image-unreadable") + count(&x->f, "disk-image-readonly"), 0);

	/* Both readers: nothing to say. */
	findings__free(&x->f);
	x->p.vms[0].disks[0].readonly = true;
	check(x);
	assert_int_equal(count(&x->f, "disk-image-shared"), 0);

	unlink(path[0]);
	unlink(path[1]);
	unlink(path[2]);
	unlink(path[4]);
	unlink(path[5]);
	rmdir(dir);
}

/*
 * A read-only image without `readonly`, and an unreadable one, as an unprivileged user would
 * see them (root reads and writes anything: a child drops to nobody first).
 */
static void test_check_disk_image_readonly_and_unreadable(void **state)
{
	char dir[] = "/tmp/rtvmm-check-XXXXXX", ro[128], secret[128];
	static const unsigned char raw[4096];
	struct plan_disk d = { .kind = PLAN_DISK_LOCAL };
	struct err e = { 0 };
	const char *code;
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(ro, sizeof(ro), "%s/ro.img", dir);
	snprintf(secret, sizeof(secret), "%s/secret.img", dir);
	write_file(ro, raw, sizeof(raw), 0444);
	write_file(secret, raw, sizeof(raw), 0200);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
				       setresuid(65534, 65534, 65534)))
			_exit(10);
		snprintf(d.path, sizeof(d.path), "%s", ro);
		if (plan_disk__check_image(&d, &code, &e) != -EACCES ||
		    strcmp(code, "disk-image-readonly") || !strstr(e.msg, "set readonly"))
			_exit(11);
		d.readonly = true;
		if (plan_disk__check_image(&d, &code, &e) != 0)
			_exit(12);
		snprintf(d.path, sizeof(d.path), "%s", secret);
		if (plan_disk__check_image(&d, &code, &e) != -EACCES ||
		    strcmp(code, "disk-image-unreadable") || !strstr(e.msg, "cannot read it"))
			_exit(13);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(ro);
	unlink(secret);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* On this host: a vhost-user disk's socket in a world-writable directory, like a NIC's. */
static void test_check_disk_socket_directory_on_this_host(void **state)
{
	char open_dir[] = "/tmp/rtvmm-check-XXXXXX", sock[128];
	struct fx *x = *state;
	struct err e = { 0 };
	const struct finding *f;
	struct plan_vm *v;

	topology__free(&x->t);
	assert_int_equal(topology__load_host(&x->t, &e), 0);
	assert_non_null(mkdtemp(open_dir));
	assert_int_equal(chmod(open_dir, 0777), 0);
	snprintf(sock, sizeof(sock), "%s/qsd.sock", open_dir);
	v = vm_add(&x->p, "a", 64ull << 20, PAGE_4K, -1, false);
	vcpu_add(&x->p, v, "0", RT_POLICY_OTHER, 0);
	disk_add(v, NULL, sock, false);
	snprintf(v->disks[0].backend_user, sizeof(v->disks[0].backend_user), "no-such-user-here");
	check(x);
	f = only(x, "socket-dir-untrusted");
	assert_string_equal(f->key, "vms[0].disks[0].socket");
	assert_int_equal(f->line, 40);
	assert_contains(f->message, "world-writable");
	assert_string_equal(only(x, "user-missing")->value, "no-such-user-here");
	rmdir(open_dir);
}

/*
 * On this host: a serial socket in a world-writable directory, or where another process
 * listens, is an error; a serial file in a missing directory too; usable ones pass.
 */
static void test_check_serial_file_and_socket_on_this_host(void **state)
{
	char open_dir[] = "/tmp/rtvmm-check-XXXXXX", tight[] = "/tmp/rtvmm-check-XXXXXX";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fx *x = *state;
	struct err e = { 0 };
	const struct finding *f;
	struct plan_vm *v[4];
	unsigned i;
	int fd;

	topology__free(&x->t);
	assert_int_equal(topology__load_host(&x->t, &e), 0);
	assert_non_null(mkdtemp(open_dir));
	assert_non_null(mkdtemp(tight));
	assert_int_equal(chmod(open_dir, 0777), 0);
	for (i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "vm%u", i);
		v[i] = vm_add(&x->p, name, 64ull << 20, PAGE_4K, -1, false);
		vcpu_add(&x->p, v[i], "0", RT_POLICY_OTHER, 0);
	}
	for (i = 0; i < 4; i++) {
		v[i] = &x->p.vms[i]; /* vm_add moved them */
		loc(&v[i]->serial.loc, 50 + i, "vms[%u].serial", i);
	}
	v[0]->serial.mode = PLAN_SERIAL_SOCKET;
	snprintf(v[0]->serial.path, sizeof(v[0]->serial.path), "%s/c.sock", open_dir);
	/* A live listener at vm1's path. */
	v[1]->serial.mode = PLAN_SERIAL_SOCKET;
	snprintf(v[1]->serial.path, sizeof(v[1]->serial.path), "%s/busy.sock", tight);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", v[1]->serial.path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	v[2]->serial.mode = PLAN_SERIAL_FILE;
	snprintf(v[2]->serial.path, sizeof(v[2]->serial.path), "%s/no/such/dir/vm.log", tight);
	/* Usable: a new log file in a directory that exists. */
	v[3]->serial.mode = PLAN_SERIAL_FILE;
	snprintf(v[3]->serial.path, sizeof(v[3]->serial.path), "%s/vm.log", tight);
	check(x);
	f = only(x, "socket-dir-untrusted");
	assert_int_equal(f->line, 50);
	assert_contains(f->message, "world-writable");
	f = only(x, "serial-socket-in-use");
	assert_int_equal(f->line, 51);
	assert_contains(f->message, "another process listens on it");
	f = only(x, "serial-file-unusable");
	assert_int_equal(f->line, 52);
	assert_contains(f->message, "no directory");
	close(fd);
	unlink(sa.sun_path);
	rmdir(open_dir);
	rmdir(tight);
}

#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_check_clean_plan_has_no_findings, setup_telco),
		T(test_check_without_user_warns, setup_telco),
		T(test_check_socket_directory_on_this_host, setup_small),
		T(test_check_serial_file_and_socket_on_this_host, setup_small),
		T(test_check_cpu_missing_is_error_naming_key, setup_small),
		T(test_check_housekeeping_and_dataplane_cpus_missing, setup_telco),
		T(test_check_two_fifo_vcpus_on_one_core, setup_telco),
		T(test_check_fifo_vcpu_on_dataplane_core, setup_telco),
		T(test_check_best_effort_vcpu_on_rt_cpu_warns, setup_telco),
		T(test_check_strict_memory_on_other_node_is_error, setup_telco),
		T(test_check_unpinned_vcpus, setup_telco),
		T(test_check_memory_node_missing, setup_telco),
		T(test_check_hugepages_short_names_node_needed_free, setup_telco),
		T(test_check_1g_pages_over_the_node, setup_telco),
		T(test_check_sibling_of_rt_vcpu_used_by_housekeeping_warns, setup_telco),
		T(test_check_sibling_of_rt_vcpu_used_by_another_vm_warns, setup_telco),
		T(test_check_dataplane_on_other_node_warns, setup_telco),
		T(test_check_rt_vcpu_on_housekeeping_is_error, setup_telco),
		T(test_check_emulator_on_rt_cpu_warns, setup_telco),
		T(test_check_priorities_out_of_range, setup_telco),
		T(test_check_not_isolated_warns, setup_telco),
		T(test_check_dataplane_cores_need_isolation_too, setup_telco),
		T(test_check_dataplane_without_cores_is_error, setup_telco),
		T(test_check_1g_pages_unsupported, setup_small),
		T(test_check_small_machine_has_no_second_node, setup_small),
		T(test_check_small_machine_2m_pages_none_reserved, setup_small),
		T(test_check_rt_throttling_warns, setup_small),
		T(test_check_unknown_host_state_is_said_not_passed, setup_bare),
		T(test_check_print_names_file_line_key_value, setup_small),
		T(test_check_json_is_valid, setup_small),
		T(test_check_disable_exits_needs_cpus_of_its_own, setup_telco),
		T(test_check_disable_exits_on_a_cpu_not_isolated_warns, setup_small),
		T(test_check_disable_exits_without_isolation_info_says_so, setup_bare),
		T(test_check_disk_io_thread_on_rt_cpu_is_error, setup_telco),
		T(test_check_disk_images_on_this_host, setup_small),
		cmocka_unit_test(test_check_disk_image_readonly_and_unreadable),
		T(test_check_disk_socket_directory_on_this_host, setup_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
