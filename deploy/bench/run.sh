#!/usr/bin/env bash
# highwater's first copy against what users would pick instead, side by side on this machine:
#
#   1. an `orders` table (12 mixed columns, about 370 bytes a row as text) -> Parquet:
#      highwater, connectorx with 2 partitions (read_sql to Arrow, then pyarrow's write_table),
#      and the server's own SELECT ... INTO OUTFILE as the limit;
#   2. the same rows -> another MySQL database: highwater, LOAD DATA INFILE into an empty copy
#      (the limit), and mysqldump | mariadb.
#
#   deploy/bench/run.sh [--rows N] [--runs R]     # defaults 1,000,000 rows, 3 runs per case
#
# Each case: median wall time of R runs (min-max), rows/s, MB/s (of the rows as text, the size
# of the INTO OUTFILE file), peak RSS of the client, and its ratio to the case's baseline.
# A benchmark, not a test: it prints figures; nothing fails on a slow machine.
# Not yet here (issue 6): incremental passes at 100k and 5M rows, streaming latency.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/lib.sh

rows=1000000
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "usage: $0 [--rows N] [--runs R]" >&2; exit 2 ;;
  esac
done

ensure_rust
ensure_mariadb
ensure_pyarrow
ensure_gnu_time
python3 -c 'import connectorx' 2>/dev/null || python3 -m pip install --quiet connectorx
echo "== building highwater (release)"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/highwater"
src=hwbench_orders
dst=hwbench_orders_copy
work=$(mktemp -d)
outfile="/tmp/hwbench_orders_$$.tsv"
trap 'rm -rf "$work"; rm -f "$outfile"; mysql_cli -e "DROP DATABASE IF EXISTS $src; DROP DATABASE IF EXISTS $dst"' EXIT

echo "== $rows rows in $src.orders"
mysql_cli -e "DROP DATABASE IF EXISTS $src; DROP DATABASE IF EXISTS $dst; CREATE DATABASE $src CHARACTER SET utf8mb4"
mysql_cli "$src" -e "
CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  customer_id INT NOT NULL,
  status ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  note VARCHAR(255) CHARACTER SET utf8mb4 NOT NULL,
  attrs JSON NOT NULL,
  is_gift TINYINT(1) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  update_time DATETIME(6) NOT NULL,
  shipped_at DATETIME NULL,
  token VARBINARY(16) NOT NULL,
  KEY idx_update_time (update_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO orders SELECT seq, seq % 100000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
  (seq % 1000000) / 100, ELT(1 + seq % 3, 'EUR', 'USD', 'GBP'),
  CONCAT('Order ', seq, ' for customer ', seq % 100000, ': ', REPEAT(MD5(seq), 4), ' – ünïcödé ✓'),
  JSON_OBJECT('sku', seq % 1000, 'qty', 1 + seq % 7, 'tags', JSON_ARRAY('web', 'promo')),
  seq % 2, '2025-01-01' + INTERVAL seq SECOND, '2025-06-01' + INTERVAL seq SECOND,
  IF(seq % 3 = 0, NULL, '2025-07-01' + INTERVAL seq SECOND), UNHEX(MD5(seq))
FROM seq_1_to_$rows;
ANALYZE TABLE orders;" >/dev/null

url="mysql://root@$MYSQL_HOST:$MYSQL_PORT"
config() { # sink table body
  cat <<TOML
[pipeline]
name = "bench"
state_dir = "$work/state"

[source]
type = "mysql"
url = "$url/$src"
lag_secs = 0
tables = [{ name = "orders", cursor = "update_time" }]

[sink]
$1
TOML
}
config "type = \"parquet\"
path = \"$work/out\"" >"$work/parquet.toml"
config "type = \"mysql\"
url = \"$url/$dst\"" >"$work/mysql.toml"

cat >"$work/cx.py" <<PY
import connectorx as cx, pyarrow.parquet as pq, sys
table = cx.read_sql("$url/$src", "SELECT * FROM orders", return_type="arrow",
                    partition_on="id", partition_num=2)
pq.write_table(table, sys.argv[1], compression="zstd")
PY

# Cases: "name@prepare@command" ('@' as the separator: commands hold '|').
# Runs "$@" under GNU time; prints "seconds max_rss_kb".
timed() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  cat "$work/time"
}
fresh_parquet() { rm -rf "$work/out" "$work/state" "$work/cx.parquet"; }
fresh_copy() {
  rm -rf "$work/state"
  mysql_cli -e "DROP DATABASE IF EXISTS $dst; CREATE DATABASE $dst CHARACTER SET utf8mb4"
}
fresh_outfile() { rm -f "$outfile"; }

cases=(
  "highwater -> Parquet@fresh_parquet@$bin run --once --config $work/parquet.toml"
  "connectorx (2 partitions) -> Parquet@fresh_parquet@python3 $work/cx.py $work/cx.parquet"
  "SELECT ... INTO OUTFILE (limit)@fresh_outfile@mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $src -e \"SELECT * FROM orders INTO OUTFILE '$outfile'\""
  "highwater -> MySQL@fresh_copy@$bin run --once --config $work/mysql.toml"
  "LOAD DATA INFILE (limit)@fresh_load@mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $dst -e \"LOAD DATA INFILE '$outfile' INTO TABLE orders\""
  "mysqldump | mariadb@fresh_copy@bash -c \"mysqldump -uroot -h$MYSQL_HOST -P$MYSQL_PORT --single-transaction $src orders | mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $dst\""
)
fresh_load() {
  fresh_copy
  mysql_cli "$dst" -e "CREATE TABLE orders LIKE $src.orders"
  [ -s "$outfile" ] || mysql_cli "$src" -e "SELECT * FROM orders INTO OUTFILE '$outfile'"
}

results=()
for c in "${cases[@]}"; do
  IFS='@' read -r name prepare cmd <<<"$c"
  echo "== $name"
  times=()
  for _ in $(seq 1 "$runs"); do
    $prepare
    read -r secs rss <<<"$(eval timed "$cmd")"
    echo "   $secs s, peak RSS $((rss / 1024)) MB"
    times+=("$secs $rss")
  done
  # median, min, max of the seconds; the largest peak RSS
  summary=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ s[NR] = $1; if ($2 > m) m = $2 } END { print s[int((NR + 1) / 2)], s[1], s[NR], m }')
  results+=("$name@$summary")
done
# The OUTFILE case ran last with a fresh file; LOAD DATA reused it. Its size is the rows as text.
[ -s "$outfile" ] || mysql_cli "$src" -e "SELECT * FROM orders INTO OUTFILE '$outfile'"
text_mb=$(awk -v b="$(stat -c %s "$outfile")" 'BEGIN { printf "%.1f", b / 1048576 }')

echo
echo "$rows rows, $text_mb MB as text; median of $runs runs (min-max); ratio: highwater's rows/s over this case's (above 1: highwater is faster)"
printf '%-36s %18s %12s %9s %10s %8s\n' case "seconds" "rows/s" "MB/s" "peak RSS" "ratio"
baseline=1
for r in "${results[@]}"; do
  IFS=@ read -r name summary <<<"$r"
  read -r med min max rss <<<"$summary"
  printf '%-36s %7.2f (%.2f-%.2f) %12.0f %9.1f %7d MB' "$name" "$med" "$min" "$max" \
    "$(awk -v n="$rows" -v s="$med" 'BEGIN { print n / s }')" "$(awk -v m="$text_mb" -v s="$med" 'BEGIN { print m / s }')" $((rss / 1024))
  if [ "$name" = "highwater -> Parquet" ] || [ "$name" = "highwater -> MySQL" ]; then
    baseline="$med"
    printf '\n'
  else
    awk -v h="$baseline" -v s="$med" 'BEGIN { printf " %7.2f\n", s / h }'
  fi
done
