#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/tables.h"

/* KVM needs three pages below 4 GiB for the TSS and one for the EPT identity map (VMX). */
#define VM_TSS_ADDR          0xFFFBD000ULL
#define VM_IDENTITY_MAP_ADDR 0xFFFBC000ULL

/* A range of guest RAM as the builder wrote it, put back at each reboot in place. */
struct vm_boot_blob {
	uint64_t gpa;
	uint64_t len;
	void *data;
};

static void ctl_request_stop(void *opaque, enum vm_stop_reason reason, int status)
{
	vm__request_stop(opaque, reason, status);
}

int vm__create(struct vm *vm, const char *kvm_path, const struct vm_hooks *hooks, struct err *e)
{
	uint64_t identity = VM_IDENTITY_MAP_ADDR;
	int err;

	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
	vm->stop_efd = -1;
	vm->mem.fd = -1;
	vm->kvm.fd = -1;
	if (hooks)
		vm->hooks = *hooks;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->snapshot_lock, NULL);
	pthread_cond_init(&vm->go_cond, NULL);
	pthread_cond_init(&vm->parked_cond, NULL);
	pthread_cond_init(&vm->resume_cond, NULL);
	vm->state = VM_STATE_CREATED;
	vm->halt_poll_ns = -1;
	vm->rings.vm_fd = -1;
	bus__init(&vm->pio, "pio");
	bus__init(&vm->mmio, "mmio");
	vm->ctl = (struct vm_ctl){ .request_stop = ctl_request_stop, .opaque = vm };

	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0)
		return err__set(e, -errno, "eventfd: %s", strerror(errno));
	err = kvm__open(&vm->kvm, kvm_path, e);
	if (err)
		return err;
	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return err__set(e, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_ADDR) < 0)
		return err__set(e, -errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	if (kvm__cap(&vm->kvm, KVM_CAP_SET_IDENTITY_MAP_ADDR) &&
	    ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return err__set(e, -errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	return 0;
}

/* KVM_CHECK_EXTENSION on the VM fd (what KVM supports for this VM); 0 when not or on error. */
static int vm_cap(const struct vm *vm, long cap)
{
	int r = ioctl(vm->fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

const char *vm_exits__names(unsigned exits, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} order[] = {
		{ KVM_X86_DISABLE_EXITS_HLT, "hlt" },
		{ KVM_X86_DISABLE_EXITS_PAUSE, "pause" },
		{ KVM_X86_DISABLE_EXITS_MWAIT, "mwait" },
		{ KVM_X86_DISABLE_EXITS_CSTATE, "cstate" },
	};
	size_t used = 0;
	unsigned i;

	snprintf(buf, len, "none");
	for (i = 0; i < sizeof(order) / sizeof(order[0]) && used < len; i++)
		if (exits & order[i].bit)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
						 order[i].name);
	return buf;
}

int vm__disable_exits(struct vm *vm, unsigned exits, struct err *e)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_DISABLE_EXITS, .args = { exits } };
	char want[64], lacks[64], has[64];
	unsigned supported;

	vm_exits__names(exits, want, sizeof(want));
	if (exits & ~(unsigned)KVM_X86_DISABLE_VALID_EXITS)
		return err__set(e, -EINVAL, "disable_exits %#x: KVM knows only hlt, pause, mwait and "
				"cstate", exits);
	supported = (unsigned)vm_cap(vm, KVM_CAP_X86_DISABLE_EXITS);
	if (exits & ~supported)
		return err__set(e, -ENOTSUP, "disable_exits %s: KVM lacks KVM_CAP_X86_DISABLE_EXITS "
				"for %s on this host (it can disable: %s; KVM withholds hlt, mwait and "
				"cstate when it mitigates SMT RSB, and mwait when the host's MWAIT is "
				"unusable)", want, vm_exits__names(exits & ~supported, lacks, sizeof(lacks)),
				vm_exits__names(supported & KVM_X86_DISABLE_VALID_EXITS, has, sizeof(has)));
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
		return err__set(e, -errno, "KVM_ENABLE_CAP KVM_CAP_X86_DISABLE_EXITS %s: %s", want,
				strerror(errno));
	vm->disabled_exits = exits;
	return 0;
}

int vm__set_halt_poll(struct vm *vm, unsigned ns, struct err *e)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_HALT_POLL, .args = { ns } };

	if (!vm_cap(vm, KVM_CAP_HALT_POLL))
		return err__set(e, -ENOTSUP, "halt_poll_ns %u: KVM lacks KVM_CAP_HALT_POLL on this "
				"host (the kvm module's halt_poll_ns parameter sets it for every VM "
				"instead)", ns);
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
		return err__set(e, -errno, "KVM_ENABLE_CAP KVM_CAP_HALT_POLL %u ns: %s", ns,
				strerror(errno));
	vm->halt_poll_ns = ns;
	return 0;
}

int vm__setup_memory(struct vm *vm, uint64_t size, struct err *e)
{
	unsigned i;
	int err;

	if (vm->hooks.provide_memory) {
		err = vm->hooks.provide_memory(vm->hooks.opaque, &vm->mem, size, e);
		if (err)
			return err;
	} else {
		err = guest_mem__create(&vm->mem, size);
		if (err)
			return err__set(e, err, "guest RAM (%llu MiB memfd): %s",
					(unsigned long long)(size >> 20), strerror(-err));
	}
	for (i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};

		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return err__set(e, -errno, "KVM_SET_USER_MEMORY_REGION slot %u (gpa %#llx, %llu MiB): %s",
					i, (unsigned long long)r->gpa,
					(unsigned long long)(r->size >> 20), strerror(errno));
	}
	return 0;
}

int vm__dirty_ring(struct vm *vm, uint32_t entries, struct err *e)
{
	if (vm->nr_vcpus)
		return err__set(e, -EBUSY, "dirty_ring %u: KVM takes it only before the first vCPU",
				entries);
	return dirty_ring__enable(&vm->rings, vm->fd, &vm->mem, entries, e);
}

/* exit_ctx.ring_full: the vCPU harvests its own ring. */
static int vcpu_ring_full(void *opaque)
{
	return dirty_ring__harvest(opaque);
}

int vm__dirty_log(struct vm *vm, bool on)
{
	unsigned i;
	int err;

	/* Before the memslots log: nothing fills a ring meanwhile. */
	if (on && vm->rings.entries) {
		err = dirty_ring__start(&vm->rings);
		if (err)
			return err;
	}

	for (i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};

		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return -errno;
	}
	return 0;
}

/* KVM_GET_DIRTY_LOG of every memslot, or'ed into `bits` by memfd offset. */
static int take_kvm_bitmaps(struct vm *vm, uint64_t *bits)
{
	uint64_t *slot_bits = NULL;
	unsigned i;
	int err = 0;

	for (i = 0; i < vm->mem.nr_regions && !err; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		uint64_t pages = r->size / 4096, words = (pages + 63) / 64, w, first = r->fd_offset / 4096;
		struct kvm_dirty_log log = { .slot = i };

		free(slot_bits);
		slot_bits = calloc(words, 8);
		if (!slot_bits)
			return -ENOMEM;
		log.dirty_bitmap = slot_bits;
		if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			err = -errno;
			break;
		}
		for (w = 0; w < words; w++) {
			uint64_t v = slot_bits[w], b;

			while (v) {
				b = (uint64_t)__builtin_ctzll(v);
				v &= v - 1;
				if (w * 64 + b < pages)
					bits[(first + w * 64 + b) / 64] |= 1ull << ((first + w * 64 + b) % 64);
			}
		}
	}
	free(slot_bits);
	return err;
}

int vm__take_dirty(struct vm *vm, uint64_t *bits)
{
	int err = vm->rings.entries ? dirty_ring__take(&vm->rings, bits) : take_kvm_bitmaps(vm, bits);

	/* What the monitor's devices and vhost-user backends wrote, which KVM never saw. */
	if (!err)
		guest_mem__log_take(&vm->mem, bits);
	return err;
}

int vm__setup_irqchip(struct vm *vm, struct err *e)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int err;

	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err__set(e, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	err = irq_routing__init_pc(&vm->irqs, vm->fd, TABLES_IRQ0_IOAPIC_PIN);
	if (err)
		return err__set(e, err, "KVM_SET_GSI_ROUTING: %s", strerror(-err));
	vm->irqs_ready = true;
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
		return err__set(e, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

/* vcpu_env.park: a vCPU thread waits here, out of KVM_RUN, while the VM is paused. */
static bool vm_park(void *opaque)
{
	struct vm *vm = opaque;
	bool waited = false;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause && !vm->stopping) {
		vm->parked++;
		pthread_cond_broadcast(&vm->parked_cond);
		while (vm->pause && !vm->stopping)
			pthread_cond_wait(&vm->resume_cond, &vm->lock);
		vm->parked--;
		waited = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return waited;
}

static struct kvm_cpuid2 *get_supported_cpuid(struct vm *vm)
{
	unsigned nent = 64;
	struct kvm_cpuid2 *cpuid;

	for (;;) {
		cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(cpuid->entries[0]));
		if (!cpuid)
			return NULL;
		cpuid->nent = nent;
		if (ioctl(vm->kvm.fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			return cpuid;
		free(cpuid);
		if (errno != E2BIG || nent >= 4096)
			return NULL;
		nent *= 2;
	}
}

/* The MSRs KVM saves and restores for a guest (KVM_GET_MSR_INDEX_LIST), for snapshots. */
static int read_msr_list(struct vm *vm, struct err *e)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;

	if (ioctl(vm->kvm.fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return err__set(e, -errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	if (!list)
		return err__set(e, -ENOMEM, "out of memory for %u MSR indices", probe.nmsrs);
	list->nmsrs = probe.nmsrs;
	if (probe.nmsrs && ioctl(vm->kvm.fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		free(list);
		return err__set(e, -errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	}
	vm->msrs.nr = list->nmsrs;
	vm->msrs.index = malloc((list->nmsrs + 1) * sizeof(uint32_t));
	if (vm->msrs.index)
		memcpy(vm->msrs.index, list->indices, list->nmsrs * sizeof(uint32_t));
	free(list);
	return vm->msrs.index ? 0 : err__set(e, -ENOMEM, "out of memory for the MSR list");
}

int vm__create_vcpus(struct vm *vm, unsigned nr, struct err *e)
{
	struct kvm_cpuid2 *cpuid;
	unsigned i;
	int err = 0;

	if (nr == 0 || nr > vm->kvm.max_vcpus)
		return err__set(e, -EINVAL, "--vcpus %u: must be between 1 and %u (KVM_CAP_MAX_VCPUS)",
				nr, vm->kvm.max_vcpus);
	cpuid = get_supported_cpuid(vm);
	if (!cpuid)
		return err__set(e, -errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	/*
	 * TSC-deadline (leaf 1 ECX[24]) is KVM's to emulate in its in-kernel LAPIC, but kernels
	 * before 6.14 leave it out of KVM_GET_SUPPORTED_CPUID (api.rst, "Known KVM API problems"):
	 * the monitor sets it when KVM_CAP_TSC_DEADLINE_TIMER says KVM has it and the LAPIC is KVM's.
	 */
	if (vm->irqs_ready && kvm__cap(&vm->kvm, KVM_CAP_TSC_DEADLINE_TIMER))
		for (i = 0; i < cpuid->nent; i++)
			if (cpuid->entries[i].function == 1)
				cpuid->entries[i].ecx |= 1u << 24;
	vm->vcpus = calloc(nr, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		err = err__set(e, -ENOMEM, "out of memory for %u vCPUs", nr);
		goto out_free_cpuid;
	}
	vm->nr_vcpus = nr;
	vm->vcpu_env = (struct vcpu_env){
		.vm_fd = vm->fd, .kvm = &vm->kvm, .pio = &vm->pio, .mmio = &vm->mmio, .mem = &vm->mem,
		.nr_vcpus = nr, .ctl = vm->ctl, .stopping = &vm->stopping, .verbose = vm->verbose,
		.thread_start = vm->hooks.vcpu_thread_start, .opaque = vm->hooks.opaque,
		.pause = &vm->pause, .park = vm_park, .park_opaque = vm,
		.reset_gen = vm->restart_on_reboot ? &vm->reset_gen : NULL,
	};
	if (vm->hooks.vcpus_started || vm->hooks.guest_ready) {
		vm->vcpu_env.go_lock = &vm->lock;
		vm->vcpu_env.go_cond = &vm->go_cond;
		vm->vcpu_env.go = &vm->go;
	}
	for (i = 0; i < nr; i++)
		vm->vcpus[i].fd = -1;
	for (i = 0; i < nr; i++) {
		err = vcpu__create(&vm->vcpus[i], &vm->vcpu_env, i, cpuid);
		if (err) {
			err = err__set(e, err, "vcpu%u: %s", i, strerror(-err));
			break;
		}
		if (vm->rings.entries) {
			err = dirty_ring__add_vcpu(&vm->rings, i, nr, vm->vcpus[i].fd);
			if (err) {
				err = err__set(e, err, "vcpu%u: mapping its dirty ring: %s", i,
					       strerror(-err));
				break;
			}
			vm->vcpus[i].exits.ring_full = vcpu_ring_full;
			vm->vcpus[i].exits.ring_opaque = &vm->rings.rings[i];
		}
	}
	if (!err)
		err = read_msr_list(vm, e);
out_free_cpuid:
	free(cpuid);
	return err;
}

int vm__seal(struct vm *vm, struct err *e)
{
	const struct { const char *what; uint64_t gpa, len; } ranges[] = {
		{ "low memory (boot GDT, page tables, zero page, command line, ACPI and MP tables)",
		  0, LAYOUT_BIOS_END },
		{ "kernel", vm->boot.kernel_start, vm->boot.kernel_end - vm->boot.kernel_start },
		{ "initrd", vm->boot.initrd_start, vm->boot.initrd_size },
	};
	unsigned i;

	if (!vm->restart_on_reboot)
		return 0;
	for (i = 0; i < VM_NR_IRQCHIPS; i++) {
		vm->chips[i].chip_id = i;
		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &vm->chips[i]) < 0)
			return err__set(e, -errno, "KVM_GET_IRQCHIP %u (for a reboot in place): %s",
					i, strerror(errno));
	}
	if (ioctl(vm->fd, KVM_GET_PIT2, &vm->pit) < 0)
		return err__set(e, -errno, "KVM_GET_PIT2 (for a reboot in place): %s", strerror(errno));
	vm->blobs = calloc(sizeof(ranges) / sizeof(ranges[0]), sizeof(*vm->blobs));
	if (!vm->blobs)
		return err__set(e, -ENOMEM, "out of memory for the boot images");
	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		struct vm_boot_blob *b = &vm->blobs[vm->nr_blobs];
		const void *src;

		if (!ranges[i].len)
			continue;
		src = guest_mem__ptr(&vm->mem, ranges[i].gpa, ranges[i].len);
		b->data = src ? malloc(ranges[i].len) : NULL;
		if (!b->data)
			return err__set(e, src ? -ENOMEM : -EFAULT, "keeping the %s (%llu KiB at %#llx) for "
					"a reboot in place: %s", ranges[i].what,
					(unsigned long long)(ranges[i].len >> 10),
					(unsigned long long)ranges[i].gpa,
					src ? "out of memory" : "not in guest RAM");
		memcpy(b->data, src, ranges[i].len);
		b->gpa = ranges[i].gpa;
		b->len = ranges[i].len;
		vm->nr_blobs++;
	}
	vm->sealed = true;
	return 0;
}

uint64_t vm__reboots(struct vm *vm)
{
	return __atomic_load_n(&vm->reboots, __ATOMIC_RELAXED);
}

/*
 * The machine as vm__seal found it, every vCPU parked: devices, irqchip, PIT,
 * boot images, clock. -errno with `*call` naming the ioctl that failed.
 */
static int reset_machine(struct vm *vm, const char **call)
{
	struct kvm_clock_data clock = { .clock = 0 };
	struct kvm_pit_state2 pit = vm->pit;
	unsigned i;

	/* Devices first: lines they lower land in the irqchip state restored next. */
	device_list__reset(&vm->devices);
	for (i = 0; i < VM_NR_IRQCHIPS; i++) {
		struct kvm_irqchip chip = vm->chips[i];

		*call = "KVM_SET_IRQCHIP";
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip) < 0)
			return -errno;
	}
	*call = "KVM_SET_PIT2";
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0)
		return -errno;
	for (i = 0; i < vm->nr_blobs; i++) {
		memcpy(guest_mem__ptr(&vm->mem, vm->blobs[i].gpa, vm->blobs[i].len), vm->blobs[i].data,
		       vm->blobs[i].len);
		guest_mem__log_write(&vm->mem, vm->blobs[i].gpa, vm->blobs[i].len);
	}
	/* Guest time starts again from 0, as for a new VM. */
	*call = "KVM_SET_CLOCK";
	if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		return -errno;
	return 0;
}

/*
 * A reboot in place, on vm__run's thread: waits until every vCPU parked, resets
 * the machine, then lets each vCPU reset itself and enter the guest again.
 */
static void reboot_in_place(struct vm *vm)
{
	const char *call = "";
	uint64_t n;
	int err;

	pthread_mutex_lock(&vm->lock);
	while (vm->parked < vm->nr_vcpus && !vm->stopping)
		pthread_cond_wait(&vm->parked_cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
		return;
	err = reset_machine(vm, &call);
	if (err) {
		fprintf(stderr, "rtvmm: guest reset: cannot reset the machine (%s: %s): stopping the "
			"VM\n", call, strerror(-err));
		vm__request_stop(vm, VM_STOP_ERROR, 1);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STATE_PAUSED)
		vm->paused_ns += clock__mono_ns() - vm->paused_since;
	vm->clock_frozen = false;
	__atomic_add_fetch(&vm->reset_gen, 1, __ATOMIC_RELEASE);
	n = __atomic_add_fetch(&vm->reboots, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&vm->reboot_pending, false, __ATOMIC_RELEASE);
	if (!vm->stopping)
		__atomic_store_n(&vm->state, VM_STATE_RUNNING, __ATOMIC_RELAXED);
	__atomic_store_n(&vm->pause, false, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->resume_cond);
	pthread_cond_broadcast(&vm->parked_cond);
	pthread_mutex_unlock(&vm->lock);
	fprintf(stderr, "rtvmm: guest reset: the VM restarts in place (reboot %llu)\n",
		(unsigned long long)n);
}

/* Parks every vCPU and wakes vm__run's thread to reset the machine. */
static void request_reboot(struct vm *vm)
{
	uint64_t one = 1;
	unsigned i;

	pthread_mutex_lock(&vm->lock);
	if (vm->stopping || vm->reboot_pending) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	__atomic_store_n(&vm->reboot_pending, true, __ATOMIC_RELEASE);
	__atomic_store_n(&vm->pause, true, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->parked_cond); /* a pause under way gives up */
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__kick(&vm->vcpus[i]);
	if (write(vm->stop_efd, &one, sizeof(one)) < 0)
		return;
}

static void irq_set(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	ioctl(vm->fd, KVM_IRQ_LINE, &irq);
}

struct irq_sink vm__irq_sink(struct vm *vm, unsigned gsi)
{
	return (struct irq_sink){ .set = irq_set, .opaque = vm, .gsi = gsi };
}

/* Lets the vCPU threads enter the guest (or see the stop and end). */
static void open_gate(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->go = true;
	pthread_cond_broadcast(&vm->go_cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm__request_stop(struct vm *vm, enum vm_stop_reason reason, int status)
{
	uint64_t one = 1;
	unsigned i;

	if (reason == VM_STOP_REBOOT && vm->restart_on_reboot && vm->sealed) {
		request_reboot(vm);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	/* A vCPU still waiting to enter the guest must see the stop. */
	vm->go = true;
	pthread_cond_broadcast(&vm->go_cond);
	if (vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->stop_reason = reason;
	vm->stop_status = status;
	__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
	/* Parked vCPUs wake to stop, a pause under way gives up; a pause ends here. */
	if (vm->state == VM_STATE_PAUSED)
		vm->paused_ns += clock__mono_ns() - vm->paused_since;
	__atomic_store_n(&vm->state, VM_STATE_SHUTDOWN, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&vm->resume_cond);
	pthread_cond_broadcast(&vm->parked_cond);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__kick(&vm->vcpus[i]);
	if (write(vm->stop_efd, &one, sizeof(one)) < 0)
		return;
}

int vm__power_button(struct vm *vm)
{
	if (!vm->acpi_pm)
		return -ENODEV;
	acpi_pm__press_power_button(vm->acpi_pm);
	return 0;
}

static void drain(int efd)
{
	uint64_t cnt;

	if (read(efd, &cnt, sizeof(cnt)) < 0)
		return;     /* EAGAIN: another wake-up took it */
}

/*
 * Waits for a stop request or a terminating signal (blocked in every thread,
 * read here); carries out reboots in place meanwhile.
 */
static void wait_for_stop(struct vm *vm, int sfd)
{
	struct pollfd fds[2] = {
		{ .fd = vm->stop_efd, .events = POLLIN },
		{ .fd = sfd, .events = POLLIN },
	};
	struct signalfd_siginfo si;
	uint64_t deadline = 0;     /* when the SIGTERM grace runs out (now_ns); 0: none */

	while (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		uint64_t now = clock__mono_ns();
		int timeout_ms = -1, n;

		if (__atomic_load_n(&vm->reboot_pending, __ATOMIC_ACQUIRE)) {
			reboot_in_place(vm);
			continue;
		}
		if (deadline && now >= deadline) {
			fprintf(stderr, "rtvmm: the guest did not power off within %u s of the power "
				"button: stopping the VM\n", vm->shutdown_grace_s);
			vm__request_stop(vm, VM_STOP_SIGNAL, 128 + SIGTERM);
			break;
		}
		if (deadline)
			timeout_ms = (int)((deadline - now + 999999) / 1000000);
		n = poll(fds, sfd >= 0 ? 2 : 1, timeout_ms);
		if (n < 0 && errno != EINTR)
			break;
		/* A reboot request wakes the poll too: take its count (a stop ends the loop). */
		if (n > 0 && (fds[0].revents & POLLIN))
			drain(vm->stop_efd);
		if (n > 0 && sfd >= 0 && (fds[1].revents & POLLIN) &&
		    read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			unsigned i;

			if (si.ssi_signo == SIGUSR2) {
				for (i = 0; i < vm->nr_vcpus; i++)
					vcpu__request_dump(&vm->vcpus[i]);
				continue;
			}
			/* The first SIGTERM asks the guest to shut down in order, if it can be asked. */
			if (si.ssi_signo == SIGTERM && !deadline && vm->shutdown_grace_s &&
			    !vm__power_button(vm)) {
				fprintf(stderr, "rtvmm: %s: pressed the ACPI power button; the VM stops "
					"in %u s unless the guest powers off first (SIGTERM again or "
					"SIGINT: now)\n", strsignal(SIGTERM), vm->shutdown_grace_s);
				deadline = clock__mono_ns() + vm->shutdown_grace_s * 1000000000ull;
				continue;
			}
			if (si.ssi_signo == SIGTERM && deadline)
				fprintf(stderr, "rtvmm: %s again during the shutdown grace: stopping the "
					"VM now\n", strsignal(SIGTERM));
			else
				fprintf(stderr, "rtvmm: %s: stopping the VM\n",
					strsignal((int)si.ssi_signo));
			vm__request_stop(vm, VM_STOP_SIGNAL, 128 + (int)si.ssi_signo);
		}
	}
}

/* The first signal of `set` queued for this process or thread (blocked, not yet read), or 0. */
static int stop_signal_pending(const sigset_t *set)
{
	sigset_t pending;
	int sig;

	if (sigpending(&pending) < 0)
		return 0;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGUSR2 && sigismember(set, sig) && sigismember(&pending, sig))
			return sig;
	return 0;
}

void vm__stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR2); /* print every vCPU's registers, keep running */
}

/*
 * Thaws the devices that loaded a saved state (a restore, a migration) now
 * that the guest is about to run: 0, or -errno, said here (the VM must stop).
 */
static int thaw_loaded(struct vm *vm)
{
	const struct device *bad = NULL;
	int err;

	if (!vm->devices_loaded)
		return 0;
	vm->devices_loaded = false;
	err = device_list__thaw(&vm->devices, &bad);
	if (err)
		fprintf(stderr, "rtvmm: device %s cannot start from the saved state: %s: stopping the "
			"VM\n", bad->name, strerror(-err));
	return err;
}

int vm__run(struct vm *vm)
{
	sigset_t term, old;
	unsigned i;
	int sfd, err = 0;

	vm__stop_signals(&term);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	sfd = signalfd(-1, &term, SFD_CLOEXEC);

	/* Without a gate (no hooks) each vCPU enters the guest as it starts: the devices start first. */
	if (!vm->vcpu_env.go && thaw_loaded(vm)) {
		vm__request_stop(vm, VM_STOP_ERROR, 1);
		err = -ECANCELED;
	}
	for (i = 0; i < vm->nr_vcpus && !err; i++) {
		err = vcpu__start(&vm->vcpus[i]);
		if (err) {
			fprintf(stderr, "rtvmm: vcpu%u: cannot start thread: %s\n", i, strerror(-err));
			vm__request_stop(vm, VM_STOP_ERROR, 1);
		}
	}
	if (!err && vm->hooks.vcpus_started && vm->hooks.vcpus_started(vm->hooks.opaque, vm)) {
		vm__request_stop(vm, VM_STOP_ERROR, 1);
		err = -ECANCELED;
	}
	/*
	 * Not when a stop came first (a vCPU that could not start, a signal still
	 * queued: stop signals are blocked until wait_for_stop reads them): the
	 * loaded devices start, and only once they did may the hook commit to
	 * running the guest (a migration's source lets go of it).
	 */
	if (!err && (vm->hooks.guest_ready || vm->devices_loaded)) {
		int sig = stop_signal_pending(&term);

		if (sig) {
			fprintf(stderr, "rtvmm: %s came before the guest ran: stopping the VM\n",
				strsignal(sig));
			vm__request_stop(vm, VM_STOP_SIGNAL, 128 + sig);
		} else if (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE) &&
			   (thaw_loaded(vm) || (vm->hooks.guest_ready &&
						vm->hooks.guest_ready(vm->hooks.ready_opaque)))) {
			vm__request_stop(vm, VM_STOP_ERROR, 1);
		}
	}
	open_gate(vm);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STATE_CREATED)
		__atomic_store_n(&vm->state, VM_STATE_RUNNING, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&vm->lock);
	if (!err)
		wait_for_stop(vm, sfd);
	vm__request_stop(vm, VM_STOP_ERROR, 1);
	for (i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	}
	/* Devices finish what the guest left them (console output) before the stop report. */
	pthread_mutex_lock(&vm->snapshot_lock);  /* a snapshot under way reads them */
	device_list__stop(&vm->devices);
	pthread_mutex_unlock(&vm->snapshot_lock);
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return vm->stop_status;
}

void vm__destroy(struct vm *vm)
{
	unsigned i;

	/* vCPUs are stopped: devices go in reverse order (NICs' rings stopped, backends told). */
	vm->acpi_pm = NULL;
	device_list__destroy(&vm->devices);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	dirty_ring__destroy(&vm->rings);
	free(vm->msrs.index);
	vm->msrs = (struct vcpu_msr_list){ 0 };
	for (i = 0; i < vm->nr_blobs; i++)
		free(vm->blobs[i].data);
	free(vm->blobs);
	vm->blobs = NULL;
	vm->nr_blobs = 0;
	vm->nr_vcpus = 0;
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	guest_mem__destroy(&vm->mem);
	kvm__close(&vm->kvm);
	if (vm->irqs_ready)
		irq_routing__exit(&vm->irqs);
	bus__exit(&vm->pio);
	bus__exit(&vm->mmio);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	vm->stop_efd = -1;
	pthread_cond_destroy(&vm->resume_cond);
	pthread_cond_destroy(&vm->parked_cond);
	pthread_cond_destroy(&vm->go_cond);
	pthread_mutex_destroy(&vm->snapshot_lock);
	pthread_mutex_destroy(&vm->lock);
}

const char *vm_state__name(enum vm_state state)
{
	switch (state) {
	case VM_STATE_CREATED:
		return "Created";
	case VM_STATE_RUNNING:
		return "Running";
	case VM_STATE_PAUSED:
		return "Paused";
	case VM_STATE_SHUTDOWN:
		return "Shutdown";
	}
	return "?";
}

enum vm_state vm__state(struct vm *vm)
{
	return __atomic_load_n(&vm->state, __ATOMIC_RELAXED);
}

int vm__pause(struct vm *vm)
{
	unsigned i;
	int err = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_STATE_RUNNING || vm->pause || vm->reboot_pending) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	__atomic_store_n(&vm->pause, true, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->lock);
	/* Out of KVM_RUN, a halted vCPU too: the signal ends KVM's wait for an interrupt. */
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->parked < vm->nr_vcpus && !vm->stopping && !vm->reboot_pending && vm->pause)
		pthread_cond_wait(&vm->parked_cond, &vm->lock);
	if (vm->reboot_pending || !vm->pause) {
		/* A reboot took the pause over: it keeps the vCPUs parked, then lets them run. */
		err = -EBUSY;
	} else if (vm->stopping) {
		__atomic_store_n(&vm->pause, false, __ATOMIC_SEQ_CST);
		err = -EBUSY;
	} else {
		vm->paused_since = clock__mono_ns();
		/*
		 * Guest time stands still while paused, as in QEMU and cloud-hypervisor:
		 * kvmclock is read here and written back at resume (the TSC runs on).
		 * Without it (KVM lacks the call) the guest finds its clock moved on.
		 */
		vm->clock_frozen = ioctl(vm->fd, KVM_GET_CLOCK, &vm->paused_clock) == 0;
		__atomic_store_n(&vm->state, VM_STATE_PAUSED, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&vm->lock);
	return err;
}

int vm__resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_STATE_PAUSED || vm->reboot_pending) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->paused_ns += clock__mono_ns() - vm->paused_since;
	if (vm->clock_frozen) {
		struct kvm_clock_data clock = { .clock = vm->paused_clock.clock };

		ioctl(vm->fd, KVM_SET_CLOCK, &clock);
		vm->clock_frozen = false;
	}
	__atomic_store_n(&vm->pause, false, __ATOMIC_SEQ_CST);
	__atomic_store_n(&vm->state, VM_STATE_RUNNING, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&vm->resume_cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

uint64_t vm__paused_ns(struct vm *vm)
{
	uint64_t ns;

	pthread_mutex_lock(&vm->lock);
	ns = vm->paused_ns;
	if (vm->state == VM_STATE_PAUSED)
		ns += clock__mono_ns() - vm->paused_since;
	pthread_mutex_unlock(&vm->lock);
	return ns;
}
