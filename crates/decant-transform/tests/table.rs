//! Compiled table transforms on in-memory batches: every step, the counts, unique keys across
//! chunks and their release when an attempt fails, and plan-time errors.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use decant_core::transform::{Mask, RowRule, RuleAction, RuleCheck};
use decant_transform::{OutputSpec, TableTransform, TransformSpec};

fn input() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec![
                Some(" A@X.org "),
                None,
                Some("b@x.org"),
                Some("a@x.org"),
                Some("c@x.org"),
            ])),
            Arc::new(StringArray::from(vec![
                Some("open"),
                Some("open"),
                Some("N/A"),
                Some("test"),
                Some("odd"),
            ])),
        ],
    )
    .unwrap()
}

fn out(name: &str) -> OutputSpec {
    OutputSpec {
        name: name.into(),
        target_name: name.into(),
        source: Some(name.into()),
        expr: None,
        value: None,
        mask: None,
    }
}

fn rule(name: &str, action: RuleAction, check: RuleCheck) -> RowRule {
    RowRule {
        name: name.into(),
        action,
        check,
    }
}

fn spec() -> TransformSpec {
    TransformSpec {
        outputs: vec![
            out("id"),
            OutputSpec {
                expr: Some("lower(trim(email))".into()),
                ..out("email")
            },
            OutputSpec {
                expr: Some("null_if(status, 'N/A')".into()),
                ..out("status")
            },
            OutputSpec {
                source: None,
                value: Some(serde_json::json!("legacy")),
                ..out("origin")
            },
        ],
        filter: Some("status IS NULL OR status <> 'test'".into()),
        rules: vec![
            rule(
                "email present",
                RuleAction::Reject,
                RuleCheck::NotNull {
                    column: "email".into(),
                },
            ),
            rule(
                "known status",
                RuleAction::Warn,
                RuleCheck::InSet {
                    column: "status".into(),
                    values: vec![serde_json::json!("open")],
                },
            ),
            rule(
                "email unique",
                RuleAction::Reject,
                RuleCheck::Unique {
                    columns: vec!["email".into()],
                },
            ),
        ],
        key_columns: vec!["id".into()],
        dedupe: None,
    }
}

#[test]
fn steps_run_in_order_with_counts() {
    let batch = input();
    let t = Arc::new(TableTransform::compile(&spec(), batch.schema()).unwrap());
    let mut run = t.begin_chunk("c1");
    let a = run.apply(&batch).unwrap();
    // id 4 filtered (status test); id 2 rejected (no email); id 5 warned (odd status).
    assert_eq!(a.filtered, 1);
    assert_eq!(a.warned, 1);
    assert_eq!(a.rejects.len(), 1);
    assert_eq!(a.rejects[0].location, "id=2");
    assert_eq!(a.rejects[0].rule, "not_null(email present)");
    assert_eq!(a.rejects[0].reason, "email is null");
    let ids: Vec<i32> = a
        .batch
        .column(0)
        .as_primitive::<arrow_array::types::Int32Type>()
        .values()
        .to_vec();
    assert_eq!(ids, vec![1, 3, 5]);
    let emails = a.batch.column(1).as_string::<i32>();
    assert_eq!(emails.value(0), "a@x.org");
    assert!(a.batch.column(2).is_null(1), "N/A became NULL");
    assert_eq!(a.batch.column(3).as_string::<i32>().value(2), "legacy");
    let counts = run.commit();
    let steps = t.steps();
    let at = |kind: &str| steps.iter().position(|s| s.kind == kind).unwrap();
    assert_eq!(counts[at("expr")].changed, 1, "only ' A@X.org ' changed");
    assert_eq!(counts[at("where")].changed, 1);
    assert_eq!(counts[at("rule:not_null")].rejected, 1);
    assert_eq!(counts[at("rule:in_set")].warned, 1);
}

#[test]
fn unique_spans_chunks_and_a_failed_attempt_frees_its_keys() {
    let batch = input();
    let t = Arc::new(TableTransform::compile(&spec(), batch.schema()).unwrap());
    {
        let mut failed = t.begin_chunk("c1");
        failed.apply(&batch).unwrap();
        // dropped without commit: as if the chunk's write failed
    }
    let mut first = t.begin_chunk("c1");
    assert!(
        first.apply(&batch).unwrap().rejects.len() == 1,
        "the retry sees its keys free"
    );
    first.commit();
    let mut second = t.begin_chunk("c2");
    let a = second.apply(&batch).unwrap();
    let rules: Vec<&str> = a.rejects.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        rules,
        vec![
            "unique(email unique)",
            "not_null(email present)",
            "unique(email unique)",
            "unique(email unique)"
        ],
        "another chunk with the same emails"
    );
}

#[test]
fn a_fail_rule_stops_with_the_location() {
    let batch = input();
    let mut s = spec();
    s.rules = vec![rule(
        "no c",
        RuleAction::Fail,
        RuleCheck::Regex {
            column: "email".into(),
            pattern: "^[ab]".into(),
        },
    )];
    let t = Arc::new(TableTransform::compile(&s, batch.schema()).unwrap());
    let err = t.begin_chunk("c1").apply(&batch).err().unwrap().to_string();
    assert!(err.contains("rule `no c` failed at id=5"), "{err}");
}

#[test]
fn masks_apply_after_rules_and_hide_keys_in_locations() {
    let batch = input();
    let mut s = spec();
    s.filter = None;
    s.outputs[0].mask = Some(Mask::Partial { keep: Some(0) });
    s.outputs[1].mask = Some(Mask::Redact { text: None });
    s.rules = vec![rule(
        "email shape",
        RuleAction::Reject,
        RuleCheck::Regex {
            column: "email".into(),
            pattern: "^[a-z]@x\\.org$".into(),
        },
    )];
    let t = Arc::new(TableTransform::compile(&s, batch.schema()).unwrap());
    let a = t.begin_chunk("c9").apply(&batch).unwrap();
    assert!(a.rejects.is_empty(), "rules saw the unmasked emails");
    assert_eq!(a.batch.column(1).as_string::<i32>().value(0), "[redacted]");
    assert!(a.batch.column(1).is_null(1), "NULL stays NULL");
    let mut s2 = s.clone();
    s2.rules[0].check = RuleCheck::Length {
        column: "email".into(),
        min: None,
        max: Some(3),
    };
    let t = Arc::new(TableTransform::compile(&s2, batch.schema()).unwrap());
    let a = t.begin_chunk("c9").apply(&batch).unwrap();
    assert_eq!(a.rejects.len(), 4);
    assert_eq!(
        a.rejects[0].location, "chunk c9 row 1",
        "a masked key is not a location"
    );
    assert!(
        !a.rejects[0].record.contains("x.org"),
        "{}",
        a.rejects[0].record
    );
}

#[test]
fn plan_errors_name_the_column_or_rule() {
    let batch = input();
    let mut s = spec();
    s.outputs[1].expr = Some("lower(email".into());
    s.outputs[2].expr = Some("nope(status)".into());
    let errors = TableTransform::compile(&s, batch.schema()).err().unwrap();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(text[0].starts_with("email: expr `lower(email`"), "{text:?}");
    assert!(
        text[1].starts_with("status: expr `nope(status)`") && text[1].contains("nope"),
        "{text:?}"
    );
    let mut s = spec();
    s.filter = Some("missing > 1".into());
    s.rules.push(rule(
        "r",
        RuleAction::Reject,
        RuleCheck::Range {
            column: "ghost".into(),
            min: None,
            max: None,
        },
    ));
    let text: Vec<String> = TableTransform::compile(&s, batch.schema())
        .err()
        .unwrap()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        text.iter().any(|t| t.starts_with("where: `missing > 1`")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("rule `r`") && t.contains("ghost")),
        "{text:?}"
    );
}

#[test]
fn cleansing_functions_in_expressions() {
    let batch = input();
    let mut s = spec();
    s.filter = None;
    s.rules.clear();
    s.outputs.push(OutputSpec {
        source: None,
        expr: Some("parse_date('31.12.2020', '%d.%m.%Y')".into()),
        ..out("d")
    });
    s.outputs.push(OutputSpec {
        source: None,
        expr: Some("normalize_space(concat('  a ', chr(9), ' b  '))".into()),
        ..out("ws")
    });
    s.outputs.push(OutputSpec {
        source: None,
        expr: Some("parse_number('1.234,5', ',', '.')".into()),
        ..out("n")
    });
    let t = Arc::new(TableTransform::compile(&s, batch.schema()).unwrap());
    assert_eq!(t.output_schema().field(4).data_type(), &DataType::Date32);
    let a = t.begin_chunk("c").apply(&batch).unwrap();
    assert_eq!(
        a.batch
            .column(4)
            .as_primitive::<arrow_array::types::Date32Type>()
            .value(0),
        18627
    );
    assert_eq!(a.batch.column(5).as_string::<i32>().value(0), "a b");
    assert_eq!(a.batch.column(6).as_string::<i32>().value(0), "1234.5");
}

#[test]
fn coalesce_and_nvl_evaluate_per_row() {
    // DataFusion plans these only after simplification (a rewrite into CASE); unsimplified they
    // failed on the first batch although the plan compiled.
    let batch = input();
    let mut s = spec();
    s.filter = None;
    s.rules.clear();
    s.outputs.push(OutputSpec {
        source: None,
        expr: Some("coalesce(email, 'none')".into()),
        ..out("c")
    });
    s.outputs.push(OutputSpec {
        source: None,
        expr: Some("nvl(email, status)".into()),
        ..out("n")
    });
    let t = Arc::new(TableTransform::compile(&s, batch.schema()).unwrap());
    let a = t.begin_chunk("c").apply(&batch).unwrap();
    let c = a.batch.column(4).as_string::<i32>();
    assert_eq!((c.value(0), c.value(1)), (" A@X.org ", "none"));
    let n = a.batch.column(5).as_string::<i32>();
    assert_eq!((n.value(0), n.value(1)), (" A@X.org ", "open"));
}
