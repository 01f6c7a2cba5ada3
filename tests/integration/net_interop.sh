#!/usr/bin/env bash
# virtio-net interop: the bare-metal guest's virtio-pci net driver (bench/guest/virtio_net.c, data
# path at CPL3) in rtvmm and in QEMU, against real vhost-user backends: rtvmm-dataplane and DPDK's
# testpmd. No mocks. The guest pings (net=ping: probes until the peer answers, then COUNT frames
# one at a time, each must come back with the MACs swapped, payload intact) or echoes (net=echo).
#
# Usage: net_interop.sh RTVMM GUEST_ELF RTVMM_DATAPLANE|none MODE
#   two-guests  rtvmm-dataplane (l2switch) between two rtvmm guests: echo on port 0, ping on
#               port 1; every ping answered, the guests' and the dataplane's counts agree
#   testpmd     testpmd's net_vhost (macswap) as the backend of one rtvmm guest: a CPL3 run, then
#               a CPL0 run with small rings, full-size frames and a notify per batch; testpmd
#               forwarded exactly what the guests sent
#   testpmd-restart  testpmd is killed and started again while the guest pings: rtvmm reconnects,
#               pings flow again, the ones queued during the outage are answered late
#   qemu        QEMU (PVH entry, virtio-net-pci, vhost-user client) pings through rtvmm-dataplane
#               to an rtvmm guest that echoes; counts agree as in two-guests
#   qemu-pvh    QEMU boots the same ELF through its PVH note: e820 and command line from
#               hvm_start_info, console on COM1, exit status through isa-debug-exit
#   ovs         Open vSwitch with DPDK (a private ovsdb-server and ovs-vswitchd in the scratch
#               directory, a netdev bridge, NORMAL L2 forwarding, two dpdkvhostuser ports, its PMD
#               thread on the dataplane's cpu) between two rtvmm guests as in two-guests; OVS's
#               own counts (per-port flows, its PMD, its MAC table) agree with the guests'.
#               Reserves the 2M hugepages OVS needs (it always runs DPDK --in-memory) and gives
#               back what it added.
# Exit 77 (skip) only when a peer is missing: /dev/kvm, rtvmm-dataplane (libdpdk absent at
# configure time), dpdk-testpmd, qemu-system-x86_64 or ovs-vswitchd-dpdk.
set -uo pipefail

rtvmm=${1:?usage: net_interop.sh RTVMM GUEST_ELF RTVMM_DATAPLANE|none MODE}
guest=${2:?guest ELF}
dp=${3:?rtvmm-dataplane or none}
mode=${4:?mode: two-guests, testpmd, testpmd-restart, qemu, qemu-pvh or ovs}

skip() { echo "SKIP: $*"; exit 77; }
[[ -e /dev/kvm ]] || skip "/dev/kvm does not exist: no KVM, cannot boot a guest"

case $mode in
two-guests | qemu)
	[[ $dp != none ]] || skip "rtvmm-dataplane was not built: libdpdk (Debian libdpdk-dev) was not" \
		"found at configure time (scripts/deps.sh dataplane, then reconfigure)" ;;
esac
case $mode in
testpmd*)
	testpmd=$(command -v dpdk-testpmd) || skip "dpdk-testpmd not found (Debian package dpdk-dev)" ;;
qemu | qemu-pvh)
	qemu=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not found (Debian package qemu-system-x86)" ;;
ovs)
	vswitchd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk   # Debian's DPDK build, by path
	[[ -x $vswitchd ]] || skip "$vswitchd not found (Debian package openvswitch-switch-dpdk)" ;;
esac
command -v python3 > /dev/null || { echo "FAIL: python3 is needed to read the JSON stats"; exit 1; }

source "$(dirname "$0")/harness.sh"
harness_init net
mac_echo=52:54:00:00:00:01 mac_ping=52:54:00:00:00:02 mac_qemu=52:54:00:00:00:03
t_start=$(date +%s.%N)

elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[$(elapsed) s] $*"; }

# expect FILE TEXT...: every TEXT (fixed string) is in FILE.
expect() {
	local f=$1 m
	shift
	for m in "$@"; do
		grep -qF -- "$m" "$f" || fail "$(basename "$f") lacks: $m"
	done
}

# field FILE REGEX: the first capture group of the first line matching the extended REGEX.
field() {
	sed -nE "s/.*$2.*/\\1/p" "$1" | head -n 1
}

# Two cpus if we have them: the dataplane polls on the second.
read -r c0 c1 < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')

dp_start() {   # dp_start PORT_SOCKET...
	local args=() s
	for s in "$@"; do args+=(--port "vhost:$s"); done
	"${reaper[@]}" "$dp" run --no-huge --lcores "$c1" --file-prefix "$pfx-dp" --fwd l2switch \
		--stats-socket "$tmp/stats.sock" --eal '--log-level=lib.vhost.config:warning' "${args[@]}" \
		> "$tmp/dataplane.log" 2>&1 &
	dp_pid=$!
	pids+=("$dp_pid")
	wait_line "$tmp/dataplane.log" "rtvmm-dataplane: ready" 30 "$dp_pid"
	log "rtvmm-dataplane ready (l2switch, poll lcore $c1)"
}

dp_stats() {   # dp_stats NAME: the JSON document into $tmp/NAME.json
	kill -0 "$dp_pid" 2> /dev/null || fail "rtvmm-dataplane died"
	"$dp" stats --socket "$tmp/stats.sock" --json > "$tmp/$1.json" || fail "rtvmm-dataplane stats failed"
}

dp_stop() {
	kill -INT "$dp_pid"
	local rc=0
	wait "$dp_pid" || rc=$?
	[[ $rc == 0 ]] || fail "rtvmm-dataplane exited with status $rc after SIGINT"
}

# tp_start NAME: testpmd, net_vhost server at $tmp/t.sock, macswap, until its stdin (fd 3) gives a line.
tp_start() {   # sets tp_start_s: how long testpmd took to come up
	local t0=$SECONDS
	rm -f "$tmp/t.sock" "$tmp/$1.in"   # a killed testpmd leaves its socket behind
	mkfifo "$tmp/$1.in"
	# Line-buffered, so that its log shows where it is; no 9 s wait for a link nobody has yet.
	"${reaper[@]}" stdbuf -oL "$testpmd" -l 0-1 --no-huge --no-pci -m 512 --file-prefix "$pfx-tp" \
		--vdev "net_vhost0,iface=$tmp/t.sock" -- --forward-mode=macswap --auto-start \
		--disable-link-check --total-num-mbufs=4096 --stats-period 0 \
		< "$tmp/$1.in" > "$tmp/$1.log" 2>&1 &
	tp_pid=$!
	pids+=("$tp_pid")
	exec 3> "$tmp/$1.in"
	wait_line "$tmp/$1.log" "Press enter to exit" 120 "$tp_pid"
	tp_start_s=$((SECONDS - t0))
	log "$1 ready (net_vhost server, macswap) after $tp_start_s s"
}

# tp_quit NAME: a line on its stdin: testpmd prints its forward statistics and exits. Sets rx, tx.
tp_quit() {
	echo >&3
	exec 3>&-
	wait "$tp_pid" || fail "testpmd exited with status $?"
	read -r rx tx < <(python3 -c '
import re, sys
m = re.search(r"Forward statistics for port 0\s+-+\s+RX-packets: (\d+).*?TX-packets: (\d+)", open(sys.argv[1]).read(), re.S)
print(*(m.groups() if m else ("?", "?")))' "$tmp/$1.log")
}

# ovs_start PORT...: a private Open vSwitch in $tmp ($ovs; its logs show on failure):
# ovsdb-server, ovs-vswitchd with DPDK (main lcore $c0, PMD thread on $c1), bridge br0 in the
# userspace datapath with one dpdkvhostuser port per name (OVS the vhost-user server, its socket
# $ovs/NAME), the flows $ovs_flows. Any step that fails fails the test: OVS that does not come
# up is not a skip.
ovs_start() {
	local need free p i f
	ovs=$tmp
	export OVS_RUNDIR=$ovs OVS_DBDIR=$ovs OVS_LOGDIR=$ovs OVS_SYSCONFDIR=$ovs
	vsctl=(ovs-vsctl --db="unix:$ovs/db.sock" --timeout=180)
	# OVS always gives DPDK --in-memory, which refuses --no-huge: 2M hugepages for its socket
	# memory, reserved here when too few are free (memfd-backed, no hugetlbfs mount needed).
	need=$((ovs_mem_mb / 2))
	free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
	if ((free < need)); then
		hp_added=$((need - free))
		echo $(($(cat /proc/sys/vm/nr_hugepages) + hp_added)) > /proc/sys/vm/nr_hugepages ||
			fail "cannot reserve $hp_added more 2M hugepages (/proc/sys/vm/nr_hugepages: not root?)"
		free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
		((free >= need)) || fail "OVS needs $need free 2M hugepages, $free free after reserving $hp_added more"
		log "reserved $hp_added 2M hugepages for OVS ($need needed)"
	fi
	ovsdb-tool create "$ovs/conf.db" /usr/share/openvswitch/vswitch.ovsschema || fail "ovsdb-tool create failed"
	"${reaper[@]}" ovsdb-server "$ovs/conf.db" --remote="punix:$ovs/db.sock" --pidfile="$ovs/ovsdb.pid" \
		--unixctl="$ovs/ovsdb.ctl" --log-file="$ovs/ovsdb.log" > "$ovs/ovsdb.out" 2>&1 &
	ovsdb_pid=$!
	pids+=("$ovsdb_pid")
	for ((i = 0; i < 300; i++)); do
		[[ -S $ovs/db.sock ]] && break
		kill -0 "$ovsdb_pid" 2> /dev/null || break
		sleep 0.1
	done
	"${vsctl[@]}" --no-wait init || fail "ovs-vsctl init failed (ovsdb-server: $(tail -n 3 "$ovs/ovsdb.out"))"
	"${vsctl[@]}" --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:dpdk-extra=--no-pci \
		other_config:dpdk-socket-mem="$ovs_mem_mb" other_config:dpdk-lcore-mask="$(printf 0x%x $((1 << c0)))" \
		other_config:pmd-cpu-mask="$(printf 0x%x $((1 << c1)))" || fail "ovs-vsctl set other_config failed"
	"${reaper[@]}" "$vswitchd" "unix:$ovs/db.sock" --pidfile="$ovs/vswitchd.pid" --unixctl="$ovs/vswitchd.ctl" \
		--log-file="$ovs/vswitchd.log" -vconsole:off > "$ovs/vswitchd.out" 2>&1 &
	vswitchd_pid=$!
	pids+=("$vswitchd_pid")
	wait_line "$ovs/vswitchd.log" "DPDK Enabled - initialized" 180 "$vswitchd_pid"
	"${vsctl[@]}" add-br br0 -- set bridge br0 datapath_type=netdev || fail "ovs-vsctl add-br br0 failed"
	ovs-ofctl show br0 > /dev/null ||
		fail "OVS did not create bridge br0 (its userspace datapath needs a tap: $(ls /dev/net/tun 2>&1))"
	for p in "$@"; do
		"${vsctl[@]}" add-port br0 "$p" -- set Interface "$p" type=dpdkvhostuser || fail "ovs-vsctl add-port $p failed"
		[[ -S $ovs/$p && $("${vsctl[@]}" get Interface "$p" error) == '[]' ]] ||
			fail "OVS port $p: socket $ovs/$p missing or error $("${vsctl[@]}" get Interface "$p" error)"
	done
	ovs-ofctl del-flows br0 || fail "ovs-ofctl del-flows failed"
	for f in "${ovs_flows[@]}"; do
		ovs-ofctl add-flow br0 "$f" || fail "ovs-ofctl add-flow br0 '$f' failed"
	done
	log "OVS-DPDK $("$vswitchd" --version | sed -n '1s/.* //p') up: br0 (netdev), ports $*, flows ${ovs_flows[*]}"
	ovs-appctl -t "$ovs/vswitchd.ctl" dpif-netdev/pmd-rxq-show > "$ovs/rxq.txt" || fail "pmd-rxq-show failed"
	# Every port's queue is polled by the one PMD thread, on the cpu asked for.
	for p in "$@"; do
		grep -qE "^ +port: $p +queue-id: +0 " "$ovs/rxq.txt" || fail "no PMD polls $p: $(cat "$ovs/rxq.txt")"
	done
	[[ $(grep -c "^pmd thread" "$ovs/rxq.txt") == 1 ]] &&
		grep -q "^pmd thread numa_id [0-9]* core_id $c1:" "$ovs/rxq.txt" ||
		fail "OVS's PMD is not one thread on cpu $c1: $(cat "$ovs/rxq.txt")"
}

# ovs_stats NAME: OVS's own counters into $tmp/NAME.json: each flow's packets and bytes (by its
# in_port, "any" for the catch-all), what the PMD thread on $c1 took from its ports, the MACs
# NORMAL learned (by port name).
ovs_stats() {
	kill -0 "$vswitchd_pid" 2> /dev/null || fail "ovs-vswitchd died"
	ovs-ofctl --names dump-flows br0 > "$tmp/$1.flows" || fail "ovs-ofctl dump-flows failed"
	ovs-appctl -t "$ovs/vswitchd.ctl" dpif-netdev/pmd-stats-show > "$tmp/$1.pmd" || fail "pmd-stats-show failed"
	ovs-appctl -t "$ovs/vswitchd.ctl" fdb/show br0 > "$tmp/$1.fdb" || fail "ovs-appctl fdb/show failed"
	ovs-ofctl show br0 > "$tmp/$1.show" || fail "ovs-ofctl show failed"
	# JSON by awk: python starts slowly in the box, and checks starts it once already.
	{
		printf '{"flows": {'
		awk '{
			p = b = ""; port = "any"
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^n_packets=/) { p = $i; sub(/^n_packets=/, "", p); sub(/,$/, "", p) }
				if ($i ~ /^n_bytes=/) { b = $i; sub(/^n_bytes=/, "", b); sub(/,$/, "", b) }
				if ($i ~ /in_port=/) { port = $i; sub(/.*in_port=/, "", port); sub(/,.*/, "", port) }
			}
			if (p != "") printf "%s\"%s\": {\"packets\": %s, \"bytes\": %s}", n++ ? ", " : "", port, p, b
		}' "$tmp/$1.flows"
		printf '}, "pmd_received": %s, "fdb": {' "$(awk -v c="$c1" '
			$0 ~ "^pmd thread numa_id [0-9]+ core_id " c ":" { f = 1; next }
			f && /packets received:/ { print $3; exit }' "$tmp/$1.pmd" | grep . || echo null)"
		awk 'FNR == NR { if ($1 ~ /^[0-9]+\(/) { split($1, a, /[()]/); name[a[1]] = a[2] } next }
			FNR > 1 { printf "%s\"%s\": \"%s\"", n++ ? ", " : "", $3, ($1 in name) ? name[$1] : $1 }' \
			"$tmp/$1.show" "$tmp/$1.fdb"
		echo '}}'
	} > "$tmp/$1.json"
}

# ovs_stop: ovs-vswitchd asked to exit, then ovsdb-server; both must exit cleanly.
ovs_stop() {
	local rc=0 t0=$SECONDS
	ovs-appctl -t "$ovs/vswitchd.ctl" exit || fail "ovs-appctl exit failed"
	wait "$vswitchd_pid" || rc=$?
	[[ $rc == 0 ]] || fail "ovs-vswitchd exited with status $rc"
	vswitchd_pid=''
	log "ovs-vswitchd exited (status 0) $((SECONDS - t0)) s after ovs-appctl exit"
	ovs-appctl -t "$ovs/ovsdb.ctl" exit || fail "ovs-appctl -t ovsdb-server exit failed"
	wait "$ovsdb_pid" || rc=$?
	[[ $rc == 0 ]] || fail "ovsdb-server exited with status $rc"
	ovsdb_pid=''
	log "ovsdb-server exited (status 0)"
}

# harness_kill (harness_cleanup calls it on any exit, then kills what is left): OVS asked to
# exit if still up (pdeathsig kills it when we are killed), the hugepages reserved for it given
# back (pages still in use are freed when their user goes).
harness_kill() {
	[[ -n ${vswitchd_pid:-} ]] && ovs-appctl -t "$ovs/vswitchd.ctl" --timeout=10 exit 2> /dev/null
	[[ -n ${ovsdb_pid:-} ]] && ovs-appctl -t "$ovs/ovsdb.ctl" --timeout=10 exit 2> /dev/null
	((${hp_added:-0} > 0)) && echo $(($(cat /proc/sys/vm/nr_hugepages) - hp_added)) > /proc/sys/vm/nr_hugepages
	return 0
}

# rtvmm_guest NAME SOCKET MAC CMDLINE: boots the guest in the background, log $tmp/NAME.log;
# it gets $guest_timeout seconds (default 60); $pin (box_pin) prefixes it.
pin=()
rtvmm_guest() {
	"${reaper[@]}" timeout --kill-after=5 "${guest_timeout:-60}" "${pin[@]}" "$rtvmm" run --kernel "$guest" \
		--test-device --memory 64M --net "socket=$2,mac=$3" --cmdline "$4" > "$tmp/$1.log" 2>&1 < /dev/null &
	guest_pid=$!
	pids+=("$guest_pid")
}

# guest_wait PID NAME STATUS: the guest's monitor must exit with STATUS.
guest_wait() {
	local rc=0
	wait "$1" || rc=$?
	[[ $rc == "$3" ]] || fail "$2 exited with status $rc, expected $3"
}

# ping_checks LOG COUNT MAC: the pinger's lines. Sets probes and frames (probes + COUNT: what it sent).
ping_checks() {
	local f=$1 n=$2 late
	expect "$f" "rtvmm-guest: net: mac $3, link up" "rtvmm-guest: net: ping at cpl3" \
		"rtvmm-guest: net: sent $n received $n (min/avg/max rtt " "rtvmm-guest: net: lost 0 late " \
		"rtvmm-guest: net ok"
	! grep -q "rtvmm-guest: FAIL" "$f" || fail "$(basename "$f") has a FAIL line"
	probes=$(field "$f" 'answered after ([0-9]+) probe')
	late=$(field "$f" 'net: lost 0 late ([0-9]+) corrupt 0 ')
	[[ -n $probes && -n $late ]] || fail "$(basename "$f"): no probe count, or lost/corrupt frames"
	# Only the answers to extra probes (sent before the first answer came) may come late.
	((late < probes)) || fail "$(basename "$f"): $late late replies after $probes probes"
	frames=$((probes + n))
}

# switch_checks STATS PING_PORT ECHO_PORT: the dataplane counted every frame the pinger sent
# ($frames) one way and every echo the other way; nothing dropped, nothing else.
switch_checks() {
	checks "$tmp/$1.json" << EOF
the pinger's port received every ping and probe ($frames) | d['ports'][$2]['RX-packets'] == $frames
the echo port was sent all of them | d['ports'][$3]['TX-packets'] == $frames
the echo port received every echo | d['ports'][$3]['RX-packets'] == $frames
the pinger's port was sent every echo | d['ports'][$2]['TX-packets'] == $frames
no drops, no errors | all(p['RX-dropped'] == 0 and p['TX-dropped'] == 0 and p['RX-errors'] == 0 for p in d['ports'])
64-byte frames | d['ports'][$2]['RX-bytes'] == 64 * $frames and d['ports'][$3]['RX-bytes'] == 64 * $frames
both guests' MACs learned, flooded only while the echo's was unknown | d['l2']['learned'] == 2 and 1 <= d['l2']['flooded'] <= $probes
EOF
}

# ping_pair ECHO_SOCK PING_SOCK IDLE_MS READY_S: an echoing guest on ECHO_SOCK (ready within
# READY_S), then a guest pinging it $count times from PING_SOCK; both run to their end, and
# both guests' own counts are checked.
ping_pair() {
	rtvmm_guest echo "$1" "$mac_echo" "test=net net=echo idle_ms=$3 expect_mac=$mac_echo"
	echo_pid=$guest_pid
	wait_line "$tmp/echo.log" "rtvmm-guest: net: echo ready" "$4" "$echo_pid"
	log "echo guest ready on $(basename "$1")"
	rtvmm_guest ping "$2" "$mac_ping" "test=net net=ping peer=$mac_echo count=$count expect_mac=$mac_ping"
	guest_wait "$guest_pid" "the pinging rtvmm" 0
	log "ping guest done: $(grep -F 'net: sent' "$tmp/ping.log" | sed 's/.*net: //')"
	ping_checks "$tmp/ping.log" $count "$mac_ping"
	guest_wait "$echo_pid" "the echoing rtvmm" 0
	log "echo guest done: $(grep -F 'net: echoed' "$tmp/echo.log" | sed 's/.*net: //')"
	expect "$tmp/echo.log" "rtvmm-guest: net: mac $mac_echo, link up" "rtvmm-guest: net: echo at cpl3" \
		"rtvmm-guest: net: echoed $frames frames (received $frames, ignored 0, dropped 0)" "rtvmm-guest: net ok"
}

case $mode in
two-guests)
	count=50
	dp_start "$tmp/a.sock" "$tmp/b.sock"
	ping_pair "$tmp/a.sock" "$tmp/b.sock" 3000 30
	dp_stats after
	switch_checks after 1 0
	dp_stop
	;;

testpmd)
	tp_start testpmd
	peer=02:00:00:00:00:02
	# 1. CPL3 data path, default rings, 64-byte frames, notify only when asked.
	rtvmm_guest cpl3 "$tmp/t.sock" "$mac_ping" "test=net net=ping peer=$peer count=200 expect_mac=$mac_ping"
	guest_wait "$guest_pid" "rtvmm (cpl3 run)" 0
	log "cpl3 run: $(grep -F 'net: sent' "$tmp/cpl3.log" | sed 's/.*net: //')"
	ping_checks "$tmp/cpl3.log" 200 "$mac_ping"
	f1=$frames
	# 2. CPL0 data path (emulated here), 64-entry rings, 1514-byte frames, a notify per batch
	#    (the KVM ioeventfd path): the same guest reconnects to the same testpmd.
	rtvmm_guest cpl0 "$tmp/t.sock" "$mac_echo" \
		"test=net net=ping peer=$peer count=20 len=1514 qsize=64 kick=always net_cpl=0"
	guest_wait "$guest_pid" "rtvmm (cpl0 run)" 0
	log "cpl0 run: $(grep -F 'net: sent' "$tmp/cpl0.log" | sed 's/.*net: //')"
	expect "$tmp/cpl0.log" "rtvmm-guest: net: queues rx 64 tx 64 (device max 1024/1024" \
		"rtvmm-guest: net: ping at cpl0" "rtvmm-guest: net: sent 20 received 20 (" "rtvmm-guest: net ok"
	probes=$(field "$tmp/cpl0.log" 'answered after ([0-9]+) probe')
	f2=$((probes + 20))
	kicks=$(field "$tmp/cpl0.log" 'net: kicks tx ([0-9]+) ')
	[[ $kicks == "$f2" ]] || fail "cpl0 run with kick=always: $kicks tx notifies for $f2 frames"
	tp_quit testpmd
	[[ $rx == $((f1 + f2)) && $tx == $((f1 + f2)) ]] ||
		fail "testpmd forwarded RX $rx TX $tx, the guests sent $f1 + $f2"
	log "testpmd: RX-packets $rx TX-packets $tx = what the two guest runs sent ($f1 + $f2)"
	;;

testpmd-restart)
	tp_start testpmd1
	# Pings, one per 10 ms, 100 ms each to answer: testpmd is killed (-9) after 1 s and started
	# again; rtvmm reconnects and sets the rings up again from the used indexes. The run lasts
	# 5 s, or three times testpmd's start-up T where that is longer, so that the restart falls
	# mid-run; and where T is long (tens of seconds in scripts/kvmbox, where DPDK starts slowly)
	# the pings are spaced T/128 apart, so that those sent during the outage fill at most half
	# the guest's 256-entry tx ring. Natively that is the plain 500 pings 10 ms apart.
	T=$tp_start_s
	interval_us=$((T * 1000000 / 128 > 10000 ? T * 1000000 / 128 : 10000))
	run_s=$((3 * T > 5 ? 3 * T : 5))
	count=$((run_s * 1000000 / interval_us > 500 ? run_s * 1000000 / interval_us : 500))
	guest_timeout=$((60 + 2 * run_s))   # the guest's own limit for its run: 15 s less
	log "the guest pings $count times, $interval_us us apart (limit $guest_timeout s)"
	rtvmm_guest restart "$tmp/t.sock" "$mac_ping" \
		"test=net net=ping peer=02:00:00:00:00:02 count=$count interval_us=$interval_us timeout_ms=100 min=$((count / 2)) limit_ms=$(((guest_timeout - 15) * 1000))"
	wait_line "$tmp/restart.log" "rtvmm-guest: net: ping at cpl3" 30 "$guest_pid"
	sleep 1
	kill -9 "$tp_pid"
	exec 3>&-
	wait "$tp_pid" 2> /dev/null
	log "testpmd killed (-9) while the guest pings"
	tp_start testpmd2
	guest_wait "$guest_pid" "rtvmm" 0
	log "ping guest done: $(grep -F 'net: sent' "$tmp/restart.log" | sed 's/.*net: //')"
	expect "$tmp/restart.log" "rtvmm: net0: vhost-user: the backend closed the connection; link down" \
		", rings set up; link up" "rtvmm-guest: net ok"
	lost=$(field "$tmp/restart.log" 'net: lost ([0-9]+) late ')
	late=$(field "$tmp/restart.log" 'net: lost [0-9]+ late ([0-9]+) corrupt 0 ')
	[[ -n $late ]] || fail "corrupt frames"
	((lost >= 1)) || fail "no ping was lost: the restart did not happen while the guest pinged"
	# Pings sent while no backend was there waited in the tx ring; the new backend took them from
	# the used index on and answered them, after their 100 ms.
	((late >= 1)) || fail "no late replies: frames queued during the outage never went out"
	tp_quit testpmd2
	((rx > 0 && rx == tx)) || fail "the restarted testpmd forwarded RX $rx TX $tx"
	log "lost $lost, late $late; the restarted testpmd forwarded $rx frames"
	;;

qemu)
	count=50
	dp_start "$tmp/a.sock" "$tmp/q.sock"
	rtvmm_guest echo "$tmp/a.sock" "$mac_echo" "test=net net=echo idle_ms=4000 expect_mac=$mac_echo"
	echo_pid=$guest_pid
	wait_line "$tmp/echo.log" "rtvmm-guest: net: echo ready" 30 "$echo_pid"
	log "rtvmm echo guest ready on port 0"
	# QEMU 7.2: PVH entry of the same ELF, modern-only virtio-net-pci (no option ROM), guest RAM a
	# shared memfd for vhost-user, console on COM1, status through isa-debug-exit (2 * status + 1).
	"${reaper[@]}" timeout --kill-after=5 60 "$qemu" -enable-kvm -cpu host,-arch-capabilities -M pc -m 64 \
		-smp 1 -nographic -nodefaults -serial stdio -kernel "$guest" \
		-append "test=net net=ping peer=$mac_echo count=$count expect_mac=$mac_qemu" \
		-object memory-backend-memfd,id=mem,size=64M,share=on -numa node,memdev=mem \
		-chardev "socket,id=c0,path=$tmp/q.sock" -netdev vhost-user,id=n0,chardev=c0 \
		-device "virtio-net-pci,netdev=n0,mac=$mac_qemu,disable-legacy=on,romfile=" \
		-device isa-debug-exit,iobase=0x501,iosize=1 > "$tmp/qemu.log" 2>&1 < /dev/null &
	qemu_pid=$!
	pids+=("$qemu_pid")
	guest_wait "$qemu_pid" "QEMU" 1   # isa-debug-exit: guest status 0
	log "QEMU ping guest done: $(grep -F 'net: sent' "$tmp/qemu.log" | sed 's/.*net: //')"
	expect "$tmp/qemu.log" "rtvmm-guest: net: virtio-net 00:" "rtvmm-guest: exit status 0"
	ping_checks "$tmp/qemu.log" $count "$mac_qemu"
	guest_wait "$echo_pid" "the echoing rtvmm" 0
	log "rtvmm echo guest done: $(grep -F 'net: echoed' "$tmp/echo.log" | sed 's/.*net: //')"
	expect "$tmp/echo.log" "rtvmm-guest: net: echoed $frames frames (received $frames, ignored 0, dropped 0)" \
		"rtvmm-guest: net ok"
	dp_stats after
	switch_checks after 1 0
	dp_stop
	;;

qemu-pvh)
	# One vCPU, no smp check: SeaBIOS lists one MP-table CPU per package, judged by CPUID.1
	# (HTT, EBX[23:16]); here the guest sees the host's CPUID (KVM_SET_CPUID2 has no effect on
	# this nested host, MACHINE-NOTES), 2 logical CPUs per package, so with -smp 2 its MP table
	# has 1 CPU and ACPI 2, and the guest rightly fails on the disagreement.
	cmdline="test=boot,timer,tsc pvh-it"
	"${reaper[@]}" timeout --kill-after=5 60 "$qemu" -enable-kvm -cpu host,-arch-capabilities -M pc -m 64 \
		-smp 1 -nographic -nodefaults -serial stdio -kernel "$guest" -append "$cmdline" \
		-device isa-debug-exit,iobase=0x501,iosize=1 > "$tmp/qemu.log" 2>&1 < /dev/null &
	qemu_pid=$!
	pids+=("$qemu_pid")
	guest_wait "$qemu_pid" "QEMU" 1
	log "QEMU exited 1 (guest status 0 through isa-debug-exit)"
	expect "$tmp/qemu.log" "rtvmm-guest: cmdline '$cmdline'" "MiB (from the pvh start info)" \
		"rtvmm-guest: timer ok (" "rtvmm-guest: all tests passed" \
		"rtvmm-guest: exit status 0"
	# The RAM QEMU reported is what -m 64 gives, less the BIOS areas.
	ram=$(field "$tmp/qemu.log" 'e820 [0-9]+ entries, ([0-9]+) MiB')
	[[ $ram -ge 62 && $ram -le 64 ]] || fail "e820 RAM $ram MiB for -m 64"
	! grep -q "rtvmm-guest: FAIL" "$tmp/qemu.log" || fail "a FAIL line"
	grep -F "rtvmm-guest:" "$tmp/qemu.log" | head -n 20
	;;

ovs)
	count=50
	ovs_mem_mb=512
	# NORMAL (MAC learning) for what comes in from each guest, counted per port by its flow; the
	# catch-all (NORMAL too) counts anything else, say from the bridge's own port.
	ovs_flows=('priority=1,in_port=vhu0,actions=NORMAL' 'priority=1,in_port=vhu1,actions=NORMAL'
		'priority=0,actions=NORMAL')
	guest_timeout=120
	ovs_start vhu0 vhu1
	box_pin "$c0" "each guest's monitor"   # the PMD thread spins on $c1
	ping_pair "$ovs/vhu0" "$ovs/vhu1" 4000 60
	ovs_stats after
	# OVS 3.1 (Debian) has no packet counters for vhost-user ports (Interface statistics,
	# dump-ports: "could not retrieve stats (Protocol error)" even while the device runs); its
	# flows, its PMD and its MAC table count for it. The pinger sent $frames (probes and pings),
	# the echo guest received exactly those and returned each: nothing else crossed the bridge.
	checks "$tmp/after.json" << EOF
OVS took every ping and probe ($frames, 64 bytes) from the pinger (vhu1) | d['flows']['vhu1'] == {'packets': $frames, 'bytes': 64 * $frames}
OVS took every echo from the echo guest (vhu0) | d['flows']['vhu0'] == {'packets': $frames, 'bytes': 64 * $frames}
nothing else came into the bridge | d['flows']['any'] == {'packets': 0, 'bytes': 0}
the PMD thread on cpu $c1 took exactly those | d['pmd_received'] == 2 * $frames
NORMAL learned each guest's MAC on its own port | d['fdb'] == {'$mac_echo': 'vhu0', '$mac_ping': 'vhu1'}
EOF
	ovs_stop
	;;
*)
	echo "unknown mode $mode"
	exit 1
	;;
esac
log "PASS ($mode)"
exit 0
