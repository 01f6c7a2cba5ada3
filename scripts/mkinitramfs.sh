#!/bin/sh
# mkinitramfs.sh - build rtvmm's small test initramfs (newc cpio) from Debian's
# busybox-static and guest/linux/init.
#
# Usage: scripts/mkinitramfs.sh [OPTIONS] OUTPUT.cpio.gz     gzip-compressed (1 MiB)
#        scripts/mkinitramfs.sh [OPTIONS] OUTPUT.cpio        uncompressed (2 MiB)
#
# Options:
#   --cyclictest      add the host's cyclictest (see below)
#   --init FILE       use FILE as /init instead of guest/linux/init (the KVM box's own init)
#   --file SRC=DEST   add the regular file SRC at DEST (parent folders made); repeatable
#   --modules TREE:M1,M2,...
#                     add kernel modules M1, M2... and every module they depend on, from TREE
#                     (an unpacked kernel package: TREE/lib/modules/VERSION/), at
#                     /lib/modules/NAME.ko, with /lib/modules/load-order listing them in the
#                     order to insmod them (both inits load them; modprobe -d resolves them)
#
# --cyclictest adds the host's rt-tests cyclictest (/usr/bin/cyclictest), the shared
# libraries ldd lists for it and the dynamic loader, at the paths ldd prints (+2.3 MiB);
# bench/linux_cyclictest.py boots it with rtvmm.test=cyclictest (guest/linux/init).
#
# Where guest kernel mode is emulated (nested PVM hosts, docs/linux-guest.md) prefer the
# uncompressed archive: the kernel's in-guest gunzip of the 1 MiB archive is the longest
# stage of the whole boot there, copying 2 MiB is not.
#
# Contents: /bin/busybox (statically linked, from the busybox-static package), a symlink
# per applet in /bin, /init (guest/linux/init), /dev/{console,null,ttyS0} device nodes and
# the empty mount points. The archive is written by a small newc writer in this script, so
# no root (mknod) is needed and the output is byte-for-byte reproducible: fixed inode
# numbers, uid/gid 0, mtime 0, sorted entries, gzip -n.
#
# busybox comes from the installed busybox-static package if present, else the package is
# fetched with "apt-get download" and unpacked into $RTVMM_CACHE/busybox-static/
# (default cache: <repo>/.cache). Override with RTVMM_BUSYBOX=/path/to/static/busybox.
set -eu

die() { echo "mkinitramfs: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${RTVMM_CACHE:-$repo/.cache}
init=$repo/guest/linux/init
. "$repo/scripts/guest-files.sh"

cyclictest=0
extra= modtree= modnames=
while [ $# -gt 0 ]; do
	case $1 in
	--cyclictest) cyclictest=1; shift ;;
	--init) [ $# -ge 2 ] || die "--init needs a FILE"; init=$2; shift 2 ;;
	--file)
		[ $# -ge 2 ] || die "--file needs SRC=DEST"
		case $2 in *=/*) ;; *) die "--file '$2': expected SRC=/DEST" ;; esac
		[ -f "${2%%=*}" ] || die "--file '$2': ${2%%=*} is not a regular file"
		extra="$extra
${2#*=/} ${2%%=*}"
		shift 2 ;;
	--modules)
		[ $# -ge 2 ] || die "--modules needs TREE:M1,M2"
		modtree=${2%%:*} modnames=$(echo "${2#*:}" | tr ',' ' ')
		[ -d "$modtree/lib/modules" ] || die "--modules '$2': no $modtree/lib/modules"
		shift 2 ;;
	*) break ;;
	esac
done
case "${1:-}" in
""|-h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ] && exit 0; exit 2 ;;
esac
out=$1
[ -f "$init" ] || die "missing $init"
case $out in
*.gz) compress="gzip -n -9"; command -v gzip >/dev/null || die "gzip not found" ;;
*) compress=cat ;;
esac

busybox=$(guest_busybox)

# --- cyclictest and its shared libraries (--cyclictest) ---------------------------------
ctfiles= adddirs=
# parents FILE: adds every folder above FILE to adddirs.
parents() {
	d=$(dirname "$1")
	while [ "$d" != / ]; do adddirs="$adddirs ${d#/}"; d=$(dirname "$d"); done
}
if [ $cyclictest = 1 ]; then
	ct=/usr/bin/cyclictest
	[ -x $ct ] || die "$ct not found (apt-get install rt-tests)"
	ctfiles=$(guest_ldd_files $ct)
	for f in $ctfiles; do parents "$f"; done
fi

# --- kernel modules (--modules) ---------------------------------------------------------
if [ -n "$modtree" ]; then
	# shellcheck disable=SC2086 # the module names are words
	modfiles=$(guest_modules "$modtree" $modnames)
	modlist=$out.modules.$$
	for m in $modfiles; do
		extra="$extra
lib/modules/$(basename "$m") $m"
		basename "$m"
	done > "$modlist"
	extra="$extra
lib/modules/load-order $modlist"
fi

# Folders above every --file destination.
for f in $(printf '%s\n' "$extra" | cut -d' ' -f1); do parents "/$f"; done
adddirs=$(printf '%s\n' $adddirs | LC_ALL=C sort -u)

# --- newc writer -----------------------------------------------------------------------
ino=1000
# hdr NAME MODE(octal) SIZE [RDEVMAJOR RDEVMINOR]
hdr() {
	ino=$((ino + 1))
	namesize=$((${#1} + 1))
	nlink=1
	case $2 in 4*) nlink=2 ;; esac
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		$ino $((0$2)) 0 0 $nlink 0 "$3" 0 0 "${4:-0}" "${5:-0}" $namesize 0
	printf '%s\000' "$1"
	pad $((110 + namesize))
}
pad() { # pad to a multiple of 4 after $1 bytes
	n=$(((4 - $1 % 4) % 4))
	[ $n -eq 0 ] || head -c $n /dev/zero
}
dir() { hdr "$1" 40755 0; }
node() { hdr "$1" "$2" 0 "$3" "$4"; }
slink() { hdr "$1" 120777 ${#2}; printf '%s' "$2"; pad ${#2}; }
file() { # file NAME MODE SRC
	size=$(wc -c < "$3")
	hdr "$1" "$2" $size
	cat "$3"
	pad $size
}

applets=$("$busybox" --list) || die "$busybox --list failed"

tmpout=$out.tmp.$$
trap 'rm -f "$tmpout" ${modlist:+"$modlist"}' EXIT
{
	for d in $(printf '%s\n' bin dev dev/pts etc proc root sbin sys tmp usr usr/bin usr/sbin $adddirs |
		LC_ALL=C sort -u); do
		dir "$d"
	done
	node dev/console 20600 5 1
	node dev/null 20666 1 3
	node dev/ttyS0 20600 4 64
	file bin/busybox 100755 "$busybox"
	for a in $(printf '%s\n' $applets | LC_ALL=C sort -u); do
		[ "$a" = busybox ] || slink "bin/$a" busybox
	done
	for f in $ctfiles; do file "${f#/}" 100755 "$(readlink -f "$f")"; done
	for e in $(printf '%s\n' "$extra" | LC_ALL=C sort | tr ' ' '='); do
		file "${e%%=*}" 100644 "$(readlink -f "${e#*=}")"
	done
	file init 100755 "$init"
	hdr TRAILER!!! 0 0
} | $compress > "$tmpout"
mv "$tmpout" "$out"
[ -z "$modtree" ] || rm -f "$modlist"
trap - EXIT
echo "$out"
