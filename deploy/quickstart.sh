#!/usr/bin/env bash
# The quickstart: installs/starts MariaDB if needed, builds highwater, seeds the demo `shop`
# database, replicates it into Parquet (./quickstart/out, checkpoints in ./quickstart/state: the
# example config is copied there, and a config's relative paths are its own), changes some rows,
# replicates again, and shows what each pass moved and where the files are.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib.sh

ensure_rust
ensure_mariadb
ensure_gnu_time

echo "== building highwater (release)"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/highwater"
work=./quickstart
config=$work/quickstart.toml

echo "== seeding the demo database 'shop'"
mysql_cli < deploy/demo/shop.sql
mysql_cli -N -e "SELECT CONCAT(table_name, ': ', table_rows, ' rows (estimate)') FROM information_schema.tables WHERE table_schema = 'shop'"
out=$work/out
rm -rf "$work" && mkdir -p "$work" && cp deploy/examples/quickstart.toml "$config"

run_pass() {
  echo "== pass $1: highwater run --config $config --once"
  /usr/bin/time -f "peak memory: %M KiB, wall: %e s" "$bin" run --config "$config" --once
}

# The source's clock must have moved past the rows by lag_secs before a pass can take them.
sleep 3
run_pass 1

echo "== changing rows: 1,000 orders set to paid (250 already were), 100 new users, 500 images resized"
mysql_cli shop -e "
  UPDATE order_tab SET state = 'paid' WHERE id BETWEEN 1000 AND 1999;
  INSERT INTO user (email, display_name, country) SELECT CONCAT('new', id, '@example.com'), 'New user', 'DE' FROM order_tab WHERE id <= 100;
  UPDATE dataset_image SET width = width + 1 WHERE id % 180 = 0;"
sleep 3
run_pass 2

echo "== Parquet files under $out"
for table in "$out"/*/; do
  files=$(find "$table" -name '*.parquet' | wc -l)
  size=$(du -sh "$table" | cut -f1)
  echo "$(basename "$table"): $files files, $size"
done
echo "== highwater status --config $config"
"$bin" status --config "$config"
echo "checkpoints: $work/state/quickstart.checkpoints.json"
echo "read them with e.g. python3 -c \"import pyarrow.parquet as pq; print(pq.read_table('$out/order_tab').num_rows)\""
