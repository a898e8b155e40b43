#!/usr/bin/env bash
# Installs and starts what the tests need (MariaDB, pyarrow, promtool and Prometheus,
# systemd-analyze, openssl, PyYAML, the tansu Kafka broker and the confluent-kafka Python
# client), then runs every check and test (as root: the full-disk test mounts a 2 MB tmpfs):
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
# MariaDB instances of the tests' own (tests/e2e/harness.rs, OwnServer) and the small tmpfs of
# the full-disk test, left by a run that was killed. Each server the tests start leaves its PID
# (the file's name) and data directory (its text) here; a PID is ended only while it is still
# that server, never by name or pattern.
servers="${TMPDIR:-/tmp}/highwater-test-servers"
for f in "$servers"/*; do
  [ -f "$f" ] || continue
  pid=$(basename "$f")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--datadir=$(cat "$f")"; then
    kill -9 "$pid" || true
  fi
  rm -f "$f"
done
if command -v findmnt >/dev/null; then
  findmnt -rn -t tmpfs -o TARGET | { grep -E '^/tmp/\.tmp[^/]*/out$' || true; } | while read -r m; do umount "$m" || true; done
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
