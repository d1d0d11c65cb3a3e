//! `decant serve` through a real HTTP client: every endpoint, bad requests, 10 concurrent jobs,
//! pause/resume/cancel, restart-and-resume (SIGKILL of the service) and rollback, against the
//! real PostgreSQL on localhost and SQLite files; the endpoint and restart tests run on both
//! control stores (a SQLite file, and a fresh PostgreSQL database).

mod common;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

impl Service {
    fn start(w: &Workdir, max_concurrent: usize) -> Service {
        Service::start_on(w, max_concurrent, None)
    }

    /// `store`: a `postgres://` control store; `None` is the SQLite file of the work dir.
    fn start_on(w: &Workdir, max_concurrent: usize, store: Option<&str>) -> Service {
        Service::start_staged(w, max_concurrent, store, None)
    }

    /// `staging`: the `--staging` root; `None` takes the default.
    fn start_staged(
        w: &Workdir,
        max_concurrent: usize,
        store: Option<&str>,
        staging: Option<&std::path::Path>,
    ) -> Service {
        let max = max_concurrent.to_string();
        let staging = staging.map(|p| p.display().to_string());
        let mut args = vec!["--max-concurrent", &max];
        if let Some(url) = store {
            args.extend(["--store", url]);
        }
        if let Some(dir) = &staging {
            args.extend(["--staging", dir]);
        }
        Service::spawn(w, &args)
    }
}

fn plan(name: &str, source: &str, target: &str, load: Value) -> Value {
    json!({
        "name": name,
        "source": { "url": source },
        "target": { "url": target },
        "load": load,
        "policies": { "scan": "schema" },
    })
}

async fn source_rows(src: &PgTestDb, rows: i64) {
    src.client()
        .await
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12,2));
             INSERT INTO items SELECT g, md5(g::text), g / 100.0 FROM generate_series(1, {rows}) g;
             ANALYZE;"
        ))
        .await
        .unwrap();
}

fn assert_error_shape(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["details"].is_array(), "{body}");
}

#[tokio::test]
async fn every_endpoint_answers_and_bad_requests_get_one_error_shape() {
    every_endpoint(None).await;
}

#[tokio::test]
async fn every_endpoint_on_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    every_endpoint(Some(&store.url)).await;
    let jobs: i64 = store
        .client()
        .await
        .query_one("SELECT count(*) FROM migration_jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1, "the job lives in the PostgreSQL store");
}

async fn every_endpoint(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 5000).await;
    let w = Workdir::new();
    let svc = Service::start_on(&w, 10, store);

    assert_eq!(svc.get("/healthz").await, (200, json!({"status": "ok"})));
    let (code, doc) = svc.get("/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    for path in [
        "/migration/initialize",
        "/migration/run",
        "/migration/extract",
        "/migration/transform",
        "/migration/load",
        "/migration/validate",
        "/migration/pause",
        "/migration/resume",
        "/migration/cancel",
        "/migration/rollback",
        "/migration/finalize",
        "/migration/status",
        "/migration/status/stream",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/chunks",
        "/api/v1/jobs/{id}/errors",
        "/api/v1/jobs/{id}/progress",
        "/api/v1/jobs/{id}/results",
        "/healthz",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }

    // Bad requests: each a 4xx in the one error shape, saying what to fix.
    let (code, body) = svc.post_raw("/migration/initialize", "{not json").await;
    assert_eq!(code, 400);
    assert_error_shape(&body, "invalid_plan");
    let (code, body) = svc
        .post(
            "/migration/initialize",
            json!({"nmae": "x", "source": {"url": src.url}}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("nmae"),
        "{body}"
    );
    let bad = plan(
        "bad",
        &src.url,
        &dst.url,
        json!({"chunk_rows": 1000, "if_exists": "append"}),
    );
    let (code, body) = svc.post("/migration/initialize", bad).await;
    assert_eq!(code, 422, "{body}");
    assert_error_shape(&body, "invalid_plan");
    assert!(
        body["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{body}"
    );
    let (code, body) = svc.post("/migration/run", json!({"job_id": "nope"})).await;
    assert_eq!(code, 404);
    assert_error_shape(&body, "not_found");
    let (code, body) = svc.post("/migration/run", json!({"job": "x"})).await;
    assert_eq!(code, 400);
    assert_error_shape(&body, "bad_request");
    let (code, body) = svc.get("/migration/status?job=nope").await;
    assert_eq!(code, 404);
    assert_error_shape(&body, "not_found");
    let (code, body) = svc.get("/no/such/thing").await;
    assert_eq!(code, 404);
    assert_error_shape(&body, "not_found");

    // The happy path, endpoint by endpoint.
    let job = svc
        .initialize(plan("all", &src.url, &dst.url, json!({"chunk_rows": 1000})))
        .await;
    let (code, body) = svc
        .post(
            "/migration/initialize",
            plan("all", &src.url, &dst.url, json!({"chunk_rows": 1000})),
        )
        .await;
    assert_eq!(code, 409, "same name while unfinished: {body}");
    assert_error_shape(&body, "conflict");
    assert_eq!(svc.status(&job).await["state"], "initialized");
    let (code, chunks) = svc.get(&format!("/api/v1/jobs/{job}/chunks")).await;
    assert_eq!(code, 200);
    assert!(chunks.as_array().unwrap().len() >= 5, "{chunks}");
    let (code, body) = svc.post("/migration/resume", json!({"job_id": job})).await;
    assert_eq!(code, 409, "resume of a job that is not paused: {body}");

    let (code, body) = svc.post("/migration/run", json!({"job_id": job})).await;
    assert_eq!(code, 202, "{body}");
    let done = svc.wait_state(&job, "succeeded").await;
    assert_eq!(done["rows_done"], 5000, "{done}");
    assert_eq!(done["phase"], "done");
    let (code, body) = svc.post("/migration/run", json!({"job_id": job})).await;
    assert_eq!(code, 409, "a succeeded job does not run again: {body}");

    let (code, results) = svc.get(&format!("/api/v1/jobs/{job}/results")).await;
    assert_eq!(code, 200);
    assert_eq!(results[0]["rows_written"], 5000, "{results}");
    let (code, progress) = svc.get(&format!("/api/v1/jobs/{job}/progress")).await;
    assert_eq!(code, 200);
    assert_eq!(progress[0]["rows_done"], 5000, "{progress}");
    let (code, errors) = svc.get(&format!("/api/v1/jobs/{job}/errors")).await;
    assert_eq!(code, 200);
    assert_eq!(errors, json!({"errors": [], "rejects": []}));
    let (code, detail) = svc.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(code, 200);
    assert_eq!(detail["summary"]["rows"], 5000, "{detail}");
    assert_eq!(detail["tables"][0]["decision"], "create");
    let (code, jobs) = svc.get("/api/v1/jobs").await;
    assert_eq!(code, 200);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == job.as_str())
    );

    let (code, _) = svc
        .post("/migration/validate", json!({"job_id": job}))
        .await;
    assert_eq!(code, 202);
    let validated = svc
        .wait_for(&job, "validation", |s| s["validation"].is_object())
        .await;
    assert_eq!(validated["validation"]["outcome"], "match", "{validated}");

    // Server-sent events: a status event at once, then one at least every second.
    let r = svc
        .http
        .get(format!("{}/migration/status/stream?job={job}", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = tokio::time::timeout(Duration::from_secs(5), r.text())
        .await
        .expect("the stream of a finished job ends")
        .unwrap();
    assert!(text.contains("event: status"), "{text}");
    assert!(text.contains("\"state\":\"succeeded\""), "{text}");

    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["tables"][0]["action"], "dropped");
    assert_eq!(svc.status(&job).await["state"], "rolled_back");
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 409, "{body}");
    let left: i64 = dst
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'items'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "rollback drops the table the job created");
}

#[tokio::test]
async fn ten_jobs_run_concurrently_under_a_limit_and_the_rest_queue() {
    let src = PgTestDb::create().await;
    source_rows(&src, 20_000).await;
    let w = Workdir::new();
    let svc = Service::start(&w, 4);
    let mut jobs = Vec::new();
    for i in 0..10 {
        let target = format!("sqlite://{}/t{i}.db", w.path().display());
        jobs.push(
            svc.initialize(plan(
                &format!("c{i}"),
                &src.url,
                &target,
                json!({"chunk_rows": 2000, "parallelism": 2}),
            ))
            .await,
        );
    }
    for j in &jobs {
        let (code, body) = svc.post("/migration/run", json!({"job_id": j})).await;
        assert_eq!(code, 202, "{body}");
    }
    let mut saw_queued = false;
    let mut max_running = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        // One request, one snapshot of every job's live state.
        let (_, all) = svc.get("/api/v1/jobs").await;
        let states: Vec<String> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["state"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(states.len(), 10);
        assert!(!states.iter().any(|s| s == "failed"), "{states:?}");
        saw_queued |= states.iter().any(|s| s == "queued");
        max_running = max_running.max(states.iter().filter(|s| *s == "running").count());
        if states.iter().all(|s| s == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "not all done: {states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_queued, "with a limit of 4, some of 10 jobs wait");
    assert!(max_running <= 4, "{max_running} jobs ran at once");
    for i in 0..10 {
        let c = rusqlite::Connection::open(w.path().join(format!("t{i}.db"))).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 20_000, "target {i}");
    }
}

#[tokio::test]
async fn pause_holds_new_chunks_resume_finishes_cancel_stops_and_run_resumes() {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 200_000).await;
    let w = Workdir::new();
    let svc = Service::start(&w, 10);
    let load = json!({"chunk_rows": 2000, "parallelism": 1});
    let job = svc
        .initialize(plan("ctl", &src.url, &dst.url, load.clone()))
        .await;
    svc.post("/migration/run", json!({"job_id": job})).await;
    svc.wait_for(&job, "first chunk", |s| {
        s["chunks_done"].as_u64() >= Some(1)
    })
    .await;
    let (code, body) = svc.post("/migration/pause", json!({"job_id": job})).await;
    assert_eq!(
        (code, body["state"].as_str()),
        (200, Some("paused")),
        "{body}"
    );
    // The chunk in flight commits; then nothing moves.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = svc.status(&job).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let still = svc.status(&job).await;
    assert_eq!(still["state"], "paused");
    assert_eq!(
        held["chunks_done"], still["chunks_done"],
        "no chunk starts while paused"
    );
    assert!(still["chunks_done"].as_u64().unwrap() < 100, "{still}");
    // While the job is held, the event stream keeps pushing: at least every second.
    let mut stream = svc
        .http
        .get(format!("{}/migration/status/stream?job={job}", svc.base))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let mut text = String::new();
    while started.elapsed() < Duration::from_millis(2200) {
        match tokio::time::timeout(Duration::from_millis(1100), stream.chunk()).await {
            Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("no event within a second: {other:?}"),
        }
    }
    assert!(
        text.matches("event: status").count() >= 3,
        "events in 2.2 s: {text}"
    );
    assert!(text.contains("\"state\":\"paused\""), "{text}");
    drop(stream);
    let (code, _) = svc.post("/migration/resume", json!({"job_id": job})).await;
    assert_eq!(code, 200);
    let done = svc.wait_state(&job, "succeeded").await;
    assert_eq!(done["rows_done"], 200_000);
    let d = dst.client().await;
    assert_eq!(
        pg_digest(&d, "items", "id").await,
        pg_digest(&src.client().await, "items", "id").await
    );

    // Cancel: the chunks that committed stay, whole; running the job again resumes it.
    let dst2 = PgTestDb::create().await;
    let job = svc
        .initialize(plan("ctl2", &src.url, &dst2.url, load))
        .await;
    svc.post("/migration/run", json!({"job_id": job})).await;
    svc.wait_for(&job, "first chunk", |s| {
        s["chunks_done"].as_u64() >= Some(2)
    })
    .await;
    let (code, _) = svc.post("/migration/cancel", json!({"job_id": job})).await;
    assert_eq!(code, 200);
    let cancelled = svc.wait_state(&job, "cancelled").await;
    assert!(
        cancelled["chunks_done"].as_u64().unwrap() < 100,
        "{cancelled}"
    );
    let d2 = dst2.client().await;
    let (rows, marked): (i64, i64) = {
        let r = d2
            .query_one(
                "SELECT (SELECT count(*) FROM items), (SELECT coalesce(sum(row_count), 0)::bigint FROM _decant_chunks)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(rows, marked, "only whole chunks are in the target");
    assert!(rows < 200_000);
    let (code, body) = svc.post("/migration/run", json!({"job_id": job})).await;
    assert_eq!(code, 202, "{body}");
    svc.wait_state(&job, "succeeded").await;
    assert_eq!(
        pg_digest(&d2, "items", "id").await,
        pg_digest(&src.client().await, "items", "id").await
    );
}

#[tokio::test]
async fn a_killed_service_resumes_its_running_job_exactly_once_at_restart() {
    killed_and_restarted(None).await;
}

#[tokio::test]
async fn a_killed_service_resumes_from_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    killed_and_restarted(Some(&store.url)).await;
}

async fn killed_and_restarted(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 300_000).await;
    let w = Workdir::new();
    let job = {
        let svc = Service::start_on(&w, 10, store);
        let job = svc
            .initialize(plan(
                "restart",
                &src.url,
                &dst.url,
                json!({"chunk_rows": 5000, "parallelism": 2}),
            ))
            .await;
        svc.post("/migration/run", json!({"job_id": job})).await;
        svc.wait_for(&job, "some chunks", |s| {
            s["chunks_done"].as_u64() >= Some(3)
        })
        .await;
        job
        // dropped: SIGKILL mid-load
    };
    let d = dst.client().await;
    let before: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        before < 60,
        "the kill came before the end ({before} chunks)"
    );
    let svc = Service::start_on(&w, 10, store);
    let done = svc.wait_state(&job, "succeeded").await;
    assert_eq!(done["rows_done"], 300_000, "{done}");
    assert_eq!(
        pg_digest(&d, "items", "id").await,
        pg_digest(&src.client().await, "items", "id").await,
        "every row once"
    );
}

#[tokio::test]
async fn rollback_of_an_append_load_gives_back_the_target_as_it_was() {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12,2));
             INSERT INTO items SELECT g, md5(g::text), g / 100.0 FROM generate_series(1001, 21000) g;
             ANALYZE;",
        )
        .await
        .unwrap();
    let d = dst.client().await;
    // Rows of its own, with keys below, between (none) and above the source's range.
    d.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO items SELECT g, 'mine ' || g, g FROM generate_series(1, 1000) g;
         INSERT INTO items SELECT g, 'mine ' || g, g FROM generate_series(50001, 50500) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&d, "items", "id").await;
    let w = Workdir::new();
    let svc = Service::start(&w, 10);
    let job = svc
        .initialize(plan(
            "append",
            &src.url,
            &dst.url,
            json!({"chunk_rows": 3000, "if_exists": "append"}),
        ))
        .await;
    svc.post("/migration/run", json!({"job_id": job})).await;
    svc.wait_state(&job, "succeeded").await;
    assert_eq!(pg_digest(&d, "items", "id").await.0, 1500 + 20_000);
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["tables"][0]["rows_deleted"], 20_000, "{body}");
    assert_eq!(
        pg_digest(&d, "items", "id").await,
        before,
        "the digest after rollback is the digest before the job"
    );

    // Truncate loads destroyed what was there: refused without force, and the CLI agrees.
    let job = svc
        .initialize(plan(
            "trunc",
            &src.url,
            &dst.url,
            json!({"chunk_rows": 3000, "if_exists": "truncate"}),
        ))
        .await;
    svc.post("/migration/run", json!({"job_id": job})).await;
    svc.wait_state(&job, "succeeded").await;
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("cannot be restored")
    );
    drop(svc);
    let out = w.decant(&["rollback", &job]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = w.decant(&["rollback", "--force", &job]);
    assert_success(&out);
    assert_eq!(
        pg_digest(&d, "items", "id").await.0,
        0,
        "forced: the job's rows are gone"
    );
}

#[tokio::test]
async fn a_swap_rolls_back_over_http_until_it_is_finalized() {
    let src = PgTestDb::create().await;
    source_rows(&src, 4000).await;
    let dst = PgTestDb::create().await;
    let d = dst.client().await;
    d.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO items SELECT g, 'old ' || g, g FROM generate_series(3001, 6000) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&d, "items", "id").await;
    let w = Workdir::new();
    let svc = Service::start(&w, 10);
    // No if_exists: the default swap.
    let job = svc
        .initialize(plan(
            "swap",
            &src.url,
            &dst.url,
            json!({"chunk_rows": 1000}),
        ))
        .await;
    let (code, body) = svc
        .post("/migration/finalize", json!({"job_id": job}))
        .await;
    assert_eq!(code, 409, "only a succeeded job can be finalized: {body}");
    svc.post("/migration/run", json!({"job_id": job})).await;
    svc.wait_state(&job, "succeeded").await;
    assert_eq!(
        pg_digest(&d, "items", "id").await,
        pg_digest(&src.client().await, "items", "id").await
    );
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["tables"][0]["table"], "public.items", "{body}");
    assert_eq!(body["tables"][0]["decision"], "swap", "{body}");
    assert_eq!(pg_digest(&d, "items", "id").await, before, "swapped back");

    // Again, then finalize: the backup is dropped and rollback is refused.
    let job = svc
        .initialize(plan(
            "swap2",
            &src.url,
            &dst.url,
            json!({"chunk_rows": 1000}),
        ))
        .await;
    svc.post("/migration/run", json!({"job_id": job})).await;
    svc.wait_state(&job, "succeeded").await;
    let (code, body) = svc
        .post("/migration/finalize", json!({"job_id": job}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dropped"].as_array().map(Vec::len), Some(1), "{body}");
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 422, "{body}");
    assert_error_shape(&body, "invalid_plan");
    assert!(
        body["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("was finalized"),
        "{body}"
    );
    let (code, body) = svc
        .post("/migration/finalize", json!({"job_id": job}))
        .await;
    assert_eq!(code, 422, "finalized twice: {body}");
}

#[tokio::test]
async fn listening_beyond_loopback_warns() {
    let w = Workdir::new();
    let mut child = w
        .command(&["serve", "--listen", "0.0.0.0:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn decant serve");
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("beyond loopback")),
        "no warning: {seen:?}"
    );
}

/// A plan with transforms: `v` upper-cased, every tenth row filtered out, rows whose id is a
/// multiple of 7 rejected by a rule.
fn staged_plan(name: &str, source: &str, target: &str, chunk_rows: u64) -> Value {
    json!({
        "name": name,
        "source": { "url": source },
        "target": { "url": target },
        "load": { "chunk_rows": chunk_rows, "max_rejects": 100000 },
        "policies": { "scan": "schema" },
        "tables": { "items": {
            "where": "id % 10 <> 0",
            "columns": { "v": { "expr": "upper(v)" } },
            "rules": [{ "name": "not seven", "kind": "expr", "sql": "id % 7 <> 0" }],
        }},
    })
}

/// The one table folder of a job's staging dir, and its staged chunk files of `stage`.
fn staged_files(root: &std::path::Path, job: &str, stage: &str) -> Vec<std::path::PathBuf> {
    let job_dir = root.join(job);
    let tables: Vec<_> = std::fs::read_dir(&job_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", job_dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(tables.len(), 1, "one table folder: {tables:?}");
    let dir = tables[0].join(stage);
    if !dir.exists() {
        return vec![];
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    files
}

async fn public_tables(db: &PgTestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn reject_count(svc: &Service, job: &str) -> usize {
    let (code, errors) = svc.get(&format!("/api/v1/jobs/{job}/errors")).await;
    assert_eq!(code, 200, "{errors}");
    errors["rejects"].as_array().unwrap().len()
}

#[tokio::test]
async fn staged_phases_extract_transform_and_load_what_run_would() {
    staged_phases(None).await;
}

#[tokio::test]
async fn staged_phases_on_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    staged_phases(Some(&store.url)).await;
}

async fn staged_phases(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    let reference = PgTestDb::create().await;
    source_rows(&src, 5000).await;
    let w = Workdir::new();
    // The SQLite store takes the default root (beside its file), the PostgreSQL one a flag.
    let root = match store {
        None => w.path().join("staging"),
        Some(_) => w.path().join("stage-root"),
    };
    let svc = Service::start_staged(&w, 10, store, store.map(|_| root.as_path()));
    let job = svc
        .initialize(staged_plan("staged", &src.url, &dst.url, 1000))
        .await;
    let (_, chunks) = svc.get(&format!("/api/v1/jobs/{job}/chunks")).await;
    let chunks = chunks.as_array().unwrap().len();
    assert!(chunks >= 5, "{chunks} chunks");

    // Nothing staged yet: transform and load say which phase comes first.
    for verb in ["transform", "load"] {
        let (code, body) = svc
            .post(&format!("/migration/{verb}"), json!({"job_id": job}))
            .await;
        assert_eq!(code, 409, "{verb} before extract: {body}");
        assert_error_shape(&body, "conflict");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/migration/extract"),
            "{body}"
        );
    }

    let (code, body) = svc.post("/migration/extract", json!({"job_id": job})).await;
    assert_eq!(code, 202, "{body}");
    let s = svc
        .wait_for(&job, "extracted", |s| {
            s["state"] == "initialized" && s["step"] == "extracted"
        })
        .await;
    assert_eq!(
        (s["state"].as_str(), s["phase"].as_str()),
        (Some("initialized"), Some("extract")),
        "{s}"
    );
    assert_eq!(s["rows_done"], 5000, "every source row staged: {s}");
    let extracted = staged_files(&root, &job, "extract");
    assert_eq!(extracted.len(), chunks, "one file per chunk: {extracted:?}");
    assert_eq!(
        public_tables(&dst).await,
        0,
        "extract touches nothing on the target"
    );
    // A person can read the staged chunks: they are Parquet.
    let glob = format!(
        "file://{}/*.parquet",
        extracted[0].parent().unwrap().display()
    );
    let out = w.decant(&["inspect", "--json", &glob]);
    assert_success(&out);
    let catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(catalog["tables"][0]["row_estimate"], 5000, "{catalog}");

    let (code, body) = svc.post("/migration/load", json!({"job_id": job})).await;
    assert_eq!(
        code, 409,
        "a plan with transforms loads transformed chunks: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/migration/transform"),
        "{body}"
    );

    let (code, body) = svc
        .post("/migration/transform", json!({"job_id": job}))
        .await;
    assert_eq!(code, 202, "{body}");
    let s = svc
        .wait_for(&job, "transformed", |s| {
            s["state"] == "initialized" && s["step"] == "transformed"
        })
        .await;
    assert_eq!(s["phase"], "transform", "{s}");
    assert_eq!(staged_files(&root, &job, "transform").len(), chunks);
    // The rejects are in the quarantine before anything reaches the target.
    let rejected = reject_count(&svc, &job).await;
    assert!(rejected > 0, "the rule rejected rows");
    assert_eq!(s["rejects"], rejected, "{s}");
    assert_eq!(
        public_tables(&dst).await,
        0,
        "transform touches nothing on the target"
    );

    let (code, body) = svc.post("/migration/load", json!({"job_id": job})).await;
    assert_eq!(code, 202, "{body}");
    let s = svc.wait_state(&job, "succeeded").await;
    assert_eq!(
        (s["phase"].as_str(), s["step"].as_str()),
        (Some("load"), Some("done")),
        "{s}"
    );

    // The same plan as one run, into another database: the staged job arrived at the same rows.
    let one_shot = svc
        .initialize(staged_plan("oneshot", &src.url, &reference.url, 1000))
        .await;
    svc.post("/migration/run", json!({"job_id": one_shot}))
        .await;
    svc.wait_state(&one_shot, "succeeded").await;
    let staged = pg_digest(&dst.client().await, "items", "id").await;
    assert_eq!(
        staged,
        pg_digest(&reference.client().await, "items", "id").await,
        "staged phases load what run loads"
    );
    assert_eq!(staged.0 as usize, 5000 - 500 - rejected);
    assert_eq!(reject_count(&svc, &one_shot).await, rejected);
    let (_, results) = svc.get(&format!("/api/v1/jobs/{job}/results")).await;
    assert_eq!(results[0]["rows_read"], 5000, "{results}");
    assert_eq!(results[0]["rows_written"], staged.0, "{results}");
}

#[tokio::test]
async fn a_killed_service_resumes_a_staged_load_exactly_once() {
    staged_load_restart(None).await;
}

#[tokio::test]
async fn a_killed_service_resumes_a_staged_load_from_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    staged_load_restart(Some(&store.url)).await;
}

/// A plan without transforms: load reads the extracted chunks. The service is killed mid-load
/// and restarted; it resumes the load phase, not a one-shot run.
async fn staged_load_restart(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 300_000).await;
    let w = Workdir::new();
    let root = w.path().join("stage");
    let job = {
        let svc = Service::start_staged(&w, 10, store, Some(&root));
        let job = svc
            .initialize(plan(
                "restage",
                &src.url,
                &dst.url,
                json!({"chunk_rows": 5000, "parallelism": 2}),
            ))
            .await;
        svc.post("/migration/extract", json!({"job_id": job})).await;
        svc.wait_for(&job, "extracted", |s| {
            s["state"] == "initialized" && s["step"] == "extracted"
        })
        .await;
        let (code, body) = svc.post("/migration/load", json!({"job_id": job})).await;
        assert_eq!(
            code, 202,
            "without transforms, load reads the extracted chunks: {body}"
        );
        svc.wait_for(&job, "some chunks", |s| {
            s["chunks_done"].as_u64() >= Some(3)
        })
        .await;
        job
        // dropped: SIGKILL mid-load
    };
    let d = dst.client().await;
    let before: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        before < 60,
        "the kill came before the end ({before} chunks)"
    );
    let svc = Service::start_staged(&w, 10, store, Some(&root));
    let done = svc.wait_state(&job, "succeeded").await;
    assert_eq!(
        done["phase"], "load",
        "the restart resumed the load phase: {done}"
    );
    assert_eq!(done["rows_done"], 300_000, "{done}");
    assert_eq!(
        pg_digest(&d, "items", "id").await,
        pg_digest(&src.client().await, "items", "id").await,
        "every row once"
    );
}

#[tokio::test]
async fn the_cli_runs_the_phases_one_by_one() {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 3000).await;
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "[load]\nchunk_rows = 1000");
    let plan = plan.to_str().unwrap();
    let out = w.decant(&["run", "--quiet", "--phase", "load", plan]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "load before extract: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--phase extract"), "{}", stderr(&out));
    let out = w.decant(&["run", "--quiet", "--phase", "extract", plan]);
    assert_success(&out);
    // Beside the control store by default (DECANT_STATE is the work dir's state.db).
    let staged = std::fs::read_dir(w.path().join("staging")).unwrap().count();
    assert_eq!(staged, 1, "one job folder");
    assert_eq!(public_tables(&dst).await, 0, "the target is untouched");
    let out = w.decant(&["run", "--quiet", "--phase", "load", plan]);
    assert_success(&out);
    assert_eq!(
        pg_digest(&dst.client().await, "items", "id").await,
        pg_digest(&src.client().await, "items", "id").await
    );
}

/// Every staged file of a job still under its temporary name (a chunk being written).
fn temp_files(root: &std::path::Path, job: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join(job)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "tmp") {
                found.push(path);
            }
        }
    }
    found
}

/// The rows of a staged Parquet file, read to its end (a half-written file has no footer and
/// fails here).
fn parquet_rows(path: &std::path::Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", path.display()))
        .build()
        .unwrap()
        .map(|b| {
            b.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .num_rows()
        })
        .sum()
}

/// The chunks of a job whose `progress_tracking` state is `state`.
async fn chunks_in(svc: &Service, job: &str, state: &str) -> usize {
    let (code, chunks) = svc.get(&format!("/api/v1/jobs/{job}/chunks")).await;
    assert_eq!(code, 200, "{chunks}");
    chunks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == state)
        .count()
}

/// Rows in `items` and rows the committed chunk markers account for.
async fn rows_and_marked(db: &PgTestDb) -> (i64, i64) {
    let r = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM items), (SELECT coalesce(sum(row_count), 0)::bigint FROM _decant_chunks)",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

async fn control(svc: &Service, verb: &str, job: &str) -> Value {
    let (code, body) = svc
        .post(&format!("/migration/{verb}"), json!({"job_id": job}))
        .await;
    assert_eq!(code, 200, "{verb}: {body}");
    body
}

async fn start_phase(svc: &Service, verb: &str, job: &str) {
    let (code, body) = svc
        .post(&format!("/migration/{verb}"), json!({"job_id": job}))
        .await;
    assert_eq!(code, 202, "{verb}: {body}");
}

#[tokio::test]
async fn staged_phases_pause_resume_and_cancel() {
    staged_control(None).await;
}

#[tokio::test]
async fn staged_phases_pause_resume_and_cancel_on_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    staged_control(Some(&store.url)).await;
}

/// Pause during extract holds new chunk files; cancel during transform leaves only whole files;
/// cancel during load leaves only whole chunks in the target, and a following load finishes it
/// (each row once) or a rollback gives the target back as it was.
async fn staged_control(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 100_000).await;
    let w = Workdir::new();
    let root = w.path().join("stage");
    let svc = Service::start_staged(&w, 10, store, Some(&root));
    let mut p = staged_plan("staged-ctl", &src.url, &dst.url, 1000);
    p["load"]["parallelism"] = json!(1);
    let job = svc.initialize(p).await;
    let (_, chunks) = svc.get(&format!("/api/v1/jobs/{job}/chunks")).await;
    let chunks = chunks.as_array().unwrap().len();
    assert!(chunks >= 90, "{chunks} chunks");

    // Pause during extract: the chunk in flight is staged whole, then no file appears.
    start_phase(&svc, "extract", &job).await;
    svc.wait_for(&job, "first extracted chunk", |s| {
        s["chunks_done"].as_u64() >= Some(1)
    })
    .await;
    let body = control(&svc, "pause", &job).await;
    assert_eq!(body["state"], "paused", "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = staged_files(&root, &job, "extract").len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = svc.status(&job).await;
    assert_eq!(
        (s["state"].as_str(), s["phase"].as_str()),
        (Some("paused"), Some("extract")),
        "{s}"
    );
    assert_eq!(
        staged_files(&root, &job, "extract").len(),
        held,
        "no chunk file appears while paused"
    );
    assert!(held >= 1 && held < chunks, "{held} of {chunks} staged");
    assert_eq!(temp_files(&root, &job), Vec::<std::path::PathBuf>::new());
    assert_eq!(public_tables(&dst).await, 0, "extract touches no target");
    control(&svc, "resume", &job).await;
    svc.wait_for(&job, "extracted", |s| {
        s["state"] == "initialized" && s["step"] == "extracted"
    })
    .await;
    let extracted = staged_files(&root, &job, "extract");
    assert_eq!(
        extracted.len(),
        chunks,
        "the resumed extract staged the rest"
    );
    let staged_rows: usize = extracted.iter().map(|f| parquet_rows(f)).sum();
    assert_eq!(staged_rows, 100_000, "each source row staged once");

    // Cancel during transform: every file under its final name is whole, none half-written.
    start_phase(&svc, "transform", &job).await;
    svc.wait_for(&job, "first transformed chunk", |s| {
        s["chunks_done"].as_u64() >= Some(1)
    })
    .await;
    control(&svc, "cancel", &job).await;
    let s = svc.wait_state(&job, "cancelled").await;
    assert_eq!(s["phase"], "transform", "{s}");
    let transformed = staged_files(&root, &job, "transform");
    assert!(
        !transformed.is_empty() && transformed.len() < chunks,
        "{} of {chunks} transformed",
        transformed.len()
    );
    for f in &transformed {
        parquet_rows(f);
    }
    assert_eq!(
        temp_files(&root, &job),
        Vec::<std::path::PathBuf>::new(),
        "the chunks in flight finished before the cancel took effect"
    );
    assert_eq!(
        chunks_in(&svc, &job, "transformed").await,
        transformed.len(),
        "the store records as transformed exactly the chunks whose files exist"
    );
    assert_eq!(public_tables(&dst).await, 0, "transform touches no target");
    // Load refuses a half-transformed job; transform again stages the rest.
    let (code, body) = svc.post("/migration/load", json!({"job_id": job})).await;
    assert_eq!(code, 409, "{body}");
    start_phase(&svc, "transform", &job).await;
    svc.wait_for(&job, "transformed", |s| {
        s["state"] == "initialized" && s["step"] == "transformed"
    })
    .await;
    let transformed = staged_files(&root, &job, "transform");
    assert_eq!(transformed.len(), chunks);
    // What staged_plan's transforms make of the source.
    let expected = pg_digest(
        &src.client().await,
        "(SELECT id, upper(v) AS v, n FROM items WHERE id % 10 <> 0 AND id % 7 <> 0)",
        "id",
    )
    .await;
    let staged_rows: usize = transformed.iter().map(|f| parquet_rows(f)).sum();
    assert_eq!(staged_rows as i64, expected.0, "each kept row staged once");

    // Cancel during load: only whole chunks in the target; load again finishes, each row once.
    start_phase(&svc, "load", &job).await;
    svc.wait_for(&job, "loaded chunks", |s| {
        s["chunks_done"].as_u64() >= Some(2)
    })
    .await;
    control(&svc, "cancel", &job).await;
    let s = svc.wait_state(&job, "cancelled").await;
    assert_eq!(s["phase"], "load", "{s}");
    let (rows, marked) = rows_and_marked(&dst).await;
    assert_eq!(rows, marked, "only whole chunks are in the target");
    assert!(rows > 0 && rows < expected.0, "{rows} rows loaded");
    start_phase(&svc, "load", &job).await;
    let s = svc.wait_state(&job, "succeeded").await;
    assert_eq!(s["phase"], "load", "{s}");
    assert_eq!(
        pg_digest(&dst.client().await, "items", "id").await,
        expected,
        "the cancelled and resumed load moved each row once"
    );

    // Cancel during the load of a job that appends to an existing table, then roll it back.
    let dst2 = PgTestDb::create().await;
    let d2 = dst2.client().await;
    d2.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO items SELECT g, 'before', 1 FROM generate_series(200001, 200100) g;",
    )
    .await
    .unwrap();
    let before = pg_digest(&d2, "items", "id").await;
    let job = svc
        .initialize(plan(
            "staged-rb",
            &src.url,
            &dst2.url,
            json!({"chunk_rows": 1000, "parallelism": 1, "if_exists": "append"}),
        ))
        .await;
    start_phase(&svc, "extract", &job).await;
    svc.wait_for(&job, "extracted", |s| {
        s["state"] == "initialized" && s["step"] == "extracted"
    })
    .await;
    start_phase(&svc, "load", &job).await;
    svc.wait_for(&job, "loaded chunks", |s| {
        s["chunks_done"].as_u64() >= Some(2)
    })
    .await;
    control(&svc, "cancel", &job).await;
    svc.wait_state(&job, "cancelled").await;
    let (rows, marked) = rows_and_marked(&dst2).await;
    assert_eq!(rows - 100, marked, "only whole chunks were appended");
    assert!(marked > 0 && marked < 100_000, "{marked} rows appended");
    let (code, body) = svc
        .post(
            "/migration/rollback",
            json!({"job_id": job, "force": false}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    svc.wait_state(&job, "rolled_back").await;
    assert_eq!(
        pg_digest(&d2, "items", "id").await,
        before,
        "the rollback of the cancelled load gives the table back as it was"
    );
}

/// `initialize` refuses an upsert into a MariaDB table whose other unique index
/// `ON DUPLICATE KEY UPDATE` would match on, naming the index.
#[tokio::test]
async fn initialize_refuses_a_mariadb_upsert_that_would_match_another_unique_key() {
    use mysql_async::prelude::Queryable;
    let (src, dst) = (MysqlTestDb::create().await, MysqlTestDb::create().await);
    for (db, extra) in [(&src, ""), (&dst, ", UNIQUE KEY uq_email (email)")] {
        let mut c = db.conn().await;
        c.query_drop(format!(
            "CREATE TABLE u (id bigint PRIMARY KEY, email varchar(40){extra}) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        c.disconnect().await.unwrap();
    }
    let w = Workdir::new();
    let svc = Service::start(&w, 10);
    let (code, body) = svc
        .post(
            "/migration/initialize",
            plan(
                "mupsert",
                &src.url,
                &dst.url,
                json!({"if_exists": "upsert"}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_error_shape(&body, "invalid_plan");
    let details = body["error"]["details"].to_string();
    assert!(
        details.contains("unique index `uq_email` (`email`)") && details.contains("swap"),
        "{details}"
    );
}

/// A pause that comes while a phase's last chunk is in flight ends with the phase: the next
/// verb starts at once instead of waiting, paused, for a resume nobody knows is needed.
#[tokio::test]
async fn a_pause_during_the_last_chunk_does_not_hold_the_next_phase() {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 100_000).await;
    let w = Workdir::new();
    let root = w.path().join("stage");
    let svc = Service::start_staged(&w, 10, None, Some(&root));
    let job = svc
        .initialize(staged_plan("one-chunk", &src.url, &dst.url, 1_000_000))
        .await;
    assert_eq!(chunks_in(&svc, &job, "pending").await, 1, "one chunk");
    start_phase(&svc, "extract", &job).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while chunks_in(&svc, &job, "running").await == 0 {
        assert!(Instant::now() < deadline, "the chunk never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (code, body) = svc.post("/migration/pause", json!({"job_id": job})).await;
    assert_eq!(code, 200, "the chunk was in flight: {body}");
    svc.wait_for(&job, "extracted", |s| {
        s["state"] == "initialized" && s["step"] == "extracted"
    })
    .await;
    start_phase(&svc, "transform", &job).await;
    let s = svc
        .wait_for(&job, "transformed without a resume", |s| {
            assert_ne!(s["state"], "paused", "{s}");
            s["state"] == "initialized" && s["step"] == "transformed"
        })
        .await;
    assert_eq!(s["phase"], "transform", "{s}");
}

#[tokio::test]
async fn a_killed_service_keeps_a_paused_extract_paused_and_resumes_it_once() {
    paused_extract_restart(None).await;
}

#[tokio::test]
async fn a_killed_service_keeps_a_paused_extract_paused_on_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    paused_extract_restart(Some(&store.url)).await;
}

/// SIGKILL of the service while a staged extract is paused: after the restart the job is still
/// paused in its extract phase and stages nothing; resumed, it stages every chunk once.
async fn paused_extract_restart(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 100_000).await;
    let w = Workdir::new();
    let root = w.path().join("stage");
    let (job, chunks) = {
        let svc = Service::start_staged(&w, 10, store, Some(&root));
        let job = svc
            .initialize(plan(
                "paused-kill",
                &src.url,
                &dst.url,
                json!({"chunk_rows": 1000, "parallelism": 1}),
            ))
            .await;
        let (_, chunks) = svc.get(&format!("/api/v1/jobs/{job}/chunks")).await;
        start_phase(&svc, "extract", &job).await;
        svc.wait_for(&job, "first extracted chunk", |s| {
            s["chunks_done"].as_u64() >= Some(1)
        })
        .await;
        control(&svc, "pause", &job).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        (job, chunks.as_array().unwrap().len())
        // dropped: SIGKILL while paused
    };
    let held = staged_files(&root, &job, "extract").len();
    assert!(held >= 1 && held < chunks, "{held} of {chunks} staged");
    let svc = Service::start_staged(&w, 10, store, Some(&root));
    let s = svc.status(&job).await;
    assert_eq!(
        (s["state"].as_str(), s["phase"].as_str()),
        (Some("paused"), Some("extract")),
        "{s}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        staged_files(&root, &job, "extract").len(),
        held,
        "the restarted job stays paused"
    );
    control(&svc, "resume", &job).await;
    svc.wait_for(&job, "extracted", |s| {
        s["state"] == "initialized" && s["step"] == "extracted"
    })
    .await;
    let files = staged_files(&root, &job, "extract");
    assert_eq!(files.len(), chunks);
    let rows: usize = files.iter().map(|f| parquet_rows(f)).sum();
    assert_eq!(rows, 100_000, "each source row staged once");
    assert_eq!(public_tables(&dst).await, 0, "extract touches no target");
}

#[tokio::test]
async fn a_killed_service_resumes_a_staged_transform_exactly_once() {
    staged_transform_restart(None).await;
}

#[tokio::test]
async fn a_killed_service_resumes_a_staged_transform_from_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    staged_transform_restart(Some(&store.url)).await;
}

/// SIGKILL of the service during transform: the restart resumes the transform phase, the
/// quarantine holds each rejected row once, and the load then proves its counts and loads each
/// kept row once.
async fn staged_transform_restart(store: Option<&str>) {
    let src = PgTestDb::create().await;
    let dst = PgTestDb::create().await;
    source_rows(&src, 100_000).await;
    let w = Workdir::new();
    let root = w.path().join("stage");
    let (job, chunks) = {
        let svc = Service::start_staged(&w, 10, store, Some(&root));
        let job = svc
            .initialize(staged_plan("retransform", &src.url, &dst.url, 1000))
            .await;
        let (_, chunks) = svc.get(&format!("/api/v1/jobs/{job}/chunks")).await;
        start_phase(&svc, "extract", &job).await;
        svc.wait_for(&job, "extracted", |s| {
            s["state"] == "initialized" && s["step"] == "extracted"
        })
        .await;
        start_phase(&svc, "transform", &job).await;
        svc.wait_for(&job, "some transformed chunks", |s| {
            s["chunks_done"].as_u64() >= Some(3)
        })
        .await;
        (job, chunks.as_array().unwrap().len())
        // dropped: SIGKILL mid-transform
    };
    let done = staged_files(&root, &job, "transform").len();
    assert!(
        done < chunks,
        "the kill came before the end ({done} of {chunks})"
    );
    for f in staged_files(&root, &job, "transform") {
        parquet_rows(&f);
    }
    let svc = Service::start_staged(&w, 10, store, Some(&root));
    let s = svc
        .wait_for(&job, "transformed", |s| {
            s["state"] == "initialized" && s["step"] == "transformed"
        })
        .await;
    assert_eq!(
        s["phase"], "transform",
        "the restart resumed the transform: {s}"
    );
    assert_eq!(staged_files(&root, &job, "transform").len(), chunks);
    assert_eq!(
        temp_files(&root, &job),
        Vec::<std::path::PathBuf>::new(),
        "the killed chunk's temporary file was replaced"
    );
    let rejected = (1..=100_000).filter(|i| i % 7 == 0 && i % 10 != 0).count();
    assert_eq!(reject_count(&svc, &job).await, rejected, "each reject once");
    start_phase(&svc, "load", &job).await;
    svc.wait_state(&job, "succeeded").await;
    assert_eq!(
        pg_digest(&dst.client().await, "items", "id").await,
        pg_digest(
            &src.client().await,
            "(SELECT id, upper(v) AS v, n FROM items WHERE id % 10 <> 0 AND id % 7 <> 0)",
            "id",
        )
        .await,
        "each kept row once"
    );
}
