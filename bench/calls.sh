#!/usr/bin/env bash
# Call benchmarks against Kamailio side by side (see bench/kit.sh):
#   calls: sustained call setup rate, SIPp UAC -> server -> SIPp UAS, with
#          the server's CPU per call (call_cps, server_cpu_us_per_call);
#   held:  1,000 calls held together, CPU while idle.
# Then, on its own, rtp: 100 calls with G.711 echoed through the server
# (Kamailio gets rtpengine for it): loss and jitter.
#
#   bench/calls.sh [--repeat N] [other pbxbench.py args]
set -euo pipefail
here=$(dirname "$0")
"$here/kit.sh" calls,held "$@"
"$here/kit.sh" rtp "$@"
