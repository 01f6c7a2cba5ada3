#!/usr/bin/env bash
# Installs the Debian 12 packages rtvmm needs to build, test and demo, if any are missing.
# Usage: scripts/deps.sh [group...]   groups: build (default), test, kernel, dataplane, bench, box,
# fuzz (clang with libFuzzer's runtime, llvm-symbolizer for the reports)
set -euo pipefail

declare -A groups=(
	[build]="gcc meson ninja-build pkg-config liblzma-dev libzstd-dev zlib1g-dev libyaml-dev libhwloc-dev libnuma-dev libjansson-dev libmicrohttpd-dev libseccomp-dev libcap-ng-dev liburing-dev"
	[test]="libcmocka-dev busybox-static cpio gzip xz-utils acpica-tools python3 util-linux qemu-system-common qemu-utils e2fsprogs curl jq python3-yaml python3-jsonschema dpdk-doc"
	[kernel]="bc bison flex libelf-dev libssl-dev cpio xz-utils patch make linux-source-6.1"
	[dataplane]="libdpdk-dev dpdk-dev"
	[bench]="qemu-system-x86 rt-tests stress-ng gnuplot-nox python3-jsonschema fio openvswitch-switch-dpdk"
	[box]="qemu-system-x86 kmod busybox-static cpio"
	[fuzz]="clang libclang-rt-dev llvm"
)

want=()
for g in "${@:-build}"; do
	[[ -n "${groups[$g]:-}" ]] || { echo "deps.sh: unknown group '$g'" >&2; exit 2; }
	for p in ${groups[$g]}; do want+=("$p"); done
done

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
