//! Text forms of values for file targets: CSV fields and JSON Lines values that load back
//! without loss (decimals with their scale, timestamps ISO 8601 with microseconds and offset,
//! bytes as `\x` hex, NULL distinct from the empty string).

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float32Type, Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use chrono::{Datelike, Timelike};
use decant_core::LogicalType;

use crate::batch::{timestamp_from_micros, write_decimal, write_text, write_timestamp};
use crate::error::ConnectorError;
use crate::traits::TargetTable;

/// CSV settings, resolved from the plan.
#[derive(Debug, Clone)]
pub struct CsvStyle {
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
}

/// Writes `bytes` as `\x` followed by lowercase hex (PostgreSQL's bytea text form).
fn write_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` (always six digits), `+00:00` appended for instants. Years
/// outside 1..=9999 have no ISO form every reader takes: they keep PostgreSQL's spelling.
fn write_iso_timestamp(out: &mut String, micros: i64, instant: bool) {
    match timestamp_from_micros(micros) {
        Some(dt) if (1..=9999).contains(&dt.year()) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                micros.rem_euclid(1_000_000)
            );
        }
        _ => write_timestamp(out, micros),
    }
    if instant {
        out.push_str("+00:00");
    }
}

/// The text of one non-null value, shared by CSV and the string values of JSON Lines.
pub(super) fn write_value_text(array: &dyn Array, row: usize, out: &mut String) {
    match array.data_type() {
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Binary => write_hex(out, array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => write_hex(out, array.as_binary::<i64>().value(row)),
        DataType::FixedSizeBinary(n) if *n != 16 => {
            write_hex(out, array.as_fixed_size_binary().value(row))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => write_iso_timestamp(
            out,
            array.as_primitive::<TimestampMicrosecondType>().value(row),
            tz.is_some(),
        ),
        _ => {
            write_text(array, row, out);
        }
    }
}

/// Whether a CSV field must be quoted to read back as itself.
fn needs_quotes(text: &str, style: &CsvStyle) -> bool {
    text.is_empty()
        || text == style.null
        || text
            .bytes()
            .any(|b| b == style.delimiter || matches!(b, b'"' | b'\n' | b'\r'))
}

fn push_csv_field(out: &mut String, text: &str, style: &CsvStyle) {
    if needs_quotes(text, style) {
        out.push('"');
        for c in text.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The header record.
pub fn csv_header(table: &TargetTable, style: &CsvStyle) -> String {
    let mut out = String::new();
    for (i, c) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(style.delimiter as char);
        }
        push_csv_field(&mut out, &c.name, style);
    }
    out.push('\n');
    out
}

fn check_width(table: &TargetTable, batch: &RecordBatch) -> Result<(), ConnectorError> {
    if batch.num_columns() != table.columns.len() {
        return Err(ConnectorError::Internal(format!(
            "batch for {} has {} columns, the table {}",
            table.name,
            batch.num_columns(),
            table.columns.len()
        )));
    }
    Ok(())
}

/// Appends the batch's rows as CSV records (`\n` line ends) to `out`.
pub fn csv_rows(
    table: &TargetTable,
    batch: &RecordBatch,
    style: &CsvStyle,
    out: &mut String,
) -> Result<(), ConnectorError> {
    check_width(table, batch)?;
    let mut field = String::new();
    for row in 0..batch.num_rows() {
        for (i, a) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(style.delimiter as char);
            }
            if a.is_null(row) {
                out.push_str(&style.null);
                continue;
            }
            field.clear();
            write_value_text(a.as_ref(), row, &mut field);
            push_csv_field(out, &field, style);
        }
        out.push('\n');
    }
    Ok(())
}

/// Appends `s` as a JSON string.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as a JSON number; NaN and the infinities, which JSON lacks, as strings.
fn push_json_float(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        let mut s = String::new();
        write_text(&arrow_array::Float64Array::from(vec![v]), 0, &mut s);
        push_json_string(out, &s);
    }
}

/// Appends the batch's rows as JSON objects, one per line. Integers and floats are numbers,
/// decimals strings (a JSON number would pass through a float in most readers), JSON columns
/// nested JSON, everything else the strings of the CSV form.
pub fn jsonl_rows(
    table: &TargetTable,
    batch: &RecordBatch,
    keys: &[String],
    out: &mut String,
) -> Result<(), ConnectorError> {
    check_width(table, batch)?;
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        out.push('{');
        for (i, a) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&keys[i]);
            out.push(':');
            if a.is_null(row) {
                out.push_str("null");
                continue;
            }
            let col = &table.columns[i];
            match a.data_type() {
                DataType::Boolean => out.push_str(if a.as_boolean().value(row) {
                    "true"
                } else {
                    "false"
                }),
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64 => {
                    write_text(a.as_ref(), row, out);
                }
                DataType::Float32 => {
                    push_json_float(out, a.as_primitive::<Float32Type>().value(row) as f64)
                }
                DataType::Float64 => {
                    push_json_float(out, a.as_primitive::<Float64Type>().value(row))
                }
                DataType::Decimal128(_, scale) => {
                    text.clear();
                    write_decimal(
                        &mut text,
                        a.as_primitive::<Decimal128Type>().value(row),
                        *scale,
                    );
                    push_json_string(out, &text);
                }
                DataType::Utf8
                    if matches!(col.logical, LogicalType::Json | LogicalType::Array(_)) =>
                {
                    push_raw_json(out, a.as_string::<i32>().value(row)).map_err(|message| {
                        ConnectorError::Value {
                            table: table.name.to_string(),
                            column: col.name.clone(),
                            range: format!("row {row} of a batch"),
                            message,
                        }
                    })?;
                }
                _ => {
                    text.clear();
                    write_value_text(a.as_ref(), row, &mut text);
                    push_json_string(out, &text);
                }
            }
        }
        out.push_str("}\n");
    }
    Ok(())
}

/// Appends a JSON document as it is, minus line breaks: outside strings they are only
/// whitespace (inside, JSON escapes them), and one would split the record in two.
fn push_raw_json(out: &mut String, text: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| format!("not valid JSON, cannot be nested in a JSON Lines record: {e}"))?;
    out.extend(text.chars().filter(|c| !matches!(c, '\n' | '\r')));
    Ok(())
}

/// The JSON-escaped keys of a table's columns, computed once per chunk.
pub fn json_keys(table: &TargetTable) -> Vec<String> {
    table
        .columns
        .iter()
        .map(|c| {
            let mut k = String::new();
            push_json_string(&mut k, &c.name);
            k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_quote_what_would_read_back_differently() {
        let style = CsvStyle {
            delimiter: b',',
            null: String::new(),
            header: true,
        };
        let mut out = String::new();
        for t in ["", "a,b", "say \"hi\"", "two\nlines", "plain"] {
            push_csv_field(&mut out, t, &style);
            out.push('|');
        }
        assert_eq!(out, "\"\"|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|plain|");
        let marked = CsvStyle {
            null: "\\N".into(),
            ..style
        };
        let mut out = String::new();
        push_csv_field(&mut out, "\\N", &marked);
        push_csv_field(&mut out, "", &marked);
        assert_eq!(out, "\"\\N\"\"\"");
    }

    #[test]
    fn timestamps_bytes_and_json_have_lossless_forms() {
        let mut s = String::new();
        write_iso_timestamp(&mut s, 1_577_836_801_000_001, true);
        assert_eq!(s, "2020-01-01T00:00:01.000001+00:00");
        s.clear();
        write_iso_timestamp(&mut s, -1, false);
        assert_eq!(s, "1969-12-31T23:59:59.999999");
        s.clear();
        write_hex(&mut s, &[0, 0xab, 0xff]);
        assert_eq!(s, "\\x00abff");
        s.clear();
        push_raw_json(&mut s, "{\n \"a\": \"x\\ny\"\n}").unwrap();
        assert_eq!(s, "{ \"a\": \"x\\ny\"}");
        assert!(push_raw_json(&mut s, "{oops").is_err());
        s.clear();
        push_json_string(&mut s, "q\"\u{1}");
        assert_eq!(s, "\"q\\\"\\u0001\"");
        s.clear();
        push_json_float(&mut s, f64::NAN);
        push_json_float(&mut s, 0.1);
        assert_eq!(s, "\"NaN\"0.1");
    }
}
