#!/usr/bin/env bash
# Every bad input gives exactly one clear error line on stderr, exit status 1, and no crash.
# Usage: bad_input.sh RTVMM GUEST_ELF cli|kvm
#   cli: what rtvmm refuses before it opens /dev/kvm (options, sizes, the KVM device itself):
#        runs anywhere.
#   kvm: what it finds once the VM exists (kernel and initrd files, limits KVM sets, permissions).
set -uo pipefail
rtvmm=$1
guest=$2
part=$3
[[ $part == cli || $part == kvm ]] || { echo "usage: $0 RTVMM GUEST_ELF cli|kvm"; exit 1; }
[[ $part == cli || -e /dev/kvm ]] || { echo "SKIP: /dev/kvm is absent"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# A file that is not a kernel at all.
head -c 8192 /dev/urandom > "$tmp/random.bin"
# A bzImage-looking header with boot protocol 2.05 (too old): boot_flag 0xAA55, "HdrS", version.
python3 - "$tmp" <<'PY'
import struct, sys
d = sys.argv[1]
img = bytearray(16384)
img[0x1f1] = 4                                  # setup_sects
img[0x200:0x202] = b'\xeb\x6a'                  # jmp over the header (its length)
struct.pack_into('<H', img, 0x1fe, 0xAA55)      # boot_flag
img[0x202:0x206] = b'HdrS'
struct.pack_into('<H', img, 0x206, 0x0205)      # protocol 2.05
open(d + '/old-protocol.bzImage', 'wb').write(img)
img2 = bytearray(img)
struct.pack_into('<H', img2, 0x206, 0x020f)     # 2.15 but no XLF_KERNEL_64
open(d + '/no64.bzImage', 'wb').write(img2)
open(d + '/truncated.bzImage', 'wb').write(img[:0x100])
PY
: > "$tmp/empty"
cp "$guest" "$tmp/unreadable.elf"
chmod 000 "$tmp/unreadable.elf"
truncate -s 80M "$tmp/huge.initrd"
chmod 755 "$tmp"
# NIC sockets: a directory anyone may write, and a socket another process listens on.
mkdir -m 0777 "$tmp/open" && chmod 0777 "$tmp/open"
mkdir -m 0700 "$tmp/sock"
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); time.sleep(600)' "$tmp/sock/live.sock" &
listener=$!
trap 'kill $listener 2> /dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [[ -S $tmp/sock/live.sock ]] && break; sleep 0.1; done
# Disk images: one sector, less than that, a qcow2 (its magic), one nobody may write.
truncate -s 1M "$tmp/disk.img"
head -c 511 /dev/zero > "$tmp/short.img"
printf 'QFI\xfb\0\0\0\3' > "$tmp/vnf.qcow2" && truncate -s 1M "$tmp/vnf.qcow2"
truncate -s 1M "$tmp/ro.img" && chmod 444 "$tmp/ro.img"

# name % regex the one stderr line must match % rtvmm arguments
kvm_cases=(
	"missing kernel%$tmp/nope.*(No such file|not found|missing)%run --kernel $tmp/nope"
	"kernel is a directory%$tmp.*([Ii]s a directory|not a regular file)%run --kernel $tmp"
	"empty kernel%empty.*(empty|too small|truncated)%run --kernel $tmp/empty"
	"not a kernel%random.bin.*(magic|not a bzImage)%run --kernel $tmp/random.bin"
	"truncated bzImage%truncated.bzImage.*(truncated|too small|magic)%run --kernel $tmp/truncated.bzImage"
	"old boot protocol%old-protocol.bzImage.*2\\.05%run --kernel $tmp/old-protocol.bzImage"
	"not 64-bit bzImage%no64.bzImage.*64%run --kernel $tmp/no64.bzImage"
	"missing initrd%$tmp/nope.img.*(No such file|not found|missing)%run --kernel $guest --initrd $tmp/nope.img"
	"initrd does not fit%huge.initrd.*(does not fit|too large)%run --kernel $guest --initrd $tmp/huge.initrd --memory 64M"
	"NIC socket in a world-writable directory%nic 'net0'.*open/n.sock.*world-writable%run --kernel $guest --net socket=$tmp/open/n.sock"
	"NIC socket another process listens on%another process listens on $tmp/sock/live.sock%run --kernel $guest --net socket=$tmp/sock/live.sock,mode=server"
)
cli_cases=(
	"memory too small%--memory '1M'.*too small%run --kernel $guest --memory 1M"
	"vcpus zero%--vcpus '0'.*1\\.\\.254%run --kernel $guest --vcpus 0"
	"vcpus above rtvmm's limit%--vcpus '100000'.*1\\.\\.254%run --kernel $guest --vcpus 100000"
	"NIC queues out of range%--net 'socket=/x,queues=99'.*vm\\.nics\\[0\\]\\.queues.*1\\.\\.16%run --kernel $guest --net socket=/x,queues=99"
	"NIC item without a value%--net 'socket=/x,fast'.*'fast'.*KEY=VALUE%run --kernel $guest --net socket=/x,fast"
	"memory unparsable%--memory 'lots'.*expected a size%run --kernel $guest --memory lots"
	"memory overflow%--memory.*too large%run --kernel $guest --memory 99999999999T"
	"vcpus not a number%--vcpus 'two'%run --kernel $guest --vcpus two"
	"shutdown grace above an hour%--shutdown-grace '3601'.*vm\\.shutdown_grace_s.*0\\.\\.3600%run --kernel $guest --shutdown-grace 3601"
	"shutdown grace not a number%--shutdown-grace 'soon'.*vm\\.shutdown_grace_s%run --kernel $guest --shutdown-grace soon"
	"on-reboot not restart or exit%--on-reboot 'destroy'.*vm\\.on_reboot.*restart, exit%run --kernel $guest --on-reboot destroy"
	"disable-exits unknown name%--disable-exits 'hlt,idle'.*vm\\.disable_exits.*'idle': expected hlt, pause, mwait or cstate%run --kernel $guest --disable-exits hlt,idle"
	"halt-poll-ns above a second%--halt-poll-ns '2000000000'.*vm\\.halt_poll_ns.*0\\.\\.1000000000%run --kernel $guest --halt-poll-ns 2000000000"
	"NIC ring size not a power of two%--net 'socket=/x,queue_size=1000'.*vm\\.nics\\[0\\]\\.queue_size.*not a power of two%run --kernel $guest --net socket=/x,queue_size=1000"
	"no /dev/kvm%$tmp/no-kvm.*no such device%run --kernel $guest --kvm $tmp/no-kvm"
	"no /dev/kvm, kvm-host%$tmp/no-kvm.*no such device%kvm-host --kvm $tmp/no-kvm"
	"not a KVM device%/dev/null.*(KVM|ioctl)%run --kernel $guest --kvm /dev/null"
	"unknown option%rtvmm run: unrecognized option .--bogus.%run --kernel $guest --bogus"
	"missing disk image%--disk 'path=$tmp/nope.img'.*vm\\.disks\\[0\\]\\.path.*No such file%run --kernel $guest --disk path=$tmp/nope.img"
	"qcow2 given as raw%--disk 'path=$tmp/vnf.qcow2'.*qcow2.*qemu-storage-daemon%run --kernel $guest --disk path=$tmp/vnf.qcow2"
	"disk image under 512 bytes%--disk 'path=$tmp/short.img'.*511 bytes.*512-byte sector%run --kernel $guest --disk path=$tmp/short.img"
	"unknown disk key%--disk 'path=$tmp/disk.img,cache=none'.*vm\\.disks\\[0\\]\\.cache: unknown key in disk%run --kernel $guest --disk path=$tmp/disk.img,cache=none"
	"disk with both path and socket%--disk.*vm\\.disks\\[0\\]\\.socket: use either 'path'.*or 'socket'%run --kernel $guest --disk path=$tmp/disk.img,socket=$tmp/sock/d.sock"
	"unknown command%unknown command 'fly'%fly"
)

check() {
	local name=$1 regex=$2 args=$3 runas=${4:-}
	local out err status lines
	out=$tmp/out err=$tmp/err
	# shellcheck disable=SC2086
	timeout 30 $runas "$rtvmm" $args > "$out" 2> "$err" < /dev/null
	status=$?
	lines=$(grep -vc '^Try ' "$err")
	if [[ $status -eq 1 ]] && [[ $lines -eq 1 ]] && grep -Eq -- "$regex" "$err"; then
		echo "ok - $name: $(grep -v '^Try ' "$err")"
		pass=$((pass + 1))
	else
		echo "not ok - $name: status $status (want 1), $lines error line(s) (want 1), want /$regex/"
		sed 's/^/    stderr: /' "$err"
		sed 's/^/    stdout: /' "$out" | head -5
		fail=$((fail + 1))
	fi
}

if [[ $part == cli ]]; then cases=("${cli_cases[@]}"); else cases=("${kvm_cases[@]}"); fi
for c in "${cases[@]}"; do
	IFS='%' read -r name regex args <<< "$c"
	check "$name" "$regex" "$args"
done

# A read-only image without readonly: as nobody when root (root writes anything).
if [[ $part == cli ]]; then
	runas=
	[[ $(id -u) -eq 0 ]] && runas="setpriv --reuid=65534 --regid=65534 --clear-groups"
	if [[ -z $runas ]] || command -v setpriv > /dev/null; then
		check "read-only image without readonly" \
			"--disk 'path=$tmp/ro.img'.*not writable here.*set readonly" \
			"run --kernel $guest --disk path=$tmp/ro.img" "$runas"
	fi
fi

# A vhost-user-blk socket nobody serves yet: not an error. One warning line, the guest runs (the
# disk appears when a backend connects).
if [[ $part == kvm ]]; then
	timeout 60 "$rtvmm" run --kernel "$guest" --test-device --memory 64M --cmdline "test=none exit=0" \
		--disk "socket=$tmp/sock/nobody.sock" > "$tmp/out" 2> "$tmp/err" < /dev/null
	status=$?
	if [[ $status -eq 0 ]] && grep -q "disk0: no vhost-user-blk backend on $tmp/sock/nobody.sock yet; the disk appears when one connects" "$tmp/err"; then
		echo "ok - vhost-user-blk socket without a backend: a warning, the guest runs"
		pass=$((pass + 1))
	else
		echo "not ok - vhost-user-blk socket without a backend: status $status (want 0), want the warning"
		sed 's/^/    stderr: /' "$tmp/err" | tail -10
		fail=$((fail + 1))
	fi
fi

# Permission errors need an unprivileged user (root bypasses mode bits): nobody.
if [[ $part == kvm && $(id -u) -eq 0 ]] && command -v setpriv > /dev/null; then
	nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	cp "$guest" "$tmp/guest.elf" && chmod 644 "$tmp/guest.elf"
	check "no permission on /dev/kvm" "/dev/kvm.*[Pp]ermission denied" "run --kernel $tmp/guest.elf" "$nobody"
	# A KVM node nobody may open, so that the kernel file is what fails.
	if mknod "$tmp/kvm" c 10 232 2> /dev/null && chmod 666 "$tmp/kvm"; then
		check "unreadable kernel" "unreadable.elf.*[Pp]ermission denied" \
			"run --kernel $tmp/unreadable.elf --kvm $tmp/kvm" "$nobody"
	fi
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
