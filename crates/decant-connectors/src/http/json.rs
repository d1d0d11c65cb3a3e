//! JSON records of an API: dotted paths into a body, and a page's records as rows of a batch
//! (values converted by the JSON files' `json_values`), or rejects with their page, index and
//! reason. A record holding a number that parsing rounded is found in the response's text, by
//! the JSON files' check, and quarantined whole.

use std::collections::{HashMap, HashSet};

use arrow_array::RecordBatch;
use decant_core::{LogicalType, Reject};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::batch::BatchBuilder;
use crate::error::ConnectorError;
use crate::files::json::inexact_number_error;
use crate::files::json_values::{RecordError, json_cell};
use crate::files::values::{Cell, ValueFormats, append, nul_byte_reject};
use crate::traits::ReadRequest;

/// Characters of a record kept in the quarantine.
const MAX_REJECT_CHARS: usize = 64 * 1024;

/// The value at a dotted `path` (`data.items`, `meta.0.next`); the empty path is `v` itself.
pub fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Takes the records array at `path` out of `body`; `null` there is an empty page.
pub fn take_records(body: &mut Value, path: &str) -> Result<Vec<Value>, String> {
    let place = if path.is_empty() {
        Some(body)
    } else {
        path.split('.').try_fold(body, |v, key| match v {
            Value::Object(m) => m.get_mut(key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        })
    };
    let shown = if path.is_empty() { "the body" } else { path };
    match place {
        Some(Value::Array(a)) => Ok(std::mem::take(a)),
        Some(Value::Null) => Ok(vec![]),
        Some(other) => Err(format!(
            "{shown} is {}, not an array of records; set the table's `records` path",
            kind_name(other)
        )),
        None => Err(format!(
            "the response has no {shown}; set the table's `records` path"
        )),
    }
}

/// Records of a page that hold a number a double would round, by index: why, and the record's
/// text as the API sent it (the parsed record has the rounded number).
pub type InexactRecords = HashMap<usize, (RecordError, String)>;

/// The records at `path` in the response `text` that hold a number parsing would round.
pub fn inexact_records(text: &str, path: &str) -> Result<InexactRecords, String> {
    // Almost every page has none: one scan of the whole text says so.
    if inexact_number_error(text).is_none() {
        return Ok(HashMap::new());
    }
    let records = raw_records(text, path)
        .map_err(|e| format!("cannot find the records at `{path}` in the response's text: {e}"))?;
    Ok(records
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| inexact_number_error(r.get()).map(|e| (i, (e, r.get().to_string()))))
        .collect())
}

/// The records array at `path`, each record as its text (`take_records` over the raw text).
fn raw_records<'a>(text: &'a str, path: &str) -> Result<Vec<&'a RawValue>, serde_json::Error> {
    let mut place: &'a RawValue = serde_json::from_str(text)?;
    for key in path.split('.').filter(|_| !path.is_empty()) {
        let inner = place.get().trim_start();
        let next = if inner.starts_with('{') {
            // A repeated key: the last one counts, as in the parsed body.
            let mut m: HashMap<String, &'a RawValue> = serde_json::from_str(inner)?;
            m.remove(key)
        } else if inner.starts_with('[') {
            let a: Vec<&'a RawValue> = serde_json::from_str(inner)?;
            key.parse::<usize>().ok().and_then(|i| a.get(i).copied())
        } else {
            None
        };
        match next {
            Some(n) => place = n,
            None => return Ok(vec![]),
        }
    }
    if place.get() == "null" {
        return Ok(vec![]);
    }
    serde_json::from_str(place.get())
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One field's value as a cell of type `t` (the JSON files' conversion); `Err` says why it
/// does not fit.
pub fn cell<'a>(v: &'a Value, t: &LogicalType) -> Result<Cell<'a>, String> {
    match v {
        Value::Null => Ok(Cell::Null),
        v => json_cell(v, t, &ValueFormats::default()),
    }
}

/// Appends a page's records to `b`; returns rows appended and the batches that filled up.
pub fn append_page(
    b: &mut BatchBuilder,
    request: &ReadRequest,
    known: &HashSet<String>,
    records: &[Value],
    inexact: &InexactRecords,
    page_url: &str,
) -> (u64, Result<Vec<RecordBatch>, ConnectorError>) {
    let mut batches = Vec::new();
    let mut rows = 0u64;
    let columns = &request.columns;
    let nullable: Vec<bool> = request
        .schema
        .fields()
        .iter()
        .map(|f| f.is_nullable())
        .collect();
    let reject_nul = request.rejects_nul();
    for (index, record) in records.iter().enumerate() {
        let reject = |rule: String, reason: String| Reject {
            location: format!("{page_url} #{index}"),
            rule,
            reason,
            record: record.to_string().chars().take(MAX_REJECT_CHARS).collect(),
            input: None,
        };
        if let Some((e, text)) = inexact.get(&index) {
            request.rejects.push(Reject {
                record: text.chars().take(MAX_REJECT_CHARS).collect(),
                ..reject(e.rule.clone(), e.reason.clone())
            });
            continue;
        }
        let Value::Object(m) = record else {
            request.rejects.push(reject(
                "malformed_record".into(),
                "the record is not a JSON object".into(),
            ));
            continue;
        };
        // A null carries no value to lose; any other field outside the table is a reject.
        if let Some(extra) = m
            .iter()
            .find(|(k, v)| !v.is_null() && !known.contains(*k))
            .map(|(k, _)| k)
        {
            request.rejects.push(reject(
                "unknown_field".into(),
                format!(
                    "field `{extra}` is not a column (the schema comes from the sampled records); declare it in the table's columns to load it"
                ),
            ));
            continue;
        }
        let mut cells = Vec::with_capacity(columns.len());
        let mut failed = None;
        for (i, c) in columns.iter().enumerate() {
            let v = m.get(&c.name).unwrap_or(&Value::Null);
            if v.is_null() && !nullable[i] {
                failed = Some((
                    format!("not_null({})", c.name),
                    format!("{} is missing or null, but the column is NOT NULL", c.name),
                ));
                break;
            }
            match cell(v, &c.logical) {
                Ok(x) => {
                    if reject_nul[i]
                        && let Some(nul) = nul_byte_reject(&c.name, &x, &c.logical)
                    {
                        failed = Some(nul);
                        break;
                    }
                    cells.push(x)
                }
                Err(e) => {
                    failed = Some((
                        format!("bad_value({})", c.name),
                        format!("{} ({}): {e}", c.name, c.logical),
                    ));
                    break;
                }
            }
        }
        if let Some((rule, reason)) = failed {
            request.rejects.push(reject(rule, reason));
            continue;
        }
        for (i, x) in cells.into_iter().enumerate() {
            if let Err(e) = append(b.column(i), x) {
                return (rows, Err(ConnectorError::Internal(e)));
            }
        }
        b.end_row();
        rows += 1;
        if b.is_full() {
            match b.finish() {
                Ok(batch) => batches.push(batch),
                Err(e) => return (rows, Err(ConnectorError::Internal(e.to_string()))),
            }
        }
    }
    (rows, Ok(batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_find_records_and_cursors() {
        let mut body = json!({"data": {"items": [{"id": 1}]}, "meta": [{"next": "x"}]});
        assert_eq!(at_path(&body, "meta.0.next"), Some(&json!("x")));
        assert_eq!(at_path(&body, "nope.x"), None);
        assert_eq!(take_records(&mut body, "data.items").unwrap().len(), 1);
        assert!(
            take_records(&mut body, "meta.0")
                .unwrap_err()
                .contains("an object")
        );
        assert!(
            take_records(&mut body, "items")
                .unwrap_err()
                .contains("no items")
        );
        assert!(
            take_records(&mut json!({"d": null}), "d")
                .unwrap()
                .is_empty()
        );
        assert_eq!(take_records(&mut json!([1, 2]), "").unwrap().len(), 2);
    }

    #[test]
    fn records_with_numbers_a_double_would_round_are_found_in_the_text() {
        let text = r#" {"meta": {"total": 12345678901234567890123},
            "data": {"items": [{"id": 1, "n": 0.5}, {"id": 2, "n": 12345678901234567890123},
                               {"id": 3, "s": "99999999999999999999999"}]}} "#;
        let found = inexact_records(text, "data.items").unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let (e, raw) = &found[&1];
        assert_eq!(e.rule, "inexact_number");
        assert_eq!(raw, r#"{"id": 2, "n": 12345678901234567890123}"#);
        assert!(
            inexact_records(text, "meta")
                .unwrap_err()
                .contains("`meta`")
        );
        let array = r#"[{"a": 1e-400}, {"a": 1}, {"a": [7, 0.1000000000000000055]}]"#;
        let mut keys: Vec<usize> = inexact_records(array, "").unwrap().into_keys().collect();
        keys.sort();
        assert_eq!(keys, [0, 2]);
        assert!(
            inexact_records(r#"{"x": 12345678901234567890123, "d": null}"#, "d")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn cells_fit_or_say_why() {
        assert!(matches!(
            cell(&json!(7), &LogicalType::Int32),
            Ok(Cell::Int(7))
        ));
        assert!(matches!(
            cell(&json!("7"), &LogicalType::Int64),
            Ok(Cell::Int(7))
        ));
        assert!(cell(&json!("x"), &LogicalType::Int32).is_err());
        assert!(cell(&json!(1.5), &LogicalType::Int32).is_err());
        assert!(
            cell(&json!({"a": 1}), &LogicalType::Int32)
                .unwrap_err()
                .contains("object")
        );
        assert!(matches!(
            cell(&json!({"a": 1}), &LogicalType::Json),
            Ok(Cell::Text(t)) if t == r#"{"a":1}"#
        ));
        assert!(matches!(
            cell(&json!(true), &LogicalType::Bool),
            Ok(Cell::Bool(true))
        ));
        assert!(matches!(
            cell(&json!(null), &LogicalType::Int32),
            Ok(Cell::Null)
        ));
        assert!(matches!(
            cell(&json!(12.5), &LogicalType::BigDecimal),
            Ok(Cell::Text(t)) if t == "12.5"
        ));
    }
}
