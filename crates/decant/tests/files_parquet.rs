//! Parquet files → PostgreSQL: the schema from the file's metadata, one chunk per row group,
//! every value (ints, floats, decimals, strings, timestamps, NULLs) landing exactly.

mod common;
use std::sync::Arc;

use arrow_array::{
    Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use common::*;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const ROWS: i64 = 10;
const TS0: i64 = 1_700_000_000_000_000;

fn small(i: i64) -> Option<i32> {
    (i % 3 != 0).then_some(i as i32 * 10)
}
fn float(i: i64) -> Option<f64> {
    (i != 5).then_some(i as f64 + 0.25)
}
fn dec(i: i64) -> Option<i128> {
    (i != 7).then_some(i as i128 * 1000 + 5)
}
fn text(i: i64) -> Option<String> {
    (i != 2).then(|| format!("név {i}, \"q\""))
}
fn ts(i: i64) -> Option<i64> {
    (i != 4).then_some(TS0 + i * 1_500_000)
}
fn tz(i: i64) -> Option<i64> {
    (i != 9).then_some(TS0 / 1000 + i * 250)
}

/// Writes rows `0..ROWS` as row groups of 4, 4 and 2 rows.
fn write_parquet(path: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("small", DataType::Int32, true),
        Field::new("f", DataType::Float64, true),
        Field::new("d", DataType::Decimal128(12, 2), true),
        Field::new("s", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "tz",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    for range in [0..4, 4..8, 8..ROWS] {
        let ids: Vec<i64> = range.collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(
                    ids.iter().map(|i| i + 1).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    ids.iter().map(|&i| small(i)).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    ids.iter().map(|&i| float(i)).collect::<Vec<_>>(),
                )),
                Arc::new(
                    Decimal128Array::from(ids.iter().map(|&i| dec(i)).collect::<Vec<_>>())
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(
                    ids.iter().map(|&i| text(i)).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMicrosecondArray::from(
                    ids.iter().map(|&i| ts(i)).collect::<Vec<_>>(),
                )),
                Arc::new(
                    TimestampMillisecondArray::from(ids.iter().map(|&i| tz(i)).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.flush().unwrap(); // one row group per batch
    }
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_row_groups_load_every_value_into_postgres() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("events.parquet");
    write_parquet(&file);
    let url = format!("file://{}", file.display());

    let out = w.decant(&["inspect", &url]);
    assert_success(&out);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("events"), "{listing}");

    let plan = w.plan(&url, &dst.url, "[load]\nbatch_rows = 3\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;

    let types: Vec<(String, String)> = d
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END \
             FROM pg_attribute WHERE attrelid = 'events'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "small", "f", "d", "s", "ts", "tz"]);
    assert_eq!(types[0].1, "bigint not null", "{types:?}");
    assert_eq!(types[1].1, "integer", "{types:?}");
    assert_eq!(types[2].1, "double precision", "{types:?}");
    assert_eq!(types[3].1, "numeric(12,2)", "{types:?}");
    assert_eq!(types[4].1, "text", "{types:?}");
    assert!(types[5].1.starts_with("timestamp"), "{types:?}");
    assert!(types[5].1.contains("without time zone"), "{types:?}");
    assert!(types[6].1.contains("with time zone"), "{types:?}");

    let rows = d
        .query(
            "SELECT id, small, f, d::text, s, \
                    (extract(epoch FROM ts) * 1000000)::bigint, \
                    (extract(epoch FROM tz) * 1000)::bigint \
             FROM events ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, ROWS);
    for (i, r) in (0..ROWS).zip(&rows) {
        assert_eq!(r.get::<_, i64>(0), i + 1);
        assert_eq!(r.get::<_, Option<i32>>(1), small(i), "small of row {i}");
        assert_eq!(r.get::<_, Option<f64>>(2), float(i), "f of row {i}");
        let want_d = dec(i).map(|v| format!("{}.{:02}", v / 100, v % 100));
        assert_eq!(r.get::<_, Option<String>>(3), want_d, "d of row {i}");
        assert_eq!(r.get::<_, Option<String>>(4), text(i), "s of row {i}");
        assert_eq!(r.get::<_, Option<i64>>(5), ts(i), "ts of row {i}");
        assert_eq!(r.get::<_, Option<i64>>(6), tz(i), "tz of row {i}");
    }

    let chunks: Vec<i64> = d
        .query(
            "SELECT row_count FROM _decant_chunks ORDER BY row_count DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(chunks, [4, 4, 2], "one chunk per row group");
}

/// A plan from `source` into `target` with `[source.parquet]` and `[load]` bodies.
fn parquet_plan(w: &Workdir, source: &str, target: &str, parquet: &str, load: &str) -> String {
    let path = w.path().join("plan.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"test\"\n[load]\n{load}\n[source]\nurl = \"{source}\"\n[source.parquet]\n{parquet}\n[target]\nurl = \"{target}\"\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// Six rows in row groups of 3 and 3: numbers too big for int32, text that should be dates and
/// decimals, and a NUL byte, among rows that fit.
fn write_pinned(path: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int64, true),
        Field::new("day", DataType::Utf8, true),
        Field::new("amount", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
    ]));
    type Row = (
        i64,
        Option<i64>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let rows: [Row; 6] = [
        (1, Some(1), Some("2024-01-31"), Some("12.50"), Some("a")),
        (
            2,
            Some(3_000_000_000),
            Some("2024-01-31"),
            Some("1"),
            Some("b"),
        ),
        (3, None, Some("2024-02-30"), Some("2"), None),
        (4, Some(4), Some("2024-03-01"), Some("1.234"), Some("c")),
        (5, Some(5), None, None, Some("x\0y")),
        (6, Some(-6), Some("2024-12-31"), Some("-0.5"), None),
    ];
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    for group in rows.chunks(3) {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(
                    group.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    group.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    group.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    group.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    group.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.flush().unwrap(); // one row group per batch
    }
    w.close().unwrap();
}

#[tokio::test]
async fn pinned_types_convert_and_rows_that_do_not_fit_are_quarantined_with_their_row() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("pinned.parquet");
    write_pinned(&file);
    let url = format!("file://{}", file.display());
    let pins = "columns = { n = \"int32\", day = \"date\", amount = \"decimal(8,2)\" }";
    // Batches of 2 rows: a row's place counts the batches before it in its row group.
    let plan = parquet_plan(&w, &url, &dst.url, pins, "max_rejects = 10\nbatch_rows = 2");
    assert_success(&w.decant(&["run", "-q", &plan]));
    let d = dst.client().await;

    let types: Vec<String> = d
        .query(
            "SELECT attname::text || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'pinned'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "id bigint",
            "n integer",
            "day date",
            "amount numeric(8,2)",
            "note text"
        ]
    );
    let loaded: Vec<String> = d
        .query(
            "SELECT concat_ws('|', id, n, day, amount, coalesce(note, '<null>')) FROM pinned ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        loaded,
        ["1|1|2024-01-31|12.50|a", "6|-6|2024-12-31|-0.50|<null>"]
    );

    let quarantined = rejects(&w);
    let got: Vec<(&str, &str, &str)> = quarantined
        .iter()
        .map(|(loc, rule, reason, _)| (loc.as_str(), rule.as_str(), reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "pinned.parquet: row group 0, row 1 (file row 1)",
                "bad_value(n)",
                "n (int32): 3000000000 is out of range for int32"
            ),
            (
                "pinned.parquet: row group 0, row 2 (file row 2)",
                "bad_value(day)",
                "day (date): `2024-02-30` is not a date"
            ),
            (
                "pinned.parquet: row group 1, row 0 (file row 3)",
                "bad_value(amount)",
                "amount (decimal(8,2)): `1.234` does not fit decimal(8,2) (it would be rounded)"
            ),
            (
                "pinned.parquet: row group 1, row 1 (file row 4)",
                "nul_byte(note)",
                "note: a NUL byte (0x00) at byte 1 of the value, which PostgreSQL text and jsonb cannot hold; set policies.nul_byte = \"coerce\" (remove it) or \"null\" to load the record"
            ),
        ]
    );
    // The row as the file holds it, every column.
    assert_eq!(
        quarantined[0].3,
        r#"{"id": "2", "n": "3000000000", "day": "2024-01-31", "amount": "1", "note": "b"}"#
    );
    assert_eq!(
        quarantined[1].3,
        r#"{"id": "3", "n": null, "day": "2024-02-30", "amount": "2", "note": null}"#
    );
    // Loaded + quarantined = the rows in the file (the run's proof checked it too).
    assert_eq!(loaded.len() + quarantined.len(), 6);

    // A pinned column the file does not have is an error that names it.
    let w = Workdir::new();
    let plan = parquet_plan(&w, &url, &dst.url, "columns = { nope = \"int32\" }", "");
    let out = w.decant(&["run", "-q", &plan]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("source.parquet.columns.nope")
            && err.contains("(it has id, n, day, amount, note)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_directory_of_parquet_files_is_a_table_per_file() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let dir = w.path().join("exports");
    std::fs::create_dir(&dir).unwrap();
    write_parquet(&dir.join("events.parquet"));
    write_pinned(&dir.join("more.parquet"));
    std::fs::write(dir.join("README.md"), "not a table\n").unwrap();
    let url = format!("file://{}/", dir.display());
    // `more` holds a NUL byte: the one reject of the run.
    let plan = w.plan(&url, &dst.url, "[load]\nmax_rejects = 1\n");
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let d = dst.client().await;
    let counts = d
        .query_one(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM more)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (counts.get::<_, i64>(0), counts.get::<_, i64>(1)),
        (ROWS, 5)
    );
    let got: Vec<(String, String)> = rejects(&w)
        .into_iter()
        .map(|(loc, rule, ..)| (loc, rule))
        .collect();
    assert_eq!(
        got,
        [(
            "more.parquet: row group 1, row 1 (file row 4)".to_string(),
            "nul_byte(note)".to_string()
        )]
    );
}

#[tokio::test]
async fn a_date64_value_that_is_not_a_whole_day_is_quarantined_not_cut() {
    let dst = PgTestDb::create().await;
    let w = Workdir::new();
    let file = w.path().join("days.parquet");
    let day = 86_400_000i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("d", DataType::Date64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(arrow_array::Date64Array::from(vec![
                Some(day * 19_723),
                Some(day * 19_723 + 3_600_000),
                None,
            ])),
        ],
    )
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let url = format!("file://{}", file.display());
    let plan = parquet_plan(&w, &url, &dst.url, "", "max_rejects = 5");
    assert_success(&w.decant(&["run", "-q", &plan]));
    let loaded: Vec<String> = dst
        .client()
        .await
        .query(
            "SELECT concat_ws('|', id, coalesce(d::text, '<null>')) FROM days ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(loaded, ["1|2024-01-01", "3|<null>"]);
    let got: Vec<(String, String, String)> = rejects(&w)
        .into_iter()
        .map(|(loc, rule, reason, _)| (loc, rule, reason))
        .collect();
    assert_eq!(
        got,
        [(
            "days.parquet: row group 0, row 1 (file row 1)".to_string(),
            "bad_value(d)".to_string(),
            "d (date): the date64 value 1704070800000 ms is not a whole day, and a date cannot hold its time of day".to_string()
        )]
    );
}
