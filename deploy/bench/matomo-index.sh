#!/usr/bin/env bash
# What the cursor indexes buy on Matomo: the real fixture's log tables scaled up, then an
# incremental pass (1,000 changed actions and 300 changed visits) timed before and after
# `highwater indexes --apply`, with the EXPLAIN `highwater check` shows each time.
#
#   deploy/bench/matomo-index.sh [--rows N]    # N actions (default 1,000,000), N/3 visits
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
echo "== building highwater (release)"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/highwater"
db=hwbench_matomo
work=$(mktemp -d)
trap 'rm -rf "$work"; mysql_cli -e "DROP DATABASE IF EXISTS $db"' EXIT

echo "== loading the Matomo fixture into $db and scaling it to $rows actions"
mysql_cli -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db CHARACTER SET utf8mb4"
mysql_cli "$db" < ../shared/fixtures/matomo/log_data.sql
scale_table "$db" matomo_log_link_visit_action idlink_va server_time "$rows"
scale_table "$db" matomo_log_visit idvisit visit_last_action_time $((rows / 3))
mysql_cli "$db" -e "ANALYZE TABLE matomo_log_link_visit_action, matomo_log_visit" >/dev/null
mysql_cli -N -e "SELECT CONCAT(TABLE_NAME, ': ', TABLE_ROWS, ' rows (estimate), ', ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576), ' MB')
  FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db' AND TABLE_NAME LIKE 'matomo_log%'"

cat > "$work/matomo.toml" <<TOML
[pipeline]
name = "bench"
state_dir = "$work/state"

[source]
type = "matomo"
url = "mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db"
lag_secs = 1

[sink]
type = "parquet"
path = "$work/out"
TOML

echo "== first copy (not timed here)"
HIGHWATER_LOG=warn "$bin" run --config "$work/matomo.toml" --once | tail -1

# One incremental pass after 1,000 actions and 300 visits changed: prints its wall seconds.
pass() {
  mysql_cli "$db" -e "
    UPDATE matomo_log_link_visit_action SET server_time = UTC_TIMESTAMP(), time_spent = time_spent + 1
      WHERE idlink_va IN (SELECT idlink_va FROM (SELECT idlink_va FROM matomo_log_link_visit_action ORDER BY RAND() LIMIT 1000) x);
    UPDATE matomo_log_visit SET visit_last_action_time = UTC_TIMESTAMP(), visit_total_time = visit_total_time + 1
      WHERE idvisit IN (SELECT idvisit FROM (SELECT idvisit FROM matomo_log_visit ORDER BY RAND() LIMIT 300) x)"
  sleep 1.2
  local start end
  start=$(date +%s.%N)
  HIGHWATER_LOG=warn "$bin" run --config "$work/matomo.toml" --once >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}
# Median, min and max of three passes.
measure() {
  local a b c
  a=$(pass); b=$(pass); c=$(pass)
  printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -n | tr '\n' ' '
}
explain() {
  "$bin" check --config "$work/matomo.toml" | grep -E '^(OK|FAIL)' | grep -E 'log_link_visit_action|log_visit ' | sed 's/^/    /'
}

echo "== without cursor indexes"
explain || true
read -r min1 med1 max1 <<<"$(measure)"
echo "== highwater indexes --apply"
"$bin" indexes --config "$work/matomo.toml" --apply | grep -- '-- applied' | sed 's/^/    /'
echo "== with cursor indexes"
explain
read -r min2 med2 max2 <<<"$(measure)"

echo
printf '%-34s %10s %18s\n' "incremental pass (1,300 changes)" "median s" "min - max s"
printf '%-34s %10.3f %18s\n' "without cursor indexes" "$med1" "$min1 - $max1"
printf '%-34s %10.3f %18s\n' "with cursor indexes" "$med2" "$min2 - $max2"
awk -v a="$med1" -v b="$med2" 'BEGIN { printf "with / without: %.3f (%.1f%% faster)\n", b / a, 100 - 100 * b / a }'
