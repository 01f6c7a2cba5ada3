#!/usr/bin/env bash
# A Linux guest's vhost-user-blk disk whose backend dies mid-I/O and comes back. The backend is
# DPDK's vhost_blk example (a RAM disk on rte_vhost, which tracks inflight I/O: built from
# Debian's dpdk-doc by tests/integration/meson.build). The guest writes 4 KiB to /dev/vda with
# dd oflag=direct in a loop, printing each result; once writes succeed the backend is killed
# (SIGKILL): the guest's writes fail (dd fails, the kernel logs "I/O error": counted in its
# dmesg) and the guest keeps running; the backend starts again: writes succeed again (a new RAM
# disk: success, not content); the guest powers off, rtvmm exits 0 and its stop report counts
# the requests it failed.
# Usage: linux_blk_backend_death.sh RTVMM DPDK-VHOST-BLK   (kernel and initramfs from scripts/test.sh)
set -u
rtvmm=$1
backend=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
[[ -x $backend ]] ||
	{ echo "SKIP: DPDK's vhost_blk example was not built (libdpdk-dev, dpdk-doc: scripts/deps.sh dataplane test)"; exit 77; }
kernel=${RTVMM_TEST_KERNEL:-}
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh"; exit 1
fi
backend=$(realpath "$backend")
tmp=$(mktemp -d)
chmod 700 "$tmp"       # rtvmm refuses a socket in a directory others may write
bpid='' pid=''
cleanup() {
	[[ -n $bpid ]] && kill -9 "$bpid" 2> /dev/null
	[[ -n $pid ]] && kill "$pid" 2> /dev/null
	wait 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# Its socket is vhost.socket in its working directory; its worker busy-polls cpu 0: niced.
start_backend() {
	rm -f "$tmp/vhost.socket"
	(cd "$tmp" && exec nice -n 19 "$backend" --no-huge -m 256 --no-pci --no-shconf -l 0 \
		--log-level lib.vhost.config:warning) >> "$tmp/backend.log" 2>&1 &
	bpid=$!
	for _ in $(seq 300); do [[ -S $tmp/vhost.socket ]] && return 0; sleep 0.1; done
	echo "FAIL: DPDK's vhost_blk did not create its socket"; cat "$tmp/backend.log"; exit 1
}
# wait_for PATTERN SECONDS WHAT: until the guest's console shows PATTERN.
wait_for() {
	local end=$((SECONDS + $2))
	until grep -q "$1" "$tmp/out"; do
		if ! kill -0 "$pid" 2> /dev/null || ((SECONDS > end)); then
			echo "FAIL: $3"
			echo "---- guest console (last 30 lines)"; tail -30 "$tmp/out"
			echo "---- rtvmm stderr (last 20 lines)"; tail -20 "$tmp/err"
			exit 1
		fi
		sleep 0.5
	done
}

start_backend
mkfifo "$tmp/in"
source "$root/tests/integration/harness.sh"
box_pin 1
cmdline="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=shell"
timeout 600 "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus 1 --memory 256M \
	--disk "socket=$tmp/vhost.socket" --cmdline "$cmdline" < "$tmp/in" > "$tmp/out" 2> "$tmp/err" &
pid=$!
exec 3> "$tmp/in"      # the console's stdin stays open
wait_for "rtvmm-init: starting a shell" 300 "the guest never reached its shell"
sleep 2
# The guest's loop: a write every 0.3 s until 3 succeed after a failure (at most 400).
printf '%s\n' 'dmesg -n 1; i=0 f=0 a=0; while [ $i -lt 400 ] && [ $a -lt 3 ]; do i=$((i + 1)); if dd if=/dev/zero of=/dev/vda bs=4096 count=1 seek=$((i % 64)) oflag=direct 2> /dev/null; then echo "RTVMM-DD $i ok"; [ $f -gt 0 ] && a=$((a + 1)); else echo "RTVMM-DD $i failed"; f=$((f + 1)); fi; sleep 0.3; done; echo "RTVMM-DD-DONE writes=$i failed=$f ok_after=$a ioerr_lines=$(dmesg | grep -c "I/O error")"; poweroff -f' >&3
wait_for "RTVMM-DD [0-9]* ok" 60 "no write succeeded before the kill"
kill -9 "$bpid"
wait "$bpid" 2> /dev/null
bpid=
echo "backend killed (SIGKILL) after $(grep -c 'RTVMM-DD [0-9]* ok' "$tmp/out") successful write(s)"
wait_for "RTVMM-DD [0-9]* failed" 60 "no write failed with the backend dead"
sleep 2               # a few more failures: the guest keeps running meanwhile
start_backend
echo "backend started again"
wait_for "^RTVMM-DD-DONE writes=[0-9]" 120 "the guest's writes did not succeed again"
wait "$pid"
status=$?
pid=
exec 3>&-

fail=0
ok() { echo "ok - $1"; }
bad() { echo "not ok - $1"; fail=1; }
done_line=$(grep -m1 "^RTVMM-DD-DONE" "$tmp/out" | tr -d '\r')
failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<< "$done_line")
after=$(sed -n 's/.* ok_after=\([0-9]*\).*/\1/p' <<< "$done_line")
ioerr=$(sed -n 's/.* ioerr_lines=\([0-9]*\).*/\1/p' <<< "$done_line")
# The last failure comes before the last successes: the guest saw errors, then I/O again.
last_fail=$(grep -n "RTVMM-DD [0-9]* failed" "$tmp/out" | tail -1 | cut -d: -f1)
last_ok=$(grep -n "RTVMM-DD [0-9]* ok" "$tmp/out" | tail -1 | cut -d: -f1)
report=$(grep -m1 "disk0: .*requests failed by the monitor" "$tmp/err")
by_monitor=$(sed -n 's/.*, \([0-9]*\) requests failed by the monitor.*/\1/p' <<< "$report")

[[ $status -eq 0 ]] && ok "the guest powered off (rtvmm exit status 0)" || bad "rtvmm exit status $status (want 0)"
[[ ${failed:-0} -ge 1 ]] && ok "with the backend dead the guest's dd failed ($failed writes)" ||
	bad "no write failed: '$done_line'"
[[ ${ioerr:-0} -ge 1 ]] && ok "the guest's kernel logged I/O errors ($ioerr lines)" ||
	bad "no 'I/O error' in the guest's kernel log: '$done_line'"
[[ ${after:-0} -ge 3 && ${last_ok:-0} -gt ${last_fail:-0} ]] &&
	ok "with the backend back the writes succeed again ($after in a row)" ||
	bad "writes did not succeed after the restart: '$done_line'"
[[ ${by_monitor:-0} -ge 1 ]] && ok "rtvmm's stop report counts $by_monitor requests it failed itself" ||
	bad "stop report: '$report'"
grep -q "disk0: the monitor fails the disk's requests until a backend returns" "$tmp/err" &&
	ok "rtvmm said it fails the disk's I/O while the backend is away" ||
	bad "no stand-in message from rtvmm"

if [[ $fail -ne 0 ]]; then
	echo "---- guest console (last 40 lines)"; tail -40 "$tmp/out"
	echo "---- rtvmm stderr (last 30 lines)"; tail -30 "$tmp/err"
	echo "---- backend"; tail -10 "$tmp/backend.log"
else
	grep -E "disk0" "$tmp/err" | sed 's/^/    /'
fi
exit $fail
