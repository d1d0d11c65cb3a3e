//! MySQL/MariaDB as source and target: every MySQL type lands in PostgreSQL as documented with
//! its value intact, MySQL → MySQL and PostgreSQL → MySQL keep every row, a TIMESTAMP never
//! shifts whatever the server's zone, zero dates follow their policy, and a SIGKILLed load into
//! MySQL resumes exactly once.

mod common;
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;

const MYSQL_TYPES: &str = r#"
CREATE TABLE all_types (
  id bigint PRIMARY KEY,
  flag tinyint(1), ti tinyint, tu tinyint unsigned, si smallint, mi mediumint, i int, iu int unsigned,
  bi bigint, bu bigint unsigned, d12 decimal(12,2), d65 decimal(65,30), f float, db double,
  bt bit(5), yr year, dt date, dtm datetime(6), ts timestamp(6) NULL, tm time(6),
  ch char(3), vc varchar(20), tx text, bin binary(4), vb varbinary(10), bl blob,
  en enum('small','medium','large'), st set('a','b','c'), js json
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO all_types VALUES
 (1, 1, -128, 255, -32768, -8388608, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615, -9999999999.99, 12345678901234567890123456789012345.123456789012345678901234567890,
  1.5, -2.25, b'10101', 2024, '1000-01-01', '1969-12-31 23:59:59.999999', '2038-01-19 03:14:07.123456', '23:59:59.999999',
  'ab', 'héllo 😀', 'tab	and
newline \\ backslash', x'00010203', x'ff00', x'00ff5c0a09', 'medium', 'a,c', '{"k": [1, 2, {"x": null}]}'),
 (2, 0, 127, 0, 32767, 8388607, 2147483647, 0,
  9223372036854775807, 0, 0.05, 0, 0, 0, b'0', 1901, '9999-12-31', '9999-12-31 23:59:59.000000', '1970-01-01 05:00:01', '00:00:00',
  '', '', '', x'00000000', x'', x'', 'small', '', '[]'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

async fn mysql_exec(db: &MysqlTestDb, sql: &str) {
    let mut c = db.conn().await;
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn every_mysql_type_lands_in_postgres() {
    let (src, dst) = (MysqlTestDb::create().await, PgTestDb::create().await);
    // The session's zone must not matter: TIMESTAMP is an instant, read in UTC.
    mysql_exec(&src, &format!("SET time_zone = '+05:00'; {MYSQL_TYPES}")).await;
    let w = Workdir::new();
    assert_success(&w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]));
    let d = dst.client().await;
    d.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    let cols = [
        "flag",
        "ti",
        "tu",
        "si",
        "mi",
        "i",
        "iu",
        "bi",
        "bu",
        "d12",
        "d65",
        "f",
        "db",
        "bt",
        "yr",
        "dt",
        "dtm",
        "ts",
        "tm",
        "ch",
        "vc",
        "tx",
        "encode(bin, 'hex')",
        "encode(vb, 'hex')",
        "encode(bl, 'hex')",
        "en",
        "st",
        "js",
    ];
    let select: Vec<String> = cols
        .iter()
        .map(|c| {
            if c.contains('(') {
                c.to_string()
            } else {
                format!("{c}::text")
            }
        })
        .collect();
    let rows = d
        .query(
            &format!("SELECT {} FROM all_types ORDER BY id", select.join(", ")),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| (0..cols.len()).map(|i| r.get(i)).collect())
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got[0],
        vec![
            s("true"),
            s("-128"),
            s("255"),
            s("-32768"),
            s("-8388608"),
            s("-2147483648"),
            s("4294967295"),
            s("-9223372036854775808"),
            s("18446744073709551615"),
            s("-9999999999.99"),
            s("12345678901234567890123456789012345.123456789012345678901234567890"),
            s("1.5"),
            s("-2.25"),
            s("10101"),
            s("2024"),
            s("1000-01-01"),
            s("1969-12-31 23:59:59.999999"),
            s("2038-01-18 22:14:07.123456+00"),
            s("23:59:59.999999"),
            s("ab"),
            s("héllo 😀"),
            s("tab\tand\nnewline \\ backslash"),
            s("00010203"),
            s("ff00"),
            s("00ff5c0a09"),
            s("medium"),
            s("a,c"),
            s(r#"{"k": [1, 2, {"x": null}]}"#),
        ],
        "row 1"
    );
    assert_eq!(got[1][7], s("9223372036854775807"));
    assert_eq!(
        got[1][17],
        s("1970-01-01 00:00:01+00"),
        "TIMESTAMP '1970-01-01 05:00:01' written at +05:00 is 00:00:01 UTC"
    );
    assert!(
        got[2].iter().all(Option::is_none),
        "the NULL row stays NULL: {:?}",
        got[2]
    );
    let en_type: String = d
        .query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'all_types'::regclass AND attname = 'en'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        en_type, "all_types_en",
        "MySQL enums become PostgreSQL enum types"
    );
}

#[tokio::test]
async fn mysql_to_mysql_and_postgres_to_mysql_keep_every_row() {
    let (src, dst) = (MysqlTestDb::create().await, MysqlTestDb::create().await);
    mysql_exec(
        &src,
        MYSQL_TYPES
            .replace("'-838:59:59.000000'", "'12:00:00.5'")
            .as_str(),
    )
    .await;
    mysql_exec(&src, "CREATE TABLE `order` (id int AUTO_INCREMENT PRIMARY KEY, `we\"ird` varchar(10), KEY k (`we\"ird`)); INSERT INTO `order` (`we\"ird`) VALUES ('a'), ('b');").await;
    let w = Workdir::new();
    assert_success(&w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]));
    let (mut s, mut d) = (src.conn().await, dst.conn().await);
    assert_eq!(
        mysql_digest(&mut s, "all_types", "id").await,
        mysql_digest(&mut d, "all_types", "id").await
    );
    assert_eq!(
        mysql_digest(&mut s, "order", "id").await,
        mysql_digest(&mut d, "order", "id").await
    );
    d.query_drop("INSERT INTO `order` (`we\"ird`) VALUES ('c')")
        .await
        .unwrap();
    let next: Option<i64> = d.query_first("SELECT MAX(id) FROM `order`").await.unwrap();
    assert_eq!(
        next,
        Some(3),
        "auto-increment continues after the loaded rows"
    );

    let pg = PgTestDb::create().await;
    pg.client()
        .await
        .batch_execute(
            "CREATE TABLE p (id int PRIMARY KEY, n numeric(12,2), t text, ts timestamptz, d date, u uuid, b bytea, j jsonb, f float8);
             INSERT INTO p SELECT g, g * 1.5, 'text ' || g || ' 😀', timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute',
                    date '1999-12-31' + g, md5(g::text)::uuid, decode('00ff', 'hex'), jsonb_build_object('g', g), g / 4.0
             FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let my = MysqlTestDb::create().await;
    let w2 = Workdir::new();
    assert_success(&w2.decant(&["run", "-q", w2.plan(&pg.url, &my.url, "").to_str().unwrap()]));
    let min_uuid: String = pg
        .client()
        .await
        .query_one("SELECT min(u::text) FROM p", &[])
        .await
        .unwrap()
        .get(0);
    let mut m = my.conn().await;
    let row: Option<(i64, String, String, String, String, String, String)> = m
        .query_first("SELECT COUNT(*), CAST(SUM(n) AS CHAR), MAX(t), CAST(MAX(ts) AS CHAR), CAST(MIN(d) AS CHAR), MIN(u), HEX(MIN(b)) FROM p")
        .await
        .unwrap();
    assert_eq!(
        row.unwrap(),
        (
            500,
            "187875.00".into(),
            "text 99 😀".into(),
            "2020-01-01 08:20:00.000000".into(),
            "2000-01-01".into(),
            min_uuid,
            "00FF".into()
        )
    );
}

#[tokio::test]
async fn zero_dates_are_found_refused_and_resolved() {
    let (src, dst) = (MysqlTestDb::create().await, PgTestDb::create().await);
    mysql_exec(
        &src,
        "SET SESSION sql_mode = '';
         CREATE TABLE ev (id int PRIMARY KEY, d date, dt datetime);
         INSERT INTO ev VALUES (1, '2020-01-01', '2020-01-01 10:00:00'), (2, '0000-00-00', '2020-01-01 10:00:00'),
                               (3, '2020-00-15', '0000-00-00 00:00:00'), (4, '0000-00-00', '2021-02-03 04:05:06');",
    )
    .await;
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let base = std::fs::read_to_string(&plan).unwrap();
    let out = w.decant(&["preflight", "--json", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |col: &str, kind: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["column"] == col && f["kind"] == kind)
            .cloned()
    };
    assert_eq!(
        find("d", "zero_date").map(|f| (f["rows"].clone(), f["sample_keys"].clone())),
        Some((2.into(), serde_json::json!(["2", "4"])))
    );
    assert_eq!(
        find("d", "invalid_date").map(|f| f["rows"].clone()),
        Some(1.into())
    );
    assert_eq!(
        find("dt", "zero_date").map(|f| f["rows"].clone()),
        Some(1.into())
    );

    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("zero_date"), "{}", stderr(&out));

    std::fs::write(
        &plan,
        format!(
            "{base}[policies]\nzero_date = \"null\"\ninvalid_date = \"null\"\nscan = \"schema\"\n"
        ),
    )
    .unwrap();
    // Without the data scan the hazards are met during the load: the reader applies the policy,
    // and the summary still counts every value it changed.
    let summary = w.path().join("s.json");
    assert_success(&w.decant(&[
        "run",
        "-q",
        plan.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let mut changes: Vec<(String, String, u64)> = s["policy_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["column"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
                c["values"].as_u64().unwrap(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            ("d".into(), "invalid_date".into(), 1),
            ("d".into(), "zero_date".into(), 2),
            ("dt".into(), "zero_date".into(), 1),
        ]
    );
    let d = dst.client().await;
    let rows = d
        .query("SELECT id, d::text, dt::text FROM ev ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i32, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                Some("2020-01-01".into()),
                Some("2020-01-01 10:00:00".into())
            ),
            (2, None, Some("2020-01-01 10:00:00".into())),
            (3, None, None),
            (4, None, Some("2021-02-03 04:05:06".into())),
        ]
    );
}

#[tokio::test]
async fn sigkill_during_a_load_into_mysql_then_rerun_loads_every_row_once() {
    let (src, dst) = (PgTestDb::create().await, MysqlTestDb::create().await);
    src.client()
        .await
        .batch_execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, v text, n numeric(12,2));
             INSERT INTO big SELECT g, md5(g::text), g / 100.0 FROM generate_series(1, 400000) g;
             CREATE TABLE nokey (a int, b text);
             INSERT INTO nokey SELECT g % 100, 'x' FROM generate_series(1, 100000) g; ANALYZE;",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 20000\nparallelism = 2\n",
    );
    let mut child = w
        .command(&["run", "-q", plan.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "decant ended before it could be killed"
        );
        let mut c = dst.conn().await;
        let n: Option<i64> = c
            .query_first("SELECT COUNT(*) FROM _decant_chunks")
            .await
            .unwrap_or(None);
        c.disconnect().await.ok();
        if n.unwrap_or(0) >= 2 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_success(&w.decant(&["run", "-q", plan.to_str().unwrap()]));
    let mut c = dst.conn().await;
    let stats: Option<(i64, i64, String)> = c
        .query_first("SELECT COUNT(*), COUNT(DISTINCT id), CAST(SUM(n) AS CHAR) FROM big")
        .await
        .unwrap();
    assert_eq!(stats, Some((400_000, 400_000, "800002000.00".into())));
    let nokey: Option<(i64, i64)> = c
        .query_first("SELECT COUNT(*), SUM(a) FROM nokey")
        .await
        .unwrap();
    assert_eq!(nokey, Some((100_000, 4_950_000)));
}

#[tokio::test]
async fn mysql_to_sqlite_and_back_keeps_every_value() {
    let (src, mid, back) = (
        MysqlTestDb::create().await,
        SqliteTestDb::create(),
        MysqlTestDb::create().await,
    );
    mysql_exec(&src, MYSQL_TYPES).await;
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
    let (mut s, mut b) = (src.conn().await, back.conn().await);
    // A bit string travels through SQLite as its text of 0s and 1s and comes back as that text.
    let bits_src: Vec<Option<String>> = s
        .query("SELECT LPAD(BIN(bt), 5, '0') FROM all_types ORDER BY id")
        .await
        .unwrap();
    let bits_back: Vec<Option<String>> = b
        .query("SELECT CAST(bt AS CHAR) FROM all_types ORDER BY id")
        .await
        .unwrap();
    assert_eq!(bits_src, bits_back);
    s.query_drop("ALTER TABLE all_types DROP COLUMN bt")
        .await
        .unwrap();
    b.query_drop("ALTER TABLE all_types DROP COLUMN bt")
        .await
        .unwrap();
    assert_eq!(
        mysql_digest(&mut s, "all_types", "id").await,
        mysql_digest(&mut b, "all_types", "id").await
    );
}
