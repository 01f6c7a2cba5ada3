/* Local APIC in xAPIC mode (MMIO at LAYOUT_LAPIC, identity mapped): enable, timer, IPIs. */
#include "rt.h"

uint32_t lapic__read(uint32_t reg)
{
	return mmio_read32(LAYOUT_LAPIC + reg);
}

void lapic__write(uint32_t reg, uint32_t v)
{
	mmio_write32(LAYOUT_LAPIC + reg, v);
}

uint32_t lapic__id(void)
{
	return lapic__read(LAPIC_ID) >> 24;
}

void lapic__enable(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);

	if (!(base & (1u << 11)))                     /* globally enabled, xAPIC mode */
		wrmsr(MSR_APIC_BASE, base | (1u << 11));
	lapic__write(LAPIC_TPR, 0);
	lapic__write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic__write(LAPIC_LVT_LINT0, LVT_MASKED);
	lapic__write(LAPIC_LVT_LINT1, LVT_MASKED);
	lapic__write(LAPIC_LVT_ERROR, LVT_MASKED);
	lapic__write(LAPIC_SVR, (1u << 8) | VEC_SPURIOUS);   /* software enable */
}

void lapic__timer_start(uint8_t vector, uint32_t count, bool periodic)
{
	lapic__write(LAPIC_TIMER_DIV, 0x3);                 /* divide by 16 */
	lapic__write(LAPIC_LVT_TIMER, vector | (periodic ? LVT_TIMER_PERIODIC : LVT_TIMER_ONESHOT));
	lapic__write(LAPIC_TIMER_INIT, count);
}

void lapic__timer_stop(void)
{
	lapic__write(LAPIC_TIMER_INIT, 0);
	lapic__write(LAPIC_LVT_TIMER, LVT_MASKED);   /* also disarms a TSC deadline */
}

bool lapic__timer_tsc_deadline(uint8_t vector)
{
	lapic__write(LAPIC_LVT_TIMER, vector | LVT_TIMER_TSC_DEADLINE);
	/* A LAPIC without the mode (KVM without the CPUID bit) masks the mode bits away. */
	return (lapic__read(LAPIC_LVT_TIMER) & LVT_TIMER_MODE_MASK) == LVT_TIMER_TSC_DEADLINE;
}

void lapic__send_ipi(uint32_t apic_id, uint32_t icr_lo)
{
	lapic__write(LAPIC_ICR_HI, apic_id << 24);
	lapic__write(LAPIC_ICR_LO, icr_lo);
	for (unsigned i = 0; i < 100000 && (lapic__read(LAPIC_ICR_LO) & ICR_BUSY); i++)
		barrier();
}
