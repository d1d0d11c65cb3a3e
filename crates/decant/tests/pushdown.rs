//! Filter pushdown against the real servers: the part of `where` a source can evaluate exactly
//! goes into its query, so fewer rows are read, and the target receives exactly the rows the
//! engine alone would keep — through case-insensitive and PAD SPACE collations, hazard policies
//! that rewrite values, SQLite's loose storage classes and hostile literals.

mod common;
use common::*;
use mysql_async::prelude::Queryable;

fn run(w: &Workdir, plan: &std::path::Path) -> (std::process::Output, serde_json::Value) {
    let out = w.decant(&[
        "run",
        "-q",
        "--summary-json",
        w.path().join("summary.json").to_str().unwrap(),
        plan.to_str().unwrap(),
    ]);
    let summary = std::fs::read_to_string(w.path().join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, summary)
}

async fn pg_ids(db: &PgTestDb, table: &str) -> Vec<i64> {
    db.client()
        .await
        .query(&format!("SELECT id::int8 FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn postgres_reads_only_matching_rows_and_compares_text_bytewise() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    // An ICU collation sorts 'PAID' after 'a'; bytewise (the engine's order) it sorts before.
    src.client()
        .await
        .batch_execute(
            r#"CREATE TABLE orders (id bigint PRIMARY KEY, status varchar(16) COLLATE "en-US-x-icu",
                 amount numeric(12,2), flag boolean, at timestamp, score float8);
               INSERT INTO orders SELECT g,
                 CASE g % 3 WHEN 0 THEN 'paid' WHEN 1 THEN 'PAID' ELSE 'open' END,
                 g, g % 2 = 0, timestamp '2024-01-01' + g * interval '1 minute', (g % 10) / 10.0
               FROM generate_series(1, 1000) g;"#,
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let filter =
        "status < 'a' AND amount >= 100 AND flag AND at < '2024-01-01 10:00:00' AND score > 0.55";
    let plan = w.plan(
        &src.url,
        &dst.url,
        &format!("[load]\nchunk_rows = 200\n[tables.orders]\nwhere = \"{filter}\"\n"),
    );
    let shown = w.decant(&["plan", plan.to_str().unwrap()]);
    assert_success(&shown);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains(r#"where, in the source's query: ("status" COLLATE "C") < E'a'"#),
        "{text}"
    );
    assert!(
        text.contains("where, in the engine only: score > "),
        "{text}"
    );

    let (out, sm) = run(&w, &plan);
    assert_success(&out);
    let expected: Vec<i64> = (1..=1000)
        .filter(|g| g % 3 == 1 && *g >= 100 && g % 2 == 0 && *g < 600 && g % 10 >= 6)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(pg_ids(&dst, "orders").await, expected);
    let t = &sm["tables"][0];
    assert_eq!(t["source_rows"], 1000, "{t:#}");
    assert_eq!(t["rows_written"], expected.len());
    assert_eq!(t["rows_filtered"], 1000 - expected.len());
    // Only the rows meeting the pushed part were read: score > 0.55 was the engine's to drop.
    let read_by_engine = (1..=1000i64)
        .filter(|g| g % 3 == 1 && *g >= 100 && g % 2 == 0 && *g < 600)
        .count();
    assert_eq!(t["rows_filtered_at_source"], 1000 - read_by_engine, "{t:#}");
    assert!(
        t["filter_pushed"]
            .as_str()
            .unwrap()
            .contains("COLLATE \"C\""),
        "{t:#}"
    );

    // Validation replays the filter on the source and finds the target equal.
    let out = w.decant(&["validate", "-q", "--json", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Inside the run, the check uses the run's own digests: the rows the pushed filter kept
    // from being read are counted as filtered all the same.
    let (dst3, w3) = (PgTestDb::create().await, Workdir::new());
    let plan = w3.plan(
        &src.url,
        &dst3.url,
        &format!(
            "[load]\nchunk_rows = 200\n[validate]\nmode = \"checksum\"\n[tables.orders]\nwhere = \"{filter}\"\n"
        ),
    );
    let (out, sm) = run(&w3, &plan);
    assert_success(&out);
    assert_eq!(sm["validation"], "checksum: match (1 tables)", "{sm:#}");
    let report = w3.last_validation_report();
    let t = &report["tables"][0];
    let units = t["chunks"].as_u64().unwrap();
    assert!(
        t["notes"].to_string().contains(&format!(
            "{units} of {units} chunks compared with the digests computed as the run loaded them"
        )),
        "{t:#}"
    );
    assert_eq!(t["rows_filtered"], 1000 - expected.len(), "{t:#}");
    assert_eq!(t["source_rows"], expected.len(), "{t:#}");

    // The engine alone, reading every row, keeps the same rows.
    let (dst2, w2) = (PgTestDb::create().await, Workdir::new());
    let plan = w2.plan(
        &src.url,
        &dst2.url,
        &format!(
            "[load]\nchunk_rows = 200\npush_filters = false\n[tables.orders]\nwhere = \"{filter}\"\n"
        ),
    );
    let (out, sm) = run(&w2, &plan);
    assert_success(&out);
    assert_eq!(pg_ids(&dst2, "orders").await, expected);
    let t = &sm["tables"][0];
    assert_eq!(t["rows_filtered"], 1000 - expected.len());
    assert!(t.get("filter_pushed").is_none(), "{t:#}");
}

#[tokio::test]
async fn mariadb_collations_and_rewritten_values_do_not_hide_rows() {
    let (src, dst) = (MysqlTestDb::create().await, PgTestDb::create().await);
    let mut c = src.conn().await;
    // utf8mb4_general_ci: 'PAID' = 'paid' = 'paid ' there; bytewise all three differ.
    c.query_drop(
        "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
         CREATE TABLE orders (id int PRIMARY KEY, status varchar(40) COLLATE utf8mb4_general_ci,
           paid_on date NULL, amount decimal(12,2));
         INSERT INTO orders VALUES
           (1, 'paid', '2024-05-01', 10.00), (2, 'PAID', '2024-05-02', 20.00),
           (3, 'paid ', '2024-05-03', 30.00), (4, 'open', '0000-00-00', 40.00),
           (5, 'open', NULL, 50.00), (6, 'x''; DROP TABLE orders; --', '2024-05-06', 60.00);",
    )
    .await
    .unwrap();
    drop(c);
    let w = Workdir::new();
    // Zero dates load as NULL: `paid_on IS NULL` must see them as the engine does, so that
    // column stays in the engine; the text and decimal conditions go to MariaDB.
    let plan = w.plan(
        &src.url,
        &dst.url,
        r#"[policies]
zero_date = "null"
[tables.orders]
where = "status <> 'paid' AND amount < 65 AND (paid_on IS NULL OR status = 'PAID' OR status = 'x''; DROP TABLE orders; --')"
"#,
    );
    let (out, sm) = run(&w, &plan);
    assert_success(&out);
    assert_eq!(pg_ids(&dst, "orders").await, vec![2, 4, 5, 6], "{sm:#}");
    let t = &sm["tables"][0];
    assert_eq!(
        (&t["source_rows"], &t["rows_filtered"]),
        (&6.into(), &2.into())
    );
    let pushed = t["filter_pushed"].as_str().expect("a pushed filter");
    assert!(pushed.contains("AS BINARY) <> X'70616964'"), "{pushed}");
    assert!(!pushed.contains("paid_on"), "{pushed}");
    // The hostile literal travelled as hex; the source table is intact.
    let mut c = src.conn().await;
    let n: Option<u64> = c.query_first("SELECT COUNT(*) FROM orders").await.unwrap();
    assert_eq!(n, Some(6));
}

#[tokio::test]
async fn sqlite_values_of_another_storage_class_still_reach_the_engine() {
    let (src, dst) = (SqliteTestDb::create(), SqliteTestDb::create());
    let conn = rusqlite::Connection::open(&src.path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT);
         INSERT INTO t VALUES (1, 3, 'a'), (2, 10, 'b'), (3, 4, 'x'' OR 1=1 --');",
    )
    .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[tables.t]\nwhere = \"n < 5 AND s <> 'x'' OR 1=1 --'\"\n",
    );
    let (out, sm) = run(&w, &plan);
    assert_success(&out);
    assert_eq!(sm["tables"][0]["rows_written"], 1);
    assert_eq!(sm["tables"][0]["rows_filtered_at_source"], 2);
    let got: Vec<i64> = rusqlite::Connection::open(&dst.path)
        .unwrap()
        .prepare("SELECT id FROM t")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, vec![1]);

    // Text in an INTEGER column compares greater than any number in SQLite, so `n < 5` alone
    // would drop it unseen; the pushed condition keeps it for the engine, which cannot read it
    // as an integer and says so.
    conn.execute_batch("INSERT INTO t VALUES (4, 'four', 'c');")
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "[tables.t]\nwhere = \"n < 5\"\n");
    let (out, _) = run(&w, &plan);
    assert!(
        !out.status.success(),
        "a row the engine cannot read must not vanish"
    );
    assert!(
        stderr(&out).contains("id 4: `four` is not a valid integer"),
        "{}",
        stderr(&out)
    );
}
