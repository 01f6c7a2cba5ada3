/*
 * TSC-based time for timeouts and delays. The frequency comes from, in order:
 * "tsc_khz=" on the cmdline, CPUID 0x15 (TSC/crystal), the hypervisor timing
 * leaf 0x40000010, a 10 ms PIT calibration (as Linux does), CPUID 0x16 (base
 * MHz), else a 3 GHz guess (then timeouts are only approximate, which is all
 * they need to be).
 */
#include "rt.h"

uint64_t tsc_khz = 3000000;
const char *tsc_khz_source = "guess";

#define PIT_HZ       1193182
#define PIT_CH2      0x42
#define PIT_MODE     0x43
#define PORT_61      0x61   /* bit 0: channel 2 gate, bit 1: speaker, bit 5: OUT2 */

/*
 * TSC cycles during 10 ms of PIT channel 2 in mode 0 (OUT2 rises at terminal
 * count), in kHz; 0 without a PIT (OUT2 high from the start, or never).
 */
static uint64_t pit_calibrate_khz(void)
{
	uint16_t count = PIT_HZ / 100;
	uint8_t p61 = inb(PORT_61);
	uint64_t t0, t1;
	uint32_t polls = 0;

	outb(PORT_61, (p61 & ~0x02) | 0x01);
	outb(PIT_MODE, 0xB0);                /* channel 2, lobyte/hibyte, mode 0, binary */
	outb(PIT_CH2, (uint8_t)count);
	outb(PIT_CH2, (uint8_t)(count >> 8)); /* counting starts */
	t0 = rdtsc();
	if (inb(PORT_61) & 0x20)
		goto no_pit;
	while (!(inb(PORT_61) & 0x20)) {
		polls++;
		if (rdtsc() - t0 > 10000000000ull)   /* > 1 s at 10 GHz: no PIT */
			goto no_pit;
	}
	t1 = rdtsc();
	outb(PORT_61, p61);
	return polls ? (t1 - t0) / 10 : 0;
no_pit:
	outb(PORT_61, p61);
	return 0;
}

void time__init(void)
{
	char buf[24];
	struct cpuid_regs r;
	uint32_t max = cpuid(0, 0).eax;

	if (boot_info__cmdline_get("tsc_khz", buf, sizeof(buf)) && strtou64(buf, NULL)) {
		tsc_khz = strtou64(buf, NULL);
		tsc_khz_source = "cmdline";
		return;
	}
	if (max >= 0x15) {
		r = cpuid(0x15, 0);
		if (r.eax && r.ebx && r.ecx) {
			tsc_khz = (uint64_t)r.ecx * r.ebx / r.eax / 1000;
			tsc_khz_source = "cpuid 0x15";
			return;
		}
	}
	if (cpuid(1, 0).ecx & (1u << 31)) {          /* hypervisor present */
		r = cpuid(0x40000000, 0);
		if (r.eax >= 0x40000010) {
			r = cpuid(0x40000010, 0);
			if (r.eax) {
				tsc_khz = r.eax;
				tsc_khz_source = "cpuid 0x40000010";
				return;
			}
		}
	}
	uint64_t khz = pit_calibrate_khz();
	if (khz) {
		tsc_khz = khz;
		tsc_khz_source = "pit calibration";
		return;
	}
	if (max >= 0x16) {
		r = cpuid(0x16, 0);
		if (r.eax & 0xffff) {
			tsc_khz = (uint64_t)(r.eax & 0xffff) * 1000;
			tsc_khz_source = "cpuid 0x16";
			return;
		}
	}
}

uint64_t time__us_to_tsc(uint64_t us) { return us * tsc_khz / 1000; }
uint64_t time__tsc_to_us(uint64_t cycles) { return cycles * 1000 / tsc_khz; }

void time__delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + time__us_to_tsc(us);
	while (rdtsc() < end)
		barrier();
}
