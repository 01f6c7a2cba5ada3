#!/usr/bin/env python3
"""The bare-metal guest's virtio-net driver does not trust its device.

A small vhost-user backend written here (the vhost-user protocol's backend
side: GET_FEATURES, SET_MEM_TABLE with the guest RAM memfd, the vring
messages) serves one rtvmm guest (rtvmm connects as the client) and, once
the guest's rings are live, writes into its used rings what a broken or
hostile device could:

  good                 a correct macswap responder: the guest's pings all come back
                       (the positive control: this backend is right unless told otherwise)
  rx-id-out-of-range   rx used entry with id 999 (ring of 256)
  rx-len-beyond-buffer rx used entry for a posted buffer, length 4096 (buffers are 2048)
  rx-idx-ahead         rx used index moved 300 entries (256 in flight)
  tx-id-out-of-range   tx used entry with id 8 (ring of 8: the guest takes tx completions back
                       lazily, when its ring is full; an id it sent later, completed out of
                       order, is legitimate and looks the same by then)

Each bad case must end the guest with status 108 and the FAIL line naming
the queue, the fault and the values seen; never a hang, a crash or a frame
taken from a buffer the device does not own.

Usage: net_bad_backend.py RTVMM GUEST.elf   (exit 77 only without /dev/kvm)
"""
import mmap
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE = 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13
FLAG_REPLY = 0x4
VERSION_1 = 1 << 32

MAC_GUEST = "52:54:00:00:00:01"
PEER = "02:00:00:00:00:02"

CASES = [
    # mode, extra guest options, expected FAIL line (fixed string)
    ("good", "", None),
    ("rx-id-out-of-range", "", "FAIL net: device error on queue 0: used id out of range or not in flight (999, 256)"),
    ("rx-len-beyond-buffer", "", "FAIL net: device error on queue 0: used length beyond the buffer (4096, 2048)"),
    ("rx-idx-ahead", "", "FAIL net: device error on queue 0: used index ran ahead of the buffers in flight (300, 256)"),
    ("tx-id-out-of-range", " qsize=8 probe_ms=10",
     "FAIL net: device error on queue 1: used id out of range or not in flight (8, 8)"),
]


class Backend:
    def __init__(self, conn, mode):
        self.conn, self.mode = conn, mode
        self.regions = []           # (gpa, size, uaddr, mmap)
        self.q = {}                 # index -> dict(num, desc, avail, used, last_avail, used_idx)
        self.attacked = False
        self.echoed = 0

    # ---- guest memory ----
    def _find(self, addr, key):
        for r in self.regions:
            base = r[key]
            if base <= addr < base + r["size"]:
                return r["map"], addr - base
        raise ValueError("address 0x%x outside the memory table" % addr)

    def rd(self, addr, n, key="gpa"):
        m, off = self._find(addr, key)
        return m[off:off + n]

    def wr(self, addr, data, key="gpa"):
        m, off = self._find(addr, key)
        m[off:off + len(data)] = data

    def u16(self, uaddr):
        return struct.unpack("<H", self.rd(uaddr, 2, "uaddr"))[0]

    def put_u16(self, uaddr, v):
        self.wr(uaddr, struct.pack("<H", v & 0xffff), "uaddr")

    # ---- protocol ----
    def recv_msg(self):
        hdr, anc, _, _ = self.conn.recvmsg(12, socket.CMSG_SPACE(8 * 4))
        if len(hdr) < 12:
            return None
        req, flags, size = struct.unpack("<III", hdr)
        fds = []
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(struct.unpack("<%di" % (len(data) // 4), data[:len(data) - len(data) % 4]))
        payload = b""
        while len(payload) < size:
            chunk = self.conn.recv(size - len(payload))
            if not chunk:
                return None
            payload += chunk
        return req, flags, payload, fds

    def reply(self, req, payload):
        self.conn.sendall(struct.pack("<III", req, 0x1 | FLAG_REPLY, len(payload)) + payload)

    def handle(self, req, payload, fds):
        if req == GET_FEATURES:
            self.reply(req, struct.pack("<Q", VERSION_1))
        elif req == SET_MEM_TABLE:
            n = struct.unpack_from("<I", payload)[0]
            self.regions = []
            for i in range(n):
                gpa, size, uaddr, off = struct.unpack_from("<QQQQ", payload, 8 + 32 * i)
                m = mmap.mmap(fds[i], size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=off)
                self.regions.append({"gpa": gpa, "size": size, "uaddr": uaddr, "map": m})
            for fd in fds:
                os.close(fd)
        elif req in (SET_VRING_NUM, SET_VRING_BASE):
            idx, num = struct.unpack_from("<II", payload)
            q = self.q.setdefault(idx, {"last_avail": 0, "used_idx": 0})
            if req == SET_VRING_NUM:
                q["num"] = num
            else:
                q["last_avail"] = q["used_idx"] = num
        elif req == SET_VRING_ADDR:
            idx, _, desc, used, avail, _ = struct.unpack_from("<IIQQQQ", payload)
            self.q.setdefault(idx, {"last_avail": 0, "used_idx": 0}).update(desc=desc, used=used, avail=avail)
        elif req == GET_VRING_BASE:
            idx = struct.unpack_from("<I", payload)[0]
            q = self.q.pop(idx, {"last_avail": 0})
            self.reply(req, struct.pack("<II", idx, q["last_avail"] & 0xffff))
        elif req in (SET_VRING_KICK, SET_VRING_CALL):
            for fd in fds:
                os.close(fd)
        # SET_OWNER, SET_FEATURES: nothing to do

    def ready(self, idx):
        q = self.q.get(idx)
        return self.regions and q and "avail" in q and "num" in q

    # ---- the device side of the rings ----
    def push_used(self, idx, elem_id, length, advance=1):
        q = self.q[idx]
        slot = q["used_idx"] % q["num"]
        self.wr(q["used"] + 4 + 8 * slot, struct.pack("<II", elem_id, length), "uaddr")
        q["used_idx"] = (q["used_idx"] + advance) & 0xffff
        self.put_u16(q["used"] + 2, q["used_idx"])

    def avail_head(self, idx, n):
        q = self.q[idx]
        return self.u16(q["avail"] + 4 + 2 * (n % q["num"]))

    def step(self):
        """Polls the rings: misbehave once, or echo (good)."""
        if not (self.ready(0) and self.ready(1)):
            return
        rx, tx = self.q[0], self.q[1]
        rx_avail, tx_avail = self.u16(rx["avail"] + 2), self.u16(tx["avail"] + 2)
        if self.mode == "good":
            while tx["last_avail"] != tx_avail and rx["last_avail"] != rx_avail:
                head = self.avail_head(1, tx["last_avail"])
                addr, length, flags, _ = struct.unpack("<QIHH", self.rd(tx["desc"] + 16 * head, 16, "uaddr"))
                frame = bytearray(self.rd(addr + 12, length - 12))   # after the virtio-net header
                frame[0:6], frame[6:12] = frame[6:12], frame[0:6]
                rhead = self.avail_head(0, rx["last_avail"])
                raddr, rlen, _, _ = struct.unpack("<QIHH", self.rd(rx["desc"] + 16 * rhead, 16, "uaddr"))
                pkt = struct.pack("<BBHHHHH", 0, 0, 0, 0, 0, 0, 1) + bytes(frame)
                assert len(pkt) <= rlen
                self.wr(raddr, pkt)
                tx["last_avail"] = (tx["last_avail"] + 1) & 0xffff
                rx["last_avail"] = (rx["last_avail"] + 1) & 0xffff
                self.push_used(1, head, 0)
                self.push_used(0, rhead, len(pkt))
                self.echoed += 1
            return
        if self.attacked:
            return
        if self.mode == "rx-id-out-of-range" and rx_avail:
            self.push_used(0, 999, 76)
        elif self.mode == "rx-len-beyond-buffer" and rx_avail:
            self.push_used(0, self.avail_head(0, 0), 4096)
        elif self.mode == "rx-idx-ahead" and rx_avail:
            self.push_used(0, self.avail_head(0, 0), 76, advance=300)
        elif self.mode == "tx-id-out-of-range" and tx_avail:
            self.push_used(1, tx["num"], 0)
        else:
            return
        self.attacked = True


def run_case(rtvmm, guest, mode, extra, expect, tmp):
    path = os.path.join(tmp, mode + ".sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    cmd = [rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M", "--net", "socket=%s,mac=%s" % (path, MAC_GUEST),
           "--cmdline", "test=net net=ping peer=%s count=5 wait_ms=5000 timeout_ms=1000%s" % (PEER, extra)]
    out = open(os.path.join(tmp, mode + ".log"), "w+")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    problems = []
    be = None
    try:
        srv.settimeout(10)
        conn, _ = srv.accept()
        be = Backend(conn, mode)
        end = time.time() + 30
        while proc.poll() is None and time.time() < end:
            r, _, _ = select.select([conn], [], [], 0.002)
            if r:
                msg = be.recv_msg()
                if msg is None:
                    break
                be.handle(msg[0], msg[2], msg[3])
            be.step()
        try:
            proc.wait(timeout=max(1, end - time.time()))
        except subprocess.TimeoutExpired:
            problems.append("rtvmm did not exit within 30 s")
    except Exception as e:   # a protocol surprise is this test's problem: say so
        problems.append("backend: %r" % e)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.close()
    out.seek(0)
    text = out.read()
    want_rc = 0 if expect is None else 108
    if proc.returncode != want_rc:
        problems.append("rtvmm exited with %s, expected %d" % (proc.returncode, want_rc))
    if expect is None:
        for m in ("rtvmm-guest: net: sent 5 received 5 (", "rtvmm-guest: net ok"):
            if m not in text:
                problems.append("output lacks: " + m)
        if be and be.echoed < 5:
            problems.append("the backend echoed %d frames" % be.echoed)
    else:
        if be and not be.attacked:
            problems.append("the backend never got to misbehave (rings not live?)")
        if "rtvmm-guest: " + expect not in text:
            problems.append("output lacks: rtvmm-guest: " + expect)
    line = [l for l in text.splitlines() if "FAIL" in l or "net: sent" in l]
    print("%-22s rtvmm exit %s: %s" % (mode, proc.returncode, line[0] if line else "(no result line)"))
    if problems:
        print("\n".join("  FAIL: " + p for p in problems))
        print("  ---- output\n" + text)
    return not problems


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 1
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist: no KVM, cannot boot a guest")
        return 77
    with tempfile.TemporaryDirectory(prefix="rtvmm-badbe.") as tmp:
        ok = all([run_case(sys.argv[1], sys.argv[2], mode, extra, expect, tmp) for mode, extra, expect in CASES])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
