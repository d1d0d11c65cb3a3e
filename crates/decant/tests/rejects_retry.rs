//! `decant rejects JOB --retry PLAN` against the real servers: rows that pass the fixed plan
//! load exactly once (also after a retry interrupted before or after its target commit), rows
//! that still fail stay quarantined with their new reason, masked rows are refused.

mod common;
use common::*;

fn rejects_jsonl(w: &Workdir) -> Vec<serde_json::Value> {
    let out = w.decant(&["rejects", "test", "--format", "jsonl"]);
    assert_success(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_location<'a>(rejects: &'a [serde_json::Value], loc: &str) -> &'a serde_json::Value {
    rejects
        .iter()
        .find(|r| r["location"] == loc)
        .unwrap_or_else(|| panic!("no reject at {loc}: {rejects:?}"))
}

async fn ids(db: &PgTestDb, table: &str) -> Vec<i32> {
    db.client()
        .await
        .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const FIRST_RULES: &str = r#"[load]
chunk_rows = 100
parallelism = 2
max_rejects = 10
[[tables.orders.rules]]
name = "email present"
kind = "not_null"
column = "email"
[[tables.orders.rules]]
name = "qty positive"
kind = "range"
column = "qty"
min = 1
"#;

/// The fixed plan: NULL emails get a default, zero quantities pass, id 40 is filtered out.
const FIXED_RULES: &str = r#"[load]
chunk_rows = 100
parallelism = 2
max_rejects = 10
[tables.orders]
where = "id <> 40"
[tables.orders.columns.email]
expr = "CASE WHEN email IS NULL THEN 'unknown@x.org' ELSE email END"
[[tables.orders.rules]]
name = "email present"
kind = "not_null"
column = "email"
[[tables.orders.rules]]
name = "qty not negative"
kind = "range"
column = "qty"
min = 0
"#;

fn sqlite(w: &Workdir, sql: &str) {
    let c = rusqlite::Connection::open(w.state()).unwrap();
    c.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn retry_loads_rows_that_now_pass_exactly_once_and_keeps_the_rest_with_new_reasons() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, email text, qty int, placed date);
             INSERT INTO orders SELECT g, 'u' || g || '@x.org', 2, DATE '2024-01-01' + g FROM generate_series(1, 300) g;
             UPDATE orders SET email = NULL WHERE id = 10;
             UPDATE orders SET qty = 0 WHERE id IN (20, 40);
             UPDATE orders SET qty = -5 WHERE id = 30;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, FIRST_RULES);
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    assert_eq!(ids(&dst, "orders").await.len(), 296);

    // Retrying with the same plan loads nothing: every row still fails.
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("public.orders: 0 loaded, 4 still rejected, 0 filtered out, 0 not retried"),
        "{text}"
    );
    assert_eq!(ids(&dst, "orders").await.len(), 296);

    let plan = w.plan(&src.url, &dst.url, FIXED_RULES);
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "id 30 stays: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("public.orders: 2 loaded, 1 still rejected, 1 filtered out, 0 not retried"),
        "{text}"
    );
    let loaded = ids(&dst, "orders").await;
    assert_eq!(loaded.len(), 298);
    assert!(loaded.contains(&10) && loaded.contains(&20) && !loaded.contains(&30));
    let row = dst
        .client()
        .await
        .query_one(
            "SELECT email, qty, placed::text FROM orders WHERE id = 10",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "unknown@x.org", "the new expr ran");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(
        row.get::<_, String>(2),
        "2024-01-11",
        "a date survives the store"
    );
    let rejects = rejects_jsonl(&w);
    assert_eq!(by_location(&rejects, "id=10")["status"], "loaded");
    assert_eq!(by_location(&rejects, "id=20")["status"], "loaded");
    assert_eq!(by_location(&rejects, "id=40")["status"], "filtered");
    let r30 = by_location(&rejects, "id=30");
    assert_eq!(r30["status"], "quarantined");
    assert_eq!(r30["rule"], "range(qty not negative)");
    assert_eq!(r30["reason"], "qty is not at least 0");

    // Again: nothing more loads.
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 loaded, 1 still rejected"));
    assert_eq!(ids(&dst, "orders").await.len(), 298);

    // A retry killed after its target commit, before the store heard of it: the marker is
    // there, so the next retry settles the record without loading it again.
    sqlite(
        &w,
        "UPDATE error_logs SET status = 'retrying' WHERE location = 'id=10'",
    );
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 loaded") && text.contains("(1 by an interrupted earlier retry)"),
        "{text}"
    );
    assert_eq!(ids(&dst, "orders").await.len(), 298);
    // A retry killed before its commit: no marker, no row; the next retry loads it once.
    dst.client()
        .await
        .batch_execute("DELETE FROM orders WHERE id = 20")
        .await
        .unwrap();
    sqlite(
        &w,
        "UPDATE error_logs SET status = 'retrying', retry_chunk = 'retry-never-committed' WHERE location = 'id=20'",
    );
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("public.orders: 1 loaded, 1 still rejected"),
        "{text}"
    );
    let loaded = ids(&dst, "orders").await;
    assert_eq!(loaded.len(), 298);
    assert_eq!(loaded.iter().filter(|i| **i == 20).count(), 1);
    assert_eq!(by_location(&rejects_jsonl(&w), "id=20")["status"], "loaded");
}

#[tokio::test]
async fn retry_refuses_rows_stored_with_masked_columns_and_unfinished_jobs() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE people (id int PRIMARY KEY, ssn text, age int);
             INSERT INTO people VALUES (1, '111-22-3333', 30), (2, '444-55-6666', -1);",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let rules = r#"[load]
max_rejects = 5
[tables.people.columns.ssn]
mask = { method = "partial", keep = 4 }
[[tables.people.rules]]
name = "age"
kind = "range"
column = "age"
min = 0
"#;
    let plan = w.plan(&src.url, &dst.url, rules);
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let fixed = rules.replace("min = 0", "min = -10");
    let plan = w.plan(&src.url, &dst.url, &fixed);
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 loaded, 0 still rejected, 0 filtered out, 1 not retried")
            && text.contains("masked column(s) ssn"),
        "{text}"
    );
    assert_eq!(ids(&dst, "people").await, vec![1]);
    // The stored input holds no raw value of the masked column.
    let c = rusqlite::Connection::open(w.state()).unwrap();
    let input: String = c
        .query_row(
            "SELECT input_record FROM error_logs WHERE kind = 'reject'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!input.contains("444"), "{input}");
    // A job that did not finish is resumed by `decant run`, not retried.
    sqlite(&w, "UPDATE migration_jobs SET state = 'failed'");
    let out = w.decant(&["rejects", "test", "--retry", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("only a job that finished"),
        "{}",
        stderr(&out)
    );
}
