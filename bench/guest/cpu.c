/*
 * GDT and IDT shared by all CPUs, and the trap dispatcher the stubs in
 * start.S call. The kernel selectors equal the monitor's boot GDT (and the
 * trampoline's), so loading this GDT needs no far jump. The user segments
 * follow the SYSCALL/SYSRET (STAR) layout; one TSS descriptor per CPU follows
 * them (filled by user__init_cpu, user.c). The GDT is writable: LTR marks
 * the descriptor busy.
 */
#include "rt.h"

extern const uint8_t isr_stubs[];   /* start.S: 256 stubs of 16 bytes */

static uint64_t gdt[7 + 2 * MAX_CPUS] __attribute__((aligned(16))) = {
	0,
	0x00cf9a000000ffffull,   /* GDT_KERNEL_CODE32 */
	0x00af9a000000ffffull,   /* GDT_KERNEL_CODE */
	0x00cf92000000ffffull,   /* GDT_KERNEL_DATA */
	0x00cffa000000ffffull,   /* GDT_USER_CODE32 */
	0x00cff2000000ffffull,   /* GDT_USER_DATA */
	0x00affa000000ffffull,   /* GDT_USER_CODE */
};

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, attr;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
static trap_handler_t handlers[256];
static trap_handler_t syscall_handler;

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP",
	"#SS", "#GP", "#PF", "res15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void cpu__tables_load(void)
{
	struct desc_ptr g = { sizeof(gdt) - 1, (uintptr_t)gdt };
	struct desc_ptr i = { sizeof(idt) - 1, (uintptr_t)idt };

	__asm__ volatile("lgdt %0" :: "m"(g));
	__asm__ volatile("mov %0, %%ds; mov %0, %%es; mov %0, %%ss" :: "r"((uint32_t)GDT_KERNEL_DATA));
	__asm__ volatile("lidt %0" :: "m"(i));
}

void cpu__tables_init(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint64_t a = (uintptr_t)isr_stubs + 16 * v;
		idt[v] = (struct idt_gate){
			.off_lo = (uint16_t)a, .sel = GDT_KERNEL_CODE, .ist = 0,
			.attr = 0x8E,   /* present, DPL0, 64-bit interrupt gate */
			.off_mid = (uint16_t)(a >> 16), .off_hi = (uint32_t)(a >> 32),
		};
	}
	cpu__tables_load();
}

void cpu__load_empty_idt(void)
{
	struct desc_ptr i = { 0, 0 };
	__asm__ volatile("lidt %0" :: "m"(i));
}

void cpu__set_trap_handler(unsigned vector, trap_handler_t h)
{
	handlers[vector & 0xff] = h;
}

void cpu__set_gate_entry(unsigned vector, const void *entry)
{
	uint64_t a = (uintptr_t)entry;
	struct idt_gate *g = &idt[vector & 0xff];

	g->off_lo = (uint16_t)a;
	g->off_mid = (uint16_t)(a >> 16);
	g->off_hi = (uint32_t)(a >> 32);
}

void cpu__set_gate_dpl(unsigned vector, unsigned dpl)
{
	idt[vector & 0xff].attr = (uint8_t)(0x8E | (dpl & 3) << 5);
}

void cpu__set_syscall_handler(trap_handler_t h)
{
	syscall_handler = h;
}

void cpu__set_tss_desc(uint32_t cpu_index, uint64_t base, uint32_t limit)
{
	uint64_t *d = &gdt[GDT_TSS / 8 + 2 * cpu_index];

	d[0] = (limit & 0xffff) | (base & 0xffffff) << 16 |
	       0x89ull << 40 |                        /* present, DPL0, available 64-bit TSS */
	       (uint64_t)((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	d[1] = base >> 32;
}

void cpu__trap_unexpected(struct trap_frame *f)
{
	const char *what = f->vector == VEC_SYSCALL ? "syscall" : f->vector < 32 ? "exception" : "interrupt";

	console__log("unexpected %s vector %lu error 0x%lx on apic %u (from cpl %lu)",
		 what, f->vector, f->error, lapic__id(), f->cs & 3);
	if (f->vector < 32)
		console__log("  %s rip 0x%lx cs 0x%lx rflags 0x%lx rsp 0x%lx cr2 0x%lx",
			 exc_names[f->vector] ? exc_names[f->vector] : "?",
			 f->rip, f->cs, f->rflags, f->rsp, read_cr2());
	console__log("  rax 0x%lx rbx 0x%lx rcx 0x%lx rdx 0x%lx rsi 0x%lx rdi 0x%lx rbp 0x%lx",
		 f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp);
	rt__fail(110, "unexpected vector %lu at rip 0x%lx", f->vector, f->rip);
}

/* Called by isr_common with the saved registers. */
void cpu__trap_dispatch(struct trap_frame *f);
void cpu__trap_dispatch(struct trap_frame *f)
{
	trap_handler_t h = handlers[f->vector & 0xff];

	if (f->vector == 6 && f->rip == (uintptr_t)user_exit)
		user__exit(f);   /* CPL3 code ending its user__call */
	if (h) {
		h(f);
		return;
	}
	if (f->vector == VEC_SPURIOUS)
		return;   /* spurious interrupts need no EOI */
	cpu__trap_unexpected(f);
}

/* Called by syscall_entry (user.S) with the caller's registers. */
void cpu__syscall_dispatch(struct trap_frame *f);
void cpu__syscall_dispatch(struct trap_frame *f)
{
	if (syscall_handler) {
		syscall_handler(f);
		return;
	}
	cpu__trap_unexpected(f);
}
