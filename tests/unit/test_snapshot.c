/*
 * Snapshots (vmm/snapshot.h) against the fake KVM. VM A (2 vCPUs, 32 MiB, a UART, an i8042
 * and a device of the test's own) runs, takes distinctive state (registers, segments, XSAVE,
 * debug registers, MSRs, LAPIC in TSC-deadline mode, events, MP state, CPUID, TSC rate,
 * irqchip, PIT, kvmclock, device registers, RAM with holes) and is saved into a fresh
 * directory; VM B, built the same way on a fresh fake host, is restored from it and must hold
 * every value again, then run. Every snapshot that cannot be taken or restored is refused with
 * a message naming why, and none crashes (the suite runs under ASan too).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "fake_kvm.h"
#include "fake_vm.h"
#include "vmm/device.h"
#include "vmm/hw/i8042.h"
#include "vmm/hw/serial.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define NR_VCPUS 2
#define RAM (32u << 20)
#define CHUNK (2u << 20)          /* memory.bin's unit: a chunk of zeros is a hole */
#define COM1 0x3f8
#define UART_SCR 7
#define UART_LCR 3
#define APIC_LVTT 0x320
#define APIC_TPR 0x80

#define MSR_TSC_ADJUST 0x3b
#define MSR_PAT 0x277
#define MSR_TSC_DEADLINE 0x6e0
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

#define HOST_A_KHZ 2500000u        /* the fake's default host */
#define HOST_B_KHZ 3000000u
#define CLOCK_AT_PAUSE 77777777777ull
#define DEV_REG 0xfeedface12345678ull
#define DEV_MAGIC 0x736e6170u

/* CPUID.(7,0):EBX bits: AVX2 (host A lacks it), ERMS. */
#define CPUID7_EBX_AVX2 (1u << 5)
#define CPUID7_EBX_ERMS (1u << 9)

/* A device of the test's own: one register, and what a snapshot did to it. */
struct snapdev {
	struct vm *vm;
	uint64_t reg;
	bool frozen;
	unsigned freezes, thaws, saves, loads;
	bool frozen_at_save;
	unsigned parked_at_save;   /* vCPUs parked when save ran */
	int thaw_err;              /* what thaw returns */
	unsigned runs_at_thaw;     /* KVM_RUNs of every vCPU when thaw last ran */
};

static int snapdev_freeze(void *dev)
{
	struct snapdev *d = dev;

	d->frozen = true;
	d->freezes++;
	return 0;
}

static int snapdev_thaw(void *dev)
{
	struct snapdev *d = dev;
	unsigned i;

	d->runs_at_thaw = 0;
	for (i = 0; i < d->vm->nr_vcpus; i++)
		d->runs_at_thaw += fake_kvm__runs(i);
	d->thaws++;
	if (d->thaw_err)
		return d->thaw_err;
	d->frozen = false;
	return 0;
}

static int snapdev_save(void *dev, struct state_out *out)
{
	struct snapdev *d = dev;

	d->saves++;
	d->frozen_at_save = d->frozen;
	d->parked_at_save = d->vm->parked;
	state_out__u32(out, DEV_MAGIC);
	state_out__u64(out, d->reg);
	return 0;
}

static int snapdev_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct snapdev *d = dev;
	uint32_t magic = state_in__u32(in);
	uint64_t reg = state_in__u64(in);

	if (state_in__end(in) || magic != DEV_MAGIC) {
		snprintf(why, why_len, "not a snapdev state (%zu bytes)", in->len);
		return -EINVAL;
	}
	d->reg = reg;
	d->loads++;
	d->frozen = true;          /* as every load leaves its device (device_ops.load) */
	return 0;
}

static const struct device_ops snapdev_ops = {
	.freeze = snapdev_freeze, .thaw = snapdev_thaw, .save = snapdev_save, .load = snapdev_load,
};

/* A device the snapshot has no support for: frozen and thawed like the rest, but no save. */
static const struct device_ops nosave_ops = { .freeze = snapdev_freeze, .thaw = snapdev_thaw };

/* The devices a VM is built with, in order. */
enum devices {
	DEVS_STD,        /* com1, i8042, snapdev */
	DEVS_NO_SNAPDEV, /* com1, i8042 */
	DEVS_SWAPPED,    /* com1, snapdev, i8042 */
	DEVS_EXTRA,      /* com1, i8042, snapdev, nosave */
};

/* What the fake host is like (fake_kvm's host fields); zero: the default host. */
struct host {
	uint32_t tsc_khz;
	bool tsc_scaling_lacking;
	uint32_t msr_lacking, msr_unreadable;
	uint32_t cpuid7_ebx_lacking;
	unsigned extra_msrs;         /* more MSRs in KVM's list than one KVM_GET/SET_MSRS batch */
};

/* VM A as it was saved: what VM B must hold after the restore. */
struct saved {
	struct fake_kvm_vcpu vcpu[NR_VCPUS];
	struct kvm_irqchip chips[3];
	struct kvm_pit_state2 pit;
	uint64_t clock;              /* kvmclock as vm__pause froze it */
	uint8_t *ram;
	struct snapshot_stats st;
};

struct rig {
	struct fake_vm f;            /* first: fake_vm__teardown takes the rig */
	bool live;                   /* f.vm is built (else teardown has no VM to destroy) */
	struct snapdev dev, nosave;
	struct vm_hooks hooks;       /* what build gives vm__create */
	unsigned thaws_at_started;   /* the snapdev's thaws when vcpus_started was called */
	unsigned thaws_at_ready;     /* the snapdev's thaws when guest_ready was called */
	unsigned readies;            /* guest_ready calls */
	char tmp[64];                /* a fresh directory, removed at teardown */
	char snap[128];              /* tmp/snap: where the snapshot goes */
	struct saved a;
};

static const struct host host_a = { .msr_unreadable = MSR_TSC_ADJUST,
				    .cpuid7_ebx_lacking = CPUID7_EBX_AVX2 };
static const struct host host_b = { .tsc_khz = HOST_B_KHZ };

/* ---- building, running, destroying ---- */

static int build(struct rig *r, unsigned vcpus, uint64_t ram, enum devices devs,
		 const struct host *h)
{
	struct vm *vm = &r->f.vm;
	struct irq_sink irq;
	struct serial *com1;
	struct i8042 *kbd;
	struct err e = { 0 };
	int err;

	fake_kvm__reset();
	fake_kvm.tsc_khz = h->tsc_khz;
	fake_kvm.tsc_scaling_lacking = h->tsc_scaling_lacking;
	fake_kvm.msr_lacking = h->msr_lacking;
	fake_kvm.msr_unreadable = h->msr_unreadable;
	fake_kvm.extra_msrs = h->extra_msrs;
	if (h->cpuid7_ebx_lacking)
		fake_kvm.cpuid_lacking = (typeof(fake_kvm.cpuid_lacking)){ 7, 0, 1, h->cpuid7_ebx_lacking };
	memset(vm, 0, sizeof(*vm));
	r->live = true;
	err = vm__create(vm, fake_kvm__path(), &r->hooks, &e);
	if (!err)
		err = vm__setup_memory(vm, ram, &e);
	if (!err)
		err = vm__setup_irqchip(vm, &e);
	if (!err)
		err = vm__create_vcpus(vm, vcpus, &e);
	if (err) {
		fprintf(stderr, "build: %s\n", e.msg);
		return err;
	}
	irq = vm__irq_sink(vm, 4);
	if (serial__add(&vm->pio, COM1, &irq, -1, &com1) ||
	    device_list__add(&vm->devices, "com1", &serial__device_ops, com1) ||
	    i8042__add(&vm->pio, &vm->ctl, &kbd))
		return -1;
	r->dev = (struct snapdev){ .vm = vm };
	r->nosave = (struct snapdev){ .vm = vm };
	if (devs == DEVS_SWAPPED && device_list__add(&vm->devices, "snapdev", &snapdev_ops, &r->dev))
		return -1;
	if (device_list__add(&vm->devices, "i8042", &i8042__device_ops, kbd))
		return -1;
	if ((devs == DEVS_STD || devs == DEVS_EXTRA) &&
	    device_list__add(&vm->devices, "snapdev", &snapdev_ops, &r->dev))
		return -1;
	if (devs == DEVS_EXTRA && device_list__add(&vm->devices, "nosave", &nosave_ops, &r->nosave))
		return -1;
	return 0;
}

/* Destroys the VM; it must not have broken a rule of KVM's. */
static void destroy(struct rig *r)
{
	unsigned violations = fake_kvm.violations;

	vm__destroy(&r->f.vm);
	r->live = false;
	if (violations)
		fail_msg("fake KVM: %s", fake_kvm.why);
}

static bool wait_for(bool (*cond)(struct rig *r), struct rig *r)
{
	unsigned ms;

	for (ms = 0; ms < FAKE_VM_WAIT_MS; ms++) {
		if (cond(r))
			return true;
		fake_vm__sleep_ms(1);
	}
	return cond(r);
}

static bool all_in_guest(struct rig *r)
{
	unsigned i;

	if (vm__state(&r->f.vm) != VM_STATE_RUNNING)
		return false;
	for (i = 0; i < r->f.vm.nr_vcpus; i++)
		if (!fake_kvm__runs(i))
			return false;
	return true;
}

static bool none_parked(struct rig *r)
{
	return __atomic_load_n(&r->f.vm.parked, __ATOMIC_ACQUIRE) == 0;
}

/* vm__run on its thread, until every vCPU entered KVM_RUN. */
static void start_running(struct rig *r)
{
	vm_call__start(&r->f.run, vm__run, &r->f.vm);
	assert_true(wait_for(all_in_guest, r));
}

static void stop_and_finish(struct rig *r)
{
	vm__request_stop(&r->f.vm, VM_STOP_POWEROFF, 0);
	assert_int_equal(vm_call__finish(&r->f.run, "vm__run did not return: a vCPU did not stop"), 0);
}

/* ---- the model's state ---- */

static uint64_t msr(const struct fake_kvm_vcpu *v, uint32_t index)
{
	unsigned i;

	for (i = 0; i < v->nr_msrs; i++)
		if (v->msrs[i].index == index)
			return v->msrs[i].data;
	return 0;
}

static void put_msr(struct fake_kvm_vcpu *v, uint32_t index, uint64_t data)
{
	assert_true(v->nr_msrs < FAKE_KVM_MAX_MSRS);
	v->msrs[v->nr_msrs++] = (struct kvm_msr_entry){ .index = index, .data = data };
}

static const struct kvm_cpuid_entry2 *leaf(const struct fake_kvm_vcpu *v, uint32_t function)
{
	unsigned i;

	for (i = 0; i < v->nr_cpuid; i++)
		if (v->cpuid[i].function == function)
			return &v->cpuid[i];
	return NULL;
}

static void put32(void *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* What a guest leaves in vCPU `i` as it runs. */
static void guest_vcpu_state(unsigned i)
{
	struct fake_kvm_vcpu *v = fake_kvm__vcpu(i);
	uint64_t xstate_bv = 0x7;
	unsigned k;

	v->regs.rax = 0x1111222233334444ull + i;
	v->regs.r15 = 0x0f0f0f0f00000000ull | i;
	v->regs.rsp = 0xffffc90000004000ull - 0x1000 * i;
	v->regs.rip = 0xffffffff81000000ull + 0x100 * i;
	v->regs.rflags = 0x246;
	v->sregs.cr0 = 0x80050033;
	v->sregs.cr3 = 0x1000000 + 0x1000 * i;
	v->sregs.cr4 = 0x3606f0;
	v->sregs.efer = 0xd01;
	v->sregs.apic_base = 0xfee00800 | (i ? 0 : 0x100);
	v->sregs.cs = (struct kvm_segment){ .selector = 0x10, .type = 11, .present = 1, .s = 1, .l = 1 };
	put32(v->lapic.regs + 0x20, i << 24);                       /* APIC id */
	put32(v->lapic.regs + APIC_TPR, 0x10 + i);
	put32(v->lapic.regs + APIC_LVTT, (2u << 17) | 0xec);        /* TSC-deadline mode */
	put_msr(v, MSR_TSC_DEADLINE, 0x123456789aull + i);
	put_msr(v, MSR_TSC_ADJUST, 0x42);                           /* host A cannot read it */
	put_msr(v, MSR_PAT, 0x0407050600070106ull);
	put_msr(v, MSR_STAR, 0x0023001000000000ull);
	put_msr(v, MSR_LSTAR, 0xffffffff81a00000ull + i);
	put_msr(v, MSR_KERNEL_GS_BASE, 0xffff888000000000ull + 0x40000 * i);
	put_msr(v, MSR_KVM_SYSTEM_TIME_NEW, 0x5001 + 0x40 * i);
	v->mp_state.mp_state = i ? KVM_MP_STATE_HALTED : KVM_MP_STATE_RUNNABLE;
	v->events.interrupt.injected = 1;
	v->events.interrupt.nr = (uint8_t)(0x30 + i);
	v->events.nmi.pending = (uint8_t)i;
	v->events.flags = KVM_VCPUEVENT_VALID_SHADOW;
	v->xsave.region[0] = 0x037f;                                /* FCW */
	for (k = 40; k < 104; k++)                                  /* XMM0-15 */
		v->xsave.region[k] = 0xa5a50000u + 16 * i + k;
	memcpy((uint8_t *)v->xsave.region + 512, &xstate_bv, 8);
	v->xcrs.nr_xcrs = 1;
	v->xcrs.xcrs[0].value = 0x7;
	v->debugregs.db[0] = 0x401000 + i;
	v->debugregs.db[3] = 0xdead;
	v->debugregs.dr6 = 0xffff0ff0;
	v->debugregs.dr7 = 0x400 | (1u << (2 * i));
}

static uint8_t *ram(struct rig *r, uint64_t gpa)
{
	return guest_mem__ptr(&r->f.vm.mem, gpa, 1);
}

/* Guest RAM: chunks 0, 1, 3 and the last hold data (chunk 3 one byte at its end), the rest is zero. */
static void guest_ram(struct rig *r)
{
	unsigned k;

	*ram(r, 0x7000) = 0xab;
	for (k = 0; k < CHUNK; k++)
		*ram(r, CHUNK + k) = (uint8_t)(k * 7 + 3);
	*ram(r, 4 * CHUNK - 1) = 0x5a;
	*ram(r, RAM - 1) = 0xee;
}
/* The 4 KiB pages with data: 0x7000, all of chunk 1, the last of chunk 3 and of RAM. */
#define DATA_PAGES (1 + CHUNK / 4096 + 1 + 1)

/* What a guest leaves in the whole of VM A: vCPUs, irqchip, PIT, kvmclock, devices, RAM. */
static void guest_state(struct rig *r)
{
	uint8_t v;
	unsigned i;

	for (i = 0; i < NR_VCPUS; i++)
		guest_vcpu_state(i);
	fake_kvm.chips[0].chip.pic.irq_base = 0x20;
	fake_kvm.chips[0].chip.pic.imr = 0xfb;
	fake_kvm.chips[1].chip.pic.irq_base = 0x28;
	fake_kvm.chips[1].chip.pic.elcr = 0x0c;
	fake_kvm.chips[2].chip.ioapic.id = 0;
	fake_kvm.chips[2].chip.ioapic.redirtbl[4].bits = 0x24;
	fake_kvm.chips[2].chip.ioapic.redirtbl[9].bits = 0xa029;
	fake_kvm.pit_state.channels[0].count = 0x1234;
	fake_kvm.pit_state.channels[0].mode = 2;
	fake_kvm.pit_state.channels[2].gate = 1;
	fake_kvm.kvmclock = CLOCK_AT_PAUSE;
	v = 0x5a;
	assert_true(bus__access(&r->f.vm.pio, COM1 + UART_SCR, &v, 1, true));
	v = 0x03;
	assert_true(bus__access(&r->f.vm.pio, COM1 + UART_LCR, &v, 1, true));
	r->dev.reg = DEV_REG;
	guest_ram(r);
}

/* VM B's builder wrote where A's RAM is zero, and into a chunk A has data in. */
static void builder_ram(struct rig *r)
{
	memset(ram(r, 2 * CHUNK), 0xcd, CHUNK);
	*ram(r, 7 * CHUNK + 123) = 1;
	memset(ram(r, CHUNK), 0x11, 4096);
}

/* ---- files ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* dir/name (the next call overwrites it). */
static const char *path_in(const char *dir, const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static uint8_t *slurp(const char *dir, const char *name, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd;

	fd = open(path_in(dir, name), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void spill(const char *dir, const char *name, const void *p, size_t len)
{
	int fd = open(path_in(dir, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static bool exists(const char *dir, const char *name)
{
	struct stat st;

	return stat(path_in(dir, name), &st) == 0;
}

static uint32_t crc(const void *p, size_t n)
{
	return (uint32_t)crc32(crc32(0, Z_NULL, 0), p, (uInt)n);
}

/* state.bin's sections: name, where the header and the data start, the data's length. */
struct sec {
	char name[64];
	size_t hdr, data;
	uint64_t len;
};

static unsigned sections(const uint8_t *b, size_t len, struct sec *s, unsigned max)
{
	size_t off = 12, end = len - 4;
	unsigned n = 0;

	while (off < end && n < max) {
		uint16_t nlen;

		memcpy(&nlen, b + off, 2);
		assert_true(nlen < sizeof(s[n].name));
		s[n].hdr = off;
		memcpy(s[n].name, b + off + 2, nlen);
		s[n].name[nlen] = '\0';
		memcpy(&s[n].len, b + off + 2 + nlen, 8);
		s[n].data = off + 2 + nlen + 12;
		off = s[n].data + s[n].len;
		n++;
	}
	assert_int_equal(off, end);
	return n;
}

static const struct sec *section(const struct sec *s, unsigned n, const char *name)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!strcmp(s[i].name, name))
			return &s[i];
	fail_msg("state.bin has no section %s", name);
	return NULL;
}

/*
 * state.bin `b` with section `name`'s data replaced by [data, data+dlen), every CRC right:
 * a forged file only the parsers behind the checksums can refuse. Returns its length.
 */
static size_t forge(const uint8_t *b, size_t len, const char *name, const uint8_t *data,
		    size_t dlen, uint8_t *out)
{
	struct sec s[32];
	unsigned n = sections(b, len, s, 32), i;
	size_t o = 12;
	uint32_t sum;

	memcpy(out, b, 12);
	for (i = 0; i < n; i++) {
		bool mine = !strcmp(s[i].name, name);
		const uint8_t *p = mine ? data : b + s[i].data;
		uint64_t l = mine ? dlen : s[i].len;
		size_t nlen = s[i].data - s[i].hdr - 14;

		memcpy(out + o, b + s[i].hdr, 2 + nlen);
		o += 2 + nlen;
		memcpy(out + o, &l, 8);
		sum = crc(p, l);
		memcpy(out + o + 8, &sum, 4);
		o += 12;
		memcpy(out + o, p, l);
		o += l;
	}
	sum = crc(out, o);
	memcpy(out + o, &sum, 4);
	return o + 4;
}

/* ---- setup ---- */

static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	*state = r;
	if (!r || vcpu__init_signals())
		return -1;
	snprintf(r->tmp, sizeof(r->tmp), "%s/rtvmm-snap-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(r->tmp))
		return -1;
	snprintf(r->snap, sizeof(r->snap), "%s/snap", r->tmp);
	r->a.ram = malloc(RAM);
	return r->a.ram ? build(r, NR_VCPUS, RAM, DEVS_STD, &host_a) : -1;
}

static int teardown(void **state)
{
	struct rig *r = *state;

	nftw(r->tmp, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(r->a.ram);
	if (r->live)
		return fake_vm__teardown(state);
	free(r);
	return 0;
}

/*
 * VM A (built by setup) takes the guest's state, runs, is saved into r->snap while
 * Running, and is destroyed; r->a keeps what B must get back.
 */
static void save_a(struct rig *r)
{
	struct err e = { 0 };
	unsigned i;

	guest_state(r);
	start_running(r);
	if (snapshot__save(&r->f.vm, r->snap, &r->a.st, &e))
		fail_msg("snapshot__save: %s", e.msg);
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
	assert_true(wait_for(none_parked, r));
	r->a.clock = r->f.vm.paused_clock.clock;
	for (i = 0; i < NR_VCPUS; i++)
		r->a.vcpu[i] = *fake_kvm__vcpu(i);
	memcpy(r->a.chips, fake_kvm.chips, sizeof(r->a.chips));
	r->a.pit = fake_kvm.pit_state;
	memcpy(r->a.ram, r->f.vm.mem.base, RAM);
	stop_and_finish(r);
	destroy(r);
}

/* A snapshot of A, and B built (not run) to restore it into. */
static void saved_a_and_built_b(struct rig *r, unsigned vcpus, uint64_t ram, enum devices devs,
				const struct host *h)
{
	save_a(r);
	assert_int_equal(build(r, vcpus, ram, devs, h), 0);
}

/* snapshot__restore into B must fail with `code`, its message naming every `needles`. */
static void assert_restore_refused(struct rig *r, int code, const char *needle1, const char *needle2)
{
	struct err e = { 0 };
	int err = snapshot__restore(&r->f.vm, r->snap, &e);

	if (err != code)
		fail_msg("snapshot__restore: %d (%s), expected %d", err, e.msg, code);
	if (!strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
		fail_msg("'%s' does not name '%s'%s%s", e.msg, needle1, needle2 ? " and " : "",
			 needle2 ? needle2 : "");
}

/* ---- the round trip ---- */

static void assert_vcpu_restored(unsigned i, const struct fake_kvm_vcpu *a)
{
	const struct fake_kvm_vcpu *b = fake_kvm__vcpu(i);
	const uint32_t msrs[] = { MSR_PAT, MSR_STAR, MSR_LSTAR, MSR_KERNEL_GS_BASE,
				  MSR_KVM_SYSTEM_TIME_NEW, MSR_TSC_DEADLINE };
	unsigned k;

	assert_memory_equal(&b->regs, &a->regs, sizeof(a->regs));
	assert_memory_equal(&b->sregs, &a->sregs, sizeof(a->sregs));
	assert_memory_equal(&b->xsave, &a->xsave, sizeof(a->xsave));
	assert_memory_equal(&b->xcrs, &a->xcrs, sizeof(a->xcrs));
	assert_memory_equal(&b->debugregs, &a->debugregs, sizeof(a->debugregs));
	assert_memory_equal(&b->lapic, &a->lapic, sizeof(a->lapic));
	assert_memory_equal(&b->events, &a->events, sizeof(a->events));
	assert_int_equal(b->mp_state.mp_state, a->mp_state.mp_state);
	for (k = 0; k < sizeof(msrs) / sizeof(msrs[0]); k++)
		if (msr(b, msrs[k]) != msr(a, msrs[k]))
			fail_msg("vcpu%u MSR %#x: %#llx, saved %#llx", i, msrs[k],
				 (unsigned long long)msr(b, msrs[k]), (unsigned long long)msr(a, msrs[k]));
	/* The TSC deadline survived (KVM drops it unless the LAPIC is in TSC-deadline mode first). */
	assert_true(msr(b, MSR_TSC_DEADLINE) == 0x123456789aull + i);
	/* Host A could not read it, so it was not saved: B has its own. */
	assert_true(msr(b, MSR_TSC_ADJUST) == 0);
	/* The guest's CPUID (without AVX2: host A lacked it), not B's host's own. */
	assert_int_equal(b->nr_cpuid, a->nr_cpuid);
	assert_memory_equal(b->cpuid, a->cpuid, a->nr_cpuid * sizeof(a->cpuid[0]));
	assert_int_equal(leaf(b, 7)->ebx & CPUID7_EBX_AVX2, 0);
	assert_int_equal(b->cpuid_sets, 2);          /* vcpu__create's, the restore's */
	/* The guest's TSC rate, not B's host's. */
	assert_int_equal(b->tsc_khz, HOST_A_KHZ);
}

/* A host whose MSR list is longer than one batch (a PMU's counters): every MSR comes back. */
static void test_snapshot_keeps_every_msr_of_a_list_longer_than_one_batch(void **state)
{
	static const struct host many = { .extra_msrs = 200 };
	struct rig *r = *state;
	struct err e = { 0 };
	unsigned k;

	destroy(r);
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_STD, &many), 0);
	for (k = 0; k < many.extra_msrs; k++)
		put_msr(fake_kvm__vcpu(0), FAKE_KVM_EXTRA_MSR + k, 0x1000 + k);
	start_running(r);
	if (snapshot__save(&r->f.vm, r->snap, &r->a.st, &e))
		fail_msg("snapshot__save: %s", e.msg);
	stop_and_finish(r);
	destroy(r);
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_STD, &many), 0);
	if (snapshot__restore(&r->f.vm, r->snap, &e))
		fail_msg("snapshot__restore: %s", e.msg);
	for (k = 0; k < many.extra_msrs; k++)
		if (msr(fake_kvm__vcpu(0), FAKE_KVM_EXTRA_MSR + k) != 0x1000 + k)
			fail_msg("MSR %#x (entry %u of the extra ones) came back as %#llx", FAKE_KVM_EXTRA_MSR + k,
				 k, (unsigned long long)msr(fake_kvm__vcpu(0), FAKE_KVM_EXTRA_MSR + k));
}

static void test_snapshot_of_a_running_vm_restores_every_register_device_clock_and_byte(void **state)
{
	struct rig *r = *state;
	struct snapshot_stats st2;
	struct err e = { 0 };
	char again[128];
	struct stat st;
	unsigned i;
	uint8_t v;

	save_a(r);
	/* A was frozen, saved with every vCPU parked, thawed. */
	assert_int_equal(r->dev.freezes, 1);
	assert_int_equal(r->dev.saves, 1);
	assert_int_equal(r->dev.thaws, 1);
	assert_true(r->dev.frozen_at_save);
	assert_int_equal(r->dev.parked_at_save, NR_VCPUS);
	/* The snapshot: the three files, RAM sparse, the stats true. */
	assert_true(exists(r->snap, "manifest.json") && exists(r->snap, "state.bin"));
	assert_false(exists(r->snap, "manifest.json.tmp"));
	assert_int_equal(stat(r->snap, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(path_in(r->snap, "memory.bin"), &st), 0);
	assert_int_equal(st.st_size, RAM);
	if ((uint64_t)st.st_blocks * 512 > DATA_PAGES * 4096ull + (64u << 10))
		fail_msg("memory.bin takes %llu bytes for %u pages of data: not sparse",
			 (unsigned long long)st.st_blocks * 512, DATA_PAGES);
	assert_int_equal(r->a.st.memory_bytes, RAM);
	assert_int_equal(r->a.st.memory_written, DATA_PAGES * 4096ull);
	assert_int_equal(stat(path_in(r->snap, "state.bin"), &st), 0);
	assert_int_equal(r->a.st.state_bytes, st.st_size);
	assert_true(r->a.st.paused_ns > 0);
	assert_true(r->a.clock == CLOCK_AT_PAUSE);

	/* B, on another host (faster TSC, AVX2), its builder's bytes in RAM. */
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_STD, &host_b), 0);
	builder_ram(r);
	fake_kvm.kvmclock = 5;
	if (snapshot__restore(&r->f.vm, r->snap, &e))
		fail_msg("snapshot__restore: %s", e.msg);
	for (i = 0; i < NR_VCPUS; i++)
		assert_vcpu_restored(i, &r->a.vcpu[i]);
	assert_int_equal(fake_kvm.irqchip_sets, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(fake_kvm.chips[i].chip_id, i);
		assert_memory_equal(&fake_kvm.chips[i].chip, &r->a.chips[i].chip, sizeof(r->a.chips[i].chip));
	}
	assert_int_equal(fake_kvm.pit_sets, 1);
	assert_memory_equal(&fake_kvm.pit_state, &r->a.pit, sizeof(r->a.pit));
	/* Guest time from where the pause stopped it, not from a later read. */
	assert_int_equal(fake_kvm.clock_sets, 1);
	assert_true(fake_kvm.kvmclock == CLOCK_AT_PAUSE);
	/* RAM byte for byte: the builder's bytes where A had zeros are zeros again. */
	if (memcmp(r->f.vm.mem.base, r->a.ram, RAM))
		fail_msg("guest RAM differs from what was saved");
	assert_int_equal(*ram(r, 2 * CHUNK + 5), 0);
	assert_int_equal(*ram(r, 7 * CHUNK + 123), 0);
	/* The devices: loaded, and frozen until the guest runs. */
	assert_int_equal(r->dev.loads, 1);
	assert_true(r->dev.reg == DEV_REG);
	assert_true(r->dev.frozen);
	assert_int_equal(r->dev.thaws, 0);
	assert_true(bus__access(&r->f.vm.pio, COM1 + UART_SCR, &v, 1, false));
	assert_int_equal(v, 0x5a);
	assert_true(bus__access(&r->f.vm.pio, COM1 + UART_LCR, &v, 1, false));
	assert_int_equal(v, 0x03);
	assert_int_equal(fake_kvm.violations, 0);

	/* B runs from there (KVM takes no other CPUID once it ran), and can be saved again. */
	start_running(r);
	/* Its devices thawed once, before any vCPU entered the guest. */
	assert_int_equal(r->dev.thaws, 1);
	assert_int_equal(r->dev.runs_at_thaw, 0);
	assert_false(r->dev.frozen);
	snprintf(again, sizeof(again), "%s/again", r->tmp);
	if (snapshot__save(&r->f.vm, again, &st2, &e))
		fail_msg("snapshot__save of the restored VM: %s", e.msg);
	assert_int_equal(st2.memory_written, DATA_PAGES * 4096ull);
	assert_int_equal(r->dev.freezes, 1);
	assert_int_equal(r->dev.thaws, 2);
	stop_and_finish(r);
}

/* vm_hooks.vcpus_started: where the application proves the vCPUs' placement. */
static int started_hook(void *opaque, const struct vm *vm)
{
	struct rig *r = opaque;

	(void)vm;
	r->thaws_at_started = r->dev.thaws;
	return 0;
}

/* vm_hooks.guest_ready: what a migration's destination tells its source RUNNING in. */
static int ready_hook(void *opaque)
{
	struct rig *r = opaque;

	r->readies++;
	r->thaws_at_ready = r->dev.thaws;
	return 0;
}

static void restore_with_guest_ready(struct rig *r)
{
	struct err e = { 0 };

	save_a(r);
	r->hooks = (struct vm_hooks){ .opaque = r, .vcpus_started = started_hook,
				      .guest_ready = ready_hook, .ready_opaque = r };
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_STD, &host_a), 0);
	if (snapshot__restore(&r->f.vm, r->snap, &e))
		fail_msg("snapshot__restore: %s", e.msg);
	assert_true(r->dev.frozen);
}

static void test_restored_devices_start_after_the_vcpus_are_placed_and_before_guest_ready(void **state)
{
	struct rig *r = *state;

	restore_with_guest_ready(r);
	r->thaws_at_started = ~0u;
	start_running(r);
	assert_int_equal(r->thaws_at_started, 0);
	assert_int_equal(r->readies, 1);
	assert_int_equal(r->thaws_at_ready, 1);
	assert_int_equal(r->dev.runs_at_thaw, 0);
	assert_false(r->dev.frozen);
	stop_and_finish(r);
}

static void test_a_restored_device_that_cannot_start_stops_the_vm_before_guest_ready(void **state)
{
	struct rig *r = *state;
	unsigned i;

	restore_with_guest_ready(r);
	r->dev.thaw_err = -ETIMEDOUT;
	assert_int_equal(stderr_capture__start(&r->f.err), 0);
	vm_call__start(&r->f.run, vm__run, &r->f.vm);
	/* No RUNNING for a guest whose devices did not start: the VM stops, no vCPU entered. */
	assert_int_equal(vm_call__finish(&r->f.run, "vm__run did not return after the failed thaw"), 1);
	assert_int_equal(r->dev.thaws, 1);
	assert_int_equal(r->readies, 0);
	assert_int_equal(r->f.vm.stop_reason, VM_STOP_ERROR);
	for (i = 0; i < NR_VCPUS; i++)
		assert_int_equal(fake_kvm__runs(i), 0);
	assert_non_null(strstr(stderr_capture__text(&r->f.err),
			       "device snapdev cannot start from the saved state: Connection timed out"));
}

static void test_snapshot_of_a_paused_vm_leaves_it_paused(void **state)
{
	struct rig *r = *state;
	struct snapshot_stats st;
	struct err e = { 0 };
	unsigned runs0;

	guest_state(r);
	start_running(r);
	assert_int_equal(vm__pause(&r->f.vm), 0);
	runs0 = fake_kvm__runs(0);
	if (snapshot__save(&r->f.vm, r->snap, &st, &e))
		fail_msg("snapshot__save: %s", e.msg);
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_PAUSED);
	assert_int_equal(r->f.vm.parked, NR_VCPUS);
	fake_vm__sleep_ms(20);
	assert_int_equal(fake_kvm__runs(0), runs0);   /* no vCPU went back into the guest */
	assert_int_equal(r->dev.thaws, 1);
	assert_int_equal(vm__resume(&r->f.vm), 0);
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
	stop_and_finish(r);
}

/*
 * kvmclock stops at the pause; the TSC is saved as it read then, not when the
 * snapshot read it later (the model's TSC stands still, so the save must take
 * the time since the pause off it at the vCPU's rate), so a guest on either
 * clock sees the same time after a restore.
 */
static void test_a_snapshot_saves_the_tsc_as_it_read_when_the_guest_stopped(void **state)
{
	const uint64_t tsc = 1ull << 40, khz = FAKE_KVM_TSC_KHZ;
	struct rig *r = *state;
	struct snapshot_stats st;
	struct err e = { 0 };
	uint64_t t0, t1, got;

	put_msr(fake_kvm__vcpu(0), 0x10, tsc);
	start_running(r);
	t0 = clock__mono_ns();
	assert_int_equal(vm__pause(&r->f.vm), 0);
	fake_vm__sleep_ms(50);
	if (snapshot__save(&r->f.vm, r->snap, &st, &e))
		fail_msg("snapshot__save: %s", e.msg);
	t1 = clock__mono_ns();
	assert_int_equal(vm__resume(&r->f.vm), 0);
	stop_and_finish(r);
	destroy(r);
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_STD, &host_a), 0);
	if (snapshot__restore(&r->f.vm, r->snap, &e))
		fail_msg("snapshot__restore: %s", e.msg);
	got = msr(fake_kvm__vcpu(0), 0x10);
	if (got > tsc - 50000000ull * khz / 1000000 || got < tsc - (t1 - t0) * khz / 1000000)
		fail_msg("TSC saved as %llu: %lld ticks before it read, expected 50 ms to %llu us of "
			 "them at %llu kHz", (unsigned long long)got, (long long)(tsc - got),
			 (unsigned long long)(t1 - t0) / 1000, (unsigned long long)khz);
}

/* ---- refusals to save ---- */

static void test_snapshot_into_an_existing_directory_is_refused_and_writes_nothing(void **state)
{
	struct rig *r = *state;
	struct snapshot_stats st;
	struct err e = { 0 };

	assert_int_equal(mkdir(r->snap, 0700), 0);
	spill(r->snap, "keep", "x", 1);
	start_running(r);
	assert_int_equal(snapshot__save(&r->f.vm, r->snap, &st, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "already exists"));
	assert_non_null(strstr(e.msg, r->snap));
	assert_true(exists(r->snap, "keep"));
	assert_false(exists(r->snap, "memory.bin") || exists(r->snap, "state.bin") ||
		     exists(r->snap, "manifest.json"));
	assert_int_equal(r->dev.freezes, 0);
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
	stop_and_finish(r);
}

static void test_snapshot_of_a_vm_neither_running_nor_paused_is_busy(void **state)
{
	struct rig *r = *state;
	struct snapshot_stats st;
	struct err e = { 0 };

	assert_int_equal(snapshot__save(&r->f.vm, r->snap, &st, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "Created"));
	assert_false(exists(r->snap, "."));
	start_running(r);
	stop_and_finish(r);
	assert_int_equal(snapshot__save(&r->f.vm, r->snap, &st, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "Shutdown"));
	assert_false(exists(r->snap, "."));
	assert_int_equal(r->dev.freezes, 0);
}

static void test_snapshot_with_a_device_that_cannot_be_saved_is_refused_naming_it(void **state)
{
	struct rig *r = *state;
	struct snapshot_stats st;
	struct err e = { 0 };

	destroy(r);
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_EXTRA, &host_a), 0);
	guest_ram(r);
	start_running(r);
	assert_int_equal(snapshot__save(&r->f.vm, r->snap, &st, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "nosave"));
	assert_false(exists(r->snap, "."));   /* the half-written snapshot is gone */
	/* Every device frozen was thawed, and the VM runs on. */
	assert_int_equal(r->dev.freezes, 1);
	assert_int_equal(r->dev.thaws, 1);
	assert_int_equal(r->nosave.freezes, 1);
	assert_int_equal(r->nosave.thaws, 1);
	assert_int_equal(vm__state(&r->f.vm), VM_STATE_RUNNING);
	assert_true(wait_for(none_parked, r));
	stop_and_finish(r);
}

/* ---- refusals to restore ---- */

static void test_restore_into_another_vcpu_count_is_refused_naming_it(void **state)
{
	struct rig *r = *state;

	saved_a_and_built_b(r, NR_VCPUS - 1, RAM, DEVS_STD, &host_a);
	assert_restore_refused(r, -EINVAL, "2 vCPUs", "--vcpus");
}

static void test_restore_into_another_memory_size_is_refused_naming_it(void **state)
{
	struct rig *r = *state;

	saved_a_and_built_b(r, NR_VCPUS, RAM / 2, DEVS_STD, &host_a);
	assert_restore_refused(r, -EINVAL, "32 MiB of memory", "--memory");
}

static void test_restore_into_another_device_list_is_refused_naming_the_device(void **state)
{
	struct rig *r = *state;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_SWAPPED, &host_a);
	assert_restore_refused(r, -EINVAL, "device 1 was i8042", "snapdev");
	destroy(r);
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_NO_SNAPDEV, &host_a), 0);
	assert_restore_refused(r, -EINVAL, "device 2 was snapdev", "none");
	destroy(r);
	assert_int_equal(build(r, NR_VCPUS, RAM, DEVS_EXTRA, &host_a), 0);
	assert_restore_refused(r, -EINVAL, "3 devices", "4");
}

static void test_restore_of_a_flipped_byte_in_memory_is_a_checksum_mismatch(void **state)
{
	struct rig *r = *state;
	uint8_t *mem;
	size_t len;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &host_a);
	mem = slurp(r->snap, "memory.bin", &len);
	mem[CHUNK + 4321] ^= 0x10;
	spill(r->snap, "memory.bin", mem, len);
	assert_restore_refused(r, -EINVAL, "checksum mismatch", "0x200000");
	/* A memory.bin cut short is refused too. */
	spill(r->snap, "memory.bin", mem, len - 4096);
	assert_restore_refused(r, -EINVAL, "memory.bin", NULL);
	free(mem);
}

static void test_restore_of_a_flipped_byte_in_state_is_a_checksum_mismatch(void **state)
{
	struct rig *r = *state;
	struct sec s[32];
	uint8_t *good, *bad;
	size_t len, off;
	const struct sec *v0;
	uint32_t sum;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &host_a);
	good = slurp(r->snap, "state.bin", &len);
	bad = malloc(len);
	assert_non_null(bad);
	for (off = 0; off < len; off += off < 64 || off + 64 > len ? 1 : 37) {
		memcpy(bad, good, len);
		bad[off] ^= 0x01;
		spill(r->snap, "state.bin", bad, len);
		assert_restore_refused(r, -EINVAL, off < 8 ? "not an rtvmm state" :
				       "checksum mismatch", "state.bin");
	}
	/* The file's checksum right, a section's wrong: the section is named. */
	v0 = section(s, sections(good, len, s, 32), "vcpu.0");
	memcpy(bad, good, len);
	bad[v0->data + 100] ^= 0x80;
	sum = crc(bad, len - 4);
	memcpy(bad + len - 4, &sum, 4);
	spill(r->snap, "state.bin", bad, len);
	assert_restore_refused(r, -EINVAL, "section vcpu.0: checksum mismatch", NULL);
	free(bad);
	free(good);
}

static void test_restore_of_a_truncated_state_is_refused_at_every_length(void **state)
{
	struct rig *r = *state;
	uint8_t *good, *cut;
	size_t len, n;
	uint32_t sum;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &host_a);
	good = slurp(r->snap, "state.bin", &len);
	cut = malloc(len + 4);
	assert_non_null(cut);
	/* Cut short: the file's checksum no longer holds. */
	for (n = 0; n < len; n += n < 300 || n + 300 > len ? 1 : 7) {
		struct err e = { 0 };

		spill(r->snap, "state.bin", good, n);
		assert_int_equal(snapshot__restore(&r->f.vm, r->snap, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "state.bin"));
	}
	/* Cut short and sealed again with a right checksum: the section parser refuses it. */
	for (n = 12; n < len - 4; n += n < 300 ? 1 : 5) {
		struct err e = { 0 };

		memcpy(cut, good, n);
		sum = crc(cut, n);
		memcpy(cut + n, &sum, 4);
		spill(r->snap, "state.bin", cut, n + 4);
		assert_int_equal(snapshot__restore(&r->f.vm, r->snap, &e), -EINVAL);
		assert_true(e.msg[0] != '\0');
	}
	free(cut);
	free(good);
}

/* vcpu.0's records: u32 version, then (u32 tag, u32 length, bytes) each. */
static unsigned record_ends(const uint8_t *p, size_t len, size_t *ends, unsigned max)
{
	size_t off = 4;
	unsigned n = 0;

	while (off + 8 <= len && n < max) {
		uint32_t rlen;

		memcpy(&rlen, p + off + 4, 4);
		off += 8 + rlen;
		ends[n++] = off;
	}
	assert_int_equal(off, len);
	return n;
}

static void test_restore_of_a_forged_vcpu_state_is_refused_not_crashed(void **state)
{
	struct rig *r = *state;
	struct sec s[32];
	const struct sec *v0;
	uint8_t *good, *out, *rec;
	static const long deltas[] = { -3, -1, 0, 1, 3, 4, 7, 8, 9 };
	size_t len, ends[32], cut;
	unsigned nrec, i, d;
	uint32_t bogus;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &host_a);
	good = slurp(r->snap, "state.bin", &len);
	out = malloc(len + 64);
	v0 = section(s, sections(good, len, s, 32), "vcpu.0");
	rec = malloc(v0->len + 64);
	assert_non_null(out);
	assert_non_null(rec);
	nrec = record_ends(good + v0->data, v0->len, ends, 32);
	assert_true(nrec >= 11);
	/* vcpu.0 cut around every record boundary: inside the version, a header, a record. */
	for (i = 0; i <= nrec; i++) {
		for (d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
			struct err e = { 0 };
			size_t at = i ? ends[i - 1] : 0;

			if ((long)at + deltas[d] < 0 || at + deltas[d] >= v0->len)
				continue;
			cut = at + deltas[d];
			spill(r->snap, "state.bin", out,
			      forge(good, len, "vcpu.0", good + v0->data, cut, out));
			assert_int_equal(snapshot__restore(&r->f.vm, r->snap, &e), -EINVAL);
			if (!strstr(e.msg, "vcpu0"))
				fail_msg("cut at %zu of %llu: '%s' does not name vcpu0", cut,
					 (unsigned long long)v0->len, e.msg);
		}
	}
	/* A record of an unknown tag, one twice, one of the wrong size, a huge length. */
	memcpy(rec, good + v0->data, v0->len);
	bogus = 99;
	memcpy(rec + 4, &bogus, 4);
	spill(r->snap, "state.bin", out, forge(good, len, "vcpu.0", rec, v0->len, out));
	assert_restore_refused(r, -EINVAL, "vcpu0", "is unknown");
	memcpy(rec, good + v0->data, v0->len);
	memcpy(rec + ends[0], good + v0->data + 4, 4);       /* record 2's tag := record 1's */
	spill(r->snap, "state.bin", out, forge(good, len, "vcpu.0", rec, v0->len, out));
	assert_restore_refused(r, -EINVAL, "vcpu0", "appears twice");
	memcpy(rec, good + v0->data, v0->len);
	bogus = 3;                                           /* the TSC rate's 4 bytes said 3 */
	memcpy(rec + ends[0] + 4, &bogus, 4);
	spill(r->snap, "state.bin", out, forge(good, len, "vcpu.0", rec, v0->len, out));
	assert_restore_refused(r, -EINVAL, "vcpu0", "expected 4");
	memcpy(rec, good + v0->data, v0->len);
	bogus = 0xfffffff0u;
	memcpy(rec + ends[0] + 4, &bogus, 4);
	spill(r->snap, "state.bin", out, forge(good, len, "vcpu.0", rec, v0->len, out));
	assert_restore_refused(r, -EINVAL, "vcpu0", NULL);
	free(rec);
	free(out);
	free(good);
}

static void test_restore_without_a_manifest_is_refused(void **state)
{
	struct rig *r = *state;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &host_a);
	assert_int_equal(unlink(path_in(r->snap, "manifest.json")), 0);
	assert_restore_refused(r, -EINVAL, "manifest", NULL);
}

static void test_restore_of_a_version_2_manifest_is_refused_naming_the_format_version(void **state)
{
	struct rig *r = *state;
	char *m, *v;
	size_t len;

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &host_a);
	m = (char *)slurp(r->snap, "manifest.json", &len);
	m[len] = '\0';
	v = strstr(m, "\"version\": 1");
	assert_non_null(v);
	v[strlen("\"version\": ")] = '2';
	spill(r->snap, "manifest.json", m, len);
	assert_restore_refused(r, -EINVAL, "format version", NULL);
	free(m);
}

static void test_restore_of_a_cpuid_feature_this_host_lacks_is_not_supported(void **state)
{
	struct rig *r = *state;
	const struct host lacks_erms = { .cpuid7_ebx_lacking = CPUID7_EBX_ERMS | CPUID7_EBX_AVX2 };

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &lacks_erms);
	assert_restore_refused(r, -ENOTSUP, "CPUID.(EAX=0x7,ECX=0):EBX bit 9", "vcpu0");
}

static void test_restore_of_an_msr_this_host_refuses_is_not_supported(void **state)
{
	struct rig *r = *state;
	const struct host lacks_lstar = { .msr_lacking = MSR_LSTAR };

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &lacks_lstar);
	assert_restore_refused(r, -ENOTSUP, "MSR 0xc0000082", "vcpu0");
}

static void test_restore_of_a_tsc_faster_than_this_host_can_run_is_not_supported(void **state)
{
	struct rig *r = *state;
	const struct host slow = { .tsc_khz = 2000000, .tsc_scaling_lacking = true };

	saved_a_and_built_b(r, NR_VCPUS, RAM, DEVS_STD, &slow);
	assert_restore_refused(r, -ENOTSUP, "2500000 kHz", "TSC");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_snapshot_of_a_running_vm_restores_every_register_device_clock_and_byte),
		T(test_restored_devices_start_after_the_vcpus_are_placed_and_before_guest_ready),
		T(test_a_restored_device_that_cannot_start_stops_the_vm_before_guest_ready),
		T(test_snapshot_keeps_every_msr_of_a_list_longer_than_one_batch),
		T(test_snapshot_of_a_paused_vm_leaves_it_paused),
		T(test_a_snapshot_saves_the_tsc_as_it_read_when_the_guest_stopped),
		T(test_snapshot_into_an_existing_directory_is_refused_and_writes_nothing),
		T(test_snapshot_of_a_vm_neither_running_nor_paused_is_busy),
		T(test_snapshot_with_a_device_that_cannot_be_saved_is_refused_naming_it),
		T(test_restore_into_another_vcpu_count_is_refused_naming_it),
		T(test_restore_into_another_memory_size_is_refused_naming_it),
		T(test_restore_into_another_device_list_is_refused_naming_the_device),
		T(test_restore_of_a_flipped_byte_in_memory_is_a_checksum_mismatch),
		T(test_restore_of_a_flipped_byte_in_state_is_a_checksum_mismatch),
		T(test_restore_of_a_truncated_state_is_refused_at_every_length),
		T(test_restore_of_a_forged_vcpu_state_is_refused_not_crashed),
		T(test_restore_without_a_manifest_is_refused),
		T(test_restore_of_a_version_2_manifest_is_refused_naming_the_format_version),
		T(test_restore_of_a_cpuid_feature_this_host_lacks_is_not_supported),
		T(test_restore_of_an_msr_this_host_refuses_is_not_supported),
		T(test_restore_of_a_tsc_faster_than_this_host_can_run_is_not_supported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
