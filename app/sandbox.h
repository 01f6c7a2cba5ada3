/*
 * The monitor's confinement: after set-up (and the placement proof) rtvmm
 * drops to an unprivileged user and group, and every thread runs under a
 * default-deny seccomp filter for its class (base/thread_class.h), with
 * no_new_privs. A forbidden system call ends the process with one line
 * naming the thread, its filter and the call, and status 159 (128 + SIGSYS).
 */
#ifndef RTVMM_APP_SANDBOX_H
#define RTVMM_APP_SANDBOX_H

#include <stdbool.h>

#include "base/err.h"
#include "config/plan.h"
#include "vmm/vm.h"

/* Exit status after a forbidden system call. */
#define SANDBOX_VIOLATION_STATUS 159

struct sandbox_config {
	bool off;                  /* --no-sandbox: no filters and no drop (said loudly) */
	const char *user;          /* drop to this user (name or id); NULL or "": stay */
	const char *group;         /* and this group; NULL or "": the user's primary group */
	bool memory_locked;        /* mlockall(MCL_FUTURE) will hold: later mappings stay lockable */
};

/*
 * Before any machine thread starts: resolves the user, compiles every class's
 * filter, installs the SIGSYS reporter and the thread-class hook, and prints
 * the warning when rtvmm runs unconfined (--no-sandbox). Keeping root (no
 * user) is said once the vCPUs started.
 */
int sandbox__init(const struct sandbox_config *cfg, struct err *e);

/*
 * Makes the VM's vhost-user sockets (NICs' and disks') and its console socket usable after the drop:
 * creates host.run_dir owned by the service user when a socket lives under it,
 * and refuses a device whose socket directory (or socket) that user could not
 * reach to reconnect or unlink.
 */
int sandbox__prepare_sockets(const struct plan_host *host, const struct plan_vm *vm, struct err *e);

/*
 * Chains onto `hooks`: once every vCPU started and the hooks' own vcpus_started
 * (the placement proof) passed, drops privileges and confines the main thread;
 * the vCPUs confine themselves after that, before they enter the guest.
 */
void sandbox__hook(struct vm_hooks *hooks);

/* Whether sandbox__init turned confinement on. */
bool sandbox__enabled(void);

#endif
