#!/usr/bin/env bash
# rtvmm demo on a fresh Debian 12 machine (run as root): installs what is missing, builds rtvmm,
# boots the bare-metal guest on 2 vCPUs, then obtains a Linux guest (rtvmm's small kernel built
# from Debian's linux-source, or with RTVMM_DEMO_KERNEL=stock Debian's own linux-image) and
# boots it with the project's busybox initramfs to its init marker, then powers it off.
# RTVMM_DEMO_SHELL=1 leaves you at the guest's shell instead (Ctrl-A x quits).
set -euo pipefail
cd "$(dirname "$0")/.."
export RTVMM_CACHE=${RTVMM_CACHE:-$PWD/.cache}

say() { printf '\n== %s\n' "$*"; }

say "installing what is missing (apt-get)"
scripts/deps.sh build test
[[ ${RTVMM_DEMO_KERNEL:-built} == stock ]] || scripts/deps.sh kernel

say "building rtvmm (meson + ninja)"
[[ -f build/build.ninja ]] || meson setup build > /dev/null
ninja -C build > /dev/null
echo "built $(build/rtvmm --version): build/rtvmm"

say "bare-metal guest, 2 vCPUs: PIO/MMIO exits, LAPIC timer, SMP bring-up"
build/rtvmm run --kernel build/bench/guest/rtvmm-guest.elf --vcpus 2 --memory 64M \
	--cmdline "demo" < /dev/null

say "Linux guest: kernel and initramfs"
if [[ ${RTVMM_DEMO_KERNEL:-built} == stock ]]; then
	kernel=$(scripts/fetch-kernel.sh)
else
	echo "(first run builds the kernel from linux-source: several minutes on 2 cores; cached after)"
	kernel=$(scripts/build-kernel.sh)
fi
initrd=$(scripts/mkinitramfs.sh "$RTVMM_CACHE/initramfs.cpio")
echo "kernel $kernel"
echo "initrd $initrd"

mode=poweroff
[[ ${RTVMM_DEMO_SHELL:-0} == 1 ]] && mode=shell
cmdline="console=ttyS0 earlyprintk=serial,ttyS0 $(cat guest/linux/cmdline) rtvmm.test=$mode"
say "Linux guest, 2 vCPUs, 256 MiB: rtvmm run --kernel ... --initrd ... --cmdline \"$cmdline\""
start=$(date +%s.%N)
if [[ $mode == shell ]]; then
	exec build/rtvmm run --kernel "$kernel" --initrd "$initrd" --vcpus 2 --memory 256M --cmdline "$cmdline"
fi
build/rtvmm run --kernel "$kernel" --initrd "$initrd" --vcpus 2 --memory 256M --cmdline "$cmdline" \
	< /dev/null | while IFS= read -r line; do
	printf '%s\n' "$line"
	if [[ $line == RTVMM-INIT-OK* ]]; then
		awk -v a="$start" -v b="$(date +%s.%N)" \
			'BEGIN { printf "== init marker after %.1f s (wall clock from rtvmm start)\n", b - a }' 
	fi
done
status=${PIPESTATUS[0]}
say "rtvmm exited with status $status"
exit "$status"
