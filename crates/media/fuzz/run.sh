#!/usr/bin/env bash
# Runs every media fuzz target for SECONDS each (default 60). Exits non-zero
# if any target crashes; crash inputs are left in artifacts/<target>/.
#
#   crates/media/fuzz/run.sh 120
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGETS=(wav_parse dtmf_parse codec_decode jitter_ops)

cd "$HERE"
status=0
for target in "${TARGETS[@]}"; do
    mkdir -p "corpus/$target"
    cp seeds/* "corpus/$target"/
    if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096; then
        echo "run.sh: $target crashed" >&2
        status=1
    fi
done
exit $status
