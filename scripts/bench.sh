#!/usr/bin/env bash
# Benchmark: decant against its peers on the standard `bench_orders` table, in one session, and
# the ratios between them (never a lone absolute time). The dataset is built by
# shared/bench/make-dataset.sh (through peers.sh) when missing.
#   ROWS    rows in bench_orders (default 5000000)
#   PEERS   peers to time (default "pipe pgcopydb pgloader"; see shared/bench/peers.sh)
#   SHARED  the shared/ folder (default: ../shared beside this clone)
#   CASES   decant runs (default "pg-pg mysql-pg mysql-pg-noscan pg-pg-128mb"):
#             pg-pg            PostgreSQL -> PostgreSQL, defaults (planning scan on)
#             pg-pg-noscan     the same with policies.scan = "schema" (not a default case)
#             mysql-pg         MariaDB -> PostgreSQL, defaults (planning scan on)
#             mysql-pg-noscan  the same with policies.scan = "schema" (no data scan before the load)
#             pg-pg-128mb      PostgreSQL -> PostgreSQL with --max-memory 128MB
# Prints one line per run — "<name> <seconds> <peak RSS MB>" — then the ratios.
#   BIN     a decant binary to use instead of building the release one
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000000}
PEERS=${PEERS:-pipe pgcopydb pgloader}
CASES=${CASES:-pg-pg mysql-pg mysql-pg-noscan pg-pg-128mb}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/decant-target}"
PG=postgres://root@127.0.0.1:5432
SRC=bench_$ROWS
export PGOPTIONS="-c client_min_messages=warning"

if [[ -z ${BIN:-} ]]; then
  cargo build --release -q -p decant
  BIN=$CARGO_TARGET_DIR/release/decant
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A secs rss
while read -r name s; do secs[$name]=$s; done < <(ROWS=$ROWS PEERS="$PEERS" "$SHARED/bench/peers.sh")
for p in $PEERS; do echo "$p ${secs[$p]} -"; done

decant_run() { # case source-url [extra plan TOML] [extra flags...]
  local name=$1 url=$2 extra=${3:-}; shift 3 || shift $#
  local db="decant_${name//-/_}"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  printf 'name = "bench-%s"\n[source]\nurl = "%s"\n[target]\nurl = "%s/%s"\n%b\n' "$name" "$url" "$PG" "$db" "$extra" >"$work/$name.toml"
  rm -f "$work/state.db"*
  /usr/bin/time -f "%e %M" -o "$work/time" "$BIN" run -q --state "$work/state.db" "$@" "$work/$name.toml" >"$work/$name.log"
  read -r s kb <"$work/time"
  secs[decant-$name]=$s
  rss[decant-$name]=$((kb / 1024))
  echo "decant-$name $s ${rss[decant-$name]}"
}
for c in $CASES; do
  case $c in
    pg-pg) decant_run pg-pg "$PG/$SRC" ;;
    pg-pg-noscan) decant_run pg-pg-noscan "$PG/$SRC" '[policies]\nscan = "schema"' ;;
    mysql-pg) decant_run mysql-pg "mysql://root@127.0.0.1:3306/$SRC" ;;
    mysql-pg-noscan) decant_run mysql-pg-noscan "mysql://root@127.0.0.1:3306/$SRC" '[policies]\nscan = "schema"' ;;
    pg-pg-128mb) decant_run pg-pg-128mb "$PG/$SRC" "" --max-memory 128MB ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
done

ratio() { [[ -n ${secs[$1]:-} && -n ${secs[$2]:-} ]] && echo "$1 / $2 = $(echo "scale=2; ${secs[$1]} / ${secs[$2]}" | bc)"; }
echo "--- ratios (lower is better for decant)"
ratio decant-pg-pg pipe || true
ratio decant-pg-pg pgcopydb || true
ratio decant-pg-pg-noscan pipe || true
ratio decant-mysql-pg pgloader || true
ratio decant-mysql-pg-noscan pgloader || true
ratio decant-pg-pg-128mb decant-pg-pg || true
