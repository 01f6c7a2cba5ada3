#!/bin/bash
# Boots a guest under rtvmm and checks how it ends.
#
#   run_guest.sh RTVMM KERNEL [options] [-- more rtvmm run arguments]
#     --vcpus N --memory SIZE --cmdline STR   passed to `rtvmm run`
#     --test-device       passed to `rtvmm run`: the bare-metal guest's exit status and putc
#     --status N          expected exit status of rtvmm (default 0)
#     --nonzero           expect any non-zero exit status instead
#     --stdout TEXT       TEXT (fixed string) must appear in rtvmm's stdout
#     --output-re RE      extended regex RE must match stdout or stderr
#     --absent TEXT       TEXT must not appear in stdout or stderr
#     --timeout SECONDS   kill rtvmm and fail after this long (default 120)
#
# Exit 0 on success, 1 on failure (printing rtvmm's output), 77 (skip) only
# when /dev/kvm does not exist.
set -u

usage() { echo "usage: $0 RTVMM KERNEL [--vcpus N] [--memory SIZE] [--cmdline STR] [--test-device] [--status N|--nonzero] [--stdout TEXT]... [--output-re RE]... [--absent TEXT]... [--timeout S] [-- ARGS]" >&2; exit 1; }

[ $# -ge 2 ] || usage
rtvmm=$1 kernel=$2
shift 2
vcpus= memory= cmdline= have_cmdline=0 status=0 nonzero=0 timeout=120 test_device=0
stdout_markers=() output_res=() absent=() extra=()
while [ $# -gt 0 ]; do
	case $1 in
	--vcpus) vcpus=$2; shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--cmdline) cmdline=$2; have_cmdline=1; shift 2 ;;
	--test-device) test_device=1; shift ;;
	--status) status=$2; shift 2 ;;
	--nonzero) nonzero=1; shift ;;
	--stdout) stdout_markers+=("$2"); shift 2 ;;
	--output-re) output_res+=("$2"); shift 2 ;;
	--absent) absent+=("$2"); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--) shift; extra=("$@"); break ;;
	*) usage ;;
	esac
done

if [ ! -e /dev/kvm ]; then
	echo "SKIP: /dev/kvm does not exist on this machine: no KVM, cannot boot a guest"
	exit 77
fi

args=(run --kernel "$kernel")
[ -n "$vcpus" ] && args+=(--vcpus "$vcpus")
[ -n "$memory" ] && args+=(--memory "$memory")
[ "$have_cmdline" = 1 ] && args+=(--cmdline "$cmdline")
[ "$test_device" = 1 ] && args+=(--test-device)
args+=("${extra[@]}")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# In the KVM box only, rtvmm runs pinned to one box cpu, and says so: a vCPU thread free to move
# between the box's cpus now and then faults or stalls the nested guest there (README: Tests).
pin=()
if [ "${RTVMM_KVMBOX:-}" = 1 ]; then
	pin=(taskset -c 1)
	echo "box: rtvmm pinned to box cpu 1 (a fault of the box, not rtvmm's: README, Tests)"
fi

start=$(date +%s.%N)
timeout --kill-after=5 "$timeout" "${pin[@]}" "$rtvmm" "${args[@]}" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')

printf 'command:'; printf ' %q' "$rtvmm" "${args[@]}"; echo
echo "exit status $rc after ${elapsed} s"

failures=()
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	failures+=("timed out after ${timeout} s (exit $rc)")
elif [ $nonzero = 1 ]; then
	[ $rc -ne 0 ] || failures+=("exit status 0, expected non-zero")
else
	[ $rc -eq "$status" ] || failures+=("exit status $rc, expected $status")
fi
for m in "${stdout_markers[@]}"; do
	grep -qF -- "$m" "$tmp/out" || failures+=("stdout lacks: $m")
done
for re in "${output_res[@]}"; do
	cat "$tmp/out" "$tmp/err" | grep -qE -- "$re" || failures+=("output matches no: $re")
done
for m in "${absent[@]}"; do
	! cat "$tmp/out" "$tmp/err" | grep -qF -- "$m" || failures+=("output has: $m")
done

if [ ${#failures[@]} -eq 0 ]; then
	echo "PASS"
	echo "--- stdout"; cat "$tmp/out"
	exit 0
fi
for f in "${failures[@]}"; do echo "FAIL: $f"; done
echo "--- stdout ($(wc -l <"$tmp/out") lines)"; cat "$tmp/out"
echo "--- stderr ($(wc -l <"$tmp/err") lines)"; cat "$tmp/err"
exit 1
