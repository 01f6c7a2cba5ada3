#!/bin/sh
# Prints the Linux guest's command-line options for the KVM host at hand (tests, benchmarks,
# demo): guest/linux/cmdline everywhere, plus guest/linux/cmdline-pvm where `RTVMM kvm-host`
# says the host is a nested PVM KVM, whose emulated guest kernel mode lacks xsave/xrstor,
# clac/stac, popcnt, cmpxchg16b and keeps FS base unreliably (docs/linux-guest.md). A standard
# KVM host gets none of those: the guest uses what its CPU has.
# Usage: guest/linux/cmdline.sh [RTVMM]   (default: build/rtvmm of this checkout)
dir=$(dirname "$0")
rtvmm=${1:-$dir/../../build/rtvmm}
line=$(cat "$dir/cmdline")
case $("$rtvmm" kvm-host 2> /dev/null) in
kvm_pvm*) line="$line $(cat "$dir/cmdline-pvm")" ;;
esac
echo "$line"
