#!/bin/bash
# The control API (app/control.c, api/server.c) of a running bare-metal guest, driven with curl
# (a client nobody here wrote) and `rtvmm ctl`. The guest prints numbered lines without end
# (chatter=, one PIO exit per byte), so its progress is vcpu0's exit count.
#
#   api.sh RTVMM GUEST MODE
#     calls   ping, info, counters, placement, exits; pause (exits stop, state Paused, time in
#             pause grows), 409 on a second pause, resume (exits advance, time in pause kept),
#             409 on resume; 404, 405, 400 (malformed, oversized) with JSON errors; rtvmm ctl
#             text and --json, and its error for a missing socket; ctl shutdown: 204, rtvmm
#             exits 0 and removes its socket; a second VM with --serial socket=: vm.info names
#             the serial socket and `rtvmm ctl SOCKET console` shows the guest's output
#     abuse   clients that connect and never send and one that never reads, then 1,000
#             requests in a loop: every one answered 200, and vcpu0's exit count keeps
#             advancing through the flood (measured before, during and after)
# Exit 77 only when /dev/kvm is absent.
set -u
. "$(dirname "$0")/harness.sh"

rtvmm=${1:?rtvmm} guest=${2:?guest ELF} mode=${3:?mode}
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm does not exist: no KVM here"; exit 77; }
command -v curl > /dev/null || fail "curl is not installed (scripts/deps.sh test)"
command -v jq > /dev/null || fail "jq is not installed (scripts/deps.sh test)"
harness_init api
log() { echo "api: $*"; }
sock=$tmp/api.sock

box_pin 1
"${reaper[@]}" "${pin[@]}" "$rtvmm" run --kernel "$guest" --test-device --memory 64M \
	--cmdline "test=none chatter=100000000 fault=hang" --api-socket "$sock" \
	> "$tmp/guest.out" 2> "$tmp/rtvmm.log" < /dev/null &
pid=$!
pids+=("$pid")
wait_line "$tmp/rtvmm.log" "VM built in" 60 "$pid"
wait_line "$tmp/guest.out" "chatter 00000010" 60 "$pid"

# api METHOD PATH [BODY-FILE]: the HTTP status on stdout, the body in $tmp/body.
api() {
	local data=()
	[[ -n ${3:-} ]] && data=(-H 'Content-Type: application/json' --data-binary "@$3")
	curl -s -m 20 --unix-socket "$sock" -X "$1" "${data[@]}" -o "$tmp/body" -w '%{http_code}' \
		"http://localhost$2"
}

# expect STATUS METHOD PATH [BODY-FILE]: the call answers STATUS.
expect() {
	local want=$1 got
	shift
	got=$(api "$@")
	[[ $got == "$want" ]] || fail "$1 $2: HTTP $got, expected $want: $(cat "$tmp/body")"
}

# j FILTER: jq over the last body (raw strings; jq starts fast in the box, python does not).
j() {
	jq -r "$1" "$tmp/body" || fail "cannot read '$1' from: $(cat "$tmp/body")"
}

# exits: vcpu0's exit count now.
exits() {
	expect 200 GET /api/v1/vm.exits
	j '.vcpus[0].total'
}

# error_says STATUS METHOD PATH TEXT [BODY-FILE]: a JSON error whose message has TEXT.
error_says() {
	expect "$1" "$2" "$3" "${5:-}"
	[[ $(j .error) == *"$4"* ]] || fail "$2 $3: error '$(j .error)' lacks '$4'"
	log "ok: $2 $3 -> $1 {\"error\": \"$(j .error)\"}"
}

case $mode in
calls)
	[[ $(stat -c %a "$sock") == 600 ]] || fail "$sock has mode $(stat -c %a "$sock"), expected 600"
	expect 200 GET /api/v1/vmm.ping
	[[ $(j .pid) == "$pid" ]] || fail "vmm.ping says pid $(j .pid), rtvmm is $pid"
	log "ok: vmm.ping: $(cat "$tmp/body")"
	expect 200 GET /api/v1/vm.info
	[[ $(j .state) == Running ]] || fail "state $(j .state), expected Running"
	[[ $(j '"\(.vcpus) \(.config.memory.size / 1048576 | floor)"') == "1 64" ]] ||
		fail "vm.info: vcpus/memory wrong: $(cat "$tmp/body")"
	[[ $(j .config.payload.cmdline) == *chatter=* ]] || fail "vm.info: no cmdline"
	[[ $(j '[.devices.other[].name] | index("COM1") != null') == true ]] ||
		fail "vm.info: no COM1 among the devices: $(cat "$tmp/body")"
	log "ok: vm.info: Running, 1 vCPU, 64 MiB, devices $(j '[.devices.other[].name] | join(", ")')"
	expect 200 GET /api/v1/vm.counters
	log "ok: vm.counters: $(cat "$tmp/body")"
	expect 200 GET /api/v1/vm.placement
	[[ $(j '[.threads[] | select(.name == "vcpu0")] | length') == 1 ]] || fail "no vcpu0 in vm.placement"
	[[ $(j '[.threads[] | select(.name == "api")] | length') == 1 ]] || fail "no api thread in vm.placement"
	log "ok: vm.placement: $(j '[.threads[] | "\(.name) cpus \(.cpus) \(.policy) last cpu \(.last_cpu)"] | join("; ")')"
	e1=$(exits)
	sleep 1
	e2=$(exits)
	((e2 > e1)) || fail "the guest makes no progress: vcpu0 exits $e1 then $e2"
	log "ok: vm.exits: vcpu0 $e1 -> $e2 in 1 s ($(j '.vcpus[0].by_reason | tostring'))"

	expect 204 PUT /api/v1/vm.pause
	expect 200 GET /api/v1/vm.info
	[[ $(j .state) == Paused ]] || fail "state $(j .state) after vm.pause"
	sleep 0.3   # output the console had taken before the pause reaches the file
	p1=$(exits)
	lines1=$(wc -l < "$tmp/guest.out")
	sleep 1.5
	p2=$(exits)
	lines2=$(wc -l < "$tmp/guest.out")
	((p2 == p1)) || fail "vCPU exits advanced while paused: $p1 -> $p2"
	((lines2 == lines1)) || fail "the guest printed while paused: $lines1 -> $lines2 lines"
	expect 200 GET /api/v1/vm.info
	paused_ns=$(j .paused_ns)
	((paused_ns >= 1500000000)) || fail "paused_ns $paused_ns after 1.5 s paused"
	log "ok: vm.pause: Paused, vcpu0 exits stay $p1 and output stays $lines1 lines for 1.5 s, paused_ns $paused_ns"
	error_says 409 PUT /api/v1/vm.pause "Paused"

	expect 204 PUT /api/v1/vm.resume
	sleep 1
	r1=$(exits)
	((r1 > p2)) || fail "no progress after vm.resume: exits $p2 -> $r1"
	expect 200 GET /api/v1/vm.info
	[[ $(j .state) == Running ]] || fail "state $(j .state) after vm.resume"
	after=$(j .paused_ns)
	sleep 0.5
	expect 200 GET /api/v1/vm.info
	((after >= paused_ns && $(j .paused_ns) == after)) ||
		fail "paused_ns $paused_ns while paused, $after after resume, $(j .paused_ns) 0.5 s later"
	log "ok: vm.resume: Running, exits $p2 -> $r1, paused_ns stays $after once running"
	error_says 409 PUT /api/v1/vm.resume "Running"

	error_says 404 GET /api/v1/vm.nope "/api/v1/vm.nope"
	error_says 404 GET / "no such path"
	error_says 405 GET /api/v1/vm.pause "PUT"
	error_says 405 DELETE /api/v1/vm.info "GET"
	printf '{"a": ' > "$tmp/bad.json"
	error_says 400 PUT /api/v1/vm.pause "not JSON" "$tmp/bad.json"
	{ printf '['; head -c 80000 /dev/zero | tr '\0' ' '; printf ']'; } > "$tmp/big.json"
	error_says 400 PUT /api/v1/vm.pause "larger than" "$tmp/big.json"
	expect 200 GET /api/v1/vm.info
	[[ $(j .state) == Running ]] || fail "a refused request changed the state: $(j .state)"

	# rtvmm ctl: text for people, --json for scripts, a clear error without a server.
	"$rtvmm" ctl "$sock" info > "$tmp/ctl.txt" || fail "rtvmm ctl info failed"
	grep -qE '^State: +Running$' "$tmp/ctl.txt" || fail "ctl info: no 'State: Running': $(cat "$tmp/ctl.txt")"
	grep -qE '^Memory: +64 MiB$' "$tmp/ctl.txt" || fail "ctl info: no 'Memory: 64 MiB'"
	log "ok: rtvmm ctl info:"
	cat "$tmp/ctl.txt"
	"$rtvmm" ctl "$sock" info --json > "$tmp/body" || fail "ctl info --json failed"
	[[ $(j .state) == Running ]] || fail "ctl --json: not the server's JSON"
	"$rtvmm" ctl "$sock" pause > "$tmp/ctl.txt" || fail "ctl pause failed"
	grep -q "pause: the VM is Paused" "$tmp/ctl.txt" || fail "ctl pause: $(cat "$tmp/ctl.txt")"
	"$rtvmm" ctl "$sock" pause 2> "$tmp/ctl.err" && fail "a second ctl pause succeeded"
	grep -q "HTTP 409" "$tmp/ctl.err" || fail "second ctl pause: $(cat "$tmp/ctl.err")"
	"$rtvmm" ctl "$sock" resume > "$tmp/ctl.txt" || fail "ctl resume failed"
	grep -q "resume: the VM is Running" "$tmp/ctl.txt" || fail "ctl resume: $(cat "$tmp/ctl.txt")"
	log "ok: rtvmm ctl pause/resume: $(cat "$tmp/ctl.txt"); a second pause: $(cat "$tmp/ctl.err")"
	for verb in ping counters placement exits; do
		"$rtvmm" ctl "$sock" $verb > "$tmp/ctl.txt" || fail "ctl $verb failed"
		log "ok: rtvmm ctl $verb:"
		head -20 "$tmp/ctl.txt"
	done
	"$rtvmm" ctl "$tmp/none.sock" info 2> "$tmp/ctl.err" && fail "ctl on a missing socket succeeded"
	grep -q "no such socket" "$tmp/ctl.err" || fail "ctl on a missing socket: $(cat "$tmp/ctl.err")"
	log "ok: $(cat "$tmp/ctl.err")"

	"$rtvmm" ctl "$sock" shutdown > "$tmp/ctl.txt" || fail "ctl shutdown failed"
	rc=0
	for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
	wait "$pid" || rc=$?
	((rc == 0)) || fail "rtvmm exited $rc after vm.shutdown, expected 0"
	[[ ! -e $sock ]] || fail "$sock is left after rtvmm exited"
	log "ok: vm.shutdown: 204, rtvmm exited 0 and removed $sock"

	# The console verb: vm.info names the serial socket, ctl attaches to it; Ctrl-] detaches.
	"${reaper[@]}" "${pin[@]}" "$rtvmm" run --kernel "$guest" --test-device --memory 64M \
		--cmdline "test=none chatter=100000000 fault=hang" --api-socket "$sock" \
		--serial "socket=$tmp/serial.sock" > /dev/null 2> "$tmp/rtvmm2.log" < /dev/null &
	pid=$!
	pids+=("$pid")
	wait_line "$tmp/rtvmm2.log" "VM built in" 60 "$pid"
	for ((i = 0; i < 100; i++)); do [[ -S $sock ]] && break; sleep 0.1; done
	expect 200 GET /api/v1/vm.info
	[[ $(j .serial.socket) == "$tmp/serial.sock" ]] ||
		fail "vm.info: serial $(j .serial), expected $tmp/serial.sock"
	(sleep 3; printf '\035') | timeout 20 "$rtvmm" ctl "$sock" console > "$tmp/console.out" 2> "$tmp/console.err" ||
		fail "ctl console failed: $(cat "$tmp/console.err")"
	grep -q "chatter 000000" "$tmp/console.out" || fail "ctl console showed no guest output: $(head -c 300 "$tmp/console.out")"
	log "ok: ctl console: $(grep -c chatter "$tmp/console.out") guest lines through $(j .serial.socket), detached by Ctrl-]"
	expect 204 PUT /api/v1/vm.shutdown
	wait "$pid" || fail "rtvmm exited $? after vm.shutdown (second VM)"
	;;
abuse)
	# Clients that connect and never send (4), and one that sends a request and never reads.
	python3 - "$sock" > "$tmp/clients.log" 2>&1 <<-'EOF' &
		import socket, sys, time
		held = []
		for i in range(4):
		    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
		s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
		s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
		s.sendall(b"GET /api/v1/vm.placement HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
		held.append(s)
		print("holding", len(held), flush=True)
		time.sleep(20)
	EOF
	pids+=($!)
	wait_line "$tmp/clients.log" "holding 5" 30
	e0=$(exits)
	log "5 idle clients held; vcpu0 exits $e0; 1,000 requests now"
	# The flood: a fresh connection per request, each checked; vcpu0's exits sampled in between.
	python3 - "$sock" "$tmp/flood.json" <<-'EOF' || fail "the flood failed: $(cat "$tmp/flood.json" 2> /dev/null)"
		import http.client, json, socket, sys, time
		class Conn(http.client.HTTPConnection):
		    def connect(self):
		        self.sock = socket.socket(socket.AF_UNIX)
		        self.sock.settimeout(20)
		        self.sock.connect(sys.argv[1])
		def call(path):
		    c = Conn("localhost")
		    c.request("GET", path)
		    r = c.getresponse()
		    body = r.read()
		    c.close()
		    return r.status, body
		samples, bad, t0 = [], [], time.monotonic()
		for i in range(1000):
		    path = ("/api/v1/vmm.ping", "/api/v1/vm.info", "/api/v1/vm.counters")[i % 3]
		    status, body = call(path)
		    if status != 200:
		        bad.append((i, path, status, body[:200].decode()))
		    if i % 100 == 0:
		        st, b = call("/api/v1/vm.exits")
		        samples.append((round(time.monotonic() - t0, 2), json.loads(b)["vcpus"][0]["total"]))
		secs = time.monotonic() - t0
		st, b = call("/api/v1/vm.exits")
		samples.append((round(secs, 2), json.loads(b)["vcpus"][0]["total"]))
		json.dump({"seconds": secs, "bad": bad, "samples": samples}, open(sys.argv[2], "w"))
		sys.exit(1 if bad else 0)
	EOF
	python3 - "$tmp/flood.json" <<-'EOF' || fail "the vCPU stalled during the flood: $(cat "$tmp/flood.json")"
		import json, sys
		d = json.load(open(sys.argv[1]))
		s = d["samples"]
		print("api: 1000 requests answered 200 in %.1f s (%.0f/s); vcpu0 exits (s, total): %s"
		      % (d["seconds"], 1000 / d["seconds"], s))
		# Every tenth of the flood, the guest moved on.
		sys.exit(0 if all(b[1] > a[1] for a, b in zip(s, s[1:])) else 1)
	EOF
	e1=$(exits)
	((e1 > e0)) || fail "vcpu0 exits $e0 -> $e1 across the flood"
	log "ok: vcpu0 exits $e0 -> $e1 across the flood, advancing in every tenth of it"
	kill -0 "$pid" || fail "rtvmm died"
	expect 200 GET /api/v1/vmm.ping
	log "ok: still serving after the flood and the idle clients"
	expect 204 PUT /api/v1/vmm.shutdown
	rc=0
	wait "$pid" || rc=$?
	((rc == 0)) || fail "rtvmm exited $rc after vmm.shutdown"
	log "ok: vmm.shutdown: rtvmm exited 0"
	;;
*)
	fail "unknown mode $mode"
	;;
esac
