//! Hazards: preflight counts them exactly on the source, a run without a policy refuses before
//! touching the target, and each policy does what it promises, counted in the summary.

mod common;
use common::*;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn finding<'a>(report: &'a Value, column: &str, kind: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["column"] == column && f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding for {column}: {report}"))
}

fn sqlite_source() -> SqliteTestDb {
    let src = SqliteTestDb::create();
    let conn = rusqlite::Connection::open(&src.path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT, code VARCHAR(5), blob BLOB);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 100)
         INSERT INTO t SELECT i, 'note ' || i, 'c' || i, x'0102' FROM g;
         UPDATE t SET note = 'nul' || char(0) || 'inside' WHERE id IN (7, 42, 99);
         UPDATE t SET code = 'much too long ' || id WHERE id IN (3, 4, 5, 60);
         UPDATE t SET blob = randomblob(64) WHERE id IN (10, 20);
         CREATE TRIGGER t_touch AFTER UPDATE ON t BEGIN SELECT 1; END;",
    )
    .unwrap();
    src
}

#[tokio::test]
async fn sqlite_hazards_are_counted_refused_then_resolved_by_policies() {
    let (src, dst) = (sqlite_source(), PgTestDb::create().await);
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    // Small chunks: the scan runs over three key ranges at once and must add them up exactly.
    let base =
        std::fs::read_to_string(&plan).unwrap() + "[load]\nchunk_rows = 10\nparallelism = 3\n";
    std::fs::write(&plan, format!("{base}[policies]\nmax_lob = \"32B\"\n")).unwrap();
    let plan_s = plan.to_str().unwrap();

    let out = w.decant(&["preflight", "--json", plan_s]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "hazards without a policy: exit 1\n{}",
        stderr(&out)
    );
    let report = json(&out);
    let nul = finding(&report, "note", "nul_byte");
    assert_eq!(nul["rows"], 3);
    assert_eq!(nul["sample_keys"], serde_json::json!(["7", "42", "99"]));
    assert!(
        nul["resolve"].as_str().unwrap().contains("nul_byte"),
        "{nul}"
    );
    let long = finding(&report, "code", "too_long");
    assert_eq!(long["rows"], 4);
    assert_eq!(
        long["sample_keys"],
        serde_json::json!(["3", "4", "5", "60"])
    );
    let lob = finding(&report, "blob", "lob_too_large");
    assert_eq!(lob["rows"], 2);
    assert_eq!(report["findings"].as_array().unwrap().len(), 3, "{report}");
    assert!(
        report["tables"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("primary key (id)")
    );
    assert!(
        report["schema"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "trigger t_touch on t is not carried"),
        "{report}"
    );
    let estimate = &report["estimate"];
    assert_eq!(estimate["tables"][0]["basis"], "sampled", "{estimate}");
    assert_eq!(estimate["tables"][0]["rows"], 100);
    assert!(
        estimate["seconds"].as_f64().unwrap() > 0.0
            && estimate["peak_memory_bytes"].as_u64().unwrap() > 0
    );

    let out = w.decant(&["run", "-q", plan_s]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("nothing was touched") && err.contains("t.note: nul_byte in 3 rows"),
        "{err}"
    );
    let exists: bool = dst
        .client()
        .await
        .query_one("SELECT to_regclass('public.t') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "a refused run creates no table");

    std::fs::write(
        &plan,
        format!(
            "{base}[policies]\nmax_lob = \"32B\"\nlob_too_large = \"null\"\n[policies.by_type.varchar]\ntoo_long = \"coerce\"\n\
             [tables.t.columns.note.policies]\nnul_byte = \"coerce\"\n"
        ),
    )
    .unwrap();
    let summary = w.path().join("summary.json");
    assert_success(&w.decant(&[
        "run",
        "-q",
        plan_s,
        "--summary-json",
        summary.to_str().unwrap(),
    ]));
    let d = dst.client().await;
    let rows = d
        .query(
            "SELECT id, note, code, blob IS NULL FROM t WHERE id IN (7, 3, 10, 11) ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "note 3".into(), "much ".into(), false),
            (7, "nulinside".into(), "c7".into(), false),
            (10, "note 10".into(), "c10".into(), true),
            (11, "note 11".into(), "c11".into(), false),
        ]
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let changes = s["policy_changes"].as_array().unwrap();
    let count = |col: &str, kind: &str| {
        changes
            .iter()
            .find(|c| c["column"] == col && c["kind"] == kind)
            .map(|c| c["values"].as_u64().unwrap())
    };
    assert_eq!(count("note", "nul_byte"), Some(3));
    assert_eq!(count("code", "too_long"), Some(4));
    assert_eq!(count("blob", "lob_too_large"), Some(2));
    assert_eq!(s["scan"], "full");
    assert_eq!(s["hazards"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn postgres_infinity_is_out_of_range_until_a_policy_says_otherwise() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE ev (id int PRIMARY KEY, at timestamp, day date);
             INSERT INTO ev SELECT g, timestamp '2020-01-01' + g * interval '1 day', date '2020-01-01' + g FROM generate_series(1, 50) g;
             UPDATE ev SET day = 'infinity' WHERE id IN (5, 6);
             UPDATE ev SET day = '-infinity', at = 'infinity' WHERE id = 9;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let base = std::fs::read_to_string(&plan).unwrap();
    let plan_s = plan.to_str().unwrap();
    let out = w.decant(&["preflight", "--json", plan_s]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(finding(&report, "day", "out_of_range")["rows"], 3);
    assert_eq!(
        finding(&report, "day", "out_of_range")["sample_keys"],
        serde_json::json!(["5", "6", "9"])
    );
    assert_eq!(finding(&report, "at", "out_of_range")["rows"], 1);

    std::fs::write(&plan, format!("{base}[policies]\nscan = \"off\"\n")).unwrap();
    let out = w.decant(&["run", "-q", plan_s]);
    assert!(
        !out.status.success(),
        "without the scan, the load meets the hazard and fails the chunk"
    );
    assert!(
        stderr(&out).contains("infinity") && stderr(&out).contains("ev"),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        &plan,
        format!("{base}[policies]\nout_of_range = \"null\"\n"),
    )
    .unwrap();
    let summary = w.path().join("s.json");
    assert_success(&w.decant(&[
        "run",
        "-q",
        "--restart",
        plan_s,
        "--summary-json",
        summary.to_str().unwrap(),
    ]));
    let d = dst.client().await;
    let nulls: i64 = d
        .query_one("SELECT count(*) FROM ev WHERE day IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nulls, 3);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let changes = s["policy_changes"].as_array().unwrap();
    let day = changes.iter().find(|c| c["column"] == "day").unwrap();
    assert_eq!(
        (day["values"].as_u64(), day["policy"].as_str()),
        (Some(3), Some("null"))
    );
    let at = changes.iter().find(|c| c["column"] == "at").unwrap();
    assert_eq!(at["values"].as_u64(), Some(1));
}

#[tokio::test]
async fn nan_and_infinity_bound_for_sqlite_are_counted_and_nulled() {
    let (src, dst) = (PgTestDb::create().await, SqliteTestDb::create());
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE m (id int PRIMARY KEY, x float8, n numeric);
             INSERT INTO m SELECT g, g / 2.0, g FROM generate_series(1, 30) g;
             UPDATE m SET x = 'NaN' WHERE id IN (4, 8); UPDATE m SET x = '-Infinity', n = 'NaN' WHERE id = 15;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let base = std::fs::read_to_string(&plan).unwrap();
    let out = w.decant(&["preflight", "--json", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(finding(&report, "x", "not_a_number")["rows"], 3);
    assert_eq!(
        finding(&report, "x", "not_a_number")["sample_keys"],
        serde_json::json!(["4", "8", "15"])
    );
    assert_eq!(finding(&report, "n", "not_a_number")["rows"], 1);
    std::fs::write(
        &plan,
        format!("{base}[policies]\nnot_a_number = \"null\"\n"),
    )
    .unwrap();
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let conn = rusqlite::Connection::open(&dst.path).unwrap();
    let nulls: i64 = conn
        .query_row("SELECT count(*) FROM m WHERE x IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(nulls, 3);
    let n_null: i64 = conn
        .query_row("SELECT count(*) FROM m WHERE n IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n_null, 1);
}

#[tokio::test]
async fn invalid_utf8_in_sqlite_text_follows_its_policy() {
    let (src, dst) = (SqliteTestDb::create(), PgTestDb::create().await);
    let conn = rusqlite::Connection::open(&src.path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT);
         INSERT INTO t VALUES (1, 'fine'), (2, CAST(x'61ff62' AS TEXT)), (3, 'ok'), (4, CAST(x'c328' AS TEXT));",
    )
    .unwrap();
    drop(conn);
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let base = std::fs::read_to_string(&plan).unwrap();
    let out = w.decant(&["preflight", "--json", plan.to_str().unwrap()]);
    let report = json(&out);
    let unchecked = report["tables"][0]["unchecked"].as_array().unwrap();
    assert!(
        unchecked.iter().any(|u| u == "note invalid_encoding"),
        "SQLite cannot count it in SQL: {report}"
    );

    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success(), "the default policy fails the chunk");
    assert!(
        stderr(&out).contains("note") && stderr(&out).contains("invalid UTF-8"),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        &plan,
        format!("{base}[policies]\ninvalid_encoding = \"coerce\"\n"),
    )
    .unwrap();
    let summary = w.path().join("s.json");
    assert_success(&w.decant(&[
        "run",
        "-q",
        "--restart",
        plan.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]));
    let d = dst.client().await;
    let notes: Vec<String> = d
        .query("SELECT note FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes, vec!["fine", "a\u{fffd}b", "ok", "\u{fffd}("]);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let change = &s["policy_changes"][0];
    assert_eq!(
        (
            change["column"].as_str(),
            change["kind"].as_str(),
            change["values"].as_u64()
        ),
        (Some("note"), Some("invalid_encoding"), Some(2))
    );
}
