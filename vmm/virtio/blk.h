/*
 * virtio-blk (device type 2): the protocol's facts, shared by the disk the
 * monitor serves itself (this module) and the one a vhost-user backend serves
 * (vhost_blk.h).
 *
 * The monitor's disk: a raw image file or a block device, opened at create
 * and checked (missing, unreadable, smaller than one 512-byte sector, a qcow2
 * given as raw, a read-only file without `readonly`: each refused with the
 * path and the reason). The data path never runs on a vCPU thread: each
 * disk has one I/O thread ("io-<name>") that takes the queues' kicks (their
 * KVM ioeventfds), submits the requests with io_uring and completes them
 * through the queues' call eventfds (KVM irqfds on their MSI-X vectors).
 * Every request is checked before it reaches the image: its buffers lie in
 * guest RAM (virtqueue.h), its sectors in the image; a bad request completes
 * with VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP, a malformed chain stops
 * the queue (the device needs a reset). Nothing a guest sends crashes or
 * stalls the host side.
 */
#ifndef RTVMM_VIRTIO_BLK_H
#define RTVMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/virtio.h"

#define VIRTIO_ID_BLOCK 2

/* Feature bits (virtio 1.x, 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status bytes (5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_SECTOR_SIZE 512
#define VIRTIO_BLK_ID_BYTES    20     /* GET_ID's answer, NUL-padded, not terminated when full */

/* Device configuration space as the guest reads it (little-endian on x86), up to num_queues. */
struct virtio_blk_config {
	uint64_t capacity;            /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
} __attribute__((packed));

/* The header every request starts with (device-readable, 16 bytes). */
struct virtio_blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
} __attribute__((packed));

/* What the machine needs to build one disk the monitor serves; the application fills it. */
struct virtio_blk_spec {
	char name[32];                /* "disk0": messages, the I/O thread "io-disk0" */
	char path[4096];              /* raw image file or block device */
	bool readonly;                /* opened O_RDONLY, VIRTIO_BLK_F_RO offered, writes refused */
	char serial[VIRTIO_BLK_ID_BYTES + 1]; /* GET_ID's answer; "" = the name */
	unsigned queues;              /* request queues, 1..VM_MAX_DISK_QUEUES (MQ when > 1) */
};

/* Counters; the device logs only errors. */
struct virtio_blk_stats {
	uint64_t reads, writes, flushes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t io_errors;           /* requests completed VIRTIO_BLK_S_IOERR (bad sector range, host error) */
	uint64_t unsupported;         /* requests completed VIRTIO_BLK_S_UNSUPP */
	uint64_t bad_chains;          /* malformed descriptor chains (that queue stops) */
	uint64_t kicks;               /* wake-ups of the I/O thread by a queue kick */
	uint64_t capacity;            /* sectors */
	char last_error[256];         /* "" if none */
};

/*
 * Opens and checks the image of `spec` and starts the disk's I/O thread
 * (idle until the driver sets DRIVER_OK), over guest RAM `mem` (which must
 * outlive the device). Errors name the path and the reason.
 */
__attribute__((warn_unused_result))
int virtio_blk__create(const struct virtio_blk_spec *spec, const struct guest_mem *mem,
		       struct virtio_dev **out, struct err *e);

/* Stops the I/O thread (in-flight requests finish first) and closes the image. */
void virtio_blk__destroy(struct virtio_dev *vdev);

/*
 * The I/O thread's kernel thread id, for the application to place it (before
 * the guest runs: at each activation the thread gives its io_uring workers,
 * "iou-wrk-<tid>", the CPUs it was placed on).
 */
pid_t virtio_blk__io_tid(struct virtio_dev *vdev);

void virtio_blk__stats(struct virtio_dev *vdev, struct virtio_blk_stats *st);

struct virtqueue;

/*
 * Completes the request at `head` with VIRTIO_BLK_S_IOERR in its status byte
 * (the chain's last device-writable byte, the walk bounded to guest RAM by
 * virtqueue.h) without reading it: 1 (the bytes written), or -EINVAL with why
 * when the chain is broken or has no writable byte. Pushing it is the caller's.
 */
int virtio_blk__fail_chain(const struct virtqueue *vq, uint16_t head, struct err *e);

/* How a VM holds a monitor-served disk (vmm/device.h): added before its transport, freed after. */
extern const struct device_ops virtio_blk__device_ops;

#endif
