/*
 * AP bring-up: copy the trampoline below 1 MiB, then for each AP the
 * firmware tables list, one at a time as Linux does: fill the trampoline's
 * parameters (CR3, EFER, stack, cpu index), INIT, 10 ms, STARTUP, 200 us,
 * STARTUP (skipped if the AP is already running), wait for it to report in.
 */
#include "rt.h"

struct tramp_params {
	uint64_t cr3, efer, stack, entry;
	uint32_t cpu, pad;
};

extern const uint8_t trampoline_start[], trampoline_end[], tramp_params[];
extern const uint8_t ap_entry64[];

struct cpu cpus[MAX_CPUS];
uint32_t cpu_count = 1;
volatile uint32_t cpus_up;

/* Stacks: BSP stack and one per AP, outside .bss so _start need not zero them. */
uint8_t cpu_stacks[MAX_CPUS][STACK_SIZE] __attribute__((aligned(4096), section(".stacks")));

static ap_fn_t ap_fn;

void rt__ap_start(uint32_t index)
{
	struct cpu *c = &cpus[index];

	cpu__tables_load();
	user__init_cpu(index);   /* CPL3 on this CPU, if user__init() ran on the BSP (else a no-op) */
	lapic__enable();
	c->apic_id = lapic__id();
	c->started = 1;
	atomic_inc(&cpus_up);
	if (ap_fn)
		ap_fn(c);
	for (;;)
		sti_hlt();   /* idle: woken only by IPIs the program sends */
}

static bool wait_started(struct cpu *c, uint64_t timeout_us)
{
	uint64_t end = rdtsc() + time__us_to_tsc(timeout_us);

	while (!c->started)
		if (rdtsc() > end)
			return false;
	return true;
}

uint32_t smp__boot(const struct cpu_topology *t, ap_fn_t fn, uint64_t timeout_us)
{
	uint32_t bsp_id = lapic__id();
	size_t tsize = (size_t)(trampoline_end - trampoline_start);
	struct tramp_params *p = (struct tramp_params *)(uintptr_t)
		(TRAMPOLINE_BASE + (tramp_params - trampoline_start));
	uint32_t n = 1;

	cpus[0].apic_id = bsp_id;
	cpus[0].index = 0;
	cpus[0].started = 1;
	cpus[0].stack_top = cpu_stacks[0] + STACK_SIZE;
	cpus_up = 1;
	ap_fn = fn;

	if (!boot_info__e820_is_ram(TRAMPOLINE_BASE, 4096)) {
		console__log("smp: trampoline page 0x%x is not RAM in the e820 map", TRAMPOLINE_BASE);
		return 1;
	}
	memcpy((void *)(uintptr_t)TRAMPOLINE_BASE, trampoline_start, tsize);
	p->cr3 = read_cr3();
	p->efer = rdmsr(MSR_EFER) & ~(1ull << 10);   /* LMA is set by the CPU, not written */
	p->entry = (uintptr_t)ap_entry64;

	for (uint32_t i = 0; i < t->count && i < MAX_CPUS; i++) {
		uint32_t id = t->apic_id[i];
		if (id == bsp_id)
			continue;
		if (n >= MAX_CPUS)
			break;
		struct cpu *c = &cpus[n];
		c->apic_id = id;
		c->index = n;
		c->started = 0;
		c->stack_top = cpu_stacks[n] + STACK_SIZE;
		p->stack = (uintptr_t)c->stack_top;
		p->cpu = n;
		barrier();

		lapic__write(LAPIC_ESR, 0);
		lapic__send_ipi(id, ICR_INIT | ICR_ASSERT | ICR_LEVEL);
		time__delay_us(10000);
		for (int s = 0; s < 2 && !c->started; s++) {
			lapic__send_ipi(id, ICR_STARTUP | (TRAMPOLINE_BASE >> 12));
			wait_started(c, s == 0 ? 200 : timeout_us);
		}
		if (!c->started) {
			console__log("smp: cpu with apic id %u did not start", id);
			continue;
		}
		n++;
	}
	cpu_count = n;
	return n;
}
