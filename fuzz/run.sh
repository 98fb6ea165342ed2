#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on a scratch copy of
# the seed corpus. Exits non-zero if any target crashes; crash inputs are
# left in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh 120
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGETS=(parse_message stream_framing sdp_offer_answer sdp_anchor rtp_packets)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "run.sh: the nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sip-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Keep nightly's fuzz builds apart from the stable workspace builds.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="$CARGO_TARGET_DIR-fuzz"
fi

cd "$HERE"
status=0
for target in "${TARGETS[@]}"; do
    corpus="$WORK/$target"
    mkdir -p "$corpus"
    cp "$HERE"/seeds/* "$corpus"/
    echo "== $target: ${SECONDS_PER_TARGET}s"
    # libFuzzer reports every new input; keep its full output in a file
    # and show the end (final stats, or the crash report).
    log="$WORK/$target.log"
    if cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb=2048 \
        -max_len=65536 \
        -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E "^(stat::|Done)" "$log" || tail -n 5 "$log"
    else
        tail -n 60 "$log" >&2
        echo "== $target: FAILED (see $HERE/artifacts/$target/)" >&2
        status=1
    fi
done
exit "$status"
