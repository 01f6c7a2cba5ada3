#!/usr/bin/env python3
"""A silent vhost-user backend never stalls a vCPU.

The backend written here (net_bad_backend.py's protocol side) answers the
first GET_FEATURES of each connection, so rtvmm sees a backend and the link
comes up, then never answers again: the rings' set-up after DRIVER_OK waits
for a reply that never comes (rtvmm's reply timeout is 3 s), and rtvmm
reconnects and meets the same silence.

The bare-metal guest times its device set-up ("net: driver ok in N us", from
reset to DRIVER_OK, read from the TSC while the vCPU runs). When the
handshake ran on the vCPU thread, the DRIVER_OK write held the vCPU for the
whole reply timeout (~3 000 000 us); the session thread now does it, and the
write returns at once. The run must show the set-up well under a second.

Usage: net_silent_backend.py RTVMM GUEST.elf   (exit 77 only without /dev/kvm)
"""
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import net_bad_backend as nbb   # noqa: E402

LIMIT_US = 1000000     # the box is slow (50-150 us an exit); the stall was >= 3 000 000 us


class SilentBackend(nbb.Backend):
    """Answers the first GET_FEATURES of its connection, nothing after it."""

    def __init__(self, conn):
        super().__init__(conn, "silent")
        self.answered = False
        self.unanswered = 0

    def handle(self, req, payload, fds):
        if req == nbb.GET_FEATURES and not self.answered:
            self.answered = True
            super().handle(req, payload, fds)
            return
        for fd in fds:
            os.close(fd)
        if req in (nbb.GET_FEATURES, nbb.GET_VRING_BASE):
            self.unanswered += 1


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 1
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist: no KVM, cannot boot a guest")
        return 77
    rtvmm, guest = sys.argv[1], sys.argv[2]
    problems = []
    with tempfile.TemporaryDirectory(prefix="rtvmm-silent.") as tmp:   # 0700: rtvmm trusts it
        path = os.path.join(tmp, "net0.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(4)
        cmd = [rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M",
               "--net", "socket=%s,mac=%s" % (path, nbb.MAC_GUEST),
               "--cmdline", "test=net net=ping peer=%s count=1 wait_ms=2000 timeout_ms=100" % nbb.PEER]
        out = open(os.path.join(tmp, "rtvmm.log"), "w+")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        backends = {}
        try:
            end = time.time() + 40
            while proc.poll() is None and time.time() < end:
                r, _, _ = select.select([srv] + list(backends), [], [], 0.05)
                for s in r:
                    if s is srv:
                        conn, _ = srv.accept()
                        backends[conn] = SilentBackend(conn)
                        continue
                    msg = backends[s].recv_msg()
                    if msg is None:
                        del backends[s]
                        s.close()
                    else:
                        backends[s].handle(msg[0], msg[2], msg[3])
            if proc.poll() is None:
                problems.append("rtvmm did not exit within 40 s")
        except Exception as e:   # a protocol surprise is this test's problem: say so
            problems.append("backend: %r" % e)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            srv.close()
        out.seek(0)
        text = out.read()
    m = re.search(r"net: driver ok in (\d+) us", text)
    if not m:
        problems.append("no 'net: driver ok in N us' line: the guest never finished its set-up")
    else:
        us = int(m.group(1))
        print("device set-up, reset to DRIVER_OK: %d us (limit %d us)" % (us, LIMIT_US))
        if us >= LIMIT_US:
            problems.append("the vCPU was held %d us by a silent backend (limit %d us)" % (us, LIMIT_US))
    if "rtvmm-guest: net: mac" not in text:
        problems.append("the guest did not get past DRIVER_OK to read the link")
    if problems:
        print("\n".join("FAIL: " + p for p in problems))
        print("---- output\n" + text)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
