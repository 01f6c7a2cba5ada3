#!/bin/bash
# Live migration of a Linux guest whose NIC is a vhost-user port of rtvmm-dataplane.
#
#   Guest A answers pings (rtvmm.test=net, lingering). Guest B, at its busybox shell, pings A
#   through the dataplane (l2switch, MAC learning) every 0.2 s. A destination rtvmm for B waits
#   with --incoming, its NIC on a third port of the same dataplane. `rtvmm ctl migrate` moves
#   B while it pings: pre-copy with KVM's dirty log and the dataplane's vhost-user dirty log
#   (VHOST_F_LOG_ALL, SET_LOG_BASE), then stop and copy. The source exits 0; on the destination
#   the ping goes on with the next sequence numbers, the replies find B on its new port (the
#   switch learns it from B's frames), no more pings are lost than the downtime explains, and
#   the shell session goes on.
#
#   migrate_linux.sh RTVMM DATAPLANE   (kernel and initramfs from scripts/test.sh)
# Exit 77 only when /dev/kvm is absent or rtvmm-dataplane was not built.
set -u
rtvmm=${1:?rtvmm} dataplane=${2:?rtvmm-dataplane}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/integration/harness.sh"
[[ -x $dataplane ]] || { echo "SKIP: rtvmm-dataplane was not built (no libdpdk)"; exit 77; }
linux_shell_init migrate-linux
log() { echo "migrate-linux: $*"; }

switched_pinger a b c

b() { # NAME SOCKET [EXTRA...]
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

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
b dst "$tmp/c.sock" --incoming "tcp:127.0.0.1:$port"
dst=$pid
exec 4>&3   # the destination's console input
wait_line "$tmp/dst-monitor.log" "waiting for a live migration" 120 "$dst"
b src "$tmp/b.sock"
src=$pid
wait_line "$tmp/src.log" "rtvmm-init: starting a shell" 300 "$src"
echo "ip link set eth0 up; ip addr add 10.77.0.2/24 dev eth0; ping -i 0.2 10.77.0.1 &" >&3
for _ in $(seq 240); do (( $(seqs "$tmp/src.log" | wc -l) >= 10 )) && break; sleep 1; done
(( $(seqs "$tmp/src.log" | wc -l) >= 10 )) || fail "guest B got no 10 ping replies from A through the dataplane"
"$rtvmm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$port" --json --timeout 300000 > "$tmp/mig.json" \
	2> "$tmp/ctl.txt" || fail "migrate: $(cat "$tmp/ctl.txt")"
for _ in $(seq 60); do kill -0 "$src" 2> /dev/null || break; sleep 1; done
kill -0 "$src" 2> /dev/null && fail "the source still runs 60 s after the migration: $(cat "$tmp/mig.json")"
wait "$src"
st=$?
(( st == 0 )) || fail "the source exited $st after the migration"
grep -q "migrated" "$tmp/src-monitor.log" || fail "the source's log does not say it migrated"
S=$(seqs "$tmp/src.log" | tail -n 1)
exec 3>&4 4>&-
log "migrated at ping seq $S: $(jq -c '{rounds, pages_sent, last_dirty_pages, downtime_ms: (.downtime_ns / 1e6), total_ms: (.total_ns / 1e6)}' "$tmp/mig.json")"
for _ in $(seq 120); do (( $(seqs "$tmp/dst.log" | wc -l) >= 10 )) && break; sleep 1; done
n=$(seqs "$tmp/dst.log" | wc -l)
(( n >= 10 )) || fail "the migrated guest B got $n ping replies within 120 s"
first=$(seqs "$tmp/dst.log" | head -n 1)
down_ms=$(jq '.downtime_ns / 1e6 | floor' "$tmp/mig.json")
lost=$((first - S - 1))
# Pings sent while B was stopped are not lost (B did not run); one in flight at the stop may be.
(( lost >= 0 && lost <= 2 )) ||
	fail "after the switch-over the first reply has seq $first, the source's last $S: $lost lost (downtime $down_ms ms)"
seqs "$tmp/dst.log" | awk 'NR > 1 && $1 != prev + 1 { print "seq " prev " then " $1; bad = 1 } { prev = $1 } END { exit bad }' \
	> "$tmp/gaps.txt" || fail "pings lost on the destination: $(head -n 3 "$tmp/gaps.txt")"
echo 'echo RTVMM-$((6*7))' >&3
wait_line "$tmp/dst.log" "RTVMM-42" 60 "$dst"
log "ok: on the destination the replies go on from seq $first ($lost lost at the switch-over, downtime $down_ms ms), none lost after; the shell answers"
"$rtvmm" ctl "$tmp/dst.sock" shutdown > /dev/null
log "PASS"
