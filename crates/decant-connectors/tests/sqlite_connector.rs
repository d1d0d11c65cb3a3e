//! The SQLite connector against real SQLite files, one fresh file per test.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::IntervalMonthDayNano;
use arrow_schema::{Schema, SchemaRef};
use decant_connectors::sqlite::{SqliteSource, SqliteTarget};
use decant_connectors::testkit::SqliteTestDb;
use decant_connectors::{
    ConnectorError, ReadColumn, ReadRequest, Source, Target, TargetColumn, TargetTable,
    chunk_channel,
};
use decant_core::plan::Policies;
use decant_core::{ChunkRange, ChunkSpec, ConnectionUrl, LogicalType, Table, TableName};
use tokio::sync::mpsc;

fn url(db: &SqliteTestDb) -> ConnectionUrl {
    ConnectionUrl::parse(&db.url).unwrap()
}

fn setup(db: &SqliteTestDb, sql: &str) {
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn whole() -> ChunkSpec {
    ChunkSpec {
        id: "whole".into(),
        range: ChunkRange::Whole,
        estimated_rows: 0,
    }
}

fn request(table: &str, columns: &[(&str, &str, LogicalType)], chunk: ChunkSpec) -> ReadRequest {
    let columns: Vec<ReadColumn> = columns
        .iter()
        .map(|(n, t, l)| ReadColumn {
            name: n.to_string(),
            native_type: t.to_string(),
            logical: l.clone(),
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| c.logical.arrow_field(&c.name, true, &c.native_type))
            .collect::<Vec<_>>(),
    ));
    ReadRequest {
        table: TableName::new(None, table),
        columns,
        chunk,
        batch_rows: 1000,
        schema,
        policies: Policies::default(),
        rejects: Default::default(),
        filter: None,
    }
}

/// Every column of a catalog table, read as its logical type.
fn table_request(table: &Table, chunk: ChunkSpec) -> ReadRequest {
    let cols: Vec<(&str, &str, LogicalType)> = table
        .columns
        .iter()
        .map(|c| {
            let logical = c.logical.clone().expect("every sqlite column maps");
            (c.name.as_str(), c.native_type.as_str(), logical)
        })
        .collect();
    request(&table.name.name, &cols, chunk)
}

async fn read(
    source: &SqliteSource,
    req: &ReadRequest,
) -> Result<Vec<RecordBatch>, ConnectorError> {
    let (tx, mut rx) = mpsc::channel(4);
    let collect = async {
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.push(b);
        }
        out
    };
    let (rows, batches) = tokio::join!(source.read_chunk(req, tx), collect);
    let rows = rows?;
    assert_eq!(
        rows,
        batches.iter().map(|b| b.num_rows() as u64).sum::<u64>()
    );
    Ok(batches)
}

async fn write(
    target: &SqliteTarget,
    table: &TargetTable,
    chunk_id: &str,
    batches: Vec<RecordBatch>,
) -> Result<u64, ConnectorError> {
    let (tx, rx) = chunk_channel(2);
    let send = async move {
        for b in batches {
            tx.send(b).await?;
        }
        tx.finish().await
    };
    let (written, sent) = tokio::join!(target.write_chunk("job1", table, chunk_id, rx), send);
    // A writer that failed drops its receiver, so the sender's error is only the echo of it.
    let written = written?;
    sent?;
    Ok(written)
}

#[tokio::test]
async fn introspects_keys_indexes_views_and_hostile_names() {
    let db = SqliteTestDb::create();
    setup(
        &db,
        r#"
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            email VARCHAR(120) NOT NULL UNIQUE,
            name TEXT DEFAULT 'anon',
            CHECK (length(email) > 3)
        );
        CREATE TABLE "order" (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
            total NUMERIC(10,2) CONSTRAINT total_positive CHECK (total >= 0),
            placed_at DATETIME,
            doubled INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL
        );
        CREATE INDEX order_customer_idx ON "order" (customer_id);
        CREATE INDEX order_day_idx ON "order" (date(placed_at));
        CREATE TABLE "we""ird" (
            a TEXT NOT NULL,
            b INTEGER NOT NULL,
            c BLOB,
            "order" REFERENCES "order",
            PRIMARY KEY (b, a)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX weird_c ON "we""ird" (c);
        CREATE TABLE plain (x, y REAL, s STRING);
        CREATE VIEW big_orders AS SELECT * FROM "order" WHERE total > 100;
        CREATE TABLE _decant_chunks (job_id TEXT);
        INSERT INTO customers (email) VALUES ('a@x.io'), ('b@x.io');
        INSERT INTO "order" (customer_id, total) VALUES (1, 5), (2, 7.5), (2, 120);
        "#,
    );
    let source = SqliteSource::open(&url(&db)).unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    assert!(catalog.server_version.starts_with("SQLite 3."));
    let names: Vec<&str> = catalog
        .tables
        .iter()
        .map(|t| t.name.name.as_str())
        .collect();
    assert_eq!(names, ["customers", "order", "plain", "we\"ird"]);
    assert!(catalog.tables.iter().all(|t| t.name.schema.is_none()));
    assert_eq!(catalog.views.len(), 1);
    assert_eq!(catalog.views[0].name.name, "big_orders");
    assert!(
        catalog.views[0]
            .definition
            .as_deref()
            .unwrap()
            .contains("total > 100")
    );

    let customers = &catalog.tables[0];
    assert_eq!(customers.primary_key, ["id"]);
    let id = customers.column("id").unwrap();
    assert!(id.auto_increment && !id.nullable);
    assert_eq!(id.logical, Some(LogicalType::Int64));
    assert_eq!(customers.next_auto_increment, Some(3));
    assert_eq!(customers.row_estimate, 2);
    assert!(customers.size_bytes > 0);
    let email = customers.column("email").unwrap();
    assert_eq!(email.native_type, "VARCHAR(120)");
    assert_eq!(
        email.logical,
        Some(LogicalType::Varchar { length: Some(120) })
    );
    assert!(!email.nullable);
    assert_eq!(
        customers.column("name").unwrap().default.as_deref(),
        Some("'anon'")
    );
    assert_eq!(customers.unique_keys.len(), 1);
    assert_eq!(customers.unique_keys[0].columns, ["email"]);
    assert!(customers.unique_keys[0].unique);
    assert!(!customers.unique_keys[0].name.starts_with("sqlite_"));
    assert!(customers.indexes.is_empty());
    assert_eq!(customers.checks.len(), 1);
    assert_eq!(customers.checks[0].expression, "length(email) > 3");

    let order = &catalog.tables[1];
    assert_eq!(order.primary_key, ["id"]);
    assert_eq!(order.row_estimate, 3);
    assert_eq!(order.next_auto_increment, Some(4));
    assert_eq!(
        order.column("total").unwrap().logical,
        Some(LogicalType::Decimal {
            precision: 10,
            scale: 2
        })
    );
    assert_eq!(
        order.column("placed_at").unwrap().logical,
        Some(LogicalType::Timestamp { precision: 6 })
    );
    let doubled = order.column("doubled").unwrap();
    assert!(doubled.generated && !doubled.auto_increment);
    assert_eq!(order.foreign_keys.len(), 1);
    let fk = &order.foreign_keys[0];
    assert_eq!(fk.columns, ["customer_id"]);
    assert_eq!(fk.ref_table, TableName::new(None, "customers"));
    assert_eq!(fk.ref_columns, ["id"]);
    assert_eq!(fk.on_delete.as_deref(), Some("CASCADE"));
    assert_eq!(fk.on_update, None);
    let by_name = |n: &str| order.indexes.iter().find(|i| i.name == n).unwrap();
    assert_eq!(by_name("order_customer_idx").columns, ["customer_id"]);
    assert!(by_name("order_customer_idx").unsupported.is_none());
    assert!(!by_name("order_customer_idx").unique);
    assert!(
        by_name("order_day_idx")
            .unsupported
            .as_deref()
            .unwrap()
            .contains("expression")
    );
    assert_eq!(order.checks[0].name, "total_positive");
    assert_eq!(order.checks[0].expression, "total >= 0");

    let plain = &catalog.tables[2];
    assert!(plain.primary_key.is_empty());
    assert_eq!(plain.column("x").unwrap().native_type, "");
    assert_eq!(plain.column("x").unwrap().logical, Some(LogicalType::Text));
    assert_eq!(
        plain.column("y").unwrap().logical,
        Some(LogicalType::Float64)
    );
    assert_eq!(plain.column("s").unwrap().logical, Some(LogicalType::Text));
    assert_eq!(plain.next_auto_increment, None);

    let weird = &catalog.tables[3];
    assert_eq!(weird.primary_key, ["b", "a"], "key order, not column order");
    assert!(
        !weird.column("a").unwrap().nullable,
        "WITHOUT ROWID keys are NOT NULL"
    );
    assert!(
        !weird.column("b").unwrap().auto_increment,
        "no rowid alias here"
    );
    assert_eq!(weird.next_auto_increment, None);
    assert!(weird.unique_keys.is_empty());
    assert_eq!(weird.indexes.len(), 1);
    assert_eq!(weird.indexes[0].name, "weird_c");
    assert!(weird.indexes[0].unique);
    assert_eq!(weird.foreign_keys[0].ref_table.name, "order");
    assert_eq!(
        weird.foreign_keys[0].ref_columns,
        ["id"],
        "implicit parent key"
    );

    // Rowid tables split on their key; WITHOUT ROWID tables are one chunk.
    let chunks = source.plan_chunks(order, 1).await.unwrap();
    assert_eq!(chunks.len(), 3);
    assert!(
        matches!(&chunks[0].range, ChunkRange::IntKey { column, lo: None, .. } if column == "id")
    );
    let chunks = source.plan_chunks(plain, 10).await.unwrap();
    assert!(matches!(
        &chunks[0].range,
        ChunkRange::Whole | ChunkRange::IntKey { .. }
    ));
    let chunks = source.plan_chunks(weird, 1).await.unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].range, ChunkRange::Whole);
    for t in &catalog.tables {
        for c in source.plan_chunks(t, 2).await.unwrap() {
            read(&source, &table_request(t, c)).await.unwrap();
        }
    }
}

fn every_type() -> Vec<(&'static str, LogicalType)> {
    use LogicalType::*;
    vec![
        ("id", Int64),
        ("b", Bool),
        ("i8", Int8),
        ("i16", Int16),
        ("i32", Int32),
        ("i64", Int64),
        ("u8", UInt8),
        ("u16", UInt16),
        ("u32", UInt32),
        ("u64", UInt64),
        ("f32", Float32),
        ("f64", Float64),
        (
            "money",
            Decimal {
                precision: 15,
                scale: 2,
            },
        ),
        (
            "wide",
            Decimal {
                precision: 38,
                scale: 10,
            },
        ),
        (
            "count",
            Decimal {
                precision: 20,
                scale: 0,
            },
        ),
        ("big", BigDecimal),
        ("code", Char { length: 4 }),
        ("label", Varchar { length: Some(20) }),
        ("body", Text),
        (
            "bytes",
            Binary {
                length: None,
                fixed: false,
            },
        ),
        ("day", Date),
        ("clock", Time { precision: 6 }),
        ("at", Timestamp { precision: 6 }),
        ("at_tz", TimestampTz { precision: 6 }),
        ("span", Interval),
        ("yr", Year),
        ("uid", Uuid),
        ("doc", Json),
        (
            "mood",
            Enum {
                name: None,
                values: vec!["ok".into(), "meh".into()],
            },
        ),
        (
            "tags",
            Set {
                values: vec!["a".into(), "b".into()],
            },
        ),
        (
            "bits",
            Bit {
                length: 8,
                varying: false,
            },
        ),
        ("ip", Inet),
        ("net", Cidr),
        ("mac", MacAddr),
        ("shape", Geometry),
        ("list", Array(Box::new(Int32))),
    ]
}

fn ts(s: &str) -> i64 {
    decant_connectors::batch::parse_timestamp(s).unwrap()
}

fn day(s: &str) -> i32 {
    decant_connectors::batch::parse_date(s).unwrap()
}

/// Rows of `every_type()`: typical values, extremes, and all NULLs (but the key).
fn every_type_batch(schema: &SchemaRef, ids: [i64; 3]) -> RecordBatch {
    macro_rules! col {
        ($builder:expr, $a:expr, $b:expr) => {{
            let mut b = $builder;
            b.append_value($a);
            b.append_value($b);
            b.append_null();
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let text = |a: &str, b: &str| col!(StringBuilder::new(), a, b);
    let dec = |p: u8, s: i8, a: i128, b: i128| {
        col!(
            Decimal128Builder::new()
                .with_precision_and_scale(p, s)
                .unwrap(),
            a,
            b
        )
    };
    let uuid_a = *b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0";
    let columns: Vec<ArrayRef> = vec![
        Arc::new(arrow_array::Int64Array::from(ids.to_vec())),
        col!(BooleanBuilder::new(), true, false),
        col!(Int8Builder::new(), i8::MIN, i8::MAX),
        col!(Int16Builder::new(), i16::MIN, i16::MAX),
        col!(Int32Builder::new(), i32::MIN, i32::MAX),
        col!(Int64Builder::new(), i64::MIN, i64::MAX),
        col!(UInt8Builder::new(), 0, u8::MAX),
        col!(UInt16Builder::new(), 7, u16::MAX),
        col!(UInt32Builder::new(), 0, u32::MAX),
        col!(UInt64Builder::new(), 1, i64::MAX as u64),
        col!(Float32Builder::new(), 0.1f32, -3.4e38f32),
        col!(Float64Builder::new(), 0.1 + 0.2, f64::MIN_POSITIVE),
        dec(15, 2, 123_456_789_012_345, -5),
        dec(38, 10, 123_456_789_012_345_678_900_123_456_789, -1),
        dec(20, 0, 99_999_999_999_999_999_999, 0),
        text(
            "3.14159265358979323846264338327950288",
            "-0.000000000000000000001",
        ),
        text("AB  ", ""),
        text("héllo wörld", "🦀🎉 emoji"),
        text("line1\nline2\t\"quoted\" 'single' \\ back", ""),
        col!(
            BinaryBuilder::new(),
            b"\x00\xff\x10binary".as_slice(),
            b"".as_slice()
        ),
        col!(Date32Builder::new(), day("1969-07-20"), day("1900-01-01")),
        col!(Time64MicrosecondBuilder::new(), 0, 86_399_999_999),
        col!(
            TimestampMicrosecondBuilder::new(),
            ts("1960-01-01 00:00:00.000001"),
            ts("2024-02-29 23:59:59.999999")
        ),
        col!(
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            ts("1969-12-31 23:59:59.5"),
            ts("2038-01-19 03:14:08")
        ),
        col!(
            IntervalMonthDayNanoBuilder::new(),
            IntervalMonthDayNano::new(14, 3, 3_723_000_001_000),
            IntervalMonthDayNano::new(-1, -2, -500_000_000)
        ),
        col!(Int16Builder::new(), 1999, 2155),
        {
            let mut b = FixedSizeBinaryBuilder::new(16);
            b.append_value(uuid_a).unwrap();
            b.append_value([0u8; 16]).unwrap();
            b.append_null();
            Arc::new(b.finish())
        },
        text(r#"{"a": [1, 2.50, "x"]}"#, "1.0"),
        text("meh", "ok"),
        text("a,b", ""),
        text("00101", "11111111"),
        text("192.168.0.1", "::1"),
        text("10.0.0.0/8", "2001:db8::/32"),
        text("08:00:2b:01:02:03", "ff:ff:ff:ff:ff:ff"),
        text("POINT(1 2)", "POLYGON((0 0,1 0,1 1,0 0))"),
        text("[1,2,3]", "[]"),
    ];
    for (a, f) in columns.iter().zip(schema.fields()) {
        assert_eq!(a.data_type(), f.data_type(), "{}", f.name());
    }
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

#[tokio::test]
async fn every_logical_type_round_trips() {
    let db = SqliteTestDb::create();
    let target = SqliteTarget::open(&url(&db)).unwrap();
    let name = "order items \"x\"";
    let columns: Vec<TargetColumn> = every_type()
        .into_iter()
        .map(|(n, l)| TargetColumn {
            name: n.into(),
            native_type: target.native_type(&l).unwrap(),
            logical: l,
            nullable: n != "id",
            auto_increment: false,
        })
        .collect();
    let table = TargetTable {
        name: TableName::new(None, name),
        columns: columns.clone(),
        primary_key: vec!["id".into()],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
    };
    let ddl = target.ddl(&table, true);
    assert!(ddl.foreign_keys.is_empty());
    target.execute(&ddl.create).await.unwrap();
    target.execute(&ddl.indexes).await.unwrap();
    target.prepare_markers().await.unwrap();
    assert!(target.table_exists(&table.name).await.unwrap());

    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| c.logical.arrow_field(&c.name, c.nullable, &c.native_type))
            .collect::<Vec<_>>(),
    ));
    let batches = vec![
        every_type_batch(&schema, [1, 2, 3]),
        every_type_batch(&schema, [4, 5, 6]),
    ];
    let written = write(&target, &table, "k1", batches.clone()).await.unwrap();
    assert_eq!(written, 6);
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 6);
    let markers = target.committed_chunks("job1").await.unwrap();
    assert_eq!(markers.len(), 1);
    assert_eq!(
        (
            markers[0].table.as_str(),
            markers[0].chunk_id.as_str(),
            markers[0].rows
        ),
        (name, "k1", 6)
    );

    // Decimals wider than 15 digits stay exact text; narrower ones are SQLite numbers.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let (wide, wide_type, money_type): (String, String, String) = conn
        .query_row(
            "SELECT wide, typeof(wide), typeof(money) FROM \"order items \"\"x\"\"\" WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (wide.as_str(), wide_type.as_str()),
        ("12345678901234567890.0123456789", "text")
    );
    assert_eq!(money_type, "real");

    let source = SqliteSource::open(&url(&db)).unwrap();
    let read_cols: Vec<(&str, &str, LogicalType)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.native_type.as_str(), c.logical.clone()))
        .collect();
    let mut req = request(name, &read_cols, whole());
    req.batch_rows = 3;
    req.schema = schema.clone();
    let back = read(&source, &req).await.unwrap();
    assert_eq!(back.len(), 2);
    for (got, want) in back.iter().zip(&batches) {
        for (i, f) in schema.fields().iter().enumerate() {
            assert_eq!(got.column(i), want.column(i), "column {}", f.name());
        }
    }
    // The catalog of what Decant created reads back as the same logical types.
    let catalog = source.introspect(&[]).await.unwrap();
    let created = catalog.table(&table.name).unwrap();
    for c in &columns {
        let want = match &c.logical {
            LogicalType::Int8
            | LogicalType::Int16
            | LogicalType::Int32
            | LogicalType::UInt8
            | LogicalType::UInt16
            | LogicalType::UInt32 => LogicalType::Int64,
            LogicalType::UInt64 => LogicalType::Decimal {
                precision: 20,
                scale: 0,
            },
            LogicalType::Float32 => LogicalType::Float64,
            l if l.is_textual()
                && !matches!(
                    l,
                    LogicalType::BigDecimal
                        | LogicalType::Json
                        | LogicalType::Char { .. }
                        | LogicalType::Varchar { .. }
                ) =>
            {
                LogicalType::Text
            }
            l => l.clone(),
        };
        assert_eq!(
            created.column(&c.name).unwrap().logical.as_ref(),
            Some(&want),
            "{}",
            c.name
        );
    }
    assert!(
        created.column("id").unwrap().auto_increment,
        "a lone INTEGER key is the rowid"
    );
}

fn two_column_table() -> TargetTable {
    TargetTable {
        name: TableName::new(None, "t"),
        columns: vec![
            TargetColumn {
                name: "a".into(),
                native_type: "INTEGER".into(),
                logical: LogicalType::Int64,
                nullable: false,
                auto_increment: false,
            },
            TargetColumn {
                name: "b".into(),
                native_type: "TEXT".into(),
                logical: LogicalType::Text,
                nullable: false,
                auto_increment: false,
            },
        ],
        primary_key: vec![],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
    }
}

fn ab_batch(a: Vec<i64>, b: Vec<Option<&str>>) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("a", Arc::new(arrow_array::Int64Array::from(a)) as ArrayRef),
        ("b", Arc::new(arrow_array::StringArray::from(b)) as ArrayRef),
    ])
    .unwrap()
}

#[tokio::test]
async fn failed_write_leaves_no_rows_and_no_marker() {
    let db = SqliteTestDb::create();
    let target = SqliteTarget::open(&url(&db)).unwrap();
    let table = two_column_table();
    target
        .execute(&target.ddl(&table, true).create)
        .await
        .unwrap();
    target.prepare_markers().await.unwrap();

    let good = ab_batch(vec![1, 2, 3], vec![Some("x"), Some("y"), Some("z")]);
    let bad = ab_batch(vec![4, 5], vec![Some("ok"), None]);
    let err = write(&target, &table, "k1", vec![good.clone(), bad])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOT NULL"), "{err}");
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 0);
    assert!(target.committed_chunks("job1").await.unwrap().is_empty());

    // A source that stops without finishing its chunk commits nothing either.
    let (tx, rx) = chunk_channel(2);
    let send = async move {
        tx.send(good).await.unwrap();
        drop(tx);
    };
    let (res, ()) = tokio::join!(target.write_chunk("job1", &table, "k2", rx), send);
    assert!(matches!(res, Err(ConnectorError::ChannelClosed)), "{res:?}");
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 0);
    assert!(target.committed_chunks("job1").await.unwrap().is_empty());

    // The same chunk written twice: the marker's key refuses the second, which leaves nothing.
    let ok = ab_batch(vec![1], vec![Some("x")]);
    assert_eq!(
        write(&target, &table, "k3", vec![ok.clone()])
            .await
            .unwrap(),
        1
    );
    assert!(write(&target, &table, "k3", vec![ok]).await.is_err());
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 1);
    target.delete_markers("job1").await.unwrap();
    assert!(target.committed_chunks("job1").await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_utf8_text_is_an_error_naming_the_column() {
    let db = SqliteTestDb::create();
    setup(
        &db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO t VALUES (1, 'fine'), (2, CAST(x'41ff42' AS TEXT));",
    );
    let source = SqliteSource::open(&url(&db)).unwrap();
    let req = request(
        "t",
        &[
            ("id", "INTEGER", LogicalType::Int64),
            ("name", "TEXT", LogicalType::Text),
        ],
        whole(),
    );
    let err = read(&source, &req).await.unwrap_err();
    let ConnectorError::Value {
        table,
        column,
        message,
        ..
    } = &err
    else {
        panic!("expected a value error, got {err:?}");
    };
    assert_eq!((table.as_str(), column.as_str()), ("t", "name"));
    assert!(
        message.contains("invalid UTF-8") && message.contains("id 2"),
        "{message}"
    );
    assert!(err.to_string().contains("t.name"), "{err}");
}

#[tokio::test]
async fn values_that_do_not_match_the_declared_type() {
    let db = SqliteTestDb::create();
    setup(
        &db,
        "CREATE TABLE t (n INTEGER, d DATE, ts DATETIME, price NUMERIC(6,2));
         INSERT INTO t VALUES (1, '2024-01-02', 0, 12.5);
         INSERT INTO t VALUES (2, 86400, 2440587.75, '7');
         INSERT INTO t VALUES (3, 2440587.5, '1970-01-01T00:00:01Z', 0.05);
         INSERT INTO t VALUES ('abc', NULL, NULL, NULL);",
    );
    let source = SqliteSource::open(&url(&db)).unwrap();
    let cols = [
        ("n", "INTEGER", LogicalType::Int64),
        ("d", "DATE", LogicalType::Date),
        ("ts", "DATETIME", LogicalType::Timestamp { precision: 6 }),
        (
            "price",
            "NUMERIC(6,2)",
            LogicalType::Decimal {
                precision: 6,
                scale: 2,
            },
        ),
    ];
    let chunk = |lo, hi| ChunkSpec {
        id: "c".into(),
        range: ChunkRange::IntKey {
            column: "rowid".into(),
            lo,
            hi,
        },
        estimated_rows: 0,
    };
    // Integers are Unix seconds, reals Julian days, as SQLite's date functions read them.
    let batches = read(&source, &request("t", &cols, chunk(None, Some(4))))
        .await
        .unwrap();
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3);
    let days: Vec<i32> = b
        .column(1)
        .as_primitive::<arrow_array::types::Date32Type>()
        .values()
        .to_vec();
    assert_eq!(days, [day("2024-01-02"), 1, 0]);
    let micros: Vec<i64> = b
        .column(2)
        .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
        .values()
        .to_vec();
    assert_eq!(micros, [0, 21_600_000_000, 1_000_000]);
    let cents: Vec<i128> = b
        .column(3)
        .as_primitive::<arrow_array::types::Decimal128Type>()
        .values()
        .to_vec();
    assert_eq!(cents, [1250, 700, 5]);
    assert_eq!(
        b.column(0).as_primitive::<Int64Type>().values().to_vec(),
        [1, 2, 3]
    );

    let err = read(&source, &request("t", &cols, chunk(Some(4), None)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Value { .. }), "{err:?}");
    assert!(
        text.contains("t.n") && text.contains("rowid 4") && text.contains("abc"),
        "{text}"
    );
    assert!(
        text.contains("rowid in [4, +inf)"),
        "names the chunk: {text}"
    );
}

#[tokio::test]
async fn ten_thousand_rows_in_four_chunks_read_each_row_once() {
    let db = SqliteTestDb::create();
    setup(
        &db,
        "CREATE TABLE t (v INTEGER NOT NULL, s TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
         INSERT INTO t SELECT i, 'row ' || i FROM n;",
    );
    let source = SqliteSource::open(&url(&db)).unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let table = &catalog.tables[0];
    assert_eq!(table.row_estimate, 10_000);
    let chunks = source.plan_chunks(table, 3000).await.unwrap();
    assert_eq!(chunks.len(), 4);
    let ids: std::collections::HashSet<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "ids are distinct");
    assert_eq!(
        source.plan_chunks(table, 3000).await.unwrap(),
        chunks,
        "ids are stable"
    );
    assert!(
        matches!(&chunks[0].range, ChunkRange::IntKey { column, lo: None, hi: Some(_) } if column == "rowid")
    );
    assert!(matches!(
        chunks[3].range,
        ChunkRange::IntKey {
            lo: Some(_),
            hi: None,
            ..
        }
    ));

    let mut seen = Vec::new();
    for c in chunks {
        let mut req = table_request(table, c);
        req.batch_rows = 1024;
        for b in read(&source, &req).await.unwrap() {
            assert!(b.num_rows() <= 1024);
            seen.extend(
                b.column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
    }
    assert_eq!(seen.len(), 10_000);
    seen.sort();
    assert_eq!(seen, (1..=10_000).collect::<Vec<i64>>());
}

#[tokio::test]
async fn shop_example_introspects_and_every_table_reads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/shop.db");
    let source =
        SqliteSource::open(&ConnectionUrl::parse(&format!("sqlite://{path}")).unwrap()).unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let names: Vec<&str> = catalog
        .tables
        .iter()
        .map(|t| t.name.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "customers",
            "order notes",
            "order_items",
            "orders",
            "products"
        ]
    );
    assert_eq!(catalog.views.len(), 1);
    let items = catalog.table(&TableName::new(None, "order_items")).unwrap();
    assert_eq!(items.primary_key, ["order_id", "line_no"]);
    assert_eq!(items.foreign_keys.len(), 2);
    for table in &catalog.tables {
        assert!(table.columns.iter().all(|c| c.logical.is_some()));
        let mut rows = 0;
        for chunk in source.plan_chunks(table, 100).await.unwrap() {
            let batches = read(&source, &table_request(table, chunk)).await.unwrap();
            rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        }
        assert!(rows > 0, "{}", table.name);
        assert_eq!(
            rows,
            source.count_rows(&table.name).await.unwrap(),
            "{}",
            table.name
        );
        assert_eq!(rows, table.row_estimate);
    }
}

#[tokio::test]
async fn parallel_chunk_writers_queue_for_the_write_lock() {
    let db = SqliteTestDb::create();
    let target = Arc::new(SqliteTarget::open(&url(&db)).unwrap());
    let table = two_column_table();
    target
        .execute(&target.ddl(&table, true).create)
        .await
        .unwrap();
    target.prepare_markers().await.unwrap();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for chunk in 0..4i64 {
        let (target, table) = (target.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let batches = (0..10)
                .map(|b| {
                    let base = chunk * 1_000_000 + b * 5000;
                    let a: Vec<i64> = (base..base + 5000).collect();
                    let s: Vec<String> = a.iter().map(|v| format!("value {v} ✓")).collect();
                    ab_batch(a, s.iter().map(|s| Some(s.as_str())).collect())
                })
                .collect();
            write(&target, &table, &format!("k{chunk}"), batches).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 50_000);
    }
    eprintln!("4 x 50000 rows written in {:?}", started.elapsed());
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 200_000);
    assert_eq!(target.committed_chunks("job1").await.unwrap().len(), 4);
}

/// Copies every chunk of every table of `source` into `target`, as the engine would.
async fn copy_all(source: &SqliteSource, target: &SqliteTarget, catalog: &decant_core::Catalog) {
    for t in &catalog.tables {
        let table = TargetTable {
            name: t.name.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| TargetColumn {
                    name: c.name.clone(),
                    native_type: c.native_type.clone(),
                    logical: c.logical.clone().unwrap(),
                    nullable: c.nullable,
                    auto_increment: c.auto_increment,
                })
                .collect(),
            primary_key: t.primary_key.clone(),
            unique_keys: t.unique_keys.clone(),
            indexes: t
                .indexes
                .iter()
                .filter(|i| i.unsupported.is_none())
                .cloned()
                .collect(),
            foreign_keys: t.foreign_keys.clone(),
        };
        let ddl = target.ddl(&table, true);
        target.execute(&ddl.create).await.unwrap();
        for chunk in source.plan_chunks(t, 64).await.unwrap() {
            let id = chunk.id.clone();
            let batches = read(source, &table_request(t, chunk)).await.unwrap();
            write(target, &table, &id, batches).await.unwrap();
        }
        target.execute(&ddl.indexes).await.unwrap();
    }
}

#[tokio::test]
async fn shop_example_copies_into_a_new_sqlite_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/shop.db");
    let source =
        SqliteSource::open(&ConnectionUrl::parse(&format!("sqlite://{path}")).unwrap()).unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let db = SqliteTestDb::create();
    let target = SqliteTarget::open(&url(&db)).unwrap();
    target.prepare_markers().await.unwrap();
    copy_all(&source, &target, &catalog).await;

    let copy = SqliteSource::open(&url(&db)).unwrap();
    let copied = copy.introspect(&[]).await.unwrap();
    for t in &catalog.tables {
        let c = copied.table(&t.name).unwrap();
        assert_eq!(c.row_estimate, t.row_estimate, "{}", t.name);
        assert_eq!(c.primary_key, t.primary_key, "{}", t.name);
        assert_eq!(c.foreign_keys, t.foreign_keys, "{}", t.name);
        // A UNIQUE constraint is created as a unique index after the data, which SQLite then
        // reports as an index: the same columns, uniqueness and name.
        let all = |t: &Table| {
            let mut v: Vec<decant_core::Index> =
                t.unique_keys.iter().chain(&t.indexes).cloned().collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        assert_eq!(all(c), all(t), "{}", t.name);
        let cols = |t: &Table| {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.logical.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(cols(c), cols(t), "{}", t.name);
        let (ours, theirs) = (
            source.plan_chunks(t, 1000).await.unwrap(),
            copy.plan_chunks(c, 1000).await.unwrap(),
        );
        assert_eq!(ours.len(), theirs.len(), "{}", t.name);
        for (a, b) in ours.into_iter().zip(theirs) {
            assert_eq!(
                read(&source, &table_request(t, a)).await.unwrap(),
                read(&copy, &table_request(c, b)).await.unwrap(),
                "{}",
                t.name
            );
        }
    }
    let markers = target.committed_chunks("job1").await.unwrap();
    assert_eq!(
        markers.iter().map(|m| m.rows).sum::<u64>(),
        catalog.tables.iter().map(|t| t.row_estimate).sum::<u64>()
    );
}
