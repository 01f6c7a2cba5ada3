/*
 * CPL3 (user mode) for the bare-metal guest: page tables of our own with U=1
 * on the user region only, one TSS per CPU (RSP0 for traps from CPL3),
 * SYSCALL/SYSRET and SYSENTER MSRs, and user__call()/user__return() to run
 * user-region code at CPL3 and come back. The assembly is in user.S.
 *
 * Why a user region and supervisor-only everything else: a transition that
 * should reach CPL0 but keeps CPL3 (seen on the nested PVM development host
 * for SYSCALL) then faults on its first instruction with a #PF from CPL3 at
 * the kernel entry point, which the caller can tell apart from a handler
 * that ran at CPL0.
 */
#include "rt.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3, iomap_base;
} __attribute__((packed));

struct user_cpu {
	uint64_t saved_rsp;          /* user__enter: kernel RSP with the callee-saved registers */
	uint64_t pad;
	struct tss tss;
	uint8_t iobitmap[USER_IO_PORTS / 8 + 1];   /* follows the TSS (iomap_base); last byte 0xff */
	bool ready;
	uint8_t sysenter_stack[256] __attribute__((aligned(16)));
} __attribute__((aligned(64)));

struct user_entry {
	uint64_t rip, rsp, arg0, arg1, rflags, sysret;
};

_Static_assert(offsetof(struct user_cpu, saved_rsp) == UCPU_SAVED_RSP, "user.S offsets");
_Static_assert(offsetof(struct user_cpu, tss) == UCPU_TSS, "user.S offsets");
_Static_assert(offsetof(struct user_cpu, tss.rsp[0]) == UCPU_TSS_RSP0, "user.S offsets");
_Static_assert(sizeof(struct tss) == 104, "64-bit TSS");
_Static_assert(offsetof(struct user_cpu, iobitmap) == UCPU_TSS + sizeof(struct tss), "I/O bitmap follows the TSS");
_Static_assert(offsetof(struct user_entry, rip) == UENT_RIP && offsetof(struct user_entry, rsp) == UENT_RSP &&
	       offsetof(struct user_entry, arg0) == UENT_ARG0 && offsetof(struct user_entry, arg1) == UENT_ARG1 &&
	       offsetof(struct user_entry, rflags) == UENT_RFLAGS && offsetof(struct user_entry, sysret) == UENT_SYSRET,
	       "user.S offsets");

/* user.S */
uint64_t user__enter(struct user_cpu *uc, const struct user_entry *e);
void __noreturn user__resume(struct user_cpu *uc, uint64_t v);

static struct user_cpu ucpu[MAX_CPUS];
uint8_t user_stacks[MAX_CPUS][USER_STACK_SIZE] __attribute__((aligned(4096), section(".user.stacks")));
volatile bool syscall_return_sysret;

#define PTE_P    (1ull << 0)
#define PTE_W    (1ull << 1)
#define PTE_U    (1ull << 2)
#define PTE_PWT  (1ull << 3)
#define PTE_PCD  (1ull << 4)
#define PTE_PS   (1ull << 7)
#define PTE_ADDR 0x000ffffffffff000ull
#define PAGE_2M  0x200000ull
#define MAP_END  0x100000000ull   /* identity map of 0..4 GiB, as the monitor's */

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[4][512] __attribute__((aligned(4096)));
static bool tables_built;

/* The monitor's 2 MiB leaf for `addr` (to keep its caching attributes), or 0. */
static uint64_t monitor_leaf(const uint64_t *mpdpt, uint64_t addr)
{
	uint64_t e = mpdpt ? mpdpt[addr >> 30] : 0;
	if ((e & (PTE_P | PTE_PS)) != PTE_P)
		return 0;
	e = ((const uint64_t *)(uintptr_t)(e & PTE_ADDR))[(addr >> 21) & 511];
	if ((e & (PTE_P | PTE_PS)) != (PTE_P | PTE_PS) || (e & PTE_ADDR & ~(PAGE_2M - 1)) != addr)
		return 0;
	return e;
}

void user__init(void)
{
	if (tables_built)
		return;
	const uint64_t *mpml4 = (const uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR);
	const uint64_t *mpdpt = (mpml4[0] & PTE_P) ? (const uint64_t *)(uintptr_t)(mpml4[0] & PTE_ADDR) : NULL;

	for (uint64_t addr = 0; addr < MAP_END; addr += PAGE_2M) {
		uint64_t e = monitor_leaf(mpdpt, addr);
		if (!e)
			e = addr | PTE_P | PTE_W | PTE_PS | (addr >= 0xC0000000ull ? PTE_PCD | PTE_PWT : 0);
		pd[addr >> 30][(addr >> 21) & 511] = e & ~PTE_U;
	}
	for (unsigned i = 0; i < 4; i++)
		pdpt[i] = (uintptr_t)pd[i] | PTE_P | PTE_W | PTE_U;   /* U is decided at the leaves */
	pml4[0] = (uintptr_t)pdpt | PTE_P | PTE_W | PTE_U;
	tables_built = true;
	user__map((uintptr_t)__user_start, (uintptr_t)(__user_end - __user_start));
	user__init_cpu(0);
}

void user__map(uint64_t addr, uint64_t len)
{
	for (uint64_t a = addr & ~(PAGE_2M - 1); a < addr + len && a < MAP_END; a += PAGE_2M)
		pd[a >> 30][(a >> 21) & 511] |= PTE_U;
	if (tables_built && (read_cr3() & PTE_ADDR) == (uintptr_t)pml4)
		write_cr3((uintptr_t)pml4);   /* flush */
}

void user__init_cpu(uint32_t idx)
{
	struct user_cpu *uc = &ucpu[idx];

	if (idx >= MAX_CPUS || uc->ready || !tables_built)
		return;
	write_cr3((uintptr_t)pml4);
	uc->tss.iomap_base = sizeof(struct tss);
	memset(uc->iobitmap, 0xff, sizeof(uc->iobitmap));   /* every port denied to CPL3 (unless IOPL 3) */
	uc->tss.rsp[0] = (uintptr_t)(uc->sysenter_stack + sizeof(uc->sysenter_stack));   /* until user__enter */
	cpu__set_tss_desc(idx, (uintptr_t)&uc->tss, sizeof(struct tss) + sizeof(uc->iobitmap) - 1);
	__asm__ volatile("ltr %w0" :: "r"((uint16_t)(GDT_TSS + 16 * idx)));
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
	/* SYSCALL: CS = 0x10, SS = 0x18. SYSRET: CS = 0x20 + 16 | 3 = 0x33, SS = 0x20 + 8 | 3 = 0x2b. */
	wrmsr(MSR_STAR, (uint64_t)GDT_USER_CODE32 << 48 | (uint64_t)GDT_KERNEL_CODE << 32);
	wrmsr(MSR_LSTAR, (uintptr_t)syscall_entry);
	wrmsr(MSR_CSTAR, (uintptr_t)syscall_entry);   /* compatibility mode: unused */
	wrmsr(MSR_SFMASK, 0x47700);                    /* TF, IF, DF, IOPL, NT, AC cleared on entry */
	wrmsr(MSR_SYSENTER_CS, GDT_KERNEL_CODE);
	wrmsr(MSR_SYSENTER_ESP, (uintptr_t)(uc->sysenter_stack + sizeof(uc->sysenter_stack)));
	wrmsr(MSR_SYSENTER_EIP, (uintptr_t)sysenter_entry);
	uc->ready = true;
}

void user__allow_ports(uint16_t port, uint32_t count, bool allow)
{
	struct user_cpu *uc = &ucpu[user__cpu_index()];

	for (uint32_t p = port; p < (uint32_t)port + count && p < USER_IO_PORTS; p++) {
		if (allow)
			uc->iobitmap[p / 8] &= (uint8_t)~(1u << (p % 8));
		else
			uc->iobitmap[p / 8] |= (uint8_t)(1u << (p % 8));
	}
}

uint32_t user__cpu_index(void)
{
	uint16_t tr;

	__asm__ volatile("str %0" : "=r"(tr));
	return tr >= GDT_TSS ? (uint32_t)(tr - GDT_TSS) / 16 : 0;
}

uint64_t user__call(const void *entry, uint64_t arg0, uint64_t arg1, unsigned flags)
{
	uint32_t idx = user__cpu_index();
	struct user_entry e = {
		.rip = (uintptr_t)entry,
		.rsp = (uintptr_t)(user_stacks[idx] + USER_STACK_SIZE),
		.arg0 = arg0,
		.arg1 = arg1,
		.rflags = 0x2 | (flags & USER_IF0 ? 0 : 0x200) | (flags & USER_IOPL3 ? 0x3000 : 0),
		.sysret = !!(flags & USER_SYSRET),
	};

	return user__enter(&ucpu[idx], &e);
}

void user__return(uint64_t v)
{
	user__resume(&ucpu[user__cpu_index()], v);
}

volatile struct user_exit_info user_last_exit;

void user__exit(struct trap_frame *f)
{
	user_last_exit.frame_cs = f->cs;
	user_last_exit.handler_cs = read_cs();
	user_last_exit.n++;
	user__return(f->rax);
}

/* sysenter_entry (user.S) calls this at CPL0 if SYSENTER works (not on AMD in long mode: #UD). */
volatile uint32_t sysenter_count;
volatile uint16_t sysenter_cs;
void __noreturn user__sysenter_c(void);
void user__sysenter_c(void)
{
	sysenter_cs = read_cs();
	sysenter_count++;
	user__return(0x5e5e);
}
