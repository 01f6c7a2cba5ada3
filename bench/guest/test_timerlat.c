/*
 * test=timerlat: how late the guest wakes up for a timer, cyclictest-style.
 * The LAPIC timer in TSC-deadline mode is armed at absolute deadlines
 * deadline_k = t0 + k * period; the guest waits with `sti; hlt` at CPL0 (the
 * vCPU thread sleeps in the host until KVM's timer wakes it), and the
 * lateness of each wake-up, TSC at the first instruction of the interrupt
 * handler minus the deadline, goes into a histogram of 1 us buckets.
 *
 * The handler is its own IDT entry (timerlat_isr, no trap frame, no
 * dispatcher): `rdtsc` is its first instruction, then two stores, the EOI and
 * iretq. It may clobber RAX and RDX because the only place interrupts are
 * enabled is the `sti; hlt` below, which declares them clobbered. What the
 * figure includes besides the host's wake-up: the delivery of the interrupt
 * into the guest and one rdtsc, both emulated at CPL0 on the nested
 * development host (tsc_step_ns, the cost of one emulated rdtsc, is printed
 * for scale). A deadline that passed while the previous sample was
 * processed is skipped, as cyclictest does (counted as missed).
 *
 * Command line: period_us=N (default 200), samples=N (default 1000),
 * tsc_khz=N (the host's: exact ns; else time.c's estimate).
 *
 * Lines (min/avg/max exact in ns; percentiles are bucket lower bounds in us;
 * hist pairs are bucket_us:count, only non-empty buckets, many lines):
 *   timerlat: tsc_khz=2596000 (cmdline) period_us=200 samples=1000 buckets=10000 tsc_step_ns=1200
 *   timerlat: n=1000 min=10100 avg=15400 max=95000 unit=ns p50_us=14 p99_us=40 p99_9_us=90 overflow=0 missed=0 early=0
 *   timerlat: hist 10:12 11:300 12:400 ...
 *   timerlat: hist end lines=3 buckets=42
 */
#include "rt.h"
#include "test_bench.h"

#define VEC_TIMERLAT  0x30
#define TL_BUCKETS    10000   /* 0..9999 us, then overflow */
#define TL_PER_LINE   16

_Static_assert(LAYOUT_LAPIC + LAPIC_EOI == 0xFEE000B0ull, "timerlat_isr's EOI address");

/* TSC taken by timerlat_isr; 0 until the interrupt came. */
volatile uint64_t timerlat_tsc;
extern const uint8_t timerlat_isr[];
__asm__(".pushsection .text\n"
	"timerlat_isr:\n"
	"	rdtsc\n"
	"	movl	%eax, timerlat_tsc(%rip)\n"
	"	movl	%edx, timerlat_tsc+4(%rip)\n"
	"	movl	$0xFEE000B0, %eax\n"      /* LAPIC EOI */
	"	movl	$0, (%rax)\n"
	"	iretq\n"
	".popsection");

static uint32_t hist[TL_BUCKETS];

/* Sleeps until an interrupt; timerlat_isr may clobber RAX and RDX. */
static inline void wait_irq(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "rax", "rdx", "memory");
}

/* Number "key=N" from the cmdline, DEF when absent; fails (ST_TIMERLAT) when not a number. */
static uint64_t opt(const char *key, uint64_t def)
{
	return boot_info__cmdline_u64(key, def, ST_TIMERLAT);
}

/* Lower bound (us) of the bucket holding the sample of nearest rank PERMILLE/1000; TL_BUCKETS if in overflow. */
static uint64_t rank_us(uint64_t n, uint64_t permille)
{
	uint64_t want = (n * permille + 999) / 1000, acc = 0;

	for (uint64_t b = 0; b < TL_BUCKETS; b++) {
		acc += hist[b];
		if (acc >= want && want)
			return b;
	}
	return TL_BUCKETS;
}

/* Cost of one emulated instruction at CPL0, for scale: the shortest rdtsc-to-rdtsc step. */
static uint64_t tsc_step_ns(void)
{
	uint64_t best = ~0ull;

	for (int i = 0; i < 20; i++) {
		uint64_t a = rdtsc(), b = rdtsc();
		if (b - a < best)
			best = b - a;
	}
	return best * 1000000 / tsc_khz;
}

/* The non-empty buckets, TL_PER_LINE "us:count" pairs a line, then the closing line with the counts. */
static void print_hist(void)
{
	char line[TL_PER_LINE * 14];
	uint32_t lines = 0, buckets = 0, in_line = 0;
	int len = 0;

	for (uint32_t b = 0; b < TL_BUCKETS; b++) {
		if (!hist[b])
			continue;
		len += snprintf(line + len, sizeof(line) - (size_t)len, " %u:%u", b, hist[b]);
		buckets++;
		if (++in_line == TL_PER_LINE) {
			console__log("timerlat: hist%s", line);
			lines++;
			len = 0;
			in_line = 0;
		}
	}
	if (in_line) {
		console__log("timerlat: hist%s", line);
		lines++;
	}
	console__log("timerlat: hist end lines=%u buckets=%u", lines, buckets);
}

void check_timerlat(void)
{
	uint64_t period_us = opt("period_us", 200), samples = opt("samples", 1000);
	uint64_t min = ~0ull, max = 0, sum = 0, overflow = 0, missed = 0, early = 0;

	if (period_us < 10 || period_us > 1000000 || !samples)
		rt__fail(ST_TIMERLAT, "cmdline: period_us=%lu samples=%lu (want 10..1000000 and >= 1)", period_us, samples);
	if (!(cpuid(1, 0).ecx & (1u << 24)) || !lapic__timer_tsc_deadline(VEC_TIMERLAT))
		rt__fail(ST_TIMERLAT, "timerlat: no TSC-deadline timer (CPUID.1:ECX[24] or the LAPIC mode)");
	cpu__set_gate_entry(VEC_TIMERLAT, timerlat_isr);
	console__log("timerlat: tsc_khz=%lu (%s) period_us=%lu samples=%lu buckets=%u tsc_step_ns=%lu",
		     tsc_khz, tsc_khz_source, period_us, samples, TL_BUCKETS, tsc_step_ns());

	uint64_t period = time__us_to_tsc(period_us), khz = tsc_khz;
	uint64_t next = rdtsc() + period;
	cli();
	for (uint64_t k = 0; k < samples; k++) {
		uint64_t t;

		timerlat_tsc = 0;
		wrmsr(MSR_TSC_DEADLINE, next);
		while (!(t = timerlat_tsc))
			wait_irq();
		uint64_t ns = t > next ? (t - next) * 1000000 / khz : (early++, 0);
		sum += ns;
		if (ns < min)
			min = ns;
		if (ns > max)
			max = ns;
		if (ns / 1000 < TL_BUCKETS)
			hist[ns / 1000]++;
		else
			overflow++;
		next += period;
		for (uint64_t now = rdtsc(); next <= now; next += period)
			missed++;
	}
	lapic__timer_stop();
	console__log("timerlat: n=%lu min=%lu avg=%lu max=%lu unit=ns p50_us=%lu p99_us=%lu p99_9_us=%lu "
		     "overflow=%lu missed=%lu early=%lu", samples, min, sum / samples, max,
		     rank_us(samples, 500), rank_us(samples, 990), rank_us(samples, 999), overflow, missed, early);
	print_hist();
	console__log("timerlat ok");
}
