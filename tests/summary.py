#!/usr/bin/env python3
"""One summary of meson test runs (scripts/test.sh): counts per run, every test that did not pass.

Usage: summary.py LOG.json=LABEL ... [--not-run=LABEL=TEST TEST...] [--broken=LABEL=WHY]
(meson test --logbase NAME writes meson-logs/NAME.json; logs with the same LABEL are one run;
--not-run names the tests a run never finished: scripts/test.sh's box wedged five times;
--broken names a run that could not start, e.g. its build failed)

A test that appears more than once in a run was rerun (scripts/test.sh reruns a test that failed
in the box once, in a fresh box): its last result counts, and one that failed and then passed is
listed as FLAKY with its first failure's result, so that it is seen, not hidden.

Exit 1 when a test failed, timed out or never ran, a run left no log, or, under CI=true, a test
skipped:
CI installs every peer and has a KVM host (native or scripts/kvmbox), so a skip there means a
test proved nothing."""
import json
import os
import sys

PASSED = {"OK", "EXPECTEDFAIL"}


def main(argv):
    ci = os.environ.get("CI") == "true"
    bad = False
    rows, notes = [], []
    runs = {}   # label -> results of every log with that label, in order (one log per test)
    notrun = {}  # label -> tests that never finished
    for arg in argv:
        if arg.startswith("--broken="):
            label, _, why = arg[len("--broken="):].partition("=")
            notes.append(f"{label}: BROKEN: {why}")
            rows.append((label, "-", "-", "-", "-", "-", "0.0"))
            bad = True
            continue
        if arg.startswith("--not-run="):
            label, _, tests = arg[len("--not-run="):].partition("=")
            notrun[label] = tests.split()
            runs.setdefault(label, [])
            continue
        path, _, label = arg.partition("=")
        runs.setdefault(label, [])
        try:
            with open(path) as f:
                runs[label] += [json.loads(line) for line in f if line.strip()]
        except OSError as e:
            notes.append(f"{label}: no test log ({e.strerror}: {path}): the run did not finish")
            bad = True
    for label, results in runs.items():
        last = {}
        for r in results:
            name = r["name"].split(" / ")[-1]
            if name in last and last[name]["result"] not in PASSED and r["result"] in PASSED:
                notes.append(f"{label}: FLAKY {name}: {last[name]['result']} "
                             f"({last[name].get('duration', 0):.0f} s), then passed when rerun")
            last[name] = r
        minutes = sum(r.get("duration", 0) for r in results) / 60
        results = list(last.values())
        if not results:
            notes.append(f"{label}: no test finished")
            bad = True
        for t in notrun.get(label, []):
            notes.append(f"{label}: NOT RUN {t}")
            bad = True
        count = {}
        for r in results:
            count[r["result"]] = count.get(r["result"], 0) + 1
            if r["result"] in PASSED:
                continue
            why = ""
            if r["result"] == "SKIP":
                lines = [l for l in (r.get("stdout") or "").splitlines() if l.strip()]
                why = ": " + lines[-1].strip() if lines else ""
                if ci:
                    bad = True
            else:
                bad = True
            notes.append(f"{label}: {r['result']} {r['name'].split(' / ')[-1]}{why}")
        failed = sum(v for k, v in count.items() if k not in PASSED and k != "SKIP")
        rows.append((label, str(len(results) + len(notrun.get(label, []))),
                     str(sum(count.get(k, 0) for k in PASSED)), str(failed),
                     str(count.get("SKIP", 0)), str(len(notrun.get(label, []))), f"{minutes:.1f}"))
    head = ("run", "tests", "ok", "failed", "skipped", "not run", "test minutes")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print("\n== summary")
    for r in [head] + rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for n in notes:
        print("  " + n)
    if ci and any(n.split(": ", 1)[1].startswith("SKIP") for n in notes):
        print("CI=true: a skipped test fails the run (every peer is installed and a KVM host exists)")
    print("result:", "FAILED" if bad else "passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
