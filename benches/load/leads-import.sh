#!/usr/bin/env bash
# Lead CSV import load test: `leadscaller leads import` of a generated file into a fresh SQLite
# data dir, timed, with the peak RSS of the process (/usr/bin/time -v "Maximum resident set
# size", i.e. VmHWM). Runs each size in ROWS (default 100k and 1M) so that memory flatness is
# visible: the peak RSS of the 1M-row run should be about that of the 100k-row run.
#
# The file has the shape of benches/leads_csv.rs: 11 columns (phone, names, email, empty TZ,
# consent status/source/at, a quoted consent text holding a comma and a newline, CRM id, and
# an unmapped `Notes` column that goes to `custom`), US numbers without country code in mixed
# formats ((415) 555-2671, 415-555-2671, 415.555.2671, 4155552671, 1 415 555 2671,
# +1 415-555-2671), every number distinct and valid.
#
# Usage:  benches/load/leads-import.sh                 (ROWS="100000 1000000")
#         ROWS=200000 benches/load/leads-import.sh
#
# Environment (all optional):
#   ROWS="100000 1000000"  file sizes, one fresh database each
#   SKIP_BUILD=0           1 = do not run `cargo build --release` (the binary must exist)
#   BIN=...                the binary (default: $CARGO_TARGET_DIR or target, release/leadscaller)
#   KEEP=0                 1 = keep the temp dir (CSV, config, database) and print its path
#
# Only local files are used (no network). Everything is generated under a mktemp dir that is
# removed on exit. Results: README.md "Benchmarks" and docs/leads.md "Throughput".
set -euo pipefail

ROWS=${ROWS:-"100000 1000000"}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${BIN:-$TARGET/release/leadscaller}

if [[ $SKIP_BUILD != 1 ]]; then
  (cd "$REPO" && cargo build --release --bin leadscaller)
fi
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (GNU time, for the peak RSS)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/leads-import.XXXXXX")
cleanup() {
  if [[ $KEEP == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# gen N FILE: the CSV (CRLF line ends, like a spreadsheet export).
gen() {
  python3 - "$1" "$2" <<'EOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
areas = [212, 415, 312, 303, 208, 617, 206, 512, 404, 305, 702, 971]
fmts = [
    "({a}) {x}-{s:04}", "{a}-{x}-{s:04}", "{a}.{x}.{s:04}",
    "{a}{x}{s:04}", "1 {a} {x} {s:04}", "+1 {a}-{x}-{s:04}",
]
with open(path, "w", newline="") as f:
    f.write("Phone,First,Last,Email,TZ,Consent,Source,Consent At,Consent Text,CRM Id,Notes\r\n")
    out = []
    for i in range(n):
        a = areas[i % len(areas)]
        sub = 2_000_000 + i // len(areas)
        phone = fmts[(i // len(areas)) % len(fmts)].format(a=a, x=sub // 10_000, s=sub % 10_000)
        out.append(
            f"{phone},First{i},Last{i},user{i}@example.com,,express_written,web,"
            f"2024-05-01T10:00:00Z,\"I agree,\nthanks\",id-{i},note {i}\r\n"
        )
        if len(out) == 10_000:
            f.write("".join(out))
            out.clear()
    f.write("".join(out))
EOF
}

printf '%-9s %10s %10s %12s %6s %10s  %s\n' rows seconds rows/s "peak RSS MB" CPU "file MB" result
for n in $ROWS; do
  dir="$WORK/run-$n"
  mkdir -p "$dir/data"
  cat >"$dir/leadscaller.toml" <<EOF
data_dir = "$dir/data"
database_url = "sqlite://$dir/data/leadscaller.db"
EOF
  gen "$n" "$dir/leads.csv"
  "$BIN" keys create --account bench --config "$dir/leadscaller.toml" >/dev/null 2>"$dir/keys.err" \
    || { cat "$dir/keys.err" >&2; exit 1; }
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$dir/time.txt" "$BIN" leads import "$dir/leads.csv" --account bench \
    --config "$dir/leadscaller.toml" \
    --map phone=Phone --map first_name=First --map last_name=Last --map email=Email \
    --map timezone=TZ --map consent_status=Consent --map consent_source=Source \
    --map "consent_at=Consent At" --map "consent_text=Consent Text" --map "external_id=CRM Id" \
    >"$dir/out.txt" 2>"$dir/err.txt" || { tail -5 "$dir/err.txt" >&2; exit 1; }
  end=$(date +%s.%N)
  rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$dir/time.txt")
  cpu=$(awk -F: '/Percent of CPU this job got/ {gsub(/ /, "", $2); print $2}' "$dir/time.txt")
  result=$(tail -1 "$dir/out.txt")
  [[ $result == "imported $n skipped 0 failed 0" ]] || { echo "unexpected: $result" >&2; tail -5 "$dir/err.txt" >&2; exit 1; }
  awk -v n="$n" -v s="$start" -v e="$end" -v rss="$rss_kb" -v cpu="$cpu" \
    -v sz="$(stat -c %s "$dir/leads.csv")" -v r="$result" \
    'BEGIN { t = e - s; printf "%-9d %10.2f %10.0f %12.1f %6s %10.1f  %s\n", n, t, n / t, rss / 1024, cpu, sz / 1048576, r }'
  rm -rf "$dir"
done
