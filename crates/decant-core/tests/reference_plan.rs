//! The reference plan in `examples/` documents every key; it must parse, and use every key.

use decant_core::plan::{IfExists, Plan, ValidateMode, ValuePolicy};

#[test]
fn reference_plan_parses_and_sets_every_key() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/reference-plan.toml"
    );
    let text = std::fs::read_to_string(path).expect("examples/reference-plan.toml exists");
    let plan = Plan::from_toml(&text).expect("the reference plan parses");
    assert_eq!(plan.name.as_deref(), Some("sakila"));
    assert_eq!(plan.load.if_exists, IfExists::Swap);
    assert_eq!(plan.load.max_memory_bytes().unwrap(), 256_000_000);
    assert_eq!(
        plan.load.swap_retention().unwrap(),
        Some(std::time::Duration::from_secs(7 * 86_400))
    );
    assert_eq!(plan.policies.global.zero_date, Some(ValuePolicy::Null));
    assert_eq!(plan.cast.len(), 2);
    assert_eq!(plan.cast[1].column.as_deref(), Some("release_year"));
    let film = &plan.tables["film"];
    assert_eq!(film.rename.as_deref(), Some("films"));
    assert_eq!(film.key.as_deref(), Some(&["film_id".to_string()][..]));
    assert_eq!(
        film.columns["description"].target_type.as_deref(),
        Some("text")
    );
    assert!(film.columns["fulltext"].skip);
    assert!(plan.tables["staff"].skip);
    let customer = &plan.tables["customer"];
    assert_eq!(customer.filter.as_deref(), Some("active = 1"));
    assert_eq!(customer.max_rejects, Some(50));
    assert_eq!(customer.max_reject_ratio, Some(0.02));
    assert_eq!(plan.load.max_reject_ratio, Some(0.01));
    assert_eq!(
        customer.columns["email"].mask,
        Some(decant_core::transform::Mask::Hmac {
            key_env: "DECANT_MASK_KEY".into(),
            length: None
        })
    );
    assert_eq!(
        customer.columns["origin"].value,
        Some(serde_json::json!("sakila"))
    );
    assert_eq!(customer.rules.len(), 3);
    assert_eq!(
        customer.rules[1].action,
        decant_core::transform::RuleAction::Warn
    );
    assert_eq!(customer.rules[2].check.kind(), "unique");
    assert_eq!(plan.validate.mode, ValidateMode::Checksum);
    assert_eq!(plan.validate.float_tolerance, 1e-6);
    assert_eq!(plan.validate.rules.len(), 2);
    assert_eq!(plan.validate.rules[0].name, "no negative payments");
    assert_eq!(plan.validate.rules[0].expect, 0);
    assert_eq!(
        plan.validate.rules[1].expect, 0,
        "expect defaults to 0 when left out"
    );
    // Every key the structs know appears in the file: a round trip through JSON loses nothing.
    let json = serde_json::to_value(&plan).unwrap();
    for key in [
        "name", "source", "target", "load", "tables", "cast", "policies", "validate",
    ] {
        assert!(json.get(key).is_some(), "reference plan lacks `{key}`");
    }
    for key in [
        "parallelism",
        "chunk_rows",
        "batch_rows",
        "if_exists",
        "max_memory",
        "primary_key_after_load",
        "retries",
        "max_rejects",
        "max_reject_ratio",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "reference plan lacks load.{key}"
        );
    }
    for key in ["mode", "float_tolerance", "rules"] {
        assert!(
            json["validate"].get(key).is_some(),
            "reference plan lacks validate.{key}"
        );
    }
    for key in ["name", "sql", "expect"] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "reference plan lacks validate.rules.{key}"
        );
    }
    assert_eq!(
        Plan::from_json(&json.to_string()).unwrap(),
        plan,
        "JSON gives the same plan"
    );
}
