//! Converts batches from the source's Arrow types to the target columns' types.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast::{CastOptions, can_cast_types, cast_with_options};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use decant_connectors::batch::{ColumnBuilder, write_text};

/// Converts `batch` to `schema` column by column; the error names the column and the value.
pub fn convert_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, (usize, String)> {
    if batch
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type())
    {
        return RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| (0, e.to_string()));
    }
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (i, (col, field)) in batch.columns().iter().zip(schema.fields()).enumerate() {
        columns.push(convert_array(col, field.data_type()).map_err(|e| (i, e))?);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| (0, e.to_string()))
}

/// Converts one array. Casting to text uses Decant's text forms (so a UUID stays hyphenated and
/// a decimal keeps its scale); other casts use Arrow's kernels with overflow as an error;
/// anything else goes through text and the target type's parser. Never lossy in silence.
pub fn convert_array(col: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    if col.data_type() == to {
        return Ok(col.clone());
    }
    // Naive ↔ zoned timestamps: Decant carries both as microseconds in UTC, so only the label
    // changes (Arrow's cast would need a time-zone database this build does not carry).
    if let (
        DataType::Timestamp(TimeUnit::Microsecond, _),
        DataType::Timestamp(TimeUnit::Microsecond, tz),
    ) = (col.data_type(), to)
    {
        let values = col
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
            .with_timezone_opt(tz.clone());
        return Ok(Arc::new(values));
    }
    if *to == DataType::Utf8 && *col.data_type() != DataType::Binary {
        let mut b = arrow_array::builder::StringBuilder::with_capacity(col.len(), col.len() * 16);
        let mut s = String::new();
        for row in 0..col.len() {
            s.clear();
            if write_text(col.as_ref(), row, &mut s) {
                b.append_value(&s);
            } else {
                b.append_null();
            }
        }
        return Ok(Arc::new(b.finish()));
    }
    let via_text = matches!(col.data_type(), DataType::Utf8)
        || matches!(col.data_type(), DataType::FixedSizeBinary(_))
        || matches!(to, DataType::FixedSizeBinary(_));
    if !via_text && can_cast_types(col.data_type(), to) {
        let opts = CastOptions {
            safe: false,
            ..Default::default()
        };
        return cast_with_options(col.as_ref(), to, &opts).map_err(|e| e.to_string());
    }
    let mut builder = ColumnBuilder::new(to, col.len()).map_err(|e| e.to_string())?;
    let mut s = String::new();
    for row in 0..col.len() {
        s.clear();
        if !write_text(col.as_ref(), row, &mut s) {
            builder.append_null();
            continue;
        }
        builder
            .append_text(&s)
            .map_err(|e| format!("row {row}: {e}"))?;
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int8Array, StringArray, UInt64Array, cast::AsArray, types::Decimal128Type};

    #[test]
    fn widening_and_text_and_failures() {
        let a: ArrayRef = Arc::new(Int8Array::from(vec![Some(1), None, Some(-128)]));
        let out = convert_array(&a, &DataType::Int16).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.is_null(1));
        let u: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        let d = convert_array(&u, &DataType::Decimal128(20, 0)).unwrap();
        assert_eq!(
            d.as_primitive::<Decimal128Type>().value(0),
            u64::MAX as i128
        );
        let t = convert_array(&u, &DataType::Int64);
        assert!(t.is_err(), "u64::MAX does not fit int64 and must not wrap");
        let s: ArrayRef = Arc::new(StringArray::from(vec!["12.5", "x"]));
        assert!(convert_array(&s, &DataType::Decimal128(5, 2)).is_err());
        let naive: ArrayRef = Arc::new(arrow_array::TimestampMicrosecondArray::from(vec![
            Some(1_000_000),
            None,
        ]));
        let zoned = convert_array(
            &naive,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
        .unwrap();
        assert_eq!(
            zoned.as_primitive::<TimestampMicrosecondType>().value(0),
            1_000_000
        );
        assert!(zoned.is_null(1));
        let txt = convert_array(&d, &DataType::Utf8).unwrap();
        assert_eq!(txt.as_string::<i32>().value(0), "18446744073709551615");
    }
}
