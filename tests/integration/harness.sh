# Sourced by the shell integration tests that run DPDK peers, dataplanes and guests.

# fail MESSAGE: prints it and the tail of every log in $tmp, exits 1 (a script may define its own).
fail() {
	local f
	echo "FAIL: $*"
	for f in "$tmp"/*.log; do
		[[ -f $f ]] || continue
		echo "---- $(basename "$f") (last 40 lines)"
		tail -n 40 "$f"
	done
	exit 1
}

# box_pin CPU [WHAT]: sets pin=(taskset -c CPU) inside scripts/kvmbox and says so, else pin=():
# the prefix that keeps a monitor (or WHAT) on one box cpu there (a vCPU thread moving between
# the box's cpus now and then stalls or faults its guest: a fault of the box, README "Tests").
box_pin() {
	pin=()
	if [[ ${RTVMM_KVMBOX:-} == 1 ]]; then
		pin=(taskset -c "$1")
		echo "box: ${2:-the monitor} runs pinned to box cpu $1 (a fault of the box, not rtvmm's: README, Tests)"
	fi
}

# harness_init NAME: $tmp (a fresh scratch directory), $pfx (a DPDK --file-prefix), pids=()
# (children to kill on exit), reaper=() (a command prefix that kills a child when we die, even
# when meson kills us outright); on exit the children are killed and tmp and DPDK's runtime
# files removed. A script that tracks its children otherwise defines harness_kill first.
harness_init() {
	tmp=$(mktemp -d "/tmp/rtvmm-$1.XXXXXX")
	pfx=rtvmm-$1$$
	pids=()
	trap harness_cleanup EXIT
	trap 'exit 1' INT TERM HUP PIPE     # so that cleanup runs when meson times us out
	reaper=()
	setpriv --help 2> /dev/null | grep -q pdeathsig && reaper=(setpriv --pdeathsig KILL --)
}

harness_cleanup() {
	local p
	exec 3>&- 2> /dev/null
	declare -F harness_kill > /dev/null && harness_kill
	for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
	wait 2> /dev/null
	rm -rf "$tmp" /var/run/dpdk/"$pfx"-* 2> /dev/null
}

# wait_line FILE TEXT SECONDS [PID]: until FILE has TEXT (fixed string); fails if PID exits first.
wait_line() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qF -- "$2" "$1" 2> /dev/null && return 0
		[[ -n ${4:-} ]] && ! kill -0 "$4" 2> /dev/null && { grep -qF -- "$2" "$1" && return 0; fail "'$2' not in $(basename "$1"): the process exited"; }
		sleep 0.1
	done
	fail "'$2' not in $(basename "$1") after $3 s"
}

# checks FILE [PREV]: every stdin line "WHAT | EXPR" must hold; EXPR is python over the JSON
# document d in FILE (its "trials" as t, its "results" as r) and p in PREV. One python process
# for all of them; prints "ok: WHAT" for each.
checks() {
	local out
	out=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else None
t, r = (d.get("trials", []), d.get("results", [])) if isinstance(d, dict) else ([], [])
for line in sys.stdin:
    if "|" not in line:
        continue
    what, expr = (x.strip() for x in line.split("|", 1))
    try:
        ok = eval(expr)
    except Exception as e:
        ok, what = False, "%s (%r)" % (what, e)
    if not ok:
        print("%s: `%s` is false in %s" % (what, expr, sys.argv[1].rsplit("/", 1)[-1]))
        print(json.dumps({k: v for k, v in d.items() if k != "config"} if isinstance(d, dict) else d,
                         indent=1)[:4000])
        sys.exit(1)
    print("ok: " + what)
' "$@") || fail "$out"
	echo "$out"
}

# linux_shell_init NAME: for a test that boots the suite's Linux test kernel ($rtvmm, $root set)
# to its busybox shell: skips (77) without /dev/kvm, fails without RTVMM_TEST_KERNEL and
# RTVMM_TEST_INITRD (scripts/test.sh sets them); then harness_init NAME.
linux_shell_init() {
	[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
	kernel=${RTVMM_TEST_KERNEL:-}
	initrd=${RTVMM_TEST_INITRD:-}
	if [[ ! -f $kernel || ! -f $initrd ]]; then
		echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh"; exit 1
	fi
	harness_init "$1"
}

# linux_shell_start SECONDS ARGS...: `$rtvmm run ARGS` of that kernel with rtvmm.test=shell,
# pinned in the box, killed after SECONDS; the console's input is fd 3, its output
# $tmp/console.log, rtvmm's own $tmp/monitor.log; $pid is the monitor.
linux_shell_start() {
	local secs=$1 cmdline
	shift
	cmdline="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=shell"
	mkfifo "$tmp/in"
	box_pin 1
	timeout "$secs" "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" \
		--cmdline "$cmdline" "$@" < "$tmp/in" > "$tmp/console.log" 2> "$tmp/monitor.log" &
	pid=$!
	pids+=("$pid")
	exec 3> "$tmp/in" # keep the console's stdin open
}

# shells: how many times the guest's shell has started.
shells() { grep -c "rtvmm-init: starting a shell" "$tmp/console.log"; }

# wait_shell N [SECONDS]: until the guest's shell has started N times (300 s by default); fails
# when the monitor exits first.
wait_shell() {
	local deadline=$((SECONDS + ${2:-300}))
	until (($(shells) >= $1)); do
		kill -0 "$pid" 2> /dev/null || fail "rtvmm exited before the guest's shell $1 started"
		((SECONDS < deadline)) || fail "the guest's shell $1 did not start within ${2:-300} s"
		sleep 1
	done
}

# switched_pinger PORT...: rtvmm-dataplane (l2switch, no hugepages) with a vhost-user port
# $tmp/PORT.sock for each PORT (the first is "a"), and guest A on a.sock (10.77.0.1/24, MAC
# 52:54:00:00:0a:01) answering pings (rtvmm.test=net, lingering 900 s); pinned off the
# dataplane's poll cpu in the box. Sets $base, the Linux command line's common part. Needs
# linux_shell_init first ($rtvmm, $dataplane, $root, $kernel, $initrd).
switched_pinger() {
	local ports=() p
	for p in "$@"; do ports+=(--port "vhost:$tmp/$p.sock"); done
	"${reaper[@]}" "$dataplane" run --lcores 1 --main-lcore 0 --no-huge --file-prefix "$pfx" \
		"${ports[@]}" --fwd l2switch --stats-socket "$tmp/stats.sock" > "$tmp/dp.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do [[ -S $tmp/${!#}.sock ]] && break; sleep 0.2; done
	[[ -S $tmp/${!#}.sock ]] || fail "the dataplane made no sockets"
	box_pin 0 "guest A" # the dataplane polls on cpu 1
	base="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1"
	"${reaper[@]}" "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --memory 256M \
		--net "socket=$tmp/a.sock,mac=52:54:00:00:0a:01" \
		--cmdline "$base rtvmm.test=net rtvmm.ip=10.77.0.1/24 rtvmm.peer=10.77.0.2 rtvmm.linger=900" \
		< /dev/null > "$tmp/a.log" 2> "$tmp/a-monitor.log" &
	pids+=($!)
}
