//! SQLite ↔ PostgreSQL: every SQLite declared type lands as the documented PostgreSQL type with
//! its value intact, and PostgreSQL → SQLite → PostgreSQL gives back the same rows.

mod common;
use common::*;

#[tokio::test]
async fn sqlite_types_land_in_postgres_exactly() {
    let (src, dst) = (SqliteTestDb::create(), PgTestDb::create().await);
    let conn = rusqlite::Connection::open(&src.path).unwrap();
    conn.execute_batch(
        r#"CREATE TABLE "all types" (
             id INTEGER PRIMARY KEY, flag BOOLEAN, r REAL, money NUMERIC(10,2), n NUMERIC,
             vc VARCHAR(20), ch CHAR(3), tx TEXT, bl BLOB, d DATE, dt DATETIME, tz TIMESTAMPTZ,
             t TIME, u UUID, j JSON, anything);
           INSERT INTO "all types" VALUES
             (1, 1, 1.5, 12.34, '12345.678', 'héllo', 'ab', 'emoji 😀 tab	nl
x', x'00ff', '1969-12-31', '2024-02-29 23:59:59.123456', '2024-01-01 00:00:00+02:00',
              '12:34:56.5', '123e4567-e89b-12d3-a456-426614174000', '{"a":[1,2]}', 42),
             (2, 0, -1e300, -0.05, '-1', '', 'xyz', '', x'', '0001-01-01', '1970-01-01 00:00:00', '1999-12-31 23:59:59',
              '00:00:00', '00000000-0000-0000-0000-000000000000', '[]', 'text'),
             (9223372036854775807, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"#,
    )
    .unwrap();
    drop(conn);
    let w = Workdir::new();
    assert_success(&w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]));
    let d = dst.client().await;
    d.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    let types: Vec<(String, String)> = d
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = '\"all types\"'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want_types = [
        ("id", "bigint"),
        ("flag", "boolean"),
        ("r", "double precision"),
        ("money", "numeric(10,2)"),
        ("n", "numeric"),
        ("vc", "character varying(20)"),
        ("ch", "character(3)"),
        ("tx", "text"),
        ("bl", "bytea"),
        ("d", "date"),
        ("dt", "timestamp(6) without time zone"),
        ("tz", "timestamp(6) with time zone"),
        ("t", "time(6) without time zone"),
        ("u", "uuid"),
        ("j", "jsonb"),
        ("anything", "text"),
    ];
    assert_eq!(
        types,
        want_types
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    let rows = d
        .query(
            r#"SELECT id::text, flag::text, r::text, money::text, n::text, vc, ch::text, tx, encode(bl, 'hex'), d::text,
                      dt::text, tz::text, t::text, u::text, j::text, anything FROM "all types" ORDER BY id"#,
            &[],
        )
        .await
        .unwrap();
    let got: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| (0..16).map(|i| r.get(i)).collect())
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got[0],
        vec![
            s("1"),
            s("true"),
            s("1.5"),
            s("12.34"),
            s("12345.678"),
            s("héllo"),
            s("ab"),
            s("emoji 😀 tab\tnl\nx"),
            s("00ff"),
            s("1969-12-31"),
            s("2024-02-29 23:59:59.123456"),
            s("2023-12-31 22:00:00+00"),
            s("12:34:56.5"),
            s("123e4567-e89b-12d3-a456-426614174000"),
            s(r#"{"a": [1, 2]}"#),
            s("42"),
        ]
    );
    assert_eq!(
        got[1],
        vec![
            s("2"),
            s("false"),
            s("-1e+300"),
            s("-0.05"),
            s("-1"),
            s(""),
            s("xyz"),
            s(""),
            s(""),
            s("0001-01-01"),
            s("1970-01-01 00:00:00"),
            s("1999-12-31 23:59:59+00"),
            s("00:00:00"),
            s("00000000-0000-0000-0000-000000000000"),
            s("[]"),
            s("text"),
        ]
    );
    let mut null_row = vec![s("9223372036854775807")];
    null_row.extend(std::iter::repeat_n(None, 15));
    assert_eq!(got[2], null_row);
}

#[tokio::test]
async fn postgres_to_sqlite_and_back_gives_the_same_rows() {
    let (src, mid, back) = (
        PgTestDb::create().await,
        SqliteTestDb::create(),
        PgTestDb::create().await,
    );
    let s = src.client().await;
    s.batch_execute(
        r#"CREATE TABLE customers (id bigint PRIMARY KEY, name varchar(40) NOT NULL, code char(3), vip boolean);
           CREATE TABLE "order" (
             id bigint PRIMARY KEY, customer_id bigint REFERENCES customers(id), amount numeric(12,2),
             exact numeric(38,10), huge numeric, note text, payload bytea, day date, at timestamp,
             at_tz timestamptz, clock time, span interval, ref uuid, doc jsonb, score double precision);
           INSERT INTO customers SELECT g, 'customer ' || g || ' 😀', 'c' || (g % 10), g % 2 = 0 FROM generate_series(1, 200) g;
           INSERT INTO "order" SELECT g, 1 + g % 200, g * 1.01, g / 7.0, 10::numeric ^ 40 + g, E'line\ttab\n' || g,
             decode(lpad(to_hex(g), 8, '0'), 'hex'), date '1950-01-01' + g, timestamp '2000-01-01' + g * interval '1.000001 second',
             timestamptz '2020-06-01 00:00:00+00' + g * interval '1 hour', time '00:00:00' + g * interval '1 minute',
             make_interval(months => g % 13, days => g % 3, secs => g / 8.0), md5(g::text)::uuid,
             jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)), g / 3.0
           FROM generate_series(1, 3000) g;
           INSERT INTO "order" (id) VALUES (0);"#,
    )
    .await
    .unwrap();
    let w = Workdir::new();
    assert_success(&w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &mid.url, "").to_str().unwrap(),
    ]));
    let w2 = Workdir::new();
    assert_success(&w2.decant(&[
        "run",
        "-q",
        w2.plan(&mid.url, &back.url, "").to_str().unwrap(),
    ]));
    let b = back.client().await;
    assert_eq!(
        pg_digest(&s, "customers", "id").await,
        pg_digest(&b, "customers", "id").await
    );
    assert_eq!(
        pg_digest(&s, r#""order""#, "id").await,
        pg_digest(&b, r#""order""#, "id").await
    );
}
