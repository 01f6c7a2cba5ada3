#!/usr/bin/env bash
# The whole rtvmm test suite (what .ci/run calls). Installs what is missing, builds a normal
# and an ASan/UBSan build, prepares the Linux guest (kernel + initramfs, cached), runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/deps.sh build test
export RTVMM_CACHE=${RTVMM_CACHE:-$root/.cache}

# Real Linux guest: Debian's kernel and our busybox initramfs (cached under .cache/).
if kernel=$(scripts/fetch-kernel.sh) && initrd=$(scripts/mkinitramfs.sh "$RTVMM_CACHE/initramfs.cpio.gz"); then
	export RTVMM_TEST_KERNEL=$kernel RTVMM_TEST_INITRD=$initrd
else
	echo "test.sh: could not prepare the Debian guest kernel; Linux boot tests will fail" >&2
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
	meson test -C "$b" --print-errorlogs --num-processes 2 || status=1
done
exit $status
