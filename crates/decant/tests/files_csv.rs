//! CSV/TSV files → PostgreSQL: inferred and pinned types, dialects, encodings, compression,
//! globs, byte-range chunks, and the quarantine. Every case counts loaded + quarantined =
//! records in the file.

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

#[tokio::test]
async fn csv_types_are_inferred_and_values_land_exactly() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let csv = w.path().join("people.csv");
    // A BOM, CRLF line ends, quoted delimiters, doubled quotes, a line break inside quotes,
    // NULL as an unquoted empty field and an empty string as a quoted one.
    std::fs::write(
        &csv,
        "\u{feff}id,big,amount,name,born,seen,active,code,note\r\n\
         1,3000000000,12.50,\"Smith, Ann\",1980-01-31,2024-01-01 10:00:00,true,007,\"said \"\"hi\"\"\"\r\n\
         2,4,-0.5,Bob,1990-12-01,2024-01-02 11:30:00.25,false,010,\"two\nlines\"\r\n\
         3,5,1e3,Ç,,2024-01-03 00:00:00,t,011,\"\"\r\n\
         4,6,7,,2000-02-29,,f,012,\r\n",
    )
    .unwrap();
    let out = w.decant(&["inspect", &file_url(&csv)]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("people"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("big") && l.contains("int64")),
        "{text}"
    );

    let plan = w.plan(&file_url(&csv), &dst.url, "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let want: Vec<(String, String)> = [
        ("id", "integer"),
        ("big", "bigint"),
        ("amount", "numeric"),
        ("name", "text"),
        ("born", "date"),
        ("seen", "timestamp(6) without time zone"),
        ("active", "boolean"),
        ("code", "text"),
        ("note", "text"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(column_types(&d, "people").await, want);
    let rows: Vec<String> = d
        .query(
            "SELECT concat_ws('|', id, big, amount, coalesce(name, '<null>'), born, seen, active, code, coalesce(note, '<null>')) FROM people ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        [
            "1|3000000000|12.50|Smith, Ann|1980-01-31|2024-01-01 10:00:00|t|007|said \"hi\"",
            "2|4|-0.5|Bob|1990-12-01|2024-01-02 11:30:00.25|f|010|two\nlines",
            "3|5|1000|Ç|2024-01-03 00:00:00|t|011|",
            "4|6|7|<null>|2000-02-29|f|012|<null>",
        ]
    );
    assert!(rejects(&w).is_empty());
}

#[tokio::test]
async fn malformed_records_go_to_the_quarantine_with_line_and_reason() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let csv = w.path().join("bad.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    f.write_all(b"id,name,amount\n").unwrap();
    f.write_all(b"1,ok,1.5\n").unwrap(); // line 2
    f.write_all(b"2,\"closed\"junk,2\n").unwrap(); // line 3: text after the closing quote
    f.write_all(b"3,too,many,fields\n").unwrap(); // line 4: wrong field count
    f.write_all(b"4,caf\xe9,4\n").unwrap(); // line 5: latin-1 byte in a UTF-8 file
    f.write_all(b"5,x,not a number\n").unwrap(); // line 6: unparsable for the pinned type
    f.write_all(b"\n").unwrap(); // line 7: blank, not a record
    f.write_all(b"6,\"multi\nline\",6\n").unwrap(); // lines 8-9: fine
    f.write_all(b"7,short\n").unwrap(); // line 10: too few fields
    f.write_all(b"8,fine,8\n").unwrap(); // line 11
    f.write_all(b"9,\"never closed,9\n10,x,10\n").unwrap(); // line 12: swallows to the end
    drop(f);
    // Lines 2-6, 8-9 (one record), 10, 11 and 12-13 (one record, the quote never closes).
    let records = 9;
    let plan = w.plan(
        &file_url(&csv),
        &dst.url,
        "[load]\nmax_rejects = 100\n[source.csv.columns]\namount = \"decimal(10,2)\"\n",
    );
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert_success(&out);
    let d = dst.client().await;
    let loaded = count(&d, "bad").await;
    let quarantined = rejects(&w);
    assert_eq!(loaded, 3, "rows 1, 6 and 8: {quarantined:?}");
    assert_eq!(loaded as usize + quarantined.len(), records);
    let by_line: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, ..)| (loc.as_str(), rule.as_str()))
        .collect();
    assert_eq!(
        by_line,
        [
            ("bad.csv:10", "malformed_record"),
            ("bad.csv:12", "malformed_record"),
            ("bad.csv:3", "malformed_record"),
            ("bad.csv:4", "malformed_record"),
            ("bad.csv:5", "invalid_encoding"),
            ("bad.csv:6", "bad_value(amount)"),
        ]
    );
    let reason = |loc: &str| {
        quarantined
            .iter()
            .find(|r| r.0 == loc)
            .map(|r| (r.2.clone(), r.3.clone()))
            .unwrap()
    };
    assert!(reason("bad.csv:3").0.contains("follows the closing quote"));
    assert_eq!(reason("bad.csv:4").0, "expected 3 fields, found 4");
    assert_eq!(reason("bad.csv:4").1, "3,too,many,fields");
    assert!(
        reason("bad.csv:5").0.contains("invalid UTF-8"),
        "{:?}",
        reason("bad.csv:5")
    );
    assert!(
        reason("bad.csv:6").0.contains("does not fit decimal(10,2)"),
        "{:?}",
        reason("bad.csv:6")
    );
    assert!(reason("bad.csv:12").0.contains("unbalanced quote"));
    assert_eq!(reason("bad.csv:12").1, "9,\"never closed,9\n10,x,10");
    let ids: Vec<i32> = d
        .query("SELECT id FROM bad ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 6, 8]);
}

#[tokio::test]
async fn a_nul_byte_bound_for_postgres_text_is_quarantined_and_the_rest_loads() {
    let w = Workdir::new();
    let csv = w.path().join("notes.csv");
    std::fs::write(&csv, "id,note\n1,plain\n2,\"a\0b\"\n3,ok\n4,c\0\n5,last\n").unwrap();
    let dst = PgTestDb::create().await;
    let plan = w.plan(&file_url(&csv), &dst.url, "[load]\nmax_rejects = 10\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let loaded: Vec<String> = d
        .query("SELECT id || '|' || note FROM notes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(loaded, ["1|plain", "3|ok", "5|last"]);
    let quarantined = rejects(&w);
    let got: Vec<(&str, &str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, _, record)| (loc.as_str(), rule.as_str(), record.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("notes.csv:3", "nul_byte(note)", "2,\"a\0b\""),
            ("notes.csv:5", "nul_byte(note)", "4,c\0"),
        ]
    );
    assert!(
        quarantined[0].2.contains("NUL byte (0x00) at byte 1"),
        "{quarantined:?}"
    );
    // Loaded + quarantined = the records in the file.
    assert_eq!(loaded.len() + quarantined.len(), 5);

    // A policy still decides for the whole column: `coerce` loads every record, NULs removed.
    let w = Workdir::new();
    let dst = PgTestDb::create().await;
    let plan = w.plan(
        &file_url(&csv),
        &dst.url,
        "[policies]\nnul_byte = \"coerce\"\n",
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let loaded: Vec<String> = d
        .query("SELECT id || '|' || note FROM notes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(loaded, ["1|plain", "2|ab", "3|ok", "4|c", "5|last"]);
    assert!(rejects(&w).is_empty());
}

#[tokio::test]
async fn one_reject_too_many_fails_the_job_and_says_how_to_go_on() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let csv = w.path().join("t.csv");
    std::fs::write(&csv, "a,b\n1,2\n3\n").unwrap();
    let plan = w.plan(&file_url(&csv), &dst.url, "");
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("max_rejects"), "{err}");
    let d = dst.client().await;
    assert_eq!(count(&d, "t").await, 0, "the chunk did not commit");
}

#[tokio::test]
async fn a_glob_of_plain_gzip_and_zstd_files_is_one_table() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let dir = w.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let part = |from: u32| -> String {
        let mut s = String::from("id,v\n");
        for i in from..from + 1000 {
            s.push_str(&format!("{i},value {i}\n"));
        }
        s
    };
    std::fs::write(dir.join("sales_1.csv"), part(0)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.join("sales_2.csv.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(part(1000).as_bytes()).unwrap();
    gz.finish().unwrap();
    std::fs::write(
        dir.join("sales_3.csv.zst"),
        zstd::encode_all(part(2000).as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let url = format!("file://{}/sales_*", dir.display());
    let plan = w.plan(&url, &dst.url, "[load]\nchunk_rows = 300\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let row = d
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), bool_and(v = 'value ' || id) FROM sales",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3000);
    assert_eq!(row.get::<_, i64>(1), 3000);
    assert_eq!(row.get::<_, i32>(2), 0);
    assert_eq!(row.get::<_, i32>(3), 2999);
    assert!(row.get::<_, bool>(4));
    // The plain file splits into byte ranges of 300 records; compressed files are one chunk.
    let chunks: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 4 + 1 + 1);
}

#[tokio::test]
async fn latin1_tsv_with_decimal_comma_and_day_first_dates() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let tsv = w.path().join("prix.tsv");
    std::fs::write(
        &tsv,
        b"article\tprix\tdate\n\
          caf\xe9\t2,50\t31/01/2024\n\
          cr\xe8me br\xfbl\xe9e\t-10,75\t01/02/2024\n\
          vide\tNULL\tNULL\n",
    )
    .unwrap();
    let plan = w.plan(&file_url(&tsv), &dst.url, "");
    let plan_text = std::fs::read_to_string(&plan).unwrap()
        + "[source.csv]\nencoding = \"latin-1\"\ndecimal_comma = true\nnull = [\"NULL\"]\ndate_formats = [\"%d/%m/%Y\"]\n";
    std::fs::write(&plan, plan_text).unwrap();
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    assert_eq!(
        column_types(&d, "prix").await,
        [
            ("article".to_string(), "text".to_string()),
            ("prix".to_string(), "numeric".to_string()),
            ("date".to_string(), "date".to_string()),
        ]
    );
    let rows: Vec<String> = d
        .query(
            "SELECT concat_ws('|', article, coalesce(prix::text, '<null>'), coalesce(date::text, '<null>')) FROM prix ORDER BY article",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        [
            "café|2.50|2024-01-31",
            "crème brûlée|-10.75|2024-02-01",
            "vide|<null>|<null>"
        ]
    );
}

#[tokio::test]
async fn a_failed_chunk_resumes_without_reloading_committed_ranges() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let csv = w.path().join("big.csv");
    let mut text = String::from("id,v\n");
    for i in 1..=5000 {
        // Record 4321 holds a value that is no integer, of the same length as its fix.
        let v = if i == 4321 {
            "x".to_string()
        } else {
            "1".to_string()
        };
        text.push_str(&format!("{i},{v}\n"));
    }
    std::fs::write(&csv, &text).unwrap();
    let plan = w.plan(
        &file_url(&csv),
        &dst.url,
        "[load]\nchunk_rows = 500\nparallelism = 1\n[source.csv.columns]\nv = \"int32\"\n",
    );
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success(), "the bad record fails its chunk");
    let d = dst.client().await;
    let committed: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        (8..10).contains(&committed),
        "chunks before the bad one committed: {committed}"
    );
    std::fs::write(&csv, text.replace("4321,x\n", "4321,7\n")).unwrap();
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert_success(&out);
    let row = d
        .query_one("SELECT count(*), count(DISTINCT id), sum(v) FROM big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 5000);
    assert_eq!(row.get::<_, i64>(1), 5000);
    assert_eq!(row.get::<_, i64>(2), 4999 + 7);
    let chunks: i64 = d
        .query_one("SELECT count(*) FROM _decant_chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 10);
    assert!(rejects(&w).is_empty());
}

#[test]
fn the_example_files_plan_runs_into_sqlite() {
    let w = Workdir::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::create_dir(w.path().join("examples")).unwrap();
    for f in ["files-plan.toml", "orders.csv"] {
        std::fs::copy(
            format!("{root}/examples/{f}"),
            w.path().join("examples").join(f),
        )
        .unwrap();
    }
    assert_success(&w.decant(&["run", "-q", "examples/files-plan.toml"]));
    let conn = rusqlite::Connection::open(w.path().join("orders-copy.db")).unwrap();
    let rows: Vec<String> = conn
        .prepare(
            "SELECT id || '|' || customer || '|' || amount || '|' || ordered || '|' || \
             coalesce(shipped_at, '<null>') || '|' || paid || '|' || coalesce(note, '<null>') \
             FROM orders ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[0].starts_with("1|Ann Smith|12.5"), "{rows:?}");
    assert!(rows[1].contains("|<null>|0|<null>"), "{rows:?}");
    assert!(rows[2].contains("said \"urgent\""), "{rows:?}");
}

#[tokio::test]
async fn a_killed_csv_load_resumes_exactly_once() {
    use std::time::{Duration, Instant};
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let csv = w.path().join("events.csv");
    let mut text = String::with_capacity(40 << 20);
    text.push_str("id,kind,payload\n");
    for i in 0..600_000u32 {
        text.push_str(&format!("{i},k{},\"payload, {i}\"\n", i % 7));
    }
    std::fs::write(&csv, &text).unwrap();
    let plan = w.plan(
        &file_url(&csv),
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
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events",
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
}
