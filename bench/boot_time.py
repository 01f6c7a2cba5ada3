#!/usr/bin/env python3
"""Boot time to the guest's init, rtvmm vs QEMU (pc and microvm), same kernel build, initramfs,
memory and vCPUs, measured in the same run with the runs interleaved.

Each run is timed from the monitor's launch (wall clock) to lines on the guest console:
  first_output    "Linux version"              (early console: the kernel runs)
  cmdline_parsed  "Kernel command line:"
  fpu_init        "x86/fpu: "                  (just before alternatives patching)
  smp_up          "smp: Brought up"            (all vCPUs online)
  kernel_init     "Run /init as init process"  (the kernel hands over to user space)
  init_marker     "RTVMM-INIT-OK"              (the initramfs /init printed its marker)
and to the monitor's exit. A stage a monitor never reaches is reported as such, with the
last console lines in the JSON (e.g. a KVM internal error). rtvmm boots the bzImage (payload decompressed on the host);
QEMU boots the same build's vmlinux through its PVH entry (QEMU's fastest path: no
in-guest decompression) and, for reference, -M pc with the bzImage when --qemu-bzimage.

Writes JSON (machine, kernel, git revision, every run, medians, ratios) and prints a
Markdown table. Usage:
  bench/boot_time.py --kernel-dir DIR --initrd FILE [--vcpus 2] [--memory 256M] [--runs 3]
                     [--cmdline EXTRA] [--timeout 600] [--json OUT.json]
DIR is a scripts/build-kernel.sh result directory (bzImage + vmlinux).
"""
import argparse
import json
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time

MARKERS = {
    "first_output": re.compile(rb"Linux version"),
    "cmdline_parsed": re.compile(rb"Kernel command line:"),
    "fpu_init": re.compile(rb"x86/fpu: "),
    "smp_up": re.compile(rb"smp: Brought up"),
    "kernel_init": re.compile(rb"Run /init as init process"),
    "init_marker": re.compile(rb"RTVMM-INIT-OK"),
}
STAGES = list(MARKERS) + ["exit"]
# A monitor that prints this has stopped its guest for good (QEMU pauses instead of exiting).
FATAL = re.compile(rb"KVM internal error|KVM_EXIT_INTERNAL_ERROR")


def run_once(argv, timeout, env=None):
    """Runs a monitor until it exits or timeout; returns marker times and exit status."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, env=env)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    times, buf, tail = {}, b"", []
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        if not sel.select(timeout=min(left, 1.0)):
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        now = time.monotonic() - t0
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            tail = (tail + [line])[-20:]
            for name, rx in MARKERS.items():
                if name not in times and rx.search(line):
                    times[name] = now
            if FATAL.search(line) and "fatal" not in times:
                times["fatal"] = now
                deadline = min(deadline, time.monotonic() + 2)  # keep the register dump
    try:
        status = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        status = proc.wait()
    times["exit"] = time.monotonic() - t0
    return {"times": times, "status": status, "timed_out": time.monotonic() - t0 >= timeout,
            "fatal_error": "fatal" in times,
            "tail": [l.decode(errors="replace") for l in tail]}


def git_revision(root):
    try:
        return subprocess.check_output(["git", "-C", root, "describe", "--always", "--dirty"],
                                       text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel-dir", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--vcpus", type=int, default=2)
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cmdline", default="", help="extra kernel command-line words")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--rtvmm", default=None)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--qemu-bzimage", action="store_true", help="also QEMU -M pc with the bzImage")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rtvmm = a.rtvmm or os.path.join(root, "build", "rtvmm")
    bzimage = os.path.join(a.kernel_dir, "bzImage")
    vmlinux = os.path.join(a.kernel_dir, "vmlinux")
    for f in (rtvmm, bzimage, vmlinux, a.initrd):
        if not os.path.exists(f):
            sys.exit(f"boot_time: {f}: not found")
    mem_mib = a.memory.rstrip("MmiB")
    cmdline = f"console=ttyS0 {a.cmdline} rtvmm.test=poweroff panic=-1".replace("  ", " ")
    qemu_common = [a.qemu, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", mem_mib,
                   "-smp", str(a.vcpus), "-nographic", "-nodefaults", "-no-reboot",
                   "-serial", "stdio", "-initrd", a.initrd, "-append", cmdline]
    configs = {
        "rtvmm": [rtvmm, "run", "--kernel", bzimage, "--initrd", a.initrd, "--vcpus", str(a.vcpus),
                  "--memory", a.memory, "--cmdline", cmdline],
        "qemu-microvm": qemu_common[:1] + ["-M", "microvm"] + qemu_common[1:] + ["-kernel", vmlinux],
        "qemu-pc": qemu_common[:1] + ["-M", "pc"] + qemu_common[1:] + ["-kernel", vmlinux],
    }
    if a.qemu_bzimage:
        configs["qemu-pc-bzimage"] = qemu_common[:1] + ["-M", "pc"] + qemu_common[1:] + ["-kernel", bzimage]

    runs = {name: [] for name in configs}
    for i in range(a.runs):
        for name, argv in configs.items():
            r = run_once(argv, a.timeout)
            runs[name].append(r)
            t = r["times"]
            print(f"run {i + 1}/{a.runs} {name}: " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items())
                  + f", status {r['status']}", file=sys.stderr)

    summary = {}
    for name, rs in runs.items():
        s = {}
        for key in STAGES:
            vals = [r["times"][key] for r in rs if key in r["times"]]
            s[key] = {"median_s": statistics.median(vals) if vals else None, "n": len(vals),
                      "min_s": min(vals) if vals else None, "max_s": max(vals) if vals else None}
        summary[name] = s

    def ratio(key, peer):
        a_, b_ = summary["rtvmm"][key]["median_s"], summary[peer][key]["median_s"]
        return (a_ / b_) if a_ and b_ else None

    ratios = {f"rtvmm/{p}": {k: ratio(k, p) for k in STAGES if k != "exit"}
              for p in configs if p != "rtvmm"}
    result = {
        "benchmark": "boot_time",
        "machine": {"hostname": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count()},
        "git_revision": git_revision(root),
        "guest": {"kernel_dir": a.kernel_dir, "initrd": a.initrd, "vcpus": a.vcpus, "memory": a.memory,
                  "cmdline": cmdline},
        "commands": configs,
        "runs": runs,
        "summary": summary,
        "ratios": ratios,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)

    def fmt(v):
        return f"{v:.2f}" if v is not None else "not reached"

    print("| monitor | " + " | ".join(STAGES) + " | exit status |")
    print("|---|" + "---|" * (len(STAGES) + 1))
    for name, st in summary.items():
        statuses = ",".join(str(r["status"]) for r in runs[name])
        print(f"| {name} | " + " | ".join(fmt(st[k]["median_s"]) for k in STAGES) + f" | {statuses} |")
    print("\nmedian seconds from launch over", a.runs, "run(s); ratios rtvmm/peer (< 1: rtvmm faster):")
    for name, r in ratios.items():
        print(f"- {name}: " + ", ".join(f"{k} {fmt(v)}" for k, v in r.items() if v is not None))


if __name__ == "__main__":
    main()
