//! The HTTP example plan sets every `[source.http]` key, so docs/http.md and the code agree.

use decant_core::http::{HttpAuth, HttpOptions, Pagination};
use decant_core::plan::Plan;

#[test]
fn http_plan_parses_and_sets_every_http_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/http-plan.toml");
    let text = std::fs::read_to_string(path).expect("examples/http-plan.toml exists");
    let plan = Plan::from_toml(&text).expect("the http plan parses");
    let http = plan.source.http.expect("a [source.http] section");
    assert_eq!(
        http.auth,
        Some(HttpAuth::Bearer {
            token_env: "CRM_API_TOKEN".into()
        })
    );
    let styles: Vec<&Pagination> = http.tables.iter().map(|t| &t.pagination).collect();
    assert!(matches!(
        styles[0],
        Pagination::Page {
            total_path: Some(_),
            ..
        }
    ));
    assert!(matches!(styles[1], Pagination::Offset { .. }));
    assert!(matches!(styles[2], Pagination::Cursor { .. }));
    assert_eq!(styles[3], &Pagination::Link);
    assert!(http.tables[2].incremental.is_some());
    let keys = serde_json::to_value(HttpOptions {
        rate_limit: Some(1.0),
        headers: [(String::new(), String::new())].into(),
        ca_file: Some(String::new()),
        ..HttpOptions::default()
    })
    .unwrap();
    for key in keys.as_object().unwrap().keys().filter(|k| *k != "tables") {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "examples/http-plan.toml lacks source.http.{key}"
        );
    }
    for key in [
        "name",
        "path",
        "records",
        "key",
        "pagination",
        "params",
        "columns",
        "incremental",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "examples/http-plan.toml lacks a table's {key}"
        );
    }
}
