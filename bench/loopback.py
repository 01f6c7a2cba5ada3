#!/usr/bin/env python3
"""Loopback forwarding rate: rtvmm-dataplane vs DPDK testpmd as the device under test.

One traffic source, two DUTs, the same vhost-user socket, in the same run:

  source  rtvmm-dataplane gen on a virtio_user port (a vhost-user frontend, as a guest's
          NIC would be), one poll lcore pinned to --housekeeping-cpu, sending as fast as the
          DUT takes frames (max-rate trial: refused frames are retried) and counting its own
          frames coming back
  DUT a   rtvmm-dataplane run --port vhost:SOCK --pair 0:0: the port looped back to itself
          (xconnect), poll lcore on --measure-cpu, EAL main lcore on --housekeeping-cpu
  DUT b   dpdk-testpmd --vdev net_vhost0,iface=SOCK -- --forward-mode=io --port-topology=loop,
          forwarding lcore on --measure-cpu, main lcore on --housekeeping-cpu
  DUT c   Open vSwitch with DPDK (Debian's openvswitch-switch-dpdk): a private ovsdb-server
          and ovs-vswitchd-dpdk in the run's own directory, a netdev bridge with one
          dpdkvhostuser port and one OpenFlow rule sending every frame back out of the port
          it came in on (in_port); its PMD thread on --measure-cpu (pmd-cpu-mask), its other
          threads on --housekeeping-cpu. OVS puts DPDK's memory in hugepages (it always
          runs the EAL --in-memory, which --no-huge cannot join): the run reserves the 2 MiB
          pages it lacks and gives them back after.

Every DUT is a vhost-user backend built on DPDK's vhost library and forwards every frame
unchanged (no MAC swap). Runs interleave a, b, c, a, b, c, ... (--rounds); each run starts a
fresh DUT and a fresh source (virtio_user does not reconnect), takes a warm-up trial and then
one max-rate trial per frame size. Figures per DUT and size, medians over the rounds:
  loopback_mpps   frames per second the source received back (what was forwarded), with
                  dut_mpps (the DUT's own TX counter over the trial, read at the trial's
                  start and end lines) and offered_mpps (what the DUT took) as extras
and the ratios rtvmm-dataplane/testpmd and rtvmm-dataplane/ovs-dpdk (goal >= 1.0), each with
the spread of the rounds' own ratios; the goal's verdict only when the rounds separate (at
least 3, all on one side of 1.0), else "not separable in this run" with what else ran on the
measure cpu (load average, steal time, other processes' threads). Frame sizes count the FCS (64 B =
60 bytes on the virtio ring).
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAME = "loopback"
DUTS = ("rtvmm-dataplane", "testpmd", "ovs-dpdk")
OVS_VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
OVS_SOCKET_MEM_MB = 512


def add_arguments(ap):
    ap.add_argument("--sizes", default="64", help="frame sizes, FCS included, or imix (default 64)")
    ap.add_argument("--trial-s", type=float, default=None, help="max-rate trial length (default 5; quick 1)")
    ap.add_argument("--warmup-s", type=float, default=None, help="warm-up trial (default 1; quick 0.3)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="a,b pairs of runs, interleaved; medians over them (default 3; quick 1)")
    ap.add_argument("--testpmd", default="dpdk-testpmd", help="testpmd program")
    ap.add_argument("--ovs-vswitchd", default=OVS_VSWITCHD, help="Open vSwitch's DPDK daemon")


def size_label(s):
    return "imix" if s == "imix" else f"{s}B"


class Dataplane:
    """DUT a: rtvmm-dataplane looping its one vhost port back to itself."""

    subject = "rtvmm-dataplane"

    def __init__(self, args, tmp, sock, log):
        self.stats = os.path.join(tmp, "dp-stats.sock")
        self.argv = ["taskset", "-c", f"{args.housekeeping_cpu},{args.measure_cpu}",
                     benchlib.tool(args, "dataplane/rtvmm-dataplane"), "run", "--no-huge",
                     "--lcores", str(args.measure_cpu), "--main-lcore", str(args.housekeeping_cpu),
                     "--file-prefix", f"rtvmm-lb-dp{os.getpid()}", "--port", f"vhost:{sock}",
                     "--pair", "0:0", "--stats-socket", self.stats,
                     "--eal", "--log-level=lib.vhost.config:warning"]
        self.con = benchlib.Console(self.argv, "dataplane", logfile=log)
        if not self.con.expect(r"rtvmm-dataplane: ready", 30):
            raise RuntimeError("rtvmm-dataplane did not start: " + " | ".join(self.con.tail(5)))
        self.poll = benchlib.find_threads(self.con.pid, rf"^dp-poll{args.measure_cpu}$")
        self.main = benchlib.find_threads(self.con.pid, r"^dp-main$")

    def tx_packets(self):
        """The DUT's TX-packets on its port now (stats socket)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.stats)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return json.loads(data)["ports"][0]["TX-packets"]

    def threads(self):
        return [("poll lcore", t) for t in self.poll] + [("EAL main lcore", t) for t in self.main]

    def stop(self):
        self.con.stop()
        self.con.close()


class Testpmd:
    """DUT b: testpmd, net_vhost server, io forwarding, its port looped back."""

    subject = "testpmd"

    def __init__(self, args, tmp, sock, log):
        self.argv = ["taskset", "-c", f"{args.housekeeping_cpu},{args.measure_cpu}",
                     "stdbuf", "-oL", args.testpmd, "-l", f"{args.housekeeping_cpu},{args.measure_cpu}",
                     "--main-lcore", str(args.housekeeping_cpu), "--no-huge", "--no-pci", "-m", "512",
                     "--file-prefix", f"rtvmm-lb-tp{os.getpid()}", "--vdev", f"net_vhost0,iface={sock}",
                     "--log-level=lib.vhost.config:warning", "--", "-i", "--forward-mode=io",
                     "--port-topology=loop", "--nb-cores=1", "--auto-start", "--disable-link-check",
                     "--total-num-mbufs=16384"]
        self.con = benchlib.Console(self.argv, "testpmd", stdin=subprocess.PIPE, logfile=log)
        if not self.con.expect(r"io packet forwarding", 30):
            raise RuntimeError("testpmd did not start: " + " | ".join(self.con.tail(5)))
        pid = self.con.pid
        self.poll = {t: c for t, c in benchlib.threads(pid).items()
                     if self._cpu_of(t) == [args.measure_cpu]}
        self.main = {pid: benchlib.threads(pid).get(pid, "dpdk-testpmd")}

    @staticmethod
    def _cpu_of(tid):
        try:
            return sorted(os.sched_getaffinity(tid))
        except OSError:
            return []

    def tx_packets(self):
        """TX-packets of port 0 now (`show port stats 0`)."""
        self.con.proc.stdin.write(b"show port stats 0\n")
        self.con.proc.stdin.flush()
        m = self.con.expect(r"TX-packets:\s+(\d+)", 5)
        if not m:
            raise RuntimeError("testpmd did not answer 'show port stats 0'")
        return int(m.group(1))

    def threads(self):
        return [("forwarding lcore", t) for t in self.poll] + [("EAL main lcore", t) for t in self.main]

    def stop(self):
        try:
            self.con.proc.stdin.write(b"quit\n")
            self.con.proc.stdin.flush()
        except OSError:
            pass
        self.con.wait(10)
        self.con.close()


class Ovs:
    """DUT c: OVS-DPDK, a private ovsdb-server and ovs-vswitchd-dpdk, a dpdkvhostuser port
    looped back to itself by one flow (in_port=lb, actions=in_port)."""

    subject = "ovs-dpdk"

    def __init__(self, args, tmp, sock, log):
        self.dir = os.path.join(tmp, os.path.splitext(os.path.basename(log))[0])  # e.g. ovs-dpdk-0-dut
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "lb")     # OVS names a dpdkvhostuser socket after its port
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir,
                        OVS_SYSCONFDIR=self.dir)
        self.procs = []
        self.log = open(log, "w")
        db = os.path.join(self.dir, "conf.db")
        self._run(["ovsdb-tool", "create", db, OVS_SCHEMA])
        hk, meas = args.housekeeping_cpu, args.measure_cpu
        pin = ["taskset", "-c", f"{hk},{meas}"]
        self._spawn(pin + ["ovsdb-server", db, f"--remote=punix:{self.dir}/db.sock",
                           f"--unixctl={self.dir}/ovsdb.ctl", "-vconsole:off",
                           f"--log-file={self.dir}/ovsdb.log"])
        benchlib.wait_listening(f"{self.dir}/db.sock", 20)
        self._vsctl("--no-wait", "init")
        self._vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                    "other_config:dpdk-extra=--no-pci --log-level=lib.vhost.config:warning",
                    f"other_config:dpdk-socket-mem={OVS_SOCKET_MEM_MB}",
                    f"other_config:dpdk-lcore-mask={1 << hk:#x}",
                    f"other_config:pmd-cpu-mask={1 << meas:#x}")
        self.vswitchd = self._spawn(pin + [args.ovs_vswitchd, f"unix:{self.dir}/db.sock",
                                           f"--unixctl={self.dir}/vswitchd.ctl", "-vconsole:off",
                                           f"--log-file={self.dir}/vswitchd.log"])
        # ovs-vsctl waits for ovs-vswitchd to apply the change: watch the daemon meanwhile
        # (its DPDK init may fail, e.g. with no hugepages left, and then it exits).
        add = subprocess.Popen(["ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=60", "add-br", "br0",
                                "--", "set", "bridge", "br0", "datapath_type=netdev", "--", "add-port", "br0",
                                "lb", "--", "set", "Interface", "lb", "type=dpdkvhostuser"],
                               env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while add.poll() is None and self.vswitchd.poll() is None:
            time.sleep(0.1)
        if add.poll() is None:
            add.kill()
            add.wait()
        if add.returncode != 0:
            raise RuntimeError(f"OVS: ovs-vswitchd-dpdk did not take the bridge and port (it "
                               f"{'exited ' + str(self.vswitchd.returncode) if self.vswitchd.poll() is not None else 'runs'}): "
                               + self._log_tail())
        try:
            benchlib.wait_listening(os.path.join(self.dir, "br0.mgmt"), 60)   # the bridge's OpenFlow socket
        except RuntimeError as e:
            raise RuntimeError(f"OVS: {e}: {self._log_tail()}") from None
        self._run(["ovs-ofctl", "del-flows", "br0"])
        self._run(["ovs-ofctl", "add-flow", "br0", "in_port=lb,actions=in_port"])
        benchlib.wait_listening(self.sock, 20)
        self.pmd = benchlib.find_threads(self.vswitchd.pid, r"^pmd")
        self.main = {self.vswitchd.pid: "ovs-vswitchd"}

    def _spawn(self, argv):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                             start_new_session=True, env=self.env)
        self.procs.append(p)
        return p

    def _run(self, argv):
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=90)
        if r.returncode != 0:
            raise RuntimeError(f"OVS: {' '.join(argv[:3])}... exited {r.returncode}: "
                               f"{(r.stderr or r.stdout).strip()[:300]} {self._log_tail()}")
        return r.stdout

    def _log_tail(self):
        """The last lines of ovs-vswitchd's log, on one line."""
        try:
            with open(os.path.join(self.dir, "vswitchd.log")) as f:
                lines = [l for l in f.read().splitlines() if "|coverage|" not in l]
                return " | ".join(lines[-8:])
        except OSError:
            return "(no log)"

    def _vsctl(self, *a):
        return self._run(["ovs-vsctl", f"--db=unix:{self.dir}/db.sock", *a])

    def tx_packets(self):
        """Frames the PMD threads received now (dpif-netdev/pmd-stats-show): OVS 3.1 reads no
        statistics from a dpdkvhostuser port ("could not retrieve stats"), and every frame
        it receives goes back out by the one flow, so this is its forwarding count."""
        out = self._run(["ovs-appctl", "-t", f"{self.dir}/vswitchd.ctl", "dpif-netdev/pmd-stats-show"])
        counts = [int(n) for n in re.findall(r"^pmd thread[^\n]*\n\s*packets received: (\d+)", out, re.M)]
        if not counts:
            raise RuntimeError("ovs-appctl dpif-netdev/pmd-stats-show named no PMD thread: " + out.strip()[:200])
        return sum(counts)

    def threads(self):
        return [("PMD thread", t) for t in self.pmd] + [("main thread", t) for t in self.main]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.log.close()


class Hugepages:
    """While in a with-block: at least N free 2 MiB hugepages, reserving what is short and
    giving back after exactly what it added (OVS-DPDK's memory)."""

    PATH = "/proc/sys/vm/nr_hugepages"

    def __init__(self, n):
        self.n, self.added = n, 0

    @staticmethod
    def free():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("HugePages_Free:"):
                    return int(line.split()[1])
        return 0

    def __enter__(self):
        short = self.n - self.free()
        if short > 0:
            with open(self.PATH) as f:
                total = int(f.read())
            with open(self.PATH, "w") as f:
                f.write(str(total + short))
            self.added = self.free() - (self.n - short)
            if self.free() < self.n:
                self.__exit__()
                raise RuntimeError(f"could not reserve {self.n} free 2 MiB hugepages for OVS-DPDK "
                                   f"(asked the kernel for {short} more in {self.PATH}; "
                                   f"{self.free()} free)")
        return self

    def __exit__(self, *exc):
        if self.added > 0:
            with open(self.PATH) as f:
                total = int(f.read())
            with open(self.PATH, "w") as f:
                f.write(str(max(total - self.added, 0)))
            self.added = 0
        return False


def one_run(args, res, tmp, dut_cls, sizes, trial_s, warmup_s, index, pinned):
    """One DUT, one source: returns {size: {"rx_pps", "offered_pps", "dut_pps"}}."""
    sock = os.path.join(tmp, "lb.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    tag = f"{dut_cls.subject}-{index}"
    out = os.path.join(tmp, f"gen-{tag}.json")
    logdir = args.outdir or tmp
    dut = dut_cls(args, tmp, sock, os.path.join(logdir, f"{tag}-dut.log"))
    sock = getattr(dut, "sock", sock)
    gen = None
    try:
        benchlib.wait_listening(sock, 20)
        argv = ["taskset", "-c", str(args.housekeeping_cpu), benchlib.tool(args, "dataplane/rtvmm-dataplane"),
                "gen", "--port", f"virtio_user:{sock}", "--lcore", str(args.housekeeping_cpu), "--no-huge",
                "--file-prefix", f"rtvmm-lb-gen{os.getpid()}", "--eal", "--log-level=lib.vhost.config:warning",
                "--sizes", ",".join(sizes), "--search", "none", "--trial-s", str(trial_s),
                "--warmup-s", str(warmup_s), "--drain-ms", "300", "--link-timeout", "20", "--json", out]
        gen = benchlib.Console(argv, "gen", logfile=os.path.join(logdir, f"{tag}-gen.log"))
        counts = {}
        deadline = time.monotonic() + 60 + len(sizes) * (trial_s + 2)
        while time.monotonic() < deadline:
            m = gen.expect(r"gen: trial (\d+) (start: (\w+)|sent)", deadline - time.monotonic())
            if not m:
                break
            n = int(m.group(1))
            if not pinned.get("source"):
                pinned["source"] = True
                for tid in benchlib.find_threads(gen.pid, r"^dp-gen$", timeout=1):
                    cpus, pol, prio = benchlib.thread_placement(tid)
                    benchlib.add_pinning(res, "source (rtvmm-dataplane gen)",
                                         "generator poll lcore (EAL main, dp-gen)", cpus, pol, prio)
            if m.group(3) == "max":
                counts[n] = [time.monotonic(), dut.tx_packets()]
            elif m.group(2) == "sent" and n in counts:
                counts[n] += [time.monotonic(), dut.tx_packets()]
        status = gen.wait(30)
        if status != 0 or not os.path.exists(out):
            raise RuntimeError(f"the generator failed (status {status}) against {dut.subject}: "
                               + " | ".join(gen.tail(5)))
        with open(out) as f:
            doc = json.load(f)
        if not pinned.get(dut.subject):
            pinned[dut.subject] = True
            for what, tid in dut.threads():
                cpus, pol, prio = benchlib.thread_placement(tid)
                benchlib.add_pinning(res, dut.subject, what, cpus, pol, prio)
        result = {}
        for t in doc["trials"]:
            if t["kind"] != "max":
                continue
            c = counts.get(t["index"])
            dut_pps = (c[3] - c[1]) / (c[2] - c[0]) if c and len(c) == 4 and c[2] > c[0] else None
            result[t["size"]] = {"rx_pps": t["rx_pps"], "offered_pps": t["offered_pps"],
                                 "loss_pct": t["loss_pct"], "dut_pps": dut_pps,
                                 "rtt_us": t["latency_us"]}
        return result
    finally:
        if gen:
            gen.close()
        dut.stop()


def run(args, new_result):
    quick = args.quick
    trial_s = args.trial_s or (1.0 if quick else 5.0)
    warmup_s = args.warmup_s if args.warmup_s is not None else (0.3 if quick else 1.0)
    rounds = args.rounds or (1 if quick else 3)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    dp = benchlib.tool(args, "dataplane/rtvmm-dataplane")
    missing = benchlib.need_built(args, dp) or benchlib.need(args.testpmd, "taskset", "stdbuf")
    duts = [Dataplane, Testpmd]
    ovs_missing = (benchlib.need(args.ovs_vswitchd, "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl")
                   or benchlib.need_root("OVS-DPDK needs hugepages, which only root reserves"))
    if not ovs_missing:
        duts.append(Ovs)
    config = {"sizes": sizes, "trial_s": trial_s, "warmup_s": warmup_s, "rounds": rounds,
              "order": "interleaved: " + ", ".join(duts[i % len(duts)].subject
                                                   for i in range(len(duts) * rounds)),
              "source": "rtvmm-dataplane gen, virtio_user port, max-rate trial (backpressure: the DUT's pace)",
              "dut_dataplane": "rtvmm-dataplane run --port vhost:SOCK --pair 0:0 (xconnect loopback)",
              "dut_testpmd": "dpdk-testpmd --vdev net_vhost0,iface=SOCK -- --forward-mode=io --port-topology=loop",
              "dut_ovs": "ovs-vswitchd-dpdk, netdev bridge, dpdkvhostuser port lb, flow in_port=lb,actions=in_port, "
                         f"dpdk-socket-mem={OVS_SOCKET_MEM_MB}, pmd-cpu-mask=measure cpu",
              "memory": "--no-huge on the source, rtvmm-dataplane and testpmd (no hugepages needed); "
                        f"OVS-DPDK {OVS_SOCKET_MEM_MB} MiB of 2 MiB hugepages",
              "housekeeping_cpu": args.housekeeping_cpu, "measure_cpu": args.measure_cpu}
    res = new_result(config)
    if missing:
        return benchlib.skip(res, missing)
    if ovs_missing:
        benchlib.skip_part(res, "ovs-dpdk", ovs_missing)
    if args.housekeeping_cpu == args.measure_cpu:
        res["notes"].append("source and DUT share one cpu: the figures are the sum of both loops' time slices")

    benchlib.note_host_load(res, NAME, [args.housekeeping_cpu, args.measure_cpu])
    runs = {d.subject: [] for d in duts}
    pinned = {}
    tmp = tempfile.mkdtemp(prefix="rtvmm-loopback.")
    try:
        with Hugepages(OVS_SOCKET_MEM_MB // 2 if Ovs in duts else 0), \
                benchlib.Noise([args.measure_cpu]) as noise:
            for r in range(rounds):
                for cls in duts:
                    benchlib.log(NAME, f"round {r + 1}/{rounds}: {cls.subject}")
                    out = one_run(args, res, tmp, cls, sizes, trial_s, warmup_s, r, pinned)
                    runs[cls.subject].append(out)
                    for s, v in out.items():
                        benchlib.log(NAME, f"  {s} B: source received {v['rx_pps'] / 1e6:.3f} Mpps, DUT counted "
                                           + (f"{v['dut_pps'] / 1e6:.3f}" if v["dut_pps"] else "?") + " Mpps")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(vals):
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    for s in sizes:
        label = "imix" if s == "imix" else s
        fig = {}
        for d in runs:
            per = [run_[label] for run_ in runs[d] if label in run_]
            rx = med([p["rx_pps"] for p in per])
            fig[d] = rx / 1e6 if rx is not None else None
            dut = med([p["dut_pps"] for p in per])
            benchlib.add_figure(res, "loopback_mpps", d, fig[d], "Mpps", scenario=size_label(s),
                                dut_mpps=dut / 1e6 if dut is not None else None,
                                offered_mpps=med([p["offered_pps"] for p in per]) / 1e6,
                                loss_pct=med([p["loss_pct"] for p in per]),
                                runs_mpps=[p["rx_pps"] / 1e6 for p in per],
                                rtt_p50_us=med([p["rtt_us"]["p50"] for p in per]))
        ours = [run_.get(label, {}).get("rx_pps") for run_ in runs["rtvmm-dataplane"]]
        for peer in (d for d in runs if d != "rtvmm-dataplane"):
            theirs = [run_.get(label, {}).get("rx_pps") for run_ in runs[peer]]
            r = benchlib.add_paired_ratio(res, f"loopback Mpps rtvmm-dataplane/{peer}"
                                          + ("" if s == "64" else f" {size_label(s)}"),
                                          ours, theirs, goal=1.0, better="higher", noise=noise)
            if r["value"] is not None:
                benchlib.log(NAME, f"{size_label(s)}: rtvmm-dataplane {fig['rtvmm-dataplane']:.3f} Mpps, "
                                   f"{peer} {fig[peer]:.3f} Mpps, ratio {r['value']:.2f} "
                                   f"(rounds {r['spread'][0]:.2f}..{r['spread'][1]:.2f}): {r['verdict']}")
    res["noise"] = noise.record()
    res["notes"].append("Mpps = frames the source received back per second of the max-rate trial "
                        "(median over rounds); dut_mpps = the DUT's own count over the same trial (TX "
                        "packets; OVS-DPDK: its PMD's packets received); a ratio is median/median, its "
                        "spread the rounds' own ratios (round i of each DUT, run next to each other), and "
                        f"its goal verdict is given only when at least {benchlib.MIN_VERDICT_ROUNDS} rounds "
                        "all fall on one side of the goal")
    res["notes"].append(f"while measuring on cpu {args.measure_cpu}: {noise}")
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
