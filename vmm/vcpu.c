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
	free(cpuid);
	if (err)
		goto err_unmap_run;
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
	/*
	 * KVM finishes an I/O exit at the next KVM_RUN (and would step RIP past the
	 * instruction): with immediate_exit it does so and returns at once.
	 */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	err = ioctl(vcpu->fd, KVM_RUN, 0) < 0 && errno != EINTR && errno != EAGAIN ? -errno : 0;
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
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
	/* Before the sandbox: the vCPU filter has the reset's KVM_SET_* calls, not the reads. */
	if (env->reset_gen) {
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
