#!/usr/bin/env python3
"""Disk I/O through virtio-blk: fio inside a Linux guest, rtvmm against QEMU on the same guest,
the same root disk and data images made the same way, in the same run, rounds interleaved.

The guest: the kernel (--kernel, else $RTVMM_TEST_KERNEL, else Debian's stock kernel; on a
nested PVM host rtvmm's own build, as bench/linux_cyclictest.py chooses it), an initramfs with
the kernel's virtio_pci, virtio_blk and ext4 modules (scripts/mkinitramfs.sh, cached), root=
/dev/vda: the root disk of scripts/mkrootfs.sh --fio (Debian's fio and its libraries, cached),
read-only; /dev/vdb: a raw data image of --data-mib MiB filled with a random pattern, one copy
per monitor (both copies made alike; a shared image would have two writers). 1 vCPU, --memory.
guest/linux/init's rtvmm.test=fio serves fio on the console (the protocol of the cyclictest
mode: "go TAG ARGS", fio's JSON between RTVMM-FIO-BEGIN and RTVMM-FIO-END).

  rtvmm  rtvmm run --disk path=ROOT,readonly=on --disk path=DATA: the monitor serves the image
         from its I/O thread with io_uring, through the host page cache (buffered), FLUSH as
         fdatasync
  qemu   qemu-system-x86_64 -enable-kvm -M pc, virtio-blk-pci (modern only, 1 queue of 256)
         per disk, -drive format=raw,cache=writeback,aio=io_uring: the same semantics (host
         page cache, guest-visible write cache, flush as fdatasync) and the same engine; the
         root image (read-only, open in both monitors) with file.locking=off

Both monitors boot at once, launched on --measure-cpu, so that the vCPU thread (rtvmm vcpu0,
QEMU "CPU 0/KVM") starts there and never moves; once it exists every other thread (emulator,
I/O thread, io_uring workers, QEMU's main loop) is moved to --housekeeping-cpu, for both. Each round runs one fio command in rtvmm's guest, then the same in QEMU's (the other guest
idles at its prompt): four jobs one after the other (stonewall) on /dev/vdb, direct=1,
ioengine=libaio, time_based --runtime seconds each:
  randread   4 KiB random reads,  iodepth --iodepth     -> randread_iops
  randwrite  4 KiB random writes, iodepth --iodepth     -> randwrite_iops
  seqread    128 KiB sequential reads, iodepth 8        -> seqread_mbs (MB/s, 10^6 B)
  seqwrite   128 KiB sequential writes, iodepth 8       -> seqwrite_mbs
Figures per subject (rtvmm, qemu): the median of the rounds, with every round's value, min and
max, and fio's completion latency (mean and p99, us) of the median round. Ratios
"disk JOB rtvmm/qemu": median over median, spread: the least and greatest of the rounds'
paired ratios; a verdict only when the rounds separate (every rtvmm round above, or below,
every QEMU round), none otherwise.

Inside scripts/kvmbox (RTVMM_KVMBOX=1: nested KVM in QEMU TCG, every instruction emulated) the
benchmark runs for function: the document says "function_only" and the figures are not timing.

Budget on the 2-cpu development host: boot ~1 min, then rounds x 2 x 4 x runtime (default
5 x 2 x 4 x 10 s, ~7 min); --quick: 2 rounds of 2 s jobs on a 64 MiB image.
"""
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "disk"
MONITORS = ("rtvmm", "qemu")
VCPU_THREAD = {"rtvmm": r"^vcpu0$", "qemu": r"^CPU 0/KVM$"}
# (job, fio options, figure, unit, direction): the four jobs of one fio command, in order.
JOBS = [
    ("randread", ["--rw=randread", "--bs=4k"], "randread_iops", "IOPS", "read"),
    ("randwrite", ["--rw=randwrite", "--bs=4k"], "randwrite_iops", "IOPS", "write"),
    ("seqread", ["--rw=read", "--bs=128k", "--iodepth=8"], "seqread_mbs", "MB/s", "read"),
    ("seqwrite", ["--rw=write", "--bs=128k", "--iodepth=8"], "seqwrite_mbs", "MB/s", "write"),
]


def add_arguments(ap):
    """Options of this benchmark on top of benchlib's."""
    ap.add_argument("--kernel", metavar="BZIMAGE",
                    help="Linux kernel (default: $RTVMM_TEST_KERNEL, else Debian's stock kernel)")
    ap.add_argument("--initrd", help="initramfs that mounts root=/dev/vda (default: scripts/mkinitramfs.sh "
                    "with the kernel's virtio_pci, virtio_blk and ext4, cached as .cache/initramfs-disk-KEY.cpio)")
    ap.add_argument("--rootfs", help="root disk with fio (default: $RTVMM_TEST_ROOTFS_FIO, which "
                    "scripts/test.sh builds natively, else scripts/mkrootfs.sh --fio --cached)")
    ap.add_argument("--memory", default="512M", help="guest RAM (default 512M)")
    ap.add_argument("--data-mib", type=int, default=None, help="data image size (default 256, --quick 64)")
    ap.add_argument("--data-dir", default=None,
                    help="where the data images go (default: the system's temporary directory)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per monitor (default 5, --quick 2)")
    ap.add_argument("--runtime", type=int, default=None, help="seconds per fio job (default 10, --quick 2)")
    ap.add_argument("--iodepth", type=int, default=32, help="iodepth of the 4 KiB jobs (default 32)")
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU program")
    ap.add_argument("--boot-timeout", type=float, default=600, help="seconds to the guests' fio prompt")


def make_data_image(path, mib):
    """A raw image of MIB MiB filled with a pseudo-random pattern (1 MiB repeated): reads return
    data that was written, not holes. Not os.urandom: getrandom blocks until the kernel's
    entropy pool is ready, which can take minutes in a freshly booted emulated host."""
    block = random.Random(12).randbytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)


def monitor_argv(args, mon, kernel, initrd, cmdline, root, data):
    """The monitor's command line, launched on the measure cpu: its vCPU thread starts where it
    stays (a vCPU thread that moves between cpus now and then faults its guest inside
    scripts/kvmbox, README "KVM host"); place() moves every other thread away."""
    on = ["taskset", "-c", str(args.measure_cpu)]
    if mon == "rtvmm":
        rtvmm = benchlib.tool(args, "rtvmm")
        return on + [rtvmm, "run", "--kernel", kernel.bzimage, "--initrd", initrd, "--vcpus", "1",
                     "--memory", args.memory, "--cmdline", cmdline,
                     "--disk", f"path={root},readonly=on", "--disk", f"path={data}"]
    drive = "format=raw,cache=writeback,aio=io_uring"
    dev = "disable-legacy=on,num-queues=1,queue-size=256"
    return on + [args.qemu, "-name", "disk,debug-threads=on", "-enable-kvm", "-cpu", "host,-arch-capabilities",
                 "-M", "pc", "-m", args.memory, "-smp", "1", "-nographic", "-nodefaults", "-no-reboot",
                 "-serial", "stdio", "-kernel", kernel.bzimage, "-initrd", initrd, "-append", cmdline,
                 # Both monitors read the root image at once: rtvmm holds its flock, which on
                 # some file systems (9p, NFS) is a POSIX lock that QEMU's image locking sees.
                 "-drive", f"file={root},if=none,id=root,readonly=on,file.locking=off,{drive}",
                 "-device", f"virtio-blk-pci,drive=root,{dev}",
                 "-drive", f"file={data},if=none,id=data,{drive}",
                 "-device", f"virtio-blk-pci,drive=data,{dev}"]


def place(args, pid, mon):
    """vCPU thread on the measure cpu, every other thread of the monitor on the housekeeping cpu."""
    vcpu = re.compile(VCPU_THREAD[mon])
    for tid, comm in benchlib.threads(pid).items():
        try:
            benchlib.pin(tid, args.measure_cpu if vcpu.search(comm) else args.housekeeping_cpu)
        except OSError:
            pass                          # a worker that just exited


def fio_args(args, runtime):
    """fio's words for one round: global options, then the four jobs."""
    out = ["--filename=/dev/vdb", "--direct=1", "--ioengine=libaio", f"--iodepth={args.iodepth}",
           "--time_based", f"--runtime={runtime}", "--randrepeat=0", "--norandommap", "--eta=never"]
    for i, (job, opts, _fig, _unit, _dir) in enumerate(JOBS):
        out += [f"--name={job}"] + opts + (["--stonewall"] if i else [])
    return out


def parse_fio(lines):
    """{job: {"iops", "mbs", "clat_mean_us", "clat_p99_us"}} from fio's JSON in LINES, or None."""
    text = "\n".join(lines)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        doc = json.loads(text[start:end + 1])
    except ValueError:
        return None
    out = {}
    dirs = {job: d for job, _o, _f, _u, d in JOBS}
    for j in doc.get("jobs", []):
        name = j.get("jobname")
        if name not in dirs:
            continue
        side = j[dirs[name]]
        clat = side.get("clat_ns", {})
        p99 = (clat.get("percentile") or {}).get("99.000000")
        out[name] = {"iops": side["iops"], "mbs": side["bw_bytes"] / 1e6,
                     "clat_mean_us": clat.get("mean", 0) / 1e3,
                     "clat_p99_us": p99 / 1e3 if p99 is not None else None,
                     "ios": side.get("total_ios"), "errors": j.get("error", 0)}
    return out if len(out) == len(JOBS) else None


def verdict(a, b, better="higher"):
    """What the rounds A (rtvmm) and B (qemu) say: which is better when they separate, else none."""
    if min(a) > max(b):
        return "rtvmm higher in every round" + (" (better)" if better == "higher" else "")
    if max(a) < min(b):
        return "rtvmm lower in every round" + (" (worse)" if better == "higher" else "")
    return "rounds overlap: no verdict"


def run(args, new_result):
    """Boots both guests, runs the interleaved rounds, records figures and ratios."""
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    runtime = args.runtime or (2 if quick else 10)
    data_mib = args.data_mib or (64 if quick else 256)
    rtvmm = benchlib.tool(args, "rtvmm")
    config = {"rounds": rounds, "runtime_s": runtime, "data_mib": data_mib, "memory": args.memory,
              "vcpus": 1, "iodepth_4k": args.iodepth, "iodepth_128k": 8, "ioengine": "libaio",
              "measure_cpu": args.measure_cpu, "housekeeping_cpu": args.housekeeping_cpu,
              "order": "rtvmm, qemu per round"}
    res = new_result(config)
    missing = (benchlib.need("fio", "taskset") or benchlib.need_kvm()
               or benchlib.need_built(args, rtvmm))
    if missing:
        return benchlib.skip(res, missing)
    monitors = list(MONITORS)
    qmissing = benchlib.need(args.qemu)
    if qmissing:
        benchlib.skip_part(res, "qemu", qmissing)
        monitors.remove("qemu")
    in_box = os.environ.get("RTVMM_KVMBOX") == "1"
    if in_box:
        res["function_only"] = ("run inside scripts/kvmbox (nested KVM in QEMU TCG, every instruction "
                                "emulated): the figures show the benchmark works, they are not timing")
    t = time.monotonic()
    lk, why = benchlib.linux_kernel(rtvmm, args.kernel)
    if not lk:
        return benchlib.fail(res, f"no Linux kernel to boot: {why}")
    initrd = args.initrd or (benchlib.mkinitramfs("initramfs-disk", "--modules",
                                                  f"{lk.modules}:virtio_pci,virtio_blk,ext4")
                             if lk.modules else benchlib.mkinitramfs("initramfs-disk"))
    root = args.rootfs or os.environ.get("RTVMM_TEST_ROOTFS_FIO")
    if not root:
        root, why = benchlib._script("mkrootfs.sh", "--fio", "--cached")
        if not root:
            return benchlib.fail(res, f"no root disk with fio: {why}")
    benchlib.log(NAME, f"Linux: {lk.origin}; initramfs {initrd}; root disk {root} "
                       f"({time.monotonic() - t:.1f} s to find them)")
    outdir = args.outdir or tempfile.mkdtemp(prefix="disk.")
    ddir = tempfile.mkdtemp(prefix="rtvmm-disk.", dir=args.data_dir)
    cmdline = f"console=ttyS0 {benchlib.linux_cmdline(rtvmm)} panic=-1 root=/dev/vda rtvmm.test=fio"
    fargs = fio_args(args, runtime)
    fs = subprocess.run(["stat", "-f", "-c", "%T", ddir], capture_output=True, text=True).stdout.strip()
    config.update(lk.config(), initrd=os.path.abspath(initrd), rootfs=os.path.abspath(root),
                  cmdline=cmdline, fio=" ".join(fargs), data_dir=ddir, data_fs=fs)
    benchlib.note_host_load(res, NAME, [args.measure_cpu, args.housekeeping_cpu])

    cons, vals, lat = {}, {m: {j[0]: [] for j in JOBS} for m in monitors}, {m: {j[0]: [] for j in JOBS} for m in monitors}
    try:
        t = time.monotonic()
        for mon in monitors:
            make_data_image(os.path.join(ddir, f"data-{mon}.img"), data_mib)
        benchlib.log(NAME, f"data images: {len(monitors)} x {data_mib} MiB in {ddir} ({fs}), "
                           f"{time.monotonic() - t:.1f} s")
        for mon in monitors:
            data = os.path.join(ddir, f"data-{mon}.img")
            argv = monitor_argv(args, mon, lk, initrd, cmdline, root, data)
            config[f"{mon}_command"] = argv
            benchlib.log(NAME, f"{mon}: {' '.join(argv)}")
            cons[mon] = benchlib.Console(argv, name=mon, stdin=subprocess.PIPE,
                                         logfile=os.path.join(outdir, f"console-{mon}.log"))
            cons[mon].ready = None
        # Both boot at once: each console is read while waiting (a console nobody reads stalls
        # its guest), each vCPU thread pinned as soon as it exists.
        placed, deadline = set(), time.monotonic() + args.boot_timeout
        while len(placed) < len(cons) or any(not c.ready for c in cons.values()):
            if time.monotonic() > deadline:
                late = [m for m, c in cons.items() if not c.ready]
                return benchlib.fail(res, f"{', '.join(late)}: the guest did not reach its fio prompt in "
                                          f"{args.boot_timeout:.0f} s: " + " | ".join(cons[late[0]].tail(8)))
            for mon, con in cons.items():
                if mon not in placed and benchlib.find_threads(con.pid, VCPU_THREAD[mon], 0):
                    place(args, con.pid, mon)
                    placed.add(mon)
                    benchlib.log(NAME, f"{mon}: vCPU thread up {time.monotonic() - con.t0:.1f} s after launch")
                if con.ready:
                    continue
                if con.expect(r"RTVMM-FIO-READY", 0.5):
                    con.ready = time.monotonic() - con.t0
                    disk = [l for l in con.lines if "RTVMM-ROOTFS-OK" in l]
                    benchlib.log(NAME, f"{mon}: guest ready after {con.ready:.1f} s")
                    res["notes"].append(f"{mon}: the guest reached its fio prompt {con.ready:.1f} s after "
                                        "launch" + (f" ({disk[0].strip()})" if disk else ""))
                elif con.proc.poll() is not None:
                    return benchlib.fail(res, f"{mon} exited with status {con.proc.returncode} before its "
                                              "guest's fio prompt: " + " | ".join(con.tail(8)))
        for r in range(rounds):
            for mon in monitors:
                con = cons[mon]
                place(args, con.pid, mon)
                tag = f"{mon}-{r + 1}"
                t = time.monotonic()
                status, lines = benchlib.guest_command(con, "RTVMM-FIO", tag, fargs,
                                                       len(JOBS) * (runtime + 60) + 60)
                got = parse_fio(lines)
                if status != 0 or got is None:
                    raise RuntimeError(f"fio in the {mon} guest (round {r + 1}) exited {status}: "
                                       + " | ".join(lines[-6:]))
                for job, _o, _f, unit, _d in JOBS:
                    g = got[job]
                    if g["errors"] or not g["ios"]:
                        raise RuntimeError(f"fio {job} in the {mon} guest: error {g['errors']}, {g['ios']} I/Os")
                    vals[mon][job].append(g["iops"] if unit == "IOPS" else g["mbs"])
                    lat[mon][job].append(g)
                benchlib.log(NAME, f"round {r + 1}/{rounds} {mon}: " + ", ".join(
                    f"{job} {got[job]['iops']:.0f} IOPS {got[job]['mbs']:.1f} MB/s" for job, *_ in JOBS)
                    + f" ({time.monotonic() - t:.1f} s)")
        for mon, con in cons.items():
            for tid, comm in sorted(benchlib.threads(con.pid).items()):
                try:
                    cpus, pol, prio = benchlib.thread_placement(tid)
                except OSError:
                    continue
                benchlib.add_pinning(res, mon, comm, cpus, pol, prio)
            con.proc.stdin.write(b"quit\n")
            con.proc.stdin.flush()
        for mon, con in cons.items():
            res["notes"].append(f"{mon} exit status {con.wait(120)} after 'quit' (guest poweroff -f)")
    finally:
        for con in cons.values():
            con.close()
        for f in os.listdir(ddir):
            os.unlink(os.path.join(ddir, f))
        os.rmdir(ddir)

    figs = {}
    for job, _o, fig, unit, _d in JOBS:
        for mon in monitors:
            v = vals[mon][job]
            med = statistics.median(v)
            mid = min(range(len(v)), key=lambda i: abs(v[i] - med))
            figs[(mon, job)] = benchlib.add_figure(
                res, fig, mon, round(med, 3), unit, job, n=len(v), runs=[round(x, 3) for x in v],
                min=round(min(v), 3), max=round(max(v), 3),
                clat_mean_us=round(lat[mon][job][mid]["clat_mean_us"], 2),
                clat_p99_us=lat[mon][job][mid]["clat_p99_us"])
        if "qemu" in monitors:
            a, b = vals["rtvmm"][job], vals["qemu"][job]
            paired = [x / y for x, y in zip(a, b) if y]
            r = benchlib.add_ratio(res, f"disk {job} rtvmm/qemu", figs[("rtvmm", job)]["value"],
                                   figs[("qemu", job)]["value"], better="higher")
            r["spread"] = [round(min(paired), 4), round(max(paired), 4)] if paired else None
            r["verdict"] = ("not timing (KVM box)" if in_box else verdict(a, b))
    res["notes"] += [
        f"each round: one fio command per guest, rtvmm's then QEMU's (the other guest idles at its "
        f"prompt); {rounds} rounds; jobs in order randread, randwrite, seqread, seqwrite, "
        f"{runtime} s each, direct=1 on /dev/vdb",
        "data images: one per monitor, made alike, on a "
        f"{fs} file system in {ddir} (removed after the run); the host page cache holds them "
        "(both monitors buffered: rtvmm io_uring, QEMU cache=writeback,aio=io_uring)",
        "placement: each monitor launched with taskset on the measure cpu, where its vCPU thread "
        "stays; every other thread moved to the housekeeping cpu once the vCPU exists and again "
        "before every round; "
        "the placement table is read back after the last round (an io_uring worker that io-wq "
        "started during a round runs on the cpus io-wq gave it: QEMU sets no worker affinity)",
        "figures: median of the rounds (runs, min, max: every round); clat: fio's completion latency "
        "of the round nearest the median; ratios: median/median, spread: the rounds' paired ratios",
    ]
    if in_box:
        res["notes"].insert(0, "FUNCTION ONLY: " + res["function_only"])
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
