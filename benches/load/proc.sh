# Helpers the load scripts share (sourced, not run): stopping processes, free ports, and the
# CPU and memory of a process read from /proc. cpu_pct needs HZ; rtp_sockets RTP_MIN/RTP_MAX.

# Stops a process and its children: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 kids="" k
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kids=$(cat "/proc/$pid/task/"*/children 2>/dev/null || true)
    for k in $kids; do kill "$k" 2>/dev/null || true; done
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    for k in $kids "$pid"; do kill -9 "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}
# A free UDP port on 127.0.0.1, from the kernel's ephemeral range (not the RTP range).
free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# utime+stime of a process in clock ticks (all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
# % of one core used between two readings: cpu_pct TICKS0 TIME0 TICKS1 TIME1.
cpu_pct() { awk -v d="$(($3 - $1))" -v hz="$HZ" -v w="$(awk -v a="$2" -v b="$4" 'BEGIN { print b - a }')" \
    'BEGIN { printf "%.2f", 100 * d / hz / w }'; }
# UDP sockets bound in the server's RTP range (the server's legs: RTP + RTCP per call).
rtp_sockets() { ss -Huan | awk -v lo="$RTP_MIN" -v hi="$RTP_MAX" '{ n = split($4, a, ":"); p = a[n] + 0
    if (p >= lo && p <= hi + 1) c++ } END { print c + 0 }'; }
