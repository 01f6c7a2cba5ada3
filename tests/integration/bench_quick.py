#!/usr/bin/env python3
"""Runs the benchmark suite in quick mode and checks the suite itself works: results.json
valid against bench/schema/results.schema.json, every benchmark ran (status ok) with the
figures, peers, placements, histograms and series it promises, the goals gathered, the
plots produced as SVG, summary.md naming every benchmark, and bench/report.py regenerating
the same report from results.json. It asserts structure, not speed.

A benchmark may be skipped (or a part of it, such as pvp's QEMU peer) only for a fact about
this host that is checked here again: its document's "skip" {kind, subject} (bench/benchlib.py
SKIP_KINDS) must hold now, by this script's own test of it:
    program  SUBJECT is not on PATH
    kvm      SUBJECT cannot be opened read-write and `rtvmm kvm-host --kvm SUBJECT` fails
    root     this runs without root
    build    SUBJECT, a file inside BUILD_DIR, does not exist
A skip of another kind, with no record, or whose fact is false fails the test; the checks of
what a skipped benchmark (part) would have measured are then left out. Under CI=true every
skip fails: CI installs every peer and has KVM. The test itself skips (exit 77; fails under
CI) when it cannot run the suite at all: not root, or no usable KVM for a benchmark that needs
it (EXPECT[...]["kvm"], True unless said otherwise).

Usage: bench_quick.py BUILD_DIR [--only A,B] [OUT_DIR]
(--only: those benchmarks alone, as meson runs it: one test per benchmark, so a slow host that
dies in one repeats only that one)
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

# What each benchmark must measure: (figure name, subject[, forwarder]) with a numeric value
# (a forwarder: only the figures that carry it, pvp's "bare-metal" or "linux-testpmd"),
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
                      {"default-idle", "default-stress", "rt-idle", "rt-stress", "rt-hlt-idle",
                       "rt-hlt-stress"}},
        # a KVM that cannot disable HLT exits: rtvmm refuses the placement, the result says so
        "unsupported": {"rt-hlt": {"rt-hlt-idle", "rt-hlt-stress"}},
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
        "figures": [("loopback_mpps", "rtvmm-dataplane"), ("loopback_mpps", "testpmd"),
                    ("loopback_mpps", "ovs-dpdk"), ("loopback_cycles_per_packet", "rtvmm-dataplane"),
                    ("loopback_cycles_per_packet", "testpmd"), ("loopback_cycles_per_packet", "ovs-dpdk")],
        "goal_ratios": 2,
        "kvm": False,          # DPDK processes only: it runs where the tests run natively
    },
    "scaling": {
        "figures": [(f, d) for f in ("scaling_mpps", "scaling_cycles_per_packet")
                    for d in ("rtvmm-dataplane", "testpmd", "ovs-dpdk")]
                   + [("l2_mpps", "rtvmm-dataplane"), ("l2_cycles_per_packet", "rtvmm-dataplane")],
        "scenarios": {("scaling_mpps", "rtvmm-dataplane"): {"1 port", "4 ports"},
                      ("scaling_mpps", "testpmd"): {"1 port", "4 ports"},
                      ("l2_mpps", "rtvmm-dataplane"): {"1 MAC/port", "4096 MACs/port"}},
        "series": ["scaling_mpps", "scaling_cycles_per_packet", "l2_mpps"],
        "goal_ratios": 2,
        "kvm": False,          # DPDK processes only, as loopback
    },
    "pvp": {
        "figures": [("ndr_mpps", "rtvmm", "bare-metal"), ("pdr_mpps", "rtvmm", "bare-metal"),
                    ("max_mpps", "rtvmm", "bare-metal"), ("ndr_mpps", "qemu", "bare-metal"),
                    ("pvp_rtt", "rtvmm", "bare-metal"),
                    ("ndr_mpps", "rtvmm", "linux-testpmd"), ("pdr_mpps", "rtvmm", "linux-testpmd"),
                    ("max_mpps", "rtvmm", "linux-testpmd"), ("vnf_ready_s", "rtvmm", "linux-testpmd"),
                    ("testpmd_rx_packets", "rtvmm", "linux-testpmd"),
                    ("ndr_mpps", "qemu", "linux-testpmd"), ("max_mpps", "qemu", "linux-testpmd"),
                    ("vnf_ready_s", "qemu", "linux-testpmd"),
                    # the switched PVP: rtvmm's guest through each switch
                    ("ndr_mpps", "rtvmm via rtvmm-dataplane", "bare-metal"),
                    ("ndr_mpps", "rtvmm via testpmd", "bare-metal"),
                    ("ndr_mpps", "rtvmm via ovs-dpdk", "bare-metal")],
        "histograms": ["pvp_rtt"],
        "series": ["pvp_ndr"],
        "goal_ratios": 1,
        # the VNF's ratios rtvmm/qemu: every round's own ratio and their spread (the max rate's
        # always; the NDR's where qemu had a loss-free rate)
        "round_ratios": ["pvp linux-testpmd max 64 rtvmm/qemu", "pvp linux-testpmd NDR 64 rtvmm/qemu"],
    },
    "boot": {
        "figures": [("boot_first_output", "rtvmm"), ("rss_overhead_mib", "rtvmm"),
                    ("linux_init_marker", "rtvmm")],
        "peer_figures": ["boot_first_output", "rss_overhead_mib"],
    },
    "disk": {
        "figures": [(f, m) for f in ("randread_iops", "randwrite_iops", "seqread_mbs", "seqwrite_mbs")
                    for m in ("rtvmm", "qemu")],
        "peer_figures": ["randread_iops", "randwrite_iops", "seqread_mbs", "seqwrite_mbs"],
        "spread_ratios": 4,
        "function_only_in_box": True,
    },
    "migration": {
        "figures": [(f, m) for f in ("restore_guest_line", "migrate_total_s", "migrate_downtime_ms",
                                     "migrate_console_gap_ms", "migrate_rounds", "migrate_pages_sent",
                                     "snapshot_disk_mib")
                    for m in ("rtvmm", "qemu")]
                   + [("restore_monitor_line", "rtvmm"), ("restore_load", "rtvmm")],
        "peer_figures": ["restore_guest_line", "migrate_total_s", "migrate_downtime_ms",
                         "migrate_console_gap_ms"],
        "spread_ratios": 4,
        "function_only_in_box": True,
    },
}
# Plots the report must draw, and the benchmark that provides each.
PLOTS = {"timer_latency-hist": "timer_latency", "timer_latency-cdf": "timer_latency",
         "cyclictest-hist": "linux_cyclictest", "cyclictest-cdf": "linux_cyclictest",
         "pvp_rtt-hist": "pvp", "pvp_ndr": "pvp", "loopback_mpps-compare": "loopback",
         "scaling_mpps": "scaling", "scaling_cycles_per_packet": "scaling", "l2_mpps": "scaling",
         "pio_round_trip-compare": "exit_cost", "randread_iops-compare": "disk",
         "seqwrite_mbs-compare": "disk"}
CI = os.environ.get("CI") == "true"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def skip_holds(skip, build):
    """(True, how it was checked) when the skip record SKIP {kind, subject} is a fact on this
    host now, else (False, why not). Each kind is tested here on its own, not by benchlib."""
    if not isinstance(skip, dict):
        return False, "no machine-checkable record (want skip: {kind, subject})"
    kind, subject = skip.get("kind"), skip.get("subject")
    if kind == "program":
        if not subject:
            return False, "program: no program named"
        found = shutil.which(subject)
        return (found is None, f"{subject} is not on PATH" if found is None else f"{subject} is {found}")
    if kind == "kvm":
        if not subject:
            return False, "kvm: no device named"
        usable = os.access(subject, os.R_OK | os.W_OK)
        probe = subprocess.run([os.path.join(build, "rtvmm"), "kvm-host", "--kvm", subject],
                               capture_output=True, text=True)
        said = (probe.stdout or probe.stderr).strip()
        if usable or probe.returncode == 0:
            return False, f"{subject} is {'usable' if usable else 'not usable'}; rtvmm kvm-host: {said}"
        return True, f"{subject} cannot be opened read-write; rtvmm kvm-host: {said}"
    if kind == "root":
        euid = os.geteuid()
        return (euid != 0, f"running with euid {euid}")
    if kind == "build":
        if not subject or os.path.commonpath([os.path.abspath(subject), build]) != build:
            return False, f"build: {subject!r} is not a file of the build directory {build}"
        return (not os.path.exists(subject),
                f"{subject} {'exists' if os.path.exists(subject) else 'does not exist'}")
    return False, f"unknown kind {kind!r}"


def check_skips(d, build):
    """Checks every skip of document D (whole or of parts); returns the parts left out."""
    name = d["benchmark"]
    records = ([(None, d.get("skip"), d.get("reason"))] if d["status"] == "skipped" else [])
    records += [(p.get("part"), p, p.get("reason")) for p in d.get("skipped_parts", [])]
    for part, rec, reason in records:
        what = f"{name}{' ' + part if part else ''}"
        check(not CI, f"{what}: skipped under CI=true (CI installs everything and has KVM): {reason}")
        ok, how = skip_holds(rec, build)
        check(ok, f"{what}: skipped for a reason that does not hold here: {reason!r} ({how})")
        print(f"{what}: skipped, and the reason holds ({how}): {reason}")
    return {p for p, _, _ in records if p}


def validator():
    schemas = []
    for n in ("benchmark.schema.json", "results.schema.json"):
        with open(os.path.join(BENCH, "schema", n)) as f:
            schemas.append(json.load(f))
    reg = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in schemas])
    return jsonschema.Draft202012Validator(schemas[1], registry=reg)


def check_benchmark(d, left_out=()):
    """Checks what a benchmark that ran promises; LEFT_OUT: subjects whose part was skipped."""
    name = d["benchmark"]
    exp = EXPECT[name]
    check(d["status"] == "ok", f"{name}: status {d['status']}: {d.get('reason')}")
    check(d["pinning"], f"{name}: no placement recorded")
    for p in d["pinning"]:
        check(p["cpus"], f"{name}: {p['subject']} {p['thread']}: no cpus")
    figs = d["results"]
    for fname, subject, *fwd in exp["figures"]:
        fwd = fwd[0] if fwd else None
        if subject in left_out or fwd in left_out or f"{subject} ({fwd})" in left_out:
            continue
        hit = [f for f in figs if f["name"] == fname and f["subject"] == subject
               and (fwd is None or f.get("forwarder") == fwd)]
        if fwd:
            subject = f"{subject} ({fwd})"
        check(hit, f"{name}: no figure {fname} for {subject}")
        check(all(isinstance(f["value"], (int, float)) and f["value"] >= 0 for f in hit),
              f"{name}: {fname} for {subject} has no value: {hit}")
    for (fname, subject), want in exp.get("scenarios", {}).items():
        got = {f["scenario"] for f in figs if f["name"] == fname and f["subject"] == subject}
        for placement, scenarios in exp.get("unsupported", {}).items():
            if any(n.startswith(f"{placement}: not measured: rtvmm refused it") for n in d["notes"]):
                want = want - scenarios
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
    if "qemu" not in left_out and exp.get("spread_ratios"):
        spread = [r for r in d["ratios"] if r.get("spread")]
        check(len(spread) >= exp.get("spread_ratios", 0),
              f"{name}: {len(spread)} ratios with the rounds' spread, want >= {exp.get('spread_ratios', 0)}")
        for r in spread:
            lo, hi = r["spread"]
            check(0 < lo <= hi and r.get("verdict") and r["value"] is not None
                  and abs(r["value"] - r["numerator"] / r["denominator"]) < 1e-9 * max(1, r["value"]),
                  f"{name}: ratio {r['name']}: value {r['value']} from {r['numerator']}/{r['denominator']}, "
                  f"spread {r['spread']}, verdict {r.get('verdict')!r}")
    if exp.get("function_only_in_box") and os.environ.get("RTVMM_KVMBOX") == "1":
        check(d.get("function_only"), f"{name}: ran in the KVM box without saying its figures are function only")
    for rname in exp.get("round_ratios", []):
        if {"rtvmm", "qemu", "linux-testpmd", "qemu (linux-testpmd)"} & set(left_out):
            continue
        hit = [r for r in d["ratios"] if r["name"] == rname]
        check(hit, f"{name}: no ratio {rname}")
        r = hit[0]
        pairs = r.get("per_round") or []
        need = 1 if " max " in rname or r["denominator"] else 0
        check(r.get("rounds") == len(pairs) >= need
              and r.get("spread") == ([min(pairs), max(pairs)] if pairs else None),
              f"{name}: ratio {rname}: rounds {r.get('rounds')}, per_round {pairs}, spread {r.get('spread')}")
    goals = [r for r in d["ratios"] if r["goal"] is not None]
    check(len(goals) >= exp.get("goal_ratios", 0),
          f"{name}: {len(goals)} ratios with a goal, want >= {exp.get('goal_ratios', 0)}")
    for r in goals:
        # A ratio is computed exactly when both figures are; a zero denominator (e.g. no
        # loss-free rate found in quick mode's short trials) leaves it undefined, never invented.
        # A goal's verdict stays open (met None) only when the ratio says its rounds do not
        # separate (benchlib.add_paired_ratio).
        computable = r["numerator"] is not None and bool(r["denominator"])
        open_ = r["met"] is None and str(r.get("verdict", "")).startswith("not separable in this run")
        check((r["value"] is not None) == computable and ((r["met"] is not None) or open_) == computable,
              f"{name}: ratio {r['name']} = {r['value']} (met {r['met']}) from "
              f"{r['numerator']}/{r['denominator']}")
        if computable:
            check(abs(r["value"] - r["numerator"] / r["denominator"]) < 1e-9 * max(1, abs(r["value"])),
                  f"{name}: ratio {r['name']} is not {r['numerator']}/{r['denominator']}")
    check(d["quick"] is True, f"{name}: not run in quick mode")


def main():
    args = sys.argv[1:]
    only = list(EXPECT)
    if len(args) >= 3 and args[1] == "--only":
        only = args[2].split(",")
        unknown = [n for n in only if n not in EXPECT]
        if unknown:
            print(f"bench_quick.py: --only {args[2]}: no benchmark {', '.join(unknown)}; "
                  f"known: {', '.join(EXPECT)}", file=sys.stderr)
            sys.exit(2)
        del args[1:3]
    if not args or len(args) > 2:
        print(__doc__.rsplit("Usage:", 1)[1].strip(), file=sys.stderr)
        sys.exit(2)
    build = os.path.abspath(args[0])
    cannot = ("the suite needs root" if os.geteuid() != 0 else None)
    if not cannot and any(EXPECT[n].get("kvm", True) for n in only):
        probe = subprocess.run([os.path.join(build, "rtvmm"), "kvm-host"], capture_output=True, text=True)
        if probe.returncode != 0:
            cannot = f"no usable KVM: {probe.stderr.strip()}"
    if cannot:
        if CI:
            raise AssertionError(f"cannot run the suite under CI=true: {cannot}")
        print(f"SKIP: {cannot}")
        sys.exit(77)
    out = args[1] if len(args) > 1 else tempfile.mkdtemp(prefix="rtvmm-bench-quick-")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [os.path.join(BENCH, "rtvmm-bench"), "--quick", "--build", build, "--out", out,
           "--only", ",".join(only)]
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
    check(names == only, f"benchmarks {names}, want {only}")
    ran = set()
    for d in results["benchmarks"]:
        left_out = check_skips(d, build)
        if d["status"] != "skipped":
            check_benchmark(d, left_out)
            ran.add(d["benchmark"])
    check(len(results["goals"]) >= sum(e.get("goal_ratios", 0) for n, e in EXPECT.items() if n in ran),
          "goals not gathered into results.json")
    plots = results["plots"]
    for p, owner in PLOTS.items():
        if owner in ran:
            check(f"plots/{p}.svg" in plots, f"plot {p}.svg missing from {plots}")
    for p in plots:
        with open(os.path.join(out, p), "rb") as f:
            head = f.read(200)
        check(b"<svg" in head or b"<?xml" in head, f"{p}: not an SVG")
    summary = open(os.path.join(out, "summary.md")).read()
    for d in results["benchmarks"]:
        n, st = d["benchmark"], d["status"]
        check(f"## {n} ({st})" in summary, f"summary.md: no section for {n} ({st})")
        if st == "skipped":
            check(f"Reason: {d['reason']}" in summary, f"summary.md: {n} skipped without its reason")
        if d.get("function_only"):
            check(f"**Function only, not timing**: {d['function_only']}" in summary,
                  f"summary.md: {n} does not say its figures are function only")
    check("## Goals" in summary, "summary.md: no goals section")
    for p in plots:
        check(f"]({p})" in summary, f"summary.md does not show {p}")
    before = open(os.path.join(out, "results.json")).read()
    subprocess.run([os.path.join(BENCH, "report.py"), out], check=True, stdout=subprocess.DEVNULL)
    check(open(os.path.join(out, "results.json")).read() == before, "report.py changed results.json")
    skipped = [n for n in names if n not in ran]
    print(f"bench quick: {len(names)} benchmarks, {len(ran)} ran"
          f"{' (skipped for reasons that hold: ' + ', '.join(skipped) + ')' if skipped else ''}, "
          f"{len(plots)} plots, {len(results['goals'])} goals, {results['duration_s']:.0f} s; report in {out}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
