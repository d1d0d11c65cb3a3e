//! PostgreSQL → PostgreSQL end to end: every type, FK order, hostile names, keyless, empty and
//! wide tables, if_exists modes, failures that name their chunk.

mod common;
use common::*;

const ALL_TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE all_types (
  id bigint PRIMARY KEY,
  b boolean, i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
  n12 numeric(12,2), n38 numeric(38,10), nbig numeric, money_c money,
  vc varchar(10), ch char(3), tx text, nm name,
  by bytea, d date, t time, t3 time(3), ts timestamp, ts0 timestamp(0), tstz timestamptz,
  iv interval, u uuid, j json, jb jsonb, arr int[], tarr text[],
  bits bit(4), vbits varbit(8), ip inet, net cidr, mac macaddr, m mood, dom posint,
  tz timetz, x xml, pt point, rng int4range
);
INSERT INTO all_types VALUES
 (1, true, -32768, -2147483648, -9223372036854775808, 1.5, -1.7976931348623157e308,
  -9999999999.99, 1234567890123456789012345678.1234567890, 123456789012345678901234567890123456789012345.000000000000000000001,
  -12.34, '', 'a', 'unicode 😀 𝄞 ü', 'n',
  '\x00ff5c0a09', '1900-01-01', '00:00:00', '23:59:59.999', '1969-12-31 23:59:59.999999', '2038-01-19 03:14:08',
  '2000-02-29 12:00:00.000001+05:30',
  '-1 year 2 months -3 days 04:05:06.789', '00000000-0000-0000-0000-000000000000', '{"a": [1, "x"]}', '{"b": null, "a": 1}',
  '{1,NULL,-3}', '{"with,comma","with \"quote\"",NULL,""}',
  B'1010', B'101', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 'it''s', 7,
  '04:05:06+02', '<a>x</a>', '(1,2)', '[1,10)'),
 (2, false, 32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity',
  9999999999.99, -0.0000000001, 0, 0,
  'ten chars!', 'abc', E'tab\there\nnewline \\ backslash', 'x',
  '\x', '4713-01-01 BC', '24:00:00', '12:00:00.5', '0001-01-01 00:00:00', '9999-12-31 23:59:59', '1970-01-01 00:00:00+00',
  '0', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[]', '[]', '{}', '{}',
  B'0000', B'', '::1', '::/0', 'ff:ff:ff:ff:ff:ff', 'sad', 1,
  '00:00:00+00', '', '(0,0)', 'empty'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

#[tokio::test]
async fn every_postgres_type_round_trips() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    s.batch_execute(ALL_TYPES).await.unwrap();
    // NaN and infinity: a numeric NaN can only travel in an unconstrained numeric column.
    s.batch_execute("UPDATE all_types SET nbig = 'NaN' WHERE id = 2")
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(&src.url, &dst.url, "");
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert_success(&out);
    let d = dst.client().await;
    assert_eq!(
        pg_digest(&s, "all_types", "id").await,
        pg_digest(&d, "all_types", "id").await
    );
    // Types are kept PostgreSQL to PostgreSQL, enums recreated.
    let ty: String = d
        .query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'all_types'::regclass AND attname = 'm'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "mood");
}

#[tokio::test]
async fn foreign_keys_hostile_names_empty_wide_and_keyless_tables() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    let wide_cols: Vec<String> = (0..120).map(|i| format!("c{i} int")).collect();
    let wide_vals: Vec<String> = (0..120).map(|i| format!("g + {i}")).collect();
    s.batch_execute(&format!(
        r#"CREATE SCHEMA "My Schema";
        CREATE TABLE "My Schema"."order" (id serial PRIMARY KEY, "select" text, "we""ird" int UNIQUE);
        CREATE TABLE "My Schema".line (id int PRIMARY KEY, order_id int NOT NULL REFERENCES "My Schema"."order"(id) ON DELETE CASCADE, qty int CHECK (qty > 0));
        CREATE INDEX line_order ON "My Schema".line(order_id);
        INSERT INTO "My Schema"."order" ("select", "we""ird") SELECT 's' || g, g FROM generate_series(1, 500) g;
        INSERT INTO "My Schema".line SELECT g, 1 + g % 500, 1 + g % 7 FROM generate_series(1, 3000) g;
        CREATE TABLE empty_one (id int PRIMARY KEY, v text);
        CREATE TABLE wide (id int PRIMARY KEY, {});
        INSERT INTO wide SELECT g, {} FROM generate_series(1, 200) g;
        CREATE TABLE keyless (a int, b text);
        INSERT INTO keyless SELECT g % 100, 'dup' FROM generate_series(1, 20000) g;
        ANALYZE;"#,
        wide_cols.join(", "),
        wide_vals.join(", ")
    ))
    .await
    .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 1000\nparallelism = 3\n",
    );
    let summary = w.path().join("summary.json");
    let out = w.decant(&[
        "run",
        "-q",
        plan.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert_success(&out);
    let d = dst.client().await;
    for (table, order) in [
        (r#""My Schema"."order""#, "id"),
        (r#""My Schema".line"#, "id"),
        ("empty_one", "id"),
        ("wide", "id"),
        ("keyless", "a, b"),
    ] {
        assert_eq!(
            pg_digest(&s, table, order).await,
            pg_digest(&d, table, order).await,
            "{table}"
        );
    }
    let fks: i64 = d
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fks, 1, "the foreign key is created after the data");
    let next: i32 = d
        .query_one(
            r#"INSERT INTO "My Schema"."order" ("select") VALUES ('new') RETURNING id"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 501, "identity continues after the loaded maximum");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let tables = json["tables"].as_array().unwrap();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(
        pos("My Schema.order") < pos("My Schema.line"),
        "referenced tables load first: {names:?}"
    );
    let keyless = tables
        .iter()
        .find(|t| t["target"] == "public.keyless")
        .unwrap();
    assert!(
        keyless["chunks"].as_u64().unwrap() > 1,
        "a table without a key is still split: {keyless}"
    );
    assert_eq!(json["rows"].as_u64().unwrap(), 500 + 3000 + 200 + 20000);
}

#[tokio::test]
async fn existing_tables_follow_if_exists() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    s.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;")
        .await
        .unwrap();
    let d = dst.client().await;
    d.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1000, 'kept?');",
    )
    .await
    .unwrap();
    let w = Workdir::new();
    let plan = w
        .plan(&src.url, &dst.url, "[load]\nif_exists = \"fail\"\n")
        .to_str()
        .unwrap()
        .to_string();

    let out = w.decant(&["run", "-q", &plan]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("target table public.t exists"),
        "{}",
        stderr(&out)
    );
    let n: i64 = d
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "a refused run touches nothing");

    let with = |mode: &str| {
        let p = w.plan(&src.url, &dst.url, "");
        std::fs::write(
            &p,
            std::fs::read_to_string(&p).unwrap() + &format!("[load]\nif_exists = \"{mode}\"\n"),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    assert_success(&w.decant(&["run", "-q", "--restart", &with("append")]));
    let n: i64 = d
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 101);
    assert_success(&w.decant(&["run", "-q", &with("truncate")]));
    let n: i64 = d
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
    d.batch_execute("ALTER TABLE t ADD COLUMN extra int")
        .await
        .unwrap();
    assert_success(&w.decant(&["run", "-q", &with("drop")]));
    assert_eq!(
        pg_digest(&s, "t", "id").await,
        pg_digest(&d, "t", "id").await,
        "drop recreates the source's definition"
    );
}

#[tokio::test]
async fn a_rejected_row_fails_its_chunk_with_table_and_range() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    s.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;")
        .await
        .unwrap();
    let d = dst.client().await;
    d.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int CHECK (v <> 777))")
        .await
        .unwrap();
    let w = Workdir::new();
    let p = w.plan(&src.url, &dst.url, "");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p).unwrap()
            + "[load]\nif_exists = \"append\"\nchunk_rows = 100\nparallelism = 1\n",
    )
    .unwrap();
    let out = w.decant(&["run", "-q", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("public.t") && err.contains("id in [") && err.contains("t_v_check"),
        "{err}"
    );
    // 1000 rows in chunks of 100: the chunk [701, 801) holds the rejected row.
    let in_bad_chunk: i64 = d
        .query_one("SELECT count(*) FROM t WHERE id >= 701 AND id < 801", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_bad_chunk, 0, "the failing chunk left nothing behind");
    let committed: i64 = d
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    let markers: i64 = d
        .query_one(
            "SELECT coalesce(sum(row_count), 0)::int8 FROM _decant_chunks",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        committed, markers,
        "every row in the target belongs to a committed chunk"
    );
}

#[tokio::test]
async fn server_time_zones_shift_nothing() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    s.batch_execute(&format!(
        "ALTER DATABASE {} SET timezone = 'Asia/Kolkata';
         CREATE TABLE t (id int PRIMARY KEY, naive timestamp, instant timestamptz, d date);
         INSERT INTO t VALUES (1, '2024-03-10 02:30:00', '2024-03-10 02:30:00+00', '2024-03-10'),
                              (2, '1969-07-20 20:17:40.123456', '1969-07-20 20:17:40.123456-05', '1969-07-20');",
        src.name
    ))
    .await
    .unwrap();
    dst.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET timezone = 'America/New_York'",
            dst.name
        ))
        .await
        .unwrap();
    let w = Workdir::new();
    assert_success(&w.decant(&[
        "run",
        "-q",
        w.plan(&src.url, &dst.url, "").to_str().unwrap(),
    ]));
    let d = dst.client().await;
    d.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    let rows = d
        .query(
            "SELECT naive::text, instant::text, d::text FROM t ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2024-03-10 02:30:00".into(),
                "2024-03-10 02:30:00+00".into(),
                "2024-03-10".into()
            ),
            (
                "1969-07-20 20:17:40.123456".into(),
                "1969-07-21 01:17:40.123456+00".into(),
                "1969-07-20".into()
            ),
        ]
    );
}

#[tokio::test]
async fn a_checksum_validation_runs_inside_the_run_when_the_plan_asks() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(8,2)); INSERT INTO t SELECT g, md5(g::text), g / 3.0 FROM generate_series(1, 150000) g;")
        .await
        .unwrap();
    let w = Workdir::new();
    // Chunks larger than the units `decant validate` digests in the databases (65,536 rows):
    // inside the run, the run's own chunks and digests are used all the same.
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 75000\n[validate]\nmode = \"checksum\"\n",
    );
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
    assert_eq!(s["validation"], "checksum: match (1 tables)");
    // The source digests were taken as the chunks streamed to the target: the check read
    // only the target.
    let report = w.last_validation_report();
    let table = &report["tables"][0];
    assert_eq!(table["chunks"], 2, "{table:#}");
    let notes = table["notes"].to_string();
    assert!(
        notes.contains("2 of 2 chunks compared with the digests computed as the run loaded them"),
        "{table:#}"
    );
    assert_eq!(table["source_rows"], 150000);
    assert_eq!(table["target_rows"], 150000);

    // On its own, validation digests both sides in the databases, in units of at most 65,536
    // rows.
    let file = w.path().join("report.json");
    assert_success(&w.decant(&[
        "validate",
        "-q",
        plan.to_str().unwrap(),
        "--report",
        file.to_str().unwrap(),
    ]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let table = &report["tables"][0];
    assert_eq!(table["chunks"], 3, "{table:#}");
    assert!(
        table["notes"].to_string().contains(
            "3 of 3 chunks proven equal by digests computed in the databases (each column's extended hash)"
        ),
        "{table:#}"
    );
}

#[tokio::test]
async fn the_in_run_checksum_catches_a_row_the_target_changed_as_it_was_written() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g;")
        .await
        .unwrap();
    // The target rewrites one row on its way in: what was sent and what is stored differ.
    dst.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN IF NEW.id = 2042 THEN NEW.v := 'tampered'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER tamper BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION tamper();",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 1000\nif_exists = \"append\"\n[validate]\nmode = \"checksum\"\n",
    );
    let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("validation (checksum) found differences in 1 table(s)"),
        "{}",
        stderr(&out)
    );
    let report = w.last_validation_report();
    let table = &report["tables"][0];
    assert!(
        table["notes"]
            .to_string()
            .contains("chunks compared with the digests computed as the run loaded them"),
        "{table:#}"
    );
    let diffs = table["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{table:#}");
    assert_eq!(diffs[0]["kind"], "changed", "{table:#}");
    assert_eq!(diffs[0]["key"], serde_json::json!(["2042"]), "{table:#}");
    assert_eq!(diffs[0]["columns"][0]["target"], "tampered", "{table:#}");
}
