#!/usr/bin/env bash
# A reboot in place (--on-reboot restart, the default) with a Linux guest: boots the test kernel to
# its busybox shell, types `reboot -f` (the guest resets the machine itself), waits for the shell
# of the second boot; each time the same rtvmm process (pid), its API answering, vm.info Running with the reboot
# count, the shell answering typed input. Then `poweroff -f`: exit status 0. (A second restart,
# by `rtvmm ctl SOCK reboot`, once stalled the third boot after "Run /init" in the box: open,
# so this test does one; vm.reboot's restart is api_openapi.py's, with the bare-metal guest.)
# (--on-reboot exit, a reset that ends rtvmm with status 0: linux_reboot_f_exits_monitor_cleanly.)
# Usage: reboot_linux.sh RTVMM   (kernel and initramfs from scripts/test.sh, see linux_boot.sh)
set -u
rtvmm=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
kernel=${RTVMM_TEST_KERNEL:-}
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh"; exit 1
fi
source "$root/tests/integration/harness.sh" # box_pin; fail is this script's own
tmp=$(mktemp -d)
trap 'kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
sock=$tmp/api.sock
fail() {
	echo "FAIL: $*"
	tail -30 "$tmp/out"; tail -20 "$tmp/err"
	exit 1
}
shells() { grep -c "rtvmm-init: starting a shell" "$tmp/out"; }

# wait_shell N: until the guest's shell started for the N-th time (120 s each).
wait_shell() {
	local deadline=$((SECONDS + 120))
	until (($(shells) >= $1)); do
		kill -0 $pid 2> /dev/null || fail "rtvmm exited before shell $1"
		((SECONDS < deadline)) || fail "no shell $1 within 120 s"
		sleep 1
	done
}

# check_boot N: the N-th boot's shell answers, and the API reports N-1 reboots, Running, same pid.
check_boot() {
	local n=$1 want=$(($1 - 1)) answer
	sleep 2
	printf 'echo RTVMM-BOOT-$((%d * 1000 + 7))\n' "$n" >&3
	answer="RTVMM-BOOT-$((n * 1000 + 7))"
	for _ in $(seq 30); do grep -q "$answer" "$tmp/out" && break; sleep 1; done
	grep -q "$answer" "$tmp/out" || fail "boot $n: the shell did not answer"
	(($(grep -c "smp: Brought up 1 node, 2 CPUs" "$tmp/out") == n)) ||
		fail "boot $n: not $n boots with both vCPUs up: $(grep 'smp: Brought up' "$tmp/out")"
	"$rtvmm" ctl "$sock" info > "$tmp/info" || fail "ctl info: $(cat "$tmp/info")"
	grep -qE '^State: +Running$' "$tmp/info" || fail "boot $n: not Running: $(cat "$tmp/info")"
	grep -qE "^Reboots: +$want\$" "$tmp/info" || fail "boot $n: want $want reboots: $(cat "$tmp/info")"
	"$rtvmm" ctl "$sock" ping > "$tmp/ping" || fail "ctl ping"
	[[ -n $vmm_pid ]] || vmm_pid=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' "$tmp/ping")
	grep -q "(pid $vmm_pid)" "$tmp/ping" || fail "boot $n: not rtvmm pid $vmm_pid: $(cat "$tmp/ping")"
	echo "ok: boot $n (2 vCPUs up) reached its shell, which answered; rtvmm pid $vmm_pid, Running, $want reboot(s) ($SECONDS s)"
}

vmm_pid=
mkfifo "$tmp/in"
box_pin 1
cmdline="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=shell"
timeout 400 "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus 2 --memory 256M \
	--cmdline "$cmdline" --api-socket "$sock" < "$tmp/in" > "$tmp/out" 2> "$tmp/err" &
pid=$!
exec 3> "$tmp/in" # keep the console's stdin open
wait_shell 1
check_boot 1
printf 'reboot -f\n' >&3
wait_shell 2
grep -q "reboot: Restarting system" "$tmp/out" || fail "the guest did not reset itself"
check_boot 2
(($(grep -c "guest reset: the VM restarts in place" "$tmp/err") == 1)) ||
	fail "rtvmm did not report one restart: $(grep 'guest reset' "$tmp/err")"
printf 'poweroff -f\n' >&3
wait $pid
status=$?
exec 3>&-
((status == 0)) || fail "rtvmm exited $status after poweroff -f"
grep -q "reboots in place: 1" "$tmp/err" || fail "the stop report does not count 1 reboot"
echo "PASS: rebooted in place (reboot -f) in one rtvmm process, then powered off (exit 0)"
