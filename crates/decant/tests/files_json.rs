//! JSON Lines and JSON array files → PostgreSQL: inferred and pinned types, nested objects kept
//! as JSON, flattened or picked by path, globs and compression, line-aligned chunks, the
//! quarantine, and resume after a kill. Every case counts loaded + quarantined = records.

mod common;
use std::io::Write;
use std::path::Path;

use common::*;

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

async fn count(d: &tokio_postgres::Client, table: &str) -> i64 {
    d.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn column_types(d: &tokio_postgres::Client, table: &str) -> Vec<(String, String)> {
    d.query(
        "SELECT attname::text, format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END \
         FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&table],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// One text row per record: `concat_ws('|', ...)` of `columns`, in `order`.
async fn rows(d: &tokio_postgres::Client, table: &str, columns: &str, order: &str) -> Vec<String> {
    d.query(
        &format!("SELECT concat_ws('|', {columns}) FROM {table} ORDER BY {order}"),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn jsonl_types_are_inferred_and_values_land_exactly() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("events.jsonl");
    // A BOM, CRLF, a blank line, keys in any order, a key missing from one record, unicode
    // escapes, nested objects and arrays.
    std::fs::write(
        &file,
        "\u{feff}{\"id\": 1, \"big\": 3000000000, \"amount\": 12.5, \"name\": \"Smith, \\\"Ann\\\"\", \"born\": \"1980-01-31\", \"seen\": \"2024-01-01 10:00:00\", \"at\": \"2024-01-01T10:00:00Z\", \"active\": true, \"code\": \"007\", \"tags\": [\"a\", 1], \"meta\": {\"k\": {\"deep\": null}}, \"none\": null}\r\n\
         {\"big\": 4, \"id\": 2, \"amount\": -0.5, \"name\": \"\\u00c7a\", \"born\": \"1990-12-01\", \"seen\": \"2024-01-02 11:30:00.25\", \"at\": \"2024-01-02T11:30:00+02:00\", \"active\": false, \"code\": \"010\", \"tags\": [], \"meta\": {}, \"none\": null}\n\
         \n\
         {\"id\": 3, \"big\": 5, \"amount\": 1e3, \"name\": null, \"born\": null, \"seen\": null, \"at\": null, \"active\": null, \"code\": \"\", \"tags\": null, \"none\": null}\n",
    )
    .unwrap();
    let out = w.decant(&["inspect", &file_url(&file)]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("JSON files"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("big") && l.contains("int64")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("meta") && l.contains("json")),
        "{text}"
    );

    let plan = w.plan(&file_url(&file), &dst.url, "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    assert_eq!(
        column_types(&d, "events").await,
        // Columns in key order (serde_json's map is sorted), as Spark's JSON inference does.
        pairs(&[
            ("active", "boolean"),
            ("amount", "numeric"),
            ("at", "timestamp(6) with time zone"),
            ("big", "bigint"),
            ("born", "date"),
            ("code", "text"),
            ("id", "integer"),
            ("meta", "jsonb"),
            ("name", "text"),
            ("none", "text"),
            ("seen", "timestamp(6) without time zone"),
            ("tags", "jsonb"),
        ])
    );
    d.execute("SET TIME ZONE 'UTC'", &[]).await.unwrap();
    assert_eq!(
        rows(
            &d,
            "events",
            "id, big, amount, coalesce(name, '<null>'), born, seen, at, active, code, tags, coalesce(meta::text, '<null>'), coalesce(none, '<null>')",
            "id"
        )
        .await,
        [
            "1|3000000000|12.5|Smith, \"Ann\"|1980-01-31|2024-01-01 10:00:00|2024-01-01 10:00:00+00|t|007|[\"a\", 1]|{\"k\": {\"deep\": null}}|<null>",
            "2|4|-0.5|Ça|1990-12-01|2024-01-02 11:30:00.25|2024-01-02 09:30:00+00|f|010|[]|{}|<null>",
            "3|5|1000.0|<null>||<null>|<null>",
        ]
    );
    assert!(rejects(&w).is_empty());
}

#[tokio::test]
async fn nested_objects_are_flattened_by_path_or_by_key() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("orders.ndjson");
    std::fs::write(
        &file,
        "{\"id\": 1, \"customer\": {\"name\": \"Ann\", \"address\": {\"city\": \"Oslo\", \"zip\": \"0150\"}}, \"items\": [{\"sku\": \"a\"}]}\n\
         {\"id\": 2, \"customer\": {\"name\": \"Bob\", \"address\": {\"city\": \"Rome\"}}, \"items\": []}\n\
         {\"id\": 3, \"customer\": null, \"items\": null}\n",
    )
    .unwrap();
    // By declared path: the nested object stays a JSON column next to the picked value.
    let plan = w.plan(
        &file_url(&file),
        &dst.url,
        "[source.json.paths]\ncustomer_city = \"customer.address.city\"\n",
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    assert_eq!(
        column_types(&d, "orders").await,
        pairs(&[
            ("customer_city", "text"),
            ("customer", "jsonb"),
            ("id", "integer"),
            ("items", "jsonb"),
        ])
    );
    assert_eq!(
        rows(
            &d,
            "orders",
            "id, coalesce(customer_city, '<null>'), coalesce(customer->>'name', '<null>'), coalesce(items::text, '<null>')",
            "id"
        )
        .await,
        [
            "1|Oslo|Ann|[{\"sku\": \"a\"}]",
            "2|Rome|Bob|[]",
            "3|<null>|<null>|<null>"
        ]
    );

    // Flattened: one column per nested key, joined with `_`; arrays stay JSON.
    let w = Workdir::new();
    let plan = w.plan(
        &file_url(&file),
        &dst.url,
        "[source.json]\nflatten = true\ntable = \"flat\"\n",
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    assert_eq!(
        column_types(&d, "flat").await,
        pairs(&[
            ("customer_address_city", "text"),
            ("customer_address_zip", "text"),
            ("customer_name", "text"),
            ("id", "integer"),
            ("items", "jsonb"),
        ])
    );
    assert_eq!(
        rows(
            &d,
            "flat",
            "id, coalesce(customer_name, '<null>'), coalesce(customer_address_city, '<null>'), coalesce(customer_address_zip, '<null>')",
            "id"
        )
        .await,
        ["1|Ann|Oslo|0150", "2|Bob|Rome|<null>", "3|<null>|<null>|<null>"]
    );
    assert!(rejects(&w).is_empty());
}

#[tokio::test]
async fn a_json_array_file_streams_its_elements_and_quarantines_bad_ones() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("people.json");
    std::fs::write(
        &file,
        "[\n  {\"id\": 1, \"name\": \"Ann\", \"score\": 1.5},\n  {\n    \"id\": 2,\n    \"name\": \"Bob, [x]\",\n    \"score\": 2\n  },\n  {\"id\": \"three\", \"name\": \"Cy\", \"score\": 3},\n  [1, 2],\n  {\"id\": 5, \"name\": tru},\n  {\"id\": 6, \"name\": \"Di\", \"score\": null}\n]\n",
    )
    .unwrap();
    let plan = w.plan(
        &file_url(&file),
        &dst.url,
        "[load]\nmax_rejects = 10\n[source.json.columns]\nid = \"int64\"\n",
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    assert_eq!(
        column_types(&d, "people").await,
        pairs(&[("id", "bigint"), ("name", "text"), ("score", "numeric")])
    );
    assert_eq!(
        rows(
            &d,
            "people",
            "id, name, coalesce(score::text, '<null>')",
            "id"
        )
        .await,
        ["1|Ann|1.5", "2|Bob, [x]|2", "6|Di|<null>"]
    );
    let quarantined = rejects(&w);
    let by_line: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, ..)| (loc.as_str(), rule.as_str()))
        .collect();
    assert_eq!(
        by_line,
        [
            ("people.json:10", "malformed_record"),
            ("people.json:8", "bad_value(id)"),
            ("people.json:9", "malformed_record"),
        ]
    );
    assert!(
        quarantined[0].2.contains("not valid JSON"),
        "{quarantined:?}"
    );
    assert_eq!(quarantined[0].3, "{\"id\": 5, \"name\": tru}");
    assert!(
        quarantined[1].2.contains("`three` is not an integer"),
        "{quarantined:?}"
    );
    assert!(quarantined[2].2.contains("not an array"), "{quarantined:?}");
    assert_eq!(quarantined[2].3, "[1, 2]");
    assert_eq!(count(&d, "people").await as usize + quarantined.len(), 6);
}

#[tokio::test]
async fn malformed_lines_go_to_the_quarantine_with_line_and_reason() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    f.write_all(b"{\"id\": 1, \"amount\": \"1.50\"}\n").unwrap(); // line 1
    f.write_all(b"{\"id\": 2, \"amount\": \n").unwrap(); // line 2: not valid JSON
    f.write_all(b"[3, 4]\n").unwrap(); // line 3: not an object
    f.write_all(b"{\"id\": 4, \"amount\": \"caf\xe9\"}\n")
        .unwrap(); // line 4: invalid UTF-8
    f.write_all(b"{\"id\": 5, \"amount\": \"12.345\"}\n")
        .unwrap(); // line 5: too many decimals
    f.write_all(b"\n").unwrap(); // line 6: blank, not a record
    f.write_all(b"{\"id\": 6, \"amount\": 6}\n").unwrap(); // line 7
    f.write_all(b"{\"id\": 7, \"amount\": 7, \"surprise\": 1}\n")
        .unwrap(); // line 8: unknown key
    f.write_all(b"{\"id\": \"8\", \"amount\": {\"v\": 8}}\n")
        .unwrap(); // line 9: an object
    f.write_all(b"42\n").unwrap(); // line 10: a number
    f.write_all(b"{\"id\": 9}").unwrap(); // line 11: no final line break, amount missing
    drop(f);
    let records = 10;
    let plan = w.plan(
        &file_url(&file),
        &dst.url,
        "[load]\nmax_rejects = 100\n[source.json]\nsample_rows = 1\n[source.json.columns]\namount = \"decimal(10,2)\"\n",
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let loaded = count(&d, "bad").await;
    let quarantined = rejects(&w);
    assert_eq!(
        loaded as usize + quarantined.len(),
        records,
        "{quarantined:?}"
    );
    assert_eq!(
        rows(&d, "bad", "id, coalesce(amount::text, '<null>')", "id").await,
        ["1|1.50", "6|6.00", "9|<null>"]
    );
    let by_line: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, ..)| (loc.as_str(), rule.as_str()))
        .collect();
    assert_eq!(
        by_line,
        [
            ("bad.jsonl:10", "malformed_record"),
            ("bad.jsonl:2", "malformed_record"),
            ("bad.jsonl:3", "malformed_record"),
            ("bad.jsonl:4", "invalid_encoding"),
            ("bad.jsonl:5", "bad_value(amount)"),
            ("bad.jsonl:8", "unknown_field(surprise)"),
            ("bad.jsonl:9", "bad_value(amount)"),
        ]
    );
    let reason = |loc: &str| {
        quarantined
            .iter()
            .find(|r| r.0 == loc)
            .map(|r| (r.2.clone(), r.3.clone()))
            .unwrap()
    };
    assert!(reason("bad.jsonl:2").0.contains("not valid JSON"));
    assert_eq!(reason("bad.jsonl:2").1, "{\"id\": 2, \"amount\": ");
    assert!(reason("bad.jsonl:3").0.contains("not an array"));
    assert!(reason("bad.jsonl:4").0.contains("invalid UTF-8"));
    assert!(reason("bad.jsonl:5").0.contains("decimal(10,2)"));
    assert!(reason("bad.jsonl:8").0.contains("sample_rows"));
    assert!(reason("bad.jsonl:9").0.contains("an object is not"));
    assert!(reason("bad.jsonl:10").0.contains("not a number"));
}

#[tokio::test]
async fn one_bad_line_too_many_fails_the_job_and_says_how_to_go_on() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("t.jsonl");
    std::fs::write(&file, "{\"a\": 1}\n{\"a\": \n").unwrap();
    let plan = w.plan(&file_url(&file), &dst.url, "");
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("max_rejects"), "{err}");
    let d = dst.client().await;
    assert_eq!(count(&d, "t").await, 0, "the chunk did not commit");
}

#[tokio::test]
async fn a_glob_of_plain_gzip_and_zstd_jsonl_files_is_one_table() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let dir = w.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let part = |from: u32| -> String {
        (from..from + 1000)
            .map(|i| format!("{{\"id\": {i}, \"v\": \"value {i}\", \"n\": {{\"x\": {i}}}}}\n"))
            .collect()
    };
    std::fs::write(dir.join("sales_1.jsonl"), part(0)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.join("sales_2.jsonl.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(part(1000).as_bytes()).unwrap();
    gz.finish().unwrap();
    std::fs::write(
        dir.join("sales_3.ndjson.zst"),
        zstd::encode_all(part(2000).as_bytes(), 3).unwrap(),
    )
    .unwrap();
    // The directory alone: its JSON files are tables, one each.
    let out = w.decant(&["inspect", &file_url(&dir)]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("JSON files (3 in 3 tables)"), "{text}");

    let out = w.decant(&["inspect", &format!("file://{}/*.jsonl*", dir.display())]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("JSON files (2 in 1 tables)"), "{text}");
    for (col, ty) in [("id", "int32"), ("n", "json"), ("v", "text")] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(col) && l.contains(ty)),
            "{col} {ty}: {text}"
        );
    }

    let url = format!("file://{}/sales_*", dir.display());
    let plan = w.plan(&url, &dst.url, "[load]\nchunk_rows = 300\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let row = d
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), bool_and(v = 'value ' || id AND (n->>'x')::int = id) FROM sales",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3000);
    assert_eq!(row.get::<_, i64>(1), 3000);
    assert_eq!(row.get::<_, i32>(2), 0);
    assert_eq!(row.get::<_, i32>(3), 2999);
    assert!(row.get::<_, bool>(4));
    // The plain file splits into line ranges of 300 records; compressed files are one chunk.
    let chunks: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 4 + 1 + 1);
}

#[tokio::test]
async fn a_killed_jsonl_load_resumes_exactly_once() {
    use std::time::{Duration, Instant};
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("events.jsonl");
    let mut text = String::with_capacity(40 << 20);
    for i in 0..600_000u32 {
        text.push_str(&format!(
            "{{\"id\": {i}, \"kind\": \"k{}\", \"payload\": {{\"n\": {i}}}}}\n",
            i % 7
        ));
    }
    std::fs::write(&file, &text).unwrap();
    let plan = w.plan(
        &file_url(&file),
        &dst.url,
        "[load]\nchunk_rows = 20000\nparallelism = 2\n",
    );
    let plan = plan.to_str().unwrap();
    let mut child = w.command(&["run", "-q", plan]).spawn().unwrap();
    let d = dst.client().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("decant ended ({status}) before it could be killed: make the file larger");
        }
        let n: i64 = d
            .query_one("SELECT count(*) FROM _decant_chunks", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if n >= 3 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "no chunk committed in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(before < 30, "killed before the end: {before} of 30 chunks");
    assert_success(&w.decant(&["run", "-q", plan]));
    let row = d
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), sum((payload->>'n')::bigint - id) FROM events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 600_000);
    assert_eq!(row.get::<_, i64>(1), 600_000);
    assert_eq!((row.get::<_, i32>(2), row.get::<_, i32>(3)), (0, 599_999));
    let chunks: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 30);
    assert!(rejects(&w).is_empty());
}

#[test]
fn the_example_json_plan_runs_into_sqlite() {
    let w = Workdir::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::create_dir(w.path().join("examples")).unwrap();
    for f in ["json-plan.toml", "orders.jsonl"] {
        std::fs::copy(
            format!("{root}/examples/{f}"),
            w.path().join("examples").join(f),
        )
        .unwrap();
    }
    assert_success(&w.decant(&["run", "-q", "examples/json-plan.toml"]));
    let conn = rusqlite::Connection::open(w.path().join("orders-json.db")).unwrap();
    let rows: Vec<String> = conn
        .prepare(
            "SELECT id || '|' || coalesce(city, '<null>') || '|' || amount || '|' || ordered || '|' || \
             paid || '|' || coalesce(items, '<null>') || '|' || coalesce(note, '<null>') \
             FROM orders ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[0].starts_with("1|Oslo|12.5"), "{rows:?}");
    assert!(
        rows[0].contains("[{\"qty\":2,\"sku\":\"A-1\"}]")
            || rows[0].contains("[{\"sku\":\"A-1\",\"qty\":2}]"),
        "{rows:?}"
    );
    assert!(rows[2].starts_with("3|<null>|0.99"), "{rows:?}");
    assert!(rows[2].ends_with("said \"urgent\""), "{rows:?}");
}

#[tokio::test]
async fn a_nul_byte_bound_for_postgres_text_or_jsonb_is_quarantined() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("notes.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id": 1, "note": "plain", "doc": {"k": "v"}}"#,
            "\n",
            r#"{"id": 2, "note": "a\u0000b", "doc": {"k": "v"}}"#,
            "\n",
            r#"{"id": 3, "note": "ok", "doc": {"k": "x\u0000"}}"#,
            "\n",
            r#"{"id": 4, "note": "an escaped \\u0000 is text", "doc": {"k": "\\u0000"}}"#,
            "\n",
        ),
    )
    .unwrap();
    let plan = w.plan(&file_url(&file), &dst.url, "[load]\nmax_rejects = 10\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    assert_eq!(
        rows(&d, "notes", "id, note, doc::text", "id").await,
        [
            r#"1|plain|{"k": "v"}"#,
            r#"4|an escaped \u0000 is text|{"k": "\\u0000"}"#
        ]
    );
    let quarantined = rejects(&w);
    let got: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, ..)| (loc.as_str(), rule.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("notes.jsonl:2", "nul_byte(note)"),
            ("notes.jsonl:3", "nul_byte(doc)")
        ]
    );
    assert_eq!(
        quarantined[1].3,
        r#"{"id": 3, "note": "ok", "doc": {"k": "x\u0000"}}"#
    );
    assert_eq!(count(&d, "notes").await as usize + quarantined.len(), 4);
}

#[tokio::test]
async fn numbers_a_double_would_round_are_quarantined_never_loaded_rounded() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("big.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"id\": 1, \"n\": 12.5, \"note\": \"12345678901234567890123 in text is fine\"}\n",
            "{\"id\": 2, \"n\": 12345678901234567890123, \"note\": \"x\"}\n",
            "{\"id\": 3, \"n\": 0.30000000000000004, \"note\": \"a double as a program prints it\"}\n",
            "{\"id\": 4, \"n\": 0.1000000000000000055511151231257827, \"note\": \"y\"}\n",
            "{\"id\": 5, \"n\": 18446744073709551615, \"note\": \"u64 max\"}\n",
            "{\"id\": 6, \"n\": 394301.33835633675, \"note\": \"a parser off by an ulp would change it\"}\n",
        ),
    )
    .unwrap();
    let plan = w.plan(&file_url(&file), &dst.url, "[load]\nmax_rejects = 10\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    assert_eq!(
        rows(&d, "big", "id, n::text", "id").await,
        [
            "1|12.5",
            "3|0.30000000000000004",
            "5|18446744073709551615",
            "6|394301.33835633675"
        ]
    );
    let quarantined = rejects(&w);
    let got: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, ..)| (loc.as_str(), rule.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("big.jsonl:2", "inexact_number"),
            ("big.jsonl:4", "inexact_number")
        ]
    );
    assert!(
        quarantined[0].2.contains("12345678901234567890123"),
        "{quarantined:?}"
    );
    // The raw record is kept whole, digits and all, for a fix and a retry.
    assert!(
        quarantined[1]
            .3
            .contains("0.1000000000000000055511151231257827")
    );
}
