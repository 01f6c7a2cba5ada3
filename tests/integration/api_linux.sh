#!/usr/bin/env bash
# The control API with a Linux guest: boots the test kernel to its busybox shell, starts a loop
# printing TICK-N every 0.2 s, then `rtvmm ctl`: info (Running), pause (no TICK for 2 s, state
# Paused), resume (TICKs again, time paused reported), counters and exits answered, and
# shutdown (rtvmm exits 0).
# Usage: api_linux.sh RTVMM   (kernel and initramfs from scripts/test.sh, see linux_boot.sh)
set -u
rtvmm=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/integration/harness.sh"
linux_shell_init api-linux
sock=$tmp/api.sock
ticks() { grep -c '^TICK-' "$tmp/console.log"; }

linux_shell_start 420 --vcpus 1 --memory 256M --api-socket "$sock"
wait_shell 1
"$rtvmm" ctl "$sock" info > "$tmp/info" || fail "ctl info: $(cat "$tmp/info")"
grep -qE '^State: +Running$' "$tmp/info" || fail "ctl info: $(cat "$tmp/info")"
sleep 3
printf 'i=0; while :; do i=$((i+1)); echo TICK-$i; sleep 0.2; done &\n' >&3
for _ in $(seq 60); do (($(ticks) >= 5)) && break; sleep 1; done
(($(ticks) >= 5)) || fail "the guest's loop printed no TICK lines"

"$rtvmm" ctl "$sock" pause || fail "ctl pause"
sleep 1
n1=$(ticks)
sleep 2
n2=$(ticks)
((n1 == n2)) || fail "TICK lines went on while paused: $n1 -> $n2"
"$rtvmm" ctl "$sock" info > "$tmp/info"
grep -qE '^State: +Paused$' "$tmp/info" || fail "not Paused: $(cat "$tmp/info")"
echo "ok: paused: $n1 TICK lines, still $n2 two seconds later; $(grep 'Time paused' "$tmp/info")"
"$rtvmm" ctl "$sock" resume > "$tmp/resume" || fail "ctl resume"
for _ in $(seq 30); do (($(ticks) > n2 + 3)) && break; sleep 1; done
n3=$(ticks)
((n3 > n2 + 3)) || fail "no TICK lines after resume: $n2 -> $n3"
paused=$(sed -n 's/.*time paused in all \([0-9.]*\) s.*/\1/p' "$tmp/resume")
awk -v p="$paused" 'BEGIN { exit !(p >= 3) }' || fail "time paused '$paused' s after 3 s paused: $(cat "$tmp/resume")"
echo "ok: resumed: TICK $n2 -> $n3; $(cat "$tmp/resume")"
"$rtvmm" ctl "$sock" counters > "$tmp/counters" || fail "ctl counters"
"$rtvmm" ctl "$sock" exits > "$tmp/exits" || fail "ctl exits"
grep -q "vcpu0 (tid" "$tmp/exits" || fail "ctl exits: $(cat "$tmp/exits")"
echo "ok: counters:"; cat "$tmp/counters"
echo "ok: exits: $(cat "$tmp/exits")"
"$rtvmm" ctl "$sock" shutdown || fail "ctl shutdown"
wait $pid
status=$?
exec 3>&-
((status == 0)) || fail "rtvmm exited $status after vm.shutdown"
[[ ! -e $sock ]] || fail "the API socket is left"
echo "PASS: a Linux guest paused (no output), resumed (output again, time paused $paused s), shut down by the API (exit 0)"
