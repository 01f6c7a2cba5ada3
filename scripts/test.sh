#!/usr/bin/env bash
# The whole rtvmm test suite (what .ci/run calls). Installs what is missing, builds a normal and
# an ASan/UBSan build, picks the KVM host, prepares the Linux guest (cached), runs every test,
# runs each fuzz target briefly (a clang build of its own) and ends with one summary.
#
# The KVM host: native /dev/kvm when `rtvmm kvm-host` can make a VM there; otherwise the tests
# of suite "kvm" run inside scripts/kvmbox (a standard KVM host in QEMU TCG) and the rest
# natively. Under CI=true a skipped test fails the run: CI installs every peer, so a skip there
# means something did not run.
#
# The Linux guest: Debian's stock kernel (linux-image-amd64, fetched into .cache/). Only on a
# nested PVM host, where the stock kernel cannot reach user space (docs/linux-guest.md), is
# rtvmm's own kernel built from linux-source (with its SYSCALL patch) and booted instead.
#
# Environment: RTVMM_TEST_HOST=native|box forces the KVM host; RTVMM_CACHE (default .cache);
# RTVMM_TEST_HEAVY=1 runs suite "heavy" in the box too.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/deps.sh build test dataplane bench box fuzz
export RTVMM_CACHE=${RTVMM_CACHE:-$root/.cache}
builds=(build build-asan)

for b in "${builds[@]}"; do
	opts=()
	[[ $b == build-asan ]] && opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
	scripts/build.sh "$b" "${opts[@]}"
done

# --- the KVM host -------------------------------------------------------------------------------
host=${RTVMM_TEST_HOST:-}
if native=$(build/rtvmm kvm-host 2> "$root/build/kvm-host.err"); then
	[[ -n $host ]] || host=native
	kind=${native%% *}
else
	[[ -n $host ]] || host=box
	kind=none
	echo "== no native KVM: $(sed 's/^rtvmm: //' "$root/build/kvm-host.err")"
fi
case $host in
native) echo "== KVM host: native $native" ;;
box)
	echo "== KVM host: scripts/kvmbox, QEMU TCG with kvm_amd inside (slow: for function, not timing)"
	if ! scripts/kvmbox --check; then
		echo "== the box cannot start: the kvm suites run natively and skip"
		host=native kind=none
	fi ;;
*) echo "RTVMM_TEST_HOST=$host: expected native or box" >&2; exit 2 ;;
esac
[[ $host == box ]] && kind=kvm_amd

# --- the Linux guest ----------------------------------------------------------------------------
# A failure here is not fatal to the script: the Linux tests then fail and say why. Debian's
# kernel has virtio-pci, virtio-net, virtio-blk, ext4, the ACPI button and evdev (for acpid) and
# pvpanic-pci as modules: its initramfs carries them.
initrd_opts=()
if stock_dir=$(scripts/fetch-kernel.sh --print-dir); then
	stock=$(scripts/fetch-kernel.sh)
	export RTVMM_TEST_STOCK_KERNEL=$stock RTVMM_TEST_KERNEL=$stock
	initrd_opts=(--modules "$stock_dir:virtio_pci,virtio_net,virtio_blk,ext4,button,evdev,pvpanic_pci")
	# The root disks (tests/integration/linux_rootfs.sh), built here: in the box it would take minutes.
	if rootfs=$(scripts/mkrootfs.sh --kernel-tree "$stock_dir" --cached); then
		export RTVMM_TEST_ROOTFS=$rootfs
	fi
	if command -v dpdk-testpmd > /dev/null && rootfs=$(scripts/mkrootfs.sh --vnf --kernel-tree "$stock_dir" --cached); then
		export RTVMM_TEST_ROOTFS_VNF=$rootfs
	fi
	# bench/disk.py's (fio inside): hashing its 83 MB of inputs takes the box most of a minute.
	if command -v fio > /dev/null && rootfs=$(scripts/mkrootfs.sh --fio --kernel-tree "$stock_dir" --cached); then
		export RTVMM_TEST_ROOTFS_FIO=$rootfs
	fi
fi
if [[ $kind == kvm_pvm ]] && scripts/deps.sh kernel && dir=$(scripts/build-kernel.sh --print-dir); then
	export RTVMM_TEST_KERNEL=$dir/bzImage
	initrd_opts=()
fi
echo "== Linux guest kernel: ${RTVMM_TEST_KERNEL:-none}"
if initrd=$(scripts/mkinitramfs.sh "${initrd_opts[@]}" "$RTVMM_CACHE/initramfs-test.cpio"); then
	export RTVMM_TEST_INITRD=$initrd
fi

# --- the runs -----------------------------------------------------------------------------------
# The Linux boots and the benchmark suite's quick mode run once, in the normal build; the
# sanitizer build runs everything else (bare-metal guests included) but the box's own test.
status=0
box_budget=${RTVMM_TEST_BOX_BUDGET_S:-4500}
logs=()
notrun=()
broken=()
for b in "${builds[@]}"; do
	skip=()
	[[ $b == build-asan ]] && skip=(--no-suite linux --no-suite bench --no-suite kvmbox)
	mt=(meson test -C "$b" --print-errorlogs --num-processes 2 "${skip[@]}")
	# In the box the sanitizer build also leaves out suite "slow" (QEMU as a peer, a testpmd
	# restart, two guests at once, the benchmark modes: minutes each there, and mostly the
	# peers' work); the normal build runs them, and natively the sanitizer build does too.
	boxskip=()
	[[ $b == build-asan ]] && boxskip=(--no-suite slow)
	# In the box, suite "heavy" too (three benchmarks' quick modes, 4-6 minutes each there, and
	# where the box most often wedged): natively they run; RTVMM_TEST_HEAVY=1 runs them in the box.
	[[ ${RTVMM_TEST_HEAVY:-} == 1 ]] || boxskip+=(--no-suite heavy)
	if [[ $host == box ]]; then
		echo "== $b: tests without KVM, natively"
		"${mt[@]}" --no-suite kvm --logbase native || status=1
		echo "== $b: kvm suite, in scripts/kvmbox, one test at a time$([[ ${boxskip[*]} == *heavy* ]] &&
			echo " (not suite heavy: $("${mt[@]}" --suite heavy --list 2> /dev/null | sed -n 's#^[^ ]* / ##p' | tr '
' ' ')- RTVMM_TEST_HEAVY=1 runs it)")"
		# The box's own kernel sometimes wedges (a box CPU stops taking interrupts while it runs a
		# nested guest: soft lockups, the RCU kthread starved; kvmbox exits 125 and prints it).
		# scripts/box-suite.sh leaves each test's result as it ends (scripts/box_tests.py prepares
		# the tests and reads the results: no meson in the box), so the tests that box finished keep
		# their results; the others run again in a new box, the one it wedged in last, and it says
		# so (a failed test is rerun below): up to 8 boxes per build while the whole run is within
		# RTVMM_TEST_BOX_BUDGET_S seconds (default 4500: a CI run must end within 90 minutes, and one
		# CI run saw 8 wedges). One box for all the tests saves a box boot (about 20 s) per test;
		# each test still runs alone in it.
		logs+=("$b/meson-logs/native.json=$b natively")
		rm -rf "$b"/meson-logs/kvmbox-*
		mapfile -t left < <("${mt[@]}" "${boxskip[@]}" --suite kvm --list 2> /dev/null |
			sed -n 's#^[^ ]* / ##p')
		[[ ${#left[@]} -gt 0 ]] || { echo "== $b: no kvm tests listed"; status=1; }
		wedges=0
		for try in 1 2 3 4 5 6 7 8; do
			[[ ${#left[@]} -gt 0 ]] || break
			if [[ $try -gt 1 && $SECONDS -ge $box_budget ]]; then
				echo "== $b: the run has taken $((SECONDS / 60)) min, past its box budget of" \
					"$((box_budget / 60)) min (RTVMM_TEST_BOX_BUDGET_S): no new box"
				break
			fi
			dir=$b/meson-logs/kvmbox-$try
			scripts/box_tests.py prepare "$b" "$dir" "${left[@]}" || { status=1; break; }
			rc=0
			scripts/kvmbox --timeout 7200 scripts/box-suite.sh "$dir" || rc=$?
			scripts/box_tests.py collect "$dir" "$dir.json" && logs+=("$dir.json=$b in kvmbox")
			# 0 or 1: box-suite.sh ran every test (their logs say which failed); else the box
			# wedged (125) or died otherwise, and the tests it did not finish run again.
			if [[ $rc == 0 || $rc == 1 ]]; then
				left=()
				break
			fi
			wedges=$((wedges + 1))
			mapfile -t left < <(scripts/box_tests.py left "$dir")
			if [[ $try -lt 8 && ${#left[@]} -gt 0 ]]; then
				echo "== $b: the box wedged in ${left[-1]} (not a test failure): the" \
					"${#left[@]} test(s) it did not finish run again in a new box, that one last"
			fi
		done
		if [[ ${#left[@]} -gt 0 ]]; then
			echo "== $b: the box wedged $wedges times; not run: ${left[*]}"
			notrun+=("$b in kvmbox=${left[*]}")
			status=1
		fi
		# A test that failed in the box runs once more, in a fresh box, when at most three did
		# (more is a real break, not the box): in one CI run three Linux guests stalled in the
		# box, one in early boot, which no run here has shown (cause not found). tests/summary.py
		# counts the last result and lists a test that failed and then passed as FLAKY.
		mapfile -t again < <(cat "$b"/meson-logs/kvmbox-[0-9].json 2> /dev/null | python3 -c '
import json, sys
for r in (json.loads(l) for l in sys.stdin if l.strip()):
    if r["result"] not in ("OK", "EXPECTEDFAIL", "SKIP"):
        print(r["name"].split(" / ", 1)[-1])')
		if [[ ${#again[@]} -gt 0 && ${#again[@]} -le 3 ]]; then
			echo "== $b: ${#again[@]} test(s) failed in the box; each runs once more in a fresh box:" \
				"${again[*]}"
			dir=$b/meson-logs/kvmbox-again
			if scripts/box_tests.py prepare "$b" "$dir" "${again[@]}"; then
				scripts/kvmbox --timeout 3600 scripts/box-suite.sh "$dir" || true
				scripts/box_tests.py collect "$dir" "$dir.json" && logs+=("$dir.json=$b in kvmbox")
			fi
		fi
	else
		echo "== $b: every test, natively ($kind)"
		"${mt[@]}" --logbase native || status=1
		logs+=("$b/meson-logs/native.json=$b natively ($kind)")
	fi
done

# --- fuzzing ------------------------------------------------------------------------------------
# The libFuzzer targets (fuzz/) in a clang build of their own (-Dfuzz=true: the libraries with
# coverage, ASan and UBSan, and the targets only): each runs a few seconds from its seed corpus
# as a test of suite "fuzz", two at a time; a crash, leak, UB report or failed check fails it
# and leaves the input in build-fuzz/fuzz/findings/. scripts/fuzz.sh runs them long.
echo "== build-fuzz: each fuzz target for a few seconds"
if CC=clang scripts/build.sh build-fuzz -Dfuzz=true; then
	meson test -C build-fuzz --print-errorlogs --num-processes 2 --suite fuzz --logbase native ||
		status=1
	logs+=("build-fuzz/meson-logs/native.json=build-fuzz (libFuzzer)")
else
	echo "== build-fuzz: the fuzz build failed"
	broken+=("build-fuzz (libFuzzer)=the clang build failed (its errors are above)")
	status=1
fi

python3 tests/summary.py "${logs[@]}" "${notrun[@]/#/--not-run=}" "${broken[@]/#/--broken=}" ||
	status=1
exit $status
