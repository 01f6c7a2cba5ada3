/* `rtvmm check`: validates a whole host plan against a topology, as findings. */
#ifndef RTVMM_CONFIG_CHECK_H
#define RTVMM_CONFIG_CHECK_H

#include <stdio.h>

#include "base/err.h"
#include "base/trust.h"
#include "config/plan.h"
#include "numa/topology.h"

enum finding_level {
	FINDING_ERROR = 0,
	FINDING_WARNING,
};

/* One problem, naming where it is (file:line, key) and the value. */
struct finding {
	enum finding_level level;
	char code[40];             /* stable id, e.g. "cpu-missing", "fifo-shared-core" */
	unsigned line;
	char key[96];
	char value[96];
	char message[512];
};

struct findings {
	struct finding *items;
	unsigned nr;
	unsigned cap;
};

/*
 * Appends every finding for `p` on `t` (topology, host state such as isolation and hugepages).
 * Returns 0 (findings or not) or -ENOMEM. Codes:
 *   errors:   cpu-missing, node-missing, page-size-unsupported, hugepages-short (warning with
 *             fallback_4k), priority-range, fifo-shared-core (two fifo/rr vCPUs or poll cores
 *             confined to one cpu), vcpu-memory-node (warning when not strict),
 *             rt-on-housekeeping, dataplane-no-cores, io-on-rt-cpu (a disk's I/O thread
 *             may run on an RT vCPU's or poll core's cpu), and on this host only:
 *             user-missing, group-missing, socket-dir-untrusted (group/world-writable or
 *             foreign-owned), the codes of plan_disk__check_image, disk-image-shared (one
 *             image, two disks, one of them writable), the codes of plan_serial__check,
 *             exits-disabled-shared-core (a vCPU of a VM with disable_exits unpinned, or
 *             sharing a cpu with another thread of the plan or its VM's unpinned emulator)
 *   warnings: cpu-not-isolated, cpu-not-nohz-full, smt-sibling-shared, rt-cpu-shared,
 *             exits-disabled-not-isolated,
 *             emulator-on-rt-cpu, vcpu-unpinned, dataplane-remote-node,
 *             dataplane-node-mismatch, dataplane-on-housekeeping, rt-throttling,
 *             no-service-user, socket-dir-missing (outside host.run_dir, this host only)
 *   cannot verify (warnings): hugepages-unknown, isolation-unknown, rt-throttling-unknown
 */
int plan__check(const struct plan *p, const struct topology *t, struct findings *out);

/*
 * Checks `p` against this host's topology (topology__load_host) and prints its findings to
 * `out`: returns the number of errors among them, or -errno with `e` when the host's topology
 * cannot be read or the plan cannot be checked.
 */
int plan__check_host(const struct plan *p, FILE *out, struct err *e);

/*
 * A local disk's image on this host, opening nothing but a regular file (for its first
 * bytes): it exists, is a regular file or block device, readable, writable unless
 * `readonly`, a file of at least 512 bytes that is not a qcow2. Returns 0, or -errno with
 * `e` saying why (without the key) and *code the finding's code: disk-image-missing,
 * disk-image-not-a-disk, disk-image-unreadable, disk-image-readonly, disk-image-too-small,
 * disk-image-qcow2.
 */
int plan_disk__check_image(const struct plan_disk *d, const char **code, struct err *e);

/*
 * A VM's serial file= or socket= on this host (tty and off: 0). A file: writable, or
 * creatable in an existing directory (serial-file-unusable). A socket: its directory
 * trusted as a vhost-user socket's, `tu` and `run_dir` as for those (socket-dir-untrusted;
 * a missing run_dir is fine, rtvmm creates it), the path free or a stale socket
 * (serial-socket-unusable, serial-socket-in-use). Returns 0, or -errno with `e` saying
 * why and *code the finding's code.
 */
int plan_serial__check(const struct plan_serial *ser, const struct trust_uids *tu,
		       const char *run_dir, const char **code, struct err *e);

unsigned findings__count(const struct findings *f, enum finding_level level);
void findings__free(struct findings *f);

/*
 * Human report: one line per finding, "file:line: error: key: value: message [code]" (":line",
 * "key: " and "value: " left out when empty), in file order with host-wide findings last, then
 * "N errors, M warnings (topology: SOURCE)".
 */
void findings__print(const struct findings *f, const struct plan *p, const struct topology *t,
		     FILE *out);

/*
 * The same as a JSON document (jansson) on `out`: {"file", "topology", "errors", "warnings",
 * "findings": [{"level": "error"|"warning", "code", "line" (0 = not from the file), "key",
 * "value", "message"}]}. Returns 0 or -errno.
 */
int findings__print_json(const struct findings *f, const struct plan *p, const struct topology *t,
			 FILE *out);

#endif
