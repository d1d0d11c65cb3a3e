#!/usr/bin/env bash
# Benchmark: decant against its peers on the standard `bench_orders` table, in one session, and
# the ratios between them (never a lone absolute time). The dataset is built by
# shared/bench/make-dataset.sh (through peers.sh) when missing.
#   ROWS    rows in bench_orders (default 5000000)
#   PEERS   peers to time (default "pipe pgcopydb pgloader"; see shared/bench/peers.sh)
#   SHARED  the shared/ folder (default: ../shared beside this clone)
#   CASES   decant runs (default "pg-pg mysql-pg")
# Prints one line per run — "<name> <seconds> <peak RSS MB>" — then the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000000}
PEERS=${PEERS:-pipe pgcopydb pgloader}
CASES=${CASES:-pg-pg mysql-pg}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/decant-target}"
PG=postgres://root@127.0.0.1:5432
SRC=bench_$ROWS
export PGOPTIONS="-c client_min_messages=warning"

cargo build --release -q -p decant
BIN=$CARGO_TARGET_DIR/release/decant
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A secs rss
while read -r name s; do secs[$name]=$s; done < <(ROWS=$ROWS PEERS="$PEERS" "$SHARED/bench/peers.sh")
for p in $PEERS; do echo "$p ${secs[$p]} -"; done

decant_run() { # case source-url
  local db="decant_${1//-/_}"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  printf 'name = "bench-%s"\n[source]\nurl = "%s"\n[target]\nurl = "%s/%s"\n' "$1" "$2" "$PG" "$db" >"$work/$1.toml"
  rm -f "$work/state.db"*
  /usr/bin/time -f "%e %M" -o "$work/time" "$BIN" run -q --state "$work/state.db" "$work/$1.toml" >"$work/$1.log"
  read -r s kb <"$work/time"
  secs[decant-$1]=$s
  rss[decant-$1]=$((kb / 1024))
  echo "decant-$1 $s ${rss[decant-$1]}"
}
for c in $CASES; do
  case $c in
    pg-pg) decant_run pg-pg "$PG/$SRC" ;;
    mysql-pg) decant_run mysql-pg "mysql://root@127.0.0.1:3306/$SRC" ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
done

ratio() { [[ -n ${secs[$1]:-} && -n ${secs[$2]:-} ]] && echo "$1 / $2 = $(echo "scale=2; ${secs[$1]} / ${secs[$2]}" | bc)"; }
echo "--- ratios (lower is better for decant)"
ratio decant-pg-pg pipe || true
ratio decant-pg-pg pgcopydb || true
ratio decant-mysql-pg pgloader || true
