#!/bin/bash
# Runs the tests scripts/box_tests.py prepared in DIR, inside scripts/kvmbox, one at a time in
# their order: each leaves DIR/N.out (its output) and then DIR/N.done ("STATUS SECONDS"), synced,
# so a box whose kernel dies mid-run keeps every finished result (scripts/test.sh reruns the
# rest in a new box). No meson here: under TCG its start-up costs about 7 s per test.
#
# Usage: scripts/box-suite.sh DIR   exit 0 when every test passed or skipped, else 1
set -u
[[ $# -eq 1 && -f $1/list ]] || { echo "usage: $0 DIR (made by scripts/box_tests.py prepare)" >&2; exit 2; }
dir=$1
mapfile -t names < <(sed 's/.*"name": "\([^"]*\)".*/\1/' "$dir/list")
total=${#names[@]} status=0
for ((n = 1; n <= total; n++)); do
	[[ -f $dir/$n.done ]] && continue
	t0=$EPOCHREALTIME
	bash "$dir/$n.sh" > "$dir/$n.out" 2>&1 < /dev/null
	rc=$?
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	sync "$dir/$n.out"
	echo "$rc $secs" > "$dir/$n.done"
	sync "$dir/$n.done"
	case $rc in
	0) res=OK ;;
	77) res=SKIP ;;
	124 | 137) res=TIMEOUT status=1 ;;
	*) res=FAIL status=1 ;;
	esac
	printf '%d/%d %-90s %-7s %8ss\n' "$n" "$total" "${names[n - 1]}" "$res" "$secs"
	if [[ $res == FAIL || $res == TIMEOUT ]]; then
		echo "---- ${names[n - 1]}: exit status $rc; the end of its output:"
		tail -n 60 "$dir/$n.out"
		echo "----"
	fi
done
exit $status
