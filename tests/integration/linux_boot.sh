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
args=("$rtvmm" "$kernel" --vcpus "$vcpus" --memory 256M --cmdline "$cmdline" --status 0 --timeout 300
	# The kernel parsed what rtvmm built: command line, e820 map, ACPI tables, CPUs.
	--output-re "Command line: $cmdline"
	--output-re "BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable"
	--output-re "BIOS-e820: \[mem 0x000000000009fc00-0x000000000009ffff\] reserved"
	--output-re "ACPI: MADT|ACPI: APIC 0x00000000000E"
	--output-re "smp: Brought up 1 node, $vcpus CPU"
	--absent "KVM_EXIT_INTERNAL_ERROR")
if [[ $kind == stock ]]; then
	# Debian's kernel cannot reach user space here: it lacks the SYSCALL patch, and after
	# minutes of emulated init it stops at an ldmxcsr in kernel_fpu_begin() that KVM's
	# emulator rejects (docs/linux-guest.md). What it parsed from what rtvmm built is the
	# check: the command line, the e820 map, the ACPI tables, both vCPUs brought up.
	# The boot is stopped (SIGTERM) as soon as the last of those lines appears.
	tmp=$(mktemp -d)
	trap 'kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
	timeout 2000 "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus "$vcpus" --memory 256M \
		--cmdline "$cmdline" < /dev/null > "$tmp/out" 2> "$tmp/err" &
	pid=$!
	until grep -q "smp: Brought up 1 node, $vcpus CPU" "$tmp/out"; do
		kill -0 $pid 2> /dev/null || break
		sleep 2
	done
	kill -TERM $pid 2> /dev/null
	wait $pid
	fail=0
	for re in "Command line: $cmdline" \
		"BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable" \
		"BIOS-e820: \[mem 0x000000000009fc00-0x000000000009ffff\] reserved" \
		"ACPI: APIC 0x00000000000E" "smpboot: Allowing $vcpus CPUs" \
		"smp: Brought up 1 node, $vcpus CPU"; do
		if grep -qE -- "$re" "$tmp/out"; then echo "ok - $re"; else echo "not ok - no '$re'"; fail=1; fi
	done
	if grep -q "KVM_EXIT_INTERNAL_ERROR" "$tmp/err"; then
		echo "not ok - internal error before SMP bring-up"; fail=1
	fi
	[[ $fail -eq 0 ]] || { tail -40 "$tmp/out"; tail -20 "$tmp/err"; }
	exit $fail
fi
args+=(--absent "Kernel panic" --stdout "RTVMM-INIT-OK nproc=$vcpus")
[[ $mode == reboot ]] && args+=(--output-re "reboot: Restarting system")
[[ $mode == poweroff ]] && args+=(--output-re "reboot: Power down")
exec "$run_guest" "${args[@]}" -- --initrd "$initrd"
