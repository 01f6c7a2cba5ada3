#!/usr/bin/env bash
# Boots a real Linux kernel (rtvmm's small kernel from Debian's linux-source, or Debian's stock
# kernel) with the project's busybox initramfs and checks the guest's own report.
# Usage: linux_boot.sh RTVMM RUN_GUEST VCPUS MODE [KIND]
#   MODE: poweroff | reboot (what the guest's /init does after printing its marker)
#   KIND: built (default; $RTVMM_TEST_KERNEL_DIR/bzImage) | stock ($RTVMM_TEST_STOCK_KERNEL)
# The kernel and initramfs come from scripts/test.sh (cached under .cache/):
#   RTVMM_TEST_KERNEL_DIR, RTVMM_TEST_STOCK_KERNEL, RTVMM_TEST_INITRD.
set -u
rtvmm=$1 run_guest=$2 vcpus=$3 mode=$4 kind=${5:-built}
root=$(cd "$(dirname "$0")/../.." && pwd)

[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
if [[ $kind == stock ]]; then
	kernel=${RTVMM_TEST_STOCK_KERNEL:-}
else
	kernel=${RTVMM_TEST_KERNEL_DIR:+$RTVMM_TEST_KERNEL_DIR/bzImage}
fi
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh, which builds them" \
		"(kernel '$kernel', initrd '$initrd')"
	exit 1
fi

cmdline="console=ttyS0 earlyprintk=serial,ttyS0 $(cat "$root/guest/linux/cmdline") panic=-1 rtvmm.test=$mode"
args=("$rtvmm" "$kernel" --vcpus "$vcpus" --memory 256M --cmdline "$cmdline" --status 0 --timeout 900
	# The kernel parsed what rtvmm built: command line, e820 map, ACPI tables, CPUs.
	--output-re "Command line: $cmdline"
	--output-re "BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable"
	--output-re "BIOS-e820: \[mem 0x000000000009fc00-0x000000000009ffff\] reserved"
	--output-re "ACPI: MADT|ACPI: APIC 0x00000000000E"
	--output-re "smp: Brought up 1 node, $vcpus CPU"
	--absent "KVM_EXIT_INTERNAL_ERROR")
if [[ $kind == stock ]]; then
	# Debian's kernel boots to init here, then its first system call faults: this host's SYSCALL
	# from user mode stays in user mode (docs/linux-guest.md), and only rtvmm's kernel carries
	# the fix. So the check is the whole kernel boot up to init, then the known death of init
	# (panic=-1 resets the guest: exit status 0).
	args+=(--stdout "Run /init as init process"
		--output-re "init\[1\]: segfault at ffffffff[0-9a-f]+ ip ffffffff[0-9a-f]+ .*error 15")
else
	args+=(--absent "Kernel panic")
	args+=(--stdout "RTVMM-INIT-OK nproc=$vcpus")
	[[ $mode == reboot ]] && args+=(--output-re "reboot: Restarting system")
	[[ $mode == poweroff ]] && args+=(--output-re "reboot: Power down")
fi
exec "$run_guest" "${args[@]}" -- --initrd "$initrd"
