#!/usr/bin/env bash
# The generated differential test's long mode (tests/e2e/differential.rs): many more generated
# tables than the suite's three, each through the first copy, an incremental pass and upserts
# into both sinks, compared value by value. Prints the seed; a failure replays with it.
#   deploy/bench/differential.sh [TABLES (default 200)] [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/lib.sh
ensure_rust
ensure_mariadb
ensure_pyarrow
export HIGHWATER_DIFF_TABLES="${1:-200}"
if [ -n "${2:-}" ]; then export HIGHWATER_DIFF_SEED="$2"; fi
cargo test --locked --test e2e differential -- --nocapture
