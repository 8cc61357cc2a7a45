#!/usr/bin/env bash
# Media load test: N concurrent calls with RTP both ways against `leadscaller serve` running
# the echo app. sipp places N calls (INVITE offering PCMU, ACK, 20 ms PCMU packets at 50/s
# for the hold time, BYE); the server decodes each caller packet and sends it back. While
# all N calls are up this script measures, per N:
#   - the server's CPU (utime+stime from /proc/PID/stat over WINDOW_S) and RSS (VmRSS),
#     minus the idle baseline taken before the calls, per call;
#   - from a loopback capture (dumpcap, WINDOW_S, after the CPU window so that the capture
#     does not load the CPU reading): server packets per stream per second, echo loss
#     (each caller frame carries its index; a frame whose index never comes back is lost),
#     and the playout timing error of every server->sipp stream against an ideal 20 ms
#     grid (rtp_timing.py analyze).
#
# Usage:  benches/load/media-load.sh                    (NS="100 300 500 1000", HOLD_S=30)
#         NS="100 300" HOLD_S=20 benches/load/media-load.sh
#
# Environment (all optional):
#   NS="100 300 500 1000"  numbers of concurrent calls, one step each (fresh server each)
#   HOLD_S=30        seconds each call stays up after its ACK (sipp -d)
#   WINDOW_S=10      length of the CPU window and of the capture window
#   RATE=            call rate while ramping up (default N/4, at least 20: all up in ~4 s)
#   IDLE_S=5         idle CPU baseline before each step
#   MEDIA=rtpstream  how sipp sends RTP: rtpstream (sipp's rtp_stream, UDP sockets, a few
#                    threads) or pcap (play_pcap_audio; sipp 3.6 gives each call a thread
#                    and a raw socket that receives a copy of every UDP datagram on
#                    127.0.0.1, which costs the kernel O(N^2): only for small N)
#   RTP_MIN=61000 RTP_MAX=65534   server RTP range (see sipp-cps.sh for why this range);
#                    must hold N pairs
#   SIPP_MP=42000    first local media port of sipp (2 per call, upward)
#   RTP_EXTRA=       more lines for the server's [rtp] section, e.g. 'inband_dtmf = false'
#   RECORD=1         record every call (stereo WAV under the step's conf/recordings); 0 = off
#   LOG_LEVEL=warn   server log level (log in $OUT_DIR/step-*/server.log)
#   OUT_DIR=...      where results go (default: a new directory under /tmp)
#   KEEP_PCAP=0      1 = keep the captures (about 80 bytes per packet)
#   SKIP_BUILD=0     1 = do not run `cargo build --release` (binary must exist)
#
# Only 127.0.0.1 is used. Every process this script starts is killed by PID on exit; each
# step is bounded (sipp -timeout HOLD_S+45 s). Method and results: docs/benchmarks.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
read -r -a NS_LIST <<<"${NS:-100 300 500 1000}"
HOLD_S=${HOLD_S:-30}
WINDOW_S=${WINDOW_S:-10}
RATE=${RATE:-}
IDLE_S=${IDLE_S:-5}
MEDIA=${MEDIA:-rtpstream}
RTP_EXTRA=${RTP_EXTRA:-}
RECORD=${RECORD:-1}
RTP_MIN=${RTP_MIN:-61000}
RTP_MAX=${RTP_MAX:-65534}
SIPP_MP=${SIPP_MP:-42000}
LOG_LEVEL=${LOG_LEVEL:-warn}
KEEP_PCAP=${KEEP_PCAP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/leadscaller-media.XXXXXX)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
HZ=$(getconf CLK_TCK)
# The capture runs this much longer than WINDOW_S and its first CAP_SKIP_S seconds are not
# analysed: starting dumpcap (its 64 MiB buffer) stalled the server for ~0.3 s at N=1000.
CAP_SKIP_S=2
TARGET=127.0.0.1
PY="python3 $HERE/rtp_timing.py"
# stop_pid, free_udp_port, cpu_ticks, rss_kib, now, cpu_pct, rtp_sockets
. "$HERE/proc.sh"

for tool in sipp dumpcap python3 ss; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done
case "$MEDIA" in
    rtpstream) SCENARIO="$HERE/sipp/uac_media_hold.xml" ;;
    pcap) SCENARIO="$HERE/sipp/uac_media_hold_pcap.xml" ;;
    *) echo "MEDIA must be rtpstream or pcap" >&2; exit 2 ;;
esac

SERVER_PID=""
SIPP_PID=""
CAP_PID=""
cleanup() {
    local rc=$?
    trap - EXIT
    stop_pid "$CAP_PID"
    stop_pid "$SIPP_PID"
    stop_pid "$SERVER_PID"
    [ "$KEEP_PCAP" = 1 ] || rm -f "$OUT_DIR"/step-*/rtp.pcap
    rm -f "$OUT_DIR"/step-*/media.ulaw "$OUT_DIR"/step-*/media.pcap
    rm -rf "$OUT_DIR"/step-*/data "$OUT_DIR"/step-*/conf/recordings
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# Datagrams the kernel dropped at the server's RTP sockets (full receive buffer), summed
# over the sockets bound in the RTP range now (the drops column of /proc/net/udp).
rtp_socket_drops() { python3 -c 'import sys
lo, hi = int(sys.argv[1]), int(sys.argv[2]); d = 0
for line in open("/proc/net/udp").readlines()[1:]:
    f = line.split()
    if lo <= int(f[1].split(":")[1], 16) <= hi + 1: d += int(f[-1])
print(d)' "$RTP_MIN" "$RTP_MAX"; }
csv_col() { # file column-name: the column in the last row of a ';'-separated sipp CSV
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        { last = $c } END { print (c ? last : "NA") }' "$1"
}
json_get() { # file dotted.key
    python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k, "NA") if isinstance(v, dict) else "NA"
print(v)' "$1" "$2"
}

# ---- build -------------------------------------------------------------------------------
if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/leadscaller"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }

# The caller audio: long enough for the hold (plus the ramp), 20 ms frames at 50/s.
MEDIA_S=$((HOLD_S + 15))
if [ "$MEDIA" = rtpstream ]; then
    $PY gen-ulaw "$OUT_DIR/media.ulaw" "$MEDIA_S"
else
    $PY gen-pcap "$OUT_DIR/media.pcap" "$MEDIA_S"
fi

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "loadavg before start: $(cut -d" " -f1-3 /proc/loadavg)"
    echo "sipp: $(sipp -v 2>&1 | awk '/SIPp v/ {print $2; exit}'), media $MEDIA"
    echo "steps: N = ${NS_LIST[*]}, hold ${HOLD_S}s, window ${WINDOW_S}s, server RTP $RTP_MIN-$RTP_MAX"
    [ -z "$RTP_EXTRA" ] || echo "server [rtp] extra: $RTP_EXTRA"
} | tee "$OUT_DIR/env.txt"

SUMMARY="$OUT_DIR/summary.tsv"
printf 'N\tcompleted\tfailed\tstreams\tidle_cpu_pct\tcpu_pct\tcpu_pct_per_call\tidle_rss_mib\trss_mib\trss_mib_per_call\tpps_per_stream\tloss_pct\tlost/checked\tlost_sent_late\tsilence_out\terr_p50_ms\terr_p99_ms\terr_max_ms\tgap_p99_ms\tsipp_send_p99_ms\tsipp_cpu_pct\tcap_drops\trx_drops\tloadavg1\tnote\n' >"$SUMMARY"

idx=0
for n in "${NS_LIST[@]}"; do
    idx=$((idx + 1))
    step=$(printf '%s/step-%02d-%scalls' "$OUT_DIR" "$idx" "$n")
    mkdir -p "$step/conf" "$step/data"
    note=""
    pairs=$(((RTP_MAX - RTP_MIN + 1) / 2))
    if [ "$n" -gt "$pairs" ]; then
        echo "--- N=$n: the RTP range $RTP_MIN-$RTP_MAX holds only $pairs pairs; skipped" >&2
        continue
    fi
    rate=${RATE:-$((n / 4 > 20 ? n / 4 : 20))}
    echo "--- N=$n calls, ${rate} calls/s ramp, hold ${HOLD_S}s"

    SIP_PORT=$(free_udp_port)
    HTTP_PORT=$(free_udp_port)
    SIPP_PORT=$(free_udp_port)
    cat >"$step/conf/leadscaller.toml" <<EOF
# Written by benches/load/media-load.sh.
data_dir = "$step/data"
database_url = "sqlite://$step/data/leadscaller.db"

[sip]
listen = [{ transport = "udp", addr = "$TARGET:$SIP_PORT" }]

[rtp]
port_min = $RTP_MIN
port_max = $RTP_MAX
media_timeout_s = 0
$RTP_EXTRA

[recording]
enabled = $([ "$RECORD" = 1 ] && echo true || echo false)

[http]
listen = "$TARGET:$HTTP_PORT"

[log]
format = "json"
level = "$LOG_LEVEL"

[[routes]]
match_user = "*"
app = "echo"
EOF
    busy=$(rtp_sockets)
    [ "$busy" = 0 ] || echo "WARNING: $busy UDP sockets already bound in $RTP_MIN-$RTP_MAX" >&2
    "$BIN" serve --config "$step/conf/leadscaller.toml" >"$step/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        # At warn level the server prints nothing on start: wait for its SIP socket.
        ss -Huan "sport = :$SIP_PORT" | grep -q . && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$step/server.log" >&2; exit 1; }
        sleep 0.1
    done
    ss -Huan "sport = :$SIP_PORT" | grep -q . || { echo "server did not start" >&2; exit 1; }

    # ---- idle baseline
    sleep 1
    i_c0=$(cpu_ticks "$SERVER_PID"); i_t0=$(now)
    sleep "$IDLE_S"
    i_c1=$(cpu_ticks "$SERVER_PID"); i_t1=$(now)
    idle_cpu=$(cpu_pct "$i_c0" "$i_t0" "$i_c1" "$i_t1")
    idle_rss=$(rss_kib "$SERVER_PID")

    # ---- calls
    cp "$OUT_DIR"/media.* "$step/"
    t_start=$(now)
    guard=$((HOLD_S + 45))
    (cd "$step" && exec sipp -sf "$SCENARIO" "$TARGET:$SIP_PORT" -i "$TARGET" -p "$SIPP_PORT" \
        -mi "$TARGET" -mp "$SIPP_MP" -l "$n" -m "$n" -r "$rate" -rp 1000 -d $((HOLD_S * 1000)) \
        -recv_timeout 10000 -timeout "${guard}s" -timeout_error -nostdin \
        -trace_stat -stf "$step/stat.csv" -fd 1 \
        -trace_err -error_file "$step/errors.log" \
        -trace_screen -screen_file "$step/screen.txt" \
        >"$step/sipp.out" 2>&1) &
    SIPP_PID=$!
    # Wait for every call's RTP and RTCP sockets (at most the ramp plus 15 s).
    up_deadline=$(awk -v a="$t_start" -v n="$n" -v r="$rate" 'BEGIN { print a + n / r + 15 }')
    while :; do
        s=$(rtp_sockets)
        [ "$s" -ge $((2 * n)) ] && break
        kill -0 "$SIPP_PID" 2>/dev/null || break
        awk -v d="$up_deadline" -v t="$(now)" 'BEGIN { exit !(t > d) }' && break
        sleep 0.2
    done
    up_s=$(elapsed "$t_start")
    streams_up=$(($(rtp_sockets) / 2))
    echo "    $streams_up of $n calls up after ${up_s}s"
    [ "$streams_up" -ge "$n" ] || note="only $streams_up calls up;"
    sleep 1 # jitter buffers fill, the first echoes leave

    # Both windows must end before the first calls hang up (t_start + HOLD_S).
    left=$(awk -v a="$t_start" -v h="$HOLD_S" -v t="$(now)" 'BEGIN { printf "%d", a + h - 1 - t }')
    overlap=0
    if [ "$left" -lt $((2 * WINDOW_S + CAP_SKIP_S)) ]; then
        overlap=1
        note="$note CPU window overlaps the capture;"
    fi
    sipp_pid_real=$(pgrep -P "$SIPP_PID" -x sipp 2>/dev/null || echo "$SIPP_PID")

    start_capture() {
        dumpcap -q -i lo -P -s 64 -B 64 -f "udp and portrange $RTP_MIN-$RTP_MAX" \
            -a "duration:$((WINDOW_S + CAP_SKIP_S))" -w "$step/rtp.pcap" 2>"$step/dumpcap.err" &
        CAP_PID=$!
    }
    [ "$overlap" = 1 ] && start_capture
    drops0=$(rtp_socket_drops)
    c0=$(cpu_ticks "$SERVER_PID"); t0=$(now)
    s0=$(cpu_ticks "$sipp_pid_real" 2>/dev/null || echo 0)
    sleep "$WINDOW_S"
    c1=$(cpu_ticks "$SERVER_PID"); t1=$(now)
    s1=$(cpu_ticks "$sipp_pid_real" 2>/dev/null || echo 0)
    rss=$(rss_kib "$SERVER_PID")
    load1=$(cut -d' ' -f1 /proc/loadavg)
    cpu=$(cpu_pct "$c0" "$t0" "$c1" "$t1")
    sipp_cpu=$(cpu_pct "$s0" "$t0" "$s1" "$t1")
    [ "$overlap" = 1 ] || start_capture
    wait "$CAP_PID" 2>/dev/null || true
    CAP_PID=""
    # Read while the calls are still up (a closed socket takes its counter with it).
    udp_drops=$(($(rtp_socket_drops) - drops0))
    # "Packets received/dropped on interface 'lo': R/D (...)"
    cap_drops=$(awk -F'[:/ ]+' '/dropped on interface/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) v[++k] = $i }
        END { print (k >= 2 ? v[2] : "NA") }' "$step/dumpcap.err")
    echo "    server cpu ${cpu}% (idle ${idle_cpu}%), rss ${rss} KiB (idle ${idle_rss}), sipp cpu ${sipp_cpu}%, loadavg $load1"

    # ---- the rest of the hold; bounded by sipp's -timeout and a guard of our own
    end_deadline=$(awk -v a="$t_start" -v g="$guard" 'BEGIN { print a + g + 10 }')
    ( $PY analyze "$step/rtp.pcap" --rtp-min "$RTP_MIN" --rtp-max "$RTP_MAX" --calls "$n" \
        --skip "$CAP_SKIP_S" --json "$step/rtp.json" >/dev/null 2>"$step/analyze.err" || true ) &
    ana_pid=$!
    while kill -0 "$SIPP_PID" 2>/dev/null; do
        if awk -v d="$end_deadline" -v t="$(now)" 'BEGIN { exit !(t > d) }'; then
            note="$note sipp killed at the guard;"
            stop_pid "$SIPP_PID"
            break
        fi
        sleep 0.5
    done
    set +e; wait "$SIPP_PID" 2>/dev/null; sipp_rc=$?; set -e
    SIPP_PID=""
    wait "$ana_pid" || true
    stop_pid "$SERVER_PID"
    SERVER_PID=""

    stat="$step/stat.csv"
    ok=NA failed=NA
    if [ -f "$stat" ]; then
        ok=$(csv_col "$stat" "SuccessfulCall(C)")
        failed=$(csv_col "$stat" "FailedCall(C)")
    fi
    j="$step/rtp.json"
    if [ -s "$j" ]; then
        pps=$(json_get "$j" server_pps_per_stream_mean)
        streams=$(json_get "$j" server_streams)
        loss=$(json_get "$j" loss_pct)
        lostof="$(json_get "$j" echo_lost)/$(json_get "$j" echo_checked)"
        lost_late=$(json_get "$j" echo_lost_sent_late)
        silence=$(json_get "$j" server_silence_pkts)
        p50=$(json_get "$j" timing_grid_ms.p50)
        p99=$(json_get "$j" timing_grid_ms.p99)
        pmax=$(json_get "$j" timing_grid_ms.max)
        gap99=$(json_get "$j" timing_gap_ms.p99)
        sipp99=$(json_get "$j" sipp_send_grid_ms.p99)
    else
        pps=NA streams=NA loss=NA lostof=NA lost_late=NA silence=NA p50=NA p99=NA pmax=NA gap99=NA sipp99=NA
        note="$note no capture analysis ($(head -c 200 "$step/analyze.err" 2>/dev/null));"
    fi
    [ "$KEEP_PCAP" = 1 ] || rm -f "$step/rtp.pcap"
    if [ -d "$step/conf/recordings" ]; then
        recs=$(find "$step/conf/recordings" -name '*.wav' | wc -l)
        parts=$(find "$step/conf/recordings" -name '*.part' | wc -l)
        echo "    recordings: $recs finished, $parts unfinished, $(du -sh "$step/conf/recordings" | cut -f1)"
        rm -rf "$step/conf/recordings"
    fi
    rm -f "$step"/media.* && rm -rf "$step/data"
    cpu_call=$(awk -v a="$cpu" -v b="$idle_cpu" -v n="$n" 'BEGIN { printf "%.4f", (a - b) / n }')
    rss_mib=$(awk -v r="$rss" 'BEGIN { printf "%.1f", r / 1024 }')
    idle_rss_mib=$(awk -v r="$idle_rss" 'BEGIN { printf "%.1f", r / 1024 }')
    rss_call=$(awk -v a="$rss" -v b="$idle_rss" -v n="$n" 'BEGIN { printf "%.3f", (a - b) / 1024 / n }')
    [ "$sipp_rc" = 0 ] || note="$note sipp rc $sipp_rc;"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$n" "$ok" "$failed" "$streams" "$idle_cpu" "$cpu" "$cpu_call" "$idle_rss_mib" "$rss_mib" \
        "$rss_call" "$pps" "$loss" "$lostof" "$lost_late" "$silence" "$p50" "$p99" "$pmax" "$gap99" "$sipp99" "$sipp_cpu" \
        "$cap_drops" "$udp_drops" "$load1" "${note:--}" >>"$SUMMARY"
    echo "    completed $ok failed $failed | pps/stream $pps echo loss ${loss}% ($lostof;" \
        "$lost_late of them sent late by sipp) silence frames out $silence" \
        "| timing error p50 $p50 p99 $p99 max $pmax ms (gap p99 $gap99, sipp send p99 $sipp99)" \
        "| capture drops $cap_drops server rx drops $udp_drops ${note}"
done

echo "results: $OUT_DIR (summary.tsv, step-*/)"
column -t -s $'\t' "$SUMMARY"
