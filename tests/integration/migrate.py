#!/usr/bin/python3
"""Live migration (vmm/migrate.c, app/migration.c) of a running bare-metal guest between two
rtvmm processes on this host, over TCP on 127.0.0.1, driven by `rtvmm ctl SOCKET migrate`.

The guest (memsum=) rewrites one page of a 4 MiB buffer per round and prints the buffer's sum;
every 64 rounds it sums the whole buffer again and exits 113 when that differs from the sum it
kept in a register: a page the migration lost or sent stale fails it.

  1. Migrate: the source exits 0 ("migrated"), the destination's output continues the source's
     (every round once, in order: none lost or repeated across the switch-over) through three
     whole-buffer checks; the figures (rounds, pages, downtime) are printed. The guest rewrites
     256 pages a round (memsum_pages=) into KVM's dirty ring of 1024 entries (--dirty-ring), so
     its vCPUs fill the ring and harvest it themselves (KVM_EXIT_DIRTY_RING_FULL) while the
     migration's thread harvests it too; the answer must say "ring" with full-ring exits. On a
     KVM without the ring (KVM_CAP_DIRTY_LOG_RING) this case uses KVM's bitmap and says so.
  2. Refusals, each leaving the source's guest running (it prints on) and the destination
     exiting 1 with the reason: a destination with other memory; a byte flipped in the stream by
     a relay (checksum); a stream of another version; the destination killed mid-migration;
     a destination stopped by SIGINT while it receives; a migration cancelled by the operator
     (vm.migration-cancel), with vm.migration and vm.info answered while it ran (the stream
     held in a relay). A destination drops peers that are no migration source (an HTTP
     request, an empty connection) and waits on; SIGINT stops it. This source tracks writes
     with KVM's dirty bitmap (--dirty-ring 0).
  3. Placement (a destination started with a host plan): one whose node has fewer free 2 MiB
     hugepages than the plan asks, and one confined to a cpuset without its vCPU's planned cpu,
     refuse with the plan's line and field and exit 1 before they listen (the port is held
     meanwhile: a destination that bound it first would say "Address already in use"); one
     whose cpu is taken after it listens (moved into that cpuset) receives the whole guest,
     fails its placement proof, answers ERROR with the proof's finding (the plan's file, line
     and field), and the source's guest runs on. Then the same source migrates, over the
     bitmap, to a destination whose plan fits: 2 MiB pages, vcpu0 SCHED_FIFO on cpu 1, read
     back as planned. Sizes node 0's 2 MiB pool and makes a cpuset (cgroup v2, or v1's
     cpuset; mounts cgroup2 where none is), all undone at exit: it runs as root.

Usage: migrate.py RTVMM GUEST. Exits 77 only when /dev/kvm is absent.
"""
import fcntl
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROUND = re.compile(rb"memsum (\d+) sum [0-9a-f]{16}\n")
ARGS = ["--test-device", "--vcpus", "2", "--memory", "64M", "--cmdline", "test=none memsum=100000000"]
HP = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/"
UNDO = []   # what the test changed on the host, undone in reverse order at exit
HP_BEFORE = []   # node 0's 2 MiB pool size before the test changed it


def fail(msg, *logs):
    print("FAIL: " + msg)
    for path in logs:
        if os.path.exists(path):
            print("---- %s (last 30 lines)" % os.path.basename(path))
            print("\n".join(open(path, errors="replace").read().splitlines()[-30:]))
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Vm:
    """One rtvmm run: its guest output in NAME.out, its log in NAME.log, its API socket."""

    def __init__(self, rtvmm, guest, tmp, name, extra=(), args=ARGS, plan=None, wrap=None):
        self.out, self.log = os.path.join(tmp, name + ".out"), os.path.join(tmp, name + ".log")
        self.sock, self.rtvmm = os.path.join(tmp, name + ".sock"), rtvmm
        pin = ["taskset", "-c", "1"] if os.environ.get("RTVMM_KVMBOX") == "1" else []
        what = [plan, "--test-device"] if plan else ["--kernel", guest] + list(args)
        self.p = subprocess.Popen((wrap or pin) + [rtvmm, "run"] + what +
                                  ["--api-socket", self.sock] + list(extra),
                                  stdout=open(self.out, "wb"), stderr=open(self.log, "wb"),
                                  stdin=subprocess.DEVNULL)

    def rounds(self):
        return [int(m) for m in ROUND.findall(open(self.out, "rb").read())]

    def wait_text(self, what, text, timeout, path=None):
        path = path or self.log
        end = time.time() + timeout
        while time.time() < end:
            if text in open(path, errors="replace").read():
                return
            if self.p.poll() is not None and text not in open(path, errors="replace").read():
                fail("%s: '%s' never came; rtvmm exited %d" % (what, text, self.p.returncode),
                     self.log)
            time.sleep(0.1)
        fail("%s: no '%s' within %d s" % (what, text, timeout), self.log, self.out)

    def wait_round(self, what, n, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            r = self.rounds()
            if r and r[-1] >= n:
                return
            if self.p.poll() is not None:
                fail("%s: the guest stopped (rtvmm exited %d) before round %d" % (
                    what, self.p.returncode, n), self.log, self.out)
            time.sleep(0.1)
        fail("%s: no round %d within %d s" % (what, n, timeout), self.log, self.out)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def ctl(rtvmm, sock, *args):
    return subprocess.run([rtvmm, "ctl", sock] + list(args), capture_output=True, text=True,
                          timeout=600)


def check_continuous(rounds, what):
    for a, b in zip(rounds, rounds[1:]):
        if b != a + 1:
            fail("%s: round %d followed by %d (lost or repeated)" % (what, a, b))


def kvm_has_dirty_ring():
    """KVM_CHECK_EXTENSION(KVM_CAP_DIRTY_LOG_RING) on /dev/kvm: the largest ring in bytes."""
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        return fcntl.ioctl(fd, 0xAE03, 192) > 0
    finally:
        os.close(fd)


def handed_over(src, dst, ready, more, what):
    """The source exited 0 having migrated, the destination said `ready` and printed `more`
    rounds on, and the two outputs are one stream (a line the switch-over cut is finished by
    the destination); the source's last round."""
    try:
        rc = src.p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        fail("the source still runs 60 s after the migration", src.log)
    if rc != 0 or "migrated" not in open(src.log).read():
        fail("the source exited %d after the migration" % rc, src.log)
    last = src.rounds()[-1]
    dst.wait_text("destination", ready, 60)
    dst.wait_round("destination", last + more)
    joined = [int(m) for m in ROUND.findall(open(src.out, "rb").read() + open(dst.out, "rb").read())]
    check_continuous(joined, what)
    return last


def migrate_ok(rtvmm, guest, tmp):
    ring = kvm_has_dirty_ring()
    if not ring:
        print("note: this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING): the migration uses "
              "its bitmap, and the ring goes untested here")
    args = ARGS[:-1] + [ARGS[-1] + " memsum_pages=256", "--dirty-ring", "1024" if ring else "0"]
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "dst", ["--incoming", "tcp:127.0.0.1:%d" % port], args=args)
    dst.wait_text("destination", "waiting for a live migration", 60)
    src = Vm(rtvmm, guest, tmp, "src", args=args)
    src.wait_round("source", 20)
    r = ctl(rtvmm, src.sock, "migrate", "tcp:127.0.0.1:%d" % port, "--json")
    if r.returncode:
        fail("ctl migrate: %s %s" % (r.stdout, r.stderr), src.log, dst.log)
    fig = json.loads(r.stdout)
    if fig["dirty_log"] != ("ring" if ring else "bitmap") or (ring and not fig["ring_full_exits"]):
        fail("KVM's dirty log: %s with %d full-ring exits, expected %s" % (
            fig["dirty_log"], fig["ring_full_exits"], "a full ring" if ring else "the bitmap"),
            src.log)
    last = handed_over(src, dst, "the guest runs here now", 200, "source then destination")
    if dst.p.poll() is not None:
        fail("the destination's guest stopped: rtvmm exited %d" % dst.p.returncode, dst.log, dst.out)
    print("ok: migrated at round %d; the destination goes on (round %d), three whole-buffer "
          "checks passed" % (last, dst.rounds()[-1]))
    print("figures: %d rounds, %d pages sent, %d MiB zero not sent, %d bytes on the wire, %d "
          "pages after the stop, downtime %.1f ms, total %.1f ms, KVM's dirty %s, %d full-ring "
          "exits (the box: function, not timing)" % (
              fig["rounds"], fig["pages_sent"], fig["zero_bytes"] >> 20, fig["bytes_sent"],
              fig["last_dirty_pages"], fig["downtime_ns"] / 1e6, fig["total_ns"] / 1e6,
              fig["dirty_log"], fig["ring_full_exits"]))
    ctl(rtvmm, dst.sock, "shutdown")
    dst.p.wait(timeout=60)


def source_survives(src, what, n0):
    """The source's guest runs on: its rounds advance past n0 and its VM reads Running."""
    src.wait_round("source after " + what, n0 + 50)
    if src.p.poll() is not None:
        fail("the source stopped after " + what, src.log)
    r = ctl(src.rtvmm, src.sock, "info", "--json")
    state = json.loads(r.stdout).get("state") if r.returncode == 0 else r.stderr.strip()
    if state != "Running":
        fail("the source after %s: vm.info says '%s', expected Running" % (what, state), src.log)


class Relay(threading.Thread):
    """Relays source -> destination, flipping byte `flip_at` of that direction (or, with
    cut_at, closing both sides after that many bytes; with hold_at, holding what follows
    that many bytes until `release` is set; rcvbuf: its receive buffer from the source);
    destination -> source as it is."""

    def __init__(self, port_in, port_out, flip_at=None, cut_at=None, hold_at=None, rcvbuf=None):
        super().__init__(daemon=True)
        self.hold_at, self.release = hold_at, threading.Event()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.ls.bind(("127.0.0.1", port_in))
        self.ls.listen(1)
        self.port_out, self.flip_at, self.cut_at = port_out, flip_at, cut_at

    def run(self):
        a, _ = self.ls.accept()
        b = socket.create_connection(("127.0.0.1", self.port_out))

        def back():
            try:
                while True:
                    d = b.recv(65536)
                    if not d:
                        break
                    a.sendall(d)
            except OSError:
                pass
            try:
                a.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        threading.Thread(target=back, daemon=True).start()
        seen = 0
        try:
            while True:
                d = bytearray(a.recv(65536))
                if not d:
                    break
                if self.flip_at is not None and seen <= self.flip_at < seen + len(d):
                    d[self.flip_at - seen] ^= 0x5A
                if self.cut_at is not None and seen + len(d) >= self.cut_at:
                    for c in (a, b):
                        c.shutdown(socket.SHUT_RDWR)   # a FIN now, whoever else reads it
                        c.close()
                    return
                if self.hold_at is not None and seen + len(d) >= self.hold_at:
                    self.release.wait()
                seen += len(d)
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def refusals(rtvmm, guest, tmp):
    src = Vm(rtvmm, guest, tmp, "src2", args=ARGS + ["--dirty-ring", "0"])
    src.wait_round("source", 20)
    logs = [src.log]

    def attempt(name, url, dst, text):
        n0 = src.rounds()[-1]
        r = ctl(rtvmm, src.sock, "migrate", url)
        if r.returncode == 0:
            fail("%s: the migration succeeded" % name, *logs)
        if text not in r.stderr:
            fail("%s: ctl says '%s', expected '%s'" % (name, r.stderr.strip(), text), *logs)
        source_survives(src, name, n0)
        if dst is not None:
            try:
                rc = dst.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                fail("%s: the destination still runs" % name, dst.log)
            if rc != 1:
                fail("%s: the destination exited %d, expected 1" % (name, rc), dst.log)
        print("ok: %s: refused (%s); the source's guest runs on" % (name, r.stderr.strip()))

    # A destination with other memory refuses at hello.
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "small", ["--incoming", "tcp:127.0.0.1:%d" % port],
             args=[a if a != "64M" else "128M" for a in ARGS])
    logs.append(dst.log)
    dst.wait_text("destination", "waiting for a live migration", 60)
    attempt("a destination with 128 MiB", "tcp:127.0.0.1:%d" % port, dst,
            "the guest had 64 MiB of memory, this VM has 128 MiB")

    # A byte flipped in guest RAM on the way: the destination's checksum catches it.
    port, relay_port = free_port(), free_port()
    dst = Vm(rtvmm, guest, tmp, "flip", ["--incoming", "tcp:127.0.0.1:%d" % port])
    logs.append(dst.log)
    dst.wait_text("destination", "waiting for a live migration", 60)
    Relay(relay_port, port, flip_at=300000).start()
    attempt("a byte flipped in the stream", "tcp:127.0.0.1:%d" % relay_port, dst,
            "checksum mismatch")

    # The connection dropped in the middle of the pre-copy.
    port, relay_port = free_port(), free_port()
    dst = Vm(rtvmm, guest, tmp, "cut", ["--incoming", "tcp:127.0.0.1:%d" % port])
    logs.append(dst.log)
    dst.wait_text("destination", "waiting for a live migration", 60)
    Relay(relay_port, port, cut_at=512 << 10).start()
    attempt("the connection dropped after 512 KiB", "tcp:127.0.0.1:%d" % relay_port, dst,
            "closed the connection")

    # A destination stopped (SIGINT) while it receives: the signal stays queued through the
    # receive; it must not tell the source RUNNING, but ERROR, and the source runs on.
    port, relay_port = free_port(), free_port()
    dst = Vm(rtvmm, guest, tmp, "stopped", ["--incoming", "tcp:127.0.0.1:%d" % port])
    logs.append(dst.log)
    dst.wait_text("destination", "waiting for a live migration", 60)
    relay = Relay(relay_port, port, hold_at=256 << 10)
    relay.start()
    n0 = src.rounds()[-1]
    mig = subprocess.Popen([rtvmm, "ctl", src.sock, "migrate", "tcp:127.0.0.1:%d" % relay_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dst.wait_text("destination", "--incoming: a connection from 127.0.0.1:", 60)
    dst.p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    relay.release.set()
    out, err = mig.communicate(timeout=120)
    r = subprocess.CompletedProcess(mig.args, mig.returncode, out, err)
    if r.returncode == 0 or "stopped before its guest ran" not in r.stderr:
        fail("a destination stopped by SIGINT: ctl says %d '%s'" % (r.returncode, r.stderr.strip()),
             *logs)
    source_survives(src, "a stopped destination", n0)
    rc = dst.p.wait(timeout=60)
    if rc != 128 + signal.SIGINT or "Interrupt came before the guest ran" not in open(dst.log).read():
        fail("a destination stopped by SIGINT exited %d" % rc, dst.log)
    print("ok: a destination stopped by SIGINT before its guest ran: refused (%s); it exits %d; "
          "the source's guest runs on" % (r.stderr.strip(), rc))

    # While a migration runs (held in a relay) the API answers; vm.migration-cancel ends it,
    # the source's guest runs on, and the destination, its stream cut short, exits 1.
    port, relay_port = free_port(), free_port()
    dst = Vm(rtvmm, guest, tmp, "cancelled", ["--incoming", "tcp:127.0.0.1:%d" % port])
    dst.wait_text("destination", "waiting for a live migration", 60)
    # A small receive window on the held relay: the source blocks in its first round.
    relay = Relay(relay_port, port, hold_at=1 << 20, rcvbuf=4096)
    relay.start()
    n0 = src.rounds()[-1]
    mig = subprocess.Popen([rtvmm, "ctl", src.sock, "migrate", "tcp:127.0.0.1:%d" % relay_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dst.wait_text("destination", "--incoming: a connection from 127.0.0.1:", 60)
    during = {}
    for verb in ("migration", "info"):
        r = ctl(rtvmm, src.sock, verb, "--json", "--timeout", "5000")
        if r.returncode:
            fail("ctl %s while a migration runs: %s" % (verb, r.stderr.strip()), src.log)
        during[verb] = json.loads(r.stdout)
    if during["migration"]["state"] != "active" or during["info"]["state"] != "Running":
        fail("while a migration runs: vm.migration %s, vm.info state %s" % (
            during["migration"], during["info"]["state"]), src.log)
    r = ctl(rtvmm, src.sock, "migrate-cancel")
    if r.returncode:
        fail("ctl migrate-cancel: %s" % r.stderr.strip(), src.log)
    out, err = mig.communicate(timeout=60)
    relay.release.set()
    if mig.returncode == 0 or "cancelled (vm.migration-cancel)" not in err:
        fail("a cancelled migration: ctl migrate %d '%s'" % (mig.returncode, err.strip()), src.log)
    source_survives(src, "a cancelled migration", n0)
    after = json.loads(ctl(rtvmm, src.sock, "migration", "--json").stdout)
    again = ctl(rtvmm, src.sock, "migrate-cancel")
    if after["state"] != "cancelled" or again.returncode == 0 or \
            "no migration is under way" not in again.stderr:
        fail("after the cancel: vm.migration %s, a second cancel: %s" % (after, again.stderr), src.log)
    if dst.p.wait(timeout=60) != 1:
        fail("the destination of a cancelled migration exited %d" % dst.p.returncode, dst.log)
    print("ok: while a migration ran, vm.migration (active) and vm.info answered; cancelled: "
          "%s; the source's guest runs on" % err.strip())

    # Peers that are no migration source (another protocol, a port scan) are dropped and the
    # destination waits on; a SIGINT while it waits stops it at once.
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "scanned", ["--incoming", "tcp:127.0.0.1:%d" % port])
    dst.wait_text("destination", "waiting for a live migration", 60)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        try:
            s.recv(1)   # its close (a reset: it left bytes unread)
        except ConnectionResetError:
            pass
    socket.create_connection(("127.0.0.1", port)).close()
    for want in ("no rtvmm hello", "it closed the connection"):
        dst.wait_text("destination", "not an rtvmm migration source: %s); still waiting" % want, 60)
    if dst.p.poll() is not None:
        fail("a destination exited at a connection that was no migration", dst.log)
    # A peer that sends 3 bytes of a header and then nothing: SIGINT still stops the wait.
    drip = socket.create_connection(("127.0.0.1", port))
    drip.sendall(b"\x01\x00\x00")
    end = time.time() + 30
    while open(dst.log).read().count("--incoming: a connection from") < 3 and time.time() < end:
        time.sleep(0.1)
    dst.p.send_signal(signal.SIGINT)
    try:
        rc = dst.p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        fail("a destination waiting for a hello did not stop at SIGINT within 5 s", dst.log)
    drip.close()
    if rc != 128 + signal.SIGINT or \
            "Interrupt while waiting for the migration source" not in open(dst.log).read():
        fail("a destination stopped by SIGINT while waiting exited %d" % rc, dst.log)
    print("ok: a destination dropped an HTTP request and an empty connection, waited on, and "
          "stopped at SIGINT while a third peer held back its hello (exit %d)" % rc)

    # Nobody listening.
    attempt("no destination", "tcp:127.0.0.1:%d" % free_port(), None, "Connection refused")

    # A source of another stream version: the destination refuses it and exits 1.
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "version", ["--incoming", "tcp:127.0.0.1:%d" % port])
    dst.wait_text("destination", "waiting for a live migration", 60)
    s = socket.create_connection(("127.0.0.1", port))
    hello = b"RTVMMMIG" + struct.pack("<I", 2)
    import zlib
    s.sendall(struct.pack("<IIQ", 1, zlib.crc32(hello), len(hello)) + hello)
    head = s.recv(16)
    kind = struct.unpack("<IIQ", head)[0] if len(head) == 16 else None
    text = s.recv(4096).decode(errors="replace")
    s.close()
    rc = dst.p.wait(timeout=60)
    if kind != 3 or "version 2" not in text or rc != 1:
        fail("a version 2 stream: answer type %s '%s', destination exit %d" % (kind, text, rc),
             dst.log)
    print("ok: a stream of version 2: the destination answers ERROR '%s' and exits 1" % text)
    placement_refusals(rtvmm, guest, tmp, src, attempt)
    migrate_to_plan(rtvmm, guest, tmp, src)


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def plan_file(tmp, name, guest, page_size):
    """The source's machine (64 MiB, 2 vCPUs) as a host plan: RAM on node 0, vcpu0 SCHED_FIFO
    10 on cpu 1, vcpu1 and the monitor on cpu 0."""
    path = os.path.join(tmp, name + ".yaml")
    write(path, """host:
  housekeeping_cpus: "0"
vm:
  name: %s
  kernel: %s
  cmdline: "test=none memsum=100000000"
  memory:
    size: 64M
    page_size: %s
    numa_node: 0
    fallback_4k: false
  vcpus:
    - cpus: "1"
      policy: fifo
      priority: 10
    - cpus: "0"
      policy: other
  emulator_cpus: "0"
""" % (name, os.path.abspath(guest), page_size))
    return path


def node0_free_2m(n):
    """Makes node 0's free 2 MiB pool n pages (the pages in use stay); its size before comes
    back at exit. Returns the free count the kernel gave."""
    nr, free = (int(open(HP + f).read()) for f in ("nr_hugepages", "free_hugepages"))
    if not HP_BEFORE:
        HP_BEFORE.append(nr)
        UNDO.append(lambda: write(HP + "nr_hugepages", HP_BEFORE[0]))
    try:
        write(HP + "nr_hugepages", nr - free + n)
    except OSError as e:
        fail("cannot size node 0's 2 MiB hugepage pool (%s): the test runs as root" % e)
    return int(open(HP + "free_hugepages").read())


def cpuset(tmp, cpus):
    """A new cgroup whose cpuset is `cpus` (cgroup v2 where it has the cpuset controller,
    else v1's cpuset hierarchy, else a cgroup2 mounted here); its cgroup.procs."""
    root, v1 = None, False
    for line in open("/proc/mounts"):
        _, path, fstype, opts = line.split()[:4]
        if fstype == "cgroup2":
            try:
                ok = "cpuset" in open(path + "/cgroup.controllers").read().split()
            except OSError:
                ok = False
            if ok:
                root = path
                break
        if fstype == "cgroup" and "cpuset" in opts.split(","):
            root, v1 = path, True
            break
    if root is None:
        root = os.path.join(tmp, "cgroup")
        os.mkdir(root)
        r = subprocess.run(["mount", "-t", "cgroup2", "cgroup2", root], capture_output=True,
                           text=True)
        if r.returncode:
            fail("no cpuset cgroup on this host and cannot mount cgroup2: " + r.stderr.strip())
        UNDO.append(lambda: subprocess.run(["umount", root], check=False))
    try:
        if not v1:
            write(root + "/cgroup.subtree_control", "+cpuset")
        cg = os.path.join(root, "rtvmm-migrate.%d" % os.getpid())
        os.mkdir(cg)
        UNDO.append(lambda: rmdir_when_empty(cg))
        if v1:
            write(cg + "/cpuset.mems", open(root + "/cpuset.mems").read().strip())
        write(cg + "/cpuset.cpus", cpus)
    except OSError as e:
        fail("cannot make a cpuset of cpu %s under %s (%s): the test runs as root" % (cpus, root, e))
    return cg + "/cgroup.procs"


def rmdir_when_empty(cg):
    for _ in range(50):
        try:
            os.rmdir(cg)
            return
        except OSError:
            time.sleep(0.1)


def refused_before_listening(rtvmm, guest, tmp, name, plan, wrap, want, attempt):
    """A destination whose plan this host cannot place exits 1 with `want` in its log while
    the test holds its port; then the source's migration there is refused and it runs on."""
    port = free_port()
    hold = socket.socket()
    hold.bind(("127.0.0.1", port))
    hold.listen(1)
    dst = Vm(rtvmm, guest, tmp, os.path.basename(plan)[:-len(".yaml")],
             ["--incoming", "tcp:127.0.0.1:%d" % port], plan=plan, wrap=wrap)
    try:
        rc = dst.p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        fail("%s: the destination still runs 60 s after it started" % name, dst.log)
    hold.close()
    log = open(dst.log, errors="replace").read()
    said = re.search(want, log)
    if rc != 1 or not said or "nothing was started" not in log:
        fail("%s: the destination exited %d, expected 1 with /%s/ and 'nothing was started'" % (
            name, rc, want), dst.log)
    print("ok: %s: the destination refused before it listened: %s" % (
        name, log[said.start():].splitlines()[0]))
    attempt(name + ": a migration to it", "tcp:127.0.0.1:%d" % port, None, "Connection refused")


def placement_refusals(rtvmm, guest, tmp, src, attempt):
    free = node0_free_2m(8)
    refused_before_listening(
        rtvmm, guest, tmp, "hugepages short", plan_file(tmp, "short", guest, "2M"), None,
        r"short\.yaml:\d+: error: vm\.memory\.size: 64M: .*node 0: needs 32 2M pages, %d free"
        % free, attempt)

    procs = cpuset(tmp, "0")
    refused_before_listening(
        rtvmm, guest, tmp, "cpu 1 outside its cpuset", plan_file(tmp, "cpuset", guest, "4K"),
        ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs],
        r"cpuset\.yaml:\d+: error: vm\.vcpus\[0\]\.cpus: 1: .*cpu 1 is outside this "
        r"process's cpuset \(it allows cpus 0\).*\[cpu-not-allowed\]", attempt)

    name = "cpu 1 taken after the destination listened"
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "taken", ["--incoming", "tcp:127.0.0.1:%d" % port],
             plan=plan_file(tmp, "taken", guest, "4K"))
    dst.wait_text("destination", "waiting for a live migration", 60)
    write(procs, dst.p.pid)
    attempt(name, "tcp:127.0.0.1:%d" % port, dst, "stopped before its guest ran: vcpu0: the "
            "kernel's placement differs from the plan (%s:" % os.path.join(tmp, "taken.yaml"))
    log = open(dst.log, errors="replace").read()
    said = [re.search(want + r"[^\n]*", log) for want in (
        r"vcpu0: .*sched_setaffinity\(cpus 1\): Invalid argument",
        r"vcpu0: the kernel's placement differs from the plan \(%s:\d+: vm\.vcpus\[0\]\.cpus\)"
        % re.escape(os.path.join(tmp, "taken.yaml")))]
    if not all(said) or "the guest runs here now" in log:
        fail("%s: the destination's log lacks why vcpu0 is not on cpu 1, or says the guest runs"
             % name, dst.log)
    print("ok: %s: its placement proof failed, it sent no RUNNING: %s" % (
        name, "; ".join(m.group(0) for m in said)))


def migrate_to_plan(rtvmm, guest, tmp, src):
    """The source that saw every refusal migrates to a destination whose plan fits."""
    got = node0_free_2m(40)
    if got < 32:
        fail("node 0's 2 MiB pool: %d pages free after asking for 40, the plan needs 32" % got)
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "planned", ["--incoming", "tcp:127.0.0.1:%d" % port],
             plan=plan_file(tmp, "planned", guest, "2M"))
    dst.wait_text("destination", "waiting for a live migration", 60)
    r = ctl(rtvmm, src.sock, "migrate", "tcp:127.0.0.1:%d" % port, "--json", "--max-rounds", "1",
            "--downtime-ms", "5000")
    if r.returncode:
        fail("ctl migrate to a planned destination: %s %s" % (r.stdout, r.stderr), src.log, dst.log)
    if json.loads(r.stdout)["rounds"] != 1:
        fail("--max-rounds 1: %d rounds" % json.loads(r.stdout)["rounds"], src.log)
    if json.loads(r.stdout)["dirty_log"] != "bitmap":
        fail("a source run with --dirty-ring 0 migrated with KVM's dirty %s" %
             json.loads(r.stdout)["dirty_log"], src.log)
    handed_over(src, dst, "placement proven, the guest runs here now", 70,
                "the source through its refusals, then the planned destination")
    r = ctl(rtvmm, dst.sock, "placement", "--json")
    if r.returncode:
        fail("vm.placement on the planned destination: " + r.stderr.strip(), dst.log)
    placed = json.loads(r.stdout)
    vcpus = sorted("%s %s %s %s" % (t["name"], t["cpus"], t["policy"], t["as_planned"])
                   for t in placed["threads"] if t["name"] in ("vcpu0", "vcpu1"))
    if vcpus != ["vcpu0 1 fifo True", "vcpu1 0 other True"] or \
            placed["memory"]["page_size"] != 2 << 20:
        fail("the planned destination's placement: %s" % r.stdout, dst.log)
    print("ok: the same source then migrated to a destination whose plan fits: 2 MiB pages, "
          "vcpu0 fifo on cpu 1, vcpu1 on cpu 0, as planned; the guest goes on (round %d)" %
          dst.rounds()[-1])
    ctl(rtvmm, dst.sock, "shutdown")
    dst.p.wait(timeout=60)


def main():
    sys.stdout.reconfigure(line_buffering=True)
    rtvmm, guest = sys.argv[1:3]
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist: no KVM here")
        return 77
    tmp = tempfile.mkdtemp(prefix="rtvmm-migrate.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        migrate_ok(rtvmm, guest, tmp)
        refusals(rtvmm, guest, tmp)
        print("PASS")
        return 0
    finally:
        subprocess.run(["pkill", "-9", "-f", tmp], check=False)
        for undo in reversed(UNDO):
            try:
                undo()
            except OSError as e:
                print("warning: undoing a host change at exit: %s" % e)
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    sys.exit(main())
