#!/usr/bin/env python3
"""Runs the benchmark suite in quick mode and checks the suite itself works: results.json
valid against bench/schema/results.schema.json, every benchmark ran (status ok) with the
figures, peers, placements, histograms and series it promises, the goals gathered, the
plots produced as SVG, summary.md naming every benchmark, and bench/report.py regenerating
the same report from results.json. It asserts structure, not speed.

Usage: bench_quick.py BUILD_DIR [OUT_DIR]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jsonschema
from referencing import Registry, Resource

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")

# What each benchmark must measure: (figure name, subject) pairs with a numeric value,
# histogram names, series names, and ratios that carry a goal.
EXPECT = {
    "exit_cost": {
        "figures": [("pio_round_trip", "rtvmm"), ("pio_round_trip", "raw-kvm"),
                    ("mmio_round_trip", "rtvmm"), ("mmio_round_trip", "raw-kvm")],
        "goal_ratios": 1,
    },
    "timer_latency": {
        "figures": [("timer_latency", "rtvmm-guest"), ("timer_latency", "host-cyclictest")],
        "scenarios": {("timer_latency", "rtvmm-guest"):
                      {"default-idle", "default-stress", "rt-idle", "rt-stress"}},
        "histograms": ["timer_latency"],
        "goal_ratios": 2,
    },
    "linux_cyclictest": {
        "figures": [("cyclictest", "linux-guest"), ("cyclictest", "host-cyclictest")],
        "scenarios": {("cyclictest", "linux-guest"):
                      {"default-idle", "default-stress", "rt-idle", "rt-stress"}},
        "histograms": ["cyclictest"],
        "goal_ratios": 1,
    },
    "loopback": {
        "figures": [("loopback_mpps", "rtvmm-dataplane"), ("loopback_mpps", "testpmd")],
        "goal_ratios": 1,
    },
    "pvp": {
        "figures": [("ndr_mpps", "rtvmm"), ("pdr_mpps", "rtvmm"), ("max_mpps", "rtvmm"),
                    ("ndr_mpps", "qemu"), ("pvp_rtt", "rtvmm")],
        "histograms": ["pvp_rtt"],
        "series": ["pvp_ndr"],
        "goal_ratios": 1,
    },
    "boot": {
        "figures": [("boot_first_output", "rtvmm"), ("rss_overhead_mib", "rtvmm"),
                    ("linux_init_marker", "rtvmm")],
        "peer_figures": ["boot_first_output", "rss_overhead_mib"],
    },
}
PLOTS = ["timer_latency-hist", "timer_latency-cdf", "cyclictest-hist", "cyclictest-cdf",
         "pvp_rtt-hist", "pvp_ndr", "loopback_mpps-compare", "pio_round_trip-compare"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def validator():
    schemas = [json.load(open(os.path.join(BENCH, "schema", n)))
               for n in ("benchmark.schema.json", "results.schema.json")]
    reg = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in schemas])
    return jsonschema.Draft202012Validator(schemas[1], registry=reg)


def check_benchmark(d):
    name = d["benchmark"]
    exp = EXPECT[name]
    check(d["status"] == "ok", f"{name}: status {d['status']}: {d.get('reason')}")
    check(d["pinning"], f"{name}: no placement recorded")
    for p in d["pinning"]:
        check(p["cpus"], f"{name}: {p['subject']} {p['thread']}: no cpus")
    figs = d["results"]
    for fname, subject in exp["figures"]:
        hit = [f for f in figs if f["name"] == fname and f["subject"] == subject]
        check(hit, f"{name}: no figure {fname} for {subject}")
        check(all(isinstance(f["value"], (int, float)) and f["value"] >= 0 for f in hit),
              f"{name}: {fname} for {subject} has no value: {hit}")
    for (fname, subject), want in exp.get("scenarios", {}).items():
        got = {f["scenario"] for f in figs if f["name"] == fname and f["subject"] == subject}
        check(want <= got, f"{name}: {fname} {subject}: scenarios {sorted(got)}, want {sorted(want)}")
    for fname in exp.get("peer_figures", []):
        subjects = {f["subject"] for f in figs if f["name"] == fname and f["value"] is not None}
        check(len(subjects) >= 2, f"{name}: {fname} measured for {subjects} only, no peer")
    for h in exp.get("histograms", []):
        hs = [x for x in d["histograms"] if x["name"] == h]
        check(hs, f"{name}: no histogram {h}")
        check(all(sum(n for _, n in x["buckets"]) + x["overflow"] > 0 for x in hs),
              f"{name}: an empty {h} histogram")
    for s in exp.get("series", []):
        check([x for x in d["series"] if x["name"] == s and x["points"]], f"{name}: no series {s}")
    goals = [r for r in d["ratios"] if r["goal"] is not None]
    check(len(goals) >= exp.get("goal_ratios", 0),
          f"{name}: {len(goals)} ratios with a goal, want >= {exp.get('goal_ratios', 0)}")
    for r in goals:
        # A ratio is computed exactly when both figures are; a zero denominator (e.g. no
        # loss-free rate found in quick mode's short trials) leaves it undefined, never invented.
        computable = r["numerator"] is not None and bool(r["denominator"])
        check((r["value"] is not None) == computable and (r["met"] is not None) == computable,
              f"{name}: ratio {r['name']} = {r['value']} (met {r['met']}) from "
              f"{r['numerator']}/{r['denominator']}")
        if computable:
            check(abs(r["value"] - r["numerator"] / r["denominator"]) < 1e-9 * max(1, abs(r["value"])),
                  f"{name}: ratio {r['name']} is not {r['numerator']}/{r['denominator']}")
    check(d["quick"] is True, f"{name}: not run in quick mode")


def main():
    build = os.path.abspath(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="rtvmm-bench-quick-")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [os.path.join(BENCH, "rtvmm-bench"), "--quick", "--build", build, "--out", out]
    print("+", " ".join(cmd), flush=True)
    status = subprocess.run(cmd).returncode
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for d in results["benchmarks"]:
        if d["status"] != "ok":
            print(f"--- {d['benchmark']}.log (tail)")
            with open(os.path.join(out, f"{d['benchmark']}.log"), errors="replace") as f:
                print("".join(f.readlines()[-40:]))
    validator().validate(results)
    check(status == 0, f"rtvmm-bench exited {status}")
    check(results["quick"] is True, "results.json: quick is not set")
    names = [d["benchmark"] for d in results["benchmarks"]]
    check(names == list(EXPECT), f"benchmarks {names}, want {list(EXPECT)}")
    for d in results["benchmarks"]:
        check_benchmark(d)
    check(len(results["goals"]) >= sum(e.get("goal_ratios", 0) for e in EXPECT.values()),
          "goals not gathered into results.json")
    plots = results["plots"]
    for p in PLOTS:
        check(f"plots/{p}.svg" in plots, f"plot {p}.svg missing from {plots}")
    for p in plots:
        with open(os.path.join(out, p), "rb") as f:
            head = f.read(200)
        check(b"<svg" in head or b"<?xml" in head, f"{p}: not an SVG")
    summary = open(os.path.join(out, "summary.md")).read()
    for n in names:
        check(f"## {n} (ok)" in summary, f"summary.md: no section for {n}")
    check("## Goals" in summary, "summary.md: no goals section")
    for p in plots:
        check(f"]({p})" in summary, f"summary.md does not show {p}")
    before = open(os.path.join(out, "results.json")).read()
    subprocess.run([os.path.join(BENCH, "report.py"), out], check=True, stdout=subprocess.DEVNULL)
    check(open(os.path.join(out, "results.json")).read() == before, "report.py changed results.json")
    print(f"bench quick: {len(names)} benchmarks, {len(plots)} plots, "
          f"{len(results['goals'])} goals, {results['duration_s']:.0f} s; report in {out}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
