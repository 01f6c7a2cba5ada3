#!/usr/bin/env bash
# rtvmm demo on a fresh Debian 12 machine (run as root): installs what is missing, builds rtvmm,
# boots the bare-metal guest on 2 vCPUs, then Debian's stock kernel (linux-image-amd64, fetched
# into .cache/, not installed) with the project's busybox initramfs on 2 vCPUs to its init
# marker, and powers it off.
#
# Where /dev/kvm works the guests run natively. Where it does not (no device, a vendor module
# that did not bind, no permission), the demo says why and runs the guests inside
# scripts/kvmbox, a standard KVM host in QEMU TCG: it works, slowly (every guest exit costs
# 50-150 us there, the Linux boot takes 20-80 s). On a nested PVM host, where the stock kernel
# cannot reach user space (docs/linux-guest.md), rtvmm's own kernel is built from linux-source
# (several minutes, once) and booted instead.
#
# RTVMM_DEMO_KERNEL=stock|built forces the kernel; RTVMM_DEMO_SHELL=1 leaves you at the guest's
# shell instead of powering off (natively only: the box has no terminal; Ctrl-A x quits).
# scripts/demo.sh --guests runs only the guest part (what the box runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export RTVMM_CACHE=${RTVMM_CACHE:-$PWD/.cache}

say() { printf '\n== %s\n' "$*"; }

guests() {
	say "bare-metal guest, 2 vCPUs: PIO/MMIO exits, LAPIC timer, SMP bring-up"
	build/rtvmm run --kernel build/bench/guest/rtvmm-guest.elf --test-device --vcpus 2 --memory 64M \
		--cmdline "demo" < /dev/null

	local mode=poweroff cmdline start status
	[[ ${RTVMM_DEMO_SHELL:-0} == 1 ]] && mode=shell
	cmdline="console=ttyS0 earlyprintk=serial,ttyS0 $(guest/linux/cmdline.sh) rtvmm.test=$mode"
	say "Linux guest, 2 vCPUs, 256 MiB: rtvmm run --kernel $RTVMM_DEMO_KERNEL_PATH --initrd $RTVMM_DEMO_INITRD --cmdline \"$cmdline\""
	if [[ $mode == shell ]]; then
		exec build/rtvmm run --kernel "$RTVMM_DEMO_KERNEL_PATH" --initrd "$RTVMM_DEMO_INITRD" \
			--vcpus 2 --memory 256M --cmdline "$cmdline"
	fi
	start=$(date +%s.%N)
	build/rtvmm run --kernel "$RTVMM_DEMO_KERNEL_PATH" --initrd "$RTVMM_DEMO_INITRD" --vcpus 2 \
		--memory 256M --cmdline "$cmdline" < /dev/null | while IFS= read -r line; do
		printf '%s\n' "$line"
		if [[ $line == RTVMM-INIT-OK* ]]; then
			awk -v a="$start" -v b="$(date +%s.%N)" \
				'BEGIN { printf "== init marker after %.1f s (wall clock from rtvmm start)\n", b - a }'
		fi
	done
	status=${PIPESTATUS[0]}
	say "rtvmm exited with status $status"
	return "$status"
}

if [[ ${1:-} == --guests ]]; then
	guests
	exit
fi

say "installing what is missing (apt-get)"
scripts/deps.sh build test box

say "building rtvmm (meson + ninja)"
scripts/build.sh build > /dev/null
echo "built $(build/rtvmm --version): build/rtvmm"

say "the KVM host"
if host=$(build/rtvmm kvm-host 2> build/kvm-host.err); then
	echo "native: $host"
	where=native kind=${host%% *}
else
	where=box kind=kvm_amd
	echo "no usable KVM here: $(sed 's/^rtvmm: //' build/kvm-host.err)"
	echo "So the guests run inside scripts/kvmbox: QEMU in software emulation (TCG, -cpu max, which"
	echo "emulates AMD SVM with nested paging) booting Debian's stock kernel with kvm_amd, a standard"
	echo "KVM host. It proves function, not speed: a guest exit costs 50-150 us there (a few us on"
	echo "hardware), the Linux boot below takes 20-80 s. It is a test host, not a way to run VNFs."
fi

say "Linux guest: kernel and initramfs"
want=${RTVMM_DEMO_KERNEL:-}
[[ -n $want ]] || { [[ $kind == kvm_pvm ]] && want=built || want=stock; }
initrd_opts=()
case $want in
stock)
	kernel=$(scripts/fetch-kernel.sh)
	# Debian's kernel has virtio-pci, virtio-net, the ACPI button and pvpanic as modules: the initramfs carries them.
	initrd_opts=(--modules "$(scripts/fetch-kernel.sh --print-dir):virtio_pci,virtio_net,button,evdev,pvpanic_pci")
	initrd=$RTVMM_CACHE/initramfs-test.cpio ;;
built)
	scripts/deps.sh kernel
	echo "(rtvmm's own kernel, for the nested PVM host: built from linux-source once, several minutes)"
	kernel=$(scripts/build-kernel.sh)
	initrd=$RTVMM_CACHE/initramfs.cpio ;;
*) echo "RTVMM_DEMO_KERNEL=$want: expected stock or built" >&2; exit 2 ;;
esac
initrd=$(scripts/mkinitramfs.sh "${initrd_opts[@]}" "$initrd")
echo "kernel $kernel"
echo "initrd $initrd"
export RTVMM_DEMO_KERNEL_PATH=$kernel RTVMM_DEMO_INITRD=$initrd

if [[ $where == native ]]; then
	guests
	exit
fi
[[ ${RTVMM_DEMO_SHELL:-0} != 1 ]] ||
	echo "(RTVMM_DEMO_SHELL=1 needs a terminal, which the box does not give: the guest powers off)"
say "starting the box"
RTVMM_DEMO_SHELL=0 exec scripts/kvmbox --timeout 900 scripts/demo.sh --guests
