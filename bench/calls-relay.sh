#!/usr/bin/env bash
# Relayed-call benchmark: N concurrent G.711 calls through the PBX's B2BUA
# and RTP relay on loopback, both ends played by pbx-loadgen
# (crates/loadgen). Measures the PBX's CPU and memory per call.
#
#   bench/calls-relay.sh [CALLS [HOLD]]          e.g. bench/calls-relay.sh 1000 30s
#
# Environment (all optional):
#   CALLS=1000 HOLD=30s RATE=100      calls, hold time per call, calls/second
#   PBX_PORT=5060                     PBX SIP port (UDP, 127.0.0.1)
#   CALLER_START=7000 CALLEE_START=8000   extension numbers (CALLS of each)
#   PASSWORD=loadgen-secret           password of every extension (>= 8 chars)
#   LOADGEN_RTP=30000-39999           loadgen RTP ports (4 per call)
#   LOADGEN_SIP_UAC=17000 LOADGEN_SIP_UAS=17001   loadgen SIP ports
#   SKIP_BUILD=1                      use existing binaries
#   PBX_BIN=… LOADGEN_BIN=…           binaries (default: $CARGO_TARGET_DIR or target/release)
#   KEEP=1                            keep the temp dir (config, logs, JSON)
#   LOADGEN_ARGS="…"                  extra pbx-loadgen arguments (both runs)
#   KERNEL_FORWARDING=auto            [media] kernel_forwarding (auto|on|off)
#   BASELINE=1                        afterwards, the same calls phone to phone
#                                     (pbx-loadgen --direct, no PBX): the
#                                     relay's whole-machine cost is the
#                                     difference in machine CPU
#
# Output: the loadgen report, then the PBX figures: CPU during the steady
# state (all calls up) as % of one core in total and per call, RSS before
# the calls, at steady state and at peak (VmHWM), and RSS per call. With
# kernel forwarding, also the forwarding program's own run time (kernel BPF
# statistics, turned on for the run) and the machine's total CPU.
set -euo pipefail

# >>> PBX RTP relay configuration: TOML appended to the PBX config. <<<
# The relay needs 4 ports per call (RTP+RTCP per leg, two legs); it must not
# overlap LOADGEN_RTP. Set PBX_MEDIA_TOML="" to use the PBX's defaults.
KERNEL_FORWARDING=${KERNEL_FORWARDING:-auto}
PBX_MEDIA_TOML=${PBX_MEDIA_TOML-$'[media]\nrtp_ports = "40000-49999"\nbind_address = "127.0.0.1"\nkernel_forwarding = "'$KERNEL_FORWARDING'"'}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
CALLS=${1:-${CALLS:-1000}}
HOLD=${2:-${HOLD:-30s}}
RATE=${RATE:-100}
PBX_PORT=${PBX_PORT:-5060}
CALLER_START=${CALLER_START:-7000}
CALLEE_START=${CALLEE_START:-8000}
PASSWORD=${PASSWORD:-loadgen-secret}
LOADGEN_RTP=${LOADGEN_RTP:-30000-39999}
LOADGEN_SIP_UAC=${LOADGEN_SIP_UAC:-17000}
LOADGEN_SIP_UAS=${LOADGEN_SIP_UAS:-17001}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
target=${CARGO_TARGET_DIR:-$root/target}
PBX_BIN=${PBX_BIN:-$target/release/pbx}
LOADGEN_BIN=${LOADGEN_BIN:-$target/release/pbx-loadgen}

to_seconds() { # 30s, 500ms, 2m, 30 -> seconds (float)
    python3 -c 'import sys,re
m=re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", sys.argv[1].strip())
if not m: sys.exit("bad duration "+sys.argv[1])
v=float(m.group(1)); u=m.group(2) or "s"
print(v*{"ms":0.001,"s":1,"m":60,"h":3600}[u])' "$1"
}
hold_s=$(to_seconds "$HOLD")
ramp_s=$(python3 -c "print($CALLS/$RATE)")
# Steady state: every call is up between the end of the ramp and the first
# hang-up (hold after the first answer). Sample inside it with margins.
read -r steady_from steady_to < <(python3 -c "
r=$ramp_s; h=$hold_s
a=r+1.5; b=h-1.0
print(f'{a:.2f} {b:.2f}' if b-a >= 2 else '0 0')")
if [ "$steady_from" = 0 ]; then
    echo "hold ($HOLD) too short for $CALLS calls at $RATE/s: need hold > calls/rate + 4.5 s" >&2
    exit 2
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --manifest-path "$root/Cargo.toml" -p pbx-server -p loadgen
fi
[ -x "$PBX_BIN" ] || { echo "no PBX binary at $PBX_BIN" >&2; exit 2; }
[ -x "$LOADGEN_BIN" ] || { echo "no loadgen binary at $LOADGEN_BIN" >&2; exit 2; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d "${TMPDIR:-/tmp}/calls-relay.XXXXXX")
pbx_pid=
cleanup() {
    if [ -n "$pbx_pid" ] && kill -0 "$pbx_pid" 2>/dev/null; then
        kill -TERM "$pbx_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pbx_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pbx_pid" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

caller_end=$((CALLER_START + CALLS - 1))
callee_end=$((CALLEE_START + CALLS - 1))
{
    echo "number,password"
    for ((n = CALLER_START; n <= caller_end; n++)); do echo "$n,$PASSWORD"; done
    for ((n = CALLEE_START; n <= callee_end; n++)); do echo "$n,$PASSWORD"; done
} >"$work/extensions.csv"

cat >"$work/pbx.toml" <<EOF
[sip]
listen = ["127.0.0.1:$PBX_PORT"]
transports = ["udp"]

[security]
trusted_networks = ["127.0.0.0/8"]

[log]
level = "warn"

[storage]
data_dir = "$work/data"

$PBX_MEDIA_TOML
EOF

"$PBX_BIN" --config "$work/pbx.toml" extension import "$work/extensions.csv" >"$work/import.log" 2>&1 \
    || { cat "$work/import.log" >&2; exit 2; }

"$PBX_BIN" --config "$work/pbx.toml" >"$work/pbx.log" 2>&1 &
pbx_pid=$!
options_ok() { # one OPTIONS over UDP; success on a 200
    python3 - "$PBX_PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(0.3)
me = s.getsockname()[1]
s.sendto((f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-ready{me}\r\n"
          f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=r{me}\r\nTo: <sip:127.0.0.1>\r\n"
          f"Call-ID: ready-{me}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
try:
    sys.exit(0 if s.recv(65535).startswith(b"SIP/2.0 200") else 1)
except OSError:
    sys.exit(1)
PY
}
ready=0
for _ in $(seq 50); do
    kill -0 "$pbx_pid" 2>/dev/null || { echo "PBX exited:" >&2; cat "$work/pbx.log" >&2; exit 2; }
    if options_ok; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "PBX does not answer OPTIONS:" >&2; tail -20 "$work/pbx.log" >&2; exit 2; }

cpu_us() { # "utime stime" of $1 in µs
    python3 -c 'import os,sys
f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split()
t=os.sysconf("SC_CLK_TCK")
print(int(f[11])*1000000//t, int(f[12])*1000000//t)' "$1"
}
# Run time of the kernel forwarding program(s): "run_time_ns run_cnt",
# summed over loaded programs named pbx_rtp_fwd (needs bpftool and
# kernel.bpf_stats_enabled=1; "0 0" otherwise).
bpf_ns() {
    command -v bpftool >/dev/null || { echo "0 0"; return; }
    bpftool prog show --json 2>/dev/null | python3 -c 'import json,sys
ps=[p for p in json.load(sys.stdin) if p.get("name")=="pbx_rtp_fwd"]
print(sum(p.get("run_time_ns",0) for p in ps), sum(p.get("run_cnt",0) for p in ps))'
}
# CPU µs used so far by the given processes plus the kernel's softirq
# threads: the work a load costs. (Per process, because /proc/stat's
# machine-wide counters are not trustworthy on this kind of VM; softirq
# work done inside a process's system call is charged to that process,
# deferred work to ksoftirqd.)
load_cpu_us() {
    python3 - "$@" $(pgrep ksoftirqd) <<'PY'
import os, sys
t = os.sysconf("SC_CLK_TCK"); total = 0
for pid in sys.argv[1:]:
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += (int(f[11]) + int(f[12])) * 1000000 // t
    except OSError:
        pass
print(total)
PY
}
if [ "$KERNEL_FORWARDING" != off ] && [ "$(id -u)" -eq 0 ]; then
    command -v bpftool >/dev/null || apt-get install -y -qq bpftool >/dev/null 2>&1 || true
    bpf_stats_was=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
    sysctl -qw kernel.bpf_stats_enabled=1 || true
    trap 'sysctl -qw kernel.bpf_stats_enabled="$bpf_stats_was" 2>/dev/null || true; cleanup' EXIT
fi
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
now_s() { date +%s.%N; }

common=(--server "127.0.0.1:$PBX_PORT" --password "$PASSWORD"
        --caller-range "$CALLER_START-$caller_end" --callee-range "$CALLEE_START-$callee_end"
        --local-ip 127.0.0.1 --rtp-ports "$LOADGEN_RTP"
        --sip-port-uac "$LOADGEN_SIP_UAC" --sip-port-uas "$LOADGEN_SIP_UAS")

# 1. Register the callees (not part of the call figures).
# shellcheck disable=SC2086
"$LOADGEN_BIN" "${common[@]}" --calls 0 --progress 0 $LOADGEN_ARGS >"$work/register.out" 2>&1 \
    || { echo "registration failed:" >&2; cat "$work/register.out" >&2; exit 1; }
sleep 1

# 2. The calls, with CPU/RSS samples: before, steady state, after.
rss_before=$(status_kb "$pbx_pid" VmRSS)
read -r cpu_before_u cpu_before_s < <(cpu_us "$pbx_pid")
t_start=$(now_s)
# shellcheck disable=SC2086
"$LOADGEN_BIN" "${common[@]}" --skip-register --calls "$CALLS" --rate "$RATE" --hold "$HOLD" \
    --progress 5s $LOADGEN_ARGS >"$work/loadgen.out" 2>"$work/loadgen.err" &
lg_pid=$!
sleep "$steady_from"
read -r cpu_a_u cpu_a_s < <(cpu_us "$pbx_pid"); t_a=$(now_s)
read -r bpf_a_ns bpf_a_cnt < <(bpf_ns); load_a=$(load_cpu_us "$pbx_pid" "$lg_pid")
rss_peak_seen=0
while python3 -c "import sys; sys.exit(0 if $(now_s) - $t_start < $steady_to else 1)"; do
    r=$(status_kb "$pbx_pid" VmRSS); [ "$r" -gt "$rss_peak_seen" ] && rss_peak_seen=$r
    sleep 0.5
done
read -r cpu_b_u cpu_b_s < <(cpu_us "$pbx_pid"); t_b=$(now_s)
read -r bpf_b_ns bpf_b_cnt < <(bpf_ns); load_b=$(load_cpu_us "$pbx_pid" "$lg_pid")
rss_steady=$(status_kb "$pbx_pid" VmRSS)
lg_status=0
wait "$lg_pid" || lg_status=$?
t_end=$(now_s)
read -r cpu_after_u cpu_after_s < <(cpu_us "$pbx_pid")
rss_hwm=$(status_kb "$pbx_pid" VmHWM)
rss_after=$(status_kb "$pbx_pid" VmRSS)

# 3. Optionally the baseline: the same load without the PBX.
base_a=0; base_b=0; t_c=0; t_d=0
if [ "${BASELINE:-0}" = 1 ]; then
    # Without the PBX (and its forwarding program on lo) running.
    kill -TERM "$pbx_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pbx_pid" 2>/dev/null || break; sleep 0.1; done
    # shellcheck disable=SC2086
    "$LOADGEN_BIN" --direct --calls "$CALLS" --rate "$RATE" --hold "$HOLD" --local-ip 127.0.0.1 \
        --rtp-ports "$LOADGEN_RTP" --sip-port-uac "$LOADGEN_SIP_UAC" --sip-port-uas "$LOADGEN_SIP_UAS" \
        --progress 0 $LOADGEN_ARGS >"$work/direct.out" 2>&1 &
    direct_pid=$!
    t_direct=$(now_s)
    sleep "$steady_from"
    base_a=$(load_cpu_us "$direct_pid"); t_c=$(now_s)
    while python3 -c "import sys; sys.exit(0 if $(now_s) - $t_direct < $steady_to else 1)"; do sleep 0.5; done
    base_b=$(load_cpu_us "$direct_pid"); t_d=$(now_s)
    wait "$direct_pid" || { echo "baseline run failed:" >&2; tail -5 "$work/direct.out" >&2; }
fi

cat "$work/loadgen.err" >&2
grep -v '^{' "$work/loadgen.out" || true
json=$(grep '^{' "$work/loadgen.out" | tail -1)
[ -n "$json" ] || { echo "no loadgen report" >&2; exit 2; }

python3 - "$json" <<EOF
import json, sys
r = json.loads(sys.argv[1])
calls = $CALLS
up = r["peak_concurrent"] or 1
steady_user = ($cpu_b_u - $cpu_a_u) / 1e6 / ($t_b - $t_a)
steady_sys = ($cpu_b_s - $cpu_a_s) / 1e6 / ($t_b - $t_a)
steady_cpu = steady_user + steady_sys
run_cpu = ($cpu_after_u + $cpu_after_s - $cpu_before_u - $cpu_before_s) / 1e6 / ($t_end - $t_start)
# Each call relays one 20 ms stream per direction: 100 datagrams/s in and out.
pps = up * 100
print("PBX figures")
print(f"  calls {calls}, established {r['calls_established']}, failed {r['calls_failed']} {r['failed_by_status']}, peak concurrent {r['peak_concurrent']}")
for k, name in (("rtp_caller_to_callee", "caller->callee"), ("rtp_callee_to_caller", "callee->caller")):
    d = r[k]
    print(f"  rtp {name}: loss {d['loss_pct']:.4f} % ({d['lost']} of {d['sent']}), jitter p99 {d['jitter_ms']['p99']:.3f} ms, "
          f"arrival deviation p99 {d['arrival_dev_ms']['p99']:.3f} ms max {d['arrival_dev_ms']['max']:.3f} ms, transit p99 {d['transit_ms']['p99']:.3f} ms")
print(f"  setup latency p50 {r['setup_ms']['p50']:.2f} ms, p99 {r['setup_ms']['p99']:.2f} ms")
print(f"  PBX CPU, steady state ({$t_b - $t_a:.1f} s, {up} calls up): {steady_cpu*100:.1f} % of one core = {steady_cpu*100/up:.4f} % per call")
print(f"    of which user space {steady_user*100:.1f} %, kernel {steady_sys*100:.1f} % (the kernel part includes loopback delivery to the receiver)")
print(f"    per relayed datagram: {steady_cpu*1e6/pps:.2f} µs ({steady_user*1e6/pps:.2f} µs user, {steady_sys*1e6/pps:.2f} µs kernel)")
bpf_s = ($bpf_b_ns - $bpf_a_ns) / 1e9 / ($t_b - $t_a)
bpf_runs = ($bpf_b_cnt - $bpf_a_cnt) / ($t_b - $t_a)
machine = ($load_b - $load_a) / 1e6 / ($t_b - $t_a)
if bpf_runs > 0:
    print(f"  kernel forwarding program: {bpf_runs:.0f} runs/s, {bpf_s*1e9/bpf_runs:.0f} ns per run, "
          f"{bpf_s*100:.2f} % of one core = {bpf_s*100/up:.5f} % per call")
    print(f"  relay cost per call (PBX process + forwarding program): {(steady_cpu + bpf_s)*100/up:.4f} % of one core")
print(f"  CPU of the whole load, steady state (PBX + loadgen + ksoftirqd): {machine*100:.1f} % of one core")
baseline = None
if $t_d > $t_c:
    baseline = ($base_b - $base_a) / 1e6 / ($t_d - $t_c)
    print(f"  baseline, the same calls phone to phone without the PBX (loadgen + ksoftirqd): {baseline*100:.1f} % of one core")
    print(f"  relay's whole cost (load with the PBX - baseline): {(machine-baseline)*100:.1f} % of one core = {(machine-baseline)*100/up:.4f} % per call")
print(f"  PBX CPU, whole run ({$t_end - $t_start:.1f} s): {run_cpu*100:.1f} % of one core")
print(f"  PBX RSS: before {$rss_before/1024:.1f} MiB, steady {$rss_steady/1024:.1f} MiB, peak seen {$rss_peak_seen/1024:.1f} MiB, "
      f"VmHWM {$rss_hwm/1024:.1f} MiB, after {$rss_after/1024:.1f} MiB")
print(f"  PBX memory per call: {($rss_steady - $rss_before)/up:.1f} KiB (steady - before) / {up}")
print(f"  loadgen CPU: {r['loadgen_cpu_pct']:.1f} % of one core over {r['duration_s']:.1f} s")
print("JSON " + json.dumps({
    "calls": calls, "established": r["calls_established"], "failed": r["calls_failed"],
    "pbx_cpu_pct_steady": round(steady_cpu*100, 3), "pbx_cpu_pct_per_call": round(steady_cpu*100/up, 5),
    "pbx_user_pct_steady": round(steady_user*100, 3), "pbx_sys_pct_steady": round(steady_sys*100, 3),
    "pbx_rss_kib_before": $rss_before, "pbx_rss_kib_steady": $rss_steady, "pbx_rss_kib_hwm": $rss_hwm,
    "pbx_rss_kib_per_call": round(($rss_steady - $rss_before)/up, 2),
    "loss_pct_fwd": r["rtp_caller_to_callee"]["loss_pct"], "loss_pct_rev": r["rtp_callee_to_caller"]["loss_pct"],
    "loadgen_cpu_pct": r["loadgen_cpu_pct"], "kernel_forwarding": "$KERNEL_FORWARDING",
    "bpf_pct_steady": round(bpf_s*100, 4), "bpf_ns_per_run": round(bpf_s*1e9/bpf_runs, 1) if bpf_runs else None,
    "relay_pct_per_call": round((steady_cpu + bpf_s)*100/up, 5), "machine_pct_steady": round(machine*100, 2),
    "baseline_machine_pct": round(baseline*100, 2) if baseline is not None else None,
    "relay_machine_pct_per_call": round((machine-baseline)*100/up, 5) if baseline is not None else None,
    "jitter_p99_ms_fwd": r["rtp_caller_to_callee"]["jitter_ms"]["p99"], "jitter_p99_ms_rev": r["rtp_callee_to_caller"]["jitter_ms"]["p99"]}))
EOF
exit "$lg_status"
