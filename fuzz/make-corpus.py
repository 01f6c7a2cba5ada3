#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/TARGET/ (committed).

Every seed is a valid input built here from the formats the targets document (fuzz/fuzz_*.c):
the example plans, a vhost-user backend's correct replies, a Linux-like virtio-pci bring-up,
the legacy devices as a guest drives them, a small split ring, disk requests, and tiny kernels
(ELF64, bzImage with raw, gzip, xz and zstd payloads) made from scratch.

Usage: make-corpus.py [--out DIR]   (default: fuzz/corpus next to this script)
"""
import argparse
import base64
import gzip
import lzma
import os
import shutil
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)


# ---- plan: byte 0 picks the topology, the rest is the YAML ---------------------------------
def plan_seeds():
    seeds = {}
    examples = os.path.join(ROOT, "examples")
    for name in sorted(os.listdir(examples)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(examples, name), "rb") as f:
            yaml = f.read()
        for topo in range(3):
            seeds[f"{name[:-5]}-topo{topo}"] = u8(topo) + yaml
    seeds["minimal-vms"] = u8(1) + b"vms:\n  - name: a\n    kernel: k\n    vcpus: 1\n"
    return seeds


# ---- vhost-user: options, protocol features asked for, then the backend's chunks -----------
VU_VERSION, VU_REPLY = 1, 4
GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 1, 15, 17
SET_OWNER, SET_MEM_TABLE = 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ENABLE = 12, 13, 18
PROTO_MQ, PROTO_REPLY_ACK = 1 << 0, 1 << 3


def vu_reply(req, payload):
    return u32(req) + u32(VU_VERSION | VU_REPLY) + u32(len(payload)) + payload


def chunk(data, fd=False):
    assert len(data) < 256
    return u8(len(data)) + u8(1 if fd else 0) + data


def vu_stream(protocol, fd_in_reply=False):
    """The replies the frontend's handshake (fuzz_vhost_user.c) expects, in order."""
    ack = protocol is not None and protocol & PROTO_REPLY_ACK
    features = (1 << 32) | (1 << 5) | ((1 << 30) if protocol is not None else 0)
    out = [chunk(vu_reply(GET_FEATURES, u64(features)))]
    if protocol is not None:
        out.append(chunk(vu_reply(GET_PROTOCOL_FEATURES, u64(protocol))))
        if protocol & PROTO_MQ:
            out.append(chunk(vu_reply(GET_QUEUE_NUM, u64(2))))
    if ack:
        out.append(chunk(vu_reply(SET_OWNER, u64(0))))
        out.append(chunk(vu_reply(SET_MEM_TABLE, u64(0))))
        for _ in range(2):
            for req in (SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, SET_VRING_KICK,
                        SET_VRING_CALL, SET_VRING_ENABLE):
                out.append(chunk(vu_reply(req, u64(0))))
    for ring in range(2):
        out.append(chunk(vu_reply(GET_VRING_BASE, u32(ring) + u32(17 * ring)),
                         fd=fd_in_reply and ring == 1))
    return b"".join(out)


def vhost_user_seeds():
    every = PROTO_MQ | PROTO_REPLY_ACK
    return {
        "no-protocol-features": u8(0) + u64(0) + vu_stream(None),
        "protocol-none": u8(1) + u64(every) + vu_stream(0),
        "protocol-mq": u8(3) + u64(every) + vu_stream(PROTO_MQ),
        "protocol-mq-reply-ack": u8(3) + u64(every) + vu_stream(every),
        "reply-ack-only": u8(2) + u64(PROTO_REPLY_ACK) + vu_stream(PROTO_REPLY_ACK),
        "fd-in-a-reply": u8(1) + u64(every) + vu_stream(every, fd_in_reply=True),
    }


# ---- pci: operations (low nibble: which, high nibble: function) -----------------------------
def pci_cfg(write, slot, reg, width_idx, value):
    return u8(0 if write else 1) + u8(slot) + u8(reg) + u8(width_idx) + u32(value)


def pci_bar(dev, write, off, width_idx, value=0):
    return u8((dev << 4) | (3 if write else 4)) + u16(off) + u8(width_idx) + u64(value)


def pci_bring_up(dev, features, nq, size_log, ring_page):
    return u8((dev << 4) | 8) + u64(features) + u8(nq) + u8(size_log) + u16(ring_page)


def pci_common(dev, off, width_idx, value):
    return u8((dev << 4) | 9) + u8(off) + u8(width_idx) + u64(value)


def pci_seeds():
    v1 = (1 << 32) | (1 << 5) | (1 << 29)
    probe = b"".join(pci_cfg(False, slot, reg, 2, 0)
                     for slot in range(4) for reg in (0, 4, 8, 0x10, 0x14, 0x2c, 0x34, 0x40))
    kicks = b"".join(pci_bar(0, True, 0x3000 + 4 * q, 1, q) for q in range(3))
    calls = b"".join(u8(6) + u8(q) for q in range(3))
    mask = pci_bar(0, True, 0x4000 + 16 * 1 + 12, 2, 1) + u8(6) + u8(0) + \
        pci_bar(0, True, 0x4000 + 16 * 1 + 12, 2, 0)
    reset = pci_common(0, 0x14, 0, 0)
    move_bar = pci_cfg(True, 1, 4, 1, 0) + pci_cfg(True, 1, 0x10, 2, 0xffffffff) + \
        pci_cfg(False, 1, 0x10, 2, 0) + pci_cfg(True, 1, 0x10, 2, 0xe0100000) + \
        pci_cfg(True, 1, 4, 1, 6)
    pci_cfg_window = pci_cfg(True, 1, 0x40 + 12 + 4 * 4, 2, 0) + pci_cfg(False, 1, 0x80, 2, 0)
    return {
        "probe": probe,
        "bring-up": pci_bring_up(0, v1, 3, 8, 0x20),
        "bring-up-kick-call": pci_bring_up(0, v1, 3, 8, 0x20) + kicks + calls + u8(7),
        "bring-up-mask-reset": pci_bring_up(0, v1, 2, 4, 0x40) + mask + reset +
        pci_bring_up(0, v1, 3, 8, 0x20),
        "two-functions-bar-move": pci_bring_up(0, v1, 1, 2, 0x10) +
        pci_bring_up(1, v1, 1, 2, 0x80) + move_bar + kicks,
        "bad-features": pci_bring_up(1, (1 << 40) | (1 << 5), 3, 8, 0x20),
        "rings-outside-ram": pci_bring_up(0, v1, 3, 8, 0xffff),
        "pci-cfg-window": pci_cfg_window,
        "isr-and-device-config": pci_bring_up(0, v1, 1, 8, 0x20) + u8(7) +
        pci_bar(0, False, 0x1000, 0) + pci_bar(0, False, 0x2000, 3) + pci_bar(0, True, 0x2000, 1, 7),
    }


# ---- legacy: operations (bits 0-2: which, bit 7: write) ------------------------------------
COM1, KBD_DATA, KBD_CMD, PM_EVT, PM_CNT, RESET, TESTDEV, TESTDEV_PUTC = range(8)


def port(base, off, width_idx, value=0, write=False):
    return u8(0x80 if write else 0) + u8(base) + u8(off) + u8(width_idx) + u32(value)


def legacy_seeds():
    uart_init = b"".join(port(COM1, off, 0, v, True) for off, v in
                         ((3, 0x80), (0, 1), (1, 0), (3, 3), (2, 0xc7), (4, 0x0b), (1, 0x0f)))
    receive = u8(3) + u8(5) + b"hello"
    reads = b"".join(port(COM1, off, 0) for off in (5, 2, 0, 0, 5, 6, 7))
    loopback = port(COM1, 4, 0, 0x10, True) + port(COM1, 0, 0, 0x41, True) + port(COM1, 0, 0)
    kbd = port(KBD_CMD, 0, 0, 0xaa, True) + port(KBD_CMD, 0, 0) + port(KBD_DATA, 0, 0) + \
        port(KBD_CMD, 0, 0, 0x20, True) + port(KBD_DATA, 0, 0) + \
        port(KBD_CMD, 0, 0, 0x60, True) + port(KBD_DATA, 0, 0, 0x47, True) + \
        port(KBD_CMD, 0, 0, 0xd4, True) + port(KBD_DATA, 0, 0, 0xff, True) + port(KBD_DATA, 0, 0)
    reset = port(KBD_CMD, 0, 0, 0xfe, True)
    s5 = port(PM_EVT, 2, 1, 0xffff, True) + port(PM_CNT, 0, 1) + \
        port(PM_CNT, 0, 1, (5 << 10) | 0x2000, True) + port(RESET, 0, 0, 6, True)
    testdev = port(TESTDEV, 4, 2, 0x12345678, True) + port(TESTDEV, 4, 2) + port(TESTDEV, 0xc, 2) + \
        port(TESTDEV_PUTC, 0, 0, 0x41, True) + port(TESTDEV_PUTC, 0, 0, 0x0a, True) + \
        u8(0x82) + u16(8) + u8(3) + u64(0xdeadbeef) + u8(2) + u16(0x10) + u8(3) + u64(0) + \
        port(TESTDEV, 0, 2, 3, True)
    full = u8(3) + u8(255) + bytes(range(255)) + u8(3) + u8(10) + b"0123456789" + u8(4) + \
        b"".join(port(COM1, 0, 0) for _ in range(140)) + u8(4)
    return {
        "uart-init-receive-read": uart_init + receive + reads,
        "uart-loopback": uart_init + loopback,
        "uart-fifo-full-then-drained": uart_init + full,
        "i8042-probe": kbd,
        "i8042-reset": reset,
        "acpi-s5-and-reset": s5,
        "testdev": testdev,
    }


# ---- virtqueue: 13 bytes of setup, then guest RAM ------------------------------------------
def desc(addr, length, flags, nxt):
    return u64(addr) + u32(length) + u16(flags) + u16(nxt)


CHAINS = desc(0x400, 64, 1, 1) + desc(0x480, 128, 2, 0) + desc(0x600, 32, 4, 0) + \
    desc(0x500, 0, 0, 0)
LOOP = desc(0x400, 8, 1, 1) + desc(0x408, 8, 1, 0)     # 1 points back to 0


def vq_seed(flags, avail_idx, ring, table=CHAINS):
    """Ring of 8 at 0x100 (descriptors), 0x200 (available), 0x300 (used); buffers above."""
    ram = bytearray(0x800)
    ram[0x100:0x100 + len(table)] = table
    ram[0x600:0x620] = desc(0x700, 16, 1, 1) + desc(0x710, 16, 2, 0)   # an indirect table
    avail = u16(0) + u16(avail_idx) + b"".join(u16(h) for h in ring)
    ram[0x200:0x200 + len(avail)] = avail
    header = u16(8) + u32(0x100) + u16(0x200) + u16(0x300) + u8(flags) + u16(256)
    assert len(header) == 13
    return header + bytes(ram)


def virtqueue_seeds():
    return {
        "direct-chain": vq_seed(0, 1, [0]),
        "indirect-chain": vq_seed(1, 2, [0, 2]),
        "event-idx-three-chains": vq_seed(3, 3, [0, 2, 3]),
        "loop": vq_seed(0, 1, [0], table=LOOP),
        # Found by fuzzing (a timeout of the target itself, which read every byte of every
        # buffer): 2048 entries, chains of 64 KiB buffers. Must run in well under a second.
        "regression-slow-large-buffers": base64.b64decode(
            "AAgQAAAAAAC0fvdkcoH/AQMAoQAAAAgAAAAAAAYAIAAAAAAAAAAEAABBAAAAAAAAAAAAAAkAAAAAIAAAAAD+AAAABAAA/v//6gAApQAAAPwwAAAAAAAAAAAAAAABAAACAA=="),
    }


# ---- blk: flags, then 64 KiB of guest RAM with a 64-entry ring at 0 / 0x1000 / 0x2000 -------
def blk_seed(flags, requests, indirect=False):
    """Each request (type, sector, data length, data writable) as Linux lays it out."""
    ram = bytearray(0x10000)
    d = 0
    heads = []
    for n, (rtype, sector, dlen, writable) in enumerate(requests):
        hdr, data = 0x3000 + 0x40 * n, 0x8000 + 0x1000 * n
        ram[hdr:hdr + 16] = u32(rtype) + u32(0) + u64(sector)
        descs = [(hdr, 16, 1)]
        if dlen:
            descs.append((data, dlen, 1 | (2 if writable else 0)))
        descs.append((hdr + 0x20, 1, 2))
        if indirect:
            table = 0x6000 + 0x100 * n
            for i, (a, ln, fl) in enumerate(descs):
                nxt = i + 1 if fl & 1 else 0
                ram[table + 16 * i:table + 16 * i + 16] = u64(a) + u32(ln) + u16(fl) + u16(nxt)
            descs = [(table, 16 * len(descs), 4)]
        heads.append(d)
        for i, (a, ln, fl) in enumerate(descs):
            nxt = d + i + 1 if fl & 1 else 0
            ram[16 * (d + i):16 * (d + i) + 16] = u64(a) + u32(ln) + u16(fl) + u16(nxt)
        d += len(descs)
    ram[0x1002:0x1004] = u16(len(heads))
    for i, h in enumerate(heads):
        ram[0x1004 + 2 * i:0x1006 + 2 * i] = u16(h)
    return (u8(flags) + bytes(ram)).rstrip(b"\0")      # the target zero-fills the rest


def blk_seeds():
    mixed = [(0, 1, 512, True), (1, 2, 1024, False), (4, 0, 0, False), (8, 0, 20, True),
             (11, 0, 512, True), (0, 127, 1024, True)]
    return {
        "read-write-flush-id-unsupported-outside": blk_seed(0, mixed),
        "indirect-event-idx": blk_seed(3, mixed, indirect=True),
        "read-only": blk_seed(4, mixed),
    }


# ---- boot: options, command line and initrd lengths, command line, initrd, kernel ----------
def elf64(entry=0x200000, paddr=0x200000, code=b"\xf4" * 16, memsz=0x1000):
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + u16(2) + u16(62) + u32(1) + \
        u64(entry) + u64(64) + u64(0) + u32(0) + u16(64) + u16(56) + u16(1) + u16(0) + \
        u16(0) + u16(0)
    phdr = u32(1) + u32(5) + u64(120) + u64(paddr) + u64(paddr) + u64(len(code)) + u64(memsz) + \
        u64(0x1000)
    return ehdr + phdr + code


def bzimage(pm, payload_offset=0, payload_length=0, version=0x020f, reloc=1):
    """A setup sector and header (boot protocol, 'THE REAL-MODE KERNEL HEADER'), then `pm`."""
    img = bytearray(1024)
    img[0x1f1] = 1                                    # setup_sects: setup is 2 sectors
    img[0x1f4:0x1f8] = u32(len(pm) // 16)             # syssize
    img[0x1fe:0x200] = u16(0xaa55)
    img[0x200:0x202] = bytes([0xeb, 0x6a])            # jump: the header ends at 0x26c
    img[0x202:0x206] = b"HdrS"
    img[0x206:0x208] = u16(version)
    img[0x211] = 1                                    # loadflags: LOADED_HIGH
    img[0x22c:0x230] = u32(0x7fffffff)                # initrd_addr_max
    img[0x230:0x234] = u32(0x200000)                  # kernel_alignment
    img[0x234] = reloc
    img[0x236:0x238] = u16(1)                         # xloadflags: XLF_KERNEL_64
    img[0x238:0x23c] = u32(255)                       # cmdline_size
    img[0x248:0x24c] = u32(payload_offset)
    img[0x24c:0x250] = u32(payload_length)
    img[0x258:0x260] = u64(0x200000)                  # pref_address
    img[0x260:0x264] = u32(0x400000)                  # init_size
    return bytes(img) + pm


def bz_with_payload(payload):
    pm = bytes(0x100) + payload + bytes(16)
    return bzimage(pm, 0x100, len(payload))


def boot_input(kernel, mode, cmdline=b"console=ttyS0", initrd=None):
    opts = mode | (4 if initrd is not None else 0)
    initrd = initrd or b""
    return u8(opts) + u8(len(cmdline)) + u16(len(initrd)) + cmdline + initrd + kernel


def boot_seeds():
    vmlinux = elf64()
    sized = vmlinux + u32(len(vmlinux))
    seeds = {
        "elf": boot_input(vmlinux, 0),
        "elf-initrd": boot_input(vmlinux, 0, initrd=b"070701" + bytes(100)),
        "bzimage-direct": boot_input(bzimage(bytes(0x1000)), 1, initrd=b"initrd"),
        "bzimage-not-relocatable": boot_input(bzimage(bytes(0x1000), reloc=0), 0),
        "bzimage-old-protocol": boot_input(bzimage(bytes(0x100), version=0x020b), 0),
        "bzimage-gzip": boot_input(bz_with_payload(gzip.compress(vmlinux, mtime=0)), 2),
        "bzimage-xz": boot_input(bz_with_payload(lzma.compress(vmlinux, lzma.FORMAT_XZ) +
                                                 u32(len(vmlinux))), 2),
        "bzimage-xz-auto": boot_input(bz_with_payload(lzma.compress(sized, lzma.FORMAT_XZ)), 0),
        "bzimage-lz4-unsupported": boot_input(bz_with_payload(b"\x02\x21\x4c\x18" + bytes(32)), 2),
    }
    zstd = shutil.which("zstd")
    if zstd:
        z = subprocess.run([zstd, "-q", "-c", "--no-check"], input=vmlinux, capture_output=True,
                           check=True).stdout
        seeds["bzimage-zstd"] = boot_input(bz_with_payload(z + u32(len(vmlinux))), 2)
    return seeds


TARGETS = {
    "plan": plan_seeds,
    "vhost_user": vhost_user_seeds,
    "pci": pci_seeds,
    "legacy": legacy_seeds,
    "virtqueue": virtqueue_seeds,
    "boot": boot_seeds,
    "blk": blk_seeds,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = ap.parse_args()
    for target, make in TARGETS.items():
        d = os.path.join(args.out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in make().items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(os.listdir(d))} seeds in {d}")


if __name__ == "__main__":
    main()
