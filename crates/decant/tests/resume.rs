//! Exactly once: kill `decant run` with SIGKILL mid-load, run it again, and every source row is in
//! the target once — for a keyed table and for a table without a key.

mod common;
use std::time::{Duration, Instant};

use common::*;

async fn source_with_rows(src: &PgTestDb) {
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE keyed (id bigint PRIMARY KEY, v text, n numeric(12,2));
             INSERT INTO keyed SELECT g, md5(g::text), g / 100.0 FROM generate_series(1, 600000) g;
             CREATE TABLE keyless (a int, b text);
             INSERT INTO keyless SELECT g % 1000, md5((g % 5000)::text) FROM generate_series(1, 300000) g;
             ANALYZE;",
        )
        .await
        .unwrap();
}

/// Starts `decant run` and SIGKILLs it once at least `min_chunks` chunks are committed.
/// Returns how many were committed at the kill.
async fn run_and_kill(w: &Workdir, plan: &str, dst: &PgTestDb, min_chunks: i64) -> i64 {
    let mut child = w
        .command(&["run", "-q", plan])
        .spawn()
        .expect("spawn decant");
    let d = dst.client().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "decant ended ({status}) before it could be killed: make the test tables larger"
            );
        }
        let n = d
            .query_one("SELECT count(*) FROM _decant_chunks", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if n >= min_chunks {
            child.kill().expect("SIGKILL decant");
            child.wait().unwrap();
            // Chunks may have committed between the count and the kill (or a COMMIT sent just
            // before it may still be finishing on the server): count again, a moment later.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return d
                .query_one("SELECT count(*) FROM _decant_chunks", &[])
                .await
                .unwrap()
                .get::<_, i64>(0);
        }
        assert!(Instant::now() < deadline, "no chunk committed in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sigkill_mid_run_then_rerun_loads_every_row_exactly_once() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    source_with_rows(&src).await;
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 20000\nparallelism = 2\n",
    );
    let plan = plan.to_str().unwrap();

    let at_kill = run_and_kill(&w, plan, &dst, 3).await;
    let total_chunks = 30 + 1; // 600k keyed rows in 20k chunks, plus at least one keyless chunk
    assert!(at_kill < total_chunks, "killed while work remained");

    let summary = w.path().join("summary.json");
    let out = w.decant(&[
        "run",
        "-q",
        plan,
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert_success(&out);
    let (s, d) = (src.client().await, dst.client().await);
    assert_eq!(
        pg_digest(&s, "keyed", "id").await,
        pg_digest(&d, "keyed", "id").await
    );
    assert_eq!(
        pg_digest(&s, "keyless", "a, b").await,
        pg_digest(&d, "keyless", "a, b").await
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(json["resumed"], true);
    let resumed: u64 = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["chunks_resumed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        resumed as i64, at_kill,
        "the rerun kept exactly the chunks committed before the kill"
    );
}

#[tokio::test]
async fn a_changed_plan_refuses_to_resume_until_restart() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    source_with_rows(&src).await;
    let w = Workdir::new();
    let plan_path = w.plan(&src.url, &dst.url, "");
    let base = std::fs::read_to_string(&plan_path).unwrap();
    std::fs::write(
        &plan_path,
        format!("{base}[load]\nchunk_rows = 20000\nparallelism = 1\n"),
    )
    .unwrap();
    let plan = plan_path.to_str().unwrap();
    run_and_kill(&w, plan, &dst, 2).await;

    std::fs::write(
        &plan_path,
        format!("{base}[load]\nchunk_rows = 50000\nparallelism = 1\n"),
    )
    .unwrap();
    let out = w.decant(&["run", "-q", plan]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("plan changed") && err.contains("`load`") && err.contains("--restart"),
        "{err}"
    );

    assert_success(&w.decant(&["run", "-q", "--restart", plan]));
    let (s, d) = (src.client().await, dst.client().await);
    assert_eq!(
        pg_digest(&s, "keyed", "id").await,
        pg_digest(&d, "keyed", "id").await
    );
    assert_eq!(
        pg_digest(&s, "keyless", "a, b").await,
        pg_digest(&d, "keyless", "a, b").await
    );
}
