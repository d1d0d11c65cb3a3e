#!/usr/bin/env bash
# Runs every test of the workspace against real PostgreSQL and MariaDB servers.
#   DECANT_TEST_PG     admin URL of the PostgreSQL server (default postgres://root@127.0.0.1:5432/postgres)
#   DECANT_TEST_MYSQL  base URL of the MariaDB/MySQL server (default mysql://root@127.0.0.1:3306)
# Each test creates its own database there and drops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/decant-target}"
export DECANT_TEST_PG="${DECANT_TEST_PG:-postgres://root@127.0.0.1:5432/postgres}"
export DECANT_TEST_MYSQL="${DECANT_TEST_MYSQL:-mysql://root@127.0.0.1:3306}"

reachable() { # URL NAME VAR
  local hostport=${1#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
  local host=${hostport%:*} port=${hostport##*:}
  [[ $hostport == *:* ]] || port=$4
  if ! timeout 3 bash -c "</dev/tcp/$host/$port" 2>/dev/null; then
    echo "error: $2 is not reachable at $host:$port." >&2
    echo "Start it, or point the tests at another server: $3=<url> scripts/test.sh" >&2
    exit 2
  fi
}
reachable "$DECANT_TEST_PG" PostgreSQL DECANT_TEST_PG 5432
reachable "$DECANT_TEST_MYSQL" MariaDB/MySQL DECANT_TEST_MYSQL 3306

if cargo nextest --version >/dev/null 2>&1; then
  # The workspace has no doctests; nextest's summary is the run's closing line.
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
