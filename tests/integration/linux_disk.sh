#!/usr/bin/env bash
# One Linux guest (Debian's kernel, its virtio_blk driver) with three disks, one boot:
#   vda  --disk path=data.img,serial=...   a raw image rtvmm serves: the guest reads its pattern
#        and writes; the host finds the guest's bytes in the file afterwards
#   vdb  --disk path=ro.img,readonly=on    read-only: the guest reads it, its write is refused,
#        the file is unchanged
#   vdc  --disk socket=qsd.sock            a qcow2 exported by qemu-storage-daemon
#        (--export type=vhost-user-blk): the guest reads its pattern and writes; qemu-img finds
#        the guest's bytes in the qcow2 afterwards
# Usage: linux_disk.sh RTVMM   (kernel and initramfs from scripts/test.sh)
set -u
rtvmm=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }
qsd=$(command -v qemu-storage-daemon) && qemu_img=$(command -v qemu-img) ||
	{ echo "SKIP: qemu-storage-daemon or qemu-img is not installed (qemu-system-common, qemu-utils)"; exit 77; }
kernel=${RTVMM_TEST_KERNEL:-}
initrd=${RTVMM_TEST_INITRD:-}
if [[ ! -f $kernel || ! -f $initrd ]]; then
	echo "FAIL: no guest kernel/initramfs: run the suite through scripts/test.sh"; exit 1
fi
tmp=$(mktemp -d)
chmod 700 "$tmp"
qsd_pid=
cleanup() { [[ -n $qsd_pid ]] && kill "$qsd_pid" 2> /dev/null; wait 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# Each image starts with a line of its own, then zeros.
mark=$$-$RANDOM
image() { # file size first-line
	printf '%s\n' "$3" > "$1" && truncate -s "$2" "$1"
}
image "$tmp/data.img" 8M "RTVMM-DATA-$mark"
image "$tmp/ro.img" 4M "RTVMM-RO-$mark"
image "$tmp/q.raw" 16M "RTVMM-QCOW2-$mark"
"$qemu_img" convert -f raw -O qcow2 "$tmp/q.raw" "$tmp/q.qcow2" || { echo "FAIL: qemu-img convert"; exit 1; }
ro_sum=$(md5sum < "$tmp/ro.img")

"$qsd" --blockdev "driver=file,filename=$tmp/q.qcow2,node-name=file0" \
	--blockdev driver=qcow2,file=file0,node-name=qcow0 \
	--export "type=vhost-user-blk,id=exp0,node-name=qcow0,addr.type=unix,addr.path=$tmp/qsd.sock,writable=on" \
	> "$tmp/qsd.log" 2>&1 &
qsd_pid=$!
for _ in $(seq 100); do [[ -S $tmp/qsd.sock ]] && break; sleep 0.1; done
[[ -S $tmp/qsd.sock ]] || { echo "FAIL: qemu-storage-daemon did not create its socket"; cat "$tmp/qsd.log"; exit 1; }

cmdline="console=ttyS0 $("$root/guest/linux/cmdline.sh" "$rtvmm") panic=-1 rtvmm.test=disk"
source "$root/tests/integration/harness.sh"
box_pin 1
timeout 900 "${pin[@]}" "$rtvmm" run --kernel "$kernel" --initrd "$initrd" --vcpus 1 --memory 256M \
	--disk "path=$tmp/data.img,serial=RTVMM-DATA-1" --disk "path=$tmp/ro.img,readonly=on" \
	--disk "socket=$tmp/qsd.sock" --cmdline "$cmdline" < /dev/null > "$tmp/out" 2> "$tmp/err"
status=$?
kill "$qsd_pid" && wait "$qsd_pid"
qsd_pid=

fail=0
ok() { echo "ok - $1"; }
bad() { echo "not ok - $1"; fail=1; }
line() { grep -m1 "^RTVMM-DISK $1 " "$tmp/out" | tr -d '\r'; }
wrote() { grep -m1 "^RTVMM-DISK-WRITE $1 " "$tmp/out" | tr -d '\r' | cut -d' ' -f3; }
# The guest's write landed at byte 4096 of the raw image FILE.
at_4096() { dd if="$1" bs=512 skip=8 count=1 2> /dev/null | head -n 1 | tr -d '\0'; }

[[ $status -eq 0 ]] && ok "guest powered off (status 0)" || bad "rtvmm exit status $status (want 0)"
grep -q "^RTVMM-DISK-DONE disks=3" "$tmp/out" && ok "the guest found 3 virtio-blk disks" ||
	bad "the guest did not find 3 disks: $(grep -m1 RTVMM-DISK-DONE "$tmp/out")"

l=$(line vda)
if [[ $l == "RTVMM-DISK vda sectors=16384 ro=0 serial=RTVMM-DATA-1 head=RTVMM-DATA-$mark" ]]; then
	ok "vda (raw image): 8 MiB, writable, serial and pattern read by the guest"
else
	bad "vda: '$l'"
fi
[[ $(wrote vda) == ok && $(at_4096 "$tmp/data.img") == "RTVMM-WROTE vda" ]] &&
	ok "vda: the guest's write is in the image file" ||
	bad "vda: guest write '$(wrote vda)', file at 4096: '$(at_4096 "$tmp/data.img")'"

l=$(line vdb)
if [[ $l == "RTVMM-DISK vdb sectors=8192 ro=1 serial=disk1 head=RTVMM-RO-$mark" ]]; then
	ok "vdb (readonly=on): read-only in the guest, serial defaults to the name, pattern read"
else
	bad "vdb: '$l'"
fi
[[ $(wrote vdb) == failed && $(md5sum < "$tmp/ro.img") == "$ro_sum" ]] &&
	ok "vdb: the guest's write is refused, the image is unchanged" ||
	bad "vdb: guest write '$(wrote vdb)' (want failed), image changed: $([[ $(md5sum < "$tmp/ro.img") == "$ro_sum" ]] && echo no || echo yes)"

l=$(line vdc)
if [[ $l == "RTVMM-DISK vdc sectors=32768 ro=0 serial="*" head=RTVMM-QCOW2-$mark" ]]; then
	ok "vdc (qcow2 through qemu-storage-daemon): 16 MiB, pattern read by the guest"
else
	bad "vdc: '$l'"
fi
"$qemu_img" convert -f qcow2 -O raw "$tmp/q.qcow2" "$tmp/q.back"
[[ $(wrote vdc) == ok && $(at_4096 "$tmp/q.back") == "RTVMM-WROTE vdc" ]] &&
	ok "vdc: the guest's write is in the qcow2 (qemu-img)" ||
	bad "vdc: guest write '$(wrote vdc)', qcow2 at 4096: '$(at_4096 "$tmp/q.back")'"

if [[ $fail -ne 0 ]]; then
	echo "---- guest console (last 40 lines)"; tail -40 "$tmp/out"
	echo "---- rtvmm stderr (last 30 lines)"; tail -30 "$tmp/err"
	echo "---- qemu-storage-daemon"; tail -10 "$tmp/qsd.log"
else
	grep -E "disk[0-9]" "$tmp/err" | sed 's/^/    /'
fi
exit $fail
