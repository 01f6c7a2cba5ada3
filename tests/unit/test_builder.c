/*
 * The composition root (app/builder.c) against the fake KVM: the KVM calls
 * come in the documented order, and a failure of any one of them ends the
 * build with an error naming the step, after which vm__destroy leaves no fd
 * (and, under ASan, no memory) behind.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/builder.h"
#include "app/placement.h"
#include "fake_kvm.h"
#include "hw_fakes.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/hw/pvpanic.h"
#include "vmm/hw/testdev.h"
#include "vmm/x86/layout.h"

#define KERNEL_AT 0x100000

struct rig {
	char kernel[64];
	int null_fd;
	struct vm_config cfg;
};

/* A 64-bit ELF kernel: one segment at 1 MiB holding `hlt`. */
static int make_kernel(const char *path)
{
	static const uint8_t code[16] = { 0xf4 };
	struct {
		Elf64_Ehdr eh;
		Elf64_Phdr ph;
		uint8_t pad[0x1000 - sizeof(Elf64_Ehdr) - sizeof(Elf64_Phdr)];
		uint8_t code[16];
	} img = { 0 };
	int fd;

	memcpy(img.eh.e_ident, ELFMAG, SELFMAG);
	img.eh.e_ident[EI_CLASS] = ELFCLASS64;
	img.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	img.eh.e_ident[EI_VERSION] = EV_CURRENT;
	img.eh.e_type = ET_EXEC;
	img.eh.e_machine = EM_X86_64;
	img.eh.e_version = EV_CURRENT;
	img.eh.e_entry = KERNEL_AT;
	img.eh.e_phoff = sizeof(img.eh);
	img.eh.e_ehsize = sizeof(img.eh);
	img.eh.e_phentsize = sizeof(img.ph);
	img.eh.e_phnum = 1;
	img.ph = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0x1000,
			       .p_vaddr = KERNEL_AT, .p_paddr = KERNEL_AT, .p_filesz = sizeof(code),
			       .p_memsz = sizeof(code), .p_align = 0x1000 };
	memcpy(img.code, code, sizeof(code));
	fd = mkstemp((char *)path);
	if (fd < 0)
		return -1;
	if (write(fd, &img, sizeof(img)) != (ssize_t)sizeof(img)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	strcpy(r->kernel, "/tmp/rtvmm-test-kernel-XXXXXX");
	if (make_kernel(r->kernel))
		return -1;
	r->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r->cfg = (struct vm_config){
		.kvm_path = fake_kvm__path(),
		.boot = { .kernel_path = r->kernel, .cmdline = "console=ttyS0" },
		.nr_vcpus = 2,
		.mem_size = 16ULL << 20,
		.console_in = -1,
		.console_out = r->null_fd,
	};
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;

	unlink(r->kernel);
	close(r->null_fd);
	free(r);
	return 0;
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void assert_before(unsigned long a, unsigned long b)
{
	int ia = fake_kvm__first(a), ib = fake_kvm__first(b);

	if (ia < 0 || ib < 0 || ia >= ib)
		fail_msg("%s (call %d) must come before %s (call %d)", fake_kvm__name(a), ia,
			 fake_kvm__name(b), ib);
}

static void test_builder_calls_kvm_in_the_documented_order(void **state)
{
	struct rig *r = *state;
	unsigned fds = open_fds();
	struct err e = { 0 };
	struct vm vm;
	uint64_t ram = 0;
	unsigned i;

	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	/* The system handle checked, then the VM; memory before the irqchip before the vCPUs;
	 * CPUID on each vCPU; the BSP's boot registers last. */
	assert_before(KVM_GET_API_VERSION, KVM_CREATE_VM);
	assert_before(KVM_CREATE_VM, KVM_SET_TSS_ADDR);
	assert_before(KVM_SET_TSS_ADDR, KVM_SET_USER_MEMORY_REGION);
	assert_before(KVM_SET_USER_MEMORY_REGION, KVM_CREATE_IRQCHIP);
	assert_before(KVM_CREATE_IRQCHIP, KVM_SET_GSI_ROUTING);
	assert_before(KVM_SET_GSI_ROUTING, KVM_CREATE_PIT2);
	assert_before(KVM_CREATE_PIT2, KVM_GET_SUPPORTED_CPUID);
	assert_before(KVM_GET_SUPPORTED_CPUID, KVM_CREATE_VCPU);
	assert_before(KVM_CREATE_VCPU, KVM_SET_CPUID2);
	assert_before(KVM_SET_CPUID2, KVM_SET_SREGS);
	assert_before(KVM_SET_SREGS, KVM_SET_REGS);
	/* Last, for a reboot in place (the default): irqchip and PIT as built. */
	assert_before(KVM_SET_REGS, KVM_GET_IRQCHIP);
	assert_before(KVM_GET_IRQCHIP, KVM_GET_PIT2);
	assert_true(vm.sealed && vm.nr_blobs == 2);   /* low memory and the kernel; no initrd */
	assert_int_equal(fake_kvm.nr_vcpus, 2);
	assert_true(fake_kvm.irqchip && fake_kvm.pit);
	for (i = 0; i < fake_kvm.nr_slots; i++)
		ram += fake_kvm.slots[i].memory_size;
	assert_int_equal(ram, r->cfg.mem_size);
	/* No knob asked: KVM's defaults stay, but for its dirty ring (a migration's log) where it
	 * has one, before the vCPUs. */
	assert_int_equal(fake_kvm.nr_enabled, 1);
	assert_int_equal(fake_kvm.enabled[0].cap, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	assert_int_equal(fake_kvm.enabled[0].args[0], 4096 * sizeof(struct kvm_dirty_gfn));
	assert_before(KVM_ENABLE_CAP, KVM_CREATE_VCPU);
	assert_int_equal(vm.rings.entries, 4096);
	assert_int_equal(vm.disabled_exits, 0);
	assert_int_equal(vm.halt_poll_ns, -1);
	if (fake_kvm.violations)
		fail_msg("fake KVM: %s", fake_kvm.why);
	vm__destroy(&vm);
	assert_int_equal(open_fds(), fds);

	/* A KVM without the ring: its bitmap, and the build goes on. */
	fake_kvm__reset();
	fake_kvm.dirty_ring_lacking = true;
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_int_equal(fake_kvm.nr_enabled, 0);
	assert_int_equal(vm.rings.entries, 0);
	vm__destroy(&vm);
}

/* dirty_ring: 0 keeps KVM's bitmap, N asks a ring of N, and a KVM without one refuses it by where it was asked. */
static void test_builder_dirty_ring_as_asked(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	struct vm vm;

	r->cfg.dirty_ring_set = true;
	r->cfg.dirty_ring = 0;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_int_equal(fake_kvm.nr_enabled, 0);
	assert_int_equal(vm.rings.entries, 0);
	vm__destroy(&vm);

	r->cfg.dirty_ring = 1024;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_int_equal(fake_kvm.ring_bytes, 1024 * sizeof(struct kvm_dirty_gfn));
	assert_int_equal(vm.rings.entries, 1024);
	vm__destroy(&vm);

	r->cfg.dirty_ring_at = "host.yaml:12: vms[0].dirty_ring";
	fake_kvm__reset();
	fake_kvm.dirty_ring_lacking = true;
	assert_int_equal(vm__build(&vm, &r->cfg, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "host.yaml:12: vms[0].dirty_ring: dirty_ring 1024: KVM lacks "
				      "KVM_CAP_DIRTY_LOG_RING"));
	assert_int_equal(fake_kvm.nr_vcpus, 0);
	vm__destroy(&vm);
	r->cfg.dirty_ring_set = false;
	r->cfg.dirty_ring_at = NULL;
}

/* The position of the first KVM_CHECK_EXTENSION of `cap` on the VM fd among those asked, or -1. */
static int vm_cap_checked(uint64_t cap)
{
	unsigned i;

	for (i = 0; i < fake_kvm.nr_vm_caps_checked; i++)
		if (fake_kvm.vm_caps_checked[i] == cap)
			return (int)i;
	return -1;
}

/* disable_exits and halt_poll_ns: each checked on the VM fd, then enabled with its value, before any vCPU. */
static void test_builder_enables_kvm_knobs_checked_first_and_before_vcpus(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	struct vm vm;

	r->cfg.disable_exits = KVM_X86_DISABLE_EXITS_HLT | KVM_X86_DISABLE_EXITS_PAUSE;
	r->cfg.halt_poll_set = true;
	r->cfg.halt_poll_ns = 50000;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_true(vm_cap_checked(KVM_CAP_X86_DISABLE_EXITS) >= 0);
	assert_true(vm_cap_checked(KVM_CAP_HALT_POLL) >= 0);
	assert_int_equal(fake_kvm.nr_enabled, 3);   /* and the dirty ring, not asked */
	assert_int_equal(fake_kvm.enabled[0].cap, KVM_CAP_X86_DISABLE_EXITS);
	assert_int_equal(fake_kvm.enabled[0].args[0],
			 KVM_X86_DISABLE_EXITS_HLT | KVM_X86_DISABLE_EXITS_PAUSE);
	assert_int_equal(fake_kvm.enabled[1].cap, KVM_CAP_HALT_POLL);
	assert_int_equal(fake_kvm.enabled[1].args[0], 50000);
	assert_true(fake_kvm.hlt_in_guest && fake_kvm.pause_in_guest);
	assert_false(fake_kvm.mwait_in_guest || fake_kvm.cstate_in_guest);
	assert_int_equal(fake_kvm.max_halt_poll_ns, 50000);
	assert_before(KVM_CHECK_EXTENSION, KVM_ENABLE_CAP);
	assert_before(KVM_ENABLE_CAP, KVM_CREATE_VCPU);
	/* What the reports and the API show. */
	assert_int_equal(vm.disabled_exits, KVM_X86_DISABLE_EXITS_HLT | KVM_X86_DISABLE_EXITS_PAUSE);
	assert_int_equal(vm.halt_poll_ns, 50000);
	if (fake_kvm.violations)
		fail_msg("fake KVM: %s", fake_kvm.why);
	vm__destroy(&vm);

	/* halt_poll_ns 0 is a value (never poll), not "unset". */
	r->cfg.disable_exits = 0;
	r->cfg.halt_poll_ns = 0;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_int_equal(fake_kvm.nr_enabled, 2);
	assert_int_equal(fake_kvm.max_halt_poll_ns, 0);
	assert_int_equal(vm.halt_poll_ns, 0);
	vm__destroy(&vm);
}

/* Exits this KVM cannot disable: refused before anything is enabled, naming what it lacks and where asked. */
static void test_builder_refuses_exits_this_kvm_cannot_disable(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	struct vm vm;

	r->cfg.disable_exits = KVM_X86_DISABLE_EXITS_HLT | KVM_X86_DISABLE_EXITS_MWAIT;
	r->cfg.disable_exits_at = "host.yaml:9: vms[0].disable_exits";
	fake_kvm__reset();
	fake_kvm.disable_exits_lacking = KVM_X86_DISABLE_EXITS_MWAIT | KVM_X86_DISABLE_EXITS_CSTATE;
	assert_int_equal(vm__build(&vm, &r->cfg, &e), -ENOTSUP);
	assert_int_equal(e.code, -ENOTSUP);
	if (!strstr(e.msg, "host.yaml:9: vms[0].disable_exits: disable_exits hlt, mwait: KVM lacks "
		    "KVM_CAP_X86_DISABLE_EXITS for mwait on this host (it can disable: hlt, pause;"))
		fail_msg("unclear refusal: %s", e.msg);
	assert_int_equal(fake_kvm.nr_enabled, 0);
	assert_int_equal(fake_kvm.nr_vcpus, 0);
	assert_int_equal(vm.disabled_exits, 0);
	vm__destroy(&vm);

	/* A KVM without the capability at all answers 0: nothing can be disabled. */
	r->cfg.disable_exits = KVM_X86_DISABLE_EXITS_PAUSE;
	r->cfg.disable_exits_at = "--disable-exits 'pause'";
	fake_kvm__reset();
	fake_kvm.disable_exits_lacking = KVM_X86_DISABLE_VALID_EXITS;
	assert_int_equal(vm__build(&vm, &r->cfg, &e), -ENOTSUP);
	if (!strstr(e.msg, "--disable-exits 'pause': disable_exits pause: KVM lacks "
		    "KVM_CAP_X86_DISABLE_EXITS for pause on this host (it can disable: none;"))
		fail_msg("unclear refusal: %s", e.msg);
	assert_int_equal(fake_kvm.nr_enabled, 0);
	vm__destroy(&vm);
}

/* A KVM without KVM_CAP_HALT_POLL: halt_poll_ns refused by name, nothing enabled. */
static void test_builder_refuses_halt_poll_this_kvm_lacks(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	struct vm vm;

	r->cfg.halt_poll_set = true;
	r->cfg.halt_poll_ns = 20000;
	r->cfg.halt_poll_at = "--halt-poll-ns '20000'";
	fake_kvm__reset();
	fake_kvm.halt_poll_lacking = true;
	assert_int_equal(vm__build(&vm, &r->cfg, &e), -ENOTSUP);
	if (!strstr(e.msg, "--halt-poll-ns '20000': halt_poll_ns 20000: KVM lacks KVM_CAP_HALT_POLL"))
		fail_msg("unclear refusal: %s", e.msg);
	assert_int_equal(fake_kvm.nr_enabled, 0);
	assert_int_equal(fake_kvm.nr_vcpus, 0);
	assert_int_equal(vm.halt_poll_ns, -1);
	vm__destroy(&vm);
}

/* --on-reboot exit: nothing recorded for a reset, which stops the VM. */
static void test_builder_exit_on_reboot_keeps_no_reset_state(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	struct vm vm;

	r->cfg.exit_on_reboot = true;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_false(vm.restart_on_reboot || vm.sealed);
	assert_int_equal(vm.nr_blobs, 0);
	assert_int_equal(fake_kvm__first(KVM_GET_IRQCHIP), -1);
	assert_null(vm.vcpu_env.reset_gen);
	vm__request_stop(&vm, VM_STOP_REBOOT, 0);
	assert_true(vm.stopping);
	assert_int_equal(vm.stop_reason, VM_STOP_REBOOT);
	vm__destroy(&vm);
}

/* What the error must name when `req` fails; NULL: the build may go on without it. */
static const char *step_of(unsigned long req)
{
	switch (req) {
	case KVM_GET_API_VERSION:    return "KVM API version";
	case KVM_CHECK_EXTENSION:    return NULL;   /* optional caps; required ones: "KVM lacks" */
	case KVM_IRQ_LINE:           return NULL;   /* a device lowering its line */
	case KVM_CREATE_VCPU:
	case KVM_SET_CPUID2:         return "vcpu";
	case KVM_GET_SREGS:
	case KVM_SET_SREGS:
	case KVM_SET_REGS:           return "vcpu0 boot registers";
	default:                     return fake_kvm__name(req);
	}
}

static void test_builder_failing_each_kvm_call_names_the_step_and_leaks_nothing(void **state)
{
	struct rig *r = *state;
	unsigned long calls[FAKE_KVM_MAX_CALLS];
	unsigned n, total, failed = 0, fds = open_fds();
	struct vm vm;

	/* With the KVM knobs: their checks and KVM_ENABLE_CAP fail by name too. */
	r->cfg.disable_exits = KVM_X86_DISABLE_EXITS_HLT;
	r->cfg.halt_poll_set = true;
	r->cfg.halt_poll_ns = 1000;
	fake_kvm__reset();
	{
		struct err e = { 0 };

		assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	}
	total = fake_kvm.nr_calls;
	assert_true(total > 10 && total <= FAKE_KVM_MAX_CALLS);
	memcpy(calls, fake_kvm.calls, total * sizeof(calls[0]));
	vm__destroy(&vm);

	for (n = 1; n <= total; n++) {
		const char *step = step_of(calls[n - 1]);
		struct err e = { 0 };
		int err;

		fake_kvm__reset();
		fake_kvm__fail(n, EIO);
		err = vm__build(&vm, &r->cfg, &e);
		if (err) {
			failed++;
			assert_true(err < 0);
			assert_int_equal(e.code, err);
			if (calls[n - 1] == KVM_CHECK_EXTENSION)
				step = "KVM lacks";
			if (!step || !strstr(e.msg, step))
				fail_msg("call %u (%s) failed: \"%s\" does not name \"%s\"", n,
					 fake_kvm__name(calls[n - 1]), e.msg, step ? step : "(nothing)");
		} else if (step) {
			fail_msg("call %u (%s) failed and the build went on", n, fake_kvm__name(calls[n - 1]));
		}
		if (fake_kvm.violations)
			fail_msg("call %u failed: fake KVM: %s", n, fake_kvm.why);
		vm__destroy(&vm);
		if (open_fds() != fds)
			fail_msg("call %u (%s) failed: %u fds open after vm__destroy, %u before", n,
				 fake_kvm__name(calls[n - 1]), open_fds(), fds);
	}
	/* Most calls matter: only optional capabilities and interrupt lines may fail quietly. */
	assert_true(failed > total / 2);
}

/* A production VM has nothing at the test device's ports; --test-device puts it there. */
static void test_builder_adds_the_test_device_only_when_asked(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	uint64_t unclaimed;
	struct vm vm;

	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	unclaimed = vm.pio.unclaimed;
	assert_int_equal(io_inl(&vm.pio, PORT_TESTDEV + TESTDEV_PIO_MAGIC), 0xffffffff);
	io_outl(&vm.pio, PORT_TESTDEV + TESTDEV_PIO_EXIT, 7);
	assert_int_equal(vm.pio.unclaimed, unclaimed + 2);
	assert_false(vm.stopping);
	vm__destroy(&vm);

	r->cfg.test_device = true;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	unclaimed = vm.pio.unclaimed;
	assert_int_equal(io_inl(&vm.pio, PORT_TESTDEV + TESTDEV_PIO_MAGIC), TESTDEV_MAGIC);
	io_outl(&vm.pio, PORT_TESTDEV + TESTDEV_PIO_EXIT, 7);
	assert_int_equal(vm.pio.unclaimed, unclaimed);
	assert_true(vm.stopping);
	assert_int_equal(vm.stop_status, 7);
	vm__destroy(&vm);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool sigterm_pending(void)
{
	sigset_t p;

	sigpending(&p);
	return sigismember(&p, SIGTERM);
}

/* A stop signal that was waiting when the build began: taken, the build stops, nothing leaks. */
static void test_builder_stops_on_a_pending_stop_signal_with_its_status(void **state)
{
	struct rig *r = *state;
	unsigned fds = open_fds();
	struct err e = { 0 };
	sigset_t term, old;
	struct vm vm;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	pthread_kill(pthread_self(), SIGTERM);
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), -EINTR);
	assert_non_null(strstr(e.msg, "Terminated while building the VM"));
	assert_int_equal(vm.stop_reason, VM_STOP_SIGNAL);
	assert_int_equal(vm.stop_status, 128 + SIGTERM);
	assert_false(sigterm_pending());
	vm__destroy(&vm);
	assert_int_equal(open_fds(), fds);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void *send_sigterm_later(void *arg)
{
	usleep(300000);
	pthread_kill(*(pthread_t *)arg, SIGTERM);
	return NULL;
}

/*
 * SIGTERM while the builder waits (2 s) for a NIC's backend that never comes:
 * the wait ends within its 50 ms slice, the session is torn down.
 */
static void test_builder_stop_signal_ends_a_backend_wait_promptly(void **state)
{
	struct rig *r = *state;
	struct virtio_net_spec nic = { .name = "net0", .queues = 1 };
	char dir[] = "/tmp/rtvmm-test-XXXXXX";
	pthread_t self = pthread_self(), killer;
	unsigned fds = open_fds();
	struct err e = { 0 };
	sigset_t term, old;
	struct vm vm;
	double t0;

	/* A 0700 directory: a socket in /tmp itself is refused (anyone could swap it). */
	assert_non_null(mkdtemp(dir));
	snprintf(nic.socket, sizeof(nic.socket), "%s/no-backend.sock", dir);
	r->cfg.nics = &nic;
	r->cfg.nr_nics = 1;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	fake_kvm__reset();
	t0 = now_s();
	assert_int_equal(pthread_create(&killer, NULL, send_sigterm_later, &self), 0);
	assert_int_equal(vm__build(&vm, &r->cfg, &e), -EINTR);
	assert_true(now_s() - t0 < 1.0);
	pthread_join(killer, NULL);
	assert_non_null(strstr(e.msg, "Terminated while building the VM"));
	assert_int_equal(vm.stop_status, 128 + SIGTERM);
	vm__destroy(&vm);
	assert_int_equal(open_fds(), fds);
	assert_false(sigterm_pending());
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rmdir(dir);
}

/* The PCI device ids of bus 0's functions, by slot (0: none), through CONFIG_ADDRESS/DATA. */
static void pci_ids(struct vm *vm, uint32_t ids[32])
{
	unsigned slot;

	for (slot = 0; slot < 32; slot++) {
		io_outl(&vm->pio, 0xcf8, 0x80000000u | slot << 11);
		ids[slot] = io_inl(&vm->pio, 0xcfc);
		if (ids[slot] == 0xffffffff)
			ids[slot] = 0;
	}
}

/* The thread of ours named `name`, or 0. */
static pid_t thread_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	char path[300], comm[32];
	pid_t tid = 0;
	FILE *f;

	assert_non_null(d);
	while (!tid && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && !strncmp(comm, name, strlen(name)) &&
		    comm[strlen(name)] == '\n')
			tid = atoi(de->d_name);
		if (f)
			fclose(f);
	}
	closedir(d);
	return tid;
}

/*
 * Disks come after the NICs as virtio-blk functions (1af4:1042), in the plan's order; a disk
 * the monitor serves has its I/O thread on the plan's io cpus before any vCPU has run.
 */
static void test_builder_adds_disks_and_places_their_io_threads(void **state)
{
	struct rig *r = *state;
	char img[2][64] = { "/tmp/rtvmm-test-disk-XXXXXX", "/tmp/rtvmm-test-disk-XXXXXX" };
	struct plan_disk pdisk[2] = { { .name = "disk0" }, { .name = "data" } };
	struct vm_disk disks[2] = { { .kind = VM_DISK_LOCAL }, { .kind = VM_DISK_LOCAL } };
	struct plan_sched vcpus[2] = { 0 };
	struct plan_vm plan = { .name = "vm", .nr_vcpus = 2, .vcpus = vcpus, .nr_disks = 2,
				.disks = pdisk, .memory = { .size = 16ULL << 20, .node = -1 } };
	unsigned i, fds = open_fds(), blks = 0;
	struct placement p;
	struct err e = { 0 };
	cpu_set_t one, got;
	uint32_t ids[32];
	struct vm vm;
	pid_t tid;

	for (i = 0; i < 2; i++) {
		int fd = mkstemp(img[i]);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 1 << 20), 0);
		close(fd);
		memcpy(disks[i].local.name, pdisk[i].name, sizeof(disks[i].local.name));
		snprintf(disks[i].local.path, sizeof(disks[i].local.path), "%s", img[i]);
		disks[i].local.queues = 1;
	}
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	pdisk[1].io = (struct plan_sched){ .cpus = one, .policy = RT_POLICY_OTHER };
	placement__init(&p, &plan, "plan.yaml");
	r->cfg.placement = &p;
	r->cfg.disks = disks;
	r->cfg.nr_disks = 2;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);

	pci_ids(&vm, ids);
	for (i = 0; i < 32; i++)
		blks += ids[i] == 0x10421af4;
	assert_int_equal(blks, 2);
	tid = thread_named("io-data");
	assert_true(tid > 0);
	assert_int_equal(p.io_tids[1], tid);
	assert_int_equal(sched_getaffinity(tid, sizeof(got), &got), 0);
	assert_true(CPU_EQUAL(&got, &one));
	assert_int_equal(p.io_tids[0], thread_named("io-disk0"));
	for (i = 0; i < vm.nr_vcpus; i++)
		assert_false(vm.vcpus[i].started);

	vm__destroy(&vm);
	placement__fini(&p);
	assert_int_equal(thread_named("io-data"), 0);
	assert_int_equal(open_fds(), fds);
	unlink(img[0]);
	unlink(img[1]);
}

/*
 * Every VM has the power button (its PM1 block reachable through vm__power_button, the grace
 * from the configuration) and pvpanic, after the NICs and disks so that their slots stay put.
 */
static void test_builder_wires_the_power_button_and_adds_pvpanic_last(void **state)
{
	struct rig *r = *state;
	struct err e = { 0 };
	unsigned i, last = 0;
	uint32_t ids[32];
	struct vm vm;

	r->cfg.shutdown_grace_s = 7;
	fake_kvm__reset();
	assert_int_equal(vm__build(&vm, &r->cfg, &e), 0);
	assert_int_equal(vm.shutdown_grace_s, 7);
	assert_int_equal(io_inw(&vm.pio, PORT_ACPI_PM1A_EVT), 0);
	assert_int_equal(vm__power_button(&vm), 0);
	assert_int_equal(io_inw(&vm.pio, PORT_ACPI_PM1A_EVT), ACPI_PM1_PWRBTN);
	pci_ids(&vm, ids);
	for (i = 0; i < 32; i++)
		if (ids[i])
			last = i;
	assert_int_equal(ids[last], (uint32_t)PVPANIC_PCI_DEVICE_ID << 16 | PVPANIC_PCI_VENDOR_ID);
	assert_false(vm.stopping);
	vm__destroy(&vm);
	assert_null(vm.acpi_pm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_builder_exit_on_reboot_keeps_no_reset_state, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_builder_calls_kvm_in_the_documented_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_failing_each_kvm_call_names_the_step_and_leaks_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_enables_kvm_knobs_checked_first_and_before_vcpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_dirty_ring_as_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_refuses_exits_this_kvm_cannot_disable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_refuses_halt_poll_this_kvm_lacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_adds_the_test_device_only_when_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_stops_on_a_pending_stop_signal_with_its_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_stop_signal_ends_a_backend_wait_promptly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_adds_disks_and_places_their_io_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_wires_the_power_button_and_adds_pvpanic_last, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
