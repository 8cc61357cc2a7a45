#!/usr/bin/env bash
# Starts the local PostgreSQL cluster the store tests use and makes sure the test role exists
# (idempotent). Tests connect with LEADSCALLER_TEST_PG_URL, default
# postgres://leadscaller:leadscaller@127.0.0.1:5432/postgres, and create one database per test.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v pg_lsclusters >/dev/null; then
  echo "postgres: PostgreSQL is not installed; run scripts/setup.sh" >&2
  exit 1
fi
read -r ver name _ < <(pg_lsclusters -h | head -n1) || true
if [ -z "${ver:-}" ]; then
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  name=main
  $SUDO pg_createcluster "$ver" "$name" >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$ver" -v n="$name" '$1==v && $2==n {print $4}' | grep -q online; then
  $SUDO pg_ctlcluster "$ver" "$name" start
fi
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
for _ in $(seq 1 50); do
  as_postgres "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.2
done
as_postgres "psql -qtAc \"select 1 from pg_roles where rolname='leadscaller'\"" | grep -q 1 ||
  as_postgres "psql -qc \"create role leadscaller login createdb password 'leadscaller'\""
echo "postgres: $ver/$name online, role leadscaller ready"
