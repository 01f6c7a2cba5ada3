#!/bin/bash
# rtvmm's confinement (app/sandbox.c, docs/sandbox.md) on a real guest, read back from /proc.
#
#   sandbox.sh RTVMM GUEST MODE
#     proc        --user nobody:nogroup, 2 vCPUs, a NIC and the API socket: every thread has
#                 Seccomp 2, NoNewPrivs 1, the uid/gid of nobody:nogroup, no capabilities; the
#                 API socket is nobody's, 0600, and the api thread answers vm.placement and
#                 vm.counters under its filter; SIGTERM then
#                 stops it cleanly (teardown under the main filter) with status 143
#     violation   RTVMM_SANDBOX_SELFTEST=CLASS for vcpu, session, console, api and main: each run
#                 ends with status 159 and the report line naming the thread and socket(2)
#     no-sandbox  --no-sandbox: the loud warning, Seccomp 0 on every thread, still root
#     refuse      --user nobody with a NIC socket in a root-only directory: refused at start,
#                 naming the NIC and the directory
#     plan        a plan with host.user nobody, a SCHED_FIFO vCPU, mlock and a server-mode NIC
#                 under host.run_dir: the placement is proved as root, the guest passes all its
#                 checks as nobody, the run dir is made 0700 for nobody, and nobody unlinks the
#                 socket at teardown
# Exit 77 only when /dev/kvm is absent.
set -u
. "$(dirname "$0")/harness.sh"

rtvmm=${1:?rtvmm} guest=$(realpath "${2:?guest ELF}") mode=${3:?mode}   # a plan resolves paths from its own directory
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm does not exist: no KVM here"; exit 77; }
id nobody > /dev/null 2>&1 && getent group nogroup > /dev/null || fail "no user nobody / group nogroup"
harness_init sandbox
nobody_uid=$(id -u nobody) nogroup_gid=$(getent group nogroup | cut -d: -f3)
log() { echo "sandbox: $*"; }

# An open console input (a FIFO we also hold), so that the console thread stays.
mkfifo "$tmp/console"
exec 4<> "$tmp/console"

# start NAME ARGS...: rtvmm in the background (a guest that halts forever), log $tmp/NAME.log.
start() {
	local name=$1
	shift
	# setpriv execs rtvmm: $pid is rtvmm's own (meson's timeout bounds the run, cleanup kills it).
	"${reaper[@]}" "$rtvmm" run --kernel "$guest" --test-device --memory 64M \
		--cmdline "test=none fault=hang" "$@" > "$tmp/$name.log" 2>&1 < "$tmp/console" &
	pid=$!
	pids+=("$pid")
}

# finish NAME STATUS: waits for rtvmm, which must end with STATUS.
finish() {
	local rc=0
	wait "$pid" || rc=$?
	[[ $rc == "$2" ]] || fail "$1: rtvmm exited with status $rc, expected $2"
}

# field TID KEY: the value of KEY in /proc/$pid/task/TID/status (tabs squeezed to spaces).
field() {
	sed -n "s/^$2:[[:space:]]*//p" "/proc/$pid/task/$1/status" 2> /dev/null | tr -s '\t ' ' '
}

# threads: "tid:name" of every thread of $pid.
threads() {
	local t
	for t in /proc/"$pid"/task/*; do echo "${t##*/}:$(cat "$t/comm" 2> /dev/null)"; done
}

# all_confined: every thread of $pid has Seccomp 2 (vCPUs confine themselves once the gate opens).
all_confined() {
	local t
	for t in $(threads); do [[ $(field "${t%%:*}" Seccomp) == 2 ]] || return 1; done
}

case $mode in
proc)
	# A NIC whose backend never comes: its session thread exists and reconnects as nobody. A
	# disk: its I/O thread (idle, the guest has no driver for it) is confined like the rest.
	run=$tmp/run
	chmod 0711 "$tmp"
	mkdir -m 0700 "$run" && chown nobody:nogroup "$run"
	truncate -s 1M "$tmp/disk.img"
	start proc --vcpus 2 --user nobody:nogroup --net "socket=$run/none.sock" --disk "path=$tmp/disk.img" \
		--api-socket "$run/api.sock" --shutdown-grace 1
	wait_line "$tmp/proc.log" "rtvmm: sandbox: running as nobody" 60 "$pid"
	for ((i = 0; i < 50; i++)); do all_confined && break; sleep 0.2; done
	names=$(threads | cut -d: -f2 | sort | tr '\n' ' ')
	log "threads: $names"
	for want in vcpu0 vcpu1 console vu-net0 io-disk0 api; do
		[[ " $names " == *" $want "* ]] || fail "no thread $want (threads: $names)"
	done
	for t in $(threads); do
		tid=${t%%:*} name=${t#*:}
		[[ $(field "$tid" Seccomp) == 2 ]] || fail "$name: Seccomp $(field "$tid" Seccomp), expected 2 (filter)"
		[[ $(field "$tid" NoNewPrivs) == 1 ]] || fail "$name: NoNewPrivs $(field "$tid" NoNewPrivs)"
		u=$nobody_uid g=$nogroup_gid
		[[ $(field "$tid" Uid) == "$u $u $u $u" ]] || fail "$name: Uid $(field "$tid" Uid), expected nobody ($u)"
		[[ $(field "$tid" Gid) == "$g $g $g $g" ]] || fail "$name: Gid $(field "$tid" Gid), expected nogroup ($g)"
		[[ -z $(field "$tid" Groups) ]] || fail "$name: supplementary groups $(field "$tid" Groups)"
		for cap in CapEff CapPrm CapAmb; do
			[[ $(field "$tid" $cap) == 0000000000000000 ]] || fail "$name: $cap $(field "$tid" $cap)"
		done
		log "ok: $name: Seccomp 2, NoNewPrivs 1, uid $u, gid $g, no capabilities"
	done
	[[ $(stat -c '%U %a' "$run/api.sock") == "nobody 600" ]] ||
		fail "API socket is $(stat -c '%U %a' "$run/api.sock"), expected nobody 600"
	for call in vm.placement vm.counters vm.info; do
		code=$(curl -s -m 20 --unix-socket "$run/api.sock" -o "$tmp/api.json" -w '%{http_code}' \
			"http://localhost/api/v1/$call")
		[[ $code == 200 ]] || fail "$call as nobody: HTTP $code: $(cat "$tmp/api.json")"
	done
	log "ok: api: socket nobody 0600, vm.placement, vm.counters and vm.info answered under the api filter"
	kill -TERM "$pid"
	finish proc 143
	! grep -q "forbidden system call" "$tmp/proc.log" || fail "a filter stopped the teardown: $(grep forbidden "$tmp/proc.log")"
	grep -q "rtvmm: stopped after" "$tmp/proc.log" || fail "no stop report after SIGTERM"
	# The guest ignores the power button: the main thread's timed wait ends the grace.
	grep -q "did not power off within 1 s" "$tmp/proc.log" || fail "no end of the shutdown grace after SIGTERM"
	log "ok: SIGTERM presses the power button and stops it cleanly after the grace under the main filter (status 143, stop report)"
	;;
violation)
	for class in vcpu session console api main; do
		case $class in
		vcpu) thread=vcpu0 ;;
		session) thread=vu-net0 ;;
		console) thread=console ;;
		api) thread=api ;;
		main) thread=main ;;
		esac
		RTVMM_SANDBOX_SELFTEST=$class start "$class" --net "socket=$tmp/none-$class.sock" \
			--api-socket "$tmp/api-$class.sock"
		finish "$class" 159
		line="rtvmm: sandbox: thread $thread ($class filter) made a forbidden system call 41 (socket); stopping"
		grep -qF -- "$line" "$tmp/$class.log" || fail "$class: no line '$line'"
		log "ok: $class: status 159, '$line'"
	done
	;;
no-sandbox)
	start nosb --vcpus 2 --no-sandbox --shutdown-grace 0
	wait_line "$tmp/nosb.log" "rtvmm: WARNING: --no-sandbox" 30 "$pid"
	wait_line "$tmp/nosb.log" "rtvmm: VM built in" 60 "$pid"
	sleep 1
	for t in $(threads); do
		[[ $(field "${t%%:*}" Seccomp) == 0 ]] || fail "${t#*:}: Seccomp $(field "${t%%:*}" Seccomp) with --no-sandbox"
		[[ $(field "${t%%:*}" Uid) == "0 0 0 0" ]] || fail "${t#*:}: Uid $(field "${t%%:*}" Uid) with --no-sandbox"
	done
	! grep -q "rtvmm: sandbox: running as" "$tmp/nosb.log" || fail "--no-sandbox dropped privileges"
	kill -TERM "$pid"
	finish nosb 143
	log "ok: --no-sandbox warns, every thread Seccomp 0 and root"
	;;
refuse)
	mkdir -m 0700 "$tmp/rootonly"
	start refuse --user nobody --net "socket=$tmp/rootonly/net.sock,mode=server"
	finish refuse 1
	grep -qE "vm\.nics\[0\] \(net0\) socket .*: the service user nobody .* cannot (write to|reach through) $tmp/rootonly " \
		"$tmp/refuse.log" || fail "no clear refusal naming the NIC and the directory: $(cat "$tmp/refuse.log")"
	! grep -q "VM built" "$tmp/refuse.log" || fail "the VM was built before the refusal"
	log "ok: $(grep -m1 'service user nobody' "$tmp/refuse.log")"
	start refuse-disk --user nobody --disk "socket=$tmp/rootonly/blk.sock,mode=server"
	finish refuse-disk 1
	grep -qE "vm\.disks\[0\] \(disk0\) socket .*: the service user nobody .* cannot (write to|reach through) $tmp/rootonly " \
		"$tmp/refuse-disk.log" || fail "no clear refusal naming the disk and the directory: $(cat "$tmp/refuse-disk.log")"
	! grep -q "VM built" "$tmp/refuse-disk.log" || fail "the VM was built before the disk's refusal"
	log "ok: $(grep -m1 'service user nobody' "$tmp/refuse-disk.log")"
	;;
plan)
	chmod 0711 "$tmp"
	cat > "$tmp/vm.yaml" << YAML
host:
  user: nobody
  group: nogroup
  run_dir: $tmp/run
vm:
  name: sb
  kernel: $guest
  cmdline: "cpus=2"
  memory:
    size: 64M
    mlock: true
  vcpus:
    - cpus: "1"
      policy: fifo
      priority: 10
    - cpus: "0"
      policy: other
  nics:
    - name: net0
      socket: $tmp/run/net0.sock
      mode: server
  api_socket: $tmp/run/api.sock
YAML
	rc=0
	timeout 120 "$rtvmm" run "$tmp/vm.yaml" --test-device > "$tmp/plan.log" 2>&1 < /dev/null || rc=$?
	[[ $rc == 0 ]] || fail "plan: rtvmm exited with status $rc"
	for want in "rtvmm: thread placement read back from the kernel" \
		    "rtvmm: sandbox: running as nobody (uid $nobody_uid, gid $nogroup_gid)" \
		    "rtvmm-guest: all tests passed"; do
		grep -qF -- "$want" "$tmp/plan.log" || fail "plan: no '$want'"
	done
	! grep -q "forbidden system call" "$tmp/plan.log" || fail "plan: $(grep forbidden "$tmp/plan.log")"
	[[ $(stat -c '%U:%G %a' "$tmp/run") == "nobody:nogroup 700" ]] ||
		fail "plan: run dir is $(stat -c '%U:%G %a' "$tmp/run"), expected nobody:nogroup 700"
	[[ ! -e $tmp/run/net0.sock ]] || fail "plan: the server socket was not unlinked at teardown"
	[[ ! -e $tmp/run/api.sock ]] || fail "plan: the API socket was not unlinked at teardown"
	log "ok: placement proved as root, guest passed as nobody, run dir nobody:nogroup 0700, socket unlinked"
	;;
*)
	fail "unknown mode $mode"
	;;
esac
echo "PASS: sandbox $mode"
