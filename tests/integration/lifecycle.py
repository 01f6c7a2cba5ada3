#!/usr/bin/env python3
"""How a running guest ends: the ACPI power button on SIGTERM, the shutdown grace, pvpanic.

Modes (one per meson test):
  power-button  A Debian Linux guest (rtvmm.test=idle: its init waits, busybox acpid listens to
                the kernel's power button) gets SIGTERM: rtvmm presses the button and says so,
                acpid's handler prints the guest's shutdown path, the kernel powers off, and rtvmm
                exits 0 well within the grace (--shutdown-grace 90).
  grace         The bare-metal guest, which has no ACPI and ignores the button (fault=hang: cli;
                hlt), gets SIGTERM with --shutdown-grace 2: rtvmm presses, waits 2 s, says the
                guest did not power off and exits 143. Then again with a 60 s grace and a second
                SIGTERM 1 s after the first: exit 143 at once, saying why.
  panic         A Debian Linux guest with pvpanic-pci loaded whose init exits (rtvmm.test=panic:
                "Kernel panic - not syncing: Attempted to kill init") with panic=-1, which used to
                reset and exit 0: rtvmm exits 3 and its stop line says "guest panicked".

Usage: lifecycle.py RTVMM GUEST.elf MODE
The Linux modes take the kernel and initramfs from scripts/test.sh (RTVMM_TEST_KERNEL,
RTVMM_TEST_INITRD: Debian's kernel, whose initramfs carries button, evdev and pvpanic-pci).
Exit 0 on success, 1 on failure (with rtvmm's output), 77 (skip) only without /dev/kvm.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Run:
    """One rtvmm run with stdout/stderr in files, pinned to box cpu 1 inside the KVM box."""

    def __init__(self, tmp, rtvmm, args):
        self.out_path = os.path.join(tmp, "out")
        self.err_path = os.path.join(tmp, "err")
        pin = ["taskset", "-c", "1"] if os.environ.get("RTVMM_KVMBOX") == "1" else []
        self.cmd = pin + [rtvmm, "run"] + args
        print("command: " + " ".join(self.cmd), flush=True)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def text(self, which):
        with open(self.out_path if which == "out" else self.err_path, errors="replace") as f:
            return f.read()

    def wait_for(self, marker, timeout):
        """Waits until `marker` is on stdout; False if rtvmm ended or the time ran out first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if marker in self.text("out"):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """rtvmm's exit status, or None (and killed) if it is still running after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def dump(self):
        print("--- stdout (last 40 lines)\n" + "\n".join(self.text("out").splitlines()[-40:]))
        print("--- stderr\n" + self.text("err"))


def linux_args():
    kernel = os.environ.get("RTVMM_TEST_KERNEL", "")
    initrd = os.environ.get("RTVMM_TEST_INITRD", "")
    if not (os.path.isfile(kernel) and os.path.isfile(initrd)):
        print("FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh, which "
              "prepares them (kernel '%s', initrd '%s')" % (kernel, initrd))
        sys.exit(1)
    return kernel, initrd


def linux_cmdline(rtvmm, mode):
    extra = subprocess.run([os.path.join(ROOT, "guest/linux/cmdline.sh"), rtvmm],
                           capture_output=True, text=True, check=True).stdout.strip()
    return "console=ttyS0 %s panic=-1 rtvmm.test=%s" % (extra, mode)


def check(problems, cond, what):
    if not cond:
        problems.append(what)


def power_button(rtvmm, tmp):
    kernel, initrd = linux_args()
    run = Run(tmp, rtvmm, ["--kernel", kernel, "--initrd", initrd, "--memory", "256M",
                           "--shutdown-grace", "90", "--cmdline", linux_cmdline(rtvmm, "idle")])
    problems = []
    try:
        if not run.wait_for("RTVMM-IDLE", 240):
            problems.append("the guest never reached its init's idle mode")
        else:
            check(problems, "rtvmm-init: acpid started" in run.text("out"),
                  "the guest's init did not start acpid (no /dev/input/event0?)")
            time.sleep(2)    # acpid has opened the event devices
            t0 = time.monotonic()
            run.signal(signal.SIGTERM)
            status = run.wait(120)
            took = time.monotonic() - t0
            print("rtvmm exit status %s, %.1f s after SIGTERM" % (status, took))
            out, err = run.text("out"), run.text("err")
            check(problems, status == 0, "exit status %s, expected 0" % status)
            check(problems, took < 60, "took %.0f s, expected well within the 90 s grace" % took)
            check(problems, "Terminated: pressed the ACPI power button; the VM stops in 90 s"
                  in err, "stderr does not say the power button was pressed")
            check(problems, "rtvmm-init: power button: acpid ran" in out,
                  "the guest's acpid handler did not run")
            check(problems, "reboot: Power down" in out, "the guest kernel did not power off")
            check(problems, "guest powered off, exit status 0" in err,
                  "the stop line does not say the guest powered off")
            check(problems, "did not power off" not in err and "stopping the VM" not in err,
                  "rtvmm stopped the VM itself")
    finally:
        run.kill()
    return run, problems


def grace(rtvmm, guest, tmp):
    problems = []
    args = ["--kernel", guest, "--test-device", "--memory", "64M", "--cmdline", "fault=hang"]
    run = Run(tmp, rtvmm, args + ["--shutdown-grace", "2"])
    try:
        if not run.wait_for("fault: hang", 60):
            problems.append("the bare-metal guest never reached fault=hang")
            return run, problems
        t0 = time.monotonic()
        run.signal(signal.SIGTERM)
        status = run.wait(30)
        took = time.monotonic() - t0
        print("grace 2 s: rtvmm exit status %s, %.1f s after SIGTERM" % (status, took))
        err = run.text("err")
        check(problems, status == 128 + signal.SIGTERM, "exit status %s, expected 143" % status)
        check(problems, 2.0 <= took < 12, "stopped %.1f s after SIGTERM, expected 2 s and a bit"
              % took)
        check(problems, "Terminated: pressed the ACPI power button; the VM stops in 2 s" in err,
              "stderr does not say the power button was pressed")
        check(problems, "the guest did not power off within 2 s of the power button: stopping "
              "the VM" in err, "stderr does not say the grace ran out")
        check(problems, "stopped after" in err and "signal, exit status 143" in err,
              "the stop line does not give status 143")
    finally:
        run.kill()
    if problems:
        return run, problems

    run = Run(tmp, rtvmm, args + ["--shutdown-grace", "60"])
    try:
        if not run.wait_for("fault: hang", 60):
            problems.append("the bare-metal guest never reached fault=hang (second run)")
            return run, problems
        t0 = time.monotonic()
        run.signal(signal.SIGTERM)
        time.sleep(1)
        run.signal(signal.SIGTERM)
        status = run.wait(30)
        took = time.monotonic() - t0
        print("grace 60 s, two SIGTERMs: rtvmm exit status %s, %.1f s after the first" %
              (status, took))
        err = run.text("err")
        check(problems, status == 128 + signal.SIGTERM, "exit status %s, expected 143" % status)
        check(problems, took < 15, "stopped %.1f s after the first SIGTERM: the second did not "
              "stop it at once" % took)
        check(problems, "Terminated again during the shutdown grace: stopping the VM now" in err,
              "stderr does not say the second SIGTERM stopped it")
    finally:
        run.kill()
    return run, problems


def panic(rtvmm, tmp):
    kernel, initrd = linux_args()
    run = Run(tmp, rtvmm, ["--kernel", kernel, "--initrd", initrd, "--memory", "256M",
                           "--cmdline", linux_cmdline(rtvmm, "panic")])
    problems = []
    try:
        status = run.wait(240)
        out, err = run.text("out"), run.text("err")
        print("rtvmm exit status %s" % status)
        check(problems, status == 3, "exit status %s, expected 3 (guest panicked)" % status)
        check(problems, "Kernel panic - not syncing" in out, "the guest kernel did not panic")
        check(problems, "guest panicked, exit status 3" in err,
              "the stop line does not say 'guest panicked, exit status 3'")
        check(problems, "guest requested reset" not in err, "the panic reset the guest instead")
    finally:
        run.kill()
    return run, problems


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("power-button", "grace", "panic"):
        sys.exit("usage: lifecycle.py RTVMM GUEST.elf power-button|grace|panic")
    rtvmm, guest, mode = sys.argv[1:]
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist on this machine: no KVM, cannot run a guest")
        sys.exit(77)
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "power-button":
            run, problems = power_button(rtvmm, tmp)
        elif mode == "grace":
            run, problems = grace(rtvmm, guest, tmp)
        else:
            run, problems = panic(rtvmm, tmp)
        if problems:
            run.dump()
            for p in problems:
                print("FAIL: " + p)
            sys.exit(1)
    print("PASS: " + mode)


if __name__ == "__main__":
    main()
