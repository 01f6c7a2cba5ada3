#!/usr/bin/env python3
"""The bare-metal guest's CPL3 code stays inside its user region.

Everything in .user.text runs at CPL3 with only the user region (and pages
user__map()ed at run time) user-accessible: a call into kernel text or a
load from .rodata there is a #PF at run time, on whatever path first takes
it. C code marked USER_TEXT (bench/guest/rt.h) can pick such references up
from the compiler (a runtime helper it did not inline, a constant pool, a
jump table), so this checks the linked image: every direct branch target and
every RIP-relative operand of .user.text must lie in [__user_start,
__user_end), and no immediate may be an address inside the kernel part of
the image. Exit 0, 1 with the offending instructions, 77 without objdump.

Usage: guest_user_region.py GUEST.elf
"""
import re
import shutil
import subprocess
import sys


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 1
    elf = sys.argv[1]
    if not shutil.which("objdump") or not shutil.which("nm"):
        print("SKIP: objdump/nm (binutils) not found")
        return 77
    syms = {}
    for line in subprocess.run(["nm", elf], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    lo, hi = syms["__user_start"], syms["__user_end"]
    image = syms["__image_start"]
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-j", ".user.text", elf],
                         capture_output=True, text=True, check=True).stdout

    bad, insns = [], 0
    insn_re = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")
    for line in dis.splitlines():
        m = insn_re.match(line)
        if not m:
            continue
        insns += 1
        addr, text = int(m.group(1), 16), m.group(2)
        op = text.split()[0] if text.split() else ""
        refs = []
        # direct call/jmp/jcc: "call   401c20 <net_user_run>"
        b = re.match(r"^(call|jmp|j[a-z]+|loop[a-z]*)\s+([0-9a-f]+) <", text)
        if b:
            refs.append(("branch to", int(b.group(2), 16)))
        # RIP-relative operands: objdump annotates them "# 20a3ea <sym>"
        for r in re.finditer(r"#\s+([0-9a-f]+) <", text):
            refs.append(("rip-relative", int(r.group(1), 16)))
        # immediates that are kernel-image addresses (an address taken of kernel code or data)
        if op not in ("nop", "nopw", "nopl"):
            for r in re.finditer(r"\$0x([0-9a-f]+)", text):
                v = int(r.group(1), 16)
                if image < v < lo:
                    refs.append(("immediate", v))
        for what, target in refs:
            if not lo <= target < hi:
                bad.append("%x: %s  (%s 0x%x, outside the user region [0x%x, 0x%x))" % (addr, text, what, target, lo, hi))
    if not insns:
        print("FAIL: no instructions in .user.text of %s" % elf)
        return 1
    if bad:
        print("FAIL: CPL3 code in %s reaches outside the user region:" % elf)
        print("\n".join(bad))
        print("(see USER_TEXT in bench/guest/rt.h: always_inline helpers, no runtime calls, no .rodata)")
        return 1
    print("PASS: %d instructions in .user.text [0x%x, 0x%x) reference only the user region" % (insns, lo, hi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
