#!/usr/bin/env python3
"""Checks the parsers of bench/linux_cyclictest.py and bench/boot.py on fixed inputs, and the
cyclictest initramfs of scripts/mkinitramfs.sh --cyclictest. No KVM needed.

Usage: tests/bench/test_bench_parsers.py [-v]"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402
import boot  # noqa: E402
import linux_cyclictest  # noqa: E402

CYCLICTEST_OUTPUT = """# /dev/cpu_dma_latency set to 0us
{
  "file_version": 1,
  "num_threads": 1,
  "thread": {
    "0": {
      "histogram": {
        "2931": 3,
        "4100": 4,
        "8689": 1
      },
      "cycles": 10,
      "min": 2931,
      "max": 250123,
      "avg": 4561.25,
      "cpu": 0,
      "node": 0
    }
  }
}"""

SMAPS = """55d0c0a00000-55d0c0a80000 r-xp 00000000 08:01 1234 /usr/bin/qemu-system-x86_64
Size:                512 kB
Rss:                 400 kB
Pss:                 400 kB
7f0000000000-7f0004000000 rw-s 00000000 00:01 8366 /memfd:memory-backend-memfd (deleted)
Size:              65536 kB
Rss:                3300 kB
7f0004000000-7f0004100000 rw-p 00000000 00:00 0 
Size:               1024 kB
Rss:                 100 kB
7f0005000000-7f0005001000 rw-s 00000000 00:01 8367 /memfd:other (deleted)
Size:                  4 kB
Rss:                   4 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
Size:                132 kB
Rss:                  20 kB
"""


class CyclictestJson(unittest.TestCase):
    def test_histogram_summary_and_overflows_come_from_the_json(self):
        ct = benchlib.parse_cyclictest(CYCLICTEST_OUTPUT)
        self.assertEqual(ct["buckets"], {2931: 3, 4100: 4, 8689: 1})
        self.assertEqual((ct["min"], ct["avg"], ct["max"], ct["total"]), (2931, 4561.25, 250123, 10))
        self.assertEqual(ct["overflow"], 2)  # cycles the histogram does not hold

    def test_output_without_json_is_none(self):
        self.assertIsNone(benchlib.parse_cyclictest("cyclictest: unable to set priority\n"))
        self.assertIsNone(benchlib.parse_cyclictest("{ truncated"))

    def test_figure_takes_percentiles_from_the_histogram_and_overflows_at_max(self):
        res = {"results": [], "histograms": []}
        fig = linux_cyclictest.record(res, "linux-guest", "rt-idle",
                                      benchlib.parse_cyclictest(CYCLICTEST_OUTPUT))
        self.assertEqual((fig["value"], fig["count"], fig["overflow"]), (250123, 10, 2))
        self.assertEqual(fig["p99"], 250123)  # the top 1 % overflowed: reported at the max
        self.assertEqual(res["histograms"][0]["buckets"], [[2931, 3], [4100, 4], [8689, 1]])


class Smaps(unittest.TestCase):
    def test_overhead_is_every_mapping_but_the_guest_ram_memfd(self):
        r = boot.rss_overhead(SMAPS, "/memfd:memory-backend-memfd")
        self.assertEqual(r["guest_ram_kb"], 3300)
        self.assertEqual(r["guest_ram_mapped_kb"], 65536)
        self.assertEqual(r["overhead_kb"], 400 + 100 + 4 + 20)
        self.assertEqual(r["by_kind_kb"], {"files": 400, "anonymous": 100, "memfd": 4, "[stack]": 20})


@unittest.skipUnless(shutil.which("cyclictest") and shutil.which("cpio"), "needs rt-tests and cpio")
class CyclictestInitramfs(unittest.TestCase):
    def listing(self, *opts):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "i.cpio")
            subprocess.run([os.path.join(ROOT, "scripts", "mkinitramfs.sh"), *opts, out], check=True,
                           stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                return subprocess.run(["cpio", "-it", "--quiet"], stdin=f, capture_output=True,
                                      text=True, check=True).stdout.split()

    def test_cyclictest_libraries_and_loader_are_where_ldd_says(self):
        names = self.listing("--cyclictest")
        ldd = subprocess.run(["ldd", "/usr/bin/cyclictest"], capture_output=True, text=True).stdout
        want = ["usr/bin/cyclictest", "init", "bin/busybox"]
        want += [w[1:] for w in ldd.split() if w.startswith("/")]
        for w in want:
            self.assertIn(w, names)

    def test_plain_archive_has_no_cyclictest(self):
        self.assertNotIn("usr/bin/cyclictest", self.listing())


if __name__ == "__main__":
    unittest.main()
