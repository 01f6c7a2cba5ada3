#!/usr/bin/env bash
# Runs rtvmm's libFuzzer targets (fuzz/) for longer than the test suite does, one after the
# other, niced, and keeps what they find across runs in .cache/fuzz/:
#   corpus/TARGET/     the growing corpus (seeded from fuzz/corpus/TARGET/ on the first run)
#   findings/TARGET-*  inputs that crashed, leaked, timed out or broke a target's check
#   logs/TARGET.log    the fuzzer's output
# and ends with one line per target: executions, executions per second, corpus, findings.
# A finding reproduces with: build-fuzz/fuzz/fuzz_TARGET .cache/fuzz/findings/TARGET-...
#
# Usage: scripts/fuzz.sh [TARGET|all] [SECONDS]   (default: all, 300 seconds each)
# Targets: plan vhost_user pci legacy virtqueue boot. Environment: RTVMM_FUZZ_BUILD (default
# build-fuzz: a clang build with -Dfuzz=true, set up here when missing), RTVMM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(plan vhost_user pci legacy virtqueue boot)
want=${1:-all} seconds=${2:-300}
build=${RTVMM_FUZZ_BUILD:-build-fuzz}
cache=${RTVMM_CACHE:-$PWD/.cache}/fuzz

if [[ $want != all ]]; then
	[[ " ${targets[*]} " == *" $want "* ]] ||
		{ echo "fuzz.sh: unknown target '$want' (one of: ${targets[*]}, all)" >&2; exit 2; }
	targets=("$want")
fi
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] ||
	{ echo "fuzz.sh: SECONDS must be a positive number, not '$seconds'" >&2; exit 2; }

[[ -d $build ]] || CC=clang meson setup "$build" -Dfuzz=true > /dev/null
nice ninja -C "$build" > /dev/null

status=0
summary=()
for t in "${targets[@]}"; do
	corpus=$cache/corpus/$t findings=$cache/findings logs=$cache/logs
	mkdir -p "$corpus" "$findings" "$logs"
	before=$(find "$findings" -name "$t-*" | wc -l)
	echo "== fuzz_$t: $seconds s, corpus $corpus"
	rc=0
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		nice "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$findings/$t-" "$corpus" "fuzz/corpus/$t" > "$logs/$t.log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log")
	new=$(( $(find "$findings" -name "$t-*" | wc -l) - before ))
	line="$t: ${execs:-?} execs, ${rate:-?} execs/s, corpus $(ls "$corpus" | wc -l) inputs, $new new finding(s)"
	if [[ $rc != 0 ]]; then
		line+=" (exit $rc: see $logs/$t.log)"
		status=1
	fi
	summary+=("$line")
done
echo "== summary (findings in $cache/findings)"
printf '%s\n' "${summary[@]}"
exit $status
