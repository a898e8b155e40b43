#!/usr/bin/env bash
# What `highwater reconcile` costs when little differs: a table of N rows copied to a MySQL
# sink, 10 rows then hard-deleted in the source, and reconcile timed against a full key
# comparison (every key of both sides fetched and compared), side by side.
#
#   deploy/bench/reconcile.sh [--rows N] [--chunk-rows C]    # defaults 1,000,000 and 1,000
#
# A benchmark, not a test: it prints figures; nothing fails on a slow machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/lib.sh

rows=1000000
chunk=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --chunk-rows) chunk="$2"; shift 2 ;;
    *) echo "usage: $0 [--rows N] [--chunk-rows C]" >&2; exit 2 ;;
  esac
done

ensure_rust
ensure_mariadb
echo "== building highwater (release)"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/highwater"
src=hwbench_reconcile
dst=hwbench_reconcile_sink
work=$(mktemp -d)
trap 'rm -rf "$work"; mysql_cli -e "DROP DATABASE IF EXISTS $src; DROP DATABASE IF EXISTS $dst"' EXIT

echo "== $rows rows in $src.orders, copied to $dst"
mysql_cli -e "DROP DATABASE IF EXISTS $src; DROP DATABASE IF EXISTS $dst; CREATE DATABASE $src; CREATE DATABASE $dst"
mysql_cli "$src" -e "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, update_time DATETIME(6) NOT NULL,
  name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), KEY (update_time));
  INSERT INTO orders SELECT seq, '2026-01-01' + INTERVAL seq SECOND, CONCAT('order ', seq), seq / 100 FROM seq_1_to_$rows;
  ANALYZE TABLE orders" >/dev/null
cat > "$work/p.toml" <<TOML
[pipeline]
name = "bench"
state_dir = "$work/state"

[source]
type = "mysql"
url = "mysql://root@$MYSQL_HOST:$MYSQL_PORT/$src"
lag_secs = 0
tables = [{ name = "orders", cursor = "update_time" }]

[sink]
type = "mysql"
url = "mysql://root@$MYSQL_HOST:$MYSQL_PORT/$dst"
TOML
"$bin" run --once --config "$work/p.toml" >/dev/null
mysql_cli "$src" -e "DELETE FROM orders ORDER BY RAND() LIMIT 10"

echo "== the full comparison (every key of both sides to the client, then compared)"
start=$(date +%s.%N)
diff <(mysql_cli -N "$dst" -e "SELECT id FROM orders ORDER BY id") \
     <(mysql_cli -N "$src" -e "SELECT id FROM orders ORDER BY id") | grep -c '^<' || true
full=$(awk "BEGIN { print $(date +%s.%N) - $start }")
echo "   $full s, $((2 * rows)) keys fetched"

echo "== highwater reconcile"
start=$(date +%s.%N)
"$bin" reconcile --config "$work/p.toml" --chunk-rows "$chunk"
rec=$(awk "BEGIN { print $(date +%s.%N) - $start }")
echo "   $rec s"
left=$(mysql_cli -N -e "SELECT (SELECT COUNT(*) FROM $dst.orders) - (SELECT COUNT(*) FROM $src.orders)")
echo "== rows the sink holds beyond the source afterwards: $left"
awk "BEGIN { printf \"== reconcile / full comparison: %.2f\\n\", $rec / $full }"
