#!/bin/sh
# fetch-kernel.sh - download Debian's stock x86-64 kernel and unpack it into the cache.
#
# Usage: scripts/fetch-kernel.sh [--print-dir]
#
# Resolves the kernel package that Debian's "linux-image-amd64" metapackage currently
# depends on (e.g. linux-image-6.1.0-56-amd64), fetches it with "apt-get download"
# (no root needed, nothing installed), and unpacks it with "dpkg -x" into
#   $RTVMM_CACHE/debian-kernel/<package>_<version>/        (default cache: <repo>/.cache)
# Prints the path of the unpacked vmlinuz (or, with --print-dir, of the unpacked tree,
# which also holds boot/System.map-* and lib/modules/<ver>/). Idempotent: a second run
# reuses the cache and makes no network access.
#
# Environment: RTVMM_CACHE (cache root), RTVMM_KERNEL_PKG (force a package name, e.g.
# linux-image-6.1.0-56-amd64).
set -eu

die() { echo "fetch-kernel: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${RTVMM_CACHE:-$repo/.cache}
print_dir=0
case "${1:-}" in
--print-dir) print_dir=1 ;;
"") ;;
-h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) die "unknown argument '$1' (try --help)" ;;
esac

command -v apt-cache >/dev/null || die "apt-cache not found: this script needs a Debian/Ubuntu host"
command -v dpkg >/dev/null || die "dpkg not found"

pkg=${RTVMM_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	# "Depends: linux-image-6.1.0-56-amd64" of the candidate version of the metapackage.
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64's kernel package (is 'apt-get update' done and a Debian archive configured?)"
fi
ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "package $pkg has no candidate version in apt's lists"

dir=$cache/debian-kernel/${pkg}_$ver
if [ ! -f "$dir/.complete" ]; then
	mkdir -p "$cache/debian-kernel"
	tmp=$(mktemp -d "$cache/debian-kernel/.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "fetch-kernel: downloading $pkg=$ver" >&2
	(cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) ||
		die "apt-get download $pkg=$ver failed (network? apt lists stale?)"
	deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n1)
	[ -n "$deb" ] || die "apt-get download produced no .deb"
	mkdir "$tmp/root"
	dpkg -x "$deb" "$tmp/root" || die "dpkg -x $deb failed"
	rm -f "$deb"
	touch "$tmp/root/.complete"
	rm -rf "$dir"
	mv "$tmp/root" "$dir"
	rm -rf "$tmp"
	trap - EXIT
fi

vmlinuz=$(ls "$dir"/boot/vmlinuz-* 2>/dev/null | head -n1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $dir (corrupt cache? remove it and retry)"
if [ $print_dir = 1 ]; then echo "$dir"; else echo "$vmlinuz"; fi
