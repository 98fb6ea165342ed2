#!/usr/bin/env bash
# Registration benchmark: SIPp reg_auth load (REGISTER -> 401 -> REGISTER ->
# 200) for 10,000 users against the PBX and Kamailio side by side; the main
# figure is server_cpu_us_per_reg. See bench/kit.sh.
#
#   bench/register.sh [--repeat N] [other pbxbench.py args]
exec "$(dirname "$0")/kit.sh" register "$@"
