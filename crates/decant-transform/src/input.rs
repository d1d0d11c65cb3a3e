//! A rejected row's input as the quarantine keeps it (the source's values as text, masked
//! columns left out), and the way back to an Arrow batch of the source's schema for
//! `decant rejects --retry`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_cast::CastOptions;
use arrow_schema::{DataType, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::TransformError;
use crate::table::text;

/// The stored input of one rejected row.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRow {
    /// Source column → its value as Arrow displays it (binary as hex), `None` for NULL.
    pub values: BTreeMap<String, Option<String>>,
    /// Source columns the plan masks: their values are not stored, so the row cannot be rerun.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<String>,
}

/// Encodes row `row` of `batch`, leaving out the columns flagged in `masked`.
pub(crate) fn encode_row(batch: &RecordBatch, row: usize, masked: &[bool]) -> String {
    let mut input = InputRow::default();
    for (i, f) in batch.schema().fields().iter().enumerate() {
        if masked.get(i).copied().unwrap_or(false) {
            input.masked.push(f.name().clone());
        } else {
            input
                .values
                .insert(f.name().clone(), text(batch.column(i).as_ref(), row));
        }
    }
    serde_json::to_string(&input).unwrap_or_default()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn decode_column(
    name: &str,
    dt: &DataType,
    values: Vec<Option<&str>>,
) -> Result<ArrayRef, TransformError> {
    let bad = |e: String| TransformError::Eval(format!("stored value of {name}: {e}"));
    let column: ArrayRef = match dt {
        DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            let bytes = values
                .iter()
                .map(|v| {
                    v.map(|h| unhex(h).ok_or_else(|| bad(format!("`{h}` is not hex"))))
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(BinaryArray::from_iter(bytes))
        }
        _ => Arc::new(StringArray::from(values)),
    };
    if column.data_type() == dt {
        return Ok(column);
    }
    // Not `safe`: a value that does not parse back is an error, never a silent NULL.
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow_cast::cast_with_options(&column, dt, &options).map_err(|e| bad(e.to_string()))
}

/// Rebuilds a batch of `schema` from stored inputs. Fails when a row lacks a column of the
/// schema (the plan now reads a column the first run did not) or a value does not parse back.
pub fn decode_rows(schema: &SchemaRef, rows: &[InputRow]) -> Result<RecordBatch, TransformError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let values = rows
            .iter()
            .map(|r| {
                r.values.get(f.name()).map(|v| v.as_deref()).ok_or_else(|| {
                    TransformError::Eval(format!(
                        "the stored row has no column {} (the first run did not read it)",
                        f.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(decode_column(f.name(), f.data_type(), values)?);
    }
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| TransformError::Eval(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Date32Array, Decimal128Array, Int64Array};
    use arrow_schema::{Field, Schema};

    #[test]
    fn rows_round_trip_through_their_stored_text_and_masked_columns_stay_out() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("d", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(12, 2), true),
            Field::new("blob", DataType::Binary, true),
            Field::new("ssn", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(Date32Array::from(vec![Some(18627), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(123450), Some(-5)])
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(BinaryArray::from_iter(vec![Some(vec![0u8, 255]), None])),
                Arc::new(StringArray::from(vec![Some("123-45"), None])),
            ],
        )
        .unwrap();
        let masked = [false, false, false, false, true];
        let rows: Vec<InputRow> = (0..2)
            .map(|r| serde_json::from_str(&encode_row(&batch, r, &masked)).unwrap())
            .collect();
        assert_eq!(rows[0].masked, vec!["ssn".to_string()]);
        assert!(!serde_json::to_string(&rows[0]).unwrap().contains("123-45"));
        let unmasked: SchemaRef = Arc::new(Schema::new(schema.fields()[..4].to_vec()));
        let back = decode_rows(&unmasked, &rows).unwrap();
        assert_eq!(back, batch.project(&[0, 1, 2, 3]).unwrap());
        // The masked column is not there to rebuild.
        assert!(decode_rows(&schema, &rows).is_err());
    }
}
