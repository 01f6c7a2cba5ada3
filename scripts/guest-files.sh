# guest-files.sh - shell shared by the guest image builders (scripts/mkinitramfs.sh,
# scripts/mkrootfs.sh), sourced, not run. The caller defines die() and sets $cache
# ($RTVMM_CACHE or <repo>/.cache).
#
#   guest_busybox             path of a statically linked busybox (see below)
#   guest_ldd_files PROG...   PROG and every shared library ldd lists for it (the dynamic
#                             loader included), one path a line, sorted, each checked to exist
#   guest_modules TREE M...   kernel modules M... and what they depend on (soft dependencies
#                             too), from TREE (an unpacked kernel package with
#                             TREE/lib/modules/VERSION/), one path a line in insmod order
#
# busybox comes from RTVMM_BUSYBOX if set, else the installed busybox-static package, else the
# package is fetched with "apt-get download" and unpacked into $cache/busybox-static/.

guest_busybox() {
	_bb=
	if [ -n "${RTVMM_BUSYBOX:-}" ]; then
		[ -x "$RTVMM_BUSYBOX" ] || die "RTVMM_BUSYBOX=$RTVMM_BUSYBOX is not executable"
		_bb=$RTVMM_BUSYBOX
	# Debian's "busybox" package also ships /bin/busybox, but dynamically linked: only
	# trust it when the static package owns it.
	elif dpkg-query -S /bin/busybox 2>/dev/null | grep -q '^busybox-static:'; then
		_bb=/bin/busybox
	else
		_bdir=$cache/busybox-static
		if [ ! -x "$_bdir/bin/busybox" ]; then
			command -v apt-get >/dev/null || die "no busybox-static and no apt-get; set RTVMM_BUSYBOX"
			mkdir -p "$cache"
			_tmp=$(mktemp -d "$cache/.busybox.XXXXXX")
			chmod 755 "$_tmp"
			echo "downloading busybox-static" >&2
			(cd "$_tmp" && apt-get download -q busybox-static >&2) ||
				{ rm -rf "$_tmp"; die "apt-get download busybox-static failed"; }
			mkdir "$_tmp/root"
			dpkg -x "$_tmp"/busybox-static_*.deb "$_tmp/root" ||
				{ rm -rf "$_tmp"; die "dpkg -x failed"; }
			rm -rf "$_bdir"
			mv "$_tmp/root" "$_bdir"
			rm -rf "$_tmp"
		fi
		_bb=$_bdir/bin/busybox
	fi
	# A dynamically linked busybox would die in the guest with a confusing "not found".
	if head -c 4096 "$_bb" | grep -q 'ld-linux'; then
		die "$_bb is dynamically linked; need busybox-static"
	fi
	echo "$_bb"
}

# ldd names each library by the path the loader will open (e.g. /lib/x86_64-linux-gnu/
# libc.so.6, /lib64/ld-linux-x86-64.so.2); an image holds the resolved file there.
guest_ldd_files() {
	_all=
	for _p in "$@"; do
		[ -e "$_p" ] || die "$_p not found"
		_libs=$(ldd "$_p" | sed -n 's|.*[ \t]\(/[^ ]*\) (0x.*|\1|p') || die "ldd $_p failed"
		[ -n "$_libs" ] || die "ldd lists no libraries for $_p"
		for _l in $_libs; do
			[ -e "$_l" ] || die "$_l (needed by $_p) not found"
		done
		_all="$_all $_p $_libs"
	done
	printf '%s\n' $_all | LC_ALL=C sort -u
}

# modprobe --show-depends prints "insmod PATH" lines in load order, dependencies first.
guest_modules() {
	_tree=$1
	shift
	PATH=$PATH:/sbin:/usr/sbin
	command -v modprobe > /dev/null || die "modprobe not found (apt-get install kmod)"
	[ -d "$_tree/lib/modules" ] || die "no $_tree/lib/modules"
	_kver=$(ls "$_tree/lib/modules" | head -n1)
	[ -f "$_tree/lib/modules/$_kver/modules.dep" ] || depmod -b "$_tree" "$_kver" ||
		die "depmod -b $_tree $_kver failed"
	_ins=$(for _m in "$@"; do
		modprobe -d "$_tree" -S "$_kver" --show-depends "$_m" || exit 1
	done) || die "modprobe cannot resolve '$*' in $_tree"
	printf '%s\n' "$_ins" | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}
