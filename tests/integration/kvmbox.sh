#!/usr/bin/env bash
# scripts/kvmbox itself: one command runs on a standard KVM host and comes back as it ended.
#   1. exit status, stdout and stderr apart, RTVMM_* passed in, same working directory,
#      the checkout writable at its own path, /tmp private to the box, /dev/kvm a standard KVM
#      (rtvmm kvm-host names kvm_amd) that can run a VM;
#   2. --timeout stops a command that runs too long: exit 124, the reason, no QEMU left behind.
# Usage: kvmbox.sh RTVMM
# Exit 77 (skip) only when qemu-system-x86_64 is not installed.
set -uo pipefail
rtvmm=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v qemu-system-x86_64 > /dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
tmp=$(mktemp -d "$root/build-kvmbox-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fails=$((fails + 1)); }

# ---- 1.
mark=$RANDOM$RANDOM
echo "outside-$mark" > /tmp/kvmbox-test-$mark
cd "$tmp"
RTVMM_TEST_MARK=$mark "$root/scripts/kvmbox" --timeout 300 bash -c '
	echo "mark=$RTVMM_TEST_MARK box=$RTVMM_KVMBOX pwd=$PWD"
	echo "to stderr" >&2
	echo "written inside" > inside.txt
	[ -e /tmp/kvmbox-test-$RTVMM_TEST_MARK ] && echo "tmp shared" || echo "tmp private"
	"$0" kvm-host
	exit 7' "$rtvmm" > "$tmp/out" 2> "$tmp/err"
rc=$?
rm -f /tmp/kvmbox-test-$mark
[[ $rc == 7 ]] && ok "exit status 7 came back" || bad "exit status $rc, want 7"
grep -qx "mark=$mark box=1 pwd=$tmp" "$tmp/out" && ok "RTVMM_* passed in, RTVMM_KVMBOX=1, same directory" ||
	bad "stdout lacks 'mark=$mark box=1 pwd=$tmp'"
grep -qx "to stderr" "$tmp/err" && ! grep -q "to stderr" "$tmp/out" && ok "stderr apart from stdout" ||
	bad "stderr line not on stderr alone"
[[ $(cat "$tmp/inside.txt" 2> /dev/null) == "written inside" ]] && ok "the checkout is writable at its own path" ||
	bad "inside.txt not written through"
grep -qx "tmp private" "$tmp/out" && ok "/tmp is the box's own" || bad "/tmp is shared with the host"
grep -qE "^kvm_amd /dev/kvm api 12 max_vcpus [0-9]+$" "$tmp/out" && ok "rtvmm kvm-host inside: kvm_amd" ||
	bad "rtvmm kvm-host inside did not name kvm_amd"
grep -q "kvmbox: /dev/kvm ready (kvm_amd)" "$tmp/err" && ok "progress: /dev/kvm ready" || bad "no progress line"

# ---- 2. (this box's own QEMU, found as the script's child: another box may start meanwhile)
start=$SECONDS
"$root/scripts/kvmbox" --timeout 5 sleep 600 > "$tmp/out2" 2> "$tmp/err2" &
box=$!
qemu=
while kill -0 "$box" 2> /dev/null; do
	[[ -z $qemu ]] && qemu=$(pgrep -P "$box" -f qemu-system)
	sleep 0.2
done
wait "$box"
rc=$?
[[ $rc == 124 ]] && ok "--timeout 5: exit 124 after $((SECONDS - start)) s" || bad "--timeout 5: exit $rc, want 124"
grep -q "timed out: the command did not finish within 5 s; QEMU stopped" "$tmp/err2" &&
	ok "the reason is given" || bad "no timeout reason"
if [[ -z $qemu ]]; then
	bad "never saw the box's QEMU"
elif kill -0 "$qemu" 2> /dev/null; then
	bad "QEMU still running: pid $qemu"
else
	ok "no QEMU left behind (pid $qemu)"
fi

cat "$tmp/err" "$tmp/err2" | sed 's/^/    /'
echo "$fails failed"
[[ $fails == 0 ]]
