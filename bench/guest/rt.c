/* BSP start-up of the runtime, in order, then the program. */
#include "rt.h"

void rt__start(const void *boot, uint32_t kind)
{
	/* 0. The console: rtvmm's test device, else COM1 (QEMU). */
	console__init();
	/* 1. What the monitor tells us: e820 map and command line (before anything overwrites them). */
	int bad_boot = kind == BOOT_PVH ? boot_info__parse_pvh(boot) : boot_info__parse(boot);
	/* 2. Our own GDT and IDT: exceptions are reported from here on. */
	cpu__tables_init();
	/* 3. TSC frequency for timeouts. */
	time__init();
	/* 4. This CPU's local APIC. */
	lapic__enable();
	cpus[0].apic_id = lapic__id();
	cpus_up = 1;

	if (bad_boot)
		rt__fail(101, "%s at %p unusable (%d)", kind == BOOT_PVH ? "PVH start info" : "zero page",
			 boot, bad_boot);
	rt__exit((uint32_t)guest_main());
}
