#!/bin/bash
# Runs meson tests one at a time inside scripts/kvmbox, each in its own `meson test` with its own
# log (BUILD/meson-logs/LOGBASE-N.json): meson writes its JSON log only when it exits, so a box
# whose kernel dies mid-run keeps the result of every test that finished before (scripts/test.sh
# reruns the rest in a new box). Time limits are tripled: the box is a slow host (TCG).
#
# Usage: scripts/box-suite.sh BUILD LOGBASE TEST...   exit 0 when every test passed, else 1
set -u
[[ $# -ge 3 ]] || { echo "usage: $0 BUILD LOGBASE TEST..." >&2; exit 2; }
build=$1 base=$2
shift 2
status=0 n=0
for t; do
	n=$((n + 1))
	meson test -C "$build" --no-rebuild --print-errorlogs --num-processes 1 \
		--timeout-multiplier 3 --logbase "$base-$n" "$t" || status=1
	sync
done
exit $status
