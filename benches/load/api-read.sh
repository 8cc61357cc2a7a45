#!/usr/bin/env bash
# API read-latency load test: wrk against `leadscaller serve` holding LEADS leads.
#
# Per engine (SQLite, and PostgreSQL when asked) this script starts the release binary on a
# fresh data dir / database, creates an admin key with `leadscaller keys create`, imports LEADS
# generated leads with `leadscaller leads import`, then runs wrk (THREADS threads, CONNS
# connections, DURATION seconds, `--latency`, api-read.lua adds the bearer header) against
#   GET /v1/leads?limit=50      (a page of 50 leads, newest first)
#   GET /v1/leads/{id}          (one lead, by id)
# and prints p50 / p90 / p99 latency and requests per second. Any non-2xx answer or socket
# error fails the run; requests slower than wrk's 2 s timeout are counted (timeouts=).
#
# Usage:  benches/load/api-read.sh
#         ENGINES="sqlite postgres" benches/load/api-read.sh
#
# Environment (all optional):
#   ENGINES="sqlite"   engines to run: sqlite, postgres (postgres needs scripts/postgres.sh;
#                      the script creates and drops its own database)
#   PG_URL=postgres://leadscaller:leadscaller@127.0.0.1:5432   server part of the PG URL
#   LEADS=10000        leads imported before the runs
#   DURATION=20 THREADS=2 CONNS=32   wrk parameters
#   LOG_LEVEL=warn     server log level (log in $OUT_DIR/<engine>/server.log)
#   OUT_DIR=...        where results go (default: a new directory under /tmp)
#   SKIP_BUILD=0       1 = do not run `cargo build --release` (binary must exist)
#
# Only 127.0.0.1 is used. Every process this script starts is killed by PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
read -r -a ENGINE_LIST <<<"${ENGINES:-sqlite}"
PG_URL=${PG_URL:-postgres://leadscaller:leadscaller@127.0.0.1:5432}
LEADS=${LEADS:-10000}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
LOG_LEVEL=${LOG_LEVEL:-warn}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/leadscaller-api-read.XXXXXX)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (scripts/setup.sh)" >&2; exit 2; }
done

SERVER_PID=""
PG_DB=""
stop_server() {
    local pid=$SERVER_PID
    SERVER_PID=""
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
drop_pg_db() {
    [ -n "$PG_DB" ] || return 0
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    PG_DB=""
}
cleanup() {
    trap - EXIT
    stop_server
    drop_pg_db
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_tcp_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- build -------------------------------------------------------------------------------
if [ "$SKIP_BUILD" != 1 ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin leadscaller)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/leadscaller"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }

# ---- the leads CSV: LEADS distinct valid US numbers (NANP, area codes 212/312/415...) ------
CSV="$OUT_DIR/leads.csv"
python3 - "$CSV" "$LEADS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
areas = ["212", "312", "415", "617", "713", "206", "303", "404", "503", "602"]
with open(path, "w") as f:
    f.write("phone,first_name,last_name,email\n")
    for i in range(n):
        area = areas[(i // 10000) % len(areas)]
        exchange = 201 + (i // 10000) // len(areas)
        line = i % 10000
        f.write(f"+1{area}{exchange}{line:04d},First{i},Last{i},lead{i}@example.com\n")
PY

RESULTS="$OUT_DIR/results.txt"
: >"$RESULTS"

run_engine() {
    local engine=$1 dir="$OUT_DIR/$1" url
    mkdir -p "$dir/data"
    case "$engine" in
        sqlite) url="sqlite://$dir/data/leadscaller.db" ;;
        postgres)
            PG_DB="lc_api_read_$$"
            psql -q "$PG_URL/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null
            psql -q "$PG_URL/postgres" -c "CREATE DATABASE $PG_DB" >/dev/null
            url="$PG_URL/$PG_DB"
            ;;
        *) echo "unknown engine $engine" >&2; exit 2 ;;
    esac
    local http_port sip_port
    http_port=$(free_tcp_port)
    sip_port=$(free_tcp_port)
    cat >"$dir/leadscaller.toml" <<EOF
# Written by benches/load/api-read.sh.
data_dir = "$dir/data"
database_url = "$url"

[sip]
listen = [{ transport = "udp", addr = "127.0.0.1:$sip_port" }]

[http]
listen = "127.0.0.1:$http_port"

[log]
format = "json"
level = "$LOG_LEVEL"

[[routes]]
match_user = "*"
app = "echo"
EOF
    "$BIN" serve --config "$dir/leadscaller.toml" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    local base="http://127.0.0.1:$http_port"
    for _ in $(seq 150); do
        curl -fsS "$base/health" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
        sleep 0.1
    done
    curl -fsS "$base/health" >/dev/null || { echo "server did not answer /health" >&2; exit 1; }

    local token
    token=$("$BIN" keys create --account bench --config "$dir/leadscaller.toml" 2>/dev/null)
    local t0=$SECONDS
    "$BIN" leads import "$CSV" --account bench --config "$dir/leadscaller.toml" \
        --map phone=phone --map first_name=first_name --map last_name=last_name \
        --map email=email >"$dir/import.out" 2>&1
    local summary
    summary=$(grep -o 'imported [0-9]* skipped [0-9]* failed [0-9]*' "$dir/import.out" | tail -n1)
    echo "$engine: $summary in $((SECONDS - t0)) s"
    [ "$summary" = "imported $LEADS skipped 0 failed 0" ] || { cat "$dir/import.out" >&2; exit 1; }
    # Fresh planner statistics, as autovacuum would have them a minute after the import.
    [ "$engine" != postgres ] || psql -q "$url" -c "ANALYZE" >/dev/null

    local id
    id=$(curl -fsS -H "Authorization: Bearer $token" "$base/v1/leads?limit=1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')

    local name path line
    for name in list get; do
        case $name in
            list) path="/v1/leads?limit=50" ;;
            get) path="/v1/leads/$id" ;;
        esac
        LC_TOKEN=$token wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
            -s "$HERE/api-read.lua" "$base$path" >"$dir/wrk-$name.txt" 2>&1
        line=$(grep '^RESULT ' "$dir/wrk-$name.txt" | tail -n1)
        [ -n "$line" ] || { cat "$dir/wrk-$name.txt" >&2; exit 1; }
        echo "$engine GET ${path/$id/\{id\}} ${line#RESULT }" | tee -a "$RESULTS"
        case "$line" in
            *" socket_errors=0 non2xx=0") ;;
            *) echo "errors during the run: $dir/wrk-$name.txt" >&2; exit 1 ;;
        esac
    done
    stop_server
    drop_pg_db
}

for engine in "${ENGINE_LIST[@]}"; do
    run_engine "$engine"
done
echo
echo "leads=$LEADS wrk -t$THREADS -c$CONNS -d${DURATION}s on $(nproc) cores; results in $OUT_DIR"
column -t "$RESULTS"
