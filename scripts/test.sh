#!/usr/bin/env bash
# The whole rtvmm test suite (what .ci/run calls). Installs what is missing, builds a normal
# and an ASan/UBSan build, prepares the Linux guest (kernel + initramfs, cached), runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/deps.sh build test kernel dataplane bench
export RTVMM_CACHE=${RTVMM_CACHE:-$root/.cache}

# Real Linux guests (cached under .cache/): rtvmm's small kernel built from Debian's
# linux-source (first run: ~10 min on 2 cores), Debian's stock kernel, our busybox initramfs.
# A failure here is not fatal to the script: the Linux tests then fail and say why.
if dir=$(scripts/build-kernel.sh --print-dir); then
	export RTVMM_TEST_KERNEL_DIR=$dir
fi
if kernel=$(scripts/fetch-kernel.sh); then
	export RTVMM_TEST_STOCK_KERNEL=$kernel RTVMM_TEST_KERNEL=$kernel
fi
if initrd=$(scripts/mkinitramfs.sh "$RTVMM_CACHE/initramfs.cpio"); then
	export RTVMM_TEST_INITRD=$initrd
fi

status=0
for b in build build-asan; do
	opts=()
	[[ $b == build-asan ]] && opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
	if [[ ! -f $b/build.ninja ]]; then
		meson setup "$b" "${opts[@]}" > /dev/null
	fi
	ninja -C "$b"
	echo "== meson test ($b)"
	# The Linux boots take minutes of emulated guest kernel time here; they and the benchmark
	# suite's quick mode (which boots Linux too) run once, in the normal build. The sanitizer
	# build runs everything else (bare-metal guests included).
	skip=()
	[[ $b == build-asan ]] && skip=(--no-suite linux --no-suite bench)
	meson test -C "$b" --print-errorlogs --num-processes 2 "${skip[@]}" || status=1
done
exit $status
