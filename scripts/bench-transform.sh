#!/usr/bin/env bash
# Benchmark of the transform stage: the standard `bench_orders` table PostgreSQL -> PostgreSQL,
# once plain and once with five typical transforms and three rules (docs/transform.md), back to
# back with the same binary and settings. Prints "<name> <seconds> <rows/s>" per run, then the
# throughput ratio (transformed / plain; the target is >= 0.70).
#   ROWS    rows in bench_orders (default 5000000)
#   SHARED  the shared/ folder (default: ../shared beside this clone)
#   BIN     a decant binary to use instead of building the release one
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-pg-orders.sh
export DECANT_BENCH_MASK_KEY=bench-key
# The filter and rules see the transformed values (upper-cased status), as docs/transform.md says.
TRANSFORMS='
[tables.bench_orders]
where = "status <> '"'"'CANCELLED'"'"'"
[tables.bench_orders.columns.status]
expr = "upper(trim(status))"
[tables.bench_orders.columns.note]
mask = { method = "hmac", key_env = "DECANT_BENCH_MASK_KEY", length = 32 }
[tables.bench_orders.columns.amount_cents]
expr = "CAST(amount * 100 AS BIGINT)"
[tables.bench_orders.columns.origin]
value = "bench"
[[tables.bench_orders.rules]]
name = "amount in range"
kind = "range"
column = "amount"
min = 0
max = 100000
[[tables.bench_orders.rules]]
name = "customer present"
kind = "not_null"
column = "customer_id"
[[tables.bench_orders.rules]]
name = "known status"
kind = "in_set"
column = "status"
values = ["NEW", "PAID", "SHIPPED"]
action = "warn"
'
declare -A secs
for variant in plain transformed; do
  db=transform_bench_$variant
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  extra=""
  [[ $variant == transformed ]] && extra=$TRANSFORMS
  printf 'name = "bench-transform-%s"\n[source]\nurl = "%s/%s"\n[target]\nurl = "%s/%s"\n[policies]\nscan = "schema"\n%s\n' \
    "$variant" "$PG" "$SRC" "$PG" "$db" "$extra" >"$work/$variant.toml"
  s=$(date +%s.%N)
  "$BIN" run -q --state "$work/state.db" --summary-json "$work/$variant.json" "$work/$variant.toml" >"$work/$variant.out"
  secs[$variant]=$(echo "$(date +%s.%N) - $s" | bc)
  echo "$variant ${secs[$variant]} $(echo "$ROWS / ${secs[$variant]}" | bc) rows/s (source rows)"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
python3 - "$work/transformed.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["tables"][0]
print(f"transformed: written {t['rows_written']}, filtered {t['rows_filtered']}, rejected {t['rows_rejected']}")
for st in t.get("transforms", []):
    print(f"  {st['kind']} {st['name']}: seen {st['seen']} changed {st['changed']} rejected {st['rejected']} warned {st['warned']}")
PY
echo "ratio (throughput transformed / plain, source rows per second): $(echo "scale=2; ${secs[plain]} / ${secs[transformed]}" | bc)"
