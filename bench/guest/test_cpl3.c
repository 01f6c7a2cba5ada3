/*
 * test=cpl3: which transitions between CPL3 and CPL0 work on this host, one
 * "rtvmm-guest: cpl3: ..." line each, plus the costs a CPL3 benchmark guest
 * cares about (dec/jnz loop at CPL3 and CPL0, PIO and MMIO from CPL3).
 *
 * Every kernel-side handler checks that it runs at CPL0 (CS & 3 == 0) and
 * can execute a privileged instruction (mov %cr3 returns our page tables),
 * and that the frame it got says it came from CPL3. Kernel memory is
 * supervisor-only (user.c), so a transition that reaches its kernel entry
 * point but keeps CPL3 shows up as a #PF from CPL3 at that entry point,
 * reported as "lands at cpl3". A one-shot LAPIC timer (watchdog) ends a
 * user__call that never comes back.
 *
 * Command line: cpl3_iters=N (round trips per transition, default 1000),
 * cpl3_ticks=N (timer interrupts taken at CPL3, default 20),
 * cpl3_broken=a,b,... the transitions this host is known to get wrong: the
 * check then passes when exactly those are broken (a host that fixes one
 * fails it, so that the documentation gets updated).
 * cpl3_deviations=NAME:REASON,... known departures of this host from the
 * architecture that leave a transition working; each lets through exactly the
 * one value it names, the architectural one stays accepted, and the line says
 * "known REASON deviation". The only one: int-dpl0-gp-error-x16, the #GP of
 * INT n through a DPL0 gate pushing error code n * 16 + 2 instead of n * 8 + 2
 * (QEMU TCG's 64-bit interrupt delivery, e.g. the L2 guest of scripts/kvmbox).
 */
#include "rt.h"
#include "test_cpl3.h"

/* test_cpl3_user.S */
extern const uint8_t u_hello[], u_int80_loop[], u_int80_insn[], u_pio_insn[], u_ud_loop[], u_ud_insn[], u_ud_next[],
	u_pf_loop[], u_pf_insn[], u_pf_next[], u_gp_loop[], u_gp_insn[], u_gp_next[],
	u_de_loop[], u_de_insn[], u_de_next[], u_bp_loop[], u_bp_next[],
	u_intdpl0_loop[], u_intdpl0_insn[], u_intdpl0_next[], u_jump[], u_jump_next[],
	u_syscall_loop[], u_syscall_once[], u_syscall_insn[], u_syscall_probe[], u_probe_exit[],
	u_sysenter[], u_sysenter_insn[], u_tsc_spin[], u_spin[], u_pio_loop[], u_mmio_loop[];
extern const uint8_t isr_stubs[];
extern volatile struct uinfo {
	uint64_t cs, ss, ds, rflags, rsp, rcx, r11, maxgap;
} uinfo;
extern volatile uint32_t sysenter_count;
extern volatile uint16_t sysenter_cs;

/* user__call results that no user routine returns. */
#define RET_FAULT    0xFA017FA017ull   /* an unexpected exception ended the call (see `fault`) */
#define RET_TIMEOUT  0x7140E0017ull    /* the watchdog ended it */
#define RET_PROBE    0x960BE00Dull     /* the syscall probe reached u_probe_exit */
#define RET_TICKS    0x71C55ull        /* the timer test took all its ticks */

#define WATCHDOG_US  3000000ull
#define VEC_INTDPL0  0x82              /* no gate of its own: the IDT's default, DPL 0 */

/* What the handlers saw, per kind of transition. */
struct seen {
	uint32_t n, from_user, bad_cpl, bad_cr3, error_changes;
	uint64_t handler_cs, frame_cs, rip, error;
};
static struct seen seen;          /* handlers of the transition under test */
static uint64_t our_cr3;
static uint64_t cur_insn;         /* the instruction under test (for messages) */

/* The exception a loop provokes on purpose: where, and where to resume. */
static struct { uint64_t vector, rip, resume; } expect;

/* The first exception nobody expected during a user__call (it ends the call). */
static struct fault { bool valid; uint64_t vector, error, rip, cs, rflags, cr2; uint16_t handler_cs; } fault;

static enum { TIMER_OFF, TIMER_WATCHDOG, TIMER_TICKS } timer_mode;
static uint32_t ticks_wanted;
static uint64_t tick_deadline, tick_period_tsc, lat_min, lat_max, lat_sum;
static bool tick_tsc_deadline;

static void note(struct seen *s, const struct trap_frame *f)
{
	uint16_t cs = read_cs();
	uint64_t cr3 = read_cr3();   /* #GP if this handler were running at CPL3 */

	if (s->n && f->error != s->error)
		s->error_changes++;
	s->n++;
	if ((f->cs & 3) == 3)
		s->from_user++;
	if (cs & 3)
		s->bad_cpl++;
	if (cr3 != our_cr3)
		s->bad_cr3++;
	s->handler_cs = cs;
	s->frame_cs = f->cs;
	s->rip = f->rip;
	s->error = f->error;
}

static void on_counted(struct trap_frame *f)
{
	note(&seen, f);
}

static void on_syscall(struct trap_frame *f)
{
	note(&seen, f);
	f->rax++;
}

static void on_exception(struct trap_frame *f)
{
	if (f->vector == expect.vector && f->rip == expect.rip) {
		note(&seen, f);
		f->rip = expect.resume;
		return;
	}
	if (f->vector == 6 && f->rip == (uintptr_t)u_probe_exit)
		user__return(RET_PROBE);
	if (!fault.valid)
		fault = (struct fault){ true, f->vector, f->error, f->rip, f->cs, f->rflags,
					f->vector == 14 ? read_cr2() : 0, read_cs() };
	if ((f->cs & 3) == 3 || (f->rip >= (uintptr_t)__user_start && f->rip < (uintptr_t)__user_end))
		user__return(RET_FAULT);
	cpu__trap_unexpected(f);
}

static void on_timer(struct trap_frame *f)
{
	if (timer_mode == TIMER_TICKS) {
		uint64_t t = rdtsc();
		note(&seen, f);
		if (tick_tsc_deadline) {
			uint64_t lat = t > tick_deadline ? t - tick_deadline : 0;
			lat_sum += lat;
			if (lat < lat_min)
				lat_min = lat;
			if (lat > lat_max)
				lat_max = lat;
		}
		if (seen.n >= ticks_wanted) {
			lapic__timer_stop();
			lapic__eoi();
			user__return(RET_TICKS);
		}
		if (tick_tsc_deadline) {
			tick_deadline = rdtsc() + tick_period_tsc;
			wrmsr(MSR_TSC_DEADLINE, tick_deadline);
		}
		lapic__eoi();
		return;
	}
	lapic__eoi();
	if (timer_mode == TIMER_WATCHDOG) {
		timer_mode = TIMER_OFF;
		user__return(RET_TIMEOUT);
	}
}

/* user__call with the watchdog armed and the per-call records reset. */
static uint64_t run_user(const void *entry, uint64_t a0, uint64_t a1, unsigned flags, uint64_t *us)
{
	memset(&seen, 0, sizeof(seen));
	memset((void *)&user_last_exit, 0, sizeof(user_last_exit));
	memset(&fault, 0, sizeof(fault));
	timer_mode = TIMER_WATCHDOG;
	lapic__timer_start(VEC_TIMER, (uint32_t)(WATCHDOG_US * 1000 / 16), false);
	uint64_t t0 = rdtsc();
	uint64_t r = user__call(entry, a0, a1, flags);
	uint64_t t1 = rdtsc();
	lapic__timer_stop();
	timer_mode = TIMER_OFF;
	if (us)
		*us = time__tsc_to_us(t1 - t0);
	return r;
}

/* ---- results ---- */

static char opt_broken[128], opt_deviations[128];
static char broken[160], wrongly_ok[160];
static uint32_t n_ok, n_broken;
static bool cpl3_failed;
bool cpl3_done;

static void append(char *list, size_t size, const char *name)
{
	size_t len = strlen(list);
	snprintf(list + len, size - len, "%s%s", len ? "," : "", name);
}

static void result(const char *name, bool ok)
{
	bool known = boot_info__list_has(opt_broken, name);

	if (ok) {
		n_ok++;
		if (known)
			append(wrongly_ok, sizeof(wrongly_ok), name);
	} else {
		n_broken++;
		append(broken, sizeof(broken), name);
		if (!known)
			cpl3_failed = true;
	}
	if (ok && known)
		cpl3_failed = true;
}

static const char *sym(uint64_t rip)
{
	static char buf[48];

	if (rip == (uintptr_t)syscall_entry)
		return "syscall_entry (LSTAR)";
	if (rip == (uintptr_t)sysenter_entry)
		return "sysenter_entry (SYSENTER_EIP)";
	if (rip >= (uintptr_t)isr_stubs && rip < (uintptr_t)isr_stubs + 256 * 16) {
		snprintf(buf, sizeof(buf), "isr stub of vector 0x%lx", (rip - (uintptr_t)isr_stubs) / 16);
		return buf;
	}
	if (rip && rip == cur_insn)
		return "the instruction under test";
	if (rip >= (uintptr_t)__user_start && rip < (uintptr_t)__user_end)
		return "user region";
	return "kernel";
}

/* Why a user__call went wrong, in one phrase. */
static const char *why(uint64_t r)
{
	static char buf[200];

	if (r == RET_TIMEOUT)
		return "no return to the kernel within the watchdog";
	if (r != RET_FAULT || !fault.valid)
		return "wrong result";
	if (fault.vector == 14 && (fault.cs & 3) == 3 && fault.cr2 == fault.rip &&
	    !(fault.rip >= (uintptr_t)__user_start && fault.rip < (uintptr_t)__user_end)) {
		snprintf(buf, sizeof(buf), "landed at %s 0x%lx with cpl 3 (cs 0x%lx), #PF error 0x%lx",
			 sym(fault.rip), fault.rip, fault.cs, fault.error);
		return buf;
	}
	static const char *const names[32] = { [0] = "#DE", [3] = "#BP", [6] = "#UD", [13] = "#GP", [14] = "#PF" };
	snprintf(buf, sizeof(buf), "unexpected %s (vector %lu) error 0x%lx at 0x%lx (%s) cs 0x%lx rflags 0x%lx cr2 0x%lx",
		 fault.vector < 32 && names[fault.vector] ? names[fault.vector] : "exception",
		 fault.vector, fault.error, fault.rip, sym(fault.rip), fault.cs, fault.rflags, fault.cr2);
	return buf;
}

static bool landed_at_cpl3(uint64_t r)
{
	return r == RET_FAULT && fault.valid && fault.vector == 14 && (fault.cs & 3) == 3 &&
	       fault.cr2 == fault.rip;
}

/* Whether a loop of `n` transitions all reached their CPL0 handler from CPL3 and came back. */
static bool loop_fine(uint64_t r, uint64_t want_r, uint32_t n)
{
	return r == want_r && seen.n == n && seen.from_user == n && !seen.bad_cpl && !seen.bad_cr3;
}

/* A loop of `n` transitions whose handler records into `seen`. */
static bool loop_ok(const char *name, uint64_t r, uint64_t want_r, uint32_t n, uint64_t us, const char *how)
{
	bool ok = loop_fine(r, want_r, n);

	if (ok)
		console__log("cpl3: %s ok (%u round trips, %lu us each; %s)", name, n, n ? us / n : 0, how);
	else if (landed_at_cpl3(r))
		console__log("cpl3: %s lands at cpl3 (host bug): %s", name, why(r));
	else if (r != want_r)
		console__log("cpl3: %s BROKEN: %s", name, why(r));
	else
		console__log("cpl3: %s BROKEN: %u of %u handled, %u from cpl3, %u at cpl!=0 (cs 0x%lx), %u with a wrong cr3",
			     name, seen.n, n, seen.from_user, seen.bad_cpl, seen.handler_cs, seen.bad_cr3);
	result(name, ok);
	return ok;
}

static void expect_fault(uint64_t vector, const uint8_t *rip, const uint8_t *resume)
{
	cur_insn = (uintptr_t)rip;
	expect.vector = vector;
	expect.rip = (uintptr_t)rip;
	expect.resume = (uintptr_t)resume;
}

static uint64_t opt(const char *key, uint64_t def)
{
	char buf[24];

	if (!boot_info__cmdline_get(key, buf, sizeof(buf)) || !buf[0])
		return def;
	return strtou64(buf, NULL);
}

static void ps_per_iter(char *buf, size_t size, uint64_t cycles, uint64_t iters)
{
	uint64_t ps = iters ? cycles * 1000000000ull / tsc_khz / iters : 0;
	snprintf(buf, size, "%lu.%02lu ns", ps / 1000, ps % 1000 / 10);
}

/* dec/jnz at CPL0 (kernel, emulated on the nested host). */
static uint64_t cpl0_spin(uint64_t n)
{
	uint64_t t0 = rdtsc();
	__asm__ volatile("1: decq %0; jnz 1b" : "+r"(n));
	return rdtsc() - t0;
}

/* The REASON of cpl3_deviations=...,NAME:REASON,... or NULL when NAME is not listed. */
static const char *deviation(const char *name)
{
	static char reason[32];
	size_t n = strlen(name);

	for (const char *p = opt_deviations; *p;) {
		const char *e = p;
		while (*e && *e != ',')
			e++;
		if ((size_t)(e - p) > n + 1 && !strncmp(p, name, n) && p[n] == ':') {
			size_t r = (size_t)(e - p) - n - 1;
			if (r >= sizeof(reason))
				r = sizeof(reason) - 1;
			memcpy(reason, p + n + 1, r);
			reason[r] = '\0';
			return reason;
		}
		p = *e ? e + 1 : e;
	}
	return NULL;
}

/* cpl3_deviations names only deviations this test knows, each with a reason. */
static void check_deviations(void)
{
	static const char *const known[] = { "int-dpl0-gp-error-x16" };

	for (const char *p = opt_deviations; *p;) {
		const char *e = p, *colon = NULL;
		while (*e && *e != ',') {
			if (*e == ':' && !colon)
				colon = e;
			e++;
		}
		bool ok = false;
		for (unsigned i = 0; i < ARRAY_SIZE(known) && colon && colon + 1 < e; i++)
			ok |= (size_t)(colon - p) == strlen(known[i]) && !strncmp(p, known[i], (size_t)(colon - p));
		if (!ok)
			rt__fail(ST_CPL3, "cpl3: cpl3_deviations=%s: each entry must be NAME:REASON with NAME one of: %s",
				 opt_deviations, known[0]);
		p = *e ? e + 1 : e;
	}
}

/* ---- the transitions ---- */

static void t_enter_exit(void)
{
	uint64_t us;
	uint64_t r = run_user(u_hello, 0, 0, 0, &us);
	bool ok = r == 0xC0DE && user_last_exit.n == 1 && (user_last_exit.frame_cs & 3) == 3 &&
		  !(user_last_exit.handler_cs & 3);

	if (ok)
		console__log("cpl3: enter ok (iretq to cpl3, back by #UD at user_exit; %lu us; user sees cs 0x%lx ss 0x%lx ds 0x%lx rflags 0x%lx)",
			     us, uinfo.cs, uinfo.ss, uinfo.ds, uinfo.rflags);
	else
		console__log("cpl3: enter BROKEN: %s (exit: %u, frame cs 0x%lx, handler cs 0x%lx)",
			     why(r), user_last_exit.n, user_last_exit.frame_cs, user_last_exit.handler_cs);
	result("enter", ok);
}

/* CPL0 -> CPL3 with SYSRETQ (what Linux returns from most syscalls with); SWAPGS at CPL0. */
static void t_sysret_swapgs(void)
{
	memset((void *)&uinfo, 0, sizeof(uinfo));
	uint64_t r = run_user(u_hello, 0, 0, USER_SYSRET, NULL);
	bool ok = r == 0xC0DE && (user_last_exit.frame_cs & 3) == 3 && uinfo.cs == (GDT_USER_CODE | 3);
	if (ok)
		console__log("cpl3: sysret ok (sysretq to cpl3: user sees cs 0x%lx ss 0x%lx rflags 0x%lx)",
			     uinfo.cs, uinfo.ss, uinfo.rflags);
	else
		console__log("cpl3: sysret BROKEN: %s (user saw cs 0x%lx)", why(r), uinfo.cs);
	result("sysret", ok);

	uint64_t kgs = rdmsr(MSR_KERNEL_GS_BASE), gs0, gs1;
	wrmsr(MSR_KERNEL_GS_BASE, 0x5a5a000);
	__asm__ volatile("swapgs" ::: "memory");
	gs0 = rdmsr(MSR_GS_BASE);
	__asm__ volatile("swapgs" ::: "memory");
	gs1 = rdmsr(MSR_KERNEL_GS_BASE);
	wrmsr(MSR_KERNEL_GS_BASE, kgs);
	ok = gs0 == 0x5a5a000 && gs1 == 0x5a5a000;
	console__log("cpl3: swapgs %s (at cpl0: gs base after one swapgs 0x%lx, kernel gs base after two 0x%lx)",
		     ok ? "ok" : "BROKEN", gs0, gs1);
	result("swapgs", ok);
}

/*
 * INT 0x82 from CPL3 through a DPL0 gate: #GP, error code 0x412 (0x82 * 8 + 2: IDT) every time;
 * 0x822 (0x82 * 16 + 2) only on a host listed with cpl3_deviations=int-dpl0-gp-error-x16:REASON.
 */
static void t_int_dpl0_gp(uint64_t r, uint32_t n, uint64_t us)
{
	const uint64_t want = VEC_INTDPL0 * 8 + 2, x16 = VEC_INTDPL0 * 16 + 2;
	const char *reason = deviation("int-dpl0-gp-error-x16");
	bool same = !seen.error_changes, code_ok = same && seen.error == want;
	bool known = same && reason && seen.error == x16;
	char how[160];

	if (loop_fine(r, 0, n) && !code_ok && !known) {
		console__log("cpl3: int-dpl0-gp BROKEN: #GP error code 0x%lx%s, expected 0x%lx (vector 0x%x * 8 + 2: IDT)",
			     seen.error, same ? "" : " (not the same every time)", want, VEC_INTDPL0);
		result("int-dpl0-gp", false);
		return;
	}
	if (known)
		snprintf(how, sizeof(how), "int 0x%x through a dpl0 gate: #GP error code 0x%lx, expected 0x%lx: known %s deviation",
			 VEC_INTDPL0, seen.error, want, reason);
	else
		snprintf(how, sizeof(how), "int 0x%x through a dpl0 gate: #GP error code 0x%lx", VEC_INTDPL0, want);
	loop_ok("int-dpl0-gp", r, 0, n, us, how);
}

static void t_syscall(uint32_t n)
{
	uint64_t us, r;

	/* 1. EFER.SCE = 0: SYSCALL must raise #UD. */
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~EFER_SCE);
	expect_fault(6, u_syscall_insn, u_syscall_insn + 2);
	r = run_user(u_syscall_once, 0, 0, 0, NULL);
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
	memset(&expect, 0, sizeof(expect));
	bool ok = r == 7 && seen.n == 1 && seen.from_user == 1 && !seen.bad_cpl;
	if (ok)
		console__log("cpl3: syscall-nosce ok (#UD with EFER.SCE=0)");
	else
		console__log("cpl3: syscall-nosce BROKEN (EFER.SCE=0 should give #UD): %s", why(r));
	result("syscall-nosce", ok);

	/* 2. Probe: LSTAR on a user page, so whatever SYSCALL leaves runs and can be looked at. */
	memset((void *)&uinfo, 0, sizeof(uinfo));
	wrmsr(MSR_LSTAR, (uintptr_t)u_syscall_probe);
	r = run_user(u_syscall_once, 0, 0, 0, NULL);
	wrmsr(MSR_LSTAR, (uintptr_t)syscall_entry);
	if (r == RET_PROBE)
		console__log("cpl3: syscall probe (LSTAR on a user page): ran with cs 0x%lx ss 0x%lx rflags 0x%lx rsp 0x%lx, rcx 0x%lx (return rip 0x%lx), r11 0x%lx",
			     uinfo.cs, uinfo.ss, uinfo.rflags, uinfo.rsp, uinfo.rcx,
			     (uintptr_t)u_syscall_insn + 2, uinfo.r11);
	else
		console__log("cpl3: syscall probe (LSTAR on a user page): %s", why(r));

	/* 3. The real thing: LSTAR = syscall_entry in supervisor-only kernel text. */
	r = run_user(u_syscall_loop, n, 0, 0, &us);
	loop_ok("syscall", r, 0, n, us, "return by iretq");
}

static void t_sysenter(void)
{
	struct cpuid_regs v = cpuid(0, 0);
	bool amd = v.ebx == 0x68747541;   /* "Auth"enticAMD */
	uint64_t r;

	sysenter_count = 0;
	expect_fault(6, u_sysenter_insn, u_sysenter_insn + 2);
	r = run_user(u_sysenter, 0, 0, 0, NULL);
	memset(&expect, 0, sizeof(expect));
	bool ud = r == 0xbad && seen.n == 1 && seen.from_user == 1 && !seen.bad_cpl;
	bool arrived = r == 0x5e5e && sysenter_count == 1 && !(sysenter_cs & 3);
	bool ok = amd ? ud : arrived;

	if (ud)
		console__log("cpl3: sysenter raises #UD %s", amd ? "ok (AMD: not valid in long mode)" : "(BROKEN: Intel allows it)");
	else if (arrived)
		console__log("cpl3: sysenter reaches sysenter_entry at cpl0 (cs 0x%x)%s", sysenter_cs,
			     amd ? " (BROKEN: AMD raises #UD in long mode)" : " ok");
	else if (landed_at_cpl3(r))
		console__log("cpl3: sysenter lands at cpl3 (host bug): %s", why(r));
	else
		console__log("cpl3: sysenter BROKEN: %s", why(r));
	result("sysenter", ok);
}

static void t_timer(uint32_t n)
{
	uint64_t us;

	tick_tsc_deadline = (cpuid(1, 0).ecx & (1u << 24)) && lapic__timer_tsc_deadline(VEC_TIMER);
	lapic__timer_stop();
	memset(&seen, 0, sizeof(seen));
	memset(&fault, 0, sizeof(fault));
	memset((void *)&uinfo, 0, sizeof(uinfo));
	ticks_wanted = n;
	lat_min = ~0ull;
	lat_max = lat_sum = 0;
	tick_period_tsc = time__us_to_tsc(1000);
	timer_mode = TIMER_TICKS;
	if (tick_tsc_deadline) {
		lapic__timer_tsc_deadline(VEC_TIMER);
		tick_deadline = rdtsc() + tick_period_tsc;
		wrmsr(MSR_TSC_DEADLINE, tick_deadline);
	} else {
		lapic__timer_start(VEC_TIMER, 1000 * 1000 / 16, true);
	}
	uint64_t t0 = rdtsc();
	uint64_t r = user__call(u_tsc_spin, 0, 0, 0);
	us = time__tsc_to_us(rdtsc() - t0);
	lapic__timer_stop();
	timer_mode = TIMER_OFF;

	bool ok = r == RET_TICKS && seen.n == n && seen.from_user == n && !seen.bad_cpl && !seen.bad_cr3;
	if (ok && tick_tsc_deadline)
		console__log("cpl3: timer-from-user ok (%u tsc-deadline ticks 1000 us apart, all taken at cpl3, %lu us in all; deadline to handler min/avg/max %lu/%lu/%lu us; longest pause of the cpl3 loop %lu us)",
			     n, us, time__tsc_to_us(lat_min), time__tsc_to_us(lat_sum / n), time__tsc_to_us(lat_max),
			     time__tsc_to_us(uinfo.maxgap));
	else if (ok)
		console__log("cpl3: timer-from-user ok (%u lapic periodic ticks of 1000 us, all taken at cpl3, %lu us in all; longest pause of the cpl3 loop %lu us)",
			     n, us, time__tsc_to_us(uinfo.maxgap));
	else if (r != RET_TICKS)
		console__log("cpl3: timer-from-user BROKEN: %s", why(r));
	else
		console__log("cpl3: timer-from-user BROKEN: %u ticks, %u from cpl3, %u at cpl!=0, %u with a wrong cr3",
			     seen.n, seen.from_user, seen.bad_cpl, seen.bad_cr3);
	result("timer", ok);
}

static void t_costs(void)
{
	char a[24], b[24];
	uint64_t n3 = opt("cpl3_spin", 100000000), n0 = opt("cpl0_spin", 10000), us;

	uint64_t c3 = run_user(u_spin, n3, 0, 0, NULL);
	uint64_t c0 = cpl0_spin(n0);
	if (c3 == RET_FAULT || c3 == RET_TIMEOUT) {
		console__log("cpl3: dec/jnz loop at cpl3 BROKEN: %s", why(c3));
		result("loop", false);
	} else {
		ps_per_iter(a, sizeof(a), c3, n3);
		ps_per_iter(b, sizeof(b), c0, n0);
		uint64_t ratio = c3 && n0 ? (c0 * n3) / (c3 * n0) : 0;
		console__log("cpl3: dec/jnz loop: cpl3 %s/iter (%lu iters), cpl0 %s/iter (%lu iters), cpl0/cpl3 %lux",
			     a, n3, b, n0, ratio);
	}

	uint32_t n = (uint32_t)opt("cpl3_io_iters", 1000);
	memset(&expect, 0, sizeof(expect));
	cur_insn = (uintptr_t)u_pio_insn;
	uint64_t r = run_user(u_hello, 0, 0, USER_IOPL3, NULL);
	uint64_t iopl_rflags = uinfo.rflags;
	r = run_user(u_pio_loop, n, 0, USER_IOPL3, &us);
	if (r == 0)
		console__log("cpl3: pio-iopl3 ok (%u echo round trips with RFLAGS.IOPL=3, %lu us each)", n, us / n);
	else
		console__log("cpl3: pio-iopl3 BROKEN (entered with IOPL=3, user sees rflags 0x%lx): %s", iopl_rflags,
			     r == RET_FAULT || r == RET_TIMEOUT ? why(r) : "wrong echo");
	result("pio-iopl3", r == 0);

	user__allow_ports(PORT_TESTDEV, 16, true);
	r = run_user(u_pio_loop, n, 0, 0, &us);
	user__allow_ports(PORT_TESTDEV, 16, false);
	if (r == 0)
		console__log("cpl3: pio-iobitmap ok (%u echo round trips allowed by the TSS I/O bitmap, %lu us each)", n, us / n);
	else
		console__log("cpl3: pio-iobitmap BROKEN (ports 0x%x-0x%x allowed in the TSS I/O bitmap): %s",
			     PORT_TESTDEV, PORT_TESTDEV + 15, r == RET_FAULT || r == RET_TIMEOUT ? why(r) : "wrong echo");
	result("pio-iobitmap", r == 0);
	cur_insn = 0;

	user__map(LAYOUT_TESTDEV_MMIO, LAYOUT_TESTDEV_MMIO_SIZE);
	r = run_user(u_mmio_loop, n, LAYOUT_TESTDEV_MMIO, 0, &us);
	if (r == 0)
		console__log("cpl3: mmio from cpl3 ok (%u scratch round trips, %lu us each)", n, us / n);
	else
		console__log("cpl3: mmio from cpl3 BROKEN: %s", r == RET_FAULT || r == RET_TIMEOUT ? why(r) : "wrong value");
	result("mmio", r == 0);
}

int check_cpl3(void)
{
	uint32_t n = (uint32_t)opt("cpl3_iters", 1000);
	uint64_t r, us;

	if (!n)
		n = 1;
	boot_info__cmdline_get("cpl3_broken", opt_broken, sizeof(opt_broken));
	boot_info__cmdline_get("cpl3_deviations", opt_deviations, sizeof(opt_deviations));
	check_deviations();
	user__init();
	our_cr3 = read_cr3();
	cpu__set_trap_handler(VEC_INT80, on_counted);
	cpu__set_gate_dpl(VEC_INT80, 3);
	cpu__set_gate_dpl(3, 3);   /* int3 from CPL3 */
	static const unsigned exc[] = { 0, 3, 6, 13, 14 };
	for (unsigned i = 0; i < ARRAY_SIZE(exc); i++)
		cpu__set_trap_handler(exc[i], on_exception);
	cpu__set_trap_handler(VEC_TIMER, on_timer);
	cpu__set_syscall_handler(on_syscall);
	console__log("cpl3: user region [0x%lx-0x%lx) U=1, cr3 0x%lx, tss 0x%x, cpu %u",
		     (uintptr_t)__user_start, (uintptr_t)__user_end, our_cr3, GDT_TSS + 16 * user__cpu_index(),
		     user__cpu_index());

	t_enter_exit();

	cur_insn = (uintptr_t)u_int80_insn;
	r = run_user(u_int80_loop, n, 0, 0, &us);
	loop_ok("int80", r, 0, n, us, "dpl3 interrupt gate, iretq back");

	expect_fault(3, u_bp_next, u_bp_next);
	r = run_user(u_bp_loop, n, 0, 0, &us);
	loop_ok("int3", r, 0, n, us, "#BP through a dpl3 gate");

	expect_fault(6, u_ud_insn, u_ud_next);
	r = run_user(u_ud_loop, n, 0, 0, &us);
	loop_ok("ud", r, 0, n, us, "#UD from ud2");

	expect_fault(14, u_pf_insn, u_pf_next);
	r = run_user(u_pf_loop, n, (uintptr_t)&tsc_khz, 0, &us);
	bool pf_ok = loop_ok("pf", r, 0, n, us, "#PF reading a supervisor page");
	if (pf_ok)
		console__log("cpl3: pf error code 0x%lx (expected 0x5: present, user, read)", seen.error);

	expect_fault(13, u_gp_insn, u_gp_next);
	r = run_user(u_gp_loop, n, 0, 0, &us);
	loop_ok("gp", r, 0, n, us, "#GP from mov %cr3");

	expect_fault(0, u_de_insn, u_de_next);
	r = run_user(u_de_loop, n, 0, 0, &us);
	loop_ok("de", r, 0, n, us, "#DE from div by 0");

	expect_fault(13, u_intdpl0_insn, u_intdpl0_next);
	r = run_user(u_intdpl0_loop, n, 0, 0, &us);
	t_int_dpl0_gp(r, n, us);
	memset(&expect, 0, sizeof(expect));

	/* Calibration: what a CPL3 instruction fetch from kernel text looks like. */
	cur_insn = 0;
	r = run_user(u_jump, 0, (uintptr_t)check_cpl3, 0, NULL);
	bool ref = landed_at_cpl3(r) && fault.rip == (uintptr_t)check_cpl3;
	console__log("cpl3: reference: jmp to kernel text from cpl3 -> %s", why(r));
	result("kernel-fetch-pf", ref);

	t_sysret_swapgs();
	t_syscall(n);
	t_sysenter();
	t_timer((uint32_t)opt("cpl3_ticks", 20));
	t_costs();

	console__log("cpl3: %u ok, %u broken%s%s%s%s", n_ok, n_broken, n_broken ? ": " : "", broken,
		     wrongly_ok[0] ? "; listed in cpl3_broken but ok: " : "", wrongly_ok);
	if (cpl3_failed)
		rt__fail(ST_CPL3, "cpl3: broken [%s], cpl3_broken=[%s]", broken, opt_broken);
	cpl3_done = true;
	console__log("cpl3 ok%s%s%s", opt_broken[0] ? " (as documented for this host: broken " : "", opt_broken,
		     opt_broken[0] ? ")" : "");
	return 0;
}


bool cpl3_ap_check(uint32_t cpu_index)
{
	if (user__cpu_index() != cpu_index)
		return false;
	return user__call(u_hello, 0, 0, 0) == 0xC0DE;
}
