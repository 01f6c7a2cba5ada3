#include "vmm/vcpu.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/thread_class.h"
#include "vmm/x86/cpuid.h"
#include "vmm/x86/emulate.h"
#include "vmm/x86/regs.h"

#define VCPU_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu__init_signals(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a kick must interrupt KVM_RUN with EINTR. */
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/* exit_ctx.emulate: emulates the instruction at RIP on this vCPU's registers. */
static int vcpu_emulate(void *opaque, const uint8_t *insn, unsigned len)
{
	struct vcpu *vcpu = opaque;
	struct kvm_vcpu_events events;
	struct kvm_regs regs;
	int vector;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return -errno;
	if (!x86_emulate__insn(insn, len, &regs, &vector))
		return -ENOTSUP;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	if (vector == EMULATE_NO_EXCEPTION)
		return 0;
	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events) < 0)
		return -errno;
	events.exception.injected = 1;
	events.exception.nr = (uint8_t)vector;
	events.exception.has_error_code = 0;
	events.exception.pending = 0;
	return ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &events) < 0 ? -errno : 0;
}

int vcpu__create(struct vcpu *vcpu, const struct vcpu_env *env, unsigned index,
		 const struct kvm_cpuid2 *supported)
{
	size_t cpuid_size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *cpuid;
	int err;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->env = env;
	vcpu->index = index;
	vcpu->exits.pio = env->pio;
	vcpu->exits.mmio = env->mmio;
	if (env->kvm->emulated_cpl0) {
		vcpu->exits.emulate = vcpu_emulate;
		vcpu->exits.emulate_opaque = vcpu;
	}
	vcpu->fd = ioctl(env->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0)
		return -errno;
	vcpu->run = mmap(NULL, (size_t)env->kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		err = -errno;
		vcpu->run = NULL;
		goto err_close_fd;
	}
	cpuid = malloc(cpuid_size);
	if (!cpuid) {
		err = -ENOMEM;
		goto err_unmap_run;
	}
	memcpy(cpuid, supported, cpuid_size);
	cpuid__patch(cpuid, index, env->nr_vcpus);
	err = ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0 ? -errno : 0;
	if (err) {
		free(cpuid);
		goto err_unmap_run;
	}
	vcpu->cpuid = cpuid;
	return 0;

err_unmap_run:
	munmap(vcpu->run, (size_t)env->kvm->vcpu_mmap_size);
	vcpu->run = NULL;
err_close_fd:
	close(vcpu->fd);
	vcpu->fd = -1;
	return err;
}

void vcpu__destroy(struct vcpu *vcpu)
{
	free(vcpu->boot);
	vcpu->boot = NULL;
	free(vcpu->cpuid);
	vcpu->cpuid = NULL;
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->env->kvm->vcpu_mmap_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

int vcpu__set_boot_state(struct vcpu *vcpu, uint64_t entry, uint64_t zero_page)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	x86_regs__long_mode_sregs(&sregs);
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	x86_regs__boot_regs(&regs, entry, zero_page);
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/*
 * The MSRs a reset puts back: those a guest kernel writes (syscall/sysenter
 * entry, PAT, MTRR default type, TSC_AUX, TSC deadline, misc enable) and KVM's
 * paravirtual ones: left set, KVM would go on writing the old kernel's
 * kvmclock, steal time and async page fault data into the new one's memory.
 */
static const uint32_t boot_msrs[] = {
	0x00000174, 0x00000175, 0x00000176,     /* SYSENTER_CS, _ESP, _EIP */
	0xc0000081, 0xc0000082, 0xc0000083,     /* STAR, LSTAR, CSTAR */
	0xc0000084, 0xc0000102, 0xc0000103,     /* SYSCALL_MASK, KERNEL_GS_BASE, TSC_AUX */
	0x00000277, 0x000002ff,                 /* PAT, MTRR_DEF_TYPE */
	0x000001a0, 0x000006e0,                 /* MISC_ENABLE, TSC_DEADLINE */
	0x00000011, 0x00000012,                 /* KVM_WALL_CLOCK, KVM_SYSTEM_TIME */
	0x4b564d00, 0x4b564d01, 0x4b564d02,     /* KVM_WALL_CLOCK_NEW, _SYSTEM_TIME_NEW, ASYNC_PF_EN */
	0x4b564d03, 0x4b564d04, 0x4b564d05,     /* KVM_STEAL_TIME, PV_EOI_EN, POLL_CONTROL */
	0x4b564d06,                             /* KVM_ASYNC_PF_INT */
};
#define VCPU_BOOT_MSRS (sizeof(boot_msrs) / sizeof(boot_msrs[0]))

struct vcpu_boot_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	bool has_xcrs;             /* the host has XSAVE (KVM_GET_XCRS answered) */
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp_state;
	struct kvm_vcpu_events events;
	unsigned nmsrs;            /* how many of boot_msrs KVM has: their values in msrs */
	struct kvm_msr_entry msrs[VCPU_BOOT_MSRS];
};

/* A KVM_GET_MSRS/KVM_SET_MSRS argument with room for n entries after the header. */
#define MSR_BUF(n) union { \
		struct kvm_msrs h; \
		char room[sizeof(struct kvm_msrs) + (n) * sizeof(struct kvm_msr_entry)]; \
	}

/* One ioctl of a boot state save or restore; on failure `*call` names it. */
static int boot_ioctl(struct vcpu *vcpu, unsigned long req, void *arg, const char *name,
		      const char **call)
{
	if (ioctl(vcpu->fd, req, arg) >= 0)
		return 0;
	*call = name;
	return -errno;
}

/* Reads the boot MSRs one at a time: KVM_GET_MSRS stops at the first one the host lacks. */
static void save_boot_msrs(struct vcpu *vcpu, struct vcpu_boot_state *b)
{
	MSR_BUF(1) one;
	unsigned i;

	b->nmsrs = 0;
	for (i = 0; i < VCPU_BOOT_MSRS; i++) {
		memset(&one, 0, sizeof(one));
		one.h.nmsrs = 1;
		one.h.entries[0].index = boot_msrs[i];
		if (ioctl(vcpu->fd, KVM_GET_MSRS, &one) == 1)
			b->msrs[b->nmsrs++] = one.h.entries[0];
	}
}

int vcpu__save_boot_state(struct vcpu *vcpu, const char **call)
{
	struct vcpu_boot_state *b;
	int err;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	err = boot_ioctl(vcpu, KVM_GET_REGS, &b->regs, "KVM_GET_REGS", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_GET_SREGS, &b->sregs, "KVM_GET_SREGS", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_GET_FPU, &b->fpu, "KVM_GET_FPU", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_GET_LAPIC, &b->lapic, "KVM_GET_LAPIC", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_GET_MP_STATE, &b->mp_state, "KVM_GET_MP_STATE", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_GET_VCPU_EVENTS, &b->events, "KVM_GET_VCPU_EVENTS", call);
	if (err) {
		free(b);
		return err;
	}
	b->has_xcrs = ioctl(vcpu->fd, KVM_GET_XCRS, &b->xcrs) == 0;
	save_boot_msrs(vcpu, b);
	free(vcpu->boot);
	vcpu->boot = b;
	return 0;
}

/*
 * KVM finishes an I/O exit at the next KVM_RUN (and would step RIP past the
 * instruction): with immediate_exit it does so and returns at once. 0 or -errno.
 */
static int complete_last_exit(struct vcpu *vcpu)
{
	int err;

	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	err = ioctl(vcpu->fd, KVM_RUN, 0) < 0 && errno != EINTR && errno != EAGAIN ? -errno : 0;
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	return err;
}

int vcpu__restore_boot_state(struct vcpu *vcpu, const char **call)
{
	struct vcpu_boot_state *b = vcpu->boot;
	struct kvm_vcpu_events events;
	struct kvm_lapic_state lapic;
	int n, err;

	if (!b) {
		*call = "none recorded at start";
		return -ENODATA;
	}
	err = complete_last_exit(vcpu);
	if (err) {
		*call = "KVM_RUN (completing the last exit)";
		return err;
	}

	/*
	 * The MSRs first: until KVM's paravirtual ones are off, it may write (steal time's
	 * "preempted") into the old kernel's pages, which hold the new kernel's images now.
	 */
	if (b->nmsrs) {
		MSR_BUF(VCPU_BOOT_MSRS) msrs;

		memset(&msrs, 0, sizeof(msrs));
		msrs.h.nmsrs = b->nmsrs;
		memcpy(msrs.h.entries, b->msrs, b->nmsrs * sizeof(b->msrs[0]));
		n = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
		if (n != (int)b->nmsrs) {
			*call = "KVM_SET_MSRS";
			return n < 0 ? -errno : -EINVAL;   /* KVM refused MSR b->msrs[n] */
		}
	}
	err = boot_ioctl(vcpu, KVM_SET_SREGS, &b->sregs, "KVM_SET_SREGS", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_SET_REGS, &b->regs, "KVM_SET_REGS", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_SET_FPU, &b->fpu, "KVM_SET_FPU", call);
	if (!err && b->has_xcrs)
		err = boot_ioctl(vcpu, KVM_SET_XCRS, &b->xcrs, "KVM_SET_XCRS", call);
	if (err)
		return err;
	lapic = b->lapic;
	err = boot_ioctl(vcpu, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", call);
	if (!err)
		err = boot_ioctl(vcpu, KVM_SET_MP_STATE, &b->mp_state, "KVM_SET_MP_STATE", call);
	if (err)
		return err;
	/* Nothing pending: no exception, interrupt, NMI or SIPI from before the reset. */
	events = b->events;
	events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	return boot_ioctl(vcpu, KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS", call);
}

/* The records of a vCPU state (vcpu__save_state), each one u32 tag, u32 length, the bytes. */
enum {
	VST_CPUID = 1, VST_TSC_KHZ, VST_REGS, VST_SREGS, VST_XSAVE, VST_FPU, VST_XCRS, VST_DEBUGREGS,
	VST_MSRS, VST_LAPIC, VST_EVENTS, VST_MP_STATE, VST_COUNT,
};
#define VCPU_STATE_VERSION 1
#define VCPU_STATE_MAX_MSRS 1024
#define MSR_BATCH 128              /* KVM_GET/SET_MSRS refuse 256 or more at once */
#define MSR_IA32_TSC 0x10

static void put_record(struct state_out *o, uint32_t tag, const void *p, size_t len)
{
	state_out__u32(o, tag);
	state_out__u32(o, (uint32_t)len);
	state_out__bytes(o, p, len);
}

/* One ioctl of a state save; on failure `*call` names it. */
static int save_ioctl(struct vcpu *vcpu, unsigned long req, void *arg, const char *name,
		      const char **call)
{
	if (ioctl(vcpu->fd, req, arg) >= 0)
		return 0;
	*call = name;
	return -errno;
}

/*
 * The MSRs of `list` KVM reads for this vCPU, as (index, value) pairs: a
 * batch read stops at the first MSR this vCPU has not (one its CPUID lacks),
 * which is skipped.
 */
/* `tsc`, read at `read_ns`, as it was at `stopped_ns` on a TSC of `khz`. */
static uint64_t tsc_at(uint64_t tsc, uint64_t read_ns, uint64_t stopped_ns, uint32_t khz)
{
	uint64_t since = read_ns > stopped_ns ? read_ns - stopped_ns : 0;
	uint64_t ticks = (uint64_t)((unsigned __int128)since * khz / 1000000u);

	return ticks < tsc ? tsc - ticks : tsc;
}

/* Every MSR of `list` KVM reads; IA32_TSC taken back to `stopped_ns` (0: as read). */
static int save_msrs(struct vcpu *vcpu, const struct vcpu_msr_list *list, uint64_t stopped_ns,
		     uint32_t khz, struct state_out *o)
{
	struct state_out pairs = { 0 };
	struct kvm_msrs *m;
	unsigned i = 0, n = 0;
	uint64_t t0, t1;
	int got;

	m = calloc(1, sizeof(*m) + list->nr * sizeof(m->entries[0]));
	if (!m)
		return -ENOMEM;
	while (i < list->nr) {
		unsigned j, want = list->nr - i < MSR_BATCH ? list->nr - i : MSR_BATCH;

		memset(m, 0, sizeof(*m) + want * sizeof(m->entries[0]));
		m->nmsrs = want;
		for (j = 0; j < want; j++)
			m->entries[j].index = list->index[i + j];
		t0 = clock__mono_ns();
		got = ioctl(vcpu->fd, KVM_GET_MSRS, m);
		if (got < 0) {
			got = -errno;
			free(m);
			state_out__free(&pairs);
			return got;
		}
		t1 = clock__mono_ns();
		for (j = 0; j < (unsigned)got; j++) {
			uint64_t v = m->entries[j].data;

			if (m->entries[j].index == MSR_IA32_TSC && stopped_ns)
				v = tsc_at(v, t0 + (t1 - t0) / 2, stopped_ns, khz);
			state_out__u32(&pairs, m->entries[j].index);
			state_out__u64(&pairs, v);
		}
		n += (unsigned)got;
		/* Past the one it could not read, if it stopped at one. */
		i += (unsigned)got < want ? (unsigned)got + 1 : (unsigned)got;
	}
	free(m);
	state_out__u32(o, VST_MSRS);
	state_out__u32(o, (uint32_t)(4 + pairs.len));
	state_out__u32(o, n);
	state_out__bytes(o, pairs.buf, pairs.len);
	got = pairs.err;
	state_out__free(&pairs);
	return got;
}

int vcpu__save_state(struct vcpu *vcpu, const struct vcpu_msr_list *msrs, uint64_t stopped_ns,
		     struct state_out *out, const char **call)
{
	struct kvm_debugregs dregs;
	struct kvm_vcpu_events events;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_xcrs xcrs;
	struct kvm_xsave *xsave;
	int err, khz;

	state_out__u32(out, VCPU_STATE_VERSION);
	put_record(out, VST_CPUID, vcpu->cpuid->entries,
		   vcpu->cpuid->nent * sizeof(vcpu->cpuid->entries[0]));
	khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
	if (khz < 0) {
		*call = "KVM_GET_TSC_KHZ";
		return -errno;
	}
	put_record(out, VST_TSC_KHZ, &(uint32_t){ (uint32_t)khz }, 4);
	err = save_ioctl(vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS", call);
	if (!err)
		err = save_ioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", call);
	if (err)
		return err;
	put_record(out, VST_REGS, &regs, sizeof(regs));
	put_record(out, VST_SREGS, &sregs, sizeof(sregs));
	xsave = calloc(1, sizeof(*xsave));
	if (!xsave)
		return -ENOMEM;
	if (ioctl(vcpu->fd, KVM_GET_XSAVE, xsave) == 0) {
		put_record(out, VST_XSAVE, xsave, sizeof(*xsave));
		err = save_ioctl(vcpu, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS", call);
		if (!err)
			put_record(out, VST_XCRS, &xcrs, sizeof(xcrs));
	} else {
		struct kvm_fpu fpu;

		err = save_ioctl(vcpu, KVM_GET_FPU, &fpu, "KVM_GET_FPU", call);
		if (!err)
			put_record(out, VST_FPU, &fpu, sizeof(fpu));
	}
	free(xsave);
	if (!err)
		err = save_ioctl(vcpu, KVM_GET_DEBUGREGS, &dregs, "KVM_GET_DEBUGREGS", call);
	if (err)
		return err;
	put_record(out, VST_DEBUGREGS, &dregs, sizeof(dregs));
	err = save_msrs(vcpu, msrs, stopped_ns, (uint32_t)khz, out);
	if (err) {
		*call = "KVM_GET_MSRS";
		return err;
	}
	err = save_ioctl(vcpu, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC", call);
	if (!err)
		err = save_ioctl(vcpu, KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS", call);
	if (!err)
		err = save_ioctl(vcpu, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", call);
	if (err)
		return err;
	put_record(out, VST_LAPIC, &lapic, sizeof(lapic));
	put_record(out, VST_EVENTS, &events, sizeof(events));
	put_record(out, VST_MP_STATE, &mp, sizeof(mp));
	return out->err;
}

/* A vCPU state's records, found in a snapshot (pointers into it). */
struct vcpu_records {
	const uint8_t *p[VST_COUNT];
	uint32_t len[VST_COUNT];
};

static int parse_records(struct state_in *in, struct vcpu_records *r, char *why, size_t why_len)
{
	static const uint32_t fixed[VST_COUNT] = {
		[VST_TSC_KHZ] = 4, [VST_REGS] = sizeof(struct kvm_regs),
		[VST_SREGS] = sizeof(struct kvm_sregs), [VST_XSAVE] = sizeof(struct kvm_xsave),
		[VST_FPU] = sizeof(struct kvm_fpu), [VST_XCRS] = sizeof(struct kvm_xcrs),
		[VST_DEBUGREGS] = sizeof(struct kvm_debugregs),
		[VST_LAPIC] = sizeof(struct kvm_lapic_state),
		[VST_EVENTS] = sizeof(struct kvm_vcpu_events), [VST_MP_STATE] = sizeof(struct kvm_mp_state),
	};
	static const unsigned required[] = {
		VST_CPUID, VST_TSC_KHZ, VST_REGS, VST_SREGS, VST_DEBUGREGS, VST_MSRS, VST_LAPIC,
		VST_EVENTS, VST_MP_STATE,
	};
	uint32_t version = state_in__u32(in);
	unsigned i;

	memset(r, 0, sizeof(*r));
	if (!in->err && version != VCPU_STATE_VERSION) {
		snprintf(why, why_len, "vCPU state version %u, this rtvmm reads %u", version,
			 VCPU_STATE_VERSION);
		return -EINVAL;
	}
	while (!in->err && in->off < in->len) {
		uint32_t tag = state_in__u32(in), len = state_in__u32(in);

		if (in->err)
			break;
		if (tag == 0 || tag >= VST_COUNT || r->p[tag]) {
			snprintf(why, why_len, "vCPU state record %u %s", tag,
				 tag && tag < VST_COUNT ? "appears twice" : "is unknown");
			return -EINVAL;
		}
		if (len > in->len - in->off || (fixed[tag] && len != fixed[tag])) {
			snprintf(why, why_len, "vCPU state record %u: %u bytes, %s %u", tag, len,
				 fixed[tag] ? "expected" : "left", fixed[tag] ? fixed[tag] :
				 (unsigned)(in->len - in->off));
			return -EINVAL;
		}
		r->p[tag] = in->p + in->off;
		r->len[tag] = len;
		in->off += len;
	}
	if (in->err) {
		snprintf(why, why_len, "vCPU state truncated");
		return -EINVAL;
	}
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!r->p[required[i]]) {
			snprintf(why, why_len, "vCPU state lacks record %u", required[i]);
			return -EINVAL;
		}
	if (!r->p[VST_XSAVE] == !r->p[VST_FPU]) {
		snprintf(why, why_len, "vCPU state needs exactly one of XSAVE and FPU");
		return -EINVAL;
	}
	if (r->len[VST_CPUID] % sizeof(struct kvm_cpuid_entry2) ||
	    r->len[VST_CPUID] / sizeof(struct kvm_cpuid_entry2) > 4096 ||
	    r->len[VST_MSRS] < 4) {
		snprintf(why, why_len, "vCPU state: malformed CPUID or MSR record");
		return -EINVAL;
	}
	return 0;
}

/* Registers of a CPUID leaf (bit 0 EAX .. bit 3 EDX). */
enum { R_EAX = 1, R_EBX = 2, R_ECX = 4, R_EDX = 8 };

/*
 * The CPUID leaves and registers whose bits are features (the others hold ids,
 * counts, sizes and maximum subleaves, which are not compared).
 */
static const struct { uint32_t function, index; bool indexed; unsigned regs; } feature_leaves[] = {
	{ 1, 0, false, R_ECX | R_EDX }, { 6, 0, false, R_EAX },
	{ 7, 0, true, R_EBX | R_ECX | R_EDX }, { 7, 1, true, R_EAX | R_EBX | R_EDX },
	{ 0xd, 1, true, R_EAX }, { 0x14, 0, true, R_EBX | R_ECX },
	{ 0x80000001, 0, false, R_ECX | R_EDX }, { 0x80000007, 0, false, R_EDX },
	{ 0x80000008, 0, false, R_EBX },
};

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid_entry2 *e, unsigned n,
						uint32_t function, uint32_t index, bool indexed)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (e[i].function == function && (!indexed || e[i].index == index))
			return &e[i];
	return NULL;
}

/*
 * -ENOTSUP naming the first feature bit the guest saw that this host does not
 * give the same vCPU (`host`: its CPUID from KVM_GET_SUPPORTED_CPUID as
 * vcpu__create patched it, the monitor's own bits included).
 */
static int check_cpuid(const struct kvm_cpuid_entry2 *saved, unsigned n,
		       const struct kvm_cpuid2 *host, char *why, size_t why_len)
{
	static const char reg[4][4] = { "EAX", "EBX", "ECX", "EDX" };
	unsigned i, r;

	for (i = 0; i < sizeof(feature_leaves) / sizeof(feature_leaves[0]); i++) {
		const struct kvm_cpuid_entry2 *g, *h;
		uint32_t gv[4], hv[4], lack;

		g = find_leaf(saved, n, feature_leaves[i].function, feature_leaves[i].index,
			      feature_leaves[i].indexed);
		if (!g)
			continue;
		h = find_leaf(host->entries, host->nent, g->function, g->index,
			      feature_leaves[i].indexed);
		gv[0] = g->eax, gv[1] = g->ebx, gv[2] = g->ecx, gv[3] = g->edx;
		hv[0] = h ? h->eax : 0, hv[1] = h ? h->ebx : 0, hv[2] = h ? h->ecx : 0;
		hv[3] = h ? h->edx : 0;
		for (r = 0; r < 4; r++) {
			if (!(feature_leaves[i].regs & (1u << r)))
				continue;
			lack = gv[r] & ~hv[r];
			/* Leaf 1 ECX[27] OSXSAVE mirrors the guest's CR4, not the host. */
			if (g->function == 1 && r == 2)
				lack &= ~(1u << 27);
			if (lack) {
				snprintf(why, why_len, "this host's KVM lacks CPUID.(EAX=%#x,ECX=%u):%s "
					 "bit %d, which the guest saw", g->function, g->index, reg[r],
					 __builtin_ctz(lack));
				return -ENOTSUP;
			}
		}
	}
	return 0;
}

/* One ioctl of a state load; on failure `why` names it. */
static int load_ioctl(struct vcpu *vcpu, unsigned long req, const void *src, size_t len,
		      const char *name, char *why, size_t why_len)
{
	void *arg = malloc(len);
	int err = 0;

	if (!arg)
		return -ENOMEM;
	memcpy(arg, src, len);
	if (ioctl(vcpu->fd, req, arg) < 0) {
		err = -errno;
		snprintf(why, why_len, "%s: %s", name, strerror(errno));
	}
	free(arg);
	return err;
}

static int load_msrs(struct vcpu *vcpu, const struct vcpu_records *r, char *why, size_t why_len)
{
	struct state_in in = state_in__of(r->p[VST_MSRS], r->len[VST_MSRS]);
	uint32_t n = state_in__u32(&in), i;
	struct kvm_msrs *m;
	int got;

	if (n > VCPU_STATE_MAX_MSRS || (uint64_t)n * 12 != in.len - 4) {
		snprintf(why, why_len, "vCPU state: MSR record holds %u entries in %u bytes", n,
			 r->len[VST_MSRS]);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	for (i = 0; i < n; i++) {
		m->entries[i].index = state_in__u32(&in);
		m->entries[i].data = state_in__u64(&in);
	}
	got = 0;
	for (i = 0; i < n && got >= 0; i += MSR_BATCH) {
		uint32_t want = n - i < MSR_BATCH ? n - i : MSR_BATCH;
		MSR_BUF(MSR_BATCH) part;

		memset(&part, 0, sizeof(part));
		part.h.nmsrs = want;
		memcpy(part.h.entries, &m->entries[i], want * sizeof(m->entries[0]));
		got = ioctl(vcpu->fd, KVM_SET_MSRS, &part);
		if (got < 0) {
			got = -errno;
			snprintf(why, why_len, "KVM_SET_MSRS: %s", strerror(-got));
		} else if ((uint32_t)got != want) {
			snprintf(why, why_len, "this host's KVM refuses MSR %#x (value %#llx), which the "
				 "guest had", m->entries[i + got].index,
				 (unsigned long long)m->entries[i + got].data);
			got = -ENOTSUP;
		}
	}
	if (got > 0)
		got = 0;
	free(m);
	return got;
}

int vcpu__load_state(struct vcpu *vcpu, struct state_in *in, char *why, size_t why_len)
{
	struct vcpu_records r;
	struct kvm_cpuid2 *cpuid;
	uint32_t khz, nent;
	int err, host_khz;

	err = parse_records(in, &r, why, why_len);
	if (err)
		return err;
	nent = r.len[VST_CPUID] / sizeof(struct kvm_cpuid_entry2);
	cpuid = calloc(1, sizeof(*cpuid) + r.len[VST_CPUID]);
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = nent;
	memcpy(cpuid->entries, r.p[VST_CPUID], r.len[VST_CPUID]);
	err = check_cpuid(cpuid->entries, nent, vcpu->cpuid, why, why_len);
	if (!err && ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0) {
		err = -errno;
		snprintf(why, why_len, "KVM_SET_CPUID2 with the guest's CPUID: %s", strerror(errno));
	}
	if (err) {
		free(cpuid);
		return err;
	}
	free(vcpu->cpuid);
	vcpu->cpuid = cpuid;

	memcpy(&khz, r.p[VST_TSC_KHZ], 4);
	host_khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
	if (host_khz >= 0 && (uint32_t)host_khz != khz &&
	    ioctl(vcpu->fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0) {
		snprintf(why, why_len, "the guest's TSC ran at %u kHz, this host's at %d kHz and KVM "
			 "cannot scale it (%s)", khz, host_khz, strerror(errno));
		return -ENOTSUP;
	}
	/*
	 * Registers, FPU state, segments (APIC base: the LAPIC's mode), LAPIC, MSRs, MP state,
	 * events. The LAPIC before the MSRs: KVM drops a TSC-deadline MSR write while the LAPIC
	 * timer is not in TSC-deadline mode, and KVM_SET_LAPIC entering that mode clears it.
	 */
	err = load_ioctl(vcpu, KVM_SET_REGS, r.p[VST_REGS], r.len[VST_REGS], "KVM_SET_REGS", why,
			 why_len);
	if (!err && r.p[VST_XSAVE])
		err = load_ioctl(vcpu, KVM_SET_XSAVE, r.p[VST_XSAVE], r.len[VST_XSAVE],
				 "KVM_SET_XSAVE", why, why_len);
	if (!err && r.p[VST_XCRS])
		err = load_ioctl(vcpu, KVM_SET_XCRS, r.p[VST_XCRS], r.len[VST_XCRS], "KVM_SET_XCRS",
				 why, why_len);
	if (!err && r.p[VST_FPU])
		err = load_ioctl(vcpu, KVM_SET_FPU, r.p[VST_FPU], r.len[VST_FPU], "KVM_SET_FPU", why,
				 why_len);
	if (!err)
		err = load_ioctl(vcpu, KVM_SET_SREGS, r.p[VST_SREGS], r.len[VST_SREGS],
				 "KVM_SET_SREGS", why, why_len);
	if (!err)
		err = load_ioctl(vcpu, KVM_SET_LAPIC, r.p[VST_LAPIC], r.len[VST_LAPIC],
				 "KVM_SET_LAPIC", why, why_len);
	if (!err)
		err = load_msrs(vcpu, &r, why, why_len);
	if (!err)
		err = load_ioctl(vcpu, KVM_SET_MP_STATE, r.p[VST_MP_STATE], r.len[VST_MP_STATE],
				 "KVM_SET_MP_STATE", why, why_len);
	if (!err)
		err = load_ioctl(vcpu, KVM_SET_VCPU_EVENTS, r.p[VST_EVENTS], r.len[VST_EVENTS],
				 "KVM_SET_VCPU_EVENTS", why, why_len);
	if (!err)
		err = load_ioctl(vcpu, KVM_SET_DEBUGREGS, r.p[VST_DEBUGREGS], r.len[VST_DEBUGREGS],
				 "KVM_SET_DEBUGREGS", why, why_len);
	return err;
}

static void report_stop(struct vcpu *vcpu, const struct exit_stop *stop)
{
	fprintf(stderr, "rtvmm: vcpu%u: %s\n", vcpu->index, stop->why);
	if (stop->dump_regs)
		vcpu__dump(vcpu, stderr);
}

/* Waits until the VM lets its vCPUs enter the guest (vcpus_started returned, or a stop). */
static void vcpu_wait_go(const struct vcpu_env *env)
{
	if (!env->go)
		return;
	pthread_mutex_lock(env->go_lock);
	while (!*env->go)
		pthread_cond_wait(env->go_cond, env->go_lock);
	pthread_mutex_unlock(env->go_lock);
}

/*
 * Parks the vCPU while its VM is paused. Back from a pause, it tells a guest
 * that uses kvmclock that it was stopped (KVM_KVMCLOCK_CTRL: the guest's
 * soft-lockup and RCU-stall watchdogs then ignore the gap); a guest without
 * kvmclock gets EINVAL, which changes nothing.
 */
static void vcpu_park(struct vcpu *vcpu)
{
	const struct vcpu_env *env = vcpu->env;

	/* Parked with its last exit completed: its registers are the guest's whole state. */
	complete_last_exit(vcpu);

	/* Not back from a reboot: the old kernel's kvmclock page is no longer its memory. */
	if (env->park(env->park_opaque) &&
	    (!env->reset_gen || __atomic_load_n(env->reset_gen, __ATOMIC_ACQUIRE) == vcpu->reset_seen))
		ioctl(vcpu->fd, KVM_KVMCLOCK_CTRL, 0);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	const struct vcpu_env *env = vcpu->env;
	struct exit_stop stop;
	char name[16];
	sigset_t set;

	vcpu->tid = (pid_t)syscall(SYS_gettid);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (env->thread_start && env->thread_start(env->opaque, vcpu->index, vcpu->tid))
		vm_ctl__stop(&env->ctl, VM_STOP_ERROR, 1);
	vcpu_wait_go(env);
	/*
	 * Before the sandbox: the vCPU filter has the reset's KVM_SET_* calls, not the reads.
	 * A restored vCPU's boot state was recorded before its snapshot state was loaded.
	 */
	if (env->reset_gen && !vcpu->boot) {
		const char *call = "";
		int err;

		vcpu->reset_seen = __atomic_load_n(env->reset_gen, __ATOMIC_ACQUIRE);
		err = vcpu__save_boot_state(vcpu, &call);
		if (err)
			fprintf(stderr, "rtvmm: vcpu%u: cannot record its boot state (%s: %s): a "
				"guest reset will stop the VM\n", vcpu->index, call, strerror(-err));
	}
	snprintf(name, sizeof(name), "vcpu%u", vcpu->index);
	thread_class__enter(THREAD_CLASS_VCPU, name);

	while (!__atomic_load_n(env->stopping, __ATOMIC_ACQUIRE)) {
		if (env->pause && __atomic_load_n(env->pause, __ATOMIC_SEQ_CST)) {
			vcpu_park(vcpu);
			continue;  /* a stop may have ended the pause: never back into the guest then */
		}
		if (env->reset_gen && __atomic_load_n(env->reset_gen, __ATOMIC_ACQUIRE) != vcpu->reset_seen) {
			const char *call = "";
			int err;

			vcpu->reset_seen = __atomic_load_n(env->reset_gen, __ATOMIC_ACQUIRE);
			err = vcpu__restore_boot_state(vcpu, &call);
			if (err) {
				fprintf(stderr, "rtvmm: vcpu%u: cannot reset to its boot state: %s%s%s\n",
					vcpu->index, call, *call ? ": " : "", strerror(-err));
				vm_ctl__stop(&env->ctl, VM_STOP_ERROR, 1);
				break;
			}
			continue;  /* a stop or another reset may have come meanwhile */
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			int err = errno;

			if (err == EINTR || err == EAGAIN) {
				/* An exchange: a kick that set it again is seen with its pause request. */
				__atomic_exchange_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				if (__atomic_exchange_n(&vcpu->dump_pending, false, __ATOMIC_ACQ_REL))
					vcpu__dump(vcpu, stderr);
				continue;
			}
			memset(&stop, 0, sizeof(stop));
			stop.reason = VM_STOP_ERROR;
			stop.status = 2;
			stop.dump_regs = 1;
			snprintf(stop.why, sizeof(stop.why), "KVM_RUN failed: %s", strerror(err));
			report_stop(vcpu, &stop);
			vm_ctl__stop(&env->ctl, stop.reason, stop.status);
			break;
		}
		if (exit__handle(&vcpu->exits, vcpu->run, &stop) == EXIT_STOP) {
			if (stop.reason == VM_STOP_ERROR || env->verbose)
				report_stop(vcpu, &stop);
			vm_ctl__stop(&env->ctl, stop.reason, stop.status);
			/* A reset the VM restarts in place parks this vCPU (env->pause) instead. */
			if (stop.reason != VM_STOP_REBOOT || !env->reset_gen)
				break;
		}
	}
	return NULL;
}

int vcpu__start(struct vcpu *vcpu)
{
	char name[16];
	int err;

	err = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (err)
		return -err;
	vcpu->started = true;
	snprintf(name, sizeof(name), "vcpu%u", vcpu->index);
	pthread_setname_np(vcpu->thread, name);
	return 0;
}

void vcpu__request_dump(struct vcpu *vcpu)
{
	__atomic_store_n(&vcpu->dump_pending, true, __ATOMIC_RELEASE);
	vcpu__kick(vcpu);
}

void vcpu__kick(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

static void dump_seg(FILE *out, const char *name, const struct kvm_segment *s)
{
	fprintf(out, "  %-3s sel=%04x base=%016llx limit=%08x type=%x dpl=%u p=%u l=%u db=%u\n",
		name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->dpl,
		s->present, s->l, s->db);
}

void vcpu__dump(struct vcpu *vcpu, FILE *out)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_translation tr = { 0 };
	const uint8_t *code;
	unsigned i;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(out, "rtvmm: vcpu%u: cannot read registers: %s\n", vcpu->index, strerror(errno));
		return;
	}
	fprintf(out, "rtvmm: vcpu%u registers:\n", vcpu->index);
	fprintf(out, "  RIP=%016llx RSP=%016llx RFLAGS=%016llx\n", r.rip, r.rsp, r.rflags);
	fprintf(out, "  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n", r.rax, r.rbx, r.rcx, r.rdx);
	fprintf(out, "  RSI=%016llx RDI=%016llx RBP=%016llx R8 =%016llx\n", r.rsi, r.rdi, r.rbp, r.r8);
	fprintf(out, "  R9 =%016llx R10=%016llx R11=%016llx R12=%016llx\n", r.r9, r.r10, r.r11, r.r12);
	fprintf(out, "  R13=%016llx R14=%016llx R15=%016llx\n", r.r13, r.r14, r.r15);
	fprintf(out, "  CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx\n", s.cr0, s.cr2, s.cr3, s.cr4);
	fprintf(out, "  EFER=%016llx APIC_BASE=%016llx\n", s.efer, s.apic_base);
	dump_seg(out, "CS", &s.cs);
	dump_seg(out, "SS", &s.ss);
	dump_seg(out, "DS", &s.ds);
	dump_seg(out, "TR", &s.tr);
	fprintf(out, "  GDT base=%016llx limit=%04x  IDT base=%016llx limit=%04x\n",
		s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
	tr.linear_address = r.rip;
	if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) == 0 && tr.valid &&
	    (code = guest_mem__ptr(vcpu->env->mem, tr.physical_address, 16))) {
		fprintf(out, "  code at RIP (gpa %#llx):", (unsigned long long)tr.physical_address);
		for (i = 0; i < 16; i++)
			fprintf(out, " %02x", code[i]);
		fputc('\n', out);
	}
}
