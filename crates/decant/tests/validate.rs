//! `decant validate` end to end: migrate with `decant run`, tamper with the target in SQL, then
//! check that validation reports exactly the differences made, no more, no fewer.

mod common;
use common::*;
use serde_json::Value;

/// (kind, key or row values joined by `|`, changed columns) — one per reported difference.
type Diff = (String, String, Vec<String>);

fn plan(w: &Workdir, source: &str, target: &str, extra: &str) -> String {
    let p = w.plan(source, target, "");
    let text = std::fs::read_to_string(&p).unwrap() + extra;
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn run(w: &Workdir, plan: &str) {
    assert_success(&w.decant(&["run", "-q", plan]));
}

/// Runs `decant validate PLAN ARGS --report FILE`; returns the exit code and the report.
fn validate(w: &Workdir, plan: &str, args: &[&str]) -> (i32, Value) {
    let file = w.path().join("report.json");
    let _ = std::fs::remove_file(&file);
    let mut all = vec!["validate", "-q", plan, "--report", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = w.decant(&all);
    let code = out.status.code().expect("exit code");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|_| {
        panic!(
            "no report (exit {code}):\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (code, serde_json::from_str(&text).expect("report is JSON"))
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target_table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {report:#}"))
}

fn joined(values: &Value) -> String {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or("NULL").to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// The differences of one table, sorted.
fn diffs(report: &Value, name: &str) -> Vec<Diff> {
    let t = table(report, name);
    let mut out: Vec<Diff> = t["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let key = if t["key_columns"].as_array().unwrap().is_empty() {
                format!("{}×{}", joined(&d["row"]), d["count"])
            } else {
                joined(&d["key"])
            };
            let cols = d["columns"].as_array().map_or(vec![], |c| {
                c.iter()
                    .map(|c| c["column"].as_str().unwrap().to_string())
                    .collect()
            });
            (d["kind"].as_str().unwrap().to_string(), key, cols)
        })
        .collect();
    out.sort();
    out
}

/// A table's notes, one per line.
fn notes(report: &Value, name: &str) -> String {
    table(report, name)["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn d(kind: &str, key: &str, cols: &[&str]) -> Diff {
    (
        kind.into(),
        key.into(),
        cols.iter().map(|c| c.to_string()).collect(),
    )
}

fn changed_values(report: &Value, name: &str, key: &str, column: &str) -> (Value, Value) {
    let t = table(report, name);
    let diff = t["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| joined(&d["key"]) == key)
        .unwrap_or_else(|| panic!("no difference at {key} in {t:#}"));
    let c = diff["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == column)
        .unwrap_or_else(|| panic!("{column} not changed at {key}: {diff:#}"));
    (c["source"].clone(), c["target"].clone())
}

#[tokio::test]
async fn identical_tables_match_and_the_outcome_is_recorded() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE keyed (id bigint PRIMARY KEY, v text, n numeric(12,2), ts timestamptz);
             INSERT INTO keyed SELECT g, 'v' || g, g / 7.0, '2024-01-01'::timestamptz + g * interval '1 min'
               FROM generate_series(1, 2000) g;
             CREATE TABLE pair (a text, b int, v int, PRIMARY KEY (a, b));
             INSERT INTO pair SELECT 'k' || (g % 7), g, g FROM generate_series(1, 300) g;
             CREATE TABLE bag (a int, b text);
             INSERT INTO bag SELECT g % 5, 'dup' FROM generate_series(1, 300) g;
             CREATE TABLE empty_one (id int PRIMARY KEY);
             ANALYZE;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 250\n");
    run(&w, &p);
    let html = w.path().join("report.html");
    let (code, report) = validate(&w, &p, &["--html", html.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["outcome"], "match");
    let keyed = table(&report, "public.keyed");
    assert_eq!(keyed["method"], "key ranges");
    assert_eq!(
        (keyed["source_rows"].as_u64(), keyed["target_rows"].as_u64()),
        (Some(2000), Some(2000))
    );
    assert!(keyed["chunks"].as_u64().unwrap() >= 8, "{keyed}");
    assert_eq!(table(&report, "public.pair")["method"], "key hash");
    assert_eq!(table(&report, "public.bag")["method"], "multiset");
    assert_eq!(table(&report, "public.empty_one")["source_rows"], 0);
    for t in [
        "public.keyed",
        "public.pair",
        "public.bag",
        "public.empty_one",
    ] {
        assert_eq!(diffs(&report, t), vec![], "{t}");
    }
    // PostgreSQL on both sides: every chunk is settled by digests computed in the databases.
    let chunks = keyed["chunks"].as_u64().unwrap();
    assert!(
        notes(&report, "public.keyed")
            .contains(&format!("{chunks} of {chunks} chunks proven equal by digests computed in the databases (each column's extended hash)")),
        "{keyed:#}"
    );
    assert!(notes(&report, "public.bag").contains("1 of 1 chunks proven equal"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("public.keyed"));
    assert!(
        !page.contains("<script") && !page.contains("<link"),
        "standalone"
    );

    let store = rusqlite::Connection::open(w.state()).unwrap();
    let (outcome, job): (String, Option<String>) = store
        .query_row(
            "SELECT outcome, job_id FROM validation_runs WHERE job_name = 'test'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(outcome, "match");
    assert!(job.is_some(), "the run's job is linked");
    let rows: i64 = store
        .query_row(
            "SELECT rows_read FROM success_records WHERE table_name = 'public.keyed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2000);
}

#[tokio::test]
async fn one_row_changed_in_each_column_type() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE TABLE typed (
               id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real,
               f8 double precision, n numeric(12,2), nb numeric, vc varchar(10), ch char(4),
               tx text, by bytea, d date, t time, ts timestamp, tz timestamptz, iv interval,
               u uuid, j json, jb jsonb, arr int[], m mood, ip inet);
             INSERT INTO typed SELECT g, g % 2 = 0, g, g * 1000, g * 100000000000, g / 4.0, g / 3.0,
               g / 8.0, g * 1.5, 'vc' || g, 'c' || g, 'text ' || g, decode(lpad(to_hex(g), 4, '0'), 'hex'),
               date '2020-01-01' + g, time '10:00' + g * interval '1 s', timestamp '2020-01-01' + g * interval '1 h',
               timestamptz '2020-01-01 00:00+00' + g * interval '1 h', g * interval '1 day',
               md5(g::text)::uuid, json_build_object('a', g, 'b', 'x'), jsonb_build_object('a', g),
               ARRAY[g, g + 1], 'ok', ('10.0.0.' || g)::inet
             FROM generate_series(1, 40) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 10\n");
    run(&w, &p);
    let changes = [
        ("b", "b = NOT b"),
        ("i2", "i2 = i2 + 1"),
        ("i4", "i4 = i4 + 1"),
        ("i8", "i8 = i8 + 1"),
        ("f4", "f4 = f4 + 0.25"),
        ("f8", "f8 = f8 * 2"),
        ("n", "n = n + 0.01"),
        ("nb", "nb = nb + 0.000001"),
        ("vc", "vc = 'other'"),
        ("ch", "ch = 'zz'"),
        ("tx", "tx = tx || '!'"),
        ("by", "by = by || '\\x00'::bytea"),
        ("d", "d = d + 1"),
        ("t", "t = t + interval '1 s'"),
        ("ts", "ts = ts + interval '1 s'"),
        ("tz", "tz = tz + interval '1 s'"),
        ("iv", "iv = iv + interval '1 hour'"),
        ("u", "u = '00000000-0000-0000-0000-000000000001'"),
        ("j", "j = '{\"a\": 0, \"b\": \"x\"}'"),
        ("jb", "jb = '{\"a\": -1}'"),
        ("arr", "arr = arr || 0"),
        ("m", "m = 'sad'"),
        ("ip", "ip = '192.168.1.1'"),
    ];
    let mut sql = String::new();
    for (i, (_, set)) in changes.iter().enumerate() {
        sql.push_str(&format!("UPDATE typed SET {set} WHERE id = {};\n", i + 1));
    }
    // Equal values spelled differently are not differences: JSON key order and whitespace,
    // trailing zeros of a numeric.
    sql.push_str("UPDATE typed SET j = '{ \"b\" : \"x\", \"a\" : 30 }' WHERE id = 30;\n");
    sql.push_str("UPDATE typed SET nb = 46.50 WHERE id = 31;\n");
    dst.client().await.batch_execute(&sql).await.unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    let want: Vec<Diff> = changes
        .iter()
        .enumerate()
        .map(|(i, (col, _))| d("changed", &(i + 1).to_string(), &[col]))
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(diffs(&report, "public.typed"), want);
    let (s, t) = changed_values(&report, "public.typed", "12", "by");
    assert_eq!(
        (s.as_str(), t.as_str()),
        (Some("\\x000c"), Some("\\x000c00"))
    );
    let (s, t) = changed_values(&report, "public.typed", "7", "n");
    assert_eq!((s.as_str(), t.as_str()), (Some("0.88"), Some("0.89")));
    assert!(
        table(&report, "public.typed")["chunks_differing"]
            .as_u64()
            .unwrap()
            >= 3
    );
}

#[tokio::test]
async fn null_to_value_and_value_to_null() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, a text, b int, c bytea);
             INSERT INTO t VALUES (1, NULL, 1, NULL), (2, 'x', 2, '\\x01'), (3, '', 3, ''), (4, 'y', NULL, NULL),
                                  (5, '', NULL, '');",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute(
            "UPDATE t SET a = '' WHERE id = 1; UPDATE t SET a = NULL WHERE id = 2;
             UPDATE t SET b = 5 WHERE id = 4; UPDATE t SET c = NULL WHERE id = 5;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        diffs(&report, "public.t"),
        vec![
            d("changed", "1", &["a"]),
            d("changed", "2", &["a"]),
            d("changed", "4", &["b"]),
            d("changed", "5", &["c"]),
        ]
    );
    let (s, t) = changed_values(&report, "public.t", "1", "a");
    assert_eq!((s, t), (Value::Null, Value::from("")), "NULL became empty");
    let (s, t) = changed_values(&report, "public.t", "2", "a");
    assert_eq!((s, t), (Value::from("x"), Value::Null));
    let (s, t) = changed_values(&report, "public.t", "5", "c");
    assert_eq!(
        (s, t),
        (Value::from("\\x"), Value::Null),
        "empty bytes became NULL"
    );
}

#[tokio::test]
async fn trailing_spaces_are_differences() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, vc varchar(10), tx text, ch char(5));
             INSERT INTO t SELECT g, 'abc', 'x', 'pad' FROM generate_series(1, 4) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute(
            "UPDATE t SET vc = 'abc ' WHERE id = 1; UPDATE t SET tx = 'x  ' WHERE id = 2;
             UPDATE t SET tx = ' x' WHERE id = 3;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        diffs(&report, "public.t"),
        vec![
            d("changed", "1", &["vc"]),
            d("changed", "2", &["tx"]),
            d("changed", "3", &["tx"]),
        ]
    );
    let (s, t) = changed_values(&report, "public.t", "1", "vc");
    assert_eq!((s, t), (Value::from("abc"), Value::from("abc ")));
    let (code, _) = validate(&w, &p, &["--count-only"]);
    assert_eq!(
        code, 0,
        "the counts agree: a count-only validation cannot see changed values"
    );
}

#[tokio::test]
async fn missing_and_extra_rows_at_the_first_and_last_key() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 100\n");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute(
            "DELETE FROM t WHERE id IN (1, 1000);
             INSERT INTO t VALUES (-5, 'below'), (0, 'zero'), (1001, 'after'), (5000, 'far');",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        diffs(&report, "public.t"),
        vec![
            d("extra", "-5", &[]),
            d("extra", "0", &[]),
            d("extra", "1001", &[]),
            d("extra", "5000", &[]),
            d("missing", "1", &[]),
            d("missing", "1000", &[]),
        ]
    );
    let t = table(&report, "public.t");
    assert_eq!(
        (t["source_rows"].as_u64(), t["target_rows"].as_u64()),
        (Some(1000), Some(1002))
    );
    assert_eq!(
        t["chunks_differing"], 2,
        "only the first and last chunks differ"
    );

    let (code, report) = validate(&w, &p, &["--max-diffs", "2"]);
    assert_eq!(code, 1);
    let t = table(&report, "public.t");
    assert_eq!(t["differences"].as_array().unwrap().len(), 2);
    assert_eq!(
        t["differences_truncated"], true,
        "the report says the list is cut"
    );

    let (code, report) = validate(&w, &p, &["--count-only"]);
    assert_eq!(code, 1, "1000 rows against 1002");
    assert_eq!(report["mode"], "count");
    assert_eq!(diffs(&report, "public.t"), vec![], "counts list no rows");
}

#[tokio::test]
async fn timestamps_differing_in_microseconds() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, ts timestamp(6), tz timestamptz(6), t time(6));
             INSERT INTO t SELECT g, '2024-02-29 23:59:59.999998', '1969-12-31 23:59:59.999999+00', '12:00:00.000001'
               FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute(
            "UPDATE t SET ts = ts + interval '1 microsecond' WHERE id = 1;
             UPDATE t SET tz = tz - interval '1 microsecond' WHERE id = 2;
             UPDATE t SET t = t + interval '1 microsecond' WHERE id = 3;
             SET TIME ZONE 'Asia/Kolkata'; UPDATE t SET tz = '1970-01-01 05:29:59.999999+05:30' WHERE id = 4;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        diffs(&report, "public.t"),
        vec![
            d("changed", "1", &["ts"]),
            d("changed", "2", &["tz"]),
            d("changed", "3", &["t"]),
        ],
        "the same instant written in another zone (row 4) is no difference"
    );
    let (s, t) = changed_values(&report, "public.t", "1", "ts");
    assert_eq!(
        (s, t),
        (
            Value::from("2024-02-29 23:59:59.999998"),
            Value::from("2024-02-29 23:59:59.999999")
        )
    );
}

#[tokio::test]
async fn float_versus_double_within_the_documented_tolerance() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, r real, d double precision);
             INSERT INTO t VALUES (1, 0.1, 1), (2, 0.5, 2.5), (3, 1.25, 1.0 / 3), (4, 3.3, 1e300);",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "");
    run(&w, &p);
    // Another tool moved the float4 through its text form into a float8: 0.1 (float4) is not
    // 0.1 (float8), 0.5 and 1.25 are exact in both.
    dst.client()
        .await
        .batch_execute(
            "ALTER TABLE t ALTER COLUMN r TYPE double precision USING r::text::float8;
             UPDATE t SET d = d * (1 + 1e-12) WHERE id = 3;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "floats compare exactly by default");
    assert_eq!(
        diffs(&report, "public.t"),
        vec![
            d("changed", "1", &["r"]),
            d("changed", "3", &["d"]),
            d("changed", "4", &["r"]),
        ]
    );
    let (code, report) = validate(&w, &p, &["--float-tolerance", "1e-6"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(table(&report, "public.t")["rows_within_tolerance"], 3);

    dst.client()
        .await
        .batch_execute("UPDATE t SET d = d * 1.001 WHERE id = 2")
        .await
        .unwrap();
    let with_key = plan(
        &w,
        &src.url,
        &dst.url,
        "[validate]\nfloat_tolerance = 1e-6\n",
    );
    let (code, report) = validate(&w, &with_key, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        diffs(&report, "public.t"),
        vec![d("changed", "2", &["d"])],
        "a change past the tolerance is still found"
    );
    assert_eq!(report["float_tolerance"], 1e-6);
}

#[tokio::test]
async fn sqlite_and_postgresql_pairs() {
    // SQLite → PostgreSQL.
    let (lite, pg) = (SqliteTestDb::create(), PgTestDb::create().await);
    let conn = rusqlite::Connection::open(&lite.path).unwrap();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, data BLOB, seen DATETIME);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300)
         INSERT INTO items SELECT i, 'item ' || i, i * 3, i / 4.0, x'00ff', '2024-01-01 10:00:00' FROM g;",
    )
    .unwrap();
    drop(conn);
    let w = Workdir::new();
    let p = plan(&w, &lite.url, &pg.url, "[load]\nchunk_rows = 50\n");
    run(&w, &p);
    pg.client()
        .await
        .batch_execute(
            "UPDATE items SET name = 'renamed' WHERE id = 3; DELETE FROM items WHERE id = 7;
             UPDATE items SET seen = seen + interval '1 s', price = 0 WHERE id = 300;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.items"),
        vec![
            d("changed", "3", &["name"]),
            d("changed", "300", &["price", "seen"]),
            d("missing", "7", &[]),
        ]
    );

    // PostgreSQL → SQLite.
    let (pg, lite) = (PgTestDb::create().await, SqliteTestDb::create());
    pg.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), n numeric(10,2), d date, b boolean, j jsonb);
             INSERT INTO t SELECT g, 'v' || g, g / 3.0, date '2024-01-01' + g, g % 2 = 0, jsonb_build_object('k', g, 'a', 1)
               FROM generate_series(1, 200) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &pg.url, &lite.url, "[load]\nchunk_rows = 64\n");
    run(&w, &p);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 0, "an untouched SQLite copy matches: {report:#}");
    let conn = rusqlite::Connection::open(&lite.path).unwrap();
    conn.execute_batch(
        "UPDATE t SET v = 'changed' WHERE id = 1; DELETE FROM t WHERE id = 200;
         INSERT INTO t (id, v) VALUES (201, 'new');",
    )
    .unwrap();
    drop(conn);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        diffs(&report, "t"),
        vec![
            d("changed", "1", &["v"]),
            d("extra", "201", &[]),
            d("missing", "200", &[]),
        ]
    );
}

#[tokio::test]
async fn renamed_tables_and_columns_are_compared_by_their_target_names() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, secret text, n int);
             INSERT INTO t SELECT g, 'v' || g, 'hidden', g FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(
        &w,
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 100\n[tables.t]\nrename = \"t2\"\n\
         [tables.t.columns.id]\nrename = \"key\"\n[tables.t.columns.v]\nrename = \"value\"\n\
         [tables.t.columns.secret]\nskip = true\n",
    );
    run(&w, &p);
    dst.client()
        .await
        .batch_execute("UPDATE t2 SET value = 'x' WHERE key = 250; DELETE FROM t2 WHERE key = 499;")
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    let t = table(&report, "public.t2");
    assert_eq!(
        (t["method"].as_str(), t["key_columns"].clone()),
        (Some("key ranges"), serde_json::json!(["key"]))
    );
    assert_eq!(
        t["columns"],
        serde_json::json!(["key", "value", "n"]),
        "the skipped column is not compared"
    );
    assert_eq!(
        diffs(&report, "public.t2"),
        vec![d("changed", "250", &["value"]), d("missing", "499", &[])]
    );
}

#[tokio::test]
async fn tables_migrated_by_another_tool_are_validated_without_a_run() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(10,2), name varchar(40), opened timestamp);
             INSERT INTO accounts SELECT g, g * 1.25, 'acct ' || g, timestamp '2020-01-01' + g * interval '1 day'
               FROM generate_series(1, 300) g;",
        )
        .await
        .unwrap();
    // Another tool chose other types (bigint, numeric without scale, text, timestamptz) and
    // created no primary key.
    dst.client()
        .await
        .batch_execute(
            "SET TIME ZONE 'UTC';
             CREATE TABLE accounts (id bigint, balance numeric, name text, opened timestamptz, extra int);
             INSERT INTO accounts SELECT g, (g * 1.25)::numeric(12,4), 'acct ' || g, timestamp '2020-01-01' + g * interval '1 day', 0
               FROM generate_series(1, 300) g;
             UPDATE accounts SET balance = 0 WHERE id = 42;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 100\n");
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.accounts"),
        vec![d("changed", "42", &["balance"])]
    );
    let notes = table(&report, "public.accounts")["notes"].to_string();
    assert!(
        notes.contains("target column extra is not in the plan"),
        "{notes}"
    );
    let store = rusqlite::Connection::open(w.state()).unwrap();
    let (outcome, job): (String, Option<String>) = store
        .query_row("SELECT outcome, job_id FROM validation_runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (outcome.as_str(), job),
        ("differences", None),
        "no job: nothing was run"
    );
}

#[tokio::test]
async fn composite_key_table_is_compared_by_its_key() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE stock (region text, id int, qty int, PRIMARY KEY (region, id));
             INSERT INTO stock SELECT r, g, g FROM unnest(ARRAY['eu', 'us', 'asia']) r, generate_series(1, 200) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 50\n");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute(
            "UPDATE stock SET qty = -1 WHERE region = 'eu' AND id = 7;
             DELETE FROM stock WHERE region = 'us' AND id = 3;
             INSERT INTO stock VALUES ('zz', 1, 1);",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    let t = table(&report, "public.stock");
    assert_eq!(t["method"], "key hash");
    assert_eq!(t["key_columns"], serde_json::json!(["region", "id"]));
    assert_eq!(
        diffs(&report, "public.stock"),
        vec![
            d("changed", "eu|7", &["qty"]),
            d("extra", "zz|1", &[]),
            d("missing", "us|3", &[]),
        ]
    );
}

#[tokio::test]
async fn a_table_without_a_key_is_compared_as_a_multiset() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE bag (a int, b text);
             INSERT INTO bag SELECT g % 10, 'dup' FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 30\n");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute(
            "DELETE FROM bag WHERE ctid = (SELECT min(ctid) FROM bag WHERE a = 1);
             UPDATE bag SET b = 'changed' WHERE ctid = (SELECT min(ctid) FROM bag WHERE a = 2);
             INSERT INTO bag VALUES (99, 'new'), (99, 'new');",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1);
    let t = table(&report, "public.bag");
    assert_eq!(t["method"], "multiset");
    assert_eq!(
        diffs(&report, "public.bag"),
        vec![
            d("extra", "2|changed×1", &[]),
            d("extra", "99|new×2", &[]),
            d("missing", "1|dup×1", &[]),
            d("missing", "2|dup×1", &[]),
        ]
    );
    assert!(
        t["notes"]
            .to_string()
            .contains("cannot be told apart as changed"),
        "{t}"
    );
}

#[tokio::test]
async fn rules_on_the_target_integrity_and_business() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2) NOT NULL);
             CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders(id), qty int NOT NULL);
             INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 10) g;
             INSERT INTO lines SELECT g, 1 + g % 10, g FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let rules = "[[validate.rules]]\nname = \"no negative totals\"\nsql = \"SELECT count(*) FROM orders WHERE total < 0\"\n\
                 [[validate.rules]]\nname = \"ten orders\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = 10\n";
    let p = plan(&w, &src.url, &dst.url, rules);
    run(&w, &p);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 0, "{report:#}");
    let statuses: Vec<(String, String)> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("ten orders".into(), "passed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .any(|(n, s)| n.starts_with("foreign key") && s == "passed"),
        "foreign keys are always checked: {statuses:?}"
    );

    dst.client()
        .await
        .batch_execute(
            "ALTER TABLE lines DROP CONSTRAINT lines_order_id_fkey;
             ALTER TABLE lines ALTER COLUMN qty DROP NOT NULL;
             ALTER TABLE orders DROP CONSTRAINT orders_pkey;
             DELETE FROM orders WHERE id = 3;
             UPDATE orders SET total = -1 WHERE id = 5;
             INSERT INTO orders VALUES (4, 40);
             UPDATE lines SET qty = NULL WHERE id = 1;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.orders"),
        vec![
            d("changed", "5", &["total"]),
            d("extra", "4", &[]),
            d("missing", "3", &[]),
        ]
    );
    assert_eq!(
        diffs(&report, "public.lines"),
        vec![d("changed", "1", &["qty"])]
    );
    let rule = |prefix: &str| {
        report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no rule {prefix}: {report:#}"))
            .clone()
    };
    let orphans = rule("foreign key");
    assert_eq!(
        (orphans["status"].as_str(), orphans["actual"].as_i64()),
        (Some("failed"), Some(5))
    );
    let unique = rule("primary key (id) of public.orders");
    assert_eq!(
        (unique["status"].as_str(), unique["actual"].as_i64()),
        (Some("failed"), Some(1))
    );
    let not_null = rule("NOT NULL columns of public.lines");
    assert_eq!(
        (not_null["status"].as_str(), not_null["actual"].as_i64()),
        (Some("failed"), Some(1))
    );
    let negative = rule("no negative totals");
    assert_eq!(
        (negative["status"].as_str(), negative["actual"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(rule("ten orders")["status"], "passed");
    assert_eq!(
        rule("NOT NULL columns of public.orders")["status"],
        "enforced"
    );

    let broken = plan(
        &w,
        &src.url,
        &dst.url,
        "[[validate.rules]]\nname = \"broken\"\nsql = \"SELECT count(*) FROM no_such_table\"\n",
    );
    let (code, report) = validate(&w, &broken, &["--no-rules"]);
    assert_eq!(code, 1, "--no-rules leaves only the data differences");
    assert!(report["rules"].as_array().unwrap().is_empty());
    let (code, report) = validate(&w, &broken, &[]);
    assert_eq!(code, 2, "a rule that cannot run is an error");
    assert!(
        rule_detail(&report, "broken").contains("no_such_table"),
        "{report:#}"
    );
}

fn rule_detail(report: &Value, name: &str) -> String {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["detail"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn tables_that_cannot_be_compared_exit_2() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE here (id int PRIMARY KEY); CREATE TABLE there (id int PRIMARY KEY, v int);",
        )
        .await
        .unwrap();
    dst.client()
        .await
        .batch_execute("CREATE TABLE there (id int PRIMARY KEY)")
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "");
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 2);
    assert_eq!(report["outcome"], "error");
    let here = table(&report, "public.here");
    assert!(
        here["error"].as_str().unwrap().contains("does not exist"),
        "{here}"
    );
    let there = table(&report, "public.there");
    assert!(
        there["error"].as_str().unwrap().contains("has no column v"),
        "{there}"
    );

    // A target column narrower than the source's values cannot be compared like for like.
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE wide (id int PRIMARY KEY, v int); INSERT INTO wide VALUES (1, 100000);",
        )
        .await
        .unwrap();
    dst.client()
        .await
        .batch_execute(
            "CREATE TABLE wide (id int PRIMARY KEY, v smallint); INSERT INTO wide VALUES (1, 1);",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 2);
    let wide = table(&report, "public.wide");
    assert!(
        wide["error"]
            .as_str()
            .unwrap()
            .contains("cannot be converted to the target's type"),
        "{wide}"
    );

    let out = w.decant(&["validate", "-q", "/nonexistent/plan.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test]
async fn postgresql_and_mariadb_pair() {
    let (pg, my) = (PgTestDb::create().await, MysqlTestDb::create().await);
    pg.client()
        .await
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, status varchar(16),
               amount numeric(12,2), created timestamp, note text, flag boolean, score double precision);
             INSERT INTO orders SELECT g, g % 97, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3], g / 8.0,
               timestamp '2024-01-01' + g * interval '1 s 1 ms', CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g END,
               g % 2 = 0, g / 3.0
             FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let rules = "[[validate.rules]]\nname = \"no negative amounts\"\n\
                 sql = \"SELECT count(*) FROM orders WHERE amount < 0\"\n\
                 [[validate.rules]]\nname = \"a thousand orders\"\n\
                 sql = \"SELECT count(*) FROM orders\"\nexpect = 1000\n";
    let p = plan(
        &w,
        &pg.url,
        &my.url,
        &format!("[load]\nchunk_rows = 128\n{rules}"),
    );
    run(&w, &p);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 0, "{report:#}");
    use mysql_async::prelude::Queryable;
    let mut conn = my.conn().await;
    conn.query_drop(
        "UPDATE orders SET note = NULL WHERE id = 1; UPDATE orders SET note = 'set' WHERE id = 10;
         UPDATE orders SET amount = amount + 0.01 WHERE id = 500; DELETE FROM orders WHERE id = 1000;
         INSERT INTO orders (id, customer) VALUES (1001, 1);",
    )
    .await
    .unwrap();
    drop(conn);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    let statuses: Vec<(&str, &str)> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "business")
        .map(|r| (r["name"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("no negative amounts", "passed"),
            ("a thousand orders", "passed")
        ],
        "rules run on MariaDB: {report:#}"
    );
    assert_eq!(
        diffs(&report, "orders"),
        vec![
            d("changed", "1", &["note"]),
            d("changed", "10", &["note"]),
            d("changed", "500", &["amount"]),
            d("extra", "1001", &[]),
            d("missing", "1000", &[]),
        ]
    );
}

#[tokio::test]
async fn in_place_digests_settle_equal_chunks_and_leave_differences_to_the_rows() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE hashed (id bigint PRIMARY KEY, b boolean, i4 integer, f8 double precision,
               n numeric(12,2), vc varchar(10), ch char(6), tx text, by bytea, d date, t time,
               ts timestamp, tz timestamptz, u uuid);
             INSERT INTO hashed SELECT g, g % 2 = 0, g, g / 3.0, g / 8.0, 'vc' || g, 'c' || g,
               'Text ' || g, decode(lpad(to_hex(g), 4, '0'), 'hex'), date '2020-01-01' + g,
               time '10:00' + g * interval '1 s', timestamp '2020-01-01' + g * interval '1 h',
               timestamptz '2020-01-01 00:00+00' + g * interval '1 h', md5(g::text)::uuid
             FROM generate_series(1, 1000) g;
             CREATE TABLE spans (id int PRIMARY KEY, iv interval);
             INSERT INTO spans SELECT g, g * interval '1 day' FROM generate_series(1, 100) g;
             CREATE TABLE twins (a int, b text);
             INSERT INTO twins SELECT g, 'row' FROM generate_series(3, 50) g;
             INSERT INTO twins VALUES (1, 'x'), (1, 'x');",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "[load]\nchunk_rows = 100\n");
    run(&w, &p);
    // One change per hashed type, all in the chunk of keys 201..300; letter case and one
    // microsecond must not hash alike.
    let changes = [
        ("b", "b = NOT b"),
        ("i4", "i4 = i4 + 1"),
        ("f8", "f8 = f8 * 2"),
        ("n", "n = n + 0.01"),
        ("vc", "vc = upper(vc)"),
        ("ch", "ch = 'zz'"),
        ("tx", "tx = lower(tx)"),
        ("by", "by = by || '\\x00'::bytea"),
        ("d", "d = d + 1"),
        ("t", "t = t + interval '1 s'"),
        ("ts", "ts = ts + interval '1 microsecond'"),
        ("tz", "tz = tz + interval '1 microsecond'"),
        ("u", "u = '00000000-0000-0000-0000-000000000001'"),
    ];
    let mut sql = String::new();
    for (i, (_, set)) in changes.iter().enumerate() {
        sql.push_str(&format!(
            "UPDATE hashed SET {set} WHERE id = {};\n",
            201 + i
        ));
    }
    // A row missing in the middle of the differing chunk: found from its bucket's digests.
    sql.push_str("DELETE FROM hashed WHERE id = 260;\n");
    // '1 day' and '24 hours' are equal intervals to PostgreSQL's hash, not to the comparison.
    sql.push_str("UPDATE spans SET iv = interval '24 hours' WHERE id = 1;\n");
    // A pair of equal rows replaced by another pair: a XOR of row hashes cancels both pairs,
    // so a table whose rows may repeat is digested with a sum too.
    sql.push_str("UPDATE twins SET a = 2, b = 'y' WHERE a = 1;\n");
    dst.client().await.batch_execute(&sql).await.unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    let mut want: Vec<Diff> = changes
        .iter()
        .enumerate()
        .map(|(i, (col, _))| d("changed", &(201 + i).to_string(), &[col]))
        .collect();
    want.push(d("missing", "260", &[]));
    want.sort();
    assert_eq!(diffs(&report, "public.hashed"), want);
    let hashed = table(&report, "public.hashed");
    assert_eq!(hashed["chunks_differing"], 1, "{hashed:#}");
    let chunks = hashed["chunks"].as_u64().unwrap();
    assert!(
        notes(&report, "public.hashed").contains(&format!(
            "{} of {chunks} chunks proven equal by digests computed in the databases (each column's extended hash); the others were read",
            chunks - 1
        )),
        "{hashed:#}"
    );
    assert!(
        notes(&report, "public.hashed").contains(
            "1 differing chunks narrowed down to key ranges by digests computed in the databases"
        ),
        "{hashed:#}"
    );
    assert_eq!(
        diffs(&report, "public.spans"),
        vec![d("changed", "1", &["iv"])]
    );
    assert!(
        !notes(&report, "public.spans").contains("proven equal"),
        "intervals are not hashed in place"
    );
    assert_eq!(
        diffs(&report, "public.twins"),
        vec![d("extra", "2|y×2", &[]), d("missing", "1|x×2", &[])]
    );
}

/// Runs `decant validate` with `env` set; returns the exit code, the JSON report, stdout and
/// the HTML report.
fn validate_with(
    w: &Workdir,
    plan: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, Value, String, String) {
    let (json, html) = (w.path().join("report.json"), w.path().join("report.html"));
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&html);
    let mut all = vec![
        "validate",
        plan,
        "--report",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let mut cmd = w.command(&all);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run decant");
    let code = out.status.code().expect("exit code");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| {
        panic!(
            "no report (exit {code}):\nstdout:\n{stdout}\nstderr:\n{}",
            stderr(&out)
        )
    });
    let html = std::fs::read_to_string(&html).unwrap_or_default();
    (
        code,
        serde_json::from_str(&text).expect("report is JSON"),
        stdout,
        html,
    )
}

const MASK_KEY: (&str, &str) = ("DECANT_TEST_MASK_KEY", "validate key 7");

const TRANSFORMS: &str = r#"[load]
chunk_rows = 100
max_rejects = 100
[validate]
mode = "checksum"
[tables.customers]
where = "lower(country) <> 'xx'"
[tables.customers.columns.email]
mask = { method = "hmac", key_env = "DECANT_TEST_MASK_KEY" }
[tables.customers.columns.name]
rename = "full_name"
[tables.customers.columns.country]
expr = "lower(country)"
[tables.customers.columns.doubled]
expr = "amount * 2"
[[tables.customers.rules]]
name = "amount not negative"
kind = "range"
column = "amount"
min = 0
"#;

#[tokio::test]
async fn transformed_tables_are_compared_after_their_transforms() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    // 30 rows filtered out (country XX), 12 rejected by the rule (negative amounts): 258 load.
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, email text, name text, country text, amount int);
             INSERT INTO customers SELECT g, 'u' || g || '@example.com', 'name ' || g,
               CASE WHEN g % 10 = 3 THEN 'XX' ELSE 'PT' END,
               CASE WHEN g % 25 = 0 THEN -g ELSE g END
             FROM generate_series(1, 300) g;
             ANALYZE;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, TRANSFORMS);
    let mut cmd = w.command(&["run", "-q", &p]);
    cmd.env(MASK_KEY.0, MASK_KEY.1);
    assert_success(&cmd.output().unwrap());
    // The run's own checksum validation took the source digests as the transformed rows
    // streamed to the target, and counted what its transforms left out.
    let in_run = w.last_validation_report();
    assert_eq!(in_run["outcome"], "match", "{in_run:#}");
    let t = &in_run["tables"][0];
    assert!(
        t["notes"]
            .to_string()
            .contains("3 of 3 chunks compared with the digests computed as the run loaded them"),
        "{t:#}"
    );
    assert_eq!(
        (&t["source_rows"], &t["rows_filtered"], &t["rows_rejected"]),
        (&Value::from(258), &Value::from(30), &Value::from(12)),
        "{t:#}"
    );

    let (code, report, _, _) = validate_with(&w, &p, &[MASK_KEY], &[]);
    assert_eq!(code, 0, "{report:#}");
    let t = table(&report, "public.customers");
    assert_eq!(
        (&t["source_rows"], &t["target_rows"], &t["method"]),
        (
            &Value::from(258),
            &Value::from(258),
            &Value::from("key ranges")
        )
    );
    assert_eq!(
        (&t["rows_filtered"], &t["rows_rejected"]),
        (&Value::from(30), &Value::from(12)),
        "{t:#}"
    );
    let n = notes(&report, "public.customers");
    assert!(
        n.contains("source rows 30 left out by the plan's filter and 12 rejected by its rules"),
        "{n}"
    );
    assert!(n.contains("masked columns (email)"), "{n}");
    assert!(n.contains("cannot be digested in the database"), "{n}");
    let (code, report, _, _) = validate_with(&w, &p, &[MASK_KEY], &["--count-only"]);
    assert_eq!(code, 0, "counts after the filter and rules: {report:#}");
    assert_eq!(
        table(&report, "public.customers")["source_rows"],
        Value::from(258)
    );

    dst.client()
        .await
        .batch_execute(
            "UPDATE customers SET doubled = 0 WHERE id = 5;
             UPDATE customers SET full_name = 'someone' WHERE id = 6;
             UPDATE customers SET email = 'tampered@example.org' WHERE id = 7;
             UPDATE customers SET country = 'PT' WHERE id = 8;
             INSERT INTO customers (id, email, full_name, country, amount, doubled)
               VALUES (13, 'm', 'n', 'xx', 13, 26), (25, 'm', 'n', 'pt', -25, -50);
             DELETE FROM customers WHERE id = 299;",
        )
        .await
        .unwrap();
    let (code, report, stdout, html) = validate_with(&w, &p, &[MASK_KEY], &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.customers"),
        vec![
            d("changed", "5", &["doubled"]),
            d("changed", "6", &["full_name"]),
            d("changed", "7", &["email"]),
            d("changed", "8", &["country"]),
            d("extra", "13", &[]),
            d("extra", "25", &[]),
            d("missing", "299", &[]),
        ]
    );
    assert_eq!(
        changed_values(&report, "public.customers", "8", "country"),
        (Value::from("pt"), Value::from("PT")),
        "the source side is shown as the transform made it"
    );
    let (masked, target) = changed_values(&report, "public.customers", "7", "email");
    let masked = masked.as_str().unwrap();
    assert!(
        masked.len() == 64 && masked.chars().all(|c| c.is_ascii_hexdigit()),
        "the source side of a masked column is its mask: {masked}"
    );
    assert_eq!(target, "tampered@example.org");
    // No source value of the masked column, in any output: not the changed row's, not the
    // missing row's.
    let json = report.to_string();
    for (what, text) in [("json", &json), ("stdout", &stdout), ("html", &html)] {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(
            !text.contains("@example.com"),
            "{what} shows a source email:\n{text}"
        );
    }

    // Another key masks every value differently: every loaded row differs in email, shown
    // masked only.
    let (code, report, stdout, _) = validate_with(
        &w,
        &p,
        &[(MASK_KEY.0, "another key")],
        &["--max-diffs", "5000"],
    );
    assert_eq!(code, 1);
    let all = diffs(&report, "public.customers");
    assert_eq!(
        all.iter()
            .filter(|(k, _, c)| k == "changed" && c == &["email".to_string()])
            .count(),
        254,
        "{all:?}"
    );
    assert!(!report.to_string().contains("@example.com"));
    assert!(!stdout.contains("@example.com"));

    // Without the key the transforms cannot be replayed: an error naming the variable.
    let out = w.decant(&["validate", "-q", &p]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("DECANT_TEST_MASK_KEY"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn mariadb_source_with_a_computed_key_constant_and_masks() {
    let (my, pg) = (MysqlTestDb::create().await, PgTestDb::create().await);
    use mysql_async::prelude::Queryable;
    let mut conn = my.conn().await;
    conn.query_drop(
        "CREATE TABLE people (id int PRIMARY KEY, email varchar(100), phone varchar(20), score int);
         INSERT INTO people
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200)
         SELECT n, CONCAT('p', n, '@mail.test'), CONCAT('+351 900 ', LPAD(n, 3, '0')),
           CASE WHEN n % 20 = 0 THEN NULL ELSE n END FROM g;",
    )
    .await
    .unwrap();
    drop(conn);
    let w = Workdir::new();
    let p = plan(
        &w,
        &my.url,
        &pg.url,
        r#"[load]
chunk_rows = 64
max_rejects = 100
[tables.people.columns.id]
expr = "id + 1000"
[tables.people.columns.email]
mask = { method = "fake" }
[tables.people.columns.phone]
mask = { method = "partial", keep = 2 }
[tables.people.columns.origin]
value = "crm"
[[tables.people.rules]]
name = "score known"
kind = "not_null"
column = "score"
"#,
    );
    run(&w, &p);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 0, "{report:#}");
    let t = table(&report, "public.people");
    assert_eq!(
        t["method"], "key hash",
        "a computed key is matched by its hash"
    );
    assert_eq!(
        (&t["source_rows"], &t["target_rows"], &t["rows_rejected"]),
        (&Value::from(190), &Value::from(190), &Value::from(10)),
        "{t:#}"
    );
    pg.client()
        .await
        .batch_execute(
            "UPDATE people SET origin = 'erp' WHERE id = 1005;
             UPDATE people SET phone = '+351 900 007' WHERE id = 1007;
             DELETE FROM people WHERE id = 1199;
             INSERT INTO people (id, email, phone, score, origin) VALUES (1020, 'x', 'y', 1, 'crm');",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.people"),
        vec![
            d("changed", "1005", &["origin"]),
            d("changed", "1007", &["phone"]),
            d("extra", "1020", &[]),
            d("missing", "1199", &[]),
        ]
    );
    assert_eq!(
        changed_values(&report, "public.people", "1007", "phone"),
        (Value::from("**********07"), Value::from("+351 900 007")),
        "the source side is the partial mask, the target's unmasked value is what it holds"
    );
    let json = report.to_string();
    assert!(
        !json.contains("mail.test") && !json.contains("+351 900 005"),
        "{json}"
    );
}

#[tokio::test]
async fn a_column_policy_that_rewrote_values_is_replayed_on_the_source() {
    use mysql_async::prelude::Queryable;
    let (my, pg) = (MysqlTestDb::create().await, PgTestDb::create().await);
    let mut c = my.conn().await;
    c.query_drop(
        "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
         CREATE TABLE events (id int PRIMARY KEY, happened date NULL, kept date NULL);
         INSERT INTO events VALUES (1, '2024-05-01', '2024-05-01'), (2, '0000-00-00', '2024-05-02'),
           (3, NULL, NULL), (4, '0000-00-00', '2024-05-04');",
    )
    .await
    .unwrap();
    drop(c);
    let w = Workdir::new();
    // One column's zero dates load as NULL; the plan's global policy stays "fail".
    let p = plan(
        &w,
        &my.url,
        &pg.url,
        "[tables.events.columns.happened.policies]\nzero_date = \"null\"\n",
    );
    run(&w, &p);
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(
        code, 0,
        "the zero dates became NULL as the plan said: {report:#}"
    );
    // A real difference is still found.
    pg.client()
        .await
        .batch_execute("UPDATE events SET happened = '2020-01-01' WHERE id = 2")
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.events"),
        vec![d("changed", "2", &["happened"])]
    );
}

#[tokio::test]
async fn values_a_hazard_policy_rewrote_in_the_engine_are_rewritten_on_the_source_too() {
    use mysql_async::prelude::Queryable;
    let (my, pg) = (MysqlTestDb::create().await, PgTestDb::create().await);
    let mut c = my.conn().await;
    c.query_drop(
        "CREATE TABLE notes (id int PRIMARY KEY, body varchar(20) NULL);
         INSERT INTO notes VALUES (1, 'plain'), (2, CONCAT('a', CHAR(0), 'b')), (3, NULL),
           (4, CONCAT(CHAR(0), 'lead'));",
    )
    .await
    .unwrap();
    drop(c);
    let w = Workdir::new();
    // PostgreSQL text cannot hold NUL: the run removes it, as the plan says.
    let p = plan(&w, &my.url, &pg.url, "[policies]\nnul_byte = \"coerce\"\n");
    run(&w, &p);
    let loaded: Vec<Option<String>> = pg
        .client()
        .await
        .query("SELECT body FROM notes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        loaded,
        vec![
            Some("plain".to_string()),
            Some("ab".to_string()),
            None,
            Some("lead".to_string())
        ]
    );
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(
        code, 0,
        "the target holds what the policy made of the source: {report:#}"
    );
    pg.client()
        .await
        .batch_execute("UPDATE notes SET body = 'a b' WHERE id = 2")
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.notes"),
        vec![d("changed", "2", &["body"])]
    );
    assert_eq!(
        changed_values(&report, "public.notes", "2", "body"),
        (Value::from("ab"), Value::from("a b"))
    );
}

/// `(source_rows, target_rows, rows_filtered, rows_rejected)` of a table.
fn counts(report: &Value, name: &str) -> (u64, u64, u64, u64) {
    let t = table(report, name);
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("no {k} in {t:#}"));
    (
        n("source_rows"),
        n("target_rows"),
        n("rows_filtered"),
        n("rows_rejected"),
    )
}

#[tokio::test]
async fn deduplicated_tables_are_compared_with_the_rows_the_run_kept() {
    let src = PgTestDb::create().await;
    // Keys repeat every 100 ids, spelled in capitals above 200 (folded by `expr`); two NULL
    // keys, never duplicates. Chunks of 50 load in parallel.
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, email text, name text);
             INSERT INTO customers SELECT g,
               CASE WHEN g > 200 THEN upper('u' || (g % 100) || '@x.org') ELSE 'u' || (g % 100) || '@x.org' END,
               'n' || g
             FROM generate_series(1, 300) g;
             UPDATE customers SET email = NULL WHERE id IN (150, 250);
             ANALYZE;",
        )
        .await
        .unwrap();
    for (keep, filter, kept, loser) in [
        // first: the smallest id per key that passes the filter (101 for key 1, as id 1 is
        // filtered out); a loser is a later row of a kept key.
        (
            "first",
            "where = \"id <> 1\"",
            (2..=100).chain([101, 150, 250]).collect::<Vec<i32>>(),
            201,
        ),
        // last: the largest id per key (key 50 has no capital twin: 50 is its only row). No
        // filter: only the dedupe leaves rows out, and a plain count cannot know which.
        ("last", "", (201..=300).chain([50, 150]).collect(), 101),
    ] {
        let filtered = if filter.is_empty() { 0 } else { 1 };
        let dst = PgTestDb::create().await;
        let w = Workdir::new();
        let p = plan(
            &w,
            &src.url,
            &dst.url,
            &format!(
                r#"[load]
chunk_rows = 50
parallelism = 3
max_rejects = 1000
[validate]
mode = "checksum"
[tables.customers]
{filter}
dedupe = {{ key = ["email"], keep = "{keep}" }}
[tables.customers.columns.email]
expr = "lower(email)"
"#
            ),
        );
        run(&w, &p);
        assert_eq!(customer_ids(&dst).await.len(), kept.len(), "keep = {keep}");
        let rejected = 300 - filtered - kept.len() as u64;
        let expected = (kept.len() as u64, kept.len() as u64, filtered, rejected);
        // The run's own validation compared the digests it took while loading.
        let in_run = w.last_validation_report();
        assert_eq!(in_run["outcome"], "match", "keep = {keep}: {in_run:#}");
        // Its `rows_filtered` counts the rows the filter pushed into the source's query never
        // read, from the run's own count.
        assert_eq!(counts(&in_run, "public.customers"), expected, "{keep}");

        let (code, report) = validate(&w, &p, &[]);
        assert_eq!(code, 0, "keep = {keep}: {report:#}");
        assert_eq!(counts(&report, "public.customers"), expected, "{keep}");
        let left_out = match filtered {
            0 => String::new(),
            n => format!("{n} left out by the plan's filter and "),
        };
        assert!(
            notes(&report, "public.customers").contains(&format!(
                "source rows {left_out}{rejected} rejected by its rules or as duplicates (dedupe) \
                 (quarantined by the run, see `decant rejects`) are not expected on the target"
            )),
            "{report:#}"
        );
        let (code, report) = validate(&w, &p, &["--count-only"]);
        assert_eq!(code, 0, "keep = {keep}: {report:#}");
        assert_eq!(
            table(&report, "public.customers")["source_rows"],
            Value::from(kept.len()),
        );

        // A kept row deleted, a loser loaded after all (exactly as the source has it), a kept
        // row changed.
        let (deleted, changed) = (kept[10], kept[20]);
        dst.client()
            .await
            .batch_execute(&format!(
                "DELETE FROM customers WHERE id = {deleted};
                 INSERT INTO customers (id, email, name)
                   VALUES ({loser}, 'u{}@x.org', 'n{loser}');
                 UPDATE customers SET name = 'someone' WHERE id = {changed};",
                loser % 100
            ))
            .await
            .unwrap();
        let (code, report) = validate(&w, &p, &[]);
        assert_eq!(code, 1, "keep = {keep}: {report:#}");
        let mut want = vec![
            d("changed", &changed.to_string(), &["name"]),
            d("extra", &loser.to_string(), &[]),
            d("missing", &deleted.to_string(), &[]),
        ];
        want.sort();
        assert_eq!(diffs(&report, "public.customers"), want, "keep = {keep}");
        assert_eq!(
            counts(&report, "public.customers"),
            expected,
            "one row fewer and one more on the target"
        );
    }
}

#[tokio::test]
async fn reference_rules_are_replayed_against_the_target_and_the_source() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    // Person 5 is filtered out of the target: the target lookup rejects its accounts (4, 54,
    // 104, 154), which a lookup in the source would keep; 7 and 8 point at no one; 9 is NULL
    // and passes. Account 20's referrer exists nowhere (the source lookup rejects it), account
    // 21's referrer is person 5 (in the source: kept).
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE people (id int PRIMARY KEY, name text);
             INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 50) g;
             CREATE TABLE accounts (id int PRIMARY KEY, person_id int, referrer_id int);
             INSERT INTO accounts SELECT g, (g % 50) + 1, NULL FROM generate_series(1, 200) g;
             UPDATE accounts SET person_id = 999 WHERE id IN (7, 8);
             UPDATE accounts SET person_id = NULL WHERE id = 9;
             UPDATE accounts SET referrer_id = 777 WHERE id = 20;
             UPDATE accounts SET referrer_id = 5 WHERE id = 21;
             ANALYZE;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(
        &w,
        &src.url,
        &dst.url,
        r#"[load]
chunk_rows = 50
parallelism = 3
max_rejects = 10
[validate]
mode = "checksum"
[tables.people]
where = "id <> 5"
[[tables.accounts.rules]]
name = "person on target"
kind = "reference"
column = "person_id"
table = "people"
key = "id"
[[tables.accounts.rules]]
name = "referrer in source"
kind = "reference"
column = "referrer_id"
table = "people"
key = "id"
side = "source"
"#,
    );
    run(&w, &p);
    let in_run = w.last_validation_report();
    assert_eq!(in_run["outcome"], "match", "{in_run:#}");
    assert_eq!(counts(&in_run, "public.accounts"), (193, 193, 0, 7));

    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(counts(&report, "public.accounts"), (193, 193, 0, 7));
    assert_eq!(counts(&report, "public.people"), (49, 49, 1, 0));
    let (code, report) = validate(&w, &p, &["--count-only"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(table(&report, "public.accounts")["source_rows"], 193);

    // A loaded account deleted, a rejected one loaded after all (as the source has it), one
    // changed.
    dst.client()
        .await
        .batch_execute(
            "DELETE FROM accounts WHERE id = 10;
             INSERT INTO accounts (id, person_id, referrer_id) VALUES (54, 5, NULL);
             UPDATE accounts SET person_id = 13 WHERE id = 11;",
        )
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.accounts"),
        vec![
            d("changed", "11", &["person_id"]),
            d("extra", "54", &[]),
            d("missing", "10", &[]),
        ]
    );
    assert!(diffs(&report, "public.people").is_empty());

    // The lookup reads the target's people as they are now: with person 3 gone, its accounts
    // (2, 52, 102, 152) are no longer expected, and show as extra.
    dst.client()
        .await
        .batch_execute("DELETE FROM people WHERE id = 3")
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        diffs(&report, "public.people"),
        vec![d("missing", "3", &[])]
    );
    assert_eq!(
        diffs(&report, "public.accounts"),
        vec![
            d("changed", "11", &["person_id"]),
            d("extra", "102", &[]),
            d("extra", "152", &[]),
            d("extra", "2", &[]),
            d("extra", "52", &[]),
            d("extra", "54", &[]),
            d("missing", "10", &[]),
        ]
    );
    assert_eq!(counts(&report, "public.accounts"), (189, 193, 0, 11));

    // Without the lookup table on the target, the rule cannot be replayed: an error for the
    // table, naming the rule and the table, not a guess.
    dst.client()
        .await
        .batch_execute("DROP TABLE people")
        .await
        .unwrap();
    let (code, report) = validate(&w, &p, &[]);
    assert_eq!(code, 2, "{report:#}");
    let accounts = table(&report, "public.accounts");
    assert_eq!(accounts["outcome"], "error");
    let error = accounts["error"].as_str().unwrap();
    assert!(
        error.contains("rule `person on target`")
            && error.contains("the target has no table people"),
        "{error}"
    );
}

async fn customer_ids(db: &PgTestDb) -> Vec<i32> {
    db.client()
        .await
        .query("SELECT id FROM customers ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect()
}

#[tokio::test]
async fn a_closed_standard_output_does_not_stop_the_report_or_change_the_exit_code() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let p = plan(&w, &src.url, &dst.url, "");
    run(&w, &p);
    dst.client()
        .await
        .batch_execute("UPDATE t SET v = 'edited' WHERE id = 7")
        .await
        .unwrap();
    // `decant validate plan.toml | head -0`: the reader is gone before the summary is printed.
    let file = w.path().join("report.json");
    let mut child = w
        .command(&["validate", &p, "--report", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "differences found, as with an open output: {}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(diffs(&report, "public.t"), vec![d("changed", "7", &["v"])]);
}
