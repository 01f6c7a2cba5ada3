#!/bin/bash
# rtvmm up / ctl list / down (app/up.c): a whole host plan brought up and down.
#
#   up.sh RTVMM GUEST DATAPLANE MODE      (DATAPLANE: the binary, or "none" when not built)
#     bad    no KVM needed: a plan with errors is refused before anything starts (no run
#            directory, no process); a VM that fails to come up is reported with its log's
#            tail and `up` exits 1 after stopping the dataplane it started, removing the state,
#            the sockets and the dataplane's DPDK runtime directory; the run directory is 0700
#            host.user's (and its group's); a run directory that holds a state file is refused,
#            a state file host.user wrote is not acted on, an API or console socket on a NIC's
#            socket path is refused; down and ctl list on a directory where nothing is up say
#            so; down removes a gone dataplane's DPDK runtime directory, but not a symlink (nor
#            its target), another user's directory, one whose config a process locks, or a
#            file_prefix that is not rtvmm-NAME; a fifo dataplane's poll thread is proved
#            from the kernel before any VM starts, and one off its plan stops up
#     kvm    a plan with the dataplane and two bare-metal VMs (vCPUs on cpu 1, emulator on
#            cpu 0, host.user nobody): the table shows both Running with their placement,
#            their NIC's link to the dataplane up and their console socket RUN/NAME.console,
#            each NIC's vm.counters backend its dataplane port;
#            the API thread is on the emulator cpu 0, SCHED_OTHER, apart from vcpu0's cpu
#            (vm.placement and the kernel); ctl list (text and JSON) the same, a second up is
#            refused, a VM stopped by SIGINT is listed dead with its exit status and not
#            restarted, down stops the other (power button, then vm.shutdown: the bare-metal
#            guest has no ACPI) and the dataplane, and leaves no process, socket, state file
#            or DPDK runtime directory
#     console a Linux VM brought up (COM1 on RUN/l.console: table and ctl list say so), `rtvmm
#            ctl RUN/l.sock console` on a pty types echo RTVMM-$((6*7)), reads RTVMM-42, detaches
#            with Ctrl-] (exit 0); the guest runs on (Running, a second attach answers); down
#            stops it and leaves no socket
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
group=$(id -gn "$owner")
# Where DPDK puts a file prefix's runtime directory (the dataplane's is rtvmm-PLANNAME).
eal=/var/run/dpdk
[[ $(id -u) == 0 ]] || eal=${XDG_RUNTIME_DIR:-/tmp}/dpdk
box_pin 1

# After the test: nothing up may outlive it (meson kills only this script).
harness_kill() {
	local p
	for p in $(cat "$tmp"/pids 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
	rm -rf /var/run/dpdk/rtvmm-"$pfx"-* 2> /dev/null
}

# plan FILE KERNEL [DATAPLANE=true|false [VCPU_CPU [DATAPLANE_POLICY]]]: two VMs a and b, each
# a NIC under $tmp/vhost.
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
			[[ -z ${5:-} ]] || printf '    policy: %s\n    priority: %s\n' "${5%:*}" "${5#*:}"
		fi
		echo "vms:"
		for vm in a b; do
			echo "  - name: $vm"
			echo "    kernel: $2"
			echo "    cmdline: \"test=none fault=hang\""
			echo "    memory: 64M"
			echo "    vcpus:"
			echo "      - cpus: \"${4:-1}\""
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
	[[ $(stat -c '%a %U %G' "$run") == "700 $owner $group" ]] ||
		fail "run dir is $(stat -c '%a %U %G' "$run"), want 700 $owner $group"
	if $has_dp; then
		grep -q "dataplane: removed its EAL runtime directory $eal/rtvmm-$pfx-fail$" "$tmp/up-fail.log" ||
			fail "a failing VM: the dataplane's EAL runtime directory was not removed: $(grep EAL "$tmp/up-fail.log")"
		[[ ! -e $eal/rtvmm-$pfx-fail ]] || fail "a failing VM: $eal/rtvmm-$pfx-fail stays: $(ls "$eal/rtvmm-$pfx-fail")"
	fi
	ok "a VM that fails is reported ($(grep -m1 'did not come up' "$tmp/up-fail.log")), $(wc -l < "$tmp/fail.pids") processes stopped, state and sockets removed, logs kept"

	# 2b. A fifo dataplane (the VMs on cpu 0): its poll thread proved from the kernel before any
	# VM starts; one that does not read back as planned (a wrapper that asks the dataplane for
	# SCHED_OTHER) stops up before any VM starts.
	if $has_dp && [[ $EUID == 0 ]]; then
		plan "$tmp/$pfx-fifo.yaml" "$tmp/garbage" true 0 fifo:10
		"$rtvmm" up "$tmp/$pfx-fifo.yaml" --run-dir "$run" --timeout 60 > "$tmp/out" 2> "$tmp/up-fifo.log"
		started_pids "$tmp/up-fifo.log" > /dev/null
		grep -q "rtvmm: dataplane: poll threads as planned (read back from the kernel): dp-poll1 -> cpu 1 fifo 10$" \
			"$tmp/up-fifo.log" || fail "a fifo dataplane: no proof line: $(cat "$tmp/up-fifo.log")"
		grep -Eq "rtvmm: [ab]: did not come up" "$tmp/up-fifo.log" || fail "a fifo dataplane: the VMs were not started"
		printf '#!/bin/sh\nexec %q "$@" --poll-sched other\n' "$(realpath "$dataplane")" > "$tmp/dp-other"
		chmod +x "$tmp/dp-other"
		RTVMM_DATAPLANE=$tmp/dp-other "$rtvmm" up "$tmp/$pfx-fifo.yaml" --run-dir "$run" --timeout 60 \
			> "$tmp/out" 2> "$tmp/up-other.log"
		status=$?
		started_pids "$tmp/up-other.log" > "$tmp/other.pids"
		[[ $status == 1 ]] || fail "a dataplane off its plan: up exited $status, want 1"
		grep -q "rtvmm: dataplane: poll thread dp-poll1 (tid [0-9]*) reads back as cpus 1, other 0; the plan asks cpu 1, fifo 10" \
			"$tmp/up-other.log" || fail "a dataplane off its plan: not refused: $(cat "$tmp/up-other.log")"
		[[ $(wc -l < "$tmp/other.pids") == 1 ]] || fail "a dataplane off its plan: a VM was started"
		sleep 0.5
		alive $(cat "$tmp/other.pids") && fail "a dataplane off its plan: it still runs"
		ok "a fifo dataplane's poll thread is proved from the kernel before any VM starts; one off its plan stops up: $(grep -m1 'reads back' "$tmp/up-other.log" | cut -c1-120)"
	fi

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
	# ... or where a VM's console socket would be: b's NIC on RUN/a.console.
	sed "s|socket: $tmp/vhost/b.sock|socket: $run/a.console|" "$tmp/$pfx-fail.yaml" > "$tmp/$pfx-clash.yaml"
	"$rtvmm" up "$tmp/$pfx-clash.yaml" --run-dir "$run" > "$tmp/out" 2>&1 && fail "a console socket on a NIC's socket accepted"
	grep -q "the console socket $run/a.console is also a NIC's or disk's socket" "$tmp/out" ||
		fail "console socket clash: $(tail -3 "$tmp/out")"
	grep -q "started (pid" "$tmp/out" && fail "console socket clash: something was started"
	ok "an API or console socket that would take a NIC's socket path is refused"

	# 4b. A VM whose plan sets serial keeps it: up gives it no console socket (rtvmm run
	# refuses --serial for it), its COM1 is the plan's.
	plan "$tmp/$pfx-off.yaml" "$tmp/garbage" false
	sed -i 's/^    memory: 64M$/    memory: 64M\n    serial: "off"/' "$tmp/$pfx-off.yaml"
	"$rtvmm" run "$tmp/$pfx-off.yaml" --vm a --serial socket="$run/a.console" > "$tmp/out" 2>&1 && fail "run --serial over the plan's serial accepted"
	grep -q -- "--serial 'socket=$run/a.console': $tmp/$pfx-off.yaml:[0-9]*: vms\[0\].serial sets where COM1 goes already" "$tmp/out" ||
		fail "run --serial over the plan's serial: $(cat "$tmp/out")"
	"${pin[@]}" "$rtvmm" up "$tmp/$pfx-off.yaml" --run-dir "$run" --timeout 60 > "$tmp/out" 2> "$tmp/up-off.log"
	started_pids "$tmp/up-off.log" > /dev/null
	grep -q "did not come up" "$tmp/up-off.log" || fail "serial off: $(cat "$tmp/up-off.log")"
	grep -q -- "--serial" "$run/a.log" "$run/b.log" && fail "up gave a VM whose plan sets serial a console: $(cat "$run/a.log")"
	ok "a VM whose plan sets serial gets no console socket from up; rtvmm run refuses --serial over it"

	# 5. Nothing up: down says so (exit 0), ctl list fails naming the directory.
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1 || fail "down with nothing up: exit $?"
	grep -q "nothing is up there" "$tmp/out" || fail "down with nothing up: $(cat "$tmp/out")"
	"$rtvmm" ctl list --run-dir "$run" > "$tmp/out" 2>&1 && fail "ctl list with nothing up: exit 0"
	grep -q "nothing is up there" "$tmp/out" || fail "ctl list with nothing up: $(cat "$tmp/out")"
	"$rtvmm" up "$tmp/$pfx-fail.yaml" --timeout 0 > "$tmp/out" 2>&1 && fail "--timeout 0 accepted"
	grep -q -- "--timeout '0': expected whole seconds" "$tmp/out" || fail "--timeout 0: $(cat "$tmp/out")"
	ok "nothing up: down says so, ctl list fails; a bad --timeout is a usage error"

	# 6. down removes the dataplane's EAL runtime directory once it is gone, and only its own:
	# not a symlink (nor what it points to), not another user's, not one a DPDK process locks.
	[[ $(id -u) == 0 ]] && eal_rules
}

# state PREFIX: a state file in $run naming a dataplane (long gone: start time 1) with that prefix.
state() {
	printf '{"plan": "%s", "run_dir": "%s", "dataplane": {"name": "dataplane", "pid": %d, "start": 1, "log": "%s/dp.log", "socket": "%s/dp.sock", "file_prefix": "%s"}, "vms": []}\n' \
		"$tmp/$pfx-fail.yaml" "$run" $$ "$run" "$run" "$1" > "$run/state"
}

eal_rules() {
	local d=$eal/rtvmm-$pfx-x
	mkdir -p "$eal" "$tmp/victim"
	echo keep > "$tmp/victim/config"
	# A directory as the EAL leaves it: removed, with what it holds (a socket, files).
	mkdir -m 700 "$d"
	touch "$d/config" "$d/hugepage_info" "$d/fbarray_memseg-2048k-0-0"
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/mp_socket"
	ln -s "$tmp/victim/config" "$d/link"
	state "rtvmm-$pfx-x"
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1 || fail "down with a gone dataplane: $(cat "$tmp/out")"
	grep -q "removed its EAL runtime directory $d$" "$tmp/out" || fail "EAL dir: $(cat "$tmp/out")"
	[[ ! -e $d && -f $tmp/victim/config ]] || fail "EAL dir: $d stays or the link's target went"
	# A symlink in its place: left, its target untouched.
	ln -s "$tmp/victim" "$d"
	state "rtvmm-$pfx-x"
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1
	grep -q "EAL runtime directory $d stays" "$tmp/out" || fail "EAL symlink: $(cat "$tmp/out")"
	[[ -L $d && -f $tmp/victim/config ]] || fail "EAL symlink: the link or its target's file went"
	rm "$d"
	# Another user's directory: left.
	mkdir -m 700 "$d"
	touch "$d/config"
	chown -R nobody "$d"
	state "rtvmm-$pfx-x"
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1
	grep -q "EAL runtime directory $d stays: owned by uid $(id -u nobody)" "$tmp/out" || fail "EAL dir of nobody: $(cat "$tmp/out")"
	[[ -f $d/config ]] || fail "EAL dir of nobody: its config went"
	chown -R root "$d"
	# A DPDK primary of that prefix still runs (it holds the lock on config): left.
	python3 -c 'import fcntl, sys, time; f = open(sys.argv[1], "r+"); fcntl.lockf(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(60)' "$d/config" > "$tmp/lock.out" &
	local lp=$!
	echo "$lp" >> "$tmp/pids"
	wait_line "$tmp/lock.out" locked 10 "$lp"
	state "rtvmm-$pfx-x"
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1
	grep -q "EAL runtime directory $d stays: a DPDK process of that prefix still runs" "$tmp/out" || fail "locked EAL dir: $(cat "$tmp/out")"
	[[ -f $d/config ]] || fail "locked EAL dir: its config went"
	kill "$lp"
	wait "$lp" 2> /dev/null
	rm -r "$d"
	# A prefix that is not rtvmm-NAME (a path): the state file is refused, nothing removed.
	state "rtvmm-../victim"
	"$rtvmm" down --run-dir "$run" > "$tmp/out" 2>&1 && fail "a state file with file_prefix rtvmm-../victim accepted"
	grep -q "file_prefix (rtvmm-NAME)" "$tmp/out" || fail "bad file_prefix: $(cat "$tmp/out")"
	rm "$run/state"
	ok "down removes the dataplane's EAL runtime directory, never through a symlink, nor another user's or a locked one"
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
		grep -q "^dataplane poll threads (from the kernel): dp-poll1 -> cpu 1 other 0$" "$tmp/up.out" ||
			fail "up's table: the poll thread is not read back on cpu 1"
		# Each NIC's vhost-user session with the dataplane (started first) is up.
		[[ $(grep -Ec "^[ab] .* net0 up +- +$run/[ab].console$" "$tmp/up.out") == 2 ]] ||
			fail "up's table: a NIC link is not up, or no console socket"
	fi
	for vm in a b; do
		grep -Eq "^$vm .* $run/$vm.console$" "$tmp/up.out" || fail "up's table: $vm's console is not $run/$vm.console"
		[[ -S $run/$vm.console ]] || fail "no console socket $run/$vm.console"
	done
	alive "$a" && alive "$b" || fail "a VM's process is gone after up"
	[[ $(stat -c '%a %U %G' "$run") == "700 $owner $group" ]] ||
		fail "run dir is $(stat -c '%a %U %G' "$run"), want 700 $owner $group"
	[[ -S $run/a.sock && -S $run/b.sock ]] || fail "no API sockets in $run"
	ok "up: a and b Running, vcpu0 on cpu 1 other/0 read back through their APIs, consoles in $run"

	# The API thread: on the emulator cpus (0), SCHED_OTHER, never on vcpu0's cpu (1); as the
	# API reports it (vm.placement) and as the kernel says (its task's affinity and policy).
	"$rtvmm" ctl "$run/a.sock" placement --json > "$tmp/placement.json" || fail "ctl placement exited $?"
	python3 - "$tmp/placement.json" <<'PY' || fail "the api thread's placement: $(head -c 2000 "$tmp/placement.json")"
import json, sys
d = json.load(open(sys.argv[1]))
th = {t["name"]: t for t in d["threads"]}
api, vcpu = th["api"], th["vcpu0"]
assert (api["cpus"], api["policy"], api["priority"]) == ("0", "other", 0), api
assert api.get("role") == "api" and api["as_planned"] is True, api
assert not set(api["cpus"].split(",")) & set(vcpu["cpus"].split(",")), (api, vcpu)
PY
	local tid
	tid=$(grep -lx api /proc/"$a"/task/*/comm | head -1 | cut -d/ -f5)
	[[ -n $tid ]] || fail "a has no task named api: $(cat /proc/"$a"/task/*/comm | tr '\n' ' ')"
	[[ $(taskset -pc "$tid" | sed 's/.*: //') == 0 ]] || fail "api thread $tid: $(taskset -pc "$tid")"
	chrt -p "$tid" | grep -q "policy: SCHED_OTHER" || fail "api thread $tid: $(chrt -p "$tid")"
	ok "the API thread runs on the emulator cpu 0, SCHED_OTHER, apart from vcpu0's cpu 1 (vm.placement and the kernel)"

	# ctl list: the same table; --json: the same states and placement.
	"$rtvmm" ctl list --run-dir "$run" > "$tmp/list.out" 2>&1 || fail "ctl list exited $?: $(cat "$tmp/list.out")"
	for vm in a b; do
		grep -Eq "^$vm +[0-9]+ +Running +vcpu0 -> 1/other/0 .* $run/$vm.console$" "$tmp/list.out" || fail "ctl list: no Running row for $vm with its console"
	done
	"$rtvmm" ctl list --run-dir "$run" --json > "$tmp/list.json" || fail "ctl list --json exited $?"
	python3 - "$tmp/list.json" "$run" <<'PY' || fail "ctl list --json: $(head -c 2000 "$tmp/list.json")"
import json, sys
d = json.load(open(sys.argv[1]))[0]
assert [v["state"] for v in d["vms"]] == ["Running", "Running"], d["vms"]
assert [v["console_socket"] for v in d["vms"]] == [sys.argv[2] + "/a.console", sys.argv[2] + "/b.console"], d["vms"]
for v in d["vms"]:
    t = [t for t in v["placement"]["threads"] if t["name"] == "vcpu0"][0]
    assert (t["cpus"], t["policy"], t["priority"]) == ("1", "other", 0), t
if d["dataplane"] is not None:
    p = d["dataplane"]["poll_threads"]
    assert [(t["thread"], t["cpus"], t["policy"], t["priority"]) for t in p] == [("dp-poll1", "1", "other", 0)], p
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
	ls "$run"/*.sock "$run"/*.console > /dev/null 2>&1 && fail "down: sockets stay: $(ls "$run")"
	if $has_dp; then
		grep -q "dataplane: removed its EAL runtime directory $eal/rtvmm-$pfx-pair$" "$tmp/down.out" &&
			[[ ! -e $eal/rtvmm-$pfx-pair ]] || fail "down: the dataplane's EAL runtime directory stays"
	fi
	ok "down: power button, vm.shutdown, dataplane stopped; no process, socket, state or EAL directory left ($(ls "$run" | tr '\n' ' '))"
}

# attach SOCK EXPR WANT: `rtvmm ctl SOCK console` on a pty (python's pty module) types
# "echo EXPR" until the shell's answer WANT comes back, then Ctrl-] detaches: ctl exits 0.
attach() {
	timeout 120 python3 - "$rtvmm" "$1" "$2" "$3" <<'PY'
import os, pty, select, sys, time
rtvmm, sock, expr, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(rtvmm, [rtvmm, "ctl", sock, "console"])
got, typed, end = b"", 0.0, time.monotonic() + 90
while want not in got and time.monotonic() < end:
    if time.monotonic() - typed > 3:   # until the shell reads its console
        os.write(fd, b"echo " + expr.encode() + b"\n")
        typed = time.monotonic()
    if select.select([fd], [], [], 0.5)[0]:
        try:
            got += os.read(fd, 65536)
        except OSError:
            break
print("attach: %d bytes, %s" % (len(got), "answered" if want in got else "NO ANSWER"))
if want not in got:
    print(got[-2000:].decode(errors="replace"))
    sys.exit(1)
os.write(fd, b"\x1d")
_, status = os.waitpid(pid, 0)
try:
    got += os.read(fd, 65536)
except OSError:
    pass
if not b"Connected to" in got or os.WEXITSTATUS(status) != 0:
    print("ctl console: status %#x after Ctrl-]: %r" % (status, got[-500:]))
    sys.exit(1)
PY
}

console() {
	local run=$tmp/run status l kernel=${RTVMM_TEST_KERNEL:-} initrd=${RTVMM_TEST_INITRD:-} root
	[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
	[[ -f $kernel && -f $initrd ]] || fail "no guest kernel/initramfs: run the suite through scripts/test.sh"
	root=$(cd "$(dirname "$0")/../.." && pwd)
	cat > "$tmp/$pfx-linux.yaml" <<-YAML
	host:
	  housekeeping_cpus: "0"
	  user: nobody
	  run_dir: $tmp/vhost
	vms:
	  - name: l
	    kernel: $kernel
	    initrd: $initrd
	    cmdline: "console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=shell"
	    memory: 256M
	    vcpus:
	      - cpus: "1"
	    emulator_cpus: "0"
	YAML
	"${pin[@]}" "$rtvmm" up "$tmp/$pfx-linux.yaml" --run-dir "$run" --timeout 60 > "$tmp/up.out" 2> "$tmp/up.log"
	status=$?
	started_pids "$tmp/up.log" > /dev/null
	[[ $status == 0 ]] || fail "up exited $status: $(cat "$tmp/up.out" "$tmp/up.log")"
	l=$(sed -n 's/^rtvmm: l: started (pid \([0-9]*\).*/\1/p' "$tmp/up.log")
	grep -Eq "^l +$l +Running .* $run/l.console$" "$tmp/up.out" || fail "up's table: no console $run/l.console: $(cat "$tmp/up.out")"
	"$rtvmm" ctl list --run-dir "$run" > "$tmp/list.out" 2>&1 || fail "ctl list exited $?"
	grep -Eq "^l +$l +Running .* $run/l.console$" "$tmp/list.out" || fail "ctl list: no console: $(cat "$tmp/list.out")"
	[[ -S $run/l.console ]] || fail "no socket $run/l.console"
	ok "up: the Linux VM's COM1 is the socket $run/l.console (table and ctl list)"

	attach "$run/l.sock" 'RTVMM-$((6*7))' RTVMM-42 || fail "ctl console: no RTVMM-42 from the guest's shell"
	alive "$l" || fail "the VM died after ctl console detached"
	"$rtvmm" ctl "$run/l.sock" info > "$tmp/info" || fail "ctl info after the detach: $(cat "$tmp/info")"
	grep -qE '^State: +Running$' "$tmp/info" || fail "not Running after the detach: $(cat "$tmp/info")"
	# Attached again: the shell still answers.
	attach "$run/l.sock" 'RTVMM-$((7*8))' RTVMM-56 || fail "ctl console again: no RTVMM-56"
	ok "ctl console typed echo RTVMM-\$((6*7)), read RTVMM-42, detached with Ctrl-] (exit 0); the guest runs on and answers a second attach"

	"$rtvmm" down --run-dir "$run" --timeout 20 > "$tmp/down.out" 2>&1 || fail "down exited $?: $(cat "$tmp/down.out")"
	cat "$tmp/down.out"
	alive "$l" && fail "down: the VM still runs"
	[[ ! -e $run/l.console && ! -e $run/l.sock && ! -e $run/state ]] || fail "down: left $(ls "$run")"
	ok "down stops the Linux VM; its console and API sockets are gone"
}

case $mode in
bad) bad ;;
kvm) kvm ;;
console) console ;;
*) fail "mode $mode: expected bad, kvm or console" ;;
esac
