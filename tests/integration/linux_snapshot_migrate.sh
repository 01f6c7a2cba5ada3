#!/bin/bash
# Snapshot, restore and live migration of a Linux guest whose NIC is a vhost-user port of
# rtvmm-dataplane, one guest boot for both (each Linux boot costs a minute in the KVM box).
#
#   Guest A answers pings (rtvmm.test=net, lingering). Guest B, at its busybox shell, pings A
#   through the dataplane (l2switch, MAC learning) every 0.2 s.
#   1. B is paused and snapshotted; the source is killed (the dataplane sees its port go
#      down); `rtvmm run --restore` brings B back on the same port with the same command line:
#      its virtio-net restarts the dataplane's rings at the saved bases, the ping goes on with
#      the next sequence numbers and gets its replies, and the shell answers a command.
#   2. The restored B migrates (`rtvmm ctl migrate`) to a destination waiting with --incoming,
#      its NIC on a third port of the same dataplane: pre-copy with KVM's dirty log and the
#      dataplane's vhost-user dirty log (VHOST_F_LOG_ALL, SET_LOG_BASE), then stop and copy.
#      The source exits 0; on the destination the ping goes on with the next sequence
#      numbers, the replies find B on its new port (the switch learns it from B's frames), at
#      most two pings in flight at the switch-over are lost and none after, and the shell
#      answers.
#
#   linux_snapshot_migrate.sh RTVMM DATAPLANE   (kernel and initramfs from scripts/test.sh)
# Exit 77 only when /dev/kvm is absent or rtvmm-dataplane was not built.
set -u
rtvmm=${1:?rtvmm} dataplane=${2:?rtvmm-dataplane}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/integration/harness.sh"
[[ -x $dataplane ]] || { echo "SKIP: rtvmm-dataplane was not built (no libdpdk)"; exit 77; }
linux_shell_init linux-snapshot-migrate
log() { echo "linux-snapshot-migrate: $*"; }

switched_pinger a b c

# b NAME SOCKET [EXTRA...]: guest B at its shell with its NIC on SOCKET, console in from a fifo
# (NAME.in, open on fd 3), out to NAME.log, the monitor's log NAME-monitor.log; $pid.
b() {
	local name=$1 sock=$2
	shift 2
	mkfifo "$tmp/$name.in"
	"${reaper[@]}" "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --memory 256M \
		--net "socket=$sock,mac=52:54:00:00:0a:02" --cmdline "$base rtvmm.test=shell" \
		--api-socket "$tmp/$name.sock" "$@" \
		< "$tmp/$name.in" > "$tmp/$name.log" 2> "$tmp/$name-monitor.log" &
	pid=$!
	pids+=("$pid")
	exec 3> "$tmp/$name.in"
}

# seqs FILE: the sequence numbers of FILE's ping replies, one per line.
seqs() { grep -o 'bytes from 10.77.0.1: seq=[0-9]*' "$1" | sed 's/.*seq=//'; }

# replies NAME N: waits (120 s) until NAME's console has N ping replies.
replies() {
	for _ in $(seq 120); do (( $(seqs "$tmp/$1.log" | wc -l) >= $2 )) && return; sleep 1; done
	fail "$1: $(seqs "$tmp/$1.log" | wc -l) ping replies within 120 s, expected $2"
}

# goes_on NAME LAST: NAME's replies begin at most 2 after seq LAST ($first: where) and then
# miss none; the shell answers.
goes_on() {
	replies "$1" 10
	first=$(seqs "$tmp/$1.log" | head -n 1)
	(( first > $2 && first <= $2 + 3 )) ||
		fail "$1: the first reply has seq $first, the one before the switch was $2"
	seqs "$tmp/$1.log" | awk 'NR > 1 && $1 != prev + 1 { print "seq " prev " then " $1; bad = 1 }
		{ prev = $1 } END { exit bad }' > "$tmp/gaps.txt" ||
		fail "$1: pings lost: $(head -n 3 "$tmp/gaps.txt")"
	echo 'echo RTVMM-$((6*7))' >&3
	wait_line "$tmp/$1.log" "RTVMM-42" 60
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
b dst "$tmp/c.sock" --incoming "tcp:127.0.0.1:$port"
dst=$pid
exec 4>&3   # the migration destination's console input, for later
wait_line "$tmp/dst-monitor.log" "waiting for a live migration" 120 "$dst"

# 1. Snapshot, kill, restore.
b src "$tmp/b.sock"
src=$pid
wait_line "$tmp/src.log" "rtvmm-init: starting a shell" 300 "$src"
echo "ip link set eth0 up; ip addr add 10.77.0.2/24 dev eth0; ping -i 0.2 10.77.0.1 &" >&3
replies src 10
"$rtvmm" ctl "$tmp/src.sock" pause > /dev/null || fail "pause refused"
sleep 1
S=$(seqs "$tmp/src.log" | tail -n 1)
"$rtvmm" ctl "$tmp/src.sock" snapshot "$tmp/snap" > "$tmp/ctl.txt" 2>&1 || fail "snapshot: $(cat "$tmp/ctl.txt")"
log "paused at ping seq $S; $(cat "$tmp/ctl.txt")"
kill -9 "$src"
wait_line "$tmp/dp.log" "link down (guest disconnected)" 30
b restored "$tmp/b.sock" --restore "$tmp/snap"
restored=$pid
wait_line "$tmp/restored-monitor.log" "restored the snapshot" 120 "$restored"
grep "restored the snapshot" "$tmp/restored-monitor.log"
goes_on restored "$S"
log "ok: restored: the replies go on from seq $first (before the snapshot: $S), none lost after; the shell answers"

# 2. Live migration of the restored guest to the destination on port c.
"$rtvmm" ctl "$tmp/restored.sock" migrate "tcp:127.0.0.1:$port" --json --timeout 300000 \
	> "$tmp/mig.json" 2> "$tmp/ctl.txt" || fail "migrate: $(cat "$tmp/ctl.txt")"
for _ in $(seq 60); do kill -0 "$restored" 2> /dev/null || break; sleep 1; done
kill -0 "$restored" 2> /dev/null && fail "the source still runs 60 s after the migration"
wait "$restored"
st=$?
(( st == 0 )) || fail "the source exited $st after the migration"
grep -q "migrated" "$tmp/restored-monitor.log" || fail "the source's log does not say it migrated"
M=$(seqs "$tmp/restored.log" | tail -n 1)
exec 3>&4 4>&-
log "migrated at ping seq $M: $(jq -c '{rounds, pages_sent, last_dirty_pages, downtime_ms: (.downtime_ns / 1e6), total_ms: (.total_ns / 1e6)}' "$tmp/mig.json")"
goes_on dst "$M"
log "ok: migrated: the replies go on from seq $first (the source's last: $M), none lost after; the shell answers"
"$rtvmm" ctl "$tmp/dst.sock" shutdown > /dev/null
log "PASS"
