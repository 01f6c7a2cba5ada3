/* pvpanic-pci: a guest kernel panic stops the VM with its own status. */
#include "vmm/hw/pvpanic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pvpanic {
	struct pci_dev pci;        /* first: the bus hands back &p->pci */
	struct vm_ctl ctl;
	uint64_t panicked;         /* events written by the guest (relaxed atomics) */
	uint64_t crash_loaded;
};

static void pvpanic_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	memset(data, 0, len);
	(void)dev;
	if (off == 0)
		*(uint8_t *)data = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct pvpanic *p = dev;
	uint8_t event = *(const uint8_t *)data;

	(void)len;
	if (off != 0)
		return;
	if (event & PVPANIC_PANICKED) {
		__atomic_fetch_add(&p->panicked, 1, __ATOMIC_RELAXED);
		vm_ctl__stop(&p->ctl, VM_STOP_PANIC, PVPANIC_EXIT_STATUS);
	} else if (event & PVPANIC_CRASH_LOADED) {
		if (__atomic_fetch_add(&p->crash_loaded, 1, __ATOMIC_RELAXED) == 0)
			fprintf(stderr, "rtvmm: guest panicked with a crash kernel loaded (pvpanic): "
				"it goes on into that kernel\n");
	}
}

static const struct io_ops pvpanic_bar_ops = {
	.read = pvpanic_read,
	.write = pvpanic_write,
};

int pvpanic__add(struct pci_bus *bus, const struct vm_ctl *ctl, struct pvpanic **out)
{
	struct pvpanic *p;
	int err;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ctl = *ctl;
	pci_dev__init(&p->pci, "pvpanic", PVPANIC_PCI_VENDOR_ID, PVPANIC_PCI_DEVICE_ID,
		      PVPANIC_PCI_CLASS, 1, NULL);
	err = pci_dev__add_bar(&p->pci, 0, PVPANIC_BAR_SIZE, 0, &pvpanic_bar_ops, p);
	if (!err)
		err = pci_bus__add(bus, &p->pci);
	if (err) {
		pci_dev__exit(&p->pci);
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

void pvpanic__destroy(struct pvpanic *p)
{
	if (!p)
		return;
	pci_dev__exit(&p->pci);
	free(p);
}

static void pvpanic_device_destroy(void *dev)
{
	pvpanic__destroy(dev);
}

static void pvpanic_counters(void *dev, const struct counter_sink *sink)
{
	struct pvpanic *p = dev;

	sink->num(sink->opaque, "panicked", __atomic_load_n(&p->panicked, __ATOMIC_RELAXED));
	sink->num(sink->opaque, "crash_loaded", __atomic_load_n(&p->crash_loaded, __ATOMIC_RELAXED));
}

#define PVPANIC_STATE_VERSION 1

/*
 * Version 1: nothing after the version. The register reads a constant, the
 * counts are the host's, and the configuration space is the PCI bus's to save.
 */
static int pvpanic_device_save(void *dev, struct state_out *out)
{
	(void)dev;
	state_out__u32(out, PVPANIC_STATE_VERSION);
	return out->err;
}

/* Takes a version 1 state (see pvpanic_device_save). */
static int pvpanic_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	uint32_t version;

	(void)dev;
	version = state_in__u32(in);
	if (in->err) {
		snprintf(why, why_len, "state truncated: %zu bytes", in->len);
		return -EINVAL;
	}
	if (version != PVPANIC_STATE_VERSION) {
		snprintf(why, why_len, "state version %u, expected %u", version, PVPANIC_STATE_VERSION);
		return -EINVAL;
	}
	if (state_in__end(in)) {
		snprintf(why, why_len, "state too long: %zu bytes", in->len);
		return -EINVAL;
	}
	return 0;
}

const struct device_ops pvpanic__device_ops = {
	.destroy = pvpanic_device_destroy,
	.counters = pvpanic_counters,
	.save = pvpanic_device_save,
	.load = pvpanic_device_load,
};
