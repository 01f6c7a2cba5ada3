#include "vmm/cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/size.h"
#include "vmm/vm.h"

#define DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=-1"

static const char usage_text[] =
	"usage: rtvmm run --kernel FILE [options]\n"
	"       rtvmm --help | --version\n"
	"\n"
	"run options:\n"
	"  -k, --kernel FILE     Linux bzImage, or an ELF64 (vmlinux, rtvmm bare-metal guest)\n"
	"  -i, --initrd FILE     initial ramdisk\n"
	"  -c, --cmdline TEXT    kernel command line (default: \"" DEFAULT_CMDLINE "\")\n"
	"  -n, --vcpus N         number of vCPUs (default 1)\n"
	"  -m, --memory SIZE     guest RAM, e.g. 256M, 2G (default 256M)\n"
	"      --boot MODE       auto (default): the monitor decompresses the bzImage payload;\n"
	"                        direct: enter the bzImage's own decompressor;\n"
	"                        decompress: like auto, but fail if the payload cannot be decompressed\n"
	"      --kvm PATH        KVM device (default /dev/kvm)\n"
	"  -v, --verbose         report every stop and more detail\n"
	"\n"
	"The guest's COM1 is this terminal (stdin/stdout; raw mode when stdin is a TTY,\n"
	"Ctrl-A x quits). Exit status: 0 after guest poweroff or reboot, the guest's\n"
	"status from the test device, 1 when the VM cannot be built, 2 when the guest\n"
	"fails (triple fault, KVM internal error), 128+N on signal N.\n";

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
	};

	return names[r];
}

/* The "what it did" report, on stderr so the guest console owns stdout. */
static void report_build(const struct vm *vm, const struct vm_config *cfg, double build_s)
{
	unsigned i;

	fprintf(stderr, "rtvmm: kernel %s: %s, entry %#llx\n", cfg->boot.kernel_path,
		vm->boot.format, (unsigned long long)vm->boot.entry);
	if (vm->boot.initrd_size)
		fprintf(stderr, "rtvmm: initrd %s: %llu KiB at %#llx\n", cfg->boot.initrd_path,
			(unsigned long long)(vm->boot.initrd_size >> 10),
			(unsigned long long)vm->boot.initrd_start);
	fprintf(stderr, "rtvmm: memory %llu MiB: memfd %d mapped MAP_SHARED at %p (4 KiB pages)\n",
		(unsigned long long)(vm->mem.size >> 20), vm->mem.fd, (void *)vm->mem.base);
	for (i = 0; i < vm->mem.nr_regions; i++)
		fprintf(stderr, "rtvmm:   slot %u: guest 0x%09llx-0x%09llx -> host %p\n", i,
			(unsigned long long)vm->mem.regions[i].gpa,
			(unsigned long long)(vm->mem.regions[i].gpa + vm->mem.regions[i].size - 1),
			(void *)vm->mem.regions[i].hva);
	fprintf(stderr, "rtvmm: %u vCPU thread%s (vcpu0..vcpu%u), in-kernel irqchip and PIT, "
		"ACPI RSDP at %#llx, MP table at 0xf0000\n", vm->nr_vcpus,
		vm->nr_vcpus > 1 ? "s" : "", vm->nr_vcpus - 1, (unsigned long long)vm->rsdp);
	fprintf(stderr, "rtvmm: VM built in %.3f s\n", build_s);
}

static void report_stop(const struct vm *vm, double run_s)
{
	unsigned i;

	fprintf(stderr, "rtvmm: stopped after %.3f s: %s, exit status %d\n", run_s,
		stop_name(vm->stop_reason), vm->stop_status);
	for (i = 0; i < vm->nr_vcpus && vm->verbose; i++) {
		const uint64_t *c = vm->vcpus[i].exits.count;

		fprintf(stderr, "rtvmm:   vcpu%u exits: io %llu, mmio %llu, intr %llu\n", i,
			(unsigned long long)c[KVM_EXIT_IO], (unsigned long long)c[KVM_EXIT_MMIO],
			(unsigned long long)c[KVM_EXIT_INTR]);
	}
}

static int parse_run(int argc, char **argv, struct vm_config *cfg)
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n;
	char *end;
	int c;

	optind = 1;
	argv[0] = "rtvmm run"; /* how getopt names us in its messages */
	while ((c = getopt_long(argc, argv, "k:i:c:n:m:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg->boot.kernel_path = optarg;
			break;
		case 'i':
			cfg->boot.initrd_path = optarg;
			break;
		case 'c':
			cfg->boot.cmdline = optarg;
			break;
		case 'n':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' || n > 1000000)
				return usage_error("--vcpus '%s': not a number of vCPUs", optarg);
			cfg->nr_vcpus = (unsigned)n;
			break;
		case 'm':
			switch (size__parse(optarg, &cfg->mem_size)) {
			case 0:
				break;
			case -ERANGE:
				return usage_error("--memory '%s': too large", optarg);
			default:
				return usage_error("--memory '%s': not a size (examples: 256M, 2G, 1GiB)",
						   optarg);
			}
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
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'rtvmm --help'.\n");
			return 1;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!cfg->boot.kernel_path)
		return usage_error("%s", "run: --kernel FILE is required");
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	struct vm_config cfg = {
		.kvm_path = "/dev/kvm",
		.boot = { .cmdline = DEFAULT_CMDLINE, .mode = BOOT_MODE_AUTO },
		.nr_vcpus = 1,
		.mem_size = 256ULL << 20,
		.console_in = STDIN_FILENO,
		.console_out = STDOUT_FILENO,
	};
	struct timespec t0;
	struct err e = { 0 };
	struct vm vm;
	int status;

	status = parse_run(argc, argv, &cfg);
	if (status)
		return status;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* A closed console reader must not kill the monitor: the UART counts the lost bytes. */
	signal(SIGPIPE, SIG_IGN);
	if (vcpu__init_signals() < 0) {
		fprintf(stderr, "rtvmm: cannot install the vCPU kick signal handler\n");
		return 1;
	}
	if (vm__build(&vm, &cfg, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg[0] ? e.msg : strerror(-e.code));
		vm__destroy(&vm);
		return 1;
	}
	report_build(&vm, &cfg, seconds_since(&t0));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	status = vm__run(&vm);
	report_stop(&vm, seconds_since(&t0));
	vm__destroy(&vm);
	return status;
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
	return usage_error("unknown command '%s' (expected: run)", argv[1]);
}
