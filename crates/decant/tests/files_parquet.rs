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
