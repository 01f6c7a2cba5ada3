#!/bin/sh
# build-kernel.sh - build rtvmm's small guest kernel from Debian's linux-source package.
#
# Usage: scripts/build-kernel.sh [--jobs N] [--print-dir] [--rebuild | --cached]
#
# Takes the kernel source tarball of Debian's "linux-source-X.Y" package (the installed
# one in /usr/src, else fetched with "apt-get download" and unpacked, no root needed),
# configures it with "make tinyconfig" + guest/linux/rtvmm-guest.config (merge_config.sh,
# then olddefconfig; fails if an option of the fragment did not stick) and runs
# "make -jN bzImage" out of tree. Results are cached in
#   $RTVMM_CACHE/kernel-build/<source-version>-<hash>/   (default cache: <repo>/.cache)
# keyed by a hash of the fragment, the source version and this script; a cached build is
# reused. Prints the path of bzImage (or of the result directory with --print-dir, which
# holds bzImage, vmlinux (PVH ELF entry), System.map, config and build.log). --cached prints
# the cached result of this configuration and exits 3 when there is none: no download, no build.
#
# Needs: gcc make flex bison bc libelf-dev xz-utils (apt-get install them).
# Environment: RTVMM_CACHE, RTVMM_KSRC_TARBALL (use this linux-*.tar.xz instead).
set -eu

die() { echo "build-kernel: $*" >&2; exit 1; }
log() { echo "build-kernel: $*" >&2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${RTVMM_CACHE:-$repo/.cache}
frag=$repo/guest/linux/rtvmm-guest.config
patches=$repo/guest/linux/patches
jobs=$(nproc 2>/dev/null || echo 2)
print_dir=0
rebuild=0
cached=0
while [ $# -gt 0 ]; do
	case $1 in
	--jobs|-j) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift 2 ;;
	--jobs=*) jobs=${1#--jobs=}; shift ;;
	--print-dir) print_dir=1; shift ;;
	--rebuild) rebuild=1; shift ;;
	--cached) cached=1; shift ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done
case $jobs in ''|*[!0-9]*) die "--jobs wants a positive number, got '$jobs'" ;; esac
[ -f "$frag" ] || die "missing config fragment $frag"

# --- build dependencies ----------------------------------------------------------------
missing=
for t in gcc make flex bison bc xz perl patch; do command -v $t >/dev/null || missing="$missing $t"; done
[ -f /usr/include/libelf.h ] || [ -f /usr/include/elfutils/libelf.h ] || missing="$missing libelf-dev"
[ -z "$missing" ] || die "missing build tools:$missing (apt-get install gcc make flex bison bc libelf-dev xz-utils perl)"

# --- kernel source tarball ---------------------------------------------------------------
if [ -n "${RTVMM_KSRC_TARBALL:-}" ]; then
	tarball=$RTVMM_KSRC_TARBALL
	[ -f "$tarball" ] || die "RTVMM_KSRC_TARBALL=$tarball does not exist"
	srcver=$(basename "$tarball" .tar.xz)
else
	tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n1 || true)
	if [ -n "$tarball" ]; then
		pkg=$(basename "$tarball" .tar.xz)
		srcver=$pkg-$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || echo local)
	else
		# Not installed: fetch the package that the "linux-source" metapackage points at.
		pkg=$(apt-cache depends linux-source 2>/dev/null |
			sed -n 's/^ *Depends: \(linux-source-[0-9][^ ]*\)$/\1/p' | head -n1)
		[ -n "$pkg" ] || die "no /usr/src/linux-source-*.tar.xz and apt cannot resolve linux-source (apt-get update?)"
		ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
		srcver=$pkg-$ver
		sdir=$cache/linux-source/$srcver
		if [ ! -f "$sdir/.complete" ] && [ $cached = 0 ]; then
			mkdir -p "$cache/linux-source"
			tmp=$(mktemp -d "$cache/linux-source/.tmp.XXXXXX")
			chmod 755 "$tmp"
			log "downloading $pkg=$ver"
			(cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) || { rm -rf "$tmp"; die "apt-get download $pkg=$ver failed"; }
			dpkg -x "$tmp"/*.deb "$tmp/root" || { rm -rf "$tmp"; die "dpkg -x failed"; }
			rm -rf "$sdir"; mkdir -p "$sdir"
			mv "$tmp"/root/usr/src/*.tar.xz "$sdir/" || { rm -rf "$tmp"; die "no tarball in $pkg"; }
			rm -rf "$tmp"
			touch "$sdir/.complete"
		fi
		tarball=$(ls "$sdir"/linux-source-*.tar.xz 2>/dev/null | head -n1 || true)
	fi
fi

# --- cache key -----------------------------------------------------------------------------
# Patches in guest/linux/patches/*.patch (applied in name order) key the source tree; the
# fragment, this script and the patches key the build.
patchkey=$(cat "$patches"/*.patch 2>/dev/null | sha256sum | cut -c1-8)
key=$(cat "$frag" "$0" "$patches"/*.patch 2>/dev/null | { cat; echo "$srcver"; } | sha256sum | cut -c1-12)
out=$cache/kernel-build/$srcver-$key
if [ $rebuild = 1 ]; then rm -rf "$out"; fi
if [ -f "$out/.complete" ]; then
	if [ $print_dir = 1 ]; then echo "$out"; else echo "$out/bzImage"; fi
	exit 0
fi
if [ $cached = 1 ]; then
	log "no cached build for this configuration ($out): run scripts/build-kernel.sh (5-15 min)"
	exit 3
fi

# --- unpack (shared by all configs of one source version) ---------------------------------
src=$cache/kernel-build/src-$srcver-$patchkey
if [ ! -f "$src/.complete" ]; then
	log "unpacking $tarball"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xf "$tarball" -C "$src.tmp" --strip-components=1 || die "cannot unpack $tarball"
	for p in "$patches"/*.patch; do
		[ -f "$p" ] || continue
		log "applying $(basename "$p")"
		patch -d "$src.tmp" -p1 --forward --quiet < "$p" || die "patch $p does not apply to $srcver"
	done
	touch "$src.tmp/.complete"
	mv "$src.tmp" "$src"
fi

# --- configure and build out of tree -------------------------------------------------------
rm -rf "$out"
mkdir -p "$out/obj"
obj=$out/obj
buildlog=$out/build.log
export KBUILD_BUILD_USER=rtvmm KBUILD_BUILD_HOST=rtvmm KBUILD_BUILD_TIMESTAMP="$srcver"
t0=$(date +%s)
log "configuring in $obj (log: $buildlog)"
{
	make -C "$src" O="$obj" tinyconfig &&
	"$src"/scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config" "$frag" &&
	make -C "$src" O="$obj" olddefconfig
} > "$buildlog" 2>&1 || die "configuration failed, see $buildlog"

# Every option of the fragment must have survived olddefconfig (unmet dependencies drop
# options silently otherwise).
bad=
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qxF "$line" "$obj/.config" || bad="$bad
  wanted '$line', got '$(grep -E "^(# )?${line%%=*}[= ]" "$obj/.config" || echo unset)'" ;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }; opt=${opt%% *}
		! grep -q "^$opt=" "$obj/.config" || bad="$bad
  wanted '$line', got '$(grep "^$opt=" "$obj/.config")'" ;;
	esac
done < "$frag"
[ -z "$bad" ] || die "config fragment not honoured:$bad"

log "building bzImage with -j$jobs"
make -C "$src" O="$obj" -j"$jobs" bzImage >> "$buildlog" 2>&1 ||
	{ tail -n 30 "$buildlog" >&2; die "build failed, see $buildlog"; }
t1=$(date +%s)
cp "$obj/arch/x86/boot/bzImage" "$obj/vmlinux" "$obj/System.map" "$out/"
cp "$obj/.config" "$out/config"
echo "build-kernel: built in $((t1 - t0)) s with -j$jobs" >> "$buildlog"
log "built in $((t1 - t0)) s"
# The object tree is only needed for incremental rebuilds; drop it to save ~1 GB.
rm -rf "$obj"
touch "$out/.complete"
if [ $print_dir = 1 ]; then echo "$out"; else echo "$out/bzImage"; fi
