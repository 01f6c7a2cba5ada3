#!/usr/bin/env python3
"""Checks the parsers of bench/linux_cyclictest.py and bench/boot.py on fixed inputs, the
cyclictest initramfs of scripts/mkinitramfs.sh --cyclictest, the Linux kernel resolver, and
the skip records of benchlib with their re-check in tests/integration/bench_quick.py.
No KVM needed.

Usage: tests/bench/test_bench_parsers.py [-v]"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

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


def load_bench_quick():
    spec = importlib.util.spec_from_file_location(
        "bench_quick", os.path.join(ROOT, "tests", "integration", "bench_quick.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class SkipRecords(unittest.TestCase):
    """A skip carries a fact (kind, subject) that bench_quick.py checks again on the host."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.build = os.path.realpath(self.tmp.name)
        self.args = argparse.Namespace(build=self.build, quick=True)
        self.quick = load_bench_quick()

    def tearDown(self):
        self.tmp.cleanup()

    def doc(self, missing):
        res = benchlib.new_result("boot", self.args, {})
        res.pop("_t0")
        res["duration_s"] = 0.0
        return benchlib.skip(res, missing)

    def test_missing_program_is_recorded_and_holds(self):
        d = self.doc(benchlib.need("sh", "rtvmm-no-such-program"))
        self.assertEqual((d["status"], d["skip"]), ("skipped", {"kind": "program",
                                                                "subject": "rtvmm-no-such-program"}))
        self.assertIn("rtvmm-no-such-program not found", d["reason"])
        self.assertTrue(self.quick.skip_holds(d["skip"], self.build)[0])

    def test_a_program_that_is_there_is_a_false_reason(self):
        self.assertIsNone(benchlib.need("sh"))
        ok, how = self.quick.skip_holds({"kind": "program", "subject": "sh"}, self.build)
        self.assertFalse(ok)
        self.assertIn(shutil.which("sh"), how)

    def test_unbuilt_file_holds_only_inside_the_build_directory(self):
        absent = os.path.join(self.build, "dataplane", "rtvmm-dataplane")
        m = benchlib.need_built(self.args, absent)
        self.assertEqual(m.record(), {"kind": "build", "subject": absent})
        self.assertIn("libdpdk-dev", m.reason)
        self.assertTrue(self.quick.skip_holds(m.record(), self.build)[0])
        present = os.path.join(self.build, "rtvmm")
        open(present, "w").close()
        self.assertIsNone(benchlib.need_built(self.args, present))
        self.assertFalse(self.quick.skip_holds({"kind": "build", "subject": present}, self.build)[0])
        self.assertFalse(self.quick.skip_holds({"kind": "build", "subject": "/nonexistent"}, self.build)[0])

    def test_root_and_kvm_records(self):
        root = benchlib.need_root("SCHED_FIFO")
        self.assertEqual(root is None, os.geteuid() == 0)
        self.assertEqual(self.quick.skip_holds({"kind": "root", "subject": None}, self.build)[0],
                         os.geteuid() != 0)
        dev = os.path.join(self.build, "no-kvm")
        self.assertEqual(benchlib.need_kvm(dev).record(), {"kind": "kvm", "subject": dev})
        with open(os.path.join(self.build, "rtvmm"), "w") as f:   # kvm-host fails too
            f.write("#!/bin/sh\necho 'rtvmm: cannot open' >&2\nexit 1\n")
        os.chmod(os.path.join(self.build, "rtvmm"), 0o755)
        self.assertTrue(self.quick.skip_holds({"kind": "kvm", "subject": dev}, self.build)[0])

    def test_a_whole_or_partial_skip_passes_only_when_it_holds_and_never_under_ci(self):
        d = self.doc(benchlib.need("rtvmm-no-such-program"))
        self.quick.CI = False
        self.assertEqual(self.quick.check_skips(d, self.build), set())
        d["skip"] = {"kind": "program", "subject": "sh"}
        self.assertRaises(AssertionError, self.quick.check_skips, d, self.build)
        part = {"status": "ok", "benchmark": "pvp", "skipped_parts": []}
        benchlib.skip_part(part, "qemu", benchlib.need("rtvmm-no-such-qemu"))
        self.assertEqual(self.quick.check_skips(part, self.build), {"qemu"})
        self.quick.CI = True
        self.assertRaises(AssertionError, self.quick.check_skips, part, self.build)

    def test_unrecorded_or_unknown_skips_do_not_hold(self):
        for rec in (None, {"kind": "weather", "subject": "rain"}, {"kind": "program", "subject": None}):
            self.assertFalse(self.quick.skip_holds(rec, self.build)[0], rec)

    def test_schema_wants_the_record_of_a_skip(self):
        import jsonschema
        from referencing import Registry, Resource
        with open(os.path.join(ROOT, "bench", "schema", "benchmark.schema.json")) as f:
            bench = json.load(f)
        v = jsonschema.Draft202012Validator(
            bench, registry=Registry().with_resources([(bench["$id"], Resource.from_contents(bench))]))
        d = self.doc(benchlib.need("rtvmm-no-such-program"))
        v.validate(d)
        d["skip"] = None
        self.assertFalse(v.is_valid(d))
        d["skip"] = {"kind": "weather", "subject": "rain"}
        self.assertFalse(v.is_valid(d))
        ok = benchlib.new_result("boot", self.args, {})
        ok.pop("_t0")
        ok["duration_s"] = 0.0
        benchlib.skip_part(ok, "qemu", benchlib.need("rtvmm-no-such-qemu"))
        v.validate(ok)
        self.assertEqual(ok["skipped_parts"][0]["part"], "qemu")


class PairedRatios(unittest.TestCase):
    """benchlib.add_paired_ratio: a goal verdict only when the interleaved rounds separate."""

    def ratio(self, a, b, noise=None):
        res = {"ratios": []}
        return benchlib.add_paired_ratio(res, "x", a, b, goal=1.0, better="higher", noise=noise)

    def test_every_round_above_the_goal_meets_it(self):
        r = self.ratio([3.0, 3.3, 2.9], [2.0, 3.0, 2.5])
        self.assertTrue(r["met"])
        self.assertEqual(r["rounds"], 3)
        self.assertEqual(r["spread"], [1.1, 1.5])
        self.assertAlmostEqual(r["value"], 3.0 / 2.5)

    def test_every_round_below_the_goal_misses_it(self):
        r = self.ratio([1.0, 1.1, 0.9], [2.0, 3.0, 2.5])
        self.assertIs(r["met"], False)
        self.assertIn("misses", r["verdict"])

    def test_rounds_that_straddle_the_goal_give_no_verdict_and_say_what_else_ran(self):
        noise = benchlib.Noise([0])
        with noise:
            pass
        r = self.ratio([3.0, 1.0, 2.0], [2.0, 2.0, 2.0], noise=noise)
        self.assertIsNone(r["met"])
        self.assertTrue(r["verdict"].startswith("not separable in this run: the rounds' ratios 0.5..1.5"))
        self.assertIn("load average", r["verdict"])
        self.assertIn("steal time cpu 0", r["verdict"])

    def test_too_few_rounds_give_no_verdict(self):
        r = self.ratio([3.0, 3.0], [1.0, 1.0])
        self.assertIsNone(r["met"])
        self.assertIn("2 round(s), a verdict needs 3", r["verdict"])

    def test_a_round_without_a_peer_figure_is_left_out(self):
        r = self.ratio([3.0, 3.0, 3.0, 3.0], [1.0, None, 0, 1.5])
        self.assertEqual(r["rounds"], 2)
        self.assertIsNone(r["met"])


class KernelResolver(unittest.TestCase):
    """benchlib.linux_kernel: --kernel, then $RTVMM_TEST_KERNEL, then the host decides."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def touch(self, *parts):
        path = os.path.join(self.d, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        return path

    def test_stock_package_tree_gives_modules_and_no_vmlinux(self):
        vmlinuz = self.touch("pkg", "boot", "vmlinuz-6.1.0-9-amd64")
        os.makedirs(os.path.join(self.d, "pkg", "lib", "modules", "6.1.0-9-amd64"))
        k, why = benchlib.linux_kernel("/nonexistent/rtvmm", vmlinuz)
        self.assertIsNone(why)
        self.assertEqual((k.bzimage, k.vmlinux, k.modules), (vmlinuz, None, os.path.join(self.d, "pkg")))

    def test_built_kernel_has_its_sibling_vmlinux_and_no_modules(self):
        bz = self.touch("build", "bzImage")
        vmlinux = self.touch("build", "vmlinux")
        with mock.patch.dict(os.environ, {"RTVMM_TEST_KERNEL": bz}):
            k, why = benchlib.linux_kernel("/nonexistent/rtvmm")
        self.assertEqual((k.bzimage, k.vmlinux, k.modules), (bz, vmlinux, None))
        self.assertIn("RTVMM_TEST_KERNEL", k.origin)

    def test_option_wins_over_environment_and_a_missing_file_says_so(self):
        bz = self.touch("a", "bzImage")
        with mock.patch.dict(os.environ, {"RTVMM_TEST_KERNEL": "/nonexistent/bzImage"}):
            self.assertEqual(benchlib.linux_kernel("/nonexistent/rtvmm", bz)[0].bzimage, bz)
            k, why = benchlib.linux_kernel("/nonexistent/rtvmm")
        self.assertIsNone(k)
        self.assertIn("/nonexistent/bzImage is not a file", why)

    def test_a_pvm_host_wants_the_built_kernel(self):
        calls = []

        def script(name, *argv):
            calls.append(name)
            return (None, "no build") if name == "build-kernel.sh" else (self.touch("x"), None)
        env = {k: v for k, v in os.environ.items() if k != "RTVMM_TEST_KERNEL"}
        with mock.patch.dict(os.environ, env, clear=True), \
                mock.patch.object(benchlib, "_script", script), \
                mock.patch.object(benchlib, "kvm_host", lambda r: "kvm_pvm /dev/kvm api 12 max_vcpus 255"):
            k, why = benchlib.linux_kernel("rtvmm")
        self.assertIsNone(k)
        self.assertIn("scripts/build-kernel.sh builds it", why)
        self.assertEqual(calls, ["build-kernel.sh"])
        with mock.patch.dict(os.environ, env, clear=True), \
                mock.patch.object(benchlib, "_script", script), \
                mock.patch.object(benchlib, "kvm_host", lambda r: "kvm_amd /dev/kvm api 12 max_vcpus 255"):
            k, why = benchlib.linux_kernel("rtvmm")
        self.assertEqual(calls, ["build-kernel.sh", "fetch-kernel.sh"])
        self.assertIn("stock", k.origin)


if __name__ == "__main__":
    unittest.main()
