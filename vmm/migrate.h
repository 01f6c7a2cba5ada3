/*
 * Live migration of a VM over a connected stream (TCP): pre-copy of guest RAM
 * with KVM's dirty log and guest RAM's own (guest_mem.h: what the monitor's
 * devices and vhost-user backends write, which KVM never sees), rounds until
 * what is left fits the downtime budget, then stop-and-copy of the rest and of
 * the whole state (vmm/snapshot.h's). A device whose backend cannot log its
 * writes (device_ops.dirty_log: -ENOTSUP) refuses the migration before round one.
 *
 * The stream: records of { u32 type, u32 CRC-32 of the payload, u64 payload
 * length, payload }. Source: HELLO (magic, version, the machine's shape),
 * then PAGES (u64 offset into guest RAM, 4 KiB pages) and ZERO (u64 offset,
 * u64 length) records, STATE, DONE. Destination: OK or ERROR (its reason)
 * after HELLO; RUNNING or ERROR after DONE, RUNNING only once its placement
 * is proven and its vCPUs are about to enter the guest. The source's guest
 * stops for good only on RUNNING; on anything else it runs on.
 */
#ifndef RTVMM_VMM_MIGRATE_H
#define RTVMM_VMM_MIGRATE_H

#include <stdint.h>

#include "base/err.h"
#include "vmm/vm.h"

#define MIGRATE_VERSION 1

struct migrate_params {
	unsigned downtime_ms;      /* stop and copy once the dirty pages left take less than this */
	unsigned max_rounds;       /* pre-copy rounds at most, then stop and copy anyway */
	int cancel_fd;             /* readable (an eventfd written by any thread): give up before
				      the switch-over completes, the guest runs on here; -1: never */
};

struct migrate_stats {
	unsigned rounds;           /* pre-copy rounds, the first (all of RAM) included */
	uint64_t pages_sent;       /* 4 KiB pages sent with data */
	uint64_t zero_bytes;       /* RAM sent as ZERO records (not on the wire) */
	uint64_t bytes_sent;       /* on the wire, all records */
	uint64_t last_dirty_pages; /* pages sent after the stop */
	uint64_t total_ns;         /* from HELLO to RUNNING */
	uint64_t downtime_ns;      /* from the pause to RUNNING, as the source saw it */
	uint64_t bandwidth_bps;    /* the last round's, bytes per second */
	const char *dirty_log;     /* how KVM tracked the guest's writes: "ring" or "bitmap" */
	uint64_t ring_full_exits;  /* KVM_EXIT_DIRTY_RING_FULL exits of every vCPU meanwhile */
};

/*
 * Migrates the Running VM over `fd`. On 0 the destination runs the guest and
 * this VM is left paused, its devices frozen: the caller stops it.
 * -EINPROGRESS: everything was sent but no answer came, so the destination
 * may run the guest; this VM stays paused (never two running copies). On any
 * other error the VM runs on as before (dirty logging off, KVM's, guest RAM's and
 * the backends', devices thawed, resumed)
 * and `e` says what failed (a refusal by the destination carries its reason).
 */
int migrate__send(struct vm *vm, int fd, const struct migrate_params *p, struct migrate_stats *st,
		  struct err *e);

/*
 * Receives a migration over `fd` into `vm`, built and not yet run: answers
 * HELLO (refusing another machine's shape), writes guest RAM as it comes, and
 * loads the state at DONE. On 0 the caller proves placement and then calls
 * migrate__confirm before the vCPUs run; on an error the source has been told
 * why (when the stream still works). -ENOMSG: the peer sent no rtvmm hello
 * (a port scan, another protocol, silence): nothing of `vm` was touched and
 * the caller may wait for another.
 */
int migrate__receive(struct vm *vm, int fd, struct migrate_stats *st, struct err *e);

/*
 * Whether a whole HELLO (or something that is none) waits on `fd`, without
 * reading it: 1 (migrate__receive may go), 0 (more to come), -ENOMSG (the
 * peer closed). Lets the caller bound the wait and look for stop signals.
 */
int migrate__hello_ready(int fd);

/* Tells the source the guest runs here now (RUNNING); -errno when it cannot be told. */
int migrate__confirm(int fd);

/* Tells the source the destination cannot run the guest, with `why` (ERROR). */
void migrate__refuse(int fd, const char *why);

#endif
