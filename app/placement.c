#include "app/placement.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numa/mem.h"
#include "rt/rt.h"

/* A plan's thread placement as rt/ takes it. */
static struct rt_sched sched_of(const struct plan_sched *s)
{
	return (struct rt_sched){ .cpus = s->cpus, .policy = s->policy, .priority = s->priority };
}

/* vm_hooks.provide_memory: guest RAM placed per the plan (page size, node, prefault, mlock). */
static int provide_memory(void *opaque, struct guest_mem *mem, uint64_t size, struct err *e)
{
	const struct plan_memory *m = &((struct placement *)opaque)->plan->memory;
	struct numa_mem_spec spec = {
		.size = size, .page_size = m->page_size, .node = m->node, .prefault = m->prefault,
		.mlock = m->mlock, .allow_fallback = m->allow_fallback,
	};
	struct numa_mem placed;
	int err;

	err = numa_mem__create(&placed, &spec, e);
	if (err)
		return err;
	err = guest_mem__adopt(mem, placed.fd, placed.base, placed.size, placed.page_size);
	if (err) {
		numa_mem__destroy(&placed);
		return err__set(e, err, "memory: sealing the guest RAM memfd: %s", strerror(-err));
	}
	return 0;
}

/* vm_hooks.vcpu_thread_start: the vCPU thread moves itself to its planned cpus and policy. */
static int place_vcpu(void *opaque, unsigned index, pid_t tid)
{
	struct placement *p = opaque;
	struct rt_sched s = sched_of(&p->plan->vcpus[index]);
	struct err e = { 0 };
	int err;

	err = rt__apply(tid, &s, &e);
	if (err)
		fprintf(stderr, "rtvmm: vcpu%u: %s\n", index, e.msg);
	pthread_mutex_lock(&p->lock);
	p->nr_placed++;
	pthread_cond_broadcast(&p->placed_cond);
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* True when any vCPU of the plan runs with a real-time policy. */
static bool plan_is_rt(const struct plan_vm *p)
{
	unsigned i;

	for (i = 0; i < p->nr_vcpus; i++)
		if (p->vcpus[i].policy != RT_POLICY_OTHER)
			return true;
	return false;
}

/* One line of what the proof found, on stderr; the first is kept in p->failed. */
__attribute__((format(printf, 2, 3)))
static void finding(struct placement *p, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "rtvmm: %s\n", line);
	if (!p->failed[0])
		snprintf(p->failed, sizeof(p->failed), "%s", line);
}

/*
 * vm_hooks.vcpus_started: waits until every vCPU thread placed itself, then reads every
 * thread of the monitor back from the kernel, prints the table and checks
 * the vCPUs and the disks' I/O threads against the plan. Returns 0, or -EINVAL when they
 * differ.
 */
static int prove_placement(void *opaque, const struct vm *vm)
{
	struct placement *p = opaque;
	unsigned i, n = 0, nr = vm->nr_vcpus;
	unsigned cap = nr + 8 + p->plan->nr_nics + p->plan->nr_disks;
	struct rt_thread *rows;
	struct dirent *d;
	DIR *dir;
	int err = 0;

	pthread_mutex_lock(&p->lock);
	while (p->nr_placed < nr)
		pthread_cond_wait(&p->placed_cond, &p->lock);
	pthread_mutex_unlock(&p->lock);

	rows = calloc(cap, sizeof(*rows));
	dir = opendir("/proc/self/task");
	if (!rows || !dir) {
		free(rows);
		if (dir)
			closedir(dir);
		return -ENOMEM;
	}
	while ((d = readdir(dir)) && n < cap)
		if (d->d_name[0] != '.' && rt__read((pid_t)atoi(d->d_name), &rows[n]) == 0)
			n++;
	closedir(dir);
	fprintf(stderr, "rtvmm: thread placement read back from the kernel:\n");
	rt__print_table(stderr, rows, n);
	for (i = 0; i < nr; i++) {
		struct rt_sched want = sched_of(&p->plan->vcpus[i]);
		struct rt_thread t;

		if (rt__read(vm->vcpus[i].tid, &t) == 0 && rt__matches(&t, &want))
			continue;
		finding(p, "vcpu%u: the kernel's placement differs from the plan (%s:%u: %s)", i,
			p->file, p->plan->vcpus[i].loc.line, p->plan->vcpus[i].loc.key);
		err = -EINVAL;
	}
	for (i = 0; i < p->plan->nr_disks && i < VM_MAX_DISKS; i++) {
		const struct plan_disk *disk = &p->plan->disks[i];
		struct rt_sched want = sched_of(&disk->io);
		struct rt_thread t;

		if (!p->io_tids[i] || (rt__read(p->io_tids[i], &t) == 0 && rt__matches(&t, &want)))
			continue;
		finding(p, "%s I/O thread: the kernel's placement differs from the plan (%s:%u: %s)",
			disk->name, p->file, disk->io.loc.line, disk->io.loc.key);
		err = -EINVAL;
	}
	free(rows);
	return err;
}

void placement__init(struct placement *p, const struct plan_vm *plan, const char *file)
{
	p->plan = plan;
	p->file = file;
	p->failed[0] = '\0';
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->placed_cond, NULL);
	p->nr_placed = 0;
	p->dma_fd = -1;
	memset(p->io_tids, 0, sizeof(p->io_tids));
}

struct vm_hooks placement__hooks(struct placement *p)
{
	return (struct vm_hooks){ .opaque = p, .provide_memory = provide_memory,
				  .vcpu_thread_start = place_vcpu, .vcpus_started = prove_placement };
}

int placement__pin_emulator(const struct placement *p, struct err *e)
{
	struct rt_sched s = sched_of(&p->plan->emulator);

	return CPU_COUNT(&s.cpus) > 0 ? rt__apply(0, &s, e) : 0;
}

int placement__place_io(struct placement *p, unsigned index, const char *name, pid_t tid,
			struct err *e)
{
	struct err why = { 0 };
	struct rt_sched s;
	int err;

	if (index >= p->plan->nr_disks || index >= VM_MAX_DISKS)
		return err__set(e, -EINVAL, "%s: no disk %u in the plan of vm '%s'", name, index,
				p->plan->name);
	s = sched_of(&p->plan->disks[index].io);
	err = rt__apply(tid, &s, &why);
	if (err)
		return err__set(e, err, "%s I/O thread (%s): %s", name,
				p->plan->disks[index].io.loc.key, why.msg);
	p->io_tids[index] = tid;
	return 0;
}

int placement__before_run(struct placement *p, struct err *e)
{
	struct err warn = { 0 };

	if (p->plan->memory.mlock && rt__lock_all_memory(e) < 0)
		return e->code;
	if (plan_is_rt(p->plan)) {
		p->dma_fd = rt__hold_dma_latency(&warn);
		if (p->dma_fd < 0)
			fprintf(stderr, "rtvmm: warning: %s\n", warn.msg);
	}
	return 0;
}

void placement__fini(struct placement *p)
{
	if (p->dma_fd >= 0)
		close(p->dma_fd);
	p->dma_fd = -1;
	pthread_cond_destroy(&p->placed_cond);
	pthread_mutex_destroy(&p->lock);
}
