#!/usr/bin/env python3
"""The guest's COM1 away from a terminal: --serial file= and --serial socket= on real guests.

The socket's clients are Python's socket module, not rtvmm's own attach code (that has its
unit test). In the KVM box rtvmm runs pinned to box cpu 1, as every box test (README: Tests).

  file          the bare-metal guest's CHATTER numbered lines go to a file that already
                holds a line: the line stays, every chatter line follows, complete and in
                order, nothing on stdout, COM1's stop report counts them all as written.
  idle          --serial socket=, nobody ever attaches: the socket is 0600, the guest runs
                to its exit (status 7), the output beyond the 64 KiB history is counted as
                such, and the socket is gone after the exit.
  stalled       a client connects at once and never reads, rtvmm dropped to nobody:nogroup
                (the console thread accepts under its seccomp filter): the guest still runs
                to its exit, and every byte COM1 took is either sent to the client or
                counted as lost to it, some of it lost.
  second        client A reads the first lines; client B connects: A gets the one-line
                notice and is disconnected, B gets the rest, in order, to the guest's last
                line (the newcomer replaces the attached client, as cloud-hypervisor does).
  linux         Linux's 8250 driver and busybox shell on the socket: the client sees the
                boot log (it attached before the shell), types a command, reads the shell's
                answer, types poweroff -f: exit status 0.

Usage: console_serial.py MODE RTVMM GUEST.elf   (linux: the kernel and initramfs from
       RTVMM_TEST_KERNEL and RTVMM_TEST_INITRD, as scripts/test.sh sets them)
Exit 77 only without /dev/kvm.
"""
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

IN_BOX = os.environ.get("RTVMM_KVMBOX") == "1"
BOX_CPU = 1
STATUS = 7
HISTORY = 64 * 1024
NOTICE = b"\r\nrtvmm: another client attached to this console; detaching you\r\n"
COM1 = re.compile(r"COM1: tx (\d+) bytes \(dropped (\d+), reader too slow (\d+)\)")
CONSOLE = re.compile(r"console: socket (\S+): (\d+) clients? \((\d+) replaced\), sent (\d+) bytes, "
                     r"lost (\d+) to a slow client, (\d+) beyond the (\d+) KiB history")
LINE = re.compile(rb"rtvmm-guest: chatter (\d+) of (\d+)")

problems = []


def check(ok, what):
    if not ok:
        problems.append(what)
    return ok


def box_pin():
    """In the KVM box only: rtvmm's threads on one box cpu (README: Tests)."""
    if IN_BOX:
        os.sched_setaffinity(0, {BOX_CPU})


def start(rtvmm, args, errf, outf=subprocess.DEVNULL):
    print("run: rtvmm run " + " ".join(args))
    return subprocess.Popen([rtvmm, "run"] + args, stdin=subprocess.DEVNULL, stdout=outf,
                            stderr=errf, preexec_fn=box_pin)


def guest_args(guest, chatter, serial):
    return ["--kernel", guest, "--test-device", "--memory", "64M", "--serial", serial,
            "--cmdline", "test=none chatter=%d exit=%d" % (chatter, STATUS)]


def wait_exit(proc, limit):
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_socket(path, proc, limit=60):
    """Waits until rtvmm listens at `path`; False when it exited or the time ran out."""
    end = time.monotonic() + limit
    while time.monotonic() < end and proc.poll() is None:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def read_until(sock, pattern, limit, got=b""):
    """Reads until `pattern` (bytes regex) matches what came; returns (all read, match or None)."""
    sock.settimeout(0.5)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        m = re.search(pattern, got)
        if m:
            return got, m
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        got += data
    return got, re.search(pattern, got)


def read_to_eof(sock, limit):
    sock.settimeout(0.5)
    got, end = b"", time.monotonic() + limit
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not data:
            return got, True
        got += data
    return got, False


def counters(err, regex, what):
    m = regex.search(err)
    check(m is not None, "no %s line in the stop report" % what)
    return [int(x) if x.isdigit() else x for x in m.groups()] if m else None


def chatter_lines(data):
    return [int(n) for n, _ in LINE.findall(data)]


def mode_file(rtvmm, guest, tmp):
    chatter = 300
    log = os.path.join(tmp, "guest.log")
    with open(log, "wb") as f:
        f.write(b"earlier run\n")
    with tempfile.TemporaryFile() as errf, tempfile.TemporaryFile() as outf:
        rc = wait_exit(start(rtvmm, guest_args(guest, chatter, "file=" + log), errf, outf), 240)
        errf.seek(0)
        outf.seek(0)
        err, out = errf.read().decode(errors="replace"), outf.read()
    data = open(log, "rb").read()
    print("file: exit status %s, %d bytes in the file, %d on stdout" % (rc, len(data), len(out)))
    check(rc == STATUS, "exit status %s, expected %d" % (rc, STATUS))
    check(data.startswith(b"earlier run\n"), "the file's earlier content was not kept")
    check(chatter_lines(data) == list(range(chatter)),
          "%d chatter lines in the file, not 0..%d in order" % (len(chatter_lines(data)), chatter - 1))
    check(b"rtvmm-guest" not in out, "guest output on stdout")
    c = counters(err, COM1, "COM1")
    if c:
        check(c[0] == len(data) - len(b"earlier run\n") and c[1] == 0 and c[2] == 0,
              "COM1 tx %d dropped %d slow %d, the file got %d" % (c[0], c[1], c[2],
                                                                  len(data) - 12))
    return err


def mode_idle(rtvmm, guest, tmp):
    chatter = 1200  # about 84 KB: more than the history holds
    path = os.path.join(tmp, "console.sock")
    with tempfile.TemporaryFile() as errf:
        proc = start(rtvmm, guest_args(guest, chatter, "socket=" + path), errf)
        if check(wait_socket(path, proc), "no socket at %s" % path):
            st = os.lstat(path)
            print("idle: socket mode %04o owner %d" % (stat.S_IMODE(st.st_mode), st.st_uid))
            check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and
                  st.st_uid == os.geteuid(), "the socket is not ours with mode 0600")
        rc = wait_exit(proc, 240)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    print("idle: exit status %s" % rc)
    check(rc == STATUS, "exit status %s, expected %d (the guest froze with nobody attached?)"
          % (rc, STATUS))
    check(not os.path.exists(path), "the socket is still there after the exit")
    com1, con = counters(err, COM1, "COM1"), counters(err, CONSOLE, "console")
    if com1 and con:
        print("idle: COM1 took %d bytes; console: %d clients, %d beyond the history"
              % (com1[0], con[1], con[5]))
        check(con[1] == 0 and con[3] == 0, "clients or bytes sent with nobody attached")
        check(com1[0] > HISTORY and con[5] == com1[0] - HISTORY,
              "%d bytes counted beyond the history, expected %d" % (con[5], com1[0] - HISTORY))
    return err


def mode_stalled(rtvmm, guest, tmp):
    chatter = 2500  # about 175 KB: more than the client's socket and the history hold
    run = os.path.join(tmp, "run")
    os.chmod(tmp, 0o711)
    os.mkdir(run, 0o700)
    shutil.chown(run, "nobody", "nogroup")
    path = os.path.join(run, "console.sock")
    args = guest_args(guest, chatter, "socket=" + path) + ["--user", "nobody:nogroup"]
    with tempfile.TemporaryFile() as errf:
        t0 = time.monotonic()
        proc = start(rtvmm, args, errf)
        client = None
        if check(wait_socket(path, proc), "no socket at %s" % path):
            client = connect(path)  # and never read from it
        rc = wait_exit(proc, 300)
        seconds = time.monotonic() - t0
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        if client:
            client.close()
    print("stalled: exit status %s after %.1f s" % (rc, seconds))
    check("running as nobody" in err, "rtvmm did not drop to nobody")
    check(rc == STATUS, "exit status %s, expected %d (the guest froze on a client that never "
          "reads?)" % (rc, STATUS))
    com1, con = counters(err, COM1, "COM1"), counters(err, CONSOLE, "console")
    if com1 and con:
        print("stalled: COM1 took %d bytes (too slow %d); console sent %d, lost %d to the client"
              % (com1[0], com1[2], con[3], con[4]))
        check(con[1] == 1, "%d clients, expected 1" % con[1])
        check(con[4] > 0, "nothing lost to the client that never read: the test proved nothing")
        check(con[3] + con[4] == com1[0], "sent %d + lost %d != COM1's %d" % (con[3], con[4],
                                                                              com1[0]))
    return err


def mode_second(rtvmm, guest, tmp):
    chatter = 600
    path = os.path.join(tmp, "console.sock")
    with tempfile.TemporaryFile() as errf:
        proc = start(rtvmm, guest_args(guest, chatter, "socket=" + path), errf)
        a = b = None
        if check(wait_socket(path, proc), "no socket at %s" % path):
            a = connect(path)
            got, m = read_until(a, rb"chatter 00000020 of", 120)
            check(m is not None, "client A never saw chatter line 20")
            b = connect(path)
            rest, eof = read_to_eof(a, 30)
            print("second: A got %d bytes, then %d more and %s" % (len(got), len(rest),
                                                                  "EOF" if eof else "no EOF"))
            check(eof and rest.endswith(NOTICE), "A did not get the notice and EOF: %r" % rest[-120:])
            data, m = read_until(b, rb"chatter %08d of" % (chatter - 1), 240)
            lines = chatter_lines(data)
            print("second: B got lines %s..%s" % (lines[:1], lines[-1:]))
            check(m is not None, "client B never saw the last line")
            check(lines == list(range(lines[0], chatter)) if lines else False,
                  "client B's lines are not in order to the last")
        rc = wait_exit(proc, 240)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        for s in (a, b):
            if s:
                s.close()
    check(rc == STATUS, "exit status %s, expected %d" % (rc, STATUS))
    con = counters(err, CONSOLE, "console")
    if con:
        check(con[1] == 2 and con[2] == 1, "%d clients, %d replaced: expected 2 and 1"
              % (con[1], con[2]))
    return err


def mode_linux(rtvmm, root, tmp):
    kernel, initrd = os.environ.get("RTVMM_TEST_KERNEL", ""), os.environ.get("RTVMM_TEST_INITRD", "")
    if not (os.path.isfile(kernel) and os.path.isfile(initrd)):
        print("FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh")
        sys.exit(1)
    extra = subprocess.run([os.path.join(root, "guest/linux/cmdline.sh"), rtvmm],
                           capture_output=True, text=True, check=True).stdout.strip()
    path = os.path.join(tmp, "console.sock")
    args = ["--kernel", kernel, "--initrd", initrd, "--vcpus", "1", "--memory", "256M",
            "--serial", "socket=" + path,
            "--cmdline", "console=ttyS0 %s panic=-1 rtvmm.test=shell" % extra]
    with tempfile.TemporaryFile() as errf:
        t0 = time.monotonic()
        proc = start(rtvmm, args, errf)
        if check(wait_socket(path, proc), "no socket at %s" % path):
            c = connect(path)
            got, m = read_until(c, rb"rtvmm-init: starting a shell", 600)
            print("linux: shell after %.0f s, %d bytes of console" % (time.monotonic() - t0, len(got)))
            check(m is not None, "the guest never reached its shell")
            check(b"Linux version" in got, "the client missed the boot log")
            time.sleep(3)
            c.sendall(b"echo RTVMM-ANSWER-$((6 * 7))\n")
            got, m = read_until(c, rb"RTVMM-ANSWER-42", 60, got)
            check(m is not None, "the shell never answered")
            c.sendall(b"poweroff -f\n")
            rc = wait_exit(proc, 120)
            c.close()
        else:
            rc = wait_exit(proc, 10)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    print("linux: exit status %s" % rc)
    check(rc == 0, "exit status %s, expected 0 after poweroff -f" % rc)
    return err


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: console_serial.py file|idle|stalled|second|linux RTVMM GUEST.elf")
    mode, rtvmm, guest = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist on this machine: no KVM, cannot boot a guest")
        sys.exit(77)
    if IN_BOX:
        print("box: rtvmm runs pinned to box cpu %d (README: Tests)" % BOX_CPU)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tmp = tempfile.mkdtemp(prefix="rtvmm-serial-")
    try:
        if mode == "linux":
            err = mode_linux(rtvmm, root, tmp)
        else:
            err = {"file": mode_file, "idle": mode_idle, "stalled": mode_stalled,
                   "second": mode_second}[mode](rtvmm, guest, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("--- rtvmm's stderr:\n" + err[-4000:])
        for p in problems:
            print("FAIL: " + p)
        sys.exit(1)
    print("ok: %s" % mode)


if __name__ == "__main__":
    main()
