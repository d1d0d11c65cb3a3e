//! Rollback per load strategy, through the CLI against the real servers: a digest of the
//! target before the job, the job changes it, `decant rollback` gives the same digest back.
//! Create/drop, append, swap (the default for a table that exists) and upsert; swap rollback
//! after `decant finalize` is refused; an upsert without a key is a plan error.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

/// Runs the plan to success and returns its job id.
fn run_job(w: &Workdir, plan: &std::path::Path) -> String {
    let summary = w.path().join("summary.json");
    assert_success(&w.decant(&[
        "run",
        "-q",
        "--summary-json",
        summary.to_str().unwrap(),
        plan.to_str().unwrap(),
    ]));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    s["job_id"].as_str().unwrap().to_string()
}

/// The tables of the `public` schema, sorted (the marker table aside).
async fn pg_tables(c: &tokio_postgres::Client) -> Vec<String> {
    c.query(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_decant_chunks' ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn pg_source(rows: i64) -> PgTestDb {
    let src = PgTestDb::create().await;
    src.client()
        .await
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2));
             INSERT INTO t SELECT g, 'src ' || g, g / 10.0 FROM generate_series(1, {rows}) g;
             ANALYZE;"
        ))
        .await
        .unwrap();
    src
}

#[tokio::test]
async fn pg_swap_replaces_the_table_and_rollback_swaps_it_back() {
    let src = pg_source(5000).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    // The live table: keys the source also has, with other values, and keys it has not.
    d.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO t SELECT g, 'live ' || g, g FROM generate_series(4001, 6000) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&d, "t", "id").await;
    let w = Workdir::new();
    // No if_exists: swap is the default for a table that exists; checksum validates the
    // shadow before the swap.
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 1000\n[validate]\nmode = \"checksum\"\n",
    );
    let job = run_job(&w, &plan);
    assert_eq!(
        pg_digest(&d, "t", "id").await,
        pg_digest(&src.client().await, "t", "id").await,
        "after the swap the live table holds the source's rows"
    );
    let tables = pg_tables(&d).await;
    assert_eq!(tables.len(), 2, "the live table and its backup: {tables:?}");
    assert!(tables[1].starts_with("t__decant_old_"), "{tables:?}");

    let out = w.decant(&["rollback", &job]);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("swapped back"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        pg_digest(&d, "t", "id").await,
        before,
        "rollback restores the old table"
    );
    assert_eq!(
        pg_tables(&d).await,
        vec!["t".to_string()],
        "the loaded table is dropped"
    );
}

#[tokio::test]
async fn pg_swap_after_finalize_cannot_be_rolled_back() {
    let src = pg_source(100).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    d.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2)); INSERT INTO t VALUES (1, 'old', 1);")
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let job = run_job(&w, &plan);
    let out = w.decant(&["finalize", &job]);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("t__decant_old_"),
        "finalize names the backup it dropped: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        pg_tables(&d).await,
        vec!["t".to_string()],
        "the backup is dropped"
    );
    let out = w.decant(&["rollback", &job]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was finalized") && stderr(&out).contains("cannot be rolled back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pg_digest(&d, "t", "id").await,
        pg_digest(&src.client().await, "t", "id").await,
        "a refused rollback touches nothing"
    );
    let again = w.decant(&["finalize", &job]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already finalized"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test]
async fn pg_swap_refuses_a_table_a_view_reads() {
    let src = pg_source(10).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    d.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2)); CREATE VIEW tv AS SELECT id FROM t;",
    )
    .await
    .unwrap();
    let w = Workdir::new();
    let out = w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot be swapped") && err.contains("view public.tv"),
        "{err}"
    );
    assert_eq!(
        pg_tables(&d).await,
        vec!["t".to_string()],
        "nothing was created"
    );
    // Another table's foreign key would follow the old table too.
    d.batch_execute(
        "DROP VIEW tv; CREATE TABLE child (id int PRIMARY KEY, t_id bigint REFERENCES t (id));",
    )
    .await
    .unwrap();
    let out = w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot be swapped") && err.contains("of public.child"),
        "{err}"
    );
}

#[tokio::test]
async fn pg_upsert_rollback_restores_pre_images_and_deletes_inserted_rows() {
    let src = pg_source(3000).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    d.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO t SELECT g, 'live ' || g, NULL FROM generate_series(2501, 3500) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&d, "t", "id").await;
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nif_exists = \"upsert\"\nchunk_rows = 700\n",
    );
    let job = run_job(&w, &plan);
    let (rows, _) = pg_digest(&d, "t", "id").await;
    assert_eq!(rows, 3500, "2500 inserted, 500 updated, 500 untouched");
    let v: String = d
        .query_one("SELECT v FROM t WHERE id = 2600", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "src 2600", "existing keys are updated");
    let side: i64 = d
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 't__decant_pre_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(side, 1, "pre-images live in one side table");

    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(
        pg_digest(&d, "t", "id").await,
        before,
        "pre-images restored, inserts deleted"
    );
    assert_eq!(
        pg_tables(&d).await,
        vec!["t".to_string()],
        "the side table is dropped"
    );
}

#[tokio::test]
async fn pg_create_and_append_roll_back_to_the_digest_before() {
    let src = pg_source(2000).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    let w = Workdir::new();
    // Created by the job: rollback drops it, the schema is as before.
    let job = run_job(&w, &w.plan(&src.url, &dst.url, ""));
    assert_eq!(pg_tables(&d).await, vec!["t".to_string()]);
    assert_success(&w.decant(&["rollback", &job]));
    assert!(pg_tables(&d).await.is_empty());
    // Append into a table that existed.
    d.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO t SELECT g, 'mine', g FROM generate_series(5001, 5100) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&d, "t", "id").await;
    let job = run_job(
        &w,
        &w.plan(&src.url, &dst.url, "[load]\nif_exists = \"append\"\n"),
    );
    assert_eq!(pg_digest(&d, "t", "id").await.0, 2100);
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(pg_digest(&d, "t", "id").await, before);
}

#[tokio::test]
async fn upsert_without_a_key_is_a_plan_error() {
    let src = PgTestDb::create().await;
    src.client()
        .await
        .batch_execute("CREATE TABLE nokey (a int, b text); INSERT INTO nokey VALUES (1, 'x');")
        .await
        .unwrap();
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    d.batch_execute("CREATE TABLE nokey (a int, b text)")
        .await
        .unwrap();
    let w = Workdir::new();
    let out = w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "[load]\nif_exists = \"upsert\"\n")
            .to_str()
            .unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("needs a key") && err.contains("key = ["),
        "{err}"
    );
    // A declared key that names no column is refused too.
    let out = w.decant(&[
        "run",
        "-q",
        w.plan(
            &src.url,
            &dst.url,
            "[load]\nif_exists = \"upsert\"\n[tables.nokey]\nkey = [\"zz\"]\n",
        )
        .to_str()
        .unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`zz`"), "{}", stderr(&out));
}

async fn mysql_exec(db: &MysqlTestDb, sql: &str) {
    let mut c = db.conn().await;
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    c.disconnect().await.unwrap();
}

async fn mysql_tables(db: &MysqlTestDb) -> Vec<String> {
    let mut c = db.conn().await;
    let t: Vec<String> = c
        .query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME <> '_decant_chunks' ORDER BY 1",
        )
        .await
        .unwrap();
    c.disconnect().await.unwrap();
    t
}

const MYSQL_T: &str =
    "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(40), n decimal(12,2)) ENGINE=InnoDB";

#[tokio::test]
async fn mysql_swap_and_upsert_roll_back_to_the_digest_before() {
    let (src, dst) = (MysqlTestDb::create().await, MysqlTestDb::create().await);
    mysql_exec(
        &src,
        &format!(
            "SET SESSION max_recursive_iterations = 100000; {MYSQL_T}; INSERT INTO t WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000) \
             SELECT i, CONCAT('src ', i), i / 10 FROM g;"
        ),
    )
    .await;
    mysql_exec(
        &dst,
        &format!(
            "SET SESSION max_recursive_iterations = 100000; {MYSQL_T}; INSERT INTO t WITH RECURSIVE g(i) AS (SELECT 2001 UNION ALL SELECT i + 1 FROM g WHERE i < 4000) \
             SELECT i, CONCAT('live ', i), NULL FROM g;"
        ),
    )
    .await;
    let mut c = dst.conn().await;
    let before = mysql_digest(&mut c, "t", "id").await;
    let w = Workdir::new();

    // Swap (the default): one RENAME TABLE in, one back.
    let job = run_job(
        &w,
        &w.plan(&src.url, &dst.url, "[load]\nchunk_rows = 1000\n"),
    );
    let mut s = src.conn().await;
    assert_eq!(
        mysql_digest(&mut c, "t", "id").await,
        mysql_digest(&mut s, "t", "id").await
    );
    assert_eq!(mysql_tables(&dst).await.len(), 2, "live and backup");
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(
        mysql_digest(&mut c, "t", "id").await,
        before,
        "swap rolled back"
    );
    assert_eq!(mysql_tables(&dst).await, vec!["t".to_string()]);

    // Upsert: ON DUPLICATE KEY UPDATE with pre-images.
    let job = run_job(
        &w,
        &w.plan(
            &src.url,
            &dst.url,
            "[load]\nif_exists = \"upsert\"\nchunk_rows = 700\n",
        ),
    );
    let after = mysql_digest(&mut c, "t", "id").await;
    assert_eq!(after.0, 4000, "2000 inserted, 1000 updated, 1000 untouched");
    assert_ne!(after, before);
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(
        mysql_digest(&mut c, "t", "id").await,
        before,
        "upsert rolled back"
    );
    assert_eq!(
        mysql_tables(&dst).await,
        vec!["t".to_string()],
        "side table dropped"
    );
    // Another table's foreign key would follow the old table: the swap is refused.
    mysql_exec(
        &dst,
        "CREATE TABLE child (id int PRIMARY KEY, t_id bigint, FOREIGN KEY (t_id) REFERENCES t (id)) ENGINE=InnoDB",
    )
    .await;
    let out = w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot be swapped") && err.contains("of child"),
        "{err}"
    );
    c.disconnect().await.unwrap();
    s.disconnect().await.unwrap();
}

/// Every row of a SQLite table as text, in key order.
fn sqlite_rows(path: &std::path::Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id || '|' || coalesce(v, 'NULL') FROM \"{table}\" ORDER BY id"
        ))
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sqlite_tables(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> '_decant_chunks' ORDER BY 1")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn sqlite_swap_and_upsert_roll_back_to_the_rows_before() {
    let (src, dst) = (SqliteTestDb::create(), SqliteTestDb::create());
    let s = rusqlite::Connection::open(&src.path).unwrap();
    s.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 500)
         INSERT INTO t SELECT i, 'src ' || i FROM g;",
    )
    .unwrap();
    let d = rusqlite::Connection::open(&dst.path).unwrap();
    d.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE g(i) AS (SELECT 401 UNION ALL SELECT i + 1 FROM g WHERE i < 600)
         INSERT INTO t SELECT i, 'live ' || i FROM g;",
    )
    .unwrap();
    drop((s, d));
    let before = sqlite_rows(&dst.path, "t");
    let w = Workdir::new();
    let job = run_job(
        &w,
        &w.plan(&src.url, &dst.url, "[load]\nchunk_rows = 100\n"),
    );
    assert_eq!(sqlite_rows(&dst.path, "t"), sqlite_rows(&src.path, "t"));
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(sqlite_rows(&dst.path, "t"), before, "swap rolled back");
    assert_eq!(sqlite_tables(&dst.path), vec!["t".to_string()]);

    let job = run_job(
        &w,
        &w.plan(
            &src.url,
            &dst.url,
            "[load]\nif_exists = \"upsert\"\nchunk_rows = 100\n",
        ),
    );
    let after = sqlite_rows(&dst.path, "t");
    assert_eq!(after.len(), 600);
    assert_eq!(after[449], "450|src 450", "existing keys updated");
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(sqlite_rows(&dst.path, "t"), before, "upsert rolled back");
    assert_eq!(sqlite_tables(&dst.path), vec!["t".to_string()]);

    // A view that reads the table would follow it to its backup name: the swap is refused.
    rusqlite::Connection::open(&dst.path)
        .unwrap()
        .execute_batch("CREATE VIEW tv AS SELECT v FROM t; CREATE VIEW other AS SELECT 1 AS t;")
        .unwrap();
    let out = w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot be swapped") && err.contains("view tv"),
        "{err}"
    );
    assert!(
        !err.contains("view other"),
        "a view that only names a column t is no dependent: {err}"
    );
    assert_eq!(
        sqlite_rows(&dst.path, "t"),
        before,
        "a refused run touches nothing"
    );
}

/// A process that stopped between the swap's commit and the control store's record of it:
/// the record says `loading` while the target is swapped. Rollback and a resumed run find out
/// from the target.
#[tokio::test]
async fn a_swap_whose_record_was_lost_is_found_from_the_target() {
    let src = pg_source(300).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    d.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, n numeric(12,2)); INSERT INTO t VALUES (7, 'old', 7);",
    )
    .await
    .unwrap();
    let before = pg_digest(&d, "t", "id").await;
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let job = run_job(&w, &plan);
    let forget = |job_state: &str| {
        let store = rusqlite::Connection::open(w.state()).unwrap();
        store
            .execute("UPDATE undo_tables SET state = 'loading'", [])
            .unwrap();
        store
            .execute(
                "UPDATE migration_jobs SET state = ?1 WHERE id = ?2",
                [job_state, job.as_str()],
            )
            .unwrap();
    };

    // The run stopped after the rename: running it again finishes the job, loads nothing.
    forget("running");
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("had swapped its tables in"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pg_digest(&d, "t", "id").await,
        pg_digest(&src.client().await, "t", "id").await
    );

    // Rollback of a swap whose record says loading still swaps back.
    forget("succeeded");
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(pg_digest(&d, "t", "id").await, before);
    assert_eq!(pg_tables(&d).await, vec!["t".to_string()]);
}

/// ON DUPLICATE KEY UPDATE matches on any unique key: an upsert into a MariaDB table with a
/// unique index beside the key is refused at planning, naming the index, and touches nothing;
/// a unique index that contains the key is the same match and loads, and rolls back to the
/// digest before.
#[tokio::test]
async fn mysql_upsert_refuses_a_second_unique_key_and_rolls_back_with_a_safe_one() {
    let (src, dst) = (MysqlTestDb::create().await, MysqlTestDb::create().await);
    let table = "CREATE TABLE u (id bigint PRIMARY KEY, email varchar(40), n int) ENGINE=InnoDB";
    mysql_exec(
        &src,
        &format!(
            "{table}; INSERT INTO u VALUES (1, 'a@x', 10), (2, 'b@x', 20), (3, 'c@x', 30), (4, 'new@x', 40)"
        ),
    )
    .await;
    // Target row 9 holds email 'c@x': source row 3 collides with it on the email only.
    mysql_exec(
        &dst,
        &format!(
            "{table}; ALTER TABLE u ADD UNIQUE KEY uq_email (email); \
             INSERT INTO u VALUES (1, 'a@x', 1), (2, 'b@x', 2), (9, 'c@x', 9)"
        ),
    )
    .await;
    let mut c = dst.conn().await;
    let before = mysql_digest(&mut c, "u", "id").await;
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "[load]\nif_exists = \"upsert\"\n");
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success(), "the upsert is refused");
    let err = stderr(&out);
    assert!(
        err.contains("unique index `uq_email` (`email`)")
            && err.contains("ON DUPLICATE KEY UPDATE")
            && err.contains("if_exists to \"swap\""),
        "{err}"
    );
    assert_eq!(
        mysql_digest(&mut c, "u", "id").await,
        before,
        "row 9 was not overwritten"
    );
    assert_eq!(mysql_tables(&dst).await, vec!["u".to_string()]);

    // A key declared on a column without a unique index would insert its rows again.
    let keyed = w.plan(
        &src.url,
        &dst.url,
        "[load]\nif_exists = \"upsert\"\n[tables.u]\nkey = [\"n\"]\n",
    );
    let out = w.decant(&["run", "-q", keyed.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("add a UNIQUE index on (`n`)"),
        "{}",
        stderr(&out)
    );

    // A unique index that contains the key matches the same rows: the upsert runs.
    mysql_exec(
        &dst,
        "ALTER TABLE u DROP INDEX uq_email, ADD UNIQUE KEY uq_id_email (email, id); \
         UPDATE u SET email = 'old@x' WHERE id = 9",
    )
    .await;
    let before = mysql_digest(&mut c, "u", "id").await;
    let plan = w.plan(&src.url, &dst.url, "[load]\nif_exists = \"upsert\"\n");
    let job = run_job(&w, &plan);
    let rows: Vec<(i64, String, i64)> = c
        .query("SELECT id, email, n FROM u ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "a@x".into(), 10),
            (2, "b@x".into(), 20),
            (3, "c@x".into(), 30),
            (4, "new@x".into(), 40),
            (9, "old@x".into(), 9),
        ]
    );
    assert_success(&w.decant(&["rollback", &job]));
    assert_eq!(
        mysql_digest(&mut c, "u", "id").await,
        before,
        "upsert rolled back"
    );
    assert_eq!(mysql_tables(&dst).await, vec!["u".to_string()]);
    c.disconnect().await.unwrap();
}
