#include "app/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/builder.h"
#include "app/control.h"
#include "app/ctl.h"
#include "app/migration.h"
#include "app/sandbox.h"
#include "app/up.h"
#include "base/size.h"
#include "base/trust.h"
#include "base/vm_limits.h"
#include "config/check.h"
#include "config/parse.h"
#include "numa/mem.h"
#include "numa/topology.h"
#include "vmm/kvm.h"
#include "vmm/snapshot.h"
#include "vmm/virtio/net.h"
#include "vmm/virtio/pci.h"
#include "vmm/vm.h"

#define DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=-1"
#define CLI_DEFAULT_VCPUS "1"
#define CLI_DEFAULT_MEMORY "256M"

static const char usage_text[] =
	"usage: rtvmm run --kernel FILE [options]\n"
	"       rtvmm run PLAN.yaml [--vm NAME] [--kvm PATH] [--test-device] [-v]\n"
	"       rtvmm check PLAN.yaml [--topology FILE.xml | --synthetic DESC] [--overrides S] [--json]\n"
	"       rtvmm kvm-host [--kvm PATH]\n"
	"       rtvmm ctl SOCKET VERB [--json]   (rtvmm ctl --help: the verbs)\n"
	"       rtvmm up HOSTPLAN.yaml [--run-dir DIR] [--timeout S]\n"
	"       rtvmm ctl list [--run-dir DIR] [--json]\n"
	"       rtvmm down [HOSTPLAN.yaml | --run-dir DIR] [--timeout S]\n"
	"       rtvmm --help | --version\n"
	"\n"
	"run options:\n"
	"  -k, --kernel FILE     Linux bzImage, or an ELF64 (vmlinux, rtvmm bare-metal guest)\n"
	"  -i, --initrd FILE     initial ramdisk\n"
	"  -c, --cmdline TEXT    kernel command line (default: \"" DEFAULT_CMDLINE "\")\n"
	"  -n, --vcpus N         number of vCPUs (default " CLI_DEFAULT_VCPUS ")\n"
	"  -m, --memory SIZE     guest RAM, e.g. 256M, 2G (default " CLI_DEFAULT_MEMORY ")\n"
	"      --boot MODE       auto (default): the monitor decompresses the bzImage payload;\n"
	"                        direct: enter the bzImage's own decompressor;\n"
	"                        decompress: like auto, but fail if the payload cannot be decompressed\n"
	"      --kvm PATH        KVM device (default /dev/kvm)\n"
	"      --net SPEC        a virtio-net NIC over vhost-user (repeatable):\n"
	"                        socket=PATH[,mac=52:54:00:..][,queues=N][,mode=client|server][,name=NAME]\n"
	"                        [,stats_socket=PATH][,queue_size=N]\n"
	"                        (queue_size: ring entries per queue, a power of two 64..32768,\n"
	"                        default 1024: a larger ring rides out longer host stalls;\n"
	"                        a plan NIC's keys; name defaults to net0, net1, ...;\n"
	"                        stats_socket: the backend rtvmm-dataplane's --stats-socket,\n"
	"                        whose counters for this NIC vm.counters shows)\n"
	"      --disk SPEC       a virtio-blk disk (repeatable; the guest sees vda, vdb, ... in order):\n"
	"                        path=IMAGE[,readonly=on][,serial=S][,queues=N][,name=NAME]\n"
	"                          a raw image file or block device served by rtvmm (a qcow2 is\n"
	"                          refused: export it with qemu-storage-daemon, below)\n"
	"                        socket=PATH[,readonly=on][,queues=N][,mode=client|server][,name=NAME]\n"
	"                          a vhost-user-blk backend (qemu-storage-daemon --export\n"
	"                          type=vhost-user-blk, SPDK); a plan disk's keys; name defaults to\n"
	"                          disk0, disk1, ...\n"
	"      --serial MODE     where the guest's COM1 goes: tty (default: this terminal,\n"
	"                        stdin/stdout), file=PATH (output appended, no input),\n"
	"                        socket=PATH (a unix socket, 0600, one client at a time,\n"
	"                        a newcomer replaces it: rtvmm ctl API-SOCKET console,\n"
	"                        socat), off (output dropped, counted); with a plan file\n"
	"                        only for a VM whose plan sets no serial: (rtvmm up gives\n"
	"                        each such VM socket=RUN/NAME.console)\n"
	"      --api-socket PATH serve the control API (HTTP/JSON, cloud-hypervisor's /api/v1\n"
	"                        calls; docs/api/openapi.yaml) on this unix socket, mode 0600\n"
	"                        (a plan VM's api_socket: key; this flag overrides it)\n"
	"      --dataplane-stats PATH  the stats socket of the rtvmm-dataplane serving the\n"
	"                        plan's NICs: every NIC without its own stats_socket is\n"
	"                        counted there (rtvmm up gives it)\n"
	"      --test-device     add rtvmm's test device (exit status and putc ports, for the\n"
	"                        bare-metal test guest and benchmarks; a production VM has none)\n"
	"      --shutdown-grace SECONDS  how long SIGTERM waits for the guest to power off\n"
	"                        after pressing its ACPI power button (default 30, at most\n"
	"                        3600; 0: SIGTERM stops the VM at once; a plan's\n"
	"                        shutdown_grace_s)\n"
	"      --disable-exits LIST  exits the guest runs without (KVM_CAP_X86_DISABLE_EXITS):\n"
	"                        hlt,pause,mwait,cstate, any of them (QEMU's -overcommit\n"
	"                        cpu-pm=on); refused when this KVM cannot; give the vCPUs\n"
	"                        cpus of their own (rtvmm check says); a plan VM's disable_exits\n"
	"      --halt-poll-ns NS how long a halted vCPU polls before it sleeps, this VM only\n"
	"                        (KVM_CAP_HALT_POLL, 0..1000000000; 0: never; default: the kvm\n"
	"                        module's halt_poll_ns); a plan VM's halt_poll_ns\n"
	"      --dirty-ring N    how a live migration tracks the guest's writes: KVM's dirty\n"
	"                        ring of N entries per vCPU (a power of two, 1024..65536) or 0\n"
	"                        for KVM's dirty bitmap (default: a ring of 4096 where this\n"
	"                        KVM has one); a plan VM's dirty_ring\n"
	"      --restore DIR     start from the snapshot in DIR (rtvmm ctl SOCKET snapshot DIR)\n"
	"                        instead of booting: the same machine (memory, vCPUs, NICs,\n"
	"                        disks, --test-device) as when it was taken, checked; the\n"
	"                        placement may differ (a plan's cpus and node)\n"
	"      --incoming tcp:HOST:PORT  receive a live migration instead of booting (rtvmm ctl\n"
	"                        SOCKET migrate tcp:HOST:PORT on the source): listens on HOST\n"
	"                        (a numeric address) once the VM is built and placed, takes one\n"
	"                        source with the same machine, runs the guest once its\n"
	"                        placement is proven; the source stops only then\n"
	"      --on-reboot restart|exit  what a guest reset or the API's vm.reboot does:\n"
	"                        restart (default: the guest boots again in this process, same\n"
	"                        API socket, placement and guest RAM) or exit (the VM stops,\n"
	"                        status 0); a plan VM's on_reboot\n"
	"  -v, --verbose         report every stop and more detail\n"
	"      --vm NAME         the VM of PLAN.yaml to run (needed when it has several)\n"
	"      --user USER[:GROUP]  the unprivileged user (and group) to drop to once the\n"
	"                        vCPUs are placed (overrides the plan's host.user/group)\n"
	"      --no-sandbox      debugging only: no privilege drop, no seccomp filters\n"
	"\n"
	"After set-up rtvmm drops to host.user (or --user) and confines every thread with a\n"
	"seccomp filter for its kind (vCPU, vhost-user session, console, main); a forbidden\n"
	"system call stops it with a line naming the thread and the call, status 159.\n"
	"\n"
	"With a plan file, kernel, memory, vCPUs and their placement come from the plan:\n"
	"it is checked against this host first (errors refuse to start), then guest RAM is\n"
	"placed (hugepages, node, prefault, mlock) and every thread pinned and scheduled\n"
	"as planned; the placement read back from the kernel is printed before the guest runs.\n"
	"\n"
	"kvm-host: opens the KVM device, creates a VM and a vCPU, and prints which KVM it is\n"
	"(kvm_intel, kvm_amd, kvm_pvm); exit status 1 with the real cause when it cannot.\n"
	"\n"
	"up: checks HOSTPLAN.yaml like check (errors refuse), starts rtvmm-dataplane for its\n"
	"host.dataplane section, then one detached `rtvmm run` per VM, each with its API socket,\n"
	"log and console socket (NAME.console, unless the plan sets serial:) in the run directory\n"
	"(default host.run_dir/PLANNAME; 0700, host.user's), waits (--timeout, default 60 s) until\n"
	"every VM is Running with its placement proven, and prints one table; a VM that fails is\n"
	"reported and everything started is stopped. ctl list: the table again (a dead VM is shown\n"
	"dead, never restarted). down: every VM's power button, vm.shutdown after --timeout\n"
	"(default: the VM's shutdown_grace_s), SIGKILL last, then the dataplane and its DPDK\n"
	"runtime directory; the logs stay.\n"
	"\n"
	"check options:\n"
	"      --topology FILE   check against an hwloc XML topology instead of this host\n"
	"      --synthetic DESC  check against an hwloc synthetic topology, e.g.\n"
	"                        \"pack:2 numa:1 core:8 pu:2\"\n"
	"      --overrides S     host state for a non-host topology: isolated=, nohz_full=,\n"
	"                        hugepages=, pagesizes=, rt_runtime= (see README.md)\n"
	"      --json            print the findings as JSON\n"
	"\n"
	"The guest's COM1 is this terminal unless --serial says otherwise (stdin/stdout;\n"
	"raw mode when stdin is a TTY, Ctrl-A x quits). Exit status: 0 after guest poweroff\n"
	"or, with --on-reboot exit, reboot (also when the guest powers off within the shutdown\n"
	"grace after SIGTERM, and after the API's vm.shutdown, vmm.shutdown or, with\n"
	"--on-reboot exit, vm.reboot), the guest's status\n"
	"from the test device, 1 when the VM cannot be built, 2 when the guest fails\n"
	"(triple fault, KVM internal error), 3 when the guest kernel panicked (pvpanic:\n"
	"\"guest panicked\"), 128+N on signal N (also while the VM is being built).\n"
	"SIGINT and SIGHUP stop the VM at once. SIGTERM presses the guest's ACPI power\n"
	"button and stops the VM with status 143 only when it has not powered off within\n"
	"the shutdown grace, or at a second SIGTERM. Guest output a stalled reader does\n"
	"not take is dropped beyond 64 KiB and counted in the stop report; the guest\n"
	"never waits for it. SIGUSR2 makes rtvmm print every vCPU's registers and go on.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "rtvmm: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'rtvmm --help'.\n");
	return 1;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *stop_name(enum vm_stop_reason r)
{
	static const char *const names[] = {
		[VM_STOP_NONE] = "running",
		[VM_STOP_POWEROFF] = "guest powered off",
		[VM_STOP_REBOOT] = "guest requested reset",
		[VM_STOP_GUEST_EXIT] = "guest exited through the test device",
		[VM_STOP_ERROR] = "guest error",
		[VM_STOP_SIGNAL] = "signal",
		[VM_STOP_PANIC] = "guest panicked",
		[VM_STOP_MIGRATED] = "migrated: the guest runs on the destination",
	};

	return names[r];
}

/* "node 0: 16384 pages" from move_pages(2), or why it is unknown (pages not touched yet). */
static const char *placement_text(const struct vm *vm, char *buf, size_t len)
{
	struct numa_mem ram = { .fd = vm->mem.fd, .base = vm->mem.base, .size = vm->mem.size,
				.page_size = vm->mem.page_size };
	struct numa_placement p;
	size_t off = 0;
	unsigned n;

	if (numa_mem__placement(&ram, &p) < 0)
		return "placement unknown";
	for (n = 0; n < p.nr_nodes && n < sizeof(p.pages_per_node) / sizeof(p.pages_per_node[0]); n++)
		if (p.pages_per_node[n] && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%snode %u: %llu pages",
						off ? ", " : "", n,
						(unsigned long long)p.pages_per_node[n]);
	if (p.pages_unknown && off < len)
		snprintf(buf + off, len - off, "%s%llu pages not yet touched", off ? ", " : "",
			 (unsigned long long)p.pages_unknown);
	return buf;
}

/* The "what it did" report, on stderr so the guest console owns stdout. */
static void report_build(const struct vm *vm, const struct vm_config *cfg, double build_s)
{
	char where[256];
	unsigned i;

	fprintf(stderr, "rtvmm: kernel %s: %s, entry %#llx\n", cfg->boot.kernel_path,
		vm->boot.format, (unsigned long long)vm->boot.entry);
	if (vm->boot.initrd_size)
		fprintf(stderr, "rtvmm: initrd %s: %llu KiB at %#llx\n", cfg->boot.initrd_path,
			(unsigned long long)(vm->boot.initrd_size >> 10),
			(unsigned long long)vm->boot.initrd_start);
	fprintf(stderr, "rtvmm: memory %llu MiB: memfd %d mapped MAP_SHARED at %p, %s pages, %s\n",
		(unsigned long long)(vm->mem.size >> 20), vm->mem.fd, (void *)vm->mem.base,
		vm->mem.page_size >= (1ULL << 30) ? "1 GiB" : vm->mem.page_size >= (2ULL << 20) ? "2 MiB" : "4 KiB",
		placement_text(vm, where, sizeof(where)));
	for (i = 0; i < vm->mem.nr_regions; i++)
		fprintf(stderr, "rtvmm:   slot %u: guest 0x%09llx-0x%09llx -> host %p\n", i,
			(unsigned long long)vm->mem.regions[i].gpa,
			(unsigned long long)(vm->mem.regions[i].gpa + vm->mem.regions[i].size - 1),
			(void *)vm->mem.regions[i].hva);
	fprintf(stderr, "rtvmm: %u vCPU thread%s (vcpu0..vcpu%u), in-kernel irqchip and PIT, "
		"ACPI RSDP at %#llx, MP table at 0xf0000\n", vm->nr_vcpus,
		vm->nr_vcpus > 1 ? "s" : "", vm->nr_vcpus - 1, (unsigned long long)vm->rsdp);
	if (vm->disabled_exits || vm->halt_poll_ns >= 0) {
		char exits[64], poll[64];

		if (vm->halt_poll_ns >= 0)
			snprintf(poll, sizeof(poll), "%lld ns", (long long)vm->halt_poll_ns);
		fprintf(stderr, "rtvmm: KVM: exits disabled: %s (KVM_CAP_X86_DISABLE_EXITS); halt "
			"polling: %s (KVM_CAP_HALT_POLL)\n",
			vm_exits__names(vm->disabled_exits, exits, sizeof(exits)),
			vm->halt_poll_ns >= 0 ? poll : "KVM's default");
	}
	if (vm->kvm.emulated_cpl0)
		fprintf(stderr, "rtvmm: nested PVM KVM (kvm_pvm): the monitor emulates the instructions "
			"KVM's emulator rejects (int3, clac/stac, fwait, popcnt)\n");
	fprintf(stderr, "rtvmm: VM built in %.3f s\n", build_s);
}

static void report_stop(const struct vm *vm, double run_s)
{
	unsigned i;

	fprintf(stderr, "rtvmm: stopped after %.3f s: %s, exit status %d\n", run_s,
		stop_name(vm->stop_reason), vm->stop_status);
	if (vm->reboots)
		fprintf(stderr, "rtvmm:   reboots in place: %llu\n", (unsigned long long)vm->reboots);
	device_list__report(&vm->devices, "rtvmm:   ", stderr);
	fprintf(stderr, "rtvmm:   buses: port accesses no device claimed %llu, MMIO accesses %llu\n",
		(unsigned long long)vm->pio.unclaimed, (unsigned long long)vm->mmio.unclaimed);
	for (i = 0; i < vm->nr_vcpus; i++) {
		const struct exit_ctx *x = &vm->vcpus[i].exits;

		if (vm->verbose)
			fprintf(stderr, "rtvmm:   vcpu%u exits: io %llu, mmio %llu, intr %llu\n", i,
				(unsigned long long)x->count[KVM_EXIT_IO],
				(unsigned long long)x->count[KVM_EXIT_MMIO],
				(unsigned long long)x->count[KVM_EXIT_INTR]);
		if (x->emulated)
			fprintf(stderr, "rtvmm:   vcpu%u: %llu instructions emulated by the monitor\n", i,
				(unsigned long long)x->emulated);
	}
}

/* Command-line form of a run: the flags (which become a one-VM plan), or a plan file. */
#define CLI_MAX_NICS 8
#define CLI_MAX_DISKS VM_MAX_DISKS
/* The single-value flags (a repeated one replaces its value), the NICs and the disks. */
#define CLI_MAX_ARGS (10 + CLI_MAX_NICS + CLI_MAX_DISKS)

struct run_args {
	struct plan_arg args[CLI_MAX_ARGS];  /* --kernel, --memory, --net ...: keys of the VM */
	unsigned nr_args;
	unsigned nr_nics, nr_disks;
	bool vcpus_set, memory_set;
	const char *plan_file;
	const char *vm_name;
	char user[64], group[64];            /* --user USER[:GROUP], "" when not given */
	const char *api_socket;              /* --api-socket PATH, NULL when not given */
	const char *serial;                  /* --serial MODE, NULL when not given */
	const char *dataplane_stats;         /* --dataplane-stats PATH, NULL when not given */
	const char *restore;                 /* --restore DIR, NULL when not given */
	const char *incoming;                /* --incoming tcp:HOST:PORT, NULL when not given */
	bool no_sandbox;
	char disable_exits_at[4200];         /* where the knobs were asked, for the build's errors */
	char halt_poll_at[4200];
	char dirty_ring_at[4200];
};

/* Records `--flag value` as the plan key `key`; a flag given again replaces its value. */
static void add_arg(struct run_args *ra, const char *flag, const char *key, const char *value)
{
	unsigned i;

	for (i = 0; i < ra->nr_args; i++)
		if (!strcmp(ra->args[i].key, key) && strcmp(key, "nics") && strcmp(key, "disks")) {
			ra->args[i].value = value;
			return;
		}
	ra->args[ra->nr_args++] = (struct plan_arg){ .flag = flag, .key = key, .value = value };
}

static int parse_run(int argc, char **argv, struct vm_config *cfg, struct run_args *ra)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "vcpus", required_argument, NULL, 'n' },
		{ "memory", required_argument, NULL, 'm' },
		{ "boot", required_argument, NULL, 'b' },
		{ "kvm", required_argument, NULL, 'K' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "vm", required_argument, NULL, 'V' },
		{ "net", required_argument, NULL, 'N' },
		{ "disk", required_argument, NULL, 'D' },
		{ "test-device", no_argument, NULL, 'T' },
		{ "serial", required_argument, NULL, 'R' },
		{ "shutdown-grace", required_argument, NULL, 'G' },
		{ "on-reboot", required_argument, NULL, 'O' },
		{ "disable-exits", required_argument, NULL, 'X' },
		{ "halt-poll-ns", required_argument, NULL, 'H' },
		{ "dirty-ring", required_argument, NULL, 'W' },
		{ "user", required_argument, NULL, 'U' },
		{ "no-sandbox", no_argument, NULL, 'S' },
		{ "api-socket", required_argument, NULL, 'A' },
		{ "dataplane-stats", required_argument, NULL, 'P' },
		{ "restore", required_argument, NULL, 'r' },
		{ "incoming", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool kernel_set = false;
	int c;

	optind = 1;
	argv[0] = "rtvmm run"; /* how getopt names us in its messages */
	while ((c = getopt_long(argc, argv, "k:i:c:n:m:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			kernel_set = true;
			add_arg(ra, "--kernel", "kernel", optarg);
			break;
		case 'i':
			add_arg(ra, "--initrd", "initrd", optarg);
			break;
		case 'c':
			add_arg(ra, "--cmdline", "cmdline", optarg);
			break;
		case 'n':
			ra->vcpus_set = true;
			add_arg(ra, "--vcpus", "vcpus", optarg);
			break;
		case 'm':
			ra->memory_set = true;
			add_arg(ra, "--memory", "memory", optarg);
			break;
		case 'b':
			if (!strcmp(optarg, "auto"))
				cfg->boot.mode = BOOT_MODE_AUTO;
			else if (!strcmp(optarg, "direct"))
				cfg->boot.mode = BOOT_MODE_DIRECT;
			else if (!strcmp(optarg, "decompress"))
				cfg->boot.mode = BOOT_MODE_DECOMPRESS;
			else
				return usage_error("--boot '%s': expected auto, direct or decompress", optarg);
			break;
		case 'K':
			cfg->kvm_path = optarg;
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case 'T':
			cfg->test_device = true;
			break;
		case 'R':
			ra->serial = optarg;
			add_arg(ra, "--serial", "serial", optarg);
			break;
		case 'G':
			add_arg(ra, "--shutdown-grace", "shutdown_grace_s", optarg);
			break;
		case 'O':
			add_arg(ra, "--on-reboot", "on_reboot", optarg);
			break;
		case 'X':
			add_arg(ra, "--disable-exits", "disable_exits", optarg);
			break;
		case 'H':
			add_arg(ra, "--halt-poll-ns", "halt_poll_ns", optarg);
			break;
		case 'W':
			add_arg(ra, "--dirty-ring", "dirty_ring", optarg);
			break;
		case 'V':
			ra->vm_name = optarg;
			break;
		case 'N':
			if (ra->nr_nics++ == CLI_MAX_NICS)
				return usage_error("--net %s: at most 8 NICs", optarg);
			add_arg(ra, "--net", "nics", optarg);
			break;
		case 'D':
			if (ra->nr_disks++ == CLI_MAX_DISKS)
				return usage_error("--disk %s: at most 16 disks", optarg);
			add_arg(ra, "--disk", "disks", optarg);
			break;
		case 'U': {
			const char *colon = strchr(optarg, ':');
			size_t ul = colon ? (size_t)(colon - optarg) : strlen(optarg);

			if (!ul || ul >= sizeof(ra->user) || (colon && (!colon[1] ||
			    strlen(colon + 1) >= sizeof(ra->group))))
				return usage_error("--user '%s': expected USER or USER:GROUP", optarg);
			snprintf(ra->user, sizeof(ra->user), "%.*s", (int)ul, optarg);
			snprintf(ra->group, sizeof(ra->group), "%s", colon ? colon + 1 : "");
			break;
		}
		case 'S':
			ra->no_sandbox = true;
			break;
		case 'A':
			ra->api_socket = optarg;
			break;
		case 'P':
			ra->dataplane_stats = optarg;
			break;
		case 'r':
			ra->restore = optarg;
			break;
		case 'I':
			ra->incoming = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'rtvmm --help'.\n");
			return 1;
		}
	}
	if (optind < argc)
		ra->plan_file = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	/* With a plan file, --serial only fills a VM's unset serial (serial_over_plan). */
	if (ra->plan_file && ra->nr_args > (ra->serial ? 1u : 0u))
		return usage_error("%s: the kernel, initrd, cmdline, vCPUs, memory, NICs, disks, "
				   "shutdown grace and KVM knobs come from the plan file; drop those "
				   "flags or the file",
				   ra->plan_file);
	if (!ra->plan_file && ra->vm_name)
		return usage_error("--vm %s: needs a plan file", ra->vm_name);
	if (ra->restore && ra->incoming)
		return usage_error("%s", "--restore and --incoming: one or the other");
	if (!ra->plan_file && !kernel_set)
		return usage_error("%s", "run: --kernel FILE (or a plan file) is required");
	/* The command line's defaults: what a plan file must spell out. */
	if (!ra->vcpus_set)
		add_arg(ra, "--vcpus", "vcpus", CLI_DEFAULT_VCPUS);
	if (!ra->memory_set)
		add_arg(ra, "--memory", "memory", CLI_DEFAULT_MEMORY);
	return 0;
}

/*
 * --serial with a plan file: where COM1 goes for a plan VM that has no `serial` key (rtvmm up
 * gives each such VM a socket in its run directory); refused when the plan sets one. The
 * value is parsed as the flag is without a plan file.
 */
static int serial_over_plan(struct plan *plan, const struct plan_vm *pvm, const char *value,
			    struct err *e)
{
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", pvm->kernel },
		{ "--vcpus", "vcpus", CLI_DEFAULT_VCPUS },
		{ "--memory", "memory", CLI_DEFAULT_MEMORY },
		{ "--serial", "serial", value },
	};
	struct plan flags = { 0 };
	int err;

	if (pvm->serial.loc.line)
		return err__set(e, -EINVAL, "--serial '%s': %s:%u: %s sets where COM1 goes already",
				value, plan->file, pvm->serial.loc.line, pvm->serial.loc.key);
	err = plan__from_args(&flags, args, sizeof(args) / sizeof(args[0]), e);
	if (err)
		return err;
	plan->vms[pvm - plan->vms].serial = flags.vms[0].serial;
	plan__free(&flags);
	return 0;
}

/* Picks the VM to run from the plan: the named one, or the only one. */
static const struct plan_vm *choose_vm(const struct plan *plan, const char *name)
{
	const struct plan_vm *vm;

	if (name) {
		vm = plan__find_vm(plan, name);
		if (!vm)
			fprintf(stderr, "rtvmm: %s: no VM named '%s'\n", plan->file, name);
		return vm;
	}
	if (plan->nr_vms == 1)
		return &plan->vms[0];
	fprintf(stderr, "rtvmm: %s: %u VMs in the plan, choose one with --vm NAME\n", plan->file,
		plan->nr_vms);
	return NULL;
}

/* Checks the whole plan against this host; prints findings; false when there are errors. */
static bool plan_fits_host(const struct plan *plan)
{
	struct err e = { 0 };
	int n = plan__check_host(plan, stderr, &e);

	if (n < 0)
		fprintf(stderr, "rtvmm: %s\n", e.msg);
	if (n)
		fprintf(stderr, "rtvmm: %s: the plan does not fit this host; nothing was started\n",
			plan->file);
	return n == 0;
}

/* Who may serve a vhost-user socket, and who owns the run directory when rtvmm creates it. */
struct backend_trust {
	struct trust_uids peers;   /* backend_user, else root, us or host.user */
	uid_t run_dir_uid;         /* host.user, else ours */
	gid_t run_dir_gid;         /* host.group, host.user's, else ours */
};

/* The trust of the backend of the socket planned at `key` (a NIC, a vhost-user disk). */
static int backend_trust(struct backend_trust *t, const struct plan_host *host,
			 const char *backend_user, const char *key, struct err *e)
{
	*t = (struct backend_trust){ .peers = { .service = TRUST_NO_UID, .only = TRUST_NO_UID },
				     .run_dir_uid = TRUST_NO_UID, .run_dir_gid = (gid_t)-1 };
	if (host->user[0] && trust__user(host->user, &t->peers.service, &t->run_dir_gid))
		return err__set(e, -ENOENT, "host.user '%s': no such user on this host", host->user);
	t->run_dir_uid = t->peers.service;
	if (host->group[0] && trust__group(host->group, &t->run_dir_gid))
		return err__set(e, -ENOENT, "host.group '%s': no such group on this host", host->group);
	if (backend_user[0] && trust__user(backend_user, &t->peers.only, NULL))
		return err__set(e, -ENOENT, "%s.backend_user '%s': no such user on this host", key,
				backend_user);
	return 0;
}

/* The machine's NIC from a plan NIC, its backend trusted as backend_trust says. */
static int nic_spec_from_plan(struct virtio_net_spec *spec, const struct plan_host *host,
			      const struct plan_nic *nic, struct err *e)
{
	struct backend_trust t;
	int err = backend_trust(&t, host, nic->backend_user, nic->loc.key, e);

	if (err)
		return err;
	*spec = (struct virtio_net_spec){ .queues = nic->queues, .queue_size = nic->queue_size,
					  .server = nic->mode == PLAN_NIC_SERVER, .peers_set = true,
					  .peers = t.peers, .run_dir_uid = t.run_dir_uid,
					  .run_dir_gid = t.run_dir_gid };
	memcpy(spec->name, nic->name, sizeof(spec->name));
	memcpy(spec->socket, nic->socket, sizeof(spec->socket));
	plan_nic__guest_mac(nic, spec->mac);
	memcpy(spec->run_dir, host->run_dir, sizeof(spec->run_dir));
	return 0;
}

/* The machine's disk from a plan disk: an image rtvmm serves, or a vhost-user-blk backend. */
static int disk_spec_from_plan(struct vm_disk *spec, const struct plan_host *host,
			       const struct plan_disk *d, struct err *e)
{
	struct backend_trust t;
	int err;

	memset(spec, 0, sizeof(*spec));
	if (d->kind == PLAN_DISK_LOCAL) {
		spec->kind = VM_DISK_LOCAL;
		memcpy(spec->local.name, d->name, sizeof(spec->local.name));
		memcpy(spec->local.path, d->path, sizeof(spec->local.path));
		memcpy(spec->local.serial, d->serial, sizeof(spec->local.serial));
		spec->local.readonly = d->readonly;
		spec->local.queues = d->queues;
		return 0;
	}
	err = backend_trust(&t, host, d->backend_user, d->loc.key, e);
	if (err)
		return err;
	spec->kind = VM_DISK_VHOST_USER;
	spec->vhost = (struct vhost_blk_spec){ .server = d->mode == PLAN_NIC_SERVER,
					       .readonly = d->readonly, .queues = d->queues,
					       .peers_set = true, .peers = t.peers,
					       .run_dir_uid = t.run_dir_uid,
					       .run_dir_gid = t.run_dir_gid };
	memcpy(spec->vhost.name, d->name, sizeof(spec->vhost.name));
	memcpy(spec->vhost.socket, d->socket, sizeof(spec->vhost.socket));
	memcpy(spec->vhost.run_dir, host->run_dir, sizeof(spec->vhost.run_dir));
	return 0;
}

/*
 * A plan from flags is not checked against the host (no placement): its disks' images are,
 * before anything starts, each error naming the flag: "--disk 'path=x': vm.disks[0].path: ...".
 */
static bool flag_disks_usable(const struct run_args *ra, const struct plan_vm *vm)
{
	struct err e = { 0 };
	const char *code;
	unsigned i;

	for (i = 0; i < vm->nr_disks; i++) {
		const struct plan_disk *d = &vm->disks[i];
		const struct plan_arg *a = &ra->args[d->image_loc.line - 1];

		if (d->kind != PLAN_DISK_LOCAL || !plan_disk__check_image(d, &code, &e))
			continue;
		fprintf(stderr, "rtvmm: %s '%s': %s: %s\n", a->flag, a->value, d->image_loc.key, e.msg);
		return false;
	}
	return true;
}

/*
 * Fills the machine part of `cfg` from a plan VM; `nics` and `disks` (freed by the caller)
 * hold its NICs and disks.
 */
static int config_from_plan(struct vm_config *cfg, const struct plan *plan,
			    const struct plan_vm *vm, struct virtio_net_spec **nics,
			    struct vm_disk **disks, struct err *e)
{
	unsigned i;
	int err;

	cfg->boot.kernel_path = vm->kernel;
	cfg->boot.initrd_path = vm->initrd[0] ? vm->initrd : NULL;
	if (vm->cmdline[0])
		cfg->boot.cmdline = vm->cmdline;
	cfg->nr_vcpus = vm->nr_vcpus;
	cfg->mem_size = vm->memory.size;
	*nics = calloc(vm->nr_nics ? vm->nr_nics : 1, sizeof(**nics));
	if (!*nics)
		return err__set(e, -ENOMEM, "out of memory for the plan's NICs");
	for (i = 0; i < vm->nr_nics; i++) {
		err = nic_spec_from_plan(&(*nics)[i], &plan->host, &vm->nics[i], e);
		if (err)
			return err;
	}
	cfg->nics = *nics;
	cfg->nr_nics = vm->nr_nics;
	*disks = calloc(vm->nr_disks ? vm->nr_disks : 1, sizeof(**disks));
	if (!*disks)
		return err__set(e, -ENOMEM, "out of memory for the plan's disks");
	for (i = 0; i < vm->nr_disks; i++) {
		err = disk_spec_from_plan(&(*disks)[i], &plan->host, &vm->disks[i], e);
		if (err)
			return err;
	}
	cfg->disks = *disks;
	cfg->nr_disks = vm->nr_disks;
	cfg->shutdown_grace_s = vm->shutdown_grace_s;
	cfg->exit_on_reboot = vm->on_reboot == PLAN_ON_REBOOT_EXIT;
	cfg->disable_exits = vm->disable_exits;
	cfg->halt_poll_set = vm->halt_poll_set;
	cfg->halt_poll_ns = vm->halt_poll_ns;
	cfg->dirty_ring_set = vm->dirty_ring_set;
	cfg->dirty_ring = vm->dirty_ring;
	return 0;
}

/* The plan's exit bits are KVM's: config_from_plan hands them over as they are. */
_Static_assert(PLAN_EXIT_MWAIT == KVM_X86_DISABLE_EXITS_MWAIT &&
	       PLAN_EXIT_HLT == KVM_X86_DISABLE_EXITS_HLT &&
	       PLAN_EXIT_PAUSE == KVM_X86_DISABLE_EXITS_PAUSE &&
	       PLAN_EXIT_CSTATE == KVM_X86_DISABLE_EXITS_CSTATE, "plan_exit is not KVM's bits");

/* Where a plan value was given: "FILE:LINE: KEY", or "--flag 'VALUE'" on the command line. */
static const char *given_at(const struct run_args *ra, const struct plan *plan,
			    const struct plan_loc *loc, char *buf, size_t len)
{
	if (!ra->plan_file && loc->line >= 1 && loc->line <= ra->nr_args)
		snprintf(buf, len, "%s '%s'", ra->args[loc->line - 1].flag,
			 ra->args[loc->line - 1].value);
	else
		snprintf(buf, len, "%s:%u: %s", plan->file, loc->line, loc->key);
	return buf;
}

/*
 * The control API for this run (--api-socket, else the plan VM's api_socket), served from
 * the "api" thread: its socket is given to the user rtvmm drops to, who serves it after.
 */
static int start_control(struct control **out, struct vm *vm, const struct vm_config *cfg,
			 const struct run_args *ra, const struct plan *plan, const struct plan_vm *pvm,
			 struct err *e)
{
	struct control_config cc = { .vm = vm, .cfg = cfg, .plan = ra->plan_file ? pvm : NULL,
				     .serial_socket = cfg->console_socket, .owner = TRUST_NO_UID,
				     .group = (gid_t)-1 };
	const char **nic_stats;
	struct backend_trust t;
	unsigned i;
	int err;

	*out = NULL;
	cc.socket_path = ra->api_socket ? ra->api_socket : pvm->api_socket[0] ? pvm->api_socket : NULL;
	if (!cc.socket_path)
		return 0;
	if (sandbox__enabled() && plan->host.user[0]) {
		err = backend_trust(&t, &plan->host, "", "api_socket", e);
		if (err)
			return err;
		cc.owner = t.run_dir_uid;
		cc.group = t.run_dir_gid;
	}
	/* A NIC's own stats_socket, else the dataplane's that serves every plan NIC, else none. */
	nic_stats = calloc(pvm->nr_nics + 1, sizeof(*nic_stats));
	if (!nic_stats)
		return err__set(e, -ENOMEM, "API socket %s: out of memory", cc.socket_path);
	for (i = 0; i < pvm->nr_nics; i++)
		nic_stats[i] = pvm->nics[i].stats_socket[0] ? pvm->nics[i].stats_socket :
							      ra->dataplane_stats;
	cc.nic_stats = nic_stats;
	err = control__start(out, &cc, e);
	free(nic_stats);
	return err;
}

/*
 * COM1 per the VM's `serial` (--serial): this terminal, a file opened for appending (its fd in
 * *file_fd, closed by the caller), a socket (its directory made if it is host.run_dir, and
 * checked like a vhost-user socket's), or nothing. A plan file was checked already; flags are
 * checked here, each error naming the flag.
 */
static int serial_setup(struct vm_config *cfg, const struct run_args *ra, const struct plan *plan,
			const struct plan_vm *vm, int *file_fd, struct err *e)
{
	const struct plan_serial *ser = &vm->serial;
	const char *run_dir = plan->host.run_dir, *code;
	size_t rl = strlen(run_dir);
	struct backend_trust t;
	struct err why = { 0 };
	char what[sizeof(ser->path) + 128];
	int err;

	if (ra->plan_file && !ra->serial)
		snprintf(what, sizeof(what), "%s (%s)", ser->loc.key, ser->path);
	else
		snprintf(what, sizeof(what), "--serial '%s=%s'",
			 ser->mode == PLAN_SERIAL_FILE ? "file" : "socket", ser->path);
	switch (ser->mode) {
	case PLAN_SERIAL_TTY:
		return 0;
	case PLAN_SERIAL_OFF:
		cfg->console_in = cfg->console_out = -1;
		return 0;
	case PLAN_SERIAL_FILE:
	case PLAN_SERIAL_SOCKET:
		break;
	}
	err = backend_trust(&t, &plan->host, "", ser->loc.key, e);
	if (err)
		return err;
	if ((!ra->plan_file || ra->serial) && plan_serial__check(ser, &t.peers, run_dir, &code, &why))
		return err__set(e, why.code, "%s: %s", what, why.msg);
	cfg->console_in = cfg->console_out = -1;
	if (ser->mode == PLAN_SERIAL_FILE) {
		*file_fd = open(ser->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
		if (*file_fd < 0)
			return err__set(e, -errno, "%s: cannot open for appending: %s", what,
					strerror(errno));
		cfg->console_out = *file_fd;
		return 0;
	}
	if (rl && !strncmp(ser->path, run_dir, rl) && ser->path[rl] == '/') {
		err = trust__make_run_dir(run_dir, t.run_dir_uid, t.run_dir_gid, &t.peers, &why);
		if (err)
			return err__set(e, err, "%s: %s", what, why.msg);
	}
	err = trust__socket_dir(ser->path, &t.peers, what, e);
	if (err)
		return err;
	cfg->console_socket = ser->path;
	return 0;
}

/* The sandbox for this run: the plan's host.user/group (--user already in them); --no-sandbox turns it off. */
static int start_sandbox(const struct run_args *ra, const struct plan *plan, const struct plan_vm *pvm,
			 struct err *e)
{
	struct sandbox_config sc = {
		.off = ra->no_sandbox,
		.user = plan->host.user,
		.group = plan->host.group,
		.memory_locked = ra->plan_file && pvm->memory.mlock,
	};
	int err = sandbox__init(&sc, e);

	return err ? err : sandbox__prepare_sockets(&plan->host, pvm, e);
}

static int cmd_run(int argc, char **argv)
{
	struct vm_config cfg = {
		.kvm_path = "/dev/kvm",
		.boot = { .cmdline = DEFAULT_CMDLINE, .mode = BOOT_MODE_AUTO },
		.console_in = STDIN_FILENO,
		.console_out = STDOUT_FILENO,
	};
	static struct run_args ra;
	struct virtio_net_spec *plan_nics = NULL;
	struct vm_disk *plan_disks = NULL;
	int serial_fd = -1;
	const struct plan_vm *pvm;
	struct placement placement;
	struct migration_incoming incoming = { .listen_fd = -1, .fd = -1 };
	struct control *control = NULL;
	struct plan plan = { 0 };
	struct timespec t0;
	struct err e = { 0 };
	sigset_t stop_signals;
	struct vm vm;
	int status;

	status = parse_run(argc, argv, &cfg, &ra);
	if (status)
		return status;
	/* Flags or a file, one validated VM: the same schema, limits and defaults. */
	if (ra.plan_file ? plan__load(&plan, ra.plan_file, &e) : plan__from_args(&plan, ra.args, ra.nr_args, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		return 1;
	}
	/* --user replaces host.user/group everywhere: the drop, the run dir's owner, the trusted uids. */
	if (ra.user[0]) {
		memcpy(plan.host.user, ra.user, sizeof(plan.host.user));
		memcpy(plan.host.group, ra.group, sizeof(plan.host.group));
	}
	pvm = choose_vm(&plan, ra.vm_name);
	if (!pvm || (ra.plan_file ? !plan_fits_host(&plan) : !flag_disks_usable(&ra, pvm))) {
		plan__free(&plan);
		return 1;
	}
	if ((ra.plan_file && ra.serial && serial_over_plan(&plan, pvm, ra.serial, &e)) ||
	    config_from_plan(&cfg, &plan, pvm, &plan_nics, &plan_disks, &e) ||
	    serial_setup(&cfg, &ra, &plan, pvm, &serial_fd, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		if (serial_fd >= 0)
			close(serial_fd);
		free(plan_nics);
		free(plan_disks);
		plan__free(&plan);
		return 1;
	}
	/* Before the first thread starts: the filters, the SIGSYS report, the sockets' directories. */
	if (start_sandbox(&ra, &plan, pvm, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		if (serial_fd >= 0)
			close(serial_fd);
		free(plan_nics);
		free(plan_disks);
		plan__free(&plan);
		return 1;
	}
	cfg.sandbox = sandbox__enabled();
	cfg.disable_exits_at = given_at(&ra, &plan, &pvm->disable_exits_loc, ra.disable_exits_at,
					sizeof(ra.disable_exits_at));
	cfg.halt_poll_at = given_at(&ra, &plan, &pvm->halt_poll_loc, ra.halt_poll_at,
				    sizeof(ra.halt_poll_at));
	cfg.dirty_ring_at = given_at(&ra, &plan, &pvm->dirty_ring_loc, ra.dirty_ring_at,
				     sizeof(ra.dirty_ring_at));
	/* A plan file places the VM (hugepages, nodes, pinning) and proves it; flags do not. */
	if (ra.plan_file) {
		placement__init(&placement, pvm, plan.file);
		cfg.placement = &placement;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* A closed console reader must not kill the monitor: the UART counts the lost bytes. */
	signal(SIGPIPE, SIG_IGN);
	if (vcpu__init_signals() < 0) {
		fprintf(stderr, "rtvmm: cannot install the vCPU kick signal handler\n");
		return 1;
	}
	/*
	 * Stop signals wait in a queue from here on, in every thread: the build
	 * takes them between steps (builder.h), vm__run from its signalfd.
	 */
	vm__stop_signals(&stop_signals);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	/* A busy port refuses before anything is built; the source is told RUNNING at the gate. */
	if (ra.incoming) {
		if (migration__listen(&incoming, ra.incoming, &e)) {
			fprintf(stderr, "rtvmm: %s\n", e.msg);
			status = 1;
			goto out_free;
		}
		cfg.guest_ready = migration__ready;
		cfg.ready_opaque = &incoming;
	}
	if (vm__build(&vm, &cfg, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg[0] ? e.msg : strerror(-e.code));
		status = vm.stop_reason == VM_STOP_SIGNAL ? vm.stop_status : 1;
		goto out_destroy;
	}
	report_build(&vm, &cfg, seconds_since(&t0));
	if (ra.incoming) {
		struct timespec t1;

		fprintf(stderr, "rtvmm: waiting for a live migration on %s\n", ra.incoming);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (migration__receive(&incoming, &vm, &e)) {
			fprintf(stderr, "rtvmm: --incoming %s: %s\n", ra.incoming, e.msg);
			status = vm.stop_reason == VM_STOP_SIGNAL ? vm.stop_status : 1;
			goto out_destroy;
		}
		fprintf(stderr, "rtvmm: received the VM in %.3f s (%llu pages, %llu MiB zero, %llu "
			"bytes on the wire)\n", seconds_since(&t1),
			(unsigned long long)incoming.st.pages_sent,
			(unsigned long long)(incoming.st.zero_bytes >> 20),
			(unsigned long long)incoming.st.bytes_sent);
	}
	if (ra.restore) {
		struct timespec t1;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (snapshot__restore(&vm, ra.restore, &e)) {
			fprintf(stderr, "rtvmm: --restore: %s\n", e.msg);
			status = 1;
			goto out_destroy;
		}
		fprintf(stderr, "rtvmm: restored the snapshot %s in %.3f s (%.3f s since start): "
			"the guest goes on where it was\n", ra.restore, seconds_since(&t1),
			seconds_since(&t0));
	}
	if (cfg.placement && placement__before_run(cfg.placement, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		status = 1;
		goto out_destroy;
	}
	if (start_control(&control, &vm, &cfg, &ra, &plan, pvm, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		status = 1;
		goto out_destroy;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	status = vm__run(&vm);
	control__stop(control);
	report_stop(&vm, seconds_since(&t0));
out_destroy:
	vm__destroy(&vm);
out_free:
	migration__close(&incoming, cfg.placement && cfg.placement->failed[0] ?
			 cfg.placement->failed : NULL);
	if (cfg.placement)
		placement__fini(cfg.placement);
	if (serial_fd >= 0)
		close(serial_fd);
	free(plan_nics);
	free(plan_disks);
	plan__free(&plan);
	return status;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "topology", required_argument, NULL, 't' },
		{ "synthetic", required_argument, NULL, 's' },
		{ "overrides", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *xml = NULL, *synthetic = NULL, *overrides = NULL;
	struct findings f = { 0 };
	struct plan plan = { 0 };
	struct err e = { 0 };
	struct topology t;
	bool json = false;
	int c, err, status;

	optind = 1;
	argv[0] = "rtvmm check";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			xml = optarg;
			break;
		case 's':
			synthetic = optarg;
			break;
		case 'o':
			overrides = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'rtvmm --help'.\n");
			return 1;
		}
	}
	if (optind != argc - 1)
		return usage_error("%s", "check: exactly one PLAN.yaml is required");
	if (xml && synthetic)
		return usage_error("%s", "check: --topology and --synthetic exclude each other");
	if (overrides && !xml && !synthetic)
		return usage_error("%s", "check: --overrides describes a --topology or --synthetic machine");
	if (plan__load(&plan, argv[optind], &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		return 1;
	}
	if (xml)
		err = topology__load_file(&t, xml, overrides, &e);
	else if (synthetic)
		err = topology__load_synthetic(&t, synthetic, overrides, &e);
	else
		err = topology__load_host(&t, &e);
	if (err) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		plan__free(&plan);
		return 1;
	}
	err = plan__check(&plan, &t, &f);
	if (err)
		fprintf(stderr, "rtvmm: %s: cannot check the plan: %s\n", plan.file, strerror(-err));
	else if (json)
		err = findings__print_json(&f, &plan, &t, stdout);
	else
		findings__print(&f, &plan, &t, stdout);
	status = err || findings__count(&f, FINDING_ERROR) ? 1 : 0;
	findings__free(&f);
	topology__free(&t);
	plan__free(&plan);
	return status;
}

/* rtvmm kvm-host [--kvm PATH]: "KIND PATH api N max_vcpus M" when a VM can be made. */
static int cmd_kvm_host(int argc, char **argv)
{
	const char *path = "/dev/kvm";
	struct kvm kvm;
	struct err e;

	if (argc == 3 && !strcmp(argv[1], "--kvm"))
		path = argv[2];
	else if (argc != 1)
		return usage_error("%s", "kvm-host: the only option is --kvm PATH");
	if (kvm__open(&kvm, path, &e) || kvm__probe_vm(&kvm, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		kvm__close(&kvm);
		return 1;
	}
	printf("%s %s api %d max_vcpus %u\n", kvm__host_kind("/sys"), path, KVM_API_VERSION,
	       kvm.max_vcpus);
	kvm__close(&kvm);
	return 0;
}

int cli__main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("%s", "missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("rtvmm %s\n", RTVMM_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "kvm-host"))
		return cmd_kvm_host(argc - 1, argv + 1);
	if (!strcmp(argv[1], "up"))
		return up__cmd_up(argc - 1, argv + 1);
	if (!strcmp(argv[1], "down"))
		return up__cmd_down(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl") && argc > 2 && !strcmp(argv[2], "list"))
		return up__cmd_list(argc - 2, argv + 2);
	if (!strcmp(argv[1], "ctl"))
		return ctl__main(argc - 1, argv + 1);
	return usage_error("unknown command '%s' (expected: run, check, kvm-host, ctl, up or down)",
			   argv[1]);
}
