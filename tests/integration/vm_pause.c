/*
 * Pause and resume a running bare-metal guest on real KVM. This program
 * builds the VM as `rtvmm run` does (vm__build, vm__run on a thread of its
 * own) and drives vm__pause / vm__resume itself, as the API thread does.
 *
 *   A. 2 vCPUs, "test=none chatter=N": vCPU 0 prints numbered lines through
 *      the test device without end; vCPU 1, an AP nobody started, waits for
 *      its SIPI inside KVM_RUN. Paused: the state reads Paused; once the
 *      console drained what was printed before the pause, not one byte more
 *      comes for PAUSED_MS (the guest makes no progress), and the UART's
 *      counters (device_ops.counters, what vm.counters shows) stay still. Resumed: the lines go on from the next
 *      number (none lost, none repeated) and the time in pause is reported.
 *   B. 1 vCPU, "test=boot fault=hang": the guest halts with interrupts off
 *      (HLT in the in-kernel LAPIC: KVM_RUN sleeps in the kernel). The pause
 *      still returns (the kick's signal wakes it), resume, then a stop ends it.
 *
 * Usage: vm_pause GUEST.elf. Exits 77 (skip) only when /dev/kvm is absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/builder.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define CHATTER_LINES 100000000ull
#define PAUSED_MS     2000     /* how long a paused guest must stay silent */
#define WAIT_MS       60000    /* the box is slow: a line takes ~10 ms there */

static int failures;

__attribute__((format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("FAIL: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
	failures++;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- the guest's console, read on a thread ---- */

struct reader {
	int fd;
	pthread_t thread;
	uint64_t bytes;            /* read so far (atomic) */
	int64_t last;              /* the last chatter number seen, -1 before (atomic) */
	uint64_t gaps;             /* a chatter number that did not follow the one before (atomic) */
	bool saw_e820;             /* the boot check's e820 line came (atomic) */
};

/* One whole line of guest output. */
static void reader_line(struct reader *r, const char *line)
{
	const char *p = strstr(line, "rtvmm-guest: chatter ");
	int64_t last = __atomic_load_n(&r->last, __ATOMIC_RELAXED);
	long long n;

	if (strstr(line, "rtvmm-guest: e820 "))
		__atomic_store_n(&r->saw_e820, true, __ATOMIC_RELEASE);
	if (!p || sscanf(p, "rtvmm-guest: chatter %lld of", &n) != 1)
		return;
	if (n != last + 1)
		__atomic_add_fetch(&r->gaps, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&r->last, (int64_t)n, __ATOMIC_RELEASE);
}

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	char buf[4096], line[512];
	size_t used = 0;
	ssize_t n, i;

	while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n' || used == sizeof(line) - 1) {
				line[used] = '\0';
				reader_line(r, line);
				used = 0;
			} else {
				line[used++] = buf[i];
			}
		}
		__atomic_add_fetch(&r->bytes, (uint64_t)n, __ATOMIC_RELEASE);
	}
	return NULL;
}

static uint64_t read_bytes(struct reader *r)
{
	return __atomic_load_n(&r->bytes, __ATOMIC_ACQUIRE);
}

static int64_t last_line(struct reader *r)
{
	return __atomic_load_n(&r->last, __ATOMIC_ACQUIRE);
}

/* ---- the VM ---- */

struct rig {
	struct vm vm;
	bool built;
	pthread_t runner;
	bool running;
	int status;
	bool done;                 /* vm__run returned (atomic) */
	struct reader reader;
	bool reader_started;
	int out[2];                /* the guest console's pipe */
};

static void *runner(void *arg)
{
	struct rig *r = arg;

	r->status = vm__run(&r->vm);
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static int rig_start(struct rig *r, const char *guest, unsigned vcpus, const char *cmdline)
{
	struct vm_config cfg = {
		.kvm_path = "/dev/kvm",
		.boot = { .kernel_path = guest, .cmdline = cmdline },
		.nr_vcpus = vcpus,
		.mem_size = 64ull << 20,
		.console_in = -1,
		.test_device = true,
	};
	struct err e = { 0 };

	memset(r, 0, sizeof(*r));
	r->out[0] = r->out[1] = -1;
	r->reader.last = -1;
	if (pipe2(r->out, O_CLOEXEC) < 0) {
		fail("pipe: %s", strerror(errno));
		return -1;
	}
	r->reader.fd = r->out[0];
	cfg.console_out = r->out[1];
	if (pthread_create(&r->reader.thread, NULL, reader_thread, &r->reader)) {
		fail("reader thread");
		return -1;
	}
	r->reader_started = true;
	if (vm__build(&r->vm, &cfg, &e)) {
		r->built = true;
		fail("vm__build: %s", e.msg);
		return -1;
	}
	r->built = true;
	if (vm__state(&r->vm) != VM_STATE_CREATED)
		fail("a VM not yet run reads %s, not Created", vm_state__name(vm__state(&r->vm)));
	if (vm__pause(&r->vm) != -EBUSY)
		fail("pausing a VM not yet run did not answer -EBUSY");
	if (pthread_create(&r->runner, NULL, runner, r)) {
		fail("runner thread");
		return -1;
	}
	r->running = true;
	return 0;
}

/* Stops the VM (if running), joins everything, frees it; returns vm__run's status or -1. */
static int rig_stop(struct rig *r)
{
	uint64_t until = now_ms() + WAIT_MS;
	int status = -1;

	if (r->running) {
		vm__request_stop(&r->vm, VM_STOP_SIGNAL, 130);
		while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) && now_ms() < until)
			sleep_ms(10);
		if (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
			fail("vm__run did not return within %d ms of the stop request", WAIT_MS);
			fflush(stdout);
			_exit(1);   /* vCPU threads still hold the VM: nothing safe is left to do */
		}
		pthread_join(r->runner, NULL);
		status = r->status;
		if (vm__state(&r->vm) != VM_STATE_SHUTDOWN)
			fail("a stopped VM reads %s, not Shutdown", vm_state__name(vm__state(&r->vm)));
	}
	if (r->built)
		vm__destroy(&r->vm);
	if (r->out[1] >= 0)
		close(r->out[1]);
	if (r->reader_started)
		pthread_join(r->reader.thread, NULL);
	if (r->out[0] >= 0)
		close(r->out[0]);
	return status;
}

static bool wait_until(bool (*cond)(struct rig *r, uint64_t arg), struct rig *r, uint64_t arg)
{
	uint64_t until = now_ms() + WAIT_MS;

	while (!cond(r, arg)) {
		if (now_ms() >= until || __atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
			return cond(r, arg);
		sleep_ms(10);
	}
	return true;
}

static bool lines_past(struct rig *r, uint64_t n)
{
	return last_line(&r->reader) >= (int64_t)n;
}

static bool saw_e820(struct rig *r, uint64_t unused)
{
	(void)unused;
	return __atomic_load_n(&r->reader.saw_e820, __ATOMIC_ACQUIRE);
}

/* A counter_sink that keeps one named number. */
struct one_counter {
	const char *name;
	uint64_t value;
	bool found;
};

static void one_num(void *opaque, const char *name, uint64_t value)
{
	struct one_counter *c = opaque;

	if (!strcmp(name, c->name)) {
		c->value = value;
		c->found = true;
	}
}

static void one_str(void *opaque, const char *name, const char *value)
{
	(void)opaque, (void)name, (void)value;
}

/* Device `dev`'s counter `name` as vm.counters reads it; false when there is none. */
static bool device_counter(struct vm *vm, const char *dev, const char *name, uint64_t *value)
{
	struct one_counter c = { .name = name };
	struct counter_sink sink = { .num = one_num, .str = one_str, .opaque = &c };
	unsigned i;

	for (i = 0; i < vm->devices.nr; i++)
		if (!strcmp(vm->devices.v[i].name, dev) && vm->devices.v[i].ops->counters)
			vm->devices.v[i].ops->counters(vm->devices.v[i].dev, &sink);
	*value = c.value;
	return c.found;
}

/* COM1's counter `name` (a failure, and 0, when it has none). */
static uint64_t counter_of(struct rig *r, const char *name)
{
	uint64_t v;

	if (!device_counter(&r->vm, "COM1", name, &v))
		fail("COM1 has no counter %s", name);
	return v;
}

/* Waits until COM1 holds no byte and this program read every byte it wrote (within WAIT_MS). */
static bool wait_drained(struct rig *r)
{
	uint64_t until = now_ms() + WAIT_MS;

	while (now_ms() < until) {
		if (!counter_of(r, "tx_buffered") && read_bytes(&r->reader) == counter_of(r, "tx_bytes"))
			return true;
		sleep_ms(20);
	}
	return false;
}

/* Pauses and says how long vm__pause took. */
static int timed_pause(struct rig *r, const char *what)
{
	uint64_t t0 = now_ms();
	int err = vm__pause(&r->vm);

	printf("%s: vm__pause returned %d after %" PRIu64 " ms\n", what, err, now_ms() - t0);
	fflush(stdout);
	return err;
}

static void case_chatter_freezes_while_paused(const char *guest)
{
	char cmdline[96];
	struct rig r;
	uint64_t bytes, tx0, tx1, paused_ns;
	int64_t at_pause, line;

	printf("A. a chattering guest on 2 vCPUs (vCPU 1 waits for its SIPI in KVM_RUN)\n");
	snprintf(cmdline, sizeof(cmdline), "test=none chatter=%llu", CHATTER_LINES);
	if (rig_start(&r, guest, 2, cmdline))
		goto out_stop;
	if (!wait_until(lines_past, &r, 20)) {
		fail("the guest printed no 20 chatter lines within %d ms (last %" PRId64 ")", WAIT_MS,
		     last_line(&r.reader));
		goto out_stop;
	}
	if (vm__state(&r.vm) != VM_STATE_RUNNING)
		fail("a guest printing reads %s, not Running", vm_state__name(vm__state(&r.vm)));
	if (vm__resume(&r.vm) != -EBUSY)
		fail("resuming a running VM did not answer -EBUSY");

	if (timed_pause(&r, "A") != 0) {
		fail("vm__pause failed");
		goto out_stop;
	}
	if (vm__state(&r.vm) != VM_STATE_PAUSED)
		fail("a paused VM reads %s, not Paused", vm_state__name(vm__state(&r.vm)));
	if (vm__pause(&r.vm) != -EBUSY)
		fail("pausing a paused VM did not answer -EBUSY");
	/* What the guest printed before the pause drains to this program; then nothing more may come. */
	if (!wait_drained(&r))
		fail("the console did not drain while paused: %" PRIu64 " bytes read, COM1 tx_bytes %"
		     PRIu64, read_bytes(&r.reader), counter_of(&r, "tx_bytes"));
	bytes = read_bytes(&r.reader);
	at_pause = last_line(&r.reader);
	tx0 = counter_of(&r, "tx_bytes");
	sleep_ms(PAUSED_MS);
	if (read_bytes(&r.reader) != bytes)
		fail("the paused guest printed %" PRIu64 " bytes in %d ms (lines %" PRId64 " -> %" PRId64 ")",
		     read_bytes(&r.reader) - bytes, PAUSED_MS, at_pause, last_line(&r.reader));
	tx1 = counter_of(&r, "tx_bytes");
	if (tx1 != tx0)
		fail("COM1 tx_bytes moved while paused: %" PRIu64 " -> %" PRIu64, tx0, tx1);
	paused_ns = vm__paused_ns(&r.vm);
	if (paused_ns < (uint64_t)PAUSED_MS * 1000000)
		fail("vm__paused_ns %" PRIu64 " after more than %d ms paused", paused_ns, PAUSED_MS);
	printf("A. paused: line %" PRId64 " and %" PRIu64 " bytes read once drained, %" PRIu64
	       " bytes %d ms later; COM1 tx_bytes %" PRIu64 " then %" PRIu64 "\n", at_pause, bytes,
	       read_bytes(&r.reader), PAUSED_MS, tx0, tx1);

	if (vm__resume(&r.vm) != 0)
		fail("vm__resume failed");
	if (vm__state(&r.vm) != VM_STATE_RUNNING)
		fail("a resumed VM reads %s, not Running", vm_state__name(vm__state(&r.vm)));
	if (!wait_until(lines_past, &r, (uint64_t)at_pause + 20))
		fail("the resumed guest did not print 20 more lines within %d ms (last %" PRId64 ")",
		     WAIT_MS, last_line(&r.reader));
	line = last_line(&r.reader);
	if (__atomic_load_n(&r.reader.gaps, __ATOMIC_ACQUIRE))
		fail("%" PRIu64 " chatter lines did not follow the one before (lost or repeated)",
		     r.reader.gaps);
	tx1 = counter_of(&r, "tx_bytes");
	if (tx1 <= tx0)
		fail("COM1 tx_bytes did not move after the resume (%" PRIu64 ")", tx1);
	printf("A. resumed: line %" PRId64 " reached; %.3f s in pause in all\n", line,
	       (double)vm__paused_ns(&r.vm) / 1e9);

	/* A second pause, then a stop while paused ends the parked vCPUs. */
	if (timed_pause(&r, "A (second)") != 0)
		fail("the second vm__pause failed");
out_stop:
	if (rig_stop(&r) != 130)
		fail("vm__run did not return the stop request's status 130");
}

static void case_halted_vcpu_is_kicked_out(const char *guest)
{
	struct rig r;

	printf("B. a guest halted with interrupts off (HLT in the in-kernel LAPIC)\n");
	if (rig_start(&r, guest, 1, "test=boot fault=hang"))
		goto out_stop;
	if (!wait_until(saw_e820, &r, 0)) {
		fail("the guest did not print its boot check within %d ms", WAIT_MS);
		goto out_stop;
	}
	sleep_ms(200);             /* past the boot check: in cli; hlt for good */
	if (timed_pause(&r, "B") != 0)
		fail("vm__pause of a halted vCPU failed");
	else if (vm__state(&r.vm) != VM_STATE_PAUSED)
		fail("the paused VM reads %s", vm_state__name(vm__state(&r.vm)));
	if (vm__resume(&r.vm) != 0)
		fail("vm__resume failed");
	sleep_ms(100);
	if (__atomic_load_n(&r.done, __ATOMIC_ACQUIRE))
		fail("the halted guest stopped by itself after the resume (status %d)", r.status);
out_stop:
	if (rig_stop(&r) != 130)
		fail("vm__run did not return the stop request's status 130");
}

int main(int argc, char **argv)
{
	sigset_t stop_signals;

	if (argc != 2) {
		fprintf(stderr, "usage: %s GUEST.elf\n", argv[0]);
		return 2;
	}
	if (access("/dev/kvm", F_OK)) {
		printf("SKIP: /dev/kvm does not exist on this machine: no KVM, cannot run a guest\n");
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("RTVMM_KVMBOX") && !strcmp(getenv("RTVMM_KVMBOX"), "1")) {
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(1, &one);
		if (!sched_setaffinity(0, sizeof(one), &one))
			printf("box: pinned to box cpu 1 (a fault of the box, not rtvmm's: README, Tests)\n");
	}
	if (vcpu__init_signals() < 0) {
		fail("cannot install the vCPU kick signal handler");
		return 1;
	}
	/* As `rtvmm run`: stop signals wait for vm__run's signalfd in every thread. */
	vm__stop_signals(&stop_signals);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	case_chatter_freezes_while_paused(argv[1]);
	case_halted_vcpu_is_kicked_out(argv[1]);
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
