#!/usr/bin/env bash
# Runs one libFuzzer target for a few seconds from its seed corpus, as the test suite does:
# new inputs go to a scratch directory (removed after), a crash, leak, sanitizer report or
# failed check leaves its input at ARTIFACT_PREFIX and fails the run.
# Usage: run-briefly.sh TARGET SEED_DIR SECONDS ARTIFACT_PREFIX
set -euo pipefail
target=$1 seeds=$2 seconds=$3 artifacts=$4
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$(dirname "$artifacts")"
# libFuzzer's own exit code for a finding is 77, which meson reads as "skipped": make it 1.
"$target" -max_total_time="$seconds" -timeout=10 -error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 \
	-artifact_prefix="$artifacts" "$scratch" "$seeds"
