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
  loopback_cycles_per_packet   the DUT's own busy cycles over the packets it received in the
                  same trial (scaling.py says from which counters), which other load on the
                  machine disturbs less than Mpps
and the ratios rtvmm-dataplane/testpmd and rtvmm-dataplane/ovs-dpdk of each (goal >= 1.0 for
Mpps, <= 1.0 for cycles/packet), each with
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
    """DUT a: rtvmm-dataplane looping each of its vhost ports (one per socket of SOCKS) back to
    itself on one poll lcore, or, given FWD (e.g. ["--fwd", "l2switch"]), forwarding as told."""

    subject = "rtvmm-dataplane"

    def __init__(self, args, tmp, socks, log, fwd=()):
        self.socks = socks
        self.stats = os.path.join(tmp, "dp-stats.sock")
        fwd = list(fwd) or [a for i in range(len(socks)) for a in ("--pair", f"{i}:{i}")]
        self.argv = ["taskset", "-c", f"{args.housekeeping_cpu},{args.measure_cpu}",
                     benchlib.tool(args, "dataplane/rtvmm-dataplane"), "run", "--no-huge",
                     "--lcores", str(args.measure_cpu), "--main-lcore", str(args.housekeeping_cpu),
                     "--file-prefix", f"rtvmm-lb-dp{os.getpid()}",
                     *[a for s in socks for a in ("--port", f"vhost:{s}")], *fwd,
                     "--stats-socket", self.stats, "--eal", "--log-level=lib.vhost.config:warning"]
        self.con = benchlib.Console(self.argv, "dataplane", logfile=log)
        if not self.con.expect(r"rtvmm-dataplane: ready", 30):
            raise RuntimeError("rtvmm-dataplane did not start: " + " | ".join(self.con.tail(5)))
        self.poll = benchlib.find_threads(self.con.pid, rf"^dp-poll{args.measure_cpu}$")
        self.main = benchlib.find_threads(self.con.pid, r"^dp-main$")

    def sample(self):
        """Its counters now (stats socket): TX-packets of all ports, and the poll lcore's busy
        cycles and packets received (cycles/packet over a window: their differences)."""
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
        doc = json.loads(data)
        return {"tx": sum(p["TX-packets"] for p in doc["ports"]),
                "cycles": sum(w["busy_cycles"] for w in doc["lcores"]),
                "packets": sum(w["rx_packets"] for w in doc["lcores"]),
                "learned": doc.get("l2", {}).get("learned")}

    def threads(self):
        return [("poll lcore", t) for t in self.poll] + [("EAL main lcore", t) for t in self.main]

    def stop(self):
        self.con.stop()
        self.con.close()


class Testpmd:
    """DUT b: testpmd, a net_vhost server per socket of SOCKS, io forwarding on one lcore, each
    port looped back to itself (TOPOLOGY "paired": port 0 <-> 1, 2 <-> 3, ...); busy cycles
    recorded (--record-core-cycles)."""

    subject = "testpmd"

    def __init__(self, args, tmp, socks, log, topology="loop"):
        self.socks = socks
        self.argv = ["taskset", "-c", f"{args.housekeeping_cpu},{args.measure_cpu}",
                     "stdbuf", "-oL", args.testpmd, "-l", f"{args.housekeeping_cpu},{args.measure_cpu}",
                     "--main-lcore", str(args.housekeeping_cpu), "--no-huge", "--no-pci", "-m", "512",
                     "--file-prefix", f"rtvmm-lb-tp{os.getpid()}",
                     *[a for i, s in enumerate(socks) for a in ("--vdev", f"net_vhost{i},iface={s}")],
                     "--log-level=lib.vhost.config:warning", "--", "-i", "--forward-mode=io",
                     f"--port-topology={topology}", "--nb-cores=1", "--auto-start", "--disable-link-check",
                     "--total-num-mbufs=16384", "--record-core-cycles"]
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

    def sample(self):
        """Its counters now (`show fwd stats all`): TX-packets of all ports, and the forwarding
        lcore's busy cycles and packets received (none before it received any). DPDK 22.11's
        testpmd prints them as "total cycles": the cycles of forwarding calls that received
        frames, empty polls left out."""
        self.con.proc.stdin.write(b"show fwd stats all\n")
        self.con.proc.stdin.flush()
        if not self.con.expect(r"Accumulated forward statistics for all ports", 5):
            raise RuntimeError("testpmd did not answer 'show fwd stats all'")
        m = self.con.expect(r"TX-packets:\s+(\d+)", 5)
        if not m:
            raise RuntimeError("testpmd's 'show fwd stats all' has no TX-packets")
        out = {"tx": int(m.group(1)), "cycles": None, "packets": None}
        c = self.con.expect(r"(?:busy|total) cycles=(\d+) / total \w+ packets=(\d+)|testpmd>", 5)
        if c and c.group(1):
            out.update(cycles=int(c.group(1)), packets=int(c.group(2)))
        return out

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
    """DUT c: OVS-DPDK, a private ovsdb-server and ovs-vswitchd-dpdk, as many dpdkvhostuser
    ports as SOCKS has entries (lb0, lb1, ...; OVS makes their sockets, self.socks), each looped
    back to itself by one flow (in_port=lbI, actions=in_port), or given FLOWS (OpenFlow rules
    naming those ports) forwarding as they say; MEM_MB of hugepages for DPDK (its shared mbuf
    pool takes most of them, and each vhost port's rings need some besides)."""

    subject = "ovs-dpdk"

    def __init__(self, args, tmp, socks, log, mem_mb=OVS_SOCKET_MEM_MB, flows=None):
        self.dir = os.path.join(tmp, os.path.splitext(os.path.basename(log))[0])  # e.g. ovs-dpdk-0-dut
        os.makedirs(self.dir)
        names = [f"lb{i}" for i in range(len(socks))]
        self.socks = [os.path.join(self.dir, n) for n in names]   # OVS names them after the ports
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir,
                        OVS_SYSCONFDIR=self.dir)
        self.procs = []
        self.log = open(log, "w")
        self.flows = flows or [f"in_port={n},actions=in_port" for n in names]
        try:
            self._start(args, names, mem_mb)
        except BaseException:
            self.stop()      # no ovsdb-server or half-started daemon left behind
            raise

    def _start(self, args, names, mem_mb):
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
                    f"other_config:dpdk-socket-mem={mem_mb}",
                    f"other_config:dpdk-lcore-mask={1 << hk:#x}",
                    f"other_config:pmd-cpu-mask={1 << meas:#x}")
        self.vswitchd = self._spawn(pin + [args.ovs_vswitchd, f"unix:{self.dir}/db.sock",
                                           f"--unixctl={self.dir}/vswitchd.ctl", "-vconsole:off",
                                           f"--log-file={self.dir}/vswitchd.log"])
        # ovs-vsctl waits for ovs-vswitchd to apply the change: watch the daemon meanwhile
        # (its DPDK init may fail, e.g. with no hugepages left, and then it exits).
        add = subprocess.Popen(["ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=60", "add-br", "br0",
                                "--", "set", "bridge", "br0", "datapath_type=netdev",
                                *[a for n in names for a in ("--", "add-port", "br0", n, "--", "set",
                                                             "Interface", n, "type=dpdkvhostuser")]],
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
        for flow in self.flows:
            self._run(["ovs-ofctl", "add-flow", "br0", flow])
        for s_ in self.socks:
            benchlib.wait_listening(s_, 20)
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

    def sample(self):
        """Its counters now (dpif-netdev/pmd-stats-show): the frames the PMD threads received
        (OVS 3.1 reads no statistics from a dpdkvhostuser port, "could not retrieve stats", and
        every frame it receives goes back out by its port's flow, so this is its forwarding
        count) and their processing cycles."""
        out = self._run(["ovs-appctl", "-t", f"{self.dir}/vswitchd.ctl", "dpif-netdev/pmd-stats-show"])
        counts = [int(n) for n in re.findall(r"^pmd thread[^\n]*\n\s*packets received: (\d+)", out, re.M)]
        if not counts:
            raise RuntimeError("ovs-appctl dpif-netdev/pmd-stats-show named no PMD thread: " + out.strip()[:200])
        cycles = [int(n) for n in re.findall(r"^\s*processing cycles: (\d+)", out, re.M)]
        return {"tx": sum(counts), "cycles": sum(cycles) if cycles else None, "packets": sum(counts)}

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
        try:
            self.ensure()
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def ensure(self):
        """Tops the free pages up to N again (another process on the host may have taken or
        given back pages meanwhile); RuntimeError when the kernel has no more."""
        short = self.n - self.free()
        if short > 0:
            before = self.free()
            with open(self.PATH) as f:
                total = int(f.read())
            with open(self.PATH, "w") as f:
                f.write(str(total + short))
            self.added += max(self.free() - before, 0)
            if self.free() < self.n:
                raise RuntimeError(f"could not reserve {self.n} free 2 MiB hugepages for OVS-DPDK "
                                   f"(asked the kernel for {short} more in {self.PATH}; "
                                   f"{self.free()} free)")

    def __exit__(self, *exc):
        if self.added > 0:
            with open(self.PATH) as f:
                total = int(f.read())
            with open(self.PATH, "w") as f:
                f.write(str(max(total - self.added, 0)))
            self.added = 0
        return False


def logged_ratio(bench, res, name, ours, theirs, noise, better="higher", detail=""):
    """benchlib.add_paired_ratio with goal 1.0, and its value, rounds and verdict in the log."""
    r = benchlib.add_paired_ratio(res, name, ours, theirs, goal=1.0, better=better, noise=noise)
    if r["value"] is not None:
        benchlib.log(bench, f"{name}: {detail}ratio {r['value']:.2f} "
                            f"(rounds {r['spread'][0]:.2f}..{r['spread'][1]:.2f}): {r['verdict']}")
    return r


def available_duts(args):
    """(the DUT classes this host can run, what the benchmark as a whole lacks, what OVS lacks)."""
    dp = benchlib.tool(args, "dataplane/rtvmm-dataplane")
    missing = benchlib.need_built(args, dp) or benchlib.need(args.testpmd, "taskset", "stdbuf")
    duts = [Dataplane, Testpmd]
    ovs_missing = (benchlib.need(args.ovs_vswitchd, "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl")
                   or benchlib.need_root("OVS-DPDK needs hugepages, which only root reserves"))
    if not ovs_missing:
        duts.append(Ovs)
    return duts, missing, ovs_missing


def begin(name, args, res, missing, ovs_missing):
    """Records in RES what is left out and the host's load; True when the whole benchmark is
    skipped (RES then says why)."""
    if missing:
        benchlib.skip(res, missing)
        return True
    if ovs_missing:
        benchlib.skip_part(res, "ovs-dpdk", ovs_missing)
    if args.housekeeping_cpu == args.measure_cpu:
        res["notes"].append("source and DUT share one cpu: the figures are the sum of both loops' time slices")
    benchlib.note_host_load(res, name, [args.housekeeping_cpu, args.measure_cpu])
    return False


def one_run(args, res, tmp, dut_cls, sizes, trial_s, warmup_s, index, pinned, nports=1, gen_args=(),
            dut_kw=None):
    """One DUT with NPORTS vhost-user ports (DUT_KW: more of its constructor's arguments), one
    source on as many virtio_user ports (GEN_ARGS: more of its options): returns {size:
    {"rx_pps", "offered_pps", "dut_pps", "cycles_per_packet", "ports_rx_pps", ...}}; the DUT's
    figures are its own counters' differences over the max-rate trial."""
    socks = [os.path.join(tmp, f"lb{i}.sock") for i in range(nports)]
    for s_ in socks:
        if os.path.exists(s_):
            os.unlink(s_)
    tag = f"{dut_cls.subject}-{index}"
    out = os.path.join(tmp, f"gen-{tag}.json")
    logdir = args.outdir or tmp
    dut = dut_cls(args, tmp, socks, os.path.join(logdir, f"{tag}-dut.log"), **(dut_kw or {}))
    gen = None
    try:
        for s_ in dut.socks:
            benchlib.wait_listening(s_, 20)
        argv = ["taskset", "-c", str(args.housekeeping_cpu), benchlib.tool(args, "dataplane/rtvmm-dataplane"),
                "gen", *[a for s_ in dut.socks for a in ("--port", f"virtio_user:{s_}")],
                "--lcore", str(args.housekeeping_cpu), "--no-huge", *gen_args,
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
                counts[n] = [time.monotonic(), dut.sample()]
            elif m.group(2) == "sent" and n in counts:
                counts[n] += [time.monotonic(), dut.sample()]
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
        sent = [sum(t["ports"][i]["offered"] for t in doc["trials"]) for i in range(len(doc["trials"][0]["ports"]))] \
            if doc["trials"] and "ports" in doc["trials"][0] else []
        for t in doc["trials"]:
            if t["kind"] != "max":
                continue
            c = counts.get(t["index"])
            done = c and len(c) == 4 and c[2] > c[0]
            dut_pps = (c[3]["tx"] - c[1]["tx"]) / (c[2] - c[0]) if done else None
            cpp = None
            # (OVS zeroes its PMD's counters when it reloads the PMD: a negative difference)
            if done and c[1]["cycles"] is not None and c[3]["cycles"] is not None \
                    and c[3]["packets"] > c[1]["packets"] and c[3]["cycles"] > c[1]["cycles"]:
                cpp = (c[3]["cycles"] - c[1]["cycles"]) / (c[3]["packets"] - c[1]["packets"])
            result[t["size"]] = {"rx_pps": t["rx_pps"], "offered_pps": t["offered_pps"],
                                 "loss_pct": t["loss_pct"], "dut_pps": dut_pps,
                                 "cycles_per_packet": cpp, "rtt_us": t["latency_us"],
                                 "ports_rx_pps": [p["rx_pps"] for p in t.get("ports", [])],
                                 "learned": c[3].get("learned") if done else None, "ports_sent": sent}
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
    duts, missing, ovs_missing = available_duts(args)
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
    if begin(NAME, args, res, missing, ovs_missing):
        return res
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
            cpp = [p["cycles_per_packet"] for p in per]
            benchlib.add_figure(res, "loopback_cycles_per_packet", d, med(cpp), "cycles", scenario=size_label(s),
                                runs_cycles=cpp)
        suffix = "" if s == "64" else f" {size_label(s)}"
        for key, what, better in (("rx_pps", "Mpps", "higher"), ("cycles_per_packet", "cycles/packet", "lower")):
            ours = [run_.get(label, {}).get(key) for run_ in runs["rtvmm-dataplane"]]
            for peer in (d for d in runs if d != "rtvmm-dataplane"):
                theirs = [run_.get(label, {}).get(key) for run_ in runs[peer]]
                logged_ratio(NAME, res, f"loopback {what} rtvmm-dataplane/{peer}{suffix}", ours, theirs, noise,
                             better=better)
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
