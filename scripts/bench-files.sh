#!/usr/bin/env bash
# Benchmark: CSV -> PostgreSQL. The standard `bench_orders` table (shared/bench/make-dataset.sh)
# exported as CSV with a header, then loaded into fresh PostgreSQL databases by
#   psql-copy        psql -c "\copy bench_orders FROM file CSV HEADER" (target table with its key,
#                    as pg_dump -s creates it)
#   psql-copy-nokey  the same into the table without its key (what decant loads into)
#   pgloader         pgloader LOAD CSV into the same table with its key (when installed, or
#                    installable with apt-get)
#   decant           decant run, types inferred from the file
# all in one session, back to back; prints "<name> <seconds> <peak RSS MB>" and the ratios.
#   ROWS    rows in bench_orders (default 5000000)
#   SHARED  the shared/ folder (default: ../shared beside this clone)
#   PEERS   peers to time (default "psql-copy psql-copy-nokey pgloader")
#   BIN     a decant binary to use instead of building the release one
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000000}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
PEERS=${PEERS:-psql-copy psql-copy-nokey pgloader}
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

if [[ $(psql -At "$PG/$SRC" -c 'select count(*) from bench_orders' 2>/dev/null) != "$ROWS" ]]; then
  ROWS=$ROWS PG_URL=$PG/$SRC MYSQL_DB= "$SHARED/bench/make-dataset.sh" >&2
fi
csv=$work/bench_orders.csv
psql -q "$PG/$SRC" -c "\\copy bench_orders TO '$csv' CSV HEADER"
echo "csv: $ROWS rows, $(du -m "$csv" | cut -f1) MB" >&2
pg_dump -s -t bench_orders "$PG/$SRC" >"$work/schema.sql"

fresh() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null; }
declare -A secs rss
timed() { # name command...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/$name.log" 2>&1 ||
    { echo "$name failed:" >&2; tail -5 "$work/$name.log" >&2; return 1; }
  read -r s kb <"$work/time"
  secs[$name]=$s
  rss[$name]=$((kb / 1024))
  echo "$name $s ${rss[$name]}"
}

for p in $PEERS; do
  case $p in
    psql-copy)
      fresh peer_csv_copy
      psql -q "$PG/peer_csv_copy" -f "$work/schema.sql" >/dev/null
      timed psql-copy psql -q "$PG/peer_csv_copy" -c "\\copy bench_orders FROM '$csv' CSV HEADER" ;;
    psql-copy-nokey)
      fresh peer_csv_copy_nokey
      psql -q "$PG/peer_csv_copy_nokey" -f "$work/schema.sql" >/dev/null
      psql -q "$PG/peer_csv_copy_nokey" -c "ALTER TABLE bench_orders DROP CONSTRAINT bench_orders_pkey"
      timed psql-copy-nokey psql -q "$PG/peer_csv_copy_nokey" -c "\\copy bench_orders FROM '$csv' CSV HEADER" ;;
    pgloader)
      if ! command -v pgloader >/dev/null; then
        { apt-get update -qq && apt-get install -y -qq pgloader >/dev/null; } || { echo "pgloader: not installable, skipped" >&2; continue; }
      fi
      fresh peer_csv_pgloader
      psql -q "$PG/peer_csv_pgloader" -f "$work/schema.sql" >/dev/null
      cat >"$work/load.pgl" <<PGL
LOAD CSV FROM '$csv' (id, customer_id, status, amount, created_at, note [null if blanks], flag, score [null if blanks])
  INTO postgresql://root@127.0.0.1:5432/peer_csv_pgloader?bench_orders
  WITH skip header = 1, fields terminated by ',', fields optionally enclosed by '"',
       fields escaped by double-quote;
PGL
      timed pgloader pgloader "$work/load.pgl"
      got=$(psql -At "$PG/peer_csv_pgloader" -c 'select count(*) from bench_orders')
      [[ $got == "$ROWS" ]] || echo "pgloader loaded $got of $ROWS rows" >&2 ;;
    *) echo "unknown peer $p" >&2; exit 2 ;;
  esac
done

fresh decant_csv
printf 'name = "bench-csv"\n[source]\nurl = "file://%s"\n[target]\nurl = "%s/decant_csv"\n' "$csv" "$PG" >"$work/plan.toml"
timed decant "$BIN" run -q --state "$work/state.db" "$work/plan.toml"
got=$(psql -At "$PG/decant_csv" -c 'select count(*) from bench_orders')
[[ $got == "$ROWS" ]] || { echo "decant loaded $got of $ROWS rows" >&2; exit 1; }

ratio() { [[ -n ${secs[$1]:-} && -n ${secs[$2]:-} ]] && echo "$1 / $2 = $(echo "scale=2; ${secs[$1]} / ${secs[$2]}" | bc)"; }
echo "--- ratios (lower is better for decant); decant peak RSS ${rss[decant]} MB"
ratio decant psql-copy || true
ratio decant psql-copy-nokey || true
ratio decant pgloader || true
