//! A live PostgreSQL source migrates as of one instant: rows changed while the run is under
//! way do not reach the target, and the run's count proof holds.

mod common;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn writes_during_the_run_do_not_leak_into_the_target() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    s.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 400000) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&s, "t", "id").await;
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 20000\nparallelism = 1\n",
    );
    let mut child = w
        .command(&["run", "-q", plan.to_str().unwrap()])
        .spawn()
        .unwrap();

    // Once a chunk is committed the snapshot exists: now change rows in every part of the table.
    let d = dst.client().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = d
            .query_one("SELECT count(*) FROM _decant_chunks", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if n >= 1 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "decant ended before the source could be changed"
        );
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.batch_execute(
        "UPDATE t SET v = 'changed' WHERE id % 1000 = 0;
         DELETE FROM t WHERE id % 997 = 0;
         INSERT INTO t SELECT g, 'new' FROM generate_series(400001, 401000) g;",
    )
    .await
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "decant run failed");
    assert_eq!(
        pg_digest(&d, "t", "id").await,
        before,
        "the target holds the source as of the run's snapshot"
    );
    assert_ne!(
        pg_digest(&s, "t", "id").await,
        before,
        "the source did change during the run"
    );
}
