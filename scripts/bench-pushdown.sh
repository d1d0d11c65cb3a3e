#!/usr/bin/env bash
# Benchmark of filter pushdown: the standard `bench_orders` table PostgreSQL -> PostgreSQL with a
# selective `where` (one status in five, amounts of at least 500), run back to back with the same
# binary: with the filter pushed into the source query, with `push_filters = false` (the engine
# reads and filters every row), and the peer, a `psql` COPY (SELECT ... WHERE ...) binary pipe.
# Prints "<name> <seconds>" per run, then the ratios to the peer and to the unpushed run.
#   ROWS    rows in bench_orders (default 5000000)
#   SHARED  the shared/ folder (default: ../shared beside this clone)
#   BIN     a decant binary to use instead of building the release one
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-pg-orders.sh
WHERE="status = 'paid' AND amount >= 500"
db=pushdown_bench
fresh() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null; }
declare -A secs
for variant in pushed engine psql; do
  fresh
  s=$(date +%s.%N)
  if [[ $variant == psql ]]; then
    # The table first, its primary key after the data, as decant does.
    pg_dump --section=pre-data -t bench_orders "$PG/$SRC" | psql -q "$PG/$db" >/dev/null
    psql -q "$PG/$SRC" -c "\\copy (SELECT * FROM bench_orders WHERE $WHERE) TO STDOUT (FORMAT binary)" |
      psql -q "$PG/$db" -c "\\copy bench_orders FROM STDIN (FORMAT binary)"
    pg_dump --section=post-data -t bench_orders "$PG/$SRC" | psql -q "$PG/$db" >/dev/null
  else
    push=true
    [[ $variant == engine ]] && push=false
    printf 'name = "bench-pushdown-%s"\n[source]\nurl = "%s/%s"\n[target]\nurl = "%s/%s"\n[policies]\nscan = "schema"\n[load]\npush_filters = %s\n[tables.bench_orders]\nwhere = "%s"\n' \
      "$variant" "$PG" "$SRC" "$PG" "$db" "$push" "$WHERE" >"$work/$variant.toml"
    "$BIN" run -q --state "$work/state.db" --summary-json "$work/$variant.json" "$work/$variant.toml" >"$work/$variant.out"
  fi
  secs[$variant]=$(echo "$(date +%s.%N) - $s" | bc)
  echo "$variant ${secs[$variant]} s, $(psql -At "$PG/$db" -c 'select count(*) from bench_orders') rows"
done
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
python3 - "$work/pushed.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["tables"][0]
print(f"pushed: written {t['rows_written']}, filtered {t['rows_filtered']} ({t.get('rows_filtered_at_source', 0)} at the source)")
print(f"  source query: {t.get('filter_pushed')}")
PY
echo "ratio pushed / psql COPY pipe (wall time): $(echo "scale=2; ${secs[pushed]} / ${secs[psql]}" | bc)"
echo "ratio pushed / engine-only (wall time): $(echo "scale=2; ${secs[pushed]} / ${secs[engine]}" | bc)"
