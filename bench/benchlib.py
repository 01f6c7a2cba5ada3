"""Shared plumbing of the rtvmm benchmark programs (bench/*.py).

Every benchmark is a program that runs alone (`bench/NAME.py --help`) and, through
`bench/rtvmm-bench`, as part of the suite. It writes one JSON document (see
bench/schema/benchmark.schema.json): what ran, on which cpus, every figure, the peer's
figure from the same run and the ratios. This module gives them the common pieces: the
command-line skeleton, machine facts, pinning of threads, processes whose console is
matched line by line, histogram statistics and the result record.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = "rtvmm-bench/1"


def log(name, msg):
    """Prints a progress line on stderr, prefixed with the benchmark's name."""
    print(f"[{name}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- command line

def arg_parser(name, doc):
    """Returns an ArgumentParser with the options every benchmark takes."""
    ap = argparse.ArgumentParser(prog=f"bench/{name}.py", description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="write the result document here (default: stdout)")
    ap.add_argument("--outdir", metavar="DIR", help="directory for raw data (histograms, logs)")
    ap.add_argument("--quick", action="store_true",
                    help="run briefly: checks that the benchmark works, the figures mean little")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build directory")
    ap.add_argument("--housekeeping-cpu", type=int, default=0, metavar="CPU",
                    help="cpu for monitors' emulator threads, traffic sources, stress (default 0)")
    ap.add_argument("--measure-cpu", type=int, default=None, metavar="CPU",
                    help="cpu for the thread under test: vCPU, DUT poll loop (default: last cpu)")
    return ap


def parse_args(ap, argv=None):
    """Parses argv and fills in derived defaults (measure cpu, outdir)."""
    a = ap.parse_args(argv)
    if a.measure_cpu is None:
        a.measure_cpu = (os.cpu_count() or 1) - 1
    if a.outdir:
        os.makedirs(a.outdir, exist_ok=True)
    return a


# ---------------------------------------------------------------- results

def new_result(name, args, config):
    """Starts a result document for benchmark NAME with its effective configuration."""
    return {
        "schema": SCHEMA,
        "benchmark": name,
        "status": "ok",
        "reason": None,
        "skip": None,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": None,
        "quick": bool(args.quick),
        "command": [sys.argv[0]] + sys.argv[1:],
        "machine": machine_info(),
        "git": git_info(),
        "config": config,
        "pinning": [],
        "results": [],
        "ratios": [],
        "histograms": [],
        "series": [],
        "notes": [],
        "_t0": time.monotonic(),
    }


def add_pinning(res, subject, thread, cpu, policy="SCHED_OTHER", priority=0):
    """Records which cpu (list or int) and policy a thread of SUBJECT ran with."""
    res["pinning"].append({"subject": subject, "thread": thread,
                           "cpus": cpu if isinstance(cpu, list) else [cpu],
                           "policy": policy, "priority": priority})


def add_figure(res, name, subject, value, unit, scenario=None, **extra):
    """Records one figure: NAME of SUBJECT (rtvmm, raw-kvm, host, testpmd, qemu...) in UNIT."""
    fig = {"name": name, "subject": subject, "scenario": scenario, "value": value, "unit": unit}
    fig.update(extra)
    res["results"].append(fig)
    return fig


def add_ratio(res, name, numerator, denominator, goal=None, better="lower"):
    """Records NUMERATOR/DENOMINATOR (two figure values) and whether GOAL (a bound) is met.

    better is "lower" when a smaller ratio is better (latency: goal is an upper bound)
    or "higher" (throughput: goal is a lower bound)."""
    value = numerator / denominator if numerator is not None and denominator else None
    met = None
    if goal is not None and value is not None:
        met = value <= goal if better == "lower" else value >= goal
    r = {"name": name, "value": value, "numerator": numerator, "denominator": denominator,
         "goal": goal, "better": better, "met": met}
    res["ratios"].append(r)
    return r


def add_histogram(res, name, subject, scenario, unit, width, buckets, overflow=0):
    """Records a histogram: BUCKETS is {lower_bound: count} or [[lower, count], ...]."""
    items = sorted(buckets.items()) if isinstance(buckets, dict) else sorted(buckets)
    res["histograms"].append({"name": name, "subject": subject, "scenario": scenario,
                              "unit": unit, "bucket_width": width,
                              "buckets": [[lo, n] for lo, n in items if n],
                              "overflow": overflow})


def add_series(res, name, x_label, y_label, points, subject, scenario=None):
    """Records a plot series: POINTS is [[x, y], ...] (x may be a label such as "imix")."""
    res["series"].append({"name": name, "subject": subject, "scenario": scenario,
                          "x": x_label, "y": y_label, "points": points})


# Why a benchmark (or a part of one, such as a peer monitor) did not run: one of these kinds,
# each a fact about the host that anyone can check again (tests/integration/bench_quick.py does).
#   program  SUBJECT (a program name) is not on PATH
#   kvm      SUBJECT (/dev/kvm) is absent or not readable and writable
#   root     the benchmark runs without root (SUBJECT None)
#   build    SUBJECT (a file the build makes) does not exist: not built, or not configured
SKIP_KINDS = ("program", "kvm", "root", "build")


class Missing:
    """What a benchmark needs and this host lacks: a skip KIND (SKIP_KINDS), its SUBJECT and
    the sentence that tells a reader what to do."""

    def __init__(self, kind, subject, reason):
        assert kind in SKIP_KINDS, kind
        self.kind, self.subject, self.reason = kind, subject, reason

    def record(self):
        return {"kind": self.kind, "subject": self.subject}

    def __str__(self):
        return self.reason


def skip(res, missing):
    """Marks the result skipped because the host lacks MISSING (a Missing), with the reason in
    words ("reason") and as a fact to check again ("skip": {"kind", "subject"})."""
    res["status"], res["reason"] = "skipped", missing.reason
    res["skip"] = missing.record()
    return res


def skip_part(res, part, missing):
    """Records that PART of the benchmark (a peer, e.g. "qemu": the subject of its figures) did
    not run because the host lacks MISSING; the rest ran."""
    res.setdefault("skipped_parts", []).append(dict(missing.record(), part=part, reason=missing.reason))
    return res


def fail(res, reason):
    """Marks the result failed (the benchmark could not measure), with the reason."""
    res["status"], res["reason"] = "failed", reason
    return res


def finish(res, args):
    """Writes the result document to --json (or stdout); exit status 0 unless it failed."""
    res["duration_s"] = round(time.monotonic() - res.pop("_t0"), 3)
    text = json.dumps(res, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 1 if res["status"] == "failed" else 0


def main(name, doc, add_arguments, run, argv=None):
    """Standard entry point: parse options, run(args, res) -> res, write the document.

    An exception inside run() marks the result failed with its message, so the suite
    always gets a document."""
    ap = arg_parser(name, doc)
    add_arguments(ap)
    args = parse_args(ap, argv)
    res = None
    try:
        res = run(args, lambda config: new_result(name, args, config))
    except Exception as e:  # the document must say what broke
        res = res or new_result(name, args, {})
        fail(res, f"{type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
    return finish(res, args)


# ---------------------------------------------------------------- machine

def _read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def machine_info():
    """Facts about this host that decide how to read a figure."""
    model = None
    for line in (_read("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = None
    for line in (_read("/proc/meminfo", "") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    kvm_mods = sorted(m for m in (os.listdir("/sys/module") if os.path.isdir("/sys/module") else [])
                      if m.startswith("kvm"))
    nodes = [d for d in os.listdir("/sys/devices/system/node")
             if re.fullmatch(r"node\d+", d)] if os.path.isdir("/sys/devices/system/node") else []
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_mib": mem_kb // 1024 if mem_kb else None,
        "numa_nodes": len(nodes),
        "isolated_cpus": _read("/sys/devices/system/cpu/isolated", ""),
        "kvm_modules": kvm_mods,
        "hugepages_2m": int(_read("/proc/sys/vm/nr_hugepages", "0") or 0),
        "rt_runtime_us": _read("/proc/sys/kernel/sched_rt_runtime_us"),
        "cmdline": _read("/proc/cmdline", ""),
        "emulated": emulated_host(),
    }


def anywhere_cpus(args):
    """The cpus a "default" (unplaced) scenario's threads may use: every cpu this process may,
    except in scripts/kvmbox, where it is the measure cpu alone: there a vCPU thread moving
    between the box's cpus may fault or stall its guest or wedge the box (README, Tests), and
    the box's figures are function only anyway."""
    if os.environ.get("RTVMM_KVMBOX") == "1":
        return [args.measure_cpu]
    return sorted(os.sched_getaffinity(0))


def anywhere_note(args):
    """The notes line that says where the "default" scenarios' threads ran (anywhere_cpus)."""
    cpus = anywhere_cpus(args)
    if os.environ.get("RTVMM_KVMBOX") == "1":
        return (f"default scenarios: every thread on cpu {cpus[0]} only, in scripts/kvmbox: a vCPU "
                "thread moving between the box's cpus may fault its guest there (not timing)")
    return f"default scenarios: threads free on cpus {','.join(map(str, cpus))}"


def emulated_host():
    """The sentence a report shows when this KVM host runs in software emulation (scripts/kvmbox
    sets RTVMM_KVMBOX=1), where figures prove function and are not timing; else None."""
    if os.environ.get("RTVMM_KVMBOX") == "1":
        return ("function only, not timing: this host is scripts/kvmbox (nested KVM in QEMU TCG, every "
                "instruction emulated)")
    return None


def git_info():
    """The revision of the tree the benchmark ran from (dirty if it had changes)."""
    try:
        rev = subprocess.check_output(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                      text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return {"revision": rev}


def tool(args, rel):
    """Path of a program built in the meson build directory (e.g. "rtvmm")."""
    return os.path.join(args.build, rel)


def need(*programs):
    """None when every program is on PATH, else a Missing naming the first one that is not."""
    for p in programs:
        if not shutil.which(p):
            return Missing("program", p, f"{p} not found (scripts/deps.sh bench installs it)")
    return None


def need_kvm(path="/dev/kvm"):
    """None when PATH (the KVM device) can be opened read-write, else a Missing."""
    if os.access(path, os.R_OK | os.W_OK):
        return None
    why = "is absent" if not os.path.exists(path) else "is not readable and writable here"
    return Missing("kvm", path, f"{path} {why}")


def need_root(why):
    """None when running as root, else a Missing saying WHY root is needed."""
    return None if os.geteuid() == 0 else Missing("root", None, f"needs root ({why})")


def need_built(args, *paths):
    """None when every file of the build exists, else a Missing naming the first absent one."""
    for p in paths:
        if not os.path.exists(p):
            hint = ("libdpdk-dev was missing at configure time: scripts/deps.sh dataplane, then "
                    "meson setup --reconfigure" if "dataplane" in os.path.relpath(p, args.build)
                    else f"ninja -C {args.build}")
            return Missing("build", p, f"{p} is not built ({hint})")
    return None


class LinuxKernel:
    """The Linux kernel a benchmark boots.

    bzimage  what rtvmm boots (its payload decompressed on the host)
    vmlinux  the same build's ELF, which QEMU enters through PVH: only rtvmm's own build
             (scripts/build-kernel.sh) has one, as a sibling file named vmlinux; else None
    modules  the unpacked Debian package tree (TREE/lib/modules/VERSION/) with the kernel's
             modules, for scripts/mkinitramfs.sh --modules TREE:...; None for a kernel without
    origin   how it was chosen, in words (recorded in the result's config)"""

    def __init__(self, bzimage, origin):
        self.bzimage, self.origin = os.path.abspath(bzimage), origin
        d = os.path.dirname(self.bzimage)
        vmlinux = os.path.join(d, "vmlinux")
        self.vmlinux = vmlinux if os.path.isfile(vmlinux) else None
        self.modules = None
        base = os.path.basename(self.bzimage)
        if base.startswith("vmlinuz-") and os.path.basename(d) == "boot":
            tree = os.path.dirname(d)
            if os.path.isdir(os.path.join(tree, "lib", "modules", base[len("vmlinuz-"):])):
                self.modules = tree

    def config(self):
        return {"kernel": self.bzimage, "vmlinux": self.vmlinux, "modules_tree": self.modules,
                "kernel_origin": self.origin}


def linux_cmdline(rtvmm):
    """The Linux guest's command-line options for this KVM host (guest/linux/cmdline.sh: the PVM
    workarounds only on kvm_pvm)."""
    return subprocess.check_output([os.path.join(ROOT, "guest", "linux", "cmdline.sh"), rtvmm],
                                   text=True).strip()


def kvm_host(rtvmm):
    """What `rtvmm kvm-host` says of this host ("kvm_amd /dev/kvm api 12 ..."), or None."""
    try:
        proc = subprocess.run([rtvmm, "kvm-host"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _script(name, *argv):
    """Runs scripts/NAME; returns (stdout's last line, None) or (None, its last error line)."""
    proc = subprocess.run([os.path.join(ROOT, "scripts", name), *argv], capture_output=True, text=True)
    out = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and out:
        return out[-1], None
    err = proc.stderr.strip().splitlines()
    return None, f"scripts/{name} {' '.join(argv)} exited {proc.returncode}" + (f": {err[-1]}" if err else "")


def linux_kernel(rtvmm, override=None):
    """The Linux guest kernel: (LinuxKernel, None), or (None, why) when there is none.

    In order: OVERRIDE (a benchmark's --kernel); $RTVMM_TEST_KERNEL (scripts/test.sh sets it
    to the kernel every Linux test boots); on a nested PVM host (`rtvmm kvm-host` says
    kvm_pvm), where Debian's kernel cannot reach user space (docs/linux-guest.md), rtvmm's own
    build of the current configuration (scripts/build-kernel.sh --cached: never a stale one,
    and nothing is built here); everywhere else Debian's stock kernel (scripts/fetch-kernel.sh,
    downloaded into the cache on first use)."""
    for path, origin in ((override, "--kernel"), (os.environ.get("RTVMM_TEST_KERNEL"), "$RTVMM_TEST_KERNEL")):
        if path:
            if not os.path.isfile(path):
                return None, f"{origin} {path} is not a file"
            return LinuxKernel(path, f"{origin} {path}"), None
    host = kvm_host(rtvmm)
    if host and host.split()[0] == "kvm_pvm":
        d, why = _script("build-kernel.sh", "--cached", "--print-dir")
        if d and os.path.isfile(os.path.join(d, "bzImage")):
            return LinuxKernel(os.path.join(d, "bzImage"), "rtvmm's own build (nested PVM host: "
                               "scripts/build-kernel.sh --cached)"), None
        return None, ("this is a nested PVM host, where Debian's kernel cannot reach user space, and "
                      "rtvmm's own kernel is not built for this configuration: scripts/build-kernel.sh "
                      "builds it (5-30 min, cached in .cache/kernel-build/)")
    vmlinuz, why = _script("fetch-kernel.sh")
    if not vmlinuz:
        return None, f"Debian's stock kernel is not available ({why})"
    return LinuxKernel(vmlinuz, "Debian's stock kernel (scripts/fetch-kernel.sh)"), None


def mkinitramfs(stem, *opts):
    """A test initramfs from scripts/mkinitramfs.sh OPTS, cached as .cache/STEM-<key>.cpio; returns
    its path. The key hashes the options, the script, the guest's /init and, with --cyclictest,
    the host's cyclictest binary: a change to any of them makes a new archive (an upgrade of
    busybox or of shared libraries alone does not). Building one takes seconds natively but
    minutes where every instruction is emulated (scripts/kvmbox)."""
    cache = os.environ.get("RTVMM_CACHE", os.path.join(ROOT, ".cache"))
    os.makedirs(cache, exist_ok=True)
    h = hashlib.sha256("\0".join(opts).encode())
    inputs = [os.path.join(ROOT, "scripts", "mkinitramfs.sh"), os.path.join(ROOT, "guest", "linux", "init")]
    if "--cyclictest" in opts:
        inputs.append(shutil.which("cyclictest") or "/usr/bin/cyclictest")
    for path in inputs:
        with open(path, "rb") as f:
            h.update(f.read())
    out = os.path.join(cache, f"{stem}-{h.hexdigest()[:16]}.cpio")
    if os.path.isfile(out):
        return out
    built = subprocess.check_output([os.path.join(ROOT, "scripts", "mkinitramfs.sh"), *opts, out],
                                    text=True).strip()
    for old in os.listdir(cache):          # earlier keys of this stem
        if re.fullmatch(re.escape(stem) + r"-[0-9a-f]{16}\.cpio", old) and old != os.path.basename(out):
            try:
                os.unlink(os.path.join(cache, old))
            except OSError:
                pass
    return built


# ---------------------------------------------------------------- threads and cpus

def threads(pid):
    """{tid: comm} of every thread of process PID."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            comm = _read(f"/proc/{pid}/task/{tid}/comm")
            if comm is not None:
                out[int(tid)] = comm
    except OSError:
        pass
    return out


def find_threads(pid, pattern, timeout=10.0):
    """Waits until threads of PID whose name matches PATTERN exist; returns {tid: comm}."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        found = {t: c for t, c in threads(pid).items() if rx.search(c)}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def pin(tid, cpus):
    """Sets the cpu affinity of one thread (cpus: int or list)."""
    os.sched_setaffinity(tid, [cpus] if isinstance(cpus, int) else cpus)


def set_policy(tid, policy, priority=0):
    """Sets a thread's policy: "SCHED_FIFO" with PRIORITY, or "SCHED_OTHER"."""
    pol = os.SCHED_FIFO if policy == "SCHED_FIFO" else os.SCHED_OTHER
    os.sched_setscheduler(tid, pol, os.sched_param(priority if pol == os.SCHED_FIFO else 0))


def thread_placement(tid):
    """(cpus, policy name, priority) a thread runs with right now."""
    cpus = sorted(os.sched_getaffinity(tid))
    pol = os.sched_getscheduler(tid)
    name = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}.get(pol, "SCHED_OTHER")
    return cpus, name, os.sched_getparam(tid).sched_priority


class Stress:
    """stress-ng CPU hogs (SCHED_OTHER, nice 0), one pinned to each cpu in CPUS, while in a with-block."""

    def __init__(self, cpus, kind="cpu"):
        self.cpus, self.kind, self.procs = cpus, kind, []

    def __enter__(self):
        for c in self.cpus:
            self.procs.append(subprocess.Popen(
                ["taskset", "-c", str(c), "stress-ng", f"--{self.kind}", "1", "--timeout", "3600",
                 "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        return False


def wait_listening(path, timeout):
    """Waits until a unix socket at PATH accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nobody listens on {path} after {timeout} s")
            time.sleep(0.05)
        finally:
            s.close()


def foreign_rt_threads(cpus):
    """Real-time threads of other user processes that may run on CPUS: "comm (pid N, FIFO 90)"."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if not open(f"/proc/{pid}/cmdline", "rb").read():
                continue                  # a kernel thread (migration, irq, watchdog)
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                pol = os.sched_getscheduler(int(tid))
                if pol not in (os.SCHED_FIFO, os.SCHED_RR) or not set(cpus) & os.sched_getaffinity(int(tid)):
                    continue
                comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
                prio = os.sched_getparam(int(tid)).sched_priority
            except OSError:
                continue
            found.append(f"{comm} (pid {pid}, {'FIFO' if pol == os.SCHED_FIFO else 'RR'} {prio})")
    return found


def _thread_times(cpus):
    """{(pid, tid): (comm, cpu seconds)} of every user thread whose last cpu is in CPUS."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is stat field 3 (state)
            if int(fields[36]) in cpus:                   # field 39: the cpu it last ran on
                out[(int(pid), int(tid))] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def _steal(cpus):
    """{cpu: (steal, total) jiffies} from /proc/stat, and "forks": processes created since boot."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m and int(m.group(1)) in cpus:
                v = [int(x) for x in m.group(2).split()]
                out[int(m.group(1))] = (v[7] if len(v) > 7 else 0, sum(v[:8]))
            elif line.startswith("processes "):
                out["forks"] = int(line.split()[1])
    return out


class Noise:
    """What else ran on CPUS while a with-block measured: the load average, the steal time
    (/proc/stat), the threads of other processes that ran there throughout (there before and
    after: the processes a benchmark starts and stops inside are not counted) and how many
    processes were created meanwhile (short-lived work such as a compiler, ours included)."""

    def __init__(self, cpus):
        self.cpus = set(cpus)
        self.load = self.steal_pct = self.forks = None
        self.foreign = []

    def __enter__(self):
        self._t0, self._s0 = _thread_times(self.cpus), _steal(self.cpus)
        return self

    def __exit__(self, *exc):
        t1, s1 = _thread_times(self.cpus), _steal(self.cpus)
        self.load = os.getloadavg()[0]
        self.steal_pct = {c: round(100 * (s1[c][0] - self._s0[c][0]) / max(s1[c][1] - self._s0[c][1], 1), 1)
                          for c in s1 if c in self._s0 and c != "forks"}
        self.forks = s1.get("forks", 0) - self._s0.get("forks", 0)
        busy = [(t1[k][1] - self._t0[k][1], t1[k][0], k[0]) for k in t1 if k in self._t0]
        self.foreign = [f"{comm} (pid {pid}) {sec:.1f} s" for sec, comm, pid in sorted(busy, reverse=True)
                        if sec >= 0.1][:5]
        return False

    def record(self):
        """The account as a result entry."""
        return {"load_average_1m": self.load, "steal_pct": self.steal_pct, "foreign_threads": self.foreign,
                "processes_created": self.forks}

    def __str__(self):
        steal = ", ".join(f"cpu {c} {p} %" for c, p in sorted((self.steal_pct or {}).items()))
        return (f"load average {self.load:.2f}, steal time {steal or 'unknown'}, other processes' threads "
                f"on cpus {','.join(map(str, sorted(self.cpus)))} throughout: {', '.join(self.foreign) or 'none'}, "
                f"{self.forks} processes created meanwhile")


MIN_VERDICT_ROUNDS = 3


def add_paired_ratio(res, name, a_runs, b_runs, goal, better="higher", noise=None):
    """Records median(A_RUNS)/median(B_RUNS) with each round's own ratio A[i]/B[i] (rounds
    interleaved, A and B measured as neighbours) and their spread. The goal's verdict ("met")
    is given only when the rounds separate: at least MIN_VERDICT_ROUNDS pairs, every one on
    the same side of GOAL; otherwise "met" is None and "verdict" says why, with NOISE (a
    Noise) when given."""
    pairs = [a / b for a, b in zip(a_runs, b_runs) if a is not None and b]
    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    r = add_ratio(res, name, med([a for a in a_runs if a is not None]),
                  med([b for b in b_runs if b is not None]), goal=goal, better=better)
    r.update(rounds=len(pairs), per_round=[round(x, 4) for x in pairs],
             spread=[round(min(pairs), 4), round(max(pairs), 4)] if pairs else None)
    if r["value"] is None:
        return r
    good = [x >= goal if better == "higher" else x <= goal for x in pairs]
    if len(pairs) < MIN_VERDICT_ROUNDS:
        r["met"] = None
        r["verdict"] = f"not separable in this run: {len(pairs)} round(s), a verdict needs {MIN_VERDICT_ROUNDS}"
    elif all(good) or not any(good):
        r["met"] = all(good)
        r["verdict"] = f"every round {'meets' if all(good) else 'misses'} the goal"
    else:
        r["met"] = None
        r["verdict"] = (f"not separable in this run: the rounds' ratios {r['spread'][0]:.3g}..{r['spread'][1]:.3g} "
                        f"straddle the goal {goal:g}")
    if r["met"] is None and noise is not None:
        r["verdict"] += f" ({noise})"
    return r


def note_host_load(res, name, cpus):
    """Notes in RES the load average and other processes' real-time threads on CPUS (both skew
    every figure), warning on stderr about the latter."""
    res["notes"].append("load average at start: %.2f %.2f %.2f (other work on these cpus skews every figure)"
                        % os.getloadavg())
    rt = foreign_rt_threads(cpus)
    if rt:
        res["notes"].append("other processes' real-time threads share these cpus (figures are skewed): "
                            + ", ".join(rt))
        log(name, "warning: real-time threads of other processes on these cpus: " + ", ".join(rt))


# ---------------------------------------------------------------- processes

class Console:
    """A child process whose stdout+stderr is read line by line (monitors, dataplanes)."""

    def __init__(self, argv, name="proc", stdin=subprocess.DEVNULL, env=None, logfile=None):
        self.argv, self.name = argv, name
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.lines, self._buf = [], b""
        self.log = open(logfile, "w") if logfile else None
        self.eof = False

    @property
    def pid(self):
        return self.proc.pid

    def _pump(self, timeout):
        if self.eof:
            time.sleep(min(timeout, 0.05))
            return []
        if not self.sel.select(timeout=max(timeout, 0)):
            return []
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            self.eof = True
            chunk = b"\n" if self._buf else b""
        self._buf += chunk
        *new, self._buf = self._buf.split(b"\n")
        new = [l.decode(errors="replace").rstrip("\r") for l in new]
        for l in new:
            if self.log:
                self.log.write(l + "\n")
                self.log.flush()
        self.lines.extend(new)
        return new

    def expect(self, pattern, timeout):
        """Waits for a line matching PATTERN (regex); returns the match, or None on timeout/exit."""
        rx = re.compile(pattern)
        for l in self.lines[getattr(self, "_seen", 0):]:
            self._seen = getattr(self, "_seen", 0) + 1
            m = rx.search(l)
            if m:
                return m
        self._seen = len(self.lines)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for l in self._pump(deadline - time.monotonic()):
                self._seen += 1
                m = rx.search(l)
                if m:
                    return m
            if self.eof and self.proc.poll() is not None:
                return None
        return None

    def wait(self, timeout):
        """Reads until the process exits (or TIMEOUT, then kills it); returns the exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(min(0.2, deadline - time.monotonic()))
        if self.proc.poll() is None:
            self.kill()
        while not self.eof:
            if not self._pump(0.1) and self.proc.poll() is not None:
                self._pump(0)
                break
        return self.proc.wait()

    def stop(self, sig=signal.SIGINT, timeout=10):
        """Sends SIG (default SIGINT) and waits; kills after TIMEOUT. Returns the exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        return self.wait(timeout)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def tail(self, n=20):
        return self.lines[-n:]

    def close(self):
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait()
        if self.log:
            self.log.close()


KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] ")  # a printk line on the serial console


def guest_command(con, prefix, tag, argv, timeout):
    """Runs one program in a Linux guest that serves PREFIX on its console (guest/linux/init's
    serve: rtvmm.test=cyclictest serves RTVMM-CT, rtvmm.test=fio RTVMM-FIO) and has printed
    PREFIX-READY: types "go TAG ARGV..."; returns (exit status, the lines between PREFIX-BEGIN
    TAG and PREFIX-END TAG, printk lines left out). Waits for the next prompt before returning."""
    con.proc.stdin.write(f"go {tag} {' '.join(argv)}\n".encode())
    con.proc.stdin.flush()
    if not con.expect(rf"{prefix}-BEGIN {re.escape(tag)}$", 30):
        raise RuntimeError(f"{con.name}: the guest did not start {tag}: {con.tail(5)}")
    start = len(con.lines)
    m = con.expect(rf"{prefix}-END {re.escape(tag)} status=(\d+)", timeout)
    if not m:
        raise RuntimeError(f"{con.name}: guest run {tag} did not finish in {timeout:.0f} s: {con.tail(5)}")
    # A kernel message printed before the guest quietened its console is not the program's.
    lines = [l for l in con.lines[start:-1] if not KERNEL_LINE.match(l)]
    if not con.expect(rf"{prefix}-READY", 30):
        raise RuntimeError(f"{con.name}: no prompt after {tag}: {con.tail(5)}")
    return int(m.group(1)), lines


# ---------------------------------------------------------------- rtvmm

def rt_plan_yaml(name, args, kernel, cmdline, memory, priority, initrd=None, vm_keys=""):
    """A host plan for one guest (VM NAME) placed for real time: its vCPU pinned to --measure-cpu at
    SCHED_FIFO PRIORITY, emulator threads on --housekeeping-cpu, RAM prefaulted and locked on
    2M pages (4K when the pool is short); VM_KEYS (YAML lines, two-space indented) add to the VM."""
    initrd_line = f"  initrd: {json.dumps(os.path.abspath(initrd))}\n" if initrd else ""
    return f"""# written by {os.path.basename(sys.argv[0])}: the rt placement of the guest under test
host:
  housekeeping_cpus: "{args.housekeeping_cpu}"
vm:
  name: {name}
  kernel: {json.dumps(os.path.abspath(kernel))}
{initrd_line}  cmdline: {json.dumps(cmdline)}
  memory:
    size: {memory}
    page_size: 2M
    prefault: true
    mlock: true
    fallback_4k: true
  vcpus:
    count: 1
    policy: fifo
    priority: {priority}
    pin: ["{args.measure_cpu}"]
  emulator_cpus: "{args.housekeeping_cpu}"
{vm_keys}"""


def parse_cyclictest(text):
    """Histogram {us: count}, cycles, min/avg/max and overflows from cyclictest's --json text.

    Its JSON lists only the non-empty buckets and no overflow count: the overflows are the
    cycles the histogram does not hold (the same number as its "# Histogram Overflows" line).
    Returns None when TEXT holds no such document."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        thread = json.loads(text[start:end + 1])["thread"]["0"]
    except (ValueError, KeyError):
        return None
    buckets = {int(k): int(v) for k, v in thread["histogram"].items()}
    return {"buckets": buckets, "min": thread["min"], "avg": thread["avg"], "max": thread["max"],
            "total": thread["cycles"], "overflow": thread["cycles"] - sum(buckets.values())}


# ---------------------------------------------------------------- statistics

def hist_stats(buckets, width=1.0, overflow=0, overflow_at=None):
    """min/avg/p50/p99/p99.9/max and count of a histogram {lower_bound: count}.

    Values in a bucket count as its lower bound for percentiles and min, as its middle
    for the average; the max is the upper end of the last non-empty bucket, or
    overflow_at (or "overflow") when samples overflowed."""
    items = sorted((float(k), int(v)) for k, v in (buckets.items() if isinstance(buckets, dict)
                                                    else buckets) if int(v))
    n = sum(v for _, v in items) + overflow
    if n == 0:
        return {"count": 0}

    def pct(p):
        rank, acc = math.ceil(round(p * n / 100.0, 9)), 0
        for lo, v in items:
            acc += v
            if acc >= rank:
                return lo
        return overflow_at if overflow_at is not None else None

    s = {"count": n, "overflow": overflow,
         "min": items[0][0] if items else overflow_at,
         "avg": (sum((lo + width / 2) * v for lo, v in items) / (n - overflow)) if n > overflow else None,
         "p50": pct(50), "p99": pct(99), "p99_9": pct(99.9)}
    s["max"] = overflow_at if overflow else (items[-1][0] + width if items else None)
    return s


def percentiles(values, ps=(50, 99, 99.9)):
    """Percentiles of a list of numbers (nearest rank)."""
    v = sorted(values)
    if not v:
        return {}
    out = {}
    for p in ps:
        k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
        out["p" + str(p).replace(".", "_")] = v[k]
    return out
