#!/usr/bin/env python3
"""Snapshot restore and live migration, rtvmm vs QEMU: the same bare-metal guest, the same
memory and vCPU, rounds interleaved in one run.

The guest: BUILD/bench/guest/rtvmm-guest.elf, memsum mode (test=none memsum=100000000), 1 vCPU,
--memory-mib (default 256, --quick 64). It rewrites one page of a 4 MiB buffer per round and
prints one line per round, "rtvmm-guest: memsum K sum S" (round K's line depends on K only), as
fast as its console takes them; every 64 rounds it sums the whole buffer again and exits 113 on
a mismatch: a page restored or migrated wrong stops it. Every restored or migrated guest must
run 64 rounds past its first line (one whole-buffer check) before the round counts.

1. Restore. Each monitor runs the guest --warm-rounds rounds and saves it once:
     rtvmm  `rtvmm ctl SOCKET pause`, then `rtvmm ctl SOCKET snapshot DIR`
     qemu   QMP stop, then `migrate "exec:cat > FILE"` (QEMU's documented way to save a VM to
            a file), max-bandwidth unlimited, polled with query-migrate to completed
   then --rounds rounds of, in each, one restore per monitor (rtvmm, then QEMU):
     rtvmm  `rtvmm run <the same machine> --restore DIR`
     qemu   the same QEMU command line with -incoming "exec:cat FILE"; QMP query-status polled
            every 2 ms until the stream is loaded, then `cont` (the guest was saved stopped,
            and QEMU loads it stopped)
   Figures: seconds from launch to the guest's first whole console line (restore_guest_line:
   the guest runs again; first_output_s: to its first byte, often the rest of the line the
   save cut), and for rtvmm to its own "restored the snapshot" line
   (restore_monitor_line) with the load time and time since start it prints (restore_load);
   the saved size on disk (snapshot_disk_mib: rtvmm's memory.bin is sparse, QEMU's stream sends
   a zero page as a flag). Ratio rtvmm/qemu of the launch-to-guest-line medians.
2. Live migration on 127.0.0.1 (loopback TCP), --migrate-rounds rounds, each one migration per
   monitor (rtvmm, then QEMU), the guest running --warm-rounds rounds and --warm-s seconds on
   the source first (it keeps dirtying memory throughout):
     rtvmm  destination `rtvmm run <the same machine> --incoming tcp:127.0.0.1:PORT`, source
            `rtvmm ctl SOCKET migrate tcp:127.0.0.1:PORT --json` (downtime budget 300 ms, at
            most 30 rounds: rtvmm's defaults)
     qemu   destination with -incoming tcp:127.0.0.1:PORT, source QMP migrate-set-parameters
            downtime-limit 300 (rtvmm's budget) and max-bandwidth unlimited (QEMU's default
            is 32 MiB/s; rtvmm has no limit), migrate, query-migrate polled every 10 ms until
            completed; the source quits, the destination runs on
   Figures (median over the rounds, every round's value kept): migrate_total_s and
   migrate_downtime_ms as each monitor reports them (rtvmm: total_ns, downtime_ns; QEMU:
   total-time, downtime), migrate_console_gap_ms: the time between the source's last guest
   line and the destination's first as this program reads them (the downtime seen from
   outside), migrate_rounds (rtvmm: pre-copy rounds; QEMU: dirty-sync-count),
   migrate_pages_sent (rtvmm: pages sent; QEMU: ram.normal) and migrate_mib_sent (bytes on the
   wire; QEMU: ram.transferred). Ratios rtvmm/qemu of total, downtime and console gap.

Every ratio: median over median, with every round's own ratio (the two monitors measured as
neighbours) and their spread, and a verdict only when the rounds separate (every rtvmm round
below, or above, every QEMU round). No goal: the figures compare, they do not gate.

QEMU: qemu-system-x86_64 -enable-kvm -M microvm (--qemu-machine pc for the PC) -cpu
host,-arch-capabilities, RAM from memory-backend-memfd, the ELF entered through its PVH note,
the console on stdio (bench/boot.py's command line), QMP on a unix socket. Monitors run
SCHED_OTHER on benchlib.anywhere_cpus: every cpu, but in scripts/kvmbox the measure cpu alone,
source and destination alike; there (RTVMM_KVMBOX=1, every instruction emulated) the figures
show the benchmark works and are not timing: the document says "function_only".

Budget: --quick (2 rounds of each, 64 MiB) took 60-75 s inside scripts/kvmbox, where every
step is far slower than on a KVM host; not yet run on a native KVM host.
"""
import collections
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from boot import qemu_argv  # noqa: E402

NAME = "migration"
MONITORS = ("rtvmm", "qemu")
CMDLINE = "test=none memsum=100000000"
ROUND = re.compile(r"memsum (\d+) sum [0-9a-f]{16}")
RESTORED = re.compile(r"restored the snapshot \S+ in ([\d.]+) s \(([\d.]+) s since start\)")
CHECK_ROUNDS = 64        # the guest sums its whole buffer again every 64 rounds
UNLIMITED_BPS = 1 << 40  # QEMU's max-bandwidth "no limit" (its default is 32 MiB/s)


def add_arguments(ap):
    """Options of this benchmark on top of benchlib's."""
    ap.add_argument("--rounds", type=int, default=None,
                    help="restores per monitor (default 10, --quick 2)")
    ap.add_argument("--migrate-rounds", type=int, default=None,
                    help="live migrations per monitor (default 5, --quick 2)")
    ap.add_argument("--memory-mib", type=int, default=None, help="guest RAM (default 256, --quick 64)")
    ap.add_argument("--warm-rounds", type=int, default=200,
                    help="guest rounds on the source before its snapshot or migration (default 200)")
    ap.add_argument("--warm-s", type=float, default=None,
                    help="and seconds of it running, before a migration (default 1, --quick 0.5)")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds any one step may take (default 120)")
    ap.add_argument("--data-dir", default=None,
                    help="where the snapshots go (default: the system's temporary directory)")
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU program")
    ap.add_argument("--qemu-machine", choices=("microvm", "pc"), default="microvm",
                    help="QEMU's machine (default microvm)")


# ---------------------------------------------------------------- processes

class Monitor:
    """One monitor process running the memsum guest. A thread per stream reads its stdout (the
    guest's console) and stderr (the monitor's messages) as they come, so that no console
    stalls its guest while the benchmark waits on something else; each line is stamped with
    time.monotonic() when read. Guest lines are counted (first and last round, and when), the
    other lines kept; LOGFILE gets the other lines and the guest's first and last lines."""

    def __init__(self, argv, name, logfile=None):
        self.argv, self.name, self.logfile = argv, name, logfile
        self.cond = threading.Condition()
        self.first = self.last = None          # (round, monotonic time) of whole guest lines
        self.first_output = None               # monotonic time of the first byte on stdout
        self.count = 0
        self.other = []                        # (monotonic time, stream, line)
        self.head, self.tail = [], collections.deque(maxlen=8)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.readers = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                        for s, n in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self.readers:
            t.start()

    @property
    def pid(self):
        return self.proc.pid

    def _read(self, stream, which):
        buf, fd = b"", stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            now = time.monotonic()
            if chunk and which == "out" and self.first_output is None:
                self.first_output = now
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
            else:
                lines, buf = ([buf] if buf else []), b""
            with self.cond:
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    m = ROUND.search(line) if which == "out" else None
                    if m:
                        k = int(m.group(1))
                        self.first = self.first or (k, now)
                        self.last = (k, now)
                        self.count += 1
                        if len(self.head) < 5:
                            self.head.append((now, which, line))
                        self.tail.append((now, which, line))
                    else:
                        self.other.append((now, which, line))
                self.cond.notify_all()
            if not chunk:
                return

    def _wait(self, pred, timeout):
        """Waits until PRED() (called under the lock) is true or the process exited and its
        streams ended; returns PRED()'s last value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v or time.monotonic() > deadline:
                    return v
                if self.proc.poll() is not None and not any(t.is_alive() for t in self.readers):
                    return pred()
                self.cond.wait(min(0.2, max(deadline - time.monotonic(), 0.001)))

    def wait_round(self, k, timeout, what):
        """Waits for the guest's round K (its first line when K is None); raises if it never comes."""
        if not self._wait(lambda: self.last and (k is None or self.last[0] >= k), timeout):
            raise RuntimeError(f"{self.name}: {what}: no guest round {k if k is not None else ''} "
                               f"within {timeout:.0f} s ({self.state()}); last lines: {self.lines_tail()}")
        return self.last[0]

    def wait_text(self, pattern, timeout, what):
        """Waits for a line (not a guest round) matching PATTERN; returns (monotonic time, match)."""
        rx = re.compile(pattern)

        def found():
            for t, _s, line in self.other:
                m = rx.search(line)
                if m:
                    return t, m
            return None
        got = self._wait(found, timeout)
        if not got:
            raise RuntimeError(f"{self.name}: {what}: no '{pattern}' within {timeout:.0f} s "
                               f"({self.state()}); last lines: {self.lines_tail()}")
        return got

    def state(self):
        rc = self.proc.poll()
        return "running" if rc is None else f"exited {rc}"

    def lines_tail(self, n=6):
        with self.cond:
            lines = sorted(self.other[-n:] + list(self.tail)[-2:])
        return " | ".join(l for _t, _s, l in lines[-n:]) or "none"

    def wait(self, timeout):
        """Waits for the process to exit and its streams to end; returns its status or None."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self.readers:
            t.join(timeout=10)
        return rc

    def stop(self, timeout=10):
        """SIGINT (rtvmm stops its VM now: SIGTERM would press the ACPI power button, which this
        guest does not answer; QEMU quits on either), then SIGKILL after TIMEOUT; returns the
        exit status. Writes the log."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        rc = self.wait(timeout)
        if rc is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = self.wait(30)
        self.write_log()
        return rc

    def write_log(self):
        if not self.logfile:
            return
        with self.cond:
            lines = sorted(set(self.other + self.head + list(self.tail)))
            count, first, last = self.count, self.first, self.last
        with open(self.logfile, "w") as f:
            f.write(f"# {' '.join(shlex.quote(a) for a in self.argv)}\n# {count} guest lines"
                    + (f", rounds {first[0]}..{last[0]}" if first else "")
                    + "; only the first and last guest lines are kept here\n")
            for t, s, line in lines:
                f.write(f"[{t - self.t0:9.3f}] {s} {line}\n")


class Qmp:
    """A QMP client on QEMU's unix socket (-qmp unix:PATH,server=on,wait=off)."""

    def __init__(self, path, mon, timeout):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if mon.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{mon.name}: no QMP on {path} ({mon.state()}): {mon.lines_tail()}")
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rwb")
        self.greeting = self._line()
        self.execute("qmp_capabilities")

    def _line(self):
        raw = self.f.readline()
        if not raw:
            raise EOFError("QMP: QEMU closed the connection")
        return json.loads(raw)

    def execute(self, cmd, arguments=None):
        """Runs CMD; returns its "return" value, raises on an "error" (events are skipped)."""
        msg = {"execute": cmd}
        if arguments:
            msg["arguments"] = arguments
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = self._line()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"QMP {cmd}: {r['error'].get('desc', r['error'])}")

    def quit(self):
        try:
            self.execute("quit")
        except (EOFError, OSError, ValueError):
            pass                          # QEMU may close before it answers
        self.close()

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


def qmp_migrate(qmp, uri, timeout, params):
    """Sets the migration PARAMS, migrates to URI and polls query-migrate every 10 ms until it
    completes; returns query-migrate's last answer. Raises when it fails or takes over TIMEOUT."""
    qmp.execute("migrate-set-parameters", params)
    qmp.execute("migrate", {"uri": uri})
    deadline = time.monotonic() + timeout
    while True:
        info = qmp.execute("query-migrate")
        st = info.get("status")
        if st == "completed":
            return info
        if st in ("failed", "cancelled"):
            raise RuntimeError(f"QEMU migration to {uri}: {st}: {info.get('error-desc', info)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"QEMU migration to {uri}: still {st} after {timeout:.0f} s")
        time.sleep(0.01)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def disk_mib(path):
    """MiB a file or a directory's files take on disk (allocated blocks: holes are free)."""
    files = [path] if os.path.isfile(path) else [os.path.join(path, f) for f in os.listdir(path)]
    return round(sum(os.stat(f).st_blocks * 512 for f in files) / 1048576, 2)


# ---------------------------------------------------------------- the runs

class Bench:
    """What every step needs: the options, the commands, the scratch directory, the result."""

    def __init__(self, args, res, rtvmm, elf, tmp, monitors):
        self.args, self.res, self.rtvmm, self.tmp, self.monitors = args, res, rtvmm, tmp, monitors
        self.mem = args.memory_mib
        on = ["taskset", "-c", ",".join(map(str, benchlib.anywhere_cpus(args)))]
        self.cmd = {"rtvmm": on + [rtvmm, "run", "--kernel", elf, "--test-device", "--vcpus", "1",
                                   "--memory", f"{self.mem}M", "--cmdline", CMDLINE],
                    "qemu": on + qemu_argv(args, f"qemu-{args.qemu_machine}", self.mem, 1, elf, CMDLINE)
                    + ["-name", "guest,debug-threads=on"]}    # threads named: "CPU 0/KVM"
        self.saved = {}
        self.placed = set()

    def start(self, mon, tag, extra=()):
        """Starts monitor MON's guest with EXTRA options; its log is OUTDIR/TAG.log."""
        sock = os.path.join(self.tmp, f"{tag}.sock")
        extra = list(extra) + (["--api-socket", sock] if mon == "rtvmm"
                               else ["-qmp", f"unix:{sock},server=on,wait=off"])
        m = Monitor(self.cmd[mon] + extra, f"{mon} {tag}", os.path.join(self.args.outdir, f"{tag}.log"))
        m.sock = sock
        return m

    def ctl(self, sock, *argv):
        r = subprocess.run([self.rtvmm, "ctl", sock, *argv], capture_output=True, text=True,
                           timeout=self.args.timeout * 5)
        if r.returncode:
            raise RuntimeError(f"rtvmm ctl {' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
        return json.loads(r.stdout) if "--json" in argv else r.stdout

    def record_placement(self, mon, m):
        """The placement of MON's threads, read back once, while its restored guest runs."""
        if mon in self.placed:
            return
        self.placed.add(mon)
        for tid, comm in sorted(benchlib.threads(m.pid).items()):
            try:
                cpus, pol, prio = benchlib.thread_placement(tid)
            except OSError:
                continue
            benchlib.add_pinning(self.res, mon, comm, cpus, pol, prio)

    def guest_checked(self, m, what):
        """Waits until the guest ran one whole-buffer check past its first line; returns its first round."""
        m.wait_round(None, self.args.timeout, what)
        first = m.first[0]
        m.wait_round(first + CHECK_ROUNDS, self.args.timeout, what + " (a whole-buffer check)")
        return first

    # ------------------------------------------------------------ 1. restore

    def save(self, mon):
        """Runs MON's guest, saves it; returns the round it had reached."""
        a = self.args
        m = self.start(mon, f"save-{mon}")
        try:
            m.wait_round(a.warm_rounds, a.timeout, "source before the save")
            if mon == "rtvmm":
                path = os.path.join(self.tmp, "snap-rtvmm")
                self.ctl(m.sock, "pause")
                time.sleep(0.2)                 # the last line the guest printed comes in
                at = m.last[0]
                got = self.ctl(m.sock, "snapshot", path, "--json")
                extra = {"paused_s": round(got["paused_ns"] / 1e9, 4),
                         "memory_written_mib": round(got["memory_written_bytes"] / 1048576, 2),
                         "state_kib": round(got["state_bytes"] / 1024, 1)}
            else:
                path = os.path.join(self.tmp, "snap-qemu.mig")
                qmp = Qmp(m.sock, m, a.timeout)
                qmp.execute("stop")
                time.sleep(0.2)                 # the last line the guest printed comes in
                at = m.last[0]
                t = time.monotonic()
                info = qmp_migrate(qmp, f"exec:cat > {shlex.quote(path)}", a.timeout,
                                   {"max-bandwidth": UNLIMITED_BPS})
                extra = {"saved_s": round(time.monotonic() - t, 4),
                         "total_time_ms": info.get("total-time"),
                         "ram_transferred_mib": round(info["ram"]["transferred"] / 1048576, 2)}
                qmp.quit()
        finally:
            rc = m.stop()
        self.saved[mon] = path
        benchlib.add_figure(self.res, "snapshot_disk_mib", mon, disk_mib(path), "MiB", "restore",
                            at_round=at, source_status=rc, **extra)
        benchlib.log(NAME, f"saved {mon} at round {at}: {path}, {disk_mib(path)} MiB on disk, {extra}")
        return at

    def restore(self, mon, i, at):
        """One restore of MON's saved guest; returns {"guest_line", "monitor_line", ...} in seconds."""
        a = self.args
        extra = (["--restore", self.saved[mon]] if mon == "rtvmm"
                 else ["-incoming", f"exec:cat {shlex.quote(self.saved[mon])}"])
        m = self.start(mon, f"restore-{mon}-{i + 1}", extra)
        out = {}
        try:
            if mon == "qemu":
                out["cont"] = self.qemu_cont(m)
            first = self.guest_checked(m, "restored guest")
            out["guest_line"] = m.first[1] - m.t0
            out["first_output"] = m.first_output - m.t0
            if mon == "rtvmm":
                t, mt = m.wait_text(RESTORED.pattern, a.timeout, "restore")
                out.update(monitor_line=t - m.t0, load=float(mt.group(1)), since_start=float(mt.group(2)))
            out["first_round"] = first
            if not at < first <= at + 2:     # at + 2: the save cut round at + 1's line
                self.res["notes"].append(f"{mon} restore {i + 1}: the first whole round is {first}, "
                                         f"the guest was saved at round {at}")
            self.record_placement(mon, m)
        finally:
            m.stop()
        return out

    def qemu_cont(self, m):
        """Polls a restoring QEMU's QMP query-status every 2 ms until the stream is loaded; sends
        cont when it reads paused (a guest saved stopped is loaded stopped); returns the seconds
        from launch to the cont."""
        qmp = Qmp(m.sock, m, self.args.timeout)
        deadline = time.monotonic() + self.args.timeout
        try:
            while True:
                st = qmp.execute("query-status")["status"]
                if st == "paused":
                    qmp.execute("cont")
                    return time.monotonic() - m.t0
                if st == "running":
                    return None
                if st != "inmigrate" or time.monotonic() > deadline:
                    raise RuntimeError(f"{m.name}: QEMU reads {st} while loading its saved guest: {m.lines_tail()}")
                time.sleep(0.002)
        finally:
            qmp.close()

    def restores(self, rounds):
        """Part 1: one save per monitor, then ROUNDS rounds of one restore per monitor."""
        at = {mon: self.save(mon) for mon in self.monitors}
        runs = {mon: [] for mon in self.monitors}
        for i in range(rounds):
            for mon in self.monitors:
                r = self.restore(mon, i, at[mon])
                runs[mon].append(r)
                benchlib.log(NAME, f"restore {i + 1}/{rounds} {mon}: "
                             + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in r.items()))
        figs = {}
        for mon in self.monitors:
            extra = {"qmp_cont_s": [r["cont"] and round(r["cont"], 4) for r in runs[mon]]} if mon == "qemu" else {}
            figs[mon] = self.figure("restore_guest_line", mon, [r["guest_line"] for r in runs[mon]],
                                    "s", "restore", first_rounds=[r["first_round"] for r in runs[mon]],
                                    first_output_s=[round(r["first_output"], 4) for r in runs[mon]], **extra)
        self.figure("restore_monitor_line", "rtvmm", [r["monitor_line"] for r in runs["rtvmm"]], "s", "restore")
        self.figure("restore_load", "rtvmm", [r["load"] for r in runs["rtvmm"]], "s", "restore",
                    since_start=[r["since_start"] for r in runs["rtvmm"]],
                    meaning="rtvmm's own 'restored the snapshot DIR in X s': the snapshot checked and loaded")
        if "qemu" in self.monitors:
            self.ratio("restore to the guest's line rtvmm/qemu", figs)

    # ------------------------------------------------------------ 2. live migration

    def migrate(self, mon, i):
        """One live migration of MON's guest on loopback; returns its figures."""
        a = self.args
        port = free_port()
        url = f"tcp:127.0.0.1:{port}"
        tag = f"migrate-{mon}-{i + 1}"
        dst = self.start(mon, f"{tag}-dst", ["--incoming", url] if mon == "rtvmm" else ["-incoming", url])
        src = dq = sq = None
        try:
            if mon == "rtvmm":
                dst.wait_text(r"waiting for a live migration", a.timeout, "destination")
            else:
                dq = Qmp(dst.sock, dst, a.timeout)   # QEMU answers QMP once -incoming listens
            src = self.start(mon, f"{tag}-src")
            src.wait_round(a.warm_rounds, a.timeout, "source before the migration")
            time.sleep(a.warm_s)
            if mon == "rtvmm":
                got = self.ctl(src.sock, "migrate", url, "--json")
                rc = src.wait(a.timeout)
                if rc != 0:
                    raise RuntimeError(f"rtvmm source: exit status {rc} after the migration: {src.lines_tail()}")
                dst.wait_text(r"the guest runs here now", a.timeout, "destination")
                out = {"total_s": got["total_ns"] / 1e9, "downtime_ms": got["downtime_ns"] / 1e6,
                       "rounds": got["rounds"], "pages_sent": got["pages_sent"],
                       "mib_sent": got["bytes_sent"] / 1048576, "last_dirty_pages": got["last_dirty_pages"],
                       "zero_mib": got["zero_bytes"] / 1048576, "bandwidth_mibs": got["bandwidth_bps"] / 1048576}
            else:
                sq = Qmp(src.sock, src, a.timeout)
                info = qmp_migrate(sq, url, a.timeout * 5,
                                   {"downtime-limit": 300, "max-bandwidth": UNLIMITED_BPS})
                sq.quit()
                sq = None
                if src.wait(a.timeout) is None:
                    raise RuntimeError("qemu source: still running after QMP quit")
                ram = info["ram"]
                out = {"total_s": info["total-time"] / 1e3, "downtime_ms": float(info["downtime"]),
                       "rounds": ram["dirty-sync-count"], "pages_sent": ram["normal"],
                       "mib_sent": ram["transferred"] / 1048576, "zero_pages": ram["duplicate"],
                       "setup_ms": info.get("setup-time"), "mbps": ram.get("mbps")}
            last = src.last
            first = self.guest_checked(dst, "migrated guest")
            out.update(console_gap_ms=(dst.first[1] - last[1]) * 1e3, source_last_round=last[0],
                       destination_first_round=first)
            if not last[0] < first <= last[0] + 2:
                self.res["notes"].append(f"{mon} migration {i + 1}: the source's last whole round is "
                                         f"{last[0]}, the destination's first {first}")
        finally:
            for q in (sq, dq):
                if q:
                    q.close()
            for m in (src, dst):
                if m:
                    m.stop()
        return out

    def migrations(self, rounds):
        """Part 2: ROUNDS rounds of one live migration per monitor."""
        runs = {mon: [] for mon in self.monitors}
        for i in range(rounds):
            for mon in self.monitors:
                r = self.migrate(mon, i)
                runs[mon].append(r)
                benchlib.log(NAME, f"migrate {i + 1}/{rounds} {mon}: "
                             + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in r.items()))
        figs = {}
        meaning = {"rtvmm": {"migrate_rounds": "pre-copy rounds", "migrate_pages_sent": "pages sent",
                             "migrate_mib_sent": "bytes on the wire"},
                   "qemu": {"migrate_rounds": "ram dirty-sync-count", "migrate_pages_sent": "ram normal pages",
                            "migrate_mib_sent": "ram transferred"}}
        for key, fig, unit in (("total_s", "migrate_total_s", "s"), ("downtime_ms", "migrate_downtime_ms", "ms"),
                               ("console_gap_ms", "migrate_console_gap_ms", "ms"),
                               ("rounds", "migrate_rounds", "rounds"), ("pages_sent", "migrate_pages_sent", "pages"),
                               ("mib_sent", "migrate_mib_sent", "MiB")):
            for mon in self.monitors:
                extra = {"meaning": meaning[mon][fig]} if fig in meaning[mon] else {}
                if fig == "migrate_total_s":
                    extra.update({k: [r[k] for r in runs[mon]] for k in runs[mon][0]
                                  if k not in ("total_s", "downtime_ms", "console_gap_ms", "rounds",
                                               "pages_sent", "mib_sent")})
                figs[(mon, fig)] = self.figure(fig, mon, [r[key] for r in runs[mon]], unit, "live migration",
                                               **extra)
        if "qemu" in self.monitors:
            for fig, label in (("migrate_total_s", "total"), ("migrate_downtime_ms", "downtime"),
                               ("migrate_console_gap_ms", "console gap")):
                self.ratio(f"migrate {label} rtvmm/qemu", {m: figs[(m, fig)] for m in self.monitors})

    # ------------------------------------------------------------ figures

    def figure(self, name, mon, values, unit, scenario, **extra):
        """The median of VALUES (one per round), with every round's value, min and max."""
        return benchlib.add_figure(self.res, name, mon, round(statistics.median(values), 6), unit, scenario,
                                   n=len(values), runs=[round(v, 6) for v in values],
                                   min=round(min(values), 6), max=round(max(values), 6), **extra)

    def ratio(self, name, figs):
        """rtvmm/qemu of two figures' medians, with the rounds' paired ratios and their spread."""
        a, b = figs["rtvmm"]["runs"], figs["qemu"]["runs"]
        r = benchlib.add_ratio(self.res, name, figs["rtvmm"]["value"], figs["qemu"]["value"])
        pairs = [x / y for x, y in zip(a, b) if y]
        r.update(rounds=len(pairs), per_round=[round(x, 4) for x in pairs],
                 spread=[round(min(pairs), 4), round(max(pairs), 4)] if pairs and r["value"] is not None else None)
        if benchlib.emulated_host():
            r["verdict"] = "not timing (KVM box)"
        elif max(a) < min(b):
            r["verdict"] = "rtvmm lower in every round"
        elif min(a) > max(b):
            r["verdict"] = "rtvmm higher in every round"
        else:
            r["verdict"] = "rounds overlap: no verdict"
        benchlib.log(NAME, f"{name}: {r['value'] if r['value'] is None else round(r['value'], 3)}, "
                           f"spread {r['spread']}, {r['verdict']}")
        return r


def run(args, new_result):
    """Checks what the run needs, then the restores, then the live migrations."""
    quick = args.quick
    rounds = args.rounds or (2 if quick else 10)
    mrounds = args.migrate_rounds or (2 if quick else 5)
    args.memory_mib = args.memory_mib or (64 if quick else 256)
    args.warm_s = args.warm_s if args.warm_s is not None else (0.5 if quick else 1.0)
    rtvmm = benchlib.tool(args, "rtvmm")
    elf = benchlib.tool(args, "bench/guest/rtvmm-guest.elf")
    res = new_result({"guest": elf, "cmdline": CMDLINE, "vcpus": 1, "memory_mib": args.memory_mib,
                      "restore_rounds": rounds, "migrate_rounds": mrounds, "warm_rounds": args.warm_rounds,
                      "warm_s": args.warm_s, "qemu_machine": args.qemu_machine,
                      "order": "rtvmm, qemu per round", "migration_url": "tcp:127.0.0.1:<free port>",
                      "qemu_parameters": {"downtime-limit": 300, "max-bandwidth": UNLIMITED_BPS}})
    missing = benchlib.need("taskset") or benchlib.need_kvm() or benchlib.need_built(args, rtvmm, elf)
    if missing:
        return benchlib.skip(res, missing)
    monitors = list(MONITORS)
    qmissing = benchlib.need(args.qemu)
    if qmissing:
        benchlib.skip_part(res, "qemu", qmissing)
        monitors.remove("qemu")
    box = benchlib.emulated_host()
    if box:
        res["function_only"] = ("run inside scripts/kvmbox (nested KVM in QEMU TCG, every instruction "
                                "emulated): the figures show the benchmark works, they are not timing")
        res["notes"].append("FUNCTION ONLY: " + res["function_only"])
    if not args.outdir:
        args.outdir = tempfile.mkdtemp(prefix="migration.")
    benchlib.note_host_load(res, NAME, benchlib.anywhere_cpus(args))
    res["notes"].append(benchlib.anywhere_note(args) + "; every monitor SCHED_OTHER, source and "
                        "destination alike")
    tmp = tempfile.mkdtemp(prefix="rtvmm-migration.", dir=args.data_dir)
    try:
        b = Bench(args, res, rtvmm, elf, tmp, monitors)
        res["config"]["commands"] = {m: b.cmd[m] for m in monitors}
        res["config"]["data_dir"] = tmp
        b.restores(rounds)
        b.migrations(mrounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["notes"] += [
        "restore: launch to the guest's first whole console line (guest running again) and, for rtvmm, "
        "to its 'restored the snapshot' line; each restored guest then ran 64 rounds (a whole-buffer "
        "check) before the round counted; the saved files were in the page cache (both alike)",
        "QEMU saved with QMP stop + migrate \"exec:cat > FILE\" and restored with -incoming \"exec:cat FILE\" "
        f"(-M {args.qemu_machine}, the ELF through PVH)",
        "live migration on 127.0.0.1: rtvmm's own figures (ctl migrate --json), QEMU's from query-migrate "
        "(downtime-limit 300 ms, max-bandwidth unlimited); console gap: the source's last guest line to "
        "the destination's first, as this program read them (the destination then ran a whole-buffer check)",
        "figures: median of the rounds (runs, min, max: every round); ratios: median/median, spread: the "
        "rounds' paired ratios",
    ]
    return res


if __name__ == "__main__":
    sys.exit(benchlib.main(NAME, __doc__, add_arguments, run))
