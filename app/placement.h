/*
 * A plan VM's placement applied to one machine: guest RAM from numa/, each
 * vCPU thread placed by rt/ before it enters the guest, each disk's I/O
 * thread before any vCPU runs, then every thread read back from the kernel
 * and proved against the plan. The machine sees
 * only the vm_hooks this installs.
 */
#ifndef RTVMM_APP_PLACEMENT_H
#define RTVMM_APP_PLACEMENT_H

#include <pthread.h>

#include "base/err.h"
#include "base/vm_limits.h"
#include "config/plan.h"
#include "vmm/vm.h"

struct placement {
	const struct plan_vm *plan;
	const char *file;          /* the plan's file, for the lines it names */
	char failed[256];          /* the proof's first finding, "" while none */
	pthread_mutex_t lock;
	pthread_cond_t placed_cond;
	unsigned nr_placed;        /* vCPU threads that applied their placement (or failed to) */
	int dma_fd;                /* /dev/cpu_dma_latency held at 0 while the VM runs, or -1 */
	pid_t io_tids[VM_MAX_DISKS]; /* plan disk i's I/O thread, 0 = none (a vhost-user disk) */
};

/* Prepares placement for `plan` from `file` (neither copied: they must outlive the VM). */
void placement__init(struct placement *p, const struct plan_vm *plan, const char *file);

/* The hooks that make a VM use this placement. */
struct vm_hooks placement__hooks(struct placement *p);

/* Moves the calling thread (and what it creates later) to the plan's emulator cpus. */
int placement__pin_emulator(const struct placement *p, struct err *e);

/*
 * Places plan disk `index`'s I/O thread `tid` (device `name`) on its io cpus, policy and
 * priority (libvirt's iothreadpin); the placement proof checks it with the vCPUs.
 */
int placement__place_io(struct placement *p, unsigned index, const char *name, pid_t tid,
			struct err *e);

/*
 * Just before the vCPUs start: mlockall when the plan locks memory, and
 * /dev/cpu_dma_latency held at 0 when any vCPU is real-time (a warning if not).
 */
int placement__before_run(struct placement *p, struct err *e);

/* Releases what placement__before_run holds. */
void placement__fini(struct placement *p);

#endif
