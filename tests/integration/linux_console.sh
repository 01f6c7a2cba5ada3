#!/usr/bin/env bash
# The guest's serial console both ways with a real Linux 8250 driver: boots rtvmm's kernel to its
# busybox shell, types a command on rtvmm's stdin once the shell is up, and expects the shell's
# answer on stdout, then `poweroff -f` and exit status 0.
# Usage: linux_console.sh RTVMM   (kernel and initramfs from scripts/test.sh, see linux_boot.sh)
set -u
rtvmm=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/integration/harness.sh"
linux_shell_init console
linux_shell_start 420 --vcpus 1 --memory 256M
wait_shell 1
sleep 3
printf 'echo RTVMM-ANSWER-$((6 * 7))\n' >&3
for _ in $(seq 60); do grep -q "RTVMM-ANSWER-42" "$tmp/console.log" && break; sleep 1; done
printf 'poweroff -f\n' >&3
wait $pid
status=$?
exec 3>&-
grep -q "RTVMM-ANSWER-42" "$tmp/console.log" && [[ $status -eq 0 ]] ||
	fail "answer $(grep -c RTVMM-ANSWER-42 "$tmp/console.log") time(s), exit status $status (want 0)"
echo "PASS: the shell read our input and answered; poweroff -f gave exit status 0"
