/*
 * rtvmm-guest: the bare-metal test program. Proves PIO and MMIO exits, LAPIC
 * timer interrupts (and TSC-deadline when the LAPIC has it), SMP bring-up and
 * the zero page, one "rtvmm-guest: ..." line per check, then exits through
 * the test device: 0 when all pass, 1xx naming the first failing check.
 *
 * Command line (all optional):
 *   test=boot,pio,mmio,timer,tsc,smp  run only these checks
 *   test=cpl3         CPL3 <-> CPL0 transitions and CPL3 costs; opt-in (not in the default
 *                     set: some transitions are broken on the nested development host), see
 *                     test_cpl3.c for cpl3_iters=N cpl3_ticks=N cpl3_broken=LIST
 *   test=net          virtio-net (poll mode, data path at CPL3) against a real backend; opt-in
 *                     (needs a NIC and a peer), see test_net.c for net=ping|echo peer= count= ...
 *   test=exitcost     benchmark: PIO/MMIO exit round trips at CPL0 and CPL3; opt-in, see
 *                     test_exitcost.c for exitcost_iters=N exitcost_cpl=0,3
 *   test=timerlat     benchmark: TSC-deadline wake-up latency from hlt; opt-in, see
 *                     test_timerlat.c for period_us=N samples=N
 *   cpus=N            fail unless the firmware tables list N CPUs
 *   firmware=acpi|mptable  where smp finds the APs (default ACPI, else MP table)
 *   pio_iters=N mmio_iters=N ticks=N timer_us=N tsc_khz=N
 *   fault=triple|gp|ud|badmmio|badpio|hang  misbehave on purpose (monitor tests)
 *   chatter=N         print N numbered lines (70 bytes each) after the boot check (console back-pressure tests)
 *   memsum=N          N rounds, one line each, of rewriting one page of a 4 MiB buffer and
 *                     keeping the buffer's sum; every 64 rounds the whole buffer is summed
 *                     again and must match (snapshot/restore tests: round k's line depends
 *                     on k only, and guest RAM or registers restored wrong fail it, exit 113)
 *   memsum_pages=N    memsum rewrites N pages a round (1..1024, default 1): a faster writer,
 *                     to fill KVM's dirty ring during a migration
 *   exit=N            exit with status N right after boot
 */
#include "rt.h"
#include "test_cpl3.h"
#include "test_net.h"
#include "test_bench.h"

enum status {
	ST_BOOT = 101, ST_PIO = 102, ST_MMIO = 103, ST_TIMER = 104, ST_TSC = 105,
	ST_SMP = 106, ST_CMDLINE = 111, ST_FAULT = 112, ST_MEMSUM = 113,
};

#define MEMSUM_PAGES 1024                    /* 4 MiB */
static uint64_t memsum_buf[MEMSUM_PAGES * 512] __attribute__((aligned(4096)));

/* The value of word i of the page rewritten in round k. */
static uint64_t memsum_word(uint64_t k, uint64_t i)
{
	uint64_t x = (k + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xBF58476D1CE4E5B9ull);

	return x ^ (x >> 29);
}

static void run_memsum(uint64_t rounds, uint64_t pages)
{
	uint64_t sum = 0;

	for (uint64_t k = 0; k < rounds; k++) {
		for (uint64_t w = k * pages; w < (k + 1) * pages; w++) {
			uint64_t *page = &memsum_buf[(w % MEMSUM_PAGES) * 512], old = 0, now = 0;

			for (uint64_t i = 0; i < 512; i++) {
				old += page[i];
				page[i] = memsum_word(w, i);
				now += page[i];
			}
			sum = sum - old + now;
		}
		if ((k & 63) == 63) {
			uint64_t all = 0;

			for (uint64_t i = 0; i < MEMSUM_PAGES * 512; i++)
				all += memsum_buf[i];
			if (all != sum)
				rt__fail(ST_MEMSUM, "memsum round %lu: the buffer sums to %016lx, the guest "
					 "kept %016lx", k, all, sum);
		}
		console__log("memsum %08lu sum %016lx", k, sum);
	}
}

static char opt_tests[128];

static bool want(const char *t)
{
	return !opt_tests[0] || boot_info__list_has(opt_tests, t);
}

/* Checks that only run when test= names them. */
static bool want_opt_in(const char *t)
{
	return opt_tests[0] && boot_info__list_has(opt_tests, t);
}

static uint64_t opt_u64(const char *key, uint64_t def)
{
	return boot_info__cmdline_u64(key, def, ST_CMDLINE);
}

/* ---- boot information ---- */

static void check_boot(void)
{
	console__log("cmdline '%s'", boot_info.cmdline);
	console__log("e820 %u entries, %lu MiB (from the %s)", boot_info.e820_count, boot_info.ram_bytes >> 20,
		     boot_info_source);
	for (uint32_t i = 0; i < boot_info.e820_count; i++) {
		const struct e820_entry *e = &boot_info.e820[i];
		console__log("  e820 [0x%09lx-0x%09lx] type %u", e->addr, e->addr + e->size - 1, e->type);
	}
	if (!boot_info.e820_count || !boot_info.ram_bytes)
		rt__fail(ST_BOOT, "e820 map has no RAM");
	extern const uint8_t __image_start[], __image_end[];
	if (!boot_info__e820_is_ram((uintptr_t)__image_start, (uintptr_t)(__image_end - __image_start)))
		rt__fail(ST_BOOT, "e820: the guest image [%p-%p) is not in RAM", __image_start, __image_end);
	console__log("tsc %lu kHz (%s)", tsc_khz, tsc_khz_source);
}

/* ---- PIO: echo port returns the value bit-inverted; magic port ---- */

static void check_pio(void)
{
	uint32_t iters = (uint32_t)opt_u64("pio_iters", 1000);
	uint16_t echo = PORT_TESTDEV + TESTDEV_PIO_ECHO;

	uint32_t magic = inl(PORT_TESTDEV + TESTDEV_PIO_MAGIC);
	if (magic != TESTDEV_MAGIC)
		rt__fail(ST_PIO, "pio magic 0x%x, expected 0x%x", magic, TESTDEV_MAGIC);
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++) {
		uint32_t v = (i + 1) * 0x9E3779B9u;   /* distinct for every i < 2^32 */
		outl(echo, v);
		uint32_t r = inl(echo);
		if (r != ~v)
			rt__fail(ST_PIO, "pio echo round trip %u: wrote 0x%x read 0x%x, expected 0x%x", i, v, r, ~v);
	}
	uint64_t us = time__tsc_to_us(rdtsc() - t0);
	console__log("pio ok (%u round trips, %lu us each)", iters, iters ? us / iters : 0);
}

/* ---- MMIO: magic, 64-bit scratch register, write counter ---- */

static void check_mmio(void)
{
	uint32_t iters = (uint32_t)opt_u64("mmio_iters", 100);
	uint64_t base = LAYOUT_TESTDEV_MMIO;

	uint32_t magic = mmio_read32(base + TESTDEV_MMIO_MAGIC);
	if (magic != TESTDEV_MAGIC)
		rt__fail(ST_MMIO, "mmio magic 0x%x, expected 0x%x", magic, TESTDEV_MAGIC);
	uint64_t c0 = mmio_read64(base + TESTDEV_MMIO_COUNT);
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++) {
		uint64_t v = (i + 1) * 0x9E3779B97F4A7C15ull;   /* uses all 64 bits */
		mmio_write64(base + TESTDEV_MMIO_SCRATCH, v);
		uint64_t r = mmio_read64(base + TESTDEV_MMIO_SCRATCH);
		if (r != v)
			rt__fail(ST_MMIO, "mmio scratch %u: wrote 0x%lx read 0x%lx", i, v, r);
	}
	uint64_t us = time__tsc_to_us(rdtsc() - t0);
	uint64_t c1 = mmio_read64(base + TESTDEV_MMIO_COUNT);
	if (c1 - c0 != iters)
		rt__fail(ST_MMIO, "mmio write count went %lu -> %lu after %u writes", c0, c1, iters);
	console__log("mmio ok (%u scratch round trips, %lu us each, count %lu)", iters, iters ? us / iters : 0, c1);
}

/* ---- timer interrupts ---- */

static volatile uint32_t ticks;
static volatile uint64_t tick_tsc[2];   /* TSC at the second and the latest tick */

static void on_timer(struct trap_frame *f)
{
	(void)f;
	uint64_t t = rdtsc();
	if (ticks == 1)
		tick_tsc[0] = t;
	tick_tsc[1] = t;
	ticks++;
	lapic__eoi();
}

/*
 * Waits until `target` ticks. halt: "cli; check; sti; hlt" (no lost wake-up,
 * but a timer that never fires hangs). Otherwise spins with IF=1 up to the
 * timeout. Not "sti; nop; cli" per iteration: on the nested development host
 * a one-instruction interrupt window delays delivery by 100-500 ms; and even
 * with IF=1 throughout, an interrupt reaches a CPL0 spin loop ~0.5 ms late,
 * while it wakes a hlt promptly.
 */
static bool wait_ticks(uint32_t target, uint64_t timeout_us, bool halt)
{
	uint64_t end = rdtsc() + time__us_to_tsc(timeout_us);

	if (!halt) {
		__asm__ volatile("sti" ::: "memory");
		while (ticks < target && rdtsc() < end)
			barrier();
		cli();
		return ticks >= target;
	}
	for (;;) {
		cli();
		if (ticks >= target)
			return true;
		if (rdtsc() > end)
			return false;
		sti_hlt();
	}
}

static void check_timer(void)
{
	uint32_t want_ticks = (uint32_t)opt_u64("ticks", 5);
	if (want_ticks < 3)
		want_ticks = 3;   /* the period is measured from the second tick */
	uint64_t period_us = opt_u64("timer_us", 1000);
	/* KVM's LAPIC runs at 1 GHz: count = ns / 16 with divide 16. */
	uint32_t count = (uint32_t)(period_us * 1000 / 16);

	ticks = 0;
	cpu__set_trap_handler(VEC_TIMER, on_timer);
	lapic__timer_start(VEC_TIMER, count, true);
	/* Spin for the first tick (a dead timer cannot wake a hlt), then halt between ticks. */
	bool ok = wait_ticks(1, 2000000 + 10 * period_us, false) &&
		  wait_ticks(want_ticks, 2000000 + 10 * want_ticks * period_us, true);
	lapic__timer_stop();
	if (!ok)
		rt__fail(ST_TIMER, "timer: %u of %u ticks (lapic periodic, vector 0x%x, count %u)",
			ticks, want_ticks, VEC_TIMER, count);
	/* From the second tick: the first is taken while spinning, which delays it here. */
	uint64_t per = ticks > 2 ? time__tsc_to_us(tick_tsc[1] - tick_tsc[0]) / (ticks - 2) : 0;
	console__log("timer ok (%u ticks, lapic periodic %lu us, measured ~%lu us)", ticks, period_us, per);
}

static void check_tsc_deadline(void)
{
	if (!(cpuid(1, 0).ecx & (1u << 24))) {
		console__log("tsc-deadline skipped (not in CPUID)");
		return;
	}
	cpu__set_trap_handler(VEC_TIMER, on_timer);
	if (!lapic__timer_tsc_deadline(VEC_TIMER)) {
		lapic__timer_stop();
		console__log("tsc-deadline skipped (in CPUID, but the LAPIC does not keep the mode)");
		return;
	}
	ticks = 0;
	for (uint32_t i = 1; i <= 3; i++) {
		wrmsr(MSR_TSC_DEADLINE, rdtsc() + time__us_to_tsc(500));
		if (!wait_ticks(i, 2000000, false)) {
			lapic__timer_stop();
			rt__fail(ST_TSC, "tsc-deadline: deadline %u never fired", i);
		}
	}
	lapic__timer_stop();
	console__log("tsc-deadline ok (%u deadlines)", ticks);
}

/* ---- SMP ---- */

static struct spinlock echo_lock;     /* the echo register is one per device, not per vCPU */
static volatile uint32_t ap_done, ap_echo_ok, ap_cpl3_ok, ipis;

static void on_ipi(struct trap_frame *f)
{
	(void)f;
	atomic_inc(&ipis);
	lapic__eoi();
}

static void ap_work(struct cpu *c)
{
	uint32_t v = 0xA5000000u | c->apic_id;

	spin_lock(&echo_lock);
	outl(PORT_TESTDEV + TESTDEV_PIO_ECHO, v);
	uint32_t r = inl(PORT_TESTDEV + TESTDEV_PIO_ECHO);
	spin_unlock(&echo_lock);
	if (r == ~v)
		atomic_inc(&ap_echo_ok);
	console__log("cpu %u (apic id %u) up, echo %s", c->index, c->apic_id, r == ~v ? "ok" : "BAD");
	if (cpl3_done) {   /* test=cpl3 ran before: CPL3 works on this AP too (own TSS and user stack) */
		bool ok = cpl3_ap_check(c->index);
		console__log("cpu %u: cpl3 round trip %s", c->index, ok ? "ok" : "BAD");
		if (ok)
			atomic_inc(&ap_cpl3_ok);
	}
	atomic_inc(&ap_done);
}

static bool spin_until(volatile uint32_t *v, uint32_t target, uint64_t timeout_us)
{
	uint64_t end = rdtsc() + time__us_to_tsc(timeout_us);

	while (*v < target)
		if (rdtsc() > end)
			return false;
	return true;
}

static void log_topology(const struct cpu_topology *t)
{
	char ids[128];
	int len = 0;

	ids[0] = '\0';
	for (uint32_t i = 0; i < t->count && i < MAX_CPUS && len < (int)sizeof(ids) - 12; i++)
		len += snprintf(ids + len, sizeof(ids) - (size_t)len, " %u", t->apic_id[i]);
	console__log("smp: %s lists %u cpus (apic ids%s), lapic at 0x%lx", t->source, t->count, ids, t->lapic_addr);
}

/*
 * Reads both ACPI and the MP table (when present they must agree), then
 * brings the APs up from the one "firmware=acpi|mptable" names (ACPI by default).
 */
static void check_smp(void)
{
	static struct cpu_topology acpi, mp;
	char src[16];
	bool have_acpi = !acpi__find_cpus(&acpi) && acpi.count;
	bool have_mp = !mptable__find_cpus(&mp) && mp.count;

	if (have_acpi)
		log_topology(&acpi);
	if (have_mp)
		log_topology(&mp);
	if (have_acpi && have_mp &&
	    (acpi.count != mp.count || acpi.lapic_addr != mp.lapic_addr ||
	     memcmp(acpi.apic_id, mp.apic_id, sizeof(acpi.apic_id[0]) * (acpi.count < MAX_CPUS ? acpi.count : MAX_CPUS))))
		rt__fail(ST_SMP, "smp: ACPI MADT and MP table disagree");
	if (!boot_info__cmdline_get("firmware", src, sizeof(src)))
		src[0] = '\0';
	bool want_mp = !strncmp(src, "mptable", 8), want_acpi = !strncmp(src, "acpi", 5);
	if (src[0] && !want_mp && !want_acpi)
		rt__fail(ST_CMDLINE, "cmdline: unknown firmware=%s", src);
	const struct cpu_topology *tp = NULL;
	if (have_acpi && !want_mp)
		tp = &acpi;
	else if (have_mp && !want_acpi)
		tp = &mp;
	if (!tp)
		rt__fail(ST_SMP, "smp: no CPUs from %s", src[0] ? src : "ACPI MADT or MP table");
	const struct cpu_topology topo = *tp;
	uint64_t expect = opt_u64("cpus", 0);
	if (expect && topo.count != expect)
		rt__fail(ST_SMP, "smp: %s lists %u cpus, cmdline says cpus=%lu", topo.source, topo.count, expect);
	if (topo.lapic_addr != LAYOUT_LAPIC)
		rt__fail(ST_SMP, "smp: lapic at 0x%lx, expected 0x%llx", topo.lapic_addr, LAYOUT_LAPIC);
	if (topo.count > MAX_CPUS)
		rt__fail(ST_SMP, "smp: %u cpus, the guest supports %u", topo.count, MAX_CPUS);
	console__log("smp: starting APs from %s", topo.source);

	cpu__set_trap_handler(VEC_IPI, on_ipi);
	uint64_t t0 = rdtsc();
	uint32_t n = smp__boot(&topo, ap_work, 2000000);
	uint64_t boot_us = time__tsc_to_us(rdtsc() - t0);
	if (!spin_until(&ap_done, n - 1, 5000000))
		rt__fail(ST_SMP, "smp: %u of %u started APs finished their work", ap_done, n - 1);
	console__log("smp: %u cpus up (%lu us)", cpus_up, boot_us);
	if (n != topo.count || cpus_up != topo.count)
		rt__fail(ST_SMP, "smp: %u of %u cpus came up", n, topo.count);
	if (ap_echo_ok != n - 1)
		rt__fail(ST_SMP, "smp: %u of %u APs got a good PIO echo", ap_echo_ok, n - 1);
	if (cpl3_done && ap_cpl3_ok != n - 1)
		rt__fail(ST_SMP, "smp: %u of %u APs made a CPL3 round trip", ap_cpl3_ok, n - 1);

	/* Wake every (halted) AP with a fixed IPI. */
	for (uint32_t i = 1; i < n; i++)
		lapic__send_ipi(cpus[i].apic_id, ICR_FIXED | VEC_IPI);
	if (!spin_until(&ipis, n - 1, 2000000))
		rt__fail(ST_SMP, "smp: %u of %u APs took the IPI", ipis, n - 1);
	console__log("smp ok (%u cpus)", n);
}

/* ---- deliberate faults, for monitor tests ---- */

static void do_fault(const char *kind)
{
	volatile uint64_t *noncanonical = (volatile uint64_t *)0x8000000000000000ull;

	console__log("fault: %s", kind);
	if (!strncmp(kind, "triple", 7)) {
		cpu__load_empty_idt();          /* #GP -> no IDT -> #DF -> no IDT -> shutdown */
		(void)*noncanonical;
	} else if (!strncmp(kind, "gp", 3)) {
		(void)*noncanonical;       /* reported by cpu__trap_dispatch, exit 110 */
	} else if (!strncmp(kind, "ud", 3)) {
		__asm__ volatile("ud2");
	} else if (!strncmp(kind, "badmmio", 8)) {
		uint64_t v = mmio_read64(0xE0000000ull);
		console__log("fault: read 0x%lx from unassigned MMIO 0xe0000000", v);
		rt__exit(0);
	} else if (!strncmp(kind, "badpio", 7)) {
		uint32_t v = inl(0x5F0);
		console__log("fault: read 0x%x from unassigned port 0x5f0", v);
		rt__exit(0);
	} else if (!strncmp(kind, "hang", 5)) {
		for (;;) {
			cli();
			__asm__ volatile("hlt");
		}
	} else {
		rt__fail(ST_CMDLINE, "cmdline: unknown fault=%s", kind);
	}
	rt__fail(ST_FAULT, "fault=%s did not stop the guest", kind);
}

int guest_main(void)
{
	char buf[64];

	boot_info__cmdline_get("test", opt_tests, sizeof(opt_tests));
	if (want("boot"))
		check_boot();
	for (uint64_t i = 0, n = opt_u64("chatter", 0); i < n; i++)
		console__log("chatter %08lu of %08lu: the quick brown fox jumps", i, n);
	if (boot_info__cmdline_get("memsum", buf, sizeof(buf))) {
		uint64_t pages = opt_u64("memsum_pages", 1);

		if (!pages || pages > MEMSUM_PAGES)
			rt__fail(ST_CMDLINE, "memsum_pages=%lu: 1..%d", pages, MEMSUM_PAGES);
		run_memsum(opt_u64("memsum", 0), pages);
	}
	if (boot_info__cmdline_get("exit", buf, sizeof(buf))) {
		uint32_t st = (uint32_t)opt_u64("exit", 0);
		console__log("exit %u requested", st);
		return (int)st;
	}
	if (boot_info__cmdline_get("fault", buf, sizeof(buf)))
		do_fault(buf);
	if (want("pio"))
		check_pio();
	if (want("mmio"))
		check_mmio();
	if (want("timer"))
		check_timer();
	if (want("tsc"))
		check_tsc_deadline();
	if (want_opt_in("cpl3"))
		check_cpl3();
	if (want_opt_in("net"))
		check_net();
	if (want_opt_in("exitcost"))
		check_exitcost();
	if (want_opt_in("timerlat"))
		check_timerlat();
	if (want("smp"))
		check_smp();
	console__log("all tests passed");
	return 0;
}
