#!/usr/bin/env bash
# Boots the bare-metal guest from a host-plan file and proves the plan was applied: thread
# placement and policy read back from the kernel (the vCPUs, the monitor, a disk's I/O thread),
# guest RAM on 2M hugepages on node 0; then
# the refusals: hugepages short, a broken plan file. Reserves hugepages and restores them.
# Usage: plan_run.sh RTVMM GUEST_ELF
set -uo pipefail
rtvmm=$1
guest=$(realpath "$2")
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
[[ $(nproc) -ge 2 ]] || { echo "SKIP: needs 2 cpus, this host has $(nproc)"; exit 77; }
hp=/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages
[[ -w $hp ]] || { echo "SKIP: cannot reserve 2M hugepages ($hp not writable: not root?)"; exit 77; }

tmp=$(mktemp -d)
old=$(cat "$hp")
restore() { echo "$old" > "$hp"; rm -rf "$tmp"; }
trap restore EXIT
echo $((old + 32)) > "$hp"
if [[ $(cat /sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages) -lt 32 ]]; then
	echo "SKIP: could not reserve 32 free 2M hugepages on node 0"; exit 77
fi

pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
bad() { echo "not ok - $1"; fail=$((fail + 1)); sed 's/^/    /' "$tmp/err" | tail -30; }

truncate -s 1M "$tmp/disk.img"
cat > "$tmp/vm.yaml" <<YAML
host:
  housekeeping_cpus: "0"
vm:
  name: it
  kernel: $guest
  cmdline: "cpus=2"
  memory:
    size: 64M
    page_size: 2M
    numa_node: 0
    strict: true
    prefault: true
    mlock: true
  vcpus:
    - cpus: "1"
      policy: fifo
      priority: 10
    - cpus: "0"
      policy: other
  emulator_cpus: "0"
  disks:
    - path: $tmp/disk.img
      io:
        cpus: "0"
        policy: rr
        priority: 5
YAML

timeout 60 "$rtvmm" run "$tmp/vm.yaml" --test-device > "$tmp/out" 2> "$tmp/err" < /dev/null
status=$?
if [[ $status -eq 0 ]] && grep -q "rtvmm-guest: all tests passed" "$tmp/out"; then
	ok "guest boots from the plan and passes its checks"
else
	bad "guest boots from the plan (status $status)"
fi
# Table rows: thread tid cpus policy prio last_cpu node
row() { awk -v t="$1" '$1 == t { print $3, $4, $5; exit }' "$tmp/err"; }
[[ $(row vcpu0) == "1 fifo 10" ]] && ok "vcpu0 read back: cpu 1, fifo 10" || bad "vcpu0 read back '$(row vcpu0)', want '1 fifo 10'"
[[ $(row vcpu1) == "0 other 0" ]] && ok "vcpu1 read back: cpu 0, other" || bad "vcpu1 read back '$(row vcpu1)', want '0 other 0'"
[[ $(row rtvmm) == "0 other 0" ]] && ok "main (emulator) thread read back: cpu 0" || bad "main thread read back '$(row rtvmm)', want '0 other 0'"
[[ $(row io-disk0) == "0 rr 5" ]] && ok "disk0's I/O thread read back: cpu 0, rr 5" || bad "io-disk0 read back '$(row io-disk0)', want '0 rr 5'"
if grep -Eq "rtvmm: memory 64 MiB: .*2 MiB pages, node 0: 32 pages$" "$tmp/err"; then
	ok "guest RAM: 32 x 2 MiB pages, all on node 0 (move_pages)"
else
	bad "guest RAM placement line: $(grep 'rtvmm: memory' "$tmp/err")"
fi

# Not enough hugepages: refused before anything starts, naming node, size, needed and free.
sed -e 's/size: 64M/size: 4G/' -e 's/numa_node: 0/numa_node: 0\n    fallback_4k: false/' "$tmp/vm.yaml" > "$tmp/big.yaml"
timeout 60 "$rtvmm" run "$tmp/big.yaml" --test-device > "$tmp/out" 2> "$tmp/err" < /dev/null
status=$?
if [[ $status -eq 1 ]] && grep -Eq "node 0.*needs 2048 2M pages, [0-9]+ free" "$tmp/err" &&
	! grep -q "rtvmm-guest" "$tmp/out" && ! grep -q "VM built" "$tmp/err"; then
	ok "hugepages short: refused before start ($(grep -m1 -o 'needs 2048 2M pages[^[]*' "$tmp/err"))"
else
	bad "hugepages short (status $status, want 1)"
fi

# A broken plan file: file, line and key named; nothing started.
printf 'vm:\n  name: x\n  kernel: %s\n  memory: 64M\n  vcpus: 1\n  colour: blue\n' "$guest" > "$tmp/bad.yaml"
timeout 60 "$rtvmm" run "$tmp/bad.yaml" --test-device > "$tmp/out" 2> "$tmp/err" < /dev/null
status=$?
if [[ $status -eq 1 ]] && grep -Eq "bad.yaml:6: .*colour" "$tmp/err" && [[ ! -s $tmp/out ]]; then
	ok "unknown key: $(head -1 "$tmp/err")"
else
	bad "unknown key (status $status)"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
