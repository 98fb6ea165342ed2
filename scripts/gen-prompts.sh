#!/usr/bin/env bash
# Regenerates the built-in voice prompts from prompts/catalog.tsv.
#
#   scripts/gen-prompts.sh            writes prompts/en/<id>.wav
#   scripts/gen-prompts.sh OUTDIR     writes OUTDIR/<id>.wav
#
# Each catalog line is `id<TAB>text` (lines starting with `#` and blank lines
# are skipped). espeak-ng speaks the text and sox turns it into what the
# media crate plays: 8 kHz mono 16-bit PCM, leading and trailing silence
# trimmed, peak normalised to -3 dBFS.
#
# espeak-ng is GPL-3: it is only ever run here, as a separate program, and
# never linked into the PBX. The project ships the generated WAVs and the
# catalog (see prompts/README.md).
#
# Output is deterministic for a given espeak-ng and sox version: no dither,
# fixed random seed, no metadata. This script installs nothing.
#
# Environment overrides: PROMPT_VOICE (default en-us), PROMPT_SPEED (words per
# minute, default 160), PROMPT_PITCH (0-99, default 45).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
catalog="$root/prompts/catalog.tsv"
outdir="${1:-$root/prompts/en}"
voice="${PROMPT_VOICE:-en-us}"
speed="${PROMPT_SPEED:-160}"
pitch="${PROMPT_PITCH:-45}"

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
if [ ${#missing[@]} -gt 0 ]; then
    echo "gen-prompts: missing program(s): ${missing[*]}" >&2
    echo "gen-prompts: install the Debian packages with: sudo apt-get install espeak-ng sox" >&2
    exit 1
fi
if [ ! -r "$catalog" ]; then
    echo "gen-prompts: catalog not found: $catalog" >&2
    exit 1
fi

mkdir -p "$outdir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Two sox passes, because `fade` needs a known length and `silence` leaves it
# unknown. First pass: trim leading silence, then reverse, trim again and
# reverse back, which trims the tail (sox's `silence` only trims the start
# reliably). Second pass:
# - 3 dB of headroom so the filters do not clip;
# - band-limit to the telephone band before the rate change;
# - resample to 8 kHz with the very-high-quality filter;
# - short fades and 20 ms of silence at each end, so a trimmed edge never
#   clicks and a prompt never starts at full level;
# - normalise the peak to -3 dBFS.
trim=(silence 1 0.01 -40d reverse silence 1 0.01 -40d reverse)
shape=(gain -3 highpass 120 lowpass 3600 rate -v 8000 fade q 0.02 -0 0.04 pad 0.02 0.02 norm -3)

declare -A seen=()
count=0
line_no=0
while IFS= read -r line || [ -n "$line" ]; do
    line_no=$((line_no + 1))
    case "$line" in '' | '#'*) continue ;; esac
    id="${line%%$'\t'*}"
    text="${line#*$'\t'}"
    if [ "$id" = "$line" ] || [ -z "$text" ]; then
        echo "gen-prompts: $catalog:$line_no: expected id<TAB>text" >&2
        exit 1
    fi
    if ! [[ "$id" =~ ^[a-z0-9]+(-[a-z0-9]+)*$ ]]; then
        echo "gen-prompts: $catalog:$line_no: id '$id' is not kebab-case" >&2
        exit 1
    fi
    if [ -n "${seen[$id]:-}" ]; then
        echo "gen-prompts: $catalog:$line_no: duplicate id '$id'" >&2
        exit 1
    fi
    seen[$id]=1

    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/raw.wav" -- "$text"
    # -D: no dither; -R: repeatable random seed; --no-glob: ids are literal.
    sox -D -R --no-glob "$tmp/raw.wav" "$tmp/trim.wav" "${trim[@]}"
    sox -D -R --no-glob "$tmp/trim.wav" \
        -r 8000 -c 1 -b 16 -e signed-integer -t wav "$tmp/out.wav" "${shape[@]}"
    mv "$tmp/out.wav" "$outdir/$id.wav"
    count=$((count + 1))
done <"$catalog"

# A WAV left over from an id since removed from the catalog would still be
# loaded by PromptSet; name it rather than delete files in a caller's dir.
for f in "$outdir"/*.wav; do
    [ -e "$f" ] || continue
    id="$(basename "$f" .wav)"
    if [ -z "${seen[$id]:-}" ]; then
        echo "gen-prompts: warning: $f is not in the catalog" >&2
    fi
done

bytes="$(du -cb "$outdir"/*.wav | tail -n1 | cut -f1)"
echo "gen-prompts: wrote $count prompts to $outdir ($bytes bytes)"
