#!/usr/bin/env bash
# Agent load test: N concurrent SIP calls into an LLM-mode agent with instant in-process
# providers (scripted STT, echo LLM, silence TTS), so what is measured is the platform, not a
# model. sipp places N calls offering PCMU and plays a caller that talks in turns: 1.0 s of
# voice-band noise, then 1.6 s of silence, looped (raw mu-law through rtp_stream). Each pause
# ends a caller turn (energy VAD, 400 ms of silence), the agent answers it, and the server logs
# one `turn latency` line per turn (ms since the end of the caller's speech).
#
# Per N it reports:
#   - platform overhead per turn: first reply frame out - endpoint decided (the time the
#     pipeline itself adds once the turn is decided), p50/p95/max over every turn of the run;
#   - the server's CPU (% of one core, /proc/PID/stat over WINDOW_S, idle baseline
#     subtracted) and RSS per call.
#
# Usage:  benches/load/agent-load.sh            (NS="1 200", HOLD_S=40)
#         NS="1 50 200" HOLD_S=30 benches/load/agent-load.sh
# Environment: NS, HOLD_S, WINDOW_S=15, IDLE_S=3, RTP_MIN=61000 RTP_MAX=65534, SIPP_MP=42000,
#              OUT_DIR (default a new /tmp dir), SKIP_BUILD=1 to use an existing release binary.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
read -r -a NS_LIST <<<"${NS:-1 200}"
HOLD_S=${HOLD_S:-40}
WINDOW_S=${WINDOW_S:-15}
IDLE_S=${IDLE_S:-3}
RTP_MIN=${RTP_MIN:-61000}
RTP_MAX=${RTP_MAX:-65534}
SIPP_MP=${SIPP_MP:-42000}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/leadscaller-agent.XXXXXX)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
HZ=$(getconf CLK_TCK)
TARGET=127.0.0.1
# stop_pid, free_udp_port, cpu_ticks, rss_kib, now, cpu_pct, rtp_sockets
. "$HERE/proc.sh"
for tool in sipp python3 ss; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done

SERVER_PID=""
SIPP_PID=""
cleanup() {
    local rc=$?
    trap - EXIT
    stop_pid "$SIPP_PID"
    stop_pid "$SERVER_PID"
    rm -rf "$OUT_DIR"/step-*/data "$OUT_DIR"/step-*/media.ulaw
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin leadscaller)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/leadscaller"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }

# The caller: 1.0 s of band-limited noise at about -20 dBFS, 1.6 s of silence, repeated.
python3 - "$OUT_DIR/media.ulaw" "$((HOLD_S + 20))" <<'EOPY'
import math, random, sys
def ulaw(s):
    # G.711 mu-law (bias 0x84, clip 32635).
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exp = max(0, min(7, (s >> 7).bit_length() - 1))
    mant = (s >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF
random.seed(7)
out = bytearray(); rate = 8000; secs = int(sys.argv[2]); t = 0; prev = 0.0
while len(out) < secs * rate:
    for i in range(int(1.0 * rate)):
        prev = 0.6 * prev + 0.4 * random.uniform(-1, 1)   # low-passed noise
        env = min(1.0, i / 400, (rate - i) / 400)
        out.append(ulaw(int(6000 * prev * env + 2000 * math.sin(2 * math.pi * 220 * i / rate) * env)))
    out.extend(bytes([0xFF]) * int(1.6 * rate))
open(sys.argv[1], "wb").write(bytes(out[: secs * rate]))
EOPY

SUMMARY="$OUT_DIR/summary.tsv"
printf 'N\tcalls_up\tturns\toverhead_p50_ms\toverhead_p95_ms\toverhead_max_ms\tfirst_frame_p50_ms\tidle_cpu_pct\tcpu_pct\tcpu_pct_per_call\tidle_rss_mib\trss_mib\trss_mib_per_call\tloadavg1\n' >"$SUMMARY"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT_DIR/env.txt"

idx=0
for n in "${NS_LIST[@]}"; do
    idx=$((idx + 1))
    step=$(printf '%s/step-%02d-%scalls' "$OUT_DIR" "$idx" "$n")
    mkdir -p "$step/conf/agents" "$step/data"
    SIP_PORT=$(free_udp_port); HTTP_PORT=$(free_udp_port); SIPP_PORT=$(free_udp_port)
    utterances=$(python3 -c 'print(", ".join(["\"turn %d\"" % i for i in range(200)]))')
    cat >"$step/conf/agents/bench.toml" <<EOF
# Written by benches/load/agent-load.sh: instant in-process providers.
system_prompt = "Repeat what the caller said."
greeting = "Hi."
[stt]
name = "scripted"
utterances = [$utterances]
[llm]
name = "echo"
[tts]
name = "silence"
ms_per_char = 40
EOF
    cat >"$step/conf/leadscaller.toml" <<EOF
data_dir = "$step/data"
database_url = "sqlite://$step/data/leadscaller.db"
[sip]
listen = [{ transport = "udp", addr = "$TARGET:$SIP_PORT" }]
[rtp]
port_min = $RTP_MIN
port_max = $RTP_MAX
media_timeout_s = 0
[http]
listen = "$TARGET:$HTTP_PORT"
[log]
format = "json"
level = "warn,leadscaller::agent::latency=info"
[[routes]]
match_user = "*"
app = "agent"
flow = "agents/bench.toml"
EOF
    echo "--- N=$n agent calls, hold ${HOLD_S}s"
    "$BIN" serve --config "$step/conf/leadscaller.toml" >"$step/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        ss -Huan "sport = :$SIP_PORT" | grep -q . && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$step/server.log" >&2; exit 1; }
        sleep 0.1
    done
    sleep 1
    i_c0=$(cpu_ticks "$SERVER_PID"); i_t0=$(now); sleep "$IDLE_S"
    i_c1=$(cpu_ticks "$SERVER_PID"); i_t1=$(now)
    idle_cpu=$(cpu_pct "$i_c0" "$i_t0" "$i_c1" "$i_t1"); idle_rss=$(rss_kib "$SERVER_PID")
    cp "$OUT_DIR/media.ulaw" "$step/"
    rate=$((n / 4 > 20 ? n / 4 : 20))
    (cd "$step" && exec sipp -sf "$HERE/sipp/uac_media_hold.xml" "$TARGET:$SIP_PORT" -i "$TARGET" \
        -p "$SIPP_PORT" -mi "$TARGET" -mp "$SIPP_MP" -l "$n" -m "$n" -r "$rate" -rp 1000 \
        -d $((HOLD_S * 1000)) -recv_timeout 10000 -timeout "$((HOLD_S + 45))s" -nostdin \
        -trace_err -error_file "$step/errors.log" >"$step/sipp.out" 2>&1) &
    SIPP_PID=$!
    t_start=$(now)
    while [ "$(rtp_sockets)" -lt $((2 * n)) ]; do
        kill -0 "$SIPP_PID" 2>/dev/null || break
        awk -v a="$t_start" -v t="$(now)" -v n="$n" -v r="$rate" 'BEGIN { exit !(t > a + n / r + 15) }' && break
        sleep 0.2
    done
    up=$(($(rtp_sockets) / 2))
    sleep 3
    c0=$(cpu_ticks "$SERVER_PID"); t0=$(now); sleep "$WINDOW_S"
    c1=$(cpu_ticks "$SERVER_PID"); t1=$(now)
    rss=$(rss_kib "$SERVER_PID"); load1=$(cut -d' ' -f1 /proc/loadavg)
    cpu=$(cpu_pct "$c0" "$t0" "$c1" "$t1")
    echo "    $up calls up; server cpu ${cpu}% (idle ${idle_cpu}%), rss ${rss} KiB (idle ${idle_rss}), loadavg $load1"
    wait "$SIPP_PID" 2>/dev/null || true
    SIPP_PID=""
    stop_pid "$SERVER_PID"; SERVER_PID=""
    python3 - "$step/server.log" "$n" "$up" "$idle_cpu" "$cpu" "$idle_rss" "$rss" "$load1" >>"$SUMMARY" <<'EOPY'
import json, sys
log, n, up, idle_cpu, cpu, idle_rss, rss, load1 = sys.argv[1:]
over, first = [], []
for line in open(log):
    try: j = json.loads(line)
    except ValueError: continue
    f = j.get("fields", {})
    if f.get("message") != "turn latency": continue
    e, o = f.get("endpoint_ms", -1), f.get("first_frame_out_ms", -1)
    if e >= 0 and o >= 0: over.append(o - e); first.append(o)
def pct(v, p):
    if not v: return "NA"
    v = sorted(v); return str(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))])
n, up = int(n), int(up)
cpu_call = (float(cpu) - float(idle_cpu)) / max(up, 1)
rss_call = (int(rss) - int(idle_rss)) / 1024 / max(up, 1)
print("\t".join([str(n), str(up), str(len(over)), pct(over, 50), pct(over, 95), str(max(over)) if over else "NA",
    pct(first, 50), idle_cpu, cpu, "%.3f" % cpu_call, "%.1f" % (int(idle_rss) / 1024), "%.1f" % (int(rss) / 1024),
    "%.3f" % rss_call, load1]))
EOPY
    tail -1 "$SUMMARY" | awk -F'\t' '{ printf "    %s turns: overhead p50 %s ms, p95 %s ms, max %s ms; %s%% core and %s MiB per call\n", $3, $4, $5, $6, $10, $13 }'
done
echo "summary: $SUMMARY"
column -t -s $'\t' "$SUMMARY"
