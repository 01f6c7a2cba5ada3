#include "vmm/migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "base/clock.h"
#include "vmm/snapshot.h"

#define MIG_MAGIC       "RTVMMMIG"
#define PAGE            4096u
#define RUN_PAGES       256u               /* pages in one PAGES record at most (1 MiB) */
#define CHUNK           (2u << 20)         /* a PAGES record holds at most this */
#define MAX_SMALL       (64u << 10)        /* HELLO, OK, ERROR, RUNNING payloads */
#define MAX_STATE       (256u << 20)
#define IO_TIMEOUT_MS   30000              /* a peer silent this long is gone (every call
					      * waits in poll: MSG_DONTWAIT, never in the socket) */

enum mig_type {
	MIG_HELLO = 1, MIG_OK, MIG_ERROR, MIG_PAGES, MIG_ZERO, MIG_STATE, MIG_DONE, MIG_RUNNING,
};

static const char *type_name(uint32_t t)
{
	static const char *const names[] = {
		"?", "HELLO", "OK", "ERROR", "PAGES", "ZERO", "STATE", "DONE", "RUNNING",
	};

	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/*
 * Waits for `events` on `fd`: -ETIMEDOUT after IO_TIMEOUT_MS, -ECANCELED once `cancel_fd`
 * (an eventfd, -1: none) is readable.
 */
static int wait_fd(int fd, short events, int cancel_fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = cancel_fd, .events = POLLIN } };
	int n;

	do
		n = poll(p, 2, IO_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (p[1].revents & POLLIN)
		return -ECANCELED;
	return n ? 0 : -ETIMEDOUT;
}

/* The operator gave up this migration (migrate_params.cancel_fd readable). */
static bool cancelled(int cancel_fd)
{
	struct pollfd p = { .fd = cancel_fd, .events = POLLIN };

	return cancel_fd >= 0 && poll(&p, 1, 0) == 1;
}

static int send_all(int fd, const struct iovec *iov_in, int n, int cancel_fd)
{
	struct iovec iov[4];
	int i = 0, err;

	memcpy(iov, iov_in, (size_t)n * sizeof(iov[0]));
	while (i < n) {
		struct msghdr m = { .msg_iov = &iov[i], .msg_iovlen = (size_t)(n - i) };
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			err = wait_fd(fd, POLLOUT, cancel_fd);
			if (err)
				return err;
			continue;
		}
		if (w < 0)
			return -errno;
		while (i < n && (size_t)w >= iov[i].iov_len)
			w -= (ssize_t)iov[i++].iov_len;
		if (i < n) {
			iov[i].iov_base = (uint8_t *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
		int err;

		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			err = wait_fd(fd, POLLIN, -1);
			if (err)
				return err;
			continue;
		}
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		p = (uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/* Sends one record whose payload is `head` (may be empty) then `body`; see wait_fd for `cancel_fd`. */
static int send_rec(int fd, int cancel_fd, uint32_t type, const void *head, size_t hlen,
		    const void *body, size_t blen, uint64_t *sent)
{
	uint32_t hdr[4];
	uint64_t len = hlen + blen;
	uLong c = crc32(0, Z_NULL, 0);
	struct iovec iov[3];
	int err;

	c = crc32(c, head, (uInt)hlen);
	if (blen)
		c = crc32(c, body, (uInt)blen);
	hdr[0] = type;
	hdr[1] = (uint32_t)c;
	memcpy(&hdr[2], &len, 8);
	iov[0] = (struct iovec){ hdr, 16 };
	iov[1] = (struct iovec){ (void *)head, hlen };
	iov[2] = (struct iovec){ (void *)body, blen };
	err = send_all(fd, iov, 3, cancel_fd);
	if (!err && sent)
		*sent += 16 + len;
	return err;
}

/* A record's header. */
struct rec {
	uint32_t type;
	uint32_t crc;
	uint64_t len;
};

static int recv_hdr(int fd, struct rec *r)
{
	uint32_t hdr[4];
	int err = recv_all(fd, hdr, 16);

	if (err)
		return err;
	r->type = hdr[0];
	r->crc = hdr[1];
	memcpy(&r->len, &hdr[2], 8);
	return 0;
}

/* Reads a small record's payload (at most `max`) into a new buffer, checking its CRC. */
static int recv_payload(int fd, const struct rec *r, size_t max, uint8_t **out)
{
	uint8_t *b;
	int err;

	if (r->len > max)
		return -EMSGSIZE;
	b = malloc(r->len + 1);
	if (!b)
		return -ENOMEM;
	err = recv_all(fd, b, r->len);
	if (!err && (uint32_t)crc32(crc32(0, Z_NULL, 0), b, (uInt)r->len) != r->crc)
		err = -EBADMSG;
	if (err) {
		free(b);
		return err;
	}
	b[r->len] = 0;
	*out = b;
	return 0;
}

/* Waits for OK/RUNNING (`want`): an ERROR's text goes to `e`. */
static int expect_answer(int fd, uint32_t want, const char *step, struct err *e)
{
	struct rec r;
	uint8_t *text = NULL;
	int err = recv_hdr(fd, &r);

	if (!err && (r.type == want || r.type == MIG_ERROR))
		err = recv_payload(fd, &r, MAX_SMALL, &text);
	if (err)
		return err__set(e, err, "%s: no answer from the destination: %s", step,
				err == -ECONNRESET ? "connection closed" : strerror(-err));
	if (r.type == MIG_ERROR)
		err = err__set(e, -ECONNREFUSED, "%s: the destination refused: %s", step,
			       (char *)text);
	else if (r.type != want)
		err = err__set(e, -EPROTO, "%s: the destination answered %s", step, type_name(r.type));
	free(text);
	return err;
}

/* ---- source ---- */

/*
 * Whether the destination said something (an ERROR) while the source was
 * sending: between records, and after a send failed. -ECONNREFUSED with its
 * reason in `e`; 0 when it said nothing within `wait_ms`.
 */
static int peer_refused(int fd, int wait_ms, struct err *e)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t *text = NULL;
	struct rec r;
	int err;

	if (poll(&p, 1, wait_ms) != 1 || !(p.revents & POLLIN))
		return 0;
	if (recv_hdr(fd, &r) || r.type != MIG_ERROR || recv_payload(fd, &r, MAX_SMALL, &text))
		return 0;
	err = err__set(e, -ECONNREFUSED, "the destination refused: %s", (char *)text);
	free(text);
	return err;
}


/* The stream and its counters, on the source. */
struct sender {
	struct vm *vm;
	int fd;
	struct migrate_stats *st;
	uint64_t *dirty;           /* one bit per page of guest RAM (memfd offset) */
	uint64_t words;
	uint8_t *bounce;           /* CHUNK bytes: pages copied once, then checksummed and sent */
	uint64_t records;
	struct err *e;
	bool precopy;              /* the guest runs: a stop meanwhile ends the migration */
	int cancel_fd;             /* migrate_params.cancel_fd */
};

/*
 * Sends guest RAM [off, off+n) as a PAGES record. The running guest may write
 * the pages meanwhile: they are copied first, so that the checksum and the
 * bytes sent agree (a page written after the copy is dirty again: it goes later).
 */
static int send_pages(struct sender *s, uint64_t off, size_t n)
{
	memcpy(s->bounce, s->vm->mem.base + off, n);
	if (cancelled(s->cancel_fd))
		return -ECANCELED;
	/* Now and then: has the destination given up on us (a checksum, its memory), or the VM stopped? */
	if (++s->records % 32 == 0) {
		if (peer_refused(s->fd, 0, s->e))
			return -ECONNREFUSED;
		if (s->precopy && vm__state(s->vm) != VM_STATE_RUNNING) {
			err__set(s->e, -ECANCELED, "pre-copy: the VM is %s now",
				 vm_state__name(vm__state(s->vm)));
			return -ECANCELED;
		}
	}
	return send_rec(s->fd, s->cancel_fd, MIG_PAGES, &off, 8, s->bounce, n, &s->st->bytes_sent);
}

/* Sends the pages of `bits` (clearing them), in runs of at most RUN_PAGES. */
static int send_dirty(struct sender *s, uint64_t *bits, uint64_t *pages)
{
	const struct guest_mem *mem = &s->vm->mem;
	uint64_t npages = mem->size / PAGE, p = 0;
	int err;

	*pages = 0;
	while (p < npages) {
		uint64_t w = bits[p / 64] >> (p % 64), start, off;
		unsigned n = 0;

		if (!w) {
			p = (p / 64 + 1) * 64;
			continue;
		}
		p += (uint64_t)__builtin_ctzll(w);
		if (p >= npages)
			break;
		start = p;
		while (p < npages && n < RUN_PAGES && (bits[p / 64] >> (p % 64) & 1)) {
			bits[p / 64] &= ~(1ull << (p % 64));
			p++;
			n++;
		}
		off = start * PAGE;
		err = send_pages(s, off, (size_t)n * PAGE);
		if (err)
			return err;
		*pages += n;
	}
	s->st->pages_sent += *pages;
	return 0;
}

/* Round one: every chunk of RAM, all-zero chunks as ZERO records. */
static int send_all_ram(struct sender *s)
{
	const struct guest_mem *mem = &s->vm->mem;
	uint64_t off = 0;
	int err = 0;

	/* Runs of all-zero pages go as ZERO records, runs of the others as PAGES (1 chunk at most). */
	while (off < mem->size && !err) {
		bool zero = state__all_zero(mem->base + off, PAGE);
		uint64_t end = off + PAGE;

		while (end < mem->size && end - off < CHUNK && state__all_zero(mem->base + end, PAGE) == zero)
			end += PAGE;
		if (zero) {
			uint64_t z[2] = { off, end - off };

			err = send_rec(s->fd, s->cancel_fd, MIG_ZERO, z, 16, NULL, 0, &s->st->bytes_sent);
			s->st->zero_bytes += end - off;
		} else {
			err = send_pages(s, off, end - off);
			s->st->pages_sent += (end - off) / PAGE;
		}
		off = end;
	}
	return err;
}

static uint64_t count_bits(const uint64_t *b, uint64_t words)
{
	uint64_t i, n = 0;

	for (i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(b[i]);
	return n;
}

/* Pre-copy: all of RAM, then dirty pages, until what is left fits the downtime budget. */
static int precopy(struct sender *s, const struct migrate_params *p, struct err *e)
{
	uint64_t t0 = clock__mono_ns(), sent0 = s->st->bytes_sent, pages, dirty;
	int err;

	err = send_all_ram(s);
	s->st->rounds = 1;
	for (;;) {
		uint64_t ns = clock__mono_ns() - t0, bytes = s->st->bytes_sent - sent0;

		if (err == -ECONNREFUSED || err == -ECANCELED)
			return err;
		if (err)
			return peer_refused(s->fd, 1000, e) ? -ECONNREFUSED :
			       err__set(e, err, "pre-copy round %u: %s", s->st->rounds,
					err == -ECONNRESET || err == -EPIPE ? "the destination closed the "
					"connection" : strerror(-err));
		if (ns)
			s->st->bandwidth_bps = (uint64_t)((double)bytes * 1e9 / (double)ns);
		if (vm__state(s->vm) != VM_STATE_RUNNING)
			return err__set(e, -ECANCELED, "pre-copy round %u: the VM is %s now",
					s->st->rounds, vm_state__name(vm__state(s->vm)));
		err = vm__take_dirty(s->vm, s->dirty);
		if (err)
			return err__set(e, err, "reading KVM's dirty log: %s", strerror(-err));
		dirty = count_bits(s->dirty, s->words);
		/* Small enough to send with the guest stopped within the budget: stop now. */
		if (dirty * PAGE * 1000ull <= s->st->bandwidth_bps * p->downtime_ms ||
		    s->st->rounds >= p->max_rounds)
			return 0;
		t0 = clock__mono_ns();
		sent0 = s->st->bytes_sent;
		err = send_dirty(s, s->dirty, &pages);
		s->st->rounds++;
	}
}

/* Stop and copy: the guest paused, the devices frozen, the last pages and the state. */
static int stop_and_copy(struct sender *s, struct err *e)
{
	struct state_out state = { 0 };
	uint64_t pages;
	int err;

	err = vm__take_dirty(s->vm, s->dirty);
	if (err)
		return err__set(e, err, "reading KVM's dirty log: %s", strerror(-err));
	err = send_dirty(s, s->dirty, &pages);
	s->st->last_dirty_pages = pages;
	if (!err) {
		err = snapshot__encode(s->vm, &state, e);
		if (err) {
			state_out__free(&state);
			return err;
		}
		err = send_rec(s->fd, s->cancel_fd, MIG_STATE, state.buf, state.len, NULL, 0,
			       &s->st->bytes_sent);
	}
	state_out__free(&state);
	if (!err)
		err = send_rec(s->fd, -1, MIG_DONE, NULL, 0, NULL, 0, &s->st->bytes_sent);
	if (err == -ECONNREFUSED)
		return err;
	if (err)
		return peer_refused(s->fd, 1000, e) ? -ECONNREFUSED :
		       err__set(e, err, "stop and copy: %s", err == -ECONNRESET || err == -EPIPE ?
				"the destination closed the connection" : strerror(-err));
	err = expect_answer(s->fd, MIG_RUNNING, "switch-over", e);
	if (err && err != -ECONNREFUSED && err != -EPROTO) {
		char why[sizeof(e->msg)];

		snprintf(why, sizeof(why), "%s", e->msg);
		return err__set(e, -EINPROGRESS, "%s after the whole state was sent: the destination "
				"may run the guest, so it stays paused here (rtvmm ctl SOCKET resume it "
				"only if the destination does not run it)", why);
	}
	return err;
}

/* KVM_EXIT_DIRTY_RING_FULL exits so far, every vCPU's (a vCPU's cost of the ring). */
static uint64_t ring_full_exits(const struct vm *vm)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < vm->nr_vcpus; i++)
		n += __atomic_load_n(&vm->vcpus[i].exits.count[KVM_EXIT_DIRTY_RING_FULL],
				     __ATOMIC_RELAXED);
	return n;
}

int migrate__send(struct vm *vm, int fd, const struct migrate_params *p, struct migrate_stats *st,
		  struct err *e)
{
	struct sender s = { .vm = vm, .fd = fd, .st = st, .e = e, .cancel_fd = p->cancel_fd };
	struct state_out hello = { 0 };
	const struct device *bad = NULL;
	struct err de = { 0 };
	uint64_t t0 = clock__mono_ns(), tp, full0;
	uint32_t version = MIGRATE_VERSION;
	int err, derr;

	memset(st, 0, sizeof(*st));
	st->dirty_log = vm->rings.entries ? "ring" : "bitmap";
	full0 = ring_full_exits(vm);
	if (vm__state(vm) != VM_STATE_RUNNING)
		return err__set(e, -EBUSY, "the VM is %s, not Running", vm_state__name(vm__state(vm)));
	s.words = (vm->mem.size / PAGE + 63) / 64;
	s.dirty = calloc(s.words, 8);
	s.bounce = malloc(CHUNK);
	if (!s.dirty || !s.bounce) {
		free(s.dirty);
		free(s.bounce);
		return err__set(e, -ENOMEM, "out of memory for the dirty bitmap");
	}
	state_out__bytes(&hello, MIG_MAGIC, 8);
	state_out__u32(&hello, version);
	snapshot__shape(vm, &hello);
	err = hello.err ? hello.err : send_rec(fd, p->cancel_fd, MIG_HELLO, hello.buf, hello.len,
					       NULL, 0, &st->bytes_sent);
	state_out__free(&hello);
	if (err)
		err__set(e, err, "hello: %s", strerror(-err));
	else
		err = expect_answer(fd, MIG_OK, "hello", e);
	if (err) {
		free(s.dirty);
		free(s.bounce);
		return err;
	}
	pthread_mutex_lock(&vm->snapshot_lock);
	/* Checked again under the lock: a stop may have come since (vm__run waits for the lock). */
	if (vm__state(vm) != VM_STATE_RUNNING) {
		err = err__set(e, -EBUSY, "the VM is %s, not Running", vm_state__name(vm__state(vm)));
		goto out_unlock;
	}
	err = vm__dirty_log(vm, true);
	if (err) {
		err__set(e, err, "KVM dirty logging (KVM_MEM_LOG_DIRTY_PAGES): %s", strerror(-err));
		goto out_log_off;   /* some slots may have it on */
	}
	/*
	 * What KVM does not see: the monitor's devices and the vhost-user backends
	 * write guest RAM from user space; they mark it in guest RAM's own log,
	 * which vm__take_dirty harvests with KVM's. A backend that cannot log
	 * refuses the migration here, before round one.
	 */
	err = guest_mem__log_start(&vm->mem);
	if (err) {
		err__set(e, err, "the dirty log of the devices' writes (a %llu KiB memfd): %s",
			 (unsigned long long)(guest_mem__log_bytes(&vm->mem) >> 10), strerror(-err));
		goto out_log_off;
	}
	err = device_list__dirty_log(&vm->devices, vm->mem.log_fd, vm->mem.log_size, &bad, &de);
	if (err) {
		/* The device's message names it and its backend. */
		err__set(e, err, "%s; the live migration is refused before any page was sent", de.msg);
		goto out_mem_log_off;
	}
	s.precopy = true;
	err = precopy(&s, p, e);
	s.precopy = false;
	if ((!err || err == -ECANCELED) && cancelled(p->cancel_fd))
		err = err__set(e, -ECANCELED, "cancelled (vm.migration-cancel) in pre-copy round %u, "
			       "after %" PRIu64 " bytes", st->rounds, st->bytes_sent);
	if (err)
		goto out_devices_log_off;
	tp = clock__mono_ns();
	err = vm__pause(vm);
	if (err) {
		err__set(e, err, "pausing the VM for the switch-over: it is %s",
			 vm_state__name(vm__state(vm)));
		goto out_devices_log_off;
	}
	err = device_list__freeze(&vm->devices, &bad);
	if (err) {
		err__set(e, err, "device %s: stopping it for the switch-over: %s", bad->name,
			 strerror(-err));
		vm__resume(vm);
		goto out_devices_log_off;
	}
	/* Backends stopped (GET_VRING_BASE), I/O threads drained: the last harvest misses nothing. */
	err = stop_and_copy(&s, e);
	st->downtime_ns = clock__mono_ns() - tp;
	if (err == -ECANCELED && cancelled(p->cancel_fd))
		err__set(e, err, "cancelled (vm.migration-cancel) in the switch-over, after %" PRIu64
			 " bytes", st->bytes_sent);
	if (err == -EINPROGRESS) {
		/*
		 * All was sent and no answer came: the destination may run the guest.
		 * Running it here too could make two guests of one (its disks, its
		 * address): it stays paused here, its devices running as for any pause.
		 */
		derr = device_list__thaw(&vm->devices, &bad);
		if (derr)
			fprintf(stderr, "rtvmm: migration: device %s cannot start again: %s\n",
				bad->name, strerror(-derr));
		goto out_devices_log_off;
	}
	if (err) {
		/* The destination does not run the guest (it said so, or never had all): it runs on here. */
		derr = device_list__thaw(&vm->devices, &bad);
		if (derr)
			fprintf(stderr, "rtvmm: migration failed and device %s cannot start again: %s\n",
				bad->name, strerror(-derr));
		vm__resume(vm);
		goto out_devices_log_off;
	}
	st->total_ns = clock__mono_ns() - t0;
	st->ring_full_exits = ring_full_exits(vm) - full0;

	/* Success too: the frozen backends stop logging, the log goes. */
out_devices_log_off:
	derr = device_list__dirty_log(&vm->devices, -1, 0, &bad, &de);
	if (derr)
		fprintf(stderr, "rtvmm: migration: device %s: stopping its dirty log: %s\n", bad->name,
			de.msg);
out_mem_log_off:
	guest_mem__log_stop(&vm->mem);
out_log_off:
	vm__dirty_log(vm, false);
out_unlock:
	pthread_mutex_unlock(&vm->snapshot_lock);
	free(s.dirty);
	free(s.bounce);
	return err;
}

/* ---- destination ---- */

int migrate__hello_ready(int fd)
{
	static uint8_t peek[16 + MAX_SMALL];
	uint32_t type;
	uint64_t len;
	ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -ENOMSG;
	if (n == 0)
		return -ENOMSG;
	if (n < 16)
		return 0;
	memcpy(&type, peek, 4);
	memcpy(&len, peek + 8, 8);
	if (type != MIG_HELLO || len > MAX_SMALL)
		return 1;   /* not a hello: migrate__receive says so */
	return (uint64_t)n >= 16 + len;
}

void migrate__refuse(int fd, const char *why)
{
	static uint8_t sink[65536];
	uint64_t end = clock__mono_ns() + 5000000000ull;

	if (send_rec(fd, -1, MIG_ERROR, why, strlen(why), NULL, 0, NULL))
		return;
	/*
	 * Closing with the source's records unread would reset the connection and
	 * could take the ERROR with it: the source reads it, then closes; meanwhile
	 * (5 s at most) what it still sends is read and dropped.
	 */
	shutdown(fd, SHUT_WR);
	while (clock__mono_ns() < end && !wait_fd(fd, POLLIN, -1) &&
	       recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

int migrate__confirm(int fd)
{
	return send_rec(fd, -1, MIG_RUNNING, NULL, 0, NULL, 0, NULL);
}

/* HELLO: magic, version, shape; answered OK or ERROR. */
static int recv_hello(struct vm *vm, int fd, struct err *e)
{
	uint8_t *b = NULL;
	struct rec r;
	uint32_t version;
	int err = recv_hdr(fd, &r);

	if (!err && r.type != MIG_HELLO)
		err = -EPROTO;
	if (!err)
		err = recv_payload(fd, &r, MAX_SMALL, &b);
	if (!err && (r.len < 12 || memcmp(b, MIG_MAGIC, 8)))
		err = -EPROTO;
	if (err) {
		free(b);
		return err__set(e, -ENOMSG, "not an rtvmm migration source: %s",
				err == -EPROTO ? "no rtvmm hello" :
				err == -EBADMSG ? "a hello with a bad checksum" :
				err == -ECONNRESET ? "it closed the connection" : strerror(-err));
	}
	memcpy(&version, b + 8, 4);
	if (version != MIGRATE_VERSION)
		err = err__set(e, -EPROTO, "migration stream version %u, this rtvmm speaks %u", version,
			       MIGRATE_VERSION);
	else
		err = snapshot__check_shape(vm, b + 12, r.len - 12, "incoming migration", e);
	free(b);
	if (err) {
		migrate__refuse(fd, e->msg);
		return err;
	}
	return send_rec(fd, -1, MIG_OK, NULL, 0, NULL, 0, NULL);
}

/* A PAGES record's payload straight into guest RAM, then its CRC. */
static int recv_pages(struct vm *vm, int fd, const struct rec *r, struct migrate_stats *st,
		      struct err *e)
{
	uint64_t off, n;
	uLong c;
	int err;

	if (r->len < 8 + PAGE || (r->len - 8) % PAGE || r->len - 8 > CHUNK)
		return err__set(e, -EPROTO, "PAGES record of %" PRIu64 " bytes", r->len);
	err = recv_all(fd, &off, 8);
	if (err)
		return err__set(e, err, "reading guest RAM: %s", strerror(-err));
	n = r->len - 8;
	if (off % PAGE || off > vm->mem.size || n > vm->mem.size - off)
		return err__set(e, -EPROTO, "PAGES at %#" PRIx64 " + %" PRIu64 " outside guest RAM (%"
				PRIu64 " bytes)", off, n, vm->mem.size);
	err = recv_all(fd, vm->mem.base + off, n);
	if (err)
		return err__set(e, err, "reading guest RAM: %s", strerror(-err));
	c = crc32(crc32(crc32(0, Z_NULL, 0), (const Bytef *)&off, 8), vm->mem.base + off, (uInt)n);
	if ((uint32_t)c != r->crc)
		return err__set(e, -EBADMSG, "PAGES at %#" PRIx64 ": checksum mismatch", off);
	st->pages_sent += n / PAGE;
	st->bytes_sent += 16 + r->len;
	return 0;
}

static int recv_zero(struct vm *vm, int fd, const struct rec *r, struct migrate_stats *st,
		     struct err *e)
{
	uint8_t *b = NULL;
	uint64_t z[2];
	int err;

	if (r->len != 16)
		return err__set(e, -EPROTO, "ZERO record of %" PRIu64 " bytes", r->len);
	err = recv_payload(fd, r, 16, &b);
	if (err)
		return err__set(e, err, "ZERO record: %s", strerror(-err));
	memcpy(z, b, 16);
	free(b);
	if (z[0] % PAGE || z[0] > vm->mem.size || z[1] > vm->mem.size - z[0])
		return err__set(e, -EPROTO, "ZERO at %#" PRIx64 " + %" PRIu64 " outside guest RAM",
				z[0], z[1]);
	memset(vm->mem.base + z[0], 0, z[1]);
	st->zero_bytes += z[1];
	st->bytes_sent += 32;
	return 0;
}

int migrate__receive(struct vm *vm, int fd, struct migrate_stats *st, struct err *e)
{
	uint8_t *state = NULL;
	uint64_t state_len = 0, t0 = clock__mono_ns();
	struct rec r;
	int err;

	memset(st, 0, sizeof(*st));
	err = recv_hello(vm, fd, e);
	if (err)
		return err;
	for (;;) {
		err = recv_hdr(fd, &r);
		if (err) {
			err__set(e, err, "the migration stream ended before DONE: %s",
				 err == -ECONNRESET ? "the source closed it" : strerror(-err));
			break;
		}
		if (r.type == MIG_PAGES) {
			err = recv_pages(vm, fd, &r, st, e);
		} else if (r.type == MIG_ZERO) {
			err = recv_zero(vm, fd, &r, st, e);
		} else if (r.type == MIG_STATE && !state) {
			err = recv_payload(fd, &r, MAX_STATE, &state);
			state_len = r.len;
			if (err)
				err__set(e, err, "STATE record (%" PRIu64 " bytes): %s", r.len,
					 err == -EBADMSG ? "checksum mismatch" : strerror(-err));
		} else if (r.type == MIG_DONE && state && r.len == 0) {
			err = snapshot__decode(vm, state, state_len, "incoming migration", e);
			break;
		} else {
			err = err__set(e, -EPROTO, "unexpected %s record (type %u, %" PRIu64 " bytes)",
				       type_name(r.type), r.type, r.len);
		}
		if (err)
			break;
	}
	free(state);
	st->total_ns = clock__mono_ns() - t0;
	if (err && err != -ECONNRESET)
		migrate__refuse(fd, e->msg);
	return err;
}
