#!/usr/bin/env python3
"""The latency benchmark modes report what bench/exit_cost.py and bench/timer_latency.py parse.

Runs, briefly and with the benchmarks' own parsers:
  1. the bare-metal guest's test=exitcost in rtvmm: a header with the loop's code hash, then
     kinds none/pio/mmio at cpl 0 and 3, each n == iterations, no bad read,
     min <= p50 <= p99 <= max, min <= avg <= max, histogram counts summing to n; exit 0;
  2. rtvmm-kvm-floor: the same lines for the same code hash, and --tsc-khz a positive number;
  3. test=timerlat: n == samples, min <= avg <= max, p50 <= p99 <= p99.9, histogram and
     overflow summing to n (the parser checks the line and bucket counts); exit 0;
  4. a bad option (exitcost_iters=0) stops the guest with status 109.
Exit 0, 1 with what was wrong and the output, 77 without /dev/kvm.

Usage: guest_bench_modes.py RTVMM GUEST.elf RTVMM-KVM-FLOOR
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import exit_cost  # noqa: E402
import timer_latency  # noqa: E402

ITERS = 300
SAMPLES = 300


class Failed(Exception):
    pass


def run(argv, status=0, timeout=120):
    """Runs ARGV; returns its stdout lines, or fails on a different exit status."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if p.returncode != status:
        raise Failed(f"{' '.join(argv)}: exit {p.returncode}, expected {status}\n{p.stdout}{p.stderr}")
    return p.stdout.splitlines()


def check_exitcost(who, lines):
    """Header, six sane lines, 'exitcost ok'; returns the code hash."""
    head, stats = exit_cost.parse_output(lines)
    if not head or head["iters"] != ITERS:
        raise Failed(f"{who}: no exitcost header with iters={ITERS}")
    want = {(k, c) for k in ("none", "pio", "mmio") for c in (0, 3)}
    if set(stats) != want:
        raise Failed(f"{who}: lines for {sorted(stats)}, expected {sorted(want)}")
    for key, s in stats.items():
        if s.get("n") != ITERS or s.get("bad") != 0:
            raise Failed(f"{who}: {key}: n={s.get('n')} bad={s.get('bad')}, expected n={ITERS} bad=0")
        if not (s["min"] <= s["p50"] <= s["p99"] <= s["max"] and s["min"] <= s["avg"] <= s["max"]):
            raise Failed(f"{who}: {key}: statistics out of order: {s}")
        if sum(n for _, n in s.get("hist", [])) != ITERS:
            raise Failed(f"{who}: {key}: histogram {s.get('hist')} does not sum to {ITERS}")
        if key[0] != "none" and s["min"] == 0:
            raise Failed(f"{who}: {key}: a round trip through the monitor took 0 ns")
    if not any(line.endswith("exitcost ok") for line in lines):
        raise Failed(f"{who}: no 'exitcost ok'")
    return head["code"]


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 1
    rtvmm, guest, floor = sys.argv[1:]
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist")
        return 77
    out = []
    try:
        khz = run([floor, "--tsc-khz"])[0]
        if not khz.isdigit() or int(khz) <= 0:
            raise Failed(f"rtvmm-kvm-floor --tsc-khz printed {khz!r}")
        out = run([rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M", "--cmdline",
                   f"test=exitcost exitcost_iters={ITERS} tsc_khz={khz}"])
        code = check_exitcost("guest", out)
        out = run([floor, "--iters", str(ITERS)])
        floor_code = check_exitcost("rtvmm-kvm-floor", out)
        if floor_code != code:
            raise Failed(f"the floor ran loop code {floor_code}, the guest {code}")
        out = run([rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M", "--cmdline",
                   f"test=timerlat period_us=500 samples={SAMPLES} tsc_khz={khz}"])
        try:
            s, buckets = timer_latency.parse_guest(out)
        except RuntimeError as e:
            raise Failed(f"timerlat: {e}")
        if s["count"] != SAMPLES or not (s["min"] <= s["avg"] <= s["max"]) or \
                not (s["p50"] <= s["p99"] <= s["p99_9"]) or s["tsc_source"] != "cmdline":
            raise Failed(f"timerlat: summary not sane: {s}")
        if not any(line.endswith("timerlat ok") for line in out):
            raise Failed("timerlat: no 'timerlat ok'")
        out = run([rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M", "--cmdline",
                   "test=exitcost exitcost_iters=0"], status=109)
    except (Failed, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        print("\n".join(out[-40:]))
        return 1
    print(f"ok: exitcost in rtvmm and rtvmm-kvm-floor (code {code}), timerlat "
          f"(min/avg/max {s['min']}/{s['avg']}/{s['max']} us, {len(buckets)} buckets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
