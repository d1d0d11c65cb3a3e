# Sourced by the PostgreSQL -> PostgreSQL benchmarks of bench_orders: settings, the release
# binary (or $BIN), a work dir removed at exit, and the standard table in bench_$ROWS (built by
# the shared make-dataset.sh when missing or of another size).
ROWS=${ROWS:-5000000}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/decant-target}"
export PGOPTIONS="-c client_min_messages=warning"
PG=postgres://root@127.0.0.1:5432
SRC=bench_$ROWS
if [[ -z ${BIN:-} ]]; then
  cargo build --release -q -p decant
  BIN=$CARGO_TARGET_DIR/release/decant
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ $(psql -At "$PG/$SRC" -c 'select count(*) from bench_orders' 2>/dev/null) != "$ROWS" ]]; then
  ROWS=$ROWS PG_URL=$PG/$SRC MYSQL_DB= "$SHARED/bench/make-dataset.sh" >&2
fi
