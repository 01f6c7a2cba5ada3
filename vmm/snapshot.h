/*
 * Snapshots of a whole VM in a directory, and their restore into a VM built
 * with the same shape. The directory holds:
 *   manifest.json  what it is (format, version, rtvmm version, machine shape,
 *                  files and checksums), written last: no manifest, no snapshot
 *   state.bin      sections (machine shape, irqchip/PIT/kvmclock, each vCPU,
 *                  each device, the memory chunk table), each with a CRC-32,
 *                  the whole file with a trailing CRC-32
 *   memory.bin     guest RAM as a sparse file (all-zero chunks are holes)
 */
#ifndef RTVMM_VMM_SNAPSHOT_H
#define RTVMM_VMM_SNAPSHOT_H

#include <stdint.h>

#include "base/err.h"
#include "base/state.h"
#include "vmm/vm.h"

/* The snapshot format this rtvmm writes and reads. */
#define SNAPSHOT_VERSION 1

/* What a snapshot cost. */
struct snapshot_stats {
	uint64_t memory_bytes;     /* guest RAM */
	uint64_t memory_written;   /* of which not zero, written to memory.bin */
	uint64_t state_bytes;      /* state.bin */
	uint64_t paused_ns;        /* from the pause (or the call, when already paused) to the end */
};

/*
 * Writes a snapshot of `vm` into `dir`, which must not exist (it is created
 * 0700). A Running VM is paused for it and resumes after; a Paused one stays
 * paused. Devices are frozen (backends' rings stopped, I/O drained) while
 * their state is read, then thawed. From any thread but a vCPU's. -EBUSY
 * when the VM is neither Running nor Paused; on any error `dir` is removed
 * again and the VM goes on as before; `e` says which step failed.
 */
int snapshot__save(struct vm *vm, const char *dir, struct snapshot_stats *st, struct err *e);

/*
 * Checks the snapshot in `dir` (manifest version, every checksum, the
 * machine's shape against `vm`'s: memory size, vCPUs, devices in order)
 * and loads it into `vm`, built and not yet run: guest RAM, irqchip and
 * PIT, each device, each vCPU (its guest CPUID checked against this host),
 * kvmclock. Once this returns 0, vm__run resumes the guest where it was.
 * -EINVAL for a corrupt or foreign snapshot, -ENOTSUP for one this host
 * cannot run, each with the reason in `e`.
 */
int snapshot__restore(struct vm *vm, const char *dir, struct err *e);

/*
 * The state of a paused VM whose devices are frozen, without guest RAM:
 * state.bin's format with no memory section (a migration stream carries it).
 */
int snapshot__encode(struct vm *vm, struct state_out *out, struct err *e);

/*
 * Loads state made by snapshot__encode into a built VM that has not run, its
 * guest RAM already in place; `what` names the state's source in errors.
 */
int snapshot__decode(struct vm *vm, const void *bytes, size_t len, const char *what, struct err *e);

/* The machine's shape (memory size, vCPUs, devices in order) as bytes, for a migration's hello. */
void snapshot__shape(const struct vm *vm, struct state_out *out);

/* The shape a peer sent against `vm`'s: -EINVAL naming the first difference. */
int snapshot__check_shape(const struct vm *vm, const void *bytes, size_t len, const char *what,
			  struct err *e);

#endif
