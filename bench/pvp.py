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

Both monitors start under taskset --housekeeping-cpu (their emulator threads stay there); the
vCPU thread is moved to --measure-cpu as soon as it exists, with the same policy for both
(SCHED_OTHER, or SCHED_FIFO with --vcpu-fifo). The monitors only set the device up: the data
path is the generator's vhost rings in guest memory, the guest polls, nothing exits.

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
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "pvp"
GUEST_MAC = "52:54:00:00:00:01"
MONITORS = ("rtvmm", "qemu")


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


def run_monitor(args, res, mon, p, tmp):
    """One monitor: generator + guest. Returns the generator's document, or raises with why."""
    sock = os.path.join(tmp, f"pvp-{mon}.sock")
    out = os.path.join(tmp, f"gen-{mon}.json")
    logdir = args.outdir or tmp
    gen_argv = ["taskset", "-c", str(args.housekeeping_cpu), benchlib.tool(args, "dataplane/rtvmm-dataplane"),
                "gen", "--port", f"vhost:{sock}", "--lcore", str(args.housekeeping_cpu), "--no-huge",
                "--file-prefix", f"rtvmm-pvp{os.getpid()}", "--eal", "--log-level=lib.vhost.config:warning",
                "--dst-mac", GUEST_MAC, "--sizes", ",".join(p["sizes"]), "--trial-s", str(p["trial_s"]),
                "--warmup-s", str(p["warmup_s"]), "--iterations", str(p["iterations"]),
                "--resolution", str(args.resolution), "--pdr-loss", str(args.pdr_loss),
                "--drain-ms", str(args.drain_ms), "--link-timeout", "180", "--json", out]
    if p["latency"] and "64" in p["sizes"]:
        gen_argv += ["--latency", args.latency, "--latency-size", "64", "--latency-s", str(p["latency_s"])]
    gen = benchlib.Console(gen_argv, f"gen-{mon}", logfile=os.path.join(logdir, f"pvp-{mon}-gen.log"))
    vm = None
    try:
        if not gen.expect(r"gen: ready", 30):
            raise RuntimeError("the generator did not start: " + " | ".join(gen.tail(5)))
        benchlib.wait_listening(sock, 10)
        vm = benchlib.Console(monitor_argv(args, mon, p["guest"], sock), mon,
                              logfile=os.path.join(logdir, f"pvp-{mon}-console.log"))
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
        for tid, comm in sorted(benchlib.threads(vm.pid).items()):
            if tid not in vcpu:   # threads created after the move (KVM's nx-lpage worker) too
                try:
                    benchlib.pin(tid, args.housekeeping_cpu)
                except OSError:
                    pass
            cpus, pol, prio = benchlib.thread_placement(tid)
            what = "vCPU 0" if tid in vcpu else f"emulator thread {comm}"
            benchlib.add_pinning(res, mon, what, cpus, pol, prio)
        for tid in benchlib.find_threads(gen.pid, r"^dp-gen$", timeout=1):
            cpus, pol, prio = benchlib.thread_placement(tid)
            benchlib.add_pinning(res, f"source for {mon} (rtvmm-dataplane gen)", "generator poll lcore (dp-gen)",
                                 cpus, pol, prio)
        budget = 60 + len(p["sizes"]) * (2 * p["iterations"] + 2) * (p["trial_s"] + args.drain_ms / 1000 + 0.3)
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
    finally:
        if vm:
            vm.stop(timeout=5)
            vm.close()
        gen.stop(timeout=10)
        gen.close()


def figures(res, mon, doc, sizes):
    """Adds NDR/PDR/max figures, series and latency of one monitor; returns {size: ndr_mpps}."""
    ndr, pdr, base = {}, {}, {}
    trials = doc["trials"]
    for r in doc["results"]:
        s, avg = r["size"], r["avg_frame"]
        n = sum(1 for t in trials if t["size"] == s and t["kind"] in ("max", "search"))

        def gbps(mpps):
            return mpps * avg * 8 / 1000 if mpps is not None else None

        m = r.get("max", {})
        mx = m.get("rx_pps", 0) / 1e6
        benchlib.add_figure(res, "max_mpps", mon, mx, "Mpps", scenario=s, gbps=gbps(mx),
                            offered_mpps=m.get("offered_pps", 0) / 1e6, loss_pct=m.get("loss_pct"),
                            avg_frame=avg, trials=1)
        ndr[s] = r.get("ndr_pps", 0) / 1e6
        lost_at_ndr = [t["loss_pct"] for t in trials if t["size"] == s and t["kind"] == "search"
                       and t["requested_pps"] == r.get("ndr_pps")]
        benchlib.add_figure(res, "ndr_mpps", mon, ndr[s], "Mpps", scenario=s, gbps=gbps(ndr[s]),
                            trials=r.get("ndr_trials"), loss_pct=lost_at_ndr[0] if lost_at_ndr else None,
                            range_mpps=[x / 1e6 for x in r.get("ndr_range_pps", [])],
                            at_top=r.get("ndr_at_top"), generator_limited=r.get("ndr_generator_limited"),
                            search_top_mpps=r.get("search_top_pps", 0) / 1e6, avg_frame=avg, trials_all=n)
        pdr[s] = r.get("pdr_pps", 0) / 1e6
        benchlib.add_figure(res, "pdr_mpps", mon, pdr[s], "Mpps", scenario=s, gbps=gbps(pdr[s]),
                            trials=r.get("pdr_trials"), loss_pct=r.get("pdr_loss_pct"),
                            loss_threshold_pct=doc["config"]["pdr_loss_pct"],
                            range_mpps=[x / 1e6 for x in r.get("pdr_range_pps", [])], avg_frame=avg)
        if "latency_skipped" in r:
            res["notes"].append(f"{mon}: no latency trials at {s} B: {r['latency_skipped']}")
        if r.get("latency_base") == "pdr":
            res["notes"].append(f"{mon}: no loss-free rate at {s} B, so the latency loads are % of the PDR")
        base[s] = r.get("latency_base")
    order = [s for s in sizes if s in ndr]
    benchlib.add_series(res, "pvp_ndr", "frame size", "Mpps", [[s, ndr[s]] for s in order], mon)
    benchlib.add_series(res, "pvp_pdr", "frame size", "Mpps", [[s, pdr[s]] for s in order], mon)
    for t in trials:
        if t["kind"] != "latency":
            continue
        lat, load = t["latency_us"], f"{t['load_pct']:g}%"
        benchlib.add_figure(res, "pvp_rtt", mon, lat["p99"], "us", scenario=load, base=base.get(t["size"]),
                            min=lat["min"],
                            avg=lat["avg"], p50=lat["p50"], p99=lat["p99"], p99_9=lat["p99_9"], max=lat["max"],
                            count=lat["count"], overflow=lat["overflow"], offered_mpps=t["offered_pps"] / 1e6,
                            loss_pct=t["loss_pct"], size=t["size"])
        benchlib.add_histogram(res, "pvp_rtt", mon, load, "us", 1, t["histogram"], lat["overflow"])
    return ndr, pdr


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
    config = dict(p, monitors=monitors, resolution_pct=args.resolution, pdr_loss_pct=args.pdr_loss,
                  drain_ms=args.drain_ms, guest_mac=GUEST_MAC, guest_cmdline=guest_cmdline(),
                  memory=args.memory, vcpu_policy=("SCHED_FIFO %d" % args.vcpu_fifo) if args.vcpu_fifo
                  else "SCHED_OTHER", housekeeping_cpu=args.housekeeping_cpu, measure_cpu=args.measure_cpu,
                  imix="7:4:1 of 64/570/1518 B (simple IMIX)", frame_size="FCS included (64 B = 60 B on the ring)",
                  gbps="Mpps x average frame (FCS included) x 8; no preamble or gap",
                  source="rtvmm-dataplane gen, net_vhost server port, --no-huge",
                  latency_histogram="1 us buckets to 10 ms + overflow; min/avg/max exact")
    res = new_result(config)
    dp = benchlib.tool(args, "dataplane/rtvmm-dataplane")
    missing = (benchlib.need_built(args, dp) or benchlib.need_kvm() or benchlib.need_built(args, p["guest"])
               or benchlib.need("taskset"))
    if missing:
        return benchlib.skip(res, missing)

    benchlib.note_host_load(res, NAME, [args.housekeeping_cpu, args.measure_cpu])
    docs, skipped = {}, {}
    tmp = tempfile.mkdtemp(prefix="rtvmm-pvp.")
    try:
        for mon in monitors:
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ndr = {}
    for mon in monitors:
        if mon in docs:
            ndr[mon], pdr = figures(res, mon, docs[mon], p["sizes"])
            for s in p["sizes"]:
                benchlib.log(NAME, f"{mon} {s}: NDR {ndr[mon].get(s, 0):.3f} Mpps, PDR {pdr.get(s, 0):.3f} Mpps")
        else:
            reason = skipped.get(mon, "not run")
            res["notes"].append(f"skipped-for-{mon}: {reason}")
            for s in p["sizes"]:
                for fig in ("ndr_mpps", "pdr_mpps", "max_mpps"):
                    benchlib.add_figure(res, fig, mon, None, "Mpps", scenario=s, skipped=reason)
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
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
