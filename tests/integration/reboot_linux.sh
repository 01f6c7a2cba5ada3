#!/usr/bin/env bash
# Reboots in place (--on-reboot restart, the default) with a Linux guest: boots the test kernel to
# its busybox shell, then RESTARTS times restarts it, alternately by the guest (`reboot -f` typed
# at its shell: the guest resets the machine itself) and by the operator (`rtvmm ctl SOCK
# reboot`), and waits for each new boot's shell; each time the same rtvmm process (pid), its API
# answering, vm.info Running with the reboot count, every vCPU brought up, the shell answering
# typed input. Then `poweroff -f`: exit status 0, the stop report counting the reboots.
# (--on-reboot exit, a reset that ends rtvmm with status 0: linux_reboot_f_exits_monitor_cleanly.)
# Usage: reboot_linux.sh RTVMM [VCPUS [RESTARTS]]  (default 2 and 2; kernel and initramfs from
# scripts/test.sh, see linux_boot.sh)
set -u
rtvmm=$1
vcpus=${2:-2}
restarts=${3:-2}
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/integration/harness.sh"
linux_shell_init reboot
sock=$tmp/api.sock
# fail MESSAGE: harness.sh's, after where each vCPU is (exits by reason twice, 2 s apart: a stuck
# guest's counts stand still).
harness_kill() {
	kill -0 "$pid" 2> /dev/null || return
	echo "---- vCPU exits by reason, twice, 2 s apart"
	"$rtvmm" ctl "$sock" exits; sleep 2; "$rtvmm" ctl "$sock" exits
}

# check_boot N: the N-th boot's shell answers with every vCPU up, and the API reports N-1
# reboots, Running, the same pid.
check_boot() {
	local n=$1 want=$(($1 - 1)) answer
	sleep 2
	printf 'echo RTVMM-BOOT-$((%d * 1000 + 7))\n' "$n" >&3
	answer="RTVMM-BOOT-$((n * 1000 + 7))"
	for _ in $(seq 30); do grep -q "$answer" "$tmp/console.log" && break; sleep 1; done
	grep -q "$answer" "$tmp/console.log" || fail "boot $n: the shell did not answer"
	(($(grep -c "smp: Brought up 1 node, $vcpus CPU" "$tmp/console.log") == n)) ||
		fail "boot $n: not $n boots with all $vcpus vCPUs up: $(grep 'smp: Brought up' "$tmp/console.log")"
	"$rtvmm" ctl "$sock" info > "$tmp/info" || fail "ctl info: $(cat "$tmp/info")"
	grep -qE '^State: +Running$' "$tmp/info" || fail "boot $n: not Running: $(cat "$tmp/info")"
	grep -qE "^Reboots: +$want\$" "$tmp/info" || fail "boot $n: want $want reboots: $(cat "$tmp/info")"
	"$rtvmm" ctl "$sock" ping > "$tmp/ping" || fail "ctl ping"
	[[ -n $vmm_pid ]] || vmm_pid=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' "$tmp/ping")
	grep -q "(pid $vmm_pid)" "$tmp/ping" || fail "boot $n: not rtvmm pid $vmm_pid: $(cat "$tmp/ping")"
	echo "ok: boot $n ($vcpus vCPUs up) reached its shell, which answered; rtvmm pid $vmm_pid, Running, $want reboot(s) ($SECONDS s)"
}

vmm_pid=
linux_shell_start $((150 * (restarts + 1) + 100)) --vcpus "$vcpus" --memory 256M --api-socket "$sock"
wait_shell 1
check_boot 1
for ((n = 2; n <= restarts + 1; n++)); do
	if ((n % 2 == 0)); then
		resets=$(grep -c "reboot: Restarting system" "$tmp/console.log")
		printf 'reboot -f\n' >&3
		wait_shell $n
		(($(grep -c "reboot: Restarting system" "$tmp/console.log") == resets + 1)) ||
			fail "boot $n: the guest did not reset itself"
	else
		"$rtvmm" ctl "$sock" reboot > "$tmp/reboot" || fail "ctl reboot: $(cat "$tmp/reboot")"
		wait_shell $n
	fi
	check_boot $n
	(($(grep -c "guest reset: the VM restarts in place" "$tmp/monitor.log") == n - 1)) ||
		fail "rtvmm did not report $((n - 1)) restart(s): $(grep 'guest reset' "$tmp/monitor.log")"
done
printf 'poweroff -f\n' >&3
wait $pid
status=$?
exec 3>&-
((status == 0)) || fail "rtvmm exited $status after poweroff -f"
grep -q "reboots in place: $restarts\$" "$tmp/monitor.log" ||
	fail "the stop report does not count $restarts reboot(s)"
echo "PASS: $vcpus vCPU(s) restarted in place $restarts time(s) (reboot -f and ctl reboot) in one" \
	"rtvmm process, then powered off (exit 0)"
