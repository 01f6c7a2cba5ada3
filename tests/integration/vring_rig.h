/*
 * The guest's side of split virtqueues for tests that play the guest without
 * KVM: rings and buffers laid out in guest RAM (a memfd guest_mem), the
 * struct virtio_queue a transport would hand the device (fresh kick and call
 * eventfds), publishing chains and reading the used ring; and what such a
 * test needs around the backend process it runs: starting it with its output
 * in a log, waits, killing it, and a CHECK that counts failures.
 */
#ifndef RTVMM_TESTS_VRING_RIG_H
#define RTVMM_TESTS_VRING_RIG_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vmm/guest_mem.h"
#include "vmm/virtio/virtio.h"

#define RIG_QSIZE_MAX 256
#define RIG_DESC_F_NEXT  1
#define RIG_DESC_F_WRITE 2
#define RIG_AVAIL_F_NO_INTERRUPT 1
#define RIG_USED_F_NO_NOTIFY     1

struct rig_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct rig_queue {
	unsigned index, size;
	uint64_t desc_gpa, avail_gpa, used_gpa, buf_gpa;
	uint32_t buf_size;          /* bytes of buffer per descriptor id */
	struct rig_desc *desc;
	uint16_t *avail;            /* flags, idx, ring[] */
	uint8_t *used;              /* flags, idx, {id, len}[] */
	uint8_t *buf;               /* id i's buffer at buf + i * buf_size */
	uint16_t avail_idx, last_used;
	uint16_t free_ids[RIG_QSIZE_MAX];
	unsigned nr_free;
	uint64_t kicks;
};

/*
 * Lays queue `index` out: its rings in the 12 KiB at `ring_gpa`, `size`
 * buffers of `buf_size` bytes at `buf_gpa`; every id free. Fills `vq` as a
 * transport would (enabled, MSI-X vector = index, new eventfds). 0 or -errno.
 */
int rig_queue__init(struct rig_queue *q, struct guest_mem *mem, unsigned index, unsigned size,
		    uint64_t ring_gpa, uint64_t buf_gpa, uint32_t buf_size, struct virtio_queue *vq);

/* Closes the eventfds rig_queue__init made. */
void rig_queue__close(struct virtio_queue *vq);

uint16_t rig_queue__used_idx(const struct rig_queue *q);

/* The used ring's entry `at` (mod size): the chain's head id and the bytes written. */
void rig_queue__used_elem(const struct rig_queue *q, uint16_t at, uint32_t *id, uint32_t *len);

/* Makes chain `head` available to the device. */
void rig_queue__publish(struct rig_queue *q, uint16_t head);

/* Notifies the device on `kick_fd` unless its used ring says it does not want it. */
void rig_queue__kick(struct rig_queue *q, int kick_fd);

/* Makes `dev` count its config-change interrupts in *count (dev->transport points there). */
void rig_config_irqs__watch(struct virtio_dev *dev, unsigned *count);

/* *count, which the device's thread may be changing. */
unsigned rig_config_irqs__read(const unsigned *count);

/* Waits up to `timeout_ms` for an eventfd (a call) and drains it: 1, or 0 on timeout. */
int rig_wait_eventfd(int fd, int timeout_ms);

/* CLOCK_MONOTONIC in seconds. */
double rig_now_s(void);

/* Waits up to `timeout` seconds for a backend to create its unix socket at `path`: 0 or -ETIMEDOUT. */
int rig_wait_socket(const char *path, double timeout);

/* Copies a peer's log file to stderr under a "---- PATH ----" line (nothing if it cannot be read). */
void rig_dump_file(const char *path);

/* The checks that failed so far; a test fails when it is not 0. */
extern int rig_failures;

/* In a function returning int: unless `cond`, says where and why, counts a failure, returns -1. */
#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                 \
			fprintf(stderr, "\n");                                        \
			rig_failures++;                                               \
			return -1;                                                    \
		}                                                                     \
	} while (0)

/* A peer process the test runs: its stdout and stderr go to `log`. */
struct rig_proc {
	pid_t pid;                  /* 0: not running */
	int stdin_wr;               /* the write end of its stdin (RIG_SPAWN_STDIN), else -1 */
	char log[160];
};

#define RIG_SPAWN_NICE  1u      /* nice 19 (a peer that busy-polls) */
#define RIG_SPAWN_STDIN 2u      /* its stdin a pipe from p->stdin_wr */

/*
 * Starts argv[0] with `argv`, killed when the test dies, in directory `dir`
 * (NULL: this one), its stdout and stderr in the file named by `log_fmt`
 * (truncated; p->log). 0 or -errno.
 */
int rig_spawn(struct rig_proc *p, char *const argv[], const char *dir, unsigned flags,
	      const char *log_fmt, ...) __attribute__((format(printf, 5, 6)));

/* The peer crashes: SIGKILL, reaped. Nothing when it is not running. */
void rig_kill(struct rig_proc *p);

/*
 * Waits up to `timeout` seconds for a peer that was asked to stop, then kills it.
 * Returns its exit status, -1 when a signal ended it or it was not running.
 */
int rig_wait_exit(struct rig_proc *p, double timeout);

#endif
