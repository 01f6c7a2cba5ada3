#!/usr/bin/env python3
"""Boot time and monitor memory overhead, rtvmm vs QEMU (-M microvm and -M pc), same guests,
same memory and vCPUs, runs interleaved in one session.

1. Bare-metal guest (BUILD/bench/guest/rtvmm-guest.elf, test=boot, 1 vCPU, 64 MiB): seconds
   from the monitor's launch to the guest's first console line (its first instructions run
   a few hundred before it: the closest proxy a console gives) and to the monitor's exit
   (the guest exits right after its boot check: rtvmm through its test device, QEMU through
   isa-debug-exit). QEMU enters the same ELF through its PVH note. Medians of --runs.
2. Linux (Debian's stock kernel by default, the busybox initramfs, 2 vCPUs, 256 MiB,
   earlyprintk): seconds to the console lines of each stage
     first_output "Linux version", cmdline_parsed "Kernel command line:", fpu_init "x86/fpu: ",
     smp_up "smp: Brought up", kernel_init "Run /init as init process",
     init_marker "RTVMM-INIT-OK" (the initramfs's /init), exit (poweroff -f)
   The kernel: --kernel, else $RTVMM_TEST_KERNEL (scripts/test.sh), else Debian's stock
   kernel (scripts/fetch-kernel.sh, cached), except on a nested PVM host (`rtvmm kvm-host`
   says kvm_pvm), where the stock kernel cannot reach user space and rtvmm's own build
   (scripts/build-kernel.sh, cached) is booted. The initramfs: --initrd, else
   $RTVMM_TEST_INITRD, else scripts/mkinitramfs.sh (with the stock kernel's virtio-pci and
   virtio-net modules, as the tests boot it). rtvmm boots the bzImage (payload decompressed on
   the host). QEMU boots the same build's vmlinux through PVH when the kernel has one (rtvmm's
   own build) and otherwise the same bzImage with its own Linux loader; config.linux.qemu_boot
   says which. A monitor that reports a KVM internal error is stopped 2 s later; the stages it
   did not reach are recorded as such, with its last console lines (the whole console of
   each boot is in --outdir, linux-MONITOR-N.log, each line with its time since launch).
3. Monitor memory: Rss of every mapping in /proc/PID/smaps except guest RAM, while the
   bare-metal guest idles (test=boot fault=hang: halted with interrupts off). Guest RAM is
   the memfd both monitors map it from (QEMU: -object memory-backend-memfd).

QEMU: qemu-system-x86_64 -enable-kvm -cpu host,-arch-capabilities -nodefaults -serial stdio,
RAM from memory-backend-memfd. Monitors run unpinned, SCHED_OTHER; the placement recorded is
their threads' as read back while the bare-metal guest idles.
"""
import json
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "boot"
MONITORS = ["rtvmm", "qemu-microvm", "qemu-pc"]
LINUX_STAGES = {
    "first_output": r"Linux version",
    "cmdline_parsed": r"Kernel command line:",
    "fpu_init": r"x86/fpu: ",
    "smp_up": r"smp: Brought up",
    "kernel_init": r"Run /init as init process",
    "init_marker": r"RTVMM-INIT-OK",
}
GUEST_FIRST = r"rtvmm-guest: "
# A monitor that prints this has stopped its guest for good (QEMU pauses instead of exiting).
FATAL = re.compile(r"KVM internal error|KVM_EXIT_INTERNAL_ERROR")


def add_arguments(ap):
    """Options of this benchmark on top of benchlib's."""
    ap.add_argument("--runs", type=int, default=None,
                    help="bare-metal guest boots per monitor (default 10, --quick 3)")
    ap.add_argument("--linux-runs", type=int, default=1, help="Linux boots per monitor (default 1)")
    ap.add_argument("--no-linux", action="store_true", help="leave the Linux boots out")
    ap.add_argument("--kernel", metavar="BZIMAGE",
                    help="Linux kernel (default: $RTVMM_TEST_KERNEL, else Debian's stock kernel from "
                    "scripts/fetch-kernel.sh; on a nested PVM host rtvmm's cached build); a "
                    "vmlinux next to it is what QEMU boots, through PVH")
    ap.add_argument("--initrd", help="Linux initramfs (default: $RTVMM_TEST_INITRD unless --kernel "
                    "is given, else scripts/mkinitramfs.sh into .cache/initramfs-boot-KEY.cpio)")
    ap.add_argument("--linux-vcpus", type=int, default=2)
    ap.add_argument("--linux-memory-mib", type=int, default=256)
    ap.add_argument("--guest-memory-mib", type=int, default=64, help="bare-metal guest RAM")
    ap.add_argument("--linux-timeout", type=float, default=None,
                    help="seconds per Linux boot (default 300; --quick 150)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")


def qemu_argv(args, machine, mem_mib, vcpus, kernel, append, initrd=None):
    """QEMU with its guest RAM from a memfd (as rtvmm), console on stdio, isa-debug-exit."""
    mach = "microvm" if machine == "qemu-microvm" else "pc"
    argv = [args.qemu, "-M", f"{mach},memory-backend=ram0",
            "-object", f"memory-backend-memfd,id=ram0,size={mem_mib}M",
            "-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", f"{mem_mib}M",
            "-smp", str(vcpus), "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0x501,iosize=1",
            "-kernel", kernel, "-append", append]
    return argv + (["-initrd", initrd] if initrd else [])


def timed_run(argv, markers, timeout, logfile=None):
    """Runs a monitor until it exits (or TIMEOUT, or 2 s after a fatal error); returns the
    seconds from launch to the first line matching each of MARKERS {name: regex} and to
    the exit, the exit status and the last console lines. The whole console goes to LOGFILE."""
    rx = {k: re.compile(v) for k, v in markers.items()}
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    times, buf, tail, fatal, killed = {}, b"", [], None, False
    log = open(logfile, "w") if logfile else None
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
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
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            if log:
                log.write(f"[{now:9.3f}] {line}\n")
            tail = (tail + [line])[-15:]
            for name, r in rx.items():
                if name not in times and r.search(line):
                    times[name] = now
            if fatal is None and FATAL.search(line):
                fatal = now
                deadline = min(deadline, time.monotonic() + 2)  # keep the register dump
    try:
        status = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        killed = True
        status = proc.wait()
    sel.close()
    proc.stdout.close()
    if log:
        log.close()
    end = time.monotonic() - t0
    if not killed:
        times["exit"] = end
    return {"times": {k: round(v, 3) for k, v in times.items()}, "status": status,
            "killed_after_s": round(end, 3) if killed else None,
            "fatal_error_s": round(fatal, 3) if fatal is not None else None, "tail": tail}


def median_of(runs, key):
    """(median, n) of the seconds to KEY over RUNS that reached it."""
    vals = [r["times"][key] for r in runs if key in r["times"]]
    return (round(statistics.median(vals), 3) if vals else None), len(vals)


def parse_smaps(text):
    """Every mapping in the text of /proc/PID/smaps: {"path", "size_kb", "rss_kb"}."""
    maps, cur = [], None
    head = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$")
    for line in text.splitlines():
        m = head.match(line)
        if m:
            cur = {"path": m.group(1).strip(), "size_kb": 0, "rss_kb": 0}
            maps.append(cur)
        elif cur is not None and line.startswith(("Size:", "Rss:")):
            cur["size_kb" if line.startswith("Size:") else "rss_kb"] = int(line.split()[1])
    return maps


def rss_overhead(smaps_text, ram_path):
    """Rss in an smaps text split into guest RAM (mappings of the memfd named RAM_PATH) and the
    rest, by kind (files: binaries and libraries, anonymous, [heap], memfd...), in kB."""
    out = {"guest_ram_kb": 0, "guest_ram_mapped_kb": 0, "overhead_kb": 0, "by_kind_kb": {}}
    for m in parse_smaps(smaps_text):
        if m["path"].startswith(ram_path):
            out["guest_ram_kb"] += m["rss_kb"]
            out["guest_ram_mapped_kb"] += m["size_kb"]
            continue
        out["overhead_kb"] += m["rss_kb"]
        path = m["path"]
        kind = ("anonymous" if not path else path if path.startswith("[")
                else "memfd" if path.startswith("/memfd:") else "files")
        out["by_kind_kb"][kind] = out["by_kind_kb"].get(kind, 0) + m["rss_kb"]
    return out


def measure_rss(argv, ram_path, ram_mib, logfile):
    """Boots the idling guest, reads smaps once it idles, stops it; returns rss_overhead() and
    the placement of the monitor's threads then, read back: [(thread, cpus, policy, priority)]."""
    con = benchlib.Console(argv, name="rss", logfile=logfile)
    try:
        if not con.expect(r"rtvmm-guest: fault: hang", 60):
            raise RuntimeError(f"{argv[0]}: the guest never idled: {con.tail(5)}")
        time.sleep(1.0)
        with open(f"/proc/{con.pid}/smaps") as f:
            r = rss_overhead(f.read(), ram_path)
        where = [(comm,) + benchlib.thread_placement(tid)
                 for tid, comm in sorted(benchlib.threads(con.pid).items())]
    finally:
        con.kill()
        con.close()
    if abs(r["guest_ram_mapped_kb"] - ram_mib * 1024) > 1024:
        raise RuntimeError(f"{argv[0]}: guest RAM mappings ({ram_path}) total "
                           f"{r['guest_ram_mapped_kb']} kB, expected {ram_mib} MiB")
    return r, where


def bare_metal(args, res, rtvmm, elf, runs):
    """Part 1 and 3: the bare-metal guest's boot to its first line and exit, and memory."""
    mem = args.guest_memory_mib
    cmd = {"rtvmm": [rtvmm, "run", "--kernel", elf, "--test-device", "--vcpus", "1", "--memory", f"{mem}M",
                     "--cmdline", "test=boot"]}
    for m in MONITORS[1:]:
        cmd[m] = qemu_argv(args, m, mem, 1, elf, "test=boot")
    res["config"]["bare_metal_commands"] = cmd
    all_runs = {m: [] for m in MONITORS}
    for i in range(runs):
        for m in MONITORS:
            r = timed_run(cmd[m], {"first_output": GUEST_FIRST}, 60)
            all_runs[m].append(r)
            benchlib.log(NAME, f"bare-metal {i + 1}/{runs} {m}: {r['times']} status {r['status']}")
    figs = {}
    for m in MONITORS:
        statuses = [r["status"] for r in all_runs[m]]
        for key, fig in (("first_output", "boot_first_output"), ("exit", "boot_exit")):
            med, n = median_of(all_runs[m], key)
            figs[(m, key)] = benchlib.add_figure(
                res, fig, m, med, "s", "bare-metal", runs=[r["times"].get(key) for r in all_runs[m]],
                n=n, statuses=statuses)
        # rtvmm: guest status 0 is exit 0; QEMU: isa-debug-exit gives 2 * 0 + 1
        want = 0 if m == "rtvmm" else 1
        if any(s != want for s in statuses):
            res["notes"].append(f"bare-metal guest under {m}: exit statuses {statuses} "
                                f"(want {want}); tail: {' | '.join(all_runs[m][-1]['tail'][-4:])}")
    for peer in MONITORS[1:]:
        for key, label in (("first_output", "first output"), ("exit", "exit")):
            benchlib.add_ratio(res, f"boot {label} rtvmm/{peer}", figs[("rtvmm", key)]["value"],
                               figs[(peer, key)]["value"])

    ram = {"rtvmm": "/memfd:rtvmm-ram"}
    ram.update({m: "/memfd:memory-backend-memfd" for m in MONITORS[1:]})
    rss = {}
    for m in MONITORS:
        argv = cmd[m][:-1] + ["test=boot fault=hang"]
        log = os.path.join(args.outdir, f"rss-{m}.log") if args.outdir else None
        r, where = measure_rss(argv, ram[m], mem, log)
        for comm, cpus, policy, prio in where:
            benchlib.add_pinning(res, m, comm, cpus, policy, prio)
        rss[m] = benchlib.add_figure(
            res, "rss_overhead_mib", m, round(r["overhead_kb"] / 1024, 2), "MiB", "bare-metal idle",
            guest_ram_rss_mib=round(r["guest_ram_kb"] / 1024, 2),
            by_kind_mib={k: round(v / 1024, 2) for k, v in sorted(r["by_kind_kb"].items())})
        benchlib.log(NAME, f"rss {m}: overhead {r['overhead_kb'] / 1024:.1f} MiB, "
                           f"guest RAM resident {r['guest_ram_kb'] / 1024:.1f} MiB")
    for peer in MONITORS[1:]:
        benchlib.add_ratio(res, f"rss overhead rtvmm/{peer}", rss["rtvmm"]["value"], rss[peer]["value"])


def linux(args, res, rtvmm, kernel, initrd, runs):
    """Part 2: Linux boot stages, rtvmm (bzImage) vs QEMU (PVH vmlinux, or the same bzImage)."""
    cmdline = (f"console=ttyS0 earlyprintk=serial,ttyS0 {benchlib.linux_cmdline(rtvmm)} "
               "rtvmm.test=poweroff panic=-1")
    mem, vcpus = args.linux_memory_mib, args.linux_vcpus
    # Every monitor alike on benchlib.anywhere_cpus: all cpus, but the measure cpu alone in
    # scripts/kvmbox, where a vCPU thread moving between cpus may stall its guest.
    on = ["taskset", "-c", ",".join(map(str, benchlib.anywhere_cpus(args)))]
    cmd = {"rtvmm": on + [rtvmm, "run", "--kernel", kernel.bzimage, "--initrd", initrd,
                          "--vcpus", str(vcpus), "--memory", f"{mem}M", "--cmdline", cmdline]}
    for m in MONITORS[1:]:
        cmd[m] = on + qemu_argv(args, m, mem, vcpus, kernel.vmlinux or kernel.bzimage, cmdline, initrd)
    res["notes"].append(f"Linux boots: every monitor under `{' '.join(on)}`")
    res["config"]["linux_commands"] = cmd
    all_runs = {m: [] for m in MONITORS}
    for i in range(runs):
        for m in MONITORS:
            r = timed_run(cmd[m], LINUX_STAGES, args.linux_timeout or (150 if args.quick else 300),
                          os.path.join(args.outdir, f"linux-{m}-{i + 1}.log"))
            all_runs[m].append(r)
            benchlib.log(NAME, f"linux {i + 1}/{runs} {m}: {r['times']} status {r['status']}")
            if r["fatal_error_s"] is not None or "init_marker" not in r["times"]:
                res["notes"].append(
                    f"Linux under {m} (run {i + 1}): reached {', '.join(r['times']) or 'nothing'}"
                    + (f"; KVM internal error at {r['fatal_error_s']} s, stopped" if r["fatal_error_s"]
                       is not None else "") + f"; last lines: {' | '.join(r['tail'][-4:])}")
    with open(os.path.join(args.outdir, "linux-runs.json"), "w") as f:
        json.dump(all_runs, f, indent=1)
    figs = {}
    for m in MONITORS:
        for key in list(LINUX_STAGES) + ["exit"]:
            med, n = median_of(all_runs[m], key)
            figs[(m, key)] = benchlib.add_figure(
                res, f"linux_{key}", m, med, "s", "linux", reached=n > 0, n=n,
                runs=[r["times"].get(key) for r in all_runs[m]],
                statuses=[r["status"] for r in all_runs[m]])
    for peer in MONITORS[1:]:
        for key in list(LINUX_STAGES) + ["exit"]:
            a, b = figs[("rtvmm", key)]["value"], figs[(peer, key)]["value"]
            if a is not None and b is not None:
                benchlib.add_ratio(res, f"linux {key} rtvmm/{peer}", a, b)


def run(args, new_result):
    """Bare-metal boots, memory overhead, then the Linux boots."""
    runs = args.runs or (3 if args.quick else 10)
    rtvmm = benchlib.tool(args, "rtvmm")
    elf = benchlib.tool(args, "bench/guest/rtvmm-guest.elf")
    res = new_result({"bare_metal": {"guest": elf, "vcpus": 1, "memory_mib": args.guest_memory_mib,
                                     "runs": runs},
                      "linux": {"vcpus": args.linux_vcpus, "memory_mib": args.linux_memory_mib,
                                "runs": 0 if args.no_linux else args.linux_runs}})
    missing = benchlib.need_kvm() or benchlib.need_built(args, rtvmm, elf) or benchlib.need(args.qemu)
    if missing:
        return benchlib.skip(res, missing)
    if not args.outdir:
        args.outdir = tempfile.mkdtemp(prefix="boot.")
    res["notes"].append("bare-metal boots: monitors unpinned, SCHED_OTHER; QEMU's guest RAM from "
                        "memory-backend-memfd")
    bare_metal(args, res, rtvmm, elf, runs)
    if args.no_linux:
        res["notes"].append("Linux boots left out (--no-linux)")
        return res
    kernel, why = benchlib.linux_kernel(rtvmm, args.kernel)
    if not kernel:
        # Not a skip: the kernel is this project's to provide (--no-linux leaves the boots out).
        return benchlib.fail(res, f"no Linux kernel to boot: {why}")
    initrd = args.initrd or (None if args.kernel else os.environ.get("RTVMM_TEST_INITRD"))
    if not initrd:
        mods = ["--modules", f"{kernel.modules}:virtio_pci,virtio_net"] if kernel.modules else []
        initrd = benchlib.mkinitramfs("initramfs-boot", *mods)
    res["config"]["linux"].update(kernel.config(), initrd=os.path.abspath(initrd),
                                  qemu_boot="vmlinux through PVH" if kernel.vmlinux
                                  else "the same bzImage, QEMU's own Linux loader")
    benchlib.log(NAME, f"Linux: {kernel.origin}, QEMU boots "
                       f"{kernel.vmlinux + ' (PVH)' if kernel.vmlinux else 'the same bzImage'}")
    linux(args, res, rtvmm, kernel, initrd, args.linux_runs)
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
