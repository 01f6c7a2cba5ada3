#!/usr/bin/env python3
"""vm.counters shows a NIC's traffic as its backend rtvmm-dataplane counts it.

Usage: nic_backend_counters.py RTVMM GUEST RTVMM_DATAPLANE|none OPENAPI.yaml

The bare-metal guest probes through its NIC net0 (net=ping towards a peer that never answers,
a frame every 10 ms); rtvmm-dataplane loops that port back to itself (xconnect 0:0), so the
dataplane receives every frame the guest sends and sends each back to it. net0 names the
dataplane's stats socket (stats_socket=), net1 (another dataplane port) names none.
Checked, every answer against docs/api/openapi.yaml's schema:
  * net0's "backend" has the port's counters in the guest's direction (tx_packets = the port's
    RX-packets, rx_packets = its TX-packets, read from the dataplane between two API calls),
    growing while the guest sends; net1's "backend" is null; `rtvmm ctl SOCK counters` prints
    them in text and JSON;
  * a stats socket peer that never answers, answers garbage, or floods 5 MiB: an "error" naming
    it within about 0.5 s, and the API keeps answering;
  * the dataplane killed: an "error" (connect) at once, vmm.ping still answers, and rtvmm
    stops cleanly through vm.shutdown (no seccomp kill: the API thread's filter allows the
    stats socket's calls).
Exit 77 only when /dev/kvm is absent or rtvmm-dataplane was not built.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import jsonschema
import yaml

from api_client import call as api_call

MAC0, MAC1 = "52:54:00:00:10:01", "52:54:00:00:10:02"


class Test:
    def __init__(self, rtvmm, guest, dp, spec):
        self.rtvmm, self.guest, self.dp = rtvmm, guest, dp
        self.doc = yaml.safe_load(open(spec))
        self.tmp = tempfile.mkdtemp(prefix="rtvmm-nicstats.")
        self.procs = []
        self.t0 = time.monotonic()

    def log(self, msg):
        print("[%5.1f s] %s" % (time.monotonic() - self.t0, msg), flush=True)

    def fail(self, msg):
        print("FAIL: " + msg)
        for name in ("rtvmm.log", "dataplane.log"):
            path = os.path.join(self.tmp, name)
            if os.path.exists(path):
                print("---- %s (last 3000 bytes)" % name)
                print(open(path, errors="replace").read()[-3000:])
        self.cleanup()
        sys.exit(1)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        # DPDK's runtime directory for our --file-prefix (a killed dataplane leaves it)
        shutil.rmtree("/var/run/dpdk/rtvmm-nicstats%d" % os.getpid(), ignore_errors=True)

    def call(self, method, path):
        status, _, body = api_call(self.api, method, path)
        return status, body

    def counters(self):
        """vm.counters, checked against the document's schema; (answer, seconds it took)."""
        t = time.monotonic()
        status, body = self.call("GET", "/api/v1/vm.counters")
        dt = time.monotonic() - t
        if status != 200:
            self.fail("vm.counters answered %d: %s" % (status, body[:300]))
        value = json.loads(body)
        root = {"$ref": "#/components/schemas/VmCounters", "components": self.doc["components"]}
        try:
            jsonschema.Draft202012Validator(root).validate(value)
        except jsonschema.ValidationError as e:
            self.fail("vm.counters does not match VmCounters: %s at %s (%s)" % (
                e.message, list(e.absolute_path), body[:600]))
        return value, dt

    def ping_ok(self, why):
        status, _ = self.call("GET", "/api/v1/vmm.ping")
        if status != 200:
            self.fail("vmm.ping answered %d %s" % (status, why))

    def wait_for(self, path, text, pid_proc, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if os.path.exists(path) and text in open(path, errors="replace").read():
                return
            if pid_proc.poll() is not None:
                self.fail("%s exited (%d) before '%s'" % (pid_proc.args[0], pid_proc.returncode, text))
            time.sleep(0.1)
        self.fail("no '%s' in %s after %d s" % (text, os.path.basename(path), seconds))

    def start_dataplane(self, cpu):
        self.stats = os.path.join(self.tmp, "dp.sock")
        self.dplog = os.path.join(self.tmp, "dataplane.log")
        args = [self.dp, "run", "--no-huge", "--lcores", str(cpu), "--file-prefix",
                "rtvmm-nicstats%d" % os.getpid(), "--fwd", "xconnect", "--pair", "0:0",
                "--pair", "1:1", "--stats-socket", self.stats,
                "--eal", "--log-level=lib.vhost.config:warning",
                "--port", "vhost:" + os.path.join(self.tmp, "a.sock"),
                "--port", "vhost:" + os.path.join(self.tmp, "b.sock")]
        self.dpp = subprocess.Popen(args, stdout=open(self.dplog, "w"), stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs.append(self.dpp)
        self.wait_for(self.dplog, "rtvmm-dataplane: ready", self.dpp, 60)
        self.log("rtvmm-dataplane ready (xconnect, each port looped back, poll lcore %d)" % cpu)

    def dp_port0(self):
        out = subprocess.run([self.dp, "stats", "--socket", self.stats, "--json"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode:
            self.fail("rtvmm-dataplane stats: %s" % out.stderr)
        return json.loads(out.stdout)["ports"][0]

    def start_rtvmm(self, pin):
        self.api = os.path.join(self.tmp, "api.sock")
        self.vmlog = os.path.join(self.tmp, "rtvmm.log")
        args = pin + [self.rtvmm, "run", "--kernel", self.guest, "--test-device", "--memory", "64M",
                      "--net", "socket=%s,mac=%s,stats_socket=%s" % (
                          os.path.join(self.tmp, "a.sock"), MAC0, self.stats),
                      "--net", "socket=%s,mac=%s" % (os.path.join(self.tmp, "b.sock"), MAC1),
                      "--cmdline", "test=net net=ping peer=02:00:00:00:00:99 probe_ms=10 "
                      "wait_ms=90000 limit_ms=90000 expect_mac=" + MAC0,
                      "--api-socket", self.api]
        self.vm = subprocess.Popen(args, stdout=open(self.vmlog, "w"), stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        self.procs.append(self.vm)
        self.wait_for(self.vmlog, "VM built in", self.vm, 60)
        end = time.monotonic() + 30    # the API starts after the build report
        while True:
            try:
                if self.call("GET", "/api/v1/vmm.ping")[0] == 200:
                    break
            except OSError:
                pass
            if self.vm.poll() is not None or time.monotonic() > end:
                self.fail("rtvmm's API did not answer (rtvmm %s)" % (
                    "alive" if self.vm.poll() is None else "exited %d" % self.vm.returncode))
            time.sleep(0.1)
        self.log("rtvmm up, its API answers (%s)" % (" ".join(pin) or "not pinned"))

    def backend(self, value, nic):
        if nic not in value or "backend" not in value[nic]:
            self.fail("vm.counters has no %s.backend: %s" % (nic, json.dumps(value)[:600]))
        return value[nic]["backend"]

    def traffic(self):
        # Wait for the guest's frames, then read the API, the dataplane, the API again.
        end = time.monotonic() + 45
        while True:
            a, _ = self.counters()
            b = self.backend(a, "net0")
            if "error" in b:
                self.fail("net0's backend: %s" % b["error"])
            if b["tx_packets"] >= 20 and b["rx_packets"] >= 20:
                break
            if time.monotonic() > end:
                self.fail("net0's backend counters did not grow: %s" % b)
            time.sleep(0.5)
        port = self.dp_port0()
        c, _ = self.counters()
        a0, c0 = a["net0"]["backend"], self.backend(c, "net0")
        self.log("net0 backend: %s" % json.dumps(c0))
        for guest, dp in (("tx_packets", "RX-packets"), ("rx_packets", "TX-packets"),
                          ("tx_bytes", "RX-bytes"), ("rx_bytes", "TX-bytes")):
            if not a0[guest] <= port[dp] <= c0[guest]:
                self.fail("net0 %s: the API said %d then %d, the dataplane's port said %s %d "
                          "between them" % (guest, a0[guest], c0[guest], dp, port[dp]))
        if c0["tx_packets"] <= a0["tx_packets"] or c0["rx_packets"] <= a0["rx_packets"]:
            self.fail("net0's backend counters did not grow between two reads: %s then %s" % (a0, c0))
        if c0["port"] != 0 or c0["link"] != "up" or c0["stats_socket"] != self.stats:
            self.fail("net0's backend: wrong port, link or socket: %s" % c0)
        if c0["tx_bytes"] != 64 * c0["tx_packets"]:
            self.fail("net0's backend: the guest sends 64-byte frames: %s" % c0)
        if self.backend(c, "net1") is not None:
            self.fail("net1 names no stats socket, yet its backend is %s" % c["net1"]["backend"])
        # The CLI, text and JSON.
        text = subprocess.run([self.rtvmm, "ctl", self.api, "counters"], capture_output=True,
                              text=True, timeout=20)
        want = ["backend: rtvmm-dataplane port 0 (port0), stats socket " + self.stats, "rx_packets", "tx_dropped",
                "not asked (the NIC names no rtvmm-dataplane stats socket)"]
        if text.returncode or any(w not in text.stdout for w in want):
            self.fail("rtvmm ctl counters (status %d) lacks one of %s:\n%s" % (
                text.returncode, want, text.stdout))
        js = subprocess.run([self.rtvmm, "ctl", self.api, "counters", "--json"],
                            capture_output=True, text=True, timeout=20)
        if js.returncode or json.loads(js.stdout)["net0"]["backend"]["port"] != 0:
            self.fail("rtvmm ctl counters --json: %s" % js.stdout[:600])
        self.log("guest-view counters agree with the dataplane and grow; net1 null; ctl prints them")

    def hostile(self, name, behave, want):
        """A peer of ours in the stats socket's place: the API names it, fast, and keeps serving."""
        os.rename(self.stats, self.stats + ".real")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(self.stats)
        srv.listen(8)
        stop = threading.Event()

        def serve():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                threading.Thread(target=behave, args=(conn, stop), daemon=True).start()

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        value, dt = self.counters()
        b = self.backend(value, "net0")
        stop.set()
        th.join()
        srv.close()
        os.unlink(self.stats)
        os.rename(self.stats + ".real", self.stats)
        wants = want if isinstance(want, tuple) else (want,)
        if "error" not in b or not any(w in b["error"] for w in wants):
            self.fail("a stats peer that %s: backend %s, expected an error with '%s'" % (name, b, want))
        if dt > 2.0:
            self.fail("a stats peer that %s held vm.counters %.1f s" % (name, dt))
        self.ping_ok("after a stats peer that " + name)
        self.log("a stats peer that %s: '%s' in %.2f s, the API serves on" % (name, b["error"], dt))

    def run(self):
        if not os.path.exists("/dev/kvm"):
            print("SKIP: /dev/kvm does not exist: no KVM here")
            return 77
        if self.dp == "none":
            print("SKIP: rtvmm-dataplane was not built: libdpdk (Debian libdpdk-dev) was not found "
                  "at configure time")
            return 77
        cpus = sorted(os.sched_getaffinity(0))
        box = os.environ.get("RTVMM_KVMBOX") == "1"
        # In the box the monitor stays on box cpu 1 (README, Tests), the poll lcore on cpu 0.
        pin, dp_cpu = (["taskset", "-c", "1"], 0) if box else ([], cpus[-1])
        self.start_dataplane(dp_cpu)
        self.start_rtvmm(pin)
        self.traffic()

        def silent(conn, stop):
            stop.wait()
            conn.close()

        def garbage(conn, stop):
            conn.sendall(b"\x00\xffHTTP/1.1 200 OK\r\n{\"version\": 1, \"ports\": [[[[")
            conn.close()

        def flood(conn, stop):
            try:
                conn.sendall(b"[" * (5 << 20))
            except OSError:
                pass
            conn.close()

        self.hostile("never answers", silent, "no complete reply within 500 ms")
        self.hostile("answers garbage", garbage, "not a stats document")
        # 4 MiB read within 500 ms, or not (a slow box): either way a clear refusal
        self.hostile("floods 5 MiB", flood, ("the reply exceeds 4194304 bytes",
                                             "no complete reply within 500 ms"))

        self.dpp.send_signal(signal.SIGKILL)
        self.dpp.wait()
        for _ in range(3):
            value, dt = self.counters()
            b = self.backend(value, "net0")
            if "error" not in b or "connect" not in b["error"] or dt > 2.0:
                self.fail("the dataplane killed: backend %s after %.1f s" % (b, dt))
            self.ping_ok("with the dataplane dead")
        self.log("dataplane killed: '%s', the API serves on" % b["error"])
        status, body = self.call("PUT", "/api/v1/vm.shutdown")
        if status != 204:
            self.fail("vm.shutdown answered %d: %s" % (status, body[:300]))
        try:
            rc = self.vm.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("rtvmm did not stop within 30 s of vm.shutdown")
        if rc != 0:
            self.fail("rtvmm exited with %d after vm.shutdown (159: a seccomp kill)" % rc)
        self.log("vm.shutdown: rtvmm exited 0")
        self.cleanup()
        print("PASS")
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__)
        sys.exit(2)
    test = Test(*sys.argv[1:5])
    try:
        sys.exit(test.run())
    except SystemExit:
        raise
    except BaseException as e:
        test.fail("%s: %s" % (type(e).__name__, e))
