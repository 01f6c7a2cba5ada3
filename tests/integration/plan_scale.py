#!/usr/bin/env python3
"""Plan loading and checking stay linear in the plan and bounded in its size.

The plans are generated here: N VMs, each with a NIC (its own socket and MAC),
the host's housekeeping cpus as every VM's emulator cpus, the first 28 VMs with
a fifo vCPU on a cpu of its own. On the 2-socket, 32-cpu topology of
examples/topologies/2s8c2t.xml such a plan is clean.

  linear       10000 VMs load and check clean in at most MAX_RATIO times the time of 2000
               (linear: about 5; the quadratic duplicate and overlap checks made it 30).
               A ratio, so that a slow build (ASan) or a busy machine moves both sides.
  late-dup     the same plan with the last VM's MAC the first VM's: refused naming both
  too-big      a file of PLAN_MAX_BYTES + 1 bytes: refused by its size, at once
  too-deep     100000 nested brackets: refused at depth 33, at once (49 s+ before)

Usage: plan_scale.py RTVMM TOPOLOGY.xml [--measure N...]  (--measure prints the check's
time for plans of N VMs and tests nothing: the figures in the issue's notes)
"""
import os
import subprocess
import sys
import tempfile
import time

PLAN_MAX_BYTES = 16 << 20      # config/parse.h
PLAN_MAX_DEPTH = 32
SMALL, LARGE = 2000, 10000
MAX_RATIO = 12.0
HANG_SECONDS = 60.0            # a guard only: the ratio is the test
AT_ONCE_SECONDS = 2.0


def mac(i):
    return "52:54:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)


def write_plan(path, n, last_mac=None):
    with open(path, "w") as f:
        f.write('host:\n  housekeeping_cpus: "0-1"\nvms:\n')
        for i in range(n):
            f.write("  - name: vm%d\n    kernel: guest.elf\n    memory: 64M\n" % i)
            if i < 28:
                f.write('    vcpus: {count: 1, policy: fifo, priority: 50, cpus: "%d"}\n' % (i + 4))
            else:
                f.write("    vcpus: 1\n")
            m = last_mac if last_mac and i == n - 1 else mac(i)
            f.write('    nics:\n      - {name: net0, socket: run/vm%d.sock, mac: "%s"}\n' % (i, m))


def check(rtvmm, plan, topology=None):
    argv = [rtvmm, "check", plan] + (["--topology", topology] if topology else [])
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=600)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


failures = 0


def expect(what, ok, detail):
    global failures
    print("%s: %s (%s)" % ("ok" if ok else "FAIL", what, detail))
    failures += not ok


def main():
    rtvmm, topology = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="rtvmm-plan-scale-") as tmp:
        plan = os.path.join(tmp, "plan.yaml")
        if sys.argv[3:4] == ["--measure"]:
            for n in map(int, sys.argv[4:]):
                write_plan(plan, n)
                rc, out, err, secs = check(rtvmm, plan, topology)
                print("%6d VMs  %8d bytes  %.2f s  exit %d  %s" % (
                    n, os.path.getsize(plan), secs, rc, (out.strip().splitlines() or [err])[-1]))
            return 0

        best = {}
        for n in (SMALL, SMALL, LARGE):
            write_plan(plan, n)
            rc, out, err, t = check(rtvmm, plan, topology)
            best[n] = min(t, best.get(n, t))
            expect("%d VMs load and check clean (%.2f s)" % (n, t),
                   rc == 0 and "0 errors" in out and t < HANG_SECONDS,
                   "exit %d, %s" % (rc, (out.strip().splitlines() or [err.strip()])[-1]))
        ratio = best[LARGE] / best[SMALL]
        expect("%d VMs take %.1f times as long as %d (at most %.0f; linear: %.0f)" % (
               LARGE, ratio, SMALL, MAX_RATIO, LARGE / SMALL), ratio <= MAX_RATIO,
               "%.2f s / %.2f s" % (best[LARGE], best[SMALL]))

        write_plan(plan, LARGE, last_mac=mac(0))
        rc, out, err, t = check(rtvmm, plan, topology)
        want = "vms[%d].nics[0].mac: MAC address already used by vms[0].nics[0]" % (LARGE - 1)
        expect("a duplicate MAC in the last of %d VMs is named (%.2f s)" % (LARGE, t),
               rc == 1 and want in err and t < HANG_SECONDS, err.strip())

        with open(plan, "w") as f:
            f.write("# " + "x" * (PLAN_MAX_BYTES - 2) + "\n")
        rc, out, err, secs = check(rtvmm, plan)
        want = "%s: too large (%d bytes): a plan file is at most 16 MiB" % (plan, PLAN_MAX_BYTES + 1)
        expect("a file of %d bytes is refused in %.2f s" % (PLAN_MAX_BYTES + 1, secs),
               rc == 1 and want in err and secs < AT_ONCE_SECONDS, err.strip())

        with open(plan, "w") as f:
            f.write("vm: " + "[" * 100000 + "]" * 100000 + "\n")
        rc, out, err, secs = check(rtvmm, plan)
        want = "%s:1: nested deeper than %d levels" % (plan, PLAN_MAX_DEPTH)
        expect("100000 nested lists are refused in %.2f s" % secs,
               rc == 1 and want in err and secs < AT_ONCE_SECONDS, err.strip())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
