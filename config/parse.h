/* Loads a host plan from a YAML file (libyaml), with errors naming file, line and key. */
#ifndef RTVMM_CONFIG_PARSE_H
#define RTVMM_CONFIG_PARSE_H

#include "base/err.h"
#include "config/plan.h"

/*
 * Limits on a plan file, checked before libyaml builds its tree. 16 MiB holds
 * tens of thousands of VMs written out in full (about 150 bytes each in the
 * short form, a few KiB with per-vCPU pins and paths), far beyond one host,
 * while libyaml's tree of it (roughly 20 times the text) stays in the
 * hundreds of MiB. The schema nests 5 levels (vms, a VM, vcpus, pin, a list);
 * 32 leaves room for YAML written oddly and stops a file of brackets, which
 * costs libyaml its depth squared. Anchors: libyaml looks each alias up
 * linearly among them. vCPUs, all VMs together: `vcpus: 254` is a few bytes
 * that become 254 threads to check, so the file size alone does not bound the
 * plan (50000 such VMs, 2.6 MB, took 190 s and 7.9 GB); 65536 is 64 per cpu of
 * the largest host a plan can pin to (CPU_SETSIZE, 1024 cpus).
 */
#define PLAN_MAX_BYTES   (16u << 20)
#define PLAN_MAX_DEPTH   32
#define PLAN_MAX_ANCHORS 64
#define PLAN_MAX_VCPUS   65536

/*
 * Parses and type-checks `path` into `p`. On error returns -errno (-EINVAL
 * for content errors) with `e` as "FILE:LINE: KEY: what is wrong (value
 * 'V')"; nothing in `p` needs freeing then. Range checks that need no
 * topology (priority 1..99 for fifo/rr, sizes, duplicate VM names, unknown
 * keys, wrong types) are done here. A file over the limits above is refused
 * (-EFBIG for its size, -EINVAL for its shape) before it is parsed.
 */
int plan__load(struct plan *p, const char *path, struct err *e);

/* One command-line flag that sets a key of the plan's VM: `--vcpus 2` is `vm: {vcpus: 2}`. */
struct plan_arg {
	const char *flag;          /* "--vcpus", for messages */
	const char *key;           /* the key under `vm:` ("vcpus"); "nics", "disks" add one entry */
	const char *value;         /* the flag's argument; for a list: KEY=VALUE[,KEY=VALUE...] */
};

/*
 * Builds a one-VM plan (VM "vm") from command-line flags through the same
 * schema, limits and defaults as a plan file: each flag is the key it names,
 * a NIC's KEY=VALUE list is one entry of `nics:` (name, socket, mac, queues,
 * mode), a disk's one entry of `disks:` (path or socket, readonly, serial,
 * queues, name, mode, backend_user). Errors name the flag and its value, then the plan key:
 * "--vcpus '0': vm.vcpus: out of range 1..254".
 */
int plan__from_args(struct plan *p, const struct plan_arg *args, unsigned nr, struct err *e);

#endif
