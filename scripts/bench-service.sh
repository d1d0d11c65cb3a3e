#!/usr/bin/env bash
# Load test of `decant serve`: one job alone, then JOBS concurrent migrations (PostgreSQL ->
# PostgreSQL, ROWS rows each, one target database per job) while a client polls
# GET /migration/status at RATE requests/s. Prints p50/p99 of status and initialize latency and
# the total throughput of the concurrent jobs against the single one; then the initialize time of
# a 100-table source.
#   ROWS    rows per job (default 1000000)
#   JOBS    concurrent jobs (default 10)
#   RATE    status requests per second (default 50)
#   PROFILE release (default) or debug
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
JOBS=${JOBS:-10}
RATE=${RATE:-50}
PROFILE=${PROFILE:-release}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/decant-target}"
export PGOPTIONS="-c client_min_messages=warning"
PG=postgres://root@127.0.0.1:5432
SRC=bench_svc_src_$ROWS
if [[ $PROFILE == release ]]; then cargo build --release -q -p decant; else cargo build -q -p decant; fi
BIN=$CARGO_TARGET_DIR/$PROFILE/decant
work=$(mktemp -d)
PORT=${PORT:-18181}
cleanup() {
  [[ -n ${SERVE_PID:-} ]] && kill "$SERVE_PID" 2>/dev/null || true
  for i in $(seq 0 "$JOBS") base; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_svc_t_$i" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
if [[ $(psql -At "$PG/$SRC" -c 'select count(*) from items' 2>/dev/null) != "$ROWS" ]]; then
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $SRC" -c "CREATE DATABASE $SRC"
  psql -q "$PG/$SRC" -c "CREATE TABLE items (id bigint PRIMARY KEY, customer int, status text, amount numeric(12,2), created_at timestamptz, note text)" \
    -c "INSERT INTO items SELECT g, g % 9973, (ARRAY['new','paid','shipped'])[1 + g % 3], (g % 100000) / 100.0, timestamptz '2024-01-01' + g * interval '1 second', md5(g::text) FROM generate_series(1, $ROWS) g" \
    -c "ANALYZE items"
fi
for i in $(seq 0 "$JOBS") base; do
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_svc_t_$i" -c "CREATE DATABASE bench_svc_t_$i"
done
WIDE=bench_svc_wide
if [[ $(psql -At "$PG/$WIDE" -c "select count(*) from information_schema.tables where table_schema = 'public'" 2>/dev/null) != 100 ]]; then
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $WIDE" -c "CREATE DATABASE $WIDE"
  for t in $(seq 1 100); do
    echo "CREATE TABLE t$t (id bigint PRIMARY KEY, a int, b text, c timestamptz, d numeric(10,2)); INSERT INTO t$t SELECT g, g, md5(g::text), now(), g FROM generate_series(1, 1000) g;"
  done | psql -q "$PG/$WIDE"
  psql -q "$PG/$WIDE" -c "ANALYZE"
fi
"$BIN" serve --listen 127.0.0.1:$PORT --store "$work/state.db" --max-concurrent "$JOBS" 2>"$work/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$PORT" "$PG" "$SRC" "$ROWS" "$JOBS" "$RATE" <<'PY'
import json, sys, threading, time, urllib.request
port, pg, src, rows, jobs, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        out = json.loads(r.read())
    return out, (time.perf_counter() - t) * 1000

def plan(name, target):
    return {"name": name, "source": {"url": f"{pg}/{src}"}, "target": {"url": f"{pg}/{target}"}}

def wait(ids):
    while True:
        states = [call("GET", f"/migration/status?job={j}")[0]["state"] for j in ids]
        if any(s == "failed" for s in states):
            sys.exit(f"a job failed: {states}")
        if all(s == "succeeded" for s in states):
            return
        time.sleep(0.2)

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

# One job alone.
job, _ = call("POST", "/migration/initialize", plan("base", "bench_svc_t_base"))
t = time.perf_counter()
call("POST", "/migration/run", {"job_id": job["job_id"]})
wait([job["job_id"]])
single = time.perf_counter() - t

# JOBS at once, polled at RATE.
init_ms, ids = [], []
for i in range(jobs):
    out, ms = call("POST", "/migration/initialize", plan(f"load{i}", f"bench_svc_t_{i}"))
    init_ms.append(ms)
    ids.append(out["job_id"])
status_ms, stop = [], threading.Event()
def poll():
    i, next_at = 0, time.perf_counter()
    while not stop.is_set():
        _, ms = call("GET", f"/migration/status?job={ids[i % len(ids)]}")
        status_ms.append(ms)
        i += 1
        next_at += 1 / rate
        time.sleep(max(0, next_at - time.perf_counter()))
t = time.perf_counter()
for j in ids:
    call("POST", "/migration/run", {"job_id": j})
poller = threading.Thread(target=poll)
poller.start()
wait(ids)
together = time.perf_counter() - t
stop.set()
poller.join()
print(f"one job: {rows} rows in {single:.2f} s = {rows / single:,.0f} rows/s")
print(f"{jobs} jobs: {rows * jobs} rows in {together:.2f} s = {rows * jobs / together:,.0f} rows/s "
      f"({rows * jobs / together / (rows / single):.2f}x one job)")
print(f"status: {len(status_ms)} requests at {len(status_ms) / together:.0f}/s, p50 {pct(status_ms, 50):.1f} ms, "
      f"p99 {pct(status_ms, 99):.1f} ms, max {max(status_ms):.1f} ms")
print(f"initialize: {len(init_ms)} requests, p50 {pct(init_ms, 50):.1f} ms, p99 {pct(init_ms, 99):.1f} ms")
wide = []
for i in range(3):
    _, ms = call("POST", "/migration/initialize", {"name": f"wide{i}", "source": {"url": f"{pg}/bench_svc_wide"},
                 "target": {"url": f"{pg}/bench_svc_t_base"}, "load": {"if_exists": "drop"}})
    wide.append(ms)
print(f"initialize of a 100-table source: {', '.join(f'{m:.0f}' for m in wide)} ms")
PY
