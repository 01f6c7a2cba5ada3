/*
 * The host plan: what a declarative config file says about a host and its
 * VMs (cores, scheduling, memory placement, NICs, disks, dataplane). Produced by
 * config/ (parser), checked by config/check.c against a topology, applied by
 * rt/ (threads) and numa/ (memory).
 */
#ifndef RTVMM_CONFIG_PLAN_H
#define RTVMM_CONFIG_PLAN_H

#include <sched.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/page_size.h"
#include "rt/rt.h"

/* Where a value came from, for messages: "host.yaml:12: vms[0].vcpus[1].cpu". */
struct plan_loc {
	unsigned line;             /* 1-based line in plan->file, 0 if not from the file */
	char key[96];              /* dotted path of the key */
};

/* A thread's placement: allowed cpus, policy and priority. */
struct plan_sched {
	cpu_set_t cpus;            /* empty set = not pinned */
	enum rt_policy policy;
	int priority;
	struct plan_loc loc;       /* where the cpus were given */
};

enum plan_nic_mode {
	PLAN_NIC_CLIENT = 0,       /* rtvmm connects to the backend's socket, reconnecting */
	PLAN_NIC_SERVER,           /* rtvmm listens, the backend connects */
};

struct plan_nic {
	char name[32];
	char socket[108];          /* vhost-user unix socket path */
	uint8_t mac[6];
	bool mac_set;
	unsigned queues;           /* queue pairs, >= 1 */
	unsigned queue_size;       /* ring entries per queue (a power of two); 0 = the device's default */
	enum plan_nic_mode mode;
	char backend_user[64];     /* the only uid the backend may run as; "" = root, ours or host.user */
	char stats_socket[108];    /* the backend's rtvmm-dataplane stats socket; "" = not asked */
	struct plan_loc loc;
};

enum plan_disk_kind {
	PLAN_DISK_LOCAL = 0,       /* `path`: an image file or block device the monitor serves */
	PLAN_DISK_VHOST_USER,      /* `socket`: served by a vhost-user-blk backend */
};

/* A virtio-blk disk (libvirt's <disk>, cloud-hypervisor's --disk). */
struct plan_disk {
	char name[32];             /* "disk0" unless given */
	enum plan_disk_kind kind;
	char path[4096];           /* local: raw image file or block device */
	char socket[108];          /* vhost-user: the backend's unix socket */
	enum plan_nic_mode mode;   /* vhost-user: connect to the backend or listen for it */
	char backend_user[64];     /* vhost-user: the only uid the backend may run as; "" as NICs */
	bool readonly;
	char serial[21];           /* VIRTIO_BLK_T_GET_ID's answer (local); "" = the name */
	unsigned queues;           /* request queues, >= 1 */
	struct plan_sched io;      /* local: its I/O thread (libvirt's iothreadpin); default emulator */
	bool io_cpus_set;          /* io.cpus given (else the emulator's cpus) */
	struct plan_loc image_loc; /* where `path` or `socket` was given */
	struct plan_loc loc;
};

/* Where COM1 goes (cloud-hypervisor's --serial words). */
enum plan_serial_mode {
	PLAN_SERIAL_TTY = 0,       /* rtvmm's stdin and stdout (the default) */
	PLAN_SERIAL_FILE,          /* output appended to `path`, no input */
	PLAN_SERIAL_SOCKET,        /* a unix socket at `path` a client attaches to */
	PLAN_SERIAL_OFF,           /* nowhere: output counted as dropped */
};

struct plan_serial {
	enum plan_serial_mode mode;
	char path[4096];           /* file= or socket= (a socket's at most 107 bytes) */
	struct plan_loc loc;       /* where `serial` was given (line 0: the default) */
};

struct plan_memory {
	uint64_t size;             /* bytes */
	enum page_size page_size;
	int node;                  /* host NUMA node, -1 = no binding */
	bool strict;               /* vCPUs must be on the memory's node (error, not warning) */
	bool prefault;             /* touch every page before the guest runs */
	bool mlock;                /* lock guest RAM */
	bool allow_fallback;       /* 4 KiB pages if hugepages are short, else fail */
	struct plan_loc loc;
};

/* What a guest reset (or the API's vm.reboot) does to a VM: `on_reboot:` (libvirt's word). */
enum plan_on_reboot {
	PLAN_ON_REBOOT_RESTART,    /* the guest boots again in the same process (QEMU, cloud-hypervisor) */
	PLAN_ON_REBOOT_EXIT,       /* the VM stops, rtvmm exits 0 (Firecracker) */
};

/*
 * Guest instructions a VM runs without exiting to KVM (`disable_exits:`), QEMU's
 * `-overcommit cpu-pm=on`. The values are KVM_X86_DISABLE_EXITS_*'s (asserted where applied).
 */
enum plan_exit {
	PLAN_EXIT_MWAIT = 1 << 0,
	PLAN_EXIT_HLT = 1 << 1,
	PLAN_EXIT_PAUSE = 1 << 2,
	PLAN_EXIT_CSTATE = 1 << 3,
};

/* The longest halt_poll_ns a plan may give (1 s): beyond that, disable HLT exits instead. */
#define PLAN_MAX_HALT_POLL_NS 1000000000u

/* KVM's dirty ring per vCPU (vm.dirty_ring): a power of two within these, or 0 for its bitmap. */
#define PLAN_MIN_DIRTY_RING 1024u
#define PLAN_MAX_DIRTY_RING 65536u

/* A VM's shutdown_grace_s when the plan does not give one, and the most it may be. */
#define PLAN_DEFAULT_SHUTDOWN_GRACE_S 30
#define PLAN_MAX_SHUTDOWN_GRACE_S     3600

struct plan_vm {
	char name[64];
	char kernel[4096];
	char initrd[4096];         /* "" = none */
	char cmdline[4096];        /* "" = rtvmm's default */
	struct plan_memory memory;
	unsigned nr_vcpus;
	struct plan_sched *vcpus;  /* nr_vcpus entries */
	struct plan_sched emulator;/* monitor's other threads (main, console, I/O) */
	unsigned nr_nics;
	struct plan_nic *nics;
	unsigned nr_disks;
	struct plan_disk *disks;
	struct plan_serial serial;
	unsigned shutdown_grace_s; /* SIGTERM: power button, hard stop after this; 0: at once */
	enum plan_on_reboot on_reboot;
	unsigned disable_exits;    /* PLAN_EXIT_* bits (KVM_CAP_X86_DISABLE_EXITS); 0 = none */
	struct plan_loc disable_exits_loc;
	bool halt_poll_set;        /* halt_poll_ns given (else KVM's module default) */
	unsigned halt_poll_ns;     /* KVM_CAP_HALT_POLL: how long a halted vCPU polls; 0 = never */
	struct plan_loc halt_poll_loc;
	bool dirty_ring_set;       /* dirty_ring given (else KVM's ring where this KVM has one) */
	unsigned dirty_ring;       /* a live migration's log: entries per vCPU; 0 = KVM's bitmap */
	struct plan_loc dirty_ring_loc;
	char api_socket[108];      /* the control API's unix socket; "" = none (--api-socket) */
	struct plan_loc loc;
};

/* The dataplane process: poll-mode threads, one per core. */
struct plan_dataplane {
	bool present;
	cpu_set_t cores;           /* poll-mode lcores */
	int main_core;             /* EAL main lcore, -1 = a housekeeping cpu */
	int node;                  /* -1 = unspecified */
	bool no_huge;              /* run without hugepages (--no-huge) */
	char extra_eal[512];       /* extra EAL arguments */
	unsigned mac_per_port;     /* l2switch: MACs one port may hold; 0 = not given */
	enum rt_policy policy;     /* the poll threads' scheduling policy (default other) */
	int priority;              /* and priority, 1..99 for fifo and rr */
	struct plan_loc sched_loc; /* where policy was given ("" = not given) */
	struct plan_loc loc;
};

struct plan_host {
	cpu_set_t housekeeping;    /* cpus for the OS, emulator threads, everything non-RT */
	bool housekeeping_set;
	char user[64];             /* unprivileged user rtvmm and the dataplane drop to; "" = stay */
	char group[64];            /* its group; "" = the user's primary group */
	char run_dir[108];         /* 0700 directory for sockets, created by the tools */
	struct plan_loc user_loc;
	struct plan_dataplane dataplane;
	struct plan_loc loc;
};

struct plan {
	char file[4096];           /* the config file */
	struct plan_host host;
	unsigned nr_vms;
	struct plan_vm *vms;
};

/* Frees what plan__load allocated (vms, vcpus, nics, disks); the plan can be reused. */
void plan__free(struct plan *p);

/* "hlt", "pause", "mwait", "cstate" for one PLAN_EXIT_* bit; NULL for anything else. */
const char *plan_exit__name(unsigned bit);

/* "hlt, pause" for PLAN_EXIT_* bits, "none" for 0; `buf` is returned. */
const char *plan_exit__names(unsigned exits, char *buf, size_t len);

/* Finds a VM by name, or NULL. */
const struct plan_vm *plan__find_vm(const struct plan *p, const char *name);

/*
 * The guest's MAC of `nic`: nic->mac when given, else a stable locally administered unicast
 * address 52:54:xx:xx:xx:xx hashed from the socket path. The monitor gives it to the guest,
 * the dataplane accepts no other source MAC on that NIC's port.
 */
void plan_nic__guest_mac(const struct plan_nic *nic, uint8_t mac[6]);

/*
 * The first character of `s` outside the set that may reach another program's argument
 * syntax (DPDK device strings, EAL arguments): letters, digits, '/', '.', '_', '-', '+';
 * NULL when there is none.
 */
const char *plan__unsafe_char(const char *s);

#endif
