#!/usr/bin/env python3
"""Exit cost: one PIO and one MMIO round trip from the guest to the monitor and back, in rtvmm
and in a minimal raw-KVM program (the floor on this host), at CPL0 and at CPL3.

Both run the same instruction bytes (bench/guest/exitcost_loop.S: rdtsc, a read of a test-device
register that only answers, rdtsc) and reduce the samples with the same code (exitcost.h):
  rtvmm     build/rtvmm run --kernel build/bench/guest/rtvmm-guest.elf --test-device --cmdline "test=exitcost ..."
            (the bare-metal guest; the register is rtvmm's test device, dispatched through its
            exit table and bus like every device access)
  raw-kvm   build/bench/rtvmm-kvm-floor: /dev/kvm, one vCPU, no irqchip, each exit answered
            with one store before the next KVM_RUN
The runs alternate (raw-kvm, rtvmm, raw-kvm, ...), each process pinned with taskset to
--measure-cpu; a figure is the median of the runs' medians (min: smallest, avg: mean of the
averages, p99: median, max: largest). Ratios rtvmm/raw-kvm per kind and cpl, goal <= 1.2.

The timed window (rdtsc to rdtsc) holds the access and four register moves: at CPL0, which
this nested host emulates instruction by instruction, they cost ~2.4 us (kind "none", reported
as timing_window_no_exit); at CPL3 ~10 ns. Both subjects pay the same.
"""
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "exit_cost"
KINDS = {"pio": "pio_round_trip", "mmio": "mmio_round_trip", "none": "timing_window_no_exit"}
HEADER = re.compile(r"exitcost: tsc_khz=(\d+) \(([^)]*)\) code=(0x[0-9a-f]+) iters=(\d+)")
LINE = re.compile(r"exitcost: kind=(\w+) cpl=(\d) (.*)$")
HIST = re.compile(r"exitcost: hist kind=(\w+) cpl=(\d)((?: \d+:\d+)*)\s*$")


def add_arguments(ap):
    """Options of this benchmark."""
    ap.add_argument("--iters", type=int, default=None,
                    help="round trips per kind and cpl per run (default 10000; --quick 1000)")
    ap.add_argument("--runs", type=int, default=None,
                    help="alternating runs of each subject (default 3; --quick 2)")
    ap.add_argument("--floor-irqchip", action="store_true",
                    help="give the raw-KVM floor an in-kernel irqchip too, as rtvmm has")


def parse_output(lines):
    """{(kind, cpl): stats} and the header fields from exitcost lines (guest or floor)."""
    out, head = {}, None
    for line in lines:
        m = HEADER.search(line)
        if m:
            head = {"tsc_khz": int(m.group(1)), "tsc_source": m.group(2), "code": m.group(3),
                    "iters": int(m.group(4))}
            continue
        m = HIST.search(line)
        if m:
            out.setdefault((m.group(1), int(m.group(2))), {}).setdefault("hist", []).extend(
                [int(lo), int(n)] for lo, n in (p.split(":") for p in m.group(3).split()))
            continue
        m = LINE.search(line)
        if m:
            kv = dict(p.split("=", 1) for p in m.group(3).split())
            st = out.setdefault((m.group(1), int(m.group(2))), {})
            st.update({k: int(kv[k]) for k in ("n", "bad", "min", "avg", "p50", "p99", "max")})
    return head, out


def run_subject(args, subject, argv, pinned):
    """Runs one subject pinned to the measure cpu; returns (header, stats, placement)."""
    con = benchlib.Console(["taskset", "-c", str(args.measure_cpu)] + argv, name=subject,
                           logfile=os.path.join(args.outdir, f"{subject}-{len(pinned)}.log")
                           if args.outdir else None)
    try:
        tids = benchlib.find_threads(con.pid, r"^(vcpu0|floor-vcpu0)$", timeout=5)
        placement = None
        for tid, comm in tids.items():
            try:
                placement = (comm,) + benchlib.thread_placement(tid)
            except OSError:
                pass
        status = con.wait(timeout=120 + args.iters * 0.01)
    finally:
        con.close()
    head, stats = parse_output(con.lines)
    if status != 0 or head is None:
        raise RuntimeError(f"{subject} exited with status {status}: " + " | ".join(con.tail(6)))
    pinned.append((subject, placement))
    return head, stats


def run(args, new_result):
    """Alternates raw-kvm and rtvmm runs and records figures and ratios."""
    if args.iters is None:
        args.iters = 1000 if args.quick else 10000
    if args.runs is None:
        args.runs = 2 if args.quick else 3
    floor = benchlib.tool(args, "bench/rtvmm-kvm-floor")
    rtvmm = benchlib.tool(args, "rtvmm")
    guest = benchlib.tool(args, "bench/guest/rtvmm-guest.elf")
    res = new_result({"iters": args.iters, "runs": args.runs, "measure_cpu": args.measure_cpu,
                      "floor_irqchip": args.floor_irqchip, "rtvmm": rtvmm, "floor": floor,
                      "guest": guest})
    missing = (benchlib.need_kvm() or benchlib.need_built(args, floor, rtvmm, guest)
               or benchlib.need("taskset"))
    if missing:
        return benchlib.skip(res, missing)
    if args.iters > 100000:
        return benchlib.fail(res, "--iters: the guest holds at most 100000 samples")

    khz = int(subprocess.check_output([floor, "--tsc-khz"], text=True).strip())
    floor_argv = [floor, "--iters", str(args.iters)] + (["--irqchip"] if args.floor_irqchip else [])
    guest_argv = [rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M", "--cmdline",
                  f"test=exitcost exitcost_iters={args.iters} tsc_khz={khz}"]
    runs = {"raw-kvm": [], "rtvmm": []}
    codes, pinned = set(), []
    for i in range(args.runs):
        for subject, argv in (("raw-kvm", floor_argv), ("rtvmm", guest_argv)):
            benchlib.log(NAME, f"run {i + 1}/{args.runs}: {subject}")
            head, stats = run_subject(args, subject, argv, pinned)
            codes.add(head["code"])
            runs[subject].append(stats)
    if len(codes) != 1:
        return benchlib.fail(res, f"the guest and the floor ran different loop code (hashes {sorted(codes)})")

    for subject, placement in pinned[:2]:
        if placement:
            comm, cpus, policy, prio = placement
            benchlib.add_pinning(res, subject, comm, cpus, policy, prio)
        else:
            benchlib.add_pinning(res, subject, "vcpu0", args.measure_cpu)
    figs = {}
    for subject, per_run in runs.items():
        for (kind, cpl) in sorted(per_run[0]):
            st = [r[(kind, cpl)] for r in per_run]
            if any(s.get("n") != args.iters or s.get("bad") for s in st):
                return benchlib.fail(res, f"{subject} {kind} cpl{cpl}: wrong sample count or bad reads: {st}")
            fig = benchlib.add_figure(
                res, KINDS[kind], subject, statistics.median(s["p50"] for s in st), "ns",
                scenario=f"cpl{cpl}", min=min(s["min"] for s in st),
                avg=round(statistics.mean(s["avg"] for s in st)),
                p99=statistics.median(s["p99"] for s in st), max=max(s["max"] for s in st),
                n=sum(s["n"] for s in st), runs=[{k: s[k] for k in ("min", "avg", "p50", "p99", "max")}
                                                 for s in st])
            figs[(kind, cpl, subject)] = fig
    for kind in ("pio", "mmio"):
        for cpl in (0, 3):
            a, b = figs.get((kind, cpl, "rtvmm")), figs.get((kind, cpl, "raw-kvm"))
            if a and b:
                benchlib.add_ratio(res, f"{KINDS[kind]} cpl{cpl} rtvmm/raw-kvm", a["value"], b["value"],
                                   goal=1.2, better="lower")
    res["notes"] += [
        f"same loop code in both (FNV-1a of exitcost_loop.S bytes {codes.pop()}); TSC {khz} kHz "
        "(KVM_GET_TSC_KHZ, passed to the guest as tsc_khz=)",
        "value = median over runs of each run's median round trip; the window rdtsc..rdtsc holds the "
        "access plus 4 register moves (timing_window_no_exit: the same window without the access)",
        "CPL0 is emulated instruction by instruction on this nested PVM host and CPL3 runs natively; "
        "an exit from CPL3 costs more than one from CPL0 here (both subjects alike)",
        f"both subjects pinned with taskset to cpu {args.measure_cpu} (all of rtvmm's threads); "
        f"runs alternate raw-kvm/rtvmm {args.runs} times; raw-kvm has "
        + ("an in-kernel irqchip as rtvmm" if args.floor_irqchip else "no irqchip (rtvmm has one)"),
    ]
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
