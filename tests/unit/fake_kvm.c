#include "fake_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RUN_SIZE 4096

int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);

enum kind { OBJ_SYSTEM, OBJ_VM, OBJ_VCPU };

/* A descriptor the model made, known by its memfd's inode (fd numbers get reused). */
struct obj {
	enum kind kind;
	dev_t dev;
	ino_t ino;
	unsigned index;                /* vCPU */
};

struct step {
	int err;
	struct kvm_run exit;
};

struct vcpu_model {
	struct kvm_run *run;           /* the model's own view of the vCPU's kvm_run page */
	struct fake_kvm_vcpu st;
	bool cpuid_set;
	bool entered;                  /* a KVM_RUN went into the guest (not ended by immediate_exit) */
	struct step steps[16];
	unsigned head, tail;
	unsigned runs;
	struct kvm_dirty_gfn *ring;    /* its dirty ring, as KVM maps it at KVM_DIRTY_LOG_PAGE_OFFSET */
	uint32_t dirty_index, reset_index;
};

/* KVM keeps this many entries of a ring spare, 64 plus 512 on an Intel host logging with PML
 * (as here): it exits as full with fewer free, and refuses a smaller ring. */
#define RING_RSVD 576u
#define RING_OFFSET ((off_t)KVM_DIRTY_LOG_PAGE_OFFSET * 4096)

struct fake_kvm fake_kvm;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int dev_fd = -1;
static char dev_path[64];
static struct obj objs[64];
static unsigned nr_objs;
static struct vcpu_model vcpus[FAKE_KVM_MAX_VCPUS];
static int watched_fd = -1;
static unsigned fail_at, fail_err;

static const struct { unsigned long req; const char *name; } names[] = {
#define N(r) { r, #r }
	N(KVM_GET_API_VERSION), N(KVM_CHECK_EXTENSION), N(KVM_GET_VCPU_MMAP_SIZE), N(KVM_ENABLE_CAP),
	N(KVM_CREATE_VM), N(KVM_SET_TSS_ADDR), N(KVM_SET_IDENTITY_MAP_ADDR),
	N(KVM_SET_USER_MEMORY_REGION), N(KVM_CREATE_IRQCHIP), N(KVM_SET_GSI_ROUTING),
	N(KVM_CREATE_PIT2), N(KVM_GET_SUPPORTED_CPUID), N(KVM_CREATE_VCPU), N(KVM_SET_CPUID2),
	N(KVM_GET_REGS), N(KVM_SET_REGS), N(KVM_GET_SREGS), N(KVM_SET_SREGS), N(KVM_RUN),
	N(KVM_IRQFD), N(KVM_IOEVENTFD), N(KVM_SIGNAL_MSI), N(KVM_IRQ_LINE), N(KVM_TRANSLATE),
	N(KVM_KVMCLOCK_CTRL),
	N(KVM_GET_CLOCK),
	N(KVM_SET_CLOCK),
	N(KVM_GET_IRQCHIP), N(KVM_SET_IRQCHIP), N(KVM_GET_PIT2), N(KVM_SET_PIT2),
	N(KVM_GET_FPU), N(KVM_SET_FPU), N(KVM_GET_XCRS), N(KVM_SET_XCRS), N(KVM_GET_LAPIC),
	N(KVM_SET_LAPIC), N(KVM_GET_MP_STATE), N(KVM_SET_MP_STATE), N(KVM_GET_VCPU_EVENTS),
	N(KVM_SET_VCPU_EVENTS), N(KVM_GET_MSRS), N(KVM_SET_MSRS), N(KVM_GET_MSR_INDEX_LIST),
	N(KVM_GET_XSAVE), N(KVM_SET_XSAVE), N(KVM_GET_DEBUGREGS), N(KVM_SET_DEBUGREGS),
	N(KVM_GET_TSC_KHZ), N(KVM_SET_TSC_KHZ), N(KVM_GET_DIRTY_LOG), N(KVM_RESET_DIRTY_RINGS),
#undef N
};

const char *fake_kvm__name(unsigned long req)
{
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].req == req)
			return names[i].name;
	return "?";
}

int fake_kvm__first(unsigned long req)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_calls; i++)
		if (fake_kvm.calls[i] == req)
			return (int)i;
	return -1;
}

__attribute__((format(printf, 1, 2)))
static void violation(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fake_kvm.why, sizeof(fake_kvm.why), fmt, ap);
	va_end(ap);
	fake_kvm.violations++;
}

/* A new descriptor of `kind`: a memfd of `size` bytes, registered by inode. */
static int obj_new(enum kind kind, unsigned index, off_t size)
{
	struct stat st;
	int fd;

	if (nr_objs == sizeof(objs) / sizeof(objs[0]))
		return -ENFILE;
	fd = memfd_create("fake-kvm", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((size && ftruncate(fd, size) < 0) || fstat(fd, &st) < 0) {
		close(fd);
		return -EIO;
	}
	objs[nr_objs++] = (struct obj){ kind, st.st_dev, st.st_ino, index };
	return fd;
}

static struct obj *obj_of(int fd)
{
	struct stat st;
	unsigned i;

	if (fstat(fd, &st) < 0)
		return NULL;
	for (i = 0; i < nr_objs; i++)
		if (objs[i].dev == st.st_dev && objs[i].ino == st.st_ino)
			return &objs[i];
	return NULL;
}

void fake_kvm__reset(void)
{
	unsigned i;

	pthread_mutex_lock(&lock);
	if (dev_fd < 0) {
		dev_fd = obj_new(OBJ_SYSTEM, 0, 0);
		snprintf(dev_path, sizeof(dev_path), "/proc/self/fd/%d", dev_fd);
	}
	nr_objs = 1;
	for (i = 0; i < FAKE_KVM_MAX_VCPUS; i++) {
		if (vcpus[i].run)
			munmap(vcpus[i].run, RUN_SIZE);
		if (vcpus[i].ring)
			munmap(vcpus[i].ring, fake_kvm.ring_bytes);
	}
	memset(vcpus, 0, sizeof(vcpus));
	memset(&fake_kvm, 0, sizeof(fake_kvm));
	fake_kvm.max_halt_poll_ns = -1;
	watched_fd = -1;
	fail_at = 0;
	pthread_mutex_unlock(&lock);
}

const char *fake_kvm__path(void)
{
	if (dev_fd < 0)
		fake_kvm__reset();
	return dev_path;
}

int fake_kvm__create_vm(bool irqchip)
{
	int sys, vm;

	sys = open(fake_kvm__path(), O_RDWR | O_CLOEXEC);
	if (sys < 0)
		return -errno;
	vm = ioctl(sys, KVM_CREATE_VM, 0);
	if (vm < 0)
		vm = -errno;
	close(sys);
	if (vm >= 0 && irqchip && ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		close(vm);
		return -errno;
	}
	return vm;
}

void fake_kvm__fail(unsigned nth, int err)
{
	pthread_mutex_lock(&lock);
	fail_at = nth ? fake_kvm.nr_calls + nth : 0;
	fail_err = (unsigned)err;
	pthread_mutex_unlock(&lock);
}

void fake_kvm__watch(int fd)
{
	watched_fd = fd;
}

static void queue(unsigned index, const struct step *s)
{
	struct vcpu_model *v = &vcpus[index];

	pthread_mutex_lock(&lock);
	if (v->tail - v->head < sizeof(v->steps) / sizeof(v->steps[0]))
		v->steps[v->tail++ % (sizeof(v->steps) / sizeof(v->steps[0]))] = *s;
	else
		violation("vcpu%u: more than 16 KVM_RUN steps queued", index);
	pthread_mutex_unlock(&lock);
}

void fake_kvm__queue_exit(unsigned index, const struct kvm_run *exit)
{
	struct step s = { .exit = *exit };

	queue(index, &s);
}

void fake_kvm__queue_errno(unsigned index, int err)
{
	struct step s = { .err = err };

	queue(index, &s);
}

unsigned fake_kvm__runs(unsigned index)
{
	return __atomic_load_n(&vcpus[index].runs, __ATOMIC_ACQUIRE);
}

const struct kvm_irq_routing_entry *fake_kvm__route(uint32_t gsi)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_routes; i++)
		if (fake_kvm.routes[i].gsi == gsi && fake_kvm.routes[i].type == KVM_IRQ_ROUTING_MSI)
			return &fake_kvm.routes[i];
	return NULL;
}

static void record_msi(uint64_t addr, uint32_t data, bool by_signal)
{
	if (fake_kvm.nr_msi < sizeof(fake_kvm.msi) / sizeof(fake_kvm.msi[0]))
		fake_kvm.msi[fake_kvm.nr_msi] = (typeof(fake_kvm.msi[0])){ addr, data, by_signal };
	fake_kvm.nr_msi++;
}

static void deliver(uint32_t gsi)
{
	const struct kvm_irq_routing_entry *r = fake_kvm__route(gsi);

	if (!r) {
		violation("irqfd fired on GSI %u without an MSI route", gsi);
		return;
	}
	record_msi((uint64_t)r->u.msi.address_hi << 32 | r->u.msi.address_lo, r->u.msi.data, false);
}

static bool drain_fd(int fd)
{
	uint64_t cnt;

	return read(fd, &cnt, sizeof(cnt)) == 8 && cnt;
}

void fake_kvm__poll_irqfds(void)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_irqfd; i++)
		if (drain_fd(fake_kvm.irqfd[i].fd))
			deliver(fake_kvm.irqfd[i].gsi);
}

/* ---- the system fd ---------------------------------------------------------------- */

const uint32_t fake_kvm_msr_index[] = {
	0x00000010, 0x00000011, 0x00000012,     /* TSC, KVM_WALL_CLOCK, KVM_SYSTEM_TIME */
	0x0000003b,                             /* TSC_ADJUST */
	0x00000174, 0x00000175, 0x00000176,     /* SYSENTER_CS, _ESP, _EIP */
	0x000001a0, 0x00000277, 0x000002ff,     /* MISC_ENABLE, PAT, MTRR_DEF_TYPE */
	0x000006e0,                             /* TSC_DEADLINE */
	0xc0000081, 0xc0000082, 0xc0000083,     /* STAR, LSTAR, CSTAR */
	0xc0000084, 0xc0000102, 0xc0000103,     /* SYSCALL_MASK, KERNEL_GS_BASE, TSC_AUX */
	0x4b564d00, 0x4b564d01, 0x4b564d02,     /* KVM_WALL_CLOCK_NEW, _SYSTEM_TIME_NEW, ASYNC_PF_EN */
	0x4b564d03, 0x4b564d04, 0x4b564d05,     /* KVM_STEAL_TIME, PV_EOI_EN, POLL_CONTROL */
	0x4b564d06,                             /* KVM_ASYNC_PF_INT */
};
const unsigned fake_kvm_nr_msr_index = sizeof(fake_kvm_msr_index) / sizeof(fake_kvm_msr_index[0]);

/* The host has this MSR (KVM_GET_MSR_INDEX_LIST lists it). */
static bool msr_listed(uint32_t index)
{
	unsigned i;

	if (index == fake_kvm.msr_lacking)
		return false;
	if (index >= FAKE_KVM_EXTRA_MSR && index - FAKE_KVM_EXTRA_MSR < fake_kvm.extra_msrs)
		return true;
	for (i = 0; i < fake_kvm_nr_msr_index; i++)
		if (fake_kvm_msr_index[i] == index)
			return true;
	return false;
}

/* KVM_GET_MSR_INDEX_LIST: nmsrs always set to how many there are; E2BIG when they do not fit. */
static int msr_index_list(struct kvm_msr_list *l)
{
	unsigned room = l->nmsrs, n = 0, i;

	for (i = 0; i < fake_kvm_nr_msr_index; i++)
		n += msr_listed(fake_kvm_msr_index[i]);
	n += fake_kvm.extra_msrs;
	l->nmsrs = n;
	if (room < n)
		return -E2BIG;
	for (i = 0, n = 0; i < fake_kvm_nr_msr_index; i++)
		if (msr_listed(fake_kvm_msr_index[i]))
			l->indices[n++] = fake_kvm_msr_index[i];
	for (i = 0; i < fake_kvm.extra_msrs; i++)
		l->indices[n++] = FAKE_KVM_EXTRA_MSR + i;
	return 0;
}

#define BIT(n) (1u << (n))

/*
 * KVM_GET_SUPPORTED_CPUID of an Intel host: as KVM, without leaf 1's HTT (EDX[28]),
 * hypervisor (ECX[31]) and TSC-deadline (ECX[24]) bits, which a monitor sets itself.
 */
static const struct kvm_cpuid_entry2 supported_cpuid[] = {
	{ .function = 0, .eax = 0xd, .ebx = 0x756e6547, .edx = 0x49656e69, .ecx = 0x6c65746e },
	{ .function = 1, .eax = 0x806c1,
	  /* SSE3 PCLMULQDQ SSSE3 FMA CX16 SSE4.1 SSE4.2 X2APIC MOVBE POPCNT AES XSAVE AVX F16C RDRAND */
	  .ecx = BIT(0) | BIT(1) | BIT(9) | BIT(12) | BIT(13) | BIT(19) | BIT(20) | BIT(21) | BIT(22) |
		 BIT(23) | BIT(25) | BIT(26) | BIT(28) | BIT(29) | BIT(30),
	  /* FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFLUSH MMX FXSR
	   * SSE SSE2 SS */
	  .edx = 0x0f8bfbff },   /* bits 0-9, 11-17, 19, 23-27 */
	/* FSGSBASE BMI1 AVX2 SMEP BMI2 ERMS INVPCID; EDX ARCH_CAPABILITIES (emulated) */
	{ .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	  .ebx = BIT(0) | BIT(3) | BIT(5) | BIT(7) | BIT(8) | BIT(9) | BIT(10), .edx = BIT(29) },
	{ .function = 0xd, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	  .eax = FAKE_KVM_XCR0, .ebx = 0x340, .ecx = 0x340 },
	{ .function = 0x80000000, .eax = 0x80000008 },
	/* LAHF_LM; SYSCALL NX LM */
	{ .function = 0x80000001, .ecx = BIT(0), .edx = BIT(11) | BIT(20) | BIT(29) },
};
#define NR_SUPPORTED_CPUID (sizeof(supported_cpuid) / sizeof(supported_cpuid[0]))

static int get_supported_cpuid(struct kvm_cpuid2 *c)
{
	unsigned i;

	if (c->nent < NR_SUPPORTED_CPUID)
		return -E2BIG;
	c->nent = NR_SUPPORTED_CPUID;
	memcpy(c->entries, supported_cpuid, sizeof(supported_cpuid));
	for (i = 0; i < c->nent && fake_kvm.cpuid_lacking.bits; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		uint32_t *reg[4] = { &e->eax, &e->ebx, &e->ecx, &e->edx };

		if (e->function == fake_kvm.cpuid_lacking.function && fake_kvm.cpuid_lacking.reg < 4 &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == fake_kvm.cpuid_lacking.index))
			*reg[fake_kvm.cpuid_lacking.reg] &= ~fake_kvm.cpuid_lacking.bits;
	}
	return 0;
}

static int system_ioctl(unsigned long req, unsigned long arg)
{

	switch (req) {
	case KVM_GET_API_VERSION:
		return KVM_API_VERSION;
	case KVM_CHECK_EXTENSION:
		return arg == KVM_CAP_MAX_VCPUS || arg == KVM_CAP_NR_VCPUS ? FAKE_KVM_MAX_VCPUS : 1;
	case KVM_GET_VCPU_MMAP_SIZE:
		return RUN_SIZE;
	case KVM_CREATE_VM:
		if (arg)
			violation("KVM_CREATE_VM type %lu", arg);
		return obj_new(OBJ_VM, 0, 0);
	case KVM_GET_SUPPORTED_CPUID:
		return get_supported_cpuid((struct kvm_cpuid2 *)arg);
	case KVM_GET_MSR_INDEX_LIST:
		return msr_index_list((struct kvm_msr_list *)arg);
	}
	violation("%s (%#lx) on the system fd", fake_kvm__name(req), req);
	return -ENOTTY;
}

/* ---- the VM fd -------------------------------------------------------------------- */

static int model_memory(const struct kvm_userspace_memory_region *m)
{
	unsigned i;

	if ((m->guest_phys_addr | m->memory_size | m->userspace_addr) & 0xfff ||
	    (m->flags & ~(uint32_t)KVM_MEM_LOG_DIRTY_PAGES)) {
		violation("KVM_SET_USER_MEMORY_REGION slot %u unaligned or flags %#x", m->slot, m->flags);
		return -EINVAL;
	}
	for (i = 0; i < fake_kvm.nr_slots; i++) {
		struct kvm_userspace_memory_region *o = &fake_kvm.slots[i];

		/* The same slot again, only its flags changed: dirty logging on or off (KVM allows it). */
		if (o->slot == m->slot && o->guest_phys_addr == m->guest_phys_addr &&
		    o->memory_size == m->memory_size && o->userspace_addr == m->userspace_addr) {
			o->flags = m->flags;
			if (!(m->flags & KVM_MEM_LOG_DIRTY_PAGES))
				fake_kvm.dirty[m->slot % 16] = 0;
			return 0;
		}
		if (o->slot == m->slot ||
		    (m->guest_phys_addr < o->guest_phys_addr + o->memory_size &&
		     o->guest_phys_addr < m->guest_phys_addr + m->memory_size)) {
			violation("KVM_SET_USER_MEMORY_REGION slot %u overlaps slot %u", m->slot, o->slot);
			return -EEXIST;
		}
	}
	if (fake_kvm.nr_slots == sizeof(fake_kvm.slots) / sizeof(fake_kvm.slots[0]))
		return -ENOSPC;
	fake_kvm.slots[fake_kvm.nr_slots++] = *m;
	return 0;
}

/*
 * KVM_RESET_DIRTY_RINGS: per ring, from its reset index, every entry marked harvested is
 * given back (its page write-protected again) up to the first that is not; the count.
 */
static int model_ring_reset(void)
{
	unsigned i, n = 0;

	if (!fake_kvm.ring_bytes)
		return 0;
	for (i = 0; i < FAKE_KVM_MAX_VCPUS; i++) {
		struct vcpu_model *v = &vcpus[i];
		uint32_t size = fake_kvm.ring_bytes / sizeof(struct kvm_dirty_gfn);

		while (v->ring && v->reset_index != v->dirty_index) {
			struct kvm_dirty_gfn *g = &v->ring[v->reset_index & (size - 1)];

			if (!(__atomic_load_n(&g->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_RESET))
				break;
			g->flags = 0;
			v->reset_index++;
			n++;
		}
	}
	fake_kvm.ring_resets++;
	fake_kvm.ring_reset_entries += n;
	if (fake_kvm.on_ring_reset)
		fake_kvm.on_ring_reset();
	return (int)n;
}

int fake_kvm__ring_push(unsigned index, uint32_t slot, uint64_t offset)
{
	struct vcpu_model *v = index < FAKE_KVM_MAX_VCPUS ? &vcpus[index] : NULL;
	uint32_t size = fake_kvm.ring_bytes / sizeof(struct kvm_dirty_gfn);
	struct kvm_dirty_gfn *g;
	unsigned i;
	bool logs = false;

	for (i = 0; i < fake_kvm.nr_slots; i++)
		logs |= fake_kvm.slots[i].slot == slot &&
			(fake_kvm.slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES);
	if (!v || !v->ring || !logs)
		return -1;
	if (v->dirty_index - v->reset_index >= size) {
		violation("vcpu%u's dirty ring overflowed: KVM_EXIT_DIRTY_RING_FULL was ignored", index);
		return -1;
	}
	g = &v->ring[v->dirty_index & (size - 1)];
	g->slot = slot;
	g->offset = offset;
	__atomic_store_n(&g->flags, KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
	v->dirty_index++;
	return v->dirty_index - v->reset_index >= size - RING_RSVD;
}

/* KVM_GET_DIRTY_LOG: the slot's pages written since the last call (fake_kvm.dirty), then clear. */
static int model_dirty_log(struct kvm_dirty_log *d)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_slots; i++) {
		const struct kvm_userspace_memory_region *o = &fake_kvm.slots[i];

		if (o->slot != d->slot)
			continue;
		if (!(o->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
			violation("KVM_GET_DIRTY_LOG slot %u without KVM_MEM_LOG_DIRTY_PAGES",
				  d->slot);
			return -ENOENT;
		}
		/* KVM writes the whole bitmap: a bit per page, in longs. */
		memset(d->dirty_bitmap, 0, (o->memory_size / 4096 + 63) / 64 * 8);
		memcpy(d->dirty_bitmap, &fake_kvm.dirty[d->slot % 16], 8);
		fake_kvm.dirty[d->slot % 16] = 0;
		return 0;
	}
	violation("KVM_GET_DIRTY_LOG of slot %u, which does not exist", d->slot);
	return -ENOENT;
}

static int model_routing(const struct kvm_irq_routing *t)
{
	unsigned i, j;

	if (t->flags || t->nr > IRQ_MAX_ROUTES) {
		violation("KVM_SET_GSI_ROUTING: flags %u nr %u", t->flags, t->nr);
		return -EINVAL;
	}
	for (i = 0; i < t->nr; i++)
		for (j = 0; j < i; j++)
			if (t->entries[i].gsi == t->entries[j].gsi &&
			    (t->entries[i].type == KVM_IRQ_ROUTING_MSI ||
			     t->entries[j].type == KVM_IRQ_ROUTING_MSI))
				violation("GSI %u has an MSI route and another route", t->entries[i].gsi);
	memcpy(fake_kvm.routes, t->entries, t->nr * sizeof(t->entries[0]));
	fake_kvm.nr_routes = t->nr;
	fake_kvm.commits++;
	return 0;
}

static int model_irqfd(const struct kvm_irqfd *a)
{
	unsigned i;

	if (a->flags & ~KVM_IRQFD_FLAG_DEASSIGN) {
		violation("KVM_IRQFD flags %#x", a->flags);
		return -EINVAL;
	}
	for (i = 0; i < fake_kvm.nr_irqfd; i++)
		if (fake_kvm.irqfd[i].fd == (int)a->fd)
			break;
	if (a->flags & KVM_IRQFD_FLAG_DEASSIGN) {
		if (i == fake_kvm.nr_irqfd || fake_kvm.irqfd[i].gsi != a->gsi) {
			violation("deassign of irqfd %d gsi %u that is not assigned", a->fd, a->gsi);
			return 0;   /* KVM says nothing either */
		}
		fake_kvm.irqfd[i] = fake_kvm.irqfd[--fake_kvm.nr_irqfd];
		return 0;
	}
	if (i < fake_kvm.nr_irqfd) {
		violation("irqfd %d assigned twice", a->fd);
		return -EBUSY;
	}
	if (!fake_kvm__route(a->gsi))
		violation("irqfd on GSI %u that has no MSI route", a->gsi);
	if (fake_kvm.nr_irqfd == FAKE_KVM_MAX)
		return -ENOSPC;
	fake_kvm.irqfd[fake_kvm.nr_irqfd++] = (typeof(fake_kvm.irqfd[0])){ (int)a->fd, a->gsi };
	/* KVM injects at once if the eventfd is already signalled. */
	if (drain_fd((int)a->fd))
		deliver(a->gsi);
	return 0;
}

static int model_ioeventfd(const struct kvm_ioeventfd *a)
{
	unsigned i;

	if (a->flags & ~(uint32_t)KVM_IOEVENTFD_FLAG_DEASSIGN) {
		violation("KVM_IOEVENTFD flags %#x (PIO or datamatch not expected)", a->flags);
		return -EINVAL;
	}
	if (a->len != 0 && a->len != 1 && a->len != 2 && a->len != 4 && a->len != 8)
		return -EINVAL;
	for (i = 0; i < fake_kvm.nr_ioev; i++)
		if (fake_kvm.ioev[i].addr == a->addr)
			break;
	if (a->flags & KVM_IOEVENTFD_FLAG_DEASSIGN) {
		if (i == fake_kvm.nr_ioev || fake_kvm.ioev[i].len != a->len ||
		    fake_kvm.ioev[i].fd != a->fd) {
			violation("deassign of ioeventfd %#llx that is not assigned",
				  (unsigned long long)a->addr);
			return -ENOENT;
		}
		fake_kvm.ioev[i] = fake_kvm.ioev[--fake_kvm.nr_ioev];
		return 0;
	}
	if (i < fake_kvm.nr_ioev)
		return -EEXIST;
	if (fake_kvm.nr_ioev == FAKE_KVM_MAX)
		return -ENOSPC;
	fake_kvm.ioev[fake_kvm.nr_ioev++] = (typeof(fake_kvm.ioev[0])){ a->addr, a->len, a->fd };
	return 0;
}

static int model_signal_msi(const struct kvm_msi *m)
{
	if (m->flags) {
		violation("KVM_SIGNAL_MSI flags %#x", m->flags);
		return -EINVAL;
	}
	record_msi((uint64_t)m->address_hi << 32 | m->address_lo, m->data, true);
	return 1;
}

static int create_vcpu(unsigned long index)
{
	struct vcpu_model *v;
	int fd;

	if (!fake_kvm.irqchip)
		violation("KVM_CREATE_VCPU before KVM_CREATE_IRQCHIP: the LAPIC would be userspace's");
	if (index >= FAKE_KVM_MAX_VCPUS || vcpus[index].run)
		return -EINVAL;
	fd = obj_new(OBJ_VCPU, (unsigned)index,
		     fake_kvm.ring_bytes ? RING_OFFSET + fake_kvm.ring_bytes : RUN_SIZE);
	if (fd < 0)
		return fd;
	v = &vcpus[index];
	v->run = mmap(NULL, RUN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		close(fd);
		return -ENOMEM;
	}
	if (fake_kvm.ring_bytes) {
		v->ring = mmap(NULL, fake_kvm.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			       RING_OFFSET);
		if (v->ring == MAP_FAILED) {
			v->ring = NULL;
			close(fd);
			return -ENOMEM;
		}
	}
	fake_kvm.nr_vcpus++;
	return fd;
}

/* KVM_CHECK_EXTENSION on the VM fd: KVM_CAP_X86_DISABLE_EXITS answers the mask it can disable. */
static int vm_check_extension(unsigned long cap)
{
	if (fake_kvm.nr_vm_caps_checked < sizeof(fake_kvm.vm_caps_checked) / sizeof(fake_kvm.vm_caps_checked[0]))
		fake_kvm.vm_caps_checked[fake_kvm.nr_vm_caps_checked++] = cap;
	switch (cap) {
	case KVM_CAP_X86_DISABLE_EXITS:
		return KVM_X86_DISABLE_VALID_EXITS & ~fake_kvm.disable_exits_lacking;
	case KVM_CAP_HALT_POLL:
		return !fake_kvm.halt_poll_lacking;
	case KVM_CAP_MAX_VCPUS:
	case KVM_CAP_NR_VCPUS:
		return FAKE_KVM_MAX_VCPUS;
	case KVM_CAP_DIRTY_LOG_RING:
	case KVM_CAP_DIRTY_LOG_RING_ACQ_REL:
		return fake_kvm.dirty_ring_lacking ? 0 : 65536 * (int)sizeof(struct kvm_dirty_gfn);
	default:
		return 1;
	}
}

/*
 * KVM_ENABLE_CAP on the VM fd, with KVM's rules: no flags; disabling exits only before any
 * vCPU, only valid bits (an MWAIT the host cannot give is dropped, as KVM does); a halt-poll
 * time that fits 32 bits; a capability KVM lacks refused.
 */
static int vm_enable_cap(const struct kvm_enable_cap *cap)
{
	uint64_t a = cap->args[0];

	if (fake_kvm.nr_enabled < sizeof(fake_kvm.enabled) / sizeof(fake_kvm.enabled[0]))
		fake_kvm.enabled[fake_kvm.nr_enabled++] = *cap;
	if (cap->flags) {
		violation("KVM_ENABLE_CAP %u with flags %#x", cap->cap, cap->flags);
		return -EINVAL;
	}
	switch (cap->cap) {
	case KVM_CAP_X86_DISABLE_EXITS:
		if (a & ~(uint64_t)KVM_X86_DISABLE_VALID_EXITS) {
			violation("KVM_CAP_X86_DISABLE_EXITS with unknown bits %#llx", (unsigned long long)a);
			return -EINVAL;
		}
		if (fake_kvm.nr_vcpus) {
			violation("KVM_CAP_X86_DISABLE_EXITS after %u vCPUs were created", fake_kvm.nr_vcpus);
			return -EINVAL;
		}
		fake_kvm.mwait_in_guest |= (a & KVM_X86_DISABLE_EXITS_MWAIT) &&
					   !(fake_kvm.disable_exits_lacking & KVM_X86_DISABLE_EXITS_MWAIT);
		fake_kvm.hlt_in_guest |= !!(a & KVM_X86_DISABLE_EXITS_HLT);
		fake_kvm.pause_in_guest |= !!(a & KVM_X86_DISABLE_EXITS_PAUSE);
		fake_kvm.cstate_in_guest |= !!(a & KVM_X86_DISABLE_EXITS_CSTATE);
		return 0;
	case KVM_CAP_HALT_POLL:
		if (fake_kvm.halt_poll_lacking || a != (uint32_t)a)
			return -EINVAL;
		fake_kvm.max_halt_poll_ns = (int64_t)a;
		return 0;
	case KVM_CAP_DIRTY_LOG_RING:
	case KVM_CAP_DIRTY_LOG_RING_ACQ_REL:
		if (fake_kvm.dirty_ring_lacking)
			return -EINVAL;
		if (fake_kvm.nr_vcpus || fake_kvm.ring_bytes) {
			violation("KVM_CAP_DIRTY_LOG_RING after a vCPU or a second time");
			return -EINVAL;
		}
		if (a < 4096 || a < RING_RSVD * sizeof(struct kvm_dirty_gfn) || (a & (a - 1)) ||
		    a > 65536 * sizeof(struct kvm_dirty_gfn)) {
			violation("KVM_CAP_DIRTY_LOG_RING of %llu bytes", (unsigned long long)a);
			return -EINVAL;
		}
		fake_kvm.ring_bytes = (uint32_t)a;
		return 0;
	}
	violation("KVM_ENABLE_CAP %u: the model does not know it", cap->cap);
	return -EINVAL;
}

static int vm_ioctl(unsigned long req, unsigned long arg)
{
	void *p = (void *)arg;

	switch (req) {
	case KVM_CHECK_EXTENSION:
		return vm_check_extension(arg);
	case KVM_ENABLE_CAP:
		return vm_enable_cap(p);
	case KVM_SET_TSS_ADDR:
	case KVM_SET_IDENTITY_MAP_ADDR:
		if (fake_kvm.nr_vcpus)
			return -EBUSY;
		return 0;
	case KVM_SET_USER_MEMORY_REGION:
		return model_memory(p);
	case KVM_GET_DIRTY_LOG:
		if (fake_kvm.ring_bytes) {
			violation("KVM_GET_DIRTY_LOG with the dirty ring on (KVM answers ENXIO)");
			return -ENXIO;
		}
		return model_dirty_log(p);
	case KVM_RESET_DIRTY_RINGS:
		return model_ring_reset();
	case KVM_CREATE_IRQCHIP:
		if (fake_kvm.irqchip || fake_kvm.nr_vcpus)
			return fake_kvm.irqchip ? -EEXIST : -EINVAL;
		fake_kvm.irqchip = true;
		return 0;
	case KVM_CREATE_PIT2:
		if (!fake_kvm.irqchip) {
			violation("KVM_CREATE_PIT2 without an in-kernel irqchip");
			return -ENOENT;
		}
		fake_kvm.pit = true;
		return 0;
	case KVM_SET_GSI_ROUTING:
		return model_routing(p);
	case KVM_IRQ_LINE:
		if (!fake_kvm.irqchip)
			return -ENXIO;
		fake_kvm.irq_lines++;
		return 0;
	case KVM_IRQFD:
		return model_irqfd(p);
	case KVM_IOEVENTFD:
		return model_ioeventfd(p);
	case KVM_SIGNAL_MSI:
		return model_signal_msi(p);
	case KVM_CREATE_VCPU:
		return create_vcpu(arg);
	case KVM_GET_IRQCHIP:
	case KVM_SET_IRQCHIP: {
		struct kvm_irqchip *chip = p;

		if (!fake_kvm.irqchip || chip->chip_id > 2) {
			violation("%s chip %u%s", fake_kvm__name(req), chip->chip_id,
				  fake_kvm.irqchip ? "" : " without an in-kernel irqchip");
			return -EINVAL;
		}
		if (req == KVM_GET_IRQCHIP) {
			memcpy(&chip->chip, &fake_kvm.chips[chip->chip_id].chip, sizeof(chip->chip));
		} else {
			fake_kvm.chips[chip->chip_id] = *chip;
			fake_kvm.irqchip_sets++;
		}
		return 0;
	}
	case KVM_GET_PIT2:
	case KVM_SET_PIT2:
		if (!fake_kvm.pit) {
			violation("%s without a PIT", fake_kvm__name(req));
			return -ENXIO;
		}
		if (req == KVM_GET_PIT2) {
			memcpy(p, &fake_kvm.pit_state, sizeof(fake_kvm.pit_state));
		} else {
			memcpy(&fake_kvm.pit_state, p, sizeof(fake_kvm.pit_state));
			fake_kvm.pit_sets++;
		}
		return 0;
	case KVM_GET_CLOCK:
		memset(p, 0, sizeof(struct kvm_clock_data));
		((struct kvm_clock_data *)p)->clock = fake_kvm.kvmclock;
		fake_kvm.kvmclock += 1000;   /* time goes on after the read */
		return 0;
	case KVM_SET_CLOCK:
		if (((struct kvm_clock_data *)p)->flags & ~(uint32_t)KVM_CLOCK_REALTIME)
			violation("KVM_SET_CLOCK with flags %#x", ((struct kvm_clock_data *)p)->flags);
		fake_kvm.kvmclock = ((struct kvm_clock_data *)p)->clock;
		fake_kvm.clock_sets++;
		return 0;
	}
	violation("%s (%#lx) on the VM fd", fake_kvm__name(req), req);
	return -ENOTTY;
}

/* ---- the vCPU fd ------------------------------------------------------------------ */

/* KVM_RUN, without the model's lock: the next queued step, or a wait for a kick. */
static int vcpu_run(struct vcpu_model *v)
{
	const size_t from = offsetof(struct kvm_run, exit_reason);
	const size_t to = offsetof(struct kvm_run, kvm_valid_regs);
	const struct timespec ms = { 0, 1000000 };
	struct step s;
	bool have;

	__atomic_add_fetch(&v->runs, 1, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&v->run->immediate_exit, __ATOMIC_ACQUIRE))
		return -EINTR;
	__atomic_store_n(&v->entered, true, __ATOMIC_RELEASE);
	pthread_mutex_lock(&lock);
	have = v->head != v->tail;
	if (have)
		s = v->steps[v->head++ % (sizeof(v->steps) / sizeof(v->steps[0]))];
	pthread_mutex_unlock(&lock);
	if (!have) {
		while (!__atomic_load_n(&v->run->immediate_exit, __ATOMIC_ACQUIRE))
			nanosleep(&ms, NULL);
		return -EINTR;
	}
	if (s.err)
		return -s.err;
	memcpy((char *)v->run + from, (const char *)&s.exit + from, to - from);
	return 0;
}

#define MSR_TSC_DEADLINE 0x6e0
#define APIC_LVTT        0x320

/* The LAPIC timer is in TSC-deadline mode (LVTT[18:17] = 2). */
static bool lapic_tsc_deadline(const struct kvm_lapic_state *l)
{
	uint32_t lvtt;

	memcpy(&lvtt, l->regs + APIC_LVTT, sizeof(lvtt));
	return ((lvtt >> 17) & 3) == 2;
}

static struct kvm_msr_entry *find_msr(struct vcpu_model *v, uint32_t index)
{
	unsigned j;

	for (j = 0; j < v->st.nr_msrs; j++)
		if (v->st.msrs[j].index == index)
			return &v->st.msrs[j];
	return NULL;
}

/*
 * KVM_GET_MSRS / KVM_SET_MSRS: returns how many were done, stopping at the first MSR the
 * vCPU has not (not in fake_kvm_msr_index, or the host's lacking or unreadable one).
 */
static int model_msrs(struct vcpu_model *v, bool set, struct kvm_msrs *m)
{
	unsigned i;

	if (m->nmsrs >= FAKE_KVM_MAX_IO_MSRS) {
		violation("%s with %u MSRs: KVM takes fewer than %u a call", set ? "KVM_SET_MSRS" :
			  "KVM_GET_MSRS", m->nmsrs, FAKE_KVM_MAX_IO_MSRS);
		return -E2BIG;
	}
	for (i = 0; i < m->nmsrs; i++) {
		struct kvm_msr_entry *e = &m->entries[i], *have;
		bool dropped;

		if (!msr_listed(e->index) || e->index == fake_kvm.msr_unreadable)
			return (int)i;
		have = find_msr(v, e->index);
		/* KVM keeps a TSC deadline only while the LAPIC timer is in TSC-deadline mode. */
		dropped = e->index == MSR_TSC_DEADLINE && !lapic_tsc_deadline(&v->st.lapic);
		if (!set) {
			e->data = have && !dropped ? have->data : 0;
			continue;
		}
		if (dropped)
			continue;
		if (!have) {
			if (v->st.nr_msrs == FAKE_KVM_MAX_MSRS)
				return (int)i;
			have = &v->st.msrs[v->st.nr_msrs++];
		}
		*have = *e;
	}
	return (int)m->nmsrs;
}

/* KVM_SET_LAPIC: a change into or out of TSC-deadline mode clears the deadline, as KVM's. */
static void set_lapic(struct vcpu_model *v, const struct kvm_lapic_state *l)
{
	bool was = lapic_tsc_deadline(&v->st.lapic);
	struct kvm_msr_entry *deadline;

	memcpy(&v->st.lapic, l, sizeof(v->st.lapic));
	deadline = find_msr(v, MSR_TSC_DEADLINE);
	if (deadline && was != lapic_tsc_deadline(&v->st.lapic))
		deadline->data = 0;
}

/*
 * KVM_SET_CPUID2: any CPUID until the vCPU first entered the guest; after that KVM
 * refuses (EINVAL) one that differs from what it has.
 */
static int set_cpuid(struct vcpu_model *v, const struct kvm_cpuid2 *c)
{
	unsigned i;

	if (c->nent == 0 || c->nent > 256) {
		violation("KVM_SET_CPUID2 with %u entries", c->nent);
		return -E2BIG;
	}
	if (c->nent > FAKE_KVM_MAX_CPUID) {
		violation("KVM_SET_CPUID2 with %u entries: the model keeps %u", c->nent,
			  FAKE_KVM_MAX_CPUID);
		return -E2BIG;
	}
	if (__atomic_load_n(&v->entered, __ATOMIC_ACQUIRE)) {
		bool same = c->nent == v->st.nr_cpuid;

		for (i = 0; same && i < c->nent; i++) {
			const struct kvm_cpuid_entry2 *a = &c->entries[i], *b = &v->st.cpuid[i];

			same = a->function == b->function && a->index == b->index &&
			       a->flags == b->flags && a->eax == b->eax && a->ebx == b->ebx &&
			       a->ecx == b->ecx && a->edx == b->edx;
		}
		if (!same) {
			violation("KVM_SET_CPUID2 with another CPUID after KVM_RUN (KVM refuses it)");
			return -EINVAL;
		}
	}
	memcpy(v->st.cpuid, c->entries, c->nent * sizeof(c->entries[0]));
	v->st.nr_cpuid = c->nent;
	v->st.cpuid_sets++;
	v->cpuid_set = true;
	return 0;
}

/* KVM_SET_XSAVE: the standard (not compacted) format, no feature the host has not. */
static int set_xsave(struct vcpu_model *v, const struct kvm_xsave *x)
{
	uint64_t xstate_bv, xcomp_bv;

	memcpy(&xstate_bv, (const uint8_t *)x->region + 512, 8);
	memcpy(&xcomp_bv, (const uint8_t *)x->region + 520, 8);
	if ((xstate_bv & ~(uint64_t)FAKE_KVM_XCR0) || xcomp_bv) {
		violation("KVM_SET_XSAVE with XSTATE_BV %#llx XCOMP_BV %#llx (the host has %#x)",
			  (unsigned long long)xstate_bv, (unsigned long long)xcomp_bv, FAKE_KVM_XCR0);
		return -EINVAL;
	}
	memcpy(&v->st.xsave, x, sizeof(v->st.xsave));
	return 0;
}

/* KVM_SET_DEBUGREGS: no flags, DR6 and DR7 within 32 bits. */
static int set_debugregs(struct vcpu_model *v, const struct kvm_debugregs *d)
{
	if (d->flags || d->dr6 >> 32 || d->dr7 >> 32) {
		violation("KVM_SET_DEBUGREGS flags %#llx dr6 %#llx dr7 %#llx", (unsigned long long)d->flags,
			  (unsigned long long)d->dr6, (unsigned long long)d->dr7);
		return -EINVAL;
	}
	memcpy(&v->st.debugregs, d, sizeof(v->st.debugregs));
	return 0;
}

static uint32_t host_tsc_khz(void)
{
	return fake_kvm.tsc_khz ? fake_kvm.tsc_khz : FAKE_KVM_TSC_KHZ;
}

/* KVM_SET_TSC_KHZ: 0 is the host's rate; above it only with TSC scaling. */
static int set_tsc_khz(struct vcpu_model *v, unsigned long arg)
{
	uint32_t khz = (uint32_t)arg ? (uint32_t)arg : host_tsc_khz();

	if (fake_kvm.tsc_scaling_lacking && khz > host_tsc_khz())
		return -EINVAL;
	v->st.tsc_khz = khz;
	return 0;
}

struct fake_kvm_vcpu *fake_kvm__vcpu(unsigned index)
{
	return index < FAKE_KVM_MAX_VCPUS ? &vcpus[index].st : NULL;
}

static int vcpu_ioctl(struct vcpu_model *v, unsigned long req, unsigned long arg)
{
	switch (req) {
	case KVM_SET_CPUID2:
		return set_cpuid(v, (const struct kvm_cpuid2 *)arg);
	case KVM_GET_REGS:
		memcpy((void *)arg, &v->st.regs, sizeof(v->st.regs));
		return 0;
	case KVM_SET_REGS:
		memcpy(&v->st.regs, (void *)arg, sizeof(v->st.regs));
		return 0;
	case KVM_GET_SREGS:
		memcpy((void *)arg, &v->st.sregs, sizeof(v->st.sregs));
		return 0;
	case KVM_SET_SREGS:
		memcpy(&v->st.sregs, (void *)arg, sizeof(v->st.sregs));
		return 0;
	case KVM_TRANSLATE:
		((struct kvm_translation *)arg)->valid = 0;
		return 0;
#define STATE(get, set, field) \
	case get: memcpy((void *)arg, &v->st.field, sizeof(v->st.field)); return 0; \
	case set: memcpy(&v->st.field, (void *)arg, sizeof(v->st.field)); return 0;
	STATE(KVM_GET_FPU, KVM_SET_FPU, fpu)
	STATE(KVM_GET_XCRS, KVM_SET_XCRS, xcrs)
	STATE(KVM_GET_MP_STATE, KVM_SET_MP_STATE, mp_state)
	STATE(KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, events)
#undef STATE
	case KVM_GET_LAPIC:
		memcpy((void *)arg, &v->st.lapic, sizeof(v->st.lapic));
		return 0;
	case KVM_SET_LAPIC:
		set_lapic(v, (const struct kvm_lapic_state *)arg);
		return 0;
	case KVM_GET_XSAVE:
		memcpy((void *)arg, &v->st.xsave, sizeof(v->st.xsave));
		return 0;
	case KVM_SET_XSAVE:
		return set_xsave(v, (const struct kvm_xsave *)arg);
	case KVM_GET_DEBUGREGS:
		memcpy((void *)arg, &v->st.debugregs, sizeof(v->st.debugregs));
		((struct kvm_debugregs *)arg)->flags = 0;
		return 0;
	case KVM_SET_DEBUGREGS:
		return set_debugregs(v, (const struct kvm_debugregs *)arg);
	case KVM_GET_TSC_KHZ:
		return (int)(v->st.tsc_khz ? v->st.tsc_khz : host_tsc_khz());
	case KVM_SET_TSC_KHZ:
		return set_tsc_khz(v, arg);
	case KVM_GET_MSRS:
	case KVM_SET_MSRS:
		return model_msrs(v, req == KVM_SET_MSRS, (struct kvm_msrs *)arg);
	case KVM_KVMCLOCK_CTRL:
		/* As KVM answers for a guest that never enabled kvmclock. */
		fake_kvm.kvmclock_ctrl++;
		return -EINVAL;
	}
	violation("%s (%#lx) on a vCPU fd", fake_kvm__name(req), req);
	return -ENOTTY;
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	unsigned long arg;
	struct obj *o = NULL;
	bool watched, inject;
	va_list ap;
	int ret;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	if (_IOC_TYPE(req) != KVMIO)
		return __real_ioctl(fd, req, arg);
	pthread_mutex_lock(&lock);
	watched = fd >= 0 && fd == watched_fd;
	if (!watched)
		o = obj_of(fd);
	if (!watched && !o) {
		pthread_mutex_unlock(&lock);
		return __real_ioctl(fd, req, arg);
	}
	if (fake_kvm.nr_calls < FAKE_KVM_MAX_CALLS)
		fake_kvm.calls[fake_kvm.nr_calls] = req;
	inject = ++fake_kvm.nr_calls == fail_at;
	if (inject) {
		pthread_mutex_unlock(&lock);
		errno = (int)fail_err;
		return -1;
	}
	if (o && o->kind == OBJ_VCPU && req == KVM_RUN) {
		struct vcpu_model *v = &vcpus[o->index];

		pthread_mutex_unlock(&lock);
		ret = vcpu_run(v);
	} else {
		if (o && o->kind == OBJ_SYSTEM)
			ret = system_ioctl(req, arg);
		else if (o && o->kind == OBJ_VCPU)
			ret = vcpu_ioctl(&vcpus[o->index], req, arg);
		else
			ret = vm_ioctl(req, arg);
		if (watched) {
			ret = __real_ioctl(fd, req, arg);
			if (ret < 0)
				fake_kvm.kernel_errors++;
			pthread_mutex_unlock(&lock);
			return ret;
		}
		pthread_mutex_unlock(&lock);
	}
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}
