#!/bin/bash
# rtvmm up / ctl list / down (app/up.c): a whole host plan brought up and down.
#
#   up.sh RTVMM GUEST DATAPLANE MODE      (DATAPLANE: the binary, or "none" when not built)
#     bad    no KVM needed: a plan with errors is refused before anything starts (no run
#            directory, no process); a VM that fails to come up is reported with its log's
#            tail and `up` exits 1 after stopping the dataplane it started, removing the state
#            and the sockets; a run directory that holds a state file is refused, a state file
#            host.user wrote is not acted on, an API socket on a NIC's socket path is refused;
#            down and ctl list on a directory where nothing is up say so
#     kvm    a plan with the dataplane and two bare-metal VMs (vCPUs on cpu 1, emulator on
#            cpu 0, host.user nobody): the table shows both Running with their placement and
#            their NIC's link to the dataplane up, each NIC's vm.counters backend its dataplane
#            port,
#            ctl list (text and JSON) the same, a second up is refused, a VM stopped by SIGINT
#            is listed dead with its exit status and not restarted, down stops the other
#            (power button, then vm.shutdown: the bare-metal guest has no ACPI) and the
#            dataplane, and leaves no process, socket or state file
set -u
. "$(dirname "$0")/harness.sh"

rtvmm=$(realpath "${1:?rtvmm}") guest=$(realpath "${2:?guest ELF}") dataplane=${3:?dataplane} mode=${4:?mode}
harness_init up
chmod 755 "$tmp"        # the VMs and the dataplane drop to nobody: it must reach the run dirs
log() { echo "up: $*"; }
ok() { echo "ok - $*"; }
has_dp=false
[[ $dataplane != none && -x $dataplane ]] && has_dp=true
export RTVMM_DATAPLANE=$dataplane
owner=nobody            # the run dir's owner: host.user when up runs as root
[[ $EUID == 0 ]] || owner=$(id -un)
box_pin 1

# After the test: nothing up may outlive it (meson kills only this script).
harness_kill() {
	local p
	for p in $(cat "$tmp"/pids 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
	rm -rf /var/run/dpdk/rtvmm-"$pfx"-* 2> /dev/null
}

# plan FILE KERNEL [DATAPLANE=true|false]: two VMs a and b, each a NIC under $tmp/vhost.
plan() {
	local vm
	{
		echo "host:"
		echo "  housekeeping_cpus: \"0\""
		echo "  user: nobody"
		echo "  run_dir: $tmp/vhost"
		if ${3:-$has_dp}; then
			echo "  dataplane:"
			echo "    cores: \"1\""
			echo "    main_core: 0"
			echo "    no_huge: true"
		fi
		echo "vms:"
		for vm in a b; do
			echo "  - name: $vm"
			echo "    kernel: $2"
			echo "    cmdline: \"test=none fault=hang\""
			echo "    memory: 64M"
			echo "    vcpus:"
			echo "      - cpus: \"1\""
			echo "    emulator_cpus: \"0\""
			echo "    nics:"
			echo "      - name: net0"
			echo "        socket: $tmp/vhost/$vm.sock"
		done
	} > "$1"
}

# Pids `up` said it started ("NAME: started (pid N, ..."), also kept for harness_kill.
started_pids() { sed -n 's/^rtvmm: [a-z]*: started (pid \([0-9]*\),.*/\1/p' "$1" | tee -a "$tmp/pids"; }
alive() { local p; for p in "$@"; do kill -0 "$p" 2> /dev/null && [[ $(ps -o stat= -p "$p") != Z* ]] && return 0; done; return 1; }

bad() {
	local run=$tmp/run status p
	# 1. A plan with an error (a vCPU on a cpu this host lacks): refused like rtvmm check.
	plan "$tmp/$pfx-err.yaml" "$guest"
	sed -i '0,/- cpus: "1"/s//- cpus: "63"/' "$tmp/$pfx-err.yaml"
	"$rtvmm" check "$tmp/$pfx-err.yaml" > /dev/null 2>&1 && fail "rtvmm check accepts the bad plan"
	"$rtvmm" up "$tmp/$pfx-err.yaml" --run-dir "$run" > "$tmp/out" 2> "$tmp/up-err.log"
	status=$?
	[[ $status == 1 ]] || fail "a plan with errors: up exited $status, want 1"
	grep -q "cpu-missing" "$tmp/up-err.log" && grep -q "nothing was started" "$tmp/up-err.log" ||
		fail "a plan with errors: no finding or no 'nothing was started'"
	[[ ! -e $run ]] || fail "a plan with errors: the run directory $run was created"
	grep -q "started (pid" "$tmp/up-err.log" && fail "a plan with errors: something was started"
	ok "a plan with errors is refused before anything starts: $(grep -m1 cpu-missing "$tmp/up-err.log" | cut -c1-100)"

	# 2. A VM that cannot come up (its kernel is not a kernel): reported, everything stopped.
	echo "not a kernel" > "$tmp/garbage"
	plan "$tmp/$pfx-fail.yaml" "$tmp/garbage"
	"${pin[@]}" "$rtvmm" up "$tmp/$pfx-fail.yaml" --run-dir "$run" --timeout 60 > "$tmp/out" 2> "$tmp/up-fail.log"
	status=$?
	started_pids "$tmp/up-fail.log" > "$tmp/fail.pids"
	[[ $status == 1 ]] || fail "a failing VM: up exited $status, want 1"
	grep -Eq "rtvmm: [ab]: did not come up: dead, exit status 1" "$tmp/up-fail.log" ||
		fail "a failing VM: not reported as dead with its status"
	grep -q "rtvmm:   | rtvmm" "$tmp/up-fail.log" || fail "a failing VM: its log's tail is not shown"
	grep -q "stopping what was started" "$tmp/up-fail.log" || fail "a failing VM: no stop"
	[[ $(wc -l < "$tmp/fail.pids") == $(($($has_dp && echo 1 || echo 0) + 2)) ]] ||
		fail "a failing VM: started $(wc -l < "$tmp/fail.pids") processes, want the dataplane and 2 VMs"
	sleep 0.5
	for p in $(cat "$tmp/fail.pids"); do alive "$p" && fail "a failing VM: pid $p still runs after up gave up"; done
	[[ ! -e $run/state ]] || fail "a failing VM: the state file stays"
	ls "$run"/*.sock > /dev/null 2>&1 && fail "a failing VM: sockets stay: $(ls "$run"/*.sock)"
	# (the VM stopped second may have said nothing yet: its log may be empty)
	[[ -f $run/a.log && -f $run/b.log ]] || fail "a failing VM: the VMs' logs are gone"
	[[ $(stat -c '%a %U' "$run") == "700 $owner" ]] || fail "run dir is $(stat -c '%a %U' "$run"), want 700 $owner"
	ok "a VM that fails is reported ($(grep -m1 'did not come up' "$tmp/up-fail.log")), $(wc -l < "$tmp/fail.pids") processes stopped, state and sockets removed, logs kept"

	# 3. A run directory with a state file: refused, the file untouched, nothing started.
	echo '{"plan": "x", "run_dir": "x", "dataplane": null, "vms": []}' > "$run/state"
	cp "$run/state" "$tmp/state.before"
	"$rtvmm" up "$tmp/$pfx-fail.yaml" --run-dir "$run" > "$tmp/out" 2> "$tmp/up-twice.log"
	status=$?
	[[ $status == 1 ]] && grep -q "already up (state file $run/state)" "$tmp/up-twice.log" ||
		fail "a second up: exit $status, want 1 and 'already up'"
	grep -q "started (pid" "$tmp/up-twice.log" && fail "a second up started something"
	cmp -s "$run/state" "$tmp/state.before" || fail "a second up changed the state file"
	ok "a run directory that holds a state file is refused: $(grep -m1 'already up' "$tmp/up-twice.log" | cut -c1-110)"
	# The run directory is host.user's: a state file someone else wrote is not acted on.
	if [[ $EUID == 0 ]]; then
		sleep 1000 &
		p=$!
		echo "$p" >> "$tmp/pids"
		printf '{"plan": "x", "run_dir": "%s", "dataplane": null, "vms": [{"name": "x", "pid": %d, "start": %s, "log": "/etc/passwd", "socket": "%s/x"}]}\n' \
			"$run" "$p" "$(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[20] }' /proc/$p/stat)" "$run" > "$run/state"
		chown nobody "$run/state"
		"$rtvmm" down --run-dir "$run" --timeout 1 > "$tmp/out" 2>&1 && fail "down acted on nobody's state file"
		grep -q "refusing to act on it" "$tmp/out" || fail "nobody's state file: $(cat "$tmp/out")"
		alive "$p" || fail "down killed a process named in nobody's state file"
		kill "$p"
		ok "a state file host.user wrote is refused: $(cut -c1-100 "$tmp/out")"
	fi
	rm "$run/state"

	# 4. A run directory where a VM's API socket would be a NIC's socket: refused.
	"$rtvmm" up "$tmp/$pfx-fail.yaml" --run-dir "$tmp/vhost" > "$tmp/out" 2>&1 && fail "an API socket on a NIC's socket accepted"
	grep -q "the API socket $tmp/vhost/a.sock is also a NIC's or disk's socket" "$tmp/out" ||
		fail "API socket clash: $(tail -3 "$tmp/out")"
	grep -q "started (pid" "$tmp/out" && fail "API socket clash: something was started"
	ok "an API socket that would take a NIC's socket path is refused"

	# 5. Nothing up: down says so (exit 0), ctl list fails naming the directory.
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1 || fail "down with nothing up: exit $?"
	grep -q "nothing is up there" "$tmp/out" || fail "down with nothing up: $(cat "$tmp/out")"
	"$rtvmm" ctl list --run-dir "$run" > "$tmp/out" 2>&1 && fail "ctl list with nothing up: exit 0"
	grep -q "nothing is up there" "$tmp/out" || fail "ctl list with nothing up: $(cat "$tmp/out")"
	"$rtvmm" up "$tmp/$pfx-fail.yaml" --timeout 0 > "$tmp/out" 2>&1 && fail "--timeout 0 accepted"
	grep -q -- "--timeout '0': expected whole seconds" "$tmp/out" || fail "--timeout 0: $(cat "$tmp/out")"
	ok "nothing up: down says so, ctl list fails; a bad --timeout is a usage error"
}

kvm() {
	local run=$tmp/run status a b dp p
	[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
	$has_dp || log "rtvmm-dataplane was not built: the plan has no dataplane"
	plan "$tmp/$pfx-pair.yaml" "$guest"

	# up: both VMs Running, vcpu0 on cpu 1 (SCHED_OTHER), the table says so.
	"${pin[@]}" "$rtvmm" up "$tmp/$pfx-pair.yaml" --run-dir "$run" --timeout 90 > "$tmp/up.out" 2> "$tmp/up.log"
	status=$?
	started_pids "$tmp/up.log" > /dev/null
	[[ $status == 0 ]] || fail "up exited $status: $(cat "$tmp/up.out" "$tmp/up.log")"
	cat "$tmp/up.out"
	a=$(sed -n 's/^rtvmm: a: started (pid \([0-9]*\).*/\1/p' "$tmp/up.log")
	b=$(sed -n 's/^rtvmm: b: started (pid \([0-9]*\).*/\1/p' "$tmp/up.log")
	dp=$(sed -n 's/^rtvmm: dataplane: started (pid \([0-9]*\).*/\1/p' "$tmp/up.log")
	for vm in a b; do
		grep -Eq "^$vm +[0-9]+ +Running +vcpu0 -> 1/other/0 +node [0-9]" "$tmp/up.out" ||
			fail "up's table has no Running row for $vm on cpu 1"
	done
	if $has_dp; then
		grep -q "^dataplane: pid $dp, running" "$tmp/up.out" || fail "up's table: no running dataplane"
		# Each NIC's vhost-user session with the dataplane (started first) is up.
		[[ $(grep -Ec "^[ab] .* net0 up +-$" "$tmp/up.out") == 2 ]] || fail "up's table: a NIC link is not up"
	fi
	alive "$a" && alive "$b" || fail "a VM's process is gone after up"
	[[ $(stat -c '%a %U' "$run") == "700 $owner" ]] || fail "run dir is $(stat -c '%a %U' "$run"), want 700 $owner"
	[[ -S $run/a.sock && -S $run/b.sock ]] || fail "no API sockets in $run"
	ok "up: a and b Running, vcpu0 on cpu 1 other/0 read back through their APIs"

	# ctl list: the same table; --json: the same states and placement.
	"$rtvmm" ctl list --run-dir "$run" > "$tmp/list.out" 2>&1 || fail "ctl list exited $?: $(cat "$tmp/list.out")"
	for vm in a b; do
		grep -Eq "^$vm +[0-9]+ +Running +vcpu0 -> 1/other/0" "$tmp/list.out" || fail "ctl list: no Running row for $vm"
	done
	"$rtvmm" ctl list --run-dir "$run" --json > "$tmp/list.json" || fail "ctl list --json exited $?"
	python3 - "$tmp/list.json" <<'PY' || fail "ctl list --json: $(head -c 2000 "$tmp/list.json")"
import json, sys
d = json.load(open(sys.argv[1]))[0]
assert [v["state"] for v in d["vms"]] == ["Running", "Running"], d["vms"]
for v in d["vms"]:
    t = [t for t in v["placement"]["threads"] if t["name"] == "vcpu0"][0]
    assert (t["cpus"], t["policy"], t["priority"]) == ("1", "other", 0), t
PY
	ok "ctl list shows the same (text and JSON)"

	# vm.counters: up gave each VM its dataplane's stats socket; net0's port is VM.net0.
	if $has_dp; then
		for vm in a b; do
			"$rtvmm" ctl "$run/$vm.sock" counters --json > "$tmp/counters-$vm.json" ||
				fail "ctl counters $vm exited $?"
			python3 - "$tmp/counters-$vm.json" "$vm" "$run/dataplane.sock" <<'PY' ||
import json, sys
b = json.load(open(sys.argv[1]))["net0"]["backend"]
assert b and "error" not in b, b
assert (b["port_name"], b["stats_socket"]) == (sys.argv[2] + ".net0", sys.argv[3]), b
assert b["rx_packets"] == b["tx_packets"] == 0, b    # the guest (test=none) sends nothing
PY
				fail "ctl counters $vm: net0's backend is not its dataplane port: $(head -c 1500 "$tmp/counters-$vm.json")"
		done
		ok "vm.counters: each VM's net0 counted by the dataplane up started (port a.net0, b.net0)"
	fi

	# A second up on the same run dir: refused, the VMs untouched.
	"$rtvmm" up "$tmp/$pfx-pair.yaml" --run-dir "$run" > "$tmp/out" 2> "$tmp/twice.log"
	status=$?
	[[ $status == 1 ]] && grep -q "already up" "$tmp/twice.log" || fail "second up: exit $status"
	alive "$a" && alive "$b" || fail "second up: a VM died"
	ok "a second up is refused: $(grep -m1 'already up' "$tmp/twice.log" | cut -c1-100)"

	# b stops (SIGINT: immediate): listed dead with its exit status, never restarted.
	kill -INT "$b"
	for _ in $(seq 100); do alive "$b" || break; sleep 0.1; done
	alive "$b" && fail "b survives SIGINT"
	"$rtvmm" ctl list --run-dir "$run" > "$tmp/list2.out" 2>&1
	status=$?
	cat "$tmp/list2.out"
	[[ $status == 1 ]] || fail "ctl list with a dead VM exited $status, want 1"
	grep -Eq "^b +$b +dead, exit status 130" "$tmp/list2.out" || fail "ctl list: b not dead with status 130"
	grep -Eq "^a +$a +Running" "$tmp/list2.out" || fail "ctl list: a not Running any more"
	sleep 1
	pgrep -f -- "--vm b" > /dev/null && fail "b was restarted: $(pgrep -af -- '--vm b')"
	ok "a dead VM is listed dead with its exit status, not restarted"

	# down: the power button, then vm.shutdown (no ACPI in the bare-metal guest), the dataplane.
	"$rtvmm" down --run-dir "$run" --timeout 3 > "$tmp/down.out" 2>&1
	status=$?
	cat "$tmp/down.out"
	[[ $status == 0 ]] || fail "down exited $status"
	grep -q "a: power button pressed" "$tmp/down.out" &&
		grep -q "a: still running 3 s after the power button" "$tmp/down.out" &&
		grep -q "a: vm.shutdown (pid $a)" "$tmp/down.out" ||
		fail "down: no power button then vm.shutdown for a"
	grep -q "b: dead, exit status 130" "$tmp/down.out" || fail "down: b not reported dead"
	if $has_dp; then
		grep -q "dataplane: SIGTERM" "$tmp/down.out" || fail "down: the dataplane was not stopped"
	fi
	for p in $a $b $dp; do alive "$p" && fail "down: pid $p still runs"; done
	pgrep -f -- "$run" > /dev/null && fail "down: still running: $(pgrep -af -- "$run")"
	pgrep -f -- "$tmp/$pfx-pair.yaml" > /dev/null && fail "down: still running: $(pgrep -af -- "$tmp/$pfx-pair.yaml")"
	[[ ! -e $run/state ]] || fail "down: the state file stays"
	ls "$run"/*.sock > /dev/null 2>&1 && fail "down: sockets stay: $(ls "$run")"
	ok "down: power button, vm.shutdown, dataplane stopped; no process, socket or state left ($(ls "$run" | tr '\n' ' '))"
}

case $mode in
bad) bad ;;
kvm) kvm ;;
*) fail "mode $mode: expected bad or kvm" ;;
esac
