//! The files example plan sets every `[source.csv]` key, so docs/files.md and the code agree.

use decant_core::files::CsvOptions;
use decant_core::plan::Plan;

#[test]
fn files_plan_parses_and_sets_every_csv_key() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/files-plan.toml"
    );
    let text = std::fs::read_to_string(path).expect("examples/files-plan.toml exists");
    let plan = Plan::from_toml(&text).expect("the files plan parses");
    let csv = plan.source.csv.expect("a [source.csv] section");
    assert_eq!(csv.delimiter.as_deref(), Some(";"));
    assert!(csv.decimal_comma);
    assert_eq!(csv.columns["amount"], "decimal(10,2)");
    let keys = serde_json::to_value(CsvOptions {
        table: Some(String::new()),
        delimiter: Some(String::new()),
        escape: Some(String::new()),
        date_formats: vec![String::new()],
        timestamp_formats: vec![String::new()],
        columns: [(String::new(), String::new())].into(),
        ..CsvOptions::default()
    })
    .unwrap();
    for key in keys.as_object().unwrap().keys() {
        let set =
            text.contains(&format!("\n{key} = ")) || text.contains(&format!("[source.csv.{key}]"));
        assert!(set, "examples/files-plan.toml lacks source.csv.{key}");
    }
}
