#!/usr/bin/env bash
# Two real Linux guests (kernel virtio_net driver, busybox ping) in rtvmm, switched by
# rtvmm-dataplane over vhost-user: each pings the other.
# Usage: linux_ping.sh RTVMM DATAPLANE   (kernel and initramfs from scripts/test.sh)
set -u
rtvmm=$1 dataplane=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
[[ -x $dataplane ]] || { echo "SKIP: rtvmm-dataplane was not built (no libdpdk)"; exit 77; }
kernel=${RTVMM_TEST_KERNEL:-}
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh"; exit 1
fi
tmp=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2> /dev/null; wait 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$dataplane" run --lcores 1 --main-lcore 0 --no-huge --file-prefix "lp$$" \
	--port "vhost:$tmp/a.sock" --port "vhost:$tmp/b.sock" --fwd l2switch \
	--stats-socket "$tmp/stats.sock" > "$tmp/dp.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S $tmp/a.sock && -S $tmp/b.sock ]] && break; sleep 0.2; done

base="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=net rtvmm.linger=30"
source "$root/tests/integration/harness.sh"
box_pin 0 # the dataplane polls on cpu 1
boot() { # name socket mac ip peer
	timeout 900 "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus 1 --memory 256M \
		--net "socket=$2,mac=$3" --cmdline "$base rtvmm.ip=$4/24 rtvmm.peer=$5" \
		< /dev/null > "$tmp/$1.out" 2> "$tmp/$1.err"
}
boot a "$tmp/a.sock" 52:54:00:00:0a:01 10.77.0.1 10.77.0.2 &
pa=$!
boot b "$tmp/b.sock" 52:54:00:00:0a:02 10.77.0.2 10.77.0.1 &
pb=$!
pids+=($pa $pb)
wait $pa; sa=$?
wait $pb; sb=$?
"$dataplane" stats --socket "$tmp/stats.sock" > "$tmp/stats.txt" 2>&1

fail=0
for g in a b; do
	if grep -q "RTVMM-PING-OK" "$tmp/$g.out" && grep -q "5 packets received" "$tmp/$g.out"; then
		echo "ok - guest $g: $(grep -m1 'packets transmitted' "$tmp/$g.out")"
	else
		echo "not ok - guest $g did not get its pings answered"; fail=1
		tail -25 "$tmp/$g.out"; tail -5 "$tmp/$g.err"
	fi
done
[[ $sa -eq 0 && $sb -eq 0 ]] || { echo "not ok - exit statuses $sa $sb (want 0 0)"; fail=1; }
grep -E "RX-packets|link" "$tmp/stats.txt" | head -6
exit $fail
