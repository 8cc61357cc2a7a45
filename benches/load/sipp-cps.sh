#!/usr/bin/env bash
# Signalling load test: sipp's built-in `uac` scenario (INVITE -> 100 -> 200 -> ACK -> BYE
# -> 200, no RTP) against `leadscaller serve` with the echo app, at increasing call rates.
#
# Usage:  benches/load/sipp-cps.sh [RATE ...]        (default: 50 100 200 300 400 500)
#
# Environment (all optional):
#   STEP_SECS=20     seconds of calls per step (sipp -m = RATE * STEP_SECS, so it always ends)
#   SETTLE_SECS=5    pause after each step before RSS / open-fd / live-call readings
#   FINAL_SECS=40    idle wait after the last step (> 64*T1 = 32 s, so every finished
#                    transaction has expired), then a last RSS reading
#   CALL_MS=0        sipp -d: pause between ACK and BYE, in ms
#   LOG_LEVEL=info   server log level (the log goes to $OUT_DIR/server.log)
#   OUT_DIR=...      where results go (default: a new directory under /tmp)
#   KEEP_GOING=0     1 = run every rate even after a step with failures
#   SKIP_BUILD=0     1 = do not run `cargo build --release` (binary must exist)
#   RTP_MIN=61000 RTP_MAX=65534   server RTP port range. The echo app takes a pair per
#                    call, round-robin over the whole range, so the range should be free: the
#                    default lies above the kernel's ephemeral range (32768-60999, where
#                    sipp's and this script's ports come from) and above 20000-32000, where
#                    the integration tests (tests/common) take port blocks, so a load run
#                    running beside `cargo test` takes no port a test expects to be free.
#
# Only 127.0.0.1 is ever targeted. Every process this script starts is killed by PID on
# exit. Method and recorded results: docs/benchmarks.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(50 100 200 300 400 500)
STEP_SECS=${STEP_SECS:-20}
SETTLE_SECS=${SETTLE_SECS:-5}
FINAL_SECS=${FINAL_SECS:-40}
CALL_MS=${CALL_MS:-0}
LOG_LEVEL=${LOG_LEVEL:-info}
KEEP_GOING=${KEEP_GOING:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
RTP_MIN=${RTP_MIN:-61000}
RTP_MAX=${RTP_MAX:-65534}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/leadscaller-cps.XXXXXX)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
HZ=$(getconf CLK_TCK)
TARGET=127.0.0.1
# stop_pid (also the direct children: sipp runs under /usr/bin/time), free_udp_port,
# cpu_ticks, rss_kib
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/proc.sh"

command -v sipp >/dev/null || { echo "sipp not found (apt-get install sip-tester)" >&2; exit 2; }

SERVER_PID=""
SIPP_PID=""
cleanup() {
    local rc=$?
    trap - EXIT
    stop_pid "$SIPP_PID"
    stop_pid "$SERVER_PID"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fd_count() { ls "/proc/$1/fd" | wc -l; }
# Datagrams the kernel dropped because a UDP receive buffer was full (whole machine).
udp_rcvbuf_errors() { awk '/^Udp:/ { n++; if (n == 1) for (i = 1; i <= NF; i++) h[i] = $i
    else for (i = 1; i <= NF; i++) if (h[i] == "RcvbufErrors") print $i }' /proc/net/snmp; }
# Calls the echo app refused for want of an RTP port (current and older log messages).
NO_PORT_RE='"(no free RTP port pair in the range|cannot bind RTP port|RTP port range exhausted)"'
log_count() { grep -c -E "$1" "$OUT_DIR/server.log" || true; }
thread_count() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }

# ---- build -------------------------------------------------------------------------------
if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/leadscaller"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }

# ---- server config -----------------------------------------------------------------------
SIP_PORT=$(free_udp_port)
HTTP_PORT=$(free_udp_port)
SIPP_PORT=$(free_udp_port)
MEDIA_PORT=$(free_udp_port)
CONF_DIR="$OUT_DIR/conf"
mkdir -p "$CONF_DIR" "$OUT_DIR/data"
cat >"$CONF_DIR/leadscaller.toml" <<EOF
# Written by benches/load/sipp-cps.sh.
data_dir = "$OUT_DIR/data"
database_url = "sqlite://$OUT_DIR/data/leadscaller.db"

[sip]
listen = [{ transport = "udp", addr = "$TARGET:$SIP_PORT" }]

[rtp]
# The echo app takes one RTP port pair per call (round-robin over the range); see
# RTP_MIN/RTP_MAX in the script for why this range.
port_min = $RTP_MIN
port_max = $RTP_MAX
# sipp's uac scenario sends no RTP: never hang up for lack of media.
media_timeout_s = 0

[http]
listen = "$TARGET:$HTTP_PORT"

[log]
format = "json"
level = "$LOG_LEVEL"

[[routes]]
match_user = "*"
app = "echo"
EOF
# Anything already bound in the RTP range is skipped by the echo app (older builds answered
# 503); say so, since it means another program uses the range.
busy=$(ss -Huan | awk -v lo="$RTP_MIN" -v hi="$RTP_MAX" '{ n = split($4, a, ":"); p = a[n] + 0
    if (p >= lo && p <= hi + 1) print $4 }' | sort -u | tr '\n' ' ')
if [ -n "$busy" ]; then
    echo "WARNING: UDP ports in the RTP range $RTP_MIN-$RTP_MAX are already bound: $busy" >&2
    echo "WARNING: set RTP_MIN/RTP_MAX to a free range (rtp_port_fail counts calls refused for want of a port)" >&2
fi
"$BIN" check-config --config "$CONF_DIR/leadscaller.toml" >"$OUT_DIR/check-config.txt"

"$BIN" serve --config "$CONF_DIR/leadscaller.toml" >"$OUT_DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    grep -q "SIP listening" "$OUT_DIR/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT_DIR/server.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "SIP listening" "$OUT_DIR/server.log" || { echo "server did not start" >&2; exit 1; }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "loadavg before start: $(cut -d" " -f1-3 /proc/loadavg)"
    echo "sipp: $(sipp -v 2>&1 | awk '/SIPp v/ {print $2; exit}')"
    echo "server: $BIN pid $SERVER_PID on udp:$TARGET:$SIP_PORT, log level $LOG_LEVEL"
    echo "steps: ${RATES[*]} CPS x ${STEP_SECS}s, call length ${CALL_MS} ms, settle ${SETTLE_SECS}s"
    echo "server idle: rss $(rss_kib "$SERVER_PID") KiB, fds $(fd_count "$SERVER_PID"), threads $(thread_count "$SERVER_PID")"
} | tee "$OUT_DIR/env.txt"

# Column of a ';'-separated sipp CSV (header row 1) in the last row.
csv_col() { # file column-name
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        { last = $c } END { print (c ? last : "NA") }' "$1"
}
# Sum of every column of the counts CSV whose name matches the regex, in the last row.
counts_sum() { # file regex
    awk -F';' -v re="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ re) m[i] = 1; next }
        { s = 0; for (i in m) s += $i; last = s } END { print last + 0 }' "$1"
}

SUMMARY="$OUT_DIR/summary.tsv"
printf 'rate\tattempted\tsuccessful\tfailed\tunfinished\tachieved_cps\tsipp_retrans\tserver_retrans\tunexpected\trtt_ge10ms\tserver_calls_ended\tserver_warns\trtp_port_fail\tserver_cpu_pct\tsipp_cpu_pct\tserver_rss_kib\tserver_rss_settled_kib\tserver_fds_settled\tsipp_rc\tloadavg1\tudp_rcvbuf_drops\n' >"$SUMMARY"

best=0
idx=0
for rate in "${RATES[@]}"; do
    idx=$((idx + 1))
    step=$(printf '%s/step-%02d-%scps' "$OUT_DIR" "$idx" "$rate")
    mkdir -p "$step"
    total=$((rate * STEP_SECS))
    guard=$((STEP_SECS * 3 + 30))
    echo "--- $rate CPS: $total calls (guard ${guard}s)"
    warns0=$(log_count '"level":"(WARN|ERROR)"')
    ended0=$(log_count '"call ended"')
    bindfail0=$(log_count "$NO_PORT_RE")
    c0=$(cpu_ticks "$SERVER_PID")
    drops0=$(udp_rcvbuf_errors)
    t0=$(date +%s.%N)
    # The per-message receive timeout turns a call the server never finishes into a
    # failed call instead of a hang; -timeout bounds the whole step.
    (cd "$step" && exec /usr/bin/time -f '%U %S %e' -o "$step/sipp-time.txt" \
        sipp -sn uac "$TARGET:$SIP_PORT" -i "$TARGET" -p "$SIPP_PORT" -mp "$MEDIA_PORT" \
        -r "$rate" -rp 1000 -m "$total" -d "$CALL_MS" \
        -recv_timeout 10000 -timeout "$guard" -timeout_error -nostdin \
        -trace_stat -stf "$step/stat.csv" -fd 1 \
        -trace_screen -screen_file "$step/screen.txt" \
        -trace_counts -trace_err -error_file "$step/errors.log" \
        >"$step/sipp.out" 2>&1) &
    SIPP_PID=$!
    peak_rss=0
    : >"$step/rss.tsv"
    while kill -0 "$SIPP_PID" 2>/dev/null; do
        r=$(rss_kib "$SERVER_PID"); [ "$r" -gt "$peak_rss" ] && peak_rss=$r
        printf '%s\t%s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" "$r" \
            >>"$step/rss.tsv"
        sleep 0.5
    done
    set +e; wait "$SIPP_PID"; sipp_rc=$?; set -e
    SIPP_PID=""
    t1=$(date +%s.%N)
    load1=$(cut -d' ' -f1 /proc/loadavg)
    drops=$(($(udp_rcvbuf_errors) - drops0))
    c1=$(cpu_ticks "$SERVER_PID")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    server_cpu=$(awk -v d="$((c1 - c0))" -v hz="$HZ" -v w="$wall" 'BEGIN { printf "%.1f", 100 * d / hz / w }')
    read -r su ss se < <(tail -n 1 "$step/sipp-time.txt") || true
    sipp_cpu=$(awk -v u="${su:-0}" -v s="${ss:-0}" -v e="${se:-1}" 'BEGIN { printf "%.1f", 100 * (u + s) / e }')
    sleep "$SETTLE_SECS"
    rss_settled=$(rss_kib "$SERVER_PID")
    fds_settled=$(fd_count "$SERVER_PID")

    stat="$step/stat.csv"
    counts=$(ls "$step"/*_counts.csv 2>/dev/null | head -1 || true)
    created=$(csv_col "$stat" "TotalCallCreated")
    ok=$(csv_col "$stat" "SuccessfulCall(C)")
    failed=$(csv_col "$stat" "FailedCall(C)")
    retrans=$(csv_col "$stat" "Retransmissions(C)")
    rtt_lt10=$(csv_col "$stat" "ResponseTimeRepartition1_<10")
    rate_c=$(csv_col "$stat" "CallRate(C)")
    unexpected=NA server_retrans=NA
    if [ -n "$counts" ]; then
        unexpected=$(counts_sum "$counts" "_Unexp$")
        # Retransmitted responses received, e.g. 4_200_Retrans: the server resent a 200.
        server_retrans=$(counts_sum "$counts" "^[0-9]+_[0-9][0-9][0-9]_Retrans$")
    fi
    unfinished=$((created - ok - failed))
    # INVITE -> 200 OK took 10 ms or more (sipp's response-time resolution is 1 ms).
    rtt_ge10=$((created - rtt_lt10))
    warns=$(($(log_count '"level":"(WARN|ERROR)"') - warns0))
    ended=$(($(log_count '"call ended"') - ended0))
    bindfail=$(($(log_count "$NO_PORT_RE") - bindfail0))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "$created" \
        "$ok" "$failed" "$unfinished" "$rate_c" "$retrans" "$server_retrans" "$unexpected" "$rtt_ge10" \
        "$ended" "$warns" "$bindfail" "$server_cpu" "$sipp_cpu" "$peak_rss" "$rss_settled" "$fds_settled" "$sipp_rc" "$load1" "$drops" >>"$SUMMARY"
    echo "    attempted $created ok $ok failed $failed unfinished $unfinished achieved ${rate_c} CPS" \
        "retrans sipp $retrans server $server_retrans unexpected $unexpected rtt>=10ms $rtt_ge10" \
        "| server: calls ended $ended warn/err $warns rtp-port-fail $bindfail cpu ${server_cpu}%" \
        "peak rss ${peak_rss} KiB settled ${rss_settled} KiB fds ${fds_settled} | sipp cpu ${sipp_cpu}% rc $sipp_rc | loadavg $load1 | udp rcvbuf drops $drops"
    if [ "$failed" != 0 ] || [ "$unfinished" != 0 ] || [ "$created" != "$total" ]; then
        echo "    step at $rate CPS had failures; see $step/"
        [ "$KEEP_GOING" = 1 ] || break
    else
        [ "$rate" -gt "$best" ] && best=$rate
    fi
done

echo "highest rate with 0 failed calls: $best CPS" | tee -a "$OUT_DIR/env.txt"
if [ "$FINAL_SECS" -gt 0 ]; then
    sleep "$FINAL_SECS"
    echo "server after ${FINAL_SECS}s idle: rss $(rss_kib "$SERVER_PID") KiB, fds $(fd_count "$SERVER_PID")," \
        "cpu ticks total $(cpu_ticks "$SERVER_PID")" | tee -a "$OUT_DIR/env.txt"
fi
echo "results: $OUT_DIR (summary.tsv, step-*/)"
column -t -s $'\t' "$SUMMARY"
