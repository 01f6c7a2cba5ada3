#!/usr/bin/env python3
"""Cost as the work grows: Mpps and cycles/packet of one poll core as it serves more vhost-user
ports, rtvmm-dataplane vs testpmd vs OVS-DPDK; and rtvmm-dataplane's L2 switch as it holds more
learned MACs.

The DUTs and the source are loopback's (bench/loopback.py), given N ports:

  source  rtvmm-dataplane gen on N virtio_user ports from its one poll lcore on
          --housekeeping-cpu, a burst out of each port in turn, max-rate trial (refused
          frames are retried: the DUT's pace), counting its frames back per port
  ports   rtvmm-dataplane run: N vhost ports, each paired with itself (--pair i:i), one poll
          lcore on --measure-cpu; testpmd: N net_vhost vdevs, --port-topology=loop, one
          forwarding lcore; OVS-DPDK: N dpdkvhostuser ports, one flow in_port=lbI,actions=in_port
          each, one PMD thread (pmd-cpu-mask)
  l2      rtvmm-dataplane run --fwd l2switch, 2 vhost ports; the source's 2 ports send K address
          flows each (gen --macs K: port p's k-th frame from 02:00:p:k%K to 02:00:(p^1):k%K), so
          the switch learns K MACs per port (2K in all, checked on its counters) and every frame
          is a unicast lookup among them. Its table is sized so that no 8-way bucket fills
          (--mac-entries 32K, at least 8192: the run fails if it learned more or fewer than 2K,
          e.g. by replacing entries; --mac-per-port 0: no per-port limit).

Rounds interleave (--rounds): per round, per port count, each DUT once (a fresh DUT and source
each time: virtio_user does not reconnect), then per MAC count the L2 switch. Figures per DUT
and port count, medians over rounds:
  scaling_mpps               frames per second the source received back (all ports)
  scaling_cycles_per_packet  the DUT's own busy cycles over the packets it received during the
                             max-rate trial (rtvmm-dataplane: its stats socket's poll-loop busy
                             cycles; testpmd: --record-core-cycles, `show fwd stats all`; OVS:
                             the PMD's "processing cycles" of dpif-netdev/pmd-stats-show);
                             cycles spent in empty polls are left out by all three
  l2_mpps, l2_cycles_per_packet   the same for the L2 switch per MAC count
with series for the plots (one line per DUT) and, at the largest port count, the ratios
rtvmm-dataplane/peer of Mpps (goal >= 1) and of cycles/packet (goal <= 1), each with the spread
of the rounds' own ratios and a verdict only when the rounds separate (benchlib.add_paired_ratio).
64 B frames (FCS included).
"""
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import loopback  # noqa: E402

NAME = "scaling"
# OVS-DPDK's hugepage memory: its shared mbuf pool takes what 512 MB offer, and with 4 ports
# the vhost rings then found none ("failed to allocate memory for vq internal data").
OVS_MEM_MB = 1024


def add_arguments(ap):
    ap.add_argument("--ports", default=None, help="port counts (default 1,2,4,8,16,32; quick 1,4)")
    ap.add_argument("--macs", default=None,
                    help="learned MACs per port for the L2 switch (default 1,16,256,4096,65536; "
                         "quick 1,4096; 'none': no L2 runs)")
    ap.add_argument("--trial-s", type=float, default=None, help="max-rate trial length (default 2; quick 0.5)")
    ap.add_argument("--warmup-s", type=float, default=None,
                    help="warm-up trial (default 0.5 s + 0.25 s per port; quick 0.3)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; quick 1)")
    ap.add_argument("--testpmd", default="dpdk-testpmd", help="testpmd program")
    ap.add_argument("--ovs-vswitchd", default=loopback.OVS_VSWITCHD, help="Open vSwitch's DPDK daemon")


def counts(spec, what):
    try:
        vals = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise SystemExit(f"scaling: --{what} {spec}: expected positive numbers, comma-separated")
    return vals


def plural(n, what):
    return f"{n} {what}{'' if n == 1 else 's'}"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def mpps(v):
    return v / 1e6 if v is not None else None


def summarise(res, runs, figure, scenario, subject):
    """Adds FIGURE_mpps and FIGURE_cycles_per_packet of SUBJECT from its rounds RUNS (None: a
    round that failed); returns (Mpps, cycles/packet), medians."""
    runs = [r for r in runs if r]
    rx = mpps(med([r["rx_pps"] for r in runs]))
    cpp = med([r["cycles_per_packet"] for r in runs])
    per_port = [p for r in runs for p in r["ports_rx_pps"]]
    benchlib.add_figure(res, f"{figure}_mpps", subject, rx, "Mpps", scenario=scenario,
                        runs_mpps=[mpps(r["rx_pps"]) for r in runs],
                        dut_mpps=mpps(med([r["dut_pps"] for r in runs])),
                        loss_pct=med([r["loss_pct"] for r in runs]),
                        port_spread_mpps=[min(per_port) / 1e6, max(per_port) / 1e6] if per_port else None)
    benchlib.add_figure(res, f"{figure}_cycles_per_packet", subject, cpp, "cycles", scenario=scenario,
                        runs=[r["cycles_per_packet"] for r in runs])
    if figure == "l2":
        res["results"][-1]["learned_macs"] = [r["learned"] for r in runs]
    return rx, cpp


def run(args, new_result):
    quick = args.quick
    trial_s = args.trial_s or (0.5 if quick else 2.0)
    def warmup_s(n):
        """The warm-up before the trial with N ports: a DUT first touches the memory of every
        port's rings and buffers, and on a host that faults slowly (this development VM, shadow
        paging) 16 ports took seconds: with 0.5 s every DUT measured 0.13-0.18 Mpps, with 5 s
        3.3-4.0 Mpps (bench/scaling.py --ports 16 --macs none --rounds 1 [--warmup-s 5])."""
        if args.warmup_s is not None:
            return args.warmup_s
        return 0.3 if quick else 0.5 + 0.25 * n

    rounds = args.rounds or (1 if quick else 3)
    ports = counts(args.ports or ("1,4" if quick else "1,2,4,8,16,32"), "ports")
    if max(ports) > 32:
        raise SystemExit("scaling: --ports: at most 32 (the generator's and DPDK's port limit)")
    macs_spec = args.macs or ("1,4096" if quick else "1,16,256,4096,65536")
    macs = [] if macs_spec == "none" else counts(macs_spec, "macs")
    duts, missing, ovs_missing = loopback.available_duts(args)
    config = {"ports": ports, "macs": macs, "size": "64", "trial_s": trial_s,
              "warmup_s": {str(n): warmup_s(n) for n in ports},
              "rounds": rounds,
              "order": "per round, per port count: " + ", ".join(d.subject for d in duts)
                       + "; then per MAC count: rtvmm-dataplane l2switch",
              "source": "rtvmm-dataplane gen, one lcore, N virtio_user ports in turn, max-rate trial",
              "dut_dataplane": "rtvmm-dataplane run --port vhost:SOCKi --pair i:i (one poll lcore)",
              "dut_testpmd": "dpdk-testpmd --vdev net_vhostI,iface=SOCKi -- --forward-mode=io "
                             "--port-topology=loop --nb-cores=1 --record-core-cycles",
              "dut_ovs": "ovs-vswitchd-dpdk, netdev bridge, dpdkvhostuser ports lbI, flows "
                         f"in_port=lbI,actions=in_port, one PMD on the measure cpu, dpdk-socket-mem={OVS_MEM_MB}",
              "l2": "rtvmm-dataplane run --fwd l2switch, 2 vhost ports; gen --macs K on 2 ports",
              "housekeeping_cpu": args.housekeeping_cpu, "measure_cpu": args.measure_cpu}
    res = new_result(config)
    if loopback.begin(NAME, args, res, missing, ovs_missing):
        return res
    runs = {(d.subject, n): [] for d in duts for n in ports}
    l2runs = {k: [] for k in macs}
    pinned = {}
    tmp = tempfile.mkdtemp(prefix="rtvmm-scaling.")
    try:
        with loopback.Hugepages(OVS_MEM_MB // 2 if loopback.Ovs in duts else 0) as hp, \
                benchlib.Noise([args.measure_cpu]) as noise:
            for r in range(rounds):
                for n in ports:
                    for cls in duts:
                        benchlib.log(NAME, f"round {r + 1}/{rounds}: {cls.subject}, {n} port(s)")
                        try:
                            if cls is loopback.Ovs:
                                hp.ensure()
                            out = loopback.one_run(args, res, tmp, cls, ["64"], trial_s, warmup_s(n), f"{n}p-{r}",
                                                   pinned, nports=n,
                                                   dut_kw={"mem_mb": OVS_MEM_MB} if cls is loopback.Ovs else None)["64"]
                        except RuntimeError as e:
                            if cls is loopback.Dataplane:
                                raise
                            # A peer's run that could not start (e.g. another process on the
                            # host took the hugepages) leaves a gap in its rounds, said here.
                            res["notes"].append(f"{cls.subject}, {n} ports, round {r + 1}: no figures: {e}"[:500])
                            benchlib.log(NAME, f"  failed: {e}")
                            runs[(cls.subject, n)].append(None)
                            continue
                        runs[(cls.subject, n)].append(out)
                        benchlib.log(NAME, f"  {mpps(out['rx_pps']):.3f} Mpps, "
                                           + (f"{out['cycles_per_packet']:.0f}" if out["cycles_per_packet"]
                                              else "?") + " cycles/packet")
                for k in macs:
                    benchlib.log(NAME, f"round {r + 1}/{rounds}: rtvmm-dataplane l2switch, {k} MAC(s) per port")
                    entries = max(8192, 32 * k)   # 2K MACs in 8-way buckets, none full
                    out = loopback.one_run(args, res, tmp, loopback.Dataplane, ["64"], trial_s, warmup_s(2),
                                           f"l2-{k}-{r}", pinned, nports=2, gen_args=["--macs", str(k)],
                                           dut_kw={"fwd": ["--fwd", "l2switch", "--mac-entries", str(entries),
                                                           "--mac-per-port", "0"]})["64"]
                    # Each port's first min(K, frames it sent) flows are MACs the switch must
                    # hold (more only by the probes); a slow run may not get through all K.
                    taught = sum(min(k, x) for x in out["ports_sent"])
                    if out["learned"] is None or not taught <= out["learned"] <= 2 * k:
                        raise RuntimeError(f"the L2 switch learned {out['learned']} MACs; the source's "
                                           f"frames taught it {taught} of its {2 * k} flows")
                    if out["learned"] < 2 * k:
                        res["notes"].append(f"l2switch, {k} MACs/port, round {r + 1}: the source sent fewer "
                                            f"frames than flows, the switch held {out['learned']} MACs of {2 * k}")
                    l2runs[k].append(out)
                    benchlib.log(NAME, f"  {mpps(out['rx_pps']):.3f} Mpps, "
                                       + (f"{out['cycles_per_packet']:.0f}" if out["cycles_per_packet"]
                                          else "?") + " cycles/packet")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for d in duts:
        pts = [(n,) + summarise(res, runs[(d.subject, n)], "scaling", plural(n, "port"), d.subject)
               for n in ports]
        benchlib.add_series(res, "scaling_mpps", "vhost-user ports on one poll core", "Mpps",
                            [[str(n), v] for n, v, _ in pts], d.subject)
        benchlib.add_series(res, "scaling_cycles_per_packet", "vhost-user ports on one poll core",
                            "cycles/packet", [[str(n), c] for n, _, c in pts], d.subject)
    if macs:
        pts = [(k,) + summarise(res, l2runs[k], "l2", plural(k, "MAC") + "/port", "rtvmm-dataplane")
               for k in macs]
        benchlib.add_series(res, "l2_mpps", "learned MACs per port (2 ports)", "Mpps",
                            [[str(k), v] for k, v, _ in pts], "rtvmm-dataplane")
        benchlib.add_series(res, "l2_cycles_per_packet", "learned MACs per port (2 ports)", "cycles/packet",
                            [[str(k), c] for k, _, c in pts], "rtvmm-dataplane")

    top = max(ports)
    ours = runs[("rtvmm-dataplane", top)]
    for d in duts[1:]:
        theirs = runs[(d.subject, top)]
        for what, key, better in (("Mpps", "rx_pps", "higher"), ("cycles/packet", "cycles_per_packet", "lower")):
            loopback.logged_ratio(NAME, res, f"scaling {what} at {top} ports rtvmm-dataplane/{d.subject}",
                                  [x and x[key] for x in ours], [x and x[key] for x in theirs], noise,
                                  better=better)
    res["noise"] = noise.record()
    res["notes"].append("Mpps = frames the source received back per second of the max-rate trial, all "
                        "ports (median over rounds; port_spread_mpps: the slowest and fastest port's own "
                        "rate); cycles/packet = the DUT's busy cycles / packets it received over the same "
                        "trial, from its own counters; a ratio is median/median, its spread the rounds' own "
                        f"ratios, and its goal verdict is given only when at least {benchlib.MIN_VERDICT_ROUNDS} "
                        "rounds all fall on one side of the goal")
    res["notes"].append("the source is one lcore too: at many ports its own per-port cost may bound the "
                        "rate (compare the DUTs at one port count, not the curve's absolute height)")
    res["notes"].append(f"while measuring on cpu {args.measure_cpu}: {noise}")
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
