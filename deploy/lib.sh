# Shared by deploy/*.sh: install and start what highwater needs, on a fresh Debian machine too.
# Source it; it changes nothing that is already in place.

# Builds go to a cache outside the clone, so a fresh clone (CI) reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/highwater/target}"
MYSQL_HOST="${HIGHWATER_MYSQL_HOST:-127.0.0.1}"
MYSQL_PORT="${HIGHWATER_MYSQL_PORT:-3306}"

apt_install() {
  if [ -z "${HW_APT_UPDATED:-}" ]; then
    apt-get update -qq
    HW_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

mysql_cli() {
  mariadb -uroot -h"$MYSQL_HOST" -P"$MYSQL_PORT" --default-character-set=utf8mb4 "$@"
}

# MariaDB server and client, running and answering on $MYSQL_HOST:$MYSQL_PORT.
ensure_mariadb() {
  if ! command -v mariadb >/dev/null || [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing MariaDB" >&2
    apt_install mariadb-server mariadb-client
  fi
  if ! mariadb-admin -uroot -h"$MYSQL_HOST" -P"$MYSQL_PORT" ping >/dev/null 2>&1; then
    echo "starting MariaDB" >&2
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do
      mariadb-admin -uroot -h"$MYSQL_HOST" -P"$MYSQL_PORT" ping >/dev/null 2>&1 && return 0
      sleep 0.5
    done
    echo "MariaDB did not start on $MYSQL_HOST:$MYSQL_PORT" >&2
    return 1
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
    return 1
  fi
}

# pyarrow: the independent Parquet reader the tests compare against.
ensure_pyarrow() {
  python3 -c 'import pyarrow' 2>/dev/null || python3 -m pip install --quiet pyarrow
}

# GNU time, for the peak memory of a run.
ensure_gnu_time() {
  [ -x /usr/bin/time ] || apt_install time
}

# promtool and prometheus (Debian's package), for the checks of deploy/prometheus and the test
# that scrapes a daemon with a real Prometheus; systemd-analyze, for the units; openssl, for
# the certificates of the TLS test.
ensure_deploy_tools() {
  command -v promtool >/dev/null && command -v prometheus >/dev/null || apt_install prometheus
  command -v systemd-analyze >/dev/null || apt_install systemd
  command -v openssl >/dev/null || apt_install openssl
  python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
}

# tansu, a Kafka-compatible broker (crates.io; built once, about 10 minutes, then cached in
# ~/.cargo/bin), listening on $KAFKA_BROKER with in-memory storage: the tests' Kafka.
KAFKA_BROKER="${HIGHWATER_TEST_KAFKA:-127.0.0.1:9092}"
ensure_tansu() {
  if ! command -v tansu >/dev/null; then
    echo "installing tansu (a Kafka-compatible broker; about 10 minutes, once)" >&2
    CARGO_TARGET_DIR="$HOME/.cache/highwater/tansu-target" cargo install tansu --locked --features dynostore --quiet
  fi
  if ! (exec 3<>"/dev/tcp/${KAFKA_BROKER%:*}/${KAFKA_BROKER#*:}") 2>/dev/null; then
    echo "starting tansu on $KAFKA_BROKER" >&2
    mkdir -p "$HOME/.cache/highwater"
    nohup tansu broker --listener-url "tcp://$KAFKA_BROKER" --advertised-listener-url "tcp://$KAFKA_BROKER" \
      --storage-engine memory://tansu/ >"$HOME/.cache/highwater/tansu.log" 2>&1 &
    for _ in $(seq 1 60); do
      (exec 3<>"/dev/tcp/${KAFKA_BROKER%:*}/${KAFKA_BROKER#*:}") 2>/dev/null && return 0
      sleep 0.5
    done
    echo "tansu did not start on $KAFKA_BROKER: see $HOME/.cache/highwater/tansu.log" >&2
    return 1
  fi
}

# An independent Kafka client (librdkafka's own Python binding), to read the JSON messages as
# a consumer other than highwater would.
ensure_kafka_python() {
  python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet confluent-kafka
}

# scale_table DB TABLE KEY TIME_COLUMN TARGET: copies of TABLE's rows under new keys (KEY is
# its AUTO_INCREMENT primary key), TIME_COLUMN spread over the year before each copied row's,
# until the table holds TARGET rows. `seq` scales by up to 100 per statement. For benchmarks.
scale_table() {
  local db=$1 table=$2 key=$3 time=$4 target=$5 cols n times select
  cols=$(mysql_cli -N -e "SELECT GROUP_CONCAT(CONCAT('\`', COLUMN_NAME, '\`') ORDER BY ORDINAL_POSITION)
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '$db' AND TABLE_NAME = '$table' AND COLUMN_NAME <> '$key'")
  select=${cols//\`$time\`/\`$time\` - INTERVAL FLOOR(RAND() * 31536000) SECOND}
  while :; do
    n=$(mysql_cli -N -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")
    [ "$n" -ge "$target" ] && break
    times=$(( (target - n + n - 1) / n )); [ "$times" -gt 100 ] && times=100
    mysql_cli "$db" -e "INSERT INTO \`$table\` ($cols) SELECT $select FROM \`$table\`, seq_1_to_$times LIMIT $((target - n))"
  done
}
