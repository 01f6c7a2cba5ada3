#!/usr/bin/env python3
"""PVP (port -> vhost -> guest -> vhost -> port): RFC 2544 NDR/PDR and round-trip latency
through a guest, with rtvmm and with QEMU as the monitor, in the same run.

  source  rtvmm-dataplane gen, pinned to --housekeeping-cpu, owns a vhost-user server port
          (net_vhost); it sends to the guest's MAC and counts its own frames coming back
  guest   the bare-metal bench guest (bench/guest, `test=net net=echo`): virtio-net driver,
          poll loop at CPL3, reflects every frame addressed to it with the MACs swapped; its
          vCPU thread pinned to --measure-cpu
  rtvmm   build/rtvmm run --kernel rtvmm-guest.elf --test-device --net socket=SOCK,mac=MAC (vhost-user client)
  qemu    qemu-system-x86_64, the same ELF through its PVH entry, guest RAM a shared memfd,
          -chardev socket (client) + -netdev vhost-user + virtio-net-pci (modern only)

A second forwarder, the reference VNF (--forwarders; "linux-testpmd"):
  guest   Debian's stock kernel, the initramfs with virtio_pci/virtio_net/virtio_blk/ext4 and
          the root disk of scripts/mkrootfs.sh --vnf (guest/linux/init rtvmm.test=vnf: the
          virtio-net function bound to uio_pci_generic, dpdk-testpmd --forward-mode=macswap or
          io on lcores 0 (main) and 1 (forwarding)); 2 vCPUs, --vnf-memory
  rtvmm   rtvmm run --kernel --initrd --disk path=ROOT,readonly=on --net socket=SOCK,mac=MAC
  qemu    the same kernel, initramfs and disk (-drive if=virtio,readonly=on), guest RAM a shared
          memfd, the same vhost-user netdev
  vCPU 1 (testpmd's forwarding lcore) is pinned to --measure-cpu, vCPU 0 (testpmd's main lcore,
  the guest kernel) to --housekeeping-cpu, for both monitors. The generator is the same one,
  started before the guest; while the guest boots its thread runs at nice 19 so that it does
  not starve vCPU 0 on the shared cpu, then at nice 0 again for the trials. Rounds alternate
  the monitors (--vnf-rounds; round 2 starts with qemu); each round boots the guest afresh.
  Figures: the median over rounds with every round's value, the time from the monitor's start
  to testpmd forwarding (vnf_ready_s), testpmd's own RX/TX counts, and ratios rtvmm/qemu per
  frame size with their spread (the ratio of each round's pair: min..max). Every figure,
  series and histogram of pvp carries "forwarder": bare-metal or linux-testpmd.

A third part, the switched PVP (--switches): the classic PVP through a virtual switch, the
rtvmm bare-metal guest again, with the switch between it and the source:
  source  the same generator, on a virtio_user port (a vhost-user frontend) to switch port 0
  switch  one of rtvmm-dataplane (--pair 0:1), dpdk-testpmd (io, --port-topology=paired) or
          OVS-DPDK (dpdkvhostuser ports sw0, sw1; flows in_port=sw0 -> sw1 and back), built
          as bench/loopback.py builds its DUTs, its poll thread on --switch-cpu (default
          --measure-cpu), its other threads on --housekeeping-cpu
  guest   rtvmm's NIC connects to switch port 1 (a vhost-user server), vCPU on --measure-cpu
The three switches run in turn with the same source, guest, cpus and sizes; figures carry
"switch" and the subject "rtvmm via SWITCH", ratios "pvp switched NDR SIZE
rtvmm-dataplane/PEER" (goal >= 1). On a two-cpu host the switch's poll thread shares a cpu
(the guest's by default): each figure is then the two loops' time slices, the same for every
switch, and the note says so.

Under scripts/kvmbox (RTVMM_KVMBOX=1: nested KVM in QEMU TCG, every instruction emulated) the
benchmark runs for function: the document says the figures are not timing.

Both monitors start under taskset --housekeeping-cpu (their emulator threads stay there); the
vCPU thread is moved to --measure-cpu as soon as it exists, with the same policy for both
(SCHED_OTHER, or SCHED_FIFO with --vcpu-fifo). The monitors only set the device up: the data
path is the generator's vhost rings in guest memory, the guest polls, nothing exits.
The real-time knob disable_exits (docs/rt-knobs.md) is no pvp scenario for that reason: a
forwarding guest that polls never halts, so with HLT exits disabled or not the same
instructions run; its effect is on a guest that sleeps between events, which timer_latency
measures (placement rt-hlt).

Per monitor, in one generator process (the guest stays connected): a probe until the guest
answers, a warm-up, then per frame size (64, 512, 1518, imix = 7:4:1 of 64/570/1518; sizes
count the FCS) a max-rate trial (as fast as the guest's rx ring takes frames; max_mpps = what
came back), the NDR search (no loss) and the PDR search (< --pdr-loss %), then for 64 B the
latency trials at 10/50/90 % of the NDR (of the PDR when no rate was loss-free, as FD.io
CSIT does; the figure's `base` says which): round-trip time dataplane -> guest -> dataplane per
frame, 1 us histogram buckets to 10 ms plus overflow (exact min/avg/max).

Figures: ndr_mpps, pdr_mpps, max_mpps per subject (rtvmm, qemu) and size (extras gbps =
Mpps x average frame x 8, FCS included, no preamble; trials; loss_pct), series pvp_ndr and
pvp_pdr, ratios "pvp NDR SIZE rtvmm/qemu" (goal >= 1), pvp_rtt (p99 us) per load with
histograms. A monitor that cannot run the guest here is reported as skipped with its reason,
never with a number.
"""
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import loopback  # noqa: E402  (its DUT classes are the switches of the switched PVP)

NAME = "pvp"
GUEST_MAC = "52:54:00:00:00:01"
MONITORS = ("rtvmm", "qemu")
FORWARDERS = ("bare-metal", "linux-testpmd")
SWITCHES = {"rtvmm-dataplane": loopback.Dataplane, "testpmd": loopback.Testpmd, "ovs-dpdk": loopback.Ovs}
# Each switch's two ports forward to each other: 0 (the source's) <-> 1 (the guest's).
SWITCH_KW = {"rtvmm-dataplane": {"fwd": ["--pair", "0:1"]}, "testpmd": {"topology": "paired"},
             "ovs-dpdk": {"flows": ["in_port=lb0,actions=output:lb1", "in_port=lb1,actions=output:lb0"]}}
VNF = "linux-testpmd"
VNF_FAIL = r"RTVMM-VNF-FAIL|RTVMM-ROOT-FAIL|Kernel panic"


def add_arguments(ap):
    ap.add_argument("--sizes", default=None, help="frame sizes with FCS, or imix (default 64,512,1518,imix; "
                    "quick 64,imix)")
    ap.add_argument("--trial-s", type=float, default=None, help="trial length (default 1; quick 0.3)")
    ap.add_argument("--warmup-s", type=float, default=None, help="warm-up trial (default 1; quick 0.3)")
    ap.add_argument("--iterations", type=int, default=None, help="trials per search at most (default 7; quick 4)")
    ap.add_argument("--resolution", type=float, default=1.0, help="search resolution, %% of the top (default 1)")
    ap.add_argument("--pdr-loss", type=float, default=0.5, help="loss a PDR trial may have, %% (default 0.5)")
    ap.add_argument("--latency", default="10,50,90", help="latency trials at these %% of the 64 B NDR")
    ap.add_argument("--latency-s", type=float, default=None, help="latency trial length (default 2; quick 0.5)")
    ap.add_argument("--drain-ms", type=int, default=200, help="wait for frames in flight after a trial")
    ap.add_argument("--monitors", default="rtvmm,qemu", help="which monitors (default rtvmm,qemu)")
    ap.add_argument("--vcpu-fifo", type=int, default=0, metavar="PRIO",
                    help="run the vCPU thread SCHED_FIFO at PRIO, for both monitors (default: SCHED_OTHER)")
    ap.add_argument("--guest", default=None, help="bench guest ELF (default BUILD/bench/guest/rtvmm-guest.elf)")
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU program")
    ap.add_argument("--memory", default="64M", help="guest RAM (default 64M)")
    ap.add_argument("--forwarders", default=",".join(FORWARDERS),
                    help="which guests forward: bare-metal, linux-testpmd (default both)")
    ap.add_argument("--vnf-sizes", default=None, help="frame sizes for the VNF (default: --sizes; quick 64)")
    ap.add_argument("--vnf-rounds", type=int, default=None,
                    help="VNF rounds per monitor, interleaved (default 3; quick 1)")
    ap.add_argument("--vnf-fwd", default="macswap", choices=("macswap", "io"),
                    help="testpmd's forwarding mode in the VNF (default macswap)")
    ap.add_argument("--vnf-memory", default="1G", help="VNF guest RAM (default 1G; 128 hugepages of 2M in it)")
    ap.add_argument("--vnf-ready-s", type=float, default=None,
                    help="limit for the VNF guest to boot and testpmd to forward (default 300; 1500 in "
                    "scripts/kvmbox)")
    ap.add_argument("--kernel", default=None, help="VNF guest kernel (default: benchlib.linux_kernel)")
    ap.add_argument("--rootfs", default=None, help="VNF root disk (default: scripts/mkrootfs.sh --vnf --cached)")
    ap.add_argument("--switches", default=",".join(SWITCHES),
                    help="switched PVP through these switches (default " + ",".join(SWITCHES) + "; none: no "
                    "switched PVP)")
    ap.add_argument("--switch-cpu", type=int, default=None,
                    help="the switch's poll thread (default --measure-cpu)")
    ap.add_argument("--testpmd", default="dpdk-testpmd", help="testpmd program (a switch)")
    ap.add_argument("--ovs-vswitchd", default=loopback.OVS_VSWITCHD, help="Open vSwitch's DPDK daemon (a switch)")


def guest_cmdline():
    # echo until killed: no frame count, never idle out; first frame may take a while (QEMU's BIOS)
    return f"test=net net=echo count=0 idle_ms=0 wait_ms=180000 limit_ms=36000000 expect_mac={GUEST_MAC}"


def monitor_argv(args, mon, guest, sock):
    hk = ["taskset", "-c", str(args.housekeeping_cpu)]
    if mon == "rtvmm":
        return hk + [benchlib.tool(args, "rtvmm"), "run", "--kernel", guest, "--test-device", "--memory", args.memory,
                     "--vcpus", "1", "--net", f"socket={sock},mac={GUEST_MAC}", "--cmdline", guest_cmdline()]
    return hk + [args.qemu, "-name", "pvp,debug-threads=on", "-enable-kvm", "-cpu", "host,-arch-capabilities",
                 "-M", "pc", "-m", args.memory,
                 "-smp", "1", "-nographic", "-nodefaults", "-serial", "stdio", "-kernel", guest,
                 "-append", guest_cmdline(),
                 "-object", f"memory-backend-memfd,id=mem,size={args.memory},share=on", "-numa", "node,memdev=mem",
                 "-chardev", f"socket,id=c0,path={sock}", "-netdev", "vhost-user,id=n0,chardev=c0",
                 "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},disable-legacy=on,romfile=",
                 "-device", "isa-debug-exit,iobase=0x501,iosize=1"]


VCPU_THREAD = {"rtvmm": r"^vcpu0$", "qemu": r"^CPU 0/KVM$"}
VCPU_INDEX = {"rtvmm": r"^vcpu(\d+)$", "qemu": r"^CPU (\d+)/KVM$"}


def vnf_cmdline(args, v):
    return (f"console=ttyS0 panic=-1 root=/dev/vda rtvmm.test=vnf rtvmm.vnf.fwd={args.vnf_fwd} "
            f"rtvmm.vnf.hugepages=128 {v['extra_cmdline']}").strip()


def vnf_argv(args, mon, v, sock):
    """The VNF guest under MON: the same kernel, initramfs, root disk and NIC for both."""
    hk = ["taskset", "-c", str(args.housekeeping_cpu)]
    if mon == "rtvmm":
        return hk + [benchlib.tool(args, "rtvmm"), "run", "--kernel", v["kernel"], "--initrd", v["initrd"],
                     "--vcpus", "2", "--memory", args.vnf_memory, "--cmdline", vnf_cmdline(args, v),
                     "--disk", f"path={v['rootfs']},readonly=on", "--net", f"socket={sock},mac={GUEST_MAC}"]
    return hk + [args.qemu, "-name", "pvp-vnf,debug-threads=on", "-enable-kvm", "-cpu", "host,-arch-capabilities",
                 "-M", "pc", "-m", args.vnf_memory, "-smp", "2", "-nographic", "-nodefaults", "-no-reboot",
                 "-serial", "stdio", "-kernel", v["kernel"], "-initrd", v["initrd"], "-append", vnf_cmdline(args, v),
                 "-drive", f"file={v['rootfs']},if=virtio,format=raw,readonly=on",
                 "-object", f"memory-backend-memfd,id=mem,size={args.vnf_memory},share=on",
                 "-numa", "node,memdev=mem",
                 "-chardev", f"socket,id=c0,path={sock}", "-netdev", "vhost-user,id=n0,chardev=c0",
                 "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},disable-legacy=on,romfile="]


def generator(args, p, sock, out, tag, link_timeout, kind="vhost"):
    """The generator's argv: a vhost-user server port at SOCK (KIND virtio_user: a frontend
    connecting to SOCK), results to OUT."""
    argv = ["taskset", "-c", str(args.housekeeping_cpu), benchlib.tool(args, "dataplane/rtvmm-dataplane"),
            "gen", "--port", f"{kind}:{sock}", "--lcore", str(args.housekeeping_cpu), "--no-huge",
            "--file-prefix", f"rtvmm-pvp{os.getpid()}{tag}", "--eal", "--log-level=lib.vhost.config:warning",
            "--dst-mac", GUEST_MAC, "--sizes", ",".join(p["sizes"]), "--trial-s", str(p["trial_s"]),
            "--warmup-s", str(p["warmup_s"]), "--iterations", str(p["iterations"]),
            "--resolution", str(args.resolution), "--pdr-loss", str(args.pdr_loss),
            "--drain-ms", str(args.drain_ms), "--link-timeout", str(link_timeout), "--json", out]
    if p["latency"] and "64" in p["sizes"]:
        argv += ["--latency", args.latency, "--latency-size", "64", "--latency-s", str(p["latency_s"])]
    return argv


def trials_budget(args, p):
    """Seconds the generator's trials may take once the guest answered."""
    return 60 + len(p["sizes"]) * (2 * p["iterations"] + 2) * (p["trial_s"] + args.drain_ms / 1000 + 0.3)


def gen_result(gen, out, budget, mon, vm):
    """Waits for the generator; returns its document or raises with why."""
    status = gen.wait(budget)
    if not os.path.exists(out):
        raise RuntimeError(f"the generator failed (status {status}): " + " | ".join(gen.tail(5)))
    with open(out) as f:
        doc = json.load(f)
    if doc.get("error") or status != 0:
        raise RuntimeError(f"the generator stopped (status {status}): {doc.get('error')}; "
                           f"{mon}: " + " | ".join(vm.tail(4)))
    alive = vm.proc.poll() is None
    doc["monitor_alive_at_end"] = alive
    if not alive:
        raise RuntimeError(f"{mon} exited during the trials (status {vm.proc.returncode}): "
                           + " | ".join(vm.tail(6)))
    return doc


def run_monitor(args, res, mon, p, tmp, switch=None):
    """One monitor: generator + guest, or with SWITCH (a started loopback DUT with two ports)
    the generator on its port 0 and the guest on its port 1. Returns the generator's document,
    or raises with why."""
    who = f"{mon} via {switch.subject}" if switch else mon
    tag = who.replace(" ", "-")
    sock = switch.socks[1] if switch else os.path.join(tmp, f"pvp-{mon}.sock")
    out = os.path.join(tmp, f"gen-{tag}.json")
    logdir = args.outdir or tmp
    gen_argv = (generator(args, p, switch.socks[0], out, "sw", 180, kind="virtio_user") if switch
                else generator(args, p, sock, out, "", 180))
    gen = benchlib.Console(gen_argv, f"gen-{tag}", logfile=os.path.join(logdir, f"pvp-{tag}-gen.log"))
    vm = None
    try:
        if not gen.expect(r"gen: ready", 30):
            raise RuntimeError("the generator did not start: " + " | ".join(gen.tail(5)))
        benchlib.wait_listening(sock, 10)
        vm = benchlib.Console(monitor_argv(args, mon, p["guest"], sock), mon,
                              logfile=os.path.join(logdir, f"pvp-{tag}-console.log"))
        vcpu = benchlib.find_threads(vm.pid, VCPU_THREAD[mon], timeout=30)
        if not vcpu:
            raise RuntimeError(f"{mon}: no vCPU thread appeared: " + " | ".join(vm.tail(5)))
        policy = "SCHED_FIFO" if args.vcpu_fifo else "SCHED_OTHER"
        for tid in vcpu:
            benchlib.pin(tid, args.measure_cpu)
            benchlib.set_policy(tid, policy, args.vcpu_fifo)
        # The guest answers the generator's probe once its echo loop runs; then the trials.
        if not gen.expect(r"gen: the peer answered", 180):
            raise RuntimeError(f"the guest under {mon} never answered: generator: "
                               + " | ".join(gen.tail(3)) + f"; {mon}: " + " | ".join(vm.tail(6)))
        # threads created after the move (KVM's nx-lpage worker) too
        pin_others(vm.pid, vcpu, args.housekeeping_cpu)
        record_placement(res, who, vm,
                         lambda tid, comm: "vCPU 0" if tid in vcpu else f"emulator thread {comm}", gen)
        if switch:
            for what, tid in switch.threads():
                cpus, pol, prio = benchlib.thread_placement(tid)
                benchlib.add_pinning(res, f"switch {switch.subject}", what, cpus, pol, prio)
        return gen_result(gen, out, trials_budget(args, p), who, vm)
    finally:
        stop_round(vm, gen)


def run_switched(args, res, p, switches, tmp):
    """The switched PVP: for each switch of SWITCHES, the switch with two ports, then rtvmm's
    guest and the generator through it. Returns ({switch: generator document}, {switch: why
    it was skipped})."""
    docs, skipped = {}, {}
    sargs = copy.copy(args)
    sargs.measure_cpu = args.measure_cpu if args.switch_cpu is None else args.switch_cpu
    logdir = args.outdir or tmp
    need_ovs = "ovs-dpdk" in switches
    with loopback.Hugepages(loopback.OVS_SOCKET_MEM_MB // 2 if need_ovs else 0):
        for name in switches:
            socks = [os.path.join(tmp, f"sw{i}.sock") for i in (0, 1)]
            for s_ in socks:
                if os.path.exists(s_):
                    os.unlink(s_)
            benchlib.log(NAME, f"switched: rtvmm via {name} ({', '.join(p['sizes'])} B)")
            try:
                sw = SWITCHES[name](sargs, tmp, socks, os.path.join(logdir, f"pvp-switch-{name}.log"),
                                    **SWITCH_KW[name])
            except RuntimeError as e:
                skipped[name] = f"the switch did not start: {e}"
                benchlib.log(NAME, f"{name}: skipped: {e}")
                continue
            try:
                for s_ in sw.socks:
                    benchlib.wait_listening(s_, 20)
                docs[name] = run_monitor(args, res, "rtvmm", p, tmp, switch=sw)
            except RuntimeError as e:
                skipped[name] = str(e)
                benchlib.log(NAME, f"rtvmm via {name}: skipped: {e}")
            finally:
                sw.stop()
    return docs, skipped


def available_switches(args, res, wanted):
    """The switches of WANTED this host can run; the others are recorded as skipped in RES."""
    out = []
    for name in wanted:
        missing = (benchlib.need(args.testpmd) if name == "testpmd" else
                   (benchlib.need(args.ovs_vswitchd, "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl")
                    or benchlib.need_root("OVS-DPDK needs hugepages, which only root reserves"))
                   if name == "ovs-dpdk" else None)
        if missing:
            benchlib.skip_part(res, f"rtvmm via {name}", missing)
        else:
            out.append(name)
    return out


def set_nice(pid, nice):
    """Sets the niceness of every thread of process PID."""
    for tid in benchlib.threads(pid):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            pass


def pin_others(pid, keep, cpu):
    """Pins every thread of process PID but those in KEEP to CPU (threads that went away: left)."""
    for tid in benchlib.threads(pid):
        if tid not in keep:
            try:
                benchlib.pin(tid, cpu)
            except OSError:
                pass


def record_placement(res, who, vm, what, gen):
    """Records where every thread of the monitor VM and the generator GEN's poll lcore run:
    WHAT(tid, comm) names a monitor thread, WHO the monitor in the pinning table."""
    for tid, comm in sorted(benchlib.threads(vm.pid).items()):
        cpus, pol, prio = benchlib.thread_placement(tid)
        benchlib.add_pinning(res, who, what(tid, comm), cpus, pol, prio)
    for tid in benchlib.find_threads(gen.pid, r"^dp-gen$", timeout=1):
        cpus, pol, prio = benchlib.thread_placement(tid)
        benchlib.add_pinning(res, f"source for {who}", "generator poll lcore (dp-gen)", cpus, pol, prio)


def stop_round(vm, gen):
    """Stops a round's monitor (if it started) and generator."""
    if vm:
        vm.stop(timeout=5)
        vm.close()
    gen.stop(timeout=10)
    gen.close()


def run_vnf_round(args, res, mon, v, rnd, tmp):
    """One round of the VNF under MON: generator, guest boot, testpmd, trials, testpmd's counts.
    Returns the generator's document with "vnf_ready_s" and "testpmd" added, or raises."""
    tag = f"{mon}-vnf{rnd}"
    sock = os.path.join(tmp, f"pvp-{tag}.sock")
    out = os.path.join(tmp, f"gen-{tag}.json")
    logdir = args.outdir or tmp
    gen = benchlib.Console(generator(args, v, sock, out, f"v{rnd}", v["ready_s"] + 180), f"gen-{tag}",
                           logfile=os.path.join(logdir, f"pvp-{tag}-gen.log"))
    vm = None
    try:
        if not gen.expect(r"gen: ready", 30):
            raise RuntimeError("the generator did not start: " + " | ".join(gen.tail(5)))
        benchlib.wait_listening(sock, 10)
        set_nice(gen.pid, 19)        # the guest boots on vCPU 0, which shares the generator's cpu
        t0 = time.monotonic()
        vm = benchlib.Console(vnf_argv(args, mon, v, sock), mon, stdin=subprocess.PIPE,
                              logfile=os.path.join(logdir, f"pvp-{tag}-console.log"))
        found = {}
        deadline = time.monotonic() + 30
        while len(found) < 2 and time.monotonic() < deadline:
            found = benchlib.find_threads(vm.pid, VCPU_INDEX[mon], timeout=1)
        if len(found) < 2:
            raise RuntimeError(f"{mon}: {len(found)} of 2 vCPU threads appeared: " + " | ".join(vm.tail(5)))
        vcpu = {tid: int(re.match(VCPU_INDEX[mon], comm).group(1)) for tid, comm in found.items()}
        for tid, i in vcpu.items():
            benchlib.pin(tid, args.measure_cpu if i == 1 else args.housekeeping_cpu)
        m = vm.expect(r"RTVMM-VNF-READY|" + VNF_FAIL, v["ready_s"])
        if not m or not m.group(0).startswith("RTVMM-VNF-READY"):
            raise RuntimeError(f"testpmd under {mon} is not forwarding "
                               + (f"({m.group(0)})" if m else f"after {v['ready_s']:.0f} s") + ": "
                               + " | ".join(vm.tail(8)))
        ready_s = time.monotonic() - t0
        set_nice(gen.pid, 0)
        benchlib.log(NAME, f"{mon} round {rnd}: testpmd forwards {ready_s:.1f} s after the monitor started")
        if not gen.expect(r"gen: the peer answered", 120):
            raise RuntimeError(f"testpmd under {mon} never answered: generator: "
                               + " | ".join(gen.tail(3)) + f"; {mon}: " + " | ".join(vm.tail(6)))
        pin_others(vm.pid, vcpu, args.housekeeping_cpu)
        if rnd == 0:
            record_placement(res, f"{mon} ({VNF})", vm, lambda tid, comm: (
                f"vCPU {vcpu[tid]} (testpmd's {'forwarding' if vcpu[tid] == 1 else 'main'} lcore)"
                if tid in vcpu else f"emulator thread {comm}"), gen)
        doc = gen_result(gen, out, trials_budget(args, v), mon, vm)
        doc["vnf_ready_s"] = ready_s
        # testpmd's own counts: "stop" on the console ends it, the init prints them.
        try:
            vm.proc.stdin.write(b"stop\n")
            vm.proc.stdin.flush()
        except OSError:
            pass
        st = vm.expect(r"RTVMM-VNF-STATS .*", v["stats_s"])
        doc["testpmd"] = ({k: int(x) for k, x in re.findall(r"(\w+)=(\d+)", st.group(0))} if st else None)
        return doc
    finally:
        stop_round(vm, gen)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def merged_latency(ts):
    """One latency figure from the same trial of several rounds: exact min/max/avg, percentiles
    from the summed histograms. Returns (stats, {bucket: count})."""
    if len(ts) == 1:
        return ts[0]["latency_us"], ts[0]["histogram"]
    buckets = {}
    for t in ts:
        h = t["histogram"]
        for lo, n in (h.items() if isinstance(h, dict) else h):
            buckets[float(lo)] = buckets.get(float(lo), 0) + int(n)
    lats = [t["latency_us"] for t in ts]
    over = sum(x["overflow"] for x in lats)
    st = benchlib.hist_stats(buckets, 1, over)
    count = sum(x["count"] for x in lats)
    st.update(min=min(x["min"] for x in lats), max=max(x["max"] for x in lats), count=count,
              avg=sum(x["avg"] * x["count"] for x in lats) / count if count else None)
    return st, buckets


def figures(res, mon, docs, sizes, fwd):
    """Adds NDR/PDR/max figures, series and latency of one monitor and forwarder FWD from its
    generator documents DOCS (one per round: the figure is the median, "rounds" every round's
    value); returns ({size: ndr_mpps}, {size: pdr_mpps}, {"ndr"|"max": {size: [Mpps per round]}})."""
    ndr, pdr, base, per_round = {}, {}, {}, {"ndr": {}, "max": {}}
    tag = {"forwarder": fwd}
    many = len(docs) > 1
    for s in sizes:
        rs = [next((r for r in d["results"] if r["size"] == s), None) for d in docs]
        if any(r is None for r in rs):
            continue
        avg = rs[0]["avg_frame"]

        def gbps(mpps):
            return mpps * avg * 8 / 1000 if mpps is not None else None

        def each(f):
            return {"rounds": [f(r) for r in rs]} if many else {}

        ms = [r.get("max", {}) for r in rs]
        per_round["max"][s] = [m.get("rx_pps", 0) / 1e6 for m in ms]
        mx = median(per_round["max"][s])
        m0 = ms[0]
        benchlib.add_figure(res, "max_mpps", mon, mx, "Mpps", scenario=s, gbps=gbps(mx),
                            offered_mpps=m0.get("offered_pps", 0) / 1e6, loss_pct=m0.get("loss_pct"),
                            avg_frame=avg, trials=len(rs), **tag, **each(lambda r: r.get("max", {}).get("rx_pps", 0) / 1e6))
        per_round["ndr"][s] = [r.get("ndr_pps", 0) / 1e6 for r in rs]
        ndr[s] = median(per_round["ndr"][s])
        r0, d0 = rs[0], docs[0]
        trials = d0["trials"]
        n = sum(1 for t in trials if t["size"] == s and t["kind"] in ("max", "search"))
        lost_at_ndr = [t["loss_pct"] for t in trials if t["size"] == s and t["kind"] == "search"
                       and t["requested_pps"] == r0.get("ndr_pps")]
        extra = {} if many else dict(
            trials=r0.get("ndr_trials"), loss_pct=lost_at_ndr[0] if lost_at_ndr else None,
            range_mpps=[x / 1e6 for x in r0.get("ndr_range_pps", [])], at_top=r0.get("ndr_at_top"),
            search_top_mpps=r0.get("search_top_pps", 0) / 1e6, trials_all=n)
        benchlib.add_figure(res, "ndr_mpps", mon, ndr[s], "Mpps", scenario=s, gbps=gbps(ndr[s]),
                            generator_limited=any(r.get("ndr_generator_limited") for r in rs),
                            avg_frame=avg, **extra, **tag, **each(lambda r: r.get("ndr_pps", 0) / 1e6))
        pdr[s] = median([r.get("pdr_pps", 0) / 1e6 for r in rs])
        extra = {} if many else dict(trials=r0.get("pdr_trials"), loss_pct=r0.get("pdr_loss_pct"),
                                     range_mpps=[x / 1e6 for x in r0.get("pdr_range_pps", [])])
        benchlib.add_figure(res, "pdr_mpps", mon, pdr[s], "Mpps", scenario=s, gbps=gbps(pdr[s]),
                            loss_threshold_pct=d0["config"]["pdr_loss_pct"], avg_frame=avg, **extra, **tag,
                            **each(lambda r: r.get("pdr_pps", 0) / 1e6))
        who = mon if fwd == "bare-metal" else f"{mon} ({fwd})"
        for r in rs:
            if "latency_skipped" in r:
                res["notes"].append(f"{who}: no latency trials at {s} B: {r['latency_skipped']}")
                break
        if any(r.get("latency_base") == "pdr" for r in rs):
            res["notes"].append(f"{who}: no loss-free rate at {s} B, so the latency loads are % of the PDR")
        base[s] = r0.get("latency_base")
    order = [s for s in sizes if s in ndr]
    benchlib.add_series(res, "pvp_ndr", "frame size", "Mpps", [[s, ndr[s]] for s in order], mon)
    res["series"][-1].update(tag)
    benchlib.add_series(res, "pvp_pdr", "frame size", "Mpps", [[s, pdr[s]] for s in order], mon)
    res["series"][-1].update(tag)
    lat = {}
    for d in docs:
        for t in d["trials"]:
            if t["kind"] == "latency":
                lat.setdefault((t["size"], f"{t['load_pct']:g}%"), []).append(t)
    for (size, load), ts in lat.items():
        st, hist = merged_latency(ts)
        t = ts[0]
        benchlib.add_figure(res, "pvp_rtt", mon, st["p99"], "us", scenario=load, base=base.get(size),
                            min=st["min"], avg=st["avg"], p50=st["p50"], p99=st["p99"], p99_9=st["p99_9"],
                            max=st["max"], count=st["count"], overflow=st["overflow"],
                            offered_mpps=t["offered_pps"] / 1e6, loss_pct=t["loss_pct"], size=size, **tag,
                            **({"rounds": len(ts)} if many else {}))
        benchlib.add_histogram(res, "pvp_rtt", mon, load, "us", 1, hist, st["overflow"])
        res["histograms"][-1].update(tag)
    return ndr, pdr, per_round


def vnf_setup(args, q):
    """The VNF's parameters: kernel, initramfs, root disk, trial settings. Returns (v, None) or
    (None, a Missing or a reason in words)."""
    rtvmm = benchlib.tool(args, "rtvmm")
    box = benchlib.emulated_host()
    v = {"sizes": [s.strip() for s in (args.vnf_sizes or ("64" if q else args.sizes or "64,512,1518,imix"))
                   .split(",")],
         "trial_s": args.trial_s or (0.3 if q else 1.0),
         "warmup_s": args.warmup_s if args.warmup_s is not None else (0.3 if q else 1.0),
         "iterations": args.iterations or (3 if q else 7),
         "latency_s": args.latency_s or (0.5 if q else 2.0),
         "latency": [float(x) for x in args.latency.split(",") if x.strip()],
         "rounds": args.vnf_rounds or (1 if q else 3),
         "ready_s": args.vnf_ready_s or (1500.0 if box else 300.0),
         "stats_s": 300.0 if box else 60.0,
         "fwd": args.vnf_fwd, "memory": args.vnf_memory}
    missing = benchlib.need("dpdk-testpmd")
    if missing:
        return None, missing
    kernel, why = benchlib.linux_kernel(rtvmm, args.kernel)
    if not kernel:
        return None, why
    if not kernel.modules:
        return None, f"{kernel.bzimage} has no unpacked module tree (the VNF's initramfs and disk need its modules)"
    v["kernel"], v["kernel_origin"] = kernel.bzimage, kernel.origin
    v["initrd"] = benchlib.mkinitramfs("initramfs-root", "--modules",
                                       f"{kernel.modules}:virtio_pci,virtio_net,virtio_blk,ext4")
    if args.rootfs:
        v["rootfs"] = os.path.abspath(args.rootfs)
    else:
        proc = subprocess.run([os.path.join(benchlib.ROOT, "scripts", "mkrootfs.sh"), "--vnf", "--kernel-tree",
                               kernel.modules, "--cached"], capture_output=True, text=True)
        if proc.returncode != 0:
            return None, "scripts/mkrootfs.sh --vnf failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        v["rootfs"] = proc.stdout.strip().splitlines()[-1]
    if not os.path.isfile(v["rootfs"]):
        return None, f"the VNF root disk {v['rootfs']} is not a file"
    v["extra_cmdline"] = benchlib.linux_cmdline(rtvmm)
    return v, None


def run_vnf(args, res, monitors, tmp):
    """The VNF forwarder: rounds of every monitor, interleaved. Returns (v, {mon: [docs]},
    {mon: reason skipped})."""
    v, why = vnf_setup(args, args.quick)
    if not v:
        reason = str(why)
        if isinstance(why, benchlib.Missing):
            benchlib.skip_part(res, VNF, why)
        return None, {}, {m: reason for m in monitors}
    res["config"]["vnf"] = dict({k: x for k, x in v.items() if k != "extra_cmdline"},
                                cmdline=vnf_cmdline(args, v), vcpus=2,
                                placement="vCPU 1 (testpmd forwarding lcore) on the measure cpu, vCPU 0 "
                                "(testpmd main lcore, guest kernel) and emulator threads on the housekeeping cpu")
    docs, skipped = {m: [] for m in monitors}, {}
    for rnd in range(v["rounds"]):
        order = monitors if rnd % 2 == 0 else list(reversed(monitors))
        for mon in order:
            if mon in skipped:
                continue
            missing = benchlib.need(args.qemu) if mon == "qemu" else None
            if missing:
                skipped[mon] = missing.reason
                benchlib.skip_part(res, f"{mon} ({VNF})", missing)
                continue
            benchlib.log(NAME, f"{mon} {VNF} round {rnd + 1}/{v['rounds']}: boot + testpmd + generator "
                         f"({', '.join(v['sizes'])} B)")
            t0 = time.monotonic()
            try:
                doc = run_vnf_round(args, res, mon, v, rnd, tmp)
            except RuntimeError as e:
                if mon == "rtvmm":
                    raise
                skipped[mon] = str(e)
                benchlib.log(NAME, f"{mon} {VNF}: skipped: {e}")
                continue
            docs[mon].append(doc)
            if args.outdir:
                with open(os.path.join(args.outdir, f"pvp-{mon}-vnf{rnd}-gen.json"), "w") as f:
                    json.dump(doc, f, indent=1)
            benchlib.log(NAME, f"{mon} {VNF} round {rnd + 1}: done in {time.monotonic() - t0:.0f} s")
    return v, docs, skipped


def vnf_figures(res, v, monitors, docs, skipped):
    """The VNF's figures, testpmd's counts, and the ratios rtvmm/qemu with their spread."""
    per_round = {}
    for mon in monitors:
        if not docs.get(mon) or mon in skipped:
            reason = skipped.get(mon, "not run")
            res["notes"].append(f"skipped-for-{mon} ({VNF}): {reason}")
            for s in (v["sizes"] if v else ["64"]):
                for fig in ("ndr_mpps", "pdr_mpps", "max_mpps"):
                    benchlib.add_figure(res, fig, mon, None, "Mpps", scenario=s, skipped=reason, forwarder=VNF)
            continue
        ds = docs[mon]
        ndr, pdr, per_round[mon] = figures(res, mon, ds, v["sizes"], VNF)
        ready = [d["vnf_ready_s"] for d in ds]
        benchlib.add_figure(res, "vnf_ready_s", mon, median(ready), "s", scenario=None, forwarder=VNF,
                            rounds=ready, what="monitor start to testpmd forwarding (boot from the root disk, "
                            "hugepages, uio bind, EAL init)")
        for i, d in enumerate(ds):
            tp = d.get("testpmd")
            if tp:
                benchlib.add_figure(res, "testpmd_rx_packets", mon, tp.get("rx"), "packets", scenario=f"round {i + 1}",
                                    forwarder=VNF, rx_dropped=tp.get("rx_dropped"), tx=tp.get("tx"),
                                    tx_dropped=tp.get("tx_dropped"), status=tp.get("status"))
            else:
                res["notes"].append(f"{mon} ({VNF}) round {i + 1}: testpmd printed no forward statistics "
                                    f"within {v['stats_s']:.0f} s of 'stop'")
        for s in v["sizes"]:
            benchlib.log(NAME, f"{mon} {VNF} {s}: NDR {ndr.get(s) or 0:.3f} Mpps, PDR {pdr.get(s) or 0:.3f} Mpps "
                         f"(median of {len(ds)}), testpmd forwarding after {median(ready):.1f} s")
    if "rtvmm" in per_round and "qemu" in per_round:
        for s in v["sizes"]:
            for what, fig in (("NDR", "ndr"), ("max", "max")):
                a, b = per_round["rtvmm"][fig].get(s), per_round["qemu"][fig].get(s)
                if a is None or b is None:
                    continue
                pairs = [x / y for x, y in zip(a, b) if y]   # round i of rtvmm with round i of qemu
                r = benchlib.add_ratio(res, f"pvp {VNF} {what} {s} rtvmm/qemu", median(a), median(b),
                                       better="higher")
                r.update(forwarder=VNF, rounds=len(pairs), per_round=pairs,
                         spread=[min(pairs), max(pairs)] if pairs else None)
    if not v:
        return
    res["notes"].append(f"{VNF}: figures are the median over {v['rounds']} round(s) per monitor, the rounds "
                        "interleaved (each boots the guest afresh); a ratio's spread is min..max of the "
                        "rounds' own rtvmm/qemu ratios, and it carries no goal: no verdict from so few samples")


def run(args, new_result):
    q = args.quick
    p = {"sizes": [s.strip() for s in (args.sizes or ("64,imix" if q else "64,512,1518,imix")).split(",")],
         "trial_s": args.trial_s or (0.3 if q else 1.0),
         "warmup_s": args.warmup_s if args.warmup_s is not None else (0.3 if q else 1.0),
         "iterations": args.iterations or (4 if q else 7),
         "latency_s": args.latency_s or (0.5 if q else 2.0),
         "latency": [float(x) for x in args.latency.split(",") if x.strip()],
         "guest": args.guest or benchlib.tool(args, "bench/guest/rtvmm-guest.elf")}
    monitors = [m.strip() for m in args.monitors.split(",") if m.strip() in MONITORS]
    forwarders = [f.strip() for f in args.forwarders.split(",") if f.strip()]
    switches = [w.strip() for w in args.switches.split(",") if w.strip() and w.strip() != "none"]
    for w in switches:
        if w not in SWITCHES:
            raise ValueError(f"--switches: unknown switch {w!r} (known: {', '.join(SWITCHES)}, none)")
    for f in forwarders:
        if f not in FORWARDERS:
            raise ValueError(f"--forwarders: unknown forwarder {f!r} (known: {', '.join(FORWARDERS)})")
    switch_cpu = args.measure_cpu if args.switch_cpu is None else args.switch_cpu
    config = dict(p, monitors=monitors, forwarders=forwarders, switches=switches, switch_cpu=switch_cpu,
                  resolution_pct=args.resolution,
                  pdr_loss_pct=args.pdr_loss,
                  drain_ms=args.drain_ms, guest_mac=GUEST_MAC, guest_cmdline=guest_cmdline(),
                  memory=args.memory, vcpu_policy=("SCHED_FIFO %d" % args.vcpu_fifo) if args.vcpu_fifo
                  else "SCHED_OTHER", housekeeping_cpu=args.housekeeping_cpu, measure_cpu=args.measure_cpu,
                  imix="7:4:1 of 64/570/1518 B (simple IMIX)", frame_size="FCS included (64 B = 60 B on the ring)",
                  gbps="Mpps x average frame (FCS included) x 8; no preamble or gap",
                  source="rtvmm-dataplane gen, net_vhost server port, --no-huge",
                  latency_histogram="1 us buckets to 10 ms + overflow; min/avg/max exact")
    res = new_result(config)
    box = benchlib.emulated_host()
    if box:
        res["config"]["timing"] = box
        res["notes"].append(box)
    dp = benchlib.tool(args, "dataplane/rtvmm-dataplane")
    missing = (benchlib.need_built(args, dp) or benchlib.need_kvm()
               or ("bare-metal" in forwarders and benchlib.need_built(args, p["guest"]))
               or benchlib.need("taskset"))
    if missing:
        return benchlib.skip(res, missing)

    benchlib.note_host_load(res, NAME, [args.housekeeping_cpu, args.measure_cpu])
    docs, skipped = {}, {}
    vnf, vnf_docs, vnf_skipped = None, {}, {}
    sw_docs, sw_skipped = {}, {}
    tmp = tempfile.mkdtemp(prefix="rtvmm-pvp.")
    try:
        for mon in (monitors if "bare-metal" in forwarders else []):
            missing = benchlib.need(args.qemu) if mon == "qemu" else None
            if missing:
                skipped[mon] = missing.reason
                benchlib.skip_part(res, mon, missing)
                continue
            benchlib.log(NAME, f"{mon}: guest + generator ({', '.join(p['sizes'])} B)")
            t0 = time.monotonic()
            try:
                docs[mon] = run_monitor(args, res, mon, p, tmp)
            except RuntimeError as e:
                if mon == "rtvmm":
                    raise
                skipped[mon] = str(e)
                benchlib.log(NAME, f"{mon}: skipped: {e}")
                continue
            if args.outdir:
                with open(os.path.join(args.outdir, f"pvp-{mon}-gen.json"), "w") as f:
                    json.dump(docs[mon], f, indent=1)
            benchlib.log(NAME, f"{mon}: done in {time.monotonic() - t0:.0f} s")
        if VNF in forwarders:
            vnf, vnf_docs, vnf_skipped = run_vnf(args, res, monitors, tmp)
        if switches and "bare-metal" in forwarders:
            sw_docs, sw_skipped = run_switched(args, res, p, available_switches(args, res, switches), tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if "bare-metal" in forwarders:
        bare_metal_figures(res, p, monitors, docs, skipped)
    if VNF in forwarders:
        vnf_figures(res, vnf, monitors, vnf_docs, vnf_skipped)
    if switches and "bare-metal" in forwarders:
        switched_figures(res, p, switches, sw_docs, sw_skipped, switch_cpu, args)
    return res


def switched_figures(res, p, switches, docs, skipped, switch_cpu, args):
    """The switched PVP's figures (subject "rtvmm via SWITCH", field "switch") and the ratios
    rtvmm-dataplane/PEER (goal >= 1)."""
    ndr = {}
    for name in switches:
        who = f"rtvmm via {name}"
        if name in docs:
            ndr[name], pdr, _ = figures(res, who, [docs[name]], p["sizes"], "bare-metal")
            for kind in ("results", "series", "histograms"):
                for r in res[kind]:
                    if r.get("subject") == who:
                        r["switch"] = name
            for s in p["sizes"]:
                benchlib.log(NAME, f"{who} {s}: NDR {ndr[name].get(s, 0):.3f} Mpps, PDR {pdr.get(s, 0):.3f} Mpps")
        elif name in skipped:
            res["notes"].append(f"skipped-for-{who}: {skipped[name]}")
            for s in p["sizes"]:
                benchlib.add_figure(res, "ndr_mpps", who, None, "Mpps", scenario=s, skipped=skipped[name],
                                    forwarder="bare-metal", switch=name)
    if "rtvmm-dataplane" in ndr:
        for peer in (w for w in switches if w != "rtvmm-dataplane"):
            for s in p["sizes"]:
                benchlib.add_ratio(res, f"pvp switched NDR {s} rtvmm-dataplane/{peer}",
                                   ndr["rtvmm-dataplane"].get(s), ndr.get(peer, {}).get(s), goal=1.0,
                                   better="higher")
    shared = [c for c in (args.housekeeping_cpu, args.measure_cpu) if c == switch_cpu]
    res["notes"].append(
        f"switched PVP: source on cpu {args.housekeeping_cpu} (virtio_user to switch port 0), switch poll "
        f"thread on cpu {switch_cpu}, guest vCPU on cpu {args.measure_cpu} (rtvmm's NIC on switch port 1)"
        + (f"; the switch shares cpu {shared[0]} with the "
           f"{'guest' if shared[0] == args.measure_cpu else 'source'}: each figure is both loops' time "
           "slices, the same for every switch" if shared else ""))


def bare_metal_figures(res, p, monitors, docs, skipped):
    """The bare-metal guest's figures and ratios rtvmm/qemu (goal >= 1)."""
    ndr = {}
    for mon in monitors:
        if mon in docs:
            ndr[mon], pdr, _ = figures(res, mon, [docs[mon]], p["sizes"], "bare-metal")
            for s in p["sizes"]:
                benchlib.log(NAME, f"{mon} {s}: NDR {ndr[mon].get(s, 0):.3f} Mpps, PDR {pdr.get(s, 0):.3f} Mpps")
        else:
            reason = skipped.get(mon, "not run")
            res["notes"].append(f"skipped-for-{mon}: {reason}")
            for s in p["sizes"]:
                for fig in ("ndr_mpps", "pdr_mpps", "max_mpps"):
                    benchlib.add_figure(res, fig, mon, None, "Mpps", scenario=s, skipped=reason,
                                        forwarder="bare-metal")
    res["config"]["monitor_status"] = {m: ("ok" if m in docs else "skipped: " + skipped.get(m, "not run"))
                                       for m in monitors}
    if "rtvmm" in monitors and "qemu" in monitors:
        for s in p["sizes"]:
            benchlib.add_ratio(res, f"pvp NDR {s} rtvmm/qemu", ndr.get("rtvmm", {}).get(s),
                               ndr.get("qemu", {}).get(s), goal=1.0, better="higher")
    res["notes"].append("NDR/PDR: RFC 2544 binary search per size from the max-rate trial's offered rate "
                        "(what the guest's rx ring took, as fast as it took it); max_mpps = frames back per "
                        "second in that trial. A guest rx ring that refuses a frame in a paced trial is loss.")
    if any(r["name"] == "ndr_mpps" and r.get("generator_limited") for r in res["results"]):
        res["notes"].append("the generator fell behind at some NDR rate: that NDR is a lower bound")


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
