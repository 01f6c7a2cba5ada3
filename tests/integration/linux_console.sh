#!/usr/bin/env bash
# The guest's serial console both ways with a real Linux 8250 driver: boots rtvmm's kernel to its
# busybox shell, types a command on rtvmm's stdin once the shell is up, and expects the shell's
# answer on stdout, then `poweroff -f` and exit status 0.
# Usage: linux_console.sh RTVMM   (kernel and initramfs from scripts/test.sh, see linux_boot.sh)
set -u
rtvmm=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
kernel=${RTVMM_TEST_KERNEL:-}
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh"; exit 1
fi
tmp=$(mktemp -d)
trap 'kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
mkfifo "$tmp/in"
source "$root/tests/integration/harness.sh"
box_pin 1
cmdline="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=shell"
timeout 420 "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus 1 --memory 256M \
	--cmdline "$cmdline" < "$tmp/in" > "$tmp/out" 2> "$tmp/err" &
pid=$!
exec 3> "$tmp/in" # keep the console's stdin open
deadline=$((SECONDS + 300))
until grep -q "rtvmm-init: starting a shell" "$tmp/out"; do
	if ! kill -0 $pid 2> /dev/null || ((SECONDS > deadline)); then
		echo "FAIL: the guest never reached its shell"; cat "$tmp/out" "$tmp/err" | tail -40; exit 1
	fi
	sleep 1
done
sleep 3
printf 'echo RTVMM-ANSWER-$((6 * 7))\n' >&3
for _ in $(seq 60); do grep -q "RTVMM-ANSWER-42" "$tmp/out" && break; sleep 1; done
printf 'poweroff -f\n' >&3
wait $pid
status=$?
exec 3>&-
if grep -q "RTVMM-ANSWER-42" "$tmp/out" && [[ $status -eq 0 ]]; then
	echo "PASS: the shell read our input and answered; poweroff -f gave exit status 0"
	exit 0
fi
echo "FAIL: answer $(grep -c RTVMM-ANSWER-42 "$tmp/out") time(s), exit status $status (want 0)"
tail -30 "$tmp/out"; tail -10 "$tmp/err"
exit 1
