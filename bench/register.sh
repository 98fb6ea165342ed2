#!/usr/bin/env bash
# Registration benchmark: the PBX side by side with Kamailio (the anchor of
# ../shared/bench), SIPp reg_auth load (REGISTER -> 401 -> REGISTER -> 200)
# for 10,000 users, inside a private network namespace on loopback.
#
#   bench/register.sh [--repeat N] [other pbxbench.py args]
#
# Needs root (network namespace) and the kit's packages (../shared/bench/install.sh).
# Prints the kit's figure lines; the main figure is server_cpu_us_per_reg.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kit=${BENCH_KIT:-$root/../shared/bench}
work=${BENCH_TMP:-/tmp/bench}/pbx
mkdir -p "$work"
[ -x "$kit/netns.sh" ] || { echo "benchmark kit not found at $kit" >&2; exit 1; }

cargo build --release --manifest-path "$root/Cargo.toml" -p pbx-server
bin=${CARGO_TARGET_DIR:-$root/target}/release/pbx

# The kit's users: 100000-109999, password pw<user>, realm 127.0.0.1.
rm -rf "$work/data"
python3 - "$work/bench.toml" "$work/data" <<'PY'
import sys
lines = ['[sip]', 'listen = ["127.0.0.1:5060"]', 'transports = ["udp", "tcp"]', 'realm = "127.0.0.1"',
         '[log]', 'level = "info"', '[storage]', f'data_dir = "{sys.argv[2]}"']
for u in range(100000, 110000):
    lines += ['[[extensions]]', f'number = "{u}"', f'password = "pw{u}"']
open(sys.argv[1], 'w').write("\n".join(lines) + "\n")
PY

"$kit/netns.sh" "$bin" --config "$work/bench.toml" >"$work/pbx.log" 2>&1 &
pbx_pid=$!
trap 'kill $pbx_pid 2>/dev/null || true; wait $pbx_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    grep -q ready "$work/pbx.log" 2>/dev/null && break
    sleep 0.2
done
"$kit/netns.sh" "$kit/compare.sh" "pbx=127.0.0.1:5060@$pbx_pid" --tests register "$@"
