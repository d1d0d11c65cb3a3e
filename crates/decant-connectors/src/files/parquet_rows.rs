//! Rows of a Parquet batch that cannot load: values converted into a pinned type (as their text
//! would be from a CSV file) that do not fit, `date64` values that are not whole days, and text
//! with a NUL byte the target cannot hold.
//! Such a row leaves the batch and goes to the quarantine with its file, row group and row.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use decant_core::{LogicalType, Reject};

use super::encode::write_value_text;
use super::values::{Cell, ValueFormats, append, nul_byte_reject, parse_cell};
use crate::batch::BatchBuilder;
use crate::error::ConnectorError;

/// Characters of a rendered row kept in the quarantine.
const MAX_REJECT_CHARS: usize = 64 * 1024;

/// Why a row cannot load: the quarantine's rule and reason, first problem found.
pub(super) type Failures = Vec<Option<(String, String)>>;

fn internal(e: ArrowError) -> ConnectorError {
    ConnectorError::Internal(e.to_string())
}

/// The text of a non-null value: a binary value's bytes read as UTF-8 (Parquet writers that
/// store strings without the UTF8 annotation), anything else as decant's file targets write it.
fn value_text<'a>(a: &'a dyn Array, row: usize, buf: &'a mut String) -> Result<&'a str, String> {
    if let DataType::Binary = a.data_type() {
        let bytes = a.as_binary::<i32>().value(row);
        return std::str::from_utf8(bytes).map_err(|e| {
            format!(
                "the bytes are not UTF-8 text (invalid at byte {})",
                e.valid_up_to()
            )
        });
    }
    buf.clear();
    write_value_text(a, row, buf);
    Ok(buf)
}

/// Converts `values` (in the file's own type) into the pinned type `to`, value by value, through
/// the CSV reader's parser; a value that does not parse is recorded in `failures` (and held as
/// NULL until the row is dropped).
pub(super) fn convert(
    values: &dyn Array,
    column: &str,
    to: &LogicalType,
    failures: &mut Failures,
) -> Result<ArrayRef, ConnectorError> {
    let schema = Arc::new(Schema::new(vec![to.arrow_field(column, true, "")]));
    let mut b = BatchBuilder::new(schema, values.len().max(1)).map_err(internal)?;
    let formats = ValueFormats::default();
    let mut buf = String::new();
    for (row, failed) in failures.iter_mut().enumerate() {
        let cell = if values.is_null(row) || failed.is_some() {
            Ok(Cell::Null)
        } else {
            value_text(values, row, &mut buf)
                .map_err(|e| ("invalid_encoding".to_string(), format!("{column}: {e}")))
                .and_then(|text| {
                    parse_cell(Cow::Borrowed(text), to, &formats).map_err(|e| {
                        (
                            format!("bad_value({column})"),
                            format!("{column} ({to}): {e}"),
                        )
                    })
                })
        };
        let cell = cell.unwrap_or_else(|why| {
            *failed = Some(why);
            Cell::Null
        });
        append(b.column(0), cell).map_err(ConnectorError::Internal)?;
        b.end_row();
    }
    Ok(b.finish().map_err(internal)?.column(0).clone())
}

/// Records rows whose text in `values` holds a NUL byte (`Policies::reject_nul`).
pub(super) fn find_nul(
    values: &dyn Array,
    column: &str,
    logical: &LogicalType,
    failures: &mut Failures,
) {
    let DataType::Utf8 = values.data_type() else {
        return;
    };
    let strings = values.as_string::<i32>();
    for (row, failed) in failures.iter_mut().enumerate() {
        if failed.is_none() && strings.is_valid(row) {
            let cell = Cell::Text(Cow::Borrowed(strings.value(row)));
            *failed = nul_byte_reject(column, &cell, logical);
        }
    }
}

/// Marks the rows whose `date64` value (milliseconds) is not a whole day. Arrow's format says
/// it must be, and the cast to a date would drop the time of day without a word.
pub(super) fn find_partial_days(file_values: &dyn Array, column: &str, failures: &mut Failures) {
    let DataType::Date64 = file_values.data_type() else {
        return;
    };
    let ms = file_values.as_primitive::<arrow_array::types::Date64Type>();
    for (row, failed) in failures.iter_mut().enumerate() {
        if failed.is_none() && ms.is_valid(row) && ms.value(row).rem_euclid(86_400_000) != 0 {
            *failed = Some((
                format!("bad_value({column})"),
                format!(
                    "{column} (date): the date64 value {} ms is not a whole day, and a date \
                     cannot hold its time of day",
                    ms.value(row)
                ),
            ));
        }
    }
}

/// Where a batch sits, for the rejects' locations.
pub(super) struct Place<'a> {
    /// The file's name.
    pub file: &'a str,
    /// The row group's index in the file (0-based).
    pub row_group: usize,
    /// Rows of the file before the row group.
    pub group_start: u64,
    /// Rows of the row group before the batch.
    pub batch_start: u64,
}

/// Drops the failed rows of `columns` and puts them into `rejects`, rendered from `shown` (the
/// values as the file holds them); returns the batch of the rows that load.
pub(super) fn keep_loadable(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    shown: &[(String, ArrayRef)],
    failures: Failures,
    place: &Place<'_>,
    rejects: &decant_core::RejectLog,
) -> Result<RecordBatch, ConnectorError> {
    if failures.iter().all(Option::is_none) {
        return RecordBatch::try_new(schema.clone(), columns).map_err(internal);
    }
    let keep: BooleanArray = failures.iter().map(|f| Some(f.is_none())).collect();
    let columns = columns
        .iter()
        .map(|c| arrow_select::filter::filter(c, &keep))
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    for (row, failed) in failures.into_iter().enumerate() {
        let Some((rule, reason)) = failed else {
            continue;
        };
        let in_group = place.batch_start + row as u64;
        rejects.push(Reject {
            location: format!(
                "{}: row group {}, row {in_group} (file row {})",
                place.file,
                place.row_group,
                place.group_start + in_group
            ),
            rule,
            reason,
            record: render(shown, row),
            input: None,
        });
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(internal)
}

/// One row as a JSON object of the values' text (`null` for NULL), in column order.
fn render(shown: &[(String, ArrayRef)], row: usize) -> String {
    let mut out = String::from("{");
    let mut buf = String::new();
    for (i, (name, values)) in shown.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&serde_json::Value::from(name.as_str()).to_string());
        out.push_str(": ");
        if values.is_null(row) {
            out.push_str("null");
            continue;
        }
        buf.clear();
        write_value_text(values.as_ref(), row, &mut buf);
        out.push_str(&serde_json::Value::from(buf.as_str()).to_string());
    }
    out.push('}');
    out.chars().take(MAX_REJECT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use arrow_array::{BinaryArray, Int64Array, StringArray};

    use super::*;

    #[test]
    fn values_convert_through_text_or_say_why() {
        let big = Int64Array::from(vec![Some(7), None, Some(3_000_000_000)]);
        let mut failures: Failures = vec![None; 3];
        let out = convert(&big, "n", &LogicalType::Int32, &mut failures).unwrap();
        assert_eq!(
            out.as_primitive::<arrow_array::types::Int32Type>().value(0),
            7
        );
        assert!(out.is_null(1));
        assert_eq!(failures[0], None);
        assert_eq!(failures[1], None);
        let (rule, reason) = failures[2].clone().unwrap();
        assert_eq!(rule, "bad_value(n)");
        assert_eq!(reason, "n (int32): 3000000000 is out of range for int32");

        let days = StringArray::from(vec!["2024-01-31", "31/01/2024"]);
        let mut failures: Failures = vec![None; 2];
        convert(&days, "day", &LogicalType::Date, &mut failures).unwrap();
        assert_eq!(failures[0], None);
        assert_eq!(
            failures[1].as_ref().unwrap().1,
            "day (date): `31/01/2024` is not a date"
        );

        let raw = BinaryArray::from(vec![&b"ok"[..], &b"\xff"[..]]);
        let mut failures: Failures = vec![None; 2];
        let out = convert(&raw, "s", &LogicalType::Text, &mut failures).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "ok");
        assert_eq!(failures[1].as_ref().unwrap().0, "invalid_encoding");
    }

    #[test]
    fn date64_values_that_are_not_whole_days_are_found() {
        let day = 86_400_000i64;
        let ms = arrow_array::Date64Array::from(vec![Some(day * 3), Some(day * 3 + 1), None]);
        let mut failures: Failures = vec![None; 3];
        find_partial_days(&ms, "d", &mut failures);
        assert_eq!(failures[0], None);
        assert_eq!(failures[2], None);
        let (rule, reason) = failures[1].clone().unwrap();
        assert_eq!(rule, "bad_value(d)");
        assert!(
            reason.contains("259200001 ms is not a whole day"),
            "{reason}"
        );
    }

    #[test]
    fn rows_with_a_nul_byte_are_found_and_rendered_whole() {
        let s = StringArray::from(vec![Some("a"), Some("b\0"), None]);
        let mut failures: Failures = vec![None; 3];
        find_nul(&s, "s", &LogicalType::Text, &mut failures);
        assert_eq!(failures.iter().filter(|f| f.is_some()).count(), 1);
        assert_eq!(failures[1].as_ref().unwrap().0, "nul_byte(s)");
        let shown: Vec<(String, ArrayRef)> = vec![
            ("id".into(), Arc::new(Int64Array::from(vec![1, 2, 3]))),
            ("s".into(), Arc::new(s)),
        ];
        assert_eq!(render(&shown, 1), r#"{"id": "2", "s": "b\u0000"}"#);
        assert_eq!(render(&shown, 2), r#"{"id": "3", "s": null}"#);
    }
}
