#!/bin/bash
# KVM's real-time knobs on a real KVM (docs/rt-knobs.md). The bare-metal guest parks its vCPU
# in `cli; hlt` for good (fault=hang), so what KVM does with that HLT shows in the vCPU
# thread's CPU time:
#   --disable-exits hlt --halt-poll-ns 0  the build report, vm.info, vm.placement and
#       `rtvmm ctl SOCKET info` say
#       what was enabled, and the vCPU thread runs (the guest halts in guest mode: the
#       thread keeps its cpu, most of the wall time)
#   --halt-poll-ns 0 alone                HLT exits to KVM, which puts the thread to sleep
#       at once (no polling): next to no CPU time
#   every exit at once                    runs, or is refused naming what this KVM lacks,
#       before any vCPU exists
#   a name KVM does not have              refused naming the flag and the value
#
#   rt_knobs.sh RTVMM GUEST
# Exit 77 only when /dev/kvm is absent or its KVM cannot disable HLT exits (it says which it can).
set -u
. "$(dirname "$0")/harness.sh"

rtvmm=${1:?rtvmm} guest=${2:?guest ELF}
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm does not exist: no KVM here"; exit 77; }
command -v curl > /dev/null || fail "curl is not installed (scripts/deps.sh test)"
command -v jq > /dev/null || fail "jq is not installed (scripts/deps.sh test)"
harness_init rt-knobs
log() { echo "rt_knobs: $*"; }
box_pin 1
hz=$(getconf CLK_TCK)

# start NAME FLAGS...: the hanging guest with its API socket $tmp/NAME.sock; its pid in $pid.
start() {
	local name=$1
	shift
	"${reaper[@]}" "${pin[@]}" "$rtvmm" run --kernel "$guest" --test-device --memory 64M \
		--cmdline "test=none fault=hang" --api-socket "$tmp/$name.sock" "$@" \
		> "$tmp/$name.out" 2> "$tmp/$name.log" < /dev/null &
	pid=$!
	pids+=("$pid")
	wait_line "$tmp/$name.log" "VM built in" 90 "$pid"
}

# api NAME PATH: GET PATH from NAME's API into $tmp/body (fails unless 200).
api() {
	local code
	code=$(curl -s -m 20 --unix-socket "$tmp/$1.sock" -o "$tmp/body" -w '%{http_code}' \
		"http://localhost$2")
	[[ $code == 200 ]] || fail "$1: GET $2: HTTP $code: $(cat "$tmp/body" 2> /dev/null)"
}

# busy NAME: percent of 3 s of wall time vcpu0's thread spent on a cpu (utime + stime).
busy() {
	local tid a b t0 t1
	api "$1" /api/v1/vm.exits
	tid=$(jq -r '.vcpus[0].tid' "$tmp/body")
	[[ $tid =~ ^[0-9]+$ && $tid -gt 0 ]] || fail "$1: no vcpu0 tid in $(cat "$tmp/body")"
	sleep 1     # past the guest's start-up
	ticks() { awk '{ print $14 + $15 }' "/proc/$pid/task/$tid/stat"; }
	a=$(ticks) t0=$(date +%s%N)
	sleep 3
	b=$(ticks) t1=$(date +%s%N)
	echo $(( (b - a) * 1000000000 / hz * 100 / (t1 - t0) ))
}

stop() {
	kill -INT "$pid"
	wait "$pid" 2> /dev/null
}

# 0. A KVM that cannot let a guest halt in guest mode says so, naming what it can: then there
# is nothing more to prove here.
"${pin[@]}" timeout 60 "$rtvmm" run --kernel "$guest" --test-device --memory 64M \
	--cmdline "test=none" --disable-exits hlt > "$tmp/probe.out" 2> "$tmp/probe.log" < /dev/null
status=$?
if [[ $status -ne 0 ]]; then
	grep -qF "rtvmm: --disable-exits 'hlt': disable_exits hlt: KVM lacks KVM_CAP_X86_DISABLE_EXITS for hlt on this host (it can disable: " "$tmp/probe.log" ||
		fail "--disable-exits hlt: status $status without naming what KVM lacks: $(cat "$tmp/probe.log")"
	echo "SKIP: this KVM cannot disable HLT exits: $(cat "$tmp/probe.log")"
	exit 77
fi

# 1. HLT in guest mode.
start on --disable-exits hlt --halt-poll-ns 0 --dirty-ring 0
grep -qF "rtvmm: KVM: exits disabled: hlt (KVM_CAP_X86_DISABLE_EXITS); halt polling: 0 ns (KVM_CAP_HALT_POLL)" \
	"$tmp/on.log" || fail "the build report does not say what KVM enabled"
api on /api/v1/vm.info
[[ $(jq -cS .kvm "$tmp/body") == '{"dirty_ring":0,"disabled_exits":["hlt"],"halt_poll_ns":0}' ]] ||
	fail "vm.info kvm: $(jq -cS .kvm "$tmp/body")"
api on /api/v1/vm.placement
[[ $(jq -cS .kvm "$tmp/body") == '{"dirty_ring":0,"disabled_exits":["hlt"],"halt_poll_ns":0}' ]] ||
	fail "vm.placement kvm: $(jq -cS .kvm "$tmp/body")"
"$rtvmm" ctl "$tmp/on.sock" info > "$tmp/info" 2>&1 || fail "rtvmm ctl info: $(cat "$tmp/info")"
grep -qE "^Exits disabled: +hlt$" "$tmp/info" && grep -qE "^Halt polling: +0 ns$" "$tmp/info" &&
	grep -qE "^Dirty ring: +off \(KVM's dirty bitmap\)$" "$tmp/info" ||
	fail "rtvmm ctl info does not show the knobs: $(cat "$tmp/info")"
log "ok: build report, vm.info, vm.placement and rtvmm ctl info: $(jq -cS .kvm "$tmp/body")"
on=$(busy on) || fail "$on"
stop
log "vcpu0 in 'cli; hlt' with HLT exits disabled: on a cpu ${on}% of the time"

# 2. The same guest with HLT exiting to KVM, which sleeps at once (halt_poll_ns 0).
start off --halt-poll-ns 0 --dirty-ring 0
api off /api/v1/vm.info
[[ $(jq -cS .kvm "$tmp/body") == '{"dirty_ring":0,"disabled_exits":[],"halt_poll_ns":0}' ]] ||
	fail "vm.info kvm without disable_exits: $(jq -cS .kvm "$tmp/body")"
off=$(busy off) || fail "$off"
stop
log "vcpu0 in 'cli; hlt' with HLT exits (KVM sleeps it): on a cpu ${off}% of the time"
[[ $on -ge 50 ]] || fail "with HLT exits disabled vcpu0 ran ${on}% of the time: KVM did not let the guest halt in guest mode"
[[ $off -le 20 ]] || fail "with HLT exits vcpu0 ran ${off}% of the time: KVM did not sleep it"
log "ok: HLT stays in the guest only when disabled (${on}% against ${off}%)"

# 3. Every exit: all granted, or refused before any vCPU naming what this KVM lacks.
"${pin[@]}" timeout 60 "$rtvmm" run --kernel "$guest" --test-device --memory 64M \
	--cmdline "test=none" --disable-exits hlt,pause,mwait,cstate > "$tmp/all.out" 2> "$tmp/all.log" < /dev/null
status=$?
if [[ $status -eq 0 ]]; then
	grep -qF "exits disabled: hlt, pause, mwait, cstate" "$tmp/all.log" ||
		fail "every exit granted but not reported"
	log "ok: this KVM disables hlt, pause, mwait and cstate"
else
	[[ $status -eq 1 ]] || fail "every exit: status $status, expected 0 or 1"
	msg=$(grep -F "rtvmm: --disable-exits 'hlt,pause,mwait,cstate': disable_exits hlt, pause, mwait, cstate: KVM lacks KVM_CAP_X86_DISABLE_EXITS for " "$tmp/all.log") ||
		fail "every exit refused without naming what KVM lacks: $(cat "$tmp/all.log")"
	grep -qF "VM built in" "$tmp/all.log" && fail "refused, yet the VM was built"
	log "ok: refused: ${msg#rtvmm: }"
fi

# 4. A bad name.
"$rtvmm" run --kernel "$guest" --disable-exits hlt,idle > /dev/null 2> "$tmp/bad.log" < /dev/null
status=$?
[[ $status -eq 1 ]] && grep -qF "rtvmm: --disable-exits 'hlt,idle': vm.disable_exits: 'idle': expected hlt, pause, mwait or cstate" "$tmp/bad.log" ||
	fail "--disable-exits hlt,idle: status $status: $(cat "$tmp/bad.log")"
log "ok: $(cat "$tmp/bad.log")"
echo "PASS: rt knobs"
