//! The README's quickstart works as written: SQLite example → a new SQLite file, then a second
//! run refuses: the tables exist, and the default swap cannot replace tables that foreign keys
//! reference.

mod common;
use common::*;

#[test]
fn quickstart_plan_migrates_the_example_shop() {
    let w = Workdir::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::create_dir_all(w.path().join("examples")).unwrap();
    std::fs::copy(
        format!("{root}/examples/shop.db"),
        w.path().join("examples/shop.db"),
    )
    .unwrap();
    std::fs::copy(
        format!("{root}/examples/quickstart.toml"),
        w.path().join("quickstart.toml"),
    )
    .unwrap();

    let out = w.decant(&["run", "quickstart.toml", "--summary-json", "summary.json"]);
    assert_success(&out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.path().join("summary.json")).unwrap())
            .unwrap();
    let src = rusqlite::Connection::open(w.path().join("examples/shop.db")).unwrap();
    let dst = rusqlite::Connection::open(w.path().join("shop-copy.db")).unwrap();
    let tables: Vec<String> = src
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.len() >= 4, "{tables:?}");
    let mut total = 0;
    for t in &tables {
        let q = format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\""));
        let a: i64 = src.query_row(&q, [], |r| r.get(0)).unwrap();
        let b: i64 = dst.query_row(&q, [], |r| r.get(0)).unwrap();
        assert_eq!(a, b, "{t}");
        total += a;
    }
    assert_eq!(summary["rows"].as_i64().unwrap(), total);

    let again = w.decant(&["run", "-q", "quickstart.toml"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("cannot be swapped") && stderr(&again).contains("foreign key"),
        "{}",
        stderr(&again)
    );
}
