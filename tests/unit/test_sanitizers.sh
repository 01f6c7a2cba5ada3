#!/usr/bin/env bash
# A sanitizer report fails a test of the ASan/UBSan build: with the environment `meson test`
# gives (the test setup in meson.build), a program this script starts, as the integration
# harnesses start rtvmm, exits non-zero on signed overflow (UBSan) and on a leak (LSan), with
# the report on stderr.
set -uo pipefail
trap_prog=$1
err=$(mktemp)
trap 'rm -f "$err"' EXIT
status=0

# expect WHAT REPORT: `trap_prog WHAT` fails and its stderr has REPORT.
expect() {
	local rc=0
	"$trap_prog" "$1" > /dev/null 2> "$err" || rc=$?
	if [[ $rc == 0 ]]; then
		echo "FAIL: '$1' exited 0 (UBSAN_OPTIONS='${UBSAN_OPTIONS:-}' ASAN_OPTIONS='${ASAN_OPTIONS:-}')"
		sed 's/^/    stderr: /' "$err"
		status=1
	elif ! grep -q -- "$2" "$err"; then
		echo "FAIL: '$1' exited $rc without '$2' on stderr"
		sed 's/^/    stderr: /' "$err"
		status=1
	else
		echo "ok: '$1' exits $rc with '$2'"
	fi
}

expect overflow "runtime error: signed integer overflow"
expect leak "ERROR: LeakSanitizer: detected memory leaks"
exit $status
