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
		free(p->vms[i].disks);
	}
	free(p->vms);
	memset(p, 0, sizeof(*p));
}

const char *plan_exit__name(unsigned bit)
{
	switch (bit) {
	case PLAN_EXIT_HLT:
		return "hlt";
	case PLAN_EXIT_PAUSE:
		return "pause";
	case PLAN_EXIT_MWAIT:
		return "mwait";
	case PLAN_EXIT_CSTATE:
		return "cstate";
	default:
		return NULL;
	}
}

const char *plan_exit__names(unsigned exits, char *buf, size_t len)
{
	static const unsigned order[] = { PLAN_EXIT_HLT, PLAN_EXIT_PAUSE, PLAN_EXIT_MWAIT,
					  PLAN_EXIT_CSTATE };
	size_t used = 0;
	unsigned i;

	snprintf(buf, len, "none");
	for (i = 0; i < sizeof(order) / sizeof(order[0]) && used < len; i++)
		if (exits & order[i])
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
						 plan_exit__name(order[i]));
	return buf;
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

void plan_nic__guest_mac(const struct plan_nic *nic, uint8_t mac[6])
{
	uint32_t h = 2166136261u;      /* FNV-1a */
	const char *p;

	if (nic->mac_set) {
		memcpy(mac, nic->mac, 6);
		return;
	}
	for (p = nic->socket; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = (uint8_t)(h >> 24);
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

/* A NIC socket path ends up inside DPDK's --vdev "name,iface=PATH,..." list, where a ',' or
 * '=' would add device arguments of the plan author's choosing. */
const char *plan__unsafe_char(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '/' || *s == '.' || *s == '_' || *s == '-' || *s == '+'))
			return s;
	return NULL;
}
