#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, integration and real-peer tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/leadscaller-target}"
# The store and API suites run against a real PostgreSQL server as well as SQLite.
bash scripts/postgres.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build --bins
cargo test --all-targets
