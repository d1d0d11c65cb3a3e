//! Transforms end to end against the real servers: computed and constant columns, cleansing
//! functions, filters, every rule kind and action, thresholds, masking (consistent across
//! chunks and runs, and nowhere in the target, the quarantine or the logs), `decant rejects`.

mod common;
use common::*;
use mysql_async::prelude::Queryable;

fn summary(w: &Workdir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(w.path().join("summary.json")).unwrap()).unwrap()
}

fn run(w: &Workdir, plan: &std::path::Path) -> std::process::Output {
    w.decant(&[
        "run",
        "-q",
        "--summary-json",
        w.path().join("summary.json").to_str().unwrap(),
        plan.to_str().unwrap(),
    ])
}

fn step<'a>(s: &'a serde_json::Value, kind: &str, name: &str) -> &'a serde_json::Value {
    s["tables"][0]["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == kind && t["name"] == name)
        .unwrap_or_else(|| panic!("no step {kind} {name} in {s}"))
}

fn rejects_jsonl(w: &Workdir) -> Vec<serde_json::Value> {
    let out = w.decant(&["rejects", "test", "--format", "jsonl"]);
    assert_success(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn computed_constant_and_cleansed_columns_with_a_filter() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    let s = src.client().await;
    s.batch_execute(
        "CREATE TABLE customers (id int PRIMARY KEY, email text, name text, country text, signup text, amount text);
         INSERT INTO customers VALUES
          (1, '  Alice@Example.COM ', E'  Ana\\t  Maria  ', 'PT', '31.12.2020', '1.234,50'),
          (2, 'bob@example.com', 'Bo' || chr(776) || 'b', 'N/A', 'not a date', '7'),
          (3, 'x@test', 'dropped', 'XX', '01.01.2021', '0'),
          (4, 'carol@example.com', 'Carol', '-', NULL, NULL);
         INSERT INTO customers SELECT g, 'u' || g || '@example.com', 'n', 'DE', '01.02.2022', '1' FROM generate_series(5, 300) g;",
    )
    .await
    .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        r#"[load]
chunk_rows = 100
parallelism = 2
[tables.customers]
where = "country IS NULL OR country <> 'XX'"
[tables.customers.columns.email]
expr = "lower(trim(email))"
[tables.customers.columns.name]
expr = "nfc(normalize_space(name))"
[tables.customers.columns.country]
expr = "null_if(country, 'N/A', '-')"
[tables.customers.columns.signup]
expr = "parse_date(signup, '%d.%m.%Y')"
[tables.customers.columns.amount]
expr = "CAST(parse_number(amount, ',', '.') AS DECIMAL(12, 2))"
[tables.customers.columns.source_system]
value = "legacy"
[tables.customers.columns.domain]
expr = "split_part(lower(trim(email)), '@', 2)"
rename = "email_domain"
"#,
    );
    let out = run(&w, &plan);
    assert_success(&out);
    let d = dst.client().await;
    let row = d
        .query_one(
            "SELECT email, name, country, signup::text, amount::text, source_system, email_domain FROM customers WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice@example.com");
    assert_eq!(row.get::<_, String>(1), "Ana Maria");
    assert_eq!(row.get::<_, String>(2), "PT");
    assert_eq!(row.get::<_, String>(3), "2020-12-31");
    assert_eq!(row.get::<_, String>(4), "1234.50");
    assert_eq!(row.get::<_, String>(5), "legacy");
    assert_eq!(row.get::<_, String>(6), "example.com");
    let row = d
        .query_one(
            "SELECT name, country, signup::text FROM customers WHERE id = 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "B\u{f6}b",
        "NFC composes o + U+0308"
    );
    assert_eq!(row.get::<_, Option<String>>(1), None, "'N/A' became NULL");
    assert_eq!(
        row.get::<_, Option<String>>(2),
        None,
        "an unparsable date is NULL"
    );
    // Parsed dates get a date column; the filter left id 3 out and counted it.
    let ty: String = d
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'signup'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "date");
    let n: i64 = d
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 299);
    let sm = summary(&w);
    assert_eq!(sm["tables"][0]["rows_filtered"], 1);
    assert_eq!(sm["tables"][0]["rows_written"], 299);
    assert_eq!(step(&sm, "expr", "email")["changed"], 1);
    assert_eq!(step(&sm, "expr", "email")["seen"], 300);
    assert_eq!(
        step(&sm, "where", "country IS NULL OR country <> 'XX'")["changed"],
        1
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("expr email: seen 300, changed 1"));
    // Validation replays the transforms on the source: the target matches, the filtered row
    // is not expected there.
    let out = w.decant(&["validate", "-q", "--json", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &report["tables"][0];
    assert_eq!(
        (&t["source_rows"], &t["target_rows"], &t["rows_filtered"]),
        (&299.into(), &299.into(), &1.into()),
        "{t:#}"
    );
}

#[tokio::test]
async fn expression_errors_are_reported_at_plan_time_with_table_and_column() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        r#"[tables.t.columns.v]
expr = "lower(v"
[tables.t.columns.w]
expr = "no_such_column + 1"
[[tables.t.rules]]
name = "bad regex"
kind = "regex"
column = "v"
pattern = "("
"#,
    );
    for cmd in ["plan", "run"] {
        let out = w.decant(&[cmd, plan.to_str().unwrap()]);
        assert!(!out.status.success(), "{cmd} refuses the plan");
        let err = stderr(&out);
        assert!(
            err.contains("table public.t: v: expr `lower(v`"),
            "{cmd}: {err}"
        );
        assert!(
            err.contains("w: expr `no_such_column + 1`") && err.contains("no_such_column"),
            "{cmd}: {err}"
        );
        assert!(
            err.contains("rule `bad regex`") && err.contains("invalid regex"),
            "{cmd}: {err}"
        );
    }
    let tables: i64 = dst
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing touched the target");
}

const RULES_TABLE: &str = "CREATE TABLE orders (id int PRIMARY KEY, email text, qty int, status text, code text, ref text);
 INSERT INTO orders SELECT g, 'u' || g || '@x.org', 1, 'open', 'ABC', 'r' || g FROM generate_series(1, 400) g;
 UPDATE orders SET email = NULL WHERE id = 10;
 UPDATE orders SET qty = 0 WHERE id = 20;
 UPDATE orders SET email = 'not-an-email' WHERE id = 30;
 UPDATE orders SET status = 'weird' WHERE id IN (40, 41);
 UPDATE orders SET code = 'TOOLONG' WHERE id = 50;
 UPDATE orders SET qty = 99 WHERE id = 60;
 UPDATE orders SET ref = 'r5' WHERE id = 350;";

const RULES: &str = r#"[[tables.orders.rules]]
name = "email present"
kind = "not_null"
column = "email"
[[tables.orders.rules]]
name = "qty positive"
kind = "range"
column = "qty"
min = 1
max = 1000
[[tables.orders.rules]]
name = "email shape"
kind = "regex"
column = "email"
pattern = "^[^@]+@[^@]+$"
[[tables.orders.rules]]
name = "known status"
kind = "in_set"
column = "status"
values = ["open", "closed"]
action = "warn"
[[tables.orders.rules]]
name = "code length"
kind = "length"
column = "code"
max = 3
[[tables.orders.rules]]
name = "qty sane"
kind = "expr"
sql = "qty < 50"
[[tables.orders.rules]]
name = "ref unique"
kind = "unique"
columns = ["ref"]
"#;

#[tokio::test]
async fn every_rule_kind_rejects_or_warns_and_rejects_are_exported() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client().await.batch_execute(RULES_TABLE).await.unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        &format!("[load]\nchunk_rows = 100\nparallelism = 3\nmax_rejects = 10\n{RULES}"),
    );
    let out = run(&w, &plan);
    assert_success(&out);
    let d = dst.client().await;
    let ids: Vec<i32> = d
        .query(
            "SELECT id FROM orders WHERE id IN (5, 10, 20, 30, 40, 41, 50, 60, 350) ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // 5 and 350 share a ref: the first loaded wins (chunks run in parallel, so either may).
    assert_eq!(
        ids.iter().filter(|i| **i == 5 || **i == 350).count(),
        1,
        "{ids:?}"
    );
    assert!(
        ids.contains(&40) && ids.contains(&41),
        "warn rows load: {ids:?}"
    );
    for bad in [10, 20, 30, 50, 60] {
        assert!(!ids.contains(&bad), "{bad} rejected: {ids:?}");
    }
    let n: i64 = d
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 394);
    let rejects = rejects_jsonl(&w);
    assert_eq!(rejects.len(), 6, "{rejects:?}");
    let rule_of = |id: &str| {
        rejects
            .iter()
            .find(|r| r["location"] == format!("id={id}"))
            .map(|r| r["rule"].as_str().unwrap().to_string())
    };
    assert_eq!(rule_of("10").as_deref(), Some("not_null(email present)"));
    assert_eq!(rule_of("20").as_deref(), Some("range(qty positive)"));
    assert_eq!(rule_of("30").as_deref(), Some("regex(email shape)"));
    assert_eq!(rule_of("50").as_deref(), Some("length(code length)"));
    assert_eq!(rule_of("60").as_deref(), Some("expr(qty sane)"));
    assert!(rejects.iter().any(
        |r| r["rule"] == "unique(ref unique)" && r["reason"].as_str().unwrap().contains("ref")
    ));
    let r10 = rejects.iter().find(|r| r["location"] == "id=10").unwrap();
    assert_eq!(r10["record"]["qty"], "1");
    assert_eq!(r10["table"], "public.orders");
    let sm = summary(&w);
    assert_eq!(sm["tables"][0]["rows_rejected"], 6);
    assert_eq!(step(&sm, "rule:in_set", "known status")["warned"], 2);
    assert_eq!(step(&sm, "rule:not_null", "email present")["rejected"], 1);
    assert_eq!(step(&sm, "rule:unique", "ref unique")["rejected"], 1);
    // CSV export to a file.
    let csv = w.path().join("rejects.csv");
    assert_success(&w.decant(&[
        "rejects",
        "test",
        "--format",
        "csv",
        "-o",
        csv.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("table,chunk,location,rule,reason,record\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 7);
    assert!(
        text.contains("id=20,range(qty positive),qty is not between 1 and 1000"),
        "{text}"
    );
}

#[tokio::test]
async fn a_fail_rule_stops_the_job_before_its_chunk_commits() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 500) g;")
        .await
        .unwrap();
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        "[load]\nchunk_rows = 100\nparallelism = 1\n[[tables.t.rules]]\nname = \"no 333\"\nkind = \"expr\"\nsql = \"v <> 333\"\naction = \"fail\"\n",
    );
    let out = run(&w, &plan);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("rule `no 333`") && err.contains("id=333"),
        "{err}"
    );
    let d = dst.client().await;
    let in_chunk: i64 = d
        .query_one("SELECT count(*) FROM t WHERE id > 300 AND id <= 400", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_chunk, 0, "the chunk holding the row did not commit");
    let markers: i64 = d
        .query_one(
            "SELECT coalesce(sum(row_count), 0)::int8 FROM _decant_chunks",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rows: i64 = d
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, markers, "what committed is consistent");
}

#[tokio::test]
async fn reject_thresholds_per_table_ratio_and_job() {
    let (src, dst) = (PgTestDb::create().await, PgTestDb::create().await);
    src.client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g % 20 FROM generate_series(1, 200) g;")
        .await
        .unwrap();
    // v = 0 on 10 rows of 200 (5 %).
    let rule = "[[tables.t.rules]]\nname = \"v nonzero\"\nkind = \"expr\"\nsql = \"v <> 0\"\n";
    let cases = [
        (
            "[load]\nmax_rejects = 100\n[tables.t]\nmax_rejects = 9\n",
            "its max_rejects = 9",
        ),
        (
            "[load]\nmax_rejects = 100\n[tables.t]\nmax_reject_ratio = 0.04\n",
            "max_reject_ratio = 0.04",
        ),
        (
            "[load]\nmax_rejects = 100\nmax_reject_ratio = 0.01\n",
            "load.max_reject_ratio = 0.01",
        ),
        ("[load]\nmax_rejects = 9\n", "load.max_rejects = 9"),
    ];
    for (settings, message) in cases {
        let w = Workdir::new();
        let settings = settings.replacen("[load]\n", "[load]\nif_exists = \"drop\"\n", 1);
        let plan = w.plan(&src.url, &dst.url, &format!("{settings}{rule}"));
        let out = w.decant(&["run", "-q", plan.to_str().unwrap()]);
        assert!(!out.status.success(), "{settings}");
        assert!(
            stderr(&out).contains(message),
            "{settings}: {}",
            stderr(&out)
        );
    }
    // Within every limit the job loads and proves written + rejected = source.
    let w = Workdir::new();
    let plan = w.plan(
        &src.url,
        &dst.url,
        &format!("[load]\nmax_rejects = 10\nmax_reject_ratio = 0.05\nif_exists = \"drop\"\n[tables.t]\nmax_rejects = 10\nmax_reject_ratio = 0.05\n{rule}"),
    );
    let out = run(&w, &plan);
    assert_success(&out);
    assert_eq!(summary(&w)["tables"][0]["rows_rejected"], 10);
}

const PEOPLE: &str = "CREATE TABLE people (id int PRIMARY KEY, email varchar(100), ssn varchar(20), name varchar(50), note text, age int);
 INSERT INTO people SELECT seq, CONCAT('person', seq, '@corp.example'), CONCAT('123-45-', LPAD(seq, 4, '0')), CONCAT('Person', seq), CONCAT('secret note ', seq), seq % 90 FROM seq_1_to_300;
 UPDATE people SET email = 'person1@corp.example' WHERE id = 150;";

const MASKS: &str = r#"[load]
chunk_rows = 100
parallelism = 2
max_rejects = 10
[tables.people.columns.email]
mask = { method = "hmac", key_env = "DECANT_TEST_MASK_KEY" }
[tables.people.columns.ssn]
mask = { method = "partial", keep = 4 }
[tables.people.columns.name]
mask = { method = "fake", key_env = "DECANT_TEST_MASK_KEY" }
[tables.people.columns.note]
mask = { method = "redact" }
[[tables.people.rules]]
name = "adult"
kind = "range"
column = "age"
min = 1
"#;

/// The raw values of the masked columns, which must appear nowhere.
fn raw_values() -> Vec<String> {
    let mut v = vec![
        "corp.example".to_string(),
        "123-45-".into(),
        "secret note".into(),
    ];
    for id in [1, 90, 150, 180, 270] {
        v.push(format!("Person{id}"));
    }
    v
}

fn assert_no_raw(what: &str, text: &str) {
    for raw in raw_values() {
        assert!(
            !text.contains(&raw),
            "{what} holds the raw value `{raw}`:\n{text}"
        );
    }
}

fn masked_run(w: &Workdir, plan: &std::path::Path) -> std::process::Output {
    w.command(&["run", plan.to_str().unwrap()])
        .env("DECANT_TEST_MASK_KEY", "test key 42")
        .env("DECANT_LOG", "debug")
        .output()
        .unwrap()
}

#[tokio::test]
async fn masks_are_stable_across_chunks_and_runs_and_leak_nowhere() {
    let (src, pg) = (MysqlTestDb::create().await, PgTestDb::create().await);
    let mut c = src.conn().await;
    c.query_drop(PEOPLE).await.unwrap();
    c.disconnect().await.unwrap();

    // MariaDB → PostgreSQL.
    let w = Workdir::new();
    let plan = w.plan(&src.url, &pg.url, MASKS);
    let out = masked_run(&w, &plan);
    assert_success(&out);
    assert_no_raw(
        "the run's output and logs",
        &format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)),
    );
    let d = pg.client().await;
    let dump: String = d
        .query_one(
            "SELECT string_agg(t::text, chr(10) ORDER BY id) FROM people t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_no_raw("the target", &dump);
    let row = |id: i32| {
        let d = &d;
        async move {
            let r = d
                .query_one(
                    "SELECT email, ssn, name, note FROM people WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
            )
        }
    };
    let (e1, ssn1, name1, note1) = row(1).await;
    assert_eq!(e1.len(), 64, "hex HMAC-SHA256");
    assert_eq!(
        row(150).await.0,
        e1,
        "same input, same mask, in another chunk"
    );
    assert_ne!(row(2).await.0, e1);
    assert_eq!(ssn1, "*******0001");
    assert_eq!(name1.len(), "Person1".len());
    assert!(
        name1.chars().next().unwrap().is_ascii_uppercase()
            && name1.ends_with(|c: char| c.is_ascii_digit())
    );
    assert_eq!(note1, "[redacted]");
    let n: i64 = d
        .query_one("SELECT count(*) FROM people", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 297, "age 0 rows (90, 180, 270) are rejected");

    // The quarantine holds masked records only.
    let rejects = rejects_jsonl(&w);
    assert_eq!(rejects.len(), 3);
    let r90 = rejects
        .iter()
        .find(|r| r["location"] == "id=90")
        .expect("id=90 quarantined");
    assert_eq!(r90["record"]["ssn"], "*******0090");
    assert_eq!(r90["record"]["note"], "[redacted]");
    let db = rusqlite::Connection::open(w.state()).unwrap();
    let mut q = db
        .prepare("SELECT coalesce(message, '') || coalesce(location, '') || coalesce(rule, '') || coalesce(record, '') FROM error_logs")
        .unwrap();
    let logged: Vec<String> = q
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(logged.len() >= 3);
    assert_no_raw("error_logs", &logged.join("\n"));

    // MariaDB → MariaDB, another job: the same masks.
    let dst = MysqlTestDb::create().await;
    let w2 = Workdir::new();
    let plan = w2.plan(&src.url, &dst.url, MASKS);
    let out = masked_run(&w2, &plan);
    assert_success(&out);
    let mut m = dst.conn().await;
    let (email, name): (String, String) = m
        .query_first("SELECT email, name FROM people WHERE id = 1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(email, e1, "same key, same mask in another run");
    assert_eq!(name, name1, "fakes are stable per input");
    let dump: Option<String> = m
        .query_first("SELECT GROUP_CONCAT(CONCAT_WS('|', id, email, ssn, name, note) SEPARATOR '\\n') FROM people")
        .await
        .unwrap();
    assert_no_raw("the MariaDB target", &dump.unwrap());
    m.disconnect().await.unwrap();

    // Without the key the plan is refused before anything runs, naming the variable.
    let w3 = Workdir::new();
    let plan = w3.plan(&src.url, &dst.url, MASKS);
    let out = w3.decant(&["plan", plan.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("DECANT_TEST_MASK_KEY"),
        "{}",
        stderr(&out)
    );
}
