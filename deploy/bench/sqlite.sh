#!/usr/bin/env bash
# The SQLite source's first copy of a 1,000,000-row request log, side by side: into Parquet
# against connectorx (its sqlite:// source, then pyarrow's Parquet writer), and into MariaDB
# against LOAD DATA LOCAL INFILE of the same rows. Prints seconds, rows/s, peak memory, ratios.
#
#   deploy/bench/sqlite.sh [--rows N]    # default 1,000,000
#
# A benchmark, not a test: it prints figures; nothing fails on a slow machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/lib.sh

rows=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    *) echo "usage: $0 [--rows N]" >&2; exit 2 ;;
  esac
done

ensure_rust
ensure_mariadb
ensure_pyarrow
python3 -c 'import connectorx' 2>/dev/null || python3 -m pip install --quiet connectorx
echo "== building highwater (release)"
cargo build --release --locked --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 deploy/bench/sqlite.py "$CARGO_TARGET_DIR/release/highwater" "$work" "$rows" "$MYSQL_HOST" "$MYSQL_PORT" hwbench_sqlite
