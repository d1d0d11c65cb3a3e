//! The memory ceiling: with `--max-memory`, a table of 5 MB rows loads with the process's peak
//! RSS under the ceiling plus the documented fixed overhead (docs/running.md).

mod common;
use common::*;

/// Peak RSS of `decant ARGS` in bytes, measured by the kernel through /usr/bin/time.
fn peak_rss(w: &Workdir, args: &[&str]) -> u64 {
    let report = w.path().join("rss.txt");
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_decant"))
        .args(args)
        .env("DECANT_STATE", w.state())
        .current_dir(w.path())
        .output()
        .expect("/usr/bin/time runs (Debian package `time`)");
    assert_success(&out);
    let kb: u64 = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn five_megabyte_rows_stay_under_the_ceiling() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE blobs (id int PRIMARY KEY, body text);
             ALTER TABLE blobs ALTER COLUMN body SET STORAGE EXTERNAL;
             INSERT INTO blobs SELECT g, (SELECT string_agg(md5(random()::text || h), '') FROM generate_series(1, 163840) h)
             FROM generate_series(1, 24) g;
             ANALYZE blobs;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 4\nparallelism = 4\n",
    );
    // A ceiling smaller than one row cannot be kept: the run stops and says so.
    let out = w.decant(&["run", "-q", "--max-memory", "4MiB", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("larger than the memory ceiling of 4 MB"),
        "{}",
        stderr(&out)
    );
    // The same job then resumes under a ceiling the rows fit in.
    let ceiling: u64 = 64 << 20;
    let rss = peak_rss(
        &w,
        &["run", "-q", "--max-memory", "64MiB", plan.to_str().unwrap()],
    );
    // Fixed overhead: the process itself — measured here as the peak of `decant plan` on the
    // same plan, which connects and introspects but moves no rows (about 20 MB for a release
    // build; a debug build with every crate linked is larger) — plus, per chunk in flight, the
    // row being decoded and the row being encoded (2 × 5 MB).
    let process = peak_rss(&w, &["plan", plan.to_str().unwrap()]);
    let overhead = process + 4 * (5 << 20);
    assert!(
        rss < ceiling + overhead,
        "peak RSS {} MB over {} MB (the process alone: {} MB)",
        rss >> 20,
        (ceiling + overhead) >> 20,
        process >> 20
    );
    let (s, d) = (src.client().await, dst.client().await);
    assert_eq!(
        pg_digest(&s, "blobs", "id").await,
        pg_digest(&d, "blobs", "id").await
    );
}
