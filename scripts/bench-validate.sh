#!/usr/bin/env bash
# Benchmark of `decant validate` against reladiff (PyPI `reladiff[postgresql,mysql]`) on the
# standard `bench_orders` table, in one session: identical tables, then 4 injected differences
# (a changed value, a value set to NULL, a row missing at the last key, an extra row), for
# PostgreSQL -> PostgreSQL and MariaDB -> PostgreSQL. Prints "<name> <seconds> <differences>"
# per run, then the ratios. The dataset is built by shared/bench/make-dataset.sh when missing.
#   ROWS    rows in bench_orders (default 5000000)
#   SHARED  the shared/ folder (default: ../shared beside this clone)
#   PAIRS   which pairs (default "pg-pg mysql-pg")
#   BIN     a decant binary to use instead of building the release one
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000000}
PAIRS=${PAIRS:-pg-pg mysql-pg}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/decant-target}"
export PGOPTIONS="-c client_min_messages=warning"
PG=postgres://root@127.0.0.1:5432
MY=mysql://root@127.0.0.1:3306
SRC=bench_$ROWS
command -v reladiff >/dev/null || pip install -q 'reladiff[postgresql,mysql]'
if [[ -z ${BIN:-} ]]; then
  cargo build --release -q -p decant
  BIN=$CARGO_TARGET_DIR/release/decant
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ $(psql -At "$PG/$SRC" -c 'select count(*) from bench_orders' 2>/dev/null) != "$ROWS" ]] ||
   [[ $(mariadb -h 127.0.0.1 -u root -N -e "select count(*) from $SRC.bench_orders" 2>/dev/null) != "$ROWS" ]]; then
  ROWS=$ROWS PG_URL=$PG/$SRC MYSQL_DB=$SRC "$SHARED/bench/make-dataset.sh" >&2
fi
COLS=(-c customer_id -c status -c amount -c created_at -c note -c flag -c score)
declare -A secs

timed() { # name command... ; prints seconds, leaves stdout in $work/name.out
  local name=$1 s; shift
  s=$(date +%s.%N)
  "$@" >"$work/$name.out" 2>"$work/$name.err" || true
  secs[$name]=$(echo "$(date +%s.%N) - $s" | bc)
}

for pair in $PAIRS; do
  case $pair in
    pg-pg) src_url=$PG/$SRC; rela_src="postgresql://root@127.0.0.1:5432/$SRC" ;;
    mysql-pg) src_url=$MY/$SRC; rela_src="mysql://root@127.0.0.1:3306/$SRC" ;;
    *) echo "unknown pair $pair" >&2; exit 2 ;;
  esac
  db=validate_${pair//-/_}
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  printf 'name = "bench-validate-%s"\n[source]\nurl = "%s"\n[target]\nurl = "%s/%s"\n[policies]\nscan = "schema"\n' \
    "$pair" "$src_url" "$PG" "$db" >"$work/$pair.toml"
  "$BIN" run -q --state "$work/state.db" "$work/$pair.toml" >/dev/null
  psql -q "$PG/$db" -c "VACUUM ANALYZE bench_orders" >/dev/null
  # The load's dirty pages would otherwise be written out by the checkpointer and the kernel
  # during the timed runs, which slows whichever tool runs first.
  psql -q "$PG/$db" -c "CHECKPOINT" >/dev/null
  sync
  for state in same diff; do
    if [[ $state == diff ]]; then
      psql -q "$PG/$db" <<SQL
UPDATE bench_orders SET amount = amount + 1 WHERE id = 1;
UPDATE bench_orders SET score = NULL WHERE id = $((ROWS / 2 + 2)) AND score IS NOT NULL;
DELETE FROM bench_orders WHERE id = $ROWS;
INSERT INTO bench_orders VALUES ($((ROWS + 1)), 1, 'new', 1.00, '2020-01-01', 'extra', true, 1.5);
CHECKPOINT;
SQL
    fi
    timed "decant-$pair-$state" "$BIN" validate -q --state "$work/state.db" --no-rules \
      --report "$work/report.json" "$work/$pair.toml"
    found=$(python3 -c "import json,sys; r=json.load(open('$work/report.json')); print(sum(len(t['differences']) for t in r['tables']))")
    echo "decant-$pair-$state ${secs[decant-$pair-$state]} $found"
    timed "reladiff-$pair-$state" reladiff "$rela_src" bench_orders "postgresql://root@127.0.0.1:5432/$db" \
      bench_orders -k id "${COLS[@]}" --threads 4
    echo "reladiff-$pair-$state ${secs[reladiff-$pair-$state]} $(grep -c '^[+-]' "$work/reladiff-$pair-$state.out" || true) (+/- lines)"
    [[ -s $work/reladiff-$pair-$state.err ]] && tail -2 "$work/reladiff-$pair-$state.err" | sed 's/^/  reladiff: /'
  done
done
echo "--- ratios (decant / reladiff, lower is better for decant)"
for pair in $PAIRS; do
  for state in same diff; do
    echo "$pair $state: $(echo "scale=2; ${secs[decant-$pair-$state]} / ${secs[reladiff-$pair-$state]}" | bc)"
  done
done
