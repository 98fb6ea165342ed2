#!/usr/bin/env bash
# The PBX side by side with Kamailio (the anchor of ../shared/bench), with
# the kit's SIPp load, inside a private network namespace on loopback.
#
#   bench/kit.sh TESTS [--repeat N] [other pbxbench.py args]
#
# TESTS is the kit's comma-separated list: register, calls, held, rtp
# (run rtp on its own: the kit then adds rtpengine to Kamailio).
# Needs root (network namespace) and the kit's packages
# (../shared/bench/install.sh). Prints the kit's figure lines; results also
# land in $BENCH_TMP/kit/results.
set -euo pipefail
tests=${1:?usage: bench/kit.sh TESTS [pbxbench args]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kit=${BENCH_KIT:-$root/../shared/bench}
work=${BENCH_TMP:-/tmp/bench}/pbx
mkdir -p "$work"
[ -x "$kit/netns.sh" ] || { echo "benchmark kit not found at $kit" >&2; exit 1; }

cargo build --release --manifest-path "$root/Cargo.toml" -p pbx-server
bin=${CARGO_TARGET_DIR:-$root/target}/release/pbx

# The kit's users: 100000-109999, password pw<user>, realm 127.0.0.1. RTP
# relay ports away from the kit's (baresip 10000-10299, rtpengine
# 30000-39999, SIPp media 24000-24199). The kit's SIPp calls send no RTP
# (except in the rtp test), so the media timeout is off.
rm -rf "$work/data"
python3 - "$work/bench.toml" "$work/data" <<'PY'
import sys
lines = ['[sip]', 'listen = ["127.0.0.1:5060"]', 'transports = ["udp", "tcp"]', 'realm = "127.0.0.1"',
         # SIPp's calls carry no RTP: no media timeout (it would end held calls).
         '[media]', 'rtp_ports = "40000-49999"', 'media_timeout_s = 0',
         '[log]', 'level = "info"', '[storage]', f'data_dir = "{sys.argv[2]}"']
# The kit's callees each take several calls at once (caller i calls callee
# i mod 1000): lift the per-extension call limit (default 2) as a trunk-like
# test peer needs; Kamailio has no such limit.
for u in range(100000, 110000):
    lines += ['[[extensions]]', f'number = "{u}"', f'password = "pw{u}"', 'max_calls = 100']
open(sys.argv[1], 'w').write("\n".join(lines) + "\n")
PY

"$kit/netns.sh" "$bin" --config "$work/bench.toml" >"$work/pbx.log" 2>&1 &
pbx_pid=$!
trap 'kill $pbx_pid 2>/dev/null || true; wait $pbx_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q ready "$work/pbx.log" 2>/dev/null && break
    sleep 0.2
done
"$kit/netns.sh" "$kit/compare.sh" "pbx=127.0.0.1:5060@$pbx_pid" --tests "$tests" "$@"
