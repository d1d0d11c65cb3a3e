//! The JSON example plan sets every `[source.json]` key, so docs/files.md and the code agree.

use decant_core::files::JsonOptions;
use decant_core::plan::Plan;

#[test]
fn json_plan_parses_and_sets_every_json_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/json-plan.toml");
    let text = std::fs::read_to_string(path).expect("examples/json-plan.toml exists");
    let plan = Plan::from_toml(&text).expect("the JSON plan parses");
    let json = plan.source.json.expect("a [source.json] section");
    assert_eq!(json.paths["city"], "customer.address.city");
    assert_eq!(json.columns["amount"], "decimal(10,2)");
    let keys = serde_json::to_value(JsonOptions {
        table: Some(String::new()),
        date_formats: vec![String::new()],
        timestamp_formats: vec![String::new()],
        paths: [(String::new(), String::new())].into(),
        columns: [(String::new(), String::new())].into(),
        ..JsonOptions::default()
    })
    .unwrap();
    for key in keys.as_object().unwrap().keys() {
        let set =
            text.contains(&format!("\n{key} = ")) || text.contains(&format!("[source.json.{key}]"));
        assert!(set, "examples/json-plan.toml lacks source.json.{key}");
    }
}
