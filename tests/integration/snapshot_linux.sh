#!/bin/bash
# Snapshot and restore of a Linux guest whose NIC is a vhost-user port of rtvmm-dataplane.
#
#   Guest A answers pings (rtvmm.test=net, lingering). Guest B, at its busybox shell, pings A
#   through the dataplane (l2switch) without end. B is paused and snapshotted; the source is
#   killed (the dataplane sees the port go down); `rtvmm run --restore` brings B back with the
#   same command line: its virtio-net restarts the dataplane's rings at the saved bases, the
#   ping goes on with the next sequence numbers and gets its replies, and the shell session
#   goes on: a command typed into the restored console is answered.
#
#   snapshot_linux.sh RTVMM DATAPLANE   (kernel and initramfs from scripts/test.sh)
# Exit 77 only when /dev/kvm is absent or rtvmm-dataplane was not built.
set -u
rtvmm=${1:?rtvmm} dataplane=${2:?rtvmm-dataplane}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/integration/harness.sh"
[[ -x $dataplane ]] || { echo "SKIP: rtvmm-dataplane was not built (no libdpdk)"; exit 77; }
linux_shell_init snapshot-linux
log() { echo "snapshot-linux: $*"; }

switched_pinger a b

# b NAME [EXTRA...]: guest B at its shell, console in from fd 3 (fifo NAME.in), out to NAME.log.
b_args=(--kernel "$kernel" --initrd "$initrd" --memory 256M
	--net "socket=$tmp/b.sock,mac=52:54:00:00:0a:02" --cmdline "$base rtvmm.test=shell")
b() {
	local name=$1
	shift
	mkfifo "$tmp/$name.in"
	"${reaper[@]}" "${pin[@]}" "$rtvmm" run "${b_args[@]}" --api-socket "$tmp/$name.sock" "$@" \
		< "$tmp/$name.in" > "$tmp/$name.log" 2> "$tmp/$name-monitor.log" &
	pid=$!
	pids+=("$pid")
	exec 3> "$tmp/$name.in"
}

# seqs FILE: the sequence numbers of FILE's ping replies, one per line.
seqs() { grep -o 'bytes from 10.77.0.1: seq=[0-9]*' "$1" | sed 's/.*seq=//'; }

b src
src=$pid
wait_line "$tmp/src.log" "rtvmm-init: starting a shell" 300 "$src"
echo "ip link set eth0 up; ip addr add 10.77.0.2/24 dev eth0; ping -i 0.5 10.77.0.1 &" >&3
for _ in $(seq 240); do (( $(seqs "$tmp/src.log" | wc -l) >= 5 )) && break; sleep 1; done
(( $(seqs "$tmp/src.log" | wc -l) >= 5 )) || fail "guest B got no 5 ping replies from A through the dataplane"
"$rtvmm" ctl "$tmp/src.sock" pause > /dev/null || fail "pause refused"
sleep 1
S=$(seqs "$tmp/src.log" | tail -n 1)
"$rtvmm" ctl "$tmp/src.sock" snapshot "$tmp/snap" > "$tmp/ctl.txt" 2>&1 || fail "snapshot: $(cat "$tmp/ctl.txt")"
log "paused at ping seq $S; $(cat "$tmp/ctl.txt")"
kill -9 "$src"
exec 3>&-
wait_line "$tmp/dp.log" "link down (guest disconnected)" 30
log "ok: the source is gone, the dataplane saw its port go down"

b dst --restore "$tmp/snap"
dst=$pid
wait_line "$tmp/dst-monitor.log" "restored the snapshot" 120 "$dst"
grep "restored the snapshot" "$tmp/dst-monitor.log"
for _ in $(seq 120); do (( $(seqs "$tmp/dst.log" | wc -l) >= 5 )) && break; sleep 1; done
n=$(seqs "$tmp/dst.log" | wc -l)
(( n >= 5 )) || fail "the restored guest B got $n ping replies within 120 s"
first=$(seqs "$tmp/dst.log" | head -n 1)
(( first > S && first <= S + 10 )) ||
	fail "the restored guest's first reply has seq $first; the source's last was $S"
echo 'echo RTVMM-$((6*7))' >&3
wait_line "$tmp/dst.log" "RTVMM-42" 60 "$dst"
log "ok: restored: ping replies go on from seq $first (the source's last: $S), $n within the wait; the shell answers"
"$rtvmm" ctl "$tmp/dst.sock" shutdown > /dev/null
log "PASS"
