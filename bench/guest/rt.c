/* BSP start-up of the runtime, in order, then the program. */
#include "rt.h"

void rt__start(const void *zero_page)
{
	/* 1. What the monitor tells us: e820 map and command line (before anything overwrites them). */
	int bad_zero_page = boot_info__parse(zero_page);
	/* 2. Our own GDT and IDT: exceptions are reported from here on. */
	cpu__tables_init();
	/* 3. TSC frequency for timeouts. */
	time__init();
	/* 4. This CPU's local APIC. */
	lapic__enable();
	cpus[0].apic_id = lapic__id();
	cpus_up = 1;

	if (bad_zero_page)
		rt__fail(101, "zero page at %p unusable (%d)", zero_page, bad_zero_page);
	rt__exit((uint32_t)guest_main());
}
