#!/usr/bin/env bash
# The ACPI tables rtvmm builds, checked by ACPICA (the code Linux itself uses to parse them):
#  - `iasl -d` disassembles every table without a checksum/format complaint;
#  - the DSDT's AML recompiles (iasl -oa) to exactly our bytes;
#  - acpiexec loads FADT+DSDT+MADT and evaluates \_S5 to SLP_TYP 5 (what the PM device expects).
# Usage: acpi_iasl.sh DUMP_ACPI
set -uo pipefail
dump_acpi=$1
command -v iasl >/dev/null || { echo "SKIP: iasl is absent (Debian: apt-get install acpica-tools)"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for n in 1 4 254; do
	dir=$tmp/vcpus$n
	mkdir -p "$dir"
	"$dump_acpi" "$dir" "$n" > "$dir/layout.txt" || { bad "dump_acpi $n vCPUs"; continue; }
	for t in xsdt facp facs dsdt apic; do
		[[ -s $dir/$t.dat ]] || { bad "$n vCPUs: no $t table reached from the RSDP"; continue; }
		(cd "$dir" && iasl -d "$t.dat") > "$dir/$t.log" 2>&1 || bad "$n vCPUs: iasl -d $t.dat failed"
		if grep -iE 'warning|error|incorrect|invalid' "$dir/$t.log" "$dir/$t.dsl"; then
			bad "$n vCPUs: iasl complains about $t"
		fi
	done
	grep -q 'Processor Local APIC' "$dir/apic.dsl" &&
		[[ $(grep -c 'Subtable Type : 00 \[Processor Local APIC\]' "$dir/apic.dsl") == "$n" ]] ||
		bad "$n vCPUs: MADT does not list $n local APICs"
done

# DSDT round trip: recompile the disassembly without optimisations; the AML must be ours.
dir=$tmp/vcpus4
if (cd "$dir" && iasl -oa -p recompiled dsdt.dsl) > "$dir/recompile.log" 2>&1; then
	cmp <(tail -c +37 "$dir/recompiled.aml") <(tail -c +37 "$dir/dsdt.dat") ||
		bad "DSDT AML differs from iasl's compilation of its own disassembly"
else
	cat "$dir/recompile.log"
	bad "iasl cannot recompile the disassembled DSDT"
fi

if command -v acpiexec >/dev/null; then
	out=$(cd "$dir" && timeout 60 acpiexec -b 'evaluate \_S5; evaluate \_SB.COM1._HID; evaluate \_SB.PS2K._HID' \
		facp.dat dsdt.dat apic.dat 2>&1)
	echo "$out" > "$dir/acpiexec.log"
	if grep -E 'ACPI (Error|Warning|BIOS)|Firmware (Error|Warning)' <<< "$out"; then
		bad "acpiexec reports table problems"
	fi
	# The \_S5 package: SLP_TYPa, SLP_TYPb.
	[[ $(grep -A3 'Evaluation of \\_S5 returned' <<< "$out" | grep -c '\[Integer\] = 0000000000000005') == 2 ]] ||
		bad "acpiexec: \\_S5 does not evaluate to {5, 5, ...}"
	grep -q '\[Integer\] = 000000000105D041' <<< "$out" || bad "acpiexec: COM1 _HID is not PNP0501"
	grep -q '\[Integer\] = 000000000303D041' <<< "$out" || bad "acpiexec: PS2K _HID is not PNP0303"
else
	echo "note: acpiexec absent, \\_S5 evaluation skipped"
fi

[[ $fail == 0 ]] && echo "PASS: ACPI tables for 1, 4 and 254 vCPUs pass iasl and acpiexec"
exit $fail
