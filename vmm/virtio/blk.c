/* virtio-blk served by the monitor: a checked raw image, one I/O thread per disk on io_uring. */
#include "vmm/virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/thread_class.h"
#include "base/vm_limits.h"
#include "vmm/virtio/virtqueue.h"

#define BIT(n) (1ull << (n))

#define BLK_QUEUE_SIZE  256                       /* largest ring the device accepts */
#define BLK_SEG_MAX     (BLK_QUEUE_SIZE - 2)      /* a direct chain: header + data + status */
#define BLK_MAX_SLOTS   1024                      /* requests in flight, all queues together */
#define BLK_CHAIN_MAX   VIRTQUEUE_MAX_INDIRECT    /* buffers of one chain (an indirect table) */
#define BLK_INLINE_IOV  8

_Static_assert(VM_MAX_DISK_QUEUES <= VIRTIO_MAX_QUEUES, "a disk's queues must fit the transport");
_Static_assert(BLK_CHAIN_MAX >= BLK_QUEUE_SIZE, "a direct chain must fit the gathering arrays");
_Static_assert(sizeof(struct virtio_blk_config) == 36, "virtio_blk_config up to num_queues");

/* What a completion of the ring is: the kind in the high half of user_data, an index below. */
enum ud_kind { UD_CTL = 1, UD_KICK, UD_REQ, UD_CANCEL };
#define UD(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))

/* One request in flight: its chain, where its data goes, how far it got. */
struct blk_req {
	int next_free;                 /* free list link, -1 at the end */
	unsigned queue;
	uint64_t gen;                  /* the activation it belongs to */
	uint16_t head;
	uint32_t type;
	uint8_t *status;               /* the chain's last device-writable byte */
	uint64_t offset;               /* bytes into the image */
	uint64_t len, done;            /* data bytes, bytes transferred so far */
	struct iovec *iov;             /* what is left to transfer */
	unsigned niov;
	struct iovec *alloc;           /* the iovec array when it did not fit inline */
	struct iovec inline_iov[BLK_INLINE_IOV];
};

/* One request queue as the I/O thread serves it. */
struct blk_queue {
	bool on;                       /* served in the current activation */
	bool broken;                   /* a malformed chain stopped it until the next reset */
	bool deferred;                 /* kicked while frozen: served at the thaw */
	bool polling;                  /* a POLL_ADD on kick_fd is outstanding */
	bool starved;                  /* chains left in the ring for want of a free slot */
	bool pushed;                   /* entries pushed since old_used */
	uint16_t old_used;
	int kick_fd, call_fd;          /* the thread's own duplicates */
	struct virtqueue vq;
};

/* Where a queue's ring stood at a snapshot. */
struct blk_pos {
	uint16_t avail;                /* the next available entry to take */
	uint16_t used;                 /* the next used entry to fill */
	bool broken;
};

/* What the transport asked for last (activation, reset, stop): posted by any thread. */
struct blk_wish {
	uint64_t seq;
	bool active;
	bool stop;
	uint64_t features;
	unsigned nr;
	struct virtio_queue q[VM_MAX_DISK_QUEUES];   /* fds duplicated, owned here until applied */
	bool resume;                                 /* a snapshot's activation: the rings from pos */
	struct blk_pos pos[VM_MAX_DISK_QUEUES];
};

struct blk_counters {
	uint64_t reads, writes, flushes, get_ids, bytes_read, bytes_written;
	uint64_t io_errors, unsupported, bad_chains, kicks;
};

struct blk {
	struct virtio_dev vdev;
	char name[32];
	char path[sizeof(((struct virtio_blk_spec *)0)->path)];
	uint8_t serial[VIRTIO_BLK_ID_BYTES];
	const struct guest_mem *mem;
	int fd;                        /* the image */
	bool readonly;
	unsigned queues;
	struct virtio_blk_config cfg;  /* constant after create */

	struct io_uring ring;
	int ctl_fd;                    /* eventfd: a new wish */
	pthread_t thread;
	pid_t tid;
	sem_t started;

	/* Under lock: the wish, the last error, the snapshot's handshake. */
	pthread_mutex_t lock;
	struct blk_wish want;
	char last_error[256];
	bool logged_host_error;
	pthread_cond_t cond;           /* `drained` became true (or the thread died) */
	bool freeze_want;              /* freeze asked, thaw not yet */
	bool drained;                  /* the thread is frozen with nothing in flight */
	struct {                       /* a snapshot's activation (load) for the resuming DRIVER_OK */
		bool valid;
		uint64_t features;
		struct blk_pos pos[VM_MAX_DISK_QUEUES];
	} loaded;

	/* Written by the I/O thread, read by others (atomics). */
	uint64_t applied_seq;          /* the last wish the thread has applied */
	uint64_t inflight;             /* requests submitted to the image, not yet completed */
	bool dead;                     /* the ring failed: the thread is gone */
	struct blk_counters n;

	/* The I/O thread's own state. */
	uint64_t gen;                  /* bumped at each teardown and activation */
	bool serving;
	uint64_t features;             /* negotiated, while serving */
	bool frozen;                   /* takes no request until thawed (it completes those it has) */
	bool stopping;
	bool ctl_polling;
	bool logged_placement;
	unsigned polls;                /* kick polls outstanding */
	struct blk_queue q[VM_MAX_DISK_QUEUES];
	struct blk_req *slots;
	unsigned nr_slots;
	int free_slot;
	struct iovec *rbuf, *wbuf;     /* a chain's readable and writable buffers, BLK_CHAIN_MAX each */
};

static struct blk *to_blk(struct virtio_dev *vdev)
{
	return vdev->priv;
}

static void count(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static void nudge(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* only when the counter would overflow: a wake-up is already pending */
	}
}

static void drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was pending */
	}
}

/* Records the device's last error; prints it when `print` (bounded by the caller). */
__attribute__((format(printf, 3, 4)))
static void record_error(struct blk *b, bool print, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&b->lock);
	va_start(ap, fmt);
	vsnprintf(b->last_error, sizeof(b->last_error), fmt, ap);
	va_end(ap);
	if (print)
		fprintf(stderr, "rtvmm: %s: %s\n", b->name, b->last_error);
	pthread_mutex_unlock(&b->lock);
}

/* ---- the ring ---- */

/* A free submission entry (submitting what is queued when the ring is full), or NULL. */
static struct io_uring_sqe *get_sqe(struct blk *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	if (!sqe) {
		io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
	}
	return sqe;
}

static bool arm_poll(struct blk *b, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe(b);

	if (!sqe)
		return false;
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud);
	return true;
}

/* ---- requests ---- */

static int slot_get(struct blk *b)
{
	int i = b->free_slot;

	if (i >= 0)
		b->free_slot = b->slots[i].next_free;
	return i;
}

static void slot_put(struct blk *b, int i)
{
	struct blk_req *r = &b->slots[i];

	free(r->alloc);
	r->alloc = NULL;
	r->next_free = b->free_slot;
	b->free_slot = i;
}

/*
 * Completes a request on its queue, unless the transport asked for a reset
 * since the request was taken (even one the thread has not applied yet): then
 * nothing reaches the guest's rings (false).
 */
static bool finish(struct blk *b, unsigned qi, uint64_t gen, uint16_t head, uint8_t *status,
		   uint8_t st, uint32_t written)
{
	struct blk_queue *q = &b->q[qi];

	if (gen != b->gen || !b->serving || !q->on ||
	    __atomic_load_n(&b->want.seq, __ATOMIC_ACQUIRE) != b->applied_seq)
		return false;
	__atomic_store_n(status, st, __ATOMIC_RELAXED);
	/* The status, like the data before it, is in the dirty log before the guest can see it used. */
	guest_mem__log_host(b->mem, status, 1);
	virtqueue__push(&q->vq, head, written);
	q->pushed = true;
	if (st == VIRTIO_BLK_S_IOERR)
		count(&b->n.io_errors, 1);
	else if (st == VIRTIO_BLK_S_UNSUPP)
		count(&b->n.unsupported, 1);
	return true;
}

/* A chain the device cannot serve: the queue stops until the driver resets the device. */
static void bad_chain(struct blk *b, unsigned qi, const char *why, uint16_t at)
{
	b->q[qi].broken = true;
	count(&b->n.bad_chains, 1);
	record_error(b, true, "queue %u: %s (head at avail %u); the queue stops until the driver "
		     "resets the device", qi, why, at);
}

/* An error of the host side (the image): the guest gets IOERR; printed the first time only. */
static void host_error(struct blk *b, const struct blk_req *r, int err)
{
	bool print;

	pthread_mutex_lock(&b->lock);
	print = !b->logged_host_error;
	b->logged_host_error = true;
	pthread_mutex_unlock(&b->lock);
	record_error(b, print, "%s of %llu bytes at sector %llu of %s: %s%s",
		     r->type == VIRTIO_BLK_T_IN ? "read" : r->type == VIRTIO_BLK_T_OUT ? "write" : "flush",
		     (unsigned long long)r->len, (unsigned long long)(r->offset / VIRTIO_BLK_SECTOR_SIZE),
		     b->path, err ? strerror(-err) : "end of the image",
		     print ? " (the guest gets an I/O error; further errors only counted)" : "");
}

static void iov_advance(struct blk_req *r, uint64_t n)
{
	while (n && r->niov) {
		if (n >= r->iov->iov_len) {
			n -= r->iov->iov_len;
			r->iov++;
			r->niov--;
		} else {
			r->iov->iov_base = (uint8_t *)r->iov->iov_base + n;
			r->iov->iov_len -= n;
			n = 0;
		}
	}
}

/* Submits what is left of request `i`; false when the ring has no room. */
static bool submit(struct blk *b, int i)
{
	struct blk_req *r = &b->slots[i];
	struct io_uring_sqe *sqe = get_sqe(b);

	if (!sqe)
		return false;
	if (r->type == VIRTIO_BLK_T_IN)
		io_uring_prep_readv(sqe, b->fd, r->iov, r->niov, r->offset + r->done);
	else if (r->type == VIRTIO_BLK_T_OUT)
		io_uring_prep_writev(sqe, b->fd, r->iov, r->niov, r->offset + r->done);
	else
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, UD(UD_REQ, i));
	return true;
}

static void request_done(struct blk *b, int i, uint8_t st)
{
	struct blk_req *r = &b->slots[i];
	uint32_t written = st == VIRTIO_BLK_S_OK && r->type == VIRTIO_BLK_T_IN ? 1 + (uint32_t)r->len : 1;

	if (finish(b, r->queue, r->gen, r->head, r->status, st, written) && st == VIRTIO_BLK_S_OK) {
		if (r->type == VIRTIO_BLK_T_IN) {
			count(&b->n.reads, 1);
			count(&b->n.bytes_read, r->len);
		} else if (r->type == VIRTIO_BLK_T_OUT) {
			count(&b->n.writes, 1);
			count(&b->n.bytes_written, r->len);
		} else {
			count(&b->n.flushes, 1);
		}
	}
	slot_put(b, i);
	__atomic_store_n(&b->inflight, b->inflight - 1, __ATOMIC_RELEASE);
}

/* Marks the first `bytes` of `v` (n buffers in guest RAM) in the dirty log: data the device wrote. */
static void log_iov(const struct blk *b, const struct iovec *v, unsigned n, uint64_t bytes)
{
	for (; n && bytes; v++, n--) {
		uint64_t k = bytes < v->iov_len ? bytes : v->iov_len;

		guest_mem__log_host(b->mem, v->iov_base, k);
		bytes -= k;
	}
}

/* A completion of the image: done, or the rest of a short transfer goes again. */
static void request_completed(struct blk *b, int i, int res)
{
	struct blk_req *r = &b->slots[i];

	if (res < 0 || (r->type != VIRTIO_BLK_T_FLUSH && res == 0)) {
		/* A failed read may have written part of its buffers all the same. */
		if (r->type == VIRTIO_BLK_T_IN)
			log_iov(b, r->iov, r->niov, UINT64_MAX);
		host_error(b, r, res);
		request_done(b, i, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (r->type == VIRTIO_BLK_T_IN)
		log_iov(b, r->iov, r->niov, (uint64_t)res);
	if (r->type != VIRTIO_BLK_T_FLUSH) {
		r->done += (uint64_t)res;
		iov_advance(r, (uint64_t)res);
		if (r->done < r->len) {
			if (!submit(b, i)) {
				host_error(b, r, -EBUSY);
				request_done(b, i, VIRTIO_BLK_S_IOERR);
			}
			return;
		}
	}
	request_done(b, i, VIRTIO_BLK_S_OK);
}

/* A chain's buffers as the walk gives them, readable ones before writable ones. */
struct chain {
	struct blk *b;
	unsigned nr, nw;
	uint64_t rbytes;
	const char *why;               /* set when the callback stops the walk */
};

/* virtqueue_buf_fn: gathers the non-empty buffers. */
static int gather(void *arg, const struct virtqueue_buf *vb)
{
	struct chain *c = arg;
	struct iovec *v;

	if (!vb->len)
		return 0;
	if (c->nr + c->nw >= BLK_CHAIN_MAX) {
		c->why = "more buffers than a chain may hold";
		return -E2BIG;
	}
	v = vb->write ? &c->b->wbuf[c->nw++] : &c->b->rbuf[c->nr++];
	*v = (struct iovec){ .iov_base = vb->hva, .iov_len = vb->len };
	if (!vb->write)
		c->rbytes += vb->len;
	return 0;
}

/* virtqueue_buf_fn: keeps the last device-writable byte. */
static int last_writable(void *arg, const struct virtqueue_buf *vb)
{
	uint8_t **status = arg;

	if (vb->write && vb->len)
		*status = (uint8_t *)vb->hva + vb->len - 1;
	return 0;
}

int virtio_blk__fail_chain(const struct virtqueue *vq, uint16_t head, struct err *e)
{
	uint8_t *status = NULL;
	struct err why = { 0 };
	int err = virtqueue__walk(vq, head, last_writable, &status, &why);

	if (err)
		return err__set(e, -EINVAL, "head %u: %s", head, why.msg);
	if (!status)
		return err__set(e, -EINVAL, "head %u: no device-writable status byte", head);
	__atomic_store_n(status, VIRTIO_BLK_S_IOERR, __ATOMIC_RELAXED);
	guest_mem__log_host(vq->mem, status, 1);
	return 1;
}

/* Copies the first `len` bytes of `v` (n buffers) to dst and drops them from the array. */
static void take_bytes(struct iovec **v, unsigned *n, void *dst, size_t len)
{
	uint8_t *d = dst;

	while (len && *n) {
		size_t k = len < (*v)->iov_len ? len : (*v)->iov_len;

		memcpy(d, (*v)->iov_base, k);
		d += k;
		len -= k;
		(*v)->iov_base = (uint8_t *)(*v)->iov_base + k;
		(*v)->iov_len -= k;
		if (!(*v)->iov_len) {
			(*v)++;
			(*n)--;
		}
	}
}

static uint64_t iov_bytes(const struct iovec *v, unsigned n)
{
	uint64_t s = 0;

	while (n--)
		s += (v++)->iov_len;
	return s;
}

/* GET_ID: the serial into the data buffers (20 bytes, NUL-padded); returns the bytes written. */
static uint32_t put_serial(const struct blk *b, const struct iovec *v, unsigned n)
{
	uint32_t off = 0;

	for (; n && off < VIRTIO_BLK_ID_BYTES; v++, n--) {
		size_t k = VIRTIO_BLK_ID_BYTES - off < v->iov_len ? VIRTIO_BLK_ID_BYTES - off : v->iov_len;

		memcpy(v->iov_base, b->serial + off, k);
		guest_mem__log_host(b->mem, v->iov_base, k);
		off += (uint32_t)k;
	}
	return off;
}

/* Takes the chain at `head`: answers it at once or submits its I/O. */
static void serve_chain(struct blk *b, unsigned qi, uint16_t head, uint16_t at)
{
	struct blk_queue *q = &b->q[qi];
	struct chain c = { .b = b };
	struct virtio_blk_req_hdr hdr;
	struct iovec *data, *rv = b->rbuf, *last;
	unsigned ndata, nr;
	uint64_t len, capacity = b->cfg.capacity;
	uint8_t *status;
	struct err e = { 0 };
	struct blk_req *r;
	int i;

	if (virtqueue__walk(&q->vq, head, gather, &c, &e)) {
		bad_chain(b, qi, c.why ? c.why : e.msg, at);
		return;
	}
	if (c.rbytes < sizeof(hdr)) {
		bad_chain(b, qi, "request header shorter than 16 bytes", at);
		return;
	}
	if (!c.nw) {
		bad_chain(b, qi, "no device-writable status byte", at);
		return;
	}
	nr = c.nr;
	take_bytes(&rv, &nr, &hdr, sizeof(hdr));
	/* The status is the last device-writable byte; data-in is what comes before it. */
	last = &b->wbuf[c.nw - 1];
	status = (uint8_t *)last->iov_base + last->iov_len - 1;
	last->iov_len--;
	ndata = last->iov_len ? c.nw : c.nw - 1;
	data = b->wbuf;
	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
		break;
	case VIRTIO_BLK_T_OUT:
		if (b->readonly) {
			finish(b, qi, b->gen, head, status, VIRTIO_BLK_S_IOERR, 1);
			return;
		}
		data = rv;
		ndata = nr;
		break;
	case VIRTIO_BLK_T_FLUSH:
		ndata = 0;
		break;
	case VIRTIO_BLK_T_GET_ID:
		count(&b->n.get_ids, 1);
		finish(b, qi, b->gen, head, status, VIRTIO_BLK_S_OK, put_serial(b, data, ndata) + 1);
		return;
	default:
		finish(b, qi, b->gen, head, status, VIRTIO_BLK_S_UNSUPP, 1);
		return;
	}
	len = iov_bytes(data, ndata);
	/* Whole sectors inside the image, and a used length that fits its 32 bits. */
	if (hdr.type != VIRTIO_BLK_T_FLUSH &&
	    (len % VIRTIO_BLK_SECTOR_SIZE || len >= UINT32_MAX || hdr.sector > capacity ||
	     len / VIRTIO_BLK_SECTOR_SIZE > capacity - hdr.sector)) {
		finish(b, qi, b->gen, head, status, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	i = slot_get(b);               /* process_queue made sure one is free */
	r = &b->slots[i];
	r->queue = qi;
	r->gen = b->gen;
	r->head = head;
	r->type = hdr.type;
	r->status = status;
	r->offset = hdr.type == VIRTIO_BLK_T_FLUSH ? 0 : hdr.sector * VIRTIO_BLK_SECTOR_SIZE;
	r->len = len;
	r->done = 0;
	r->iov = r->inline_iov;
	if (ndata > BLK_INLINE_IOV) {
		r->alloc = malloc(ndata * sizeof(*r->alloc));
		if (!r->alloc) {
			slot_put(b, i);
			finish(b, qi, b->gen, head, status, VIRTIO_BLK_S_IOERR, 1);
			return;
		}
		r->iov = r->alloc;
	}
	memcpy(r->iov, data, ndata * sizeof(*data));
	r->niov = ndata;
	__atomic_store_n(&b->inflight, b->inflight + 1, __ATOMIC_RELEASE);
	if (hdr.type != VIRTIO_BLK_T_FLUSH && !len) {
		request_done(b, i, VIRTIO_BLK_S_OK);
		return;
	}
	if (!submit(b, i)) {
		host_error(b, r, -EBUSY);
		request_done(b, i, VIRTIO_BLK_S_IOERR);
	}
}

/* Takes every chain the driver made available on queue `qi`, as far as slots allow. */
static void process_queue(struct blk *b, unsigned qi)
{
	struct blk_queue *q = &b->q[qi];
	bool rechecked = false;

	if (b->frozen) {
		q->deferred = true;            /* taken at the thaw */
		return;
	}
	q->starved = false;
	while (q->on && !q->broken) {
		uint16_t at = q->vq.last_avail, head;
		struct err e = { 0 };
		int got;

		if (b->free_slot < 0) {
			q->starved = true;     /* served again when a request completes */
			return;
		}
		got = virtqueue__pop(&q->vq, &head, &e);
		if (got < 0) {
			bad_chain(b, qi, e.msg, at);
			return;
		}
		if (got) {
			serve_chain(b, qi, head, at);
			rechecked = false;
			continue;
		}
		if (rechecked)
			return;
		/* With EVENT_IDX: ask for the next kick, then look once more (it may have come before). */
		virtqueue__update_avail_event(&q->vq);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		rechecked = true;
	}
}

/* Interrupts for the queues that completed something, as the driver asked for them. */
static void signal_queues(struct blk *b)
{
	unsigned i;

	for (i = 0; i < b->queues; i++) {
		struct blk_queue *q = &b->q[i];

		if (!q->pushed)
			continue;
		if (q->on && virtqueue__need_signal(&q->vq, q->old_used))
			nudge(q->call_fd);
		q->pushed = false;
		q->old_used = q->vq.next_used;
	}
}

/* ---- activation, reset, stop: applied by the I/O thread ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * The ring's workers (kernel threads "iou-wrk-<tid>" that run what cannot
 * complete at once, buffered writes and flushes) run where the I/O thread was
 * placed: Linux 6.1 gives them every CPU of the node otherwise, isolated vCPU
 * cores included, and refuses sched_setaffinity on them. Done at each
 * activation (the thread is placed before the guest runs), by the thread
 * itself: a ring's workers belong to the thread that submits.
 */
static void follow_placement(struct blk *b)
{
	cpu_set_t cpus;
	int err;

	err = sched_getaffinity(0, sizeof(cpus), &cpus) ? -errno :
	      io_uring_register_iowq_aff(&b->ring, sizeof(cpus), &cpus);
	if (err && !b->logged_placement) {
		b->logged_placement = true;
		record_error(b, true, "io_uring workers cannot follow the I/O thread's CPUs (%s): "
			     "they may run on any CPU of its node", strerror(-err));
	}
}

/* Stops serving the current rings: no completion reaches them from now on. */
static void teardown(struct blk *b)
{
	unsigned i;

	for (i = 0; i < b->queues; i++) {
		struct blk_queue *q = &b->q[i];
		struct io_uring_sqe *sqe;

		if (!q->on)
			continue;
		q->on = false;
		q->broken = false;
		q->starved = false;
		q->pushed = false;
		close_fd(&q->call_fd);
		if (!q->polling) {
			close_fd(&q->kick_fd);
			continue;
		}
		/* The poll holds the kick eventfd: its completion (cancelled) closes it. */
		sqe = get_sqe(b);
		if (sqe) {
			io_uring_prep_poll_remove(sqe, UD(UD_KICK, i));
			io_uring_sqe_set_data64(sqe, UD(UD_CANCEL, i));
		}
	}
	b->serving = false;
	b->gen++;
}

/*
 * A snapshot's freeze or thaw, as asked last: frozen, the thread takes no new
 * request (kicks are remembered) and completes those it has; thawed, it takes
 * what waited.
 */
static void apply_freeze(struct blk *b)
{
	bool want;
	unsigned i;

	pthread_mutex_lock(&b->lock);
	want = b->freeze_want;
	pthread_mutex_unlock(&b->lock);
	if (want == b->frozen)
		return;
	b->frozen = want;
	if (want)
		return;
	for (i = 0; i < b->queues; i++) {
		if (b->q[i].deferred || b->q[i].starved)
			process_queue(b, i);
		b->q[i].deferred = false;
	}
}

/* Applies the transport's last wish once the old rings' polls are gone. */
static void apply_wish(struct blk *b)
{
	struct blk_wish w;
	unsigned i;

	pthread_mutex_lock(&b->lock);
	w.seq = b->want.seq;
	pthread_mutex_unlock(&b->lock);
	if (w.seq == b->applied_seq)
		return;
	if (b->serving)
		teardown(b);
	if (b->polls)
		return;                /* again when the last cancelled poll completes */
	/* A freeze asked before this wish (a restore's load) holds the new rings from the start. */
	apply_freeze(b);

	pthread_mutex_lock(&b->lock);
	w = b->want;
	for (i = 0; i < w.nr; i++)
		b->want.q[i].kick_fd = b->want.q[i].call_fd = -1;   /* the thread owns them now */
	pthread_mutex_unlock(&b->lock);
	/* Applied from here: the old rings are let go, completions reach only the new ones. */
	__atomic_store_n(&b->applied_seq, w.seq, __ATOMIC_RELEASE);
	if (w.stop)
		b->stopping = true;
	if (w.active && !w.stop) {
		follow_placement(b);
		b->gen++;
		b->features = w.features;
		for (i = 0; i < w.nr; i++) {
			struct blk_queue *q = &b->q[i];

			q->kick_fd = w.q[i].kick_fd;
			q->call_fd = w.q[i].call_fd;
			if (!w.q[i].enabled || q->kick_fd < 0) {
				close_fd(&q->kick_fd);
				close_fd(&q->call_fd);
				continue;
			}
			virtqueue__init(&q->vq, b->mem, &w.q[i], w.features);
			if (w.resume) {
				q->vq.last_avail = w.pos[i].avail;
				q->vq.next_used = w.pos[i].used;
				q->broken = w.pos[i].broken;
			}
			q->old_used = q->vq.next_used;
			q->on = true;
			q->polling = arm_poll(b, q->kick_fd, UD(UD_KICK, i));
			if (q->polling)
				b->polls++;
			else
				bad_chain(b, i, "no room in the ring to wait for kicks", 0);
		}
		b->serving = true;
		/* Requests the driver queued before DRIVER_OK (or whose kick came early). */
		for (i = 0; i < w.nr; i++)
			process_queue(b, i);
		signal_queues(b);
	} else {
		for (i = 0; i < w.nr; i++) {
			close_fd(&w.q[i].kick_fd);
			close_fd(&w.q[i].call_fd);
		}
	}
}

/* Frozen with nothing in flight (every request taken is in its used ring, interrupts sent): tells freeze. */
static void publish_drained(struct blk *b)
{
	if (!b->frozen || __atomic_load_n(&b->inflight, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&b->lock);
	if (b->freeze_want && !b->drained) {
		b->drained = true;
		pthread_cond_broadcast(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
}

static void kick_completed(struct blk *b, unsigned qi, int res)
{
	struct blk_queue *q = &b->q[qi];

	b->polls--;
	q->polling = false;
	if (!q->on) {
		close_fd(&q->kick_fd);   /* torn down: this was the poll's end */
		return;
	}
	if (res < 0) {
		bad_chain(b, qi, "waiting for kicks failed", q->vq.last_avail);
		return;
	}
	drain(q->kick_fd);
	count(&b->n.kicks, 1);
	process_queue(b, qi);
	q->polling = arm_poll(b, q->kick_fd, UD(UD_KICK, qi));
	if (q->polling)
		b->polls++;
	else
		bad_chain(b, qi, "no room in the ring to wait for kicks", q->vq.last_avail);
}

static void completed(struct blk *b, uint64_t ud, int res)
{
	unsigned idx = (uint32_t)ud;

	switch ((enum ud_kind)(ud >> 32)) {
	case UD_CTL:
		b->ctl_polling = false;
		drain(b->ctl_fd);
		apply_freeze(b);
		apply_wish(b);
		if (!b->stopping)
			b->ctl_polling = arm_poll(b, b->ctl_fd, UD(UD_CTL, 0));
		break;
	case UD_KICK:
		if (idx < b->queues)
			kick_completed(b, idx, res);
		break;
	case UD_REQ:
		if (idx < b->nr_slots)
			request_completed(b, (int)idx, res);
		break;
	case UD_CANCEL:
		break;
	}
}

static void *io_thread(void *arg)
{
	struct blk *b = arg;
	unsigned i;

	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	thread_class__enter(THREAD_CLASS_IO, b->name);
	sem_post(&b->started);
	b->ctl_polling = arm_poll(b, b->ctl_fd, UD(UD_CTL, 0));
	while (!b->stopping || b->polls || b->inflight) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int err;

		err = io_uring_submit_and_wait(&b->ring, 1);
		if (err < 0 && err != -EINTR && err != -EBUSY && err != -EAGAIN) {
			record_error(b, true, "io_uring_enter: %s; the disk stops", strerror(-err));
			pthread_mutex_lock(&b->lock);
			__atomic_store_n(&b->dead, true, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&b->cond);
			pthread_mutex_unlock(&b->lock);
			break;
		}
		io_uring_for_each_cqe(&b->ring, head, cqe) {
			completed(b, cqe->user_data, cqe->res);
			seen++;
		}
		io_uring_cq_advance(&b->ring, seen);
		for (i = 0; i < b->queues; i++)
			if (b->q[i].starved)
				process_queue(b, i);
		signal_queues(b);
		/* A wish that waited for cancelled polls, or for the control poll to come back. */
		if (!b->polls)
			apply_wish(b);
		if (!b->ctl_polling && !b->stopping)
			b->ctl_polling = arm_poll(b, b->ctl_fd, UD(UD_CTL, 0));
		publish_drained(b);
	}
	for (i = 0; i < b->queues; i++) {
		close_fd(&b->q[i].kick_fd);
		close_fd(&b->q[i].call_fd);
	}
	return NULL;
}

/* ---- virtio_dev_ops: from vCPU threads; none waits for the I/O thread ---- */

static uint64_t blk_features(struct virtio_dev *vdev)
{
	struct blk *b = to_blk(vdev);
	uint64_t f = BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH) |
		     BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_RING_F_EVENT_IDX);

	if (b->readonly)
		f |= BIT(VIRTIO_BLK_F_RO);
	if (b->queues > 1)
		f |= BIT(VIRTIO_BLK_F_MQ);
	return f;
}

static void blk_config_read(struct virtio_dev *vdev, uint32_t off, void *data, uint32_t len)
{
	struct blk *b = to_blk(vdev);

	memset(data, 0, len);
	if (off >= sizeof(b->cfg))
		return;
	if (len > sizeof(b->cfg) - off)
		len = (uint32_t)(sizeof(b->cfg) - off);
	memcpy(data, (const uint8_t *)&b->cfg + off, len);
}

static void blk_config_write(struct virtio_dev *vdev, uint32_t off, const void *data, uint32_t len)
{
	/* Nothing is writable without VIRTIO_BLK_F_CONFIG_WCE, which is not offered. */
	(void)vdev;
	(void)off;
	(void)data;
	(void)len;
}

/* Closes the fds of a wish the thread has not taken. Lock held. */
static void wish_drop_fds(struct blk_wish *w)
{
	unsigned i;

	for (i = 0; i < w->nr; i++) {
		close_fd(&w->q[i].kick_fd);
		close_fd(&w->q[i].call_fd);
	}
	w->nr = 0;
}

/* Posts a wish to the I/O thread. Lock held. */
static void wish_post(struct blk *b)
{
	__atomic_store_n(&b->want.seq, b->want.seq + 1, __ATOMIC_RELEASE);
	nudge(b->ctl_fd);
}

static int blk_activate(struct virtio_dev *vdev, const struct virtio_activation *a)
{
	struct blk *b = to_blk(vdev);
	bool event_idx = a->features & BIT(VIRTIO_RING_F_EVENT_IDX);
	struct virtio_queue q[VM_MAX_DISK_QUEUES];
	unsigned i, nr = a->nr_queues < b->queues ? a->nr_queues : b->queues;
	int err = 0;

	if (a->mem != b->mem || !a->queues)
		return -EINVAL;
	for (i = 0; i < nr; i++) {
		struct err e = { 0 };

		q[i] = a->queues[i];
		q[i].kick_fd = q[i].call_fd = -1;
		if (!a->queues[i].enabled)
			continue;
		if (virtqueue__check(b->mem, &a->queues[i], BLK_QUEUE_SIZE, event_idx, &e)) {
			fprintf(stderr, "rtvmm: %s: queue %u: %s; the device needs a reset\n", b->name, i,
				e.msg);
			err = e.code;
			break;
		}
		q[i].kick_fd = fcntl(a->queues[i].kick_fd, F_DUPFD_CLOEXEC, 0);
		q[i].call_fd = fcntl(a->queues[i].call_fd, F_DUPFD_CLOEXEC, 0);
		if (q[i].kick_fd < 0 || q[i].call_fd < 0) {
			err = -errno;
			fprintf(stderr, "rtvmm: %s: queue %u: cannot duplicate its eventfds: %s; the "
				"device needs a reset\n", b->name, i, strerror(errno));
			i++;
			break;
		}
	}
	pthread_mutex_lock(&b->lock);
	/* A snapshot's positions serve the one activation that resumes it, no other. */
	if (!err && a->resume && (!b->loaded.valid || b->loaded.features != a->features)) {
		fprintf(stderr, "rtvmm: %s: the snapshot's activation does not match the device's "
			"saved state; the device needs a reset\n", b->name);
		err = -EINVAL;
	}
	if (err) {
		b->loaded.valid = false;
		pthread_mutex_unlock(&b->lock);
		while (i--) {
			close_fd(&q[i].kick_fd);
			close_fd(&q[i].call_fd);
		}
		return err;
	}
	wish_drop_fds(&b->want);
	b->want.active = true;
	b->want.features = a->features;
	b->want.nr = nr;
	memcpy(b->want.q, q, nr * sizeof(q[0]));
	b->want.resume = a->resume;
	memcpy(b->want.pos, b->loaded.pos, sizeof(b->want.pos));
	b->loaded.valid = false;
	wish_post(b);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static void blk_reset(struct virtio_dev *vdev)
{
	struct blk *b = to_blk(vdev);

	pthread_mutex_lock(&b->lock);
	if (b->want.active) {
		wish_drop_fds(&b->want);
		b->want.active = false;
		wish_post(b);
	}
	pthread_mutex_unlock(&b->lock);
}

/* True until the I/O thread has let go of the old rings and their last request completed. */
static bool blk_resetting(struct virtio_dev *vdev)
{
	struct blk *b = to_blk(vdev);
	uint64_t seq;
	bool active;

	pthread_mutex_lock(&b->lock);
	seq = b->want.seq;
	active = b->want.active;
	pthread_mutex_unlock(&b->lock);
	if (active || __atomic_load_n(&b->dead, __ATOMIC_ACQUIRE))
		return false;
	return __atomic_load_n(&b->applied_seq, __ATOMIC_ACQUIRE) != seq ||
	       __atomic_load_n(&b->inflight, __ATOMIC_ACQUIRE) != 0;
}

/* "N sectors[ read-only], reads R (B bytes), writes ...; TRANSPORT[; last error: ...]" */
static void blk_report(struct virtio_dev *vdev, FILE *out, const char *transport)
{
	struct blk *b = to_blk(vdev);
	struct virtio_blk_stats st;

	virtio_blk__stats(vdev, &st);
	fprintf(out, "%llu sectors%s, reads %llu (%llu bytes), writes %llu (%llu bytes), flushes %llu, "
		"get-id %llu, I/O errors %llu, unsupported %llu, bad chains %llu, kicks %llu; %s%s%s",
		(unsigned long long)st.capacity, b->readonly ? " read-only" : "",
		(unsigned long long)st.reads, (unsigned long long)st.bytes_read,
		(unsigned long long)st.writes, (unsigned long long)st.bytes_written,
		(unsigned long long)st.flushes, (unsigned long long)st.get_ids,
		(unsigned long long)st.io_errors, (unsigned long long)st.unsupported,
		(unsigned long long)st.bad_chains, (unsigned long long)st.kicks, transport,
		st.last_error[0] ? "; last error: " : "", st.last_error);
}

static void blk_counters(struct virtio_dev *vdev, const struct counter_sink *sink)
{
	struct blk *b = to_blk(vdev);
	struct virtio_blk_stats st;

	virtio_blk__stats(vdev, &st);
	sink->num(sink->opaque, "capacity_sectors", st.capacity);
	sink->str(sink->opaque, "mode", b->readonly ? "read-only" : "read-write");
	sink->num(sink->opaque, "reads", st.reads);
	sink->num(sink->opaque, "bytes_read", st.bytes_read);
	sink->num(sink->opaque, "writes", st.writes);
	sink->num(sink->opaque, "bytes_written", st.bytes_written);
	sink->num(sink->opaque, "flushes", st.flushes);
	sink->num(sink->opaque, "get_ids", st.get_ids);
	sink->num(sink->opaque, "io_errors", st.io_errors);
	sink->num(sink->opaque, "unsupported", st.unsupported);
	sink->num(sink->opaque, "bad_chains", st.bad_chains);
	sink->num(sink->opaque, "kicks", st.kicks);
	if (st.last_error[0])
		sink->str(sink->opaque, "last_error", st.last_error);
}

static const struct virtio_dev_ops blk_ops = {
	.features = blk_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.reset = blk_reset,
	.resetting = blk_resetting,
	.report = blk_report,
	.counters = blk_counters,
};

/* ---- the image ---- */

/* Opens and checks the image; sets b->fd and the capacity. Errors name the path and why. */
static int open_image(struct blk *b, const struct virtio_blk_spec *spec, struct err *e)
{
	const char *p = spec->path;
	int flags = (spec->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC, fd, err;
	uint64_t size;
	unsigned sector = VIRTIO_BLK_SECTOR_SIZE;
	uint8_t magic[4];
	struct stat st;
	ssize_t got;

	if (stat(p, &st))
		return err__set(e, -errno, "disk '%s': image %s: %s", b->name, p,
				errno == ENOENT ? "no such file" : strerror(errno));
	if (S_ISDIR(st.st_mode))
		return err__set(e, -EISDIR, "disk '%s': image %s is a directory, not a raw image "
				"file or a block device", b->name, p);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return err__set(e, -EINVAL, "disk '%s': image %s is neither a regular file nor a "
				"block device", b->name, p);
	fd = open(p, flags);
	if (fd < 0) {
		err = -errno;
		if (!spec->readonly && (err == -EACCES || err == -EROFS || err == -EPERM)) {
			int ro = open(p, O_RDONLY | O_CLOEXEC);

			if (ro >= 0) {
				close(ro);
				return err__set(e, err, "disk '%s': image %s cannot be written (%s): "
						"open it with readonly=on", b->name, p, strerror(-err));
			}
		}
		if (err == -EACCES)
			return err__set(e, err, "disk '%s': image %s is unreadable: permission denied "
					"(uid %u)", b->name, p, (unsigned)geteuid());
		return err__set(e, err, "disk '%s': image %s cannot be opened: %s", b->name, p,
				strerror(-err));
	}
	if (fstat(fd, &st)) {
		err = err__set(e, -errno, "disk '%s': image %s: fstat: %s", b->name, p, strerror(errno));
		goto err_close;
	}
	/* Root may write any file: a file nobody may write is meant read-only all the same. */
	if (!spec->readonly && S_ISREG(st.st_mode) && !(st.st_mode & 0222)) {
		err = err__set(e, -EROFS, "disk '%s': image %s is a read-only file (mode %04o, no "
			       "write permission): open it with readonly=on", b->name, p,
			       (unsigned)(st.st_mode & 07777));
		goto err_close;
	}
	size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 0;

		if (ioctl(fd, BLKGETSIZE64, &size)) {
			err = err__set(e, -errno, "disk '%s': block device %s: BLKGETSIZE64: %s",
				       b->name, p, strerror(errno));
			goto err_close;
		}
		if (!ioctl(fd, BLKSSZGET, &lbs) && lbs >= VIRTIO_BLK_SECTOR_SIZE && !(lbs & (lbs - 1)))
			sector = (unsigned)lbs;
	}
	if (size < VIRTIO_BLK_SECTOR_SIZE) {
		err = err__set(e, -EINVAL, "disk '%s': image %s is %llu bytes, smaller than one "
			       "512-byte sector", b->name, p, (unsigned long long)size);
		goto err_close;
	}
	got = pread(fd, magic, sizeof(magic), 0);
	if (got != (ssize_t)sizeof(magic)) {
		err = err__set(e, got < 0 ? -errno : -EIO, "disk '%s': image %s cannot be read: %s",
			       b->name, p, got < 0 ? strerror(errno) : "short read");
		goto err_close;
	}
	if (!memcmp(magic, "QFI\xfb", 4)) {
		err = err__set(e, -EINVAL, "disk '%s': image %s is a qcow2 image: rtvmm serves raw "
			       "images; use qemu-storage-daemon's vhost-user-blk export, or convert "
			       "with qemu-img convert -O raw", b->name, p);
		goto err_close;
	}
	/* Two monitors writing one image corrupt it: a writer excludes everyone, readers share. */
	if (flock(fd, (spec->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		err = err__set(e, -errno, "disk '%s': image %s is in use: another disk or process "
			       "holds its lock (%s): %s", b->name, p,
			       spec->readonly ? "it is open for writing" : "it is open",
			       strerror(errno));
		goto err_close;
	}
	if (size % VIRTIO_BLK_SECTOR_SIZE)
		fprintf(stderr, "rtvmm: %s: image %s is %llu bytes, not a multiple of 512: the guest "
			"sees %llu sectors, the last %llu bytes are not served\n", b->name, p,
			(unsigned long long)size, (unsigned long long)(size / VIRTIO_BLK_SECTOR_SIZE),
			(unsigned long long)(size % VIRTIO_BLK_SECTOR_SIZE));
	b->fd = fd;
	b->cfg.capacity = size / VIRTIO_BLK_SECTOR_SIZE;
	b->cfg.blk_size = sector;
	return 0;

err_close:
	close(fd);
	return err;
}

/* ---- the ring's set-up ---- */

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Why io_uring_setup failed, in words a host admin can act on. */
static int uring_refused(struct blk *b, int err, struct err *e)
{
	char disabled[16] = "";
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, disabled, sizeof(disabled) - 1);

		disabled[n > 0 ? n : 0] = '\0';
		disabled[strcspn(disabled, "\n")] = '\0';
		close(fd);
	}
	if (err == -ENOSYS)
		return err__set(e, err, "disk '%s': this kernel has no io_uring (io_uring_setup: %s): "
				"rtvmm's disks need it", b->name, strerror(-err));
	if (err == -EPERM && disabled[0] && strcmp(disabled, "0"))
		return err__set(e, err, "disk '%s': io_uring is disabled on this host "
				"(/proc/sys/kernel/io_uring_disabled = %s): rtvmm's disks need it; "
				"set it to 0 (or 1 with rtvmm in kernel.io_uring_group)", b->name,
				disabled);
	if (err == -EPERM)
		return err__set(e, err, "disk '%s': io_uring_setup was refused (%s): a seccomp "
				"policy of the container or service forbids io_uring, which rtvmm's "
				"disks need", b->name, strerror(-err));
	if (err == -EINVAL)
		return err__set(e, err, "disk '%s': io_uring_setup refused a restricted ring (%s): "
				"Linux 5.10 or later is needed", b->name, strerror(-err));
	return err__set(e, err, "disk '%s': io_uring_setup: %s", b->name, strerror(-err));
}

/*
 * The disk's ring, restricted to the opcodes it uses (IORING_REGISTER_RESTRICTIONS):
 * work done by the ring bypasses the I/O thread's seccomp filter, so the ring itself
 * can do nothing else, and the only register operation left once it is enabled is the
 * workers' CPU set (follow_placement).
 */
static int setup_ring(struct blk *b, struct err *e)
{
	static const uint8_t ops[] = { IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				       IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE };
	struct io_uring_restriction res[sizeof(ops) + 2];
	struct io_uring_params p = { .flags = IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE };
	uint32_t sq = pow2_at_least(b->nr_slots + 2 * b->queues + 2);
	unsigned i;
	int err;

	p.cq_entries = 2 * sq;
	err = io_uring_queue_init_params(sq, &b->ring, &p);
	if (err)
		return uring_refused(b, err, e);
	memset(res, 0, sizeof(res));
	for (i = 0; i < sizeof(ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = ops[i];
	}
	res[i].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[i++].sqe_flags = 0;
	res[i].opcode = IORING_RESTRICTION_REGISTER_OP;
	res[i++].register_op = IORING_REGISTER_IOWQ_AFF;
	if (syscall(__NR_io_uring_register, b->ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res, i) ||
	    syscall(__NR_io_uring_register, b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) {
		err = err__set(e, -errno, "disk '%s': io_uring: cannot restrict the ring to its "
			       "opcodes: %s (Linux 5.10 or later is needed)", b->name, strerror(errno));
		io_uring_queue_exit(&b->ring);
		return err;
	}
	return 0;
}

/* ---- lifecycle ---- */

static void blk_free(struct blk *b)
{
	free(b->slots);
	free(b->rbuf);
	free(b->wbuf);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	sem_destroy(&b->started);
	free(b);
}

int virtio_blk__create(const struct virtio_blk_spec *spec, const struct guest_mem *mem,
		       struct virtio_dev **out, struct err *e)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	char tname[16];
	struct blk *b;
	unsigned i;
	size_t sl;
	int err;

	if (spec->queues < 1 || spec->queues > VM_MAX_DISK_QUEUES)
		return err__set(e, -EINVAL, "disk '%s': %u queues (1..%u)", spec->name, spec->queues,
				VM_MAX_DISK_QUEUES);
	if (!spec->path[0])
		return err__set(e, -EINVAL, "disk '%s': no image path", spec->name);
	b = calloc(1, sizeof(*b));
	if (!b)
		return err__set(e, -ENOMEM, "disk '%s': out of memory", spec->name);
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	sem_init(&b->started, 0, 0);
	snprintf(b->name, sizeof(b->name), "%s", spec->name[0] ? spec->name : "disk");
	snprintf(b->path, sizeof(b->path), "%s", spec->path);
	sl = strnlen(spec->serial[0] ? spec->serial : b->name, VIRTIO_BLK_ID_BYTES);
	memcpy(b->serial, spec->serial[0] ? spec->serial : b->name, sl);
	b->mem = mem;
	b->readonly = spec->readonly;
	b->queues = spec->queues;
	b->fd = b->ctl_fd = -1;
	b->free_slot = -1;
	for (i = 0; i < VM_MAX_DISK_QUEUES; i++)
		b->q[i].kick_fd = b->q[i].call_fd = -1;
	b->nr_slots = b->queues * BLK_QUEUE_SIZE < BLK_MAX_SLOTS ? b->queues * BLK_QUEUE_SIZE :
								   BLK_MAX_SLOTS;
	b->slots = calloc(b->nr_slots, sizeof(*b->slots));
	b->rbuf = calloc(BLK_CHAIN_MAX, sizeof(*b->rbuf));
	b->wbuf = calloc(BLK_CHAIN_MAX, sizeof(*b->wbuf));
	if (!b->slots || !b->rbuf || !b->wbuf) {
		err = err__set(e, -ENOMEM, "disk '%s': out of memory", b->name);
		goto err_free;
	}
	for (i = b->nr_slots; i-- > 0;)
		slot_put(b, (int)i);

	err = open_image(b, spec, e);
	if (err)
		goto err_free;
	b->cfg.seg_max = BLK_SEG_MAX;
	b->cfg.num_queues = (uint16_t)b->queues;
	err = setup_ring(b, e);
	if (err)
		goto err_close_image;
	b->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ctl_fd < 0) {
		err = err__set(e, -errno, "disk '%s': eventfd: %s", b->name, strerror(errno));
		goto err_ring;
	}
	b->vdev = (struct virtio_dev){
		.name = b->name,
		.device_id = VIRTIO_ID_BLOCK,
		.max_queues = b->queues,
		.queue_max_size = BLK_QUEUE_SIZE,
		.config_size = sizeof(struct virtio_blk_config),
		.ops = &blk_ops,
		.priv = b,
	};

	/* The thread takes no signals: they belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&b->thread, NULL, io_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		err__set(e, err, "disk '%s': cannot start its I/O thread: %s", b->name, strerror(-err));
		goto err_ctl;
	}
	snprintf(tname, sizeof(tname), "io-%.12s", b->name);
	pthread_setname_np(b->thread, tname);
	while (sem_wait(&b->started) && errno == EINTR)
		;
	*out = &b->vdev;
	return 0;

err_ctl:
	close(b->ctl_fd);
err_ring:
	io_uring_queue_exit(&b->ring);
err_close_image:
	close(b->fd);
err_free:
	blk_free(b);
	return err;
}

void virtio_blk__destroy(struct virtio_dev *vdev)
{
	struct blk *b;

	if (!vdev)
		return;
	b = to_blk(vdev);
	pthread_mutex_lock(&b->lock);
	wish_drop_fds(&b->want);
	b->want.active = false;
	b->want.stop = true;
	wish_post(b);
	pthread_mutex_unlock(&b->lock);
	/* In-flight requests finish first: the image is closed under no I/O. */
	pthread_join(b->thread, NULL);
	io_uring_queue_exit(&b->ring);
	close(b->ctl_fd);
	close(b->fd);
	blk_free(b);
}

pid_t virtio_blk__io_tid(struct virtio_dev *vdev)
{
	return __atomic_load_n(&to_blk(vdev)->tid, __ATOMIC_ACQUIRE);
}

void virtio_blk__stats(struct virtio_dev *vdev, struct virtio_blk_stats *st)
{
	struct blk *b = to_blk(vdev);

	*st = (struct virtio_blk_stats){
		.reads = __atomic_load_n(&b->n.reads, __ATOMIC_RELAXED),
		.writes = __atomic_load_n(&b->n.writes, __ATOMIC_RELAXED),
		.flushes = __atomic_load_n(&b->n.flushes, __ATOMIC_RELAXED),
		.get_ids = __atomic_load_n(&b->n.get_ids, __ATOMIC_RELAXED),
		.bytes_read = __atomic_load_n(&b->n.bytes_read, __ATOMIC_RELAXED),
		.bytes_written = __atomic_load_n(&b->n.bytes_written, __ATOMIC_RELAXED),
		.io_errors = __atomic_load_n(&b->n.io_errors, __ATOMIC_RELAXED),
		.unsupported = __atomic_load_n(&b->n.unsupported, __ATOMIC_RELAXED),
		.bad_chains = __atomic_load_n(&b->n.bad_chains, __ATOMIC_RELAXED),
		.kicks = __atomic_load_n(&b->n.kicks, __ATOMIC_RELAXED),
		.capacity = b->cfg.capacity,
	};
	pthread_mutex_lock(&b->lock);
	snprintf(st->last_error, sizeof(st->last_error), "%s", b->last_error);
	pthread_mutex_unlock(&b->lock);
}

static void blk_device_destroy(void *dev)
{
	virtio_blk__destroy(dev);
}

/* ---- snapshot ---- */

/*
 * Freeze: the I/O thread stops taking requests and completes those it has,
 * each into its used ring with its interrupt, before this returns (or
 * -ETIMEDOUT after VIRTIO_FREEZE_TIMEOUT_MS, the thread serving on).
 */
static int blk_device_freeze(void *dev)
{
	struct blk *b = to_blk(dev);
	struct timespec ts = clock__deadline(VIRTIO_FREEZE_TIMEOUT_MS);
	int err = 0;

	pthread_mutex_lock(&b->lock);
	b->freeze_want = true;
	nudge(b->ctl_fd);
	/* A dead thread moves nothing any more. */
	while (!b->drained && !__atomic_load_n(&b->dead, __ATOMIC_ACQUIRE) && !err)
		err = -pthread_cond_timedwait(&b->cond, &b->lock, &ts);
	if (b->drained || __atomic_load_n(&b->dead, __ATOMIC_ACQUIRE)) {
		err = 0;
	} else {
		b->freeze_want = false;
		nudge(b->ctl_fd);
		record_error(b, false, "freeze: %llu requests still in flight after %d ms",
			     (unsigned long long)__atomic_load_n(&b->inflight, __ATOMIC_ACQUIRE),
			     VIRTIO_FREEZE_TIMEOUT_MS);
		err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

/* Thaw: the I/O thread takes what the driver queued meanwhile. */
static int blk_device_thaw(void *dev)
{
	struct blk *b = to_blk(dev);

	pthread_mutex_lock(&b->lock);
	b->freeze_want = false;
	b->drained = false;
	nudge(b->ctl_fd);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/*
 * The state, a fixed layout: version u32, kind u32 ('vblk'), queues u16,
 * readonly u8, capacity u64 (sectors), serving u8, features u64 (negotiated),
 * then per queue: next available entry u16, next used entry u16, broken u8.
 * Frozen and drained, nothing is in flight: every request taken is used.
 */
static int blk_device_save(void *dev, struct state_out *out)
{
	struct blk *b = to_blk(dev);
	bool serving;
	unsigned i;

	pthread_mutex_lock(&b->lock);
	if (!b->drained && !__atomic_load_n(&b->dead, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&b->lock);
		return -EBUSY;
	}
	/* The thread's own fields: it wrote them before it said drained (under this lock). */
	serving = b->serving;
	virtio_state__begin(out, VIRTIO_STATE_BLK);
	state_out__u16(out, (uint16_t)b->queues);
	state_out__u8(out, b->readonly);
	state_out__u64(out, b->cfg.capacity);
	state_out__u8(out, serving);
	state_out__u64(out, serving ? b->features : 0);
	for (i = 0; i < b->queues; i++) {
		const struct blk_queue *q = &b->q[i];
		bool on = serving && q->on;

		state_out__u16(out, on ? q->vq.last_avail : 0);
		state_out__u16(out, on ? q->vq.next_used : 0);
		state_out__u8(out, on && q->broken);
	}
	pthread_mutex_unlock(&b->lock);
	return out->err;
}

static int blk_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct blk *b = to_blk(dev);
	uint64_t offered = blk_features(&b->vdev) | BIT(VIRTIO_F_VERSION_1), capacity, features;
	struct blk_pos pos[VM_MAX_DISK_QUEUES] = { 0 };
	uint8_t readonly, serving, broken = 0;
	unsigned queues, i;
	int err;

	/*
	 * Whatever comes, an earlier load's activation is void; the I/O thread
	 * takes no request until the VM's thaw (applied before any activation).
	 */
	pthread_mutex_lock(&b->lock);
	b->loaded.valid = false;
	b->freeze_want = true;
	nudge(b->ctl_fd);
	pthread_mutex_unlock(&b->lock);
	err = virtio_state__check_begin(in, VIRTIO_STATE_BLK, b->name, why, why_len);
	if (err)
		return err;
	queues = state_in__u16(in);
	readonly = state_in__u8(in);
	capacity = state_in__u64(in);
	serving = state_in__u8(in);
	features = state_in__u64(in);
	if (in->err)
		return virtio_state__refuse(why, why_len, "%s: state of %zu bytes is truncated",
					    b->name, in->len);
	if (queues != b->queues)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's disk has %u queues, "
					    "this one %u", b->name, queues, b->queues);
	for (i = 0; i < queues; i++) {
		uint8_t br;

		pos[i].avail = state_in__u16(in);
		pos[i].used = state_in__u16(in);
		br = state_in__u8(in);
		broken |= br;
		pos[i].broken = br == 1;
	}
	if (state_in__end(in))
		return virtio_state__refuse(why, why_len, "%s: state of %zu bytes is truncated or has "
					    "bytes past its end", b->name, in->len);
	if (readonly > 1 || serving > 1 || broken > 1)
		return virtio_state__refuse(why, why_len, "%s: a flag of the state is neither 0 nor 1",
					    b->name);
	if (readonly != b->readonly)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's disk is %s, this one %s",
					    b->name, readonly ? "readonly" : "writable",
					    b->readonly ? "readonly" : "writable");
	if (capacity != b->cfg.capacity)
		return virtio_state__refuse(why, why_len, "%s: the snapshot's image has %llu sectors, "
					    "%s has %llu", b->name, (unsigned long long)capacity,
					    b->path, (unsigned long long)b->cfg.capacity);
	if (serving && (features & ~offered))
		return virtio_state__refuse(why, why_len, "%s: the guest negotiated feature bit %u, "
					    "which this disk does not offer", b->name,
					    virtio__first_bit(features & ~offered));
	for (i = 0; i < queues; i++)
		if ((uint16_t)(pos[i].avail - pos[i].used) > BLK_QUEUE_SIZE)
			return virtio_state__refuse(why, why_len, "%s: queue %u: next available entry "
						    "%u is %u past the next used one %u (a ring holds "
						    "at most %u)", b->name, i, pos[i].avail,
						    (uint16_t)(pos[i].avail - pos[i].used),
						    pos[i].used, BLK_QUEUE_SIZE);
	pthread_mutex_lock(&b->lock);
	b->loaded.valid = serving;
	b->loaded.features = features;
	memcpy(b->loaded.pos, pos, sizeof(pos));
	pthread_mutex_unlock(&b->lock);
	return 0;
}

const struct device_ops virtio_blk__device_ops = {
	.destroy = blk_device_destroy,
	.freeze = blk_device_freeze,
	.thaw = blk_device_thaw,
	.save = blk_device_save,
	.load = blk_device_load,
};
