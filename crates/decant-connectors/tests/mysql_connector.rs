//! The MySQL connector against the real MariaDB/MySQL on localhost, one fresh database per test.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int8Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::IntervalMonthDayNano;
use arrow_schema::{Schema, SchemaRef};
use decant_connectors::mysql::{LoadMethod, MysqlSource, MysqlTarget};
use decant_connectors::testkit::MysqlTestDb;
use decant_connectors::{
    ConnectorError, ReadColumn, ReadRequest, Source, Target, TargetColumn, TargetTable,
    chunk_channel,
};
use decant_core::plan::{Policies, ValuePolicy};
use decant_core::{ChunkRange, ChunkSpec, ConnectionUrl, Index, LogicalType, Table, TableName};
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

fn url(db: &MysqlTestDb) -> ConnectionUrl {
    ConnectionUrl::parse(&db.url).unwrap()
}

async fn setup(db: &MysqlTestDb, sql: &str) {
    let mut conn = db.conn().await;
    conn.query_drop(sql).await.unwrap();
    conn.disconnect().await.unwrap();
}

fn whole() -> ChunkSpec {
    ChunkSpec {
        id: "whole".into(),
        range: ChunkRange::Whole,
        estimated_rows: 0,
    }
}

/// Every column of a catalog table, read as its logical type.
fn table_request(table: &Table, chunk: ChunkSpec) -> ReadRequest {
    let columns: Vec<ReadColumn> = table
        .columns
        .iter()
        .map(|c| ReadColumn {
            name: c.name.clone(),
            native_type: c.native_type.clone(),
            logical: c.logical.clone().expect("every column maps"),
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| c.logical.arrow_field(&c.name, true, &c.native_type))
            .collect::<Vec<_>>(),
    ));
    ReadRequest {
        table: table.name.clone(),
        columns,
        chunk,
        batch_rows: 1000,
        schema,
        policies: Policies::default(),
        rejects: Default::default(),
        filter: None,
    }
}

async fn read(source: &MysqlSource, req: &ReadRequest) -> Result<Vec<RecordBatch>, ConnectorError> {
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

async fn read_table(source: &MysqlSource, name: &str) -> RecordBatch {
    let catalog = source.introspect(&[]).await.unwrap();
    let table = catalog.table(&TableName::new(None, name)).unwrap();
    let mut batches = read(source, &table_request(table, whole())).await.unwrap();
    assert_eq!(batches.len(), 1);
    batches.remove(0)
}

/// Sends `batches` to `write_chunk`; `finish` false drops the sender as a failed source would.
async fn write(
    target: &MysqlTarget,
    table: &TargetTable,
    chunk_id: &str,
    batches: Vec<RecordBatch>,
    finish: bool,
) -> Result<u64, ConnectorError> {
    let (tx, rx) = chunk_channel(2);
    let send = async move {
        for b in batches {
            tx.send(b).await?;
        }
        if finish { tx.finish().await } else { Ok(()) }
    };
    let (written, sent) = tokio::join!(target.write_chunk("job1", table, chunk_id, rx), send);
    let written = written?;
    sent?;
    Ok(written)
}

fn target_table(
    target: &MysqlTarget,
    name: &str,
    cols: &[(&str, LogicalType, bool)],
) -> TargetTable {
    TargetTable {
        name: TableName::new(None, name),
        columns: cols
            .iter()
            .map(|(n, l, nullable)| TargetColumn {
                name: n.to_string(),
                native_type: target.native_type(l).unwrap(),
                logical: l.clone(),
                nullable: *nullable,
                auto_increment: false,
            })
            .collect(),
        primary_key: vec![cols[0].0.to_string()],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
    }
}

fn batch_for(table: &TargetTable, arrays: Vec<ArrayRef>) -> RecordBatch {
    let schema = Schema::new(
        table
            .columns
            .iter()
            .map(|c| c.logical.arrow_field(&c.name, c.nullable, &c.native_type))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
}

async fn create(target: &MysqlTarget, table: &TargetTable) {
    let ddl = target.ddl(table, true);
    target.execute(&ddl.create).await.unwrap();
    // A resumed job runs the creation again.
    target.execute(&ddl.create).await.unwrap();
    target.prepare_markers().await.unwrap();
}

const ALL_TYPES: &str = "
    CREATE TABLE alltypes (
        id int PRIMARY KEY,
        b1 tinyint(1), ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
        mi mediumint, miu mediumint unsigned, i int, iu int unsigned, bi bigint,
        biu bigint unsigned, d decimal(10,2), dbig decimal(65,30), f float, dbl double,
        r real, bit1 bit(1), bit10 bit(10), y year, dt date, dtm datetime(6), ts timestamp(3) NULL,
        tm time(2), c char(5), vc varchar(50), tt tinytext, tx text, mt mediumtext, lt longtext,
        bn binary(4), vb varbinary(20), tb tinyblob, bl blob, mb mediumblob, lb longblob,
        e enum('a','b'), s set('x','y'), j json, g geometry, pt point, ls linestring,
        pg polygon, mp multipoint, mls multilinestring, mpg multipolygon, gc geometrycollection
    ) CHARACTER SET utf8mb4";

#[tokio::test]
async fn introspects_types_keys_constraints_and_hostile_names() {
    let db = MysqlTestDb::create().await;
    setup(
        &db,
        &format!(
            "{ALL_TYPES};
            CREATE TABLE parent (
                id int AUTO_INCREMENT PRIMARY KEY,
                code varchar(20) NOT NULL,
                region char(2) NOT NULL DEFAULT 'eu',
                name varchar(100),
                doubled int AS (id * 2) VIRTUAL,
                UNIQUE KEY uq_code_region (code, region),
                KEY idx_name (name),
                KEY idx_prefix (name(10)),
                CONSTRAINT chk_code CHECK (code <> '')
            );
            CREATE TABLE child (
                id bigint unsigned PRIMARY KEY,
                parent_id int,
                CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE
            );
            CREATE TABLE `order` (id int PRIMARY KEY, `group` int);
            CREATE TABLE `we``ird\"name` (id int PRIMARY KEY, `co``l\"` text);
            CREATE TABLE _decant_chunks (job_id varchar(10));
            CREATE VIEW v_parent AS SELECT id, code FROM parent;
            INSERT INTO parent (code, name) VALUES ('a', 'x'), ('b', 'y'), ('c', 'z');"
        ),
    )
    .await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    assert!(
        catalog.server_version.starts_with("MariaDB ")
            || catalog.server_version.starts_with("MySQL "),
        "{}",
        catalog.server_version
    );
    let names: Vec<&str> = catalog
        .tables
        .iter()
        .map(|t| t.name.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["alltypes", "child", "order", "parent", "we`ird\"name"]
    );
    assert!(catalog.tables.iter().all(|t| t.name.schema.is_none()));
    assert_eq!(catalog.views.len(), 1);
    assert_eq!(catalog.views[0].name.name, "v_parent");
    assert!(
        catalog.views[0]
            .definition
            .as_deref()
            .unwrap()
            .contains("parent")
    );

    let parent = catalog.table(&TableName::new(None, "parent")).unwrap();
    assert_eq!(parent.primary_key, ["id"]);
    let id = parent.column("id").unwrap();
    assert!(id.auto_increment && !id.nullable && !id.generated);
    assert_eq!(id.logical, Some(LogicalType::Int32));
    assert_eq!(parent.next_auto_increment, Some(4));
    assert!(parent.size_bytes > 0);
    assert_eq!(
        parent.column("region").unwrap().default.as_deref(),
        Some("'eu'")
    );
    assert_eq!(parent.column("name").unwrap().default, None);
    assert!(parent.column("doubled").unwrap().generated);
    assert_eq!(parent.unique_keys.len(), 1);
    assert_eq!(parent.unique_keys[0].name, "uq_code_region");
    assert_eq!(parent.unique_keys[0].columns, ["code", "region"]);
    assert!(parent.unique_keys[0].unique && parent.unique_keys[0].unsupported.is_none());
    let idx = |n: &str| parent.indexes.iter().find(|i| i.name == n).unwrap();
    assert_eq!(idx("idx_name").columns, ["name"]);
    assert!(idx("idx_name").unsupported.is_none());
    let why = idx("idx_prefix").unsupported.as_deref().unwrap();
    assert!(why.contains("prefix index on name(10)"), "{why}");
    assert_eq!(parent.checks.len(), 1);
    assert_eq!(parent.checks[0].name, "chk_code");
    assert!(parent.checks[0].expression.contains("code"));

    let child = catalog.table(&TableName::new(None, "child")).unwrap();
    assert_eq!(
        child.column("id").unwrap().logical,
        Some(LogicalType::UInt64)
    );
    assert_eq!(child.foreign_keys.len(), 1);
    let fk = &child.foreign_keys[0];
    assert_eq!(fk.name, "fk_parent");
    assert_eq!(fk.columns, ["parent_id"]);
    assert_eq!(fk.ref_table, TableName::new(None, "parent"));
    assert_eq!(fk.ref_columns, ["id"]);
    assert_eq!(fk.on_delete.as_deref(), Some("CASCADE"));

    let weird = catalog
        .table(&TableName::new(None, "we`ird\"name"))
        .unwrap();
    assert_eq!(weird.primary_key, ["id"]);
    assert_eq!(weird.columns[1].name, "co`l\"");
    let order = catalog.table(&TableName::new(None, "order")).unwrap();
    assert_eq!(order.columns[1].name, "group");

    use LogicalType::*;
    let all = catalog.table(&TableName::new(None, "alltypes")).unwrap();
    assert!(
        all.checks.is_empty(),
        "json's own check is not a user check: {:?}",
        all.checks
    );
    let blob = Binary {
        length: None,
        fixed: false,
    };
    let expected: Vec<(&str, LogicalType)> = vec![
        ("b1", Bool),
        ("ti", Int8),
        ("tiu", UInt8),
        ("si", Int16),
        ("siu", UInt16),
        ("mi", Int32),
        ("miu", UInt32),
        ("i", Int32),
        ("iu", UInt32),
        ("bi", Int64),
        ("biu", UInt64),
        (
            "d",
            Decimal {
                precision: 10,
                scale: 2,
            },
        ),
        ("dbig", BigDecimal),
        ("f", Float32),
        ("dbl", Float64),
        ("r", Float64),
        ("bit1", Bool),
        (
            "bit10",
            Bit {
                length: 10,
                varying: false,
            },
        ),
        ("y", Year),
        ("dt", Date),
        ("dtm", Timestamp { precision: 6 }),
        ("ts", TimestampTz { precision: 3 }),
        ("tm", Time { precision: 2 }),
        ("c", Char { length: 5 }),
        ("vc", Varchar { length: Some(50) }),
        ("tt", Text),
        ("tx", Text),
        ("mt", Text),
        ("lt", Text),
        (
            "bn",
            Binary {
                length: Some(4),
                fixed: true,
            },
        ),
        (
            "vb",
            Binary {
                length: Some(20),
                fixed: false,
            },
        ),
        ("tb", blob.clone()),
        ("bl", blob.clone()),
        ("mb", blob.clone()),
        ("lb", blob),
        (
            "e",
            Enum {
                name: None,
                values: vec!["a".into(), "b".into()],
            },
        ),
        (
            "s",
            Set {
                values: vec!["x".into(), "y".into()],
            },
        ),
        ("j", Json),
        ("g", Geometry),
        ("pt", Geometry),
        ("ls", Geometry),
        ("pg", Geometry),
        ("mp", Geometry),
        ("mls", Geometry),
        ("mpg", Geometry),
        ("gc", Geometry),
    ];
    for (name, logical) in expected {
        let c = all.column(name).unwrap_or_else(|| panic!("column {name}"));
        assert_eq!(
            c.logical.as_ref(),
            Some(&logical),
            "{name} ({})",
            c.native_type
        );
    }
    assert_eq!(all.column("b1").unwrap().native_type, "tinyint(1)");
    assert!(
        all.column("tiu")
            .unwrap()
            .native_type
            .starts_with("tinyint")
    );
    assert!(all.column("tiu").unwrap().native_type.ends_with("unsigned"));
    assert_eq!(all.column("e").unwrap().native_type, "enum('a','b')");
    assert_eq!(all.column("j").unwrap().native_type, "json");
}

#[tokio::test]
async fn read_chunk_round_trips_every_type() {
    let db = MysqlTestDb::create().await;
    setup(
        &db,
        &format!(
            "SET time_zone = '+00:00';
            {ALL_TYPES};
            INSERT INTO alltypes VALUES (1,
                1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
                -9223372036854775808, 18446744073709551615, -12345678.90,
                '-12345678901234567890123456789012345.123456789012345678901234567891',
                16777217, 2.2250738585072014e-308, -1.5, b'1', b'1000000101', 2155,
                '1969-07-20', '1901-12-13 20:45:52.123456', '2038-01-19 03:14:07.999',
                '23:59:59.99', 'ab', 'héllo 😀', '', 'tab\there', 'line\nbreak', 'back\\\\slash',
                X'00090A5C', X'FF00', X'00', X'0A', X'5C', X'09',
                'b', 'x,y', '{{\"a\": [1, 2]}}', ST_GeomFromText('POINT(1 2)'),
                ST_GeomFromText('POINT(-1.5 2.25)'), ST_GeomFromText('LINESTRING(0 0,1 1)'),
                ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), ST_GeomFromText('MULTIPOINT(0 0,1 1)'),
                ST_GeomFromText('MULTILINESTRING((0 0,1 1))'),
                ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))'),
                ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1))'));
            INSERT INTO alltypes (id) VALUES (2);
            INSERT INTO alltypes (id, b1, ti, biu, c, vc, bl, bit1, dt, tm, ts)
                VALUES (3, 0, 127, 0, '', '', '', b'0', '0001-01-01', '00:00:00', '1970-01-01 00:00:01');"
        ),
    )
    .await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let b = read_table(&source, "alltypes").await;
    assert_eq!(b.num_rows(), 3);
    let col = |n: &str| b.column_by_name(n).unwrap().clone();
    let s = |n: &str, r: usize| col(n).as_string::<i32>().value(r).to_string();

    assert_eq!(col("id").as_primitive::<Int32Type>().values(), &[1, 2, 3]);
    // Row 2 is NULL everywhere but its key.
    for f in b.schema().fields().iter().skip(1) {
        assert!(col(f.name()).is_null(1), "{} is NULL", f.name());
    }
    let b1 = col("b1");
    assert!(b1.as_boolean().value(0) && !b1.as_boolean().value(2));
    assert_eq!(col("ti").as_primitive::<Int8Type>().value(0), -128);
    assert_eq!(col("ti").as_primitive::<Int8Type>().value(2), 127);
    assert_eq!(col("tiu").as_primitive::<UInt8Type>().value(0), 255);
    assert_eq!(col("si").as_primitive::<Int16Type>().value(0), -32768);
    assert_eq!(col("siu").as_primitive::<UInt16Type>().value(0), 65535);
    assert_eq!(col("mi").as_primitive::<Int32Type>().value(0), -8388608);
    assert_eq!(col("miu").as_primitive::<UInt32Type>().value(0), 16777215);
    assert_eq!(col("i").as_primitive::<Int32Type>().value(0), i32::MIN);
    assert_eq!(col("iu").as_primitive::<UInt32Type>().value(0), u32::MAX);
    assert_eq!(col("bi").as_primitive::<Int64Type>().value(0), i64::MIN);
    assert_eq!(col("biu").as_primitive::<UInt64Type>().value(0), u64::MAX);
    assert_eq!(col("biu").as_primitive::<UInt64Type>().value(2), 0);
    assert_eq!(
        col("d").as_primitive::<Decimal128Type>().value(0),
        -1234567890
    );
    assert_eq!(
        s("dbig", 0),
        "-12345678901234567890123456789012345.123456789012345678901234567891"
    );
    assert_eq!(
        col("f").as_primitive::<Float32Type>().value(0),
        16_777_216f32,
        "read exactly, not as the 6-digit text `16777200`"
    );
    assert_eq!(
        col("dbl").as_primitive::<Float64Type>().value(0),
        2.2250738585072014e-308
    );
    assert_eq!(col("r").as_primitive::<Float64Type>().value(0), -1.5);
    assert!(col("bit1").as_boolean().value(0) && !col("bit1").as_boolean().value(2));
    assert_eq!(s("bit10", 0), "1000000101");
    assert_eq!(col("y").as_primitive::<Int16Type>().value(0), 2155);
    let days = |y, m, d| {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    assert_eq!(
        col("dt").as_primitive::<Date32Type>().value(0),
        days(1969, 7, 20)
    );
    assert_eq!(
        col("dt").as_primitive::<Date32Type>().value(2),
        days(1, 1, 1)
    );
    let micros = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    assert_eq!(
        col("dtm")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        micros("1901-12-13 20:45:52.123456")
    );
    let ts = col("ts");
    assert_eq!(ts.data_type().to_string(), "Timestamp(µs, \"UTC\")");
    assert_eq!(
        ts.as_primitive::<TimestampMicrosecondType>().value(0),
        micros("2038-01-19 03:14:07.999")
    );
    assert_eq!(
        ts.as_primitive::<TimestampMicrosecondType>().value(2),
        1_000_000
    );
    assert_eq!(
        col("tm").as_primitive::<Time64MicrosecondType>().value(0),
        86_399_990_000
    );
    assert_eq!(
        col("tm").as_primitive::<Time64MicrosecondType>().value(2),
        0
    );
    assert_eq!(s("c", 0), "ab");
    assert_eq!(s("c", 2), "");
    assert!(!col("c").is_null(2), "an empty string is not NULL");
    assert_eq!(s("vc", 0), "héllo 😀");
    assert_eq!(s("vc", 2), "");
    assert_eq!(s("tt", 0), "");
    assert_eq!(s("tx", 0), "tab\there");
    assert_eq!(s("mt", 0), "line\nbreak");
    assert_eq!(s("lt", 0), "back\\slash");
    let bytes = |n: &str, r: usize| col(n).as_binary::<i32>().value(r).to_vec();
    assert_eq!(bytes("bn", 0), [0x00, 0x09, 0x0a, 0x5c]);
    assert_eq!(bytes("vb", 0), [0xff, 0x00]);
    assert_eq!(bytes("tb", 0), [0x00]);
    assert_eq!(bytes("bl", 0), [0x0a]);
    assert_eq!(bytes("bl", 2), Vec::<u8>::new());
    assert!(!col("bl").is_null(2));
    assert_eq!(bytes("mb", 0), [0x5c]);
    assert_eq!(bytes("lb", 0), [0x09]);
    assert_eq!(s("e", 0), "b");
    assert_eq!(s("s", 0), "x,y");
    let json: serde_json::Value = serde_json::from_str(&s("j", 0)).unwrap();
    assert_eq!(json, serde_json::json!({"a": [1, 2]}));
    assert_eq!(s("g", 0), "POINT(1 2)");
    assert_eq!(s("pt", 0), "POINT(-1.5 2.25)");
    assert_eq!(s("ls", 0), "LINESTRING(0 0,1 1)");
    assert_eq!(s("pg", 0), "POLYGON((0 0,1 0,1 1,0 0))");
    assert!(s("mp", 0).starts_with("MULTIPOINT("));
    assert_eq!(s("mls", 0), "MULTILINESTRING((0 0,1 1))");
    assert_eq!(s("mpg", 0), "MULTIPOLYGON(((0 0,1 0,1 1,0 0)))");
    assert_eq!(s("gc", 0), "GEOMETRYCOLLECTION(POINT(1 1))");
}

async fn zero_date_db() -> MysqlTestDb {
    let db = MysqlTestDb::create().await;
    setup(
        &db,
        "SET SESSION sql_mode = '';
        CREATE TABLE z (id int PRIMARY KEY, d date, dt datetime NULL, ts timestamp NULL);
        INSERT INTO z VALUES (1, '2021-05-06', '2021-05-06 07:08:09', '2021-05-06 07:08:09'),
            (7, '0000-00-00', '2020-00-15 10:00:00', '0000-00-00 00:00:00');",
    )
    .await;
    db
}

fn key_chunk() -> ChunkSpec {
    ChunkSpec {
        id: "k..".into(),
        range: ChunkRange::IntKey {
            column: "id".into(),
            lo: None,
            hi: None,
        },
        estimated_rows: 2,
    }
}

#[tokio::test]
async fn zero_dates_fail_by_default_naming_column_range_and_key() {
    let db = zero_date_db().await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let table = catalog.table(&TableName::new(None, "z")).unwrap();
    let req = table_request(table, key_chunk());
    assert_eq!(req.policies.global.zero_date, None);
    let err = read(&source, &req).await.unwrap_err();
    match &err {
        ConnectorError::Value {
            table,
            column,
            range,
            message,
        } => {
            assert_eq!(table, "z");
            assert_eq!(column, "d");
            assert_eq!(range, "id in [-inf, +inf)");
            assert!(message.contains("zero date `0000-00-00`"), "{message}");
            assert!(message.contains("id = 7"), "{message}");
        }
        other => panic!("expected a value error, got {other:?}"),
    }
    assert!(err.to_string().contains("z.d"), "{err}");
}

#[tokio::test]
async fn zero_dates_become_null_under_policy_null() {
    let db = zero_date_db().await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let table = catalog.table(&TableName::new(None, "z")).unwrap();
    let mut req = table_request(table, key_chunk());
    req.policies.global.zero_date = Some(ValuePolicy::Null);
    // `2020-00-15` is a partial-zero date, with a policy of its own.
    let err = read(&source, &req).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Value { column, message, .. }
            if column == "dt" && message.contains("partial-zero date `2020-00-15 10:00:00`")
                && message.contains("policies.invalid_date")),
        "{err}"
    );
    req.policies.global.invalid_date = Some(ValuePolicy::Null);
    let batches = read(&source, &req).await.unwrap();
    let b = &batches[0];
    assert_eq!(b.num_rows(), 2);
    for name in ["d", "dt", "ts"] {
        let c = b.column_by_name(name).unwrap();
        assert!(!c.is_null(0), "{name} row 1 is a real date");
        assert!(c.is_null(1), "{name} row 7 is a zero date");
    }
}

#[tokio::test]
async fn values_that_do_not_fit_fail_with_context() {
    let db = MysqlTestDb::create().await;
    setup(
        &db,
        "CREATE TABLE d (id int PRIMARY KEY, t time, flag tinyint(1));
        INSERT INTO d VALUES (1, '10:00:00', 1), (2, '100:00:00', 1), (3, '00:00:01', 2);",
    )
    .await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let table = catalog.table(&TableName::new(None, "d")).unwrap();
    let err = read(&source, &table_request(table, key_chunk()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ConnectorError::Value { ref column, .. } if column == "t"),
        "{text}"
    );
    assert!(
        text.contains("100:00:00") && text.contains("id = 2"),
        "{text}"
    );

    setup(&db, "DELETE FROM d WHERE id = 2").await;
    let err = read(&source, &table_request(table, key_chunk()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Value { ref column, .. } if column == "flag"),
        "{err}"
    );
}

#[tokio::test]
async fn timestamps_are_read_in_utc_whatever_the_session_zone() {
    let db = MysqlTestDb::create().await;
    setup(
        &db,
        "SET time_zone = '+05:00';
        CREATE TABLE tz (id int PRIMARY KEY, ts timestamp(6) NULL, dt datetime(6));
        INSERT INTO tz VALUES (1, '2024-03-01 12:00:00.250000', '2024-03-01 12:00:00.250000');",
    )
    .await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let b = read_table(&source, "tz").await;
    let utc = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_micro_opt(7, 0, 0, 250_000)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let ts = b.column_by_name("ts").unwrap();
    assert_eq!(ts.as_primitive::<TimestampMicrosecondType>().value(0), utc);
    // DATETIME is naive: it stays as written.
    let dt = b.column_by_name("dt").unwrap();
    assert_eq!(
        dt.as_primitive::<TimestampMicrosecondType>().value(0),
        utc + 5 * 3_600_000_000
    );
}

#[tokio::test]
async fn plan_chunks_splits_the_integer_key_and_loses_no_row() {
    let db = MysqlTestDb::create().await;
    setup(
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, v varchar(10));
        INSERT INTO big (id, v) WITH RECURSIVE s (n) AS
            (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000) SELECT n, 'x' FROM s;
        CREATE TABLE nokey (v int);
        INSERT INTO nokey VALUES (1), (2);",
    )
    .await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let big = catalog.table(&TableName::new(None, "big")).unwrap();
    let chunks = source.plan_chunks(big, 100).await.unwrap();
    assert!(chunks.len() >= 9, "{chunks:?}");
    let again = source.plan_chunks(big, 100).await.unwrap();
    assert_eq!(chunks, again, "ids and ranges are stable");
    let bounds: Vec<(Option<i64>, Option<i64>)> = chunks
        .iter()
        .map(|c| match &c.range {
            ChunkRange::IntKey { column, lo, hi } => {
                assert_eq!(column, "id");
                (*lo, *hi)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bounds.first().unwrap().0, None);
    assert_eq!(bounds.last().unwrap().1, None);
    for w in bounds.windows(2) {
        assert_eq!(w[0].1, w[1].0);
    }
    let mut ids = Vec::new();
    for c in chunks {
        for b in read(&source, &table_request(big, c)).await.unwrap() {
            ids.extend(
                b.column(0)
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
    }
    assert_eq!(ids, (1..=1000).collect::<Vec<i32>>());
    assert_eq!(source.count_rows(&big.name).await.unwrap(), 1000);

    let nokey = catalog.table(&TableName::new(None, "nokey")).unwrap();
    let chunks = source.plan_chunks(nokey, 1).await.unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].range, ChunkRange::Whole);
    assert_eq!(chunks[0].id, "whole");
}

/// A table of many types, and two batches for it (rows 1–2 and 3).
fn write_fixture(target: &MysqlTarget, name: &str) -> (TargetTable, Vec<RecordBatch>) {
    use LogicalType::*;
    let table = target_table(
        target,
        name,
        &[
            ("id", Int32, false),
            ("flag", Bool, true),
            ("small", Int8, true),
            ("big", Int64, true),
            ("ubig", UInt64, true),
            ("f", Float32, true),
            ("dbl", Float64, true),
            (
                "amount",
                Decimal {
                    precision: 12,
                    scale: 2,
                },
                true,
            ),
            ("huge", BigDecimal, true),
            ("txt", Text, true),
            (
                "bytes",
                Binary {
                    length: None,
                    fixed: false,
                },
                true,
            ),
            ("day", Date, true),
            ("at", Time { precision: 6 }, true),
            ("naive", Timestamp { precision: 6 }, true),
            ("instant", TimestampTz { precision: 6 }, true),
            ("shape", Geometry, true),
            (
                "bits",
                Bit {
                    length: 10,
                    varying: false,
                },
                true,
            ),
            ("doc", Json, true),
            (
                "kind",
                Enum {
                    name: None,
                    values: vec!["a".into(), "b'c".into()],
                },
                true,
            ),
            ("u", Uuid, true),
            ("span", Interval, true),
        ],
    );
    let mk = |rows: &[usize]| {
        let has = |r: usize| r != 2;
        let mut id = Int32Builder::new();
        let mut flag = BooleanBuilder::new();
        let mut small = Int8Builder::new();
        let mut big = Int64Builder::new();
        let mut ubig = UInt64Builder::new();
        let mut f = Float32Builder::new();
        let mut dbl = Float64Builder::new();
        let mut amount = Decimal128Builder::new()
            .with_precision_and_scale(12, 2)
            .unwrap();
        let mut huge = StringBuilder::new();
        let mut txt = StringBuilder::new();
        let mut bytes = BinaryBuilder::new();
        let mut day = Date32Builder::new();
        let mut at = Time64MicrosecondBuilder::new();
        let mut naive = TimestampMicrosecondBuilder::new();
        let mut instant = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut shape = StringBuilder::new();
        let mut bits = StringBuilder::new();
        let mut doc = StringBuilder::new();
        let mut kind = StringBuilder::new();
        let mut u = FixedSizeBinaryBuilder::new(16);
        let mut span = IntervalMonthDayNanoBuilder::new();
        for &r in rows {
            id.append_value(r as i32);
            if !has(r) {
                flag.append_null();
                small.append_null();
                big.append_null();
                ubig.append_null();
                f.append_null();
                dbl.append_null();
                amount.append_null();
                huge.append_null();
                txt.append_null();
                bytes.append_null();
                day.append_null();
                at.append_null();
                naive.append_null();
                instant.append_null();
                shape.append_null();
                bits.append_null();
                doc.append_null();
                kind.append_null();
                u.append_null();
                span.append_null();
                continue;
            }
            flag.append_value(r == 1);
            small.append_value(-128);
            big.append_value(i64::MIN);
            ubig.append_value(u64::MAX);
            f.append_value(1.000_000_1);
            dbl.append_value(-2.2250738585072014e-308);
            amount.append_value(-123_456_789);
            huge.append_value(
                "-12345678901234567890123456789012345.123456789012345678901234567891",
            );
            txt.append_value(if r == 1 {
                "tab\tnl\ncr\rbs\\ \\N 😀"
            } else {
                ""
            });
            bytes.append_value(if r == 1 {
                &[0x00, 0x09, 0x0a, 0x5c, 0x0d, 0xff][..]
            } else {
                b""
            });
            day.append_value(-1);
            at.append_value(86_399_999_999);
            naive.append_value(-1);
            instant.append_value(1_700_000_000_123_456);
            shape.append_value("POINT(1 2)");
            bits.append_value("1000000101");
            doc.append_value(r#"{"k": ["v", 1]}"#);
            kind.append_value("b'c");
            u.append_value([0xab; 16]).unwrap();
            span.append_value(IntervalMonthDayNano::new(14, 3, 5_500_000_000));
        }
        batch_for(
            &table,
            vec![
                Arc::new(id.finish()),
                Arc::new(flag.finish()),
                Arc::new(small.finish()),
                Arc::new(big.finish()),
                Arc::new(ubig.finish()),
                Arc::new(f.finish()),
                Arc::new(dbl.finish()),
                Arc::new(amount.finish()),
                Arc::new(huge.finish()),
                Arc::new(txt.finish()),
                Arc::new(bytes.finish()),
                Arc::new(day.finish()),
                Arc::new(at.finish()),
                Arc::new(naive.finish()),
                Arc::new(instant.finish()),
                Arc::new(shape.finish()),
                Arc::new(bits.finish()),
                Arc::new(doc.finish()),
                Arc::new(kind.finish()),
                Arc::new(u.finish()),
                Arc::new(span.finish()),
            ],
        )
    };
    let batches = vec![mk(&[1, 2]), mk(&[3])];
    (table, batches)
}

async fn check_written(db: &MysqlTestDb, method: LoadMethod) {
    let target = MysqlTarget::connect(&url(db))
        .await
        .unwrap()
        .with_load_method(method);
    assert_eq!(target.load_method(), method);
    let (table, batches) = write_fixture(&target, "loaded");
    create(&target, &table).await;
    assert!(target.table_exists(&table.name).await.unwrap());
    let written = write(&target, &table, "k..", batches, true).await.unwrap();
    assert_eq!(written, 3);
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 3);
    let markers = target.committed_chunks("job1").await.unwrap();
    assert_eq!(markers.len(), 1);
    assert_eq!(
        (
            markers[0].table.as_str(),
            markers[0].chunk_id.as_str(),
            markers[0].rows
        ),
        ("loaded", "k..", 3)
    );

    let mut conn = db.conn().await;
    type Row = Vec<Option<String>>;
    let rows: Vec<mysql_async::Row> = conn
        .query(
            "SELECT CONCAT_WS('|', flag, small, big, ubig, dbl), CAST(amount AS CHAR),
                CAST(huge AS CHAR), txt, HEX(`bytes`), CAST(day AS CHAR), CAST(`at` AS CHAR),
                CAST(naive AS CHAR), CAST(instant AS CHAR), ST_AsText(shape), BIN(bits),
                CAST(id AS CHAR), CONCAT_WS('|', doc, kind, u, span)
             FROM loaded ORDER BY id",
        )
        .await
        .unwrap();
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<String>, _>(i).flatten())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3);
    let r1 = &rows[0];
    assert_eq!(
        r1[0].as_deref(),
        Some("1|-128|-9223372036854775808|18446744073709551615|-2.2250738585072014e-308")
    );
    assert_eq!(r1[1].as_deref(), Some("-1234567.89"));
    assert_eq!(
        r1[2].as_deref(),
        Some("-12345678901234567890123456789012345.123456789012345678901234567891")
    );
    assert_eq!(r1[3].as_deref(), Some("tab\tnl\ncr\rbs\\ \\N 😀"));
    assert_eq!(r1[4].as_deref(), Some("00090A5C0DFF"));
    assert_eq!(r1[5].as_deref(), Some("1969-12-31"));
    assert_eq!(r1[6].as_deref(), Some("23:59:59.999999"));
    assert_eq!(r1[7].as_deref(), Some("1969-12-31 23:59:59.999999"));
    assert_eq!(r1[8].as_deref(), Some("2023-11-14 22:13:20.123456"));
    assert_eq!(r1[9].as_deref(), Some("POINT(1 2)"));
    assert_eq!(r1[10].as_deref(), Some("1000000101"));
    let others = r1[12].as_deref().unwrap();
    let parts: Vec<&str> = others.split('|').collect();
    let doc: serde_json::Value = serde_json::from_str(parts[0]).unwrap();
    assert_eq!(doc, serde_json::json!({"k": ["v", 1]}));
    assert_eq!(
        &parts[1..],
        [
            "b'c",
            "abababab-abab-abab-abab-abababababab",
            "P1Y2M3DT0H0M5.500000S"
        ]
    );
    let r2 = &rows[1];
    assert_eq!(r2[11].as_deref(), Some("2"));
    assert!(r2[0].is_none() || r2[0].as_deref() == Some(""));
    assert_eq!(
        (r2[3].as_deref(), r2[4].as_deref(), r2[9].as_deref()),
        (None, None, None)
    );
    let r3 = &rows[2];
    assert_eq!(
        (r3[3].as_deref(), r3[4].as_deref()),
        (Some(""), Some("")),
        "empty, not NULL"
    );
    assert!(r3[0].as_deref().unwrap().starts_with("0|"));
    // The float is stored exactly, as a double shows.
    let f: Option<f64> = conn
        .query_first("SELECT f + 0e0 FROM loaded WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(f, Some(1.000_000_1f32 as f64));
}

#[tokio::test]
async fn write_chunk_loads_rows_and_marker_with_load_data() {
    let db = MysqlTestDb::create().await;
    check_written(&db, LoadMethod::LocalInfile).await;
}

#[tokio::test]
async fn write_chunk_loads_rows_and_marker_with_inserts() {
    let db = MysqlTestDb::create().await;
    check_written(&db, LoadMethod::Insert).await;
}

async fn check_failures_leave_nothing(method: LoadMethod) {
    use LogicalType::*;
    let db = MysqlTestDb::create().await;
    let target = MysqlTarget::connect(&url(&db))
        .await
        .unwrap()
        .with_load_method(method);
    let table = target_table(&target, "t", &[("id", Int64, false), ("name", Text, false)]);
    create(&target, &table).await;
    let batch = |ids: &[i64], names: &[Option<&str>]| {
        batch_for(
            &table,
            vec![
                Arc::new(arrow_array::Int64Array::from(ids.to_vec())),
                Arc::new(arrow_array::StringArray::from(names.to_vec())),
            ],
        )
    };
    let good = batch(&[1, 2], &[Some("a"), Some("b")]);

    // A duplicate key in the second batch: LOCAL INFILE would skip it with a warning.
    let dup = batch(&[3, 1], &[Some("c"), Some("d")]);
    let err = write(&target, &table, "c1", vec![good.clone(), dup], true)
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("duplicate"),
        "{err}"
    );
    // A NULL in a NOT NULL column: LOCAL INFILE would store '' with a warning.
    let schema = Arc::new(Schema::new(vec![
        table.columns[0].logical.arrow_field("id", false, "bigint"),
        table.columns[1]
            .logical
            .arrow_field("name", true, "longtext"),
    ]));
    let null = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![5])),
            Arc::new(arrow_array::StringArray::from(vec![None::<&str>])),
        ],
    )
    .unwrap();
    let err = write(&target, &table, "c2", vec![good.clone(), null], true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
    // The source failed: its sender is dropped without finishing.
    let err = write(&target, &table, "c3", vec![good.clone()], false)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::ChannelClosed), "{err}");

    assert_eq!(target.count_rows(&table.name).await.unwrap(), 0);
    assert!(target.committed_chunks("job1").await.unwrap().is_empty());

    // The same connection pool still works afterwards, and a marker is written once only.
    assert_eq!(
        write(&target, &table, "c4", vec![good.clone()], true)
            .await
            .unwrap(),
        2
    );
    let again = write(&target, &table, "c4", vec![batch(&[9], &[Some("z")])], true).await;
    assert!(again.is_err(), "a chunk is committed once");
    assert_eq!(target.count_rows(&table.name).await.unwrap(), 2);
    target.delete_markers("job1").await.unwrap();
    assert!(target.committed_chunks("job1").await.unwrap().is_empty());

    // Invalid WKT is an error, not a NULL shape.
    let shapes = target_table(
        &target,
        "shapes",
        &[("id", Int64, false), ("g", Geometry, true)],
    );
    create(&target, &shapes).await;
    let batch = batch_for(
        &shapes,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3])),
            Arc::new(arrow_array::StringArray::from(vec![
                Some("POINT(1 2)"),
                None,
                Some("POINT(oops"),
            ])),
        ],
    );
    let err = write(&target, &shapes, "g1", vec![batch], true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("geometry"), "{err}");
    assert_eq!(target.count_rows(&shapes.name).await.unwrap(), 0);
}

#[tokio::test]
async fn failed_writes_leave_no_rows_and_no_marker_with_load_data() {
    check_failures_leave_nothing(LoadMethod::LocalInfile).await;
}

#[tokio::test]
async fn failed_writes_leave_no_rows_and_no_marker_with_inserts() {
    check_failures_leave_nothing(LoadMethod::Insert).await;
}

#[tokio::test]
async fn hostile_identifiers_in_ddl_write_and_read() {
    use LogicalType::*;
    let db = MysqlTestDb::create().await;
    let target = MysqlTarget::connect(&url(&db)).await.unwrap();
    for name in ["order", "we`ird\"na'me"] {
        let mut table = target_table(
            &target,
            name,
            &[
                ("select", Int32, false),
                ("co`l\"'", Varchar { length: Some(20) }, true),
            ],
        );
        table.unique_keys.push(Index {
            name: "u`q".into(),
            columns: vec!["co`l\"'".into()],
            unique: true,
            unsupported: None,
        });
        create(&target, &table).await;
        let ddl = target.ddl(&table, true);
        target.execute(&ddl.indexes).await.unwrap();
        target.execute(&ddl.indexes).await.unwrap();
        let batch = batch_for(
            &table,
            vec![
                Arc::new(arrow_array::Int32Array::from(vec![1, 2])),
                Arc::new(arrow_array::StringArray::from(vec![Some("o'k`\""), None])),
            ],
        );
        assert_eq!(
            write(&target, &table, "whole", vec![batch], true)
                .await
                .unwrap(),
            2
        );
        let markers = target.committed_chunks("job1").await.unwrap();
        assert!(markers.iter().any(|m| m.table == name));

        let source = MysqlSource::connect(&url(&db)).await.unwrap();
        let b = read_table(&source, name).await;
        let ids = b.column(0).as_primitive::<Int32Type>();
        let s = b.column(1).as_string::<i32>();
        let mut rows: Vec<(i32, Option<&str>)> = (0..b.num_rows())
            .map(|r| (ids.value(r), (!s.is_null(r)).then(|| s.value(r))))
            .collect();
        rows.sort();
        assert_eq!(rows, [(1, Some("o'k`\"")), (2, None)]);
        let catalog = source.introspect(&[]).await.unwrap();
        let t = catalog.table(&TableName::new(None, name)).unwrap();
        assert_eq!(t.unique_keys[0].name, "u`q");
        target
            .execute(std::slice::from_ref(&ddl.truncate))
            .await
            .unwrap();
        assert_eq!(target.count_rows(&table.name).await.unwrap(), 0);
        target
            .execute(std::slice::from_ref(&ddl.drop))
            .await
            .unwrap();
        assert!(!target.table_exists(&table.name).await.unwrap());
    }
}

#[tokio::test]
async fn ddl_creates_keys_and_foreign_keys() {
    use LogicalType::*;
    let db = MysqlTestDb::create().await;
    let target = MysqlTarget::connect(&url(&db)).await.unwrap();
    let mut parent = target_table(
        &target,
        "parent",
        &[("id", Int64, false), ("code", Text, false)],
    );
    parent.columns[0].auto_increment = true;
    parent.unique_keys.push(Index {
        name: "uq_code".into(),
        columns: vec!["code".into()],
        unique: true,
        unsupported: None,
    });
    let mut child = target_table(
        &target,
        "child",
        &[("id", Int64, false), ("parent_id", Int64, true)],
    );
    child.indexes.push(Index {
        name: "idx_parent".into(),
        columns: vec!["parent_id".into()],
        unique: false,
        unsupported: None,
    });
    child.foreign_keys.push(decant_core::ForeignKey {
        name: "fk_child_parent".into(),
        columns: vec!["parent_id".into()],
        ref_table: TableName::new(None, "parent"),
        ref_columns: vec!["id".into()],
        on_delete: Some("CASCADE".into()),
        on_update: None,
    });
    for t in [&parent, &child] {
        let ddl = target.ddl(t, true);
        assert!(ddl.sequences.is_empty());
        target.execute(&ddl.create).await.unwrap();
        target.execute(&ddl.indexes).await.unwrap();
    }
    target
        .execute(&target.ddl(&child, true).foreign_keys)
        .await
        .unwrap();

    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let p = catalog.table(&parent.name).unwrap();
    assert!(p.column("id").unwrap().auto_increment);
    assert_eq!(p.primary_key, ["id"]);
    assert_eq!(p.unique_keys[0].columns, ["code"]);
    let c = catalog.table(&child.name).unwrap();
    assert_eq!(c.foreign_keys[0].on_delete.as_deref(), Some("CASCADE"));
    assert_eq!(
        c.indexes.iter().filter(|i| i.name == "idx_parent").count(),
        1
    );
    // Explicit ids move AUTO_INCREMENT past them.
    setup(
        &db,
        "INSERT INTO parent (id, code) VALUES (41, 'a'); INSERT INTO parent (code) VALUES ('b');",
    )
    .await;
    let mut conn = db.conn().await;
    let max: Option<i64> = conn
        .query_first("SELECT MAX(id) FROM parent")
        .await
        .unwrap();
    assert_eq!(max, Some(42));
}

#[tokio::test]
async fn scan_hazards_counts_zero_dates_and_samples_keys() {
    use decant_connectors::{HazardBound, HazardCheck};
    use decant_core::hazard::HazardKind;
    let db = zero_date_db().await;
    setup(
        &db,
        "SET SESSION sql_mode = '';
        INSERT INTO z VALUES (8, '0000-00-00', '0000-00-00 10:00:00', NULL), (9, NULL, NULL, NULL);",
    )
    .await;
    let source = MysqlSource::connect(&url(&db)).await.unwrap();
    let catalog = source.introspect(&[]).await.unwrap();
    let table = catalog.table(&TableName::new(None, "z")).unwrap();
    let check = |column: &str, kind| HazardCheck {
        column: column.into(),
        kind,
        bound: HazardBound::None,
    };
    let checks = [
        check("d", HazardKind::ZeroDate),
        check("d", HazardKind::InvalidDate),
        check("dt", HazardKind::ZeroDate),
        check("dt", HazardKind::InvalidDate),
        check("ts", HazardKind::ZeroDate),
        check("d", HazardKind::InvalidEncoding),
    ];
    let found = source
        .scan_hazards(table, &decant_core::ChunkRange::Whole, &checks)
        .await
        .unwrap();
    let counts: Vec<Option<u64>> = found.iter().map(|f| f.as_ref().map(|c| c.rows)).collect();
    assert_eq!(counts, [Some(2), Some(0), Some(0), Some(2), Some(1), None]);
    assert_eq!(found[0].as_ref().unwrap().sample_keys, ["7", "8"]);
    assert_eq!(found[3].as_ref().unwrap().sample_keys, ["7", "8"]);
    assert!(found[1].as_ref().unwrap().sample_keys.is_empty());
}
