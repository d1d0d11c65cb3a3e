//! Files as targets: PostgreSQL (and SQLite) exported to CSV, JSON Lines and Parquet, read back
//! value by value; a CSV export loaded back through the CSV source; compression; a killed
//! export resumed exactly once; hostile table names and existing files refused.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn dir_url(path: &Path) -> String {
    format!("file://{}/", path.display())
}

/// Writes a plan whose target is `dir` with `file_opts` in `[target.file]`.
fn export_plan(w: &Workdir, source: &str, dir: &Path, file_opts: &str, extra: &str) -> PathBuf {
    let path = w.path().join("plan.toml");
    let text = format!(
        "name = \"export\"\n{extra}\n[source]\nurl = \"{source}\"\n[target]\nurl = \"{}\"\n[target.file]\n{file_opts}\n",
        dir_url(dir)
    );
    std::fs::write(&path, text).unwrap();
    path
}

const EVERY_TYPE: &str = "
CREATE TABLE everything (
  id integer PRIMARY KEY, b boolean, i2 smallint, i8 bigint, f4 real, f8 double precision,
  n numeric(12,2), nbig numeric, t text, vc varchar(10), by bytea, d date, tm time,
  ts timestamp, tstz timestamptz, iv interval, u uuid, j jsonb, tags text[]);
INSERT INTO everything VALUES
 (1, true, -32768, 9007199254740993, 1.5, 0.1, -1234567890.05, 123456789012345678901234567890.123456789,
  'plain', 'short', '\\x00ff10', '2024-02-29', '13:14:15.000016', '2024-01-02 03:04:05.123456',
  '2024-01-02 03:04:05.5+02', '1 year 2 months 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{\"k\": [1, \"x\\ny\"], \"n\": null}', ARRAY['a', 'b,c']),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, false, 7, -1, 'NaN', '-Infinity', 0.00, 0, '', '', '\\x', '1970-01-01', '00:00:00',
  '1969-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', '-1 days', '00000000-0000-0000-0000-000000000000',
  '[]', '{}'),
 (4, true, 1, 1, 1, 1, 1, 1, 'say \"hi\", then
leave', 'ünï', '\\x22', '0001-01-01', '23:59:59.999999', '9999-12-31 23:59:59', '2000-06-01 12:00:00-07:30',
  '0 seconds', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\"text\"', NULL);
";

/// Parses CSV as decant writes it: `"` quotes, `""` inside; an unquoted empty field is NULL.
fn parse_csv(text: &str) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut was_quoted) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' => {
                quoted = true;
                was_quoted = true;
            }
            ',' | '\n' if !quoted => {
                let f = std::mem::take(&mut field);
                row.push((was_quoted || !f.is_empty()).then_some(f));
                was_quoted = false;
                if c == '\n' {
                    rows.push(std::mem::take(&mut row));
                }
            }
            c => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "a record without line end"
    );
    rows
}

fn col<'a>(header: &[Option<String>], row: &'a [Option<String>], name: &str) -> Option<&'a str> {
    let i = header
        .iter()
        .position(|h| h.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no column {name}"));
    row[i].as_deref()
}

#[tokio::test]
async fn every_postgres_type_exports_to_csv_with_lossless_text() {
    let src = PgTestDb::create().await;
    src.client().await.batch_execute(EVERY_TYPE).await.unwrap();
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(&w, &src.url, &out, "format = \"csv\"", "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let text = std::fs::read_to_string(out.join("everything.csv")).unwrap();
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 5, "header and four records:\n{text}");
    let (h, r) = (&rows[0], &rows[1..]);
    let v = |row: usize, name: &str| col(h, &r[row], name);
    assert_eq!(v(0, "b"), Some("true"));
    assert_eq!(v(0, "i8"), Some("9007199254740993"));
    assert_eq!(v(0, "f8"), Some("0.1"));
    assert_eq!(v(0, "f4"), Some("1.5"));
    assert_eq!(v(0, "n"), Some("-1234567890.05"));
    assert_eq!(
        v(0, "nbig"),
        Some("123456789012345678901234567890.123456789")
    );
    assert_eq!(v(0, "by"), Some("\\x00ff10"));
    assert_eq!(v(0, "d"), Some("2024-02-29"));
    assert_eq!(v(0, "tm"), Some("13:14:15.000016"));
    assert_eq!(v(0, "ts"), Some("2024-01-02T03:04:05.123456"));
    assert_eq!(v(0, "tstz"), Some("2024-01-02T01:04:05.500000+00:00"));
    assert_eq!(v(0, "iv"), Some("P1Y2M3DT4H5M6.500000S"));
    assert_eq!(v(0, "u"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    let j: serde_json::Value = serde_json::from_str(v(0, "j").unwrap()).unwrap();
    assert_eq!(j, serde_json::json!({"k": [1, "x\ny"], "n": null}));
    assert_eq!(v(0, "tags"), Some("[\"a\",\"b,c\"]"));
    // Row 2: every NULL is an unquoted empty field.
    assert!(
        h.iter()
            .skip(1)
            .all(|c| v(1, c.as_deref().unwrap()).is_none())
    );
    // Row 3: empty strings are quoted, so they stay distinct from NULL.
    assert_eq!(v(2, "t"), Some(""));
    assert_eq!(v(2, "vc"), Some(""));
    assert_eq!(v(2, "by"), Some("\\x"));
    assert_eq!(v(2, "f4"), Some("NaN"));
    assert_eq!(v(2, "f8"), Some("-Infinity"));
    assert_eq!(v(2, "n"), Some("0.00"), "decimals keep their scale");
    assert_eq!(v(2, "ts"), Some("1969-12-31T23:59:59.999999"));
    assert_eq!(v(3, "t"), Some("say \"hi\", then\nleave"));
    assert_eq!(v(3, "vc"), Some("ünï"));
    assert_eq!(v(3, "tstz"), Some("2000-06-01T19:30:00.000000+00:00"));
    assert_eq!(v(3, "d"), Some("0001-01-01"));
    assert!(!out.join("_decant_parts").join("everything").exists());
}

#[tokio::test]
async fn every_postgres_type_exports_to_json_lines() {
    let src = PgTestDb::create().await;
    src.client().await.batch_execute(EVERY_TYPE).await.unwrap();
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(&w, &src.url, &out, "format = \"jsonl\"", "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let text = std::fs::read_to_string(out.join("everything.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 4);
    let r = &rows[0];
    assert_eq!(r["id"], serde_json::json!(1));
    assert_eq!(r["b"], serde_json::json!(true));
    assert_eq!(r["i2"], serde_json::json!(-32768));
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("\"i8\":9007199254740993"),
        "an int64 beyond 2^53 is written as an exact JSON number"
    );
    assert_eq!(r["f8"], serde_json::json!(0.1));
    assert_eq!(r["n"], serde_json::json!("-1234567890.05"));
    assert_eq!(
        r["nbig"],
        serde_json::json!("123456789012345678901234567890.123456789")
    );
    assert_eq!(r["by"], serde_json::json!("\\x00ff10"));
    assert_eq!(
        r["tstz"],
        serde_json::json!("2024-01-02T01:04:05.500000+00:00")
    );
    assert_eq!(r["j"], serde_json::json!({"k": [1, "x\ny"], "n": null}));
    assert_eq!(r["tags"], serde_json::json!(["a", "b,c"]));
    assert_eq!(rows[1]["t"], serde_json::Value::Null);
    assert_eq!(
        rows[1].as_object().unwrap().len(),
        19,
        "NULLs are kept as keys"
    );
    assert_eq!(rows[2]["t"], serde_json::json!(""));
    assert_eq!(rows[2]["f4"], serde_json::json!("NaN"));
    assert_eq!(rows[2]["n"], serde_json::json!("0.00"));
    assert_eq!(rows[2]["j"], serde_json::json!([]));
    assert_eq!(rows[3]["j"], serde_json::json!("text"));
    assert_eq!(rows[3]["t"], serde_json::json!("say \"hi\", then\nleave"));
}

#[tokio::test]
async fn every_postgres_type_exports_to_parquet_with_arrow_types() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
    use arrow_schema::{DataType, TimeUnit};
    let src = PgTestDb::create().await;
    src.client().await.batch_execute(EVERY_TYPE).await.unwrap();
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(&w, &src.url, &out, "format = \"parquet\"", "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let f = std::fs::File::open(out.join("everything.parquet")).unwrap();
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .with_batch_size(1024)
        .build()
        .unwrap();
    let batch = reader.next().unwrap().unwrap();
    assert!(reader.next().is_none());
    assert_eq!(batch.num_rows(), 4);
    let schema = batch.schema();
    let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("n"), DataType::Decimal128(12, 2));
    assert_eq!(
        ty("tstz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ty("ts"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(ty("by"), DataType::Binary);
    assert_eq!(ty("i8"), DataType::Int64);
    assert_eq!(ty("iv"), DataType::Utf8, "intervals as ISO 8601 text");
    assert_eq!(
        schema
            .field_with_name("n")
            .unwrap()
            .metadata()
            .get("decant.logical_type")
            .map(String::as_str),
        Some("decimal(12,2)")
    );
    let c = |n: &str| batch.column(schema.index_of(n).unwrap()).clone();
    assert_eq!(
        c("n").as_primitive::<Decimal128Type>().value(0),
        -123_456_789_005
    );
    assert_eq!(
        c("i8").as_primitive::<Int64Type>().value(0),
        9_007_199_254_740_993
    );
    assert_eq!(
        c("tstz")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_704_157_445_500_000
    );
    assert_eq!(c("by").as_binary::<i32>().value(0), [0x00, 0xff, 0x10]);
    assert_eq!(c("by").as_binary::<i32>().value(2), [] as [u8; 0]);
    assert!(c("by").is_null(1));
    assert_eq!(c("t").as_string::<i32>().value(2), "");
    assert!(c("t").is_null(1));
    assert_eq!(
        c("nbig").as_string::<i32>().value(0),
        "123456789012345678901234567890.123456789"
    );
    assert_eq!(c("iv").as_string::<i32>().value(0), "P1Y2M3DT4H5M6.500000S");
    assert_eq!(
        c("u").as_fixed_size_binary().value(3),
        [0xff; 16],
        "uuids as 16 bytes"
    );
}

#[tokio::test]
async fn a_csv_export_loads_back_through_the_csv_source_unchanged() {
    let src = PgTestDb::create().await;
    let s = src.client().await;
    s.batch_execute(EVERY_TYPE).await.unwrap();
    // The CSV source reads every type but intervals and arrays back from text.
    s.batch_execute("ALTER TABLE everything DROP COLUMN iv, DROP COLUMN tags, DROP COLUMN nbig")
        .await
        .unwrap();
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(&w, &src.url, &out, "format = \"csv\"", "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));

    let dst = PgTestDb::create().await;
    let back = w.path().join("back.toml");
    std::fs::write(
        &back,
        format!(
            "name = \"back\"\n[source]\nurl = \"file://{}\"\n[source.csv.columns]\n\
             id = \"int32\"\nb = \"bool\"\ni2 = \"int16\"\ni8 = \"int64\"\nf4 = \"float32\"\n\
             f8 = \"float64\"\nn = \"decimal(12,2)\"\nt = \"text\"\nvc = \"varchar(10)\"\n\
             by = \"bytes\"\nd = \"date\"\ntm = \"time(6)\"\nts = \"timestamp(6)\"\n\
             tstz = \"timestamptz(6)\"\nu = \"uuid\"\nj = \"json\"\n\
             [target]\nurl = \"{}\"\n\
             [tables.everything.columns.j]\ntype = \"jsonb\"\n",
            out.join("everything.csv").display(),
            dst.url
        ),
    )
    .unwrap();
    assert_success(&w.decant(&["run", "-q", back.to_str().unwrap()]));
    let d = dst.client().await;
    let original = pg_digest(&s, "everything", "id").await;
    let loaded = pg_digest(&d, "everything", "id").await;
    assert_eq!(original.0, 4);
    assert_eq!(original, loaded, "the round trip changed a value");
}

fn read_gzip(path: &Path) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[tokio::test]
async fn compressed_exports_join_their_chunks_and_read_back() {
    let src = PgTestDb::create().await;
    let s = src.client().await;
    s.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g;",
    )
    .await
    .unwrap();
    let w = Workdir::new();
    let load = "[load]\nchunk_rows = 1000\nparallelism = 2\n";

    // CSV + gzip, one file per table: five parts joined behind one header.
    let out = w.path().join("gz");
    let plan = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"csv\"\ncompression = \"gzip\"",
        load,
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let rows = parse_csv(&read_gzip(&out.join("items.csv.gz")));
    assert_eq!(rows[0], [Some("id".to_string()), Some("name".to_string())]);
    assert_eq!(rows.len(), 5001);
    let ids: Vec<i64> = rows[1..]
        .iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=5000).collect::<Vec<_>>(),
        "parts joined in key order"
    );
    assert!(!out.join("_decant_parts").join("items").exists());

    // JSON Lines + zstd, one file per chunk: each part a complete zstd file.
    let out = w.path().join("zst");
    let plan = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"jsonl\"\ncompression = \"zstd\"\nlayout = \"chunk\"",
        load,
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let mut parts: Vec<PathBuf> = std::fs::read_dir(out.join("items"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    assert_eq!(parts.len(), 5, "{parts:?}");
    assert!(
        parts
            .iter()
            .all(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
    );
    let mut n = 0;
    for p in &parts {
        let text =
            String::from_utf8(zstd::decode_all(std::fs::File::open(p).unwrap()).unwrap()).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["name"], serde_json::json!(format!("item {}", v["id"])));
            n += 1;
        }
    }
    assert_eq!(n, 5000);

    // Parquet + zstd: the pages say so.
    let out = w.path().join("pq");
    let plan = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"parquet\"\ncompression = \"zstd\"",
        load,
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    use parquet::file::reader::FileReader;
    let r = parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(out.join("items.parquet")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.metadata().file_metadata().num_rows(), 5000);
    assert_eq!(
        r.metadata().num_row_groups(),
        5,
        "one row group per joined part"
    );
    assert!(matches!(
        r.metadata().row_group(0).column(1).compression(),
        parquet::basic::Compression::ZSTD(_)
    ));
}

/// Ids of every record in the CSV part files of `dir` (each with a header).
fn part_ids(dir: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("part-") {
            continue;
        }
        let rows = parse_csv(&std::fs::read_to_string(&p).unwrap());
        ids.extend(
            rows[1..]
                .iter()
                .map(|r| r[0].as_deref().unwrap().parse::<i64>().unwrap()),
        );
    }
    ids
}

fn markers(out: &Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(out.join("_decant_chunks")) else {
        return 0;
    };
    jobs.flatten()
        .flat_map(|j| std::fs::read_dir(j.path()).into_iter().flatten().flatten())
        .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
        .filter(|m| m.path().extension().is_some_and(|e| e == "json"))
        .count()
}

/// Starts the export, kills it once `min` chunks committed, and returns how many had.
async fn kill_after(w: &Workdir, plan: &Path, out: &Path, min: usize) -> usize {
    let mut child = w
        .command(&["run", "-q", plan.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("decant ended ({status}) before it could be killed: make the table larger");
        }
        if markers(out) >= min {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "no chunk committed in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    markers(out)
}

async fn big_table() -> PgTestDb {
    let src = PgTestDb::create().await;
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text);
             INSERT INTO events SELECT g, 'k' || (g % 7), repeat('x', 40) || g
               FROM generate_series(1, 600000) g;",
        )
        .await
        .unwrap();
    src
}

#[tokio::test]
async fn a_killed_per_chunk_export_resumes_writing_every_row_once() {
    let src = big_table().await;
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"csv\"\nlayout = \"chunk\"",
        "[load]\nchunk_rows = 10000\nparallelism = 2\n",
    );
    let before = kill_after(&w, &plan, &out, 3).await;
    assert!(before < 60, "killed before the end: {before} of 60 chunks");
    // Whatever the kill interrupted is a temp file, never a part file.
    let parts_before = std::fs::read_dir(out.join("events")).unwrap().count();
    assert!(parts_before >= before, "every marker has its file");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let ids = part_ids(&out.join("events"));
    assert_eq!(ids.len(), 600_000, "every row once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 600_000);
    assert_eq!(markers(&out), 60);
    let leftovers: Vec<String> = std::fs::read_dir(out.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("part-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[tokio::test]
async fn a_killed_per_table_export_shows_no_file_until_it_is_complete() {
    let src = big_table().await;
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"csv\"",
        "[load]\nchunk_rows = 10000\nparallelism = 2\n",
    );
    let before = kill_after(&w, &plan, &out, 3).await;
    assert!(before < 60, "killed before the end: {before} of 60 chunks");
    assert!(
        !out.join("events.csv").exists(),
        "the table's file appears only complete"
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let rows = parse_csv(&std::fs::read_to_string(out.join("events.csv")).unwrap());
    assert_eq!(rows[0][0].as_deref(), Some("id"));
    let ids: Vec<i64> = rows[1..]
        .iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=600_000).collect::<Vec<_>>(),
        "every row once, in key order"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

#[tokio::test]
async fn hostile_table_names_are_refused_and_nothing_leaves_the_directory() {
    let src = PgTestDb::create().await;
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE \"../escape\" (id int); INSERT INTO \"../escape\" VALUES (1);
             CREATE TABLE plain (id int); INSERT INTO plain VALUES (1);",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let out = w.path().join("deep").join("out");
    std::fs::create_dir_all(&out).unwrap();
    let plan = export_plan(&w, &src.url, &out, "format = \"csv\"", "");
    let res = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!res.status.success());
    assert!(
        stderr(&res).contains("outside the target directory"),
        "{}",
        stderr(&res)
    );
    assert!(!w.path().join("deep").join("escape.csv").exists());
    // A rename into another directory is refused the same way.
    let plan = w.path().join("rename.toml");
    std::fs::write(
        &plan,
        format!(
            "[source]\nurl = \"{}\"\ninclude = [\"plain\"]\n[target]\nurl = \"{}\"\n\
             [target.file]\nformat = \"csv\"\n[tables.plain]\nrename = \"/tmp/evil\"\n",
            src.url,
            dir_url(&out)
        ),
    )
    .unwrap();
    let res = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!res.status.success());
    assert!(stderr(&res).contains("\"/tmp/evil\""), "{}", stderr(&res));
    assert!(!Path::new("/tmp/evil.csv").exists());
}

#[tokio::test]
async fn an_existing_file_is_replaced_only_when_the_plan_says_so() {
    let src = PgTestDb::create().await;
    let s = src.client().await;
    s.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    let w = Workdir::new();
    let out = w.path().join("out");
    let plan = export_plan(&w, &src.url, &out, "format = \"csv\"", "");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    s.batch_execute("INSERT INTO t VALUES (3)").await.unwrap();
    let res = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(
        !res.status.success(),
        "the second export must not overwrite"
    );
    assert!(stderr(&res).contains("exists"), "{}", stderr(&res));
    let append = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"csv\"",
        "[load]\nif_exists = \"append\"\n",
    );
    let res = w.decant(&["run", "-q", append.to_str().unwrap()]);
    assert!(
        stderr(&res).contains("cannot be appended"),
        "{}",
        stderr(&res)
    );
    let drop = export_plan(
        &w,
        &src.url,
        &out,
        "format = \"csv\"",
        "[load]\nif_exists = \"drop\"\n",
    );
    assert_success(&w.decant(&["run", "-q", drop.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(out.join("t.csv")).unwrap(),
        "id\n1\n2\n3\n"
    );
}

#[test]
fn a_sqlite_database_exports_to_json_lines_by_url_pattern() {
    let w = Workdir::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let db = w.path().join("shop.db");
    std::fs::copy(format!("{root}/examples/shop.db"), &db).unwrap();
    let out = w.path().join("out");
    let plan = w.plan(
        &format!("sqlite://{}", db.display()),
        &format!("file://{}/*.jsonl.gz", out.display()),
        "",
    );
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!tables.is_empty());
    for t in &tables {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .unwrap();
        let text = read_gzip(&out.join(format!("{t}.jsonl.gz")));
        assert_eq!(text.lines().count() as i64, n, "{t}");
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
}

#[test]
fn the_example_export_plan_runs() {
    let w = Workdir::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::create_dir(w.path().join("examples")).unwrap();
    for f in ["export-plan.toml", "shop.db"] {
        std::fs::copy(
            format!("{root}/examples/{f}"),
            w.path().join("examples").join(f),
        )
        .unwrap();
    }
    assert_success(&w.decant(&["run", "-q", "examples/export-plan.toml"]));
    let rows =
        parse_csv(&std::fs::read_to_string(w.path().join("examples/export/orders.csv")).unwrap());
    let conn = rusqlite::Connection::open(w.path().join("examples/shop.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows.len() as i64, n + 1, "header and every order");
    // if_exists = "drop" in the example: a second run replaces the files.
    assert_success(&w.decant(&["run", "-q", "examples/export-plan.toml"]));
}
