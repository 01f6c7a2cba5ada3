/*
 * What the dataplane is asked to do: lcores, memory, ports, forwarding, stats. Built from the
 * command line (manual mode) and/or the host plan's dataplane section and NICs; turned into EAL
 * arguments and ethdev device strings. Pure C, no DPDK: `--dry-run` and tests use it as is.
 */
#ifndef RTVMM_DATAPLANE_CONFIG_H
#define RTVMM_DATAPLANE_CONFIG_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "rt/rt.h"

#define DP_MAX_PORTS      32       /* RTE_MAX_ETHPORTS in Debian's build */
#define DP_MAX_QUEUES     16       /* queue pairs per port */
#define DP_MAX_WORKERS    64
#define DP_BURST          32
#define DP_RX_DESC        1024
#define DP_TX_DESC        1024
#define DP_MBUF_CACHE     256

enum dp_port_kind {
	DP_PORT_VHOST = 0,         /* net_vhost: a vhost-user socket (the guest's NIC) */
	DP_PORT_AF_PACKET,         /* net_af_packet on a kernel interface */
	DP_PORT_TAP,               /* net_tap: creates a kernel tap interface */
	DP_PORT_PCI,               /* a physical NIC bound to vfio-pci/uio, by PCI address */
	DP_PORT_VIRTIO_USER,       /* net_virtio_user: a vhost-user frontend (a guest's side, in-process) */
};

enum dp_fwd {
	DP_FWD_XCONNECT = 0,       /* static pairs: A <-> B */
	DP_FWD_L2SWITCH,           /* MAC learning switch over all ports */
};

struct dp_port_spec {
	enum dp_port_kind kind;
	char name[100];            /* label in stats: "vnf1.net0" (VM.NIC), "port0" */
	char target[108];          /* socket path (sun_path size), interface name or PCI address */
	unsigned queues;           /* queue pairs */
	bool client;               /* vhost, virtio_user: the dataplane connects to target (vhost:
				    * and reconnects; virtio_user: the default, `server` listens) */
	uint8_t mac[6];            /* vhost: the guest's MAC (plan_nic__guest_mac, or mac=) */
	bool mac_set;              /* l2switch accepts no other source MAC from this port */
	bool from_plan;            /* a plan NIC (messages name it, not a --port) */
};

struct dp_pair {
	unsigned a, b;
};

/* What came from the command line: plan values fill only what the user did not set. */
enum {
	DP_SET_LCORES = 1 << 0,
	DP_SET_MAIN = 1 << 1,
	DP_SET_NO_HUGE = 1 << 2,
	DP_SET_FWD = 1 << 3,
	DP_SET_STATS = 1 << 4,
	DP_SET_USER = 1 << 5,
	DP_SET_PER_PORT = 1 << 6,
	DP_SET_SCHED = 1 << 7,
};

struct dp_config {
	char plan_file[4096];      /* "" in manual mode */
	unsigned set;              /* DP_SET_* */
	cpu_set_t lcores;          /* poll-mode lcores (EAL lcore id = cpu) */
	int main_lcore;            /* EAL main lcore; -1 = the first poll lcore (which then polls) */
	int node;                  /* NUMA node for mbufs, -1 = the main lcore's */
	bool no_huge;
	unsigned mem_mb;           /* EAL memory; 0 = computed from the ports */
	char file_prefix[64];
	char extra_eal[512];       /* whitespace-separated, appended to the EAL arguments */
	char stats_socket[108];
	unsigned stats_interval_ms;
	unsigned mac_aging_s;
	unsigned mac_entries;      /* L2 table capacity */
	unsigned mac_per_port;     /* MACs one port may hold (0 = no limit) */
	char user[64];             /* drop to this user after setup ("" = stay) */
	char group[64];            /* and group ("" = the user's primary group) */
	char run_dir[108];         /* the plan's host.run_dir ("" in manual mode) */
	enum rt_policy poll_policy; /* the poll threads' scheduling policy (default other) */
	int poll_priority;         /* 1..99 for fifo and rr, else 0 */
	enum dp_fwd fwd;
	unsigned nr_pairs;         /* xconnect: explicit pairs; 0 = 0<->1, 2<->3, ... */
	struct dp_pair pairs[DP_MAX_PORTS];
	unsigned nr_ports;
	struct dp_port_spec ports[DP_MAX_PORTS];
	bool dry_run;
};

#define DP_DEFAULT_STATS_SOCKET "/run/rtvmm/dataplane.sock"
#define DP_DEFAULT_FILE_PREFIX  "rtvmm-dp"
#define DP_DEFAULT_MAC_PER_PORT 1024

/* Defaults: no lcores, no ports, xconnect, stats at DP_DEFAULT_STATS_SOCKET every second. */
void dp_config__init(struct dp_config *c);

/*
 * Parses one --port value into c->ports (appends):
 *   vhost:PATH[,queues=N][,client][,name=LABEL][,mac=MAC]
 *   af_packet:IFNAME[,queues=N][,name=LABEL]
 *   tap:IFNAME[,queues=N][,name=LABEL]
 *   pci:DOMAIN:BUS:DEV.FN[,queues=N][,name=LABEL]
 *   virtio_user:PATH[,queues=N][,server][,name=LABEL]
 */
int dp_config__add_port(struct dp_config *c, const char *arg, struct err *e);

/* Parses --poll-sched: "other", "fifo:PRIO" or "rr:PRIO" (PRIO 1..99), as chrt names them. */
int dp_config__parse_sched(struct dp_config *c, const char *arg, struct err *e);

/* Parses "A:B" (port indexes) into an xconnect pair; "A:A" loops port A back to itself. */
int dp_config__add_pair(struct dp_config *c, const char *arg, struct err *e);

const char *dp_fwd_name(enum dp_fwd f);
int dp_fwd_parse(const char *s, enum dp_fwd *f);
const char *dp_port_kind_name(enum dp_port_kind k);

/*
 * Reads the host plan `path` (config/parse.h): host.dataplane gives lcores, main lcore, node,
 * no_huge, the poll threads' policy and priority and extra EAL arguments unless the command line set them (c->set); every NIC of
 * every VM becomes a vhost port named VM.NIC, before any --port given on the command line.
 * The dataplane is the vhost-user server for NICs in mode client and the client for NICs in
 * mode server, and its MAC (plan_nic__guest_mac) the only source MAC the port accepts.
 * host.user/group and host.run_dir apply unless given here. The forwarding default for a plan
 * is l2switch.
 */
int dp_config__load_plan(struct dp_config *c, const char *path, struct err *e);

/*
 * Checks and completes: lcores, ports, pairs (every index valid, no port twice), memory; every
 * string that reaches EAL arguments or device strings (socket paths, interface names, the file
 * prefix) holds only plan__unsafe_char's safe set, and a PCI address only its own syntax.
 */
int dp_config__finish(struct dp_config *c, struct err *e);

/* Number of poll lcores. */
unsigned dp_config__nr_lcores(const struct dp_config *c);

/* The EAL main lcore (c->main_lcore, or the first poll lcore). */
unsigned dp_config__main_lcore(const struct dp_config *c);

/* mbufs the pool needs for these ports, queues and lcores. */
unsigned dp_config__nr_mbufs(const struct dp_config *c);

/* EAL memory in MB (c->mem_mb or computed from the mbufs). */
unsigned dp_config__mem_mb(const struct dp_config *c);

/*
 * EAL arguments, argv[0] = "rtvmm-dataplane", NULL-terminated; free with dp_config__free_argv.
 * -l LCORES --main-lcore M --file-prefix P, --no-huge -m MB or --socket-mem, --no-pci unless a
 * pci port or an allow-list is given, then the extra arguments.
 */
int dp_config__eal_argv(const struct dp_config *c, int *argc, char ***argv, struct err *e);
void dp_config__free_argv(int argc, char **argv);

/* Parses "USER[:GROUP]" (--user) into c->user and c->group. */
int dp_config__set_user(struct dp_config *c, const char *arg, struct err *e);

/* The ethdev device string for port i: "net_vhost0,iface=/run/x.sock,queues=2,client=1". */
int dp_config__devargs(const struct dp_config *c, unsigned i, char *buf, unsigned len);

/* The ethdev name rte_dev_probe gives port i ("net_vhost0", "0000:01:00.0"). */
void dp_config__dev_name(const struct dp_config *c, unsigned i, char *buf, unsigned len);

/* The xconnect peer of port i, or -1 (unpaired, or not xconnect). */
int dp_config__peer(const struct dp_config *c, unsigned i);

#endif
