#!/usr/bin/env python3
"""SIGTERM while rtvmm builds the VM stops the build cleanly.

rtvmm gets a NIC whose backend socket (this test's, listening) accepts the
connection and then says nothing, so the builder sits in its wait for the
backend (up to 2 s). As soon as rtvmm has connected, the test sends SIGTERM:
rtvmm must exit with status 143 within a few seconds, say on stderr that the
signal stopped the build, never print the "VM built" report, and close the
backend connection (the peer sees EOF). Before, the signal's default action
killed the process outright (no message, no cleanup, status -15 here).

Usage: build_stops_on_sigterm.py RTVMM GUEST.elf   (exit 77 only without /dev/kvm)
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: build_stops_on_sigterm.py RTVMM GUEST.elf")
    rtvmm, guest = sys.argv[1:]
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist on this machine: no KVM, cannot build a VM")
        sys.exit(77)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "silent.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        cmd = [rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M",
               "--net", "socket=%s" % path, "--cmdline", "test=none"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        conn = None
        try:
            srv.settimeout(60)
            conn, _ = srv.accept()
            time.sleep(0.2)   # into the builder's wait for the backend
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
            took = time.monotonic() - t0
            conn.settimeout(5)
            while conn.recv(4096):   # the handshake's first message, then EOF
                pass
        except socket.timeout:
            problems.append("the backend connection was never accepted or never closed")
            out, err, took = b"", b"", None
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            took = None
            problems.append("rtvmm still running 15 s after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if conn:
                conn.close()
            srv.close()
    err = err.decode(errors="replace")
    print("rtvmm exit status %s, %s s after SIGTERM" % (proc.returncode,
                                                        "%.2f" % took if took is not None else "?"))
    if proc.returncode != 128 + signal.SIGTERM:
        problems.append("exit status %s, expected %d" % (proc.returncode, 128 + signal.SIGTERM))
    if took is not None and took > 5:
        problems.append("took %.1f s to stop, expected a few" % took)
    if "Terminated while building the VM" not in err:
        problems.append("stderr does not say the signal stopped the build")
    if "VM built in" in err:
        problems.append("rtvmm reported a built VM: the signal did not stop the build")
    if problems:
        print("--- rtvmm's stderr:\n" + err)
        for p in problems:
            print("FAIL: " + p)
        sys.exit(1)
    print("ok: SIGTERM during the build: status 143, one line, backend connection closed")


if __name__ == "__main__":
    main()
