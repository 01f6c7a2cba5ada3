#!/bin/bash
# Runs test=cpl3 (bench/guest/test_cpl3.c) with the expectations of the KVM this machine has.
#
#   cpl3_host.sh RTVMM RUN_GUEST KERNEL [--dry-run KIND [--tcg]] -- RUN_GUEST-OPTIONS...
#
# `RTVMM kvm-host` names the KVM (its first word: kvm_intel, kvm_amd, kvm_pvm), and that picks
# the expectation set the guest's run is checked against (RUN_GUEST, run_guest.sh, with the
# host-independent RUN_GUEST-OPTIONS the caller gives plus the set's cmdline and markers):
#
#   kvm_intel, kvm_amd  standard KVM: the architecture. Every transition works (cpl3_broken is
#                       empty), INT n from CPL3 through a DPL0 gate is #GP with error code
#                       vector*8+2, SYSCALL with EFER.SCE=0 is #UD, IN/OUT with IOPL 3 work.
#   kvm_pvm             the nested PVM host: its documented bugs (bench/guest/README.md, "CPL3 on
#                       this host"), exactly those broken.
#   anything else       no expectation set: the test fails and says so.
#
# One known deviation of a standard set, only where this runs on QEMU TCG (scripts/kvmbox sets
# RTVMM_KVMBOX=1 and its CPU's model name says QEMU; or the model name is TCG's own "QEMU TCG
# CPU"): TCG executes the L2 guest's INT n itself and, in 64-bit mode, pushes the #GP error code
# vector*16+2 (0x822 for INT 0x82) where the CPU pushes vector*8+2 (0x412). The guest is then
# given cpl3_deviations=int-dpl0-gp-error-x16:TCG, which lets through that one value (and still
# the right one) and prints "known TCG deviation". On any other host a wrong error code fails.
#
# --dry-run KIND [--tcg] prints what would be checked on a host of that kind, without a guest.
# Exit status: run_guest.sh's; 77 (skip) only when /dev/kvm does not exist; 1 when the KVM
# cannot be used or has no expectation set.
set -u

usage() { echo "usage: $0 RTVMM RUN_GUEST KERNEL [--dry-run KIND [--tcg]] -- RUN_GUEST-OPTIONS..." >&2; exit 1; }
say() { echo "cpl3_host: $*"; }

[ $# -ge 3 ] || usage
rtvmm=$1 run_guest=$2 kernel=$3
shift 3
dry_kind='' dry_tcg=0
while [ $# -gt 0 ]; do
	case $1 in
	--dry-run) [ $# -ge 2 ] || usage; dry_kind=$2; shift 2 ;;
	--tcg) dry_tcg=1; shift ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
common=("$@")

# ---- which KVM, and whether QEMU TCG runs the guest's instructions
if [ -n "$dry_kind" ]; then
	kind=$dry_kind tcg=$dry_tcg
	say "dry run: a $kind host$([ $tcg = 1 ] && echo ' under QEMU TCG')"
else
	if [ ! -e /dev/kvm ]; then
		echo "SKIP: /dev/kvm does not exist on this machine: no KVM, cannot boot a guest"
		exit 77
	fi
	if ! host=$("$rtvmm" kvm-host 2>&1); then
		say "FAIL: '$rtvmm kvm-host' cannot use this KVM: $host"
		exit 1
	fi
	say "rtvmm kvm-host: $host"
	kind=${host%% *}
	model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
	tcg=0
	case $model in
	*"QEMU TCG"*) tcg=1 ;;
	*QEMU*) [ "${RTVMM_KVMBOX:-}" = 1 ] && tcg=1 ;;
	esac
	say "cpu model name: '$model'$([ "${RTVMM_KVMBOX:-}" = 1 ] && echo ' (RTVMM_KVMBOX=1: inside scripts/kvmbox)')"
fi

# ---- the expectation set
# Markers every set has (the caller's RUN_GUEST-OPTIONS carry the rest: what works on every host).
markers=() res=() absent=()
case $kind in
kvm_intel|kvm_amd)
	broken=
	say "host $kind: standard KVM, expecting the architecture: every transition works (cpl3_broken empty)"
	markers=(
		'rtvmm-guest: cpl3: int80 ok (1000 round trips'
		'rtvmm-guest: cpl3: int-dpl0-gp ok (1000 round trips'
		'rtvmm-guest: cpl3: syscall-nosce ok (#UD with EFER.SCE=0)'
		'rtvmm-guest: cpl3: syscall ok (1000 round trips'
		'rtvmm-guest: cpl3: pio-iopl3 ok (1000 echo round trips with RFLAGS.IOPL=3'
	)
	res=('rtvmm-guest: cpl3: 18 ok, 0 broken$' 'rtvmm-guest: cpl3 ok$')
	absent=('BROKEN' 'lands at cpl3' 'listed in cpl3_broken but ok')
	deviations=
	if [ "$tcg" = 1 ]; then
		deviations=int-dpl0-gp-error-x16:TCG
		say "known TCG deviation: QEMU TCG executes this guest's INT n and pushes #GP error code vector*16+2;" \
		    "passing cpl3_deviations=$deviations (INT 0x82 through a DPL0 gate: 0x822 let through, 0x412 still right)"
		markers+=('int 0x82 through a dpl0 gate: #GP error code 0x')
		res+=('int-dpl0-gp ok .*#GP error code (0x412\)|0x822, expected 0x412: known TCG deviation\))')
	else
		say "not QEMU TCG: no known deviation (INT 0x82 through a DPL0 gate must push #GP error code 0x412)"
		markers+=('int 0x82 through a dpl0 gate: #GP error code 0x412)')
		absent+=('deviation')
	fi
	cmdline="test=cpl3,smp cpus=2${deviations:+ cpl3_deviations=$deviations}"
	;;
kvm_pvm)
	broken=int80,int-dpl0-gp,syscall-nosce,syscall,pio-iopl3
	say "host kvm_pvm: the nested PVM host, expecting its documented bugs: cpl3_broken=$broken" \
	    "(bench/guest/README.md, \"CPL3 on this host\")"
	# INT n from CPL3 raises #UD; SYSCALL keeps CPL3 at LSTAR (even with EFER.SCE=0); IOPL 3 is
	# dropped for CPL3 (the TSS I/O bitmap works).
	markers=(
		'rtvmm-guest: cpl3: int80 BROKEN: unexpected #UD (vector 6) error 0x0 at'
		'rtvmm-guest: cpl3: int-dpl0-gp BROKEN: unexpected #UD (vector 6)'
		'rtvmm-guest: cpl3: syscall lands at cpl3 (host bug): landed at syscall_entry (LSTAR)'
		'rtvmm-guest: cpl3: syscall-nosce BROKEN (EFER.SCE=0 should give #UD): landed at syscall_entry (LSTAR)'
		'rtvmm-guest: cpl3: pio-iopl3 BROKEN'
		"rtvmm-guest: cpl3: 13 ok, 5 broken: $broken"
		"rtvmm-guest: cpl3 ok (as documented for this host: broken $broken)"
	)
	cmdline="test=cpl3,smp cpus=2 cpl3_broken=$broken"
	;;
*)
	say "FAIL: no expectation set for a '$kind' host (known: kvm_intel, kvm_amd, kvm_pvm)"
	exit 1
	;;
esac

args=("$rtvmm" "$kernel" --cmdline "$cmdline" "${common[@]}")
for m in "${markers[@]}"; do args+=(--stdout "$m"); done
for r in "${res[@]}"; do args+=(--output-re "$r"); done
for a in "${absent[@]}"; do args+=(--absent "$a"); done
say "guest cmdline: $cmdline"
if [ -n "$dry_kind" ]; then
	printf 'cpl3_host: would run:'; printf ' %q' "$run_guest" "${args[@]}"; echo
	exit 0
fi
exec "$run_guest" "${args[@]}"
