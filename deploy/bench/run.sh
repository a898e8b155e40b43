#!/usr/bin/env bash
# highwater's first copy against what users would pick instead, side by side on this machine:
#
#   1. an `orders` table (12 mixed columns, about 370 bytes a row as text) -> Parquet:
#      highwater, connectorx with 2 partitions (read_sql to Arrow, then pyarrow's write_table),
#      the server's own SELECT ... INTO OUTFILE as the limit, and the transfer limit: every
#      row read over the client protocol on one connection and not decoded (drain.c, built
#      here against libmariadb); then highwater and
#      connectorx on a Matomo-shaped log_link_visit_action of 1.5M rows, its times scattered,
#      then following its key;
#   2. the same rows -> another MySQL database: highwater, LOAD DATA INFILE into an empty copy
#      (the limit), and mysqldump | mariadb;
#   3. incremental passes (`run --once` into Parquet after a first copy) on a 100k-row and a
#      5M-row version of the table: with 1,000 changed rows, and with none; then, as the
#      baseline, the server's own time for the pass's statement on each (pass-server-time.py);
#   4. streaming: a daemon into MySQL while the source takes 1,000 changes/s; the latency from
#      each change's commit to its row in the sink, p50 and p99 (the daemon's log is left in
#      /tmp/hwbench-stream.log).
#
#   deploy/bench/run.sh [--rows N] [--runs R] [--cases 1,2,3,4] [--big-rows N]
#   # defaults: 1,000,000 rows, 3 runs per case (case 3: 9 at least), every case, 5,000,000 rows
#   # for case 3's big table
#
# Cases 1-2: median wall time of R runs (min-max), rows/s, MB/s (of the rows as text, the size
# of the INTO OUTFILE file), peak RSS of the client, and its ratio to the case's baseline.
# A benchmark, not a test: it prints figures; nothing fails on a slow machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/lib.sh

rows=1000000
runs=3
cases_wanted=1,2,3,4
big_rows=5000000
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --cases) cases_wanted="$2"; shift 2 ;;
    --big-rows) big_rows="$2"; shift 2 ;;
    *) echo "usage: $0 [--rows N] [--runs R] [--cases 1,2,3,4] [--big-rows N]" >&2; exit 2 ;;
  esac
done
wants() { [[ ",$cases_wanted," == *",$1,"* ]]; }

ensure_rust
ensure_mariadb
ensure_pyarrow
ensure_gnu_time
python3 -c 'import connectorx' 2>/dev/null || python3 -m pip install --quiet connectorx
python3 -c 'import pymysql' 2>/dev/null || python3 -m pip install --quiet pymysql
echo "== building highwater (release)"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/highwater"
src=hwbench_orders
dst=hwbench_orders_copy
inc=hwbench_incremental
work=$(mktemp -d)
outfile="/tmp/hwbench_orders_$$.tsv"
trap 'rm -rf "$work"; rm -f "$outfile"; mysql_cli -e "DROP DATABASE IF EXISTS $src; DROP DATABASE IF EXISTS $dst; DROP DATABASE IF EXISTS $inc; DROP DATABASE IF EXISTS ${inc}_small; DROP DATABASE IF EXISTS ${inc}_big; DROP DATABASE IF EXISTS hwbench_matomo_actions"' EXIT

# make_orders DB N: a fresh database DB whose `orders` holds N generated rows.
make_orders() {
  echo "== $2 rows in $1.orders"
  mysql_cli -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4"
  mysql_cli "$1" -e "
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
FROM seq_1_to_$2;
ANALYZE TABLE orders;" >/dev/null
}

if wants 1 || wants 2; then make_orders "$src" "$rows"; fi

url="mysql://root@$MYSQL_HOST:$MYSQL_PORT"
# config SOURCE_DB SINK_BODY [SOURCE_SETTINGS] [TABLE CURSOR]: a pipeline from SOURCE_DB's
# table (orders by update_time unless given).
config() {
  cat <<TOML
[pipeline]
name = "bench"
state_dir = "$work/state"

[source]
type = "mysql"
url = "$url/$1"
lag_secs = 0
${3:-}
tables = [{ name = "${4:-orders}", cursor = "${5:-update_time}" }]

[sink]
$2
TOML
}
config "$src" "type = \"parquet\"
path = \"$work/out\"" >"$work/parquet.toml"
config "$src" "type = \"mysql\"
url = \"$url/$dst\"" >"$work/mysql.toml"

# The transfer limit's reader (drain.c): libmariadb's headers come with Debian's libmariadb-dev.
command -v mariadb_config >/dev/null || apt_install libmariadb-dev
# shellcheck disable=SC2046 # mariadb_config prints several flags
gcc -O2 -o "$work/drain" deploy/bench/drain.c $(mariadb_config --cflags --libs)

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
fresh_out() { rm -rf "$work/out" "$work/state"; }
fresh_cx() { rm -f "$work/cx.parquet"; }
fresh_copy() {
  rm -rf "$work/state"
  mysql_cli -e "DROP DATABASE IF EXISTS $dst; CREATE DATABASE $dst CHARACTER SET utf8mb4"
}
fresh_outfile() { rm -f "$outfile"; }

# Batched upserts as a hand-written loader would send them: mysqldump's multi-row INSERTs
# (about 1,000 of these rows each at this buffer length) made ON DUPLICATE KEY UPDATE.
odku="ON DUPLICATE KEY UPDATE customer_id = VALUES(customer_id), status = VALUES(status), amount = VALUES(amount), \
currency = VALUES(currency), note = VALUES(note), attrs = VALUES(attrs), is_gift = VALUES(is_gift), \
created_at = VALUES(created_at), update_time = VALUES(update_time), shipped_at = VALUES(shipped_at), token = VALUES(token)"
cases=()
if wants 1; then
  cases+=(
    "highwater -> Parquet@fresh_parquet@$bin run --once --config $work/parquet.toml"
    "connectorx (2 partitions) -> Parquet@fresh_parquet@python3 $work/cx.py $work/cx.parquet"
    "read, not decoded (transfer limit)@true@$work/drain $MYSQL_HOST $MYSQL_PORT root $src 'SELECT * FROM orders'"
    "SELECT ... INTO OUTFILE (limit)@fresh_outfile@mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $src -e \"SELECT * FROM orders INTO OUTFILE '$outfile'\""
  )
fi
if wants 2; then
  cases+=(
    "highwater -> MySQL@fresh_copy@$bin run --once --config $work/mysql.toml"
    "LOAD DATA INFILE (limit)@fresh_load@mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $dst -e \"LOAD DATA INFILE '$outfile' INTO TABLE orders\""
    "mysqldump | mariadb@fresh_copy@bash -c \"mysqldump -uroot -h$MYSQL_HOST -P$MYSQL_PORT --single-transaction $src orders | mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $dst\""
    "upserts, 1,000 rows a statement@fresh_empty_copy@bash -c \"mysqldump -uroot -h$MYSQL_HOST -P$MYSQL_PORT --single-transaction --no-create-info --net-buffer-length=390000 $src orders | sed 's/);\\$/) $odku;/' | mariadb -uroot -h$MYSQL_HOST -P$MYSQL_PORT $dst\""
  )
fi
fresh_empty_copy() {
  fresh_copy
  mysql_cli "$dst" -e "CREATE TABLE orders LIKE $src.orders"
}
fresh_load() {
  fresh_copy
  mysql_cli "$dst" -e "CREATE TABLE orders LIKE $src.orders"
  [ -s "$outfile" ] || mysql_cli "$src" -e "SELECT * FROM orders INTO OUTFILE '$outfile'"
}

# run_cases "NAME@PREPARE@COMMAND"...: every case once a round, $runs rounds, so that a
# minute when the machine is slower (it is shared) slows every case alike; prints a line per
# case: "NAME@median min max peak_rss_kb" of its seconds.
run_cases() {
  local -A times=()
  local r c name prepare cmd secs rss
  for r in $(seq 1 "$runs"); do
    for c in "$@"; do
      IFS='@' read -r name prepare cmd <<<"$c"
      $prepare
      read -r secs rss <<<"$(eval timed "$cmd")"
      echo "== $name, round $r of $runs: $secs s, peak RSS $((rss / 1024)) MB" >&2
      times[$name]+="$secs $rss"$'\n'
    done
  done
  for c in "$@"; do
    IFS='@' read -r name _ <<<"$c"
    printf '%s@%s\n' "$name" "$(printf '%s' "${times[$name]}" | sort -n |
      awk '{ s[NR] = $1; if ($2 > m) m = $2 } END { print s[int((NR + 1) / 2)], s[1], s[NR], m }')"
  done
}

results=()
if [ ${#cases[@]} -gt 0 ]; then mapfile -t results < <(run_cases "${cases[@]}"); fi
if [ ${#cases[@]} -gt 0 ]; then
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
fi

if wants 1; then
  # The same comparison on a Matomo-shaped table: the fixture's log_link_visit_action scaled
  # to 1.5M rows (copies of the real rows under new keys), its cursor indexed as
  # `highwater indexes --apply` does. Twice: with times scattered over a year whatever the
  # key (as a table filled by imports out of order might be), the case a date-partitioned
  # first copy finds hardest (see README, "Performance"); then with times that follow the
  # key, as Matomo writes them (an action gets the next idlink_va when it is tracked: here
  # one every 20 s, up to 2 minutes out of order).
  matomo=hwbench_matomo_actions
  matomo_rows=1500000
  echo "== $matomo_rows rows in $matomo.matomo_log_link_visit_action"
  mysql_cli -e "DROP DATABASE IF EXISTS $matomo; CREATE DATABASE $matomo CHARACTER SET utf8mb4"
  mysql_cli "$matomo" <../shared/fixtures/matomo/log_data.sql
  scale_table "$matomo" matomo_log_link_visit_action idlink_va server_time "$matomo_rows"
  mysql_cli "$matomo" -e "CREATE INDEX hw_server_time ON matomo_log_link_visit_action (server_time)"
  config "$matomo" "type = \"parquet\"
path = \"$work/out\"" "" matomo_log_link_visit_action server_time >"$work/matomo.toml"
  cat >"$work/cx-matomo.py" <<PY
import connectorx as cx, pyarrow.parquet as pq, sys
table = cx.read_sql("$url/$matomo", "SELECT * FROM matomo_log_link_visit_action", return_type="arrow",
                    partition_on="idlink_va", partition_num=2)
pq.write_table(table, sys.argv[1], compression="zstd")
PY
  matomo_case() {
    local results hmed hmin hmax hrss cmed cmin cmax crss
    mysql_cli "$matomo" -e "ANALYZE TABLE matomo_log_link_visit_action" >/dev/null
    mapfile -t results < <(run_cases "highwater -> Parquet (Matomo)@fresh_out@$bin run --once --config $work/matomo.toml" \
      "connectorx -> Parquet (Matomo)@fresh_cx@python3 $work/cx-matomo.py $work/cx.parquet")
    read -r hmed hmin hmax hrss <<<"${results[0]#*@}"
    read -r cmed cmin cmax crss <<<"${results[1]#*@}"
    echo
    echo "$matomo_rows Matomo actions (matomo_log_link_visit_action, 45 columns, most of them NULL), $1; median of $runs runs (min-max)"
    printf '%-44s %18s %12s %10s %8s\n' case seconds rows/s "peak RSS" ratio
    printf '%-44s %7.2f (%.2f-%.2f) %12.0f %7d MB\n' "highwater -> Parquet" "$hmed" "$hmin" "$hmax" \
      "$(awk -v n="$matomo_rows" -v s="$hmed" 'BEGIN { print n / s }')" $((hrss / 1024))
    printf '%-44s %7.2f (%.2f-%.2f) %12.0f %7d MB %7.2f\n' "connectorx (2 partitions) -> Parquet" "$cmed" "$cmin" "$cmax" \
      "$(awk -v n="$matomo_rows" -v s="$cmed" 'BEGIN { print n / s }')" $((crss / 1024)) "$(awk -v h="$hmed" -v s="$cmed" 'BEGIN { print s / h }')"
    echo "highwater wrote $(find "$work/out" -name '*.parquet' | wc -l) files ($(du -sm "$work/out" | cut -f1) MB); connectorx one ($(du -sm "$work/cx.parquet" | cut -f1) MB)"
  }
  # with_times EXPR: the table's rows again, in a fresh table (an UPDATE would leave old row
  # versions for the reads to step over), server_time set to EXPR.
  with_times() {
    local cols
    cols=$(mysql_cli -N -e "SELECT GROUP_CONCAT(IF(COLUMN_NAME = 'server_time', '$1', CONCAT('\`', COLUMN_NAME, '\`'))
        ORDER BY ORDINAL_POSITION)
      FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '$matomo' AND TABLE_NAME = 'matomo_log_link_visit_action'")
    mysql_cli "$matomo" -e "CREATE TABLE fresh LIKE matomo_log_link_visit_action;
      INSERT INTO fresh SELECT $cols FROM matomo_log_link_visit_action ORDER BY idlink_va;
      DROP TABLE matomo_log_link_visit_action; RENAME TABLE fresh TO matomo_log_link_visit_action"
  }
  with_times "TIMESTAMP''2025-01-01 00:00:00'' + INTERVAL FLOOR(RAND() * 31536000) SECOND"
  matomo_case "times scattered over a year whatever the key"
  with_times "TIMESTAMP''2025-01-01 00:00:00'' + INTERVAL (idlink_va * 20 + FLOOR(RAND() * 120)) SECOND"
  matomo_case "times following the key"
  mysql_cli -e "DROP DATABASE IF EXISTS $matomo"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Seconds of each pass the run logged (`--log-format json`), one per line.
pass_seconds() {
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message", "").startswith("pass ") and "seconds" in f:
        print(f["seconds"])' "$1"
}
# median, min and max of the numbers on stdin
spread() { sort -n | awk '{ v[NR] = $1 } END { printf "%.4f %.4f %.4f", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

if wants 3; then
  echo
  echo "== case 3: incremental passes into Parquet, after a first copy"
  # Passes take milliseconds, and a shared machine's noise is as large: at least 9 rounds,
  # the two tables taking turns in each, and the median.
  inc_runs=$((runs < 9 ? 9 : runs))
  declare -A inc_size=([small]=100000 [big]=$big_rows) inc_walls=() inc_passes=()
  for size in small big; do
    n=${inc_size[$size]}
    make_orders "${inc}_$size" "$n"
    config "${inc}_$size" "type = \"parquet\"
path = \"$work/inc-out-$size\"" | sed "s#^state_dir = .*#state_dir = \"$work/inc-state-$size\"#" >"$work/inc-$size.toml"
    echo "   first copy of $n rows"
    "$bin" run --once --config "$work/inc-$size.toml" >/dev/null 2>&1
  done
  for round in $(seq 1 "$inc_runs"); do
    for changes in 1000 0; do
      for size in small big; do
        n=${inc_size[$size]}
        if [ "$changes" -gt 0 ]; then
          ids=$(shuf -i 1-"$n" -n "$changes" | paste -sd,)
          mysql_cli "${inc}_$size" -e "UPDATE orders SET update_time = NOW(6), amount = amount + 1 WHERE id IN ($ids)"
        fi
        start=$(date +%s%N)
        HIGHWATER_LOG=info,highwater_pipeline=debug "$bin" --log-format json run --once --config "$work/inc-$size.toml" >"$work/inc.log" 2>&1
        inc_walls[$size.$changes]+="$(( ($(date +%s%N) - start) / 1000 ))"$'\n'
        inc_passes[$size.$changes]+="$(pass_seconds "$work/inc.log" | head -1)"$'\n'
      done
    done
    echo "   round $round of $inc_runs done"
  done
  echo
  echo "incremental passes: median of $inc_runs rounds (min-max), the two tables in turn; 'the pass' is the table's read time the run logs, 'run --once' the whole process"
  printf '%-12s %8s %26s %26s %12s\n' "table rows" changed "run --once, s" "the pass, s" "pass ratio"
  for changes in 1000 0; do
    base=$(printf '%s' "${inc_passes[small.$changes]}" | spread | cut -d' ' -f1)
    for size in small big; do
      read -r wall wall_min wall_max <<<"$(printf '%s' "${inc_walls[$size.$changes]}" | awk '{ print $1 / 1e6 }' | spread)"
      read -r pass pass_min pass_max <<<"$(printf '%s' "${inc_passes[$size.$changes]}" | spread)"
      # each pass's ratio to the 100k-row table's pass with as many changes
      printf '%-12s %8s %10.3f (%.3f-%.3f) %10.4f (%.4f-%.4f) %12.2f\n' "${inc_size[$size]}" "$changes" "$wall" "$wall_min" "$wall_max" \
        "$pass" "$pass_min" "$pass_max" "$(awk -v p="$pass" -v b="$base" 'BEGIN { print p / b }')"
    done
  done
  # The baseline: what the server alone takes for the same statement on each table. What the
  # bigger table costs more there, highwater's pass cannot take away.
  echo
  python3 deploy/bench/pass-server-time.py "$MYSQL_HOST" "$MYSQL_PORT" "$inc_runs" "${inc}_small" "${inc}_big"
  mysql_cli -e "DROP DATABASE IF EXISTS ${inc}_small; DROP DATABASE IF EXISTS ${inc}_big"
fi

if wants 4; then
  echo
  echo "== case 4: streaming into MySQL under 1,000 changes/s"
  stream_secs=30
  make_orders "$inc" 100000
  mysql_cli -e "DROP DATABASE IF EXISTS ${inc}_sink; CREATE DATABASE ${inc}_sink CHARACTER SET utf8mb4"
  config "$inc" "type = \"mysql\"
url = \"$url/${inc}_sink\"" "poll_interval_secs = 1" >"$work/stream.toml"
  printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$(free_port)" >>"$work/stream.toml"
  rm -rf "$work/state"
  "$bin" run --once --config "$work/stream.toml" >/dev/null 2>&1
  # Every change that reaches the sink, with the source's time of the change and the sink's
  # time of the write (SYSDATE: when the row was written, inside the sink's transaction).
  mysql_cli "${inc}_sink" -e "
CREATE TABLE hw_seen (id BIGINT UNSIGNED NOT NULL, changed DATETIME(6) NOT NULL, seen DATETIME(6) NOT NULL);
CREATE TRIGGER hw_seen_update AFTER UPDATE ON orders FOR EACH ROW
  INSERT INTO hw_seen SELECT NEW.id, NEW.update_time, SYSDATE(6) FROM DUAL WHERE NEW.update_time <> OLD.update_time"
  # The writer: 1,000 changed rows a second from a client session, as an application writes
  # them: 20 transactions a second of 50 rows each, paced against the clock. (Not a stored
  # procedure: innodb_trx showed its session holding one transaction for seconds at a time,
  # and passes waited out the whole open-transaction wait.)
  awk -v secs="$stream_secs" 'BEGIN {
    srand(42)
    print "SET @started = SYSDATE(6);"
    for (k = 1; k <= secs * 20; k++) {
      ids = 1 + int(rand() * 100000)
      for (i = 1; i < 50; i++) ids = ids "," 1 + int(rand() * 100000)
      print "START TRANSACTION;"
      print "UPDATE orders SET update_time = SYSDATE(6), amount = amount + 1 WHERE id IN (" ids ");"
      print "COMMIT;"
      printf "DO SLEEP(GREATEST(0, TIMESTAMPDIFF(MICROSECOND, SYSDATE(6), @started + INTERVAL %d MICROSECOND) / 1e6));\n", k * 50000
    }
  }' >"$work/writer.sql"
  "$bin" run --config "$work/stream.toml" >"$work/stream.log" 2>&1 &
  daemon=$!
  sleep 3
  mysql_cli "$inc" <"$work/writer.sql"
  sleep 5
  kill "$daemon"
  wait "$daemon" || true
  mysql_cli -N "${inc}_sink" -e "SELECT TIMESTAMPDIFF(MICROSECOND, changed, seen) / 1e6 FROM hw_seen" >"$work/latency"
  echo
  echo "streaming: $(wc -l <"$work/latency") changes in $stream_secs s reached the sink (lag_secs = 0, poll_interval_secs = 1); commit-to-visible latency:"
  sort -n "$work/latency" | awk '{ v[NR] = $1 } END { printf "p50 %.3f s, p99 %.3f s, max %.3f s (target: p99 <= lag + poll + 0.5 = 1.5 s)\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], v[NR] }'
  echo "the daemon's passes held below the clock by an open transaction: $(grep -c 'holds the pass below its start' "$work/stream.log" || true)"
  cp "$work/stream.log" /tmp/hwbench-stream.log
  mysql_cli -e "DROP DATABASE IF EXISTS ${inc}_sink"
fi
