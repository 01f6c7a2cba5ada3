#!/usr/bin/python3
"""Runs a build's meson tests inside scripts/kvmbox without starting meson there: under TCG
`meson test` costs about 7 s before each test starts (83 box tests: 10 minutes of CI). On the
host this script writes one shell script per test (meson's own command, environment, working
directory and time limit, tripled: the box is slow), scripts/box-suite.sh runs them in the box
one at a time, each leaving N.done (exit status, seconds) and N.out as it ends (so a box that
wedges keeps every finished result), and this script turns them into meson's JSON test log,
which tests/summary.py reads.

Usage: box_tests.py prepare BUILD DIR TEST...   DIR/list and DIR/N.sh, in the given order
       box_tests.py collect DIR LOG.json        a JSON line per finished test (meson's format)
       box_tests.py left DIR                    the unfinished tests, the one the box stopped in last

The environment is meson's: the test's own, the default test setup's (meson.build), and a
random MALLOC_PERTURB_. Status 77 is a skip; a time limit hit is TIMEOUT.
"""
import json
import os
import random
import shlex
import subprocess
import sys

TIMEOUT_MULTIPLIER = 3
KEEP_OUTPUT = 200000   # characters of a test's output kept in the log (the end)


def setup_env(build):
    """The default test setup's environment (add_test_setup(..., is_default : true))."""
    from mesonbuild import build as mbuild   # meson's own module: same version that configured BUILD
    b = mbuild.load(build)
    env = {}
    for name, setup in b.test_setups.items():
        if name.split(":")[-1] == (b.test_setup_default_name or "").split(":")[-1]:
            env.update(setup.env.get_env({}))
    return env


def prepare(build, out, names):
    build = os.path.abspath(build)
    tests = json.loads(subprocess.run(["meson", "introspect", "--tests", build], check=True,
                                      capture_output=True, text=True).stdout)
    by_name = {t["name"]: t for t in tests}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        sys.exit(f"box_tests.py: no such test in {build}: {', '.join(unknown)}")
    base = setup_env(build)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "list"), "w") as lst:
        for n, name in enumerate(names, 1):
            t = by_name[name]
            env = dict(base, **t["env"])
            env.setdefault("MALLOC_PERTURB_", str(random.randint(1, 255)))
            limit = t["timeout"] * TIMEOUT_MULTIPLIER
            lines = ["#!/bin/bash", f"cd {shlex.quote(t['workdir'] or build)} || exit 125"]
            lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
            lines.append(f"exec timeout -k 10 {limit} " + " ".join(map(shlex.quote, t["cmd"])))
            with open(os.path.join(out, f"{n}.sh"), "w") as f:
                f.write("\n".join(lines) + "\n")
            suites = "+".join(s.split(":", 1)[-1] for s in t["suite"])
            lst.write(json.dumps({"n": n, "name": name, "suite": suites, "timeout": limit}) + "\n")


def entries(out):
    with open(os.path.join(out, "list")) as f:
        return [json.loads(line) for line in f if line.strip()]


def done(out, n):
    """(status, seconds) of test N, or None when it did not finish."""
    try:
        with open(os.path.join(out, f"{n}.done")) as f:
            rc, secs = f.read().split()
        return int(rc), float(secs)
    except (OSError, ValueError):
        return None


def collect(out, log):
    with open(log, "w") as f:
        for e in entries(out):
            d = done(out, e["n"])
            if d is None:
                continue
            rc, secs = d
            result = {0: "OK", 77: "SKIP", 124: "TIMEOUT", 137: "TIMEOUT"}.get(rc, "FAIL")
            try:
                with open(os.path.join(out, f"{e['n']}.out"), errors="replace") as o:
                    text = o.read()[-KEEP_OUTPUT:]
            except OSError:
                text = ""
            f.write(json.dumps({"name": f"rtvmm:{e['suite']} / {e['name']}", "result": result,
                                "returncode": rc, "duration": secs, "timeout": e["timeout"],
                                "stdout": text}) + "\n")


def left(out):
    rest = [e["name"] for e in entries(out) if done(out, e["n"]) is None]
    print("\n".join(rest[1:] + rest[:1]))


def main(argv):
    if len(argv) >= 3 and argv[0] == "prepare":
        prepare(argv[1], argv[2], argv[3:])
    elif len(argv) == 3 and argv[0] == "collect":
        collect(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "left":
        left(argv[1])
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main(sys.argv[1:])
