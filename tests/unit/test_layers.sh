#!/usr/bin/env bash
# scripts/layers.py: the tree as it is passes; an upward include and an include loop, each put
# into a copy of the tree, fail with the file, line and layers named.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
check=$src/scripts/layers.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$(python3 "$check" --root "$src" 2>&1) || fail "the tree breaks its layers: $out"
echo "ok: the tree's includes only point down"

copy() {   # a fresh copy of the layer folders in $tmp/t
	rm -rf "$tmp/t" && mkdir "$tmp/t"
	for d in base vmm rt numa config app dataplane; do cp -r "$src/$d" "$tmp/t/"; done
}

copy
printf '#include "config/plan.h"\n' >> "$tmp/t/vmm/bus.c"
line=$(wc -l < "$tmp/t/vmm/bus.c")
out=$(python3 "$check" --root "$tmp/t" 2>&1) && fail "an include from the machine up into the plan passed"
grep -qF "vmm/bus.c:$line: includes \"config/plan.h\": machine (vmm/) may not include plan (config/)" <<< "$out" ||
	fail "the upward include was not named: $out"
echo "ok: an upward include fails: $(head -n 1 <<< "$out")"

copy
printf '#include "numa/mem.h"\n' >> "$tmp/t/rt/rt.c"
out=$(python3 "$check" --root "$tmp/t" 2>&1) || fail "rt/ including numa/ (one layer) was refused: $out"
printf '#include "rt/rt.h"\n' >> "$tmp/t/numa/mem.h"
out=$(python3 "$check" --root "$tmp/t" 2>&1) && fail "an include loop passed"
grep -qE "loop: (rt/rt -> numa/mem -> rt/rt|numa/mem -> rt/rt -> numa/mem)" <<< "$out" ||
	fail "the loop was not named: $out"
echo "ok: an include loop fails: $(head -n 1 <<< "$out")"
