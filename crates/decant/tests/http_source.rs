//! HTTP JSON APIs → PostgreSQL: each pagination style, retries after 429 (with `Retry-After`)
//! and 500, bearer auth, malformed records in the quarantine, and incremental second runs.
//! The API is a small axum server inside the test on 127.0.0.1: no outside network.

mod common;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::*;
use serde_json::{Value, json};

/// What the test API serves, and what it was asked.
#[derive(Default)]
struct Api {
    users: Mutex<Vec<Value>>,
    /// Every request: (path and query, when).
    log: Mutex<Vec<(String, Instant)>>,
    /// Requests per failing endpoint so far.
    hits: Mutex<HashMap<String, u32>>,
}

fn user(i: u64) -> Value {
    json!({
        "id": i,
        "name": format!("user {i}"),
        "score": i as f64 * 1.5,
        "active": i.is_multiple_of(2),
        "address": {"city": format!("city {}", i % 3)},
        "tags": ["t", i],
        "updated_at": format!("2024-01-01T00:00:{i:02}Z"),
    })
}

fn param(q: &HashMap<String, String>, k: &str, default: usize) -> usize {
    q.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn log(api: &Api, what: String) {
    api.log.lock().unwrap().push((what, Instant::now()));
}

fn hit(api: &Api, name: &str) -> u32 {
    let mut h = api.hits.lock().unwrap();
    let n = h.entry(name.to_string()).or_default();
    *n += 1;
    *n
}

async fn users(
    State(api): State<Arc<Api>>,
    Path(style): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.sort();
    log(&api, format!("{style}?{}", query.join("&")));
    let all = api.users.lock().unwrap().clone();
    let slice =
        |from: usize, n: usize| -> Vec<Value> { all.iter().skip(from).take(n).cloned().collect() };
    match style.as_str() {
        "page" => {
            let (page, per) = (param(&q, "page", 1), param(&q, "per_page", 10));
            Json(json!({"data": {"items": slice((page - 1) * per, per)}, "meta": {"total": all.len()}}))
                .into_response()
        }
        "slow" => {
            // Pages as "page", a little slow, so that a test can kill the load between chunks.
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let (page, per) = (param(&q, "page", 1), param(&q, "per_page", 10));
            Json(json!({"data": {"items": slice((page - 1) * per, per)}, "meta": {"total": all.len()}}))
                .into_response()
        }
        "moved" => {
            // Same origin: /api/link/users; `elsewhere=1`: the same server named `localhost`,
            // another origin.
            let host = headers[header::HOST].to_str().unwrap().to_string();
            let to = if q.contains_key("elsewhere") {
                format!(
                    "http://{}/api/link/users",
                    host.replace("127.0.0.1", "localhost")
                )
            } else {
                "/api/link/users".to_string()
            };
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
        "hanging" => {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            Json(Value::Array(all)).into_response()
        }
        "offset" => {
            let (offset, limit) = (param(&q, "offset", 0), param(&q, "limit", 10));
            Json(json!({"results": slice(offset, limit)})).into_response()
        }
        "cursor" => {
            let from = q
                .get("cursor")
                .map_or(0, |c| c.trim_start_matches("after-").parse().unwrap());
            let page = slice(from, 4);
            let next = (from + 4 < all.len()).then(|| format!("after-{}", from + 4));
            Json(json!({"records": page, "paging": {"next": next}})).into_response()
        }
        "link" => {
            let page = param(&q, "page", 1);
            let body = Json(Value::Array(slice((page - 1) * 6, 6)));
            if page * 6 < all.len() {
                let link = format!(r#"</api/link/users?page={}>; rel="next""#, page + 1);
                ([(header::LINK, link)], body).into_response()
            } else {
                body.into_response()
            }
        }
        "limited" => {
            if hit(&api, "limited") == 1 {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    "slow down",
                )
                    .into_response()
            } else {
                Json(Value::Array(all)).into_response()
            }
        }
        "flaky" => {
            if hit(&api, "flaky") <= 2 {
                (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response()
            } else {
                Json(Value::Array(all)).into_response()
            }
        }
        "private" => {
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                != Some("Bearer s3cret-token")
            {
                return (StatusCode::UNAUTHORIZED, "who are you").into_response();
            }
            Json(json!({"data": all})).into_response()
        }
        "changes" => {
            let since = q.get("updated_since").cloned().unwrap_or_default();
            let changed: Vec<Value> = all
                .into_iter()
                .filter(|u| u["updated_at"].as_str().unwrap() > since.as_str())
                .collect();
            Json(Value::Array(changed)).into_response()
        }
        "exact" => {
            // Written as text: a `Value` here would round the numbers before they are sent.
            // The count in `meta` is no record: it rounds too, and rejects nothing.
            let body = concat!(
                r#"{"meta": {"total": 12345678901234567890123}, "items": ["#,
                r#"{"id": 1, "n": 12.5, "note": "12345678901234567890123 in text is fine"}, "#,
                r#"{"id": 2, "n": 12345678901234567890123, "note": "x"}, "#,
                r#"{"id": 3, "n": 0.30000000000000004, "note": "a double as a program prints it"}, "#,
                r#"{"id": 4, "n": 0.1000000000000000055511151231257827, "note": "y"}, "#,
                r#"{"id": 5, "n": 18446744073709551615, "note": "u64 max"}, "#,
                r#"{"id": 7, "n": 212918.90726713458, "note": "exact, parsed exactly"}, "#,
                r#"{"id": 6, "n": 1, "note": "a NUL \u0000 PostgreSQL text cannot hold"}]}"#,
            );
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the API on a free port with users 1..=n; returns it and its base URL.
async fn serve(n: u64) -> (Arc<Api>, String) {
    let api = Arc::new(Api::default());
    *api.users.lock().unwrap() = (1..=n).map(user).collect();
    let app = Router::new()
        .route("/api/{style}/users", get(users))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (api, format!("http://{addr}/api"))
}

/// The decant CLI runs as a child process while the API serves on this test's runtime.
async fn decant(w: &Workdir, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = w.command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn plan(w: &Workdir, base: &str, target: &str, extra: &str, http: &str) -> String {
    let path = w.path().join("plan.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"api\"\n{extra}\n[source]\nurl = \"{base}\"\n[source.http]\n{http}\n[target]\nurl = \"{target}\"\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

async fn rows(d: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    d.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn expected_users(ids: impl Iterator<Item = u64>) -> Vec<String> {
    ids.map(|i| {
        format!(
            "{i}|user {i}|{}|{}|{{\"city\": \"city {}\"}}|[\"t\", {i}]|2024-01-01 00:00:{i:02}",
            json!(i as f64 * 1.5), // the API's text of the number: `3.0`, not `3`
            if i.is_multiple_of(2) { "t" } else { "f" },
            i % 3
        )
    })
    .collect()
}

/// Timestamps in UTC whatever the server's time zone.
const USER_ROW: &str =
    "concat_ws('|', id, name, score, active, address, tags, updated_at AT TIME ZONE 'UTC')";

#[tokio::test]
async fn every_pagination_style_loads_every_record_once() {
    let (api, base) = serve(23).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
[[source.http.tables]]
name = "paged"
path = "/page/users"
records = "data.items"
key = "id"
pagination = { style = "page", size = 5, total_path = "meta.total" }
[[source.http.tables]]
name = "offsets"
path = "/offset/users"
records = "results"
key = "id"
pagination = { style = "offset", size = 7 }
[[source.http.tables]]
name = "cursors"
path = "/cursor/users"
records = "records"
key = "id"
pagination = { style = "cursor", path = "paging.next" }
[[source.http.tables]]
name = "links"
path = "/link/users"
key = "id"
pagination = { style = "link" }
"#;
    // Without a plan, an endpoint whose body is the records array (its first page here).
    let out = decant(&w, &["inspect", &format!("{base}/link/users")], &[]).await;
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP JSON API"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("address") && l.contains("json")),
        "{text}"
    );
    let p = plan(&w, &base, &dst.url, "[load]\nchunk_rows = 10\n", tables);
    let out = decant(&w, &["run", "-q", &p], &[]).await;
    assert_success(&out);
    let d = dst.client().await;
    for table in ["paged", "offsets", "cursors", "links"] {
        assert_eq!(
            rows(&d, &format!("SELECT {USER_ROW} FROM {table} ORDER BY id")).await,
            expected_users(1..=23),
            "{table}"
        );
    }
    let types = rows(
        &d,
        "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'paged'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .await;
    assert_eq!(
        types,
        [
            "id integer",
            "active boolean",
            "address jsonb",
            "name text",
            "score numeric",
            "tags jsonb",
            "updated_at timestamp(6) with time zone"
        ]
    );
    // 23 records in pages of 5 with 10 records per chunk: chunks of pages [1,3), [3,5), [5,..).
    let chunks = rows(
        &d,
        "SELECT chunk_id || ':' || row_count FROM _decant_chunks WHERE table_name = 'public.paged' ORDER BY chunk_id",
    )
    .await;
    assert_eq!(chunks, ["paged@1:10", "paged@3:10", "paged@5:3"]);
    let log = api.log.lock().unwrap();
    let asked = |prefix: &str| -> Vec<String> {
        log.iter()
            .filter(|(q, _)| q.starts_with(prefix))
            .map(|(q, _)| q.clone())
            .collect()
    };
    // Offsets advance by the records received and stop at the first empty page.
    let offsets = asked("offset?");
    for o in [0, 7, 14, 21, 23] {
        let want = format!("offset?limit=7&offset={o}");
        assert!(offsets.contains(&want), "{want} in {offsets:?}");
    }
    assert!(asked("cursor?").contains(&"cursor?cursor=after-20".to_string()));
    assert!(asked("link?").contains(&"link?page=4".to_string()));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let (api, base) = serve(5).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
backoff = "50ms"
retries = 3
[[source.http.tables]]
name = "limited"
path = "/limited/users"
key = "id"
[[source.http.tables]]
name = "flaky"
path = "/flaky/users"
key = "id"
"#;
    let p = plan(&w, &base, &dst.url, "[policies]\nscan = \"off\"\n", tables);
    assert_success(&decant(&w, &["run", "-q", &p], &[]).await);
    let d = dst.client().await;
    for table in ["limited", "flaky"] {
        assert_eq!(
            rows(&d, &format!("SELECT {USER_ROW} FROM {table} ORDER BY id")).await,
            expected_users(1..=5),
            "{table}"
        );
    }
    let log = api.log.lock().unwrap();
    let times = |style: &str| -> Vec<Instant> {
        log.iter()
            .filter(|(q, _)| q.starts_with(style))
            .map(|(_, t)| *t)
            .collect()
    };
    // introspect: 429, then the sample; the load reads again.
    let limited = times("limited?");
    assert!(limited.len() >= 2, "{limited:?}");
    let waited = limited[1] - limited[0];
    assert!(
        waited.as_millis() >= 950,
        "Retry-After: 1 was honoured, not the 50 ms backoff: {waited:?}"
    );
    let flaky = times("flaky?");
    assert!(flaky.len() >= 3, "two 500s, then the records: {flaky:?}");
    assert_eq!(
        *api.hits.lock().unwrap().get("flaky").unwrap() as usize,
        flaky.len()
    );
}

#[tokio::test]
async fn a_bearer_token_comes_from_the_environment() {
    let (_api, base) = serve(3).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
retries = 0
auth = { kind = "bearer", token_env = "DECANT_TEST_API_TOKEN" }
[[source.http.tables]]
name = "private"
path = "/private/users"
records = "data"
key = "id"
"#;
    let p = plan(&w, &base, &dst.url, "", tables);
    let out = decant(&w, &["run", "-q", &p], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("DECANT_TEST_API_TOKEN") && err.contains("not set"),
        "{err}"
    );

    let out = decant(
        &w,
        &["run", "-q", &p],
        &[("DECANT_TEST_API_TOKEN", "wrong")],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("401") && err.contains("source.http.auth"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the token never shows: {err}");

    let out = decant(
        &w,
        &["run", "-q", &p],
        &[("DECANT_TEST_API_TOKEN", "s3cret-token")],
    )
    .await;
    assert_success(&out);
    assert!(!stderr(&out).contains("s3cret"));
    let d = dst.client().await;
    assert_eq!(
        rows(&d, &format!("SELECT {USER_ROW} FROM private ORDER BY id")).await,
        expected_users(1..=3)
    );
}

#[tokio::test]
async fn records_that_do_not_fit_go_to_the_quarantine_with_page_and_index() {
    let (api, base) = serve(6).await;
    {
        let mut u = api.users.lock().unwrap();
        u[1] = json!(42); // not an object
        u[3]["id"] = json!("four"); // not an integer
        u[4].as_object_mut().unwrap().remove("id"); // no key
        u[5]["surprise"] = json!(1); // a field the sample never showed
    }
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
sample_records = 3
[[source.http.tables]]
name = "bad"
path = "/page/users"
records = "data.items"
key = "id"
pagination = { style = "page", size = 4 }
columns = { id = "int64" }
"#;
    // A skipped column's field is known, not an unknown field: those records load.
    let extra = "[load]\nmax_rejects = 10\n[policies]\nscan = \"off\"\n\
                 [tables.bad.columns.tags]\nskip = true\n";
    let p = plan(&w, &base, &dst.url, extra, tables);
    assert_success(&decant(&w, &["run", "-q", &p], &[]).await);
    let d = dst.client().await;
    assert_eq!(
        rows(&d, "SELECT id || '|' || name FROM bad ORDER BY id").await,
        ["1|user 1", "3|user 3"]
    );
    let tags = "SELECT attname::text FROM pg_attribute WHERE attrelid = 'bad'::regclass AND attname = 'tags'";
    assert!(
        rows(&d, tags).await.is_empty(),
        "the skipped column is not created"
    );
    let conn = rusqlite::Connection::open(w.state()).unwrap();
    let mut stmt = conn
        .prepare("SELECT location, rule, message FROM error_logs WHERE kind = 'reject' ORDER BY location")
        .unwrap();
    let rejects: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let page1 = format!("{base}/page/users?page=1&per_page=4");
    let page2 = format!("{base}/page/users?page=2&per_page=4");
    let got: Vec<(String, String)> = rejects.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    assert_eq!(
        got,
        [
            (format!("{page1} #1"), "malformed_record".to_string()),
            (format!("{page1} #3"), "bad_value(id)".to_string()),
            (format!("{page2} #0"), "not_null(id)".to_string()),
            (format!("{page2} #1"), "unknown_field".to_string()),
        ]
    );
    assert!(
        rejects[1].2.contains("`four` is not an integer"),
        "{:?}",
        rejects[1]
    );
    assert!(rejects[3].2.contains("surprise"), "{:?}", rejects[3]);
}

#[tokio::test]
async fn api_numbers_a_double_would_round_and_nul_bytes_are_quarantined() {
    let (_api, base) = serve(0).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
[[source.http.tables]]
name = "big"
path = "/exact/users"
records = "items"
key = "id"
"#;
    let p = plan(&w, &base, &dst.url, "[load]\nmax_rejects = 10\n", tables);
    assert_success(&decant(&w, &["run", "-q", &p], &[]).await);
    let d = dst.client().await;
    assert_eq!(
        rows(&d, "SELECT id || '|' || n::text FROM big ORDER BY id").await,
        [
            "1|12.5",
            "3|0.30000000000000004",
            "5|18446744073709551615",
            "7|212918.90726713458"
        ]
    );
    let conn = rusqlite::Connection::open(w.state()).unwrap();
    let mut stmt = conn
        .prepare("SELECT location, rule, message, record FROM error_logs WHERE kind = 'reject' ORDER BY location")
        .unwrap();
    let rejects: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let page = format!("{base}/exact/users");
    let got: Vec<(String, &str)> = rejects
        .iter()
        .map(|r| (r.0.clone(), r.1.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (format!("{page} #1"), "inexact_number"),
            (format!("{page} #3"), "inexact_number"),
            (format!("{page} #6"), "nul_byte(note)"),
        ]
    );
    assert!(
        rejects[0].2.contains("the number 12345678901234567890123"),
        "{rejects:?}"
    );
    // The record as the API sent it, every digit, for a fix and a retry.
    assert_eq!(
        rejects[1].3,
        r#"{"id": 4, "n": 0.1000000000000000055511151231257827, "note": "y"}"#
    );
}

#[tokio::test]
async fn a_second_run_reads_only_records_changed_since_the_first() {
    let (api, base) = serve(4).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
[[source.http.tables]]
name = "changes"
path = "/changes/users"
incremental = { field = "updated_at", param = "updated_since", initial = "2024-01-01T00:00:01Z" }
"#;
    let p = plan(&w, &base, &dst.url, "", tables);
    assert_success(&decant(&w, &["run", "-q", &p], &[]).await);
    {
        let mut u = api.users.lock().unwrap();
        u.push(user(5));
        u.push(user(6));
        u[1]["name"] = json!("user 2, renamed");
        u[1]["updated_at"] = json!("2024-01-01T00:00:07Z");
    }
    let p = plan(
        &w,
        &base,
        &dst.url,
        "[load]\nif_exists = \"append\"\n",
        tables,
    );
    assert_success(&decant(&w, &["run", "-q", &p], &[]).await);
    let log: Vec<String> = api
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.0.clone())
        .collect();
    assert!(
        log.contains(&"changes?updated_since=2024-01-01T00:00:01Z".to_string())
            && log.contains(&"changes?updated_since=2024-01-01T00:00:04Z".to_string()),
        "the first run asks after `initial`, the second after the target's highest updated_at: {log:?}"
    );
    let d = dst.client().await;
    assert_eq!(
        rows(
            &d,
            "SELECT concat_ws('|', id, name, updated_at AT TIME ZONE 'UTC') FROM changes ORDER BY updated_at, id"
        )
        .await,
        [
            "2|user 2|2024-01-01 00:00:02",
            "3|user 3|2024-01-01 00:00:03",
            "4|user 4|2024-01-01 00:00:04",
            "5|user 5|2024-01-01 00:00:05",
            "6|user 6|2024-01-01 00:00:06",
            "2|user 2, renamed|2024-01-01 00:00:07",
        ],
        "append keeps the earlier version of a changed record (an upsert load would replace it)"
    );
}

#[tokio::test]
async fn a_killed_api_load_resumes_with_every_record_once() {
    use std::time::Duration;
    let (_api, base) = serve(40).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
sample_records = 5
[[source.http.tables]]
name = "slow"
path = "/slow/users"
records = "data.items"
key = "id"
pagination = { style = "page", size = 5, total_path = "meta.total" }
"#;
    // 8 pages of 5, two pages per chunk: 4 chunks, loaded one after the other.
    let p = plan(
        &w,
        &base,
        &dst.url,
        "[load]\nchunk_rows = 10\nparallelism = 1\n[policies]\nscan = \"off\"\n",
        tables,
    );
    let mut child = w.command(&["run", "-q", &p]).spawn().unwrap();
    let d = dst.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("decant ended ({status}) before it could be killed: make the API slower");
        }
        let n: i64 = d
            .query_one("SELECT count(*) FROM _decant_chunks", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if n >= 1 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "no chunk committed in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = rows(&d, "SELECT chunk_id FROM _decant_chunks ORDER BY chunk_id").await;
    assert!(before.len() < 4, "killed before the end: {before:?}");
    let out = decant(&w, &["run", "-q", &p], &[]).await;
    assert_success(&out);
    assert_eq!(
        rows(&d, &format!("SELECT {USER_ROW} FROM slow ORDER BY id")).await,
        expected_users(1..=40),
        "every record once after the resume"
    );
    assert_eq!(
        rows(&d, "SELECT chunk_id FROM _decant_chunks ORDER BY chunk_id").await,
        ["slow@1", "slow@3", "slow@5", "slow@7"]
    );
}

#[tokio::test]
async fn a_request_that_outlives_its_timeout_is_retried_then_fails_the_run() {
    let (api, base) = serve(2).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = r#"
timeout = "300ms"
retries = 1
backoff = "10ms"
[[source.http.tables]]
name = "hanging"
path = "/hanging/users"
"#;
    let p = plan(&w, &base, &dst.url, "", tables);
    let started = Instant::now();
    let out = decant(&w, &["run", "-q", &p], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("timed out") && err.contains("gave up after 2 attempts"),
        "{err}"
    );
    // Without the timeout, the two attempts would each wait the API's 3 s.
    assert!(
        started.elapsed().as_secs() < 6,
        "the timeout cut the waits short: {:?}",
        started.elapsed()
    );
    let asked = api.log.lock().unwrap().len();
    assert_eq!(asked, 2, "one request and one retry");
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_origin_only() {
    let (api, base) = serve(4).await;
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tables = |params: &str| {
        format!(
            "auth = {{ kind = \"header\", name = \"X-Api-Key\", value_env = \"DECANT_TEST_API_KEY\" }}\n\
             [[source.http.tables]]\nname = \"moved\"\npath = \"/moved/users\"\nkey = \"id\"\n{params}"
        )
    };
    let key = [("DECANT_TEST_API_KEY", "k")];
    let p = plan(&w, &base, &dst.url, "", &tables(""));
    assert_success(&decant(&w, &["run", "-q", &p], &key).await);
    let d = dst.client().await;
    assert_eq!(
        rows(&d, &format!("SELECT {USER_ROW} FROM moved ORDER BY id")).await,
        expected_users(1..=4)
    );
    let p = plan(
        &w,
        &base,
        &dst.url,
        "[load]\nif_exists = \"drop\"\n",
        &tables("params = { elsewhere = \"1\" }\n"),
    );
    let out = decant(&w, &["run", "-q", &p], &key).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("302") && err.contains("another host"), "{err}");
    let followed = api
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.0.starts_with("link?"))
        .count();
    assert!(followed >= 1, "the same-origin redirect was followed");
}
