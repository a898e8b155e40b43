#!/usr/bin/env bash
# Installs and starts what the tests need (MariaDB, pyarrow, promtool and Prometheus,
# systemd-analyze, PyYAML, the tansu Kafka broker and the confluent-kafka Python client), then
# runs every check and test:
# formatting, clippy with warnings as errors, unit tests and the end-to-end tests against the
# real MariaDB on 127.0.0.1:3306 (override with HIGHWATER_TEST_MYSQL_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib.sh

ensure_rust
ensure_mariadb
ensure_pyarrow
ensure_deploy_tools
ensure_tansu
ensure_kafka_python

# Databases and logins left behind by a test run that was killed.
mysql_cli -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'hwtest\\_%'" |
  while read -r db; do mysql_cli -e "DROP DATABASE \`$db\`"; done
mysql_cli -N -e "SELECT CONCAT(QUOTE(user), '@', QUOTE(host)) FROM mysql.user WHERE user LIKE 'hwtest\\_%'" |
  while read -r login; do mysql_cli -e "DROP USER $login"; done

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
