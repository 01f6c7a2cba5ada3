#!/usr/bin/env python3
"""Writes a benchmark run's report: results.json (with the goals gathered), summary.md and
gnuplot plots (SVG) in DIR/plots. bench/rtvmm-bench calls it at the end of a run; run it
alone to regenerate the report from DIR/results.json:

    bench/report.py [--png] bench-results/<timestamp>     (plots are SVG unless --png)

Plots, one set per name found in the documents (so a new benchmark gets plots by
recording histograms, series or figures, without touching this file):
    <histogram>-hist.svg   latency histogram, log-scale counts, one line per subject/scenario
    <histogram>-cdf.svg    cumulative distribution of the same samples, log-scale latency
    <series>.svg           a series per subject (e.g. Mpps vs frame size)
    <figure>-compare.svg   bars per scenario, one per subject, for a figure measured for
                           more than one subject (rtvmm vs its peers)
"""
import json
import math
import os
import re
import subprocess
import sys

EXTRA_ORDER = ["count", "n", "min", "avg", "p50", "p99", "p99_9", "max", "overflow"]
HIDDEN = {"name", "subject", "scenario", "value", "unit"}


def fmt(v):
    """A number as a report shows it: 3-4 significant digits, integers whole."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if v == int(v) and abs(v) < 1e12:
            return str(int(v))
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def slug(s):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_") or "x"


def who(x):
    """A record's subject, with its forwarder when it has one (pvp: bare-metal, linux-testpmd)."""
    return f"{x['subject']} ({x['forwarder']})" if x.get("forwarder") else x["subject"]


def label(subject, scenario):
    return f"{subject} {scenario}" if scenario else subject


# ---------------------------------------------------------------- plots

def _gnuplot(script, path):
    """Runs a gnuplot script; returns True when it produced PATH."""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"report: gnuplot failed for {path}: {getattr(e, 'stderr', e)}", file=sys.stderr)
        return False
    return os.path.getsize(path) > 0 if os.path.exists(path) else False


def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


TERMINALS = {"svg": "svg size 900,520 dynamic noenhanced font 'sans,11' background rgb 'white'",
             "png": "pngcairo size 900,520 noenhanced font 'sans,10' background rgb 'white'"}
FORMAT = "svg"


def header():
    """The gnuplot preamble for the chosen plot format."""
    return f"set terminal {TERMINALS[FORMAT]}\nset grid\nset key outside right top\nset encoding utf8\n"


def plot_histograms(hists, pdir, ddir):
    """Histogram and CDF plots for each histogram name; returns {benchmark: [files]}."""
    out = {}
    by_name = {}
    for bench, h in hists:
        by_name.setdefault(h["name"], []).append((bench, h))
    for name, hs in by_name.items():
        lines_h, lines_c = [], []
        for i, (bench, h) in enumerate(hs):
            if not h["buckets"]:
                continue
            w = h["bucket_width"]
            dat = os.path.join(ddir, f"{slug(name)}-{i}-{slug(who(h))}-{slug(h['scenario'])}.dat")
            total = sum(n for _, n in h["buckets"]) + h["overflow"]
            acc = 0
            with open(dat, "w") as f:
                f.write(f"# {label(who(h), h['scenario'])}: lower bound ({h['unit']}), count, "
                        f"cumulative fraction; width {w}, overflow {h['overflow']}\n")
                for lo, n in h["buckets"]:
                    acc += n
                    f.write(f"{lo} {n} {acc / total:.6f}\n")
            t = _q(label(who(h), h["scenario"]))
            lines_h.append(f"{_q(dat)} using ($1+{w}/2.0):2 with steps lw 1.5 title {t}")
            lines_c.append(f"{_q(dat)} using ($1+{w}):3 with lines lw 1.5 title {t}")
        if not lines_h:
            continue
        unit = hs[0][1]["unit"]
        bench = hs[0][0]
        hp = os.path.join(pdir, f"{slug(name)}-hist." + FORMAT)
        if _gnuplot(header() + f"set output {_q(hp)}\nset title {_q(name + ' histogram')}\n"
                    f"set logscale y\nset logscale x\nset xlabel {_q('latency (' + unit + ')')}\n"
                    f"set ylabel 'samples'\nplot " + ", ".join(lines_h) + "\n", hp):
            out.setdefault(bench, []).append(hp)
        cp = os.path.join(pdir, f"{slug(name)}-cdf." + FORMAT)
        if _gnuplot(header() + f"set output {_q(cp)}\nset title {_q(name + ' CDF')}\n"
                    f"set logscale x\nset yrange [0:1.02]\nset xlabel {_q('latency (' + unit + ')')}\n"
                    f"set ylabel 'fraction of samples <= x'\nplot " + ", ".join(lines_c) + "\n", cp):
            out.setdefault(bench, []).append(cp)
    return out


def plot_series(series, pdir, ddir):
    """One plot per series name, a line per subject; x values may be labels (frame sizes)."""
    out = {}
    by_name = {}
    for bench, s in series:
        by_name.setdefault(s["name"], []).append((bench, s))
    for name, ss in by_name.items():
        xs = []
        for _, s in ss:
            for x, _y in s["points"]:
                if x not in xs:
                    xs.append(x)
        lines = []
        for i, (bench, s) in enumerate(ss):
            dat = os.path.join(ddir, f"{slug(name)}-{i}-{slug(who(s))}.dat")
            with open(dat, "w") as f:
                f.write(f"# {label(who(s), s.get('scenario'))}: index, x, {s['y']}\n")
                for x, y in s["points"]:
                    if y is not None:
                        f.write(f"{xs.index(x)} {_q(x)} {y}\n")
            lines.append(f"{_q(dat)} using 1:3:xtic(2) with linespoints lw 2 pt 7 "
                         f"title {_q(label(who(s), s.get('scenario')))}")
        p = os.path.join(pdir, f"{slug(name)}." + FORMAT)
        s0 = ss[0][1]
        if _gnuplot(header() + f"set output {_q(p)}\nset title {_q(name)}\nset xlabel {_q(s0['x'])}\n"
                    f"set ylabel {_q(s0['y'])}\nset yrange [0:*]\nset xrange [-0.5:{len(xs) - 0.5}]\n"
                    f"plot " + ", ".join(lines) + "\n", p):
            out.setdefault(ss[0][0], []).append(p)
    return out


def plot_comparisons(figs, pdir, ddir):
    """Clustered bars for every figure name measured for two or more subjects."""
    out = {}
    by_name = {}
    for bench, fg in figs:
        by_name.setdefault(fg["name"], []).append((bench, fg))
    for name, fs in by_name.items():
        subjects = []
        scenarios = []
        for _, fg in fs:
            if who(fg) not in subjects:
                subjects.append(who(fg))
            sc = fg["scenario"] or "-"
            if sc not in scenarios:
                scenarios.append(sc)
        if len(subjects) < 2 or not any(fg["value"] is not None for _, fg in fs):
            continue
        table = {(who(fg), fg["scenario"] or "-"): fg["value"] for _, fg in fs}
        dat = os.path.join(ddir, f"{slug(name)}-compare.dat")
        with open(dat, "w") as f:
            f.write("scenario " + " ".join(_q(s) for s in subjects) + "\n")
            for sc in scenarios:
                vals = [table.get((s, sc)) for s in subjects]
                f.write(_q(sc) + " " + " ".join("NaN" if v is None else repr(float(v)) for v in vals) + "\n")
        unit = fs[0][1]["unit"]
        cols = ", ".join(f"{_q(dat)} using {i + 2}:xtic(1) title columnheader({i + 2})"
                         for i in range(len(subjects)))
        p = os.path.join(pdir, f"{slug(name)}-compare." + FORMAT)
        if _gnuplot(header() + f"set output {_q(p)}\nset title {_q(name + ': ' + ' vs '.join(subjects))}\n"
                    "set style data histogram\nset style histogram clustered gap 1\n"
                    "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset yrange [0:*]\n"
                    f"set ylabel {_q(name + ' (' + unit + ')')}\nset datafile missing 'NaN'\nplot {cols}\n", p):
            out.setdefault(fs[0][0], []).append(p)
    return out


# ---------------------------------------------------------------- summary

def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return out


def _figures_table(figs):
    extras = []
    for fg in figs:
        for k in fg:
            if k not in HIDDEN and k not in extras:
                extras.append(k)
    extras.sort(key=lambda k: (EXTRA_ORDER.index(k) if k in EXTRA_ORDER else len(EXTRA_ORDER), k))
    header = ["figure", "subject", "scenario", "value", "unit"] + extras
    rows = [[fg["name"], fg["subject"], fg["scenario"] or "-", fmt(fg["value"]), fg["unit"]]
            + [fmt(fg.get(k)) for k in extras] for fg in figs]
    return _table(header, rows)


def _ratio_rows(ratios):
    """A row per ratio: its value (with the rounds' spread when measured), goal and whether it
    was met, or, for a ratio without a goal, the verdict of its rounds when it has one."""
    rows = []
    for r in ratios:
        goal = "-" if r["goal"] is None else ("<= " if r["better"] == "lower" else ">= ") + fmt(r["goal"])
        met = {True: "met", False: "**missed**", None: "-"}[r["met"]]
        if r["met"] is None and r.get("verdict"):
            met = r["verdict"].split(" (load average")[0]   # the noise account is in results.json
        value = fmt(r["value"])
        if r.get("spread") and r.get("rounds", 2) > 1:
            value += f" (rounds {fmt(r['spread'][0])}..{fmt(r['spread'][1])})"
        elif r.get("spread"):
            value += " (1 round: no spread)"
        rows.append([r["name"], value, goal, met])
    return rows


def summary_md(outdir, results, plots_by_bench):
    """The human report: machine, goals, then each benchmark's pinning, figures and plots."""
    m = results["machine"]
    L = ["# rtvmm benchmark results", "",
         f"- started {results['started']}, took {results['duration_s']:.0f} s"
         + (" — **quick mode: checks that the suite works, the figures mean little**" if results["quick"] else ""),
         f"- command: `{' '.join(results['command'])}` at git `{results['git']['revision']}`",
         f"- machine: {m.get('hostname')}, {m.get('cpu_model')}, {m.get('cpus')} cpus, "
         f"{m.get('memory_mib')} MiB, host kernel {m.get('kernel')}, KVM modules "
         f"{', '.join(m.get('kvm_modules') or []) or '-'}, NUMA nodes {m.get('numa_nodes')}, "
         f"isolated cpus '{m.get('isolated_cpus') or ''}', 2M hugepages {m.get('hugepages_2m')}",
         *([f"- **{m['emulated']}**"] if m.get("emulated") else []),
         f"- cpus: housekeeping (emulator threads, traffic sources, stress, DPDK main lcores) "
         f"{results['cpus']['housekeeping']}; under test (vCPUs, poll loops) {results['cpus']['measure']}",
         "", "## Goals (ratios from this run)", ""]
    goal_rows = [[g["benchmark"]] + row for g, row in
                 zip(results["goals"], _ratio_rows(results["goals"]))]
    L += _table(["benchmark", "ratio", "value", "goal", "met"], goal_rows) if goal_rows else ["(no goals measured)"]
    L += ["", "| benchmark | status | took (s) | reason |", "|---|---|---|---|"]
    for d in results["benchmarks"]:
        why = d.get("reason") or ("function only, not timing" if d.get("function_only") else "")
        L.append(f"| {d['benchmark']} | {d['status']} | {fmt(d['duration_s'])} | {why} |")
    for d in results["benchmarks"]:
        L += ["", f"## {d['benchmark']} ({d['status']})", ""]
        if d.get("reason"):
            L += [f"Reason: {d['reason']}", ""]
        if d.get("function_only"):
            L += [f"**Function only, not timing**: {d['function_only']}", ""]
        if d["config"]:
            L += ["Configuration: " + ", ".join(f"{k}={fmt(v)}" for k, v in d["config"].items()), ""]
        if d["pinning"]:
            L += ["Placement:", ""]
            L += _table(["subject", "thread", "cpus", "policy", "priority"],
                        [[p["subject"], p["thread"], ",".join(map(str, p["cpus"])), p["policy"],
                          fmt(p.get("priority", 0))] for p in d["pinning"]])
            L.append("")
        if d["results"]:
            L += _figures_table(d["results"]) + [""]
        if d["ratios"]:
            L += _table(["ratio", "value (rounds)", "goal", "met / verdict"], _ratio_rows(d["ratios"])) + [""]
        for n in d.get("notes") or []:
            L.append(f"- {n}")
        for p in plots_by_bench.get(d["benchmark"], []):
            rel = os.path.relpath(p, outdir)
            L += ["", f"![{os.path.basename(p)}]({rel})"]
    return "\n".join(L) + "\n"


def write(outdir, results, plot_format="svg"):
    """Fills results' goals and plots, writes results.json, plots and summary.md into OUTDIR."""
    global FORMAT
    FORMAT = plot_format
    pdir = os.path.join(outdir, "plots")
    ddir = os.path.join(pdir, "data")
    os.makedirs(ddir, exist_ok=True)
    hists, series, figs = [], [], []
    goals = []
    for d in results["benchmarks"]:
        b = d["benchmark"]
        hists += [(b, h) for h in d["histograms"]]
        series += [(b, s) for s in d["series"]]
        figs += [(b, f) for f in d["results"]]
        goals += [dict(r, benchmark=b) for r in d["ratios"] if r["goal"] is not None]
    plots = {}
    for part in (plot_histograms(hists, pdir, ddir), plot_series(series, pdir, ddir),
                 plot_comparisons(figs, pdir, ddir)):
        for b, ps in part.items():
            plots.setdefault(b, []).extend(ps)
    results["goals"] = goals
    results["plots"] = sorted(os.path.relpath(p, outdir) for ps in plots.values() for p in ps)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(summary_md(outdir, results, plots))


def main(argv):
    fmt_ = "svg"
    if argv and argv[0] == "--png":
        fmt_, argv = "png", argv[1:]
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    path = os.path.join(argv[0], "results.json")
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        print(f"report: {path}: {e}", file=sys.stderr)
        return 1
    write(argv[0], results, fmt_)
    print(os.path.join(argv[0], "summary.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
