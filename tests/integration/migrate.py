#!/usr/bin/python3
"""Live migration (vmm/migrate.c, app/migration.c) of a running bare-metal guest between two
rtvmm processes on this host, over TCP on 127.0.0.1, driven by `rtvmm ctl SOCKET migrate`.

The guest (memsum=) rewrites one page of a 4 MiB buffer per round and prints the buffer's sum;
every 64 rounds it sums the whole buffer again and exits 113 when that differs from the sum it
kept in a register: a page the migration lost or sent stale fails it.

  1. Migrate: the source exits 0 ("migrated"), the destination's output continues the source's
     (every round once, in order: none lost or repeated across the switch-over) through three
     whole-buffer checks; the figures (rounds, pages, downtime) are printed.
  2. Refusals, each leaving the source's guest running (it prints on) and the destination
     exiting 1 with the reason: a destination with other memory; a byte flipped in the stream by
     a relay (checksum); a stream of another version; the destination killed mid-migration.

Usage: migrate.py RTVMM GUEST. Exits 77 only when /dev/kvm is absent.
"""
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

    def __init__(self, rtvmm, guest, tmp, name, extra=(), args=ARGS):
        self.out, self.log = os.path.join(tmp, name + ".out"), os.path.join(tmp, name + ".log")
        self.sock = os.path.join(tmp, name + ".sock")
        pin = ["taskset", "-c", "1"] if os.environ.get("RTVMM_KVMBOX") == "1" else []
        self.p = subprocess.Popen(pin + [rtvmm, "run", "--kernel", guest] + list(args) +
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


def migrate_ok(rtvmm, guest, tmp):
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "dst", ["--incoming", "tcp:127.0.0.1:%d" % port])
    dst.wait_text("destination", "waiting for a live migration", 60)
    src = Vm(rtvmm, guest, tmp, "src")
    src.wait_round("source", 20)
    r = ctl(rtvmm, src.sock, "migrate", "tcp:127.0.0.1:%d" % port, "--json")
    if r.returncode:
        fail("ctl migrate: %s %s" % (r.stdout, r.stderr), src.log, dst.log)
    fig = json.loads(r.stdout)
    try:
        rc = src.p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        fail("the source still runs 60 s after the migration", src.log)
    if rc != 0 or "migrated" not in open(src.log).read():
        fail("the source exited %d after the migration" % rc, src.log)
    last = src.rounds()[-1]
    dst.wait_text("destination", "the guest runs here now", 60)
    dst.wait_round("destination", last + 200)
    # One stream: a line the switch-over cut is finished by the destination.
    joined = [int(m) for m in ROUND.findall(open(src.out, "rb").read() + open(dst.out, "rb").read())]
    check_continuous(joined, "source then destination")
    if dst.p.poll() is not None:
        fail("the destination's guest stopped: rtvmm exited %d" % dst.p.returncode, dst.log, dst.out)
    print("ok: migrated at round %d; the destination goes on (round %d), three whole-buffer "
          "checks passed" % (last, dst.rounds()[-1]))
    print("figures: %d rounds, %d pages sent, %d MiB zero not sent, %d bytes on the wire, %d "
          "pages after the stop, downtime %.1f ms, total %.1f ms (the box: function, not timing)" % (
              fig["rounds"], fig["pages_sent"], fig["zero_bytes"] >> 20, fig["bytes_sent"],
              fig["last_dirty_pages"], fig["downtime_ns"] / 1e6, fig["total_ns"] / 1e6))
    ctl(rtvmm, dst.sock, "shutdown")
    dst.p.wait(timeout=60)


def source_survives(src, what, n0):
    """The source's guest runs on: its rounds advance past n0 and its VM reads Running."""
    src.wait_round("source after " + what, n0 + 50)
    if src.p.poll() is not None:
        fail("the source stopped after " + what, src.log)


class Relay(threading.Thread):
    """Relays source -> destination, flipping byte `flip_at` of that direction (or, with
    cut_at, closing both sides after that many bytes); destination -> source as it is."""

    def __init__(self, port_in, port_out, flip_at=None, cut_at=None):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
                seen += len(d)
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def refusals(rtvmm, guest, tmp):
    src = Vm(rtvmm, guest, tmp, "src2")
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

    # A destination stopped (SIGINT) while it waits: the signal stays queued through the
    # receive; it must not tell the source RUNNING, but ERROR, and the source runs on.
    port = free_port()
    dst = Vm(rtvmm, guest, tmp, "stopped", ["--incoming", "tcp:127.0.0.1:%d" % port])
    logs.append(dst.log)
    dst.wait_text("destination", "waiting for a live migration", 60)
    dst.p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    n0 = src.rounds()[-1]
    r = ctl(rtvmm, src.sock, "migrate", "tcp:127.0.0.1:%d" % port)
    if r.returncode == 0 or "stopped before its guest ran" not in r.stderr:
        fail("a destination stopped by SIGINT: ctl says %d '%s'" % (r.returncode, r.stderr.strip()),
             *logs)
    source_survives(src, "a stopped destination", n0)
    rc = dst.p.wait(timeout=60)
    if rc != 128 + signal.SIGINT or "Interrupt came before the guest ran" not in open(dst.log).read():
        fail("a destination stopped by SIGINT exited %d" % rc, dst.log)
    print("ok: a destination stopped by SIGINT before its guest ran: refused (%s); it exits %d; "
          "the source's guest runs on" % (r.stderr.strip(), rc))

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
    ctl(rtvmm, src.sock, "shutdown")
    src.p.wait(timeout=60)


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
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    sys.exit(main())
