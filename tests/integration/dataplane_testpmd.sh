#!/usr/bin/env bash
# rtvmm-dataplane with DPDK's testpmd as the guests: testpmd's virtio_user PMD is a vhost-user
# frontend in a process, the same protocol a VM's virtio-net speaks through rtvmm. Real DPDK on
# both sides, no mocks; everything on 4K pages (--no-huge), so it runs on any CI machine.
#
# Usage: dataplane_testpmd.sh RTVMM_DATAPLANE|none MODE
#   xconnect   frames flow both ways through a cross-connect; the dataplane's counters and
#              testpmd's agree; SIGINT stops it with a summary and removes its sockets
#   reconnect  guests crash (kill -9) mid-traffic and come back, one side of a pair is absent
#              (frames for it are counted as TX-dropped): frames flow again, no crash
#   l2switch   two guests' MACs are learned on their ports; unknown destinations flood only to
#              ports whose guest is connected; a guest leaving flushes its MACs
#   multiqueue two poll lcores, two queue pairs per guest: every queue polled, a 1-queue port's
#              tx queue shared by both workers, frames switched both ways; a guest crash with
#              two workers polling it is survived
#   plan       a host plan drives it: EAL lcores and --no-huge from host.dataplane, one port per
#              NIC named VM.NIC, the dataplane listening for a mode-client NIC and connecting
#              to a mode-server NIC
#   privdrop   socket directories that are world-writable or that the service user cannot reach
#              are refused; a plan with host.user nobody: every thread runs as nobody with no
#              capabilities and no_new_privs; guests crash and come back (the dataplane, as
#              nobody, reconnects to a mode-server NIC); a guest with a foreign MAC is dropped
#              and counted (spoofed); a stats client of another uid is refused; the poll thread
#              runs at the plan's SCHED_FIFO priority, set before the drop and kept after it,
#              as the dataplane's log, its stats and the kernel (read here) all say
# Exit 77 (skip) only when libdpdk was absent at build time or dpdk-testpmd is not installed.
set -uo pipefail

dp=${1:?usage: dataplane_testpmd.sh RTVMM_DATAPLANE|none MODE}
mode=${2:?mode: xconnect, reconnect, l2switch, multiqueue, plan or privdrop}

if [[ $dp == none ]]; then
	echo "SKIP: rtvmm-dataplane was not built: libdpdk (Debian libdpdk-dev) was not found at" \
	     "configure time (scripts/deps.sh dataplane, then reconfigure)"
	exit 77
fi
if ! testpmd=$(command -v dpdk-testpmd); then
	echo "SKIP: dpdk-testpmd not found (Debian package dpdk-dev: scripts/deps.sh dataplane)"
	exit 77
fi
command -v python3 > /dev/null || { echo "FAIL: python3 is needed to read the JSON stats"; exit 1; }

source "$(dirname "$0")/harness.sh"
harness_init dp
dp_pid= tp_pid=
mac_a=02:00:00:00:00:0a mac_b=02:00:00:00:00:0b
stats_sock=$tmp/stats.sock

# Two cpus if we have them: the dataplane polls on the second, testpmd forwards on the first
# (its main lcore, which only reads commands, shares the dataplane's cpu).
read -r c0 c1 < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')
dp_cpu=$c1
tp_lcores="0@$c1,1@$c0"

harness_kill() {
	[[ -n $tp_pid ]] && kill -9 "$tp_pid" 2> /dev/null
	[[ -n $dp_pid ]] && kill -9 "$dp_pid" 2> /dev/null
}

fail() {
	echo "FAIL: $*"
	echo "---- dataplane log (last 60 lines)"
	tail -n 60 "$tmp/dp.log" 2> /dev/null
	for f in "$tmp"/tp*.log; do
		[[ -f $f ]] || continue
		echo "---- $(basename "$f") (last 30 lines)"
		tail -n 30 "$f"
	done
	exit 1
}

dp_alive() {
	kill -0 "$dp_pid" 2> /dev/null || fail "rtvmm-dataplane died (status $(wait "$dp_pid"; echo $?))"
}

# jv FILE EXPR: a python expression over the JSON document d in FILE.
jv() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# stats NAME: the dataplane's JSON document into $tmp/NAME.json.
stats() {
	dp_alive
	"$dp" stats --socket "$stats_sock" --json > "$tmp/$1.json" || fail "rtvmm-dataplane stats failed"
}

# wait_for WHAT EXPR: polls the stats until EXPR (python over d) holds, for 10 s at most.
wait_for() {
	dp_alive
	python3 -c '
import json, subprocess, sys, time
end = time.time() + 10
while time.time() < end:
    r = subprocess.run([sys.argv[1], "stats", "--socket", sys.argv[2], "--json"], capture_output=True)
    if r.returncode == 0:
        d = json.loads(r.stdout)
        if eval(sys.argv[3]):
            sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
' "$dp" "$stats_sock" "$2" || fail "$1: not within 10 s"
}

links() {   # links up|down PORT...
	local want=$1 ports
	shift
	ports=$(IFS=,; echo "$*")
	wait_for "ports $ports link $want" "all(d['ports'][i]['link'] == '$want' for i in [$ports])"
}

# dp_start ARGS...: starts the dataplane and waits until it is ready.
dp_start() {
	"${reaper[@]}" "$dp" run --file-prefix "$pfx-dp" --stats-socket "$stats_sock" "$@" > "$tmp/dp.log" 2>&1 &
	dp_pid=$!
	for _ in $(seq 300); do
		grep -q "rtvmm-dataplane: ready" "$tmp/dp.log" && return 0
		kill -0 "$dp_pid" 2> /dev/null || fail "rtvmm-dataplane exited during start"
		sleep 0.1
	done
	fail "rtvmm-dataplane not ready after 30 s"
}

# dp_stop: SIGINT; it must exit 0 with a summary and remove its sockets.
dp_stop() {
	dp_alive
	kill -INT "$dp_pid"
	local rc=0
	wait "$dp_pid" || rc=$?
	dp_pid=
	[[ $rc == 0 ]] || fail "rtvmm-dataplane exited with status $rc after SIGINT"
	grep -q "Summary at exit" "$tmp/dp.log" || fail "no summary at exit"
	grep -q "NIC statistics for port 0" "$tmp/dp.log" || fail "summary without port statistics"
	for s in "$tmp"/*.sock; do
		[[ -e $s && $s != "$tmp/server.sock" ]] && fail "$s still exists after exit"
	done
	return 0
}

# tp_start NAME VDEV... -- TESTPMD_ARGS...: interactive testpmd reading commands from fd 3.
tp_start() {
	local name=$1
	shift
	local vdevs=()
	while [[ $1 != -- ]]; do vdevs+=("--vdev=$1"); shift; done
	shift
	rm -f "$tmp/$name.in"
	mkfifo "$tmp/$name.in"
	"${reaper[@]}" "$testpmd" --no-huge --no-pci -m 256 --lcores "$tp_lcores" --file-prefix "$pfx-$name" \
		"${vdevs[@]}" -- -i --total-num-mbufs=4096 "$@" < "$tmp/$name.in" > "$tmp/$name.log" 2>&1 &
	tp_pid=$!
	exec 3> "$tmp/$name.in"
}

tp_cmd() {
	echo "$*" >&3
}

# tp_quit: stop forwarding (testpmd prints its forward statistics), quit, wait.
tp_quit() {
	tp_cmd stop
	tp_cmd quit
	exec 3>&-
	local rc=0
	wait "$tp_pid" || rc=$?
	tp_pid=
	[[ $rc == 0 ]] || fail "testpmd exited with status $rc"
}

# tp_crash: kill -9, as a guest that dies without closing anything.
tp_crash() {
	kill -9 "$tp_pid"
	exec 3>&-
	wait "$tp_pid" 2> /dev/null
	tp_pid=
}

# tp_fwd LOG: testpmd's forward statistics (from `stop`): "RX0 TX0 RX1 TX1".
tp_fwd() {
	python3 -c '
import re, sys
text = open(sys.argv[1]).read()
out = []
for port in (0, 1):
    m = re.search(r"Forward statistics for port %d\s+-+\s+RX-packets: (\d+).*?TX-packets: (\d+)" % port, text, re.S)
    out += [m.group(1), m.group(2)] if m else ["0", "0"]
print(" ".join(out))
' "$1"
}

case $mode in
xconnect)
	dp_start --lcores "$dp_cpu" --no-huge --fwd xconnect \
		--port "vhost:$tmp/a.sock" --port "vhost:$tmp/b.sock"
	grep -q "running without hugepages (--no-huge)" "$tmp/dp.log" || fail "no --no-huge message"
	# One testpmd, two guests: io forwarding between its ports, 16 bursts of 32 in flight.
	tp_start tp1 "net_virtio_user0,path=$tmp/a.sock,queues=1,mac=$mac_a" \
		"net_virtio_user1,path=$tmp/b.sock,queues=1,mac=$mac_b" -- --forward-mode=io
	links up 0 1
	tp_cmd start tx_first 16
	sleep 4
	stats mid
	tp_quit
	links down 0 1
	stats after
	read -r rx0 tx0 rx1 tx1 < <(tp_fwd "$tmp/tp1.log")
	checks "$tmp/mid.json" << EOF
port 0 forwards both ways | d['ports'][0]['RX-packets'] > 10000 and d['ports'][0]['TX-packets'] > 10000
port 1 forwards both ways | d['ports'][1]['RX-packets'] > 10000 and d['ports'][1]['TX-packets'] > 10000
rates while traffic flows | all(x['Rx-pps'] > 0 and x['Tx-pps'] > 0 for x in d['ports'])
links up while connected | all(x['link'] == 'up' for x in d['ports'])
per-queue counters | all(x['rx_queues'][0]['RX-packets'] > 0 and x['tx_queues'][0]['TX-packets'] > 0 for x in d['ports'])
EOF
	checks "$tmp/after.json" << EOF
links down once testpmd quit, one disconnect each | all(x['link'] == 'down' and x['link_downs'] == 1 for x in d['ports'])
no errors, nothing dropped on receive | all(x['RX-errors'] == 0 and x['RX-dropped'] == 0 for x in d['ports'])
port 0 sends (or drops) all port 1 received | d['ports'][0]['TX-packets'] + d['ports'][0]['TX-dropped'] == d['ports'][1]['RX-packets']
port 1 sends (or drops) all port 0 received | d['ports'][1]['TX-packets'] + d['ports'][1]['TX-dropped'] == d['ports'][0]['RX-packets']
testpmd port 0 received what the dataplane sent it (less a ring) | $rx0 > 10000 and 0 <= d['ports'][0]['TX-packets'] - $rx0 <= 1024
testpmd port 1 received what the dataplane sent it (less a ring) | $rx1 > 10000 and 0 <= d['ports'][1]['TX-packets'] - $rx1 <= 1024
the dataplane received what testpmd port 0 sent (less a ring) | 0 <= $tx0 - d['ports'][0]['RX-packets'] <= 1024
the dataplane received what testpmd port 1 sent (less a ring) | 0 <= $tx1 - d['ports'][1]['RX-packets'] <= 1024
EOF
	# The text view has testpmd's vocabulary.
	"$dp" stats --socket "$tmp/stats.sock" > "$tmp/stats.txt" || fail "stats (text) failed"
	for w in "NIC statistics for port 1" RX-packets: RX-missed: RX-dropped: RX-errors: TX-packets: \
		TX-dropped: Rx-pps: Tx-pps: "CPU cycles/packet"; do
		grep -q -- "$w" "$tmp/stats.txt" || fail "stats text lacks '$w'"
	done
	echo "xconnect: testpmd io <-> rtvmm-dataplane, 64 B frames, 1 poll lcore:" \
	     "$(jv "$tmp/mid.json" "'%.2f Mpps forwarded (both directions), %.0f cycles/packet' % (d['totals']['Tx-pps'] / 1e6, d['lcores'][0]['cycles_per_packet'])")" \
	     "(informational: 2 cpus shared by testpmd and the dataplane)"
	dp_stop
	;;

reconnect)
	dp_start --lcores "$dp_cpu" --no-huge --fwd xconnect \
		--port "vhost:$tmp/a.sock" --port "vhost:$tmp/b.sock"
	# 1. Both guests, traffic, then both die at once in the middle of it.
	tp_start tp1 "net_virtio_user0,path=$tmp/a.sock,queues=1" \
		"net_virtio_user1,path=$tmp/b.sock,queues=1" -- --forward-mode=io
	links up 0 1
	tp_cmd start tx_first 16
	wait_for "traffic before the crash" "all(x['TX-packets'] > 1000 for x in d['ports'])"
	tp_crash
	links down 0 1
	# 2. Only guest A comes back and sends: B is absent, so what goes to B is dropped, counted.
	stats s2
	tp_start tp2 "net_virtio_user0,path=$tmp/a.sock,queues=1" -- --forward-mode=txonly
	links up 0
	tp_cmd start
	sleep 2
	tp_quit
	links down 0
	stats s3
	checks "$tmp/s3.json" "$tmp/s2.json" << EOF
port 0 receives from the returning guest | d['ports'][0]['RX-packets'] - p['ports'][0]['RX-packets'] > 1000
frames for the absent guest are counted as TX-dropped | d['ports'][1]['TX-dropped'] - p['ports'][1]['TX-dropped'] > 1000
nothing is sent to the absent guest | d['ports'][1]['TX-packets'] == p['ports'][1]['TX-packets']
EOF
	# 3. Connect/crash storm: guests appear and die while frames are in flight.
	for i in 1 2 3; do
		tp_start "tpc$i" "net_virtio_user0,path=$tmp/a.sock,queues=1" \
			"net_virtio_user1,path=$tmp/b.sock,queues=1" -- --forward-mode=io
		links up 0 1
		tp_cmd start tx_first 8
		sleep 0.5
		tp_crash
		links down 0 1
	done
	# 4. Both back: frames flow both ways again.
	stats s4
	tp_start tp4 "net_virtio_user0,path=$tmp/a.sock,queues=1" \
		"net_virtio_user1,path=$tmp/b.sock,queues=1" -- --forward-mode=io
	links up 0 1
	tp_cmd start tx_first 16
	sleep 2
	tp_quit
	links down 0 1
	stats s5
	read -r rx0 tx0 rx1 tx1 < <(tp_fwd "$tmp/tp4.log")
	checks "$tmp/s5.json" "$tmp/s4.json" << EOF
port 0 forwards again after the guests came back | d['ports'][0]['TX-packets'] - p['ports'][0]['TX-packets'] > 1000
port 1 forwards again after the guests came back | d['ports'][1]['TX-packets'] - p['ports'][1]['TX-packets'] > 1000
testpmd receives on both ports again | $rx0 > 1000 and $rx1 > 1000
every connect and disconnect counted (port 0 also had the txonly guest) | [(x['link_ups'], x['link_downs']) for x in d['ports']] == [(6, 6), (5, 5)]
EOF
	dp_stop
	;;

l2switch)
	dp_start --lcores "$dp_cpu" --no-huge --fwd l2switch \
		--port "vhost:$tmp/a.sock" --port "vhost:$tmp/b.sock" --port "vhost:$tmp/c.sock"
	# testpmd's mac forwarding rewrites the source to the sending port's MAC and the destination
	# to its peer: guest A talks to B's MAC and B to A's, as two hosts on a LAN would.
	tp_start tp1 "net_virtio_user0,path=$tmp/a.sock,queues=1,mac=$mac_a" \
		"net_virtio_user1,path=$tmp/b.sock,queues=1,mac=$mac_b" -- \
		--forward-mode=mac --eth-peer=0,$mac_b --eth-peer=1,$mac_a
	links up 0 1
	tp_cmd start tx_first 4
	sleep 3
	stats mid
	tp_quit
	links down 0 1
	stats after
	read -r rx0 tx0 rx1 tx1 < <(tp_fwd "$tmp/tp1.log")
	checks "$tmp/mid.json" << EOF
the two guests' MACs are learned on their ports | {(e['mac'], e['port']) for e in d['l2']['table']} == {('$mac_a', 0), ('$mac_b', 1)}
port 0 switches both ways | d['ports'][0]['RX-packets'] > 10000 and d['ports'][0]['TX-packets'] > 10000
port 1 switches both ways | d['ports'][1]['RX-packets'] > 10000 and d['ports'][1]['TX-packets'] > 10000
testpmd receives on both ports | $rx0 > 10000 and $rx1 > 10000
only frames to a not yet learned MAC flood (4 bursts of 32 at most) | 0 < d['l2']['flooded'] <= 4 * 32
nothing floods to the port without a guest | d['ports'][2]['TX-packets'] == 0 and d['ports'][2]['TX-dropped'] == 0
EOF
	checks "$tmp/after.json" << EOF
the guests' MACs are flushed when they leave | d['l2']['entries'] == 0 and d['l2']['flushed'] == 2
EOF
	dp_stop
	;;

multiqueue)
	lcores=$c0
	[[ $c1 != "$c0" ]] && lcores=$c0,$c1
	dp_start --lcores "$lcores" --no-huge --fwd l2switch --port "vhost:$tmp/a.sock,queues=2" \
		--port "vhost:$tmp/b.sock,queues=2" --port "vhost:$tmp/c.sock"
	tp_start tp1 "net_virtio_user0,path=$tmp/a.sock,queues=2,mac=$mac_a" \
		"net_virtio_user1,path=$tmp/b.sock,queues=2,mac=$mac_b" -- --rxq=2 --txq=2 \
		--forward-mode=mac --eth-peer=0,$mac_b --eth-peer=1,$mac_a
	links up 0 1
	tp_cmd start tx_first 4
	sleep 3
	stats mid
	checks "$tmp/mid.json" << EOF
every rx queue has a poll lcore | all(q['lcore'] >= 0 for x in d['ports'] for q in x['rx_queues'])
queues of a port are spread over the workers | len(d['lcores']) < 2 or all(len({q['lcore'] for q in x['rx_queues']}) == 2 for x in d['ports'][:2])
each 2-queue port gives each worker its own tx queue | len(d['lcores']) < 2 or all(not q['shared'] and len(q['lcores']) == 1 for x in d['ports'][:2] for q in x['tx_queues'])
the 1-queue port's tx queue is shared by both workers | len(d['lcores']) < 2 or d['ports'][2]['tx_queues'][0]['shared']
port 0 switches both ways | d['ports'][0]['RX-packets'] > 1000 and d['ports'][0]['TX-packets'] > 1000
port 1 switches both ways | d['ports'][1]['RX-packets'] > 1000 and d['ports'][1]['TX-packets'] > 1000
the two guests' MACs are learned on their ports | {(e['mac'], e['port']) for e in d['l2']['table']} == {('$mac_a', 0), ('$mac_b', 1)}
EOF
	grep -q "workers send to 1 tx queue(s): they share them" "$tmp/dp.log" || [[ $lcores == "$c0" ]] ||
		fail "no start-up note about the shared tx queue"
	tp_crash
	links down 0 1
	stats after
	checks "$tmp/after.json" << EOF
the crash is seen on both ports, MACs flushed | all(x['link_downs'] == 1 for x in d['ports'][:2]) and d['l2']['entries'] == 0
EOF
	dp_stop
	;;

plan)
	# A host plan: two VMs with one NIC each; a's NIC connects to the dataplane (mode client,
	# the default), b's NIC listens (mode server) and the dataplane connects to it.
	cat > "$tmp/host.yaml" << EOF
host:
  housekeeping_cpus: "$c0"
  dataplane:
    cores: "$dp_cpu"
    no_huge: true
    eal_args: "--log-level=lib.eal:notice"
vms:
  - name: a
    kernel: /dev/null
    memory: 64M
    vcpus: 1
    nics:
      - name: net0
        socket: a.sock
        mac: "$mac_a"
  - name: b
    kernel: /dev/null
    memory: 64M
    vcpus: 1
    nics:
      - name: net0
        socket: server.sock
        mac: "$mac_b"
        mode: server
EOF
	"$dp" run "$tmp/host.yaml" --dry-run > "$tmp/dry.txt" 2>&1 || fail "--dry-run: $(cat "$tmp/dry.txt")"
	main=$c0
	[[ $c0 == "$dp_cpu" ]] && main=$dp_cpu
	for w in "--main-lcore $main " "--no-huge" "--log-level=lib.eal:notice" "forwarding: l2switch" \
		"port 0: a.net0 vhost net_vhost0,iface=$tmp/a.sock,queues=1" \
		"port 1: b.net0 vhost net_vhost1,iface=$tmp/server.sock,queues=1,client=1"; do
		grep -q -- "$w" "$tmp/dry.txt" || fail "--dry-run lacks '$w': $(cat "$tmp/dry.txt")"
	done
	dp_start "$tmp/host.yaml"
	grep -q "running without hugepages" "$tmp/dp.log" || fail "no --no-huge message"
	stats start
	checks "$tmp/start.json" << EOF
ports named VM.NIC | [x['name'] for x in d['ports']] == ['a.net0', 'b.net0']
the dataplane serves mode-client NICs and connects to mode-server NICs | [x['mode'] for x in d['ports']] == ['server', 'client']
l2switch on the plan's dataplane core | d['fwd'] == 'l2switch' and [l['lcore'] for l in d['lcores']] == [$dp_cpu]
the plan's MACs are shown | [x['guest_mac'] for x in d['ports']] == ['$mac_a', '$mac_b']
EOF
	# b's testpmd listens on server.sock (virtio_user server=1) and waits for the dataplane.
	tp_start tp1 "net_virtio_user0,path=$tmp/a.sock,queues=1,mac=$mac_a" \
		"net_virtio_user1,path=$tmp/server.sock,queues=1,mac=$mac_b,server=1" -- \
		--forward-mode=mac --eth-peer=0,$mac_b --eth-peer=1,$mac_a
	links up 0 1
	tp_cmd start tx_first 4
	sleep 3
	stats mid
	tp_quit
	read -r rx0 tx0 rx1 tx1 < <(tp_fwd "$tmp/tp1.log")
	checks "$tmp/mid.json" << EOF
plan port 0 switches both ways | d['ports'][0]['RX-packets'] > 10000 and d['ports'][0]['TX-packets'] > 10000
plan port 1 switches both ways | d['ports'][1]['RX-packets'] > 10000 and d['ports'][1]['TX-packets'] > 10000
testpmd receives on both ports | $rx0 > 10000 and $rx1 > 10000
the guests' MACs are learned | {(e['mac'], e['port']) for e in d['l2']['table']} == {('$mac_a', 0), ('$mac_b', 1)}
EOF
	dp_stop
	;;

privdrop)
	# The dataplane drops to host.user (nobody) once set up, and keeps working: every thread
	# changed, a guest it serves comes back, the guest it connects to (mode server) is
	# reconnected to by the unprivileged process; a guest with another MAC than its NIC's is
	# dropped and counted; the stats socket answers only root, itself and the service user.
	[[ $(id -u) == 0 ]] || { echo "SKIP: dropping privileges needs root"; exit 77; }
	nobody_uid=$(id -u nobody 2> /dev/null) || { echo "SKIP: no user 'nobody'"; exit 77; }
	nobody_gid=$(id -g nobody)
	# Socket directories: a world-writable one is refused, and so is one the service user
	# cannot reach (it could not reconnect or remove its sockets after the drop).
	mkdir -m 0777 "$tmp/open" && chmod 0777 "$tmp/open"
	"$dp" run --lcores "$dp_cpu" --no-huge --file-prefix "$pfx-dir" --stats-socket "$tmp/s1.sock" \
		--port "vhost:$tmp/open/a.sock" > "$tmp/open.log" 2>&1 && fail "a world-writable socket directory was accepted"
	grep -q "port0, vhost $tmp/open/a.sock.*directory $tmp/open is world-writable" "$tmp/open.log" ||
		fail "no clear refusal of $tmp/open: $(grep rtvmm-dataplane: "$tmp/open.log")"
	"$dp" run --lcores "$dp_cpu" --no-huge --file-prefix "$pfx-dir" --stats-socket "$tmp/s2.sock" \
		--user nobody --port "vhost:$tmp/closed/a.sock" > "$tmp/closed.log" 2>&1 &&
		fail "a socket directory nobody cannot reach was accepted"
	grep -q "the service user (uid $nobody_uid, gid $nobody_gid) cannot reach $tmp/closed: $tmp is mode 0700" \
		"$tmp/closed.log" || fail "no clear refusal of $tmp/closed: $(grep rtvmm-dataplane: "$tmp/closed.log")"
	chmod 711 "$tmp"          # the service user must reach its run directory below
	run=$tmp/run
	stats_sock=$run/dataplane.sock
	mac_spoof=02:00:00:00:00:0c
	# The poll thread at fifo 10 owns its cpu: testpmd keeps both its lcores on the other.
	[[ $c0 != "$c1" ]] || { echo "SKIP: a fifo poll thread needs a cpu of its own (one cpu here)"; exit 77; }
	tp_lcores="0@$c0,1@$c0"
	"$dp" run --lcores "$dp_cpu" --no-huge --poll-sched fifo:0 > "$tmp/prio.log" 2>&1 &&
		fail "--poll-sched fifo:0 was accepted"
	grep -q "poll-sched fifo:0: priority '0' is not 1..99" "$tmp/prio.log" ||
		fail "no clear refusal of fifo:0: $(cat "$tmp/prio.log")"
	cat > "$tmp/host.yaml" << EOF
host:
  housekeeping_cpus: "$c0"
  user: nobody
  run_dir: $run
  dataplane:
    cores: "$dp_cpu"
    no_huge: true
    policy: fifo
    priority: 10
vms:
  - name: a
    kernel: /dev/null
    memory: 64M
    vcpus: 1
    nics:
      - name: net0
        socket: $run/a.sock
        mac: "$mac_a"
  - name: b
    kernel: /dev/null
    memory: 64M
    vcpus: 1
    nics:
      - name: net0
        socket: $run/server.sock
        mac: "$mac_b"
        mode: server
EOF
	dp_start "$tmp/host.yaml"
	grep -q "running as nobody (uid $nobody_uid, gid $nobody_gid): every thread checked" \
		"$tmp/dp.log" || fail "no line saying it dropped to nobody"
	python3 - "$dp_pid" "$nobody_uid" "$nobody_gid" << 'EOF' || fail "a thread kept privileges"
import glob, sys
pid, uid, gid = sys.argv[1:4]
names, bad = [], []
for path in glob.glob("/proc/%s/task/*/status" % pid):
    f = dict(line.split(":", 1) for line in open(path) if ":" in line)
    name = f["Name"].strip()
    names.append(name)
    if (f["Uid"].split() != [uid] * 4 or f["Gid"].split() != [gid] * 4 or int(f["CapEff"], 16)
            or int(f["CapPrm"], 16) or f["NoNewPrivs"].strip() != "1"):
        bad.append("%s: Uid %s Gid %s CapEff %s CapPrm %s NoNewPrivs %s" % (name, f["Uid"].split(),
                   f["Gid"].split(), f["CapEff"].strip(), f["CapPrm"].strip(), f["NoNewPrivs"].strip()))
print("threads checked:", " ".join(sorted(names)))
sys.exit(1 if bad or not {"vhost-events", "eal-intr-thread", "dp-stats"} <= set(names) else 0)
EOF
	grep -q "poll lcore $dp_cpu: thread dp-poll$dp_cpu (tid [0-9]*) on cpu $dp_cpu, fifo 10 (read back from the kernel)" \
		"$tmp/dp.log" || fail "no read-back line for the poll thread at fifo 10"
	python3 - "$dp_pid" "$dp_cpu" << 'EOF' || fail "the poll thread is not alone at fifo 10 on its cpu"
import glob, os, sys
pid, cpu = sys.argv[1], int(sys.argv[2])
tids = [int(p.split("/")[-2]) for p in glob.glob("/proc/%s/task/*/comm" % pid)
        if open(p).read().strip() == "dp-poll%d" % cpu]
assert len(tids) == 1, "threads named dp-poll%d: %s" % (cpu, tids)
t = tids[0]
pol, prio, cpus = os.sched_getscheduler(t), os.sched_getparam(t).sched_priority, os.sched_getaffinity(t)
print("kernel: dp-poll%d tid %d policy %d priority %d cpus %s" % (cpu, t, pol, prio, sorted(cpus)))
others = [p for p in glob.glob("/proc/%s/task/*" % pid) if int(p.split("/")[-1]) != t and
          os.sched_getscheduler(int(p.split("/")[-1])) != os.SCHED_OTHER]
sys.exit(0 if pol == os.SCHED_FIFO and prio == 10 and cpus == {cpu} and not others else 1)
EOF
	# A socket the dataplane connects to must be the service user's (connect() needs write
	# permission on it): what rtvmm does for its mode-server NICs, done here for testpmd's.
	serve_as_nobody() {
		local i
		for i in $(seq 100); do [[ -S $1 ]] && break; sleep 0.1; done
		chown nobody: "$1" || fail "chown $1"
	}
	[[ $(stat -c '%U %a' "$run") == "nobody 700" ]] ||
		fail "run directory $run is $(stat -c '%U %a' "$run"), not nobody 700"
	# round 1: both guests with their NICs' MACs
	tp_start tp1 "net_virtio_user0,path=$run/a.sock,queues=1,mac=$mac_a" \
		"net_virtio_user1,path=$run/server.sock,queues=1,mac=$mac_b,server=1" -- \
		--forward-mode=mac --eth-peer=0,$mac_b --eth-peer=1,$mac_a
	serve_as_nobody "$run/server.sock"
	links up 0 1
	tp_cmd start tx_first 4
	sleep 3
	stats r1
	tp_crash
	links down 0 1
	stats down
	rm -f "$run/server.sock"     # the crashed guest's listening socket
	# round 2: the unprivileged dataplane reconnects to b's new server socket; a's guest comes
	# back with another MAC than its NIC's
	tp_start tp2 "net_virtio_user0,path=$run/a.sock,queues=1,mac=$mac_spoof" \
		"net_virtio_user1,path=$run/server.sock,queues=1,mac=$mac_b,server=1" -- \
		--forward-mode=mac --eth-peer=0,$mac_b --eth-peer=1,$mac_a
	serve_as_nobody "$run/server.sock"
	links up 0 1
	tp_cmd start tx_first 4
	sleep 3
	stats r2
	tp_quit
	checks "$tmp/r1.json" << EOF
the stats read the poll thread back at fifo 10 on its cpu | d['lcores'][0]['sched']['policy'] == 'fifo' and d['lcores'][0]['sched']['priority'] == 10 and d['lcores'][0]['sched']['cpus'] == '$dp_cpu'
port 0 switches both ways as nobody | d['ports'][0]['RX-packets'] > 1000 and d['ports'][0]['TX-packets'] > 1000
port 1 switches both ways as nobody | d['ports'][1]['RX-packets'] > 1000 and d['ports'][1]['TX-packets'] > 1000
nothing spoofed yet | d['ports'][0]['spoofed'] == 0 and d['ports'][1]['spoofed'] == 0
EOF
	checks "$tmp/r2.json" "$tmp/down.json" << EOF
the client-mode port reconnected after the drop | d['ports'][1]['link_ups'] == 2 and d['ports'][1]['link'] == 'up'
b's frames reach a again | d['ports'][1]['RX-packets'] - p['ports'][1]['RX-packets'] > 1000 and d['ports'][0]['TX-packets'] - p['ports'][0]['TX-packets'] > 1000
a's frames with a foreign source MAC (its 4 bursts; testpmd sends b's frames out of b) are dropped and counted | d['ports'][0]['spoofed'] >= 4 * 32 and d['ports'][0]['spoofed'] == d['ports'][0]['RX-packets'] - p['ports'][0]['RX-packets']
none of them reaches b | d['ports'][1]['TX-packets'] == p['ports'][1]['TX-packets']
the foreign MAC is never learned | '$mac_spoof' not in [e['mac'] for e in d['l2']['table']]
EOF
	"$dp" stats --socket "$stats_sock" > "$tmp/text.txt" || fail "stats (text) failed"
	grep -q "Spoofed: [1-9]" "$tmp/text.txt" || fail "the text stats lack the spoofed count"
	# another uid that can reach and open the socket gets nothing (SO_PEERCRED)
	chmod 711 "$run"
	chmod 777 "$stats_sock"
	setpriv --reuid daemon --regid daemon --clear-groups "$dp" stats --socket "$stats_sock" \
		> "$tmp/daemon.txt" 2>&1 && fail "uid daemon read the stats: $(cat "$tmp/daemon.txt")"
	chmod 700 "$run"
	stats peer
	checks "$tmp/peer.json" << EOF
the daemon client was refused for its uid | d['stats_clients']['peers_refused'] == 1
EOF
	dp_stop
	for s in a.sock dataplane.sock; do
		[[ -e $run/$s ]] && fail "$run/$s still exists after exit (the service user could not remove it)"
	done
	;;

*)
	echo "unknown mode '$mode'"
	exit 2
	;;
esac
echo "PASS: dataplane $mode"
exit 0
