#!/bin/bash
# Snapshot and restore (vmm/snapshot.c) of a running bare-metal guest, driven by `rtvmm ctl`.
# The guest (memsum=) rewrites one page of a 4 MiB buffer per round and prints the buffer's
# sum; round k's line depends on k only, and every 64 rounds the guest sums the whole buffer
# again and exits 113 if it does not match what it kept in a register.
#
#   snapshot.sh RTVMM GUEST
#     1. The source (2 vCPUs: vcpu1 waits for its SIPI) is paused at round L and snapshotted;
#        the snapshot is a directory with a manifest, a state file and a sparse memory file;
#        the source resumes and goes on (L+1, ...).
#     2. `rtvmm run --restore DIR` with the same arguments: its first line is round L+1, its
#        lines equal the source's for the same rounds, and it passes three whole-buffer checks.
#     3. A snapshot of a Running VM leaves it Running; of a Paused one, Paused.
#     4. Refused with a clear message, exit 1: a snapshot into an existing directory; restore
#        with other --vcpus or --memory, or without --test-device; a flipped byte in memory.bin
#        or state.bin; a truncated state.bin; no manifest; a manifest of format version 2.
# Exit 77 only when /dev/kvm is absent.
set -u
. "$(dirname "$0")/harness.sh"

rtvmm=${1:?rtvmm} guest=$(realpath "${2:?guest ELF}")
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm does not exist: no KVM here"; exit 77; }
command -v jq > /dev/null || fail "jq is not installed (scripts/deps.sh test)"
harness_init snapshot
log() { echo "snapshot: $*"; }
args=(--kernel "$guest" --test-device --vcpus 2 --memory 64M --cmdline "test=none memsum=100000000")

box_pin 1
# start NAME [EXTRA...]: rtvmm with the guest's lines in $tmp/NAME.out and its log in NAME.log.
start() {
	local name=$1
	shift
	"${reaper[@]}" "${pin[@]}" "$rtvmm" run "${args[@]}" --api-socket "$tmp/$name.sock" "$@" \
		> "$tmp/$name.out" 2> "$tmp/$name.log" < /dev/null &
	pid=$!
	pids+=("$pid")
}

# last NAME: the last round NAME printed whole.
last() { grep -o 'memsum [0-9]* sum [0-9a-f]\{16\}' "$tmp/$1.out" | tail -n 1 | awk '{ print $2 + 0 }'; }

# rounds FILE: the round numbers of FILE's whole lines, one per line.
rounds() { grep -o 'memsum [0-9]* sum [0-9a-f]\{16\}' "$1" | awk '{ print $2 + 0 }'; }

# line NAME K: round K's line as NAME printed it (without the prefix).
line() { grep -o "memsum $(printf %08d "$2") sum [0-9a-f]\{16\}" "$tmp/$1.out" | head -n 1; }

ctl() { "$rtvmm" ctl "$@"; }

start src
src=$pid
wait_line "$tmp/src.out" "memsum 00000010" 120 "$src"
ctl "$tmp/src.sock" pause > /dev/null || fail "pause refused"
sleep 0.5
L=$(last src)
cp "$tmp/src.out" "$tmp/at-pause.out"   # it may end in the middle of round L+1's line
ctl "$tmp/src.sock" snapshot "$tmp/snap" > "$tmp/ctl.txt" 2>&1 || fail "snapshot: $(cat "$tmp/ctl.txt")"
log "paused at round $L; $(cat "$tmp/ctl.txt")"
[[ $(ctl "$tmp/src.sock" info --json | jq -r .state) == Paused ]] || fail "a paused VM is not Paused after its snapshot"
[[ $(last src) == "$L" ]] || fail "the paused guest printed past round $L during the snapshot"
for f in manifest.json state.bin memory.bin; do
	[[ -s $tmp/snap/$f ]] || fail "the snapshot has no $f"
done
[[ $(jq -r '"\(.format) \(.version) \(.machine.vcpus) \(.machine.memory_bytes)"' "$tmp/snap/manifest.json") == \
	"rtvmm-snapshot 1 2 67108864" ]] || fail "manifest: $(cat "$tmp/snap/manifest.json")"
size=$(stat -c %s "$tmp/snap/memory.bin") used=$(( $(stat -c %b "$tmp/snap/memory.bin") * 512 ))
(( size == 64 << 20 && used < size / 2 )) || fail "memory.bin: $size bytes, $used on disk: not sparse"
log "ok: manifest, state.bin $(stat -c %s "$tmp/snap/state.bin") bytes, memory.bin $((used >> 10)) KiB on disk of $((size >> 20)) MiB"
ctl "$tmp/src.sock" resume > /dev/null || fail "resume refused"
want=$((L + 200))
wait_line "$tmp/src.out" "memsum $(printf %08d $want)" 120 "$src"
ctl "$tmp/src.sock" snapshot "$tmp/snap-running" > /dev/null || fail "snapshot of a running VM refused"
[[ $(ctl "$tmp/src.sock" info --json | jq -r .state) == Running ]] || fail "a running VM is not Running after its snapshot"
ctl "$tmp/src.sock" snapshot "$tmp/snap" > "$tmp/ctl.txt" 2>&1 && fail "a snapshot into an existing directory was taken"
grep -q "already exists" "$tmp/ctl.txt" || fail "snapshot into an existing directory: $(cat "$tmp/ctl.txt")"
log "ok: the source goes on (round $(last src)); running stays Running; an existing directory is refused"
kill -9 "$src"

# 2. Restore.
start dst --restore "$tmp/snap"
dst=$pid
wait_line "$tmp/dst.log" "restored the snapshot" 120 "$dst"
grep "restored the snapshot" "$tmp/dst.log"
wait_line "$tmp/dst.out" "memsum $(printf %08d $((L + 200)))" 120 "$dst"
# The source's output up to the pause and the restored guest's output are one stream: a line
# the pause cut is finished by the restored guest, and every round follows the one before.
cat "$tmp/at-pause.out" "$tmp/dst.out" > "$tmp/joined.out"
first=$(rounds "$tmp/joined.out" | awk -v l="$L" '$1 > l { print; exit }')
(( first == L + 1 )) || fail "after round $L the restored guest's first whole round is $first"
rounds "$tmp/joined.out" | awk 'NR > 1 && $1 != prev + 1 { bad = 1; print "round " prev " then " $1 }
	{ prev = $1 } END { exit bad }' > "$tmp/gaps.txt" || fail "rounds lost or repeated: $(head -n 3 "$tmp/gaps.txt")"
for ((k = L + 1; k <= L + 200; k += 13)); do
	[[ $(line joined $k) == "$(line src $k)" && -n $(line src $k) ]] ||
		fail "round $k: restored '$(line joined $k)', source '$(line src $k)'"
done
kill -0 "$dst" 2> /dev/null || fail "the restored guest stopped: $(tail -n 5 "$tmp/dst.out")"
ctl "$tmp/dst.sock" shutdown > /dev/null
wait "$dst"
log "ok: restored from round $first, rounds $((L + 1))..$((L + 200)) equal the source's, whole-buffer checks passed"

# 2b. The same snapshot restored under a host plan that places it otherwise: guest RAM on 2 MiB
# hugepages of node 0, prefaulted (the source had a 4 KiB memfd), vcpu0 SCHED_FIFO 10 on cpu 1
# and vcpu1 on cpu 0 (the source's threads were all SCHED_OTHER on one cpu); the placement is
# proven before the guest runs and reads back as planned; the guest goes on.
hp=/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages
if [[ -w $hp ]]; then
	old_hp=$(cat "$hp")
	echo $((old_hp + 40)) > "$hp"
	cat > "$tmp/plan.yaml" <<YAML
host:
  housekeeping_cpus: "0"
vm:
  name: restored
  kernel: $guest
  cmdline: "test=none memsum=100000000"
  api_socket: $tmp/plan.sock
  memory:
    size: 64M
    page_size: 2M
    numa_node: 0
    prefault: true
  vcpus:
    - cpus: "1"
      policy: fifo
      priority: 10
    - cpus: "0"
      policy: other
  emulator_cpus: "0"
YAML
	"${reaper[@]}" "$rtvmm" run "$tmp/plan.yaml" --test-device --restore "$tmp/snap-running" \
		> "$tmp/plan.out" 2> "$tmp/plan.log" < /dev/null &
	pid=$!
	pids+=("$pid")
	wait_line "$tmp/plan.log" "restored the snapshot" 120 "$pid"
	wait_line "$tmp/plan.out" "memsum" 120 "$pid"
	n0=$(last plan)
	wait_line "$tmp/plan.out" "memsum $(printf %08d $((n0 + 130)))" 120 "$pid"
	"$rtvmm" ctl "$tmp/plan.sock" placement --json > "$tmp/placement.json" || fail "vm.placement refused"
	[[ $(jq -r '[.threads[] | select(.name == "vcpu0" or .name == "vcpu1") | "\(.name) \(.cpus) \(.policy) \(.as_planned)"] | sort | join(", ")' \
		"$tmp/placement.json") == "vcpu0 1 fifo true, vcpu1 0 other true" ]] ||
		fail "restored under a plan, placement: $(cat "$tmp/placement.json")"
	[[ $(jq -r .memory.page_size "$tmp/placement.json") == 2097152 ]] ||
		fail "restored under a plan, guest RAM pages: $(jq -c .memory "$tmp/placement.json")"
	"$rtvmm" ctl "$tmp/plan.sock" shutdown > /dev/null
	wait "$pid"
	echo "$old_hp" > "$hp"
	log "ok: restored under a plan: 2 MiB pages, vcpu0 fifo on cpu 1, vcpu1 on cpu 0, as planned; the guest goes on (round $(last plan))"
else
	fail "cannot reserve 2 MiB hugepages ($hp not writable): the suite runs as root"
fi

# 3. Refusals: each exits 1 naming the reason.
refuse() {
	local what=$1 text=$2
	shift 2
	"$rtvmm" run "$@" > "$tmp/bad.out" 2> "$tmp/bad.log" < /dev/null
	local st=$?
	(( st == 1 )) && grep -qF -- "$text" "$tmp/bad.log" ||
		fail "$what: status $st, expected 1 with '$text': $(tail -n 3 "$tmp/bad.log")"
	log "ok: $what: $(grep -F -- "$text" "$tmp/bad.log" | head -n 1)"
}
snap=$tmp/snap-running
args1=(--kernel "$guest" --test-device --memory 64M --cmdline "test=none memsum=100000000")
refuse "other --vcpus" "had 2 vCPUs, this VM has 1" "${args1[@]}" --vcpus 1 --restore "$snap"
refuse "other --memory" "MiB of memory, this VM has 128 MiB" --kernel "$guest" --test-device \
	--vcpus 2 --memory 128M --restore "$snap"
refuse "no --test-device" "device 3 was testdev" --kernel "$guest" --vcpus 2 --memory 64M --restore "$snap"
bad=$tmp/bad-snap
cp -a "$snap" "$bad"
off=$(python3 -c '
import os, sys
f = open(sys.argv[1], "rb")
size = os.fstat(f.fileno()).st_size
off = os.lseek(f.fileno(), 0, os.SEEK_DATA)
print(off + 4096)' "$bad/memory.bin")
printf '\xa5' | dd of="$bad/memory.bin" bs=1 seek="$off" conv=notrunc status=none
refuse "a flipped byte in memory.bin" "checksum mismatch" "${args[@]}" --restore "$bad"
cp "$snap/memory.bin" "$bad/memory.bin"
printf '\xa5' | dd of="$bad/state.bin" bs=1 seek=100 conv=notrunc status=none
refuse "a flipped byte in state.bin" "checksum mismatch" "${args[@]}" --restore "$bad"
head -c 5000 "$snap/state.bin" > "$bad/state.bin"
refuse "a truncated state.bin" "state.bin" "${args[@]}" --restore "$bad"
cp "$snap/state.bin" "$bad/state.bin"
jq '.version = 2' "$snap/manifest.json" > "$bad/manifest.json"
refuse "a manifest of version 2" "format version" "${args[@]}" --restore "$bad"
rm "$bad/manifest.json"
refuse "no manifest" "not a complete snapshot" "${args[@]}" --restore "$bad"
log "PASS"
