/*
 * test=exitcost: the cost of an exit to the monitor and back, per round trip.
 * exitcost_loop.S (also run by the raw-KVM floor, bench/kvm_floor.c) reads a
 * test-device register that does nothing but answer, `exitcost_iters` times,
 * with rdtsc right before and after each access; the samples are reduced at
 * CPL3 (native on the nested development host) by exitcost.h, the code the
 * floor uses too.
 *
 * Command line: exitcost_iters=N (round trips per line, default 2000, at most
 * EC_MAX), exitcost_cpl=0,3 (which privilege levels, default both),
 * tsc_khz=N (the monitor's KVM_GET_TSC_KHZ: exact ns; else time.c's estimate).
 *
 * Lines (values in ns; hist: lower bound of a [2^i, 2^(i+1)) ns bucket : count, non-empty
 * buckets only, EXITCOST_HIST_PER_LINE a line, as many lines as needed):
 *   exitcost: tsc_khz=2596000 (cmdline) code=0x1b2c3d4e iters=2000
 *   exitcost: kind=pio cpl=3 n=2000 bad=0 min=30100 avg=35230 p50=34900 p99=51200 max=80100 unit=ns
 *   exitcost: hist kind=pio cpl=3 16384:3 32768:1997
 * kind=none is the same loop without the access: what the timing costs.
 */
#include "rt.h"
#include "exitcost.h"
#include "test_bench.h"

#define EC_MAX 100000

struct ec_reduce {
	uint32_t *samples;
	uint64_t n, tsc_khz;
	struct exitcost_stats *out;
};

static USER_BSS uint32_t ec_samples[EC_MAX];
static USER_BSS struct exitcost_args ec_args;
static USER_BSS struct exitcost_stats ec_stats;
static USER_BSS struct ec_reduce ec_red;

/* CPL3 entries: user__call arrives with RDI = the argument and no return address. */
extern const uint8_t ec_run_entry[], ec_reduce_entry[];
__asm__(".pushsection .user.text, \"ax\"\n"
	"ec_run_entry:\n"
	"	call exitcost_run\n"
	"	jmp user_exit\n"
	"ec_reduce_entry:\n"
	"	call exitcost_user_reduce\n"
	"	jmp user_exit\n"
	".popsection");

/* The reduction at CPL3 (called from ec_reduce_entry). */
USER_TEXT void exitcost_user_reduce(struct ec_reduce *r)
{
	exitcost_reduce(r->samples, r->n, r->tsc_khz, r->out);
}

static const char *const kind_name[] = { "none", "pio", "mmio" };

/* Number "key=N" from the cmdline, DEF when absent; fails (ST_EXITCOST) when not a number. */
static uint64_t opt(const char *key, uint64_t def)
{
	return boot_info__cmdline_u64(key, def, ST_EXITCOST);
}

/* The value line, then the histogram, EXITCOST_HIST_PER_LINE "ns:count" pairs a line. */
static void print_stats(uint32_t kind, unsigned cpl, uint64_t bad, const struct exitcost_stats *s)
{
	char hist[EXITCOST_HIST_PER_LINE * 24];
	unsigned in_line = 0;
	int len = 0;

	console__log("exitcost: kind=%s cpl=%u n=%lu bad=%lu min=%lu avg=%lu p50=%lu p99=%lu max=%lu unit=ns",
		     kind_name[kind], cpl, s->n, bad, s->min, s->avg, s->p50, s->p99, s->max);
	for (unsigned i = 0; i < EXITCOST_HIST; i++) {
		if (!s->hist[i])
			continue;
		len += snprintf(hist + len, sizeof(hist) - (size_t)len, " %lu:%u", 1ul << i, s->hist[i]);
		if (++in_line == EXITCOST_HIST_PER_LINE) {
			console__log("exitcost: hist kind=%s cpl=%u%s", kind_name[kind], cpl, hist);
			len = 0;
			in_line = 0;
		}
	}
	if (in_line)
		console__log("exitcost: hist kind=%s cpl=%u%s", kind_name[kind], cpl, hist);
}

/* ITERS timed round trips of KIND at CPL, reduced at CPL3 and printed; fails on a bad read. */
static void run_one(uint32_t kind, unsigned cpl, uint64_t iters)
{
	ec_args = (struct exitcost_args){
		.samples = ec_samples, .count = iters, .kind = kind, .expect = EXITCOST_MAGIC,
		.addr = kind == EXITCOST_MMIO ? LAYOUT_TESTDEV_MMIO + EXITCOST_MMIO_OFF : PORT_TESTDEV + EXITCOST_PORT_OFF,
	};
	uint64_t bad = cpl ? user__call(ec_run_entry, (uintptr_t)&ec_args, 0, 0) : exitcost_run(&ec_args);
	ec_red = (struct ec_reduce){ ec_samples, iters, tsc_khz, &ec_stats };
	user__call(ec_reduce_entry, (uintptr_t)&ec_red, 0, 0);
	print_stats(kind, cpl, bad, &ec_stats);
	if (bad)
		rt__fail(ST_EXITCOST, "exitcost: %lu of %lu %s reads at cpl %u did not return 0x%x",
			 bad, iters, kind_name[kind], cpl, EXITCOST_MAGIC);
}

void check_exitcost(void)
{
	uint64_t iters = opt("exitcost_iters", 2000);
	char cpls[16];

	if (!iters || iters > EC_MAX)
		rt__fail(ST_EXITCOST, "cmdline: exitcost_iters=%lu, expected 1..%u", iters, EC_MAX);
	if (!boot_info__cmdline_get("exitcost_cpl", cpls, sizeof(cpls)))
		memcpy(cpls, "0,3", 4);
	bool cpl0 = boot_info__list_has(cpls, "0"), cpl3 = boot_info__list_has(cpls, "3");
	if (!cpl0 && !cpl3)
		rt__fail(ST_EXITCOST, "cmdline: exitcost_cpl=%s, expected 0, 3 or 0,3", cpls);
	if (mmio_read32(LAYOUT_TESTDEV_MMIO + EXITCOST_MMIO_OFF) != EXITCOST_MAGIC ||
	    inl(PORT_TESTDEV + EXITCOST_PORT_OFF) != EXITCOST_MAGIC)
		rt__fail(ST_EXITCOST, "exitcost: no rtvmm test device (magic registers)");
	user__init();   /* the reduction runs at CPL3 either way */
	user__allow_ports(PORT_TESTDEV, 16, true);
	user__map(LAYOUT_TESTDEV_MMIO, LAYOUT_TESTDEV_MMIO_SIZE);
	console__log("exitcost: tsc_khz=%lu (%s) code=0x%08x iters=%lu", tsc_khz, tsc_khz_source,
		     exitcost_code_hash((const uint8_t *)exitcost_run, exitcost_run_end), iters);
	for (unsigned cpl = 0; cpl <= 3; cpl += 3) {
		if ((cpl == 0 && !cpl0) || (cpl == 3 && !cpl3))
			continue;
		for (uint32_t kind = EXITCOST_NONE; kind <= EXITCOST_MMIO; kind++)
			run_one(kind, cpl, iters);
	}
	user__allow_ports(PORT_TESTDEV, 16, false);
	console__log("exitcost ok");
}
