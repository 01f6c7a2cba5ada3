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
 * The VM: one memslot at 0, a GDT, a 64-bit TSS (RSP0, IST1, an I/O bitmap
 * that allows the test device's ports: how CPL3 may do PIO on the nested PVM
 * host, which drops IOPL 3), identity page tables with U=1 everywhere (2 MiB
 * pages; 3-4 GiB uncached, where the unbacked MMIO address lies), and an IDT
 * whose 32 exception gates (IST1) report the vector and frame on FAULT_PORT:
 * a fault is an error line naming it, not a bare triple fault.
 *
 * The vCPU starts at CPL0 (KVM_SET_SREGS) in floor_entry, which does what an
 * OS does: LTR loads TR from the GDT's available TSS descriptor, and IRETQ
 * enters exitcost_run at the CPL asked for (0 or 3) with a return address on
 * the stack pointing at exitcost_floor_done, which reports on DONE_PORT.
 * KVM_SET_SREGS alone gives TR the busy 64-bit TSS type (0xb) that LTR would
 * leave and that VMX requires in long mode, but QEMU's TCG (the CPU of an L2
 * guest under scripts/kvmbox) only accepts an I/O-bitmap check when its TR
 * cache says type 9, which its own LTR leaves there. A TR the guest loaded
 * itself is one every CPU and emulator agrees on.
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
#define FAULT_PORT    0x520                    /* floor_fault: an exception's vector (CPL0, no bitmap) */
#define MMIO_BASE     0xD0000000ull            /* its MMIO window: unbacked here too */
#define MAX_ITERS     10000000ull

/* Guest-physical layout. */
#define GPA_GDT       0x1000
#define GPA_TSS       0x2000
#define GPA_PML4      0x5000
#define GPA_PDPT      0x6000
#define GPA_PD_LOW    0x7000   /* 0-1 GiB */
#define GPA_PD_HIGH   0x8000   /* 3-4 GiB */
#define GPA_IDT       0x9000
#define GPA_CODE      0x10000  /* exitcost_run .. exitcost_floor_end */
#define GPA_ENTRY     0x18000  /* floor_entry .. floor_code_end */
#define GPA_ARGS      0x20000
#define GPA_IST1_TOP  0xE0000  /* exception frames (every gate uses IST1) */
#define GPA_KSTACK_TOP 0xF0000 /* RSP0, and floor_entry's IRETQ frame */
#define GPA_STACK_TOP 0x100000 /* the loop's stack, at either CPL */
#define GPA_SAMPLES   0x200000

#define SEL_CODE      0x10
#define SEL_DATA      0x18
#define SEL_UDATA     0x2b
#define SEL_UCODE     0x33
#define SEL_TSS       0x38

#define TSS_SIZE      104
#define TSS_RSP0      4
#define TSS_IST1      36
#define TSS_IOMAP     102
#define IOBITMAP_SIZE (65536 / 8 + 1)   /* every port, plus the terminating 0xff byte */
#define TSS_LIMIT     (TSS_SIZE + IOBITMAP_SIZE - 1)
#define N_EXC         32

#define STR(x)  #x
#define XSTR(x) STR(x)

#define PTE_P  (1ull << 0)
#define PTE_W  (1ull << 1)
#define PTE_U  (1ull << 2)
#define PTE_PWT (1ull << 3)
#define PTE_PCD (1ull << 4)
#define PTE_PS (1ull << 7)

/*
 * The floor's own guest code, position independent, copied to GPA_ENTRY.
 * floor_entry (CPL0, RSP at an IRETQ frame built by enter()): LTR, then
 * IRETQ into the loop. floor_stubs: one 16-byte stub per exception vector
 * 0-31 (the IDT's gates, IST1), each reporting its vector on FAULT_PORT.
 */
extern const uint8_t floor_entry[], floor_stubs[], floor_code_end[];
__asm__(
	"	.pushsection .rodata.floor_entry, \"a\"\n"
	"	.globl	floor_entry, floor_stubs, floor_code_end\n"
	"	.hidden	floor_entry, floor_stubs, floor_code_end\n"
	"	.balign	16\n"
	"floor_entry:\n"
	"	movw	$" XSTR(SEL_TSS) ", %ax\n"
	"	ltr	%ax\n"
	"	iretq\n"
	"	.balign	16\n"
	"floor_stubs:\n"
	"	.set	floor_vec, 0\n"
	"	.rept	" XSTR(N_EXC) "\n"
	"	.balign	16\n"
	"	movl	$floor_vec, %eax\n"
	"	jmp	floor_fault\n"
	"	.set	floor_vec, floor_vec + 1\n"
	"	.endr\n"
	"floor_fault:\n"
	"	movw	$" XSTR(FAULT_PORT) ", %dx\n"
	"	outl	%eax, %dx\n"
	"	hlt\n"
	"	jmp	floor_fault\n"
	"floor_code_end:\n"
	"	.popsection\n");

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

/* The GDT's TSS descriptor, type 9 (available 64-bit TSS): floor_entry's LTR marks it busy. */
static void gdt_tss_available(struct floor *f)
{
	uint64_t *gdt = (uint64_t *)(f->mem + GPA_GDT);
	uint64_t limit = TSS_LIMIT, base = GPA_TSS;

	gdt[SEL_TSS / 8] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
			   ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt[SEL_TSS / 8 + 1] = base >> 32;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint64_t get64(const struct floor *f, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, f->mem + gpa, sizeof(v));
	return v;
}

/* The identity map, GDT, TSS and I/O bitmap, IDT, the loop's code and the floor's own in guest memory. */
static void build_memory(struct floor *f)
{
	uint64_t *gdt = (uint64_t *)(f->mem + GPA_GDT), *idt = (uint64_t *)(f->mem + GPA_IDT);
	uint64_t *pml4 = (uint64_t *)(f->mem + GPA_PML4), *pdpt = (uint64_t *)(f->mem + GPA_PDPT);
	uint64_t *pd_low = (uint64_t *)(f->mem + GPA_PD_LOW), *pd_high = (uint64_t *)(f->mem + GPA_PD_HIGH);
	uint8_t *tss = f->mem + GPA_TSS;
	const uint8_t *code = (const uint8_t *)(uintptr_t)exitcost_run;

	pml4[0] = GPA_PDPT | PTE_P | PTE_W | PTE_U;
	pdpt[0] = GPA_PD_LOW | PTE_P | PTE_W | PTE_U;
	pdpt[3] = GPA_PD_HIGH | PTE_P | PTE_W | PTE_U;
	for (uint64_t i = 0; i < 512; i++) {
		pd_low[i] = (i << 21) | PTE_P | PTE_W | PTE_U | PTE_PS;
		pd_high[i] = (0xC0000000ull + (i << 21)) | PTE_P | PTE_W | PTE_U | PTE_PS | PTE_PCD | PTE_PWT;
	}

	/* Flat segments, accessed bit set (as KVM_SET_SREGS gives them): 64-bit code, data, DPL 0 and 3. */
	gdt[SEL_CODE / 8] = 0x00af9b000000ffffull;
	gdt[SEL_DATA / 8] = 0x00cf93000000ffffull;
	gdt[SEL_UDATA / 8] = 0x00cff3000000ffffull;
	gdt[SEL_UCODE / 8] = 0x00affb000000ffffull;
	gdt_tss_available(f);

	/* 64-bit TSS: RSP0 and IST1 stacks, I/O map base at offset 102, the bitmap right after the TSS. */
	put64(tss + TSS_RSP0, GPA_KSTACK_TOP);
	put64(tss + TSS_IST1, GPA_IST1_TOP);
	tss[TSS_IOMAP] = TSS_SIZE & 0xff;
	tss[TSS_IOMAP + 1] = TSS_SIZE >> 8;
	memset(tss + TSS_SIZE, 0xff, IOBITMAP_SIZE);
	for (unsigned p = PORT_BASE; p < PORT_BASE + 16; p++)
		tss[TSS_SIZE + p / 8] &= (uint8_t)~(1u << (p % 8));

	/* Exceptions 0-31: 64-bit interrupt gates, DPL 0, IST1, to floor_stubs[vector]. */
	for (uint64_t v = 0; v < N_EXC; v++) {
		uint64_t off = GPA_ENTRY + (uint64_t)(floor_stubs - floor_entry) + 16 * v;
		idt[2 * v] = (off & 0xffff) | (uint64_t)SEL_CODE << 16 | 1ull << 32 | 0x8eull << 40 |
			     ((off >> 16) & 0xffff) << 48;
		idt[2 * v + 1] = off >> 32;
	}

	memcpy(f->mem + GPA_CODE, code, (size_t)(exitcost_floor_end - code));
	memcpy(f->mem + GPA_ENTRY, floor_entry, (size_t)(floor_code_end - floor_entry));
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

/*
 * Long mode at CPL0 in floor_entry, which loads TR and IRETQs to exitcost_run(args) at CPL (0 or
 * 3), returning to exitcost_floor_done.
 */
static void enter(struct floor *f, unsigned cpl)
{
	struct kvm_sregs s;
	struct kvm_regs r = { 0 };
	uint64_t done = GPA_CODE + (uint64_t)(exitcost_floor_done - (const uint8_t *)(uintptr_t)exitcost_run);
	uint64_t frame = GPA_KSTACK_TOP - 5 * 8;

	if (ioctl(f->vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	s.cs = segment(SEL_CODE, 0xb, 0, true);
	s.ss = segment(SEL_DATA, 0x3, 0, false);
	/* Data segments of the target CPL, so that IRETQ to CPL3 keeps them (it nulls DPL 0 ones). */
	s.ds = s.es = s.fs = s.gs = segment(cpl ? SEL_UDATA : SEL_DATA, 0x3, cpl, false);
	/* TR as LTR leaves it (busy 64-bit TSS, what VMX requires); floor_entry loads it again. */
	s.tr = (struct kvm_segment){ .base = GPA_TSS, .limit = TSS_LIMIT, .selector = SEL_TSS,
				     .type = 0xb, .present = 1 };
	s.ldt = (struct kvm_segment){ .type = 0x2, .unusable = 1 };
	s.gdt.base = GPA_GDT;
	s.gdt.limit = (SEL_TSS + 16) - 1;
	s.idt.base = GPA_IDT;
	s.idt.limit = N_EXC * 16 - 1;
	s.cr0 = 0x80050033;   /* PG WP NE ET MP PE */
	s.cr3 = GPA_PML4;
	s.cr4 = 1u << 5;      /* PAE */
	s.efer = 0x500;       /* LMA LME */
	if (ioctl(f->vcpu, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");

	gdt_tss_available(f);
	put64(f->mem + GPA_STACK_TOP - 16, done);
	/* IRETQ frame: RIP, CS, RFLAGS (as the bare-metal guest runs the loop), RSP, SS. */
	put64(f->mem + frame, GPA_CODE);
	put64(f->mem + frame + 8, cpl ? SEL_UCODE : SEL_CODE);
	put64(f->mem + frame + 16, cpl ? 0x202 : 0x2);
	put64(f->mem + frame + 24, GPA_STACK_TOP - 16);
	put64(f->mem + frame + 32, cpl ? SEL_UDATA : SEL_DATA);
	r.rip = GPA_ENTRY;
	r.rsp = frame;
	r.rdi = GPA_ARGS;
	r.r12 = DONE_PORT;
	r.rflags = 0x2;
	if (ioctl(f->vcpu, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
}

/* Where RIP lies, for an error line. */
static const char *where(uint64_t rip)
{
	uint64_t done = GPA_CODE + (uint64_t)(exitcost_floor_done - (const uint8_t *)(uintptr_t)exitcost_run);
	uint64_t end = GPA_CODE + (uint64_t)(exitcost_floor_end - (const uint8_t *)(uintptr_t)exitcost_run);

	if (rip >= GPA_CODE && rip < done)
		return "exitcost_run";
	if (rip >= done && rip < end)
		return "exitcost_floor_done";
	if (rip >= GPA_ENTRY && rip < GPA_ENTRY + (uint64_t)(floor_code_end - floor_entry))
		return "floor_entry";
	return "outside the floor's code";
}

/* An exception reported by a floor_stubs stub: its vector, and the frame on the IST1 stack; exits 1. */
static void report_fault(const struct floor *f, uint32_t vector)
{
	static const char *const names[N_EXC] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP",
		"#SS", "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
	};
	bool has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 ||
			 vector == 29 || vector == 30;
	uint64_t rip = get64(f, GPA_IST1_TOP - 40), cs = get64(f, GPA_IST1_TOP - 32);

	fflush(stdout);
	fprintf(stderr, PREFIX "error: guest exception %s (vector %u) error 0x%llx at rip 0x%llx (%s) cs 0x%llx "
		"(cpl %llu) rflags 0x%llx rsp 0x%llx ss 0x%llx\n",
		vector < N_EXC && names[vector] ? names[vector] : "?", vector,
		has_error ? (unsigned long long)get64(f, GPA_IST1_TOP - 48) : 0ull, (unsigned long long)rip,
		where(rip), (unsigned long long)cs, (unsigned long long)(cs & 3),
		(unsigned long long)get64(f, GPA_IST1_TOP - 24), (unsigned long long)get64(f, GPA_IST1_TOP - 16),
		(unsigned long long)get64(f, GPA_IST1_TOP - 8));
	exit(1);
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
			if (run->io.port == DONE_PORT || run->io.port == FAULT_PORT) {
				uint32_t v;
				memcpy(&v, data, sizeof(v));
				if (run->io.port == FAULT_PORT)
					report_fault(f, v);
				return v;
			}
		} else if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write) {
			memcpy(run->mmio.data, &magic, sizeof(magic));
			continue;
		} else if (run->exit_reason == KVM_EXIT_SHUTDOWN) {
			fprintf(stderr, PREFIX "error: triple fault (KVM_EXIT_SHUTDOWN): a fault while delivering "
				"one (IDT, IST1 stack or GDT wrong)\n");
			exit(1);
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
