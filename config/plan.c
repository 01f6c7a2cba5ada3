#include "config/plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void plan__free(struct plan *p)
{
	unsigned i;

	if (!p)
		return;
	for (i = 0; i < p->nr_vms; i++) {
		free(p->vms[i].vcpus);
		free(p->vms[i].nics);
	}
	free(p->vms);
	memset(p, 0, sizeof(*p));
}

const struct plan_vm *plan__find_vm(const struct plan *p, const char *name)
{
	unsigned i;

	if (!p || !name)
		return NULL;
	for (i = 0; i < p->nr_vms; i++)
		if (!strcmp(p->vms[i].name, name))
			return &p->vms[i];
	return NULL;
}
