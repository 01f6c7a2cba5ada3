/*
 * rtvmm-kvm-floor: the floor of an exit's cost on this host. A minimal raw
 * /dev/kvm program (no rtvmm code) that runs the bare-metal guest's exit-cost
 * loop (bench/guest/exitcost_loop.S: the same source, the same bytes, copied
 * into this VM) at CPL0 and at CPL3 in 64-bit long mode, answers its PIO and
 * MMIO reads with a single store each, and reduces the samples with the
 * guest's own code (exitcost.h). Its lines match the guest's test=exitcost
 * lines, prefixed "rtvmm-kvm-floor: " instead of "rtvmm-guest: ".
 *
 *   rtvmm-kvm-floor [--iters N] [--cpl 0,3] [--irqchip] [--kvm PATH]
 *   rtvmm-kvm-floor --tsc-khz        # prints KVM_GET_TSC_KHZ of a vCPU and exits
 *
 * The VM: one memslot at 0, a GDT, a 64-bit TSS whose I/O bitmap allows the
 * test device's ports (how CPL3 may do PIO on this host: IOPL 3 is dropped),
 * identity page tables with U=1 everywhere (2 MiB pages; 3-4 GiB uncached,
 * where the unbacked MMIO address lies), no IDT (a fault is a triple fault:
 * KVM_EXIT_SHUTDOWN). CPL3 comes from KVM_SET_SREGS: CS and SS with DPL 3.
 * The vCPU "calls" exitcost_run with a return address on the stack pointing
 * at exitcost_floor_done, which reports on DONE_PORT.
 *
 * Exit status: 0 measured, 1 error, 77 no /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "exitcost.h"

extern const uint8_t exitcost_floor_done[], exitcost_floor_end[];   /* exitcost_loop.S, EXITCOST_FLOOR */

#define PREFIX        "rtvmm-kvm-floor: "
#define PORT_BASE     0x510                    /* the rtvmm test device's ports: same port numbers */
#define DONE_PORT     (PORT_BASE + 0x0)        /* its EXIT register */
#define MMIO_BASE     0xD0000000ull            /* its MMIO window: unbacked here too */
#define MAX_ITERS     10000000ull

/* Guest-physical layout. */
#define GPA_GDT       0x1000
#define GPA_TSS       0x2000
#define GPA_PML4      0x5000
#define GPA_PDPT      0x6000
#define GPA_PD_LOW    0x7000   /* 0-1 GiB */
#define GPA_PD_HIGH   0x8000   /* 3-4 GiB */
#define GPA_CODE      0x10000
#define GPA_ARGS      0x20000
#define GPA_STACK_TOP 0x100000
#define GPA_SAMPLES   0x200000

#define SEL_CODE      0x10
#define SEL_DATA      0x18
#define SEL_UDATA     0x2b
#define SEL_UCODE     0x33
#define SEL_TSS       0x38

#define TSS_SIZE      104
#define IOBITMAP_SIZE (65536 / 8 + 1)   /* every port, plus the terminating 0xff byte */

#define PTE_P  (1ull << 0)
#define PTE_W  (1ull << 1)
#define PTE_U  (1ull << 2)
#define PTE_PWT (1ull << 3)
#define PTE_PCD (1ull << 4)
#define PTE_PS (1ull << 7)

struct floor {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
	uint64_t mem_size;
	uint64_t tsc_khz;
};

static const char *const kind_name[] = { "none", "pio", "mmio" };

/* Reports a failed call (errno) and exits 1. */
static void die(const char *what)
{
	fprintf(stderr, PREFIX "error: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The identity map, GDT, TSS and I/O bitmap, and the loop's code in guest memory. */
static void build_memory(struct floor *f)
{
	uint64_t *gdt = (uint64_t *)(f->mem + GPA_GDT);
	uint64_t *pml4 = (uint64_t *)(f->mem + GPA_PML4), *pdpt = (uint64_t *)(f->mem + GPA_PDPT);
	uint64_t *pd_low = (uint64_t *)(f->mem + GPA_PD_LOW), *pd_high = (uint64_t *)(f->mem + GPA_PD_HIGH);
	uint8_t *tss = f->mem + GPA_TSS;
	const uint8_t *code = (const uint8_t *)(uintptr_t)exitcost_run;
	uint64_t tss_limit = TSS_SIZE + IOBITMAP_SIZE - 1, tss_base = GPA_TSS;

	pml4[0] = GPA_PDPT | PTE_P | PTE_W | PTE_U;
	pdpt[0] = GPA_PD_LOW | PTE_P | PTE_W | PTE_U;
	pdpt[3] = GPA_PD_HIGH | PTE_P | PTE_W | PTE_U;
	for (uint64_t i = 0; i < 512; i++) {
		pd_low[i] = (i << 21) | PTE_P | PTE_W | PTE_U | PTE_PS;
		pd_high[i] = (0xC0000000ull + (i << 21)) | PTE_P | PTE_W | PTE_U | PTE_PS | PTE_PCD | PTE_PWT;
	}

	gdt[SEL_CODE / 8] = 0x00af9a000000ffffull;
	gdt[SEL_DATA / 8] = 0x00cf92000000ffffull;
	gdt[SEL_UDATA / 8] = 0x00cff2000000ffffull;
	gdt[SEL_UCODE / 8] = 0x00affa000000ffffull;
	gdt[SEL_TSS / 8] = (tss_limit & 0xffff) | (tss_base & 0xffffff) << 16 | 0x8bull << 40 |
			   ((tss_limit >> 16) & 0xf) << 48 | ((tss_base >> 24) & 0xff) << 56;
	gdt[SEL_TSS / 8 + 1] = tss_base >> 32;

	/* 64-bit TSS: I/O map base at offset 102, the bitmap right after the TSS. */
	tss[102] = TSS_SIZE & 0xff;
	tss[103] = TSS_SIZE >> 8;
	memset(tss + TSS_SIZE, 0xff, IOBITMAP_SIZE);
	for (unsigned p = PORT_BASE; p < PORT_BASE + 16; p++)
		tss[TSS_SIZE + p / 8] &= (uint8_t)~(1u << (p % 8));

	memcpy(f->mem + GPA_CODE, code, (size_t)(exitcost_floor_end - code));
}

/* The vCPU's CPUID: everything KVM supports, as a monitor sets it. */
static void set_cpuid(struct floor *f)
{
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	if (!c)
		die("calloc");
	c->nent = n;
	if (ioctl(f->kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(f->vcpu, KVM_SET_CPUID2, c) < 0)
		die("KVM_SET_CPUID2");
	free(c);
}

/* VM, memory for ITERS samples, optional in-kernel irqchip, one vCPU, its TSC rate, CPUID, guest memory. */
static void floor_open(struct floor *f, const char *kvm_path, uint64_t iters, bool irqchip)
{
	f->kvm = open(kvm_path, O_RDWR | O_CLOEXEC);
	if (f->kvm < 0) {
		fprintf(stderr, PREFIX "%s: %s\n", kvm_path, strerror(errno));
		exit(errno == ENOENT || errno == ENODEV ? 77 : 1);
	}
	f->vm = ioctl(f->kvm, KVM_CREATE_VM, 0);
	if (f->vm < 0)
		die("KVM_CREATE_VM");
	f->mem_size = GPA_SAMPLES + ((iters * 4 + 0x1fffff) & ~0x1fffffull);
	f->mem = mmap(NULL, f->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (f->mem == MAP_FAILED)
		die("mmap guest memory");
	struct kvm_userspace_memory_region slot = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = f->mem_size, .userspace_addr = (uintptr_t)f->mem,
	};
	if (ioctl(f->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	if (irqchip && ioctl(f->vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");
	f->vcpu = ioctl(f->vm, KVM_CREATE_VCPU, 0);
	if (f->vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(f->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	f->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->vcpu, 0);
	if (f->run == MAP_FAILED)
		die("mmap kvm_run");
	int khz = ioctl(f->vcpu, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		die("KVM_GET_TSC_KHZ");
	f->tsc_khz = (uint64_t)khz;
	set_cpuid(f);
	build_memory(f);
}

/* A flat 64-bit code or data segment of privilege DPL. */
static struct kvm_segment segment(uint16_t sel, uint8_t type, unsigned dpl, bool code)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
		.dpl = (uint8_t)dpl, .db = !code, .s = 1, .l = code, .g = 1,
	};
}

/* Long mode at CPL (0 or 3), RIP at exitcost_run(args), returning to exitcost_floor_done. */
static void enter(struct floor *f, unsigned cpl)
{
	struct kvm_sregs s;
	struct kvm_regs r = { 0 };
	uint64_t done = GPA_CODE + (uint64_t)(exitcost_floor_done - (const uint8_t *)(uintptr_t)exitcost_run);

	if (ioctl(f->vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	s.cs = segment(cpl ? SEL_UCODE : SEL_CODE, 0xb, cpl, true);
	s.ss = segment(cpl ? SEL_UDATA : SEL_DATA, 0x3, cpl, false);
	s.ds = s.es = s.fs = s.gs = s.ss;
	s.tr = (struct kvm_segment){ .base = GPA_TSS, .limit = TSS_SIZE + IOBITMAP_SIZE - 1,
				     .selector = SEL_TSS, .type = 0xb, .present = 1 };
	s.ldt = (struct kvm_segment){ .type = 0x2, .unusable = 1 };
	s.gdt.base = GPA_GDT;
	s.gdt.limit = (SEL_TSS + 16) - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = 0x80050033;   /* PG WP NE ET MP PE */
	s.cr3 = GPA_PML4;
	s.cr4 = 1u << 5;      /* PAE */
	s.efer = 0x500;       /* LMA LME */
	if (ioctl(f->vcpu, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");

	*(uint64_t *)(f->mem + GPA_STACK_TOP - 16) = done;
	r.rip = GPA_CODE;
	r.rsp = GPA_STACK_TOP - 16;
	r.rdi = GPA_ARGS;
	r.r12 = DONE_PORT;
	r.rflags = cpl ? 0x202 : 0x2;   /* as the bare-metal guest runs them */
	if (ioctl(f->vcpu, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
}

/* Runs the vCPU until the loop reports on DONE_PORT; returns its bad-read count. The hot path: one store per exit. */
static uint32_t run_loop(struct floor *f)
{
	struct kvm_run *run = f->run;
	const uint32_t magic = EXITCOST_MAGIC;

	for (;;) {
		if (ioctl(f->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO) {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;

			if (run->io.direction == KVM_EXIT_IO_IN) {
				memcpy(data, &magic, sizeof(magic));
				continue;
			}
			if (run->io.port == DONE_PORT) {
				uint32_t bad;
				memcpy(&bad, data, sizeof(bad));
				return bad;
			}
		} else if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write) {
			memcpy(run->mmio.data, &magic, sizeof(magic));
			continue;
		}
		struct kvm_regs r;
		if (ioctl(f->vcpu, KVM_GET_REGS, &r) < 0)
			memset(&r, 0, sizeof(r));
		fprintf(stderr, PREFIX "error: unexpected exit %u (io port 0x%x dir %u, mmio 0x%llx) at rip 0x%llx rsp 0x%llx\n",
			run->exit_reason, run->io.port, run->io.direction, (unsigned long long)run->mmio.phys_addr,
			(unsigned long long)r.rip, (unsigned long long)r.rsp);
		exit(1);
	}
}

/* One (kind, cpl): run the loop, reduce, print the guest's lines; exits 1 on a bad read. */
static void measure(struct floor *f, uint32_t kind, unsigned cpl, uint64_t iters)
{
	struct exitcost_args *a = (struct exitcost_args *)(f->mem + GPA_ARGS);
	uint32_t *samples = (uint32_t *)(f->mem + GPA_SAMPLES);
	struct exitcost_stats st;
	unsigned last = 0;

	*a = (struct exitcost_args){
		.samples = (uint32_t *)(uintptr_t)GPA_SAMPLES, .count = iters, .kind = kind, .expect = EXITCOST_MAGIC,
		.addr = kind == EXITCOST_MMIO ? MMIO_BASE + EXITCOST_MMIO_OFF : PORT_BASE + EXITCOST_PORT_OFF,
	};
	enter(f, cpl);
	uint32_t bad = run_loop(f);
	exitcost_reduce(samples, iters, f->tsc_khz, &st);
	for (unsigned i = 0; i < EXITCOST_HIST; i++)
		if (st.hist[i])
			last = i;
	printf(PREFIX "exitcost: kind=%s cpl=%u n=%llu bad=%u min=%llu avg=%llu p50=%llu p99=%llu max=%llu unit=ns\n",
	       kind_name[kind], cpl, (unsigned long long)st.n, bad, (unsigned long long)st.min,
	       (unsigned long long)st.avg, (unsigned long long)st.p50, (unsigned long long)st.p99,
	       (unsigned long long)st.max);
	for (unsigned i = 0, in_line = 0; i < EXITCOST_HIST; i++) {
		if (!st.hist[i])
			continue;
		if (in_line == 0)
			printf(PREFIX "exitcost: hist kind=%s cpl=%u", kind_name[kind], cpl);
		printf(" %llu:%u", 1ull << i, st.hist[i]);
		if (++in_line == EXITCOST_HIST_PER_LINE || i == last) {
			printf("\n");
			in_line = 0;
		}
	}
	fflush(stdout);
	if (bad) {
		fprintf(stderr, PREFIX "error: %u of %llu reads did not return 0x%x\n", bad,
			(unsigned long long)iters, EXITCOST_MAGIC);
		exit(1);
	}
}

/* The command line, on TO. */
static void usage(FILE *to)
{
	fprintf(to, "usage: rtvmm-kvm-floor [--iters N] [--cpl 0,3] [--irqchip] [--kvm PATH]\n"
		    "       rtvmm-kvm-floor --tsc-khz [--kvm PATH]\n"
		    "Times PIO and MMIO exits of a raw KVM vCPU running the bare-metal guest's exit-cost loop.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iters", required_argument, NULL, 'n' }, { "cpl", required_argument, NULL, 'c' },
		{ "irqchip", no_argument, NULL, 'i' }, { "kvm", required_argument, NULL, 'k' },
		{ "tsc-khz", no_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char *kvm_path = "/dev/kvm", *cpls = "0,3";
	uint64_t iters = 2000;
	bool irqchip = false, tsc_only = false;
	struct floor f;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'n':
			errno = 0;
			iters = strtoull(optarg, &end, 0);
			if (errno || *end || !iters || iters > MAX_ITERS) {
				fprintf(stderr, PREFIX "--iters %s: expected 1..%llu\n", optarg, MAX_ITERS);
				return 1;
			}
			break;
		case 'c':
			if (strcmp(optarg, "0") && strcmp(optarg, "3") && strcmp(optarg, "0,3")) {
				fprintf(stderr, PREFIX "--cpl %s: expected 0, 3 or 0,3\n", optarg);
				return 1;
			}
			cpls = optarg;
			break;
		case 'i':
			irqchip = true;
			break;
		case 'k':
			kvm_path = optarg;
			break;
		case 't':
			tsc_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	prctl(PR_SET_NAME, "floor-vcpu0");
	floor_open(&f, kvm_path, tsc_only ? 1 : iters, irqchip);
	if (tsc_only) {
		printf("%llu\n", (unsigned long long)f.tsc_khz);
		return 0;
	}
	printf(PREFIX "exitcost: tsc_khz=%llu (KVM_GET_TSC_KHZ) code=0x%08x iters=%llu irqchip=%s\n",
	       (unsigned long long)f.tsc_khz,
	       exitcost_code_hash((const uint8_t *)(uintptr_t)exitcost_run, exitcost_run_end),
	       (unsigned long long)iters, irqchip ? "yes" : "no");
	for (unsigned cpl = 0; cpl <= 3; cpl += 3) {
		if (!strchr(cpls, (int)('0' + cpl)))
			continue;
		for (uint32_t kind = EXITCOST_NONE; kind <= EXITCOST_MMIO; kind++)
			measure(&f, kind, cpl, iters);
	}
	printf(PREFIX "exitcost ok\n");
	return 0;
}
