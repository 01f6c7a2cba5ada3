#!/usr/bin/env python3
"""Timer wake-up latency inside the guest, cyclictest-style, next to the host's own cyclictest on
the same cpu in the same run.

Guest (bench/guest, test=timerlat): the LAPIC TSC-deadline timer armed at absolute deadlines
t0 + k * period, the vCPU waiting in `sti; hlt` (its thread sleeps in the host); lateness = TSC
at the first instruction of a dedicated interrupt stub - deadline, 1 us buckets 0..9999 us plus
overflow. Deadlines that passed meanwhile are skipped, as cyclictest does. Three placements:
  default   build/rtvmm run --kernel ... (no plan: vCPU thread unpinned, SCHED_OTHER)
  rt        build/rtvmm run PLAN.yaml: vCPU pinned to --measure-cpu, SCHED_FIFO --priority,
            emulator threads on --housekeeping-cpu, RAM prefaulted and mlocked, 2M pages
            (4K fallback when the pool is short), /dev/cpu_dma_latency held at 0 by rtvmm
  rt-hlt    the rt plan with disable_exits: [hlt] (docs/rt-knobs.md): the guest's hlt stays in
            guest mode, so the wake-up skips the exit and the host scheduler; where KVM cannot
            disable HLT exits this placement is left out and a note says so
Host: cyclictest -m -p PRIO -a MEASURE_CPU -t1 -i PERIOD -l SAMPLES -h 10000 -q --json=FILE
(SCHED_FIFO and pinned, so its scenarios are named rt-idle / rt-stress).
Each idle and under stress: stress-ng CPU hogs (SCHED_OTHER), one pinned to each of the
housekeeping and measure cpus, so the measured cpu is contended and the other one loaded too.

A guest run that stalls (its vCPU thread has not run for 10 s, or no result within 30 s +
10x its nominal length: a timer interrupt that never came, so the halted vCPU sleeps for good)
is killed and run again, up to --attempts times; every stall is recorded (figure field
stalled_runs, and a note). A host that loses wake-ups so is broken, and the record says so;
scripts/kvmbox is such a host (nested KVM in QEMU TCG: one TSC-deadline wake-up from hlt in
500-2000 never arrives there, with QEMU as the monitor as with rtvmm, more often under load),
which is why --quick takes 500 samples, not more.

What the guest figure includes beyond the host's wake-up of the vCPU thread: KVM's injection of
the interrupt and the stub's first instruction (rdtsc), both emulated at CPL0 on this nested
host (the guest prints tsc_step_ns, one emulated rdtsc, ~2 us here).
"""
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "timer_latency"
HEAD = re.compile(r"timerlat: tsc_khz=(\d+) \(([^)]*)\) .*tsc_step_ns=(\d+)")
SUMMARY = re.compile(r"timerlat: n=(\d+) (.*)$")
HIST = re.compile(r"timerlat: hist((?: \d+:\d+)+)\s*$")
HIST_END = re.compile(r"timerlat: hist end lines=(\d+) buckets=(\d+)")
PAGES = re.compile(r"rtvmm: memory .*?, (\d+ [KMG]iB) pages")
# The guest's placements, and what each adds to the rt plan's VM.
PLACEMENTS = ("default", "rt", "rt-hlt")
PLAN_KEYS = {"rt": "", "rt-hlt": "  disable_exits: [hlt]\n"}
NO_CAP = re.compile(r"KVM lacks KVM_CAP_X86_DISABLE_EXITS[^|]*")


class Unsupported(RuntimeError):
    """This host's KVM cannot give the placement (rtvmm refused it naming the capability)."""


def add_arguments(ap):
    """Options of this benchmark."""
    ap.add_argument("--period-us", type=int, default=200, help="timer period in us (default 200)")
    ap.add_argument("--samples", type=int, default=None,
                    help="wake-ups per scenario (default 100000; --quick 500)")
    ap.add_argument("--attempts", type=int, default=10,
                    help="guest runs per scenario before a stalled one fails it (default 10)")
    ap.add_argument("--priority", type=int, default=90,
                    help="SCHED_FIFO priority of the rt vCPU and of cyclictest (default 90)")
    ap.add_argument("--placements", default=",".join(PLACEMENTS),
                    help="guest placements to measure, of " + ", ".join(PLACEMENTS) + " (default all)")


def parse_guest(lines):
    """Summary {min, avg, max (us), p50/p99/p99_9 (us), overflow, count, ...} and {bucket: count}."""
    head = summ = end = None
    buckets = {}
    for line in lines:
        if m := HEAD.search(line):
            head = {"tsc_khz": int(m.group(1)), "tsc_source": m.group(2), "tsc_step_ns": int(m.group(3))}
        elif m := HIST_END.search(line):
            end = (int(m.group(1)), int(m.group(2)))
        elif m := HIST.search(line):
            for pair in m.group(1).split():
                lo, n = pair.split(":")
                buckets[int(lo)] = int(n)
        elif m := SUMMARY.search(line):
            kv = dict(p.split("=", 1) for p in m.group(2).split())
            summ = {"count": int(m.group(1)), "min": int(kv["min"]) / 1000, "avg": int(kv["avg"]) / 1000,
                    "max": int(kv["max"]) / 1000, "p50": int(kv["p50_us"]), "p99": int(kv["p99_us"]),
                    "p99_9": int(kv["p99_9_us"]), "overflow": int(kv["overflow"]),
                    "missed": int(kv["missed"]), "early": int(kv["early"])}
    if not (head and summ and end):
        raise RuntimeError("guest output incomplete: " + " | ".join(lines[-6:]))
    if end[1] != len(buckets) or sum(buckets.values()) + summ["overflow"] != summ["count"]:
        raise RuntimeError(f"guest histogram inconsistent: {len(buckets)} buckets (said {end[1]}), "
                           f"{sum(buckets.values())} + {summ['overflow']} overflow != {summ['count']}")
    summ.update(head)
    return summ, buckets


def read_placement(pid, pattern, want_fifo=False, timeout=5.0):
    """(comm, cpus, policy, priority) of a thread of PID matching PATTERN, read back from the
    kernel; with WANT_FIFO, waits up to TIMEOUT for one that runs SCHED_FIFO (cyclictest's
    measuring thread appears after its main thread)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for tid, comm in benchlib.find_threads(pid, pattern, timeout=timeout).items():
            try:
                found.append((comm,) + benchlib.thread_placement(tid))
            except OSError:
                pass
        fifo = [p for p in found if p[2] == "SCHED_FIFO"]
        if fifo or not want_fifo or time.monotonic() > deadline:
            return (fifo or found or [None])[0]
        time.sleep(0.05)


class Stalled(RuntimeError):
    """A guest run started but gave no result in time: a wake-up that never came."""


# A guest that waits for a wake-up every --period-us runs its vCPU thread many times a second;
# one whose thread has not run at all for this long waits for an interrupt that will not come.
STALL_S = 10


def cpu_ns(pid, tid):
    """Nanoseconds thread TID of PID has run (/proc schedstat), or None when unknown."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError, TypeError):
        return None


def run_guest_once(args, rtvmm, guest, placement, cmdline, tmp, scenario):
    """One guest run; returns (summary, buckets, {thread: placement}, page size or None)."""
    if placement in PLAN_KEYS:
        plan = os.path.join(tmp, "plan.yaml")
        with open(plan, "w") as f:
            f.write(benchlib.rt_plan_yaml("timerlat", args, guest, cmdline, "64M", args.priority,
                                          vm_keys=PLAN_KEYS[placement]))
        argv = [rtvmm, "run", plan, "--test-device"]
    else:
        argv = ["taskset", "-c", ",".join(map(str, benchlib.anywhere_cpus(args))),
                rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M", "--cmdline", cmdline]
    logfile = os.path.join(args.outdir, f"guest-{scenario}.log") if args.outdir else None
    con = benchlib.Console(argv, name=scenario, logfile=logfile)
    try:
        if not con.expect(r"timerlat: tsc_khz=", timeout=60):
            con.stop()
            if m := NO_CAP.search(" | ".join(con.tail(8))):
                raise Unsupported(m.group(0).strip())
            raise RuntimeError(f"{scenario}: the guest did not start: " + " | ".join(con.tail(8)))
        where = {"vcpu0": read_placement(con.pid, r"^vcpu0$"), "rtvmm": read_placement(con.pid, r"^rtvmm$")}
        vcpu = next(iter(benchlib.find_threads(con.pid, r"^vcpu0$", timeout=5)), None)
        limit = 30 + 10 * args.samples * args.period_us / 1e6
        t0 = time.monotonic()
        ran, ran_at = cpu_ns(con.pid, vcpu), t0
        while not con.expect(HIST_END.pattern, 1.0):
            now = time.monotonic()
            if con.proc.poll() is not None:
                break
            ran_now = cpu_ns(con.pid, vcpu)
            if ran_now != ran:
                ran, ran_at = ran_now, now
            elif ran is not None and now - ran_at >= STALL_S:
                con.kill()
                raise Stalled(f"{scenario}: the vCPU thread has not run for {STALL_S} s, "
                              f"{now - t0:.0f} s after the guest started")
            if now - t0 >= limit:
                con.kill()
                raise Stalled(f"{scenario}: no result {limit:.0f} s after the guest started")
        status = con.wait(timeout=30)
    finally:
        con.close()
    if status != 0:
        raise RuntimeError(f"{scenario}: rtvmm exited with {status}: " + " | ".join(con.tail(8)))
    summ, buckets = parse_guest(con.lines)
    pages = next((m.group(1) for m in map(PAGES.search, con.lines) if m), None)
    return summ, buckets, where, pages


def run_guest(args, res, rtvmm, guest, placement, cmdline, tmp, scenario):
    """run_guest_once until a run completes (at most --attempts runs); returns its results and
    how many runs stalled before it, each stall noted in RES."""
    for attempt in range(1, args.attempts + 1):
        try:
            return run_guest_once(args, rtvmm, guest, placement, cmdline, tmp, scenario) + (attempt - 1,)
        except Stalled as e:
            benchlib.log(NAME, f"{e}: run {attempt} of {args.attempts} stalled")
            res["notes"].append(f"{scenario}: guest run {attempt} stalled and was killed ({e}): a timer "
                                "wake-up from hlt never came, a fault of this host's KVM")
    raise RuntimeError(f"{scenario}: all {args.attempts} guest runs stalled (lost timer wake-ups)")


def run_cyclictest(args, tmp, scenario):
    """The host's cyclictest on the measure cpu; returns (summary, buckets, placement)."""
    out = os.path.join(tmp, f"cyclictest-{scenario}.json")
    argv = ["cyclictest", "-m", "-p", str(args.priority), "-a", str(args.measure_cpu), "-t1",
            "-i", str(args.period_us), "-l", str(args.samples), "-h", "10000", "-q", f"--json={out}"]
    con = benchlib.Console(argv, name="cyclictest",
                           logfile=os.path.join(args.outdir, f"cyclictest-{scenario}.log") if args.outdir else None)
    try:
        where = read_placement(con.pid, r"cyclictest", want_fifo=True)
        status = con.wait(timeout=60 + 3 * args.samples * args.period_us / 1e6)
    finally:
        con.close()
    if status != 0 or not os.path.exists(out):
        raise RuntimeError(f"cyclictest exited with {status}: " + " | ".join(con.tail(6)))
    with open(out) as f:
        ct = benchlib.parse_cyclictest(f.read())
    if ct is None:
        raise RuntimeError(f"cyclictest wrote no result to {out}: " + " | ".join(con.tail(6)))
    buckets, overflow = ct["buckets"], ct["overflow"]
    hs = benchlib.hist_stats(buckets, 1, overflow, overflow_at=10000)
    summ = {"count": int(ct["total"]), "min": float(ct["min"]), "avg": float(ct["avg"]),
            "max": float(ct["max"]), "p50": hs.get("p50"), "p99": hs.get("p99"), "p99_9": hs.get("p99_9"),
            "overflow": overflow}
    return summ, buckets, where


def record(res, subject, scenario, summ, buckets):
    """One figure (value = max, us) and its histogram."""
    extra = {k: summ[k] for k in ("min", "avg", "p50", "p99", "p99_9", "max", "overflow", "count")}
    for k in ("missed", "early", "tsc_step_ns", "stalled_runs"):
        if k in summ:
            extra[k] = summ[k]
    fig = benchlib.add_figure(res, "timer_latency", subject, summ["max"], "us", scenario=scenario, **extra)
    benchlib.add_histogram(res, "timer_latency", subject, scenario, "us", 1, buckets, summ["overflow"])
    return fig


def pin_record(res, subject, thread, where, fallback_cpus):
    """add_pinning from a placement read back from the kernel (or what was asked, if it was gone)."""
    if where:
        comm, cpus, policy, prio = where
        benchlib.add_pinning(res, subject, comm, cpus, policy, prio)
    else:
        benchlib.add_pinning(res, subject, thread, fallback_cpus)


def run(args, new_result):
    """Host cyclictest, default guest and rt guest, idle then under stress."""
    if args.samples is None:
        args.samples = 500 if args.quick else 100000
    rtvmm = benchlib.tool(args, "rtvmm")
    guest = benchlib.tool(args, "bench/guest/rtvmm-guest.elf")
    floor = benchlib.tool(args, "bench/rtvmm-kvm-floor")
    stress_cpus = sorted({args.housekeeping_cpu, args.measure_cpu})
    res = new_result({"period_us": args.period_us, "samples": args.samples, "priority": args.priority,
                      "guest_attempts": args.attempts,
                      "measure_cpu": args.measure_cpu, "housekeeping_cpu": args.housekeeping_cpu,
                      "stress": f"stress-ng --cpu 1 pinned to each of cpus {stress_cpus}",
                      "cyclictest": f"cyclictest -m -p {args.priority} -a {args.measure_cpu} -t1 "
                                    f"-i {args.period_us} -l {args.samples} -h 10000 -q --json=FILE"})
    missing = (benchlib.need_kvm() or benchlib.need_built(args, rtvmm, guest)
               or benchlib.need("cyclictest", "stress-ng", "taskset"))
    if missing:
        return benchlib.skip(res, missing)
    if args.measure_cpu == args.housekeeping_cpu:
        return benchlib.fail(res, "--measure-cpu and --housekeeping-cpu must differ (the rt plan refuses it)")
    placements = [p for p in PLACEMENTS if p in args.placements.split(",")]
    if not placements or set(args.placements.split(",")) - set(PLACEMENTS):
        return benchlib.fail(res, f"--placements {args.placements}: expected some of {', '.join(PLACEMENTS)}")

    cmdline = f"test=timerlat period_us={args.period_us} samples={args.samples}"
    if os.path.exists(floor):
        cmdline += " tsc_khz=" + subprocess.check_output([floor, "--tsc-khz"], text=True).strip()
    figs, pages, steps = {}, set(), []
    with tempfile.TemporaryDirectory(prefix="rtvmm-timerlat-") as tmp:
        for cond in ("idle", "stress"):
            with benchlib.Stress(stress_cpus) if cond == "stress" else contextlib.nullcontext():
                benchlib.log(NAME, f"{cond}: host cyclictest")
                summ, buckets, where = run_cyclictest(args, tmp, cond)
                figs[("host-cyclictest", f"rt-{cond}")] = record(res, "host-cyclictest", f"rt-{cond}", summ, buckets)
                pin_record(res, f"host-cyclictest rt-{cond}", "cyclictest", where, args.measure_cpu)
                for placement in list(placements):
                    scenario = f"{placement}-{cond}"
                    benchlib.log(NAME, f"{cond}: guest, {placement} placement")
                    try:
                        summ, buckets, where, pg, stalls = run_guest(args, res, rtvmm, guest, placement,
                                                                     cmdline, tmp, scenario)
                    except Unsupported as e:
                        placements.remove(placement)
                        res["notes"].append(f"{placement}: not measured: rtvmm refused it on this host: {e}")
                        continue
                    summ["stalled_runs"] = stalls
                    figs[("rtvmm-guest", scenario)] = record(res, "rtvmm-guest", scenario, summ, buckets)
                    anywhere = benchlib.anywhere_cpus(args)
                    pin_record(res, f"rtvmm {scenario}", "vcpu0", where["vcpu0"],
                               args.measure_cpu if placement in PLAN_KEYS else anywhere)
                    pin_record(res, f"rtvmm {scenario}", "rtvmm", where["rtvmm"],
                               args.housekeeping_cpu if placement in PLAN_KEYS else anywhere)
                    steps.append(summ["tsc_step_ns"])
                    if placement in PLAN_KEYS and pg:
                        pages.add(pg)

    def ratio(name, num, den, key="value", goal=None):
        a, b = figs.get(num), figs.get(den)
        if a and b:
            benchlib.add_ratio(res, name, a[key], b[key], goal=goal, better="lower")

    g, h = "rtvmm-guest", "host-cyclictest"
    ratio("timer max rt-stress guest/host", (g, "rt-stress"), (h, "rt-stress"), goal=2.0)
    ratio("timer max stress rt/default", (g, "rt-stress"), (g, "default-stress"), goal=1.0)
    ratio("timer p99 stress rt/default", (g, "rt-stress"), (g, "default-stress"), key="p99", goal=1.0)
    ratio("timer max rt-idle guest/host", (g, "rt-idle"), (h, "rt-idle"))
    ratio("timer p99 rt-stress guest/host", (g, "rt-stress"), (h, "rt-stress"), key="p99")
    ratio("timer max idle rt-hlt/rt", (g, "rt-hlt-idle"), (g, "rt-idle"))
    ratio("timer p99 stress rt-hlt/rt", (g, "rt-hlt-stress"), (g, "rt-stress"), key="p99")
    res["notes"].append(benchlib.anywhere_note(args))
    res["notes"] += [
        f"stress: one stress-ng --cpu hog (SCHED_OTHER) pinned to each of cpus {stress_cpus}: the "
        f"measure cpu {args.measure_cpu} is contended and the housekeeping cpu loaded",
        f"guest lateness = TSC at the first instruction of its interrupt stub - deadline; it includes "
        f"the interrupt's injection and one rdtsc, emulated at CPL0 here "
        f"(one emulated rdtsc: {min(steps) if steps else '?'}-{max(steps) if steps else '?'} ns)",
        "rt plan guest RAM pages: " + (", ".join(sorted(pages)) if pages else "unknown")
        + " (2M requested with fallback_4k)",
        "host figures: cyclictest (clock_nanosleep, SCHED_FIFO, pinned to the measure cpu, mlockall)",
        "value = max (us); p50/p99/p99_9 are 1 us bucket lower bounds; deadlines that passed while "
        "the guest was late are skipped (counted as missed), as cyclictest does",
        "guest wake-ups before their deadline count as 0 us (figure field early: "
        + ", ".join(f"{sc} {f.get('early', 0)}" for (sub, sc), f in figs.items() if sub == "rtvmm-guest") + ")",
    ]
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
