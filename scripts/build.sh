#!/usr/bin/env bash
# Configures (or reconfigures) and builds one meson build directory.
# Usage: scripts/build.sh DIR [MESON SETUP OPTIONS...]
# An existing DIR is reconfigured first, so that a build set up before a dependency was
# installed (scripts/demo.sh on a fresh machine, then scripts/test.sh installing DPDK) finds it:
# ninja alone would keep the old configuration and never build the dataplane.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: $0 DIR [MESON SETUP OPTIONS...]" >&2; exit 2; }
dir=$1
shift
if [[ -f $dir/build.ninja ]]; then
	meson setup --reconfigure "$dir" > /dev/null
else
	meson setup "$dir" "$@" > /dev/null
fi
ninja -C "$dir"
