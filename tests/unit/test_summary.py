#!/usr/bin/env python3
"""tests/summary.py: the last result of a rerun test counts, a fail-then-pass is listed as FLAKY,
a test never run, a failure on its rerun, a run whose build failed and (under CI=true) a skip
fail the run."""
import json
import os
import subprocess
import sys
import tempfile

SUMMARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "summary.py")


def log(d, name, *results):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        for test, result in results:
            f.write(json.dumps({"name": "rtvmm:s / " + test, "result": result, "duration": 6}) + "\n")
    return path


def summary(*args, ci=False):
    env = dict(os.environ, CI="true" if ci else "false")
    p = subprocess.run([sys.executable, SUMMARY, *args], capture_output=True, text=True, env=env)
    return p.returncode, p.stdout


def expect(cond, what, out):
    if not cond:
        print(f"FAIL: {what}\n{out}")
        sys.exit(1)
    print(f"ok: {what}")


with tempfile.TemporaryDirectory() as d:
    first = log(d, "a.json", ("t1", "FAIL"), ("t2", "OK"))
    rc, out = summary(f"{first}=box", f"{log(d, 'b.json', ('t1', 'OK'))}=box")
    expect(rc == 0 and "FLAKY t1: FAIL" in out and "result: passed" in out,
           "a test that failed and passed on its rerun passes and is listed FLAKY", out)
    expect("box      2   2       0" in out, "it counts once, by its last result", out)
    rc, out = summary(f"{first}=box", f"{log(d, 'c.json', ('t1', 'TIMEOUT'))}=box")
    expect(rc == 1 and "TIMEOUT t1" in out and "FLAKY" not in out, "a failure on the rerun fails", out)
    rc, out = summary(f"{log(d, 'd.json', ('t1', 'OK'), ('t2', 'FAIL'))}=box")
    expect(rc == 1 and "FAIL t2" in out, "a failure never rerun fails", out)
    rc, out = summary(f"{log(d, 'e.json', ('t1', 'OK'))}=box", "--not-run=box=t9 t8")
    expect(rc == 1 and "NOT RUN t9" in out and "NOT RUN t8" in out, "a test never run fails", out)
    skipped = log(d, "f.json", ("t1", "SKIP"))
    expect(summary(f"{skipped}=box")[0] == 0, "a skip passes outside CI", out)
    expect(summary(f"{skipped}=box", ci=True)[0] == 1, "a skip fails under CI=true", out)
    rc, out = summary(f"{d}/missing.json=box")
    expect(rc == 1 and "no test log" in out, "a run without its log fails", out)
    rc, out = summary(f"{log(d, 'g.json', ('t1', 'OK'))}=box", "--broken=fuzz=the clang build failed")
    expect(rc == 1 and "fuzz: BROKEN: the clang build failed" in out and "result: FAILED" in out,
           "a run whose build failed is listed and fails the run", out)
