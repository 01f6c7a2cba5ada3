#!/usr/bin/env bash
# Boots a real Linux kernel with the project's busybox initramfs and checks the guest's own report.
# Usage: linux_boot.sh RTVMM RUN_GUEST VCPUS MODE [KIND]
#   MODE: poweroff | reboot (what the guest's /init does after printing its marker; reboot runs
#         rtvmm with --on-reboot exit, so that the guest's reset ends the monitor with status 0;
#         the restart in place is tests/integration/reboot_linux.sh's)
#   KIND: test (default): $RTVMM_TEST_KERNEL, the kernel scripts/test.sh picked (Debian's stock
#         kernel; rtvmm's own build only on a nested PVM host), payload decompressed by rtvmm;
#         stock-direct: Debian's stock bzImage ($RTVMM_TEST_STOCK_KERNEL) entered at its own
#         64-bit entry, so that its decompressor runs in the guest (as QEMU and firmware boot it).
# The kernels and initramfs come from scripts/test.sh (cached under .cache/):
#   RTVMM_TEST_KERNEL, RTVMM_TEST_STOCK_KERNEL, RTVMM_TEST_INITRD.
set -u
rtvmm=$1 run_guest=$2 vcpus=$3 mode=$4 kind=${5:-test}
root=$(cd "$(dirname "$0")/../.." && pwd)

[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
if [[ $kind == stock-direct ]]; then
	kernel=${RTVMM_TEST_STOCK_KERNEL:-}
else
	kernel=${RTVMM_TEST_KERNEL:-}
fi
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh, which fetches them" \
		"(kernel '$kernel', initrd '$initrd')"
	exit 1
fi
host=$("$rtvmm" kvm-host) || { echo "FAIL: rtvmm kvm-host: no usable KVM"; exit 1; }
echo "KVM host: $host"

cmdline="console=ttyS0 earlyprintk=serial,ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=$mode"
args=("$rtvmm" "$kernel" --vcpus "$vcpus" --memory 256M --cmdline "$cmdline" --status 0 --timeout 300
	# The kernel parsed what rtvmm built: command line, e820 map, ACPI tables, CPUs.
	--output-re "Command line: $cmdline"
	--output-re "BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable"
	--output-re "BIOS-e820: \[mem 0x000000000009fc00-0x000000000009ffff\] reserved"
	--output-re "ACPI: MADT|ACPI: APIC 0x00000000000E"
	--output-re "smp: Brought up 1 node, $vcpus CPU"
	--absent "KVM_EXIT_INTERNAL_ERROR")
if [[ $kind == stock-direct && $host == kvm_pvm* ]]; then
	# The nested PVM host: the in-guest decompressor runs for > 590 s there (guest kernel mode
	# is emulated), and Debian's kernel cannot reach user space at all: it lacks the SYSCALL
	# patch, and after minutes of emulated init it stops at an ldmxcsr in kernel_fpu_begin()
	# that KVM's emulator rejects (docs/linux-guest.md). So here, and only here, the check is
	# what it parsed from what rtvmm built (payload decompressed by rtvmm): the command line,
	# the e820 map, the ACPI tables, both vCPUs brought up. The boot is stopped (SIGTERM) as
	# soon as the last of those lines appears.
	echo "PVM host: checking Debian's kernel up to SMP bring-up (it cannot reach init here)"
	tmp=$(mktemp -d)
	trap 'kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
	timeout 2000 "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus "$vcpus" --memory 256M \
		--shutdown-grace 0 --cmdline "$cmdline" < /dev/null > "$tmp/out" 2> "$tmp/err" &
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
# Debian builds without X86_VERBOSE_BOOTUP: the decompressor prints nothing, so the proof that
# it ran is rtvmm saying it left the payload to the guest and the kernel reaching init anyway.
[[ $kind == stock-direct ]] && args+=(--output-re "payload decompressed by the guest")
extra=(--initrd "$initrd")
[[ $mode == reboot ]] && extra+=(--on-reboot exit)
[[ $kind == stock-direct ]] && extra+=(--boot direct)
exec "$run_guest" "${args[@]}" -- "${extra[@]}"
