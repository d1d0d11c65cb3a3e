//! `load.swap_retention` against the real PostgreSQL on localhost, on both control stores (a
//! SQLite file, and a fresh PostgreSQL database): `decant serve` finalizes a swap whose
//! retention passed by itself (the backup table is gone from the target, rollback is refused),
//! keeps the backup of a job without retention, and `decant finalize --expired` finalizes only
//! the jobs whose backups expired (a swap's backup and an upsert's pre-images).

mod common;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

impl Service {
    /// A service that sweeps for expired jobs every 200 ms; `store`: a `postgres://` control
    /// store, `None` the SQLite file of the work dir.
    fn start(w: &Workdir, store: Option<&str>) -> Service {
        let mut args = vec!["--retention-sweep", "200ms"];
        if let Some(url) = store {
            args.extend(["--store", url]);
        }
        let mut svc = Service::spawn(w, &args);
        svc.patience = Duration::from_secs(60);
        svc
    }

    /// Initializes and runs `plan` to success; returns the job id.
    async fn run(&self, plan: Value) -> String {
        let job = self.initialize(plan).await;
        let (code, body) = self.post("/migration/run", json!({"job_id": job})).await;
        assert!((200..300).contains(&code), "run: {code} {body}");
        self.wait_for(&job, "succeeded", |s| s["state"] == "succeeded")
            .await;
        job
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

async fn source() -> PgTestDb {
    let src = PgTestDb::create().await;
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text);
             INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();
    src
}

/// A target whose `items` exists, so that a load swaps it (the default `if_exists`).
async fn target() -> PgTestDb {
    let dst = PgTestDb::create().await;
    dst.client()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text);
             INSERT INTO items SELECT g, 'old ' || g FROM generate_series(1, 10) g;",
        )
        .await
        .unwrap();
    dst
}

/// The swap backups (`items__decant_old_<hash>`) in the target's `public` schema.
async fn backups(db: &PgTestDb) -> Vec<String> {
    companions(db, "old").await
}

/// The tables `items__decant_<role>_<hash>` in the target's `public` schema.
async fn companions(db: &PgTestDb, role: &str) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
             AND tablename LIKE 'items\\_\\_decant\\_' || $1 || '\\_%' ORDER BY 1",
            &[&role],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn the_service_finalizes_a_swap_whose_retention_passed_and_keeps_one_without() {
    service_sweep(None).await;
}

#[tokio::test]
async fn the_service_finalizes_expired_swaps_on_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    service_sweep(Some(&store.url)).await;
}

async fn service_sweep(store: Option<&str>) {
    let src = source().await;
    let (kept_dst, expiring_dst) = (target().await, target().await);
    let w = Workdir::new();
    let svc = Service::start(&w, store);

    // Without retention, the backup outlives many sweeps (200 ms each).
    let kept = svc
        .run(plan("kept", &src.url, &kept_dst.url, json!({})))
        .await;
    assert_eq!(backups(&kept_dst).await.len(), 1, "the swap kept a backup");
    let s = svc.status(&kept).await;
    assert!(s["backups_expire_at"].is_null(), "{s}");

    let job = svc
        .run(plan(
            "expiring",
            &src.url,
            &expiring_dst.url,
            json!({"swap_retention": "2s"}),
        ))
        .await;
    let s = svc.status(&job).await;
    let expires = s["backups_expire_at"]
        .as_str()
        .unwrap_or_else(|| panic!("a retention sets the expiry: {s}"))
        .to_string();
    assert!(s["finalized_at"].is_null(), "not yet: {s}");
    assert_eq!(
        backups(&expiring_dst).await.len(),
        1,
        "kept until it expires"
    );

    let s = svc
        .wait_for(&job, "finalized by the sweep", |s| {
            s["finalized_at"].is_string()
        })
        .await;
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(s["backups_expire_at"], expires.as_str(), "{s}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(
        time(&s["finalized_at"]) >= time(&s["backups_expire_at"]),
        "finalized after it expired: {s}"
    );
    assert!(
        backups(&expiring_dst).await.is_empty(),
        "the backup table is dropped from the target"
    );
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": job}))
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]["details"][0]
            .as_str()
            .is_some_and(|d| d.contains("was finalized")),
        "{body}"
    );
    let (code, body) = svc.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["status"]["backups_expire_at"],
        expires.as_str(),
        "{body}"
    );

    // The job without retention still has its backup, and rolls back.
    assert_eq!(backups(&kept_dst).await.len(), 1, "no retention: kept");
    assert!(svc.status(&kept).await["finalized_at"].is_null());
    let (code, body) = svc
        .post("/migration/rollback", json!({"job_id": kept}))
        .await;
    assert_eq!(code, 200, "{body}");
}

/// Runs a plan named `name` to success with the CLI on `state`; returns the job id.
fn run_cli(w: &Workdir, state: &str, name: &str, source: &str, target: &str, load: &str) -> String {
    let plan = w.path().join(format!("{name}.toml"));
    std::fs::write(
        &plan,
        format!(
            "name = \"{name}\"\n[source]\nurl = \"{source}\"\n[target]\nurl = \"{target}\"\n[load]\n{load}\n"
        ),
    )
    .unwrap();
    let summary = w.path().join("summary.json");
    assert_success(&w.decant(&[
        "run",
        "-q",
        "--state",
        state,
        "--summary-json",
        summary.to_str().unwrap(),
        plan.to_str().unwrap(),
    ]));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    s["job_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn finalize_expired_finalizes_only_the_expired_job() {
    let w = Workdir::new();
    let state = w.state().display().to_string();
    finalize_expired(&w, &state).await;
}

#[tokio::test]
async fn finalize_expired_on_the_postgresql_control_store() {
    let store = PgTestDb::create().await;
    finalize_expired(&Workdir::new(), &store.url).await;
}

async fn finalize_expired(w: &Workdir, state: &str) {
    let src = source().await;
    let (soon_dst, later_dst) = (target().await, target().await);
    let soon = run_cli(
        w,
        state,
        "soon",
        &src.url,
        &soon_dst.url,
        "swap_retention = \"1s\"",
    );
    let later = run_cli(
        w,
        state,
        "later",
        &src.url,
        &later_dst.url,
        "swap_retention = \"1h\"",
    );
    let upsert_dst = target().await;
    let upsert = run_cli(
        w,
        state,
        "upsert",
        &src.url,
        &upsert_dst.url,
        "if_exists = \"upsert\"\nswap_retention = \"1s\"",
    );
    assert_eq!(backups(&soon_dst).await.len(), 1);
    assert_eq!(backups(&later_dst).await.len(), 1);
    assert_eq!(companions(&upsert_dst, "pre").await.len(), 1, "pre-images");
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let out = w.decant(&["finalize", "--expired", "--state", state]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("job {soon} finalized")),
        "{stdout}"
    );
    assert!(!stdout.contains(&later), "{stdout}");
    assert!(backups(&soon_dst).await.is_empty(), "expired: dropped");
    assert_eq!(backups(&later_dst).await.len(), 1, "not expired: kept");
    assert!(
        stdout.contains(&format!("job {upsert} finalized")),
        "{stdout}"
    );
    assert!(
        companions(&upsert_dst, "pre").await.is_empty(),
        "an upsert's pre-images expire too"
    );

    let out = w.decant(&["rollback", "--state", state, &soon]);
    assert!(!out.status.success(), "an expired job was finalized");
    assert!(stderr(&out).contains("was finalized"), "{}", stderr(&out));
    let out = w.decant(&["finalize", "--expired", "--state", state]);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no job's backups have expired"),
        "a second pass finds nothing: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_success(&w.decant(&["rollback", "--state", state, &later]));
}
