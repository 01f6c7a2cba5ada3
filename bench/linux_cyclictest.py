#!/usr/bin/env python3
"""cyclictest inside a Linux guest in rtvmm (the KVM4NFV method), against the host's own
cyclictest on the same cpu in the same conditions.

rtvmm boots a Linux kernel once, from a host plan:
one vCPU pinned to --measure-cpu at SCHED_FIFO 90, the emulator threads on
--housekeeping-cpu, guest RAM prefaulted and locked (2M pages, 4K when the pool is short).
The initramfs (scripts/mkinitramfs.sh --cyclictest) carries the host's cyclictest; its /init
(rtvmm.test=cyclictest) runs one cyclictest per "go" line typed on the console and prints
the histogram. The kernel: --kernel, else $RTVMM_TEST_KERNEL (scripts/test.sh), else Debian's
stock kernel (scripts/fetch-kernel.sh, cached), except on a nested PVM host (`rtvmm
kvm-host` says kvm_pvm) where the stock kernel cannot reach user space and rtvmm's own build
(scripts/build-kernel.sh, cached) is booted. The cyclictest mode needs no module: its
console is the 8250 serial port and cyclictest's /dev/shm a tmpfs, both built into
Debian's kernel, so the archive carries none. Between runs the host side is switched:

  rt-idle         the plan's placement, idle host
  rt-stress       the same, stress-ng CPU hogs pinned on every cpu (SCHED_OTHER)
  default-stress  every rtvmm thread (vCPU and emulator) SCHED_OTHER on all cpus, hogs on
  default-idle    the same, hogs off

In the guest: cyclictest -m -p 90 -t1 -i INTERVAL -l LOOPS -h RANGE -q (plus -D as a time
cap; --json for the histogram, 256 KiB stacks). On the host, while the guest waits for its
next line (vCPU halted): the same command with -a MEASURE_CPU, idle and under stress
(scenarios rt-idle, rt-stress).

Budget on the 2-cpu development host: about 200 s (boot ~50 s), --quick about 150 s.

Guest kernel mode is emulated on the nested development host (docs/nested-kvm.md), so the
guest's wake-up path costs milliseconds there; the default interval (10 ms) leaves room for
it so that each cycle is one independent sample.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "linux_cyclictest"
PRIORITY = 90


def add_arguments(ap):
    """Options of this benchmark on top of benchlib's."""
    ap.add_argument("--kernel", metavar="BZIMAGE",
                    help="Linux kernel (default: $RTVMM_TEST_KERNEL, else Debian's stock kernel from "
                    "scripts/fetch-kernel.sh; on a nested PVM host rtvmm's cached build)")
    ap.add_argument("--initrd", help="initramfs with cyclictest (default: "
                    "scripts/mkinitramfs.sh --cyclictest, cached as .cache/initramfs-bench-KEY.cpio)")
    ap.add_argument("--memory", default="256M", help="guest RAM (default 256M)")
    ap.add_argument("--interval-us", type=int, default=10000,
                    help="cyclictest -i, guest and host (default 10000)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="per guest scenario (default 15, --quick 2)")
    ap.add_argument("--host-seconds", type=float, default=None,
                    help="per host scenario (default 10, --quick 2)")
    ap.add_argument("--hist-us", type=int, default=100000,
                    help="cyclictest -h: histogram range in us, beyond it overflows (default 100000)")
    ap.add_argument("--boot-timeout", type=float, default=300, help="seconds to the guest's prompt")


def record(res, subject, scenario, ct):
    """Adds the figure and the histogram of one cyclictest run; returns the figure."""
    st = benchlib.hist_stats(ct["buckets"], 1, ct["overflow"], overflow_at=ct["max"])
    benchlib.add_histogram(res, "cyclictest", subject, scenario, "us", 1, ct["buckets"], ct["overflow"])
    return benchlib.add_figure(res, "cyclictest", subject, ct["max"], "us", scenario,
                               min=ct["min"], avg=ct["avg"], p99=st.get("p99"), p99_9=st.get("p99_9"),
                               max=ct["max"], overflow=ct["overflow"], count=st.get("count"))


def cyclictest_args(args, seconds):
    """cyclictest's options for one run of SECONDS (loops from the interval, -D as a cap)."""
    loops = max(10, int(seconds * 1e6 / args.interval_us))
    cap = int(seconds * 2 + 10)
    return ["-m", "-p", str(PRIORITY), "-t1", "-i", str(args.interval_us), "-l", str(loops),
            "-h", str(args.hist_us), "-q", "-D", str(cap)], cap


def place(args, pid, mode):
    """Switches rtvmm's threads: "rt" as the plan placed them, "default" SCHED_OTHER on all cpus
    (benchlib.anywhere_cpus)."""
    every = benchlib.anywhere_cpus(args)
    for tid, comm in benchlib.threads(pid).items():
        vcpu = re.fullmatch(r"vcpu\d+", comm) is not None
        if mode == "default":
            benchlib.set_policy(tid, "SCHED_OTHER")
            benchlib.pin(tid, every)
        elif vcpu:
            benchlib.pin(tid, args.measure_cpu)
            benchlib.set_policy(tid, "SCHED_FIFO", PRIORITY)
        else:
            benchlib.set_policy(tid, "SCHED_OTHER")
            benchlib.pin(tid, args.housekeeping_cpu)


def record_placement(res, pid, subject):
    """Records every thread of PID as the kernel reports it now."""
    for tid, comm in sorted(benchlib.threads(pid).items()):
        cpus, pol, prio = benchlib.thread_placement(tid)
        benchlib.add_pinning(res, subject, comm, cpus, pol, prio)


def host_run(args, res, scenario, ctargs, cap, outdir):
    """Runs cyclictest on the host's measure cpu; returns the parsed result."""
    path = os.path.join(outdir, f"host-{scenario}.json")
    argv = ["cyclictest"] + ctargs + ["-a", str(args.measure_cpu), "--histfile=/dev/null", f"--json={path}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    for tid in benchlib.threads(proc.pid):
        cpus, pol, prio = benchlib.thread_placement(tid)
        if pol == "SCHED_FIFO":
            benchlib.add_pinning(res, f"host-cyclictest {scenario}", "cyclictest", cpus, pol, prio)
    out, _ = proc.communicate(timeout=cap + 30)
    ct = None
    if os.path.exists(path):
        with open(path) as f:
            ct = benchlib.parse_cyclictest(f.read())
    if proc.returncode != 0 or ct is None:
        raise RuntimeError(f"host cyclictest failed ({proc.returncode}): {out.strip()[-300:]}")
    return ct


def run(args, new_result):
    """Boots the guest once, runs the four guest scenarios and the host reference."""
    seconds = args.seconds or (2 if args.quick else 15)
    host_seconds = args.host_seconds or (2 if args.quick else 10)
    rtvmm = benchlib.tool(args, "rtvmm")
    config = {"interval_us": args.interval_us, "guest_seconds": seconds, "host_seconds": host_seconds,
              "hist_us": args.hist_us, "memory": args.memory, "vcpus": 1, "priority": PRIORITY,
              "measure_cpu": args.measure_cpu, "housekeeping_cpu": args.housekeeping_cpu}
    res = new_result(config)
    missing = (benchlib.need("cyclictest", "stress-ng", "taskset") or benchlib.need_kvm()
               or benchlib.need_root("SCHED_FIFO, mlock") or benchlib.need_built(args, rtvmm))
    if missing:
        return benchlib.skip(res, missing)
    lk, why = benchlib.linux_kernel(rtvmm, args.kernel)
    if not lk:
        # Not a skip: the kernel is this project's to provide.
        return benchlib.fail(res, f"no Linux kernel to boot: {why}")
    kernel = lk.bzimage
    initrd = args.initrd or benchlib.mkinitramfs("initramfs-bench", "--cyclictest")
    cmdline = f"console=ttyS0 {benchlib.linux_cmdline(rtvmm)} panic=-1 rtvmm.test=cyclictest"
    config.update(lk.config(), initrd=os.path.abspath(initrd), cmdline=cmdline)
    benchlib.log(NAME, f"Linux: {lk.origin}")
    outdir = args.outdir or tempfile.mkdtemp(prefix="linux_cyclictest.")
    ctargs, cap = cyclictest_args(args, seconds)
    host_ctargs, host_cap = cyclictest_args(args, host_seconds)
    config.update(guest_cyclictest=" ".join(ctargs),
                  host_cyclictest=" ".join(host_ctargs + ["-a", str(args.measure_cpu)]))

    plan = os.path.join(outdir, "plan.yaml")
    with open(plan, "w") as f:
        f.write(benchlib.rt_plan_yaml("cyclictest", args, kernel, cmdline, args.memory, PRIORITY, initrd=initrd))
    config["plan"] = plan
    benchlib.log(NAME, f"booting {kernel} with {initrd} (plan {plan})")
    con = benchlib.Console([rtvmm, "run", plan], name="rtvmm", stdin=subprocess.PIPE,
                           logfile=os.path.join(outdir, "console.log"))
    figs = {}
    try:
        if not con.expect(r"RTVMM-CT-READY", args.boot_timeout):
            return benchlib.fail(res, f"the guest did not reach its cyclictest prompt in "
                                      f"{args.boot_timeout:.0f} s: " + " | ".join(con.tail(8)))
        booted = time.monotonic() - con.t0
        benchlib.log(NAME, f"guest ready after {booted:.1f} s")
        res["notes"].append(f"one boot: the guest reached its cyclictest prompt {booted:.1f} s after launch")
        mem = [l for l in con.lines if re.search(r"rtvmm: memory \d+", l)]
        if mem:
            res["notes"].append("guest RAM: " + mem[0].split("rtvmm: ", 1)[1])

        def scenario(name):
            mode = name.split("-")[0]
            place(args, con.pid, mode)
            record_placement(res, con.pid, f"linux-guest {name}")
            benchlib.log(NAME, f"guest {name}: cyclictest {' '.join(ctargs)}")
            t = time.monotonic()
            status, lines = benchlib.guest_command(con, "RTVMM-CT", name, ctargs, cap + 120)
            ct = benchlib.parse_cyclictest("\n".join(lines))
            if status != 0 or ct is None:
                raise RuntimeError(f"cyclictest in the guest ({name}) exited {status}: "
                                   + " | ".join(lines[-6:]))
            benchlib.log(NAME, f"guest {name}: min {ct['min']} avg {ct['avg']} max {ct['max']} us, "
                         f"{ct['total']} cycles, {ct['overflow']} overflows ({time.monotonic() - t:.1f} s)")
            figs[("linux-guest", name)] = record(res, "linux-guest", name, ct)
            if mode == "rt":
                benchlib.log(NAME, f"host {name}: cyclictest {' '.join(host_ctargs)}")
                hct = host_run(args, res, name, host_ctargs, host_cap, outdir)
                figs[("host-cyclictest", name)] = record(res, "host-cyclictest", name, hct)
                benchlib.log(NAME, f"host {name}: min {hct['min']} avg {hct['avg']} max {hct['max']} us")

        scenario("rt-idle")
        with benchlib.Stress(list(range(os.cpu_count() or 1))) as stress:
            for p in stress.procs:
                for tid in benchlib.threads(p.pid):
                    cpus, pol, prio = benchlib.thread_placement(tid)
                    benchlib.add_pinning(res, "stress", "stress-ng", cpus, pol, prio)
            scenario("rt-stress")
            scenario("default-stress")
        scenario("default-idle")
        con.proc.stdin.write(b"quit\n")
        con.proc.stdin.flush()
        status = con.wait(60)
        res["notes"].append(f"rtvmm exit status {status} after 'quit' (guest poweroff -f)")
    finally:
        con.close()

    for load in ("idle", "stress"):
        g, h = figs[("linux-guest", f"rt-{load}")], figs[("host-cyclictest", f"rt-{load}")]
        benchlib.add_ratio(res, f"cyclictest max rt-{load} guest/host", g["max"], h["max"],
                           goal=2.0 if load == "stress" else None)
        benchlib.add_ratio(res, f"cyclictest p99 rt-{load} guest/host", g["p99"], h["p99"])
    benchlib.add_ratio(res, "cyclictest max stress rt/default", figs[("linux-guest", "rt-stress")]["max"],
                       figs[("linux-guest", "default-stress")]["max"], goal=1.0)
    res["notes"].append(benchlib.anywhere_note(args))
    res["notes"] += [
        "rt-* scenarios: the plan's placement (vCPU thread vcpu0 pinned to cpu "
        f"{args.measure_cpu}, SCHED_FIFO {PRIORITY}; emulator threads on cpu {args.housekeeping_cpu}, "
        "SCHED_OTHER). default-* scenarios: the same VM, its vcpu0 and emulator threads switched to "
        "SCHED_OTHER and allowed on all cpus with sched_setscheduler/sched_setaffinity (guest RAM "
        "stays prefaulted and locked); order rt-idle, rt-stress, default-stress, default-idle",
        "stress: one stress-ng --cpu 1 hog pinned to each cpu (SCHED_OTHER, nice 0), from "
        "rt-stress through default-stress",
        "host-cyclictest runs while the guest waits for its next console line (vCPU halted)",
        "min/avg/max are cyclictest's own (--json); p99/p99.9 from its 1 us histogram; "
        "overflows are cycles beyond the histogram's range",
    ]
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
