/* The composition root: builds one rtvmm PC from a validated VM configuration. */
#ifndef RTVMM_APP_BUILDER_H
#define RTVMM_APP_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "app/placement.h"
#include "base/err.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/net.h"
#include "vmm/virtio/vhost_blk.h"
#include "vmm/vm.h"
#include "vmm/x86/boot.h"

/* One disk, in the order the guest finds them (vda, vdb, ...). */
struct vm_disk {
	enum { VM_DISK_LOCAL, VM_DISK_VHOST_USER } kind;
	union {
		struct virtio_blk_spec local;  /* an image the monitor serves (its I/O thread) */
		struct vhost_blk_spec vhost;   /* served by a vhost-user-blk backend */
	};
};

/* Everything needed to build and run one VM. */
struct vm_config {
	const char *kvm_path;      /* default /dev/kvm */
	struct boot_config boot;
	unsigned nr_vcpus;
	uint64_t mem_size;
	int console_in;            /* guest COM1 input (stdin), -1 for none */
	int console_out;           /* guest COM1 output (stdout, a file), -1 for none */
	const char *console_socket;/* instead: COM1 served on this unix socket (--serial socket=) */
	bool test_device;          /* the test device (exit status, putc): test and bench guests only */
	bool verbose;
	struct placement *placement;/* host-plan placement (memory, threads), NULL for none */
	bool sandbox;              /* drop privileges and confine main/vCPUs once they started */
	const struct virtio_net_spec *nics; /* virtio-net NICs over vhost-user (from the plan or --net) */
	unsigned nr_nics;
	const struct vm_disk *disks;        /* virtio-blk disks (from the plan or --disk) */
	unsigned nr_disks;
	unsigned shutdown_grace_s; /* SIGTERM: power button, hard stop after this; 0: at once */
	bool exit_on_reboot;       /* a guest reset or vm.reboot stops the VM (exit 0); else: restart in place */
	unsigned disable_exits;    /* KVM_X86_DISABLE_EXITS_* the guest runs without exiting; 0: none */
	bool halt_poll_set;        /* KVM_CAP_HALT_POLL to halt_poll_ns; else KVM's module default */
	unsigned halt_poll_ns;
	bool dirty_ring_set;       /* KVM's dirty ring of dirty_ring entries (0: its bitmap); else
				      DIRTY_RING_DEFAULT_ENTRIES where KVM has the ring */
	unsigned dirty_ring;
	const char *disable_exits_at; /* where each was asked, for errors ("host.yaml:7: vm.disable_exits", */
	const char *halt_poll_at;     /* "--halt-poll-ns '0'"); NULL: not said */
	const char *dirty_ring_at;
	/* vm_hooks.guest_ready: right before the vCPUs first enter the guest; NULL: none. */
	int (*guest_ready)(void *opaque);
	void *ready_opaque;
};

/*
 * Builds the whole VM from `cfg`, in the order app/builder.c spells out. The
 * caller blocks SIGINT, SIGTERM and SIGHUP first: one arriving during the
 * build stops it with -EINTR after the step under way (NIC and disk backend
 * waits look every 50 ms) and records VM_STOP_SIGNAL with status 128+N in `vm`.
 */
int vm__build(struct vm *vm, const struct vm_config *cfg, struct err *e);

/*
 * A stop signal that arrived while blocked (SIGINT, SIGTERM, SIGHUP; see
 * vm__build): taken, recorded as the VM's stop (status 128+N) and returned
 * as -EINTR, its message naming what it stopped (`during`). 0 when none.
 */
int builder__stop_signal(struct vm *vm, const char *during, struct err *e);

#endif
