#!/bin/sh
# mkrootfs.sh - build rtvmm's root disk: a raw ext4 image made with "mke2fs -d" from a busybox
# tree (no root, no loop mount), booted with root=/dev/vda by the initramfs of
# scripts/mkinitramfs.sh (guest/linux/init).
#
# Usage: scripts/mkrootfs.sh [--vnf] [--fio] [--kernel-tree TREE] OUTPUT.img
#        scripts/mkrootfs.sh [--vnf] [--fio] [--kernel-tree TREE] --cached
#
#   --vnf               add the reference VNF: Debian's dpdk-testpmd (the installed dpdk
#                       package), the shared libraries ldd lists for it, the DPDK plugins it
#                       needs to drive a virtio-net PCI function (librte_net_virtio,
#                       librte_mempool_ring, librte_bus_pci, and what they link), and the
#                       guest kernel's uio and uio_pci_generic modules (loaded at boot by
#                       /sbin/init), coreutils' stdbuf and libgcc_s; guest/linux/init's rtvmm.test=vnf
#                       runs it
#   --fio               add Debian's fio (the installed fio package) and the shared libraries
#                       ldd lists for it; guest/linux/init's rtvmm.test=fio runs it
#                       (bench/disk.py)
#   --kernel-tree TREE  the unpacked kernel package whose modules the guest runs (default:
#                       scripts/fetch-kernel.sh --print-dir, Debian's stock kernel)
#   --cached            build into $RTVMM_CACHE/rootfs[-vnf][-fio]-<key>.img unless it exists (the key
#                       hashes the options and every input file); prints the path and removes
#                       the images of earlier keys
#
# Contents: /bin/busybox (busybox-static, found as scripts/mkinitramfs.sh does) and a symlink
# per applet, /sbin/init (guest/linux/init), /etc/rtvmm-rootfs ("id=<key>", "vnf=0|1": only
# the disk has it, and the init prints it in its RTVMM-ROOTFS-OK line), empty /dev /proc /sys
# /tmp /run (the init mounts them; /var/run is /run), and /lib and /lib64 as symlinks to usr/
# when the host's are (Debian 12), so that library paths from ldd hold in the guest. The image
# is sized to its contents plus 50 % and 16 MiB (a sparse file); every file is owned by root
# (under fakeroot when not run as root).
set -eu

die() { echo "mkrootfs: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${RTVMM_CACHE:-$repo/.cache}
init=$repo/guest/linux/init
. "$repo/scripts/guest-files.sh"

vnf=0 fio=0 tree= out= cached=0
while [ $# -gt 0 ]; do
	case $1 in
	--vnf) vnf=1; shift ;;
	--fio) fio=1; shift ;;
	--kernel-tree) [ $# -ge 2 ] || die "--kernel-tree needs a TREE"; tree=$2; shift 2 ;;
	--cached) cached=1; shift ;;
	-h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option '$1' (try --help)" ;;
	*) [ -z "$out" ] || die "more than one OUTPUT ('$out', '$1')"; out=$1; shift ;;
	esac
done
[ $cached = 1 ] || [ -n "$out" ] || { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $cached = 0 ] || [ -z "$out" ] || die "--cached and OUTPUT '$out' exclude each other"
PATH=$PATH:/sbin:/usr/sbin
command -v mke2fs > /dev/null || die "mke2fs not found (apt-get install e2fsprogs)"
[ -f "$init" ] || die "missing $init"

busybox=$(guest_busybox)

# --- what goes in: host path of every file (the VNF's), kernel modules ------------------------
files= modfiles=
if [ $vnf = 1 ]; then
	testpmd=/usr/bin/dpdk-testpmd
	[ -x $testpmd ] || die "$testpmd not found (apt-get install dpdk)"
	# The EAL loads every plugin (*.so.ABI) of its plugin directory; the directory is where
	# Debian's librte_eal says, e.g. /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0.
	eal=$(ldd $testpmd | sed -n 's|.*librte_eal.so[^ ]* => \(/[^ ]*\) .*|\1|p')
	[ -n "$eal" ] || die "ldd $testpmd lists no librte_eal"
	pmddir=$(strings "$eal" | grep -m1 '^/.*/dpdk/pmds-[0-9.]*$') ||
		die "no plugin directory (.../dpdk/pmds-N) named in $eal"
	plugins=
	for p in librte_net_virtio librte_mempool_ring librte_bus_pci; do
		f=$(ls "$pmddir/$p.so."*.* 2> /dev/null | head -n1)
		[ -n "$f" ] || die "no $p in $pmddir (apt-get install dpdk)"
		plugins="$plugins $f"
	done
	# testpmd's output goes to a file the init reads while it runs: line-buffered by coreutils'
	# stdbuf (an LD_PRELOAD of its libstdbuf.so, at the path stdbuf was built with).
	stdbuf=$(command -v stdbuf) || die "stdbuf not found (coreutils)"
	libstdbuf=$(dpkg -L coreutils 2> /dev/null | grep -m1 '/libstdbuf\.so$') || die "coreutils' libstdbuf.so not found"
	# glibc opens libgcc_s for pthread_cancel (the EAL cancels its threads at exit); ldd
	# does not list it.
	libgcc=$(dpkg -L libgcc-s1 2> /dev/null | grep -m1 '/libgcc_s\.so\.1$') || die "libgcc_s.so.1 not found (libgcc-s1)"
	# shellcheck disable=SC2086 # paths without blanks
	files=$(guest_ldd_files $testpmd $plugins "$stdbuf" "$libstdbuf" "$libgcc")
	[ -n "$tree" ] || tree=$("$repo/scripts/fetch-kernel.sh" --print-dir) ||
		die "no guest kernel tree (scripts/fetch-kernel.sh --print-dir failed); give --kernel-tree"
	modfiles=$(guest_modules "$tree" uio uio_pci_generic)
fi
if [ $fio = 1 ]; then
	[ -x /usr/bin/fio ] || die "/usr/bin/fio not found (apt-get install fio)"
	fiofiles=$(guest_ldd_files /usr/bin/fio)
	# shellcheck disable=SC2086 # paths without blanks
	files=$(printf '%s\n' $files $fiofiles | LC_ALL=C sort -u)
fi

# --- the key: the options and the content of every input ----------------------------------
key=$(
	echo "vnf=$vnf"
	[ $fio = 0 ] || echo "fio=1"
	# shellcheck disable=SC2086 # paths without blanks
	sha256sum "$0" "$repo/scripts/guest-files.sh" "$init" "$busybox" $files $modfiles |
		sed 's/ .*//'
	printf '%s\n' $files $modfiles
) || die "cannot hash the inputs"
key=$(printf '%s\n' "$key" | sha256sum | cut -c1-16)
stem=rootfs
[ $vnf = 0 ] || stem=$stem-vnf
[ $fio = 0 ] || stem=$stem-fio
if [ $cached = 1 ]; then
	mkdir -p "$cache"
	out=$cache/$stem-$key.img
	if [ -f "$out" ]; then echo "$out"; exit 0; fi
fi

# --- the tree --------------------------------------------------------------------------------
stage=$(mktemp -d "$(dirname "$out")/.rootfs.XXXXXX") || die "cannot make a folder next to $out"
trap 'rm -rf "$stage" "$out.tmp.$$"' EXIT
chmod 755 "$stage"
# Debian 12 merged /lib into /usr/lib: paths through either must name the same file.
for l in lib lib64; do
	if [ -L /$l ]; then
		mkdir -p "$stage/$(readlink /$l)"
		ln -s "$(readlink /$l)" "$stage/$l"
	fi
done
for d in bin dev etc lib/modules mnt proc root run sbin sys tmp usr/bin usr/lib usr/sbin var; do
	mkdir -p "$stage/$d"
done
chmod 1777 "$stage/tmp"
chmod 700 "$stage/root"
ln -s ../run "$stage/var/run"
cp "$busybox" "$stage/bin/busybox"
for a in $("$busybox" --list); do
	[ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
done
cp "$init" "$stage/sbin/init"
chmod 755 "$stage/sbin/init" "$stage/bin/busybox"
printf 'id=%s\nvnf=%s\n' "$key" "$vnf" > "$stage/etc/rtvmm-rootfs"

# put PATH: PATH on the host into the tree, through its symlinks (each kept as a symlink, so
# that a library has one inode under all its names, as the loader and the EAL expect).
put() {
	p=$1 n=0
	while [ -L "$p" ]; do
		mkdir -p "$stage$(dirname "$p")"
		[ -e "$stage$p" ] || [ -L "$stage$p" ] || ln -s "$(readlink "$p")" "$stage$p"
		case $(readlink "$p") in
		/*) p=$(readlink "$p") ;;
		*) p=$(dirname "$p")/$(readlink "$p") ;;
		esac
		n=$((n + 1))
		[ $n -lt 10 ] || die "$1: too many symlinks"
	done
	mkdir -p "$stage$(dirname "$p")"
	[ -e "$stage$p" ] || cp "$p" "$stage$p"
}
for f in $files; do put "$f"; done
for m in $modfiles; do
	cp "$m" "$stage/lib/modules/"
	basename "$m"
done > "$stage/lib/modules/load-order.tmp"
if [ -s "$stage/lib/modules/load-order.tmp" ]; then
	mv "$stage/lib/modules/load-order.tmp" "$stage/lib/modules/load-order"
else
	rm -f "$stage/lib/modules/load-order.tmp"
fi

# --- the image ---------------------------------------------------------------------------------
used_kib=$(du -sk "$stage" | cut -f1)
size_mib=$(( (used_kib * 3 / 2) / 1024 + 16 ))
uuid=$(printf '%s' "$key" | sed 's/^\(........\)\(....\)\(....\)$/\1-\2-\3-0000-000000000000/')
rm -f "$out.tmp.$$"
truncate -s "${size_mib}M" "$out.tmp.$$"
mkfs="mke2fs -q -F -t ext4 -L rtvmm-root -U $uuid -m 0 -E root_owner=0:0 -d $stage $out.tmp.$$"
if [ "$(id -u)" = 0 ]; then
	$mkfs > /dev/null || die "mke2fs failed"
else
	command -v fakeroot > /dev/null || die "not root and no fakeroot (apt-get install fakeroot)"
	fakeroot sh -c "chown -R 0:0 '$stage' && $mkfs > /dev/null" || die "mke2fs (under fakeroot) failed"
fi
mv "$out.tmp.$$" "$out"
if [ $cached = 1 ]; then
	for old in "$cache/$stem"-*.img; do
		case ${old##*/} in
		"$stem-$key.img") ;;
		"$stem"-????????????????.img) rm -f "$old" ;;
		esac
	done
fi
echo "mkrootfs: $out: ${size_mib} MiB ext4, $((used_kib / 1024)) MiB of files, id $key" >&2
echo "$out"
