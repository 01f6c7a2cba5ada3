/*
 * The control API of one running VM (cloud-hypervisor's /api/v1 dialect and rtvmm's
 * extensions, docs/api/openapi.yaml): api/server.c's routes bound to the VM, its devices and
 * its placement.
 */
#ifndef RTVMM_APP_CONTROL_H
#define RTVMM_APP_CONTROL_H

#include <sys/types.h>

#include "api/server.h"
#include "app/builder.h"
#include "base/err.h"
#include "vmm/vm.h"

struct control_config {
	const char *socket_path;
	struct vm *vm;
	const struct vm_config *cfg;       /* kernel, cmdline, memory, NIC and disk names */
	const struct plan_vm *plan;        /* the plan that placed the VM, NULL: not placed */
	const char *serial_socket;         /* the serial console's socket, NULL: none */
	/* per cfg->nics[i]: its backend's rtvmm-dataplane stats socket, NULL: not asked (copied) */
	const char *const *nic_stats;
	uid_t owner;                       /* (uid_t)-1: keep; else the socket's owner (the drop) */
	gid_t group;
};

struct control;

/* Serves the API on cfg->socket_path from the "api" thread (before the privilege drop). */
int control__start(struct control **out, const struct control_config *cfg, struct err *e);

/* Stops serving and removes the socket (before the VM is destroyed); NULL is fine. */
void control__stop(struct control *c);

/* The route table, for the check against docs/api/openapi.yaml. */
const struct api_route *control__routes(unsigned *nr);

#endif
