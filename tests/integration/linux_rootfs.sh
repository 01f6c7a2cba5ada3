#!/usr/bin/env bash
# Debian's stock kernel booting from the project's root disk (scripts/mkrootfs.sh), and DPDK
# testpmd in that guest as the VNF behind rtvmm-dataplane.
#
# Usage: linux_rootfs.sh MONITOR MODE RTVMM_DATAPLANE|none [RTVMM]
#   MONITOR rtvmm: RTVMM run --disk path=IMG,readonly=on (needs /dev/kvm);
#           qemu: qemu-system-x86_64 -drive if=virtio (KVM when /dev/kvm is usable, else TCG)
#   MODE boot:   the initramfs loads virtio_blk and ext4, mounts root=/dev/vda read-only and
#                switch_roots: the disk's own init reports the disk's id (RTVMM-ROOTFS-OK, a
#                file only the image has), the root device and mount, then powers off;
#        qcow2:  as boot, the same root disk converted to qcow2 (qemu-img) and served read-only
#                by qemu-storage-daemon over vhost-user-blk (rtvmm only: --disk socket=,readonly=on);
#        noroot: root=/dev/vdb (no such disk): the initramfs says so (RTVMM-ROOT-FAIL) and the
#                kernel panics instead of running the initramfs's own mode;
#        vnf:    the --vnf disk: rtvmm.test=vnf binds the virtio-net function to uio_pci_generic
#                and runs dpdk-testpmd (macswap) on it; rtvmm-dataplane cross-connects that NIC
#                with a port where `rtvmm-dataplane gen` sends 64 B frames at a fixed low rate
#                once testpmd forwards. Frames offered = frames returned, and every hop counts
#                the same frames: generator -> dataplane port 0 -> port 1 -> testpmd RX ->
#                testpmd TX -> port 1 -> port 0 -> generator; a difference is reported as
#                drops on the hop that lost them.
# Kernel: $RTVMM_TEST_STOCK_KERNEL or scripts/fetch-kernel.sh; initramfs: $RTVMM_TEST_INITRD
# (scripts/test.sh builds it with virtio_blk and ext4) or one built here; root disks:
# $RTVMM_TEST_ROOTFS / $RTVMM_TEST_ROOTFS_VNF or scripts/mkrootfs.sh [--vnf] --cached.
# Exit 77 (skip) when a peer is missing: /dev/kvm for rtvmm, qemu-system-x86_64, and for vnf
# rtvmm-dataplane (libdpdk at configure time) and dpdk-testpmd (the dpdk package).
set -uo pipefail
mon=${1:?usage: linux_rootfs.sh rtvmm|qemu boot|noroot|vnf RTVMM_DATAPLANE|none [RTVMM]}
mode=${2:?mode: boot, qcow2, noroot or vnf}
dp=${3:?RTVMM_DATAPLANE or none}
rtvmm=${4:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }

case $mon in
rtvmm)
	[[ -e /dev/kvm ]] || skip "/dev/kvm is absent"
	[[ -x $rtvmm ]] || { echo "FAIL: no rtvmm program given"; exit 1; } ;;
qemu) command -v qemu-system-x86_64 > /dev/null || skip "qemu-system-x86_64 not found" ;;
*) echo "FAIL: unknown monitor '$mon'"; exit 2 ;;
esac
if [[ $mode == qcow2 ]]; then
	[[ $mon == rtvmm ]] || { echo "FAIL: mode qcow2 is rtvmm's (vhost-user-blk)"; exit 2; }
	for p in qemu-img qemu-storage-daemon; do
		command -v $p > /dev/null || skip "$p not found (Debian packages qemu-utils, qemu-system-common)"
	done
fi
if [[ $mode == vnf ]]; then
	[[ $dp != none ]] || skip "rtvmm-dataplane was not built (libdpdk-dev missing at configure time)"
	command -v dpdk-testpmd > /dev/null || skip "dpdk-testpmd not found (Debian package dpdk)"
fi

source "$(dirname "$0")/harness.sh"
harness_init rootfs
mac=52:54:00:00:00:01

kernel=${RTVMM_TEST_STOCK_KERNEL:-}
[[ -n $kernel ]] || kernel=$("$root/scripts/fetch-kernel.sh") || fail "no Debian kernel (scripts/fetch-kernel.sh)"
tree=$(dirname "$(dirname "$kernel")")
[[ -d $tree/lib/modules ]] || fail "$kernel is not in an unpacked kernel package (no $tree/lib/modules)"
initrd=${RTVMM_TEST_INITRD:-}
if [[ -z $initrd ]]; then
	initrd=$("$root/scripts/mkinitramfs.sh" --modules "$tree:virtio_pci,virtio_net,virtio_blk,ext4" \
		"$tmp/initramfs.cpio") || fail "mkinitramfs.sh failed"
fi
if [[ $mode == vnf ]]; then
	img=${RTVMM_TEST_ROOTFS_VNF:-}
	[[ -n $img ]] || img=$("$root/scripts/mkrootfs.sh" --vnf --kernel-tree "$tree" --cached) || fail "mkrootfs.sh --vnf failed"
else
	img=${RTVMM_TEST_ROOTFS:-}
	[[ -n $img ]] || img=$("$root/scripts/mkrootfs.sh" --cached) || fail "mkrootfs.sh failed"
fi
id=$(PATH=$PATH:/sbin:/usr/sbin debugfs -R "cat /etc/rtvmm-rootfs" "$img" 2> /dev/null | sed -n 's/^id=//p')
[[ -n $id ]] || fail "$img has no /etc/rtvmm-rootfs id (not made by scripts/mkrootfs.sh?)"
echo "kernel $kernel, initramfs $initrd, root disk $img (id $id, $(($(stat -c %s "$img") >> 20)) MiB)"

# The guest's console: its input through fd 3, its output in $tmp/vm.log.
vm_start() {   # vm_start CMDLINE [NIC_SOCKET]
	local cmdline=$1 sock=${2:-} argv
	if [[ $mon == rtvmm ]]; then
		cmdline="$cmdline $("$root/guest/linux/cmdline.sh" "$rtvmm")"
		argv=("$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus 2 --memory 1G
			--cmdline "$cmdline" --disk "$root_disk")
		[[ -n $sock ]] && argv+=(--net "socket=$sock,mac=$mac")
	else
		argv=(qemu-system-x86_64 -m 1G -smp 2 -nographic -no-reboot -kernel "$kernel" -initrd "$initrd"
			-append "$cmdline" -drive "file=$img,if=virtio,format=raw,readonly=on")
		if [[ -w /dev/kvm ]]; then argv+=(-accel kvm -cpu host); else argv+=(-accel tcg -cpu max); fi
		# vectors=0 (INTx): QEMU 7.2 under TCG dereferences NULL in msix_set_vector_notifiers
		# when a vhost-user device starts with MSI-X (vhost_net_start, no KVM irqfds).
		[[ -n $sock ]] && argv+=(-object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem
			-chardev "socket,id=c0,path=$sock" -netdev vhost-user,id=n0,chardev=c0
			-device "virtio-net-pci,netdev=n0,mac=$mac,disable-legacy=on,romfile=,vectors=0")
	fi
	echo "guest: ${argv[*]}"
	mkfifo "$tmp/con.in"
	exec 3<> "$tmp/con.in"
	"${reaper[@]}" "${pin[@]}" "${argv[@]}" < "$tmp/con.in" > "$tmp/vm.log" 2>&1 &
	vm_pid=$!
	pids+=("$vm_pid")
	boot_t0=$SECONDS
}

# vm_wait TEXT SECONDS: until the console shows TEXT; fails on a failure marker or exit first.
vm_wait() {
	local i
	for ((i = 0; i < $2; i++)); do
		grep -qF -- "$1" "$tmp/vm.log" && return 0
		[[ $mode != noroot ]] && grep -qE "RTVMM-VNF-FAIL|RTVMM-ROOT-FAIL|Kernel panic" "$tmp/vm.log" &&
			fail "the guest failed before '$1': $(grep -m1 -E "RTVMM-VNF-FAIL|RTVMM-ROOT-FAIL|Kernel panic" "$tmp/vm.log")"
		kill -0 "$vm_pid" 2> /dev/null || { grep -qF -- "$1" "$tmp/vm.log" && return 0; fail "the monitor exited before '$1'"; }
		sleep 1
	done
	fail "no '$1' on the guest's console after $2 s"
}

vm_end() {   # vm_end: waits for the monitor to exit (the guest powers off)
	local i
	for ((i = 0; i < 120; i++)); do
		kill -0 "$vm_pid" 2> /dev/null || break
		sleep 1
	done
	kill -0 "$vm_pid" 2> /dev/null && fail "the monitor still runs 120 s after the guest's last step"
	wait "$vm_pid"
	vm_status=$?
}

base="console=ttyS0 panic=-1 root=/dev/vda"
root_disk="path=$img,readonly=on"
if [[ $mode == qcow2 ]]; then
	# The root disk as a qcow2, exported read-only: the guest gets VIRTIO_BLK_F_RO from the backend.
	qemu-img convert -f raw -O qcow2 "$img" "$tmp/root.qcow2" || fail "qemu-img convert"
	box_pin 0 qemu-storage-daemon # the other box cpu than the monitor's
	"${reaper[@]}" "${pin[@]}" qemu-storage-daemon \
		--blockdev "driver=file,filename=$tmp/root.qcow2,node-name=f,read-only=on" \
		--blockdev driver=qcow2,file=f,node-name=q,read-only=on \
		--export "type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path=$tmp/qsd.sock,writable=off" \
		> "$tmp/qsd.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [[ -S $tmp/qsd.sock ]] && break; sleep 0.1; done
	[[ -S $tmp/qsd.sock ]] || fail "qemu-storage-daemon did not create its socket"
	root_disk="socket=$tmp/qsd.sock,readonly=on"
fi
if [[ $mode == vnf ]]; then box_pin 0; else box_pin 1; fi # vnf: the dataplane polls on cpu 1
case $mode in
boot | qcow2)
	vm_start "$base rootfstype=ext4 rtvmm.test=poweroff"
	vm_wait "RTVMM-INIT-OK" 300
	vm_end
	echo "booted to the disk's init in $((SECONDS - boot_t0)) s (monitor $mon$([[ $mon == qemu && ! -w /dev/kvm ]] && echo ", TCG"))"
	grep -E "RTVMM|rtvmm-init: root" "$tmp/vm.log"
	grep -q "rtvmm-init: root=/dev/vda mounted (ext4, ro)" "$tmp/vm.log" || fail "the initramfs did not say it mounted /dev/vda"
	grep -q "RTVMM-ROOTFS-OK id=$id vnf=0 root=/dev/vda fstype=ext4 mount=ro" "$tmp/vm.log" ||
		fail "the init that ran is not the disk's (no 'RTVMM-ROOTFS-OK id=$id ... root=/dev/vda fstype=ext4 mount=ro')"
	[[ $(grep -c "RTVMM-INIT-OK" "$tmp/vm.log") == 1 ]] || fail "RTVMM-INIT-OK more than once: the initramfs ran its own mode too"
	grep -q "RTVMM-INIT-OK nproc=2 .* test=poweroff" "$tmp/vm.log" || fail "no init marker from the disk"
	grep -q "Power down" "$tmp/vm.log" || fail "the guest did not power off"
	if [[ $mon == rtvmm ]]; then [[ $vm_status == 0 ]] || fail "rtvmm exited $vm_status"; fi
	if [[ $mode == qcow2 ]]; then
		grep -q "backend connects 1," "$tmp/vm.log" ||
			fail "rtvmm's stop report shows no vhost-user-blk backend connect"
		echo "ok: the root disk came from the qcow2 through qemu-storage-daemon:" \
			"$(grep -m1 "backend connects" "$tmp/vm.log")"
	fi
	;;
noroot)
	vm_start "console=ttyS0 panic=-1 root=/dev/vdb rtvmm.test=poweroff"
	vm_wait "RTVMM-ROOT-FAIL root=/dev/vdb: no such block device" 300
	vm_wait "Attempted to kill init" 60
	grep -q "RTVMM-INIT-OK" "$tmp/vm.log" && fail "an init ran its mode although the root device is missing"
	grep -m1 "RTVMM-ROOT-FAIL" "$tmp/vm.log"
	;;
vnf)
	read -r c0 c1 < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')
	"${reaper[@]}" "$dp" run --no-huge --lcores "$c1" --main-lcore "$c0" --file-prefix "$pfx-dp" \
		--stats-socket "$tmp/stats.sock" --eal '--log-level=lib.vhost.config:warning' --fwd xconnect \
		--port "vhost:$tmp/gen.sock" --port "vhost:$tmp/vm.sock" > "$tmp/dataplane.log" 2>&1 &
	dp_pid=$!
	pids+=("$dp_pid")
	wait_line "$tmp/dataplane.log" "rtvmm-dataplane: ready" 30 "$dp_pid"
	vm_start "$base rtvmm.test=vnf rtvmm.vnf.fwd=macswap rtvmm.vnf.hugepages=128" "$tmp/vm.sock"
	vm_wait "RTVMM-VNF-READY" 1500
	echo "testpmd forwards $((SECONDS - boot_t0)) s after the monitor started: $(grep -m1 RTVMM-VNF-READY "$tmp/vm.log")"
	grep -q "RTVMM-ROOTFS-OK id=$id vnf=1" "$tmp/vm.log" || fail "the VNF does not run from the disk $img"
	# 200 frames/s for 5 s: what a guest whose cpus are emulated forwards without loss.
	"${reaper[@]}" "$dp" gen --port "virtio_user:$tmp/gen.sock" --lcore "$c0" --no-huge --file-prefix "$pfx-gen" \
		--eal '--log-level=lib.vhost.config:warning' --dst-mac "$mac" --sizes 64 --no-max --search none \
		--rates 200 --trial-s 5 --warmup-s 0 --drain-ms 5000 --link-timeout 60 \
		--json "$tmp/gen.json" > "$tmp/gen.log" 2>&1
	gen_rc=$?
	# A generator that stopped (no answer to its probes) still wrote its counts: the hops below
	# say where the frames went.
	[[ -f $tmp/gen.json ]] || fail "the generator failed (status $gen_rc) without a result"
	grep -E "gen: (trial|the peer|no link)" "$tmp/gen.log" | sed 's/^rtvmm-dataplane: //'
	echo stop >&3
	vm_wait "RTVMM-VNF-STATS" 300
	stats=$(grep -m1 "RTVMM-VNF-STATS" "$tmp/vm.log" | tr -d '\r')
	echo "$stats"
	eval "$(echo "$stats" | grep -o '[a-z_]*=[0-9]*' | sed 's/^/tp_/')"
	"$dp" stats --socket "$tmp/stats.sock" --json > "$tmp/dp.json" || fail "rtvmm-dataplane stats failed"
	kill -INT "$dp_pid"
	wait "$dp_pid" || fail "rtvmm-dataplane exited with status $? after SIGINT"
	python3 - "$tmp/gen.json" "$tmp/dp.json" "$tp_rx" "$tp_tx" "$tp_rx_dropped" "$tp_tx_dropped" "$tp_status" << 'EOF' || fail "the VNF's counts or exit status (above)"
import json, sys
g, d = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
if g.get("error"):
    print("the generator stopped: %s" % g["error"])
tp_rx, tp_tx, tp_rxd, tp_txd, tp_status = (int(x) for x in sys.argv[3:8])
t = [x for x in g["trials"] if x["kind"] == "rate"]
p0, p1 = d["ports"]
offered = sum(x["offered"] for x in t)
sent = sum(x["sent"] for x in t)
back = sum(x["received"] for x in t)
late = sum(x["late"] + x["foreign"] for x in t)
probes = g.get("probes", 0)
print("generator: %d probes, then offered %d, sent %d, received %d (+%d late probes)" % (probes, offered, sent, back, late))
print("dataplane port 0 (generator): RX %d TX %d TX-dropped %d; port 1 (guest): RX %d TX %d TX-dropped %d"
      % (p0["RX-packets"], p0["TX-packets"], p0["TX-dropped"], p1["RX-packets"], p1["TX-packets"], p1["TX-dropped"]))
print("testpmd in the guest: RX %d RX-dropped %d TX %d TX-dropped %d, exit status %d" % (tp_rx, tp_rxd, tp_tx, tp_txd, tp_status))
hops = [
    ("the generator's port took every frame it offered (refused: the dataplane's ring was full)", offered, sent),
    # (the generator reports its probes only once one was answered)
    ("dataplane port 0 received every frame the generator sent (probes included)", probes + sent,
     p0["RX-packets"] if "probes" in g else probes + sent),
    ("dataplane port 1 sent the guest every frame port 0 received (TX-dropped: the guest's rx ring was full)",
     p0["RX-packets"], p1["TX-packets"]),
    ("testpmd received every frame the dataplane put on the guest's rx ring", p1["TX-packets"], tp_rx),
    ("testpmd sent every frame it received (RX-dropped %d, TX-dropped %d in testpmd)" % (tp_rxd, tp_txd), tp_rx, tp_tx),
    ("dataplane port 1 received every frame testpmd sent", tp_tx, p1["RX-packets"]),
    ("dataplane port 0 sent the generator every frame port 1 received (TX-dropped: the generator's ring was full)",
     p1["RX-packets"], p0["TX-packets"]),
]
bad = 0
for what, a, b in hops:
    print("%s: %s (%d -> %d%s)" % ("ok" if a == b else "LOST", what, a, b, "" if a == b else ", %d dropped there" % (a - b)))
    bad += a != b
answered = p0["TX-packets"] - back - late
ok = 1 <= answered <= probes or (g.get("error") and answered == 0)
print("%s: the generator got back the trial's frames, late probes and the answered probe(s) (%d of %d probes)"
      % ("ok" if ok else "LOST", answered, probes))
bad += not ok
ok = back == offered and offered > 0 and sum(x["lost"] for x in t) == 0
print("%s: frames offered = frames returned (%d = %d)" % ("ok" if ok else "FAIL", offered, back))
bad += not ok
ok = tp_status == 0
print("%s: testpmd exited with status %d" % ("ok" if ok else "FAIL", tp_status))
sys.exit(1 if bad + (not ok) else 0)
EOF
	vm_end
	;;
*) echo "FAIL: unknown mode '$mode'"; exit 2 ;;
esac
echo "PASS: $mon $mode"
exit 0
